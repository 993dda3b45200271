//! Open questions with clustered answers through the real state machine
//! (docs/PROTOCOL.md §19).

mod common;

use common::{Harness, MINUTE};
use serde_json::{Value, json};
use synod_core::audit;
use synod_core::package::DecisionPackage;
use synod_core::space::{CloseCause, Effect};
use synod_core::tally::Reason;
use synod_core::wire::MessageType;
use synod_core::{Digest, ErrorKind, Rejection, Space, Status};

/// alice asks; bob, carol, dave and erin answer (authority 1 in `geo.*`,
/// trust 0.5: equal weights); rita reviews; oscar reports outcomes.
fn team() -> Harness {
    let mut h = Harness::closed();
    for name in ["alice", "bob", "carol", "dave", "erin"] {
        h.agent(name, &[("geo.*", "1")]);
    }
    h.person("rita", &["reviewer"]);
    h.person("oscar", &["oracle"]);
    h
}

fn ask(h: &mut Harness, stakes: &str, tolerance: Option<&str>) -> Digest {
    let mut body = json!({
        "domain": "geo.facts",
        "action": {"kind": "answer", "summary": format!("A question at {stakes} stakes, tolerance {tolerance:?}")},
        "confidence": "1",
        "stakes": stakes,
        "deadline": h.time + 10 * MINUTE,
        "method": "open",
    });
    if let Some(t) = tolerance {
        body["open"] = json!({"tolerance": t});
    }
    h.propose_with("alice", body).unwrap()
}

