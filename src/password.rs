//! Password hashing with Argon2id (RFC 9106) in PHC string form.
//!
//! Hashes look like `$argon2id$v=19$m=65536,t=3,p=4$<salt>$<hash>`, exactly what argon2-cffi
//! (the seed's `argon2.PasswordHasher`) writes and reads, so stored hashes move both ways.
//! Only Argon2id is verified: argon2i/argon2d strings parse (so [`PasswordHasher::needs_rehash`]
//! can flag them) but never log anyone in.
//!
//! The policy follows NIST SP 800-63B: a minimum length counted in characters, at least 64
//! characters accepted, no composition rules, no truncation, and a byte cap checked before any
//! hashing so a megabyte "password" cannot buy a megabyte of Argon2 input.

use crate::entropy::{Entropy, EntropyError};
use crate::{ConfigError, ErrorCode};
use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine as _;
use keygate_argon2id::Argon2id;
pub use keygate_argon2id::Version;
use serde::Deserialize;
use std::fmt;
use std::str::FromStr;
use subtle::ConstantTimeEq;

/// Salt length of new hashes, in bytes (argon2-cffi's default).
pub const SALT_LEN: usize = 16;
/// Output length of new hashes, in bytes (argon2-cffi's default).
pub const OUTPUT_LEN: usize = 32;
/// Shortest salt accepted in a stored hash, in bytes.
pub const MIN_STORED_SALT_LEN: usize = 8;
/// Longest salt accepted in a stored hash, in bytes (the PHC format's limit).
pub const MAX_STORED_SALT_LEN: usize = 48;
/// Shortest output accepted in a stored hash, in bytes: shorter tags collide too often.
pub const MIN_STORED_OUTPUT_LEN: usize = 16;
/// Longest output accepted in a stored hash, in bytes (the PHC format's limit).
pub const MAX_STORED_OUTPUT_LEN: usize = 64;
/// Longest stored hash string accepted; real ones are under 200 bytes.
pub const MAX_PHC_LEN: usize = 256;

/// The Argon2 variant named in a PHC string. Only [`Algorithm::Argon2id`] is ever computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// `argon2d`: parses (so it can be flagged for rehash), never verifies.
    Argon2d,
    /// `argon2i`: parses, never verifies.
    Argon2i,
    /// `argon2id`: the only variant hashed and verified.
    Argon2id,
}

impl Algorithm {
    /// The PHC identifier: `argon2d`, `argon2i` or `argon2id`.
    #[must_use]
    pub const fn as_str(&self) -> &'static str {
        match self {
            Self::Argon2d => "argon2d",
            Self::Argon2i => "argon2i",
            Self::Argon2id => "argon2id",
        }
    }
}

/// Argon2id cost parameters. Always within the bounds below.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    time_cost: u32,
    memory_cost: u32,
    parallelism: u32,
}

impl Params {
    /// Fewest passes over memory.
    pub const MIN_T_COST: u32 = 1;
    /// Most passes over memory; also refuses stored hashes that would cost more (DoS).
    pub const MAX_T_COST: u32 = 10;
    /// Least memory in KiB (Argon2's own floor; `memory_cost` must also be ≥ 8 × parallelism).
    pub const MIN_M_COST: u32 = 8;
    /// Most memory in KiB: 1 GiB. Also refuses stored hashes that would cost more (DoS).
    pub const MAX_M_COST: u32 = 1_048_576;
    /// Fewest lanes.
    pub const MIN_P_COST: u32 = 1;
    /// Most lanes.
    pub const MAX_P_COST: u32 = 16;

    /// The seed's parameters (argon2-cffi defaults, RFC 9106's second recommended option):
    /// 3 passes, 64 MiB, 4 lanes.
    pub const DEFAULT: Self = Self {
        time_cost: 3,
        memory_cost: 65_536,
        parallelism: 4,
    };

    /// Checked constructor: `time_cost` passes, `memory_cost` KiB, `parallelism` lanes.
    /// (Argument order follows argon2-cffi, not the `argon2` crate's `m, t, p`.)
    ///
    /// # Errors
    /// [`ConfigError`] naming the field when a value is outside its `MIN_…`/`MAX_…` bound or
    /// `memory_cost < 8 × parallelism`.
    pub fn new(time_cost: u32, memory_cost: u32, parallelism: u32) -> Result<Self, ConfigError> {
        if !(Self::MIN_T_COST..=Self::MAX_T_COST).contains(&time_cost) {
            return Err(ConfigError::new(
                "time_cost",
                format!(
                    "must be between {} and {} passes",
                    Self::MIN_T_COST,
                    Self::MAX_T_COST
                ),
            ));
        }
        if !(Self::MIN_P_COST..=Self::MAX_P_COST).contains(&parallelism) {
            return Err(ConfigError::new(
                "parallelism",
                format!(
                    "must be between {} and {} lanes",
                    Self::MIN_P_COST,
                    Self::MAX_P_COST
                ),
            ));
        }
        if !(Self::MIN_M_COST..=Self::MAX_M_COST).contains(&memory_cost) {
            return Err(ConfigError::new(
                "memory_cost",
                format!(
                    "must be between {} and {} KiB",
                    Self::MIN_M_COST,
                    Self::MAX_M_COST
                ),
            ));
        }
        if u64::from(memory_cost) < 8 * u64::from(parallelism) {
            return Err(ConfigError::new(
                "memory_cost",
                "must be at least 8 KiB per lane (8 × parallelism)",
            ));
        }
        Ok(Self {
            time_cost,
            memory_cost,
            parallelism,
        })
    }

