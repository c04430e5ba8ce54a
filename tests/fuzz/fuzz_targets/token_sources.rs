//! cargo-fuzz target: the body is tests/fuzz/targets/token_sources.rs (shared with the corpus replay
//! of `cargo test`, tests/fuzz_replay.rs).
#![no_main]

#[path = "../targets/token_sources.rs"]
mod target;

libfuzzer_sys::fuzz_target!(|data: &[u8]| target::run(data));
