//! Time-based one-time passwords (RFC 6238) over the `hmac` crate, with the time passed in.
//!
//! Secrets are RFC 4648 base32 without padding, as pyotp and authenticator apps use them.
//! [`verify`] returns the matched time step; store it and pass it back as `last_used_step`
//! so a code cannot be used twice (RFC 6238 §5.2).

use crate::entropy::{Entropy, EntropyError};
use crate::{ConfigError, ErrorCode};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use std::fmt;
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};

/// Bytes in a secret made by [`generate_secret`]: 160 bits, RFC 4226's recommendation.
pub const SECRET_BYTES: usize = 20;
/// Fewest secret bytes accepted: 128 bits, RFC 4226's minimum.
pub const MIN_SECRET_BYTES: usize = 16;
/// Most secret bytes accepted (bounds work on input).
pub const MAX_SECRET_BYTES: usize = 128;
/// Longest account name or issuer accepted in a provisioning URI, in bytes.
pub const MAX_LABEL_BYTES: usize = 256;

/// The HMAC hash behind the codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TotpAlgorithm {
    /// HMAC-SHA1: what every authenticator app supports.
    #[default]
    Sha1,
    /// HMAC-SHA256.
    Sha256,
    /// HMAC-SHA512.
    Sha512,
}

impl TotpAlgorithm {
    /// The name used in `otpauth://` URIs.
    #[must_use]
    pub const fn uri_name(self) -> &'static str {
        match self {
            Self::Sha1 => "SHA1",
            Self::Sha256 => "SHA256",
            Self::Sha512 => "SHA512",
        }
    }
}

/// HMAC keyed once with a decoded secret; each step clones it, so the key's inner and outer
/// pads are hashed once per verify instead of once per step.
enum KeyedMac {
    Sha1(Hmac<sha1::Sha1>),
    Sha256(Hmac<sha2::Sha256>),
    Sha512(Hmac<sha2::Sha512>),
}

impl KeyedMac {
    fn new(algorithm: TotpAlgorithm, key: &[u8]) -> Result<Self, TotpError> {
        // HMAC takes keys of any length; the error arm is unreachable but stays closed.
        let bad = |_| TotpError::SecretInvalid;
        Ok(match algorithm {
            TotpAlgorithm::Sha1 => Self::Sha1(Hmac::new_from_slice(key).map_err(bad)?),
            TotpAlgorithm::Sha256 => Self::Sha256(Hmac::new_from_slice(key).map_err(bad)?),
            TotpAlgorithm::Sha512 => Self::Sha512(Hmac::new_from_slice(key).map_err(bad)?),
        })
    }

    /// RFC 4226 §5.3 HOTP for `counter`: dynamic truncation of the HMAC, modulo 10^digits.
    fn hotp(&self, counter: u64, digits: u8) -> u32 {
        fn run<M: Mac + Clone>(mac: &M, counter: u64) -> u32 {
            let mut mac = mac.clone();
            mac.update(&counter.to_be_bytes());
            let h = mac.finalize().into_bytes();
            // The offset is the low nibble of the last byte; digests are ≥ 20 bytes, so the
            // four bytes at offset ≤ 15 always exist.
            let offset = usize::from(h.last().copied().unwrap_or(0) & 0x0f);
            match h.get(offset..offset + 4) {
                Some(&[a, b, c, d]) => u32::from_be_bytes([a & 0x7f, b, c, d]),
                _ => 0,
            }
        }
        let value = match self {
            Self::Sha1(m) => run(m, counter),
            Self::Sha256(m) => run(m, counter),
            Self::Sha512(m) => run(m, counter),
        };
        value % 10u32.pow(u32::from(digits))
    }
}

/// TOTP settings. Always within the bounds below.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawTotpConfig")]
pub struct TotpConfig {
    algorithm: TotpAlgorithm,
    digits: u8,
    period: u64,
    window: u8,
}

