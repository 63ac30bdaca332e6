//! Sans-IO IKEv2 (RFC 7296) with pre-shared keys.
//!
//! * [`wire`]: the message codec (view + `Repr`, never panics on any input).
//! * [`crypto`]: Diffie-Hellman groups, PRFs, `prf+`, the key schedule and the SK payload.
//!
//! Nothing in this crate opens a socket, reads a clock or draws randomness by itself:
//! time and randomness are passed in by the caller.
#![forbid(unsafe_code)]

pub mod crypto;
pub mod wire;
