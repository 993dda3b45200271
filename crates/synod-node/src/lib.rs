//! A synod node: one coordination space behind a local sequencer, or a
//! replica of a cluster (`cluster`), served over HTTP with a live event
//! stream, a web inbox for human reviewers, and Prometheus metrics.
//!
//! The node decides nothing itself. Every message goes through
//! [`synod_core::Space`]; the sequencer only orders messages, stamps log time,
//! and makes each batch durable (or, in a cluster, committed) before anyone
//! hears about it.

#![warn(missing_docs)]

mod api;
pub mod card;
pub mod cluster;
mod events;
mod inbox;
pub mod keys;
mod metrics;
mod sequencer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, mpsc};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::json;
use synod_core::config::Mode;
use synod_core::log::LogIndex;
use synod_core::space::Effect;
use synod_core::wire::{MessageType, Prepared, Verified};
use synod_core::{Rejection, Space};
use synod_store::{Store, StoredEntry};
use tokio::sync::{broadcast, oneshot};

pub use api::{ROUTES, error_statuses, router, router_with, status_of};
pub use metrics::Metrics;
pub use sequencer::{Receipt, SNAPSHOT_EVERY_ENTRIES};

/// Default address `synod serve` listens on.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7420";
/// Default data directory.
pub const DEFAULT_DATA_DIR: &str = "synod-data";
/// The admin key's file name in the data directory.
pub const ADMIN_KEY_FILE: &str = "admin.key";
/// Most messages waiting for the sequencer; beyond it a submission gets 503.
pub const MAX_QUEUED_MESSAGES: usize = 16_384;
/// Most published entries an event subscriber may fall behind before it
/// re-reads from the store.
pub const MAX_EVENT_BACKLOG: usize = 4_096;
/// Trust points kept per agent for the inbox's chart.
pub const MAX_TRUST_POINTS: usize = 256;
/// Entries scanned at start-up to refill the trust charts.
pub const TRUST_HISTORY_SCAN: u64 = 50_000;

/// What a node is started with.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Where the log, snapshots and admin key live.
    pub data_dir: PathBuf,
    /// Whether a newly created space is open (anyone may register) rather
    /// than closed. Ignored when the space exists.
    pub open: bool,
    /// Id of a newly created space; random when `None`.
    pub space_id: Option<String>,
    /// Host names (besides IP addresses and `localhost`) that requests may
    /// name in `Host`. Anything else is refused, so that a web page cannot
    /// reach the node through DNS rebinding.
    pub allowed_hosts: Vec<String>,
    /// The URL clients reach this node at (`https://synod.example.com`).
    /// With it, the agent card names that URL and is signed with the node's
    /// key; without it, the card names the host a request used and is not
    /// signed, since anyone could make the node sign a card naming any IP.
    pub public_url: Option<String>,
}

impl Default for NodeConfig {
    fn default() -> NodeConfig {
        NodeConfig {
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            open: false,
            space_id: None,
            allowed_hosts: Vec::new(),
            public_url: None,
        }
    }
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] synod_store::StoreError),
    /// A file could not be read or written.
    #[error("{0}")]
    Io(String),
}

/// Why a submission was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The protocol refused the message.
    #[error(transparent)]
    Rejected(Rejection),
    /// The node cannot take messages now (queue full, or stopped after a
    /// storage failure).
    #[error("unavailable: {0}")]
    Unavailable(String),
}

/// A message for the sequencer: already verified (signed by the node
/// itself), or prepared and left for the sequencer to verify in a batch.
// Nearly every submission is `Prepared`; boxing it would add an allocation
// per message to save space only in the rare `Verified` case.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Submission {
    /// Its signature is checked.
    Verified(Verified),
    /// Its signature is decoded; the sequencer checks it.
    Prepared(Prepared),
}

impl From<Verified> for Submission {
    fn from(message: Verified) -> Submission {
        Submission::Verified(message)
    }
}

impl From<Prepared> for Submission {
    fn from(message: Prepared) -> Submission {
        Submission::Prepared(message)
    }
}

/// One applied entry, as published to event subscribers once durable.
#[derive(Debug, Clone)]
pub struct Published {
    /// Entry index.
    pub index: LogIndex,
    /// Log time.
    pub time: u64,
    /// Effects of applying it.
    pub effects: Vec<Effect>,
    /// Its Server-Sent Events text, made once for all subscribers.
    pub frames: std::sync::OnceLock<String>,
}

/// A point of an agent's trust history.
#[derive(Debug, Clone)]
pub struct TrustPoint {
    /// Log time of the outcome.
    pub time: u64,
    /// Entry index.
    pub index: LogIndex,
    /// Domain.
    pub domain: String,
    /// Trust after the outcome.
    pub trust: String,
}

