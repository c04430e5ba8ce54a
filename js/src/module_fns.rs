//! The module-level functions: passwords, TOTP, QR codes, recovery codes, key generation.

use crate::config::{password_hasher, totp_config, MAX_CONFIG_LEN};
use crate::error::KgError;
use crate::{as_f64, unix_secs};
use keygate::password::PasswordHasher;
use keygate::recovery::{generate_recovery_codes, verify_recovery_code};
use keygate::token::{Algorithm, SigningKey};
use keygate::totp::{self, TotpConfig, TotpError};
use keygate::{qr, OsEntropy};
use serde_json::json;
use wasm_bindgen::prelude::wasm_bindgen;

/// An options object given as JSON text: too large or not JSON is `invalid_input`; what it
/// may hold is the core's to decide.
fn options(json: Option<&str>) -> Result<Option<&str>, KgError> {
    let Some(json) = json else {
        return Ok(None);
    };
    if json.len() > MAX_CONFIG_LEN {
        return Err(KgError::input("options", "is too large"));
    }
    serde_json::from_str::<serde::de::IgnoredAny>(json)
        .map_err(|_| KgError::input("options", "must be a plain object"))?;
    Ok(Some(json))
}

fn hasher(options_json: Option<String>) -> Result<PasswordHasher, KgError> {
    match options(options_json.as_deref())? {
        None => Ok(PasswordHasher::default()),
        Some(json) => password_hasher(json, "options"),
    }
}

fn totp_settings(options_json: Option<String>) -> Result<TotpConfig, KgError> {
    match options(options_json.as_deref())? {
        None => Ok(TotpConfig::default()),
        Some(json) => totp_config(json, "options"),
    }
}

/// Argon2id PHC string of `password`. Options: `{timeCost, memoryCost, parallelism, minLength}`.
///
/// # Errors
/// `password_too_short` / `password_too_long`, `config_invalid` for options out of bounds,
/// `entropy_unavailable`, `password_hash_failed`.
#[wasm_bindgen(js_name = hashPassword)]
pub fn hash_password(password: &str, options_json: Option<String>) -> Result<String, KgError> {
    Ok(hasher(options_json)?.hash(password, &mut OsEntropy)?)
}

/// Whether `password` matches the PHC string `hash` (its own parameters are used).
///
/// # Errors
/// `hash_invalid` for a malformed or non-Argon2id hash, `password_too_long`.
#[wasm_bindgen(js_name = verifyPassword)]
pub fn verify_password(hash: &str, password: &str) -> Result<bool, KgError> {
    Ok(PasswordHasher::default().verify(hash, password)?)
}

/// Whether `hash` differs from the parameters in `options` (defaults: the seed's).
///
/// # Errors
/// `hash_invalid`, `config_invalid`.
#[wasm_bindgen(js_name = needsRehash)]
pub fn needs_rehash(hash: &str, options_json: Option<String>) -> Result<bool, KgError> {
    Ok(hasher(options_json)?.needs_rehash(hash)?)
}

/// A new 160-bit base32 TOTP secret.
///
/// # Errors
/// `entropy_unavailable`.
#[wasm_bindgen(js_name = generateTotpSecret)]
pub fn generate_totp_secret() -> Result<String, KgError> {
    Ok(totp::generate_secret(&mut OsEntropy)?)
}

/// The `otpauth://` URI. Options: `{algorithm, digits, period}`.
///
/// # Errors
/// `totp_secret_invalid`, `totp_label_invalid`, `config_invalid`.
#[wasm_bindgen(js_name = totpProvisioningUri)]
pub fn totp_provisioning_uri(
    secret: &str,
    account_name: &str,
    issuer: &str,
    options_json: Option<String>,
) -> Result<String, KgError> {
    let cfg = totp_settings(options_json)?;
    Ok(totp::provisioning_uri(&cfg, secret, account_name, issuer)?)
}

/// The QR code of `uri` as a base64 PNG.
///
/// # Errors
/// `qr_too_long`.
#[wasm_bindgen(js_name = totpQrCode)]
pub fn totp_qr_code(uri: &str) -> Result<String, KgError> {
    Ok(qr::qr_png_base64(uri)?)
}

/// The QR code of `uri` as SVG text.
///
/// # Errors
/// `qr_too_long`.
#[wasm_bindgen(js_name = totpQrSvg)]
pub fn totp_qr_svg(uri: &str) -> Result<String, KgError> {
    Ok(qr::qr_svg(uri)?)
}

