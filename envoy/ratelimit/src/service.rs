//! `envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit`: protocol in, core decision,
//! compare-and-set into the store, protocol out.

use crate::store::{Cas, Store, StoreError};
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::{
    rate_limit::Unit as PbUnit, Code, DescriptorStatus, RateLimit,
};
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_server::RateLimitService;
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use envoy_types::pb::google::protobuf::Duration as PbDuration;
use futures_util::future::join_all;
use keygate::ratelimit::{
    decide, DescriptorLimits, Quota, SharedDecision, SharedKey, Unit, MAX_DESCRIPTOR_ENTRIES,
    MAX_ENTRY_LEN,
};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};

/// Most descriptors in one request.
pub const MAX_DESCRIPTORS: usize = 64;
/// Compare-and-set rounds for one descriptor. A round is lost only when another request of
/// the same descriptor was admitted in between, so this bound is reached only when more than
/// this many admissions of one descriptor land during one request; the answer is then
/// UNAVAILABLE (the caller's failure mode decides), never an unchecked admission.
pub const MAX_CAS_ATTEMPTS: usize = 64;
/// The time a request gets when the caller sends no `grpc-timeout`.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(1);
/// Longest deadline honoured, whatever `grpc-timeout` says.
pub const MAX_DEADLINE: Duration = Duration::from_secs(10);

/// Per-key serialisation shards inside one replica. Without them, N concurrent requests of
/// one hot descriptor race each other's compare-and-set, and a loser can lose a round per
/// admission of the others; with them only other replicas race (one round trip each).
const KEY_LOCK_SHARDS: usize = 1024;

/// The service.
pub struct Rls {
    store: Arc<Store>,
    limits: Arc<DescriptorLimits>,
    healthy: AtomicBool,
    key_locks: Box<[tokio::sync::Mutex<()>]>,
}

/// One descriptor's plan: what to decide, or nothing for an unknown descriptor.
struct Planned {
    key: SharedKey,
    quota: Quota,
    hits: u32,
}

impl Rls {
    /// A service over `store`, with `limits` for descriptors that carry no `limit`.
    pub fn new(store: Arc<Store>, limits: Arc<DescriptorLimits>) -> Self {
        Self {
            store,
            limits,
            healthy: AtomicBool::new(true),
            key_locks: (0..KEY_LOCK_SHARDS)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
        }
    }

    /// Validates the request and finds each descriptor's quota.
    #[allow(clippy::result_large_err)] // tonic's Status is what the handler returns anyway
    fn plan(&self, req: &RateLimitRequest) -> Result<Vec<Option<Planned>>, Status> {
        if req.domain.is_empty() || req.domain.len() > MAX_ENTRY_LEN {
            return Err(Status::invalid_argument(
                "domain: required, at most 1024 bytes",
            ));
        }
        if req.descriptors.is_empty() || req.descriptors.len() > MAX_DESCRIPTORS {
            return Err(Status::invalid_argument(format!(
                "descriptors: give 1 to {MAX_DESCRIPTORS}"
            )));
        }
        req.descriptors
            .iter()
            .enumerate()
            .map(|(i, d)| {
                plan_one(&req.domain, d, req.hits_addend, &self.limits)
                    .map_err(|m| Status::invalid_argument(format!("descriptors[{i}].{m}")))
            })
            .collect()
    }

    async fn decide_all(
        &self,
        req: &RateLimitRequest,
        plans: &[Option<Planned>],
    ) -> Result<RateLimitResponse, StoreError> {
        let decisions = join_all(plans.iter().map(|p| async move {
            match p {
                Some(p) => self.decide_one(p).await.map(Some),
                None => Ok(None),
            }
        }))
        .await;
        let mut over = false;
        let mut statuses = Vec::with_capacity(decisions.len());
        for (i, d) in decisions.into_iter().enumerate() {
            let d = d?;
            if log::log_enabled!(log::Level::Debug) {
                debug_descriptor(&req.domain, req.descriptors.get(i), d.as_ref());
            }
            over |= d.as_ref().is_some_and(|d| !d.allowed());
            statuses.push(status(d.as_ref()));
        }
        Ok(RateLimitResponse {
            overall_code: if over { Code::OverLimit } else { Code::Ok } as i32,
            statuses,
            ..Default::default()
        })
    }

