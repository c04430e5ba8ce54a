//! Access policy: roles, permissions and ordered route rules.
//!
//! The first rule whose route matches decides what the request needs ([`Requirement`]); when
//! no rule matches the request is refused (403). Add a last catch-all rule such as
//! `{"prefix": "/", "allow": "authenticated"}` for another default.
//!
//! Request paths that are not normalized are refused (403 "path not normalized") before any
//! rule is consulted; see [`RequestPath::new`]. Configure Envoy with `normalize_path: true` and
//! `merge_slashes: true` so well-behaved clients never see that.
//!
//! Usage by a shell: [`Policy::requirement`] tells whether a token is needed at all; verify the
//! token (if any) into a [`Principal`]; then [`Policy::authorize`] gives the [`Decision`]. When
//! a token was presented but failed verification, report the token's own error instead of
//! [`DenyReason::TokenMissing`].

pub mod lint;
mod roles;
mod route;

pub use roles::{
    grant_covers, is_grant, is_permission, is_role_name, MAX_GRANTS_PER_ROLE, MAX_NAME_LEN,
    MAX_ROLES,
};
pub use route::{
    MethodSet, PathPattern, RequestPath, RouteMatch, MAX_METHODS, MAX_METHOD_LEN, MAX_PATH_LEN,
    MAX_PATTERN_LEN,
};

use crate::json::object_only;
use crate::{ConfigError, ErrorCode};
use roles::Roles;
use route::Spellings;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;

/// Most rules in a policy.
pub const MAX_RULES: usize = 1024;
/// Most roles or permissions one rule may name.
pub const MAX_RULE_NAMES: usize = 32;

/// The policy part of the filter config (`roles`, `rules`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct PolicyConfig {
    /// Role → granted permissions (`"*"`, `"patients:*"`, `"patients:read"`). Defaults to no
    /// roles (only the token's own `permissions` claim grants permissions).
    #[serde(default, deserialize_with = "crate::json::unique_map")]
    pub roles: BTreeMap<String, Vec<String>>,
    /// Ordered rules; the first match decides. Defaults to none: every request is refused.
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
}

/// Who may access a route (the `allow` field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, with or without a token.
    Public,
    /// Anyone with a valid access token.
    Authenticated,
}

/// One rule. Exactly one of `path`/`prefix`, and exactly one of `allow`/`roles`/`permissions`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct RuleConfig {
    /// Exact path; a `*` segment matches one non-empty segment. Defaults to none.
    pub path: Option<String>,
    /// Plain string prefix of the path. Defaults to none.
    pub prefix: Option<String>,
    /// Uppercase methods the rule applies to (`GET` includes `HEAD`). Defaults to every method.
    pub methods: Option<Vec<String>>,
    /// `"public"` or `"authenticated"`. Defaults to none.
    pub allow: Option<Access>,
    /// The principal needs any one of these roles. Defaults to none.
    pub roles: Option<Vec<String>>,
    /// The principal needs all of these permissions. Defaults to none.
    pub permissions: Option<Vec<String>>,
}

object_only!(PolicyConfig, "a policy object");
object_only!(RuleConfig, "a rule object");

impl std::str::FromStr for Access {
    type Err = &'static str;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "public" => Ok(Self::Public),
            "authenticated" => Ok(Self::Authenticated),
            _ => Err("expected \"public\" or \"authenticated\""),
        }
    }
}

impl<'de> Deserialize<'de> for Access {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::json::from_str_only(d, "\"public\" or \"authenticated\"")
    }
}

/// What a matched rule requires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// Anyone.
    Public,
    /// Any verified principal.
    Authenticated,
    /// A principal with at least one of these roles.
    AnyRole(Vec<String>),
    /// A principal whose effective permissions cover every one of these.
    AllPermissions(Vec<String>),
}

impl Requirement {
    /// Whether every request passing `self` passes `other` too.
    fn covers(&self, other: &Requirement) -> bool {
        self == other
            || *other == Requirement::Public
            || (*other == Requirement::Authenticated && *self != Requirement::Public)
    }
}

