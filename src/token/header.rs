//! The JOSE header keygate writes and reads.

use serde::{Deserialize, Serialize};

use super::jwk::b64u_decode;
use super::TokenError;

/// Longest header segment accepted (base64url characters).
pub const MAX_HEADER_LEN: usize = 1024;

/// A JWS header: `{"alg", "kid"?, "typ"?}`. Tokens whose header has `crit` are refused
/// (no extension is understood).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// The algorithm name as written (may be `none` or unknown when read unverified).
    pub alg: String,
    /// Key id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// Media type; keygate writes `JWT` and does not require it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typ: Option<String>,
}

#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    crit: Option<serde::de::IgnoredAny>,
}

impl Header {
    /// Decodes one base64url header segment.
    pub(crate) fn parse(segment: &str) -> Result<Self, TokenError> {
        if segment.len() > MAX_HEADER_LEN {
            return Err(TokenError::Malformed {
                reason: "header is too large",
            });
        }
        let bytes = b64u_decode(segment).ok_or(TokenError::Malformed {
            reason: "header is not base64url",
        })?;
        // Derived struct parsing refuses duplicate members, so `alg` cannot be smuggled twice.
        let raw: RawHeader = serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed {
            reason: "header is not a JSON object with a string `alg`",
        })?;
        if raw.crit.is_some() {
            return Err(TokenError::Malformed {
                reason: "header has unsupported critical extensions (`crit`)",
            });
        }
        Ok(Self {
            alg: raw.alg,
            kid: raw.kid,
            typ: raw.typ,
        })
    }
}

/// The three segments of a compact JWS, checked for shape only.
pub(crate) struct Segments<'a> {
    pub header: &'a str,
    pub payload: &'a str,
    pub signature: &'a str,
    /// `header.payload`, the signing input.
    pub message: &'a str,
}

/// Splits a compact JWS after bounding its length.
pub(crate) fn split(token: &str, max_len: usize) -> Result<Segments<'_>, TokenError> {
    if token.len() > max_len {
        return Err(TokenError::TooLarge { max: max_len });
    }
    let malformed = TokenError::Malformed {
        reason: "expected three base64url segments separated by dots",
    };
    let (message, signature) = token.rsplit_once('.').ok_or(malformed.clone())?;
    let (header, payload) = message.split_once('.').ok_or(malformed.clone())?;
    let b64url = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    // An empty signature is left to the algorithm check, so `alg: none` tokens are refused
    // as `token_algorithm_not_allowed`, not as a shape error.
    if header.is_empty()
        || payload.is_empty()
        || !(b64url(header) && b64url(payload) && b64url(signature))
    {
        return Err(malformed);
    }
    Ok(Segments {
        header,
        payload,
        signature,
        message,
    })
}
