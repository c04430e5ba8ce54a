//! The signature algorithms keygate accepts (JOSE names). `none` is not one of them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ConfigError;

/// A JWS algorithm (RFC 7518 §3, RFC 8037). `none` does not exist here.
#[allow(clippy::upper_case_acronyms)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// HMAC with SHA-256 (shared secret of at least 32 bytes).
    HS256,
    /// HMAC with SHA-384.
    HS384,
    /// HMAC with SHA-512.
    HS512,
    /// Ed25519 signatures (RFC 8037).
    EdDSA,
    /// ECDSA on P-256 with SHA-256.
    ES256,
    /// RSASSA-PKCS1-v1_5 with SHA-256; verification only (keys of 2048–4096 bits).
    RS256,
}

impl Algorithm {
    /// Every supported algorithm.
    pub const ALL: [Algorithm; 6] = [
        Algorithm::HS256,
        Algorithm::HS384,
        Algorithm::HS512,
        Algorithm::EdDSA,
        Algorithm::ES256,
        Algorithm::RS256,
    ];

    /// The JOSE name (`"HS256"`, `"EdDSA"`, …).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::HS256 => "HS256",
            Self::HS384 => "HS384",
            Self::HS512 => "HS512",
            Self::EdDSA => "EdDSA",
            Self::ES256 => "ES256",
            Self::RS256 => "RS256",
        }
    }

    /// Whether this is a shared-secret (HMAC) algorithm.
    #[must_use]
    pub const fn is_hmac(self) -> bool {
        matches!(self, Self::HS256 | Self::HS384 | Self::HS512)
    }

    /// The JOSE name parsed strictly (case-sensitive, as RFC 7515 requires); `None` for `none`
    /// and anything unknown.
    pub(crate) fn from_jose(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Algorithm {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_jose(s).ok_or_else(|| {
            ConfigError::new(
                "alg",
                "unsupported algorithm: use HS256, HS384, HS512, EdDSA, ES256 or RS256 (never none)",
            )
        })
    }
}

impl Serialize for Algorithm {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Algorithm {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse()
            .map_err(|e: ConfigError| serde::de::Error::custom(e.message))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trip_ok() {
        for a in Algorithm::ALL {
            assert_eq!(a.to_string().parse::<Algorithm>().unwrap(), a);
            let json = serde_json::to_string(&a).unwrap();
            assert_eq!(serde_json::from_str::<Algorithm>(&json).unwrap(), a);
        }
    }

    #[test]
    fn none_and_unknown_fails() {
        for s in [
            "none", "None", "NONE", "hs256", "RS384", "PS256", "ES384", "",
        ] {
            let e = s.parse::<Algorithm>().unwrap_err();
            assert_eq!(e.field, "alg");
        }
        assert!(serde_json::from_str::<Algorithm>("\"none\"").is_err());
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in ".*") {
            let r = s.parse::<Algorithm>();
            prop_assert_eq!(r.is_ok(), Algorithm::ALL.iter().any(|a| a.as_str() == s));
        }
    }
}
