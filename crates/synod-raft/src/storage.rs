//! A replica's durable state, in one redb database: the Raft log and vote
//! ([`LogStore`]) and the applied state machine with its derived synod log and
//! its snapshot ([`StateMachine`]).
//!
//! Every write is one redb transaction committed with immediate durability
//! (an fsync) before it is acknowledged to openraft: a vote is on disk before
//! the node answers the candidate, and appended entries are on disk before
//! the node tells the leader it holds them, which is what makes a Raft commit
//! (a majority holding an entry) survive crashes.
//!
//! The state machine is durable too: applying a run of committed entries
//! writes the synod entries they derive and the last-applied Raft log id in
//! one transaction, so after a restart the replica resumes exactly where its
//! disk says it stopped, never re-applies an entry and never loses one.

use std::io;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::{Arc, RwLock};

use futures_util::{Stream, TryStreamExt};
use openraft::entry::RaftEntry;
use openraft::storage::{EntryResponder, IOFlushed, RaftLogStorage, RaftStateMachine};
use openraft::type_config::alias::{
    EntryOf, LogIdOf, SnapshotMetaOf, SnapshotOf, StoredMembershipOf, VoteOf,
};
use openraft::{EntryPayload, LogState, RaftLogReader, RaftSnapshotBuilder};
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use synod_core::log::LogIndex;
use synod_core::space::Effect;
use synod_core::wire::Digest;
use synod_core::{Entry, Space};
use synod_store::StoredEntry;

use crate::TypeConfig;
use crate::payload::{BatchOutcome, apply_batch};

/// Name of the database file in a replica's data directory.
pub const DB_FILE: &str = "raft.redb";
/// Most Raft entries one read of the log returns; openraft asks in ranges
/// bounded by its own `max_payload_entries`, so this only guards a runaway
/// request.
pub const MAX_READ_ENTRIES: usize = 10_000;

/// Raft log index → postcard of the openraft entry.
const LOG: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("raft_log");
/// Small records of the log store: the vote and the last purged log id.
const LOG_META: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("raft_meta");
/// Synod log index → the entry in `synod_store`'s encoding.
const SYNOD: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("synod_log");
/// Small records of the state machine: last applied, membership, snapshot.
const SM_META: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("sm_meta");

const VOTE: &str = "vote";
const LAST_PURGED: &str = "last_purged";
const APPLIED: &str = "applied";
const SNAPSHOT: &str = "snapshot";
const SYNOD_START: &str = "synod_start";

/// Why a replica's database could not be opened or read back.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// redb refused to open or create the database.
    #[error("storage: {0}")]
    Db(String),
    /// A record on disk does not decode, or the synod log does not replay.
    #[error("the replica's state on disk is corrupt: {0}")]
    Corrupt(String),
    /// A filesystem error.
    #[error("{0}")]
    Io(#[from] io::Error),
}

fn io_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

fn corrupt(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_allocvec(value).expect("raft records serialize")
}

fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> io::Result<T> {
    postcard::from_bytes(bytes).map_err(corrupt)
}

/// One replica's database: a redb file holding everything the replica must
/// not forget. Cloning shares the database.
#[derive(Debug, Clone)]
pub struct ReplicaDb {
    db: Arc<Database>,
}

impl ReplicaDb {
    /// Opens (or creates) the database in `dir`.
    pub fn open(dir: &Path) -> Result<ReplicaDb, OpenError> {
        std::fs::create_dir_all(dir)?;
        let db = Database::create(dir.join(DB_FILE)).map_err(|e| OpenError::Db(e.to_string()))?;
        ReplicaDb::init(db)
    }

    /// Opens a database on another storage backend. The simulation uses one
    /// that forgets every write not yet synced when its node crashes.
    pub fn with_backend(backend: impl redb::StorageBackend) -> Result<ReplicaDb, OpenError> {
        let db = Database::builder()
            .create_with_backend(backend)
            .map_err(|e| OpenError::Db(e.to_string()))?;
        ReplicaDb::init(db)
    }

