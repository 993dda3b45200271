//! `synod audit verify`: re-derives a space from its exported log
//! (`docs/PROTOCOL.md` §10.3).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::log::{ExportLine, LogIndex, Payload};
use crate::space::{Effect, Space, Status};
use crate::wire::Digest;

/// Why an export does not verify. Every variant names the entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditError {
    /// A line is not a valid export line.
    #[error("line {line}: {message}")]
    Unreadable {
        /// 1-based line number.
        line: usize,
        /// What was wrong.
        message: String,
    },
    /// The export does not start at entry 0, so it cannot be re-derived.
    #[error("the export starts at entry {0}; re-deriving needs the log from entry 0")]
    NotFromGenesis(LogIndex),
    /// An entry's signature does not verify.
    #[error("entry {index}: {message}")]
    BadSignature {
        /// The entry.
        index: LogIndex,
        /// What was wrong.
        message: String,
    },
    /// An entry's recorded hash is not the hash of its content.
    #[error("entry {index}: recorded hash {recorded} but the content hashes to {computed}")]
    HashMismatch {
        /// The entry.
        index: LogIndex,
        /// The hash in the export.
        recorded: Digest,
        /// The hash of the entry's content.
        computed: Digest,
    },
    /// An entry does not follow the previous one.
    #[error("entry {index}: {message}")]
    Chain {
        /// The entry.
        index: LogIndex,
        /// What was wrong.
        message: String,
    },
    /// Re-applying the entry gives other effects than the export records.
    #[error("entry {index}: re-derived {derived} but the export records {recorded}")]
    EffectsMismatch {
        /// The entry.
        index: LogIndex,
        /// The re-derived effects, as JSON.
        derived: String,
        /// The recorded effects, as JSON.
        recorded: String,
    },
}

/// What a verified export contained.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AuditSummary {
    /// The space id.
    pub space: String,
    /// Entries verified.
    pub entries: u64,
    /// Of which signed messages.
    pub messages: u64,
    /// Messages the rules refused (each refused identically on re-derivation).
    pub refused: u64,
    /// Proposals by final status.
    pub proposals: BTreeMap<&'static str, u64>,
    /// Trust updates re-derived.
    pub trust_updates: u64,
    /// Hash of the last entry.
    pub head: Digest,
    /// Hash of the re-derived state.
    pub state_hash: Digest,
}

/// Verifies an export given line by line; blank lines are skipped.
pub fn verify<'a>(lines: impl IntoIterator<Item = &'a str>) -> Result<AuditSummary, AuditError> {
    let mut space = Space::new();
    let mut summary = AuditSummary::default();
    for (n, line) in lines.into_iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let parsed = ExportLine::parse(line).map_err(|e| AuditError::Unreadable {
            line: n + 1,
            message: e.message,
        })?;
        let index = parsed.index;
        if summary.entries == 0 && index != 0 {
            return Err(AuditError::NotFromGenesis(index));
        }
        let entry = parsed.to_entry().map_err(|e| match e.kind {
            crate::ErrorKind::BadSignature => AuditError::BadSignature {
                index,
                message: e.to_string(),
            },
            _ => AuditError::Unreadable {
                line: n + 1,
                message: format!("entry {index}: {e}"),
            },
        })?;
        let computed = entry.hash();
        if computed != parsed.hash {
            return Err(AuditError::HashMismatch {
                index,
                recorded: parsed.hash,
                computed,
            });
        }
        let applied = space.apply(&entry).map_err(|e| AuditError::Chain {
            index,
            message: e.to_string(),
        })?;
        let derived_refusal = applied.rejected.as_ref().map(|r| r.kind);
        let recorded_refusal = parsed.rejected.as_ref().map(|r| r.kind);
        if applied.effects != parsed.effects || derived_refusal != recorded_refusal {
            let show = |effects: &[Effect], refusal: Option<crate::ErrorKind>| {
                let mut text = serde_json::to_string(effects).expect("effects serialize");
                if let Some(kind) = refusal {
                    text.push_str(&format!(" (refused: {kind})"));
                }
                text
            };
            return Err(AuditError::EffectsMismatch {
                index,
                derived: show(&applied.effects, derived_refusal),
                recorded: show(&parsed.effects, recorded_refusal),
            });
        }
        summary.entries += 1;
        if matches!(entry.payload, Payload::Message(_)) {
            summary.messages += 1;
        }
        summary.refused += u64::from(applied.rejected.is_some());
        summary.trust_updates += applied
            .effects
            .iter()
            .filter(|e| matches!(e, Effect::TrustUpdated { .. }))
            .count() as u64;
    }
    summary.space = space.id().to_string();
    for status in Status::ALL {
        let count = space
            .proposals()
            .values()
            .filter(|p| p.status == status)
            .count() as u64;
        if count > 0 {
            summary.proposals.insert(status.as_str(), count);
        }
    }
    summary.head = space.head().last_hash;
    summary.state_hash = space.state_hash();
    Ok(summary)
}
