//! The `new Keygate(config)` object (JSON from the JS side) → core values. Every refusal is a
//! `config_invalid` naming the field as the caller wrote it (`password.timeCost`).

use crate::error::KgError;
use keygate::duration::parse_duration;
use keygate::flow::{
    Authenticator, FlowLimits, DEFAULT_ACCESS_TTL, DEFAULT_MFA_MAX_ATTEMPTS, DEFAULT_MFA_TTL,
    DEFAULT_REFRESH_GRACE, DEFAULT_REFRESH_TTL, DEFAULT_RESET_TTL,
};
use keygate::password::{PasswordConfig, PasswordHasher};
use keygate::token::{Algorithm, Jwk, KeyRing, SigningKey};
use keygate::totp::{TotpAlgorithm, TotpConfig};
use keygate::{ConfigError, SameSite, SessionConfig, Sessions};
use serde_json::{Map, Value};

/// Longest config JSON accepted.
pub const MAX_CONFIG_LEN: usize = 64 * 1024;

/// A JSON object being read field by field; unknown fields are refused at [`Obj::finish`].
pub struct Obj<'a> {
    map: &'a Map<String, Value>,
    path: &'a str,
    used: Vec<&'static str>,
}

impl<'a> Obj<'a> {
    /// `value` must be an object (`path` names it in errors; `""` for the top level).
    pub fn new(value: &'a Value, path: &'a str) -> Result<Self, ConfigError> {
        match value {
            Value::Object(map) => Ok(Self {
                map,
                path,
                used: Vec::new(),
            }),
            _ => Err(ConfigError::new(path, "must be an object")),
        }
    }

    fn field(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    fn fail(&self, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::new(self.field(key), message)
    }

    /// The value of `key`; `null` counts as absent.
    pub fn get(&mut self, key: &'static str) -> Option<&'a Value> {
        self.used.push(key);
        self.map.get(key).filter(|v| !v.is_null())
    }

    /// An optional string.
    pub fn str(&mut self, key: &'static str) -> Result<Option<&'a str>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(self.fail(key, "must be a string")),
        }
    }

    /// An optional non-negative integer that fits `u32`.
    pub fn u32(&mut self, key: &'static str) -> Result<Option<u32>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| self.fail(key, "must be a non-negative integer")),
        }
    }

    /// An optional duration: integer seconds or a string like `"15m"`.
    pub fn seconds(&mut self, key: &'static str) -> Result<Option<u64>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => parse_duration(s)
                .map(Some)
                .map_err(|e| self.fail(key, e.message)),
            Some(v) => match v.as_u64() {
                Some(n) => parse_duration(&n.to_string())
                    .map(Some)
                    .map_err(|e| self.fail(key, e.message)),
                None => Err(self.fail(
                    key,
                    "must be whole seconds or a duration string like \"15m\"",
                )),
            },
        }
    }

    /// Bytes: a string (its UTF-8 bytes) or an array of byte values (a `Uint8Array`).
    pub fn bytes(&mut self, key: &'static str) -> Result<Option<Vec<u8>>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_bytes().to_vec())),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_u64().and_then(|n| u8::try_from(n).ok()))
                .collect::<Option<Vec<u8>>>()
                .map(Some)
                .ok_or_else(|| self.fail(key, "must be a string or a Uint8Array")),
            Some(_) => Err(self.fail(key, "must be a string or a Uint8Array")),
        }
    }

    /// Refuses any field that was not read.
    pub fn finish(self) -> Result<(), ConfigError> {
        let mut unknown: Vec<&String> = self
            .map
            .keys()
            .filter(|k| !self.used.contains(&k.as_str()))
            .collect();
        unknown.sort();
        match unknown.first() {
            None => Ok(()),
            Some(k) => {
                let mut known = self.used.clone();
                known.sort_unstable();
                Err(self.fail(
                    k,
                    format!("unknown field; expected one of {}", known.join(", ")),
                ))
            }
        }
    }
}

/// What `new Keygate(config)` builds.
pub struct Built {
    /// The login flow with its key, lifetimes, hasher and TOTP settings.
    pub auth: Authenticator,
    /// Session cookies, when a session secret is available.
    pub sessions: Option<Sessions>,
}

