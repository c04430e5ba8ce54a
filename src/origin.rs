//! The `Origin` check for cookie-authenticated requests that change state (defence in depth
//! beside `SameSite`): a browser names the page that sent a request in `Origin`; a request
//! from another site, a sandboxed frame (`null`) or with no `Origin` at all is refused.

/// Whether `origin` (the request's `Origin` header, `None` when absent) is one of `allowed`
/// (`"https://app.example.com"`, `"http://127.0.0.1:8080"`). Scheme and host compare
/// ASCII-case-insensitively and a default port (`:443` for https, `:80` for http) equals none;
/// paths, user info, `null`, a missing header and anything unparsable are refused.
#[must_use]
pub fn origin_allowed(origin: Option<&str>, allowed: &[&str]) -> bool {
    let Some(given) = origin.and_then(canonical) else {
        return false;
    };
    allowed
        .iter()
        .filter_map(|a| canonical(a))
        .any(|a| a == given)
}

/// `scheme://host[:port]` lowercased with the default port dropped, or `None`.
fn canonical(origin: &str) -> Option<String> {
    if origin.len() > 2048 {
        return None;
    }
    let (scheme, rest) = origin.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "https" => "443",
        "http" => "80",
        _ => return None,
    };
    let host_ok = |h: &str| {
        !h.is_empty()
            && h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.[]:".contains(&b))
    };
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => (h, Some(p)),
        _ => (rest, None),
    };
    if !host_ok(host) || rest.contains(['/', '@', '?', '#']) {
        return None;
    }
    let host = host.to_ascii_lowercase();
    Some(match port {
        Some(p) if p != default_port => format!("{scheme}://{host}:{p}"),
        _ => format!("{scheme}://{host}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALLOWED: &[&str] = &["https://app.example.com", "http://127.0.0.1:8080"];

    #[test]
    fn same_origin_ok() {
        for o in [
            "https://app.example.com",
            "HTTPS://App.Example.com",
            "https://app.example.com:443",
            "http://127.0.0.1:8080",
        ] {
            assert!(origin_allowed(Some(o), ALLOWED), "{o}");
        }
    }

    #[test]
    fn other_or_missing_origin_fails() {
        for o in [
            "https://evil.example",
            "http://app.example.com",
            "https://app.example.com:8443",
            "https://app.example.com.evil.example",
            "https://app.example.com/",
            "https://user@app.example.com",
            "null",
            "",
            "http://127.0.0.1:8081",
            "ftp://app.example.com",
        ] {
            assert!(!origin_allowed(Some(o), ALLOWED), "{o}");
        }
        assert!(!origin_allowed(None, ALLOWED));
        assert!(!origin_allowed(Some("https://app.example.com"), &[]));
    }
}
