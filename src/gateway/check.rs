//! The per-request decision ([`Gateway::check`]).

use super::decision::{Decision, Held, Pending, Stage};
use super::outcome::{www_authenticate, Forward, LocalReply, Metric};
use super::request::HttpRequest;
use super::slots::{check_slot, SlotCheck};
use super::store::SharedStore;
use super::Gateway;
use crate::policy::{Decision as Access, DenyReason, Principal, RouteDecision};
use crate::ratelimit::{KeySource, RateDecision, RateLimitError, RateLimitRule};
use crate::token::{Claims, TokenError};
use crate::ErrorCode;

/// `RateLimit-Policy` / `RateLimit` values of the limits a request passed.
#[derive(Debug, Default)]
pub(super) struct Passed {
    policies: Vec<String>,
    states: Vec<String>,
}

impl Passed {
    fn headers(self) -> Vec<(&'static str, String)> {
        if self.policies.is_empty() {
            return Vec::new();
        }
        vec![
            ("ratelimit-policy", self.policies.join(", ")),
            ("ratelimit", self.states.join(", ")),
        ]
    }
}

/// The request as the decision after the token step needs it.
pub(super) struct Seen<'r> {
    pub method: &'r str,
    pub path: &'r str,
    pub client: Option<&'r str>,
}

/// A token checked against the keys, or why the decision must wait or cannot be made.
pub(super) enum Verified {
    Done(Result<Claims, TokenError>),
    Wait(super::decision::Callout),
    Unavailable,
}

impl Gateway {
    /// Decides one request at `now_ms` (Unix milliseconds), reading and updating rate-limit
    /// state in `store`. Never panics; see the module docs for the order of checks. With
    /// `remote_jwks`, a token whose key is not loaded yet may make the answer
    /// [`Decision::Wait`] (see [`super::decision`]).
    pub fn check<'g>(
        &'g self,
        request: &impl HttpRequest,
        store: &impl SharedStore,
        now_ms: u64,
    ) -> Decision<'g> {
        let (method, path) = (request.method(), request.path());
        let client = request.remote_address();
        let mut passed = Passed::default();

        for (i, rule) in self.limits.matching(method, path) {
            if rule.key_source().is_pre_token() {
                let header = rule
                    .key_source()
                    .header_name()
                    .and_then(|h| request.header(h));
                let key = rule.key_source().key(client, None, header.as_deref());
                if let Err(reply) = self.limit(i, rule, &key, store, now_ms, &mut passed) {
                    return Decision::Reply(reply);
                }
            }
        }

        let route = self.policy.requirement(method, path);
        // No token work for requests refused whoever sends them.
        let token = match route {
            RouteDecision::Rule { .. } => {
                let max = self.validation.max_token_len;
                self.sources.iter().find_map(|s| s.extract(request, max))
            }
            RouteDecision::NoMatch | RouteDecision::PathNotNormalized => None,
        };
        let seen = Seen {
            method,
            path,
            client,
        };
        self.decide(&seen, &route, token, passed, store, now_ms, true)
    }

    /// Everything after the pre-token limits: token → requirement → `sub` limits → continue.
    /// `may_wait` is false when resuming after a refetch: the keys are what they are now.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn decide<'g>(
        &'g self,
        seen: &Seen<'_>,
        route: &RouteDecision<'g>,
        token: Option<Result<String, TokenError>>,
        mut passed: Passed,
        store: &impl SharedStore,
        now_ms: u64,
        may_wait: bool,
    ) -> Decision<'g> {
        let verified = match token {
            None => None,
            Some(Err(e)) => Some(Err(e)),
            Some(Ok(t)) => match self.verify(&t, route.is_public(), now_ms, may_wait) {
                Verified::Done(r) => Some(r),
                Verified::Unavailable => return Decision::Reply(jwks_unavailable()),
                Verified::Wait(callout) => {
                    let pending = Pending {
                        callout: callout.id,
                        stage: Stage::Keys(Held {
                            method: seen.method.to_owned(),
                            path: seen.path.to_owned(),
                            client: seen.client.map(str::to_owned),
                            token: t,
                            passed,
                        }),
                    };
                    return Decision::Wait(callout, pending);
                }
            },
        };
        let claims = verified.as_ref().and_then(|v| v.as_ref().ok());
        let principal = claims.map(|c| Principal {
            sub: c.sub.clone(),
            roles: c.roles.clone(),
            permissions: c.permissions.clone(),
        });
        match self.policy.authorize(route, principal.as_ref()) {
            Access::Allow => {}
            Access::Unauthenticated(reason) => {
                return Decision::Reply(match verified {
                    Some(Err(e)) => token_refused(&e),
                    _ => token_missing(&reason),
                })
            }
            Access::Forbidden(reason) => return Decision::Reply(forbidden(&reason)),
        }

        let sub = principal.as_ref().map(|p| p.sub.as_str());
        for (i, rule) in self.limits.matching(seen.method, seen.path) {
            if !rule.key_source().is_pre_token() {
                let key = KeySource::Sub.key(seen.client, sub, None);
                if let Err(reply) = self.limit(i, rule, &key, store, now_ms, &mut passed) {
                    return Decision::Reply(reply);
                }
            }
        }

        Decision::Continue(Forward {
            remove_request_headers: self.claim_headers.names(),
            set_request_headers: claims
                .map(|c| self.claim_headers.values(c))
                .unwrap_or_default(),
            response_headers: passed.headers(),
        })
    }

    /// One rate-limit rule; `Err` is the 429 to send.
    fn limit(
        &self,
        index: usize,
        rule: &RateLimitRule,
        key: &str,
        store: &impl SharedStore,
        now_ms: u64,
        passed: &mut Passed,
    ) -> Result<(), LocalReply> {
        match check_slot(&self.seed, index, rule, key, store, now_ms) {
            SlotCheck::Admitted(d) => {
                passed.policies.push(rule.limiter().policy_header());
                passed.states.push(d.ratelimit_header());
                Ok(())
            }
            SlotCheck::Refused(d) => Err(rate_limited(rule, Some(&d))),
            SlotCheck::Unavailable => Err(rate_limited(rule, None)),
        }
    }
}

