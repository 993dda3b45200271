//! Sealed (commit–reveal) responses through the real state machine
//! (docs/PROTOCOL.md §18): commitments in the commit phase, reveals after
//! it, and every way to cheat the two phases.

mod common;

use common::{Harness, MINUTE};
use serde_json::{Value, json};
use synod_core::audit;
use synod_core::package::DecisionPackage;
use synod_core::scenario;
use synod_core::sealed::{answer_of, commitment};
use synod_core::space::{CloseCause, Effect};
use synod_core::wire::MessageType;
use synod_core::{Digest, ErrorKind, Rejection, Space, Status};

/// A closed space: alice proposes; bob, carol, dave and erin answer (all
/// authority 1 in `ops.*`, trust at the prior 0.5); rita reviews; oscar
/// reports outcomes.
fn team() -> Harness {
    team_in(Harness::closed())
}

fn team_in(mut h: Harness) -> Harness {
    for name in ["alice", "bob", "carol", "dave", "erin"] {
        h.agent(name, &[("ops.*", "1")]);
    }
    h.person("rita", &["reviewer"]);
    h.person("oscar", &["oracle"]);
    h
}

/// A sealed medium-stakes vote: commit for 5 minutes, reveal for 5 more.
fn sealed_body(h: &Harness, confidence: &str) -> Value {
    json!({
        "domain": "ops.deploy",
        "action": {"kind": "deploy", "summary": "Deploy build 42"},
        "confidence": confidence,
        "stakes": "medium",
        "deadline": h.time + 10 * MINUTE,
        "sealed": {"commit_deadline": h.time + 5 * MINUTE},
    })
}

fn propose(h: &mut Harness) -> Digest {
    let body = sealed_body(h, "0.6");
    h.propose_with("alice", body).unwrap()
}

/// The salt an agent uses: 16 bytes derived from its name (any 16+ random
/// bytes would do).
fn salt_of(agent: &str) -> String {
    Digest::of(format!("salt of {agent}").as_bytes()).to_hex()[..32].to_string()
}

fn answer(stance: &str, confidence: &str, agent: &str) -> Value {
    json!({"stance": stance, "confidence": confidence, "reasoning": format!("{agent} thinks so")})
}

/// The commitment `agent` makes to `answer` on `proposal` with `salt`.
fn seal(h: &Harness, agent: &str, proposal: Digest, answer: &Value, salt: &str) -> Digest {
    let salt = (0..salt.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&salt[i..i + 2], 16).unwrap())
        .collect::<Vec<u8>>();
    commitment(&proposal, &h.id(agent), &salt, answer)
}

fn commit_to(
    h: &mut Harness,
    agent: &str,
    proposal: Digest,
    commitment: Digest,
) -> Result<Vec<Effect>, Rejection> {
    h.send(
        agent,
        MessageType::Response,
        json!({"proposal": proposal, "commitment": commitment}),
    )
}

fn commit(
    h: &mut Harness,
    agent: &str,
    proposal: Digest,
    stance: &str,
    confidence: &str,
) -> Result<Vec<Effect>, Rejection> {
    let c = seal(
        h,
        agent,
        proposal,
        &answer(stance, confidence, agent),
        &salt_of(agent),
    );
    commit_to(h, agent, proposal, c)
}

fn reveal_with(
    h: &mut Harness,
    agent: &str,
    proposal: Digest,
    answer: &Value,
    salt: &str,
) -> Result<Vec<Effect>, Rejection> {
    let mut body = answer.clone();
    body["proposal"] = json!(proposal);
    body["salt"] = json!(salt);
    h.send(agent, MessageType::Response, body)
}

fn reveal(
    h: &mut Harness,
    agent: &str,
    proposal: Digest,
    stance: &str,
    confidence: &str,
) -> Result<Vec<Effect>, Rejection> {
    reveal_with(
        h,
        agent,
        proposal,
        &answer(stance, confidence, agent),
        &salt_of(agent),
    )
}

fn kind(r: Result<Vec<Effect>, Rejection>) -> ErrorKind {
    r.expect_err("refused").kind
}

fn closed(effects: &[Effect]) -> Option<(Status, CloseCause)> {
    effects.iter().find_map(|e| match e {
        Effect::ProposalClosed { status, cause, .. } => Some((*status, *cause)),
        _ => None,
    })
}