/// TOTP settings as written in JSON.
#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawTotpConfig {
    /// `"sha1"`, `"sha256"` or `"sha512"`. Defaults to `"sha1"`.
    algorithm: TotpAlgorithm,
    /// Code length, 6 to 8. Defaults to 6.
    digits: u8,
    /// Seconds per time step, 15 to 120. Defaults to 30.
    period: u64,
    /// Steps accepted either side of now, 0 to 5. Defaults to 1.
    window: u8,
}

impl Default for RawTotpConfig {
    fn default() -> Self {
        let d = TotpConfig::DEFAULT;
        Self {
            algorithm: d.algorithm,
            digits: d.digits,
            period: d.period,
            window: d.window,
        }
    }
}

impl TryFrom<RawTotpConfig> for TotpConfig {
    type Error = ConfigError;

    fn try_from(raw: RawTotpConfig) -> Result<Self, ConfigError> {
        Self::new(raw.algorithm, raw.digits, raw.period, raw.window)
    }
}

impl TotpConfig {
    /// Shortest code (RFC 4226).
    pub const MIN_DIGITS: u8 = 6;
    /// Longest code (RFC 4226 allows 8 with 31-bit truncation).
    pub const MAX_DIGITS: u8 = 8;
    /// Shortest step in seconds.
    pub const MIN_PERIOD: u64 = 15;
    /// Longest step in seconds.
    pub const MAX_PERIOD: u64 = 120;
    /// Most steps accepted either side of now.
    pub const MAX_WINDOW: u8 = 5;

    /// The seed's settings (pyotp defaults with `valid_window=1`): SHA-1, 6 digits, 30 s,
    /// one step either side.
    pub const DEFAULT: Self = Self {
        algorithm: TotpAlgorithm::Sha1,
        digits: 6,
        period: 30,
        window: 1,
    };

    /// Checked constructor.
    ///
    /// # Errors
    /// [`ConfigError`] naming `digits`, `period` or `window` when out of bounds.
    pub fn new(
        algorithm: TotpAlgorithm,
        digits: u8,
        period: u64,
        window: u8,
    ) -> Result<Self, ConfigError> {
        if !(Self::MIN_DIGITS..=Self::MAX_DIGITS).contains(&digits) {
            return Err(ConfigError::new(
                "digits",
                format!("must be {} to {}", Self::MIN_DIGITS, Self::MAX_DIGITS),
            ));
        }
        if !(Self::MIN_PERIOD..=Self::MAX_PERIOD).contains(&period) {
            return Err(ConfigError::new(
                "period",
                format!(
                    "must be {} to {} seconds",
                    Self::MIN_PERIOD,
                    Self::MAX_PERIOD
                ),
            ));
        }
        if window > Self::MAX_WINDOW {
            return Err(ConfigError::new(
                "window",
                format!("must be 0 to {} steps", Self::MAX_WINDOW),
            ));
        }
        Ok(Self {
            algorithm,
            digits,
            period,
            window,
        })
    }

    /// The HMAC hash.
    #[must_use]
    pub const fn algorithm(&self) -> TotpAlgorithm {
        self.algorithm
    }

    /// Code length.
    #[must_use]
    pub const fn digits(&self) -> u8 {
        self.digits
    }

    /// Seconds per step.
    #[must_use]
    pub const fn period(&self) -> u64 {
        self.period
    }

    /// Steps accepted either side of now.
    #[must_use]
    pub const fn window(&self) -> u8 {
        self.window
    }

    fn keyed(&self, secret: &str) -> Result<KeyedMac, TotpError> {
        KeyedMac::new(self.algorithm, &decode_secret(secret)?)
    }
}

