//! Unit tests of the login flow.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use crate::error::ErrorCode;
use crate::password::PasswordHasher;
use crate::password::{Params, PasswordPolicy};
use crate::recovery::generate_recovery_codes;
use crate::token::Algorithm;
use crate::token::{SigningKey, TokenType};
use crate::totp::{self, TotpConfig};
use crate::SeededEntropy;

const NOW: u64 = 1_700_000_000;
const SECRET: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";

fn fast_hasher() -> PasswordHasher {
    PasswordHasher::new(Params::new(1, 64, 1).unwrap(), PasswordPolicy::default())
}

fn auth() -> Authenticator {
    let key = SigningKey::from_secret(&[7u8; 32], Algorithm::HS256, Some("k1".into())).unwrap();
    Authenticator::new(
        key,
        FlowLimits::default(),
        fast_hasher(),
        TotpConfig::default(),
    )
    .with_issuer(Some("https://auth.example.com".into()))
    .with_audience(Some("api".into()))
}

struct Rec {
    hash: String,
    roles: Vec<String>,
    mfa: bool,
}

impl Rec {
    fn new(a: &Authenticator, password: &str, mfa: bool) -> Self {
        let hash = a
            .hasher()
            .hash(password, &mut SeededEntropy::new(1))
            .unwrap();
        Self {
            hash,
            roles: vec!["doctor".into()],
            mfa,
        }
    }
    fn user(&self) -> User<'_> {
        User {
            id: "user-1",
            password_hash: &self.hash,
            roles: &self.roles,
            mfa_enabled: self.mfa,
            mfa_secret: self.mfa.then_some(SECRET),
            session_epoch: 0,
        }
    }
}

fn rng() -> SeededEntropy {
    SeededEntropy::new(42)
}

fn login_ok(a: &Authenticator, rec: &Rec) -> Issued {
    match a
        .login(Some(&rec.user()), "correct horse", NOW, &mut rng())
        .unwrap()
    {
        LoginOutcome::Ok { issued, .. } => issued,
        other => panic!("expected Ok, got {other:?}"),
    }
}

#[test]
fn leeway_is_configurable_ok() {
    let issued_at = NOW;
    let a0 = auth().with_leeway(0).unwrap();
    let t = a0
        .create_access_token("u", &[], &[], issued_at, &mut rng())
        .unwrap();
    let exp = issued_at + a0.limits.access_ttl;
    // 0 s: one second past exp is expired; 300 s: still valid 299 s past it.
    assert!(a0.verify(&t, TokenType::Access, exp + 1).is_err());
    let a300 = auth().with_leeway(300).unwrap();
    assert!(a300.verify(&t, TokenType::Access, exp + 299).is_ok());
    assert!(a300.verify(&t, TokenType::Access, exp + 301).is_err());
    // The default is 30 s.
    assert!(auth().verify(&t, TokenType::Access, exp + 30).is_ok());
    assert!(auth().verify(&t, TokenType::Access, exp + 31).is_err());
}

#[test]
fn leeway_over_300_fails() {
    assert_eq!(auth().with_leeway(301).err().unwrap().field, "leeway");
}

#[test]
fn custom_claims_in_access_token_ok() {
    let a = auth();
    let mut m = serde_json::Map::new();
    m.insert("tenant".into(), serde_json::Value::from("acme"));
    let claims = crate::token::CustomClaims::new(m).unwrap();
    let t = a
        .create_access_token_with_claims("u", &["r".into()], &[], &claims, NOW, &mut rng())
        .unwrap();
    let c = a.verify(&t, TokenType::Access, NOW).unwrap();
    assert_eq!(
        (c.sub.as_str(), c.extra.get("tenant")),
        ("u", Some(&serde_json::Value::from("acme")))
    );
}

#[test]
fn login_without_mfa_issues_seed_shaped_tokens_ok() {
    let a = auth();
    let rec = Rec::new(&a, "correct horse", false);
    let issued = login_ok(&a, &rec);
    assert_eq!(issued.tokens.token_type, "Bearer");
    assert_eq!(issued.tokens.expires_in, 900);
    let access = a
        .verify(&issued.tokens.access_token, TokenType::Access, NOW)
        .unwrap();
    assert_eq!(access.sub, "user-1");
    assert_eq!(access.roles, vec!["doctor".to_string()]);
    assert_eq!(access.exp, NOW + 900);
    assert_eq!(access.amr, vec!["pwd".to_string()]);
    let refresh = a
        .verify(&issued.tokens.refresh_token, TokenType::Refresh, NOW)
        .unwrap();
    assert_eq!(
        refresh.fam.as_deref(),
        Some(issued.family.family_id.as_str())
    );
    assert_eq!(refresh.gen, Some(0));
    // The refresh token is not an access token and vice versa.
    assert!(a
        .verify(&issued.tokens.refresh_token, TokenType::Access, NOW)
        .is_err());
    assert!(a
        .verify(&issued.tokens.access_token, TokenType::Refresh, NOW)
        .is_err());
}

