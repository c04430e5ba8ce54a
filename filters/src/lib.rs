//! keygate as a proxy-wasm HTTP filter for Envoy: a thin shell around [`keygate::gateway`].
//!
//! The root context parses the plugin configuration once ([`root::KeygateRoot`]); each HTTP
//! context asks the compiled [`keygate::gateway::Gateway`] for an outcome and acts on it
//! ([`http::KeygateHttp`]); [`host`] adapts proxy-wasm host calls to the core's traits;
//! [`callout`] sends the callouts the gateway asks for (JWKS fetches) and resumes the requests
//! waiting on them. No security decision is made here.

pub mod callout;
pub mod host;
pub mod http;
pub mod root;

use proxy_wasm::traits::RootContext;
use proxy_wasm::types::LogLevel;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|context_id| -> Box<dyn RootContext> {
        Box::new(root::KeygateRoot::new(context_id))
    });
}}
