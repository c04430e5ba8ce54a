//! The gateway: every decision of the Envoy filter, sans-IO.
//!
//! [`Gateway::from_json`] parses and validates the plugin configuration once (each error a
//! [`ConfigError`] naming the field). Per request, [`Gateway::check`] takes a view of the
//! request ([`HttpRequest`]), the shared rate-limit store ([`SharedStore`]) and the time, and
//! returns a [`Decision`] the shell acts on: continue upstream (headers to remove, set, and
//! add to the response), a local reply (401/403/429/503 with RFC 6750 / RateLimit headers and
//! a JSON body), or wait for a callout first (a JWKS fetch with `remote_jwks`, see
//! [`decision`] and [`jwks`]). The shell decides nothing.
//!
//! # Order of checks
//! 1. `ip`/`header:` rate limits matching the request (every one applies) — before any token
//!    work, so floods are cut cheaply;
//! 2. the first access rule by path and method (`rules`); no match, or a path that is not
//!    normalized → 403 (with no RFC 6750 `error` attribute when no credentials were sent);
//! 3. every `token_sources` entry, every line and element of its header: a token found more
//!    than once → 400 `invalid_request` (never verify one copy while the upstream reads
//!    another; refused at step 5, after the `sub` limits have metered it); longer than
//!    `max_token_bytes` → `token_too_large` before any decoding; then signature, `type`
//!    (only `access`), `exp`/`nbf`/`iat`, `iss`, `aud`. On a `public` route a valid token
//!    still yields claim headers and an invalid one is ignored.
//!    With `remote_jwks`, a token whose key is not loaded waits for one refetch
//!    ([`Decision::Wait`], then [`Gateway::resume`], which goes on from here); without any
//!    key set yet: 503 `jwks_unavailable`;
//! 4. `sub` rate limits, for every request that matched a rule: by the verified `sub`, else
//!    by address (anonymous, invalid and duplicated tokens alike: bad signatures are metered);
//! 5. a duplicated token → 400; the rule's requirement → 401 (no or invalid token) or 403
//!    (`insufficient_scope`);
//! 6. continue, with `claims_to_headers` removed from the request and set from the claims,
//!    and with `forward_token: false` the token removed.
//!
//! In `"shadow"` mode the same decision is made and counted, but a refusal is returned as a
//! continue carrying [`ShadowRefusal`] (to log once) with only the claim headers changed.
//! A request refused before its token is looked at (step 1, or no rule at step 2) still has
//! its one token verified — on the keys loaded now, nothing waited for, metered or asked
//! that enforce mode would not — so a valid token sets the claim headers; the first refusal
//! is the one counted and logged.
//! That holds for a decision finished by [`Gateway::resume`] too, and for a would-be 503
//! `jwks_unavailable`: the request goes on upstream (without claim headers) and the refusal
//! is logged and counted (`keygate.shadow.jwks_unavailable`).
//!
//! A request refused by a later rate limit has still spent its share of the earlier ones
//! (there is no multi-key transaction in shared data); this can only make limits stricter.
//!
//! # Rate-limit state
//! Every rule has a fixed number of slots (`slots`), stored under `kg:rl:<rule>:<slot>`. All
//! slot keys are created at configuration time ([`Gateway::prepare_store`]) so that every
//! request-time write is a real compare-and-swap; see [`store`] for why.
//!
//! The fingerprint seed that maps keys to slots must be the same in every worker VM. It is
//! derived from the configuration bytes ([`Gateway::from_json`]): every VM of one plugin
//! config gets the same seed without any coordination (publishing a random seed through
//! shared data would need the atomic creation the ABI lacks). An HS* secret in the config
//! keeps the seed unguessable; with public keys only, someone who knows the config could aim
//! keys at a victim's slot — which only makes that slot stricter (collisions share state and
//! never admit more).
//!
//! If the store fails or CAS keeps losing ([`slots::MAX_CAS_ATTEMPTS`]), the request is
//! refused with 429 `rate_limited` and `Retry-After: 1`: failing closed, and a lost CAS race
//! means that same slot is being hammered.

