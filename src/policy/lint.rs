//! Warnings about rule orders that are valid but likely wrong, given at configuration load.
//!
//! The trap: `{"path": "/api/patients/*", "methods": ["GET"], "permissions": ["patients:read"]}`
//! followed by `{"prefix": "/api/", "allow": "authenticated"}`. A `POST /api/patients/1` is not
//! a `GET`, so it skips the first rule and falls into the second: any signed-in user may send
//! it. [`warnings`] names both rules whenever a rule limited by `methods` is followed by a
//! broader rule with a weaker requirement that the other methods of the same paths reach.
//!
//! The second trap: a `prefix` that does not end in `/` matches raw bytes, as Envoy's
//! `prefix` does, so `{"prefix": "/api", "allow": "public"}` also opens `/api-internal/` and
//! `/apix`. [`warnings`] names such a rule when the paths it covers past the segment boundary
//! would otherwise reach a stricter rule, or no rule at all (refused).

use super::{Access, PolicyConfig, RequestPath, RouteMatch, RuleConfig};

/// The methods checked for falling through a `methods`-limited rule.
const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// One warning per pair of rules (the `methods`-limited one, the weaker one that catches its
/// other methods), in rule order. Rules that fail validation are skipped (the policy itself
/// refuses them).
#[must_use]
pub fn warnings(config: &PolicyConfig) -> Vec<String> {
    let routes: Vec<Option<RouteMatch>> = config
        .rules
        .iter()
        .map(|r| RouteMatch::new(r.path.as_deref(), r.prefix.as_deref(), r.methods.as_deref()).ok())
        .collect();
    let mut out = Vec::new();
    for (i, rule) in config.rules.iter().enumerate() {
        let (Some(Some(route)), Some(_)) = (routes.get(i), rule.methods.as_ref()) else {
            continue;
        };
        let Some(sample) = sample_path(rule) else {
            continue;
        };
        let Some(path) = RequestPath::new(&sample) else {
            continue;
        };
        // For every other method: which rule takes the request instead?
        let mut pairs: Vec<(usize, Vec<&str>)> = Vec::new();
        for m in METHODS {
            if route.matches(m, &path) {
                continue;
            }
            let taker = routes
                .iter()
                .position(|r| r.as_ref().is_some_and(|r| r.matches(m, &path)));
            let Some(k) = taker.filter(|&k| k > i) else {
                continue;
            };
            let Some(other) = config.rules.get(k) else {
                continue;
            };
            if !weaker(other, rule) {
                continue;
            }
            match pairs.iter_mut().find(|(j, _)| *j == k) {
                Some((_, ms)) => ms.push(m),
                None => pairs.push((k, vec![m])),
            }
        }
        for (k, ms) in pairs {
            let Some(other) = config.rules.get(k) else {
                continue;
            };
            let mut w = format!("rules[{i}] (");
            describe(rule, &mut w);
            w.push_str(") is limited to methods ");
            w.push_str(&rule.methods.as_deref().unwrap_or_default().join(","));
            w.push_str(&format!(" and is followed by the broader rules[{k}] ("));
            describe(other, &mut w);
            w.push_str(") with a weaker requirement: ");
            w.push_str(&ms.join(", "));
            w.push_str(&format!(
                " requests to the same paths fall into rules[{k}]; add a rule for those methods \
                 before rules[{k}], or drop `methods`"
            ));
            out.push(w);
        }
    }
    for (i, rule) in config.rules.iter().enumerate() {
        if let Some(w) = unbounded_prefix(config, &routes, i, rule) {
            out.push(w);
        }
    }
    out
}

