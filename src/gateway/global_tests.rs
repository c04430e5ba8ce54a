//! Global limits natively: the request sent, every answer and failure, on a fixed clock.

use super::super::decision::{CalloutFailure, CalloutResponse};
use super::super::request::MockRequest;
use super::super::rls::wire;
use super::super::*;
use crate::token::{encode, Algorithm, Claims, SigningKey};
use prost::Message;

const NOW: u64 = 1_700_000_000;
const NOW_MS: u64 = NOW * 1000;
const K: &str = "Y2hhbmdlLW1lLXRoaXMtaXMtdGhlLWV4YW1wbGUtc2VjcmV0LTMyK2J5dGVzLWxvbmc";
const SECRET: &[u8] = b"change-me-this-is-the-example-secret-32+bytes-long";

fn config(mode: &str, extra: &str) -> String {
    format!(
        r#"{{
      "jwks": {{"keys": [{{"kty": "oct", "kid": "k1", "alg": "HS256", "k": "{K}"}}]}},
      "rules": [{{"prefix": "/api/auth/", "allow": "public"}}, {{"prefix": "/", "allow": "authenticated"}}],
      "rate_limit_service": {{"cluster": "rls", "domain": "keygate", "failure_mode": "{mode}"}},
      "rate_limits": [
        {{"name": "login", "path": "/api/auth/login", "methods": ["POST"], "key": "ip",
          "limit": "2/minute", "scope": "global"}},
        {{"prefix": "/api/data", "key": "sub", "limit": ["100/hour", "1000/day"], "scope": "global"}},
        {{"prefix": "/api/local", "key": "ip", "limit": "1/minute"}}
      ]{extra}
    }}"#
    )
}

fn gateway(mode: &str) -> (Gateway, MemoryStore) {
    let g = Gateway::from_json(config(mode, "").as_bytes()).unwrap();
    let s = MemoryStore::new();
    g.prepare_store(&s).unwrap();
    (g, s)
}

fn token(sub: &str) -> String {
    let key = SigningKey::from_secret(SECRET, Algorithm::HS256, Some("k1".into())).unwrap();
    encode(&Claims::access(sub, vec![], NOW, 900), &key).unwrap()
}

fn login() -> MockRequest {
    MockRequest::new("POST", "/api/auth/login")
}

/// The wait and the gRPC request it asks for.
fn wait(d: Decision<'_>) -> (Callout, Pending, wire::RateLimitRequest) {
    match d {
        Decision::Wait(c, p) => {
            let Some(CalloutRequest::Grpc(g)) = &c.request else {
                panic!("expected a gRPC callout, got {c:?}")
            };
            assert_eq!(
                (g.cluster.as_str(), g.service, g.method, g.timeout_ms),
                (
                    "rls",
                    "envoy.service.ratelimit.v3.RateLimitService",
                    "ShouldRateLimit",
                    20
                )
            );
            let req = wire::RateLimitRequest::decode(g.body.as_slice()).unwrap();
            (c, p, req)
        }
        other => panic!("expected a wait, got {other:?}"),
    }
}

fn answer(id: CalloutId, body: Vec<u8>) -> CalloutResult {
    CalloutResult {
        id,
        response: Ok(CalloutResponse {
            status: 0,
            body_len: body.len(),
            body,
        }),
    }
}

fn status(
    code: i32,
    remaining: u32,
    reset: i64,
    limit: Option<(u32, i32)>,
) -> wire::DescriptorStatus {
    wire::DescriptorStatus {
        code,
        current_limit: limit.map(|(n, unit)| wire::RateLimit {
            requests_per_unit: n,
            unit,
            name: String::new(),
        }),
        limit_remaining: remaining,
        duration_until_reset: Some(wire::Duration {
            seconds: reset,
            nanos: 0,
        }),
    }
}

fn response(
    overall: i32,
    statuses: Vec<wire::DescriptorStatus>,
    headers: &[(&str, &str)],
) -> Vec<u8> {
    wire::RateLimitResponse {
        overall_code: overall,
        statuses,
        response_headers_to_add: headers
            .iter()
            .map(|(k, v)| wire::HeaderValue {
                key: (*k).to_owned(),
                value: (*v).to_owned(),
                raw_value: Vec::new(),
            })
            .collect(),
    }
    .encode_to_vec()
}

