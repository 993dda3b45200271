//! The space state machine end to end: the life of a proposal, the electorate
//! freeze, escalation and human decisions, trust from outcomes, every error
//! kind, and the hash chain. Section numbers cite `docs/PROTOCOL.md`.

mod common;

use std::collections::BTreeSet;

use common::{Harness, MINUTE, key_of};
use serde_json::json;
use synod_core::audit::{self, AuditError};
use synod_core::log::ExportLine;
use synod_core::policy::Weighting;
use synod_core::space::{CloseCause, Effect, Status};
use synod_core::tally::Reason;
use synod_core::wire::{Digest, MessageType, SignedMessage};
use synod_core::{ErrorKind, Rejection, Space};

/// A closed space with three fraud agents and a reviewer and an oracle,
/// resolving with linear weighting (log-odds has tests of its own below).
fn fraud_team() -> Harness {
    let mut h = Harness::closed_linear();
    h.agent("alice", &[("fraud.*", "1")]);
    h.agent("bob", &[("fraud.detection", "0.8"), ("*", "0.1")]);
    h.agent("carol", &[("fraud.*", "0.5")]);
    h.agent("dave", &[("credit.*", "1")]);
    h.person("rita", &["reviewer"]);
    h.person("oscar", &["oracle"]);
    h
}

fn closed_effect(effects: &[Effect]) -> Option<(Status, Option<Reason>, CloseCause)> {
    effects.iter().find_map(|e| match e {
        Effect::ProposalClosed {
            status,
            reason,
            cause,
            ..
        } => Some((*status, *reason, *cause)),
        _ => None,
    })
}

#[test]
fn approved_when_everyone_endorses() {
    // §5: E > C and E − C ≥ approve_margin × T.
    let mut h = fraud_team();
    // High stakes (approve margin 0.4) so that bob's endorsement alone is not
    // final while carol could still challenge.
    let p = h
        .propose("alice", "fraud.detection", "high", "0.3")
        .unwrap();
    assert_eq!(h.status(&p), "open");
    h.respond("bob", p, "endorse", "0.8").unwrap();
    assert_eq!(h.status(&p), "open");
    let effects = h.respond("carol", p, "endorse", "0.7").unwrap();
    assert_eq!(
        closed_effect(&effects),
        Some((Status::Approved, None, CloseCause::AllResponded))
    );
    // E = 0.5·(1·0.3 + 0.8·0.8 + 0.5·0.7) = 0.645; P = 0.5·(1 + 0.8 + 0.5) = 1.15.
    let t = h
        .space
        .proposal(&p)
        .unwrap()
        .tally
        .to_decimal(Weighting::Linear);
    assert_eq!((t.endorse.as_str(), t.challenge.as_str()), ("0.645", "0"));
    assert_eq!((t.voted.as_str(), t.potential.as_str()), ("1.15", "1.15"));
}

#[test]
fn rejected_when_challenges_dominate() {
    let mut h = fraud_team();
    let p = h.propose("carol", "fraud.detection", "low", "0.3").unwrap();
    h.respond("alice", p, "challenge", "0.9").unwrap();
    let effects = h.respond("bob", p, "challenge", "0.9").unwrap();
    assert_eq!(
        closed_effect(&effects),
        Some((Status::Rejected, None, CloseCause::AllResponded))
    );
}

#[test]
fn closes_early_once_no_remaining_response_can_change_the_verdict() {
    // §6: alice (1), bob (0.8) and carol (0.5) at trust 0.5; ten observers
    // would be needed to matter. Here only carol remains, with influence 0.25:
    // E = 0.5·0.9 + 0.4·1 = 0.85 > 0.25 + margin, so carol cannot change it.
    let mut h = fraud_team();
    let p = h
        .propose("alice", "fraud.detection", "medium", "0.9")
        .unwrap();
    let effects = h.respond("bob", p, "endorse", "1").unwrap();
    assert_eq!(
        closed_effect(&effects),
        Some((Status::Approved, None, CloseCause::Early))
    );
    assert_eq!(
        h.respond("carol", p, "challenge", "1").unwrap_err().kind,
        ErrorKind::ProposalClosed
    );
}

#[test]
fn deadline_closes_and_escalates_without_quorum() {
    // §6: the first entry at or after the deadline closes the proposal before
    // its own message is looked at.
    let mut h = fraud_team();
    let p = h
        .propose("carol", "fraud.detection", "medium", "0.6")
        .unwrap();
    let effects = h.advance(10 * MINUTE);
    assert_eq!(
        closed_effect(&effects),
        Some((
            Status::Escalated,
            Some(Reason::NoQuorum),
            CloseCause::Deadline
        ))
    );
    assert_eq!(
        h.respond("alice", p, "endorse", "1").unwrap_err().kind,
        ErrorKind::ProposalClosed
    );
}

#[test]
fn a_response_at_the_deadline_is_too_late() {
    let mut h = fraud_team();
    let p = h
        .propose("carol", "fraud.detection", "medium", "0.6")
        .unwrap();
    h.time += 10 * MINUTE;
    let err = h.respond("alice", p, "endorse", "1").unwrap_err();
    assert_eq!(err.kind, ErrorKind::ProposalClosed);
    // One millisecond earlier it would have counted.
    let mut h = fraud_team();
    let p = h
        .propose("carol", "fraud.detection", "medium", "0.6")
        .unwrap();
    h.time += 10 * MINUTE - 1;
    h.respond("alice", p, "endorse", "1").unwrap();
}

