//! `synod resolve`: one resolution, described in JSON, resolved by the same
//! rule the space uses (`docs/PROTOCOL.md` §11). It is both a what-if tool and
//! the hook other implementations test themselves against.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::belief::{self, BeliefTally};
use crate::error::{ErrorKind, Rejection, reject};
use crate::fixed::{
    Authority, Confidence, Decimal, Influence, ONE, Probability, Ratio, Trust, Unit,
};
use crate::hierarchy;
use crate::lottery;
use crate::message::HumanVerdict;
use crate::message::{MAX_OPTIONS, MIN_OPTIONS, Method, check_option_label};
use crate::policy::{Policy, PolicyOverrides, Pool, Stakes, Weighting};
use crate::stake::{self, MAX_COMMITTEE};
use crate::tally::{
    Reason, Stance, Tally, TallyDecimal, Verdict, early_verdict, reach, resolve, weight_factor,
};
use crate::wire::Digest;

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
    #[serde(default)]
    method: Option<Method>,
    #[serde(default)]
    options: Option<Vec<String>>,
    #[serde(default, borrow)]
    proposer_distribution: Option<Pairs<'a>>,
    #[serde(default)]
    committee: Option<u32>,
    #[serde(default)]
    seed: Option<Digest>,
    #[serde(default)]
    workers: Option<Vec<String>>,
    #[serde(default)]
    executive_decision: Option<HumanVerdict>,
    #[serde(default)]
    objections: Option<Vec<String>>,
    #[serde(default)]
    sealed: Option<RawSealed>,
    #[serde(default)]
    open: Option<crate::open::OpenTerms>,
}

/// A sealed proposal (§18): who committed, and whether the commit phase is
/// over. The responses are then the reveals.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSealed {
    committed: Vec<String>,
    #[serde(default)]
    commit_phase_over: bool,
}

/// A JSON object read as its members in order, repeats included, so that
/// a repeated option is refused rather than silently dropped.
struct Pairs<'a>(Vec<(String, &'a RawValue)>);

impl<'de: 'a, 'a> Deserialize<'de> for Pairs<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Pairs<'a>, D::Error> {
        struct Visit<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visit<'a> {
            type Value = Pairs<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object of option: decimal")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                mut map: M,
            ) -> Result<Pairs<'a>, M::Error> {
                let mut pairs = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, &'a RawValue>()? {
                    pairs.push((k, v));
                }
                Ok(Pairs(pairs))
            }
        }
        d.deserialize_map(Visit(std::marker::PhantomData))
    }
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
    #[serde(default)]
    pool: Option<Pool>,
    #[serde(default, borrow)]
    pool_threshold: Option<&'a RawValue>,
    #[serde(default, borrow)]
    pool_floor: Option<&'a RawValue>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMember<'a> {
    agent: String,
    #[serde(borrow)]
    authority: &'a RawValue,
    #[serde(borrow)]
    trust: &'a RawValue,
    #[serde(default)]
    stake: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawResponse<'a> {
    agent: String,
    #[serde(default)]
    stance: Option<Stance>,
    #[serde(default, borrow)]
    confidence: Option<&'a RawValue>,
    #[serde(default, borrow)]
    distribution: Option<Pairs<'a>>,
    #[serde(default)]
    answer: Option<String>,
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
    /// A belief scenario's pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub belief: Option<BeliefResult>,
    /// The committee drawn (§20.3), in listed order, when one was asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub committee: Option<Vec<String>>,
    /// A hierarchy scenario's executive decision and objections (§21).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hierarchy: Option<HierarchyResult>,
    /// An open question's clusters (§19).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open: Option<OpenResult>,
}

/// What a hierarchy scenario adds to the result (§11.4, §21).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HierarchyResult {
    /// The executive's decision, if any.
    pub decision: Option<HumanVerdict>,
    /// How many workers objected.
    pub objections: u32,
    /// How many workers there are.
    pub workers: u32,
}

