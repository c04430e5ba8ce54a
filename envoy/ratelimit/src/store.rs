//! Where descriptor state lives: Redis (shared by every replica) or this process (`--memory`).
//!
//! Both offer the same two operations, which is all the compare-and-set loop in
//! [`crate::service`] needs:
//! - `read(key)`: the key's bytes (or none) and the store's clock;
//! - `cas(key, expected, new, ttl)`: write `new` (expiring after `ttl`) only if the key still
//!   holds `expected`; otherwise hand back what it holds now and the clock.
//!
//! On Redis both are Lua scripts (`EVALSHA`, loaded again by the client after a Redis restart):
//! a script runs atomically, touches one key (so it runs on Redis Cluster too), and works on a
//! multiplexed connection, where `WATCH`/`MULTI` would need a connection per transaction and
//! three more round trips. The clock is Redis's own `TIME`, so every replica decides on one
//! clock and skew between service hosts does not matter.

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, Script, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Most keys `--memory` keeps (idle keys expire; a full map refuses new keys: UNAVAILABLE).
pub const MAX_MEMORY_KEYS: usize = 1 << 20;

/// What `cas` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cas {
    /// The key held the expected bytes and now holds the new ones.
    Swapped,
    /// The key changed since it was read: its current bytes and the store's clock.
    Changed(Option<Vec<u8>>, u64),
}

/// Why the store could not answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError(pub String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The state store.
pub enum Store {
    /// Redis (`--redis URL`).
    Redis(Box<RedisStore>),
    /// This process (`--memory`).
    Memory(MemoryStore),
}

impl Store {
    /// The key's bytes and the store's clock (Unix ms).
    pub async fn read(&self, key: &str) -> Result<(Option<Vec<u8>>, u64), StoreError> {
        match self {
            Self::Redis(r) => r.read(key).await,
            Self::Memory(m) => m.read(key),
        }
    }

    /// Writes `new` if the key still holds `expected` (`None`: absent).
    pub async fn cas(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
        ttl_ms: u64,
    ) -> Result<Cas, StoreError> {
        match self {
            Self::Redis(r) => r.cas(key, expected, new, ttl_ms).await,
            Self::Memory(m) => m.cas(key, expected, new, ttl_ms),
        }
    }

    /// Called when a request ran out of time in the store. A Redis connection that has not
    /// answered anything for [`STUCK_AFTER`] is dropped, so a silently dead peer is replaced;
    /// a slow but live one is kept (no reconnect storm under short deadlines).
    pub fn timed_out(&self) {
        if let Self::Redis(r) = self {
            r.timed_out();
        }
    }

    /// What the log calls it.
    pub fn describe(&self) -> String {
        match self {
            Self::Redis(r) => format!("redis at {}", r.address),
            Self::Memory(_) => "memory (this process only)".to_owned(),
        }
    }
}

// GET and TIME in one round trip. A missing key is `false` in Lua, nil in the reply.
const READ_LUA: &str = r"
local v = redis.call('GET', KEYS[1])
local t = redis.call('TIME')
return {v, t[1], t[2]}
";

// Swap only if unchanged (ARGV[1] == '' means "absent"; states are never empty). On a lost
// race, return what is there now and the clock, so the retry needs no extra read.
const CAS_LUA: &str = r"
local cur = redis.call('GET', KEYS[1])
if (cur or '') == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return {1}
end
local t = redis.call('TIME')
return {0, cur, t[1], t[2]}
";

/// How long a Redis connection may go without any reply while requests time out before it is
/// replaced.
pub const STUCK_AFTER: Duration = Duration::from_secs(1);

/// Redis through one multiplexed connection (concurrent calls are pipelined on it), made on
/// first use and again after it breaks, so Redis may start after the service and may restart.
pub struct RedisStore {
    client: Client,
    address: String,
    current: Mutex<Option<(u64, MultiplexedConnection)>>,
    connecting: tokio::sync::Mutex<()>,
    generation: AtomicU64,
    started: Instant,
    last_reply_ms: AtomicU64,
    read: Script,
    cas: Script,
}