impl Default for TotpConfig {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A new 160-bit secret in base32 without padding (32 characters), like `pyotp.random_base32()`.
///
/// # Errors
/// [`TotpError::EntropyUnavailable`] when the random source fails.
pub fn generate_secret(rng: &mut impl Entropy) -> Result<String, TotpError> {
    let bytes: [u8; SECRET_BYTES] = rng.bytes()?;
    Ok(base32_encode(&bytes))
}

/// The `otpauth://totp/…` URI for an authenticator app, in exactly pyotp's form:
/// `otpauth://totp/Issuer:account?secret=…&issuer=…`, then `algorithm`, `digits`, `period`
/// only when they differ from the defaults.
///
/// # Errors
/// [`TotpError::SecretInvalid`] for a bad secret, [`TotpError::LabelInvalid`] for an empty or
/// over-long account name or issuer.
pub fn provisioning_uri(
    cfg: &TotpConfig,
    secret: &str,
    account_name: &str,
    issuer: &str,
) -> Result<String, TotpError> {
    let key = decode_secret(secret)?;
    for (field, value) in [("account_name", account_name), ("issuer", issuer)] {
        if value.is_empty() || value.len() > MAX_LABEL_BYTES {
            return Err(TotpError::LabelInvalid { field });
        }
    }
    let mut uri = String::from("otpauth://totp/");
    // pyotp: label = quote(issuer) + ":" + quote(name), with quote's default safe="/".
    percent_encode(issuer, "/", &mut uri);
    uri.push(':');
    percent_encode(account_name, "/", &mut uri);
    uri.push_str("?secret=");
    uri.push_str(&base32_encode(&key));
    // pyotp: urlencode (quote_plus, nothing safe) with "+" then turned into "%20".
    uri.push_str("&issuer=");
    percent_encode(issuer, "", &mut uri);
    if cfg.algorithm != TotpAlgorithm::Sha1 {
        uri.push_str("&algorithm=");
        uri.push_str(cfg.algorithm.uri_name());
    }
    if cfg.digits != 6 {
        uri.push_str(&format!("&digits={}", cfg.digits));
    }
    if cfg.period != 30 {
        uri.push_str(&format!("&period={}", cfg.period));
    }
    Ok(uri)
}

/// The code for the time step containing `now` (Unix seconds).
///
/// # Errors
/// [`TotpError::SecretInvalid`] when `secret` is not base32 of 128 to 1024 bits.
pub fn generate(cfg: &TotpConfig, secret: &str, now: u64) -> Result<String, TotpError> {
    let code = cfg.keyed(secret)?.hotp(now / cfg.period, cfg.digits);
    Ok(format!("{code:0width$}", width = usize::from(cfg.digits)))
}

/// Checks `code` against the steps `now / period ± window` and returns the step it matched.
/// Pass the step stored after the last successful login as `last_used_step`: a code from that
/// step or earlier is refused, so each code works once.
///
/// # Errors
/// [`TotpError::SecretInvalid`] for a bad secret, [`TotpError::Invalid`] when `code` is not
/// exactly `digits` ASCII digits or matches no step in the window, [`TotpError::Replayed`]
/// when it matches a step at or before `last_used_step`.
pub fn verify(
    cfg: &TotpConfig,
    secret: &str,
    code: &str,
    now: u64,
    last_used_step: Option<u64>,
) -> Result<u64, TotpError> {
    let mac = cfg.keyed(secret)?;
    if code.len() != usize::from(cfg.digits) || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(TotpError::Invalid);
    }
    // At most 8 ASCII digits: the value fits in u32. The code is the caller's, not a secret.
    let given = code.bytes().fold(0u32, |n, b| n * 10 + u32::from(b - b'0'));
    let current = now / cfg.period;
    let window = u64::from(cfg.window);
    let mut found = Choice::from(0);
    let mut matched = 0u64;
    // Every step is computed and compared; the last match wins, so on a (rare) collision the
    // later step is recorded, which only narrows what can be replayed.
    for step in current.saturating_sub(window)..=current.saturating_add(window) {
        // A step whose start time does not fit in u64 seconds is not a real time.
        if step.checked_mul(cfg.period).is_none() {
            continue;
        }
        let eq = mac.hotp(step, cfg.digits).ct_eq(&given);
        matched.conditional_assign(&step, eq);
        found |= eq;
    }
    if !bool::from(found) {
        return Err(TotpError::Invalid);
    }
    match last_used_step {
        Some(last) if matched <= last => Err(TotpError::Replayed),
        _ => Ok(matched),
    }
}