#[test]
fn login_wrong_password_or_unknown_user_is_invalid_fails() {
    let a = auth();
    let rec = Rec::new(&a, "correct horse", false);
    let wrong = a
        .login(Some(&rec.user()), "wrong horse", NOW, &mut rng())
        .unwrap();
    assert_eq!(wrong, LoginOutcome::Invalid);
    let unknown = a.login(None, "correct horse", NOW, &mut rng()).unwrap();
    assert_eq!(unknown, LoginOutcome::Invalid);
    let huge = "x".repeat(5000);
    assert_eq!(
        a.login(Some(&rec.user()), &huge, NOW, &mut rng()).unwrap(),
        LoginOutcome::Invalid
    );
    assert_eq!(
        a.login(None, &huge, NOW, &mut rng()).unwrap(),
        LoginOutcome::Invalid
    );
}

#[test]
fn login_with_corrupt_stored_hash_fails() {
    let a = auth();
    let mut rec = Rec::new(&a, "correct horse", false);
    rec.hash = "$argon2id$v=19$garbage".into();
    let err = a
        .login(Some(&rec.user()), "correct horse", NOW, &mut rng())
        .unwrap_err();
    assert_eq!(err.code(), "hash_invalid");
}

#[test]
fn login_returns_new_hash_when_params_changed_ok() {
    let old = auth();
    let rec = Rec::new(&old, "correct horse", false);
    let key = old.signing_key().clone();
    let stronger = PasswordHasher::new(Params::new(2, 128, 1).unwrap(), PasswordPolicy::default());
    let a = Authenticator::new(key, FlowLimits::default(), stronger, TotpConfig::default());
    let LoginOutcome::Ok {
        new_password_hash: Some(h),
        ..
    } = a
        .login(Some(&rec.user()), "correct horse", NOW, &mut rng())
        .unwrap()
    else {
        panic!("expected a rehash")
    };
    assert!(h.contains("m=128,t=2,p=1"));
    assert!(a.hasher().verify(&h, "correct horse").unwrap());
    assert!(!a.hasher().needs_rehash(&h).unwrap());
}

fn mfa_token(a: &Authenticator, rec: &Rec) -> String {
    match a
        .login(Some(&rec.user()), "correct horse", NOW, &mut rng())
        .unwrap()
    {
        LoginOutcome::MfaRequired { mfa_token, .. } => mfa_token,
        other => panic!("expected MfaRequired, got {other:?}"),
    }
}

#[test]
fn mfa_flow_with_totp_ok_and_replay_fails() {
    let a = auth();
    let rec = Rec::new(&a, "correct horse", true);
    let token = mfa_token(&a, &rec);
    // An MFA-pending token is not an access token.
    assert_eq!(
        a.verify(&token, TokenType::Access, NOW).unwrap_err().code(),
        "token_wrong_type"
    );
    let code = totp::generate(a.totp(), SECRET, NOW + 5).unwrap();
    let r = a.verify_mfa(
        &token,
        &code,
        &rec.user(),
        &MfaState::default(),
        NOW + 5,
        &mut rng(),
    );
    let (issued, method) = r.outcome.unwrap();
    assert_eq!(method, MfaMethod::Totp);
    let access = a
        .verify(&issued.tokens.access_token, TokenType::Access, NOW + 5)
        .unwrap();
    assert_eq!(access.amr, vec!["pwd".to_string(), "otp".to_string()]);
    assert_eq!(r.state.last_totp_step, Some((NOW + 5) / 30));
    // The same pending token cannot be used twice.
    let again = a.verify_mfa(&token, &code, &rec.user(), &r.state, NOW + 6, &mut rng());
    assert_eq!(again.outcome.unwrap_err().code(), "mfa_token_used");
    // A new sign-in replaying the same code is refused.
    let token2 = a
        .create_mfa_token("user-1", NOW + 1, &mut SeededEntropy::new(9))
        .unwrap();
    let replay = a.verify_mfa(&token2, &code, &rec.user(), &r.state, NOW + 7, &mut rng());
    assert_eq!(replay.outcome.unwrap_err().code(), "totp_replayed");
}

#[test]
fn mfa_attempts_are_capped_per_pending_token_fails() {
    let a = auth();
    let rec = Rec::new(&a, "correct horse", true);
    let token = mfa_token(&a, &rec);
    let good = totp::generate(a.totp(), SECRET, NOW).unwrap();
    let bad = if good == "000000" { "111111" } else { "000000" };
    let mut state = MfaState::default();
    for i in 0..DEFAULT_MFA_MAX_ATTEMPTS {
        let r = a.verify_mfa(&token, bad, &rec.user(), &state, NOW, &mut rng());
        assert_eq!(r.outcome.unwrap_err().code(), "totp_invalid");
        assert_eq!(r.state.failed_attempts, i + 1);
        state = r.state;
    }
    let r = a.verify_mfa(&token, &good, &rec.user(), &state, NOW, &mut rng());
    assert_eq!(r.outcome.unwrap_err().code(), "mfa_attempts_exceeded");
    // A newer pending token (a new sign-in) starts a fresh per-token count.
    let fresh = a
        .create_mfa_token("user-1", NOW + 1, &mut SeededEntropy::new(77))
        .unwrap();
    let r = a.verify_mfa(&fresh, &good, &rec.user(), &state, NOW, &mut rng());
    assert!(r.outcome.is_ok());
    assert_eq!(r.state.failed_attempts, 0);
}

