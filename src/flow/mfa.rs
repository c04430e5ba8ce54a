//! Step two of sign-in: the second factor (TOTP or a recovery code), and the MFA state.

use super::{ct_eq, password_fingerprint, Authenticator, FlowError, Issued, User};
use crate::entropy::Entropy;
use crate::recovery::verify_recovery_code;
use crate::token::TokenType;
use crate::totp;
use serde::{Deserialize, Serialize};

/// Per-user MFA state the caller stores between calls. Store it with a transaction or
/// compare-and-swap (Durable Objects, D1, SQL): with last-writer-wins storage, parallel
/// requests would each see the old counters.
///
/// Stored as JSON with camelCase members (`lastTotpStep`, …); every member optional on input.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct MfaState {
    /// The last accepted TOTP time step; codes at or before it are replays.
    pub last_totp_step: Option<u64>,
    /// Hashes of unused recovery codes.
    pub recovery_hashes: Vec<String>,
    /// `jti` of the newest MFA-pending token seen; older ones are refused.
    pub pending_jti: Option<String>,
    /// `iat` of `pending_jti`.
    pub pending_iat: Option<u64>,
    /// Wrong codes so far for `pending_jti`.
    pub failed_attempts: u32,
    /// Wrong codes in a row across all pending tokens; a success resets it.
    pub consecutive_failures: u32,
    /// Whether `pending_jti` already completed sign-in.
    pub completed: bool,
}

impl MfaState {
    /// The state after a password reset: the MFA lock and the attempt count are cleared
    /// (the reset proved control of the mailbox; the second factor is still needed at the
    /// next sign-in). Replay protection and the pending-token history are kept.
    #[must_use]
    pub fn unlocked(&self) -> Self {
        Self {
            consecutive_failures: 0,
            failed_attempts: 0,
            ..self.clone()
        }
    }
}

/// How the second factor was proven.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MfaMethod {
    /// A TOTP code.
    Totp,
    /// A one-time recovery code (now consumed).
    Recovery,
}

/// The outcome of [`Authenticator::verify_mfa`]: always a new state to store, and tokens or
/// the reason for refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct MfaResult {
    /// Store this, success or not (attempt counters, last step, remaining recovery codes).
    pub state: MfaState,
    /// Tokens and the method used, or why not.
    pub outcome: Result<(Issued, MfaMethod), FlowError>,
}

impl Authenticator {
    /// Step two: the MFA-pending token and a TOTP code or a recovery code.
    ///
    /// Refuses replays (a TOTP step at or before `state.last_totp_step`), caps wrong codes per
    /// pending token at [`FlowLimits::mfa_max_attempts`], and lets each pending token complete
    /// sign-in once.
    pub fn verify_mfa(
        &self,
        mfa_token: &str,
        code: &str,
        user: &User<'_>,
        state: &MfaState,
        now: u64,
        rng: &mut impl Entropy,
    ) -> MfaResult {
        let mut state = state.clone();
        let outcome = self.verify_mfa_inner(mfa_token, code, user, &mut state, now, rng);
        MfaResult { state, outcome }
    }

    pub(super) fn verify_mfa_inner(
        &self,
        mfa_token: &str,
        code: &str,
        user: &User<'_>,
        state: &mut MfaState,
        now: u64,
        rng: &mut impl Entropy,
    ) -> Result<(Issued, MfaMethod), FlowError> {
        let claims = self.verify(mfa_token, TokenType::Mfa, now)?;
        if !ct_eq(&claims.sub, user.id) {
            return Err(FlowError::TokenMismatch);
        }
        // A token made by `login` is bound to the password hash of that moment: after a reset
        // or a password change it no longer completes sign-in.
        if let Some(bound) = claims.extra.get("pwh") {
            let bound = bound.as_str().unwrap_or_default();
            if !ct_eq(bound, &password_fingerprint(user.password_hash)) {
                return Err(FlowError::MfaTokenStale);
            }
        }
        let jti = claims.jti.unwrap_or_default();
        if state.pending_jti.as_deref() != Some(jti.as_str()) {
            // Only a strictly newer pending token starts a new count: switching back and
            // forth between two tokens must not reset it.
            if state.pending_iat.is_some_and(|seen| claims.iat <= seen) {
                return Err(FlowError::MfaTokenUsed);
            }
            state.pending_jti = Some(jti);
            state.pending_iat = Some(claims.iat);
            state.failed_attempts = 0;
            state.completed = false;
        }
        // Locked: only a recovery code (high entropy, single use) still opens it; TOTP codes
        // are not even looked at. A password reset clears the lock ([`MfaState::unlocked`]).
        let locked = state.consecutive_failures >= self.limits.mfa_max_failures;
        if state.completed {
            return Err(FlowError::MfaTokenUsed);
        }
        if state.failed_attempts >= self.limits.mfa_max_attempts {
            return Err(FlowError::MfaAttemptsExceeded);
        }
        if user.mfa_secret.is_none() && state.recovery_hashes.is_empty() {
            return Err(FlowError::MfaNotConfigured);
        }
        let checked = if locked {
            self.check_recovery_code(code, state)
        } else {
            self.check_second_factor(code, user, state, now)
        };
        let method = match checked {
            Ok(method) => method,
            Err(e) => {
                state.failed_attempts = state.failed_attempts.saturating_add(1);
                state.consecutive_failures = state.consecutive_failures.saturating_add(1);
                return Err(if locked { FlowError::MfaLocked } else { e });
            }
        };
        state.completed = true;
        state.consecutive_failures = 0;
        let issued = self.issue_tokens(user, &["pwd", "otp"], now, rng)?;
        Ok((issued, method))
    }

    pub(super) fn check_second_factor(
        &self,
        code: &str,
        user: &User<'_>,
        state: &mut MfaState,
        now: u64,
    ) -> Result<MfaMethod, FlowError> {
        let looks_like_totp = code.len() == usize::from(self.totp.digits())
            && code.bytes().all(|b| b.is_ascii_digit());
        if looks_like_totp {
            let secret = user.mfa_secret.ok_or(FlowError::MfaInvalid)?;
            let step = totp::verify(&self.totp, secret, code, now, state.last_totp_step)
                .map_err(FlowError::Totp)?;
            state.last_totp_step = Some(step);
            return Ok(MfaMethod::Totp);
        }
        self.check_recovery_code(code, state)
    }

    pub(super) fn check_recovery_code(
        &self,
        code: &str,
        state: &mut MfaState,
    ) -> Result<MfaMethod, FlowError> {
        match verify_recovery_code(&state.recovery_hashes, code) {
            Some(remaining) => {
                state.recovery_hashes = remaining;
                Ok(MfaMethod::Recovery)
            }
            None => Err(FlowError::MfaInvalid),
        }
    }
}