fn decode_secret(secret: &str) -> Result<Vec<u8>, TotpError> {
    // Bound the work before decoding: 8 characters per 5 bytes, plus padding.
    if secret.len()
        > MAX_SECRET_BYTES
            .saturating_mul(8)
            .div_ceil(5)
            .saturating_add(8)
    {
        return Err(TotpError::SecretInvalid);
    }
    let key = base32_decode(secret).ok_or(TotpError::SecretInvalid)?;
    if (MIN_SECRET_BYTES..=MAX_SECRET_BYTES).contains(&key.len()) {
        Ok(key)
    } else {
        Err(TotpError::SecretInvalid)
    }
}

const BASE32_ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// RFC 4648 base32, upper case, no padding.
pub(crate) fn base32_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().saturating_mul(8).div_ceil(5));
    let mut buffer = 0u16;
    let mut bits = 0u32;
    for &b in bytes {
        buffer = (buffer << 8) | u16::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(base32_char(buffer >> bits));
        }
    }
    if bits > 0 {
        out.push(base32_char(buffer << (5 - bits)));
    }
    out
}

fn base32_char(v: u16) -> char {
    let i = usize::from(v & 0x1f);
    BASE32_ALPHABET.get(i).map_or('A', |&c| char::from(c))
}

/// RFC 4648 base32 as pyotp reads it: either case, padding optional but correct when present.
/// `None` on any other character or an impossible length.
pub(crate) fn base32_decode(s: &str) -> Option<Vec<u8>> {
    let body = s.trim_end_matches('=');
    if body.len() != s.len() && !s.len().is_multiple_of(8) {
        return None;
    }
    // 1, 3 or 6 trailing characters cannot come from whole bytes.
    if matches!(body.len() % 8, 1 | 3 | 6) {
        return None;
    }
    let mut out = Vec::with_capacity(body.len() * 5 / 8);
    let mut buffer = 0u16;
    let mut bits = 0u32;
    for c in body.bytes() {
        let v = match c.to_ascii_uppercase() {
            c @ b'A'..=b'Z' => c - b'A',
            c @ b'2'..=b'7' => c - b'2' + 26,
            _ => return None,
        };
        buffer = ((buffer << 5) | u16::from(v)) & 0x0fff;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(((buffer >> bits) & 0xff) as u8);
        }
    }
    Some(out)
}

fn percent_encode(s: &str, safe: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"_.-~".contains(&b) || safe.as_bytes().contains(&b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            for nibble in [b >> 4, b & 0x0f] {
                out.push(HEX.get(usize::from(nibble)).map_or('0', |&c| char::from(c)));
            }
        }
    }
}

/// Why a TOTP operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TotpError {
    /// The code is malformed or matches no step in the window.
    Invalid,
    /// The code matches a step already used.
    Replayed,
    /// The secret is not base32, or decodes to fewer than 128 or more than 1024 bits.
    SecretInvalid,
    /// An account name or issuer for a provisioning URI is empty or too long.
    LabelInvalid {
        /// `account_name` or `issuer`.
        field: &'static str,
    },
    /// No random secret could be drawn.
    EntropyUnavailable,
}

impl fmt::Display for TotpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Invalid => f.write_str(
                "the one-time code is wrong or expired; enter the current code from the app",
            ),
            Self::Replayed => f.write_str(
                "this one-time code was already used; wait for the next code from the app",
            ),
            Self::SecretInvalid => f.write_str(
                "the TOTP secret is not base32 of 128 to 1024 bits; set up the authenticator again",
            ),
            Self::LabelInvalid { field } => write!(
                f,
                "the TOTP {field} must be 1 to {MAX_LABEL_BYTES} bytes long"
            ),
            Self::EntropyUnavailable => {
                f.write_str("the system random source is unavailable; cannot make a TOTP secret")
            }
        }
    }
}

impl std::error::Error for TotpError {}

impl ErrorCode for TotpError {
    fn code(&self) -> &'static str {
        match self {
            Self::Invalid => "totp_invalid",
            Self::Replayed => "totp_replayed",
            Self::SecretInvalid => "totp_secret_invalid",
            Self::LabelInvalid { .. } => "totp_label_invalid",
            Self::EntropyUnavailable => "entropy_unavailable",
        }
    }
}

