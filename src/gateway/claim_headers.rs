//! `claims_to_headers`: verified claims passed to the upstream as request headers.

use crate::ratelimit::is_header_name;
use crate::token::Claims;
use crate::ConfigError;
use serde_json::Value;
use std::collections::BTreeMap;

/// Most `claims_to_headers` entries.
pub const MAX_CLAIM_HEADERS: usize = 32;
/// Longest claim name.
pub const MAX_CLAIM_NAME_LEN: usize = 128;
/// Longest header value set from a claim; a longer value is not set (the header stays
/// removed).
pub const MAX_CLAIM_HEADER_VALUE_LEN: usize = 4096;

/// Headers a claim may never be written to: framing, routing and credentials.
const RESERVED: [&str; 13] = [
    "authorization",
    "connection",
    "content-length",
    "content-type",
    "cookie",
    "expect",
    "host",
    "keep-alive",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "transfer-encoding",
    "upgrade",
];

/// The compiled `claims_to_headers` map.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClaimHeaders {
    pairs: Vec<(String, String)>,
    names: Vec<String>,
}

impl ClaimHeaders {
    /// Validates the map. `token_headers` are the headers tokens are read from, which a claim
    /// header must not replace.
    ///
    /// # Errors
    /// [`ConfigError`] on `claims_to_headers` or `claims_to_headers.<claim>`.
    pub fn new(
        map: &BTreeMap<String, String>,
        token_headers: &[&str],
    ) -> Result<Self, ConfigError> {
        if map.len() > MAX_CLAIM_HEADERS {
            return Err(ConfigError::new(
                "claims_to_headers",
                format!("at most {MAX_CLAIM_HEADERS} entries"),
            ));
        }
        let mut pairs = Vec::with_capacity(map.len());
        let mut names: Vec<String> = Vec::with_capacity(map.len());
        for (claim, header) in map {
            let field = || format!("claims_to_headers.{claim}");
            if claim.is_empty()
                || claim.len() > MAX_CLAIM_NAME_LEN
                || !claim.bytes().all(|b| b.is_ascii_graphic())
            {
                return Err(ConfigError::new(
                    "claims_to_headers",
                    format!("claim names are 1 to {MAX_CLAIM_NAME_LEN} printable ASCII characters"),
                ));
            }
            if !is_header_name(header) {
                return Err(ConfigError::new(
                    field(),
                    "expected a lowercase HTTP header name such as \"x-user-id\"",
                ));
            }
            if RESERVED.contains(&header.as_str()) || token_headers.contains(&header.as_str()) {
                return Err(ConfigError::new(
                    field(),
                    "this header carries credentials or framing; choose an x- header",
                ));
            }
            if names.contains(header) {
                return Err(ConfigError::new(field(), "two claims map to this header"));
            }
            names.push(header.clone());
            pairs.push((claim.clone(), header.clone()));
        }
        Ok(Self { pairs, names })
    }

    /// Every configured header name (removed from each request).
    #[must_use]
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The headers to set for `claims`. A claim that is absent, an object, or whose value
    /// is too long or holds control characters gives no header.
    #[must_use]
    pub fn values(&self, claims: &Claims) -> Vec<(&str, String)> {
        self.pairs
            .iter()
            .filter_map(|(claim, header)| {
                let v = claim_value(claims, claim)?;
                header_safe(&v).then_some((header.as_str(), v))
            })
            .collect()
    }
}

fn claim_value(c: &Claims, claim: &str) -> Option<String> {
    // Arrays are joined with `,`; an element holding a `,` would read as two, so no header.
    let list = |v: &[String]| (!v.iter().any(|e| e.contains(','))).then(|| v.join(","));
    match claim {
        "sub" => Some(c.sub.clone()),
        "type" => Some(c.token_type.as_str().to_owned()),
        "roles" => list(&c.roles),
        "permissions" => list(&c.permissions),
        "amr" => list(&c.amr),
        "aud" => list(&c.aud),
        "iat" => Some(c.iat.to_string()),
        "exp" => Some(c.exp.to_string()),
        "nbf" => c.nbf.map(|v| v.to_string()),
        "gen" => c.gen.map(|v| v.to_string()),
        "iss" => c.iss.clone(),
        "jti" => c.jti.clone(),
        "sid" => c.sid.clone(),
        "fam" => c.fam.clone(),
        other => match c.extra.get(other)? {
            Value::Array(items) => items
                .iter()
                .map(scalar)
                .collect::<Option<Vec<_>>>()
                .and_then(|v| list(&v)),
            v => scalar(v),
        },
    }
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

/// Bounded, and no control characters (CR/LF/NUL would split or truncate the header).
fn header_safe(v: &str) -> bool {
    v.len() <= MAX_CLAIM_HEADER_VALUE_LEN && !v.chars().any(|c| c.is_control() && c != '\t')
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    }

    #[test]
    fn values_ok() {
        let h = ClaimHeaders::new(
            &map(&[
                ("sub", "x-user-id"),
                ("roles", "x-user-roles"),
                ("tenant", "x-tenant"),
                ("groups", "x-groups"),
                ("obj", "x-obj"),
                ("nbf", "x-nbf"),
            ]),
            &["authorization"],
        )
        .unwrap();
        assert_eq!(h.names().len(), 6);
        let mut c = Claims::access("u1", vec!["a".into(), "b".into()], 100, 60);
        c.extra.insert("tenant".into(), Value::from(7));
        c.extra
            .insert("groups".into(), serde_json::json!(["g1", true]));
        c.extra.insert("obj".into(), serde_json::json!({"a": 1}));
        let mut v = h.values(&c);
        v.sort();
        assert_eq!(
            v,
            [
                ("x-groups", "g1,true".to_owned()),
                ("x-tenant", "7".to_owned()),
                ("x-user-id", "u1".to_owned()),
                ("x-user-roles", "a,b".to_owned()),
            ]
        );
    }

    #[test]
    fn unsafe_values_dropped_fails() {
        let h = ClaimHeaders::new(&map(&[("sub", "x-user-id")]), &[]).unwrap();
        let c = Claims::access("evil\r\nx-admin: 1", vec![], 100, 60);
        assert!(h.values(&c).is_empty());
        let c = Claims::access("a".repeat(MAX_CLAIM_HEADER_VALUE_LEN + 1), vec![], 100, 60);
        assert!(h.values(&c).is_empty());
    }

    #[test]
    fn config_bad_fails() {
        let cases = [
            (map(&[("sub", "X-User")]), "claims_to_headers.sub"),
            (map(&[("sub", "authorization")]), "claims_to_headers.sub"),
            (map(&[("sub", "x-token")]), "claims_to_headers.sub"),
            (map(&[("sub", "host")]), "claims_to_headers.sub"),
            (
                map(&[("sub", "x-a"), ("roles", "x-a")]),
                "claims_to_headers.sub",
            ),
            (map(&[("", "x-a")]), "claims_to_headers"),
        ];
        for (m, field) in cases {
            let e = ClaimHeaders::new(&m, &["x-token"]).unwrap_err();
            assert_eq!(e.field, field, "{m:?}");
        }
    }
}
