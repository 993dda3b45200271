//! Hierarchical decisions through the real state machine
//! (docs/PROTOCOL.md §21): workers propose, supervisors evaluate, the
//! executive decides after them, workers may object within a window, and
//! objections from more than half of them send the decision to humans.

mod common;

use common::{Harness, MINUTE};
use serde_json::{Value, json};
use synod_core::audit;
use synod_core::package::DecisionPackage;
use synod_core::space::CloseCause;
use synod_core::tally::Reason;
use synod_core::wire::{Digest, MessageType};
use synod_core::{Effect, ErrorKind, Rejection, Space};

const WINDOW: u64 = 5 * MINUTE;
const WORKERS: [&str; 5] = ["w1", "w2", "w3", "w4", "w5"];

/// Five workers, two supervisors and an executive in `ops.deploy`; a
/// reviewer, an oracle and an outsider with authority there.
fn space_with(workers: &[&str]) -> Harness {
    let mut h = Harness::closed();
    for name in workers.iter().chain(&["s1", "s2", "boss", "outsider"]) {
        h.agent(name, &[("ops.*", "1")]);
    }
    h.person("rita", &["reviewer"]);
    h.person("oscar", &["oracle"]);
    let ids = |names: &[&str]| names.iter().map(|n| h.id(n)).collect::<Vec<_>>();
    let hierarchy = json!({"ops.deploy": {
        "workers": ids(workers), "supervisors": ids(&["s1", "s2"]),
        "executive": h.id("boss"), "objection_window_ms": WINDOW}});
    h.configure(json!({"set": {"hierarchies": hierarchy}}))
        .unwrap();
    h
}

fn body(h: &Harness, summary: &str) -> Value {
    let mut b = h.proposal_body("ops.deploy", "medium", "0.8");
    b["method"] = json!("hierarchy");
    b["action"]["summary"] = json!(summary);
    b
}

fn decide(h: &mut Harness, who: &str, p: Digest, decision: &str) -> Result<Vec<Effect>, Rejection> {
    h.send(
        who,
        MessageType::Decision,
        json!({"proposal": p, "decision": decision, "note": format!("{who} says {decision}")}),
    )
}

fn object(h: &mut Harness, who: &str, p: Digest) -> Result<Vec<Effect>, Rejection> {
    h.respond(who, p, "challenge", "0.9")
}

fn kind<T: std::fmt::Debug>(r: Result<T, Rejection>) -> ErrorKind {
    r.expect_err("refused").kind
}

/// A proposal by w1 that both supervisors have evaluated.
fn evaluated(h: &mut Harness) -> Digest {
    let p = h.propose_with("w1", body(h, "ship 3.0")).unwrap();
    h.respond("s1", p, "endorse", "0.9").unwrap();
    h.respond("s2", p, "challenge", "0.6").unwrap();
    p
}

#[test]
fn the_executive_decides_after_the_supervisors_and_the_window_makes_it_final() {
    let mut h = space_with(&WORKERS);
    let p = h.propose_with("w1", body(&h, "ship 3.0")).unwrap();
    // The executive may not decide before every supervisor has had its say.
    let before = h.space.state_hash();
    let err = decide(&mut h, "boss", p, "approve").unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidState);
    assert!(
        err.message.contains("2 of 2 supervisors"),
        "{}",
        err.message
    );
    assert_eq!(h.space.state_hash(), before);
    h.respond("s1", p, "endorse", "0.9").unwrap();
    let before = h.space.state_hash();
    assert_eq!(
        kind(decide(&mut h, "boss", p, "approve")),
        ErrorKind::InvalidState
    );
    assert_eq!(h.space.state_hash(), before);
    // The last supervisor abstains: everyone has had its say, and the
    // proposal stays open (all_responded does not close it).
    h.respond("s2", p, "abstain", "0.5").unwrap();
    assert_eq!(h.status(&p), "open");
    let effects = decide(&mut h, "boss", p, "approve").unwrap();
    let until = h.time + WINDOW;
    assert_eq!(
        serde_json::to_value(&effects).unwrap(),
        json!([{"type": "executive_decided", "proposal": p, "executive": h.id("boss"),
                "decision": "approve", "objections_until": until}])
    );
    // Not final yet: open until the window closes, through the log.
    assert_eq!(h.status(&p), "open");
    assert_eq!(h.space.proposal(&p).unwrap().deadline, until);
    assert_eq!(
        kind(decide(&mut h, "boss", p, "reject")),
        ErrorKind::Duplicate
    );
    assert!(h.advance(WINDOW - 1).is_empty());
    assert_eq!(h.status(&p), "open");
    let effects = h.advance(1);
    match &effects[..] {
        [Effect::ProposalClosed { status, cause, .. }] => {
            assert_eq!(status.as_str(), "approved");
            assert_eq!(*cause, CloseCause::Deadline);
        }
        other => panic!("{other:?}"),
    }
    // After the window an objection is too late.
    assert_eq!(kind(object(&mut h, "w2", p)), ErrorKind::ProposalClosed);
    // The outcome scores the proposer and the supervisors who took a side.
    let effects = h.outcome("oscar", p, "success").unwrap();
    let scored: Vec<String> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::TrustUpdated { agent, .. } => Some(agent.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(scored, vec![h.id("w1").to_string(), h.id("s1").to_string()]);
}