#[test]
fn mfa_recovery_code_is_consumed_ok() {
    let a = auth();
    let rec = Rec::new(&a, "correct horse", true);
    let codes = generate_recovery_codes(3, &mut SeededEntropy::new(5)).unwrap();
    let state = MfaState {
        recovery_hashes: codes.hashes.clone(),
        ..MfaState::default()
    };
    let token = mfa_token(&a, &rec);
    let r = a.verify_mfa(
        &token,
        &codes.codes[1],
        &rec.user(),
        &state,
        NOW,
        &mut rng(),
    );
    assert_eq!(r.outcome.as_ref().unwrap().1, MfaMethod::Recovery);
    assert_eq!(r.state.recovery_hashes.len(), 2);
    let fresh = a
        .create_mfa_token("user-1", NOW + 1, &mut SeededEntropy::new(78))
        .unwrap();
    let again = a.verify_mfa(
        &fresh,
        &codes.codes[1],
        &rec.user(),
        &r.state,
        NOW,
        &mut rng(),
    );
    assert_eq!(again.outcome.unwrap_err().code(), "mfa_invalid");
}

#[test]
fn mfa_token_of_another_user_or_expired_fails() {
    let a = auth();
    let rec = Rec::new(&a, "correct horse", true);
    let other = a.create_mfa_token("user-2", NOW, &mut rng()).unwrap();
    let code = totp::generate(a.totp(), SECRET, NOW).unwrap();
    let r = a.verify_mfa(
        &other,
        &code,
        &rec.user(),
        &MfaState::default(),
        NOW,
        &mut rng(),
    );
    assert_eq!(r.outcome.unwrap_err().code(), "token_mismatch");
    let token = mfa_token(&a, &rec);
    let late = NOW + DEFAULT_MFA_TTL + 31;
    let code = totp::generate(a.totp(), SECRET, late).unwrap();
    let r = a.verify_mfa(
        &token,
        &code,
        &rec.user(),
        &MfaState::default(),
        late,
        &mut rng(),
    );
    assert_eq!(r.outcome.unwrap_err().code(), "token_expired");
    // An access token is not an MFA token.
    let issued = a
        .issue_tokens(&rec.user(), &["pwd"], NOW, &mut rng())
        .unwrap();
    let r = a.verify_mfa(
        &issued.tokens.access_token,
        &code,
        &rec.user(),
        &MfaState::default(),
        NOW,
        &mut rng(),
    );
    assert_eq!(r.outcome.unwrap_err().code(), "token_wrong_type");
}

#[test]
fn mfa_enabled_without_factor_fails() {
    let a = auth();
    let rec = Rec::new(&a, "correct horse", true);
    let mut user = rec.user();
    user.mfa_secret = None;
    let token = mfa_token(&a, &rec);
    let r = a.verify_mfa(
        &token,
        "123456",
        &user,
        &MfaState::default(),
        NOW,
        &mut rng(),
    );
    assert_eq!(r.outcome.unwrap_err().code(), "mfa_not_configured");
}

#[test]
fn refresh_rotates_and_reuse_revokes_family_ok() {
    let a = auth();
    let rec = Rec::new(&a, "correct horse", false);
    let first = login_ok(&a, &rec);
    let t1 = NOW + 100;
    let RefreshOutcome::Rotated(second) = a
        .refresh(
            &first.tokens.refresh_token,
            &first.family,
            None,
            t1,
            &mut rng(),
        )
        .unwrap()
    else {
        panic!("expected rotation")
    };
    assert_eq!(second.family.generation, 1);
    assert_eq!(second.family.rotated_at, t1);
    let claims = a
        .verify(&second.tokens.refresh_token, TokenType::Refresh, t1)
        .unwrap();
    assert_eq!(claims.gen, Some(1));
    assert_eq!(claims.roles, vec!["doctor".to_string()]);
    // Reusing generation 0 after the grace window revokes the whole family.
    let late = t1 + DEFAULT_REFRESH_GRACE + 1;
    let RefreshOutcome::Reused(revoked) = a
        .refresh(
            &first.tokens.refresh_token,
            &second.family,
            None,
            late,
            &mut rng(),
        )
        .unwrap()
    else {
        panic!("expected reuse detection")
    };
    assert!(revoked.revoked);
    // … and then even the newest token is refused.
    let err = a.refresh(
        &second.tokens.refresh_token,
        &revoked,
        None,
        late,
        &mut rng(),
    );
    assert_eq!(err.unwrap_err().code(), "refresh_revoked");
}

#[test]
fn refresh_concurrent_twin_within_grace_ok() {
    let a = auth();
    let rec = Rec::new(&a, "correct horse", false);
    let first = login_ok(&a, &rec);
    let RefreshOutcome::Rotated(second) = a
        .refresh(
            &first.tokens.refresh_token,
            &first.family,
            None,
            NOW,
            &mut rng(),
        )
        .unwrap()
    else {
        panic!()
    };
    let RefreshOutcome::Rotated(twin) = a
        .refresh(
            &first.tokens.refresh_token,
            &second.family,
            None,
            NOW + 2,
            &mut rng(),
        )
        .unwrap()
    else {
        panic!("a concurrent refresh within the grace window is not reuse")
    };
    assert_eq!(twin.family, second.family);
    // An older generation than the previous one is reuse even inside the window.
    let RefreshOutcome::Rotated(third) = a
        .refresh(
            &second.tokens.refresh_token,
            &second.family,
            None,
            NOW + 3,
            &mut rng(),
        )
        .unwrap()
    else {
        panic!()
    };
    let r = a.refresh(
        &first.tokens.refresh_token,
        &third.family,
        None,
        NOW + 4,
        &mut rng(),
    );
    assert!(matches!(r.unwrap(), RefreshOutcome::Reused(f) if f.revoked));
}

