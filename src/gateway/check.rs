//! The per-request decision ([`Gateway::check`]).

use super::config::Mode;
use super::outcome::{
    loggable_request, www_authenticate, Forward, LocalReply, Metric, Outcome, ShadowRefusal,
    StripToken,
};
use super::request::HttpRequest;
use super::slots::{check_slot, SlotCheck};
use super::store::SharedStore;
use super::token_source::{cookie_header_without, presented, Presented, TokenSource};
use super::Gateway;
use crate::policy::{Decision, DenyReason, Principal, RouteDecision};
use crate::ratelimit::{KeySource, RateDecision, RateLimitError, RateLimitRule};
use crate::token::{Claims, TokenError};

use crate::ErrorCode;

/// `RateLimit-Policy` / `RateLimit` values of the limits a request passed.
#[derive(Default)]
struct Passed {
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

/// A refusal and what refused it (`rules[2]`, `rate_limits[0]`, …) for the shadow log.
struct Refusal {
    reply: LocalReply,
    rule: String,
}

impl Gateway {
    /// Decides one request at `now_ms` (Unix milliseconds), reading and updating rate-limit
    /// state in `store`. Never panics; see the module docs for the order of checks.
    ///
    /// In `"shadow"` mode the same decision is made (rate-limit state is updated exactly as
    /// in `"enforce"` mode), but a refusal comes back as [`Outcome::Continue`] carrying it in
    /// [`Forward::shadow_refusal`], with only the claim headers changed.
    pub fn check<'g>(
        &'g self,
        request: &impl HttpRequest,
        store: &impl SharedStore,
        now_ms: u64,
    ) -> Outcome<'g> {
        let mut passed = Passed::default();
        let mut claims = None;
        let mut found = Presented::Absent;
        let decided = self.decide(request, store, now_ms, &mut passed, &mut claims, &mut found);
        let set_request_headers = claims
            .as_ref()
            .map(|c| self.claim_headers.values(c))
            .unwrap_or_default();
        let forward = |shadow_refusal, metric| Forward {
            remove_request_headers: self.claim_headers.names(),
            set_request_headers,
            response_headers: Vec::new(),
            strip_token: None,
            shadow_refusal,
            metric,
        };
        match (decided, self.mode) {
            (Err(r), Mode::Enforce) => Outcome::Reply(r.reply),
            (Err(r), Mode::Shadow) => {
                let refusal = ShadowRefusal {
                    status: r.reply.status,
                    code: r.reply.code,
                    rule: r.rule,
                    request: loggable_request(request.method(), request.path()),
                };
                Outcome::Continue(forward(Some(refusal), r.reply.metric.shadow()))
            }
            (Ok(()), Mode::Shadow) => Outcome::Continue(forward(None, Metric::ShadowAllowed)),
            (Ok(()), Mode::Enforce) => {
                let mut f = forward(None, Metric::Allowed);
                f.response_headers = passed.headers();
                f.strip_token = self.strip_token(request, &found);
                Outcome::Continue(f)
            }
        }
    }

    /// The decision itself; fills in the limits passed, the verified claims and what the
    /// token sources held, as far as it got.
    fn decide(
        &self,
        request: &impl HttpRequest,
        store: &impl SharedStore,
        now_ms: u64,
        passed: &mut Passed,
        claims: &mut Option<Claims>,
        found: &mut Presented,
    ) -> Result<(), Refusal> {
        let (method, path) = (request.method(), request.path());
        let client = request.remote_address();

        for (i, rule) in self.limits.matching(method, path) {
            if rule.key_source().is_pre_token() {
                let header = rule
                    .key_source()
                    .header_name()
                    .and_then(|h| request.header(h));
                let key = rule.key_source().key(client, None, header);
                self.limit(i, rule, &key, store, now_ms, passed)
                    .map_err(|reply| Refusal {
                        reply,
                        rule: format!("rate_limits[{i}]"),
                    })?;
            }
        }

        let route = self.policy.requirement(method, path);
        let rule = match route {
            RouteDecision::Rule { index, .. } => format!("rules[{index}]"),
            RouteDecision::NoMatch => "no rule".to_owned(),
            RouteDecision::PathNotNormalized => "path not normalized".to_owned(),
        };
        let refuse = |reply| Refusal {
            reply,
            rule: rule.clone(),
        };
        // Which sources hold a token is cheap to know (no decoding) and decides whether a
        // refusal names an RFC 6750 `error` at all.
        *found = presented(&self.sources, request, self.validation.max_token_len);
        let RouteDecision::Rule { .. } = route else {
            // No token work for requests refused whoever sends them.
            return match self.policy.authorize(&route, None) {
                Decision::Forbidden(reason) => Err(refuse(forbidden(&reason, !found.is_absent()))),
                _ => Err(refuse(forbidden(
                    &DenyReason::NoRuleMatches,
                    !found.is_absent(),
                ))),
            };
        };
        let mut token_error = None;
        if let Presented::One { token, .. } = &*found {
            match token
                .clone()
                .and_then(|t| self.verify_token(&t, now_ms / 1000))
            {
                Ok(c) => *claims = Some(c),
                Err(e) => token_error = Some(e),
            }
        }

        // Every request that reached the token step counts against the `sub` limits: by its
        // verified `sub`, otherwise by address — anonymous requests, and also invalid or
        // duplicated tokens, so a flood of bad signatures is metered too.
        let sub = claims.as_ref().map(|c| c.sub.as_str());
        for (i, limit) in self.limits.matching(method, path) {
            if !limit.key_source().is_pre_token() {
                let key = KeySource::Sub.key(client, sub, None);
                self.limit(i, limit, &key, store, now_ms, passed)
                    .map_err(|reply| Refusal {
                        reply,
                        rule: format!("rate_limits[{i}]"),
                    })?;
            }
        }

        if matches!(found, Presented::Several) {
            return Err(refuse(invalid_request()));
        }
        let principal = claims.as_ref().map(|c| Principal {
            sub: c.sub.clone(),
            roles: c.roles.clone(),
            permissions: c.permissions.clone(),
        });
        match self.policy.authorize(&route, principal.as_ref()) {
            Decision::Allow => Ok(()),
            Decision::Unauthenticated(reason) => Err(refuse(match &token_error {
                Some(e) => token_refused(e),
                None => token_missing(&reason),
            })),
            Decision::Forbidden(reason) => Err(refuse(forbidden(&reason, true))),
        }
    }

    /// `forward_token: false`: how to take the one token found out of the request.
    fn strip_token<'g>(
        &'g self,
        request: &impl HttpRequest,
        found: &Presented,
    ) -> Option<StripToken<'g>> {
        if self.forward_token {
            return None;
        }
        let Presented::One { source, .. } = found else {
            return None;
        };
        Some(match self.sources.get(*source)? {
            TokenSource::Header { name, .. } => StripToken::Header(name),
            TokenSource::Cookie { name } => {
                StripToken::Cookie(cookie_header_without(request, name))
            }
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

/// 403; RFC 6750 §3.1: a request without credentials gets no `error` attribute.
fn forbidden(reason: &DenyReason, credentials: bool) -> LocalReply {
    let message = reason.to_string();
    let error = credentials.then_some(("insufficient_scope", message.as_str()));
    LocalReply::new(
        403,
        "forbidden",
        &message,
        Metric::Denied403,
        vec![("www-authenticate", www_authenticate(error))],
    )
}

/// 400 `invalid_request` (RFC 6750 §3.1: "uses more than one method for including an
/// access token"): a token in more than one place.
fn invalid_request() -> LocalReply {
    let message =
        "the request carries a token more than once (a repeated header or cookie, or several sources)";
    LocalReply::new(
        400,
        "invalid_request",
        message,
        Metric::Denied400,
        vec![(
            "www-authenticate",
            www_authenticate(Some(("invalid_request", message))),
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
