//! The edge protections without Envoy: rate limits, breached and blocklisted passwords.

use crate::error::KgError;
use crate::unix_secs;
use keygate::ratelimit::{EdgeLimit, OneOrMany};
use serde_json::json;
use wasm_bindgen::prelude::wasm_bindgen;

/// Longest `limit` JSON accepted (8 quotas fit easily).
const MAX_LIMIT_JSON: usize = 4096;

/// One rate-limit decision. `limit_json`: `"5/minute"` or `["200/day", "50/hour"]` as JSON;
/// `state`: the string returned last time, or none; `now_ms`: Unix milliseconds. Returns
/// `{allowed, retryAfter, state, headers}` as JSON text.
///
/// # Errors
/// `invalid_input` for a `limit` that is neither a string nor a list of strings, or a bad
/// `now`; `config_invalid` (field `limit` / `limit[i]`) for an unreadable quota;
/// `rate_limit_state_invalid` for a state that is not this limit's.
#[wasm_bindgen(js_name = checkRateLimit)]
pub fn check_rate_limit(
    limit_json: &str,
    state: Option<String>,
    now_ms: f64,
) -> Result<String, KgError> {
    if limit_json.len() > MAX_LIMIT_JSON {
        return Err(KgError::input("limit", "is too large"));
    }
    let limit: OneOrMany<String> = serde_json::from_str(limit_json).map_err(|_| {
        KgError::input(
            "limit",
            "must be a quota like \"5/minute\" or a list like [\"200/day\", \"50/hour\"]",
        )
    })?;
    let limit = EdgeLimit::new(&limit).map_err(|e| KgError::config(e, ""))?;
    let now_ms = unix_secs(now_ms, "options.now")?;
    let d = limit
        .check(state.as_deref(), now_ms)
        .map_err(|e| KgError::from_code(&e))?;
    let mut headers = json!({
        "RateLimit-Policy": d.policy_header(),
        "RateLimit": d.ratelimit_header(),
    });
    if let (Some(secs), Some(map)) = (d.retry_after_secs(), headers.as_object_mut()) {
        map.insert("Retry-After".into(), json!(secs.to_string()));
    }
    Ok(json!({
        "allowed": d.allowed(),
        "retryAfter": d.retry_after_secs(),
        "state": d.state(),
        "headers": headers,
    })
    .to_string())
}

/// `[prefix, suffix]` (JSON) of `password`'s SHA-1 for a k-anonymity range query.
#[wasm_bindgen(js_name = breachRangeQuery)]
#[must_use]
pub fn breach_range_query(password: &str) -> String {
    let (prefix, suffix) = keygate::breach::range_query(password);
    json!([prefix, suffix]).to_string()
}

/// The count of `suffix` in the range response `body`.
///
/// # Errors
/// `breach_check_failed` when `body` is not in the range format.
#[wasm_bindgen(js_name = breachCount)]
pub fn breach_count(suffix: &str, body: &str) -> Result<f64, KgError> {
    keygate::breach::count_in_range(suffix, body)
        .map(crate::as_f64)
        .map_err(|e| KgError::from_code(&e))
}

/// Refuses `password` when it contains a word of `blocklist_json` (a JSON list of strings) or
/// `breach_count` (from `passwordBreachCount`) is above 0.
///
/// # Errors
/// `password_blocklisted`, `password_breached`; `invalid_input` for malformed arguments.
#[wasm_bindgen(js_name = checkPasswordContext)]
pub fn check_password_context(
    password: &str,
    blocklist_json: Option<String>,
    breach_count: Option<f64>,
) -> Result<(), KgError> {
    if let Some(json) = blocklist_json {
        if json.len() > crate::config::MAX_CONFIG_LEN {
            return Err(KgError::input("options.blocklist", "is too large"));
        }
        let words: Vec<String> = serde_json::from_str(&json)
            .map_err(|_| KgError::input("options.blocklist", "must be an array of strings"))?;
        keygate::breach::check_blocklist(password, &words).map_err(|e| KgError::from_code(&e))?;
    }
    if let Some(n) = breach_count {
        let n = unix_secs(n, "options.breachCount")
            .map_err(|_| KgError::input("options.breachCount", "must be a whole number ≥ 0"))?;
        keygate::breach::check_breach_count(n).map_err(|e| KgError::from_code(&e))?;
    }
    Ok(())
}

/// The rate-limit key of a client address as the filter keys it (`ip:203.0.113.7`; IPv6 by
/// its /64, canonical: `ip:2001:db8:1:2::/64`), or none when `address` is not an address.
#[wasm_bindgen(js_name = clientAddressKey)]
#[must_use]
pub fn client_address_key(address: &str) -> Option<String> {
    if address.len() > 64 {
        return None;
    }
    keygate::ratelimit::client_ip_key(address)
}
