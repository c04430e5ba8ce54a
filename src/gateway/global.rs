//! The gateway's global (`scope: "global"`) rate limits: when a request waits for the
//! rate-limit service and how its answer (or failure) goes into the decision (see
//! [`super::rls`] for the protocol and [`super::decision`] for waiting).

use super::check::{rate_limited, Passed, PolicyText, Refusal, Seen, Step};
use super::decision::{Callout, CalloutRequest, CalloutResult, Decision, HeldPost, HeldPre, Stage};
use super::outcome::{LocalReply, Metric};
use super::request::HttpRequest;
use super::rls::{interpret, status_headers, Asked, FailureMode};
use super::store::SharedStore;
use super::token_source::{
    cookie_header_without, cookie_header_without_any, Presented, TokenSource,
};
use super::Gateway;
use crate::ratelimit::{KeySource, RateLimitError};
use crate::token::{Claims, TokenError};
use crate::ErrorCode;
use std::rc::Rc;

/// The counter of failed calls to the rate-limit service.
pub const RATE_LIMIT_SERVICE_FAILED: &str = "keygate.rate_limit_service_failed";

impl Gateway {
    /// Before the token: the matching global `ip`/`header:` rules, asked in one call. `None`
    /// when there are none (or no service).
    pub(super) fn ask_pre_token<'g>(
        &'g self,
        request: &impl HttpRequest,
        seen: &Seen<'_>,
        found: &Presented,
        passed: &mut Passed,
    ) -> Option<Decision<'g>> {
        let rls = self.rls.as_ref()?;
        let mut asked = Vec::new();
        for (i, rule) in self.limits.matching_path(seen.method, seen.route_path) {
            if rule.is_global() && rule.key_source().is_pre_token() {
                let header = rule
                    .key_source()
                    .header_name()
                    .and_then(|h| request.header(h));
                let key = rule.key_source().key(seen.client, None, header);
                push_asked(&mut asked, i, rule.limiter().quotas().len(), key);
            }
        }
        if asked.is_empty() {
            return None;
        }
        let callout = Callout {
            id: self.next_callout(),
            request: Some(CalloutRequest::Grpc(
                rls.callout(&asked, self.limits.rules()),
            )),
        };
        let held = HeldPre {
            method: seen.method.to_owned(),
            path: seen.path.to_owned(),
            client: seen.client.map(str::to_owned),
            found: found.clone(),
            cookie_rest: self.cookie_rest_of(found, request),
            passed: std::mem::take(passed),
            asked,
        };
        Some(Decision::Wait(
            callout.clone(),
            self.pending(callout.id, Stage::RlsPre(Box::new(held))),
        ))
    }

    /// After the token: the matching global `sub` rules (keyed by `sub`, else the address),
    /// asked in one call.
    pub(super) fn ask_post_token(
        &self,
        seen: &Seen<'_>,
        sub: Option<&str>,
    ) -> Option<(Callout, Vec<Asked>)> {
        let rls = self.rls.as_ref()?;
        let mut asked = Vec::new();
        for (i, rule) in self.limits.matching_path(seen.method, seen.route_path) {
            if rule.is_global() && !rule.key_source().is_pre_token() {
                let key = KeySource::Sub.key(seen.client, sub, None);
                push_asked(&mut asked, i, rule.limiter().quotas().len(), key);
            }
        }
        if asked.is_empty() {
            return None;
        }
        let callout = Callout {
            id: self.next_callout(),
            request: Some(CalloutRequest::Grpc(
                rls.callout(&asked, self.limits.rules()),
            )),
        };
        Some((callout, asked))
    }

    /// What `forward_token: false` needs from the `Cookie` lines once the request is gone:
    /// the `Cookie` header without the token cookie (without every token cookie when a token
    /// was found more than once).
    pub(super) fn cookie_rest_of(
        &self,
        found: &Presented,
        request: &impl HttpRequest,
    ) -> Option<Vec<u8>> {
        match found {
            Presented::One { source, .. } if !self.forward_token => match self.sources.get(*source)
            {
                Some(TokenSource::Cookie { name }) => cookie_header_without(request, name),
                _ => None,
            },
            Presented::Several if !self.forward_token => {
                let names: Vec<&str> = self
                    .sources
                    .iter()
                    .filter_map(|s| match s {
                        TokenSource::Cookie { name } => Some(name.as_str()),
                        TokenSource::Header { .. } => None,
                    })
                    .collect();
                cookie_header_without_any(request, &names)
            }
            _ => None,
        }
    }

    /// [`Decision::Wait`] for the global `sub` limits.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn hold_post_token<'g>(
        &'g self,
        callout: Callout,
        asked: Vec<Asked>,
        token_error: Option<TokenError>,
        seen: &Seen<'_>,
        found: &Presented,
        claims: Option<Rc<Claims>>,
        cookie_rest: Option<Vec<u8>>,
        passed: Passed,
    ) -> Decision<'g> {
        let source = match found {
            Presented::One { source, .. } => Some(*source),
            Presented::Absent | Presented::Several => None,
        };
        let held = HeldPost {
            method: seen.method.to_owned(),
            path: seen.path.to_owned(),
            client: seen.client.map(str::to_owned),
            claims,
            token_error,
            several: matches!(found, Presented::Several),
            source,
            cookie_rest,
            passed,
            asked,
        };
        let id = callout.id;
        Decision::Wait(callout, self.pending(id, Stage::RlsPost(Box::new(held))))
    }

    /// The service answered (or failed) the pre-token call: then the token and the rest.
    pub(super) fn resume_pre<'g>(
        &'g self,
        held: HeldPre,
        result: &CalloutResult,
        store: &impl SharedStore,
        now_ms: u64,
    ) -> Decision<'g> {
        let HeldPre {
            method,
            path,
            client,
            found,
            cookie_rest,
            mut passed,
            asked,
        } = held;
        let seen = Seen::new(&method, &path, client.as_deref());
        let source = match &found {
            Presented::One { source, .. } => Some(*source),
            Presented::Absent | Presented::Several => None,
        };
        let several = matches!(found, Presented::Several);
        let mut claims = None;
        let step = match self.global_answer(&asked, result, store, now_ms, &mut passed) {
            Err(refusal) => {
                claims = self.shadow_claims(&found, now_ms);
                Step::Done(Err(refusal))
            }
            Ok(()) => self.decide(&seen, &found, store, now_ms, &mut passed, &mut claims, true),
        };
        match step {
            Step::Done(decided) => self.finish(decided, &seen, passed, claims.as_deref(), || {
                if several {
                    return self.strip_every(cookie_rest);
                }
                source.and_then(|s| self.strip_token(s, |_| cookie_rest))
            }),
            Step::Wait {
                callout,
                source,
                token,
            } => {
                let pending = self.pending(
                    callout.id,
                    Stage::Keys(super::decision::Held {
                        method: method.clone(),
                        path: path.clone(),
                        client: client.clone(),
                        token,
                        source,
                        cookie_rest,
                        passed,
                    }),
                );
                Decision::Wait(callout, pending)
            }
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

    /// The service answered (or failed) the post-token call: then the requirement.
    pub(super) fn resume_post<'g>(
        &'g self,
        held: HeldPost,
        result: &CalloutResult,
        store: &impl SharedStore,
        now_ms: u64,
    ) -> Decision<'g> {
        let HeldPost {
            method,
            path,
            client,
            claims,
            token_error,
            several,
            source,
            cookie_rest,
            mut passed,
            asked,
        } = held;
        let seen = Seen::new(&method, &path, client.as_deref());
        let decided = match self.global_answer(&asked, result, store, now_ms, &mut passed) {
            Err(refusal) => Err(refusal),
            Ok(()) => {
                let route = self.policy.requirement_at(seen.method, seen.route_path);
                match self.authorize_after_limits(
                    &route,
                    several,
                    claims.as_deref(),
                    token_error.as_ref(),
                ) {
                    Step::Done(d) => d,
                    // `authorize_after_limits` neither waits nor asks.
                    Step::Wait { .. } | Step::Rls { .. } => Err(Refusal {
                        reply: unavailable(),
                        rule: "rate_limit_service".to_owned(),
                    }),
                }
            }
        };
        self.finish(decided, &seen, passed, claims.as_deref(), || {
            if several {
                return self.strip_every(cookie_rest);
            }
            source.and_then(|s| self.strip_token(s, |_| cookie_rest))
        })
    }

    /// Applies the service's answer for `asked`: an `OVER_LIMIT` is the 429; a failure goes
    /// by `failure_mode`. Limits passed go into `passed` (for the RateLimit headers).
    fn global_answer(
        &self,
        asked: &[Asked],
        result: &CalloutResult,
        store: &impl SharedStore,
        now_ms: u64,
        passed: &mut Passed,
    ) -> Result<(), Refusal> {
        let Some(rls) = self.rls.as_ref() else {
            return Err(Refusal {
                reply: unavailable(),
                rule: "rate_limit_service".to_owned(),
            });
        };
        let rules = self.limits.rules();
        let answer = match &result.response {
            Ok(r) if r.status == 0 => interpret(&r.body, r.body_len, asked.len()).ok(),
            _ => None,
        };
        rls.record(answer.is_none(), now_ms);
        let Some(answer) = answer else {
            return match rls.failure_mode() {
                FailureMode::Allow => Ok(()),
                FailureMode::Deny => {
                    let first = asked.first().map_or(0, |a| a.rule);
                    Err(match rules.get(first) {
                        Some(rule) => Refusal {
                            reply: rate_limited(rule, None),
                            rule: format!("rate_limits[{first}]"),
                        },
                        None => Refusal {
                            reply: unavailable(),
                            rule: "rate_limit_service".to_owned(),
                        },
                    })
                }
                FailureMode::Local => {
                    // Each rule once (a rule asks one descriptor per quota), by the shared-data
                    // limiter that counts its local twin.
                    let mut last = None;
                    for a in asked {
                        if last == Some(a.rule) {
                            continue;
                        }
                        last = Some(a.rule);
                        let Some(rule) = rules.get(a.rule) else {
                            continue;
                        };
                        self.limit(a.rule, rule, &a.key, store, now_ms, passed)
                            .map_err(|reply| Refusal {
                                reply,
                                rule: format!("rate_limits[{}]", a.rule),
                            })?;
                    }
                    Ok(())
                }
            };
        };
        let quota_of = |a: &Asked| {
            rules
                .get(a.rule)
                .and_then(|r| r.limiter().quotas().get(a.quota).copied())
        };
        if !answer.over {
            for (a, s) in asked.iter().zip(&answer.statuses) {
                if let Some(q) = quota_of(a) {
                    let (policy, state) = status_headers(s, q);
                    passed.policies.push(PolicyText::Text(policy));
                    passed.states.extend(state);
                }
            }
            passed.service_headers.extend(answer.headers);
            return Ok(());
        }
        // Refused: the first over-limit descriptor names the rule; Retry-After is the longest
        // wait any over-limit descriptor reports, at least one second.
        let over = asked
            .iter()
            .zip(&answer.statuses)
            .filter(|(_, s)| s.over)
            .collect::<Vec<_>>();
        let retry_after_secs = over
            .iter()
            .filter_map(|(_, s)| s.reset_secs)
            .max()
            .unwrap_or(1)
            .max(1);
        let first = over
            .first()
            .map(|(a, _)| a.rule)
            .or_else(|| asked.first().map(|a| a.rule))
            .unwrap_or(0);
        let mut headers = vec![("retry-after", retry_after_secs.to_string())];
        match over.first() {
            Some((a, s)) => {
                if let Some(q) = quota_of(a) {
                    let (policy, state) = status_headers(s, q);
                    headers.push(("ratelimit-policy", policy));
                    if let Some(state) = state {
                        headers.push(("ratelimit", state));
                    }
                }
            }
            None => {
                if let Some(rule) = rules.get(first) {
                    headers.push(("ratelimit-policy", rule.limiter().policy_header()));
                }
            }
        }
        let e = RateLimitError::Limited { retry_after_secs };
        let mut reply =
            LocalReply::new(429, e.code(), &e.to_string(), Metric::RateLimited, headers);
        reply.service_headers = answer.headers;
        Err(Refusal {
            reply,
            rule: format!("rate_limits[{first}]"),
        })
    }

    /// Failed calls to the rate-limit service since the last report (for
    /// [`RATE_LIMIT_SERVICE_FAILED`]), and the one log line of a failure burst that started
    /// or ended (it never contains a descriptor value). `None` without `rate_limit_service`.
    #[must_use]
    pub fn rate_limit_service_report(&self) -> Option<(u64, Option<String>)> {
        self.rls
            .as_ref()
            .map(super::rls::RateLimitService::take_report)
    }

    /// Whether `rate_limit_service` is configured (the shell then defines its counter).
    #[must_use]
    pub fn has_rate_limit_service(&self) -> bool {
        self.rls.is_some()
    }
}

/// One descriptor per quota of rule `rule`.
fn push_asked(asked: &mut Vec<Asked>, rule: usize, quotas: usize, key: String) {
    for quota in 0..quotas {
        asked.push(Asked {
            rule,
            quota,
            key: key.clone(),
        });
    }
}

/// 429 with `Retry-After: 1` for a state the gateway never reaches (fail closed, as for a
/// failing store).
fn unavailable() -> LocalReply {
    let e = RateLimitError::Limited {
        retry_after_secs: 1,
    };
    LocalReply::new(
        429,
        e.code(),
        &e.to_string(),
        Metric::RateLimited,
        vec![("retry-after", "1".to_owned())],
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#[path = "global_tests.rs"]
mod tests;