/// The outcome of route matching.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteDecision<'a> {
    /// Rule `index` (0-based position in `rules`) matched.
    Rule {
        /// Position of the rule in the config.
        index: usize,
        /// What it requires.
        requirement: &'a Requirement,
    },
    /// The two spellings of the path, as written and with one trailing `/` added or removed
    /// (`/x` and `/x/`), first meet different rules, `index` and `folded`: the request must pass
    /// both, as many upstreams (Express, Werkzeug with strict_slashes off) serve both spellings
    /// as one route. So neither spelling takes a request past a stricter rule the other meets
    /// (`{"prefix": "/admin/", "roles": ["admin"]}` before `{"prefix": "/", "allow":
    /// "public"}`: `/admin` needs `admin`; `{"path": "/api/items", "allow": "public"}` before
    /// `{"prefix": "/api/items/", "roles": ["admin"]}`: `/api/items/` needs `admin`).
    BothSpellings {
        /// The rule the path as written meets.
        index: usize,
        /// What it requires.
        requirement: &'a Requirement,
        /// The rule the other spelling (one trailing `/` added or removed) meets first.
        folded: usize,
        /// What that requires.
        folded_requirement: &'a Requirement,
    },
    /// No rule matches: refused.
    NoMatch,
    /// The path failed the normalization check: refused.
    PathNotNormalized,
}

impl RouteDecision<'_> {
    /// Whether the decision could come out `Allow` without a principal, i.e. whether the shell
    /// may skip token verification (it may still verify a token when one is present).
    #[must_use]
    pub fn is_public(&self) -> bool {
        matches!(
            self,
            RouteDecision::Rule {
                requirement: Requirement::Public,
                ..
            }
        )
    }
}

/// A verified caller, built by the shell from an access token's claims.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Principal {
    /// The token's `sub`.
    pub sub: String,
    /// The token's `roles` claim.
    pub roles: Vec<String>,
    /// The token's own `permissions` claim (grants, wildcards allowed), added to those of its
    /// roles.
    pub permissions: Vec<String>,
}

/// Why a request was refused. Safe to show to the client.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DenyReason {
    /// The route needs a principal and the request had no token.
    TokenMissing,
    /// No rule matches the request.
    NoRuleMatches,
    /// The request path failed the normalization check.
    PathNotNormalized,
    /// The principal has none of these roles.
    MissingRole {
        /// The roles of which one was needed.
        any_of: Vec<String>,
    },
    /// The principal's effective permissions do not cover this one.
    MissingPermission {
        /// The first uncovered permission.
        permission: String,
    },
}

impl fmt::Display for DenyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TokenMissing => f.write_str("authentication required: send an access token"),
            Self::NoRuleMatches => f.write_str("no rule matches"),
            Self::PathNotNormalized => f.write_str("path not normalized"),
            Self::MissingRole { any_of } => match any_of.as_slice() {
                [one] => write!(f, "missing role {one}"),
                many => write!(f, "missing role: one of {}", many.join(", ")),
            },
            Self::MissingPermission { permission } => {
                write!(f, "missing permission {permission}")
            }
        }
    }
}

impl std::error::Error for DenyReason {}

impl ErrorCode for DenyReason {
    fn code(&self) -> &'static str {
        match self {
            Self::TokenMissing => "token_missing",
            Self::NoRuleMatches
            | Self::PathNotNormalized
            | Self::MissingRole { .. }
            | Self::MissingPermission { .. } => "forbidden",
        }
    }
}

/// The access decision the shell acts on.
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Let the request through.
    Allow,
    /// 401: a principal is needed and there is none.
    Unauthenticated(DenyReason),
    /// 403: refused whoever the caller is (or this caller lacks a role/permission).
    Forbidden(DenyReason),
}

impl Decision {
    /// Whether the request may proceed.
    #[must_use]
    pub fn is_allowed(&self) -> bool {
        matches!(self, Self::Allow)
    }

    /// HTTP status for the shell: 200 (continue), 401 or 403.
    #[must_use]
    pub fn status(&self) -> u16 {
        match self {
            Self::Allow => 200,
            Self::Unauthenticated(_) => 401,
            Self::Forbidden(_) => 403,
        }
    }

    /// Why it was refused.
    #[must_use]
    pub fn reason(&self) -> Option<&DenyReason> {
        match self {
            Self::Allow => None,
            Self::Unauthenticated(r) | Self::Forbidden(r) => Some(r),
        }
    }

    /// The stable error code (`token_missing`, `forbidden`), `None` on allow.
    #[must_use]
    pub fn code(&self) -> Option<&'static str> {
        self.reason().map(ErrorCode::code)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    route: RouteMatch,
    requirement: Requirement,
}

/// A validated, compiled policy. Build once per config, share (`Arc`/`Rc`), query per request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    roles: Roles,
    rules: Vec<Rule>,
}

