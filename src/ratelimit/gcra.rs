//! GCRA over one or more quotas, and the decision with its response headers.

use super::{Quota, RateLimitError, State, MAX_QUOTAS};
use crate::ConfigError;

const US_PER_SEC: u64 = 1_000_000;

/// The quotas of one rule. A request is admitted only if every quota admits it; then every
/// quota's TAT advances (none advances on a refusal).
#[derive(Debug, Clone)]
pub struct Limiter {
    quotas: Vec<Quota>,
    /// [`Limiter::policy_header`], formatted once by [`Limiter::new`]: it goes on every
    /// admitted response. Empty for [`Limiter::single`] (the rate-limit service's
    /// per-descriptor limiter, whose decision never sends it): formatted on demand there.
    policy: String,
}

/// Limiters are equal when their quotas are (the policy text is a function of them).
impl PartialEq for Limiter {
    fn eq(&self, other: &Self) -> bool {
        self.quotas == other.quotas
    }
}

impl Eq for Limiter {}

/// The `RateLimit-Policy` value of `quotas` (never empty: a limiter has at least one).
fn policy_text(quotas: &[Quota]) -> String {
    quotas
        .iter()
        .map(|q| format!("\"{q}\";q={};w={}", q.count(), q.period_secs()))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Limiter {
    /// A limiter over 1..=[`MAX_QUOTAS`] distinct quotas.
    ///
    /// # Errors
    /// [`ConfigError`] on field `limit` when the list is empty, too long or has duplicates.
    pub fn new(quotas: Vec<Quota>) -> Result<Self, ConfigError> {
        if quotas.is_empty() || quotas.len() > MAX_QUOTAS {
            return Err(ConfigError::new(
                "limit",
                format!("give 1 to {MAX_QUOTAS} quotas, e.g. \"5/minute\" or [\"50/hour\", \"200/day\"]"),
            ));
        }
        if quotas
            .iter()
            .enumerate()
            .any(|(i, q)| quotas.iter().skip(i + 1).any(|o| o == q))
        {
            return Err(ConfigError::new("limit", "each quota may appear only once"));
        }
        Ok(Self::formatted(quotas))
    }

    /// A limiter over one quota (always valid). Formats nothing: built per descriptor on
    /// the rate-limit service's hot path; [`Limiter::policy_header`] formats on demand.
    #[must_use]
    pub fn single(quota: Quota) -> Self {
        Self {
            quotas: vec![quota],
            policy: String::new(),
        }
    }

    fn formatted(quotas: Vec<Quota>) -> Self {
        let policy = policy_text(&quotas);
        Self { quotas, policy }
    }

    /// The quotas, in config order.
    #[must_use]
    pub fn quotas(&self) -> &[Quota] {
        &self.quotas
    }

    /// The `RateLimit-Policy` header value: `"50/hour";q=50;w=3600, "200/day";q=200;w=86400`.
    #[must_use]
    pub fn policy_header(&self) -> String {
        self.policy_text().into_owned()
    }

    /// [`Limiter::policy_header`], borrowed when it was formatted at configuration.
    #[must_use]
    pub(crate) fn policy_text(&self) -> std::borrow::Cow<'_, str> {
        if self.policy.is_empty() {
            std::borrow::Cow::Owned(policy_text(&self.quotas))
        } else {
            std::borrow::Cow::Borrowed(&self.policy)
        }
    }

    /// Decides one request of the key with `fingerprint` at `now_ms` (Unix milliseconds),
    /// given the slot's stored state.
    ///
    /// The slot is used as follows:
    /// - empty, unreadable by the caller (pass `None`), or written for a different number of
    ///   quotas (config changed): start fresh;
    /// - owned by `fingerprint`: continue from it;
    /// - owned by another key that is idle (every TAT ≤ now, so its state equals a fresh one):
    ///   take the slot over fresh;
    /// - owned by another key that is still active: **share** its state (and keep its owner).
    ///   A collision can only make limits stricter, never admit more.
    ///
    /// A stored TAT beyond `now + τ + T` (clock stepped back, or another worker's clock ahead)
    /// is clamped to that, so skew costs at most one period. If a TAT would overflow (a clock
    /// near `u64::MAX`), the request is refused.
    pub fn check(&self, stored: Option<&State>, fingerprint: u64, now_ms: u64) -> RateDecision {
        self.check_hits(stored, fingerprint, now_ms, 1)
    }

    /// [`Limiter::check`] for `hits` requests at once (the rate-limit service protocol's
    /// `hits_addend`): admitted only if all of them fit every quota, and then every TAT
    /// advances by `hits · T`. `hits = 0` is a status query: always admitted, nothing to store
    /// (`new_state` is `None`), `remaining` as it stands.
    pub fn check_hits(
        &self,
        stored: Option<&State>,
        fingerprint: u64,
        now_ms: u64,
        hits: u32,
    ) -> RateDecision {
        let now = now_ms.saturating_mul(1_000);
        let n = self.quotas.len();
        let (owner, base) = match stored {
            Some(s) if s.tats_us().len() == n => {
                if s.fingerprint() == fingerprint {
                    (fingerprint, s.tats_us())
                } else if s.tats_us().iter().all(|&t| t <= now) {
                    (fingerprint, &[][..])
                } else {
                    (s.fingerprint(), s.tats_us())
                }
            }
            _ => (fingerprint, &[][..]),
        };

        let mut tats = [0u64; MAX_QUOTAS];
        let mut allowed = true;
        let mut wait_us = 0u64;
        for (i, (q, tat)) in self.quotas.iter().zip(tats.iter_mut()).enumerate() {
            let (t, tau) = (q.interval_us(), q.tolerance_us());
            let cap = now.saturating_add(tau).saturating_add(t);
            *tat = base.get(i).copied().unwrap_or(0).max(now).min(cap);
            // `hits` fit if the last of them arrives within τ of now: TAT + (hits − 1)·T.
            let extra = t.saturating_mul(u64::from(hits.saturating_sub(1)));
            let ahead = tat.saturating_sub(now).saturating_add(extra);
            if hits > 0 && ahead > tau {
                allowed = false;
                wait_us = wait_us.max(ahead - tau);
            }
        }

        let mut after = tats;
        if allowed && hits > 0 {
            for ((q, tat), new) in self.quotas.iter().zip(&tats).zip(after.iter_mut()) {
                let cost = q.interval_us().checked_mul(u64::from(hits));
                match cost.and_then(|c| tat.checked_add(c)) {
                    Some(v) => *new = v,
                    None => {
                        allowed = false;
                        wait_us = wait_us.max(q.interval_us());
                    }
                }
            }
            if !allowed {
                after = tats;
            }
        }
        let new_state = if allowed && hits > 0 {
            State::new(owner, after.get(..n).unwrap_or(&[]))
        } else {
            None
        };
        // Fail closed should the state be unrepresentable (it cannot be: 1..=MAX_QUOTAS).
        let allowed = allowed && (hits == 0 || new_state.is_some());

        let mut worst: Option<(u32, u64, Quota)> = None;
        for (q, tat) in self.quotas.iter().zip(&after) {
            let (t, tau) = (q.interval_us(), q.tolerance_us());
            let ahead = tat.saturating_sub(now);
            let remaining = if ahead > tau {
                0
            } else {
                u32::try_from((tau - ahead) / t + 1).map_or(q.count(), |r| r.min(q.count()))
            };
            let reset = ahead.div_ceil(US_PER_SEC);
            let worse =
                worst.is_none_or(|(r, s, _)| remaining < r || (remaining == r && reset > s));
            if worse {
                worst = Some((remaining, reset, *q));
            }
        }
        let (remaining, reset_secs, quota) = worst.unwrap_or((0, 0, Quota::FALLBACK));
        RateDecision {
            allowed,
            new_state,
            quota,
            remaining: if allowed { remaining } else { 0 },
            reset_secs,
            retry_after_secs: (!allowed).then(|| wait_us.div_ceil(US_PER_SEC).max(1)),
        }
    }
}

