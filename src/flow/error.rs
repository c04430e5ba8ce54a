//! Why a flow step failed.

use crate::entropy::EntropyError;
use crate::error::ErrorCode;
use crate::password::PasswordError;
use crate::token::TokenError;
use crate::totp::TotpError;
use std::fmt;

/// Why a flow step failed. Each variant has a stable code.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FlowError {
    /// A token was refused.
    Token(TokenError),
    /// Hashing or a stored hash failed.
    Password(PasswordError),
    /// The TOTP code was wrong or replayed, or the stored secret is unusable.
    Totp(TotpError),
    /// The MFA code was neither a valid TOTP code nor an unused recovery code.
    MfaInvalid,
    /// Too many wrong codes for this MFA-pending token: log in again.
    MfaAttemptsExceeded,
    /// The MFA-pending token was already used to sign in, or a newer one exists.
    MfaTokenUsed,
    /// The MFA-pending token was made before the password changed (reset or change).
    MfaTokenStale,
    /// Changing or removing the second factor needs fresh proof: the current TOTP or a
    /// recovery code, the password, or a sign-in within [`super::FRESH_AUTH_WINDOW`] seconds.
    ReauthenticationRequired,
    /// Too many wrong codes in a row for this user: MFA is locked; a recovery code still
    /// signs in, and a password reset ([`super::MfaState::unlocked`]) clears the lock.
    MfaLocked,
    /// The user record says MFA is on but holds no secret and no recovery code.
    MfaNotConfigured,
    /// The token belongs to another user or another refresh family.
    TokenMismatch,
    /// The refresh family was revoked (reuse detected, or logout), is past its absolute
    /// lifetime, or the user's password changed since sign-in.
    RefreshRevoked,
    /// An already rotated refresh token was used again; the family is now revoked.
    RefreshReused,
    /// The reset token was made for an earlier password (already used, or password changed).
    ResetTokenStale,
    /// The random source failed.
    Entropy,
}

impl fmt::Display for FlowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Token(e) => e.fmt(f),
            Self::Password(e) => e.fmt(f),
            Self::Totp(e) => e.fmt(f),
            Self::MfaInvalid => f.write_str("the MFA code is not valid"),
            Self::MfaAttemptsExceeded => {
                f.write_str("too many wrong MFA codes for this sign-in: sign in again")
            }
            Self::MfaTokenUsed => {
                f.write_str("this MFA step was already completed or superseded: sign in again")
            }
            Self::MfaTokenStale => {
                f.write_str("the password changed since this sign-in started: sign in again")
            }
            Self::ReauthenticationRequired => f.write_str(
                "changing the second factor needs fresh proof: the current code, a recovery \
                 code or the password",
            ),
            Self::MfaLocked => f.write_str(
                "too many wrong MFA codes in a row: MFA is locked for this account; use a \
                 recovery code or reset the password",
            ),
            Self::MfaNotConfigured => {
                f.write_str("the user has MFA enabled but no TOTP secret or recovery code")
            }
            Self::TokenMismatch => f.write_str("the token does not belong to this user or family"),
            Self::RefreshRevoked => f.write_str("this sign-in was revoked: sign in again"),
            Self::RefreshReused => f.write_str(
                "a refresh token was used twice; every token of this sign-in is revoked",
            ),
            Self::ResetTokenStale => {
                f.write_str("the reset link was already used or the password has changed")
            }
            Self::Entropy => EntropyError.fmt(f),
        }
    }
}

impl std::error::Error for FlowError {}

impl ErrorCode for FlowError {
    fn code(&self) -> &'static str {
        match self {
            Self::Token(e) => e.code(),
            Self::Password(e) => e.code(),
            Self::Totp(e) => e.code(),
            Self::MfaInvalid => "mfa_invalid",
            Self::MfaAttemptsExceeded => "mfa_attempts_exceeded",
            Self::MfaTokenUsed => "mfa_token_used",
            Self::MfaTokenStale => "mfa_token_stale",
            Self::ReauthenticationRequired => "reauthentication_required",
            Self::MfaLocked => "mfa_locked",
            Self::MfaNotConfigured => "mfa_not_configured",
            Self::TokenMismatch => "token_mismatch",
            Self::RefreshRevoked => "refresh_revoked",
            Self::RefreshReused => "refresh_reused",
            Self::ResetTokenStale => "reset_token_stale",
            Self::Entropy => "entropy_unavailable",
        }
    }
}

impl From<TokenError> for FlowError {
    fn from(e: TokenError) -> Self {
        Self::Token(e)
    }
}
impl From<PasswordError> for FlowError {
    fn from(e: PasswordError) -> Self {
        Self::Password(e)
    }
}
impl From<EntropyError> for FlowError {
    fn from(_: EntropyError) -> Self {
        Self::Entropy
    }
}
