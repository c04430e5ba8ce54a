//! cargo-fuzz target: the body is tests/fuzz/targets/config.rs (shared with the corpus replay
//! of `cargo test`, tests/fuzz_replay.rs).
#![no_main]

#[path = "../targets/config.rs"]
mod target;

libfuzzer_sys::fuzz_target!(|data: &[u8]| target::run(data));
