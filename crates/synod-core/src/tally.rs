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

    /// Adds one response of a member with `authority` and `trust`, counted
    /// as `policy` says. Abstentions change nothing.
    pub fn add(
        &mut self,
        policy: &Policy,
        stance: Stance,
        authority: Authority,
        trust: Trust,
        confidence: Confidence,
    ) {
        let Some(sway) = sway(policy, stance, authority, trust, confidence) else {
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

/// How far one response moves the tally under `policy`, signed (positive
/// for the action): its weight with the sign of its stance (linear,
/// 10⁻¹⁸), or its evidence (log-odds, 10⁻³⁰, trust capped at the policy's
/// `trust_cap`). `None` for an abstention.
pub fn sway(
    policy: &Policy,
    stance: Stance,
    authority: Authority,
    trust: Trust,
    confidence: Confidence,
) -> Option<i128> {
    match policy.weighting {
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
                trust.min(policy.trust_cap),
                Confidence::from_micros(f),
            ))
        }
    }
}

/// The most a member who has not responded can still move the tally under
/// `policy` (its share of `R`): its influence (linear, 10⁻¹², a weight at
/// confidence 1), or its evidence at the cap (log-odds, 10⁻³⁰).
pub fn reach(policy: &Policy, authority: Authority, trust: Trust) -> u128 {
    match policy.weighting {
        Weighting::Linear => u128::from(Influence::of(authority, trust).0),
        Weighting::LogOdds => logodds::reach(authority, trust.min(policy.trust_cap)),
    }
}

/// A member's weight factor under `policy`: `a·t` (linear, 10⁻¹²) or
/// `a·(2·min(t, trust_cap))²` (log-odds, 10⁻¹⁸). The newcomer cap bounds a
/// bloc's share of it (§5.0), and a belief proposal weighs each
/// distribution by it (§15.1).
pub fn weight_factor(policy: &Policy, authority: Authority, trust: Trust) -> u128 {
    match policy.weighting {
        Weighting::Linear => u128::from(Influence::of(authority, trust).0),
        Weighting::LogOdds => logodds::factor(authority, trust.min(policy.trust_cap)) as u128,
    }
}

