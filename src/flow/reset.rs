//! Password-reset tokens, bound to the password hash, and what a new password ends.
//!
//! A reset or a password change returns everything to store at once: the new hash, every
//! session ended ([`SessionState::end_all`]), the MFA lock cleared ([`MfaState::unlocked`]).
//! Refresh families and MFA-pending tokens end by themselves: they are bound to the old hash.

use super::{ct_eq, password_fingerprint, random_id, Authenticator, FlowError, MfaState, User};
use crate::entropy::Entropy;
use crate::password::PasswordError;
use crate::session::SessionState;
use crate::token::{encode, TokenType};
use std::fmt;

/// Stands in for the record of an unknown account in [`Authenticator::request_password_reset`].
const NO_SUCH_USER: &str = "00000000-0000-0000-0000-000000000000";
const NO_SUCH_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$a2V5Z2F0ZS1kdW1teS1zYQ$WlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlo";

/// What to store after [`Authenticator::reset_password`] or [`Authenticator::change_password`].
#[derive(Clone, PartialEq, Eq)]
#[must_use]
pub struct PasswordChanged {
    /// The new Argon2id PHC string.
    pub password_hash: String,
    /// The user's sessions, all ended (a new epoch).
    pub sessions: SessionState,
    /// The MFA state with the lock cleared (`None` when none was given).
    pub mfa_state: Option<MfaState>,
}

impl fmt::Debug for PasswordChanged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordChanged")
            .field("sessions", &self.sessions)
            .field("mfa_state", &self.mfa_state)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// A single-use password-reset token: `type: "reset"`, bound to the current password hash
    /// so it dies as soon as the password changes.
    ///
    /// # Errors
    /// Signing or entropy failure.
    pub fn create_password_reset_token(
        &self,
        user: &User<'_>,
        now: u64,
        rng: &mut impl Entropy,
    ) -> Result<String, FlowError> {
        let mut c = self.claims(TokenType::Reset, user.id, now, self.limits.reset_ttl);
        c.jti = Some(random_id(rng)?);
        c.extra.insert(
            "pwh".to_owned(),
            password_fingerprint(user.password_hash).into(),
        );
        Ok(encode(&c, &self.key)?)
    }

    /// Checks a reset token against the user's current record; returns the user id.
    ///
    /// # Errors
    /// Invalid token, another user's token (`token_mismatch`), or a token made for an earlier
    /// password (`reset_token_stale`).
    pub fn verify_password_reset_token(
        &self,
        token: &str,
        user: &User<'_>,
        now: u64,
    ) -> Result<String, FlowError> {
        let claims = self.verify(token, TokenType::Reset, now)?;
        if !ct_eq(&claims.sub, user.id) {
            return Err(FlowError::TokenMismatch);
        }
        let bound = claims
            .extra
            .get("pwh")
            .and_then(|v| v.as_str())
            .unwrap_or_default();
        if !ct_eq(bound, &password_fingerprint(user.password_hash)) {
            return Err(FlowError::ResetTokenStale);
        }
        Ok(claims.sub)
    }

    /// The reset request: a token for a known `user`, and the same work (a token signed, then
    /// dropped) for an unknown account (`None`), so both paths cost the same. Send the token
    /// by mail; answer the caller the same either way.
    ///
    /// # Errors
    /// Signing or entropy failure.
    pub fn request_password_reset(
        &self,
        user: Option<&User<'_>>,
        now: u64,
        rng: &mut impl Entropy,
    ) -> Result<Option<String>, FlowError> {
        let nobody = User {
            id: NO_SUCH_USER,
            password_hash: NO_SUCH_HASH,
            roles: &[],
            mfa_enabled: false,
            mfa_secret: None,
            session_epoch: 0,
        };
        let token = self.create_password_reset_token(user.unwrap_or(&nobody), now, rng)?;
        Ok(user.is_some().then_some(token))
    }

    /// Completes a reset: checks `token` against the current record, hashes `new_password`,
    /// ends every session and clears the MFA lock.
    ///
    /// # Errors
    /// As [`Authenticator::verify_password_reset_token`]; a password the policy refuses
    /// (`password_too_short`, …); entropy failure.
    #[allow(clippy::too_many_arguments)]
    pub fn reset_password(
        &self,
        token: &str,
        user: &User<'_>,
        new_password: &str,
        mfa_state: Option<&MfaState>,
        sessions: &SessionState,
        now: u64,
        rng: &mut impl Entropy,
    ) -> Result<PasswordChanged, FlowError> {
        self.verify_password_reset_token(token, user, now)?;
        self.new_password(new_password, mfa_state, sessions, rng)
    }

    /// A password change by the signed-in user: `current_password` must verify
    /// (`reauthentication_required` otherwise); then as [`Authenticator::reset_password`].
    ///
    /// # Errors
    /// Wrong current password, a refused new one, an unreadable stored hash, entropy failure.
    pub fn change_password(
        &self,
        user: &User<'_>,
        current_password: &str,
        new_password: &str,
        mfa_state: Option<&MfaState>,
        sessions: &SessionState,
        rng: &mut impl Entropy,
    ) -> Result<PasswordChanged, FlowError> {
        match self.hasher.verify(user.password_hash, current_password) {
            Ok(true) => {}
            Ok(false) | Err(PasswordError::TooLong { .. }) => {
                return Err(FlowError::ReauthenticationRequired)
            }
            Err(e) => return Err(e.into()),
        }
        self.new_password(new_password, mfa_state, sessions, rng)
    }

    fn new_password(
        &self,
        new_password: &str,
        mfa_state: Option<&MfaState>,
        sessions: &SessionState,
        rng: &mut impl Entropy,
    ) -> Result<PasswordChanged, FlowError> {
        Ok(PasswordChanged {
            password_hash: self.hasher.hash(new_password, rng)?,
            sessions: sessions.end_all(),
            mfa_state: mfa_state.map(MfaState::unlocked),
        })
    }
}
