//! Rate limits decided for a shell that stores one key's state itself (the npm module's
//! `checkRateLimit`): the same GCRA as the filter ([`Limiter`]), the state an opaque string.
//!
//! # The state string
//! `rl1.` then base64url (no padding) of the [`State`] bytes, whose fingerprint is the
//! limit's identity ([`EdgeLimit::id`], a SHA-256 of its `RateLimit-Policy`). Reading checks
//! the prefix, the encoding, the layout, the number of quotas and the identity: garbage,
//! truncated state or another limit's state is [`RateLimitError::StateMalformed`]
//! (`rate_limit_state_invalid`), never a fresh start — unlike the filter's slots (written only
//! by our code, see the module docs), this string passes through the caller's storage, and a
//! silent fresh start there would hand out a new burst.
//!
//! The string is not authenticated: the caller keeps it server-side (a Durable Object, KV,
//! a database row); it must never round-trip through the client.

use super::{Limiter, OneOrMany, Quota, RateLimitError, State};
use crate::ConfigError;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};

/// Prefix of a state string (format version 1).
const PREFIX: &str = "rl1.";
/// Longest state string read (8 quotas: `4 + ceil(74·4/3)` = 103 characters).
const MAX_STATE_LEN: usize = 128;

/// A limit for one key: one or more quotas (`"5/minute"`, `["200/day", "50/hour"]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeLimit {
    limiter: Limiter,
    id: u64,
}

impl EdgeLimit {
    /// Compiles the quotas.
    ///
    /// # Errors
    /// [`ConfigError`] on `limit` (or `limit[i]` for a list entry) for an unreadable quota, an
    /// empty or too long list, or a duplicate.
    pub fn new(limit: &OneOrMany<String>) -> Result<Self, ConfigError> {
        let quotas = match limit {
            OneOrMany::One(s) => vec![s.parse::<Quota>()?],
            OneOrMany::Many(list) => list
                .iter()
                .enumerate()
                .map(|(j, s)| {
                    s.parse::<Quota>()
                        .map_err(|e| ConfigError::new(format!("limit[{j}]"), e.message))
                })
                .collect::<Result<_, _>>()?,
        };
        let limiter = Limiter::new(quotas)?;
        let digest = Sha256::digest(limiter.policy_header().as_bytes());
        let mut first = [0u8; 8];
        first.copy_from_slice(digest.get(..8).unwrap_or(&[0; 8]));
        Ok(Self {
            limiter,
            id: u64::from_le_bytes(first),
        })
    }

    /// The limit's identity, stored in its state (the same quotas in the same order give the
    /// same identity, so a redeploy keeps the state valid).
    #[must_use]
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The compiled quotas.
    #[must_use]
    pub fn limiter(&self) -> &Limiter {
        &self.limiter
    }

    /// Reads a state string written by [`EdgeLimit::check`] for this limit.
    ///
    /// # Errors
    /// [`RateLimitError::StateMalformed`] for anything else.
    pub fn read_state(&self, state: &str) -> Result<State, RateLimitError> {
        let malformed = |why| RateLimitError::StateMalformed { why };
        if state.len() > MAX_STATE_LEN {
            return Err(malformed("too long"));
        }
        let body = state
            .strip_prefix(PREFIX)
            .ok_or(malformed("not a keygate rate-limit state"))?;
        let bytes = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| malformed("not base64url"))?;
        let parsed = State::try_from(bytes.as_slice())?;
        if parsed.fingerprint() != self.id || parsed.tats_us().len() != self.limiter.quotas().len()
        {
            return Err(malformed("written for another limit"));
        }
        Ok(parsed)
    }

    /// Decides one request at `now_ms` (Unix milliseconds) given the key's last state
    /// (`None` for a key never seen).
    ///
    /// # Errors
    /// [`RateLimitError::StateMalformed`] when `state` is not this limit's state.
    pub fn check(&self, state: Option<&str>, now_ms: u64) -> Result<EdgeDecision, RateLimitError> {
        let stored = state.map(|s| self.read_state(s)).transpose()?;
        let d = self.limiter.check(stored.as_ref(), self.id, now_ms);
        // On a refusal nothing advances: the state to store is the one read (or a fresh one).
        let next = d
            .new_state()
            .copied()
            .or(stored)
            .or_else(|| State::new(self.id, &vec![0; self.limiter.quotas().len()]));
        let state = next.map_or_else(String::new, |s| {
            format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(s.to_bytes()))
        });
        Ok(EdgeDecision {
            allowed: d.allowed(),
            retry_after_secs: d.retry_after_secs(),
            state,
            policy: self.limiter.policy_header(),
            ratelimit: d.ratelimit_header(),
        })
    }
}

/// The outcome of [`EdgeLimit::check`].
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeDecision {
    allowed: bool,
    retry_after_secs: Option<u64>,
    state: String,
    policy: String,
    ratelimit: String,
}