impl From<EntropyError> for TotpError {
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

    const S: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";

    fn cfg8(algorithm: TotpAlgorithm) -> TotpConfig {
        TotpConfig::new(algorithm, 8, 30, 1).unwrap()
    }

    #[test]
    fn rfc6238_appendix_b_ok() {
        let seeds = [
            (TotpAlgorithm::Sha1, &b"12345678901234567890"[..]),
            (
                TotpAlgorithm::Sha256,
                &b"12345678901234567890123456789012"[..],
            ),
            (
                TotpAlgorithm::Sha512,
                &b"1234567890123456789012345678901234567890123456789012345678901234"[..],
            ),
        ];
        let vectors: [(u64, [&str; 3]); 6] = [
            (59, ["94287082", "46119246", "90693936"]),
            (1_111_111_109, ["07081804", "68084774", "25091201"]),
            (1_111_111_111, ["14050471", "67062674", "99943326"]),
            (1_234_567_890, ["89005924", "91819424", "93441116"]),
            (2_000_000_000, ["69279037", "90698825", "38618901"]),
            (20_000_000_000, ["65353130", "77737706", "47863826"]),
        ];
        for (i, (algorithm, seed)) in seeds.into_iter().enumerate() {
            let secret = base32_encode(seed);
            let cfg = cfg8(algorithm);
            for (time, codes) in vectors {
                assert_eq!(generate(&cfg, &secret, time).unwrap(), codes[i]);
                assert_eq!(verify(&cfg, &secret, codes[i], time, None), Ok(time / 30));
            }
        }
    }

    #[test]
    fn pyotp_code_ok() {
        // pyotp 2.12.1: TOTP("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP").at(1700000000) == "406058".
        let cfg = TotpConfig::default();
        assert_eq!(generate(&cfg, S, 1_700_000_000).unwrap(), "406058");
        assert_eq!(
            generate(&cfg, &S.to_lowercase(), 1_700_000_000).unwrap(),
            "406058"
        );
        assert_eq!(
            verify(&cfg, S, "406058", 1_700_000_000, None),
            Ok(1_700_000_000 / 30)
        );
    }

    #[test]
    fn window_one_step_ok() {
        let cfg = TotpConfig::default();
        let now: u64 = 1_700_000_000;
        let step = now / 30;
        for delta in [-1i64, 0, 1] {
            let code = generate(&cfg, S, now.saturating_add_signed(delta * 30)).unwrap();
            assert_eq!(
                verify(&cfg, S, &code, now, None),
                Ok(step.saturating_add_signed(delta))
            );
        }
    }

    #[test]
    fn window_two_steps_fails() {
        let cfg = TotpConfig::default();
        let now: u64 = 1_700_000_000;
        for delta in [-2i64, 2] {
            let code = generate(&cfg, S, now.saturating_add_signed(delta * 30)).unwrap();
            assert_eq!(verify(&cfg, S, &code, now, None), Err(TotpError::Invalid));
        }
        let wide = TotpConfig::new(TotpAlgorithm::Sha1, 6, 30, 2).unwrap();
        let code = generate(&cfg, S, now + 60).unwrap();
        assert_eq!(verify(&wide, S, &code, now, None), Ok(now / 30 + 2));
    }

    #[test]
    fn replay_fails() {
        let cfg = TotpConfig::default();
        let now: u64 = 1_700_000_000;
        let code = generate(&cfg, S, now).unwrap();
        let step = verify(&cfg, S, &code, now, None).unwrap();
        assert_eq!(
            verify(&cfg, S, &code, now, Some(step)),
            Err(TotpError::Replayed)
        );
        assert_eq!(
            verify(&cfg, S, &code, now + 20, Some(step)),
            Err(TotpError::Replayed)
        );
        // An older code from the window is refused once a newer step was used.
        let previous = generate(&cfg, S, now - 30).unwrap();
        assert_eq!(
            verify(&cfg, S, &previous, now, Some(step)),
            Err(TotpError::Replayed)
        );
        // The next step's code still works.
        let next = generate(&cfg, S, now + 30).unwrap();
        assert_eq!(verify(&cfg, S, &next, now + 30, Some(step)), Ok(step + 1));
        assert_eq!(TotpError::Replayed.code(), "totp_replayed");
    }

