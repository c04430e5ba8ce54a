//! The request as the gateway sees it: a read-only view the shell implements over its host,
//! and [`RequestHeaders`], an owned one built from raw header bytes.

/// What the gateway reads from a request. The shell implements it over host calls (Envoy:
/// `:method`, `:path`, request headers, the `source.address` property).
pub trait HttpRequest {
    /// The method (`GET`, …); empty when unknown.
    fn method(&self) -> &str;
    /// The raw `:path` (query included); empty when unknown.
    fn path(&self) -> &str;
    /// Every value of request header `name` (lowercase), in the order received, as raw
    /// bytes: one entry per header line the host kept (Envoy keeps repeated `Cookie` lines
    /// apart over HTTP/1.1 and folds most others into one comma-joined value).
    fn header_values(&self, name: &str) -> Vec<&[u8]>;
    /// The downstream remote address (`ip:port` or `ip`), as the proxy decided it (Envoy's
    /// own XFF settings decide whether a forwarded address is trusted).
    fn remote_address(&self) -> Option<&str>;
    /// Whether the request had more header lines than [`MAX_HEADERS`], so some were never
    /// read: a token in one of them could not be seen, so none can be known to be the only one.
    fn header_lines_dropped(&self) -> bool {
        false
    }

    /// The first value of `name` when it is UTF-8; `None` when absent or not UTF-8 (such a
    /// value is treated as absent, never guessed at).
    fn header(&self, name: &str) -> Option<&str> {
        self.header_values(name)
            .first()
            .and_then(|v| std::str::from_utf8(v).ok())
    }
}

/// Most header lines kept from one request (Envoy's default limit is 100).
pub const MAX_HEADERS: usize = 1024;

/// A request read from raw bytes: header names and values exactly as the host gave them.
/// A header whose name is not UTF-8 is dropped (no configured name can match it); a
/// `:method` or `:path` that is not UTF-8 reads as empty (refused by the policy).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestHeaders {
    method: String,
    path: String,
    remote: Option<String>,
    headers: Vec<(String, Vec<u8>)>,
    dropped: bool,
}

impl RequestHeaders {
    /// From `(name, value)` pairs in order and the remote address bytes.
    #[must_use]
    pub fn new(pairs: Vec<(Vec<u8>, Vec<u8>)>, remote: Option<&[u8]>) -> Self {
        let dropped = pairs.len() > MAX_HEADERS;
        let mut headers = Vec::with_capacity(pairs.len().min(MAX_HEADERS));
        for (name, value) in pairs.into_iter().take(MAX_HEADERS) {
            if let Ok(mut name) = String::from_utf8(name) {
                name.make_ascii_lowercase();
                headers.push((name, value));
            }
        }
        let first = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .and_then(|(_, v)| String::from_utf8(v.clone()).ok())
                .unwrap_or_default()
        };
        let (method, path) = (first(":method"), first(":path"));
        Self {
            method,
            path,
            remote: remote.and_then(|r| String::from_utf8(r.to_vec()).ok()),
            headers,
            dropped,
        }
    }

    /// From a proxy-wasm serialized header map (`proxy_get_header_map_pairs`): a
    /// little-endian `u32` count, then a `(u32 name length, u32 value length)` per pair, then
    /// each name and value followed by a NUL byte. `None` when the bytes do not have that
    /// shape (never a panic: the proxy-wasm SDK's own decoder `unwrap`s names as UTF-8).
    #[must_use]
    pub fn from_proxy_wasm_map(bytes: &[u8], remote: Option<&[u8]>) -> Option<Self> {
        Some(Self::new(decode_map(bytes)?, remote))
    }
}

/// The pairs of a proxy-wasm serialized map, copied (see [`map_pairs`]).
fn decode_map(bytes: &[u8]) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
    Some(
        map_pairs(bytes)?
            .into_iter()
            .map(|(k, v)| (k.to_vec(), v.to_vec()))
            .collect(),
    )
}

