//! Callouts: sending what the gateway asks for and bringing the answers back. No policy here:
//! the gateway says what to send, whether a request waits, and what to do when it resumes.
//!
//! # Who sends, who resumes (proxy-wasm-rust-sdk 0.2.5 on Envoy)
//! Every JWKS callout is sent by the **root context**, from `on_tick`, never by a request's
//! context. The SDK routes a call's response to the context that was active when it was
//! dispatched (`dispatcher::register_callout` records `active_id`) and drops it when that
//! context is gone (Envoy itself ties every call to the root context, so the call is always
//! answered and the SDK's token entry always removed). A JWKS fetch is shared by every
//! request waiting for it and also serves the timer's refreshes, so it must not die with the
//! client that happened to trigger it: the root, which lives as long as the VM, owns it. (A
//! request context cannot dispatch on the root's behalf: switching the effective context
//! before `dispatch_http_call` makes Envoy tie the call to the root while the SDK still
//! routes the answer to the request's context, and drops it once that context is gone.)
//!
//! So a request context that gets [`Decision::Wait`] only queues the callout here, records
//! itself as waiting, asks for a 1 ms tick (`proxy_set_tick_period_milliseconds` from any
//! context sets its root's timer: a request that waits for a refetch from a local JWKS server
//! takes 4–12 ms here, not the 250 ms of the normal tick) and pauses. The root's next `on_tick` sends the queue; its
//! `on_http_call_response` hands the result to [`Gateway::complete`] once, then resumes each
//! waiting request: `set_effective_context(id)` (which fails for a context that is gone, so
//! it is skipped), [`Gateway::resume`], then the local reply or header changes and
//! `resume_http_request`. Envoy defers both `continue` and local replies made from another
//! context until the VM call returns, so nothing re-enters the module meanwhile.

use crate::host::{log, now_ms, HostStore};
use crate::root::Metrics;
use keygate::gateway::{
    Callout, CalloutFailure, CalloutId, CalloutRequest, CalloutResponse, CalloutResult, Decision,
    Gateway, GrpcCallout, Pending, StripToken, JWKS_KEYS_GAUGE,
};
use proxy_wasm::hostcalls;
use proxy_wasm::types::{Action, BufferType, LogLevel, MapType, MetricType};
use std::time::Duration;

/// The root's timer while callouts are due: every JWKS refresh and retry is scheduled in
/// whole seconds, so a quarter-second tick keeps them on time.
pub const TICK: Duration = Duration::from_millis(250);
/// A tick as soon as possible: the first fetch after configuration, a request's refetch.
pub const SOON: Duration = Duration::from_millis(1);

const UNAVAILABLE: &str = r#"{"error":"unavailable","message":"the authentication filter could not process the request"}"#;

/// A callout on the wire.
struct Sent {
    id: CalloutId,
    max_response_bytes: usize,
}

/// The VM's callout bookkeeping, shared by the root and every request context (one thread).
/// Plain vectors: a handful of callouts and at most a few thousand held requests (the gateway
/// bounds those), and no hash map code in the module V8 compiles.
#[derive(Default)]
pub struct Callouts {
    /// Callouts to send at the root's next tick.
    outbox: Vec<Callout>,
    /// Whether the root's timer was set to [`SOON`].
    soon: bool,
    /// Envoy's call token → the callout it carries.
    sent: Vec<(u32, Sent)>,
    /// The same for gRPC calls the root sent (Envoy numbers HTTP and gRPC calls apart, so the
    /// two token spaces may overlap).
    grpc_sent: Vec<(u32, Sent)>,
    /// Requests held: (the callout they wait for, context id, what to resume).
    waiting: Vec<(CalloutId, u32, Pending)>,
    /// Response headers (`RateLimit`, a rate-limit service's) for resumed requests, by
    /// context id.
    response_headers: Vec<(u32, ResponseHeaders)>,
}

/// Headers to add to a continued request's response: the gateway's, and those a rate-limit
/// service asked for.
#[derive(Default)]
pub struct ResponseHeaders {
    pub fixed: Vec<(&'static str, String)>,
    pub service: Vec<(String, String)>,
}

impl ResponseHeaders {
    fn is_empty(&self) -> bool {
        self.fixed.is_empty() && self.service.is_empty()
    }

