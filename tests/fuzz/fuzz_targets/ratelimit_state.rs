//! cargo-fuzz target: the body is tests/fuzz/targets/ratelimit_state.rs (shared with the corpus replay
//! of `cargo test`, tests/fuzz_replay.rs).
#![no_main]

#[path = "../targets/ratelimit_state.rs"]
mod target;

libfuzzer_sys::fuzz_target!(|data: &[u8]| target::run(data));
