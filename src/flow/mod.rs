//! The seed's login story as pure functions over caller-supplied records: login → MFA →
//! tokens → refresh rotation, password-reset tokens, and the fresh proof a change of factor needs.
//!
//! Every piece of state that must persist (the user record, the MFA state, the refresh-token
//! family) comes in as an argument and the new value comes out in the result, so any store
//! works (KV, Durable Objects, SQL, a map). Nothing here reads a clock or a random source.

mod authenticator;
mod enrolment;
mod error;
mod limits;
mod login;
mod mfa;
mod refresh;
mod reset;
#[cfg(test)]
mod tests;

pub use authenticator::{Authenticator, TokenPair, User};
pub use enrolment::{MfaChange, Proof, FRESH_AUTH_WINDOW};
pub use error::FlowError;
pub use limits::*;
pub use login::LoginOutcome;
pub use mfa::{MfaMethod, MfaResult, MfaState};
pub use refresh::{Issued, RefreshFamily, RefreshOutcome};
pub use reset::PasswordChanged;

use crate::entropy::{Entropy, EntropyError};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// 128 random bits, base64url: token ids and family ids.
fn random_id(rng: &mut impl Entropy) -> Result<String, EntropyError> {
    Ok(URL_SAFE_NO_PAD.encode(rng.bytes::<16>()?))
}

/// A reset token carries a digest of the password hash, never the hash itself.
fn password_fingerprint(phc: &str) -> String {
    let digest = Sha256::digest(format!("keygate.reset.v1\0{phc}"));
    URL_SAFE_NO_PAD.encode(&digest[..16])
}

fn ct_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}
