//! Gateway decisions end to end, natively, with a fixed clock and an in-memory store.

use super::request::{
    encode_proxy_wasm_map, MockRequest, RequestHeaders, RequestView, MAX_HEADERS,
};
use super::store::BrokenStore;
use super::*;
use crate::token::{encode, Algorithm, Claims, SigningKey, TokenType};
use proptest::prelude::*;

const NOW: u64 = 1_700_000_000;
const NOW_MS: u64 = NOW * 1000;
/// base64url("change-me-this-is-the-example-secret-32+bytes-long"), as in envoy/keygate.yaml.
const K: &str = "Y2hhbmdlLW1lLXRoaXMtaXMtdGhlLWV4YW1wbGUtc2VjcmV0LTMyK2J5dGVzLWxvbmc";
const SECRET: &[u8] = b"change-me-this-is-the-example-secret-32+bytes-long";

fn example() -> String {
    format!(
        r#"{{
      "issuer": "https://auth.example.com",
      "audiences": ["api"],
      "jwks": {{"keys": [{{"kty": "oct", "kid": "k1", "alg": "HS256", "k": "{K}"}}]}},
      "token_sources": [{{"header": "authorization", "prefix": "Bearer "}}, {{"cookie": "__Host-access"}}],
      "leeway_secs": 30,
      "roles": {{"admin": ["*"], "doctor": ["patients:read", "patients:write"], "nurse": ["patients:read"]}},
      "rules": [
        {{"prefix": "/api/auth/", "allow": "public"}},
        {{"prefix": "/admin", "roles": ["admin"]}},
        {{"path": "/api/patients/*", "methods": ["GET"], "permissions": ["patients:read"]}},
        {{"prefix": "/", "allow": "authenticated"}}
      ],
      "rate_limits": [
        {{"path": "/api/auth/login", "methods": ["POST"], "key": "ip", "limit": "5/minute"}},
        {{"prefix": "/api/auth/password-reset", "key": "ip", "limit": "3/hour"}},
        {{"prefix": "/api/", "key": "sub", "limit": ["50/hour", "200/day"]}}
      ],
      "claims_to_headers": {{"sub": "x-user-id", "roles": "x-user-roles"}}
    }}"#
    )
}

fn gateway() -> Gateway {
    Gateway::from_json(example().as_bytes()).unwrap()
}

fn with(mutate: impl FnOnce(&mut serde_json::Value)) -> String {
    let mut v: serde_json::Value = serde_json::from_str(&example()).unwrap();
    mutate(&mut v);
    v.to_string()
}

fn claims(sub: &str, roles: &[&str]) -> Claims {
    Claims::access(
        sub,
        roles.iter().map(|r| (*r).to_owned()).collect(),
        NOW,
        900,
    )
    .with_issuer("https://auth.example.com")
    .with_audience("api")
}

fn token(c: &Claims) -> String {
    let key = SigningKey::from_secret(SECRET, Algorithm::HS256, Some("k1".into())).unwrap();
    encode(c, &key).unwrap()
}

fn run<'g>(g: &'g Gateway, s: &MemoryStore, r: &MockRequest) -> Decision<'g> {
    g.check(r, s, NOW_MS)
}

fn reply(o: Decision<'_>) -> LocalReply {
    match o {
        Decision::Reply(r) => r,
        other => panic!("expected a local reply, got {other:?}"),
    }
}

fn forward(o: Decision<'_>) -> Forward<'_> {
    match o {
        Decision::Continue(f) => f,
        other => panic!("expected continue, got {other:?}"),
    }
}

fn header<'a>(f: &'a Forward<'_>, name: &str) -> Option<&'a str> {
    f.set_request_headers
        .iter()
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.as_str())
}

// --- configuration -------------------------------------------------------------------------

#[test]
fn example_config_ok() {
    let g = gateway();
    assert_eq!(g.stripped_headers(), ["x-user-roles", "x-user-id"]);
    assert_eq!(
        g.rate_limit_slots(),
        3 * u64::from(crate::ratelimit::DEFAULT_SLOTS)
    );
    let min = format!(r#"{{"jwks": {{"keys": [{{"kty": "oct", "alg": "HS256", "k": "{K}"}}]}}}}"#);
    let g = Gateway::from_json(min.as_bytes()).unwrap();
    assert_eq!(g.sources, [TokenSource::bearer()]);
    assert_eq!(g.validation.leeway, 30);
    assert_eq!(g.validation.max_token_len, 8192);
}

#[test]
fn bad_config_names_field_fails() {
    use serde_json::json;
    let cases: Vec<(String, &str)> = vec![
        (with(|v| v["isuser"] = json!("x")), "isuser"),
        (
            with(|v| v["rate_limits"][0]["limit"] = json!("5/fortnight")),
            "rate_limits[0].limit",
        ),
        (
            with(|v| v["rate_limits"][0]["key"] = json!("cookie")),
            "rate_limits[0].key",
        ),
        (
            with(|v| v["rate_limits"][2]["slots"] = json!(0)),
            "rate_limits[2].slots",
        ),
        (
            with(|v| v["jwks"]["keys"][0]["k"] = json!("c2hvcnQ")),
            "jwks.keys[0].k",
        ),
        (
            with(|v| v["jwks"]["keys"][0]["alg"] = json!("HS999")),
            "jwks.keys[0].alg",
        ),
        (with(|v| v["jwks"]["keys"] = json!([])), "jwks.keys"),
        (
            with(|v| {
                v["rules"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"prefix": "/x"}))
            }),
            "rules[4]",
        ),
        (
            with(|v| v["roles"]["nurse"] = json!(["bad grant!"])),
            "roles.nurse[0]",
        ),
        (with(|v| v["leeway_secs"] = json!(301)), "leeway_secs"),
        (
            with(|v| v["max_token_bytes"] = json!(10)),
            "max_token_bytes",
        ),
        (with(|v| v["issuer"] = json!("")), "issuer"),
        (
            with(|v| v["token_sources"] = json!([{"cookie": "a b"}])),
            "token_sources[0].cookie",
        ),
        (
            with(|v| v["claims_to_headers"]["sub"] = json!("authorization")),
            "claims_to_headers.sub",
        ),
        ("{not json".to_owned(), "configuration"),
    ];
    for (json, field) in cases {
        let e = Gateway::from_json(json.as_bytes()).unwrap_err();
        assert_eq!(e.field, field, "{e}");
        assert!(!e.to_string().contains(K), "secret in {e}");
    }
}

// --- tokens and rules ----------------------------------------------------------------------