impl RedisStore {
    /// A store for `url` (`redis://host:port[/db]`); connects on first use.
    ///
    /// # Errors
    /// A message when the URL is not a Redis URL this build can use.
    pub fn new(url: &str) -> Result<Self, String> {
        let client = Client::open(url).map_err(|e| format!("not a usable Redis URL: {e}"))?;
        let info = client.get_connection_info();
        let address = info.addr().to_string();
        Ok(Self {
            client,
            address,
            current: Mutex::new(None),
            connecting: tokio::sync::Mutex::new(()),
            generation: AtomicU64::new(0),
            started: Instant::now(),
            last_reply_ms: AtomicU64::new(0),
            read: Script::new(READ_LUA),
            cas: Script::new(CAS_LUA),
        })
    }

    fn cached(&self) -> Option<(u64, MultiplexedConnection)> {
        self.current.lock().ok().and_then(|g| g.clone())
    }

    async fn connection(&self) -> Result<(u64, MultiplexedConnection), StoreError> {
        if let Some(c) = self.cached() {
            return Ok(c);
        }
        let _one_at_a_time = self.connecting.lock().await;
        if let Some(c) = self.cached() {
            return Ok(c);
        }
        // The caller's deadline bounds the wait; these only stop a dead connect lingering.
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)));
        let conn = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| StoreError(format!("cannot connect to redis at {}: {e}", self.address)))?;
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        if let Ok(mut g) = self.current.lock() {
            *g = Some((generation, conn.clone()));
        }
        Ok((generation, conn))
    }

    /// Drops connection `generation` (broken, or stuck past a deadline) so the next call
    /// connects afresh; a newer connection is left alone.
    pub fn discard(&self, generation: u64) {
        if let Ok(mut g) = self.current.lock() {
            if g.as_ref().is_some_and(|(n, _)| *n == generation) {
                *g = None;
            }
        }
    }

    fn uptime_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn timed_out(&self) {
        let now = self.uptime_ms();
        let last = self.last_reply_ms.load(Ordering::Relaxed);
        let stuck = u64::try_from(STUCK_AFTER.as_millis()).unwrap_or(u64::MAX);
        if now.saturating_sub(last) > stuck {
            // Count the replacement as a reply: at most one reconnect per STUCK_AFTER.
            self.last_reply_ms.store(now, Ordering::Relaxed);
            if let Some((generation, _)) = self.cached() {
                log::warn!(
                    "redis at {}: no reply for {STUCK_AFTER:?}; reconnecting",
                    self.address
                );
                self.discard(generation);
            }
        }
    }

    async fn invoke(
        &self,
        script: &Script,
        key: &str,
        args: &[&[u8]],
    ) -> Result<Value, StoreError> {
        let (generation, mut conn) = self.connection().await?;
        let mut call = script.key(key);
        for a in args {
            call.arg(*a);
        }
        match call.invoke_async::<Value>(&mut conn).await {
            Ok(v) => {
                self.last_reply_ms
                    .store(self.uptime_ms(), Ordering::Relaxed);
                Ok(v)
            }
            Err(e) => {
                if e.is_io_error()
                    || e.is_connection_dropped()
                    || e.is_timeout()
                    || e.is_unrecoverable_error()
                {
                    self.discard(generation);
                }
                Err(StoreError(format!("redis at {}: {e}", self.address)))
            }
        }
    }

    async fn read(&self, key: &str) -> Result<(Option<Vec<u8>>, u64), StoreError> {
        let v = self.invoke(&self.read, key, &[]).await?;
        match v {
            Value::Array(items) => match items.as_slice() {
                [value, secs, micros] => Ok((bytes(value)?, clock(secs, micros)?)),
                _ => Err(unexpected()),
            },
            _ => Err(unexpected()),
        }
    }

    async fn cas(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
        ttl_ms: u64,
    ) -> Result<Cas, StoreError> {
        let ttl = ttl_ms.max(1).to_string();
        let v = self
            .invoke(
                &self.cas,
                key,
                &[expected.unwrap_or(b""), new, ttl.as_bytes()],
            )
            .await?;
        match v {
            Value::Array(items) => match items.as_slice() {
                [Value::Int(1)] => Ok(Cas::Swapped),
                [Value::Int(0), value, secs, micros] => {
                    Ok(Cas::Changed(bytes(value)?, clock(secs, micros)?))
                }
                _ => Err(unexpected()),
            },
            _ => Err(unexpected()),
        }
    }
}

fn unexpected() -> StoreError {
    StoreError("redis answered the script with an unexpected reply".to_owned())
}