impl Policy {
    /// Validates and compiles the config.
    ///
    /// # Errors
    /// [`ConfigError`] naming the field (`roles.nurse[1]`, `rules[2]`, `rules[2].path`, …) when
    /// a name, route or method is invalid, a bound (`MAX_*`) is exceeded, or a rule does not
    /// have exactly one of `path`/`prefix` and exactly one of `allow`/`roles`/`permissions`.
    pub fn new(config: &PolicyConfig) -> Result<Self, ConfigError> {
        let roles = Roles::new(&config.roles)?;
        if config.rules.len() > MAX_RULES {
            return Err(ConfigError::new(
                "rules",
                format!("at most {MAX_RULES} rules"),
            ));
        }
        let rules = config
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| compile_rule(r).map_err(|e| e.within(&format!("rules[{i}]"))))
            .collect::<Result<_, _>>()?;
        Ok(Self { roles, rules })
    }

    /// Which rule applies to `method` and raw `path` (`:path`, query included or not).
    pub fn requirement(&self, method: &str, path: &str) -> RouteDecision<'_> {
        self.requirement_at(method, RequestPath::new(path))
    }

    /// [`Policy::requirement`] for a path already checked by [`RequestPath::new`] (`None`:
    /// it failed the check), so a caller that also matches rate limits checks it once.
    pub fn requirement_at(&self, method: &str, path: Option<RequestPath<'_>>) -> RouteDecision<'_> {
        let Some(path) = path else {
            return RouteDecision::PathNotNormalized;
        };
        // First match over both spellings (as written; one trailing `/` added or removed): the
        // first rule either meets. When that rule meets only the other spelling, the request
        // must also pass the first rule its own spelling meets (the operator wrote that one for
        // this spelling); a rule its own spelling meets first decides alone, as written.
        let root = path.as_str() == "/";
        let mut other = None;
        let mut written = None;
        for (i, r) in self.rules.iter().enumerate() {
            let Spellings {
                written: w,
                other: o,
            } = r.route.spellings(method, &path);
            if w {
                written = Some((i, &r.requirement));
                break;
            }
            if o && !root && other.is_none() {
                other = Some((i, &r.requirement));
            }
        }
        match (written, other) {
            (None, None) => RouteDecision::NoMatch,
            (Some((index, requirement)), None) | (None, Some((index, requirement))) => {
                RouteDecision::Rule { index, requirement }
            }
            (Some((index, requirement)), Some((folded, folded_requirement))) => {
                // One rule when passing one requirement passes the other.
                if folded_requirement.covers(requirement) {
                    RouteDecision::Rule {
                        index: folded,
                        requirement: folded_requirement,
                    }
                } else if requirement.covers(folded_requirement) {
                    RouteDecision::Rule { index, requirement }
                } else {
                    RouteDecision::BothSpellings {
                        index,
                        requirement,
                        folded,
                        folded_requirement,
                    }
                }
            }
        }
    }

    /// Decides a routed request for `principal` (`None` when the request had no valid token).
    pub fn authorize(&self, route: &RouteDecision<'_>, principal: Option<&Principal>) -> Decision {
        self.authorize_grants(
            route,
            principal.map(|p| (p.roles.as_slice(), p.permissions.as_slice())),
        )
    }

    /// [`Policy::authorize`] for a principal given as its `(roles, permissions)`, borrowed
    /// (the gateway decides on every request from the verified claims, without copying them).
    pub fn authorize_grants(
        &self,
        route: &RouteDecision<'_>,
        principal: Option<(&[String], &[String])>,
    ) -> Decision {
        let requirement = match route {
            RouteDecision::Rule { requirement, .. } => *requirement,
            RouteDecision::BothSpellings {
                requirement,
                folded_requirement,
                ..
            } => {
                // The rule of the path as written first, then the folded one.
                return match self.authorize_requirement(requirement, principal) {
                    Decision::Allow => self.authorize_requirement(folded_requirement, principal),
                    refused => refused,
                };
            }
            RouteDecision::NoMatch => return Decision::Forbidden(DenyReason::NoRuleMatches),
            RouteDecision::PathNotNormalized => {
                return Decision::Forbidden(DenyReason::PathNotNormalized)
            }
        };
        self.authorize_requirement(requirement, principal)
    }

    /// One rule's requirement for `principal`.
    fn authorize_requirement(
        &self,
        requirement: &Requirement,
        principal: Option<(&[String], &[String])>,
    ) -> Decision {
        if *requirement == Requirement::Public {
            return Decision::Allow;
        }
        let Some((roles, permissions)) = principal else {
            return Decision::Unauthenticated(DenyReason::TokenMissing);
        };
        match requirement {
            Requirement::Public | Requirement::Authenticated => Decision::Allow,
            Requirement::AnyRole(any_of) => {
                if any_of.iter().any(|r| roles.contains(r)) {
                    Decision::Allow
                } else {
                    Decision::Forbidden(DenyReason::MissingRole {
                        any_of: any_of.clone(),
                    })
                }
            }
            Requirement::AllPermissions(all) => {
                match all.iter().find(|p| !self.covers(roles, permissions, p)) {
                    None => Decision::Allow,
                    Some(p) => Decision::Forbidden(DenyReason::MissingPermission {
                        permission: p.clone(),
                    }),
                }
            }
        }
    }

    /// [`Policy::requirement`] then [`Policy::authorize`].
    pub fn check(&self, method: &str, path: &str, principal: Option<&Principal>) -> Decision {
        self.authorize(&self.requirement(method, path), principal)
    }

    /// Whether `principal`'s effective permissions (grants of its roles in the `roles` map
    /// plus its own `permissions`) cover `permission`.
    #[must_use]
    pub fn has_permission(&self, principal: &Principal, permission: &str) -> bool {
        self.covers(&principal.roles, &principal.permissions, permission)
    }

    fn covers(&self, roles: &[String], permissions: &[String], permission: &str) -> bool {
        roles
            .iter()
            .flat_map(|r| self.roles.grants(r))
            .chain(permissions)
            .any(|g| grant_covers(g, permission))
    }

    /// Number of rules.
    #[must_use]
    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }
}

