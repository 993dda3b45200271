//! The exact resolution rule and early finality (`docs/PROTOCOL.md` §5–§6).
//!
//! Units: weights (`E`, `C`, `T`) are integers in 10⁻¹⁸, influences (`V`, `P`,
//! the remaining influence `R`) in 10⁻¹², ratios in 10⁻⁶. Every comparison
//! below scales both sides to the same unit, so nothing is ever rounded.

use serde::{Deserialize, Serialize};

use crate::fixed::{Confidence, Influence, ONE_WIDE, Ratio, Weight, format_scaled};
use crate::policy::Policy;

/// A response's position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stance {
    /// For the action.
    Endorse,
    /// Against the action.
    Challenge,
    /// Neither; counts as a response but carries no weight.
    Abstain,
}

impl Stance {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Stance::Endorse => "endorse",
            Stance::Challenge => "challenge",
            Stance::Abstain => "abstain",
        }
    }
}

/// Running sums of a proposal's responses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Tally {
    /// `E`: weight of endorsements, the counted proposer's included (10⁻¹⁸).
    pub endorse: u128,
    /// `C`: weight of challenges (10⁻¹⁸).
    pub challenge: u128,
    /// `V`: influence of agents who endorsed or challenged (10⁻¹²).
    pub voted: u128,
    /// `P`: influence of the whole frozen electorate (10⁻¹²).
    pub potential: u128,
}

impl Tally {
    /// An empty tally over an electorate of total influence `potential`.
    pub fn new(potential: u128) -> Tally {
        Tally {
            potential,
            ..Tally::default()
        }
    }

    /// Adds one response. Abstentions change nothing.
    pub fn add(&mut self, stance: Stance, influence: Influence, confidence: Confidence) {
        let weight = u128::from(influence.weight(confidence).0);
        match stance {
            Stance::Endorse => self.endorse += weight,
            Stance::Challenge => self.challenge += weight,
            Stance::Abstain => return,
        }
        self.voted += u128::from(influence.0);
    }

    /// `T = E + C`.
    pub fn total(&self) -> u128 {
        self.endorse + self.challenge
    }

    /// The tally as exact decimal strings.
    pub fn to_decimal(&self) -> TallyDecimal {
        TallyDecimal {
            endorse: format_scaled(self.endorse, Weight::DECIMALS),
            challenge: format_scaled(self.challenge, Weight::DECIMALS),
            voted: format_scaled(self.voted, Influence::DECIMALS),
            potential: format_scaled(self.potential, Influence::DECIMALS),
        }
    }
}

/// A tally in its wire form: exact decimal strings without trailing zeros.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TallyDecimal {
    /// `E`.
    pub endorse: String,
    /// `C`.
    pub challenge: String,
    /// `V`.
    pub voted: String,
    /// `P`.
    pub potential: String,
}

/// Why a proposal escalated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The policy requires a human.
    Stakes,
    /// `V < quorum × P`.
    NoQuorum,
    /// `T < min_confidence × V`.
    LowConfidence,
    /// Neither side cleared its margin.
    Contested,
}

/// The result of the rule for a closed proposal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Endorsements cleared the approve margin.
    Approved,
    /// Challenges cleared the reject margin.
    Rejected,
    /// A human must decide.
    Escalated(Reason),
}

impl Verdict {
    /// The rule that fired, if it escalated.
    pub fn reason(self) -> Option<Reason> {
        match self {
            Verdict::Escalated(reason) => Some(reason),
            Verdict::Approved | Verdict::Rejected => None,
        }
    }
}

fn scale(ratio: Ratio) -> u128 {
    u128::from(ratio.micros())
}

/// The rule, with its checks in the specified order.
pub fn resolve(policy: &Policy, tally: &Tally) -> Verdict {
    let (e, c, v, p) = (tally.endorse, tally.challenge, tally.voted, tally.potential);
    let t = e + c;
    if policy.human_required {
        return Verdict::Escalated(Reason::Stakes);
    }
    // V < quorum × P, both sides in 10⁻¹⁸.
    if v * ONE_WIDE < scale(policy.quorum) * p {
        return Verdict::Escalated(Reason::NoQuorum);
    }
    // T < min_confidence × V, both sides in 10⁻¹⁸.
    if t < scale(policy.min_confidence) * v {
        return Verdict::Escalated(Reason::LowConfidence);
    }
    // E − C ≥ approve_margin × T, both sides in 10⁻²⁴.
    if e > c && (e - c) * ONE_WIDE >= scale(policy.approve_margin) * t {
        return Verdict::Approved;
    }
    if c > e && (c - e) * ONE_WIDE >= scale(policy.reject_margin) * t {
        return Verdict::Rejected;
    }
    Verdict::Escalated(Reason::Contested)
}

