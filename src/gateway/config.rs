//! The filter's configuration document: the Envoy plugin `configuration` JSON.

use super::jwks::RemoteJwksConfig;
use super::rls::RateLimitServiceConfig;
use crate::json::object_only;
use crate::json::tree::{from_tree, Tree};
use crate::policy::RuleConfig;
use crate::ratelimit::RateLimitRuleConfig;
use crate::token::Jwks;
use crate::ConfigError;
use serde::Deserialize;
use std::collections::BTreeMap;

/// Longest configuration document accepted, in bytes.
pub const MAX_CONFIG_LEN: usize = 1024 * 1024;

/// The plugin configuration. Field names are the public contract (README, examples, tests).
///
/// ```json
/// {"issuer": "https://auth.example.com", "audiences": ["api"],
///  "jwks": {"keys": [{"kty": "oct", "kid": "k1", "alg": "HS256", "k": "…"}]},
///  "token_sources": [{"header": "authorization", "prefix": "Bearer "}, {"cookie": "__Host-access"}],
///  "leeway_secs": 30, "roles": {"admin": ["*"]}, "rules": [{"prefix": "/", "allow": "authenticated"}],
///  "rate_limits": [{"prefix": "/api/", "key": "sub", "limit": ["50/hour", "200/day"]}],
///  "claims_to_headers": {"sub": "x-user-id", "roles": "x-user-roles"}}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct GatewayConfig {
    /// Required `iss` of every token. Defaults to none (not checked).
    #[serde(default)]
    pub issuer: Option<String>,
    /// Accepted audiences: a token's `aud` must contain one. Defaults to none, and then a
    /// token that carries an `aud` is refused (RFC 7519 §4.1.3: it was meant for someone).
    #[serde(default)]
    pub audiences: Vec<String>,
    /// Inline JWK Set of verifying keys (`oct` HS256/384/512, `OKP` Ed25519, `EC` P-256,
    /// `RSA`); a token's `kid` selects the key, a key's `alg` pins the algorithm. Defaults to
    /// none; this or `remote_jwks` (or both) is required.
    #[serde(default)]
    pub jwks: Option<Jwks>,
    /// The issuer's JWK Set, fetched through a proxy cluster and cached (see
    /// [`super::jwks`]). Defaults to none.
    #[serde(default)]
    pub remote_jwks: Option<RemoteJwksConfig>,
    /// Where to look for the token, in order; the first source present is used. Defaults to
    /// `[{"header": "authorization", "prefix": "Bearer "}]`.
    #[serde(default)]
    pub token_sources: Option<Vec<TokenSourceConfig>>,
    /// Clock skew tolerated on `exp`/`nbf`/`iat`, in seconds. Defaults to 30; at most 300.
    #[serde(default)]
    pub leeway_secs: Option<u64>,
    /// Role → permission grants (`"*"`, `"patients:*"`, `"patients:read"`). Defaults to none.
    #[serde(default, deserialize_with = "crate::json::unique_map")]
    pub roles: BTreeMap<String, Vec<String>>,
    /// Ordered access rules; the first match decides, no match is 403. Defaults to none
    /// (every request refused).
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
    /// Rate limits; every matching one applies. Defaults to none.
    #[serde(default)]
    pub rate_limits: Vec<RateLimitRuleConfig>,
    /// The rate-limit service (Envoy's RLS v3) that counts `scope: "global"` rules for the
    /// whole fleet. Defaults to none (then no rule may be global).
    #[serde(default)]
    pub rate_limit_service: Option<RateLimitServiceConfig>,
    /// Claim name → request header set for the upstream (arrays joined by `,`). These headers
    /// are always removed from the incoming request first. Defaults to none.
    #[serde(default, deserialize_with = "crate::json::unique_map")]
    pub claims_to_headers: BTreeMap<String, String>,
    /// Longest token accepted, in bytes, checked before any decoding. Defaults to 8192;
    /// 256..=65536.
    #[serde(default)]
    pub max_token_bytes: Option<usize>,
    /// `"enforce"`: refusals are sent. `"shadow"`: every decision is computed, counted
    /// (`keygate.shadow.*`) and each would-be refusal logged once, but every request continues
    /// upstream unchanged except for the claim headers. Defaults to `"enforce"`.
    #[serde(default)]
    pub mode: Mode,
    /// Whether the token (header or cookie) goes on to the upstream. `false` removes it, like
    /// `jwt_authn`'s `forward: false`. Defaults to `true`.
    #[serde(default = "yes")]
    pub forward_token: bool,
}

