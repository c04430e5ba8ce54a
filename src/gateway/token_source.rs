//! Where a request carries its token: a header (with an optional scheme prefix) or a cookie.

use super::config::TokenSourceConfig;
use super::request::HttpRequest;
use crate::ratelimit::is_header_name;
use crate::token::TokenError;
use crate::ConfigError;

/// Most token sources.
pub const MAX_TOKEN_SOURCES: usize = 8;
/// Longest `prefix`.
pub const MAX_PREFIX_LEN: usize = 64;
/// Longest cookie name.
pub const MAX_COOKIE_NAME_LEN: usize = 128;

/// One compiled `token_sources` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// `name: <prefix><token>`; the prefix is matched ASCII case-insensitively.
    Header {
        /// Lowercase header name.
        name: String,
        /// Text before the token (`"Bearer "`), possibly empty.
        prefix: String,
    },
    /// `cookie: …; name=<token>; …`.
    Cookie {
        /// Cookie name (case-sensitive).
        name: String,
    },
}

impl TokenSource {
    /// The default: `Authorization: Bearer <token>`.
    #[must_use]
    pub fn bearer() -> Self {
        Self::Header {
            name: "authorization".to_owned(),
            prefix: "Bearer ".to_owned(),
        }
    }

    /// Validates one entry.
    ///
    /// # Errors
    /// [`ConfigError`] on `header`, `prefix` or `cookie` (or empty for the header/cookie
    /// choice).
    pub fn new(config: &TokenSourceConfig) -> Result<Self, ConfigError> {
        match (&config.header, &config.cookie, &config.prefix) {
            (Some(header), None, prefix) => {
                let name = header.to_ascii_lowercase();
                if !is_header_name(&name) {
                    return Err(ConfigError::new("header", "expected an HTTP header name"));
                }
                let prefix = prefix.clone().unwrap_or_default();
                if prefix.len() > MAX_PREFIX_LEN
                    || !prefix.bytes().all(|b| b == b' ' || b.is_ascii_graphic())
                {
                    return Err(ConfigError::new(
                        "prefix",
                        format!("at most {MAX_PREFIX_LEN} printable ASCII characters"),
                    ));
                }
                Ok(Self::Header { name, prefix })
            }
            (None, Some(cookie), None) => {
                if cookie.is_empty()
                    || cookie.len() > MAX_COOKIE_NAME_LEN
                    || !cookie
                        .bytes()
                        .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b))
                {
                    return Err(ConfigError::new(
                        "cookie",
                        "expected a cookie name (RFC 6265 token characters)",
                    ));
                }
                Ok(Self::Cookie {
                    name: cookie.clone(),
                })
            }
            (None, Some(_), Some(_)) => Err(ConfigError::new(
                "prefix",
                "`prefix` goes with `header`, not `cookie`",
            )),
            _ => Err(ConfigError::new(
                "",
                "exactly one of `header` or `cookie` is required",
            )),
        }
    }

    /// The header this source reads (`cookie` for cookies).
    #[must_use]
    pub fn header_name(&self) -> &str {
        match self {
            Self::Header { name, .. } => name,
            Self::Cookie { .. } => "cookie",
        }
    }

    /// The token this source finds in `request`: `None` when the source is absent (header
    /// missing, prefix not matching, cookie not set); `Some(Err(TooLarge))` when it is longer
    /// than `max_len` (checked before anything looks inside it).
    pub fn extract(
        &self,
        request: &impl HttpRequest,
        max_len: usize,
    ) -> Option<Result<String, TokenError>> {
        let value = request.header(self.header_name())?;
        let token = match self {
            Self::Header { name, .. } if request.header_count(name) > 1 => {
                // The same reasoning as for a doubled cookie: never verify one copy and let
                // the upstream read another.
                return Some(Err(TokenError::Malformed {
                    reason: "the token header is sent more than once",
                }));
            }
            Self::Header { prefix, .. } => {
                let head = value.get(..prefix.len())?;
                if !head.eq_ignore_ascii_case(prefix) {
                    return None;
                }
                value.get(prefix.len()..)?.trim_matches([' ', '\t'])
            }
            Self::Cookie { name } => {
                // Two cookies of that name (cookie tossing): keygate would verify one and the
                // upstream might read the other, so neither is trusted.
                let mut found = cookie_values(&value, name);
                let first = found.next()?;
                if found.next().is_some() {
                    return Some(Err(TokenError::Malformed {
                        reason: "the token cookie is sent more than once",
                    }));
                }
                first
            }
        };
        if token.len() > max_len {
            return Some(Err(TokenError::TooLarge { max: max_len }));
        }
        Some(Ok(token.to_owned()))
    }
}

/// The values of the cookies called `name` in a `Cookie` header (quotes removed).
fn cookie_values<'a>(header: &'a str, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    header.split(';').filter_map(move |pair| {
        let (k, v) = pair.split_once('=')?;
        if k.trim_matches([' ', '\t']) != name {
            return None;
        }
        let v = v.trim_matches([' ', '\t']);
        Some(
            v.strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v),
        )
    })
}