/// Early finality: the verdict that every completion of the vote would reach,
/// if that verdict is approve or reject.
///
/// `remaining` is `R`, the summed influence of electorate members who have not
/// responded. Each of them may still endorse or challenge with any confidence
/// in `[0, 1]`, or abstain (which includes never answering). The derivation is
/// in `docs/PROTOCOL.md` §6; in short, each check is monotone in every
/// remaining response, so it holds for all completions exactly when it holds
/// for its own worst one:
///
/// * quorum: nobody else votes, so `V` stays as it is;
/// * minimum confidence: everyone else votes at confidence 0, adding `R` to `V`
///   and nothing to `T`;
/// * approve: everyone else challenges at confidence 1, adding `R` (as weight)
///   to `C`; reject is symmetric.
///
/// A proposal whose policy requires a human never closes early.
pub fn early_verdict(policy: &Policy, tally: &Tally, remaining: u128) -> Option<Verdict> {
    if policy.human_required {
        return None;
    }
    let (e, c, v, p) = (tally.endorse, tally.challenge, tally.voted, tally.potential);
    if v * ONE_WIDE < scale(policy.quorum) * p {
        return None;
    }
    if e + c < scale(policy.min_confidence) * (v + remaining) {
        return None;
    }
    // R as a weight at full confidence, 10⁻¹⁸.
    let r = remaining * ONE_WIDE;
    let worst_total = e + c + r;
    if e > c + r && (e - c - r) * ONE_WIDE >= scale(policy.approve_margin) * worst_total {
        return Some(Verdict::Approved);
    }
    if c > e + r && (c - e - r) * ONE_WIDE >= scale(policy.reject_margin) * worst_total {
        return Some(Verdict::Rejected);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixed::{Authority, Trust};
    use crate::policy::Stakes;

    fn infl(a: &str, t: &str) -> Influence {
        Influence::of(Authority::parse(a).unwrap(), Trust::parse(t).unwrap())
    }

    fn conf(c: &str) -> Confidence {
        Confidence::parse(c).unwrap()
    }

    #[test]
    fn checks_fire_in_order() {
        // Every check would fire here; human_required comes first.
        let mut policy = Policy::default_for(Stakes::Critical);
        let tally = Tally::new(10u128.pow(12));
        assert_eq!(resolve(&policy, &tally), Verdict::Escalated(Reason::Stakes));
        policy.human_required = false;
        assert_eq!(
            resolve(&policy, &tally),
            Verdict::Escalated(Reason::NoQuorum)
        );
    }

    #[test]
    fn exact_margin_approves_and_one_unit_less_does_not() {
        // Low stakes: approve_margin 0.1. E = 0.55, C = 0.45 → E − C = 0.1 = 0.1 × T.
        let policy = Policy::default_for(Stakes::Low);
        let mut tally = Tally::new(2 * 10u128.pow(12));
        tally.add(Stance::Endorse, infl("1", "1"), conf("0.55"));
        tally.add(Stance::Challenge, infl("1", "1"), conf("0.45"));
        assert_eq!(resolve(&policy, &tally), Verdict::Approved);

        let mut tally = Tally::new(2 * 10u128.pow(12));
        tally.add(Stance::Endorse, infl("1", "1"), conf("0.549999"));
        tally.add(Stance::Challenge, infl("1", "1"), conf("0.45"));
        assert_eq!(
            resolve(&policy, &tally),
            Verdict::Escalated(Reason::Contested)
        );
    }

    #[test]
    fn abstain_adds_nothing() {
        let mut tally = Tally::new(10u128.pow(12));
        tally.add(Stance::Abstain, infl("1", "1"), conf("1"));
        assert_eq!(tally, Tally::new(10u128.pow(12)));
    }
}