    /// The compare-and-set loop: decide on what was read, swap it in only if unchanged.
    async fn decide_one(&self, p: &Planned) -> Result<SharedDecision, StoreError> {
        let key = p.key.key();
        let _serialised = self.key_lock(key).lock().await;
        let (mut stored, mut now_ms) = self.store.read(key).await?;
        for _ in 0..MAX_CAS_ATTEMPTS {
            let d = decide(
                p.quota,
                stored.as_deref(),
                p.key.fingerprint(),
                now_ms,
                p.hits,
            );
            let Some(new) = d.new_state() else {
                return Ok(d);
            };
            match self
                .store
                .cas(key, stored.as_deref(), new, d.ttl_ms())
                .await?
            {
                Cas::Swapped => return Ok(d),
                Cas::Changed(current, now) => {
                    stored = current;
                    now_ms = now;
                }
            }
        }
        Err(StoreError(format!(
            "descriptor state changed {MAX_CAS_ATTEMPTS} times while deciding (contention)"
        )))
    }

    fn key_lock(&self, key: &str) -> &tokio::sync::Mutex<()> {
        // FNV-1a: the key is already a SHA-256 hex digest, any spread-out hash will do.
        let h = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        let shard = usize::try_from(h % KEY_LOCK_SHARDS as u64).unwrap_or(0);
        &self.key_locks[shard]
    }

    fn note_failure(&self, why: &str) {
        if self.healthy.swap(false, Ordering::Relaxed) {
            log::warn!("answering UNAVAILABLE: {why}");
        }
    }

    fn note_success(&self) {
        if !self.healthy.swap(true, Ordering::Relaxed) {
            log::info!("{} answers again", self.store.describe());
        }
    }
}

#[tonic::async_trait]
impl RateLimitService for Rls {
    async fn should_rate_limit(
        &self,
        request: Request<RateLimitRequest>,
    ) -> Result<Response<RateLimitResponse>, Status> {
        let budget = budget(request.metadata());
        let req = request.into_inner();
        let plans = self.plan(&req)?;
        match tokio::time::timeout(budget, self.decide_all(&req, &plans)).await {
            Ok(Ok(resp)) => {
                self.note_success();
                Ok(Response::new(resp))
            }
            Ok(Err(e)) => {
                self.note_failure(&e.0);
                Err(Status::unavailable(e.0))
            }
            Err(_) => {
                self.store.timed_out();
                let why = format!("{} did not answer within {budget:?}", self.store.describe());
                self.note_failure(&why);
                Err(Status::unavailable(why))
            }
        }
    }
}

fn plan_one(
    domain: &str,
    d: &RateLimitDescriptor,
    request_hits: u32,
    limits: &DescriptorLimits,
) -> Result<Option<Planned>, String> {
    if d.entries.len() > MAX_DESCRIPTOR_ENTRIES {
        return Err(format!("entries: at most {MAX_DESCRIPTOR_ENTRIES}"));
    }
    if let Some(i) = d.entries.iter().position(|e| {
        e.key.is_empty() || e.key.len() > MAX_ENTRY_LEN || e.value.len() > MAX_ENTRY_LEN
    }) {
        return Err(format!(
            "entries[{i}]: key required; key and value at most {MAX_ENTRY_LEN} bytes"
        ));
    }
    if d.is_negative_hits {
        return Err("is_negative_hits: refunds are not supported".to_owned());
    }
    // Per-descriptor hits override the request's; an unset request value (0) means 1.
    let hits = match &d.hits_addend {
        Some(h) => u32::try_from(h.value).unwrap_or(u32::MAX),
        None => request_hits.max(1),
    };
    let entries: Vec<(&str, &str)> = d
        .entries
        .iter()
        .map(|e| (e.key.as_str(), e.value.as_str()))
        .collect();
    let quota = match &d.limit {
        Some(o) => {
            let unit = match PbUnit::try_from(o.unit) {
                Ok(PbUnit::Second) => Unit::Second,
                Ok(PbUnit::Minute) => Unit::Minute,
                Ok(PbUnit::Hour) => Unit::Hour,
                Ok(PbUnit::Day) => Unit::Day,
                _ => return Err("limit.unit: must be SECOND, MINUTE, HOUR or DAY".to_owned()),
            };
            Quota::from_unit(o.requests_per_unit, unit)
                .map_err(|_| "limit.requests_per_unit: must be 1 to 1000000".to_owned())?
        }
        None => match limits.lookup(domain, &entries) {
            Some(q) => q,
            None => return Ok(None),
        },
    };
    Ok(Some(Planned {
        key: SharedKey::new(domain, &entries, quota),
        quota,
        hits,
    }))
}

