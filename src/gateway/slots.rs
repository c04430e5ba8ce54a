//! Rate-limit slots in shared data: naming, creation, and the compare-and-swap loop.

use super::store::{SharedStore, StoreError, SENTINEL};
use crate::ratelimit::{
    key_fingerprint, push_decimal, slot_index, RateDecision, RateLimitRule, State,
};
use subtle::ConstantTimeEq;

/// Reads/CAS writes tried for one slot before giving up. Each failed CAS means another
/// request on the same slot was admitted in between, so a long losing streak only happens
/// under a flood of that very key.
pub const MAX_CAS_ATTEMPTS: usize = 16;

/// CAS value that creates a key only when it is absent. The ABI creates a missing key
/// whatever the CAS, but refuses a non-zero CAS that does not match an existing key; Envoy's
/// CAS counter starts at 1 and would need 2^32 writes to reach this value.
const CREATE_IF_ABSENT: u32 = u32::MAX;

/// The shared-data key of `slot` of rule `rule`: `kg:rl:<config id>:<rule>:<slot>`.
///
/// Shared data is scoped by `vm_id` only, so two plugin configs with the same `vm_id` (or an
/// old and a new config during an update) would otherwise write each other's slots; the
/// config id (from the configuration-derived seed) keeps them apart.
#[must_use]
pub fn slot_key(seed: &[u8; 32], rule: usize, slot: u32) -> String {
    // Written by hand, not `format!`: it is built on every rate-limited request.
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut key = String::with_capacity(48);
    key.push_str("kg:rl:");
    for &byte in &seed[..4] {
        key.push(char::from(HEX[usize::from(byte >> 4)]));
        key.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    key.push(':');
    push_decimal(&mut key, rule as u64);
    key.push(':');
    push_decimal(&mut key, u64::from(slot));
    key
}

/// Creates `key` holding the sentinel unless it exists; never overwrites a state.
///
/// # Errors
/// The store's error, other than the mismatch that means "already there".
pub fn create_slot(store: &impl SharedStore, key: &str) -> Result<bool, StoreError> {
    match store.set(key, SENTINEL, CREATE_IF_ABSENT) {
        Ok(()) => Ok(true),
        Err(StoreError::CasMismatch) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Entries of a gateway's [`FingerprintMemo`].
pub const FINGERPRINT_MEMO_ENTRIES: usize = 256;

/// Longest key the [`FingerprintMemo`] keeps (bytes); a longer one (a long `sub`) is hashed
/// each time, as without the memo, so the memo holds at most ≈ 256 × 128 B of keys.
pub const FINGERPRINT_MEMO_MAX_KEY_LEN: usize = 128;

/// The rate-limit key fingerprints a gateway computed last, so that a client seen again (the
/// common case: one address or subject sends many requests) costs a lookup instead of a
/// SHA-256 ([`key_fingerprint`]). Direct-mapped: [`FINGERPRINT_MEMO_ENTRIES`] entries, each
/// key in the one entry its hash picks, replacing what was there — bounded whatever the
/// keys (keys up to [`FINGERPRINT_MEMO_MAX_KEY_LEN`] bytes; longer ones are not kept), and a
/// key that collides (or an attacker's stream of new keys) costs what it cost without the
/// memo plus one copy of the key. The entry is picked by an FNV-1a hash started from the
/// gateway's seed, so colliding keys cannot be computed without it. The answer is always
/// `key_fingerprint(seed, rule, key)`: an entry is only used for the same rule and the same
/// key bytes (compared in constant time), and the seed is the gateway's own.
#[derive(Debug, Default, Clone)]
pub(crate) struct FingerprintMemo {
    entries: Vec<Option<(usize, String, u64)>>,
    /// FNV-1a's state after the seed (set with the entries, at first use).
    base: u64,
}

/// FNV-1a over `bytes` from `state`.
fn fnv1a(mut state: u64, bytes: impl IntoIterator<Item = u8>) -> u64 {
    for b in bytes {
        state = (state ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    state
}

impl FingerprintMemo {
    /// `key_fingerprint(seed, rule, key)`, from the memo when it holds it.
    pub(crate) fn fingerprint(&mut self, seed: &[u8; 32], rule: usize, key: &str) -> u64 {
        if key.len() > FINGERPRINT_MEMO_MAX_KEY_LEN {
            return key_fingerprint(seed, rule, key);
        }
        if self.entries.is_empty() {
            self.entries.resize(FINGERPRINT_MEMO_ENTRIES, None);
            self.base = fnv1a(0xcbf2_9ce4_8422_2325, seed.iter().copied());
        }
        let at = self.index(rule, key);
        let Some(entry) = self.entries.get_mut(at) else {
            return key_fingerprint(seed, rule, key);
        };
        if let Some((r, k, fp)) = entry {
            if *r == rule && bool::from(k.as_bytes().ct_eq(key.as_bytes())) {
                return *fp;
            }
        }
        let fp = key_fingerprint(seed, rule, key);
        *entry = Some((rule, key.to_owned(), fp));
        fp
    }

    /// The entry for (`rule`, `key`): picks it, never decides.
    fn index(&self, rule: usize, key: &str) -> usize {
        let rule = (rule as u64).to_le_bytes();
        let h = fnv1a(self.base, rule.into_iter().chain(key.bytes()));
        // The high half: FNV's low bits depend only on the low bits of its state and input.
        ((h >> 32) % FINGERPRINT_MEMO_ENTRIES as u64) as usize
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.iter().flatten().count()
    }
}

/// How one rule judged one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SlotCheck {
    /// Admitted; its state was committed by CAS.
    Admitted(RateDecision),
    /// Refused by the quota (nothing written).
    Refused(RateDecision),
    /// The store failed or CAS kept losing: fail closed.
    Unavailable,
}

/// Runs GCRA for `key` under rule `index`, committing the new state with CAS.
///
/// Never over-admits: an admission is only reported after a CAS from exactly the state the
/// decision was computed on succeeded. A missing slot key (only if it was never created by
/// [`super::Gateway::prepare_store`]) is created with the sentinel and re-read, so the state
/// itself is still only ever written by CAS.
pub(crate) fn check_slot(
    seed: &[u8; 32],
    index: usize,
    rule: &RateLimitRule,
    key: &str,
    store: &impl SharedStore,
    now_ms: u64,
) -> SlotCheck {
    check_slot_of(
        seed,
        index,
        rule,
        key_fingerprint(seed, index, key),
        store,
        now_ms,
    )
}

/// [`check_slot`] for the key whose fingerprint is `fp` (`key_fingerprint(seed, index, key)`).
pub(crate) fn check_slot_of(
    seed: &[u8; 32],
    index: usize,
    rule: &RateLimitRule,
    fp: u64,
    store: &impl SharedStore,
    now_ms: u64,
) -> SlotCheck {
    let name = slot_key(seed, index, slot_index(fp, rule.slots()));
    for _ in 0..MAX_CAS_ATTEMPTS {
        let (bytes, cas) = match store.get(&name) {
            Ok(Some(found)) => found,
            Ok(None) => {
                if create_slot(store, &name).is_err() {
                    return SlotCheck::Unavailable;
                }
                continue;
            }
            Err(_) => return SlotCheck::Unavailable,
        };
        // Unreadable bytes (the sentinel, an old format) start fresh; see `ratelimit` docs.
        let state = State::try_from(bytes.as_slice()).ok();
        let decision = rule.limiter().check(state.as_ref(), fp, now_ms);
        let Some(new_state) = decision.new_state() else {
            return SlotCheck::Refused(decision);
        };
        match store.set(&name, &new_state.to_bytes(), cas) {
            Ok(()) => return SlotCheck::Admitted(decision),
            Err(StoreError::CasMismatch) => {}
            Err(_) => return SlotCheck::Unavailable,
        }
    }
    SlotCheck::Unavailable
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::gateway::store::{BrokenStore, MemoryStore};
    use crate::ratelimit::{RateLimitRuleConfig, RateLimits};
    use std::cell::Cell;

    const T0: u64 = 1_700_000_000_000;
    const SEED: [u8; 32] = [9; 32];

    #[test]
    fn slot_key_as_formatted_ok() {
        let mut seed = [0u8; 32];
        seed[..4].copy_from_slice(&[0x0a, 0xff, 0x00, 0x7b]);
        for (rule, slot) in [
            (0, 0),
            (1, 9),
            (10, 10),
            (12_345, 4_095),
            (usize::MAX, u32::MAX),
        ] {
            let want = format!("kg:rl:{:08x}:{rule}:{slot}", 0x0aff_007b_u32);
            assert_eq!(slot_key(&seed, rule, slot), want);
        }
        assert_eq!(slot_key(&SEED, 3, 7), "kg:rl:09090909:3:7");
    }

    fn rule(limit: &str) -> RateLimitRule {
        let c: Vec<RateLimitRuleConfig> = serde_json::from_str(&format!(
            r#"[{{"prefix": "/", "key": "ip", "limit": "{limit}", "slots": 8}}]"#
        ))
        .unwrap();
        RateLimits::new(&c).unwrap().rules()[0].clone()
    }

    fn admitted(c: &SlotCheck) -> bool {
        matches!(c, SlotCheck::Admitted(_))
    }

    #[test]
    fn admits_quota_then_refuses_ok() {
        let r = rule("3/minute");
        let s = MemoryStore::new();
        let got: Vec<bool> = (0..5)
            .map(|_| admitted(&check_slot(&SEED, 0, &r, "ip:1", &s, T0)))
            .collect();
        assert_eq!(got, [true, true, true, false, false]);
        assert_eq!(s.len(), 1);
    }

    /// A store where another worker writes between every read and write, `conflicts` times.
    struct Contended {
        inner: MemoryStore,
        conflicts: Cell<usize>,
        rival_admits: Cell<usize>,
        rule: RateLimitRule,
    }

    impl SharedStore for Contended {
        fn get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, StoreError> {
            self.inner.get(key)
        }
        fn set(&self, key: &str, value: &[u8], cas: u32) -> Result<(), StoreError> {
            if self.conflicts.get() > 0 && cas != 0 {
                self.conflicts.set(self.conflicts.get() - 1);
                // The rival admits one request of the same key through the same protocol.
                if admitted(&check_slot(&SEED, 0, &self.rule, "ip:1", &self.inner, T0)) {
                    self.rival_admits.set(self.rival_admits.get() + 1);
                }
            }
            self.inner.set(key, value, cas)
        }
    }

    #[test]
    fn cas_conflicts_never_over_admit_ok() {
        let r = rule("5/minute");
        let s = Contended {
            inner: MemoryStore::new(),
            conflicts: Cell::new(usize::MAX),
            rival_admits: Cell::new(0),
            rule: r.clone(),
        };
        s.inner.set(&slot_key(&SEED, 0, 0), SENTINEL, 0).unwrap();
        let mut ours = 0;
        for _ in 0..10 {
            ours += usize::from(admitted(&check_slot(&SEED, 0, &r, "ip:1", &s, T0)));
        }
        assert_eq!(ours + s.rival_admits.get(), 5);
        assert!(s.rival_admits.get() >= 1);
    }

    /// A store whose CAS always fails.
    struct AlwaysConflict(MemoryStore);

    impl SharedStore for AlwaysConflict {
        fn get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, StoreError> {
            self.0.get(key)
        }
        fn set(&self, key: &str, value: &[u8], cas: u32) -> Result<(), StoreError> {
            if cas == 0 {
                return self.0.set(key, value, cas);
            }
            Err(StoreError::CasMismatch)
        }
    }

    #[test]
    fn endless_conflict_fails_closed_fails() {
        let r = rule("5/minute");
        let s = AlwaysConflict(MemoryStore::new());
        assert_eq!(
            check_slot(&SEED, 0, &r, "ip:1", &s, T0),
            SlotCheck::Unavailable
        );
        assert_eq!(
            check_slot(&SEED, 0, &r, "ip:1", &BrokenStore, T0),
            SlotCheck::Unavailable
        );
    }

    #[test]
    fn memo_gives_the_fingerprint_ok() {
        let mut memo = FingerprintMemo::default();
        let other = [3u8; 32];
        // Far more keys than entries, over two rules, each asked several times: every answer
        // is the SHA-256 fingerprint of that rule and key, colliding entries included.
        for round in 0..3 {
            for i in 0..(3 * FINGERPRINT_MEMO_ENTRIES) {
                for rule in 0..2 {
                    let key = format!("ip:10.0.{}.{}", i / 256, i % 256);
                    let want = key_fingerprint(&SEED, rule, &key);
                    assert_eq!(memo.fingerprint(&SEED, rule, &key), want, "{round} {key}");
                    assert_eq!(memo.fingerprint(&SEED, rule, &key), want);
                }
            }
        }
        assert!(memo.len() <= FINGERPRINT_MEMO_ENTRIES);
        // Same key, another rule or a key that is a prefix: never the cached entry's answer.
        let fp = memo.fingerprint(&SEED, 0, "sub:alice");
        assert_ne!(memo.fingerprint(&SEED, 1, "sub:alice"), fp);
        assert_ne!(memo.fingerprint(&SEED, 0, "sub:alic"), fp);
        assert_eq!(memo.fingerprint(&SEED, 0, "sub:alice"), fp);
        // A memo is its gateway's: another seed gets its own memo's answers, and its
        // entries are picked differently (colliding keys depend on the seed).
        let mut theirs = FingerprintMemo::default();
        assert_eq!(
            theirs.fingerprint(&other, 0, "sub:alice"),
            key_fingerprint(&other, 0, "sub:alice")
        );
        let moved = (0..64)
            .map(|i| format!("ip:192.0.2.{i}"))
            .filter(|k| memo.index(0, k) != theirs.index(0, k))
            .count();
        assert!(moved > 32, "{moved} of 64 keys moved with the seed");
    }

    #[test]
    fn memo_keeps_no_long_key_ok() {
        let mut memo = FingerprintMemo::default();
        let short = format!("sub:{}", "x".repeat(FINGERPRINT_MEMO_MAX_KEY_LEN - 4));
        let long = format!("sub:{}", "x".repeat(30_000));
        assert_eq!(
            memo.fingerprint(&SEED, 0, &short),
            key_fingerprint(&SEED, 0, &short)
        );
        assert_eq!(memo.len(), 1);
        for _ in 0..3 {
            assert_eq!(
                memo.fingerprint(&SEED, 0, &long),
                key_fingerprint(&SEED, 0, &long)
            );
        }
        assert_eq!(memo.len(), 1);
        assert!(memo
            .entries
            .iter()
            .flatten()
            .all(|(_, k, _)| k.len() <= FINGERPRINT_MEMO_MAX_KEY_LEN));
    }

    #[test]
    fn missing_key_created_then_cas_ok() {
        let r = rule("1/minute");
        let s = MemoryStore::new();
        assert!(admitted(&check_slot(&SEED, 0, &r, "ip:1", &s, T0)));
        assert!(!admitted(&check_slot(&SEED, 0, &r, "ip:1", &s, T0)));
    }
}
