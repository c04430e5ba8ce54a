//! Arbitrary header lists through the filter's path: proxy-wasm map bytes → request →
//! token sources → decision. Never panics; a token in two places is never let through.
//! The body of the cargo-fuzz target `token_sources` (`make fuzz`), also replayed over the committed
//! corpus by `cargo test` (tests/fuzz_replay.rs).

use keygate::gateway::{
    encode_proxy_wasm_map, presented, Gateway, HttpRequest, MemoryStore, Presented, RequestHeaders,
    TokenSource,
};

const CONFIG: &str = r#"{
  "jwks": {"keys": [{"kty": "oct", "kid": "k1", "alg": "HS256", "k": "Y2hhbmdlLW1lLXRoaXMtaXMtdGhlLWV4YW1wbGUtc2VjcmV0LTMyK2J5dGVzLWxvbmc"}]},
  "token_sources": [{"header": "authorization", "prefix": "Bearer "}, {"cookie": "__Host-access"}],
  "rules": [{"prefix": "/pub", "allow": "public"}, {"prefix": "/", "allow": "authenticated"}],
  "rate_limits": [{"prefix": "/", "key": "sub", "limit": "1000/second", "slots": 16}],
  "claims_to_headers": {"sub": "x-user-id"}
}"#;

/// One gateway per thread: it holds per-VM caches (interior mutability), so it is not `Sync`.
fn gateway() -> &'static Gateway {
    thread_local! {
        static G: &'static Gateway = Box::leak(Box::new(
            Gateway::from_json(CONFIG.as_bytes()).unwrap_or_else(|_| std::process::abort()),
        ));
    }
    G.with(|g| *g)
}

/// Splits `data` into header pairs at 0xff/0xfe bytes (names and values stay arbitrary).
fn pairs(data: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = vec![
        (b":method".to_vec(), b"GET".to_vec()),
        (b":path".to_vec(), b"/api".to_vec()),
    ];
    for line in data.split(|b| *b == 0xff) {
        let mut kv = line.splitn(2, |b| *b == 0xfe);
        let name = kv.next().unwrap_or_default().to_vec();
        let value = kv.next().unwrap_or_default().to_vec();
        out.push((name, value));
    }
    out
}

pub fn run(data: &[u8]) {
    let g = gateway();
    let store = MemoryStore::new();
    // Raw map bytes as the host would hand them over (mostly refused as malformed).
    if let Some(r) = RequestHeaders::from_proxy_wasm_map(data, Some(data)) {
        let _ = g.check(&r, &store, 1_700_000_000_000);
    }
    // Structured header lists, encoded and decoded the way the filter reads them.
    let list = pairs(data);
    let refs: Vec<(&[u8], &[u8])> = list.iter().map(|(k, v)| (&k[..], &v[..])).collect();
    let Some(r) = RequestHeaders::from_proxy_wasm_map(&encode_proxy_wasm_map(&refs), None) else {
        panic!("an encoded map must decode");
    };
    let outcome = g.check(&r, &store, 1_700_000_000_000);
    assert!(matches!(outcome.status(), 200 | 400 | 401 | 403 | 429));
    let sources = [
        TokenSource::bearer(),
        TokenSource::Cookie {
            name: "__Host-access".into(),
        },
    ];
    let found = presented(&sources, &r, 8192);
    if found == Presented::Several {
        assert_ne!(outcome.status(), 200, "a duplicated token was let through");
    }
    // Two Bearer elements (lines, or comma-separated) are always "several".
    let bearers: usize = r
        .header_values("authorization")
        .iter()
        .flat_map(|v| v.split(|b| *b == b','))
        .filter(|e| {
            let e: Vec<u8> = e
                .iter()
                .copied()
                .skip_while(|b| *b == b' ' || *b == b'\t')
                .collect();
            e.len() > 7
                && e.get(..7)
                    .is_some_and(|h| h.eq_ignore_ascii_case(b"bearer "))
        })
        .count();
    if bearers >= 2 && found != Presented::Absent {
        assert_eq!(found, Presented::Several);
    }
}
