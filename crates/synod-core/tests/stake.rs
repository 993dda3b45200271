//! Stake-weighted validation and selection through the real state machine
//! (docs/PROTOCOL.md §20): the two-thirds rule over the whole electorate's
//! stake, committees drawn by stake, round proposers, and the audit.

mod common;

use common::{Harness, MINUTE};
use serde_json::{Value, json};
use synod_core::audit;
use synod_core::domain::Domain;
use synod_core::lottery;
use synod_core::stake::{committee_seed, proposer_seed};
use synod_core::wire::{Digest, MessageType};
use synod_core::{Effect, ErrorKind};

/// A closed space counting granted stakes; each named agent gets authority
/// 1 in `ops.*`, the agent role and its stake.
fn granted(agents: &[(&str, u64)], extra: Value) -> Harness {
    let mut patch = json!({"stake": "granted"});
    for (k, v) in extra.as_object().unwrap() {
        patch[k] = v.clone();
    }
    let mut h = Harness::with_config(patch);
    for &(name, stake) in agents {
        give(&mut h, name, stake);
        h.register_declaring(name, &[]).unwrap();
    }
    h.person("oscar", &["oracle"]);
    h.person("rita", &["reviewer"]);
    h
}

fn give(h: &mut Harness, name: &str, stake: u64) {
    let agent = h.id(name);
    h.configure(
        json!({"grant": {"agent": agent, "authorities": {"ops.*": "1"},
                                 "roles": ["agent"], "stake": stake}}),
    )
    .unwrap();
}

fn stake_body(h: &Harness) -> Value {
    let mut b = h.proposal_body("ops.deploy", "low", "0.9");
    b["method"] = json!("stake");
    b
}

fn closed_cause(effects: &[Effect]) -> Option<(String, String)> {
    effects.iter().find_map(|e| match e {
        Effect::ProposalClosed { status, cause, .. } => Some((
            status.as_str().to_string(),
            serde_json::to_value(cause)
                .unwrap()
                .as_str()
                .unwrap()
                .to_string(),
        )),
        _ => None,
    })
}

fn kind<T>(r: Result<T, synod_core::Rejection>) -> ErrorKind {
    match r {
        Ok(_) => panic!("accepted"),
        Err(e) => e.kind,
    }
}

#[test]
fn exactly_two_thirds_of_the_stake_does_not_pass() {
    // p, a, b hold 1 each: S = 3. p's proposal counts as its endorsement
    // (1), a endorses (2 = exactly two thirds), b abstains: escalated.
    let mut h = granted(&[("p", 1), ("a", 1), ("b", 1)], json!({}));
    let id = h.propose_with("p", stake_body(&h)).unwrap();
    h.respond("a", id, "endorse", "1").unwrap();
    assert_eq!(h.status(&id), "open");
    let effects = h.respond("b", id, "abstain", "0.5").unwrap();
    assert_eq!(
        closed_cause(&effects),
        Some(("escalated".into(), "all_responded".into()))
    );
    let tally = &h.space.proposal(&id).unwrap().tally;
    assert_eq!(3 * tally.endorse / 1_000_000, 2 * tally.potential);
}

#[test]
fn two_thirds_of_the_voters_but_not_of_the_electorate_does_not_pass() {
    // Ten holders of 1; the proposer and five others endorse (6 of 10:
    // every voter, 60 % of the stake), four stay silent.
    let names: Vec<String> = (0..10).map(|i| format!("m{i}")).collect();
    let agents: Vec<(&str, u64)> = names.iter().map(|n| (n.as_str(), 1)).collect();
    let mut h = granted(&agents, json!({}));
    let id = h.propose_with("m0", stake_body(&h)).unwrap();
    for n in &names[1..6] {
        h.respond(n, id, "endorse", "0.9").unwrap();
    }
    assert_eq!(h.status(&id), "open");
    let effects = h.advance(10 * MINUTE);
    assert_eq!(
        closed_cause(&effects),
        Some(("escalated".into(), "deadline".into()))
    );
    let record = h.space.proposal(&id).unwrap();
    assert_eq!(record.tally.voted * 1_000_000, record.tally.endorse);
    assert_eq!(
        serde_json::to_value(record.closure.unwrap().verdict).unwrap(),
        json!({"escalated": "no_quorum"})
    );
}

