//! `remote_jwks`: the issuer's key set, fetched and cached, sans-IO.
//!
//! [`RemoteJwks`] is the validated configuration; [`JwksCache`] is the state machine that
//! decides when to fetch (first as soon as the shell ticks, then every `cache_secs`; at once
//! for a token whose key is unknown, but never twice within `min_refetch_secs`; after a failure
//! with backoff from 1 s doubling up to `cache_secs`), shares one in-flight fetch between all
//! the requests that wait for it, and what to keep (a failed fetch keeps the last good set).
//! It takes `now` as an argument and never does I/O: fetches go out as [`Callout`]s and come
//! back as [`CalloutResult`]s.
//!
//! Fetched keys pass the same checks as inline ones ([`VerifyingKey::from_jwk`]: key sizes,
//! `alg` pinning, HMAC secrets of at least 32 bytes). A key that fails them (an `enc` key, an
//! unknown `kty`, a P-384 curve, a 1024-bit RSA key) is skipped, not fatal: real identity
//! providers publish mixed sets. A fetch is a failure when it brings no usable key at all.

use serde::Deserialize;
use std::fmt::Write as _;

use super::decision::{
    Callout, CalloutFailure, CalloutId, CalloutRequest, CalloutResult, HttpCallout,
};
use super::outcome::Metric;
use crate::token::{Jwk, KeySet, VerifyingKey, MAX_KEYS};
use crate::ConfigError;

/// Default refresh interval, in seconds.
pub const DEFAULT_CACHE_SECS: u64 = 600;
/// Shortest `cache_secs`.
pub const MIN_CACHE_SECS: u64 = 30;
/// Longest `cache_secs` (one day).
pub const MAX_CACHE_SECS: u64 = 86_400;
/// Default time one fetch may take, in milliseconds.
pub const DEFAULT_TIMEOUT_MS: u64 = 2_000;
/// Shortest `timeout_ms`.
pub const MIN_TIMEOUT_MS: u64 = 100;
/// Longest `timeout_ms`.
pub const MAX_TIMEOUT_MS: u64 = 30_000;
/// Default floor between two fetches caused by unknown keys, in seconds.
pub const DEFAULT_MIN_REFETCH_SECS: u64 = 30;
/// Shortest `min_refetch_secs`.
pub const MIN_MIN_REFETCH_SECS: u64 = 1;
/// Longest `min_refetch_secs`.
pub const MAX_MIN_REFETCH_SECS: u64 = 3_600;
/// Largest JWKS response body accepted, in bytes.
pub const MAX_JWKS_RESPONSE_BYTES: usize = 64 * 1024;
/// Longest `uri`.
pub const MAX_URI_LEN: usize = 2_048;
/// Longest `cluster` name.
pub const MAX_CLUSTER_LEN: usize = 256;
/// Most requests waiting for one fetch; more get 503 `jwks_unavailable` at once.
pub const MAX_WAITING: usize = 4_096;
/// Delay before the first retry after a failed fetch; it doubles up to `cache_secs`.
pub const FIRST_RETRY_MS: u64 = 1_000;
/// The gauge of loaded fetched keys (Envoy: `keygate.jwks_keys`).
pub const JWKS_KEYS_GAUGE: &str = "keygate.jwks_keys";

/// The `remote_jwks` configuration object, as written.
///
/// ```json
/// {"cluster": "auth", "uri": "http://auth.internal/.well-known/jwks.json",
///  "cache_secs": 600, "timeout_ms": 2000, "min_refetch_secs": 30}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct RemoteJwksConfig {
    /// The proxy cluster serving the JWKS. Required.
    #[serde(default)]
    pub cluster: Option<String>,
    /// `http://` or `https://` URL; gives `:authority` and `:path`. Required. (TLS is the
    /// cluster's transport socket: the filter sends the same request either way.)
    #[serde(default)]
    pub uri: Option<String>,
    /// Refresh interval, in seconds. Defaults to 600; 30..=86400.
    #[serde(default)]
    pub cache_secs: Option<u64>,
    /// Time one fetch may take, in milliseconds. Defaults to 2000; 100..=30000.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Floor between fetches caused by unknown keys, in seconds. Defaults to 30; 1..=3600.
    #[serde(default)]
    pub min_refetch_secs: Option<u64>,
    /// Accept symmetric (`kty: "oct"`, HS256/384/512) keys from the fetched set. Defaults to
    /// `false`: a JWKS is a public document (OIDC: "MUST NOT contain private or symmetric key
    /// values"), so an HMAC secret in it lets anyone who can read the URL mint tokens.
    #[serde(default)]
    pub insecure_allow_symmetric: bool,
}

