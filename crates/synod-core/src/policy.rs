//! Resolution policy: thresholds by stakes, and a proposal's overrides.

use serde::{Deserialize, Serialize};

use crate::error::{ErrorKind, Rejection, reject};
use crate::fixed::{Ratio, Trust};

/// Largest `reviewers_required` a policy may ask for.
pub const MAX_REVIEWERS_REQUIRED: u32 = 16;

/// How much is at stake in a proposal; selects the default policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stakes {
    /// Routine, reversible.
    Low,
    /// The default for most actions.
    Medium,
    /// Costly to undo.
    High,
    /// Always needs a human.
    Critical,
}

impl Stakes {
    /// Every stakes level, lowest first.
    pub const ALL: [Stakes; 4] = [Stakes::Low, Stakes::Medium, Stakes::High, Stakes::Critical];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Stakes::Low => "low",
            Stakes::Medium => "medium",
            Stakes::High => "high",
            Stakes::Critical => "critical",
        }
    }
}

/// How a response counts (`docs/PROTOCOL.md` §5.0.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Weighting {
    /// Weight `authority × trust × confidence`; approve and reject by
    /// margins of the total weight (the source essay's rule).
    Linear,
    /// Evidence `authority × (2·trust)² × logit(forecast)`, the logit capped
    /// at [`crate::logodds::EVIDENCE_CAP`]; approve and reject when the summed
    /// evidence reaches the log-odds of `approve_confidence` or
    /// `reject_confidence`. The decision-quality benchmark's choice
    /// (docs/DECISION-QUALITY.md).
    LogOdds,
}

impl Weighting {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Weighting::Linear => "linear",
            Weighting::LogOdds => "log_odds",
        }
    }

    /// What a policy written without a `weighting` means: such a policy
    /// predates log-odds weighting and was written for the linear rule.
    fn unstated() -> Weighting {
        Weighting::Linear
    }
}

/// How a belief proposal pools its responses' distributions
/// (`docs/PROTOCOL.md` §15).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pool {
    /// The weighted geometric mean of the distributions, renormalised, each
    /// probability first raised to the policy's `pool_floor` so that no
    /// single zero vetoes an option.
    #[default]
    Log,
    /// The weighted arithmetic mean of the distributions.
    Linear,
}

impl std::fmt::Display for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Pool {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Pool::Log => "log",
            Pool::Linear => "linear",
        }
    }
}

/// The thresholds a proposal is resolved with (`docs/PROTOCOL.md` §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// How responses count, and so which thresholds below apply.
    #[serde(default = "Weighting::unstated")]
    pub weighting: Weighting,
    /// Linear: approve needs `E − C ≥ approve_margin × T`.
    pub approve_margin: Ratio,
    /// Linear: reject needs `C − E ≥ reject_margin × T`.
    pub reject_margin: Ratio,
    /// Log-odds: approve needs `E − C ≥ logit(approve_confidence)`, the
    /// combined evidence that the action is right.
    #[serde(default = "default_decision_confidence")]
    pub approve_confidence: Ratio,
    /// Log-odds: reject needs `C − E ≥ logit(reject_confidence)`.
    #[serde(default = "default_decision_confidence")]
    pub reject_confidence: Ratio,
    /// Escalate unless `V ≥ quorum × P` (both weightings).
    pub quorum: Ratio,
    /// Linear: escalate unless `T ≥ min_confidence × V`.
    pub min_confidence: Ratio,
    /// Log-odds: trust above this adds no weight (a per-agent weight cap:
    /// no response counts more than `authority × (2 × trust_cap)²`
    /// face-value responses).
    #[serde(default = "default_trust_cap")]
    pub trust_cap: Trust,
    /// Belief proposals: how the distributions are pooled.
    #[serde(default)]
    pub pool: Pool,
    /// Belief proposals: the pooled probability the leading option needs.
    #[serde(default = "default_pool_threshold")]
    pub pool_threshold: Ratio,
    /// Belief proposals, log pool: every probability below this counts as
    /// this much, so that one zero cannot veto an option.
    #[serde(default = "default_pool_floor")]
    pub pool_floor: Ratio,
    /// Always escalate to a human.
    pub human_required: bool,
    /// The proposal counts as its proposer's endorsement.
    pub proposer_counts: bool,
    /// Agreeing human decisions needed to close an escalation.
    pub reviewers_required: u32,
}