#[test]
fn an_executive_overruled_by_objections_goes_to_humans_with_everything() {
    let mut h = space_with(&WORKERS);
    let p = evaluated(&mut h);
    decide(&mut h, "boss", p, "approve").unwrap();
    // Two of five is not more than half.
    object(&mut h, "w2", p).unwrap();
    let effects = object(&mut h, "w3", p).unwrap();
    assert_eq!(
        serde_json::to_value(&effects).unwrap(),
        json!([{"type": "objection_recorded", "proposal": p, "worker": h.id("w3"),
                "objections": 2, "workers": 5}])
    );
    assert_eq!(h.status(&p), "open");
    // The proposer itself may object to the executive's decision too; the
    // third of five escalates at once.
    let effects = object(&mut h, "w1", p).unwrap();
    match &effects[..] {
        [
            Effect::ObjectionRecorded { objections: 3, .. },
            Effect::ProposalClosed {
                status,
                reason,
                cause,
                ..
            },
        ] => {
            assert_eq!(status.as_str(), "escalated");
            assert_eq!(*reason, Some(Reason::Objected));
            assert_eq!(*cause, CloseCause::Objected);
        }
        other => panic!("{other:?}"),
    }
    // Further objections are too late; the package has everything.
    assert_eq!(kind(object(&mut h, "w4", p)), ErrorKind::ProposalClosed);
    let record = h.space.proposal(&p).unwrap();
    let package = serde_json::to_value(DecisionPackage::build(&h.space, record)).unwrap();
    assert_eq!(package["reason"], "objected");
    assert_eq!(package["hierarchy"]["decision"], "approve");
    assert_eq!(package["hierarchy"]["note"], "boss says approve");
    assert_eq!(package["hierarchy"]["workers"], 5);
    let objectors: Vec<&str> = package["hierarchy"]["objections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(objectors, ["w2", "w3", "w1"]);
    let positions: Vec<(&str, &str)> = package["positions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| (x["name"].as_str().unwrap(), x["stance"].as_str().unwrap()))
        .collect();
    assert_eq!(positions, [("s1", "endorse"), ("s2", "challenge")]);
    // A human overrules the executive.
    h.decide("rita", p, "reject").unwrap();
    assert_eq!(h.status(&p), "rejected_by_human");
}

#[test]
fn exactly_half_objecting_leaves_the_executive_standing() {
    let mut h = space_with(&["w1", "w2", "w3", "w4"]);
    let p = evaluated(&mut h);
    decide(&mut h, "boss", p, "reject").unwrap();
    object(&mut h, "w1", p).unwrap();
    object(&mut h, "w2", p).unwrap();
    assert_eq!(h.status(&p), "open");
    h.advance(WINDOW);
    assert_eq!(h.status(&p), "rejected");
}

#[test]
fn objections_and_decisions_out_of_turn_are_refused_and_change_nothing() {
    let mut h = space_with(&WORKERS);
    let p = h.propose_with("w1", body(&h, "ship 3.0")).unwrap();
    h.respond("s1", p, "endorse", "0.9").unwrap();
    let before = h.space.state_hash();
    // Before the executive decides, a worker cannot object.
    let err = object(&mut h, "w2", p).unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidState);
    assert!(err.message.contains("not decided"), "{}", err.message);
    // Nobody but the executive decides an open hierarchy proposal, a
    // reviewer included; an outsider is not an evaluator either.
    assert_eq!(
        kind(decide(&mut h, "rita", p, "approve")),
        ErrorKind::NotEligible
    );
    assert_eq!(
        kind(decide(&mut h, "s2", p, "approve")),
        ErrorKind::NotEligible
    );
    assert_eq!(
        kind(h.respond("outsider", p, "endorse", "1")),
        ErrorKind::NotEligible
    );
    assert_eq!(h.space.state_hash(), before);
    h.respond("s2", p, "endorse", "0.7").unwrap();
    decide(&mut h, "boss", p, "approve").unwrap();
    let before = h.space.state_hash();
    // After it: non-workers may not object (a supervisor that answered is
    // told duplicate, the rules of §4.9 as for any response).
    assert_eq!(kind(object(&mut h, "outsider", p)), ErrorKind::NotEligible);
    assert_eq!(kind(object(&mut h, "boss", p)), ErrorKind::NotEligible);
    assert_eq!(kind(object(&mut h, "s1", p)), ErrorKind::Duplicate);
    // An objection is a challenge.
    assert_eq!(
        kind(h.respond("w2", p, "endorse", "0.9")),
        ErrorKind::Malformed
    );
    assert_eq!(
        kind(h.respond("w2", p, "abstain", "0.5")),
        ErrorKind::Malformed
    );
    assert_eq!(h.space.state_hash(), before);
    // One objection per worker.
    object(&mut h, "w2", p).unwrap();
    let before = h.space.state_hash();
    assert_eq!(kind(object(&mut h, "w2", p)), ErrorKind::Duplicate);
    assert_eq!(h.space.state_hash(), before);
}

#[test]
fn who_may_propose_and_where() {
    let mut h = space_with(&WORKERS);
    let before = h.space.state_hash();
    // Only a worker proposes; only in a domain with a hierarchy.
    for who in ["s1", "boss", "outsider"] {
        assert_eq!(
            kind(h.propose_with(who, body(&h, who))),
            ErrorKind::NotEligible,
            "{who}"
        );
    }
    let mut b = body(&h, "elsewhere");
    b["domain"] = json!("ops.other");
    assert_eq!(kind(h.propose_with("w1", b)), ErrorKind::InvalidState);
    let mut b = body(&h, "committee");
    b["committee"] = json!(3);
    assert_eq!(kind(h.propose_with("w1", b)), ErrorKind::Malformed);
    assert_eq!(h.space.state_hash(), before);
    // A plain vote in the same domain is not a hierarchy proposal.
    let vote = h
        .propose("outsider", "ops.deploy", "medium", "0.8")
        .unwrap();
    assert!(h.space.proposal(&vote).unwrap().hierarchy.is_none());
}

#[test]
fn without_an_executive_decision_the_deadline_escalates() {
    let mut h = space_with(&WORKERS);
    let p = evaluated(&mut h);
    h.advance(10 * MINUTE);
    assert_eq!(h.status(&p), "escalated");
    let closure = h.space.proposal(&p).unwrap().closure.unwrap();
    assert_eq!(closure.verdict.reason(), Some(Reason::NoQuorum));
    assert_eq!(closure.cause, CloseCause::Deadline);
    // Then it is the humans' decision, not the executive's.
    assert_eq!(
        kind(decide(&mut h, "boss", p, "approve")),
        ErrorKind::WrongRole
    );
}

#[test]
fn a_hierarchy_is_configuration_the_admin_signs_and_it_is_checked() {
    let mut h = space_with(&WORKERS);
    let id = |h: &Harness, n: &str| h.id(n);
    let bad = |h: &Harness,
               workers: Vec<String>,
               supervisors: Vec<String>,
               exec: &str,
               window: u64| {
        json!({"set": {"hierarchies": {"ops.deploy": {"workers": workers, "supervisors": supervisors,
                "executive": id(h, exec), "objection_window_ms": window}}}})
    };
    let w = |h: &Harness, names: &[&str]| {
        names
            .iter()
            .map(|n| id(h, n).to_string())
            .collect::<Vec<_>>()
    };
    let before = h.space.state_hash();
    let cases = [
        (
            bad(&h, w(&h, &["w1"]), w(&h, &["w1"]), "boss", WINDOW),
            ErrorKind::Malformed,
        ),
        (
            bad(&h, w(&h, &["w1"]), w(&h, &["s1"]), "w1", WINDOW),
            ErrorKind::Malformed,
        ),
        (
            bad(&h, vec![], w(&h, &["s1"]), "boss", WINDOW),
            ErrorKind::Malformed,
        ),
        (
            bad(&h, w(&h, &["w1"]), w(&h, &["s1"]), "boss", 0),
            ErrorKind::OutOfRange,
        ),
    ];
    for (change, expected) in cases {
        assert_eq!(kind(h.configure(change.clone())), expected, "{change}");
    }
    assert_eq!(
        kind(h.configure_as("w1", json!({"set": {"hierarchies": {}}}))),
        ErrorKind::WrongRole
    );
    assert_eq!(h.space.state_hash(), before);
    // A proposal keeps the roles frozen when it entered: a change later
    // does not take its objectors away.
    let p = evaluated(&mut h);
    h.configure(json!({"set": {"hierarchies": {}}})).unwrap();
    decide(&mut h, "boss", p, "approve").unwrap();
    object(&mut h, "w5", p).unwrap();
}

#[test]
fn the_audit_and_a_replica_re_derive_hierarchies() {
    let mut h = space_with(&WORKERS);
    let overruled = evaluated(&mut h);
    decide(&mut h, "boss", overruled, "approve").unwrap();
    for w in ["w2", "w3", "w4"] {
        object(&mut h, w, overruled).unwrap();
    }
    h.time += 1;
    let standing = evaluated(&mut h);
    decide(&mut h, "boss", standing, "reject").unwrap();
    object(&mut h, "w5", standing).unwrap();
    h.advance(WINDOW);
    assert_eq!(h.status(&overruled), "escalated");
    assert_eq!(h.status(&standing), "rejected");
    let summary = audit::verify(h.lines.iter().map(String::as_str)).unwrap();
    assert_eq!(summary.entries, h.lines.len() as u64);
    let mut replica = Space::new();
    for e in &h.entries {
        replica.apply(e).unwrap();
    }
    assert_eq!(replica.state_hash(), h.space.state_hash());
    // A snapshot keeps the roles, the decisions and the objections: a
    // restored space goes on exactly as the original.
    let mut restored = Space::from_snapshot(&h.space.to_snapshot()).unwrap();
    assert_eq!(restored.state_hash(), h.space.state_hash());
    let p = evaluated(&mut h);
    decide(&mut h, "boss", p, "approve").unwrap();
    for e in &h.entries[h.entries.len() - 4..] {
        restored.apply(e).unwrap();
    }
    assert_eq!(restored.state_hash(), h.space.state_hash());
}

#[test]
fn a_decided_proposal_cannot_be_superseded_before_its_window_closes() {
    let mut h = space_with(&WORKERS);
    let p = evaluated(&mut h);
    // Before the executive decides, the proposer may still replace it.
    let mut early = body(&h, "ship 3.0, revised");
    early["supersedes"] = json!(p);
    let mut probe = space_with(&WORKERS);
    let q = evaluated(&mut probe);
    let mut revised = body(&probe, "ship 3.0, revised");
    revised["supersedes"] = json!(q);
    probe.propose_with("w1", revised).unwrap();
    assert_eq!(probe.status(&q), "superseded");

    decide(&mut h, "boss", p, "reject").unwrap();
    let before = h.space.state_hash();
    let r = h.propose_with("w1", early);
    assert_eq!(kind(r), ErrorKind::InvalidState);
    assert_eq!(h.space.state_hash(), before);
    assert_eq!(h.status(&p), "open");
    // The window decides it.
    h.advance(WINDOW + 1);
    assert_eq!(h.status(&p), "rejected");
}