    /// Passes over memory (`t`).
    #[must_use]
    pub const fn time_cost(&self) -> u32 {
        self.time_cost
    }

    /// Memory in KiB (`m`).
    #[must_use]
    pub const fn memory_cost(&self) -> u32 {
        self.memory_cost
    }

    /// Lanes (`p`).
    #[must_use]
    pub const fn parallelism(&self) -> u32 {
        self.parallelism
    }
}

impl Default for Params {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// What a new password must look like (NIST SP 800-63B §5.1.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordPolicy {
    min_length: usize,
    max_bytes: usize,
}

impl PasswordPolicy {
    /// Smallest configurable minimum length, in characters.
    pub const MIN_MIN_LENGTH: usize = 1;
    /// Largest configurable minimum length: 800-63B requires accepting 64 characters.
    pub const MAX_MIN_LENGTH: usize = 64;
    /// Default minimum length, in characters (800-63B's floor for user-chosen passwords).
    pub const DEFAULT_MIN_LENGTH: usize = 8;
    /// Longest password accepted, in UTF-8 bytes; checked before hashing (DoS). 64 characters
    /// of 4-byte UTF-8 fit with room to spare.
    pub const MAX_BYTES: usize = 1024;

    /// A policy requiring at least `min_length` characters (Unicode scalar values).
    ///
    /// # Errors
    /// [`ConfigError`] on `min_length` outside `MIN_MIN_LENGTH..=MAX_MIN_LENGTH`.
    pub fn new(min_length: usize) -> Result<Self, ConfigError> {
        if !(Self::MIN_MIN_LENGTH..=Self::MAX_MIN_LENGTH).contains(&min_length) {
            return Err(ConfigError::new(
                "min_length",
                format!(
                    "must be between {} and {} characters",
                    Self::MIN_MIN_LENGTH,
                    Self::MAX_MIN_LENGTH
                ),
            ));
        }
        Ok(Self {
            min_length,
            max_bytes: Self::MAX_BYTES,
        })
    }

    /// Minimum length in characters.
    #[must_use]
    pub const fn min_length(&self) -> usize {
        self.min_length
    }

    /// Maximum length in UTF-8 bytes.
    #[must_use]
    pub const fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// Checks a new password: no composition rules, only length.
    ///
    /// # Errors
    /// [`PasswordError::TooLong`] over `max_bytes` bytes (checked first),
    /// [`PasswordError::TooShort`] under `min_length` characters.
    pub fn check(&self, password: &str) -> Result<(), PasswordError> {
        self.check_max_bytes(password)?;
        if password.chars().count() < self.min_length {
            return Err(PasswordError::TooShort {
                min_length: self.min_length,
            });
        }
        Ok(())
    }
}

impl PasswordPolicy {
    /// The DoS bound alone: refuses more than `max_bytes` bytes before any hashing.
    ///
    /// # Errors
    /// [`PasswordError::TooLong`].
    pub fn check_max_bytes(&self, password: &str) -> Result<(), PasswordError> {
        if password.len() > self.max_bytes {
            return Err(PasswordError::TooLong {
                max_bytes: self.max_bytes,
            });
        }
        Ok(())
    }
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            min_length: Self::DEFAULT_MIN_LENGTH,
            max_bytes: Self::MAX_BYTES,
        }
    }
}

/// Password configuration as written in JSON. Build a [`PasswordHasher`] from it (or
/// deserialize a `PasswordHasher` directly); that validates every field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PasswordConfig {
    /// Argon2id passes. Defaults to 3.
    pub time_cost: u32,
    /// Argon2id memory in KiB. Defaults to 65536 (64 MiB).
    pub memory_cost: u32,
    /// Argon2id lanes. Defaults to 4.
    pub parallelism: u32,
    /// Minimum length of a new password, in characters. Defaults to 8.
    pub min_length: usize,
}

impl Default for PasswordConfig {
    fn default() -> Self {
        Self {
            time_cost: Params::DEFAULT.time_cost,
            memory_cost: Params::DEFAULT.memory_cost,
            parallelism: Params::DEFAULT.parallelism,
            min_length: PasswordPolicy::DEFAULT_MIN_LENGTH,
        }
    }
}

/// Hashes and verifies passwords with one set of parameters and one policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(try_from = "PasswordConfig")]
pub struct PasswordHasher {
    params: Params,
    policy: PasswordPolicy,
}

impl TryFrom<PasswordConfig> for PasswordHasher {
    type Error = ConfigError;

    fn try_from(cfg: PasswordConfig) -> Result<Self, ConfigError> {
        Self::from_config(&cfg)
    }
}