fn entries(d: &wire::Descriptor) -> Vec<(&str, &str)> {
    d.entries
        .iter()
        .map(|e| (e.key.as_str(), e.value.as_str()))
        .collect()
}

#[test]
fn pre_token_request_shape_ok() {
    let (g, s) = gateway("local");
    let (_, _, req) = wait(g.check(&login(), &s, NOW_MS));
    assert_eq!(req.domain, "keygate");
    assert_eq!(req.hits_addend, 1);
    assert_eq!(req.descriptors.len(), 1);
    let d = &req.descriptors[0];
    assert_eq!(
        entries(d),
        [("keygate_rule", "login"), ("remote_address", "203.0.113.9")]
    );
    let o = d.limit.as_ref().unwrap();
    assert_eq!((o.requests_per_unit, o.unit), (2, 2));
    // IPv6 by /64, as local limits count it.
    let (_, _, req) = wait(g.check(&login().at_ip("[2001:db8:1:2:3:4:5:6]:9"), &s, NOW_MS));
    assert_eq!(
        entries(&req.descriptors[0])[1],
        ("remote_address", "2001:db8:1:2::/64")
    );
    // A route without global rules does not wait.
    assert!(!matches!(
        g.check(&MockRequest::new("GET", "/api/auth/me"), &s, NOW_MS),
        Decision::Wait(..)
    ));
}

#[test]
fn over_limit_is_429_with_service_numbers_ok() {
    let (g, s) = gateway("local");
    let (c, p, _) = wait(g.check(&login(), &s, NOW_MS));
    let body = response(
        2,
        vec![status(2, 0, 41, Some((2, 2)))],
        &[("X-Service", "v"), ("bad name", "x"), ("x-crlf", "a\r\nb")],
    );
    let d = g.resume(p, &answer(c.id, body), &s, NOW_MS);
    let Decision::Reply(r) = d else {
        panic!("{d:?}")
    };
    assert_eq!(
        (r.status, r.code, r.metric),
        (429, "rate_limited", Metric::RateLimited)
    );
    assert_eq!(r.header("retry-after"), Some("41"));
    assert_eq!(r.header("ratelimit-policy"), Some("\"2/minute\";q=2;w=60"));
    assert_eq!(r.header("ratelimit"), Some("\"2/minute\";r=0;t=41"));
    // Only the valid header, lowercased.
    assert_eq!(
        r.service_headers,
        [("x-service".to_owned(), "v".to_owned())]
    );
    assert_eq!(g.rate_limit_service_report(), Some((0, None)));
}

#[test]
fn ok_continues_with_headers_ok() {
    let (g, s) = gateway("local");
    let (c, p, _) = wait(g.check(&login(), &s, NOW_MS));
    let body = response(
        1,
        vec![status(1, 1, 30, Some((2, 2)))],
        &[("x-quota", "1 left")],
    );
    let Decision::Continue(f) = g.resume(p, &answer(c.id, body), &s, NOW_MS) else {
        panic!()
    };
    assert_eq!(f.metric, Metric::Allowed);
    assert!(f
        .response_headers
        .contains(&("ratelimit", "\"2/minute\";r=1;t=30".to_owned())));
    assert_eq!(
        f.service_headers,
        [("x-quota".to_owned(), "1 left".to_owned())]
    );
}

#[test]
fn admitted_without_stated_numbers_gets_no_ratelimit_item_ok() {
    let (g, s) = gateway("local");
    let (c, p, _) = wait(g.check(&login(), &s, NOW_MS));
    // No current_limit (so limit_remaining means nothing): policy only, named by the config.
    let body = response(1, vec![status(1, 0, 0, None)], &[]);
    let Decision::Continue(f) = g.resume(p, &answer(c.id, body), &s, NOW_MS) else {
        panic!()
    };
    assert!(f
        .response_headers
        .contains(&("ratelimit-policy", "\"2/minute\";q=2;w=60".to_owned())));
    assert!(
        !f.response_headers.iter().any(|(k, _)| *k == "ratelimit"),
        "{:?}",
        f.response_headers
    );
}