    fn init(db: Database) -> Result<ReplicaDb, OpenError> {
        let db_err = |e: &dyn std::fmt::Display| OpenError::Db(e.to_string());
        let txn = db.begin_write().map_err(|e| db_err(&e))?;
        txn.open_table(LOG).map_err(|e| db_err(&e))?;
        txn.open_table(LOG_META).map_err(|e| db_err(&e))?;
        txn.open_table(SYNOD).map_err(|e| db_err(&e))?;
        txn.open_table(SM_META).map_err(|e| db_err(&e))?;
        txn.commit().map_err(|e| db_err(&e))?;
        Ok(ReplicaDb { db: Arc::new(db) })
    }

    /// The log store half, to hand to openraft.
    pub fn log_store(&self) -> LogStore {
        LogStore {
            db: self.db.clone(),
            recent: Arc::new(std::sync::Mutex::new(Recent::default())),
        }
    }

    /// Loads the state machine half: the newest snapshot, then every synod
    /// entry after it, replayed through the core.
    pub fn state_machine(&self) -> Result<StateMachine, OpenError> {
        StateMachine::load(self.db.clone()).map_err(|e| OpenError::Corrupt(e.to_string()))
    }

    /// The Raft log's entries as this replica durably holds them, by index:
    /// each entry's term and what it carries (see [`entry_digest`]). Entries
    /// purged after a snapshot are absent. For checks and diagnostics.
    pub fn durable_log(&self) -> io::Result<Vec<(u64, u64, Digest)>> {
        let txn = self.db.begin_read().map_err(io_err)?;
        let table = txn.open_table(LOG).map_err(io_err)?;
        let mut out = Vec::new();
        for item in table.iter().map_err(io_err)? {
            let (k, v) = item.map_err(io_err)?;
            let entry: EntryOf<TypeConfig> = decode(v.value())?;
            out.push((k.value(), entry.log_id.leader_id.term, entry_digest(&entry)));
        }
        Ok(out)
    }

    /// The last applied Raft log index as recorded on disk.
    pub fn durable_applied(&self) -> io::Result<Option<u64>> {
        let txn = self.db.begin_read().map_err(io_err)?;
        let table = txn.open_table(SM_META).map_err(io_err)?;
        let applied: Option<Applied> = match table.get(APPLIED).map_err(io_err)? {
            Some(v) => Some(decode(v.value())?),
            None => None,
        };
        Ok(applied.and_then(|a| a.log_id).map(|l| l.index))
    }

    /// The synod entries this replica holds, from `from` on, at most `limit`
    /// (at most [`MAX_READ_ENTRIES`]).
    pub fn synod_entries(&self, from: LogIndex, limit: usize) -> io::Result<Vec<Entry>> {
        read_synod(&self.db, from, limit)
    }

    /// The synod entries this replica holds from `from` on, with the effects
    /// each had, at most `limit` (at most [`MAX_READ_ENTRIES`]): what the
    /// event stream and the audit export read.
    pub fn synod_log(&self, from: LogIndex, limit: usize) -> io::Result<Vec<StoredEntry>> {
        read_stored(&self.db, from, limit)
    }
}

fn read_synod(db: &Database, from: LogIndex, limit: usize) -> io::Result<Vec<Entry>> {
    Ok(read_stored(db, from, limit)?
        .into_iter()
        .map(|s| s.entry)
        .collect())
}

/// Reads stored synod entries from `from` on. Refuses (`WouldBlock`) a read
/// that starts inside a gap left by a snapshot install: the entries after the
/// gap alone are not a log, and a reader given them would see one that is
/// not a prefix of any other replica's.
fn read_stored(db: &Database, from: LogIndex, limit: usize) -> io::Result<Vec<StoredEntry>> {
    let txn = db.begin_read().map_err(io_err)?;
    let meta = txn.open_table(SM_META).map_err(io_err)?;
    if let Some(v) = meta.get(SYNOD_START).map_err(io_err)? {
        let anchor: Anchor = decode(v.value())?;
        if from < anchor.next_index {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!(
                    "this replica's log before index {} is still being fetched from a peer",
                    anchor.next_index
                ),
            ));
        }
    }
    let table = txn.open_table(SYNOD).map_err(io_err)?;
    let mut out = Vec::new();
    for item in table
        .range(from..)
        .map_err(io_err)?
        .take(limit.min(MAX_READ_ENTRIES))
    {
        let (k, v) = item.map_err(io_err)?;
        out.push(synod_store::decode_entry(k.value(), v.value()).map_err(corrupt)?);
    }
    Ok(out)
}