/// Parses and checks the whole config.
///
/// # Errors
/// `config_invalid` naming the first refused field.
pub fn build(json: &str) -> Result<Built, KgError> {
    if json.len() > MAX_CONFIG_LEN {
        return Err(ConfigError::new("", "the config is too large").into());
    }
    let value: Value = serde_json::from_str(json)
        .map_err(|_| ConfigError::new("", "must be a JSON-serialisable object"))?;
    let mut top = Obj::new(&value, "")?;

    let secret = top.bytes("secret")?;
    let algorithm = top.str("algorithm")?;
    let key_id = top.str("keyId")?.map(str::to_owned);
    let signing_key = top.get("signingKey");
    let signing_keys = top.get("signingKeys");
    let ring =
        match (&secret, signing_key, signing_keys) {
            (_, _, Some(list)) => {
                if secret.is_some() || signing_key.is_some() {
                    return Err(ConfigError::new(
                        "signingKeys",
                        "give one of `secret`, `signingKey` or `signingKeys`",
                    )
                    .into());
                }
                for (name, given) in [
                    ("algorithm", algorithm.is_some()),
                    ("keyId", key_id.is_some()),
                ] {
                    if given {
                        return Err(ConfigError::new(
                            name,
                            "not with `signingKeys`: each JWK names its own `alg` and `kid`",
                        )
                        .into());
                    }
                }
                key_ring_from(list)?
            }
            (Some(_), Some(_), None) => {
                return Err(ConfigError::new(
                    "signingKey",
                    "give either `secret` or `signingKey`, not both",
                )
                .into())
            }
            (None, None, None) => return Err(ConfigError::new(
                "secret",
                "required: an HMAC secret of at least 32 bytes, a private `signingKey` JWK, or \
                 `signingKeys` (current first)",
            )
            .into()),
            (Some(secret), None, None) => {
                let alg = match algorithm {
                    None => Algorithm::HS256,
                    Some(a) => match a.parse::<Algorithm>() {
                        Ok(a) if a.is_hmac() => a,
                        _ => {
                            return Err(ConfigError::new(
                                "algorithm",
                                "with `secret` must be HS256, HS384 or HS512",
                            )
                            .into())
                        }
                    },
                };
                SigningKey::from_secret(secret, alg, key_id)
                    .map_err(|e| KgError::config(e, "").with_field_if_empty("secret"))?
                    .into()
            }
            (None, Some(v), None) => signing_key_from(v, algorithm, key_id)?.into(),
        };

    let issuer = top.str("issuer")?.map(str::to_owned);
    let audience = top.str("audience")?.map(str::to_owned);
    let limits = FlowLimits::new(
        top.seconds("accessTokenTtl")?.unwrap_or(DEFAULT_ACCESS_TTL),
        top.seconds("refreshTokenTtl")?
            .unwrap_or(DEFAULT_REFRESH_TTL),
        top.seconds("mfaTokenTtl")?.unwrap_or(DEFAULT_MFA_TTL),
        top.seconds("resetTokenTtl")?.unwrap_or(DEFAULT_RESET_TTL),
        top.u32("mfaMaxAttempts")?
            .unwrap_or(DEFAULT_MFA_MAX_ATTEMPTS),
        top.seconds("refreshGrace")?
            .unwrap_or(DEFAULT_REFRESH_GRACE),
    )?;
    let limits = match top.seconds("refreshFamilyTtl")? {
        Some(secs) => limits.with_refresh_family_ttl(secs)?,
        None => limits,
    };
    let limits = match top.u32("mfaMaxFailures")? {
        Some(n) => limits.with_mfa_max_failures(n)?,
        None => limits,
    };

    let hasher = match top.get("password") {
        None => PasswordHasher::default(),
        Some(v) => password_hasher(v, "password")?,
    };
    let totp = match top.get("totp") {
        None => TotpConfig::default(),
        Some(v) => totp_config(v, "totp")?,
    };
    let leeway = top.seconds("leeway")?;
    let sessions = match top.get("session") {
        None => secret
            .as_deref()
            .map(|s| Sessions::new(SessionConfig::new(s)))
            .transpose()
            .map_err(|e| KgError::config(e, "secret"))?,
        Some(v) => Some(sessions(v, secret.as_deref())?),
    };
    top.finish()?;

    let auth = Authenticator::with_key_ring(ring, limits, hasher, totp)
        .with_issuer(issuer)
        .with_audience(audience);
    let auth = match leeway {
        Some(secs) => auth.with_leeway(secs)?,
        None => auth,
    };
    Ok(Built { auth, sessions })
}

impl KgError {
    fn with_field_if_empty(mut self, field: &str) -> Self {
        if self.field.as_deref().is_none_or(str::is_empty) {
            self.field = Some(field.to_owned());
        }
        self
    }
}

