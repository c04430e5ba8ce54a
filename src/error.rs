//! Error plumbing shared by every module: stable string codes and configuration errors.
//!
//! Each module owns a `#[non_exhaustive]` error enum; all of them implement [`ErrorCode`] so
//! shells expose one stable `code` string (`token_expired`, `rate_limited`, …) per failure.

use std::fmt;

/// A stable, documented, machine-readable error code (the npm module's `err.code`, the
/// filter's `{"error": code}`).
pub trait ErrorCode {
    /// The stable code string; never changes between releases.
    fn code(&self) -> &'static str;
}

/// A configuration value was refused. Names the offending field and says how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted path of the field, e.g. `password.memory_cost` or `rate_limits[2].limit`.
    pub field: String,
    /// What was wrong and what is accepted.
    pub message: String,
}

impl ConfigError {
    /// A refusal of `field` with a human explanation.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The same error with `prefix.` prepended to the field path.
    #[must_use]
    pub fn within(mut self, prefix: &str) -> Self {
        self.field = if self.field.is_empty() {
            prefix.to_owned()
        } else if self.field.starts_with('[') {
            format!("{prefix}{}", self.field)
        } else {
            format!("{prefix}.{}", self.field)
        };
        self
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid config `{}`: {}", self.field, self.message)
    }
}

impl std::error::Error for ConfigError {}

impl ErrorCode for ConfigError {
    fn code(&self) -> &'static str {
        "config_invalid"
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn config_error_names_field_ok() {
        let e = ConfigError::new("limit", "expected N/unit").within("rate_limits[1]");
        assert_eq!(e.field, "rate_limits[1].limit");
        assert_eq!(e.code(), "config_invalid");
        assert!(e.to_string().contains("rate_limits[1].limit"));
        let e = ConfigError::new("[0]", "bad").within("keys");
        assert_eq!(e.field, "keys[0]");
    }
}
