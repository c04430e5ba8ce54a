//! Core errors → one shape the JS side turns into a `KeygateError`.

use keygate::flow::FlowError;
use keygate::token::TokenError;
use keygate::{ConfigError, ErrorCode};
use std::fmt;

/// Code for an argument of the wrong type or shape (set by the shell, not the core).
pub const INVALID_INPUT: &str = "invalid_input";

/// A failure as the JS side sees it: the core's stable `code`, its message, and the config
/// `field` or token `claim` it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KgError {
    /// Stable code (`token_expired`, `config_invalid`, …).
    pub code: &'static str,
    /// Human message; never contains a secret or an input value.
    pub message: String,
    /// Dotted config path (camelCase, as the JS caller wrote it) for `config_invalid`, or the
    /// argument for `invalid_input`.
    pub field: Option<String>,
    /// The claim a token error is about (`exp`, `aud`, …).
    pub claim: Option<&'static str>,
}

impl KgError {
    /// An `invalid_input` error about argument `field`.
    pub fn input(field: &str, message: impl Into<String>) -> Self {
        Self {
            code: INVALID_INPUT,
            message: message.into(),
            field: Some(field.to_owned()),
            claim: None,
        }
    }

    /// Any core error with a code.
    pub fn from_code<E: ErrorCode + fmt::Display>(e: &E) -> Self {
        Self {
            code: e.code(),
            message: e.to_string(),
            field: None,
            claim: None,
        }
    }

    /// A config error of the core's npm-facing structs, whose field is already the one the
    /// caller wrote (`signingKeys[1].kid`, `session.cookieName`).
    pub fn config_as_written(e: ConfigError) -> Self {
        Self {
            code: e.code(),
            message: e.to_string(),
            field: Some(e.field),
            claim: None,
        }
    }

    /// A config error whose field is relative to `prefix` (`""` for the top level).
    pub fn config(e: ConfigError, prefix: &str) -> Self {
        let field = camel_path(&e.field);
        let field = match (prefix.is_empty(), field.is_empty()) {
            (true, _) => field,
            (false, true) => prefix.to_owned(),
            (false, false) => format!("{prefix}.{field}"),
        };
        Self {
            code: e.code(),
            message: format!("invalid config `{field}`: {}", e.message),
            field: Some(field),
            claim: None,
        }
    }
}

impl fmt::Display for KgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<TokenError> for KgError {
    fn from(e: TokenError) -> Self {
        Self {
            claim: e.claim(),
            ..Self::from_code(&e)
        }
    }
}

impl From<FlowError> for KgError {
    fn from(e: FlowError) -> Self {
        match e {
            FlowError::Token(t) => t.into(),
            other => Self::from_code(&other),
        }
    }
}

impl From<ConfigError> for KgError {
    fn from(e: ConfigError) -> Self {
        Self::config(e, "")
    }
}

macro_rules! from_coded {
    ($($t:ty),*) => {$(
        impl From<$t> for KgError {
            fn from(e: $t) -> Self {
                Self::from_code(&e)
            }
        }
    )*};
}
from_coded!(
    keygate::password::PasswordError,
    keygate::totp::TotpError,
    keygate::qr::QrError,
    keygate::recovery::RecoveryError,
    keygate::SessionError
);

/// `memory_cost` → `memoryCost`, `rate_limits[2].limit` → `rateLimits[2].limit`: JS callers
/// see the names they wrote.
pub fn camel_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut upper = false;
    for c in path.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn camel_path_ok() {
        assert_eq!(camel_path("memory_cost"), "memoryCost");
        assert_eq!(
            camel_path("session.absolute_timeout"),
            "session.absoluteTimeout"
        );
        assert_eq!(camel_path("accessTokenTtl"), "accessTokenTtl");
        assert_eq!(camel_path(""), "");
    }

    #[test]
    fn config_prefix_ok() {
        let e = KgError::config(ConfigError::new("time_cost", "bad"), "password");
        assert_eq!(e.code, "config_invalid");
        assert_eq!(e.field.as_deref(), Some("password.timeCost"));
        assert!(e.message.contains("password.timeCost"));
    }

    #[test]
    fn token_error_claim_ok() {
        let e: KgError = FlowError::Token(TokenError::Expired).into();
        assert_eq!((e.code, e.claim), ("token_expired", Some("exp")));
        let e: KgError = FlowError::RefreshReused.into();
        assert_eq!(e.code, "refresh_reused");
    }
}
