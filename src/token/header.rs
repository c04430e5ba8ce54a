//! The JOSE header keygate writes and reads.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::jwk::b64u_decode;
use super::TokenError;
use crate::json::StrictValue;

/// Longest header segment accepted (base64url characters).
pub const MAX_HEADER_LEN: usize = 1024;

/// A JWS header: `{"alg", "kid"?, "typ"?}`. Tokens whose header has `crit` are refused
/// (no extension is understood).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self")]
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

crate::json::object_only!(Header, "a JOSE header object", serialize);

impl Header {
    /// Decodes one base64url header segment: a JSON object (not an array), every member
    /// name once at every depth, a string `alg`, string `kid`/`typ` when present, no `crit`.
    pub(crate) fn parse(segment: &str) -> Result<Self, TokenError> {
        if segment.len() > MAX_HEADER_LEN {
            return Err(TokenError::Malformed {
                reason: "header is too large",
            });
        }
        let bytes = b64u_decode(segment).ok_or(TokenError::Malformed {
            reason: "header is not base64url",
        })?;
        let malformed = TokenError::Malformed {
            reason: "header is not a JSON object with unique members and a string `alg`",
        };
        let Ok(StrictValue(Value::Object(m))) = serde_json::from_slice(&bytes) else {
            return Err(malformed);
        };
        if m.contains_key("crit") {
            return Err(TokenError::Malformed {
                reason: "header has unsupported critical extensions (`crit`)",
            });
        }
        // `get` and a copy rather than `remove`: B-tree removal code for `Value` maps is
        // otherwise linked for these three short strings alone.
        let text = |name: &str| match m.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(malformed.clone()),
        };
        let (alg, kid, typ) = (text("alg")?, text("kid")?, text("typ")?);
        Ok(Self {
            alg: alg.ok_or(malformed)?,
            kid,
            typ,
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
