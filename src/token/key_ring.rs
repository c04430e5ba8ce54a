//! The keys an issuer holds while it rotates: one current key that signs, and the keys whose
//! tokens it still accepts (the previous ones, until their last token has expired).

use super::{Algorithm, Jwk, KeySet, SigningKey, VerifyingKey, MAX_KEYS};
use crate::ConfigError;

/// The current signing key and every key that verifies (the current one first). Every key has
/// its own `kid`, so a token's header names the key that checks it and a verifier fetching the
/// published JWKS knows when to refetch.
///
/// Keys of different kinds may be mixed (an `oct` HMAC key next to EdDSA ones, to migrate from
/// a shared secret to public keys): each key stays pinned to its own algorithm, so mixing never
/// lets a token choose how it is checked. Only asymmetric keys are published
/// ([`KeySet::public_jwks`]); an HMAC secret never is.
#[derive(Debug, Clone)]
pub struct KeyRing {
    current: SigningKey,
    keys: KeySet,
    algorithms: Vec<Algorithm>,
}

impl KeyRing {
    /// `current` signs; it and every key of `previous` verify.
    ///
    /// # Errors
    /// More than [`MAX_KEYS`] keys (field `""`), or a key without a `kid` or with the `kid` of
    /// an earlier one (field `[i].kid`, `i` counting `current` as 0).
    pub fn new(current: SigningKey, previous: Vec<VerifyingKey>) -> Result<Self, ConfigError> {
        let mut keys = Vec::with_capacity(previous.len() + 1);
        keys.push(current.verifying_key().clone());
        keys.extend(previous);
        if keys.len() > MAX_KEYS {
            return Err(ConfigError::new(
                "",
                format!("at most {MAX_KEYS} keys are accepted"),
            ));
        }
        for (i, key) in keys.iter().enumerate() {
            let Some(kid) = key.kid() else {
                return Err(ConfigError::new(
                    format!("[{i}].kid"),
                    "required: every key of a rotation needs its own kid",
                ));
            };
            if keys.iter().take(i).any(|k| k.kid() == Some(kid)) {
                return Err(ConfigError::new(
                    format!("[{i}].kid"),
                    "duplicate kid: every key needs its own",
                ));
            }
        }
        let mut algorithms: Vec<Algorithm> = Vec::new();
        for key in &keys {
            if !algorithms.contains(&key.alg()) {
                algorithms.push(key.alg());
            }
        }
        let keys = KeySet::from_keys(keys).map_err(|e| ConfigError::new("", e.message))?;
        Ok(Self {
            current,
            keys,
            algorithms,
        })
    }