const fn r(micros: u32) -> Ratio {
    Ratio::from_micros(micros)
}

/// `approve_confidence` and `reject_confidence` of a policy that does not
/// state them: the medium-stakes default.
fn default_decision_confidence() -> Ratio {
    r(800_000)
}

/// The default [`Policy::trust_cap`]: 0.65, so that a proven agent counts at
/// most 1.69 face-value responses (docs/DECISION-QUALITY.md, "Per-agent
/// caps").
const DEFAULT_TRUST_CAP: Trust = Trust::from_micros(650_000);

fn default_trust_cap() -> Trust {
    DEFAULT_TRUST_CAP
}

/// `pool_threshold` of a policy that does not state it: the medium-stakes
/// default.
fn default_pool_threshold() -> Ratio {
    r(700_000)
}

/// The default [`Policy::pool_floor`]: 0.01. An agent can then make one
/// option at most ln 100 ≈ 4.6 nats less likely than another: strong
/// dissent, not a veto.
const DEFAULT_POOL_FLOOR: Ratio = Ratio::from_micros(10_000);

fn default_pool_floor() -> Ratio {
    DEFAULT_POOL_FLOOR
}

/// The largest `pool_floor`: above it the floor would blur the difference
/// between an option an agent thinks unlikely and one it rules out.
pub const MAX_POOL_FLOOR: Ratio = Ratio::from_micros(100_000);

impl Policy {
    /// The protocol's default policy for `stakes`.
    pub const fn default_for(stakes: Stakes) -> Policy {
        let (approve, reject, approve_at, reject_at, quorum, min_conf, human) = match stakes {
            Stakes::Low => (100_000, 100_000, 750_000, 750_000, 300_000, 200_000, false),
            Stakes::Medium => (200_000, 200_000, 800_000, 800_000, 500_000, 300_000, false),
            Stakes::High => (400_000, 200_000, 900_000, 800_000, 600_000, 400_000, false),
            Stakes::Critical => (400_000, 200_000, 900_000, 800_000, 600_000, 400_000, true),
        };
        let pool_threshold = match stakes {
            Stakes::Low => 600_000,
            Stakes::Medium => 700_000,
            Stakes::High | Stakes::Critical => 800_000,
        };
        Policy {
            weighting: Weighting::LogOdds,
            approve_margin: r(approve),
            reject_margin: r(reject),
            approve_confidence: r(approve_at),
            reject_confidence: r(reject_at),
            quorum: r(quorum),
            min_confidence: r(min_conf),
            trust_cap: DEFAULT_TRUST_CAP,
            pool: Pool::Log,
            pool_threshold: r(pool_threshold),
            pool_floor: DEFAULT_POOL_FLOOR,
            human_required: human,
            proposer_counts: true,
            reviewers_required: 1,
        }
    }

    /// Checks the fields that the type does not bound.
    pub fn validate(&self) -> Result<(), Rejection> {
        for (name, value) in [
            ("approve_confidence", self.approve_confidence),
            ("reject_confidence", self.reject_confidence),
            ("pool_threshold", self.pool_threshold),
        ] {
            // At one half or below, evidence for nothing would clear it, and
            // approve and reject could both hold; a pooled option at one
            // half or below may tie with another.
            if value.micros() <= 500_000 {
                return reject(ErrorKind::OutOfRange, format!("{name} must be above 0.5"));
            }
        }
        if self.pool_floor.micros() == 0 || self.pool_floor > MAX_POOL_FLOOR {
            return reject(
                ErrorKind::OutOfRange,
                format!("pool_floor must be in (0, {MAX_POOL_FLOOR}]"),
            );
        }
        if self.reviewers_required == 0 || self.reviewers_required > MAX_REVIEWERS_REQUIRED {
            return reject(
                ErrorKind::OutOfRange,
                format!("reviewers_required must be in 1..={MAX_REVIEWERS_REQUIRED}"),
            );
        }
        Ok(())
    }

