//! The stored state of one rate-limit slot, as compact bytes for proxy-wasm shared data.
//!
//! Layout (little endian): `version: u8 = 1`, `n: u8` (1..=[`MAX_QUOTAS`]), `fingerprint: u64`,
//! then `n` × `tat: u64` — the theoretical arrival time of each quota in **microseconds** since
//! the Unix epoch. Total `10 + 8n` bytes.

use super::{RateLimitError, MAX_QUOTAS};

const VERSION: u8 = 1;
const HEADER_LEN: usize = 10;

/// One slot's GCRA state: the owning key's fingerprint and one TAT per quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct State {
    fingerprint: u64,
    len: u8,
    tats_us: [u64; MAX_QUOTAS],
}

impl State {
    /// `tats_us` must hold 1..=MAX_QUOTAS values (checked by callers in this module).
    pub(crate) fn new(fingerprint: u64, tats_us: &[u64]) -> Option<Self> {
        let len = u8::try_from(tats_us.len()).ok()?;
        if tats_us.is_empty() || tats_us.len() > MAX_QUOTAS {
            return None;
        }
        let mut all = [0u64; MAX_QUOTAS];
        all.iter_mut().zip(tats_us).for_each(|(d, s)| *d = *s);
        Some(Self {
            fingerprint,
            len,
            tats_us: all,
        })
    }

    /// The fingerprint of the key that owns the slot.
    #[must_use]
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// Theoretical arrival time of each quota, microseconds since the Unix epoch.
    #[must_use]
    pub fn tats_us(&self) -> &[u64] {
        self.tats_us.get(..usize::from(self.len)).unwrap_or(&[])
    }

    /// The stored form (`10 + 8n` bytes).
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + 8 * usize::from(self.len));
        out.push(VERSION);
        out.push(self.len);
        out.extend_from_slice(&self.fingerprint.to_le_bytes());
        for tat in self.tats_us() {
            out.extend_from_slice(&tat.to_le_bytes());
        }
        out
    }
}

impl TryFrom<&[u8]> for State {
    type Error = RateLimitError;

    fn try_from(bytes: &[u8]) -> Result<Self, Self::Error> {
        let malformed = |why| RateLimitError::StateMalformed { why };
        let (&version, rest) = bytes.split_first().ok_or(malformed("empty"))?;
        if version != VERSION {
            return Err(malformed("unknown version"));
        }
        let (&n, rest) = rest.split_first().ok_or(malformed("truncated"))?;
        let n = usize::from(n);
        if n == 0 || n > MAX_QUOTAS {
            return Err(malformed("quota count out of range"));
        }
        if rest.len() != 8 + 8 * n {
            return Err(malformed("wrong length"));
        }
        let mut words = rest
            .chunks_exact(8)
            .map(|c| <[u8; 8]>::try_from(c).map(u64::from_le_bytes));
        let fingerprint = words
            .next()
            .and_then(Result::ok)
            .ok_or(malformed("truncated"))?;
        let mut tats = [0u64; MAX_QUOTAS];
        for (slot, word) in tats.iter_mut().zip(words) {
            *slot = word.map_err(|_| malformed("truncated"))?;
        }
        Self::new(fingerprint, tats.get(..n).unwrap_or(&[])).ok_or(malformed("truncated"))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::ErrorCode;
    use proptest::prelude::*;

    #[test]
    fn round_trip_ok() {
        let s = State::new(0xdead_beef_0123_4567, &[1, u64::MAX, 0]).unwrap();
        let bytes = s.to_bytes();
        assert_eq!(bytes.len(), 10 + 24);
        assert_eq!(bytes.first(), Some(&1));
        assert_eq!(bytes.get(1), Some(&3));
        let back = State::try_from(bytes.as_slice()).unwrap();
        assert_eq!(back, s);
        assert_eq!(back.tats_us(), [1, u64::MAX, 0]);
        assert_eq!(back.fingerprint(), 0xdead_beef_0123_4567);
    }

    #[test]
    fn known_bytes_ok() {
        let s = State::new(2, &[3]).unwrap();
        assert_eq!(
            s.to_bytes(),
            [1, 1, 2, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0]
        );
    }

    #[test]
    fn malformed_fails() {
        let good = State::new(7, &[1, 2]).unwrap().to_bytes();
        let mut cases: Vec<Vec<u8>> = vec![vec![], vec![1], vec![2, 1], vec![1, 0], vec![1, 9]];
        cases.push(good.get(..good.len() - 1).unwrap().to_vec());
        let mut long = good.clone();
        long.push(0);
        cases.push(long);
        let mut wrong_n = good.clone();
        wrong_n[1] = 3;
        cases.push(wrong_n);
        for bad in cases {
            let e = State::try_from(bad.as_slice()).unwrap_err();
            assert_eq!(e.code(), "rate_limit_state_invalid", "{bad:?}");
        }
        assert!(State::new(1, &[]).is_none());
        assert!(State::new(1, &[0; MAX_QUOTAS + 1]).is_none());
    }

    proptest! {
        #[test]
        fn try_from_arbitrary_bytes_never_panics_ok(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
            if let Ok(s) = State::try_from(bytes.as_slice()) {
                prop_assert_eq!(s.to_bytes(), bytes);
            }
        }

        #[test]
        fn round_trip_arbitrary_ok(fp in any::<u64>(), tats in proptest::collection::vec(any::<u64>(), 1..=MAX_QUOTAS)) {
            let s = State::new(fp, &tats).unwrap();
            prop_assert_eq!(State::try_from(s.to_bytes().as_slice()), Ok(s));
        }
    }
}
