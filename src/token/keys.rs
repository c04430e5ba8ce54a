//! Signing and verifying keys. Each key is pinned to one [`Algorithm`]: it is never used with
//! another, which is what defeats algorithm confusion (an RSA public key fed to HS256, …).

use std::fmt;

use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::traits::PublicKeyParts;

use super::jwk::{b64u_decode, b64u_encode};
use super::signature::{HmacKey, Signer, Verifier};
use super::{Algorithm, Jwk, TokenError};
use crate::{ConfigError, Entropy};

/// Shortest HMAC secret accepted, in bytes (for HS256, HS384 and HS512).
pub const MIN_HMAC_SECRET_LEN: usize = 32;
/// Longest HMAC secret accepted, in bytes.
pub const MAX_HMAC_SECRET_LEN: usize = 1024;
/// Smallest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: usize = 2048;
/// Largest RSA modulus accepted, in bits.
pub const MAX_RSA_BITS: usize = 4096;
/// Longest `kid`, in bytes.
pub const MAX_KID_LEN: usize = 128;
/// Longest PEM text accepted.
pub const MAX_PEM_LEN: usize = 16 * 1024;
/// Draws of 32 random bytes before giving up on finding a valid P-256 scalar (each draw fails
/// with probability below 2^-32).
const MAX_KEYGEN_ATTEMPTS: usize = 8;

/// Public material, kept so keys can be exported as JWKs.
#[derive(Clone, PartialEq, Eq)]
enum Public {
    Hmac,
    Ed25519([u8; 32]),
    P256 { x: [u8; 32], y: [u8; 32] },
    Rsa { n: Vec<u8>, e: Vec<u8> },
}

impl Public {
    fn to_jwk(&self, alg: Algorithm, kid: Option<&String>) -> Option<Jwk> {
        let base = Jwk {
            kid: kid.cloned(),
            alg: Some(alg.as_str().to_owned()),
            key_use: Some("sig".to_owned()),
            ..Jwk::default()
        };
        Some(match self {
            Self::Hmac => return None,
            Self::Ed25519(x) => Jwk {
                kty: "OKP".into(),
                crv: Some("Ed25519".into()),
                x: Some(b64u_encode(x)),
                ..base
            },
            Self::P256 { x, y } => Jwk {
                kty: "EC".into(),
                crv: Some("P-256".into()),
                x: Some(b64u_encode(x)),
                y: Some(b64u_encode(y)),
                ..base
            },
            Self::Rsa { n, e } => Jwk {
                kty: "RSA".into(),
                n: Some(b64u_encode(n)),
                e: Some(b64u_encode(e)),
                ..base
            },
        })
    }
}

/// A key that verifies signatures of exactly one algorithm.
#[derive(Clone)]
pub struct VerifyingKey {
    alg: Algorithm,
    kid: Option<String>,
    key: Verifier,
    public: Public,
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl VerifyingKey {
    /// An HMAC key (`alg` one of HS256/384/512) from a shared secret.
    ///
    /// # Errors
    /// `alg` is not HMAC, the secret is shorter than [`MIN_HMAC_SECRET_LEN`] or longer than
    /// [`MAX_HMAC_SECRET_LEN`], or `kid` is empty or too long.
    pub fn from_secret(
        secret: &[u8],
        alg: Algorithm,
        kid: Option<String>,
    ) -> Result<Self, ConfigError> {
        Self::hmac(secret, alg, kid, "secret")
    }

    fn hmac(
        secret: &[u8],
        alg: Algorithm,
        kid: Option<String>,
        field: &str,
    ) -> Result<Self, ConfigError> {
        check_hmac(secret, alg, field)?;
        let key = HmacKey::new(alg, secret)
            .ok_or_else(|| ConfigError::new("alg", "expected HS256, HS384 or HS512"))?;
        Ok(Self {
            alg,
            kid: check_kid(kid)?,
            key: Verifier::Hmac(Box::new(key)),
            public: Public::Hmac,
        })
    }

    /// A key from a JWK's public members (`oct` with `k` and `alg`; `OKP` Ed25519 `x`; `EC`
    /// P-256 `x`/`y`; `RSA` `n`/`e` of [`MIN_RSA_BITS`]–[`MAX_RSA_BITS`]). `alg`, when present,
    /// must match the key type; when absent it is derived (EdDSA, ES256, RS256), except for
    /// `oct`, which must say which HMAC it is.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the offending member (`k`, `x`, `alg`, …).
    pub fn from_jwk(jwk: &Jwk) -> Result<Self, ConfigError> {
        let kid = check_kid(jwk.kid.clone())?;
        check_use(jwk)?;
        let alg = jwk_alg(jwk)?;
        match alg {
            a if a.is_hmac() => {
                let k = decode_member(jwk.k.as_deref(), "k")?;
                Self::hmac(&k, a, kid, "k")
            }
            Algorithm::EdDSA => {
                let x = decode_fixed::<32>(jwk.x.as_deref(), "x")?;
                let key = ed25519_public(x, "x")?;
                Ok(Self::ed25519(key, kid))
            }
            Algorithm::ES256 => {
                let x = decode_fixed::<32>(jwk.x.as_deref(), "x")?;
                let y = decode_fixed::<32>(jwk.y.as_deref(), "y")?;
                let mut sec1 = [4u8; 65];
                sec1[1..33].copy_from_slice(&x);
                sec1[33..].copy_from_slice(&y);
                let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1)
                    .map_err(|_| ConfigError::new("x", "x/y is not a point on P-256"))?;
                Ok(Self::p256(key, x, y, kid))
            }
            _ => {
                let n = decode_member(jwk.n.as_deref(), "n")?;
                let e = decode_member(jwk.e.as_deref(), "e")?;
                let key = rsa::RsaPublicKey::new_with_max_size(
                    rsa::BigUint::from_bytes_be(&n),
                    rsa::BigUint::from_bytes_be(&e),
                    MAX_RSA_BITS,
                )
                .map_err(|_| {
                    ConfigError::new(
                        "n",
                        format!("not a usable RSA public key (at most {MAX_RSA_BITS} bits, e odd and small)"),
                    )
                })?;
                Self::rsa(&key, kid, "n")
            }
        }
    }