crate::json::object_only!(RemoteJwksConfig, "the remote_jwks object");

/// A validated `remote_jwks` configuration. Fields are private: a value is always valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteJwks {
    cluster: String,
    scheme: &'static str,
    authority: String,
    path: String,
    cache_ms: u64,
    timeout_ms: u64,
    min_refetch_ms: u64,
    allow_symmetric: bool,
}

impl RemoteJwks {
    /// Checks `config` (field names without the `remote_jwks.` prefix).
    ///
    /// # Errors
    /// [`ConfigError`] naming `cluster`, `uri`, `cache_secs`, `timeout_ms` or
    /// `min_refetch_secs`.
    pub fn new(config: &RemoteJwksConfig) -> Result<Self, ConfigError> {
        let cluster = match config.cluster.as_deref() {
            None => {
                return Err(ConfigError::new(
                    "cluster",
                    "required: the Envoy cluster that serves the JWKS",
                ))
            }
            Some(c) if c.is_empty() || c.len() > MAX_CLUSTER_LEN || !c.bytes().all(visible) => {
                return Err(ConfigError::new(
                    "cluster",
                    format!("must be 1 to {MAX_CLUSTER_LEN} visible ASCII characters"),
                ))
            }
            Some(c) => c.to_owned(),
        };
        let uri = config.uri.as_deref().ok_or_else(|| {
            ConfigError::new(
                "uri",
                "required: the JWKS URL, e.g. http://auth.internal/.well-known/jwks.json",
            )
        })?;
        let (scheme, authority, path) = parse_uri(uri).map_err(|m| ConfigError::new("uri", m))?;
        let ranged = |field: &str, v: Option<u64>, default: u64, min: u64, max: u64| {
            let v = v.unwrap_or(default);
            if (min..=max).contains(&v) {
                Ok(v)
            } else {
                Err(ConfigError::new(
                    field,
                    format!("must be {min} to {max} (default {default})"),
                ))
            }
        };
        let cache_secs = ranged(
            "cache_secs",
            config.cache_secs,
            DEFAULT_CACHE_SECS,
            MIN_CACHE_SECS,
            MAX_CACHE_SECS,
        )?;
        let timeout_ms = ranged(
            "timeout_ms",
            config.timeout_ms,
            DEFAULT_TIMEOUT_MS,
            MIN_TIMEOUT_MS,
            MAX_TIMEOUT_MS,
        )?;
        let min_refetch_secs = ranged(
            "min_refetch_secs",
            config.min_refetch_secs,
            DEFAULT_MIN_REFETCH_SECS,
            MIN_MIN_REFETCH_SECS,
            MAX_MIN_REFETCH_SECS,
        )?;
        Ok(Self {
            cluster,
            scheme,
            authority,
            path,
            cache_ms: cache_secs * 1000,
            timeout_ms,
            min_refetch_ms: min_refetch_secs * 1000,
            allow_symmetric: config.insecure_allow_symmetric,
        })
    }

    /// The cluster the JWKS is fetched from.
    #[must_use]
    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    /// The request the shell sends.
    #[must_use]
    pub fn http_callout(&self) -> HttpCallout {
        HttpCallout {
            cluster: self.cluster.clone(),
            headers: vec![
                (":method", "GET".to_owned()),
                (":path", self.path.clone()),
                (":authority", self.authority.clone()),
                (":scheme", self.scheme.to_owned()),
                (
                    "accept",
                    "application/jwk-set+json, application/json".to_owned(),
                ),
                ("user-agent", "keygate".to_owned()),
            ],
            body: Vec::new(),
            timeout_ms: self.timeout_ms,
            max_response_bytes: MAX_JWKS_RESPONSE_BYTES,
        }
    }
}

fn visible(b: u8) -> bool {
    (0x21..=0x7e).contains(&b)
}