/// Refuses `send` and checks that the state did not move.
fn refused(
    h: &mut Harness,
    what: &str,
    send: impl FnOnce(&mut Harness) -> Result<Vec<Effect>, Rejection>,
) -> ErrorKind {
    let before = h.space.state_hash();
    let head = h.space.head();
    let k = kind(send(h));
    assert_eq!(h.space.state_hash(), before, "{what} changed the state");
    assert_eq!(h.space.head(), head, "{what} was appended");
    k
}

#[test]
fn commitments_then_reveals_decide_like_an_open_vote() {
    let mut h = team();
    let p = propose(&mut h);
    let votes = [
        ("bob", "endorse", "0.9"),
        ("carol", "endorse", "0.8"),
        ("dave", "challenge", "0.7"),
        ("erin", "endorse", "0.6"),
    ];
    for (agent, stance, c) in votes {
        let effects = commit(&mut h, agent, p, stance, c).unwrap();
        assert_eq!(
            effects,
            vec![Effect::Committed {
                proposal: p,
                agent: h.id(agent)
            }]
        );
    }
    // Every member committed, but nothing is known: the proposal stays open.
    assert_eq!(h.status(&p), "open");
    let effects = h.advance(5 * MINUTE);
    assert_eq!(
        effects,
        vec![Effect::RevealOpened {
            proposal: p,
            committed: 4
        }]
    );
    let mut last = Vec::new();
    for (agent, stance, c) in votes {
        last = reveal(&mut h, agent, p, stance, c).unwrap();
        if closed(&last).is_some() {
            break;
        }
    }
    let status = h.space.proposal(&p).unwrap().status;
    // The same answers, resolved independently by `synod resolve`'s
    // scenario code with every response in.
    let responses: Vec<Value> = votes
        .iter()
        .map(|(a, s, c)| json!({"agent": a, "stance": s, "confidence": c}))
        .collect();
    let members: Vec<Value> = ["alice", "bob", "carol", "dave", "erin"]
        .iter()
        .map(|a| json!({"agent": a, "authority": "1", "trust": "0.5"}))
        .collect();
    let expected = scenario::run(
        &json!({"stakes": "medium", "electorate": members, "proposer": "alice",
                "proposer_confidence": "0.6", "responses": responses, "deadline_passed": true})
        .to_string(),
    )
    .unwrap();
    assert_eq!(status.as_str(), expected.status);
    assert_eq!(
        h.space
            .proposal(&p)
            .unwrap()
            .tally
            .to_decimal(h.space.proposal(&p).unwrap().policy.weighting),
        expected.tally
    );
    assert!(closed(&last).is_some());
}

#[test]
fn no_early_finality_and_no_stance_during_the_commit_phase() {
    // Unsealed (linear weighting), three confident endorsements close this
    // proposal early.
    let mut open = team_in(Harness::closed_linear());
    let body = {
        let mut b = sealed_body(&open, "1");
        b.as_object_mut().unwrap().remove("sealed");
        b
    };
    let q = open.propose_with("alice", body).unwrap();
    let mut early = None;
    for agent in ["bob", "carol", "dave"] {
        let effects = open.respond(agent, q, "endorse", "1").unwrap();
        if let Some(c) = closed(&effects) {
            early = Some(c);
            break;
        }
    }
    assert_eq!(early, Some((Status::Approved, CloseCause::Early)));
    // Sealed, the same answers close nothing before the commit deadline,
    // and no effect carries a stance or a tally.
    let mut h = team_in(Harness::closed_linear());
    let p = propose_confident(&mut h);
    for agent in ["bob", "carol", "dave", "erin"] {
        let effects = commit(&mut h, agent, p, "endorse", "1").unwrap();
        assert!(closed(&effects).is_none());
        assert!(!serde_json::to_string(&effects).unwrap().contains("endorse"));
    }
    h.time += 5 * MINUTE - 1;
    let effects = h.advance(0);
    assert!(effects.is_empty(), "{effects:?}");
    assert_eq!(h.status(&p), "open");
    let package = DecisionPackage::build(&h.space, h.space.proposal(&p).unwrap());
    let sealed = package.sealed.as_ref().unwrap();
    assert_eq!(sealed.phase, "commit");
    assert_eq!(sealed.committed.len(), 4);
    assert_eq!(
        package.positions.len(),
        1,
        "only the proposer's own position"
    );
    // After it, the reveals count and early finality applies again.
    h.advance(1);
    reveal(&mut h, "bob", p, "endorse", "1").unwrap();
    let effects = reveal(&mut h, "carol", p, "endorse", "1").unwrap();
    assert_eq!(
        closed(&effects),
        Some((Status::Approved, CloseCause::Early))
    );
    // A late revealer is told the proposal closed; its commitment counted
    // as an abstention.
    assert_eq!(
        kind(reveal(&mut h, "dave", p, "endorse", "1")),
        ErrorKind::ProposalClosed
    );
}

