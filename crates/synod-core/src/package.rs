//! The decision package: everything a human needs to decide an escalation
//! (`docs/PROTOCOL.md` §7.2).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::belief::{self, divergence_decimal};
use crate::fixed::{Authority, Confidence, Probability, Trust, format_scaled};
use crate::identity::AgentId;
use crate::logodds::{self, EVIDENCE_DECIMALS};
use crate::message::{HumanVerdict, Method};
use crate::policy::{Policy, Weighting};
use crate::space::{CloseCause, Member, ProposalRecord, Space, Status};
use crate::stake;
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
    /// Its stance (the proposer's is `endorse`); absent for a belief
    /// proposal's distribution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stance: Option<Stance>,
    /// Its confidence; absent for a belief proposal's distribution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<Confidence>,
    /// A belief proposal's distribution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distribution: Option<BTreeMap<String, Probability>>,
    /// How far the distribution is from the pooled one: the total variation
    /// distance `½ Σ |p − π|` against the pooled probabilities as printed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub divergence: Option<String>,
    /// An open question's answer, normalised (§19).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
    /// Frozen authority.
    pub authority: Authority,
    /// Frozen trust.
    pub trust: Trust,
    /// How far it moved the tally, exact; 0 for an abstention. Linear
    /// weighting: `authority × confidence × trust`, counted on its stance's
    /// side. Log-odds: its evidence, signed (positive for the action; an
    /// endorsement below confidence one half argues against it). A belief
    /// proposal's distribution: its weight in the pool (§15.1).
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
    /// `logit(approve_confidence)` (log-odds); a belief proposal's
    /// `pool_threshold`.
    pub approve_needed: String,
    /// The `C − E` needed to reject: `reject_margin × T` (linear) or
    /// `logit(reject_confidence)` (log-odds).
    pub reject_needed: String,
    /// `E − C`, signed; a belief proposal's leading pooled probability
    /// (0 without a single leader).
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
    /// The option a belief proposal's approval adopts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub option: Option<String>,
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
    /// A belief proposal's options and pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub belief: Option<BeliefPackage>,
    /// A hierarchy proposal's executive decision and the workers'
    /// objections (§21.4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hierarchy: Option<HierarchyPackage>,
    /// A sealed proposal's commitments (§18).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<SealedPackage>,
    /// An open question's clusters, dissenting ones included, and the
    /// adopted answer (§19).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open: Option<OpenPackage>,
}

/// What a reviewer needs of a hierarchy proposal beyond the supervisors'
/// positions: the executive's decision and who objected to it, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HierarchyPackage {
    /// The executive.
    pub executive: AgentId,
    /// Its decision, `null` if it did not decide.
    pub decision: Option<HumanVerdict>,
    /// Its note.
    pub note: String,
    /// When the objection window closes or closed; `null` without a
    /// decision.
    pub objections_until: Option<u64>,
    /// How many workers the hierarchy had.
    pub workers: u32,
    /// The objections, in log order.
    pub objections: Vec<ObjectionPackage>,
}

/// One worker's objection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectionPackage {
    /// The worker.
    pub worker: AgentId,
    /// Its display name.
    pub name: String,
    /// Why it objected.
    pub reasoning: String,
}

/// What a reviewer needs of an open question beyond the positions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenPackage {
    /// Every cluster, the leader's and the dissenting ones.
    pub clusters: crate::open::Clustered,
    /// The answer adopted, by the rule or by reviewers.
    pub choice: Option<String>,
}

/// Who committed to a sealed proposal and who has revealed (§18).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedPackage {
    /// End of the commit phase (log time, ms).
    pub commit_deadline: u64,
    /// `commit` or `reveal`.
    pub phase: String,
    /// The members that committed, in log order.
    pub committed: Vec<AgentId>,
    /// Those of them whose answer has not been revealed: abstentions if
    /// the proposal closes before they reveal.
    pub unrevealed: Vec<AgentId>,
}