/// Scales down the authority of the members marked in `bloc` so that,
/// together, they hold at most `cap` of the members' summed influence and
/// at most `cap` of their summed weight factor under `policy` (`a·t`
/// linear, `a·(2·min(t, trust_cap))²` log-odds). Each bloc
/// member's authority `a` becomes `⌊a × cap × S / ((1 − cap) × B)⌋` for
/// the influence, then again for the weight factor, whenever the bloc's sum
/// `B` exceeds `cap / (1 − cap)` of everyone else's sum `S`; a cap of 1
/// changes nothing, and so does a bloc with nobody else in the electorate.
/// Exact integers; rounding only ever lowers the bloc's share
/// (docs/PROTOCOL.md §5.0, "Newcomers").
pub fn cap_share(cap: Ratio, policy: &Policy, members: &mut [(Authority, Trust)], bloc: &[bool]) {
    let cap = scale(cap);
    if cap >= ONE_WIDE || !bloc.iter().any(|&b| b) {
        return;
    }
    let influence = |a: Authority, t: Trust| u128::from(Influence::of(a, t).0);
    let weight = |a: Authority, t: Trust| weight_factor(policy, a, t);
    for measure in [&influence as &dyn Fn(Authority, Trust) -> u128, &weight] {
        let (mut inside, mut outside) = (0u128, 0u128);
        for (&(a, t), &b) in members.iter().zip(bloc) {
            if b {
                inside += measure(a, t);
            } else {
                outside += measure(a, t);
            }
        }
        // inside ≤ cap × (inside + outside), in 10⁻⁶ × the measure's unit.
        // With nobody outside the bloc there is no one to protect: a space
        // of newcomers only decides among them.
        if outside == 0 || inside * (ONE_WIDE - cap) <= cap * outside {
            continue;
        }
        let (num, den) = (cap * outside, (ONE_WIDE - cap) * inside);
        for ((a, _), &b) in members.iter_mut().zip(bloc) {
            if b {
                let scaled = u128::from(a.micros()) * num / den;
                *a = Authority::from_micros(scaled as u32);
            }
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
    /// More than half of the workers objected to the executive's decision
    /// (§21).
    Objected,
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

/// The evidence (10⁻³⁰) approving and rejecting need under log-odds
/// weighting: the log-odds of the decision confidences, positive because a
/// valid policy's confidences are above one half (one half or below counts
/// as the smallest positive amount, so evidence for nothing never decides).
fn decision_thresholds(policy: &Policy) -> (u128, u128) {
    let at_least_one = |t: i128| u128::try_from(t).unwrap_or(0).max(1);
    (
        at_least_one(logodds::threshold(policy.approve_confidence)),
        at_least_one(logodds::threshold(policy.reject_confidence)),
    )
}

fn scale(ratio: Ratio) -> u128 {
    u128::from(ratio.micros())
}

/// `V ≥ quorum × P`, both sides in 10⁻¹⁸.
pub fn quorum_met(policy: &Policy, tally: &Tally) -> bool {
    tally.voted * ONE_WIDE >= scale(policy.quorum) * tally.potential
}

/// The rule, with its checks in the specified order.
pub fn resolve(policy: &Policy, tally: &Tally) -> Verdict {
    let (e, c, v) = (tally.endorse, tally.challenge, tally.voted);
    let t = e + c;
    if policy.human_required {
        return Verdict::Escalated(Reason::Stakes);
    }
    if !quorum_met(policy, tally) {
        return Verdict::Escalated(Reason::NoQuorum);
    }
    if policy.weighting == Weighting::LogOdds {
        // Evidence, 10⁻³⁰, against the log-odds of the decision confidences.
        let (approve, reject) = decision_thresholds(policy);
        if e >= c && e - c >= approve {
            return Verdict::Approved;
        }
        if c >= e && c - e >= reject {
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
    let (e, c, v) = (tally.endorse, tally.challenge, tally.voted);
    if !quorum_met(policy, tally) {
        return None;
    }
    if policy.weighting == Weighting::LogOdds {
        let (approve, reject) = decision_thresholds(policy);
        let r = remaining;
        if e >= c.saturating_add(r) && e - c - r >= approve {
            return Some(Verdict::Approved);
        }
        if c >= e.saturating_add(r) && c - e - r >= reject {
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
        let uncapped = Policy {
            weighting: w,
            trust_cap: Trust::ONE,
            ..Policy::default_for(Stakes::Medium)
        };
        tally.add(
            &uncapped,
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
        // Without the trust cap, so that trust 1 counts fully.
        let policy = Policy {
            trust_cap: Trust::ONE,
            ..Policy::default_for(Stakes::Medium)
        };
        let lo = Weighting::LogOdds;
        let unit = |a: &str, t: &str| {
            reach(
                &policy,
                Authority::parse(a).unwrap(),
                Trust::parse(t).unwrap(),
            )
        };
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
    fn trust_above_the_cap_adds_no_weight() {
        // Default cap 0.65: trust 1 counts as 0.65, (2 × 0.65)² = 1.69.
        let policy = Policy::default_for(Stakes::Medium);
        let (a, c) = (Authority::ONE, Confidence::from_micros(800_000));
        let at = |t: u32| {
            let mut tally = Tally::new(0);
            tally.add(&policy, Stance::Endorse, a, Trust::from_micros(t), c);
            tally.endorse
        };
        assert_eq!(at(1_000_000), at(650_000));
        assert!(at(640_000) < at(650_000));
        let face = reach(&policy, a, Trust::from_micros(500_000));
        assert_eq!(at(1_000_000) * 100, face * 169);
        assert_eq!(reach(&policy, a, Trust::ONE), at(650_000));
    }

    #[test]
    fn a_bloc_never_holds_more_than_its_cap() {
        let policy = Policy::default_for(Stakes::Medium);
        let a = Authority::from_micros;
        let t = Trust::from_micros;
        // Two established members at trust 0.5 and 40 newcomers at 0.1.
        let mut members = vec![(a(1_000_000), t(500_000)), (a(800_000), t(650_000))];
        members.extend((0..40).map(|i| (a(300_000 + i * 10_000), t(100_000))));
        let bloc: Vec<bool> = (0..members.len()).map(|i| i >= 2).collect();
        let before = members.clone();
        cap_share(Ratio::from_micros(200_000), &policy, &mut members, &bloc);
        let share = |f: &dyn Fn(Authority, Trust) -> u128| {
            let inside: u128 = members
                .iter()
                .zip(&bloc)
                .filter(|(_, b)| **b)
                .map(|(m, _)| f(m.0, m.1))
                .sum();
            let all: u128 = members.iter().map(|m| f(m.0, m.1)).sum();
            inside as f64 / all as f64
        };
        let influence = |a, t| u128::from(Influence::of(a, t).0);
        let weight = |a, t| reach(&policy, a, t);
        assert!(
            share(&influence) <= 0.2 && share(&influence) > 0.199,
            "{}",
            share(&influence)
        );
        assert!(share(&weight) <= 0.2);
        // The established keep their authority; every newcomer was scaled by
        // the same ratio, rounded down.
        assert_eq!(&members[..2], &before[..2]);
        assert!(
            members[2..]
                .iter()
                .zip(&before[2..])
                .all(|(m, b)| m.0 < b.0)
        );
        // A cap of 1, or a bloc alone, changes nothing.
        let mut same = before.clone();
        cap_share(Ratio::ONE, &policy, &mut same, &bloc);
        assert_eq!(same, before);
        let mut alone = before[2..].to_vec();
        cap_share(
            Ratio::from_micros(200_000),
            &policy,
            &mut alone,
            &[true; 40],
        );
        assert_eq!(alone, before[2..]);
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
