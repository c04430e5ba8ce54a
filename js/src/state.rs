//! `class Keygate`: the login flow, tokens and sessions of one configuration.
//!
//! State the caller stores (refresh families, MFA state) crosses as camelCase JSON; the user
//! record crosses as the already-validated `{id, passwordHash, roles, mfaEnabled, mfaSecret}`.

use crate::config::build;
use crate::error::KgError;
use crate::unix_secs;
use keygate::flow::{
    Authenticator, Issued, LoginOutcome, MfaMethod, MfaState, PasswordChanged, Proof,
    RefreshFamily, RefreshOutcome, User,
};
use keygate::session::SessionState;
use keygate::token::{CustomClaims, TokenType};
use keygate::{ErrorCode, OsEntropy, Session, Sessions};
use serde::Deserialize;
use serde_json::{json, Value};
use wasm_bindgen::prelude::wasm_bindgen;

/// Longest JSON text accepted for a user record or stored state.
const MAX_RECORD_LEN: usize = 256 * 1024;

/// The user record as the JS side passes it (unknown fields were dropped there).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct JsUser {
    id: String,
    #[serde(default)]
    password_hash: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    mfa_enabled: bool,
    #[serde(default)]
    mfa_secret: Option<String>,
    #[serde(default)]
    session_epoch: u64,
}

impl JsUser {
    pub(crate) fn parse(json: &str) -> Result<Self, KgError> {
        parse_record(json, "user")
    }

    pub(crate) fn as_user(&self) -> User<'_> {
        User {
            id: &self.id,
            password_hash: self.password_hash.as_deref().unwrap_or_default(),
            roles: &self.roles,
            mfa_enabled: self.mfa_enabled,
            mfa_secret: self.mfa_secret.as_deref(),
            session_epoch: self.session_epoch,
        }
    }

    pub(crate) fn require_hash(&self) -> Result<(), KgError> {
        match self.password_hash {
            Some(_) => Ok(()),
            None => Err(KgError::input("user.passwordHash", "must be a string")),
        }
    }
}

fn parse_record<T: for<'de> Deserialize<'de>>(json: &str, field: &str) -> Result<T, KgError> {
    if json.len() > MAX_RECORD_LEN {
        return Err(KgError::input(field, "is too large"));
    }
    serde_json::from_str(json).map_err(|_| {
        KgError::input(
            field,
            "does not have the documented shape (see index.d.ts); pass back what keygate returned",
        )
    })
}

fn issued_json(issued: Issued) -> (Value, Value) {
    (json!(issued.tokens), json!(issued.family))
}

fn session_json(sessions: &Sessions, s: &Session) -> Value {
    json!({
        "cookie": sessions.set_cookie(s),
        "userId": s.user_id(),
        "sessionId": s.session_id(),
        "createdAt": s.created_at(),
        "lastSeen": s.last_seen(),
        "expiresAt": s.created_at().saturating_add(sessions.absolute_timeout()),
        "epoch": s.epoch(),
    })
}

fn session_state(json: Option<&str>) -> Result<Option<SessionState>, KgError> {
    json.map(|j| parse_record::<SessionState>(j, "options.sessionState"))
        .transpose()
}

fn mfa_state(json: Option<&str>, field: &str) -> Result<MfaState, KgError> {
    Ok(match json {
        None => MfaState::default(),
        Some(s) => parse_record::<MfaState>(s, field)?,
    })
}

fn changed_json(c: PasswordChanged) -> String {
    json!({ "passwordHash": c.password_hash, "sessionState": c.sessions,
            "mfaState": c.mfa_state })
    .to_string()
}

fn token_type(name: &str) -> Result<TokenType, KgError> {
    name.parse().map_err(|_| {
        KgError::input(
            "type",
            "must be \"access\", \"refresh\", \"mfa\" or \"reset\"",
        )
    })
}

