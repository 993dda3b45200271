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
//! - [`http`]: that transport over HTTP between real nodes, and the client
//!   nodes use for their other requests to each other.
//! - [`auth`]: the cluster secret and the MACs every request between nodes
//!   carries.
//! - [`Replica`]: one member of a cluster, tying the three together.
//!
//! Determinism: openraft draws election timeouts from its runtime's random
//! number generator, and Tokio's watch channel wakes receivers in a random
//! order. [`Runtime`] is Tokio with the generator seeded per task from one
//! seed and a first-come-first-woken watch channel, so a simulation under
//! Tokio's paused clock replays from its seed; a real node seeds it from the
//! operating system. Every future that starts a replica must run inside
//! [`seeded`].

pub mod auth;
pub mod http;
pub mod network;
pub mod payload;
pub mod runtime;
pub mod storage;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use openraft::async_runtime::WatchReceiver as _;
use openraft::error::{ClientWriteError, Fatal, LinearizableReadError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::type_config::alias::{SnapshotOf, VoteOf};
use openraft::{BasicNode, ChangeMembers, Raft, ReadPolicy, ServerState, SnapshotPolicy};

use crate::network::{Network, Transport};
use crate::payload::{Batch, BatchOutcome};
use crate::storage::{ApplyObserver, CommitListener, ReplicaDb, StateMachine};

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

fn membership_error(e: RaftError<TypeConfig, ClientWriteError<TypeConfig>>) -> MembershipError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => MembershipError::NotLeader {
            leader: forward_leader(&f),
        },
        RaftError::APIError(other) => MembershipError::Refused(other.to_string()),
        RaftError::Fatal(f) => MembershipError::Stopped(f.to_string()),
    }
}

/// Runs `future` with openraft's random number generator seeded from `seed`.
/// Every task a replica spawns derives its own seed from this one, so the
/// same seed and the same schedule give the same election timeouts.
pub fn seeded<F: Future>(seed: u64, future: F) -> impl Future<Output = F::Output> {
    Runtime::scope(seed, future)
}

/// Raft timing and log compaction for a cluster on a local network: a
/// heartbeat every 50 ms, elections after 150–300 ms of silence, pre-vote on,
/// a snapshot every [`SNAPSHOT_EVERY_ENTRIES`], at most 32 entries per
/// append (with [`payload::MAX_BATCH_BYTES`], what bounds a request between
/// replicas, [`http::MAX_PEER_BODY_BYTES`]).
pub fn default_config() -> openraft::Config {
    compaction_config(SNAPSHOT_EVERY_ENTRIES)
}

/// [`default_config`] with a snapshot every `every` Raft entries and
/// `every / 10` entries kept behind it (at least one): small values make
/// snapshots, purges and snapshot installs happen in a short test.
pub fn compaction_config(every: u64) -> openraft::Config {
    let every = every.max(1);
    openraft::Config {
        cluster_name: "synod".into(),
        heartbeat_interval: 50,
        election_timeout_min: 150,
        election_timeout_max: 300,
        enable_pre_vote: Some(true),
        max_payload_entries: 32,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(every),
        max_in_snapshot_log_to_keep: (every / 10).max(1),
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

/// The leader a replica knows of: its id and address.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Leader {
    /// Its id.
    pub id: NodeId,
    /// Its address as the membership records it.
    pub addr: String,
}

/// Why a write was not committed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum WriteError {
    /// This replica is not the leader and did not append the write; `leader`
    /// is the one it knows of, to which the write should go instead.
    #[error("not the leader; the leader is {leader:?}")]
    NotLeader {
        /// The leader this replica knows of.
        leader: Option<Leader>,
    },
    /// The write was appended, then discarded from this replica's log when
    /// it lost its leadership: another leader may or may not commit it. A
    /// client may retry: the core refuses a replayed message as a duplicate.
    #[error("leadership changed while the write was pending; it may or may not be committed: {0}")]
    Ambiguous(String),
    /// The replica stopped (shut down, or its storage failed). The write may
    /// or may not have been committed; a client retrying it is safe, since
    /// the core refuses a replayed message as a duplicate.
    #[error("the replica stopped: {0}")]
    Stopped(String),
}

/// Why a linearizable read could not be ordered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum ReadError {
    /// This replica is not the leader; ask `leader`.
    #[error("not the leader; the leader is {leader:?}")]
    NotLeader {
        /// The leader this replica knows of.
        leader: Option<Leader>,
    },
    /// The leader could not confirm its leadership with a quorum.
    #[error("no quorum confirmed the leadership: {0}")]
    NoQuorum(String),
    /// The replica stopped.
    #[error("the replica stopped: {0}")]
    Stopped(String),
}

