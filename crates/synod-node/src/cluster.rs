//! Cluster mode: the node's space is a replica of a Raft cluster
//! (`synod-raft`), and every node serves the same API, events and inbox.
//!
//! The path of a write. The HTTP handlers submit to the same queue as on a
//! single node. A sequencer thread takes what is queued (group commit, as
//! the local sequencer does), checks the signatures as one batch, and hands
//! the batch to an async task, without waiting for the previous batch:
//! up to [`MAX_INFLIGHT_BATCHES`] are on their way at once (pipelining).
//! The task proposes the batch as one Raft entry if this node leads, or
//! forwards it to the leader (`POST /raft/v1/forward`), which stamps its
//! log time and proposes it. Either way the answer comes once the entry is
//! committed (held durably by a majority) and applied; a node answering for
//! a forwarded write also waits until its own replica has applied the
//! entry, so a client reading from the node it wrote to sees its write.
//! Signatures are checked on the node that took the request, so every node
//! shares that work; the leader trusts a forwarded batch because its sender
//! proved it holds the cluster secret (Raft's fault model is crashes, not
//! lying nodes).
//!
//! Deadlines: the leader watches the earliest open deadline of its applied
//! state and, once it has passed, proposes an empty batch; applying it (or
//! any batch stamped at or after the deadline) closes the proposal at the
//! same Raft entry on every replica.
//!
//! Reads come from the state this node has applied: always a committed
//! prefix of the log, at most a few milliseconds behind the leader. A read
//! with `?consistent=true` is linearizable: the node asks the leader for a
//! read index (the leader confirms with a quorum that it still leads), then
//! waits until its own replica has applied that index (openraft's
//! `ReadPolicy::ReadIndex`; a lease would save the round of heartbeats but
//! trusts bounded clock drift).
//!
//! Every replica applies every committed entry to its own space and synod
//! log, and publishes the same events with the same `INDEX.K` ids, so an
//! event stream resumes on any node from its `Last-Event-ID`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, Weak, mpsc};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use synod_core::Space;
use synod_core::log::LogIndex;
use synod_core::space::Effect;
use synod_core::wire::{MessageType, Verified};
use synod_raft::auth::{check_fresh, hex};
use synod_raft::http::{
    HttpTransport, MAX_PEER_BODY_BYTES, MAX_SNAPSHOT_BYTES, PeerClient, PeerError, RPC_KINDS,
    check_peer_url,
};
use synod_raft::payload::{Batch, BatchOutcome, MAX_BATCH_BYTES, Outcome, message_bytes};
use synod_raft::storage::{CommitListener, ReplicaDb};
use synod_raft::{Leader, MembershipError, ReadError, Replica, WriteError};
use synod_store::StoredEntry;
use tokio::sync::{Notify, Semaphore};

pub use synod_raft::auth::{
    ClusterSecret, REPLY_HEADER, REQUEST_HEADER, SECRET_BYTES, SecretError,
};
pub use synod_raft::{Member, NodeId, Status};

use crate::sequencer::{self, Command, Reply};
use crate::{Backend, Node, NodeConfig, NodeError, Published, Receipt, SubmitError, now_ms};

/// Batches proposed and not yet answered, at most; the sequencer thread
/// waits for one to finish before it proposes another.
pub const MAX_INFLIGHT_BATCHES: usize = 64;

/// A cluster member's default snapshot interval, in synod entries: ten times
/// a single node's ([`crate::SNAPSHOT_EVERY_ENTRIES`]), as etcd's default is
/// 100,000 entries. A snapshot serializes the whole space and writes it in
/// the same database as the Raft log, so while it is written appends and
/// applies wait: with a snapshot every 10,000 entries that stall set the
/// commit p99 (`synod bench --cluster`, docs/PERFORMANCE.md). A restart
/// replays at most this many entries (about 3 µs each).
pub const SNAPSHOT_EVERY_ENTRIES: u64 = 100_000;
/// Longest a write may look for a leader and wait for its commit before it
/// is answered `unavailable`.
pub const COMMIT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a node waits for its own replica to apply a write the leader
/// committed before it answers anyway (the write is committed either way).
pub const APPLY_WAIT: Duration = Duration::from_secs(5);
/// Longest a linearizable read waits for a read index and for this node to
/// reach it.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest a membership change may take (a new member first catches up
/// with the whole log).
pub const MEMBERSHIP_TIMEOUT: Duration = Duration::from_secs(120);
/// Most members a cluster may be initialized with.
pub const MAX_MEMBERS: usize = 9;
/// Largest body of a membership request.
const MAX_ADMIN_BODY_BYTES: usize = 64 * 1024;
/// Pause between two attempts to find a leader.
const RETRY_PAUSE: Duration = Duration::from_millis(25);
/// Longest the deadline watcher sleeps, so that a deadline or a change of
/// leader is never noticed much later.
const TICK_POLL: Duration = Duration::from_millis(100);
/// Longest the sequencer thread waits with nothing queued.
const IDLE: Duration = Duration::from_secs(1);

/// What makes a node a cluster member.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// This node's id in the cluster (the name `synod cluster init` and
    /// `join` give its address).
    pub node_id: NodeId,
    /// The secret every node and operator of the cluster holds.
    pub secret: ClusterSecret,
    /// A snapshot every so many synod entries (and Raft entries), with a
    /// tenth of that kept in the Raft log behind it;
    /// [`SNAPSHOT_EVERY_ENTRIES`] unless a test wants compaction sooner.
    pub snapshot_every: u64,
    /// Client messages per Raft entry, at most ([`sequencer::MAX_BATCH`]
    /// by default; 1 turns batching off, for measuring it).
    pub max_batch: usize,
    /// Raft entries proposed and not yet answered, at most
    /// ([`MAX_INFLIGHT_BATCHES`] by default; 1 turns pipelining off, for
    /// measuring it).
    pub max_inflight: usize,
}

