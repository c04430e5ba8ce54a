//! Lifetimes and limits of the login flow.

use crate::error::ConfigError;

/// Access tokens live 15 minutes (the seed's `ACCESS_TOKEN_EXPIRE_MINUTES`).
pub const DEFAULT_ACCESS_TTL: u64 = 900;
/// Refresh tokens live 14 days.
pub const DEFAULT_REFRESH_TTL: u64 = 1_209_600;
/// MFA-pending tokens live 5 minutes.
pub const DEFAULT_MFA_TTL: u64 = 300;
/// Password-reset tokens live 30 minutes.
pub const DEFAULT_RESET_TTL: u64 = 1_800;
/// Reset tokens may live 15 to 60 minutes.
pub const MIN_RESET_TTL: u64 = 900;
/// See [`MIN_RESET_TTL`].
pub const MAX_RESET_TTL: u64 = 3_600;
/// Wrong codes accepted per MFA-pending token before it is dead.
pub const DEFAULT_MFA_MAX_ATTEMPTS: u32 = 5;
/// Seconds after a rotation during which the previous refresh token is still accepted (two
/// tabs refreshing at the same moment) without revoking the family; each such use gets
/// tokens of the current generation and does not advance the family.
pub const DEFAULT_REFRESH_GRACE: u64 = 10;
/// A sign-in's refresh family lives at most 30 days, however often it rotates.
pub const DEFAULT_REFRESH_FAMILY_TTL: u64 = 30 * 86_400;
/// Wrong MFA codes in a row, across all pending tokens, before MFA locks (NIST 800-63B
/// §5.2.2 allows at most 100); only a successful second factor clears the count.
pub const DEFAULT_MFA_MAX_FAILURES: u32 = 100;
/// Upper bound of any token lifetime: 400 days.
pub const MAX_TTL: u64 = 400 * 86_400;
/// Upper bound of the refresh grace window.
pub const MAX_REFRESH_GRACE: u64 = 120;

/// Lifetimes and limits of the login flow. Secure by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowLimits {
    pub(super) access_ttl: u64,
    pub(super) refresh_ttl: u64,
    pub(super) mfa_ttl: u64,
    pub(super) reset_ttl: u64,
    pub(super) mfa_max_attempts: u32,
    pub(super) refresh_grace: u64,
    pub(super) refresh_family_ttl: u64,
    pub(super) mfa_max_failures: u32,
}

impl Default for FlowLimits {
    fn default() -> Self {
        Self {
            access_ttl: DEFAULT_ACCESS_TTL,
            refresh_ttl: DEFAULT_REFRESH_TTL,
            mfa_ttl: DEFAULT_MFA_TTL,
            reset_ttl: DEFAULT_RESET_TTL,
            mfa_max_attempts: DEFAULT_MFA_MAX_ATTEMPTS,
            refresh_grace: DEFAULT_REFRESH_GRACE,
            refresh_family_ttl: DEFAULT_REFRESH_FAMILY_TTL,
            mfa_max_failures: DEFAULT_MFA_MAX_FAILURES,
        }
    }
}

impl FlowLimits {
    /// Checked limits.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the field that is out of bounds.
    pub fn new(
        access_ttl: u64,
        refresh_ttl: u64,
        mfa_ttl: u64,
        reset_ttl: u64,
        mfa_max_attempts: u32,
        refresh_grace: u64,
    ) -> Result<Self, ConfigError> {
        let ttl = |field: &str, v: u64, min: u64, max: u64| {
            if (min..=max).contains(&v) {
                Ok(v)
            } else {
                Err(ConfigError::new(
                    field,
                    format!("must be {min} to {max} seconds"),
                ))
            }
        };
        let access_ttl = ttl("accessTokenTtl", access_ttl, 30, 86_400)?;
        let refresh_ttl = ttl("refreshTokenTtl", refresh_ttl, 60, MAX_TTL)?;
        let mfa_ttl = ttl("mfaTokenTtl", mfa_ttl, 30, 1_800)?;
        let reset_ttl = ttl("resetTokenTtl", reset_ttl, MIN_RESET_TTL, MAX_RESET_TTL)?;
        let refresh_grace = ttl("refreshGrace", refresh_grace, 0, MAX_REFRESH_GRACE)?;
        if !(1..=20).contains(&mfa_max_attempts) {
            return Err(ConfigError::new("mfaMaxAttempts", "must be 1 to 20"));
        }
        if refresh_ttl <= access_ttl {
            return Err(ConfigError::new(
                "refreshTokenTtl",
                "must be longer than accessTokenTtl",
            ));
        }
        Ok(Self {
            access_ttl,
            refresh_ttl,
            mfa_ttl,
            reset_ttl,
            mfa_max_attempts,
            refresh_grace,
            refresh_family_ttl: DEFAULT_REFRESH_FAMILY_TTL.max(refresh_ttl),
            mfa_max_failures: DEFAULT_MFA_MAX_FAILURES,
        })
    }

    /// Sets the absolute lifetime of a sign-in's refresh family (default 30 days, at least
    /// the refresh-token lifetime): past it, even a valid refresh token is refused.
    ///
    /// # Errors
    /// A [`ConfigError`] on `refreshFamilyTtl`.
    pub fn with_refresh_family_ttl(mut self, secs: u64) -> Result<Self, ConfigError> {
        if !(self.refresh_ttl..=MAX_TTL).contains(&secs) {
            return Err(ConfigError::new(
                "refreshFamilyTtl",
                format!(
                    "must be refreshTokenTtl ({}) to {MAX_TTL} seconds",
                    self.refresh_ttl
                ),
            ));
        }
        self.refresh_family_ttl = secs;
        Ok(self)
    }

    /// Sets how many wrong MFA codes in a row lock MFA for the user (default 100).
    ///
    /// # Errors
    /// A [`ConfigError`] on `mfaMaxFailures` outside 1..=100.
    pub fn with_mfa_max_failures(mut self, n: u32) -> Result<Self, ConfigError> {
        if !(1..=100).contains(&n) {
            return Err(ConfigError::new(
                "mfaMaxFailures",
                "must be 1 to 100 (NIST 800-63B)",
            ));
        }
        self.mfa_max_failures = n;
        Ok(self)
    }

    /// Absolute lifetime of a refresh family in seconds.
    #[must_use]
    pub const fn refresh_family_ttl(&self) -> u64 {
        self.refresh_family_ttl
    }

    /// Wrong MFA codes in a row before MFA locks.
    #[must_use]
    pub const fn mfa_max_failures(&self) -> u32 {
        self.mfa_max_failures
    }

    /// Access-token lifetime in seconds (`expires_in`).
    #[must_use]
    pub const fn access_ttl(&self) -> u64 {
        self.access_ttl
    }
    /// Refresh-token lifetime in seconds.
    #[must_use]
    pub const fn refresh_ttl(&self) -> u64 {
        self.refresh_ttl
    }
    /// MFA-pending-token lifetime in seconds.
    #[must_use]
    pub const fn mfa_ttl(&self) -> u64 {
        self.mfa_ttl
    }
    /// Reset-token lifetime in seconds.
    #[must_use]
    pub const fn reset_ttl(&self) -> u64 {
        self.reset_ttl
    }
    /// Wrong MFA codes allowed per pending token.
    #[must_use]
    pub const fn mfa_max_attempts(&self) -> u32 {
        self.mfa_max_attempts
    }
    /// Refresh grace window in seconds.
    #[must_use]
    pub const fn refresh_grace(&self) -> u64 {
        self.refresh_grace
    }
}
