//! Rate limiting: GCRA math over stored state the shell keeps (proxy-wasm shared data).
//!
//! # Semantics
//! - **Every** rule matching the request applies (like stacking flask-limiter decorators on a
//!   route under a default limit); a request must fit them all. List several quotas in one rule
//!   (`["50/hour", "200/day"]`) to limit several windows of one key at once.
//! - GCRA: a fresh key gets `count` requests at once, then one per T = period / count. There
//!   is no fixed window, so no 2× burst at a window edge (over any span of length `period` a
//!   key still gets at most `2·count − 1`, as with any token bucket).
//! - Keys ([`KeySource`]): `ip` is the client address (IPv6 grouped by /64, the usual per-host
//!   allocation; a port is ignored); `sub` is the token subject; `header:<name>` is a request
//!   header's value. `sub` without a principal and `header:` without the header fall back to
//!   the `ip` key so nobody dodges a limit by leaving something out. Keys are namespaced
//!   (`ip:…`, `sub:…`, `hdr:…`) so different sources never share a bucket.
//! - `ip` and `header:` limits are known before the token is verified and are checked first
//!   ([`KeySource::is_pre_token`]); `sub` limits after (see [`crate::gateway`]).
//! - Paths failing the normalization check match no rate-limit rule; the policy refuses them.
//!
//! # State and the shell
//! State is bounded: each rule has a fixed number of slots ([`RateLimitRule::slots`],
//! config `slots`, default [`DEFAULT_SLOTS`]). Per request and matching rule `i`:
//! 1. `let fp = key_fingerprint(&seed, i, &rule.key_source().key(client_ip, sub, header))`;
//!    `let slot = slot_index(fp, rule.slots())`;
//! 2. read the slot's bytes (with its CAS token) and `State::try_from` them;
//! 3. `let d = rule.limiter().check(state.as_ref(), fp, now_ms)`;
//! 4. if `d.new_state()` is `Some`, compare-and-swap its bytes in (retry from 2 on a CAS
//!    conflict); if `d.allowed()` continue, else reply 429 with [`RateDecision::error`];
//!    send `RateLimit-Policy` ([`Limiter::policy_header`]), `RateLimit`
//!    ([`RateDecision::ratelimit_header`]) and, on 429, `Retry-After`.
//!
//! [`crate::gateway`] does exactly this over a host trait; shells only provide the store.
//!
//! The `seed` must be shared by every VM/worker that shares the slots: with per-worker seeds
//! the same client would land in different slots on different workers and get the limit once
//! per worker.
//!
//! Slot collisions (two keys, one slot) are handled in [`Limiter::check`]: an idle owner is
//! replaced, an active one is shared, so a collision never admits more. The keyed hash keeps an
//! attacker from choosing addresses that collide with a victim's slot on purpose.
//!
//! **Unreadable state** (`State::try_from` fails): pass `None`, i.e. start fresh, and let the
//! CAS overwrite it. Only our own code writes shared data, so such bytes come from a format
//! change across an upgrade, the gateway's "no state yet" sentinel, or a host fault, not from
//! an attacker; refusing instead would leave that slot refusing every key hashed to it until it
//! was rewritten, which never happens on a refusal. The cost is at most one fresh burst per
//! slot, once.
//!
//! # Fleet-wide limits
//! [`decide`] is the decision of the rate-limit service (`keygate-ratelimit`, Envoy's RLS v3):
//! one quota per descriptor, one stored key per descriptor ([`SharedKey`]), state in a store
//! the whole fleet shares, committed by compare-and-set; [`DescriptorLimits`] is its limits
//! file for descriptors that carry no quota of their own.

mod descriptors;
mod edge;
mod gcra;
mod key;
mod quota;
mod shared;
mod state;

pub use descriptors::{DescriptorLimits, MAX_DESCRIPTOR_NODES, MAX_DOMAINS};
pub use edge::{EdgeDecision, EdgeLimit};
pub use gcra::{Limiter, RateDecision};
pub use key::{client_ip_key, ip_key, is_header_name, KeySource, MAX_KEY_HEADER_LEN};
pub use quota::{Quota, MAX_COUNT, MAX_PERIOD_SECS, MAX_QUOTA_LEN, MIN_COUNT, MIN_PERIOD_SECS};
pub use shared::{
    decide, SharedDecision, SharedKey, Unit, EXPIRY_SLACK_MS, MAX_DESCRIPTOR_ENTRIES, MAX_ENTRY_LEN,
};
pub use state::State;