    /// A ring from JWKs, current first. The first must be a private key (`oct` with `k`, or
    /// `OKP`/`EC` with `d`): it signs. Later ones may be private keys or only the public half
    /// (an issuer that rotated can drop the private half of its previous key).
    ///
    /// # Errors
    /// No keys (field `""`); a bad key as `[i].<member>`; then as [`KeyRing::new`].
    pub fn from_jwks(jwks: &[Jwk]) -> Result<Self, ConfigError> {
        let Some((first, rest)) = jwks.split_first() else {
            return Err(ConfigError::new(
                "",
                "at least one key is required: the first signs",
            ));
        };
        if jwks.len() > MAX_KEYS {
            return Err(ConfigError::new(
                "",
                format!("at most {MAX_KEYS} keys are accepted"),
            ));
        }
        if first.kty != "oct" && first.d.is_none() {
            return Err(ConfigError::new(
                "[0].d",
                "required: the first key signs, so it must be a private key",
            ));
        }
        let current = SigningKey::from_jwk(first).map_err(|e| e.within("[0]"))?;
        let previous = rest
            .iter()
            .enumerate()
            .map(|(j, jwk)| {
                let at = format!("[{}]", j + 1);
                if jwk.kty == "oct" || jwk.d.is_some() {
                    SigningKey::from_jwk(jwk).map(|k| k.verifying_key().clone())
                } else {
                    VerifyingKey::from_jwk(jwk)
                }
                .map_err(|e| e.within(&at))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(current, previous)
    }

    /// The key that signs new tokens.
    #[must_use]
    pub const fn current(&self) -> &SigningKey {
        &self.current
    }

    /// Every key that verifies, the current one first.
    #[must_use]
    pub const fn key_set(&self) -> &KeySet {
        &self.keys
    }

    /// The algorithms of the keys, each once (what a verifier of this ring allows).
    #[must_use]
    pub fn algorithms(&self) -> &[Algorithm] {
        &self.algorithms
    }
}

impl From<SigningKey> for KeyRing {
    /// A ring of one key, which may have no `kid`.
    fn from(current: SigningKey) -> Self {
        let keys = KeySet::single(current.verifying_key().clone());
        let algorithms = vec![current.alg()];
        Self {
            current,
            keys,
            algorithms,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::token::fixtures::hs256;
    use crate::token::{decode, encode, Claims, TokenError, Validation};
    use crate::SeededEntropy;

    fn ed(kid: &str, seed: u64) -> SigningKey {
        SigningKey::generate(
            Algorithm::EdDSA,
            Some(kid.into()),
            &mut SeededEntropy::new(seed),
        )
        .unwrap()
    }

    fn validation(ring: &KeyRing) -> Validation {
        Validation {
            algorithms: ring.algorithms().to_vec(),
            ..Validation::default()
        }
    }

    #[test]
    fn rotation_ok() {
        let (new, old) = (ed("2", 2), ed("1", 1));
        let ring = KeyRing::from_jwks(&[
            new.to_private_jwk(),
            old.public_jwk().unwrap(), // the previous key's public half is enough
        ])
        .unwrap();
        assert_eq!(ring.current().kid(), Some("2"));
        let claims = Claims::access("u", vec![], 100, 60);
        let v = validation(&ring);
        for signer in [&new, &old] {
            let t = encode(&claims, signer).unwrap();
            assert_eq!(decode(&t, ring.key_set(), &v, 110).unwrap().sub, "u");
        }
        let jwks = ring.key_set().public_jwks();
        let kids: Vec<_> = jwks.keys.iter().map(|k| k.kid.as_deref()).collect();
        assert_eq!(kids, [Some("2"), Some("1")]);
        assert!(jwks.keys.iter().all(|k| k.d.is_none()));
        // Retired: a ring without the old key refuses its tokens.
        let after = KeyRing::from_jwks(&[new.to_private_jwk()]).unwrap();
        let t = encode(&claims, &old).unwrap();
        assert_eq!(
            decode(&t, after.key_set(), &validation(&after), 110).unwrap_err(),
            TokenError::UnknownKey
        );
    }

    #[test]
    fn mixed_hmac_and_eddsa_ok() {
        let (ed2, hs) = (ed("ed", 2), hs256(Some("hs")));
        let ring = KeyRing::from_jwks(&[ed2.to_private_jwk(), hs.to_private_jwk()]).unwrap();
        assert_eq!(ring.algorithms(), [Algorithm::EdDSA, Algorithm::HS256]);
        let v = validation(&ring);
        let claims = Claims::access("u", vec![], 100, 60);
        for signer in [&ed2, &hs] {
            assert!(decode(&encode(&claims, signer).unwrap(), ring.key_set(), &v, 110).is_ok());
        }
        // The HMAC secret is never published.
        let jwks = ring.key_set().public_jwks();
        assert_eq!(jwks.keys.len(), 1);
        assert!(!jwks.to_string().contains("\"k\""));
        // A token naming the HMAC key's kid but signed as EdDSA is refused: keys stay pinned.
        let evil = SigningKey::generate(
            Algorithm::EdDSA,
            Some("hs".into()),
            &mut SeededEntropy::new(9),
        )
        .unwrap();
        let t = encode(&claims, &evil).unwrap();
        assert_eq!(
            decode(&t, ring.key_set(), &v, 110).unwrap_err(),
            TokenError::AlgorithmNotAllowed
        );
    }

    #[test]
    fn bad_rings_fails() {
        let field = |jwks: &[Jwk]| KeyRing::from_jwks(jwks).unwrap_err().field;
        let (a, b) = (ed("a", 1), ed("b", 2));
        assert_eq!(field(&[]), "");
        assert_eq!(field(&[a.public_jwk().unwrap()]), "[0].d");
        assert_eq!(
            field(&[
                a.to_private_jwk(),
                b.to_private_jwk(),
                ed("a", 3).to_private_jwk()
            ]),
            "[2].kid"
        );
        let mut no_kid = b.to_private_jwk();
        no_kid.kid = None;
        assert_eq!(field(&[a.to_private_jwk(), no_kid]), "[1].kid");
        let mut short = hs256(Some("h")).to_private_jwk();
        short.k = Some("c2hvcnQ".into());
        assert_eq!(field(&[a.to_private_jwk(), short]), "[1].k");
        let mut bad_x = b.to_private_jwk();
        bad_x.x = a.public_jwk().unwrap().x;
        assert_eq!(field(&[bad_x]), "[0].x");
        let many: Vec<Jwk> = (0..=MAX_KEYS)
            .map(|i| hs256(Some(&format!("k{i}"))).to_private_jwk())
            .collect();
        assert_eq!(field(&many), "");
        assert!(KeyRing::from_jwks(&many[..MAX_KEYS]).is_ok());
        // One key without kid is fine outside a ring, not inside one.
        assert!(KeyRing::new(hs256(None), vec![]).is_err());
        assert_eq!(KeyRing::from(hs256(None)).algorithms(), [Algorithm::HS256]);
    }
}
