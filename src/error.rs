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
    /// A refusal of `field` with a human explanation. Control characters in either (a member
    /// name of the document, echoed by serde's "unknown field") are escaped: the text ends up in
    /// one log line of Envoy or the caller, and a raw newline would forge the next.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: escape_controls(field.into()),
            message: escape_controls(message.into()),
        }
    }

    /// The same error with `prefix.` prepended to the field path.
    #[must_use]
    pub fn within(mut self, prefix: &str) -> Self {
        // A prefix may hold a member name of the document (`roles.<name>`): escaped as in `new`.
        self.field = escape_controls(if self.field.is_empty() {
            prefix.to_owned()
        } else if self.field.starts_with('[') {
            format!("{prefix}{}", self.field)
        } else {
            format!("{prefix}.{}", self.field)
        });
        self
    }
}

/// `text` with each control character (and U+2028/U+2029, line breaks to some log viewers) as
/// its Rust escape (`\n`, `\u{1b}`); unchanged, without copying, when there is none.
fn escape_controls(text: String) -> String {
    let breaks = |c: char| c.is_control() || c == '\u{2028}' || c == '\u{2029}';
    if !text.chars().any(breaks) {
        return text;
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if breaks(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
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

    #[test]
    fn config_error_escapes_line_breaks_ok() {
        let e = ConfigError::new(
            "zz\nkeygate: invalid config `x`",
            "unknown field `a\r\u{1b}[31m\u{2028}b`, expected `c`",
        );
        assert_eq!(e.field, "zz\\nkeygate: invalid config `x`");
        assert_eq!(
            e.message,
            "unknown field `a\\r\\u{1b}[31m\\u{2028}b`, expected `c`"
        );
        let shown = e.to_string();
        let e = ConfigError::new("x", "bad").within("roles.a\nb");
        assert_eq!(e.field, "roles.a\\nb.x");
        assert!(!shown.chars().any(|c| c.is_control()), "{shown}");
        // Text without control characters is kept as it is (quotes, backslashes, non-ASCII).
        let e = ConfigError::new(r#"a\b"é"#, "expected \"5/minute\"");
        assert_eq!(
            (e.field.as_str(), e.message.as_str()),
            (r#"a\b"é"#, "expected \"5/minute\"")
        );
    }
}