/// What a Raft entry carries, as a digest: the batch's digest for a normal
/// entry, and fixed tags for the entries openraft writes itself. Two replicas
/// hold the same entry at an index exactly when term and digest agree.
pub fn entry_digest(entry: &EntryOf<TypeConfig>) -> Digest {
    match &entry.payload {
        EntryPayload::Blank => Digest::of(b"synod-raft/blank"),
        EntryPayload::Normal(batch) => batch.digest(),
        EntryPayload::Membership(m) => Digest::of(&encode(&m)),
    }
}

/// Most Raft entries the log store keeps in memory after appending them.
pub const MAX_CACHED_ENTRIES: usize = 4_096;
/// Most bytes of messages those entries may hold.
pub const MAX_CACHED_BYTES: usize = 64 * 1024 * 1024;

/// The last entries appended, as they were appended: a leader's replication
/// streams read each entry back once per follower, and decoding it from
/// disk means parsing every message again. Always a contiguous run that
/// agrees with the database (appends add after their commit; truncations
/// and purges remove first).
#[derive(Debug, Default)]
struct Recent {
    entries: std::collections::BTreeMap<u64, EntryOf<TypeConfig>>,
    bytes: usize,
}

fn entry_bytes(entry: &EntryOf<TypeConfig>) -> usize {
    match &entry.payload {
        EntryPayload::Normal(batch) => batch.bytes(),
        _ => 0,
    }
}

impl Recent {
    fn remove(&mut self, range: impl RangeBounds<u64>) {
        let doomed: Vec<u64> = self.entries.range(range).map(|(k, _)| *k).collect();
        for k in doomed {
            if let Some(e) = self.entries.remove(&k) {
                self.bytes -= entry_bytes(&e);
            }
        }
    }

    fn add(&mut self, entry: EntryOf<TypeConfig>) {
        if self
            .entries
            .last_key_value()
            .is_some_and(|(k, _)| *k + 1 != entry.index())
        {
            // Not contiguous (cannot happen after a successful append, but
            // the cache must never have holes): start over.
            self.entries.clear();
            self.bytes = 0;
        }
        self.bytes += entry_bytes(&entry);
        self.entries.insert(entry.index(), entry);
        while self.entries.len() > MAX_CACHED_ENTRIES || self.bytes > MAX_CACHED_BYTES {
            match self.entries.pop_first() {
                Some((_, e)) => self.bytes -= entry_bytes(&e),
                None => break,
            }
        }
    }
}

/// The Raft log and the vote. Cloning shares the database and the cache of
/// recent entries; openraft uses a clone as the log reader of each
/// replication stream.
#[derive(Debug, Clone)]
pub struct LogStore {
    db: Arc<Database>,
    recent: Arc<std::sync::Mutex<Recent>>,
}

impl LogStore {
    fn recent(&self) -> std::sync::MutexGuard<'_, Recent> {
        self.recent.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn meta<T: for<'a> Deserialize<'a>>(&self, key: &str) -> io::Result<Option<T>> {
        let txn = self.db.begin_read().map_err(io_err)?;
        let table = txn.open_table(LOG_META).map_err(io_err)?;
        match table.get(key).map_err(io_err)? {
            Some(v) => Ok(Some(decode(v.value())?)),
            None => Ok(None),
        }
    }