    /// Adds them to the response (`on_http_response_headers`).
    pub fn add(self) {
        for (name, value) in self.fixed {
            let _ = hostcalls::add_map_value(MapType::HttpResponseHeaders, name, &value);
        }
        for (name, value) in self.service {
            let _ = hostcalls::add_map_value(MapType::HttpResponseHeaders, &name, &value);
        }
    }
}

impl Callouts {
    /// Holds request `context_id` until `callout` is answered; queues the callout if it is new.
    pub fn hold(&mut self, context_id: u32, callout: Callout, pending: Pending) {
        self.waiting.push((callout.id, context_id, pending));
        if callout.request.is_some() {
            self.outbox.push(callout);
            self.tick_soon();
        }
    }

    /// Makes the root tick at once (then at [`TICK`] again).
    pub fn tick_soon(&mut self) {
        if !self.soon {
            self.soon = true;
            let _ = hostcalls::set_tick_period(SOON);
        }
    }

    /// Whether request `context_id` is held (its body and trailers must wait too).
    #[must_use]
    pub fn is_held(&self, context_id: u32) -> bool {
        self.waiting.iter().any(|(_, c, _)| *c == context_id)
    }

    /// The response headers a resumed request must add.
    pub fn take_response_headers(&mut self, context_id: u32) -> ResponseHeaders {
        match self
            .response_headers
            .iter()
            .position(|(c, _)| *c == context_id)
        {
            Some(i) => self.response_headers.swap_remove(i).1,
            None => ResponseHeaders::default(),
        }
    }

    /// Forgets request `context_id` (its stream ended).
    pub fn forget(&mut self, context_id: u32) {
        self.waiting.retain(|(_, c, _)| *c != context_id);
        self.response_headers.retain(|(c, _)| *c != context_id);
    }

    /// Removes and returns the requests waiting for `id`.
    fn release(&mut self, id: CalloutId) -> Vec<(CalloutId, u32, Pending)> {
        let (mine, rest) = std::mem::take(&mut self.waiting)
            .into_iter()
            .partition(|(w, _, _)| *w == id);
        self.waiting = rest;
        mine
    }
}

/// Sends every queued callout and every callout the gateway has due (root context, `on_tick`).
pub fn on_tick(
    gateway: &Gateway,
    callouts: &std::cell::RefCell<Callouts>,
    metrics: &Metrics,
    root_id: u32,
) {
    let now = now_ms();
    let mut due = match callouts.try_borrow_mut() {
        Ok(mut c) => {
            if c.soon {
                c.soon = false;
                let _ = hostcalls::set_tick_period(TICK);
            }
            std::mem::take(&mut c.outbox)
        }
        Err(_) => return,
    };
    due.extend(gateway.tick(now));
    for callout in due {
        let id = callout.id;
        let http = match callout.request {
            Some(CalloutRequest::Http(http)) => http,
            // A gRPC call queued by a request resumed here (a `sub` global limit after a
            // JWKS refetch): the root sends it and resumes the request with its answer.
            Some(CalloutRequest::Grpc(grpc)) => {
                match dispatch_grpc(&grpc) {
                    Ok(token) => {
                        if let Ok(mut c) = callouts.try_borrow_mut() {
                            c.grpc_sent.push((
                                token,
                                Sent {
                                    id,
                                    max_response_bytes: grpc.max_response_bytes,
                                },
                            ));
                        }
                    }
                    Err(failure) => {
                        let result = CalloutResult {
                            id,
                            response: Err(failure),
                        };
                        finish(gateway, callouts, metrics, root_id, &result);
                    }
                }
                continue;
            }
            _ => continue,
        };
        let headers: Vec<(&str, &str)> =
            http.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let body = (!http.body.is_empty()).then_some(http.body.as_slice());
        let sent = hostcalls::dispatch_http_call(
            &http.cluster,
            headers,
            body,
            Vec::new(),
            Duration::from_millis(http.timeout_ms),
        );
        match sent {
            Ok(token) => {
                if let Ok(mut c) = callouts.try_borrow_mut() {
                    c.sent.push((
                        token,
                        Sent {
                            id,
                            max_response_bytes: http.max_response_bytes,
                        },
                    ));
                }
            }
            Err(_) => {
                let result = CalloutResult {
                    id,
                    response: Err(CalloutFailure::DispatchFailed),
                };
                finish(gateway, callouts, metrics, root_id, &result);
            }
        }
    }
}

/// An HTTP call's answer (root context, `on_http_call_response`).
pub fn on_response(
    gateway: &Gateway,
    callouts: &std::cell::RefCell<Callouts>,
    metrics: &Metrics,
    root_id: u32,
    token: u32,
    num_headers: usize,
    body_size: usize,
) {
    let Some(sent) = callouts.try_borrow_mut().ok().and_then(|mut c| {
        let i = c.sent.iter().position(|(t, _)| *t == token)?;
        Some(c.sent.swap_remove(i).1)
    }) else {
        return;
    };
    // Envoy reports a failure (connect error, reset, timeout) as an answer without headers.
    let response = if num_headers == 0 {
        Err(CalloutFailure::NoResponse)
    } else {
        let status = hostcalls::get_map_value_bytes(MapType::HttpCallResponseHeaders, ":status")
            .ok()
            .flatten()
            .and_then(|s| std::str::from_utf8(&s).ok()?.parse::<u16>().ok())
            .unwrap_or(0);
        // Never more than the gateway reads, plus one byte to see it is too long.
        let want = body_size.min(sent.max_response_bytes.saturating_add(1));
        let body = if want == 0 {
            Vec::new()
        } else {
            hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, want)
                .ok()
                .flatten()
                .unwrap_or_default()
        };
        Ok(CalloutResponse {
            status,
            body,
            body_len: body_size,
        })
    };
    let result = CalloutResult {
        id: sent.id,
        response,
    };
    finish(gateway, callouts, metrics, root_id, &result);
}

