//! Per-account login throttling (OWASP: throttle by account, not only by address).
//!
//! An attacker with many addresses must not get unlimited guesses at one account. The caller
//! keeps one [`AccountFailures`] per login name (the normalised email or user name as typed —
//! also for names that match no account, so a lock says nothing about existence) and passes it
//! to [`Authenticator::login_throttled`], which returns the next one to store:
//!
//! - fewer than [`AccountThrottle::max_failures`] consecutive failures: the password is checked;
//! - at or past it, after each further failure the name is locked for
//!   `base_delay · 2^(failures − max_failures)`, capped at `max_delay` (defaults: 10 failures,
//!   30 s, 15 min → 30 s, 1 min, 2 min, 4 min, 8 min, 15 min, 15 min, …);
//! - while locked the password is **not** checked: a dummy Argon2id runs instead and the
//!   answer is [`LoginOutcome::Invalid`], so the answer and its time are those of a wrong
//!   password; attempts during a lock leave the state unchanged (they neither extend the lock
//!   nor count);
//! - any success (`Ok` or `MfaRequired`) resets the state to none.
//!
//! Store the state with a compare-and-set or in a transaction (one Durable Object per name,
//! `storage.transaction`, a row `UPDATE … WHERE state = old`): two concurrent logins must not
//! both read the same old state, or a parallel burst gets `max_failures` guesses per request
//! in flight.

use crate::flow::{Authenticator, FlowError, LoginOutcome, User};
use crate::{ConfigError, Entropy, ErrorCode};
use std::fmt;
use std::str::FromStr;

/// Consecutive failures before the first lock.
pub const DEFAULT_MAX_FAILURES: u32 = 10;
/// The first lock, seconds.
pub const DEFAULT_BASE_DELAY_SECS: u64 = 30;
/// The longest lock, seconds (15 minutes).
pub const DEFAULT_MAX_DELAY_SECS: u64 = 900;
/// Most failures allowed before the first lock.
pub const MAX_MAX_FAILURES: u32 = 1_000;
/// The longest lock a configuration may ask for (1 day).
pub const MAX_DELAY_SECS: u64 = 86_400;

const PREFIX: &str = "af1.";
const MAX_STATE_LEN: usize = 64;

/// The throttle's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountThrottle {
    max_failures: u32,
    base_delay: u64,
    max_delay: u64,
}

impl Default for AccountThrottle {
    fn default() -> Self {
        Self {
            max_failures: DEFAULT_MAX_FAILURES,
            base_delay: DEFAULT_BASE_DELAY_SECS,
            max_delay: DEFAULT_MAX_DELAY_SECS,
        }
    }
}

impl AccountThrottle {
    /// Checked settings.
    ///
    /// # Errors
    /// [`ConfigError`] on `maxFailures` (1..=1000), `baseDelay` (1..=`maxDelay`) or `maxDelay`
    /// (1..=86400).
    pub fn new(max_failures: u32, base_delay: u64, max_delay: u64) -> Result<Self, ConfigError> {
        if !(1..=MAX_MAX_FAILURES).contains(&max_failures) {
            return Err(ConfigError::new(
                "maxFailures",
                format!("must be 1 to {MAX_MAX_FAILURES}"),
            ));
        }
        if !(1..=MAX_DELAY_SECS).contains(&max_delay) {
            return Err(ConfigError::new(
                "maxDelay",
                format!("must be 1 to {MAX_DELAY_SECS} seconds"),
            ));
        }
        if !(1..=max_delay).contains(&base_delay) {
            return Err(ConfigError::new(
                "baseDelay",
                "must be at least 1 second and at most maxDelay",
            ));
        }
        Ok(Self {
            max_failures,
            base_delay,
            max_delay,
        })
    }

    /// Consecutive failures before the first lock. Defaults to 10.
    #[must_use]
    pub fn max_failures(&self) -> u32 {
        self.max_failures
    }

    /// The lock after `failures` consecutive failures, in seconds (0 below the threshold).
    #[must_use]
    pub fn delay_after(&self, failures: u32) -> u64 {
        if failures < self.max_failures {
            return 0;
        }
        let doublings = (failures - self.max_failures).min(32);
        self.base_delay
            .saturating_mul(1u64 << doublings)
            .min(self.max_delay)
    }

