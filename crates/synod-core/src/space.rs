//! The space: a deterministic state machine over the hash-chained log
//! (`docs/PROTOCOL.md` §4–§10).
//!
//! Two ways in:
//! * [`Space::apply`] applies an entry that some sequencer already ordered
//!   (a replica, a recovery, an audit). A message the rules refuse is a
//!   deterministic no-op: every replica refuses it identically.
//! * [`Space::append`] is the local sequencer's path: it checks a message
//!   against the state first and only builds and applies an entry when the
//!   message is accepted, so a refused message changes nothing at all.
//!
//! Either way, proposals whose deadline is at or before an entry's log time
//! are closed before the entry's message is looked at.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::BuildHasherDefault;

use serde::{Deserialize, Serialize};

use crate::belief::{self, BeliefTally, PoolReport, Pooled};
use crate::config::{Mode, SpaceConfig};
use crate::domain::{Domain, DomainPattern, most_specific};
use crate::error::{ErrorKind, Rejection, reject};
use crate::fixed::{Authority, Confidence, Influence, Score, Trust, format_scaled};
use crate::hierarchy::{self, ExecutiveDecision, HierarchyRecord, Objection};
use crate::identity::AgentId;
use crate::log::{Entry, GENESIS_PREV, LogIndex, Payload};
use crate::message::{
    Body, Change, Configuration, Decision, Distribution, HumanVerdict, Method, Outcome, Proposal,
    Registration, Response, Role, check_covers,
};
use crate::open::{Clustered, OpenTally};
use crate::policy::{Policy, Stakes};
use crate::sealed::{CommitRecord, SealedState};
use crate::stake::{self, StakeSource};
use crate::tally::{self, Reason, Stance, Tally, TallyDecimal, Verdict, early_verdict, resolve};
use crate::trust;
use crate::wire::{Digest, Verified};

/// Most agents a space holds.
pub const MAX_AGENTS: usize = 1_000_000;
/// Most proposals a space holds open at once.
pub const MAX_OPEN_PROPOSALS: usize = 100_000;

/// A deterministic hasher for internal indexes: no per-process random keys.
type Index<K, V> = HashMap<K, V, BuildHasherDefault<DefaultHasher>>;

/// Internal handle of an agent: its registration order.
pub type AgentIdx = u32;

/// A registered agent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Agent {
    /// Its did.
    pub id: AgentId,
    /// Display name.
    pub name: String,
    /// Vendor label.
    pub vendor: Option<String>,
    /// Model label.
    pub model: Option<String>,
    /// Authorities it declared for itself.
    pub declared: BTreeMap<DomainPattern, Authority>,
    /// Roles it asked for.
    pub declared_roles: BTreeSet<Role>,
    /// Authorities an admin granted.
    pub granted: BTreeMap<DomainPattern, Authority>,
    /// Roles an admin granted.
    pub granted_roles: BTreeSet<Role>,
    /// Sequence number of its latest registration; 0 while an agent an admin
    /// admitted has not registered yet.
    pub seq: u64,
    /// Log index at which the space first knew it (its registration, or the
    /// grant that admitted it).
    pub registered_at: LogIndex,
    /// Trust per domain it has outcomes in.
    pub trust: BTreeMap<Domain, Trust>,
    /// Responses it has given (abstentions included).
    pub responses: u64,
    /// Outcomes that scored it.
    pub outcomes: u64,
    /// Its proposals still open.
    pub open_proposals: u32,
    /// The stake an admin granted it, in whole units (§20.1).
    pub stake: u64,
}

/// Where a proposal is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Collecting responses.
    Open,
    /// Approved by the rule.
    Approved,
    /// Rejected by the rule.
    Rejected,
    /// Waiting for human reviewers.
    Escalated,
    /// Approved by reviewers after escalation.
    ApprovedByHuman,
    /// Rejected by reviewers after escalation.
    RejectedByHuman,
    /// Replaced by a newer proposal of the same proposer while open.
    Superseded,
}

impl Status {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::Approved => "approved",
            Status::Rejected => "rejected",
            Status::Escalated => "escalated",
            Status::ApprovedByHuman => "approved_by_human",
            Status::RejectedByHuman => "rejected_by_human",
            Status::Superseded => "superseded",
        }
    }

    /// Every status.
    pub const ALL: [Status; 7] = [
        Status::Open,
        Status::Approved,
        Status::Rejected,
        Status::Escalated,
        Status::ApprovedByHuman,
        Status::RejectedByHuman,
        Status::Superseded,
    ];
}

/// Why a proposal closed when it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseCause {
    /// Its deadline passed.
    Deadline,
    /// Every electorate member other than the proposer responded.
    AllResponded,
    /// No remaining response could change an approve or reject verdict.
    Early,
    /// More than half of the workers objected to the executive's decision
    /// (§21).
    Objected,
}

/// One electorate member, frozen when the proposal entered the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The agent.
    pub agent: AgentIdx,
    /// Its authority in the proposal's domain at that moment.
    pub authority: Authority,
    /// Its trust in the proposal's domain at that moment.
    pub trust: Trust,
    /// Its stake at that moment (10⁻¹², §20.1): what a stake proposal's
    /// rule counts, and what a committee is drawn by.
    pub stake: u128,
}

impl Member {
    /// `authority × trust`.
    pub fn influence(&self) -> Influence {
        Influence::of(self.authority, self.trust)
    }

    /// The most this member's response can move a tally under `policy`.
    pub fn reach(&self, policy: &Policy) -> u128 {
        tally::reach(policy, self.authority, self.trust)
    }

    /// Counts this member's response in `tally`: by the policy's weighting,
    /// or by its stake on a stake proposal.
    fn count(
        &self,
        method: Method,
        policy: &Policy,
        tally: &mut Tally,
        stance: Stance,
        c: Confidence,
    ) {
        if method == Method::Stake {
            stake::add(tally, stance, self.stake);
        } else {
            tally.add(policy, stance, self.authority, self.trust, c);
        }
    }

    /// This member's weight in a belief proposal's pool (§15.1).
    pub fn pool_weight(&self, policy: &Policy) -> u128 {
        tally::weight_factor(policy, self.authority, self.trust)
    }

    /// Counts this member's distribution in a belief proposal's pool; its
    /// influence counts toward the quorum.
    fn count_belief(
        &self,
        policy: &Policy,
        tally: &mut Tally,
        pool: &mut BeliefTally,
        distribution: &[u32],
    ) {
        pool.add(policy, self.pool_weight(policy), distribution);
        tally.voted += u128::from(self.influence().0);
    }
}

/// A recorded response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseRecord {
    /// The responder.
    pub agent: AgentIdx,
    /// Its stance; `None` for a belief proposal's distribution.
    pub stance: Option<Stance>,
    /// Its confidence; `None` for a belief proposal's distribution.
    pub confidence: Option<Confidence>,
    /// A belief proposal's distribution, in millionths, in option order.
    pub distribution: Option<Vec<u32>>,
    /// An open question's answer, normalised (§19).
    pub answer: Option<String>,
    /// Its reasoning.
    pub reasoning: String,
    /// Log index of the response.
    pub index: LogIndex,
    /// The response message's id.
    pub message: Digest,
}

/// A recorded human decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionRecord {
    /// The reviewer.
    pub reviewer: AgentIdx,
    /// Approve or reject.
    pub decision: HumanVerdict,
    /// The option a belief proposal's approval adopts (its position).
    pub option: Option<u8>,
    /// The answer an open question's approval adopts, normalised.
    pub answer: Option<String>,
    /// The reviewer's note.
    pub note: String,
    /// Log index.
    pub index: LogIndex,
}

/// A recorded outcome report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutcomeRecord {
    /// Who reported it.
    pub reporter: AgentIdx,
    /// A vote's outcome as a score.
    pub score: Option<Score>,
    /// The option that turned out right (a belief proposal).
    pub option: Option<u8>,
    /// The answer that turned out right (an open question), normalised.
    pub answer: Option<String>,
    /// Log index.
    pub index: LogIndex,
}

/// How and when a proposal closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Closure {
    /// The rule's verdict.
    pub verdict: Verdict,
    /// What closed it.
    pub cause: CloseCause,
    /// Log index of the closing entry.
    pub index: LogIndex,
    /// Log time of the closing entry.
    pub time: u64,
}

/// Everything the space keeps about one proposal.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProposalRecord {
    /// The id.
    pub id: Digest,
    /// The signed proposal, as it entered the log.
    #[serde(with = "envelope_serde")]
    pub message: Verified,
    /// The proposer.
    pub proposer: AgentIdx,
    /// Domain.
    pub domain: Domain,
    /// Stakes.
    pub stakes: Stakes,
    /// The proposer's confidence.
    pub confidence: Confidence,
    /// Deadline (log time, ms).
    pub deadline: u64,
    /// The effective policy.
    pub policy: Policy,
    /// Log index at which it entered.
    pub entered_index: LogIndex,
    /// Log time at which it entered.
    pub entered_time: u64,
    /// The frozen electorate.
    pub electorate: Vec<Member>,
    /// The live tally.
    pub tally: Tally,
    /// `R`: the summed reach of members who may still respond (an influence
    /// in 10⁻¹² under linear weighting, evidence in 10⁻³⁰ under log-odds).
    pub remaining: u128,
    /// Members who may still respond.
    pub pending: u32,
    /// Responses in log order.
    pub responses: Vec<ResponseRecord>,
    /// Present once closed.
    pub closure: Option<Closure>,
    /// The current status.
    pub status: Status,
    /// Human decisions, in log order.
    pub decisions: Vec<DecisionRecord>,
    /// The outcome report, if any.
    pub outcome: Option<OutcomeRecord>,
    /// The proposal this one replaces.
    pub supersedes: Option<Digest>,
    /// The proposal that replaced this one.
    pub superseded_by: Option<Digest>,
    /// How it is decided.
    pub method: Method,
    /// A belief proposal's options, in the proposal's order (empty for a
    /// vote).
    pub options: Vec<String>,
    /// A belief proposal's own distribution (the proposer's position), in
    /// millionths, in option order.
    pub proposer_distribution: Option<Vec<u32>>,
    /// A belief proposal's running pool.
    pub belief: BeliefTally,
    /// The option a belief proposal adopted: by the rule, or by reviewers.
    pub choice: Option<u8>,
    /// The committee size the proposal asked for; its electorate is then
    /// the drawn committee (§20.3).
    pub committee: Option<u32>,
    /// A hierarchy proposal's frozen roles, the executive's decision and
    /// the workers' objections (§21).
    pub hierarchy: Option<Box<HierarchyRecord>>,
    /// A sealed proposal's commitments and phase (§18).
    pub sealed: Option<SealedState>,
    /// An open question's answers and adopted answer (§19).
    pub open: Option<OpenTally>,
    /// Electorate slot of each member (not part of the state hash: derived).
    #[serde(skip)]
    slots: Index<AgentIdx, u32>,
    /// Which slots have responded (derived from `responses`).
    #[serde(skip)]
    responded: Vec<bool>,
}

mod envelope_serde {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::wire::{SignedMessage, Verified};