fn propose_confident(h: &mut Harness) -> Digest {
    let body = sealed_body(h, "1");
    h.propose_with("alice", body).unwrap()
}

#[test]
fn a_reveal_that_does_not_match_its_commitment_is_refused() {
    let mut h = team();
    let p = propose(&mut h);
    commit(&mut h, "bob", p, "endorse", "0.9").unwrap();
    h.advance(5 * MINUTE);
    // Another stance, another confidence, other reasoning, another salt:
    // each is a different answer from the one committed.
    let salt = salt_of("bob");
    for (what, a, s) in [
        ("stance", answer("challenge", "0.9", "bob"), salt.clone()),
        ("confidence", answer("endorse", "0.95", "bob"), salt.clone()),
        (
            "confidence as 0.90",
            json!({"stance": "endorse", "confidence": "0.90", "reasoning": "bob thinks so"}),
            salt.clone(),
        ),
        (
            "reasoning",
            json!({"stance": "endorse", "confidence": "0.9", "reasoning": "changed my mind"}),
            salt.clone(),
        ),
        (
            "no reasoning",
            json!({"stance": "endorse", "confidence": "0.9"}),
            salt.clone(),
        ),
        ("salt", answer("endorse", "0.9", "bob"), salt_of("carol")),
    ] {
        assert_eq!(
            refused(&mut h, what, |h| reveal_with(h, "bob", p, &a, &s)),
            ErrorKind::BadReveal,
            "{what}"
        );
    }
    // The refusals changed nothing: the right reveal still counts.
    let effects = reveal(&mut h, "bob", p, "endorse", "0.9").unwrap();
    assert!(matches!(effects[0], Effect::ResponseCounted { .. }));
    assert_eq!(
        kind(reveal(&mut h, "bob", p, "endorse", "0.9")),
        ErrorKind::Duplicate
    );
}

#[test]
fn phases_are_enforced() {
    let mut h = team();
    let p = propose(&mut h);
    commit(&mut h, "bob", p, "endorse", "0.9").unwrap();
    // A reveal before the commit deadline, even one millisecond before.
    h.time += 5 * MINUTE - 1;
    assert_eq!(
        refused(&mut h, "early reveal", |h| reveal(
            h, "bob", p, "endorse", "0.9"
        )),
        ErrorKind::WrongPhase
    );
    // A second commitment from the same member.
    assert_eq!(
        refused(&mut h, "second commitment", |h| commit(
            h,
            "bob",
            p,
            "challenge",
            "0.9"
        )),
        ErrorKind::Duplicate
    );
    commit(&mut h, "carol", p, "endorse", "0.5").unwrap();
    // A commitment at the commit deadline is too late (the entry's own
    // time ends the phase before its message is looked at).
    h.time += 1;
    assert_eq!(
        refused(&mut h, "late commitment", |h| commit(
            h, "dave", p, "endorse", "0.9"
        )),
        ErrorKind::WrongPhase
    );
    // A reveal from a member that never committed.
    assert_eq!(
        refused(&mut h, "reveal without commitment", |h| reveal(
            h, "dave", p, "endorse", "0.9"
        )),
        ErrorKind::NotEligible
    );
    // An answer without a salt, on a sealed proposal.
    assert_eq!(
        refused(&mut h, "unsealed answer", |h| h
            .respond("erin", p, "endorse", "0.9")),
        ErrorKind::Malformed
    );
    reveal(&mut h, "bob", p, "endorse", "0.9").unwrap();
    // After the deadline, a reveal is too late.
    h.time += 5 * MINUTE;
    assert_eq!(
        kind(reveal(&mut h, "carol", p, "endorse", "0.5")),
        ErrorKind::ProposalClosed
    );
}

