//! The one error type of the token module.

use std::fmt;

use crate::entropy::EntropyError;
use crate::ErrorCode;

/// Why a token was refused or could not be made. Messages never contain the token, a key or a
/// claim value supplied by the caller; `claim` names are fixed strings.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenError {
    /// The token is longer than [`Validation::max_token_len`](super::Validation::max_token_len).
    TooLarge {
        /// The configured limit in bytes.
        max: usize,
    },
    /// Not a compact JWS with a well-formed JSON header and claims object.
    Malformed {
        /// Which part was wrong (fixed text, never input).
        reason: &'static str,
    },
    /// The signature does not verify with the selected key.
    Invalid,
    /// `exp` is in the past (beyond the leeway).
    Expired,
    /// `nbf` or `iat` is in the future (beyond the leeway).
    NotYetValid {
        /// `nbf` or `iat`.
        claim: &'static str,
    },
    /// The `type` claim is not the expected kind.
    WrongType {
        /// The kind the caller asked for.
        expected: super::TokenType,
        /// The kind the token carries.
        found: super::TokenType,
    },
    /// The header `alg` is `none`, unknown, not in the allow-list, or not the algorithm the
    /// selected key is pinned to.
    AlgorithmNotAllowed,
    /// The header `kid` names no key in the key set.
    UnknownKey,
    /// `iss` is not the configured issuer.
    IssuerInvalid,
    /// `aud` contains none of the configured audiences (or is present when none is configured).
    AudienceInvalid,
    /// A required claim is absent.
    MissingClaim {
        /// The claim name.
        claim: &'static str,
    },
    /// A claim exceeds its size bound.
    ClaimTooLarge {
        /// The claim name.
        claim: &'static str,
    },
    /// The token could not be signed.
    SigningFailed {
        /// What went wrong (fixed text).
        reason: &'static str,
    },
    /// The random source failed while generating a key.
    Entropy(EntropyError),
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge { max } => write!(f, "token is larger than {max} bytes"),
            Self::Malformed { reason } => write!(f, "token is malformed: {reason}"),
            Self::Invalid => f.write_str("token signature is invalid"),
            Self::Expired => f.write_str("token has expired"),
            Self::NotYetValid { claim } => {
                write!(f, "token is not valid yet (`{claim}` is in the future)")
            }
            Self::WrongType { expected, found } => {
                write!(f, "expected a `{expected}` token, got a `{found}` token")
            }
            Self::AlgorithmNotAllowed => {
                f.write_str("token algorithm is not allowed for the configured keys")
            }
            Self::UnknownKey => f.write_str("token `kid` does not name a configured key"),
            Self::IssuerInvalid => f.write_str("token issuer (`iss`) is not the expected issuer"),
            Self::AudienceInvalid => {
                f.write_str("token audience (`aud`) does not include an accepted audience")
            }
            Self::MissingClaim { claim } => write!(f, "token is missing the `{claim}` claim"),
            Self::ClaimTooLarge { claim } => write!(f, "token claim `{claim}` is too large"),
            Self::SigningFailed { reason } => write!(f, "could not sign the token: {reason}"),
            Self::Entropy(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for TokenError {}

impl ErrorCode for TokenError {
    fn code(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "token_too_large",
            Self::Malformed { .. } => "token_malformed",
            Self::Invalid => "token_invalid",
            Self::Expired => "token_expired",
            Self::NotYetValid { .. } => "token_not_yet_valid",
            Self::WrongType { .. } => "token_wrong_type",
            Self::AlgorithmNotAllowed => "token_algorithm_not_allowed",
            Self::UnknownKey => "token_unknown_key",
            Self::IssuerInvalid => "token_issuer_invalid",
            Self::AudienceInvalid => "token_audience_invalid",
            Self::MissingClaim { .. } => "token_missing_claim",
            Self::ClaimTooLarge { .. } => "token_claim_too_large",
            Self::SigningFailed { .. } => "token_signing_failed",
            Self::Entropy(_) => "entropy_unavailable",
        }
    }
}

impl From<EntropyError> for TokenError {
    fn from(e: EntropyError) -> Self {
        Self::Entropy(e)
    }
}

impl TokenError {
    /// The claim this error is about, when it is about one (`exp`, `nbf`, `iat`, `iss`, `aud`,
    /// `type`, or the name in [`TokenError::MissingClaim`] / [`TokenError::ClaimTooLarge`]).
    #[must_use]
    pub fn claim(&self) -> Option<&'static str> {
        match self {
            Self::Expired => Some("exp"),
            Self::NotYetValid { claim }
            | Self::MissingClaim { claim }
            | Self::ClaimTooLarge { claim } => Some(claim),
            Self::WrongType { .. } => Some("type"),
            Self::IssuerInvalid => Some("iss"),
            Self::AudienceInvalid => Some("aud"),
            _ => None,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::token::TokenType;

    #[test]
    fn codes_are_stable_ok() {
        let all = [
            (TokenError::TooLarge { max: 1 }, "token_too_large"),
            (TokenError::Malformed { reason: "x" }, "token_malformed"),
            (TokenError::Invalid, "token_invalid"),
            (TokenError::Expired, "token_expired"),
            (
                TokenError::NotYetValid { claim: "nbf" },
                "token_not_yet_valid",
            ),
            (
                TokenError::WrongType {
                    expected: TokenType::Access,
                    found: TokenType::Refresh,
                },
                "token_wrong_type",
            ),
            (
                TokenError::AlgorithmNotAllowed,
                "token_algorithm_not_allowed",
            ),
            (TokenError::UnknownKey, "token_unknown_key"),
            (TokenError::IssuerInvalid, "token_issuer_invalid"),
            (TokenError::AudienceInvalid, "token_audience_invalid"),
            (
                TokenError::MissingClaim { claim: "sub" },
                "token_missing_claim",
            ),
            (
                TokenError::ClaimTooLarge { claim: "sub" },
                "token_claim_too_large",
            ),
            (
                TokenError::SigningFailed { reason: "x" },
                "token_signing_failed",
            ),
            (TokenError::Entropy(EntropyError), "entropy_unavailable"),
        ];
        for (e, code) in all {
            assert_eq!(e.code(), code);
            assert!(!e.to_string().is_empty());
        }
        assert_eq!(TokenError::Expired.claim(), Some("exp"));
    }
}