fn status(d: Option<&SharedDecision>) -> DescriptorStatus {
    let Some(d) = d else {
        return DescriptorStatus {
            code: Code::Ok as i32,
            ..Default::default()
        };
    };
    let (count, unit) = d
        .quota()
        .per_unit()
        .unwrap_or((d.quota().count(), Unit::Second));
    let unit = match unit {
        Unit::Second => PbUnit::Second,
        Unit::Minute => PbUnit::Minute,
        Unit::Hour => PbUnit::Hour,
        Unit::Day => PbUnit::Day,
    };
    DescriptorStatus {
        code: if d.allowed() {
            Code::Ok
        } else {
            Code::OverLimit
        } as i32,
        current_limit: Some(RateLimit {
            name: String::new(),
            requests_per_unit: count,
            unit: unit as i32,
        }),
        limit_remaining: d.remaining(),
        duration_until_reset: Some(PbDuration {
            seconds: i64::try_from(d.duration_until_reset_secs()).unwrap_or(i64::MAX),
            nanos: 0,
        }),
        quota: None,
    }
}

/// Descriptor values (addresses, user ids) are logged at debug level only.
fn debug_descriptor(
    domain: &str,
    d: Option<&RateLimitDescriptor>,
    decision: Option<&SharedDecision>,
) {
    let entries: Vec<String> = d
        .map(|d| {
            d.entries
                .iter()
                .map(|e| format!("{}={}", e.key, e.value))
                .collect()
        })
        .unwrap_or_default();
    match decision {
        Some(x) => log::debug!(
            "domain={domain} [{}] limit={} allowed={} remaining={}",
            entries.join(", "),
            x.quota(),
            x.allowed(),
            x.remaining()
        ),
        None => log::debug!(
            "domain={domain} [{}] no limit: OK, not counted",
            entries.join(", ")
        ),
    }
}

/// The time to answer in: the caller's `grpc-timeout` (capped at [`MAX_DEADLINE`]) less a
/// margin (a tenth, at most 50 ms) so UNAVAILABLE reaches it before it gives up;
/// [`DEFAULT_DEADLINE`] without one.
pub fn budget(metadata: &MetadataMap) -> Duration {
    let timeout = metadata
        .get("grpc-timeout")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_grpc_timeout)
        .map_or(DEFAULT_DEADLINE, |t| t.min(MAX_DEADLINE));
    let margin = (timeout / 10).min(Duration::from_millis(50));
    timeout - margin
}