/// `(scheme, authority, path-and-query)` of an `http(s)://` URL without userinfo or fragment.
fn parse_uri(uri: &str) -> Result<(&'static str, String, String), String> {
    if uri.len() > MAX_URI_LEN || !uri.bytes().all(visible) {
        return Err(format!(
            "must be at most {MAX_URI_LEN} visible ASCII characters (percent-encode the rest)"
        ));
    }
    let (scheme, rest) = uri
        .split_once("://")
        .ok_or("must be an http:// or https:// URL")?;
    let scheme = if scheme.eq_ignore_ascii_case("http") {
        "http"
    } else if scheme.eq_ignore_ascii_case("https") {
        "https"
    } else {
        return Err("must be an http:// or https:// URL".to_owned());
    };
    if rest.contains('#') {
        return Err("must not have a fragment (`#…`)".to_owned());
    }
    let at = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(at);
    let host_ok = |b: u8| b.is_ascii_alphanumeric() || b".-_:[]".contains(&b);
    if authority.is_empty() || !authority.bytes().all(host_ok) {
        return Err("needs a host (`http://host[:port]/path`); user info is not accepted".into());
    }
    let path = match path {
        "" => "/".to_owned(),
        p if p.starts_with('?') => format!("/{p}"),
        p => p.to_owned(),
    };
    Ok((scheme, authority.to_ascii_lowercase(), path))
}

/// What one finished fetch did, for the shell's counters, gauge and log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchReport {
    /// Whether a new key set was loaded.
    pub ok: bool,
    /// Fetched keys in use now (the `keygate.jwks_keys` gauge).
    pub keys: usize,
    /// One log line: what was loaded or what was wrong. Never key material.
    pub message: String,
}

impl FetchReport {
    /// `keygate.jwks_fetched` or `keygate.jwks_fetch_failed`.
    #[must_use]
    pub fn metric(&self) -> Metric {
        if self.ok {
            Metric::JwksFetched
        } else {
            Metric::JwksFetchFailed
        }
    }
}

/// What a request that needs an unknown key is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refetch {
    /// Wait for this fetch (new, or already on its way).
    Wait(Callout),
    /// A fetch started less than `min_refetch_secs` ago: decide with the keys there are.
    TooSoon,
    /// Too many requests already wait ([`MAX_WAITING`]).
    Busy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct InFlight {
    id: CalloutId,
    started_ms: u64,
}

/// The fetched key set of one VM and when to fetch it again. See the module docs.
#[derive(Debug, Clone)]
pub struct JwksCache {
    remote: RemoteJwks,
    inline: Vec<VerifyingKey>,
    /// Inline plus fetched keys; inline only (or none) until a fetch succeeds.
    keys: Option<KeySet>,
    fetched: usize,
    loaded: bool,
    in_flight: Option<InFlight>,
    waiting: usize,
    last_start_ms: Option<u64>,
    /// When [`JwksCache::poll`] starts the next fetch: 0 (at once) until the first one.
    next_fetch_ms: u64,
    failures: u32,
}

impl JwksCache {
    /// A cache that has fetched nothing yet; `inline` keys are always accepted.
    #[must_use]
    pub fn new(remote: RemoteJwks, inline: Option<&KeySet>) -> Self {
        Self {
            remote,
            inline: inline.map(|s| s.keys().to_vec()).unwrap_or_default(),
            keys: inline.cloned(),
            fetched: 0,
            loaded: false,
            in_flight: None,
            waiting: 0,
            last_start_ms: None,
            next_fetch_ms: 0,
            failures: 0,
        }
    }

    /// The keys to verify with now (inline + last good fetched set).
    #[must_use]
    pub fn keys(&self) -> Option<&KeySet> {
        self.keys.as_ref()
    }

    /// Whether a fetch has ever succeeded.
    #[must_use]
    pub fn is_loaded(&self) -> bool {
        self.loaded
    }

    /// Fetched keys in use.
    #[must_use]
    pub fn fetched_keys(&self) -> usize {
        self.fetched
    }

    /// The configuration.
    #[must_use]
    pub fn remote(&self) -> &RemoteJwks {
        &self.remote
    }