/// Why a membership change was not made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum MembershipError {
    /// Only the leader changes membership.
    #[error("not the leader; the leader is {leader:?}")]
    NotLeader {
        /// The leader this replica knows of.
        leader: Option<Leader>,
    },
    /// openraft refused the change (another change is in progress, the
    /// result would have no voter, the node is unknown, …).
    #[error("{0}")]
    Refused(String),
    /// The replica stopped.
    #[error("the replica stopped: {0}")]
    Stopped(String),
}

/// A member of the cluster as [`Status`] lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Member {
    /// Its id.
    pub id: NodeId,
    /// Its address.
    pub addr: String,
    /// Whether it votes (a learner only receives the log).
    pub voter: bool,
    /// On the leader: the last Raft index this member is known to hold.
    pub matched: Option<u64>,
}

/// What a replica knows of itself and its cluster.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Status {
    /// This replica's id.
    pub id: NodeId,
    /// `leader`, `follower`, `candidate`, `learner` or `shutdown`.
    pub role: String,
    /// The current term.
    pub term: u64,
    /// The leader this replica follows, if any.
    pub leader: Option<NodeId>,
    /// Last Raft index in its log.
    pub last_log_index: Option<u64>,
    /// Last Raft index it knows to be committed.
    pub committed: Option<u64>,
    /// Last Raft index it applied.
    pub applied: Option<u64>,
    /// Last Raft index covered by its snapshot.
    pub snapshot: Option<u64>,
    /// The members in the effective configuration.
    pub members: Vec<Member>,
    /// Whether a membership change is still in progress.
    pub changing: bool,
}

