//! The `noop` row of `envoy/bench.py`: a proxy-wasm HTTP filter built with the same SDK as
//! keygate's (proxy-wasm 0.2.5, every callback exported, as any SDK filter has them) that only
//! continues every request. What it costs is what any wasm filter costs in that Envoy: the
//! proxy-wasm ABI itself (VM entries per request), with nothing done inside the VM.

use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::LogLevel;

struct Noop;

impl Context for Noop {}

impl HttpContext for Noop {}

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Warn);
    proxy_wasm::set_http_context(|_, _| -> Box<dyn HttpContext> { Box::new(Noop) });
}}