#[test]
fn one_unit_above_two_thirds_approves_at_once() {
    // S = 300: p holds 150, a 51, b 99. p and a endorse: 201 > 200.
    let mut h = granted(&[("p", 150), ("a", 51), ("b", 99)], json!({}));
    let id = h.propose_with("p", stake_body(&h)).unwrap();
    let effects = h.respond("a", id, "endorse", "0.1").unwrap();
    assert_eq!(
        closed_cause(&effects),
        Some(("approved".into(), "early".into()))
    );
    // b is too late, and its stake could not have undone it.
    assert_eq!(
        kind(h.respond("b", id, "challenge", "1")),
        ErrorKind::ProposalClosed
    );
    // One unit less for a: 200 is not more than two thirds.
    let mut h = granted(&[("p", 150), ("a", 50), ("b", 100)], json!({}));
    let id = h.propose_with("p", stake_body(&h)).unwrap();
    h.respond("a", id, "endorse", "1").unwrap();
    assert_eq!(h.status(&id), "open");
}

#[test]
fn a_third_challenging_rejects_and_less_escalates() {
    // S = 9: a challenge of 3 makes approval impossible.
    let mut h = granted(&[("p", 3), ("a", 3), ("b", 3)], json!({}));
    let id = h.propose_with("p", stake_body(&h)).unwrap();
    let effects = h.respond("a", id, "challenge", "0.6").unwrap();
    assert_eq!(
        closed_cause(&effects),
        Some(("rejected".into(), "early".into()))
    );
    // S = 10: a challenge of 3 is below a third; p's 4 and b's silence
    // leave it open, then escalated at the deadline.
    let mut h = granted(&[("p", 4), ("a", 3), ("b", 3)], json!({}));
    let id = h.propose_with("p", stake_body(&h)).unwrap();
    h.respond("a", id, "challenge", "1").unwrap();
    assert_eq!(h.status(&id), "open");
    h.advance(10 * MINUTE);
    assert_eq!(h.status(&id), "escalated");
    // A reviewer decides it like any escalation; the outcome scores it
    // like a vote (§8).
    h.decide("rita", id, "approve").unwrap();
    assert_eq!(h.status(&id), "approved_by_human");
    let before = h.trust("a", "ops.deploy");
    h.outcome("oscar", id, "success").unwrap();
    assert_ne!(h.trust("a", "ops.deploy"), before);
}

#[test]
fn human_required_escalates_whatever_the_stake() {
    let mut h = granted(&[("p", 1), ("a", 1)], json!({}));
    let mut b = stake_body(&h);
    b["policy"] = json!({"human_required": true});
    let id = h.propose_with("p", b).unwrap();
    h.respond("a", id, "endorse", "1").unwrap();
    assert_eq!(h.status(&id), "escalated");
    assert_eq!(
        serde_json::to_value(h.space.proposal(&id).unwrap().closure.unwrap().verdict).unwrap(),
        json!({"escalated": "stakes"})
    );
}