// Fixed inputs for `dummy_verify`: the work is what matters, not the values.
const DUMMY_SALT: [u8; SALT_LEN] = *b"keygate-dummy-sa";
const DUMMY_OUTPUT: [u8; OUTPUT_LEN] = [0x5a; OUTPUT_LEN];

impl PasswordHasher {
    /// A hasher from already-checked parts.
    #[must_use]
    pub const fn new(params: Params, policy: PasswordPolicy) -> Self {
        Self { params, policy }
    }

    /// A hasher from configuration.
    ///
    /// # Errors
    /// [`ConfigError`] naming the first field out of bounds.
    pub fn from_config(cfg: &PasswordConfig) -> Result<Self, ConfigError> {
        Ok(Self {
            params: Params::new(cfg.time_cost, cfg.memory_cost, cfg.parallelism)?,
            policy: PasswordPolicy::new(cfg.min_length)?,
        })
    }

    /// The parameters new hashes use.
    #[must_use]
    pub const fn params(&self) -> &Params {
        &self.params
    }

    /// The policy new passwords must meet.
    #[must_use]
    pub const fn policy(&self) -> &PasswordPolicy {
        &self.policy
    }

    /// Hashes a new password into a PHC string with a fresh 16-byte salt.
    ///
    /// # Errors
    /// [`PasswordError::TooShort`] / [`PasswordError::TooLong`] when the policy refuses it,
    /// [`PasswordError::EntropyUnavailable`] when no salt can be drawn,
    /// [`PasswordError::HashFailed`] when Argon2 cannot run (out of memory).
    pub fn hash(&self, password: &str, rng: &mut impl Entropy) -> Result<String, PasswordError> {
        self.policy.check(password)?;
        self.rehash(password, rng)
    }

    /// Hashes a password that was just verified against an outdated hash, so it can be
    /// stored with the current parameters. Only the byte limit applies: the minimum length
    /// was the policy when the password was set, and refusing to upgrade it helps no one.
    ///
    /// # Errors
    /// [`PasswordError::TooLong`] over `max_bytes`, or entropy / Argon2 failure.
    pub fn rehash(&self, password: &str, rng: &mut impl Entropy) -> Result<String, PasswordError> {
        self.policy.check_max_bytes(password)?;
        let salt: [u8; SALT_LEN] = rng.bytes()?;
        let mut output = [0u8; OUTPUT_LEN];
        argon2_into(
            Algorithm::Argon2id,
            Version::V0x13,
            &self.params,
            password.as_bytes(),
            &salt,
            &mut output,
        )?;
        Ok(PhcHash {
            algorithm: Algorithm::Argon2id,
            version: Version::V0x13,
            params: self.params,
            salt: salt.to_vec(),
            output: output.to_vec(),
        }
        .to_string())
    }

    /// Checks `password` against a stored PHC string, using the parameters stored in it.
    /// `Ok(false)` means the password is wrong. The minimum length is not enforced here, so
    /// passwords set under an older, laxer policy still log in.
    ///
    /// # Errors
    /// [`PasswordError::TooLong`] over the byte cap (nothing is hashed),
    /// [`PasswordError::HashInvalid`] when `phc` is not an Argon2id PHC string within the
    /// parameter bounds, [`PasswordError::HashFailed`] when Argon2 cannot run.
    pub fn verify(&self, phc: &str, password: &str) -> Result<bool, PasswordError> {
        if password.len() > self.policy.max_bytes {
            return Err(PasswordError::TooLong {
                max_bytes: self.policy.max_bytes,
            });
        }
        let stored: PhcHash = phc.parse()?;
        if stored.algorithm != Algorithm::Argon2id {
            return Err(PasswordError::HashInvalid);
        }
        let mut output = vec![0u8; stored.output.len()];
        argon2_into(
            stored.algorithm,
            stored.version,
            &stored.params,
            password.as_bytes(),
            &stored.salt,
            &mut output,
        )?;
        Ok(bool::from(output.ct_eq(&stored.output)))
    }

    /// Spends what a real [`verify`](Self::verify) with the configured parameters spends, then
    /// returns `false`. Call it for unknown users so response time does not reveal which
    /// accounts exist.
    #[must_use]
    pub fn dummy_verify(&self, password: &str) -> bool {
        // A real verify refuses over-long passwords before hashing; so does this.
        if password.len() > self.policy.max_bytes {
            return false;
        }
        let mut output = [0u8; OUTPUT_LEN];
        let ran = argon2_into(
            Algorithm::Argon2id,
            Version::V0x13,
            &self.params,
            password.as_bytes(),
            &DUMMY_SALT,
            &mut output,
        );
        let same = output.ct_eq(&DUMMY_OUTPUT);
        std::hint::black_box((ran.is_ok(), bool::from(same)));
        false
    }

    /// Whether a stored hash should be replaced at the next successful login: true when its
    /// algorithm, version, `m`, `t`, `p` or output length differ from the configured ones.
    ///
    /// # Errors
    /// [`PasswordError::HashInvalid`] when `phc` is not an Argon2 PHC string within bounds.
    pub fn needs_rehash(&self, phc: &str) -> Result<bool, PasswordError> {
        let stored: PhcHash = phc.parse()?;
        Ok(stored.algorithm != Algorithm::Argon2id
            || stored.version != Version::V0x13
            || stored.params != self.params
            || stored.output.len() != OUTPUT_LEN)
    }
}

