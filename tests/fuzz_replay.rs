//! The cargo-fuzz targets' bodies (tests/fuzz/targets/, the same functions `make fuzz` runs
//! under libFuzzer) over the committed corpus (tests/fuzz/corpus/<target>/), the empty input,
//! and a fixed number of seeded mutations of the corpus: every assertion of the fuzz targets runs
//! in `cargo test` without an instrumented build. Real fuzzing (coverage-guided, new inputs)
//! stays in `make fuzz`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "fuzz/targets/config.rs"]
mod config;
#[path = "fuzz/targets/policy_path.rs"]
mod policy_path;
#[path = "fuzz/targets/ratelimit_state.rs"]
mod ratelimit_state;
#[path = "fuzz/targets/token_decode.rs"]
mod token_decode;
#[path = "fuzz/targets/token_sources.rs"]
mod token_sources;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

/// Seeded mutations per target (byte flips, inserts, deletes, truncations, splices).
const MUTATIONS: usize = 3000;

fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz/corpus")
        .join(target);
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect();
    files.sort();
    files
}

/// xorshift64*: deterministic, so a failure reproduces with the same input every run.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Rng, seeds: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut d = seeds[rng.below(seeds.len())].1.clone();
    for _ in 0..1 + rng.below(4) {
        let interesting = [
            0u8, 0xff, 0xfe, b'.', b'"', b'{', b'}', b'/', b',', b' ', 0x80,
        ];
        match rng.below(6) {
            0 if !d.is_empty() => {
                let i = rng.below(d.len());
                d[i] ^= 1 << rng.below(8);
            }
            1 => {
                let i = rng.below(d.len() + 1);
                let b = if rng.below(2) == 0 {
                    interesting[rng.below(interesting.len())]
                } else {
                    rng.next() as u8
                };
                d.insert(i, b);
            }
            2 if !d.is_empty() => {
                let i = rng.below(d.len());
                let n = 1 + rng.below(8.min(d.len() - i));
                d.drain(i..i + n);
            }
            3 => d.truncate(rng.below(d.len() + 1)),
            4 => {
                let other = &seeds[rng.below(seeds.len())].1;
                let at = rng.below(d.len() + 1);
                let from = rng.below(other.len() + 1);
                d.truncate(at);
                d.extend_from_slice(&other[from..]);
            }
            _ if !d.is_empty() => {
                let i = rng.below(d.len());
                d[i] = interesting[rng.below(interesting.len())];
            }
            _ => {}
        }
    }
    d
}

fn run_one(target: &str, what: &str, data: &[u8], f: fn(&[u8])) {
    if catch_unwind(AssertUnwindSafe(|| f(data))).is_err() {
        panic!(
            "fuzz target {target} failed on {what}: {} bytes, hex {}",
            data.len(),
            data.iter().map(|b| format!("{b:02x}")).collect::<String>()
        );
    }
}

fn replay(target: &str, f: fn(&[u8])) {
    let seeds = corpus(target);
    assert!(!seeds.is_empty(), "tests/fuzz/corpus/{target} is empty");
    run_one(target, "the empty input", b"", f);
    for (name, data) in &seeds {
        run_one(target, &format!("corpus file {name}"), data, f);
    }
    let mut rng = Rng(0x6b65_7967_6174_6500 ^ target.len() as u64);
    for i in 0..MUTATIONS {
        let data = mutate(&mut rng, &seeds);
        run_one(target, &format!("mutation {i}"), &data, f);
    }
}

#[test]
fn fuzz_config() {
    replay("config", config::run);
}

#[test]
fn fuzz_policy_path() {
    replay("policy_path", policy_path::run);
}

#[test]
fn fuzz_ratelimit_state() {
    replay("ratelimit_state", ratelimit_state::run);
}

#[test]
fn fuzz_token_decode() {
    replay("token_decode", token_decode::run);
}

#[test]
fn fuzz_token_sources() {
    replay("token_sources", token_sources::run);
}

/// The replay can fail: an input that breaks a target's assertion is reported, not swallowed.
#[test]
fn a_failing_target_is_reported() {
    fn rejects_empty(data: &[u8]) {
        assert!(!data.is_empty());
    }
    let r = catch_unwind(|| run_one("probe", "the empty input", b"", rejects_empty));
    assert!(r.is_err());
}