impl ClusterConfig {
    /// Member `node_id` of the cluster with `secret`, with the default
    /// snapshot interval.
    pub fn new(node_id: NodeId, secret: ClusterSecret) -> ClusterConfig {
        ClusterConfig {
            node_id,
            secret,
            snapshot_every: SNAPSHOT_EVERY_ENTRIES,
            max_batch: sequencer::MAX_BATCH,
            max_inflight: MAX_INFLIGHT_BATCHES,
        }
    }
}

/// A node's replica and what it needs to reach its peers.
#[derive(Debug)]
pub struct Cluster {
    id: NodeId,
    replica: Replica,
    db: ReplicaDb,
    client: PeerClient,
    runtime: tokio::runtime::Handle,
    inflight: Arc<Semaphore>,
    /// Client messages per Raft entry, at most.
    max_batch: usize,
    /// An empty batch for a passed deadline is on its way.
    ticking: Arc<AtomicBool>,
    closed: AtomicBool,
    /// A task is filling the synod log's gap.
    filling: AtomicBool,
    /// Gaps filled since the node started.
    gaps_filled: std::sync::atomic::AtomicU64,
}

/// Tells the node of what its replica applied: answers, events, trust
/// history, metrics.
#[derive(Debug)]
struct Listener {
    node: OnceLock<Weak<Node>>,
    applied: Arc<Notify>,
    /// The synod log's next index at the last snapshot (asked for or
    /// loaded).
    snapshot_at: std::sync::atomic::AtomicU64,
    /// Synod entries between two snapshots.
    snapshot_every: u64,
}

impl CommitListener for Listener {
    fn committed(
        &self,
        _raft_index: u64,
        derived: Vec<(synod_core::Entry, Vec<Effect>)>,
        next: u64,
    ) {
        self.applied.notify_waiters();
        let Some(node) = self.node.get().and_then(Weak::upgrade) else {
            return;
        };
        if derived.is_empty() {
            return;
        }
        // A snapshot every so many synod entries bounds what a restart
        // replays, as on a single node.
        let last = self.snapshot_at.load(Ordering::Acquire);
        if next.saturating_sub(last) >= self.snapshot_every
            && let Some(cluster) = node.cluster()
        {
            self.snapshot_at.store(next, Ordering::Release);
            let replica = cluster.replica.clone();
            tokio::spawn(async move { replica.trigger_snapshot().await });
        }
        node.metrics.applied(derived.len());
        node.read(|space| {
            for (entry, effects) in &derived {
                node.metrics.observe_effects(space, entry.time, effects);
            }
        });
        let published: Vec<Published> = derived
            .into_iter()
            .map(|(entry, effects)| Published {
                index: entry.index,
                time: entry.time,
                effects,
                frames: OnceLock::new(),
            })
            .collect();
        for p in &published {
            node.record_trust(p);
        }
        for p in published {
            // No subscriber is fine: the event is in the synod log.
            let _ = node.events.send(Arc::new(p));
        }
    }

    fn installed(&self, _raft_index: u64, next: u64) {
        self.snapshot_at.store(next, Ordering::Release);
        self.applied.notify_waiters();
        if let Some(node) = self.node.get().and_then(Weak::upgrade) {
            spawn_gap_fill(&node);
        }
    }
}

fn random_seed() -> Result<u64, NodeError> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|e| NodeError::Io(format!("no randomness: {e}")))?;
    Ok(u64::from_le_bytes(bytes))
}

impl Node {
    /// Opens (or creates) this node's replica in `config.data_dir` and
    /// starts it: it takes part in elections and replication at once, and
    /// serves a space once the cluster is initialized (`synod cluster
    /// init`) and has applied the space's first entry. Must be called
    /// inside a Tokio runtime.
    pub async fn open_cluster(
        config: &NodeConfig,
        cluster: ClusterConfig,
    ) -> Result<Arc<Node>, NodeError> {
        if config.data_dir.join(synod_store::DB_FILE).exists() {
            return Err(NodeError::Io(format!(
                "{} holds a single-node space; a cluster node starts from its own data directory",
                config.data_dir.display()
            )));
        }
        let db = ReplicaDb::open(&config.data_dir).map_err(|e| NodeError::Io(e.to_string()))?;
        let applied = Arc::new(Notify::new());
        let listener = Arc::new(Listener {
            node: OnceLock::new(),
            applied: applied.clone(),
            snapshot_at: std::sync::atomic::AtomicU64::new(0),
            snapshot_every: cluster.snapshot_every.max(1),
        });
        let client = PeerClient::new(cluster.secret.clone());
        let transport = Arc::new(HttpTransport::new(client.clone()));
        let replica = synod_raft::seeded(
            random_seed()?,
            Replica::start_with(
                cluster.node_id,
                synod_raft::compaction_config(cluster.snapshot_every),
                &db,
                transport,
                None,
                Some(listener.clone()),
            ),
        )
        .await
        .map_err(|e| NodeError::Io(e.to_string()))?;
        let (queue, rx) = mpsc::sync_channel(crate::MAX_QUEUED_MESSAGES);
        let (events, _) = tokio::sync::broadcast::channel(crate::MAX_EVENT_BACKLOG);
        let admin = crate::keys::read(&config.data_dir.join(crate::ADMIN_KEY_FILE));
        let head = replica.state().read(|s| s.head().next_index);
        let replayed = replica.state().replayed_at_load();
        listener
            .snapshot_at
            .store(head - replayed, Ordering::Release);
        let signed_card = match (&config.public_url, admin) {
            (Some(url), Ok(key)) if head > 0 => Some(crate::card::sign(
                crate::card::card(
                    url.trim_end_matches('/'),
                    &replica.state().read(|s| s.id().to_string()),
                ),
                &key,
            )),
            _ => None,
        };
        let node = Arc::new(Node {
            backend: Backend::Cluster(Box::new(Cluster {
                id: cluster.node_id,
                replica,
                db,
                client,
                runtime: tokio::runtime::Handle::current(),
                inflight: Arc::new(Semaphore::new(cluster.max_inflight.max(1))),
                max_batch: cluster.max_batch.clamp(1, sequencer::MAX_BATCH),
                ticking: Arc::new(AtomicBool::new(false)),
                closed: AtomicBool::new(false),
                filling: AtomicBool::new(false),
                gaps_filled: std::sync::atomic::AtomicU64::new(0),
            })),
            durable_next: std::sync::atomic::AtomicU64::new(head),
            queued: std::sync::atomic::AtomicUsize::new(0),
            events,
            queue,
            metrics: crate::Metrics::default(),
            keys: crate::Keys::default(),
            fatal: std::sync::Mutex::new(None),
            trust_history: std::sync::Mutex::new(Default::default()),
            data_dir: config.data_dir.clone(),
            allowed_hosts: config.allowed_hosts.clone(),
            signed_card,
            replayed_at_open: replayed,
        });
        let _ = listener.node.set(Arc::downgrade(&node));
        // The inbox's trust charts fill in the background: a restarted
        // member should rejoin at once.
        let refill = node.clone();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = refill.refill_trust_history() {
                eprintln!("synod: refilling the trust charts failed: {e}");
            }
        });
        let worker = node.clone();
        std::thread::Builder::new()
            .name("synod-cluster-sequencer".into())
            .spawn(move || run_sequencer(worker, rx))
            .map_err(|e| NodeError::Io(e.to_string()))?;
        tokio::spawn(watch_deadlines(Arc::downgrade(&node), applied));
        spawn_gap_fill(&node);
        Ok(node)
    }

    /// Waits until this node's state reflects every write acknowledged
    /// anywhere before the call (a linearizable read barrier). Immediate on
    /// a single node, whose reads are always current.
    pub async fn linearize(&self) -> Result<(), SubmitError> {
        match self.cluster() {
            None => Ok(()),
            Some(cluster) => cluster.linearize().await,
        }
    }
}