#[test]
fn influence_is_the_stake_by_default() {
    // Authorities 1, 0.5, 0.5 at trust 0.5: stakes 0.5, 0.25, 0.25. The
    // proposer's 0.5 alone is half; with a's 0.25 it is 0.75 > 2/3.
    let mut h = Harness::closed();
    h.agent("p", &[("ops.*", "1")]);
    h.agent("a", &[("ops.*", "0.5")]);
    h.agent("b", &[("ops.*", "0.5")]);
    let id = h.propose_with("p", stake_body(&h)).unwrap();
    assert_eq!(
        h.space.proposal(&id).unwrap().tally.potential,
        1_000_000_000_000
    );
    let effects = h.respond("a", id, "endorse", "0.7").unwrap();
    assert_eq!(
        closed_cause(&effects),
        Some(("approved".into(), "early".into()))
    );
    let printed = effects
        .iter()
        .find_map(|e| match e {
            Effect::ProposalClosed { tally, .. } => Some(serde_json::to_value(tally).unwrap()),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        printed,
        json!({"endorse": "0.75", "challenge": "0", "voted": "0.75", "potential": "1"})
    );
}

#[test]
fn grants_set_stakes_wholesale_and_bound_them() {
    let mut h = granted(&[("p", 7)], json!({}));
    let agent = h.space.agent(&h.id("p")).unwrap();
    assert_eq!(agent.stake, 7);
    // A later grant without a stake leaves none.
    h.grant("p", &[("ops.*", "1")], &["agent"]);
    assert_eq!(h.space.agent(&h.id("p")).unwrap().stake, 0);
    let before = h.space.state_hash();
    let p = h.id("p");
    assert_eq!(
        kind(h.configure(
            json!({"grant": {"agent": p, "roles": ["agent"], "stake": 1_000_000_000_001u64}})
        )),
        ErrorKind::OutOfRange
    );
    assert_eq!(
        kind(h.configure(json!({"set": {"stake": "votes"}}))),
        ErrorKind::Malformed
    );
    assert_eq!(
        kind(h.configure(json!({"set": {"min_committee": 101}}))),
        ErrorKind::OutOfRange
    );
    assert_eq!(h.space.state_hash(), before, "refusals change nothing");
}

#[test]
fn a_stake_proposal_takes_no_options() {
    let mut h = granted(&[("p", 1), ("a", 1)], json!({}));
    let mut b = stake_body(&h);
    b["options"] = json!(["x", "y"]);
    assert_eq!(kind(h.propose_with("p", b)), ErrorKind::Malformed);
    let id = h.propose_with("p", stake_body(&h)).unwrap();
    let r = h.send(
        "a",
        MessageType::Response,
        json!({"proposal": id, "distribution": {"x": "1"}}),
    );
    assert_eq!(kind(r), ErrorKind::Malformed);
}

/// 40 holders of stakes 1…40 and committees allowed from 3.
fn big_space() -> (Harness, Vec<String>) {
    let names: Vec<String> = (1..=40).map(|i| format!("v{i}")).collect();
    let agents: Vec<(&str, u64)> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i as u64 + 1))
        .collect();
    let mut h = granted(&agents, json!({"min_committee": 3}));
    // Two holders without stake: never drawn.
    give(&mut h, "zero1", 0);
    h.register_declaring("zero1", &[]).unwrap();
    give(&mut h, "zero2", 0);
    h.register_declaring("zero2", &[]).unwrap();
    (h, names)
}

#[test]
fn a_committee_is_drawn_by_stake_from_the_proposals_own_entry() {
    let (mut h, names) = big_space();
    let mut b = stake_body(&h);
    b["committee"] = json!(5);
    let id = h.propose_with("v1", b).unwrap();
    let record = h.space.proposal(&id).unwrap();
    assert_eq!(record.committee, Some(5));
    assert_eq!(record.electorate.len(), 5);
    // Redo the draw from the log: the seed is the hash of the entry that
    // carries the proposal; the candidates are the agents with stake in
    // admission order (v1…v40, zero1, zero2).
    let seed = committee_seed(&h.entries.last().unwrap().hash());
    let mut stakes: Vec<u128> = (1..=40).map(|s| s * 1_000_000_000_000).collect();
    stakes.extend([0, 0]);
    let mut drawn = lottery::draw(&seed, &stakes, 5);
    drawn.sort_unstable();
    let expected: Vec<_> = drawn.iter().map(|&i| h.id(&names[i])).collect();
    let got: Vec<_> = record
        .electorate
        .iter()
        .map(|m| h.space.agent_at(m.agent).id.clone())
        .collect();
    assert_eq!(got, expected);
    // The rule counts the committee's stake only.
    let committee_stake: u128 = drawn.iter().map(|&i| stakes[i]).sum();
    assert_eq!(record.tally.potential, committee_stake);

    // Anyone outside the committee is refused, and nothing changes.
    let outsider = names
        .iter()
        .skip(1)
        .find(|n| !expected.contains(&h.id(n)))
        .unwrap()
        .clone();
    let before = h.space.state_hash();
    let err = h.respond(&outsider, id, "endorse", "1").unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotEligible);
    assert!(err.message.contains("committee of 5"), "{}", err.message);
    assert_eq!(
        kind(h.respond("zero1", id, "endorse", "1")),
        ErrorKind::NotEligible
    );
    assert_eq!(h.space.state_hash(), before);

    // The members decide: every member but the proposer endorses.
    let proposer = h.id("v1");
    for m in &expected {
        if *m == proposer || h.status(&id) != "open" {
            continue;
        }
        let name = names.iter().find(|n| h.id(n) == *m).unwrap().clone();
        h.respond(&name, id, "endorse", "0.8").unwrap();
    }
    assert_eq!(h.status(&id), "approved");
}