#[test]
fn a_commitment_cannot_be_copied_or_replayed() {
    let mut h = team();
    let p = propose(&mut h);
    let q = {
        let mut body = sealed_body(&h, "0.6");
        body["action"]["summary"] = json!("Deploy build 43");
        h.propose_with("alice", body).unwrap()
    };
    let bobs = answer("endorse", "0.9", "bob");
    let bobs_commitment = seal(&h, "bob", p, &bobs, &salt_of("bob"));
    commit_to(&mut h, "bob", p, bobs_commitment).unwrap();
    // carol copies bob's commitment on p, and on q.
    commit_to(&mut h, "carol", p, bobs_commitment).unwrap();
    commit_to(&mut h, "bob", q, bobs_commitment).unwrap();
    // dave commits honestly.
    commit(&mut h, "dave", p, "challenge", "0.4").unwrap();
    h.advance(5 * MINUTE);
    reveal(&mut h, "bob", p, "endorse", "0.9").unwrap();
    // carol replays bob's answer and salt under her own signature: the
    // commitment binds bob's id, so it does not open for her.
    assert_eq!(
        refused(&mut h, "copied reveal", |h| reveal_with(
            h,
            "carol",
            p,
            &bobs,
            &salt_of("bob")
        )),
        ErrorKind::BadReveal
    );
    // dave replays bob's reveal as his own: it does not open his commitment.
    assert_eq!(
        refused(&mut h, "replayed reveal", |h| reveal_with(
            h,
            "dave",
            p,
            &bobs,
            &salt_of("bob")
        )),
        ErrorKind::BadReveal
    );
    // bob's commitment for p does not open on q, which it was copied to.
    assert_eq!(
        refused(&mut h, "other proposal", |h| reveal_with(
            h,
            "bob",
            q,
            &bobs,
            &salt_of("bob")
        )),
        ErrorKind::BadReveal
    );
    // Replaying bob's very reveal message is a duplicate.
    let replay = h.entries.last().unwrap().clone();
    let synod_core::Payload::Message(m) = replay.payload else {
        panic!("a message")
    };
    assert_eq!(kind(h.append(m)), ErrorKind::Duplicate);
}

#[test]
fn malformed_sealed_messages_are_refused_and_change_nothing() {
    let mut h = team();
    let p = propose(&mut h);
    let plain = {
        let mut b = sealed_body(&h, "0.6");
        b.as_object_mut().unwrap().remove("sealed");
        b["action"]["summary"] = json!("An open vote");
        h.propose_with("alice", b).unwrap()
    };
    let c = seal(
        &h,
        "bob",
        p,
        &answer("endorse", "0.9", "bob"),
        &salt_of("bob"),
    );
    let cases: Vec<(&str, Value, ErrorKind)> = vec![
        (
            "commitment with a stance",
            json!({"proposal": p, "commitment": c, "stance": "endorse", "confidence": "0.9"}),
            ErrorKind::Malformed,
        ),
        (
            "commitment with reasoning",
            json!({"proposal": p, "commitment": c, "reasoning": "I endorse"}),
            ErrorKind::Malformed,
        ),
        (
            "commitment with a salt",
            json!({"proposal": p, "commitment": c, "salt": salt_of("bob")}),
            ErrorKind::Malformed,
        ),
        (
            "commitment not a digest",
            json!({"proposal": p, "commitment": "abc"}),
            ErrorKind::Malformed,
        ),
        (
            "commitment to an open vote",
            json!({"proposal": plain, "commitment": c}),
            ErrorKind::Malformed,
        ),
        (
            "salt on an open vote",
            json!({"proposal": plain, "stance": "endorse", "confidence": "0.9", "salt": salt_of("bob")}),
            ErrorKind::Malformed,
        ),
        (
            "salt of 15 bytes",
            json!({"proposal": p, "stance": "endorse", "confidence": "0.9", "salt": "00".repeat(15)}),
            ErrorKind::Malformed,
        ),
        (
            "salt of 65 bytes",
            json!({"proposal": p, "stance": "endorse", "confidence": "0.9", "salt": "00".repeat(65)}),
            ErrorKind::Malformed,
        ),
        (
            "salt in upper case",
            json!({"proposal": p, "stance": "endorse", "confidence": "0.9", "salt": "AB".repeat(16)}),
            ErrorKind::Malformed,
        ),
        (
            "salt of odd length",
            json!({"proposal": p, "stance": "endorse", "confidence": "0.9", "salt": "0".repeat(33)}),
            ErrorKind::Malformed,
        ),
    ];
    for (what, body, expected) in cases {
        assert_eq!(
            refused(&mut h, what, |h| h.send("bob", MessageType::Response, body)),
            expected,
            "{what}"
        );
    }
    // Proposals: the commit deadline within (log time, deadline).
    for (what, commit_deadline) in [
        ("commit deadline at log time", h.time),
        ("commit deadline at the deadline", h.time + 10 * MINUTE),
        ("commit deadline after the deadline", h.time + 11 * MINUTE),
    ] {
        let mut body = sealed_body(&h, "0.6");
        body["sealed"] = json!({"commit_deadline": commit_deadline});
        assert_eq!(
            refused(&mut h, what, |h| h
                .propose_with("alice", body)
                .map(|_| vec![])),
            ErrorKind::BadDeadline,
            "{what}"
        );
    }
    let mut body = sealed_body(&h, "0.6");
    body["sealed"] =
        json!({"commit_deadline": h.time + MINUTE, "reveal_deadline": h.time + 2 * MINUTE});
    assert_eq!(
        refused(&mut h, "unknown sealed member", |h| h
            .propose_with("alice", body)
            .map(|_| vec![])),
        ErrorKind::Malformed
    );
    // A 16-byte and a 64-byte salt are fine.
    for (agent, salt) in [("bob", "ab".repeat(16)), ("carol", "cd".repeat(64))] {
        let a = answer("endorse", "0.9", agent);
        let c = seal(&h, agent, p, &a, &salt);
        commit_to(&mut h, agent, p, c).unwrap();
    }
    h.advance(5 * MINUTE);
    reveal_with(
        &mut h,
        "bob",
        p,
        &answer("endorse", "0.9", "bob"),
        &"ab".repeat(16),
    )
    .unwrap();
    reveal_with(
        &mut h,
        "carol",
        p,
        &answer("endorse", "0.9", "carol"),
        &"cd".repeat(64),
    )
    .unwrap();
}

