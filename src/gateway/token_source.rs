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

    /// The copies of a token this source finds in `request`, as raw bytes, and whether the
    /// source itself is repeated.
    ///
    /// A header source reads every line of its header and every comma-separated element of
    /// each (a proxy joins repeated lines with `,`, and a token never holds one): each element
    /// starting with the prefix is a copy, and when one is, any other element makes the
    /// source repeated (`Basic x, Bearer t` too: the upstream may read either). A cookie
    /// source reads every `Cookie` line, split at `;` and `,`.
    fn copies<'r>(&self, request: &'r impl HttpRequest) -> (Vec<&'r [u8]>, bool) {
        let values = request.header_values(self.header_name());
        let mut found = Vec::new();
        match self {
            Self::Header { prefix, .. } => {
                let mut elements = 0usize;
                for value in values {
                    for element in value.split(|b| *b == b',') {
                        elements += 1;
                        let element = trim(element);
                        let p = prefix.as_bytes();
                        match element.get(..p.len()) {
                            Some(head)
                                if head.eq_ignore_ascii_case(p) && element.len() > p.len() =>
                            {
                                found.push(trim(element.get(p.len()..).unwrap_or_default()));
                            }
                            _ => {}
                        }
                    }
                }
                let repeated = !found.is_empty() && elements > 1;
                (found, repeated)
            }
            Self::Cookie { name } => {
                for value in values {
                    found.extend(cookie_values(value, name.as_bytes()));
                }
                let repeated = found.len() > 1;
                (found, repeated)
            }
        }
    }
}

/// What the configured token sources hold in one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presented {
    /// No source holds a token: the request carries no credentials.
    Absent,
    /// Exactly one copy, found by source `source`: the token, or why it cannot be one
    /// (`token_too_large` before anything looks inside it, `token_malformed` if not UTF-8).
    One {
        /// Index into the compiled sources.
        source: usize,
        /// The token text.
        token: Result<String, TokenError>,
    },
    /// More than one copy: a token header or cookie repeated, or tokens in several sources.
    /// Refused (400 `invalid_request`): keygate must never verify one copy while the
    /// upstream reads another.
    Several,
}

impl Presented {
    /// Whether the request carries any credentials in a configured source.
    #[must_use]
    pub fn is_absent(&self) -> bool {
        matches!(self, Self::Absent)
    }
}

/// What `sources` find in `request`, over every source and every copy.
pub fn presented(sources: &[TokenSource], request: &impl HttpRequest, max_len: usize) -> Presented {
    if request.header_lines_dropped() {
        // A second token may sit in a line never read (an operator may raise Envoy's
        // `max_headers_count` past MAX_HEADERS): uniqueness cannot be shown, so fail closed.
        return Presented::Several;
    }
    let mut one: Option<(usize, &[u8])> = None;
    for (i, source) in sources.iter().enumerate() {
        let (copies, repeated) = source.copies(request);
        if repeated {
            return Presented::Several;
        }
        for copy in copies {
            if one.is_some() {
                return Presented::Several;
            }
            one = Some((i, copy));
        }
    }
    let Some((source, bytes)) = one else {
        return Presented::Absent;
    };
    let token = if bytes.len() > max_len {
        Err(TokenError::TooLarge { max: max_len })
    } else {
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| TokenError::Malformed {
                reason: "the token is not UTF-8",
            })
    };
    Presented::One { source, token }
}

/// The `Cookie` header without cookie `name` (for `forward_token: false`): every line's
/// other cookies joined with `; `, or `None` when no other cookie is left.
#[must_use]
pub fn cookie_header_without(request: &impl HttpRequest, name: &str) -> Option<Vec<u8>> {
    cookie_header_without_any(request, &[name])
}

/// [`cookie_header_without`] for several cookie names at once (every cookie source, when a
/// token was found more than once).
#[must_use]
pub(crate) fn cookie_header_without_any(
    request: &impl HttpRequest,
    names: &[&str],
) -> Option<Vec<u8>> {
    let mut out: Vec<u8> = Vec::new();
    for value in request.header_values("cookie") {
        // Split as `cookie_values` reads them (`;` and `,`), so no other cookie is lost.
        for piece in value.split(|b| *b == b';' || *b == b',') {
            if names
                .iter()
                .any(|name| cookie_values(piece, name.as_bytes()).next().is_some())
            {
                continue;
            }
            let piece = trim(piece);
            if piece.is_empty() {
                continue;
            }
            if !out.is_empty() {
                out.extend_from_slice(b"; ");
            }
            out.extend_from_slice(piece);
        }
    }
    (!out.is_empty()).then_some(out)
}

fn trim(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| *c != b' ' && *c != b'\t')
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| *c != b' ' && *c != b'\t')
        .map_or(start, |e| e + 1);
    b.get(start..end).unwrap_or_default()
}