/// What an open question adds to the result (§11.4, §19).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenResult {
    /// The answer adopted: the leader, when the status is `approved`.
    pub choice: Option<String>,
    /// The clusters, the leader and its agreement.
    pub clusters: crate::open::Clustered,
}

/// What a belief scenario adds to the result (§11.4, §15).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BeliefResult {
    /// The option adopted: the leader, when the status is `approved`.
    pub choice: Option<String>,
    /// The option with the highest pooled probability, if exactly one.
    pub leader: Option<String>,
    /// The pooled probability of each option, floored to millionths.
    pub pooled: BTreeMap<String, Probability>,
    /// Each counted distribution's total variation distance from the pool,
    /// by agent (the proposer's included when it counts).
    pub divergence: BTreeMap<String, String>,
}

/// A distribution given as `{option: decimal}`: its probabilities in the
/// order of `options` (§15, the message rules: decimals in [0, 1], summing
/// to exactly 1, naming each option once and nothing else).
fn distribution(field: &str, pairs: &Pairs<'_>, options: &[String]) -> Result<Vec<u32>, Rejection> {
    let mut by_label: BTreeMap<&str, u32> = BTreeMap::new();
    for (label, raw) in &pairs.0 {
        let p = unit(&format!("{field}.{label}"), raw)?;
        if by_label.insert(label.as_str(), p.micros()).is_some() {
            return reject(
                ErrorKind::Malformed,
                format!("{field}: {label:?} is given twice"),
            );
        }
    }
    let sum: u64 = by_label.values().map(|&p| u64::from(p)).sum();
    if sum != u64::from(ONE) {
        return reject(
            ErrorKind::OutOfRange,
            format!("{field}: the probabilities must sum to exactly 1"),
        );
    }
    if by_label.len() != options.len() || options.iter().any(|o| !by_label.contains_key(o.as_str()))
    {
        return reject(
            ErrorKind::Malformed,
            format!("{field}: give a probability for each option, and nothing else"),
        );
    }
    Ok(options.iter().map(|o| by_label[o.as_str()]).collect())
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

/// A sealed scenario's committed members: each a member other than the
/// proposer, listed once; in the commit phase there are no reveals yet and
/// the deadline has not passed.
fn sealed_members<'a>(
    raw: &'a RawScenario<'_>,
    sealed: &'a RawSealed,
    members: &BTreeMap<&str, (Authority, Trust)>,
) -> Result<BTreeSet<&'a str>, Rejection> {
    if sealed.committed.len() > MAX_SCENARIO_AGENTS {
        return reject(ErrorKind::TooLarge, "sealed.committed: too many agents");
    }
    let mut committed = BTreeSet::new();
    for (i, agent) in sealed.committed.iter().enumerate() {
        if *agent == raw.proposer || !members.contains_key(agent.as_str()) {
            return reject(
                ErrorKind::NotEligible,
                format!("sealed.committed[{i}]: {agent:?} is not a member other than the proposer"),
            );
        }
        if !committed.insert(agent.as_str()) {
            return reject(
                ErrorKind::Duplicate,
                format!("sealed.committed[{i}]: {agent:?} committed twice"),
            );
        }
    }
    if !sealed.commit_phase_over {
        if raw.deadline_passed {
            return reject(
                ErrorKind::Malformed,
                "sealed: the deadline comes after the commit phase",
            );
        }
        if !raw.responses.is_empty() {
            return reject(
                ErrorKind::WrongPhase,
                "responses: nothing is revealed before the commit phase is over",
            );
        }
    }
    Ok(committed)
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
        overrides.pool = p.pool;
        overrides.pool_threshold = ratio("pool_threshold", p.pool_threshold)?;
        overrides.pool_floor = ratio("pool_floor", p.pool_floor)?;
    }
    let policy = Policy::default_for(raw.stakes).with(&overrides);
    policy
        .validate()
        .map_err(|r| Rejection::new(r.kind, format!("policy: {}", r.message)))?;
    let weighting = policy.weighting;
    let method = raw.method.unwrap_or_default();
    let open_terms = match (method, &raw.open) {
        (Method::Open, terms) => Some(terms.clone().unwrap_or_default()),
        (_, Some(_)) => {
            return reject(
                ErrorKind::Malformed,
                "open: only an open question has open terms",
            );
        }
        (_, None) => None,
    };
    let options = match (method, &raw.options) {
        (Method::Vote | Method::Stake | Method::Hierarchy | Method::Open, None) => Vec::new(),
        (Method::Open, Some(_)) => {
            return reject(
                ErrorKind::Malformed,
                "options: an open question has no options",
            );
        }
        (Method::Vote | Method::Stake | Method::Hierarchy, Some(_)) => {
            return reject(
                ErrorKind::Malformed,
                "options: only a belief scenario has options",
            );
        }
        (Method::Belief, None) => {
            return reject(
                ErrorKind::Malformed,
                "options: a belief scenario lists its options",
            );
        }
        (Method::Belief, Some(options)) => {
            if options.len() < MIN_OPTIONS {
                return reject(
                    ErrorKind::Malformed,
                    format!("options: at least {MIN_OPTIONS}"),
                );
            }
            if options.len() > MAX_OPTIONS {
                return reject(
                    ErrorKind::TooLarge,
                    format!("options: at most {MAX_OPTIONS}"),
                );
            }
            for option in options {
                check_option_label(option)
                    .map_err(|r| Rejection::new(r.kind, format!("options: {}", r.message)))?;
            }
            if options.iter().collect::<BTreeSet<_>>().len() != options.len() {
                return reject(
                    ErrorKind::Malformed,
                    "options: the options must be distinct",
                );
            }
            options.clone()
        }
    };
    let belief = method == Method::Belief;
    if !belief && raw.proposer_distribution.is_some() {
        return reject(
            ErrorKind::Malformed,
            "proposer_distribution: only a belief scenario has distributions",
        );
    }

    let by_stake = method == Method::Stake;
    match (raw.committee, &raw.seed) {
        (None, None) => {}
        (Some(_), None) | (None, Some(_)) => {
            return reject(
                ErrorKind::Malformed,
                "committee: a committee and its seed come together",
            );
        }
        (Some(_), Some(_)) if !matches!(method, Method::Vote | Method::Stake) => {
            return reject(
                ErrorKind::Malformed,
                "committee: only a vote or a stake scenario has a committee",
            );
        }
        (Some(k), Some(_)) if k == 0 || k > MAX_COMMITTEE => {
            return reject(
                ErrorKind::OutOfRange,
                format!("committee: must be in 1..={MAX_COMMITTEE}"),
            );
        }
        (Some(_), Some(_)) => {}
    }

    // A hierarchy's evaluations and objections are public (§18).
    if method == Method::Hierarchy && raw.sealed.is_some() {
        return reject(
            ErrorKind::Malformed,
            "sealed: a hierarchy scenario cannot be sealed",
        );
    }
    // A hierarchy (§21): its workers, and the executive's decision and the
    // objections only in a hierarchy scenario.
    let hier = method == Method::Hierarchy;
    let workers: BTreeSet<&str> = match (&raw.workers, hier) {
        (Some(w), true) => {
            if w.is_empty() {
                return reject(ErrorKind::Malformed, "workers: a hierarchy has workers");
            }
            let set: BTreeSet<&str> = w.iter().map(String::as_str).collect();
            if set.len() != w.len() {
                return reject(ErrorKind::Duplicate, "workers: a worker is listed twice");
            }
            set
        }
        (None, true) => {
            return reject(
                ErrorKind::Malformed,
                "workers: a hierarchy scenario lists its workers",
            );
        }
        (_, false) => {
            if raw.workers.is_some() || raw.executive_decision.is_some() || raw.objections.is_some()
            {
                return reject(
                    ErrorKind::Malformed,
                    "workers, executive_decision and objections belong to a hierarchy scenario",
                );
            }
            BTreeSet::new()
        }
    };

    // Members with authority above zero, with their authority, trust and
    // stake, in listed order. An authority of 0 makes an observer: it may be
    // listed but is not in the electorate.
    let mut listed: BTreeSet<&str> = BTreeSet::new();
    let mut in_order: Vec<(&str, Authority, Trust, u128)> = Vec::new();
    for (i, m) in raw.electorate.iter().enumerate() {
        let authority = Authority(unit(&format!("electorate[{i}].authority"), m.authority)?);
        let trust = Trust(unit(&format!("electorate[{i}].trust"), m.trust)?);
        if let Some(given) = m.stake {
            stake::check_granted(Some(given)).map_err(|r| {
                Rejection::new(r.kind, format!("electorate[{i}].stake: {}", r.message))
            })?;
        }
        if !listed.insert(m.agent.as_str()) {
            return reject(
                ErrorKind::Duplicate,
                format!("electorate lists {:?} twice", m.agent),
            );
        }
        if !authority.0.is_zero() {
            let source = match m.stake {
                Some(_) => stake::StakeSource::Granted,
                None => stake::StakeSource::Influence,
            };
            let s = stake::stake_of(source, authority, trust, m.stake.unwrap_or(0));
            in_order.push((m.agent.as_str(), authority, trust, s));
        }
    }
    // A committee: k members drawn by stake with the given seed (§20.3).
    let committee = match (raw.committee, &raw.seed) {
        (Some(k), Some(seed)) => {
            let stakes: Vec<u128> = in_order.iter().map(|m| m.3).collect();
            let mut drawn = lottery::draw(seed, &stakes, k as usize);
            drawn.sort_unstable();
            in_order = drawn.into_iter().map(|i| in_order[i]).collect();
            Some(in_order.iter().map(|m| m.0.to_string()).collect())
        }
        _ => None,
    };
    if raw
        .electorate
        .iter()
        .any(|m| workers.contains(m.agent.as_str()))
    {
        return reject(
            ErrorKind::Malformed,
            "electorate: in a hierarchy the electorate is the supervisors, never a worker",
        );
    }
    let stakes: BTreeMap<&str, u128> = in_order.iter().map(|m| (m.0, m.3)).collect();
    let members: BTreeMap<&str, (Authority, Trust)> =
        in_order.iter().map(|m| (m.0, (m.1, m.2))).collect();
    let potential: u128 = if by_stake {
        stakes.values().sum()
    } else {
        members
            .values()
            .map(|&(a, t)| u128::from(Influence::of(a, t).0))
            .sum()
    };
    let mut tally = Tally::new(potential);
    let proposer_confidence = Confidence(unit("proposer_confidence", raw.proposer_confidence)?);
    if proposer_confidence.micros() == 0 {
        return reject(
            ErrorKind::OutOfRange,
            "proposer_confidence must be in (0, 1]",
        );
    }
    let proposer_distribution = raw
        .proposer_distribution
        .as_ref()
        .map(|d| distribution("proposer_distribution", d, &options))
        .transpose()?;
    let committed = match &raw.sealed {
        None => None,
        Some(sealed) => Some(sealed_members(&raw, sealed, &members)?),
    };
    let mut open = match &open_terms {
        Some(terms) => Some(crate::open::OpenTally::new(
            terms
                .tolerance_micros()
                .map_err(|r| Rejection::new(r.kind, format!("open: {}", r.message)))?,
        )),
        None => None,
    };
    let mut pool = BeliefTally::new(options.len());
    // The distributions counted, by agent, for the divergences.
    let mut counted: Vec<(&str, Vec<u32>)> = Vec::new();
    let mut responded: BTreeSet<&str> = BTreeSet::new();
    if let Some(&(a, t)) = members.get(raw.proposer.as_str()) {
        responded.insert(raw.proposer.as_str());
        if policy.proposer_counts {
            match &proposer_distribution {
                _ if open.is_some() => {}
                _ if by_stake => {
                    stake::add(&mut tally, Stance::Endorse, stakes[raw.proposer.as_str()])
                }
                _ if !belief => tally.add(&policy, Stance::Endorse, a, t, proposer_confidence),
                Some(d) => {
                    pool.add(&policy, weight_factor(&policy, a, t), d);
                    tally.voted += u128::from(Influence::of(a, t).0);
                    counted.push((raw.proposer.as_str(), d.clone()));
                }
                None => {}
            }
        }
    }
    for (i, r) in raw.responses.iter().enumerate() {
        let field = format!("responses[{i}]");
        let mut answer = None;
        let position = match (r.stance, r.confidence, &r.distribution) {
            _ if r.answer.is_some() || open.is_some() => {
                match (r.stance, r.confidence, &r.distribution, &r.answer) {
                    (None, Some(c), None, Some(a)) if open.is_some() => {
                        let c = Confidence(unit(&format!("{field}.confidence"), c)?);
                        answer = Some(crate::open::normalize(a).map_err(|e| {
                            Rejection::new(e.kind, format!("{field}.answer: {}", e.message))
                        })?);
                        Ok((Stance::Endorse, c))
                    }
                    (Some(Stance::Abstain), Some(c), None, None) => Ok((
                        Stance::Abstain,
                        Confidence(unit(&format!("{field}.confidence"), c)?),
                    )),
                    _ => {
                        return reject(
                            ErrorKind::Malformed,
                            format!(
                                "{field}: an open question's response is an answer with a confidence, or an abstention"
                            ),
                        );
                    }
                }
            }
            (Some(stance), Some(c), None) => {
                if belief && stance != Stance::Abstain {
                    return reject(
                        ErrorKind::Malformed,
                        format!(
                            "{field}: a belief scenario's response is a distribution or an abstention"
                        ),
                    );
                }
                Ok((stance, Confidence(unit(&format!("{field}.confidence"), c)?)))
            }
            (None, None, Some(d)) if belief => {
                Err(distribution(&format!("{field}.distribution"), d, &options)?)
            }
            (None, None, Some(_)) => {
                return reject(
                    ErrorKind::Malformed,
                    format!("{field}: only a belief scenario's responses are distributions"),
                );
            }
            _ => {
                return reject(
                    ErrorKind::Malformed,
                    format!("{field}: give stance and confidence, or a distribution"),
                );
            }
        };
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
        if committed
            .as_ref()
            .is_some_and(|c| !c.contains(r.agent.as_str()))
        {
            return reject(
                ErrorKind::NotEligible,
                format!("responses[{i}]: {:?} did not commit", r.agent),
            );
        }
        if !responded.insert(r.agent.as_str()) {
            return reject(
                ErrorKind::Duplicate,
                format!("responses[{i}]: {:?} has already responded", r.agent),
            );
        }
        match position {
            Ok((stance, _)) if by_stake => stake::add(&mut tally, stance, stakes[r.agent.as_str()]),
            Ok(_) if answer.is_some() => {
                let open = open.as_mut().expect("an open question");
                let text = answer.take().expect("an answer");
                if open.full_for(&text) {
                    return reject(
                        ErrorKind::TooLarge,
                        format!("{field}: too many distinct answers"),
                    );
                }
                open.add(text, weight_factor(&policy, a, t));
                tally.voted += u128::from(Influence::of(a, t).0);
            }
            Ok(_) if open.is_some() => {}
            Ok((stance, confidence)) => tally.add(&policy, stance, a, t, confidence),
            Err(d) => {
                pool.add(&policy, weight_factor(&policy, a, t), &d);
                tally.voted += u128::from(Influence::of(a, t).0);
                counted.push((r.agent.as_str(), d));
            }
        }
    }
    // Once a sealed proposal's commit phase is over, only the members that
    // committed may still answer (§18).
    let committing = raw.sealed.as_ref().is_some_and(|s| !s.commit_phase_over);
    let waiting = members.iter().filter(|(agent, _)| {
        !responded.contains(*agent)
            && (committing || committed.as_ref().is_none_or(|c| c.contains(**agent)))
    });
    // §21: the executive decides after every supervisor; objections come
    // from workers, once each, after the decision.
    let mut objected: BTreeSet<&str> = BTreeSet::new();
    if hier {
        if !workers.contains(raw.proposer.as_str()) {
            return reject(
                ErrorKind::NotEligible,
                "proposer: only a worker proposes in a hierarchy",
            );
        }
        if raw.executive_decision.is_some() && waiting.clone().count() > 0 {
            return reject(
                ErrorKind::InvalidState,
                "executive_decision: not every supervisor has had its say",
            );
        }
        for (i, w) in raw.objections.iter().flatten().enumerate() {
            if raw.executive_decision.is_none() {
                return reject(
                    ErrorKind::InvalidState,
                    "objections: there is no executive decision to object to",
                );
            }
            if !workers.contains(w.as_str()) {
                return reject(
                    ErrorKind::NotEligible,
                    format!("objections[{i}]: {w:?} is not a worker"),
                );
            }
            if !objected.insert(w.as_str()) {
                return reject(
                    ErrorKind::Duplicate,
                    format!("objections[{i}]: {w:?} has already objected"),
                );
            }
        }
    }
    let remaining: u128 = waiting
        .clone()
        .map(|(_, &(a, t))| reach(&policy, a, t))
        .sum();
    let everyone_answered = waiting.count() == 0;

    let closing = raw.deadline_passed || everyone_answered;
    let decimals = match weighting {
        Weighting::Linear => 12,
        Weighting::LogOdds => 18,
    };
    let open_result = open.as_ref().map(|o| {
        let (verdict, clusters) = crate::open::resolve(&policy, &tally, o, decimals);
        (closing.then_some(verdict), clusters)
    });
    let (verdict, early) = match (belief, closing) {
        // An open question has no early finality (§19.3).
        _ if open_result.is_some() => (open_result.as_ref().and_then(|(v, _)| *v), false),
        _ if hier => {
            let v = hierarchy::rule(
                &policy,
                raw.executive_decision,
                objected.len(),
                workers.len(),
            );
            // More than half of the workers close it at once (§21.3).
            let overruled = raw.executive_decision.is_some() && 2 * objected.len() > workers.len();
            ((raw.deadline_passed || overruled).then_some(v), false)
        }
        // No early finality in a sealed proposal's commit phase (§18).
        (false, false) if committing => (None, false),
        (false, true) if by_stake => (Some(stake::resolve(&policy, &tally)), false),
        (false, false) if by_stake => (stake::early(&policy, &tally), true),
        (false, true) => (Some(resolve(&policy, &tally)), false),
        (false, false) => (early_verdict(&policy, &tally, remaining), true),
        // A belief proposal has no early finality (§15.3).
        (true, true) => (Some(belief::resolve(&policy, &tally, &pool).0), false),
        (true, false) => (None, false),
    };
    let belief_result = belief.then(|| {
        let pooled = belief::pool(&policy, &pool);
        let report = belief::PoolReport::new(&pooled, &options);
        let divergence = if pooled.probabilities.is_empty() {
            BTreeMap::new()
        } else {
            counted
                .iter()
                .map(|(agent, d)| {
                    let twice = belief::divergence(d, &pooled.probabilities);
                    (agent.to_string(), belief::divergence_decimal(twice))
                })
                .collect()
        };
        BeliefResult {
            choice: (verdict == Some(Verdict::Approved))
                .then(|| report.leader.clone())
                .flatten(),
            leader: report.leader,
            pooled: report.pooled,
            divergence,
        }
    });
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
        tally: tally.to_decimal(if by_stake {
            Weighting::Linear
        } else {
            weighting
        }),
        belief: belief_result,
        committee,
        hierarchy: hier.then_some(HierarchyResult {
            decision: raw.executive_decision,
            objections: objected.len() as u32,
            workers: workers.len() as u32,
        }),
        open: open_result.map(|(v, clusters)| OpenResult {
            choice: (v == Some(Verdict::Approved))
                .then(|| clusters.leader.clone())
                .flatten(),
            clusters,
        }),
    })
}
