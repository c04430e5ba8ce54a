//! The seed's login story as pure functions over caller-supplied records: login → MFA →
//! tokens → refresh rotation, and password-reset tokens.
//!
//! Every piece of state that must persist (the user record, the MFA state, the refresh-token
//! family) comes in as an argument and the new value comes out in the result, so any store
//! works (KV, Durable Objects, SQL, a map). Nothing here reads a clock or a random source.

use crate::entropy::{Entropy, EntropyError};
use crate::error::{ConfigError, ErrorCode};
use crate::password::{PasswordError, PasswordHasher};
use crate::recovery::verify_recovery_code;
use crate::token::{
    decode, encode, Claims, CustomClaims, KeySet, SigningKey, TokenError, TokenType, Validation,
    DEFAULT_LEEWAY_SECS, MAX_LEEWAY_SECS,
};
use crate::totp::{self, TotpConfig, TotpError};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use subtle::ConstantTimeEq;

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
    access_ttl: u64,
    refresh_ttl: u64,
    mfa_ttl: u64,
    reset_ttl: u64,
    mfa_max_attempts: u32,
    refresh_grace: u64,
    refresh_family_ttl: u64,
    mfa_max_failures: u32,
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
    /// Too many wrong codes in a row for this user: MFA is locked until an operator (or an
    /// account-recovery process) clears [`MfaState::consecutive_failures`].
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
            Self::MfaLocked => f.write_str(
                "too many wrong MFA codes in a row: MFA is locked for this account; recover it",
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

/// What the login flow needs to know of a user; the caller owns the record.
#[derive(Clone, Copy)]
pub struct User<'a> {
    /// The user id (the tokens' `sub`).
    pub id: &'a str,
    /// The stored Argon2id PHC string.
    pub password_hash: &'a str,
    /// Role names copied into access tokens.
    pub roles: &'a [String],
    /// Whether sign-in needs a second factor.
    pub mfa_enabled: bool,
    /// The TOTP secret (base32), when enrolled.
    pub mfa_secret: Option<&'a str>,
}

impl fmt::Debug for User<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the hash or the TOTP secret.
        f.debug_struct("User")
            .field("id", &self.id)
            .field("roles", &self.roles)
            .field("mfa_enabled", &self.mfa_enabled)
            .finish_non_exhaustive()
    }
}

/// The seed's `issue_tokens` shape.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenPair {
    /// The access token.
    pub access_token: String,
    /// The refresh token.
    pub refresh_token: String,
    /// Always `"Bearer"`.
    pub token_type: String,
    /// Access-token lifetime in seconds.
    pub expires_in: u64,
}

impl fmt::Debug for TokenPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Bearer tokens stay out of logs.
        f.debug_struct("TokenPair")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

/// One sign-in's refresh-token family: store it under `family_id` and hand it back to
/// [`Authenticator::refresh`]. Reuse of a rotated token revokes the whole family.
///
/// Stored as JSON with camelCase members (`familyId`, `rotatedAt`, …), the npm module's shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RefreshFamily {
    /// Random id, also the refresh tokens' `fam` claim.
    pub family_id: String,
    /// The user the family belongs to.
    pub user_id: String,
    /// Generation of the only refresh token that may rotate next.
    pub generation: u64,
    /// When the current generation was issued (Unix seconds).
    pub rotated_at: u64,
    /// When the sign-in happened; the family dies [`FlowLimits::refresh_family_ttl`] later.
    pub created_at: u64,
    /// Digest of the password hash at sign-in: a password change ends the family. `None`
    /// for families made without a password record ([`Authenticator::create_refresh_token`]).
    #[serde(default)]
    pub password_fingerprint: Option<String>,
    /// Set on reuse or logout; nothing of the family is accepted afterwards.
    pub revoked: bool,
}

impl RefreshFamily {
    /// The same family, revoked (logout).
    #[must_use]
    pub fn revoke(mut self) -> Self {
        self.revoked = true;
        self
    }
}

/// Tokens issued for a successful sign-in, and the new family to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    /// What the client receives.
    pub tokens: TokenPair,
    /// What the server stores.
    pub family: RefreshFamily,
}

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

/// The outcome of [`Authenticator::refresh`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum RefreshOutcome {
    /// A new pair; store the new family.
    Rotated(Issued),
    /// Reuse detected: store this revoked family and refuse (`refresh_reused`).
    Reused(RefreshFamily),
}

/// Where the signing key comes from.
#[derive(Debug, Clone)]
pub struct Authenticator {
    key: SigningKey,
    keys: KeySet,
    issuer: Option<String>,
    audience: Option<String>,
    limits: FlowLimits,
    hasher: PasswordHasher,
    totp: TotpConfig,
    leeway: u64,
}

impl Authenticator {
    /// A flow signing with `key` (HS256/384/512 secret, EdDSA or ES256 private key).
    #[must_use]
    pub fn new(
        key: SigningKey,
        limits: FlowLimits,
        hasher: PasswordHasher,
        totp: TotpConfig,
    ) -> Self {
        let keys = KeySet::single(key.verifying_key().clone());
        Self {
            key,
            keys,
            issuer: None,
            audience: None,
            limits,
            hasher,
            totp,
            leeway: DEFAULT_LEEWAY_SECS,
        }
    }

    /// Sets the clock skew allowed on `exp`, `nbf` and `iat` when verifying, 0–300 s.
    /// Defaults to 30 s ([`DEFAULT_LEEWAY_SECS`]).
    ///
    /// # Errors
    /// `leeway` over [`MAX_LEEWAY_SECS`].
    pub fn with_leeway(mut self, secs: u64) -> Result<Self, ConfigError> {
        if secs > MAX_LEEWAY_SECS {
            return Err(ConfigError::new(
                "leeway",
                format!("must be 0-{MAX_LEEWAY_SECS} seconds"),
            ));
        }
        self.leeway = secs;
        Ok(self)
    }