impl Cluster {
    pub(crate) fn read<R>(&self, f: impl FnOnce(&Space) -> R) -> R {
        self.replica.state().read(f)
    }

    pub(crate) fn log_start(&self) -> LogIndex {
        synod_raft::storage::synod_start(&self.db).unwrap_or(0)
    }

    pub(crate) fn read_log(
        &self,
        from: LogIndex,
        limit: usize,
    ) -> Result<Vec<StoredEntry>, String> {
        self.db.synod_log(from, limit).map_err(|e| e.to_string())
    }

    pub(crate) async fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.replica.shutdown().await;
    }

    /// Why this node's replica stopped (storage failed), if it did and was
    /// not shut down on purpose.
    pub(crate) fn stopped(&self) -> Option<String> {
        if self.closed.load(Ordering::Acquire) {
            return None;
        }
        self.replica
            .stopped()
            .map(|why| format!("the cluster replica stopped: {why}"))
    }

    /// The cluster's figures in Prometheus text format.
    pub(crate) fn metrics_text(&self) -> String {
        let status = self.status();
        let gauge = |name: &str, help: &str, value: u64| {
            format!("# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n")
        };
        let mut out = String::new();
        out.push_str(&gauge(
            "synod_cluster_is_leader",
            "1 if this node leads its cluster.",
            u64::from(status.role == "leader"),
        ));
        out.push_str(&gauge(
            "synod_cluster_term",
            "The Raft term this node is in.",
            status.term,
        ));
        out.push_str(&gauge(
            "synod_cluster_applied_index",
            "The last Raft index this node applied.",
            status.applied.unwrap_or(0),
        ));
        out.push_str(&gauge(
            "synod_cluster_members",
            "Members of the cluster's configuration.",
            status.members.len() as u64,
        ));
        out.push_str(&format!(
            "# HELP synod_cluster_gaps_filled_total Synod logs filled from a peer after a snapshot install.\n# TYPE synod_cluster_gaps_filled_total counter\nsynod_cluster_gaps_filled_total {}\n",
            self.gaps_filled.load(Ordering::Acquire)
        ));
        out
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// What this node knows of itself and the cluster.
    pub fn status(&self) -> Status {
        self.replica.status()
    }

    /// The leader this node knows of.
    pub fn leader(&self) -> Option<Leader> {
        self.replica.leader()
    }

    /// Commits `messages` as one Raft entry, through the leader, and
    /// returns its Raft index and the outcome of each message. Looks for a
    /// leader for up to [`COMMIT_TIMEOUT`]; retries only where the write was
    /// certainly not appended anywhere.
    async fn commit(&self, messages: Vec<Verified>) -> Result<(u64, BatchOutcome), SubmitError> {
        let deadline = Instant::now() + COMMIT_TIMEOUT;
        let unstamped =
            Batch::new(0, messages).map_err(|e| SubmitError::Unavailable(e.to_string()))?;
        // Encoded only if a leader elsewhere needs it.
        let mut forwarded: Option<Vec<u8>> = None;
        let mut hint: Option<Leader> = None;
        let mut last = String::from("no leader is known");
        loop {
            let leader = hint.take().or_else(|| self.replica.leader());
            if self.replica.is_leader() || leader.as_ref().is_some_and(|l| l.id == self.id) {
                let batch = unstamped
                    .clone()
                    .at(now_ms())
                    .map_err(|e| SubmitError::Unavailable(e.to_string()))?;
                match self.replica.write(batch).await {
                    Ok(done) => return Ok(done),
                    Err(WriteError::NotLeader { leader }) => {
                        hint = leader.filter(|l| l.id != self.id);
                        last = "leadership moved".into();
                    }
                    Err(e) => return Err(ambiguous(&e.to_string())),
                }
            } else if let Some(leader) = leader {
                let left = deadline.saturating_duration_since(Instant::now());
                let body = forwarded
                    .get_or_insert_with(|| synod_raft::http::encode(&unstamped))
                    .clone();
                match self.forward(&leader, body, left).await {
                    Ok(Ok(done)) => return Ok(done),
                    Ok(Err(WriteError::NotLeader { leader: next })) => {
                        hint = next.filter(|l| l.id != leader.id);
                        last = format!("node {} no longer leads", leader.id);
                    }
                    Ok(Err(e)) => return Err(ambiguous(&e.to_string())),
                    Err(PeerError::Unreachable(_, why)) | Err(PeerError::BadUrl(why)) => {
                        last = format!("the leader, node {}, is unreachable: {why}", leader.id);
                    }
                    Err(e @ PeerError::Lost(..)) => return Err(ambiguous(&e.to_string())),
                }
            }
            if Instant::now() >= deadline {
                return Err(SubmitError::Unavailable(format!(
                    "no leader took the write within {COMMIT_TIMEOUT:?} ({last}); it was not committed"
                )));
            }
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }

    /// Sends a batch to the leader, which proposes it.
    async fn forward(
        &self,
        leader: &Leader,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Result<(u64, BatchOutcome), WriteError>, PeerError> {
        let reply = self
            .client
            .post(
                &leader.addr,
                "/raft/v1/forward",
                body,
                now_ms(),
                MAX_PEER_BODY_BYTES,
                timeout,
            )
            .await?;
        if reply.status != 200 {
            return Err(PeerError::Lost(
                leader.addr.clone(),
                format!(
                    "status {}: {}",
                    reply.status,
                    String::from_utf8_lossy(&reply.body)
                ),
            ));
        }
        serde_json::from_slice(&reply.body)
            .map_err(|e| PeerError::Lost(leader.addr.clone(), format!("undecodable answer: {e}")))
    }

    /// The linearizable read barrier of [`Node::linearize`].
    async fn linearize(&self) -> Result<(), SubmitError> {
        let deadline = Instant::now() + READ_TIMEOUT;
        let mut hint: Option<Leader> = None;
        let mut last = String::from("no leader is known");
        loop {
            let leader = hint.take().or_else(|| self.replica.leader());
            let attempt = if self.replica.is_leader() {
                self.replica.read_index().await
            } else if let Some(leader) = leader.filter(|l| l.id != self.id) {
                let left = deadline.saturating_duration_since(Instant::now());
                self.remote_read_index(&leader, left).await
            } else {
                Err(ReadError::NotLeader { leader: None })
            };
            match attempt {
                Ok(index) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if self.replica.wait_applied(index, left).await {
                        return Ok(());
                    }
                    return Err(SubmitError::Unavailable(format!(
                        "this node did not reach the leader's read index {index} within {READ_TIMEOUT:?}"
                    )));
                }
                Err(ReadError::NotLeader { leader }) => {
                    hint = leader.filter(|l| l.id != self.id);
                }
                Err(e) => last = e.to_string(),
            }
            if Instant::now() >= deadline {
                return Err(SubmitError::Unavailable(format!(
                    "no leader confirmed a read index within {READ_TIMEOUT:?} ({last})"
                )));
            }
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }

    async fn remote_read_index(
        &self,
        leader: &Leader,
        timeout: Duration,
    ) -> Result<u64, ReadError> {
        let reply = self
            .client
            .post(
                &leader.addr,
                "/raft/v1/read-index",
                Vec::new(),
                now_ms(),
                MAX_ADMIN_BODY_BYTES,
                timeout,
            )
            .await
            .map_err(|e| ReadError::NoQuorum(e.to_string()))?;
        if reply.status != 200 {
            return Err(ReadError::NoQuorum(format!("status {}", reply.status)));
        }
        synod_raft::http::decode::<Result<u64, ReadError>>(&reply.body)
            .map_err(ReadError::NoQuorum)?
    }
}

fn ambiguous(why: &str) -> SubmitError {
    SubmitError::Unavailable(format!(
        "the write may or may not have been committed ({why}); retrying it is safe: a message already in the log is refused as a duplicate"
    ))
}

/// The cluster's sequencer thread: takes what is queued, checks signatures
/// in one batch, and hands each batch to a task that commits it, with up to
/// [`MAX_INFLIGHT_BATCHES`] on their way at once.
fn run_sequencer(node: Arc<Node>, rx: mpsc::Receiver<Command>) {
    let Some(cluster) = node.cluster() else {
        return;
    };
    loop {
        let Some((submissions, stop)) = sequencer::collect(&node, &rx, IDLE, cluster.max_batch)
        else {
            return;
        };
        if !submissions.is_empty() {
            let verified = sequencer::verify(&node, submissions);
            for chunk in chunks(verified) {
                let permit = cluster
                    .runtime
                    .block_on(cluster.inflight.clone().acquire_owned());
                let Ok(permit) = permit else { return };
                let node = node.clone();
                cluster.runtime.spawn(async move {
                    let _permit = permit;
                    propose(node, chunk).await;
                });
            }
        }
        if stop {
            return;
        }
    }
}

/// Splits a verified batch into Raft entries of at most
/// [`MAX_BATCH_BYTES`] each (a batch of [`sequencer::MAX_BATCH`] messages is
/// within the message limit already).
fn chunks(verified: Vec<(Verified, Reply)>) -> Vec<Vec<(Verified, Reply)>> {
    let mut out = Vec::new();
    let mut current = Vec::new();
    let mut bytes = 0;
    for (message, reply) in verified {
        let size = message_bytes(&message);
        if !current.is_empty() && bytes + size > MAX_BATCH_BYTES {
            out.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += size;
        current.push((message, reply));
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// Commits one batch and answers each of its clients.
async fn propose(node: Arc<Node>, chunk: Vec<(Verified, Reply)>) {
    let Some(cluster) = node.cluster() else {
        return;
    };
    let (messages, replies): (Vec<Verified>, Vec<Reply>) = chunk.into_iter().unzip();
    match cluster.commit(messages).await {
        Ok((raft_index, outcome)) => {
            // Read your writes: answer once this node's own state has it.
            cluster.replica.wait_applied(raft_index, APPLY_WAIT).await;
            let mut outcomes = outcome.outcomes.into_iter();
            for reply in replies {
                let answer = match outcomes.next() {
                    Some(Outcome::Accepted {
                        index,
                        time,
                        effects,
                    }) => Ok(Receipt {
                        index,
                        time,
                        effects,
                    }),
                    Some(Outcome::Refused(rejection)) => {
                        node.metrics.rejected(rejection.kind);
                        Err(SubmitError::Rejected(rejection))
                    }
                    None => Err(SubmitError::Unavailable(
                        "the committed batch has no outcome for this message".into(),
                    )),
                };
                let _ = reply.send(answer);
            }
        }
        Err(e) => {
            let why = e.to_string();
            for reply in replies {
                let _ = reply.send(Err(match &e {
                    SubmitError::Rejected(r) => SubmitError::Rejected(r.clone()),
                    SubmitError::Unavailable(_) => SubmitError::Unavailable(why.clone()),
                }));
            }
        }
    }
}

/// On the leader, proposes an empty batch once the earliest open deadline
/// has passed, so that the proposal closes through the log.
async fn watch_deadlines(node: Weak<Node>, applied: Arc<Notify>) {
    loop {
        let notified = applied.notified();
        let wait = {
            let Some(node) = node.upgrade() else { return };
            let Some(cluster) = node.cluster() else {
                return;
            };
            if cluster.closed.load(Ordering::Acquire) {
                return;
            }
            let now = now_ms();
            match node.read(|s| s.next_deadline()) {
                Some(deadline) if deadline <= now => {
                    if cluster.replica.is_leader() && !cluster.ticking.swap(true, Ordering::AcqRel)
                    {
                        let replica = cluster.replica.clone();
                        let ticking = cluster.ticking.clone();
                        let applied = applied.clone();
                        tokio::spawn(async move {
                            let empty = Batch::new(now_ms(), Vec::new()).expect("an empty batch");
                            let _ =
                                tokio::time::timeout(COMMIT_TIMEOUT, replica.write(empty)).await;
                            ticking.store(false, Ordering::Release);
                            applied.notify_waiters();
                        });
                    }
                    TICK_POLL
                }
                Some(deadline) => Duration::from_millis(deadline - now).min(TICK_POLL),
                None => TICK_POLL,
            }
        };
        tokio::select! {
            () = notified => {}
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// Entries asked of a peer per request when filling a gap.
const GAP_CHUNK: u64 = 500;
/// Pause before asking the peers again when none could fill the gap.
const GAP_RETRY: Duration = Duration::from_secs(5);

/// Starts filling the synod log's gap, if it has one and no task is at it
/// already.
fn spawn_gap_fill(node: &Arc<Node>) {
    let Some(cluster) = node.cluster() else {
        return;
    };
    if !matches!(cluster.db.synod_gap(), Ok(Some(_))) {
        return;
    }
    if cluster.filling.swap(true, Ordering::AcqRel) {
        return;
    }
    tokio::spawn(fill_gap(Arc::downgrade(node)));
}

/// A replica that installed a leader's snapshot over a gap holds the state
/// but not the synod entries before it: fetches them from a peer, replays
/// them from the space's first entry (so their effects are this node's own
/// derivation, and nothing a peer made up survives), checks that they end
/// exactly at the snapshot's head, and puts them back. Until then the
/// node's `/v1/log` and event history start at the snapshot.
async fn fill_gap(node: Weak<Node>) {
    loop {
        let Some(node) = node.upgrade() else { return };
        let Some(cluster) = node.cluster() else {
            return;
        };
        let anchor = match cluster.db.synod_gap() {
            Ok(Some(anchor)) if !cluster.closed.load(Ordering::Acquire) => anchor,
            Ok(_) => {
                cluster.filling.store(false, Ordering::Release);
                return;
            }
            Err(e) => {
                eprintln!("synod: reading the synod log's gap failed: {e}");
                cluster.filling.store(false, Ordering::Release);
                return;
            }
        };
        let peers: Vec<Member> = cluster
            .status()
            .members
            .into_iter()
            .filter(|m| m.id != cluster.id)
            .collect();
        let mut progressed = false;
        for peer in peers {
            match fetch_gap(cluster, &peer.addr, &anchor).await {
                Ok(entries) => match cluster.db.fill_synod_gap(&anchor, &entries) {
                    Ok(filled) => {
                        if filled {
                            cluster.gaps_filled.fetch_add(1, Ordering::AcqRel);
                            eprintln!(
                                "synod: the synod log's {} entries before the installed snapshot came from node {}",
                                anchor.next_index, peer.id
                            );
                        }
                        progressed = true;
                        break;
                    }
                    Err(e) => eprintln!("synod: filling the synod log failed: {e}"),
                },
                Err(why) => eprintln!(
                    "synod: node {} did not fill the synod log's gap: {why}",
                    peer.id
                ),
            }
        }
        drop(node);
        if !progressed {
            tokio::time::sleep(GAP_RETRY).await;
        }
    }
}

type Derived = Vec<(synod_core::Entry, Vec<Effect>)>;

/// The synod log from index 0 up to `anchor` from the peer at `addr`,
/// replayed here.
async fn fetch_gap(
    cluster: &Cluster,
    addr: &str,
    anchor: &synod_raft::storage::Anchor,
) -> Result<Derived, String> {
    let mut space = Space::new();
    let mut entries: Derived = Vec::new();
    while (entries.len() as u64) < anchor.next_index {
        let from = entries.len() as u64;
        let limit = GAP_CHUNK.min(anchor.next_index - from);
        let body =
            serde_json::to_vec(&json!({"from": from, "limit": limit})).expect("JSON serializes");
        let reply = cluster
            .client
            .post(
                addr,
                "/raft/v1/synod-log",
                body,
                now_ms(),
                MAX_PEER_BODY_BYTES,
                Duration::from_secs(60),
            )
            .await
            .map_err(|e| e.to_string())?;
        if reply.status != 200 {
            return Err(format!("status {}", reply.status));
        }
        let text = String::from_utf8(reply.body).map_err(|_| "not UTF-8".to_string())?;
        let lines: Vec<String> = text.lines().map(String::from).collect();
        if lines.is_empty() {
            return Err(format!("it holds no entries from {from}"));
        }
        let (replayed, more) = tokio::task::spawn_blocking(move || replay(space, &lines, from))
            .await
            .map_err(|e| e.to_string())??;
        space = replayed;
        entries.extend(more);
    }
    let head = space.head();
    if head.next_index != anchor.next_index || head.last_hash != anchor.last_hash {
        return Err("its log does not lead to the snapshot's head".into());
    }
    Ok(entries)
}

/// Applies export `lines`, which must start at index `from`, to `space`.
fn replay(mut space: Space, lines: &[String], from: u64) -> Result<(Space, Derived), String> {
    let mut out = Vec::with_capacity(lines.len());
    for (k, line) in lines.iter().enumerate() {
        let entry = synod_core::log::ExportLine::parse(line)
            .and_then(|l| l.to_entry())
            .map_err(|e| format!("entry {}: {e}", from + k as u64))?;
        if entry.index != from + k as u64 {
            return Err(format!(
                "entry {} came instead of {}",
                entry.index,
                from + k as u64
            ));
        }
        let applied = space
            .apply(&entry)
            .map_err(|e| format!("entry {}: {e}", entry.index))?;
        if let Some(r) = applied.rejected {
            return Err(format!("entry {} is refused on replay: {r}", entry.index));
        }
        out.push((entry, applied.effects));
    }
    Ok((space, out))
}

/// `GET /v1/cluster`: this node's view of the cluster (on a single node,
/// `{"mode": "single"}`).
pub(crate) async fn status(State(node): State<Arc<Node>>) -> Response {
    let Some(cluster) = node.cluster() else {
        return axum::Json(json!({"mode": "single"})).into_response();
    };
    let status = cluster.status();
    let leader = cluster.leader();
    let (space, next_index) = node.read(|s| (s.id().to_string(), s.head().next_index));
    axum::Json(json!({
        "mode": "cluster",
        "node": status.id,
        "role": status.role,
        "term": status.term,
        "leader": leader,
        "members": status.members,
        "changing": status.changing,
        "raft": {
            "last_log_index": status.last_log_index,
            "committed": status.committed,
            "applied": status.applied,
            "snapshot": status.snapshot,
        },
        "space": space,
        "head": {"next_index": next_index},
        "log": {
            // Where this node's synod log starts: 0, or a snapshot's head
            // while the entries before it are being fetched.
            "starts_at": cluster.db.synod_gap().ok().flatten().map_or(0, |a| a.next_index),
            "gaps_filled": cluster.gaps_filled.load(Ordering::Acquire),
        },
    }))
    .into_response()
}

/// `?consistent=true` on any request: a linearizable read barrier before
/// the handler runs (see the module documentation); the parameter is taken
/// off the query so that handlers never see it.
pub(crate) async fn consistent_reads(
    State(node): State<Arc<Node>>,
    mut request: Request,
    next: axum::middleware::Next,
) -> Response {
    let Some(query) = request.uri().query() else {
        return next.run(request).await;
    };
    let mut wanted = None;
    let mut rest = Vec::new();
    for pair in query.split('&') {
        match pair.split_once('=').unwrap_or((pair, "")) {
            ("consistent", value) => wanted = Some(value.to_string()),
            _ => rest.push(pair),
        }
    }
    let Some(value) = wanted else {
        return next.run(request).await;
    };
    let consistent = match value.as_str() {
        "true" | "1" | "" => true,
        "false" | "0" => false,
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "malformed",
                "query: consistent is true or false",
            );
        }
    };
    let path = request.uri().path();
    let uri = if rest.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", rest.join("&"))
    };
    match uri.parse() {
        Ok(uri) => *request.uri_mut() = uri,
        Err(_) => return error(StatusCode::BAD_REQUEST, "malformed", "query"),
    }
    if consistent && let Err(e) = node.linearize().await {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            &e.to_string(),
        );
    }
    next.run(request).await
}

fn error(status: StatusCode, kind: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": kind, "message": message})),
    )
        .into_response()
}

/// The routes peers and operators use: Raft's requests, forwarded writes,
/// read indexes, membership changes. Every one must carry the cluster
/// secret's MAC; none is part of the public API.
pub(crate) fn peer_routes() -> Router<Arc<Node>> {
    Router::new()
        .route("/raft/v1/{kind}", post(peer))
        .route("/raft/v1/admin/{op}", post(peer))
}

/// A membership request body: `init`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InitRequest {
    /// The first members: id → `http://host:port`.
    pub members: BTreeMap<NodeId, String>,
    /// Create the space open (anyone may register).
    #[serde(default)]
    pub open: bool,
    /// The space's id; random when absent.
    #[serde(default)]
    pub space_id: Option<String>,
}

/// A membership request body: `join`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinRequest {
    /// The new member's id.
    pub id: NodeId,
    /// Where it is reached.
    pub addr: String,
}

/// A membership request body: `leave`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaveRequest {
    /// The member to remove.
    pub id: NodeId,
}