    pub fn serialize<S: Serializer>(m: &Verified, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&m.canonical_envelope())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Verified, D::Error> {
        let bytes = <Vec<u8>>::deserialize(d)?;
        let message = SignedMessage::parse(&bytes).map_err(serde::de::Error::custom)?;
        Ok(Verified::from_trusted_storage(message))
    }
}

impl ProposalRecord {
    /// The member slot of `agent`, if it is in the electorate.
    pub fn member(&self, agent: AgentIdx) -> Option<&Member> {
        self.slots
            .get(&agent)
            .map(|&s| &self.electorate[s as usize])
    }

    /// What the rule says of the proposal's tally now (the verdict it gets
    /// if it closes now), and, for a belief proposal, its pool.
    pub fn verdict(&self) -> (Verdict, Option<Pooled>) {
        match self.method {
            Method::Vote => (resolve(&self.policy, &self.tally), None),
            Method::Stake => (stake::resolve(&self.policy, &self.tally), None),
            Method::Hierarchy => {
                let h = self
                    .hierarchy
                    .as_deref()
                    .expect("a hierarchy proposal's roles");
                (hierarchy::verdict(&self.policy, h), None)
            }
            Method::Belief => {
                let (verdict, pooled) = belief::resolve(&self.policy, &self.tally, &self.belief);
                (verdict, Some(pooled))
            }
            Method::Open => (self.open_verdict().0, None),
        }
    }

    /// An open question's verdict and clusters (§19).
    fn open_verdict(&self) -> (Verdict, Clustered) {
        let open = self.open.as_ref().expect("an open question has answers");
        crate::open::resolve(&self.policy, &self.tally, open, self.pool_decimals())
    }

    /// The clusters as effects and packages show them; `None` unless an
    /// open question.
    pub fn clusters(&self) -> Option<Clustered> {
        self.open.as_ref().map(|_| self.open_verdict().1)
    }

    /// Places of a pool weight (§15.1): 12 under linear weighting, 18 under
    /// log-odds.
    fn pool_decimals(&self) -> u32 {
        match self.policy.weighting {
            crate::policy::Weighting::Linear => 12,
            crate::policy::Weighting::LogOdds => 18,
        }
    }

    /// The pool as effects and packages show it; `None` for a vote.
    pub fn pool_report(&self) -> Option<PoolReport> {
        (self.method == Method::Belief)
            .then(|| PoolReport::new(&belief::pool(&self.policy, &self.belief), &self.options))
    }

    /// The tally as effects print it: a stake proposal's in stake units
    /// (§20.2), like a linear tally.
    pub fn tally_decimal(&self) -> TallyDecimal {
        let weighting = match self.method {
            Method::Stake => crate::policy::Weighting::Linear,
            _ => self.policy.weighting,
        };
        self.tally.to_decimal(weighting)
    }

    /// The label of option `index`.
    pub fn option_label(&self, index: u8) -> String {
        self.options[usize::from(index)].clone()
    }

    /// The decoded proposal body.
    pub fn body(&self) -> Proposal {
        match Body::decode(&self.message) {
            Ok(Body::Proposal(p)) => *p,
            _ => unreachable!("a recorded proposal decodes"),
        }
    }

    /// Whether `agent` committed to this sealed proposal (§18).
    pub fn committed(&self, agent: AgentIdx) -> bool {
        self.sealed.as_ref().is_some_and(|s| {
            self.slots
                .get(&agent)
                .is_some_and(|slot| s.commitments.contains_key(slot))
        })
    }

    /// What ending the commit phase leaves to wait for: the number of
    /// committed members and their summed reach. Only the members that
    /// committed may still answer (§18).
    fn after_commit_phase(&self, sealed: &SealedState) -> (u32, u128) {
        let reach = sealed
            .commitments
            .keys()
            .map(|&slot| self.electorate[slot as usize].reach(&self.policy))
            .sum();
        (sealed.commitments.len() as u32, reach)
    }

    /// Whether ending this proposal's commit phase (if it is still in it)
    /// closes it: nobody committed, or the remaining reveals cannot change
    /// an approve or reject verdict (§18, §6.2–§6.3).
    fn commit_end_closes(&self) -> bool {
        let Some(sealed) = self.sealed.as_ref().filter(|s| !s.revealing) else {
            return false;
        };
        let (pending, remaining) = self.after_commit_phase(sealed);
        pending == 0 || self.early_final(remaining)
    }

    /// Whether the verdict is already final with `remaining` reach still to
    /// answer: a vote by §6.3, a stake proposal by §20.2; a belief proposal,
    /// an open question and a hierarchy proposal have no early finality
    /// (§15.3, §19.3, §21).
    fn early_final(&self, remaining: u128) -> bool {
        match self.method {
            Method::Vote => early_verdict(&self.policy, &self.tally, remaining).is_some(),
            Method::Stake => stake::early(&self.policy, &self.tally).is_some(),
            Method::Belief | Method::Open | Method::Hierarchy => false,
        }
    }

    /// Whether the entry at log time `time` closes this open proposal: its
    /// deadline, or the end of its commit phase.
    fn closes_by(&self, time: u64) -> bool {
        self.status == Status::Open
            && (self.deadline <= time
                || self
                    .sealed
                    .as_ref()
                    .is_some_and(|s| !s.revealing && s.commit_deadline <= time)
                    && self.commit_end_closes())
    }

    fn rebuild_indexes(&mut self) {
        self.slots = self
            .electorate
            .iter()
            .enumerate()
            .map(|(slot, m)| (m.agent, slot as u32))
            .collect();
        self.responded = vec![false; self.electorate.len()];
        for r in &self.responses {
            if let Some(&slot) = self.slots.get(&r.agent) {
                self.responded[slot as usize] = true;
            }
        }
        if self.policy.proposer_counts
            && let Some(&slot) = self.slots.get(&self.proposer)
        {
            self.responded[slot as usize] = true;
        }
    }
}

/// The head of the log as this state has applied it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Head {
    /// Index the next entry must have.
    pub next_index: LogIndex,
    /// Hash of the last applied entry ([`GENESIS_PREV`] before any).
    pub last_hash: Digest,
    /// Log time of the last applied entry.
    pub last_time: u64,
}

/// Something applying an entry did. Effects are what the node turns into
/// events and what `synod audit verify` re-derives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Effect {
    /// The genesis entry created the space.
    SpaceCreated {
        /// The space id.
        space: String,
        /// Its first admin.
        admin: AgentId,
    },
    /// An admin changed the configuration.
    ConfigChanged {
        /// The configuration's new sequence number.
        seq: u64,
    },
    /// An admin granted an agent authorities and roles.
    Granted {
        /// The agent.
        agent: AgentId,
    },
    /// An agent registered or updated its registration.
    AgentRegistered {
        /// The agent.
        agent: AgentId,
        /// The registration's sequence number.
        seq: u64,
    },
    /// A proposal entered the log and its electorate was frozen.
    ProposalOpened {
        /// The proposal.
        proposal: Digest,
        /// Its domain.
        domain: Domain,
        /// Members in the electorate.
        electorate: u32,
        /// Its deadline.
        deadline: u64,
    },
    /// A response was counted. `leaning` is what the rule would say if the
    /// proposal closed now: tentative, not a decision.
    ResponseCounted {
        /// The proposal.
        proposal: Digest,
        /// The responder.
        agent: AgentId,
        /// Its stance; absent for a belief proposal's distribution.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stance: Option<Stance>,
        /// The tally after it.
        tally: TallyDecimal,
        /// The tentative verdict.
        leaning: Verdict,
        /// A belief proposal's pool after it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pool: Option<PoolReport>,
        /// An open question's clusters after it (§19).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        clusters: Option<Clustered>,
    },
    /// A proposal closed and the rule gave its verdict.
    ProposalClosed {
        /// The proposal.
        proposal: Digest,
        /// `approved`, `rejected` or `escalated`.
        status: Status,
        /// The escalation rule that fired.
        reason: Option<Reason>,
        /// What closed it.
        cause: CloseCause,
        /// The final tally.
        tally: TallyDecimal,
        /// The option a belief proposal adopted, when approved.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        choice: Option<String>,
        /// A belief proposal's final pool.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pool: Option<PoolReport>,
        /// An open question's final clusters (§19).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        clusters: Option<Clustered>,
    },
    /// A member committed to a sealed proposal (§18); its answer stays
    /// hidden until it reveals.
    Committed {
        /// The proposal.
        proposal: Digest,
        /// The member.
        agent: AgentId,
    },
    /// A sealed proposal's commit phase ended: reveals are taken from the
    /// members that committed (§18).
    RevealOpened {
        /// The proposal.
        proposal: Digest,
        /// How many members committed.
        committed: u32,
    },
    /// A newer proposal replaced an open one.
    ProposalSuperseded {
        /// The replaced proposal.
        proposal: Digest,
        /// The replacement.
        by: Digest,
    },
    /// A reviewer decided an escalated proposal.
    HumanDecided {
        /// The proposal.
        proposal: Digest,
        /// The reviewer.
        reviewer: AgentId,
        /// Approve or reject.
        decision: HumanVerdict,
        /// The option a belief proposal's approval adopts.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        option: Option<String>,
    },
    /// A hierarchy's executive decided; workers may object until
    /// `objections_until` (§21).
    ExecutiveDecided {
        /// The proposal.
        proposal: Digest,
        /// The executive.
        executive: AgentId,
        /// `approve` or `reject`.
        decision: HumanVerdict,
        /// When the objection window closes (log time).
        objections_until: u64,
    },
    /// A worker objected to the executive's decision (§21).
    ObjectionRecorded {
        /// The proposal.
        proposal: Digest,
        /// The worker.
        worker: AgentId,
        /// Objections so far.
        objections: u32,
        /// Workers of the hierarchy.
        workers: u32,
    },
    /// Enough reviewers agreed.
    HumanResolved {
        /// The proposal.
        proposal: Digest,
        /// `approved_by_human` or `rejected_by_human`.
        status: Status,
        /// The option a belief proposal adopted.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        option: Option<String>,
    },
    /// An outcome was reported.
    OutcomeRecorded {
        /// The proposal.
        proposal: Digest,
        /// A vote's outcome as a score.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        score: Option<Score>,
        /// The option that turned out right (a belief proposal).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        option: Option<String>,
    },
    /// An agent's trust in a domain moved.
    TrustUpdated {
        /// The agent.
        agent: AgentId,
        /// The domain.
        domain: Domain,
        /// Trust before.
        before: Trust,
        /// Trust after.
        after: Trust,
    },
}

/// The log itself is broken: the entry cannot follow the state's head. This is
/// a fatal error for the caller, unlike a [`Rejection`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// The entry's index is not the next one.
    #[error("entry {got} does not follow index {}", expected.wrapping_sub(1))]
    WrongIndex {
        /// The index the state expected.
        expected: LogIndex,
        /// The index the entry has.
        got: LogIndex,
    },
    /// The entry's `prev` is not the hash of the previous entry.
    #[error("entry {index} does not chain to the previous entry's hash")]
    BrokenChain {
        /// The entry.
        index: LogIndex,
    },
    /// The entry's log time is before the previous entry's.
    #[error("entry {index} goes back in log time")]
    TimeWentBack {
        /// The entry.
        index: LogIndex,
    },
    /// The first entry is not a space-creating configuration message.
    #[error("entry 0 must be the configuration message that creates the space")]
    NoGenesis,
}

