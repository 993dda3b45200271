//! Stake-weighted validation and selection (PROTOCOL.md §20) through the
//! real node: granted stakes, a committee of a low-stakes stake proposal,
//! refusals of outsiders, the round-proposer query and `synod lottery
//! proposer`, and the audit of the resulting log.

mod support;

use std::process::Command;

use serde_json::{Value, json};
use support::*;
use synod_core::wire::MessageType;

fn configure(http: &Http, admin: &synod_core::Keypair, change: Value) -> Answer {
    let (space, time) = http.space();
    let seq = http.get("/v1/space").body["config_seq"].as_u64().unwrap() + 1;
    let message = sign(
        &space,
        time,
        MessageType::Configuration,
        json!({"seq": seq, "change": change}),
        admin,
    );
    http.post("/v1/config", &message)
}

fn stake_proposal(http: &Http, who: &synod_core::Keypair, summary: &str, extra: Value) -> Answer {
    let (space, time) = http.space();
    let mut body = json!({"domain": "ops.deploy", "action": {"kind": "deploy", "summary": summary},
                          "confidence": "0.9", "stakes": "low", "deadline": time + 600_000,
                          "method": "stake"});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    http.post(
        "/v1/proposals",
        &sign(&space, time, MessageType::Proposal, body, who),
    )
}

fn respond(http: &Http, who: &synod_core::Keypair, id: &str, stance: &str) -> Answer {
    let (space, time) = http.space();
    let body = json!({"proposal": id, "stance": stance, "confidence": "0.8"});
    http.post(
        &format!("/v1/proposals/{id}/responses"),
        &sign(&space, time, MessageType::Response, body, who),
    )
}

#[test]
fn committees_and_round_proposers_over_http() {
    let dir = TempDir::new("stake");
    let server = Server::start(dir.path());
    let http = server.client();
    let admin = server.admin();
    assert!(
        configure(
            &http,
            &admin,
            json!({"set": {"stake": "granted", "min_committee": 3}})
        )
        .ok()
    );
    let names: Vec<String> = (1..=8).map(|i| format!("holder-{i}")).collect();
    let keys: Vec<_> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let k = admit(&http, &admin, n, json!({"ops.*": "1"}), &["agent"]);
            let answer = configure(
                &http,
                &admin,
                json!({"grant": {"agent": k.id(), "authorities": {"ops.*": "1"},
                                 "roles": ["agent"], "stake": i + 1}}),
            );
            assert!(answer.ok(), "{answer:?}");
            k
        })
        .collect();

    // A committee of three decides a low-stakes stake proposal.
    let answer = stake_proposal(&http, &keys[0], "deploy 2.0", json!({"committee": 3}));
    assert_eq!(answer.status, 201, "{answer:?}");
    let id = answer.body["id"].as_str().unwrap().to_string();
    let detail = http.get(&format!("/v1/proposals/{id}")).body;
    assert_eq!(detail["committee"], 3);
    assert_eq!(detail["method"], "stake");
    assert_eq!(detail["electorate"]["members"], 3);
    // Who sits: redo the draw from the log export (the proposal's own
    // entry hash seeds it; candidates are the holders in admission order).
    let lines = http.log_lines();
    let entry: Value = serde_json::from_str(
        lines
            .iter()
            .find(|l| l.contains(&format!("\"proposal\":\"{id}\"")))
            .unwrap(),
    )
    .unwrap();
    let seed = synod_core::stake::committee_seed(
        &synod_core::Digest::from_hex(entry["hash"].as_str().unwrap()).unwrap(),
    );
    let stakes: Vec<u128> = (1..=8).map(|s| s * 1_000_000_000_000).collect();
    let mut drawn = synod_core::lottery::draw(&seed, &stakes, 3);
    drawn.sort_unstable();
    // Outsiders are refused with not_eligible and change nothing.
    let before = http.state_hash();
    for i in (1..8).filter(|i| !drawn.contains(i)) {
        let answer = respond(&http, &keys[i], &id, "endorse");
        assert_eq!(answer.status, 403, "{answer:?}");
        assert_eq!(answer.kind(), "not_eligible");
        assert!(
            answer.body["message"]
                .as_str()
                .unwrap()
                .contains("committee"),
            "{answer:?}"
        );
    }
    assert_eq!(http.state_hash(), before);
    for &i in drawn.iter().filter(|&&i| i != 0) {
        if http.get(&format!("/v1/proposals/{id}")).body["status"] == "open" {
            assert!(respond(&http, &keys[i], &id, "endorse").ok());
        }
    }
    assert_eq!(
        http.get(&format!("/v1/proposals/{id}")).body["status"],
        "approved"
    );
    // A medium-stakes committee is a policy violation.
    let mut answer = stake_proposal(&http, &keys[0], "deploy 2.1", json!({"committee": 3}));
    assert!(answer.ok());
    answer = {
        let (space, time) = http.space();
        let body = json!({"domain": "ops.deploy", "action": {"kind": "deploy", "summary": "x"},
                          "confidence": "0.9", "stakes": "medium", "deadline": time + 600_000,
                          "method": "stake", "committee": 3});
        http.post(
            "/v1/proposals",
            &sign(&space, time, MessageType::Proposal, body, &keys[0]),
        )
    };
    assert_eq!(answer.kind(), "policy_violation", "{answer:?}");

    // Rounds of a day: only the drawn holder may propose.
    assert!(
        configure(
            &http,
            &admin,
            json!({"set": {"proposer_round_ms": 86_400_000u64}})
        )
        .ok()
    );
    let draw = http.get("/v1/lottery/proposer?domain=ops.deploy").body;
    assert_eq!(draw["enabled"], true, "{draw}");
    assert_eq!(draw["candidates"].as_array().unwrap().len(), 8);
    let proposer = draw["proposer"].as_str().unwrap().to_string();
    // The CLI redoes the draw from what the node reports and agrees.
    let out = Command::new(bin())
        .args([
            "lottery",
            "proposer",
            "--domain",
            "ops.deploy",
            "--node",
            &http.base,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), proposer);
    assert!(String::from_utf8_lossy(&out.stderr).contains("confirmed"));
    let drawn_key = keys
        .iter()
        .find(|k| k.id().to_string() == proposer)
        .unwrap();
    let other = keys
        .iter()
        .find(|k| k.id().to_string() != proposer)
        .unwrap();
    let answer = stake_proposal(&http, other, "not my round", json!({}));
    assert_eq!(answer.kind(), "not_eligible", "{answer:?}");
    let answer = stake_proposal(&http, drawn_key, "my round", json!({}));
    assert_eq!(answer.status, 201, "{answer:?}");
    assert_eq!(
        http.get("/v1/lottery/proposer?domain=Not..A.Domain").body["error"],
        "malformed"
    );

    // The audit re-derives every committee, refusal-free append and round.
    let export = dir.path().join("export.jsonl");
    std::fs::write(&export, http.log_lines().join("\n")).unwrap();
    let out = Command::new(bin())
        .args(["audit", "verify", "--json"])
        .arg(&export)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