#[test]
fn an_unrevealed_commitment_is_an_abstention() {
    let mut h = team();
    let p = propose(&mut h);
    commit(&mut h, "bob", p, "endorse", "0.9").unwrap();
    commit(&mut h, "carol", p, "challenge", "0.9").unwrap();
    commit(&mut h, "dave", p, "challenge", "0.8").unwrap();
    h.advance(5 * MINUTE);
    reveal(&mut h, "bob", p, "endorse", "0.9").unwrap();
    reveal(&mut h, "dave", p, "challenge", "0.8").unwrap();
    // carol keeps her answer to herself; the deadline closes the proposal.
    let effects = h.advance(5 * MINUTE);
    let (status, cause) = closed(&effects).unwrap();
    assert_eq!(cause, CloseCause::Deadline);
    let record = h.space.proposal(&p).unwrap();
    assert_eq!(record.responses.len(), 2);
    let package = DecisionPackage::build(&h.space, record);
    assert_eq!(package.sealed.unwrap().unrevealed, vec![h.id("carol")]);
    if status == Status::Escalated {
        h.decide("rita", p, "approve").unwrap();
    }
    // carol took part: she may not report the outcome; oscar may, and it
    // scores the proposer and the two reveals only.
    assert_eq!(kind(h.outcome("carol", p, "success")), ErrorKind::WrongRole);
    h.grant("carol", &[("ops.*", "1")], &["agent", "oracle"]);
    assert_eq!(
        kind(h.outcome("carol", p, "success")),
        ErrorKind::NotEligible
    );
    let effects = h.outcome("oscar", p, "success").unwrap();
    let scored: Vec<_> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::TrustUpdated { agent, .. } => Some(agent.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(scored, vec![h.id("alice"), h.id("bob"), h.id("dave")]);
}

#[test]
fn nobody_committing_closes_at_the_commit_deadline() {
    let mut h = team();
    let p = propose(&mut h);
    // A reviewer's decision in the entry at the commit deadline is checked
    // against the proposal as that entry's time closes it.
    h.time += 5 * MINUTE;
    h.decide("rita", p, "reject").unwrap();
    let effects = h.space.proposal(&p).unwrap();
    assert_eq!(effects.status, Status::RejectedByHuman);
    assert_eq!(effects.closure.unwrap().cause, CloseCause::AllResponded);
    let opened_then_closed: Vec<&str> = h
        .lines
        .last()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            v["effects"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["type"].as_str().unwrap().to_string().leak() as &str)
                .collect()
        })
        .unwrap();
    assert_eq!(
        opened_then_closed,
        [
            "reveal_opened",
            "proposal_closed",
            "human_decided",
            "human_resolved"
        ]
    );
    // A replica applying the same entries agrees: the decision was checked
    // against the state the entry's time produces.
    let mut replica = Space::new();
    for entry in &h.entries {
        assert_eq!(replica.apply(entry).unwrap().rejected, None);
    }
    assert_eq!(replica.state_hash(), h.space.state_hash());
    // The tick a sequencer appends comes at the commit deadline.
    let mut g = team();
    let q = propose(&mut g);
    let commit_deadline = g.time + 5 * MINUTE;
    assert_eq!(g.space.next_deadline(), Some(commit_deadline));
    commit(&mut g, "bob", q, "endorse", "0.9").unwrap();
    g.advance(5 * MINUTE);
    assert_eq!(g.space.next_deadline(), Some(commit_deadline + 5 * MINUTE));
}

