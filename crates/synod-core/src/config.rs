//! A space's configuration (`docs/PROTOCOL.md` §7).

use serde::{Deserialize, Serialize};

use crate::error::{ErrorKind, Rejection, reject};
use crate::fixed::{Authority, Ratio, Trust};
use crate::policy::StakesPolicies;
use crate::stake::{MAX_COMMITTEE, StakeSource};
use std::collections::BTreeMap;

use crate::domain::Domain;
use crate::hierarchy::Hierarchy;

/// Longest deadline horizon a configuration may allow: one year.
pub const MAX_DEADLINE_HORIZON_MS: u64 = 366 * 24 * 3600 * 1000;

/// Who may take part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Only an admin grants authorities and roles.
    Closed,
    /// Anyone may register; self-declared authority is capped and new
    /// identities start at low trust.
    Open,
}

/// The configuration of a space.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpaceConfig {
    /// Closed or open.
    pub mode: Mode,
    /// Starting trust of an agent in a domain it has no history in (closed
    /// spaces, and agents an admin has granted authority in open spaces).
    pub trust_prior: Trust,
    /// Highest authority an agent may declare for itself in an open space.
    pub open_authority_cap: Authority,
    /// Starting trust of a self-registered identity in an open space.
    pub open_initial_trust: Trust,
    /// Most of a proposal's electorate that newcomers may hold, as a share
    /// of its influence and of its weight: self-registered identities
    /// (open space, no grant) with no outcome in the proposal's domain.
    /// 1 turns the cap off.
    #[serde(default = "default_open_newcomer_cap")]
    pub open_newcomer_cap: Ratio,
    /// `η` of the trust rule: how far one outcome moves trust.
    pub trust_learning_rate: Ratio,
    /// The default policy for each stakes level.
    pub policies: StakesPolicies,
    /// Longest time from a proposal's entry to its deadline.
    pub max_deadline_ms: u64,
    /// Messages created longer ago than this (by log time) are refused as
    /// stale duplicates.
    pub max_message_age_ms: u64,
    /// Messages created further ahead of the log time than this are refused.
    pub max_clock_skew_ms: u64,
    /// Most proposals one agent may have open at once.
    #[serde(default = "default_max_open_per_agent")]
    pub max_open_per_agent: u32,
    /// Proof-of-work admission (§16): leading zero bits a proposal's
    /// `stamp` must give its hash when the proposer's trust in the domain is
    /// below `admission_trust_below`.
    #[serde(default = "default_admission_difficulty")]
    pub admission_difficulty: u32,
    /// Proposers whose trust in the proposal's domain is below this must
    /// stamp their proposals; 0 (the default) asks nobody.
    #[serde(default)]
    pub admission_trust_below: Trust,
    /// Where members' stakes come from (§20.1).
    #[serde(default)]
    pub stake: StakeSource,
    /// Smallest committee a low-stakes proposal may ask for (§20.3); 0 (the
    /// default) allows no committees.
    #[serde(default)]
    pub min_committee: u32,
    /// Length of a proposer round (§20.4); 0 (the default) lets every agent
    /// propose at any time.
    #[serde(default)]
    pub proposer_round_ms: u64,
    /// Hierarchies by domain (§21): workers, supervisors and an executive.
    #[serde(default)]
    pub hierarchies: BTreeMap<Domain, Hierarchy>,
}

/// The default [`SpaceConfig::admission_difficulty`]: 20 bits, about a
/// million hashes per proposal (docs/PERFORMANCE.md, "Proof-of-work
/// admission").
fn default_admission_difficulty() -> u32 {
    20
}

fn default_max_open_per_agent() -> u32 {
    1_000
}

fn default_open_newcomer_cap() -> Ratio {
    Ratio::from_micros(200_000)
}

impl Default for SpaceConfig {
    fn default() -> SpaceConfig {
        SpaceConfig {
            mode: Mode::Closed,
            trust_prior: Trust::from_micros(500_000),
            open_authority_cap: Authority::from_micros(500_000),
            open_initial_trust: Trust::from_micros(100_000),
            open_newcomer_cap: default_open_newcomer_cap(),
            trust_learning_rate: Ratio::from_micros(50_000),
            policies: StakesPolicies::default(),
            max_deadline_ms: 30 * 24 * 3600 * 1000,
            max_message_age_ms: 10 * 60 * 1000,
            max_clock_skew_ms: 60 * 1000,
            max_open_per_agent: default_max_open_per_agent(),
            admission_difficulty: default_admission_difficulty(),
            admission_trust_below: Trust::ZERO,
            stake: StakeSource::Influence,
            min_committee: 0,
            proposer_round_ms: 0,
            hierarchies: BTreeMap::new(),
        }
    }
}

