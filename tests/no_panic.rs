//! Every parser of attacker- or operator-supplied text, fed arbitrary input in one place:
//! each must answer (a value or an error), never panic. Module tests hold the finer cases.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use keygate::password::{PasswordHasher, PhcHash};
use keygate::policy::{Policy, PolicyConfig};
use keygate::ratelimit::{Quota, State};
use keygate::session::{SessionConfig, Sessions};
use keygate::token::{decode, Algorithm, Jwk, Jwks, KeySet, SigningKey, Validation};
use keygate::totp::{self, TotpConfig};
use proptest::prelude::*;

fn junk() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[A-Za-z0-9_=.-]{0,300}",
        "[{}\\[\\]\":,a-z0-9 ]{0,200}",
        prop::collection::vec(any::<u8>(), 0..400)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn token_decode_never_panics(s in junk(), dots in 0usize..4) {
        let keys = KeySet::single(
            SigningKey::from_secret(&[1u8; 32], Algorithm::HS256, None).unwrap().verifying_key().clone(),
        );
        let token = match dots { 0 => s.clone(), n => vec![s.as_str(); n + 1].join(".") };
        prop_assert!(decode(&token, &keys, &Validation::default(), 1_700_000_000).is_err());
    }

    #[test]
    fn jwk_and_jwks_parsers_never_panic(s in junk()) {
        let _ = s.parse::<Jwk>();
        let _ = s.parse::<Jwks>();
        let _ = s.parse::<KeySet>();
        let _ = serde_json::from_str::<Validation>(&s);
    }

    #[test]
    fn phc_parser_never_panics(s in junk()) {
        let _ = s.parse::<PhcHash>();
        let h = PasswordHasher::default();
        let _ = h.needs_rehash(&s);
        // verify only runs Argon2 for well-formed hashes; the input here rarely is one.
        let _ = h.verify(&format!("$argon2id$v=19$m=8,t=1,p=1${s}"), "pw");
    }

    #[test]
    fn config_parsers_never_panic(s in junk()) {
        if let Ok(cfg) = serde_json::from_str::<PolicyConfig>(&s) { let _ = Policy::new(&cfg); }
        let _ = serde_json::from_str::<SessionConfig>(&s);
        let _ = serde_json::from_str::<TotpConfig>(&s);
        let _ = serde_json::from_str::<keygate::password::PasswordConfig>(&s);
        let _ = s.parse::<Quota>();
        let _ = keygate::duration::parse_duration(&s);
    }

    #[test]
    fn cookie_and_session_parsers_never_panic(s in junk()) {
        let sessions = Sessions::new(SessionConfig::new(&[9u8; 32])).unwrap();
        prop_assert!(sessions.read(&s, 1_700_000_000).is_err());
        let header = format!("__Host-session={s}");
        prop_assert!(sessions.read(&header, 1_700_000_000).is_err());
        let _ = s.parse::<keygate::Session>();
    }

    #[test]
    fn totp_and_state_parsers_never_panic(s in junk(), b in prop::collection::vec(any::<u8>(), 0..100)) {
        let cfg = TotpConfig::default();
        let _ = totp::verify(&cfg, &s, "123456", 1_700_000_000, None);
        let _ = totp::verify(&cfg, "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP", &s, 1_700_000_000, None);
        let _ = State::try_from(b.as_slice());
        let _ = keygate::recovery::verify_recovery_code(std::slice::from_ref(&s), &s);
    }
}