#[test]
fn refresh_with_foreign_family_or_access_token_fails() {
    let a = auth();
    let rec = Rec::new(&a, "correct horse", false);
    let one = login_ok(&a, &rec);
    let other = a
        .issue_tokens(&rec.user(), &["pwd"], NOW, &mut SeededEntropy::new(3))
        .unwrap();
    let r = a.refresh(
        &one.tokens.refresh_token,
        &other.family,
        None,
        NOW,
        &mut rng(),
    );
    assert_eq!(r.unwrap_err().code(), "token_mismatch");
    let r = a.refresh(&one.tokens.access_token, &one.family, None, NOW, &mut rng());
    assert_eq!(r.unwrap_err().code(), "token_wrong_type");
    let late = NOW + DEFAULT_REFRESH_TTL + 31;
    let r = a.refresh(
        &one.tokens.refresh_token,
        &one.family,
        None,
        late,
        &mut rng(),
    );
    assert_eq!(r.unwrap_err().code(), "token_expired");
}

#[test]
fn refresh_can_update_roles_ok() {
    let a = auth();
    let rec = Rec::new(&a, "correct horse", false);
    let one = login_ok(&a, &rec);
    let roles = vec!["admin".to_string()];
    let mut promoted = rec.user();
    promoted.roles = &roles;
    let RefreshOutcome::Rotated(two) = a
        .refresh(
            &one.tokens.refresh_token,
            &one.family,
            Some(&promoted),
            NOW,
            &mut rng(),
        )
        .unwrap()
    else {
        panic!()
    };
    let c = a
        .verify(&two.tokens.access_token, TokenType::Access, NOW)
        .unwrap();
    assert_eq!(c.roles, roles);
}

#[test]
fn mfa_switching_between_pending_tokens_does_not_reset_count_fails() {
    let a = auth();
    let rec = Rec::new(&a, "correct horse", true);
    let older = a
        .create_mfa_token("user-1", NOW, &mut SeededEntropy::new(1))
        .unwrap();
    let newer = a
        .create_mfa_token("user-1", NOW + 1, &mut SeededEntropy::new(2))
        .unwrap();
    let good = totp::generate(a.totp(), SECRET, NOW + 1).unwrap();
    let bad = if good == "000000" { "111111" } else { "000000" };
    let r = a.verify_mfa(
        &older,
        bad,
        &rec.user(),
        &MfaState::default(),
        NOW + 1,
        &mut rng(),
    );
    let r = a.verify_mfa(&newer, bad, &rec.user(), &r.state, NOW + 1, &mut rng());
    assert_eq!(r.state.consecutive_failures, 2);
    // Going back to the older token is refused, whatever the code.
    let back = a.verify_mfa(&older, &good, &rec.user(), &r.state, NOW + 1, &mut rng());
    assert_eq!(back.outcome.unwrap_err().code(), "mfa_token_used");
    // A completed token cannot complete again after another token was tried.
    let done = a.verify_mfa(&newer, &good, &rec.user(), &r.state, NOW + 1, &mut rng());
    assert!(done.outcome.is_ok());
    assert_eq!(done.state.consecutive_failures, 0);
    let third = a
        .create_mfa_token("user-1", NOW + 2, &mut SeededEntropy::new(3))
        .unwrap();
    let s = a
        .verify_mfa(&third, bad, &rec.user(), &done.state, NOW + 2, &mut rng())
        .state;
    let again = a.verify_mfa(&newer, &good, &rec.user(), &s, NOW + 2, &mut rng());
    assert_eq!(again.outcome.unwrap_err().code(), "mfa_token_used");
}

#[test]
fn mfa_locks_after_consecutive_failures_across_tokens_fails() {
    let key = SigningKey::from_secret(&[7u8; 32], Algorithm::HS256, None).unwrap();
    let limits = FlowLimits::default().with_mfa_max_failures(7).unwrap();
    let a = Authenticator::new(key, limits, fast_hasher(), TotpConfig::default());
    let rec = Rec::new(&a, "correct horse", true);
    let good = totp::generate(a.totp(), SECRET, NOW + 100).unwrap();
    let bad = if good == "000000" { "111111" } else { "000000" };
    let mut state = MfaState::default();
    let mut guesses = 0;
    for i in 0..10u64 {
        let t = a
            .create_mfa_token("user-1", NOW + i, &mut SeededEntropy::new(i))
            .unwrap();
        for _ in 0..DEFAULT_MFA_MAX_ATTEMPTS {
            let r = a.verify_mfa(&t, bad, &rec.user(), &state, NOW + 100, &mut rng());
            if r.outcome
                .as_ref()
                .is_err_and(|e| e.code() == "totp_invalid")
            {
                guesses += 1;
            }
            state = r.state;
        }
    }
    assert_eq!(
        guesses, 7,
        "only mfa_max_failures guesses in a row, whatever the tokens"
    );
    let t = a
        .create_mfa_token("user-1", NOW + 50, &mut SeededEntropy::new(99))
        .unwrap();
    let r = a.verify_mfa(&t, &good, &rec.user(), &state, NOW + 100, &mut rng());
    assert_eq!(r.outcome.unwrap_err().code(), "mfa_locked");
}

