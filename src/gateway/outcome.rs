//! What the shell must do with a request: the gateway's decision, fully spelled out.

use serde::Serialize;

/// The counter a request bumps (Envoy: `keygate.<name>`). In `"shadow"` mode every request
/// bumps a `keygate.shadow.<name>` counter instead, so the two never mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    /// Continued upstream.
    Allowed,
    /// Refused with 400 (a token in more than one place).
    Denied400,
    /// Refused with 401.
    Denied401,
    /// Refused with 403.
    Denied403,
    /// Refused with 429.
    RateLimited,
    /// Refused with 503: no key set loaded (`remote_jwks`).
    JwksUnavailable,
    /// A JWKS fetch loaded a key set (not a request: never shadowed).
    JwksFetched,
    /// A JWKS fetch failed; the last good set was kept (not a request: never shadowed).
    JwksFetchFailed,
    /// Shadow mode: would have continued.
    ShadowAllowed,
    /// Shadow mode: would have been refused with 400.
    ShadowDenied400,
    /// Shadow mode: would have been refused with 401.
    ShadowDenied401,
    /// Shadow mode: would have been refused with 403.
    ShadowDenied403,
    /// Shadow mode: would have been refused with 429.
    ShadowRateLimited,
    /// Shadow mode: would have been refused with 503 `jwks_unavailable`.
    ShadowJwksUnavailable,
    /// Refused with 503 `unavailable`: the gateway could not go on (a held request resumed by
    /// a gateway that did not hold it). Refused in both modes: never shadowed.
    Unavailable,
}

impl Metric {
    /// Every metric, for defining them up front.
    pub const ALL: [Metric; 15] = [
        Self::Allowed,
        Self::Denied400,
        Self::Denied401,
        Self::Denied403,
        Self::RateLimited,
        Self::JwksUnavailable,
        Self::JwksFetched,
        Self::JwksFetchFailed,
        Self::ShadowAllowed,
        Self::ShadowDenied400,
        Self::ShadowDenied401,
        Self::ShadowDenied403,
        Self::ShadowRateLimited,
        Self::ShadowJwksUnavailable,
        Self::Unavailable,
    ];

    /// The metric name (`keygate.allowed`, `keygate.shadow.denied_401`, …).
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Allowed => "keygate.allowed",
            Self::Denied400 => "keygate.denied_400",
            Self::Denied401 => "keygate.denied_401",
            Self::Denied403 => "keygate.denied_403",
            Self::RateLimited => "keygate.rate_limited",
            Self::JwksUnavailable => "keygate.jwks_unavailable",
            Self::JwksFetched => "keygate.jwks_fetched",
            Self::JwksFetchFailed => "keygate.jwks_fetch_failed",
            Self::ShadowAllowed => "keygate.shadow.allowed",
            Self::ShadowDenied400 => "keygate.shadow.denied_400",
            Self::ShadowDenied401 => "keygate.shadow.denied_401",
            Self::ShadowDenied403 => "keygate.shadow.denied_403",
            Self::ShadowRateLimited => "keygate.shadow.rate_limited",
            Self::ShadowJwksUnavailable => "keygate.shadow.jwks_unavailable",
            Self::Unavailable => "keygate.unavailable",
        }
    }

    /// The shadow-mode counterpart (the fetch counters, which count no request, and
    /// `keygate.unavailable`, a refusal in both modes, stay).
    #[must_use]
    pub const fn shadow(self) -> Self {
        match self {
            Self::Allowed | Self::ShadowAllowed => Self::ShadowAllowed,
            Self::Denied400 | Self::ShadowDenied400 => Self::ShadowDenied400,
            Self::Denied401 | Self::ShadowDenied401 => Self::ShadowDenied401,
            Self::Denied403 | Self::ShadowDenied403 => Self::ShadowDenied403,
            Self::RateLimited | Self::ShadowRateLimited => Self::ShadowRateLimited,
            Self::JwksUnavailable | Self::ShadowJwksUnavailable => Self::ShadowJwksUnavailable,
            Self::JwksFetched => Self::JwksFetched,
            Self::JwksFetchFailed => Self::JwksFetchFailed,
            Self::Unavailable => Self::Unavailable,
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
            Self::Continue(f) => f.metric,
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
    /// More headers for the upstream's response: those a rate-limit service asked to add
    /// (`response_headers_to_add`; valid names and values only).
    pub service_headers: Vec<(String, String)>,
    /// `forward_token: false`: how to take the token out before the upstream sees it.
    pub strip_token: Option<StripToken<'g>>,
    /// `"shadow"` mode: the refusal `"enforce"` mode would have sent (log it once).
    pub shadow_refusal: Option<ShadowRefusal>,
    /// The counter to bump.
    pub metric: Metric,
}

/// Taking the token out of a forwarded request (`forward_token: false`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StripToken<'g> {
    /// Remove every value of this request header.
    Header(&'g str),
    /// Replace every `Cookie` line with this one (the other cookies, `; `-joined), or remove
    /// the `Cookie` header when `None` (no other cookie was sent).
    Cookie(Option<Vec<u8>>),
    /// A token found more than once (a would-be 400 that shadow mode forwards): every source
    /// taken out — each of these (a `Header` per header source, one `Cookie` without any
    /// token cookie), so no copy reaches the upstream.
    Every(Vec<StripToken<'g>>),
}

/// A refusal shadow mode did not send: what to log (never a token: the path is logged
/// without its query and with long or token-like segments replaced).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShadowRefusal {
    /// The status that would have been sent.
    pub status: u16,
    /// Its error code.
    pub code: &'static str,
    /// What refused it: `rules[2]`, `rate_limits[0]`, `no rule`, `path not normalized`.
    pub rule: String,
    /// Method and redacted path.
    pub request: String,
}

impl std::fmt::Display for ShadowRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "keygate shadow: would refuse {} {} ({}): {}",
            self.status, self.code, self.rule, self.request
        )
    }
}