/// One configuration: signing key, lifetimes, password and TOTP settings, session cookies.
#[wasm_bindgen]
pub struct Keygate {
    pub(crate) auth: Authenticator,
    sessions: Option<Sessions>,
}

#[wasm_bindgen]
impl Keygate {
    /// Checks `config_json` (see `KeygateConfig` in index.d.ts).
    ///
    /// # Errors
    /// `config_invalid` naming the field.
    #[wasm_bindgen(constructor)]
    pub fn new(config_json: &str) -> Result<Keygate, KgError> {
        let built = build(config_json)?;
        Ok(Self {
            auth: built.auth,
            sessions: built.sessions,
        })
    }

    /// Access-token lifetime in seconds (`expires_in`).
    #[wasm_bindgen(getter, js_name = accessTokenTtl)]
    #[must_use]
    pub fn access_token_ttl(&self) -> f64 {
        crate::as_f64(self.auth.limits().access_ttl())
    }

    /// A signed access token.
    ///
    /// # Errors
    /// `token_claim_too_large` / `token_missing_claim` for ids or roles out of bounds.
    #[wasm_bindgen(js_name = createAccessToken)]
    pub fn create_access_token(
        &self,
        user_id: &str,
        roles: Vec<String>,
        amr: Vec<String>,
        now: f64,
    ) -> Result<String, KgError> {
        let amr: Vec<&str> = amr.iter().map(String::as_str).collect();
        Ok(self.auth.create_access_token(
            user_id,
            &roles,
            &amr,
            unix_secs(now, "options.now")?,
            &mut OsEntropy,
        )?)
    }

    /// [`Self::create_access_token`] with application claims (`claims_json`: a JSON object),
    /// refused by the core when a name is one keygate sets (`invalid_input`, field
    /// `options.claims.<name>`).
    ///
    /// # Errors
    /// `invalid_input` for refused claims; signing or entropy failure.
    #[wasm_bindgen(js_name = createAccessTokenWithClaims)]
    pub fn create_access_token_with_claims(
        &self,
        user_id: &str,
        roles: Vec<String>,
        amr: Vec<String>,
        claims_json: &str,
        now: f64,
    ) -> Result<String, KgError> {
        let map: serde_json::Map<String, Value> = parse_record(claims_json, "options.claims")?;
        let claims = CustomClaims::new(map).map_err(|e| {
            let field = if e.field.is_empty() {
                "options.claims".to_owned()
            } else {
                format!("options.claims.{}", e.field)
            };
            KgError::input(&field, format!("{field} {}", e.message))
        })?;
        let amr: Vec<&str> = amr.iter().map(String::as_str).collect();
        Ok(self.auth.create_access_token_with_claims(
            user_id,
            &roles,
            &amr,
            &claims,
            unix_secs(now, "options.now")?,
            &mut OsEntropy,
        )?)
    }

    /// Verifies a token of `token_type` and returns its claims as JSON text.
    ///
    /// # Errors
    /// The first failing check (`token_expired`, `token_invalid`, `token_wrong_type`, …).
    pub fn verify(&self, token: &str, token_type_name: &str, now: f64) -> Result<String, KgError> {
        let claims = self.auth.verify(
            token,
            token_type(token_type_name)?,
            unix_secs(now, "options.now")?,
        )?;
        serde_json::to_string(&claims).map_err(|_| KgError::input("token", "claims unreadable"))
    }

    /// Claims JSON of an access token that is also of the user's current session epoch
    /// (`sessionState` JSON), for account endpoints.
    ///
    /// # Errors
    /// As `verify`; `token_invalid` for a token of another epoch.
    #[wasm_bindgen(js_name = verifyAccessCurrent)]
    pub fn verify_access_current(
        &self,
        token: &str,
        state_json: Option<String>,
        now: f64,
    ) -> Result<String, KgError> {
        let state = session_state(state_json.as_deref())?.unwrap_or_default();
        let claims =
            self.auth
                .verify_access_current(token, &state, unix_secs(now, "options.now")?)?;
        serde_json::to_string(&claims).map_err(|_| KgError::input("token", "claims unreadable"))
    }

