//! The per-request decision ([`Gateway::check`]) and its second half after a wait for keys
//! ([`Gateway::resume`] goes on through [`Gateway::resume_keys`]).

use super::config::Mode;
use super::decision::{Callout, Decision, Held, Stage};
use super::outcome::{
    loggable_request, www_authenticate, Forward, LocalReply, Metric, ShadowRefusal, StripToken,
};
use super::request::HttpRequest;
use super::slots::{check_slot, check_slot_of, SlotCheck};
use super::store::SharedStore;
use super::token_source::{cookie_header_without, presented, Presented, TokenSource};
use super::Gateway;
use crate::policy::{Decision as Access, DenyReason, RequestPath, RouteDecision};
use crate::ratelimit::{KeySource, RateDecision, RateLimitError, RateLimitRule, RateLimits};
use crate::token::{Claims, TokenError};
use std::rc::Rc;

use crate::ErrorCode;

/// `RateLimit-Policy` / `RateLimit` values of the limits a request passed.
#[derive(Debug, Default)]
pub(super) struct Passed {
    pub(super) policies: Vec<PolicyText>,
    pub(super) states: Vec<String>,
    /// Headers a rate-limit service asked to add (`response_headers_to_add`).
    pub(super) service_headers: Vec<(String, String)>,
}

/// One `RateLimit-Policy` item: a local rule's (by index, borrowed from its limiter when
/// the header is written: no copy per request) or one a rate-limit service's answer gave.
#[derive(Debug)]
pub(super) enum PolicyText {
    Rule(usize),
    Text(String),
}

impl Passed {
    fn headers(self, limits: &RateLimits) -> Vec<(&'static str, String)> {
        if self.policies.is_empty() {
            return Vec::new();
        }
        let mut policy = String::new();
        for item in &self.policies {
            let text = match item {
                PolicyText::Rule(i) => limits.rules().get(*i).map(|r| r.limiter().policy_text()),
                PolicyText::Text(t) => Some(std::borrow::Cow::Borrowed(t.as_str())),
            };
            if let Some(text) = text {
                if !policy.is_empty() {
                    policy.push_str(", ");
                }
                policy.push_str(&text);
            }
        }
        let mut headers = Vec::with_capacity(2);
        headers.push(("ratelimit-policy", policy));
        // A service that stated no remaining count or reset gives no `RateLimit` item. One
        // item (one limit passed: the common case) is moved, not copied by `join`.
        let mut states = self.states;
        if states.len() == 1 {
            headers.extend(states.pop().map(|state| ("ratelimit", state)));
        } else if !states.is_empty() {
            headers.push(("ratelimit", states.join(", ")));
        }
        headers
    }
}

/// A refusal and what refused it (`rules[2]`, `rate_limits[0]`, …) for the shadow log.
pub(super) struct Refusal {
    pub(super) reply: LocalReply,
    pub(super) rule: String,
}

/// The request as the decision after the pre-token limits needs it (what a wait keeps).
pub(super) struct Seen<'r> {
    pub(super) method: &'r str,
    pub(super) path: &'r str,
    pub(super) client: Option<&'r str>,
    /// `path` checked for normalization once, for the rule and every rate limit (`None`:
    /// not normalized, matched by no rule and no limit).
    pub(super) route_path: Option<RequestPath<'r>>,
}

impl<'r> Seen<'r> {
    pub(super) fn new(method: &'r str, path: &'r str, client: Option<&'r str>) -> Self {
        Self {
            method,
            path,
            client,
            route_path: RequestPath::new(path),
        }
    }
}

/// A token checked against the keys, or why the decision must wait or cannot be made.
pub(super) enum Verified {
    Done(Result<Rc<Claims>, TokenError>),
    Wait(Callout),
    Unavailable,
}

/// How the decision after the pre-token limits ended.
pub(super) enum Step {
    /// Decided: continue (`Ok`) or the refusal.
    Done(Result<(), Refusal>),
    /// The global `sub` limits wait for the rate-limit service (see [`super::global`]).
    Rls {
        callout: Callout,
        asked: Vec<super::rls::Asked>,
        token_error: Option<TokenError>,
    },
    /// The one token presented (by source `source`) waits for a refetch of the key set.
    Wait {
        callout: Callout,
        source: usize,
        token: String,
    },
}