    /// Runs `f` in one write transaction committed durably (one fsync).
    fn write(&self, f: impl FnOnce(&redb::WriteTransaction) -> io::Result<()>) -> io::Result<()> {
        let mut txn = self.db.begin_write().map_err(io_err)?;
        txn.set_durability(Durability::Immediate).map_err(io_err)?;
        f(&txn)?;
        txn.commit().map_err(io_err)
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + std::fmt::Debug + Send>(
        &mut self,
        range: RB,
    ) -> io::Result<Vec<EntryOf<TypeConfig>>> {
        let txn = self.db.begin_read().map_err(io_err)?;
        let table = txn.open_table(LOG).map_err(io_err)?;
        let start = match range.start_bound() {
            Bound::Included(&s) => s,
            Bound::Excluded(&s) => s + 1,
            Bound::Unbounded => 0,
        };
        {
            let recent = self.recent();
            if recent
                .entries
                .first_key_value()
                .is_some_and(|(first, _)| *first <= start)
            {
                return Ok(recent
                    .entries
                    .range(start..)
                    .take_while(|(k, _)| range.contains(k))
                    .take(MAX_READ_ENTRIES)
                    .map(|(_, e)| e.clone())
                    .collect());
            }
        }
        let mut out = Vec::new();
        for item in table.range(start..).map_err(io_err)? {
            let (k, v) = item.map_err(io_err)?;
            if !range.contains(&k.value()) || out.len() >= MAX_READ_ENTRIES {
                break;
            }
            out.push(decode(v.value())?);
        }
        Ok(out)
    }

    async fn read_vote(&mut self) -> io::Result<Option<VoteOf<TypeConfig>>> {
        self.meta(VOTE)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> io::Result<LogState<TypeConfig>> {
        let last_purged_log_id: Option<LogIdOf<TypeConfig>> = self.meta(LAST_PURGED)?;
        let txn = self.db.begin_read().map_err(io_err)?;
        let table = txn.open_table(LOG).map_err(io_err)?;
        let last = match table.last().map_err(io_err)? {
            Some((_, v)) => Some(decode::<EntryOf<TypeConfig>>(v.value())?.log_id),
            None => None,
        };
        Ok(LogState {
            last_log_id: last.or(last_purged_log_id),
            last_purged_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> LogStore {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &VoteOf<TypeConfig>) -> io::Result<()> {
        self.write(|txn| {
            let mut meta = txn.open_table(LOG_META).map_err(io_err)?;
            meta.insert(VOTE, encode(vote).as_slice()).map_err(io_err)?;
            Ok(())
        })
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<TypeConfig>) -> io::Result<()>
    where
        I: IntoIterator<Item = EntryOf<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<EntryOf<TypeConfig>> = entries.into_iter().collect();
        let written = self.write(|txn| {
            let mut log = txn.open_table(LOG).map_err(io_err)?;
            let mut expected = log.last().map_err(io_err)?.map(|(k, _)| k.value() + 1);
            for entry in &entries {
                let index = entry.index();
                // No holes: each entry follows the last one held (openraft
                // truncates a conflicting tail before appending over it).
                if let Some(next) = expected
                    && index != next
                {
                    return Err(io_err(format!(
                        "raft log append at {index} does not follow {}",
                        next - 1
                    )));
                }
                log.insert(index, encode(entry).as_slice())
                    .map_err(io_err)?;
                expected = Some(index + 1);
            }
            Ok(())
        });
        // The commit above is durable (fsync) before openraft hears of it.
        match written {
            Ok(()) => {
                let mut recent = self.recent();
                for entry in entries {
                    recent.add(entry);
                }
                drop(recent);
                callback.io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.io_completed(Err(io::Error::new(e.kind(), e.to_string())));
                Err(e)
            }
        }
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogIdOf<TypeConfig>>) -> io::Result<()> {
        let from = last_log_id.map(|l| l.index + 1).unwrap_or(0);
        self.recent().remove(from..);
        self.write(|txn| {
            let mut log = txn.open_table(LOG).map_err(io_err)?;
            log.retain_in(from.., |_, _| false).map_err(io_err)?;
            Ok(())
        })
    }

    async fn purge(&mut self, log_id: LogIdOf<TypeConfig>) -> io::Result<()> {
        self.recent().remove(..=log_id.index);
        self.write(|txn| {
            let mut meta = txn.open_table(LOG_META).map_err(io_err)?;
            meta.insert(LAST_PURGED, encode(&log_id).as_slice())
                .map_err(io_err)?;
            let mut log = txn.open_table(LOG).map_err(io_err)?;
            log.retain_in(..=log_id.index, |_, _| false)
                .map_err(io_err)?;
            Ok(())
        })
    }
}

/// The last applied Raft log id and the membership in force there, stored
/// together in one record.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Applied {
    log_id: Option<LogIdOf<TypeConfig>>,
    membership: StoredMembershipOf<TypeConfig>,
}

/// A snapshot as stored: the Raft position it covers and the space's own
/// snapshot (`Space::to_snapshot`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredSnapshot {
    applied: Applied,
    space: Vec<u8>,
}

impl StoredSnapshot {
    fn into_openraft(self) -> SnapshotOf<TypeConfig, Vec<u8>> {
        SnapshotOf::<TypeConfig, Vec<u8>> {
            meta: SnapshotMetaOf::<TypeConfig> {
                last_log_id: self.applied.log_id,
                last_membership: self.applied.membership,
            },
            snapshot: self.space,
        }
    }
}

/// What applying one Raft entry left behind, handed to an
/// [`ApplyObserver`]. The simulation's checkers compare these across
/// replicas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedRecord {
    /// Index of the Raft entry.
    pub index: u64,
    /// Its term.
    pub term: u64,
    /// What it carried ([`entry_digest`]).
    pub digest: Digest,
    /// The synod entries it derived: their indexes and hashes.
    pub synod: Vec<(LogIndex, Digest)>,
    /// The space's state hash right after it.
    pub state_hash: Digest,
}

/// Told of every applied Raft entry. Computing a state hash costs a full
/// encoding of the state, so only a replica with an observer does it.
pub trait ApplyObserver: Send + Sync + std::fmt::Debug + 'static {
    /// Called in log order, after the entry's effects are durable.
    fn applied(&self, record: AppliedRecord);
    /// Called after a snapshot replaced the state: every index up to and
    /// including `index` is now covered without having been applied here.
    fn installed(&self, index: u64, state_hash: Digest);
}