mod check;
mod claim_headers;
mod config;
pub mod decision;
mod global;
pub mod jwks;
mod outcome;
mod request;
mod resume;
pub mod rls;
pub mod slots;
pub mod store;
pub mod token_cache;
mod token_source;

pub use claim_headers::{
    ClaimHeaders, MAX_CLAIM_HEADERS, MAX_CLAIM_HEADER_VALUE_LEN, MAX_CLAIM_NAME_LEN,
};
pub(crate) use config::parse_document_at;
pub use config::{GatewayConfig, Mode, TokenSourceConfig, MAX_CONFIG_LEN};
pub use decision::{
    Callout, CalloutFailure, CalloutId, CalloutRequest, CalloutResponse, CalloutResult, Decision,
    HttpCallout, Pending,
};
pub use global::RATE_LIMIT_SERVICE_FAILED;
pub use jwks::{FetchReport, JwksCache, RemoteJwks, RemoteJwksConfig, JWKS_KEYS_GAUGE};
pub use outcome::{Forward, LocalReply, Metric, Outcome, ShadowRefusal, StripToken};
pub use request::{encode_proxy_wasm_map, HttpRequest, RequestHeaders, RequestView, MAX_HEADERS};
pub use rls::{FailureMode, GrpcCallout, RateLimitService, RateLimitServiceConfig};
pub use store::{MemoryStore, SharedStore, StoreError, SENTINEL};
pub use token_cache::TokenCache;
pub use token_source::{
    presented, Presented, TokenSource, MAX_COOKIE_NAME_LEN, MAX_PREFIX_LEN, MAX_TOKEN_SOURCES,
};

use check::Passed;
use resume::Keys;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::policy::{Policy, PolicyConfig};
use crate::ratelimit::RateLimits;
use crate::token::{decode, Claims, KeySet, TokenError, TokenType, Validation};
use crate::ConfigError;
use sha2::{Digest, Sha256};

/// Gateways made in this process (one VM): ids are never reused.
static GATEWAYS: AtomicU64 = AtomicU64::new(0);
/// Callouts asked for by any gateway of this process: a [`CalloutId`] names one callout of one
/// gateway, so the answer to an old gateway's fetch is never taken for a new one's.
static CALLOUTS: AtomicU64 = AtomicU64::new(0);

/// A gateway's identity. A clone is another gateway (its own caches and callouts), so it gets
/// an id of its own too: a [`Pending`] resumes only on the gateway that made it.
#[derive(Debug, PartialEq, Eq)]
struct GatewayId(u64);

impl GatewayId {
    fn next() -> Self {
        Self(GATEWAYS.fetch_add(1, Ordering::Relaxed).wrapping_add(1))
    }
}

impl Clone for GatewayId {
    fn clone(&self) -> Self {
        Self::next()
    }
}

/// A validated, compiled filter configuration. Build once per configuration, share
/// (`Rc`/`Arc`), call [`Gateway::check`] per request.
#[derive(Debug, Clone)]
pub struct Gateway {
    keys: Keys,
    validation: Validation,
    sources: Vec<TokenSource>,
    policy: Policy,
    limits: RateLimits,
    claim_headers: ClaimHeaders,
    seed: [u8; 32],
    mode: Mode,
    forward_token: bool,
    /// `rate_limit_service`: where `scope: "global"` rules are counted.
    rls: Option<RateLimitService>,
    /// Which gateway this is: a [`Pending`] made by another one is refused by
    /// [`Gateway::resume`] (its indexes name another configuration's rules and sources).
    id: GatewayId,
    /// Verified tokens of this gateway (one per VM); borrowed only inside one call.
    tokens: RefCell<TokenCache>,
    /// Key sets installed since the gateway was made: a cache that saw an older count is
    /// emptied before use, even if emptying it at the change itself could not borrow it.
    key_sets: Cell<u64>,
    /// Rate-limit key fingerprints computed last (`slots::FingerprintMemo`); borrowed only
    /// inside one call.
    fingerprints: RefCell<slots::FingerprintMemo>,
}

