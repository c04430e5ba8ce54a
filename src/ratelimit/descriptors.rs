//! The rate-limit service's limits file: quotas for descriptors that arrive without a `limit`
//! override (as Envoy's native `ratelimit` filter sends them), in the shape of
//! envoyproxy/ratelimit's configuration, as JSON:
//!
//! ```json
//! {"domain": "edge", "descriptors": [
//!   {"key": "remote_address", "limit": "5/minute"},
//!   {"key": "generic_key", "value": "login",
//!    "descriptors": [{"key": "remote_address", "limit": "10/hour"}]}
//! ]}
//! ```
//! (or a list of such objects, one per domain). A request descriptor `[(k1, v1), (k2, v2)]`
//! walks the tree: at each level the node with key `k` and value `v`, else the node with key
//! `k` and no `value` (any value). Its limit is the limit of the node its **last** entry lands
//! on; a descriptor that leaves the tree, stops above a limit or lands on a node without one
//! has none (the service answers OK and counts nothing).

use super::shared::{MAX_DESCRIPTOR_ENTRIES, MAX_ENTRY_LEN};
use super::Quota;
use crate::ConfigError;
use serde_json::{Map, Value};
use std::collections::HashMap;

/// Most domains in one limits file.
pub const MAX_DOMAINS: usize = 1_024;
/// Most descriptor nodes in one limits file.
pub const MAX_DESCRIPTOR_NODES: usize = 100_000;

