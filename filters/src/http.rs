//! The HTTP context: maps the gateway's decision onto Envoy.

use crate::callout::{apply, unavailable, Applied, Callouts};
use crate::host::{now_ms, read_request, HostStore};
use crate::root::Metrics;
use keygate::gateway::{Decision, Gateway};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, MapType};
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
    response_headers: Vec<(&'static str, String)>,
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
            response_headers: Vec::new(),
        }
    }

    /// While the request waits for a callout, its body and trailers wait too (buffered).
    fn held(&self) -> bool {
        self.refused
            || self.waited
                && self
                    .callouts
                    .try_borrow()
                    .map_or(true, |c| c.is_held(self.context_id))
    }
}

impl Context for KeygateHttp {}

impl HttpContext for KeygateHttp {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let Some(gateway) = self.gateway.clone() else {
            self.refused = true;
            return unavailable("keygate: no configuration loaded");
        };
        let decision = gateway.check(
            &read_request(gateway.needs_client_address()),
            &HostStore,
            now_ms(),
        );
        if let Decision::Wait(callout, pending) = decision {
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
                Action::Continue
            }
            Applied::Replied => {
                self.refused = true;
                Action::Pause
            }
            Applied::Waiting => Action::Pause,
        }
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
                headers = c.take_response_headers(self.context_id);
            }
        }
        for (name, value) in headers {
            let _ = hostcalls::add_map_value(MapType::HttpResponseHeaders, name, &value);
        }
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
