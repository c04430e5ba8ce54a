//! Fleet-wide (`scope: "global"`) rate limits: asking a rate-limit service (Envoy's RLS v3,
//! `envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit`) over a gRPC callout.
//!
//! Per request at most two calls: one before the token is verified for the matching global
//! `ip`/`header:` rules, one after it for the matching global `sub` rules. One call carries
//! every matching global rule of its phase, one descriptor per quota:
//! `[("keygate_rule", <name>), (<kind>, <value>)]`, `<kind>` = `remote_address` (the address;
//! IPv6 by /64, as local limits count it — also the fallback of `sub` and `header:` rules
//! without a principal or header), `sub` or `header`; the quota goes in the descriptor's
//! `limit` override, `hits_addend` is 1.
//!
//! The answer ([`interpret`]): `OVER_LIMIT` → 429; `OK` → continue. Anything else — a gRPC
//! error status, no answer within `timeout_ms`, bytes that do not decode, an `overall_code`
//! other than `OK`/`OVER_LIMIT`, statuses that do not match the descriptors one to one (a
//! service that answers for other descriptors is not believed) — is a failure, handled by
//! `failure_mode`. An answer with no statuses at all is taken on its `overall_code` alone
//! (Limitador answers so).
//!
//! The messages are hand-declared `prost` structs carrying only the fields keygate reads or
//! writes (field numbers of Envoy's `rls.proto` and `ratelimit.proto`); prost skips the rest.

use crate::ratelimit::{Quota, RateLimitRule, Unit};
use crate::ConfigError;
use prost::Message;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::cell::{Cell, RefCell};

/// The gRPC service and method of Envoy's rate-limit service protocol.
pub const RLS_SERVICE: &str = "envoy.service.ratelimit.v3.RateLimitService";
/// The method asked.
pub const RLS_METHOD: &str = "ShouldRateLimit";
/// Longest answer read, in bytes.
pub const MAX_RLS_RESPONSE_BYTES: usize = 64 * 1024;
/// Most headers taken from one answer's `response_headers_to_add`.
pub const MAX_SERVICE_HEADERS: usize = 16;
/// Longest header value taken from an answer.
pub const MAX_SERVICE_HEADER_VALUE_LEN: usize = 1024;
/// Most descriptors keygate puts in one call (one per quota of each matching global rule of
/// a stage): `keygate-ratelimit` takes at most as many; configurations that could ask more
/// are refused at load.
pub const MAX_DESCRIPTORS_PER_CALL: usize = 64;
/// At most one failure/recovery log line per this long (milliseconds).
pub const LOG_INTERVAL_MS: u64 = 10_000;
/// Descriptor values longer than this are sent as `sha256:<hex>` of the value.
pub const MAX_DESCRIPTOR_VALUE_LEN: usize = 256;
/// Longest `Retry-After` taken from a service (7 days).
pub const MAX_RETRY_AFTER_SECS: u64 = 7 * 86_400;
/// `timeout_ms` bounds and default (Envoy's own default).
pub const MIN_TIMEOUT_MS: u64 = 1;
/// Largest `timeout_ms`.
pub const MAX_TIMEOUT_MS: u64 = 10_000;
/// Default `timeout_ms`.
pub const DEFAULT_TIMEOUT_MS: u64 = 20;
const MAX_CLUSTER_LEN: usize = 256;
const MAX_DOMAIN_LEN: usize = 256;

/// The `rate_limit_service` object.
///
/// ```json
/// {"cluster": "keygate_ratelimit", "domain": "keygate", "timeout_ms": 20, "failure_mode": "local"}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct RateLimitServiceConfig {
    /// The Envoy cluster (HTTP/2) of the rate-limit service. Required.
    #[serde(default)]
    pub cluster: Option<String>,
    /// The RLS `domain` every request names. Required.
    #[serde(default)]
    pub domain: Option<String>,
    /// Time one call may take, in milliseconds. Defaults to 20; 1..=10000.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// What a failed call does. Defaults to `"local"`.
    #[serde(default)]
    pub failure_mode: FailureMode,
}

crate::json::object_only!(RateLimitServiceConfig, "the rate_limit_service object");