/// An answer to a peer: a status and body, MAC'd for the request whose MAC
/// was `request_mac`.
fn signed_reply(
    node: &Node,
    request_mac: &[u8; 32],
    status: StatusCode,
    body: Vec<u8>,
    json_body: bool,
) -> Response {
    let mac = node.cluster().map(|c| {
        hex(&c
            .client
            .secret()
            .reply_mac(request_mac, status.as_u16(), &body))
    });
    let mut response = (status, body).into_response();
    let kind = if json_body {
        "application/json"
    } else {
        "application/octet-stream"
    };
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    if let Some(mac) = mac.and_then(|m| HeaderValue::from_str(&m).ok()) {
        response.headers_mut().insert(REPLY_HEADER, mac);
    }
    response
}

fn json_bytes(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).expect("JSON serializes")
}

/// Every peer route: size limit, MAC check, then the request itself.
async fn peer(State(node): State<Arc<Node>>, request: Request) -> Response {
    let Some(cluster) = node.cluster() else {
        return error(
            StatusCode::NOT_FOUND,
            "not_found",
            "this node is not a cluster member",
        );
    };
    let path = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let route = request
        .uri()
        .path()
        .trim_start_matches("/raft/v1/")
        .to_string();
    let limit = match route.as_str() {
        "snapshot" => MAX_SNAPSHOT_BYTES,
        r if r.starts_with("admin/") => MAX_ADMIN_BODY_BYTES,
        _ => MAX_PEER_BODY_BYTES,
    };
    let header = request
        .headers()
        .get(REQUEST_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if header.is_none() {
        return error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "peer routes need the cluster secret's MAC",
        );
    }
    if declared.is_some_and(|n| n > limit) {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            &format!("at most {limit} bytes"),
        );
    }
    let Ok(body) = axum::body::to_bytes(request.into_body(), limit).await else {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            &format!("at most {limit} bytes"),
        );
    };
    let secret = cluster.client.secret();
    let (time, request_mac) = match secret.check_request(header.as_deref(), "POST", &path, &body) {
        Ok(checked) => checked,
        Err(e) => return error(StatusCode::UNAUTHORIZED, "unauthorized", &e.to_string()),
    };
    let reply = |status: StatusCode, body: Vec<u8>, json: bool| {
        signed_reply(&node, &request_mac, status, body, json)
    };
    if let Some(op) = route.strip_prefix("admin/") {
        if let Err(e) = check_fresh(time, now_ms()) {
            let body = json!({"error": "unauthorized", "message": e.to_string()});
            return reply(StatusCode::UNAUTHORIZED, json_bytes(&body), true);
        }
        let (status, answer) = admin(&node, cluster, op, &body, &path).await;
        return reply(status, json_bytes(&answer), true);
    }
    match route.as_str() {
        kind if RPC_KINDS.contains(&kind) => match cluster.replica.serve_rpc(kind, &body).await {
            Ok(answer) => reply(StatusCode::OK, answer, false),
            Err(e) => reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                e.to_string().into_bytes(),
                false,
            ),
        },
        "forward" => {
            let answer = forwarded(cluster, &body).await;
            reply(StatusCode::OK, json_bytes(&json!(answer)), true)
        }
        "synod-log" => {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct Range {
                from: u64,
                limit: u64,
            }
            let Ok(range) = serde_json::from_slice::<Range>(&body) else {
                return reply(StatusCode::BAD_REQUEST, b"{from, limit}".to_vec(), false);
            };
            let limit = range.limit.min(GAP_CHUNK) as usize;
            match cluster.read_log(range.from, limit) {
                Ok(entries) => {
                    let mut text = String::new();
                    for stored in entries {
                        text.push_str(&stored.export_line().to_json());
                        text.push('\n');
                    }
                    reply(StatusCode::OK, text.into_bytes(), false)
                }
                Err(e) => reply(StatusCode::INTERNAL_SERVER_ERROR, e.into_bytes(), false),
            }
        }
        "read-index" => {
            let answer = cluster.replica.read_index().await;
            reply(StatusCode::OK, synod_raft::http::encode(&answer), false)
        }
        _ => reply(StatusCode::NOT_FOUND, b"no such peer route".to_vec(), false),
    }
}