    /// The fetch due at `now_ms` without any request (the first one, the refresh every
    /// `cache_secs`, a retry after a failure), if any; `id` names it.
    pub fn poll(&mut self, now_ms: u64, id: impl FnOnce() -> CalloutId) -> Option<Callout> {
        self.forget_overdue(now_ms);
        if self.in_flight.is_some() || now_ms < self.next_fetch_ms {
            return None;
        }
        Some(self.start(now_ms, id()))
    }

    /// A request at `now_ms` holds a token whose key is not in [`JwksCache::keys`].
    pub fn refetch(&mut self, now_ms: u64, id: impl FnOnce() -> CalloutId) -> Refetch {
        self.forget_overdue(now_ms);
        if self.waiting >= MAX_WAITING {
            return Refetch::Busy;
        }
        if let Some(f) = self.in_flight {
            self.waiting += 1;
            return Refetch::Wait(Callout {
                id: f.id,
                request: None,
            });
        }
        let floor = self
            .last_start_ms
            .map(|t| t.saturating_add(self.remote.min_refetch_ms));
        if floor.is_some_and(|floor| now_ms < floor) {
            return Refetch::TooSoon;
        }
        let callout = self.start(now_ms, id());
        self.waiting = 1;
        Refetch::Wait(callout)
    }

    /// Takes the result of a fetch this cache started; `None` for any other callout (or one
    /// already given up on).
    pub fn complete(&mut self, result: &CalloutResult, now_ms: u64) -> Option<FetchReport> {
        let flight = self.in_flight.filter(|f| f.id == result.id)?;
        self.in_flight = None;
        self.waiting = 0;
        let elapsed = now_ms.saturating_sub(flight.started_ms);
        let cluster = &self.remote.cluster;
        match self.load(result, elapsed) {
            Ok((keys, fetched, skipped)) => {
                self.keys = Some(keys);
                self.fetched = fetched;
                self.loaded = true;
                self.failures = 0;
                self.next_fetch_ms = now_ms.saturating_add(self.remote.cache_ms);
                let mut message = format!("keygate: JWKS from cluster `{cluster}`: {fetched} keys");
                if !skipped.is_empty() {
                    let _ = write!(message, " ({})", skipped_summary(&skipped));
                }
                Some(FetchReport {
                    ok: true,
                    keys: fetched,
                    message,
                })
            }
            Err(why) => {
                self.failures = self.failures.saturating_add(1);
                let doubling = 1u64 << (self.failures - 1).min(30);
                let backoff = FIRST_RETRY_MS
                    .saturating_mul(doubling)
                    .min(self.remote.cache_ms);
                self.next_fetch_ms = now_ms.saturating_add(backoff);
                let kept = if self.loaded {
                    format!("keeping the last good set ({} keys)", self.fetched)
                } else {
                    "no key set loaded yet".to_owned()
                };
                Some(FetchReport {
                    ok: false,
                    keys: self.fetched,
                    message: format!(
                        "keygate: JWKS fetch from cluster `{cluster}` failed: {why}; {kept}; \
                         retrying in {} s",
                        backoff.div_ceil(1000)
                    ),
                })
            }
        }
    }

    fn start(&mut self, now_ms: u64, id: CalloutId) -> Callout {
        self.in_flight = Some(InFlight {
            id,
            started_ms: now_ms,
        });
        self.last_start_ms = Some(now_ms);
        self.waiting = 0;
        Callout {
            id,
            request: Some(CalloutRequest::Http(self.remote.http_callout())),
        }
    }

    /// A fetch the host never answered (it should always report success, failure or its
    /// timeout) is given up after twice `timeout_ms` plus a second, so the cache cannot stall.
    fn forget_overdue(&mut self, now_ms: u64) {
        let limit = self
            .remote
            .timeout_ms
            .saturating_mul(2)
            .saturating_add(1000);
        if self
            .in_flight
            .is_some_and(|f| now_ms.saturating_sub(f.started_ms) > limit)
        {
            self.in_flight = None;
            self.waiting = 0;
            self.failures = self.failures.saturating_add(1);
        }
    }