#[test]
fn contested_low_confidence_and_stakes_escalations() {
    let mut h = fraud_team();
    // Contested: E and C close together.
    let p = h
        .propose("alice", "fraud.detection", "medium", "0.5")
        .unwrap();
    h.respond("bob", p, "challenge", "0.6").unwrap();
    let effects = h.respond("carol", p, "abstain", "0").unwrap();
    assert_eq!(closed_effect(&effects).unwrap().1, Some(Reason::Contested));

    // Low confidence: everyone votes, nobody is sure.
    let p = h
        .propose("alice", "fraud.detection", "medium", "0.1")
        .unwrap();
    h.respond("bob", p, "endorse", "0.1").unwrap();
    let effects = h.respond("carol", p, "endorse", "0.1").unwrap();
    assert_eq!(
        closed_effect(&effects).unwrap().1,
        Some(Reason::LowConfidence)
    );

    // Critical stakes always need a human, even when unanimous and certain.
    let p = h
        .propose("alice", "fraud.detection", "critical", "1")
        .unwrap();
    h.respond("bob", p, "endorse", "1").unwrap();
    let effects = h.respond("carol", p, "endorse", "1").unwrap();
    assert_eq!(closed_effect(&effects).unwrap().1, Some(Reason::Stakes));
}

#[test]
fn human_required_never_closes_early() {
    let mut h = fraud_team();
    let p = h
        .propose("alice", "fraud.detection", "critical", "1")
        .unwrap();
    let effects = h.respond("bob", p, "endorse", "1").unwrap();
    assert_eq!(closed_effect(&effects), None);
    assert_eq!(h.status(&p), "open");
}

#[test]
fn m_of_n_reviewers_decide_an_escalation() {
    // §7.1: reviewers_required agreeing decisions close the escalation.
    let mut h = fraud_team();
    h.person("rob", &["reviewer"]);
    h.person("rae", &["reviewer"]);
    let mut body = h.proposal_body("fraud.detection", "critical", "0.9");
    body["policy"] = json!({"reviewers_required": 2});
    let p = h.propose_with("alice", body).unwrap();
    assert_eq!(
        h.decide("rita", p, "approve").unwrap_err().kind,
        ErrorKind::InvalidState
    );
    h.respond("bob", p, "endorse", "0.9").unwrap();
    h.respond("carol", p, "challenge", "0.9").unwrap();
    assert_eq!(h.status(&p), "escalated");

    assert_eq!(
        h.decide("bob", p, "approve").unwrap_err().kind,
        ErrorKind::WrongRole
    );
    h.decide("rita", p, "approve").unwrap();
    assert_eq!(
        h.decide("rita", p, "reject").unwrap_err().kind,
        ErrorKind::Duplicate
    );
    h.decide("rob", p, "reject").unwrap();
    assert_eq!(h.status(&p), "escalated");
    let effects = h.decide("rae", p, "approve").unwrap();
    assert!(effects.contains(&Effect::HumanResolved {
        proposal: p,
        status: Status::ApprovedByHuman,
        option: None,
    }));
    assert_eq!(h.status(&p), "approved_by_human");
    assert_eq!(
        h.decide("rob", p, "reject").unwrap_err().kind,
        ErrorKind::InvalidState
    );
}

#[test]
fn the_electorate_is_frozen_when_the_proposal_enters_the_log() {
    // §5: later registrations, grants and trust changes cannot alter an open vote.
    let mut h = fraud_team();
    let first = h.propose("alice", "fraud.detection", "low", "0.9").unwrap();
    h.respond("bob", first, "endorse", "0.9").unwrap();
    assert_eq!(h.status(&first), "approved");

    let open = h
        .propose("alice", "fraud.detection", "high", "0.6")
        .unwrap();
    let frozen = h.space.proposal(&open).unwrap().clone();

    // A newcomer with authority, a grant raising carol, and an outcome moving
    // bob's trust, all after the proposal entered the log.
    h.agent("erin", &[("fraud.*", "1")]);
    h.grant("carol", &[("fraud.*", "1")], &["agent"]);
    h.outcome("oscar", first, "failure").unwrap();
    assert_ne!(h.trust("bob", "fraud.detection"), "0.5");

    let now = h.space.proposal(&open).unwrap();
    assert_eq!(now.electorate, frozen.electorate);
    assert_eq!(now.tally, frozen.tally);
    assert_eq!(
        h.respond("erin", open, "endorse", "1").unwrap_err().kind,
        ErrorKind::NotEligible
    );
    h.respond("carol", open, "endorse", "1").unwrap();
    let carol = h
        .space
        .proposal(&open)
        .unwrap()
        .electorate
        .iter()
        .find(|m| h.space.agent_at(m.agent).id == h.id("carol"))
        .unwrap()
        .authority;
    assert_eq!(carol.to_string(), "0.5");
}