/// A batch a follower forwarded: stamped with this leader's clock and
/// proposed, never forwarded again.
async fn forwarded(cluster: &Cluster, body: &[u8]) -> Result<(u64, BatchOutcome), WriteError> {
    let batch: Batch = synod_raft::http::decode(body).map_err(WriteError::Stopped)?;
    let batch = batch
        .at(now_ms())
        .map_err(|e| WriteError::Stopped(e.to_string()))?;
    match tokio::time::timeout(COMMIT_TIMEOUT, cluster.replica.write(batch)).await {
        Ok(answer) => answer,
        Err(_) => Err(WriteError::Ambiguous(format!(
            "not committed within {COMMIT_TIMEOUT:?}"
        ))),
    }
}

/// A membership operation; answers `(status, JSON)`.
async fn admin(
    node: &Arc<Node>,
    cluster: &Cluster,
    op: &str,
    body: &[u8],
    path: &str,
) -> (StatusCode, Value) {
    let bad = |why: String| {
        (
            StatusCode::BAD_REQUEST,
            json!({"error": "malformed", "message": why}),
        )
    };
    match op {
        "init" => match serde_json::from_slice::<InitRequest>(body) {
            Ok(request) => init(node, cluster, request).await,
            Err(e) => bad(format!("init: {e}")),
        },
        "join" | "leave" => {
            let change = match op {
                "join" => serde_json::from_slice::<JoinRequest>(body)
                    .map_err(|e| format!("join: {e}"))
                    .and_then(|r| {
                        check_peer_url(&r.addr).map_err(|e| e.to_string())?;
                        Ok(Change::Join(r.id, r.addr))
                    }),
                _ => serde_json::from_slice::<LeaveRequest>(body)
                    .map(|r| Change::Leave(r.id))
                    .map_err(|e| format!("leave: {e}")),
            };
            match change {
                Ok(change) => membership(cluster, change, body, path).await,
                Err(why) => bad(why),
            }
        }
        _ => (
            StatusCode::NOT_FOUND,
            json!({"error": "not_found", "message": format!("no membership operation {op:?}")}),
        ),
    }
}