/// The pairs of a proxy-wasm serialized map, borrowed from `bytes`; `None` when the bytes
/// do not have that shape.
fn map_pairs(bytes: &[u8]) -> Option<Vec<(&[u8], &[u8])>> {
    if bytes.is_empty() {
        return Some(Vec::new());
    }
    let word = |at: usize| -> Option<usize> {
        let b = bytes.get(at..at.checked_add(4)?)?;
        let n = u32::from_le_bytes(b.try_into().ok()?);
        usize::try_from(n).ok()
    };
    let count = word(0)?;
    // Each pair takes at least 8 size bytes and 2 NULs: a count the buffer cannot hold is
    // refused before anything is allocated for it.
    if count > bytes.len() / 10 {
        return None;
    }
    let mut at = 4usize.checked_add(count.checked_mul(8)?)?;
    let mut take = |len: usize| -> Option<&[u8]> {
        let end = at.checked_add(len)?;
        let v = bytes.get(at..end)?;
        if *bytes.get(end)? != 0 {
            return None;
        }
        at = end.checked_add(1)?;
        Some(v)
    };
    let mut pairs = Vec::with_capacity(count);
    for i in 0..count {
        let size = 4usize.checked_add(i.checked_mul(8)?)?;
        let (k, v) = (word(size)?, word(size.checked_add(4)?)?);
        let name = take(k)?;
        let value = take(v)?;
        pairs.push((name, value));
    }
    Some(pairs)
}

/// A request read from a proxy-wasm serialized header map without copying it: names and
/// values are slices of the host's buffer (what the Envoy filter decides on). The same view
/// as [`RequestHeaders`] gives of the same bytes: at most [`MAX_HEADERS`] lines, a name that
/// is not UTF-8 dropped, names matched without regard to ASCII case, a `:method` or `:path`
/// that is not UTF-8 read as empty, a remote address that is not UTF-8 read as absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestView<'a> {
    method: &'a str,
    path: &'a str,
    remote: Option<&'a str>,
    headers: Vec<(&'a [u8], &'a [u8])>,
    dropped: bool,
}

impl<'a> RequestView<'a> {
    /// From the bytes of `proxy_get_header_map_pairs` (see
    /// [`RequestHeaders::from_proxy_wasm_map`]) and the remote address bytes; `None` when
    /// the bytes do not have that shape.
    #[must_use]
    pub fn from_proxy_wasm_map(bytes: &'a [u8], remote: Option<&'a [u8]>) -> Option<Self> {
        let mut headers = map_pairs(bytes)?;
        let dropped = headers.len() > MAX_HEADERS;
        headers.truncate(MAX_HEADERS);
        headers.retain(|(k, _)| std::str::from_utf8(k).is_ok());
        let first = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name.as_bytes()))
                .and_then(|(_, v)| std::str::from_utf8(v).ok())
                .unwrap_or_default()
        };
        let (method, path) = (first(":method"), first(":path"));
        Some(Self {
            method,
            path,
            remote: remote.and_then(|r| std::str::from_utf8(r).ok()),
            headers,
            dropped,
        })
    }
}

impl HttpRequest for RequestView<'_> {
    fn method(&self) -> &str {
        self.method
    }
    fn path(&self) -> &str {
        self.path
    }
    fn header_values(&self, name: &str) -> Vec<&[u8]> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| *v)
            .collect()
    }
    fn remote_address(&self) -> Option<&str> {
        self.remote
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name.as_bytes()))
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }
    fn header_lines_dropped(&self) -> bool {
        self.dropped
    }
}

/// Encodes pairs the way proxy-wasm serializes a header map (tests and fuzzing).
#[must_use]
pub fn encode_proxy_wasm_map(pairs: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    let len = |n: usize| u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes();
    out.extend_from_slice(&len(pairs.len()));
    for (k, v) in pairs {
        out.extend_from_slice(&len(k.len()));
        out.extend_from_slice(&len(v.len()));
    }
    for (k, v) in pairs {
        out.extend_from_slice(k);
        out.push(0);
        out.extend_from_slice(v);
        out.push(0);
    }
    out
}