    /// Whether a failed fetch that took `elapsed_ms` is the proxy's own timeout. Only the
    /// message depends on it (the fetch has failed either way). A quarter of the timeout is
    /// allowed for skew: Envoy arms the timer from its event loop's cached clock, earlier than
    /// the clock read when the fetch was asked, so under load it fires before `timeout_ms` of
    /// the filter's clock have passed (seen: a 504 answered 300 ms timeout reported as
    /// "status 504").
    fn timed_out(&self, elapsed_ms: u64) -> bool {
        let timeout = self.remote.timeout_ms;
        elapsed_ms.saturating_add(timeout / 4) >= timeout
    }

    /// The new key set (inline + usable fetched keys), how many were fetched, and why others
    /// were skipped; or what was wrong with the answer.
    fn load(
        &self,
        result: &CalloutResult,
        elapsed_ms: u64,
    ) -> Result<(KeySet, usize, Vec<String>), String> {
        let response = match result.response {
            Ok(ref r) => r,
            Err(CalloutFailure::DispatchFailed | CalloutFailure::GrpcStatus(_)) => {
                return Err(format!(
                    "the proxy could not send the request (is cluster `{}` defined?)",
                    self.remote.cluster
                ))
            }
            Err(CalloutFailure::NoResponse) if self.timed_out(elapsed_ms) => {
                return Err(format!("no answer within {} ms", self.remote.timeout_ms))
            }
            Err(CalloutFailure::NoResponse) => {
                return Err("no response (connection refused or reset)".to_owned())
            }
        };
        // Envoy answers a timeout itself (504), like a refused connection (503).
        if response.status != 200 && self.timed_out(elapsed_ms) {
            return Err(format!(
                "no answer within {} ms (status {})",
                self.remote.timeout_ms, response.status
            ));
        }
        if response.status != 200 {
            return Err(format!("status {}, expected 200", response.status));
        }
        let len = response.body_len.max(response.body.len());
        if len > MAX_JWKS_RESPONSE_BYTES {
            return Err(format!(
                "the body is {len} bytes, over the {MAX_JWKS_RESPONSE_BYTES}-byte limit"
            ));
        }
        let (fetched, skipped) =
            usable_keys(&response.body, &self.inline, self.remote.allow_symmetric)?;
        if fetched.is_empty() {
            return Err(format!("no usable key ({})", skipped_summary(&skipped)));
        }
        let count = fetched.len();
        let mut all = self.inline.clone();
        all.extend(fetched);
        let set = KeySet::from_keys(all).map_err(|e| e.to_string())?;
        Ok((set, count, skipped))
    }
}

/// `{"keys": [...]}` (an object, not an array read by position): other members ignored;
/// each key read on its own so one odd key cannot spoil the set.
/// A JWK Set document: an object whose `keys` member is an array (other members ignored).
///
/// Read with `deserialize_any` and every other kind refused by the visitors (instead of a
/// derive, whose `deserialize_map`/`deserialize_seq` word a refusal with serde's
/// `Unexpected` and so link core's float formatting, ≈16 KB of the filter's wasm). The error
/// positions stay serde_json's: see [`document`].
struct Document {
    keys: Vec<Entry>,
}

/// The refusal of an array or object where the other kind (or a scalar) is meant; its
/// position is moved back to the value's first byte by [`document`].
const CONTAINER: &str = "a JWK Set object with a `keys` array";

/// A refusal of `unexp` by a visitor expecting `what`: a container gets [`CONTAINER`].
fn refused<E: serde::de::Error>(unexp: serde::de::Unexpected<'_>, what: &str) -> E {
    match unexp {
        serde::de::Unexpected::Seq | serde::de::Unexpected::Map => E::custom(CONTAINER),
        other => crate::json::tree::invalid_type(other, &what),
    }
}

/// Visitor methods refusing every kind but `$allowed` (a map or a seq).
macro_rules! refuse_scalars {
    ($what:literal) => {
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str($what)
        }
        fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Self::Value, E> {
            Err(refused(serde::de::Unexpected::Bool(v), $what))
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Err(refused(serde::de::Unexpected::Signed(v), $what))
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Err(refused(serde::de::Unexpected::Unsigned(v), $what))
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Err(refused(serde::de::Unexpected::Float(v), $what))
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Err(refused(serde::de::Unexpected::Str(v), $what))
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Err(refused(serde::de::Unexpected::Unit, $what))
        }
    };
}