/// 503 while no key set could be loaded: never a pass-through, never a 401 that blames the
/// client for the issuer's outage.
fn jwks_unavailable() -> LocalReply {
    LocalReply::new(
        503,
        "jwks_unavailable",
        "the keys that verify tokens could not be loaded yet; retry shortly",
        Metric::JwksUnavailable,
        vec![("retry-after", "1".to_owned())],
    )
}

fn token_missing(reason: &DenyReason) -> LocalReply {
    LocalReply::new(
        401,
        reason.code(),
        &reason.to_string(),
        Metric::Denied401,
        vec![("www-authenticate", www_authenticate(None))],
    )
}

fn token_refused(e: &TokenError) -> LocalReply {
    let message = e.to_string();
    LocalReply::new(
        401,
        e.code(),
        &message,
        Metric::Denied401,
        vec![(
            "www-authenticate",
            www_authenticate(Some(("invalid_token", &message))),
        )],
    )
}

fn forbidden(reason: &DenyReason) -> LocalReply {
    let message = reason.to_string();
    LocalReply::new(
        403,
        "forbidden",
        &message,
        Metric::Denied403,
        vec![(
            "www-authenticate",
            www_authenticate(Some(("insufficient_scope", &message))),
        )],
    )
}

/// 429 for `rule`; without a decision (store failure, CAS exhausted) retry after 1 s.
fn rate_limited(rule: &RateLimitRule, decision: Option<&RateDecision>) -> LocalReply {
    let retry_after_secs = decision
        .and_then(RateDecision::retry_after_secs)
        .unwrap_or(1);
    let mut headers = vec![
        ("retry-after", retry_after_secs.to_string()),
        ("ratelimit-policy", rule.limiter().policy_header()),
    ];
    if let Some(d) = decision {
        headers.push(("ratelimit", d.ratelimit_header()));
    }
    let e = RateLimitError::Limited { retry_after_secs };
    LocalReply::new(429, e.code(), &e.to_string(), Metric::RateLimited, headers)
}