/// What a failed call to the service does (`failure_mode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FailureMode {
    /// Enforce the rule with this proxy's own shared-data limiter (`"local"`): the fleet
    /// degrades to per-proxy limits, never to none.
    #[default]
    Local,
    /// Refuse with 429 and `Retry-After: 1` (`"deny"`).
    Deny,
    /// Let the request through (`"allow"`), counted and logged.
    Allow,
}

impl std::str::FromStr for FailureMode {
    type Err = &'static str;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "local" => Ok(Self::Local),
            "deny" => Ok(Self::Deny),
            "allow" => Ok(Self::Allow),
            _ => Err("expected \"local\", \"deny\" or \"allow\""),
        }
    }
}

impl<'de> Deserialize<'de> for FailureMode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::json::from_str_only(d, "\"local\", \"deny\" or \"allow\"")
    }
}

/// A validated `rate_limit_service`.
#[derive(Debug)]
pub struct RateLimitService {
    cluster: String,
    domain: String,
    timeout_ms: u64,
    failure_mode: FailureMode,
    /// Whether the last answer failed (a failure burst is logged once).
    failing: Cell<bool>,
    /// Failures not yet reported to the shell.
    failures: Cell<u64>,
    /// The state logged last (`Some(true)`: failing), the time of that line, and the
    /// failures since it: a service that flaps gets one line per [`LOG_INTERVAL_MS`].
    logged: Cell<(Option<bool>, u64, u64)>,
    /// The log line not yet taken by the shell.
    log: RefCell<Option<String>>,
}

impl Clone for RateLimitService {
    fn clone(&self) -> Self {
        Self {
            cluster: self.cluster.clone(),
            domain: self.domain.clone(),
            timeout_ms: self.timeout_ms,
            failure_mode: self.failure_mode,
            failing: Cell::new(false),
            failures: Cell::new(0),
            logged: Cell::new((None, 0, 0)),
            log: RefCell::new(None),
        }
    }
}

fn visible(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_graphic())
}

impl RateLimitService {
    /// Checks `config` (field names without the `rate_limit_service.` prefix).
    ///
    /// # Errors
    /// [`ConfigError`] on `cluster`, `domain` or `timeout_ms`.
    pub fn new(config: &RateLimitServiceConfig) -> Result<Self, ConfigError> {
        let cluster = match config.cluster.as_deref() {
            Some(c) if visible(c, MAX_CLUSTER_LEN) => c.to_owned(),
            _ => {
                return Err(ConfigError::new(
                    "cluster",
                    format!(
                        "required: the Envoy cluster (HTTP/2) of the rate-limit service, 1 to \
                         {MAX_CLUSTER_LEN} visible ASCII characters"
                    ),
                ))
            }
        };
        let domain = match config.domain.as_deref() {
            Some(d) if visible(d, MAX_DOMAIN_LEN) => d.to_owned(),
            _ => {
                return Err(ConfigError::new(
                    "domain",
                    format!(
                        "required: the rate-limit domain, 1 to {MAX_DOMAIN_LEN} visible ASCII \
                         characters"
                    ),
                ))
            }
        };
        let timeout_ms = config.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
        if !(MIN_TIMEOUT_MS..=MAX_TIMEOUT_MS).contains(&timeout_ms) {
            return Err(ConfigError::new(
                "timeout_ms",
                format!(
                    "must be {MIN_TIMEOUT_MS} to {MAX_TIMEOUT_MS} (default {DEFAULT_TIMEOUT_MS})"
                ),
            ));
        }
        Ok(Self {
            cluster,
            domain,
            timeout_ms,
            failure_mode: config.failure_mode,
            failing: Cell::new(false),
            failures: Cell::new(0),
            logged: Cell::new((None, 0, 0)),
            log: RefCell::new(None),
        })
    }

    /// `failure_mode`.
    #[must_use]
    pub fn failure_mode(&self) -> FailureMode {
        self.failure_mode
    }

