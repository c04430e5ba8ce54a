//! What a limit counts against: the `key` field (`"ip"`, `"sub"`, `"header:<name>"`).

use crate::ConfigError;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

/// Longest header name accepted in `header:<name>`.
pub const MAX_KEY_HEADER_LEN: usize = 128;

const ACCEPTED: &str = "expected \"ip\", \"sub\" or \"header:<name>\" (a lowercase header name)";

/// What identifies the client a limit counts against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// The client address (Envoy's downstream remote address; IPv6 by /64).
    Ip,
    /// The token subject; the client address when the request has no verified principal.
    Sub,
    /// The value of this request header (lowercase name); the client address when absent.
    Header(String),
}

impl KeySource {
    /// Whether the key is known before the token is verified (`ip`, `header:`): such limits
    /// are checked first, so floods are cut before any signature is checked.
    #[must_use]
    pub fn is_pre_token(&self) -> bool {
        !matches!(self, Self::Sub)
    }

    /// The header to read for `header:` keys.
    #[must_use]
    pub fn header_name(&self) -> Option<&str> {
        match self {
            Self::Header(name) => Some(name),
            Self::Ip | Self::Sub => None,
        }
    }

    /// The key string to fingerprint: `sub:<sub>` for `sub` with a principal, `hdr:<value>` for
    /// `header:` with the header present and not blank, otherwise the client address key ([`ip_key`];
    /// `ip:unknown`, one shared bucket, when the shell has no address). The namespaces keep a
    /// subject, a header value and an address from ever sharing a bucket.
    #[must_use]
    pub fn key(&self, client_ip: Option<&str>, sub: Option<&str>, header: Option<&str>) -> String {
        match (self, sub, header) {
            (Self::Sub, Some(sub), _) => prefixed("sub:", sub),
            // An empty (or blank) value is no value: the descriptor protocol needs one byte
            // at least, and a client must not pick a bucket (or a failure) by sending `""`.
            (Self::Header(_), _, Some(value)) if !value.trim().is_empty() => {
                prefixed("hdr:", value)
            }
            _ => ip_key(client_ip.unwrap_or("unknown")),
        }
    }
}

impl FromStr for KeySource {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ip" => Ok(Self::Ip),
            "sub" => Ok(Self::Sub),
            _ => match s.strip_prefix("header:") {
                Some(name) if is_header_name(name) => Ok(Self::Header(name.to_owned())),
                _ => Err(ConfigError::new("key", ACCEPTED)),
            },
        }
    }
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ip => f.write_str("ip"),
            Self::Sub => f.write_str("sub"),
            Self::Header(name) => write!(f, "header:{name}"),
        }
    }
}

/// A lowercase HTTP header field name (RFC 9110 token characters), 1..=[`MAX_KEY_HEADER_LEN`]
/// bytes, not a pseudo-header.
#[must_use]
pub fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_KEY_HEADER_LEN
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b"!#$%&'*+-.^_`|~".contains(&b)
        })
}

/// [`ip_key`] of an address that parses as one (IPv4, IPv6, either with a port), else `None`:
/// for a shell whose address comes from a header (a garbage value must not make a bucket of
/// its own).
#[must_use]
pub fn client_ip_key(client_ip: &str) -> Option<String> {
    let parses = client_ip.parse::<SocketAddr>().is_ok() || client_ip.parse::<IpAddr>().is_ok();
    parses.then(|| ip_key(client_ip))
}

/// The key for a client address: `ip:1.2.3.4`, `ip:2001:db8:1:2::/64` (IPv6 grouped by /64,
/// IPv4-mapped IPv6 as IPv4; a `:port` is dropped). Unparseable input is used verbatim.
#[must_use]
pub fn ip_key(client_ip: &str) -> String {
    let ip = client_ip
        .parse::<SocketAddr>()
        .map(|s| s.ip())
        .or_else(|_| client_ip.parse::<IpAddr>());
    match ip {
        Ok(IpAddr::V4(v4)) => ipv4_key(v4),
        Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => ipv4_key(v4),
            None => {
                let mut s = v6.segments();
                s.iter_mut().skip(4).for_each(|x| *x = 0);
                format!("ip:{}/64", std::net::Ipv6Addr::from(s))
            }
        },
        Err(_) => prefixed("ip:", client_ip),
    }
}

/// `prefix` then `value`, in one allocation (what `format!("{prefix}{value}")` makes, without
/// the formatting machinery: a key is built on every rate-limited request).
fn prefixed(prefix: &str, value: &str) -> String {
    let mut key = String::with_capacity(prefix.len() + value.len());
    key.push_str(prefix);
    key.push_str(value);
    key
}