    /// Applies `overrides` without any limit (the what-if tool).
    pub fn with(mut self, overrides: &PolicyOverrides) -> Policy {
        let o = overrides;
        self.weighting = o.weighting.unwrap_or(self.weighting);
        self.approve_margin = o.approve_margin.unwrap_or(self.approve_margin);
        self.reject_margin = o.reject_margin.unwrap_or(self.reject_margin);
        self.approve_confidence = o.approve_confidence.unwrap_or(self.approve_confidence);
        self.reject_confidence = o.reject_confidence.unwrap_or(self.reject_confidence);
        self.quorum = o.quorum.unwrap_or(self.quorum);
        self.min_confidence = o.min_confidence.unwrap_or(self.min_confidence);
        self.human_required = o.human_required.unwrap_or(self.human_required);
        self.proposer_counts = o.proposer_counts.unwrap_or(self.proposer_counts);
        self.reviewers_required = o.reviewers_required.unwrap_or(self.reviewers_required);
        self.trust_cap = o.trust_cap.unwrap_or(self.trust_cap);
        self.pool = o.pool.unwrap_or(self.pool);
        self.pool_threshold = o.pool_threshold.unwrap_or(self.pool_threshold);
        self.pool_floor = o.pool_floor.unwrap_or(self.pool_floor);
        self
    }

    /// Applies a proposer's `overrides` within the space's limits: an override
    /// may only make the policy more cautious. Margins, decision
    /// confidences, quorum, minimum confidence and reviewers may rise;
    /// `human_required` may be switched on and `proposer_counts` off, never
    /// the reverse. The weighting is the space's: neither rule is the more
    /// cautious one for every tally.
    pub fn tightened(self, overrides: &PolicyOverrides) -> Result<Policy, Rejection> {
        let out = self.with(overrides);
        out.validate()?;
        if out.weighting != self.weighting {
            return reject(
                ErrorKind::PolicyViolation,
                format!(
                    "the space resolves with {} weighting; a proposal cannot change it",
                    self.weighting.as_str()
                ),
            );
        }
        // Neither pool, and no floor, is the more cautious for every set of
        // distributions: a higher floor weakens dissent, a lower one
        // strengthens it.
        for (field, changed) in [
            ("trust_cap", out.trust_cap != self.trust_cap),
            ("pool", out.pool != self.pool),
            ("pool_floor", out.pool_floor != self.pool_floor),
        ] {
            if changed {
                return reject(
                    ErrorKind::PolicyViolation,
                    format!("{field} is the space's; a proposal cannot change it"),
                );
            }
        }
        let loosened = [
            ("approve_margin", out.approve_margin < self.approve_margin),
            ("reject_margin", out.reject_margin < self.reject_margin),
            (
                "approve_confidence",
                out.approve_confidence < self.approve_confidence,
            ),
            (
                "reject_confidence",
                out.reject_confidence < self.reject_confidence,
            ),
            ("pool_threshold", out.pool_threshold < self.pool_threshold),
            ("quorum", out.quorum < self.quorum),
            ("min_confidence", out.min_confidence < self.min_confidence),
            ("human_required", self.human_required && !out.human_required),
            (
                "proposer_counts",
                !self.proposer_counts && out.proposer_counts,
            ),
            (
                "reviewers_required",
                out.reviewers_required < self.reviewers_required,
            ),
        ];
        if let Some((field, _)) = loosened.iter().find(|(_, worse)| *worse) {
            return reject(
                ErrorKind::PolicyViolation,
                format!(
                    "override of {field} loosens the space's policy; overrides may only make it more cautious"
                ),
            );
        }
        Ok(out)
    }
}