/// What applying one entry did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Applied {
    /// Effects, in order: deadline closes first, then the message's.
    pub effects: Vec<Effect>,
    /// Set when the rules refused the entry's message (its effects, if any,
    /// are only deadline closes).
    pub rejected: Option<Rejection>,
}

/// The state of one coordination space.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Space {
    id: String,
    config: SpaceConfig,
    config_seq: u64,
    agents: Vec<Agent>,
    agent_index: BTreeMap<AgentId, AgentIdx>,
    proposals: BTreeMap<Digest, ProposalRecord>,
    deadlines: BTreeSet<(u64, Digest)>,
    /// Sealed proposals still in their commit phase, by commit deadline.
    commit_deadlines: BTreeSet<(u64, Digest)>,
    head: Head,
    /// The current proposer round (§20.4): its length, its number and its
    /// anchor, the hash of the last entry before it.
    /// Boxed: most spaces draw no proposers.
    round: Option<Box<(u64, u64, Digest)>>,
}

impl Space {
    /// An empty space that waits for its genesis entry.
    pub fn new() -> Space {
        Space::default()
    }

    /// The space id (empty before genesis).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The configuration.
    pub fn config(&self) -> &SpaceConfig {
        &self.config
    }

    /// The configuration's sequence number.
    pub fn config_seq(&self) -> u64 {
        self.config_seq
    }

    /// The log head.
    pub fn head(&self) -> Head {
        self.head
    }

    /// Registered agents, in registration order.
    pub fn agents(&self) -> &[Agent] {
        &self.agents
    }

    /// An agent by id.
    pub fn agent(&self, id: &AgentId) -> Option<&Agent> {
        self.agent_index.get(id).map(|&i| &self.agents[i as usize])
    }

    /// An agent by handle.
    pub fn agent_at(&self, idx: AgentIdx) -> &Agent {
        &self.agents[idx as usize]
    }

    /// Every proposal, by id.
    pub fn proposals(&self) -> &BTreeMap<Digest, ProposalRecord> {
        &self.proposals
    }

    /// One proposal.
    pub fn proposal(&self, id: &Digest) -> Option<&ProposalRecord> {
        self.proposals.get(id)
    }

    /// The earliest deadline of an open proposal: when a sequencer should
    /// append a tick.
    pub fn next_deadline(&self) -> Option<u64> {
        let deadline = self.deadlines.first().map(|(t, _)| *t);
        let commit = self.commit_deadlines.first().map(|(t, _)| *t);
        deadline.into_iter().chain(commit).min()
    }

    /// The effective roles of an agent.
    pub fn roles(&self, agent: &Agent) -> BTreeSet<Role> {
        let mut roles = agent.granted_roles.clone();
        if self.config.mode == Mode::Open {
            roles.insert(Role::Agent);
        }
        roles
    }

    /// The authority an agent has in `domain`: the most specific matching
    /// pattern. In a closed space only grants count; in an open space a grant
    /// beats a declaration of the same pattern, and declarations are capped.
    pub fn authority(&self, agent: &Agent, domain: &Domain) -> Authority {
        let granted = most_specific(agent.granted.iter().map(|(p, a)| (p, *a)), domain);
        let effective = match self.config.mode {
            Mode::Closed => granted,
            Mode::Open => {
                let cap = self.config.open_authority_cap;
                let declared = agent
                    .declared
                    .iter()
                    .filter(|(p, _)| !agent.granted.contains_key(*p))
                    .map(|(p, a)| (p, (*a).min(cap)));
                most_specific(
                    agent.granted.iter().map(|(p, a)| (p, *a)).chain(declared),
                    domain,
                )
            }
        };
        effective.unwrap_or(Authority::ZERO)
    }

    /// An agent's trust in `domain` now.
    pub fn trust(&self, agent: &Agent, domain: &Domain) -> Trust {
        agent
            .trust
            .get(domain)
            .copied()
            .unwrap_or_else(|| self.trust_prior(agent))
    }

    /// The trust an agent starts with in a domain it has no outcomes in.
    pub fn trust_prior(&self, agent: &Agent) -> Trust {
        if self.config.mode == Mode::Open && agent.granted.is_empty() {
            self.config.open_initial_trust
        } else {
            self.config.trust_prior
        }
    }

    /// SHA-256 over a canonical binary encoding of the whole state, head
    /// included. Equal logs give equal hashes on every platform.
    pub fn state_hash(&self) -> Digest {
        let bytes = postcard::to_allocvec(self).expect("the state serializes");
        Digest::of(&bytes)
    }

    /// Encodes the state for a snapshot.
    pub fn to_snapshot(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("the state serializes")
    }

    /// Decodes a snapshot made by [`Space::to_snapshot`].
    pub fn from_snapshot(bytes: &[u8]) -> Result<Space, postcard::Error> {
        let mut space: Space = postcard::from_bytes(bytes)?;
        for record in space.proposals.values_mut() {
            record.rebuild_indexes();
        }
        Ok(space)
    }

    /// Applies an entry a sequencer ordered. A refused message changes nothing
    /// but the head (and whatever deadlines the entry's time passes).
    pub fn apply(&mut self, entry: &Entry) -> Result<Applied, ChainError> {
        self.check_chain(entry)?;
        if entry.index == 0 && !self.is_genesis(entry) {
            return Err(ChainError::NoGenesis);
        }
        let mut effects = self.enter(entry);
        let rejected = match &entry.payload {
            Payload::Tick => None,
            Payload::Message(message) => {
                match self.check_message_at(message, entry.index, entry.time) {
                    Ok(plan) => {
                        effects.extend(self.execute(plan, message, entry.index, entry.time));
                        None
                    }
                    Err(rejection) => Some(rejection),
                }
            }
        };
        #[cfg(debug_assertions)]
        self.validate();
        Ok(Applied { effects, rejected })
    }

    /// Moves the head to `entry` and closes every proposal whose deadline its
    /// log time has reached.
    fn enter(&mut self, entry: &Entry) -> Vec<Effect> {
        let round_ms = self.config.proposer_round_ms;
        if round_ms > 0 {
            self.round = Some(Box::new(self.round_anchor(entry.time)));
        }
        self.head = Head {
            next_index: entry.index + 1,
            last_hash: entry.hash(),
            last_time: entry.time,
        };
        let mut effects = self.end_commit_phases(entry.index, entry.time);
        effects.extend(self.close_expired(entry.index, entry.time));
        effects
    }

    /// Ends the commit phase of every sealed proposal whose commit deadline
    /// `time` has reached, in ascending order of `(commit_deadline, id)`:
    /// members that did not commit are no longer waited for, and the
    /// proposal may close at once (§18).
    fn end_commit_phases(&mut self, index: LogIndex, time: u64) -> Vec<Effect> {
        let mut effects = Vec::new();
        while let Some(&(commit_deadline, id)) = self.commit_deadlines.first() {
            if commit_deadline > time {
                break;
            }
            self.commit_deadlines.remove(&(commit_deadline, id));
            let record = self.proposals.get_mut(&id).expect("a known proposal");
            let mut sealed = record.sealed.take().expect("a sealed proposal");
            let (pending, remaining) = record.after_commit_phase(&sealed);
            sealed.revealing = true;
            record.sealed = Some(sealed);
            record.pending = pending;
            record.remaining = remaining;
            effects.push(Effect::RevealOpened {
                proposal: id,
                committed: pending,
            });
            effects.extend(self.close_if_final(&id, index, time));
        }
        effects
    }

    /// The local sequencer's path: checks `message` at log time `time` and,
    /// only if the rules accept it, appends it as the next entry and applies
    /// it. On refusal nothing changes. `time` is raised to the head's time if
    /// it is behind, so log time never decreases.
    ///
    /// The check runs before the entry closes expired proposals; it treats a
    /// proposal past its deadline as already closed, with the status closing
    /// will give it, so it accepts exactly what [`Space::apply`] would.
    pub fn append(
        &mut self,
        message: Verified,
        time: u64,
    ) -> Result<(Entry, Vec<Effect>), Rejection> {
        let time = time.max(self.head.last_time);
        let index = self.head.next_index;
        let plan = self.check_message_at(&message, index, time)?;
        let entry = Entry {
            index,
            time,
            prev: self.head.last_hash,
            payload: Payload::Message(message),
        };
        let mut effects = self.enter(&entry);
        let Payload::Message(message) = &entry.payload else {
            unreachable!("built as a message above")
        };
        effects.extend(self.execute(plan, message, index, time));
        #[cfg(debug_assertions)]
        self.validate();
        Ok((entry, effects))
    }

    /// Appends a tick at `time`, closing every proposal whose deadline has
    /// passed.
    pub fn tick(&mut self, time: u64) -> (Entry, Vec<Effect>) {
        let entry = Entry {
            index: self.head.next_index,
            time: time.max(self.head.last_time),
            prev: self.head.last_hash,
            payload: Payload::Tick,
        };
        assert!(entry.index > 0, "a tick cannot create the space");
        let applied = self.apply(&entry).expect("the entry follows the head");
        (entry, applied.effects)
    }

    fn check_chain(&self, entry: &Entry) -> Result<(), ChainError> {
        if entry.index != self.head.next_index {
            return Err(ChainError::WrongIndex {
                expected: self.head.next_index,
                got: entry.index,
            });
        }
        let expected_prev = if entry.index == 0 {
            GENESIS_PREV
        } else {
            self.head.last_hash
        };
        if entry.prev != expected_prev {
            return Err(ChainError::BrokenChain { index: entry.index });
        }
        if entry.time < self.head.last_time {
            return Err(ChainError::TimeWentBack { index: entry.index });
        }
        Ok(())
    }

    fn is_genesis(&self, entry: &Entry) -> bool {
        match &entry.payload {
            Payload::Message(m) => matches!(
                Body::decode(m),
                Ok(Body::Configuration(Configuration {
                    seq: 0,
                    change: Change::Set(_),
                    ..
                }))
            ),
            Payload::Tick => false,
        }
    }

    fn close_expired(&mut self, index: LogIndex, time: u64) -> Vec<Effect> {
        let mut effects = Vec::new();
        while let Some(&(deadline, id)) = self.deadlines.first() {
            if deadline > time {
                break;
            }
            effects.push(self.close(&id, CloseCause::Deadline, index, time));
        }
        effects
    }

