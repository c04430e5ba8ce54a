//! Deciding while waiting on the network, sans-IO: the gateway's three answers and the
//! callouts it asks the shell to make.
//!
//! A request is decided by [`Gateway::check`](super::Gateway::check). Usually that is final
//! ([`Decision::Continue`] or [`Decision::Reply`]); sometimes the gateway first needs an answer
//! from another service (the issuer's JWKS for an unknown `kid`; later a rate-limit service)
//! and says so with [`Decision::Wait`]: a [`Callout`] to make and a [`Pending`] to keep. When
//! the answer comes back the shell hands it to [`Gateway::complete`](super::Gateway::complete)
//! once, then calls [`Gateway::resume`](super::Gateway::resume) with each request's `Pending`,
//! which continues the same decision and returns one of the same three answers.
//! [`Gateway::tick`](super::Gateway::tick) returns the callouts that are due without any request
//! (the JWKS refresh every `cache_secs`, retries after a failure).
//!
//! The shell only performs callouts and keeps track of who waits for which; time, bytes and
//! every choice stay here. Callouts are identified by a [`CalloutId`] the gateway allocates;
//! the shell echoes it back in the [`CalloutResult`].

use super::outcome::{Forward, LocalReply, Metric, Outcome};
use super::rls::{Asked, GrpcCallout};
use super::token_source::Presented;
use super::Passed;
use crate::token::{Claims, TokenError};
use std::fmt;
use std::rc::Rc;

/// The gateway's answer for one request.
#[must_use]
#[derive(Debug)]
pub enum Decision<'g> {
    /// Send the request upstream, changed as described.
    Continue(Forward<'g>),
    /// Answer locally; the request never reaches the upstream.
    Reply(LocalReply),
    /// Hold the request: make `Callout` (unless it is already on its way) and, when its result
    /// is in, [`Gateway::resume`](super::Gateway::resume) with this `Pending`.
    Wait(Callout, Pending),
}

impl Decision<'_> {
    /// The counter to bump; `None` while waiting (the final answer counts).
    #[must_use]
    pub fn metric(&self) -> Option<Metric> {
        match self {
            Self::Continue(f) => Some(f.metric),
            Self::Reply(r) => Some(r.metric),
            Self::Wait(..) => None,
        }
    }

    /// The HTTP status: 200 for continue, the local reply's, or 0 while waiting.
    #[must_use]
    pub fn status(&self) -> u16 {
        match self {
            Self::Continue(_) => 200,
            Self::Reply(r) => r.status,
            Self::Wait(..) => 0,
        }
    }
}

impl<'g> From<Outcome<'g>> for Decision<'g> {
    fn from(o: Outcome<'g>) -> Self {
        match o {
            Outcome::Continue(f) => Self::Continue(f),
            Outcome::Reply(r) => Self::Reply(r),
        }
    }
}

/// Names one callout; unique among every [`Gateway`](super::Gateway) of one process (one VM),
/// so the answer to an old gateway's callout is never taken for a new gateway's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CalloutId(pub u64);

/// A callout a request (or a timer) waits for.
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Callout {
    /// The result must come back with this id.
    pub id: CalloutId,
    /// What to send. `None`: this callout is already on its way (several requests share one
    /// JWKS fetch); only wait for its result.
    pub request: Option<CalloutRequest>,
}

/// What to send.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CalloutRequest {
    /// An HTTP request to an Envoy cluster (proxy-wasm `dispatch_http_call`).
    Http(HttpCallout),
    /// A unary gRPC call (proxy-wasm `dispatch_grpc_call`), made by the request's own
    /// context: it serves that request only (the rate-limit service).
    Grpc(GrpcCallout),
}

/// An HTTP request through the proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpCallout {
    /// The proxy's name for the upstream (Envoy cluster).
    pub cluster: String,
    /// Request headers, pseudo-headers (`:method`, `:path`, `:authority`, `:scheme`) first.
    pub headers: Vec<(&'static str, String)>,
    /// Request body (empty for a GET).
    pub body: Vec<u8>,
    /// Give up after this long (milliseconds); the proxy then reports a failure.
    pub timeout_ms: u64,
    /// Longest response body the gateway reads: the shell reads at most this many bytes plus
    /// one and reports the full length in [`CalloutResponse::body_len`].
    pub max_response_bytes: usize,
}

