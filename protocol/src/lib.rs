#![doc = "e2e-ref protocol crate"]
#![forbid(unsafe_code)]

pub mod channel;
pub mod error;
pub mod hop;
pub mod roles;
pub mod suite;
pub mod wire;

pub use error::{Error, MisuseError, ProtocolError};
