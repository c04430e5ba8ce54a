//! Arbitrary bytes as stored rate-limit state: decoding never panics, what decodes
//! re-encodes to the same bytes, and the limiter copes with any state.
//! The body of the cargo-fuzz target `ratelimit_state` (`make fuzz`), also replayed over the committed
//! corpus by `cargo test` (tests/fuzz_replay.rs).

use keygate::ratelimit::{Limiter, Quota, State};

pub fn run(data: &[u8]) {
    let Ok(state) = State::try_from(data) else {
        return;
    };
    assert_eq!(state.to_bytes(), data, "state round trip");
    let quotas: Vec<Quota> = ["5/minute", "100/hour"]
        .iter()
        .filter_map(|q| q.parse().ok())
        .collect();
    let Ok(limiter) = Limiter::new(quotas) else {
        return;
    };
    for now in [0, 1_700_000_000_000, u64::MAX] {
        let d = limiter.check(Some(&state), state.fingerprint(), now);
        let _ = (d.ratelimit_header(), d.retry_after_secs());
    }
}
