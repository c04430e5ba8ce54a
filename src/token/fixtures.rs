//! Test keys and helpers shared by the token module's unit tests. Test-only material.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::jwk::b64u_encode;
use super::{Algorithm, SigningKey};

/// The 64-byte HMAC secret of `tests/vectors` (PyJWT).
pub const SECRET: &[u8] = b"keygate-test-secret-0123456789abcdef-keygate-test-secret-0123456";

/// PyJWT known-answer vectors and the RSA test key (`tests/vectors/generate.py`).
pub const VECTORS: &str = include_str!("../../tests/vectors/vectors.json");
pub const RSA_PRIVATE_PEM: &str = include_str!("../../tests/vectors/rsa_test_key.pem");

/// `openssl pkey -pubout` / `-RSAPublicKey_out` of `rsa_test_key.pem`.
pub const RSA_SPKI_PEM: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAuTchx+g2tntZEJPoRUcu
I5f//uGWud4Vv5TSe4mvouM3eNShf942qU6O0/L4VETBhArT2vLZIg8pP/HEQD+B
cgTMIzPjoA9FnM6jGv/HiQ8jPF2djihU560Df9wdXgzA7m+JMFnpK+ko94+moTVx
9LsKNFkIkiDPJXFwiIkGXbT3WsWLmCIZwsCxuZpeLenirg8kUAiWWVbGC+4UygVg
pcw6xWvnhcyuSNBa0Yzozvf1a5b5yYS/1VvnccOLBOYa/bWnaqRCzA2ZZSeI0R3r
b4MuoJ8yjVgPBsBtCCDf7nu3+NGy0BS1MngcwZKmfrmm17uPStreouLIPKbO3Lh9
1wIDAQAB
-----END PUBLIC KEY-----
";
pub const RSA_PKCS1_PEM: &str = "-----BEGIN RSA PUBLIC KEY-----
MIIBCgKCAQEAuTchx+g2tntZEJPoRUcuI5f//uGWud4Vv5TSe4mvouM3eNShf942
qU6O0/L4VETBhArT2vLZIg8pP/HEQD+BcgTMIzPjoA9FnM6jGv/HiQ8jPF2djihU
560Df9wdXgzA7m+JMFnpK+ko94+moTVx9LsKNFkIkiDPJXFwiIkGXbT3WsWLmCIZ
wsCxuZpeLenirg8kUAiWWVbGC+4UygVgpcw6xWvnhcyuSNBa0Yzozvf1a5b5yYS/
1VvnccOLBOYa/bWnaqRCzA2ZZSeI0R3rb4MuoJ8yjVgPBsBtCCDf7nu3+NGy0BS1
MngcwZKmfrmm17uPStreouLIPKbO3Lh91wIDAQAB
-----END RSA PUBLIC KEY-----
";
/// A 1024-bit RSA public key (too small).
pub const RSA_1024_PEM: &str = "-----BEGIN PUBLIC KEY-----
MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQC52Y3DeTopPPmKr+7f8hs6Nx57
14INp7/L8FRE8hmza8WrO+fMrPiiG5HMULyLTp8YBUIIq/6mTkhsRVc0W572y14Y
pzQSg7KsbWCU8qpb7diwTAdrz/OP9m/+Os0da+3lYbYcu5rHLL1PQGW2B0hoiaxe
XP/GITUc6CJS1zcOHwIDAQAB
-----END PUBLIC KEY-----
";

/// `openssl genpkey -algorithm ed25519` and its `-pubout`.
pub const ED_PRIVATE_PEM: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIKotNhgB/QhTxJkEwYKgViiuTMzBdbGt2kYONesDf2Xn
-----END PRIVATE KEY-----
";
pub const ED_PUBLIC_PEM: &str = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAmX7alXfTib7VItWY7z2XStO8IKpcC4CZPUmP7Cb5WPo=
-----END PUBLIC KEY-----
";

/// `openssl ecparam -name prime256v1 -genkey`, its PKCS#8 form and `-pubout`.
pub const EC_SEC1_PEM: &str = "-----BEGIN EC PRIVATE KEY-----
MHcCAQEEIDbXUZ+xqheWjHiYZWDddyU4eNmdOVv//I+lL18sta5BoAoGCCqGSM49
AwEHoUQDQgAEAfoID7TuI3EInk9q8TGUCBoneyPiYjE70XqOJAzZenPz5JCl18j/
ATmixa+5Evx4ogt0ftVnrmirzK+2OqWdhQ==
-----END EC PRIVATE KEY-----
";
pub const EC_PKCS8_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgNtdRn7GqF5aMeJhl
YN13JTh42Z05W//8j6UvXyy1rkGhRANCAAQB+ggPtO4jcQieT2rxMZQIGid7I+Ji
MTvReo4kDNl6c/PkkKXXyP8BOaLFr7kS/HiiC3R+1WeuaKvMr7Y6pZ2F
-----END PRIVATE KEY-----
";
pub const EC_PUBLIC_PEM: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEAfoID7TuI3EInk9q8TGUCBoneyPi
YjE70XqOJAzZenPz5JCl18j/ATmixa+5Evx4ogt0ftVnrmirzK+2OqWdhQ==
-----END PUBLIC KEY-----
";

/// Signs arbitrary header/payload JSON text (for hand-made hostile tokens).
pub fn sign_raw(header: &str, payload: &str, key: &SigningKey) -> String {
    let message = format!("{}.{}", b64u_encode(header), b64u_encode(payload));
    let sig = key.sign(message.as_bytes()).unwrap();
    format!("{message}.{sig}")
}

/// An HS256 key over [`SECRET`] with `kid`.
pub fn hs256(kid: Option<&str>) -> SigningKey {
    SigningKey::from_secret(SECRET, Algorithm::HS256, kid.map(str::to_owned)).unwrap()
}