/// Optional per-proposal changes to the policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyOverrides {
    /// See [`Policy::weighting`]; only the what-if tool may change it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weighting: Option<Weighting>,
    /// See [`Policy::approve_margin`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approve_margin: Option<Ratio>,
    /// See [`Policy::reject_margin`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reject_margin: Option<Ratio>,
    /// See [`Policy::approve_confidence`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approve_confidence: Option<Ratio>,
    /// See [`Policy::reject_confidence`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reject_confidence: Option<Ratio>,
    /// See [`Policy::quorum`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quorum: Option<Ratio>,
    /// See [`Policy::min_confidence`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_confidence: Option<Ratio>,
    /// See [`Policy::human_required`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub human_required: Option<bool>,
    /// See [`Policy::proposer_counts`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proposer_counts: Option<bool>,
    /// See [`Policy::reviewers_required`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reviewers_required: Option<u32>,
    /// See [`Policy::trust_cap`]; only the what-if tool may change it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_cap: Option<Trust>,
    /// See [`Policy::pool`]; only the what-if tool may change it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<Pool>,
    /// See [`Policy::pool_threshold`]; may only rise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool_threshold: Option<Ratio>,
    /// See [`Policy::pool_floor`]; only the what-if tool may change it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool_floor: Option<Ratio>,
}

/// The default policy of each stakes level, as a space configures it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StakesPolicies {
    /// For `low` stakes.
    pub low: Policy,
    /// For `medium` stakes.
    pub medium: Policy,
    /// For `high` stakes.
    pub high: Policy,
    /// For `critical` stakes.
    pub critical: Policy,
}

impl Default for StakesPolicies {
    fn default() -> StakesPolicies {
        StakesPolicies {
            low: Policy::default_for(Stakes::Low),
            medium: Policy::default_for(Stakes::Medium),
            high: Policy::default_for(Stakes::High),
            critical: Policy::default_for(Stakes::Critical),
        }
    }
}

