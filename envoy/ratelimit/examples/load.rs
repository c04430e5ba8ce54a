//! Load client for `make bench-ratelimit`: `--concurrency` callers send `ShouldRateLimit` to
//! `--target` for `--seconds`, over `--keys` distinct descriptors (each with a quota override
//! so large that every call is admitted: the read + compare-and-set path, the expensive one).
//! Prints one JSON line.

use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::{
    Entry, RateLimitOverride,
};
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::Code;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient;
use envoy_types::pb::envoy::service::ratelimit::v3::RateLimitRequest;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Opts {
    target: String,
    seconds: u64,
    concurrency: usize,
    keys: u64,
}

fn opts() -> Result<Opts, String> {
    let mut o = Opts {
        target: "http://127.0.0.1:8089".into(),
        seconds: 5,
        concurrency: 64,
        keys: 10_000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let v = it.next().ok_or(format!("{flag} needs a value"))?;
        let num = |v: &str| {
            v.parse::<u64>()
                .map_err(|_| format!("{flag}: not a number"))
        };
        match flag.as_str() {
            "--target" => o.target = format!("http://{v}"),
            "--seconds" => o.seconds = num(&v)?,
            "--concurrency" => o.concurrency = usize::try_from(num(&v)?).unwrap_or(64),
            "--keys" => o.keys = num(&v)?.max(1),
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    Ok(o)
}

fn request(key: u64) -> RateLimitRequest {
    RateLimitRequest {
        domain: "bench".into(),
        descriptors: vec![RateLimitDescriptor {
            entries: vec![Entry {
                key: "remote_address".into(),
                value: format!("10.{}.{}.{}", key >> 16 & 255, key >> 8 & 255, key & 255),
            }],
            limit: Some(RateLimitOverride {
                requests_per_unit: 1_000_000,
                unit: 1,
            }),
            ..Default::default()
        }],
        hits_addend: 0,
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), String> {
    let o = opts()?;
    let channel = tonic::transport::Channel::from_shared(o.target.clone())
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| format!("cannot connect to {}: {e}", o.target))?;
    let (ok, over, errors) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let until = started + Duration::from_secs(o.seconds);
    let mut tasks = Vec::new();
    for _ in 0..o.concurrency {
        let mut client = RateLimitServiceClient::new(channel.clone());
        let (ok, over, errors, next) = (ok.clone(), over.clone(), errors.clone(), next.clone());
        let keys = o.keys;
        tasks.push(tokio::spawn(async move {
            while Instant::now() < until {
                let key = next.fetch_add(1, Ordering::Relaxed) % keys;
                match client.should_rate_limit(request(key)).await {
                    Ok(r) if r.get_ref().overall_code == Code::Ok as i32 => {
                        ok.fetch_add(1, Ordering::Relaxed)
                    }
                    Ok(_) => over.fetch_add(1, Ordering::Relaxed),
                    Err(_) => errors.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    for t in tasks {
        t.await.map_err(|e| e.to_string())?;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{{\"ok\": {}, \"over\": {}, \"errors\": {}, \"secs\": {secs:.3}}}",
        ok.load(Ordering::Relaxed),
        over.load(Ordering::Relaxed),
        errors.load(Ordering::Relaxed)
    );
    Ok(())
}
