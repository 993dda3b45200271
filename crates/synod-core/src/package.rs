//! The decision package: everything a human needs to decide an escalation
//! (`docs/PROTOCOL.md` §7.2).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::fixed::{Authority, Confidence, Trust, format_scaled};
use crate::identity::AgentId;
use crate::logodds::{self, EVIDENCE_DECIMALS};
use crate::message::HumanVerdict;
use crate::policy::{Policy, Weighting};
use crate::space::{CloseCause, Member, ProposalRecord, Space, Status};
use crate::tally::{Reason, Stance, TallyDecimal, sway, weight_decimals};
use crate::wire::Digest;

/// One weighed position: a response, or the proposer's counted endorsement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// The agent.
    pub agent: AgentId,
    /// Its display name.
    pub name: String,
    /// Its vendor label.
    pub vendor: Option<String>,
    /// Its stance (the proposer's is `endorse`).
    pub stance: Stance,
    /// Its confidence.
    pub confidence: Confidence,
    /// Frozen authority.
    pub authority: Authority,
    /// Frozen trust.
    pub trust: Trust,
    /// How far it moved the tally, exact; 0 for an abstention. Linear
    /// weighting: `authority × confidence × trust`, counted on its stance's
    /// side. Log-odds: its evidence, signed (positive for the action; an
    /// endorsement below confidence one half argues against it).
    pub weight: String,
    /// Its reasoning (empty for the proposer).
    pub reasoning: String,
    /// Whether this is the proposer's counted endorsement.
    pub proposer: bool,
}

/// The tally set against what each check needed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Thresholds {
    /// `quorum × P`: the `V` needed.
    pub quorum_needed: String,
    /// `min_confidence × V`: the `T` needed (linear); 0 under log-odds,
    /// which has no confidence check.
    pub confidence_needed: String,
    /// The `E − C` needed to approve: `approve_margin × T` (linear) or
    /// `logit(approve_confidence)` (log-odds).
    pub approve_needed: String,
    /// The `C − E` needed to reject: `reject_margin × T` (linear) or
    /// `logit(reject_confidence)` (log-odds).
    pub reject_needed: String,
    /// `E − C`, signed.
    pub margin: String,
}

/// How confident the positions were, by stance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfidenceDistribution {
    /// Confidences of endorsements, ascending.
    pub endorse: Vec<Confidence>,
    /// Confidences of challenges, ascending.
    pub challenge: Vec<Confidence>,
    /// Confidences of abstentions, ascending.
    pub abstain: Vec<Confidence>,
    /// Count of positions per tenth: `[0, 0.1)`, …, `[0.9, 1]`.
    pub histogram: [u32; 10],
}

/// A human reviewer's recorded decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewerDecision {
    /// The reviewer.
    pub reviewer: AgentId,
    /// Approve or reject.
    pub decision: HumanVerdict,
    /// The note.
    pub note: String,
}

/// Everything about a proposal's decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionPackage {
    /// The proposal id.
    pub id: Digest,
    /// The signed proposal.
    pub proposal: Value,
    /// Its status.
    pub status: Status,
    /// The rule that escalated it.
    pub reason: Option<Reason>,
    /// What closed it.
    pub cause: Option<CloseCause>,
    /// The policy it was resolved under.
    pub policy: Policy,
    /// Every weighed position.
    pub positions: Vec<Position>,
    /// `E`, `C`, `V`, `P`.
    pub tally: TallyDecimal,
    /// The thresholds they were checked against.
    pub thresholds: Thresholds,
    /// The spread of confidences.
    pub confidences: ConfidenceDistribution,
    /// Members of the electorate who never answered.
    pub silent: Vec<AgentId>,
    /// Human decisions so far.
    pub decisions: Vec<ReviewerDecision>,
}

fn signed_decimal(value: i128, decimals: u32) -> String {
    let text = format_scaled(value.unsigned_abs(), decimals);
    if value < 0 { format!("-{text}") } else { text }
}