#[test]
fn most_specific_authority_pattern_decides_membership() {
    let mut h = fraud_team();
    // bob has fraud.detection 0.8 and * 0.1: in fraud.review only the 0.1 applies.
    let p = h.propose("alice", "fraud.review", "high", "0.9").unwrap();
    let record = h.space.proposal(&p).unwrap();
    let bob = record
        .electorate
        .iter()
        .find(|m| h.space.agent_at(m.agent).id == h.id("bob"))
        .unwrap();
    assert_eq!(bob.authority.to_string(), "0.1");
    // dave only has credit.*: not a member, so an observer.
    assert_eq!(
        h.respond("dave", p, "endorse", "1").unwrap_err().kind,
        ErrorKind::NotEligible
    );
}

#[test]
fn outcomes_move_trust_toward_whoever_was_right() {
    // §8: the proposer and everyone who took a side are scored; abstainers are not.
    let mut h = fraud_team();
    h.agent("erin", &[("fraud.*", "0.1")]);
    let p = h.propose("alice", "fraud.detection", "low", "0.9").unwrap();
    h.respond("carol", p, "challenge", "0.9").unwrap();
    h.respond("bob", p, "endorse", "0.9").unwrap();
    if let Err(e) = h.respond("erin", p, "abstain", "0.5") {
        // The vote may already be final; erin then simply did not take part.
        assert_eq!(e.kind, ErrorKind::ProposalClosed);
    }
    h.advance(10 * MINUTE);
    assert_eq!(h.status(&p), "approved");
    assert_eq!(
        h.outcome("bob", p, "failure").unwrap_err().kind,
        ErrorKind::WrongRole
    );
    let effects = h.outcome("oscar", p, "failure").unwrap();
    let moved: BTreeSet<String> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::TrustUpdated { agent, .. } => Some(agent.to_string()),
            _ => None,
        })
        .collect();
    let expect: BTreeSet<String> = ["alice", "bob", "carol"]
        .iter()
        .map(|n| h.id(n).to_string())
        .collect();
    assert_eq!(moved, expect);
    assert!(h.trust("alice", "fraud.detection").as_str() < "0.5");
    assert!(h.trust("bob", "fraud.detection").as_str() < "0.5");
    assert!(h.trust("carol", "fraud.detection").as_str() > "0.5");
    assert_eq!(h.trust("erin", "fraud.detection"), "0.5");
    // Trust is per domain: another domain keeps the prior.
    assert_eq!(h.trust("bob", "fraud.review"), "0.5");
    assert_eq!(
        h.outcome("oscar", p, "success").unwrap_err().kind,
        ErrorKind::Duplicate
    );
}

#[test]
fn an_outcome_needs_a_closed_proposal() {
    let mut h = fraud_team();
    let p = h.propose("alice", "fraud.detection", "low", "0.9").unwrap();
    assert_eq!(
        h.outcome("oscar", p, "success").unwrap_err().kind,
        ErrorKind::InvalidState
    );
    assert_eq!(
        h.send(
            "oscar",
            MessageType::Outcome,
            json!({"proposal": p, "result": "success", "score": "1"})
        )
        .unwrap_err()
        .kind,
        ErrorKind::Malformed
    );
}

#[test]
fn open_spaces_cap_declared_authority_and_start_newcomers_low() {
    // §5, §7: in an open space anyone registers; authority is capped and trust
    // starts at open_initial_trust; privileged roles still need a grant.
    let mut h = Harness::open();
    h.register_declaring("mallory", &[("*", "1")]).unwrap();
    assert_eq!(h.space.agents().len(), 2);
    h.send(
        "mallory",
        MessageType::Registration,
        json!({"seq": 2, "name": "mallory", "authorities": {"*": "1"}, "roles": ["admin", "oracle"]}),
    )
    .unwrap();
    let p = h.propose("mallory", "ops.deploy", "low", "1").unwrap();
    let member = h.space.proposal(&p).unwrap().electorate[0];
    assert_eq!(member.authority.to_string(), "0.5");
    assert_eq!(member.trust.to_string(), "0.1");
    assert_eq!(
        h.configure_as("mallory", json!({"set": {"mode": "closed"}}))
            .unwrap_err()
            .kind,
        ErrorKind::WrongRole
    );
}

#[test]
fn a_proposer_may_supersede_its_own_open_proposal() {
    let mut h = fraud_team();
    let old = h
        .propose("alice", "fraud.detection", "medium", "0.6")
        .unwrap();
    let mut body = h.proposal_body("fraud.detection", "medium", "0.7");
    body["supersedes"] = json!(old);
    let mut stolen = body.clone();
    stolen["action"]["summary"] = json!("someone else's");
    assert_eq!(
        h.propose_with("bob", stolen).unwrap_err().kind,
        ErrorKind::NotEligible
    );
    let new = h.propose_with("alice", body.clone()).unwrap();
    assert_eq!(h.status(&old), "superseded");
    assert_eq!(h.status(&new), "open");
    assert_eq!(
        h.respond("bob", old, "endorse", "1").unwrap_err().kind,
        ErrorKind::ProposalClosed
    );
    body["action"]["summary"] = json!("third try");
    assert_eq!(
        h.propose_with("alice", body).unwrap_err().kind,
        ErrorKind::Duplicate
    );
}

/// What the node does with bytes from outside: parse, verify, append.
fn submit(h: &mut Harness, bytes: &[u8]) -> Result<Vec<Effect>, Rejection> {
    let message = SignedMessage::parse(bytes)?.verify()?;
    h.append(message)
}

