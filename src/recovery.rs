//! One-time MFA recovery codes.
//!
//! Each code is 80 random bits shown as 16 lower-case base32 characters, `xxxx-xxxx-xxxx-xxxx`.
//! Only hashes are stored. A plain SHA-256 is enough here, unlike for passwords: the codes are
//! uniformly random with 80 bits of entropy, so a stolen hash list cannot be brute-forced and a
//! slow KDF would buy nothing.

use crate::entropy::{Entropy, EntropyError};
use crate::totp::base32_encode;
use crate::{ConfigError, ErrorCode};
use sha2::{Digest, Sha256};
use std::fmt;
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};

/// Fewest codes per batch.
pub const MIN_CODES: usize = 1;
/// Most codes per batch.
pub const MAX_CODES: usize = 20;
/// Random bytes per code (80 bits).
pub const CODE_BYTES: usize = 10;
/// Base32 characters per code once normalised.
pub const CODE_CHARS: usize = 16;
/// Longest input considered by [`verify_recovery_code`], in bytes.
pub const MAX_INPUT_BYTES: usize = 64;

/// A fresh batch: show `codes` to the user once, store only `hashes` (same order).
#[derive(Clone, PartialEq, Eq)]
pub struct RecoveryCodes {
    /// The codes to show, `xxxx-xxxx-xxxx-xxxx`.
    pub codes: Vec<String>,
    /// Lower-case hex SHA-256 of each normalised code, to store.
    pub hashes: Vec<String>,
}

// Codes are secrets: keep them out of logs.
impl fmt::Debug for RecoveryCodes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecoveryCodes")
            .field("codes", &format_args!("[{} redacted]", self.codes.len()))
            .field("hashes", &self.hashes)
            .finish()
    }
}

/// Makes `n` new recovery codes.
///
/// # Errors
/// [`RecoveryError::Config`] when `n` is outside `MIN_CODES..=MAX_CODES`,
/// [`RecoveryError::EntropyUnavailable`] when the random source fails.
pub fn generate_recovery_codes(
    n: usize,
    rng: &mut impl Entropy,
) -> Result<RecoveryCodes, RecoveryError> {
    if !(MIN_CODES..=MAX_CODES).contains(&n) {
        return Err(RecoveryError::Config(ConfigError::new(
            "recovery_codes",
            format!("must be {MIN_CODES} to {MAX_CODES} codes"),
        )));
    }
    let mut codes = Vec::with_capacity(n);
    let mut hashes = Vec::with_capacity(n);
    for _ in 0..n {
        let bytes: [u8; CODE_BYTES] = rng.bytes()?;
        let plain = base32_encode(&bytes).to_ascii_lowercase();
        hashes.push(hash_normalized(&plain));
        let groups: Vec<&str> = [0..4, 4..8, 8..12, 12..16]
            .into_iter()
            .filter_map(|r| plain.get(r))
            .collect();
        codes.push(groups.join("-"));
    }
    Ok(RecoveryCodes { codes, hashes })
}

/// Checks `code` against the stored `hashes`. On a match, returns the hashes left once that
/// code is spent (store them in place of the old list); `None` when nothing matches. Case,
/// dashes and spaces in `code` do not matter. Every hash is compared, in constant time.
#[must_use]
pub fn verify_recovery_code(hashes: &[String], code: &str) -> Option<Vec<String>> {
    let candidate = hash_normalized(&normalize(code)?);
    let mut found = Choice::from(0);
    let mut index = 0u64;
    for (i, stored) in hashes.iter().enumerate() {
        let i = u64::try_from(i).ok()?;
        let eq = stored.as_bytes().ct_eq(candidate.as_bytes());
        // Only the first match is spent if a hash were ever stored twice.
        index.conditional_assign(&i, eq & !found);
        found |= eq;
    }
    if !bool::from(found) {
        return None;
    }
    let index = usize::try_from(index).ok()?;
    Some(
        hashes
            .iter()
            .enumerate()
            .filter(|&(i, _)| i != index)
            .map(|(_, h)| h.clone())
            .collect(),
    )
}

/// Lower-case, no separators, exactly [`CODE_CHARS`] base32 characters; `None` otherwise.
fn normalize(code: &str) -> Option<String> {
    if code.len() > MAX_INPUT_BYTES {
        return None;
    }
    let plain: String = code
        .chars()
        .filter(|c| *c != '-' && !c.is_ascii_whitespace())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let valid = plain.len() == CODE_CHARS
        && plain
            .bytes()
            .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b));
    valid.then_some(plain)
}

fn hash_normalized(plain: &str) -> String {
    Sha256::digest(plain.as_bytes())
        .iter()
        .fold(String::with_capacity(64), |mut s, b| {
            s.push_str(&format!("{b:02x}"));
            s
        })
}

/// Why recovery codes could not be made.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecoveryError {
    /// The requested count is out of bounds.
    Config(ConfigError),
    /// No random bytes could be drawn.
    EntropyUnavailable,
}

impl fmt::Display for RecoveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Config(e) => e.fmt(f),
            Self::EntropyUnavailable => {
                f.write_str("the system random source is unavailable; cannot make recovery codes")
            }
        }
    }
}

