//! synod's replicated cluster mode: the space state machine of `synod-core`
//! behind openraft, with the Raft log, the vote and the applied state on redb.
//!
//! The leader orders batches of signature-checked messages and stamps each
//! with its clock ([`payload::Batch`]); Raft replicates the batch to a
//! majority, durably, and only then does any replica apply it, with the pure
//! function [`payload::apply_batch`]. Every replica therefore derives the same
//! hash-chained synod log and the same state hash from the same Raft log, and
//! a client hears about its messages only after they are committed.
//!
//! - [`payload`]: the Raft entry and how a replica applies it.
//! - [`storage`]: the log store and the state machine on one redb file.
//! - [`network`]: the [`network::Transport`] a cluster needs, and its adapter
//!   to openraft.
//! - [`Replica`]: one member of a cluster, tying the three together.
//!
//! Determinism: openraft draws election timeouts from its runtime's random
//! number generator, and Tokio's watch channel wakes receivers in a random
//! order. [`Runtime`] is Tokio with the generator seeded per task from one
//! seed and a first-come-first-woken watch channel, so a simulation under
//! Tokio's paused clock replays from its seed; a real node seeds it from the
//! operating system. Every future that starts a replica must run inside
//! [`seeded`].

pub mod network;
pub mod payload;
pub mod runtime;
pub mod storage;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use openraft::error::{ClientWriteError, Fatal, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::type_config::alias::{SnapshotOf, VoteOf};
use openraft::{BasicNode, Raft, SnapshotPolicy};

use crate::network::{Network, Transport};
use crate::payload::{Batch, BatchOutcome};
use crate::storage::{ApplyObserver, ReplicaDb, StateMachine};

/// A replica's id in its cluster. Stable across restarts: it is the name the
/// others know it by.
pub type NodeId = u64;

pub use runtime::Runtime;

openraft::declare_raft_types!(
    /// The types synod's Raft is built from: a Raft entry is a [`Batch`], its
    /// answer a [`BatchOutcome`]; nodes are numbered and reached by address.
    pub TypeConfig:
        D = Batch,
        R = BatchOutcome,
        NodeId = NodeId,
        Node = BasicNode,
        AsyncRuntime = Runtime,
);

/// The Raft handle of a replica.
pub type SynodRaft = Raft<TypeConfig, StateMachine>;

/// A snapshot is taken after this many Raft entries since the last one, and
/// the log before it is purged: the local sequencer's snapshot interval.
pub const SNAPSHOT_EVERY_ENTRIES: u64 = 10_000;
/// Entries kept in the log behind a snapshot, so that a follower slightly
/// behind catches up from the log rather than by a whole snapshot.
pub const LOG_KEPT_BEHIND_SNAPSHOT: u64 = 1_000;

/// Runs `future` with openraft's random number generator seeded from `seed`.
/// Every task a replica spawns derives its own seed from this one, so the
/// same seed and the same schedule give the same election timeouts.
pub fn seeded<F: Future>(seed: u64, future: F) -> impl Future<Output = F::Output> {
    Runtime::scope(seed, future)
}

/// Raft timing and log compaction for a cluster on a local network: a
/// heartbeat every 50 ms, elections after 150–300 ms of silence, pre-vote on,
/// a snapshot every [`SNAPSHOT_EVERY_ENTRIES`].
pub fn default_config() -> openraft::Config {
    openraft::Config {
        cluster_name: "synod".into(),
        heartbeat_interval: 50,
        election_timeout_min: 150,
        election_timeout_max: 300,
        enable_pre_vote: Some(true),
        snapshot_policy: SnapshotPolicy::LogsSinceLast(SNAPSHOT_EVERY_ENTRIES),
        max_in_snapshot_log_to_keep: LOG_KEPT_BEHIND_SNAPSHOT,
        ..Default::default()
    }
}

/// Why a replica did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Its database did not open or read back.
    #[error(transparent)]
    Storage(#[from] storage::OpenError),
    /// The configuration is invalid.
    #[error("raft configuration: {0}")]
    Config(String),
    /// openraft stopped while starting.
    #[error("raft: {0}")]
    Raft(String),
}

/// Why a write was not committed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// This replica is not the leader; `leader` is the one it knows of, to
    /// which the client (or, later, this replica) should send the write.
    #[error("not the leader; the leader is {leader:?}")]
    NotLeader {
        /// The leader this replica knows of.
        leader: Option<NodeId>,
    },
    /// The replica stopped (shut down, or its storage failed). The write may
    /// or may not have been committed; a client retrying it is safe, since
    /// the core refuses a replayed message as a duplicate.
    #[error("the replica stopped: {0}")]
    Stopped(String),
}

