//! Fleet-wide limits: the decision of a rate-limit service (Envoy's RLS v3) whose state lives
//! in a store many deciders share (Redis), committed by compare-and-set.
//!
//! One descriptor (its domain, entries and quota) is one stored key ([`SharedKey`]). Per
//! descriptor the service shell:
//! 1. reads the key's bytes and the store's clock (`now_ms`);
//! 2. `let d = decide(quota, bytes, key.fingerprint(), now_ms, hits)`;
//! 3. if `d.new_state()` is `Some`, stores it **only if the key still holds the bytes read**
//!    (compare-and-set), expiring after [`SharedDecision::ttl_ms`]; on a lost race it goes back
//!    to 2 with the bytes the store holds now. A refusal (or a zero-hit query) writes nothing.
//!
//! So an admission is reported only after the state it was computed from was replaced
//! atomically, and any number of replicas on one store never admit more than one GCRA would:
//! exactly `count` at once, then one per `period / count`, no double burst at a window edge.
//! Unreadable stored bytes start fresh, as for local limits (see [`super`]).

use super::{Limiter, Quota, RateDecision, State};
use crate::ConfigError;
use sha2::{Digest, Sha256};
use std::fmt;

/// Most entries in one descriptor.
pub const MAX_DESCRIPTOR_ENTRIES: usize = 16;
/// Longest descriptor entry key or value, in bytes.
pub const MAX_ENTRY_LEN: usize = 1024;
/// Slack added to a key's expiry past the moment its state equals a fresh one.
pub const EXPIRY_SLACK_MS: u64 = 1_000;

/// The time units of the rate-limit service protocol that a quota can be expressed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unit {
    /// One second.
    Second,
    /// 60 seconds.
    Minute,
    /// 3600 seconds.
    Hour,
    /// 86 400 seconds.
    Day,
}

impl Unit {
    /// Every unit, shortest first.
    pub const ALL: [Self; 4] = [Self::Second, Self::Minute, Self::Hour, Self::Day];

    /// Its length in seconds.
    #[must_use]
    pub const fn secs(self) -> u64 {
        match self {
            Self::Second => 1,
            Self::Minute => 60,
            Self::Hour => 3_600,
            Self::Day => 86_400,
        }
    }
}

impl fmt::Display for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Second => "second",
            Self::Minute => "minute",
            Self::Hour => "hour",
            Self::Day => "day",
        })
    }
}

impl Quota {
    /// The quota as `(requests_per_unit, unit)` when its period is exactly one [`Unit`].
    #[must_use]
    pub fn per_unit(&self) -> Option<(u32, Unit)> {
        let secs = self.period_secs();
        Unit::ALL
            .into_iter()
            .find(|u| u.secs() == secs)
            .map(|u| (self.count(), u))
    }

    /// `requests_per_unit` per `unit` (a descriptor's `limit` override).
    ///
    /// # Errors
    /// [`ConfigError`] on field `limit` when `requests_per_unit` is outside
    /// [`super::MIN_COUNT`]..=[`super::MAX_COUNT`].
    pub fn from_unit(requests_per_unit: u32, unit: Unit) -> Result<Self, ConfigError> {
        Self::new(requests_per_unit, unit.secs())
    }

    /// Parses a quota that must be a count per `second`, `minute`, `hour` or `day`.
    ///
    /// # Errors
    /// [`ConfigError`] on field `limit` when it does not parse or has another period
    /// (`"100/15m"`, `"1/week"`).
    pub fn parse_per_unit(s: &str) -> Result<Self, ConfigError> {
        match s.parse::<Self>() {
            Ok(q) if q.per_unit().is_some() => Ok(q),
            _ => Err(ConfigError::new(
                "limit",
                format!(
                    "{s:?}: a rate-limit service quota is a count ({}..={}) per second, \
                     minute, hour or day, like \"5/minute\" or \"100/h\"",
                    super::MIN_COUNT,
                    super::MAX_COUNT
                ),
            )),
        }
    }
}