/// The values of the cookies called `name` in one `Cookie` line (quotes removed), split at
/// `;` and at `,` (RFC 2965 and some servers split there: a cookie hidden behind a comma
/// still counts).
fn cookie_values<'a, 'n>(
    header: &'a [u8],
    name: &'n [u8],
) -> impl Iterator<Item = &'a [u8]> + use<'a, 'n> {
    header
        .split(|b| *b == b';' || *b == b',')
        .filter_map(move |pair| {
            let eq = pair.iter().position(|b| *b == b'=')?;
            let (k, v) = (pair.get(..eq)?, pair.get(eq + 1..)?);
            if trim(k) != name {
                return None;
            }
            let v = trim(v);
            Some(
                v.strip_prefix(b"\"")
                    .and_then(|v| v.strip_suffix(b"\""))
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
    let sources = configs
        .iter()
        .enumerate()
        .map(|(i, c)| TokenSource::new(c).map_err(|e| e.within(&format!("token_sources[{i}]"))))
        .collect::<Result<Vec<_>, _>>()?;
    for (j, b) in sources.iter().enumerate() {
        if let Some(i) = sources.iter().take(j).position(|a| overlap(a, b)) {
            return Err(ConfigError::new(
                format!("token_sources[{j}]"),
                format!("reads the same token as token_sources[{i}]"),
            ));
        }
    }
    Ok(sources)
}

/// Whether one token could be found by both sources (it would always count twice).
fn overlap(a: &TokenSource, b: &TokenSource) -> bool {
    let starts = |long: &str, short: &str| {
        long.get(..short.len())
            .is_some_and(|h| h.eq_ignore_ascii_case(short))
    };
    match (a, b) {
        (TokenSource::Cookie { name: x }, TokenSource::Cookie { name: y }) => x == y,
        (
            TokenSource::Header { name: x, prefix: p },
            TokenSource::Header { name: y, prefix: q },
        ) => x == y && (starts(p, q) || starts(q, p)),
        _ => false,
    }
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
        match presented(std::slice::from_ref(s), &r, 100) {
            Presented::Absent => None,
            Presented::One { token, .. } => Some(token.unwrap()),
            Presented::Several => Some("<several>".to_owned()),
        }
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
        assert_eq!(found(b, &[("authorization", "Bearer ")]), None);
        assert_eq!(found(b, &[]), None);
        // A multibyte character where the prefix ends is not a match, not a panic.
        assert_eq!(found(b, &[("authorization", "Beare\u{e9}x")]), None);
        // Digest-style parameters without the prefix are not a token.
        assert_eq!(
            found(b, &[("authorization", "Digest a=\"1\", b=\"2\"")]),
            None
        );
    }

    #[test]
    fn repeated_header_fails() {
        let b = TokenSource::bearer();
        for headers in [
            &[("authorization", "Bearer a"), ("authorization", "Bearer b")][..],
            // What Envoy makes of two lines: one value joined with `,`.
            &[("authorization", "Bearer a,Bearer b")],
            &[("authorization", "Bearer a, Bearer b")],
            &[("authorization", "Basic x, Bearer a")],
            &[("authorization", "Bearer a"), ("authorization", "Basic x")],
            &[("authorization", "Bearer a,")],
        ] {
            assert_eq!(
                found(&b, headers).as_deref(),
                Some("<several>"),
                "{headers:?}"
            );
        }
        let x = TokenSource::Header {
            name: "x-token".into(),
            prefix: String::new(),
        };
        assert_eq!(
            found(&x, &[("x-token", "a,b")]).as_deref(),
            Some("<several>")
        );
        assert_eq!(found(&x, &[("x-token", "a")]).as_deref(), Some("a"));
    }

    #[test]
    fn cookie_ok() {
        let s = sources(r#"[{"cookie": "__Host-access"}]"#).unwrap();
        let c = &s[0];
        let h = |v: &str| found(c, &[("cookie", v)]);
        assert_eq!(h("a=b; __Host-access=tok").as_deref(), Some("tok"));
        assert_eq!(h("__Host-access=\"tok\";x=y").as_deref(), Some("tok"));
        assert_eq!(h("x__Host-access=tok"), None);
        assert_eq!(h("garbage;;;="), None);
        // On a later Cookie line only.
        assert_eq!(
            found(c, &[("cookie", "a=b"), ("cookie", "__Host-access=tok")]).as_deref(),
            Some("tok")
        );
    }

    #[test]
    fn repeated_cookie_fails() {
        let s = sources(r#"[{"cookie": "__Host-access"}]"#).unwrap();
        let c = &s[0];
        for headers in [
            &[("cookie", "__Host-access=one; __Host-access=two")][..],
            &[
                ("cookie", "__Host-access=one"),
                ("cookie", "__Host-access=two"),
            ],
            &[
                ("cookie", "a=1"),
                ("cookie", "x=2; __Host-access=one"),
                ("cookie", "__Host-access=one"),
            ],
            &[("cookie", "a=1, __Host-access=one; __Host-access=two")],
        ] {
            assert_eq!(
                found(c, headers).as_deref(),
                Some("<several>"),
                "{headers:?}"
            );
        }
    }

    #[test]
    fn several_sources_fail() {
        let s = sources(r#"[{"header": "authorization", "prefix": "Bearer "}, {"cookie": "t"}]"#)
            .unwrap();
        let r =
            MockRequest::get("/").with_headers(&[("authorization", "Bearer a"), ("cookie", "t=b")]);
        assert_eq!(presented(&s, &r, 100), Presented::Several);
        let r =
            MockRequest::get("/").with_headers(&[("authorization", "Basic a"), ("cookie", "t=b")]);
        assert_eq!(
            presented(&s, &r, 100),
            Presented::One {
                source: 1,
                token: Ok("b".into())
            }
        );
        assert!(presented(&s, &MockRequest::get("/"), 100).is_absent());
    }

    #[test]
    fn non_utf8_token_fails() {
        let b = TokenSource::bearer();
        let r = MockRequest::get("/").with_raw_header("authorization", b"Bearer \xff\xfe");
        assert!(matches!(
            presented(std::slice::from_ref(&b), &r, 100),
            Presented::One {
                token: Err(TokenError::Malformed { .. }),
                ..
            }
        ));
        // Non-UTF-8 bytes in another cookie do not hide the token cookie.
        let c = TokenSource::Cookie { name: "t".into() };
        let r = MockRequest::get("/").with_raw_header("cookie", b"x=\xff; t=tok");
        assert_eq!(
            presented(std::slice::from_ref(&c), &r, 100),
            Presented::One {
                source: 0,
                token: Ok("tok".into())
            }
        );
    }

    #[test]
    fn cookie_header_without_ok() {
        let r = MockRequest::get("/")
            .with_headers(&[("cookie", "a=1; t=tok"), ("cookie", " b=2 ;t=x,c=3")]);
        assert_eq!(
            cookie_header_without(&r, "t").as_deref(),
            Some(&b"a=1; b=2; c=3"[..]),
            "a comma-joined pair is a cookie of its own, kept"
        );
        let r = MockRequest::get("/").with_headers(&[("cookie", "t=tok")]);
        assert_eq!(cookie_header_without(&r, "t"), None);
    }

    #[test]
    fn too_large_fails() {
        let b = TokenSource::bearer();
        let long = format!("Bearer {}", "a".repeat(101));
        let r = MockRequest::get("/").with_headers(&[("authorization", &long)]);
        let Presented::One { token, .. } = presented(std::slice::from_ref(&b), &r, 100) else {
            panic!("one token expected");
        };
        assert_eq!(token.unwrap_err().code(), "token_too_large");
        let ok = format!("Bearer {}", "a".repeat(100));
        let r = MockRequest::get("/").with_headers(&[("authorization", &ok)]);
        assert!(matches!(
            presented(std::slice::from_ref(&b), &r, 100),
            Presented::One { token: Ok(_), .. }
        ));
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
            (r#"[{"cookie": "t"}, {"cookie": "t"}]"#, "token_sources[1]"),
            (
                r#"[{"header": "a", "prefix": "Bearer "}, {"header": "A", "prefix": "bearer"}]"#,
                "token_sources[1]",
            ),
            (
                r#"[{"header": "a"}, {"header": "a", "prefix": "X "}]"#,
                "token_sources[1]",
            ),
        ];
        for (json, field) in cases {
            assert_eq!(sources(json).unwrap_err().field, field, "{json}");
        }
        let s = sources(r#"[{"header": "X-Token"}]"#).unwrap();
        assert_eq!(s[0].header_name(), "x-token");
    }

    proptest! {
        #[test]
        fn presented_arbitrary_never_panics_ok(v in "\\PC{0,64}", w in proptest::collection::vec(any::<u8>(), 0..64)) {
            let all = [TokenSource::bearer(), TokenSource::Cookie { name: "t".into() }];
            let r = MockRequest::get("/")
                .with_headers(&[("authorization", &v), ("cookie", &v)])
                .with_raw_header("cookie", &w)
                .with_raw_header("authorization", &w);
            if let Presented::One { token: Ok(t), .. } = presented(&all, &r, 32) {
                prop_assert!(t.len() <= 32);
            }
            let _ = cookie_header_without(&r, "t");
        }
    }
}
