//! Breached and context-specific passwords (NIST SP 800-63B §3.1.1.2).
//!
//! # Breached passwords, by k-anonymity
//! A "Pwned Passwords"-style range API answers, for the first 5 hex digits of a password's
//! SHA-1, every known hash suffix with that prefix and its count, one `SUFFIX:COUNT` per line.
//! Only the prefix leaves the process. Sans-IO: [`range_query`] gives the prefix to fetch and
//! the suffix to look for; the shell fetches (`fetchRange(prefix)`); [`count_in_range`] reads
//! the body. Padding entries (count `0`, sent with `Add-Padding: true` so the response size
//! says nothing) are read like any other line and never count as a hit. A body that is not in
//! the range format is [`BreachError::RangeInvalid`], never a silent "not breached".
//!
//! # Blocklist
//! [`check_blocklist`] refuses a password that contains a context word (the service's name,
//! the user's email or its local part, …), case-insensitively.

use crate::ErrorCode;
use sha1::{Digest, Sha1};
use std::fmt;

/// Length of the prefix sent to the range API.
pub const PREFIX_LEN: usize = 5;
/// Length of the suffixes in a range response.
pub const SUFFIX_LEN: usize = 35;
/// Largest range body read (real ones are ~40 KB, padded ones up to ~50 KB).
pub const MAX_RANGE_LEN: usize = 4 << 20;
/// Context words shorter than this are ignored (they would refuse too much).
pub const MIN_BLOCK_WORD_CHARS: usize = 4;
/// Most blocklist words.
pub const MAX_BLOCK_WORDS: usize = 1_000;

/// Breach and blocklist failures.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BreachError {
    /// The password appears in breaches `count` times (`password_breached`).
    Breached {
        /// How often.
        count: u64,
    },
    /// The password contains a blocklisted context word (`password_blocklisted`).
    Blocklisted,
    /// The range response is not in the range format (`breach_check_failed`).
    RangeInvalid {
        /// What was wrong (never contains the password or its hash).
        why: &'static str,
    },
}

impl fmt::Display for BreachError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Breached { count } => write!(
                f,
                "this password appears in {count} known data breach record(s); choose another"
            ),
            Self::Blocklisted => f.write_str(
                "this password contains a word from its context (the service or account name); choose another",
            ),
            Self::RangeInvalid { why } => write!(
                f,
                "the breached-password range response could not be read ({why}); the password was not checked"
            ),
        }
    }
}

impl std::error::Error for BreachError {}

impl ErrorCode for BreachError {
    fn code(&self) -> &'static str {
        match self {
            Self::Breached { .. } => "password_breached",
            Self::Blocklisted => "password_blocklisted",
            Self::RangeInvalid { .. } => "breach_check_failed",
        }
    }
}

/// What to ask the range API: the 5-hex prefix to send and the 35-hex suffix to look for
/// (uppercase SHA-1 of the UTF-8 password).
#[must_use]
pub fn range_query(password: &str) -> (String, String) {
    let digest = Sha1::digest(password.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02X}")).collect();
    let (prefix, suffix) = hex.split_at(PREFIX_LEN);
    (prefix.to_owned(), suffix.to_owned())
}

/// The count of `suffix` in a range response `body` (0 when absent or a padding entry).
///
/// # Errors
/// [`BreachError::RangeInvalid`] when the body is too large, empty, or has a line that is not
/// `<35 hex>:<count>`.
pub fn count_in_range(suffix: &str, body: &str) -> Result<u64, BreachError> {
    let bad = |why| BreachError::RangeInvalid { why };
    if body.len() > MAX_RANGE_LEN {
        return Err(bad("too large"));
    }
    let mut found = 0u64;
    let mut lines = 0usize;
    for line in body.lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let (s, n) = line.split_once(':').ok_or(bad("a line without `:`"))?;
        if s.len() != SUFFIX_LEN || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad("a suffix that is not 35 hex digits"));
        }
        if n.is_empty() || n.len() > 19 || !n.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("a count that is not a number"));
        }
        let n: u64 = n.parse().map_err(|_| bad("a count that is not a number"))?;
        if s.eq_ignore_ascii_case(suffix) {
            found = found.max(n);
        }
        lines += 1;
    }
    // A real range is never empty (every prefix has hundreds of suffixes): an empty body is a
    // broken server or proxy, not "not breached".
    if lines == 0 {
        return Err(bad("no entries"));
    }
    Ok(found)
}