/// A gRPC call's answer to the root (`on_grpc_call_response`): a call the root sent for a
/// request it resumed.
pub fn on_grpc_response(
    gateway: &Gateway,
    callouts: &std::cell::RefCell<Callouts>,
    metrics: &Metrics,
    root_id: u32,
    token: u32,
    status_code: u32,
    response_size: usize,
) {
    let Some(sent) = callouts.try_borrow_mut().ok().and_then(|mut c| {
        let i = c.grpc_sent.iter().position(|(t, _)| *t == token)?;
        Some(c.grpc_sent.swap_remove(i).1)
    }) else {
        return;
    };
    let result = grpc_result(sent.id, status_code, response_size, sent.max_response_bytes);
    finish(gateway, callouts, metrics, root_id, &result);
}

/// Sends a gRPC call from the current context (its answer comes back to that context).
///
/// # Errors
/// [`CalloutFailure::DispatchFailed`] when the proxy refuses it (an unknown cluster).
pub fn dispatch_grpc(grpc: &GrpcCallout) -> Result<u32, CalloutFailure> {
    hostcalls::dispatch_grpc_call(
        &grpc.cluster,
        grpc.service,
        grpc.method,
        Vec::new(),
        Some(grpc.body.as_slice()),
        Duration::from_millis(grpc.timeout_ms),
    )
    .map_err(|_| CalloutFailure::DispatchFailed)
}

/// What a gRPC call brought back: status 0 with the message (at most `max` bytes plus one
/// read), or the failure status.
pub fn grpc_result(id: CalloutId, status_code: u32, size: usize, max: usize) -> CalloutResult {
    let response = if status_code != 0 {
        Err(CalloutFailure::GrpcStatus(status_code))
    } else {
        let want = size.min(max.saturating_add(1));
        let body = if want == 0 {
            Vec::new()
        } else {
            hostcalls::get_buffer(BufferType::GrpcReceiveBuffer, 0, want)
                .ok()
                .flatten()
                .unwrap_or_default()
        };
        Ok(CalloutResponse {
            status: 0,
            body,
            body_len: size,
        })
    };
    CalloutResult { id, response }
}

/// Counts failed rate-limit service calls and logs the start and end of a failure burst.
pub fn report_rls(gateway: &Gateway, metrics: &Metrics) {
    if let Some((failed, line)) = gateway.rate_limit_service_report() {
        if failed > 0 {
            metrics.bump_rls_failed(failed);
        }
        if let Some(line) = line {
            log(LogLevel::Warn, &line);
        }
    }
}

