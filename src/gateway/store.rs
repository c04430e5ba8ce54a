//! Shared state with compare-and-swap: the host capability rate limiting needs.
//!
//! Modelled on proxy-wasm shared data (`proxy_get_shared_data` / `proxy_set_shared_data`),
//! which every worker VM of one `vm_id` shares: a read returns the value and a CAS token; a
//! write with a CAS token succeeds only if the value was not written since. Two gaps in that
//! ABI shape the gateway's use of it:
//! - a write with CAS `0` overwrites unconditionally;
//! - a write to a key that does not exist **always** succeeds, whatever CAS it carries, so two
//!   workers that both read "absent" would both "create" the key and the second would silently
//!   overwrite the first: creation is not atomic.
//!
//! The gateway therefore never creates a key on the request path in normal operation: every
//! slot key is created once, with a [`SENTINEL`] value, when the configuration is loaded
//! ([`super::Gateway::prepare_store`]), and every later write is a real CAS against a value
//! that exists. See that method for the remaining (startup-only) window.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;

/// The value a slot key is created with: "no state yet". It is not a valid
/// [`crate::ratelimit::State`] (version 0), so the limiter starts such a slot fresh.
pub const SENTINEL: &[u8] = &[0];

/// Why a store operation did not happen.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreError {
    /// The value changed since it was read: read again and retry.
    CasMismatch,
    /// The host refused the operation.
    Unavailable,
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CasMismatch => f.write_str("shared value changed since it was read"),
            Self::Unavailable => f.write_str("shared data is unavailable"),
        }
    }
}

impl std::error::Error for StoreError {}

impl crate::ErrorCode for StoreError {
    fn code(&self) -> &'static str {
        match self {
            Self::CasMismatch => "store_cas_mismatch",
            Self::Unavailable => "store_unavailable",
        }
    }
}

/// Key/value storage shared by every worker, with compare-and-swap (proxy-wasm semantics).
pub trait SharedStore {
    /// The value of `key` and its CAS token (never 0); `Ok(None)` when the key does not exist.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the host fails.
    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, StoreError>;

    /// Writes `value` if the key's CAS token is still `cas`; `cas == 0` writes
    /// unconditionally. A key that does not exist is created whatever `cas` is.
    ///
    /// # Errors
    /// [`StoreError::CasMismatch`] when the value changed since `cas` was read;
    /// [`StoreError::Unavailable`] when the host fails.
    fn set(&self, key: &str, value: &[u8], cas: u32) -> Result<(), StoreError>;
}

/// A single-threaded in-memory [`SharedStore`] with exactly the proxy-wasm semantics above
/// (including the non-atomic creation). For tests and single-process hosts.
#[derive(Debug, Default)]
pub struct MemoryStore {
    map: RefCell<HashMap<String, (Vec<u8>, u32)>>,
    next_cas: RefCell<u32>,
}

impl MemoryStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of keys.
    #[must_use]
    pub fn len(&self) -> usize {
        self.map.borrow().len()
    }

    /// Whether the store holds no key.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.map.borrow().is_empty()
    }

    fn bump(&self) -> u32 {
        let mut n = self.next_cas.borrow_mut();
        *n = n.checked_add(1).unwrap_or(1);
        *n
    }
}

impl SharedStore for MemoryStore {
    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, StoreError> {
        Ok(self.map.borrow().get(key).cloned())
    }

    fn set(&self, key: &str, value: &[u8], cas: u32) -> Result<(), StoreError> {
        let current = self.map.borrow().get(key).map(|(_, c)| *c);
        if let Some(current) = current {
            if cas != 0 && cas != current {
                return Err(StoreError::CasMismatch);
            }
        }
        let next = self.bump();
        self.map
            .borrow_mut()
            .insert(key.to_owned(), (value.to_vec(), next));
        Ok(())
    }
}

/// A store whose every call fails: for fail-closed tests.
#[cfg(test)]
pub(crate) struct BrokenStore;

#[cfg(test)]
impl SharedStore for BrokenStore {
    fn get(&self, _: &str) -> Result<Option<(Vec<u8>, u32)>, StoreError> {
        Err(StoreError::Unavailable)
    }
    fn set(&self, _: &str, _: &[u8], _: u32) -> Result<(), StoreError> {
        Err(StoreError::Unavailable)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::ErrorCode;

    #[test]
    fn cas_semantics_ok() {
        let s = MemoryStore::new();
        assert!(s.is_empty());
        assert_eq!(s.get("k").unwrap(), None);
        // Creation ignores the CAS token, as in proxy-wasm.
        s.set("k", b"a", 12345).unwrap();
        let (v, cas) = s.get("k").unwrap().unwrap();
        assert_eq!(v, b"a");
        assert_ne!(cas, 0);
        s.set("k", b"b", cas).unwrap();
        assert_eq!(s.set("k", b"c", cas), Err(StoreError::CasMismatch));
        assert_eq!(s.get("k").unwrap().unwrap().0, b"b");
        s.set("k", b"d", 0).unwrap();
        assert_eq!(s.get("k").unwrap().unwrap().0, b"d");
        assert_eq!(s.len(), 1);
        assert_eq!(StoreError::CasMismatch.code(), "store_cas_mismatch");
        assert_eq!(StoreError::Unavailable.code(), "store_unavailable");
    }

    #[test]
    fn sentinel_is_not_state_fails() {
        assert!(crate::ratelimit::State::try_from(SENTINEL).is_err());
    }
}