    /// A public key from PEM: `PUBLIC KEY` (SPKI) for EdDSA, ES256 and RS256, or
    /// `RSA PUBLIC KEY` (PKCS#1) for RS256. Certificates are not accepted.
    ///
    /// # Errors
    /// The PEM does not hold a public key of `alg`, or `alg` is HMAC (use
    /// [`VerifyingKey::from_secret`]).
    pub fn from_pem(pem: &str, alg: Algorithm, kid: Option<String>) -> Result<Self, ConfigError> {
        check_pem_len(pem)?;
        let kid = check_kid(kid)?;
        let bad = |what: &str| ConfigError::new("pem", format!("expected a {what} PEM for {alg}"));
        match alg {
            Algorithm::EdDSA => {
                let key = ed25519_dalek::VerifyingKey::from_public_key_pem(pem)
                    .map_err(|_| bad("PUBLIC KEY (Ed25519)"))?;
                let key = ed25519_public(key.to_bytes(), "pem")?;
                Ok(Self::ed25519(key, kid))
            }
            Algorithm::ES256 => {
                let key = p256::PublicKey::from_public_key_pem(pem)
                    .map_err(|_| bad("PUBLIC KEY (P-256)"))?;
                let (x, y) = p256_coordinates(&key).ok_or_else(|| bad("PUBLIC KEY (P-256)"))?;
                Ok(Self::p256(key.into(), x, y, kid))
            }
            Algorithm::RS256 => {
                let key = rsa::RsaPublicKey::from_public_key_pem(pem)
                    .or_else(|_| rsa::RsaPublicKey::from_pkcs1_pem(pem))
                    .map_err(|_| bad("PUBLIC KEY or RSA PUBLIC KEY"))?;
                Self::rsa(&key, kid, "pem")
            }
            _ => Err(ConfigError::new(
                "pem",
                "HMAC keys are shared secrets, not PEM: use a secret of at least 32 bytes",
            )),
        }
    }

    /// The one algorithm this key verifies.
    #[must_use]
    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// The key id, if any.
    #[must_use]
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The public JWK (with `kid`, `alg`, `use: "sig"`); `None` for HMAC keys.
    #[must_use]
    pub fn public_jwk(&self) -> Option<Jwk> {
        self.public.to_jwk(self.alg, self.kid.as_ref())
    }

    /// Whether `signature_b64` is a valid signature of `message` under this key.
    pub(crate) fn verify(&self, message: &[u8], signature_b64: &str) -> bool {
        self.key.verify(message, signature_b64)
    }

    fn ed25519(key: ed25519_dalek::VerifyingKey, kid: Option<String>) -> Self {
        Self {
            alg: Algorithm::EdDSA,
            kid,
            public: Public::Ed25519(key.to_bytes()),
            key: Verifier::Ed25519(key),
        }
    }

    fn p256(key: p256::ecdsa::VerifyingKey, x: [u8; 32], y: [u8; 32], kid: Option<String>) -> Self {
        Self {
            alg: Algorithm::ES256,
            kid,
            key: Verifier::Es256(key),
            public: Public::P256 { x, y },
        }
    }

