//! The safety properties, one checker each, run after every simulated step.
//! Each records violations instead of panicking, so a run reports all it saw
//! together with its seed.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use sha2::{Digest as _, Sha256};
use synod_core::Payload;
use synod_core::wire::Digest;
use synod_raft::NodeId;
use synod_raft::storage::{AppliedRecord, ApplyObserver, ReplicaDb};

/// What a replica's state machine reported, in the order it happened.
#[derive(Debug, Clone)]
pub enum Event {
    Applied(AppliedRecord),
    Installed { index: u64, state_hash: Digest },
}

/// The shared, ordered record of every replica's applies.
pub type Journal = Arc<Mutex<Vec<(NodeId, Event)>>>;

/// Hands one replica's applies to the journal.
#[derive(Debug)]
pub struct Observer {
    pub node: NodeId,
    pub journal: Journal,
}

impl ApplyObserver for Observer {
    fn applied(&self, record: AppliedRecord) {
        self.journal
            .lock()
            .unwrap()
            .push((self.node, Event::Applied(record)));
    }

    fn installed(&self, index: u64, state_hash: Digest) {
        self.journal
            .lock()
            .unwrap()
            .push((self.node, Event::Installed { index, state_hash }));
    }
}

/// A write a client was told is committed.
#[derive(Debug, Clone)]
pub struct Ack {
    /// Raft index of its entry.
    pub index: u64,
    /// Digest of its batch.
    pub digest: Digest,
    /// Synod index and message id of every message the batch had accepted.
    pub accepted: Vec<(u64, Digest)>,
}

/// What the checkers remember across steps.
#[derive(Debug, Default)]
pub struct Checker {
    /// Raft index → (term, digest, first node seen applying it).
    entries: BTreeMap<u64, (u64, Digest, NodeId)>,
    /// Raft index → (state hash right after it, first node).
    state_hashes: BTreeMap<u64, (Digest, NodeId)>,
    /// Synod index → (entry hash, first node).
    synod: BTreeMap<u64, (Digest, NodeId)>,
    /// Node → last Raft index it applied (or installed).
    last_applied: BTreeMap<NodeId, u64>,
    /// Term → the node seen leading in it.
    leaders: BTreeMap<u64, NodeId>,
    pub violations: Vec<String>,
    trace: Sha256,
    pub applied_events: u64,
    pub installs: u64,
}

impl Checker {
    fn violation(&mut self, what: String) {
        if self.violations.len() < 20 {
            self.violations.push(what);
        }
    }

    /// Folds something that happened into the run's trace digest, which two
    /// runs of one seed must agree on.
    pub fn trace(&mut self, what: &str) {
        self.trace.update(what.as_bytes());
        self.trace.update(b"\n");
    }

    pub fn trace_digest(&self) -> String {
        Digest(self.trace.clone().finalize().into()).to_hex()
    }

    /// Runs every per-event checker on what the journal gathered.
    pub fn observe(&mut self, journal: &Journal) {
        let events = std::mem::take(&mut *journal.lock().unwrap());
        for (node, event) in events {
            match event {
                Event::Applied(record) => {
                    self.trace(&format!(
                        "{node} applied {} {} {} {}",
                        record.index, record.term, record.digest, record.state_hash
                    ));
                    self.applied_events += 1;
                    self.check_apply_continuity(node, record.index, false);
                    self.check_committed_agreement(node, &record);
                    self.check_state_hash(node, record.index, record.state_hash);
                    self.check_synod_agreement(node, &record.synod);
                }
                Event::Installed { index, state_hash } => {
                    self.trace(&format!("{node} installed {index} {state_hash}"));
                    self.installs += 1;
                    self.check_apply_continuity(node, index, true);
                    self.check_state_hash(node, index, state_hash);
                }
            }
        }
    }

    /// Committed entries agree: no two replicas apply different entries at
    /// the same Raft index (Raft's state-machine safety).
    pub fn check_committed_agreement(&mut self, node: NodeId, record: &AppliedRecord) {
        match self.entries.get(&record.index) {
            None => {
                self.entries
                    .insert(record.index, (record.term, record.digest, node));
            }
            Some(&(term, digest, first)) if (term, digest) != (record.term, record.digest) => {
                self.violation(format!(
                    "agreement: node {node} applied ({}, {}) at raft index {} but node {first} applied ({term}, {digest})",
                    record.term, record.digest, record.index
                ));
            }
            Some(_) => {}
        }
    }

    /// Equal state hash at equal log index, including a state that arrived
    /// by snapshot.
    pub fn check_state_hash(&mut self, node: NodeId, index: u64, hash: Digest) {
        match self.state_hashes.get(&index) {
            None => {
                self.state_hashes.insert(index, (hash, node));
            }
            Some(&(expected, first)) if expected != hash => self.violation(format!(
                "state hash: node {node} has {hash} after raft index {index}, node {first} had {expected}"
            )),
            Some(_) => {}
        }
    }