// Argon2id itself is `keygate_argon2id` (simd128 in the npm module, the same code natively).
fn argon2_into(
    algorithm: Algorithm,
    version: Version,
    params: &Params,
    password: &[u8],
    salt: &[u8],
    output: &mut [u8],
) -> Result<(), PasswordError> {
    if algorithm != Algorithm::Argon2id {
        return Err(PasswordError::HashInvalid);
    }
    Argon2id::new(
        version,
        params.time_cost,
        params.memory_cost,
        params.parallelism,
    )
    .and_then(|a| a.hash_into(password, salt, output))
    .map_err(|_| PasswordError::HashFailed)
}

/// A parsed Argon2 PHC string: `$argon2id$v=19$m=…,t=…,p=…$<salt>$<hash>` (B64 = standard
/// base64 without padding). Parsing checks every bound, so a parsed value is safe to compute.
/// A missing `v=` means version 16, as in the reference implementation.
#[derive(Clone, PartialEq, Eq)]
pub struct PhcHash {
    algorithm: Algorithm,
    version: Version,
    params: Params,
    salt: Vec<u8>,
    output: Vec<u8>,
}

impl PhcHash {
    /// The Argon2 variant.
    #[must_use]
    pub const fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The Argon2 version (16 or 19).
    #[must_use]
    pub const fn version(&self) -> Version {
        self.version
    }

    /// The cost parameters.
    #[must_use]
    pub const fn params(&self) -> &Params {
        &self.params
    }

    /// Length of the stored tag in bytes.
    #[must_use]
    pub fn output_len(&self) -> usize {
        self.output.len()
    }
}

// The salt and tag stay out of logs: together they allow offline guessing.
impl fmt::Debug for PhcHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PhcHash")
            .field("algorithm", &self.algorithm)
            .field("version", &self.version)
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for PhcHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "${}$v={}$m={},t={},p={}${}${}",
            self.algorithm.as_str(),
            u32::from(self.version),
            self.params.memory_cost,
            self.params.time_cost,
            self.params.parallelism,
            STANDARD_NO_PAD.encode(&self.salt),
            STANDARD_NO_PAD.encode(&self.output),
        )
    }
}

impl FromStr for PhcHash {
    type Err = PasswordError;

    fn from_str(s: &str) -> Result<Self, PasswordError> {
        const BAD: PasswordError = PasswordError::HashInvalid;
        if s.len() > MAX_PHC_LEN {
            return Err(BAD);
        }
        let mut fields = s.split('$');
        if fields.next() != Some("") {
            return Err(BAD);
        }
        let algorithm = match fields.next() {
            Some("argon2id") => Algorithm::Argon2id,
            Some("argon2i") => Algorithm::Argon2i,
            Some("argon2d") => Algorithm::Argon2d,
            _ => return Err(BAD),
        };
        let mut field = fields.next().ok_or(BAD)?;
        let version = match field.strip_prefix("v=") {
            Some(v) => {
                field = fields.next().ok_or(BAD)?;
                match parse_decimal(v)? {
                    0x13 => Version::V0x13,
                    0x10 => Version::V0x10,
                    _ => return Err(BAD),
                }
            }
            None => Version::V0x10,
        };
        let (mut m, mut t, mut p) = (None, None, None);
        for pair in field.split(',') {
            let (name, value) = pair.split_once('=').ok_or(BAD)?;
            let slot = match name {
                "m" => &mut m,
                "t" => &mut t,
                "p" => &mut p,
                // keyid/data are legal PHC but never written by argon2-cffi: refuse.
                _ => return Err(BAD),
            };
            if slot.replace(parse_decimal(value)?).is_some() {
                return Err(BAD);
            }
        }
        let (Some(m), Some(t), Some(p)) = (m, t, p) else {
            return Err(BAD);
        };
        let params = Params::new(t, m, p).map_err(|_| BAD)?;
        let salt = decode_b64(
            fields.next().ok_or(BAD)?,
            MIN_STORED_SALT_LEN,
            MAX_STORED_SALT_LEN,
        )?;
        let output = decode_b64(
            fields.next().ok_or(BAD)?,
            MIN_STORED_OUTPUT_LEN,
            MAX_STORED_OUTPUT_LEN,
        )?;
        if fields.next().is_some() {
            return Err(BAD);
        }
        Ok(Self {
            algorithm,
            version,
            params,
            salt,
            output,
        })
    }
}

impl TryFrom<&str> for PhcHash {
    type Error = PasswordError;

    fn try_from(s: &str) -> Result<Self, PasswordError> {
        s.parse()
    }
}

// PHC decimals: ASCII digits, no sign, no leading zero, fits in u32.
fn parse_decimal(s: &str) -> Result<u32, PasswordError> {
    let canonical = !s.is_empty()
        && s.len() <= 10
        && s.bytes().all(|b| b.is_ascii_digit())
        && (s == "0" || !s.starts_with('0'));
    if !canonical {
        return Err(PasswordError::HashInvalid);
    }
    s.parse().map_err(|_| PasswordError::HashInvalid)
}

