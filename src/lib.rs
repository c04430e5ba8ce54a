//! keygate core: every authentication decision, sans-IO.
//!
//! Time (`now`, Unix seconds), randomness ([`entropy::Entropy`]) and stored state come in as
//! arguments; new state comes out in the result. The Envoy filter and the npm module only
//! translate and do I/O.
#![forbid(unsafe_code)]

pub mod duration;
pub mod entropy;
pub mod error;
pub mod policy;
pub mod ratelimit;

pub use entropy::{Entropy, OsEntropy, SeededEntropy};
pub use error::{ConfigError, ErrorCode};