enum Change {
    Join(NodeId, String),
    Leave(NodeId),
}

/// A membership change on the leader; a follower passes the request on to
/// the leader as it came.
async fn membership(
    cluster: &Cluster,
    change: Change,
    body: &[u8],
    path: &str,
) -> (StatusCode, Value) {
    let result = match &change {
        Change::Join(id, addr) => tokio::time::timeout(
            MEMBERSHIP_TIMEOUT,
            cluster.replica.add_voter(*id, addr.clone()),
        )
        .await
        .unwrap_or_else(|_| {
            Err(MembershipError::Refused(format!(
                "not done within {MEMBERSHIP_TIMEOUT:?}"
            )))
        }),
        Change::Leave(id) => {
            tokio::time::timeout(MEMBERSHIP_TIMEOUT, cluster.replica.remove_voter(*id))
                .await
                .unwrap_or_else(|_| {
                    Err(MembershipError::Refused(format!(
                        "not done within {MEMBERSHIP_TIMEOUT:?}"
                    )))
                })
        }
    };
    match result {
        Ok(()) => (StatusCode::OK, json!({"members": cluster.status().members})),
        Err(MembershipError::NotLeader {
            leader: Some(leader),
        }) if leader.id != cluster.id => {
            let passed = cluster
                .client
                .post(
                    &leader.addr,
                    path,
                    body.to_vec(),
                    now_ms(),
                    MAX_ADMIN_BODY_BYTES,
                    MEMBERSHIP_TIMEOUT,
                )
                .await;
            match passed {
                Ok(reply) => (
                    StatusCode::from_u16(reply.status).unwrap_or(StatusCode::BAD_GATEWAY),
                    serde_json::from_slice(&reply.body).unwrap_or(Value::Null),
                ),
                Err(e) => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    json!({"error": "unavailable", "message": e.to_string()}),
                ),
            }
        }
        Err(MembershipError::NotLeader { .. }) => (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"error": "unavailable", "message": "the cluster has no leader now; retry shortly"}),
        ),
        Err(MembershipError::Refused(why)) => (
            StatusCode::CONFLICT,
            json!({"error": "invalid_state", "message": why}),
        ),
        Err(MembershipError::Stopped(why)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"error": "unavailable", "message": why}),
        ),
    }
}

