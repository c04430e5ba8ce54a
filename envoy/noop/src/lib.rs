//! The `noop` row of `envoy/bench.py`: a proxy-wasm HTTP filter built with the same SDK as
//! keygate's (proxy-wasm 0.2.5, every callback exported, as any SDK filter has them) that only
//! continues every request. What it costs is what any wasm filter costs in that Envoy: the
//! proxy-wasm ABI itself (VM entries per request), with nothing done inside the VM.
//!
//! It is also the host-call probe of `envoy/hostcalls.py` (`make bench-hostcalls`): its plugin
//! configuration may name host calls to make on every request, each `N` times, as
//! `call*N` separated by commas (`get_property*50`). Without a configuration (the bench's
//! `noop` row) it makes none: the floor. The calls are the ones keygate makes on an allowed
//! request (`tests/envoy/test_host_calls.py`'s counting host), made the way keygate makes them:
//!
//! | name | host call | phase |
//! | --- | --- | --- |
//! | `get_current_time` | `proxy_get_current_time_nanoseconds` | request headers |
//! | `increment_metric` | `proxy_increment_metric` (a counter defined at configure time) | request headers |
//! | `get_property` | `proxy_get_property(source.address)` + its `proxy_on_memory_allocate` | request headers |
//! | `get_header_map_pairs` | `proxy_get_header_map_pairs(request)` + its `proxy_on_memory_allocate` | request headers |
//! | `get_shared_data` | `proxy_get_shared_data` of a key that exists (created at configure time) + its `proxy_on_memory_allocate` | request headers |
//! | `get_shared_data_absent` | `proxy_get_shared_data` of a key that does not exist (no bytes, no re-entry) | request headers |
//! | `set_shared_data` | `proxy_set_shared_data` of that key with the CAS token of the last read (a real CAS) | request headers |
//! | `replace_header_map_value` | `proxy_replace_header_map_value(request, x-probe)` | request headers |
//! | `add_header_map_value` | `proxy_add_header_map_value(response, x-probe)` | response headers |
//!
//! `get_shared_data` minus `get_shared_data_absent` is the cost of one host→VM entry
//! (`proxy_on_memory_allocate`) plus a few bytes' copy. An unknown name or a bad count is
//! refused at configure time (`on_configure` returns `false`; Envoy refuses the listener).

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{ContextType, LogLevel, MapType, MetricType, Status};
use std::rc::Rc;

/// The host calls the probe can make (see the crate docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// `proxy_get_current_time_nanoseconds`.
    GetCurrentTime,
    /// `proxy_increment_metric`.
    IncrementMetric,
    /// `proxy_get_property(source.address)`.
    GetProperty,
    /// `proxy_get_header_map_pairs` of the request headers.
    GetHeaderMapPairs,
    /// `proxy_get_shared_data` of an existing key.
    GetSharedData,
    /// `proxy_get_shared_data` of a missing key.
    GetSharedDataAbsent,
    /// `proxy_set_shared_data` with the last read's CAS token.
    SetSharedData,
    /// `proxy_replace_header_map_value` on the request headers.
    ReplaceHeaderMapValue,
    /// `proxy_add_header_map_value` on the response headers.
    AddHeaderMapValue,
}

