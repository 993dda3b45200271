//! `synod resolve`: one resolution, described in JSON, resolved by the same
//! rule the space uses (`docs/PROTOCOL.md` §11). It is both a what-if tool and
//! the hook other implementations test themselves against.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::error::{ErrorKind, Rejection, reject};
use crate::fixed::{Authority, Confidence, Decimal, Influence, Ratio, Trust, Unit};
use crate::policy::{Policy, PolicyOverrides, Stakes, Weighting};
use crate::tally::{Reason, Stance, Tally, TallyDecimal, Verdict, early_verdict, reach, resolve};

/// Most electorate members or responses a scenario may list.
pub const MAX_SCENARIO_AGENTS: usize = 1_000_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario<'a> {
    stakes: Stakes,
    #[serde(default, borrow)]
    policy: Option<RawPolicy<'a>>,
    #[serde(borrow)]
    electorate: Vec<RawMember<'a>>,
    proposer: String,
    #[serde(borrow)]
    proposer_confidence: &'a RawValue,
    #[serde(borrow)]
    responses: Vec<RawResponse<'a>>,
    #[serde(default)]
    deadline_passed: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy<'a> {
    #[serde(default)]
    weighting: Option<Weighting>,
    #[serde(default, borrow)]
    approve_margin: Option<&'a RawValue>,
    #[serde(default, borrow)]
    reject_margin: Option<&'a RawValue>,
    #[serde(default, borrow)]
    trust_cap: Option<&'a RawValue>,
    #[serde(default, borrow)]
    approve_confidence: Option<&'a RawValue>,
    #[serde(default, borrow)]
    reject_confidence: Option<&'a RawValue>,
    #[serde(default, borrow)]
    quorum: Option<&'a RawValue>,
    #[serde(default, borrow)]
    min_confidence: Option<&'a RawValue>,
    #[serde(default)]
    human_required: Option<bool>,
    #[serde(default)]
    proposer_counts: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMember<'a> {
    agent: String,
    #[serde(borrow)]
    authority: &'a RawValue,
    #[serde(borrow)]
    trust: &'a RawValue,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawResponse<'a> {
    agent: String,
    stance: Stance,
    #[serde(borrow)]
    confidence: &'a RawValue,
}

/// What `synod resolve` prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioResult {
    /// `open`, `approved`, `rejected` or `escalated`.
    pub status: String,
    /// The escalation rule that fired.
    pub reason: Option<Reason>,
    /// Whether an approve or reject came from early finality.
    pub early: bool,
    /// The exact tally.
    pub tally: TallyDecimal,
}

/// A decimal given as a JSON number or string, read from its exact text.
fn unit(field: &str, raw: &RawValue) -> Result<Unit, Rejection> {
    let text = raw.get();
    let literal = if text.starts_with('"') {
        serde_json::from_str::<String>(text)
            .map_err(|e| Rejection::new(ErrorKind::Malformed, format!("{field}: {e}")))?
    } else {
        text.to_string()
    };
    let prefix = |r: Rejection| Rejection::new(r.kind, format!("{field}: {}", r.message));
    let decimal = Decimal::parse(&literal).map_err(|e| prefix(e.into()))?;
    decimal.unit(&literal).map_err(|e| prefix(e.into()))
}