impl HttpRequest for RequestHeaders {
    fn method(&self) -> &str {
        &self.method
    }
    fn path(&self) -> &str {
        &self.path
    }
    fn header_values(&self, name: &str) -> Vec<&[u8]> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
            .collect()
    }
    fn remote_address(&self) -> Option<&str> {
        self.remote.as_deref()
    }
    fn header_lines_dropped(&self) -> bool {
        self.dropped
    }
}

/// An in-memory request for tests.
#[cfg(test)]
#[derive(Debug, Clone, Default)]
pub(crate) struct MockRequest {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, Vec<u8>)>,
    pub remote: Option<String>,
}

#[cfg(test)]
impl MockRequest {
    pub fn new(method: &str, path: &str) -> Self {
        Self {
            method: method.to_owned(),
            path: path.to_owned(),
            headers: Vec::new(),
            remote: Some("203.0.113.9:40000".to_owned()),
        }
    }

    pub fn get(path: &str) -> Self {
        Self::new("GET", path)
    }

    pub fn with_headers(mut self, headers: &[(&str, &str)]) -> Self {
        self.headers.extend(
            headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec())),
        );
        self
    }

    pub fn with_raw_header(mut self, name: &str, value: &[u8]) -> Self {
        self.headers.push((name.to_owned(), value.to_vec()));
        self
    }

    pub fn bearer(self, token: &str) -> Self {
        self.with_headers(&[("authorization", &format!("Bearer {token}"))])
    }

    pub fn at_ip(mut self, ip: &str) -> Self {
        self.remote = Some(ip.to_owned());
        self
    }
}

