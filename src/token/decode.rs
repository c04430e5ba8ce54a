//! Verifying tokens. Time is an argument: nothing here reads a clock.

use super::claims::Members;
use super::header::split;
use super::jwk::b64u_decode;
use super::{Algorithm, Claims, Header, KeySet, TokenError, Validation};

/// Verifies `token` against `keys` and checks its claims at time `now` (Unix seconds).
///
/// In order: length ([`Validation::max_token_len`]) → shape and header → header `alg` in
/// [`Validation::algorithms`] → key (by `kid`, else every key of that algorithm) whose pinned
/// algorithm equals the header's → signature → required claims and sizes → `type` → `exp` →
/// `nbf` → `iat` → `iss` → `aud`.
///
/// # Errors
/// The first failing check, as a [`TokenError`] (`token_too_large`, `token_malformed`,
/// `token_algorithm_not_allowed`, `token_unknown_key`, `token_invalid`,
/// `token_missing_claim`, `token_claim_too_large`, `token_wrong_type`, `token_expired`,
/// `token_not_yet_valid`, `token_issuer_invalid`, `token_audience_invalid`).
pub fn decode(
    token: &str,
    keys: &KeySet,
    validation: &Validation,
    now: u64,
) -> Result<Claims, TokenError> {
    let payload = verify_signature(token, keys, validation)?;
    let claims = parse_claims(&payload)?;
    check_claims(&claims, validation, now)?;
    Ok(claims)
}

/// Everything up to and including the signature; returns the decoded payload bytes.
pub(crate) fn verify_signature(
    token: &str,
    keys: &KeySet,
    validation: &Validation,
) -> Result<Vec<u8>, TokenError> {
    let seg = split(token, validation.max_token_len)?;
    let header = Header::parse(seg.header)?;
    let alg = Algorithm::from_jose(&header.alg).ok_or(TokenError::AlgorithmNotAllowed)?;
    if !validation.algorithms.contains(&alg) {
        return Err(TokenError::AlgorithmNotAllowed);
    }
    let message = seg.message.as_bytes();
    match header.kid.as_deref() {
        Some(kid) => {
            let key = keys.get(kid).ok_or(TokenError::UnknownKey)?;
            // The key's pinned algorithm, never the header's, decides how it is used.
            if key.alg() != alg {
                return Err(TokenError::AlgorithmNotAllowed);
            }
            if !key.verify(message, seg.signature) {
                return Err(TokenError::Invalid);
            }
        }
        None => {
            // At most MAX_KEYS candidates: the set is bounded at construction.
            let mut candidates = keys.keys().iter().filter(|k| k.alg() == alg).peekable();
            if candidates.peek().is_none() {
                return Err(TokenError::AlgorithmNotAllowed);
            }
            if !candidates.any(|k| k.verify(message, seg.signature)) {
                return Err(TokenError::Invalid);
            }
        }
    }
    b64u_decode(seg.payload).ok_or(TokenError::Malformed {
        reason: "payload is not base64url",
    })
}

fn parse_claims(payload: &[u8]) -> Result<Claims, TokenError> {
    let members: Members = serde_json::from_slice(payload).map_err(|_| TokenError::Malformed {
        reason: "claims are not a JSON object with unique members",
    })?;
    members.into_claims()
}

fn check_claims(c: &Claims, v: &Validation, now: u64) -> Result<(), TokenError> {
    c.check_bounds()?;
    if c.token_type != v.token_type {
        return Err(TokenError::WrongType {
            expected: v.token_type,
            found: c.token_type,
        });
    }
    check_times(c, v, now)?;
    check_issuer_audience(c, v)
}

/// The time checks of [`decode`] alone (`exp`, `nbf`, `iat` at `now`, with the leeway): what a
/// verified-token cache re-checks on every hit.
///
/// # Errors
/// `token_expired` or `token_not_yet_valid`.
pub fn check_times(c: &Claims, v: &Validation, now: u64) -> Result<(), TokenError> {
    // Fields are public, so a hand-built Validation may skip `check()`: clamp here so no
    // leeway can switch the time checks off (that needs `dangerous`).
    let leeway = v.leeway.min(super::validation::MAX_LEEWAY_SECS);
    if now > c.exp.saturating_add(leeway) {
        return Err(TokenError::Expired);
    }
    let horizon = now.saturating_add(leeway);
    if v.check_nbf && c.nbf.is_some_and(|nbf| nbf > horizon) {
        return Err(TokenError::NotYetValid { claim: "nbf" });
    }
    if v.check_iat && c.iat > horizon {
        return Err(TokenError::NotYetValid { claim: "iat" });
    }
    Ok(())
}

