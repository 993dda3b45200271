//! Early finality against brute force, and the independence of a resolution
//! from the order responses arrive in (`docs/PROTOCOL.md` §5–§6).

mod common;

use common::{Harness, MINUTE};
use proptest::prelude::*;
use serde_json::json;
use synod_core::fixed::{Authority, Confidence, Influence, Ratio, Trust};
use synod_core::policy::{Policy, Stakes, Weighting};
use synod_core::scenario;
use synod_core::tally::{Stance, Tally, Verdict, early_verdict, reach, resolve};

/// Confidences each remaining member may answer with in the enumeration. The
/// extremes must be there: the derivation says they are the worst cases.
const GRID: [u32; 5] = [0, 250_000, 500_000, 750_000, 1_000_000];

fn ratio() -> impl Strategy<Value = Ratio> {
    // Multiples of 0.1 land on exact thresholds often.
    (0u32..=10).prop_map(|k| Ratio::from_micros(k * 100_000))
}

/// Mostly coarse values, so that ties and exact thresholds are common, with
/// some arbitrary ones.
fn unit_micros() -> impl Strategy<Value = u32> {
    prop_oneof![
        3 => prop::sample::select(vec![0, 50_000, 100_000, 250_000, 500_000, 900_000, 1_000_000]),
        1 => 0u32..=1_000_000,
    ]
}

/// A decision confidence above one half: coarse values (whose log-odds the
/// grid's members hit exactly, e.g. 0.8 = one member at the cap and trust
/// 0.5) and arbitrary ones.
fn decision_confidence() -> impl Strategy<Value = Ratio> {
    prop_oneof![
        3 => prop::sample::select(vec![600_000, 750_000, 800_000, 900_000, 1_000_000]),
        1 => 500_001u32..=1_000_000,
    ]
    .prop_map(Ratio::from_micros)
}

fn policy() -> impl Strategy<Value = Policy> {
    // human_required has its own test below: it makes early finality moot.
    (
        prop_oneof![Just(Weighting::Linear), Just(Weighting::LogOdds)],
        (ratio(), ratio(), ratio(), ratio()),
        (decision_confidence(), decision_confidence(), unit_micros()),
    )
        .prop_map(|(weighting, (am, rm, q, mc), (ac, rc, cap))| Policy {
            weighting,
            trust_cap: Trust::from_micros(cap),
            approve_margin: am,
            reject_margin: rm,
            approve_confidence: ac,
            reject_confidence: rc,
            quorum: q,
            min_confidence: mc,
            ..Policy::default_for(Stakes::Low)
        })
}

#[derive(Debug, Clone)]
struct Case {
    policy: Policy,
    /// Members that already answered, with their answer.
    answered: Vec<(Member, Stance, Confidence)>,
    /// Members that may still answer.
    remaining: Vec<Member>,
}

/// A member's authority and trust.
type Member = (Authority, Trust);

fn member() -> impl Strategy<Value = Member> {
    (unit_micros(), unit_micros())
        .prop_map(|(a, t)| (Authority::from_micros(a), Trust::from_micros(t)))
}

fn influence(m: &Member) -> u128 {
    u128::from(Influence::of(m.0, m.1).0)
}

fn stance() -> impl Strategy<Value = Stance> {
    prop_oneof![
        Just(Stance::Endorse),
        Just(Stance::Challenge),
        Just(Stance::Abstain)
    ]
}

fn case() -> impl Strategy<Value = Case> {
    (
        policy(),
        prop::collection::vec((member(), stance(), unit_micros()), 0..5),
        prop::collection::vec(member(), 0..=3),
    )
        .prop_map(|(policy, answered, remaining)| Case {
            policy,
            answered: answered
                .into_iter()
                .map(|(i, s, c)| (i, s, Confidence::from_micros(c)))
                .collect(),
            remaining,
        })
}

fn base_tally(case: &Case) -> Tally {
    let potential: u128 = case
        .answered
        .iter()
        .map(|(m, ..)| influence(m))
        .chain(case.remaining.iter().map(influence))
        .sum();
    let mut tally = Tally::new(potential);
    for ((a, t), s, c) in &case.answered {
        tally.add(&case.policy, *s, *a, *t, *c);
    }
    tally
}

/// Every verdict the vote can still end with, by enumeration.
fn all_completions(case: &Case) -> Vec<Verdict> {
    let choices: Vec<(Stance, u32)> = std::iter::once((Stance::Abstain, 0))
        .chain(
            GRID.iter()
                .flat_map(|&c| [(Stance::Endorse, c), (Stance::Challenge, c)]),
        )
        .collect();
    let mut verdicts = Vec::new();
    let n = case.remaining.len();
    let total = choices.len().pow(n as u32);
    for mut code in 0..total {
        let mut tally = base_tally(case);
        for (a, t) in &case.remaining {
            let (stance, c) = choices[code % choices.len()];
            code /= choices.len();
            let c = Confidence::from_micros(c);
            tally.add(&case.policy, stance, *a, *t, c);
        }
        verdicts.push(resolve(&case.policy, &tally));
    }
    verdicts
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4_000, ..ProptestConfig::default() })]

    /// §6: early finality fires exactly when every completion agrees on
    /// approve, or every completion agrees on reject.
    #[test]
    fn early_finality_matches_brute_force(case in case()) {
        let tally = base_tally(&case);
        let p = &case.policy;
        let remaining: u128 = case.remaining.iter().map(|(a, t)| reach(p, *a, *t)).sum();
        let early = early_verdict(&case.policy, &tally, remaining);
        let verdicts = all_completions(&case);
        let unanimous = verdicts
            .iter()
            .all(|v| *v == verdicts[0])
            .then_some(verdicts[0])
            .filter(|v| matches!(v, Verdict::Approved | Verdict::Rejected));
        prop_assert_eq!(early, unanimous, "case {:?}", case);
    }
}

