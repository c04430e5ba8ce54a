//! The gateway's side of waiting: which keys verify a token, and [`Gateway::tick`],
//! [`Gateway::complete`] and [`Gateway::resume`] (see [`super::decision`]).

use std::cell::RefCell;
use std::sync::atomic::Ordering;

use super::check::Verified;
use super::decision::{Callout, CalloutId, CalloutResult, Decision, Pending, Stage};
use super::jwks::{FetchReport, JwksCache, Refetch};
use super::outcome::{LocalReply, Metric};
use super::store::SharedStore;
use super::Gateway;
use crate::token::{has_key, KeySet, TokenError};

/// Where the verifying keys come from.
#[derive(Debug, Clone)]
pub(super) enum Keys {
    /// `jwks` only: fixed at configuration.
    Inline(KeySet),
    /// `remote_jwks` (plus any inline keys): the VM's cache. Borrowed only inside one
    /// gateway call, never across one, so a borrow can not fail; if it ever did, the request
    /// gets 503 (fail closed).
    Remote(Box<RefCell<JwksCache>>),
}

impl Gateway {
    /// The callouts due at `now_ms` without any request: the first JWKS fetch, the refresh
    /// every `cache_secs`, retries after a failure. Call it from a timer (the shell ticks
    /// every second, and at once after loading the configuration).
    #[must_use]
    pub fn tick(&self, now_ms: u64) -> Vec<Callout> {
        let Keys::Remote(cache) = &self.keys else {
            return Vec::new();
        };
        let Ok(mut cache) = cache.try_borrow_mut() else {
            return Vec::new();
        };
        cache
            .poll(now_ms, || self.next_callout())
            .into_iter()
            .collect()
    }

    /// Hands the result of a callout to the gateway's caches, once per result, before the
    /// requests waiting on it are resumed. Returns what a JWKS fetch did (for the
    /// `keygate.jwks_fetched` / `keygate.jwks_fetch_failed` counters, the `keygate.jwks_keys`
    /// gauge and one log line); `None` for a result it was not waiting for.
    ///
    /// A newly installed key set empties the verified-token cache: every cached token was
    /// verified by a key that may be gone (entries die with their key).
    pub fn complete(&self, result: &CalloutResult, now_ms: u64) -> Option<FetchReport> {
        let Keys::Remote(cache) = &self.keys else {
            return None;
        };
        let report = cache.try_borrow_mut().ok()?.complete(result, now_ms)?;
        if report.ok {
            self.key_set_changed();
        }
        Some(report)
    }

    /// Continues the decision of a request that waited for `result` (after
    /// [`Gateway::complete`]); the same three answers as [`Gateway::check`]. A request waits
    /// at most once for keys: if its key is still unknown, it gets 401 `token_unknown_key`
    /// (or 503 `jwks_unavailable` while no key set was ever loaded).
    ///
    /// A `Pending` another gateway made (the filter was reconfigured while the request was
    /// held), or a `result` for another callout than the one it waits for, is refused with 503
    /// `unavailable` in both modes: its indexes (rules, token sources, limits asked) belong to
    /// another configuration, or the answer to another request.
    pub fn resume<'g>(
        &'g self,
        pending: Pending,
        result: &CalloutResult,
        store: &impl SharedStore,
        now_ms: u64,
    ) -> Decision<'g> {
        if pending.gateway != self.id.0 || pending.callout != result.id {
            return Decision::Reply(internal_failure());
        }
        match pending.stage {
            // The key set was updated by `complete`; the result itself only names the fetch.
            Stage::Keys(held) => self.resume_keys(held, store, now_ms),
            Stage::RlsPre(held) => self.resume_pre(*held, result, store, now_ms),
            Stage::RlsPost(held) => self.resume_post(*held, result, store, now_ms),
        }
    }

    /// Whether keys are fetched (`remote_jwks`), so the shell must tick.
    #[must_use]
    pub fn has_remote_jwks(&self) -> bool {
        matches!(self.keys, Keys::Remote(_))
    }

    /// Fetched keys in use (`keygate.jwks_keys`); `None` without `remote_jwks`.
    #[must_use]
    pub fn jwks_keys(&self) -> Option<usize> {
        match &self.keys {
            Keys::Remote(c) => c.try_borrow().ok().map(|c| c.fetched_keys()),
            Keys::Inline(_) => None,
        }
    }

    pub(super) fn next_callout(&self) -> CalloutId {
        CalloutId(
            super::CALLOUTS
                .fetch_add(1, Ordering::Relaxed)
                .wrapping_add(1),
        )
    }

    /// A [`Pending`] of this gateway: `stage` waits for callout `callout`.
    pub(super) fn pending(&self, callout: CalloutId, stage: Stage) -> Pending {
        Pending {
            gateway: self.id.0,
            callout,
            stage,
        }
    }

    /// Verifies `token` at `now_ms`. With fetched keys, a token whose key is not loaded
    /// (its `kid`, or without `kid` its algorithm, matches no key) waits for a refetch when
    /// `may_wait` and the refetch floor allows; a public route never waits (an invalid token
    /// is ignored there anyway).
    pub(super) fn verify(
        &self,
        token: &str,
        public: bool,
        now_ms: u64,
        may_wait: bool,
    ) -> Verified {
        let now = now_ms / 1000;
        let cache = match &self.keys {
            Keys::Inline(keys) => return Verified::Done(self.verify_cached(token, keys, now)),
            Keys::Remote(cache) => cache,
        };
        let Ok(mut cache) = cache.try_borrow_mut() else {
            return Verified::Unavailable;
        };
        // The common case costs what inline keys cost: one decode, or a verified-token cache
        // hit (the cache holds only tokens verified on the key set installed now).
        let first = cache
            .keys()
            .map(|keys| self.verify_cached(token, keys, now));
        match first {
            Some(Err(TokenError::UnknownKey | TokenError::AlgorithmNotAllowed)) | None => {}
            Some(done) => return Verified::Done(done),
        }
        match has_key(token, cache.keys(), &self.validation) {
            Err(e) => return Verified::Done(Err(e)),
            Ok(true) => return Verified::Done(first.unwrap_or(Err(TokenError::UnknownKey))),
            Ok(false) => {}
        }
        let unknown = || Verified::Done(Err(TokenError::UnknownKey));
        if public {
            return unknown();
        }
        let refetch = if may_wait {
            cache.refetch(now_ms, || self.next_callout())
        } else {
            Refetch::TooSoon
        };
        match refetch {
            Refetch::Wait(callout) => Verified::Wait(callout),
            Refetch::Busy => Verified::Unavailable,
            Refetch::TooSoon if cache.is_loaded() => unknown(),
            Refetch::TooSoon => Verified::Unavailable,
        }
    }
}

/// 503 `unavailable`: the gateway cannot go on with this request (the body the filter sends
/// for its own internal failures). Refused in both modes: nothing was decided to pass on.
pub(super) fn internal_failure() -> LocalReply {
    LocalReply::new(
        503,
        "unavailable",
        "the authentication filter could not process the request",
        Metric::Unavailable,
        vec![("retry-after", "1".to_owned())],
    )
}
