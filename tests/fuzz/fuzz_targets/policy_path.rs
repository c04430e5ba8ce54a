//! cargo-fuzz target: the body is tests/fuzz/targets/policy_path.rs (shared with the corpus replay
//! of `cargo test`, tests/fuzz_replay.rs).
#![no_main]

#[path = "../targets/policy_path.rs"]
mod target;

libfuzzer_sys::fuzz_target!(|data: &[u8]| target::run(data));