/// Resolves a scenario given as JSON text.
pub fn run(input: &str) -> Result<ScenarioResult, Rejection> {
    let raw: RawScenario<'_> = serde_json::from_str(input)
        .map_err(|e| Rejection::new(ErrorKind::Malformed, format!("scenario: {e}")))?;
    if raw.electorate.len() > MAX_SCENARIO_AGENTS || raw.responses.len() > MAX_SCENARIO_AGENTS {
        return reject(
            ErrorKind::TooLarge,
            format!("a scenario lists at most {MAX_SCENARIO_AGENTS} members and responses"),
        );
    }
    let mut overrides = PolicyOverrides::default();
    if let Some(p) = &raw.policy {
        let ratio = |name: &str, v: Option<&RawValue>| -> Result<Option<Ratio>, Rejection> {
            v.map(|v| unit(&format!("policy.{name}"), v).map(Ratio))
                .transpose()
        };
        overrides.weighting = p.weighting;
        overrides.approve_margin = ratio("approve_margin", p.approve_margin)?;
        overrides.reject_margin = ratio("reject_margin", p.reject_margin)?;
        overrides.approve_confidence = ratio("approve_confidence", p.approve_confidence)?;
        overrides.reject_confidence = ratio("reject_confidence", p.reject_confidence)?;
        overrides.trust_cap = p
            .trust_cap
            .map(|v| unit("policy.trust_cap", v).map(Trust))
            .transpose()?;
        overrides.quorum = ratio("quorum", p.quorum)?;
        overrides.min_confidence = ratio("min_confidence", p.min_confidence)?;
        overrides.human_required = p.human_required;
        overrides.proposer_counts = p.proposer_counts;
    }
    let policy = Policy::default_for(raw.stakes).with(&overrides);
    policy
        .validate()
        .map_err(|r| Rejection::new(r.kind, format!("policy: {}", r.message)))?;
    let weighting = policy.weighting;

    // Members with authority above zero, with their authority and trust. An
    // authority of 0 makes an observer: it may be listed but is not in the
    // electorate.
    let mut listed: BTreeSet<&str> = BTreeSet::new();
    let mut members: BTreeMap<&str, (Authority, Trust)> = BTreeMap::new();
    for (i, m) in raw.electorate.iter().enumerate() {
        let authority = Authority(unit(&format!("electorate[{i}].authority"), m.authority)?);
        let trust = Trust(unit(&format!("electorate[{i}].trust"), m.trust)?);
        if !listed.insert(m.agent.as_str()) {
            return reject(
                ErrorKind::Duplicate,
                format!("electorate lists {:?} twice", m.agent),
            );
        }
        if !authority.0.is_zero() {
            members.insert(m.agent.as_str(), (authority, trust));
        }
    }
    let potential: u128 = members
        .values()
        .map(|&(a, t)| u128::from(Influence::of(a, t).0))
        .sum();
    let mut tally = Tally::new(potential);
    let proposer_confidence = Confidence(unit("proposer_confidence", raw.proposer_confidence)?);
    if proposer_confidence.micros() == 0 {
        return reject(
            ErrorKind::OutOfRange,
            "proposer_confidence must be in (0, 1]",
        );
    }
    let mut responded: BTreeSet<&str> = BTreeSet::new();
    if let Some(&(a, t)) = members.get(raw.proposer.as_str()) {
        responded.insert(raw.proposer.as_str());
        if policy.proposer_counts {
            tally.add(&policy, Stance::Endorse, a, t, proposer_confidence);
        }
    }
    for (i, r) in raw.responses.iter().enumerate() {
        let confidence = Confidence(unit(&format!("responses[{i}].confidence"), r.confidence)?);
        if r.agent == raw.proposer {
            return reject(
                ErrorKind::NotEligible,
                format!("responses[{i}]: the proposer does not respond"),
            );
        }
        let Some(&(a, t)) = members.get(r.agent.as_str()) else {
            return reject(
                ErrorKind::NotEligible,
                format!("responses[{i}]: {:?} is not in the electorate", r.agent),
            );
        };
        if !responded.insert(r.agent.as_str()) {
            return reject(
                ErrorKind::Duplicate,
                format!("responses[{i}]: {:?} has already responded", r.agent),
            );
        }
        tally.add(&policy, r.stance, a, t, confidence);
    }
    let waiting = members
        .iter()
        .filter(|(agent, _)| !responded.contains(*agent));
    let remaining: u128 = waiting
        .clone()
        .map(|(_, &(a, t))| reach(&policy, a, t))
        .sum();
    let everyone_answered = waiting.count() == 0;

    let (verdict, early) = if raw.deadline_passed || everyone_answered {
        (Some(resolve(&policy, &tally)), false)
    } else {
        (early_verdict(&policy, &tally, remaining), true)
    };
    let (status, reason, early) = match verdict {
        None => ("open", None, false),
        Some(Verdict::Approved) => ("approved", None, early),
        Some(Verdict::Rejected) => ("rejected", None, early),
        Some(Verdict::Escalated(reason)) => ("escalated", Some(reason), false),
    };
    Ok(ScenarioResult {
        status: status.to_string(),
        reason,
        early,
        tally: tally.to_decimal(weighting),
    })
}
