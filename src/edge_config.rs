//! The edge's configuration: the object of the npm module's `new Keygate(config)`, as the
//! filter's is [`crate::gateway::GatewayConfig`]. One documented struct, camelCase on the wire,
//! unknown members refused; [`EdgeConfig::build`] checks every combination and bound and
//! returns the login flow and the session cookies. Every refusal is a [`ConfigError`] naming
//! the field as the caller wrote it (`password.timeCost`, `session.cookieName`, `bogus`).
//!
//! ```json
//! {"signingKey": {"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "kid": "k1", "d": "…"},
//!  "issuer": "https://auth.example.com", "audience": "api",
//!  "accessTokenTtl": "15m", "refreshTokenTtl": "14d",
//!  "password": {"timeCost": 3, "memoryCost": 65536, "parallelism": 4},
//!  "totp": {"digits": 6}, "session": {"secret": "…32+ bytes…", "idleTimeout": "30m"}}
//! ```

use crate::duration::Seconds;
use crate::flow::{
    Authenticator, FlowLimits, DEFAULT_ACCESS_TTL, DEFAULT_MFA_MAX_ATTEMPTS, DEFAULT_MFA_TTL,
    DEFAULT_REFRESH_GRACE, DEFAULT_REFRESH_TTL, DEFAULT_RESET_TTL,
};
use crate::json::object_only;
use crate::password::{PasswordConfig, PasswordHasher};
use crate::token::{Algorithm, Jwk, KeyRing, SigningKey};
use crate::totp::{TotpAlgorithm, TotpConfig};
use crate::{ConfigError, SameSite, SessionConfig, Sessions};
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use std::fmt;

/// Longest configuration text accepted, in bytes.
pub const MAX_CONFIG_LEN: usize = 64 * 1024;

/// `new Keygate(config)`. Field names are the public contract (js/README, index.d.ts, tests).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct EdgeConfig {
    /// HMAC signing secret, at least 32 bytes (a string: its UTF-8 bytes; or byte values, a
    /// `Uint8Array`). Also the session secret unless `session.secret` is given. Defaults to
    /// none; exactly one of `secret` and `signingKey` is required.
    #[serde(default)]
    pub secret: Option<Bytes>,
    /// The HMAC algorithm with `secret` (`HS256`, `HS384`, `HS512`), or the algorithm of a PEM
    /// `signingKey` (`EdDSA`, `ES256`). Defaults to `HS256` with `secret`; required with a PEM;
    /// refused with a JWK (it names its own `alg`).
    #[serde(default)]
    pub algorithm: Option<String>,
    /// The `kid` of the signing key (replaces a JWK's own). Defaults to none (a JWK's `kid`).
    #[serde(default)]
    pub key_id: Option<String>,
    /// A private signing key: a JWK (`oct`, `OKP` Ed25519, `EC` P-256) as an object or JSON
    /// text, or a PKCS#8 PEM (with `algorithm`). Defaults to none.
    #[serde(default)]
    pub signing_key: Option<KeyInput>,
    /// Signing-key rotation: `[current, ...previous]`, JWKs (objects or JSON text) each with
    /// its own `kid`; the first (private) signs, every key verifies, and the public halves of
    /// the asymmetric ones are published (see [`KeyRing`]). Later keys may be public-only.
    /// Defaults to none; not with `secret`, `signingKey`, `algorithm` or `keyId`.
    #[serde(default)]
    pub signing_keys: Option<Vec<RingEntry>>,
    /// The `iss` put in and required of every token. Defaults to none.
    #[serde(default)]
    pub issuer: Option<String>,
    /// The `aud` put in and required of every token. Defaults to none.
    #[serde(default)]
    pub audience: Option<String>,
    /// Access-token lifetime (seconds or `"15m"`). Defaults to [`DEFAULT_ACCESS_TTL`] (15 min).
    #[serde(default)]
    pub access_token_ttl: Option<Seconds>,
    /// Refresh-token lifetime. Defaults to [`DEFAULT_REFRESH_TTL`] (14 days).
    #[serde(default)]
    pub refresh_token_ttl: Option<Seconds>,
    /// MFA-pending token lifetime. Defaults to [`DEFAULT_MFA_TTL`] (5 min).
    #[serde(default)]
    pub mfa_token_ttl: Option<Seconds>,
    /// Password-reset token lifetime. Defaults to [`DEFAULT_RESET_TTL`] (30 min).
    #[serde(default)]
    pub reset_token_ttl: Option<Seconds>,
    /// Wrong codes per MFA-pending token. Defaults to [`DEFAULT_MFA_MAX_ATTEMPTS`] (5).
    #[serde(default)]
    pub mfa_max_attempts: Option<u32>,
    /// Reuse of a just-rotated refresh token tolerated for this long. Defaults to
    /// [`DEFAULT_REFRESH_GRACE`] (10 s).
    #[serde(default)]
    pub refresh_grace: Option<Seconds>,
    /// Absolute lifetime of a sign-in's refresh family. Defaults to
    /// [`crate::flow::DEFAULT_REFRESH_FAMILY_TTL`] (30 days, at least `refreshTokenTtl`).
    #[serde(default)]
    pub refresh_family_ttl: Option<Seconds>,
    /// Wrong MFA codes in a row that lock MFA. Defaults to
    /// [`crate::flow::DEFAULT_MFA_MAX_FAILURES`] (100).
    #[serde(default)]
    pub mfa_max_failures: Option<u32>,
    /// Argon2id parameters and the password policy. Defaults to the seed's
    /// ([`PasswordConfig::default`]).
    #[serde(default)]
    pub password: Option<PasswordOptions>,
    /// TOTP settings. Defaults to [`TotpConfig::DEFAULT`] (SHA1, 6 digits, 30 s, window 1).
    #[serde(default)]
    pub totp: Option<TotpOptions>,
    /// Clock skew tolerated when verifying. Defaults to
    /// [`crate::token::DEFAULT_LEEWAY_SECS`] (30 s).
    #[serde(default)]
    pub leeway: Option<Seconds>,
    /// Session cookies. Defaults to [`SessionConfig::new`]'s with `secret` as their secret
    /// (none without `secret`).
    #[serde(default)]
    pub session: Option<SessionOptions>,
}