fn check_issuer_audience(c: &Claims, v: &Validation) -> Result<(), TokenError> {
    if let Some(expected) = &v.issuer {
        match &c.iss {
            None => return Err(TokenError::MissingClaim { claim: "iss" }),
            Some(iss) if iss != expected => return Err(TokenError::IssuerInvalid),
            Some(_) => {}
        }
    }
    if v.audiences.is_empty() {
        if !c.aud.is_empty() {
            return Err(TokenError::AudienceInvalid);
        }
    } else if c.aud.is_empty() {
        return Err(TokenError::MissingClaim { claim: "aud" });
    } else if !c.aud.iter().any(|a| v.audiences.contains(a)) {
        return Err(TokenError::AudienceInvalid);
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::token::dangerous;
    use crate::token::fixtures::{hs256, sign_raw, RSA_SPKI_PEM, SECRET, VECTORS};
    use crate::token::jwk::b64u_encode;
    use crate::token::{encode, Jwk, Jwks, SigningKey, TokenType, VerifyingKey};
    use crate::{ErrorCode, SeededEntropy};
    use proptest::prelude::*;

    const NOW: u64 = 1_700_000_000;

    #[test]
    fn huge_leeway_is_clamped_fails() {
        let sk = hs256(Some("hs"));
        let claims = Claims::access("u", vec![], NOW - 10 * 365 * 86_400, 900);
        let token = crate::token::encode(&claims, &sk).unwrap();
        let v = Validation {
            leeway: u64::MAX,
            ..Validation::default()
        };
        assert_eq!(
            decode(&token, &hs_set(), &v, NOW).unwrap_err().code(),
            "token_expired"
        );
    }

    fn code(r: Result<Claims, TokenError>) -> &'static str {
        r.map(|_| "ok").unwrap_or_else(|e| e.code())
    }

    fn hs_set() -> KeySet {
        KeySet::from(&hs256(Some("hs")))
    }

    fn access() -> Claims {
        Claims::access("user-42", vec!["doctor".into()], NOW, 900)
    }

    /// Flips one bit of the character at `i` while staying in the base64url alphabet.
    fn flip(token: &str, i: usize) -> String {
        let mut b = token.as_bytes().to_vec();
        b[i] = if b[i] == b'A' { b'B' } else { b'A' };
        String::from_utf8(b).unwrap()
    }

    // RFC 7515 Appendix A.1 (HS256). Its claims are not keygate claims, so the signature is
    // proven through `verify_signature_only` and by `decode` getting past the signature.
    const RFC7515_A1: &str = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const RFC7515_A1_K: &str =
        "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow";
    const RFC7515_PAYLOAD: &[u8] =
        b"{\"iss\":\"joe\",\r\n \"exp\":1300819380,\r\n \"http://example.com/is_root\":true}";

    #[test]
    fn rfc7515_a1_hs256_ok() {
        let keys: KeySet =
            format!(r#"{{"keys":[{{"kty":"oct","alg":"HS256","k":"{RFC7515_A1_K}"}}]}}"#)
                .parse()
                .unwrap();
        let v = Validation::default();
        let payload = dangerous::verify_signature_only(RFC7515_A1, &keys, &v).unwrap();
        assert_eq!(payload, RFC7515_PAYLOAD);
        // Past the signature, the claims check speaks: no `sub`.
        assert_eq!(
            decode(RFC7515_A1, &keys, &v, NOW).unwrap_err(),
            TokenError::MissingClaim { claim: "sub" }
        );
        let sig_at = RFC7515_A1.rfind('.').unwrap() + 3;
        let tampered = flip(RFC7515_A1, sig_at);
        assert_eq!(code(decode(&tampered, &keys, &v, NOW)), "token_invalid");
        let payload_at = RFC7515_A1.find('.').unwrap() + 5;
        let tampered = flip(RFC7515_A1, payload_at);
        assert_eq!(code(decode(&tampered, &keys, &v, NOW)), "token_invalid");
    }

    // RFC 7515 Appendix A.2 (RS256), verified with the RFC's public JWK (no alg: derived).
    const RFC7515_A2: &str = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw";
    const RFC7515_A2_N: &str = "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ";

    #[test]
    fn rfc7515_a2_rs256_ok() {
        let keys: KeySet =
            format!(r#"{{"keys":[{{"kty":"RSA","n":"{RFC7515_A2_N}","e":"AQAB"}}]}}"#)
                .parse()
                .unwrap();
        assert_eq!(keys.keys()[0].alg(), Algorithm::RS256);
        let v = Validation::default();
        assert_eq!(
            dangerous::verify_signature_only(RFC7515_A2, &keys, &v).unwrap(),
            RFC7515_PAYLOAD
        );
        let tampered = flip(RFC7515_A2, RFC7515_A2.len() - 10);
        assert_eq!(
            dangerous::verify_signature_only(&tampered, &keys, &v).unwrap_err(),
            TokenError::Invalid
        );
    }

    // RFC 8037 Appendix A.4 (Ed25519): verify with A.2's public key, and signing with A.1's
    // private key reproduces the RFC's signature (Ed25519 is deterministic).
    const RFC8037_A4: &str = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";
    const RFC8037_D: &str = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A";
    const RFC8037_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";

    #[test]
    fn rfc8037_a4_eddsa_ok() {
        let public: Jwk = format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{RFC8037_X}"}}"#)
            .parse()
            .unwrap();
        let keys = KeySet::single(VerifyingKey::from_jwk(&public).unwrap());
        let v = Validation::default();
        assert_eq!(
            dangerous::verify_signature_only(RFC8037_A4, &keys, &v).unwrap(),
            b"Example of Ed25519 signing"
        );
        // Not a JSON claims set: refused after the signature passed.
        assert_eq!(code(decode(RFC8037_A4, &keys, &v, NOW)), "token_malformed");
        let tampered = flip(RFC8037_A4, RFC8037_A4.len() - 20);
        assert_eq!(code(decode(&tampered, &keys, &v, NOW)), "token_invalid");

        let private = Jwk {
            d: Some(RFC8037_D.into()),
            ..public
        };
        let sk = SigningKey::from_jwk(&private).unwrap();
        let (message, sig) = RFC8037_A4.rsplit_once('.').unwrap();
        assert_eq!(sk.sign(message.as_bytes()).unwrap(), sig);
    }

    /// PyJWT known answers from `tests/vectors/vectors.json`.
    #[test]
    fn pyjwt_vectors_ok() {
        let v: serde_json::Value = serde_json::from_str(VECTORS).unwrap();
        let jwt = &v["jwt"];
        let public: Jwks = serde_json::from_value(jwt["public_jwks"].clone()).unwrap();
        let private: Jwks = serde_json::from_value(jwt["private_jwks"].clone()).unwrap();
        let hs_jwk: Jwk = serde_json::from_value(jwt["hs_jwk"].clone()).unwrap();
        // The vector's oct JWK has no alg: keygate refuses it until one is set.
        assert_eq!(
            KeySet::from_jwks(&Jwks {
                keys: vec![hs_jwk.clone()]
            })
            .unwrap_err()
            .field,
            "keys[0].alg"
        );
        let tokens = jwt["tokens"].as_array().unwrap();
        assert!(tokens.len() >= 10);
        for t in tokens {
            let name = t["name"].as_str().unwrap();
            let alg: Algorithm = t["alg"].as_str().unwrap().parse().unwrap();
            let token = t["token"].as_str().unwrap();
            let now = t["now"].as_u64().unwrap();
            let expect = t["expect"].as_str().unwrap();
            let mut set = public.clone();
            let hs_alg = if alg.is_hmac() { alg } else { Algorithm::HS256 };
            let hs = Jwk {
                alg: Some(hs_alg.as_str().into()),
                ..hs_jwk.clone()
            };
            set.keys.push(hs.clone());
            let keys = KeySet::from_jwks(&set).unwrap();
            let mut validation = Validation::default();
            if name == "iss_aud" {
                validation.issuer = Some("https://auth.example.com".into());
                validation.audiences = vec!["api".into()];
            }
            let got = decode(token, &keys, &validation, now);
            match expect {
                "ok" => {
                    let claims = got.unwrap_or_else(|e| panic!("{name}: {e}"));
                    let want: Claims = serde_json::from_value(t["claims"].clone()).unwrap();
                    assert_eq!(claims, want, "{name}");
                }
                code => assert_eq!(got.unwrap_err().code(), code, "{name}"),
            }
            // Deterministic algorithms: keygate's encoder produces PyJWT's exact bytes.
            if name.starts_with("access_") && alg != Algorithm::ES256 && alg != Algorithm::RS256 {
                let sk = if alg.is_hmac() {
                    SigningKey::from_jwk(&hs).unwrap()
                } else {
                    let jwk = private
                        .keys
                        .iter()
                        .find(|k| k.alg.as_deref() == Some(alg.as_str()));
                    SigningKey::from_jwk(jwk.unwrap()).unwrap()
                };
                let claims: Claims = serde_json::from_value(t["claims"].clone()).unwrap();
                assert_eq!(encode(&claims, &sk).unwrap(), token, "{name}");
            }
            if name == "no_kid_HS256" {
                let sk = SigningKey::from_secret(SECRET, Algorithm::HS256, None).unwrap();
                let claims: Claims = serde_json::from_value(t["claims"].clone()).unwrap();
                assert_eq!(encode(&claims, &sk).unwrap(), token);
            }
        }
    }

    #[test]
    fn round_trip_all_algorithms_ok() {
        let mut rng = SeededEntropy::new(1);
        for alg in [
            Algorithm::HS256,
            Algorithm::HS384,
            Algorithm::HS512,
            Algorithm::EdDSA,
            Algorithm::ES256,
        ] {
            let sk = SigningKey::generate(alg, Some(format!("k-{alg}")), &mut rng).unwrap();
            let token = encode(&access(), &sk).unwrap();
            let header = dangerous::decode_unverified_header(&token).unwrap();
            assert_eq!(header.alg, alg.as_str());
            assert_eq!(header.typ.as_deref(), Some("JWT"));
            assert_eq!(header.kid, Some(format!("k-{alg}")));
            let keys = KeySet::from(&sk);
            let claims = decode(&token, &keys, &Validation::default(), NOW + 60).unwrap();
            assert_eq!(claims, access());
            // The published JWK alone verifies (asymmetric keys).
            if let Some(jwk) = sk.public_jwk() {
                assert!(jwk.d.is_none() && jwk.k.is_none());
                let keys = KeySet::from_jwks(&Jwks { keys: vec![jwk] }).unwrap();
                assert!(decode(&token, &keys, &Validation::default(), NOW).is_ok());
            }
            // The stored private JWK makes the same key.
            let again = SigningKey::from_jwk(&sk.to_private_jwk()).unwrap();
            let token2 = encode(&access(), &again).unwrap();
            assert!(decode(&token2, &keys, &Validation::default(), NOW).is_ok());
        }
    }

    #[test]
    fn refresh_claims_round_trip_ok() {
        let sk = hs256(None);
        let c = Claims::new(TokenType::Refresh, "u", NOW, 3600)
            .with_family("fam-1", 2)
            .with_sid("s-1")
            .with_jti("j-1");
        let token = encode(&c, &sk).unwrap();
        let v = Validation::new(TokenType::Refresh);
        let got = decode(&token, &KeySet::from(&sk), &v, NOW).unwrap();
        assert_eq!(got.fam.as_deref(), Some("fam-1"));
        assert_eq!(got.gen, Some(2));
        assert_eq!(got, c);
    }

    #[test]
    fn expired_fails() {
        let token = encode(&access(), &hs256(Some("hs"))).unwrap();
        let v = Validation::default();
        let exp = NOW + 900;
        assert_eq!(
            code(decode(&token, &hs_set(), &v, exp + 31)),
            "token_expired"
        );
        assert_eq!(code(decode(&token, &hs_set(), &v, exp + 30)), "ok");
        assert_eq!(code(decode(&token, &hs_set(), &v, exp)), "ok");
        let strict = Validation {
            leeway: 0,
            ..Validation::default()
        };
        assert_eq!(
            code(decode(&token, &hs_set(), &strict, exp + 1)),
            "token_expired"
        );
        assert_eq!(
            code(decode(&token, &hs_set(), &v, u64::MAX)),
            "token_expired"
        );
    }

    #[test]
    fn nbf_and_iat_in_future_fails() {
        let sk = hs256(Some("hs"));
        let v = Validation::default();
        let nbf = encode(&access().with_not_before(NOW + 600), &sk).unwrap();
        assert_eq!(
            decode(&nbf, &hs_set(), &v, NOW).unwrap_err(),
            TokenError::NotYetValid { claim: "nbf" }
        );
        assert_eq!(code(decode(&nbf, &hs_set(), &v, NOW + 570)), "ok");
        let mut lax = v.clone();
        dangerous::skip_nbf_check(&mut lax);
        assert_eq!(code(decode(&nbf, &hs_set(), &lax, NOW)), "ok");

        let future = Claims::access("u", vec![], NOW + 120, 900);
        let iat = encode(&future, &sk).unwrap();
        assert_eq!(
            decode(&iat, &hs_set(), &v, NOW).unwrap_err(),
            TokenError::NotYetValid { claim: "iat" }
        );
        assert_eq!(code(decode(&iat, &hs_set(), &v, NOW + 90)), "ok");
        dangerous::skip_iat_check(&mut lax);
        assert_eq!(code(decode(&iat, &hs_set(), &lax, NOW)), "ok");
    }

    #[test]
    fn issuer_fails() {
        let sk = hs256(Some("hs"));
        let v = Validation {
            issuer: Some("https://auth.example.com".into()),
            ..Validation::default()
        };
        let good = encode(&access().with_issuer("https://auth.example.com"), &sk).unwrap();
        assert_eq!(code(decode(&good, &hs_set(), &v, NOW)), "ok");
        let bad = encode(&access().with_issuer("https://evil.example.com"), &sk).unwrap();
        assert_eq!(
            code(decode(&bad, &hs_set(), &v, NOW)),
            "token_issuer_invalid"
        );
        let none = encode(&access(), &sk).unwrap();
        assert_eq!(
            decode(&none, &hs_set(), &v, NOW).unwrap_err(),
            TokenError::MissingClaim { claim: "iss" }
        );
    }

    #[test]
    fn audience_fails() {
        let sk = hs256(Some("hs"));
        let v = Validation {
            audiences: vec!["api".into(), "admin".into()],
            ..Validation::default()
        };
        let one = encode(&access().with_audience("admin"), &sk).unwrap();
        assert_eq!(code(decode(&one, &hs_set(), &v, NOW)), "ok");
        let many = encode(&access().with_audience("x").with_audience("api"), &sk).unwrap();
        assert_eq!(code(decode(&many, &hs_set(), &v, NOW)), "ok");
        let wrong = encode(&access().with_audience("billing"), &sk).unwrap();
        assert_eq!(
            code(decode(&wrong, &hs_set(), &v, NOW)),
            "token_audience_invalid"
        );
        let missing = encode(&access(), &sk).unwrap();
        assert_eq!(
            code(decode(&missing, &hs_set(), &v, NOW)),
            "token_missing_claim"
        );
        // No audience configured: a token meant for someone else is refused.
        assert_eq!(
            code(decode(&one, &hs_set(), &Validation::default(), NOW)),
            "token_audience_invalid"
        );
    }

    #[test]
    fn wrong_type_fails() {
        let sk = hs256(Some("hs"));
        for t in [TokenType::Refresh, TokenType::Mfa, TokenType::Reset] {
            let token = encode(&Claims::new(t, "u", NOW, 60), &sk).unwrap();
            assert_eq!(
                decode(&token, &hs_set(), &Validation::default(), NOW).unwrap_err(),
                TokenError::WrongType {
                    expected: TokenType::Access,
                    found: t
                }
            );
            assert!(decode(&token, &hs_set(), &Validation::new(t), NOW).is_ok());
        }
        let access = encode(&access(), &sk).unwrap();
        let v = Validation::new(TokenType::Refresh);
        assert_eq!(
            code(decode(&access, &hs_set(), &v, NOW)),
            "token_wrong_type"
        );
    }

    #[test]
    fn tampered_fails() {
        let token = encode(&access(), &hs256(Some("hs"))).unwrap();
        let v = Validation::default();
        // Swap in a different payload, keep the signature.
        let (h, rest) = token.split_once('.').unwrap();
        let (_, s) = rest.split_once('.').unwrap();
        let admin = access().with_roles(vec!["admin".into()]);
        let forged = format!(
            "{h}.{}.{s}",
            b64u_encode(serde_json::to_vec(&admin).unwrap())
        );
        assert_eq!(code(decode(&forged, &hs_set(), &v, NOW)), "token_invalid");
        let sig = flip(&token, token.len() - 5);
        assert_eq!(code(decode(&sig, &hs_set(), &v, NOW)), "token_invalid");
        // Signed by another secret.
        let other =
            SigningKey::from_secret(&[7u8; 32], Algorithm::HS256, Some("hs".into())).unwrap();
        let token = encode(&access(), &other).unwrap();
        assert_eq!(code(decode(&token, &hs_set(), &v, NOW)), "token_invalid");
        // Signature stripped.
        let (message, _) = token.rsplit_once('.').unwrap();
        assert_eq!(
            code(decode(&format!("{message}."), &hs_set(), &v, NOW)),
            "token_invalid"
        );
    }

    #[test]
    fn alg_none_fails() {
        let payload = b64u_encode(serde_json::to_vec(&access()).unwrap());
        let v = Validation::default();
        for alg in ["none", "None", "NONE", "nOnE"] {
            for kid in ["", r#","kid":"hs""#] {
                let header = b64u_encode(format!(r#"{{"alg":"{alg}","typ":"JWT"{kid}}}"#));
                for sig in ["", "c2ln"] {
                    let token = format!("{header}.{payload}.{sig}");
                    assert_eq!(
                        decode(&token, &hs_set(), &v, NOW).unwrap_err(),
                        TokenError::AlgorithmNotAllowed,
                        "{alg}"
                    );
                }
            }
        }
        // Unknown or lowercase algorithm names too.
        let sk = hs256(Some("hs"));
        for alg in ["hs256", "HS1", "PS256", "RS384", "ES384", ""] {
            let t = sign_raw(
                &format!(r#"{{"alg":"{alg}","kid":"hs"}}"#),
                &serde_json::to_string(&access()).unwrap(),
                &sk,
            );
            assert_eq!(
                code(decode(&t, &hs_set(), &v, NOW)),
                "token_algorithm_not_allowed"
            );
        }
    }

    #[test]
    fn hs_rs_confusion_fails() {
        // The verifier trusts only an RS256 public key; the attacker HMACs with its public
        // bytes (PEM text, DER modulus) as the secret.
        let rs = VerifyingKey::from_pem(RSA_SPKI_PEM, Algorithm::RS256, Some("rs".into())).unwrap();
        let keys = KeySet::single(rs.clone());
        let n =
            crate::token::jwk::b64u_decode(rs.public_jwk().unwrap().n.as_deref().unwrap()).unwrap();
        let v = Validation::default();
        for secret in [RSA_SPKI_PEM.as_bytes(), &n] {
            for kid in [Some("rs".to_owned()), None] {
                let evil = SigningKey::from_secret(secret, Algorithm::HS256, kid).unwrap();
                let token = encode(&access(), &evil).unwrap();
                assert_eq!(
                    decode(&token, &keys, &v, NOW).unwrap_err(),
                    TokenError::AlgorithmNotAllowed
                );
                let only_rs = Validation {
                    algorithms: vec![Algorithm::RS256],
                    ..Validation::default()
                };
                assert_eq!(
                    code(decode(&token, &keys, &only_rs, NOW)),
                    "token_algorithm_not_allowed"
                );
            }
        }
        // And the RS256 vector token still passes with the same set.
        let vec: serde_json::Value = serde_json::from_str(VECTORS).unwrap();
        let rs_token = vec["jwt"]["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == "access_RS256")
            .unwrap()["token"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(decode(&rs_token, &keys, &v, NOW + 60).is_ok());
    }

    #[test]
    fn hs256_against_eddsa_only_keyset_fails() {
        let mut rng = SeededEntropy::new(2);
        let ed = SigningKey::generate(Algorithm::EdDSA, Some("ed".into()), &mut rng).unwrap();
        let keys = KeySet::from(&ed);
        let v = Validation::default();
        for kid in [Some("ed"), None] {
            let token = encode(&access(), &hs256(kid)).unwrap();
            assert_eq!(
                code(decode(&token, &keys, &v, NOW)),
                "token_algorithm_not_allowed"
            );
        }
        // Allow-list without EdDSA refuses even a genuine EdDSA token.
        let token = encode(&access(), &ed).unwrap();
        let hs_only = Validation {
            algorithms: vec![Algorithm::HS256],
            ..Validation::default()
        };
        assert_eq!(
            code(decode(&token, &keys, &hs_only, NOW)),
            "token_algorithm_not_allowed"
        );
        assert_eq!(code(decode(&token, &keys, &v, NOW)), "ok");
    }

    #[test]
    fn unknown_kid_fails() {
        let token = encode(&access(), &hs256(Some("other"))).unwrap();
        assert_eq!(
            decode(&token, &hs_set(), &Validation::default(), NOW).unwrap_err(),
            TokenError::UnknownKey
        );
    }

    #[test]
    fn kidless_token_tries_keys_of_its_alg_ok() {
        let a = SigningKey::from_secret(&[1u8; 32], Algorithm::HS256, Some("a".into())).unwrap();
        let b = SigningKey::from_secret(&[2u8; 32], Algorithm::HS256, Some("b".into())).unwrap();
        let keys =
            KeySet::from_keys(vec![a.verifying_key().clone(), b.verifying_key().clone()]).unwrap();
        let plain = SigningKey::from_secret(&[2u8; 32], Algorithm::HS256, None).unwrap();
        let token = encode(&access(), &plain).unwrap();
        assert!(decode(&token, &keys, &Validation::default(), NOW).is_ok());
        let stranger = SigningKey::from_secret(&[3u8; 32], Algorithm::HS256, None).unwrap();
        let token = encode(&access(), &stranger).unwrap();
        assert_eq!(
            code(decode(&token, &keys, &Validation::default(), NOW)),
            "token_invalid"
        );
    }

    #[test]
    fn oversized_fails() {
        let v = Validation::default();
        let big = "a".repeat(v.max_token_len + 1);
        assert_eq!(
            decode(&big, &hs_set(), &v, NOW).unwrap_err(),
            TokenError::TooLarge { max: 8192 }
        );
        // Length is checked before shape.
        let big = format!("{}.b.c", "!".repeat(9000));
        assert_eq!(code(decode(&big, &hs_set(), &v, NOW)), "token_too_large");
        // A validly signed token over the limit is still refused.
        let fat = access().with_permissions(vec!["p".repeat(100); 100]);
        let token = encode(&fat, &hs256(Some("hs"))).unwrap();
        assert!(token.len() > 8192);
        assert_eq!(code(decode(&token, &hs_set(), &v, NOW)), "token_too_large");
    }

    #[test]
    fn malformed_fails() {
        let v = Validation::default();
        let sk = hs256(Some("hs"));
        let claims = serde_json::to_string(&access()).unwrap();
        let good = encode(&access(), &sk).unwrap();
        let (h, rest) = good.split_once('.').unwrap();
        let cases = [
            String::new(),
            "garbage".into(),
            "a.b".into(),
            "a.b.c.d".into(),
            format!("{good}.x"),
            format!("{h}..{}", rest.rsplit_once('.').unwrap().1),
            format!(".{rest}"),
            good.replace('-', "+"),
            format!("{good}="),
            "e30.e30.".into(),
            "!!!.e30.e30".into(),
            format!("{}.{rest}", b64u_encode("not json")),
            format!("{}.{rest}", b64u_encode("[1,2]")),
            format!("{}.{rest}", b64u_encode(r#"{"alg":5}"#)),
            sign_raw(r#"{"alg":"HS256","kid":"hs","crit":["exp"]}"#, &claims, &sk),
            sign_raw(r#"{"alg":"HS256","alg":"none","kid":"hs"}"#, &claims, &sk),
            sign_raw(r#"{"alg":"HS256","kid":"hs"}"#, "not json", &sk),
            sign_raw(r#"{"alg":"HS256","kid":"hs"}"#, "[]", &sk),
            sign_raw(
                r#"{"alg":"HS256","kid":"hs"}"#,
                &format!(
                    r#"{{"sub":"u","sub":"admin","type":"access","iat":{NOW},"exp":{}}}"#,
                    NOW + 9
                ),
                &sk,
            ),
            sign_raw(
                r#"{"alg":"HS256","kid":"hs"}"#,
                &format!(
                    r#"{{"sub":"u","type":"access","iat":{NOW},"exp":{}.5}}"#,
                    NOW + 9
                ),
                &sk,
            ),
            sign_raw(
                r#"{"alg":"HS256","kid":"hs"}"#,
                &format!(
                    r#"{{"sub":"u","type":"admin","iat":{NOW},"exp":{}}}"#,
                    NOW + 9
                ),
                &sk,
            ),
            sign_raw(
                r#"{"alg":"HS256","kid":"hs"}"#,
                &format!(r#"{{"sub":"u","type":"access","iat":{NOW},"exp":-1}}"#),
                &sk,
            ),
        ];
        for (i, t) in cases.iter().enumerate() {
            assert_eq!(
                code(decode(t, &hs_set(), &v, NOW)),
                "token_malformed",
                "case {i}"
            );
        }
        let huge_header = format!("{}.e30.e30", "e".repeat(MAX_HEADER_LEN_FOR_TEST));
        assert_eq!(
            code(decode(&huge_header, &hs_set(), &v, NOW)),
            "token_malformed"
        );
    }

    const MAX_HEADER_LEN_FOR_TEST: usize = crate::token::MAX_HEADER_LEN + 4;

    #[test]
    fn missing_claims_fails() {
        let sk = hs256(Some("hs"));
        let v = Validation::default();
        let full = serde_json::to_value(access()).unwrap();
        for claim in ["sub", "type", "iat", "exp"] {
            let mut m = full.as_object().unwrap().clone();
            m.remove(claim);
            let t = sign_raw(
                r#"{"alg":"HS256","kid":"hs"}"#,
                &serde_json::to_string(&m).unwrap(),
                &sk,
            );
            assert_eq!(
                decode(&t, &hs_set(), &v, NOW).unwrap_err(),
                TokenError::MissingClaim { claim },
            );
            m.insert(claim.into(), serde_json::Value::Null);
            let t = sign_raw(
                r#"{"alg":"HS256","kid":"hs"}"#,
                &serde_json::to_string(&m).unwrap(),
                &sk,
            );
            assert_eq!(code(decode(&t, &hs_set(), &v, NOW)), "token_missing_claim");
        }
        let empty_sub = sign_raw(
            r#"{"alg":"HS256","kid":"hs"}"#,
            &format!(
                r#"{{"sub":"","type":"access","iat":{NOW},"exp":{}}}"#,
                NOW + 9
            ),
            &sk,
        );
        assert_eq!(
            code(decode(&empty_sub, &hs_set(), &v, NOW)),
            "token_missing_claim"
        );
    }

    #[test]
    fn claim_too_large_fails() {
        let sk = hs256(Some("hs"));
        let v = Validation::default();
        let many = access().with_roles(vec!["r".into(); 65]);
        assert_eq!(
            encode(&many, &sk).unwrap_err().code(),
            "token_claim_too_large"
        );
        let mut raw = serde_json::to_value(access()).unwrap();
        raw["roles"] = serde_json::json!(vec!["r"; 65]);
        let t = sign_raw(r#"{"alg":"HS256","kid":"hs"}"#, &raw.to_string(), &sk);
        assert_eq!(
            decode(&t, &hs_set(), &v, NOW).unwrap_err(),
            TokenError::ClaimTooLarge { claim: "roles" }
        );
        raw["roles"] = serde_json::json!([]);
        raw["sub"] = serde_json::json!("s".repeat(257));
        let t = sign_raw(r#"{"alg":"HS256","kid":"hs"}"#, &raw.to_string(), &sk);
        assert_eq!(
            decode(&t, &hs_set(), &v, NOW).unwrap_err(),
            TokenError::ClaimTooLarge { claim: "sub" }
        );
    }

    #[test]
    fn errors_never_contain_the_token_ok() {
        let sk = hs256(Some("hs"));
        let token = encode(&access().with_issuer("issuer-secretive"), &sk).unwrap();
        let v = Validation {
            issuer: Some("x".into()),
            ..Validation::default()
        };
        let e = decode(&token, &hs_set(), &v, NOW).unwrap_err();
        let tampered = flip(&token, token.len() - 3);
        let e2 = decode(&tampered, &hs_set(), &v, NOW).unwrap_err();
        for e in [e, e2] {
            let msg = e.to_string();
            for part in token.split('.') {
                assert!(!msg.contains(part));
            }
            assert!(!msg.contains("issuer-secretive"));
        }
    }

    fn b64_json() -> impl Strategy<Value = String> {
        prop_oneof![
            ".*".prop_map(b64u_encode),
            r#"\{("(alg|kid|typ|crit|sub|type|iat|exp|nbf|aud|roles)":("[A-Za-z0-9]{0,8}"|-?[0-9]{1,20}|null|\[\]|\{\}|true),?){0,6}\}"#
                .prop_map(b64u_encode),
        ]
    }

    proptest! {
        #[test]
        fn decode_never_panics_on_strings(s in ".*") {
            let r = decode(&s, &hs_set(), &Validation::default(), NOW);
            prop_assert!(r.is_err());
            let _ = dangerous::decode_unverified_header(&s);
        }

        #[test]
        fn decode_never_panics_on_shaped_tokens(h in b64_json(), p in b64_json(), s in "[A-Za-z0-9_-]{0,90}", now in any::<u64>()) {
            let token = format!("{h}.{p}.{s}");
            // Saturating time math: even an absurd leeway cannot overflow.
            let v = Validation { leeway: u64::MAX, ..Validation::default() };
            let _ = decode(&token, &hs_set(), &v, now);
        }

        #[test]
        fn signed_garbage_claims_never_panic(p in ".{0,200}", now in any::<u64>()) {
            let sk = hs256(Some("hs"));
            let token = sign_raw(r#"{"alg":"HS256","kid":"hs"}"#, &p, &sk);
            let _ = decode(&token, &hs_set(), &Validation::default(), now);
        }
    }
}