/// The stored key of one descriptor and the fingerprint its state carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedKey {
    key: String,
    fingerprint: u64,
}

impl SharedKey {
    /// `kg:rls:{<32 hex digits>}`: SHA-256 over the domain, the entries (length-prefixed, so
    /// `("a", "bc")` and `("ab", "c")` differ) and the quota. One descriptor is one key; the
    /// braces are a Redis Cluster hash tag, so the key stays in one slot should it ever be
    /// split; descriptor values (addresses, user ids) never appear in the store.
    #[must_use]
    pub fn new(domain: &str, entries: &[(&str, &str)], quota: Quota) -> Self {
        let mut h = Sha256::new();
        h.update(b"keygate rls v1\0");
        let mut field = |b: &[u8]| {
            h.update((b.len() as u64).to_le_bytes());
            h.update(b);
        };
        field(domain.as_bytes());
        field(&(entries.len() as u64).to_le_bytes());
        for (k, v) in entries {
            field(k.as_bytes());
            field(v.as_bytes());
        }
        field(&u64::from(quota.count()).to_le_bytes());
        field(&quota.period_ms().to_le_bytes());
        let digest = h.finalize();
        let mut key = String::with_capacity(41);
        key.push_str("kg:rls:{");
        for b in digest.iter().take(16) {
            key.push(char::from(HEX[usize::from(b >> 4)]));
            key.push(char::from(HEX[usize::from(b & 15)]));
        }
        key.push('}');
        let fingerprint = digest
            .first_chunk::<8>()
            .map_or(0, |b| u64::from_le_bytes(*b));
        Self { key, fingerprint }
    }

