//! Role and permission names, and how a granted permission covers a required one.
//!
//! A permission is `word(:word)*` with words of ASCII letters, digits, `_`, `-`, `.`
//! (`patients:read`). A grant (what a role or token gives) is a permission, `*` (everything) or
//! a permission followed by `:*` (`patients:*` covers `patients:read` and `patients:notes:read`,
//! not `patients` itself). Rules require concrete permissions only.

use crate::ConfigError;
use std::collections::BTreeMap;

/// Longest role or permission name.
pub const MAX_NAME_LEN: usize = 128;
/// Most roles in the `roles` map.
pub const MAX_ROLES: usize = 256;
/// Most permissions one role may grant.
pub const MAX_GRANTS_PER_ROLE: usize = 256;

fn is_word(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// Whether `name` is a valid role name: 1..=[`MAX_NAME_LEN`] of ASCII letters, digits, `_-.:`.
#[must_use]
pub fn is_role_name(name: &str) -> bool {
    name.len() <= MAX_NAME_LEN && name.split(':').all(is_word)
}

/// Whether `name` is a valid concrete permission (`patients:read`).
#[must_use]
pub fn is_permission(name: &str) -> bool {
    name.len() <= MAX_NAME_LEN && name.split(':').all(is_word)
}

/// Whether `grant` is a valid grant: a permission, `*`, or `permission:*`.
#[must_use]
pub fn is_grant(grant: &str) -> bool {
    grant == "*"
        || grant
            .strip_suffix(":*")
            .map_or_else(|| is_permission(grant), is_permission)
}

/// Whether `grant` covers the concrete `permission`. Works on unvalidated grants from tokens.
#[must_use]
pub fn grant_covers(grant: &str, permission: &str) -> bool {
    if grant == "*" {
        return true;
    }
    match grant.strip_suffix('*') {
        Some(prefix) if prefix.ends_with(':') => {
            permission.len() > prefix.len() && permission.starts_with(prefix)
        }
        _ => grant == permission,
    }
}

/// The validated `roles` map: role → granted permissions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Roles(BTreeMap<String, Vec<String>>);

impl Roles {
    pub(crate) fn new(map: &BTreeMap<String, Vec<String>>) -> Result<Self, ConfigError> {
        if map.len() > MAX_ROLES {
            return Err(ConfigError::new(
                "roles",
                format!("at most {MAX_ROLES} roles"),
            ));
        }
        for (role, grants) in map {
            let field = format!("roles.{role}");
            if !is_role_name(role) {
                return Err(ConfigError::new(field, role_name_rule()));
            }
            if grants.len() > MAX_GRANTS_PER_ROLE {
                return Err(ConfigError::new(
                    field,
                    format!("a role grants at most {MAX_GRANTS_PER_ROLE} permissions"),
                ));
            }
            if let Some(i) = grants.iter().position(|g| !is_grant(g)) {
                return Err(ConfigError::new(format!("{field}[{i}]"), grant_rule()));
            }
        }
        Ok(Self(map.clone()))
    }

    pub(crate) fn grants(&self, role: &str) -> &[String] {
        self.0.get(role).map_or(&[], Vec::as_slice)
    }
}

pub(crate) fn role_name_rule() -> String {
    format!(
        "a role name is 1 to {MAX_NAME_LEN} ASCII letters, digits, `_`, `-`, `.`, with optional \
         `:` separators"
    )
}

pub(crate) fn permission_rule() -> String {
    format!(
        "a permission is 1 to {MAX_NAME_LEN} characters like `patients:read`: words of ASCII \
         letters, digits, `_`, `-`, `.` joined by `:`; rules name concrete permissions (no `*`)"
    )
}

fn grant_rule() -> String {
    format!(
        "a granted permission is a permission like `patients:read`, `patients:*` (every \
         `patients:` permission) or `*` (everything), at most {MAX_NAME_LEN} characters"
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_ok() {
        assert!(is_role_name("admin"));
        assert!(is_role_name("org:billing-admin"));
        assert!(is_permission("patients:read"));
        assert!(is_permission("a.b_c-d:e"));
        assert!(is_grant("*"));
        assert!(is_grant("patients:*"));
        assert!(is_grant("patients:notes:*"));
        assert!(is_grant("patients:read"));
    }

    #[test]
    fn names_bad_fails() {
        for bad in ["", ":", "a:", ":a", "a::b", "a b", "a*", "*", "a:*", "é"] {
            assert!(!is_permission(bad), "{bad:?}");
            assert!(!is_role_name(bad), "{bad:?}");
        }
        assert!(!is_permission(&"a".repeat(MAX_NAME_LEN + 1)));
        for bad in ["", "**", "*:*", "a*", "a:**", ":*", "a:*:b", "a:b*"] {
            assert!(!is_grant(bad), "{bad:?}");
        }
    }

    #[test]
    fn grant_covers_ok() {
        assert!(grant_covers("*", "patients:read"));
        assert!(grant_covers("patients:*", "patients:read"));
        assert!(grant_covers("patients:*", "patients:notes:read"));
        assert!(grant_covers("patients:read", "patients:read"));
    }

    #[test]
    fn grant_covers_fails() {
        assert!(!grant_covers("patients:*", "patients"));
        assert!(!grant_covers("patients:*", "patientsx:read"));
        assert!(!grant_covers("patients:read", "patients:write"));
        assert!(!grant_covers("patients", "patients:read"));
        assert!(!grant_covers("patients*", "patientsx"));
        assert!(!grant_covers("", "patients:read"));
    }

    #[test]
    fn roles_map_bad_fails() {
        let mut m = BTreeMap::new();
        m.insert(
            "nurse".to_owned(),
            vec!["patients:read".to_owned(), "pa tients".to_owned()],
        );
        assert_eq!(Roles::new(&m).unwrap_err().field, "roles.nurse[1]");
        let mut m = BTreeMap::new();
        m.insert("bad role".to_owned(), vec![]);
        assert_eq!(Roles::new(&m).unwrap_err().field, "roles.bad role");
    }

    proptest! {
        #[test]
        fn names_arbitrary_never_panic_ok(s in "\\PC{0,40}", p in "[a:*]{0,8}") {
            if is_grant(&s) {
                prop_assert!(s.is_ascii());
            }
            if is_permission(&p) {
                prop_assert!(grant_covers(&p, &p));
                prop_assert!(grant_covers("*", &p));
            }
            prop_assert_eq!(grant_covers(&s, &p), s == "*" || s == p
                || (s.ends_with(":*") && p.len() > s.len() - 1 && p.starts_with(&s[..s.len() - 1])));
        }
    }
}
