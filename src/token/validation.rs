//! The single place token checks are configured.

use serde::Deserialize;

use super::claims::{MAX_AUDIENCES, MAX_URI_CLAIM_LEN};
use super::{Algorithm, TokenType};
use crate::ConfigError;

/// Default clock-skew allowance, in seconds.
pub const DEFAULT_LEEWAY_SECS: u64 = 30;
/// Largest accepted leeway, in seconds.
pub const MAX_LEEWAY_SECS: u64 = 300;
/// Default token length limit, in bytes (8 KiB).
pub const DEFAULT_MAX_TOKEN_LEN: usize = 8 * 1024;
/// Smallest configurable token length limit, in bytes.
pub const MIN_MAX_TOKEN_LEN: usize = 256;
/// Largest configurable token length limit, in bytes (64 KiB).
pub const MAX_MAX_TOKEN_LEN: usize = 64 * 1024;

/// What [`super::decode`] checks. Secure by default; checks can only be switched off through
/// [`super::dangerous`].
///
/// As JSON config (`deny_unknown_fields`, every field optional):
/// `{"algorithms": ["EdDSA"], "leeway": 30, "issuer": "https://auth.example.com",
///   "audiences": ["api"], "token_type": "access", "max_token_len": 8192}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawValidation")]
pub struct Validation {
    /// Header `alg` values accepted. A key is additionally only used for its own algorithm.
    /// Defaults to all supported algorithms (HS256, HS384, HS512, EdDSA, ES256, RS256; never
    /// `none`).
    pub algorithms: Vec<Algorithm>,
    /// Seconds of clock skew tolerated for `exp`, `nbf` and `iat`. Defaults to 30
    /// ([`DEFAULT_LEEWAY_SECS`]); at most [`MAX_LEEWAY_SECS`].
    pub leeway: u64,
    /// Required `iss` value. Defaults to `None` (any or no issuer).
    pub issuer: Option<String>,
    /// Accepted audiences: the token's `aud` must contain at least one. Defaults to empty, in
    /// which case a token that carries an `aud` is refused (RFC 7519 §4.1.3).
    pub audiences: Vec<String>,
    /// The `type` a token must have. Defaults to `access`.
    pub token_type: TokenType,
    /// Longest token accepted, in bytes, checked before any decoding. Defaults to 8192
    /// ([`DEFAULT_MAX_TOKEN_LEN`]).
    pub max_token_len: usize,
    /// Whether a future `nbf` is refused. Defaults to `true`; see
    /// [`super::dangerous::skip_nbf_check`].
    pub(crate) check_nbf: bool,
    /// Whether a future `iat` is refused. Defaults to `true`; see
    /// [`super::dangerous::skip_iat_check`].
    pub(crate) check_iat: bool,
}

impl Default for Validation {
    fn default() -> Self {
        Self {
            algorithms: Algorithm::ALL.to_vec(),
            leeway: DEFAULT_LEEWAY_SECS,
            issuer: None,
            audiences: Vec::new(),
            token_type: TokenType::Access,
            max_token_len: DEFAULT_MAX_TOKEN_LEN,
            check_nbf: true,
            check_iat: true,
        }
    }
}

impl Validation {
    /// Defaults, expecting tokens of `token_type`.
    #[must_use]
    pub fn new(token_type: TokenType) -> Self {
        Self {
            token_type,
            ..Self::default()
        }
    }

