//! Arbitrary bytes as a token: decoding never panics, and nothing but a correctly signed
//! token verifies.
//! The body of the cargo-fuzz target `token_decode` (`make fuzz`), also replayed over the committed
//! corpus by `cargo test` (tests/fuzz_replay.rs).

use keygate::token::{decode, Jwks, KeySet, Validation};
use std::sync::OnceLock;

const NOW: u64 = 1_700_000_000;

fn keys() -> &'static KeySet {
    static KEYS: OnceLock<KeySet> = OnceLock::new();
    KEYS.get_or_init(|| {
        let jwks: Jwks = r#"{"keys": [
            {"kty": "oct", "kid": "k1", "alg": "HS256", "k": "Y2hhbmdlLW1lLXRoaXMtaXMtdGhlLWV4YW1wbGUtc2VjcmV0LTMyK2J5dGVzLWxvbmc"},
            {"kty": "oct", "alg": "HS512", "k": "b3RoZXItc2VjcmV0LW90aGVyLXNlY3JldC1vdGhlci1zZWNyZXQtMzIrYnl0ZXM"}
        ]}"#
        .parse()
        .unwrap_or_default();
        KeySet::from_jwks(&jwks).unwrap_or_else(|_| std::process::abort())
    })
}

pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut validation = Validation::default();
    validation.leeway = 30;
    if let Ok(claims) = decode(&text, keys(), &validation, NOW) {
        // A fuzzer cannot forge an HMAC: only a seed-corpus token may verify.
        assert!(claims.exp + 30 >= NOW);
    }
    let _ = serde_json::from_slice::<keygate::token::Claims>(data);
    let _ = serde_json::from_slice::<keygate::token::Header>(data);
}
