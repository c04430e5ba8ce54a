//! The request as the gateway sees it: a read-only view the shell implements over its host.

/// What the gateway reads from a request. The shell implements it over host calls (Envoy:
/// `:method`, `:path`, request headers, the `source.address` property).
pub trait HttpRequest {
    /// The method (`GET`, …); empty when unknown.
    fn method(&self) -> &str;
    /// The raw `:path` (query included); empty when unknown.
    fn path(&self) -> &str;
    /// The first value of request header `name` (lowercase). Invalid UTF-8 may be replaced
    /// lossily: such a value can never form a valid token.
    fn header(&self, name: &str) -> Option<String>;
    /// How many values request header `name` has (an Authorization header sent twice: 2).
    fn header_count(&self, name: &str) -> usize;
    /// The downstream remote address (`ip:port` or `ip`), as the proxy decided it (Envoy's
    /// own XFF settings decide whether a forwarded address is trusted).
    fn remote_address(&self) -> Option<&str>;
}

/// An in-memory request for tests.
#[cfg(test)]
#[derive(Debug, Clone, Default)]
pub(crate) struct MockRequest {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
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
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
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
    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
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