#[test]
fn human_required_is_never_early() {
    for weighting in [Weighting::Linear, Weighting::LogOdds] {
        let mut policy = Policy {
            weighting,
            ..Policy::default_for(Stakes::Critical)
        };
        let mut tally = Tally::new(10u128.pow(12));
        tally.add(
            &policy,
            Stance::Endorse,
            Authority::ONE,
            Trust::ONE,
            Confidence::ONE,
        );
        assert_eq!(early_verdict(&policy, &tally, 0), None);
        policy.human_required = false;
        assert_eq!(early_verdict(&policy, &tally, 0), Some(Verdict::Approved));
    }
}

/// A random vote, played through a real space.
#[derive(Debug, Clone)]
struct Vote {
    stakes: &'static str,
    proposer_confidence: u32,
    /// (authority, stance, confidence) per responder; index 0 proposes.
    members: Vec<(u32, Stance, u32)>,
}

fn vote() -> impl Strategy<Value = Vote> {
    (
        prop_oneof![Just("low"), Just("medium"), Just("high")],
        1u32..=1_000_000,
        prop::collection::vec(
            (
                (1u32..=20).prop_map(|k| k * 50_000),
                stance(),
                unit_micros(),
            ),
            2..7,
        ),
    )
        .prop_map(|(stakes, proposer_confidence, members)| Vote {
            stakes,
            proposer_confidence,
            members,
        })
}

fn decimal(micros: u32) -> String {
    synod_core::fixed::format_scaled(u128::from(micros), 6)
}

fn stance_name(s: Stance) -> &'static str {
    match s {
        Stance::Endorse => "endorse",
        Stance::Challenge => "challenge",
        Stance::Abstain => "abstain",
    }
}

/// Plays `vote` with responses in `order`; returns (status, reason) and the
/// responses the space refused because the proposal had closed.
fn play(vote: &Vote, order: &[usize]) -> (String, Option<String>, usize) {
    let mut h = Harness::closed();
    for (i, (authority, ..)) in vote.members.iter().enumerate() {
        h.agent(&format!("m{i}"), &[("ops.*", &decimal(*authority))]);
    }
    let p = h
        .propose(
            "m0",
            "ops.deploy",
            vote.stakes,
            &decimal(vote.proposer_confidence),
        )
        .unwrap();
    let mut refused = 0;
    for &i in order {
        let (_, stance, conf) = vote.members[i];
        match h.respond(&format!("m{i}"), p, stance_name(stance), &decimal(conf)) {
            Ok(_) => {}
            Err(e) => {
                assert_eq!(e.kind, synod_core::ErrorKind::ProposalClosed);
                refused += 1;
            }
        }
    }
    h.advance(10 * MINUTE);
    let record = h.space.proposal(&p).unwrap();
    let reason = record.closure.and_then(|c| c.verdict.reason()).map(|r| {
        serde_json::to_value(r)
            .unwrap()
            .as_str()
            .unwrap()
            .to_string()
    });
    (record.status.as_str().to_string(), reason, refused)
}

/// The same vote through `synod resolve` with every response counted and the
/// deadline passed.
fn at_deadline(vote: &Vote, order: &[usize]) -> scenario::ScenarioResult {
    let electorate: Vec<_> = vote
        .members
        .iter()
        .enumerate()
        .map(|(i, (a, ..))| json!({"agent": format!("m{i}"), "authority": decimal(*a), "trust": "0.5"}))
        .collect();
    let responses: Vec<_> = order
        .iter()
        .map(|&i| {
            let (_, s, c) = vote.members[i];
            json!({"agent": format!("m{i}"), "stance": stance_name(s), "confidence": decimal(c)})
        })
        .collect();
    let input = json!({
        "stakes": vote.stakes,
        "electorate": electorate,
        "proposer": "m0",
        "proposer_confidence": decimal(vote.proposer_confidence),
        "responses": responses,
        "deadline_passed": true,
    });
    scenario::run(&input.to_string()).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// §5: the verdict does not depend on the order responses arrive in, and a
    /// proposal that closed early has the verdict it would have had at its
    /// deadline with every response counted.
    #[test]
    fn resolution_is_order_independent_and_early_agrees_with_the_deadline(
        vote in vote(),
        shuffle in any::<u64>(),
    ) {
        let forward: Vec<usize> = (1..vote.members.len()).collect();
        let mut shuffled = forward.clone();
        let mut s = shuffle | 1;
        for i in (1..shuffled.len()).rev() {
            s ^= s << 13; s ^= s >> 7; s ^= s << 17;
            shuffled.swap(i, (s % (i as u64 + 1)) as usize);
        }
        let (status_a, reason_a, _) = play(&vote, &forward);
        let (status_b, reason_b, _) = play(&vote, &shuffled);
        prop_assert_eq!(&status_a, &status_b);
        prop_assert_eq!(&reason_a, &reason_b);

        let full_a = at_deadline(&vote, &forward);
        let full_b = at_deadline(&vote, &shuffled);
        prop_assert_eq!(&full_a, &full_b);
        prop_assert_eq!(&full_a.status, &status_a, "early close disagreed with the deadline result");
    }
}