    /// The `GrpcCallout` asking for `asked`.
    pub(super) fn callout(&self, asked: &[Asked], rules: &[RateLimitRule]) -> GrpcCallout {
        let descriptors = asked
            .iter()
            .map(|a| {
                let (requests_per_unit, unit) = rules
                    .get(a.rule)
                    .and_then(|r| r.limiter().quotas().get(a.quota))
                    .and_then(Quota::per_unit)
                    .unwrap_or((1, Unit::Second));
                let name = rules.get(a.rule).map_or("", RateLimitRule::name);
                let (kind, value) = descriptor_entry(&a.key);
                wire::Descriptor {
                    entries: vec![
                        wire::Entry {
                            key: "keygate_rule".to_owned(),
                            value: name.to_owned(),
                        },
                        wire::Entry {
                            key: kind.to_owned(),
                            value,
                        },
                    ],
                    limit: Some(wire::Override {
                        requests_per_unit,
                        unit: unit_code(unit),
                    }),
                }
            })
            .collect();
        let request = wire::RateLimitRequest {
            domain: self.domain.clone(),
            descriptors,
            hits_addend: 1,
        };
        GrpcCallout {
            cluster: self.cluster.clone(),
            service: RLS_SERVICE,
            method: RLS_METHOD,
            body: request.encode_to_vec(),
            timeout_ms: self.timeout_ms,
            max_response_bytes: MAX_RLS_RESPONSE_BYTES,
        }
    }

    /// Notes one answer at `now_ms`: a failure is counted; a change between failing and
    /// answering gets a log line, at most one per [`LOG_INTERVAL_MS`] (a change within the
    /// interval is logged with the next answer after it, with the failures meanwhile).
    pub(super) fn record(&self, failed: bool, now_ms: u64) {
        let (logged, at, mut since) = self.logged.get();
        if failed {
            self.failures.set(self.failures.get().saturating_add(1));
            since = since.saturating_add(1);
        }
        self.failing.set(failed);
        let due = logged.is_none() || now_ms >= at.saturating_add(LOG_INTERVAL_MS);
        // Nothing to say while it answers and always has, or while the last line still holds.
        if logged.unwrap_or(false) == failed || !due {
            self.logged.set((logged, at, since));
            return;
        }
        let line = if failed {
            match self.failure_mode {
                FailureMode::Local => {
                    "keygate: the rate-limit service failed; global limits are enforced \
                     per proxy (failure_mode: local) until it answers again"
                }
                FailureMode::Deny => {
                    "keygate: the rate-limit service failed; requests under global limits \
                     are refused (failure_mode: deny) until it answers again"
                }
                FailureMode::Allow => {
                    "keygate: the rate-limit service failed; requests under global limits \
                     pass unlimited (failure_mode: allow) until it answers again"
                }
            }
        } else {
            "keygate: the rate-limit service answers again"
        };
        let line = if since > 1 || (!failed && since > 0) {
            format!("{line} ({since} failed calls since the last such line)")
        } else {
            line.to_owned()
        };
        if let Ok(mut log) = self.log.try_borrow_mut() {
            *log = Some(line);
        }
        self.logged.set((Some(failed), now_ms, 0));
    }

    /// Failures since the last call (for `keygate.rate_limit_service_failed`) and the log
    /// line due, if any.
    pub(super) fn take_report(&self) -> (u64, Option<String>) {
        let line = self.log.try_borrow_mut().ok().and_then(|mut l| l.take());
        (self.failures.replace(0), line)
    }
}

/// One descriptor asked: rule index, quota index within the rule, the rule's key
/// (`ip:…`, `sub:…`, `hdr:…`, as local limits name it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Asked {
    pub rule: usize,
    pub quota: usize,
    pub key: String,
}

/// A gRPC call through the proxy (proxy-wasm `dispatch_grpc_call`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpcCallout {
    /// The proxy's name for the upstream (Envoy cluster, HTTP/2).
    pub cluster: String,
    /// Fully qualified gRPC service.
    pub service: &'static str,
    /// Its method.
    pub method: &'static str,
    /// The serialized request message.
    pub body: Vec<u8>,
    /// Give up after this long (milliseconds); the proxy then reports a failure.
    pub timeout_ms: u64,
    /// Longest response message the gateway reads (the shell reads at most this plus one).
    pub max_response_bytes: usize,
}

