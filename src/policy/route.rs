//! Which requests a rule applies to: a path pattern or a prefix, optionally a set of methods.
//! Shared by access rules and rate-limit rules.
//!
//! Matching runs only on a [`RequestPath`], a path that passed the normalization check: odd
//! paths (`//`, dot segments, backslashes, encoded `.` `/` `\` `%` `;`, control or non-ASCII
//! bytes) never reach a rule, so an upstream that decodes or resolves them differently cannot be
//! tricked into serving a resource under another rule. Enable Envoy's `normalize_path` and
//! `merge_slashes` so ordinary clients never hit this.

use crate::ConfigError;
use std::fmt;
use std::str::FromStr;

/// Longest request path (without query) considered; longer ones are refused.
pub const MAX_PATH_LEN: usize = 8 * 1024;
/// Longest `path` or `prefix` accepted in a rule.
pub const MAX_PATTERN_LEN: usize = 1024;
/// Most methods one rule may list.
pub const MAX_METHODS: usize = 16;
/// Longest HTTP method token accepted in a rule.
pub const MAX_METHOD_LEN: usize = 20;

/// A request path that passed the normalization check, without its query string and fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestPath<'a>(&'a str);

impl<'a> RequestPath<'a> {
    /// Checks the `:path` of a request. The query string and fragment are cut off first.
    ///
    /// Returns `None` (fail closed: the policy answers 403 "path not normalized") when the path
    /// is longer than [`MAX_PATH_LEN`], not absolute, contains an empty segment (`//`), a `.` or
    /// `..` segment, a backslash or `;`, a byte outside visible ASCII, a malformed `%` escape, or
    /// an escape of an unreserved character (`%61` for `a`, `%2e` for `.`), of `/`, `\`, `%`, `;`
    /// or a control character, or of a byte that never occurs in UTF-8.
    #[must_use]
    pub fn new(raw: &'a str) -> Option<Self> {
        // A byte search (both are ASCII, so the index is a char boundary): `str::find` with a
        // char set decodes every char, on every request.
        let end = raw
            .bytes()
            .position(|b| b == b'?' || b == b'#')
            .unwrap_or(raw.len());
        let path = raw.get(..end)?;
        (path.len() <= MAX_PATH_LEN && is_normalized(path)).then_some(Self(path))
    }

    /// The path, without query or fragment.
    #[must_use]
    pub fn as_str(&self) -> &'a str {
        self.0
    }

    fn segments(&self) -> std::str::Split<'a, char> {
        self.0.get(1..).unwrap_or_default().split('/')
    }
}

fn is_normalized(path: &str) -> bool {
    let Some(rest) = path.strip_prefix('/') else {
        return false;
    };
    let bytes = path.as_bytes();
    let chars_ok = bytes
        .iter()
        .all(|&b| b.is_ascii_graphic() && b != b'\\' && b != b';');
    if !chars_ok || !escapes_ok(bytes) {
        return false;
    }
    let mut segments = rest.split('/').peekable();
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        if (segment.is_empty() && !last) || segment == "." || segment == ".." {
            return false;
        }
    }
    true
}

fn escapes_ok(bytes: &[u8]) -> bool {
    let mut iter = bytes.iter().enumerate();
    while let Some((i, &b)) = iter.next() {
        if b != b'%' {
            continue;
        }
        let hex = |j: usize| bytes.get(j).and_then(|&c| char::from(c).to_digit(16));
        let (Some(hi), Some(lo)) = (hex(i + 1), hex(i + 2)) else {
            return false;
        };
        let decoded = hi * 16 + lo;
        // A normalized path never escapes an unreserved character (RFC 3986 §6.2.2.2): `%61dmin`
        // would dodge an `/admin` rule while the upstream decodes it to `admin`. Bytes that
        // never occur in UTF-8 (0xC0, 0xC1, 0xF5..) only serve overlong-encoding tricks.
        let unreserved = char::from_u32(decoded)
            .is_some_and(|c| c.is_ascii_alphanumeric() || "-._~".contains(c));
        if decoded < 0x20
            || decoded == 0x7f
            || unreserved
            || matches!(decoded, 0xC0 | 0xC1 | 0xF5..=0xFF)
            || b"/\\%;".iter().any(|&c| u32::from(c) == decoded)
        {
            return false;
        }
        iter.nth(1);
    }
    true
}