fn signed_bytes(h: &Harness, signer: &str, kind: MessageType, body: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&h.sign(signer, kind, body).to_value()).unwrap()
}

#[test]
fn every_error_kind_is_reported_and_changes_nothing() {
    // §9: each refusal has its documented kind and leaves the state hash as it was.
    let mut h = fraud_team();
    let p = h
        .propose("alice", "fraud.detection", "high", "0.6")
        .unwrap();
    let done = h.propose("alice", "fraud.detection", "low", "1").unwrap();
    h.respond("bob", done, "endorse", "1").unwrap();
    assert_eq!(h.status(&done), "approved");
    h.respond("carol", p, "endorse", "0.5").unwrap();

    let response = |conf: &str| json!({"proposal": p, "stance": "endorse", "confidence": conf});
    let mut tampered: serde_json::Value = serde_json::from_slice(&signed_bytes(
        &h,
        "bob",
        MessageType::Response,
        response("0.5"),
    ))
    .unwrap();
    tampered["body"]["confidence"] = json!("0.9");
    let mut loose = h.proposal_body("fraud.detection", "high", "0.5");
    loose["policy"] = json!({"quorum": "0.1"});
    let mut past = h.proposal_body("fraud.detection", "high", "0.5");
    past["deadline"] = json!(h.time);
    let mut future = response("0.5");
    future["created_at"] = json!(h.time + 2 * MINUTE);
    let mut stale = response("0.5");
    stale["created_at"] = json!(h.time - 11 * MINUTE);
    let mut other_space = response("0.5");
    other_space["space"] = json!("elsewhere");
    let mut unknown_field = response("0.5");
    unknown_field["mood"] = json!("sunny");

    let cases: Vec<(&str, Vec<u8>, ErrorKind)> = vec![
        ("not JSON", b"{\"type\":".to_vec(), ErrorKind::Malformed),
        (
            "unknown body field",
            signed_bytes(&h, "bob", MessageType::Response, unknown_field),
            ErrorKind::Malformed,
        ),
        (
            "tampered body",
            serde_json::to_vec(&tampered).unwrap(),
            ErrorKind::BadSignature,
        ),
        (
            "unregistered signer",
            signed_bytes(&h, "zed", MessageType::Response, response("0.5")),
            ErrorKind::UnknownAgent,
        ),
        (
            "outside the electorate",
            signed_bytes(&h, "dave", MessageType::Response, response("0.5")),
            ErrorKind::NotEligible,
        ),
        (
            "the proposer responds",
            signed_bytes(&h, "alice", MessageType::Response, response("0.5")),
            ErrorKind::NotEligible,
        ),
        (
            "second response",
            signed_bytes(&h, "carol", MessageType::Response, response("0.9")),
            ErrorKind::Duplicate,
        ),
        (
            "stale message",
            signed_bytes(&h, "bob", MessageType::Response, stale),
            ErrorKind::Duplicate,
        ),
        (
            "replayed registration",
            signed_bytes(
                &h,
                "bob",
                MessageType::Registration,
                json!({"seq": 1, "name": "bob"}),
            ),
            ErrorKind::Duplicate,
        ),
        (
            "response after close",
            signed_bytes(
                &h,
                "dave",
                MessageType::Response,
                json!({"proposal": done, "stance": "endorse", "confidence": "1"}),
            ),
            ErrorKind::ProposalClosed,
        ),
        (
            "confidence above one",
            signed_bytes(&h, "bob", MessageType::Response, response("1.5")),
            ErrorKind::OutOfRange,
        ),
        (
            "negative confidence",
            signed_bytes(&h, "bob", MessageType::Response, response("-0.1")),
            ErrorKind::OutOfRange,
        ),
        (
            "confidence with 7 digits",
            signed_bytes(&h, "bob", MessageType::Response, response("0.1234567")),
            ErrorKind::Malformed,
        ),
        (
            "reasoning too long",
            signed_bytes(
                &h,
                "bob",
                MessageType::Response,
                json!({"proposal": p, "stance": "endorse", "confidence": "1", "reasoning": "x".repeat(5000)}),
            ),
            ErrorKind::TooLarge,
        ),
        ("oversized body", vec![b' '; 70_000], ErrorKind::TooLarge),
        (
            "unknown proposal",
            signed_bytes(
                &h,
                "bob",
                MessageType::Response,
                json!({"proposal": Digest::of(b"nothing"), "stance": "endorse", "confidence": "1"}),
            ),
            ErrorKind::UnknownProposal,
        ),
        (
            "outcome from an agent",
            signed_bytes(
                &h,
                "bob",
                MessageType::Outcome,
                json!({"proposal": done, "result": "success"}),
            ),
            ErrorKind::WrongRole,
        ),
        (
            "loosening override",
            signed_bytes(&h, "alice", MessageType::Proposal, loose),
            ErrorKind::PolicyViolation,
        ),
        (
            "deadline not in the future",
            signed_bytes(&h, "alice", MessageType::Proposal, past),
            ErrorKind::BadDeadline,
        ),
        (
            "created in the future",
            signed_bytes(&h, "bob", MessageType::Response, future),
            ErrorKind::ClockSkew,
        ),
        (
            "another space",
            signed_bytes(&h, "bob", MessageType::Response, other_space),
            ErrorKind::WrongSpace,
        ),
        (
            "decision on an open proposal",
            signed_bytes(
                &h,
                "rita",
                MessageType::Decision,
                json!({"proposal": p, "decision": "approve"}),
            ),
            ErrorKind::InvalidState,
        ),
    ];
    let mut seen = BTreeSet::new();
    for (what, bytes, kind) in cases {
        let before = h.space.state_hash();
        let entries = h.entries.len();
        let err = submit(&mut h, &bytes).expect_err(what);
        assert_eq!(err.kind, kind, "{what}: {}", err.message);
        assert_eq!(h.space.state_hash(), before, "{what} changed the state");
        assert_eq!(h.entries.len(), entries, "{what} was logged");
        seen.insert(kind);
    }
    // §16: with admission on for trust below 0.6, alice (0.5) must stamp.
    h.configure(json!({"set": {"admission_trust_below": "0.6", "admission_difficulty": 8}}))
        .unwrap();
    let unstamped = signed_bytes(
        &h,
        "alice",
        MessageType::Proposal,
        h.proposal_body("fraud.detection", "low", "0.7"),
    );
    let before = h.space.state_hash();
    let err = submit(&mut h, &unstamped).expect_err("no stamp");
    assert_eq!(err.kind, ErrorKind::InsufficientWork, "{}", err.message);
    assert_eq!(h.space.state_hash(), before);
    seen.insert(err.kind);
    // §18: a reveal in the commit phase, and one that does not open the
    // member's commitment.
    h.configure(json!({"set": {"admission_trust_below": "0"}}))
        .unwrap();
    let mut body = h.proposal_body("fraud.detection", "high", "0.7");
    body["sealed"] = json!({"commit_deadline": h.time + MINUTE});
    let sealed = h.propose_with("alice", body).unwrap();
    let commitment = synod_core::sealed::commitment(
        &sealed,
        &h.id("bob"),
        &[7; 16],
        &json!({"stance": "endorse", "confidence": "0.5"}),
    );
    h.send(
        "bob",
        MessageType::Response,
        json!({"proposal": sealed, "commitment": commitment}),
    )
    .unwrap();
    let reveal = |conf: &str| json!({"proposal": sealed, "stance": "endorse", "confidence": conf, "salt": "07".repeat(16)});
    for (what, kind) in [
        ("a reveal in the commit phase", ErrorKind::WrongPhase),
        ("a reveal of another answer", ErrorKind::BadReveal),
    ] {
        if kind == ErrorKind::BadReveal {
            h.advance(MINUTE);
        }
        let bytes = signed_bytes(&h, "bob", MessageType::Response, reveal("0.6"));
        let before = h.space.state_hash();
        let err = submit(&mut h, &bytes).expect_err(what);
        assert_eq!(err.kind, kind, "{what}: {}", err.message);
        assert_eq!(h.space.state_hash(), before, "{what} changed the state");
        seen.insert(err.kind);
    }
    let all: BTreeSet<ErrorKind> = ErrorKind::ALL.into_iter().collect();
    assert_eq!(seen, all, "every documented error kind has a case");
}

