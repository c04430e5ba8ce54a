//! The HTTP context: maps the gateway's decision onto Envoy.

use crate::callout::{
    apply, dispatch_grpc, grpc_result, report_rls, unavailable, Applied, Callouts, ResponseHeaders,
};
use crate::host::{now_ms, read_request, HostStore};
use crate::root::Metrics;
use keygate::gateway::{CalloutRequest, Decision, Gateway, Pending};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;
use std::cell::RefCell;
use std::rc::Rc;

/// One request.
pub struct KeygateHttp {
    context_id: u32,
    gateway: Option<Rc<Gateway>>,
    metrics: Rc<Metrics>,
    callouts: Rc<RefCell<Callouts>>,
    /// Whether this request ever waited for a callout (then the root resumed it).
    waited: bool,
    /// A local reply was sent: the body and trailers never continue (fail closed even if the
    /// host kept calling us after a refused `send_http_response`).
    refused: bool,
    response_headers: ResponseHeaders,
    /// A rate-limit service call this context sent: (Envoy's token, the longest answer
    /// read, the decision to resume with its answer).
    rls: Option<(u32, usize, Pending)>,
}

impl KeygateHttp {
    /// A context sharing the VM's compiled gateway and callout bookkeeping.
    #[must_use]
    pub fn new(
        context_id: u32,
        gateway: Option<Rc<Gateway>>,
        metrics: Rc<Metrics>,
        callouts: Rc<RefCell<Callouts>>,
    ) -> Self {
        Self {
            context_id,
            gateway,
            metrics,
            callouts,
            waited: false,
            refused: false,
            response_headers: ResponseHeaders::default(),
            rls: None,
        }
    }

    /// Acts on a decision for this (current) context: hold it for a callout, or apply it.
    /// `resumed`: the request was paused, so a continue must resume it.
    fn act(&mut self, gateway: &Gateway, decision: Decision<'_>, resumed: bool) -> Action {
        if let Decision::Wait(callout, pending) = decision {
            // The rate-limit service is asked from the request's callback, with no tick in
            // between. Envoy still ties the call to the root context (proxy-wasm-cpp-host's
            // `grpc_call` runs on `contextOrEffectiveContext()->root_context()`), so it is
            // never cancelled with the request: it always ends in `on_grpc_receive` or
            // `on_grpc_close` (at `timeout_ms` at the latest), where the SDK's dispatcher
            // removes its token entry and hands the answer to this context by id, or drops it
            // when this context is gone (tests/ratelimit/test_resets.py).
            if let Some(CalloutRequest::Grpc(grpc)) = &callout.request {
                match dispatch_grpc(grpc) {
                    Ok(token) => {
                        self.rls = Some((token, grpc.max_response_bytes, pending));
                        self.waited = true;
                        return Action::Pause;
                    }
                    Err(failure) => {
                        let result = keygate::gateway::CalloutResult {
                            id: callout.id,
                            response: Err(failure),
                        };
                        let next = gateway.resume(pending, &result, &HostStore, now_ms());
                        report_rls(gateway, &self.metrics);
                        return self.act(gateway, next, resumed);
                    }
                }
            }
            let Ok(mut callouts) = self.callouts.try_borrow_mut() else {
                self.refused = true;
                return unavailable("keygate: callout state busy");
            };
            callouts.hold(self.context_id, callout, pending);
            self.waited = true;
            return Action::Pause;
        }
        if let Some(metric) = decision.metric() {
            self.metrics.bump(metric);
        }
        match apply(decision) {
            Applied::Continue(headers) => {
                self.response_headers = headers;
                if resumed {
                    let _ = hostcalls::resume_http_request();
                }
                Action::Continue
            }
            Applied::Replied => {
                self.refused = true;
                Action::Pause
            }
            Applied::Waiting => Action::Pause,
        }
    }

    /// While the request waits for a callout, its body and trailers wait too (buffered).
    fn held(&self) -> bool {
        self.refused
            || self.rls.is_some()
            || self.waited
                && self
                    .callouts
                    .try_borrow()
                    .map_or(true, |c| c.is_held(self.context_id))
    }
}

impl Context for KeygateHttp {
    fn on_grpc_call_response(&mut self, token_id: u32, status_code: u32, response_size: usize) {
        let Some((token, max, pending)) = self.rls.take() else {
            return;
        };
        if token != token_id {
            self.rls = Some((token, max, pending));
            return;
        }
        let Some(gateway) = self.gateway.clone() else {
            self.refused = true;
            unavailable("keygate: no configuration loaded");
            return;
        };
        let result = grpc_result(pending.callout(), status_code, response_size, max);
        let decision = gateway.resume(pending, &result, &HostStore, now_ms());
        report_rls(&gateway, &self.metrics);
        let _ = self.act(&gateway, decision, true);
    }
}

impl HttpContext for KeygateHttp {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let Some(gateway) = self.gateway.clone() else {
            self.refused = true;
            return unavailable("keygate: no configuration loaded");
        };
        let request = read_request(gateway.needs_client_address());
        let decision = gateway.check(&request.view(), &HostStore, now_ms());
        self.act(&gateway, decision, false)
    }

    fn on_http_request_body(&mut self, _body_size: usize, _end_of_stream: bool) -> Action {
        if self.held() {
            Action::Pause
        } else {
            Action::Continue
        }
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        if self.held() {
            Action::Pause
        } else {
            Action::Continue
        }
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let mut headers = std::mem::take(&mut self.response_headers);
        if self.waited {
            if let Ok(mut c) = self.callouts.try_borrow_mut() {
                let resumed = c.take_response_headers(self.context_id);
                if !resumed.fixed.is_empty() || !resumed.service.is_empty() {
                    headers = resumed;
                }
            }
        }
        headers.add();
        Action::Continue
    }
}

impl Drop for KeygateHttp {
    fn drop(&mut self) {
        if self.waited {
            if let Ok(mut c) = self.callouts.try_borrow_mut() {
                c.forget(self.context_id);
            }
        }
    }
}