impl<'de> Deserialize<'de> for Document {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Document;
            refuse_scalars!("a JWK Set object");
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, _: A) -> Result<Document, A::Error> {
                Err(refused(serde::de::Unexpected::Seq, ""))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Document, A::Error> {
                let mut keys: Option<Keys> = None;
                while let Some(name) = map.next_key::<String>()? {
                    if name != "keys" {
                        map.next_value::<serde::de::IgnoredAny>()?;
                    } else if keys.is_some() {
                        return Err(serde::de::Error::duplicate_field("keys"));
                    } else {
                        keys = Some(map.next_value()?);
                    }
                }
                match keys {
                    Some(Keys(keys)) => Ok(Document { keys }),
                    None => Err(serde::de::Error::missing_field("keys")),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// The `keys` member: an array of entries.
struct Keys(Vec<Entry>);

impl<'de> Deserialize<'de> for Keys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Keys;
            refuse_scalars!("a sequence");
            fn visit_map<A: serde::de::MapAccess<'de>>(self, _: A) -> Result<Keys, A::Error> {
                Err(refused(serde::de::Unexpected::Map, ""))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Keys, A::Error> {
                let mut keys = Vec::new();
                while let Some(entry) = seq.next_element()? {
                    keys.push(entry);
                }
                Ok(Keys(keys))
            }
        }
        d.deserialize_any(V)
    }
}

/// Reads the JWK Set document of a JWKS response.
///
/// # Errors
/// "not a JWK Set: …" with serde_json's line and column of the refusal (for an array or
/// object of the wrong kind: of its first byte, where serde_json's `deserialize_map` /
/// `deserialize_seq` put it).
fn document(body: &[u8]) -> Result<Document, String> {
    serde_json::from_slice(body).map_err(|e| {
        let what = match e.classify() {
            serde_json::error::Category::Data => "has no `keys` array",
            _ => "is not JSON",
        };
        let (mut line, mut column) = (e.line(), e.column());
        if e.classify() == serde_json::error::Category::Data && e.to_string().starts_with(CONTAINER)
        {
            if let Some(at) = container_start(body, line, column) {
                let start_of_line = body
                    .get(..at)
                    .and_then(|b| b.iter().rposition(|c| *c == b'\n'))
                    .map_or(0, |p| p + 1);
                line = 1 + body
                    .iter()
                    .take(start_of_line)
                    .filter(|c| **c == b'\n')
                    .count();
                column = at - start_of_line;
            }
        }
        format!("not a JWK Set: the body {what} (line {line}, column {column})")
    })
}

/// The offset of the `[` or `{` that opened the container serde_json stopped in at (line,
/// column): just after it and blanks, after its `]`/`}` when it was empty, or after a `,`.
fn container_start(body: &[u8], line: usize, column: usize) -> Option<usize> {
    let start = match line {
        0 => return None,
        1 => 0,
        l => {
            body.iter()
                .enumerate()
                .filter(|(_, b)| **b == b'\n')
                .nth(l - 2)?
                .0
                + 1
        }
    };
    let mut at = start.checked_add(column)?;
    let blanks = |at: &mut usize| {
        while matches!(
            body.get(at.wrapping_sub(1)),
            Some(b' ' | b'\t' | b'\n' | b'\r')
        ) {
            *at -= 1;
        }
    };
    // serde_json's `end_seq`/`end_map` after the refusal ate blanks, then a `]`/`}` (an empty
    // container) or a `,` and blanks (`[,`).
    blanks(&mut at);
    if matches!(body.get(at.wrapping_sub(1)), Some(b']' | b'}' | b',')) {
        at -= 1;
        blanks(&mut at);
    }
    at = at.checked_sub(1)?;
    matches!(body.get(at), Some(b'[' | b'{')).then_some(at)
}

/// One `keys` entry: a JWK, or `None` when it is not an object whose members keygate reads
/// are strings (each once). Written out instead of `serde_json::Value` or `RawValue`, which
/// cost the filter ~10 KiB or every wasm module serde_json's raw-value hooks.
struct Entry(Option<Jwk>);

impl<'de> Deserialize<'de> for Entry {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(Lenient).map(|m| match m {
            Member::Key(jwk) => Entry(jwk.map(|j| *j)),
            Member::Str(_) | Member::Other => Entry(None),
        })
    }
}

