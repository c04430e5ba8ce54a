//! `new Keygate(config)` and the module functions' option objects: the JSON text api.js made
//! from the caller's JS values, handed to the core's documented structs
//! ([`keygate::edge_config::EdgeConfig`], [`PasswordOptions`], [`TotpOptions`]), which decide
//! what is valid. Nothing here decides: it only maps the core's errors to `KeygateError`s.

use crate::error::KgError;
use keygate::edge_config::{Edge, EdgeConfig, PasswordOptions, TotpOptions};
use keygate::password::PasswordHasher;
use keygate::totp::TotpConfig;

pub use keygate::edge_config::MAX_CONFIG_LEN;

/// The login flow and session cookies of a `new Keygate(config)`.
///
/// # Errors
/// `config_invalid` naming the first refused field as the caller wrote it.
pub fn build(json: &str) -> Result<Edge, KgError> {
    EdgeConfig::from_json(json)
        .and_then(|c| c.build())
        .map_err(KgError::config_as_written)
}

/// The hasher of `hashPassword`'s (or `needsRehash`'s) options; fields under `path`.
///
/// # Errors
/// `config_invalid` naming the field (`options.timeCost`).
pub fn password_hasher(json: &str, path: &str) -> Result<PasswordHasher, KgError> {
    PasswordOptions::from_json(json)
        .and_then(|o| o.hasher())
        .map_err(|e| KgError::config_as_written(e.within(path)))
}

/// The TOTP settings of the TOTP functions' options; fields under `path`.
///
/// # Errors
/// `config_invalid` naming the field (`options.window`).
pub fn totp_config(json: &str, path: &str) -> Result<TotpConfig, KgError> {
    TotpOptions::from_json(json)
        .and_then(|o| o.settings())
        .map_err(|e| KgError::config_as_written(e.within(path)))
}