    /// Sets the `iss` claim put in and required of every token.
    #[must_use]
    pub fn with_issuer(mut self, issuer: Option<String>) -> Self {
        self.issuer = issuer;
        self
    }

    /// Sets the `aud` claim put in and required of every token.
    #[must_use]
    pub fn with_audience(mut self, audience: Option<String>) -> Self {
        self.audience = audience;
        self
    }

    /// The lifetimes and limits in force.
    #[must_use]
    pub const fn limits(&self) -> &FlowLimits {
        &self.limits
    }

    /// The password hasher in force.
    #[must_use]
    pub const fn hasher(&self) -> &PasswordHasher {
        &self.hasher
    }

    /// The TOTP settings in force.
    #[must_use]
    pub const fn totp(&self) -> &TotpConfig {
        &self.totp
    }

    /// The signing key.
    #[must_use]
    pub const fn signing_key(&self) -> &SigningKey {
        &self.key
    }

    /// The key set that verifies this flow's tokens.
    #[must_use]
    pub const fn key_set(&self) -> &KeySet {
        &self.keys
    }

    fn claims(&self, token_type: TokenType, sub: &str, now: u64, ttl: u64) -> Claims {
        let mut c = Claims::new(token_type, sub, now, ttl);
        c.iss.clone_from(&self.issuer);
        if let Some(aud) = &self.audience {
            c.aud = vec![aud.clone()];
        }
        c
    }

    fn validation(&self, token_type: TokenType) -> Validation {
        let mut v = Validation::new(token_type);
        v.leeway = self.leeway;
        v.algorithms = vec![self.key.alg()];
        v.issuer.clone_from(&self.issuer);
        v.audiences = self.audience.iter().cloned().collect();
        v
    }

    /// Verifies a token of `token_type` issued by this flow.
    ///
    /// # Errors
    /// The [`TokenError`] of the first failing check.
    pub fn verify(
        &self,
        token: &str,
        token_type: TokenType,
        now: u64,
    ) -> Result<Claims, TokenError> {
        decode(token, &self.keys, &self.validation(token_type), now)
    }

    /// A signed access token `{sub, type: "access", roles, iat, exp}` (+ iss/aud/jti/amr).
    ///
    /// # Errors
    /// Signing or entropy failure.
    pub fn create_access_token(
        &self,
        user_id: &str,
        roles: &[String],
        amr: &[&str],
        now: u64,
        rng: &mut impl Entropy,
    ) -> Result<String, FlowError> {
        self.create_access_token_with_claims(
            user_id,
            roles,
            amr,
            &CustomClaims::default(),
            now,
            rng,
        )
    }

    /// [`Self::create_access_token`] with application claims added (checked by
    /// [`CustomClaims::new`]: they can never replace a claim keygate sets).
    ///
    /// # Errors
    /// Signing or entropy failure.
    pub fn create_access_token_with_claims(
        &self,
        user_id: &str,
        roles: &[String],
        amr: &[&str],
        claims: &CustomClaims,
        now: u64,
        rng: &mut impl Entropy,
    ) -> Result<String, FlowError> {
        let mut c = self.claims(TokenType::Access, user_id, now, self.limits.access_ttl);
        c.roles = roles.to_vec();
        c.amr = amr.iter().map(|s| (*s).to_owned()).collect();
        c.jti = Some(random_id(rng)?);
        c.extra.clone_from(claims.as_map());
        Ok(encode(&c, &self.key)?)
    }

    /// Issues an access token and the first refresh token of a new family, bound to the
    /// user's current password hash.
    ///
    /// # Errors
    /// Signing or entropy failure.
    pub fn issue_tokens(
        &self,
        user: &User<'_>,
        amr: &[&str],
        now: u64,
        rng: &mut impl Entropy,
    ) -> Result<Issued, FlowError> {
        let mut family = self.new_family(user.id, now, rng)?;
        // A record without a password (passwordless account) opens an unbound family.
        family.password_fingerprint =
            (!user.password_hash.is_empty()).then(|| password_fingerprint(user.password_hash));
        self.issue_for_family(family, user.roles, amr, now, rng)
    }

    /// A refresh token opening a new family without a password record (no password binding).
    ///
    /// # Errors
    /// Signing or entropy failure.
    pub fn create_refresh_token(
        &self,
        user_id: &str,
        roles: &[String],
        now: u64,
        rng: &mut impl Entropy,
    ) -> Result<(String, RefreshFamily), FlowError> {
        let family = self.new_family(user_id, now, rng)?;
        let token = self.refresh_token_for(&family, roles, &[], now, rng)?;
        Ok((token, family))
    }

    fn new_family(
        &self,
        user_id: &str,
        now: u64,
        rng: &mut impl Entropy,
    ) -> Result<RefreshFamily, FlowError> {
        Ok(RefreshFamily {
            family_id: random_id(rng)?,
            user_id: user_id.to_owned(),
            generation: 0,
            rotated_at: now,
            created_at: now,
            password_fingerprint: None,
            revoked: false,
        })
    }

    fn refresh_token_for(
        &self,
        family: &RefreshFamily,
        roles: &[String],
        amr: &[&str],
        now: u64,
        rng: &mut impl Entropy,
    ) -> Result<String, FlowError> {
        // Never outlive the family.
        let family_end = family
            .created_at
            .saturating_add(self.limits.refresh_family_ttl);
        let ttl = self.limits.refresh_ttl.min(family_end.saturating_sub(now));
        let mut r = self.claims(TokenType::Refresh, &family.user_id, now, ttl);
        r.roles = roles.to_vec();
        r.amr = amr.iter().map(|s| (*s).to_owned()).collect();
        r.jti = Some(random_id(rng)?);
        r.fam = Some(family.family_id.clone());
        r.gen = Some(family.generation);
        Ok(encode(&r, &self.key)?)
    }