/// What a JSON value is, as far as a JWK is concerned.
enum Member {
    Str(String),
    Key(Option<Box<Jwk>>),
    Other,
}

impl<'de> Deserialize<'de> for Member {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(Lenient)
    }
}

struct Lenient;

impl<'de> serde::de::Visitor<'de> for Lenient {
    type Value = Member;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_str<E>(self, v: &str) -> Result<Member, E> {
        Ok(Member::Str(v.to_owned()))
    }
    fn visit_bool<E>(self, _: bool) -> Result<Member, E> {
        Ok(Member::Other)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Member, E> {
        Ok(Member::Other)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Member, E> {
        Ok(Member::Other)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Member, E> {
        Ok(Member::Other)
    }
    fn visit_unit<E>(self) -> Result<Member, E> {
        Ok(Member::Other)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Member, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(Member::Other)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Member, A::Error> {
        let mut jwk = Jwk::default();
        let (mut ok, mut kty) = (true, false);
        while let Some(name) = map.next_key::<String>()? {
            let slot = match name.as_str() {
                "kty" => None,
                "kid" => Some(&mut jwk.kid),
                "alg" => Some(&mut jwk.alg),
                "use" => Some(&mut jwk.key_use),
                "k" => Some(&mut jwk.k),
                "crv" => Some(&mut jwk.crv),
                "x" => Some(&mut jwk.x),
                "y" => Some(&mut jwk.y),
                "d" => Some(&mut jwk.d),
                "n" => Some(&mut jwk.n),
                "e" => Some(&mut jwk.e),
                _ => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                    continue;
                }
            };
            let value = match map.next_value::<Member>()? {
                Member::Str(v) => v,
                Member::Key(_) | Member::Other => {
                    ok = false;
                    continue;
                }
            };
            match slot {
                None if !kty => {
                    kty = true;
                    jwk.kty = value;
                }
                Some(slot) if slot.is_none() => *slot = Some(value),
                _ => ok = false, // a member given twice
            }
        }
        Ok(Member::Key((ok && kty).then(|| Box::new(jwk))))
    }
}

/// The usable keys of a JWKS body and why the others were skipped (`keys[2].use: …`).
fn usable_keys(
    body: &[u8],
    inline: &[VerifyingKey],
    allow_symmetric: bool,
) -> Result<(Vec<VerifyingKey>, Vec<String>), String> {
    let doc = document(body)?;
    let room = MAX_KEYS.saturating_sub(inline.len());
    let mut usable: Vec<VerifyingKey> = Vec::new();
    let mut skipped = Vec::new();
    for (i, entry) in doc.keys.into_iter().enumerate() {
        let key = entry
            .0
            .ok_or_else(|| ConfigError::new("", "not a JWK with string members"))
            .and_then(|jwk| VerifyingKey::from_jwk(&jwk));
        let why = match key {
            Err(e) => e.within(&format!("keys[{i}]")).to_string(),
            Ok(k) if k.alg().is_hmac() && !allow_symmetric => format!(
                "`keys[{i}]`: a symmetric (oct) key in a fetched JWKS is a published secret \
                 (set remote_jwks.insecure_allow_symmetric to accept it)"
            ),
            Ok(k) if k.kid().is_some() && inline.iter().any(|j| j.kid() == k.kid()) => {
                format!("`keys[{i}].kid`: the kid of an inline key")
            }
            Ok(k) if k.kid().is_some() && usable.iter().any(|j| j.kid() == k.kid()) => {
                format!("`keys[{i}].kid`: a duplicate kid")
            }
            Ok(_) if usable.len() >= room => {
                format!("`keys[{i}]`: over {MAX_KEYS} keys with the inline ones")
            }
            Ok(k) => {
                usable.push(k);
                continue;
            }
        };
        skipped.push(why.replace("invalid config ", ""));
    }
    Ok((usable, skipped))
}

/// `N skipped: first; second; third; …` (bounded: one log line).
fn skipped_summary(skipped: &[String]) -> String {
    let mut s = format!("{} skipped", skipped.len());
    for (i, why) in skipped.iter().take(3).enumerate() {
        s.push_str(if i == 0 { ": " } else { "; " });
        s.push_str(why);
    }
    if skipped.len() > 3 {
        s.push_str("; …");
    }
    s
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests;