impl SpaceConfig {
    /// Applies a patch; the result is checked as a whole.
    pub fn patched(&self, patch: &ConfigPatch) -> Result<SpaceConfig, Rejection> {
        let mut out = self.clone();
        let p = patch.clone();
        out.mode = p.mode.unwrap_or(out.mode);
        out.trust_prior = p.trust_prior.unwrap_or(out.trust_prior);
        out.open_authority_cap = p.open_authority_cap.unwrap_or(out.open_authority_cap);
        out.open_initial_trust = p.open_initial_trust.unwrap_or(out.open_initial_trust);
        out.open_newcomer_cap = p.open_newcomer_cap.unwrap_or(out.open_newcomer_cap);
        out.trust_learning_rate = p.trust_learning_rate.unwrap_or(out.trust_learning_rate);
        out.policies = p.policies.unwrap_or(out.policies);
        out.max_deadline_ms = p.max_deadline_ms.unwrap_or(out.max_deadline_ms);
        out.max_message_age_ms = p.max_message_age_ms.unwrap_or(out.max_message_age_ms);
        out.max_clock_skew_ms = p.max_clock_skew_ms.unwrap_or(out.max_clock_skew_ms);
        out.max_open_per_agent = p.max_open_per_agent.unwrap_or(out.max_open_per_agent);
        out.admission_difficulty = p.admission_difficulty.unwrap_or(out.admission_difficulty);
        out.admission_trust_below = p.admission_trust_below.unwrap_or(out.admission_trust_below);
        out.stake = p.stake.unwrap_or(out.stake);
        out.min_committee = p.min_committee.unwrap_or(out.min_committee);
        out.proposer_round_ms = p.proposer_round_ms.unwrap_or(out.proposer_round_ms);
        out.hierarchies = p.hierarchies.unwrap_or(out.hierarchies);
        out.validate()?;
        Ok(out)
    }

    /// Checks the fields the types do not bound.
    pub fn validate(&self) -> Result<(), Rejection> {
        for stakes in crate::policy::Stakes::ALL {
            self.policies.get(stakes).validate()?;
        }
        for (name, value) in [
            ("max_deadline_ms", self.max_deadline_ms),
            ("max_message_age_ms", self.max_message_age_ms),
            ("max_clock_skew_ms", self.max_clock_skew_ms),
        ] {
            if value == 0 || value > MAX_DEADLINE_HORIZON_MS {
                return reject(
                    ErrorKind::OutOfRange,
                    format!("{name} must be in 1..={MAX_DEADLINE_HORIZON_MS}"),
                );
            }
        }
        if self.max_open_per_agent == 0 {
            return reject(
                ErrorKind::OutOfRange,
                "max_open_per_agent must be at least 1",
            );
        }
        if self.trust_learning_rate.micros() == 0 {
            return reject(ErrorKind::OutOfRange, "trust_learning_rate must be above 0");
        }
        if self.min_committee > MAX_COMMITTEE {
            return reject(
                ErrorKind::OutOfRange,
                format!("min_committee must be in 0..={MAX_COMMITTEE}"),
            );
        }
        if self.proposer_round_ms > MAX_DEADLINE_HORIZON_MS {
            return reject(
                ErrorKind::OutOfRange,
                format!("proposer_round_ms must be in 0..={MAX_DEADLINE_HORIZON_MS}"),
            );
        }
        crate::hierarchy::validate(&self.hierarchies)?;
        let most = crate::stamp::MAX_ADMISSION_DIFFICULTY;
        if self.admission_difficulty > most {
            return reject(
                ErrorKind::OutOfRange,
                format!("admission_difficulty must be in 0..={most}"),
            );
        }
        Ok(())
    }
}

/// Configuration fields to change; absent fields keep their value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct ConfigPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_prior: Option<Trust>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_authority_cap: Option<Authority>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_initial_trust: Option<Trust>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_newcomer_cap: Option<Ratio>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_learning_rate: Option<Ratio>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policies: Option<StakesPolicies>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_deadline_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_message_age_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_clock_skew_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_open_per_agent: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admission_difficulty: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admission_trust_below: Option<Trust>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stake: Option<StakeSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_committee: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proposer_round_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hierarchies: Option<BTreeMap<Domain, Hierarchy>>,
}

impl ConfigPatch {
    pub(crate) fn check_shape(&self) -> Result<(), Rejection> {
        SpaceConfig::default().patched(self).map(|_| ())
    }
}