fn decode_b64(s: &str, min: usize, max: usize) -> Result<Vec<u8>, PasswordError> {
    // Bound the input before decoding: 4 chars per 3 bytes.
    if s.len() > max.saturating_mul(4).div_ceil(3) {
        return Err(PasswordError::HashInvalid);
    }
    let bytes = STANDARD_NO_PAD
        .decode(s)
        .map_err(|_| PasswordError::HashInvalid)?;
    if (min..=max).contains(&bytes.len()) {
        Ok(bytes)
    } else {
        Err(PasswordError::HashInvalid)
    }
}

/// Why hashing or verifying a password failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PasswordError {
    /// The new password has fewer characters than the policy requires.
    TooShort {
        /// Required minimum, in characters.
        min_length: usize,
    },
    /// The password is longer than the byte cap.
    TooLong {
        /// The cap, in UTF-8 bytes.
        max_bytes: usize,
    },
    /// The stored hash is malformed, not Argon2id, or outside the accepted parameter bounds.
    HashInvalid,
    /// Argon2 could not run (typically memory could not be allocated).
    HashFailed,
    /// No random salt could be drawn.
    EntropyUnavailable,
}

impl fmt::Display for PasswordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooShort { min_length } => {
                write!(
                    f,
                    "password too short: use at least {min_length} characters"
                )
            }
            Self::TooLong { max_bytes } => {
                write!(
                    f,
                    "password too long: at most {max_bytes} bytes are accepted"
                )
            }
            Self::HashInvalid => f.write_str(
                "stored password hash is not an Argon2id PHC string within the accepted \
                 parameter bounds; reset the password",
            ),
            Self::HashFailed => f.write_str(
                "password hashing could not run (out of memory?); lower memory_cost or retry",
            ),
            Self::EntropyUnavailable => {
                f.write_str("the system random source is unavailable; cannot make a salt")
            }
        }
    }
}

impl std::error::Error for PasswordError {}

impl ErrorCode for PasswordError {
    fn code(&self) -> &'static str {
        match self {
            Self::TooShort { .. } => "password_too_short",
            Self::TooLong { .. } => "password_too_long",
            Self::HashInvalid => "hash_invalid",
            Self::HashFailed => "password_hash_failed",
            Self::EntropyUnavailable => "entropy_unavailable",
        }
    }
}

impl From<EntropyError> for PasswordError {
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

    const PW: &str = "correct horse battery staple";
    // Made by argon2-cffi 25.1.0 `PasswordHasher(time_cost=3, memory_cost=65536,
    // parallelism=4).hash("correct horse battery staple")` (the seed's settings).
    const CFFI_DEFAULT: &str = "$argon2id$v=19$m=65536,t=3,p=4$wmxPGkC9dlOKXIeyv3bofA$\
                                EHGpHQDDhQK7LdEhN6falNB1xfR9emOeR9GkYoW5HNE";
    // argon2-cffi 25.1.0, `PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)`.
    const CFFI_LOW: &str = "$argon2id$v=19$m=64,t=1,p=1$W8aPdElxD0o988HJQW5VnQ$\
                            TZ+OgJKJ9W6pKAtdlamq/9Gq6Pp/MawzVZjlPwzKlHc";
    // argon2-cffi 25.1.0, same low settings, password "pässwörd ✓".
    const CFFI_UNICODE: &str = "$argon2id$v=19$m=64,t=1,p=1$Yr8Qmg+js21FBFCB3utc3g$\
                                TjwueiEDLn3rETzDPBODfsHG6WM6/kt1KjdN0Tes5M8";
    // argon2-cffi 25.1.0 `low_level.hash_secret(b"password", b"somesalt12345678", time_cost=1,
    // memory_cost=64, parallelism=1, hash_len=32, type=Type.I)`.
    const CFFI_ARGON2I: &str = "$argon2i$v=19$m=64,t=1,p=1$c29tZXNhbHQxMjM0NTY3OA$\
                                8+a5p0avXAtCooZRlS6Pp6nmnVkoqS7qFTqZ2kvfSc4";

    fn low() -> PasswordHasher {
        PasswordHasher::new(Params::new(1, 64, 1).unwrap(), PasswordPolicy::default())
    }

    #[test]
    fn rfc9106_argon2id_vector_ok() {
        // RFC 9106 §5.3: Argon2id with secret and associated data, through the code that
        // `argon2_into` runs.
        let mut out = [0u8; 32];
        Argon2id::new(Version::V0x13, 3, 32, 4)
            .unwrap()
            .with_secret(&[0x03; 8])
            .with_associated_data(&[0x04; 12])
            .hash_into(&[0x01; 32], &[0x02; 16], &mut out)
            .unwrap();
        let expected = [
            0x0d, 0x64, 0x0d, 0xf5, 0x8d, 0x78, 0x76, 0x6c, 0x08, 0xc0, 0x37, 0xa3, 0x4a, 0x8b,
            0x53, 0xc9, 0xd0, 0x1e, 0xf0, 0x45, 0x2d, 0x75, 0xb6, 0x5e, 0xb5, 0x25, 0x20, 0xe9,
            0x6b, 0x01, 0xe6, 0x59,
        ];
        assert_eq!(out, expected);
    }