fn yes() -> bool {
    true
}

object_only!(GatewayConfig, "the keygate configuration object");

/// How refusals are applied (`mode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Mode {
    /// Refusals are answered (`"enforce"`).
    #[default]
    Enforce,
    /// Refusals are only counted and logged (`"shadow"`).
    Shadow,
}

impl std::str::FromStr for Mode {
    type Err = &'static str;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "enforce" => Ok(Self::Enforce),
            "shadow" => Ok(Self::Shadow),
            _ => Err("expected \"enforce\" or \"shadow\""),
        }
    }
}

impl<'de> Deserialize<'de> for Mode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::json::from_str_only(d, "\"enforce\" or \"shadow\"")
    }
}

/// One `token_sources` entry: `{"header": "authorization", "prefix": "Bearer "}` or
/// `{"cookie": "__Host-access"}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct TokenSourceConfig {
    /// Request header holding the token (case-insensitive). Defaults to none; exactly one of
    /// `header`/`cookie`.
    pub header: Option<String>,
    /// Text before the token in the header, matched case-insensitively (`"Bearer "`). Defaults
    /// to none (the whole value is the token). Only with `header`.
    pub prefix: Option<String>,
    /// Cookie holding the token. Defaults to none.
    pub cookie: Option<String>,
}

object_only!(TokenSourceConfig, "a token source object");

impl GatewayConfig {
    /// Parses the JSON document, naming the offending field on error.
    ///
    /// # Errors
    /// [`ConfigError`] with the JSON path of the bad value (`rate_limits[0].key`,
    /// `jwks.keys[1]`, `isuser` for an unknown field, …).
    pub fn from_json(bytes: &[u8]) -> Result<Self, ConfigError> {
        if bytes.len() > MAX_CONFIG_LEN {
            return Err(ConfigError::new(
                "configuration",
                format!("at most {MAX_CONFIG_LEN} bytes"),
            ));
        }
        parse_document(bytes)
    }
}

/// Parses a JSON configuration document into `T`: first every object of the document is
/// checked for a repeated member name (maps and ignored members would silently keep the
/// last), then it is typed. Errors name the JSON path of the offending value.
///
/// # Errors
/// [`ConfigError`] with the path (`claims_to_headers.sub`, `leeway_secs`, `rules[0]`), or
/// `configuration` for a syntax error.
pub(crate) fn parse_document<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
) -> Result<T, ConfigError> {
    parse_document_at(bytes, "configuration")
}

/// [`parse_document`] naming an error of the document as a whole `top` (`""` for the npm
/// module's config, whose callers know no name for it).
///
/// # Errors
/// As [`parse_document`].
pub(crate) fn parse_document_at<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    top: &str,
) -> Result<T, ConfigError> {
    // serde_json reads every byte once, into a tree (syntax, repeated names); the typed read
    // walks the tree and names the path itself.
    let tree: Tree = serde_json::from_slice(bytes).map_err(|e| located(bytes, top, &e))?;
    from_tree::<T>(&tree).map_err(|e| {
        let (message, path) = e.into_parts();
        let field = match path {
            Some(path) if !path.is_empty() => path,
            _ => top.to_owned(),
        };
        ConfigError::new(field, redact(message))
    })
}

/// A serde_json error of the document's bytes as a [`ConfigError`] naming the path of the
/// value at its position.
fn located(bytes: &[u8], top: &str, e: &serde_json::Error) -> ConfigError {
    let text = e.to_string();
    // A number too large for any float (`1e400`) is a syntax error to serde_json, but
    // the operator needs to know which field it was in.
    let syntax = matches!(
        e.classify(),
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof
    ) && !text.starts_with("number out of range");
    // serde_json reports a missing field after the object's `}`, and so it does for a
    // custom error in the object's last member: only the message tells them apart.
    let missing = text.starts_with("missing field");
    let path = match offset_of(bytes, e.line(), e.column()) {
        Some(at) if !syntax => path_at(bytes, at, !missing),
        _ => String::new(),
    };
    // The path names the offending field itself (an unknown one included).
    let field = if path.is_empty() {
        top.to_owned()
    } else {
        path
    };
    ConfigError::new(field, strip_position(e))
}

/// The byte offset of serde_json's (1-based line, bytes-into-line column) error position.
fn offset_of(bytes: &[u8], line: usize, column: usize) -> Option<usize> {
    let start = match line {
        0 => return None,
        1 => 0,
        l => {
            bytes
                .iter()
                .enumerate()
                .filter(|(_, b)| **b == b'\n')
                .nth(l - 2)?
                .0
                + 1
        }
    };
    start.checked_add(column)
}

