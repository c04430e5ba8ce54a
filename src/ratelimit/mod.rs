//! Rate limiting: GCRA math over stored state the shell keeps (proxy-wasm shared data).
//!
//! # Semantics
//! - Rules are ordered; the **first** rule matching the request applies (like flask-limiter, a
//!   specific limit replaces a general one). List several quotas in one rule
//!   (`["50/hour", "200/day"]`) to limit several windows at once; a request must fit all.
//! - GCRA: a fresh key gets `count` requests at once, then one per T = period / count. There
//!   is no fixed window, so no 2× burst at a window edge (over any span of length `period` a
//!   key still gets at most `2·count − 1`, as with any token bucket).
//! - Keys: `ip` is the client address (IPv6 grouped by /64, the usual per-host allocation;
//!   a port is ignored); `sub` is the token subject, and requests without a principal fall
//!   back to their `ip` key so they cannot dodge the limit. Keys are namespaced (`ip:…`,
//!   `sub:…`) so a subject can never share a bucket with an address.
//! - Paths failing the normalization check match no rate-limit rule; the policy refuses them.
//!
//! # State and the shell
//! State is bounded: each rule has a fixed number of slots. Per request the shell does:
//! 1. `let (i, rule) = limits.find(method, path)?` — none: no limit applies;
//! 2. `let fp = key_fingerprint(&seed, i, &rule.key(client_ip, sub))`;
//!    `let slot = slot_index(fp, SLOTS)`;
//! 3. read the slot's bytes (with its CAS token) and `State::try_from` them;
//! 4. `let d = rule.limiter().check(state.as_ref(), fp, now_ms)`;
//! 5. if `d.new_state()` is `Some`, compare-and-swap its bytes in (retry from 3 on a CAS
//!    conflict); if `d.allowed()` continue, else reply 429 with [`RateDecision::error`];
//!    send `RateLimit-Policy` ([`Limiter::policy_header`]), `RateLimit`
//!    ([`RateDecision::ratelimit_header`]) and, on 429, `Retry-After`.
//!
//! The `seed` must be one secret shared by every VM/worker that shares the slots (e.g. created
//! once with [`crate::OsEntropy`] and published through shared data): with per-worker seeds the
//! same client would land in different slots on different workers and get the limit once per
//! worker.
//!
//! Slot collisions (two keys, one slot) are handled in [`Limiter::check`]: an idle owner is
//! replaced, an active one is shared, so a collision never admits more. The keyed hash keeps an
//! attacker from choosing addresses that collide with a victim's slot on purpose.
//!
//! **Unreadable state** (`State::try_from` fails): pass `None`, i.e. start fresh, and let the
//! CAS overwrite it. Only our own code writes shared data, so such bytes come from a format
//! change across an upgrade or a host fault, not from an attacker; refusing instead would
//! leave that slot refusing every key hashed to it until it was rewritten, which never happens
//! on a refusal. The cost is at most one fresh burst per slot, once. Count it in a metric
//! (code `rate_limit_state_invalid`).

mod gcra;
mod quota;
mod state;

pub use gcra::{Limiter, RateDecision};
pub use quota::{Quota, MAX_COUNT, MAX_PERIOD_SECS, MAX_QUOTA_LEN, MIN_COUNT, MIN_PERIOD_SECS};
pub use state::State;

use crate::policy::{RequestPath, RouteMatch};
use crate::{ConfigError, ErrorCode};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// Most quotas in one rule.
pub const MAX_QUOTAS: usize = 8;
/// Most rate-limit rules.
pub const MAX_RATE_LIMIT_RULES: usize = 256;

/// Rate-limit failures.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RateLimitError {
    /// The request exceeds a quota (HTTP 429).
    Limited {
        /// Seconds until a retry can be admitted.
        retry_after_secs: u64,
    },
    /// Stored state bytes could not be read.
    StateMalformed {
        /// What was wrong with them.
        why: &'static str,
    },
}

impl fmt::Display for RateLimitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Limited { retry_after_secs } => write!(
                f,
                "too many requests: retry after {retry_after_secs} second(s)"
            ),
            Self::StateMalformed { why } => {
                write!(
                    f,
                    "stored rate-limit state is unreadable ({why}); it will be reset"
                )
            }
        }
    }
}

impl std::error::Error for RateLimitError {}

impl ErrorCode for RateLimitError {
    fn code(&self) -> &'static str {
        match self {
            Self::Limited { .. } => "rate_limited",
            Self::StateMalformed { .. } => "rate_limit_state_invalid",
        }
    }
}

/// One value or a list of them (`"limit": "5/minute"` or `"limit": ["50/hour", "200/day"]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(
    untagged,
    expecting = "a limit like \"5/minute\" or a list like [\"50/hour\", \"200/day\"]"
)]
pub enum OneOrMany<T> {
    /// A single value.
    One(T),
    /// A list.
    Many(Vec<T>),
}