/// `grpc-timeout`: 1 to 8 digits and a unit (`H`, `M`, `S`, `m`, `u`, `n`).
pub fn parse_grpc_timeout(v: &str) -> Option<Duration> {
    let (digits, unit) = v.split_at_checked(v.len().checked_sub(1)?)?;
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.checked_mul(3_600)?),
        "M" => Duration::from_secs(n.checked_mul(60)?),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;
    use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::{
        Entry, RateLimitOverride,
    };

    fn rls(limits: &str) -> Rls {
        Rls::new(
            Arc::new(Store::Memory(MemoryStore::default())),
            Arc::new(DescriptorLimits::from_json(limits).unwrap()),
        )
    }

    const LIMITS: &str =
        r#"{"domain": "edge", "descriptors": [{"key": "remote_address", "limit": "3/minute"}]}"#;

    fn descriptor(entries: &[(&str, &str)], limit: Option<(u32, PbUnit)>) -> RateLimitDescriptor {
        RateLimitDescriptor {
            entries: entries
                .iter()
                .map(|(k, v)| Entry {
                    key: (*k).to_owned(),
                    value: (*v).to_owned(),
                })
                .collect(),
            limit: limit.map(|(n, u)| RateLimitOverride {
                requests_per_unit: n,
                unit: u as i32,
            }),
            ..Default::default()
        }
    }

    async fn call(
        s: &Rls,
        descriptors: Vec<RateLimitDescriptor>,
    ) -> Result<RateLimitResponse, Status> {
        let req = RateLimitRequest {
            domain: "edge".to_owned(),
            descriptors,
            hits_addend: 0,
        };
        s.should_rate_limit(Request::new(req))
            .await
            .map(Response::into_inner)
    }

    #[tokio::test]
    async fn override_and_limits_file_ok() {
        let s = rls(LIMITS);
        let mut codes = vec![];
        for _ in 0..4 {
            let r = call(
                &s,
                vec![
                    descriptor(
                        &[("keygate_rule", "login"), ("remote_address", "192.0.2.1")],
                        Some((2, PbUnit::Minute)),
                    ),
                    descriptor(&[("remote_address", "192.0.2.1")], None),
                    descriptor(&[("unknown", "x")], None),
                ],
            )
            .await
            .unwrap();
            codes.push(r.statuses.iter().map(|s| s.code).collect::<Vec<_>>());
            let first = &r.statuses[0];
            assert_eq!(first.current_limit.as_ref().unwrap().requests_per_unit, 2);
            assert_eq!(
                first.current_limit.as_ref().unwrap().unit,
                PbUnit::Minute as i32
            );
            assert!(r.statuses[2].current_limit.is_none());
        }
        let (ok, over) = (Code::Ok as i32, Code::OverLimit as i32);
        assert_eq!(
            codes,
            [
                vec![ok, ok, ok],
                vec![ok, ok, ok],
                vec![over, ok, ok],
                vec![over, over, ok]
            ]
        );
    }

    #[tokio::test]
    async fn statuses_fields_ok() {
        let s = rls(LIMITS);
        let r = call(&s, vec![descriptor(&[("remote_address", "a")], None)])
            .await
            .unwrap();
        assert_eq!(r.overall_code, Code::Ok as i32);
        assert_eq!(r.statuses[0].limit_remaining, 2);
        assert_eq!(r.statuses[0].duration_until_reset.unwrap().seconds, 20);
        for _ in 0..2 {
            call(&s, vec![descriptor(&[("remote_address", "a")], None)])
                .await
                .unwrap();
        }
        let r = call(&s, vec![descriptor(&[("remote_address", "a")], None)])
            .await
            .unwrap();
        assert_eq!(r.overall_code, Code::OverLimit as i32);
        assert_eq!(r.statuses[0].limit_remaining, 0);
        assert_eq!(r.statuses[0].duration_until_reset.unwrap().seconds, 20);
        assert!(r.response_headers_to_add.is_empty());
    }

    #[tokio::test]
    async fn bad_requests_fail() {
        let s = rls(LIMITS);
        let bad = [
            descriptor(&[("k", "v")], Some((5, PbUnit::Unknown))),
            descriptor(&[("k", "v")], Some((0, PbUnit::Minute))),
            descriptor(&[("", "v")], None),
        ];
        for d in bad {
            let e = call(&s, vec![d]).await.unwrap_err();
            assert_eq!(e.code(), tonic::Code::InvalidArgument);
            assert!(
                e.message().starts_with("descriptors[0]."),
                "{}",
                e.message()
            );
        }
        assert_eq!(
            call(&s, vec![]).await.unwrap_err().code(),
            tonic::Code::InvalidArgument
        );
        let mut negative = descriptor(&[("k", "v")], Some((5, PbUnit::Minute)));
        negative.is_negative_hits = true;
        assert_eq!(
            call(&s, vec![negative]).await.unwrap_err().code(),
            tonic::Code::InvalidArgument
        );
    }

    #[test]
    fn grpc_timeout_ok() {
        assert_eq!(parse_grpc_timeout("20m"), Some(Duration::from_millis(20)));
        assert_eq!(parse_grpc_timeout("1S"), Some(Duration::from_secs(1)));
        assert_eq!(parse_grpc_timeout("2H"), Some(Duration::from_secs(7_200)));
        assert_eq!(parse_grpc_timeout("500u"), Some(Duration::from_micros(500)));
        for bad in ["", "m", "20", "20x", "123456789m", "-1m", "1.5S", "é"] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad}");
        }
        let mut md = MetadataMap::new();
        assert_eq!(budget(&md), DEFAULT_DEADLINE - Duration::from_millis(50));
        md.insert("grpc-timeout", "20m".parse().unwrap());
        assert_eq!(budget(&md), Duration::from_millis(18));
        md.insert("grpc-timeout", "99999999S".parse().unwrap());
        assert_eq!(budget(&md), MAX_DEADLINE - Duration::from_millis(50));
    }
}