fn answer(
    h: &mut Harness,
    who: &str,
    p: Digest,
    text: &str,
    confidence: &str,
) -> Result<Vec<Effect>, Rejection> {
    h.send(
        who,
        MessageType::Response,
        json!({"proposal": p, "answer": text, "confidence": confidence, "reasoning": format!("{who} looked it up")}),
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

fn clusters_of(effects: &[Effect]) -> Value {
    effects
        .iter()
        .find_map(|e| match e {
            Effect::ProposalClosed { clusters, .. } => {
                Some(serde_json::to_value(clusters).unwrap())
            }
            _ => None,
        })
        .expect("closed")
}

#[test]
fn equivalent_texts_cluster_and_the_heaviest_cluster_wins() {
    let mut h = team();
    let p = ask(&mut h, "medium", None);
    answer(&mut h, "bob", p, "Paris", "0.9").unwrap();
    answer(&mut h, "carol", p, "  paris ", "0.8").unwrap();
    answer(&mut h, "dave", p, "PARIS\t", "0.7").unwrap();
    let effects = answer(&mut h, "erin", p, "Lyon", "0.6").unwrap();
    // Three of four equal weights: 0.75 ≥ 0.7 (medium stakes).
    assert_eq!(
        closed(&effects),
        Some((
            Status::Approved,
            None,
            CloseCause::AllResponded,
            Some("paris".into())
        ))
    );
    let clusters = clusters_of(&effects);
    assert_eq!(clusters["leader"], "paris");
    assert_eq!(clusters["agreement"], "0.75");
    assert_eq!(clusters["clusters"][0]["answers"], json!(["paris"]));
    // The dissenting cluster stays in the decision package.
    let package = DecisionPackage::build(&h.space, h.space.proposal(&p).unwrap());
    let open = package.open.unwrap();
    assert_eq!(open.choice.as_deref(), Some("paris"));
    assert_eq!(open.clusters.clusters[1].answer, "lyon");
    assert_eq!(package.positions[0].answer.as_deref(), Some("paris"));
    assert_eq!(package.tally.endorse, "0");
}

#[test]
fn numbers_within_the_tolerance_cluster_and_chains_join() {
    let mut h = team();
    let p = ask(&mut h, "medium", Some("0.5"));
    // 100 ~ 100.4 and 100.4 ~ 100.9 (each within 0.5): one cluster, though
    // 100 and 100.9 are 0.9 apart. 250 stands alone.
    answer(&mut h, "bob", p, "100.9", "0.9").unwrap();
    answer(&mut h, "carol", p, "100.40", "0.8").unwrap();
    answer(&mut h, "dave", p, "100", "0.7").unwrap();
    let effects = answer(&mut h, "erin", p, "250", "0.6").unwrap();
    let clusters = clusters_of(&effects);
    assert_eq!(
        clusters["clusters"][0]["answers"],
        json!(["100", "100.4", "100.9"])
    );
    // Equal weights: the first in byte order names the cluster.
    assert_eq!(clusters["leader"], "100");
    assert_eq!(closed(&effects).unwrap().0, Status::Approved);
    // Without a tolerance, the same answers are four clusters: a tie.
    let mut g = team();
    let q = ask(&mut g, "medium", None);
    for (who, a) in [
        ("bob", "100.9"),
        ("carol", "100.40"),
        ("dave", "100"),
        ("erin", "250"),
    ] {
        answer(&mut g, who, q, a, "0.8").unwrap();
    }
    let record = g.space.proposal(&q).unwrap();
    assert_eq!(record.status, Status::Escalated);
    assert_eq!(
        record.closure.unwrap().verdict.reason(),
        Some(Reason::Contested)
    );
    assert_eq!(record.clusters().unwrap().clusters.len(), 4);
}

#[test]
fn a_tie_between_clusters_escalates() {
    let mut h = team();
    let p = ask(&mut h, "low", None);
    answer(&mut h, "bob", p, "blue", "0.9").unwrap();
    answer(&mut h, "carol", p, "green", "0.9").unwrap();
    answer(&mut h, "dave", p, "Blue", "0.6").unwrap();
    let effects = answer(&mut h, "erin", p, "GREEN", "0.6").unwrap();
    assert_eq!(
        closed(&effects),
        Some((
            Status::Escalated,
            Some(Reason::Contested),
            CloseCause::AllResponded,
            None
        ))
    );
    let clusters = clusters_of(&effects);
    assert_eq!(clusters["leader"], Value::Null);
    assert_eq!(clusters["agreement"], "0");
    // A reviewer adopts an answer; decisions agree on the same normalised
    // answer only.
    assert_eq!(
        h.send(
            "rita",
            MessageType::Decision,
            json!({"proposal": p, "decision": "approve"})
        )
        .unwrap_err()
        .kind,
        ErrorKind::Malformed
    );
    let effects = h
        .send(
            "rita",
            MessageType::Decision,
            json!({"proposal": p, "decision": "approve", "answer": " Green"}),
        )
        .unwrap();
    assert!(matches!(&effects[1], Effect::HumanResolved { option: Some(a), .. } if a == "green"));
    let record = h.space.proposal(&p).unwrap();
    assert_eq!(record.status, Status::ApprovedByHuman);
    assert_eq!(
        record.open.as_ref().unwrap().choice.as_deref(),
        Some("green")
    );
}

#[test]
fn below_the_threshold_or_without_quorum_escalates() {
    let mut h = team();
    let p = ask(&mut h, "high", None);
    // 3 of 4 = 0.75 < 0.8 at high stakes.
    for (who, a) in [("bob", "x"), ("carol", "x"), ("dave", "x"), ("erin", "y")] {
        answer(&mut h, who, p, a, "0.9").unwrap();
    }
    let record = h.space.proposal(&p).unwrap();
    assert_eq!(record.status, Status::Escalated);
    assert_eq!(
        record.closure.unwrap().verdict.reason(),
        Some(Reason::Contested)
    );
    // One answer of four members at medium stakes: V = 0.5 < 0.5 × 2.5.
    let q = ask(&mut h, "medium", None);
    answer(&mut h, "bob", q, "x", "0.9").unwrap();
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
fn the_outcome_names_the_right_answer_and_scores_each_answer() {
    let mut h = team();
    let p = ask(&mut h, "medium", None);
    answer(&mut h, "bob", p, "Paris", "0.9").unwrap();
    answer(&mut h, "carol", p, "paris", "0.8").unwrap();
    answer(&mut h, "dave", p, "paris", "0.7").unwrap();
    answer(&mut h, "erin", p, "Lyon", "0.8").unwrap();
    for (body, kind) in [
        (
            json!({"proposal": p, "option": "paris"}),
            ErrorKind::Malformed,
        ),
        (
            json!({"proposal": p, "result": "success"}),
            ErrorKind::Malformed,
        ),
        (json!({"proposal": p, "answer": ""}), ErrorKind::Malformed),
        (
            json!({"proposal": p, "answer": "paris", "score": "1"}),
            ErrorKind::Malformed,
        ),
    ] {
        let before = h.space.state_hash();
        assert_eq!(
            h.send("oscar", MessageType::Outcome, body.clone())
                .unwrap_err()
                .kind,
            kind,
            "{body}"
        );
        assert_eq!(h.space.state_hash(), before);
    }
    let effects = h
        .send(
            "oscar",
            MessageType::Outcome,
            json!({"proposal": p, "answer": "PARIS"}),
        )
        .unwrap();
    assert!(
        matches!(&effects[0], Effect::OutcomeRecorded { option: Some(a), score: None, .. } if a == "paris")
    );
    let after: Vec<(String, String)> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::TrustUpdated { agent, after, .. } => {
                Some((agent.to_string(), after.to_string()))
            }
            _ => None,
        })
        .collect();
    // g = 1 − 2 (c − y)², trust 0.5 + 0.05 × (g − 0.5): right at 0.9 →
    // g 0.98, 0.524; at 0.8 → 0.92, 0.521; at 0.7 → 0.82, 0.516; wrong
    // at 0.8 → −0.28, 0.461. The asker made no claim and is not scored.
    assert_eq!(
        after,
        vec![
            (h.id("bob").to_string(), "0.524".to_string()),
            (h.id("carol").to_string(), "0.521".to_string()),
            (h.id("dave").to_string(), "0.516".to_string()),
            (h.id("erin").to_string(), "0.461".to_string()),
        ]
    );
}

#[test]
fn malformed_open_messages_are_refused_and_change_nothing() {
    let mut h = team();
    let p = ask(&mut h, "medium", Some("1"));
    let vote = {
        let mut b = h.proposal_body("geo.facts", "medium", "0.6");
        b["action"]["summary"] = json!("a vote");
        h.propose_with("alice", b).unwrap()
    };
    let base = |extra: Value| {
        let mut b = json!({
            "domain": "geo.facts", "action": {"kind": "answer", "summary": "q"},
            "confidence": "1", "stakes": "medium", "deadline": h.time + MINUTE, "method": "open",
        });
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    let proposals = [
        (
            "options on an open question",
            base(json!({"options": ["a", "b"]})),
            ErrorKind::Malformed,
        ),
        (
            "a distribution on an open question",
            base(json!({"distribution": {"a": "1"}})),
            ErrorKind::Malformed,
        ),
        (
            "a negative tolerance",
            base(json!({"open": {"tolerance": "-1"}})),
            ErrorKind::Malformed,
        ),
        (
            "a tolerance in exponent form",
            base(json!({"open": {"tolerance": "1e3"}})),
            ErrorKind::Malformed,
        ),
        (
            "a tolerance with 7 places",
            base(json!({"open": {"tolerance": "0.0000001"}})),
            ErrorKind::Malformed,
        ),
        (
            "an unknown open member",
            base(json!({"open": {"similarity": "fuzzy"}})),
            ErrorKind::Malformed,
        ),
        (
            "open terms on a vote",
            base(json!({"method": "vote", "open": {"tolerance": "1"}})),
            ErrorKind::Malformed,
        ),
    ];
    for (what, body, kind) in proposals {
        let before = h.space.state_hash();
        assert_eq!(
            h.propose_with("alice", body).unwrap_err().kind,
            kind,
            "{what}"
        );
        assert_eq!(h.space.state_hash(), before, "{what}");
    }
    let responses = [
        (
            "a stance on an open question",
            json!({"proposal": p, "stance": "endorse", "confidence": "0.9"}),
            ErrorKind::Malformed,
        ),
        (
            "an answer without confidence",
            json!({"proposal": p, "answer": "x"}),
            ErrorKind::Malformed,
        ),
        (
            "an answer with a stance",
            json!({"proposal": p, "answer": "x", "stance": "endorse", "confidence": "0.9"}),
            ErrorKind::Malformed,
        ),
        (
            "an empty answer",
            json!({"proposal": p, "answer": " \n ", "confidence": "0.9"}),
            ErrorKind::Malformed,
        ),
        (
            "a control character",
            json!({"proposal": p, "answer": "a\u{7}b", "confidence": "0.9"}),
            ErrorKind::Malformed,
        ),
        (
            "an answer over 256 bytes",
            json!({"proposal": p, "answer": "é".repeat(129), "confidence": "0.9"}),
            ErrorKind::TooLarge,
        ),
        (
            "a distribution on an open question",
            json!({"proposal": p, "distribution": {"a": "1"}}),
            ErrorKind::Malformed,
        ),
        (
            "an answer on a vote",
            json!({"proposal": vote, "answer": "x", "confidence": "0.9"}),
            ErrorKind::Malformed,
        ),
    ];
    for (what, body, kind) in responses {
        let before = h.space.state_hash();
        assert_eq!(
            h.send("bob", MessageType::Response, body).unwrap_err().kind,
            kind,
            "{what}"
        );
        assert_eq!(h.space.state_hash(), before, "{what}");
    }
    // An abstention is fine, and so is a 256-byte answer.
    h.send(
        "bob",
        MessageType::Response,
        json!({"proposal": p, "stance": "abstain", "confidence": "0"}),
    )
    .unwrap();
    answer(&mut h, "carol", p, &"é".repeat(128), "0.5").unwrap();
}

#[test]
fn an_open_log_is_re_derived_by_the_audit_and_by_replicas() {
    let mut h = team();
    let p = ask(&mut h, "medium", Some("0.5"));
    answer(&mut h, "bob", p, "42", "0.9").unwrap();
    answer(&mut h, "carol", p, "42.3", "0.8").unwrap();
    answer(&mut h, "dave", p, "17", "0.6").unwrap();
    h.advance(10 * MINUTE);
    h.send(
        "oscar",
        MessageType::Outcome,
        json!({"proposal": p, "answer": "42.5"}),
    )
    .unwrap();
    let summary = audit::verify(h.lines.iter().map(String::as_str)).unwrap();
    assert_eq!(summary.state_hash, h.space.state_hash());
    let mut replica = Space::new();
    for entry in &h.entries {
        assert_eq!(replica.apply(entry).unwrap().rejected, None);
    }
    assert_eq!(replica.state_hash(), h.space.state_hash());
    let restored = Space::from_snapshot(&h.space.to_snapshot()).unwrap();
    assert_eq!(restored.state_hash(), h.space.state_hash());
    let tampered: Vec<String> = h
        .lines
        .iter()
        .map(|l| l.replace("\"leader\":\"42\"", "\"leader\":\"17\""))
        .collect();
    assert_ne!(tampered, h.lines);
    assert!(matches!(
        audit::verify(tampered.iter().map(String::as_str)).unwrap_err(),
        audit::AuditError::EffectsMismatch { .. }
    ));
}

#[test]
fn a_bridging_answer_joins_two_groups_as_documented() {
    // §19.2: clusters are connected components, so an answer between two
    // groups within the tolerance of both joins them. Without erin's 105,
    // 100 and 110 (tolerance 5) are two clusters of equal weight: a tie.
    let mut h = team();
    let p = ask(&mut h, "low", Some("5"));
    answer(&mut h, "bob", p, "100", "0.8").unwrap();
    answer(&mut h, "carol", p, "110", "0.8").unwrap();
    let before = h.space.proposal(&p).unwrap().clusters().unwrap();
    assert_eq!(before.clusters.len(), 2);
    assert_eq!(before.leader, None);
    // With it, one cluster holds everything; the package shows every
    // answer in it, so a reviewer can see the span (100 to 110).
    answer(&mut h, "erin", p, "105", "0.5").unwrap();
    let after = h.space.proposal(&p).unwrap().clusters().unwrap();
    assert_eq!(after.clusters.len(), 1);
    assert_eq!(after.clusters[0].answers, vec!["100", "105", "110"]);
    assert_eq!(after.agreement, "1");
}