#[test]
fn stake_decides_who_sits_on_committees() {
    // Over 60 proposals, committees of 3 drawn from stakes 1…40 seat the
    // top half (21…40: 610 of 820 of the stake, about 74 %) far more often
    // than the bottom half, and never a holder of 0.
    let (mut h, names) = big_space();
    let mut top = 0;
    let mut seats = 0;
    for n in 0..60 {
        let mut b = stake_body(&h);
        b["committee"] = json!(3);
        b["action"]["summary"] = json!(format!("deploy {n}"));
        let id = h.propose_with("v40", b).unwrap();
        for m in &h.space.proposal(&id).unwrap().electorate {
            let who = &h.space.agent_at(m.agent).id;
            let i = names.iter().position(|n| h.id(n) == *who).expect("staked");
            seats += 1;
            top += usize::from(i >= 20);
        }
        h.time += 1;
    }
    assert_eq!(seats, 180);
    assert!(top > 110, "top half seated {top} of 180");
}

#[test]
fn committees_are_for_low_stakes_in_spaces_that_allow_them() {
    let (mut h, _) = big_space();
    let with = |h: &Harness, k: Value, stakes: &str| {
        let mut b = stake_body(h);
        b["committee"] = k;
        b["stakes"] = json!(stakes);
        b
    };
    let before = h.space.state_hash();
    for (k, stakes, expected) in [
        (json!(5), "medium", ErrorKind::PolicyViolation),
        (json!(2), "low", ErrorKind::PolicyViolation),
        (json!(0), "low", ErrorKind::OutOfRange),
        (json!(101), "low", ErrorKind::OutOfRange),
        (json!(-1), "low", ErrorKind::Malformed),
        (json!("5"), "low", ErrorKind::Malformed),
    ] {
        let b = with(&h, k.clone(), stakes);
        assert_eq!(kind(h.propose_with("v1", b)), expected, "{k} {stakes}");
    }
    let mut b = with(&h, json!(5), "low");
    b["method"] = json!("belief");
    b["options"] = json!(["a", "b"]);
    assert_eq!(kind(h.propose_with("v1", b)), ErrorKind::Malformed);
    assert_eq!(h.space.state_hash(), before);
    // A space that allows none.
    let mut h = granted(&[("p", 1), ("a", 1)], json!({}));
    let b = with(&h, json!(3), "low");
    assert_eq!(kind(h.propose_with("p", b)), ErrorKind::PolicyViolation);
    // A vote may be decided by a committee too.
    let (mut h, _) = big_space();
    let mut b = with(&h, json!(4), "low");
    b["method"] = json!("vote");
    let id = h.propose_with("v1", b).unwrap();
    assert_eq!(h.space.proposal(&id).unwrap().electorate.len(), 4);
}