use crate::policy::{RequestPath, RouteMatch};
use crate::{ConfigError, ErrorCode};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::fmt;

/// Most quotas in one rule.
pub const MAX_QUOTAS: usize = 8;
/// Most rate-limit rules.
pub const MAX_RATE_LIMIT_RULES: usize = 256;
/// Default number of state slots per rule.
pub const DEFAULT_SLOTS: u32 = 4096;
/// Fewest state slots per rule.
pub const MIN_SLOTS: u32 = 1;
/// Most state slots per rule (bounds the shared memory a rule can take: ~100 bytes a slot).
pub const MAX_SLOTS: u32 = 1 << 18;
/// Most state slots over all rules together (524,288): every slot is a shared-data key that
/// every worker VM creates or finds when the configuration loads, ~1.1 s of Envoy startup and
/// ~10 MiB per 100k slots measured (`make bench-slots`, README).
pub const MAX_TOTAL_SLOTS: u64 = 1 << 19;

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
                    "stored rate-limit state is unreadable ({why}); it is refused, never reset"
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

/// One `rate_limits` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct RateLimitRuleConfig {
    /// Exact path; a `*` segment matches one non-empty segment. Defaults to none; exactly one
    /// of `path`/`prefix`.
    pub path: Option<String>,
    /// Plain string prefix of the path. Defaults to none.
    pub prefix: Option<String>,
    /// Uppercase methods the rule applies to (`GET` includes `HEAD`). Defaults to every method.
    pub methods: Option<Vec<String>>,
    /// `"ip"`, `"sub"` or `"header:<name>"` ([`KeySource`]). Required.
    pub key: String,
    /// One quota or a list (1..=8). Required.
    pub limit: OneOrMany<String>,
    /// Number of state slots (distinct keys tracked at once; more keys share slots, which
    /// only makes limits stricter). Defaults to 4096 ([`DEFAULT_SLOTS`]); 1..=[`MAX_SLOTS`].
    pub slots: Option<u32>,
    /// `"local"`: counted in this Envoy's shared data; `"global"`: asked of the rate-limit
    /// service (`rate_limit_service`), so the whole fleet shares the quota. Defaults to
    /// `"local"`.
    #[serde(default)]
    pub scope: Scope,
    /// The rule's name for the rate-limit service (the `keygate_rule` descriptor entry):
    /// 1..=64 of `A-Z a-z 0-9 _ - . :`, unique. Defaults to `rule<index>`.
    #[serde(default)]
    pub name: Option<String>,
}

/// Where a rule is counted (`scope`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Scope {
    /// In this proxy's shared data (`"local"`).
    #[default]
    Local,
    /// By the rate-limit service, fleet-wide (`"global"`).
    Global,
}

impl std::str::FromStr for Scope {
    type Err = &'static str;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "local" => Ok(Self::Local),
            "global" => Ok(Self::Global),
            _ => Err("expected \"local\" or \"global\""),
        }
    }
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::json::from_str_only(d, "\"local\" or \"global\"")
    }
}

/// Longest rule `name`.
pub const MAX_RULE_NAME_LEN: usize = 64;

crate::json::object_only!(RateLimitRuleConfig, "a rate limit object");

/// A compiled rate-limit rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitRule {
    route: RouteMatch,
    key: KeySource,
    limiter: Limiter,
    slots: u32,
    name: String,
    scope: Scope,
}

