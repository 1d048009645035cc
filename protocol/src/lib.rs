#![doc = include_str!("../../README.md")]
#![forbid(unsafe_code)]

pub mod channel;
pub mod e2e;
pub mod error;
pub mod flaws;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod hop;
#[cfg(any(feature = "model-memo", feature = "fuzz-memo"))]
mod memo;
pub mod roles;
#[cfg(feature = "model-memo")]
pub mod seal_log;
pub mod state;
pub mod suite;
pub mod wire;

pub use error::{Error, MisuseError, ProtocolError};
