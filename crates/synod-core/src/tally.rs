//! The exact resolution rule and early finality (`docs/PROTOCOL.md` §5–§6).
//!
//! Units: under linear weighting, weights (`E`, `C`, `T`) are integers in
//! 10⁻¹⁸ and the remaining reach `R` is an influence; under log-odds
//! weighting, `E` and `C` are evidence for and against in 10⁻³⁰, and so is
//! `R`. Influences (`V`, `P`) are in 10⁻¹², ratios in 10⁻⁶. Every comparison
//! below scales both sides to the same unit, so nothing is ever rounded.

use serde::{Deserialize, Serialize};

use crate::fixed::{
    Authority, Confidence, Influence, ONE_WIDE, Ratio, Trust, Weight, format_scaled,
};
use crate::logodds::{self, EVIDENCE_DECIMALS};
use crate::policy::{Policy, Weighting};
use crate::trust::forecast;

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
    /// `E`: weight of endorsements, the counted proposer's included (linear,
    /// 10⁻¹⁸); or evidence for the action (log-odds, 10⁻³⁰).
    pub endorse: u128,
    /// `C`: weight of challenges (linear, 10⁻¹⁸); or evidence against the
    /// action (log-odds, 10⁻³⁰).
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

    /// Adds one response of a member with `authority` and `trust`.
    /// Abstentions change nothing.
    pub fn add(
        &mut self,
        weighting: Weighting,
        stance: Stance,
        authority: Authority,
        trust: Trust,
        confidence: Confidence,
    ) {
        let Some(sway) = sway(weighting, stance, authority, trust, confidence) else {
            return;
        };
        if sway >= 0 {
            self.endorse += sway.unsigned_abs();
        } else {
            self.challenge += sway.unsigned_abs();
        }
        self.voted += u128::from(Influence::of(authority, trust).0);
    }

    /// `T = E + C`.
    pub fn total(&self) -> u128 {
        self.endorse + self.challenge
    }

    /// The tally as exact decimal strings.
    pub fn to_decimal(&self, weighting: Weighting) -> TallyDecimal {
        let decimals = weight_decimals(weighting);
        TallyDecimal {
            endorse: format_scaled(self.endorse, decimals),
            challenge: format_scaled(self.challenge, decimals),
            voted: format_scaled(self.voted, Influence::DECIMALS),
            potential: format_scaled(self.potential, Influence::DECIMALS),
        }
    }
}

/// Decimal places of `E`, `C` and `R` under `weighting`.
pub fn weight_decimals(weighting: Weighting) -> u32 {
    match weighting {
        Weighting::Linear => Weight::DECIMALS,
        Weighting::LogOdds => EVIDENCE_DECIMALS,
    }
}

/// How far one response moves the tally, signed (positive for the action):
/// its weight with the sign of its stance (linear, 10⁻¹⁸), or its evidence
/// (log-odds, 10⁻³⁰). `None` for an abstention.
pub fn sway(
    weighting: Weighting,
    stance: Stance,
    authority: Authority,
    trust: Trust,
    confidence: Confidence,
) -> Option<i128> {
    match weighting {
        Weighting::Linear => {
            let weight = i128::from(Influence::of(authority, trust).weight(confidence).0);
            match stance {
                Stance::Endorse => Some(weight),
                Stance::Challenge => Some(-weight),
                Stance::Abstain => None,
            }
        }
        Weighting::LogOdds => {
            let f = forecast(stance, confidence)?;
            Some(logodds::evidence(
                authority,
                trust,
                Confidence::from_micros(f),
            ))
        }
    }
}