object_only!(EdgeConfig, "a config object");

/// `password`: Argon2id parameters and the minimum length (the module's `hashPassword`
/// options too). Every field defaults to [`PasswordConfig::default`]'s.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct PasswordOptions {
    /// Argon2id passes.
    #[serde(default)]
    pub time_cost: Option<u32>,
    /// Argon2id memory in KiB.
    #[serde(default)]
    pub memory_cost: Option<u32>,
    /// Argon2id lanes.
    #[serde(default)]
    pub parallelism: Option<u32>,
    /// Minimum length of a new password, in characters.
    #[serde(default)]
    pub min_length: Option<u32>,
}

object_only!(
    PasswordOptions,
    "an object {timeCost, memoryCost, parallelism, minLength}"
);

/// `totp`: TOTP settings (the module's TOTP options too). Every field defaults to
/// [`TotpConfig::DEFAULT`]'s.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct TotpOptions {
    /// `"SHA1"`, `"SHA256"` or `"SHA512"` (any case).
    #[serde(default)]
    pub algorithm: Option<String>,
    /// Code length, 6 to 8.
    #[serde(default)]
    pub digits: Option<u32>,
    /// Seconds per step, 15 to 120.
    #[serde(default)]
    pub period: Option<Seconds>,
    /// Steps accepted either side of now, 0 to 5.
    #[serde(default)]
    pub window: Option<u32>,
}

object_only!(TotpOptions, "an object {algorithm, digits, period, window}");

/// `session`: signed session cookies. Every field defaults to [`SessionConfig::new`]'s.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct SessionOptions {
    /// Cookie-signing secret, at least 32 bytes. Defaults to the top-level `secret`; required
    /// when the tokens are signed with `signingKey`.
    #[serde(default)]
    pub secret: Option<Bytes>,
    /// Defaults to `__Host-session`; must start with `__Host-`.
    #[serde(default)]
    pub cookie_name: Option<String>,
    /// Defaults to 1 hour.
    #[serde(default)]
    pub absolute_timeout: Option<Seconds>,
    /// Defaults to 30 minutes, or `absoluteTimeout` when that is shorter.
    #[serde(default)]
    pub idle_timeout: Option<Seconds>,
    /// `"strict"` (the default) or `"lax"`.
    #[serde(default)]
    pub same_site: Option<String>,
}

object_only!(SessionOptions, "a session object");

/// Secret bytes: a string (its UTF-8 bytes) or a list of byte values. `Debug` shows the length.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Bytes(pub Vec<u8>);

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Bytes(<{} bytes>)", self.0.len())
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Bytes;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a Uint8Array")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Bytes, E> {
                Ok(Bytes(v.as_bytes().to_vec()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Bytes, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(MAX_CONFIG_LEN));
                while let Some(b) = seq.next_element::<u8>()? {
                    out.push(b);
                }
                Ok(Bytes(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// `signingKey`: a JWK object, or text (a JWK's JSON, or a PEM). `Debug` never shows the
/// text (it holds a private key); a JWK's `Debug` never shows `k` or `d`.
#[derive(Clone, PartialEq, Eq)]
pub enum KeyInput {
    /// A JWK given as an object, with its `key_ops` when it has them (the `Jwk` type ignores
    /// them; a signing key whose `key_ops` leave out `"sign"` is refused).
    Jwk(Box<Jwk>, Option<serde_json::Value>),
    /// A JWK's JSON text or a PKCS#8 PEM.
    Text(String),
}

impl fmt::Debug for KeyInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Jwk(j, ops) => f.debug_tuple("Jwk").field(j).field(ops).finish(),
            Self::Text(t) => write!(f, "Text(<{} bytes>)", t.len()),
        }
    }
}