#[test]
fn replicas_applying_the_same_log_reach_the_same_state_hash() {
    // §10: the same log gives the same state hash, entry by entry.
    let mut h = fraud_team();
    let p = h
        .propose("alice", "fraud.detection", "medium", "0.9")
        .unwrap();
    h.respond("bob", p, "endorse", "0.8").unwrap();
    h.outcome("oscar", p, "success").unwrap();
    h.advance(MINUTE);

    let mut replica = Space::new();
    for entry in &h.entries {
        let applied = replica.apply(entry).unwrap();
        assert_eq!(applied.rejected, None);
    }
    assert_eq!(replica.state_hash(), h.space.state_hash());
    assert_eq!(replica.head(), h.space.head());

    // A snapshot restores the same state.
    let restored = Space::from_snapshot(&h.space.to_snapshot()).unwrap();
    assert_eq!(restored.state_hash(), h.space.state_hash());
}

#[test]
fn the_hash_chain_refuses_reordered_or_altered_entries() {
    let mut h = fraud_team();
    h.propose("alice", "fraud.detection", "medium", "0.9")
        .unwrap();
    let entries = h.entries.clone();
    let mut replica = Space::new();
    replica.apply(&entries[0]).unwrap();
    // Skipping an entry.
    assert!(replica.apply(&entries[2]).is_err());
    // An entry whose prev is not the previous hash.
    let mut forged = entries[1].clone();
    forged.prev = Digest::of(b"forged");
    assert!(replica.apply(&forged).is_err());
    // An entry from before the previous one's time.
    let mut early = entries[1].clone();
    early.time = entries[0].time - 1;
    assert!(replica.apply(&early).is_err());
    replica.apply(&entries[1]).unwrap();
}