    fn close(&mut self, id: &Digest, cause: CloseCause, index: LogIndex, time: u64) -> Effect {
        let record = self
            .proposals
            .get_mut(id)
            .expect("closing a known proposal");
        assert_eq!(
            record.status,
            Status::Open,
            "closing a proposal that is not open"
        );
        let (verdict, pooled) = record.verdict();
        if cause == CloseCause::Early {
            assert!(
                matches!(verdict, Verdict::Approved | Verdict::Rejected),
                "early close must approve or reject"
            );
        }
        record.status = match verdict {
            Verdict::Approved => Status::Approved,
            Verdict::Rejected => Status::Rejected,
            Verdict::Escalated(_) => Status::Escalated,
        };
        record.closure = Some(Closure {
            verdict,
            cause,
            index,
            time,
        });
        if verdict == Verdict::Approved
            && let Some(p) = &pooled
        {
            let leader = p.leader.expect("an approved pool has a leader");
            record.choice = Some(leader as u8);
        }
        let clusters = record.clusters();
        if verdict == Verdict::Approved
            && let Some(c) = &clusters
        {
            let leader = c.leader.clone().expect("an approved question has a leader");
            record.open.as_mut().expect("open").choice = Some(leader);
        }
        let removed = self.deadlines.remove(&(record.deadline, *id));
        assert!(removed, "an open proposal has a deadline");
        if let Some(s) = &record.sealed {
            self.commit_deadlines.remove(&(s.commit_deadline, *id));
        }
        let proposer = &mut self.agents[record.proposer as usize];
        proposer.open_proposals = proposer
            .open_proposals
            .checked_sub(1)
            .expect("counted when opened");
        Effect::ProposalClosed {
            proposal: *id,
            status: record.status,
            reason: verdict.reason(),
            cause,
            tally: record.tally_decimal(),
            choice: record
                .choice
                .map(|c| record.option_label(c))
                .or_else(|| record.open.as_ref().and_then(|o| o.choice.clone())),
            pool: pooled.map(|p| PoolReport::new(&p, &record.options)),
            clusters,
        }
    }

    /// Whether `record` is open at log time `time` (its deadline not passed).
    fn is_open_at(record: &ProposalRecord, time: u64) -> bool {
        record.status == Status::Open && !record.closes_by(time)
    }

    /// The status `record` has once every deadline up to `time` has closed:
    /// lets [`Space::append`] check a message before the entry that closes
    /// expired proposals is applied, and agree with [`Space::apply`].
    fn status_at(record: &ProposalRecord, time: u64) -> Status {
        if record.closes_by(time) {
            match record.verdict().0 {
                Verdict::Approved => Status::Approved,
                Verdict::Rejected => Status::Rejected,
                Verdict::Escalated(_) => Status::Escalated,
            }
        } else {
            record.status
        }
    }

    fn check_message_at(
        &self,
        message: &Verified,
        index: LogIndex,
        time: u64,
    ) -> Result<Plan, Rejection> {
        let body = Body::decode(message)?;
        if index == 0 || self.id.is_empty() {
            return match body {
                Body::Configuration(c) if c.seq == 0 => match &c.change {
                    Change::Set(patch) => {
                        let config = SpaceConfig::default().patched(patch)?;
                        Ok(Plan::Genesis(c.space.clone(), Box::new(config)))
                    }
                    Change::Grant(_) => reject(
                        ErrorKind::Malformed,
                        "the genesis configuration must be a set",
                    ),
                },
                _ => reject(
                    ErrorKind::InvalidState,
                    "the space does not exist yet: the first message must be the configuration with seq 0",
                ),
            };
        }
        if body.space() != self.id {
            return reject(
                ErrorKind::WrongSpace,
                format!(
                    "message is for space {:?}, this is {:?}",
                    body.space(),
                    self.id
                ),
            );
        }
        let created = body.created_at();
        if created.saturating_add(self.config.max_message_age_ms) < time {
            return reject(
                ErrorKind::Duplicate,
                format!(
                    "stale: created {} ms before log time; the replay window is {} ms",
                    time - created,
                    self.config.max_message_age_ms
                ),
            );
        }
        if created > time.saturating_add(self.config.max_clock_skew_ms) {
            return reject(
                ErrorKind::ClockSkew,
                format!(
                    "created {} ms after log time; at most {} ms is allowed",
                    created - time,
                    self.config.max_clock_skew_ms
                ),
            );
        }
        let signer = message.signer();
        match body {
            Body::Registration(r) => self.check_registration(signer, r),
            Body::Configuration(c) => self.check_configuration(signer, c),
            Body::Proposal(p) => self.check_proposal(message, *p, time),
            Body::Response(r) => self.check_response(message, r, time),
            Body::Decision(d) => self.check_decision(signer, d, time),
            Body::Outcome(o) => self.check_outcome(signer, o, time),
        }
    }

    fn signer_idx(&self, signer: &AgentId) -> Result<AgentIdx, Rejection> {
        self.agent_index.get(signer).copied().ok_or_else(|| {
            Rejection::new(
                ErrorKind::UnknownAgent,
                format!("{signer} is not registered in this space"),
            )
        })
    }

    fn require_role(&self, idx: AgentIdx, any_of: &[Role]) -> Result<(), Rejection> {
        let roles = self.roles(&self.agents[idx as usize]);
        if any_of.iter().any(|r| roles.contains(r)) {
            Ok(())
        } else {
            let names: Vec<&str> = any_of.iter().map(|r| r.as_str()).collect();
            reject(
                ErrorKind::WrongRole,
                format!("this needs the role {}", names.join(" or ")),
            )
        }
    }

    fn record(&self, id: &Digest) -> Result<&ProposalRecord, Rejection> {
        self.proposals
            .get(id)
            .ok_or_else(|| Rejection::new(ErrorKind::UnknownProposal, format!("no proposal {id}")))
    }

    fn check_registration(&self, signer: &AgentId, r: Registration) -> Result<Plan, Rejection> {
        match self.agent_index.get(signer) {
            Some(&idx) => {
                let previous = self.agents[idx as usize].seq;
                if r.seq <= previous {
                    return reject(
                        ErrorKind::Duplicate,
                        format!("registration seq {} is not above {previous}", r.seq),
                    );
                }
            }
            None if self.config.mode == Mode::Closed => {
                return reject(
                    ErrorKind::UnknownAgent,
                    format!(
                        "this space is closed: an admin must grant {signer} before it registers"
                    ),
                );
            }
            None if self.agents.len() >= MAX_AGENTS => {
                return reject(
                    ErrorKind::TooLarge,
                    format!("the space holds its limit of {MAX_AGENTS} agents"),
                );
            }
            None => {}
        }
        Ok(Plan::Register(r))
    }

    fn check_configuration(&self, signer: &AgentId, c: Configuration) -> Result<Plan, Rejection> {
        let idx = self.signer_idx(signer)?;
        self.require_role(idx, &[Role::Admin])?;
        if c.seq <= self.config_seq {
            return reject(
                ErrorKind::Duplicate,
                format!(
                    "configuration seq {} is not above {}",
                    c.seq, self.config_seq
                ),
            );
        }
        match c.change {
            Change::Set(patch) => {
                let config = self.config.patched(&patch)?;
                Ok(Plan::Configure(c.seq, Box::new(config)))
            }
            Change::Grant(grant) => {
                let target = self.agent_index.get(&grant.agent).copied();
                if target.is_none() && self.agents.len() >= MAX_AGENTS {
                    return reject(
                        ErrorKind::TooLarge,
                        format!("the space holds its limit of {MAX_AGENTS} agents"),
                    );
                }
                let keeps_admin = grant.roles.contains(&Role::Admin)
                    || self.agents.iter().enumerate().any(|(i, a)| {
                        Some(i as AgentIdx) != target && a.granted_roles.contains(&Role::Admin)
                    });
                if !keeps_admin {
                    return reject(
                        ErrorKind::InvalidState,
                        "this grant would leave the space without an admin",
                    );
                }
                Ok(Plan::Grant(c.seq, Box::new(grant)))
            }
        }
    }

    fn check_proposal(
        &self,
        message: &Verified,
        p: Proposal,
        time: u64,
    ) -> Result<Plan, Rejection> {
        let proposer = self.signer_idx(message.signer())?;
        self.require_role(proposer, &[Role::Agent])?;
        let id = message.id();
        if self.proposals.contains_key(&id) {
            return reject(
                ErrorKind::Duplicate,
                format!("proposal {id} is already in the log"),
            );
        }
        self.check_admission(message, &p, proposer)?;
        self.check_round_proposer(proposer, &p.domain, time)?;
        self.check_hierarchy_proposal(message.signer(), &p)?;
        if p.deadline <= time {
            return reject(
                ErrorKind::BadDeadline,
                format!("deadline {} is not after log time {time}", p.deadline),
            );
        }
        if p.deadline - time > self.config.max_deadline_ms {
            return reject(
                ErrorKind::BadDeadline,
                format!(
                    "deadline is {} ms away; the space allows at most {} ms",
                    p.deadline - time,
                    self.config.max_deadline_ms
                ),
            );
        }
        if let Some(terms) = &p.sealed
            && (terms.commit_deadline <= time || terms.commit_deadline >= p.deadline)
        {
            return reject(
                ErrorKind::BadDeadline,
                format!(
                    "commit_deadline {} must be after log time {time} and before the deadline {}",
                    terms.commit_deadline, p.deadline
                ),
            );
        }
        let base = self.config.policies.get(p.stakes);
        let policy = match &p.policy {
            Some(overrides) => base.tightened(overrides)?,
            None => base,
        };
        self.check_committee(&p)?;
        if let Some(old) = &p.supersedes {
            let old_record = self.record(old)?;
            if old_record.proposer != proposer {
                return reject(
                    ErrorKind::NotEligible,
                    "only a proposal's own proposer may supersede it",
                );
            }
            if old_record.superseded_by.is_some() {
                return reject(
                    ErrorKind::Duplicate,
                    format!("proposal {old} is already superseded"),
                );
            }
            // Once the executive has decided, the objection window decides
            // (§21.2): the proposer may not withdraw the decision.
            if Self::is_open_at(old_record, time)
                && old_record
                    .hierarchy
                    .as_ref()
                    .is_some_and(|h| h.decision.is_some())
            {
                return reject(
                    ErrorKind::InvalidState,
                    format!(
                        "the executive has decided proposal {old}: it closes when its objection window does, and cannot be superseded"
                    ),
                );
            }
        }
        // Proposals past their deadline at `time`, or closed by the end of
        // their commit phase (§18), are closed by this entry before the
        // proposal opens, so they do not count.
        let closing = self.closing_at(time);
        let expired = closing.len();
        // The same for the proposer's own quota: what this entry's time
        // closes does not count.
        let own_expired = closing
            .iter()
            .filter(|id| self.proposals[*id].proposer == proposer)
            .count() as u32;
        // A proposal this one supersedes closes with it: it does not count.
        let replaced = p
            .supersedes
            .as_ref()
            .and_then(|old| self.proposals.get(old))
            .is_some_and(|old| old.proposer == proposer && Self::is_open_at(old, time));
        let own_open =
            self.agents[proposer as usize].open_proposals - own_expired - u32::from(replaced);
        let limit = self.config.max_open_per_agent;
        if own_open >= limit {
            return reject(
                ErrorKind::TooLarge,
                format!(
                    "this agent has {own_open} proposals open; the space allows {limit} per agent"
                ),
            );
        }
        if self.deadlines.len() - expired >= MAX_OPEN_PROPOSALS {
            return reject(
                ErrorKind::TooLarge,
                format!("the space holds its limit of {MAX_OPEN_PROPOSALS} open proposals"),
            );
        }
        Ok(Plan::Propose(Box::new(ProposePlan {
            id,
            proposer,
            policy,
            proposal: p,
        })))
    }