/// The JSON path (`rate_limits[0].limit`, `jwks.keys[1]`, `isuser`) of the value that ends at
/// byte `at` of `json`: serde_json reports a value's error just after the value (an unknown
/// field just after its key), so the members and indices open at that point name it. When
/// `at` follows an object's closing `}` and `into_closed`, the path goes on to that object's
/// last member (where serde_json puts a custom error raised by it).
/// Instead of `serde_path_to_error`, whose wrappers around every config type cost ~40 KB of
/// the filter's wasm (V8 compiles it at Envoy start).
fn path_at(json: &[u8], at: usize, into_closed: bool) -> String {
    enum Frame {
        Object { key: Option<String>, want_key: bool },
        Array { index: usize },
    }
    let mut stack: Vec<Frame> = Vec::new();
    let mut string: Option<(Vec<u8>, bool)> = None; // (bytes, is an object key)
    let mut escaped = false;
    // The last key of an object whose `}` is the last non-blank byte seen.
    let mut closed: Option<String> = None;
    for &b in json.iter().take(at) {
        if !b.is_ascii_whitespace() {
            closed = None;
        }
        if let Some((text, is_key)) = &mut string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                if *is_key {
                    let key = String::from_utf8_lossy(text).into_owned();
                    if let Some(Frame::Object { key: k, want_key }) = stack.last_mut() {
                        *k = Some(key);
                        *want_key = false;
                    }
                }
                string = None;
                continue;
            }
            if *is_key {
                text.push(b);
            }
            continue;
        }
        match b {
            b'"' => {
                let is_key = matches!(stack.last(), Some(Frame::Object { want_key: true, .. }));
                string = Some((Vec::new(), is_key));
            }
            b'{' => stack.push(Frame::Object {
                key: None,
                want_key: true,
            }),
            b'[' => stack.push(Frame::Array { index: 0 }),
            b'}' => {
                if let Some(Frame::Object { key, .. }) = stack.pop() {
                    closed = key;
                }
            }
            b']' => {
                stack.pop();
            }
            b',' => match stack.last_mut() {
                Some(Frame::Object { key, want_key }) => {
                    *key = None;
                    *want_key = true;
                }
                Some(Frame::Array { index }) => *index = index.saturating_add(1),
                None => {}
            },
            _ => {}
        }
    }
    let mut path = String::new();
    for frame in &stack {
        match frame {
            Frame::Object { key: Some(k), .. } => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
            }
            Frame::Object { key: None, .. } => break,
            Frame::Array { index } => {
                path.push('[');
                path.push_str(&index.to_string());
                path.push(']');
            }
        }
    }
    if let (true, Some(key)) = (into_closed, closed) {
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(&key);
    }
    path
}

/// serde_json's message without " at line L column C" (the field path says where) and without
/// a quoted string value, which could be a secret (`"jwks": "<secret>"`).
fn strip_position(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let text = match (e.line(), text.rfind(" at line ")) {
        (l, Some(at)) if l > 0 && e.classify() != serde_json::error::Category::Syntax => {
            text.get(..at).unwrap_or(&text).to_owned()
        }
        _ => text,
    };
    redact(text)
}

