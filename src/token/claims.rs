//! The claims set keygate issues and accepts: `{sub, type, roles, iat, exp, …}`.

use std::fmt;
use std::str::FromStr;

use std::borrow::Cow;

use serde::de::{self, MapAccess, SeqAccess, Unexpected, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use super::TokenError;
use crate::json::tree::invalid_type;
use crate::json::StrictValue;
use crate::ConfigError;

/// Longest accepted `sub`, in bytes.
pub const MAX_SUB_LEN: usize = 256;
/// Most entries in `roles`.
pub const MAX_ROLES: usize = 64;
/// Longest role name, in bytes.
pub const MAX_ROLE_LEN: usize = 128;
/// Most entries in `permissions`.
pub const MAX_PERMISSIONS: usize = 256;
/// Longest permission name, in bytes.
pub const MAX_PERMISSION_LEN: usize = 128;
/// Most entries in `amr`.
pub const MAX_AMR: usize = 16;
/// Longest `amr` entry, in bytes.
pub const MAX_AMR_LEN: usize = 32;
/// Most entries in `aud`.
pub const MAX_AUDIENCES: usize = 16;
/// Longest `iss` or single `aud` value, in bytes.
pub const MAX_URI_CLAIM_LEN: usize = 256;
/// Longest `jti`, `sid` or `fam`, in bytes.
pub const MAX_ID_LEN: usize = 128;
/// Most claims beyond the ones keygate knows.
pub const MAX_EXTRA_CLAIMS: usize = 32;

/// Claim names with a typed field; never taken from [`Claims::extra`] when serializing.
pub(super) const KNOWN: [&str; 14] = [
    "sub",
    "type",
    "roles",
    "iat",
    "exp",
    "nbf",
    "iss",
    "aud",
    "jti",
    "sid",
    "amr",
    "permissions",
    "fam",
    "gen",
];

/// What a token is for, carried in the `type` claim. A token of one type is never accepted
/// where another is expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenType {
    /// Short-lived API access (`"access"`).
    #[default]
    Access,
    /// Exchanged for new tokens (`"refresh"`).
    Refresh,
    /// Login passed the password step and awaits a second factor (`"mfa"`).
    Mfa,
    /// Password reset (`"reset"`).
    Reset,
}

impl TokenType {
    /// The claim value (`"access"`, `"refresh"`, `"mfa"`, `"reset"`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Access => "access",
            Self::Refresh => "refresh",
            Self::Mfa => "mfa",
            Self::Reset => "reset",
        }
    }
}

impl fmt::Display for TokenType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for TokenType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::json::from_str_only(d, "access, refresh, mfa or reset")
    }
}

impl FromStr for TokenType {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "access" => Ok(Self::Access),
            "refresh" => Ok(Self::Refresh),
            "mfa" => Ok(Self::Mfa),
            "reset" => Ok(Self::Reset),
            _ => Err(ConfigError::new(
                "token_type",
                "expected access, refresh, mfa or reset",
            )),
        }
    }
}

/// A JWT claims set. Unknown claims are kept in [`Claims::extra`].
///
/// Serialized in the order `sub, type, roles, iat, exp, …`; `roles` is always present on access
/// tokens (the seed's `{sub, type: "access", roles, iat, exp}` shape), other optional claims only
/// when set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// Subject: the user id.
    pub sub: String,
    /// The `type` claim.
    pub token_type: TokenType,
    /// Role names (access tokens).
    pub roles: Vec<String>,
    /// Issued at, Unix seconds.
    pub iat: u64,
    /// Expires at, Unix seconds.
    pub exp: u64,
    /// Not before, Unix seconds.
    pub nbf: Option<u64>,
    /// Issuer.
    pub iss: Option<String>,
    /// Audiences; a JSON string or array on input, a string when there is exactly one on output.
    pub aud: Vec<String>,
    /// Token id.
    pub jti: Option<String>,
    /// Session id.
    pub sid: Option<String>,
    /// Authentication methods (RFC 8176: `pwd`, `otp`, `mfa`, …).
    pub amr: Vec<String>,
    /// Permission names.
    pub permissions: Vec<String>,
    /// Refresh-token family id (reuse detection).
    pub fam: Option<String>,
    /// Refresh-token generation within its family.
    pub gen: Option<u64>,
    /// Every other claim, as received.
    pub extra: Map<String, Value>,
}