impl<T> OneOrMany<T> {
    /// The values as a slice.
    #[must_use]
    pub fn as_slice(&self) -> &[T] {
        match self {
            Self::One(v) => std::slice::from_ref(v),
            Self::Many(v) => v,
        }
    }
}

/// What identifies the client a limit counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeySource {
    /// The client IP address (IPv6 by /64).
    Ip,
    /// The token subject; the client IP when there is no principal.
    Sub,
}

/// One `rate_limits` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitRuleConfig {
    /// Exact path; a `*` segment matches one non-empty segment. Defaults to none; exactly one
    /// of `path`/`prefix`.
    pub path: Option<String>,
    /// Plain string prefix of the path. Defaults to none.
    pub prefix: Option<String>,
    /// Uppercase methods the rule applies to (`GET` includes `HEAD`). Defaults to every method.
    pub methods: Option<Vec<String>>,
    /// `"ip"` or `"sub"`. Required.
    pub key: KeySource,
    /// One quota or a list (1..=8). Required.
    pub limit: OneOrMany<String>,
}

/// A compiled rate-limit rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitRule {
    route: RouteMatch,
    key: KeySource,
    limiter: Limiter,
}

impl RateLimitRule {
    /// Validates one rule.
    ///
    /// # Errors
    /// [`ConfigError`] naming the field (`path`, `prefix`, `methods[0]`, `limit`, `limit[1]`,
    /// or empty for the path/prefix choice) when it is invalid.
    pub fn new(config: &RateLimitRuleConfig) -> Result<Self, ConfigError> {
        let route = RouteMatch::new(
            config.path.as_deref(),
            config.prefix.as_deref(),
            config.methods.as_deref(),
        )?;
        let quotas = match &config.limit {
            OneOrMany::One(s) => vec![s.parse::<Quota>()?],
            OneOrMany::Many(list) => list
                .iter()
                .enumerate()
                .map(|(j, s)| {
                    s.parse::<Quota>()
                        .map_err(|e| ConfigError::new(format!("limit[{j}]"), e.message))
                })
                .collect::<Result<_, _>>()?,
        };
        Ok(Self {
            route,
            key: config.key,
            limiter: Limiter::new(quotas)?,
        })
    }

    /// The requests it applies to.
    #[must_use]
    pub fn route(&self) -> &RouteMatch {
        &self.route
    }

    /// What the limit counts against.
    #[must_use]
    pub fn key_source(&self) -> KeySource {
        self.key
    }

    /// Its quotas.
    #[must_use]
    pub fn limiter(&self) -> &Limiter {
        &self.limiter
    }

    /// The key string to fingerprint: `sub:<sub>` for `sub` rules with a principal, otherwise
    /// the client address key ([`ip_key`]; `ip:unknown`, one shared bucket, when the shell
    /// has no address).
    #[must_use]
    pub fn key(&self, client_ip: Option<&str>, sub: Option<&str>) -> String {
        match (self.key, sub) {
            (KeySource::Sub, Some(sub)) => format!("sub:{sub}"),
            _ => ip_key(client_ip.unwrap_or("unknown")),
        }
    }
}

/// The compiled `rate_limits` list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RateLimits {
    rules: Vec<RateLimitRule>,
}

impl RateLimits {
    /// Validates the list.
    ///
    /// # Errors
    /// [`ConfigError`] naming the field (`rate_limits[2].limit[1]`, …) when a rule is invalid
    /// or there are more than [`MAX_RATE_LIMIT_RULES`].
    pub fn new(configs: &[RateLimitRuleConfig]) -> Result<Self, ConfigError> {
        if configs.len() > MAX_RATE_LIMIT_RULES {
            return Err(ConfigError::new(
                "rate_limits",
                format!("at most {MAX_RATE_LIMIT_RULES} rules"),
            ));
        }
        let rules = configs
            .iter()
            .enumerate()
            .map(|(i, c)| RateLimitRule::new(c).map_err(|e| e.within(&format!("rate_limits[{i}]"))))
            .collect::<Result<_, _>>()?;
        Ok(Self { rules })
    }

    /// The first rule matching the request, with its index (for [`key_fingerprint`]).
    #[must_use]
    pub fn find(&self, method: &str, path: &str) -> Option<(usize, &RateLimitRule)> {
        let path = RequestPath::new(path)?;
        self.rules
            .iter()
            .enumerate()
            .find(|(_, r)| r.route.matches(method, &path))
    }

    /// The rules, in config order.
    #[must_use]
    pub fn rules(&self) -> &[RateLimitRule] {
        &self.rules
    }
}

