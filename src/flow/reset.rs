//! Password-reset tokens, bound to the password hash.

use super::{ct_eq, password_fingerprint, random_id, Authenticator, FlowError, User};
use crate::entropy::Entropy;
use crate::token::{encode, TokenType};

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
}
