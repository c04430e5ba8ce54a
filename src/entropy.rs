//! Randomness as an input: the core never reaches for a random source by itself.
//!
//! Shells pass [`OsEntropy`] (the platform CSPRNG through `getrandom`); tests pass
//! [`SeededEntropy`] so every output is reproducible.

use sha2::{Digest, Sha256};
use std::fmt;

/// The random source could not deliver bytes. Callers fail closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntropyError;

impl fmt::Display for EntropyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the system random source is unavailable")
    }
}

impl std::error::Error for EntropyError {}

impl crate::ErrorCode for EntropyError {
    fn code(&self) -> &'static str {
        "entropy_unavailable"
    }
}

/// A source of random bytes.
pub trait Entropy {
    /// Fills `dest` entirely with random bytes.
    ///
    /// # Errors
    /// [`EntropyError`] when the source cannot deliver; nothing random may be produced then.
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), EntropyError>;

    /// `N` random bytes.
    ///
    /// # Errors
    /// As [`Entropy::fill`].
    fn bytes<const N: usize>(&mut self) -> Result<[u8; N], EntropyError>
    where
        Self: Sized,
    {
        let mut out = [0u8; N];
        self.fill(&mut out)?;
        Ok(out)
    }
}

/// The operating system's CSPRNG (WASI `random_get`, `crypto.getRandomValues`, `getrandom(2)`).
#[derive(Debug, Default, Clone, Copy)]
pub struct OsEntropy;

impl Entropy for OsEntropy {
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), EntropyError> {
        getrandom::fill(dest).map_err(|_| EntropyError)
    }
}

/// Deterministic bytes from a seed (SHA-256 in counter mode). For tests and reproducible
/// examples only: never use a fixed seed to make real secrets.
#[derive(Debug, Clone)]
pub struct SeededEntropy {
    seed: [u8; 32],
    counter: u64,
}

impl SeededEntropy {
    /// A stream determined entirely by `seed`.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self {
            seed: Sha256::digest(seed.to_le_bytes()).into(),
            counter: 0,
        }
    }
}

impl Entropy for SeededEntropy {
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), EntropyError> {
        for chunk in dest.chunks_mut(32) {
            let mut h = Sha256::new();
            h.update(self.seed);
            h.update(self.counter.to_le_bytes());
            self.counter += 1;
            let block = h.finalize();
            chunk.copy_from_slice(&block[..chunk.len()]);
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn seeded_is_reproducible_ok() {
        let a: [u8; 40] = SeededEntropy::new(7).bytes().unwrap_or([0; 40]);
        let b: [u8; 40] = SeededEntropy::new(7).bytes().unwrap_or([1; 40]);
        let c: [u8; 40] = SeededEntropy::new(8).bytes().unwrap_or([0; 40]);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn os_entropy_fills_ok() {
        let a: [u8; 32] = OsEntropy.bytes().unwrap_or([0; 32]);
        let b: [u8; 32] = OsEntropy.bytes().unwrap_or([0; 32]);
        assert_ne!(a, b);
    }
}
