//! One normal form for email addresses, so two visually identical addresses are one account.
//!
//! [`normalize_email`] trims surrounding whitespace, applies Unicode NFKC (fullwidth `ａ` →
//! `a`, NFD → NFC, ligatures), full case folding (`ß` → `ss`, `İ` → `i̇`) and NFKC again, then
//! refuses what would still let a second account look like the first: control characters
//! (NUL …), invisible and format characters (zero-width space and joiners, bidi controls, soft
//! hyphen, variation selectors, fillers), whitespace inside, private-use characters, and a
//! local part or domain label that mixes scripts (`аdmin` with a Cyrillic `а`). Use its output
//! as the lookup key at sign-up, sign-in and reset alike.
//!
//! Not covered: an address written wholly in another script that happens to look Latin
//! (`аре` in Cyrillic) is a different, valid address.

use crate::ErrorCode;
use std::fmt;
use unicode_normalization::UnicodeNormalization;
use unicode_script::{Script, UnicodeScript};

/// Longest address accepted, in bytes after normalisation (RFC 5321 path limit minus `<>`).
pub const MAX_EMAIL_LEN: usize = 254;
/// Longest local part, in bytes (RFC 5321).
pub const MAX_LOCAL_LEN: usize = 64;
/// Longest input looked at, in bytes (before normalisation).
pub const MAX_EMAIL_INPUT_LEN: usize = 1024;

/// Why an address was refused. Every variant has the code `email_invalid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EmailError {
    /// Not of the form `local@domain.tld`, or too long.
    Malformed,
    /// A control, invisible, format, whitespace or private-use character.
    ForbiddenCharacter,
    /// The local part or a domain label mixes scripts (a look-alike of another address).
    MixedScript,
}

impl fmt::Display for EmailError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Malformed => "the email address is not of the form name@example.com",
            Self::ForbiddenCharacter => {
                "the email address contains a control, invisible or whitespace character"
            }
            Self::MixedScript => {
                "the email address mixes scripts (for example a Cyrillic letter among Latin ones)"
            }
        })
    }
}

impl std::error::Error for EmailError {}

impl ErrorCode for EmailError {
    fn code(&self) -> &'static str {
        "email_invalid"
    }
}

/// The normal form of `input` (see the module docs): the one key to store and look up.
///
/// # Errors
/// [`EmailError`] when the address is malformed, too long, contains a forbidden character or
/// mixes scripts.
pub fn normalize_email(input: &str) -> Result<String, EmailError> {
    if input.len() > MAX_EMAIL_INPUT_LEN {
        return Err(EmailError::Malformed);
    }
    let trimmed = input.trim_matches(|c: char| c == ' ' || c == '\t' || c == '\r' || c == '\n');
    // Refuse before normalising too: NFKC must not be what hides a control character.
    if trimmed.chars().any(forbidden) {
        return Err(EmailError::ForbiddenCharacter);
    }
    let once: String = trimmed.nfkc().collect();
    let folded: String = caseless::default_case_fold_str(&once).nfkc().collect();
    if folded.chars().any(forbidden) {
        return Err(EmailError::ForbiddenCharacter);
    }
    if folded.len() > MAX_EMAIL_LEN {
        return Err(EmailError::Malformed);
    }
    let (local, domain) = folded.split_once('@').ok_or(EmailError::Malformed)?;
    if local.is_empty()
        || local.len() > MAX_LOCAL_LEN
        || local.starts_with('.')
        || local.ends_with('.')
        || local.contains("..")
        || local.chars().any(|c| "\"(),:;<>[\\]@".contains(c))
    {
        return Err(EmailError::Malformed);
    }
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c == '-' || c.is_alphanumeric())
        });
    if !domain_ok {
        return Err(EmailError::Malformed);
    }
    if mixes_scripts(local) || labels.iter().any(|l| mixes_scripts(l)) {
        return Err(EmailError::MixedScript);
    }
    Ok(folded)
}