    fn issue_for_family(
        &self,
        family: RefreshFamily,
        roles: &[String],
        amr: &[&str],
        now: u64,
        rng: &mut impl Entropy,
    ) -> Result<Issued, FlowError> {
        let access_token = self.create_access_token(&family.user_id, roles, amr, now, rng)?;
        let refresh_token = self.refresh_token_for(&family, roles, amr, now, rng)?;
        Ok(Issued {
            tokens: TokenPair {
                access_token,
                refresh_token,
                token_type: "Bearer".to_owned(),
                expires_in: self.limits.access_ttl,
            },
            family,
        })
    }

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
        if user.mfa_enabled {
            return Ok(LoginOutcome::MfaRequired {
                mfa_token: self.create_mfa_token(user.id, now, rng)?,
                new_password_hash,
            });
        }
        let issued = self.issue_tokens(user, &["pwd"], now, rng)?;
        Ok(LoginOutcome::Ok {
            issued,
            new_password_hash,
        })
    }

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

    fn verify_mfa_inner(
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
        if state.consecutive_failures >= self.limits.mfa_max_failures {
            return Err(FlowError::MfaLocked);
        }
        if state.completed {
            return Err(FlowError::MfaTokenUsed);
        }
        if state.failed_attempts >= self.limits.mfa_max_attempts {
            return Err(FlowError::MfaAttemptsExceeded);
        }
        if user.mfa_secret.is_none() && state.recovery_hashes.is_empty() {
            return Err(FlowError::MfaNotConfigured);
        }
        let method = match self.check_second_factor(code, user, state, now) {
            Ok(method) => method,
            Err(e) => {
                state.failed_attempts = state.failed_attempts.saturating_add(1);
                state.consecutive_failures = state.consecutive_failures.saturating_add(1);
                return Err(e);
            }
        };
        state.completed = true;
        state.consecutive_failures = 0;
        let issued = self.issue_tokens(user, &["pwd", "otp"], now, rng)?;
        Ok((issued, method))
    }

    fn check_second_factor(
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
        match verify_recovery_code(&state.recovery_hashes, code) {
            Some(remaining) => {
                state.recovery_hashes = remaining;
                Ok(MfaMethod::Recovery)
            }
            None => Err(FlowError::MfaInvalid),
        }
    }

    /// Rotates a refresh token.
    ///
    /// Pass the current `user` record whenever you have it: the new access token then carries
    /// the user's current roles, and a family opened before the last password change is
    /// refused (`refresh_revoked`). Without it the roles of the old token are carried over.
    ///
    /// The token's generation must be the family's current one. The previous generation is
    /// accepted again within [`FlowLimits::refresh_grace`] seconds of the rotation (two
    /// concurrent refreshes) without advancing the family; any other reuse revokes it. A
    /// family older than [`FlowLimits::refresh_family_ttl`] is refused however it rotated.
    ///
    /// # Errors
    /// Invalid token (`token_*`), a token of another family or user (`token_mismatch`), a
    /// revoked, expired or password-changed family (`refresh_revoked`). Reuse is not an error
    /// but [`RefreshOutcome::Reused`], carrying the revoked family to store.
    pub fn refresh(
        &self,
        refresh_token: &str,
        family: &RefreshFamily,
        user: Option<&User<'_>>,
        now: u64,
        rng: &mut impl Entropy,
    ) -> Result<RefreshOutcome, FlowError> {
        let claims = self.verify(refresh_token, TokenType::Refresh, now)?;
        let (Some(fam), Some(gen)) = (claims.fam.as_deref(), claims.gen) else {
            return Err(FlowError::TokenMismatch);
        };
        if !ct_eq(fam, &family.family_id) || !ct_eq(&claims.sub, &family.user_id) {
            return Err(FlowError::TokenMismatch);
        }
        let family_expired = now
            >= family
                .created_at
                .saturating_add(self.limits.refresh_family_ttl);
        if family.revoked || family_expired {
            return Err(FlowError::RefreshRevoked);
        }
        let roles = match user {
            Some(user) => {
                if !ct_eq(user.id, &family.user_id) {
                    return Err(FlowError::TokenMismatch);
                }
                let current = password_fingerprint(user.password_hash);
                if family
                    .password_fingerprint
                    .as_deref()
                    .is_some_and(|fp| !ct_eq(fp, &current))
                {
                    return Err(FlowError::RefreshRevoked);
                }
                user.roles
            }
            None => &claims.roles,
        };
        let amr: Vec<&str> = claims.amr.iter().map(String::as_str).collect();
        let in_grace = self.limits.refresh_grace > 0
            && gen.checked_add(1) == Some(family.generation)
            && now.saturating_sub(family.rotated_at) <= self.limits.refresh_grace;
        if gen == family.generation {
            let next = RefreshFamily {
                generation: family.generation.saturating_add(1),
                rotated_at: now,
                ..family.clone()
            };
            return Ok(RefreshOutcome::Rotated(
                self.issue_for_family(next, roles, &amr, now, rng)?,
            ));
        }
        if in_grace {
            // The concurrent twin gets tokens of the current generation; the family is unchanged.
            return Ok(RefreshOutcome::Rotated(self.issue_for_family(
                family.clone(),
                roles,
                &amr,
                now,
                rng,
            )?));
        }
        Ok(RefreshOutcome::Reused(family.clone().revoke()))
    }

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