/// Where a node's space lives: its own store behind the local sequencer, or
/// a replica of a cluster.
// One per node, so the size of the larger variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Backend {
    /// Both boxed: the two differ in size by more than the state a
    /// configuration holds.
    Local(Box<Local>),
    Cluster(Box<cluster::Cluster>),
}

/// The space and store of a node that sequences alone.
#[derive(Debug)]
pub(crate) struct Local {
    pub(crate) space: RwLock<Space>,
    pub(crate) store: Store,
}

/// A running node.
#[derive(Debug)]
pub struct Node {
    backend: Backend,
    events: broadcast::Sender<Arc<Published>>,
    durable_next: AtomicU64,
    queued: std::sync::atomic::AtomicUsize,
    queue: mpsc::SyncSender<sequencer::Command>,
    metrics: Metrics,
    keys: Keys,
    fatal: Mutex<Option<String>>,
    trust_history: Mutex<TrustHistory>,
    data_dir: PathBuf,
    allowed_hosts: Vec<String>,
    /// The agent card, signed once with the space's admin key, when the
    /// node knows its public URL and has the key.
    signed_card: Option<serde_json::Value>,
    /// Log entries replayed after the latest usable snapshot when the node
    /// opened: what a restart cost.
    replayed_at_open: u64,
}

/// Each agent's recent trust points, oldest first.
type TrustHistory = std::collections::HashMap<String, std::collections::VecDeque<TrustPoint>>;

/// Adds the trust updates of `published` to `history`.
fn push_trust_points(history: &mut TrustHistory, published: &Published) {
    for effect in &published.effects {
        if let Effect::TrustUpdated {
            agent,
            domain,
            after,
            ..
        } = effect
        {
            let points = history.entry(agent.to_string()).or_default();
            if points.len() == MAX_TRUST_POINTS {
                points.pop_front();
            }
            points.push_back(TrustPoint {
                time: published.time,
                index: published.index,
                domain: domain.to_string(),
                trust: after.to_string(),
            });
        }
    }
}

/// Milliseconds since the Unix epoch: the node's source of log time.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn random_hex(bytes: usize) -> Result<String, NodeError> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| NodeError::Io(format!("no randomness: {e}")))?;
    Ok(synod_core::wire::hex_encode(&buf))
}

impl Node {
    /// Opens the space in `config.data_dir`, creating it (with an admin key)
    /// on first start, recovers its state, and starts the sequencer.
    pub fn open(config: &NodeConfig) -> Result<Arc<Node>, NodeError> {
        if cluster::is_cluster_dir(&config.data_dir) {
            return Err(NodeError::Io(format!(
                "{} holds a cluster replica; start it with its --node-id and --cluster-secret",
                config.data_dir.display()
            )));
        }
        let store = Store::open(&config.data_dir)?;
        let (mut space, replayed) = store.recover()?;
        if space.head().next_index == 0 {
            Self::create_space(&store, &mut space, config)?;
        }
        let (queue, rx) = mpsc::sync_channel(MAX_QUEUED_MESSAGES);
        let (events, _) = broadcast::channel(MAX_EVENT_BACKLOG);
        let signed_card = match (
            &config.public_url,
            keys::read(&config.data_dir.join(ADMIN_KEY_FILE)),
        ) {
            (Some(url), Ok(key)) => Some(card::sign(
                card::card(url.trim_end_matches('/'), space.id()),
                &key,
            )),
            _ => None,
        };
        let node = Arc::new(Node {
            durable_next: AtomicU64::new(space.head().next_index),
            queued: std::sync::atomic::AtomicUsize::new(0),
            backend: Backend::Local(Box::new(Local {
                space: RwLock::new(space),
                store,
            })),
            events,
            queue,
            metrics: Metrics::default(),
            keys: Keys::default(),
            fatal: Mutex::new(None),
            trust_history: Mutex::new(Default::default()),
            data_dir: config.data_dir.clone(),
            allowed_hosts: config.allowed_hosts.clone(),
            signed_card,
            replayed_at_open: replayed,
        });
        node.refill_trust_history()?;
        let worker = node.clone();
        std::thread::Builder::new()
            .name("synod-sequencer".into())
            .spawn(move || sequencer::run(worker, rx))
            .map_err(|e| NodeError::Io(e.to_string()))?;
        Ok(node)
    }