fn compile_rule(rule: &RuleConfig) -> Result<Rule, ConfigError> {
    let route = RouteMatch::new(
        rule.path.as_deref(),
        rule.prefix.as_deref(),
        rule.methods.as_deref(),
    )?;
    let requirement =
        match (&rule.allow, &rule.roles, &rule.permissions) {
            (Some(Access::Public), None, None) => Requirement::Public,
            (Some(Access::Authenticated), None, None) => Requirement::Authenticated,
            (None, Some(roles), None) => {
                Requirement::AnyRole(names(roles, "roles", is_role_name, roles::role_name_rule)?)
            }
            (None, None, Some(perms)) => Requirement::AllPermissions(names(
                perms,
                "permissions",
                is_permission,
                roles::permission_rule,
            )?),
            _ => return Err(ConfigError::new(
                "",
                "exactly one of `allow` (\"public\" or \"authenticated\"), `roles` (any of) or \
                 `permissions` (all of) is required",
            )),
        };
    Ok(Rule { route, requirement })
}

fn names(
    list: &[String],
    field: &str,
    valid: fn(&str) -> bool,
    rule: fn() -> String,
) -> Result<Vec<String>, ConfigError> {
    if list.is_empty() || list.len() > MAX_RULE_NAMES {
        return Err(ConfigError::new(
            field,
            format!("list 1 to {MAX_RULE_NAMES} names"),
        ));
    }
    if let Some(i) = list.iter().position(|n| !valid(n)) {
        return Err(ConfigError::new(format!("{field}[{i}]"), rule()));
    }
    Ok(list.to_vec())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const CONFIG: &str = r#"{
      "roles": {"admin": ["*"], "doctor": ["patients:read", "patients:write"], "nurse": ["patients:read"],
                "auditor": ["audit:*"]},
      "rules": [
        {"prefix": "/api/auth/", "allow": "public"},
        {"prefix": "/admin", "roles": ["admin"]},
        {"path": "/api/patients/*", "methods": ["GET"], "permissions": ["patients:read"]},
        {"path": "/api/patients/*", "methods": ["PUT"], "permissions": ["patients:read", "patients:write"]},
        {"prefix": "/api/audit/", "permissions": ["audit:log:read"]},
        {"prefix": "/api/", "allow": "authenticated"}
      ]
    }"#;

    fn policy() -> Policy {
        Policy::new(&serde_json::from_str(CONFIG).unwrap()).unwrap()
    }

    fn who(roles: &[&str], perms: &[&str]) -> Principal {
        Principal {
            sub: "u1".into(),
            roles: roles.iter().map(|s| (*s).to_owned()).collect(),
            permissions: perms.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn requirement_first_match_ok() {
        let p = policy();
        assert_eq!(
            p.requirement("POST", "/api/auth/login"),
            RouteDecision::Rule {
                index: 0,
                requirement: &Requirement::Public
            }
        );
        assert!(p.requirement("POST", "/api/auth/login").is_public());
        assert!(matches!(
            p.requirement("GET", "/api/patients/7?x=1"),
            RouteDecision::Rule { index: 2, .. }
        ));
        assert!(matches!(
            p.requirement("POST", "/api/patients/7"),
            RouteDecision::Rule { index: 5, .. }
        ));
        assert_eq!(p.requirement("GET", "/other"), RouteDecision::NoMatch);
        assert_eq!(
            p.requirement("GET", "/api/auth/../admin"),
            RouteDecision::PathNotNormalized
        );
        assert_eq!(p.rule_count(), 6);
    }

    #[test]
    fn public_allows_anyone_ok() {
        let p = policy();
        assert_eq!(p.check("POST", "/api/auth/login", None), Decision::Allow);
        let nurse = who(&["nurse"], &[]);
        assert_eq!(
            p.check("POST", "/api/auth/login", Some(&nurse)),
            Decision::Allow
        );
    }

    #[test]
    fn no_principal_unauthenticated_fails() {
        let p = policy();
        let d = p.check("GET", "/api/patients/1", None);
        assert_eq!(d, Decision::Unauthenticated(DenyReason::TokenMissing));
        assert_eq!(d.status(), 401);
        assert_eq!(d.code(), Some("token_missing"));
        assert_eq!(
            p.check("GET", "/api/other", None).code(),
            Some("token_missing")
        );
    }

    #[test]
    fn roles_ok() {
        let p = policy();
        assert!(p
            .check("GET", "/admin/users", Some(&who(&["admin"], &[])))
            .is_allowed());
        assert!(p
            .check("GET", "/admin", Some(&who(&["nurse", "admin"], &[])))
            .is_allowed());
    }

    #[test]
    fn roles_missing_fails() {
        let p = policy();
        let d = p.check("GET", "/admin/users", Some(&who(&["doctor"], &["*"])));
        assert_eq!(d.status(), 403);
        assert_eq!(d.code(), Some("forbidden"));
        assert_eq!(d.reason().unwrap().to_string(), "missing role admin");
    }

    #[test]
    fn permissions_ok() {
        let p = policy();
        for principal in [
            who(&["nurse"], &[]),
            who(&["doctor"], &[]),
            who(&["admin"], &[]),
            who(&[], &["patients:read"]),
            who(&[], &["patients:*"]),
            who(&["unknown-role"], &["*"]),
        ] {
            assert_eq!(
                p.check("GET", "/api/patients/42", Some(&principal)),
                Decision::Allow,
                "{principal:?}"
            );
        }
        assert!(p
            .check("PUT", "/api/patients/42", Some(&who(&["doctor"], &[])))
            .is_allowed());
        assert!(p
            .check("GET", "/api/audit/x", Some(&who(&["auditor"], &[])))
            .is_allowed());
    }

    #[test]
    fn permissions_missing_fails() {
        let p = policy();
        let d = p.check("PUT", "/api/patients/42", Some(&who(&["nurse"], &[])));
        assert_eq!(
            d,
            Decision::Forbidden(DenyReason::MissingPermission {
                permission: "patients:write".into()
            })
        );
        assert_eq!(
            d.reason().unwrap().to_string(),
            "missing permission patients:write"
        );
        let d = p.check("GET", "/api/patients/42", Some(&who(&[], &["patients"])));
        assert_eq!(d.status(), 403);
        let d = p.check("GET", "/api/patients/42", Some(&who(&[], &["patients:*x"])));
        assert_eq!(d.status(), 403);
    }

    #[test]
    fn no_match_fails() {
        let d = policy().check("GET", "/", Some(&who(&["admin"], &[])));
        assert_eq!(d, Decision::Forbidden(DenyReason::NoRuleMatches));
        assert_eq!(d.reason().unwrap().to_string(), "no rule matches");
        let empty = Policy::new(&PolicyConfig::default()).unwrap();
        assert_eq!(
            empty.check("GET", "/", None),
            Decision::Forbidden(DenyReason::NoRuleMatches)
        );
    }

    #[test]
    fn odd_paths_forbidden_fails() {
        let p = policy();
        let admin = who(&["admin"], &[]);
        for path in [
            "/api/auth/../../admin",
            "/api/auth/%2e%2e/admin",
            "/api/auth//x",
            "/api/auth\\x",
            "api/auth/login",
            "/api/auth/x;/admin",
            "/api/auth/%2F",
        ] {
            for principal in [None, Some(&admin)] {
                let d = p.check("GET", path, principal);
                assert_eq!(
                    d,
                    Decision::Forbidden(DenyReason::PathNotNormalized),
                    "{path}"
                );
                assert_eq!(d.reason().unwrap().to_string(), "path not normalized");
            }
        }
    }

    #[test]
    fn rule_config_bad_fails() {
        let cases = [
            (r#"{"rules":[{"prefix":"/"}]}"#, "rules[0]"),
            (
                r#"{"rules":[{"prefix":"/","allow":"public"},{"prefix":"/","allow":"public","roles":["a"]}]}"#,
                "rules[1]",
            ),
            (r#"{"rules":[{"allow":"public"}]}"#, "rules[0]"),
            (
                r#"{"rules":[{"path":"/a","prefix":"/a","allow":"public"}]}"#,
                "rules[0]",
            ),
            (
                r#"{"rules":[{"path":"/a*","allow":"public"}]}"#,
                "rules[0].path",
            ),
            (r#"{"rules":[{"prefix":"/","roles":[]}]}"#, "rules[0].roles"),
            (
                r#"{"rules":[{"prefix":"/","roles":["a b"]}]}"#,
                "rules[0].roles[0]",
            ),
            (
                r#"{"rules":[{"prefix":"/","permissions":["a:read","a:*"]}]}"#,
                "rules[0].permissions[1]",
            ),
            (
                r#"{"rules":[{"prefix":"/","methods":["get"],"allow":"public"}]}"#,
                "rules[0].methods[0]",
            ),
            (r#"{"roles":{"r":["*", "x:**"]}}"#, "roles.r[1]"),
        ];
        for (json, field) in cases {
            let config: PolicyConfig = serde_json::from_str(json).unwrap();
            let e = Policy::new(&config).unwrap_err();
            assert_eq!(e.field, field, "{json}");
            assert_eq!(e.code(), "config_invalid");
        }
    }

    #[test]
    fn config_unknown_fields_fails() {
        assert!(serde_json::from_str::<PolicyConfig>(
            r#"{"rules":[{"prefix":"/","allow":"public","role":["x"]}]}"#
        )
        .is_err());
        assert!(serde_json::from_str::<PolicyConfig>(
            r#"{"rules":[{"prefix":"/","allow":"everyone"}]}"#
        )
        .is_err());
        assert!(serde_json::from_str::<PolicyConfig>(r#"{"default":"deny"}"#).is_err());
    }

    #[test]
    fn too_many_rules_fails() {
        let rule = RuleConfig {
            prefix: Some("/".into()),
            allow: Some(Access::Public),
            ..RuleConfig::default()
        };
        let config = PolicyConfig {
            roles: BTreeMap::new(),
            rules: vec![rule; MAX_RULES + 1],
        };
        assert_eq!(Policy::new(&config).unwrap_err().field, "rules");
    }

    fn rules(json: &str) -> Policy {
        Policy::new(
            &serde_json::from_str(&format!(
                r#"{{"roles": {{"admin": ["*"], "nurse": ["patients:read"]}}, "rules": {json}}}"#
            ))
            .unwrap(),
        )
        .unwrap()
    }

    /// Review finding: an exact `path` rule also matched the path with a trailing slash, so a
    /// permissive exact rule took `/api/items/` from the stricter rule written for it.
    #[test]
    fn trailing_slash_never_skips_the_rule_as_written_fails() {
        let p = rules(
            r#"[{"path": "/api/items", "allow": "public"},
                {"prefix": "/api/items/", "roles": ["admin"]},
                {"prefix": "/", "allow": "public"}]"#,
        );
        let (admin, nurse) = (who(&["admin"], &[]), who(&["nurse"], &[]));
        // `/api/items/` meets the exact rule first only through its other spelling, so it
        // must also pass the prefix rule it meets as written; public is covered by admin: one
        // rule, the stricter one.
        assert_eq!(
            p.requirement("GET", "/api/items/"),
            RouteDecision::Rule {
                index: 1,
                requirement: &Requirement::AnyRole(vec!["admin".into()]),
            }
        );
        // `/api/items` meets the exact rule as written, before any rule of its other
        // spelling: first match decides, as the operator wrote it.
        assert_eq!(
            p.requirement("GET", "/api/items"),
            RouteDecision::Rule {
                index: 0,
                requirement: &Requirement::Public,
            }
        );
        assert!(!p.requirement("GET", "/api/items/").is_public());
        assert_eq!(
            p.check("GET", "/api/items/", None),
            Decision::Unauthenticated(DenyReason::TokenMissing)
        );
        assert_eq!(p.check("GET", "/api/items/", Some(&nurse)).status(), 403);
        assert!(p.check("GET", "/API/Items/", Some(&admin)).is_allowed());
        assert!(p.check("GET", "/api/items/1", Some(&admin)).is_allowed());
    }

    /// The other way round: an upstream that routes `/admin/users/` like `/admin/users`
    /// (Express, Werkzeug with strict_slashes off) must not see it slip past that path's rule
    /// into a later, weaker one.
    #[test]
    fn trailing_slash_still_meets_the_exact_rule_fails() {
        let p = rules(
            r#"[{"path": "/admin/users", "roles": ["admin"]},
                {"path": "/api/patients/*", "permissions": ["patients:read"]},
                {"prefix": "/api/patients/", "roles": ["admin"]},
                {"path": "/health", "allow": "public"},
                {"path": "/docs/", "allow": "public"},
                {"prefix": "/", "allow": "authenticated"}]"#,
        );
        let (admin, nurse) = (who(&["admin"], &[]), who(&["nurse"], &[]));
        // Both apply: the exact rule (admin) and the catch-all (authenticated).
        assert_eq!(p.check("GET", "/admin/users/", Some(&nurse)).status(), 403);
        assert!(p.check("GET", "/admin/users/", Some(&admin)).is_allowed());
        // `*` segments alike: `/api/patients/7/` meets the `*` rule only as its other
        // spelling, so it needs patients:read and the admin prefix it meets as written;
        // `/api/patients/7` meets the `*` rule as written, first: patients:read alone.
        assert_eq!(
            p.check("GET", "/api/patients/7/", Some(&nurse)).status(),
            403
        );
        assert!(p
            .check("GET", "/api/patients/7/", Some(&admin))
            .is_allowed());
        assert!(matches!(
            p.requirement("GET", "/api/patients/7/"),
            RouteDecision::BothSpellings {
                index: 2,
                folded: 1,
                ..
            }
        ));
        assert!(p.check("GET", "/api/patients/7", Some(&nurse)).is_allowed());
        // A public exact path before an authenticated catch-all stays public as written (the
        // health check, the login endpoint); its other spelling `/health/` asks for a token.
        assert_eq!(p.check("GET", "/health", None), Decision::Allow);
        assert_eq!(p.check("GET", "/health/", None).status(), 401);
        // A rule can open `/health/` too.
        let open = rules(
            r#"[{"path": "/health", "allow": "public"}, {"path": "/health/", "allow": "public"},
                {"prefix": "/", "allow": "authenticated"}]"#,
        );
        assert_eq!(open.check("GET", "/health", None), Decision::Allow);
        assert_eq!(open.check("GET", "/health/", None), Decision::Allow);
        // ... but with no other rule for it, the exact rule alone decides, as before.
        let only = rules(r#"[{"path": "/health", "allow": "public"}]"#);
        assert_eq!(
            only.requirement("GET", "/health/"),
            RouteDecision::Rule {
                index: 0,
                requirement: &Requirement::Public
            }
        );
        // A `path` written with a trailing `/` meets `/docs` as its other spelling, before the
        // catch-all `/docs` meets as written: both apply; alone it decides. `/docs/` itself
        // meets it as written, first.
        assert_eq!(p.check("GET", "/docs/", None), Decision::Allow);
        assert_eq!(p.check("GET", "/docs", None).status(), 401);
        let docs = rules(r#"[{"path": "/docs/", "allow": "public"}]"#);
        assert_eq!(docs.check("GET", "/docs", None), Decision::Allow);
        assert_eq!(docs.check("GET", "/docs/x", None).status(), 403);
        // The same requirement twice is one rule.
        let same = rules(
            r#"[{"path": "/a", "allow": "authenticated"}, {"prefix": "/", "allow": "authenticated"}]"#,
        );
        assert!(matches!(
            same.requirement("GET", "/a/"),
            RouteDecision::Rule { index: 0, .. }
        ));
    }

    /// Review finding F1: a rule written with a trailing `/` was dodged by the spelling
    /// without it (`/admin`, `/ADMIN` went to the public catch-all).
    #[test]
    fn spelling_without_the_slash_meets_the_rule_fails() {
        let p = rules(
            r#"[{"prefix": "/admin/", "roles": ["admin"]},
                {"path": "/api/*/", "methods": ["GET"], "roles": ["admin"]},
                {"path": "/docs/", "permissions": ["patients:read"]},
                {"prefix": "/", "allow": "public"}]"#,
        );
        let (admin, nurse) = (who(&["admin"], &[]), who(&["nurse"], &[]));
        for path in ["/admin/", "/admin", "/ADMIN", "/Admin?x=1", "/admin/?x=/"] {
            assert_eq!(
                p.check("GET", path, None),
                Decision::Unauthenticated(DenyReason::TokenMissing),
                "{path}"
            );
            assert_eq!(p.check("GET", path, Some(&nurse)).status(), 403, "{path}");
            assert!(p.check("GET", path, Some(&admin)).is_allowed(), "{path}");
        }
        // Only one `/` more or less: `/adminx` and `/admin//` are other paths.
        assert_eq!(p.check("GET", "/adminx", None), Decision::Allow);
        // `*` segments and methods: the rule meets `/api/v1` for GET only.
        assert_eq!(p.check("GET", "/api/v1", None).status(), 401);
        assert_eq!(p.check("GET", "/api/v1/", None).status(), 401);
        assert_eq!(p.check("POST", "/api/v1", None), Decision::Allow);
        assert_eq!(p.check("GET", "/api/v1/x", None), Decision::Allow);
        assert_eq!(p.check("GET", "/docs", None).status(), 401);
        assert!(p.check("GET", "/docs", Some(&nurse)).is_allowed());
        // The root has no other spelling: `/` meets `/` only.
        let root =
            rules(r#"[{"path": "/", "allow": "public"}, {"prefix": "/", "roles": ["admin"]}]"#);
        assert_eq!(root.check("GET", "/", None), Decision::Allow);
        assert_eq!(root.check("GET", "/?a=/", None), Decision::Allow);
        assert_eq!(root.check("GET", "/x", None).status(), 401);
    }

    /// Two requirements neither of which covers the other: both apply, in either direction.
    #[test]
    fn both_spellings_need_both_rules_fails() {
        let p = rules(
            r#"[{"path": "/x", "permissions": ["patients:read"]},
                {"prefix": "/x/", "roles": ["admin"]}]"#,
        );
        let (admin, nurse) = (who(&["admin"], &[]), who(&["nurse"], &[]));
        let both = who(&["admin", "nurse"], &[]);
        let admin_no_perm = Policy::new(
            &serde_json::from_str(
                r#"{"roles": {"admin": [], "nurse": ["patients:read"]},
                    "rules": [{"path": "/x", "permissions": ["patients:read"]},
                              {"prefix": "/x/", "roles": ["admin"]}]}"#,
            )
            .unwrap(),
        )
        .unwrap();
        // `/x/` meets the exact rule (earlier) only through its other spelling: both rules.
        for path in ["/x/", "/X/"] {
            assert_eq!(p.check("GET", path, Some(&nurse)).status(), 403, "{path}");
            assert!(p.check("GET", path, Some(&both)).is_allowed(), "{path}");
            assert!(p.check("GET", path, Some(&admin)).is_allowed(), "{path}");
            assert_eq!(
                admin_no_perm.check("GET", path, Some(&admin)).status(),
                403,
                "{path}"
            );
            assert!(!p.requirement("GET", path).is_public());
        }
        assert!(matches!(
            p.requirement("GET", "/x/"),
            RouteDecision::BothSpellings {
                index: 1,
                folded: 0,
                ..
            }
        ));
        // `/x` meets the exact rule as written, first: it alone decides.
        assert!(p.check("GET", "/x", Some(&nurse)).is_allowed());
        assert!(matches!(
            p.requirement("GET", "/x"),
            RouteDecision::Rule { index: 0, .. }
        ));
        // The rules the other way round: `/x` meets the prefix `/x/` (earlier) only through
        // its other spelling, so it needs both; `/x/` meets the prefix as written, first.
        let q = rules(
            r#"[{"prefix": "/x/", "roles": ["admin"]},
                {"path": "/x", "permissions": ["patients:read"]}]"#,
        );
        assert_eq!(
            q.requirement("GET", "/x"),
            RouteDecision::BothSpellings {
                index: 1,
                requirement: &Requirement::AllPermissions(vec!["patients:read".into()]),
                folded: 0,
                folded_requirement: &Requirement::AnyRole(vec!["admin".into()]),
            }
        );
        // nurse holds patients:read but not the admin role the other spelling's rule asks.
        assert_eq!(q.check("GET", "/x", Some(&nurse)).status(), 403);
        assert!(q.check("GET", "/x", Some(&admin)).is_allowed());
        assert!(q.check("GET", "/x", Some(&both)).is_allowed());
        assert!(q.check("GET", "/x/", Some(&admin)).is_allowed());
        assert_eq!(q.check("GET", "/x/", Some(&nurse)).status(), 403);
    }

    proptest! {
        #[test]
        fn check_arbitrary_request_never_panics_ok(method in "\\PC{0,8}", path in "\\PC{0,64}",
                                                    role in "\\PC{0,8}") {
            let p = policy();
            let principal = who(&[&role], &[&role]);
            let d = p.check(&method, &path, Some(&principal));
            prop_assert!(matches!(d.status(), 200 | 403));
            if RequestPath::new(&path).is_none() {
                prop_assert_eq!(d, Decision::Forbidden(DenyReason::PathNotNormalized));
            }
        }

        #[test]
        fn config_arbitrary_json_never_panics_ok(json in "\\PC{0,80}") {
            if let Ok(config) = serde_json::from_str::<PolicyConfig>(&json) {
                if let Ok(p) = Policy::new(&config) {
                    prop_assert!(p.rule_count() <= MAX_RULES);
                }
            }
        }
    }
}