/// The accepted time step, or `None` when the code is wrong, expired or replayed.
/// Options: `{algorithm, digits, period, window}`.
///
/// # Errors
/// `totp_secret_invalid`, `config_invalid`, `invalid_input` for `now`/`lastUsedStep`.
#[wasm_bindgen(js_name = verifyTotp)]
pub fn verify_totp(
    secret: &str,
    code: &str,
    now: f64,
    last_used_step: Option<f64>,
    options_json: Option<String>,
) -> Result<Option<f64>, KgError> {
    let cfg = totp_settings(options_json)?;
    let now = unix_secs(now, "options.now")?;
    let last = last_used_step
        .map(|s| unix_secs(s, "options.lastUsedStep"))
        .transpose()?;
    match totp::verify(&cfg, secret, code, now, last) {
        Ok(step) => Ok(Some(as_f64(step))),
        Err(TotpError::Invalid | TotpError::Replayed) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The code for the step containing `now`, for tests and enrolment screens that show one.
///
/// # Errors
/// `totp_secret_invalid`, `config_invalid`, `invalid_input`.
#[wasm_bindgen(js_name = generateTotpCode)]
pub fn generate_totp_code(
    secret: &str,
    now: f64,
    options_json: Option<String>,
) -> Result<String, KgError> {
    let cfg = totp_settings(options_json)?;
    Ok(totp::generate(
        &cfg,
        secret,
        unix_secs(now, "options.now")?,
    )?)
}

/// `{"codes": [...], "hashes": [...]}`.
///
/// # Errors
/// `config_invalid` for `n` outside 1..=20, `entropy_unavailable`.
#[wasm_bindgen(js_name = generateRecoveryCodes)]
pub fn recovery_codes(n: u32) -> Result<String, KgError> {
    let n = usize::try_from(n).unwrap_or(usize::MAX);
    let batch =
        generate_recovery_codes(n, &mut OsEntropy).map_err(|e| KgError::from(e).with_field("n"))?;
    Ok(json!({ "codes": batch.codes, "hashes": batch.hashes }).to_string())
}

/// The hashes left after spending `code`, or `None` when it matches none.
#[wasm_bindgen(js_name = verifyRecoveryCode)]
#[must_use]
pub fn recovery_code(hashes: Vec<String>, code: &str) -> Option<Vec<String>> {
    verify_recovery_code(&hashes, code)
}

/// A new private JWK for `alg` (HS256/384/512, EdDSA, ES256) as JSON text.
///
/// # Errors
/// `config_invalid` for another algorithm, `entropy_unavailable`.
#[wasm_bindgen(js_name = generateSigningKey)]
pub fn generate_signing_key(alg: &str, kid: Option<String>) -> Result<String, KgError> {
    let alg = alg
        .parse::<Algorithm>()
        .ok()
        .filter(|a| *a != Algorithm::RS256)
        .ok_or_else(|| {
            KgError::input(
                "algorithm",
                "must be HS256, HS384, HS512, EdDSA or ES256 (RS256 is verify-only)",
            )
        })?;
    let key = SigningKey::generate(alg, kid, &mut OsEntropy).map_err(|e| {
        let mut e = KgError::from(e);
        if e.code == "token_signing_failed" {
            e = KgError::input("options.kid", "must be 1 to 128 bytes");
        }
        e
    })?;
    Ok(key.to_private_jwk().to_string())
}

impl KgError {
    pub(crate) fn with_field(mut self, field: &str) -> Self {
        self.field = Some(field.to_owned());
        self
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use serde_json::Value;

    const CHEAP: &str = r#"{"timeCost":1,"memoryCost":64,"parallelism":1}"#;

    #[test]
    fn password_round_trip_ok() {
        let h = hash_password("correct horse", Some(CHEAP.into())).unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert!(verify_password(&h, "correct horse").unwrap());
        assert!(!verify_password(&h, "wrong horse").unwrap());
        assert!(!needs_rehash(&h, Some(CHEAP.into())).unwrap());
        assert!(needs_rehash(&h, None).unwrap());
    }

    #[test]
    fn password_fails() {
        assert_eq!(
            hash_password("short", Some(CHEAP.into())).unwrap_err().code,
            "password_too_short"
        );
        assert_eq!(
            verify_password("nope", "x").unwrap_err().code,
            "hash_invalid"
        );
        let e = hash_password("long enough", Some(r#"{"timeCost":0}"#.into())).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("options.timeCost"));
        let e = hash_password("long enough", Some("[1]".into())).unwrap_err();
        assert_eq!(e.code, "config_invalid");
    }

    #[test]
    fn totp_ok() {
        let secret = generate_totp_secret().unwrap();
        assert_eq!(secret.len(), 32);
        let code = generate_totp_code(&secret, 1_700_000_000.0, None).unwrap();
        let step = verify_totp(&secret, &code, 1_700_000_000.0, None, None).unwrap();
        assert_eq!(step, Some(1_700_000_000.0_f64.div_euclid(30.0)));
        assert_eq!(
            verify_totp(&secret, &code, 1_700_000_000.0, step, None).unwrap(),
            None
        );
        assert_eq!(
            verify_totp(&secret, "abc", 1_700_000_000.0, None, None).unwrap(),
            None
        );
        let uri = totp_provisioning_uri(&secret, "a@b.c", "My App", None).unwrap();
        assert!(uri.starts_with("otpauth://totp/My%20App:a%40b.c?secret="));
        assert!(totp_qr_svg(&uri).unwrap().starts_with("<svg"));
        assert!(totp_qr_code(&uri).unwrap().starts_with("iVBORw0KGgo"));
    }

    #[test]
    fn totp_fails() {
        assert_eq!(
            verify_totp("not base32!", "123456", 0.0, None, None)
                .unwrap_err()
                .code,
            "totp_secret_invalid"
        );
        assert_eq!(
            verify_totp(
                "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP",
                "123456",
                -5.0,
                None,
                None
            )
            .unwrap_err()
            .code,
            "invalid_input"
        );
        let e = totp_provisioning_uri(
            "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP",
            "a",
            "b",
            Some(r#"{"digits":9}"#.into()),
        )
        .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("options.digits"));
        assert_eq!(
            totp_qr_code(&"x".repeat(5000)).unwrap_err().code,
            "qr_too_long"
        );
    }

    #[test]
    fn recovery_ok() {
        let v: Value = serde_json::from_str(&recovery_codes(3).unwrap()).unwrap();
        let codes: Vec<String> = serde_json::from_value(v["codes"].clone()).unwrap();
        let hashes: Vec<String> = serde_json::from_value(v["hashes"].clone()).unwrap();
        let left = recovery_code(hashes.clone(), &codes[1]).unwrap();
        assert_eq!(left.len(), 2);
        assert!(recovery_code(left, &codes[1]).is_none());
        assert_eq!(recovery_codes(0).unwrap_err().field.as_deref(), Some("n"));
    }

    #[test]
    fn signing_key_ok() {
        for alg in ["HS256", "EdDSA", "ES256"] {
            let jwk: Value =
                serde_json::from_str(&generate_signing_key(alg, Some("k1".into())).unwrap())
                    .unwrap();
            assert_eq!(jwk["alg"], alg);
            assert_eq!(jwk["kid"], "k1");
        }
        assert_eq!(
            generate_signing_key("RS256", None).unwrap_err().code,
            "invalid_input"
        );
        assert_eq!(
            generate_signing_key("none", None).unwrap_err().code,
            "invalid_input"
        );
    }
}

/// The one normal form of an email address (NFKC, case folding; control, invisible and
/// mixed-script addresses refused): the key to store and look accounts up by.
///
/// # Errors
/// `email_invalid`.
#[wasm_bindgen(js_name = normalizeEmail)]
pub fn normalize_email(email: &str) -> Result<String, KgError> {
    keygate::email::normalize_email(email).map_err(|e| KgError::from_code(&e))
}

/// Whether an `Origin` header value is one of `allowed` (see the core's `origin_allowed`).
#[wasm_bindgen(js_name = originAllowed)]
#[must_use]
pub fn origin_allowed(origin: Option<String>, allowed: Vec<String>) -> bool {
    let allowed: Vec<&str> = allowed.iter().map(String::as_str).collect();
    keygate::origin::origin_allowed(origin.as_deref(), &allowed)
}

/// The user's session state with every session ended (a new epoch).
///
/// # Errors
/// `invalid_input` for a malformed state.
#[wasm_bindgen(js_name = endAllSessions)]
pub fn end_all_sessions(state_json: Option<String>) -> Result<String, KgError> {
    let state: keygate::session::SessionState = match state_json {
        None => keygate::session::SessionState::default(),
        Some(s) => serde_json::from_str(&s)
            .map_err(|_| KgError::input("state", "must be the session state keygate returned"))?,
    };
    Ok(serde_json::to_value(state.end_all())
        .map_err(|_| KgError::input("state", "unserialisable"))?
        .to_string())
}
