//! The authenticator: signing key, limits, hasher and TOTP settings; token helpers.

use super::{random_id, FlowError, FlowLimits};
use crate::entropy::Entropy;
use crate::error::ConfigError;
use crate::password::PasswordHasher;
use crate::token::{
    decode, encode, Algorithm, Claims, CustomClaims, KeyRing, KeySet, SigningKey, TokenError,
    TokenType, Validation, DEFAULT_LEEWAY_SECS, MAX_LEEWAY_SECS,
};
use crate::totp::TotpConfig;
use serde::{Deserialize, Serialize};
use std::fmt;

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
    /// The user's session epoch ([`crate::session::SessionState::epoch`]): access tokens of a
    /// sign-in carry it as `sep`, and [`Authenticator::verify_access_current`] refuses a token
    /// of an older epoch (password change, reset, "sign out everywhere"). 0 for a new user.
    pub session_epoch: u64,
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

/// Where the signing key comes from.
#[derive(Debug, Clone)]
pub struct Authenticator {
    pub(super) key: SigningKey,
    pub(super) keys: KeySet,
    algorithms: Vec<Algorithm>,
    pub(super) issuer: Option<String>,
    pub(super) audience: Option<String>,
    pub(super) limits: FlowLimits,
    pub(super) hasher: PasswordHasher,
    pub(super) totp: TotpConfig,
    pub(super) leeway: u64,
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
        Self::with_key_ring(KeyRing::from(key), limits, hasher, totp)
    }

    /// A flow signing with the ring's current key and accepting tokens of any of its keys
    /// (signing-key rotation: the previous keys verify until their tokens have expired).
    #[must_use]
    pub fn with_key_ring(
        ring: KeyRing,
        limits: FlowLimits,
        hasher: PasswordHasher,
        totp: TotpConfig,
    ) -> Self {
        let algorithms = ring.algorithms().to_vec();
        let keys = ring.key_set().clone();
        Self {
            key: ring.current().clone(),
            keys,
            algorithms,
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

    /// The signing key (the current one).
    #[must_use]
    pub const fn signing_key(&self) -> &SigningKey {
        &self.key
    }

    /// The key set that verifies this flow's tokens (every key of its ring).
    #[must_use]
    pub const fn key_set(&self) -> &KeySet {
        &self.keys
    }

    pub(super) fn claims(&self, token_type: TokenType, sub: &str, now: u64, ttl: u64) -> Claims {
        let mut c = Claims::new(token_type, sub, now, ttl);
        c.iss.clone_from(&self.issuer);
        if let Some(aud) = &self.audience {
            c.aud = vec![aud.clone()];
        }
        c
    }

    pub(super) fn validation(&self, token_type: TokenType) -> Validation {
        let mut v = Validation::new(token_type);
        v.leeway = self.leeway;
        v.algorithms.clone_from(&self.algorithms);
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
        let none = CustomClaims::default();
        self.access_token(user_id, roles, amr, None, None, &none, now, rng)
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
        self.access_token(user_id, roles, amr, None, None, claims, now, rng)
    }

    /// An access token; `auth_time` (when the password was entered, OIDC's claim) is set for
    /// tokens of a sign-in, so a later step can ask "how recent" ([`super::Proof::AuthTime`]);
    /// `sep` (the user's session epoch) too, for [`Self::verify_access_current`].
    #[allow(clippy::too_many_arguments)]
    pub(super) fn access_token(
        &self,
        user_id: &str,
        roles: &[String],
        amr: &[&str],
        auth_time: Option<u64>,
        session_epoch: Option<u64>,
        custom: &CustomClaims,
        now: u64,
        rng: &mut impl Entropy,
    ) -> Result<String, FlowError> {
        let mut c = self.claims(TokenType::Access, user_id, now, self.limits.access_ttl);
        c.roles = roles.to_vec();
        c.amr = amr.iter().map(|s| (*s).to_owned()).collect();
        c.jti = Some(random_id(rng)?);
        c.extra.clone_from(custom.as_map());
        if let Some(t) = auth_time {
            c.extra.insert("auth_time".to_owned(), t.into());
        }
        if let Some(e) = session_epoch {
            c.extra.insert("sep".to_owned(), e.into());
        }
        Ok(encode(&c, &self.key)?)
    }

    /// [`Self::verify`] for an access token at an account endpoint (MFA changes, password
    /// change, "sign out everywhere"): the token must also be of the user's current session
    /// epoch (`sep` equal to `state.epoch`). A token issued before a password change, a reset
    /// or "sign out everywhere", or one without `sep` (not from a sign-in), is refused. APIs
    /// behind the filter stay stateless: there an access token lives its TTL.
    ///
    /// # Errors
    /// The [`TokenError`] of [`Self::verify`], or [`TokenError::Invalid`] for another epoch.
    pub fn verify_access_current(
        &self,
        token: &str,
        state: &crate::session::SessionState,
        now: u64,
    ) -> Result<Claims, TokenError> {
        let claims = self.verify(token, TokenType::Access, now)?;
        match claims.extra.get("sep").and_then(serde_json::Value::as_u64) {
            Some(e) if e == state.epoch => Ok(claims),
            _ => Err(TokenError::Invalid),
        }
    }
}
