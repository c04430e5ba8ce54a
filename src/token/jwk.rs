//! JSON Web Keys (RFC 7517) as plain data; [`super::SigningKey`], [`super::VerifyingKey`] and
//! [`super::KeySet`] validate them.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ConfigError;

/// Longest JSON text accepted for one JWK.
pub const MAX_JWK_LEN: usize = 16 * 1024;
/// Longest JSON text accepted for a JWKS document.
pub const MAX_JWKS_LEN: usize = 256 * 1024;

/// One JSON Web Key. Members keygate does not use (`key_ops`, `x5c`, …) are ignored on input
/// and absent on output. `Debug` never shows `k` or `d`.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct Jwk {
    /// Key type: `oct`, `OKP`, `EC` or `RSA`.
    pub kty: String,
    /// Key id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// The algorithm this key is for (pins it: the key is never used with another).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    /// Intended use; keys with a `use` other than `sig` are refused.
    #[serde(rename = "use", default, skip_serializing_if = "Option::is_none")]
    pub key_use: Option<String>,
    /// Symmetric key (`oct`), base64url. Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k: Option<String>,
    /// Curve: `Ed25519` (OKP) or `P-256` (EC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    /// Public key (OKP) or x coordinate (EC), base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    /// y coordinate (EC), base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    /// Private key (OKP seed / EC scalar), base64url. Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub d: Option<String>,
    /// RSA modulus, base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    /// RSA public exponent, base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
}

crate::json::object_only!(Jwk, "a JWK object", serialize);

impl fmt::Debug for Jwk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redact = |v: &Option<String>| v.as_ref().map(|_| "[redacted]");
        f.debug_struct("Jwk")
            .field("kty", &self.kty)
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("use", &self.key_use)
            .field("k", &redact(&self.k))
            .field("crv", &self.crv)
            .field("x", &self.x)
            .field("y", &self.y)
            .field("d", &redact(&self.d))
            .field("n", &self.n)
            .field("e", &self.e)
            .finish()
    }
}

impl Jwk {
    /// The RFC 7638 SHA-256 thumbprint (base64url), a good `kid`. `None` when a member the
    /// thumbprint needs is missing or `kty` is unknown.
    #[must_use]
    pub fn thumbprint(&self) -> Option<String> {
        let mut m: BTreeMap<&str, &str> = BTreeMap::new();
        m.insert("kty", &self.kty);
        let need: &[(&str, &Option<String>)] = match self.kty.as_str() {
            "oct" => &[("k", &self.k)],
            "OKP" => &[("crv", &self.crv), ("x", &self.x)],
            "EC" => &[("crv", &self.crv), ("x", &self.x), ("y", &self.y)],
            "RSA" => &[("e", &self.e), ("n", &self.n)],
            _ => return None,
        };
        for (name, v) in need {
            m.insert(name, v.as_deref()?);
        }
        // BTreeMap gives the lexicographic member order RFC 7638 §3.3 requires.
        let json = serde_json::to_string(&m).ok()?;
        Some(b64u_encode(Sha256::digest(json.as_bytes())))
    }

    /// The same key without private members (`k`, `d`); `None` for `oct` keys, which have no
    /// public part.
    #[must_use]
    pub fn to_public(&self) -> Option<Jwk> {
        if self.kty == "oct" {
            return None;
        }
        Some(Jwk {
            k: None,
            d: None,
            ..self.clone()
        })
    }
}

impl fmt::Display for Jwk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&serde_json::to_string(self).map_err(|_| fmt::Error)?)
    }
}

impl FromStr for Jwk {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_json(s, MAX_JWK_LEN, "jwk")
    }
}

/// A JWK Set document: `{"keys": [...]}`. Other members are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct Jwks {
    /// The keys.
    pub keys: Vec<Jwk>,
}

crate::json::object_only!(Jwks, "a JWK Set object", serialize);

impl fmt::Display for Jwks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&serde_json::to_string(self).map_err(|_| fmt::Error)?)
    }
}

impl FromStr for Jwks {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_json(s, MAX_JWKS_LEN, "jwks")
    }
}