impl RateLimitRule {
    /// Validates one rule.
    ///
    /// # Errors
    /// [`ConfigError`] naming the field (`path`, `prefix`, `methods[0]`, `key`, `limit`,
    /// `limit[1]`, `slots`, or empty for the path/prefix choice) when it is invalid.
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
        if config.scope == Scope::Global {
            // The rate-limit service protocol only knows these units.
            let check = |s: &String| Quota::parse_per_unit(s).map(|_| ());
            match &config.limit {
                OneOrMany::One(s) => check(s)?,
                OneOrMany::Many(list) => {
                    for (j, s) in list.iter().enumerate() {
                        check(s).map_err(|e| ConfigError::new(format!("limit[{j}]"), e.message))?;
                    }
                }
            }
        }
        let name = match &config.name {
            None => String::new(),
            Some(n)
                if !n.is_empty()
                    && n.len() <= MAX_RULE_NAME_LEN
                    && n.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"_-.:".contains(&b)) =>
            {
                n.clone()
            }
            Some(_) => {
                return Err(ConfigError::new(
                    "name",
                    format!("1 to {MAX_RULE_NAME_LEN} of A-Z a-z 0-9 _ - . :"),
                ))
            }
        };
        let key = config.key.parse::<KeySource>()?;
        let slots = config.slots.unwrap_or(DEFAULT_SLOTS);
        if !(MIN_SLOTS..=MAX_SLOTS).contains(&slots) {
            return Err(ConfigError::new(
                "slots",
                format!("must be {MIN_SLOTS} to {MAX_SLOTS}"),
            ));
        }
        Ok(Self {
            route,
            key,
            limiter: Limiter::new(quotas)?,
            slots,
            name,
            scope: config.scope,
        })
    }

    /// Its name (`name`, default `rule<index>`): the `keygate_rule` descriptor entry.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the rate-limit service counts it (`scope: "global"`).
    #[must_use]
    pub fn is_global(&self) -> bool {
        self.scope == Scope::Global
    }

    /// The requests it applies to.
    #[must_use]
    pub fn route(&self) -> &RouteMatch {
        &self.route
    }

    /// What the limit counts against.
    #[must_use]
    pub fn key_source(&self) -> &KeySource {
        &self.key
    }

    /// Number of state slots.
    #[must_use]
    pub fn slots(&self) -> u32 {
        self.slots
    }

    /// Its quotas.
    #[must_use]
    pub fn limiter(&self) -> &Limiter {
        &self.limiter
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
        let mut rules: Vec<RateLimitRule> = configs
            .iter()
            .enumerate()
            .map(|(i, c)| RateLimitRule::new(c).map_err(|e| e.within(&format!("rate_limits[{i}]"))))
            .collect::<Result<_, _>>()?;
        for (i, rule) in rules.iter_mut().enumerate() {
            if rule.name.is_empty() {
                rule.name = format!("rule{i}");
            }
        }
        for (i, rule) in rules.iter().enumerate() {
            if let Some(j) = rules.iter().take(i).position(|r| r.name == rule.name) {
                return Err(ConfigError::new(
                    format!("rate_limits[{i}].name"),
                    format!(
                        "{:?} is already the name of rate_limits[{j}] (names default to \
                         rule<index>)",
                        rule.name
                    ),
                ));
            }
        }
        let mut total = 0u64;
        for (i, rule) in rules.iter().enumerate() {
            total += u64::from(rule.slots);
            if total > MAX_TOTAL_SLOTS {
                return Err(ConfigError::new(
                    format!("rate_limits[{i}].slots"),
                    format!(
                        "all rules together may have at most {MAX_TOTAL_SLOTS} slots (this rule \
                         brings the total to {total}; `slots` defaults to {DEFAULT_SLOTS})"
                    ),
                ));
            }
        }
        Ok(Self { rules })
    }

    /// Every rule matching the request, in config order, with its index (for
    /// [`key_fingerprint`]). None for a path that fails the normalization check.
    pub fn matching<'a>(
        &'a self,
        method: &'a str,
        path: &'a str,
    ) -> impl Iterator<Item = (usize, &'a RateLimitRule)> + 'a {
        self.matching_path(method, RequestPath::new(path))
    }

    /// [`RateLimits::matching`] for a path already checked by [`RequestPath::new`] (`None`:
    /// it failed the check, and no rule matches).
    pub fn matching_path<'a>(
        &'a self,
        method: &'a str,
        path: Option<RequestPath<'a>>,
    ) -> impl Iterator<Item = (usize, &'a RateLimitRule)> + 'a {
        self.rules.iter().enumerate().filter(move |(_, r)| {
            // Either spelling (one trailing `/` added or removed) meets the limit: matching
            // more only meters more, and `prefix "/api/auth/login/"` meters `/api/auth/login`.
            path.as_ref().is_some_and(|p| {
                let s = r.route.spellings(method, p);
                s.written || (s.other && p.as_str() != "/")
            })
        })
    }

    /// The rules, in config order.
    #[must_use]
    pub fn rules(&self) -> &[RateLimitRule] {
        &self.rules
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

/// Appends `n` in decimal (what `{n}` formats), without the formatting machinery: header
/// values and slot keys are written with it on every rate-limited request.
pub(crate) fn push_decimal(out: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        // `n % 10` < 10: the cast never truncates.
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in &digits[at..] {
        out.push(char::from(d));
    }
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

    fn indexes(l: &RateLimits, method: &str, path: &str) -> Vec<usize> {
        l.matching(method, path).map(|(i, _)| i).collect()
    }

    #[test]
    fn every_matching_rule_ok() {
        let l = limits();
        assert_eq!(indexes(&l, "POST", "/api/auth/login?next=/"), [0, 2]);
        let (_, r) = l.matching("POST", "/api/auth/login").next().unwrap();
        assert_eq!(r.limiter().policy_header(), "\"5/minute\";q=5;w=60");
        assert_eq!(r.key_source(), &KeySource::Ip);
        assert_eq!(r.slots(), DEFAULT_SLOTS);
        assert_eq!(indexes(&l, "GET", "/api/auth/login"), [2]);
        assert_eq!(
            indexes(&l, "POST", "/api/auth/password-reset/confirm"),
            [1, 2]
        );
        let (i, r) = l.matching("GET", "/api/patients/1").next().unwrap();
        assert_eq!(i, 2);
        assert_eq!(r.limiter().quotas().len(), 2);
        assert_eq!(r.key_source(), &KeySource::Sub);
        assert!(r.route().prefix().is_some());
        assert!(indexes(&l, "GET", "/health").is_empty());
        assert!(indexes(&l, "POST", "/api/x/../auth/login").is_empty());
        assert_eq!(l.rules().len(), 3);
    }

    #[test]
    fn header_key_and_slots_ok() {
        let configs: Vec<RateLimitRuleConfig> = serde_json::from_str(
            r#"[{"prefix": "/", "key": "header:x-api-key", "limit": "2/minute", "slots": 64}]"#,
        )
        .unwrap();
        let l = RateLimits::new(&configs).unwrap();
        let r = &l.rules()[0];
        assert_eq!(r.slots(), 64);
        assert_eq!(r.key_source().header_name(), Some("x-api-key"));
        assert!(r.key_source().is_pre_token());
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
        let (i, rule) = l.matching("POST", "/api/auth/login").next().unwrap();
        let key = rule.key_source().key(Some("198.51.100.9"), None, None);
        let fp = key_fingerprint(&seed, i, &key);
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
            (
                r#"[{"prefix":"/","key":"cookie","limit":"1/s"}]"#,
                "rate_limits[0].key",
            ),
            (
                r#"[{"prefix":"/","key":"ip","limit":"1/s","slots":0}]"#,
                "rate_limits[0].slots",
            ),
            (
                r#"[{"prefix":"/","key":"ip","limit":"1/s","slots":1000000}]"#,
                "rate_limits[0].slots",
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
            r#"[{"prefix":"/","key":1,"limit":"1/s"}]"#,
            r#"[{"prefix":"/","key":"ip","limit":5}]"#,
            r#"[{"prefix":"/","key":"ip"}]"#,
            r#"[{"prefix":"/","key":"ip","limit":"1/s","burst":3}]"#,
            // A rule written as an array (fields by position) is not a rule.
            r#"[[null,"/",null,"ip","1/s",null]]"#,
            r#"[{"prefix":"/","key":"ip","limit":"1/s","slots":1e400}]"#,
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
    fn total_slots_bounded_fails() {
        let rule =
            |slots: u64| format!(r#"{{"prefix":"/","key":"ip","limit":"1/s","slots":{slots}}}"#);
        let n = usize::try_from(MAX_TOTAL_SLOTS / u64::from(MAX_SLOTS)).unwrap();
        let at_bound: Vec<String> = (0..n).map(|_| rule(u64::from(MAX_SLOTS))).collect();
        let configs: Vec<RateLimitRuleConfig> =
            serde_json::from_str(&format!("[{}]", at_bound.join(","))).unwrap();
        assert_eq!(RateLimits::new(&configs).unwrap().rules().len(), n);
        let mut over = at_bound.clone();
        over.push(rule(1));
        let configs: Vec<RateLimitRuleConfig> =
            serde_json::from_str(&format!("[{}]", over.join(","))).unwrap();
        let e = RateLimits::new(&configs).unwrap_err();
        assert_eq!(e.field, format!("rate_limits[{n}].slots"), "{e}");
        // 128 rules at the default slots are exactly the bound; the 129th is refused.
        let defaults = |count: usize| -> Vec<RateLimitRuleConfig> {
            serde_json::from_str(&format!(
                "[{}]",
                vec![r#"{"prefix":"/","key":"ip","limit":"1/s"}"#; count].join(",")
            ))
            .unwrap()
        };
        assert!(RateLimits::new(&defaults(128)).is_ok());
        assert_eq!(
            RateLimits::new(&defaults(129)).unwrap_err().field,
            "rate_limits[128].slots"
        );
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
