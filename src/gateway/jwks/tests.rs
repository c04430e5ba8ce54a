//! The key-set cache on a fake clock, and the gateway deciding with fetched keys.

use super::*;
use crate::gateway::decision::{CalloutResponse, Decision};
use crate::gateway::request::MockRequest;
use crate::gateway::{Gateway, MemoryStore};
use crate::token::{encode, Algorithm, Claims, Jwks, SigningKey};
use crate::{ErrorCode, SeededEntropy};

const T0: u64 = 1_700_000_000_000;

fn config(json: &str) -> RemoteJwksConfig {
    serde_json::from_str(json).unwrap()
}

fn remote() -> RemoteJwks {
    RemoteJwks::new(&config(
        r#"{"cluster": "auth", "uri": "http://Auth.internal:8443/.well-known/jwks.json"}"#,
    ))
    .unwrap()
}

fn ed(kid: &str, seed: u64) -> SigningKey {
    SigningKey::generate(
        Algorithm::EdDSA,
        Some(kid.into()),
        &mut SeededEntropy::new(seed),
    )
    .unwrap()
}

fn jwks_of(keys: &[&SigningKey]) -> Vec<u8> {
    Jwks {
        keys: keys.iter().filter_map(|k| k.public_jwk()).collect(),
    }
    .to_string()
    .into_bytes()
}

fn ok(id: CalloutId, body: Vec<u8>) -> CalloutResult {
    CalloutResult {
        id,
        response: Ok(CalloutResponse {
            status: 200,
            body_len: body.len(),
            body,
        }),
    }
}

fn failed(id: CalloutId, failure: CalloutFailure) -> CalloutResult {
    CalloutResult {
        id,
        response: Err(failure),
    }
}

/// Ids for tests: 1, 2, 3, …
struct Ids(u64);

impl Ids {
    fn next(&mut self) -> CalloutId {
        self.0 += 1;
        CalloutId(self.0)
    }
}

fn started(c: Option<Callout>) -> CalloutId {
    let c = c.expect("a fetch is due");
    assert!(c.request.is_some(), "a new fetch has a request to send");
    c.id
}

// --- configuration -------------------------------------------------------------------------

#[test]
fn config_defaults_ok() {
    let r = remote();
    assert_eq!(r.cluster(), "auth");
    assert_eq!(
        (r.cache_ms, r.timeout_ms, r.min_refetch_ms),
        (600_000, 2_000, 30_000)
    );
    let c = r.http_callout();
    assert_eq!(c.cluster, "auth");
    assert_eq!(c.timeout_ms, 2_000);
    assert_eq!(c.max_response_bytes, 65_536);
    let h = |name: &str| {
        c.headers
            .iter()
            .find(|(k, _)| *k == name)
            .unwrap()
            .1
            .clone()
    };
    assert_eq!(h(":method"), "GET");
    assert_eq!(h(":path"), "/.well-known/jwks.json");
    assert_eq!(h(":authority"), "auth.internal:8443");
    assert_eq!(h(":scheme"), "http");
    let r = RemoteJwks::new(&config(
        r#"{"cluster": "a", "uri": "HTTPS://idp.example.com?tenant=1", "cache_secs": 30,
            "timeout_ms": 30000, "min_refetch_secs": 3600}"#,
    ))
    .unwrap();
    assert_eq!(
        (
            r.scheme,
            r.path.as_str(),
            r.cache_ms,
            r.timeout_ms,
            r.min_refetch_ms
        ),
        ("https", "/?tenant=1", 30_000, 30_000, 3_600_000)
    );
    assert_eq!(parse_uri("http://h").unwrap().2, "/");
}