/// Compiles `token_sources` (default: Authorization Bearer).
///
/// # Errors
/// [`ConfigError`] on `token_sources` or `token_sources[i].<field>`.
pub fn compile_sources(
    configs: Option<&[TokenSourceConfig]>,
) -> Result<Vec<TokenSource>, ConfigError> {
    let Some(configs) = configs else {
        return Ok(vec![TokenSource::bearer()]);
    };
    if configs.is_empty() || configs.len() > MAX_TOKEN_SOURCES {
        return Err(ConfigError::new(
            "token_sources",
            format!(
                "give 1 to {MAX_TOKEN_SOURCES} sources, or leave it out for Authorization: Bearer"
            ),
        ));
    }
    configs
        .iter()
        .enumerate()
        .map(|(i, c)| TokenSource::new(c).map_err(|e| e.within(&format!("token_sources[{i}]"))))
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::gateway::request::MockRequest;
    use crate::ErrorCode;
    use proptest::prelude::*;

    fn sources(json: &str) -> Result<Vec<TokenSource>, ConfigError> {
        let c: Vec<TokenSourceConfig> = serde_json::from_str(json).unwrap();
        compile_sources(Some(&c))
    }

    fn found(s: &TokenSource, headers: &[(&str, &str)]) -> Option<String> {
        let r = MockRequest::get("/").with_headers(headers);
        s.extract(&r, 100).map(|t| t.unwrap())
    }

    #[test]
    fn bearer_ok() {
        let s = compile_sources(None).unwrap();
        assert_eq!(s, [TokenSource::bearer()]);
        let b = &s[0];
        assert_eq!(
            found(b, &[("authorization", "Bearer abc")]).as_deref(),
            Some("abc")
        );
        assert_eq!(
            found(b, &[("authorization", "bearer  abc ")]).as_deref(),
            Some("abc")
        );
        assert_eq!(found(b, &[("authorization", "Basic abc")]), None);
        assert_eq!(found(b, &[("authorization", "Bear")]), None);
        assert_eq!(
            found(b, &[("authorization", "Bearer ")]).as_deref(),
            Some("")
        );
        assert_eq!(found(b, &[]), None);
        // A multibyte character where the prefix ends is not a match, not a panic.
        assert_eq!(found(b, &[("authorization", "Beare\u{e9}x")]), None);
    }

    #[test]
    fn cookie_ok() {
        let s = sources(r#"[{"cookie": "__Host-access"}]"#).unwrap();
        let c = &s[0];
        let h = |v: &str| found(c, &[("cookie", v)]);
        assert_eq!(h("a=b; __Host-access=tok").as_deref(), Some("tok"));
        assert_eq!(h("__Host-access=\"tok\";x=y").as_deref(), Some("tok"));
        let twice = MockRequest::get("/")
            .with_headers(&[("cookie", "__Host-access=one; __Host-access=two")]);
        assert!(matches!(
            c.extract(&twice, 100),
            Some(Err(TokenError::Malformed { .. }))
        ));
        assert_eq!(h("x__Host-access=tok"), None);
        assert_eq!(h("garbage;;;="), None);
    }

    #[test]
    fn too_large_fails() {
        let b = TokenSource::bearer();
        let long = format!("Bearer {}", "a".repeat(101));
        let r = MockRequest::get("/").with_headers(&[("authorization", &long)]);
        assert_eq!(
            b.extract(&r, 100).unwrap().unwrap_err().code(),
            "token_too_large"
        );
        let ok = format!("Bearer {}", "a".repeat(100));
        let r = MockRequest::get("/").with_headers(&[("authorization", &ok)]);
        assert!(b.extract(&r, 100).unwrap().is_ok());
    }

    #[test]
    fn config_bad_fails() {
        let cases = [
            ("[]", "token_sources"),
            (r#"[{"header": "a b"}]"#, "token_sources[0].header"),
            (
                r#"[{"header": "x", "prefix": "Bearer\n"}]"#,
                "token_sources[0].prefix",
            ),
            (r#"[{"cookie": "a;b"}]"#, "token_sources[0].cookie"),
            (
                r#"[{"cookie": "a", "prefix": "B "}]"#,
                "token_sources[0].prefix",
            ),
            (r#"[{"header": "a"}, {}]"#, "token_sources[1]"),
            (r#"[{"header": "a", "cookie": "b"}]"#, "token_sources[0]"),
        ];
        for (json, field) in cases {
            assert_eq!(sources(json).unwrap_err().field, field, "{json}");
        }
        let s = sources(r#"[{"header": "X-Token"}]"#).unwrap();
        assert_eq!(s[0].header_name(), "x-token");
    }

    proptest! {
        #[test]
        fn extract_arbitrary_never_panics_ok(v in "\\PC{0,64}") {
            for s in [TokenSource::bearer(), TokenSource::Cookie { name: "t".into() }] {
                let r = MockRequest::get("/").with_headers(&[("authorization", &v), ("cookie", &v)]);
                if let Some(Ok(t)) = s.extract(&r, 32) {
                    prop_assert!(t.len() <= 32);
                }
            }
        }
    }
}