impl DecisionPackage {
    /// Builds the package of `record` in `space`.
    pub fn build(space: &Space, record: &ProposalRecord) -> DecisionPackage {
        let agent = |idx| space.agent_at(idx);
        let weighting = record.policy.weighting;
        let decimals = weight_decimals(weighting);
        let weight = |member: &Member, stance, confidence| {
            let sway = sway(
                &record.policy,
                stance,
                member.authority,
                member.trust,
                confidence,
            );
            match (weighting, sway) {
                (_, None) => "0".to_string(),
                (Weighting::Linear, Some(w)) => format_scaled(w.unsigned_abs(), decimals),
                (Weighting::LogOdds, Some(e)) => signed_decimal(e, decimals),
            }
        };
        let mut positions = Vec::with_capacity(record.responses.len() + 1);
        if record.policy.proposer_counts
            && let Some(member) = record.member(record.proposer)
        {
            let a = agent(record.proposer);
            positions.push(Position {
                agent: a.id.clone(),
                name: a.name.clone(),
                vendor: a.vendor.clone(),
                stance: Stance::Endorse,
                confidence: record.confidence,
                authority: member.authority,
                trust: member.trust,
                weight: weight(member, Stance::Endorse, record.confidence),
                reasoning: String::new(),
                proposer: true,
            });
        }
        for r in &record.responses {
            let member = record.member(r.agent).expect("responders are members");
            let a = agent(r.agent);
            positions.push(Position {
                agent: a.id.clone(),
                name: a.name.clone(),
                vendor: a.vendor.clone(),
                stance: r.stance,
                confidence: r.confidence,
                authority: member.authority,
                trust: member.trust,
                weight: weight(member, r.stance, r.confidence),
                reasoning: r.reasoning.clone(),
                proposer: false,
            });
        }
        let t = &record.tally;
        let total = t.total();
        let ratio = |r: crate::fixed::Ratio| u128::from(r.micros());
        let policy = &record.policy;
        let quorum_needed = format_scaled(ratio(policy.quorum) * t.potential, 18);
        let margin = signed_decimal(t.endorse as i128 - t.challenge as i128, decimals);
        let thresholds = match weighting {
            Weighting::Linear => Thresholds {
                quorum_needed,
                confidence_needed: format_scaled(ratio(policy.min_confidence) * t.voted, 18),
                approve_needed: format_scaled(ratio(policy.approve_margin) * total, 24),
                reject_needed: format_scaled(ratio(policy.reject_margin) * total, 24),
                margin,
            },
            Weighting::LogOdds => {
                let needed = |p| signed_decimal(logodds::threshold(p), EVIDENCE_DECIMALS);
                Thresholds {
                    quorum_needed,
                    confidence_needed: "0".to_string(),
                    approve_needed: needed(policy.approve_confidence),
                    reject_needed: needed(policy.reject_confidence),
                    margin,
                }
            }
        };
        let mut confidences = ConfidenceDistribution {
            endorse: Vec::new(),
            challenge: Vec::new(),
            abstain: Vec::new(),
            histogram: [0; 10],
        };
        for p in &positions {
            match p.stance {
                Stance::Endorse => confidences.endorse.push(p.confidence),
                Stance::Challenge => confidences.challenge.push(p.confidence),
                Stance::Abstain => confidences.abstain.push(p.confidence),
            }
            let bucket = (p.confidence.micros() / 100_000).min(9) as usize;
            confidences.histogram[bucket] += 1;
        }
        confidences.endorse.sort();
        confidences.challenge.sort();
        confidences.abstain.sort();
        let responded: std::collections::BTreeSet<u32> =
            record.responses.iter().map(|r| r.agent).collect();
        let silent = record
            .electorate
            .iter()
            .filter(|m| m.agent != record.proposer && !responded.contains(&m.agent))
            .map(|m| agent(m.agent).id.clone())
            .collect();
        let decisions = record
            .decisions
            .iter()
            .map(|d| ReviewerDecision {
                reviewer: agent(d.reviewer).id.clone(),
                decision: d.decision,
                note: d.note.clone(),
            })
            .collect();
        DecisionPackage {
            id: record.id,
            proposal: record.message.to_value(),
            status: record.status,
            reason: record.closure.and_then(|c| c.verdict.reason()),
            cause: record.closure.map(|c| c.cause),
            policy: record.policy,
            positions,
            tally: t.to_decimal(weighting),
            thresholds,
            confidences,
            silent,
            decisions,
        }
    }
}
