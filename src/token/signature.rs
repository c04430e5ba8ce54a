//! Signing and verifying with the RustCrypto crates directly.
//!
//! Why not `jsonwebtoken::crypto::{sign, verify}`: both dispatch over every JOSE algorithm, so
//! they link P-384 and RSA signing (with its RNG) into both wasm modules although keygate never
//! uses them (`dist/keygate_envoy.wasm` 678 KiB with them, see README's Benchmarks), and they
//! rebuild the key from bytes on every call (P-256/Ed25519 point decompression, RSA DER
//! parsing, the HMAC key schedule). Here every key is parsed once, at construction.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::{Signer as _, Verifier as _};
use hmac::{Hmac, Mac};
use sha2::{Sha256, Sha384, Sha512};

use super::jwk::b64u_encode;
use super::Algorithm;

/// Longest signature any supported algorithm produces: RSA at `MAX_RSA_BITS` (4096 bits).
const MAX_SIGNATURE_LEN: usize = 512;

/// An HMAC key with its key schedule done once; cloned per message.
#[derive(Clone)]
pub(crate) enum HmacKey {
    Hs256(Hmac<Sha256>),
    Hs384(Hmac<Sha384>),
    Hs512(Hmac<Sha512>),
}

impl HmacKey {
    /// `None` when `alg` is not HMAC (HMAC itself takes keys of any length).
    pub(crate) fn new(alg: Algorithm, secret: &[u8]) -> Option<Self> {
        Some(match alg {
            Algorithm::HS256 => Self::Hs256(Hmac::new_from_slice(secret).ok()?),
            Algorithm::HS384 => Self::Hs384(Hmac::new_from_slice(secret).ok()?),
            Algorithm::HS512 => Self::Hs512(Hmac::new_from_slice(secret).ok()?),
            _ => return None,
        })
    }

    fn tag(&self, message: &[u8]) -> Vec<u8> {
        fn run<M: Mac + Clone>(mac: &M, message: &[u8]) -> Vec<u8> {
            let mut mac = mac.clone();
            mac.update(message);
            mac.finalize().into_bytes().to_vec()
        }
        match self {
            Self::Hs256(m) => run(m, message),
            Self::Hs384(m) => run(m, message),
            Self::Hs512(m) => run(m, message),
        }
    }

    /// Constant-time comparison (`Mac::verify_slice` uses `subtle`).
    fn verify(&self, message: &[u8], tag: &[u8]) -> bool {
        fn run<M: Mac + Clone>(mac: &M, message: &[u8], tag: &[u8]) -> bool {
            let mut mac = mac.clone();
            mac.update(message);
            mac.verify_slice(tag).is_ok()
        }
        match self {
            Self::Hs256(m) => run(m, message, tag),
            Self::Hs384(m) => run(m, message, tag),
            Self::Hs512(m) => run(m, message, tag),
        }
    }
}

/// A parsed public key (or HMAC key) that checks signatures of one algorithm.
#[derive(Clone)]
pub(crate) enum Verifier {
    Hmac(Box<HmacKey>),
    Ed25519(ed25519_dalek::VerifyingKey),
    Es256(p256::ecdsa::VerifyingKey),
    Rs256(Box<rsa::RsaPublicKey>),
}

impl Verifier {
    /// Whether `signature_b64` (strict base64url, no padding) is a valid signature of
    /// `message`. Every algorithm-specific length and range check is the crate's.
    pub(crate) fn verify(&self, message: &[u8], signature_b64: &str) -> bool {
        let mut buf = [0u8; MAX_SIGNATURE_LEN];
        // 4 characters per 3 bytes: anything longer cannot be a signature (and is not decoded).
        if signature_b64.len() > (MAX_SIGNATURE_LEN * 4).div_ceil(3) {
            return false;
        }
        let Ok(len) = URL_SAFE_NO_PAD.decode_slice(signature_b64, &mut buf) else {
            return false;
        };
        let Some(sig) = buf.get(..len) else {
            return false;
        };
        match self {
            Self::Hmac(key) => key.verify(message, sig),
            Self::Ed25519(key) => ed25519_dalek::Signature::from_slice(sig)
                .is_ok_and(|s| key.verify(message, &s).is_ok()),
            Self::Es256(key) => p256::ecdsa::Signature::from_slice(sig)
                .is_ok_and(|s| key.verify(message, &s).is_ok()),
            Self::Rs256(key) => {
                use sha2::Digest;
                let digest = Sha256::digest(message);
                key.verify(rsa::Pkcs1v15Sign::new::<Sha256>(), &digest, sig)
                    .is_ok()
            }
        }
    }
}