impl Call {
    /// Every call, by its configuration name.
    pub const ALL: [(&'static str, Self); 9] = [
        ("get_current_time", Self::GetCurrentTime),
        ("increment_metric", Self::IncrementMetric),
        ("get_property", Self::GetProperty),
        ("get_header_map_pairs", Self::GetHeaderMapPairs),
        ("get_shared_data", Self::GetSharedData),
        ("get_shared_data_absent", Self::GetSharedDataAbsent),
        ("set_shared_data", Self::SetSharedData),
        ("replace_header_map_value", Self::ReplaceHeaderMapValue),
        ("add_header_map_value", Self::AddHeaderMapValue),
    ];

    /// Whether it is made in the response-headers callback (else in the request's).
    #[must_use]
    pub const fn on_response(self) -> bool {
        matches!(self, Self::AddHeaderMapValue)
    }
}

/// Most repetitions of one call per request.
pub const MAX_REPEAT: u32 = 10_000;

/// What to do per request: each call with its count, in configuration order.
pub type Plan = Vec<(Call, u32)>;

/// Parses a plugin configuration: empty (or only whitespace) is the floor, no call.
///
/// # Errors
/// A message naming the entry that is not `name` or `name*N` (`N` in 1..=[`MAX_REPEAT`]).
pub fn parse_plan(text: &str) -> Result<Plan, String> {
    let mut plan = Plan::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, count) = match entry.split_once('*') {
            Some((name, n)) => (name.trim(), n.trim().parse::<u32>().ok()),
            None => (entry, Some(1)),
        };
        let Some(count) = count.filter(|n| (1..=MAX_REPEAT).contains(n)) else {
            return Err(format!(
                "configuration: {entry:?}: the count after `*` must be 1..={MAX_REPEAT}"
            ));
        };
        let Some(&(_, call)) = Call::ALL.iter().find(|(n, _)| *n == name) else {
            let names: Vec<&str> = Call::ALL.iter().map(|(n, _)| *n).collect();
            return Err(format!(
                "configuration: {entry:?}: unknown call {name:?} (one of {})",
                names.join(", ")
            ));
        };
        plan.push((call, count));
    }
    Ok(plan)
}

/// The host the plan runs against (proxy-wasm in the module; a counting mock in tests).
pub trait Host {
    /// Makes `call` once; `cas` is the CAS token of the last shared-data read (kept here).
    fn make(&mut self, call: Call, cas: &mut Option<u32>);
}

/// Makes the calls of `plan` for one phase (`response`: the response-headers callback),
/// interleaved: round `i` makes every call whose count is above `i`, in plan order, so
/// `get_shared_data*N,set_shared_data*N` is N read-then-CAS pairs, each CAS on a fresh token.
pub fn run(plan: &[(Call, u32)], response: bool, host: &mut impl Host) {
    let mut cas = None;
    let rounds = plan.iter().map(|&(_, n)| n).max().unwrap_or(0);
    for i in 0..rounds {
        for &(call, count) in plan {
            if call.on_response() == response && i < count {
                host.make(call, &mut cas);
            }
        }
    }
}

/// The shared-data key the probe reads and CAS-writes (created at configure time).
const SLOT: &str = "noop-probe:slot";
/// A key never written.
const ABSENT: &str = "noop-probe:absent";
/// Bytes of the slot's value (a rate-limit state is 24 bytes).
const SLOT_VALUE: [u8; 24] = [1; 24];

#[link(wasm_import_module = "env")]
extern "C" {
    /// As keygate reads the request (filters/src/host.rs): the raw map bytes, not decoded.
    fn proxy_get_header_map_pairs(
        map_type: MapType,
        return_map_data: *mut *mut u8,
        return_map_size: *mut usize,
    ) -> Status;
}

/// The proxy-wasm host.
struct Proxy {
    metric: Option<u32>,
}

impl Host for Proxy {
    fn make(&mut self, call: Call, cas: &mut Option<u32>) {
        match call {
            Call::GetCurrentTime => {
                let _ = hostcalls::get_current_time();
            }
            Call::IncrementMetric => {
                if let Some(id) = self.metric {
                    let _ = hostcalls::increment_metric(id, 1);
                }
            }
            Call::GetProperty => {
                let _ = hostcalls::get_property(vec!["source", "address"]);
            }
            Call::GetHeaderMapPairs => {
                let mut data: *mut u8 = std::ptr::null_mut();
                let mut size: usize = 0;
                // SAFETY: as in keygate's filters/src/host.rs: the host hands over `size`
                // bytes it allocated through `proxy_on_memory_allocate`; the Vec frees them.
                unsafe {
                    if let Status::Ok = proxy_get_header_map_pairs(
                        MapType::HttpRequestHeaders,
                        &mut data,
                        &mut size,
                    ) {
                        if !data.is_null() {
                            drop(Vec::from_raw_parts(data, size, size));
                        }
                    }
                }
            }
            Call::GetSharedData => {
                if let Ok((_, token)) = hostcalls::get_shared_data(SLOT) {
                    *cas = token;
                }
            }
            Call::GetSharedDataAbsent => {
                let _ = hostcalls::get_shared_data(ABSENT);
            }
            Call::SetSharedData => {
                let _ = hostcalls::set_shared_data(SLOT, Some(&SLOT_VALUE), *cas);
            }
            Call::ReplaceHeaderMapValue => {
                let _ = hostcalls::set_map_value(MapType::HttpRequestHeaders, "x-probe", Some("1"));
            }
            Call::AddHeaderMapValue => {
                let _ = hostcalls::add_map_value(MapType::HttpResponseHeaders, "x-probe", "1");
            }
        }
    }
}