fn signing_key_from(
    v: &Value,
    algorithm: Option<&str>,
    key_id: Option<String>,
) -> Result<SigningKey, KgError> {
    const ACCEPTED: &str = "must be a private JWK (object or JSON text: oct, OKP Ed25519 or EC \
                            P-256) or a PKCS#8 PEM with `algorithm` EdDSA or ES256";
    let jwk_value = match v {
        Value::String(s) if s.trim_start().starts_with("-----BEGIN") => {
            let alg = algorithm
                .and_then(|a| a.parse::<Algorithm>().ok())
                .ok_or_else(|| {
                    ConfigError::new("algorithm", "required with a PEM key: EdDSA or ES256")
                })?;
            return SigningKey::from_pem(s, alg, key_id)
                .map_err(|e| KgError::config(e, "signingKey"));
        }
        Value::String(s) => serde_json::from_str::<Value>(s)
            .map_err(|_| ConfigError::new("signingKey", ACCEPTED))?,
        Value::Object(_) => v.clone(),
        _ => return Err(ConfigError::new("signingKey", ACCEPTED).into()),
    };
    if algorithm.is_some() {
        return Err(ConfigError::new(
            "algorithm",
            "only with `secret` or a PEM key; a JWK names its own `alg`",
        )
        .into());
    }
    let mut jwk: Jwk =
        serde_json::from_value(jwk_value).map_err(|_| ConfigError::new("signingKey", ACCEPTED))?;
    if key_id.is_some() {
        jwk.kid = key_id;
    }
    SigningKey::from_jwk(&jwk).map_err(|e| KgError::config(e, "signingKey"))
}

/// `signingKeys: [current, ...previous]`: private JWKs (objects or JSON text), the first signs;
/// later ones may be public JWKs. The core's [`KeyRing`] checks them (distinct `kid`s, …).
fn key_ring_from(v: &Value) -> Result<KeyRing, KgError> {
    const ENTRY: &str = "must be a JWK with a `kid` (object or JSON text): the first a private key";
    let Value::Array(items) = v else {
        return Err(ConfigError::new(
            "signingKeys",
            "must be an array of JWKs, the current (signing) key first",
        )
        .into());
    };
    let jwks = items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let parsed = match item {
                Value::String(s) => serde_json::from_str::<Jwk>(s).ok(),
                Value::Object(_) => serde_json::from_value::<Jwk>(item.clone()).ok(),
                _ => None,
            };
            parsed.ok_or_else(|| ConfigError::new(format!("signingKeys[{i}]"), ENTRY))
        })
        .collect::<Result<Vec<_>, _>>()?;
    KeyRing::from_jwks(&jwks).map_err(|e| KgError::config(e.within("signingKeys"), ""))
}

/// `{timeCost, memoryCost, parallelism, minLength}` → a checked hasher.
///
/// # Errors
/// `config_invalid` naming the field under `path`.
pub fn password_hasher(v: &Value, path: &str) -> Result<PasswordHasher, KgError> {
    let mut o = Obj::new(v, path)?;
    let d = PasswordConfig::default();
    let cfg = PasswordConfig {
        time_cost: o.u32("timeCost")?.unwrap_or(d.time_cost),
        memory_cost: o.u32("memoryCost")?.unwrap_or(d.memory_cost),
        parallelism: o.u32("parallelism")?.unwrap_or(d.parallelism),
        min_length: match o.u32("minLength")? {
            Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
            None => d.min_length,
        },
    };
    o.finish()?;
    PasswordHasher::from_config(&cfg).map_err(|e| KgError::config(e, path))
}

/// `{algorithm, digits, period, window}` → checked TOTP settings.
///
/// # Errors
/// `config_invalid` naming the field under `path`.
pub fn totp_config(v: &Value, path: &str) -> Result<TotpConfig, KgError> {
    let mut o = Obj::new(v, path)?;
    let d = TotpConfig::DEFAULT;
    let algorithm = match o.str("algorithm")? {
        None => d.algorithm(),
        Some(a) => match a.to_ascii_lowercase().as_str() {
            "sha1" => TotpAlgorithm::Sha1,
            "sha256" => TotpAlgorithm::Sha256,
            "sha512" => TotpAlgorithm::Sha512,
            _ => {
                return Err(o
                    .fail("algorithm", "must be \"SHA1\", \"SHA256\" or \"SHA512\"")
                    .into())
            }
        },
    };
    let digits = match o.u32("digits")? {
        None => d.digits(),
        Some(n) => u8::try_from(n).unwrap_or(u8::MAX),
    };
    let period = o.seconds("period")?.unwrap_or(d.period());
    let window = match o.u32("window")? {
        None => d.window(),
        Some(n) => u8::try_from(n).unwrap_or(u8::MAX),
    };
    o.finish()?;
    TotpConfig::new(algorithm, digits, period, window).map_err(|e| KgError::config(e, path))
}