#[test]
fn only_the_rounds_drawn_proposer_may_propose() {
    let mut h = granted(
        &[("p", 5), ("a", 3), ("b", 2), ("c", 0)],
        json!({"proposer_round_ms": MINUTE}),
    );
    let domain = Domain::parse("ops.deploy").unwrap();
    let mut proposers = std::collections::BTreeSet::new();
    for _ in 0..12 {
        // Start a round: the entries before it anchor it.
        h.time = (h.time / MINUTE + 1) * MINUTE;
        let anchor = h.entries.last().unwrap().hash();
        let draw = h.space.round_proposer(&domain, h.time).unwrap();
        assert_eq!(draw.round, h.time / MINUTE);
        assert_eq!(draw.anchor, anchor);
        // Redo it: the seed of the domain, the round and the anchor, over
        // the stakes of p, a, b, c in admission order.
        let seed = proposer_seed(&domain, draw.round, &anchor);
        assert_eq!(draw.seed, seed);
        let unit = 1_000_000_000_000u128;
        let i = lottery::draw(&seed, &[5 * unit, 3 * unit, 2 * unit, 0], 1)[0];
        let drawn = ["p", "a", "b"][i];
        assert_eq!(draw.proposer, Some(h.id(drawn)));
        proposers.insert(drawn);
        // Everyone else is refused with not_eligible, changing nothing.
        let before = h.space.state_hash();
        for other in ["p", "a", "b", "c"].iter().filter(|o| **o != drawn) {
            let mut b = stake_body(&h);
            b["action"]["summary"] = json!(format!("{other} at {}", h.time));
            let err = h.propose_with(other, b).unwrap_err();
            assert_eq!(err.kind, ErrorKind::NotEligible, "{other}");
            assert!(err.message.contains("was drawn"), "{}", err.message);
        }
        assert_eq!(h.space.state_hash(), before);
        let mut b = stake_body(&h);
        b["action"]["summary"] = json!(format!("{drawn} at {}", h.time));
        h.propose_with(drawn, b).unwrap();
        // Later in the same round the anchor stays.
        h.time += 1_000;
        let again = h.space.round_proposer(&domain, h.time).unwrap();
        assert_eq!((again.round, again.anchor), (draw.round, anchor));
        let mut b = stake_body(&h);
        b["action"]["summary"] = json!(format!("{drawn} again at {}", h.time));
        h.propose_with(drawn, b).unwrap();
    }
    // A snapshot keeps the round and its anchor.
    let restored = synod_core::Space::from_snapshot(&h.space.to_snapshot()).unwrap();
    assert_eq!(
        restored.round_proposer(&domain, h.time),
        h.space.round_proposer(&domain, h.time)
    );
    // A round is a lottery, not a rota, and the zero stake never wins.
    assert!(proposers.len() >= 2, "{proposers:?}");
    assert!(!proposers.contains("c"));
    // The audit re-derives every acceptance.
    let summary = audit::verify(h.lines.iter().map(String::as_str)).unwrap();
    assert_eq!(summary.entries, h.lines.len() as u64);
}

#[test]
fn the_audit_and_a_replica_agree_on_committees_and_stakes() {
    let (mut h, names) = big_space();
    for n in 0..5 {
        let mut b = stake_body(&h);
        b["committee"] = json!(3 + n);
        b["action"]["summary"] = json!(format!("deploy {n}"));
        let id = h.propose_with(&names[39], b).unwrap();
        let members: Vec<_> = h.space.proposal(&id).unwrap().electorate.clone();
        for m in members {
            let who = h.space.agent_at(m.agent).id.clone();
            let name = names.iter().find(|x| h.id(x) == who).unwrap().clone();
            if h.status(&id) == "open" && name != names[39] {
                h.respond(
                    &name,
                    id,
                    if n % 2 == 0 { "endorse" } else { "challenge" },
                    "0.9",
                )
                .unwrap();
            }
        }
        h.time += 1;
    }
    let summary = audit::verify(h.lines.iter().map(String::as_str)).unwrap();
    assert_eq!(summary.entries, h.lines.len() as u64);
    let mut replica = synod_core::Space::new();
    for e in &h.entries {
        replica.apply(e).unwrap();
    }
    assert_eq!(replica.state_hash(), h.space.state_hash());
    let restored = synod_core::Space::from_snapshot(&h.space.to_snapshot()).unwrap();
    assert_eq!(restored.state_hash(), h.space.state_hash());
    let ids: Vec<Digest> = h.space.proposals().keys().copied().collect();
    for id in ids {
        assert_eq!(
            replica.proposal(&id).unwrap().electorate,
            h.space.proposal(&id).unwrap().electorate
        );
    }
}

