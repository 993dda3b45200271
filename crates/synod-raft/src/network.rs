//! How replicas reach each other: a small [`Transport`] trait, and its
//! adapter to openraft's network traits.
//!
//! openraft's own traits carry its retry, backoff and streaming concerns; a
//! transport only has to deliver four kinds of request to a peer and bring
//! back the answer. The simulation implements it in-process (with partitions,
//! loss and delay); the HTTP transport will implement it over the node's
//! listener. Either way the receiving side hands the request to
//! [`Replica`](crate::Replica)'s `handle_*` methods.

use std::future::Future;
use std::time::Duration;

use openraft::error::{
    NetworkError, RPCError, ReplicationClosed, StreamingError, Timeout, Unreachable,
};
use openraft::network::{RPCOption, RPCTypes};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::type_config::alias::{SnapshotOf, VoteOf};
use openraft::{AsyncRuntime, BasicNode, RaftNetworkFactory, RaftNetworkV2};

use crate::{NodeId, Runtime, TypeConfig};

/// Why a request got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// The peer cannot be reached (down, partitioned away, refusing). openraft
    /// backs off before it tries that peer again.
    #[error("node {target} is unreachable: {why}")]
    Unreachable {
        /// The peer.
        target: NodeId,
        /// What the transport saw.
        why: String,
    },
    /// The request or its answer was lost on the way; openraft retries soon.
    #[error("the exchange with node {target} was lost: {why}")]
    Lost {
        /// The peer.
        target: NodeId,
        /// What the transport saw.
        why: String,
    },
}

/// A peer as a transport sees it: its id, and the address the cluster's
/// membership records for it (what `synod cluster init` or `join` named).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The peer's id.
    pub id: NodeId,
    /// Where it is reached, e.g. `http://10.0.0.2:7420`.
    pub addr: String,
}

/// Delivers Raft requests to peers. Implementations must be cheap to share:
/// openraft opens one client per peer and per purpose, each holding the
/// transport.
pub trait Transport: Send + Sync + 'static {
    /// Replicates entries (or a heartbeat) to `target`.
    fn append_entries(
        &self,
        target: &Target,
        rpc: AppendEntriesRequest<TypeConfig>,
    ) -> impl Future<Output = Result<AppendEntriesResponse<TypeConfig>, TransportError>> + Send;

    /// Asks `target` for its vote.
    fn vote(
        &self,
        target: &Target,
        rpc: VoteRequest<TypeConfig>,
    ) -> impl Future<Output = Result<VoteResponse<TypeConfig>, TransportError>> + Send;

    /// Asks `target` whether it would vote, without disturbing it (pre-vote:
    /// a node cut off from the cluster cannot depose a healthy leader by
    /// raising its term).
    fn pre_vote(
        &self,
        target: &Target,
        rpc: VoteRequest<TypeConfig>,
    ) -> impl Future<Output = Result<VoteResponse<TypeConfig>, TransportError>> + Send;

    /// Sends a whole snapshot to `target`, for a follower whose missing
    /// entries were already purged from the leader's log.
    fn snapshot(
        &self,
        target: &Target,
        vote: VoteOf<TypeConfig>,
        snapshot: SnapshotOf<TypeConfig, Vec<u8>>,
    ) -> impl Future<Output = Result<SnapshotResponse<TypeConfig>, TransportError>> + Send;
}

/// openraft's network factory over a [`Transport`].
#[derive(Debug)]
pub struct Network<T> {
    transport: std::sync::Arc<T>,
}

impl<T> Network<T> {
    /// A factory whose clients all send through `transport`.
    pub fn new(transport: std::sync::Arc<T>) -> Network<T> {
        Network { transport }
    }
}

impl<T: Transport> RaftNetworkFactory<TypeConfig> for Network<T> {
    type Network = Peer<T>;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Peer<T> {
        Peer {
            transport: self.transport.clone(),
            target: Target {
                id: target,
                addr: node.addr.clone(),
            },
        }
    }
}

/// One peer, as openraft's replication and election tasks see it.
#[derive(Debug)]
pub struct Peer<T> {
    transport: std::sync::Arc<T>,
    target: Target,
}

fn rpc_error(e: TransportError) -> RPCError<TypeConfig> {
    match e {
        TransportError::Unreachable { .. } => RPCError::Unreachable(Unreachable::new(&e)),
        TransportError::Lost { .. } => RPCError::Network(NetworkError::new(&e)),
    }
}

impl<T> Peer<T> {
    /// Bounds one exchange by openraft's hard deadline for it, so a lost
    /// message never holds a replication stream forever.
    async fn bounded<R>(
        &self,
        action: RPCTypes,
        ttl: Duration,
        exchange: impl Future<Output = Result<R, TransportError>> + Send,
    ) -> Result<R, RPCError<TypeConfig>> {
        match Runtime::timeout(ttl, exchange).await {
            Ok(answer) => answer.map_err(rpc_error),
            Err(_) => Err(RPCError::Timeout(Timeout {
                action,
                id: self.target.id,
                target: self.target.id,
                timeout: ttl,
            })),
        }
    }
}

impl<T: Transport> RaftNetworkV2<TypeConfig> for Peer<T> {
    type SnapshotData = Vec<u8>;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        let exchange = self.transport.append_entries(&self.target, rpc);
        self.bounded(RPCTypes::AppendEntries, option.hard_ttl(), exchange)
            .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        let exchange = self.transport.vote(&self.target, rpc);
        self.bounded(RPCTypes::Vote, option.hard_ttl(), exchange)
            .await
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        let exchange = self.transport.pre_vote(&self.target, rpc);
        self.bounded(RPCTypes::Vote, option.hard_ttl(), exchange)
            .await
    }

    async fn full_snapshot(
        &mut self,
        vote: VoteOf<TypeConfig>,
        snapshot: SnapshotOf<TypeConfig, Vec<u8>>,
        cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let exchange = self.transport.snapshot(&self.target, vote, snapshot);
        let bounded = self.bounded(RPCTypes::InstallSnapshot, option.hard_ttl(), exchange);
        match Runtime::select2(cancel, bounded).await {
            openraft_rt::Select2::First(closed) => Err(StreamingError::Closed(closed)),
            openraft_rt::Select2::Second(answer) => answer.map_err(|e| match e {
                RPCError::Timeout(t) => StreamingError::Timeout(t),
                RPCError::Unreachable(u) => StreamingError::Unreachable(u),
                RPCError::Network(n) => StreamingError::Network(n),
                RPCError::RemoteError(r) => {
                    StreamingError::Network(NetworkError::from_string(r.to_string()))
                }
            }),
        }
    }
}
