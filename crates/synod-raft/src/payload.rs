//! What one Raft entry carries, and the pure function every replica applies it
//! with.
//!
//! A Raft entry is a [`Batch`]: messages whose signatures the leader checked,
//! and the log time the leader stamped on them. Applying a batch is a function
//! of the space's state and the batch alone ([`apply_batch`]), so every replica
//! that applies the same Raft log derives the same hash-chained synod log, the
//! same refusals and the same state hash.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};
use synod_core::log::LogIndex;
use synod_core::space::Effect;
use synod_core::wire::{Digest, SignedMessage, Verified};
use synod_core::{Entry, Rejection, Space};

/// Most messages in one batch: the local sequencer's `MAX_BATCH`, so that a
/// Raft entry is never larger than what one local group commit writes.
pub const MAX_BATCH_MESSAGES: usize = 4_096;
/// Most bytes of signed messages (with their signatures) in one batch, so
/// that a Raft entry, and an append of [`crate::default_config`]'s 32 of
/// them, stays a bounded request between replicas.
pub const MAX_BATCH_BYTES: usize = 2 * 1024 * 1024;

/// The payload of one Raft entry.
///
/// `time` is the leader's clock when it proposed the batch. Replicas never
/// read their own clocks to apply it: log time is part of the replicated
/// data, which is what makes deadlines close at the same entry everywhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// Log time in milliseconds since the Unix epoch, as the leader stamped it.
    /// The core raises it to the previous entry's time if it is behind, so a
    /// new leader with a slower clock never makes log time go back.
    pub time: u64,
    /// The messages, in the order they are to be applied. Their signatures
    /// were checked before the batch was proposed. Shared, so that the
    /// copies openraft keeps of an entry (in memory for replication, in the
    /// log store's cache) cost no copy of the messages.
    pub messages: std::sync::Arc<[Verified]>,
}

/// A batch the leader cannot propose.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// More than [`MAX_BATCH_MESSAGES`] messages.
    #[error("a batch holds at most {MAX_BATCH_MESSAGES} messages, not {count}")]
    TooLarge {
        /// How many were given.
        count: usize,
    },
    /// More than [`MAX_BATCH_BYTES`] of messages.
    #[error("a batch holds at most {MAX_BATCH_BYTES} bytes of messages, not {bytes}")]
    TooManyBytes {
        /// How many bytes were given.
        bytes: usize,
    },
}

/// The bytes a message takes in a batch: its signed bytes and signature.
pub fn message_bytes(message: &Verified) -> usize {
    message.signed_bytes().len() + 64
}

impl Batch {
    /// A batch of already verified messages at log time `time`. An empty
    /// batch is how a leader moves log time forward so that deadlines close.
    pub fn new(time: u64, messages: Vec<Verified>) -> Result<Batch, BatchError> {
        if messages.len() > MAX_BATCH_MESSAGES {
            return Err(BatchError::TooLarge {
                count: messages.len(),
            });
        }
        let bytes: usize = messages.iter().map(message_bytes).sum();
        if bytes > MAX_BATCH_BYTES {
            return Err(BatchError::TooManyBytes { bytes });
        }
        Ok(Batch {
            time,
            messages: messages.into(),
        })
    }

    /// The same messages at log time `time`, checked against the limits
    /// again: how a leader stamps a batch a follower forwarded.
    pub fn at(self, time: u64) -> Result<Batch, BatchError> {
        if self.messages.len() > MAX_BATCH_MESSAGES {
            return Err(BatchError::TooLarge {
                count: self.messages.len(),
            });
        }
        let bytes = self.bytes();
        if bytes > MAX_BATCH_BYTES {
            return Err(BatchError::TooManyBytes { bytes });
        }
        Ok(Batch {
            time,
            messages: self.messages,
        })
    }

    /// Bytes of its messages and signatures.
    pub fn bytes(&self) -> usize {
        self.messages.iter().map(message_bytes).sum()
    }

    /// SHA-256 of the batch's encoding: what the simulation compares to check
    /// that replicas applied the same entry at the same index.
    pub fn digest(&self) -> Digest {
        let bytes = postcard::to_allocvec(self).expect("a batch serializes");
        Digest(Sha256::digest(&bytes).into())
    }
}

impl std::fmt::Display for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "batch@{}[{}]", self.time, self.messages.len())
    }
}

/// On the wire and on disk a message is its signature and its signed bytes,
/// exactly as the synod store keeps it, so nothing is re-serialized.
#[derive(Serialize, Deserialize)]
struct WireBatch<'a> {
    time: u64,
    #[serde(borrow)]
    messages: Vec<WireMessage<'a>>,
}