    /// The derived synod logs agree entry by entry.
    pub fn check_synod_agreement(&mut self, node: NodeId, synod: &[(u64, Digest)]) {
        for &(index, hash) in synod {
            match self.synod.get(&index) {
                None => {
                    self.synod.insert(index, (hash, node));
                }
                Some(&(expected, first)) if expected != hash => self.violation(format!(
                    "synod log: node {node} derived entry {index} = {hash}, node {first} derived {expected}"
                )),
                Some(_) => {}
            }
        }
    }

    /// A replica applies each Raft entry exactly once, in order, across
    /// crashes too (its applied state is durable): the next entry it applies
    /// follows the last one, and a snapshot only moves it forward.
    pub fn check_apply_continuity(&mut self, node: NodeId, index: u64, installed: bool) {
        let last = self.last_applied.get(&node).copied();
        let ok = match (last, installed) {
            (None, false) => index <= 1,
            (Some(last), false) => index == last + 1,
            (None, true) => true,
            (Some(last), true) => index > last,
        };
        if !ok {
            self.violation(format!(
                "apply order: node {node} {} raft index {index} after {last:?}",
                if installed { "installed" } else { "applied" }
            ));
        }
        self.last_applied.insert(node, index);
    }

    /// At most one leader per term (election safety). `seen` is each live
    /// node's (term, is leader).
    pub fn check_election_safety(&mut self, seen: &[(NodeId, u64, bool)]) {
        for &(node, term, leader) in seen {
            if !leader {
                continue;
            }
            match self.leaders.get(&term) {
                None => {
                    self.trace(&format!("leader {node} term {term}"));
                    self.leaders.insert(term, node);
                }
                Some(&other) if other != node => self.violation(format!(
                    "election safety: nodes {other} and {node} both led term {term}"
                )),
                Some(_) => {}
            }
        }
    }

    /// No acknowledged entry is lost: each is what the replicas applied at
    /// its index, and a majority of replicas holds it durably (in their Raft
    /// log on disk, or applied into their durable state). `dbs` are every
    /// replica's databases, down ones included: what a crash left on disk.
    pub fn check_acked_durable(&mut self, acks: &[Ack], dbs: &[(NodeId, &ReplicaDb)]) {
        let majority = dbs.len() / 2 + 1;
        let mut held: Vec<(NodeId, Option<u64>, BTreeMap<u64, Digest>)> = Vec::new();
        for &(node, db) in dbs {
            let applied = db.durable_applied().unwrap_or(None);
            let log = db
                .durable_log()
                .unwrap_or_default()
                .into_iter()
                .map(|(i, _, d)| (i, d))
                .collect();
            held.push((node, applied, log));
        }
        for ack in acks {
            if let Some(&(_, digest, node)) = self.entries.get(&ack.index)
                && digest != ack.digest
            {
                self.violation(format!(
                    "lost ack: raft index {} was acknowledged as {} but node {node} applied {digest}",
                    ack.index, ack.digest
                ));
            }
            let holders = held
                .iter()
                .filter(|(_, applied, log)| {
                    applied.is_some_and(|a| a >= ack.index)
                        || log.get(&ack.index) == Some(&ack.digest)
                })
                .count();
            if holders < majority {
                self.violation(format!(
                    "lost ack: raft index {} is held durably by {holders} of {} replicas",
                    ack.index,
                    dbs.len()
                ));
            }
        }
    }

    /// After healing: every replica applied the same last entry, and every
    /// acknowledged message is in every replica's synod log at the index it
    /// was acknowledged with (for replicas whose synod log reaches back so
    /// far; one that installed a snapshot over a gap starts later).
    pub fn check_converged(
        &mut self,
        acks: &[Ack],
        replicas: &[(NodeId, Option<u64>, &ReplicaDb)],
    ) {
        let applied: Vec<_> = replicas.iter().map(|(n, a, _)| (*n, *a)).collect();
        if applied.windows(2).any(|w| w[0].1 != w[1].1) {
            self.violation(format!(
                "convergence: replicas stopped at different raft indexes {applied:?}"
            ));
        }
        for &(node, _, db) in replicas {
            let start = synod_raft::storage::synod_start(db).unwrap_or(0);
            for ack in acks {
                for &(index, id) in &ack.accepted {
                    if index < start {
                        continue;
                    }
                    let found = db.synod_entries(index, 1).unwrap_or_default();
                    let ok = found.first().is_some_and(|e| {
                        e.index == index
                            && matches!(&e.payload, Payload::Message(m) if m.id() == id)
                    });
                    if !ok {
                        self.violation(format!(
                            "lost ack: node {node} lacks acknowledged message {id} at synod index {index}"
                        ));
                    }
                }
            }
        }
    }
}