fn bytes(v: &Value) -> Result<Option<Vec<u8>>, StoreError> {
    match v {
        Value::Nil => Ok(None),
        Value::BulkString(b) => Ok(Some(b.clone())),
        _ => Err(unexpected()),
    }
}

/// Redis `TIME` (seconds, microseconds) as Unix milliseconds.
fn clock(secs: &Value, micros: &Value) -> Result<u64, StoreError> {
    let num = |v: &Value| -> Option<u64> {
        match v {
            Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
            Value::Int(i) => u64::try_from(*i).ok(),
            _ => None,
        }
    };
    match (num(secs), num(micros)) {
        (Some(s), Some(us)) => Ok(s.saturating_mul(1_000).saturating_add(us / 1_000)),
        _ => Err(unexpected()),
    }
}

/// State in this process, behind one lock: one node only.
#[derive(Default)]
pub struct MemoryStore {
    map: Mutex<Entries>,
}

/// Key → (bytes, expiry in Unix ms).
type Entries = HashMap<String, (Arc<[u8]>, u64)>;

impl MemoryStore {
    fn now_ms() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Entries>, StoreError> {
        self.map
            .lock()
            .map_err(|_| StoreError("memory store lock poisoned".to_owned()))
    }

    fn read(&self, key: &str) -> Result<(Option<Vec<u8>>, u64), StoreError> {
        let now = Self::now_ms();
        let map = self.lock()?;
        let v = map
            .get(key)
            .filter(|(_, expires)| *expires > now)
            .map(|(b, _)| b.to_vec());
        Ok((v, now))
    }

    fn cas(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
        ttl_ms: u64,
    ) -> Result<Cas, StoreError> {
        let now = Self::now_ms();
        let mut map = self.lock()?;
        let current = map
            .get(key)
            .filter(|(_, expires)| *expires > now)
            .map(|(b, _)| b.clone());
        if current.as_deref() != expected {
            return Ok(Cas::Changed(current.map(|b| b.to_vec()), now));
        }
        if !map.contains_key(key) && map.len() >= MAX_MEMORY_KEYS {
            map.retain(|_, (_, expires)| *expires > now);
            if map.len() >= MAX_MEMORY_KEYS {
                return Err(StoreError(format!(
                    "memory store full ({MAX_MEMORY_KEYS} active keys)"
                )));
            }
        }
        map.insert(key.to_owned(), (Arc::from(new), now.saturating_add(ttl_ms)));
        Ok(Cas::Swapped)
    }

    /// Keys held (expired ones included until swept).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.map.lock().map_or(0, |m| m.len())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn memory_cas_ok() {
        let m = MemoryStore::default();
        let (v, now) = m.read("k").unwrap();
        assert!(v.is_none() && now > 0);
        assert_eq!(m.cas("k", None, b"a", 60_000).unwrap(), Cas::Swapped);
        assert!(
            matches!(m.cas("k", None, b"b", 60_000).unwrap(), Cas::Changed(Some(ref c), _) if c == b"a")
        );
        assert_eq!(m.cas("k", Some(b"a"), b"b", 60_000).unwrap(), Cas::Swapped);
        assert_eq!(m.read("k").unwrap().0.as_deref(), Some(&b"b"[..]));
        // An expired key reads as absent.
        assert_eq!(m.cas("e", None, b"x", 0).unwrap(), Cas::Swapped);
        assert!(m.read("e").unwrap().0.is_none());
        assert_eq!(m.cas("e", None, b"y", 1_000).unwrap(), Cas::Swapped);
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn redis_reply_parsing_ok() {
        assert_eq!(
            clock(
                &Value::BulkString(b"1700000000".to_vec()),
                &Value::BulkString(b"123456".to_vec())
            ),
            Ok(1_700_000_000_123)
        );
        assert!(clock(&Value::Nil, &Value::Int(1)).is_err());
        assert_eq!(bytes(&Value::Nil), Ok(None));
        assert_eq!(bytes(&Value::BulkString(vec![1])), Ok(Some(vec![1])));
        assert!(bytes(&Value::Int(3)).is_err());
    }

    #[test]
    fn bad_redis_url_fails() {
        assert!(RedisStore::new("http://127.0.0.1:1").is_err());
        assert!(RedisStore::new("redis://127.0.0.1:6379").is_ok());
    }
}