#[test]
fn refresh_family_dies_with_password_change_and_age_fails() {
    let a = auth();
    let rec = Rec::new(&a, "correct horse", false);
    let one = login_ok(&a, &rec);
    // Same password: fine, with the user record.
    let ok = a.refresh(
        &one.tokens.refresh_token,
        &one.family,
        Some(&rec.user()),
        NOW,
        &mut rng(),
    );
    let RefreshOutcome::Rotated(two) = ok.unwrap() else {
        panic!()
    };
    let changed = Rec::new(&a, "a brand new password", false);
    let r = a.refresh(
        &two.tokens.refresh_token,
        &two.family,
        Some(&changed.user()),
        NOW,
        &mut rng(),
    );
    assert_eq!(r.unwrap_err().code(), "refresh_revoked");
    // Rotating every 13 days cannot keep a sign-in alive past the family's lifetime.
    let mut issued = two;
    let mut t = NOW;
    let end = NOW + DEFAULT_REFRESH_FAMILY_TTL;
    loop {
        t += 13 * 86_400;
        let r = a.refresh(
            &issued.tokens.refresh_token,
            &issued.family,
            None,
            t,
            &mut rng(),
        );
        match r {
            Ok(RefreshOutcome::Rotated(next)) => {
                assert!(t < end);
                let c = a
                    .verify(&next.tokens.refresh_token, TokenType::Refresh, t)
                    .unwrap();
                assert!(c.exp <= end, "a refresh token never outlives its family");
                issued = next;
            }
            Err(e) => {
                assert!(
                    ["refresh_revoked", "token_expired"].contains(&e.code()),
                    "{e}"
                );
                assert!(t + 30 >= end - 13 * 86_400);
                break;
            }
            Ok(other) => panic!("{other:?}"),
        }
    }
}

#[test]
fn refresh_grace_zero_means_no_grace_fails() {
    let key = SigningKey::from_secret(&[7u8; 32], Algorithm::HS256, None).unwrap();
    let limits = FlowLimits::new(900, 1_209_600, 300, 1_800, 5, 0).unwrap();
    let a = Authenticator::new(key, limits, fast_hasher(), TotpConfig::default());
    let rec = Rec::new(&a, "correct horse", false);
    let one = login_ok(&a, &rec);
    let RefreshOutcome::Rotated(two) = a
        .refresh(
            &one.tokens.refresh_token,
            &one.family,
            None,
            NOW,
            &mut rng(),
        )
        .unwrap()
    else {
        panic!()
    };
    let r = a
        .refresh(
            &one.tokens.refresh_token,
            &two.family,
            None,
            NOW,
            &mut rng(),
        )
        .unwrap();
    assert!(matches!(r, RefreshOutcome::Reused(f) if f.revoked));
}

#[test]
fn debug_output_hides_secrets_ok() {
    let a = auth();
    let rec = Rec::new(&a, "correct horse", true);
    let text = format!("{:?}", rec.user());
    assert!(!text.contains(SECRET) && !text.contains("argon2"));
    let issued = a
        .issue_tokens(&rec.user(), &["pwd"], NOW, &mut rng())
        .unwrap();
    let text = format!(
        "{issued:?} {:?}",
        LoginOutcome::Ok {
            issued: issued.clone(),
            new_password_hash: Some(rec.hash.clone())
        }
    );
    assert!(!text.contains(&issued.tokens.access_token));
    assert!(!text.contains(&issued.tokens.refresh_token));
    assert!(!text.contains("argon2"));
}

#[test]
fn reset_token_single_use_by_password_binding_ok() {
    let a = auth();
    let rec = Rec::new(&a, "correct horse", false);
    let token = a
        .create_password_reset_token(&rec.user(), NOW, &mut rng())
        .unwrap();
    assert_eq!(
        a.verify_password_reset_token(&token, &rec.user(), NOW + 60)
            .unwrap(),
        "user-1"
    );
    // Not an access token.
    assert_eq!(
        a.verify(&token, TokenType::Access, NOW).unwrap_err().code(),
        "token_wrong_type"
    );
    // Once the password changed, the token is dead.
    let changed = Rec::new(&a, "new password!", false);
    let err = a
        .verify_password_reset_token(&token, &changed.user(), NOW + 60)
        .unwrap_err();
    assert_eq!(err.code(), "reset_token_stale");
    let late = NOW + DEFAULT_RESET_TTL + 31;
    let err = a
        .verify_password_reset_token(&token, &rec.user(), late)
        .unwrap_err();
    assert_eq!(err.code(), "token_expired");
    let mut other = rec.user();
    other.id = "user-2";
    assert_eq!(
        a.verify_password_reset_token(&token, &other, NOW)
            .unwrap_err()
            .code(),
        "token_mismatch"
    );
}

#[test]
fn tokens_of_another_key_or_issuer_fail() {
    let a = auth();
    let key = SigningKey::from_secret(&[8u8; 32], Algorithm::HS256, Some("k1".into())).unwrap();
    let b = Authenticator::new(
        key,
        FlowLimits::default(),
        fast_hasher(),
        TotpConfig::default(),
    )
    .with_issuer(Some("https://auth.example.com".into()))
    .with_audience(Some("api".into()));
    let t = b
        .create_access_token("user-1", &[], &["pwd"], NOW, &mut rng())
        .unwrap();
    assert_eq!(
        a.verify(&t, TokenType::Access, NOW).unwrap_err().code(),
        "token_invalid"
    );
    let c = auth().with_issuer(Some("https://other".into()));
    let t = c
        .create_access_token("user-1", &[], &["pwd"], NOW, &mut rng())
        .unwrap();
    assert_eq!(
        a.verify(&t, TokenType::Access, NOW).unwrap_err().code(),
        "token_issuer_invalid"
    );
}