impl Gateway {
    /// Parses, validates and compiles the plugin configuration; the rate-limit slot seed is
    /// derived from `bytes` (see the module docs).
    ///
    /// # Errors
    /// [`ConfigError`] naming the field (`isuser`, `jwks.keys[0].k`, `rules[4]`,
    /// `rate_limits[0].limit`, …).
    pub fn from_json(bytes: &[u8]) -> Result<Self, ConfigError> {
        let config = GatewayConfig::from_json(bytes)?;
        let seed: [u8; 32] = Sha256::new()
            .chain_update(b"keygate gateway slot seed v1\0")
            .chain_update(bytes)
            .finalize()
            .into();
        Self::new(&config, seed)
    }

    /// Validates and compiles `config` with an explicit slot `seed` (shared by every worker).
    ///
    /// # Errors
    /// [`ConfigError`] naming the field.
    pub fn new(config: &GatewayConfig, seed: [u8; 32]) -> Result<Self, ConfigError> {
        let inline = config
            .jwks
            .as_ref()
            .map(|j| KeySet::from_jwks(j).map_err(|e| e.within("jwks")))
            .transpose()?;
        let keys = match (&config.remote_jwks, inline) {
            (None, Some(keys)) => Keys::Inline(keys),
            (None, None) => {
                return Err(ConfigError::new(
                    "jwks",
                    "required: an inline JWK Set, or `remote_jwks` to fetch one",
                ))
            }
            (Some(remote), inline) => {
                let remote = RemoteJwks::new(remote).map_err(|e| e.within("remote_jwks"))?;
                Keys::Remote(Box::new(RefCell::new(JwksCache::new(
                    remote,
                    inline.as_ref(),
                ))))
            }
        };
        let mut validation = Validation::new(TokenType::Access);
        validation.issuer.clone_from(&config.issuer);
        validation.audiences.clone_from(&config.audiences);
        if let Some(leeway) = config.leeway_secs {
            validation.leeway = leeway;
        }
        if let Some(max) = config.max_token_bytes {
            validation.max_token_len = max;
        }
        validation.check().map_err(|e| {
            let field = match e.field.as_str() {
                "leeway" => "leeway_secs".to_owned(),
                "max_token_len" => "max_token_bytes".to_owned(),
                other => other.to_owned(),
            };
            ConfigError::new(field, e.message)
        })?;
        let sources = token_source::compile_sources(config.token_sources.as_deref())?;
        let policy = Policy::new(&PolicyConfig {
            roles: config.roles.clone(),
            rules: config.rules.clone(),
        })?;
        let limits = RateLimits::new(&config.rate_limits)?;
        let rls = config
            .rate_limit_service
            .as_ref()
            .map(|c| RateLimitService::new(c).map_err(|e| e.within("rate_limit_service")))
            .transpose()?;
        if rls.is_none() {
            if let Some(i) = limits.rules().iter().position(|r| r.is_global()) {
                return Err(ConfigError::new(
                    format!("rate_limits[{i}].scope"),
                    "\"global\" needs `rate_limit_service` (the service that counts for the \
                     whole fleet)",
                ));
            }
        }
        // One call carries every matching global rule of a stage (one descriptor per quota):
        // refuse a configuration whose call could exceed what a service takes.
        for pre in [true, false] {
            let mut descriptors = 0usize;
            for (i, r) in limits.rules().iter().enumerate() {
                if r.is_global() && r.key_source().is_pre_token() == pre {
                    descriptors += r.limiter().quotas().len();
                    if descriptors > rls::MAX_DESCRIPTORS_PER_CALL {
                        return Err(ConfigError::new(
                            format!("rate_limits[{i}]"),
                            format!(
                                "global rules could ask more than {} descriptors (one per \
                                 quota) in one call; the rate-limit service refuses more",
                                rls::MAX_DESCRIPTORS_PER_CALL
                            ),
                        ));
                    }
                }
            }
        }
        let token_headers: Vec<&str> = sources.iter().map(TokenSource::header_name).collect();
        let claim_headers = ClaimHeaders::new(&config.claims_to_headers, &token_headers)?;
        Ok(Self {
            keys,
            validation,
            sources,
            policy,
            limits,
            claim_headers,
            seed,
            mode: config.mode,
            forward_token: config.forward_token,
            rls,
            id: GatewayId::next(),
            tokens: RefCell::new(TokenCache::default()),
            fingerprints: RefCell::new(slots::FingerprintMemo::default()),
            key_sets: Cell::new(0),
        })
    }