/// Parses bounded JSON; the error names position only, never content (keys are secret).
fn parse_json<T: serde::de::DeserializeOwned>(
    s: &str,
    max: usize,
    field: &str,
) -> Result<T, ConfigError> {
    if s.len() > max {
        return Err(ConfigError::new(
            field,
            format!("document is larger than {max} bytes"),
        ));
    }
    // Every member name once, at every depth (ignored members included), then typed.
    serde_json::from_str::<crate::json::StrictValue>(s)
        .and_then(|_| serde_json::from_str(s))
        .map_err(|e| {
            let what = match e.classify() {
                serde_json::error::Category::Data => "has a missing or wrongly typed member",
                _ => "is not valid JSON",
            };
            ConfigError::new(
                field,
                format!("{what} (line {}, column {})", e.line(), e.column()),
            )
        })
}

pub(crate) fn b64u_encode(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Strict base64url without padding (canonical trailing bits only).
pub(crate) fn b64u_decode(s: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(s).ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const RFC7638_N: &str = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";

    #[test]
    fn rfc7638_thumbprint_ok() {
        let jwk: Jwk = format!(
            r#"{{"kty":"RSA","n":"{RFC7638_N}","e":"AQAB","alg":"RS256","kid":"2011-04-29"}}"#
        )
        .parse()
        .unwrap();
        assert_eq!(
            jwk.thumbprint().unwrap(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
        assert!(Jwk {
            kty: "RSA".into(),
            ..Jwk::default()
        }
        .thumbprint()
        .is_none());
    }

    #[test]
    fn unknown_members_ignored_and_round_trip_ok() {
        let s = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","key_ops":["verify"],"x5c":[]}],"extra":1}"#;
        let jwks: Jwks = s.parse().unwrap();
        assert_eq!(jwks.keys.len(), 1);
        let again: Jwks = jwks.to_string().parse().unwrap();
        assert_eq!(again, jwks);
        assert!(!jwks.to_string().contains("key_ops"));
    }

    #[test]
    fn debug_redacts_secrets_ok() {
        let jwk = Jwk {
            kty: "oct".into(),
            k: Some("c2VjcmV0LXNlY3JldA".into()),
            d: Some("ZFpk".into()),
            ..Jwk::default()
        };
        let dbg = format!("{jwk:?}");
        assert!(!dbg.contains("c2VjcmV0LXNlY3JldA") && !dbg.contains("ZFpk"));
        assert!(jwk.to_public().is_none());
    }

    #[test]
    fn arrays_and_repeats_fail() {
        for bad in [
            r#"["oct", "k1", "HS256", null, "c2VjcmV0"]"#,
            r#"{"kty":"oct","k":"c2VjcmV0","kid":"a","kid":"b"}"#,
            r#"{"kty":"oct","k":"c2VjcmV0","x5c":[],"x5c":[]}"#,
            r#"{"kty":"oct","k":"c2VjcmV0","ext":{"a":1,"a":1}}"#,
        ] {
            assert!(bad.parse::<Jwk>().is_err(), "{bad}");
            assert!(
                format!(r#"{{"keys":[{bad}]}}"#).parse::<Jwks>().is_err(),
                "{bad}"
            );
        }
        assert!("[[]]".parse::<Jwks>().is_err());
        assert!(r#"{"keys":[],"keys":[]}"#.parse::<Jwks>().is_err());
        assert!(serde_json::from_value::<Jwk>(serde_json::json!(["oct"])).is_err());
        let jwk: Jwk = r#"{"kty":"oct","k":"c2VjcmV0"}"#.parse().unwrap();
        assert_eq!(jwk.to_string(), r#"{"kty":"oct","k":"c2VjcmV0"}"#);
    }

    #[test]
    fn parse_errors_never_echo_content_fails() {
        let e = r#"{"keys":[{"kty":"oct","k":["topsecretvalue"]}]}"#
            .parse::<Jwks>()
            .unwrap_err();
        assert_eq!(e.field, "jwks");
        assert!(!e.message.contains("topsecretvalue"));
        let e = "x".repeat(MAX_JWKS_LEN + 1).parse::<Jwks>().unwrap_err();
        assert!(e.message.contains("larger"));
        assert!(r#"{"kid":"a"}"#.parse::<Jwk>().is_err());
    }

    proptest! {
        #[test]
        fn jwk_parsers_never_panic(s in ".*") {
            let _ = s.parse::<Jwk>().map(|j| j.thumbprint());
            let _ = s.parse::<Jwks>();
        }
    }
}
