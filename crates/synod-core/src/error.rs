//! Why a message is refused.
//!
//! Every refusal names one [`ErrorKind`]; the kinds and their wire names are
//! part of the protocol (`docs/PROTOCOL.md` §9). On the sequencer's path a
//! refused message changes nothing at all: the state and its hash stay as they
//! were and nothing is logged. When a replica applies an ordered entry whose
//! message the rules refuse, only the log head moves (and deadlines the entry's
//! time passes close, as they would for a tick).

use std::fmt;

use serde::{Deserialize, Serialize};

/// The documented kinds of refusal. The wire name is the snake_case string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Not valid JSON, a missing or unknown field, a value of the wrong shape.
    Malformed,
    /// The signer is not a valid did:key, or the signature does not verify.
    BadSignature,
    /// The space does not know the signer: it has neither registered (in an
    /// open space) nor been admitted by an admin's grant.
    UnknownAgent,
    /// The responder is not in the proposal's frozen electorate, or is its
    /// proposer; a proposal supersedes another proposer's; a reviewer decides
    /// its own proposal; an agent that proposed or responded reports the
    /// outcome.
    NotEligible,
    /// A replay, a second response, a sequence number that is not newer, or a
    /// message older than the space's replay window.
    Duplicate,
    /// The proposal is no longer open.
    ProposalClosed,
    /// A confidence, authority, score or threshold outside its range.
    OutOfRange,
    /// A message, payload, text or list above its limit.
    TooLarge,
    /// The message names a proposal the space does not have.
    UnknownProposal,
    /// The signer lacks the role the message needs.
    WrongRole,
    /// A policy override loosens the space's policy for that stakes level.
    PolicyViolation,
    /// The deadline is not after the log time, or too far after it.
    BadDeadline,
    /// The message was created too far ahead of the log time.
    ClockSkew,
    /// The message names another space.
    WrongSpace,
    /// The proposal or space is not in a state that accepts this message: an
    /// outcome for an open or superseded proposal, a decision for one that is
    /// not escalated, a grant that would leave no admin, any message but the
    /// genesis configuration before the space exists.
    InvalidState,
    /// A proposal from an agent below the space's admission trust without a
    /// stamp of the admission difficulty bound to its content (§16).
    InsufficientWork,
    /// A sealed proposal's commitment at or after its commit deadline, or a
    /// reveal before it (§18).
    WrongPhase,
    /// A sealed proposal's reveal that does not hash to the member's
    /// commitment (§18).
    BadReveal,
}

impl ErrorKind {
    /// Every kind, in documentation order.
    pub const ALL: [ErrorKind; 18] = [
        ErrorKind::Malformed,
        ErrorKind::BadSignature,
        ErrorKind::UnknownAgent,
        ErrorKind::NotEligible,
        ErrorKind::Duplicate,
        ErrorKind::ProposalClosed,
        ErrorKind::OutOfRange,
        ErrorKind::TooLarge,
        ErrorKind::UnknownProposal,
        ErrorKind::WrongRole,
        ErrorKind::PolicyViolation,
        ErrorKind::BadDeadline,
        ErrorKind::ClockSkew,
        ErrorKind::WrongSpace,
        ErrorKind::InvalidState,
        ErrorKind::InsufficientWork,
        ErrorKind::WrongPhase,
        ErrorKind::BadReveal,
    ];

    /// The wire name, e.g. `"not_eligible"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Malformed => "malformed",
            ErrorKind::BadSignature => "bad_signature",
            ErrorKind::UnknownAgent => "unknown_agent",
            ErrorKind::NotEligible => "not_eligible",
            ErrorKind::Duplicate => "duplicate",
            ErrorKind::ProposalClosed => "proposal_closed",
            ErrorKind::OutOfRange => "out_of_range",
            ErrorKind::TooLarge => "too_large",
            ErrorKind::UnknownProposal => "unknown_proposal",
            ErrorKind::WrongRole => "wrong_role",
            ErrorKind::PolicyViolation => "policy_violation",
            ErrorKind::BadDeadline => "bad_deadline",
            ErrorKind::ClockSkew => "clock_skew",
            ErrorKind::WrongSpace => "wrong_space",
            ErrorKind::InvalidState => "invalid_state",
            ErrorKind::InsufficientWork => "insufficient_work",
            ErrorKind::WrongPhase => "wrong_phase",
            ErrorKind::BadReveal => "bad_reveal",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused message: its kind and a human-readable explanation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct Rejection {
    /// The documented kind.
    #[serde(rename = "error")]
    pub kind: ErrorKind,
    /// What exactly was wrong, for a person.
    pub message: String,
}

impl Rejection {
    /// A refusal of `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Rejection {
        Rejection {
            kind,
            message: message.into(),
        }
    }
}

/// Shorthand for building a [`Rejection`] in `Err` position.
pub(crate) fn reject<T>(kind: ErrorKind, message: impl Into<String>) -> Result<T, Rejection> {
    Err(Rejection::new(kind, message))
}

impl From<crate::fixed::DecimalError> for Rejection {
    fn from(e: crate::fixed::DecimalError) -> Rejection {
        let kind = match e {
            crate::fixed::DecimalError::Malformed(_) => ErrorKind::Malformed,
            crate::fixed::DecimalError::OutOfRange { .. } => ErrorKind::OutOfRange,
        };
        Rejection::new(kind, e.to_string())
    }
}