/// `(kind, value)` of a key: `ip:…` → `remote_address`, `sub:…` → `sub`, `hdr:…` → `header`.
fn descriptor_entry(key: &str) -> (&'static str, String) {
    let (kind, value) = if let Some(v) = key.strip_prefix("sub:") {
        ("sub", v)
    } else if let Some(v) = key.strip_prefix("hdr:") {
        ("header", v)
    } else {
        ("remote_address", key.strip_prefix("ip:").unwrap_or(key))
    };
    if value.len() <= MAX_DESCRIPTOR_VALUE_LEN {
        return (kind, value.to_owned());
    }
    let digest = Sha256::digest(value.as_bytes());
    let mut hex = String::with_capacity(7 + 64);
    hex.push_str("sha256:");
    for b in digest {
        hex.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        hex.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    (kind, hex)
}

fn unit_code(unit: Unit) -> i32 {
    match unit {
        Unit::Second => 1,
        Unit::Minute => 2,
        Unit::Hour => 3,
        Unit::Day => 4,
    }
}

fn unit_of(code: i32) -> Option<Unit> {
    match code {
        1 => Some(Unit::Second),
        2 => Some(Unit::Minute),
        3 => Some(Unit::Hour),
        4 => Some(Unit::Day),
        _ => None,
    }
}

const CODE_OK: i32 = 1;
const CODE_OVER_LIMIT: i32 = 2;

/// One descriptor's verdict as the service gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Status {
    pub over: bool,
    /// `current_limit`, when it is a quota keygate can state.
    pub limit: Option<Quota>,
    /// `limit_remaining`, when the service stated `current_limit` (proto3 cannot tell an
    /// absent `limit_remaining` from 0).
    pub remaining: Option<u32>,
    /// `duration_until_reset`, whole seconds rounded up.
    pub reset_secs: Option<u64>,
}

/// A believed answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Answer {
    pub over: bool,
    /// One per descriptor asked, or empty (the service gave only `overall_code`).
    pub statuses: Vec<Status>,
    /// `response_headers_to_add` that are valid header fields.
    pub headers: Vec<(String, String)>,
}

/// Why an answer is not believed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Failure {
    /// Longer than [`MAX_RLS_RESPONSE_BYTES`].
    TooLarge,
    /// Not a `RateLimitResponse`.
    Undecodable,
    /// An `overall_code` other than `OK`/`OVER_LIMIT`, or statuses that do not match.
    Inconsistent,
}

/// Reads a `RateLimitResponse` for `asked` descriptors (`body_len`: its full length).
pub(super) fn interpret(body: &[u8], body_len: usize, asked: usize) -> Result<Answer, Failure> {
    if body_len > MAX_RLS_RESPONSE_BYTES || body.len() != body_len {
        return Err(Failure::TooLarge);
    }
    let response = wire::RateLimitResponse::decode(body).map_err(|_| Failure::Undecodable)?;
    let over = match response.overall_code {
        CODE_OK => false,
        CODE_OVER_LIMIT => true,
        _ => return Err(Failure::Inconsistent),
    };
    if !response.statuses.is_empty() && response.statuses.len() != asked {
        return Err(Failure::Inconsistent);
    }
    let mut statuses = Vec::with_capacity(response.statuses.len());
    for s in &response.statuses {
        let status_over = match s.code {
            CODE_OK => false,
            CODE_OVER_LIMIT => true,
            _ => return Err(Failure::Inconsistent),
        };
        let limit = s.current_limit.as_ref().and_then(|l| {
            let unit = unit_of(l.unit)?;
            Quota::from_unit(l.requests_per_unit, unit).ok()
        });
        let reset_secs = s.duration_until_reset.as_ref().map(|d| {
            let secs = u64::try_from(d.seconds).unwrap_or(0);
            let up = u64::from(d.nanos > 0);
            secs.saturating_add(up).min(MAX_RETRY_AFTER_SECS)
        });
        statuses.push(Status {
            over: status_over,
            limit,
            remaining: s.current_limit.is_some().then_some(s.limit_remaining),
            reset_secs,
        });
    }
    // `overall_code` is OVER_LIMIT exactly when some descriptor is.
    if !statuses.is_empty() && statuses.iter().any(|s| s.over) != over {
        return Err(Failure::Inconsistent);
    }
    let headers = response
        .response_headers_to_add
        .iter()
        .filter_map(service_header)
        .take(MAX_SERVICE_HEADERS)
        .collect();
    Ok(Answer {
        over,
        statuses,
        headers,
    })
}