    fn rsa(key: &rsa::RsaPublicKey, kid: Option<String>, field: &str) -> Result<Self, ConfigError> {
        let bits = key.n().bits();
        if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
            return Err(ConfigError::new(
                field,
                format!("RSA key is {bits} bits; use {MIN_RSA_BITS} to {MAX_RSA_BITS} bits"),
            ));
        }
        let (n, e) = (key.n().to_bytes_be(), key.e().to_bytes_be());
        Ok(Self {
            alg: Algorithm::RS256,
            kid,
            key: Verifier::Rs256(Box::new(key.clone())),
            public: Public::Rsa { n, e },
        })
    }
}

/// A key that signs tokens with exactly one algorithm: HS256/384/512, EdDSA or ES256.
/// (RS256 is verify-only.) `Debug` never shows key material.
#[derive(Clone)]
pub struct SigningKey {
    key: Signer,
    verifying: VerifyingKey,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("alg", &self.verifying.alg)
            .field("kid", &self.verifying.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// An HMAC key from a shared secret of at least [`MIN_HMAC_SECRET_LEN`] bytes.
    ///
    /// # Errors
    /// As [`VerifyingKey::from_secret`].
    pub fn from_secret(
        secret: &[u8],
        alg: Algorithm,
        kid: Option<String>,
    ) -> Result<Self, ConfigError> {
        Self::hmac(secret, alg, kid, "secret")
    }

    fn hmac(
        secret: &[u8],
        alg: Algorithm,
        kid: Option<String>,
        field: &str,
    ) -> Result<Self, ConfigError> {
        let verifying = VerifyingKey::hmac(secret, alg, kid, field)?;
        let Verifier::Hmac(mac) = &verifying.key else {
            return Err(ConfigError::new("alg", "expected HS256, HS384 or HS512"));
        };
        Ok(Self {
            key: Signer::Hmac {
                mac: mac.clone(),
                secret: secret.to_vec(),
            },
            verifying,
        })
    }

    /// A key from a private JWK: `oct` with `k` and `alg`, `OKP` Ed25519 with `d`, or `EC`
    /// P-256 with `d`. Public members, when present, must match `d`.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the member; RSA keys are refused (verify-only).
    pub fn from_jwk(jwk: &Jwk) -> Result<Self, ConfigError> {
        let kid = check_kid(jwk.kid.clone())?;
        check_use(jwk)?;
        let key = match jwk_alg(jwk)? {
            a if a.is_hmac() => {
                let k = decode_member(jwk.k.as_deref(), "k")?;
                return Self::hmac(&k, a, kid, "k");
            }
            Algorithm::EdDSA => {
                let d = decode_fixed::<32>(jwk.d.as_deref(), "d")?;
                Self::ed25519(&d, kid)?
            }
            Algorithm::ES256 => {
                let d = decode_fixed::<32>(jwk.d.as_deref(), "d")?;
                let sk = p256::SecretKey::from_slice(&d)
                    .map_err(|_| ConfigError::new("d", "not a valid P-256 private scalar"))?;
                Self::p256(sk, kid)?
            }
            _ => {
                return Err(ConfigError::new(
                    "kty",
                    "RSA keys are verify-only in keygate; sign with EdDSA or ES256",
                ))
            }
        };
        // A stated public part that disagrees with `d` means the JWK is corrupt.
        if let Some(public) = key.public_jwk() {
            for (name, stated, derived) in [("x", &jwk.x, &public.x), ("y", &jwk.y, &public.y)] {
                if stated.is_some() && stated != derived {
                    return Err(ConfigError::new(name, "does not match the private key `d`"));
                }
            }
        }
        Ok(key)
    }

    /// A private key from PEM: PKCS#8 `PRIVATE KEY` for EdDSA or ES256 (ES256 also accepts
    /// SEC1 `EC PRIVATE KEY`).
    ///
    /// # Errors
    /// The PEM does not hold a private key of `alg`; `alg` is HMAC or RS256.
    pub fn from_pem(pem: &str, alg: Algorithm, kid: Option<String>) -> Result<Self, ConfigError> {
        check_pem_len(pem)?;
        let kid = check_kid(kid)?;
        match alg {
            Algorithm::EdDSA => {
                let sk = ed25519_dalek::SigningKey::from_pkcs8_pem(pem).map_err(|_| {
                    ConfigError::new("pem", "expected a PKCS#8 PRIVATE KEY PEM for Ed25519")
                })?;
                Self::ed25519(&sk.to_bytes(), kid)
            }
            Algorithm::ES256 => {
                let sk = p256::SecretKey::from_pkcs8_pem(pem)
                    .or_else(|_| p256::SecretKey::from_sec1_pem(pem))
                    .map_err(|_| {
                        ConfigError::new(
                            "pem",
                            "expected a PRIVATE KEY or EC PRIVATE KEY PEM for P-256",
                        )
                    })?;
                Self::p256(sk, kid)
            }
            Algorithm::RS256 => Err(ConfigError::new(
                "alg",
                "RS256 is verify-only in keygate; sign with EdDSA or ES256",
            )),
            _ => Err(ConfigError::new(
                "pem",
                "HMAC keys are shared secrets, not PEM: use a secret of at least 32 bytes",
            )),
        }
    }

    /// A fresh key for `alg` from `rng`: 32 random bytes for EdDSA/ES256, a secret as long as
    /// the hash output for HS256/384/512. RS256 cannot be generated.
    ///
    /// # Errors
    /// [`TokenError::Entropy`] when `rng` fails; [`TokenError::AlgorithmNotAllowed`] for RS256;
    /// [`TokenError::SigningFailed`] for a `kid` outside 1..=[`MAX_KID_LEN`] bytes.
    pub fn generate(
        alg: Algorithm,
        kid: Option<String>,
        rng: &mut impl Entropy,
    ) -> Result<Self, TokenError> {
        let kid = check_kid(kid).map_err(|_| TokenError::SigningFailed {
            reason: "the key id must be 1 to 128 bytes",
        })?;
        let made = match alg {
            Algorithm::HS256 => Self::from_secret(&rng.bytes::<32>()?, alg, kid),
            Algorithm::HS384 => Self::from_secret(&rng.bytes::<48>()?, alg, kid),
            Algorithm::HS512 => Self::from_secret(&rng.bytes::<64>()?, alg, kid),
            Algorithm::EdDSA => Self::ed25519(&rng.bytes::<32>()?, kid),
            Algorithm::ES256 => {
                let mut found = None;
                for _ in 0..MAX_KEYGEN_ATTEMPTS {
                    // Rejection sampling: the draw must be a scalar in [1, n).
                    if let Ok(sk) = p256::SecretKey::from_slice(&rng.bytes::<32>()?) {
                        found = Some(sk);
                        break;
                    }
                }
                let sk = found.ok_or(TokenError::Entropy(crate::entropy::EntropyError))?;
                Self::p256(sk, kid)
            }
            Algorithm::RS256 => return Err(TokenError::AlgorithmNotAllowed),
        };
        made.map_err(|_| TokenError::SigningFailed {
            reason: "could not build the generated key",
        })
    }

    /// The one algorithm this key signs with.
    #[must_use]
    pub fn alg(&self) -> Algorithm {
        self.verifying.alg
    }

    /// The key id, if any (written to the token header).
    #[must_use]
    pub fn kid(&self) -> Option<&str> {
        self.verifying.kid()
    }

    /// The matching verifying key.
    #[must_use]
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.verifying
    }