impl EdgeDecision {
    /// Whether the request is admitted.
    #[must_use]
    pub fn allowed(&self) -> bool {
        self.allowed
    }

    /// Seconds until a retry can be admitted; `None` when admitted.
    #[must_use]
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after_secs
    }

    /// The state to store, on every answer (refusals included).
    #[must_use]
    pub fn state(&self) -> &str {
        &self.state
    }

    /// The `RateLimit-Policy` header value.
    #[must_use]
    pub fn policy_header(&self) -> &str {
        &self.policy
    }

    /// The `RateLimit` header value.
    #[must_use]
    pub fn ratelimit_header(&self) -> &str {
        &self.ratelimit
    }

    /// The error to report when refused (`rate_limited`).
    #[must_use]
    pub fn error(&self) -> Option<RateLimitError> {
        self.retry_after_secs
            .map(|retry_after_secs| RateLimitError::Limited { retry_after_secs })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::ErrorCode;

    const T0: u64 = 1_700_000_000_000;

    fn limit(l: &[&str]) -> EdgeLimit {
        EdgeLimit::new(&OneOrMany::Many(
            l.iter().map(|s| (*s).to_owned()).collect(),
        ))
        .unwrap()
    }

    #[test]
    fn five_per_minute_then_refused_with_state_every_time() {
        let l = limit(&["5/minute"]);
        let mut state: Option<String> = None;
        for i in 0..5 {
            let d = l.check(state.as_deref(), T0).unwrap();
            assert!(d.allowed(), "request {i}");
            assert_eq!(
                d.ratelimit_header(),
                format!("\"5/minute\";r={};t={}", 4 - i, 12 * (i + 1))
            );
            state = Some(d.state().to_owned());
        }
        let d = l.check(state.as_deref(), T0).unwrap();
        assert!(!d.allowed());
        assert_eq!(d.retry_after_secs(), Some(12));
        assert_eq!(d.error().unwrap().code(), "rate_limited");
        assert_eq!(
            d.state(),
            state.as_deref().unwrap(),
            "a refusal stores the same state"
        );
        assert_eq!(d.policy_header(), "\"5/minute\";q=5;w=60");
        // One interval later one more is admitted.
        assert!(l.check(Some(d.state()), T0 + 12_000).unwrap().allowed());
    }

    #[test]
    fn several_quotas_must_all_admit() {
        let l = limit(&["200/day", "2/hour"]);
        let a = l.check(None, T0).unwrap();
        let b = l.check(Some(a.state()), T0).unwrap();
        let c = l.check(Some(b.state()), T0).unwrap();
        assert!(a.allowed() && b.allowed() && !c.allowed());
        assert_eq!(c.retry_after_secs(), Some(1800));
    }

    #[test]
    fn state_round_trips_and_is_bounded() {
        let l = limit(&["5/minute"]);
        let d = l.check(None, T0).unwrap();
        assert!(d.state().starts_with("rl1."));
        let s = l.read_state(d.state()).unwrap();
        assert_eq!(s.fingerprint(), l.id());
        let eight: Vec<String> = (1..=8).map(|i| format!("{i}/hour")).collect();
        let big = EdgeLimit::new(&OneOrMany::Many(eight)).unwrap();
        assert!(big.check(None, T0).unwrap().state().len() <= MAX_STATE_LEN);
    }

    #[test]
    fn unreadable_state_is_refused_never_fresh() {
        let l = limit(&["5/minute"]);
        let good = l.check(None, T0).unwrap().state().to_owned();
        let other = limit(&["6/minute"])
            .check(None, T0)
            .unwrap()
            .state()
            .to_owned();
        let two = limit(&["5/minute", "50/hour"])
            .check(None, T0)
            .unwrap()
            .state()
            .to_owned();
        let truncated = &good[..good.len() - 2];
        let long = "x".repeat(1000);
        for bad in [
            "", "garbage", "rl1.", "rl1.!!!", truncated, &other, &two, &long,
        ] {
            let e = l.check(Some(bad), T0).unwrap_err();
            assert_eq!(e.code(), "rate_limit_state_invalid", "{bad}");
        }
        // The same quotas give the same identity (a redeploy keeps state).
        assert!(limit(&["5/minute"]).check(Some(&good), T0).is_ok());
    }

    #[test]
    fn bad_limits_name_the_field() {
        let e = EdgeLimit::new(&OneOrMany::One("5/fortnight".into())).unwrap_err();
        assert_eq!(e.field, "limit");
        let e = EdgeLimit::new(&OneOrMany::Many(vec!["5/minute".into(), "x".into()])).unwrap_err();
        assert_eq!(e.field, "limit[1]");
        let e = EdgeLimit::new(&OneOrMany::Many(vec![])).unwrap_err();
        assert_eq!(e.field, "limit");
    }
}
