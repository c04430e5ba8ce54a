//! keygate for JavaScript: the wasm-bindgen shell of the core.
//!
//! This crate only translates: JS strings and numbers in, core calls, JSON text or primitives
//! out. Every decision is the core's. The hand-written JS in `js/lib/` validates argument
//! types, turns `Date`s into Unix seconds, parses the JSON results and turns thrown errors into
//! `KeygateError`s; `js/index.d.ts` documents the public API.
//!
//! Raw functions here take `now` as Unix seconds (`f64`, whole, `0..=2^53`), options and records
//! as JSON text, and return JSON text for objects. Errors are JS `Error`s carrying `code`
//! (the core's stable code), and `field` / `claim` when known.

mod config;
mod edge_fns;
mod error;
mod login_throttle;
mod module_fns;
mod state;

pub use edge_fns::*;
pub use error::KgError;
pub use module_fns::*;
pub use state::Keygate;

use wasm_bindgen::JsValue;

impl From<KgError> for JsValue {
    fn from(e: KgError) -> Self {
        let err = js_sys::Error::new(&e.message);
        err.set_name("KeygateError");
        let obj: &JsValue = err.as_ref();
        // Reflect::set only fails on frozen or proxy targets; a fresh Error is neither.
        let _ = js_sys::Reflect::set(obj, &"code".into(), &e.code.into());
        if let Some(field) = &e.field {
            let _ = js_sys::Reflect::set(obj, &"field".into(), &field.into());
        }
        if let Some(claim) = e.claim {
            let _ = js_sys::Reflect::set(obj, &"claim".into(), &claim.into());
        }
        err.into()
    }
}

/// Largest `now` accepted: 2^53, where `f64` stops holding whole numbers exactly.
const MAX_NOW: f64 = 9_007_199_254_740_992.0;

/// Unix seconds from the JS side.
///
/// # Errors
/// `invalid_input` for NaN, infinities, negatives, fractions or values past 2^53.
pub(crate) fn unix_secs(now: f64, field: &str) -> Result<u64, KgError> {
    if now.is_finite() && (0.0..=MAX_NOW).contains(&now) && now.fract() == 0.0 {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        Ok(now as u64)
    } else {
        Err(KgError::input(
            field,
            "must be a whole number of Unix seconds (use a valid Date)",
        ))
    }
}

/// A JSON number for a `u64` that may exceed 2^53 only in corrupt state.
pub(crate) fn as_f64(n: u64) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let f = n as f64;
    f
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn unix_secs_ok() {
        assert_eq!(unix_secs(0.0, "now").unwrap(), 0);
        assert_eq!(unix_secs(1_700_000_000.0, "now").unwrap(), 1_700_000_000);
        assert_eq!(unix_secs(MAX_NOW, "now").unwrap(), 1 << 53);
    }

    #[test]
    fn unix_secs_fails() {
        for bad in [f64::NAN, f64::INFINITY, -1.0, 0.5, MAX_NOW * 2.0] {
            assert_eq!(unix_secs(bad, "now").unwrap_err().code, "invalid_input");
        }
    }
}