    #[test]
    fn wrong_or_malformed_code_fails() {
        let cfg = TotpConfig::default();
        let now: u64 = 1_700_000_000;
        let good = generate(&cfg, S, now).unwrap();
        let wrong = format!("{:06}", (good.parse::<u32>().unwrap() + 1) % 1_000_000);
        for code in [
            wrong.as_str(),
            "",
            "40605",
            "4060588",
            "40605a",
            "+06058",
            " 406058",
            "４０６０５８",
            "406 058",
        ] {
            assert_eq!(
                verify(&cfg, S, code, now, None),
                Err(TotpError::Invalid),
                "{code:?}"
            );
        }
    }

    #[test]
    fn bad_secret_fails() {
        let cfg = TotpConfig::default();
        for secret in [
            "",
            "JBSWY3DPEHPK3PXP", // 80 bits
            "JBSWY3DPEHPK3PX1JBSWY3DPEHPK3PXP",
            "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3P", // 30 chars: impossible length
            "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP=",
            "JBSWY3DP EHPK3PXPJBSWY3DPEHPK3PXP",
            &"A".repeat(1000),
        ] {
            assert_eq!(
                generate(&cfg, secret, 0),
                Err(TotpError::SecretInvalid),
                "{secret}"
            );
            assert_eq!(
                verify(&cfg, secret, "123456", 0, None),
                Err(TotpError::SecretInvalid)
            );
            assert_eq!(
                provisioning_uri(&cfg, secret, "a", "b"),
                Err(TotpError::SecretInvalid)
            );
        }
    }

    #[test]
    fn base32_round_trip_ok() {
        for len in 0..=40 {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let enc = base32_encode(&bytes);
            assert_eq!(base32_decode(&enc).unwrap(), bytes);
            let padded = format!("{enc}{}", "=".repeat((8 - enc.len() % 8) % 8));
            assert_eq!(base32_decode(&padded).unwrap(), bytes);
        }
        assert_eq!(base32_encode(b"foobar"), "MZXW6YTBOI");
        assert_eq!(base32_decode("mzxw6ytboi").unwrap(), b"foobar");
    }

    #[test]
    fn generate_secret_ok() {
        let mut rng = SeededEntropy::new(1);
        let a = generate_secret(&mut rng).unwrap();
        let b = generate_secret(&mut rng).unwrap();
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        assert!(a.bytes().all(|c| BASE32_ALPHABET.contains(&c)));
        assert_eq!(base32_decode(&a).unwrap().len(), SECRET_BYTES);
    }

    #[test]
    fn provisioning_uri_matches_pyotp_ok() {
        // Expected strings from pyotp 2.12.1 `TOTP(s, …).provisioning_uri(name=…, issuer_name=…)`.
        let d = TotpConfig::default();
        let cases = [
            (d, "alice@example.com", "MyApp",
             "otpauth://totp/MyApp:alice%40example.com?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=MyApp"),
            (d, "a b+c/d:e?&=", "My App:Co",
             "otpauth://totp/My%20App%3ACo:a%20b%2Bc/d%3Ae%3F%26%3D?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=My%20App%3ACo"),
            (d, "bob", "Ä Corp",
             "otpauth://totp/%C3%84%20Corp:bob?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=%C3%84%20Corp"),
            (TotpConfig::new(TotpAlgorithm::Sha256, 8, 60, 1).unwrap(), "alice@example.com", "MyApp",
             "otpauth://totp/MyApp:alice%40example.com?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=MyApp&algorithm=SHA256&digits=8&period=60"),
            (TotpConfig::new(TotpAlgorithm::Sha512, 6, 30, 1).unwrap(), "alice@example.com", "MyApp",
             "otpauth://totp/MyApp:alice%40example.com?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=MyApp&algorithm=SHA512"),
        ];
        for (cfg, name, issuer, expected) in cases {
            assert_eq!(provisioning_uri(&cfg, S, name, issuer).unwrap(), expected);
        }
        // A lower-case secret comes out canonical.
        assert!(provisioning_uri(&d, &S.to_lowercase(), "a", "b")
            .unwrap()
            .contains("secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&"));
    }