/// The message without a quoted string value, which could be a secret.
fn redact(text: String) -> String {
    match text.split_once("string \"") {
        Some((head, tail)) => match tail.rsplit_once("\", expected") {
            Some((_, expected)) => format!("{head}string, expected{expected}"),
            None => format!("{head}string"),
        },
        None => text,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MIN: &str = r#"{"jwks": {"keys": []}}"#;

    #[test]
    fn minimal_ok() {
        let c = GatewayConfig::from_json(MIN.as_bytes()).unwrap();
        assert!(c.issuer.is_none() && c.rules.is_empty() && c.token_sources.is_none());
    }

    #[test]
    fn errors_name_the_field_fails() {
        let cases = [
            (r#"{"jwks": {"keys": []}, "isuser": "x"}"#, "isuser"),
            (
                r#"{"jwks": {"keys": []}, "rate_limits": [{"prefix": "/", "key": "ip", "limit": 5}]}"#,
                "rate_limits[0].limit",
            ),
            (
                r#"{"jwks": {"keys": []}, "rules": [{"prefix": "/"}, {"prefix": "/", "allow": "everyone"}]}"#,
                "rules[1].allow",
            ),
            (
                r#"{"jwks": {"keys": []}, "token_sources": [{"header": "a", "cookei": "b"}]}"#,
                "token_sources[0].cookei",
            ),
            (r#"{"jwks": {"keys": [{"k": "x"}]}}"#, "jwks.keys[0]"),
            (r#"{"issuer": 3}"#, "issuer"),
            ("{not json", "configuration"),
            ("", "configuration"),
            (
                r#"{"jwks": {"keys": []}, "leeway_secs": -1}"#,
                "leeway_secs",
            ),
            // A custom error in a middle member, across lines, and after nested values.
            (
                "{\"jwks\": {\"keys\": []},\n \"rate_limits\": [{\"prefix\": \"/\", \"methods\": [\"GET\"],\n \"limit\": [5], \"key\": \"ip\"}]}",
                "rate_limits[0].limit",
            ),
            (
                r#"{"jwks": {"keys": []}, "roles": {"a\"}": ["x"], "b": "x"}}"#,
                "roles.b",
            ),
            (
                r#"{"jwks": {"keys": []}, "rules": [{"prefix": "/", "allow": "public"}, {"prefix": "/"}, {"path": 3}]}"#,
                "rules[2].path",
            ),
            (r#"{"jwks": {"keys": [{"kty": "oct"}, {}]}}"#, "jwks.keys[1]"),
            // A name written with escapes is named decoded.
            (r#"{"jwks": {"keys": []}, "le\u0065way_secs": -1}"#, "leeway_secs"),
            (r#"{"jwks": {"keys": []}, "rules": [{"\u0070refix": 5}]}"#, "rules[0].prefix"),
        ];
        for (json, field) in cases {
            let e = GatewayConfig::from_json(json.as_bytes()).unwrap_err();
            assert_eq!(e.field, field, "{json}: {e}");
            assert!(!e.message.is_empty());
        }
        let e = GatewayConfig::from_json(br#"{"remote_jwks": {"uri": 5}}"#).unwrap_err();
        assert_eq!(e.field, "remote_jwks.uri", "{e}");
        let e = GatewayConfig::from_json(br#"{"remote_jwks": {"cache": 5}}"#).unwrap_err();
        assert_eq!(e.field, "remote_jwks.cache", "{e}");
        let e = GatewayConfig::from_json(br#"{"jwks": "s3cr3t-value"}"#).unwrap_err();
        assert_eq!(e.field, "jwks");
        assert!(!e.message.contains("s3cr3t"), "{e}");
        assert!(e.message.contains("expected"), "{e}");
        let big = vec![b' '; MAX_CONFIG_LEN + 1];
        assert_eq!(
            GatewayConfig::from_json(&big).unwrap_err().field,
            "configuration"
        );
    }

    #[test]
    fn path_at_ok() {
        let j = br#"{"a": [1, {"b\"c": 2}], "d": {"e": 3}}"#;
        let at = |needle: &str| {
            j.windows(needle.len())
                .position(|w| w == needle.as_bytes())
                .unwrap()
                + needle.len()
        };
        assert_eq!(path_at(j, at("1"), true), "a[0]");
        assert_eq!(path_at(j, at("2"), true), r#"a[1].b\"c"#);
        assert_eq!(path_at(j, at("2}"), true), r#"a[1].b\"c"#);
        assert_eq!(path_at(j, at("2}"), false), "a[1]");
        assert_eq!(path_at(j, at("3}"), true), "d.e");
        assert_eq!(path_at(j, j.len(), false), "");
        assert_eq!(path_at(j, j.len() + 10, false), "");
        assert_eq!(offset_of(b"ab\ncd", 2, 1), Some(4));
        assert_eq!(offset_of(b"ab\ncd", 3, 1), None);
        assert_eq!(offset_of(b"ab", 0, 1), None);
    }

    proptest! {
        #[test]
        fn path_at_never_panics(s in "\\PC{0,80}", at in 0usize..100, closed in any::<bool>()) {
            let p = path_at(s.as_bytes(), at, closed);
            prop_assert!(p.len() <= s.len() + 8 * s.len().max(1));
        }

        #[test]
        fn arbitrary_json_never_panics_ok(s in "\\PC{0,120}") {
            if let Err(e) = GatewayConfig::from_json(s.as_bytes()) {
                prop_assert!(!e.field.is_empty());
            }
        }
    }
}

#[cfg(test)]
#[path = "config_diff_tests.rs"]
pub(super) mod diff_tests;