#[derive(Serialize, Deserialize)]
struct WireMessage<'a> {
    #[serde(with = "serde_bytes_array")]
    signature: [u8; 64],
    #[serde(borrow)]
    signed: std::borrow::Cow<'a, [u8]>,
}

mod serde_bytes_array {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(b: &[u8; 64], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(b)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 64], D::Error> {
        let bytes = <std::borrow::Cow<'de, [u8]>>::deserialize(d)?;
        bytes
            .as_ref()
            .try_into()
            .map_err(|_| serde::de::Error::custom("a signature is 64 bytes"))
    }
}

impl Serialize for Batch {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        WireBatch {
            time: self.time,
            messages: self
                .messages
                .iter()
                .map(|m| WireMessage {
                    signature: *m.signature(),
                    signed: std::borrow::Cow::Borrowed(m.signed_bytes()),
                })
                .collect(),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Batch {
    /// Re-parses every message strictly (its bytes must be canonical) and
    /// trusts its signature: a Raft log only ever holds batches a leader
    /// verified, and Raft's fault model is crash faults, not lying replicas
    /// (ARCHITECTURE.md, "Replication (cluster mode)").
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Batch, D::Error> {
        let wire = WireBatch::deserialize(d)?;
        if wire.messages.len() > MAX_BATCH_MESSAGES {
            return Err(D::Error::custom("too many messages in a batch"));
        }
        let messages = wire
            .messages
            .into_iter()
            .map(|m| {
                SignedMessage::from_signed_bytes(&m.signed, &m.signature)
                    .map(Verified::from_trusted_storage)
                    .map_err(D::Error::custom)
            })
            .collect::<Result<Vec<_>, _>>()?
            .into();
        Ok(Batch {
            time: wire.time,
            messages,
        })
    }
}

/// What became of one message of a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// The message is the synod entry `index`, at log time `time`.
    Accepted {
        /// Its synod log index.
        index: LogIndex,
        /// Its log time.
        time: u64,
        /// What applying it did.
        effects: Vec<Effect>,
    },
    /// The rules refused it; it is not in the synod log. Every replica
    /// refuses it identically, since refusal depends only on the state.
    Refused(Rejection),
}

/// The answer to a committed batch: one outcome per message, in order. This is
/// what a client write returns once its entry is committed and applied.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BatchOutcome {
    /// One per message of the batch.
    pub outcomes: Vec<Outcome>,
}