impl StakesPolicies {
    /// The policy for `stakes`.
    pub fn get(&self, stakes: Stakes) -> Policy {
        match stakes {
            Stakes::Low => self.low,
            Stakes::Medium => self.medium,
            Stakes::High => self.high,
            Stakes::Critical => self.critical,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_spec_table() {
        // docs/PROTOCOL.md §5.1, the table of defaults by stakes.
        let table = [
            (
                Stakes::Low,
                "0.1",
                "0.1",
                "0.75",
                "0.75",
                "0.3",
                "0.2",
                false,
            ),
            (
                Stakes::Medium,
                "0.2",
                "0.2",
                "0.8",
                "0.8",
                "0.5",
                "0.3",
                false,
            ),
            (
                Stakes::High,
                "0.4",
                "0.2",
                "0.9",
                "0.8",
                "0.6",
                "0.4",
                false,
            ),
            (
                Stakes::Critical,
                "0.4",
                "0.2",
                "0.9",
                "0.8",
                "0.6",
                "0.4",
                true,
            ),
        ];
        for ((stakes, am, rm, ac, rc, q, mc, human), pool_at) in
            table.into_iter().zip(["0.6", "0.7", "0.8", "0.8"])
        {
            let p = Policy::default_for(stakes);
            assert_eq!(p.pool, Pool::Log);
            assert_eq!(p.pool_threshold.to_string(), pool_at);
            assert_eq!(p.pool_floor.to_string(), "0.01");
            assert_eq!(p.weighting, Weighting::LogOdds);
            assert_eq!(p.trust_cap.to_string(), "0.65");
            assert_eq!(p.approve_margin.to_string(), am);
            assert_eq!(p.reject_margin.to_string(), rm);
            assert_eq!(p.approve_confidence.to_string(), ac);
            assert_eq!(p.reject_confidence.to_string(), rc);
            assert_eq!(p.quorum.to_string(), q);
            assert_eq!(p.min_confidence.to_string(), mc);
            assert_eq!(p.human_required, human);
            assert!(p.proposer_counts);
            assert_eq!(p.reviewers_required, 1);
        }
    }

    #[test]
    fn a_policy_without_a_weighting_is_linear() {
        // Written before log-odds weighting existed: it keeps its meaning.
        let json = r#"{"approve_margin":"0.2","reject_margin":"0.2","quorum":"0.5",
            "min_confidence":"0.3","human_required":false,"proposer_counts":true,
            "reviewers_required":1}"#;
        let p: Policy = serde_json::from_str(json).unwrap();
        assert_eq!(p.weighting, Weighting::Linear);
        assert_eq!(p.approve_confidence.to_string(), "0.8");
    }

    #[test]
    fn overrides_may_only_tighten() {
        let base = Policy::default_for(Stakes::Medium);
        let tighter = PolicyOverrides {
            quorum: Some(Ratio::parse("0.9").unwrap()),
            human_required: Some(true),
            proposer_counts: Some(false),
            reviewers_required: Some(2),
            ..Default::default()
        };
        let p = base.tightened(&tighter).unwrap();
        assert_eq!(p.quorum.to_string(), "0.9");
        assert!(p.human_required && !p.proposer_counts);

        let looser = PolicyOverrides {
            approve_margin: Some(Ratio::parse("0.1").unwrap()),
            ..Default::default()
        };
        assert_eq!(
            base.tightened(&looser).unwrap_err().kind,
            ErrorKind::PolicyViolation
        );
        let crit = Policy::default_for(Stakes::Critical);
        let no_human = PolicyOverrides {
            human_required: Some(false),
            ..Default::default()
        };
        assert_eq!(
            crit.tightened(&no_human).unwrap_err().kind,
            ErrorKind::PolicyViolation
        );
        // Another weighting, a lower decision confidence, another trust cap.
        for refused in [
            PolicyOverrides {
                weighting: Some(Weighting::Linear),
                ..Default::default()
            },
            PolicyOverrides {
                approve_confidence: Some(Ratio::parse("0.7").unwrap()),
                ..Default::default()
            },
            PolicyOverrides {
                trust_cap: Some(Trust::ONE),
                ..Default::default()
            },
        ] {
            assert_eq!(
                base.tightened(&refused).unwrap_err().kind,
                ErrorKind::PolicyViolation,
                "{refused:?}"
            );
        }
        let coin_flip = PolicyOverrides {
            approve_confidence: Some(Ratio::parse("0.5").unwrap()),
            ..Default::default()
        };
        assert_eq!(
            Policy::default_for(Stakes::Low)
                .with(&coin_flip)
                .validate()
                .unwrap_err()
                .kind,
            ErrorKind::OutOfRange
        );
        let higher_pool_bar = PolicyOverrides {
            pool_threshold: Some(Ratio::parse("0.9").unwrap()),
            ..Default::default()
        };
        assert_eq!(
            base.tightened(&higher_pool_bar)
                .unwrap()
                .pool_threshold
                .to_string(),
            "0.9"
        );
        for looser in [
            PolicyOverrides {
                pool_threshold: Some(Ratio::parse("0.69").unwrap()),
                ..Default::default()
            },
            PolicyOverrides {
                pool: Some(Pool::Linear),
                ..Default::default()
            },
            PolicyOverrides {
                pool_floor: Some(Ratio::parse("0.001").unwrap()),
                ..Default::default()
            },
        ] {
            assert_eq!(
                base.tightened(&looser).unwrap_err().kind,
                ErrorKind::PolicyViolation
            );
        }
        for (field, bad) in [
            ("pool_floor", "0"),
            ("pool_floor", "0.100001"),
            ("pool_threshold", "0.5"),
        ] {
            let o: PolicyOverrides =
                serde_json::from_value(serde_json::json!({ field: bad })).unwrap();
            assert_eq!(
                base.with(&o).validate().unwrap_err().kind,
                ErrorKind::OutOfRange,
                "{field} = {bad}"
            );
        }
        let zero_reviewers = PolicyOverrides {
            reviewers_required: Some(0),
            ..Default::default()
        };
        assert_eq!(
            base.tightened(&zero_reviewers).unwrap_err().kind,
            ErrorKind::OutOfRange
        );
    }
}