/// The key for a client address: `ip:1.2.3.4`, `ip:2001:db8:1:2::/64` (IPv6 grouped by /64,
/// IPv4-mapped IPv6 as IPv4; a `:port` is dropped). Unparseable input is used verbatim.
#[must_use]
pub fn ip_key(client_ip: &str) -> String {
    let ip = client_ip
        .parse::<SocketAddr>()
        .map(|s| s.ip())
        .or_else(|_| client_ip.parse::<IpAddr>());
    match ip {
        Ok(IpAddr::V4(v4)) => format!("ip:{v4}"),
        Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => format!("ip:{v4}"),
            None => {
                let mut s = v6.segments();
                s.iter_mut().skip(4).for_each(|x| *x = 0);
                format!("ip:{}/64", std::net::Ipv6Addr::from(s))
            }
        },
        Err(_) => format!("ip:{client_ip}"),
    }
}

/// A keyed 64-bit fingerprint of `key` for rule `rule_index`: the first 8 bytes of
/// SHA-256(domain ‖ seed ‖ rule_index ‖ key). Without the secret `seed` an attacker cannot
/// pick keys that collide with a victim's.
#[must_use]
pub fn key_fingerprint(seed: &[u8; 32], rule_index: usize, key: &str) -> u64 {
    let digest = Sha256::new()
        .chain_update(b"keygate ratelimit v1\0")
        .chain_update(seed)
        .chain_update((rule_index as u64).to_le_bytes())
        .chain_update(key.as_bytes())
        .finalize();
    digest
        .first_chunk::<8>()
        .map_or(0, |b| u64::from_le_bytes(*b))
}