    /// The public JWK to publish; `None` for HMAC keys.
    #[must_use]
    pub fn public_jwk(&self) -> Option<Jwk> {
        self.verifying.public_jwk()
    }

    /// The full private JWK (for storing a generated key in configuration). Secret: treat the
    /// result like the key itself.
    #[must_use]
    pub fn to_private_jwk(&self) -> Jwk {
        let alg = self.alg();
        let kid = self.verifying.kid.clone();
        let d = match &self.key {
            Signer::Hmac { secret, .. } => {
                return Jwk {
                    kty: "oct".into(),
                    kid,
                    alg: Some(alg.as_str().to_owned()),
                    key_use: Some("sig".into()),
                    k: Some(b64u_encode(secret)),
                    ..Jwk::default()
                }
            }
            Signer::Ed25519(sk) => b64u_encode(sk.to_bytes()),
            Signer::Es256(sk) => b64u_encode(sk.to_bytes()),
        };
        Jwk {
            d: Some(d),
            ..self.public_jwk().unwrap_or_default()
        }
    }

    /// Signs `message`, returning the base64url signature.
    pub(crate) fn sign(&self, message: &[u8]) -> Result<String, TokenError> {
        Ok(self.key.sign(message))
    }

    fn ed25519(seed: &[u8; 32], kid: Option<String>) -> Result<Self, ConfigError> {
        let sk = ed25519_dalek::SigningKey::from_bytes(seed);
        Ok(Self {
            verifying: VerifyingKey::ed25519(sk.verifying_key(), kid),
            key: Signer::Ed25519(Box::new(sk)),
        })
    }

