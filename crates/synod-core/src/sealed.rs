//! Sealed (commit–reveal) responses (`docs/PROTOCOL.md` §18).
//!
//! A proposal that carries `"sealed": {"commit_deadline": t}` is answered in
//! two phases. Before `t` a member sends only a **commitment**, a hash that
//! binds its answer, a random salt, the proposal id and its own id; from
//! `t` until the proposal's deadline it **reveals** the answer with the
//! salt, and the reveal counts only if it hashes to the commitment. Nobody
//! can see a stance before committing, so nobody can follow the crowd.
//!
//! This module holds the hash, the wire terms and the per-proposal record;
//! `space.rs` calls it from the response checks and at the commit deadline.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{ErrorKind, Rejection, reject};
use crate::identity::AgentId;
use crate::log::LogIndex;
use crate::message::Response;
use crate::wire::{Digest, canonicalize};

/// Domain separation of the commitment hash.
pub const SEAL_DOMAIN: &[u8] = b"synod/seal/v1";
/// Shortest salt, in bytes: 128 bits, so a commitment cannot be opened by
/// guessing the few answers an agent could give.
pub const MIN_SALT_BYTES: usize = 16;
/// Longest salt, in bytes.
pub const MAX_SALT_BYTES: usize = 64;
/// The members of a reveal's body that are not part of the sealed answer.
pub const UNSEALED_MEMBERS: [&str; 4] = ["created_at", "proposal", "salt", "space"];

/// A proposal's opt-in to sealed responses (`"sealed"` on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealedTerms {
    /// Log time (ms) at which the commit phase ends and the reveal phase
    /// begins; after the log time of the proposal's entry and before its
    /// `deadline`, which ends the reveal phase.
    pub commit_deadline: u64,
}

/// One member's commitment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitRecord {
    /// The committing agent.
    pub agent: crate::space::AgentIdx,
    /// The commitment.
    pub commitment: Digest,
    /// Log index of the commitment.
    pub index: LogIndex,
    /// The commitment message's id.
    pub message: Digest,
    /// Whether a matching reveal has been counted.
    pub revealed: bool,
}

/// The sealed state of a proposal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedState {
    /// End of the commit phase (log time, ms).
    pub commit_deadline: u64,
    /// Whether the commit phase has ended (through the log, at the first
    /// entry at or after `commit_deadline`).
    pub revealing: bool,
    /// Commitments by electorate slot.
    pub commitments: BTreeMap<u32, CommitRecord>,
}

impl SealedState {
    /// A proposal's sealed state as it enters the log.
    pub fn new(terms: SealedTerms) -> SealedState {
        SealedState {
            commit_deadline: terms.commit_deadline,
            revealing: false,
            commitments: BTreeMap::new(),
        }
    }

    /// The commitments in log order.
    pub fn in_log_order(&self) -> Vec<&CommitRecord> {
        let mut all: Vec<&CommitRecord> = self.commitments.values().collect();
        all.sort_by_key(|c| c.index);
        all
    }

    /// The phase's wire name at the state's own clock: `commit` until the
    /// commit deadline has been processed, then `reveal`.
    pub fn phase(&self) -> &'static str {
        if self.revealing { "reveal" } else { "commit" }
    }
}

/// The sealed answer of a reveal: its body without `created_at`,
/// `proposal`, `salt` and `space` — its `stance` and `confidence`, or its
/// `distribution`, and its `reasoning` if the body has one — exactly as
/// sent.
pub fn answer_of(body: &Value) -> Value {
    let mut answer = body.clone();
    if let Some(object) = answer.as_object_mut() {
        for member in UNSEALED_MEMBERS {
            object.remove(member);
        }
    }
    answer
}

/// `SHA-256("synod/seal/v1" ‖ proposal ‖ be64(len(signer)) ‖ signer ‖
/// be64(len(salt)) ‖ salt ‖ JCS(answer))`, the signer as the UTF-8 bytes of
/// its did, the salt as raw bytes.
pub fn commitment(proposal: &Digest, signer: &AgentId, salt: &[u8], answer: &Value) -> Digest {
    let signer = signer.as_str().as_bytes();
    let answer = canonicalize(answer);
    let mut bytes = Vec::with_capacity(SEAL_DOMAIN.len() + 48 + signer.len() + salt.len());
    bytes.extend_from_slice(SEAL_DOMAIN);
    bytes.extend_from_slice(&proposal.0);
    bytes.extend_from_slice(&(signer.len() as u64).to_be_bytes());
    bytes.extend_from_slice(signer);
    bytes.extend_from_slice(&(salt.len() as u64).to_be_bytes());
    bytes.extend_from_slice(salt);
    bytes.extend_from_slice(&answer);
    Digest::of(&bytes)
}

/// The commitment of the reveal whose body is `body` (the whole body as
/// sent: the unsealed members are dropped here), or `None` if it carries no
/// well-formed salt.
pub fn commitment_of_reveal(proposal: &Digest, signer: &AgentId, body: &Value) -> Option<Digest> {
    let salt = decode_salt(body.get("salt")?.as_str()?).ok()?;
    Some(commitment(proposal, signer, &salt, &answer_of(body)))
}

/// A salt: 32–128 lowercase hex characters (16–64 bytes).
pub fn decode_salt(text: &str) -> Result<Vec<u8>, Rejection> {
    let bad = || {
        reject(
            ErrorKind::Malformed,
            format!(
                "salt must be {}-{} lowercase hex characters ({MIN_SALT_BYTES}-{MAX_SALT_BYTES} random bytes)",
                2 * MIN_SALT_BYTES,
                2 * MAX_SALT_BYTES
            ),
        )
    };
    if !text.len().is_multiple_of(2)
        || text.len() < 2 * MIN_SALT_BYTES
        || text.len() > 2 * MAX_SALT_BYTES
    {
        return bad();
    }
    let digit = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    };
    let mut out = Vec::with_capacity(text.len() / 2);
    for pair in text.as_bytes().chunks(2) {
        match (digit(pair[0]), digit(pair[1])) {
            (Some(h), Some(l)) => out.push((h << 4) | l),
            _ => return bad(),
        }
    }
    Ok(out)
}

/// The shape of a response's sealed members (§4.5, §18): a commitment
/// stands alone (no stance, confidence, distribution, salt or reasoning); a
/// salt is well formed. Returns whether the response is a commitment.
pub fn check_shape(r: &Response) -> Result<bool, Rejection> {
    if r.commitment.is_some() {
        if r.stance.is_some()
            || r.confidence.is_some()
            || r.distribution.is_some()
            || r.salt.is_some()
            || !r.reasoning.is_empty()
        {
            return reject(
                ErrorKind::Malformed,
                "a commitment carries nothing else: the answer, its reasoning and the salt come with the reveal",
            );
        }
        return Ok(true);
    }
    if let Some(salt) = &r.salt {
        decode_salt(salt)?;
    }
    Ok(false)
}
