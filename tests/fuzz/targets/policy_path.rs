//! Arbitrary method and path against route rules: never panics, and a path that is not
//! normalized never matches a rule.
//! The body of the cargo-fuzz target `policy_path` (`make fuzz`), also replayed over the committed
//! corpus by `cargo test` (tests/fuzz_replay.rs).

use keygate::policy::{Policy, PolicyConfig, RequestPath, RouteDecision};
use std::sync::OnceLock;

fn policy() -> &'static Policy {
    static P: OnceLock<Policy> = OnceLock::new();
    P.get_or_init(|| {
        let c: PolicyConfig = serde_json::from_str(
            r#"{"roles": {"admin": ["*"], "nurse": ["patients:read"]},
                "rules": [{"prefix": "/api/auth/", "allow": "public"},
                          {"prefix": "/admin", "roles": ["admin"]},
                          {"path": "/api/patients/*", "methods": ["GET"], "permissions": ["patients:read"]},
                          {"path": "/a/*/b/*", "allow": "public"},
                          {"prefix": "/", "allow": "authenticated"}]}"#,
        )
        .unwrap_or_else(|_| std::process::abort());
        Policy::new(&c).unwrap_or_else(|_| std::process::abort())
    })
}

pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (method, path) = text.split_once(' ').unwrap_or(("GET", &text));
    let decision = policy().requirement(method, path);
    if RequestPath::new(path).is_none() {
        assert_eq!(decision, RouteDecision::PathNotNormalized);
    }
    if let RouteDecision::Rule { index: 1, .. } = decision {
        // Prefixes match ASCII-case-insensitively (upstreams that fold case must not see
        // `/ADMIN` slip past an `/admin` rule).
        assert!(path.to_ascii_lowercase().starts_with("/admin"));
    }
}
