//! proxy-wasm host calls behind the core's traits: shared data, the request, time, logging.

use keygate::gateway::{RequestView, SharedStore, StoreError};
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

#[link(wasm_import_module = "env")]
extern "C" {
    /// The proxy-wasm ABI call behind the SDK's `get_map_bytes`, declared here because the
    /// SDK (0.2.5) decodes its answer with `String::from_utf8(name).unwrap()`: a header name
    /// that is not UTF-8 would panic the VM. Envoy refuses such names today; the filter does
    /// not rely on it and decodes the bytes itself ([`RequestView::from_proxy_wasm_map`]).
    fn proxy_get_header_map_pairs(
        map_type: MapType,
        return_map_data: *mut *mut u8,
        return_map_size: *mut usize,
    ) -> Status;

    /// The ABI call behind the SDK's `get_property`, declared here for the one property the
    /// filter reads on a request: the SDK's wrapper builds its path in a `Vec<&str>` and a
    /// serialized `Vec<u8>` per call (two allocations) and panics on a status it does not
    /// know; [`client_address`] passes a constant path and treats any other status as absent.
    fn proxy_get_property(
        path_data: *const u8,
        path_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> Status;
}

/// `source.address` serialized as the ABI wants a property path (parts joined by NUL; the
/// SDK's `serialize_property_path` makes the same bytes of `vec!["source", "address"]`).
const SOURCE_ADDRESS: &[u8] = b"source\0address";

/// The downstream address (`source.address`), or `None` if the host has none or refused.
fn client_address() -> Option<Vec<u8>> {
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    // SAFETY: as for the header map: on `Ok` the host wrote a pointer to `size` bytes it
    // allocated through this module's `proxy_on_memory_allocate`, which the Vec now owns.
    unsafe {
        match proxy_get_property(
            SOURCE_ADDRESS.as_ptr(),
            SOURCE_ADDRESS.len(),
            &mut data,
            &mut size,
        ) {
            Status::Ok if !data.is_null() => Some(Vec::from_raw_parts(data, size, size)),
            _ => None,
        }
    }
}

/// The raw serialized request header map, or `None` if the host refused.
fn request_header_bytes() -> Option<Vec<u8>> {
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    // SAFETY: the host writes a pointer to `size` bytes it allocated through this module's
    // `proxy_on_memory_allocate` (the SDK's: `Vec::with_capacity(size)`, forgotten), which
    // the module now owns; the SDK's `get_map_bytes` takes ownership the same way.
    unsafe {
        match proxy_get_header_map_pairs(MapType::HttpRequestHeaders, &mut data, &mut size) {
            Status::Ok if data.is_null() => Some(Vec::new()),
            Status::Ok => Some(Vec::from_raw_parts(data, size, size)),
            _ => None,
        }
    }
}

/// The request being filtered, read from the host once: every request header in one host
/// call (`proxy_get_header_map_pairs`), as bytes, plus the downstream `source.address` when
/// `address` (the gateway's [`needs_client_address`](keygate::gateway::Gateway::needs_client_address)).
/// [`RawRequest::view`] decides on it without copying a header.
#[must_use]
pub fn read_request(address: bool) -> RawRequest {
    let remote = if address { client_address() } else { None };
    RawRequest {
        map: request_header_bytes(),
        remote,
    }
}

/// The host's bytes of one request (see [`read_request`]).
pub struct RawRequest {
    map: Option<Vec<u8>>,
    remote: Option<Vec<u8>>,
}

impl RawRequest {
    /// The request as the gateway reads it, borrowed from these bytes. Unreadable headers
    /// read as a request without headers (refused by the policy: no path).
    #[must_use]
    pub fn view(&self) -> RequestView<'_> {
        self.map
            .as_deref()
            .and_then(|bytes| RequestView::from_proxy_wasm_map(bytes, self.remote.as_deref()))
            .unwrap_or_default()
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
