//! Log entries and the hash chain (`docs/PROTOCOL.md` §10).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::error::{ErrorKind, Rejection};
use crate::space::Effect;
use crate::wire::{Digest, SignedMessage, Verified};

/// Domain separation tag hashed in front of every entry.
pub const ENTRY_HASH_TAG: &[u8] = b"synod/entry/v1";
/// The `prev` of the first entry: 32 zero bytes.
pub const GENESIS_PREV: Digest = Digest([0; 32]);

/// Position in the log, from 0.
pub type LogIndex = u64;

/// What an entry carries.
// Nearly every entry is a message; boxing it to shrink the rare tick would
// cost an allocation per entry.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// A signed message from an agent, reviewer or admin.
    Message(Verified),
    /// Only advances log time, closing proposals whose deadline has passed.
    Tick,
}

/// One entry of a space's log. The sequencer that appends it assigns its
/// index and log time; its hash commits to the previous entry's hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Position, from 0.
    pub index: LogIndex,
    /// Log time in milliseconds since the Unix epoch; never decreases.
    pub time: u64,
    /// Hash of the previous entry; [`GENESIS_PREV`] for the first.
    pub prev: Digest,
    /// The content.
    pub payload: Payload,
}

impl Entry {
    /// `SHA-256(tag ‖ be64(index) ‖ be64(time) ‖ prev ‖ kind ‖ commitment)`,
    /// where kind is 0 for a tick (no commitment) and 1 for a message, whose
    /// commitment is `SHA-256(signed bytes ‖ 64-byte signature)`.
    pub fn hash(&self) -> Digest {
        let mut h = Sha256::new();
        h.update(ENTRY_HASH_TAG);
        h.update(self.index.to_be_bytes());
        h.update(self.time.to_be_bytes());
        h.update(self.prev.0);
        match &self.payload {
            Payload::Tick => h.update([0u8]),
            Payload::Message(m) => {
                h.update([1u8]);
                h.update(message_commitment(m).0);
            }
        }
        Digest(h.finalize().into())
    }
}

/// `SHA-256(signed bytes ‖ signature)`: what an entry commits to for a message.
pub fn message_commitment(message: &SignedMessage) -> Digest {
    let mut h = Sha256::new();
    h.update(message.signed_bytes());
    h.update(message.signature());
    Digest(h.finalize().into())
}

/// One line of a log export: an entry, its hash, and what applying it did.
/// `effects` and `rejected` are re-derived by `synod audit verify`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportLine {
    /// Entry index.
    pub index: LogIndex,
    /// Log time (ms).
    pub time: u64,
    /// Previous entry's hash.
    pub prev: Digest,
    /// This entry's hash.
    pub hash: Digest,
    /// The signed envelope, or `null` for a tick. Parsed strictly: a
    /// duplicate key makes the line unreadable.
    #[serde(default, deserialize_with = "crate::wire::strict_value")]
    pub message: Option<Value>,
    /// Effects of applying the entry, in order.
    #[serde(default)]
    pub effects: Vec<Effect>,
    /// Why the entry's message was refused, if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected: Option<Rejection>,
}

impl ExportLine {
    /// The export line of an applied entry.
    pub fn new(entry: &Entry, effects: Vec<Effect>, rejected: Option<Rejection>) -> ExportLine {
        ExportLine {
            index: entry.index,
            time: entry.time,
            prev: entry.prev,
            hash: entry.hash(),
            message: match &entry.payload {
                Payload::Tick => None,
                Payload::Message(m) => Some(m.to_value()),
            },
            effects,
            rejected,
        }
    }

    /// Rebuilds the entry, checking the message's signature.
    pub fn to_entry(&self) -> Result<Entry, Rejection> {
        let payload = match &self.message {
            None => Payload::Tick,
            Some(value) => {
                let message = SignedMessage::from_value(value.clone())?;
                Payload::Message(message.verify()?)
            }
        };
        Ok(Entry {
            index: self.index,
            time: self.time,
            prev: self.prev,
            payload,
        })
    }

    /// The line as compact JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("export lines serialize")
    }

    /// Parses one line.
    pub fn parse(line: &str) -> Result<ExportLine, Rejection> {
        serde_json::from_str(line)
            .map_err(|e| Rejection::new(ErrorKind::Malformed, format!("export line: {e}")))
    }
}