#[test]
fn public_route_without_token_ok() {
    let (g, s) = (gateway(), MemoryStore::new());
    let r = MockRequest::get("/api/auth/ping").with_headers(&[("x-user-id", "admin")]);
    let f = forward(run(&g, &s, &r));
    assert_eq!(f.remove_request_headers, ["x-user-roles", "x-user-id"]);
    assert!(f.set_request_headers.is_empty());
    // The /api/ `sub` limit applies to anonymous requests too, keyed by address.
    assert_eq!(f.response_headers[0].0, "ratelimit-policy");
    let health = forward(run(
        &g,
        &s,
        &MockRequest::get("/api/auth/ping").at_ip("::1"),
    ));
    assert_eq!(health.response_headers.len(), 2);
}

#[test]
fn missing_token_fails() {
    let (g, s) = (gateway(), MemoryStore::new());
    let r = reply(run(&g, &s, &MockRequest::get("/api/records")));
    assert_eq!(
        (r.status, r.code, r.metric),
        (401, "token_missing", Metric::Denied401)
    );
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"keygate\"")
    );
    let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(body["error"], "token_missing");
    assert!(body["message"].as_str().unwrap().contains("token"));
}

#[test]
fn valid_token_sets_claim_headers_ok() {
    let (g, s) = (gateway(), MemoryStore::new());
    let r = MockRequest::get("/api/records").bearer(&token(&claims("u1", &["doctor", "nurse"])));
    let o = run(&g, &s, &r);
    assert_eq!(o.metric(), Some(Metric::Allowed));
    let f = forward(o);
    assert_eq!(header(&f, "x-user-id"), Some("u1"));
    assert_eq!(header(&f, "x-user-roles"), Some("doctor,nurse"));
    // The `sub` limit of /api/ applied: RateLimit headers on the allowed response.
    assert!(f
        .response_headers
        .iter()
        .any(|(k, v)| *k == "ratelimit" && v.contains("r=49")));
}

#[test]
fn cookie_source_ok() {
    let (g, s) = (gateway(), MemoryStore::new());
    let cookie = format!("a=b; __Host-access={}", token(&claims("u2", &[])));
    let r = MockRequest::get("/api/records").with_headers(&[("cookie", &cookie)]);
    assert_eq!(header(&forward(run(&g, &s, &r)), "x-user-id"), Some("u2"));
}

#[test]
fn bad_tokens_fail() {
    let (g, s) = (gateway(), MemoryStore::new());
    let base = claims("u1", &["doctor"]);
    let mut expired = base.clone();
    expired.iat = NOW - 4000;
    expired.exp = NOW - 60;
    let mut refresh = base.clone();
    refresh.token_type = TokenType::Refresh;
    let wrong_iss = claims("u1", &[]).with_issuer("https://evil.example.com");
    let mut wrong_aud = base.clone();
    wrong_aud.aud = vec!["other".into()];
    let good = token(&base);
    let (h, p, sig) = {
        let mut it = good.split('.');
        (it.next().unwrap(), it.next().unwrap(), it.next().unwrap())
    };
    let tampered = format!("{h}.{p}A.{sig}");
    let cases = [
        (token(&expired), "token_expired"),
        (token(&refresh), "token_wrong_type"),
        (token(&wrong_iss), "token_issuer_invalid"),
        (token(&wrong_aud), "token_audience_invalid"),
        (tampered, "token_invalid"),
        ("not-a-jwt".to_owned(), "token_malformed"),
        ("a".repeat(8193), "token_too_large"),
        (
            format!("eyJhbGciOiJub25lIn0.{p}."),
            "token_algorithm_not_allowed",
        ),
    ];
    for (tok, code) in cases {
        let r = reply(run(&g, &s, &MockRequest::get("/api/records").bearer(&tok)));
        assert_eq!((r.status, r.code), (401, code), "{code}");
        let www = r.header("www-authenticate").unwrap();
        assert!(
            www.starts_with(
                "Bearer realm=\"keygate\", error=\"invalid_token\", error_description=\""
            ),
            "{www}"
        );
        assert!(!r.body.contains(&tok));
    }
}

#[test]
fn roles_and_permissions_ok() {
    let (g, s) = (gateway(), MemoryStore::new());
    let get = |path: &str, c: &Claims| run(&g, &s, &MockRequest::get(path).bearer(&token(c)));
    let r = reply(get("/admin/users", &claims("d", &["doctor"])));
    assert_eq!(
        (r.status, r.code, r.metric),
        (403, "forbidden", Metric::Denied403)
    );
    assert!(r
        .header("www-authenticate")
        .unwrap()
        .contains("error=\"insufficient_scope\""));
    assert_eq!(get("/admin/users", &claims("a", &["admin"])).status(), 200);
    assert_eq!(
        get("/api/patients/7", &claims("n", &["nurse"])).status(),
        200
    );
    assert_eq!(
        get("/api/patients/7", &claims("g", &["guest"])).status(),
        403
    );
    let direct = claims("p", &[]).with_permissions(vec!["patients:read".into()]);
    assert_eq!(get("/api/patients/7", &direct).status(), 200);
    let post = MockRequest::new("POST", "/api/patients/7").bearer(&token(&claims("g", &["guest"])));
    assert_eq!(run(&g, &s, &post).status(), 200);
    assert_eq!(run(&g, &s, &MockRequest::get("/admin/users")).status(), 401);
}

#[test]
fn public_route_token_handling_ok() {
    let (g, s) = (gateway(), MemoryStore::new());
    let good = MockRequest::get("/api/auth/me").bearer(&token(&claims("u9", &["nurse"])));
    assert_eq!(
        header(&forward(run(&g, &s, &good)), "x-user-id"),
        Some("u9")
    );
    let bad = MockRequest::get("/api/auth/me").bearer("garbage");
    assert!(forward(run(&g, &s, &bad)).set_request_headers.is_empty());
}

#[test]
fn no_rule_matched_fails() {
    let json = with(|v| v["rules"] = serde_json::json!([{"prefix": "/open", "allow": "public"}]));
    let (g, s) = (
        Gateway::from_json(json.as_bytes()).unwrap(),
        MemoryStore::new(),
    );
    let r = MockRequest::get("/elsewhere").bearer(&token(&claims("a", &["admin"])));
    let r = reply(run(&g, &s, &r));
    assert_eq!((r.status, r.code), (403, "forbidden"));
    assert_eq!(run(&g, &s, &MockRequest::get("/open/x")).status(), 200);
}

// --- rate limits ---------------------------------------------------------------------------