#[test]
fn sub_rules_asked_after_the_token_ok() {
    let (g, s) = gateway("local");
    let r = MockRequest::get("/api/data/1").bearer(&token("alice"));
    let (c, p, req) = wait(g.check(&r, &s, NOW_MS));
    // One descriptor per quota, the name defaulted.
    assert_eq!(req.descriptors.len(), 2);
    assert_eq!(
        entries(&req.descriptors[0]),
        [("keygate_rule", "rule1"), ("sub", "alice")]
    );
    assert_eq!(req.descriptors[1].limit.as_ref().unwrap().unit, 4);
    // Over on the second quota: its reset is the Retry-After.
    let body = response(
        2,
        vec![status(1, 5, 10, None), status(2, 0, 3600, None)],
        &[],
    );
    let Decision::Reply(rep) = g.resume(p, &answer(c.id, body), &s, NOW_MS) else {
        panic!()
    };
    assert_eq!(rep.header("retry-after"), Some("3600"));
    // Anonymous: counted by address, and still refused 401 after an OK.
    let (c, p, req) = wait(g.check(&MockRequest::get("/api/data/1"), &s, NOW_MS));
    assert_eq!(
        entries(&req.descriptors[0])[1],
        ("remote_address", "203.0.113.9")
    );
    let body = response(1, vec![status(1, 5, 10, None), status(1, 5, 10, None)], &[]);
    assert_eq!(g.resume(p, &answer(c.id, body), &s, NOW_MS).status(), 401);
}

