//! The keys a verifier trusts, each pinned to its algorithm.

use std::str::FromStr;

use super::{Jwks, SigningKey, VerifyingKey};
use crate::ConfigError;

/// Most keys in one [`KeySet`].
pub const MAX_KEYS: usize = 64;

/// A bounded set of verifying keys with unique `kid`s. A key only ever verifies its own
/// algorithm.
#[derive(Debug, Clone)]
pub struct KeySet {
    keys: Vec<VerifyingKey>,
}

impl KeySet {
    /// Builds a set from keys.
    ///
    /// # Errors
    /// No keys, more than [`MAX_KEYS`], or two keys with the same `kid` (field `keys[i].kid`).
    pub fn from_keys(keys: Vec<VerifyingKey>) -> Result<Self, ConfigError> {
        if keys.is_empty() {
            return Err(ConfigError::new("keys", "at least one key is required"));
        }
        if keys.len() > MAX_KEYS {
            return Err(ConfigError::new(
                "keys",
                format!("at most {MAX_KEYS} keys are accepted"),
            ));
        }
        for (i, key) in keys.iter().enumerate() {
            let dup = key.kid().is_some()
                && keys
                    .iter()
                    .take(i)
                    .any(|earlier| earlier.kid() == key.kid());
            if dup {
                return Err(ConfigError::new(
                    format!("keys[{i}].kid"),
                    "duplicate kid: every key needs its own",
                ));
            }
        }
        Ok(Self { keys })
    }