#[test]
fn limits_bounds_fail() {
    assert!(FlowLimits::new(900, 1_209_600, 300, 1_800, 5, 10).is_ok());
    assert_eq!(
        FlowLimits::new(10, 1_209_600, 300, 1_800, 5, 10)
            .unwrap_err()
            .field,
        "accessTokenTtl"
    );
    assert_eq!(
        FlowLimits::new(900, 900, 300, 1_800, 5, 10)
            .unwrap_err()
            .field,
        "refreshTokenTtl"
    );
    assert_eq!(
        FlowLimits::new(900, 1_209_600, 300, 600, 5, 10)
            .unwrap_err()
            .field,
        "resetTokenTtl"
    );
    assert_eq!(
        FlowLimits::new(900, 1_209_600, 300, 1_800, 0, 10)
            .unwrap_err()
            .field,
        "mfaMaxAttempts"
    );
    assert_eq!(
        FlowLimits::new(900, 1_209_600, 300, 1_800, 5, 999)
            .unwrap_err()
            .field,
        "refreshGrace"
    );
}

const NEW_SECRET: &str = "KRSXG5CTMVRXEZLUKRSXG5CTMVRXEZLU";

#[test]
fn mfa_token_from_before_password_change_fails() {
    let a = auth();
    let rec = Rec::new(&a, "correct horse", true);
    let token = mfa_token(&a, &rec);
    let code = totp::generate(a.totp(), SECRET, NOW).unwrap();
    // The password was reset after this sign-in started.
    let reset = Rec::new(&a, "a new passphrase", true);
    let r = a.verify_mfa(
        &token,
        &code,
        &reset.user(),
        &MfaState::default(),
        NOW,
        &mut rng(),
    );
    assert_eq!(r.outcome.unwrap_err().code(), "mfa_token_stale");
    // With the hash it was made for it still works.
    let ok = a.verify_mfa(
        &token,
        &code,
        &rec.user(),
        &MfaState::default(),
        NOW,
        &mut rng(),
    );
    assert!(ok.outcome.is_ok());
}

#[test]
fn login_with_rehash_binds_tokens_to_the_new_hash_ok() {
    let old = PasswordHasher::new(Params::new(2, 64, 1).unwrap(), PasswordPolicy::default());
    let hash = old
        .hash("correct horse", &mut SeededEntropy::new(3))
        .unwrap();
    let a = auth();
    let roles = vec![];
    for mfa in [false, true] {
        let user = User {
            id: "user-1",
            password_hash: &hash,
            roles: &roles,
            mfa_enabled: mfa,
            mfa_secret: mfa.then_some(SECRET),
            session_epoch: 0,
        };
        fn stored<'a>(user: &User<'a>, h: &'a str) -> User<'a> {
            User {
                password_hash: h,
                ..*user
            }
        }
        match a
            .login(Some(&user), "correct horse", NOW, &mut rng())
            .unwrap()
        {
            LoginOutcome::Ok {
                issued,
                new_password_hash: Some(h),
            } => {
                let r = a.refresh(
                    &issued.tokens.refresh_token,
                    &issued.family,
                    Some(&stored(&user, &h)),
                    NOW + 1,
                    &mut rng(),
                );
                assert!(matches!(r, Ok(RefreshOutcome::Rotated(_))), "{r:?}");
            }
            LoginOutcome::MfaRequired {
                mfa_token,
                new_password_hash: Some(h),
            } => {
                let code = totp::generate(a.totp(), SECRET, NOW).unwrap();
                let r = a.verify_mfa(
                    &mfa_token,
                    &code,
                    &stored(&user, &h),
                    &MfaState::default(),
                    NOW,
                    &mut rng(),
                );
                assert!(r.outcome.is_ok(), "{:?}", r.outcome);
            }
            other => panic!("expected a rehash, got {other:?}"),
        }
    }
}

#[test]
fn reenrolment_keeps_each_pending_token_single_use_fails() {
    let a = auth();
    let rec = Rec::new(&a, "correct horse", true);
    let token = mfa_token(&a, &rec);
    let code = totp::generate(a.totp(), SECRET, NOW).unwrap();
    let signed_in = a.verify_mfa(
        &token,
        &code,
        &rec.user(),
        &MfaState::default(),
        NOW,
        &mut rng(),
    );
    assert!(signed_in.outcome.is_ok());
    // Re-enrolment with a new secret, 2 minutes later.
    let t = NOW + 120;
    let new_code = totp::generate(a.totp(), NEW_SECRET, t).unwrap();
    let codes = generate_recovery_codes(2, &mut SeededEntropy::new(8)).unwrap();
    let state = a
        .enrol_mfa(
            &signed_in.state,
            NEW_SECRET,
            &new_code,
            codes.hashes.clone(),
            t,
        )
        .unwrap();
    assert_eq!(state.recovery_hashes, codes.hashes);
    assert_eq!(state.last_totp_step, Some(t / 30));
    let user = User {
        mfa_secret: Some(NEW_SECRET),
        ..rec.user()
    };
    let later = totp::generate(a.totp(), NEW_SECRET, t + 30).unwrap();
    let again = a.verify_mfa(&token, &later, &user, &state, t + 30, &mut rng());
    assert_eq!(again.outcome.unwrap_err().code(), "mfa_token_used");
    // A wrong enrolment code changes nothing.
    let bad = if new_code == "000000" {
        "111111"
    } else {
        "000000"
    };
    assert_eq!(
        a.enrol_mfa(&state, NEW_SECRET, bad, vec![], t)
            .unwrap_err()
            .code(),
        "totp_invalid"
    );
}