/// Told of what the state machine did, so that a node can answer, publish
/// events and update its view. Unlike an [`ApplyObserver`] it computes
/// nothing extra.
pub trait CommitListener: Send + Sync + std::fmt::Debug + 'static {
    /// A run of committed Raft entries ending at Raft index `raft_index` was
    /// applied and is durable; `derived` are the synod entries it made, with
    /// their effects, in log order, and `next_index` the synod log's next
    /// index. Called in log order, after the state's lock is released and
    /// before openraft answers the writes of the run.
    fn committed(&self, raft_index: u64, derived: Vec<(Entry, Vec<Effect>)>, next_index: LogIndex);
    /// A snapshot from the leader replaced the state; the synod log's next
    /// index is now `next_index`.
    fn installed(&self, raft_index: u64, next_index: LogIndex);
}

#[derive(Debug)]
struct SmState {
    space: Space,
    applied: Applied,
    /// Synod entries replayed on top of the snapshot when the state loaded.
    replayed: u64,
}

/// The replicated state machine: the space, applied from committed Raft
/// entries. Cloning shares it; openraft drives one clone, readers and the
/// snapshot builder hold others.
#[derive(Debug, Clone)]
pub struct StateMachine {
    db: Arc<Database>,
    state: Arc<RwLock<SmState>>,
    observer: Option<Arc<dyn ApplyObserver>>,
    listener: Option<Arc<dyn CommitListener>>,
}

/// Reads the state machine back from disk: the stored snapshot, then every
/// synod entry after it replayed through the core, as `synod_store` recovers.
fn load_state(db: &Database) -> io::Result<SmState> {
    let txn = db.begin_read().map_err(io_err)?;
    let meta = txn.open_table(SM_META).map_err(io_err)?;
    let applied: Applied = match meta.get(APPLIED).map_err(io_err)? {
        Some(v) => decode(v.value())?,
        None => Applied::default(),
    };
    let mut space = match meta.get(SNAPSHOT).map_err(io_err)? {
        Some(v) => {
            let stored: StoredSnapshot = decode(v.value())?;
            Space::from_snapshot(&stored.space).map_err(corrupt)?
        }
        None => Space::new(),
    };
    drop(meta);
    drop(txn);
    let from = space.head().next_index;
    // Replay the synod log after the snapshot, as `synod_store` recovers.
    loop {
        let batch = read_synod(db, space.head().next_index, MAX_READ_ENTRIES)?;
        if batch.is_empty() {
            break;
        }
        for entry in &batch {
            let applied = space.apply(entry).map_err(corrupt)?;
            if let Some(r) = applied.rejected {
                return Err(corrupt(format!(
                    "synod entry {} was refused on replay: {r}",
                    entry.index
                )));
            }
        }
    }
    let replayed = space.head().next_index - from;
    Ok(SmState {
        space,
        applied,
        replayed,
    })
}