    #[test]
    fn argon2_cffi_default_hash_ok() {
        let h = PasswordHasher::default();
        assert_eq!(h.verify(CFFI_DEFAULT, PW), Ok(true));
        assert_eq!(
            h.verify(CFFI_DEFAULT, "correct horse battery stapl"),
            Ok(false)
        );
        assert_eq!(h.needs_rehash(CFFI_DEFAULT), Ok(false));
    }

    #[test]
    fn argon2_cffi_low_hash_ok() {
        // Stored params win over configured ones on verify.
        let h = PasswordHasher::default();
        assert_eq!(h.verify(CFFI_LOW, PW), Ok(true));
        assert_eq!(h.needs_rehash(CFFI_LOW), Ok(true));
        assert_eq!(low().verify(CFFI_UNICODE, "pässwörd ✓"), Ok(true));
        assert_eq!(low().verify(CFFI_UNICODE, "passwörd ✓"), Ok(false));
    }

    #[test]
    fn hash_is_argon2_cffi_format_ok() {
        let h = low();
        let phc = h.hash(PW, &mut SeededEntropy::new(1)).unwrap();
        // argon2-cffi 25.1.0 `PasswordHasher().verify(<this string>, PW)` returned True.
        assert_eq!(
            phc,
            "$argon2id$v=19$m=64,t=1,p=1$esXYKmQt2Z2SQfbqpJSTAw$\
             qjGKSfceuNWTXSDRgK6qYXIaNHJxnhSUTmgslhXq0sw"
        );
    }

    #[test]
    fn hash_verify_round_trip_ok() {
        let h = low();
        let mut rng = SeededEntropy::new(2);
        let a = h.hash(PW, &mut rng).unwrap();
        let b = h.hash(PW, &mut rng).unwrap();
        assert_ne!(a, b, "fresh salt each time");
        assert!(a.starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert_eq!(h.verify(&a, PW), Ok(true));
        assert_eq!(h.verify(&b, PW), Ok(true));
        assert_eq!(h.verify(&a, "Correct horse battery staple"), Ok(false));
        assert_eq!(h.needs_rehash(&a), Ok(false));
    }

    #[test]
    fn hash_with_defaults_ok() {
        let h = PasswordHasher::default();
        let phc = h.hash(PW, &mut SeededEntropy::new(3)).unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=65536,t=3,p=4$"));
        assert_eq!(h.verify(&phc, PW), Ok(true));
        assert!(!h.dummy_verify(PW));
    }

    #[test]
    fn needs_rehash_cases_ok() {
        let h = low();
        let phc = h.hash(PW, &mut SeededEntropy::new(4)).unwrap();
        for (t, m, p) in [(2, 64, 1), (1, 128, 1), (1, 64, 2)] {
            let other =
                PasswordHasher::new(Params::new(t, m, p).unwrap(), PasswordPolicy::default());
            assert_eq!(other.needs_rehash(&phc), Ok(true), "t={t} m={m} p={p}");
        }
        // Version 16 (no `v=`), other output length, other algorithm.
        let v16 = phc.replace("$v=19", "");
        assert_eq!(h.needs_rehash(&v16), Ok(true));
        let short = h.hash(PW, &mut SeededEntropy::new(4)).unwrap();
        let (head, _) = short.rsplit_once('$').unwrap();
        let short = format!("{head}${}", STANDARD_NO_PAD.encode([7u8; 16]));
        assert_eq!(h.needs_rehash(&short), Ok(true));
        assert_eq!(h.needs_rehash(CFFI_ARGON2I), Ok(true));
    }

    #[test]
    fn version_16_verifies_ok() {
        let h = low();
        let params = argon2::Params::new(64, 1, 1, Some(32)).unwrap();
        let mut out = [0u8; 32];
        // The `argon2` crate as an independent reference for version 16.
        argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x10, params)
            .hash_password_into(PW.as_bytes(), b"saltsaltsalt", &mut out)
            .unwrap();
        let phc = format!(
            "$argon2id$m=64,t=1,p=1${}${}",
            STANDARD_NO_PAD.encode(b"saltsaltsalt"),
            STANDARD_NO_PAD.encode(out)
        );
        assert_eq!(h.verify(&phc, PW), Ok(true));
        assert_eq!(h.verify(&phc.replace("$m=", "$v=16$m="), PW), Ok(true));
        assert_eq!(h.verify(&phc.replace("$m=", "$v=19$m="), PW), Ok(false));
    }

    #[test]
    fn argon2i_refused_on_verify_fails() {
        assert_eq!(
            low().verify(CFFI_ARGON2I, "password"),
            Err(PasswordError::HashInvalid)
        );
    }