    fn p256(sk: p256::SecretKey, kid: Option<String>) -> Result<Self, ConfigError> {
        let public = sk.public_key();
        let (x, y) = p256_coordinates(&public)
            .ok_or_else(|| ConfigError::new("d", "not a valid P-256 private scalar"))?;
        Ok(Self {
            verifying: VerifyingKey::p256(public.into(), x, y, kid),
            key: Signer::Es256(Box::new(sk.into())),
        })
    }
}

fn check_hmac(secret: &[u8], alg: Algorithm, field: &str) -> Result<(), ConfigError> {
    if !alg.is_hmac() {
        return Err(ConfigError::new(
            "alg",
            format!("a shared secret can only be used with HS256, HS384 or HS512, not {alg}"),
        ));
    }
    if secret.len() < MIN_HMAC_SECRET_LEN {
        return Err(ConfigError::new(
            field,
            format!("{alg} secret must be at least {MIN_HMAC_SECRET_LEN} bytes"),
        ));
    }
    if secret.len() > MAX_HMAC_SECRET_LEN {
        return Err(ConfigError::new(
            field,
            format!("{alg} secret must be at most {MAX_HMAC_SECRET_LEN} bytes"),
        ));
    }
    Ok(())
}

fn check_kid(kid: Option<String>) -> Result<Option<String>, ConfigError> {
    match &kid {
        Some(k) if k.is_empty() || k.len() > MAX_KID_LEN => Err(ConfigError::new(
            "kid",
            format!("must be 1 to {MAX_KID_LEN} bytes"),
        )),
        _ => Ok(kid),
    }
}

fn check_use(jwk: &Jwk) -> Result<(), ConfigError> {
    match jwk.key_use.as_deref() {
        None | Some("sig") => Ok(()),
        Some(_) => Err(ConfigError::new(
            "use",
            "only signature keys (`use`: `sig`) can sign or verify tokens",
        )),
    }
}

fn check_pem_len(pem: &str) -> Result<(), ConfigError> {
    if pem.len() > MAX_PEM_LEN {
        return Err(ConfigError::new(
            "pem",
            format!("PEM is larger than {MAX_PEM_LEN} bytes"),
        ));
    }
    Ok(())
}

/// The algorithm a JWK is pinned to: its `alg`, which must fit `kty`/`crv`, or the only one
/// that `kty`/`crv` allow. `oct` must state it (HS256, HS384 and HS512 are all possible).
fn jwk_alg(jwk: &Jwk) -> Result<Algorithm, ConfigError> {
    let stated = jwk
        .alg
        .as_deref()
        .map(|a| {
            Algorithm::from_jose(a).ok_or_else(|| {
                ConfigError::new(
                    "alg",
                    "unsupported: use HS256, HS384, HS512, EdDSA, ES256 or RS256",
                )
            })
        })
        .transpose()?;
    let (derived, what) = match jwk.kty.as_str() {
        "oct" => {
            return match stated {
                Some(a) if a.is_hmac() => Ok(a),
                Some(_) => Err(ConfigError::new(
                    "alg",
                    "an `oct` key must be HS256, HS384 or HS512",
                )),
                None => Err(ConfigError::new(
                    "alg",
                    "required for `oct` keys: set alg to HS256/384/512",
                )),
            }
        }
        "OKP" => {
            if jwk.crv.as_deref() != Some("Ed25519") {
                return Err(ConfigError::new("crv", "OKP keys must be Ed25519"));
            }
            (Algorithm::EdDSA, "an Ed25519 key")
        }
        "EC" => {
            if jwk.crv.as_deref() != Some("P-256") {
                return Err(ConfigError::new("crv", "EC keys must be P-256"));
            }
            (Algorithm::ES256, "a P-256 key")
        }
        "RSA" => (Algorithm::RS256, "an RSA key"),
        _ => return Err(ConfigError::new("kty", "expected oct, OKP, EC or RSA")),
    };
    match stated {
        Some(a) if a != derived => Err(ConfigError::new(
            "alg",
            format!("{what} can only be used with {derived}"),
        )),
        _ => Ok(derived),
    }
}

fn decode_member(v: Option<&str>, field: &str) -> Result<Vec<u8>, ConfigError> {
    let v = v.ok_or_else(|| ConfigError::new(field, "required"))?;
    b64u_decode(v).ok_or_else(|| ConfigError::new(field, "must be base64url without padding"))
}

fn decode_fixed<const N: usize>(v: Option<&str>, field: &str) -> Result<[u8; N], ConfigError> {
    decode_member(v, field)?
        .try_into()
        .map_err(|_| ConfigError::new(field, format!("must decode to exactly {N} bytes")))
}

