//! Step one of sign-in: the password.

use super::{password_fingerprint, random_id, Authenticator, FlowError, Issued, User};
use crate::entropy::Entropy;
use crate::password::PasswordError;
use crate::token::{encode, TokenType};
use std::fmt;

/// The outcome of [`Authenticator::login`]. `Debug` shows no token and no hash.
#[derive(Clone, PartialEq, Eq)]
#[must_use]
pub enum LoginOutcome {
    /// Password right and no MFA: signed in.
    Ok {
        /// Tokens and the family to store.
        issued: Issued,
        /// A fresh hash to store when the stored one uses outdated parameters.
        new_password_hash: Option<String>,
    },
    /// Password right; the second factor is next.
    MfaRequired {
        /// Short-lived `type: "mfa"` token for [`Authenticator::verify_mfa`].
        mfa_token: String,
        /// As in `Ok`.
        new_password_hash: Option<String>,
    },
    /// Unknown user or wrong password; the two are indistinguishable, also in time.
    Invalid,
}

impl fmt::Debug for LoginOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ok {
                issued,
                new_password_hash,
            } => f
                .debug_struct("Ok")
                .field("issued", issued)
                .field("rehashed", &new_password_hash.is_some())
                .finish(),
            Self::MfaRequired {
                new_password_hash, ..
            } => f
                .debug_struct("MfaRequired")
                .field("rehashed", &new_password_hash.is_some())
                .finish_non_exhaustive(),
            Self::Invalid => f.write_str("Invalid"),
        }
    }
}

impl Authenticator {
    /// A `type: "mfa"` token for `user_id`, valid for the MFA step only.
    ///
    /// # Errors
    /// Signing or entropy failure.
    pub fn create_mfa_token(
        &self,
        user_id: &str,
        now: u64,
        rng: &mut impl Entropy,
    ) -> Result<String, FlowError> {
        let mut c = self.claims(TokenType::Mfa, user_id, now, self.limits.mfa_ttl);
        c.jti = Some(random_id(rng)?);
        c.amr = vec!["pwd".to_owned()];
        Ok(encode(&c, &self.key)?)
    }

    /// A `type: "mfa"` token bound to `password_hash` (claim `pwh`, a digest): it no longer
    /// completes sign-in once the password has changed. [`Authenticator::login`] makes these.
    ///
    /// # Errors
    /// Signing or entropy failure.
    pub fn create_bound_mfa_token(
        &self,
        user_id: &str,
        password_hash: &str,
        now: u64,
        rng: &mut impl Entropy,
    ) -> Result<String, FlowError> {
        let mut c = self.claims(TokenType::Mfa, user_id, now, self.limits.mfa_ttl);
        c.jti = Some(random_id(rng)?);
        c.amr = vec!["pwd".to_owned()];
        c.extra
            .insert("pwh".to_owned(), password_fingerprint(password_hash).into());
        Ok(encode(&c, &self.key)?)
    }

    /// Step one of sign-in. `user` is `None` for an unknown account: a dummy Argon2id
    /// verification then costs the same as a real one and the answer is the same `Invalid`.
    ///
    /// # Errors
    /// A stored hash that cannot be read, a record with MFA on and no factor, signing or
    /// entropy failure. A wrong password is not an error: it is [`LoginOutcome::Invalid`].
    pub fn login(
        &self,
        user: Option<&User<'_>>,
        password: &str,
        now: u64,
        rng: &mut impl Entropy,
    ) -> Result<LoginOutcome, FlowError> {
        let Some(user) = user else {
            let _ = self.hasher.dummy_verify(password);
            return Ok(LoginOutcome::Invalid);
        };
        let ok = match self.hasher.verify(user.password_hash, password) {
            Ok(ok) => ok,
            // Too long a password is refused before hashing; to the caller it is just wrong.
            Err(PasswordError::TooLong { .. }) => false,
            Err(e) => return Err(e.into()),
        };
        if !ok {
            return Ok(LoginOutcome::Invalid);
        }
        let new_password_hash = if self.hasher.needs_rehash(user.password_hash)? {
            Some(self.hasher.rehash(password, rng)?)
        } else {
            None
        };
        // Bind the MFA token and the refresh family to the hash the caller is about to store.
        let current = User {
            password_hash: new_password_hash.as_deref().unwrap_or(user.password_hash),
            ..*user
        };
        if user.mfa_enabled {
            return Ok(LoginOutcome::MfaRequired {
                mfa_token: self.create_bound_mfa_token(user.id, current.password_hash, now, rng)?,
                new_password_hash,
            });
        }
        let issued = self.issue_tokens(&current, &["pwd"], now, rng)?;
        Ok(LoginOutcome::Ok {
            issued,
            new_password_hash,
        })
    }
}