#[test]
fn newcomers_never_win_a_round() {
    // An open space: vet was granted authority (no newcomer); three
    // identities registered themselves with declared authority. Only vet
    // is a candidate, so it is drawn in every round.
    let mut h = Harness::with_config(json!({"mode": "open", "proposer_round_ms": MINUTE}));
    h.grant("vet", &[("ops.*", "0.3")], &["agent"]);
    h.register_declaring("vet", &[]).unwrap();
    for n in ["new1", "new2", "new3"] {
        h.register_declaring(n, &[("ops.*", "0.5")]).unwrap();
    }
    let domain = Domain::parse("ops.deploy").unwrap();
    for _ in 0..5 {
        h.time = (h.time / MINUTE + 1) * MINUTE;
        h.advance(0);
        let draw = h.space.round_proposer(&domain, h.time).unwrap();
        assert_eq!(draw.candidates.len(), 1);
        assert_eq!(draw.proposer, Some(h.id("vet")));
        assert_eq!(
            kind(h.propose_with("new1", stake_body(&h))),
            ErrorKind::NotEligible
        );
    }
}

// Sealed responses (§18) with stake and committees; the refused
// combinations with hierarchies and open questions.

/// The commitment of `name` to `answer` on `proposal`, with a fixed salt.
fn seal_for(h: &Harness, name: &str, proposal: Digest, answer: &Value) -> Digest {
    synod_core::sealed::commitment(&proposal, &h.id(name), &[7u8; 16], answer)
}

fn commit_stance(h: &mut Harness, name: &str, proposal: Digest, stance: &str) -> Vec<Effect> {
    let answer = json!({"stance": stance, "confidence": "0.8", "reasoning": name});
    let c = seal_for(h, name, proposal, &answer);
    h.send(
        name,
        MessageType::Response,
        json!({"proposal": proposal, "commitment": c}),
    )
    .unwrap()
}

fn reveal_stance(
    h: &mut Harness,
    name: &str,
    proposal: Digest,
    stance: &str,
) -> Result<Vec<Effect>, synod_core::Rejection> {
    let mut body = json!({"stance": stance, "confidence": "0.8", "reasoning": name});
    body["proposal"] = json!(proposal);
    body["salt"] = json!("07".repeat(16));
    h.send(name, MessageType::Response, body)
}

fn sealed_stake_body(h: &Harness) -> Value {
    let mut b = stake_body(h);
    b["sealed"] = json!({"commit_deadline": h.time + 5 * MINUTE});
    b["deadline"] = json!(h.time + 10 * MINUTE);
    b
}

#[test]
fn a_sealed_stake_proposal_never_closes_in_its_commit_phase() {
    // p holds 7 of 10: unsealed, its own endorsement approves at once.
    let mut h = granted(&[("p", 7), ("a", 1), ("b", 1), ("c", 1)], json!({}));
    let mut plain = stake_body(&h);
    plain["action"]["summary"] = json!("unsealed");
    let unsealed = h.propose_with("p", plain).unwrap();
    assert_eq!(h.status(&unsealed), "approved");
    // Sealed, it stays open through the commit phase, whatever is committed.
    let id = h.propose_with("p", sealed_stake_body(&h)).unwrap();
    assert_eq!(h.status(&id), "open");
    commit_stance(&mut h, "a", id, "challenge");
    commit_stance(&mut h, "b", id, "challenge");
    h.advance(4 * MINUTE);
    assert_eq!(h.status(&id), "open");
    // The commit deadline's entry opens the reveals and applies the rule:
    // 7 > 20/3 holds whatever a and b reveal, so it closes early at once.
    let effects = h.advance(MINUTE);
    assert!(
        effects
            .iter()
            .any(|e| matches!(e, Effect::RevealOpened { committed: 2, .. }))
    );
    assert_eq!(
        closed_cause(&effects),
        Some(("approved".into(), "early".into()))
    );
    // A replica and the audit agree.
    let summary = audit::verify(h.lines.iter().map(String::as_str)).unwrap();
    assert_eq!(summary.entries, h.lines.len() as u64);
    let mut replica = synod_core::Space::new();
    for e in &h.entries {
        replica.apply(e).unwrap();
    }
    assert_eq!(replica.state_hash(), h.space.state_hash());
}

