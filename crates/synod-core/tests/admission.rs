//! Proof-of-work admission through the real state machine
//! (docs/PROTOCOL.md §16): who must stamp, what a stamp is bound to, and
//! that the audit re-derives every admission.

mod common;

use common::{Harness, MINUTE};
use serde_json::{Value, json};
use synod_core::audit;
use synod_core::stamp::{meets, mint, stamp_base, stamp_body};
use synod_core::wire::{MessageType, Verified};
use synod_core::{ErrorKind, Space};

/// An open space where proposers below trust 0.2 must stamp at 16 bits:
/// `newbie` registered itself (trust 0.1), `vet` was granted authority
/// (trust 0.5); `oscar` reports outcomes.
fn open_space() -> Harness {
    let mut h = Harness::with_config(json!({
        "mode": "open",
        "admission_trust_below": "0.2",
        "admission_difficulty": 16,
    }));
    h.register_declaring("newbie", &[("ops.*", "0.5")]).unwrap();
    h.grant("vet", &[("ops.*", "1")], &["agent"]);
    h.register_declaring("vet", &[]).unwrap();
    h.person("oscar", &["oracle"]);
    h
}

fn body(h: &Harness, summary: &str) -> Value {
    let mut b = h.proposal_body("ops.deploy", "low", "0.8");
    b["action"]["summary"] = json!(summary);
    b["space"] = json!(common::SPACE);
    b["created_at"] = json!(h.time);
    b
}

/// `body` stamped for `signer` at `difficulty` bits.
fn stamped(h: &Harness, signer: &str, body: &Value, difficulty: u32) -> Value {
    let mut b = body.clone();
    stamp_body(&mut b, &h.id(signer), difficulty).unwrap();
    b
}

fn propose(h: &mut Harness, signer: &str, body: Value) -> Result<(), ErrorKind> {
    h.propose_with(signer, body).map(|_| ()).map_err(|r| r.kind)
}

#[test]
fn off_by_default() {
    // §7.0: admission_trust_below defaults to 0, and no trust is below 0.
    let mut h = Harness::with_config(json!({"mode": "open"}));
    h.register_declaring("newbie", &[("ops.*", "0.5")]).unwrap();
    assert_eq!(h.space.config().admission_trust_below.micros(), 0);
    assert_eq!(h.space.config().admission_difficulty, 20);
    let b = body(&h, "deploy 1");
    assert_eq!(propose(&mut h, "newbie", b), Ok(()));
}

#[test]
fn a_proposer_below_the_trust_must_stamp() {
    let mut h = open_space();
    let plain = body(&h, "deploy 1");
    assert_eq!(
        propose(&mut h, "newbie", plain.clone()),
        Err(ErrorKind::InsufficientWork)
    );
    // A trusted proposer needs none.
    assert_eq!(propose(&mut h, "vet", plain.clone()), Ok(()));
    // With a stamp of 16 bits, the newcomer is admitted.
    let good = stamped(&h, "newbie", &plain, 16);
    assert_eq!(propose(&mut h, "newbie", good), Ok(()));
}

#[test]
fn a_stamp_below_the_difficulty_is_refused() {
    let mut h = open_space();
    let plain = body(&h, "deploy 2");
    // The first nonce of 8 bits that is not also of 16.
    let base = stamp_base(&h.id("newbie"), &plain);
    let weak = (0..)
        .find(|&n| meets(&base, n, 8) && !meets(&base, n, 16))
        .unwrap();
    let mut b = plain.clone();
    b["stamp"] = json!(weak);
    assert_eq!(
        propose(&mut h, "newbie", b),
        Err(ErrorKind::InsufficientWork)
    );
}