/// One member of a cluster: its Raft and its state machine.
#[derive(Debug, Clone)]
pub struct Replica {
    id: NodeId,
    raft: SynodRaft,
    state: StateMachine,
}

impl Replica {
    /// Starts replica `id` on `db`, reaching its peers through `transport`.
    /// `observer`, if given, hears of every applied entry. Must run inside
    /// [`seeded`].
    pub async fn start<T: Transport>(
        id: NodeId,
        config: openraft::Config,
        db: &ReplicaDb,
        transport: Arc<T>,
        observer: Option<Arc<dyn ApplyObserver>>,
    ) -> Result<Replica, StartError> {
        let config = Arc::new(
            config
                .validate()
                .map_err(|e| StartError::Config(e.to_string()))?,
        );
        let mut state = db.state_machine()?;
        if let Some(observer) = observer {
            state = state.with_observer(observer);
        }
        let raft = Raft::new(
            id,
            config,
            Network::new(transport),
            db.log_store(),
            state.clone(),
        )
        .await
        .map_err(|e| StartError::Raft(e.to_string()))?;
        Ok(Replica { id, raft, state })
    }

    /// This replica's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The openraft handle: metrics, membership changes.
    pub fn raft(&self) -> &SynodRaft {
        &self.raft
    }

    /// The applied state.
    pub fn state(&self) -> &StateMachine {
        &self.state
    }

    /// Forms a new cluster of `members`, once, on one replica of a cluster
    /// none of whose members holds any state yet.
    pub async fn initialize(&self, members: BTreeMap<NodeId, BasicNode>) -> Result<(), String> {
        self.raft
            .initialize(members)
            .await
            .map_err(|e| e.to_string())
    }

    /// Proposes `batch`, and returns its Raft index and the outcome of each
    /// of its messages once it is committed and applied here. Only the
    /// leader takes writes.
    pub async fn write(&self, batch: Batch) -> Result<(u64, BatchOutcome), WriteError> {
        match self.raft.client_write(batch).await {
            Ok(response) => Ok((response.log_id.index, response.data)),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Err(WriteError::NotLeader {
                    leader: f.leader_id,
                })
            }
            Err(e) => Err(WriteError::Stopped(e.to_string())),
        }
    }

    /// Takes a peer's `append_entries`.
    pub async fn handle_append_entries(
        &self,
        rpc: AppendEntriesRequest<TypeConfig>,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RaftError<TypeConfig>> {
        self.raft.append_entries(rpc).await
    }

    /// Takes a peer's vote request.
    pub async fn handle_vote(
        &self,
        rpc: VoteRequest<TypeConfig>,
    ) -> Result<VoteResponse<TypeConfig>, RaftError<TypeConfig>> {
        self.raft.vote(rpc).await
    }

    /// Takes a peer's pre-vote request.
    pub async fn handle_pre_vote(
        &self,
        rpc: VoteRequest<TypeConfig>,
    ) -> Result<VoteResponse<TypeConfig>, RaftError<TypeConfig>> {
        self.raft.pre_vote(rpc).await
    }

    /// Takes a whole snapshot from the leader.
    pub async fn handle_snapshot(
        &self,
        vote: VoteOf<TypeConfig>,
        snapshot: SnapshotOf<TypeConfig, Vec<u8>>,
    ) -> Result<SnapshotResponse<TypeConfig>, Fatal<TypeConfig>> {
        self.raft.install_full_snapshot(vote, snapshot).await
    }

    /// Stops the replica's tasks. What is on disk stays.
    pub async fn shutdown(&self) {
        // A join error means a task had already panicked; it is stopped too.
        let _ = self.raft.shutdown().await;
    }
}
