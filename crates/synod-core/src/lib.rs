//! The Agent Consensus Protocol, sans-IO.
//!
//! This crate is the whole protocol and nothing else: the signed wire format,
//! exact fixed-point quantities, domain authorities, the resolution rule and
//! early finality, trust from outcomes, and the space's deterministic state
//! machine over a hash-chained log. It performs no IO, reads no clock and draws
//! no randomness: log time and key seeds are arguments. Nothing that decides an
//! outcome or is hashed uses floating point.
//!
//! The rules are specified in `docs/PROTOCOL.md`; test vectors shared with
//! other implementations are in `vectors/`.

#![warn(missing_docs)]

pub mod audit;
pub mod belief;
pub mod config;
pub mod domain;
pub mod error;
pub mod fixed;
pub mod hierarchy;
pub mod identity;
pub mod log;
pub mod logodds;
pub mod lottery;
pub mod message;
pub mod open;
pub mod package;
pub mod policy;
pub mod scenario;
pub mod sealed;
mod signature;
pub mod space;
pub mod stake;
pub mod stamp;
pub mod tally;
pub mod trust;
pub mod wire;

pub use error::{ErrorKind, Rejection};
pub use identity::{AgentId, Keypair};
pub use log::{Entry, Payload};
pub use space::{Effect, Space, Status};
pub use wire::{Digest, MessageType, SignedMessage, Verified};