#[test]
fn a_stamp_reused_on_another_proposal_is_refused() {
    // §16 (adversarial): the stamp is bound to the proposal's content and
    // signer; lifted onto another proposal, or by another agent, it fails.
    let mut h = open_space();
    h.register_declaring("mallory", &[("ops.*", "0.5")])
        .unwrap();
    let first = stamped(&h, "newbie", &body(&h, "deploy 3"), 16);
    let nonce = first["stamp"].clone();
    assert_eq!(propose(&mut h, "newbie", first.clone()), Ok(()));
    // The same proposal again is a duplicate (its id), not a second admission.
    assert_eq!(
        propose(&mut h, "newbie", first.clone()),
        Err(ErrorKind::Duplicate)
    );
    let mut other = body(&h, "deploy 4");
    other["stamp"] = nonce.clone();
    assert_eq!(
        propose(&mut h, "newbie", other),
        Err(ErrorKind::InsufficientWork)
    );
    // Later: the same content at another created_at.
    h.advance(1);
    let mut later = first.clone();
    later["created_at"] = json!(h.time);
    assert_eq!(
        propose(&mut h, "newbie", later),
        Err(ErrorKind::InsufficientWork)
    );
    // Mallory copies newbie's stamped body word for word.
    assert_eq!(
        propose(&mut h, "mallory", first),
        Err(ErrorKind::InsufficientWork)
    );
}

#[test]
fn trust_lost_in_a_domain_brings_the_requirement() {
    // §16: the requirement follows the proposer's trust in the proposal's
    // domain now, so an agent that falls below it must stamp again.
    let mut h = Harness::with_config(json!({
        "admission_trust_below": "0.45",
        "admission_difficulty": 8,
    }));
    h.agent("vet", &[("ops.*", "1")]);
    h.agent("peer", &[("ops.*", "1")]);
    h.person("oscar", &["oracle"]);
    let first = body(&h, "deploy 5");
    let p = h.propose_with("vet", first).unwrap();
    h.respond("peer", p, "endorse", "0.9").unwrap();
    // Confidently wrong, twice: 0.5 → 0.4595 → 0.42... in ops.deploy.
    h.outcome("oscar", p, "failure").unwrap();
    h.advance(1);
    let second = body(&h, "deploy 6");
    let q = h.propose_with("vet", second).unwrap();
    h.respond("peer", q, "endorse", "0.9").unwrap();
    h.outcome("oscar", q, "failure").unwrap();
    assert!(h.trust("vet", "ops.deploy").parse::<f64>().unwrap() < 0.45);
    h.advance(1);
    let third = body(&h, "deploy 7");
    assert_eq!(
        propose(&mut h, "vet", third.clone()),
        Err(ErrorKind::InsufficientWork)
    );
    let ok = stamped(&h, "vet", &third, 8);
    assert_eq!(propose(&mut h, "vet", ok), Ok(()));
    // Another domain keeps the prior: no stamp there.
    let mut elsewhere = body(&h, "deploy 8");
    elsewhere["domain"] = json!("ops.review");
    assert_eq!(propose(&mut h, "vet", elsewhere), Ok(()));
}

#[test]
fn the_difficulty_is_bounded() {
    let mut h = open_space();
    let err = h
        .configure(json!({"set": {"admission_difficulty": 41}}))
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::OutOfRange);
    h.configure(json!({"set": {"admission_difficulty": 40}}))
        .unwrap();
}

#[test]
fn the_audit_and_replicas_re_derive_every_admission() {
    let mut h = open_space();
    let good = stamped(&h, "newbie", &body(&h, "deploy 9"), 16);
    propose(&mut h, "newbie", good).unwrap();
    h.advance(10 * MINUTE);
    let summary = audit::verify(h.lines.iter().map(String::as_str)).unwrap();
    assert_eq!(summary.state_hash, h.space.state_hash());
    // An ordered entry carrying an unstamped proposal is refused the same
    // way on every replica.
    let plain = Verified::sign(
        MessageType::Proposal,
        body(&h, "deploy 10"),
        &common::key_of("newbie"),
    );
    let last = h.entries.last().unwrap();
    let entry = synod_core::Entry {
        index: last.index + 1,
        time: last.time,
        prev: last.hash(),
        payload: synod_core::Payload::Message(plain),
    };
    let mut replica = Space::new();
    for e in &h.entries {
        replica.apply(e).unwrap();
    }
    let applied = replica.apply(&entry).unwrap();
    assert_eq!(applied.rejected.unwrap().kind, ErrorKind::InsufficientWork);
}

#[test]
fn minting_finds_the_first_nonce() {
    let h = open_space();
    let b = body(&h, "deploy 11");
    let base = stamp_base(&h.id("newbie"), &b);
    let nonce = mint(&base, 10).unwrap();
    assert!(meets(&base, nonce, 10));
    assert!((0..nonce).all(|n| !meets(&base, n, 10)));
}