/// Whether `part` has letters of more than one script (Common and Inherited do not count).
fn mixes_scripts(part: &str) -> bool {
    let mut seen: Option<Script> = None;
    for c in part.chars() {
        let s = c.script();
        if matches!(s, Script::Common | Script::Inherited | Script::Unknown) {
            continue;
        }
        match seen {
            None => seen = Some(s),
            Some(first) if first != s => return true,
            Some(_) => {}
        }
    }
    false
}

/// Controls, whitespace, private use, and Unicode's default-ignorable (invisible) characters.
fn forbidden(c: char) -> bool {
    let u = u32::from(c);
    c.is_control()
        || c.is_whitespace()
        || matches!(u,
            0x00AD | 0x034F | 0x061C | 0x115F | 0x1160 | 0x17B4 | 0x17B5 | 0x180B..=0x180F
            | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x206F | 0x2800 | 0x3164
            | 0xFE00..=0xFE0F | 0xFEFF | 0xFFA0 | 0xFFF0..=0xFFFB | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A | 0xE0000..=0xE0FFF
            | 0x0600..=0x0605 | 0x06DD | 0x070F | 0x0890 | 0x0891 | 0x08E2 | 0x110BD | 0x110CD
            | 0x13430..=0x1343F)
        || (0xE000..=0xF8FF).contains(&u)
        || u >= 0xF0000
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn same_account_for_look_alike_spellings_ok() {
        let plain = normalize_email("alice@example.com").unwrap();
        for v in [
            "Alice@Example.COM",
            "  alice@example.com\t",
            "ａｌｉｃｅ@ｅｘａｍｐｌｅ.ｃｏｍ",
            "ALICE@EXAMPLE.COM",
        ] {
            assert_eq!(normalize_email(v).unwrap(), plain, "{v:?}");
        }
        // NFD and NFC of é are one address.
        assert_eq!(
            normalize_email("jose\u{0301}@example.com").unwrap(),
            normalize_email("jos\u{e9}@example.com").unwrap()
        );
        // Full case folding, not just lowercase.
        assert_eq!(
            normalize_email("STRASSE@example.com").unwrap(),
            normalize_email("straße@example.com").unwrap()
        );
    }

    #[test]
    fn invisible_and_control_characters_fails() {
        for v in [
            "ali\u{200B}ce@example.com",
            "alice\u{200D}@example.com",
            "alice\u{0}@example.com",
            "al\u{AD}ice@example.com",
            "alice@exa\u{202E}mple.com",
            "alice\u{FEFF}@example.com",
            "ali ce@example.com",
            "alice@exam\u{FE0F}ple.com",
            "alice\u{E000}@example.com",
            "al\u{3164}ice@example.com",
        ] {
            assert_eq!(
                normalize_email(v),
                Err(EmailError::ForbiddenCharacter),
                "{v:?}"
            );
        }
    }

    #[test]
    fn mixed_script_look_alike_fails() {
        // Cyrillic а (U+0430) among Latin letters.
        assert_eq!(
            normalize_email("\u{430}dmin@example.com"),
            Err(EmailError::MixedScript)
        );
        assert_eq!(
            normalize_email("admin@ex\u{430}mple.com"),
            Err(EmailError::MixedScript)
        );
        // One script throughout is a valid address.
        assert!(normalize_email("\u{43f}\u{440}\u{438}\u{432}\u{435}\u{442}@example.com").is_ok());
    }

    #[test]
    fn malformed_fails() {
        for v in [
            "",
            "alice",
            "@example.com",
            "alice@",
            "alice@localhost",
            "alice@@example.com",
            "a@b@example.com",
            "alice@example..com",
            "alice@-example.com",
            ".alice@example.com",
            "al..ice@example.com",
            "\"alice\"@example.com",
        ] {
            assert_eq!(normalize_email(v), Err(EmailError::Malformed), "{v:?}");
        }
        let long = format!("{}@example.com", "a".repeat(65));
        assert_eq!(normalize_email(&long), Err(EmailError::Malformed));
        assert_eq!(
            normalize_email(&"a".repeat(MAX_EMAIL_INPUT_LEN + 1)),
            Err(EmailError::Malformed)
        );
        assert_eq!(EmailError::MixedScript.code(), "email_invalid");
    }
}