#[test]
fn login_limit_every_matching_rule_ok() {
    let (g, s) = (gateway(), MemoryStore::new());
    g.prepare_store(&s).unwrap();
    let login = MockRequest::new("POST", "/api/auth/login");
    for _ in 0..5 {
        let f = forward(run(&g, &s, &login));
        // Both the login rule and the /api/ rule (anonymous → address) applied.
        let policy = &f
            .response_headers
            .iter()
            .find(|(k, _)| *k == "ratelimit-policy")
            .unwrap()
            .1;
        assert!(
            policy.contains("q=5;w=60") && policy.contains("q=50;w=3600"),
            "{policy}"
        );
    }
    let r = reply(run(&g, &s, &login));
    assert_eq!(
        (r.status, r.code, r.metric),
        (429, "rate_limited", Metric::RateLimited)
    );
    assert_eq!(r.header("retry-after"), Some("12"));
    assert_eq!(r.header("ratelimit-policy"), Some("\"5/minute\";q=5;w=60"));
    assert!(r.header("ratelimit").unwrap().contains("r=0"));
    // Another address is not limited; the limit is per address.
    assert_eq!(
        run(&g, &s, &login.clone().at_ip("198.51.100.1:1")).status(),
        200
    );
}

#[test]
fn ip_limit_before_token_ok() {
    let (g, s) = (gateway(), MemoryStore::new());
    let reset = MockRequest::new("POST", "/api/auth/password-reset").bearer("garbage");
    let got: Vec<u16> = (0..5).map(|_| run(&g, &s, &reset).status()).collect();
    assert_eq!(got, [200, 200, 200, 429, 429]);
    // The path is public, so a garbage token is ignored rather than refused; on a protected
    // path with an ip rule the 429 comes before the 401.
    let json = with(|v| {
        v["rate_limits"] = serde_json::json!([{"prefix": "/x", "key": "ip", "limit": "1/hour"}]);
    });
    let g = Gateway::from_json(json.as_bytes()).unwrap();
    let r = MockRequest::get("/x").bearer("garbage");
    assert_eq!(run(&g, &s, &r).status(), 401);
    assert_eq!(run(&g, &s, &r).status(), 429);
}

#[test]
fn sub_limit_per_user_ok() {
    let json = with(|v| {
        v["rate_limits"] =
            serde_json::json!([{"prefix": "/api/", "key": "sub", "limit": ["3/hour", "200/day"]}]);
    });
    let (g, s) = (
        Gateway::from_json(json.as_bytes()).unwrap(),
        MemoryStore::new(),
    );
    let alice = MockRequest::get("/api/records").bearer(&token(&claims("alice", &[])));
    let bob = MockRequest::get("/api/records").bearer(&token(&claims("bob", &[])));
    let got: Vec<u16> = (0..4).map(|_| run(&g, &s, &alice).status()).collect();
    assert_eq!(got, [200, 200, 200, 429]);
    let f = forward(run(&g, &s, &bob));
    let policy = &f
        .response_headers
        .iter()
        .find(|(k, _)| *k == "ratelimit-policy")
        .unwrap()
        .1;
    assert!(policy.contains("q=3") && policy.contains("q=200"));
    // Anonymous requests to a public /api/ path count against the address, not a user.
    let anon = MockRequest::get("/api/auth/x");
    assert_eq!(run(&g, &s, &anon).status(), 200);
}

#[test]
fn header_key_limit_ok() {
    let json = with(|v| {
        v["rate_limits"] = serde_json::json!([{"prefix": "/api/auth/", "key": "header:x-api-key", "limit": "2/minute"}]);
    });
    let (g, s) = (
        Gateway::from_json(json.as_bytes()).unwrap(),
        MemoryStore::new(),
    );
    let a = MockRequest::get("/api/auth/x").with_headers(&[("x-api-key", "a")]);
    let got: Vec<u16> = (0..3).map(|_| run(&g, &s, &a).status()).collect();
    assert_eq!(got, [200, 200, 429]);
    let b = MockRequest::get("/api/auth/x").with_headers(&[("x-api-key", "b")]);
    assert_eq!(run(&g, &s, &b).status(), 200);
    // Without the header the address is the key.
    let none = MockRequest::get("/api/auth/x");
    assert_eq!(run(&g, &s, &none).status(), 200);
    assert_eq!(run(&g, &s, &none).status(), 200);
    assert_eq!(run(&g, &s, &none).status(), 429);
}

#[test]
fn workers_share_slots_ok() {
    // Two VMs (two gateways from the same bytes) over one store: one budget.
    let json = with(|v| {
        v["rules"] = serde_json::json!([{"prefix": "/", "allow": "public"}]);
        v["rate_limits"] =
            serde_json::json!([{"prefix": "/", "key": "ip", "limit": "100/hour", "slots": 64}]);
    });
    let a = Gateway::from_json(json.as_bytes()).unwrap();
    let b = Gateway::from_json(json.as_bytes()).unwrap();
    let s = MemoryStore::new();
    assert_eq!(a.prepare_store(&s).unwrap(), 64);
    assert_eq!(b.prepare_store(&s).unwrap(), 0);
    let r = MockRequest::get("/burst");
    let mut ok = 0;
    for i in 0..1000 {
        let g = if i % 2 == 0 { &a } else { &b };
        ok += usize::from(run(g, &s, &r).status() == 200);
    }
    assert_eq!(ok, 100);
    assert_eq!(s.len(), 64);
}

#[test]
fn key_spray_is_bounded_ok() {
    let json = with(|v| {
        v["rules"] = serde_json::json!([{"prefix": "/", "allow": "public"}]);
        v["rate_limits"] = serde_json::json!([{"prefix": "/", "key": "header:x-k", "limit": "1000/minute", "slots": 64}]);
    });
    let (g, s) = (
        Gateway::from_json(json.as_bytes()).unwrap(),
        MemoryStore::new(),
    );
    g.prepare_store(&s).unwrap();
    for i in 0..3000 {
        let r = MockRequest::get("/").with_headers(&[("x-k", &format!("key-{i}"))]);
        assert!(matches!(run(&g, &s, &r).status(), 200 | 429));
    }
    assert_eq!(s.len(), 64);
}

#[test]
fn store_failure_fails_closed_fails() {
    let g = gateway();
    let r = reply(g.check(
        &MockRequest::new("POST", "/api/auth/login"),
        &BrokenStore,
        NOW_MS,
    ));
    assert_eq!((r.status, r.code), (429, "rate_limited"));
    assert_eq!(r.header("retry-after"), Some("1"));
    assert!(g.prepare_store(&BrokenStore).is_err());
    // Requests no limit applies to do not touch the store.
    assert_eq!(
        g.check(&MockRequest::get("/health"), &BrokenStore, NOW_MS)
            .status(),
        401
    );
}