impl std::error::Error for RecoveryError {}

impl ErrorCode for RecoveryError {
    fn code(&self) -> &'static str {
        match self {
            Self::Config(e) => e.code(),
            Self::EntropyUnavailable => "entropy_unavailable",
        }
    }
}

impl From<EntropyError> for RecoveryError {
    fn from(_: EntropyError) -> Self {
        Self::EntropyUnavailable
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::SeededEntropy;
    use proptest::prelude::*;

    fn batch(n: usize) -> RecoveryCodes {
        generate_recovery_codes(n, &mut SeededEntropy::new(9)).unwrap()
    }

    #[test]
    fn generate_shape_ok() {
        let rc = batch(10);
        assert_eq!(rc.codes.len(), 10);
        assert_eq!(rc.hashes.len(), 10);
        for (code, hash) in rc.codes.iter().zip(&rc.hashes) {
            assert_eq!(code.len(), 19);
            let groups: Vec<&str> = code.split('-').collect();
            assert_eq!(groups.len(), 4);
            assert!(groups.iter().all(|g| g.len() == 4));
            assert!(code
                .bytes()
                .all(|b| b == b'-' || b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b)));
            assert_eq!(hash.len(), 64);
            assert_eq!(hash, &hash_normalized(&code.replace('-', "")));
            assert!(!hash.contains(code.as_str()));
        }
        let mut unique = rc.codes.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 10);
        assert!(!format!("{rc:?}").contains(&rc.codes[0]));
    }

    #[test]
    fn sha256_hex_ok() {
        assert_eq!(
            hash_normalized("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn verify_consumes_ok() {
        let rc = batch(5);
        let left = verify_recovery_code(&rc.hashes, &rc.codes[2]).unwrap();
        assert_eq!(left.len(), 4);
        assert!(!left.contains(&rc.hashes[2]));
        assert_eq!(left[2], rc.hashes[3]);
        // Every other code still works against the new list.
        for (i, code) in rc.codes.iter().enumerate().filter(|(i, _)| *i != 2) {
            assert!(verify_recovery_code(&left, code).is_some(), "code {i}");
        }
    }

    #[test]
    fn second_use_fails() {
        let rc = batch(3);
        let left = verify_recovery_code(&rc.hashes, &rc.codes[0]).unwrap();
        assert_eq!(verify_recovery_code(&left, &rc.codes[0]), None);
    }

    #[test]
    fn normalization_ok() {
        let rc = batch(1);
        let code = &rc.codes[0];
        for variant in [
            code.clone(),
            code.to_uppercase(),
            code.replace('-', ""),
            code.replace('-', " "),
            format!("  {}\t", code.to_uppercase().replace('-', " - ")),
        ] {
            assert_eq!(
                verify_recovery_code(&rc.hashes, &variant),
                Some(vec![]),
                "{variant:?}"
            );
        }
    }

    #[test]
    fn garbage_fails() {
        let rc = batch(3);
        let code = &rc.codes[0];
        let mut flipped = code.clone().into_bytes();
        flipped[0] = if flipped[0] == b'a' { b'b' } else { b'a' };
        let flipped = String::from_utf8(flipped).unwrap();
        for bad in [
            "",
            "----",
            &flipped,
            &code[..18],
            &format!("{code}a"),
            &code.replace('-', "_"),
            &format!("{code}{}", " ".repeat(60)),
            "0000-1111-8888-9999",
            "ａａａａ-ａａａａ-ａａａａ-ａａａａ",
            &rc.hashes[0],
        ] {
            assert_eq!(verify_recovery_code(&rc.hashes, bad), None, "{bad:?}");
        }
        assert_eq!(verify_recovery_code(&[], code), None);
    }

    #[test]
    fn count_bounds_fails() {
        let mut rng = SeededEntropy::new(1);
        for n in [0, 21, usize::MAX] {
            let e = generate_recovery_codes(n, &mut rng).unwrap_err();
            assert_eq!(e.code(), "config_invalid");
            assert!(e.to_string().contains("recovery_codes"));
        }
        assert_eq!(
            generate_recovery_codes(20, &mut rng).unwrap().codes.len(),
            20
        );
    }

    struct NoEntropy;
    impl Entropy for NoEntropy {
        fn fill(&mut self, _: &mut [u8]) -> Result<(), EntropyError> {
            Err(EntropyError)
        }
    }

    #[test]
    fn entropy_unavailable_fails() {
        let e = generate_recovery_codes(5, &mut NoEntropy).unwrap_err();
        assert_eq!(e, RecoveryError::EntropyUnavailable);
        assert_eq!(e.code(), "entropy_unavailable");
    }

    proptest! {
        #[test]
        fn arbitrary_input_never_panics(code in ".{0,80}", hashes in proptest::collection::vec(".{0,70}", 0..4)) {
            let rc = batch(2);
            prop_assert_eq!(verify_recovery_code(&rc.hashes, &code).is_some(),
                rc.codes.iter().any(|c| normalize(c) == normalize(&code)));
            let _ = verify_recovery_code(&hashes, &code);
        }
    }
}