/// Gives `result` to the gateway, then resumes every request waiting for it.
fn finish(
    gateway: &Gateway,
    callouts: &std::cell::RefCell<Callouts>,
    metrics: &Metrics,
    root_id: u32,
    result: &CalloutResult,
) {
    let now = now_ms();
    if let Some(report) = gateway.complete(result, now) {
        metrics.bump(report.metric());
        if let Ok(id) = hostcalls::define_metric(MetricType::Gauge, JWKS_KEYS_GAUGE) {
            let _ = hostcalls::record_metric(id, report.keys as u64);
        }
        let level = if report.ok {
            LogLevel::Info
        } else {
            LogLevel::Warn
        };
        log(level, &report.message);
    }
    let waiting = callouts
        .try_borrow_mut()
        .map(|mut c| c.release(result.id))
        .unwrap_or_default();
    for (_, context_id, pending) in waiting {
        // Fails for a context that is gone (the client left): nothing to resume.
        if hostcalls::set_effective_context(context_id).is_err() {
            continue;
        }
        let decision = gateway.resume(pending, result, &HostStore, now);
        report_rls(gateway, metrics);
        if let Decision::Wait(callout, pending) = decision {
            if let Ok(mut c) = callouts.try_borrow_mut() {
                c.hold(context_id, callout, pending);
            }
            continue;
        }
        if let Some(m) = decision.metric() {
            metrics.bump(m);
        }
        match apply(decision) {
            Applied::Continue(headers) => {
                if !headers.is_empty() {
                    if let Ok(mut c) = callouts.try_borrow_mut() {
                        c.response_headers.push((context_id, headers));
                    }
                }
                let _ = hostcalls::resume_http_request();
            }
            Applied::Replied | Applied::Waiting => {}
        }
    }
    let _ = hostcalls::set_effective_context(root_id);
}

/// What [`apply`] did.
pub enum Applied {
    /// The request headers were changed; continue it, adding these response headers later.
    Continue(ResponseHeaders),
    /// A local reply was sent (the gateway's, or 503 when the host refused a change).
    Replied,
    /// Nothing done: the decision was to wait.
    Waiting,
}

/// Carries out a final decision on the current (effective) request context: a local reply,
/// or the header changes of a continue (the token stripped with `forward_token: false`, the
/// claim headers; in shadow mode the would-be refusal logged once).
pub fn apply(decision: Decision<'_>) -> Applied {
    match decision {
        Decision::Continue(forward) => {
            if let Some(refusal) = &forward.shadow_refusal {
                // Code, rule and redacted path only: never a token.
                log(LogLevel::Info, &refusal.to_string());
            }
            let stripped = forward.strip_token.as_ref().is_none_or(strip);
            if !stripped {
                unavailable("keygate: could not remove the token");
                return Applied::Replied;
            }
            // Setting replaces every incoming value of a name (Envoy's `setCopy`), so only
            // the names that get no value need a removal: one host call per header saved.
            let set = &forward.set_request_headers;
            for name in forward.remove_request_headers {
                if set.iter().any(|(n, _)| n == name) {
                    continue;
                }
                if hostcalls::remove_map_value(MapType::HttpRequestHeaders, name).is_err() {
                    unavailable("keygate: could not remove a request header");
                    return Applied::Replied;
                }
            }
            for (name, value) in &forward.set_request_headers {
                if hostcalls::set_map_value(MapType::HttpRequestHeaders, name, Some(value)).is_err()
                {
                    unavailable("keygate: could not set a request header");
                    return Applied::Replied;
                }
            }
            Applied::Continue(ResponseHeaders {
                fixed: forward.response_headers,
                service: forward.service_headers,
            })
        }
        Decision::Reply(reply) => {
            let headers = reply
                .headers
                .iter()
                .map(|(k, v)| (*k, v.as_str()))
                .chain(
                    reply
                        .service_headers
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str())),
                )
                .collect();
            let _ = hostcalls::send_http_response(
                u32::from(reply.status),
                headers,
                Some(reply.body.as_bytes()),
            );
            Applied::Replied
        }
        Decision::Wait(..) => Applied::Waiting,
    }
}

/// Takes the token out of the request (`forward_token: false`); `false` if the host refused.
fn strip(how: &StripToken<'_>) -> bool {
    match how {
        StripToken::Header(name) => {
            hostcalls::remove_map_value(MapType::HttpRequestHeaders, name).is_ok()
        }
        StripToken::Cookie(None) => {
            hostcalls::remove_map_value(MapType::HttpRequestHeaders, "cookie").is_ok()
        }
        StripToken::Cookie(Some(rest)) => {
            hostcalls::set_map_value_bytes(MapType::HttpRequestHeaders, "cookie", Some(rest))
                .is_ok()
        }
        // One level: the gateway never nests them.
        StripToken::Every(all) => all
            .iter()
            .all(|s| !matches!(s, StripToken::Every(_)) && strip(s)),
    }
}

/// 503 when the host would not let us apply a decision: never pass a request half-changed.
pub fn unavailable(why: &str) -> Action {
    log(LogLevel::Error, why);
    let _ = hostcalls::send_http_response(
        503,
        vec![("content-type", "application/json")],
        Some(UNAVAILABLE.as_bytes()),
    );
    Action::Pause
}