    #[test]
    fn malformed_hash_fails() {
        let h = low();
        let (salt, out) = (
            "W8aPdElxD0o988HJQW5VnQ",
            "TZ+OgJKJ9W6pKAtdlamq/9Gq6Pp/MawzVZjlPwzKlHc",
        );
        let bad = [
            String::new(),
            "plain".into(),
            "$2b$12$abcdefghijklmnopqrstuuJw5b1y5Q1w5b1y5Q1w5b1y5Q1w5b1y5".into(),
            format!("$argon2x$v=19$m=64,t=1,p=1${salt}${out}"),
            format!("$argon2id$v=18$m=64,t=1,p=1${salt}${out}"),
            format!("$argon2id$v=19$m=64,t=1${salt}${out}"),
            format!("$argon2id$v=19$m=64,t=1,p=1,p=1${salt}${out}"),
            format!("$argon2id$v=19$m=64,t=1,p=1,keyid=AAAA${salt}${out}"),
            format!("$argon2id$v=19$m=064,t=1,p=1${salt}${out}"),
            format!("$argon2id$v=19$m=+64,t=1,p=1${salt}${out}"),
            format!("$argon2id$v=19$m=99999999999,t=1,p=1${salt}${out}"),
            format!("$argon2id$v=19$m=64,t=1,p=1${salt}"),
            format!("$argon2id$v=19$m=64,t=1,p=1${salt}${out}$"),
            format!("$argon2id$v=19$m=64,t=1,p=1${salt}=${out}"),
            format!("$argon2id$v=19$m=64,t=1,p=1$AAAA${out}"),
            format!("$argon2id$v=19$m=64,t=1,p=1${salt}$AAAAAAAA"),
            format!("$argon2id$v=19$m=64,t=1,p=1${salt}${out}!"),
            // Over the DoS bounds: 2 GiB, 11 passes, 17 lanes.
            format!("$argon2id$v=19$m=2097152,t=1,p=1${salt}${out}"),
            format!("$argon2id$v=19$m=64,t=11,p=1${salt}${out}"),
            format!("$argon2id$v=19$m=1024,t=1,p=17${salt}${out}"),
            format!("$argon2id$v=19$m=8,t=1,p=2${salt}${out}"),
            format!("$argon2id$v=19$m=64,t=1,p=1${}${out}", "A".repeat(300)),
        ];
        for phc in &bad {
            assert_eq!(h.verify(phc, PW), Err(PasswordError::HashInvalid), "{phc}");
            assert_eq!(
                h.needs_rehash(phc),
                Err(PasswordError::HashInvalid),
                "{phc}"
            );
        }
    }

    #[test]
    fn phc_round_trip_ok() {
        for s in [CFFI_DEFAULT, CFFI_LOW, CFFI_UNICODE, CFFI_ARGON2I] {
            let parsed: PhcHash = s.parse().unwrap();
            assert_eq!(parsed.to_string(), s);
            assert_eq!(PhcHash::try_from(s).unwrap(), parsed);
        }
        let p: PhcHash = CFFI_DEFAULT.parse().unwrap();
        assert_eq!(p.params(), &Params::DEFAULT);
        assert_eq!(p.output_len(), OUTPUT_LEN);
        assert!(!format!("{p:?}").contains("EHGpHQ"));
    }

    #[test]
    fn policy_edges_ok() {
        let h = low();
        let mut rng = SeededEntropy::new(5);
        assert!(h.hash("abcdefgh", &mut rng).is_ok());
        assert!(h.hash(&"x".repeat(64), &mut rng).is_ok());
        assert!(h.hash(&"x".repeat(1024), &mut rng).is_ok());
        // Multi-byte characters count once: 8 × "é" is 16 bytes, 8 characters.
        assert!(h.hash(&"é".repeat(8), &mut rng).is_ok());
        // 64 four-byte characters (256 bytes) are accepted.
        assert!(h.hash(&"𝄞".repeat(64), &mut rng).is_ok());
        let policy = PasswordPolicy::new(64).unwrap();
        assert!(policy.check(&"é".repeat(64)).is_ok());
    }

    #[test]
    fn policy_edges_fails() {
        let h = low();
        let mut rng = SeededEntropy::new(6);
        assert_eq!(
            h.hash("abcdefg", &mut rng),
            Err(PasswordError::TooShort { min_length: 8 })
        );
        assert_eq!(
            h.hash(&"é".repeat(7), &mut rng),
            Err(PasswordError::TooShort { min_length: 8 })
        );
        assert_eq!(
            h.hash(&"x".repeat(1025), &mut rng),
            Err(PasswordError::TooLong { max_bytes: 1024 })
        );
        // 1023 ASCII + one 2-byte char = 1025 bytes, 1024 characters.
        let long = format!("{}é", "x".repeat(1023));
        assert_eq!(
            h.hash(&long, &mut rng),
            Err(PasswordError::TooLong { max_bytes: 1024 })
        );
        assert_eq!(
            h.hash("", &mut rng).unwrap_err().code(),
            "password_too_short"
        );
    }

    #[test]
    fn verify_long_password_fails() {
        let h = low();
        assert_eq!(
            h.verify(CFFI_LOW, &"x".repeat(1025)),
            Err(PasswordError::TooLong { max_bytes: 1024 })
        );
        // Checked before the hash is even parsed.
        assert_eq!(
            h.verify("garbage", &"x".repeat(1025)).unwrap_err().code(),
            "password_too_long"
        );
        assert!(!h.dummy_verify(&"x".repeat(1025)));
    }