/// Refuses a password that contains one of `words` (case-insensitive; words under
/// [`MIN_BLOCK_WORD_CHARS`] characters are ignored; for a word with `@` its local part is
/// checked too).
///
/// # Errors
/// [`BreachError::Blocklisted`].
pub fn check_blocklist(password: &str, words: &[String]) -> Result<(), BreachError> {
    let pw = password.to_lowercase();
    let hit = |w: &str| {
        let w = w.trim().to_lowercase();
        w.chars().count() >= MIN_BLOCK_WORD_CHARS && pw.contains(&w)
    };
    for w in words.iter().take(MAX_BLOCK_WORDS) {
        let local = w.split_once('@').map(|(l, _)| l);
        if hit(w) || local.is_some_and(hit) {
            return Err(BreachError::Blocklisted);
        }
    }
    Ok(())
}

/// Refuses a password seen in `count` breaches (the count [`count_in_range`] returned).
///
/// # Errors
/// [`BreachError::Breached`] when `count > 0`.
pub fn check_breach_count(count: u64) -> Result<(), BreachError> {
    if count > 0 {
        Err(BreachError::Breached { count })
    } else {
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn range_query_is_uppercase_sha1_split_5_35() {
        // SHA-1("password") = 5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8
        let (p, s) = range_query("password");
        assert_eq!(p, "5BAA6");
        assert_eq!(s, "1E4C9B93F3F0682250B6CF8331B7EE68FD8");
    }

    #[test]
    fn counts_hits_padding_and_misses() {
        let s = "1E4C9B93F3F0682250B6CF8331B7EE68FD8";
        let body = "003D68EB55068C33ACE09247EE4C639306B:3\r\n1E4C9B93F3F0682250B6CF8331B7EE68FD8:10434004\r\n";
        assert_eq!(count_in_range(s, body).unwrap(), 10_434_004);
        let lower = body.to_lowercase();
        assert_eq!(count_in_range(s, &lower).unwrap(), 10_434_004);
        let padded =
            "003D68EB55068C33ACE09247EE4C639306B:3\r\n1E4C9B93F3F0682250B6CF8331B7EE68FD8:0\r\n";
        assert_eq!(count_in_range(s, padded).unwrap(), 0);
        assert_eq!(
            count_in_range(s, "003D68EB55068C33ACE09247EE4C639306B:3").unwrap(),
            0
        );
    }

    #[test]
    fn garbage_is_an_error_never_not_breached() {
        let s = "1E4C9B93F3F0682250B6CF8331B7EE68FD8";
        for bad in [
            "",
            "\r\n",
            "<html>502 Bad Gateway</html>",
            "003D68EB55068C33ACE09247EE4C639306B",
            "003D68EB55068C33ACE09247EE4C639306:3",
            "003D68EB55068C33ACE09247EE4C639306B:x",
            "003D68EB55068C33ACE09247EE4C639306B:-1",
        ] {
            let e = count_in_range(s, bad).unwrap_err();
            assert_eq!(e.code(), "breach_check_failed", "{bad}");
        }
    }

    #[test]
    fn blocklist_by_context_word_and_email_local_part() {
        let words = vec![
            "Keygate".to_owned(),
            "alice.smith@example.com".to_owned(),
            "abc".to_owned(),
        ];
        for bad in [
            "mykeygate2024!",
            "ALICE.SMITH-secret",
            "x alice.smith@example.com",
        ] {
            assert_eq!(
                check_blocklist(bad, &words).unwrap_err().code(),
                "password_blocklisted",
                "{bad}"
            );
        }
        assert!(check_blocklist("abcdefgh-correct-horse", &words).is_ok());
        assert!(check_blocklist("anything", &[]).is_ok());
    }

    #[test]
    fn breach_count_decision() {
        assert!(check_breach_count(0).is_ok());
        assert_eq!(
            check_breach_count(3).unwrap_err().code(),
            "password_breached"
        );
    }
}
