//! The verified-token cache: one per gateway (so one per Envoy worker VM), like `jwt_authn`'s
//! `jwt_cache_config`.
//!
//! A token that passed [`decode`] in full (signature, `type`, time, `iss`, `aud`) is remembered
//! by the SHA-256 of its bytes with the claims it carried. A later request with the same bytes
//! skips the signature check and the claims parsing, but never the time: every hit checks
//! `exp`/`nbf`/`iat` against that request's `now` (an expired entry is dropped and the token
//! decoded again, which refuses it), and the request's rule is applied to the claims as on a
//! miss. Only verified tokens are ever stored, so an attacker can not fill the cache without
//! valid tokens; refusals are never cached.
//!
//! Bounded by entries ([`MAX_ENTRIES`]) and bytes ([`MAX_BYTES`], the sum of the cached
//! tokens' lengths: the claims an entry holds were decoded from at most that many bytes);
//! when full, the oldest entries go first. Entries die with their key: any change of the key
//! set empties the cache ([`TokenCache::key_set_changed`]).

use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;

use sha2::{Digest, Sha256};

use crate::token::{check_times, decode, Claims, KeySet, TokenError, Validation};

/// Most tokens one cache holds. Defaults to 1,024.
pub const MAX_ENTRIES: usize = 1024;
/// Most token bytes one cache holds (the sum of the cached tokens' lengths): 1 MiB.
pub const MAX_BYTES: usize = 1 << 20;

/// One verified token.
#[derive(Debug, Clone)]
struct Entry {
    /// Shared with every decision the entry answers (a hit copies no string or list).
    claims: Rc<Claims>,
    bytes: usize,
    /// Insertion number: tells a live entry from a stale one in `order`.
    seq: u64,
}

/// Verified tokens by the SHA-256 of their bytes; see the module docs.
#[derive(Debug, Clone)]
pub struct TokenCache {
    entries: BTreeMap<[u8; 32], Entry>,
    /// Insertion order `(seq, digest)`, oldest first; may hold stale pairs of entries already
    /// dropped (expired on a hit), skipped on eviction and compacted when it grows.
    order: VecDeque<(u64, [u8; 32])>,
    bytes: usize,
    next_seq: u64,
    max_entries: usize,
    max_bytes: usize,
    hits: u64,
    misses: u64,
    /// The key set the entries were verified on (see [`TokenCache::key_set`]).
    key_set: u64,
}

impl Default for TokenCache {
    fn default() -> Self {
        Self::new(MAX_ENTRIES, MAX_BYTES)
    }
}

impl TokenCache {
    /// An empty cache holding at most `max_entries` tokens and `max_bytes` token bytes
    /// (`0` for either: a cache that never stores).
    #[must_use]
    pub fn new(max_entries: usize, max_bytes: usize) -> Self {
        Self {
            entries: BTreeMap::new(),
            order: VecDeque::new(),
            bytes: 0,
            next_seq: 0,
            max_entries,
            max_bytes,
            hits: 0,
            misses: 0,
            key_set: 0,
        }
    }

    /// Verifies `token` as [`decode`] does, at `now` (Unix seconds), answering from the cache
    /// when the same bytes were verified before; the time claims are checked on every call.
    /// The claims are shared with the cache entry (a hit clones a pointer, not the claims).
    ///
    /// # Errors
    /// As [`decode`].
    pub fn verify(
        &mut self,
        token: &str,
        keys: &KeySet,
        validation: &Validation,
        now: u64,
    ) -> Result<Rc<Claims>, TokenError> {
        // Oversized tokens are refused by `decode` before anything looks inside them.
        if token.len() > validation.max_token_len {
            return decode(token, keys, validation, now).map(Rc::new);
        }
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(entry) = self.entries.get(&digest) {
            if check_times(&entry.claims, validation, now).is_ok() {
                self.hits += 1;
                return Ok(Rc::clone(&entry.claims));
            }
            // Expired (or, with a clock gone backwards, not yet valid): drop it; the full
            // decode below gives the precise refusal.
            self.remove(&digest);
        }
        self.misses += 1;
        let claims = Rc::new(decode(token, keys, validation, now)?);
        self.insert(digest, token.len(), &claims);
        Ok(claims)
    }

    /// The key set changed (a `remote_jwks` refresh, a rotation): every entry was verified by
    /// a key that may be gone, so all of them go.
    pub fn key_set_changed(&mut self) {
        self.entries.clear();
        self.order.clear();
        self.bytes = 0;
    }

    /// The entries are for key set number `key_set` (the caller counts installs): a number
    /// other than the last one given empties the cache first, as [`TokenCache::key_set_changed`].
    pub fn key_set(&mut self, key_set: u64) {
        if key_set != self.key_set {
            self.key_set_changed();
            self.key_set = key_set;
        }
    }

