//! The root context: configuration and metrics, once per VM.

use crate::host::{log, HostStore};
use crate::http::KeygateHttp;
use keygate::gateway::{Gateway, Metric};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{BufferType, ContextType, LogLevel, MetricType};
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

/// Parses the plugin configuration and hands each request context the compiled gateway.
#[derive(Default)]
pub struct KeygateRoot {
    gateway: Option<Rc<Gateway>>,
    metrics: Rc<Metrics>,
}

impl Context for KeygateRoot {}

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
        self.gateway = Some(Rc::new(gateway));
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(KeygateHttp::new(
            self.gateway.clone(),
            Rc::clone(&self.metrics),
        )))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