    /// `{"refresh_token", "family"}`: the first refresh token of a new family.
    ///
    /// # Errors
    /// As `issueTokens`.
    #[wasm_bindgen(js_name = createRefreshToken)]
    pub fn create_refresh_token(
        &self,
        user_id: &str,
        roles: Vec<String>,
        now: f64,
    ) -> Result<String, KgError> {
        let (refresh_token, family) = self.auth.create_refresh_token(
            user_id,
            &roles,
            unix_secs(now, "options.now")?,
            &mut OsEntropy,
        )?;
        Ok(json!({ "refresh_token": refresh_token, "family": family }).to_string())
    }

    /// A `type: "mfa"` token.
    ///
    /// # Errors
    /// Claims out of bounds, entropy failure.
    #[wasm_bindgen(js_name = createMfaToken)]
    pub fn create_mfa_token(&self, user_id: &str, now: f64) -> Result<String, KgError> {
        Ok(self
            .auth
            .create_mfa_token(user_id, unix_secs(now, "options.now")?, &mut OsEntropy)?)
    }

    /// `{"tokens", "family"}` for a user record.
    ///
    /// # Errors
    /// Claims out of bounds, entropy failure.
    #[wasm_bindgen(js_name = issueTokens)]
    pub fn issue_tokens(
        &self,
        user_json: &str,
        amr: Vec<String>,
        now: f64,
    ) -> Result<String, KgError> {
        let user = JsUser::parse(user_json)?;
        let amr: Vec<&str> = amr.iter().map(String::as_str).collect();
        let issued = self.auth.issue_tokens(
            &user.as_user(),
            &amr,
            unix_secs(now, "options.now")?,
            &mut OsEntropy,
        )?;
        let (tokens, family) = issued_json(issued);
        Ok(json!({ "tokens": tokens, "family": family }).to_string())
    }

    /// Step one of sign-in; `user_json` is `None` for an unknown account.
    ///
    /// # Errors
    /// `hash_invalid` for an unreadable stored hash; entropy or signing failure.
    pub fn login(
        &self,
        user_json: Option<String>,
        password: &str,
        now: f64,
    ) -> Result<String, KgError> {
        let now = unix_secs(now, "options.now")?;
        let user = user_json.as_deref().map(JsUser::parse).transpose()?;
        if let Some(u) = &user {
            u.require_hash()?;
        }
        let record = user.as_ref().map(JsUser::as_user);
        let out = match self
            .auth
            .login(record.as_ref(), password, now, &mut OsEntropy)?
        {
            LoginOutcome::Ok {
                issued,
                new_password_hash,
            } => {
                let (tokens, family) = issued_json(issued);
                let mut v = json!({ "status": "ok", "tokens": tokens, "family": family });
                if let (Some(h), Some(o)) = (new_password_hash, v.as_object_mut()) {
                    o.insert("newPasswordHash".into(), h.into());
                }
                v
            }
            LoginOutcome::MfaRequired {
                mfa_token,
                new_password_hash,
            } => {
                let mut v = json!({ "status": "mfa_required", "mfa_token": mfa_token });
                if let (Some(h), Some(o)) = (new_password_hash, v.as_object_mut()) {
                    o.insert("newPasswordHash".into(), h.into());
                }
                v
            }
            LoginOutcome::Invalid => json!({ "status": "invalid" }),
        };
        Ok(out.to_string())
    }