/// Which spellings of a request path a rule matches: the path as written, and its other
/// spelling, with one trailing `/` added or removed (`/x` and `/x/`; the root `/` has none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Spellings {
    /// The path as written.
    pub(crate) written: bool,
    /// The path with one trailing `/` added or removed.
    pub(crate) other: bool,
}

impl Spellings {
    const WRITTEN: Self = Self {
        written: true,
        other: false,
    };
    const OTHER: Self = Self {
        written: false,
        other: true,
    };
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Any,
}

/// An exact path where a `*` segment stands for exactly one non-empty segment:
/// `/api/patients/*` matches `/api/patients/42`, not `/api/patients/42/x` nor `/api/patients/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPattern {
    text: String,
    segments: Vec<Segment>,
}

impl PathPattern {
    /// Validates a pattern.
    ///
    /// # Errors
    /// [`ConfigError`] on field `path` when the pattern is longer than [`MAX_PATTERN_LEN`], is
    /// not a normalized absolute path, has a query or fragment, or uses `*` inside a segment.
    pub fn new(pattern: &str) -> Result<Self, ConfigError> {
        let path = checked_pattern(pattern, "path")?;
        let segments = path
            .segments()
            .map(|s| match s {
                "*" => Ok(Segment::Any),
                s if s.contains('*') => Err(ConfigError::new(
                    "path",
                    "`*` must be a whole segment (`/api/patients/*`); it matches one segment",
                )),
                s => Ok(Segment::Literal(s.to_owned())),
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            text: pattern.to_owned(),
            segments,
        })
    }

    /// Whether `path` matches segment by segment.
    ///
    /// Literal segments compare ASCII-case-insensitively and one trailing `/` more on the
    /// request is ignored, as many upstreams (Express, Werkzeug with strict_slashes off) route
    /// `/Admin/` like `/admin`: a rule must not be dodged by a spelling the upstream treats as
    /// the same. (Rate limits use this: every matching limit applies, so matching more only
    /// meters more. Access rules take the first match, so a trailing-slash spelling matched
    /// only this way must not skip the rule its spelling as written meets: see
    /// [`PathPattern::matches_as_written`] and `Policy::requirement_at`.)
    #[must_use]
    pub fn matches(&self, path: &RequestPath<'_>) -> bool {
        self.matches_segments(path, true)
    }

    /// Whether `path` matches as written: segment by segment, ASCII-case-insensitively, with
    /// no trailing `/` ignored (`/health` matches `/health`, not `/health/`; `/a/` matches
    /// only `/a/`).
    #[must_use]
    pub fn matches_as_written(&self, path: &RequestPath<'_>) -> bool {
        self.matches_segments(path, false)
    }

    fn matches_segments(&self, path: &RequestPath<'_>, fold_slash: bool) -> bool {
        let s = self.spellings(path);
        s.written || (fold_slash && s.other && path.as_str().ends_with('/'))
    }

    /// Which spellings of `path` match, in one pass.
    pub(crate) fn spellings(&self, path: &RequestPath<'_>) -> Spellings {
        let mut theirs = path.segments();
        let mut ours = self.segments.iter();
        loop {
            match (ours.next(), theirs.next()) {
                (Some(Segment::Any), Some(s)) if !s.is_empty() => {}
                (Some(Segment::Literal(l)), Some(s)) if l.eq_ignore_ascii_case(s) => {}
                (None, None) => return Spellings::WRITTEN,
                // One trailing `/` more on the request, or on the pattern.
                (None, Some("")) if theirs.next().is_none() => return Spellings::OTHER,
                (Some(Segment::Literal(l)), None) if l.is_empty() && ours.next().is_none() => {
                    return Spellings::OTHER
                }
                _ => return Spellings::default(),
            }
        }
    }