/// A header the service asks to add, if it is a valid field keygate lets a service set:
/// an `x-` extension header (a lowercase token name such as envoyproxy/ratelimit's
/// `x-ratelimit-remaining`) that is not one keygate, Envoy or a browser's security model
/// gives a meaning (see [`service_header_allowed`]), with a value of visible ASCII, spaces
/// and tabs (no CR, LF or NUL), at most [`MAX_SERVICE_HEADER_VALUE_LEN`] bytes.
fn service_header(h: &wire::HeaderValue) -> Option<(String, String)> {
    let name = h.key.to_ascii_lowercase();
    let value = if h.value.is_empty() {
        std::str::from_utf8(&h.raw_value).ok()?.to_owned()
    } else {
        h.value.clone()
    };
    let value_ok = value.len() <= MAX_SERVICE_HEADER_VALUE_LEN
        && value
            .bytes()
            .all(|b| b == b'\t' || (b' '..=b'~').contains(&b));
    (value_ok && service_header_allowed(&name)).then_some((name, value))
}

/// Whether a rate-limit service may add response header `name` (lowercase): only `x-`
/// extension headers, never keygate's identity and reply headers (`x-keygate-*`,
/// `x-user-*`), Envoy's (`x-envoy-*`), proxy headers (`x-forwarded-*`, `x-real-ip`,
/// `x-request-id`) or the security headers (`x-frame-options`, `x-content-type-options`,
/// `x-xss-protection`, `x-permitted-cross-domain-policies`, `x-dns-prefetch-control`).
/// Everything else (`retry-after`, `ratelimit*`, `content-*`, `location`, hop-by-hop,
/// `access-control-*`, `strict-transport-security`, `set-cookie`, …) keygate leaves alone.
#[must_use]
pub fn service_header_allowed(name: &str) -> bool {
    const RESERVED_PREFIXES: [&str; 4] = ["x-keygate-", "x-user-", "x-envoy-", "x-forwarded-"];
    const RESERVED: [&str; 7] = [
        "x-real-ip",
        "x-request-id",
        "x-frame-options",
        "x-content-type-options",
        "x-xss-protection",
        "x-permitted-cross-domain-policies",
        "x-dns-prefetch-control",
    ];
    let token = name.len() <= 128
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b"!#$%&'*+-.^_`|~".contains(&b)
        });
    token
        && name.len() > 2
        && name.starts_with("x-")
        && !RESERVED_PREFIXES.iter().any(|p| name.starts_with(p))
        && !RESERVED.contains(&name)
}

/// `RateLimit-Policy` / `RateLimit` items for a status (`configured`: the quota asked, which
/// names the policy). The `RateLimit` item only when the service stated the limit (so
/// `limit_remaining` means something) and `duration_until_reset`.
pub(super) fn status_headers(status: &Status, configured: Quota) -> (String, Option<String>) {
    let q = status.limit.unwrap_or(configured);
    let state = match (status.remaining, status.reset_secs) {
        (Some(r), Some(t)) => Some(format!("\"{configured}\";r={r};t={t}")),
        _ => None,
    };
    (
        format!("\"{configured}\";q={};w={}", q.count(), q.period_secs()),
        state,
    )
}