/// The slot (0..slots) of a fingerprint; 0 when `slots` is 0.
#[must_use]
pub fn slot_index(fingerprint: u64, slots: u32) -> u32 {
    // Multiply-shift maps the uniform fingerprint onto 0..slots without modulo bias.
    let wide = (u128::from(fingerprint) * u128::from(slots)) >> 64;
    u32::try_from(wide).unwrap_or(0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const CONFIG: &str = r#"[
      {"path": "/api/auth/login", "methods": ["POST"], "key": "ip", "limit": "5/minute"},
      {"prefix": "/api/auth/password-reset", "key": "ip", "limit": "3/hour"},
      {"prefix": "/api/", "key": "sub", "limit": ["50/hour", "200/day"]}
    ]"#;

    fn limits() -> RateLimits {
        let configs: Vec<RateLimitRuleConfig> = serde_json::from_str(CONFIG).unwrap();
        RateLimits::new(&configs).unwrap()
    }

    #[test]
    fn find_first_match_ok() {
        let l = limits();
        let (i, r) = l.find("POST", "/api/auth/login?next=/").unwrap();
        assert_eq!(i, 0);
        assert_eq!(r.limiter().policy_header(), "\"5/minute\";q=5;w=60");
        assert_eq!(l.find("GET", "/api/auth/login").unwrap().0, 2);
        assert_eq!(
            l.find("POST", "/api/auth/password-reset/confirm")
                .unwrap()
                .0,
            1
        );
        let (i, r) = l.find("GET", "/api/patients/1").unwrap();
        assert_eq!(i, 2);
        assert_eq!(r.limiter().quotas().len(), 2);
        assert_eq!(r.key_source(), KeySource::Sub);
        assert!(r.route().prefix().is_some());
        assert!(l.find("GET", "/health").is_none());
        assert!(l.find("POST", "/api/x/../auth/login").is_none());
        assert_eq!(l.rules().len(), 3);
    }

    #[test]
    fn keys_ok() {
        let l = limits();
        let ip_rule = &l.rules()[0];
        let sub_rule = &l.rules()[2];
        assert_eq!(
            ip_rule.key(Some("203.0.113.7"), Some("alice")),
            "ip:203.0.113.7"
        );
        assert_eq!(
            sub_rule.key(Some("203.0.113.7"), Some("alice")),
            "sub:alice"
        );
        assert_eq!(sub_rule.key(Some("203.0.113.7"), None), "ip:203.0.113.7");
        assert_eq!(sub_rule.key(None, None), "ip:unknown");
        assert_eq!(ip_key("203.0.113.7:5555"), "ip:203.0.113.7");
        assert_eq!(ip_key("2001:db8:1:2:3:4:5:6"), "ip:2001:db8:1:2::/64");
        assert_eq!(ip_key("[2001:db8:1:2:ffff::1]:443"), "ip:2001:db8:1:2::/64");
        assert_eq!(ip_key("::ffff:198.51.100.1"), "ip:198.51.100.1");
        assert_eq!(ip_key("not an ip"), "ip:not an ip");
    }

    #[test]
    fn fingerprint_keyed_ok() {
        let seed = [7u8; 32];
        let a = key_fingerprint(&seed, 0, "ip:1.2.3.4");
        assert_eq!(a, key_fingerprint(&seed, 0, "ip:1.2.3.4"));
        assert_ne!(a, key_fingerprint(&seed, 1, "ip:1.2.3.4"));
        assert_ne!(a, key_fingerprint(&seed, 0, "ip:1.2.3.5"));
        assert_ne!(a, key_fingerprint(&[8u8; 32], 0, "ip:1.2.3.4"));
    }

    #[test]
    fn slot_index_ok() {
        assert_eq!(slot_index(u64::MAX, 1024), 1023);
        assert_eq!(slot_index(0, 1024), 0);
        assert_eq!(slot_index(u64::MAX, 0), 0);
        assert_eq!(slot_index(1 << 63, 2), 1);
        let seed = [1u8; 32];
        let mut used = [false; 64];
        for i in 0..1_000 {
            used[slot_index(key_fingerprint(&seed, 0, &format!("ip:10.0.{i}")), 64) as usize] =
                true;
        }
        assert!(used.iter().all(|u| *u));
    }

    #[test]
    fn end_to_end_login_limit_ok() {
        let l = limits();
        let seed = [3u8; 32];
        let (i, rule) = l.find("POST", "/api/auth/login").unwrap();
        let fp = key_fingerprint(&seed, i, &rule.key(Some("198.51.100.9"), None));
        let mut stored: Option<Vec<u8>> = None;
        let mut admitted = 0;
        for _ in 0..10 {
            let state = stored.as_deref().and_then(|b| State::try_from(b).ok());
            let d = rule.limiter().check(state.as_ref(), fp, 1_700_000_000_000);
            if let Some(s) = d.new_state() {
                stored = Some(s.to_bytes());
            }
            admitted += u32::from(d.allowed());
        }
        assert_eq!(admitted, 5);
    }

    #[test]
    fn config_bad_fails() {
        let cases = [
            (
                r#"[{"prefix":"/","key":"ip","limit":"5/fortnight"}]"#,
                "rate_limits[0].limit",
            ),
            (
                r#"[{"prefix":"/","key":"ip","limit":"1/s"},{"prefix":"/","key":"ip","limit":["1/s","0/m"]}]"#,
                "rate_limits[1].limit[1]",
            ),
            (
                r#"[{"prefix":"/","key":"ip","limit":[]}]"#,
                "rate_limits[0].limit",
            ),
            (
                r#"[{"prefix":"/","key":"ip","limit":["1/s","1/1s"]}]"#,
                "rate_limits[0].limit",
            ),
            (r#"[{"key":"ip","limit":"1/s"}]"#, "rate_limits[0]"),
            (
                r#"[{"path":"/a/*x","key":"ip","limit":"1/s"}]"#,
                "rate_limits[0].path",
            ),
        ];
        for (json, field) in cases {
            let configs: Vec<RateLimitRuleConfig> = serde_json::from_str(json).unwrap();
            let e = RateLimits::new(&configs).unwrap_err();
            assert_eq!(e.field, field, "{json}");
            assert!(!e.message.is_empty());
        }
    }

    #[test]
    fn config_shape_fails() {
        for json in [
            r#"[{"prefix":"/","key":"jwt","limit":"1/s"}]"#,
            r#"[{"prefix":"/","key":"ip","limit":5}]"#,
            r#"[{"prefix":"/","key":"ip"}]"#,
            r#"[{"prefix":"/","key":"ip","limit":"1/s","burst":3}]"#,
        ] {
            assert!(
                serde_json::from_str::<Vec<RateLimitRuleConfig>>(json).is_err(),
                "{json}"
            );
        }
        let e = serde_json::from_str::<OneOrMany<String>>("5").unwrap_err();
        assert!(e.to_string().contains("\"5/minute\""));
    }

    #[test]
    fn error_codes_ok() {
        let e = RateLimitError::Limited {
            retry_after_secs: 12,
        };
        assert_eq!(e.code(), "rate_limited");
        assert_eq!(e.to_string(), "too many requests: retry after 12 second(s)");
        let e = RateLimitError::StateMalformed { why: "empty" };
        assert_eq!(e.code(), "rate_limit_state_invalid");
    }

    proptest! {
        #[test]
        fn ip_key_arbitrary_never_panics_ok(s in "\\PC{0,48}") {
            prop_assert!(ip_key(&s).starts_with("ip:"));
        }

        #[test]
        fn slot_in_range_ok(fp in any::<u64>(), slots in 1u32..) {
            prop_assert!(slot_index(fp, slots) < slots);
        }

        #[test]
        fn config_arbitrary_json_never_panics_ok(json in "\\PC{0,80}") {
            if let Ok(configs) = serde_json::from_str::<Vec<RateLimitRuleConfig>>(&json) {
                if let Ok(l) = RateLimits::new(&configs) {
                    prop_assert!(l.rules().len() <= MAX_RATE_LIMIT_RULES);
                }
            }
        }
    }
}