proptest! {
    #[test]
    fn arbitrary_requests_never_panic_ok(method in "\\PC{0,8}", path in "\\PC{0,40}",
                                         auth in "\\PC{0,60}", remote in "\\PC{0,30}") {
        let g = gateway();
        let s = MemoryStore::new();
        let mut r = MockRequest::new(&method, &path).with_headers(&[("authorization", &auth), ("cookie", &auth)]);
        r.remote = Some(remote);
        let o = g.check(&r, &s, NOW_MS);
        prop_assert!(matches!(o.status(), 200 | 401 | 403 | 429));
    }
}

/// Two plugin configs under one `vm_id` share proxy-wasm's key space: neither may reset the
/// other's slots (a quota-count mismatch reads as fresh state).
#[test]
fn two_configs_sharing_a_store_stay_apart_ok() {
    let s = MemoryStore::new();
    let login = Gateway::from_json(
        with(|v| {
            v["rate_limits"] = serde_json::json!([
                {"path": "/api/auth/login", "methods": ["POST"], "key": "ip", "limit": "5/minute"}
            ]);
        })
        .as_bytes(),
    )
    .unwrap();
    let busy = Gateway::from_json(
        with(|v| {
            v["rules"] = serde_json::json!([{"prefix": "/", "allow": "public"}]);
            v["rate_limits"] = serde_json::json!([
                {"prefix": "/", "key": "ip", "limit": ["1000/minute", "10000/hour"]}
            ]);
        })
        .as_bytes(),
    )
    .unwrap();
    login.prepare_store(&s).unwrap();
    busy.prepare_store(&s).unwrap();
    let attempt = MockRequest::new("POST", "/api/auth/login").at_ip("203.0.113.9:1");
    let mut admitted = 0;
    for i in 0..2000u32 {
        if run(&login, &s, &attempt).status() == 200 {
            admitted += 1;
        }
        let other = MockRequest::get("/x").at_ip(&format!("198.51.{}.{}:1", i / 250, i % 250));
        let _ = run(&busy, &s, &other);
    }
    assert_eq!(
        admitted, 5,
        "the other config's traffic must not reset the login limit"
    );
}

#[test]
fn slot_creation_never_overwrites_state_ok() {
    let (g, s) = (gateway(), MemoryStore::new());
    g.prepare_store(&s).unwrap();
    let login = MockRequest::new("POST", "/api/auth/login");
    for _ in 0..5 {
        assert_eq!(run(&g, &s, &login).status(), 200);
    }
    // Another VM configuring late must not wipe admitted state.
    assert_eq!(g.prepare_store(&s).unwrap(), 0);
    assert_eq!(run(&g, &s, &login).status(), 429);
}

#[test]
fn array_element_with_comma_gets_no_header_ok() {
    let (g, s) = (gateway(), MemoryStore::new());
    let c = claims("u3", &["user,admin"]);
    let f = forward(run(
        &g,
        &s,
        &MockRequest::get("/api/records").bearer(&token(&c)),
    ));
    assert_eq!(header(&f, "x-user-id"), Some("u3"));
    assert_eq!(
        header(&f, "x-user-roles"),
        None,
        "`user,admin` would read as two roles"
    );
    assert!(
        f.remove_request_headers.iter().any(|h| h == "x-user-roles"),
        "still stripped from the request"
    );
}

// --- issue 8: token sources, JSON shapes, answers, metering, shadow mode ----------------------

fn assert_invalid_request(o: Decision<'_>) {
    let r = reply(o);
    assert_eq!(
        (r.status, r.code, r.metric),
        (400, "invalid_request", Metric::Denied400),
        "{r:?}"
    );
    assert!(r
        .header("www-authenticate")
        .unwrap()
        .starts_with("Bearer realm=\"keygate\", error=\"invalid_request\""));
}

#[test]
fn every_duplicate_token_is_invalid_request_fails() {
    let (g, s) = (gateway(), MemoryStore::new());
    let (a, b) = (
        token(&claims("alice", &[])),
        token(&claims("mallory", &["admin"])),
    );
    let (ba, bb) = (format!("Bearer {a}"), format!("Bearer {b}"));
    let (ca, cb) = (format!("__Host-access={a}"), format!("__Host-access={b}"));
    let cases: Vec<Vec<(&str, String)>> = vec![
        vec![("authorization", ba.clone()), ("authorization", bb.clone())],
        vec![("authorization", format!("{ba},{bb}"))],
        vec![("cookie", format!("{ca}; x=1; {cb}"))],
        vec![("cookie", ca.clone()), ("cookie", cb.clone())],
        vec![
            ("cookie", "x=1".into()),
            ("cookie", format!("y=2; {ca}")),
            ("cookie", ca.clone()),
        ],
        vec![("authorization", ba.clone()), ("cookie", ca.clone())],
        vec![
            ("authorization", ba.clone()),
            ("cookie", format!("a=b; {cb}")),
        ],
    ];
    for (i, headers) in cases.iter().enumerate() {
        for path in ["/api/records", "/admin/x", "/api/auth/login"] {
            let mut r = MockRequest::new("POST", path).at_ip(&format!("198.51.100.{i}:1"));
            for (k, v) in headers {
                r = r.with_headers(&[(k, v)]);
            }
            assert_invalid_request(run(&g, &s, &r));
        }
    }
}

#[test]
fn token_cookie_on_a_later_cookie_line_ok() {
    let (g, s) = (gateway(), MemoryStore::new());
    let t = token(&claims("u7", &[]));
    let r = MockRequest::get("/api/records")
        .with_headers(&[("cookie", "a=b"), ("cookie", &format!("__Host-access={t}"))]);
    assert_eq!(header(&forward(run(&g, &s, &r)), "x-user-id"), Some("u7"));
}

#[test]
fn forward_token_false_strips_the_token_ok() {
    let json = with(|v| v["forward_token"] = serde_json::json!(false));
    let (g, s) = (
        Gateway::from_json(json.as_bytes()).unwrap(),
        MemoryStore::new(),
    );
    let t = token(&claims("u1", &[]));
    let f = forward(run(&g, &s, &MockRequest::get("/api/records").bearer(&t)));
    assert_eq!(f.strip_token, Some(StripToken::Header("authorization")));
    let r = MockRequest::get("/api/records").with_headers(&[
        ("cookie", &format!("a=1; __Host-access={t}")),
        ("cookie", "b=2"),
    ]);
    let f = forward(run(&g, &s, &r));
    assert_eq!(
        f.strip_token,
        Some(StripToken::Cookie(Some(b"a=1; b=2".to_vec())))
    );
    let r = MockRequest::get("/api/auth/x").with_headers(&[("cookie", "__Host-access=junk")]);
    assert_eq!(
        forward(run(&g, &s, &r)).strip_token,
        Some(StripToken::Cookie(None))
    );
    // Nothing to strip without a token; the default forwards it.
    assert_eq!(
        forward(run(&g, &s, &MockRequest::get("/api/auth/x"))).strip_token,
        None
    );
    let g = gateway();
    let f = forward(run(&g, &s, &MockRequest::get("/api/records").bearer(&t)));
    assert_eq!(f.strip_token, None);
    let bad = with(|v| v["forward_token"] = serde_json::json!("no"));
    assert_eq!(
        Gateway::from_json(bad.as_bytes()).unwrap_err().field,
        "forward_token"
    );
}