#[test]
fn sealed_belief_proposals_reveal_distributions() {
    let mut h = team();
    let mut body = sealed_body(&h, "1");
    body["method"] = json!("belief");
    body["options"] = json!(["blue", "green"]);
    let p = h.propose_with("alice", body).unwrap();
    let answers = [
        (
            "bob",
            json!({"distribution": {"blue": "0.9", "green": "0.1"}}),
        ),
        (
            "carol",
            json!({"distribution": {"blue": "0.8", "green": "0.2"}}),
        ),
        ("dave", json!({"stance": "abstain", "confidence": "0"})),
        (
            "erin",
            json!({"distribution": {"blue": "0.7", "green": "0.3"}}),
        ),
    ];
    for (agent, a) in &answers {
        let c = seal(&h, agent, p, a, &salt_of(agent));
        commit_to(&mut h, agent, p, c).unwrap();
    }
    h.advance(5 * MINUTE);
    let mut last = Vec::new();
    for (agent, a) in &answers {
        last = reveal_with(&mut h, agent, p, a, &salt_of(agent)).unwrap();
    }
    assert_eq!(
        closed(&last),
        Some((Status::Approved, CloseCause::AllResponded))
    );
    assert_eq!(h.space.proposal(&p).unwrap().choice, Some(0));
}

#[test]
fn a_sealed_log_is_re_derived_by_the_audit_and_by_replicas() {
    let mut h = team();
    let p = propose(&mut h);
    for (agent, stance, c) in [
        ("bob", "endorse", "0.9"),
        ("carol", "challenge", "0.7"),
        ("dave", "endorse", "0.6"),
    ] {
        commit(&mut h, agent, p, stance, c).unwrap();
    }
    let q = {
        let mut body = sealed_body(&h, "0.6");
        body["action"]["summary"] = json!("Deploy build 43");
        h.propose_with("alice", body).unwrap()
    };
    h.advance(5 * MINUTE);
    reveal(&mut h, "bob", p, "endorse", "0.9").unwrap();
    reveal(&mut h, "carol", p, "challenge", "0.7").unwrap();
    h.advance(5 * MINUTE);
    let summary = audit::verify(h.lines.iter().map(String::as_str)).unwrap();
    assert_eq!(summary.state_hash, h.space.state_hash());
    let mut replica = Space::new();
    for entry in &h.entries {
        assert_eq!(replica.apply(entry).unwrap().rejected, None);
    }
    assert_eq!(replica.state_hash(), h.space.state_hash());
    let restored = Space::from_snapshot(&h.space.to_snapshot()).unwrap();
    assert_eq!(restored.state_hash(), h.space.state_hash());
    assert_ne!(h.status(&q), "open");
    // A recorded commitment count that was altered is caught.
    let tampered: Vec<String> = h
        .lines
        .iter()
        .map(|l| l.replace("\"committed\":3", "\"committed\":2"))
        .collect();
    assert_ne!(tampered, h.lines);
    assert!(matches!(
        audit::verify(tampered.iter().map(String::as_str)).unwrap_err(),
        audit::AuditError::EffectsMismatch { .. }
    ));
    // An entry whose reveal does not open its commitment is refused by a
    // replica as by the sequencer.
    let answer_of_bob = answer_of(
        &json!({"proposal": p, "stance": "endorse", "confidence": "0.9", "salt": "00", "space": "x", "created_at": 1}),
    );
    assert_eq!(
        answer_of_bob,
        json!({"stance": "endorse", "confidence": "0.9"})
    );
}

