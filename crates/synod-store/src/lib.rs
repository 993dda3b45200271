//! The durable log of one space, on redb.
//!
//! Entries are appended in batches: one write transaction per batch, committed
//! with redb's immediate durability (one fsync), so many entries share one
//! fsync (group commit). Each entry is stored with the effects applying it had,
//! which is what the event stream and the audit export serve. Snapshots of the
//! state let a restart replay only the entries after the latest one.
//!
//! Only the node's sequencer writes; readers open read transactions, which
//! redb isolates from the writer.

use std::path::{Path, PathBuf};

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use synod_core::log::{Entry, LogIndex, Payload};
use synod_core::space::Effect;
use synod_core::wire::{Digest, SignedMessage, Verified};
use synod_core::{Space, log::ExportLine};

/// Entry index → encoded entry.
const ENTRIES: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("entries");
/// Entry index → the effects of applying it, as JSON.
const EFFECTS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("effects");
/// Entry index → a snapshot of the state after that entry.
const SNAPSHOTS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("snapshots");
/// Small named values (the node's own settings).
const META: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("meta");

/// Name of the database file in the data directory.
pub const DB_FILE: &str = "synod.redb";
/// Snapshots kept; older ones are deleted when a new one is written.
pub const SNAPSHOTS_KEPT: usize = 2;
/// Most entries one read returns.
pub const MAX_READ_ENTRIES: usize = 10_000;
/// Version byte of the entry encoding.
const ENTRY_FORMAT: u8 = 1;

/// Why the store failed. Every variant is fatal for the node: the log cannot
/// be trusted to be written or read.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// redb reported an error.
    #[error("storage: {0}")]
    Db(String),
    /// An entry on disk does not decode.
    #[error("entry {index} on disk is corrupt: {why}")]
    Corrupt {
        /// The entry.
        index: LogIndex,
        /// What is wrong.
        why: String,
    },
    /// Replaying the log failed.
    #[error("replaying the log: {0}")]
    Replay(String),
    /// A filesystem error.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

macro_rules! db_err {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> StoreError {
                StoreError::Db(e.to_string())
            }
        }
    )*};
}

db_err!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError
);

/// One entry as read back, with the effects recorded when it was applied.
#[derive(Debug, Clone)]
pub struct StoredEntry {
    /// The entry.
    pub entry: Entry,
    /// Its effects.
    pub effects: Vec<Effect>,
}

impl StoredEntry {
    /// The entry as a line of the audit export.
    pub fn export_line(&self) -> ExportLine {
        ExportLine::new(&self.entry, self.effects.clone(), None)
    }
}

/// The durable log.
#[derive(Debug)]
pub struct Store {
    db: Database,
    path: PathBuf,
}

/// `[format][time][prev][hash][kind][signature][signed bytes]`; a tick has
/// kind 0 and nothing after it. The signed bytes are the message's canonical
/// form, so nothing is re-serialized on the write path.
fn encode(entry: &Entry) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    out.push(ENTRY_FORMAT);
    out.extend_from_slice(&entry.time.to_be_bytes());
    out.extend_from_slice(&entry.prev.0);
    out.extend_from_slice(&entry.hash().0);
    match &entry.payload {
        Payload::Tick => out.push(0),
        Payload::Message(m) => {
            out.push(1);
            out.extend_from_slice(m.signature());
            out.extend_from_slice(m.signed_bytes());
        }
    }
    out
}

