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
/// Entry index → a snapshot of the state after that entry.
const SNAPSHOTS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("snapshots");

/// Name of the database file in the data directory.
pub const DB_FILE: &str = "synod.redb";
/// Snapshots kept; older ones are deleted when a new one is written.
pub const SNAPSHOTS_KEPT: usize = 2;
/// Most entries one read returns.
pub const MAX_READ_ENTRIES: usize = 10_000;
/// Version byte of the entry encoding.
const ENTRY_FORMAT: u8 = 2;

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

/// `[format][time][prev][hash][effects length][effects JSON][kind][signature]
/// [signed bytes]`; a tick has kind 0 and nothing after it. The signed bytes
/// are the message's canonical form, so nothing is re-serialized on the write
/// path, and an entry with its effects is one B-tree value.
///
/// Public so that the cluster's replicas (`synod-raft`) keep their derived
/// logs in exactly this format, inside their own database.
pub fn encode_entry(entry: &Entry, effects: &[Effect]) -> Vec<u8> {
    encode(entry, effects)
}

/// Decodes what [`encode_entry`] wrote for entry `index`, checking that the
/// content still hashes to the recorded entry hash.
pub fn decode_entry(index: LogIndex, bytes: &[u8]) -> Result<StoredEntry, StoreError> {
    decode(index, bytes)
}