/// A private key that signs with one algorithm (RS256 is verify-only in keygate).
#[derive(Clone)]
pub(crate) enum Signer {
    /// The secret is kept to export the key as a private JWK.
    Hmac {
        mac: Box<HmacKey>,
        secret: Vec<u8>,
    },
    Ed25519(Box<ed25519_dalek::SigningKey>),
    Es256(Box<p256::ecdsa::SigningKey>),
}

impl Signer {
    /// The base64url signature of `message` (Ed25519 and ES256 (RFC 6979) are deterministic).
    pub(crate) fn sign(&self, message: &[u8]) -> String {
        match self {
            Self::Hmac { mac, .. } => b64u_encode(mac.tag(message)),
            Self::Ed25519(key) => b64u_encode(key.sign(message).to_bytes()),
            Self::Es256(key) => {
                let sig: p256::ecdsa::Signature = key.sign(message);
                b64u_encode(sig.to_bytes())
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::token::fixtures::{RSA_SPKI_PEM, SECRET};
    use crate::token::{SigningKey, VerifyingKey};
    use crate::SeededEntropy;
    use proptest::prelude::*;

    fn verifiers() -> Vec<(SigningKey, VerifyingKey)> {
        let mut rng = SeededEntropy::new(3);
        [
            Algorithm::HS256,
            Algorithm::HS384,
            Algorithm::HS512,
            Algorithm::EdDSA,
            Algorithm::ES256,
        ]
        .into_iter()
        .map(|alg| {
            let sk = SigningKey::generate(alg, None, &mut rng).unwrap();
            let v = sk.verifying_key().clone();
            (sk, v)
        })
        .collect()
    }

    fn rsa() -> VerifyingKey {
        VerifyingKey::from_pem(RSA_SPKI_PEM, Algorithm::RS256, None).unwrap()
    }

    #[test]
    fn sign_verify_ok() {
        for (sk, v) in verifiers() {
            let sig = sk.sign(b"a.b").unwrap();
            assert!(v.verify(b"a.b", &sig), "{}", sk.alg());
            assert!(!v.verify(b"a.c", &sig), "{}", sk.alg());
        }
    }

    // RFC 4231 test case 2 (HMAC-SHA-256 with key "Jefe"; HmacKey takes any key length).
    #[test]
    fn rfc4231_case2_ok() {
        let mac = HmacKey::new(Algorithm::HS256, b"Jefe").unwrap();
        let tag = mac.tag(b"what do ya want for nothing?");
        let want = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
        let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, want);
        assert!(mac.verify(b"what do ya want for nothing?", &tag));
        assert!(!mac.verify(b"what do ya want for nothing?", &tag[..31]));
        assert!(HmacKey::new(Algorithm::EdDSA, SECRET).is_none());
    }

    #[test]
    fn bad_encoding_fails() {
        for (sk, v) in verifiers() {
            let sig = sk.sign(b"m").unwrap();
            // Padding, standard alphabet, whitespace, truncation, trailing garbage.
            for bad in [
                format!("{sig}="),
                sig.replace('-', "+").replace('_', "/") + "+",
                format!(" {sig}"),
                sig[..sig.len() - 1].to_owned(),
                format!("{sig}A"),
                String::new(),
            ] {
                assert!(!v.verify(b"m", &bad), "{}: {bad}", sk.alg());
            }
        }
    }

    #[test]
    fn oversized_signature_fails() {
        let rsa = rsa();
        // 683 characters decode to 512 bytes (a 4096-bit signature); 684 are never decoded.
        assert!(!rsa.verify(b"m", &"A".repeat(683)));
        assert!(!rsa.verify(b"m", &"A".repeat(684)));
        assert!(!rsa.verify(b"m", &"A".repeat(100_000)));
    }

    proptest! {
        #[test]
        fn verify_never_panics(sig in "[A-Za-z0-9_=+/ -]{0,700}", msg in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut all: Vec<VerifyingKey> = verifiers().into_iter().map(|(_, v)| v).collect();
            all.push(rsa());
            for v in &all {
                // A random string is never a valid signature; the point is that nothing panics.
                prop_assert!(!v.verify(&msg, &sig));
            }
        }
    }
}