fn sessions(v: &Value, fallback_secret: Option<&[u8]>) -> Result<Sessions, KgError> {
    let mut o = Obj::new(v, "session")?;
    let secret = match (o.bytes("secret")?, fallback_secret) {
        (Some(s), _) => s,
        (None, Some(s)) => s.to_vec(),
        (None, None) => {
            return Err(ConfigError::new(
                "session.secret",
                "required when the tokens are signed with `signingKey`: at least 32 bytes",
            )
            .into())
        }
    };
    let mut cfg = SessionConfig::new(&secret);
    if let Some(name) = o.str("cookieName")? {
        name.clone_into(&mut cfg.cookie_name);
    }
    if let Some(t) = o.seconds("absoluteTimeout")? {
        cfg.absolute_timeout = t;
    }
    if let Some(t) = o.seconds("idleTimeout")? {
        cfg.idle_timeout = t;
    } else {
        cfg.idle_timeout = cfg.idle_timeout.min(cfg.absolute_timeout);
    }
    if let Some(s) = o.str("sameSite")? {
        cfg.same_site = match s.to_ascii_lowercase().as_str() {
            "strict" => SameSite::Strict,
            "lax" => SameSite::Lax,
            "none" => SameSite::None,
            _ => return Err(o.fail("sameSite", "must be \"strict\" or \"lax\"").into()),
        };
    }
    o.finish()?;
    Sessions::new(cfg).map_err(|e| KgError::config(e, "session"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn field_of(json: &str) -> String {
        match build(json) {
            Ok(_) => panic!("accepted {json}"),
            Err(e) => {
                assert_eq!(e.code, "config_invalid", "{json}");
                e.field.unwrap_or_default()
            }
        }
    }

    #[test]
    fn minimal_secret_ok() {
        let b = build(&format!(r#"{{"secret":"{SECRET}"}}"#)).unwrap();
        assert_eq!(b.auth.limits().access_ttl(), 900);
        assert!(b.sessions.is_some());
        assert_eq!(b.auth.signing_key().alg(), Algorithm::HS256);
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
        assert_eq!(field_of("{}"), "secret");
        assert_eq!(field_of("[]"), "");
        assert_eq!(field_of("nope"), "");
        assert_eq!(field_of(r#"{"secret":"short"}"#), "secret");
        assert_eq!(
            field_of(&format!(r#"{{"secret":"{SECRET}","bogus":1}}"#)),
            "bogus"
        );
        assert_eq!(
            field_of(&format!(
                r#"{{"secret":"{SECRET}","accessTokenTtl":"soon"}}"#
            )),
            "accessTokenTtl"
        );
        assert_eq!(
            field_of(&format!(r#"{{"secret":"{SECRET}","accessTokenTtl":-1}}"#)),
            "accessTokenTtl"
        );
        assert_eq!(
            field_of(&format!(
                r#"{{"secret":"{SECRET}","password":{{"timeCost":0}}}}"#
            )),
            "password.timeCost"
        );
        assert_eq!(
            field_of(&format!(
                r#"{{"secret":"{SECRET}","password":{{"memory":1}}}}"#
            )),
            "password.memory"
        );
        assert_eq!(
            field_of(&format!(
                r#"{{"secret":"{SECRET}","session":{{"cookieName":"sid"}}}}"#
            )),
            "session.cookieName"
        );
        assert_eq!(
            field_of(&format!(
                r#"{{"secret":"{SECRET}","session":{{"sameSite":"none"}}}}"#
            )),
            "session.sameSite"
        );
        assert_eq!(
            field_of(&format!(r#"{{"secret":"{SECRET}","algorithm":"EdDSA"}}"#)),
            "algorithm"
        );
        assert_eq!(
            field_of(&format!(r#"{{"secret":"{SECRET}","signingKey":{{}}}}"#)),
            "signingKey"
        );
        assert_eq!(
            field_of(r#"{"signingKey":{"kty":"OKP","crv":"Ed25519","alg":"EdDSA","d":"AA"}}"#),
            "signingKey.d"
        );
        assert_eq!(field_of(r#"{"signingKey":42}"#), "signingKey");
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
}