    /// The open proposals the entry at log time `time` closes before its
    /// message is looked at: deadlines, and commit phases whose end closes
    /// the proposal (§18).
    fn closing_at(&self, time: u64) -> BTreeSet<Digest> {
        let last = (time, Digest([0xff; 32]));
        let mut ids: BTreeSet<Digest> = self.deadlines.range(..=last).map(|(_, id)| *id).collect();
        ids.extend(
            self.commit_deadlines
                .range(..=last)
                .map(|(_, id)| *id)
                .filter(|id| self.proposals[id].commit_end_closes()),
        );
        ids
    }

    /// Proof-of-work admission (§16): below `admission_trust_below` in the
    /// proposal's domain, the proposal must carry a stamp of the space's
    /// difficulty bound to its own content.
    fn check_admission(
        &self,
        message: &Verified,
        p: &Proposal,
        proposer: AgentIdx,
    ) -> Result<(), Rejection> {
        let below = self.config.admission_trust_below;
        let trust = self.trust(&self.agents[proposer as usize], &p.domain);
        if trust >= below {
            return Ok(());
        }
        let difficulty = self.config.admission_difficulty;
        let Some(nonce) = p.stamp else {
            return reject(
                ErrorKind::InsufficientWork,
                format!(
                    "your trust in {} is {trust}, below {below}: the proposal needs a stamp of {difficulty} bits",
                    p.domain.as_str()
                ),
            );
        };
        let base = crate::stamp::stamp_base(message.signer(), message.body());
        if !crate::stamp::meets(&base, nonce, difficulty) {
            return reject(
                ErrorKind::InsufficientWork,
                format!("stamp {nonce} does not give this proposal {difficulty} leading zero bits"),
            );
        }
        Ok(())
    }

    fn check_response(
        &self,
        message: &Verified,
        r: Response,
        time: u64,
    ) -> Result<Plan, Rejection> {
        let signer = message.signer();
        let idx = self.signer_idx(signer)?;
        let record = self.record(&r.proposal)?;
        if let Some(h) = record.hierarchy.as_deref()
            && h.is_worker(signer)
        {
            return Self::check_objection(record, h, signer, r, time);
        }
        let slot = record.slots.get(&idx).copied();
        // An agent that already answered is told so, even after the close:
        // a re-sent response is a duplicate, whatever happened since.
        if record.proposer != idx && slot.is_some_and(|s| record.responded[s as usize]) {
            return reject(
                ErrorKind::Duplicate,
                format!("{signer} has already responded to this proposal"),
            );
        }
        if !Self::is_open_at(record, time) {
            return reject(
                ErrorKind::ProposalClosed,
                format!("proposal {} is closed", r.proposal),
            );
        }
        if record.proposer == idx {
            return reject(
                ErrorKind::NotEligible,
                "the proposer does not respond to its own proposal",
            );
        }
        if record
            .hierarchy
            .as_deref()
            .is_some_and(|h| h.decision.is_some())
        {
            return reject(
                ErrorKind::NotEligible,
                "the executive has decided: only the domain's workers may object now",
            );
        }
        let Some(slot) = slot else {
            return reject(
                ErrorKind::NotEligible,
                match record.committee {
                    Some(k) => {
                        format!("{signer} is not on the committee of {k} drawn for this proposal")
                    }
                    None => format!("{signer} is not in the electorate frozen for this proposal"),
                },
            );
        };
        if r.commitment.is_some() {
            return self.check_commitment(record, idx, slot, r, time);
        }
        match (record.method, &r.distribution, r.stance) {
            (Method::Vote | Method::Stake | Method::Hierarchy, None, _) => {}
            (Method::Vote | Method::Stake | Method::Hierarchy, Some(_), _) => {
                return reject(
                    ErrorKind::Malformed,
                    "this proposal is a vote: respond with a stance and a confidence",
                );
            }
            (Method::Belief, Some(d), _) => check_covers(d, &record.options)?,
            (Method::Belief, None, Some(Stance::Abstain)) => {}
            (Method::Belief, None, _) => {
                return reject(
                    ErrorKind::Malformed,
                    "this is a belief proposal: respond with a distribution over its options, or abstain",
                );
            }
            (Method::Open, None, _) => Self::check_answer(record, &r)?,
            (Method::Open, Some(_), _) => {
                return reject(
                    ErrorKind::Malformed,
                    "this is an open question: respond with an answer and a confidence, or abstain",
                );
            }
        }
        if record.method != Method::Open && r.answer.is_some() {
            return reject(
                ErrorKind::Malformed,
                "only an open question takes an answer",
            );
        }
        Self::check_reveal(record, message, slot, &r, time)?;
        Ok(Plan::Respond(idx, slot, r))
    }

    /// An open question's response is an answer (or an abstention), and a
    /// new distinct answer fits (§19).
    fn check_answer(record: &ProposalRecord, r: &Response) -> Result<(), Rejection> {
        match &r.answer {
            None if r.stance == Some(Stance::Abstain) => Ok(()),
            None => reject(
                ErrorKind::Malformed,
                "this is an open question: respond with an answer and a confidence, or abstain",
            ),
            Some(a) => {
                let text = crate::open::normalize(a)?;
                if record.open.as_ref().is_some_and(|o| o.full_for(&text)) {
                    return reject(
                        ErrorKind::TooLarge,
                        format!(
                            "this question already has {} distinct answers",
                            crate::open::MAX_DISTINCT_ANSWERS
                        ),
                    );
                }
                Ok(())
            }
        }
    }

    /// A commitment to a sealed proposal (§18): the proposal is sealed, its
    /// commit phase has not ended, and the member has not committed.
    fn check_commitment(
        &self,
        record: &ProposalRecord,
        idx: AgentIdx,
        slot: u32,
        r: Response,
        time: u64,
    ) -> Result<Plan, Rejection> {
        let Some(sealed) = &record.sealed else {
            return reject(
                ErrorKind::Malformed,
                "this proposal is not sealed: respond with your answer, not a commitment",
            );
        };
        if sealed.commitments.contains_key(&slot) {
            return reject(
                ErrorKind::Duplicate,
                "this member has already committed to this proposal",
            );
        }
        if sealed.revealing || time >= sealed.commit_deadline {
            return reject(
                ErrorKind::WrongPhase,
                format!(
                    "the commit phase ended at {}: commitments are no longer taken",
                    sealed.commit_deadline
                ),
            );
        }
        Ok(Plan::Commit(idx, slot, r))
    }

    /// The answer of a response to a sealed proposal is a reveal: after the
    /// commit deadline, from a member that committed, hashing to its
    /// commitment. An unsealed proposal takes no salt (§18).
    fn check_reveal(
        record: &ProposalRecord,
        message: &Verified,
        slot: u32,
        r: &Response,
        time: u64,
    ) -> Result<(), Rejection> {
        let Some(sealed) = &record.sealed else {
            if r.salt.is_some() {
                return reject(
                    ErrorKind::Malformed,
                    "this proposal is not sealed: a response carries no salt",
                );
            }
            return Ok(());
        };
        if r.salt.is_none() {
            return reject(
                ErrorKind::Malformed,
                "this proposal is sealed: commit first, then reveal your answer with its salt",
            );
        }
        if !sealed.revealing && time < sealed.commit_deadline {
            return reject(
                ErrorKind::WrongPhase,
                format!(
                    "the commit phase lasts until {}: reveal after it",
                    sealed.commit_deadline
                ),
            );
        }
        let Some(commit) = sealed.commitments.get(&slot) else {
            return reject(
                ErrorKind::NotEligible,
                "only a member that committed during the commit phase may reveal",
            );
        };
        let opened =
            crate::sealed::commitment_of_reveal(&record.id, message.signer(), message.body());
        if opened != Some(commit.commitment) {
            return reject(
                ErrorKind::BadReveal,
                "this answer and salt do not hash to your commitment",
            );
        }
        Ok(())
    }

    fn check_decision(&self, signer: &AgentId, d: Decision, time: u64) -> Result<Plan, Rejection> {
        let idx = self.signer_idx(signer)?;
        // An open hierarchy proposal is decided by its executive (§21).
        if let Some(record) = self.proposals.get(&d.proposal)
            && let Some(h) = record.hierarchy.as_deref()
            && Self::status_at(record, time) == Status::Open
        {
            return Self::check_executive(record, h, signer, d);
        }
        self.require_role(idx, &[Role::Reviewer])?;
        let record = self.record(&d.proposal)?;
        let status = Self::status_at(record, time);
        if status != Status::Escalated {
            return reject(
                ErrorKind::InvalidState,
                format!(
                    "proposal {} is {}, not escalated",
                    d.proposal,
                    status.as_str()
                ),
            );
        }
        if record.proposer == idx {
            return reject(
                ErrorKind::NotEligible,
                "a reviewer may not decide its own proposal",
            );
        }
        if record.decisions.iter().any(|x| x.reviewer == idx) {
            return reject(
                ErrorKind::Duplicate,
                "this reviewer has already decided this proposal",
            );
        }
        match (record.method, d.decision, &d.answer) {
            (Method::Open, HumanVerdict::Approve, None) => {
                return reject(
                    ErrorKind::Malformed,
                    "approving an open question names the answer adopted",
                );
            }
            (Method::Vote | Method::Belief | Method::Stake | Method::Hierarchy, _, Some(_)) => {
                return reject(
                    ErrorKind::Malformed,
                    "only an open question's approval names an answer",
                );
            }
            _ => {}
        }
        let option = match (record.method, d.decision, &d.option) {
            (Method::Open, _, Some(_)) => {
                return reject(
                    ErrorKind::Malformed,
                    "an open question has no options: an approval names an answer",
                );
            }
            (Method::Open, _, None) => None,
            (Method::Vote | Method::Stake | Method::Hierarchy, _, None)
            | (Method::Belief, HumanVerdict::Reject, None) => None,
            (Method::Vote | Method::Stake | Method::Hierarchy, _, Some(_)) => {
                return reject(
                    ErrorKind::Malformed,
                    "this proposal is a vote: a decision names no option",
                );
            }
            (Method::Belief, _, Some(label)) => Some(option_index(record, label)?),
            (Method::Belief, HumanVerdict::Approve, None) => {
                return reject(
                    ErrorKind::Malformed,
                    "approving a belief proposal names the option adopted",
                );
            }
        };
        Ok(Plan::Decide(idx, d, option))
    }

