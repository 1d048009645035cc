#![doc = "e2e-ref protocol crate"]
#![forbid(unsafe_code)]

pub mod channel;
pub mod suite;
pub mod wire;