    /// Checks every field against its bounds. Deserialized values are always checked; call
    /// this after setting fields by hand.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the field.
    pub fn check(&self) -> Result<(), ConfigError> {
        if self.algorithms.is_empty() {
            return Err(ConfigError::new(
                "algorithms",
                "at least one algorithm is required",
            ));
        }
        if self.leeway > MAX_LEEWAY_SECS {
            return Err(ConfigError::new(
                "leeway",
                format!("at most {MAX_LEEWAY_SECS} seconds"),
            ));
        }
        if !(MIN_MAX_TOKEN_LEN..=MAX_MAX_TOKEN_LEN).contains(&self.max_token_len) {
            return Err(ConfigError::new(
                "max_token_len",
                format!("must be {MIN_MAX_TOKEN_LEN} to {MAX_MAX_TOKEN_LEN} bytes"),
            ));
        }
        if let Some(iss) = &self.issuer {
            if iss.is_empty() || iss.len() > MAX_URI_CLAIM_LEN {
                return Err(ConfigError::new(
                    "issuer",
                    format!("must be 1 to {MAX_URI_CLAIM_LEN} bytes"),
                ));
            }
        }
        if self.audiences.len() > MAX_AUDIENCES {
            return Err(ConfigError::new(
                "audiences",
                format!("at most {MAX_AUDIENCES} audiences"),
            ));
        }
        for (i, aud) in self.audiences.iter().enumerate() {
            if aud.is_empty() || aud.len() > MAX_URI_CLAIM_LEN {
                return Err(ConfigError::new(
                    format!("audiences[{i}]"),
                    format!("must be 1 to {MAX_URI_CLAIM_LEN} bytes"),
                ));
            }
        }
        Ok(())
    }
}

#[derive(Deserialize)]
#[serde(remote = "Self", deny_unknown_fields, default)]
struct RawValidation {
    algorithms: Vec<Algorithm>,
    leeway: u64,
    issuer: Option<String>,
    audiences: Vec<String>,
    token_type: TokenType,
    max_token_len: usize,
}

crate::json::object_only!(RawValidation, "a validation object");

impl Default for RawValidation {
    fn default() -> Self {
        let v = Validation::default();
        Self {
            algorithms: v.algorithms,
            leeway: v.leeway,
            issuer: v.issuer,
            audiences: v.audiences,
            token_type: v.token_type,
            max_token_len: v.max_token_len,
        }
    }
}

impl TryFrom<RawValidation> for Validation {
    type Error = String;

    fn try_from(r: RawValidation) -> Result<Self, Self::Error> {
        let v = Validation {
            algorithms: r.algorithms,
            leeway: r.leeway,
            issuer: r.issuer,
            audiences: r.audiences,
            token_type: r.token_type,
            max_token_len: r.max_token_len,
            ..Validation::default()
        };
        v.check().map_err(|e| e.to_string())?;
        Ok(v)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn defaults_ok() {
        let v = Validation::default();
        assert_eq!(v.leeway, 30);
        assert_eq!(v.max_token_len, 8192);
        assert_eq!(v.token_type, TokenType::Access);
        assert_eq!(v.algorithms.len(), 6);
        assert!(v.check_nbf && v.check_iat);
        v.check().unwrap();
        let parsed: Validation = serde_json::from_str("{}").unwrap();
        assert_eq!(parsed, v);
    }

    #[test]
    fn from_json_ok() {
        let v: Validation = serde_json::from_str(
            r#"{"algorithms":["EdDSA"],"leeway":5,"issuer":"i","audiences":["api"],"token_type":"refresh","max_token_len":4096}"#,
        )
        .unwrap();
        assert_eq!(v.algorithms, vec![Algorithm::EdDSA]);
        assert_eq!(v.token_type, TokenType::Refresh);
        assert!(v.check_nbf);
    }

    #[test]
    fn bad_config_fails() {
        for bad in [
            r#"{"algorithms":[]}"#,
            r#"{"algorithms":["none"]}"#,
            r#"{"leeway":301}"#,
            r#"{"max_token_len":10}"#,
            r#"{"issuer":""}"#,
            r#"{"audiences":[""]}"#,
            r#"{"check_nbf":false}"#,
            r#"{"unknown":1}"#,
        ] {
            assert!(serde_json::from_str::<Validation>(bad).is_err(), "{bad}");
        }
        let v = Validation {
            leeway: 1_000,
            ..Validation::default()
        };
        assert_eq!(v.check().unwrap_err().field, "leeway");
    }
}
