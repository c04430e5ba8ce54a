//! Operations that skip checks. Each use needs a reason written next to it.

use super::decode::verify_signature;
use super::header::split;
use super::validation::MAX_MAX_TOKEN_LEN;
use super::{Header, KeySet, TokenError, Validation};

/// Reads a token's header **without verifying anything** (e.g. to log or route on `kid`).
/// Never base a decision on it.
///
/// # Errors
/// `token_too_large` beyond 64 KiB, `token_malformed` for a bad shape or header.
pub fn decode_unverified_header(token: &str) -> Result<Header, TokenError> {
    Header::parse(split(token, MAX_MAX_TOKEN_LEN)?.header)
}

/// Checks length, shape, algorithm, key and signature exactly like [`super::decode`], then
/// returns the raw payload bytes **without any claim check** (no `exp`, `type`, `iss`, `aud`).
/// For JWS payloads that are not keygate claims.
///
/// # Errors
/// As [`super::decode`] up to and including `token_invalid`.
pub fn verify_signature_only(
    token: &str,
    keys: &KeySet,
    validation: &Validation,
) -> Result<Vec<u8>, TokenError> {
    verify_signature(token, keys, validation)
}

/// Stops refusing tokens whose `nbf` is in the future.
pub fn skip_nbf_check(validation: &mut Validation) {
    validation.check_nbf = false;
}

/// Stops refusing tokens whose `iat` is in the future.
pub fn skip_iat_check(validation: &mut Validation) {
    validation.check_iat = false;
}
