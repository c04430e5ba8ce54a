//! keygate core: every authentication decision, sans-IO.
//!
//! Time (`now`, Unix seconds), randomness ([`entropy::Entropy`]) and stored state come in as
//! arguments; new state comes out in the result. The Envoy filter and the npm module only
//! translate and do I/O.
#![forbid(unsafe_code)]

pub mod breach;
pub mod duration;
pub mod edge_config;
pub mod email;
pub mod entropy;
pub mod error;
pub mod flow;
pub mod gateway;
mod json;
pub mod origin;
pub mod password;
pub mod policy;
pub mod qr;
pub mod ratelimit;
pub mod recovery;
pub mod session;
pub mod throttle;
pub mod token;
pub mod totp;

pub use entropy::{Entropy, OsEntropy, SeededEntropy};
pub use error::{ConfigError, ErrorCode};
pub use session::{SameSite, Session, SessionConfig, SessionError, SessionState, Sessions};