struct Root {
    plan: Rc<Plan>,
    metric: Option<u32>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let bytes = self.get_plugin_configuration().unwrap_or_default();
        let plan = match std::str::from_utf8(&bytes).map_err(|_| "configuration: not UTF-8".into())
        {
            Ok(text) => parse_plan(text),
            Err(e) => Err(e),
        };
        match plan {
            Ok(plan) => {
                if plan.iter().any(|(c, _)| *c == Call::IncrementMetric) {
                    self.metric =
                        hostcalls::define_metric(MetricType::Counter, "noop_probe_calls").ok();
                }
                if plan
                    .iter()
                    .any(|(c, _)| matches!(c, Call::GetSharedData | Call::SetSharedData))
                    && hostcalls::set_shared_data(SLOT, Some(&SLOT_VALUE), None).is_err()
                {
                    let _ = hostcalls::log(LogLevel::Error, "noop: shared data unavailable");
                    return false;
                }
                self.plan = Rc::new(plan);
                true
            }
            Err(message) => {
                let _ = hostcalls::log(LogLevel::Error, &message);
                false
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Noop {
            plan: Rc::clone(&self.plan),
            host: Proxy {
                metric: self.metric,
            },
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Noop {
    plan: Rc<Plan>,
    host: Proxy,
}

impl Context for Noop {}

impl HttpContext for Noop {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> proxy_wasm::types::Action {
        if !self.plan.is_empty() {
            run(&self.plan, false, &mut self.host);
        }
        proxy_wasm::types::Action::Continue
    }

    fn on_http_response_headers(&mut self, _: usize, _: bool) -> proxy_wasm::types::Action {
        if !self.plan.is_empty() {
            run(&self.plan, true, &mut self.host);
        }
        proxy_wasm::types::Action::Continue
    }
}

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Warn);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(Root { plan: Rc::new(Plan::new()), metric: None })
    });
}}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Counting(Vec<Call>);

    impl Host for Counting {
        fn make(&mut self, call: Call, _: &mut Option<u32>) {
            self.0.push(call);
        }
    }

    #[test]
    fn empty_plan_is_the_floor_ok() {
        assert_eq!(parse_plan("").unwrap(), Plan::new());
        assert_eq!(parse_plan(" , ").unwrap(), Plan::new());
    }

    #[test]
    fn plan_makes_each_call_its_count_ok() {
        let plan = parse_plan("get_property*3, get_current_time,add_header_map_value*2").unwrap();
        let mut request = Counting::default();
        run(&plan, false, &mut request);
        assert_eq!(
            request.0,
            [
                Call::GetProperty,
                Call::GetCurrentTime,
                Call::GetProperty,
                Call::GetProperty
            ]
        );
        let mut response = Counting::default();
        run(&plan, true, &mut response);
        assert_eq!(response.0, [Call::AddHeaderMapValue; 2]);
        let pairs = parse_plan("get_shared_data*2,set_shared_data*2").unwrap();
        let mut cas = Counting::default();
        run(&pairs, false, &mut cas);
        let (get, set) = (Call::GetSharedData, Call::SetSharedData);
        assert_eq!(cas.0, [get, set, get, set]);
        for (name, call) in Call::ALL {
            assert_eq!(parse_plan(name).unwrap(), [(call, 1)]);
        }
    }

    #[test]
    fn bad_plan_fails() {
        for bad in [
            "get_propery",
            "get_property*0",
            "get_property*x",
            "get_property*10001",
        ] {
            let e = parse_plan(bad).unwrap_err();
            assert!(e.contains(bad), "{e}");
        }
    }
}
