//! Arbitrary bytes as every configuration document: parsing never panics, a refusal always
//! names a field, and an accepted config can decide a request.
//! The body of the cargo-fuzz target `config` (`make fuzz`), also replayed over the committed
//! corpus by `cargo test` (tests/fuzz_replay.rs).

use keygate::gateway::{Gateway, MemoryStore, RequestHeaders};
use keygate::token::{Jwk, Jwks, Validation};

pub fn run(data: &[u8]) {
    match Gateway::from_json(data) {
        Ok(g) => {
            // Bounded over all rules.
            assert!(g.rate_limit_slots() <= keygate::ratelimit::MAX_TOTAL_SLOTS);
            let store = MemoryStore::new();
            let r = RequestHeaders::new(
                vec![
                    (b":method".to_vec(), b"GET".to_vec()),
                    (b":path".to_vec(), b"/api/x".to_vec()),
                ],
                Some(b"192.0.2.1:1"),
            );
            let _ = g.check(&r, &store, 1_700_000_000_000);
        }
        Err(e) => assert!(!e.field.is_empty()),
    }
    if let Ok(text) = std::str::from_utf8(data) {
        // The npm module's `new Keygate(config)`: read and built by the core.
        let _ = keygate::edge_config::EdgeConfig::from_json(text).and_then(|c| c.build());
        let _ = text.parse::<Jwks>();
        let _ = text.parse::<Jwk>().map(|j| j.thumbprint());
    }
    let _ = serde_json::from_slice::<Validation>(data);
    let _ = serde_json::from_slice::<keygate::policy::PolicyConfig>(data)
        .map(|c| keygate::policy::Policy::new(&c));
    let _ = serde_json::from_slice::<Vec<keygate::ratelimit::RateLimitRuleConfig>>(data)
        .map(|c| keygate::ratelimit::RateLimits::new(&c));
}