fn forward_leader(f: &openraft::error::ForwardToLeader<TypeConfig>) -> Option<Leader> {
    match (&f.leader_id, &f.leader_node) {
        (Some(id), Some(node)) => Some(Leader {
            id: *id,
            addr: node.addr.clone(),
        }),
        _ => None,
    }
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
        Replica::start_with(id, config, db, transport, observer, None).await
    }

    /// [`Replica::start`], with a `listener` told of every applied run of
    /// entries: how a node publishes events and answers from what its own
    /// replica applied. Must run inside [`seeded`].
    pub async fn start_with<T: Transport>(
        id: NodeId,
        config: openraft::Config,
        db: &ReplicaDb,
        transport: Arc<T>,
        observer: Option<Arc<dyn ApplyObserver>>,
        listener: Option<Arc<dyn CommitListener>>,
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
        if let Some(listener) = listener {
            state = state.with_listener(listener);
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
    /// `members` maps each member's id to its address.
    pub async fn initialize(&self, members: BTreeMap<NodeId, String>) -> Result<(), String> {
        let members: BTreeMap<NodeId, BasicNode> = members
            .into_iter()
            .map(|(id, addr)| (id, BasicNode { addr }))
            .collect();
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
                    leader: forward_leader(&f),
                })
            }
            Err(RaftError::APIError(ClientWriteError::LogEntryDiscarded(f))) => {
                Err(WriteError::Ambiguous(f.to_string()))
            }
            Err(e) => Err(WriteError::Stopped(e.to_string())),
        }
    }

    /// The leader this replica knows of, with its address.
    pub fn leader(&self) -> Option<Leader> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow_watched();
        let id = metrics.current_leader?;
        let node = metrics.membership_config.get_node(&id)?;
        Some(Leader {
            id,
            addr: node.addr.clone(),
        })
    }

    /// Why the replica stopped, if it did (a storage failure, or a
    /// shutdown): it then takes part in nothing until restarted.
    pub fn stopped(&self) -> Option<String> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow_watched();
        metrics.running_state.as_ref().err().map(|e| e.to_string())
    }

    /// Whether this replica is the leader.
    pub fn is_leader(&self) -> bool {
        self.raft.is_leader()
    }

    /// The read index of a linearizable read, on the leader: the last Raft
    /// index committed when the leader confirmed with a quorum that it still
    /// leads (the read-index protocol, openraft's `ReadPolicy::ReadIndex`).
    /// A read that waits until the state has applied this index, on any
    /// replica, sees every write acknowledged before it began.
    pub async fn read_index(&self) -> Result<u64, ReadError> {
        match self.raft.get_read_log_id(ReadPolicy::ReadIndex).await {
            Ok((read, _)) => Ok(read.index()),
            Err(RaftError::APIError(LinearizableReadError::ForwardToLeader(f))) => {
                Err(ReadError::NotLeader {
                    leader: forward_leader(&f),
                })
            }
            Err(RaftError::APIError(LinearizableReadError::QuorumNotEnough(q))) => {
                Err(ReadError::NoQuorum(q.to_string()))
            }
            Err(e) => Err(ReadError::Stopped(e.to_string())),
        }
    }

    /// Waits until this replica has applied Raft index `index`, for at most
    /// `timeout`; true if it has.
    pub async fn wait_applied(&self, index: u64, timeout: Duration) -> bool {
        if self.state.applied_index().is_some_and(|a| a >= index) {
            return true;
        }
        self.raft
            .wait(Some(timeout))
            .applied_index_at_least(Some(index), "wait_applied")
            .await
            .is_ok()
    }

    /// Adds node `id` at `addr` as a voter, on the leader: first as a
    /// learner, waiting until it has caught up with the log, then as a voter
    /// (joint consensus, two membership entries).
    pub async fn add_voter(&self, id: NodeId, addr: String) -> Result<(), MembershipError> {
        let already = {
            let metrics = self.raft.metrics();
            let metrics = metrics.borrow_watched();
            metrics.membership_config.voter_ids().any(|v| v == id)
        };
        if already {
            return Err(MembershipError::Refused(format!(
                "node {id} is already a voter"
            )));
        }
        self.raft
            .add_learner(id, BasicNode { addr }, true)
            .await
            .map_err(membership_error)?;
        self.raft
            .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false)
            .await
            .map_err(membership_error)?;
        Ok(())
    }

    /// Removes node `id` from the cluster, on the leader. A leader that
    /// removes itself steps down once the change commits.
    pub async fn remove_voter(&self, id: NodeId) -> Result<(), MembershipError> {
        let (voter, learner) = {
            let metrics = self.raft.metrics();
            let metrics = metrics.borrow_watched();
            let m = metrics.membership_config.membership();
            (
                m.voter_ids().any(|v| v == id),
                m.learner_ids().any(|l| l == id),
            )
        };
        if !voter && !learner {
            return Err(MembershipError::Refused(format!(
                "node {id} is not a member"
            )));
        }
        let change = if voter {
            ChangeMembers::RemoveVoters(BTreeSet::from([id]))
        } else {
            ChangeMembers::RemoveNodes(BTreeSet::from([id]))
        };
        self.raft
            .change_membership(change, false)
            .await
            .map_err(membership_error)?;
        Ok(())
    }

    /// What this replica knows of itself and its cluster.
    pub fn status(&self) -> Status {
        let metrics = self.raft.metrics();
        let m = metrics.borrow_watched();
        let role = match m.state {
            ServerState::Leader => "leader",
            ServerState::Follower => "follower",
            ServerState::Candidate => "candidate",
            ServerState::Learner => "learner",
            ServerState::Shutdown => "shutdown",
        };
        let membership = m.membership_config.membership();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let matched = |id: &NodeId| {
            m.replication
                .as_ref()
                .and_then(|r| r.get(id))
                .and_then(|l| l.as_ref())
                .map(|l| l.index)
        };
        let members = membership
            .nodes()
            .map(|(id, node)| Member {
                id: *id,
                addr: node.addr.clone(),
                voter: voters.contains(id),
                matched: matched(id),
            })
            .collect();
        Status {
            id: self.id,
            role: role.into(),
            term: m.current_term,
            leader: m.current_leader,
            last_log_index: m.last_log_index,
            committed: m.local_committed.as_ref().map(|l| l.index),
            applied: m.last_applied.as_ref().map(|l| l.index),
            snapshot: m.snapshot.as_ref().map(|l| l.index),
            members,
            changing: m.membership_config != m.committed_membership_config,
        }
    }

    /// Builds a snapshot now (in the background): a node asks for one every
    /// [`SNAPSHOT_EVERY_ENTRIES`] synod entries, since a Raft entry may hold
    /// thousands of them and openraft's own policy counts Raft entries.
    pub async fn trigger_snapshot(&self) {
        // A fatal error stops the replica; it is reported by its metrics.
        let _ = self.raft.trigger().snapshot().await;
    }

    /// Handles a Raft request of `kind` (one of [`http::RPC_KINDS`]) that a
    /// peer sent over HTTP, and returns the encoded answer.
    pub async fn serve_rpc(&self, kind: &str, body: &[u8]) -> Result<Vec<u8>, http::RpcError> {
        http::serve_rpc(&self.raft, kind, body).await
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