    /// What a failure does to `state` at `now`.
    #[must_use]
    pub fn after_failure(&self, state: Option<&AccountFailures>, now: u64) -> AccountFailures {
        let failures = state.map_or(0, |s| s.failures).saturating_add(1);
        let delay = self.delay_after(failures);
        AccountFailures {
            failures,
            locked_until: if delay == 0 {
                0
            } else {
                now.saturating_add(delay)
            },
        }
    }
}

/// One login name's consecutive failures and lock (Unix seconds; 0 = not locked).
/// Stored form: `af1.<failures>.<locked_until>` ([`FromStr`] / [`fmt::Display`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountFailures {
    failures: u32,
    locked_until: u64,
}

impl AccountFailures {
    /// Consecutive failures so far.
    #[must_use]
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Unix seconds until which the name is locked (0 when not locked).
    #[must_use]
    pub fn locked_until(&self) -> u64 {
        self.locked_until
    }

    /// Whether the name is locked at `now`.
    #[must_use]
    pub fn is_locked(&self, now: u64) -> bool {
        now < self.locked_until
    }
}

impl fmt::Display for AccountFailures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PREFIX}{}.{}", self.failures, self.locked_until)
    }
}

/// A stored [`AccountFailures`] could not be read (`login_state_invalid`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountStateInvalid;

impl fmt::Display for AccountStateInvalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the stored login failure state is unreadable; store the one login returned")
    }
}

impl std::error::Error for AccountStateInvalid {}

impl ErrorCode for AccountStateInvalid {
    fn code(&self) -> &'static str {
        "login_state_invalid"
    }
}