    #[test]
    fn provisioning_uri_label_fails() {
        let d = TotpConfig::default();
        assert_eq!(
            provisioning_uri(&d, S, "", "MyApp"),
            Err(TotpError::LabelInvalid {
                field: "account_name"
            })
        );
        assert_eq!(
            provisioning_uri(&d, S, "bob", &"x".repeat(257)),
            Err(TotpError::LabelInvalid { field: "issuer" })
        );
    }

    #[test]
    fn config_deserialize_ok() {
        let c: TotpConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(c, TotpConfig::default());
        let c: TotpConfig =
            serde_json::from_str(r#"{"algorithm":"sha512","digits":8,"period":60,"window":0}"#)
                .unwrap();
        assert_eq!(c, TotpConfig::new(TotpAlgorithm::Sha512, 8, 60, 0).unwrap());
        assert_eq!(c.algorithm(), TotpAlgorithm::Sha512);
        assert_eq!((c.digits(), c.period(), c.window()), (8, 60, 0));
    }

    #[test]
    fn config_deserialize_fails() {
        for json in [
            r#"{"algorithm":"SHA1"}"#,
            r#"{"algorithm":"md5"}"#,
            r#"{"digits":5}"#,
            r#"{"digits":9}"#,
            r#"{"period":14}"#,
            r#"{"period":121}"#,
            r#"{"window":6}"#,
            r#"{"skew":1}"#,
        ] {
            assert!(serde_json::from_str::<TotpConfig>(json).is_err(), "{json}");
        }
        assert_eq!(
            TotpConfig::new(TotpAlgorithm::Sha1, 6, 30, 9)
                .unwrap_err()
                .field,
            "window"
        );
    }

    #[test]
    fn extreme_times_ok() {
        let cfg = TotpConfig::new(TotpAlgorithm::Sha1, 6, 15, 5).unwrap();
        for now in [0, 1, u64::MAX - 1, u64::MAX] {
            let code = generate(&cfg, S, now).unwrap();
            assert_eq!(verify(&cfg, S, &code, now, None), Ok(now / 15));
        }
    }

    #[test]
    fn error_codes_ok() {
        for (e, code) in [
            (TotpError::Invalid, "totp_invalid"),
            (TotpError::Replayed, "totp_replayed"),
            (TotpError::SecretInvalid, "totp_secret_invalid"),
            (
                TotpError::LabelInvalid { field: "issuer" },
                "totp_label_invalid",
            ),
            (TotpError::EntropyUnavailable, "entropy_unavailable"),
        ] {
            assert_eq!(e.code(), code);
            assert!(!e.to_string().is_empty());
        }
    }

    proptest! {
        #[test]
        fn verify_arbitrary_inputs_never_panics(
            secret in ".{0,64}",
            code in ".{0,12}",
            now in any::<u64>(),
            last in proptest::option::of(any::<u64>()),
        ) {
            let cfg = TotpConfig::default();
            let _ = verify(&cfg, &secret, &code, now, last);
            let _ = verify(&cfg, S, &code, now, last);
            let _ = generate(&cfg, &secret, now);
            let _ = provisioning_uri(&cfg, &secret, &code, &secret);
            let _ = base32_decode(&secret);
        }

        #[test]
        fn digit_codes_never_panic(code in "[0-9]{6}", now in any::<u64>(), last in any::<u64>()) {
            let cfg = TotpConfig::default();
            let r = verify(&cfg, S, &code, now, Some(last));
            if let Ok(step) = r {
                prop_assert!(step > last);
                prop_assert_eq!(generate(&cfg, S, step * 30).unwrap(), code);
            }
        }
    }
}
