//! Hierarchical decisions (`docs/PROTOCOL.md` §21).
//!
//! In a domain the admin has given a hierarchy, a **worker** proposes with
//! `"method": "hierarchy"`, the **supervisors** evaluate it (they are its
//! electorate and respond as in a vote), and the **executive** decides it
//! with a `decision` message once every supervisor has had its say. The
//! decision is not final at once: for `objection_window_ms` the workers may
//! object (a `challenge` response), and objections from more than half of
//! them escalate the proposal to human reviewers with its decision package.
//! The window closes through the log, like every deadline.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::config::MAX_DEADLINE_HORIZON_MS;
use crate::domain::Domain;
use crate::error::{ErrorKind, Rejection, reject};
use crate::identity::AgentId;
use crate::log::LogIndex;
use crate::message::HumanVerdict;
use crate::policy::Policy;
use crate::tally::{Reason, Verdict};

/// Most workers or supervisors one hierarchy lists.
pub const MAX_MEMBERS: usize = 256;
/// Most domains with a hierarchy in one space.
pub const MAX_HIERARCHIES: usize = 64;

/// The roles of one domain (space configuration `hierarchies`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hierarchy {
    /// Who proposes, and who may object to the executive's decision.
    pub workers: BTreeSet<AgentId>,
    /// Who evaluates proposals (their electorate).
    #[serde(default)]
    pub supervisors: BTreeSet<AgentId>,
    /// Who decides.
    pub executive: AgentId,
    /// How long workers may object after the executive decides.
    pub objection_window_ms: u64,
}

/// Checks every hierarchy of a configuration (§7.0): at most 64 domains and
/// 256 workers and supervisors each (`too_large`); at least one worker, and
/// nobody in two roles of one domain (`malformed`); a window in
/// `1 … 31622400000` ms (`out_of_range`).
pub fn validate(hierarchies: &BTreeMap<Domain, Hierarchy>) -> Result<(), Rejection> {
    if hierarchies.len() > MAX_HIERARCHIES {
        return reject(
            ErrorKind::TooLarge,
            format!("at most {MAX_HIERARCHIES} domains have a hierarchy"),
        );
    }
    for (domain, h) in hierarchies {
        let d = domain.as_str();
        if h.workers.len() > MAX_MEMBERS || h.supervisors.len() > MAX_MEMBERS {
            return reject(
                ErrorKind::TooLarge,
                format!(
                    "the hierarchy of {d} lists more than {MAX_MEMBERS} workers or supervisors"
                ),
            );
        }
        if h.workers.is_empty() {
            return reject(
                ErrorKind::Malformed,
                format!("the hierarchy of {d} has no workers"),
            );
        }
        if h.workers.iter().any(|w| h.supervisors.contains(w))
            || h.workers.contains(&h.executive)
            || h.supervisors.contains(&h.executive)
        {
            return reject(
                ErrorKind::Malformed,
                format!("in the hierarchy of {d} an agent holds two roles"),
            );
        }
        if h.objection_window_ms == 0 || h.objection_window_ms > MAX_DEADLINE_HORIZON_MS {
            return reject(
                ErrorKind::OutOfRange,
                format!("objection_window_ms must be in 1..={MAX_DEADLINE_HORIZON_MS}"),
            );
        }
    }
    Ok(())
}

/// The executive's decision on a hierarchy proposal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutiveDecision {
    /// Approve or reject.
    pub decision: HumanVerdict,
    /// Its note.
    pub note: String,
    /// Log index of the decision.
    pub index: LogIndex,
    /// When the objection window closes (log time).
    pub objections_until: u64,
}

/// A worker's objection to the executive's decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Objection {
    /// The worker.
    pub worker: AgentId,
    /// Why.
    pub reasoning: String,
    /// Log index.
    pub index: LogIndex,
}

/// A hierarchy as frozen when its proposal entered the log, and what
/// happened since.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HierarchyRecord {
    /// The workers, in ascending order of id.
    pub workers: Vec<AgentId>,
    /// The executive.
    pub executive: AgentId,
    /// The objection window.
    pub objection_window_ms: u64,
    /// The executive's decision, once made.
    pub decision: Option<ExecutiveDecision>,
    /// Objections, in log order.
    pub objections: Vec<Objection>,
}

impl HierarchyRecord {
    /// Freezes `h`.
    pub fn freeze(h: &Hierarchy) -> HierarchyRecord {
        HierarchyRecord {
            workers: h.workers.iter().cloned().collect(),
            executive: h.executive.clone(),
            objection_window_ms: h.objection_window_ms,
            decision: None,
            objections: Vec::new(),
        }
    }

    /// Whether `agent` is one of the frozen workers.
    pub fn is_worker(&self, agent: &AgentId) -> bool {
        self.workers.binary_search(agent).is_ok()
    }

    /// Objections from more than half of the workers: `2 × objections >
    /// workers`.
    pub fn overruled(&self) -> bool {
        2 * self.objections.len() > self.workers.len()
    }
}

/// The verdict of a hierarchy proposal if it closed now (§21.3):
/// `human_required` → escalated (`stakes`); no executive decision →
/// escalated (`no_quorum`); objections from more than half of the workers
/// → escalated (`objected`); otherwise the executive's decision.
pub fn verdict(policy: &Policy, h: &HierarchyRecord) -> Verdict {
    rule(
        policy,
        h.decision.as_ref().map(|d| d.decision),
        h.objections.len(),
        h.workers.len(),
    )
}

/// The rule of [`verdict`] on its inputs: the executive's decision, the
/// number of objections and of workers.
pub fn rule(
    policy: &Policy,
    decision: Option<HumanVerdict>,
    objections: usize,
    workers: usize,
) -> Verdict {
    if policy.human_required {
        return Verdict::Escalated(Reason::Stakes);
    }
    match decision {
        None => Verdict::Escalated(Reason::NoQuorum),
        Some(_) if 2 * objections > workers => Verdict::Escalated(Reason::Objected),
        Some(HumanVerdict::Approve) => Verdict::Approved,
        Some(HumanVerdict::Reject) => Verdict::Rejected,
    }
}
