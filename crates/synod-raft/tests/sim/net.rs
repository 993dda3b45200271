//! The simulated network: every replica of one cluster in one process, with
//! partitions, message loss and delay drawn from the schedule's seed.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::type_config::alias::{SnapshotOf, VoteOf};
use synod_raft::network::{Target, Transport, TransportError};
use synod_raft::{NodeId, Replica, TypeConfig};

use crate::rng::Rng;

/// Most delay one message may take, one way.
pub const MAX_DELAY_MS: u64 = 40;

#[derive(Debug)]
struct Links {
    /// The replicas that are up, by id.
    up: BTreeMap<NodeId, Replica>,
    /// Bumped at every crash, so a request from a dead incarnation is dropped.
    incarnation: BTreeMap<NodeId, u64>,
    /// Two nodes talk only if they are on the same side.
    side: BTreeMap<NodeId, u8>,
    /// Chance, in thousandths, that a message is lost.
    loss_per_mille: u64,
    rng: Rng,
    delivered: u64,
    dropped: u64,
}

/// The network of one simulated cluster.
#[derive(Debug, Clone)]
pub struct SimNet(Arc<Mutex<Links>>);

impl SimNet {
    pub fn new(seed: u64) -> SimNet {
        SimNet(Arc::new(Mutex::new(Links {
            up: BTreeMap::new(),
            incarnation: BTreeMap::new(),
            side: BTreeMap::new(),
            loss_per_mille: 0,
            rng: Rng::new(seed),
            delivered: 0,
            dropped: 0,
        })))
    }

    /// A transport for the current incarnation of `from`.
    pub fn transport(&self, from: NodeId) -> Arc<SimTransport> {
        let incarnation = *self.0.lock().unwrap().incarnation.entry(from).or_default();
        Arc::new(SimTransport {
            net: self.clone(),
            from,
            incarnation,
        })
    }

    pub fn attach(&self, replica: Replica) {
        self.0.lock().unwrap().up.insert(replica.id(), replica);
    }

    /// Takes `id` off the network and ends its incarnation.
    pub fn detach(&self, id: NodeId) -> Option<Replica> {
        let mut links = self.0.lock().unwrap();
        *links.incarnation.entry(id).or_default() += 1;
        links.up.remove(&id)
    }

    pub fn partition(&self, side: BTreeMap<NodeId, u8>) {
        self.0.lock().unwrap().side = side;
    }

    pub fn heal(&self) {
        let mut links = self.0.lock().unwrap();
        links.side.clear();
        links.loss_per_mille = 0;
    }

    pub fn set_loss(&self, per_mille: u64) {
        self.0.lock().unwrap().loss_per_mille = per_mille;
    }

    pub fn counts(&self) -> (u64, u64) {
        let links = self.0.lock().unwrap();
        (links.delivered, links.dropped)
    }
}

/// One node's way out.
#[derive(Debug)]
pub struct SimTransport {
    net: SimNet,
    from: NodeId,
    incarnation: u64,
}

/// What the network decided for one leg of an exchange.
enum Leg {
    Deliver(Duration),
    Lose(Duration),
    Unreachable,
}

impl SimTransport {
    fn leg(&self, target: NodeId) -> Leg {
        let mut links = self.net.0.lock().unwrap();
        let alive = links.incarnation.get(&self.from).copied().unwrap_or(0) == self.incarnation
            && links.up.contains_key(&self.from)
            && links.up.contains_key(&target);
        let side = |n: NodeId| links.side.get(&n).copied().unwrap_or(0);
        if !alive || side(self.from) != side(target) {
            links.dropped += 1;
            return Leg::Unreachable;
        }
        let loss = links.loss_per_mille;
        let delay = Duration::from_millis(links.rng.below(MAX_DELAY_MS + 1));
        if links.rng.below(1000) < loss {
            links.dropped += 1;
            Leg::Lose(delay)
        } else {
            links.delivered += 1;
            Leg::Deliver(delay)
        }
    }

    /// Carries a request to `target` and its answer back, each leg delayed
    /// and possibly lost, and checked against partitions and crashes when it
    /// arrives.
    async fn exchange<R, E, F, Fut>(&self, target: NodeId, call: F) -> Result<R, TransportError>
    where
        F: FnOnce(Replica) -> Fut,
        Fut: Future<Output = Result<R, E>>,
        E: std::fmt::Display,
    {
        let unreachable = |why: &str| TransportError::Unreachable {
            target,
            why: why.to_string(),
        };
        let lost = |why: &str| TransportError::Lost {
            target,
            why: why.to_string(),
        };
        match self.leg(target) {
            Leg::Unreachable => {
                // A refused connection still takes a moment.
                tokio::time::sleep(Duration::from_millis(5)).await;
                return Err(unreachable("down or partitioned"));
            }
            Leg::Lose(delay) => {
                tokio::time::sleep(delay).await;
                return Err(lost("request lost"));
            }
            Leg::Deliver(delay) => tokio::time::sleep(delay).await,
        }
        let replica = {
            let links = self.net.0.lock().unwrap();
            links.up.get(&target).cloned()
        };
        let Some(replica) = replica else {
            return Err(unreachable("went down"));
        };
        let answer = call(replica).await.map_err(|e| lost(&e.to_string()))?;
        match self.leg(target) {
            Leg::Deliver(delay) => {
                tokio::time::sleep(delay).await;
                Ok(answer)
            }
            Leg::Lose(delay) => {
                tokio::time::sleep(delay).await;
                Err(lost("answer lost"))
            }
            Leg::Unreachable => Err(unreachable("answer could not return")),
        }
    }
}

impl Transport for SimTransport {
    async fn append_entries(
        &self,
        target: &Target,
        rpc: AppendEntriesRequest<TypeConfig>,
    ) -> Result<AppendEntriesResponse<TypeConfig>, TransportError> {
        self.exchange(
            target.id,
            |r| async move { r.handle_append_entries(rpc).await },
        )
        .await
    }

    async fn vote(
        &self,
        target: &Target,
        rpc: VoteRequest<TypeConfig>,
    ) -> Result<VoteResponse<TypeConfig>, TransportError> {
        self.exchange(target.id, |r| async move { r.handle_vote(rpc).await })
            .await
    }

    async fn pre_vote(
        &self,
        target: &Target,
        rpc: VoteRequest<TypeConfig>,
    ) -> Result<VoteResponse<TypeConfig>, TransportError> {
        self.exchange(target.id, |r| async move { r.handle_pre_vote(rpc).await })
            .await
    }

    async fn snapshot(
        &self,
        target: &Target,
        vote: VoteOf<TypeConfig>,
        snapshot: SnapshotOf<TypeConfig, Vec<u8>>,
    ) -> Result<SnapshotResponse<TypeConfig>, TransportError> {
        self.exchange(target.id, |r| async move {
            r.handle_snapshot(vote, snapshot).await
        })
        .await
    }
}