    fn check_outcome(&self, signer: &AgentId, o: Outcome, time: u64) -> Result<Plan, Rejection> {
        let idx = self.signer_idx(signer)?;
        self.require_role(idx, &[Role::Oracle, Role::Reviewer])?;
        let record = self.record(&o.proposal)?;
        let status = Self::status_at(record, time);
        if matches!(status, Status::Open | Status::Superseded) {
            return reject(
                ErrorKind::InvalidState,
                format!(
                    "proposal {} is {}; outcomes are for closed proposals",
                    o.proposal,
                    status.as_str()
                ),
            );
        }
        if record.outcome.is_some() {
            return reject(
                ErrorKind::Duplicate,
                format!("proposal {} already has an outcome", o.proposal),
            );
        }
        // The outcome sets the trust of everyone who took a position; none of
        // them may be the one who reports it.
        if record.proposer == idx
            || record.responses.iter().any(|r| r.agent == idx)
            || record.committed(idx)
        {
            return reject(
                ErrorKind::NotEligible,
                "an agent that proposed or responded may not report the outcome",
            );
        }
        match (record.method, &o.answer) {
            (Method::Open, None) => {
                return reject(
                    ErrorKind::Malformed,
                    "the outcome of an open question names the answer that turned out right",
                );
            }
            (Method::Vote | Method::Belief | Method::Stake | Method::Hierarchy, Some(_)) => {
                return reject(
                    ErrorKind::Malformed,
                    "only an open question's outcome is an answer",
                );
            }
            (Method::Open, Some(_)) => return Ok(Plan::Outcome(idx, o, None)),
            _ => {}
        }
        let option = match (record.method, &o.option) {
            (Method::Open, _) => unreachable!("handled above"),
            (Method::Vote | Method::Stake | Method::Hierarchy, None) => None,
            (Method::Belief, Some(label)) => Some(option_index(record, label)?),
            (Method::Vote | Method::Stake | Method::Hierarchy, Some(_)) => {
                return reject(
                    ErrorKind::Malformed,
                    "this proposal is a vote: its outcome is a result or a score",
                );
            }
            (Method::Belief, None) => {
                return reject(
                    ErrorKind::Malformed,
                    "the outcome of a belief proposal names the option that turned out right",
                );
            }
        };
        Ok(Plan::Outcome(idx, o, option))
    }

    fn execute(
        &mut self,
        plan: Plan,
        message: &Verified,
        index: LogIndex,
        time: u64,
    ) -> Vec<Effect> {
        let signer = message.signer();
        match plan {
            Plan::Genesis(space, config) => {
                self.id = space.clone();
                self.config = *config;
                let idx = self.insert_agent(signer, "admin".into(), 0, index);
                self.agents[idx as usize].granted_roles.insert(Role::Admin);
                vec![Effect::SpaceCreated {
                    space,
                    admin: signer.clone(),
                }]
            }
            Plan::Configure(seq, config) => {
                self.config_seq = seq;
                self.config = *config;
                vec![Effect::ConfigChanged { seq }]
            }
            Plan::Grant(seq, grant) => {
                self.config_seq = seq;
                // A grant may admit an agent that has not registered yet (how a
                // closed space admits anyone); its registration follows.
                let target = match self.agent_index.get(&grant.agent) {
                    Some(&idx) => idx,
                    None => self.insert_agent(&grant.agent, String::new(), 0, index),
                };
                let agent = &mut self.agents[target as usize];
                agent.granted = grant.authorities;
                agent.granted_roles = grant.roles;
                agent.stake = grant.stake.unwrap_or(0);
                vec![Effect::Granted {
                    agent: agent.id.clone(),
                }]
            }
            Plan::Register(r) => {
                let idx = match self.agent_index.get(signer) {
                    Some(&idx) => idx,
                    None => self.insert_agent(signer, r.name.clone(), r.seq, index),
                };
                let agent = &mut self.agents[idx as usize];
                agent.name = r.name;
                agent.vendor = r.vendor;
                agent.model = r.model;
                agent.declared = r.authorities;
                agent.declared_roles = r.roles;
                agent.seq = r.seq;
                vec![Effect::AgentRegistered {
                    agent: signer.clone(),
                    seq: r.seq,
                }]
            }
            Plan::Propose(plan) => self.open_proposal(*plan, message, index, time),
            Plan::Respond(idx, slot, r) => self.count_response(idx, slot, r, message, index, time),
            Plan::Commit(idx, slot, r) => self.record_commitment(idx, slot, r, message, index),
            Plan::Decide(idx, d, option) => self.record_decision(idx, d, option, index),
            Plan::ExecutiveDecide(d) => self.record_executive(d, index, time),
            Plan::Object(r) => self.record_objection(r, message.signer(), index, time),
            Plan::Outcome(idx, o, option) => self.record_outcome(idx, o, option, index),
        }
    }

    fn insert_agent(&mut self, id: &AgentId, name: String, seq: u64, index: LogIndex) -> AgentIdx {
        let idx = self.agents.len() as AgentIdx;
        self.agents.push(Agent {
            id: id.clone(),
            name,
            vendor: None,
            model: None,
            declared: BTreeMap::new(),
            declared_roles: BTreeSet::new(),
            granted: BTreeMap::new(),
            granted_roles: BTreeSet::new(),
            seq,
            registered_at: index,
            trust: BTreeMap::new(),
            responses: 0,
            outcomes: 0,
            open_proposals: 0,
            stake: 0,
        });
        self.agent_index.insert(id.clone(), idx);
        idx
    }

    /// The electorate of `domain` as of now: every agent with the `agent`
    /// role and authority above zero, with its authority and trust frozen.
    /// The electorate of a proposal in `domain` under `policy`, with
    /// newcomers held to `open_newcomer_cap` of it (§5.0, "Newcomers").
    ///
    /// With a committee of `k` (§20.3), `k` of them are first drawn by stake,
    /// seeded from the hash of the proposal's own entry, and the cap applies
    /// within the committee.
    fn freeze_electorate(
        &self,
        domain: &Domain,
        policy: &Policy,
        committee: Option<u32>,
    ) -> Vec<Member> {
        let mut members = self.candidates(domain);
        if let Some(k) = committee {
            let stakes: Vec<u128> = members.iter().map(|m| m.stake).collect();
            let seed = stake::committee_seed(&self.head.last_hash);
            let mut drawn = crate::lottery::draw(&seed, &stakes, k as usize);
            // The committee in admission order, like any electorate.
            drawn.sort_unstable();
            members = drawn.into_iter().map(|i| members[i]).collect();
        }
        let newcomer: Vec<bool> = members
            .iter()
            .map(|m| self.is_newcomer(&self.agents[m.agent as usize], domain))
            .collect();
        let mut weights: Vec<(Authority, Trust)> =
            members.iter().map(|m| (m.authority, m.trust)).collect();
        tally::cap_share(
            self.config.open_newcomer_cap,
            policy,
            &mut weights,
            &newcomer,
        );
        for (m, (authority, _)) in members.iter_mut().zip(weights) {
            m.authority = authority;
            if self.config.stake == StakeSource::Influence {
                m.stake = u128::from(m.influence().0);
            }
        }
        members
    }

    /// Every agent with the `agent` role and authority above 0 in `domain`,
    /// in admission order, with its authority, trust and stake as of now
    /// (the newcomer cap not applied).
    fn candidates(&self, domain: &Domain) -> Vec<Member> {
        self.agents
            .iter()
            .enumerate()
            .filter(|(_, a)| self.roles(a).contains(&Role::Agent))
            .filter_map(|(i, a)| {
                let authority = self.authority(a, domain);
                let trust = self.trust(a, domain);
                (!authority.0.is_zero()).then(|| Member {
                    agent: i as AgentIdx,
                    authority,
                    trust,
                    stake: stake::stake_of(self.config.stake, authority, trust, a.stake),
                })
            })
            .collect()
    }

    /// The anchor of the round log time `time` falls in (§20.4): the
    /// recorded one if this state is already in that round, otherwise the
    /// head's hash (the entry before the first entry of the round).
    fn round_anchor(&self, time: u64) -> (u64, u64, Digest) {
        let ms = self.config.proposer_round_ms;
        let round = stake::round_of(time, ms);
        match self.round.as_deref() {
            Some(&(m, r, anchor)) if m == ms && r == round => (ms, round, anchor),
            _ => (ms, round, self.head.last_hash),
        }
    }

    /// Who may propose in `domain` at log time `time` when the space draws
    /// round proposers (§20.4); `None` when it does not. The candidates are
    /// the domain's electorate without newcomers, by stake.
    pub fn round_proposer(&self, domain: &Domain, time: u64) -> Option<stake::RoundDraw> {
        if self.config.proposer_round_ms == 0 {
            return None;
        }
        let (_, round, anchor) = self.round_anchor(time.max(self.head.last_time));
        let candidates: Vec<Member> = self
            .candidates(domain)
            .into_iter()
            .filter(|m| !self.is_newcomer(&self.agents[m.agent as usize], domain))
            .collect();
        let seed = stake::proposer_seed(domain, round, &anchor);
        let stakes: Vec<u128> = candidates.iter().map(|m| m.stake).collect();
        let drawn = crate::lottery::draw(&seed, &stakes, 1);
        Some(stake::RoundDraw {
            round,
            anchor,
            seed,
            proposer: drawn
                .first()
                .map(|&i| self.agents[candidates[i].agent as usize].id.clone()),
            candidates: candidates
                .iter()
                .map(|m| (self.agents[m.agent as usize].id.clone(), m.stake))
                .collect(),
        })
    }

    /// §4.9: with proposer rounds on, only the round's drawn proposer in
    /// the domain may propose → `not_eligible`.
    fn check_round_proposer(
        &self,
        proposer: AgentIdx,
        domain: &Domain,
        time: u64,
    ) -> Result<(), Rejection> {
        let Some(draw) = self.round_proposer(domain, time) else {
            return Ok(());
        };
        if draw.proposer.as_ref() == Some(&self.agents[proposer as usize].id) {
            return Ok(());
        }
        reject(
            ErrorKind::NotEligible,
            match draw.proposer {
                Some(who) => format!(
                    "round {} in {} was drawn for {who}; only it may propose until the round ends",
                    draw.round,
                    domain.as_str()
                ),
                None => format!(
                    "nobody holds stake in {}: no proposer can be drawn",
                    domain.as_str()
                ),
            },
        )
    }

    /// §4.9: a hierarchy proposal needs a hierarchy in its domain
    /// (`invalid_state`) and comes from one of its workers (`not_eligible`).
    fn check_hierarchy_proposal(&self, signer: &AgentId, p: &Proposal) -> Result<(), Rejection> {
        if p.method() != Method::Hierarchy {
            return Ok(());
        }
        let Some(h) = self.config.hierarchies.get(&p.domain) else {
            return reject(
                ErrorKind::InvalidState,
                format!(
                    "{} has no hierarchy: ask the admin for one",
                    p.domain.as_str()
                ),
            );
        };
        if !h.workers.contains(signer) {
            return reject(
                ErrorKind::NotEligible,
                format!(
                    "only the workers of {} propose in its hierarchy",
                    p.domain.as_str()
                ),
            );
        }
        Ok(())
    }

    /// A hierarchy proposal's electorate: the supervisors of its domain the
    /// space knows, in admission order, with their authority and trust.
    fn supervisors(&self, domain: &Domain) -> Vec<Member> {
        let h = &self.config.hierarchies[domain];
        self.agents
            .iter()
            .enumerate()
            .filter(|(_, a)| h.supervisors.contains(&a.id))
            .map(|(i, a)| {
                let (authority, trust) = (self.authority(a, domain), self.trust(a, domain));
                Member {
                    agent: i as AgentIdx,
                    authority,
                    trust,
                    stake: u128::from(Influence::of(authority, trust).0),
                }
            })
            .collect()
    }

