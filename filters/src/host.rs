//! proxy-wasm host calls behind the core's traits: shared data, the request, time, logging.

use keygate::gateway::{HttpRequest, SharedStore, StoreError};
use proxy_wasm::hostcalls;
use proxy_wasm::types::{LogLevel, MapType, Status};
use std::time::UNIX_EPOCH;

/// Envoy's shared data (one map per `vm_id`, shared by every worker VM).
pub struct HostStore;

impl SharedStore for HostStore {
    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, StoreError> {
        match hostcalls::get_shared_data(key) {
            Ok((value, Some(cas))) => Ok(Some((value.unwrap_or_default(), cas))),
            Ok((None, None)) => Ok(None),
            // A value without a CAS token cannot be updated safely.
            Ok((Some(_), None)) | Err(_) => Err(StoreError::Unavailable),
        }
    }

    fn set(&self, key: &str, value: &[u8], cas: u32) -> Result<(), StoreError> {
        match hostcalls::set_shared_data(key, Some(value), (cas != 0).then_some(cas)) {
            Ok(()) => Ok(()),
            Err(Status::CasMismatch) => Err(StoreError::CasMismatch),
            Err(_) => Err(StoreError::Unavailable),
        }
    }
}

/// The request being filtered, read from the host once: every request header in one host
/// call (`proxy_get_header_map_pairs`) instead of one call, plus one allocation call back
/// into the module, per header looked up.
pub struct HostRequest {
    method: String,
    path: String,
    remote: Option<String>,
    headers: Vec<(String, Vec<u8>)>,
}

impl HostRequest {
    /// Reads the request headers and the downstream `source.address`.
    #[must_use]
    pub fn read() -> Self {
        let remote = hostcalls::get_property(vec!["source", "address"])
            .ok()
            .flatten()
            .map(|b| String::from_utf8_lossy(&b).into_owned());
        let headers = hostcalls::get_map_bytes(MapType::HttpRequestHeaders).unwrap_or_default();
        let mut request = Self {
            method: String::new(),
            path: String::new(),
            remote,
            headers,
        };
        request.method = request.header(":method").unwrap_or_default();
        request.path = request.header(":path").unwrap_or_default();
        request
    }
}

impl HttpRequest for HostRequest {
    fn method(&self) -> &str {
        &self.method
    }
    fn path(&self) -> &str {
        &self.path
    }
    /// The first value, as Envoy's own single-header lookup returns.
    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }
    fn header_count(&self, name: &str) -> usize {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .count()
    }
    fn remote_address(&self) -> Option<&str> {
        self.remote.as_deref()
    }
}

/// Milliseconds since the Unix epoch from the host clock; 0 if unavailable (every token then
/// looks not yet valid: fails closed).
#[must_use]
pub fn now_ms() -> u64 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// One proxy log line (never a token or secret: callers pass fixed texts and config errors).
pub fn log(level: LogLevel, message: &str) {
    let _ = hostcalls::log(level, message);
}