#[test]
fn a_sealed_stake_proposal_counts_unrevealed_stake_against_approval() {
    // S = 10: p 3, a 3, b 2, c 2. All commit; a reveals an endorsement
    // (E = 6, not more than 20/3); b and c never reveal: escalated.
    let mut h = granted(&[("p", 3), ("a", 3), ("b", 2), ("c", 2)], json!({}));
    let id = h.propose_with("p", sealed_stake_body(&h)).unwrap();
    for name in ["a", "b", "c"] {
        commit_stance(&mut h, name, id, "endorse");
    }
    // Nothing is revealed in the commit phase.
    assert_eq!(
        kind(reveal_stance(&mut h, "a", id, "endorse")),
        ErrorKind::WrongPhase
    );
    h.advance(5 * MINUTE);
    reveal_stance(&mut h, "a", id, "endorse").unwrap();
    assert_eq!(h.status(&id), "open");
    h.advance(5 * MINUTE);
    assert_eq!(h.status(&id), "escalated");
    // A third challenging rejects early once revealed, with c's reveal
    // still to come: a's 3 is less than 10/3, a's and b's 5 is not.
    let id = h.propose_with("p", sealed_stake_body(&h)).unwrap();
    commit_stance(&mut h, "a", id, "challenge");
    commit_stance(&mut h, "b", id, "challenge");
    commit_stance(&mut h, "c", id, "endorse");
    h.advance(5 * MINUTE);
    reveal_stance(&mut h, "a", id, "challenge").unwrap();
    assert_eq!(h.status(&id), "open");
    let effects = reveal_stance(&mut h, "b", id, "challenge").unwrap();
    assert_eq!(
        closed_cause(&effects),
        Some(("rejected".into(), "early".into()))
    );
}

#[test]
fn only_committee_members_commit_to_a_sealed_committee_proposal() {
    let (mut h, names) = big_space();
    let mut b = sealed_stake_body(&h);
    b["committee"] = json!(5);
    let id = h.propose_with("v1", b).unwrap();
    let committee: Vec<String> = h
        .space
        .proposal(&id)
        .unwrap()
        .electorate
        .iter()
        .map(|m| h.space.agent_at(m.agent).id.clone())
        .map(|who| names.iter().find(|n| h.id(n) == who).unwrap().clone())
        .collect();
    let outsider = names
        .iter()
        .skip(1)
        .find(|n| !committee.contains(n))
        .unwrap()
        .clone();
    let answer = json!({"stance": "endorse", "confidence": "0.8", "reasoning": "x"});
    let c = seal_for(&h, &outsider, id, &answer);
    let before = h.space.state_hash();
    let err = h
        .send(
            &outsider,
            MessageType::Response,
            json!({"proposal": id, "commitment": c}),
        )
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotEligible);
    assert!(err.message.contains("committee of 5"), "{}", err.message);
    assert_eq!(h.space.state_hash(), before);
    // The committee commits (the proposer does not respond), then reveals.
    let voters: Vec<String> = committee.into_iter().filter(|n| n != "v1").collect();
    for n in &voters {
        commit_stance(&mut h, n, id, "endorse");
    }
    assert_eq!(h.status(&id), "open");
    h.advance(5 * MINUTE);
    for n in &voters {
        if h.status(&id) == "open" {
            reveal_stance(&mut h, n, id, "endorse").unwrap();
        }
    }
    assert_eq!(h.status(&id), "approved");
}

#[test]
fn a_hierarchy_proposal_cannot_be_sealed_nor_an_open_question_drawn_a_committee() {
    let mut h = granted(&[("p", 1), ("a", 1)], json!({"min_committee": 1}));
    let mut b = sealed_stake_body(&h);
    b["method"] = json!("hierarchy");
    let err = h.propose_with("p", b).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Malformed);
    assert!(err.message.contains("cannot be sealed"), "{}", err.message);
    let mut b = h.proposal_body("ops.deploy", "low", "1");
    b["method"] = json!("open");
    b["committee"] = json!(1);
    assert_eq!(kind(h.propose_with("p", b)), ErrorKind::Malformed);
    // A sealed open question is fine.
    let mut b = h.proposal_body("ops.deploy", "low", "1");
    b["method"] = json!("open");
    b["sealed"] = json!({"commit_deadline": h.time + MINUTE});
    h.propose_with("p", b).unwrap();
}