    /// §4.9, §21.2: a worker's response to a hierarchy proposal is an
    /// objection to the executive's decision: one per worker (`duplicate`),
    /// only once the executive has decided (`invalid_state`), only while
    /// the window is open (`proposal_closed`), and only a `challenge`
    /// (`malformed`).
    fn check_objection(
        record: &ProposalRecord,
        h: &HierarchyRecord,
        signer: &AgentId,
        r: Response,
        time: u64,
    ) -> Result<Plan, Rejection> {
        if h.objections.iter().any(|o| &o.worker == signer) {
            return reject(
                ErrorKind::Duplicate,
                format!("{signer} has already objected to this decision"),
            );
        }
        if !Self::is_open_at(record, time) {
            return reject(
                ErrorKind::ProposalClosed,
                format!(
                    "proposal {} is closed: its objection window has ended",
                    r.proposal
                ),
            );
        }
        if h.decision.is_none() {
            return reject(
                ErrorKind::InvalidState,
                "the executive has not decided yet: workers object to a decision, once it is made",
            );
        }
        if r.stance != Some(Stance::Challenge) || r.distribution.is_some() {
            return reject(
                ErrorKind::Malformed,
                "an objection is a challenge of the executive's decision",
            );
        }
        Ok(Plan::Object(r))
    }

    /// §4.9, §21.2: the executive decides an open hierarchy proposal once
    /// every supervisor has had its say: only the executive (`not_eligible`),
    /// once (`duplicate`), after the last supervisor (`invalid_state`), with
    /// no option (`malformed`).
    fn check_executive(
        record: &ProposalRecord,
        h: &HierarchyRecord,
        signer: &AgentId,
        d: Decision,
    ) -> Result<Plan, Rejection> {
        if signer != &h.executive {
            return reject(
                ErrorKind::NotEligible,
                "only the domain's executive decides an open hierarchy proposal",
            );
        }
        if h.decision.is_some() {
            return reject(
                ErrorKind::Duplicate,
                "the executive has already decided this proposal",
            );
        }
        if record.pending > 0 {
            return reject(
                ErrorKind::InvalidState,
                format!(
                    "{} of {} supervisors have not had their say yet",
                    record.pending,
                    record.electorate.len()
                ),
            );
        }
        if d.option.is_some() {
            return reject(
                ErrorKind::Malformed,
                "a hierarchy proposal's decision names no option",
            );
        }
        Ok(Plan::ExecutiveDecide(d))
    }

    /// Records the executive's decision and moves the proposal's deadline
    /// to the end of the objection window (§21.2).
    fn record_executive(&mut self, d: Decision, index: LogIndex, time: u64) -> Vec<Effect> {
        let record = self.proposals.get_mut(&d.proposal).expect("checked");
        let h = record.hierarchy.as_deref_mut().expect("checked");
        let until = time.saturating_add(h.objection_window_ms);
        h.decision = Some(ExecutiveDecision {
            decision: d.decision,
            note: d.note,
            index,
            objections_until: until,
        });
        let executive = h.executive.clone();
        let removed = self.deadlines.remove(&(record.deadline, d.proposal));
        assert!(removed, "an open proposal has a deadline");
        record.deadline = until;
        self.deadlines.insert((until, d.proposal));
        vec![Effect::ExecutiveDecided {
            proposal: d.proposal,
            executive,
            decision: d.decision,
            objections_until: until,
        }]
    }

    /// Records a worker's objection; more than half of the workers
    /// escalate the proposal at once (§21.3).
    fn record_objection(
        &mut self,
        r: Response,
        worker: &AgentId,
        index: LogIndex,
        time: u64,
    ) -> Vec<Effect> {
        let record = self.proposals.get_mut(&r.proposal).expect("checked");
        let h = record.hierarchy.as_deref_mut().expect("checked");
        h.objections.push(Objection {
            worker: worker.clone(),
            reasoning: r.reasoning,
            index,
        });
        let mut effects = vec![Effect::ObjectionRecorded {
            proposal: r.proposal,
            worker: worker.clone(),
            objections: h.objections.len() as u32,
            workers: h.workers.len() as u32,
        }];
        effects.extend(self.close_if_final(&r.proposal, index, time));
        effects
    }

    /// §4.9: a committee is for low stakes only, in a space that allows
    /// committees, of at least its `min_committee` → `policy_violation`.
    fn check_committee(&self, p: &Proposal) -> Result<(), Rejection> {
        let Some(k) = p.committee else {
            return Ok(());
        };
        let least = self.config.min_committee;
        let why = if p.stakes != Stakes::Low {
            format!(
                "only a low-stakes proposal may be decided by a committee, not a {} one",
                p.stakes.as_str()
            )
        } else if least == 0 {
            "this space allows no committees (min_committee is 0)".to_string()
        } else if k < least {
            format!("a committee of {k} is below the space's min_committee of {least}")
        } else {
            return Ok(());
        };
        reject(ErrorKind::PolicyViolation, why)
    }

    /// A newcomer in `domain`: an identity that registered itself in an
    /// open space (no grant) and has no outcome in that domain yet, the
    /// kind anyone can create at will.
    fn is_newcomer(&self, agent: &Agent, domain: &Domain) -> bool {
        self.config.mode == Mode::Open
            && agent.granted.is_empty()
            && !agent.trust.contains_key(domain)
    }

    fn open_proposal(
        &mut self,
        plan: ProposePlan,
        message: &Verified,
        index: LogIndex,
        time: u64,
    ) -> Vec<Effect> {
        let ProposePlan {
            id,
            proposer,
            policy,
            proposal: p,
        } = plan;
        let hierarchy = (p.method() == Method::Hierarchy)
            .then(|| Box::new(HierarchyRecord::freeze(&self.config.hierarchies[&p.domain])));
        let electorate = match &hierarchy {
            Some(_) => self.supervisors(&p.domain),
            None => self.freeze_electorate(&p.domain, &policy, p.committee),
        };
        let method = p.method();
        let options = p.options.clone().unwrap_or_default();
        let proposer_distribution = p
            .distribution
            .as_ref()
            .map(|d| in_option_order(d, &options));
        // A stake proposal's `P` is the electorate's whole stake (§20.2).
        let potential: u128 = match method {
            Method::Stake => electorate.iter().map(|m| m.stake).sum(),
            _ => electorate.iter().map(|m| u128::from(m.influence().0)).sum(),
        };
        let reach: u128 = electorate.iter().map(|m| m.reach(&policy)).sum();
        let mut record = ProposalRecord {
            id,
            message: message.clone(),
            proposer,
            domain: p.domain.clone(),
            stakes: p.stakes,
            confidence: p.confidence,
            deadline: p.deadline,
            policy,
            entered_index: index,
            entered_time: time,
            electorate,
            tally: Tally::new(potential),
            remaining: reach,
            pending: 0,
            responses: Vec::new(),
            closure: None,
            status: Status::Open,
            decisions: Vec::new(),
            outcome: None,
            supersedes: p.supersedes,
            superseded_by: None,
            belief: BeliefTally::new(options.len()),
            method,
            options,
            proposer_distribution,
            choice: None,
            committee: p.committee,
            hierarchy,
            sealed: p.sealed.map(SealedState::new),
            open: (method == Method::Open).then(|| {
                let tolerance = p.open.as_ref().map_or(Ok(0), |t| t.tolerance_micros());
                OpenTally::new(tolerance.expect("checked by the shape"))
            }),
            slots: Index::default(),
            responded: Vec::new(),
        };
        record.rebuild_indexes();
        record.pending = record.electorate.len() as u32;
        if let Some(member) = record.member(proposer).copied() {
            // The proposer never responds, so it is never waited for.
            record.pending -= 1;
            record.remaining -= member.reach(&policy);
            if policy.proposer_counts {
                match (method, &record.proposer_distribution) {
                    (Method::Vote | Method::Stake | Method::Hierarchy, _) => {
                        member.count(
                            method,
                            &policy,
                            &mut record.tally,
                            Stance::Endorse,
                            p.confidence,
                        );
                    }
                    (Method::Belief, Some(d)) => {
                        member.count_belief(&policy, &mut record.tally, &mut record.belief, d);
                    }
                    (Method::Belief, None) | (Method::Open, _) => {}
                }
            }
        }
        let mut effects = Vec::new();
        if let Some(old) = p.supersedes {
            let old_record = self.proposals.get_mut(&old).expect("checked");
            old_record.superseded_by = Some(id);
            if old_record.status == Status::Open {
                old_record.status = Status::Superseded;
                let removed = self.deadlines.remove(&(old_record.deadline, old));
                assert!(removed);
                if let Some(s) = &old_record.sealed {
                    self.commit_deadlines.remove(&(s.commit_deadline, old));
                }
                let proposer = &mut self.agents[old_record.proposer as usize];
                proposer.open_proposals = proposer
                    .open_proposals
                    .checked_sub(1)
                    .expect("counted when opened");
                effects.push(Effect::ProposalSuperseded {
                    proposal: old,
                    by: id,
                });
            }
        }
        effects.push(Effect::ProposalOpened {
            proposal: id,
            domain: p.domain,
            electorate: record.electorate.len() as u32,
            deadline: p.deadline,
        });
        self.deadlines.insert((record.deadline, id));
        if let Some(s) = &record.sealed {
            self.commit_deadlines.insert((s.commit_deadline, id));
        }
        self.agents[proposer as usize].open_proposals += 1;
        self.proposals.insert(id, record);
        if let Some(closed) = self.close_if_final(&id, index, time) {
            effects.push(closed);
        }
        effects
    }

    fn close_if_final(&mut self, id: &Digest, index: LogIndex, time: u64) -> Option<Effect> {
        let record = &self.proposals[id];
        // A hierarchy proposal closes when its objection window does, or at
        // once when more than half of the workers object (§21); the
        // supervisors' answers only let the executive decide.
        if let Some(h) = record.hierarchy.as_deref() {
            return (h.decision.is_some() && h.overruled())
                .then(|| self.close(id, CloseCause::Objected, index, time));
        }
        if record.pending == 0 {
            return Some(self.close(id, CloseCause::AllResponded, index, time));
        }
        // A sealed proposal never closes early in its commit phase: no
        // stance is known yet, and a close would tell (§18).
        if record.sealed.as_ref().is_some_and(|s| !s.revealing) {
            return None;
        }
        record
            .early_final(record.remaining)
            .then(|| self.close(id, CloseCause::Early, index, time))
    }