#[test]
fn mfa_change_needs_fresh_proof_fails() {
    let a = auth();
    let rec = Rec::new(&a, "correct horse", true);
    let st = MfaState::default();
    let code = |e: &MfaChange| e.outcome.as_ref().err().map(ErrorCode::code);
    let check = |p: Proof<'_>| a.authorize_mfa_change(&rec.user(), &st, p, NOW);
    // A session or token alone: only a recent sign-in counts.
    assert_eq!(code(&check(Proof::AuthTime(NOW - FRESH_AUTH_WINDOW))), None);
    assert_eq!(
        code(&check(Proof::AuthTime(NOW - FRESH_AUTH_WINDOW - 1))),
        Some("reauthentication_required")
    );
    assert_eq!(
        code(&check(Proof::AuthTime(NOW + 3600))),
        Some("reauthentication_required")
    );
    assert_eq!(
        code(&check(Proof::Password("wrong"))),
        Some("reauthentication_required")
    );
    assert_eq!(code(&check(Proof::Password("correct horse"))), None);
    let totp_now = totp::generate(a.totp(), SECRET, NOW).unwrap();
    let ok = check(Proof::Code(&totp_now));
    assert_eq!(code(&ok), None);
    assert_eq!(ok.state.last_totp_step, Some(NOW / 30), "the code is spent");
    let replay = a.authorize_mfa_change(&rec.user(), &ok.state, Proof::Code(&totp_now), NOW);
    assert_eq!(code(&replay), Some("totp_replayed"));
    assert_eq!(
        replay.state.consecutive_failures, 1,
        "wrong codes count toward the lock"
    );
    // Without MFA there is no code to show: the password is the proof.
    let plain = Rec::new(&a, "correct horse", false);
    let r = a.authorize_mfa_change(&plain.user(), &st, Proof::Code(&totp_now), NOW);
    assert_eq!(code(&r), Some("reauthentication_required"));
    assert!(format!("{:?}", Proof::Password("correct horse")).contains(".."));
}

#[test]
fn mfa_lock_opens_with_recovery_code_or_password_reset_ok() {
    let a = auth();
    let rec = Rec::new(&a, "correct horse", true);
    let codes = generate_recovery_codes(2, &mut SeededEntropy::new(5)).unwrap();
    let locked = MfaState {
        recovery_hashes: codes.hashes.clone(),
        consecutive_failures: DEFAULT_MFA_MAX_FAILURES,
        ..MfaState::default()
    };
    let good = totp::generate(a.totp(), SECRET, NOW).unwrap();
    let token = mfa_token(&a, &rec);
    let r = a.verify_mfa(&token, &good, &rec.user(), &locked, NOW, &mut rng());
    assert_eq!(
        r.outcome.unwrap_err().code(),
        "mfa_locked",
        "TOTP stays locked"
    );
    let r = a.verify_mfa(
        &token,
        &codes.codes[0],
        &rec.user(),
        &r.state,
        NOW,
        &mut rng(),
    );
    assert_eq!(r.outcome.unwrap().1, MfaMethod::Recovery);
    assert_eq!(r.state.consecutive_failures, 0, "a recovery code unlocks");
    // A password reset clears the lock as well, and ends every session.
    let reset = a
        .create_password_reset_token(&rec.user(), NOW, &mut rng())
        .unwrap();
    let sessions = crate::session::SessionState::default();
    let done = a
        .reset_password(
            &reset,
            &rec.user(),
            "a new passphrase",
            Some(&locked),
            &sessions,
            NOW,
            &mut rng(),
        )
        .unwrap();
    let unlocked = done.mfa_state.clone().unwrap();
    assert_eq!(unlocked.consecutive_failures, 0);
    assert_eq!(unlocked.recovery_hashes, codes.hashes);
    assert_eq!(done.sessions.epoch, 1);
    assert!(a
        .hasher()
        .verify(&done.password_hash, "a new passphrase")
        .unwrap());
    assert!(!format!("{done:?}").contains("argon2"));
    // The used link is dead.
    let user = User {
        password_hash: &done.password_hash,
        ..rec.user()
    };
    let again = a.reset_password(&reset, &user, "third", None, &sessions, NOW, &mut rng());
    assert_eq!(again.unwrap_err().code(), "reset_token_stale");
}

#[test]
fn password_reset_request_and_change_ok() {
    let a = auth();
    let rec = Rec::new(&a, "correct horse", false);
    let known = a
        .request_password_reset(Some(&rec.user()), NOW, &mut rng())
        .unwrap();
    let token = known.unwrap();
    assert_eq!(
        a.verify_password_reset_token(&token, &rec.user(), NOW)
            .unwrap(),
        "user-1"
    );
    assert_eq!(
        a.request_password_reset(None, NOW, &mut rng()).unwrap(),
        None
    );
    let sessions = crate::session::SessionState {
        epoch: 4,
        revoked: vec![],
    };
    let wrong = a.change_password(
        &rec.user(),
        "nope",
        "new one here",
        None,
        &sessions,
        &mut rng(),
    );
    assert_eq!(wrong.unwrap_err().code(), "reauthentication_required");
    let done = a
        .change_password(
            &rec.user(),
            "correct horse",
            "new one here",
            None,
            &sessions,
            &mut rng(),
        )
        .unwrap();
    assert_eq!(done.sessions.epoch, 5);
    assert!(done.mfa_state.is_none());
    // Reset links made before the change are dead.
    let user = User {
        password_hash: &done.password_hash,
        ..rec.user()
    };
    assert_eq!(
        a.verify_password_reset_token(&token, &user, NOW)
            .unwrap_err()
            .code(),
        "reset_token_stale"
    );
}