fn decode(index: LogIndex, bytes: &[u8]) -> Result<Entry, StoreError> {
    let corrupt = |why: &str| StoreError::Corrupt {
        index,
        why: why.to_string(),
    };
    if bytes.len() < 1 + 8 + 32 + 32 + 1 || bytes[0] != ENTRY_FORMAT {
        return Err(corrupt("unknown format"));
    }
    let time = u64::from_be_bytes(bytes[1..9].try_into().expect("8 bytes"));
    let prev = Digest(bytes[9..41].try_into().expect("32 bytes"));
    let hash = Digest(bytes[41..73].try_into().expect("32 bytes"));
    let payload = match bytes[73] {
        0 => Payload::Tick,
        1 if bytes.len() > 74 + 64 => {
            let signature: [u8; 64] = bytes[74..138].try_into().expect("64 bytes");
            let message = SignedMessage::from_signed_bytes(&bytes[138..], &signature)
                .map_err(|e| corrupt(&e.to_string()))?;
            // Only verified messages are ever appended; the hash below checks
            // that these are the bytes that were.
            Payload::Message(Verified::from_trusted_storage(message))
        }
        _ => return Err(corrupt("unknown payload kind")),
    };
    let entry = Entry {
        index,
        time,
        prev,
        payload,
    };
    if entry.hash() != hash {
        return Err(corrupt("the content does not match its recorded hash"));
    }
    Ok(entry)
}