/// The warning for rule `i` when it is a `prefix` not ending in `/` (nor `/` itself) whose
/// extra paths (`/apix` for `/api`, or a later rule's own paths such as `/api-internal/x`)
/// would otherwise meet a stricter rule or none.
fn unbounded_prefix(
    config: &PolicyConfig,
    routes: &[Option<RouteMatch>],
    i: usize,
    rule: &RuleConfig,
) -> Option<String> {
    let prefix = rule.prefix.as_deref()?;
    routes.get(i)?.as_ref()?;
    if prefix.ends_with('/') {
        return None;
    }
    let method = rule
        .methods
        .as_ref()
        .and_then(|m| m.first())
        .map_or("GET", String::as_str);
    let beyond = |sample: &str| {
        sample.len() > prefix.len()
            && sample
                .get(..prefix.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
            && sample.as_bytes().get(prefix.len()) != Some(&b'/')
    };
    // Later rules' own paths first (the warning then names what the operator wrote), then
    // any path past the boundary.
    let mut samples: Vec<String> = config
        .rules
        .iter()
        .skip(i + 1)
        .filter_map(sample_path)
        .filter(|s| beyond(s))
        .collect();
    samples.push(format!("{prefix}x"));
    for sample in samples {
        let Some(path) = RequestPath::new(&sample) else {
            continue;
        };
        let matches = |k: usize| {
            routes
                .get(k)
                .and_then(Option::as_ref)
                .is_some_and(|r| r.matches(method, &path))
        };
        // A rule before this one takes these paths anyway.
        if (0..i).any(matches) {
            continue;
        }
        let taker = (i + 1..routes.len()).find(|&k| matches(k));
        let mut w = format!("rules[{i}] (");
        describe(rule, &mut w);
        w.push_str(&format!(
            ") is a prefix without a trailing `/`: like Envoy's `prefix` it also matches paths \
             that only begin with \"{prefix}\", such as \"{sample}\", "
        ));
        match taker {
            Some(k) => {
                let other = config.rules.get(k)?;
                if !weaker(rule, other) {
                    continue;
                }
                w.push_str(&format!(
                    "which would otherwise fall into the stricter rules[{k}] ("
                ));
                describe(other, &mut w);
                w.push(')');
            }
            None => w.push_str("which no other rule matches (they would be refused)"),
        }
        w.push_str(&format!(
            "; write \"{prefix}/\" for a segment boundary (and a `path` rule \"{prefix}\" for \
             the path itself)"
        ));
        return Some(w);
    }
    None
}

/// [`warnings`] for a whole filter configuration (the gateway JSON). Input the gateway refuses
/// gives no warnings: its parser reports it.
#[must_use]
pub fn config_warnings(json: &[u8]) -> Vec<String> {
    match crate::gateway::GatewayConfig::from_json(json) {
        Ok(c) => warnings(&PolicyConfig {
            roles: c.roles,
            rules: c.rules,
        }),
        Err(_) => Vec::new(),
    }
}

/// A request path the rule matches: `*` segments filled in, a prefix as is.
fn sample_path(rule: &RuleConfig) -> Option<String> {
    match (&rule.path, &rule.prefix) {
        (Some(p), None) => Some(
            p.split('/')
                .map(|s| if s == "*" { "x" } else { s })
                .collect::<Vec<_>>()
                .join("/"),
        ),
        (None, Some(p)) => Some(p.clone()),
        _ => None,
    }
}

/// 0 public, 1 any signed-in caller, 2 roles or permissions.
fn rank(rule: &RuleConfig) -> u8 {
    match (&rule.allow, &rule.roles, &rule.permissions) {
        (Some(Access::Public), _, _) => 0,
        (Some(Access::Authenticated), _, _) => 1,
        _ => 2,
    }
}

/// Whether `later` asks for less than `limited`: a lower rank, or a strict subset of its
/// permissions (other roles or permissions are not comparable: no warning).
fn weaker(later: &RuleConfig, limited: &RuleConfig) -> bool {
    let (a, b) = (rank(later), rank(limited));
    if a != b {
        return a < b;
    }
    match (&later.permissions, &limited.permissions) {
        (Some(l), Some(m)) => l.len() < m.len() && l.iter().all(|p| m.contains(p)),
        _ => false,
    }
}

fn describe(rule: &RuleConfig, out: &mut String) {
    let quoted = |out: &mut String, what: &str, v: &str| {
        out.push_str(what);
        out.push_str(" \"");
        out.push_str(v);
        out.push('"');
    };
    match (&rule.path, &rule.prefix) {
        (Some(p), _) => quoted(out, "path", p),
        (_, Some(p)) => quoted(out, "prefix", p),
        _ => out.push_str("no path"),
    }
    out.push_str(", ");
    match (&rule.allow, &rule.roles, &rule.permissions) {
        (Some(Access::Public), _, _) => out.push_str("allow public"),
        (Some(Access::Authenticated), _, _) => out.push_str("allow authenticated"),
        (_, Some(r), _) => {
            out.push_str("roles ");
            out.push_str(&r.join(","));
        }
        (_, _, Some(p)) => {
            out.push_str("permissions ");
            out.push_str(&p.join(","));
        }
        _ => out.push_str("no requirement"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn config(rules: &str) -> PolicyConfig {
        serde_json::from_str(&format!(r#"{{"rules": {rules}}}"#)).unwrap()
    }

    #[test]
    fn get_only_rule_before_authenticated_prefix_warns_ok() {
        let w = warnings(&config(
            r#"[{"prefix": "/api/auth/", "allow": "public"},
                {"path": "/api/patients/*", "methods": ["GET"], "permissions": ["patients:read"]},
                {"prefix": "/api/", "allow": "authenticated"}]"#,
        ));
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].starts_with("rules[1] (path \"/api/patients/*\""),
            "{}",
            w[0]
        );
        assert!(w[0].contains("rules[2] (prefix \"/api/\", allow authenticated)"));
        assert!(w[0].contains("POST, PUT, PATCH, DELETE, OPTIONS requests"));
        assert!(!w[0].contains("HEAD,"), "GET includes HEAD");
    }

    #[test]
    fn every_method_covered_or_stricter_fallback_no_warning_fails() {
        // Other methods covered by a rule of their own before the broad one.
        assert!(warnings(&config(
            r#"[{"path": "/api/patients/*", "methods": ["GET"], "permissions": ["patients:read"]},
                {"path": "/api/patients/*", "permissions": ["patients:write"]},
                {"prefix": "/api/", "allow": "authenticated"}]"#,
        ))
        .is_empty());
        // The broader rule is not weaker.
        assert!(warnings(&config(
            r#"[{"path": "/api/x", "methods": ["GET"], "allow": "authenticated"},
                {"prefix": "/api/", "roles": ["admin"]}]"#,
        ))
        .is_empty());
        // Nothing catches the other methods: they are refused (no rule matches).
        assert!(warnings(&config(
            r#"[{"path": "/api/x", "methods": ["GET"], "roles": ["admin"]}]"#
        ))
        .is_empty());
        // No `methods`: nothing falls through.
        assert!(warnings(&config(
            r#"[{"prefix": "/admin", "roles": ["admin"]}, {"prefix": "/", "allow": "public"}]"#
        ))
        .is_empty());
    }

    #[test]
    fn fewer_permissions_and_public_fallback_warn_ok() {
        let w = warnings(&config(
            r#"[{"path": "/api/audit", "methods": ["POST"], "permissions": ["audit:write", "audit:read"]},
                {"path": "/api/audit", "permissions": ["audit:read"]},
                {"prefix": "/admin", "methods": ["GET", "DELETE"], "roles": ["admin"]},
                {"prefix": "/", "allow": "public"}]"#,
        ));
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].contains("rules[1]") && w[0].starts_with("rules[0]"));
        assert!(
            w[1].starts_with("rules[2]") && w[1].contains("rules[3] (prefix \"/\", allow public)")
        );
        assert!(w[1].contains("POST, PUT, PATCH, OPTIONS requests"));
    }

    #[test]
    fn prefix_without_slash_opening_stricter_paths_warns_ok() {
        let w = warnings(&config(
            r#"[{"prefix": "/api", "allow": "public"},
                {"prefix": "/", "allow": "authenticated"}]"#,
        ));
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].starts_with("rules[0] (prefix \"/api\", allow public) is a prefix"));
        assert!(w[0].contains("such as \"/apix\""), "{}", w[0]);
        assert!(w[0].contains("stricter rules[1] (prefix \"/\", allow authenticated)"));
        assert!(w[0].contains("write \"/api/\" for a segment boundary"));
        // A later rule's own paths past the boundary, and paths no rule would allow.
        let w = warnings(&config(
            r#"[{"prefix": "/api", "allow": "authenticated"},
                {"prefix": "/api/", "allow": "public"}]"#,
        ));
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains("such as \"/apix\", which no other rule matches"),
            "{}",
            w[0]
        );
        let w = warnings(&config(
            r#"[{"prefix": "/api", "allow": "authenticated"},
                {"path": "/api-internal/*", "roles": ["admin"]},
                {"prefix": "/", "allow": "authenticated"}]"#,
        ));
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains(
                "\"/api-internal/x\", which would otherwise fall into the stricter rules[1]"
            ),
            "{}",
            w[0]
        );
    }

    #[test]
    fn prefix_with_slash_or_stricter_no_warning_fails() {
        for rules in [
            // Ends in `/`, or is `/`.
            r#"[{"prefix": "/api/", "allow": "public"}, {"prefix": "/", "allow": "authenticated"}]"#,
            // Stricter than what the extra paths would meet (the example's `/admin`).
            r#"[{"prefix": "/admin", "roles": ["admin"]}, {"prefix": "/", "allow": "authenticated"}]"#,
            // As strict.
            r#"[{"prefix": "/api", "allow": "authenticated"}, {"prefix": "/", "allow": "authenticated"}]"#,
            // An earlier rule takes the extra paths anyway.
            r#"[{"prefix": "/", "allow": "public"}, {"prefix": "/api", "allow": "public"}]"#,
        ] {
            assert!(warnings(&config(rules)).is_empty(), "{rules}");
        }
    }

    #[test]
    fn config_warnings_reads_filter_json_ok() {
        let json = br#"{"jwks": {"keys": [{"kty": "oct", "kid": "k", "alg": "HS256",
            "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldC0"}]},
            "rules": [
            {"path": "/a/*", "methods": ["GET"], "roles": ["r"]},
            {"prefix": "/", "allow": "authenticated"}]}"#;
        assert_eq!(
            config_warnings(json).len(),
            1,
            "{:?}",
            crate::gateway::GatewayConfig::from_json(json).err()
        );
        assert!(config_warnings(b"not json").is_empty());
        assert!(config_warnings(br#"{"rules": 5}"#).is_empty());
    }
}