#[test]
fn an_ordered_entry_the_rules_refuse_is_a_deterministic_no_op() {
    // §10: a replicated log may hold a message the rules refuse (two responses
    // from the same agent ordered by a leader). Every replica refuses it.
    let mut h = fraud_team();
    let p = h
        .propose("alice", "fraud.detection", "high", "0.6")
        .unwrap();
    h.respond("bob", p, "endorse", "0.5").unwrap();
    let again = h.sign(
        "bob",
        MessageType::Response,
        json!({"proposal": p, "stance": "challenge", "confidence": "1"}),
    );
    let entry = synod_core::Entry {
        index: h.space.head().next_index,
        time: h.time,
        prev: h.space.head().last_hash,
        payload: synod_core::Payload::Message(again),
    };
    let tally = h.space.proposal(&p).unwrap().tally;
    let applied = h.space.apply(&entry).unwrap();
    assert_eq!(applied.rejected.map(|r| r.kind), Some(ErrorKind::Duplicate));
    assert_eq!(h.space.proposal(&p).unwrap().tally, tally);
    h.lines.push(
        ExportLine::new(
            &entry,
            applied.effects,
            Some(Rejection::new(ErrorKind::Duplicate, "x")),
        )
        .to_json(),
    );
    let summary = audit::verify(h.lines.iter().map(String::as_str)).unwrap();
    assert_eq!(summary.refused, 1);
}

#[test]
fn audit_verifies_an_export_and_names_the_entry_that_breaks_it() {
    let mut h = fraud_team();
    let p = h
        .propose("alice", "fraud.detection", "medium", "0.9")
        .unwrap();
    h.respond("bob", p, "endorse", "0.8").unwrap();
    assert_eq!(h.status(&p), "approved");
    h.outcome("oscar", p, "failure").unwrap();
    let summary = audit::verify(h.lines.iter().map(String::as_str)).unwrap();
    assert_eq!(summary.entries, h.lines.len() as u64);
    assert_eq!(summary.state_hash, h.space.state_hash());
    assert_eq!(summary.proposals.get("approved"), Some(&1));
    assert_eq!(summary.trust_updates, 2);

    let last = h.lines.len() - 1;
    // A recorded trust update that the log does not support.
    let mut lines = h.lines.clone();
    let mut line: serde_json::Value = serde_json::from_str(&lines[last]).unwrap();
    line["effects"][1]["after"] = json!("0.9");
    lines[last] = line.to_string();
    match audit::verify(lines.iter().map(String::as_str)) {
        Err(AuditError::EffectsMismatch { index, .. }) => assert_eq!(index, last as u64),
        other => panic!("expected an effects mismatch, got {other:?}"),
    }
    // An altered response.
    let mut lines = h.lines.clone();
    let idx = h.lines.len() - 2;
    let mut line: serde_json::Value = serde_json::from_str(&lines[idx]).unwrap();
    line["message"]["body"]["confidence"] = json!("0.81");
    lines[idx] = line.to_string();
    match audit::verify(lines.iter().map(String::as_str)) {
        Err(AuditError::BadSignature { index, .. }) => assert_eq!(index, idx as u64),
        other => panic!("expected a bad signature, got {other:?}"),
    }
    // A re-signed but reordered log: the recorded hash no longer matches.
    let mut lines = h.lines.clone();
    let mut line: serde_json::Value = serde_json::from_str(&lines[2]).unwrap();
    line["time"] = json!(line["time"].as_u64().unwrap() + 1);
    lines[2] = line.to_string();
    match audit::verify(lines.iter().map(String::as_str)) {
        Err(AuditError::HashMismatch { index, .. }) => assert_eq!(index, 2),
        other => panic!("expected a hash mismatch, got {other:?}"),
    }
    // A log that does not start at genesis.
    assert!(matches!(
        audit::verify(h.lines[1..].iter().map(String::as_str)),
        Err(AuditError::NotFromGenesis(1))
    ));
}

#[test]
fn a_closed_space_admits_only_agents_an_admin_granted() {
    let mut h = Harness::closed();
    let err = h.register_declaring("stranger", &[("*", "1")]).unwrap_err();
    assert_eq!(err.kind, ErrorKind::UnknownAgent);
    assert!(err.message.contains("closed"), "{}", err.message);
    // Once granted, it registers; the declared authority is only a label.
    h.grant("stranger", &[("ops.*", "0.3")], &["agent"]);
    h.register_declaring("stranger", &[("*", "1")]).unwrap();
    let agent = h.space.agent(&h.id("stranger")).unwrap();
    let ops = synod_core::domain::Domain::parse("ops.deploy").unwrap();
    assert_eq!(h.space.authority(agent, &ops).to_string(), "0.3");
    let other = synod_core::domain::Domain::parse("credit").unwrap();
    assert_eq!(h.space.authority(agent, &other).to_string(), "0");
}

#[test]
fn nobody_reports_the_outcome_of_a_vote_it_took_part_in() {
    let mut h = fraud_team();
    h.person("alice-oracle", &["oracle"]);
    h.grant("alice", &[("fraud.*", "1")], &["agent", "oracle"]);
    let p = h.propose("alice", "fraud.detection", "low", "0.9").unwrap();
    h.respond("bob", p, "endorse", "0.9").unwrap();
    assert_eq!(h.status(&p), "approved");
    assert_eq!(
        h.outcome("alice", p, "success").unwrap_err().kind,
        ErrorKind::NotEligible
    );
    h.outcome("alice-oracle", p, "success").unwrap();
}