/// The compiled limits file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DescriptorLimits {
    domains: HashMap<String, Level>,
    limits: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Level {
    by_key: HashMap<String, KeyNodes>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct KeyNodes {
    by_value: HashMap<String, Node>,
    any: Option<Box<Node>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Node {
    limit: Option<Quota>,
    children: Level,
}

impl DescriptorLimits {
    /// Parses and validates a limits file.
    ///
    /// # Errors
    /// [`ConfigError`] naming the field (`descriptors[1].limit`, `[2].domain`, …; empty for
    /// a file that is not JSON) and what is accepted.
    pub fn from_json(text: &str) -> Result<Self, ConfigError> {
        let doc: Value = serde_json::from_str(text).map_err(|e| {
            ConfigError::new(
                "",
                format!(
                    "not valid JSON (line {}, column {}): expected {{\"domain\": …, \
                     \"descriptors\": […]}} or a list of them",
                    e.line(),
                    e.column()
                ),
            )
        })?;
        let mut out = Self::default();
        let mut nodes = 0usize;
        match &doc {
            Value::Array(list) => {
                if list.len() > MAX_DOMAINS {
                    return Err(ConfigError::new(
                        "",
                        format!("at most {MAX_DOMAINS} domains"),
                    ));
                }
                for (i, d) in list.iter().enumerate() {
                    out.add_domain(d, &mut nodes)
                        .map_err(|e| e.within(&format!("[{i}]")))?;
                }
            }
            Value::Object(_) => out.add_domain(&doc, &mut nodes)?,
            _ => {
                return Err(ConfigError::new(
                    "",
                    "expected {\"domain\": …, \"descriptors\": […]} or a list of them",
                ))
            }
        }
        Ok(out)
    }

    /// The quota for descriptor `entries` in `domain`; `None` when the file gives it none.
    #[must_use]
    pub fn lookup(&self, domain: &str, entries: &[(&str, &str)]) -> Option<Quota> {
        let mut level = self.domains.get(domain)?;
        let (last, init) = entries.split_last()?;
        for (k, v) in init {
            level = &level.by_key.get(*k)?.find(v)?.children;
        }
        level.by_key.get(last.0)?.find(last.1)?.limit
    }

    /// Number of limits in the file.
    #[must_use]
    pub fn len(&self) -> usize {
        self.limits
    }

    /// Whether the file gives no limit at all.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.limits == 0
    }

    /// Number of domains.
    #[must_use]
    pub fn domains(&self) -> usize {
        self.domains.len()
    }

    fn add_domain(&mut self, doc: &Value, nodes: &mut usize) -> Result<(), ConfigError> {
        let obj = object(doc, &["domain", "descriptors"])?;
        let domain = match obj.get("domain") {
            Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_ENTRY_LEN => s.clone(),
            _ => {
                return Err(ConfigError::new(
                    "domain",
                    "required: a non-empty string (the domain Envoy sends)",
                ))
            }
        };
        if self.domains.contains_key(&domain) {
            return Err(ConfigError::new(
                "domain",
                format!("domain {domain:?} is given twice"),
            ));
        }
        let level = self.level(obj.get("descriptors"), 1, nodes)?;
        self.domains.insert(domain, level);
        Ok(())
    }

    fn level(
        &mut self,
        list: Option<&Value>,
        depth: usize,
        nodes: &mut usize,
    ) -> Result<Level, ConfigError> {
        let list = match list {
            Some(Value::Array(l)) if !l.is_empty() => l,
            _ => {
                return Err(ConfigError::new(
                    "descriptors",
                    "required: a non-empty list of {\"key\": …, \"value\": …, \"limit\": …}",
                ))
            }
        };
        if depth > MAX_DESCRIPTOR_ENTRIES {
            return Err(ConfigError::new(
                "descriptors",
                format!("nested deeper than {MAX_DESCRIPTOR_ENTRIES} entries"),
            ));
        }
        let mut level = Level::default();
        for (i, d) in list.iter().enumerate() {
            *nodes += 1;
            if *nodes > MAX_DESCRIPTOR_NODES {
                return Err(ConfigError::new(
                    "descriptors",
                    format!("at most {MAX_DESCRIPTOR_NODES} descriptors in all"),
                ));
            }
            self.node(d, depth, nodes, &mut level)
                .map_err(|e| e.within(&format!("descriptors[{i}]")))?;
        }
        Ok(level)
    }

    fn node(
        &mut self,
        doc: &Value,
        depth: usize,
        nodes: &mut usize,
        level: &mut Level,
    ) -> Result<(), ConfigError> {
        let obj = object(doc, &["key", "value", "limit", "descriptors"])?;
        let key = match obj.get("key") {
            Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_ENTRY_LEN => s.clone(),
            _ => {
                return Err(ConfigError::new(
                    "key",
                    "required: a non-empty descriptor key such as \"remote_address\"",
                ))
            }
        };
        let value = match obj.get("value") {
            None => None,
            Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_ENTRY_LEN => Some(s.clone()),
            Some(_) => {
                return Err(ConfigError::new(
                    "value",
                    "a non-empty string; leave `value` out to match any value",
                ))
            }
        };
        let limit = match obj.get("limit") {
            None => None,
            Some(Value::String(s)) => Some(Quota::parse_per_unit(s)?),
            Some(_) => {
                return Err(ConfigError::new(
                    "limit",
                    "a string like \"5/minute\" (count per second, minute, hour or day)",
                ))
            }
        };
        let children = match obj.get("descriptors") {
            None => Level::default(),
            some => self.level(some, depth + 1, nodes)?,
        };
        if limit.is_none() && children.by_key.is_empty() {
            return Err(ConfigError::new(
                "",
                "give a `limit`, nested `descriptors` or both",
            ));
        }
        self.limits += usize::from(limit.is_some());
        let node = Node { limit, children };
        let slot = level.by_key.entry(key.clone()).or_default();
        let taken = match value {
            Some(v) => slot.by_value.insert(v, node).is_some(),
            None => slot.any.replace(Box::new(node)).is_some(),
        };
        if taken {
            return Err(ConfigError::new(
                "key",
                format!("descriptor {key:?} with this value is given twice at this level"),
            ));
        }
        Ok(())
    }
}

impl KeyNodes {
    fn find(&self, value: &str) -> Option<&Node> {
        self.by_value.get(value).or(self.any.as_deref())
    }
}

fn object<'a>(v: &'a Value, allowed: &[&str]) -> Result<&'a Map<String, Value>, ConfigError> {
    let obj = v.as_object().ok_or_else(|| {
        ConfigError::new(
            "",
            format!("expected an object with {}", allowed.join(", ")),
        )
    })?;
    if let Some(k) = obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(ConfigError::new(
            k.as_str(),
            format!("unknown field; expected one of {}", allowed.join(", ")),
        ));
    }
    Ok(obj)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    const FILE: &str = r#"{"domain": "edge", "descriptors": [
      {"key": "remote_address", "limit": "5/minute"},
      {"key": "generic_key", "value": "login",
       "descriptors": [{"key": "remote_address", "limit": "10/hour"}]},
      {"key": "generic_key", "limit": "100/second"},
      {"key": "path", "descriptors": [{"key": "method", "value": "POST", "limit": "2/day"}]}
    ]}"#;

    fn q(s: &str) -> Option<Quota> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn lookup_ok() {
        let l = DescriptorLimits::from_json(FILE).unwrap();
        assert_eq!(l.len(), 4);
        assert_eq!(l.domains(), 1);
        assert_eq!(
            l.lookup("edge", &[("remote_address", "1.2.3.4")]),
            q("5/minute")
        );
        assert_eq!(
            l.lookup(
                "edge",
                &[("generic_key", "login"), ("remote_address", "1.2.3.4")]
            ),
            q("10/hour")
        );
        // The exact value wins over "any value"; the wildcard node has no children.
        assert_eq!(l.lookup("edge", &[("generic_key", "login")]), None);
        assert_eq!(
            l.lookup("edge", &[("generic_key", "other")]),
            q("100/second")
        );
        assert_eq!(
            l.lookup("edge", &[("generic_key", "other"), ("remote_address", "x")]),
            None
        );
        assert_eq!(
            l.lookup("edge", &[("path", "/a"), ("method", "POST")]),
            q("2/day")
        );
        assert_eq!(l.lookup("edge", &[("path", "/a"), ("method", "GET")]), None);
        assert_eq!(l.lookup("edge", &[("path", "/a")]), None);
        assert_eq!(l.lookup("edge", &[]), None);
        assert_eq!(l.lookup("other", &[("remote_address", "1.2.3.4")]), None);
    }

    #[test]
    fn list_of_domains_ok() {
        let l = DescriptorLimits::from_json(
            r#"[{"domain": "a", "descriptors": [{"key": "k", "limit": "1/s"}]},
                {"domain": "b", "descriptors": [{"key": "k", "limit": "2/h"}]}]"#,
        )
        .unwrap();
        assert_eq!(l.domains(), 2);
        assert_eq!(l.lookup("b", &[("k", "v")]), q("2/hour"));
        assert!(!l.is_empty());
    }

    #[test]
    fn bad_files_fail() {
        let d = |body: &str| format!(r#"{{"domain": "d", "descriptors": [{body}]}}"#);
        let cases = [
            ("not json".to_owned(), ""),
            ("3".to_owned(), ""),
            (r#"{"descriptors": []}"#.to_owned(), "domain"),
            (r#"{"domain": "", "descriptors": []}"#.to_owned(), "domain"),
            (r#"{"domain": "d"}"#.to_owned(), "descriptors"),
            (
                r#"{"domain": "d", "descriptors": []}"#.to_owned(),
                "descriptors",
            ),
            (
                r#"{"domain": "d", "descriptors": [], "x": 1}"#.to_owned(),
                "x",
            ),
            (d(r#"{"limit": "5/minute"}"#), "descriptors[0].key"),
            (
                d(r#"{"key": "k", "limit": "5/15m"}"#),
                "descriptors[0].limit",
            ),
            (
                d(r#"{"key": "k", "limit": "1/week"}"#),
                "descriptors[0].limit",
            ),
            (
                d(r#"{"key": "k", "limit": "five"}"#),
                "descriptors[0].limit",
            ),
            (d(r#"{"key": "k", "limit": 5}"#), "descriptors[0].limit"),
            (
                d(r#"{"key": "k", "value": "", "limit": "5/s"}"#),
                "descriptors[0].value",
            ),
            (d(r#"{"key": "k"}"#), "descriptors[0]"),
            (
                d(r#"{"key": "k", "limit": "1/s", "unit": "s"}"#),
                "descriptors[0].unit",
            ),
            (
                d(r#"{"key": "k", "limit": "1/s"}, {"key": "k", "limit": "2/s"}"#),
                "descriptors[1].key",
            ),
            (
                d(r#"{"key": "k", "descriptors": [{"key": "j", "limit": "1/fortnight"}]}"#),
                "descriptors[0].descriptors[0].limit",
            ),
            (
                r#"[{"domain": "d", "descriptors": [{"key": "k", "limit": "1/s"}]},
                    {"domain": "d", "descriptors": [{"key": "k", "limit": "1/s"}]}]"#
                    .to_owned(),
                "[1].domain",
            ),
        ];
        for (text, field) in cases {
            let e = DescriptorLimits::from_json(&text).unwrap_err();
            assert_eq!(e.field, field, "{text}: {e}");
        }
        let mut deep = r#"{"key": "k", "limit": "1/s"}"#.to_owned();
        for _ in 0..MAX_DESCRIPTOR_ENTRIES {
            deep = format!(r#"{{"key": "k", "descriptors": [{deep}]}}"#);
        }
        assert!(DescriptorLimits::from_json(&d(&deep)).is_err());
    }
}