    /// The store key.
    #[must_use]
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The fingerprint stored in (and expected of) the key's state.
    #[must_use]
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Decides `hits` requests (the protocol's `hits_addend`; 0 is a status query) of the
/// descriptor whose key has `fingerprint`, at the store's clock `now_ms`, from the key's stored
/// bytes (`None` when absent; unreadable bytes start fresh).
pub fn decide(
    quota: Quota,
    stored: Option<&[u8]>,
    fingerprint: u64,
    now_ms: u64,
    hits: u32,
) -> SharedDecision {
    let state = stored.and_then(|b| State::try_from(b).ok());
    let decision = Limiter::single(quota).check_hits(state.as_ref(), fingerprint, now_ms, hits);
    let now_us = now_ms.saturating_mul(1_000);
    let ttl_ms = decision.new_state().map_or(0, |s| {
        let last = s.tats_us().iter().copied().max().unwrap_or(now_us);
        last.saturating_sub(now_us)
            .div_ceil(1_000)
            .saturating_add(EXPIRY_SLACK_MS)
    });
    SharedDecision {
        new_state: decision.new_state().map(State::to_bytes),
        decision,
        ttl_ms,
        quota,
    }
}

/// The outcome of [`decide`] for one descriptor.
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedDecision {
    decision: RateDecision,
    new_state: Option<Vec<u8>>,
    ttl_ms: u64,
    quota: Quota,
}

impl SharedDecision {
    /// Whether the hits are admitted.
    #[must_use]
    pub fn allowed(&self) -> bool {
        self.decision.allowed()
    }

    /// The bytes to compare-and-set in when admitted; `None` when refused or for a zero-hit
    /// query (write nothing).
    #[must_use]
    pub fn new_state(&self) -> Option<&[u8]> {
        self.new_state.as_deref()
    }

    /// Milliseconds the stored key should live: until its state equals a fresh one, plus
    /// [`EXPIRY_SLACK_MS`]. So idle keys leave the store by themselves.
    #[must_use]
    pub fn ttl_ms(&self) -> u64 {
        self.ttl_ms
    }

    /// The quota decided on (the protocol's `current_limit`).
    #[must_use]
    pub fn quota(&self) -> Quota {
        self.quota
    }

    /// Requests still admitted right now (`limit_remaining`; 0 when refused).
    #[must_use]
    pub fn remaining(&self) -> u32 {
        self.decision.remaining()
    }

    /// The protocol's `duration_until_reset`, in seconds: when refused, the wait until a retry
    /// can be admitted (what a `Retry-After` needs); when admitted, the time until the quota is
    /// full again (the `t` of the `RateLimit` header).
    #[must_use]
    pub fn duration_until_reset_secs(&self) -> u64 {
        self.decision
            .retry_after_secs()
            .unwrap_or(self.decision.reset_secs())
    }

    /// The GCRA decision (`RateLimit`, `Retry-After` header values, the error when refused).
    pub fn decision(&self) -> &RateDecision {
        &self.decision
    }

    /// The response headers local limits send for the same decision: `ratelimit-policy`,
    /// `ratelimit` and, when refused, `retry-after`.
    #[must_use]
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut h = vec![
            (
                "ratelimit-policy",
                format!(
                    "\"{}\";q={};w={}",
                    self.quota,
                    self.quota.count(),
                    self.quota.period_secs()
                ),
            ),
            (
                "ratelimit",
                format!(
                    "\"{}\";r={};t={}",
                    self.quota,
                    self.decision.remaining(),
                    self.decision.reset_secs()
                ),
            ),
        ];
        if let Some(r) = self.decision.retry_after() {
            h.push(("retry-after", r));
        }
        h
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const T0: u64 = 1_700_000_000_000;

    fn q(s: &str) -> Quota {
        s.parse().unwrap()
    }

    #[test]
    fn key_ok() {
        let five = q("5/minute");
        let k = SharedKey::new("edge", &[("remote_address", "192.0.2.1")], five);
        assert_eq!(
            k,
            SharedKey::new("edge", &[("remote_address", "192.0.2.1")], five)
        );
        assert!(k.key().starts_with("kg:rls:{") && k.key().ends_with('}'));
        assert_eq!(k.key().len(), 8 + 32 + 1);
        assert!(!k.key().contains("192.0.2.1"));
        let others = [
            SharedKey::new("edge2", &[("remote_address", "192.0.2.1")], five),
            SharedKey::new("edge", &[("remote_address", "192.0.2.2")], five),
            SharedKey::new("edge", &[("remote_addres", "s192.0.2.1")], five),
            SharedKey::new("edge", &[("remote_address", "192.0.2.1"), ("a", "b")], five),
            SharedKey::new("edge", &[("remote_address", "192.0.2.1")], q("6/minute")),
            SharedKey::new("edge", &[("remote_address", "192.0.2.1")], q("5/hour")),
            SharedKey::new("edge", &[], five),
        ];
        for o in &others {
            assert_ne!(o.key(), k.key());
            assert_ne!(o.fingerprint(), k.fingerprint());
        }
    }

    #[test]
    fn units_ok() {
        assert_eq!(q("5/minute").per_unit(), Some((5, Unit::Minute)));
        assert_eq!(q("1/s").per_unit(), Some((1, Unit::Second)));
        assert_eq!(q("3/h").per_unit(), Some((3, Unit::Hour)));
        assert_eq!(q("200/day").per_unit(), Some((200, Unit::Day)));
        assert_eq!(q("5/15m").per_unit(), None);
        assert_eq!(q("1/week").per_unit(), None);
        assert_eq!(Quota::from_unit(5, Unit::Minute).unwrap(), q("5/minute"));
        assert_eq!(
            Quota::from_unit(0, Unit::Minute).unwrap_err().field,
            "limit"
        );
        assert!(Quota::from_unit(MAX_COUNT_PLUS_ONE, Unit::Day).is_err());
        assert_eq!(Quota::parse_per_unit("5/m").unwrap(), q("5/minute"));
        for bad in ["5/15m", "1/week", "5/2h", "x"] {
            assert_eq!(
                Quota::parse_per_unit(bad).unwrap_err().field,
                "limit",
                "{bad}"
            );
        }
        assert_eq!(Unit::Hour.to_string(), "hour");
    }

    const MAX_COUNT_PLUS_ONE: u32 = super::super::MAX_COUNT + 1;

    /// A compare-and-set store of one key, like the Redis script.
    fn run(quota: Quota, n: usize, now_ms: u64, stored: &mut Option<Vec<u8>>) -> usize {
        let key = SharedKey::new("d", &[("k", "v")], quota);
        (0..n)
            .filter(|_| {
                let d = decide(quota, stored.as_deref(), key.fingerprint(), now_ms, 1);
                if let Some(s) = d.new_state() {
                    *stored = Some(s.to_vec());
                }
                d.allowed()
            })
            .count()
    }

    #[test]
    fn decide_exact_ok() {
        let five = q("5/minute");
        let mut st = None;
        // 1 ms before a minute boundary, then just after it: no second burst; one per 12 s.
        let start = T0 - T0 % 60_000 + 59_999;
        assert_eq!(run(five, 40, start, &mut st), 5);
        assert_eq!(run(five, 40, start + 1, &mut st), 0);
        assert_eq!(run(five, 40, start + 11_999, &mut st), 0);
        assert_eq!(run(five, 40, start + 12_000, &mut st), 1);
        let mut st = None;
        assert_eq!(run(q("100/hour"), 1000, T0, &mut st), 100);
    }

    #[test]
    fn decision_fields_ok() {
        let five = q("5/minute");
        let k = SharedKey::new("d", &[("k", "v")], five);
        let d = decide(five, None, k.fingerprint(), T0, 1);
        assert!(d.allowed());
        assert_eq!(d.quota(), five);
        assert_eq!(d.remaining(), 4);
        assert_eq!(d.duration_until_reset_secs(), 12);
        assert_eq!(d.ttl_ms(), 12_000 + EXPIRY_SLACK_MS);
        assert_eq!(
            d.headers(),
            [
                ("ratelimit-policy", "\"5/minute\";q=5;w=60".to_owned()),
                ("ratelimit", "\"5/minute\";r=4;t=12".to_owned()),
            ]
        );
        let st = d.new_state().unwrap().to_vec();
        let d = decide(five, Some(&st), k.fingerprint(), T0, 4);
        assert!(d.allowed());
        assert_eq!(d.ttl_ms(), 60_000 + EXPIRY_SLACK_MS);
        let st = d.new_state().unwrap().to_vec();
        let d = decide(five, Some(&st), k.fingerprint(), T0 + 1_000, 1);
        assert!(!d.allowed());
        assert!(d.new_state().is_none());
        assert_eq!(d.remaining(), 0);
        assert_eq!(d.duration_until_reset_secs(), 11);
        assert_eq!(
            d.decision().error().unwrap().to_string(),
            "too many requests: retry after 11 second(s)"
        );
        assert_eq!(
            d.headers().last().unwrap(),
            &("retry-after", "11".to_owned())
        );
        // A status query reports without writing.
        let d = decide(five, Some(&st), k.fingerprint(), T0 + 1_000, 0);
        assert!(d.allowed() && d.new_state().is_none() && d.remaining() == 0);
    }

    #[test]
    fn unreadable_state_starts_fresh_ok() {
        let five = q("5/minute");
        for junk in [&b""[..], b"\x00", b"garbage bytes here!"] {
            let d = decide(five, Some(junk), 1, T0, 1);
            assert!(d.allowed());
            assert_eq!(d.remaining(), 4);
        }
    }

    proptest! {
        #[test]
        fn decide_never_panics_ok(bytes in proptest::collection::vec(any::<u8>(), 0..40),
                                  now in any::<u64>(), hits in any::<u32>()) {
            let d = decide(q("7/hour"), Some(&bytes), 3, now, hits);
            prop_assert!(d.new_state().is_none() || d.allowed());
            prop_assert!(d.remaining() <= 7);
        }
    }
}