/// What a reviewer needs of a belief proposal beyond the positions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BeliefPackage {
    /// The options, in the proposal's order.
    pub options: Vec<String>,
    /// The option with the highest pooled probability, if exactly one.
    pub leader: Option<String>,
    /// The pooled probability of each option, floored to millionths.
    pub pooled: BTreeMap<String, Probability>,
    /// The option adopted, by the rule or by reviewers.
    pub choice: Option<String>,
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
        // A pool weight is a weight factor: 10⁻¹² linear, 10⁻¹⁸ log-odds.
        let pool_decimals = match weighting {
            Weighting::Linear => crate::fixed::Influence::DECIMALS,
            Weighting::LogOdds => crate::fixed::Weight::DECIMALS,
        };
        let pooled =
            (record.method == Method::Belief).then(|| belief::pool(&record.policy, &record.belief));
        let belief_position = |member: &Member, d: &[u32]| {
            let w = member.pool_weight(&record.policy);
            let shown = pooled
                .as_ref()
                .filter(|p| !p.probabilities.is_empty())
                .map(|p| divergence_decimal(belief::divergence(d, &p.probabilities)));
            let map = record
                .options
                .iter()
                .zip(d)
                .map(|(o, &p)| (o.clone(), Probability::from_micros(p)))
                .collect();
            (format_scaled(w, pool_decimals), Some(map), shown)
        };
        let weight = |member: &Member, stance, confidence| {
            // A stake proposal weighs a side by the member's stake (§20.2).
            if record.method == Method::Stake {
                return match stance {
                    Stance::Abstain => "0".to_string(),
                    _ => format_scaled(member.stake, crate::fixed::Influence::DECIMALS),
                };
            }
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
            let position = |stance, confidence, (weight, distribution, divergence)| Position {
                agent: a.id.clone(),
                name: a.name.clone(),
                vendor: a.vendor.clone(),
                stance,
                confidence,
                distribution,
                divergence,
                answer: None,
                authority: member.authority,
                trust: member.trust,
                weight,
                reasoning: String::new(),
                proposer: true,
            };
            match (record.method, &record.proposer_distribution) {
                (Method::Vote | Method::Stake | Method::Hierarchy, _) => positions.push(position(
                    Some(Stance::Endorse),
                    Some(record.confidence),
                    (
                        weight(member, Stance::Endorse, record.confidence),
                        None,
                        None,
                    ),
                )),
                (Method::Belief, Some(d)) => {
                    positions.push(position(None, None, belief_position(member, d)));
                }
                (Method::Belief, None) | (Method::Open, _) => {}
            }
        }
        for r in &record.responses {
            let member = record.member(r.agent).expect("responders are members");
            let a = agent(r.agent);
            let (weight, distribution, divergence) = match (&r.distribution, r.stance, r.confidence)
            {
                _ if r.answer.is_some() => (
                    format_scaled(member.pool_weight(&record.policy), pool_decimals),
                    None,
                    None,
                ),
                (Some(d), _, _) => belief_position(member, d),
                (None, Some(stance), Some(c)) => (weight(member, stance, c), None, None),
                (None, _, _) => ("0".to_string(), None, None),
            };
            positions.push(Position {
                agent: a.id.clone(),
                name: a.name.clone(),
                vendor: a.vendor.clone(),
                stance: r.stance,
                confidence: r.confidence,
                distribution,
                divergence,
                answer: r.answer.clone(),
                authority: member.authority,
                trust: member.trust,
                weight,
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
        let clusters = record.clusters();
        let thresholds = match (record.method, weighting) {
            (Method::Stake, _) => {
                let (approve, reject) = stake::thresholds(t.potential);
                let stake_of = |side: u128| side / 1_000_000;
                let d = crate::fixed::Influence::DECIMALS;
                Thresholds {
                    quorum_needed: "0".to_string(),
                    confidence_needed: "0".to_string(),
                    approve_needed: format_scaled(approve, d),
                    reject_needed: format_scaled(reject, d),
                    margin: signed_decimal(
                        stake_of(t.endorse) as i128 - stake_of(t.challenge) as i128,
                        d,
                    ),
                }
            }
            (Method::Open, _) => Thresholds {
                quorum_needed,
                confidence_needed: "0".to_string(),
                approve_needed: policy.pool_threshold.to_string(),
                reject_needed: "0".to_string(),
                margin: clusters
                    .as_ref()
                    .map_or("0".to_string(), |c| c.agreement.clone()),
            },
            (Method::Belief, _) => {
                let p = pooled.as_ref().expect("a belief proposal's pool");
                let lead = p.leader.map_or(0, |l| p.probabilities[l]);
                Thresholds {
                    quorum_needed,
                    confidence_needed: "0".to_string(),
                    approve_needed: policy.pool_threshold.to_string(),
                    reject_needed: "0".to_string(),
                    margin: format_scaled(u128::from(lead), 6),
                }
            }
            (Method::Vote | Method::Hierarchy, Weighting::Linear) => Thresholds {
                quorum_needed,
                confidence_needed: format_scaled(ratio(policy.min_confidence) * t.voted, 18),
                approve_needed: format_scaled(ratio(policy.approve_margin) * total, 24),
                reject_needed: format_scaled(ratio(policy.reject_margin) * total, 24),
                margin,
            },
            (Method::Vote | Method::Hierarchy, Weighting::LogOdds) => {
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
            let (Some(stance), Some(confidence)) = (p.stance, p.confidence) else {
                continue;
            };
            match stance {
                Stance::Endorse => confidences.endorse.push(confidence),
                Stance::Challenge => confidences.challenge.push(confidence),
                Stance::Abstain => confidences.abstain.push(confidence),
            }
            let bucket = (confidence.micros() / 100_000).min(9) as usize;
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
                option: d
                    .option
                    .map(|o| record.option_label(o))
                    .or_else(|| d.answer.clone()),
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
            tally: record.tally_decimal(),
            thresholds,
            confidences,
            silent,
            decisions,
            hierarchy: record.hierarchy.as_deref().map(|h| HierarchyPackage {
                executive: h.executive.clone(),
                decision: h.decision.as_ref().map(|d| d.decision),
                note: h
                    .decision
                    .as_ref()
                    .map_or(String::new(), |d| d.note.clone()),
                objections_until: h.decision.as_ref().map(|d| d.objections_until),
                workers: h.workers.len() as u32,
                objections: h
                    .objections
                    .iter()
                    .map(|o| ObjectionPackage {
                        worker: o.worker.clone(),
                        name: space
                            .agent(&o.worker)
                            .map_or(String::new(), |a| a.name.clone()),
                        reasoning: o.reasoning.clone(),
                    })
                    .collect(),
            }),
            belief: pooled.map(|p| {
                let report = belief::PoolReport::new(&p, &record.options);
                BeliefPackage {
                    options: record.options.clone(),
                    leader: report.leader,
                    pooled: report.pooled,
                    choice: record.choice.map(|c| record.option_label(c)),
                }
            }),
            open: clusters.map(|clusters| OpenPackage {
                clusters,
                choice: record.open.as_ref().and_then(|o| o.choice.clone()),
            }),
            sealed: record.sealed.as_ref().map(|s| {
                let commits = s.in_log_order();
                SealedPackage {
                    commit_deadline: s.commit_deadline,
                    phase: s.phase().to_string(),
                    committed: commits.iter().map(|c| agent(c.agent).id.clone()).collect(),
                    unrevealed: commits
                        .iter()
                        .filter(|c| !c.revealed)
                        .map(|c| agent(c.agent).id.clone())
                        .collect(),
                }
            }),
        }
    }
}