#[test]
fn a_malformed_body_is_never_reported_as_out_of_range() {
    // The kind must not depend on text the sender controls.
    let mut h = fraud_team();
    let p = h
        .propose("alice", "fraud.detection", "high", "0.6")
        .unwrap();
    let err = h
        .send(
            "bob",
            MessageType::Response,
            json!({"proposal": p, "stance": "endorse", "confidence": "0.5", "out of range: ": 1}),
        )
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Malformed);
    let err = h
        .send(
            "bob",
            MessageType::Response,
            json!({"proposal": p, "stance": "out of range: ", "confidence": "0.5"}),
        )
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Malformed);
    let err = h
        .send(
            "bob",
            MessageType::Response,
            json!({"proposal": p, "stance": "endorse", "confidence": "1.000001"}),
        )
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::OutOfRange);
}

#[test]
fn the_genesis_signer_is_the_only_admin_until_it_grants_another() {
    let mut h = fraud_team();
    assert_eq!(
        h.configure_as("alice", json!({"set": {"trust_learning_rate": "0.1"}}))
            .unwrap_err()
            .kind,
        ErrorKind::WrongRole
    );
    h.configure(json!({"set": {"trust_learning_rate": "0.1"}}))
        .unwrap();
    assert_eq!(h.space.config().trust_learning_rate.to_string(), "0.1");
    // The last admin cannot revoke itself.
    let admin = key_of("admin").id().clone();
    assert_eq!(
        h.configure(json!({"grant": {"agent": admin, "roles": []}}))
            .unwrap_err()
            .kind,
        ErrorKind::InvalidState
    );
}

#[test]
fn a_payload_key_has_no_special_meaning() {
    // serde_json gives one private key a meaning when its raw-value feature is
    // on; a payload must decode to exactly what was signed.
    let mut h = fraud_team();
    let mut body = h.proposal_body("fraud.detection", "high", "0.6");
    body["action"]["payload"] = json!({"$serde_json::private::RawValue": "[1, 2]"});
    let p = h.propose_with("alice", body).unwrap();
    let payload = h.space.proposal(&p).unwrap().body().action.payload;
    assert_eq!(payload, json!({"$serde_json::private::RawValue": "[1, 2]"}));
}

#[test]
fn a_response_sent_again_after_the_close_is_a_duplicate() {
    // Regression: the last answer closed the proposal and its retry was
    // reported as proposal_closed instead of duplicate.
    let mut h = fraud_team();
    let p = h
        .propose("alice", "fraud.detection", "critical", "0.9")
        .unwrap();
    h.respond("bob", p, "endorse", "0.8").unwrap();
    let last = h.sign(
        "carol",
        MessageType::Response,
        json!({"proposal": p, "stance": "endorse", "confidence": "0.8"}),
    );
    h.append(last.clone()).unwrap();
    assert_eq!(h.status(&p), "escalated");
    assert_eq!(h.append(last).unwrap_err().kind, ErrorKind::Duplicate);
    // Someone who never answered is told the proposal is closed.
    h.agent("dan", &[("fraud.*", "1")]);
    assert_eq!(
        h.respond("dan", p, "endorse", "1").unwrap_err().kind,
        ErrorKind::ProposalClosed
    );
}

#[test]
fn one_agent_may_hold_only_so_many_proposals_open() {
    // A flood of proposals from one identity is refused once it holds the
    // space's per-agent limit; a closed one frees its place.
    let mut h = Harness::with_config(json!({"max_open_per_agent": 2}));
    h.agent("alice", &[("ops.*", "1")]);
    h.agent("bob", &[("ops.*", "1")]);
    let first = h.propose("alice", "ops.a", "critical", "0.9").unwrap();
    h.propose("alice", "ops.b", "critical", "0.9").unwrap();
    let before = h.space.state_hash();
    let err = h.propose("alice", "ops.c", "critical", "0.9").unwrap_err();
    assert_eq!(err.kind, ErrorKind::TooLarge, "{}", err.message);
    assert_eq!(h.space.state_hash(), before);
    // Others are not affected.
    h.propose("bob", "ops.d", "critical", "0.9").unwrap();
    h.respond("bob", first, "endorse", "1").unwrap();
    assert_eq!(h.status(&first), "escalated");
    h.propose("alice", "ops.c", "critical", "0.9").unwrap();
    // At the deadline every one of them closes, and the count with them.
    h.time += 11 * MINUTE;
    h.propose("alice", "ops.e", "critical", "0.9").unwrap();
    h.propose("alice", "ops.f", "critical", "0.9").unwrap();
    assert_eq!(h.space.agent(&h.id("alice")).unwrap().open_proposals, 2);
    // At the limit, replacing one of its own open proposals is still allowed:
    // the old one closes as the new one opens.
    let old = h
        .space
        .proposals()
        .values()
        .find(|p| p.status == Status::Open && h.space.agent_at(p.proposer).id == h.id("alice"))
        .unwrap()
        .id;
    let mut body = h.proposal_body("ops.g", "critical", "0.9");
    body["supersedes"] = json!(old);
    h.propose_with("alice", body).unwrap();
    assert_eq!(h.space.agent(&h.id("alice")).unwrap().open_proposals, 2);
    // And a replica applying the same log reaches the same state.
    let mut replica = Space::new();
    for entry in &h.entries {
        assert_eq!(replica.apply(entry).unwrap().rejected, None);
    }
    assert_eq!(replica.state_hash(), h.space.state_hash());
}

