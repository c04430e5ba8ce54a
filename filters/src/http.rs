//! The HTTP context: maps the gateway's outcome onto Envoy.

use crate::host::{log, now_ms, read_request, HostStore};
use crate::root::Metrics;
use keygate::gateway::{Gateway, Outcome, StripToken};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, LogLevel, MapType};
use std::rc::Rc;

const UNAVAILABLE: &str = r#"{"error":"unavailable","message":"the authentication filter could not process the request"}"#;

/// One request.
pub struct KeygateHttp {
    gateway: Option<Rc<Gateway>>,
    metrics: Rc<Metrics>,
    response_headers: Vec<(&'static str, String)>,
}

impl KeygateHttp {
    /// A context sharing the VM's compiled gateway.
    #[must_use]
    pub fn new(gateway: Option<Rc<Gateway>>, metrics: Rc<Metrics>) -> Self {
        Self {
            gateway,
            metrics,
            response_headers: Vec::new(),
        }
    }
}

/// 503 when the host would not let us apply a decision: never pass a request half-changed.
fn unavailable(why: &str) -> Action {
    log(LogLevel::Error, why);
    let _ = hostcalls::send_http_response(
        503,
        vec![("content-type", "application/json")],
        Some(UNAVAILABLE.as_bytes()),
    );
    Action::Pause
}

impl Context for KeygateHttp {}

impl HttpContext for KeygateHttp {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let Some(gateway) = self.gateway.clone() else {
            return unavailable("keygate: no configuration loaded");
        };
        let request = read_request(gateway.needs_client_address());
        let outcome = gateway.check(&request, &HostStore, now_ms());
        self.metrics.bump(outcome.metric());
        match outcome {
            Outcome::Continue(forward) => {
                if let Some(refusal) = &forward.shadow_refusal {
                    // Code, rule and redacted path only: never a token.
                    log(LogLevel::Info, &refusal.to_string());
                }
                let stripped = match &forward.strip_token {
                    None => Ok(()),
                    Some(StripToken::Header(name)) => {
                        hostcalls::remove_map_value(MapType::HttpRequestHeaders, name)
                    }
                    Some(StripToken::Cookie(None)) => {
                        hostcalls::remove_map_value(MapType::HttpRequestHeaders, "cookie")
                    }
                    Some(StripToken::Cookie(Some(rest))) => hostcalls::set_map_value_bytes(
                        MapType::HttpRequestHeaders,
                        "cookie",
                        Some(rest),
                    ),
                };
                if stripped.is_err() {
                    return unavailable("keygate: could not remove the token");
                }
                // Setting replaces every incoming value of a name (Envoy's `setCopy`), so only
                // the names that get no value need a removal: one host call per header saved.
                let set = &forward.set_request_headers;
                for name in forward.remove_request_headers {
                    if set.iter().any(|(n, _)| n == name) {
                        continue;
                    }
                    if hostcalls::remove_map_value(MapType::HttpRequestHeaders, name).is_err() {
                        return unavailable("keygate: could not remove a request header");
                    }
                }
                for (name, value) in &forward.set_request_headers {
                    if hostcalls::set_map_value(MapType::HttpRequestHeaders, name, Some(value))
                        .is_err()
                    {
                        return unavailable("keygate: could not set a request header");
                    }
                }
                self.response_headers = forward.response_headers;
                Action::Continue
            }
            Outcome::Reply(reply) => {
                let headers = reply
                    .headers
                    .iter()
                    .map(|(k, v)| (*k, v.as_str()))
                    .collect();
                let _ = hostcalls::send_http_response(
                    u32::from(reply.status),
                    headers,
                    Some(reply.body.as_bytes()),
                );
                Action::Pause
            }
        }
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        for (name, value) in self.response_headers.drain(..) {
            let _ = hostcalls::add_map_value(MapType::HttpResponseHeaders, name, &value);
        }
        Action::Continue
    }
}