impl Store {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(DB_FILE);
        let db = Database::create(&path)?;
        let txn = db.begin_write()?;
        txn.open_table(ENTRIES)?;
        txn.open_table(EFFECTS)?;
        txn.open_table(SNAPSHOTS)?;
        txn.open_table(META)?;
        txn.commit()?;
        Ok(Store { db, path })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends a batch of consecutive entries and their effects in one durable
    /// transaction (one fsync). When this returns, every entry in the batch
    /// survives a crash.
    pub fn append(&self, batch: &[(Entry, Vec<Effect>)]) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        {
            let mut entries = txn.open_table(ENTRIES)?;
            let mut effects = txn.open_table(EFFECTS)?;
            let first = match entries.last()? {
                Some((k, _)) => k.value() + 1,
                None => 0,
            };
            for (expected, (entry, entry_effects)) in (first..).zip(batch) {
                assert_eq!(
                    entry.index, expected,
                    "the log is appended in order without gaps"
                );
                entries.insert(entry.index, encode(entry).as_slice())?;
                let json = serde_json::to_vec(entry_effects).expect("effects serialize");
                effects.insert(entry.index, json.as_slice())?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// Index of the last entry, if any.
    pub fn last_index(&self) -> Result<Option<LogIndex>, StoreError> {
        let txn = self.db.begin_read()?;
        let entries = txn.open_table(ENTRIES)?;
        Ok(entries.last()?.map(|(k, _)| k.value()))
    }

    /// Up to `limit` (at most [`MAX_READ_ENTRIES`]) entries from `from` on.
    pub fn read(&self, from: LogIndex, limit: usize) -> Result<Vec<StoredEntry>, StoreError> {
        let limit = limit.min(MAX_READ_ENTRIES);
        let txn = self.db.begin_read()?;
        let entries = txn.open_table(ENTRIES)?;
        let effects = txn.open_table(EFFECTS)?;
        let mut out = Vec::new();
        for item in entries.range(from..)?.take(limit) {
            let (k, v) = item?;
            let index = k.value();
            let entry = decode(index, v.value())?;
            let effects = match effects.get(index)? {
                Some(bytes) => {
                    serde_json::from_slice(bytes.value()).map_err(|e| StoreError::Corrupt {
                        index,
                        why: format!("effects: {e}"),
                    })?
                }
                None => Vec::new(),
            };
            out.push(StoredEntry { entry, effects });
        }
        Ok(out)
    }

    /// Stores a snapshot of the state after entry `index`, keeping the newest
    /// [`SNAPSHOTS_KEPT`].
    pub fn save_snapshot(&self, index: LogIndex, bytes: &[u8]) -> Result<(), StoreError> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        {
            let mut snapshots = txn.open_table(SNAPSHOTS)?;
            snapshots.insert(index, bytes)?;
            let keys: Vec<u64> = snapshots
                .iter()?
                .map(|item| item.map(|(k, _)| k.value()))
                .collect::<Result<_, _>>()?;
            for old in keys.iter().rev().skip(SNAPSHOTS_KEPT) {
                snapshots.remove(*old)?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// The newest snapshot: the index it follows and its bytes.
    pub fn latest_snapshot(&self) -> Result<Option<(LogIndex, Vec<u8>)>, StoreError> {
        let txn = self.db.begin_read()?;
        let snapshots = txn.open_table(SNAPSHOTS)?;
        Ok(snapshots
            .last()?
            .map(|(k, v)| (k.value(), v.value().to_vec())))
    }

    /// Rebuilds the state: the newest snapshot that loads, then every entry
    /// after it. Returns the state and how many entries were replayed.
    pub fn recover(&self) -> Result<(Space, u64), StoreError> {
        let mut space = Space::new();
        let mut from = 0;
        if let Some((index, bytes)) = self.latest_snapshot()? {
            match Space::from_snapshot(&bytes) {
                Ok(restored) if restored.head().next_index == index + 1 => {
                    space = restored;
                    from = index + 1;
                }
                // A snapshot from another build's encoding: replay from the start.
                _ => {}
            }
        }
        let mut replayed = 0;
        loop {
            let batch = self.read(from, MAX_READ_ENTRIES)?;
            if batch.is_empty() {
                break;
            }
            for stored in &batch {
                let applied = space
                    .apply(&stored.entry)
                    .map_err(|e| StoreError::Replay(e.to_string()))?;
                if let Some(r) = applied.rejected {
                    return Err(StoreError::Replay(format!(
                        "entry {} was refused on replay: {r}",
                        stored.entry.index
                    )));
                }
                replayed += 1;
            }
            from = batch.last().expect("non-empty").entry.index + 1;
        }
        Ok((space, replayed))
    }

    /// A named value.
    pub fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(META)?;
        Ok(meta.get(key)?.map(|v| v.value().to_vec()))
    }

    /// Sets a named value, durably.
    pub fn set_meta(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        {
            let mut meta = txn.open_table(META)?;
            meta.insert(key, value)?;
        }
        txn.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use synod_core::Keypair;
    use synod_core::wire::MessageType;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("synod-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn genesis(space: &mut Space) -> (Entry, Vec<Effect>) {
        let admin = Keypair::from_seed(&[3; 32]);
        let message = Verified::sign(
            MessageType::Configuration,
            json!({"space": "s", "created_at": 1000, "seq": 0, "change": {"set": {"mode": "open"}}}),
            &admin,
        );
        space.append(message, 1000).unwrap()
    }

    #[test]
    fn appends_reads_and_recovers_with_snapshots() {
        let dir = temp("recover");
        let mut space = Space::new();
        {
            let store = Store::open(&dir).unwrap();
            let first = genesis(&mut space);
            let mut batch = vec![first];
            for i in 0..5 {
                batch.push(space.tick(2000 + i));
            }
            store.append(&batch).unwrap();
            assert_eq!(store.last_index().unwrap(), Some(5));
            store.save_snapshot(5, &space.to_snapshot()).unwrap();
            let more: Vec<_> = (0..3).map(|i| space.tick(3000 + i)).collect();
            store.append(&more).unwrap();
            let read = store.read(4, 100).unwrap();
            assert_eq!(read.len(), 5);
            assert_eq!(read[0].entry.index, 4);
        }
        let store = Store::open(&dir).unwrap();
        let (recovered, replayed) = store.recover().unwrap();
        assert_eq!(
            replayed, 3,
            "only the entries after the snapshot are replayed"
        );
        assert_eq!(recovered.state_hash(), space.state_hash());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_tampered_entry_is_reported_as_corrupt() {
        let dir = temp("corrupt");
        let store = Store::open(&dir).unwrap();
        let mut space = Space::new();
        let g = genesis(&mut space);
        let mut bad = encode(&g.0);
        let last = bad.len() - 3;
        bad[last] ^= 1;
        assert!(decode(0, &bad).is_err());
        store.append(&[g]).unwrap();
        assert!(store.read(0, 1).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
