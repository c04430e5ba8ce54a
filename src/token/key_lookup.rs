//! Whether a token names a key a set holds, without verifying anything: the question a
//! verifier with a fetched key set asks before refetching.

use super::header::split;
use super::{Algorithm, Header, KeySet, TokenError, Validation};

/// `Ok(true)` when `keys` holds the token's key: the one named by its `kid`, or without a
/// `kid` one pinned to its algorithm. `Ok(false)` when it does not (or there are no keys).
///
/// # Errors
/// What [`super::decode`] would refuse before looking for a key: the token is too long or
/// malformed (`token_too_large`, `token_malformed`), or its `alg` is not allowed
/// (`token_algorithm_not_allowed`). No key would change those answers.
pub(crate) fn has_key(
    token: &str,
    keys: Option<&KeySet>,
    validation: &Validation,
) -> Result<bool, TokenError> {
    let seg = split(token, validation.max_token_len)?;
    let header = Header::parse(seg.header)?;
    let alg = Algorithm::from_jose(&header.alg).ok_or(TokenError::AlgorithmNotAllowed)?;
    if !validation.algorithms.contains(&alg) {
        return Err(TokenError::AlgorithmNotAllowed);
    }
    let Some(keys) = keys else {
        return Ok(false);
    };
    Ok(match header.kid.as_deref() {
        Some(kid) => keys.get(kid).is_some(),
        None => keys.keys().iter().any(|k| k.alg() == alg),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::token::fixtures::hs256;
    use crate::token::{encode, Claims};
    use crate::ErrorCode;

    #[test]
    fn has_key_ok() {
        let k1 = hs256(Some("k1"));
        let keys = KeySet::from(&k1);
        let v = Validation::default();
        let t = encode(&Claims::access("u", vec![], 1, 60), &k1).unwrap();
        assert_eq!(has_key(&t, Some(&keys), &v), Ok(true));
        assert_eq!(has_key(&t, None, &v), Ok(false));
        let other = encode(&Claims::access("u", vec![], 1, 60), &hs256(Some("k2"))).unwrap();
        assert_eq!(has_key(&other, Some(&keys), &v), Ok(false));
        // Without kid: any key of the algorithm.
        let bare = encode(&Claims::access("u", vec![], 1, 60), &hs256(None)).unwrap();
        assert_eq!(has_key(&bare, Some(&keys), &v), Ok(true));
    }

    #[test]
    fn has_key_fails() {
        let v = Validation::default();
        assert_eq!(
            has_key("x.y", None, &v).unwrap_err().code(),
            "token_malformed"
        );
        // {"alg":"none"}
        let none = "eyJhbGciOiJub25lIn0.e30.";
        assert_eq!(
            has_key(none, None, &v).unwrap_err().code(),
            "token_algorithm_not_allowed"
        );
    }
}