    /// Step two: `{"status": "ok", tokens, family, state, method}` or
    /// `{"status": "error", error, message, state}`; `state` must be stored either way.
    ///
    /// # Errors
    /// Only malformed `user_json` / `state_json` or `now`.
    #[wasm_bindgen(js_name = verifyMfa)]
    pub fn verify_mfa(
        &self,
        mfa_token: &str,
        code: &str,
        user_json: &str,
        state_json: Option<String>,
        now: f64,
    ) -> Result<String, KgError> {
        let now = unix_secs(now, "options.now")?;
        let user = JsUser::parse(user_json)?;
        let state: MfaState = match state_json {
            None => MfaState::default(),
            Some(s) => parse_record::<MfaState>(&s, "state")?,
        };
        let result = self.auth.verify_mfa(
            mfa_token,
            code,
            &user.as_user(),
            &state,
            now,
            &mut OsEntropy,
        );
        let state = result.state;
        let out = match result.outcome {
            Ok((issued, method)) => {
                let (tokens, family) = issued_json(issued);
                let method = match method {
                    MfaMethod::Totp => "totp",
                    MfaMethod::Recovery => "recovery",
                };
                json!({ "status": "ok", "tokens": tokens, "family": family, "state": state,
                        "method": method })
            }
            Err(e) => {
                let e = KgError::from(e);
                json!({ "status": "error", "error": e.code, "message": e.message, "state": state })
            }
        };
        Ok(out.to_string())
    }

    /// Rotation: `{"status": "ok", tokens, family}`, reuse `{"status": "error", "error":
    /// "refresh_reused", message, family}` (store the revoked family), other refusals
    /// `{"status": "error", error, message}`.
    ///
    /// # Errors
    /// Only malformed `family_json` or `now`.
    pub fn refresh(
        &self,
        refresh_token: &str,
        family_json: &str,
        user_json: Option<String>,
        now: f64,
    ) -> Result<String, KgError> {
        let now = unix_secs(now, "options.now")?;
        let family: RefreshFamily = parse_record(family_json, "family")?;
        let user = user_json.as_deref().map(JsUser::parse).transpose()?;
        let out = match self.auth.refresh(
            refresh_token,
            &family,
            user.as_ref().map(JsUser::as_user).as_ref(),
            now,
            &mut OsEntropy,
        ) {
            Ok(RefreshOutcome::Rotated(issued)) => {
                let (tokens, family) = issued_json(issued);
                json!({ "status": "ok", "tokens": tokens, "family": family })
            }
            Ok(RefreshOutcome::Reused(revoked)) => {
                let e = keygate::flow::FlowError::RefreshReused;
                json!({ "status": "error", "error": e.code(), "message": e.to_string(),
                        "family": revoked })
            }
            Err(e) => {
                let e = KgError::from(e);
                json!({ "status": "error", "error": e.code, "message": e.message })
            }
        };
        Ok(out.to_string())
    }

    /// A single-use reset token bound to the user's current password hash.
    ///
    /// # Errors
    /// Malformed user, claims out of bounds, entropy failure.
    #[wasm_bindgen(js_name = createPasswordResetToken)]
    pub fn create_password_reset_token(
        &self,
        user_json: &str,
        now: f64,
    ) -> Result<String, KgError> {
        let user = JsUser::parse(user_json)?;
        user.require_hash()?;
        Ok(self.auth.create_password_reset_token(
            &user.as_user(),
            unix_secs(now, "options.now")?,
            &mut OsEntropy,
        )?)
    }

    /// The user id of a valid, current reset token.
    ///
    /// # Errors
    /// `token_*`, `token_mismatch`, `reset_token_stale`.
    #[wasm_bindgen(js_name = verifyPasswordResetToken)]
    pub fn verify_password_reset_token(
        &self,
        token: &str,
        user_json: &str,
        now: f64,
    ) -> Result<String, KgError> {
        let user = JsUser::parse(user_json)?;
        user.require_hash()?;
        Ok(self.auth.verify_password_reset_token(
            token,
            &user.as_user(),
            unix_secs(now, "options.now")?,
        )?)
    }

