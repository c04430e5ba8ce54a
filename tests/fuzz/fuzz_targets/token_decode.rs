//! cargo-fuzz target: the body is tests/fuzz/targets/token_decode.rs (shared with the corpus replay
//! of `cargo test`, tests/fuzz_replay.rs).
#![no_main]

#[path = "../targets/token_decode.rs"]
mod target;

libfuzzer_sys::fuzz_target!(|data: &[u8]| target::run(data));