    /// The pattern as written.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl FromStr for PathPattern {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl fmt::Display for PathPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn checked_pattern<'a>(pattern: &'a str, field: &str) -> Result<RequestPath<'a>, ConfigError> {
    let normalized = (pattern.len() <= MAX_PATTERN_LEN && !pattern.contains(['?', '#']))
        .then(|| RequestPath::new(pattern))
        .flatten();
    normalized.ok_or_else(|| {
        ConfigError::new(
            field,
            format!(
                "must be an absolute, normalized path of at most {MAX_PATTERN_LEN} visible ASCII \
                 characters, without `//`, `.`/`..` segments, `\\`, `;`, `?`, `#` or encoded \
                 `.`/`/`/`\\`/`%`"
            ),
        )
    })
}

/// The HTTP methods a rule applies to (uppercase tokens). Listing `GET` includes `HEAD`, which
/// RFC 9110 defines as the same request without a body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MethodSet(Vec<String>);

impl MethodSet {
    /// Validates a method list.
    ///
    /// # Errors
    /// [`ConfigError`] on field `methods` when the list is empty, longer than [`MAX_METHODS`],
    /// or holds a name that is not 1..=[`MAX_METHOD_LEN`] uppercase letters.
    pub fn new(methods: &[String]) -> Result<Self, ConfigError> {
        if methods.is_empty() || methods.len() > MAX_METHODS {
            return Err(ConfigError::new(
                "methods",
                format!("list 1 to {MAX_METHODS} methods, or omit `methods` to match every method"),
            ));
        }
        let mut set: Vec<String> = Vec::with_capacity(methods.len() + 1);
        for (i, m) in methods.iter().enumerate() {
            let ok = (1..=MAX_METHOD_LEN).contains(&m.len())
                && m.bytes().all(|b| b.is_ascii_uppercase());
            if !ok {
                return Err(ConfigError::new(
                    format!("methods[{i}]"),
                    "a method is an uppercase token like GET, POST, PUT, PATCH or DELETE",
                ));
            }
            set.push(m.clone());
        }
        if set.iter().any(|m| m == "GET") {
            set.push("HEAD".to_owned());
        }
        set.sort_unstable();
        set.dedup();
        Ok(Self(set))
    }

    /// Whether `method` is in the set. HTTP methods are case-sensitive, but some upstreams
    /// upper-case them (Werkzeug), so `delete` must meet the same rule as `DELETE`.
    #[must_use]
    pub fn contains(&self, method: &str) -> bool {
        self.0.iter().any(|m| m.eq_ignore_ascii_case(method))
    }

    /// The methods, sorted, `HEAD` added when `GET` is listed.
    #[must_use]
    pub fn as_slice(&self) -> &[String] {
        &self.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Path(PathPattern),
    Prefix(String),
}

/// Which requests a rule applies to: exactly one of a [`PathPattern`] or a plain string prefix
/// (like Envoy's `prefix`: `/admin` also matches `/administrator`; write `/admin/` for a segment
/// boundary), and optionally a [`MethodSet`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch {
    target: Target,
    methods: Option<MethodSet>,
}

impl RouteMatch {
    /// Validates the `path`/`prefix`/`methods` fields of a rule.
    ///
    /// # Errors
    /// [`ConfigError`] with an empty field (callers prefix it with the rule's name) unless exactly
    /// one of `path`/`prefix` is given; on `path`, `prefix` or `methods` when that is invalid.
    pub fn new(
        path: Option<&str>,
        prefix: Option<&str>,
        methods: Option<&[String]>,
    ) -> Result<Self, ConfigError> {
        let target = match (path, prefix) {
            (Some(p), None) => Target::Path(PathPattern::new(p)?),
            (None, Some(p)) => {
                checked_pattern(p, "prefix")?;
                if p.contains('*') {
                    return Err(ConfigError::new(
                        "prefix",
                        "a prefix is matched literally; use `path` with a `*` segment for a \
                         wildcard",
                    ));
                }
                Target::Prefix(p.to_owned())
            }
            _ => {
                return Err(ConfigError::new(
                    "",
                    "exactly one of `path` (exact, `*` = one segment) or `prefix` is required",
                ))
            }
        };
        let methods = methods.map(MethodSet::new).transpose()?;
        Ok(Self { target, methods })
    }