    fn count_response(
        &mut self,
        idx: AgentIdx,
        slot: u32,
        r: Response,
        message: &Verified,
        index: LogIndex,
        time: u64,
    ) -> Vec<Effect> {
        let record = self.proposals.get_mut(&r.proposal).expect("checked");
        let member = record.electorate[slot as usize];
        if let Some(commit) = record
            .sealed
            .as_mut()
            .and_then(|s| s.commitments.get_mut(&slot))
        {
            commit.revealed = true;
        }
        record.responded[slot as usize] = true;
        record.pending -= 1;
        let policy = record.policy;
        record.remaining -= member.reach(&policy);
        let distribution = r
            .distribution
            .as_ref()
            .map(|d| in_option_order(d, &record.options));
        let answer = r
            .answer
            .as_deref()
            .map(|a| crate::open::normalize(a).expect("checked"));
        match (&distribution, r.stance, r.confidence) {
            _ if answer.is_some() => {
                let text = answer.clone().expect("an answer");
                let open = record.open.as_mut().expect("checked: an open question");
                open.add(text, member.pool_weight(&policy));
                record.tally.voted += u128::from(member.influence().0);
            }
            (Some(d), _, _) => {
                member.count_belief(&policy, &mut record.tally, &mut record.belief, d);
            }
            (None, Some(stance), Some(c)) => {
                member.count(record.method, &policy, &mut record.tally, stance, c);
            }
            (None, _, _) => unreachable!("checked: a stance and a confidence, or a distribution"),
        }
        record.responses.push(ResponseRecord {
            agent: idx,
            stance: r.stance,
            confidence: r.confidence,
            distribution,
            answer,
            reasoning: r.reasoning,
            index,
            message: message.id(),
        });
        let (leaning, pooled) = record.verdict();
        let effect = Effect::ResponseCounted {
            proposal: r.proposal,
            agent: message.signer().clone(),
            stance: r.stance,
            tally: record.tally_decimal(),
            leaning,
            pool: pooled.map(|p| PoolReport::new(&p, &record.options)),
            clusters: record.clusters(),
        };
        self.agents[idx as usize].responses += 1;
        let mut effects = vec![effect];
        effects.extend(self.close_if_final(&r.proposal, index, time));
        effects
    }

    fn record_commitment(
        &mut self,
        idx: AgentIdx,
        slot: u32,
        r: Response,
        message: &Verified,
        index: LogIndex,
    ) -> Vec<Effect> {
        let record = self.proposals.get_mut(&r.proposal).expect("checked");
        let sealed = record.sealed.as_mut().expect("checked: sealed");
        sealed.commitments.insert(
            slot,
            CommitRecord {
                agent: idx,
                commitment: r.commitment.expect("checked: a commitment"),
                index,
                message: message.id(),
                revealed: false,
            },
        );
        vec![Effect::Committed {
            proposal: r.proposal,
            agent: message.signer().clone(),
        }]
    }

    fn record_decision(
        &mut self,
        idx: AgentIdx,
        d: Decision,
        option: Option<u8>,
        index: LogIndex,
    ) -> Vec<Effect> {
        let reviewer = self.agents[idx as usize].id.clone();
        let record = self.proposals.get_mut(&d.proposal).expect("checked");
        let answer = d
            .answer
            .as_deref()
            .map(|a| crate::open::normalize(a).expect("checked"));
        record.decisions.push(DecisionRecord {
            reviewer: idx,
            decision: d.decision,
            option,
            answer: answer.clone(),
            note: d.note,
            index,
        });
        let label = option
            .map(|o| record.option_label(o))
            .or_else(|| answer.clone());
        let mut effects = vec![Effect::HumanDecided {
            proposal: d.proposal,
            reviewer,
            decision: d.decision,
            option: label.clone(),
        }];
        // Decisions agree when they say the same, and, on a belief
        // proposal, adopt the same option.
        let agreeing = record
            .decisions
            .iter()
            .filter(|x| x.decision == d.decision && x.option == option && x.answer == answer)
            .count() as u32;
        if agreeing >= record.policy.reviewers_required {
            record.status = match d.decision {
                HumanVerdict::Approve => Status::ApprovedByHuman,
                HumanVerdict::Reject => Status::RejectedByHuman,
            };
            record.choice = option;
            if let Some(open) = record.open.as_mut() {
                open.choice = answer;
            }
            effects.push(Effect::HumanResolved {
                proposal: d.proposal,
                status: record.status,
                option: label,
            });
        }
        effects
    }

    fn record_outcome(
        &mut self,
        idx: AgentIdx,
        o: Outcome,
        option: Option<u8>,
        index: LogIndex,
    ) -> Vec<Effect> {
        let score = o.value();
        let rate = self.config.trust_learning_rate;
        let record = self.proposals.get_mut(&o.proposal).expect("checked");
        let right = o
            .answer
            .as_deref()
            .map(|a| crate::open::normalize(a).expect("checked"));
        record.outcome = Some(OutcomeRecord {
            reporter: idx,
            score,
            option,
            answer: right.clone(),
            index,
        });
        let domain = record.domain.clone();
        // Each scored position with its quadratic score g (10⁻¹²). A vote
        // scores the proposer as an endorsement at its stated confidence,
        // then every responder that took a side; a belief proposal scores
        // every stated distribution, the proposer's first (§8, §15.4).
        // Abstentions are never scored.
        let scored: Vec<(AgentIdx, i128)> = match (score, option) {
            // An open question scores each answer as a forecast at its
            // confidence that it is right: y = 1 when it is the same
            // answer as the outcome's (§19.4).
            (None, None) => {
                let right = right.clone().expect("checked: an open question's answer");
                let open = record.open.as_ref().expect("an open question");
                record
                    .responses
                    .iter()
                    .filter_map(|r| {
                        let (answer, c) = (r.answer.as_deref()?, r.confidence?);
                        let f = trust::forecast(Stance::Endorse, c)?;
                        let y = if crate::open::is_right(open, answer, &right) {
                            Score::ONE
                        } else {
                            Score::ZERO
                        };
                        Some((r.agent, trust::score(f, y)))
                    })
                    .collect()
            }
            (Some(y), None) => std::iter::once((
                record.proposer,
                trust::forecast(Stance::Endorse, record.confidence),
            ))
            .chain(record.responses.iter().map(|r| {
                let f = r
                    .stance
                    .zip(r.confidence)
                    .and_then(|(s, c)| trust::forecast(s, c));
                (r.agent, f)
            }))
            .filter_map(|(agent, f)| f.map(|f| (agent, trust::score(f, y))))
            .collect(),
            (None, Some(right)) => record
                .proposer_distribution
                .iter()
                .map(|d| (record.proposer, d))
                .chain(
                    record
                        .responses
                        .iter()
                        .filter_map(|r| r.distribution.as_ref().map(|d| (r.agent, d))),
                )
                .map(|(agent, d)| (agent, belief::score(d, usize::from(right))))
                .collect(),
            _ => unreachable!("checked: a vote's outcome is a score, a belief's an option"),
        };
        let mut effects = vec![Effect::OutcomeRecorded {
            proposal: o.proposal,
            score,
            option: option.map(|i| record.option_label(i)).or(right),
        }];
        for (agent_idx, g) in scored {
            let before = self.trust(&self.agents[agent_idx as usize], &domain);
            let after = trust::update_with_score(before, g, rate);
            let agent = &mut self.agents[agent_idx as usize];
            agent.trust.insert(domain.clone(), after);
            agent.outcomes += 1;
            effects.push(Effect::TrustUpdated {
                agent: agent.id.clone(),
                domain: domain.clone(),
                before,
                after,
            });
        }
        effects
    }

    /// Checks the state's internal invariants; run after every apply in debug
    /// builds.
    pub fn validate(&self) {
        assert_eq!(self.agents.len(), self.agent_index.len());
        for (id, &idx) in &self.agent_index {
            assert_eq!(&self.agents[idx as usize].id, id);
        }
        let open: BTreeSet<(u64, Digest)> = self
            .proposals
            .values()
            .filter(|r| r.status == Status::Open)
            .map(|r| (r.deadline, r.id))
            .collect();
        assert_eq!(
            open, self.deadlines,
            "deadlines index only the open proposals"
        );
        let mut per_agent = vec![0u32; self.agents.len()];
        for r in self.proposals.values().filter(|r| r.status == Status::Open) {
            per_agent[r.proposer as usize] += 1;
        }
        for (agent, count) in self.agents.iter().zip(per_agent) {
            assert_eq!(
                agent.open_proposals, count,
                "open proposals counted per agent"
            );
        }
        let committing: BTreeSet<(u64, Digest)> = self
            .proposals
            .values()
            .filter(|r| r.status == Status::Open)
            .filter_map(|r| {
                let s = r.sealed.as_ref()?;
                (!s.revealing).then_some((s.commit_deadline, r.id))
            })
            .collect();
        assert_eq!(
            committing, self.commit_deadlines,
            "commit deadlines index the open proposals still in their commit phase"
        );
        for r in self.proposals.values() {
            if let Some(s) = &r.sealed {
                assert!(s.commit_deadline < r.deadline, "commit before the deadline");
                if !s.revealing {
                    assert!(r.responses.is_empty(), "no answer before the reveal phase");
                }
                for (slot, c) in &s.commitments {
                    assert_eq!(r.electorate[*slot as usize].agent, c.agent);
                    assert_eq!(
                        c.revealed,
                        r.responses.iter().any(|x| x.agent == c.agent),
                        "a commitment is revealed exactly when its answer counted"
                    );
                }
                assert!(
                    r.responses.iter().all(|x| r.committed(x.agent)),
                    "every answer to a sealed proposal was committed"
                );
            }
        }
        for (deadline, _) in self.deadlines.iter().chain(&self.commit_deadlines) {
            assert!(
                *deadline > self.head.last_time,
                "an open proposal is past its deadline"
            );
        }
        for r in self.proposals.values() {
            assert_eq!(
                r.open.is_some(),
                r.method == Method::Open,
                "an open question, and only one, has answers"
            );
            match r.method {
                Method::Vote | Method::Stake | Method::Hierarchy | Method::Open => assert!(
                    r.options.is_empty() && r.belief.sums.is_empty() && r.choice.is_none(),
                    "a vote or open question has no options, pool or choice"
                ),
                Method::Belief => {
                    assert_eq!(
                        r.belief.sums.len(),
                        r.options.len(),
                        "a pool sum per option"
                    );
                    assert!(
                        r.choice.is_none_or(|c| usize::from(c) < r.options.len()),
                        "the choice is one of the options"
                    );
                    assert_eq!(
                        (r.tally.endorse, r.tally.challenge),
                        (0, 0),
                        "a pool has no E or C"
                    );
                }
            }
        }
    }

    /// An exact decimal of a 10⁻¹⁸ weight, for display.
    pub fn weight_decimal(w: u128) -> String {
        format_scaled(w, crate::fixed::Weight::DECIMALS)
    }
}

/// What an accepted message will do, computed before anything changes.
enum Plan {
    Genesis(String, Box<SpaceConfig>),
    Configure(u64, Box<SpaceConfig>),
    Grant(u64, Box<crate::message::Grant>),
    Register(Registration),
    Propose(Box<ProposePlan>),
    Respond(AgentIdx, u32, Response),
    Commit(AgentIdx, u32, Response),
    Decide(AgentIdx, Decision, Option<u8>),
    Outcome(AgentIdx, Outcome, Option<u8>),
    ExecutiveDecide(Decision),
    Object(Response),
}

/// The position of `label` among a belief proposal's options.
fn option_index(record: &ProposalRecord, label: &str) -> Result<u8, Rejection> {
    match record.options.iter().position(|o| o == label) {
        Some(i) => Ok(i as u8),
        None => reject(
            ErrorKind::Malformed,
            format!("{label:?} is not one of the proposal's options"),
        ),
    }
}

/// A distribution's probabilities in the order of `options` (which it
/// covers: checked before).
fn in_option_order(d: &Distribution, options: &[String]) -> Vec<u32> {
    options.iter().map(|o| d[o].micros()).collect()
}

struct ProposePlan {
    id: Digest,
    proposer: AgentIdx,
    policy: Policy,
    proposal: Proposal,
}
