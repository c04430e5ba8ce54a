//! Refresh-token families: issuance, rotation, reuse detection.

use super::{ct_eq, password_fingerprint, random_id, Authenticator, FlowError, TokenPair, User};
use crate::entropy::Entropy;
use crate::token::{encode, TokenType};
use serde::{Deserialize, Serialize};

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

/// The outcome of [`Authenticator::refresh`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum RefreshOutcome {
    /// A new pair; store the new family.
    Rotated(Issued),
    /// Reuse detected: store this revoked family and refuse (`refresh_reused`).
    Reused(RefreshFamily),
}

impl Authenticator {
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
        self.issue_for_family(family, user.roles, amr, Some(user.session_epoch), now, rng)
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

    pub(super) fn new_family(
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

    pub(super) fn refresh_token_for(
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

    pub(super) fn issue_for_family(
        &self,
        family: RefreshFamily,
        roles: &[String],
        amr: &[&str],
        session_epoch: Option<u64>,
        now: u64,
        rng: &mut impl Entropy,
    ) -> Result<Issued, FlowError> {
        let access_token = self.access_token(
            &family.user_id,
            roles,
            amr,
            Some(family.created_at),
            session_epoch,
            &crate::token::CustomClaims::default(),
            now,
            rng,
        )?;
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
        // Without the user record the new access token has no `sep`: no account endpoint takes it.
        let epoch = user.map(|u| u.session_epoch);
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
                self.issue_for_family(next, roles, &amr, epoch, now, rng)?,
            ));
        }
        if in_grace {
            // The concurrent twin gets tokens of the current generation; the family is unchanged.
            return Ok(RefreshOutcome::Rotated(self.issue_for_family(
                family.clone(),
                roles,
                &amr,
                epoch,
                now,
                rng,
            )?));
        }
        Ok(RefreshOutcome::Reused(family.clone().revoke()))
    }
}