fn digits<T: FromStr>(s: &str) -> Option<T> {
    (!s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

impl FromStr for AccountFailures {
    type Err = AccountStateInvalid;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() > MAX_STATE_LEN {
            return Err(AccountStateInvalid);
        }
        let body = s.strip_prefix(PREFIX).ok_or(AccountStateInvalid)?;
        let (failures, locked_until) = body.split_once('.').ok_or(AccountStateInvalid)?;
        Ok(Self {
            failures: digits(failures).ok_or(AccountStateInvalid)?,
            locked_until: digits(locked_until).ok_or(AccountStateInvalid)?,
        })
    }
}

impl Authenticator {
    /// [`Authenticator::login`] under the per-account throttle (module docs): returns the
    /// outcome and the failure state to store (`None`: delete it, the last attempt succeeded).
    ///
    /// # Errors
    /// As [`Authenticator::login`]. An error leaves the state as it was (store nothing).
    pub fn login_throttled(
        &self,
        user: Option<&User<'_>>,
        password: &str,
        throttle: &AccountThrottle,
        state: Option<&AccountFailures>,
        now: u64,
        rng: &mut impl Entropy,
    ) -> Result<(LoginOutcome, Option<AccountFailures>), FlowError> {
        if state.is_some_and(|s| s.is_locked(now)) {
            // The same work and answer as an unknown account: a dummy Argon2id, `Invalid`.
            let outcome = self.login(None, password, now, rng)?;
            return Ok((outcome, state.copied()));
        }
        let outcome = self.login(user, password, now, rng)?;
        let next = match outcome {
            LoginOutcome::Invalid => Some(throttle.after_failure(state, now)),
            LoginOutcome::Ok { .. } | LoginOutcome::MfaRequired { .. } => None,
        };
        Ok((outcome, next))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::flow::FlowLimits;
    use crate::password::{Params, PasswordHasher, PasswordPolicy};
    use crate::token::{Algorithm, SigningKey};
    use crate::totp::TotpConfig;
    use crate::SeededEntropy;

    const NOW: u64 = 1_700_000_000;

    fn auth() -> Authenticator {
        let key = SigningKey::from_secret(&[7u8; 32], Algorithm::HS256, None).unwrap();
        let hasher = PasswordHasher::new(Params::new(1, 64, 1).unwrap(), PasswordPolicy::default());
        Authenticator::new(key, FlowLimits::default(), hasher, TotpConfig::default())
    }

    #[test]
    fn delays_grow_exponentially_and_cap_at_15_minutes() {
        let t = AccountThrottle::default();
        let d: Vec<u64> = (9..=17).map(|f| t.delay_after(f)).collect();
        assert_eq!(d, [0, 30, 60, 120, 240, 480, 900, 900, 900]);
        assert_eq!(t.delay_after(u32::MAX), 900);
    }

    #[test]
    fn ten_failures_lock_even_the_right_password_then_success_resets() {
        let a = auth();
        let hash = a
            .hasher()
            .hash("correct horse", &mut SeededEntropy::new(1))
            .unwrap();
        let roles: Vec<String> = vec![];
        let user = User {
            id: "u1",
            password_hash: &hash,
            roles: &roles,
            mfa_enabled: false,
            mfa_secret: None,
            session_epoch: 0,
        };
        let t = AccountThrottle::default();
        let mut rng = SeededEntropy::new(2);
        let mut state = None;
        for i in 1..=10u32 {
            let (o, s) = a
                .login_throttled(Some(&user), "wrong", &t, state.as_ref(), NOW, &mut rng)
                .unwrap();
            assert_eq!(o, LoginOutcome::Invalid);
            assert_eq!(s.unwrap().failures(), i);
            state = s;
        }
        assert_eq!(state.unwrap().locked_until(), NOW + 30);
        // Locked: the right password answers exactly like a wrong one, state unchanged.
        let (o, s) = a
            .login_throttled(
                Some(&user),
                "correct horse",
                &t,
                state.as_ref(),
                NOW + 29,
                &mut rng,
            )
            .unwrap();
        assert_eq!((o, s), (LoginOutcome::Invalid, state));
        // After the lock the password is checked again; another failure doubles the lock.
        let (_, s) = a
            .login_throttled(Some(&user), "wrong", &t, state.as_ref(), NOW + 30, &mut rng)
            .unwrap();
        assert_eq!(s.unwrap().locked_until(), NOW + 30 + 60);
        let (o, s) = a
            .login_throttled(
                Some(&user),
                "correct horse",
                &t,
                s.as_ref(),
                NOW + 90,
                &mut rng,
            )
            .unwrap();
        assert!(matches!(o, LoginOutcome::Ok { .. }));
        assert_eq!(s, None, "a success resets");
    }

    #[test]
    fn unknown_names_are_throttled_the_same_way() {
        let a = auth();
        let t = AccountThrottle::new(2, 5, 900).unwrap();
        let mut rng = SeededEntropy::new(3);
        let (_, s1) = a
            .login_throttled(None, "x", &t, None, NOW, &mut rng)
            .unwrap();
        let (_, s2) = a
            .login_throttled(None, "x", &t, s1.as_ref(), NOW, &mut rng)
            .unwrap();
        assert_eq!(s2.unwrap().locked_until(), NOW + 5);
    }

    #[test]
    fn state_round_trips_and_garbage_is_refused() {
        let s = AccountThrottle::default().after_failure(None, NOW);
        assert_eq!(s.to_string().parse::<AccountFailures>().unwrap(), s);
        let locked: AccountFailures = "af1.12.1700000120".parse().unwrap();
        assert!(locked.is_locked(NOW) && !locked.is_locked(NOW + 120));
        for bad in [
            "",
            "af1.",
            "af1.1",
            "af1.-1.0",
            "af1.1.x",
            "rl1.1.1",
            "af1.99999999999.0",
        ] {
            let e = bad.parse::<AccountFailures>().unwrap_err();
            assert_eq!(e.code(), "login_state_invalid", "{bad}");
        }
    }

    #[test]
    fn bad_settings_name_the_field() {
        assert_eq!(
            AccountThrottle::new(0, 30, 900).unwrap_err().field,
            "maxFailures"
        );
        assert_eq!(
            AccountThrottle::new(10, 0, 900).unwrap_err().field,
            "baseDelay"
        );
        assert_eq!(
            AccountThrottle::new(10, 30, 0).unwrap_err().field,
            "maxDelay"
        );
        assert_eq!(
            AccountThrottle::new(10, 901, 900).unwrap_err().field,
            "baseDelay"
        );
    }
}
