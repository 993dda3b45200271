//! Resolution policy: thresholds by stakes, and a proposal's overrides.

use serde::{Deserialize, Serialize};

use crate::error::{ErrorKind, Rejection, reject};
use crate::fixed::Ratio;

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

/// The thresholds a proposal is resolved with (`docs/PROTOCOL.md` §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Approve needs `E − C ≥ approve_margin × T`.
    pub approve_margin: Ratio,
    /// Reject needs `C − E ≥ reject_margin × T`.
    pub reject_margin: Ratio,
    /// Escalate unless `V ≥ quorum × P`.
    pub quorum: Ratio,
    /// Escalate unless `T ≥ min_confidence × V`.
    pub min_confidence: Ratio,
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

impl Policy {
    /// The protocol's default policy for `stakes`.
    pub const fn default_for(stakes: Stakes) -> Policy {
        let (approve, reject, quorum, min_conf, human) = match stakes {
            Stakes::Low => (100_000, 100_000, 300_000, 200_000, false),
            Stakes::Medium => (200_000, 200_000, 500_000, 300_000, false),
            Stakes::High => (400_000, 200_000, 600_000, 400_000, false),
            Stakes::Critical => (400_000, 200_000, 600_000, 400_000, true),
        };
        Policy {
            approve_margin: r(approve),
            reject_margin: r(reject),
            quorum: r(quorum),
            min_confidence: r(min_conf),
            human_required: human,
            proposer_counts: true,
            reviewers_required: 1,
        }
    }

    /// Checks the fields that the type does not bound.
    pub fn validate(&self) -> Result<(), Rejection> {
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
        self.approve_margin = o.approve_margin.unwrap_or(self.approve_margin);
        self.reject_margin = o.reject_margin.unwrap_or(self.reject_margin);
        self.quorum = o.quorum.unwrap_or(self.quorum);
        self.min_confidence = o.min_confidence.unwrap_or(self.min_confidence);
        self.human_required = o.human_required.unwrap_or(self.human_required);
        self.proposer_counts = o.proposer_counts.unwrap_or(self.proposer_counts);
        self.reviewers_required = o.reviewers_required.unwrap_or(self.reviewers_required);
        self
    }

    /// Applies a proposer's `overrides` within the space's limits: an override
    /// may only make the policy more cautious. Margins, quorum, minimum
    /// confidence and reviewers may rise; `human_required` may be switched on
    /// and `proposer_counts` off, never the reverse.
    pub fn tightened(self, overrides: &PolicyOverrides) -> Result<Policy, Rejection> {
        let out = self.with(overrides);
        out.validate()?;
        let loosened = [
            ("approve_margin", out.approve_margin < self.approve_margin),
            ("reject_margin", out.reject_margin < self.reject_margin),
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
    /// See [`Policy::approve_margin`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approve_margin: Option<Ratio>,
    /// See [`Policy::reject_margin`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reject_margin: Option<Ratio>,
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
            (Stakes::Low, "0.1", "0.1", "0.3", "0.2", false),
            (Stakes::Medium, "0.2", "0.2", "0.5", "0.3", false),
            (Stakes::High, "0.4", "0.2", "0.6", "0.4", false),
            (Stakes::Critical, "0.4", "0.2", "0.6", "0.4", true),
        ];
        for (stakes, am, rm, q, mc, human) in table {
            let p = Policy::default_for(stakes);
            assert_eq!(p.approve_margin.to_string(), am);
            assert_eq!(p.reject_margin.to_string(), rm);
            assert_eq!(p.quorum.to_string(), q);
            assert_eq!(p.min_confidence.to_string(), mc);
            assert_eq!(p.human_required, human);
            assert!(p.proposer_counts);
            assert_eq!(p.reviewers_required, 1);
        }
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