fn encode(entry: &Entry, effects: &[Effect]) -> Vec<u8> {
    let effects = serde_json::to_vec(effects).expect("effects serialize");
    let mut out = Vec::with_capacity(512 + effects.len());
    out.push(ENTRY_FORMAT);
    out.extend_from_slice(&entry.time.to_be_bytes());
    out.extend_from_slice(&entry.prev.0);
    out.extend_from_slice(&entry.hash().0);
    out.extend_from_slice(&(effects.len() as u32).to_be_bytes());
    out.extend_from_slice(&effects);
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

fn decode(index: LogIndex, bytes: &[u8]) -> Result<StoredEntry, StoreError> {
    let corrupt = |why: &str| StoreError::Corrupt {
        index,
        why: why.to_string(),
    };
    const HEAD: usize = 1 + 8 + 32 + 32 + 4;
    if bytes.len() < HEAD + 1 || bytes[0] != ENTRY_FORMAT {
        return Err(corrupt("unknown format"));
    }
    let time = u64::from_be_bytes(bytes[1..9].try_into().expect("8 bytes"));
    let prev = Digest(bytes[9..41].try_into().expect("32 bytes"));
    let hash = Digest(bytes[41..73].try_into().expect("32 bytes"));
    let effects_len = u32::from_be_bytes(bytes[73..77].try_into().expect("4 bytes")) as usize;
    let rest = bytes
        .get(HEAD..)
        .filter(|r| r.len() > effects_len)
        .ok_or_else(|| corrupt("truncated"))?;
    let effects: Vec<Effect> = serde_json::from_slice(&rest[..effects_len])
        .map_err(|e| corrupt(&format!("effects: {e}")))?;
    let bytes = &rest[effects_len..];
    let payload = match bytes[0] {
        0 => Payload::Tick,
        1 if bytes.len() > 1 + 64 => {
            let signature: [u8; 64] = bytes[1..65].try_into().expect("64 bytes");
            let message = SignedMessage::from_signed_bytes(&bytes[65..], &signature)
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
    Ok(StoredEntry { entry, effects })
}

impl Store {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(DB_FILE);
        let db = Database::create(&path)?;
        let txn = db.begin_write()?;
        txn.open_table(ENTRIES)?;
        txn.open_table(SNAPSHOTS)?;
        txn.commit()?;
        Ok(Store { db, path })
    }

    /// Opens a store on another storage backend (tests use one that loses
    /// whatever was not synced, to play a power cut).
    pub fn with_backend(backend: impl redb::StorageBackend) -> Result<Store, StoreError> {
        let db = Database::builder().create_with_backend(backend)?;
        let txn = db.begin_write()?;
        txn.open_table(ENTRIES)?;
        txn.open_table(SNAPSHOTS)?;
        txn.commit()?;
        Ok(Store {
            db,
            path: PathBuf::new(),
        })
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
            let first = match entries.last()? {
                Some((k, _)) => k.value() + 1,
                None => 0,
            };
            for (expected, (entry, entry_effects)) in (first..).zip(batch) {
                assert_eq!(
                    entry.index, expected,
                    "the log is appended in order without gaps"
                );
                entries.insert(entry.index, encode(entry, entry_effects).as_slice())?;
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
        let mut out = Vec::new();
        for item in entries.range(from..)?.take(limit) {
            let (k, v) = item?;
            out.push(decode(k.value(), v.value())?);
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

    /// The stored snapshots, oldest first: the index each follows, and its
    /// bytes.
    pub fn snapshots(&self) -> Result<Vec<(LogIndex, Vec<u8>)>, StoreError> {
        let txn = self.db.begin_read()?;
        let snapshots = txn.open_table(SNAPSHOTS)?;
        snapshots
            .iter()?
            .map(|item| {
                item.map(|(k, v)| (k.value(), v.value().to_vec()))
                    .map_err(StoreError::from)
            })
            .collect()
    }

    /// Rebuilds the state: the newest snapshot that loads and agrees with the
    /// log, then every entry after it. Returns the state and how many entries
    /// were replayed.
    pub fn recover(&self) -> Result<(Space, u64), StoreError> {
        let mut space = Space::new();
        let mut from = 0;
        // A snapshot counts only if it decodes and its head is the recorded
        // hash of the entry it follows. Anything else (another build's
        // encoding, damage) is skipped, down to a full replay.
        for (index, bytes) in self.snapshots()?.into_iter().rev() {
            let Ok(restored) = Space::from_snapshot(&bytes) else {
                continue;
            };
            let head = restored.head();
            let recorded = self
                .read(index, 1)?
                .into_iter()
                .next()
                .filter(|s| s.entry.index == index)
                .map(|s| s.entry.hash());
            if head.next_index == index + 1 && recorded == Some(head.last_hash) {
                space = restored;
                from = index + 1;
                break;
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

    /// A disk that keeps only what was synced: `crash` returns what would be
    /// on it after a power cut.
    #[derive(Debug, Default, Clone)]
    struct PowerCutDisk(std::sync::Arc<std::sync::Mutex<(Vec<u8>, Vec<u8>)>>);

    impl PowerCutDisk {
        fn crash(&self) -> PowerCutDisk {
            let synced = self.0.lock().unwrap().1.clone();
            PowerCutDisk(std::sync::Arc::new(std::sync::Mutex::new((
                synced.clone(),
                synced,
            ))))
        }
    }

    impl redb::StorageBackend for PowerCutDisk {
        fn len(&self) -> Result<u64, std::io::Error> {
            Ok(self.0.lock().unwrap().0.len() as u64)
        }

        fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), std::io::Error> {
            let disk = self.0.lock().unwrap();
            let start = offset as usize;
            let bytes = disk
                .0
                .get(start..start + out.len())
                .ok_or_else(|| std::io::Error::other("read past the end"))?;
            out.copy_from_slice(bytes);
            Ok(())
        }

        fn set_len(&self, len: u64) -> Result<(), std::io::Error> {
            self.0.lock().unwrap().0.resize(len as usize, 0);
            Ok(())
        }

        fn sync_data(&self) -> Result<(), std::io::Error> {
            let mut disk = self.0.lock().unwrap();
            disk.1 = disk.0.clone();
            Ok(())
        }

        fn write(&self, offset: u64, data: &[u8]) -> Result<(), std::io::Error> {
            let mut disk = self.0.lock().unwrap();
            let start = offset as usize;
            if disk.0.len() < start + data.len() {
                disk.0.resize(start + data.len(), 0);
            }
            disk.0[start..start + data.len()].copy_from_slice(data);
            Ok(())
        }
    }

    #[test]
    fn an_appended_batch_survives_a_power_cut() {
        // SIGKILL leaves the page cache, so only a disk that forgets unsynced
        // writes shows that append really syncs before it returns.
        let disk = PowerCutDisk::default();
        let mut space = Space::new();
        let store = Store::with_backend(disk.clone()).unwrap();
        let mut batch = vec![genesis(&mut space)];
        batch.extend((0..3).map(|i| space.tick(2000 + i)));
        store.append(&batch).unwrap();
        // The power goes while the store is open: no clean shutdown.
        let after = Store::with_backend(disk.crash()).unwrap();
        let (recovered, replayed) = after.recover().unwrap();
        assert_eq!(replayed, 4);
        assert_eq!(recovered.state_hash(), space.state_hash());
    }

    #[test]
    fn the_power_cut_disk_forgets_unsynced_commits() {
        // The control for the test above: a commit without a sync is lost.
        let disk = PowerCutDisk::default();
        let mut space = Space::new();
        let store = Store::with_backend(disk.clone()).unwrap();
        store.append(&[genesis(&mut space)]).unwrap();
        let mut txn = store.db.begin_write().unwrap();
        txn.set_durability(Durability::None).unwrap();
        txn.open_table(ENTRIES)
            .unwrap()
            .insert(1, &b"unsynced"[..])
            .unwrap();
        txn.commit().unwrap();
        assert_eq!(store.last_index().unwrap(), Some(1));
        let after = Store::with_backend(disk.crash()).unwrap();
        assert_eq!(after.last_index().unwrap(), Some(0));
    }

    #[test]
    fn a_tampered_entry_is_reported_as_corrupt() {
        let dir = temp("corrupt");
        let store = Store::open(&dir).unwrap();
        let mut space = Space::new();
        let g = genesis(&mut space);
        let mut bad = encode(&g.0, &g.1);
        store.append(&[g]).unwrap();
        assert!(store.read(0, 1).is_ok());
        // Flip one byte of the stored message, behind the store's back.
        let last = bad.len() - 3;
        bad[last] ^= 1;
        let txn = store.db.begin_write().unwrap();
        txn.open_table(ENTRIES)
            .unwrap()
            .insert(0, bad.as_slice())
            .unwrap();
        txn.commit().unwrap();
        assert!(matches!(
            store.read(0, 1),
            Err(StoreError::Corrupt { index: 0, .. })
        ));
        assert!(store.recover().is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_snapshot_that_disagrees_with_the_log_is_skipped() {
        let dir = temp("bad-snapshot");
        let store = Store::open(&dir).unwrap();
        let mut space = Space::new();
        let mut batch = vec![genesis(&mut space)];
        batch.extend((0..4).map(|i| space.tick(2000 + i)));
        store.append(&batch).unwrap();
        // A snapshot claiming to follow entry 4 but holding another history.
        let mut other = Space::new();
        genesis(&mut other);
        for i in 0..4 {
            other.tick(5000 + i);
        }
        store.save_snapshot(4, &other.to_snapshot()).unwrap();
        store.save_snapshot(3, b"not a snapshot").unwrap();
        let (recovered, replayed) = store.recover().unwrap();
        assert_eq!(replayed, 5, "both bad snapshots are skipped: a full replay");
        assert_eq!(recovered.state_hash(), space.state_hash());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