impl StateMachine {
    fn load(db: Arc<Database>) -> io::Result<StateMachine> {
        let state = load_state(&db)?;
        Ok(StateMachine {
            db,
            state: Arc::new(RwLock::new(state)),
            observer: None,
            listener: None,
        })
    }

    /// Reports every applied entry to `observer` from now on.
    pub fn with_observer(mut self, observer: Arc<dyn ApplyObserver>) -> StateMachine {
        self.observer = Some(observer);
        self
    }

    /// Tells `listener` of every applied run and installed snapshot from now
    /// on.
    pub fn with_listener(mut self, listener: Arc<dyn CommitListener>) -> StateMachine {
        self.listener = Some(listener);
        self
    }

    /// Reads the space. The closure runs under the state's read lock; keep it
    /// short, since applying waits for it.
    pub fn read<T>(&self, f: impl FnOnce(&Space) -> T) -> T {
        f(&self.state.read().unwrap_or_else(|p| p.into_inner()).space)
    }

    /// Synod entries replayed after the stored snapshot when the state was
    /// loaded (what a restart cost).
    pub fn replayed_at_load(&self) -> u64 {
        self.state
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .replayed
    }

    /// The last applied Raft log index, if any.
    pub fn applied_index(&self) -> Option<u64> {
        self.state
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .applied
            .log_id
            .as_ref()
            .map(|l| l.index)
    }

