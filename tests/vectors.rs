//! Known answers from independent implementations (tests/vectors/vectors.json, produced by
//! argon2-cffi, PyJWT and pyotp through tests/vectors/generate.py) checked against the core.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use keygate::password::{Params, PasswordHasher, PasswordPolicy};
use keygate::token::{decode, encode, Algorithm, Claims, Jwks, KeySet, SigningKey, Validation};
use keygate::totp::{self, TotpAlgorithm, TotpConfig};
use keygate::ErrorCode;
use serde_json::Value;

fn vectors() -> Value {
    serde_json::from_str(include_str!("vectors/vectors.json")).unwrap()
}

/// The public test keys plus the shared secret, pinned (as every key is) to one HMAC alg.
fn all_keys(v: &Value, hmac_alg: &str) -> KeySet {
    let mut jwks: Jwks = serde_json::from_value(v["jwt"]["public_jwks"].clone()).unwrap();
    let mut hs = v["jwt"]["hs_jwk"].clone();
    hs["alg"] = hmac_alg.into();
    jwks.keys.push(serde_json::from_value(hs).unwrap());
    KeySet::from_jwks(&jwks).unwrap()
}

#[test]
fn argon2_cffi_hashes_verify_ok() {
    for case in vectors()["argon2"].as_array().unwrap() {
        let params = Params::new(
            case["time_cost"].as_u64().unwrap() as u32,
            case["memory_cost"].as_u64().unwrap() as u32,
            case["parallelism"].as_u64().unwrap() as u32,
        )
        .unwrap();
        let hasher = PasswordHasher::new(params, PasswordPolicy::default());
        let phc = case["phc"].as_str().unwrap();
        let password = case["password"].as_str().unwrap();
        assert!(hasher.verify(phc, password).unwrap(), "{phc}");
        assert!(!hasher.verify(phc, &format!("{password}!")).unwrap());
        assert!(!hasher.needs_rehash(phc).unwrap(), "same params: no rehash");
        let seed = PasswordHasher::new(Params::default(), PasswordPolicy::default());
        let seed_params = (
            params.time_cost(),
            params.memory_cost(),
            params.parallelism(),
        ) == (3, 65536, 4);
        assert_eq!(seed.needs_rehash(phc).unwrap(), !seed_params);
    }
}

#[test]
fn pyjwt_tokens_decode_as_expected_ok() {
    let v = vectors();
    let validation = Validation::default();
    let tokens = v["jwt"]["tokens"].as_array().unwrap();
    assert!(tokens.len() >= 12);
    for t in tokens {
        let name = t["name"].as_str().unwrap();
        let alg = t["alg"].as_str().unwrap();
        let keys = all_keys(&v, if alg.starts_with("HS") { alg } else { "HS256" });
        let mut val = validation.clone();
        if name == "iss_aud" {
            val.issuer = Some("https://auth.example.com".into());
            val.audiences = vec!["api".into()];
        }
        let got = decode(
            t["token"].as_str().unwrap(),
            &keys,
            &val,
            t["now"].as_u64().unwrap(),
        );
        match t["expect"].as_str().unwrap() {
            "ok" => {
                let claims = got.unwrap_or_else(|e| panic!("{name}: {e}"));
                let want: Claims = serde_json::from_value(t["claims"].clone()).unwrap();
                assert_eq!(claims, want, "{name}");
            }
            code => assert_eq!(got.unwrap_err().code(), code, "{name}"),
        }
    }
    // The HS256-pinned key refuses the same secret used with HS384.
    let hs384 = tokens.iter().find(|t| t["alg"] == "HS384").unwrap();
    let got = decode(
        hs384["token"].as_str().unwrap(),
        &all_keys(&v, "HS256"),
        &validation,
        hs384["now"].as_u64().unwrap(),
    );
    assert_eq!(got.unwrap_err().code(), "token_algorithm_not_allowed");
}

#[test]
fn core_reproduces_pyjwt_deterministic_signatures_ok() {
    let v = vectors();
    let private: Jwks = serde_json::from_value(v["jwt"]["private_jwks"].clone()).unwrap();
    let mut hs = v["jwt"]["hs_jwk"].clone();
    for t in v["jwt"]["tokens"].as_array().unwrap() {
        let alg = t["alg"].as_str().unwrap();
        let name = t["name"].as_str().unwrap();
        if !name.starts_with("access_") {
            continue;
        }
        let key = match alg {
            "HS256" | "HS384" | "HS512" => {
                hs["alg"] = alg.into();
                SigningKey::from_jwk(&serde_json::from_value(hs.clone()).unwrap()).unwrap()
            }
            "EdDSA" => SigningKey::from_jwk(&private.keys[0]).unwrap(),
            _ => continue, // ES256 is randomized; RS256 is verify-only
        };
        let claims: Claims = serde_json::from_value(t["claims"].clone()).unwrap();
        let ours = encode(&claims, &key).unwrap();
        // Same claims and key: HMAC and Ed25519 are deterministic, so the signature must
        // equal PyJWT's (header member order may differ, so compare what is signed over).
        let theirs = t["token"].as_str().unwrap();
        let keys = KeySet::single(key.verifying_key().clone());
        let now = t["now"].as_u64().unwrap();
        let a = decode(&ours, &keys, &Validation::default(), now).unwrap();
        let b = decode(theirs, &keys, &Validation::default(), now).unwrap();
        assert_eq!(a, b, "{name}");
    }
}

#[test]
fn pyotp_codes_match_ok() {
    let v = vectors();
    let codes = v["totp"]["codes"].as_array().unwrap();
    assert_eq!(codes.len(), 24);
    for c in codes {
        let alg = match c["algorithm"].as_str().unwrap() {
            "sha1" => TotpAlgorithm::Sha1,
            "sha256" => TotpAlgorithm::Sha256,
            _ => TotpAlgorithm::Sha512,
        };
        let cfg = TotpConfig::new(alg, c["digits"].as_u64().unwrap() as u8, 30, 1).unwrap();
        let secret = c["secret"].as_str().unwrap();
        let time = c["time"].as_u64().unwrap();
        let code = c["code"].as_str().unwrap();
        assert_eq!(totp::generate(&cfg, secret, time).unwrap(), code);
        assert_eq!(
            totp::verify(&cfg, secret, code, time, None).unwrap(),
            time / 30
        );
        assert_eq!(
            totp::verify(&cfg, secret, code, time, Some(time / 30))
                .unwrap_err()
                .code(),
            "totp_replayed"
        );
    }
}

#[test]
fn pyotp_provisioning_uri_matches_ok() {
    let v = vectors();
    let u = &v["totp"]["uri"];
    let ours = totp::provisioning_uri(
        &TotpConfig::default(),
        u["secret"].as_str().unwrap(),
        u["account"].as_str().unwrap(),
        u["issuer"].as_str().unwrap(),
    )
    .unwrap();
    assert_eq!(ours, u["uri"].as_str().unwrap());
}

#[test]
fn rfc7515_hs256_and_rs256_algorithms_parse_ok() {
    for (s, a) in [
        ("HS256", Algorithm::HS256),
        ("EdDSA", Algorithm::EdDSA),
        ("RS256", Algorithm::RS256),
    ] {
        assert_eq!(s.parse::<Algorithm>().unwrap(), a);
    }
    assert!("none".parse::<Algorithm>().is_err());
}