#[cfg(test)]
impl HttpRequest for MockRequest {
    fn method(&self) -> &str {
        &self.method
    }
    fn path(&self) -> &str {
        &self.path
    }
    fn header_values(&self, name: &str) -> Vec<&[u8]> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
            .collect()
    }
    fn remote_address(&self) -> Option<&str> {
        self.remote.as_deref()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn proxy_wasm_map_round_trip_ok() {
        let pairs: [(&[u8], &[u8]); 4] = [
            (b":method", b"GET"),
            (b":path", b"/a"),
            (b"Cookie", b"a=1"),
            (b"cookie", b"b=\xff"),
        ];
        let r =
            RequestHeaders::from_proxy_wasm_map(&encode_proxy_wasm_map(&pairs), Some(b"1.2.3.4:5"))
                .unwrap();
        assert_eq!((r.method(), r.path()), ("GET", "/a"));
        assert_eq!(r.header_values("cookie"), [&b"a=1"[..], &b"b=\xff"[..]]);
        assert_eq!(r.remote_address(), Some("1.2.3.4:5"));
        assert_eq!(r.header("cookie"), Some("a=1"));
        let empty = RequestHeaders::from_proxy_wasm_map(&[], None).unwrap();
        assert_eq!(empty.method(), "");
    }

    #[test]
    fn non_utf8_names_and_values_ok() {
        let pairs: [(&[u8], &[u8]); 4] = [
            (b"x-\xff", b"v"),
            (b":path", b"/\xfe"),
            (b"x-key", b"\xc3"),
            (b"authorization", b"Bearer x"),
        ];
        let r = RequestHeaders::from_proxy_wasm_map(&encode_proxy_wasm_map(&pairs), Some(b"\xff"))
            .unwrap();
        // The non-UTF-8 name is dropped, the path reads as empty, the value stays bytes.
        assert_eq!(r.headers.len(), 3);
        assert_eq!(r.path(), "");
        assert_eq!(r.header("x-key"), None);
        assert_eq!(r.header_values("x-key"), [&b"\xc3"[..]]);
        assert_eq!(r.remote_address(), None);
    }

    #[test]
    fn bad_map_bytes_fail() {
        let good = encode_proxy_wasm_map(&[(b"a", b"b")]);
        for cut in 1..good.len() {
            assert!(decode_map(&good[..cut]).is_none(), "{cut}");
        }
        let mut no_nul = good.clone();
        let last = no_nul.len() - 1;
        no_nul[last] = b'x';
        assert!(decode_map(&no_nul).is_none());
        assert!(decode_map(&[0xff, 0xff, 0xff, 0xff]).is_none());
        assert!(decode_map(&[1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]).is_none());
    }

    /// What a request reads as, through the trait only.
    fn reads(
        r: &impl HttpRequest,
        names: &[&str],
    ) -> (String, String, Option<String>, Vec<String>) {
        let mut seen = Vec::new();
        for n in names {
            seen.push(format!("{n}={:?}/{:?}", r.header_values(n), r.header(n)));
        }
        (
            r.method().to_owned(),
            r.path().to_owned(),
            r.remote_address().map(str::to_owned),
            seen,
        )
    }

    #[test]
    fn view_reads_as_owned_ok() {
        let pairs: [(&[u8], &[u8]); 7] = [
            (b":Method", b"POST"),
            (b":path", b"/a?b"),
            (b"x-\xff", b"v"),
            (b"Cookie", b"a=1"),
            (b"cookie", b"b=\xff"),
            (b"AUTHORIZATION", b"Bearer x"),
            (b"x-key", b"\xc3"),
        ];
        let bytes = encode_proxy_wasm_map(&pairs);
        let names = [
            "cookie",
            "authorization",
            "x-key",
            "x-\u{ff}",
            ":method",
            "absent",
        ];
        let owned = RequestHeaders::from_proxy_wasm_map(&bytes, Some(b"1.2.3.4:5")).unwrap();
        let view = RequestView::from_proxy_wasm_map(&bytes, Some(b"1.2.3.4:5")).unwrap();
        assert_eq!(reads(&view, &names), reads(&owned, &names));
        assert_eq!((view.method(), view.path()), ("POST", "/a?b"));
        assert_eq!(view.header_values("cookie"), [&b"a=1"[..], &b"b=\xff"[..]]);
        assert_eq!(view.header("x-key"), None);
        let bad = RequestView::from_proxy_wasm_map(&bytes, Some(b"\xff")).unwrap();
        assert_eq!(bad.remote_address(), None);
        assert!(RequestView::from_proxy_wasm_map(&bytes[..bytes.len() - 1], None).is_none());
        assert_eq!(
            RequestView::from_proxy_wasm_map(&[], None).unwrap().path(),
            ""
        );
    }

    #[test]
    fn view_keeps_max_headers_ok() {
        let mut pairs: Vec<(&[u8], &[u8])> = vec![(b"x-\xff", b"1"); MAX_HEADERS];
        pairs.push((b":path", b"/late"));
        let bytes = encode_proxy_wasm_map(&pairs);
        let view = RequestView::from_proxy_wasm_map(&bytes, None).unwrap();
        let owned = RequestHeaders::from_proxy_wasm_map(&bytes, None).unwrap();
        // Lines past the limit are not read, also when earlier ones were dropped.
        assert_eq!((view.path(), owned.path()), ("", ""));
    }

    proptest! {
        #[test]
        fn decode_map_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = RequestHeaders::from_proxy_wasm_map(&bytes, Some(&bytes));
            let _ = RequestView::from_proxy_wasm_map(&bytes, Some(&bytes));
        }

        #[test]
        fn view_reads_as_owned(
            pairs in proptest::collection::vec(
                (proptest::sample::select(vec![
                    &b":method"[..], b":path", b"Cookie", b"cookie", b"authorization",
                    b"X-Key", b"x-\xff",
                ]), proptest::collection::vec(any::<u8>(), 0..6)),
                0..8,
            ),
            remote in proptest::collection::vec(any::<u8>(), 0..4),
        ) {
            let pairs: Vec<(&[u8], &[u8])> = pairs.iter().map(|(k, v)| (*k, v.as_slice())).collect();
            let bytes = encode_proxy_wasm_map(&pairs);
            let names = [":method", ":path", "cookie", "authorization", "x-key"];
            let owned = RequestHeaders::from_proxy_wasm_map(&bytes, Some(&remote)).unwrap();
            let view = RequestView::from_proxy_wasm_map(&bytes, Some(&remote)).unwrap();
            prop_assert_eq!(reads(&view, &names), reads(&owned, &names));
        }
    }
}