#[test]
fn config_bounds_fails() {
    let cases = [
        (r#"{"uri": "http://a/j"}"#, "cluster"),
        (r#"{"cluster": "", "uri": "http://a/j"}"#, "cluster"),
        (r#"{"cluster": "a b", "uri": "http://a/j"}"#, "cluster"),
        (r#"{"cluster": "a"}"#, "uri"),
        (r#"{"cluster": "a", "uri": "ftp://a/j"}"#, "uri"),
        (r#"{"cluster": "a", "uri": "a/j"}"#, "uri"),
        (r#"{"cluster": "a", "uri": "http:///j"}"#, "uri"),
        (r#"{"cluster": "a", "uri": "http://u:p@a/j"}"#, "uri"),
        (r#"{"cluster": "a", "uri": "http://a/j#x"}"#, "uri"),
        (r#"{"cluster": "a", "uri": "http://a/j k"}"#, "uri"),
        (
            r#"{"cluster": "a", "uri": "http://a/j", "cache_secs": 29}"#,
            "cache_secs",
        ),
        (
            r#"{"cluster": "a", "uri": "http://a/j", "cache_secs": 86401}"#,
            "cache_secs",
        ),
        (
            r#"{"cluster": "a", "uri": "http://a/j", "timeout_ms": 99}"#,
            "timeout_ms",
        ),
        (
            r#"{"cluster": "a", "uri": "http://a/j", "timeout_ms": 30001}"#,
            "timeout_ms",
        ),
        (
            r#"{"cluster": "a", "uri": "http://a/j", "min_refetch_secs": 0}"#,
            "min_refetch_secs",
        ),
        (
            r#"{"cluster": "a", "uri": "http://a/j", "min_refetch_secs": 3601}"#,
            "min_refetch_secs",
        ),
    ];
    for (json, field) in cases {
        let e = RemoteJwks::new(&config(json)).unwrap_err();
        assert_eq!(e.field, field, "{json}: {e}");
    }
    let long = format!(
        r#"{{"cluster": "a", "uri": "http://a/{}"}}"#,
        "x".repeat(MAX_URI_LEN)
    );
    assert_eq!(RemoteJwks::new(&config(&long)).unwrap_err().field, "uri");
}

// --- when to fetch -------------------------------------------------------------------------

#[test]
fn first_fetch_at_once_then_every_cache_secs_ok() {
    let (mut c, mut ids) = (JwksCache::new(remote(), None), Ids(0));
    assert!(!c.is_loaded() && c.keys().is_none());
    let id = started(c.poll(T0, || ids.next()));
    assert!(
        c.poll(T0 + 10, || ids.next()).is_none(),
        "one fetch at a time"
    );
    let report = c
        .complete(&ok(id, jwks_of(&[&ed("a", 1)])), T0 + 50)
        .unwrap();
    assert!(report.ok && report.keys == 1, "{report:?}");
    assert_eq!(report.metric(), Metric::JwksFetched);
    assert!(c.is_loaded());
    assert!(c.keys().unwrap().get("a").is_some());
    assert!(c.poll(T0 + 50 + 599_999, || ids.next()).is_none());
    started(c.poll(T0 + 50 + 600_000, || ids.next()));
}

#[test]
fn failure_backs_off_doubling_to_cache_secs_and_keeps_last_good_ok() {
    let r = RemoteJwks::new(&config(
        r#"{"cluster": "a", "uri": "http://a/j", "cache_secs": 30}"#,
    ))
    .unwrap();
    let (mut c, mut ids) = (JwksCache::new(r, None), Ids(0));
    let id = started(c.poll(T0, || ids.next()));
    c.complete(&ok(id, jwks_of(&[&ed("a", 1)])), T0).unwrap();
    let mut now = T0 + 30_000;
    let mut delays = Vec::new();
    for _ in 0..7 {
        let id = started(c.poll(now, || ids.next()));
        let report = c
            .complete(&failed(id, CalloutFailure::NoResponse), now + 5)
            .unwrap();
        assert!(!report.ok && report.keys == 1);
        assert_eq!(report.metric(), Metric::JwksFetchFailed);
        assert!(
            report
                .message
                .contains("keeping the last good set (1 keys)"),
            "{}",
            report.message
        );
        now += 5;
        let mut waited = 0;
        while c.poll(now + waited, || ids.next()).is_none() {
            waited += 1;
            assert!(waited <= 30_000);
        }
        // That poll started the next fetch: give it up to try again.
        c.in_flight = None;
        delays.push(waited);
        now += waited;
        assert!(c.keys().unwrap().get("a").is_some(), "last good set kept");
    }
    assert_eq!(delays, [1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000]);
    // A success resets the backoff.
    let id = started(c.poll(now, || ids.next()));
    c.complete(&ok(id, jwks_of(&[&ed("b", 2)])), now).unwrap();
    assert!(c.keys().unwrap().get("b").is_some() && c.keys().unwrap().get("a").is_none());
    assert!(c.poll(now + 29_999, || ids.next()).is_none());
}

#[test]
fn unknown_key_refetch_has_a_floor_and_is_shared_ok() {
    let (mut c, mut ids) = (JwksCache::new(remote(), None), Ids(0));
    let id = started(c.poll(T0, || ids.next()));
    // Requests arriving during the first fetch share it.
    assert_eq!(
        c.refetch(T0 + 1, || ids.next()),
        Refetch::Wait(Callout { id, request: None })
    );
    c.complete(&ok(id, jwks_of(&[&ed("a", 1)])), T0 + 100)
        .unwrap();
    // Within 30 s of the last start: no new fetch, however many unknown kids come.
    for t in [T0 + 100, T0 + 10_000, T0 + 29_999] {
        assert_eq!(c.refetch(t, || ids.next()), Refetch::TooSoon);
    }
    let Refetch::Wait(first) = c.refetch(T0 + 30_000, || ids.next()) else {
        panic!("the floor has passed")
    };
    assert!(first.request.is_some());
    for _ in 1..MAX_WAITING {
        assert_eq!(
            c.refetch(T0 + 30_001, || ids.next()),
            Refetch::Wait(Callout {
                id: first.id,
                request: None
            })
        );
    }
    assert_eq!(c.refetch(T0 + 30_002, || ids.next()), Refetch::Busy);
    // Unrelated results change nothing.
    assert!(c
        .complete(&ok(CalloutId(999), Vec::new()), T0 + 30_003)
        .is_none());
    c.complete(&ok(first.id, jwks_of(&[&ed("b", 2)])), T0 + 30_010)
        .unwrap();
    assert!(c.keys().unwrap().get("b").is_some());
    assert_eq!(c.refetch(T0 + 30_020, || ids.next()), Refetch::TooSoon);
    // The refetch also moved the next refresh.
    assert!(c.poll(T0 + 30_010 + 599_999, || ids.next()).is_none());
    assert!(c.poll(T0 + 30_010 + 600_000, || ids.next()).is_some());
}

#[test]
fn unanswered_fetch_is_given_up_ok() {
    let (mut c, mut ids) = (JwksCache::new(remote(), None), Ids(0));
    let id = started(c.poll(T0, || ids.next()));
    assert!(c.poll(T0 + 5_000, || ids.next()).is_none());
    let again = started(c.poll(T0 + 5_001, || ids.next()));
    assert_ne!(id, again);
    assert!(c
        .complete(&ok(id, jwks_of(&[&ed("a", 1)])), T0 + 5_002)
        .is_none());
    assert!(
        c.complete(&ok(again, jwks_of(&[&ed("a", 1)])), T0 + 5_003)
            .unwrap()
            .ok
    );
}

// --- what a fetch brings -------------------------------------------------------------------

fn fetch_once(
    c: &mut JwksCache,
    response: Result<CalloutResponse, CalloutFailure>,
    took: u64,
) -> FetchReport {
    let id = c
        .poll(T0, || CalloutId(7))
        .map(|x| x.id)
        .unwrap_or_else(|| {
            c.in_flight = Some(InFlight {
                id: CalloutId(7),
                started_ms: T0,
            });
            CalloutId(7)
        });
    c.complete(&CalloutResult { id, response }, T0 + took)
        .unwrap()
}

fn body(status: u16, body: &[u8]) -> Result<CalloutResponse, CalloutFailure> {
    Ok(CalloutResponse {
        status,
        body: body.to_vec(),
        body_len: body.len(),
    })
}

#[test]
fn bad_answers_fail_and_say_why_fails() {
    let secret_jwks = br#"{"keys": "topsecretvalue-xyz"}"#;
    let big = CalloutResponse {
        status: 200,
        body: vec![b' '; MAX_JWKS_RESPONSE_BYTES + 1],
        body_len: 10 * 1024 * 1024,
    };
    let p384 = r#"{"kty":"EC","crv":"P-384","x":"AAAA","y":"AAAA"}"#;
    let enc = r#"{"kty":"RSA","use":"enc","n":"AQAB","e":"AQAB"}"#;
    let cases: Vec<(Result<CalloutResponse, CalloutFailure>, u64, &str)> = vec![
        (
            Err(CalloutFailure::NoResponse),
            2_000,
            "no answer within 2000 ms",
        ),
        (
            Err(CalloutFailure::NoResponse),
            3,
            "connection refused or reset",
        ),
        (
            Err(CalloutFailure::DispatchFailed),
            0,
            "is cluster `auth` defined?",
        ),
        (body(503, b"{}"), 1, "status 503, expected 200"),
        // The proxy's timer fires early by its loop's skew: still its timeout.
        (
            Err(CalloutFailure::NoResponse),
            1_600,
            "no answer within 2000 ms",
        ),
        (
            body(504, b"timeout"),
            1_700,
            "no answer within 2000 ms (status 504)",
        ),
        // A quick 504 is the server's.
        (body(504, b"busy"), 10, "status 504, expected 200"),
        (
            body(504, b"timeout"),
            2_000,
            "no answer within 2000 ms (status 504)",
        ),
        (Ok(big), 1, "10485760 bytes, over the 65536-byte limit"),
        (
            body(200, b"<html>"),
            1,
            "not a JWK Set: the body is not JSON",
        ),
        (
            body(200, br#"{"kids": []}"#),
            1,
            "not a JWK Set: the body has no `keys` array",
        ),
        (body(200, secret_jwks), 1, "not a JWK Set"),
        (
            body(200, br#"{"keys": []}"#),
            1,
            "no usable key (0 skipped)",
        ),
        (
            body(
                200,
                format!(r#"{{"keys": [{p384}, {enc}, {{"kty": "OKP"}}, 5]}}"#).as_bytes(),
            ),
            1,
            "no usable key (4 skipped: `keys[0].crv`",
        ),
    ];
    for (response, took, why) in cases {
        let mut c = JwksCache::new(remote(), None);
        let report = fetch_once(&mut c, response, took);
        assert!(!report.ok, "{why}");
        assert!(
            report.message.contains(why),
            "{why} not in: {}",
            report.message
        );
        assert!(
            report.message.contains("no key set loaded yet"),
            "{}",
            report.message
        );
        assert!(!report.message.contains("topsecret"), "{}", report.message);
        assert!(!c.is_loaded() && c.keys().is_none());
    }
}

#[test]
fn mixed_idp_set_keeps_the_usable_keys_ok() {
    let mut rng = SeededEntropy::new(9);
    let es = SigningKey::generate(Algorithm::ES256, Some("es".into()), &mut rng).unwrap();
    let edk = ed("ed", 3);
    let mut keys = vec![
        serde_json::json!({"kty": "RSA", "use": "enc", "kid": "rsa-enc", "n": "sXch", "e": "AQAB"}),
        serde_json::json!({"kty": "EC", "crv": "P-384", "kid": "p384", "x": "AAAA", "y": "AAAA"}),
        serde_json::json!({"kty": "kyber", "kid": "pq"}),
        serde_json::json!({"kty": "oct", "kid": "short", "alg": "HS256", "k": "c2hvcnQ"}),
        serde_json::json!({"kty": "OKP", "crv": "Ed25519", "kid": 5, "x": "AAAA"}),
    ];
    keys.push(serde_json::to_value(es.public_jwk().unwrap()).unwrap());
    keys.push(serde_json::to_value(edk.public_jwk().unwrap()).unwrap());
    keys.push(serde_json::to_value(edk.public_jwk().unwrap()).unwrap());
    let doc = serde_json::json!({"keys": keys, "other": {"x": 1}}).to_string();
    let mut c = JwksCache::new(remote(), None);
    let report = fetch_once(&mut c, body(200, doc.as_bytes()), 1);
    assert!(report.ok, "{report:?}");
    assert_eq!(report.keys, 2);
    assert!(
        report.message.contains("2 keys (6 skipped: `keys[0].use`"),
        "{}",
        report.message
    );
    let set = c.keys().unwrap();
    assert_eq!(set.keys().len(), 2);
    assert_eq!(set.get("es").unwrap().alg(), Algorithm::ES256);
    assert_eq!(set.get("ed").unwrap().alg(), Algorithm::EdDSA);
    let (_, skipped) = usable_keys(doc.as_bytes(), &[], false).unwrap();
    assert!(
        skipped[3].starts_with("`keys[3].k`: HS256 secret must be at least 32 bytes"),
        "{skipped:?}"
    );
    assert!(
        skipped[4].contains("not a JWK with string members"),
        "{skipped:?}"
    );
    assert!(
        skipped[5].contains("`keys[7].kid`: a duplicate kid"),
        "{skipped:?}"
    );
}

#[test]
fn inline_keys_stay_next_to_fetched_ones_ok() {
    let inline = KeySet::from(&ed("inline", 4));
    let mut c = JwksCache::new(remote(), Some(&inline));
    assert!(c.keys().unwrap().get("inline").is_some() && !c.is_loaded());
    let impostor = ed("inline", 5);
    let report = fetch_once(&mut c, body(200, &jwks_of(&[&impostor, &ed("f", 6)])), 1);
    assert!(report.ok && report.keys == 1, "{report:?}");
    assert!(
        report.message.contains("the kid of an inline key"),
        "{}",
        report.message
    );
    let set = c.keys().unwrap();
    assert_eq!(set.keys().len(), 2);
    assert_eq!(
        set.get("inline").unwrap().public_jwk(),
        inline.keys()[0].public_jwk(),
        "an inline kid is never replaced by a fetched key"
    );
    // At most MAX_KEYS in all.
    let many: Vec<SigningKey> = (0..MAX_KEYS as u64)
        .map(|i| ed(&format!("k{i}"), 100 + i))
        .collect();
    let refs: Vec<&SigningKey> = many.iter().collect();
    let mut c = JwksCache::new(remote(), Some(&inline));
    let report = fetch_once(&mut c, body(200, &jwks_of(&refs)), 1);
    assert_eq!(report.keys, MAX_KEYS - 1);
    assert_eq!(c.keys().unwrap().keys().len(), MAX_KEYS);
}

// --- the gateway with fetched keys ---------------------------------------------------------

const NOW_MS: u64 = 1_700_000_000_000;

fn remote_gateway(extra: &str) -> Gateway {
    Gateway::from_json(
        format!(
            r#"{{"remote_jwks": {{"cluster": "auth", "uri": "http://auth/jwks", "min_refetch_secs": 10}},
               "rules": [{{"prefix": "/pub", "allow": "public"}}, {{"prefix": "/", "allow": "authenticated"}}]{extra}}}"#
        )
        .as_bytes(),
    )
    .unwrap()
}

fn token_of(key: &SigningKey) -> String {
    encode(&Claims::access("u1", vec![], NOW_MS / 1000, 900), key).unwrap()
}

fn get(path: &str, token: Option<&str>) -> MockRequest {
    let r = MockRequest::get(path);
    match token {
        Some(t) => r.bearer(t),
        None => r,
    }
}

fn wait(d: Decision<'_>) -> (Callout, crate::gateway::Pending) {
    match d {
        Decision::Wait(c, p) => (c, p),
        other => panic!("expected to wait, got {other:?}"),
    }
}

fn status_code(d: &Decision<'_>) -> (u16, &'static str) {
    match d {
        Decision::Continue(_) => (200, "ok"),
        Decision::Reply(r) => (r.status, r.code),
        Decision::Wait(..) => (0, "wait"),
    }
}

#[test]
fn not_loaded_waits_then_503_fails() {
    let (g, s) = (remote_gateway(""), MemoryStore::new());
    assert!(g.has_remote_jwks());
    let tick = g.tick(NOW_MS);
    assert_eq!(tick.len(), 1);
    assert!(g.tick(NOW_MS + 1).is_empty());
    let t = token_of(&ed("a", 1));
    // Decided without keys, as before.
    assert_eq!(
        status_code(&g.check(&get("/pub", Some(&t)), &s, NOW_MS)),
        (200, "ok")
    );
    assert_eq!(
        status_code(&g.check(&get("/x", None), &s, NOW_MS)),
        (401, "token_missing")
    );
    assert_eq!(
        status_code(&g.check(&get("/x", Some("abc")), &s, NOW_MS)),
        (401, "token_malformed")
    );
    // A token waits for the fetch under way.
    let (callout, pending) = wait(g.check(&get("/x", Some(&t)), &s, NOW_MS + 2));
    assert_eq!(
        callout,
        Callout {
            id: tick[0].id,
            request: None
        }
    );
    assert_eq!(pending.callout(), tick[0].id);
    assert!(
        !format!("{pending:?}").contains(&t),
        "Debug never shows the token"
    );
    let result = failed(tick[0].id, CalloutFailure::NoResponse);
    let report = g.complete(&result, NOW_MS + 3).unwrap();
    assert!(!report.ok);
    let d = g.resume(pending, &result, &s, NOW_MS + 3);
    let Decision::Reply(r) = d else {
        panic!("{d:?}")
    };
    assert_eq!((r.status, r.code), (503, "jwks_unavailable"));
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(r.metric, Metric::JwksUnavailable);
    // Within the floor, no fetch: 503 at once, never a pass-through or a 401.
    assert_eq!(
        status_code(&g.check(&get("/x", Some(&t)), &s, NOW_MS + 4)),
        (503, "jwks_unavailable")
    );
}

#[test]
fn rotation_refetches_on_unknown_kid_ok() {
    let (g, s) = (
        remote_gateway(r#", "claims_to_headers": {"sub": "x-sub"}"#),
        MemoryStore::new(),
    );
    let (old, new) = (ed("old", 1), ed("new", 2));
    let id = g.tick(NOW_MS)[0].id;
    g.complete(&ok(id, jwks_of(&[&old])), NOW_MS).unwrap();
    assert_eq!(g.jwks_keys(), Some(1));
    let d = g.check(&get("/x", Some(&token_of(&old))), &s, NOW_MS);
    let Decision::Continue(f) = d else {
        panic!("{d:?}")
    };
    assert_eq!(f.set_request_headers, [("x-sub", "u1".to_owned())]);
    // The issuer starts publishing `new`; the first request with it waits for a refetch.
    let later = NOW_MS + 10_000;
    let (callout, pending) = wait(g.check(&get("/x", Some(&token_of(&new))), &s, later));
    assert!(callout.request.is_some());
    // A second one shares the fetch.
    let (shared, pending2) = wait(g.check(&get("/y", Some(&token_of(&new))), &s, later + 1));
    assert_eq!((shared.id, shared.request), (callout.id, None));
    let result = ok(callout.id, jwks_of(&[&new]));
    assert!(g.complete(&result, later + 5).unwrap().ok);
    assert!(
        g.complete(&result, later + 5).is_none(),
        "a result counts once"
    );
    for p in [pending, pending2] {
        let d = g.resume(p, &result, &s, later + 5);
        let Decision::Continue(f) = d else {
            panic!("{d:?}")
        };
        assert_eq!(f.set_request_headers, [("x-sub", "u1".to_owned())]);
    }
    // `old` is gone from the set: refused, without a refetch inside the floor.
    assert_eq!(
        status_code(&g.check(&get("/x", Some(&token_of(&old))), &s, later + 6)),
        (401, "token_unknown_key")
    );
}

#[test]
fn still_unknown_after_refetch_is_401_fails() {
    let (g, s) = (remote_gateway(""), MemoryStore::new());
    let id = g.tick(NOW_MS)[0].id;
    g.complete(&ok(id, jwks_of(&[&ed("a", 1)])), NOW_MS)
        .unwrap();
    let t = token_of(&ed("random", 5));
    let at = NOW_MS + 10_000;
    let (c, p) = wait(g.check(&get("/x", Some(&t)), &s, at));
    let result = ok(c.id, jwks_of(&[&ed("a", 1)]));
    g.complete(&result, at + 1);
    assert_eq!(
        status_code(&g.resume(p, &result, &s, at + 1)),
        (401, "token_unknown_key")
    );
    // A token without kid whose algorithm no key has: the same question.
    let hs = SigningKey::from_secret(&[7u8; 32], Algorithm::HS256, None).unwrap();
    let (c, p) = wait(g.check(&get("/x", Some(&token_of(&hs))), &s, at + 20_000));
    let result = failed(c.id, CalloutFailure::NoResponse);
    g.complete(&result, at + 20_001);
    assert_eq!(
        status_code(&g.resume(p, &result, &s, at + 20_001)),
        (401, "token_unknown_key"),
        "a failed refetch keeps the last good set"
    );
    // Known key, bad signature: decided at once, no fetch.
    let forged = format!("{}x", token_of(&ed("a", 1)).trim_end_matches(|c| c != '.'));
    let d = g.check(&get("/x", Some(&forged)), &s, at + 20_002);
    assert_eq!(status_code(&d), (401, "token_invalid"));
}

#[test]
fn inline_and_remote_together_ok() {
    let inline = ed("inline", 4);
    let jwk = inline.public_jwk().unwrap().to_string();
    let g = remote_gateway(&format!(r#", "jwks": {{"keys": [{jwk}]}}"#));
    let s = MemoryStore::new();
    // Before any fetch, inline keys already verify.
    assert_eq!(
        status_code(&g.check(&get("/x", Some(&token_of(&inline))), &s, NOW_MS)),
        (200, "ok")
    );
    let id = g.tick(NOW_MS)[0].id;
    g.complete(&ok(id, jwks_of(&[&ed("f", 1)])), NOW_MS)
        .unwrap();
    for key in [&inline, &ed("f", 1)] {
        assert_eq!(
            status_code(&g.check(&get("/x", Some(&token_of(key))), &s, NOW_MS + 1)),
            (200, "ok")
        );
    }
    // Inline-only gateways never tick.
    let g = Gateway::from_json(format!(r#"{{"jwks": {{"keys": [{jwk}]}}}}"#).as_bytes()).unwrap();
    assert!(g.tick(NOW_MS).is_empty() && !g.has_remote_jwks() && g.jwks_keys().is_none());
}

// --- fetched keys with issue 8's token sources, metering, forward_token and shadow mode ----

fn forward(d: Decision<'_>) -> crate::gateway::Forward<'_> {
    match d {
        Decision::Continue(f) => f,
        other => panic!("expected continue, got {other:?}"),
    }
}

#[test]
fn shadow_mode_with_fetched_keys_continues_and_reports_ok() {
    let (g, s) = (
        remote_gateway(r#", "mode": "shadow", "claims_to_headers": {"sub": "x-sub"}"#),
        MemoryStore::new(),
    );
    let id = g.tick(NOW_MS)[0].id;
    let t = token_of(&ed("a", 1));
    // No key set yet: the request waits for the first fetch, like in enforce mode.
    let forged = get("/x", Some(&t)).with_headers(&[("x-sub", "admin")]);
    let (_, pending) = wait(g.check(&forged, &s, NOW_MS + 1));
    let result = failed(id, CalloutFailure::NoResponse);
    g.complete(&result, NOW_MS + 2);
    // The would-be 503 is counted and logged, and the request goes on without claim headers.
    let f = forward(g.resume(pending, &result, &s, NOW_MS + 2));
    assert_eq!(f.metric, Metric::ShadowJwksUnavailable);
    assert!(f.set_request_headers.is_empty());
    assert!(f.remove_request_headers.iter().any(|h| h == "x-sub"));
    let refusal = f.shadow_refusal.unwrap();
    assert_eq!(
        (refusal.status, refusal.code, refusal.rule.as_str()),
        (503, "jwks_unavailable", "rules[1]")
    );
    assert_eq!(
        refusal.to_string(),
        "keygate shadow: would refuse 503 jwks_unavailable (rules[1]): GET /x"
    );
    // Within the floor, no wait: the same at once.
    let f = forward(g.check(&get("/x", Some(&t)), &s, NOW_MS + 3));
    assert_eq!(f.metric, Metric::ShadowJwksUnavailable);
    // Loaded; an unknown kid waits for a refetch, then is a would-be 401 after the resume.
    let later = NOW_MS + 20_000;
    let id = g.tick(later)[0].id;
    g.complete(&ok(id, jwks_of(&[&ed("a", 1)])), later).unwrap();
    let f = forward(g.check(&get("/x", Some(&t)), &s, later));
    assert_eq!(
        (f.metric, &f.set_request_headers[..]),
        (Metric::ShadowAllowed, &[("x-sub", "u1".to_owned())][..])
    );
    let (c, p) = wait(g.check(
        &get("/x/y?q=1", Some(&token_of(&ed("b", 2)))),
        &s,
        later + 11_000,
    ));
    let result = ok(c.id, jwks_of(&[&ed("a", 1)]));
    g.complete(&result, later + 11_001);
    let f = forward(g.resume(p, &result, &s, later + 11_001));
    assert_eq!(f.metric, Metric::ShadowDenied401);
    assert!(f.response_headers.is_empty() && f.strip_token.is_none());
    let line = f.shadow_refusal.unwrap().to_string();
    assert_eq!(
        line,
        "keygate shadow: would refuse 401 token_unknown_key (rules[1]): GET /x/y"
    );
}

#[test]
fn forward_token_false_strips_after_a_refetch_ok() {
    let (g, s) = (
        remote_gateway(
            r#", "forward_token": false,
               "token_sources": [{"header": "authorization", "prefix": "Bearer "}, {"cookie": "__Host-access"}]"#,
        ),
        MemoryStore::new(),
    );
    let id = g.tick(NOW_MS)[0].id;
    g.complete(&ok(id, jwks_of(&[&ed("old", 1)])), NOW_MS)
        .unwrap();
    let new = token_of(&ed("new", 2));
    let later = NOW_MS + 20_000;
    // The token in a cookie on the second Cookie line, other cookies on both.
    let r = MockRequest::get("/x").with_headers(&[
        ("cookie", "a=1"),
        ("cookie", &format!("__Host-access={new}; b=2")),
    ]);
    let (c, p) = wait(g.check(&r, &s, later));
    assert!(
        !format!("{p:?}").contains("a=1"),
        "Debug never shows the other cookies"
    );
    // The bearer one shares the fetch.
    let (_, p2) = wait(g.check(&get("/x", Some(&new)), &s, later + 1));
    let result = ok(c.id, jwks_of(&[&ed("new", 2)]));
    g.complete(&result, later + 2).unwrap();
    let f = forward(g.resume(p, &result, &s, later + 2));
    assert_eq!(
        (f.metric, f.strip_token),
        (
            Metric::Allowed,
            Some(crate::gateway::StripToken::Cookie(Some(
                b"a=1; b=2".to_vec()
            )))
        )
    );
    let f = forward(g.resume(p2, &result, &s, later + 2));
    assert_eq!(
        f.strip_token,
        Some(crate::gateway::StripToken::Header("authorization"))
    );
    // Only the token cookie: the Cookie header goes.
    let r = MockRequest::get("/x").with_headers(&[(
        "cookie",
        &format!("__Host-access={}", token_of(&ed("c", 3))),
    )]);
    let (c, p) = wait(g.check(&r, &s, later + 40_000));
    let result = ok(c.id, jwks_of(&[&ed("c", 3)]));
    g.complete(&result, later + 40_001).unwrap();
    let f = forward(g.resume(p, &result, &s, later + 40_001));
    assert_eq!(
        f.strip_token,
        Some(crate::gateway::StripToken::Cookie(None))
    );
}

#[test]
fn duplicates_never_wait_and_bad_tokens_are_metered_after_a_refetch_fails() {
    let (g, s) = (
        remote_gateway(
            r#", "token_sources": [{"header": "authorization", "prefix": "Bearer "}, {"cookie": "__Host-access"}],
               "rate_limits": [{"prefix": "/x", "key": "sub", "limit": "3/hour"}]"#,
        ),
        MemoryStore::new(),
    );
    let id = g.tick(NOW_MS)[0].id;
    g.complete(&ok(id, jwks_of(&[&ed("a", 1)])), NOW_MS)
        .unwrap();
    let later = NOW_MS + 20_000;
    let unknown = token_of(&ed("b", 2));
    // A token in two places: 400 at once, no fetch, metered by address.
    let two =
        get("/x", Some(&unknown)).with_headers(&[("cookie", &format!("__Host-access={unknown}"))]);
    let d = g.check(&two, &s, later);
    assert_eq!(status_code(&d), (400, "invalid_request"));
    // An unknown kid waits, then its 401 is metered by address too.
    let (c, p) = wait(g.check(&get("/x", Some(&unknown)), &s, later + 1));
    let result = ok(c.id, jwks_of(&[&ed("a", 1)]));
    g.complete(&result, later + 2);
    assert_eq!(
        status_code(&g.resume(p, &result, &s, later + 2)),
        (401, "token_unknown_key")
    );
    assert_eq!(
        status_code(&g.check(&get("/x", Some(&unknown)), &s, later + 3)),
        (401, "token_unknown_key")
    );
    // The address's budget (3/hour) is spent: anonymous and bad tokens alike get 429 …
    assert_eq!(
        status_code(&g.check(&get("/x", None), &s, later + 4)).0,
        429
    );
    assert_eq!(status_code(&g.check(&two, &s, later + 5)).0, 429);
    // … while a valid token has its own.
    assert_eq!(
        status_code(&g.check(&get("/x", Some(&token_of(&ed("a", 1)))), &s, later + 6)),
        (200, "ok")
    );
}

#[test]
fn gateway_config_names_remote_fields_fails() {
    let cases = [
        (r#"{"rules": []}"#, "jwks"),
        (
            r#"{"remote_jwks": {"uri": "http://a/j"}}"#,
            "remote_jwks.cluster",
        ),
        (
            r#"{"remote_jwks": {"cluster": "a", "uri": "ftp://a/j"}}"#,
            "remote_jwks.uri",
        ),
        (
            r#"{"remote_jwks": {"cluster": "a", "uri": "http://a/j", "cache_secs": 5}}"#,
            "remote_jwks.cache_secs",
        ),
        (
            r#"{"remote_jwks": {"cluster": "a", "uri": "http://a/j", "timeout_ms": -1}}"#,
            "remote_jwks.timeout_ms",
        ),
        (
            r#"{"remote_jwks": {"cluster": "a", "uri": "http://a/j", "refetch": 1}}"#,
            "remote_jwks.refetch",
        ),
        (
            r#"{"remote_jwks": {"cluster": "a", "uri": "http://a/j"}, "jwks": {"keys": []}}"#,
            "jwks.keys",
        ),
        // Issue 8: an object where an object is meant, every member once.
        (r#"{"remote_jwks": ["a", "http://a/j"]}"#, "remote_jwks"),
        (
            r#"{"remote_jwks": {"cluster": "a", "cluster": "b", "uri": "http://a/j"}}"#,
            "remote_jwks.cluster",
        ),
    ];
    for (json, field) in cases {
        let e = Gateway::from_json(json.as_bytes()).unwrap_err();
        assert_eq!(e.field, field, "{json}: {e}");
        assert_eq!(e.code(), "config_invalid");
    }
}

#[test]
fn odd_entries_are_skipped_one_by_one_ok() {
    let good = ed("g", 8).public_jwk().unwrap().to_string();
    let doc = format!(
        r#"{{"keys": [{{"kty": "OKP", "kty": "EC"}}, {{"kid": "no-kty"}}, [1, {{"a": 2}}], null,
            {{"kty": "OKP", "x5c": ["MIIB"], "key_ops": ["verify"], "crv": {{"n": 1}}}}, "s", 1.5, true,
            {good}], "keys2": 5}}"#
    );
    let (keys, skipped) = usable_keys(doc.as_bytes(), &[], false).unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(skipped.len(), 8, "{skipped:?}");
    assert!(skipped
        .iter()
        .all(|s| s.contains("not a JWK with string members")));
}

#[test]
fn fetched_set_as_an_array_fails() {
    // An array read by position would be `{"keys": [...]}` to a derived struct.
    let good = ed("g", 8).public_jwk().unwrap().to_string();
    let e = usable_keys(format!("[[{good}]]").as_bytes(), &[], false).unwrap_err();
    assert!(e.contains("has no `keys` array"), "{e}");
    assert!(usable_keys(format!(r#"{{"keys": [{good}]}}"#).as_bytes(), &[], false).is_ok());
}

#[test]
fn fetched_symmetric_key_is_skipped_unless_allowed_ok() {
    // A JWKS is public: an HMAC secret in it would let any reader mint tokens.
    let good = ed("g", 8).public_jwk().unwrap().to_string();
    let oct = r#"{"kty": "oct", "kid": "o1", "alg": "HS256",
                  "k": "c3Nzc3Nzc3Nzc3Nzc3Nzc3Nzc3Nzc3Nzc3Nzc3Nzc3M"}"#;
    let doc = format!(r#"{{"keys": [{oct}, {good}]}}"#);
    let (keys, skipped) = usable_keys(doc.as_bytes(), &[], false).unwrap();
    assert_eq!(keys.len(), 1);
    assert!(keys[0].kid() == Some("g"), "{keys:?}");
    assert!(
        skipped[0].contains("insecure_allow_symmetric"),
        "{skipped:?}"
    );
    let (keys, skipped) = usable_keys(doc.as_bytes(), &[], true).unwrap();
    assert_eq!((keys.len(), skipped.len()), (2, 0));
}

proptest::proptest! {
    #[test]
    fn fetched_bodies_never_panic(s in r#"\{"keys":\[(\{("(kty|kid|alg|use|k|crv|x|y|n|e|z)":("(oct|OKP|EC|RSA|sig|enc|HS256|Ed25519)"|"[A-Za-z0-9_-]{0,50}"|[0-9]{1,3}|null|\[\]|\{\}),?){0,8}\},?|[0-9],?){0,4}\]\}"#) {
        let _ = usable_keys(s.as_bytes(), &[], false);
    }
}

// --- fetched keys and the verified-token cache (issue 10) ----------------------------------

#[test]
fn installed_key_set_empties_the_token_cache_fails() {
    let (g, s) = (remote_gateway(""), MemoryStore::new());
    let (a, b) = (ed("a", 1), ed("b", 2));
    let id = g.tick(NOW_MS)[0].id;
    g.complete(&ok(id, jwks_of(&[&a])), NOW_MS).unwrap();
    let t = token_of(&a);
    for at in [NOW_MS, NOW_MS + 1] {
        assert_eq!(
            status_code(&g.check(&get("/x", Some(&t)), &s, at)),
            (200, "ok")
        );
    }
    assert_eq!(g.token_cache_stats(), (1, 1), "the second was a hit");
    // A failed refresh installs nothing: the cache stays.
    let refresh = NOW_MS + 600_000;
    let id = g.tick(refresh)[0].id;
    assert!(
        !g.complete(&failed(id, CalloutFailure::NoResponse), refresh)
            .unwrap()
            .ok
    );
    assert_eq!(
        status_code(&g.check(&get("/x", Some(&t)), &s, refresh + 1)),
        (200, "ok")
    );
    assert_eq!(g.token_cache_stats(), (2, 1));
    // The same set fetched again: installed, so the token is verified afresh (still good).
    let id = g.tick(refresh + 10_000)[0].id;
    g.complete(&ok(id, jwks_of(&[&a])), refresh + 10_000)
        .unwrap();
    assert_eq!(
        status_code(&g.check(&get("/x", Some(&t)), &s, refresh + 10_001)),
        (200, "ok")
    );
    assert_eq!(g.token_cache_stats(), (2, 2));
    // The issuer rotates to B (without `a`); a request with B's token refetches. The token
    // cached under A is refused afterwards, never served from the cache.
    let later = refresh + 20_000;
    let (callout, pending) = wait(g.check(&get("/y", Some(&token_of(&b))), &s, later));
    let result = ok(callout.id, jwks_of(&[&b]));
    assert!(g.complete(&result, later).unwrap().ok);
    assert_eq!(
        status_code(&g.resume(pending, &result, &s, later)),
        (200, "ok")
    );
    assert_eq!(
        status_code(&g.check(&get("/x", Some(&t)), &s, later + 1)),
        (401, "token_unknown_key")
    );
    assert_eq!(g.token_cache_stats().0, 2, "no hit after the change");
}

/// The JWK Set reader before `Document` was read with `deserialize_any`: a derive.
mod old_document {
    #[derive(serde::Deserialize)]
    #[serde(remote = "Self")]
    pub(super) struct Document {
        pub keys: Vec<super::Entry>,
    }
    crate::json::object_only!(Document, "a JWK Set object");

    pub(super) fn read(body: &[u8]) -> Result<Vec<String>, String> {
        let doc: Document = serde_json::from_slice(body).map_err(|e| {
            let what = match e.classify() {
                serde_json::error::Category::Data => "has no `keys` array",
                _ => "is not JSON",
            };
            format!(
                "not a JWK Set: the body {what} (line {}, column {})",
                e.line(),
                e.column()
            )
        })?;
        Ok(doc.keys.iter().map(|e| format!("{:?}", e.0)).collect())
    }
}

fn new_read(body: &[u8]) -> Result<Vec<String>, String> {
    Ok(document(body)?
        .keys
        .iter()
        .map(|e| format!("{:?}", e.0))
        .collect())
}

#[test]
fn document_readers_agree_ok() {
    use crate::gateway::config::diff_tests::{corpus, objects, pointers, replacements, text};
    use serde_json::{json, Value};
    let vectors: Value =
        serde_json::from_str(include_str!("../../../tests/vectors/vectors.json")).unwrap();
    let mut docs = vec![
        vectors["jwt"]["public_jwks"].clone(),
        vectors["jwt"]["private_jwks"].clone(),
        json!({"keys": [vectors["jwt"]["hs_jwk"].clone(), {"kty": 5}, [], "x"], "other": {"a": [1]}}),
    ];
    let mut n = 0;
    let mut check = |bytes: &[u8]| {
        n += 1;
        assert_eq!(
            old_document::read(bytes),
            new_read(bytes),
            "{:?}",
            String::from_utf8_lossy(bytes)
        );
    };
    for bytes in corpus() {
        check(&bytes);
        if let Ok(v) = serde_json::from_slice::<Value>(&bytes) {
            docs.push(v);
        }
    }
    for raw in [
        "[]",
        "[ ]",
        "[1]",
        "[ 1, 2]",
        "\n [\n\n ]",
        "{}",
        "{ }",
        r#"{"keys": {}}"#,
        r#"{"keys": { }}"#,
        r#"{"keys":{"a":1}}"#,
        "{\"keys\":\n  {\n  \"a\": 1}}",
        r#"{"keys": [], "keys": []}"#,
        r#"{"keys": null}"#,
        r#"{"keys": 1.5}"#,
        "null",
        "1e400",
        "\"keys\"",
        r#"{"keys": [}"#,
        "[,]",
        "[1, x",
        r#"{"keys": [{"kty": "oct"}], "x": "#,
    ] {
        check(raw.as_bytes());
    }
    for doc in &docs {
        for pretty in [false, true] {
            check(text(doc, None, false, pretty).as_bytes());
            for d in 0..objects(doc) {
                check(text(doc, Some(d), true, pretty).as_bytes());
            }
        }
        let mut ptrs = Vec::new();
        pointers(doc, String::new(), &mut ptrs);
        for p in &ptrs {
            for r in replacements() {
                let mut v = doc.clone();
                *v.pointer_mut(p).unwrap() = r;
                check(text(&v, None, false, false).as_bytes());
                check(text(&v, None, false, true).as_bytes());
            }
        }
    }
    eprintln!("JWK Set readers agree on {n} documents");
    assert!(n > 1_000, "{n}");
}