    fn sessions(&self) -> Result<&Sessions, KgError> {
        self.sessions.as_ref().ok_or_else(|| KgError {
            code: "config_invalid",
            message: "invalid config `session.secret`: sessions need a secret of at least 32 \
                      bytes (`session.secret`, or the top-level `secret`)"
                .to_owned(),
            field: Some("session.secret".to_owned()),
            claim: None,
        })
    }

    /// `{"cookie", "userId", "sessionId", "createdAt", "lastSeen", "expiresAt", "epoch"}`, in
    /// the epoch of `state_json` (the user's stored session state) when given.
    ///
    /// # Errors
    /// `session_user_id_invalid`, `entropy_unavailable`, `config_invalid` without a secret.
    #[wasm_bindgen(js_name = createSession)]
    pub fn create_session(
        &self,
        user_id: &str,
        now: f64,
        state_json: Option<String>,
    ) -> Result<String, KgError> {
        let sessions = self.sessions()?;
        let state = session_state(state_json.as_deref())?.unwrap_or_default();
        let s = sessions.create_in(
            user_id,
            &state,
            unix_secs(now, "options.now")?,
            &mut OsEntropy,
        )?;
        Ok(session_json(sessions, &s).to_string())
    }

    /// The session in a `Cookie` header, touched at `now` (its `cookie` slides the idle
    /// timeout); with `state_json`, a revoked session is refused too.
    ///
    /// # Errors
    /// `session_missing`, `session_invalid`, `session_expired`, `session_idle_timeout`,
    /// `session_revoked`.
    #[wasm_bindgen(js_name = readSession)]
    pub fn read_session(
        &self,
        cookie_header: &str,
        now: f64,
        state_json: Option<String>,
    ) -> Result<String, KgError> {
        let sessions = self.sessions()?;
        let now = unix_secs(now, "options.now")?;
        let s = match session_state(state_json.as_deref())? {
            Some(state) => sessions.read_current(cookie_header, &state, now)?,
            None => sessions.read(cookie_header, now)?,
        };
        Ok(session_json(sessions, &sessions.touch(&s, now)).to_string())
    }

    /// `state_json` with the session of `cookie_header` revoked (logout); unchanged when the
    /// cookie is missing or no longer valid.
    ///
    /// # Errors
    /// Malformed state, `config_invalid` without a session secret.
    #[wasm_bindgen(js_name = revokeSession)]
    pub fn revoke_session(
        &self,
        cookie_header: &str,
        state_json: Option<String>,
        now: f64,
    ) -> Result<String, KgError> {
        let sessions = self.sessions()?;
        let now = unix_secs(now, "options.now")?;
        let state = session_state(state_json.as_deref())?.unwrap_or_default();
        let next = match sessions.read(cookie_header, now) {
            Ok(s) => sessions.revoke(&s, &state, now),
            Err(_) => state,
        };
        Ok(json!(next).to_string())
    }