/// `ip:` and the dotted quad, as `format!("ip:{v4}")` writes it.
fn ipv4_key(v4: std::net::Ipv4Addr) -> String {
    let mut key = String::with_capacity(3 + 15);
    key.push_str("ip:");
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            key.push('.');
        }
        super::push_decimal(&mut key, u64::from(octet));
    }
    key
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn blank_header_value_is_no_value_ok() {
        let k: KeySource = "header:x-api-key".parse().unwrap();
        let ip = k.key(Some("198.51.100.9"), None, None);
        for blank in ["", " ", "\t", " \t "] {
            assert_eq!(
                k.key(Some("198.51.100.9"), None, Some(blank)),
                ip,
                "{blank:?}"
            );
        }
        assert_eq!(k.key(Some("198.51.100.9"), None, Some("a")), "hdr:a");
    }

    #[test]
    fn parse_round_trip_ok() {
        for s in ["ip", "sub", "header:x-api-key", "header:x_k.1"] {
            let k: KeySource = s.parse().unwrap();
            assert_eq!(k.to_string(), s);
        }
        assert!(!KeySource::Sub.is_pre_token());
        assert!(KeySource::Ip.is_pre_token());
        let h: KeySource = "header:x-api-key".parse().unwrap();
        assert!(h.is_pre_token());
        assert_eq!(h.header_name(), Some("x-api-key"));
    }

    #[test]
    fn parse_bad_fails() {
        for s in [
            "",
            "cookie",
            "IP",
            "header:",
            "header:X-Api-Key",
            "header::path",
            "header:a b",
            "header:a\n",
        ] {
            assert_eq!(s.parse::<KeySource>().unwrap_err().field, "key", "{s}");
        }
        let long = format!("header:{}", "a".repeat(MAX_KEY_HEADER_LEN + 1));
        assert!(long.parse::<KeySource>().is_err());
    }

    #[test]
    fn keys_ok() {
        let ip = KeySource::Ip;
        let sub = KeySource::Sub;
        let hdr = KeySource::Header("x-k".into());
        assert_eq!(
            ip.key(Some("203.0.113.7"), Some("alice"), None),
            "ip:203.0.113.7"
        );
        assert_eq!(
            sub.key(Some("203.0.113.7"), Some("alice"), None),
            "sub:alice"
        );
        assert_eq!(sub.key(Some("203.0.113.7"), None, None), "ip:203.0.113.7");
        assert_eq!(sub.key(None, None, None), "ip:unknown");
        assert_eq!(
            hdr.key(Some("203.0.113.7"), Some("a"), Some("k1")),
            "hdr:k1"
        );
        assert_eq!(
            hdr.key(Some("203.0.113.7"), Some("a"), None),
            "ip:203.0.113.7"
        );
        // A subject that looks like an address still lives in its own namespace.
        assert_ne!(
            sub.key(None, Some("1.2.3.4"), None),
            ip.key(Some("1.2.3.4"), None, None)
        );
        assert_eq!(ip_key("203.0.113.7:5555"), "ip:203.0.113.7");
        assert_eq!(ip_key("2001:db8:1:2:3:4:5:6"), "ip:2001:db8:1:2::/64");
        assert_eq!(ip_key("[2001:db8:1:2:ffff::1]:443"), "ip:2001:db8:1:2::/64");
        assert_eq!(ip_key("::ffff:198.51.100.1"), "ip:198.51.100.1");
        assert_eq!(ip_key("not an ip"), "ip:not an ip");
        assert_eq!(client_ip_key("not an ip"), None);
        assert_eq!(
            client_ip_key("2001:DB8:1:2:0:0:0:7").as_deref(),
            Some("ip:2001:db8:1:2::/64")
        );
        assert_eq!(
            client_ip_key("2001:db8:1:2::ffff").as_deref(),
            Some("ip:2001:db8:1:2::/64")
        );
        assert_eq!(
            client_ip_key("203.0.113.7").as_deref(),
            Some("ip:203.0.113.7")
        );
    }

    proptest! {
        #[test]
        fn ip_key_arbitrary_never_panics_ok(s in "\\PC{0,48}") {
            prop_assert!(ip_key(&s).starts_with("ip:"));
        }

        /// The keys written by hand are the bytes `format!` wrote before (the state of a
        /// slot is found by them: another spelling would start every client fresh).
        #[test]
        fn keys_as_formatted_ok(a: u8, b: u8, c: u8, d: u8, port: u16, v6: [u16; 8],
                                s in "\\PC{0,48}") {
            let v4 = std::net::Ipv4Addr::new(a, b, c, d);
            prop_assert_eq!(ip_key(&format!("{v4}:{port}")), format!("ip:{v4}"));
            prop_assert_eq!(ip_key(&v4.to_string()), format!("ip:{v4}"));
            let mapped = v4.to_ipv6_mapped();
            prop_assert_eq!(ip_key(&format!("[{mapped}]:{port}")), format!("ip:{v4}"));
            let v6 = std::net::Ipv6Addr::from(v6);
            if v6.to_ipv4_mapped().is_none() {
                let mut g = v6.segments();
                g.iter_mut().skip(4).for_each(|x| *x = 0);
                let want = format!("ip:{}/64", std::net::Ipv6Addr::from(g));
                prop_assert_eq!(ip_key(&format!("[{v6}]:{port}")), want);
            }
            if s.parse::<SocketAddr>().is_err() && s.parse::<IpAddr>().is_err() {
                prop_assert_eq!(ip_key(&s), format!("ip:{s}"));
            }
            let sub = KeySource::Sub;
            prop_assert_eq!(sub.key(None, Some(&s), None), format!("sub:{s}"));
            let header = KeySource::Header("x-api-key".into());
            if !s.trim().is_empty() {
                prop_assert_eq!(header.key(None, None, Some(&s)), format!("hdr:{s}"));
            }
        }

        #[test]
        fn key_source_arbitrary_never_panics_ok(s in "\\PC{0,48}") {
            if let Ok(k) = s.parse::<KeySource>() {
                prop_assert_eq!(k.to_string(), s);
            }
        }
    }
}