    /// Whether the request matches.
    #[must_use]
    pub fn matches(&self, method: &str, path: &RequestPath<'_>) -> bool {
        let method_ok = self.methods.as_ref().is_none_or(|m| m.contains(method));
        method_ok
            && match &self.target {
                Target::Path(p) => p.matches(path),
                Target::Prefix(p) => path
                    .as_str()
                    .as_bytes()
                    .get(..p.len())
                    .is_some_and(|head| head.eq_ignore_ascii_case(p.as_bytes())),
            }
    }

    /// [`RouteMatch::matches`] without the trailing-slash fold of a `path`
    /// ([`PathPattern::matches_as_written`]).
    #[must_use]
    pub fn matches_as_written(&self, method: &str, path: &RequestPath<'_>) -> bool {
        self.spellings(method, path).written
    }

    /// Which spellings of the request path match, in one pass ([`Spellings`]).
    pub(crate) fn spellings(&self, method: &str, path: &RequestPath<'_>) -> Spellings {
        if !self.methods.as_ref().is_none_or(|m| m.contains(method)) {
            return Spellings::default();
        }
        match &self.target {
            Target::Path(p) => p.spellings(path),
            Target::Prefix(p) => {
                let (path, p) = (path.as_str().as_bytes(), p.as_bytes());
                let starts = |path: &[u8]| {
                    path.get(..p.len())
                        .is_some_and(|head| head.eq_ignore_ascii_case(p))
                };
                let other = match path.split_last() {
                    Some((b'/', rest)) if !rest.is_empty() => starts(rest),
                    // `path` + `/`: only a prefix one byte longer, ending in `/`, adds a match.
                    _ => {
                        starts(path)
                            || (p.len() == path.len() + 1
                                && p.last() == Some(&b'/')
                                && p.get(..path.len())
                                    .is_some_and(|h| h.eq_ignore_ascii_case(path)))
                    }
                };
                Spellings {
                    written: starts(path),
                    other,
                }
            }
        }
    }

    /// The path pattern, when the rule uses `path`.
    #[must_use]
    pub fn path(&self) -> Option<&PathPattern> {
        match &self.target {
            Target::Path(p) => Some(p),
            Target::Prefix(_) => None,
        }
    }

    /// The prefix, when the rule uses `prefix`.
    #[must_use]
    pub fn prefix(&self) -> Option<&str> {
        match &self.target {
            Target::Prefix(p) => Some(p),
            Target::Path(_) => None,
        }
    }

    /// The methods, when the rule lists them.
    #[must_use]
    pub fn methods(&self) -> Option<&MethodSet> {
        self.methods.as_ref()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rp(s: &str) -> RequestPath<'_> {
        RequestPath::new(s).unwrap()
    }

    #[test]
    fn request_path_strips_query_ok() {
        assert_eq!(rp("/a/b?x=1#f").as_str(), "/a/b");
        assert_eq!(rp("/a/b#f?x").as_str(), "/a/b");
        assert_eq!(rp("/").as_str(), "/");
        assert_eq!(rp("/a/").as_str(), "/a/");
        assert_eq!(rp("/a%20b/%C3%A9").as_str(), "/a%20b/%C3%A9");
        assert_eq!(rp("/a/b?q=../..//%2e").as_str(), "/a/b");
        assert_eq!(rp("/a/.well-known/x..y").as_str(), "/a/.well-known/x..y");
    }