    #[test]
    fn verify_skips_min_length_ok() {
        let h = PasswordHasher::new(
            Params::new(1, 64, 1).unwrap(),
            PasswordPolicy::new(12).unwrap(),
        );
        let phc = low().hash("abcdefgh", &mut SeededEntropy::new(7)).unwrap();
        assert_eq!(h.verify(&phc, "abcdefgh"), Ok(true));
        assert_eq!(h.verify(&phc, ""), Ok(false));
    }

    #[test]
    fn dummy_verify_is_false_ok() {
        let h = low();
        assert!(!h.dummy_verify(PW));
        assert!(!h.dummy_verify(""));
    }

    struct NoEntropy;
    impl Entropy for NoEntropy {
        fn fill(&mut self, _: &mut [u8]) -> Result<(), EntropyError> {
            Err(EntropyError)
        }
    }

    #[test]
    fn entropy_unavailable_fails() {
        let e = low().hash(PW, &mut NoEntropy).unwrap_err();
        assert_eq!(e, PasswordError::EntropyUnavailable);
        assert_eq!(e.code(), "entropy_unavailable");
    }

    #[test]
    fn params_bounds_fails() {
        assert_eq!(Params::new(0, 64, 1).unwrap_err().field, "time_cost");
        assert_eq!(Params::new(11, 64, 1).unwrap_err().field, "time_cost");
        assert_eq!(Params::new(1, 7, 1).unwrap_err().field, "memory_cost");
        assert_eq!(
            Params::new(1, 1_048_577, 1).unwrap_err().field,
            "memory_cost"
        );
        assert_eq!(Params::new(1, 64, 0).unwrap_err().field, "parallelism");
        assert_eq!(Params::new(1, 64, 17).unwrap_err().field, "parallelism");
        assert_eq!(Params::new(1, 8, 2).unwrap_err().field, "memory_cost");
        assert!(Params::new(10, 1_048_576, 16).is_ok());
        assert_eq!(PasswordPolicy::new(0).unwrap_err().field, "min_length");
        assert_eq!(PasswordPolicy::new(65).unwrap_err().field, "min_length");
    }

    #[test]
    fn config_deserialize_ok() {
        let h: PasswordHasher = serde_json::from_str("{}").unwrap();
        assert_eq!(h, PasswordHasher::default());
        assert_eq!(h.params(), &Params::new(3, 65_536, 4).unwrap());
        assert_eq!(h.policy().min_length(), 8);
        let h: PasswordHasher = serde_json::from_str(
            r#"{"time_cost":2,"memory_cost":19456,"parallelism":1,"min_length":12}"#,
        )
        .unwrap();
        assert_eq!(h.params().memory_cost(), 19_456);
        assert_eq!(h.policy().min_length(), 12);
    }

    #[test]
    fn config_deserialize_fails() {
        for json in [
            r#"{"time_cost":0}"#,
            r#"{"memory_cost":2000000}"#,
            r#"{"min_length":100}"#,
            r#"{"pepper":"x"}"#,
            r#"{"time_cost":-1}"#,
        ] {
            assert!(
                serde_json::from_str::<PasswordHasher>(json).is_err(),
                "{json}"
            );
        }
        let err = serde_json::from_str::<PasswordHasher>(r#"{"memory_cost":2000000}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("memory_cost"), "{err}");
    }

    #[test]
    fn error_codes_ok() {
        let all = [
            (
                PasswordError::TooShort { min_length: 8 },
                "password_too_short",
            ),
            (
                PasswordError::TooLong { max_bytes: 1024 },
                "password_too_long",
            ),
            (PasswordError::HashInvalid, "hash_invalid"),
            (PasswordError::HashFailed, "password_hash_failed"),
            (PasswordError::EntropyUnavailable, "entropy_unavailable"),
        ];
        for (e, code) in all {
            assert_eq!(e.code(), code);
            assert!(!e.to_string().is_empty());
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn arbitrary_strings_never_panic(phc in ".{0,300}", pw in ".{0,40}") {
            let h = low();
            let v = h.verify(&phc, &pw);
            prop_assert!(v.is_err() || v == Ok(false));
            let _ = h.needs_rehash(&phc);
            let _ = phc.parse::<PhcHash>();
        }

        #[test]
        fn phc_shaped_strings_never_panic(
            phc in "\\$argon2(id|i|d)(\\$v=[0-9]{1,3})?\\$m=[0-9]{1,3},t=[0-2],p=[0-3]\\$[A-Za-z0-9+/]{0,30}\\$[A-Za-z0-9+/]{0,60}",
            pw in ".{0,20}",
        ) {
            let h = low();
            if let Ok(parsed) = phc.parse::<PhcHash>() {
                prop_assert!(parsed.to_string().parse::<PhcHash>().is_ok());
            }
            let _ = h.verify(&phc, &pw);
            let _ = h.needs_rehash(&phc);
        }
    }
}