    fn create_space(
        store: &Store,
        space: &mut Space,
        config: &NodeConfig,
    ) -> Result<(), NodeError> {
        let key_path = config.data_dir.join(ADMIN_KEY_FILE);
        let admin = if key_path.exists() {
            keys::read(&key_path).map_err(|e| NodeError::Io(e.to_string()))?
        } else {
            let key = keys::generate().map_err(|e| NodeError::Io(e.to_string()))?;
            keys::write(&key_path, &key, false).map_err(|e| NodeError::Io(e.to_string()))?;
            key
        };
        let space_id = match &config.space_id {
            Some(id) => id.clone(),
            None => format!("space-{}", random_hex(6)?),
        };
        let mode = if config.open { "open" } else { "closed" };
        let now = now_ms();
        let genesis = Verified::sign(
            MessageType::Configuration,
            json!({"space": space_id, "created_at": now, "seq": 0, "change": {"set": {"mode": mode}}}),
            &admin,
        );
        let (entry, effects) = space
            .append(genesis, now)
            .map_err(|e| NodeError::Io(format!("creating the space: {e}")))?;
        store.append(&[(entry, effects)])?;
        debug_assert_eq!(space.config().mode == Mode::Open, config.open);
        Ok(())
    }

    /// Whether a request's `Host` header names this node: an IP address,
    /// `localhost`, or a configured name (ports are ignored).
    pub fn host_allowed(&self, host: Option<&str>) -> bool {
        let Some(host) = host else { return true };
        let name = match host.strip_prefix('[') {
            Some(rest) => rest.split(']').next().unwrap_or(""),
            None => match host.rsplit_once(':') {
                Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
                _ => host,
            },
        };
        name.parse::<std::net::IpAddr>().is_ok()
            || name.eq_ignore_ascii_case("localhost")
            || self
                .allowed_hosts
                .iter()
                .any(|a| a.eq_ignore_ascii_case(name))
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Log entries replayed on top of the latest snapshot when this node
    /// opened (all of them if there was none).
    pub fn replayed_at_open(&self) -> u64 {
        self.replayed_at_open
    }

    /// The signed agent card, if the node knows its public URL.
    pub(crate) fn signed_card(&self) -> Option<&serde_json::Value> {
        self.signed_card.as_ref()
    }

    /// The admin key file of this node's space.
    pub fn admin_key_path(&self) -> PathBuf {
        self.data_dir.join(ADMIN_KEY_FILE)
    }

    /// Reads the current state. Blocks while the sequencer is writing a batch
    /// (or the cluster's replica applying one), so readers never see an
    /// entry that is not yet durable. In a cluster this is the state this
    /// node has applied: a committed prefix of the log, possibly behind the
    /// leader by a few milliseconds (`?consistent=true` waits for it).
    pub fn read<R>(&self, f: impl FnOnce(&Space) -> R) -> R {
        match &self.backend {
            Backend::Local(local) => {
                let space = local.space.read().unwrap_or_else(|e| e.into_inner());
                f(&space)
            }
            Backend::Cluster(cluster) => cluster.read(f),
        }
    }

    /// The local sequencer's space and store; `None` in a cluster.
    pub(crate) fn local(&self) -> Option<&Local> {
        match &self.backend {
            Backend::Local(local) => Some(local.as_ref()),
            Backend::Cluster(_) => None,
        }
    }

    /// The cluster this node is a replica of, if it is one.
    pub fn cluster(&self) -> Option<&cluster::Cluster> {
        match &self.backend {
            Backend::Local(_) => None,
            Backend::Cluster(cluster) => Some(cluster.as_ref()),
        }
    }

    /// The index of the next entry not yet durable: everything before it is
    /// on disk. In a cluster, the next entry this replica has not applied,
    /// read from its state: the state shows an applied run only once it is
    /// durable, and a read barrier (`?consistent=true`) returns once the
    /// state has the read index, so an export or event stream that starts
    /// after the barrier reaches at least that far.
    pub fn durable_next(&self) -> LogIndex {
        match &self.backend {
            Backend::Local(_) => self.durable_next.load(Ordering::Acquire),
            Backend::Cluster(cluster) => cluster.read(|s| s.head().next_index),
        }
    }

    /// The first log index this node holds: 0, or, on a cluster node that
    /// installed a snapshot over a gap it is still filling from a peer, the
    /// snapshot's head. Reads from below it are refused until the gap is
    /// filled.
    pub fn log_start(&self) -> LogIndex {
        match &self.backend {
            Backend::Local(_) => 0,
            Backend::Cluster(cluster) => cluster.log_start(),
        }
    }

    /// Reads durable log entries from `from` on, at most `limit` (at most
    /// [`synod_store::MAX_READ_ENTRIES`]), from the store or, in a cluster,
    /// from this replica's synod log.
    pub fn read_log(&self, from: LogIndex, limit: usize) -> Result<Vec<StoredEntry>, String> {
        match &self.backend {
            Backend::Local(local) => local.store.read(from, limit).map_err(|e| e.to_string()),
            Backend::Cluster(cluster) => cluster.read_log(from, limit),
        }
    }

    /// Metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Decoded signer keys.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// Messages waiting for the sequencer.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Subscribes to entries as they become durable.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Published>> {
        self.events.subscribe()
    }