/// Applies `batch` to `space`: first a tick if a deadline has passed at the
/// batch's time, then each message through [`Space::append`]. Returns the synod
/// entries it derived (with their effects) and one outcome per message.
///
/// The tick is decided here, from the state, and not by the leader: the
/// leader proposes a batch before the entries ahead of it are applied, so only
/// the replica applying it knows the state it meets. A refused message leaves
/// no entry, exactly as on the local sequencer's path.
pub fn apply_batch(space: &mut Space, batch: &Batch) -> (Vec<(Entry, Vec<Effect>)>, BatchOutcome) {
    let mut entries = Vec::new();
    if space.next_deadline().is_some_and(|d| d <= batch.time) {
        entries.push(space.tick(batch.time));
    }
    let mut outcomes = Vec::with_capacity(batch.messages.len());
    for message in batch.messages.iter() {
        match space.append(message.clone(), batch.time) {
            Ok((entry, effects)) => {
                outcomes.push(Outcome::Accepted {
                    index: entry.index,
                    time: entry.time,
                    effects: effects.clone(),
                });
                entries.push((entry, effects));
            }
            Err(rejection) => outcomes.push(Outcome::Refused(rejection)),
        }
    }
    (entries, BatchOutcome { outcomes })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use synod_core::wire::MessageType;
    use synod_core::{ErrorKind, Keypair};

    const T0: u64 = 1_700_000_000_000;

    fn genesis() -> Verified {
        Verified::sign(
            MessageType::Configuration,
            json!({"space": "s", "created_at": T0, "seq": 0, "change": {"set": {"mode": "open"}}}),
            &Keypair::from_seed(&[3; 32]),
        )
    }

    fn registration(seed: u8, seq: u64) -> Verified {
        Verified::sign(
            MessageType::Registration,
            json!({"space": "s", "created_at": T0, "seq": seq, "name": format!("a{seed}"),
                   "vendor": "test", "authorities": {"ops.*": "0.5"}}),
            &Keypair::from_seed(&[seed; 32]),
        )
    }

    #[test]
    fn a_batch_round_trips_through_its_encoding() {
        let batch = Batch::new(T0, vec![genesis(), registration(7, 1)]).unwrap();
        let bytes = postcard::to_allocvec(&batch).unwrap();
        let back: Batch = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, batch);
        assert_eq!(back.digest(), batch.digest());
    }

    #[test]
    fn a_tampered_message_does_not_decode() {
        let batch = Batch::new(T0, vec![genesis()]).unwrap();
        let mut bytes = postcard::to_allocvec(&batch).unwrap();
        // The signed bytes end the encoding; make them non-canonical JSON.
        let last = bytes.len() - 1;
        assert_eq!(bytes[last], b'}');
        bytes[last] = b' ';
        assert!(postcard::from_bytes::<Batch>(&bytes).is_err());
    }

    #[test]
    fn an_oversized_batch_is_refused() {
        let messages = vec![genesis(); MAX_BATCH_MESSAGES + 1];
        assert_eq!(
            Batch::new(T0, messages),
            Err(BatchError::TooLarge {
                count: MAX_BATCH_MESSAGES + 1
            })
        );
    }

    #[test]
    fn replicas_derive_the_same_log_and_the_same_refusals() {
        // The same batches on two fresh spaces: the same entries, outcomes and
        // state hash, including a refusal (a registration replayed with the
        // same seq is a duplicate).
        let batches = [
            Batch::new(T0, vec![genesis(), registration(7, 1)]).unwrap(),
            Batch::new(T0 + 5, vec![registration(7, 1), registration(8, 1)]).unwrap(),
            Batch::new(T0 + 9, vec![]).unwrap(),
        ];
        let mut a = Space::new();
        let mut b = Space::new();
        let mut hashes = Vec::new();
        for batch in &batches {
            let (ea, oa) = apply_batch(&mut a, batch);
            let (eb, ob) = apply_batch(&mut b, batch);
            assert_eq!(ea, eb);
            assert_eq!(oa, ob);
            hashes.push(a.state_hash());
            assert_eq!(a.state_hash(), b.state_hash());
        }
        let (_, second) = apply_batch(&mut Space::new(), &batches[0]);
        assert_eq!(second.outcomes.len(), 2);
        let (_, dup) = {
            let mut s = Space::new();
            apply_batch(&mut s, &batches[0]);
            apply_batch(&mut s, &batches[1])
        };
        assert!(
            matches!(&dup.outcomes[0], Outcome::Refused(r) if r.kind == ErrorKind::Duplicate),
            "{dup:?}"
        );
        assert!(matches!(
            &dup.outcomes[1],
            Outcome::Accepted { index: 2, .. }
        ));
        assert_eq!(a.head().next_index, 3, "the refusal left no entry");
    }

    #[test]
    fn a_passed_deadline_ticks_before_the_batch_and_only_then() {
        let admin = Keypair::from_seed(&[3; 32]);
        let mut space = Space::new();
        apply_batch(&mut space, &Batch::new(T0, vec![genesis()]).unwrap());
        let proposer = Keypair::from_seed(&[9; 32]);
        let register = Verified::sign(
            MessageType::Registration,
            json!({"space": "s", "created_at": T0, "seq": 1, "name": "p", "vendor": "t",
                   "authorities": {"ops.*": "0.5"}}),
            &proposer,
        );
        let propose = Verified::sign(
            MessageType::Proposal,
            json!({"space": "s", "created_at": T0, "domain": "ops.deploy",
                   "action": {"kind": "k", "summary": "s", "payload": {}},
                   "confidence": "0.9", "stakes": "low", "deadline": T0 + 1_000}),
            &proposer,
        );
        let _ = admin;
        // A second agent, so that the electorate is not empty and the
        // proposal stays open until its deadline.
        let (entries, outcome) = apply_batch(
            &mut space,
            &Batch::new(T0 + 1, vec![register, registration(7, 1), propose]).unwrap(),
        );
        assert_eq!(entries.len(), 3);
        assert!(
            outcome
                .outcomes
                .iter()
                .all(|o| matches!(o, Outcome::Accepted { .. })),
            "{outcome:?}"
        );
        // Before the deadline an empty batch derives nothing.
        let (entries, _) = apply_batch(&mut space, &Batch::new(T0 + 999, vec![]).unwrap());
        assert!(entries.is_empty());
        assert_eq!(space.next_deadline(), Some(T0 + 1_000));
        // At the deadline it derives one tick, which closes the proposal.
        let (entries, _) = apply_batch(&mut space, &Batch::new(T0 + 1_000, vec![]).unwrap());
        assert_eq!(entries.len(), 1);
        assert!(matches!(entries[0].0.payload, synod_core::Payload::Tick));
        assert!(
            entries[0]
                .1
                .iter()
                .any(|e| matches!(e, Effect::ProposalClosed { .. }))
        );
        assert_eq!(space.next_deadline(), None);
    }
}