/// The wire messages: only the fields keygate uses, numbered as in Envoy's protos
/// (`envoy/service/ratelimit/v3/rls.proto`, `envoy/extensions/common/ratelimit/v3/
/// ratelimit.proto`, `envoy/config/core/v3/base.proto`, `google/protobuf/duration.proto`).
pub(super) mod wire {
    /// `RateLimitRequest`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct RateLimitRequest {
        #[prost(string, tag = "1")]
        pub domain: String,
        #[prost(message, repeated, tag = "2")]
        pub descriptors: Vec<Descriptor>,
        #[prost(uint32, tag = "3")]
        pub hits_addend: u32,
    }

    /// `RateLimitDescriptor`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Descriptor {
        #[prost(message, repeated, tag = "1")]
        pub entries: Vec<Entry>,
        #[prost(message, optional, tag = "2")]
        pub limit: Option<Override>,
    }

    /// `RateLimitDescriptor.Entry`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Entry {
        #[prost(string, tag = "1")]
        pub key: String,
        #[prost(string, tag = "2")]
        pub value: String,
    }

    /// `RateLimitDescriptor.RateLimitOverride`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Override {
        #[prost(uint32, tag = "1")]
        pub requests_per_unit: u32,
        /// `RateLimitResponse.RateLimit.Unit`.
        #[prost(int32, tag = "2")]
        pub unit: i32,
    }

    /// `RateLimitResponse`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct RateLimitResponse {
        /// `Code`: 0 UNKNOWN, 1 OK, 2 OVER_LIMIT.
        #[prost(int32, tag = "1")]
        pub overall_code: i32,
        #[prost(message, repeated, tag = "2")]
        pub statuses: Vec<DescriptorStatus>,
        #[prost(message, repeated, tag = "3")]
        pub response_headers_to_add: Vec<HeaderValue>,
    }

    /// `RateLimitResponse.DescriptorStatus`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct DescriptorStatus {
        #[prost(int32, tag = "1")]
        pub code: i32,
        #[prost(message, optional, tag = "2")]
        pub current_limit: Option<RateLimit>,
        #[prost(uint32, tag = "3")]
        pub limit_remaining: u32,
        #[prost(message, optional, tag = "4")]
        pub duration_until_reset: Option<Duration>,
    }

    /// `RateLimitResponse.RateLimit`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct RateLimit {
        #[prost(uint32, tag = "1")]
        pub requests_per_unit: u32,
        #[prost(int32, tag = "2")]
        pub unit: i32,
        #[prost(string, tag = "3")]
        pub name: String,
    }

    /// `google.protobuf.Duration`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Duration {
        #[prost(int64, tag = "1")]
        pub seconds: i64,
        #[prost(int32, tag = "2")]
        pub nanos: i32,
    }

    /// `envoy.config.core.v3.HeaderValue`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct HeaderValue {
        #[prost(string, tag = "1")]
        pub key: String,
        #[prost(string, tag = "2")]
        pub value: String,
        #[prost(bytes = "vec", tag = "3")]
        pub raw_value: Vec<u8>,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn descriptor_entries_ok() {
        assert_eq!(
            descriptor_entry("ip:10.0.0.1"),
            ("remote_address", "10.0.0.1".to_owned())
        );
        assert_eq!(descriptor_entry("sub:u1"), ("sub", "u1".to_owned()));
        assert_eq!(descriptor_entry("hdr:k"), ("header", "k".to_owned()));
        // Lengths at the bound pass as they are; beyond it, hashed.
        let at = format!("sub:{}", "a".repeat(MAX_DESCRIPTOR_VALUE_LEN));
        assert_eq!(descriptor_entry(&at).1.len(), MAX_DESCRIPTOR_VALUE_LEN);
        let over = format!("sub:{}", "a".repeat(MAX_DESCRIPTOR_VALUE_LEN + 1));
        assert!(descriptor_entry(&over).1.starts_with("sha256:"));
    }

    #[test]
    fn service_headers_ok() {
        let h = |k: &str, v: &str, raw: &[u8]| wire::HeaderValue {
            key: k.to_owned(),
            value: v.to_owned(),
            raw_value: raw.to_vec(),
        };
        assert_eq!(
            service_header(&h("X-A", "1", b"")),
            Some(("x-a".to_owned(), "1".to_owned()))
        );
        assert_eq!(
            service_header(&h("x-raw", "", b"tab\tok")),
            Some(("x-raw".to_owned(), "tab\tok".to_owned()))
        );
        for bad in [
            h("x-a", "a\nb", b""),
            h("x-a", "a\rb", b""),
            h("x-a", "a\0b", b""),
            h("x-a", "", b"\xff"),
            h("", "v", b""),
            h("x a", "v", b""),
            h(":status", "200", b""),
            h("content-length", "1", b""),
            h("Set-Cookie", "a=b", b""),
            h("x-long", &"v".repeat(MAX_SERVICE_HEADER_VALUE_LEN + 1), b""),
        ] {
            assert_eq!(service_header(&bad), None, "{bad:?}");
        }
        // Only `x-` extension headers, and none keygate, Envoy or browsers give a meaning.
        for name in [
            "retry-after",
            "ratelimit",
            "ratelimit-policy",
            "strict-transport-security",
            "access-control-allow-origin",
            "location",
            "content-encoding",
            "content-security-policy",
            "host",
            "keep-alive",
            "te",
            "upgrade",
            "proxy-authenticate",
            "x-",
            "x-keygate-sub",
            "x-user-id",
            "x-envoy-upstream-service-time",
            "x-forwarded-for",
            "x-request-id",
            "x-frame-options",
            "x-content-type-options",
        ] {
            assert_eq!(service_header(&h(name, "v", b"")), None, "{name}");
        }
        for name in ["x-ratelimit-remaining", "x-ratelimit-limit", "x-quota"] {
            assert!(service_header(&h(name, "1", b"")).is_some(), "{name}");
        }
    }

    #[test]
    fn status_headers_leave_out_what_the_service_did_not_state_ok() {
        let q: Quota = "5/minute".parse().unwrap();
        let bare = Status {
            over: false,
            limit: None,
            remaining: None,
            reset_secs: None,
        };
        assert_eq!(
            status_headers(&bare, q),
            ("\"5/minute\";q=5;w=60".to_owned(), None)
        );
        let no_reset = Status {
            remaining: Some(3),
            ..bare.clone()
        };
        assert_eq!(status_headers(&no_reset, q).1, None);
        // The service's own limit gives q/w; the configured quota keeps naming the policy.
        let stated = Status {
            over: false,
            limit: Some("10/hour".parse().unwrap()),
            remaining: Some(3),
            reset_secs: Some(9),
        };
        assert_eq!(
            status_headers(&stated, q),
            (
                "\"5/minute\";q=10;w=3600".to_owned(),
                Some("\"5/minute\";r=3;t=9".to_owned())
            )
        );
    }

    #[test]
    fn remaining_believed_only_with_a_stated_limit_ok() {
        let body = wire::RateLimitResponse {
            overall_code: CODE_OK,
            statuses: vec![wire::DescriptorStatus {
                code: CODE_OK,
                current_limit: None,
                limit_remaining: 0,
                duration_until_reset: None,
            }],
            response_headers_to_add: vec![],
        }
        .encode_to_vec();
        let a = interpret(&body, body.len(), 1).unwrap();
        assert_eq!(a.statuses[0].remaining, None);
    }

    #[test]
    fn config_defaults_ok() {
        let c: RateLimitServiceConfig =
            serde_json::from_str(r#"{"cluster": "c", "domain": "d"}"#).unwrap();
        let s = RateLimitService::new(&c).unwrap();
        assert_eq!(
            (s.timeout_ms, s.failure_mode()),
            (DEFAULT_TIMEOUT_MS, FailureMode::Local)
        );
        for (json, field) in [
            (r#"{"cluster": "", "domain": "d"}"#, "cluster"),
            (r#"{"cluster": "c d", "domain": "d"}"#, "cluster"),
            (r#"{"cluster": "c", "domain": ""}"#, "domain"),
            (
                r#"{"cluster": "c", "domain": "d", "timeout_ms": 10001}"#,
                "timeout_ms",
            ),
        ] {
            let c: RateLimitServiceConfig = serde_json::from_str(json).unwrap();
            assert_eq!(
                RateLimitService::new(&c).unwrap_err().field,
                field,
                "{json}"
            );
        }
    }

    proptest! {
        #[test]
        fn interpret_arbitrary_bytes_never_panics_ok(
            body in proptest::collection::vec(any::<u8>(), 0..256),
            asked in 0usize..4,
        ) {
            let _ = interpret(&body, body.len(), asked);
        }

        #[test]
        fn interpret_arbitrary_statuses_ok(
            codes in proptest::collection::vec(0i32..4, 0..4),
            overall in 0i32..4,
            seconds in any::<i64>(),
            nanos in any::<i32>(),
        ) {
            let body = wire::RateLimitResponse {
                overall_code: overall,
                statuses: codes.iter().map(|c| wire::DescriptorStatus {
                    code: *c,
                    current_limit: None,
                    limit_remaining: 0,
                    duration_until_reset: Some(wire::Duration { seconds, nanos }),
                }).collect(),
                response_headers_to_add: vec![],
            }.encode_to_vec();
            if let Ok(a) = interpret(&body, body.len(), codes.len()) {
                // Believed only when consistent: the overall code agrees with the statuses.
                prop_assert!(codes.iter().all(|c| *c == 1 || *c == 2));
                prop_assert_eq!(a.over, overall == 2);
                prop_assert_eq!(a.over, codes.is_empty() && overall == 2 || codes.contains(&2));
                for s in &a.statuses {
                    prop_assert!(s.reset_secs.unwrap_or(0) <= MAX_RETRY_AFTER_SECS);
                }
            }
        }
    }
}