impl<'de> Deserialize<'de> for KeyInput {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(KeyVisitor(KEY_ACCEPTED))
    }
}

/// One `signingKeys` entry: a JWK object or its JSON text (no PEM).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct RingEntry(pub KeyInput);

impl<'de> Deserialize<'de> for RingEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(KeyVisitor(ENTRY_ACCEPTED)).map(RingEntry)
    }
}

struct KeyVisitor(&'static str);

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = KeyInput;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<KeyInput, E> {
        Ok(KeyInput::Text(v.to_owned()))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<KeyInput, A::Error> {
        let v = serde_json::Map::deserialize(de::value::MapAccessDeserializer::new(map))?;
        let ops = v.get("key_ops").cloned();
        let jwk = Jwk::deserialize(serde_json::Value::Object(v)).map_err(de::Error::custom)?;
        Ok(KeyInput::Jwk(Box::new(jwk), ops))
    }
}

/// A JWK's JSON text (`signingKey` or a `signingKeys` entry given as a string), every member
/// name once as in the object form (a repeated `kid` or `k` is refused, not last-wins).
fn jwk_of_text(text: &str) -> Option<(Jwk, Option<serde_json::Value>)> {
    let crate::json::StrictValue(v) = serde_json::from_str(text).ok()?;
    let ops = v.get("key_ops").cloned();
    Some((serde_json::from_value::<Jwk>(v).ok()?, ops))
}

/// A signing key's `key_ops`, when given, must include `"sign"` (RFC 7517 §4.3).
fn check_sign_op(ops: Option<&serde_json::Value>, field: &str) -> Result<(), ConfigError> {
    let Some(ops) = ops else { return Ok(()) };
    let signs = ops
        .as_array()
        .is_some_and(|a| a.iter().any(|o| o.as_str() == Some("sign")));
    if signs {
        Ok(())
    } else {
        Err(ConfigError::new(
            format!("{field}.key_ops"),
            "must include \"sign\": this key signs the tokens",
        ))
    }
}

const ENTRY_ACCEPTED: &str = "a JWK with a `kid` (object or JSON text): the first a private key";
const KEY_ACCEPTED: &str = "a private JWK (object or JSON text: oct, OKP Ed25519 or EC P-256) \
                            or a PKCS#8 PEM with `algorithm` EdDSA or ES256";

/// What [`EdgeConfig::build`] makes.
pub struct Edge {
    /// The login flow with its key, lifetimes, hasher and TOTP settings.
    pub auth: Authenticator,
    /// Session cookies, when a session secret is available.
    pub sessions: Option<Sessions>,
}

impl EdgeConfig {
    /// Reads the configuration JSON: syntax, types, unknown members, repeated names.
    ///
    /// # Errors
    /// [`ConfigError`] naming the field (`accessTokenTtl`, `password.memory`); `""` for a
    /// document that is not an object or not JSON.
    pub fn from_json(text: &str) -> Result<Self, ConfigError> {
        if text.len() > MAX_CONFIG_LEN {
            return Err(ConfigError::new("", "the config is too large"));
        }
        crate::gateway::parse_document_at(text.as_bytes(), "")
    }

    /// Checks every bound and combination and builds the flow and the sessions.
    ///
    /// # Errors
    /// [`ConfigError`] naming the first refused field as the caller wrote it.
    pub fn build(&self) -> Result<Edge, ConfigError> {
        let secs = |v: Option<Seconds>, default: u64| v.map_or(default, Seconds::get);
        let ring = self.key_ring()?;
        let limits = FlowLimits::new(
            secs(self.access_token_ttl, DEFAULT_ACCESS_TTL),
            secs(self.refresh_token_ttl, DEFAULT_REFRESH_TTL),
            secs(self.mfa_token_ttl, DEFAULT_MFA_TTL),
            secs(self.reset_token_ttl, DEFAULT_RESET_TTL),
            self.mfa_max_attempts.unwrap_or(DEFAULT_MFA_MAX_ATTEMPTS),
            secs(self.refresh_grace, DEFAULT_REFRESH_GRACE),
        )?;
        let limits = match self.refresh_family_ttl {
            Some(s) => limits.with_refresh_family_ttl(s.get())?,
            None => limits,
        };
        let limits = match self.mfa_max_failures {
            Some(n) => limits.with_mfa_max_failures(n)?,
            None => limits,
        };
        let hasher = self
            .password
            .unwrap_or_default()
            .hasher()
            .map_err(|e| e.within("password"))?;
        let totp = match &self.totp {
            None => TotpConfig::default(),
            Some(t) => t.settings().map_err(|e| e.within("totp"))?,
        };
        let secret = self.secret.as_ref().map(|b| b.0.as_slice());
        let sessions = match &self.session {
            None => secret
                .map(|s| Sessions::new(SessionConfig::new(s)))
                .transpose()
                .map_err(|e| ConfigError::new("secret", e.message))?,
            Some(s) => Some(s.sessions(secret)?),
        };
        let auth = Authenticator::with_key_ring(ring, limits, hasher, totp)
            .with_issuer(self.issuer.clone())
            .with_audience(self.audience.clone());
        let auth = match self.leeway {
            Some(s) => auth.with_leeway(s.get())?,
            None => auth,
        };
        Ok(Edge { auth, sessions })
    }

    fn key_ring(&self) -> Result<KeyRing, ConfigError> {
        let algorithm = self.algorithm.as_deref();
        let kid = self.key_id.clone();
        match (&self.secret, &self.signing_key, &self.signing_keys) {
            (_, _, Some(list)) => {
                if self.secret.is_some() || self.signing_key.is_some() {
                    return Err(ConfigError::new(
                        "signingKeys",
                        "give one of `secret`, `signingKey` or `signingKeys`",
                    ));
                }
                for (name, given) in [("algorithm", algorithm.is_some()), ("keyId", kid.is_some())]
                {
                    if given {
                        return Err(ConfigError::new(
                            name,
                            "not with `signingKeys`: each JWK names its own `alg` and `kid`",
                        ));
                    }
                }
                key_ring_from(list)
            }
            (Some(_), Some(_), None) => Err(ConfigError::new(
                "signingKey",
                "give either `secret` or `signingKey`, not both",
            )),
            (None, None, None) => Err(ConfigError::new(
                "secret",
                "required: an HMAC secret of at least 32 bytes, a private `signingKey` JWK, or \
                 `signingKeys` (current first)",
            )),
            (Some(secret), None, None) => {
                let alg = match algorithm {
                    None => Algorithm::HS256,
                    Some(a) => match a.parse::<Algorithm>() {
                        Ok(a) if a.is_hmac() => a,
                        _ => {
                            return Err(ConfigError::new(
                                "algorithm",
                                "with `secret` must be HS256, HS384 or HS512",
                            ))
                        }
                    },
                };
                SigningKey::from_secret(&secret.0, alg, kid)
                    .map(KeyRing::from)
                    .map_err(|e| {
                        // The secret's own errors name `secret`; a bad `kid` names `keyId`.
                        let field = if e.field == "kid" { "keyId" } else { "secret" };
                        ConfigError::new(field, e.message)
                    })
            }
            (None, Some(input), None) => signing_key_from(input, algorithm, kid).map(KeyRing::from),
        }
    }
}

/// `signingKeys`: each entry a JWK (object or JSON text); the core's [`KeyRing`] checks them.
fn key_ring_from(list: &[RingEntry]) -> Result<KeyRing, ConfigError> {
    let jwks = list
        .iter()
        .enumerate()
        .map(|(i, RingEntry(item))| {
            let (jwk, ops) = match item {
                KeyInput::Jwk(j, ops) => ((**j).clone(), ops.clone()),
                KeyInput::Text(s) => jwk_of_text(s)
                    .ok_or_else(|| ConfigError::new(format!("signingKeys[{i}]"), ENTRY_ACCEPTED))?,
            };
            if i == 0 {
                check_sign_op(ops.as_ref(), "signingKeys[0]")?;
            }
            Ok(jwk)
        })
        .collect::<Result<Vec<_>, ConfigError>>()?;
    KeyRing::from_jwks(&jwks).map_err(|e| e.within("signingKeys"))
}

fn signing_key_from(
    input: &KeyInput,
    algorithm: Option<&str>,
    kid: Option<String>,
) -> Result<SigningKey, ConfigError> {
    let bad = || ConfigError::new("signingKey", KEY_ACCEPTED);
    let mut jwk = match input {
        KeyInput::Text(s) if s.trim_start().starts_with("-----BEGIN") => {
            let alg = algorithm
                .and_then(|a| a.parse::<Algorithm>().ok())
                .ok_or_else(|| {
                    ConfigError::new("algorithm", "required with a PEM key: EdDSA or ES256")
                })?;
            return SigningKey::from_pem(s, alg, kid).map_err(|e| e.within("signingKey"));
        }
        KeyInput::Text(s) => {
            let (jwk, ops) = jwk_of_text(s).ok_or_else(bad)?;
            check_sign_op(ops.as_ref(), "signingKey")?;
            jwk
        }
        KeyInput::Jwk(j, ops) => {
            check_sign_op(ops.as_ref(), "signingKey")?;
            (**j).clone()
        }
    };
    if algorithm.is_some() {
        return Err(ConfigError::new(
            "algorithm",
            "only with `secret` or a PEM key; a JWK names its own `alg`",
        ));
    }
    if kid.is_some() {
        jwk.kid = kid;
    }
    SigningKey::from_jwk(&jwk).map_err(|e| e.within("signingKey"))
}

impl PasswordOptions {
    /// Reads `{timeCost, memoryCost, parallelism, minLength}` (JSON text).
    ///
    /// # Errors
    /// [`ConfigError`] naming the member (`timeCost`, `bogus`), `""` for a non-object.
    pub fn from_json(text: &str) -> Result<Self, ConfigError> {
        crate::gateway::parse_document_at(text.as_bytes(), "")
    }

    /// The checked hasher.
    ///
    /// # Errors
    /// [`ConfigError`] naming the member out of bounds (`timeCost`, `memoryCost`).
    pub fn hasher(&self) -> Result<PasswordHasher, ConfigError> {
        let d = PasswordConfig::default();
        let cfg = PasswordConfig {
            time_cost: self.time_cost.unwrap_or(d.time_cost),
            memory_cost: self.memory_cost.unwrap_or(d.memory_cost),
            parallelism: self.parallelism.unwrap_or(d.parallelism),
            min_length: self
                .min_length
                .map_or(d.min_length, |n| usize::try_from(n).unwrap_or(usize::MAX)),
        };
        PasswordHasher::from_config(&cfg).map_err(camel)
    }
}

impl TotpOptions {
    /// Reads `{algorithm, digits, period, window}` (JSON text).
    ///
    /// # Errors
    /// [`ConfigError`] naming the member, `""` for a non-object.
    pub fn from_json(text: &str) -> Result<Self, ConfigError> {
        crate::gateway::parse_document_at(text.as_bytes(), "")
    }

    /// The checked settings.
    ///
    /// # Errors
    /// [`ConfigError`] naming the member out of bounds.
    pub fn settings(&self) -> Result<TotpConfig, ConfigError> {
        let d = TotpConfig::DEFAULT;
        let algorithm = match self.algorithm.as_deref() {
            None => d.algorithm(),
            Some(a) => match a.to_ascii_lowercase().as_str() {
                "sha1" => TotpAlgorithm::Sha1,
                "sha256" => TotpAlgorithm::Sha256,
                "sha512" => TotpAlgorithm::Sha512,
                _ => {
                    return Err(ConfigError::new(
                        "algorithm",
                        "must be \"SHA1\", \"SHA256\" or \"SHA512\"",
                    ))
                }
            },
        };
        let small =
            |v: Option<u32>, default: u8| v.map_or(default, |n| u8::try_from(n).unwrap_or(u8::MAX));
        TotpConfig::new(
            algorithm,
            small(self.digits, d.digits()),
            self.period.map_or(d.period(), Seconds::get),
            small(self.window, d.window()),
        )
    }
}

impl SessionOptions {
    fn sessions(&self, fallback_secret: Option<&[u8]>) -> Result<Sessions, ConfigError> {
        let secret = match (&self.secret, fallback_secret) {
            (Some(s), _) => s.0.as_slice(),
            (None, Some(s)) => s,
            (None, None) => {
                return Err(ConfigError::new(
                    "session.secret",
                    "required when the tokens are signed with `signingKey`: at least 32 bytes",
                ))
            }
        };
        let mut cfg = SessionConfig::new(secret);
        if let Some(name) = &self.cookie_name {
            name.clone_into(&mut cfg.cookie_name);
        }
        if let Some(t) = self.absolute_timeout {
            cfg.absolute_timeout = t.get();
        }
        match self.idle_timeout {
            Some(t) => cfg.idle_timeout = t.get(),
            None => cfg.idle_timeout = cfg.idle_timeout.min(cfg.absolute_timeout),
        }
        if let Some(s) = &self.same_site {
            cfg.same_site = match s.to_ascii_lowercase().as_str() {
                "strict" => SameSite::Strict,
                "lax" => SameSite::Lax,
                "none" => SameSite::None,
                _ => {
                    return Err(ConfigError::new(
                        "session.sameSite",
                        "must be \"strict\" or \"lax\"",
                    ))
                }
            };
        }
        Sessions::new(cfg).map_err(|e| camel(e).within("session"))
    }
}

/// A builder's snake_case field (`memory_cost`) as the caller wrote it here (`memoryCost`).
fn camel(mut e: ConfigError) -> ConfigError {
    let mut out = String::with_capacity(e.field.len());
    let mut upper = false;
    for c in e.field.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    e.field = out;
    e
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn build(json: &str) -> Result<Edge, ConfigError> {
        EdgeConfig::from_json(json)?.build()
    }

    fn field_of(json: &str) -> String {
        match build(json) {
            Ok(_) => panic!("accepted {json}"),
            Err(e) => e.field,
        }
    }

    #[test]
    fn minimal_secret_ok() {
        let b = build(&format!(r#"{{"secret":"{SECRET}"}}"#)).unwrap();
        assert_eq!(b.auth.limits().access_ttl(), DEFAULT_ACCESS_TTL);
        assert!(b.sessions.is_some());
        assert_eq!(b.auth.signing_key().alg(), Algorithm::HS256);
        // A Uint8Array arrives as byte values; null counts as absent.
        let bytes: Vec<String> = SECRET.bytes().map(|b| b.to_string()).collect();
        let b = build(&format!(
            r#"{{"secret":[{}],"issuer":null,"password":null}}"#,
            bytes.join(",")
        ))
        .unwrap();
        assert!(b.sessions.is_some());
    }

    #[test]
    fn durations_and_sections_ok() {
        let b = build(&format!(
            r#"{{"secret":"{SECRET}","accessTokenTtl":"10m","refreshTokenTtl":"7d",
                "password":{{"timeCost":1,"memoryCost":64,"parallelism":1}},
                "totp":{{"digits":8,"algorithm":"SHA256"}},
                "session":{{"absoluteTimeout":"2h","idleTimeout":600,"sameSite":"lax"}}}}"#
        ))
        .unwrap();
        assert_eq!(b.auth.limits().access_ttl(), 600);
        assert_eq!(b.auth.limits().refresh_ttl(), 7 * 86_400);
        assert_eq!(b.auth.hasher().params().memory_cost(), 64);
        assert_eq!(b.auth.totp().digits(), 8);
        let s = b.sessions.unwrap();
        assert_eq!((s.absolute_timeout(), s.idle_timeout()), (7200, 600));
        assert_eq!(s.same_site(), SameSite::Lax);
    }

    #[test]
    fn short_absolute_timeout_clamps_default_idle_ok() {
        let b = build(&format!(
            r#"{{"secret":"{SECRET}","session":{{"absoluteTimeout":300}}}}"#
        ))
        .unwrap();
        assert_eq!(b.sessions.unwrap().idle_timeout(), 300);
    }

    #[test]
    fn bad_fields_fails() {
        let with = |rest: &str| field_of(&format!(r#"{{"secret":"{SECRET}",{rest}}}"#));
        assert_eq!(field_of("{}"), "secret");
        assert_eq!(field_of("[]"), "");
        assert_eq!(field_of("nope"), "");
        assert_eq!(field_of("5"), "");
        assert_eq!(field_of(r#"{"secret":"short"}"#), "secret");
        assert_eq!(field_of(r#"{"secret":5}"#), "secret");
        assert_eq!(with(r#""bogus":1"#), "bogus");
        // An unknown member is named as written (not camel-cased into a known one).
        assert_eq!(with(r#""access_token_ttl":600"#), "access_token_ttl");
        assert_eq!(with(r#""accessTokenTtl":"soon""#), "accessTokenTtl");
        assert_eq!(with(r#""accessTokenTtl":-1"#), "accessTokenTtl");
        assert_eq!(with(r#""accessTokenTtl":5"#), "accessTokenTtl");
        assert_eq!(
            with(r#""refreshTokenTtl":60,"accessTokenTtl":900"#),
            "refreshTokenTtl"
        );
        assert_eq!(with(r#""mfaMaxAttempts":1.5"#), "mfaMaxAttempts");
        assert_eq!(with(r#""mfaMaxFailures":1000"#), "mfaMaxFailures");
        assert_eq!(with(r#""refreshFamilyTtl":"1h""#), "refreshFamilyTtl");
        assert_eq!(with(r#""leeway":301"#), "leeway");
        assert_eq!(with(r#""issuer":5"#), "issuer");
        assert_eq!(with(r#""password":{"timeCost":0}"#), "password.timeCost");
        assert_eq!(
            with(r#""password":{"memoryCost":1.5}"#),
            "password.memoryCost"
        );
        assert_eq!(with(r#""password":{"memory":1}"#), "password.memory");
        assert_eq!(with(r#""password":5"#), "password");
        assert_eq!(with(r#""totp":{"digits":4}"#), "totp.digits");
        assert_eq!(with(r#""totp":{"algorithm":"MD5"}"#), "totp.algorithm");
        assert_eq!(
            with(r#""session":{"cookieName":"sid"}"#),
            "session.cookieName"
        );
        assert_eq!(
            with(r#""session":{"idleTimeout":7200}"#),
            "session.idleTimeout"
        );
        assert_eq!(with(r#""session":{"sameSite":"none"}"#), "session.sameSite");
        assert_eq!(
            with(r#""session":{"sameSite":"sometimes"}"#),
            "session.sameSite"
        );
        assert_eq!(
            with(r#""session":{"cookie_name":"x"}"#),
            "session.cookie_name"
        );
        assert_eq!(with(r#""algorithm":"EdDSA""#), "algorithm");
        assert_eq!(with(r#""signingKey":{}"#), "signingKey");
        assert_eq!(
            field_of(r#"{"signingKey":{"kty":"OKP","crv":"Ed25519","alg":"EdDSA","d":"AA"}}"#),
            "signingKey.d"
        );
        assert_eq!(field_of(r#"{"signingKey":42}"#), "signingKey");
        assert_eq!(field_of(r#"{"signingKey":"not json"}"#), "signingKey");
        assert_eq!(
            field_of(
                r#"{"signingKey":{"kty":"OKP","crv":"Ed25519","alg":"EdDSA","x":"A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg"}}"#
            ),
            "signingKey.d"
        );
        assert_eq!(
            field_of(r#"{"signingKey":{"kty":"oct","alg":"HS256","k":"AAAA"}}"#),
            "signingKey.k"
        );
        assert_eq!(
            field_of(&format!(
                "{{\"secret\":\"{SECRET}\",\"x\":\"{}\"}}",
                "a".repeat(MAX_CONFIG_LEN)
            )),
            ""
        );
    }

    #[test]
    fn errors_and_debug_never_echo_a_secret_ok() {
        for json in [
            r#"{"secret":"hunter2-hunter2"}"#,
            r#"{"signingKey":"hunter2-hunter2"}"#,
            r#"{"signingKey":{"kty":"oct","alg":"HS256","k":"hunter2"}}"#,
            r#"{"secret":"0123456789abcdef0123456789abcdef","session":{"secret":"hunter2"}}"#,
            r#"{"secret":{"hunter2":1}}"#,
        ] {
            let e = build(json).err().unwrap();
            assert!(!e.to_string().contains("hunter2"), "{e}");
        }
        let c = EdgeConfig::from_json(&format!(
            r#"{{"secret":"{SECRET}","signingKey":"-----BEGIN PRIVATE KEY-----hunter2","session":{{"secret":"hunter2"}}}}"#
        ))
        .unwrap();
        let debug = format!("{c:?}");
        assert!(
            !debug.contains("hunter2") && !debug.contains(SECRET),
            "{debug}"
        );
    }

    #[test]
    fn eddsa_jwk_needs_session_secret_ok() {
        let jwk = r#"{"kty":"OKP","crv":"Ed25519","alg":"EdDSA","kid":"ed","d":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"}"#;
        let b = build(&format!(r#"{{"signingKey":{jwk}}}"#)).unwrap();
        assert!(b.sessions.is_none());
        assert_eq!(b.auth.signing_key().alg(), Algorithm::EdDSA);
        let as_text = serde_json::to_string(jwk).unwrap();
        assert!(build(&format!(r#"{{"signingKey":{as_text}}}"#)).is_ok());
        assert_eq!(
            field_of(&format!(r#"{{"signingKey":{jwk},"session":{{}}}}"#)),
            "session.secret"
        );
        let b = build(&format!(
            r#"{{"signingKey":{jwk},"keyId":"other","session":{{"secret":"{SECRET}"}}}}"#
        ))
        .unwrap();
        assert!(b.sessions.is_some());
    }

    #[test]
    fn module_options_ok() {
        let p = PasswordOptions::from_json(r#"{"timeCost":1,"memoryCost":64,"parallelism":1}"#)
            .unwrap()
            .hasher()
            .unwrap();
        assert_eq!(p.params().memory_cost(), 64);
        let e = PasswordOptions::from_json(r#"{"bogus":1}"#).unwrap_err();
        assert_eq!(e.within("options").field, "options.bogus");
        let e = PasswordOptions::from_json(r#"{"timeCost":0}"#)
            .unwrap()
            .hasher()
            .unwrap_err();
        assert_eq!(e.field, "timeCost");
        let t = TotpOptions::from_json(r#"{"window":9}"#)
            .unwrap()
            .settings();
        assert_eq!(t.unwrap_err().field, "window");
        assert_eq!(TotpOptions::from_json("[]").unwrap_err().field, "");
    }

    const ED_A: &str = r#"{"kty":"OKP","crv":"Ed25519","alg":"EdDSA","kid":"a","d":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"}"#;
    const ED_B: &str = r#"{"kty":"OKP","crv":"Ed25519","alg":"EdDSA","kid":"b","d":"HxwdHh8AAQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRo"}"#;
    const HS_C: &str = r#"{"kty":"oct","alg":"HS256","kid":"c","k":"a2V5Z2F0ZS10ZXN0LXNlY3JldC0wMTIzNDU2Nzg5YWI"}"#;

    #[test]
    fn signing_keys_ok() {
        let b = build(&format!(r#"{{"signingKeys":[{ED_B},{ED_A},{HS_C}]}}"#)).unwrap();
        assert_eq!(b.auth.signing_key().kid(), Some("b"));
        assert_eq!(b.auth.key_set().keys().len(), 3);
        assert_eq!(
            b.auth.key_set().public_jwks().keys.len(),
            2,
            "oct never published"
        );
        assert!(b.sessions.is_none());
        // JSON text entries, and a previous key given only by its public half.
        let public_a = b.auth.key_set().public_jwks().keys[1].to_string();
        let text = serde_json::to_string(ED_B).unwrap();
        let b = build(&format!(r#"{{"signingKeys":[{text},{public_a}]}}"#)).unwrap();
        assert_eq!(
            b.auth.key_set().get("a").map(|k| k.alg()),
            Some(Algorithm::EdDSA)
        );
        // HMAC-only rotation.
        let hs_d = HS_C.replace(r#""c""#, r#""d""#);
        assert!(build(&format!(r#"{{"signingKeys":[{hs_d},{HS_C}]}}"#)).is_ok());
    }

    #[test]
    fn key_text_with_a_repeated_member_fails() {
        // As JSON text, a key's member names are checked once each as in the object form.
        let repeated = ED_B.replace(r#""kid":"b""#, r#""kid":"b","kid":"e""#);
        for key in [ED_B.to_owned(), repeated.clone()] {
            let text = serde_json::to_string(&key).unwrap();
            let entries = build(&format!(r#"{{"signingKeys":[{text},{ED_A}]}}"#));
            let single = build(&format!(r#"{{"signingKey":{text}}}"#));
            if key == repeated {
                assert_eq!(entries.err().unwrap().field, "signingKeys[0]");
                assert_eq!(single.err().unwrap().field, "signingKey");
            } else {
                assert!(entries.is_ok() && single.is_ok());
            }
        }
        // The object form was already refused.
        assert!(build(&format!(r#"{{"signingKeys":[{repeated},{ED_A}]}}"#)).is_err());
    }

    #[test]
    fn bad_signing_keys_fails() {
        let dup = ED_B.replace(r#""b""#, r#""a""#);
        let no_kid = ED_B.replace(r#""kid":"b","#, "");
        for (json, field) in [
            (r#"{"signingKeys":[]}"#.to_owned(), "signingKeys"),
            (r#"{"signingKeys":{}}"#.to_owned(), "signingKeys"),
            (
                format!(r#"{{"signingKeys":[{ED_A},{dup}]}}"#),
                "signingKeys[1].kid",
            ),
            (
                format!(r#"{{"signingKeys":[{ED_A},{no_kid}]}}"#),
                "signingKeys[1].kid",
            ),
            (
                format!(r#"{{"signingKeys":[{ED_A},42]}}"#),
                "signingKeys[1]",
            ),
            (
                format!(r#"{{"signingKeys":[{ED_A},"nope"]}}"#),
                "signingKeys[1]",
            ),
            (
                format!(r#"{{"signingKeys":[{ED_A},{}]}}"#, HS_C.replace("a2V5", "")),
                "signingKeys[1].k",
            ),
            (
                format!(
                    r#"{{"signingKeys":[{}]}}"#,
                    ED_A.replace(r#","d":"#, r#","x":"#)
                ),
                "signingKeys[0].d",
            ),
            (
                format!(r#"{{"signingKeys":[{ED_A}],"secret":"{SECRET}"}}"#),
                "signingKeys",
            ),
            (
                format!(r#"{{"signingKeys":[{ED_A}],"signingKey":{ED_A}}}"#),
                "signingKeys",
            ),
            (
                format!(r#"{{"signingKeys":[{ED_A}],"keyId":"x"}}"#),
                "keyId",
            ),
            (
                format!(r#"{{"signingKeys":[{ED_A}],"algorithm":"EdDSA"}}"#),
                "algorithm",
            ),
        ] {
            assert_eq!(field_of(&json), field, "{json}");
        }
    }

    #[test]
    fn review_messages_and_key_ops_fails() {
        let e = build(&format!(
            r#"{{"secret":"{SECRET}","accessTokenTtl":900.5}}"#
        ))
        .err()
        .unwrap();
        assert_eq!(e.field, "accessTokenTtl");
        assert!(!e.message.contains("expected expected"), "{e}");
        let e = build(&format!(
            r#"{{"secret":"{SECRET}","session":{{"absoluteTimeout":600,"idleTimeout":900}}}}"#
        ))
        .err()
        .unwrap();
        assert_eq!(e.field, "session.idleTimeout");
        assert!(!e.message.contains("absolute_timeout"), "{e}");
        // A signingKeys entry of the wrong type is not offered PEM.
        let e = build(&format!(r#"{{"signingKeys":[{ED_A},42]}}"#))
            .err()
            .unwrap();
        assert_eq!(e.field, "signingKeys[1]");
        assert!(!e.message.contains("PEM"), "{e}");
        // The signer's key_ops must include "sign" (a verify-only key cannot become the signer).
        let verify_only = ED_A.replace(r#""kid":"a""#, r#""kid":"a","key_ops":["verify"]"#);
        let signs = ED_B.replace(r#""kid":"b""#, r#""kid":"b","key_ops":["sign"]"#);
        assert_eq!(
            field_of(&format!(r#"{{"signingKeys":[{verify_only},{ED_B}]}}"#)),
            "signingKeys[0].key_ops"
        );
        assert!(build(&format!(r#"{{"signingKeys":[{signs},{verify_only}]}}"#)).is_ok());
        let text = serde_json::to_string(&verify_only).unwrap();
        assert_eq!(
            field_of(&format!(r#"{{"signingKeys":[{text}]}}"#)),
            "signingKeys[0].key_ops"
        );
        let with_session =
            |key: &str| format!(r#"{{"signingKey":{key},"session":{{"secret":"{SECRET}"}}}}"#);
        assert_eq!(field_of(&with_session(&verify_only)), "signingKey.key_ops");
        assert_eq!(field_of(&with_session(&text)), "signingKey.key_ops");
        assert_eq!(
            field_of(&with_session(
                &ED_A.replace(r#""kid":"a""#, r#""kid":"a","key_ops":"sign""#)
            )),
            "signingKey.key_ops"
        );
        assert!(build(&with_session(&signs)).is_ok());
    }
}