/// The outcome of [`Limiter::check`].
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateDecision {
    allowed: bool,
    new_state: Option<State>,
    quota: Quota,
    remaining: u32,
    reset_secs: u64,
    retry_after_secs: Option<u64>,
}

impl RateDecision {
    /// Whether the request is admitted.
    #[must_use]
    pub fn allowed(&self) -> bool {
        self.allowed
    }

    /// The state to store (compare-and-swap) when admitted; `None` when refused or for a
    /// zero-hit status query (store nothing).
    #[must_use]
    pub fn new_state(&self) -> Option<&State> {
        self.new_state.as_ref()
    }

    /// The most restrictive quota (fewest requests left; then the latest reset).
    #[must_use]
    pub fn quota(&self) -> Quota {
        self.quota
    }

    /// Requests still admitted right now under the most restrictive quota (0 when refused).
    #[must_use]
    pub fn remaining(&self) -> u32 {
        self.remaining
    }

    /// Seconds until the most restrictive quota is full again (rounded up).
    #[must_use]
    pub fn reset_secs(&self) -> u64 {
        self.reset_secs
    }

    /// Seconds to wait before a retry can be admitted (rounded up, at least 1); `None` when
    /// admitted.
    #[must_use]
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after_secs
    }

    /// The `RateLimit` header value: `"5/minute";r=<remaining>;t=<reset secs>`.
    #[must_use]
    pub fn ratelimit_header(&self) -> String {
        // Written by hand, not `format!`: it goes on every admitted request.
        let mut out = String::with_capacity(40);
        out.push('"');
        self.quota.push_text(&mut out);
        out.push_str("\";r=");
        super::push_decimal(&mut out, u64::from(self.remaining));
        out.push_str(";t=");
        super::push_decimal(&mut out, self.reset_secs);
        out
    }

    /// The `Retry-After` header value (delay-seconds) when refused.
    #[must_use]
    pub fn retry_after(&self) -> Option<String> {
        self.retry_after_secs.map(|s| s.to_string())
    }

    /// The error to report when refused (`rate_limited`, 429).
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
    use proptest::prelude::*;

    const T0: u64 = 1_700_000_000_000; // ms
    const FP: u64 = 42;

    fn limiter(quotas: &[&str]) -> Limiter {
        Limiter::new(quotas.iter().map(|q| q.parse().unwrap()).collect()).unwrap()
    }

    /// Runs one request, storing the new state like the shell does.
    fn hit(l: &Limiter, state: &mut Option<State>, fp: u64, now_ms: u64) -> RateDecision {
        let d = l.check(state.as_ref(), fp, now_ms);
        if let Some(s) = d.new_state() {
            *state = Some(*s);
        }
        d
    }

    #[test]
    fn five_per_minute_sequence_ok() {
        let l = limiter(&["5/minute"]);
        let mut st = None;
        for left in (0..5).rev() {
            let d = hit(&l, &mut st, FP, T0);
            assert!(d.allowed());
            assert_eq!(d.remaining(), left);
            assert!(d.retry_after_secs().is_none());
        }
        let d = hit(&l, &mut st, FP, T0);
        assert!(!d.allowed());
        assert!(d.new_state().is_none());
        assert_eq!(d.retry_after_secs(), Some(12));
        assert_eq!(d.retry_after().as_deref(), Some("12"));
        assert_eq!(d.error().unwrap().code(), "rate_limited");
        // Just before T elapses: still refused, 1 s left.
        let d = hit(&l, &mut st, FP, T0 + 11_001);
        assert_eq!(d.retry_after_secs(), Some(1));
        let d = hit(&l, &mut st, FP, T0 + 12_000);
        assert!(d.allowed());
        assert_eq!(d.remaining(), 0);
        assert!(!hit(&l, &mut st, FP, T0 + 12_000).allowed());
        // After a full idle period the whole burst is back.
        let d = hit(&l, &mut st, FP, T0 + 12_000 + 60_000);
        assert!(d.allowed());
        assert_eq!(d.remaining(), 4);
    }

    #[test]
    fn no_double_burst_at_window_edge_ok() {
        // A fixed window would admit 5 at 59.999 s and 5 more at 60.000 s.
        let l = limiter(&["5/minute"]);
        let mut st = None;
        let edge = T0 - T0 % 60_000 + 59_999;
        for _ in 0..5 {
            assert!(hit(&l, &mut st, FP, edge).allowed());
        }
        for dt in [1, 2, 100, 11_999] {
            assert!(!hit(&l, &mut st, FP, edge + dt).allowed(), "{dt}");
        }
        assert!(hit(&l, &mut st, FP, edge + 12_000).allowed());
    }

    #[test]
    fn multi_quota_ok() {
        let l = limiter(&["2/second", "3/minute"]);
        let mut st = None;
        assert!(hit(&l, &mut st, FP, T0).allowed());
        let d = hit(&l, &mut st, FP, T0);
        assert!(d.allowed());
        assert_eq!(d.quota(), "2/second".parse().unwrap());
        assert_eq!(d.remaining(), 0);
        let d = hit(&l, &mut st, FP, T0);
        assert!(!d.allowed());
        assert_eq!(d.retry_after_secs(), Some(1));
        let before = st;
        let d = hit(&l, &mut st, FP, T0 + 1_000);
        assert!(d.allowed());
        assert_ne!(st, before);
        // The per-second quota has room again; the per-minute one is spent.
        let d = hit(&l, &mut st, FP, T0 + 2_000);
        assert!(!d.allowed());
        assert_eq!(d.quota(), "3/minute".parse().unwrap());
        // Refusals advanced nothing: 20 s after the first hit, one minute-token is back.
        let frozen = st;
        assert!(!hit(&l, &mut st, FP, T0 + 5_000).allowed());
        assert_eq!(st, frozen);
        assert!(hit(&l, &mut st, FP, T0 + 20_000).allowed());
    }

    #[test]
    fn headers_ok() {
        let l = limiter(&["50/hour", "200/day"]);
        assert_eq!(
            l.policy_header(),
            "\"50/hour\";q=50;w=3600, \"200/day\";q=200;w=86400"
        );
        let d = l.check(None, FP, T0);
        assert_eq!(d.ratelimit_header(), "\"50/hour\";r=49;t=72");
        let l = limiter(&["5/minute"]);
        assert_eq!(l.policy_header(), "\"5/minute\";q=5;w=60");
        // `single` formats on demand, to the same text, and equals the configured limiter.
        let single = Limiter::single("5/minute".parse().unwrap());
        assert_eq!(single.policy_header(), l.policy_header());
        assert_eq!(single, l);
        let mut st = None;
        for _ in 0..5 {
            let _ = hit(&l, &mut st, FP, T0);
        }
        let d = hit(&l, &mut st, FP, T0);
        assert_eq!(d.ratelimit_header(), "\"5/minute\";r=0;t=60");
        assert_eq!(d.reset_secs(), 60);
    }

    #[test]
    fn collision_idle_takeover_ok() {
        let l = limiter(&["1/minute"]);
        let mut st = None;
        assert!(hit(&l, &mut st, 1, T0).allowed());
        // Key 2 lands in the same slot after key 1 went idle: fresh start, new owner.
        let d = hit(&l, &mut st, 2, T0 + 60_000);
        assert!(d.allowed());
        assert_eq!(st.unwrap().fingerprint(), 2);
    }

    #[test]
    fn collision_active_shares_fails() {
        let l = limiter(&["2/minute"]);
        let mut st = None;
        assert!(hit(&l, &mut st, 1, T0).allowed());
        // Key 2 shares key 1's active state: one request left between them.
        assert!(hit(&l, &mut st, 2, T0 + 1).allowed());
        assert_eq!(st.unwrap().fingerprint(), 1);
        assert!(!hit(&l, &mut st, 2, T0 + 2).allowed());
        assert!(!hit(&l, &mut st, 1, T0 + 3).allowed());
    }

    #[test]
    fn state_for_other_quota_count_is_fresh_ok() {
        let old = limiter(&["1/minute", "2/hour"]);
        let mut st = None;
        assert!(hit(&old, &mut st, FP, T0).allowed());
        let new = limiter(&["1/minute"]);
        assert!(!hit(&old, &mut st.clone(), FP, T0).allowed());
        assert!(hit(&new, &mut st, FP, T0).allowed());
    }

    #[test]
    fn clock_skew_clamped_ok() {
        let l = limiter(&["5/minute"]);
        let future = State::new(FP, &[u64::MAX - 1]).unwrap();
        let d = l.check(Some(&future), FP, T0);
        assert!(!d.allowed());
        assert_eq!(d.retry_after_secs(), Some(12));
        assert_eq!(d.reset_secs(), 60);
    }

    #[test]
    fn overflow_edges_fail_closed_fails() {
        let l = limiter(&["5/minute"]);
        for now_ms in [
            u64::MAX,
            u64::MAX - 1,
            u64::MAX / 1_000,
            u64::MAX / 1_000 - 1,
        ] {
            let d = l.check(None, FP, now_ms);
            assert!(!d.allowed(), "{now_ms}");
            assert!(d.retry_after_secs().unwrap() >= 1);
            let full = State::new(FP, &[u64::MAX]).unwrap();
            assert!(!l.check(Some(&full), FP, now_ms).allowed());
        }
        // Far but representable clocks still work.
        assert!(l.check(None, FP, u64::MAX / 1_000 - 100_000).allowed());
    }

    #[test]
    fn limiter_bad_fails() {
        assert_eq!(Limiter::new(vec![]).unwrap_err().field, "limit");
        let q: Quota = "1/s".parse().unwrap();
        assert!(Limiter::new(vec![q; MAX_QUOTAS + 1]).is_err());
        assert!(Limiter::new(vec![q, q]).is_err());
        assert!(Limiter::new(vec![q, "1/1m".parse().unwrap()]).is_ok());
    }

    #[test]
    fn hits_ok() {
        let l = limiter(&["5/minute"]);
        let mut st = None;
        let d = l.check_hits(st.as_ref(), FP, T0, 3);
        assert!(d.allowed());
        assert_eq!(d.remaining(), 2);
        st = d.new_state().copied();
        // 3 more do not fit in the 2 left, and a refusal takes nothing.
        let d = l.check_hits(st.as_ref(), FP, T0, 3);
        assert!(!d.allowed());
        assert!(d.new_state().is_none());
        assert_eq!(d.retry_after_secs(), Some(12));
        let d = l.check_hits(st.as_ref(), FP, T0, 2);
        assert!(d.allowed());
        assert_eq!(d.remaining(), 0);
        st = d.new_state().copied();
        assert!(!l.check(st.as_ref(), FP, T0).allowed());
        // One hit is exactly `check`.
        assert_eq!(
            l.check_hits(st.as_ref(), FP, T0 + 12_000, 1),
            l.check(st.as_ref(), FP, T0 + 12_000)
        );
        // More hits than the quota holds never fit.
        assert!(!l.check_hits(None, FP, T0, 6).allowed());
        assert!(!l.check_hits(None, FP, T0, u32::MAX).allowed());
    }

    #[test]
    fn zero_hits_is_a_query_ok() {
        let l = limiter(&["2/minute"]);
        let d = l.check_hits(None, FP, T0, 0);
        assert!(d.allowed());
        assert!(d.new_state().is_none());
        assert_eq!(d.remaining(), 2);
        let full = l.check_hits(None, FP, T0, 2);
        let st = full.new_state().copied();
        let d = l.check_hits(st.as_ref(), FP, T0, 0);
        assert!(d.allowed());
        assert_eq!(d.remaining(), 0);
        assert!(!l.check(st.as_ref(), FP, T0).allowed());
    }

    proptest! {
        /// The `RateLimit` value written by hand is what `format!` wrote before, for named
        /// and unnamed periods, at every remaining count and reset.
        #[test]
        fn ratelimit_header_as_formatted_ok(count in 1u32..5_000, unit in "(s|m|h|d|w|15m|90s|2h)",
                                            gaps in proptest::collection::vec(0u64..100_000, 1..20)) {
            let l = limiter(&[&format!("{count}/{unit}")]);
            let mut st = None;
            let mut now = T0;
            for gap in &gaps {
                now += gap;
                let d = hit(&l, &mut st, FP, now);
                let want = format!("\"{}\";r={};t={}", d.quota(), d.remaining(), d.reset_secs());
                prop_assert_eq!(d.ratelimit_header(), want);
            }
        }

        #[test]
        fn never_more_than_burst_plus_rate_ok(gaps in proptest::collection::vec(0u64..30_000, 1..200),
                                              quota in "(1|3|5|7|100)/(s|m|h|15m)") {
            let l = limiter(&[&quota]);
            let q = l.quotas()[0];
            let mut st = None;
            let mut now = T0;
            let mut admitted = 0u64;
            for gap in &gaps {
                now += gap;
                if hit(&l, &mut st, FP, now).allowed() {
                    admitted += 1;
                }
            }
            // GCRA: at most `count` at once, then one per T.
            let span_us = (now - T0) * 1_000;
            prop_assert!(admitted <= u64::from(q.count()) + span_us / q.interval_us());
        }

        #[test]
        fn hits_never_more_than_burst_plus_rate_ok(steps in proptest::collection::vec((0u64..30_000, 0u32..4), 1..200)) {
            let l = limiter(&["7/minute"]);
            let q = l.quotas()[0];
            let mut st = None;
            let mut now = T0;
            let mut admitted = 0u64;
            for (gap, hits) in &steps {
                now += gap;
                let d = l.check_hits(st.as_ref(), FP, now, *hits);
                if d.allowed() {
                    admitted += u64::from(*hits);
                }
                if let Some(s) = d.new_state() {
                    st = Some(*s);
                }
            }
            let span_us = (now - T0) * 1_000;
            prop_assert!(admitted <= u64::from(q.count()) + span_us / q.interval_us());
        }

        #[test]
        fn check_arbitrary_state_never_panics_ok(fp in any::<u64>(), own in any::<bool>(),
                                                 tat in any::<u64>(), now in any::<u64>()) {
            let l = limiter(&["5/minute", "100/day"]);
            let s = State::new(fp, &[tat, tat / 3]).unwrap();
            let d = l.check(Some(&s), if own { fp } else { fp ^ 1 }, now);
            prop_assert_eq!(d.allowed(), d.new_state().is_some());
            prop_assert_eq!(d.allowed(), d.retry_after_secs().is_none());
            prop_assert!(d.retry_after_secs().is_none_or(|r| (1..=86_400).contains(&r)));
        }
    }
}