#[test]
fn failures_by_mode_ok() {
    let failures: Vec<Box<dyn Fn(CalloutId) -> CalloutResult>> = vec![
        Box::new(|id| CalloutResult {
            id,
            response: Err(CalloutFailure::GrpcStatus(14)),
        }),
        Box::new(|id| CalloutResult {
            id,
            response: Err(CalloutFailure::GrpcStatus(4)),
        }),
        Box::new(|id| CalloutResult {
            id,
            response: Err(CalloutFailure::NoResponse),
        }),
        Box::new(|id| CalloutResult {
            id,
            response: Err(CalloutFailure::DispatchFailed),
        }),
        // Malformed protobuf: a truncated varint, a wrong wire type, garbage.
        Box::new(|id| answer(id, vec![0x08])),
        Box::new(|id| answer(id, vec![0x0a, 0x05, 0x01])),
        Box::new(|id| answer(id, b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff".to_vec())),
        // Invalid UTF-8 in a header key.
        Box::new(|id| answer(id, vec![0x08, 0x01, 0x1a, 0x03, 0x0a, 0x01, 0xff])),
        // UNKNOWN overall code; an empty answer (overall UNKNOWN).
        Box::new(|id| answer(id, response(0, vec![], &[]))),
        Box::new(|id| answer(id, Vec::new())),
        // Lying: statuses for other descriptors, codes that contradict the overall code.
        Box::new(|id| answer(id, response(1, vec![status(1, 1, 1, None); 2], &[]))),
        Box::new(|id| answer(id, response(1, vec![status(2, 0, 1, None)], &[]))),
        Box::new(|id| answer(id, response(2, vec![status(1, 1, 1, None)], &[]))),
        Box::new(|id| answer(id, response(1, vec![status(7, 1, 1, None)], &[]))),
        // A gRPC OK carrying a non-OK status in the shell's status field.
        Box::new(|id| CalloutResult {
            id,
            response: Ok(CalloutResponse {
                status: 200,
                body: response(1, vec![status(1, 1, 1, None)], &[]),
                body_len: 6,
            }),
        }),
        // Longer than the gateway reads.
        Box::new(|id| CalloutResult {
            id,
            response: Ok(CalloutResponse {
                status: 0,
                body: vec![],
                body_len: 1 << 20,
            }),
        }),
    ];
    for (n, fail) in failures.iter().enumerate() {
        // allow: passes, counted, logged once per burst.
        let (g, s) = gateway("allow");
        for i in 0..3 {
            let (c, p, _) = wait(g.check(&login(), &s, NOW_MS));
            let d = g.resume(p, &fail(c.id), &s, NOW_MS);
            assert_eq!(d.status(), 200, "case {n}");
            let (failed, line) = g.rate_limit_service_report().unwrap();
            assert_eq!(failed, 1);
            assert_eq!(line.is_some(), i == 0, "case {n}");
        }
        // deny: 429, Retry-After 1.
        let (g, s) = gateway("deny");
        let (c, p, _) = wait(g.check(&login(), &s, NOW_MS));
        let Decision::Reply(r) = g.resume(p, &fail(c.id), &s, NOW_MS) else {
            panic!("case {n}")
        };
        assert_eq!(
            (r.status, r.header("retry-after")),
            (429, Some("1")),
            "case {n}"
        );
        // local: the rule's own limit in shared data (2/minute): 2 pass, the 3rd refused.
        let (g, s) = gateway("local");
        let mut statuses = Vec::new();
        for _ in 0..3 {
            let (c, p, _) = wait(g.check(&login(), &s, NOW_MS));
            statuses.push(g.resume(p, &fail(c.id), &s, NOW_MS).status());
        }
        assert_eq!(statuses, [200, 200, 429], "case {n}");
    }
}

#[test]
fn failure_burst_logged_once_then_recovery_ok() {
    let (g, s) = gateway("allow");
    let fail = |id| CalloutResult {
        id,
        response: Err(CalloutFailure::GrpcStatus(14)),
    };
    let later = NOW_MS + crate::gateway::rls::LOG_INTERVAL_MS;
    let (c, p, _) = wait(g.check(&login(), &s, NOW_MS));
    let _ = g.resume(p, &fail(c.id), &s, NOW_MS);
    let (_, line) = g.rate_limit_service_report().unwrap();
    assert!(line.unwrap().contains("failure_mode: allow"));
    let (c, p, _) = wait(g.check(&login(), &s, later));
    let ok = response(1, vec![status(1, 1, 1, None)], &[]);
    let _ = g.resume(p, &answer(c.id, ok), &s, later);
    let (failed, line) = g.rate_limit_service_report().unwrap();
    assert_eq!(
        (failed, line.as_deref()),
        (0, Some("keygate: the rate-limit service answers again"))
    );
    // No log line ever names a descriptor value.
    let at = later + crate::gateway::rls::LOG_INTERVAL_MS;
    let (c, p, _) = wait(g.check(&login(), &s, at));
    let _ = g.resume(p, &fail(c.id), &s, at);
    assert!(!g
        .rate_limit_service_report()
        .unwrap()
        .1
        .unwrap()
        .contains("203.0.113.9"));
}

#[test]
fn flapping_service_logs_once_per_interval_with_a_count_ok() {
    let (g, s) = gateway("allow");
    let fail = |id| CalloutResult {
        id,
        response: Err(CalloutFailure::GrpcStatus(14)),
    };
    let mut lines = Vec::new();
    // Fail, recover, fail, … every 100 ms for 5 s: one line (the first failure).
    for i in 0..50u64 {
        let now = NOW_MS + i * 100;
        let (c, p, _) = wait(g.check(&login(), &s, now));
        let result = if i % 2 == 0 {
            fail(c.id)
        } else {
            answer(c.id, response(1, vec![status(1, 1, 1, None)], &[]))
        };
        let _ = g.resume(p, &result, &s, now);
        lines.extend(g.rate_limit_service_report().unwrap().1);
    }
    assert_eq!(lines.len(), 1, "{lines:?}");
    // After the interval the state it is in now is logged, with the failures meanwhile.
    let now = NOW_MS + crate::gateway::rls::LOG_INTERVAL_MS;
    let (c, p, _) = wait(g.check(&login(), &s, now));
    let ok = answer(c.id, response(1, vec![status(1, 1, 1, None)], &[]));
    let _ = g.resume(p, &ok, &s, now);
    let line = g.rate_limit_service_report().unwrap().1.unwrap();
    assert!(line.contains("answers again (24 failed calls"), "{line}");
}

#[test]
fn statusless_answer_uses_overall_code_ok() {
    // Limitador answers with overall_code only.
    let (g, s) = gateway("deny");
    let (c, p, _) = wait(g.check(&login(), &s, NOW_MS));
    assert_eq!(
        g.resume(p, &answer(c.id, response(1, vec![], &[])), &s, NOW_MS)
            .status(),
        200
    );
    let (c, p, _) = wait(g.check(&login(), &s, NOW_MS));
    let Decision::Reply(r) = g.resume(p, &answer(c.id, response(2, vec![], &[])), &s, NOW_MS)
    else {
        panic!()
    };
    assert_eq!((r.status, r.header("retry-after")), (429, Some("1")));
}

#[test]
fn both_phases_and_local_limits_ok() {
    let mut cfg: serde_json::Value = serde_json::from_str(&config("local", "")).unwrap();
    cfg["rate_limits"][1]["prefix"] = "/api/auth/login".into();
    let g = Gateway::from_json(cfg.to_string().as_bytes()).unwrap();
    let s = MemoryStore::new();
    g.prepare_store(&s).unwrap();
    let r = login().bearer(&token("bob"));
    let (c, p, req) = wait(g.check(&r, &s, NOW_MS));
    assert_eq!(req.descriptors.len(), 1);
    let ok = |n| response(1, vec![status(1, 1, 1, None); n], &[]);
    let (c2, p2, req2) = wait(g.resume(p, &answer(c.id, ok(1)), &s, NOW_MS));
    assert_ne!(c.id, c2.id);
    assert_eq!(entries(&req2.descriptors[0])[1], ("sub", "bob"));
    let Decision::Continue(f) = g.resume(p2, &answer(c2.id, ok(2)), &s, NOW_MS) else {
        panic!()
    };
    // Every limit passed shows in RateLimit-Policy.
    let policy = &f
        .response_headers
        .iter()
        .find(|(k, _)| *k == "ratelimit-policy")
        .unwrap()
        .1;
    assert_eq!(policy.matches(";q=").count(), 3, "{policy}");
    // A local rule is still counted locally, never asked.
    let local = MockRequest::get("/api/local").bearer(&token("bob"));
    assert_eq!(g.check(&local, &s, NOW_MS).status(), 200);
    assert_eq!(g.check(&local, &s, NOW_MS).status(), 429);
}

#[test]
fn shadow_mode_continues_ok() {
    let cfg = config("local", r#", "mode": "shadow""#);
    let g = Gateway::from_json(cfg.as_bytes()).unwrap();
    let s = MemoryStore::new();
    let (c, p, _) = wait(g.check(&login(), &s, NOW_MS));
    let body = response(2, vec![status(2, 0, 9, None)], &[]);
    let Decision::Continue(f) = g.resume(p, &answer(c.id, body), &s, NOW_MS) else {
        panic!()
    };
    assert_eq!(f.metric, Metric::ShadowRateLimited);
    assert_eq!(f.shadow_refusal.unwrap().rule, "rate_limits[0]");
}

#[test]
fn long_values_are_hashed_ok() {
    let mut cfg: serde_json::Value = serde_json::from_str(&config("local", "")).unwrap();
    cfg["rate_limits"][0]["key"] = "header:x-api-key".into();
    let g = Gateway::from_json(cfg.to_string().as_bytes()).unwrap();
    let s = MemoryStore::new();
    let long = "k".repeat(1000);
    let (_, _, req) = wait(g.check(&login().with_headers(&[("x-api-key", &long)]), &s, NOW_MS));
    let (kind, value) = entries(&req.descriptors[0])[1];
    assert_eq!(kind, "header");
    assert!(value.starts_with("sha256:") && value.len() == 71, "{value}");
    let (_, _, req) = wait(g.check(&login().with_headers(&[("x-api-key", "abc")]), &s, NOW_MS));
    assert_eq!(entries(&req.descriptors[0])[1], ("header", "abc"));
}

#[test]
#[allow(clippy::type_complexity)]
fn bad_configs_name_the_field_fails() {
    let base = config("local", "");
    let mutate = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut v: serde_json::Value = serde_json::from_str(&base).unwrap();
        f(&mut v);
        Gateway::from_json(v.to_string().as_bytes()).unwrap_err()
    };
    let cases: Vec<(Box<dyn Fn(&mut serde_json::Value)>, &str)> = vec![
        (
            Box::new(|v| {
                v.as_object_mut().unwrap().remove("rate_limit_service");
            }),
            "rate_limits[0].scope",
        ),
        (
            Box::new(|v| v["rate_limits"][0]["limit"] = "5/15m".into()),
            "rate_limits[0].limit",
        ),
        (
            Box::new(|v| v["rate_limits"][1]["limit"][1] = "1/week".into()),
            "rate_limits[1].limit[1]",
        ),
        (
            Box::new(|v| v["rate_limits"][2]["name"] = "login".into()),
            "rate_limits[2].name",
        ),
        (
            Box::new(|v| v["rate_limits"][2]["name"] = "rule1".into()),
            "rate_limits[2].name",
        ),
        (
            Box::new(|v| v["rate_limits"][2]["name"] = "a b".into()),
            "rate_limits[2].name",
        ),
        (
            Box::new(|v| v["rate_limits"][2]["scope"] = "fleet".into()),
            "rate_limits[2].scope",
        ),
        (
            Box::new(|v| v["rate_limit_service"]["timeout_ms"] = 0.into()),
            "rate_limit_service.timeout_ms",
        ),
        (
            Box::new(|v| v["rate_limit_service"]["timeout_ms"] = 10_001.into()),
            "rate_limit_service.timeout_ms",
        ),
        (
            Box::new(|v| {
                v["rate_limit_service"]
                    .as_object_mut()
                    .unwrap()
                    .remove("domain");
            }),
            "rate_limit_service.domain",
        ),
        (
            Box::new(|v| {
                v["rate_limit_service"]
                    .as_object_mut()
                    .unwrap()
                    .remove("cluster");
            }),
            "rate_limit_service.cluster",
        ),
        (
            Box::new(|v| v["rate_limit_service"]["failure_mode"] = "open".into()),
            "rate_limit_service.failure_mode",
        ),
        (
            Box::new(|v| v["rate_limit_service"]["clustr"] = "x".into()),
            "rate_limit_service.clustr",
        ),
    ];
    for (f, field) in cases {
        let e = mutate(&*f);
        assert_eq!(e.field, field, "{e}");
    }
    // A local rule may keep any period; names are optional.
    let mut v: serde_json::Value = serde_json::from_str(&base).unwrap();
    v["rate_limits"][2]["limit"] = "5/15m".into();
    v.as_object_mut().unwrap().remove("rate_limit_service");
    v["rate_limits"][0]["scope"] = "local".into();
    v["rate_limits"][1]["scope"] = "local".into();
    assert!(Gateway::from_json(v.to_string().as_bytes()).is_ok());
}

#[test]
fn slots_only_for_rules_counted_locally_ok() {
    // local fallback: every rule has slots; deny/allow: the global rules have none.
    let (g, _) = gateway("local");
    assert_eq!(g.rate_limit_slots(), 3 * 4096);
    let (g, s) = gateway("deny");
    assert_eq!(g.rate_limit_slots(), 4096);
    assert_eq!(s.len(), 4096);
}

#[test]
fn token_cache_hit_still_asks_the_service_ok() {
    let (g, s) = gateway("local");
    let r = MockRequest::get("/api/data/1").bearer(&token("erin"));
    let ok = response(1, vec![status(1, 5, 10, None); 2], &[]);
    for _ in 0..3 {
        let (c, p, req) = wait(g.check(&r, &s, NOW_MS));
        assert_eq!(entries(&req.descriptors[0])[1], ("sub", "erin"));
        assert_eq!(
            g.resume(p, &answer(c.id, ok.clone()), &s, NOW_MS).status(),
            200
        );
    }
    // Verified once, then served from the verified-token cache: every request was still asked.
    let (hits, misses) = g.token_cache_stats();
    assert_eq!((hits, misses), (2, 1));
}

#[test]
fn blank_header_value_falls_back_to_the_address_ok() {
    let mut v: serde_json::Value = serde_json::from_str(&config("local", "")).unwrap();
    v["rate_limits"] = serde_json::json!([
        {"name": "api", "prefix": "/api/auth/", "key": "header:x-api-key", "limit": "2/minute",
         "scope": "global"}
    ]);
    let g = Gateway::from_json(v.to_string().as_bytes()).unwrap();
    let s = MemoryStore::new();
    g.prepare_store(&s).unwrap();
    for blank in ["", " ", "\t "] {
        let r = login().with_headers(&[("x-api-key", blank)]);
        let (_, _, req) = wait(g.check(&r, &s, NOW_MS));
        // Never an empty descriptor value (the protocol needs one byte at least).
        assert_eq!(
            entries(&req.descriptors[0]),
            [("keygate_rule", "api"), ("remote_address", "203.0.113.9")],
            "{blank:?}"
        );
    }
    let r = login().with_headers(&[("x-api-key", "k-1")]);
    let (_, _, req) = wait(g.check(&r, &s, NOW_MS));
    assert_eq!(entries(&req.descriptors[0])[1], ("header", "k-1"));
}

#[test]
fn more_descriptors_than_a_call_takes_refused_ok() {
    let rule = |i: usize, key: &str| {
        serde_json::json!({"name": format!("r{i}"), "prefix": "/", "key": key,
            "limit": ["1/second", "2/minute", "3/hour", "4/day"], "scope": "global"})
    };
    let build = |n: usize, key: &str| {
        let mut v: serde_json::Value = serde_json::from_str(&config("local", "")).unwrap();
        v["rate_limits"] = (0..n).map(|i| rule(i, key)).collect();
        Gateway::from_json(v.to_string().as_bytes())
    };
    // 16 rules × 4 quotas = 64 descriptors in one call: accepted; one more rule is not.
    for key in ["ip", "sub"] {
        assert!(build(16, key).is_ok(), "{key}");
        let e = build(17, key).unwrap_err();
        assert_eq!(e.field, "rate_limits[16]", "{key}: {e}");
    }
    // Pre- and post-token calls are separate: 16 of each is fine.
    let mut v: serde_json::Value = serde_json::from_str(&config("local", "")).unwrap();
    v["rate_limits"] = (0..32)
        .map(|i| rule(i, if i < 16 { "ip" } else { "sub" }))
        .collect();
    assert!(Gateway::from_json(v.to_string().as_bytes()).is_ok());
}

/// A held request's `Pending` carries indexes into the gateway that made it (the rule asked,
/// the `RateLimit-Policy` rule, the token source): another gateway (the filter reconfigured
/// while it was held, a clone) and an answer to another callout refuse it with 503
/// `unavailable` in both modes, never a panic and never a pass-through.
#[test]
fn pending_of_another_gateway_or_callout_refused_fails() {
    let unavailable = |d: Decision<'_>| match d {
        Decision::Reply(r) => {
            assert_eq!(
                (r.status, r.code, r.metric),
                (503, "unavailable", Metric::Unavailable)
            );
            assert_eq!(r.header("retry-after"), Some("1"));
        }
        other => panic!("expected 503 unavailable, got {other:?}"),
    };
    let ok = || response(1, vec![status(1, 1, 30, Some((2, 2)))], &[]);
    let (g, s) = gateway("local");
    // The same answer on the gateway that asked continues.
    let (c, p, _) = wait(g.check(&login(), &s, NOW_MS));
    assert_eq!(g.resume(p, &answer(c.id, ok()), &s, NOW_MS).status(), 200);

    // Reconfigured: the new config has other rules at the same indexes (rate_limits[0] is
    // now a `sub` rule, and no rule 2 at all). Enforce and shadow alike.
    let other = r#"{
      "jwks": {"keys": [{"kty": "oct", "kid": "k1", "alg": "HS256", "k": "KEY"}]},
      "rules": [{"prefix": "/", "allow": "public"}],
      "rate_limit_service": {"cluster": "rls", "domain": "keygate"},
      "rate_limits": [{"prefix": "/", "key": "sub", "limit": "9/second", "scope": "global"}],
      "mode": "MODE"
    }"#
    .replace("KEY", K);
    for mode in ["enforce", "shadow"] {
        let g2 = Gateway::from_json(other.replace("MODE", mode).as_bytes()).unwrap();
        let (c, p, _) = wait(g.check(&login(), &s, NOW_MS));
        unavailable(g2.resume(p, &answer(c.id, ok()), &s, NOW_MS));
    }
    // After the token (RlsPost): the same.
    let data = MockRequest::get("/api/data").bearer(&token("alice"));
    let (c, p, _) = wait(g.check(&data, &s, NOW_MS));
    let (g3, _) = gateway("local");
    unavailable(g3.resume(p, &answer(c.id, ok()), &s, NOW_MS));
    // A clone is another gateway (its own callouts and caches).
    let (c, p, _) = wait(g.check(&login(), &s, NOW_MS));
    unavailable(g.clone().resume(p, &answer(c.id, ok()), &s, NOW_MS));
    // The answer to another callout, on the right gateway.
    let (c1, p1, _) = wait(g.check(&login(), &s, NOW_MS));
    let (c2, _p2, _) = wait(g.check(&login().at_ip("198.51.100.7:1"), &s, NOW_MS));
    assert_ne!(c1.id, c2.id);
    unavailable(g.resume(p1, &answer(c2.id, ok()), &s, NOW_MS));
    // Callout ids are never shared between gateways: an old gateway's answer is never
    // taken for a new one's callout.
    let (c3, _, _) = wait(g3.check(&login(), &s, NOW_MS));
    let (c4, _, _) = wait(g.check(&login(), &s, NOW_MS));
    assert_ne!(c3.id, c4.id);
}