    /// Creates every rate-limit slot key that does not exist yet, with [`SENTINEL`]; returns
    /// how many it created. Call once per configuration load, before serving.
    ///
    /// After this, no request ever creates a key, so every state write is a real CAS. The
    /// read-then-create here is itself not atomic: two VMs loading at once may both create a
    /// key, which is harmless (both write the sentinel). Only a request admitted by another
    /// VM between this VM's read and create of the same slot could be forgotten — one slot,
    /// once, while VMs start; Envoy configures worker VMs before their listeners accept.
    ///
    /// # Errors
    /// [`StoreError`] when the host refuses a read or write.
    pub fn prepare_store(&self, store: &impl SharedStore) -> Result<usize, StoreError> {
        let mut created = 0;
        for (i, rule) in self.limits.rules().iter().enumerate() {
            if !self.counts_locally(rule) {
                continue;
            }
            for slot in 0..rule.slots() {
                if slots::create_slot(store, &slots::slot_key(&self.seed, i, slot))? {
                    created += 1;
                }
            }
        }
        Ok(created)
    }

    /// Total rate-limit slots over all rules (a gauge for operators).
    #[must_use]
    pub fn rate_limit_slots(&self) -> u64 {
        self.limits
            .rules()
            .iter()
            .filter(|r| self.counts_locally(r))
            .map(|r| u64::from(r.slots()))
            .sum()
    }

    /// Whether `rule` can be counted in shared data: a local rule, or a global one with
    /// `failure_mode: "local"` (its fallback).
    fn counts_locally(&self, rule: &crate::ratelimit::RateLimitRule) -> bool {
        !rule.is_global()
            || self
                .rls
                .as_ref()
                .is_some_and(|r| r.failure_mode() == FailureMode::Local)
    }

    /// The key set changed (a `remote_jwks` refresh or rotation): forget every verified
    /// token, so none outlives the key that verified it.
    pub fn key_set_changed(&self) {
        self.key_sets.set(self.key_sets.get().wrapping_add(1));
        if let Ok(mut cache) = self.tokens.try_borrow_mut() {
            cache.key_set_changed();
        }
    }

    /// `(hits, misses)` of the verified-token cache.
    #[must_use]
    pub fn token_cache_stats(&self) -> (u64, u64) {
        self.tokens.try_borrow().map_or((0, 0), |c| c.stats())
    }

    /// Verifies `token` at `now` (Unix seconds) on `keys` through the verified-token cache.
    pub(super) fn verify_cached(
        &self,
        token: &str,
        keys: &KeySet,
        now: u64,
    ) -> Result<Rc<Claims>, TokenError> {
        match self.tokens.try_borrow_mut() {
            Ok(mut cache) => {
                cache.key_set(self.key_sets.get());
                cache.verify(token, keys, &self.validation, now)
            }
            // Never borrowed across a call; if it were, the full check still decides.
            Err(_) => decode(token, keys, &self.validation, now).map(Rc::new),
        }
    }

    /// Whether a decision can depend on the client address (`source.address`): only through
    /// a rate limit (`ip` keys, and the address fallback of `sub` and `header:` keys). Without
    /// rate limits the shell need not read it (one host call per request saved).
    #[must_use]
    pub fn needs_client_address(&self) -> bool {
        !self.limits.rules().is_empty()
    }

    /// `"enforce"` or `"shadow"`.
    #[must_use]
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The request headers removed from every request (`claims_to_headers` names).
    #[must_use]
    pub fn stripped_headers(&self) -> &[String] {
        self.claim_headers.names()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests;
