//! The root context: configuration and metrics, once per VM.

use crate::callout::{self, Callouts};
use crate::host::{log, HostStore};
use crate::http::KeygateHttp;
use keygate::gateway::{Gateway, Metric, JWKS_KEYS_GAUGE};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{BufferType, ContextType, LogLevel, MetricType};
use std::cell::RefCell;
use std::rc::Rc;

/// Metric ids defined in this VM (`None` if the host refused one).
#[derive(Debug, Default, Clone)]
pub struct Metrics {
    ids: [Option<u32>; Metric::ALL.len()],
}

impl Metrics {
    fn define() -> Self {
        Self {
            ids: Metric::ALL.map(|m| hostcalls::define_metric(MetricType::Counter, m.name()).ok()),
        }
    }

    /// Adds one to `metric`.
    pub fn bump(&self, metric: Metric) {
        let i = Metric::ALL.iter().position(|m| *m == metric);
        if let Some(id) = i.and_then(|i| self.ids.get(i).copied().flatten()) {
            let _ = hostcalls::increment_metric(id, 1);
        }
    }
}

/// Parses the plugin configuration and hands each request context the compiled gateway;
/// with `remote_jwks`, sends the VM's callouts and resumes the requests waiting on them
/// (see [`crate::callout`] for why the root does it).
pub struct KeygateRoot {
    context_id: u32,
    gateway: Option<Rc<Gateway>>,
    metrics: Rc<Metrics>,
    callouts: Rc<RefCell<Callouts>>,
}

impl KeygateRoot {
    /// The root context `context_id`.
    #[must_use]
    pub fn new(context_id: u32) -> Self {
        Self {
            context_id,
            gateway: None,
            metrics: Rc::default(),
            callouts: Rc::default(),
        }
    }
}

impl Context for KeygateRoot {
    fn on_http_call_response(
        &mut self,
        token_id: u32,
        num_headers: usize,
        body_size: usize,
        _num_trailers: usize,
    ) {
        if let Some(gateway) = &self.gateway {
            callout::on_response(
                gateway,
                &self.callouts,
                &self.metrics,
                self.context_id,
                token_id,
                num_headers,
                body_size,
            );
        }
    }
}

impl RootContext for KeygateRoot {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let bytes = match hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX) {
            Ok(Some(bytes)) => bytes,
            _ => {
                log(
                    LogLevel::Error,
                    "keygate: the plugin `configuration` is missing",
                );
                return false;
            }
        };
        let gateway = match Gateway::from_json(&bytes) {
            Ok(g) => g,
            Err(e) => {
                // ConfigError names the field and never includes a secret.
                log(LogLevel::Error, &format!("keygate: {e}"));
                return false;
            }
        };
        for w in keygate::policy::lint::config_warnings(&bytes) {
            log(LogLevel::Warn, &format!("keygate: config warning: {w}"));
        }
        if let Err(e) = gateway.prepare_store(&HostStore) {
            log(LogLevel::Error, &format!("keygate: rate-limit slots: {e}"));
            return false;
        }
        if let Ok(id) = hostcalls::define_metric(MetricType::Gauge, "keygate.rate_limit_slots") {
            let _ = hostcalls::record_metric(id, gateway.rate_limit_slots());
        }
        self.metrics = Rc::new(Metrics::define());
        if gateway.has_remote_jwks() {
            if let Ok(id) = hostcalls::define_metric(MetricType::Gauge, JWKS_KEYS_GAUGE) {
                let _ = hostcalls::record_metric(id, 0);
            }
            // The first fetch goes out on the first tick, as soon as this VM can dispatch
            // calls (not from here: configuration may run before the cluster is usable).
            if let Ok(mut c) = self.callouts.try_borrow_mut() {
                c.tick_soon();
            }
        }
        self.gateway = Some(Rc::new(gateway));
        true
    }

    fn on_tick(&mut self) {
        if let Some(gateway) = &self.gateway {
            callout::on_tick(gateway, &self.callouts, &self.metrics, self.context_id);
        }
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(KeygateHttp::new(
            context_id,
            self.gateway.clone(),
            Rc::clone(&self.metrics),
            Rc::clone(&self.callouts),
        )))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