/// What came back for a callout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalloutResult {
    /// The callout this answers.
    pub id: CalloutId,
    /// The response, or why there is none.
    pub response: Result<CalloutResponse, CalloutFailure>,
}

/// A response that arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalloutResponse {
    /// HTTP status (0 when the response had no valid `:status`).
    pub status: u16,
    /// The body bytes read: at most [`HttpCallout::max_response_bytes`] + 1.
    pub body: Vec<u8>,
    /// The body's full length as the proxy reported it.
    pub body_len: usize,
}

/// Why a callout has no response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CalloutFailure {
    /// The proxy refused to send it (unknown cluster, bad headers, …).
    DispatchFailed,
    /// Sent, but no response: connection refused or reset, or the timeout passed (the proxy
    /// does not say which; the gateway tells them apart by the time taken).
    NoResponse,
    /// A gRPC call ended with this non-OK status (4 `DEADLINE_EXCEEDED` after its timeout,
    /// 14 `UNAVAILABLE`, …). A gRPC `OK` arrives as a [`CalloutResponse`] with status 0.
    GrpcStatus(u32),
}

/// A request held while its callout is out. Opaque: the shell stores it and gives it back to
/// [`Gateway::resume`](super::Gateway::resume) of the gateway that made it. It holds indexes into
/// that gateway's configuration (rules, token sources), so another gateway (the filter
/// reconfigured while the request was held) refuses it: 503 `unavailable`, never a guess.
#[derive(Debug)]
pub struct Pending {
    /// The [`Gateway`](super::Gateway) that made it.
    pub(super) gateway: u64,
    pub(super) callout: CalloutId,
    pub(super) stage: Stage,
}

impl Pending {
    /// The callout this request waits for.
    #[must_use]
    pub fn callout(&self) -> CalloutId {
        self.callout
    }
}

/// Where a held decision resumes.
#[derive(Debug)]
pub(super) enum Stage {
    /// Verify the token once the key set has been refetched, then finish the decision.
    Keys(Held),
    /// The rate-limit service's answer for the global `ip`/`header:` limits, then the rest.
    RlsPre(Box<HeldPre>),
    /// The rate-limit service's answer for the global `sub` limits, then the requirement.
    RlsPost(Box<HeldPost>),
}

/// A request waiting for the service before its token is looked at. `Debug` never shows a
/// token.
pub(super) struct HeldPre {
    pub method: String,
    pub path: String,
    pub client: Option<String>,
    pub found: Presented,
    /// As in [`Held`].
    pub cookie_rest: Option<Vec<u8>>,
    pub passed: Passed,
    pub asked: Vec<Asked>,
}

impl fmt::Debug for HeldPre {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeldPre")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("asked", &self.asked.len())
            .finish_non_exhaustive()
    }
}

/// A request waiting for the service after its token was verified. `Debug` never shows the
/// claims.
pub(super) struct HeldPost {
    pub method: String,
    pub path: String,
    pub client: Option<String>,
    pub claims: Option<Rc<Claims>>,
    pub token_error: Option<TokenError>,
    /// A token was found more than once.
    pub several: bool,
    /// The source of the one token found (for `forward_token: false`).
    pub source: Option<usize>,
    pub cookie_rest: Option<Vec<u8>>,
    pub passed: Passed,
    pub asked: Vec<Asked>,
}

impl fmt::Debug for HeldPost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeldPost")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("asked", &self.asked.len())
            .finish_non_exhaustive()
    }
}

/// A request's state after its pre-token rate limits, kept while waiting for keys. `Debug`
/// never shows the token or the other cookies.
pub(super) struct Held {
    pub method: String,
    pub path: String,
    pub client: Option<String>,
    /// The one token presented, and the index of the source that held it.
    pub token: String,
    pub source: usize,
    /// `forward_token: false` with a cookie source: the `Cookie` header without the token
    /// cookie (`None` also when no other cookie was sent).
    pub cookie_rest: Option<Vec<u8>>,
    pub passed: Passed,
}

impl fmt::Debug for Held {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Held")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("client", &self.client)
            .field("token", &"[redacted]")
            .field("source", &self.source)
            .field(
                "cookie_rest",
                &self.cookie_rest.as_ref().map(|_| "[redacted]"),
            )
            .field("passed", &self.passed)
            .finish()
    }
}