/// Forms the cluster and writes the space's first entry, signed with an
/// admin key kept in this node's data directory.
async fn init(node: &Arc<Node>, cluster: &Cluster, request: InitRequest) -> (StatusCode, Value) {
    let refuse = |status: StatusCode, kind: &str, why: String| {
        (status, json!({"error": kind, "message": why}))
    };
    if request.members.is_empty() || request.members.len() > MAX_MEMBERS {
        return refuse(
            StatusCode::BAD_REQUEST,
            "malformed",
            format!("a cluster starts with 1 to {MAX_MEMBERS} members"),
        );
    }
    if !request.members.contains_key(&cluster.id) {
        return refuse(
            StatusCode::BAD_REQUEST,
            "malformed",
            format!("the members must include this node, {}", cluster.id),
        );
    }
    for addr in request.members.values() {
        if let Err(e) = check_peer_url(addr) {
            return refuse(StatusCode::BAD_REQUEST, "malformed", e.to_string());
        }
    }
    if node.read(|s| s.head().next_index) > 0 {
        return refuse(
            StatusCode::CONFLICT,
            "invalid_state",
            format!(
                "the cluster is initialized already, with space {}",
                node.read(|s| s.id().to_string())
            ),
        );
    }
    let members = request
        .members
        .iter()
        .map(|(id, addr)| (*id, addr.clone()))
        .collect();
    // A second init (after the first lost its answer) finds the cluster
    // formed and goes on to the space's first entry.
    let formed = cluster.replica.initialize(members).await;
    let until = Instant::now() + COMMIT_TIMEOUT;
    while cluster.leader().is_none() {
        if Instant::now() >= until {
            return refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                format!(
                    "no leader was elected within {COMMIT_TIMEOUT:?} ({}); are a majority of the members running with the same secret?",
                    formed.err().unwrap_or_default()
                ),
            );
        }
        tokio::time::sleep(RETRY_PAUSE).await;
    }
    match genesis(node, &request).await {
        Ok((space, index)) => (
            StatusCode::OK,
            json!({
                "space": space,
                "index": index,
                "admin_key": node.admin_key_path(),
                "leader": cluster.leader(),
            }),
        ),
        Err(e) => refuse(StatusCode::SERVICE_UNAVAILABLE, "unavailable", e),
    }
}

/// Signs and commits the space's first entry with this node's admin key
/// (created if absent).
async fn genesis(node: &Node, request: &InitRequest) -> Result<(String, u64), String> {
    let key_path = node.admin_key_path();
    let admin = if key_path.exists() {
        crate::keys::read(&key_path).map_err(|e| e.to_string())?
    } else {
        let key = crate::keys::generate().map_err(|e| e.to_string())?;
        crate::keys::write(&key_path, &key, false).map_err(|e| e.to_string())?;
        key
    };
    let space = match &request.space_id {
        Some(id) => id.clone(),
        None => format!("space-{}", crate::random_hex(6).map_err(|e| e.to_string())?),
    };
    let mode = if request.open { "open" } else { "closed" };
    let message = Verified::sign(
        MessageType::Configuration,
        json!({"space": space, "created_at": now_ms(), "seq": 0, "change": {"set": {"mode": mode}}}),
        &admin,
    );
    let receipt = node.submit(message).await.map_err(|e| e.to_string())?;
    Ok((space, receipt.index))
}

/// Whether `dir` holds a replica's database.
pub fn is_cluster_dir(dir: &Path) -> bool {
    dir.join(synod_raft::storage::DB_FILE).exists()
}