/// `METHOD /path` for a log line: no query, printable ASCII only, segments that are long or
/// look like a JWT (two dots) replaced by `[redacted]`, at most 256 bytes.
pub(crate) fn loggable_request(method: &str, path: &str) -> String {
    let printable = |s: &str, max: usize| -> String {
        s.chars()
            .take(max)
            .map(|c| if c.is_ascii_graphic() { c } else { '?' })
            .collect()
    };
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let segments: Vec<String> = path
        .split('/')
        .map(|seg| {
            if seg.len() > 48 || seg.matches('.').count() >= 2 {
                "[redacted]".to_owned()
            } else {
                printable(seg, 48)
            }
        })
        .collect();
    let mut out = format!("{} {}", printable(method, 16), segments.join("/"));
    out.truncate(256);
    out
}

/// A response the proxy sends itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalReply {
    /// 400, 401, 403, 429 or 503.
    pub status: u16,
    /// Response headers (`content-type`, `www-authenticate`, `retry-after`, …).
    pub headers: Vec<(&'static str, String)>,
    /// More response headers: those a rate-limit service asked to add.
    pub service_headers: Vec<(String, String)>,
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
            service_headers: Vec::new(),
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
        assert_eq!(Metric::ALL.map(Metric::name)[4], "keygate.rate_limited");
        assert_eq!(
            Metric::Denied401.shadow().name(),
            "keygate.shadow.denied_401"
        );
        assert_eq!(
            Metric::JwksUnavailable.shadow().name(),
            "keygate.shadow.jwks_unavailable"
        );
        assert_eq!(Metric::JwksFetched.shadow(), Metric::JwksFetched);
        let names: std::collections::BTreeSet<_> = Metric::ALL.map(Metric::name).into();
        assert_eq!(names.len(), Metric::ALL.len());
    }

    #[test]
    fn loggable_request_never_shows_a_token_ok() {
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1In0.c2lnbmF0dXJl";
        let line = loggable_request("GET", &format!("/reset/{jwt}/x?access_token={jwt}"));
        assert_eq!(line, "GET /reset/[redacted]/x");
        let line = loggable_request("GE\nT", &format!("/a/{}", "b".repeat(60)));
        assert_eq!(line, "GE?T /a/[redacted]");
        assert!(loggable_request("GET", &"/a".repeat(500)).len() <= 256);
    }
}
