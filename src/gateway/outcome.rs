//! What the shell must do with a request: the gateway's decision, fully spelled out.

use serde::Serialize;

/// The counter a request bumps (Envoy: `keygate.<name>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    /// Continued upstream.
    Allowed,
    /// Refused with 401.
    Denied401,
    /// Refused with 403.
    Denied403,
    /// Refused with 429.
    RateLimited,
    /// Refused with 503: no key set loaded (`remote_jwks`).
    JwksUnavailable,
    /// A JWKS fetch loaded a key set.
    JwksFetched,
    /// A JWKS fetch failed; the last good set was kept.
    JwksFetchFailed,
}

impl Metric {
    /// Every metric, for defining them up front.
    pub const ALL: [Metric; 7] = [
        Self::Allowed,
        Self::Denied401,
        Self::Denied403,
        Self::RateLimited,
        Self::JwksUnavailable,
        Self::JwksFetched,
        Self::JwksFetchFailed,
    ];

    /// The metric name (`keygate.allowed`, …).
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Allowed => "keygate.allowed",
            Self::Denied401 => "keygate.denied_401",
            Self::Denied403 => "keygate.denied_403",
            Self::RateLimited => "keygate.rate_limited",
            Self::JwksUnavailable => "keygate.jwks_unavailable",
            Self::JwksFetched => "keygate.jwks_fetched",
            Self::JwksFetchFailed => "keygate.jwks_fetch_failed",
        }
    }
}

/// The decision for one request. The shell acts on it and decides nothing itself.
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<'g> {
    /// Send the request upstream, changed as described.
    Continue(Forward<'g>),
    /// Answer locally; the request never reaches the upstream.
    Reply(LocalReply),
}

impl Outcome<'_> {
    /// The counter to bump.
    #[must_use]
    pub fn metric(&self) -> Metric {
        match self {
            Self::Continue(_) => Metric::Allowed,
            Self::Reply(r) => r.metric,
        }
    }

    /// The HTTP status: 200 for continue, else the local reply's.
    #[must_use]
    pub fn status(&self) -> u16 {
        match self {
            Self::Continue(_) => 200,
            Self::Reply(r) => r.status,
        }
    }
}

/// How to forward an allowed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward<'g> {
    /// Request headers to remove first: every `claims_to_headers` name, always, so a client
    /// can never forge them.
    pub remove_request_headers: &'g [String],
    /// Request headers to set from the verified token's claims (after the removal).
    pub set_request_headers: Vec<(&'g str, String)>,
    /// Headers to add to the upstream's response (`RateLimit-Policy`, `RateLimit`).
    pub response_headers: Vec<(&'static str, String)>,
}

/// A response the proxy sends itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalReply {
    /// 401, 403, 429 or 503.
    pub status: u16,
    /// Response headers (`content-type`, `www-authenticate`, `retry-after`, …).
    pub headers: Vec<(&'static str, String)>,
    /// JSON body `{"error": code, "message": …}`.
    pub body: String,
    /// The stable error code (`token_expired`, `forbidden`, `rate_limited`, …).
    pub code: &'static str,
    /// The counter to bump.
    pub metric: Metric,
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    message: &'a str,
}

impl LocalReply {
    /// A JSON error reply; adds `content-type` and `cache-control: no-store`.
    pub(crate) fn new(
        status: u16,
        code: &'static str,
        message: &str,
        metric: Metric,
        mut headers: Vec<(&'static str, String)>,
    ) -> Self {
        let body = serde_json::to_string(&Body {
            error: code,
            message,
        })
        .unwrap_or_else(|_| format!("{{\"error\":\"{code}\"}}"));
        headers.push(("content-type", "application/json".to_owned()));
        headers.push(("cache-control", "no-store".to_owned()));
        Self {
            status,
            headers,
            body,
            code,
            metric,
        }
    }

    /// The first header called `name`, for tests and logging.
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// `Bearer realm="keygate"` plus an RFC 6750 `error` and `error_description` when given.
pub(crate) fn www_authenticate(error: Option<(&str, &str)>) -> String {
    match error {
        None => "Bearer realm=\"keygate\"".to_owned(),
        Some((error, description)) => format!(
            "Bearer realm=\"keygate\", error=\"{error}\", error_description=\"{}\"",
            quoted_string_safe(description)
        ),
    }
}

/// Text safe inside an RFC 9110 quoted-string (and RFC 6750 `error_description`: %x20-21 /
/// %x23-5B / %x5D-7E): other characters become `?`.
fn quoted_string_safe(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            ' ' | '!' | '#'..='[' | ']'..='~' => c,
            _ => '?',
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn www_authenticate_ok() {
        assert_eq!(www_authenticate(None), "Bearer realm=\"keygate\"");
        assert_eq!(
            www_authenticate(Some(("invalid_token", "token has \"expired\"\n"))),
            "Bearer realm=\"keygate\", error=\"invalid_token\", error_description=\"token has ?expired??\""
        );
    }

    #[test]
    fn reply_body_ok() {
        let r = LocalReply::new(
            401,
            "token_expired",
            "token has \"expired\"",
            Metric::Denied401,
            vec![],
        );
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(v["error"], "token_expired");
        assert_eq!(v["message"], "token has \"expired\"");
        assert_eq!(r.header("Content-Type"), Some("application/json"));
        assert_eq!(Outcome::Reply(r).metric(), Metric::Denied401);
        assert_eq!(Metric::ALL.map(Metric::name)[3], "keygate.rate_limited");
    }
}
