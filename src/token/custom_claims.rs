//! Application claims a caller adds to access tokens (`{"tenant": "acme"}`), checked once.

use serde_json::{Map, Value};

use super::claims::{KNOWN, MAX_EXTRA_CLAIMS};
use crate::ConfigError;

/// Largest custom claims object, in bytes of JSON: keeps tokens under the default 8 KiB limit
/// every verifier (the filter included) applies.
pub const MAX_CUSTOM_CLAIMS_LEN: usize = 4096;

/// Claims the login flow writes beside the registered ones and later trusts: `auth_time`
/// (how recent a sign-in was, for MFA changes), `pwh` (the password-hash binding) and `sep`
/// (the session epoch an account endpoint checks).
const FLOW_OWNED: &[&str] = &["auth_time", "pwh", "sep"];

/// Extra claims for access tokens. A constructed value is always valid: no name keygate owns
/// (`sub`, `type`, `roles`, `iat`, `exp`, `nbf`, `iss`, `aud`, `jti`, `sid`, `amr`,
/// `permissions`, `fam`, `gen`), at most [`MAX_EXTRA_CLAIMS`] names, at most
/// [`MAX_CUSTOM_CLAIMS_LEN`] bytes of JSON. Defaults to none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CustomClaims(Map<String, Value>);

impl CustomClaims {
    /// Checks `claims`.
    ///
    /// # Errors
    /// A [`ConfigError`] whose field is the refused claim's name (or `""` for the whole object).
    pub fn new(claims: Map<String, Value>) -> Result<Self, ConfigError> {
        if let Some(name) = claims
            .keys()
            .find(|k| KNOWN.contains(&k.as_str()) || FLOW_OWNED.contains(&k.as_str()))
        {
            return Err(ConfigError::new(
                name.as_str(),
                "is a claim keygate sets itself; choose another name",
            ));
        }
        if let Some(name) = claims.keys().find(|k| k.is_empty() || k.len() > 64) {
            return Err(ConfigError::new(
                name.as_str(),
                "claim names must be 1-64 bytes",
            ));
        }
        if claims.len() > MAX_EXTRA_CLAIMS {
            return Err(ConfigError::new(
                "",
                format!("at most {MAX_EXTRA_CLAIMS} custom claims"),
            ));
        }
        let len = serde_json::to_string(&claims).map_or(usize::MAX, |s| s.len());
        if len > MAX_CUSTOM_CLAIMS_LEN {
            return Err(ConfigError::new(
                "",
                format!("custom claims are limited to {MAX_CUSTOM_CLAIMS_LEN} bytes of JSON"),
            ));
        }
        Ok(Self(claims))
    }

    /// The claims.
    #[must_use]
    pub const fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn custom_claims_ok() {
        let c = CustomClaims::new(map(json!({"tenant": "acme", "plan": {"seats": 5}}))).unwrap();
        assert_eq!(c.as_map().len(), 2);
        assert!(CustomClaims::new(Map::new()).is_ok());
    }

    #[test]
    fn registered_names_fails() {
        for &name in KNOWN.iter().chain(FLOW_OWNED) {
            let e = CustomClaims::new(map(json!({ name: "x" }))).unwrap_err();
            assert_eq!(e.field, name);
        }
    }

    #[test]
    fn too_many_or_too_large_fails() {
        let many: Map<String, Value> = (0..=MAX_EXTRA_CLAIMS)
            .map(|i| (format!("c{i}"), Value::from(i)))
            .collect();
        assert!(CustomClaims::new(many).is_err());
        let big = map(json!({"blob": "x".repeat(MAX_CUSTOM_CLAIMS_LEN)}));
        assert!(CustomClaims::new(big).is_err());
        assert!(CustomClaims::new(map(json!({"": 1}))).is_err());
    }
}