impl Gateway {
    /// Decides one request at `now_ms` (Unix milliseconds), reading and updating rate-limit
    /// state in `store`. Never panics; see the module docs for the order of checks. With
    /// `remote_jwks`, a token whose key is not loaded yet may make the answer
    /// [`Decision::Wait`] (see [`super::decision`]).
    ///
    /// In `"shadow"` mode the same decision is made (rate-limit state is updated exactly as
    /// in `"enforce"` mode), but a refusal comes back as [`Decision::Continue`] carrying it in
    /// [`Forward::shadow_refusal`], with only the claim headers changed.
    pub fn check<'g>(
        &'g self,
        request: &impl HttpRequest,
        store: &impl SharedStore,
        now_ms: u64,
    ) -> Decision<'g> {
        let seen = Seen::new(request.method(), request.path(), request.remote_address());
        let mut passed = Passed::default();
        let mut claims = None;
        let mut found = Presented::Absent;
        let step = match self.pre_token_limits(request, &seen, store, now_ms, &mut passed) {
            Err(refusal) => {
                if self.mode == Mode::Shadow {
                    // The request goes upstream: its token still sets the claim headers
                    // (and `forward_token: false` still takes it out).
                    found = presented(&self.sources, request, self.validation.max_token_len);
                    claims = self.shadow_claims(&found, now_ms);
                }
                Step::Done(Err(refusal))
            }
            Ok(()) => {
                // Which sources hold a token is cheap to know (no decoding) and decides
                // whether a refusal names an RFC 6750 `error` at all.
                found = presented(&self.sources, request, self.validation.max_token_len);
                if let Some(wait) = self.ask_pre_token(request, &seen, &found, &mut passed) {
                    return wait;
                }
                self.decide(&seen, &found, store, now_ms, &mut passed, &mut claims, true)
            }
        };
        match step {
            Step::Done(decided) => {
                self.finish(decided, &seen, passed, claims.as_deref(), || match &found {
                    Presented::One { source, .. } => {
                        self.strip_token(*source, |name| cookie_header_without(request, name))
                    }
                    Presented::Several => self.strip_every(self.cookie_rest_of(&found, request)),
                    Presented::Absent => None,
                })
            }
            Step::Wait {
                callout,
                source,
                token,
            } => {
                // The request is not at hand after the wait: what `forward_token: false` will
                // need from its `Cookie` lines is taken now.
                let cookie_rest = match self.sources.get(source) {
                    Some(TokenSource::Cookie { name }) if !self.forward_token => {
                        cookie_header_without(request, name)
                    }
                    _ => None,
                };
                self.hold(callout, &seen, source, token, cookie_rest, passed)
            }
            Step::Rls {
                callout,
                asked,
                token_error,
            } => {
                let cookie_rest = self.cookie_rest_of(&found, request);
                self.hold_post_token(
                    callout,
                    asked,
                    token_error,
                    &seen,
                    &found,
                    claims,
                    cookie_rest,
                    passed,
                )
            }
        }
    }

    /// Goes on with a request that waited for the key set (see [`Gateway::resume`]): verify
    /// its token on the keys loaded now (it waits no second time), then the rest of the same
    /// decision — `sub` limits, requirement, `forward_token`, shadow mode — as
    /// [`Gateway::check`] would have made it.
    pub(super) fn resume_keys<'g>(
        &'g self,
        held: Held,
        store: &impl SharedStore,
        now_ms: u64,
    ) -> Decision<'g> {
        let Held {
            method,
            path,
            client,
            token,
            source,
            cookie_rest,
            mut passed,
        } = held;
        let seen = Seen::new(&method, &path, client.as_deref());
        let found = Presented::One {
            source,
            token: Ok(token),
        };
        let mut claims = None;
        match self.decide(
            &seen,
            &found,
            store,
            now_ms,
            &mut passed,
            &mut claims,
            false,
        ) {
            Step::Done(decided) => self.finish(decided, &seen, passed, claims.as_deref(), || {
                self.strip_token(source, |_| cookie_rest)
            }),
            Step::Wait {
                callout,
                source,
                token,
            } => self.hold(callout, &seen, source, token, cookie_rest, passed),
            Step::Rls {
                callout,
                asked,
                token_error,
            } => self.hold_post_token(
                callout,
                asked,
                token_error,
                &seen,
                &found,
                claims,
                cookie_rest,
                passed,
            ),
        }
    }

    /// [`Decision::Wait`]: everything the rest of the decision needs, kept with the callout.
    fn hold<'g>(
        &'g self,
        callout: Callout,
        seen: &Seen<'_>,
        source: usize,
        token: String,
        cookie_rest: Option<Vec<u8>>,
        passed: Passed,
    ) -> Decision<'g> {
        let pending = self.pending(
            callout.id,
            Stage::Keys(Held {
                method: seen.method.to_owned(),
                path: seen.path.to_owned(),
                client: seen.client.map(str::to_owned),
                token,
                source,
                cookie_rest,
                passed,
            }),
        );
        Decision::Wait(callout, pending)
    }

    /// The answer for a decision made: in `"enforce"` mode the refusal, or continue with the
    /// claim headers, the RateLimit headers and the token stripped (`forward_token: false`);
    /// in `"shadow"` mode always continue, with only the claim headers changed, carrying the
    /// refusal to log.
    pub(super) fn finish<'g>(
        &'g self,
        decided: Result<(), Refusal>,
        seen: &Seen<'_>,
        mut passed: Passed,
        claims: Option<&Claims>,
        strip_token: impl FnOnce() -> Option<StripToken<'g>>,
    ) -> Decision<'g> {
        let set_request_headers = claims
            .map(|c| self.claim_headers.values(c))
            .unwrap_or_default();
        let forward = |shadow_refusal, metric| Forward {
            remove_request_headers: self.claim_headers.names(),
            set_request_headers,
            response_headers: Vec::new(),
            service_headers: Vec::new(),
            strip_token: None,
            shadow_refusal,
            metric,
        };
        match (decided, self.mode) {
            (Err(r), Mode::Enforce) => Decision::Reply(r.reply),
            (Err(r), Mode::Shadow) => {
                let refusal = ShadowRefusal {
                    status: r.reply.status,
                    code: r.reply.code,
                    rule: r.rule,
                    request: loggable_request(seen.method, seen.path),
                };
                // `forward_token: false` is about what the upstream may see, not a refusal:
                // shadow mode keeps it, or a rollout would leak tokens the operator kept back.
                let mut f = forward(Some(refusal), r.reply.metric.shadow());
                f.strip_token = strip_token();
                Decision::Continue(f)
            }
            (Ok(()), Mode::Shadow) => {
                let mut f = forward(None, Metric::ShadowAllowed);
                f.strip_token = strip_token();
                Decision::Continue(f)
            }
            (Ok(()), Mode::Enforce) => {
                let mut f = forward(None, Metric::Allowed);
                f.service_headers = std::mem::take(&mut passed.service_headers);
                f.response_headers = passed.headers(&self.limits);
                f.strip_token = strip_token();
                Decision::Continue(f)
            }
        }
    }

    /// Shadow mode, a request refused before its token was looked at (by an `ip`/`header:`
    /// limit, local or global, or by no rule matching): the claims of its one valid token, so
    /// that it goes upstream with the claim headers enforce mode would set once the refusal is
    /// gone. Only a verification on the keys loaded now: no wait for a refetch, no `sub`
    /// limit metered, no callout — nothing enforce mode would not do for a refused request
    /// (the refusal already made is the one logged and counted). `None` in enforce mode.
    pub(super) fn shadow_claims(&self, found: &Presented, now_ms: u64) -> Option<Rc<Claims>> {
        if self.mode != Mode::Shadow {
            return None;
        }
        let Presented::One { token: Ok(t), .. } = found else {
            return None;
        };
        // As on a public route: never waits, an invalid token only sets nothing.
        match self.verify(t, true, now_ms, false) {
            Verified::Done(Ok(c)) => Some(c),
            Verified::Done(Err(_)) | Verified::Wait(_) | Verified::Unavailable => None,
        }
    }

    /// Step 1: the `ip`/`header:` limits, before any token work.
    pub(super) fn pre_token_limits(
        &self,
        request: &impl HttpRequest,
        seen: &Seen<'_>,
        store: &impl SharedStore,
        now_ms: u64,
        passed: &mut Passed,
    ) -> Result<(), Refusal> {
        for (i, rule) in self.limits.matching_path(seen.method, seen.route_path) {
            if rule.key_source().is_pre_token() && !rule.is_global() {
                let header = rule
                    .key_source()
                    .header_name()
                    .and_then(|h| request.header(h));
                let key = rule.key_source().key(seen.client, None, header);
                self.limit(i, rule, &key, store, now_ms, passed)
                    .map_err(|reply| Refusal {
                        reply,
                        rule: format!("rate_limits[{i}]"),
                    })?;
            }
        }
        Ok(())
    }

    /// Steps 2–5: the rule, the token (which may wait for keys when `may_wait`; not when
    /// resuming: the keys are what they are now), the `sub` limits, the requirement. Fills
    /// in the limits passed and the verified claims as far as it got.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn decide(
        &self,
        seen: &Seen<'_>,
        found: &Presented,
        store: &impl SharedStore,
        now_ms: u64,
        passed: &mut Passed,
        claims: &mut Option<Rc<Claims>>,
        may_wait: bool,
    ) -> Step {
        let route = self.policy.requirement_at(seen.method, seen.route_path);
        let refuse = |reply| {
            Step::Done(Err(Refusal {
                reply,
                rule: rule_name(&route),
            }))
        };
        if let RouteDecision::NoMatch | RouteDecision::PathNotNormalized = route {
            // No token work for requests refused whoever sends them (but for the claim
            // headers of one that shadow mode sends upstream anyway).
            *claims = self.shadow_claims(found, now_ms);
            return match self.policy.authorize(&route, None) {
                Access::Forbidden(reason) => refuse(forbidden(&reason, !found.is_absent())),
                _ => refuse(forbidden(&DenyReason::NoRuleMatches, !found.is_absent())),
            };
        }
        let mut token_error = None;
        if let Presented::One { source, token } = found {
            match token {
                Err(e) => token_error = Some(e.clone()),
                Ok(t) => match self.verify(t, route.is_public(), now_ms, may_wait) {
                    Verified::Done(Ok(c)) => *claims = Some(c),
                    Verified::Done(Err(e)) => token_error = Some(e),
                    // The issuer's outage is not the client's: refused before any metering.
                    Verified::Unavailable => return refuse(jwks_unavailable()),
                    Verified::Wait(callout) => {
                        return Step::Wait {
                            callout,
                            source: *source,
                            token: t.clone(),
                        }
                    }
                },
            }
        }

        // Every request that reached the token step counts against the `sub` limits: by its
        // verified `sub`, otherwise by address — anonymous requests, and also invalid or
        // duplicated tokens, so a flood of bad signatures is metered too.
        let sub = claims.as_deref().map(|c| c.sub.as_str());
        for (i, limit) in self.limits.matching_path(seen.method, seen.route_path) {
            if !limit.key_source().is_pre_token() && !limit.is_global() {
                let key = KeySource::Sub.key(seen.client, sub, None);
                if let Err(reply) = self.limit(i, limit, &key, store, now_ms, passed) {
                    return Step::Done(Err(Refusal {
                        reply,
                        rule: format!("rate_limits[{i}]"),
                    }));
                }
            }
        }

        if let Some((callout, asked)) = self.ask_post_token(seen, sub) {
            return Step::Rls {
                callout,
                asked,
                token_error,
            };
        }
        self.authorize_after_limits(
            &route,
            matches!(found, Presented::Several),
            claims.as_deref(),
            token_error.as_ref(),
        )
    }

    /// Step 5 (after every limit): a duplicated token, then the rule's requirement.
    pub(super) fn authorize_after_limits(
        &self,
        route: &RouteDecision,
        several: bool,
        claims: Option<&Claims>,
        token_error: Option<&TokenError>,
    ) -> Step {
        let refuse = |reply| {
            Step::Done(Err(Refusal {
                reply,
                rule: rule_name(route),
            }))
        };
        if several {
            return refuse(invalid_request());
        }
        let principal = claims.map(|c| (c.roles.as_slice(), c.permissions.as_slice()));
        match self.policy.authorize_grants(route, principal) {
            Access::Allow => Step::Done(Ok(())),
            Access::Unauthenticated(reason) => refuse(match token_error {
                Some(e) => token_refused(e),
                None => token_missing(&reason),
            }),
            Access::Forbidden(reason) => refuse(forbidden(&reason, true)),
        }
    }

    /// `forward_token: false`: how to take the one token found (by source `source`) out of
    /// the request; `cookie` gives the `Cookie` header without the token cookie `name`.
    pub(super) fn strip_token<'g>(
        &'g self,
        source: usize,
        cookie: impl FnOnce(&str) -> Option<Vec<u8>>,
    ) -> Option<StripToken<'g>> {
        if self.forward_token {
            return None;
        }
        Some(match self.sources.get(source)? {
            TokenSource::Header { name, .. } => StripToken::Header(name),
            TokenSource::Cookie { name } => StripToken::Cookie(cookie(name)),
        })
    }

    /// `forward_token: false` and a token found more than once (only shadow mode forwards
    /// such a request): every source taken out; `cookie_rest` is the `Cookie` header without
    /// any token cookie ([`Gateway::cookie_rest_of`]).
    pub(super) fn strip_every<'g>(
        &'g self,
        cookie_rest: Option<Vec<u8>>,
    ) -> Option<StripToken<'g>> {
        if self.forward_token {
            return None;
        }
        let mut every: Vec<StripToken<'g>> = self
            .sources
            .iter()
            .filter_map(|s| match s {
                TokenSource::Header { name, .. } => Some(StripToken::Header(name)),
                TokenSource::Cookie { .. } => None,
            })
            .collect();
        if self
            .sources
            .iter()
            .any(|s| matches!(s, TokenSource::Cookie { .. }))
        {
            every.push(StripToken::Cookie(cookie_rest));
        }
        Some(StripToken::Every(every))
    }

    /// One rate-limit rule; `Err` is the 429 to send.
    pub(super) fn limit(
        &self,
        index: usize,
        rule: &RateLimitRule,
        key: &str,
        store: &impl SharedStore,
        now_ms: u64,
        passed: &mut Passed,
    ) -> Result<(), LocalReply> {
        // Addresses and subjects through the memo; a `header:` value (which may be a client's
        // secret, such as an API key) is never kept: hashed each time.
        let memo = (!key.starts_with("hdr:"))
            .then(|| self.fingerprints.try_borrow_mut().ok())
            .flatten();
        let checked = match memo {
            Some(mut memo) => {
                let fp = memo.fingerprint(&self.seed, index, key);
                drop(memo);
                check_slot_of(&self.seed, index, rule, fp, store, now_ms)
            }
            None => check_slot(&self.seed, index, rule, key, store, now_ms),
        };
        match checked {
            SlotCheck::Admitted(d) => {
                passed.policies.push(PolicyText::Rule(index));
                passed.states.push(d.ratelimit_header());
                Ok(())
            }
            SlotCheck::Refused(d) => Err(rate_limited(rule, Some(&d))),
            SlotCheck::Unavailable => Err(rate_limited(rule, None)),
        }
    }
}

/// What refused a request, for the shadow log (`rules[2]`, …): formatted only on a refusal.
fn rule_name(route: &RouteDecision<'_>) -> String {
    match route {
        RouteDecision::Rule { index, .. } => format!("rules[{index}]"),
        RouteDecision::BothSpellings { index, folded, .. } => {
            format!("rules[{index}] and rules[{folded}]")
        }
        RouteDecision::NoMatch => "no rule".to_owned(),
        RouteDecision::PathNotNormalized => "path not normalized".to_owned(),
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
/// access token"): a token in more than one place, or header lines keygate never read.
fn invalid_request() -> LocalReply {
    let message =
        "the request carries a token more than once (a repeated header or cookie, or several sources), or more than 1024 header lines";
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
pub(super) fn rate_limited(rule: &RateLimitRule, decision: Option<&RateDecision>) -> LocalReply {
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