    fn stored_snapshot(&self) -> io::Result<Option<StoredSnapshot>> {
        let txn = self.db.begin_read().map_err(io_err)?;
        let meta = txn.open_table(SM_META).map_err(io_err)?;
        match meta.get(SNAPSHOT).map_err(io_err)? {
            Some(v) => Ok(Some(decode(v.value())?)),
            None => Ok(None),
        }
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    type SnapshotData = Vec<u8>;

    /// Encodes the space and the Raft position it reflects, under one read
    /// lock so the two agree, and keeps it as the current snapshot.
    async fn build_snapshot(&mut self) -> io::Result<SnapshotOf<TypeConfig, Vec<u8>>> {
        let stored = {
            let state = self.state.read().unwrap_or_else(|p| p.into_inner());
            StoredSnapshot {
                applied: state.applied.clone(),
                space: state.space.to_snapshot(),
            }
        };
        let mut txn = self.db.begin_write().map_err(io_err)?;
        txn.set_durability(Durability::Immediate).map_err(io_err)?;
        {
            let mut meta = txn.open_table(SM_META).map_err(io_err)?;
            meta.insert(SNAPSHOT, encode(&stored).as_slice())
                .map_err(io_err)?;
        }
        txn.commit().map_err(io_err)?;
        Ok(stored.into_openraft())
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotData = Vec<u8>;
    type SnapshotBuilder = StateMachine;

    async fn applied_state(
        &mut self,
    ) -> io::Result<(Option<LogIdOf<TypeConfig>>, StoredMembershipOf<TypeConfig>)> {
        let state = self.state.read().unwrap_or_else(|p| p.into_inner());
        Ok((state.applied.log_id, state.applied.membership.clone()))
    }

    /// Applies a run of committed entries: derives their synod entries in
    /// memory, writes those and the new last-applied id in one durable
    /// transaction, then answers the clients waiting on them.
    async fn apply<Strm>(&mut self, entries: Strm) -> io::Result<()>
    where
        Strm: Stream<Item = io::Result<EntryResponder<TypeConfig>>> + Unpin + Send,
    {
        let entries: Vec<EntryResponder<TypeConfig>> = entries.try_collect().await?;
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        let mut derived = Vec::new();
        let mut answers = Vec::with_capacity(entries.len());
        let mut records = Vec::new();
        for (entry, responder) in entries {
            let first_synod = derived.len();
            let outcome = match &entry.payload {
                EntryPayload::Blank => BatchOutcome::default(),
                EntryPayload::Normal(batch) => {
                    let (new, outcome) = apply_batch(&mut state.space, batch);
                    derived.extend(new);
                    outcome
                }
                EntryPayload::Membership(m) => {
                    state.applied.membership =
                        StoredMembershipOf::<TypeConfig>::new(Some(entry.log_id), m.clone());
                    BatchOutcome::default()
                }
            };
            state.applied.log_id = Some(entry.log_id);
            if self.observer.is_some() {
                records.push(AppliedRecord {
                    index: entry.log_id.index,
                    term: entry.log_id.leader_id.term,
                    digest: entry_digest(&entry),
                    synod: derived[first_synod..]
                        .iter()
                        .map(|(e, _): &(Entry, _)| (e.index, e.hash()))
                        .collect(),
                    state_hash: state.space.state_hash(),
                });
            }
            answers.push((responder, outcome));
        }
        let written = (|| -> io::Result<()> {
            let mut txn = self.db.begin_write().map_err(io_err)?;
            txn.set_durability(Durability::Immediate).map_err(io_err)?;
            {
                let mut synod = txn.open_table(SYNOD).map_err(io_err)?;
                let mut expected = synod.last().map_err(io_err)?.map(|(k, _)| k.value() + 1);
                for (entry, effects) in &derived {
                    if let Some(next) = expected
                        && entry.index != next
                    {
                        return Err(corrupt(format!(
                            "synod entry {} does not follow {}",
                            entry.index,
                            next - 1
                        )));
                    }
                    synod
                        .insert(
                            entry.index,
                            synod_store::encode_entry(entry, effects).as_slice(),
                        )
                        .map_err(io_err)?;
                    expected = Some(entry.index + 1);
                }
                let mut meta = txn.open_table(SM_META).map_err(io_err)?;
                meta.insert(APPLIED, encode(&state.applied).as_slice())
                    .map_err(io_err)?;
            }
            txn.commit().map_err(io_err)
        })();
        if let Err(e) = written {
            // Nothing of this run is durable: put back the state on disk, so
            // that no reader sees what was only applied in memory. openraft
            // treats the error as fatal and stops the replica.
            if let Ok(durable) = load_state(&self.db) {
                *state = durable;
            }
            return Err(e);
        }
        let next_index = state.space.head().next_index;
        let last = state.applied.log_id.as_ref().map(|l| l.index);
        drop(state);
        if let Some(observer) = &self.observer {
            for record in records {
                observer.applied(record);
            }
        }
        if let (Some(listener), Some(last)) = (&self.listener, last) {
            listener.committed(last, derived, next_index);
        }
        for (responder, outcome) in answers {
            if let Some(responder) = responder {
                responder.send(outcome);
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> StateMachine {
        self.clone()
    }

    /// Replaces the state with a snapshot from the leader. The synod log kept
    /// here continues only if it reaches exactly the snapshot's head;
    /// otherwise this replica's synod log restarts at the snapshot (the
    /// entries in between exist on the replicas that applied them).
    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMetaOf<TypeConfig>,
        snapshot: Vec<u8>,
    ) -> io::Result<()> {
        let space = Space::from_snapshot(&snapshot).map_err(corrupt)?;
        let head = space.head();
        let applied = Applied {
            log_id: meta.last_log_id,
            membership: meta.last_membership.clone(),
        };
        let stored = StoredSnapshot {
            applied: applied.clone(),
            space: snapshot,
        };
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        let mut txn = self.db.begin_write().map_err(io_err)?;
        txn.set_durability(Durability::Immediate).map_err(io_err)?;
        {
            let mut synod = txn.open_table(SYNOD).map_err(io_err)?;
            synod
                .retain_in(head.next_index.., |_, _| false)
                .map_err(io_err)?;
            let continues = match head.next_index.checked_sub(1) {
                None => true,
                Some(last) => match synod.get(last).map_err(io_err)? {
                    Some(v) => {
                        let stored = synod_store::decode_entry(last, v.value()).map_err(corrupt)?;
                        stored.entry.hash() == head.last_hash
                    }
                    None => false,
                },
            };
            let mut sm_meta = txn.open_table(SM_META).map_err(io_err)?;
            if !continues {
                synod.retain(|_, _| false).map_err(io_err)?;
                sm_meta
                    .insert(
                        SYNOD_START,
                        encode(&Anchor {
                            next_index: head.next_index,
                            last_hash: head.last_hash,
                        })
                        .as_slice(),
                    )
                    .map_err(io_err)?;
            }
            sm_meta
                .insert(APPLIED, encode(&applied).as_slice())
                .map_err(io_err)?;
            sm_meta
                .insert(SNAPSHOT, encode(&stored).as_slice())
                .map_err(io_err)?;
        }
        txn.commit().map_err(io_err)?;
        let state_hash = space.state_hash();
        state.space = space;
        state.applied = applied;
        drop(state);
        if let (Some(observer), Some(last)) = (&self.observer, &meta.last_log_id) {
            observer.installed(last.index, state_hash);
        }
        if let (Some(listener), Some(last)) = (&self.listener, &meta.last_log_id) {
            listener.installed(last.index, head.next_index);
        }
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> io::Result<Option<SnapshotOf<TypeConfig, Vec<u8>>>> {
        Ok(self.stored_snapshot()?.map(StoredSnapshot::into_openraft))
    }
}

/// Where a replica's synod log resumed after a snapshot installed over a
/// gap: the snapshot's head. The entries before it are missing until
/// [`ReplicaDb::fill_synod_gap`] puts them back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anchor {
    /// The synod log's next index at the snapshot.
    pub next_index: LogIndex,
    /// The hash of the entry just before it.
    pub last_hash: Digest,
}

/// Where this replica's synod log starts: 0, or the head of the last snapshot
/// it installed over a gap.
pub fn synod_start(db: &ReplicaDb) -> io::Result<LogIndex> {
    Ok(db.synod_gap()?.map_or(0, |a| a.next_index))
}

impl ReplicaDb {
    /// The gap in this replica's synod log, if a snapshot was installed over
    /// one and it is not yet filled.
    pub fn synod_gap(&self) -> io::Result<Option<Anchor>> {
        let txn = self.db.begin_read().map_err(io_err)?;
        let meta = txn.open_table(SM_META).map_err(io_err)?;
        match meta.get(SYNOD_START).map_err(io_err)? {
            Some(v) => Ok(Some(decode(v.value())?)),
            None => Ok(None),
        }
    }

    /// Puts back the synod entries before `anchor`: `entries` must be the
    /// whole log from index 0 up to the anchor, each linking to the one
    /// before it and the last hashing to the anchor's hash, so that no peer
    /// can slip in entries of its own making (their effects the caller
    /// re-derived by replaying them). Returns false, and writes nothing, if
    /// the gap is no longer `anchor` (another snapshot moved it).
    pub fn fill_synod_gap(
        &self,
        anchor: &Anchor,
        entries: &[(Entry, Vec<Effect>)],
    ) -> io::Result<bool> {
        if entries.len() as u64 != anchor.next_index {
            return Err(corrupt(format!(
                "{} entries do not fill a gap of {}",
                entries.len(),
                anchor.next_index
            )));
        }
        let mut prev: Option<Digest> = None;
        for (i, (entry, _)) in entries.iter().enumerate() {
            if entry.index != i as u64 || prev.is_some_and(|p| p != entry.prev) {
                return Err(corrupt(format!("entry {i} does not continue the log")));
            }
            prev = Some(entry.hash());
        }
        if prev.is_some_and(|p| p != anchor.last_hash) {
            return Err(corrupt("the entries do not end at the snapshot's head"));
        }
        let mut txn = self.db.begin_write().map_err(io_err)?;
        txn.set_durability(Durability::Immediate).map_err(io_err)?;
        {
            let mut meta = txn.open_table(SM_META).map_err(io_err)?;
            let current: Option<Anchor> = match meta.get(SYNOD_START).map_err(io_err)? {
                Some(v) => Some(decode(v.value())?),
                None => None,
            };
            if current.as_ref() != Some(anchor) {
                return Ok(false);
            }
            meta.remove(SYNOD_START).map_err(io_err)?;
            let mut synod = txn.open_table(SYNOD).map_err(io_err)?;
            for (entry, effects) in entries {
                synod
                    .insert(
                        entry.index,
                        synod_store::encode_entry(entry, effects).as_slice(),
                    )
                    .map_err(io_err)?;
            }
        }
        txn.commit().map_err(io_err)?;
        Ok(true)
    }
}