#[test]
fn sealed_open_questions_reveal_answers() {
    // §18 with §19: the answer and its confidence are sealed together.
    let mut h = team();
    let mut body = sealed_body(&h, "1");
    body["method"] = json!("open");
    body["open"] = json!({"tolerance": "1"});
    let p = h.propose_with("alice", body).unwrap();
    let answers = [
        ("bob", json!({"answer": "12", "confidence": "0.8"})),
        ("carol", json!({"answer": "12.5", "confidence": "0.7"})),
        ("dave", json!({"answer": "30", "confidence": "0.6"})),
        ("erin", json!({"answer": "13", "confidence": "0.6"})),
    ];
    for (agent, a) in &answers {
        let c = seal(&h, agent, p, a, &salt_of(agent));
        commit_to(&mut h, agent, p, c).unwrap();
    }
    h.advance(5 * MINUTE);
    // Another spelling of the same number is another answer to the hash.
    assert_eq!(
        refused(&mut h, "respelled answer", |h| reveal_with(
            h,
            "bob",
            p,
            &json!({"answer": "12.0", "confidence": "0.8"}),
            &salt_of("bob")
        )),
        ErrorKind::BadReveal
    );
    let mut last = Vec::new();
    for (agent, a) in &answers {
        last = reveal_with(&mut h, agent, p, a, &salt_of(agent)).unwrap();
    }
    assert_eq!(
        closed(&last),
        Some((Status::Approved, CloseCause::AllResponded))
    );
    let record = h.space.proposal(&p).unwrap();
    assert_eq!(record.open.as_ref().unwrap().choice.as_deref(), Some("12"));
}

/// A tiny deterministic generator for the randomised test below.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