/// Claims every token must carry (in the order they are reported missing).
const REQUIRED: [&str; 4] = ["sub", "type", "iat", "exp"];

/// The members of a claims object, each read once: a repeated member is refused, so no claim
/// can be read two ways. Typed afterwards by [`Members::into_claims`], so a missing claim is
/// reported as missing even when another one has the wrong type.
///
/// Hand-written rather than `#[derive(Deserialize)]` with `#[serde(flatten)]`: flatten buffers
/// every member a second time and, with the `Value` map this replaces, was the largest cost of
/// a verified request in the Envoy filter (and several KB of its wasm).
pub(crate) struct Members {
    known: [Option<Value>; KNOWN.len()],
    extra: Map<String, Value>,
}

/// A member name, borrowed from the input when it has no escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a claim name")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> Deserialize<'de> for Members {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Members;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            // Read with `deserialize_any` and every other kind refused here: serde_json's
            // `deserialize_map` would word the refusal with serde's `Unexpected`, whose float
            // formatting is ≈16 KB of the filter's wasm (see `crate::json::tree`).
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Members, E> {
                Err(invalid_type(Unexpected::Bool(v), &self))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Members, E> {
                Err(invalid_type(Unexpected::Signed(v), &self))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Members, E> {
                Err(invalid_type(Unexpected::Unsigned(v), &self))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Members, E> {
                Err(invalid_type(Unexpected::Float(v), &self))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Members, E> {
                Err(invalid_type(Unexpected::Str(v), &self))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Members, E> {
                Err(invalid_type(Unexpected::Unit, &self))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Members, A::Error> {
                Err(invalid_type(Unexpected::Seq, &self))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Members, A::Error> {
                let mut m = Members {
                    known: Default::default(),
                    extra: Map::new(),
                };
                while let Some(Key(k)) = a.next_key()? {
                    let duplicate = || de::Error::custom("duplicate claim");
                    match KNOWN.iter().position(|n| *n == k) {
                        Some(i) => {
                            let slot = m.known.get_mut(i).ok_or_else(duplicate)?;
                            if slot.is_some() {
                                return Err(duplicate());
                            }
                            *slot = Some(a.next_value::<StrictValue>()?.0);
                        }
                        None => {
                            if m.extra.contains_key(k.as_ref()) {
                                return Err(duplicate());
                            }
                            let v = a.next_value::<StrictValue>()?.0;
                            m.extra.insert(k.into_owned(), v);
                        }
                    }
                }
                Ok(m)
            }
        }
        d.deserialize_any(V)
    }
}

/// The reason given for any claim of the wrong type.
const WRONG_TYPE: TokenError = TokenError::Malformed {
    reason: "a claim has the wrong type (times are integer seconds, `type` is access, refresh, mfa or reset)",
};

impl Members {
    fn take(&mut self, name: &str) -> Option<Value> {
        let i = KNOWN.iter().position(|n| *n == name)?;
        self.known.get_mut(i)?.take()
    }

    /// The typed claims.
    ///
    /// # Errors
    /// [`TokenError::MissingClaim`] for the first of `sub`, `type`, `iat`, `exp` that is
    /// absent or null; then `token_malformed` when a claim has the wrong type.
    pub(crate) fn into_claims(mut self) -> Result<Claims, TokenError> {
        for claim in REQUIRED {
            let i = KNOWN.iter().position(|n| *n == claim);
            if i.and_then(|i| self.known.get(i))
                .is_none_or(|v| v.as_ref().is_none_or(Value::is_null))
            {
                return Err(TokenError::MissingClaim { claim });
            }
        }
        let string = |v: Option<Value>| match v {
            Some(Value::String(s)) => Ok(s),
            _ => Err(WRONG_TYPE),
        };
        let opt_string = |v: Option<Value>| match v {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(WRONG_TYPE),
        };
        let int = |v: Option<Value>| v.as_ref().and_then(Value::as_u64).ok_or(WRONG_TYPE);
        let opt_int = |v: Option<Value>| match v {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v.as_u64().map(Some).ok_or(WRONG_TYPE),
        };
        let list = |v: Option<Value>| match v {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items.into_iter().map(|i| string(Some(i))).collect(),
            Some(_) => Err(WRONG_TYPE),
        };
        let token_type = match self.take("type") {
            Some(Value::String(t)) => match t.as_str() {
                "access" => TokenType::Access,
                "refresh" => TokenType::Refresh,
                "mfa" => TokenType::Mfa,
                "reset" => TokenType::Reset,
                _ => return Err(WRONG_TYPE),
            },
            _ => return Err(WRONG_TYPE),
        };
        Ok(Claims {
            sub: string(self.take("sub"))?,
            token_type,
            roles: list(self.take("roles"))?,
            iat: int(self.take("iat"))?,
            exp: int(self.take("exp"))?,
            nbf: opt_int(self.take("nbf"))?,
            iss: opt_string(self.take("iss"))?,
            aud: match self.take("aud") {
                Some(Value::String(one)) => vec![one],
                other => list(other)?,
            },
            jti: opt_string(self.take("jti"))?,
            sid: opt_string(self.take("sid"))?,
            amr: list(self.take("amr"))?,
            permissions: list(self.take("permissions"))?,
            fam: opt_string(self.take("fam"))?,
            gen: opt_int(self.take("gen"))?,
            extra: self.extra,
        })
    }
}

impl<'de> Deserialize<'de> for Claims {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Members::deserialize(d)?
            .into_claims()
            .map_err(de::Error::custom)
    }
}

impl Serialize for Claims {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("sub", &self.sub)?;
        m.serialize_entry("type", &self.token_type)?;
        if self.token_type == TokenType::Access || !self.roles.is_empty() {
            m.serialize_entry("roles", &self.roles)?;
        }
        m.serialize_entry("iat", &self.iat)?;
        m.serialize_entry("exp", &self.exp)?;
        if let Some(nbf) = self.nbf {
            m.serialize_entry("nbf", &nbf)?;
        }
        if let Some(iss) = &self.iss {
            m.serialize_entry("iss", iss)?;
        }
        match self.aud.as_slice() {
            [] => {}
            [one] => m.serialize_entry("aud", one)?,
            many => m.serialize_entry("aud", many)?,
        }
        if let Some(jti) = &self.jti {
            m.serialize_entry("jti", jti)?;
        }
        if let Some(sid) = &self.sid {
            m.serialize_entry("sid", sid)?;
        }
        if !self.amr.is_empty() {
            m.serialize_entry("amr", &self.amr)?;
        }
        if !self.permissions.is_empty() {
            m.serialize_entry("permissions", &self.permissions)?;
        }
        if let Some(fam) = &self.fam {
            m.serialize_entry("fam", fam)?;
        }
        if let Some(gen) = self.gen {
            m.serialize_entry("gen", &gen)?;
        }
        for (k, v) in &self.extra {
            // A typed field always wins: never emit a duplicate member.
            if !KNOWN.contains(&k.as_str()) {
                m.serialize_entry(k, v)?;
            }
        }
        m.end()
    }
}

impl Claims {
    /// Claims of `token_type` for `sub`, issued at `now`, expiring `ttl_secs` later.
    #[must_use]
    pub fn new(token_type: TokenType, sub: impl Into<String>, now: u64, ttl_secs: u64) -> Self {
        Self {
            sub: sub.into(),
            token_type,
            roles: Vec::new(),
            iat: now,
            exp: now.saturating_add(ttl_secs),
            nbf: None,
            iss: None,
            aud: Vec::new(),
            jti: None,
            sid: None,
            amr: Vec::new(),
            permissions: Vec::new(),
            fam: None,
            gen: None,
            extra: Map::new(),
        }
    }

    /// An access token's claims: the seed's `{sub, type: "access", roles, iat, exp}`.
    #[must_use]
    pub fn access(sub: impl Into<String>, roles: Vec<String>, now: u64, ttl_secs: u64) -> Self {
        Self::new(TokenType::Access, sub, now, ttl_secs).with_roles(roles)
    }

    /// Sets `roles`.
    #[must_use]
    pub fn with_roles(mut self, roles: Vec<String>) -> Self {
        self.roles = roles;
        self
    }

    /// Sets `permissions`.
    #[must_use]
    pub fn with_permissions(mut self, permissions: Vec<String>) -> Self {
        self.permissions = permissions;
        self
    }

    /// Sets `iss`.
    #[must_use]
    pub fn with_issuer(mut self, iss: impl Into<String>) -> Self {
        self.iss = Some(iss.into());
        self
    }

    /// Adds one audience to `aud`.
    #[must_use]
    pub fn with_audience(mut self, aud: impl Into<String>) -> Self {
        self.aud.push(aud.into());
        self
    }

    /// Sets `nbf`.
    #[must_use]
    pub fn with_not_before(mut self, nbf: u64) -> Self {
        self.nbf = Some(nbf);
        self
    }

    /// Sets `jti`.
    #[must_use]
    pub fn with_jti(mut self, jti: impl Into<String>) -> Self {
        self.jti = Some(jti.into());
        self
    }

    /// Sets `sid`.
    #[must_use]
    pub fn with_sid(mut self, sid: impl Into<String>) -> Self {
        self.sid = Some(sid.into());
        self
    }

    /// Sets `amr`.
    #[must_use]
    pub fn with_amr(mut self, amr: Vec<String>) -> Self {
        self.amr = amr;
        self
    }

    /// Sets the refresh-token family and generation (`fam`, `gen`).
    #[must_use]
    pub fn with_family(mut self, fam: impl Into<String>, gen: u64) -> Self {
        self.fam = Some(fam.into());
        self.gen = Some(gen);
        self
    }

    /// Whether `roles` contains `role` (exact match).
    #[must_use]
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// Whether `roles` contains any of `roles`.
    #[must_use]
    pub fn has_any_role(&self, roles: &[&str]) -> bool {
        roles.iter().any(|r| self.has_role(r))
    }

    /// Whether `permissions` contains `permission` (exact match).
    #[must_use]
    pub fn has_permission(&self, permission: &str) -> bool {
        self.permissions.iter().any(|p| p == permission)
    }

    /// Seconds until `exp` at `now` (0 once expired).
    #[must_use]
    pub fn expires_in(&self, now: u64) -> u64 {
        self.exp.saturating_sub(now)
    }

    /// Checks every size bound (`MAX_*` in this module) and that `sub` is not empty.
    ///
    /// # Errors
    /// [`TokenError::ClaimTooLarge`] naming the claim; [`TokenError::MissingClaim`] for an
    /// empty `sub`.
    pub fn check_bounds(&self) -> Result<(), TokenError> {
        fn list(
            v: &[String],
            max: usize,
            max_len: usize,
            claim: &'static str,
        ) -> Result<(), TokenError> {
            if v.len() > max || v.iter().any(|s| s.len() > max_len) {
                return Err(TokenError::ClaimTooLarge { claim });
            }
            Ok(())
        }
        fn one(v: Option<&String>, max_len: usize, claim: &'static str) -> Result<(), TokenError> {
            match v {
                Some(s) if s.len() > max_len => Err(TokenError::ClaimTooLarge { claim }),
                _ => Ok(()),
            }
        }
        if self.sub.is_empty() {
            return Err(TokenError::MissingClaim { claim: "sub" });
        }
        one(Some(&self.sub), MAX_SUB_LEN, "sub")?;
        list(&self.roles, MAX_ROLES, MAX_ROLE_LEN, "roles")?;
        list(
            &self.permissions,
            MAX_PERMISSIONS,
            MAX_PERMISSION_LEN,
            "permissions",
        )?;
        list(&self.amr, MAX_AMR, MAX_AMR_LEN, "amr")?;
        list(&self.aud, MAX_AUDIENCES, MAX_URI_CLAIM_LEN, "aud")?;
        one(self.iss.as_ref(), MAX_URI_CLAIM_LEN, "iss")?;
        one(self.jti.as_ref(), MAX_ID_LEN, "jti")?;
        one(self.sid.as_ref(), MAX_ID_LEN, "sid")?;
        one(self.fam.as_ref(), MAX_ID_LEN, "fam")?;
        if self.extra.len() > MAX_EXTRA_CLAIMS {
            return Err(TokenError::ClaimTooLarge { claim: "extra" });
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::ErrorCode;
    use proptest::prelude::*;

    #[test]
    fn arrays_and_nested_repeats_fail() {
        for bad in [
            r#"["u", "access", [], 1, 2]"#,
            r#"{"sub":"u","type":"access","iat":1,"exp":2,"ext":{"a":1,"a":2}}"#,
            r#"{"sub":"u","type":"access","iat":1,"exp":2,"aud":[{"a":1,"a":2}]}"#,
            r#"{"sub":"u","type":"access","iat":1,"exp":2,"x":1,"x":1}"#,
        ] {
            assert_eq!(members(bad).unwrap_err(), "unparsable", "{bad}");
        }
        assert!(members(
            r#"{"sub":"u","type":"access","iat":1,"exp":2,"ext":{"a":1,"b":[{"a":1}]}}"#
        )
        .is_ok());
        // `type` is a string only, not `{"access": null}`.
        assert!(serde_json::from_str::<TokenType>(r#"{"access": null}"#).is_err());
        assert_eq!(
            serde_json::from_str::<TokenType>(r#""mfa""#).unwrap(),
            TokenType::Mfa
        );
    }

    fn members(json: &str) -> Result<Claims, &'static str> {
        let m: Members = serde_json::from_str(json).map_err(|_| "unparsable")?;
        m.into_claims().map_err(|e| match e {
            TokenError::MissingClaim { claim } => claim,
            TokenError::Malformed { .. } => "malformed",
            _ => "other",
        })
    }

    #[test]
    fn members_ok() {
        let c = members(
            r#"{"sub":"u","type":"refresh","iat":1,"exp":2,"aud":"api","nbf":null,"x\u0041":[1],"roles":[]}"#,
        )
        .unwrap();
        assert_eq!(
            (c.sub.as_str(), c.token_type, c.iat, c.exp),
            ("u", TokenType::Refresh, 1, 2)
        );
        assert_eq!(c.aud, ["api"]);
        assert_eq!(c.nbf, None);
        assert_eq!(c.extra.get("xA"), Some(&serde_json::json!([1])));
        let back: Claims = serde_json::from_value(serde_json::to_value(&c).unwrap()).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn members_fails() {
        let base = r#""type":"access","iat":1,"exp":2"#;
        // Repeated members, known or not, and non-objects are refused outright.
        assert_eq!(
            members(&format!(r#"{{"sub":"u","sub":"v",{base}}}"#)),
            Err("unparsable")
        );
        assert_eq!(
            members(&format!(r#"{{"sub":"u","z":1,"z":1,{base}}}"#)),
            Err("unparsable")
        );
        assert_eq!(members("[1]"), Err("unparsable"));
        // A missing (or null) required claim is reported before a wrong type elsewhere.
        assert_eq!(members(&format!(r#"{{"roles":7,{base}}}"#)), Err("sub"));
        assert_eq!(
            members(r#"{"sub":"u","type":null,"iat":1,"exp":2}"#),
            Err("type")
        );
        for bad in [
            r#""roles":null"#,
            r#""roles":["a",1]"#,
            r#""aud":5"#,
            r#""nbf":-1"#,
            r#""gen":1.5"#,
            r#""iss":1"#,
        ] {
            assert_eq!(
                members(&format!(r#"{{"sub":"u",{bad},{base}}}"#)),
                Err("malformed"),
                "{bad}"
            );
        }
        assert_eq!(
            members(r#"{"sub":"u","type":"Access","iat":1,"exp":2}"#),
            Err("malformed")
        );
        assert_eq!(
            members(r#"{"sub":"u","type":"access","iat":1.0,"exp":2}"#),
            Err("malformed")
        );
        assert_eq!(
            members(r#"{"sub":1,"type":"access","iat":1,"exp":2}"#),
            Err("malformed")
        );
    }
    #[test]
    fn access_shape_matches_seed_ok() {
        let c = Claims::access("user-42", vec![], 1_700_000_000, 900);
        assert_eq!(
            serde_json::to_string(&c).unwrap(),
            r#"{"sub":"user-42","type":"access","roles":[],"iat":1700000000,"exp":1700000900}"#
        );
    }

    #[test]
    fn refresh_skips_empty_optionals_ok() {
        let c = Claims::new(TokenType::Refresh, "u", 10, 5).with_family("f1", 3);
        assert_eq!(
            serde_json::to_string(&c).unwrap(),
            r#"{"sub":"u","type":"refresh","iat":10,"exp":15,"fam":"f1","gen":3}"#
        );
    }

    #[test]
    fn round_trip_with_everything_ok() {
        let mut c = Claims::access("u", vec!["admin".into()], 100, 60)
            .with_issuer("https://auth.example.com")
            .with_audience("api")
            .with_not_before(100)
            .with_jti("j")
            .with_sid("s")
            .with_amr(vec!["pwd".into(), "otp".into()])
            .with_permissions(vec!["patients:read".into()]);
        c.extra.insert("tenant".into(), Value::from("acme"));
        let json = serde_json::to_string(&c).unwrap();
        assert!(json.contains(r#""aud":"api""#));
        let back: Claims = serde_json::from_str(&json).unwrap();
        assert_eq!(back, c);
        assert!(back.has_role("admin") && !back.has_role("Admin"));
        assert!(back.has_any_role(&["x", "admin"]));
        assert!(back.has_permission("patients:read"));
        assert_eq!(back.expires_in(130), 30);
        assert_eq!(back.expires_in(1_000), 0);
    }

    #[test]
    fn aud_array_and_string_ok() {
        let a: Claims =
            serde_json::from_str(r#"{"sub":"u","type":"mfa","iat":1,"exp":2,"aud":["a","b"]}"#)
                .unwrap();
        assert_eq!(a.aud, vec!["a", "b"]);
        assert!(serde_json::to_string(&a)
            .unwrap()
            .contains(r#""aud":["a","b"]"#));
        let b: Claims =
            serde_json::from_str(r#"{"sub":"u","type":"reset","iat":1,"exp":2,"aud":"a"}"#)
                .unwrap();
        assert_eq!(b.aud, vec!["a"]);
        assert_eq!(b.token_type, TokenType::Reset);
    }

    #[test]
    fn extra_cannot_shadow_known_claims_ok() {
        let mut c = Claims::access("u", vec![], 1, 1);
        c.extra.insert("sub".into(), Value::from("admin"));
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(json.matches("\"sub\"").count(), 1);
        assert!(!json.contains("admin"));
    }

    #[test]
    fn bounds_fails() {
        let big = "x".repeat(MAX_SUB_LEN + 1);
        let c = Claims::access(big, vec![], 1, 1);
        assert_eq!(
            c.check_bounds().unwrap_err().code(),
            "token_claim_too_large"
        );
        let c = Claims::access("u", vec!["r".into(); MAX_ROLES + 1], 1, 1);
        assert_eq!(
            c.check_bounds().unwrap_err(),
            TokenError::ClaimTooLarge { claim: "roles" }
        );
        let c = Claims::access("u", vec!["r".repeat(MAX_ROLE_LEN + 1)], 1, 1);
        assert!(c.check_bounds().is_err());
        let c = Claims::access("", vec![], 1, 1);
        assert_eq!(c.check_bounds().unwrap_err().code(), "token_missing_claim");
        assert!(Claims::access("u", vec!["r".into(); MAX_ROLES], 1, 1)
            .check_bounds()
            .is_ok());
    }

    #[test]
    fn token_type_round_trip_ok() {
        for t in [
            TokenType::Access,
            TokenType::Refresh,
            TokenType::Mfa,
            TokenType::Reset,
        ] {
            assert_eq!(t.to_string().parse::<TokenType>().unwrap(), t);
            assert_eq!(serde_json::to_string(&t).unwrap(), format!("\"{t}\""));
        }
        assert!("Access".parse::<TokenType>().is_err());
    }

    proptest! {
        #[test]
        fn claims_parse_never_panics(s in ".*") {
            if let Ok(c) = serde_json::from_str::<Claims>(&s) {
                let _ = c.check_bounds();
                prop_assert!(serde_json::to_string(&c).is_ok());
            }
        }

        #[test]
        fn token_type_parse_never_panics(s in ".*") {
            let _ = s.parse::<TokenType>();
        }
    }
}