/// Shadow mode, a global `ip` limit the service says is over: the request still goes upstream
/// with its valid token's claim headers (the refusal before the token is not where evaluation
/// stops), counted once as a would-be 429.
#[test]
fn shadow_global_refusal_before_the_token_keeps_claim_headers_ok() {
    let cfg = config(
        "deny",
        r#", "mode": "shadow", "claims_to_headers": {"sub": "x-user-id"}"#,
    );
    let g = Gateway::from_json(cfg.as_bytes()).unwrap();
    let s = MemoryStore::new();
    for (code, want) in [(2, Metric::ShadowRateLimited), (1, Metric::ShadowAllowed)] {
        let (c, p, _) = wait(g.check(&login().bearer(&token("alice")), &s, NOW_MS));
        let body = response(code, vec![status(code, 0, 9, None)], &[]);
        let Decision::Continue(f) = g.resume(p, &answer(c.id, body), &s, NOW_MS) else {
            panic!()
        };
        let sub = f
            .set_request_headers
            .iter()
            .find(|(k, _)| *k == "x-user-id");
        assert_eq!(sub.map(|(_, v)| v.as_str()), Some("alice"), "{want:?}");
        assert_eq!(f.metric, want);
    }
}

/// A duplicated token waiting for the service (the `sub` rules, by address) keeps what
/// `forward_token: false` needs: in shadow mode every copy is taken out after the wait.
#[test]
fn shadow_duplicate_tokens_stripped_after_the_wait_ok() {
    let cfg = config(
        "deny",
        r#", "mode": "shadow", "forward_token": false,
            "token_sources": [{"header": "authorization", "prefix": "Bearer "}, {"cookie": "t"}]"#,
    );
    let g = Gateway::from_json(cfg.as_bytes()).unwrap();
    let s = MemoryStore::new();
    let t = token("alice");
    let two = MockRequest::get("/api/data")
        .bearer(&t)
        .with_headers(&[("cookie", &format!("t={t}; a=1"))]);
    let (c, p, _) = wait(g.check(&two, &s, NOW_MS));
    let body = response(1, vec![status(1, 1, 9, None); 2], &[]);
    let Decision::Continue(f) = g.resume(p, &answer(c.id, body), &s, NOW_MS) else {
        panic!()
    };
    assert_eq!(f.metric, Metric::ShadowDenied400);
    assert_eq!(
        f.strip_token,
        Some(StripToken::Every(vec![
            StripToken::Header("authorization"),
            StripToken::Cookie(Some(b"a=1".to_vec())),
        ]))
    );
}