fn ed25519_public(x: [u8; 32], field: &str) -> Result<ed25519_dalek::VerifyingKey, ConfigError> {
    match ed25519_dalek::VerifyingKey::from_bytes(&x) {
        Ok(k) if !k.is_weak() => Ok(k),
        _ => Err(ConfigError::new(field, "not a valid Ed25519 public key")),
    }
}

fn p256_coordinates(key: &p256::PublicKey) -> Option<([u8; 32], [u8; 32])> {
    let point = key.to_encoded_point(false);
    let x = <[u8; 32]>::try_from(&point.x()?[..]).ok()?;
    let y = <[u8; 32]>::try_from(&point.y()?[..]).ok()?;
    Some((x, y))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::entropy::EntropyError;
    use crate::token::fixtures::*;
    use crate::token::{decode, encode, Claims, KeySet, Validation};
    use crate::{ErrorCode, SeededEntropy};
    use proptest::prelude::*;

    fn jwk(json: &str) -> Jwk {
        json.parse().unwrap()
    }

    fn signs_for(sk: &SigningKey, vk: &VerifyingKey) -> bool {
        let token = encode(&Claims::access("u", vec![], 100, 60), sk).unwrap();
        decode(
            &token,
            &KeySet::single(vk.clone()),
            &Validation::default(),
            100,
        )
        .is_ok()
    }

    #[test]
    fn short_secret_fails() {
        let e = SigningKey::from_secret(&[0u8; 31], Algorithm::HS256, None).unwrap_err();
        assert_eq!(e.field, "secret");
        assert_eq!(e.message, "HS256 secret must be at least 32 bytes");
        assert!(VerifyingKey::from_secret(&[0u8; 1025], Algorithm::HS512, None).is_err());
        assert_eq!(
            SigningKey::from_secret(&[0u8; 32], Algorithm::EdDSA, None)
                .unwrap_err()
                .field,
            "alg"
        );
        assert_eq!(
            SigningKey::from_secret(SECRET, Algorithm::HS256, Some(String::new()))
                .unwrap_err()
                .field,
            "kid"
        );
        assert!(SigningKey::from_secret(&[0u8; 32], Algorithm::HS384, None).is_ok());
    }

    #[test]
    fn bad_jwk_names_the_member_fails() {
        let cases = [
            (
                r#"{"kty":"oct","k":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}"#,
                "alg",
                "set alg to HS256/384/512",
            ),
            (
                r#"{"kty":"oct","alg":"HS256","k":"AAAA"}"#,
                "k",
                "HS256 secret must be at least 32 bytes",
            ),
            (
                r#"{"kty":"oct","alg":"HS256","k":"not base64!"}"#,
                "k",
                "base64url",
            ),
            (r#"{"kty":"oct","alg":"HS256"}"#, "k", "required"),
            (r#"{"kty":"oct","alg":"EdDSA","k":"AAAA"}"#, "alg", "HS256"),
            (
                r#"{"kty":"oct","alg":"none","k":"AAAA"}"#,
                "alg",
                "unsupported",
            ),
            (
                r#"{"kty":"OKP","crv":"X25519","x":"AAAA"}"#,
                "crv",
                "Ed25519",
            ),
            (
                r#"{"kty":"OKP","crv":"Ed25519","x":"AAAA"}"#,
                "x",
                "32 bytes",
            ),
            (
                r#"{"kty":"OKP","crv":"Ed25519","alg":"ES256","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#,
                "alg",
                "EdDSA",
            ),
            (
                r#"{"kty":"OKP","crv":"Ed25519","use":"enc","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#,
                "use",
                "sig",
            ),
            (
                r#"{"kty":"EC","crv":"P-384","x":"AAAA","y":"AAAA"}"#,
                "crv",
                "P-256",
            ),
            (
                r#"{"kty":"EC","crv":"P-256","x":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","y":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}"#,
                "x",
                "P-256",
            ),
            (r#"{"kty":"RSA","e":"AQAB"}"#, "n", "required"),
            (
                r#"{"kty":"RSA","alg":"RS512","n":"AQAB","e":"AQAB"}"#,
                "alg",
                "unsupported",
            ),
            (r#"{"kty":"foo"}"#, "kty", "oct, OKP, EC or RSA"),
        ];
        for (json, field, needle) in cases {
            let e = VerifyingKey::from_jwk(&jwk(json)).unwrap_err();
            assert_eq!(e.field, field, "{json}");
            assert!(e.message.contains(needle), "{json}: {}", e.message);
        }
    }

    #[test]
    fn small_rsa_key_fails() {
        let e = VerifyingKey::from_pem(RSA_1024_PEM, Algorithm::RS256, None).unwrap_err();
        assert!(e.message.contains("1024 bits"), "{}", e.message);
        let small = VerifyingKey::from_pem(RSA_SPKI_PEM, Algorithm::RS256, None)
            .unwrap()
            .public_jwk()
            .unwrap();
        let mut n = crate::token::jwk::b64u_decode(small.n.as_deref().unwrap()).unwrap();
        n.truncate(128);
        let j = Jwk {
            n: Some(crate::token::jwk::b64u_encode(&n)),
            ..small
        };
        assert_eq!(VerifyingKey::from_jwk(&j).unwrap_err().field, "n");
    }

    #[test]
    fn pem_keys_ok() {
        let ed = SigningKey::from_pem(ED_PRIVATE_PEM, Algorithm::EdDSA, Some("ed".into())).unwrap();
        let ed_pub =
            VerifyingKey::from_pem(ED_PUBLIC_PEM, Algorithm::EdDSA, Some("ed".into())).unwrap();
        assert_eq!(ed.public_jwk(), ed_pub.public_jwk());
        assert!(signs_for(&ed, &ed_pub));

        let p8 = SigningKey::from_pem(EC_PKCS8_PEM, Algorithm::ES256, None).unwrap();
        let sec1 = SigningKey::from_pem(EC_SEC1_PEM, Algorithm::ES256, None).unwrap();
        let ec_pub = VerifyingKey::from_pem(EC_PUBLIC_PEM, Algorithm::ES256, None).unwrap();
        assert_eq!(p8.to_private_jwk(), sec1.to_private_jwk());
        assert_eq!(p8.public_jwk(), ec_pub.public_jwk());
        assert!(signs_for(&sec1, &ec_pub));

        let spki = VerifyingKey::from_pem(RSA_SPKI_PEM, Algorithm::RS256, None).unwrap();
        let pkcs1 = VerifyingKey::from_pem(RSA_PKCS1_PEM, Algorithm::RS256, None).unwrap();
        assert_eq!(spki.public_jwk(), pkcs1.public_jwk());
        // Same modulus as the PyJWT vector's public JWK.
        let v: serde_json::Value = serde_json::from_str(VECTORS).unwrap();
        assert_eq!(
            spki.public_jwk().unwrap().n.as_deref(),
            v["jwt"]["public_jwks"]["keys"][2]["n"].as_str()
        );
    }

    #[test]
    fn wrong_pem_fails() {
        // Private where public is expected, wrong curve, wrong algorithm, garbage.
        for (pem, alg) in [
            (ED_PRIVATE_PEM, Algorithm::EdDSA),
            (EC_PUBLIC_PEM, Algorithm::EdDSA),
            (ED_PUBLIC_PEM, Algorithm::ES256),
            (RSA_PRIVATE_PEM, Algorithm::RS256),
            (EC_PUBLIC_PEM, Algorithm::RS256),
            (RSA_SPKI_PEM, Algorithm::HS256),
            ("not a pem", Algorithm::ES256),
        ] {
            assert_eq!(
                VerifyingKey::from_pem(pem, alg, None).unwrap_err().field,
                "pem"
            );
        }
        for (pem, alg) in [
            (ED_PUBLIC_PEM, Algorithm::EdDSA),
            (EC_PKCS8_PEM, Algorithm::EdDSA),
            (ED_PRIVATE_PEM, Algorithm::ES256),
            (EC_PUBLIC_PEM, Algorithm::ES256),
        ] {
            assert_eq!(
                SigningKey::from_pem(pem, alg, None).unwrap_err().field,
                "pem"
            );
        }
        let e = SigningKey::from_pem(RSA_PRIVATE_PEM, Algorithm::RS256, None).unwrap_err();
        assert!(e.message.contains("verify-only"));
    }

    #[test]
    fn private_jwk_checks_fails() {
        let rsa = jwk(r#"{"kty":"RSA","n":"AQAB","e":"AQAB","d":"AQAB"}"#);
        assert_eq!(SigningKey::from_jwk(&rsa).unwrap_err().field, "kty");
        let mut rng = SeededEntropy::new(9);
        for alg in [Algorithm::EdDSA, Algorithm::ES256] {
            let sk = SigningKey::generate(alg, None, &mut rng).unwrap();
            let other = SigningKey::generate(alg, None, &mut rng).unwrap();
            let mismatched = Jwk {
                x: other.public_jwk().unwrap().x,
                ..sk.to_private_jwk()
            };
            assert_eq!(SigningKey::from_jwk(&mismatched).unwrap_err().field, "x");
            let no_d = sk.public_jwk().unwrap();
            assert_eq!(SigningKey::from_jwk(&no_d).unwrap_err().field, "d");
        }
        // P-256 scalar out of range (all ones > n).
        let bad =
            jwk(r#"{"kty":"EC","crv":"P-256","d":"__________________________________________8"}"#);
        assert_eq!(SigningKey::from_jwk(&bad).unwrap_err().field, "d");
    }

    #[test]
    fn generate_ok() {
        for alg in [Algorithm::EdDSA, Algorithm::ES256] {
            let a =
                SigningKey::generate(alg, Some("a".into()), &mut SeededEntropy::new(5)).unwrap();
            let b =
                SigningKey::generate(alg, Some("a".into()), &mut SeededEntropy::new(5)).unwrap();
            let c =
                SigningKey::generate(alg, Some("a".into()), &mut SeededEntropy::new(6)).unwrap();
            assert_eq!(a.to_private_jwk(), b.to_private_jwk());
            assert_ne!(a.public_jwk(), c.public_jwk());
            let public = a.public_jwk().unwrap();
            assert_eq!(public.alg.as_deref(), Some(alg.as_str()));
            assert_eq!(public.kid.as_deref(), Some("a"));
            assert!(public.d.is_none());
            let vk = VerifyingKey::from_jwk(&public).unwrap();
            assert!(signs_for(&a, &vk));
            assert!(!signs_for(&c, &vk));
            assert!(public.thumbprint().is_some());
        }
        for (alg, len) in [
            (Algorithm::HS256, 32),
            (Algorithm::HS384, 48),
            (Algorithm::HS512, 64),
        ] {
            let sk = SigningKey::generate(alg, None, &mut SeededEntropy::new(1)).unwrap();
            assert!(sk.public_jwk().is_none());
            let k = sk.to_private_jwk().k.unwrap();
            assert_eq!(crate::token::jwk::b64u_decode(&k).unwrap().len(), len);
            assert_eq!(
                SigningKey::from_jwk(&sk.to_private_jwk()).unwrap().alg(),
                alg
            );
        }
    }

    struct Broken;
    impl Entropy for Broken {
        fn fill(&mut self, _: &mut [u8]) -> Result<(), EntropyError> {
            Err(EntropyError)
        }
    }

    #[test]
    fn generate_fails() {
        for alg in [Algorithm::EdDSA, Algorithm::ES256, Algorithm::HS256] {
            let e = SigningKey::generate(alg, None, &mut Broken).unwrap_err();
            assert_eq!(e.code(), "entropy_unavailable");
        }
        let e =
            SigningKey::generate(Algorithm::RS256, None, &mut SeededEntropy::new(1)).unwrap_err();
        assert_eq!(e.code(), "token_algorithm_not_allowed");
        let e = SigningKey::generate(
            Algorithm::EdDSA,
            Some("k".repeat(129)),
            &mut SeededEntropy::new(1),
        )
        .unwrap_err();
        assert_eq!(e.code(), "token_signing_failed");
    }

    #[test]
    fn debug_hides_key_material_ok() {
        let sk = SigningKey::from_secret(SECRET, Algorithm::HS256, Some("kid-1".into())).unwrap();
        let dbg = format!("{sk:?} {:?}", sk.verifying_key());
        assert!(dbg.contains("kid-1"));
        assert!(!dbg.contains("keygate-test-secret"));
        assert!(!dbg.contains("107")); // no byte dumps ('k' = 107)
    }

    proptest! {
        #[test]
        fn pem_parsers_never_panic(s in ".{0,300}") {
            for alg in Algorithm::ALL {
                let _ = SigningKey::from_pem(&s, alg, None);
                let _ = VerifyingKey::from_pem(&s, alg, None);
            }
        }

        #[test]
        fn jwk_keys_never_panic(
            kty in "(oct|OKP|EC|RSA|x)",
            crv in proptest::option::of("(Ed25519|P-256|X25519)"),
            alg in proptest::option::of("(HS256|EdDSA|ES256|RS256|none)"),
            x in proptest::option::of("[A-Za-z0-9_-]{0,90}"),
            y in proptest::option::of("[A-Za-z0-9_-]{0,50}"),
            d in proptest::option::of("[A-Za-z0-9_-]{0,50}"),
            n in proptest::option::of("[A-Za-z0-9_-]{0,400}"),
        ) {
            let j = Jwk { kty, crv, alg, x: x.clone(), y, d, n, e: Some("AQAB".into()), k: x, ..Jwk::default() };
            let _ = VerifyingKey::from_jwk(&j);
            let _ = SigningKey::from_jwk(&j);
        }
    }
}