    /// Tokens held.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no token is held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Token bytes held.
    #[must_use]
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// `(hits, misses)` since the cache was made.
    #[must_use]
    pub fn stats(&self) -> (u64, u64) {
        (self.hits, self.misses)
    }

    fn insert(&mut self, digest: [u8; 32], bytes: usize, claims: &Rc<Claims>) {
        if bytes > self.max_bytes || self.max_entries == 0 {
            return;
        }
        while self.entries.len() >= self.max_entries || self.bytes + bytes > self.max_bytes {
            let Some((seq, oldest)) = self.order.pop_front() else {
                break;
            };
            if self.entries.get(&oldest).is_some_and(|e| e.seq == seq) {
                self.remove(&oldest);
            }
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.bytes += bytes;
        self.entries.insert(
            digest,
            Entry {
                claims: Rc::clone(claims),
                bytes,
                seq,
            },
        );
        self.order.push_back((seq, digest));
        // Stale pairs (entries dropped on a hit) never outnumber the live ones for long.
        if self.order.len() > 2 * self.max_entries {
            let entries = &self.entries;
            self.order
                .retain(|(seq, d)| entries.get(d).is_some_and(|e| e.seq == *seq));
        }
    }

    fn remove(&mut self, digest: &[u8; 32]) {
        if let Some(e) = self.entries.remove(digest) {
            self.bytes -= e.bytes;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::token::{encode, Algorithm, SigningKey, TokenType, VerifyingKey};
    use crate::ErrorCode;

    const SECRET: &[u8] = b"keygate-cache-test-secret-0123456789abcdef";

    const NOW: u64 = 1_700_000_000;

    fn keys(kid: &str, secret: &[u8]) -> KeySet {
        KeySet::single(
            VerifyingKey::from_secret(secret, Algorithm::HS256, Some(kid.into())).unwrap(),
        )
    }

    fn token(kid: &str, secret: &[u8], sub: &str, exp: u64) -> String {
        let mut c = Claims::new(TokenType::Access, sub, NOW - 10, 0);
        c.exp = exp;
        c.roles = vec!["doctor".into()];
        encode(&c, &signer(kid, secret)).unwrap()
    }

    fn signer(kid: &str, secret: &[u8]) -> SigningKey {
        SigningKey::from_secret(secret, Algorithm::HS256, Some(kid.into())).unwrap()
    }

    fn validation() -> Validation {
        let mut v = Validation::new(TokenType::Access);
        v.leeway = 0;
        v
    }

    #[test]
    fn hit_skips_verification_ok() {
        let (k, v) = (keys("k1", SECRET), validation());
        let t = token("k1", SECRET, "alice", NOW + 60);
        let mut cache = TokenCache::default();
        let first = cache.verify(&t, &k, &v, NOW).unwrap();
        // A key set that can not verify anything: the second answer comes from the cache.
        let empty = keys("other", b"another secret, another secret, 32+ bytes");
        let second = cache.verify(&t, &empty, &v, NOW + 1).unwrap();
        assert_eq!(first, second);
        // The hit shares the entry's claims: nothing copied per request.
        assert!(Rc::ptr_eq(&first, &second));
        assert_eq!(cache.stats(), (1, 1));
        assert_eq!((cache.len(), cache.bytes()), (1, t.len()));
    }

    #[test]
    fn expiry_on_hit_fails() {
        let (k, v) = (keys("k1", SECRET), validation());
        let t = token("k1", SECRET, "alice", NOW + 60);
        let mut cache = TokenCache::default();
        cache.verify(&t, &k, &v, NOW).unwrap();
        assert_eq!(cache.verify(&t, &k, &v, NOW + 60).unwrap().sub, "alice");
        let e = cache.verify(&t, &k, &v, NOW + 61).unwrap_err();
        assert_eq!(e.code(), "token_expired");
        assert!(cache.is_empty(), "an expired entry is dropped");
        // Leeway applies on a hit exactly as on a miss.
        let mut lenient = v.clone();
        lenient.leeway = 5;
        cache.verify(&t, &k, &lenient, NOW).unwrap();
        assert!(cache.verify(&t, &k, &lenient, NOW + 65).is_ok());
        assert_eq!(
            cache.verify(&t, &k, &lenient, NOW + 66).unwrap_err().code(),
            "token_expired"
        );
    }

    #[test]
    fn not_yet_valid_on_hit_fails() {
        let (k, v) = (keys("k1", SECRET), validation());
        let mut c = Claims::new(TokenType::Access, "alice", NOW - 10, 610);
        c.nbf = Some(NOW + 10);
        let t = encode(&c, &signer("k1", SECRET)).unwrap();
        let mut cache = TokenCache::default();
        cache.verify(&t, &k, &v, NOW + 10).unwrap();
        // A clock that went back (another worker's, a step): the hit is refused too.
        let e = cache.verify(&t, &k, &v, NOW + 9).unwrap_err();
        assert_eq!(e.code(), "token_not_yet_valid");
    }

    #[test]
    fn key_rotation_empties_fails() {
        let (old, v) = (keys("k1", SECRET), validation());
        let t = token("k1", SECRET, "alice", NOW + 600);
        let mut cache = TokenCache::default();
        cache.verify(&t, &old, &v, NOW).unwrap();
        // k1 is rotated out: after the change the token is verified again, and refused.
        let new = keys("k2", b"the rotated secret, the rotated secret, 32+");
        cache.key_set_changed();
        assert!(cache.is_empty());
        assert_eq!(cache.bytes(), 0);
        let e = cache.verify(&t, &new, &v, NOW).unwrap_err();
        assert_eq!(e.code(), "token_unknown_key");
    }

    #[test]
    fn refusals_are_not_cached_ok() {
        let (k, v) = (keys("k1", SECRET), validation());
        let t = token(
            "k1",
            b"a different secret, a different secret, 32",
            "eve",
            NOW + 60,
        );
        let mut cache = TokenCache::default();
        for _ in 0..3 {
            assert_eq!(
                cache.verify(&t, &k, &v, NOW).unwrap_err().code(),
                "token_invalid"
            );
        }
        assert!(cache.is_empty());
        assert_eq!(cache.stats(), (0, 3));
    }

    #[test]
    fn entry_bound_evicts_oldest_ok() {
        let (k, v) = (keys("k1", SECRET), validation());
        let mut cache = TokenCache::new(3, MAX_BYTES);
        let tokens: Vec<String> = (0..5)
            .map(|i| token("k1", SECRET, &format!("user{i}"), NOW + 600))
            .collect();
        for t in &tokens {
            cache.verify(t, &k, &v, NOW).unwrap();
            assert!(cache.len() <= 3);
        }
        assert_eq!(cache.len(), 3);
        assert_eq!(
            cache.bytes(),
            tokens[2..].iter().map(String::len).sum::<usize>()
        );
        let (hits, _) = cache.stats();
        cache.verify(&tokens[4], &k, &v, NOW).unwrap();
        assert_eq!(cache.stats().0, hits + 1, "the newest stays");
        cache.verify(&tokens[0], &k, &v, NOW).unwrap();
        assert_eq!(cache.stats().0, hits + 1, "the oldest went");
    }

    #[test]
    fn byte_bound_ok() {
        let (k, v) = (keys("k1", SECRET), validation());
        let one = token("k1", SECRET, "user0", NOW + 600).len();
        let mut cache = TokenCache::new(100, 2 * one + one / 2);
        for i in 0..10 {
            cache
                .verify(
                    &token("k1", SECRET, &format!("user{i}"), NOW + 600),
                    &k,
                    &v,
                    NOW,
                )
                .unwrap();
            assert!(cache.bytes() <= 2 * one + one / 2);
        }
        assert_eq!(cache.len(), 2);
        // A token bigger than the whole budget is verified but never stored.
        let mut tiny = TokenCache::new(100, one - 1);
        tiny.verify(&token("k1", SECRET, "user0", NOW + 600), &k, &v, NOW)
            .unwrap();
        assert!(tiny.is_empty());
        let mut off = TokenCache::new(0, MAX_BYTES);
        off.verify(&token("k1", SECRET, "user0", NOW + 600), &k, &v, NOW)
            .unwrap();
        assert!(off.is_empty());
    }

    #[test]
    fn stale_order_stays_bounded_ok() {
        let (k, v) = (keys("k1", SECRET), validation());
        let mut cache = TokenCache::new(4, MAX_BYTES);
        // Short-lived tokens dropped on their hit leave stale order pairs behind.
        for i in 0..100 {
            let t = token("k1", SECRET, &format!("u{i}"), NOW + 1);
            cache.verify(&t, &k, &v, NOW).unwrap();
            assert!(cache.verify(&t, &k, &v, NOW + 2).is_err());
            assert!(cache.order.len() <= 2 * 4 + 1);
        }
        assert!(cache.is_empty());
        assert_eq!(cache.bytes(), 0);
    }

    #[test]
    fn oversized_is_refused_before_hashing_fails() {
        let (k, mut v) = (keys("k1", SECRET), validation());
        let t = token("k1", SECRET, "alice", NOW + 600);
        let mut cache = TokenCache::default();
        cache.verify(&t, &k, &v, NOW).unwrap();
        v.max_token_len = t.len() - 1;
        assert_eq!(
            cache.verify(&t, &k, &v, NOW).unwrap_err().code(),
            "token_too_large"
        );
    }
}