/// 128 random bits, base64url: token ids and family ids.
fn random_id(rng: &mut impl Entropy) -> Result<String, EntropyError> {
    Ok(URL_SAFE_NO_PAD.encode(rng.bytes::<16>()?))
}

/// A reset token carries a digest of the password hash, never the hash itself.
fn password_fingerprint(phc: &str) -> String {
    let digest = Sha256::digest(format!("keygate.reset.v1\0{phc}"));
    URL_SAFE_NO_PAD.encode(&digest[..16])
}

fn ct_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::password::{Params, PasswordPolicy};
    use crate::recovery::generate_recovery_codes;
    use crate::token::Algorithm;
    use crate::SeededEntropy;

    const NOW: u64 = 1_700_000_000;
    const SECRET: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";

    fn fast_hasher() -> PasswordHasher {
        PasswordHasher::new(Params::new(1, 64, 1).unwrap(), PasswordPolicy::default())
    }

    fn auth() -> Authenticator {
        let key = SigningKey::from_secret(&[7u8; 32], Algorithm::HS256, Some("k1".into())).unwrap();
        Authenticator::new(
            key,
            FlowLimits::default(),
            fast_hasher(),
            TotpConfig::default(),
        )
        .with_issuer(Some("https://auth.example.com".into()))
        .with_audience(Some("api".into()))
    }

    struct Rec {
        hash: String,
        roles: Vec<String>,
        mfa: bool,
    }

    impl Rec {
        fn new(a: &Authenticator, password: &str, mfa: bool) -> Self {
            let hash = a
                .hasher()
                .hash(password, &mut SeededEntropy::new(1))
                .unwrap();
            Self {
                hash,
                roles: vec!["doctor".into()],
                mfa,
            }
        }
        fn user(&self) -> User<'_> {
            User {
                id: "user-1",
                password_hash: &self.hash,
                roles: &self.roles,
                mfa_enabled: self.mfa,
                mfa_secret: self.mfa.then_some(SECRET),
            }
        }
    }

    fn rng() -> SeededEntropy {
        SeededEntropy::new(42)
    }

    fn login_ok(a: &Authenticator, rec: &Rec) -> Issued {
        match a
            .login(Some(&rec.user()), "correct horse", NOW, &mut rng())
            .unwrap()
        {
            LoginOutcome::Ok { issued, .. } => issued,
            other => panic!("expected Ok, got {other:?}"),
        }
    }

    #[test]
    fn leeway_is_configurable_ok() {
        let issued_at = NOW;
        let a0 = auth().with_leeway(0).unwrap();
        let t = a0
            .create_access_token("u", &[], &[], issued_at, &mut rng())
            .unwrap();
        let exp = issued_at + a0.limits().access_ttl;
        // 0 s: one second past exp is expired; 300 s: still valid 299 s past it.
        assert!(a0.verify(&t, TokenType::Access, exp + 1).is_err());
        let a300 = auth().with_leeway(300).unwrap();
        assert!(a300.verify(&t, TokenType::Access, exp + 299).is_ok());
        assert!(a300.verify(&t, TokenType::Access, exp + 301).is_err());
        // The default is 30 s.
        assert!(auth().verify(&t, TokenType::Access, exp + 30).is_ok());
        assert!(auth().verify(&t, TokenType::Access, exp + 31).is_err());
    }

    #[test]
    fn leeway_over_300_fails() {
        assert_eq!(auth().with_leeway(301).err().unwrap().field, "leeway");
    }

    #[test]
    fn custom_claims_in_access_token_ok() {
        let a = auth();
        let mut m = serde_json::Map::new();
        m.insert("tenant".into(), serde_json::Value::from("acme"));
        let claims = CustomClaims::new(m).unwrap();
        let t = a
            .create_access_token_with_claims("u", &["r".into()], &[], &claims, NOW, &mut rng())
            .unwrap();
        let c = a.verify(&t, TokenType::Access, NOW).unwrap();
        assert_eq!(
            (c.sub.as_str(), c.extra.get("tenant")),
            ("u", Some(&serde_json::Value::from("acme")))
        );
    }

    #[test]
    fn login_without_mfa_issues_seed_shaped_tokens_ok() {
        let a = auth();
        let rec = Rec::new(&a, "correct horse", false);
        let issued = login_ok(&a, &rec);
        assert_eq!(issued.tokens.token_type, "Bearer");
        assert_eq!(issued.tokens.expires_in, 900);
        let access = a
            .verify(&issued.tokens.access_token, TokenType::Access, NOW)
            .unwrap();
        assert_eq!(access.sub, "user-1");
        assert_eq!(access.roles, vec!["doctor".to_string()]);
        assert_eq!(access.exp, NOW + 900);
        assert_eq!(access.amr, vec!["pwd".to_string()]);
        let refresh = a
            .verify(&issued.tokens.refresh_token, TokenType::Refresh, NOW)
            .unwrap();
        assert_eq!(
            refresh.fam.as_deref(),
            Some(issued.family.family_id.as_str())
        );
        assert_eq!(refresh.gen, Some(0));
        // The refresh token is not an access token and vice versa.
        assert!(a
            .verify(&issued.tokens.refresh_token, TokenType::Access, NOW)
            .is_err());
        assert!(a
            .verify(&issued.tokens.access_token, TokenType::Refresh, NOW)
            .is_err());
    }

    #[test]
    fn login_wrong_password_or_unknown_user_is_invalid_fails() {
        let a = auth();
        let rec = Rec::new(&a, "correct horse", false);
        let wrong = a
            .login(Some(&rec.user()), "wrong horse", NOW, &mut rng())
            .unwrap();
        assert_eq!(wrong, LoginOutcome::Invalid);
        let unknown = a.login(None, "correct horse", NOW, &mut rng()).unwrap();
        assert_eq!(unknown, LoginOutcome::Invalid);
        let huge = "x".repeat(5000);
        assert_eq!(
            a.login(Some(&rec.user()), &huge, NOW, &mut rng()).unwrap(),
            LoginOutcome::Invalid
        );
        assert_eq!(
            a.login(None, &huge, NOW, &mut rng()).unwrap(),
            LoginOutcome::Invalid
        );
    }

    #[test]
    fn login_with_corrupt_stored_hash_fails() {
        let a = auth();
        let mut rec = Rec::new(&a, "correct horse", false);
        rec.hash = "$argon2id$v=19$garbage".into();
        let err = a
            .login(Some(&rec.user()), "correct horse", NOW, &mut rng())
            .unwrap_err();
        assert_eq!(err.code(), "hash_invalid");
    }

    #[test]
    fn login_returns_new_hash_when_params_changed_ok() {
        let old = auth();
        let rec = Rec::new(&old, "correct horse", false);
        let key = old.signing_key().clone();
        let stronger =
            PasswordHasher::new(Params::new(2, 128, 1).unwrap(), PasswordPolicy::default());
        let a = Authenticator::new(key, FlowLimits::default(), stronger, TotpConfig::default());
        let LoginOutcome::Ok {
            new_password_hash: Some(h),
            ..
        } = a
            .login(Some(&rec.user()), "correct horse", NOW, &mut rng())
            .unwrap()
        else {
            panic!("expected a rehash")
        };
        assert!(h.contains("m=128,t=2,p=1"));
        assert!(a.hasher().verify(&h, "correct horse").unwrap());
        assert!(!a.hasher().needs_rehash(&h).unwrap());
    }

    fn mfa_token(a: &Authenticator, rec: &Rec) -> String {
        match a
            .login(Some(&rec.user()), "correct horse", NOW, &mut rng())
            .unwrap()
        {
            LoginOutcome::MfaRequired { mfa_token, .. } => mfa_token,
            other => panic!("expected MfaRequired, got {other:?}"),
        }
    }

    #[test]
    fn mfa_flow_with_totp_ok_and_replay_fails() {
        let a = auth();
        let rec = Rec::new(&a, "correct horse", true);
        let token = mfa_token(&a, &rec);
        // An MFA-pending token is not an access token.
        assert_eq!(
            a.verify(&token, TokenType::Access, NOW).unwrap_err().code(),
            "token_wrong_type"
        );
        let code = totp::generate(a.totp(), SECRET, NOW + 5).unwrap();
        let r = a.verify_mfa(
            &token,
            &code,
            &rec.user(),
            &MfaState::default(),
            NOW + 5,
            &mut rng(),
        );
        let (issued, method) = r.outcome.unwrap();
        assert_eq!(method, MfaMethod::Totp);
        let access = a
            .verify(&issued.tokens.access_token, TokenType::Access, NOW + 5)
            .unwrap();
        assert_eq!(access.amr, vec!["pwd".to_string(), "otp".to_string()]);
        assert_eq!(r.state.last_totp_step, Some((NOW + 5) / 30));
        // The same pending token cannot be used twice.
        let again = a.verify_mfa(&token, &code, &rec.user(), &r.state, NOW + 6, &mut rng());
        assert_eq!(again.outcome.unwrap_err().code(), "mfa_token_used");
        // A new sign-in replaying the same code is refused.
        let token2 = a
            .create_mfa_token("user-1", NOW + 1, &mut SeededEntropy::new(9))
            .unwrap();
        let replay = a.verify_mfa(&token2, &code, &rec.user(), &r.state, NOW + 7, &mut rng());
        assert_eq!(replay.outcome.unwrap_err().code(), "totp_replayed");
    }

    #[test]
    fn mfa_attempts_are_capped_per_pending_token_fails() {
        let a = auth();
        let rec = Rec::new(&a, "correct horse", true);
        let token = mfa_token(&a, &rec);
        let good = totp::generate(a.totp(), SECRET, NOW).unwrap();
        let bad = if good == "000000" { "111111" } else { "000000" };
        let mut state = MfaState::default();
        for i in 0..DEFAULT_MFA_MAX_ATTEMPTS {
            let r = a.verify_mfa(&token, bad, &rec.user(), &state, NOW, &mut rng());
            assert_eq!(r.outcome.unwrap_err().code(), "totp_invalid");
            assert_eq!(r.state.failed_attempts, i + 1);
            state = r.state;
        }
        let r = a.verify_mfa(&token, &good, &rec.user(), &state, NOW, &mut rng());
        assert_eq!(r.outcome.unwrap_err().code(), "mfa_attempts_exceeded");
        // A newer pending token (a new sign-in) starts a fresh per-token count.
        let fresh = a
            .create_mfa_token("user-1", NOW + 1, &mut SeededEntropy::new(77))
            .unwrap();
        let r = a.verify_mfa(&fresh, &good, &rec.user(), &state, NOW, &mut rng());
        assert!(r.outcome.is_ok());
        assert_eq!(r.state.failed_attempts, 0);
    }

    #[test]
    fn mfa_recovery_code_is_consumed_ok() {
        let a = auth();
        let rec = Rec::new(&a, "correct horse", true);
        let codes = generate_recovery_codes(3, &mut SeededEntropy::new(5)).unwrap();
        let state = MfaState {
            recovery_hashes: codes.hashes.clone(),
            ..MfaState::default()
        };
        let token = mfa_token(&a, &rec);
        let r = a.verify_mfa(
            &token,
            &codes.codes[1],
            &rec.user(),
            &state,
            NOW,
            &mut rng(),
        );
        assert_eq!(r.outcome.as_ref().unwrap().1, MfaMethod::Recovery);
        assert_eq!(r.state.recovery_hashes.len(), 2);
        let fresh = a
            .create_mfa_token("user-1", NOW + 1, &mut SeededEntropy::new(78))
            .unwrap();
        let again = a.verify_mfa(
            &fresh,
            &codes.codes[1],
            &rec.user(),
            &r.state,
            NOW,
            &mut rng(),
        );
        assert_eq!(again.outcome.unwrap_err().code(), "mfa_invalid");
    }

    #[test]
    fn mfa_token_of_another_user_or_expired_fails() {
        let a = auth();
        let rec = Rec::new(&a, "correct horse", true);
        let other = a.create_mfa_token("user-2", NOW, &mut rng()).unwrap();
        let code = totp::generate(a.totp(), SECRET, NOW).unwrap();
        let r = a.verify_mfa(
            &other,
            &code,
            &rec.user(),
            &MfaState::default(),
            NOW,
            &mut rng(),
        );
        assert_eq!(r.outcome.unwrap_err().code(), "token_mismatch");
        let token = mfa_token(&a, &rec);
        let late = NOW + DEFAULT_MFA_TTL + 31;
        let code = totp::generate(a.totp(), SECRET, late).unwrap();
        let r = a.verify_mfa(
            &token,
            &code,
            &rec.user(),
            &MfaState::default(),
            late,
            &mut rng(),
        );
        assert_eq!(r.outcome.unwrap_err().code(), "token_expired");
        // An access token is not an MFA token.
        let issued = a
            .issue_tokens(&rec.user(), &["pwd"], NOW, &mut rng())
            .unwrap();
        let r = a.verify_mfa(
            &issued.tokens.access_token,
            &code,
            &rec.user(),
            &MfaState::default(),
            NOW,
            &mut rng(),
        );
        assert_eq!(r.outcome.unwrap_err().code(), "token_wrong_type");
    }

    #[test]
    fn mfa_enabled_without_factor_fails() {
        let a = auth();
        let rec = Rec::new(&a, "correct horse", true);
        let mut user = rec.user();
        user.mfa_secret = None;
        let token = mfa_token(&a, &rec);
        let r = a.verify_mfa(
            &token,
            "123456",
            &user,
            &MfaState::default(),
            NOW,
            &mut rng(),
        );
        assert_eq!(r.outcome.unwrap_err().code(), "mfa_not_configured");
    }

    #[test]
    fn refresh_rotates_and_reuse_revokes_family_ok() {
        let a = auth();
        let rec = Rec::new(&a, "correct horse", false);
        let first = login_ok(&a, &rec);
        let t1 = NOW + 100;
        let RefreshOutcome::Rotated(second) = a
            .refresh(
                &first.tokens.refresh_token,
                &first.family,
                None,
                t1,
                &mut rng(),
            )
            .unwrap()
        else {
            panic!("expected rotation")
        };
        assert_eq!(second.family.generation, 1);
        assert_eq!(second.family.rotated_at, t1);
        let claims = a
            .verify(&second.tokens.refresh_token, TokenType::Refresh, t1)
            .unwrap();
        assert_eq!(claims.gen, Some(1));
        assert_eq!(claims.roles, vec!["doctor".to_string()]);
        // Reusing generation 0 after the grace window revokes the whole family.
        let late = t1 + DEFAULT_REFRESH_GRACE + 1;
        let RefreshOutcome::Reused(revoked) = a
            .refresh(
                &first.tokens.refresh_token,
                &second.family,
                None,
                late,
                &mut rng(),
            )
            .unwrap()
        else {
            panic!("expected reuse detection")
        };
        assert!(revoked.revoked);
        // … and then even the newest token is refused.
        let err = a.refresh(
            &second.tokens.refresh_token,
            &revoked,
            None,
            late,
            &mut rng(),
        );
        assert_eq!(err.unwrap_err().code(), "refresh_revoked");
    }

    #[test]
    fn refresh_concurrent_twin_within_grace_ok() {
        let a = auth();
        let rec = Rec::new(&a, "correct horse", false);
        let first = login_ok(&a, &rec);
        let RefreshOutcome::Rotated(second) = a
            .refresh(
                &first.tokens.refresh_token,
                &first.family,
                None,
                NOW,
                &mut rng(),
            )
            .unwrap()
        else {
            panic!()
        };
        let RefreshOutcome::Rotated(twin) = a
            .refresh(
                &first.tokens.refresh_token,
                &second.family,
                None,
                NOW + 2,
                &mut rng(),
            )
            .unwrap()
        else {
            panic!("a concurrent refresh within the grace window is not reuse")
        };
        assert_eq!(twin.family, second.family);
        // An older generation than the previous one is reuse even inside the window.
        let RefreshOutcome::Rotated(third) = a
            .refresh(
                &second.tokens.refresh_token,
                &second.family,
                None,
                NOW + 3,
                &mut rng(),
            )
            .unwrap()
        else {
            panic!()
        };
        let r = a.refresh(
            &first.tokens.refresh_token,
            &third.family,
            None,
            NOW + 4,
            &mut rng(),
        );
        assert!(matches!(r.unwrap(), RefreshOutcome::Reused(f) if f.revoked));
    }

    #[test]
    fn refresh_with_foreign_family_or_access_token_fails() {
        let a = auth();
        let rec = Rec::new(&a, "correct horse", false);
        let one = login_ok(&a, &rec);
        let other = a
            .issue_tokens(&rec.user(), &["pwd"], NOW, &mut SeededEntropy::new(3))
            .unwrap();
        let r = a.refresh(
            &one.tokens.refresh_token,
            &other.family,
            None,
            NOW,
            &mut rng(),
        );
        assert_eq!(r.unwrap_err().code(), "token_mismatch");
        let r = a.refresh(&one.tokens.access_token, &one.family, None, NOW, &mut rng());
        assert_eq!(r.unwrap_err().code(), "token_wrong_type");
        let late = NOW + DEFAULT_REFRESH_TTL + 31;
        let r = a.refresh(
            &one.tokens.refresh_token,
            &one.family,
            None,
            late,
            &mut rng(),
        );
        assert_eq!(r.unwrap_err().code(), "token_expired");
    }

    #[test]
    fn refresh_can_update_roles_ok() {
        let a = auth();
        let rec = Rec::new(&a, "correct horse", false);
        let one = login_ok(&a, &rec);
        let roles = vec!["admin".to_string()];
        let mut promoted = rec.user();
        promoted.roles = &roles;
        let RefreshOutcome::Rotated(two) = a
            .refresh(
                &one.tokens.refresh_token,
                &one.family,
                Some(&promoted),
                NOW,
                &mut rng(),
            )
            .unwrap()
        else {
            panic!()
        };
        let c = a
            .verify(&two.tokens.access_token, TokenType::Access, NOW)
            .unwrap();
        assert_eq!(c.roles, roles);
    }

    #[test]
    fn mfa_switching_between_pending_tokens_does_not_reset_count_fails() {
        let a = auth();
        let rec = Rec::new(&a, "correct horse", true);
        let older = a
            .create_mfa_token("user-1", NOW, &mut SeededEntropy::new(1))
            .unwrap();
        let newer = a
            .create_mfa_token("user-1", NOW + 1, &mut SeededEntropy::new(2))
            .unwrap();
        let good = totp::generate(a.totp(), SECRET, NOW + 1).unwrap();
        let bad = if good == "000000" { "111111" } else { "000000" };
        let r = a.verify_mfa(
            &older,
            bad,
            &rec.user(),
            &MfaState::default(),
            NOW + 1,
            &mut rng(),
        );
        let r = a.verify_mfa(&newer, bad, &rec.user(), &r.state, NOW + 1, &mut rng());
        assert_eq!(r.state.consecutive_failures, 2);
        // Going back to the older token is refused, whatever the code.
        let back = a.verify_mfa(&older, &good, &rec.user(), &r.state, NOW + 1, &mut rng());
        assert_eq!(back.outcome.unwrap_err().code(), "mfa_token_used");
        // A completed token cannot complete again after another token was tried.
        let done = a.verify_mfa(&newer, &good, &rec.user(), &r.state, NOW + 1, &mut rng());
        assert!(done.outcome.is_ok());
        assert_eq!(done.state.consecutive_failures, 0);
        let third = a
            .create_mfa_token("user-1", NOW + 2, &mut SeededEntropy::new(3))
            .unwrap();
        let s = a
            .verify_mfa(&third, bad, &rec.user(), &done.state, NOW + 2, &mut rng())
            .state;
        let again = a.verify_mfa(&newer, &good, &rec.user(), &s, NOW + 2, &mut rng());
        assert_eq!(again.outcome.unwrap_err().code(), "mfa_token_used");
    }

    #[test]
    fn mfa_locks_after_consecutive_failures_across_tokens_fails() {
        let key = SigningKey::from_secret(&[7u8; 32], Algorithm::HS256, None).unwrap();
        let limits = FlowLimits::default().with_mfa_max_failures(7).unwrap();
        let a = Authenticator::new(key, limits, fast_hasher(), TotpConfig::default());
        let rec = Rec::new(&a, "correct horse", true);
        let good = totp::generate(a.totp(), SECRET, NOW + 100).unwrap();
        let bad = if good == "000000" { "111111" } else { "000000" };
        let mut state = MfaState::default();
        let mut guesses = 0;
        for i in 0..10u64 {
            let t = a
                .create_mfa_token("user-1", NOW + i, &mut SeededEntropy::new(i))
                .unwrap();
            for _ in 0..DEFAULT_MFA_MAX_ATTEMPTS {
                let r = a.verify_mfa(&t, bad, &rec.user(), &state, NOW + 100, &mut rng());
                if r.outcome
                    .as_ref()
                    .is_err_and(|e| e.code() == "totp_invalid")
                {
                    guesses += 1;
                }
                state = r.state;
            }
        }
        assert_eq!(
            guesses, 7,
            "only mfa_max_failures guesses in a row, whatever the tokens"
        );
        let t = a
            .create_mfa_token("user-1", NOW + 50, &mut SeededEntropy::new(99))
            .unwrap();
        let r = a.verify_mfa(&t, &good, &rec.user(), &state, NOW + 100, &mut rng());
        assert_eq!(r.outcome.unwrap_err().code(), "mfa_locked");
    }

    #[test]
    fn refresh_family_dies_with_password_change_and_age_fails() {
        let a = auth();
        let rec = Rec::new(&a, "correct horse", false);
        let one = login_ok(&a, &rec);
        // Same password: fine, with the user record.
        let ok = a.refresh(
            &one.tokens.refresh_token,
            &one.family,
            Some(&rec.user()),
            NOW,
            &mut rng(),
        );
        let RefreshOutcome::Rotated(two) = ok.unwrap() else {
            panic!()
        };
        let changed = Rec::new(&a, "a brand new password", false);
        let r = a.refresh(
            &two.tokens.refresh_token,
            &two.family,
            Some(&changed.user()),
            NOW,
            &mut rng(),
        );
        assert_eq!(r.unwrap_err().code(), "refresh_revoked");
        // Rotating every 13 days cannot keep a sign-in alive past the family's lifetime.
        let mut issued = two;
        let mut t = NOW;
        let end = NOW + DEFAULT_REFRESH_FAMILY_TTL;
        loop {
            t += 13 * 86_400;
            let r = a.refresh(
                &issued.tokens.refresh_token,
                &issued.family,
                None,
                t,
                &mut rng(),
            );
            match r {
                Ok(RefreshOutcome::Rotated(next)) => {
                    assert!(t < end);
                    let c = a
                        .verify(&next.tokens.refresh_token, TokenType::Refresh, t)
                        .unwrap();
                    assert!(c.exp <= end, "a refresh token never outlives its family");
                    issued = next;
                }
                Err(e) => {
                    assert!(
                        ["refresh_revoked", "token_expired"].contains(&e.code()),
                        "{e}"
                    );
                    assert!(t + 30 >= end - 13 * 86_400);
                    break;
                }
                Ok(other) => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn refresh_grace_zero_means_no_grace_fails() {
        let key = SigningKey::from_secret(&[7u8; 32], Algorithm::HS256, None).unwrap();
        let limits = FlowLimits::new(900, 1_209_600, 300, 1_800, 5, 0).unwrap();
        let a = Authenticator::new(key, limits, fast_hasher(), TotpConfig::default());
        let rec = Rec::new(&a, "correct horse", false);
        let one = login_ok(&a, &rec);
        let RefreshOutcome::Rotated(two) = a
            .refresh(
                &one.tokens.refresh_token,
                &one.family,
                None,
                NOW,
                &mut rng(),
            )
            .unwrap()
        else {
            panic!()
        };
        let r = a
            .refresh(
                &one.tokens.refresh_token,
                &two.family,
                None,
                NOW,
                &mut rng(),
            )
            .unwrap();
        assert!(matches!(r, RefreshOutcome::Reused(f) if f.revoked));
    }

    #[test]
    fn debug_output_hides_secrets_ok() {
        let a = auth();
        let rec = Rec::new(&a, "correct horse", true);
        let text = format!("{:?}", rec.user());
        assert!(!text.contains(SECRET) && !text.contains("argon2"));
        let issued = a
            .issue_tokens(&rec.user(), &["pwd"], NOW, &mut rng())
            .unwrap();
        let text = format!(
            "{issued:?} {:?}",
            LoginOutcome::Ok {
                issued: issued.clone(),
                new_password_hash: Some(rec.hash.clone())
            }
        );
        assert!(!text.contains(&issued.tokens.access_token));
        assert!(!text.contains(&issued.tokens.refresh_token));
        assert!(!text.contains("argon2"));
    }

    #[test]
    fn reset_token_single_use_by_password_binding_ok() {
        let a = auth();
        let rec = Rec::new(&a, "correct horse", false);
        let token = a
            .create_password_reset_token(&rec.user(), NOW, &mut rng())
            .unwrap();
        assert_eq!(
            a.verify_password_reset_token(&token, &rec.user(), NOW + 60)
                .unwrap(),
            "user-1"
        );
        // Not an access token.
        assert_eq!(
            a.verify(&token, TokenType::Access, NOW).unwrap_err().code(),
            "token_wrong_type"
        );
        // Once the password changed, the token is dead.
        let changed = Rec::new(&a, "new password!", false);
        let err = a
            .verify_password_reset_token(&token, &changed.user(), NOW + 60)
            .unwrap_err();
        assert_eq!(err.code(), "reset_token_stale");
        let late = NOW + DEFAULT_RESET_TTL + 31;
        let err = a
            .verify_password_reset_token(&token, &rec.user(), late)
            .unwrap_err();
        assert_eq!(err.code(), "token_expired");
        let mut other = rec.user();
        other.id = "user-2";
        assert_eq!(
            a.verify_password_reset_token(&token, &other, NOW)
                .unwrap_err()
                .code(),
            "token_mismatch"
        );
    }

    #[test]
    fn tokens_of_another_key_or_issuer_fail() {
        let a = auth();
        let key = SigningKey::from_secret(&[8u8; 32], Algorithm::HS256, Some("k1".into())).unwrap();
        let b = Authenticator::new(
            key,
            FlowLimits::default(),
            fast_hasher(),
            TotpConfig::default(),
        )
        .with_issuer(Some("https://auth.example.com".into()))
        .with_audience(Some("api".into()));
        let t = b
            .create_access_token("user-1", &[], &["pwd"], NOW, &mut rng())
            .unwrap();
        assert_eq!(
            a.verify(&t, TokenType::Access, NOW).unwrap_err().code(),
            "token_invalid"
        );
        let c = auth().with_issuer(Some("https://other".into()));
        let t = c
            .create_access_token("user-1", &[], &["pwd"], NOW, &mut rng())
            .unwrap();
        assert_eq!(
            a.verify(&t, TokenType::Access, NOW).unwrap_err().code(),
            "token_issuer_invalid"
        );
    }

    #[test]
    fn limits_bounds_fail() {
        assert!(FlowLimits::new(900, 1_209_600, 300, 1_800, 5, 10).is_ok());
        assert_eq!(
            FlowLimits::new(10, 1_209_600, 300, 1_800, 5, 10)
                .unwrap_err()
                .field,
            "accessTokenTtl"
        );
        assert_eq!(
            FlowLimits::new(900, 900, 300, 1_800, 5, 10)
                .unwrap_err()
                .field,
            "refreshTokenTtl"
        );
        assert_eq!(
            FlowLimits::new(900, 1_209_600, 300, 600, 5, 10)
                .unwrap_err()
                .field,
            "resetTokenTtl"
        );
        assert_eq!(
            FlowLimits::new(900, 1_209_600, 300, 1_800, 0, 10)
                .unwrap_err()
                .field,
            "mfaMaxAttempts"
        );
        assert_eq!(
            FlowLimits::new(900, 1_209_600, 300, 1_800, 5, 999)
                .unwrap_err()
                .field,
            "refreshGrace"
        );
    }
}
