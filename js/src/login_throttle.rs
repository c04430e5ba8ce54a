//! `Keygate#login` under the core's per-account throttle (`keygate::throttle`).

use crate::error::KgError;
use crate::state::{JsUser, Keygate};
use crate::unix_secs;
use keygate::flow::LoginOutcome;
use keygate::throttle::{AccountFailures, AccountThrottle};
use keygate::OsEntropy;
use serde::Deserialize;
use serde_json::{json, Value};
use wasm_bindgen::prelude::wasm_bindgen;

/// The JSON answer of `login` (as `Keygate::login` in state.rs builds it): `{status: "ok" | "mfa_required" | "invalid", …}`.
pub(crate) fn login_json(out: LoginOutcome) -> Value {
    match out {
        LoginOutcome::Ok {
            issued,
            new_password_hash,
        } => {
            let (tokens, family) = (json!(issued.tokens), json!(issued.family));
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
    }
}

/// `options.throttle` of `login`: every field optional, defaults of [`AccountThrottle`].
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ThrottleOptions {
    max_failures: Option<u32>,
    base_delay: Option<u64>,
    max_delay: Option<u64>,
}

fn throttle(json: Option<&str>) -> Result<AccountThrottle, KgError> {
    let Some(json) = json else {
        return Ok(AccountThrottle::default());
    };
    if json.len() > 4096 {
        return Err(KgError::input("options.throttle", "is too large"));
    }
    let o: ThrottleOptions = serde_json::from_str(json).map_err(|_| {
        KgError::input(
            "options.throttle",
            "must be {maxFailures?, baseDelay?, maxDelay?} with whole numbers",
        )
    })?;
    let d = AccountThrottle::default();
    AccountThrottle::new(
        o.max_failures.unwrap_or(d.max_failures()),
        o.base_delay
            .unwrap_or(keygate::throttle::DEFAULT_BASE_DELAY_SECS),
        o.max_delay
            .unwrap_or(keygate::throttle::DEFAULT_MAX_DELAY_SECS),
    )
    .map_err(|e| KgError::config(e, "options.throttle"))
}

#[wasm_bindgen]
impl Keygate {
    /// `login` with the per-account failure state `failures` (`None` for a name with none):
    /// the answer of `login` plus `failures`, the state to store (`null`: delete it).
    ///
    /// # Errors
    /// As `login`; `login_state_invalid` for an unreadable `failures`; `config_invalid` for
    /// `throttle_json` out of bounds.
    #[wasm_bindgen(js_name = loginThrottled)]
    pub fn login_throttled(
        &self,
        user_json: Option<String>,
        password: &str,
        failures: Option<String>,
        throttle_json: Option<String>,
        now: f64,
    ) -> Result<String, KgError> {
        let now = unix_secs(now, "options.now")?;
        let settings = throttle(throttle_json.as_deref())?;
        let state = failures
            .as_deref()
            .map(str::parse::<AccountFailures>)
            .transpose()
            .map_err(|e| KgError::from_code(&e))?;
        let user = user_json.as_deref().map(JsUser::parse).transpose()?;
        if let Some(u) = &user {
            u.require_hash()?;
        }
        let record = user.as_ref().map(JsUser::as_user);
        let (out, next) = self.auth.login_throttled(
            record.as_ref(),
            password,
            &settings,
            state.as_ref(),
            now,
            &mut OsEntropy,
        )?;
        let mut v = login_json(out);
        if let Some(o) = v.as_object_mut() {
            o.insert("failures".into(), json!(next.map(|s| s.to_string())));
        }
        Ok(v.to_string())
    }
}
