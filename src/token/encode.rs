//! Issuing tokens.

use super::jwk::b64u_encode;
use super::{Claims, Header, SigningKey, TokenError};

/// Signs `claims` with `key` as a compact JWS. The header is
/// `{"alg": key.alg(), "kid": key.kid() (when set), "typ": "JWT"}`.
///
/// # Errors
/// [`TokenError::ClaimTooLarge`] / [`TokenError::MissingClaim`] when the claims break the
/// bounds [`super::decode`] enforces (so keygate never issues a token it would refuse);
/// [`TokenError::SigningFailed`] when signing fails.
pub fn encode(claims: &Claims, key: &SigningKey) -> Result<String, TokenError> {
    claims.check_bounds()?;
    let header = Header {
        alg: key.alg().as_str().to_owned(),
        kid: key.kid().map(str::to_owned),
        typ: Some("JWT".to_owned()),
    };
    let failed = |_| TokenError::SigningFailed {
        reason: "could not serialize the token",
    };
    let header = b64u_encode(serde_json::to_vec(&header).map_err(failed)?);
    let payload = b64u_encode(serde_json::to_vec(claims).map_err(failed)?);
    let message = format!("{header}.{payload}");
    let signature = key.sign(message.as_bytes())?;
    Ok(format!("{message}.{signature}"))
}