/// The most a member who has not responded can still move the tally (its
/// share of `R`): its influence (linear, 10⁻¹², a weight at confidence 1), or
/// its evidence at the cap (log-odds, 10⁻³⁰).
pub fn reach(weighting: Weighting, authority: Authority, trust: Trust) -> u128 {
    match weighting {
        Weighting::Linear => u128::from(Influence::of(authority, trust).0),
        Weighting::LogOdds => logodds::reach(authority, trust),
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
    if policy.weighting == Weighting::LogOdds {
        // Evidence, 10⁻³⁰, against the log-odds of the decision confidences.
        let net = e as i128 - c as i128;
        if net >= logodds::threshold(policy.approve_confidence) {
            return Verdict::Approved;
        }
        if -net >= logodds::threshold(policy.reject_confidence) {
            return Verdict::Rejected;
        }
        return Verdict::Escalated(Reason::Contested);
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
/// Under log-odds weighting there is no confidence check, and `R` is the
/// remaining members' summed [`reach`]: approve holds for every completion
/// when `E − C − R` still reaches the threshold, and reject symmetrically.
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
    if policy.weighting == Weighting::LogOdds {
        let (net, r) = (e as i128 - c as i128, remaining as i128);
        if net - r >= logodds::threshold(policy.approve_confidence) {
            return Some(Verdict::Approved);
        }
        if -net - r >= logodds::threshold(policy.reject_confidence) {
            return Some(Verdict::Rejected);
        }
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
    use crate::policy::Stakes;

    fn add(tally: &mut Tally, w: Weighting, stance: Stance, a: &str, t: &str, c: &str) {
        tally.add(
            w,
            stance,
            Authority::parse(a).unwrap(),
            Trust::parse(t).unwrap(),
            Confidence::parse(c).unwrap(),
        );
    }

    fn linear(stakes: Stakes) -> Policy {
        Policy {
            weighting: Weighting::Linear,
            ..Policy::default_for(stakes)
        }
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
        let policy = linear(Stakes::Low);
        let l = Weighting::Linear;
        let mut tally = Tally::new(2 * 10u128.pow(12));
        add(&mut tally, l, Stance::Endorse, "1", "1", "0.55");
        add(&mut tally, l, Stance::Challenge, "1", "1", "0.45");
        assert_eq!(resolve(&policy, &tally), Verdict::Approved);

        let mut tally = Tally::new(2 * 10u128.pow(12));
        add(&mut tally, l, Stance::Endorse, "1", "1", "0.549999");
        add(&mut tally, l, Stance::Challenge, "1", "1", "0.45");
        assert_eq!(
            resolve(&policy, &tally),
            Verdict::Escalated(Reason::Contested)
        );
    }

    #[test]
    fn log_odds_thresholds_are_exact() {
        // Medium stakes: approve at logit(0.8). One member of authority 1 at
        // trust 0.5 endorsing at 0.8 brings exactly that evidence.
        let policy = Policy::default_for(Stakes::Medium);
        let lo = Weighting::LogOdds;
        let mut tally = Tally::new(10u128.pow(12));
        add(&mut tally, lo, Stance::Endorse, "1", "0.5", "0.8");
        assert_eq!(resolve(&policy, &tally), Verdict::Approved);
        let mut tally = Tally::new(10u128.pow(12));
        add(&mut tally, lo, Stance::Endorse, "1", "0.5", "0.799999");
        assert_eq!(
            resolve(&policy, &tally),
            Verdict::Escalated(Reason::Contested)
        );
        // An endorsement below one half argues against; confidence past 0.8
        // adds nothing.
        let mut tally = Tally::new(10u128.pow(12));
        add(&mut tally, lo, Stance::Endorse, "1", "0.5", "0.1");
        assert_eq!(resolve(&policy, &tally), Verdict::Rejected);
        assert_eq!(tally.endorse, 0);
        // Two agreeing members at 0.7 (2 × ln(7/3) = 1.69 > ln 4) approve;
        // a third challenging at 0.99 (capped at ln 4) leaves 0.31: contested.
        let mut tally = Tally::new(2 * 10u128.pow(12));
        add(&mut tally, lo, Stance::Endorse, "1", "0.5", "0.7");
        add(&mut tally, lo, Stance::Endorse, "1", "0.5", "0.7");
        assert_eq!(resolve(&policy, &tally), Verdict::Approved);
        add(&mut tally, lo, Stance::Challenge, "1", "0.5", "0.99");
        assert_eq!(
            resolve(&policy, &tally),
            Verdict::Escalated(Reason::Contested)
        );
    }

    #[test]
    fn log_odds_early_finality_bounds_the_rest_by_their_reach() {
        let policy = Policy::default_for(Stakes::Medium);
        let lo = Weighting::LogOdds;
        let unit =
            |a: &str, t: &str| reach(lo, Authority::parse(a).unwrap(), Trust::parse(t).unwrap());
        // Two strong endorsements (trust 1: 4 × ln 4 each = 8 ln 4); one
        // member of trust 1 left can take back 4 ln 4: still ≥ ln 4.
        let mut tally = Tally::new(3 * 10u128.pow(12));
        add(&mut tally, lo, Stance::Endorse, "1", "1", "0.9");
        add(&mut tally, lo, Stance::Endorse, "1", "1", "0.9");
        let one = unit("1", "1");
        assert_eq!(early_verdict(&policy, &tally, one), Some(Verdict::Approved));
        // Two such members left could take back 8 ln 4: not final.
        assert_eq!(early_verdict(&policy, &tally, 2 * one), None);
        // Exactly at the bound: net − R = ln 4 is final.
        let seven = 7 * unit("1", "0.5");
        assert_eq!(
            early_verdict(&policy, &tally, seven),
            Some(Verdict::Approved)
        );
        assert_eq!(early_verdict(&policy, &tally, seven + 1), None);
    }

    #[test]
    fn abstain_adds_nothing() {
        for w in [Weighting::Linear, Weighting::LogOdds] {
            let mut tally = Tally::new(10u128.pow(12));
            add(&mut tally, w, Stance::Abstain, "1", "1", "1");
            assert_eq!(tally, Tally::new(10u128.pow(12)));
        }
    }
}