    #[test]
    fn request_path_odd_fails() {
        let long = format!("/{}", "a".repeat(MAX_PATH_LEN));
        for bad in [
            "",
            "?x",
            "a/b",
            "*",
            "//a",
            "/a//b",
            "/a/./b",
            "/a/../b",
            "/a/..",
            "/%61dmin",
            "/api/users/42/%64elete",
            "/a/%2E%2E/b",
            "/a/%7e",
            "/a/%C0%AE",
            "/a/.",
            "/..",
            "/a\\b",
            "/a\0b",
            "/a\tb",
            "/a b",
            "/a\u{7f}",
            "/é",
            "/a%2e%2e/b",
            "/a/%2E%2E",
            "/a%2fb",
            "/a%2Fb",
            "/a%5cb",
            "/a%5Cb",
            "/a%00",
            "/a%0a",
            "/a%7F",
            "/a%252e",
            "/a%3bb",
            "/a;b",
            "/..;/admin",
            "/a%",
            "/a%4",
            "/a%zz",
            "/a%%41",
            long.as_str(),
        ] {
            assert!(RequestPath::new(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn path_pattern_ok() {
        let p = PathPattern::new("/api/patients/*").unwrap();
        assert!(p.matches(&rp("/api/patients/42")));
        assert!(p.matches(&rp("/api/patients/42?full=1")));
        assert!(!p.matches(&rp("/api/patients/42/x")));
        assert!(!p.matches(&rp("/api/patients/")));
        assert!(!p.matches(&rp("/api/patients")));
        // Same spelling as far as case-insensitive upstreams go; one trailing slash ignored.
        assert!(p.matches(&rp("/api/Patients/42")));
        assert!(p.matches(&rp("/API/patients/42/")));
        let mid = PathPattern::new("/api/*/records").unwrap();
        assert!(mid.matches(&rp("/api/7/records")));
        assert!(mid.matches(&rp("/api/7/records/")));
        assert!(!mid.matches(&rp("/api/7/records/x")));
        let exact = PathPattern::new("/health").unwrap();
        assert!(exact.matches(&rp("/health")));
        assert!(exact.matches(&rp("/health/")));
        assert!(!exact.matches(&rp("/healthz")));
        // As written: no trailing slash ignored, either way round.
        assert!(exact.matches_as_written(&rp("/HEALTH")));
        assert!(!exact.matches_as_written(&rp("/health/")));
        let dir = PathPattern::new("/docs/").unwrap();
        assert!(dir.matches_as_written(&rp("/docs/")) && dir.matches(&rp("/docs/")));
        assert!(!dir.matches_as_written(&rp("/docs")) && !dir.matches(&rp("/docs")));
        assert!(!p.matches_as_written(&rp("/api/patients/42/")));
        assert!(p.matches_as_written(&rp("/api/patients/42")));
        assert_eq!(exact.to_string().parse::<PathPattern>().unwrap(), exact);
    }

    #[test]
    fn path_pattern_bad_fails() {
        for bad in [
            "", "api", "/a*", "/a/*b", "/a//b", "/a/../b", "/a?x", "/a#x", "/a b", "/a%2f",
        ] {
            let e = PathPattern::new(bad).unwrap_err();
            assert_eq!(e.field, "path", "{bad:?}");
        }
    }

    #[test]
    fn methods_ok() {
        let m = MethodSet::new(&["POST".into(), "GET".into(), "POST".into()]).unwrap();
        assert_eq!(m.as_slice(), ["GET", "HEAD", "POST"]);
        assert!(m.contains("HEAD"));
        assert!(m.contains("get"), "methods match case-insensitively");
        assert!(!m.contains("DELETE"));
    }

    #[test]
    fn methods_bad_fails() {
        assert_eq!(MethodSet::new(&[]).unwrap_err().field, "methods");
        let e = MethodSet::new(&["GET".into(), "post".into()]).unwrap_err();
        assert_eq!(e.field, "methods[1]");
        assert!(MethodSet::new(&["G T".into()]).is_err());
        assert!(MethodSet::new(&[String::new()]).is_err());
        assert!(MethodSet::new(&vec!["GET".to_owned(); MAX_METHODS + 1]).is_err());
    }

    #[test]
    fn route_match_ok() {
        let r = RouteMatch::new(None, Some("/admin"), None).unwrap();
        assert!(r.matches("DELETE", &rp("/admin/users")));
        assert!(r.matches("GET", &rp("/administrator")));
        assert!(!r.matches("GET", &rp("/api/admin")));
        assert_eq!(r.prefix(), Some("/admin"));
        assert!(r.path().is_none());
        let methods = ["GET".to_owned()];
        let r = RouteMatch::new(Some("/api/patients/*"), None, Some(&methods)).unwrap();
        assert!(r.matches("GET", &rp("/api/patients/1")));
        assert!(r.matches("HEAD", &rp("/api/patients/1")));
        assert!(!r.matches("POST", &rp("/api/patients/1")));
        assert_eq!(r.path().map(PathPattern::as_str), Some("/api/patients/*"));
    }

    #[test]
    fn route_match_bad_fails() {
        assert_eq!(RouteMatch::new(None, None, None).unwrap_err().field, "");
        assert_eq!(
            RouteMatch::new(Some("/a"), Some("/a"), None)
                .unwrap_err()
                .field,
            ""
        );
        assert_eq!(
            RouteMatch::new(None, Some("/api/*"), None)
                .unwrap_err()
                .field,
            "prefix"
        );
        assert_eq!(
            RouteMatch::new(None, Some("api"), None).unwrap_err().field,
            "prefix"
        );
        let methods = ["get".to_owned()];
        assert_eq!(
            RouteMatch::new(Some("/a"), None, Some(&methods))
                .unwrap_err()
                .field,
            "methods[0]"
        );
    }

    proptest! {
        #[test]
        fn request_path_arbitrary_never_panics_ok(s in "\\PC{0,64}") {
            if let Some(p) = RequestPath::new(&s) {
                prop_assert!(p.as_str().starts_with('/'));
                prop_assert!(!p.as_str().contains("//"));
            }
        }

        #[test]
        fn request_path_soup_never_panics_ok(s in "[/.%2eEfF5cC;a?]{0,24}") {
            if let Some(p) = RequestPath::new(&s) {
                let lower = p.as_str().to_ascii_lowercase();
                prop_assert!(!lower.contains("%2e") && !lower.contains("%2f"));
                prop_assert!(!p.as_str().split('/').any(|seg| seg == ".." || seg == "."));
            }
        }

        #[test]
        fn pattern_arbitrary_never_panics_ok(s in "[/a*.%?]{0,16}", path in "[/a1*]{0,16}") {
            if let (Ok(p), Some(req)) = (PathPattern::new(&s), RequestPath::new(&path)) {
                let _ = p.matches(&req);
                prop_assert_eq!(p.to_string(), s);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod bypass_tests {
    use super::*;

    /// Spellings an upstream may treat as the same route must meet the same rule.
    #[test]
    fn case_slash_and_method_spellings_match_rule_ok() {
        let admin = RouteMatch::new(None, Some("/admin"), None).unwrap();
        for p in ["/admin/users", "/Admin/users", "/ADMIN", "/admin/"] {
            assert!(admin.matches("GET", &RequestPath::new(p).unwrap()), "{p}");
        }
        let login = RouteMatch::new(Some("/api/auth/login"), None, Some(&["POST".into()])).unwrap();
        for (m, p) in [
            ("POST", "/api/auth/login"),
            ("post", "/api/auth/login/"),
            ("Post", "/API/Auth/Login"),
        ] {
            assert!(login.matches(m, &RequestPath::new(p).unwrap()), "{m} {p}");
        }
        assert!(!login.matches("GET", &RequestPath::new("/api/auth/login").unwrap()));
        assert!(
            RequestPath::new("/api/auth/%6Cogin").is_none(),
            "escaped letters refused"
        );
    }
}