/// The fraud team in a space with the default policies: log-odds weighting.
fn log_odds_team() -> Harness {
    let mut h = Harness::closed();
    h.agent("alice", &[("fraud.*", "1")]);
    h.agent("bob", &[("fraud.*", "1")]);
    h.agent("carol", &[("fraud.*", "0.5")]);
    h.person("rita", &["reviewer"]);
    h
}

#[test]
fn log_odds_is_the_default_and_counts_evidence() {
    // §5.0.1: at trust 0.5 a response counts at face value. alice proposes at
    // 0.7 (ln(7/3)); bob endorses at 0.99, capped at 0.8 (ln 4): E = 2.233591…
    // carol's reach is 0.5·ln 4 = 0.693147…, so E − R ≥ ln 4: final now.
    let mut h = log_odds_team();
    let p = h
        .propose("alice", "fraud.detection", "medium", "0.7")
        .unwrap();
    assert_eq!(h.status(&p), "open");
    let effects = h.respond("bob", p, "endorse", "0.99").unwrap();
    assert_eq!(
        closed_effect(&effects),
        Some((Status::Approved, None, CloseCause::Early))
    );
    let record = h.space.proposal(&p).unwrap();
    assert_eq!(record.policy.weighting, Weighting::LogOdds);
    let t = record.tally.to_decimal(Weighting::LogOdds);
    assert_eq!(t.endorse, "2.233592221506");
    let package = synod_core::package::DecisionPackage::build(&h.space, record);
    assert_eq!(package.thresholds.approve_needed, "1.386294361119");
    assert_eq!(package.thresholds.confidence_needed, "0");
    assert_eq!(package.positions[1].weight, "1.386294361119");
}

#[test]
fn log_odds_escalates_a_lone_confident_voice_against_a_doubting_one() {
    // alice proposes at 0.9 (capped: ln 4); carol (authority 0.5) challenges
    // at 0.8 (−0.5·ln 4); bob abstains. Net 0.5·ln 4 < ln 4: contested, where
    // the linear rule (E 0.45 vs C 0.2, margin 0.2) would have approved.
    let mut h = log_odds_team();
    let p = h
        .propose("alice", "fraud.detection", "medium", "0.9")
        .unwrap();
    h.respond("carol", p, "challenge", "0.8").unwrap();
    let effects = h.respond("bob", p, "abstain", "0.5").unwrap();
    assert_eq!(
        closed_effect(&effects),
        Some((
            Status::Escalated,
            Some(Reason::Contested),
            CloseCause::AllResponded
        ))
    );
    let record = h.space.proposal(&p).unwrap();
    let package = synod_core::package::DecisionPackage::build(&h.space, record);
    assert_eq!(package.thresholds.margin, "0.6931471805595");
    assert_eq!(package.positions[1].weight, "-0.6931471805595");
}

/// An open space configured by `config` where alice and bob were granted
/// `fraud.*` and forty identities registered themselves claiming it too;
/// alice has proposed in `fraud.detection` at 0.8.
fn flooded(config: serde_json::Value) -> (Harness, Digest) {
    let mut h = Harness::with_config(config);
    for name in ["alice", "bob"] {
        h.grant(name, &[("fraud.*", "1")], &["agent"]);
        h.register_declaring(name, &[]).unwrap();
    }
    for i in 0..40 {
        h.register_declaring(&format!("sybil-{i}"), &[("fraud.*", "1")])
            .unwrap();
    }
    let p = h
        .propose("alice", "fraud.detection", "medium", "0.8")
        .unwrap();
    (h, p)
}

#[test]
fn newcomers_cannot_stall_a_quorum_or_outweigh_the_established() {
    // §5.0, "Newcomers": forty identities register themselves in an open
    // space, declare full authority (capped at 0.5) and stay silent. Their
    // influence (40 × 0.5 × 0.1 = 2) would be two thirds of the electorate,
    // and alice's and bob's answers could never reach the quorum. Held to
    // open_newcomer_cap (0.2), they are a fifth of it at most.
    let (mut h, p) = flooded(json!({"mode": "open"}));
    let record = h.space.proposal(&p).unwrap();
    assert_eq!(record.electorate.len(), 42);
    let newcomers: u128 = record.electorate[2..]
        .iter()
        .map(|m| u128::from(m.influence().0))
        .sum();
    assert!(newcomers * 5 <= record.tally.potential, "{newcomers}");
    assert!(newcomers * 5 > record.tally.potential - 42);
    // Granted agents are never newcomers; alice and bob keep authority 1.
    assert_eq!(record.electorate[0].authority.to_string(), "1");
    let effects = h.respond("bob", p, "endorse", "0.8").unwrap();
    assert_eq!(
        closed_effect(&effects),
        Some((Status::Approved, None, CloseCause::Early))
    );

    // With the cap off, the same silent crowd stalls the quorum.
    let (mut h, p) = flooded(json!({"mode": "open", "open_newcomer_cap": "1"}));
    h.respond("bob", p, "endorse", "0.8").unwrap();
    let effects = h.advance(10 * MINUTE);
    assert_eq!(
        closed_effect(&effects),
        Some((
            Status::Escalated,
            Some(Reason::NoQuorum),
            CloseCause::Deadline
        ))
    );
}
