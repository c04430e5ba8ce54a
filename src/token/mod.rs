//! JWTs: claims, keys (JWK/JWKS/PEM), signing and verification.
//!
//! Signatures come from the RustCrypto crates (`signature.rs` says why not `jsonwebtoken`);
//! every other check (length, shape, algorithm pinning, key choice, `exp`/`nbf`/`iat` against
//! the caller's `now`, `iss`, `aud`, `type`, sizes) is done here so the clock is always an
//! argument.

mod algorithm;
mod claims;
mod custom_claims;
pub mod dangerous;
mod decode;
mod encode;
mod errors;
mod header;
mod jwk;
mod key_lookup;
mod key_ring;
mod key_set;
mod keys;
mod signature;
mod validation;

pub use algorithm::Algorithm;
pub use claims::{
    Claims, TokenType, MAX_AMR, MAX_AMR_LEN, MAX_AUDIENCES, MAX_EXTRA_CLAIMS, MAX_ID_LEN,
    MAX_PERMISSIONS, MAX_PERMISSION_LEN, MAX_ROLES, MAX_ROLE_LEN, MAX_SUB_LEN, MAX_URI_CLAIM_LEN,
};
pub use custom_claims::{CustomClaims, MAX_CUSTOM_CLAIMS_LEN};
pub use decode::decode;
pub use encode::encode;
pub use errors::TokenError;
pub use header::{Header, MAX_HEADER_LEN};
pub use jwk::{Jwk, Jwks, MAX_JWKS_LEN, MAX_JWK_LEN};
pub(crate) use key_lookup::has_key;
pub use key_ring::KeyRing;
pub use key_set::{KeySet, MAX_KEYS};
pub use keys::{
    SigningKey, VerifyingKey, MAX_HMAC_SECRET_LEN, MAX_KID_LEN, MAX_PEM_LEN, MAX_RSA_BITS,
    MIN_HMAC_SECRET_LEN, MIN_RSA_BITS,
};
pub use validation::{
    Validation, DEFAULT_LEEWAY_SECS, DEFAULT_MAX_TOKEN_LEN, MAX_LEEWAY_SECS, MAX_MAX_TOKEN_LEN,
    MIN_MAX_TOKEN_LEN,
};

#[cfg(test)]
mod fixtures;