    /// Builds a set from a JWK Set; see [`VerifyingKey::from_jwk`] for what each key needs.
    /// Private members are ignored.
    ///
    /// # Errors
    /// As [`KeySet::from_keys`]; a bad key is reported as `keys[i].<member>`.
    pub fn from_jwks(jwks: &Jwks) -> Result<Self, ConfigError> {
        if jwks.keys.len() > MAX_KEYS {
            return Err(ConfigError::new(
                "keys",
                format!("at most {MAX_KEYS} keys are accepted"),
            ));
        }
        let keys = jwks
            .keys
            .iter()
            .enumerate()
            .map(|(i, jwk)| {
                VerifyingKey::from_jwk(jwk).map_err(|e| e.within(&format!("keys[{i}]")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Self::from_keys(keys)
    }

    /// A set holding one key.
    #[must_use]
    pub fn single(key: VerifyingKey) -> Self {
        Self { keys: vec![key] }
    }

    /// The keys, in the order given.
    #[must_use]
    pub fn keys(&self) -> &[VerifyingKey] {
        &self.keys
    }

    /// The key with this `kid`.
    #[must_use]
    pub fn get(&self, kid: &str) -> Option<&VerifyingKey> {
        self.keys.iter().find(|k| k.kid() == Some(kid))
    }

    /// The public JWK Set to publish (e.g. at `/.well-known/jwks.json`); HMAC keys are never
    /// included.
    #[must_use]
    pub fn public_jwks(&self) -> Jwks {
        Jwks {
            keys: self
                .keys
                .iter()
                .filter_map(VerifyingKey::public_jwk)
                .collect(),
        }
    }
}

impl From<&SigningKey> for KeySet {
    fn from(key: &SigningKey) -> Self {
        Self::single(key.verifying_key().clone())
    }
}

impl FromStr for KeySet {
    type Err = ConfigError;

    /// Parses JWKS JSON text (at most [`super::jwk::MAX_JWKS_LEN`] bytes).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_jwks(&s.parse::<Jwks>()?)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::token::fixtures::{hs256, SECRET};
    use crate::token::{Algorithm, Jwk};
    use crate::SeededEntropy;
    use proptest::prelude::*;

    #[test]
    fn names_the_bad_key_fails() {
        let text = r#"{"keys":[
            {"kty":"OKP","crv":"Ed25519","kid":"a","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"kty":"oct","kid":"b","alg":"HS256","k":"a2V5Z2F0ZS10ZXN0LXNlY3JldC0wMTIzNDU2Nzg5YWI"},
            {"kty":"oct","kid":"c","alg":"HS256","k":"c2hvcnQ"}]}"#;
        let e = text.parse::<KeySet>().unwrap_err();
        assert_eq!(e.field, "keys[2].k");
        assert_eq!(e.message, "HS256 secret must be at least 32 bytes");
        let no_alg =
            r#"{"keys":[{"kty":"oct","k":"a2V5Z2F0ZS10ZXN0LXNlY3JldC0wMTIzNDU2Nzg5YWI"}]}"#;
        let e = no_alg.parse::<KeySet>().unwrap_err();
        assert_eq!(e.field, "keys[0].alg");
        assert!(e.message.contains("set alg to HS256/384/512"));
    }

    #[test]
    fn duplicate_kid_fails() {
        let a = hs256(Some("same"));
        let b = SigningKey::from_secret(&[9u8; 32], Algorithm::HS384, Some("same".into())).unwrap();
        let e = KeySet::from_keys(vec![a.verifying_key().clone(), b.verifying_key().clone()])
            .unwrap_err();
        assert_eq!(e.field, "keys[1].kid");
        // Keys without kid may repeat.
        let c = hs256(None);
        assert!(
            KeySet::from_keys(vec![c.verifying_key().clone(), c.verifying_key().clone()]).is_ok()
        );
    }

    #[test]
    fn bounds_fails() {
        assert_eq!(KeySet::from_keys(vec![]).unwrap_err().field, "keys");
        assert!(r#"{"keys":[]}"#.parse::<KeySet>().is_err());
        let k = hs256(None).verifying_key().clone();
        assert!(KeySet::from_keys(vec![k.clone(); MAX_KEYS]).is_ok());
        assert!(KeySet::from_keys(vec![k; MAX_KEYS + 1]).is_err());
        let jwk = Jwk {
            kty: "oct".into(),
            alg: Some("HS256".into()),
            k: Some(crate::token::jwk::b64u_encode(SECRET)),
            ..Jwk::default()
        };
        let many = Jwks {
            keys: vec![jwk; MAX_KEYS + 1],
        };
        assert_eq!(KeySet::from_jwks(&many).unwrap_err().field, "keys");
    }

    #[test]
    fn public_jwks_round_trip_ok() {
        let mut rng = SeededEntropy::new(3);
        let ed = SigningKey::generate(Algorithm::EdDSA, Some("ed".into()), &mut rng).unwrap();
        let es = SigningKey::generate(Algorithm::ES256, Some("es".into()), &mut rng).unwrap();
        let set = KeySet::from_keys(vec![
            ed.verifying_key().clone(),
            es.verifying_key().clone(),
            hs256(Some("hs")).verifying_key().clone(),
        ])
        .unwrap();
        let public = set.public_jwks();
        assert_eq!(public.keys.len(), 2, "HMAC keys are never published");
        let text = public.to_string();
        assert!(!text.contains("\"d\"") && !text.contains("\"k\""));
        let again: KeySet = text.parse().unwrap();
        assert_eq!(again.public_jwks(), public);
        assert_eq!(again.get("es").unwrap().alg(), Algorithm::ES256);
        assert!(again.get("hs").is_none());
        // Private members in a JWKS are ignored when verifying.
        let private = Jwks {
            keys: vec![ed.to_private_jwk()],
        };
        let set = KeySet::from_jwks(&private).unwrap();
        assert!(set.public_jwks().keys[0].d.is_none());
    }

    proptest! {
        #[test]
        fn from_str_never_panics(s in ".*") {
            let _ = s.parse::<KeySet>();
        }

        #[test]
        fn from_jsonish_never_panics(
            s in r#"\{"keys":\[(\{("(kty|kid|alg|use|k|crv|x|y|d|n|e)":("(oct|OKP|EC|RSA|HS256|EdDSA|ES256|RS256|Ed25519|P-256|sig|enc)"|"[A-Za-z0-9_-]{0,60}"|[0-9]{1,3}|null),?){0,8}\},?){0,4}\]\}"#
        ) {
            let _ = s.parse::<KeySet>().map(|k| k.public_jwks());
        }
    }
}