    /// Why the node stopped taking messages, if it did.
    pub fn fatal(&self) -> Option<String> {
        let own = self.fatal.lock().unwrap_or_else(|e| e.into_inner()).clone();
        own.or_else(|| self.cluster().and_then(|c| c.stopped()))
    }

    /// An agent's recent trust points.
    pub fn trust_history(&self, agent: &str) -> Vec<TrustPoint> {
        let history = self.trust_history.lock().unwrap_or_else(|e| e.into_inner());
        history
            .get(agent)
            .map(|d| d.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn record_trust(&self, published: &Published) {
        let mut history = self.trust_history.lock().unwrap_or_else(|e| e.into_inner());
        push_trust_points(&mut history, published);
    }

    /// Reads the trust points of the last [`TRUST_HISTORY_SCAN`] durable
    /// entries and puts them before the points recorded since (which may
    /// already be arriving: a cluster node refills in the background).
    fn refill_trust_history(&self) -> Result<(), NodeError> {
        let end = self.durable_next();
        let mut from = end.saturating_sub(TRUST_HISTORY_SCAN).max(self.log_start());
        let mut found = TrustHistory::new();
        while from < end {
            let batch = self
                .read_log(from, synod_store::MAX_READ_ENTRIES)
                .map_err(NodeError::Io)?;
            let Some(last) = batch.last() else { break };
            from = last.entry.index + 1;
            for stored in batch.into_iter().filter(|s| s.entry.index < end) {
                push_trust_points(
                    &mut found,
                    &Published {
                        index: stored.entry.index,
                        time: stored.entry.time,
                        effects: stored.effects,
                        frames: std::sync::OnceLock::new(),
                    },
                );
            }
        }
        let mut history = self.trust_history.lock().unwrap_or_else(|e| e.into_inner());
        for (agent, older) in found {
            let points = history.entry(agent).or_default();
            let first = points.front().map(|p| p.index);
            let mut merged: std::collections::VecDeque<TrustPoint> = older
                .into_iter()
                .filter(|p| first.is_none_or(|f| p.index < f))
                .collect();
            merged.extend(points.drain(..));
            while merged.len() > MAX_TRUST_POINTS {
                merged.pop_front();
            }
            *points = merged;
        }
        Ok(())
    }

    /// Submits a message and waits until it is durable (or refused). A
    /// [`Prepared`] message has its signature checked by the sequencer, in a
    /// batch with the others that arrived meanwhile.
    pub async fn submit(&self, message: impl Into<Submission>) -> Result<Receipt, SubmitError> {
        let message = message.into();
        if let Some(why) = self.fatal() {
            return Err(SubmitError::Unavailable(why));
        }
        let (reply, rx) = oneshot::channel();
        self.queued.fetch_add(1, Ordering::Relaxed);
        self.queue
            .try_send(sequencer::Command::Submit { message, reply })
            .inspect_err(|_| {
                self.queued.fetch_sub(1, Ordering::Relaxed);
            })
            .map_err(|e| match e {
                mpsc::TrySendError::Full(_) => SubmitError::Unavailable(format!(
                    "the node has {MAX_QUEUED_MESSAGES} messages waiting; retry shortly"
                )),
                mpsc::TrySendError::Disconnected(_) => {
                    SubmitError::Unavailable("the sequencer has stopped".into())
                }
            })?;
        rx.await.map_err(|_| {
            SubmitError::Unavailable("the sequencer stopped before answering".into())
        })?
    }

    /// Stops the sequencer after the messages already queued.
    pub fn shutdown(&self) {
        let _ = self.queue.try_send(sequencer::Command::Shutdown);
    }

    /// Stops the node's tasks: in a cluster, its replica (what is on disk
    /// stays). Call after [`Node::shutdown`].
    pub async fn close(&self) {
        if let Some(cluster) = self.cluster() {
            cluster.close().await;
        }
    }
}

/// Most decoded signer keys the node keeps; the cache starts over when full.
pub const MAX_CACHED_KEYS: usize = 200_000;

/// Signer keys decoded once and kept, so that checking a message from a known
/// agent does not decompress its key again.
#[derive(Debug, Default)]
pub struct Keys(Mutex<std::collections::HashMap<String, ed25519_dalek::VerifyingKey>>);

impl synod_core::identity::KeyCache for Keys {
    fn get(&self, did: &str) -> Option<ed25519_dalek::VerifyingKey> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(did)
            .copied()
    }

    fn put(&self, did: &str, key: ed25519_dalek::VerifyingKey) {
        let mut keys = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if keys.len() >= MAX_CACHED_KEYS {
            keys.clear();
        }
        keys.insert(did.to_string(), key);
    }
}