#[test]
fn arrays_for_objects_refused_fails() {
    use serde_json::json;
    let cases: Vec<(String, &str)> = vec![
        (
            with(|v| v["rules"] = json!([[null, "/", null, "public", null, null]])),
            "rules[0]",
        ),
        (
            with(|v| v["rate_limits"] = json!([[null, "/", null, "ip", "5/minute", null]])),
            "rate_limits[0]",
        ),
        (
            with(|v| v["token_sources"] = json!([["authorization", "Bearer ", null]])),
            "token_sources[0]",
        ),
        (
            with(|v| v["jwks"]["keys"] = json!([["oct", "k1", "HS256", null, K]])),
            "jwks.keys[0]",
        ),
        (with(|v| v["jwks"] = json!([[]])), "jwks"),
        (with(|v| v["mode"] = json!({"shadow": null})), "mode"),
        (
            with(|v| v["rules"][0]["allow"] = json!({"public": null})),
            "rules[0].allow",
        ),
        (r#"[{"keys": []}]"#.to_owned(), "configuration"),
    ];
    for (json, field) in cases {
        let e = Gateway::from_json(json.as_bytes()).unwrap_err();
        assert_eq!(e.field, field, "{json}: {e}");
    }
}

#[test]
fn repeated_members_in_config_refused_fails() {
    let base = example();
    let cases = [
        (
            base.replace(
                r#""claims_to_headers": {"sub": "x-user-id","#,
                r#""claims_to_headers": {"sub": "x-user-id", "sub": "x-subject","#,
            ),
            "claims_to_headers.sub",
        ),
        (
            base.replace(
                r#""roles": {"admin": ["*"],"#,
                r#""roles": {"admin": ["*"], "admin": [],"#,
            ),
            "roles.admin",
        ),
        (
            base.replace(r#""kty": "oct","#, r#""kty": "oct", "x5c": [], "x5c": [],"#),
            "jwks.keys[0].x5c",
        ),
        (
            base.replace(
                r#""leeway_secs": 30,"#,
                r#""leeway_secs": 30, "leeway_secs": 0,"#,
            ),
            "leeway_secs",
        ),
        (
            base.replace(
                r#""kty": "oct","#,
                r#""kty": "oct", "ext": {"a": 1, "a": 2},"#,
            ),
            "jwks.keys[0].ext.a",
        ),
    ];
    for (json, field) in cases {
        assert_ne!(json, base);
        let e = Gateway::from_json(json.as_bytes()).unwrap_err();
        assert_eq!(e.field, field, "{e}");
    }
}

#[test]
fn out_of_range_numbers_name_the_field_fails() {
    let cases = [
        (
            with(|v| v["leeway_secs"] = serde_json::json!(0))
                .replace(r#""leeway_secs":0"#, r#""leeway_secs":1e400"#),
            "leeway_secs",
        ),
        (
            with(|v| v["rate_limits"][0]["slots"] = serde_json::json!(1))
                .replace(r#""slots":1"#, r#""slots":1e400"#),
            "rate_limits[0].slots",
        ),
        (
            with(|v| v["max_token_bytes"] = serde_json::json!(1))
                .replace(r#""max_token_bytes":1"#, r#""max_token_bytes":-1e400"#),
            "max_token_bytes",
        ),
        (
            with(|v| v["leeway_secs"] = serde_json::json!(1e300)),
            "leeway_secs",
        ),
        (
            with(|v| v["rate_limits"][0]["slots"] = serde_json::json!(4_294_967_296u64)),
            "rate_limits[0].slots",
        ),
    ];
    for (json, field) in cases {
        let e = Gateway::from_json(json.as_bytes()).unwrap_err();
        assert_eq!(e.field, field, "{json}: {e}");
    }
}

#[test]
fn array_jose_header_is_malformed_fails() {
    use base64::Engine;
    let b64u = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let (g, s) = (gateway(), MemoryStore::new());
    let good = token(&claims("u1", &["admin"]));
    let mut parts = good.split('.');
    let (_, p, sig) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    for header in [
        r#"["HS256","k1"]"#,
        r#"{"alg":"HS256","kid":"k1","kid":"k1"}"#,
        r#"{"alg":"HS256","kid":"k1","x":1,"x":1}"#,
        r#"{"alg":"HS256","kid":"k1","jwk":{"a":1,"a":1}}"#,
    ] {
        let t = format!("{}.{p}.{sig}", b64u(header));
        let r = reply(run(&g, &s, &MockRequest::get("/admin/x").bearer(&t)));
        assert_eq!((r.status, r.code), (401, "token_malformed"), "{header}");
    }
}

#[test]
fn forbidden_without_credentials_has_no_error_attribute_ok() {
    let json = with(|v| v["rules"] = serde_json::json!([{"prefix": "/open", "allow": "public"}]));
    let (g, s) = (
        Gateway::from_json(json.as_bytes()).unwrap(),
        MemoryStore::new(),
    );
    for path in ["/elsewhere", "/open/../x", "/open//x"] {
        let r = reply(run(&g, &s, &MockRequest::get(path)));
        assert_eq!((r.status, r.code), (403, "forbidden"), "{path}");
        assert_eq!(
            r.header("www-authenticate"),
            Some("Bearer realm=\"keygate\""),
            "{path}"
        );
        let r = reply(run(&g, &s, &MockRequest::get(path).bearer("x.y.z")));
        assert!(
            r.header("www-authenticate")
                .unwrap()
                .contains("error=\"insufficient_scope\""),
            "{path}"
        );
    }
}

#[test]
fn invalid_tokens_are_metered_by_address_fails() {
    let json = with(|v| {
        v["rate_limits"] =
            serde_json::json!([{"prefix": "/api/", "key": "sub", "limit": "3/hour"}]);
    });
    let (g, s) = (
        Gateway::from_json(json.as_bytes()).unwrap(),
        MemoryStore::new(),
    );
    let good = token(&claims("alice", &[]));
    let forged = format!("{}x", &good[..good.len() - 1]);
    let bad = MockRequest::get("/api/records").bearer(&forged);
    let got: Vec<u16> = (0..4).map(|_| run(&g, &s, &bad).status()).collect();
    assert_eq!(got, [401, 401, 401, 429]);
    // The same address without a token shares that budget; alice's own is untouched.
    assert_eq!(run(&g, &s, &MockRequest::get("/api/records")).status(), 429);
    let alice = MockRequest::get("/api/records").bearer(&good);
    assert_eq!(run(&g, &s, &alice).status(), 200);
    // Another address has its own.
    assert_eq!(
        run(&g, &s, &bad.clone().at_ip("198.51.100.7:1")).status(),
        401
    );
}

#[test]
fn shadow_mode_continues_and_reports_ok() {
    let json = with(|v| {
        v["mode"] = serde_json::json!("shadow");
        v["forward_token"] = serde_json::json!(false);
    });
    let (g, s) = (
        Gateway::from_json(json.as_bytes()).unwrap(),
        MemoryStore::new(),
    );
    assert_eq!(g.mode(), Mode::Shadow);
    g.prepare_store(&s).unwrap();
    let nurse = token(&claims("n1", &["nurse"]));
    // A would-be 403: continues, with the claim headers, logged with its rule.
    let f = forward(run(
        &g,
        &s,
        &MockRequest::get("/admin/users?secret=1").bearer(&nurse),
    ));
    assert_eq!(f.metric, Metric::ShadowDenied403);
    assert_eq!(header(&f, "x-user-id"), Some("n1"));
    assert_eq!(
        f.strip_token,
        Some(StripToken::Header("authorization")),
        "forward_token: false holds in shadow mode too"
    );
    let refusal = f.shadow_refusal.unwrap();
    assert_eq!(
        (refusal.status, refusal.code, refusal.rule.as_str()),
        (403, "forbidden", "rules[1]")
    );
    assert_eq!(
        refusal.to_string(),
        "keygate shadow: would refuse 403 forbidden (rules[1]): GET /admin/users"
    );
    // Would-be 401 and 400: no claim headers, forged ones still stripped.
    let forged = format!("{}x", &nurse[..nurse.len() - 1]);
    let f = forward(run(
        &g,
        &s,
        &MockRequest::get("/api/records")
            .bearer(&forged)
            .with_headers(&[("x-user-id", "admin")]),
    ));
    assert_eq!(f.metric, Metric::ShadowDenied401);
    assert!(f.set_request_headers.is_empty());
    assert!(f.remove_request_headers.iter().any(|h| h == "x-user-id"));
    let line = f.shadow_refusal.unwrap().to_string();
    assert!(
        line.contains("401 token_invalid (rules[3])") && !line.contains(&forged),
        "{line}"
    );
    let two = MockRequest::get("/api/records")
        .bearer(&nurse)
        .with_headers(&[("cookie", &format!("__Host-access={nurse}"))]);
    assert_eq!(forward(run(&g, &s, &two)).metric, Metric::ShadowDenied400);
    // Allowed: counted as shadow, no RateLimit headers added.
    let f = forward(run(
        &g,
        &s,
        &MockRequest::get("/api/records").bearer(&nurse),
    ));
    assert_eq!(
        (f.metric, f.shadow_refusal.is_none()),
        (Metric::ShadowAllowed, true)
    );
    assert!(f.response_headers.is_empty());
    // Rate limits count exactly as in enforce mode: the 6th login would be refused.
    let login = MockRequest::new("POST", "/api/auth/login");
    let got: Vec<Metric> = (0..6)
        .map(|_| run(&g, &s, &login).metric().unwrap())
        .collect();
    assert_eq!(got[..5], [Metric::ShadowAllowed; 5]);
    assert_eq!(got[5], Metric::ShadowRateLimited);
    let f = forward(run(&g, &s, &login));
    assert_eq!(f.shadow_refusal.unwrap().rule, "rate_limits[0]");
}

#[test]
fn non_utf8_headers_never_panic_ok() {
    let (g, s) = (gateway(), MemoryStore::new());
    let t = token(&claims("u1", &[]));
    let pairs: Vec<(Vec<u8>, Vec<u8>)> = vec![
        (b":method".to_vec(), b"GET".to_vec()),
        (b":path".to_vec(), b"/api/records".to_vec()),
        (b"x-\xff\xfe".to_vec(), b"v".to_vec()),
        (b"cookie".to_vec(), b"junk=\xff\xfe".to_vec()),
        (
            b"authorization".to_vec(),
            format!("Bearer {t}").into_bytes(),
        ),
    ];
    let r = RequestHeaders::new(pairs.clone(), Some(b"203.0.113.1:1"));
    assert_eq!(g.check(&r, &s, NOW_MS).status(), 200);
    let mut bad = pairs;
    bad[4].1 = b"Bearer \xff.\xfe.\xfd".to_vec();
    let r = reply(g.check(&RequestHeaders::new(bad.clone(), None), &s, NOW_MS));
    assert_eq!((r.status, r.code), (401, "token_malformed"));
    bad[1].1 = b"/api/\xff".to_vec();
    assert_eq!(
        g.check(&RequestHeaders::new(bad, None), &s, NOW_MS)
            .status(),
        403
    );
}

#[test]
fn header_lines_past_the_cap_leave_the_token_unknowable_fails() {
    // Lines after the MAX_HEADERS-th are never read (an operator may raise Envoy's
    // `max_headers_count` past it): a second token there could not be seen, so a request that
    // long is refused like a repeated token, by both readers of the host's bytes.
    let (g, s) = (gateway(), MemoryStore::new());
    let t = token(&claims("alice", &[]));
    let lines = |n: usize, second_token: bool| {
        let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = vec![
            (b":method".to_vec(), b"GET".to_vec()),
            (b":path".to_vec(), b"/api/records".to_vec()),
            (
                b"cookie".to_vec(),
                format!("__Host-access={t}").into_bytes(),
            ),
        ];
        while pairs.len() < n - 1 {
            pairs.push((b"x-filler".to_vec(), b"1".to_vec()));
        }
        pairs.push(if second_token {
            (
                b"cookie".to_vec(),
                format!("__Host-access={t}").into_bytes(),
            )
        } else {
            (b"x-filler".to_vec(), b"1".to_vec())
        });
        pairs
    };
    let decide = |pairs: Vec<(Vec<u8>, Vec<u8>)>| {
        let owned = RequestHeaders::new(pairs.clone(), Some(b"203.0.113.1:1"));
        let borrowed: Vec<(&[u8], &[u8])> = pairs
            .iter()
            .map(|(k, v)| (k.as_slice(), v.as_slice()))
            .collect();
        let bytes = encode_proxy_wasm_map(&borrowed);
        let view = RequestView::from_proxy_wasm_map(&bytes, Some(b"203.0.113.1:1")).unwrap();
        let (a, b) = (g.check(&owned, &s, NOW_MS), g.check(&view, &s, NOW_MS));
        assert_eq!(a.status(), b.status());
        a
    };
    assert_eq!(decide(lines(MAX_HEADERS, false)).status(), 200);
    assert_invalid_request(decide(lines(MAX_HEADERS, true)));
    for second_token in [false, true] {
        let r = reply(decide(lines(MAX_HEADERS + 1, second_token)));
        assert_eq!((r.status, r.code), (400, "invalid_request"));
        assert!(r.body.contains(&MAX_HEADERS.to_string()), "{r:?}");
    }
}

// --- the verified-token cache inside the decision (issue 10) -------------------------------

/// Hits so far.
fn hits(g: &Gateway) -> u64 {
    g.token_cache_stats().0
}

#[test]
fn cache_hit_still_checks_rules_limits_and_time_fails() {
    let json = with(|v| v["rate_limits"][2]["limit"] = serde_json::json!("2/hour"));
    let (g, s) = (
        Gateway::from_json(json.as_bytes()).unwrap(),
        MemoryStore::new(),
    );
    g.prepare_store(&s).unwrap();
    let nurse = token(&claims("n1", &["nurse"]));
    // Verified once on a public route (a miss), then every use below is a hit.
    assert_eq!(
        header(
            &forward(run(
                &g,
                &s,
                &MockRequest::get("/api/auth/me").bearer(&nurse)
            )),
            "x-user-id"
        ),
        Some("n1")
    );
    assert_eq!(g.token_cache_stats(), (0, 1));
    // The rule's roles: a nurse is not an admin, cached or not.
    let r = reply(run(&g, &s, &MockRequest::get("/admin/x").bearer(&nurse)));
    assert_eq!((r.status, r.code), (403, "forbidden"));
    assert_eq!(hits(&g), 1);
    // Permissions: patients:read only on GET.
    let f = forward(run(
        &g,
        &s,
        &MockRequest::get("/api/patients/7").bearer(&nurse),
    ));
    assert_eq!(header(&f, "x-user-id"), Some("n1"));
    // The `sub` limit (2/hour) counts hits like misses: the third /api/ request is 429.
    let r = reply(run(
        &g,
        &s,
        &MockRequest::get("/api/records").bearer(&nurse),
    ));
    assert_eq!((r.status, r.code), (429, "rate_limited"));
    assert_eq!(hits(&g), 3);
    // Expiry on a hit (exp = NOW + 900, leeway 30).
    let late = (NOW + 900 + 31) * 1000;
    let r = reply(g.check(&MockRequest::get("/admin/x").bearer(&nurse), &s, late));
    assert_eq!((r.status, r.code), (401, "token_expired"));
}

#[test]
fn cache_hit_keeps_duplicates_shadow_and_forward_token_ok() {
    let json = with(|v| {
        v["mode"] = serde_json::json!("shadow");
        v["forward_token"] = serde_json::json!(false);
    });
    let (g, s) = (
        Gateway::from_json(json.as_bytes()).unwrap(),
        MemoryStore::new(),
    );
    g.prepare_store(&s).unwrap();
    let nurse = token(&claims("n1", &["nurse"]));
    for round in 0..2 {
        let f = forward(run(&g, &s, &MockRequest::get("/admin/x").bearer(&nurse)));
        assert_eq!(f.metric, Metric::ShadowDenied403, "round {round}");
        assert_eq!(f.strip_token, Some(StripToken::Header("authorization")));
        assert_eq!(f.shadow_refusal.unwrap().code, "forbidden");
    }
    assert_eq!(g.token_cache_stats(), (1, 1));
    // The same (cached) token twice: 400 before any verification, in enforce mode too.
    let g = gateway();
    let t = token(&claims("alice", &[]));
    forward(run(&g, &s, &MockRequest::get("/api/records").bearer(&t)));
    let r = MockRequest::get("/api/records")
        .bearer(&t)
        .with_headers(&[("cookie", &format!("__Host-access={t}"))]);
    assert_invalid_request(run(&g, &s, &r));
    assert_eq!(g.token_cache_stats(), (0, 1));
}

#[test]
fn key_set_change_empties_the_cache_even_mid_borrow_ok() {
    let (g, s) = (gateway(), MemoryStore::new());
    let t = token(&claims("alice", &[]));
    for _ in 0..2 {
        forward(run(&g, &s, &MockRequest::get("/api/records").bearer(&t)));
    }
    assert_eq!(g.token_cache_stats(), (1, 1));
    g.key_set_changed();
    forward(run(&g, &s, &MockRequest::get("/api/records").bearer(&t)));
    assert_eq!(
        g.token_cache_stats(),
        (1, 2),
        "verified again after the change"
    );
    // A change while the cache is borrowed can not empty it there and then: the count of key
    // sets does it before the next use.
    {
        let _held = g.tokens.borrow();
        g.key_set_changed();
    }
    forward(run(&g, &s, &MockRequest::get("/api/records").bearer(&t)));
    assert_eq!(g.token_cache_stats(), (1, 3));
}

/// Shadow mode, a request an `ip`/`header:` limit (evaluated before the token) or the rules
/// (no rule, a path not normalized) would refuse: it still goes upstream with the claim
/// headers of its valid token and without the token under `forward_token: false` (review
/// finding: evaluation stopped at the would-be refusal, so it went without them). The first
/// would-be refusal is the one counted and logged, and nothing later is metered: the same
/// requests in enforce mode are refused at the same places, by the same rules.
#[test]
fn shadow_refusal_before_the_token_keeps_claim_headers_ok() {
    let json = |mode: &str| {
        with(|v| {
            v["mode"] = serde_json::json!(mode);
            v["forward_token"] = serde_json::json!(false);
            v["rules"].as_array_mut().unwrap().pop(); // no catch-all: `/other` has no rule
            v["rules"]
                .as_array_mut()
                .unwrap()
                .push(serde_json::json!({"prefix": "/api/", "allow": "authenticated"}));
            v["rate_limits"] = serde_json::json!([
                {"prefix": "/api/records", "key": "ip", "limit": "1/minute"},
                {"prefix": "/api/records", "key": "sub", "limit": "2/minute"},
                {"prefix": "/api/keyed", "key": "header:x-api-key", "limit": "1/minute"}
            ]);
        })
    };
    let nurse = token(&claims("n1", &["nurse"]));
    let records = |ip: &str| MockRequest::get("/api/records").bearer(&nurse).at_ip(ip);
    let sequence = [
        records("198.51.100.1:1"), // ip 1/1, sub 1/2: allowed
        records("198.51.100.1:2"), // ip refused: the sub limit is not metered
        records("198.51.100.2:1"), // ip 1/1, sub 2/2: allowed (a double count refuses it)
        records("198.51.100.3:1"), // sub refused
    ];
    let shadow = Gateway::from_json(json("shadow").as_bytes()).unwrap();
    let enforce = Gateway::from_json(json("enforce").as_bytes()).unwrap();
    let (ss, es) = (MemoryStore::new(), MemoryStore::new());
    shadow.prepare_store(&ss).unwrap();
    enforce.prepare_store(&es).unwrap();
    let mut refused_by = Vec::new();
    for r in &sequence {
        let f = forward(run(&shadow, &ss, r));
        assert_eq!(
            header(&f, "x-user-id"),
            Some("n1"),
            "{:?}",
            f.shadow_refusal
        );
        assert_eq!(f.strip_token, Some(StripToken::Header("authorization")));
        let enforced = run(&enforce, &es, r);
        assert_eq!(f.metric, enforced.metric().unwrap().shadow());
        refused_by.push(f.shadow_refusal.map(|s| s.rule));
    }
    assert_eq!(
        refused_by,
        [
            None,
            Some("rate_limits[0]".to_owned()),
            None,
            Some("rate_limits[1]".to_owned())
        ]
    );
    // A `header:` key, a cookie token (cut out of `Cookie`), no rule, a path not normalized.
    let keyed = MockRequest::get("/api/keyed").with_headers(&[
        ("x-api-key", "k"),
        ("cookie", &format!("a=1; __Host-access={nurse}")),
    ]);
    assert_eq!(run(&shadow, &ss, &keyed).status(), 200);
    let f = forward(run(&shadow, &ss, &keyed));
    assert_eq!(f.shadow_refusal.as_ref().unwrap().rule, "rate_limits[2]");
    assert_eq!(header(&f, "x-user-id"), Some("n1"));
    assert_eq!(
        f.strip_token,
        Some(StripToken::Cookie(Some(b"a=1".to_vec())))
    );
    for (path, rule) in [
        ("/other", "no rule"),
        ("/api//records", "path not normalized"),
    ] {
        let f = forward(run(&shadow, &ss, &MockRequest::get(path).bearer(&nurse)));
        assert_eq!(f.metric, Metric::ShadowDenied403);
        assert_eq!(f.shadow_refusal.as_ref().unwrap().rule, rule);
        assert_eq!(header(&f, "x-user-id"), Some("n1"), "{path}");
        assert_eq!(f.strip_token, Some(StripToken::Header("authorization")));
    }
    // An invalid token sets nothing; a duplicated one is never read (400 as in enforce mode).
    let forged = format!("{}x", &nurse[..nurse.len() - 1]);
    let f = forward(run(
        &shadow,
        &ss,
        &MockRequest::get("/other")
            .bearer(&forged)
            .with_headers(&[("x-user-id", "admin")]),
    ));
    assert!(f.set_request_headers.is_empty());
    let f = forward(run(&shadow, &ss, &records("198.51.100.1:3")));
    assert_eq!(f.metric, Metric::ShadowRateLimited);
    // Enforce mode: the same requests refused, as before.
    assert_eq!(
        run(&enforce, &es, &MockRequest::get("/other").bearer(&nurse)).status(),
        403
    );
}

/// Shadow mode forwards a would-be 400 (a token found more than once); with
/// `forward_token: false` no copy may reach the upstream (found while fixing the pre-token
/// refusal: the duplicated tokens went upstream, every copy).
#[test]
fn shadow_duplicate_tokens_all_stripped_with_forward_token_false_ok() {
    let json = with(|v| {
        v["mode"] = serde_json::json!("shadow");
        v["forward_token"] = serde_json::json!(false);
    });
    let g = Gateway::from_json(json.as_bytes()).unwrap();
    let s = MemoryStore::new();
    g.prepare_store(&s).unwrap();
    let nurse = token(&claims("n1", &["nurse"]));
    let every = |cookie: Option<&[u8]>| {
        Some(StripToken::Every(vec![
            StripToken::Header("authorization"),
            StripToken::Cookie(cookie.map(<[u8]>::to_vec)),
        ]))
    };
    let two = MockRequest::get("/api/records")
        .bearer(&nurse)
        .with_headers(&[("cookie", &format!("a=1; __Host-access={nurse}; b=2"))]);
    let f = forward(run(&g, &s, &two));
    assert_eq!(f.metric, Metric::ShadowDenied400);
    assert!(f.set_request_headers.is_empty(), "neither copy is read");
    assert_eq!(f.strip_token, every(Some(b"a=1; b=2")));
    let twice = MockRequest::get("/api/records").with_headers(&[(
        "cookie",
        &format!("__Host-access={nurse}; __Host-access={nurse}"),
    )]);
    assert_eq!(forward(run(&g, &s, &twice)).strip_token, every(None));
    // Refused before the token too (the login limit), and kept with `forward_token: true`.
    let login = MockRequest::new("POST", "/api/auth/login")
        .bearer(&nurse)
        .with_headers(&[("authorization", &format!("Bearer {nurse}"))]);
    for _ in 0..6 {
        assert_eq!(forward(run(&g, &s, &login)).strip_token, every(None));
    }
    let f = forward(run(&g, &s, &login));
    assert_eq!(f.metric, Metric::ShadowRateLimited);
    assert_eq!(f.strip_token, every(None));
    let kept =
        Gateway::from_json(with(|v| v["mode"] = serde_json::json!("shadow")).as_bytes()).unwrap();
    assert_eq!(forward(run(&kept, &s, &two)).strip_token, None);
}

/// Rate limits keep the trailing-slash spelling of a `path` (every matching limit applies, so
/// matching more only meters more): `/api/auth/login/` counts against the login limit.
#[test]
fn trailing_slash_still_counts_against_a_path_limit_fails() {
    let (g, s) = (gateway(), MemoryStore::new());
    g.prepare_store(&s).unwrap();
    let got: Vec<u16> = (0..6)
        .map(|i| {
            let path = if i % 2 == 0 {
                "/api/auth/login/"
            } else {
                "/api/auth/login"
            };
            run(&g, &s, &MockRequest::new("POST", path)).status()
        })
        .collect();
    assert_eq!(got, [200, 200, 200, 200, 200, 429]);
}