#[test]
fn access_tokens_carry_auth_time_of_the_sign_in_ok() {
    let a = auth();
    let rec = Rec::new(&a, "correct horse", false);
    let issued = login_ok(&a, &rec);
    let auth_time =
        |t: &str, now| a.verify(t, TokenType::Access, now).unwrap().extra["auth_time"].as_u64();
    assert_eq!(auth_time(&issued.tokens.access_token, NOW), Some(NOW));
    let Ok(RefreshOutcome::Rotated(next)) = a.refresh(
        &issued.tokens.refresh_token,
        &issued.family,
        Some(&rec.user()),
        NOW + 600,
        &mut rng(),
    ) else {
        panic!("rotation")
    };
    assert_eq!(
        auth_time(&next.tokens.access_token, NOW + 600),
        Some(NOW),
        "kept across refresh"
    );
}

#[test]
fn access_token_of_an_older_session_epoch_fails() {
    use crate::session::SessionState;
    let a = auth();
    let rec = Rec::new(&a, "correct horse", false);
    let user = User {
        session_epoch: 3,
        ..rec.user()
    };
    let issued = a.issue_tokens(&user, &["pwd"], NOW, &mut rng()).unwrap();
    let token = &issued.tokens.access_token;
    let current = SessionState {
        epoch: 3,
        revoked: Vec::new(),
    };
    let c = a.verify_access_current(token, &current, NOW).unwrap();
    assert_eq!(c.extra.get("sep"), Some(&serde_json::Value::from(3_u64)));
    // Password change, reset, "sign out everywhere": the next epoch refuses the token.
    let ended = current.end_all();
    assert_eq!(
        a.verify_access_current(token, &ended, NOW)
            .unwrap_err()
            .code(),
        "token_invalid"
    );
    // A token with no `sep` (not from a sign-in) is refused at account endpoints.
    let bare = a
        .create_access_token("user-1", &[], &["pwd"], NOW, &mut rng())
        .unwrap();
    assert!(a
        .verify_access_current(&bare, &SessionState::default(), NOW)
        .is_err());
    // The stateless check still takes both.
    assert!(a.verify(token, TokenType::Access, NOW).is_ok());
    // Rotation with the user record carries the current epoch; without it, none.
    let r = a
        .refresh(
            &issued.tokens.refresh_token,
            &issued.family,
            Some(&User {
                session_epoch: 4,
                ..user
            }),
            NOW,
            &mut rng(),
        )
        .unwrap();
    let RefreshOutcome::Rotated(next) = r else {
        panic!("rotated")
    };
    assert!(a
        .verify_access_current(&next.tokens.access_token, &current, NOW)
        .is_err());
    let four = SessionState {
        epoch: 4,
        revoked: Vec::new(),
    };
    assert!(a
        .verify_access_current(&next.tokens.access_token, &four, NOW)
        .is_ok());
    // "sep" is keygate's own claim.
    let mut m = serde_json::Map::new();
    m.insert("sep".to_owned(), 99.into());
    assert!(crate::token::CustomClaims::new(m).is_err());
}

#[test]
fn key_ring_rotation_ok() {
    use crate::token::KeyRing;
    let gen = |kid: &str, seed| {
        SigningKey::generate(
            Algorithm::EdDSA,
            Some(kid.into()),
            &mut SeededEntropy::new(seed),
        )
        .unwrap()
    };
    let (old, new) = (gen("old", 1), gen("new", 2));
    let before = Authenticator::new(
        old.clone(),
        FlowLimits::default(),
        fast_hasher(),
        TotpConfig::default(),
    );
    let ring = KeyRing::new(new.clone(), vec![old.verifying_key().clone()]).unwrap();
    let after = Authenticator::with_key_ring(
        ring,
        FlowLimits::default(),
        fast_hasher(),
        TotpConfig::default(),
    );
    let old_token = before
        .create_access_token("u", &[], &["pwd"], NOW, &mut rng())
        .unwrap();
    let new_token = after
        .create_access_token("u", &[], &["pwd"], NOW, &mut rng())
        .unwrap();
    let kid = |t: &str| {
        crate::token::Header::parse(t.split('.').next().unwrap())
            .unwrap()
            .kid
    };
    assert_eq!(kid(&new_token).as_deref(), Some("new"));
    assert!(after.verify(&old_token, TokenType::Access, NOW).is_ok());
    assert!(after.verify(&new_token, TokenType::Access, NOW).is_ok());
    // Retired: only the new key left.
    let retired = Authenticator::new(
        new,
        FlowLimits::default(),
        fast_hasher(),
        TotpConfig::default(),
    );
    assert_eq!(
        retired
            .verify(&old_token, TokenType::Access, NOW)
            .unwrap_err()
            .code(),
        "token_unknown_key"
    );
}
