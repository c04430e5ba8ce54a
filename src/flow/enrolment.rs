//! Changing the second factor: the fresh proof it needs, and enrolment that keeps the state.
//!
//! A session cookie or an access token alone never changes or removes a factor: someone who
//! holds one (a kept cookie, a token read off a shared machine) would replace the owner's
//! authenticator and recovery codes. [`Authenticator::authorize_mfa_change`] decides whether
//! the caller just proved possession: the current code, the password, or a sign-in within
//! [`FRESH_AUTH_WINDOW`] seconds.

use super::{Authenticator, FlowError, MfaState, User};
use crate::password::PasswordError;
use crate::session::MAX_CLOCK_SKEW;
use crate::totp;
use std::fmt;

/// A sign-in (password entry) at most this many seconds ago counts as fresh proof: 5 minutes.
pub const FRESH_AUTH_WINDOW: u64 = 300;

/// What the caller offers before a second factor is changed or removed.
#[derive(Clone, Copy)]
pub enum Proof<'a> {
    /// The current TOTP code, or an unused recovery code (consumed). Only for a user with MFA.
    Code(&'a str),
    /// The account password, entered again now.
    Password(&'a str),
    /// When the caller last entered the password, Unix seconds: the `auth_time` claim of
    /// the access token, or the session's `created_at` (both set at sign-in).
    AuthTime(u64),
}

impl fmt::Debug for Proof<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the code or the password.
        match self {
            Self::Code(_) => f.write_str("Code(..)"),
            Self::Password(_) => f.write_str("Password(..)"),
            Self::AuthTime(t) => write!(f, "AuthTime({t})"),
        }
    }
}

/// The outcome of [`Authenticator::authorize_mfa_change`]: a state to store either way (a
/// code counts toward the MFA lock; a recovery code is consumed), and whether to go ahead.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct MfaChange {
    /// Store this, success or not.
    pub state: MfaState,
    /// `Ok` when the change may go ahead.
    pub outcome: Result<(), FlowError>,
}

impl Authenticator {
    /// Decides whether `user` may change or remove the second factor now, given `proof`.
    ///
    /// [`Proof::AuthTime`] passes when it lies at most [`FRESH_AUTH_WINDOW`] seconds before
    /// `now` (and not in the future beyond clock skew); [`Proof::Password`] when the password
    /// verifies; [`Proof::Code`] when the user has MFA and the code is the current TOTP code
    /// (not a replay) or an unused recovery code; while MFA is locked only a recovery code.
    /// Wrong codes count toward the lock like wrong codes at sign-in.
    pub fn authorize_mfa_change(
        &self,
        user: &User<'_>,
        state: &MfaState,
        proof: Proof<'_>,
        now: u64,
    ) -> MfaChange {
        let mut state = state.clone();
        let outcome = match proof {
            Proof::AuthTime(t) => {
                let fresh = t <= now.saturating_add(MAX_CLOCK_SKEW)
                    && now.saturating_sub(t) <= FRESH_AUTH_WINDOW;
                if fresh {
                    Ok(())
                } else {
                    Err(FlowError::ReauthenticationRequired)
                }
            }
            Proof::Password(password) => match self.hasher.verify(user.password_hash, password) {
                Ok(true) => Ok(()),
                Ok(false) | Err(PasswordError::TooLong { .. }) => {
                    Err(FlowError::ReauthenticationRequired)
                }
                Err(e) => Err(e.into()),
            },
            Proof::Code(code) => self.change_code(code, user, &mut state, now),
        };
        MfaChange { state, outcome }
    }

    fn change_code(
        &self,
        code: &str,
        user: &User<'_>,
        state: &mut MfaState,
        now: u64,
    ) -> Result<(), FlowError> {
        if !user.mfa_enabled || (user.mfa_secret.is_none() && state.recovery_hashes.is_empty()) {
            // No factor to prove: the password (or a recent sign-in) is the proof.
            return Err(FlowError::ReauthenticationRequired);
        }
        let locked = state.consecutive_failures >= self.limits.mfa_max_failures;
        let checked = if locked {
            self.check_recovery_code(code, state)
        } else {
            self.check_second_factor(code, user, state, now)
        };
        match checked {
            Ok(_) => {
                state.consecutive_failures = 0;
                Ok(())
            }
            Err(e) => {
                state.consecutive_failures = state.consecutive_failures.saturating_add(1);
                Err(if locked { FlowError::MfaLocked } else { e })
            }
        }
    }

    /// Completes (re-)enrolment after [`Authenticator::authorize_mfa_change`] allowed it:
    /// checks `code` against the new `secret` and returns the state to store with the new
    /// secret and `recovery_hashes`.
    ///
    /// The previous state's pending-token history is kept, so a pending token that already
    /// signed in (or an older one) still cannot sign in again; the replay floor never moves
    /// back; the lock and attempt counts are cleared.
    ///
    /// # Errors
    /// The code is wrong for the new secret (`totp_invalid`), or the secret is unusable.
    pub fn enrol_mfa(
        &self,
        previous: &MfaState,
        secret: &str,
        code: &str,
        recovery_hashes: Vec<String>,
        now: u64,
    ) -> Result<MfaState, FlowError> {
        let step = totp::verify(&self.totp, secret, code, now, None).map_err(FlowError::Totp)?;
        Ok(MfaState {
            last_totp_step: Some(previous.last_totp_step.map_or(step, |s| s.max(step))),
            recovery_hashes,
            failed_attempts: 0,
            consecutive_failures: 0,
            ..previous.clone()
        })
    }
}