    /// `{"status": "ok", state}` or `{"status": "error", error, message, state}`: may the
    /// user change or remove the second factor now? `proof_json` is `{"code"}`,
    /// `{"password"}` or `{"authTime"}`.
    ///
    /// # Errors
    /// Malformed user, state or proof.
    #[wasm_bindgen(js_name = authorizeMfaChange)]
    pub fn authorize_mfa_change(
        &self,
        user_json: &str,
        state_json: Option<String>,
        proof_json: &str,
        now: f64,
    ) -> Result<String, KgError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        struct JsProof {
            code: Option<String>,
            password: Option<String>,
            auth_time: Option<u64>,
        }
        let now = unix_secs(now, "options.now")?;
        let user = JsUser::parse(user_json)?;
        let state = mfa_state(state_json.as_deref(), "state")?;
        let p: JsProof = parse_record(proof_json, "proof")?;
        let proof = match (&p.code, &p.password, p.auth_time) {
            (Some(c), None, None) => Proof::Code(c),
            (None, Some(pw), None) => Proof::Password(pw),
            (None, None, Some(t)) => Proof::AuthTime(t),
            _ => {
                return Err(KgError::input(
                    "proof",
                    "must have exactly one of code, password or authTime",
                ))
            }
        };
        let r = self
            .auth
            .authorize_mfa_change(&user.as_user(), &state, proof, now);
        let out = match r.outcome {
            Ok(()) => json!({ "status": "ok", "state": r.state }),
            Err(e) => {
                let e = KgError::from(e);
                json!({ "status": "error", "error": e.code, "message": e.message,
                        "state": r.state })
            }
        };
        Ok(out.to_string())
    }

    /// `{"status": "ok", state}` (store it with the new secret) or `{"status": "error",
    /// error, message}` when `code` is wrong for the new `secret`.
    ///
    /// # Errors
    /// Malformed state.
    #[wasm_bindgen(js_name = enrolMfa)]
    pub fn enrol_mfa(
        &self,
        secret: &str,
        code: &str,
        recovery_hashes: Vec<String>,
        state_json: Option<String>,
        now: f64,
    ) -> Result<String, KgError> {
        let now = unix_secs(now, "options.now")?;
        let state = mfa_state(state_json.as_deref(), "state")?;
        let out = match self
            .auth
            .enrol_mfa(&state, secret, code, recovery_hashes, now)
        {
            Ok(state) => json!({ "status": "ok", "state": state }),
            Err(e) => {
                let e = KgError::from(e);
                json!({ "status": "error", "error": e.code, "message": e.message })
            }
        };
        Ok(out.to_string())
    }

    /// A reset token for a known user, `None` (after the same work) for an unknown one.
    ///
    /// # Errors
    /// Malformed user, entropy failure.
    #[wasm_bindgen(js_name = requestPasswordReset)]
    pub fn request_password_reset(
        &self,
        user_json: Option<String>,
        now: f64,
    ) -> Result<Option<String>, KgError> {
        let now = unix_secs(now, "options.now")?;
        let user = user_json.as_deref().map(JsUser::parse).transpose()?;
        if let Some(u) = &user {
            u.require_hash()?;
        }
        let record = user.as_ref().map(JsUser::as_user);
        Ok(self
            .auth
            .request_password_reset(record.as_ref(), now, &mut OsEntropy)?)
    }

    /// `{"passwordHash", "sessionState", "mfaState"}` after a valid reset token.
    ///
    /// # Errors
    /// `token_*`, `token_mismatch`, `reset_token_stale`, password policy, malformed records.
    #[wasm_bindgen(js_name = resetPassword)]
    pub fn reset_password(
        &self,
        token: &str,
        user_json: &str,
        new_password: &str,
        mfa_state_json: Option<String>,
        session_state_json: Option<String>,
        now: f64,
    ) -> Result<String, KgError> {
        let now = unix_secs(now, "options.now")?;
        let user = JsUser::parse(user_json)?;
        user.require_hash()?;
        let mfa = mfa_state_json
            .as_deref()
            .map(|s| parse_record::<MfaState>(s, "options.mfaState"))
            .transpose()?;
        let sessions = session_state(session_state_json.as_deref())?.unwrap_or_default();
        let changed = self.auth.reset_password(
            token,
            &user.as_user(),
            new_password,
            mfa.as_ref(),
            &sessions,
            now,
            &mut OsEntropy,
        )?;
        Ok(changed_json(changed))
    }

    /// As `resetPassword`, proven by the current password instead of a token.
    ///
    /// # Errors
    /// `reauthentication_required` for a wrong current password; as `resetPassword`.
    #[wasm_bindgen(js_name = changePassword)]
    pub fn change_password(
        &self,
        user_json: &str,
        current_password: &str,
        new_password: &str,
        mfa_state_json: Option<String>,
        session_state_json: Option<String>,
    ) -> Result<String, KgError> {
        let user = JsUser::parse(user_json)?;
        user.require_hash()?;
        let mfa = mfa_state_json
            .as_deref()
            .map(|s| parse_record::<MfaState>(s, "options.mfaState"))
            .transpose()?;
        let sessions = session_state(session_state_json.as_deref())?.unwrap_or_default();
        let changed = self.auth.change_password(
            &user.as_user(),
            current_password,
            new_password,
            mfa.as_ref(),
            &sessions,
            &mut OsEntropy,
        )?;
        Ok(changed_json(changed))
    }

    /// The `Set-Cookie` value that signs out.
    ///
    /// # Errors
    /// `config_invalid` without a session secret.
    #[wasm_bindgen(js_name = destroySessionCookie)]
    pub fn destroy_session_cookie(&self) -> Result<String, KgError> {
        Ok(self.sessions()?.destroy_cookie())
    }

    /// The public JWKS (`{"keys": []}` for HMAC secrets) as JSON text.
    #[must_use]
    pub fn jwks(&self) -> String {
        self.auth.key_set().public_jwks().to_string()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use keygate::totp;

    const NOW: f64 = 1_700_000_000.0;

    fn kg() -> Keygate {
        Keygate::new(
            r#"{"secret":"0123456789abcdef0123456789abcdef",
                "password":{"timeCost":1,"memoryCost":64,"parallelism":1}}"#,
        )
        .unwrap()
    }

    fn parse(s: &str) -> Value {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn login_mfa_refresh_flow_ok() {
        let kg = kg();
        let hash = crate::hash_password(
            "correct horse",
            Some(r#"{"timeCost":1,"memoryCost":64,"parallelism":1}"#.into()),
        )
        .unwrap();
        let secret = totp::generate_secret(&mut OsEntropy).unwrap();
        let user = json!({"id": "u1", "passwordHash": hash, "roles": ["admin"],
                          "mfaEnabled": true, "mfaSecret": secret})
        .to_string();

        let r = parse(&kg.login(Some(user.clone()), "wrong", NOW).unwrap());
        assert_eq!(r, json!({"status": "invalid"}));
        assert_eq!(
            parse(&kg.login(None, "x", NOW).unwrap())["status"],
            "invalid"
        );

        let r = parse(&kg.login(Some(user.clone()), "correct horse", NOW).unwrap());
        assert_eq!(r["status"], "mfa_required");
        assert!(r.get("newPasswordHash").is_none());
        let mfa = r["mfa_token"].as_str().unwrap().to_owned();
        assert_eq!(parse(&kg.verify(&mfa, "mfa", NOW).unwrap())["sub"], "u1");

        let bad = parse(&kg.verify_mfa(&mfa, "000000", &user, None, NOW).unwrap());
        assert_eq!(bad["status"], "error");
        let state = bad["state"].to_string();
        assert_eq!(bad["state"]["failedAttempts"], 1);

        let code = totp::generate(&Default::default(), &secret, 1_700_000_000).unwrap();
        let ok = parse(&kg.verify_mfa(&mfa, &code, &user, Some(state), NOW).unwrap());
        assert_eq!(ok["status"], "ok", "{ok}");
        assert_eq!(ok["method"], "totp");
        assert_eq!(ok["tokens"]["token_type"], "Bearer");
        assert_eq!(ok["tokens"]["expires_in"], 900);
        assert!(ok["tokens"].get("family").is_none());
        let access = ok["tokens"]["access_token"].as_str().unwrap();
        let claims = parse(&kg.verify(access, "access", NOW).unwrap());
        assert_eq!(claims["roles"], json!(["admin"]));
        assert_eq!(claims["amr"], json!(["pwd", "otp"]));

        let again = parse(
            &kg.verify_mfa(&mfa, &code, &user, Some(ok["state"].to_string()), NOW)
                .unwrap(),
        );
        assert_eq!(again["error"], "mfa_token_used");

        let rt = ok["tokens"]["refresh_token"].as_str().unwrap().to_owned();
        let fam = ok["family"].to_string();
        let r1 = parse(&kg.refresh(&rt, &fam, None, NOW + 100.0).unwrap());
        assert_eq!(r1["status"], "ok");
        assert_eq!(r1["family"]["generation"], 1);
        let reuse = parse(
            &kg.refresh(&rt, &r1["family"].to_string(), None, NOW + 500.0)
                .unwrap(),
        );
        assert_eq!(reuse["error"], "refresh_reused");
        assert_eq!(reuse["family"]["revoked"], true);
        let dead = parse(
            &kg.refresh(
                r1["tokens"]["refresh_token"].as_str().unwrap(),
                &reuse["family"].to_string(),
                None,
                NOW + 501.0,
            )
            .unwrap(),
        );
        assert_eq!(dead["error"], "refresh_revoked");
        assert!(dead.get("family").is_none());
    }

    #[test]
    fn login_rehash_and_no_mfa_ok() {
        let kg = kg();
        let old = crate::hash_password(
            "correct horse",
            Some(r#"{"timeCost":2,"memoryCost":64,"parallelism":1}"#.into()),
        )
        .unwrap();
        let user = json!({"id": "u2", "passwordHash": old}).to_string();
        let r = parse(&kg.login(Some(user), "correct horse", NOW).unwrap());
        assert_eq!(r["status"], "ok");
        assert!(r["newPasswordHash"].as_str().unwrap().contains("t=1"));
        assert_eq!(r["family"]["userId"], "u2");
    }

    #[test]
    fn bad_records_fails() {
        let kg = kg();
        assert_eq!(
            kg.login(Some("{}".into()), "x", NOW)
                .unwrap_err()
                .field
                .as_deref(),
            Some("user")
        );
        assert_eq!(
            kg.login(Some(r#"{"id":"u"}"#.into()), "x", NOW)
                .unwrap_err()
                .field
                .as_deref(),
            Some("user.passwordHash")
        );
        assert_eq!(
            kg.refresh("t", r#"{"familyId":1}"#, None, NOW)
                .unwrap_err()
                .field
                .as_deref(),
            Some("family")
        );
        assert_eq!(
            kg.verify("t", "session", NOW).unwrap_err().code,
            "invalid_input"
        );
        assert_eq!(
            kg.verify("t", "access", NOW).unwrap_err().code,
            "token_malformed"
        );
        let user = r#"{"id":"u","passwordHash":"x"}"#;
        assert_eq!(
            kg.login(Some(user.into()), "x", NOW).unwrap_err().code,
            "hash_invalid"
        );
    }

    #[test]
    fn reset_and_sessions_ok() {
        let kg = kg();
        let user = r#"{"id":"u3","passwordHash":"$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"}"#;
        let t = kg.create_password_reset_token(user, NOW).unwrap();
        assert_eq!(kg.verify_password_reset_token(&t, user, NOW).unwrap(), "u3");
        let changed = r#"{"id":"u3","passwordHash":"$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$b3RoZXJvdGhlcm90aGVyIQ"}"#;
        assert_eq!(
            kg.verify_password_reset_token(&t, changed, NOW)
                .unwrap_err()
                .code,
            "reset_token_stale"
        );

        let s = parse(&kg.create_session("u3", NOW, None).unwrap());
        let cookie = s["cookie"].as_str().unwrap();
        assert!(cookie.starts_with("__Host-session="));
        let pair = cookie.split(';').next().unwrap();
        let read = parse(&kg.read_session(pair, NOW + 60.0, None).unwrap());
        assert_eq!(read["userId"], "u3");
        assert_eq!(read["lastSeen"], NOW + 60.0);
        assert_eq!(
            kg.read_session("", NOW, None).unwrap_err().code,
            "session_missing"
        );
        assert!(kg.destroy_session_cookie().unwrap().contains("Max-Age=0"));
        assert_eq!(parse(&kg.jwks()), json!({"keys": []}));
    }
}