#[test]
fn random_sealed_histories_agree_between_sequencer_and_replica() {
    // Random commitments (some to other answers than revealed), reveals,
    // decisions and outcomes at random times around both deadlines, with
    // and without ticks: whatever the local sequencer accepts, a replica
    // applying its entries accepts identically and reaches the same state;
    // no answer or close ever comes before a proposal's commit deadline
    // (bar an electorate of the proposer alone); and every refusal is one
    // of the documented kinds.
    let (mut reveals, mut commitments, mut closes) = (0, 0, 0);
    let mut kinds: std::collections::BTreeMap<&str, u32> = Default::default();
    for seed in 0..60u64 {
        let mut rng = Lcg(seed);
        let mut h = team_in(if seed % 2 == 0 {
            Harness::closed()
        } else {
            Harness::closed_linear()
        });
        let mut proposals: Vec<(Digest, u64)> = Vec::new();
        let mut sealed: std::collections::BTreeMap<(Digest, &str), (&str, &str)> =
            Default::default();
        let agents = ["bob", "carol", "dave", "erin"];
        let stances = ["endorse", "challenge", "abstain"];
        for step in 0..120 {
            let open = proposals
                .iter()
                .filter(|(p, _)| h.space.proposal(p).unwrap().status == Status::Open)
                .count();
            match rng.below(6) {
                0 if open < 3 => {
                    let commit = (1 + rng.below(3)) * MINUTE;
                    let mut body = sealed_body(&h, "0.7");
                    body["action"]["summary"] = json!(format!("seed {seed} step {step}"));
                    body["stakes"] = json!(["low", "medium", "high"][rng.below(3) as usize]);
                    body["sealed"] = json!({"commit_deadline": h.time + commit});
                    body["deadline"] = json!(h.time + commit + (1 + rng.below(3)) * MINUTE);
                    let p = h.propose_with("alice", body).unwrap();
                    proposals.push((p, h.time + commit));
                }
                1 => {
                    h.time += rng.below(MINUTE / 2);
                }
                2 => {
                    h.advance(rng.below(MINUTE / 4));
                }
                _ if !proposals.is_empty() => {
                    // Mostly the open proposals, sometimes any.
                    let open: Vec<(Digest, u64)> = proposals
                        .iter()
                        .copied()
                        .filter(|(p, _)| h.space.proposal(p).unwrap().status == Status::Open)
                        .collect();
                    let pool = if open.is_empty() || rng.below(5) == 0 {
                        &proposals
                    } else {
                        &open
                    };
                    let (p, commit_deadline) = pool[rng.below(pool.len() as u64) as usize];
                    let agent = agents[rng.below(4) as usize];
                    let stance = stances[rng.below(3) as usize];
                    let c = ["0", "0.3", "0.7", "1"][rng.below(4) as usize];
                    let before = h.space.state_hash();
                    let result = match rng.below(5) {
                        0 | 1 => {
                            let r = commit(&mut h, agent, p, stance, c);
                            if r.is_ok() {
                                sealed.insert((p, agent), (stance, c));
                            }
                            r
                        }
                        // Mostly the answer committed to, sometimes another.
                        2 | 3 => match sealed.get(&(p, agent)) {
                            Some(&(s0, c0)) if rng.below(4) != 0 => {
                                reveal(&mut h, agent, p, s0, c0)
                            }
                            _ => reveal(&mut h, agent, p, stance, c),
                        },
                        _ => {
                            if rng.below(2) == 0 {
                                h.decide("rita", p, "approve")
                            } else {
                                h.outcome("oscar", p, "success")
                            }
                        }
                    };
                    match result {
                        Ok(effects) => {
                            commitments += effects
                                .iter()
                                .filter(|e| matches!(e, Effect::Committed { .. }))
                                .count();
                            reveals += effects
                                .iter()
                                .filter(|e| matches!(e, Effect::ResponseCounted { .. }))
                                .count();
                            let counted = effects
                                .iter()
                                .any(|e| matches!(e, Effect::ResponseCounted { proposal, .. } if *proposal == p));
                            assert!(
                                !counted || h.time >= commit_deadline,
                                "seed {seed}: an answer before the commit deadline"
                            );
                        }
                        Err(r) => {
                            *kinds.entry(r.kind.as_str()).or_insert(0) += 1;
                            assert!(ErrorKind::ALL.contains(&r.kind));
                            assert_eq!(
                                h.space.state_hash(),
                                before,
                                "seed {seed}: a refusal changed the state"
                            );
                        }
                    }
                }
                _ => {}
            }
            for (p, commit_deadline) in &proposals {
                let record = h.space.proposal(p).unwrap();
                if h.space.head().last_time < *commit_deadline {
                    assert!(record.responses.is_empty(), "seed {seed}");
                    assert!(
                        record.closure.is_none() || record.status == Status::Superseded,
                        "seed {seed}: closed in the commit phase"
                    );
                }
            }
        }
        closes += h
            .lines
            .iter()
            .filter(|l| l.contains("\"proposal_closed\""))
            .count();
        let mut replica = Space::new();
        for entry in &h.entries {
            assert_eq!(replica.apply(entry).unwrap().rejected, None, "seed {seed}");
        }
        assert_eq!(replica.state_hash(), h.space.state_hash(), "seed {seed}");
        audit::verify(h.lines.iter().map(String::as_str)).unwrap();
    }
    // The histories did exercise the phases.
    assert!(
        commitments > 100 && reveals > 30 && closes > 30,
        "{commitments} {reveals} {closes} {kinds:?}"
    );
}

#[test]
fn superseding_a_sealed_proposal_in_its_commit_phase_drops_its_commit_deadline() {
    let mut h = team();
    let p = propose(&mut h);
    commit(&mut h, "bob", p, "endorse", "0.9").unwrap();
    let mut body = sealed_body(&h, "0.7");
    body["supersedes"] = json!(p);
    body["sealed"] = json!({"commit_deadline": h.time + 7 * MINUTE});
    let q = h.propose_with("alice", body).unwrap();
    assert_eq!(h.status(&p), "superseded");
    // Only the new proposal's commit deadline is left to tick at (the
    // state's own check, run after every entry, agrees).
    assert_eq!(h.space.next_deadline(), Some(h.time + 7 * MINUTE));
    // bob's commitment stays with the old proposal; he commits anew.
    assert_eq!(
        kind(reveal(&mut h, "bob", p, "endorse", "0.9")),
        ErrorKind::ProposalClosed
    );
    commit(&mut h, "bob", q, "endorse", "0.9").unwrap();
    let effects = h.advance(5 * MINUTE);
    assert!(effects.is_empty(), "{effects:?}");
    let effects = h.advance(2 * MINUTE);
    assert_eq!(
        effects,
        vec![Effect::RevealOpened {
            proposal: q,
            committed: 1
        }]
    );
}
