//! Belief consensus through the real state machine (docs/PROTOCOL.md §15):
//! every case here is a signed message appended with `Space::append`, so
//! what these tests see is what `synod audit verify` re-derives.

mod common;

use common::{Harness, MINUTE};
use serde_json::{Value, json};
use synod_core::audit;
use synod_core::belief::PoolReport;
use synod_core::space::{CloseCause, Effect};
use synod_core::tally::{Reason, Verdict};
use synod_core::wire::MessageType;
use synod_core::{Digest, ErrorKind, Rejection, Space, Status};

const OPTIONS: [&str; 3] = ["acme", "globex", "initech"];

/// A closed space: alice proposes; bob, carol, dave and erin answer (all
/// authority 1 in `vendor.*`, trust at the prior 0.5, so every pool weight
/// is the same); rita reviews; oscar reports outcomes.
fn vendor_team(config: Value) -> Harness {
    let mut h = Harness::with_config(config);
    for name in ["alice", "bob", "carol", "dave", "erin"] {
        h.agent(name, &[("vendor.*", "1")]);
    }
    h.person("rita", &["reviewer"]);
    h.person("oscar", &["oracle"]);
    h
}

fn belief_body(h: &Harness, stakes: &str, extra: Value) -> Value {
    let mut body = json!({
        "domain": "vendor.choice",
        "action": {"kind": "choose_vendor", "summary": "Which vendor runs the payroll?"},
        "confidence": "1",
        "stakes": stakes,
        "deadline": h.time + 10 * MINUTE,
        "method": "belief",
        "options": OPTIONS,
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

fn propose(h: &mut Harness, stakes: &str) -> Digest {
    let body = belief_body(h, stakes, json!({}));
    h.propose_with("alice", body).unwrap()
}

/// A distribution over [`OPTIONS`], given as decimal strings.
fn dist(p: [&str; 3]) -> Value {
    json!({"acme": p[0], "globex": p[1], "initech": p[2]})
}

fn believe(
    h: &mut Harness,
    agent: &str,
    proposal: Digest,
    distribution: Value,
) -> Result<Vec<Effect>, Rejection> {
    h.send(
        agent,
        MessageType::Response,
        json!({"proposal": proposal, "distribution": distribution, "reasoning": format!("{agent}'s view")}),
    )
}

fn closed(effects: &[Effect]) -> Option<(Status, Option<Reason>, CloseCause, Option<String>)> {
    effects.iter().find_map(|e| match e {
        Effect::ProposalClosed {
            status,
            reason,
            cause,
            choice,
            ..
        } => Some((*status, *reason, *cause, choice.clone())),
        _ => None,
    })
}

fn pool_of(effects: &[Effect]) -> PoolReport {
    effects
        .iter()
        .rev()
        .find_map(|e| match e {
            Effect::ProposalClosed { pool, .. } | Effect::ResponseCounted { pool, .. } => {
                pool.clone()
            }
            _ => None,
        })
        .expect("a belief proposal's effect carries its pool")
}

fn pooled(report: &PoolReport, option: &str) -> f64 {
    report.pooled[option].to_string().parse().unwrap()
}

#[test]
fn agreeing_distributions_adopt_the_leading_option() {
    // §15.2–§15.3: the normalised geometric mean of (0.8, 0.1, 0.1),
    // (0.7, 0.2, 0.1), (0.9, 0.05, 0.05) gives acme ≈ 0.816 ≥ 0.7.
    let mut h = vendor_team(json!({}));
    let p = propose(&mut h, "medium");
    let effects = believe(&mut h, "bob", p, dist(["0.8", "0.1", "0.1"])).unwrap();
    let Effect::ResponseCounted {
        stance,
        leaning,
        pool,
        ..
    } = &effects[0]
    else {
        panic!("{effects:?}")
    };
    assert_eq!(*stance, None);
    // One of five members of equal influence: no quorum yet (0.2 < 0.5).
    assert_eq!(*leaning, Verdict::Escalated(Reason::NoQuorum));
    assert_eq!(pool.as_ref().unwrap().leader.as_deref(), Some("acme"));
    believe(&mut h, "carol", p, dist(["0.7", "0.2", "0.1"])).unwrap();
    believe(&mut h, "dave", p, dist(["0.9", "0.05", "0.05"])).unwrap();
    // No early finality for belief proposals: erin is still waited for.
    assert_eq!(h.status(&p), "open");
    let effects = h
        .respond("erin", p, "abstain", "0.5")
        .expect("an abstention is a response");
    assert_eq!(
        closed(&effects),
        Some((
            Status::Approved,
            None,
            CloseCause::AllResponded,
            Some("acme".into())
        ))
    );
    let report = pool_of(&effects);
    let (a, g, i) = (
        (0.8f64 * 0.7 * 0.9).cbrt(),
        (0.1f64 * 0.2 * 0.05).cbrt(),
        (0.1f64 * 0.1 * 0.05).cbrt(),
    );
    let z = a + g + i;
    for (option, real) in [("acme", a / z), ("globex", g / z), ("initech", i / z)] {
        assert!(
            (pooled(&report, option) - real).abs() < 2e-6,
            "{option}: {} vs {real}",
            pooled(&report, option)
        );
    }
    let record = h.space.proposal(&p).unwrap();
    assert_eq!(record.choice, Some(0));
    // The decision package shows each agent's distance from the pool.
    let pkg = synod_core::package::DecisionPackage::build(&h.space, record);
    let belief = pkg.belief.expect("a belief package");
    assert_eq!(belief.choice.as_deref(), Some("acme"));
    assert_eq!(pkg.positions.len(), 4);
    assert!(pkg.positions[..3].iter().all(|p| p.divergence.is_some()));
    assert_eq!(pkg.positions[3].divergence, None, "erin abstained");
}

#[test]
fn a_zero_probability_does_not_veto_an_option() {
    // §15.2 (adversarial): three agents put 0.9 on acme; dave, alone, says
    // acme is impossible. Clipped at the floor 0.01, his zero counts as
    // ln 0.01, so acme still leads: (0.9³ × 0.01)^¼ against
    // (0.05³ × 1)^¼ for globex.
    let mut h = vendor_team(json!({}));
    let p = propose(&mut h, "low");
    believe(&mut h, "bob", p, dist(["0.9", "0.05", "0.05"])).unwrap();
    believe(&mut h, "carol", p, dist(["0.9", "0.05", "0.05"])).unwrap();
    believe(&mut h, "erin", p, dist(["0.9", "0.05", "0.05"])).unwrap();
    let effects = believe(&mut h, "dave", p, dist(["0", "1", "0"])).unwrap();
    let (status, _, _, choice) = closed(&effects).unwrap();
    let report = pool_of(&effects);
    assert_eq!(report.leader.as_deref(), Some("acme"));
    let a = (0.9f64.powi(3) * 0.01).powf(0.25);
    let g = (0.05f64.powi(3) * 1.0).powf(0.25);
    let i = (0.05f64.powi(3) * 0.01).powf(0.25);
    let real = a / (a + g + i);
    assert!((pooled(&report, "acme") - real).abs() < 2e-6);
    // ≈ 0.616 ≥ 0.6 (low stakes): the zero did not veto acme.
    assert!(real > 0.6);
    assert_eq!(
        (status, choice.as_deref()),
        (Status::Approved, Some("acme"))
    );
}

#[test]
fn a_tie_escalates_and_a_reviewer_adopts_an_option() {
    // §15.3: two options tie for the lead; neither clears, the proposal
    // escalates as contested, and a reviewer's approval names the option.
    // Low stakes: two of five members make the quorum (0.3).
    let mut h = vendor_team(json!({}));
    let p = propose(&mut h, "low");
    believe(&mut h, "bob", p, dist(["0.6", "0.4", "0"])).unwrap();
    believe(&mut h, "carol", p, dist(["0.4", "0.6", "0"])).unwrap();
    h.respond("dave", p, "abstain", "0.5").unwrap();
    let effects = h.respond("erin", p, "abstain", "0.5").unwrap();
    assert_eq!(
        closed(&effects),
        Some((
            Status::Escalated,
            Some(Reason::Contested),
            CloseCause::AllResponded,
            None
        ))
    );
    let report = pool_of(&effects);
    assert_eq!(report.leader, None, "a tie has no leader");
    assert_eq!(report.pooled["acme"], report.pooled["globex"]);

    let decide = |h: &mut Harness, body: Value| {
        let mut body = body;
        body["proposal"] = json!(p);
        h.send("rita", MessageType::Decision, body)
    };
    let before = h.space.state_hash();
    for (body, kind) in [
        (json!({"decision": "approve"}), ErrorKind::Malformed),
        (
            json!({"decision": "approve", "option": "hooli"}),
            ErrorKind::Malformed,
        ),
        (
            json!({"decision": "reject", "option": "acme"}),
            ErrorKind::Malformed,
        ),
        (
            json!({"decision": "approve", "option": "Acme"}),
            ErrorKind::Malformed,
        ),
    ] {
        let err = decide(&mut h, body.clone()).unwrap_err();
        assert_eq!(err.kind, kind, "{body}: {}", err.message);
        assert_eq!(h.space.state_hash(), before, "{body} changed the state");
    }
    let effects = decide(&mut h, json!({"decision": "approve", "option": "globex"})).unwrap();
    assert!(effects.contains(&Effect::HumanResolved {
        proposal: p,
        status: Status::ApprovedByHuman,
        option: Some("globex".into()),
    }));
    assert_eq!(h.space.proposal(&p).unwrap().choice, Some(1));
}

#[test]
fn reviewers_agree_only_on_the_same_option() {
    // §7.1 with §15: two approvals of different options do not agree.
    let mut h = vendor_team(json!({}));
    h.person("rob", &["reviewer"]);
    h.person("rae", &["reviewer"]);
    let body = belief_body(&h, "critical", json!({"policy": {"reviewers_required": 2}}));
    let p = h.propose_with("alice", body).unwrap();
    for name in ["bob", "carol", "dave", "erin"] {
        believe(&mut h, name, p, dist(["1", "0", "0"])).unwrap();
    }
    // Critical stakes: a human decides even a unanimous pool.
    assert_eq!(h.status(&p), "escalated");
    let decide = |h: &mut Harness, who: &str, option: &str| {
        h.send(
            who,
            MessageType::Decision,
            json!({"proposal": p, "decision": "approve", "option": option}),
        )
    };
    decide(&mut h, "rita", "acme").unwrap();
    decide(&mut h, "rob", "globex").unwrap();
    assert_eq!(h.status(&p), "escalated");
    let effects = decide(&mut h, "rae", "acme").unwrap();
    assert!(effects.iter().any(|e| matches!(
        e,
        Effect::HumanResolved { option: Some(o), .. } if o == "acme"
    )));
}

#[test]
fn the_threshold_is_hit_exactly_and_missed_by_one_millionth() {
    // §15.3 with the linear pool (exact rationals): medium stakes, 0.7.
    // Four equal members answer; the pooled acme is the mean of theirs.
    let linear = json!({"policies": {
        "low": {"pool": "linear", "approve_margin": "0.1", "reject_margin": "0.1", "quorum": "0.3", "min_confidence": "0.2", "human_required": false, "proposer_counts": true, "reviewers_required": 1, "weighting": "log_odds", "pool_threshold": "0.6"},
        "medium": {"pool": "linear", "approve_margin": "0.2", "reject_margin": "0.2", "quorum": "0.5", "min_confidence": "0.3", "human_required": false, "proposer_counts": true, "reviewers_required": 1, "weighting": "log_odds", "pool_threshold": "0.7"},
        "high": {"pool": "linear", "approve_margin": "0.4", "reject_margin": "0.2", "quorum": "0.6", "min_confidence": "0.4", "human_required": false, "proposer_counts": true, "reviewers_required": 1, "weighting": "log_odds", "pool_threshold": "0.8"},
        "critical": {"pool": "linear", "approve_margin": "0.4", "reject_margin": "0.2", "quorum": "0.6", "min_confidence": "0.4", "human_required": true, "proposer_counts": true, "reviewers_required": 1, "weighting": "log_odds", "pool_threshold": "0.8"}
    }});
    for (last, status) in [("0.4", Status::Approved), ("0.399996", Status::Escalated)] {
        let mut h = vendor_team(linear.clone());
        let p = propose(&mut h, "medium");
        // (0.8 + 0.8 + 0.8 + x) / 4 ≥ 0.7 ⇔ x ≥ 0.4; one millionth of the
        // pool is four millionths of one answer.
        believe(&mut h, "bob", p, dist(["0.8", "0.2", "0"])).unwrap();
        believe(&mut h, "carol", p, dist(["0.8", "0", "0.2"])).unwrap();
        believe(&mut h, "dave", p, dist(["0.8", "0.1", "0.1"])).unwrap();
        let rest = format!("{:.6}", 1.0 - last.parse::<f64>().unwrap());
        let effects = believe(&mut h, "erin", p, dist([last, &rest, "0"])).unwrap();
        let (got, ..) = closed(&effects).unwrap();
        assert_eq!(got, status, "erin at {last}");
        let report = pool_of(&effects);
        let expected = if status == Status::Approved {
            "0.7"
        } else {
            "0.699999"
        };
        assert_eq!(report.pooled["acme"].to_string(), expected);
    }
}

#[test]
fn too_little_of_the_electorate_is_no_quorum() {
    // §15.3 check 2: only bob answers (influence 0.5 of 2.5 < 0.5 × 2.5).
    let mut h = vendor_team(json!({}));
    let p = propose(&mut h, "medium");
    believe(&mut h, "bob", p, dist(["1", "0", "0"])).unwrap();
    let effects = h.advance(10 * MINUTE);
    assert_eq!(
        closed(&effects),
        Some((
            Status::Escalated,
            Some(Reason::NoQuorum),
            CloseCause::Deadline,
            None
        ))
    );
}

#[test]
fn the_proposer_may_state_its_own_distribution() {
    // §15.1: with proposer_counts, the proposer's distribution counts like
    // a response (and is scored at the outcome).
    let mut h = vendor_team(json!({}));
    let body = belief_body(
        &h,
        "low",
        json!({"distribution": {"acme": "0.2", "globex": "0.8", "initech": "0"}}),
    );
    let p = h.propose_with("alice", body).unwrap();
    let record = h.space.proposal(&p).unwrap();
    assert_eq!(
        record.proposer_distribution,
        Some(vec![200_000, 800_000, 0])
    );
    assert_eq!(record.tally.voted, 500_000_000_000, "alice's influence");
    // Without proposer_counts it does not count.
    let body = belief_body(
        &h,
        "low",
        json!({"distribution": {"acme": "0.2", "globex": "0.8", "initech": "0"},
               "policy": {"proposer_counts": false}, "action": {"kind": "choose_vendor", "summary": "again"}}),
    );
    let q = h.propose_with("alice", body).unwrap();
    assert_eq!(h.space.proposal(&q).unwrap().tally.voted, 0);
}

#[test]
fn malformed_belief_messages_are_refused_and_change_nothing() {
    // §4.4–§4.7 and §15: every shape fault, each with its kind.
    let mut h = vendor_team(json!({}));
    let p = propose(&mut h, "medium");
    let vote = h
        .propose("alice", "vendor.choice", "medium", "0.9")
        .unwrap();
    let base = belief_body(&h, "medium", json!({}));
    let with = |patch: Value| {
        let mut b = base.clone();
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                b.as_object_mut().unwrap().remove(k);
            } else {
                b[k] = v.clone();
            }
        }
        b
    };
    let seventeen: Vec<String> = (0..17).map(|i| format!("o{i}")).collect();
    let proposals = [
        (
            "belief without options",
            with(json!({"options": null})),
            ErrorKind::Malformed,
        ),
        (
            "one option",
            with(json!({"options": ["acme"]})),
            ErrorKind::Malformed,
        ),
        (
            "seventeen options",
            with(json!({"options": seventeen})),
            ErrorKind::TooLarge,
        ),
        (
            "repeated option",
            with(json!({"options": ["acme", "acme"]})),
            ErrorKind::Malformed,
        ),
        (
            "upper-case option",
            with(json!({"options": ["Acme", "globex"]})),
            ErrorKind::Malformed,
        ),
        (
            "empty option",
            with(json!({"options": ["", "globex"]})),
            ErrorKind::Malformed,
        ),
        (
            "options on a vote",
            with(json!({"method": null})),
            ErrorKind::Malformed,
        ),
        (
            "unknown method",
            with(json!({"method": "auction"})),
            ErrorKind::Malformed,
        ),
        (
            "proposer distribution missing an option",
            with(json!({"distribution": {"acme": "1", "globex": "0"}})),
            ErrorKind::Malformed,
        ),
        (
            "proposer distribution summing to 0.9",
            with(json!({"distribution": {"acme": "0.5", "globex": "0.4", "initech": "0"}})),
            ErrorKind::OutOfRange,
        ),
        (
            "a pool override",
            with(json!({"policy": {"pool": "linear"}})),
            ErrorKind::PolicyViolation,
        ),
        (
            "a lower pool threshold",
            with(json!({"policy": {"pool_threshold": "0.6"}})),
            ErrorKind::PolicyViolation,
        ),
    ];
    let respond = |proposal: Digest, patch: Value| {
        let mut b = json!({"proposal": proposal});
        for (k, v) in patch.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    let responses = [
        (
            "a sum of 0.999999",
            respond(p, json!({"distribution": dist(["0.5", "0.499999", "0"])})),
            ErrorKind::OutOfRange,
        ),
        (
            "a sum of 1.000001",
            respond(p, json!({"distribution": dist(["0.5", "0.500001", "0"])})),
            ErrorKind::OutOfRange,
        ),
        (
            "a probability above 1",
            respond(p, json!({"distribution": dist(["1.5", "0", "0"])})),
            ErrorKind::OutOfRange,
        ),
        (
            "a negative probability",
            respond(p, json!({"distribution": dist(["-0.5", "1.5", "0"])})),
            ErrorKind::OutOfRange,
        ),
        (
            "a probability as a number",
            respond(
                p,
                json!({"distribution": {"acme": 1, "globex": "0", "initech": "0"}}),
            ),
            ErrorKind::Malformed,
        ),
        (
            "a missing option",
            respond(p, json!({"distribution": {"acme": "0.5", "globex": "0.5"}})),
            ErrorKind::Malformed,
        ),
        (
            "an unknown option",
            respond(
                p,
                json!({"distribution": {"acme": "0.5", "globex": "0.5", "initech": "0", "hooli": "0"}}),
            ),
            ErrorKind::Malformed,
        ),
        (
            "a stance with a distribution",
            respond(
                p,
                json!({"stance": "endorse", "distribution": dist(["1", "0", "0"])}),
            ),
            ErrorKind::Malformed,
        ),
        (
            "an endorsement of a belief proposal",
            respond(p, json!({"stance": "endorse", "confidence": "0.9"})),
            ErrorKind::Malformed,
        ),
        (
            "neither stance nor distribution",
            respond(p, json!({})),
            ErrorKind::Malformed,
        ),
        (
            "a stance without a confidence",
            respond(p, json!({"stance": "abstain"})),
            ErrorKind::Malformed,
        ),
        (
            "a distribution on a vote",
            respond(vote, json!({"distribution": {"acme": "1", "globex": "0"}})),
            ErrorKind::Malformed,
        ),
    ];
    let outcomes = [
        (
            "a result for a belief proposal",
            json!({"proposal": p, "result": "success"}),
            ErrorKind::InvalidState,
        ),
        (
            "an option and a result",
            json!({"proposal": p, "option": "acme", "result": "success"}),
            ErrorKind::Malformed,
        ),
    ];
    let cases = proposals
        .into_iter()
        .map(|(w, b, k)| (w, "alice", MessageType::Proposal, b, k))
        .chain(
            responses
                .into_iter()
                .map(|(w, b, k)| (w, "bob", MessageType::Response, b, k)),
        )
        .chain(
            outcomes
                .into_iter()
                .map(|(w, b, k)| (w, "oscar", MessageType::Outcome, b, k)),
        );
    for (what, signer, kind, body, expected) in cases {
        let before = h.space.state_hash();
        let entries = h.entries.len();
        let err = h.send(signer, kind, body).expect_err(what);
        assert_eq!(err.kind, expected, "{what}: {}", err.message);
        assert_eq!(h.space.state_hash(), before, "{what} changed the state");
        assert_eq!(h.entries.len(), entries, "{what} was logged");
    }
    // After all that, bob can still answer.
    believe(&mut h, "bob", p, dist(["1", "0", "0"])).unwrap();
}

#[test]
fn the_outcome_moves_trust_by_the_quadratic_score() {
    // §15.4: the option that turned out right scores each distribution
    // 1 − Σ (p − y)²; trust moves toward it as in §8.
    let mut h = vendor_team(json!({}));
    let body = belief_body(
        &h,
        "low",
        json!({"distribution": {"acme": "0.5", "globex": "0.5", "initech": "0"}}),
    );
    let p = h.propose_with("alice", body).unwrap();
    believe(&mut h, "bob", p, dist(["1", "0", "0"])).unwrap();
    believe(&mut h, "carol", p, dist(["0", "1", "0"])).unwrap();
    believe(&mut h, "dave", p, dist(["0.6", "0.3", "0.1"])).unwrap();
    h.respond("erin", p, "abstain", "0.9").unwrap();
    assert_ne!(h.status(&p), "open");
    // An outcome of a vote's shape is refused; so is a vote's outcome
    // naming an option.
    let vote = h.propose("alice", "vendor.choice", "low", "0.9").unwrap();
    h.advance(10 * MINUTE);
    for (proposal, body) in [
        (p, json!({"result": "failure"})),
        (p, json!({"score": "0.5"})),
        (p, json!({"option": "hooli"})),
        (vote, json!({"option": "acme"})),
    ] {
        let mut b = body.clone();
        b["proposal"] = json!(proposal);
        let err = h.send("oscar", MessageType::Outcome, b).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Malformed, "{body}");
    }
    let effects = h
        .send(
            "oscar",
            MessageType::Outcome,
            json!({"proposal": p, "option": "acme"}),
        )
        .unwrap();
    assert!(effects.contains(&Effect::OutcomeRecorded {
        proposal: p,
        score: None,
        option: Some("acme".into())
    }));
    // g: alice 1 − (0.25 + 0.25) = 0.5 → 0.5; bob 1 → 0.525;
    // carol 1 − 2 = −1 → 0.425; dave 1 − (0.16 + 0.09 + 0.01) = 0.74 → 0.512.
    assert_eq!(h.trust("alice", "vendor.choice"), "0.5");
    assert_eq!(h.trust("bob", "vendor.choice"), "0.525");
    assert_eq!(h.trust("carol", "vendor.choice"), "0.425");
    assert_eq!(h.trust("dave", "vendor.choice"), "0.512");
    // Abstaining is never scored.
    let updated: Vec<_> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::TrustUpdated { agent, .. } => Some(agent.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(updated.len(), 4);
    assert!(!updated.contains(&h.id("erin")));
}

#[test]
fn trust_shapes_the_next_pool() {
    // §15.1: a member's pool weight is its log-odds weight factor
    // a·(2·min(t, 0.65))²: after outcomes, the agent that was right counts
    // more in the next belief proposal, the one that was wrong less.
    let mut h = vendor_team(json!({}));
    for _ in 0..6 {
        h.advance(1);
        let p = propose(&mut h, "low");
        believe(&mut h, "bob", p, dist(["1", "0", "0"])).unwrap();
        believe(&mut h, "carol", p, dist(["0", "1", "0"])).unwrap();
        h.respond("dave", p, "abstain", "0.5").unwrap();
        h.respond("erin", p, "abstain", "0.5").unwrap();
        h.send(
            "oscar",
            MessageType::Outcome,
            json!({"proposal": p, "option": "acme"}),
        )
        .unwrap();
    }
    h.advance(1);
    let p = propose(&mut h, "low");
    believe(&mut h, "bob", p, dist(["0.6", "0.4", "0"])).unwrap();
    let effects = believe(&mut h, "carol", p, dist(["0.4", "0.6", "0"])).unwrap();
    // Mirror images: equal weights would tie; bob's trust breaks it.
    assert_eq!(pool_of(&effects).leader.as_deref(), Some("acme"));
}

#[test]
fn a_belief_log_is_re_derived_by_the_audit_and_by_replicas() {
    // §10.3: the export of a space with belief proposals verifies, and a
    // replica applying its entries reaches the same state.
    let mut h = vendor_team(json!({}));
    let p = propose(&mut h, "medium");
    believe(&mut h, "bob", p, dist(["0.8", "0.1", "0.1"])).unwrap();
    believe(&mut h, "carol", p, dist(["0.1", "0.8", "0.1"])).unwrap();
    h.advance(10 * MINUTE);
    h.send(
        "rita",
        MessageType::Decision,
        json!({"proposal": p, "decision": "approve", "option": "globex"}),
    )
    .unwrap();
    h.send(
        "oscar",
        MessageType::Outcome,
        json!({"proposal": p, "option": "globex"}),
    )
    .unwrap();
    let summary = audit::verify(h.lines.iter().map(String::as_str)).unwrap();
    assert_eq!(summary.proposals.get("approved_by_human"), Some(&1));
    assert_eq!(summary.state_hash, h.space.state_hash());
    let mut replica = Space::new();
    for entry in &h.entries {
        assert_eq!(replica.apply(entry).unwrap().rejected, None);
    }
    assert_eq!(replica.state_hash(), h.space.state_hash());
    let restored = Space::from_snapshot(&h.space.to_snapshot()).unwrap();
    assert_eq!(restored.state_hash(), h.space.state_hash());
    // A recorded pool that was altered is caught.
    let tampered: Vec<String> = h
        .lines
        .iter()
        .map(|l| l.replace("\"leader\":\"acme\"", "\"leader\":\"globex\""))
        .collect();
    assert_ne!(tampered, h.lines);
    let err = audit::verify(tampered.iter().map(String::as_str)).unwrap_err();
    assert!(
        matches!(err, audit::AuditError::EffectsMismatch { .. }),
        "{err}"
    );
}
