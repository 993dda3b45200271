//! `synod serve` over real HTTP: the API, bad input, concurrency, events,
//! deadlines, restarts.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::*;
use synod_core::wire::MessageType;

/// Three fraud agents, a reviewer key and an oracle in a fresh closed space.
fn team(server: &Server) -> BTreeMap<&'static str, synod_core::Keypair> {
    let http = server.client();
    let admin = server.admin();
    let mut keys = BTreeMap::new();
    keys.insert(
        "alice",
        admit(&http, &admin, "alice", json!({"fraud.*": "1"}), &["agent"]),
    );
    keys.insert(
        "bob",
        admit(&http, &admin, "bob", json!({"fraud.*": "0.8"}), &["agent"]),
    );
    keys.insert(
        "carol",
        admit(
            &http,
            &admin,
            "carol",
            json!({"fraud.*": "0.5"}),
            &["agent"],
        ),
    );
    keys.insert(
        "rita",
        admit(&http, &admin, "rita", json!({}), &["reviewer"]),
    );
    keys.insert(
        "oscar",
        admit(&http, &admin, "oscar", json!({}), &["oracle"]),
    );
    keys
}

#[test]
fn a_proposal_goes_from_submit_to_trust_over_http() {
    let dir = TempDir::new("lifecycle");
    let server = Server::start(dir.path());
    let http = server.client();
    let k = team(&server);
    let p = proposal(
        &http,
        &k["alice"],
        "fraud.detection",
        "critical",
        "0.9",
        "block card 4411",
        600_000,
    );
    let answer = http.post("/v1/proposals", &p);
    assert_eq!(answer.status, 201, "{answer:?}");
    let id = answer.body["id"].as_str().unwrap().to_string();
    assert_eq!(id, p.id().to_hex());

    let (space, time) = http.space();
    let r = http.post(
        &format!("/v1/proposals/{id}/responses"),
        &response(&space, time, &id, "endorse", "0.8", &k["bob"]),
    );
    assert!(r.ok(), "{r:?}");
    assert_eq!(r.body["status"], "open");
    // The open proposal shows its tentative leaning, marked not final.
    let view = http.get(&format!("/v1/proposals/{id}")).body;
    assert_eq!(view["leaning"]["final"], false);
    // Where an agent stands: bob has answered; carol may still; the oracle
    // is not in the electorate; a bad id is refused.
    let stand = |who: &str| {
        http.get(&format!("/v1/proposals/{id}?agent={}", k[who].id()))
            .body["member"]
            .clone()
    };
    let bob = stand("bob");
    assert_eq!(
        (
            bob["eligible"].clone(),
            bob["responded"].clone(),
            bob["stance"].clone()
        ),
        (json!(true), json!(true), json!("endorse"))
    );
    assert!(
        bob["influence"]
            .as_str()
            .is_some_and(|i| i.starts_with("0.")),
        "{bob}"
    );
    let carol = stand("carol");
    assert_eq!(
        (carol["eligible"].clone(), carol["responded"].clone()),
        (json!(true), json!(false))
    );
    assert_eq!(stand("alice")["proposer"], true);
    assert_eq!(stand("oscar")["eligible"], false);
    let bad = http.get(&format!("/v1/proposals/{id}?agent=did:key:nope"));
    assert_eq!((bad.status, bad.kind()), (400, "malformed"));
    let r = http.post(
        &format!("/v1/proposals/{id}/responses"),
        &response(&space, time, &id, "challenge", "0.6", &k["carol"]),
    );
    assert_eq!(r.body["status"], "escalated");

    let view = http.get(&format!("/v1/proposals/{id}")).body;
    assert_eq!(view["reason"], "stakes");
    assert_eq!(view["package"]["positions"].as_array().unwrap().len(), 3);
    assert_eq!(http.get("/v1/escalations").body["total"], 1);

    // The reviewer's identity comes from the signature on the decision.
    let decision = sign(
        &space,
        time,
        MessageType::Decision,
        json!({"proposal": id, "decision": "approve", "note": "ok"}),
        &k["rita"],
    );
    let d = http.post(&format!("/v1/escalations/{id}/decisions"), &decision);
    assert_eq!(d.body["status"], "approved_by_human", "{d:?}");

    let outcome = sign(
        &space,
        time,
        MessageType::Outcome,
        json!({"proposal": id, "result": "success"}),
        &k["oscar"],
    );
    let o = http.post(&format!("/v1/proposals/{id}/outcome"), &outcome);
    assert!(o.ok(), "{o:?}");
    let bob = http.get(&format!("/v1/agents/{}", k["bob"].id())).body;
    assert!(bob["trust"]["fraud.detection"].as_str().unwrap() > "0.5");
    assert_eq!(bob["outcomes"], 1);
    assert_eq!(bob["trust_history"].as_array().unwrap().len(), 1);

    let listed = http
        .get("/v1/proposals?status=approved_by_human&domain=fraud.*")
        .body;
    assert_eq!(listed["proposals"].as_array().unwrap().len(), 1);
    let (ok, out) = audit(&http.log_lines());
    assert!(ok, "{out}");
}

#[test]
fn bad_input_gets_its_error_and_changes_nothing() {
    let dir = TempDir::new("bad-input");
    let server = Server::start(dir.path());
    let http = server.client();
    let k = team(&server);
    let p = proposal(
        &http,
        &k["alice"],
        "fraud.detection",
        "critical",
        "0.9",
        "open one",
        600_000,
    );
    let id = post_proposal(&http, &p);
    let done = proposal(
        &http,
        &k["alice"],
        "fraud.detection",
        "low",
        "1",
        "closed one",
        600_000,
    );
    let done_id = http.post("/v1/proposals", &done).body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (space, time) = http.space();
    let first = response(&space, time, &id, "endorse", "0.7", &k["bob"]);
    assert!(
        http.post(&format!("/v1/proposals/{id}/responses"), &first)
            .ok()
    );
    let closing = response(&space, time, &done_id, "endorse", "1", &k["bob"]);
    assert!(
        http.post(&format!("/v1/proposals/{done_id}/responses"), &closing)
            .ok()
    );
    assert_ne!(
        http.get(&format!("/v1/proposals/{done_id}")).body["status"],
        "open"
    );

    let mut tampered = response(&space, time, &id, "endorse", "0.5", &k["carol"]).to_value();
    tampered["body"]["confidence"] = json!("0.9");
    let outsider = key("mallory");
    let responses_path = format!("/v1/proposals/{id}/responses");
    let cases: Vec<(&str, String, Vec<u8>, u16, &str)> = vec![
        (
            "malformed JSON",
            responses_path.clone(),
            b"{\"type\": \"response\",".to_vec(),
            400,
            "malformed",
        ),
        (
            "bad signature",
            responses_path.clone(),
            serde_json::to_vec(&tampered).unwrap(),
            401,
            "bad_signature",
        ),
        (
            "replayed message",
            responses_path.clone(),
            serde_json::to_vec(&first.to_value()).unwrap(),
            409,
            "duplicate",
        ),
        (
            "duplicate response",
            responses_path.clone(),
            serde_json::to_vec(
                &response(&space, time, &id, "challenge", "1", &k["bob"]).to_value(),
            )
            .unwrap(),
            409,
            "duplicate",
        ),
        (
            "response after close",
            format!("/v1/proposals/{done_id}/responses"),
            serde_json::to_vec(
                &response(&space, time, &done_id, "endorse", "1", &k["carol"]).to_value(),
            )
            .unwrap(),
            409,
            "proposal_closed",
        ),
        (
            "ineligible agent",
            responses_path.clone(),
            serde_json::to_vec(&response(&space, time, &id, "endorse", "1", &k["rita"]).to_value())
                .unwrap(),
            403,
            "not_eligible",
        ),
        (
            "unknown agent",
            responses_path.clone(),
            serde_json::to_vec(&response(&space, time, &id, "endorse", "1", &outsider).to_value())
                .unwrap(),
            403,
            "unknown_agent",
        ),
        (
            "oversized body",
            responses_path.clone(),
            vec![b' '; 200_000],
            413,
            "too_large",
        ),
        (
            "unknown proposal",
            format!("/v1/proposals/{}/responses", "ab".repeat(32)),
            serde_json::to_vec(
                &response(&space, time, &"ab".repeat(32), "endorse", "1", &k["carol"]).to_value(),
            )
            .unwrap(),
            404,
            "unknown_proposal",
        ),
        (
            "confidence out of range",
            responses_path.clone(),
            serde_json::to_vec(
                &response(&space, time, &id, "endorse", "1.01", &k["carol"]).to_value(),
            )
            .unwrap(),
            422,
            "out_of_range",
        ),
        (
            "path and body disagree",
            responses_path.clone(),
            serde_json::to_vec(
                &response(&space, time, &done_id, "endorse", "1", &k["carol"]).to_value(),
            )
            .unwrap(),
            400,
            "malformed",
        ),
        (
            "wrong message type",
            responses_path.clone(),
            serde_json::to_vec(
                &proposal(&http, &k["carol"], "fraud.x", "low", "1", "x", 60_000).to_value(),
            )
            .unwrap(),
            400,
            "malformed",
        ),
        (
            "unknown field",
            responses_path.clone(),
            {
                let mut v = response(&space, time, &id, "endorse", "1", &k["carol"]).to_value();
                v["extra"] = json!(1);
                serde_json::to_vec(&v).unwrap()
            },
            400,
            "malformed",
        ),
    ];
    for (what, path, bytes, status, kind) in cases {
        let before = http.state_hash();
        let entries = http.log_lines().len();
        let answer = http.post_bytes(&path, bytes);
        assert_eq!(
            (answer.status, answer.kind()),
            (status, kind),
            "{what}: {answer:?}"
        );
        assert!(
            answer.body["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{what}"
        );
        assert_eq!(http.state_hash(), before, "{what} changed the state");
        assert_eq!(http.log_lines().len(), entries, "{what} was logged");
    }
    let metrics = http.get_text("/metrics");
    assert!(
        metrics.contains("synod_rejections_total{kind=\"duplicate\"} 2"),
        "{metrics}"
    );
}

#[test]
fn many_clients_at_once_lose_and_duplicate_nothing() {
    let dir = TempDir::new("concurrency");
    let server = Server::start(dir.path());
    let http = server.client();
    let admin = server.admin();
    const AGENTS: usize = 24;
    const PROPOSALS: usize = 6;
    let (agents, ids) = voting_space(&http, &admin, AGENTS, PROPOSALS);
    let (space, time) = http.space();
    let mut handles = Vec::new();
    for (i, agent) in agents.into_iter().enumerate() {
        let (http, ids, space) = (http.clone(), ids.clone(), space.clone());
        handles.push(std::thread::spawn(move || {
            let mut acked = Vec::new();
            for id in &ids {
                let stance = if i % 3 == 0 { "challenge" } else { "endorse" };
                let r = response(&space, time, id, stance, "0.7", &agent);
                let bytes = serde_json::to_vec(&r.to_value()).unwrap();
                // Send each response twice: the second must be a duplicate.
                let first =
                    http.post_bytes(&format!("/v1/proposals/{id}/responses"), bytes.clone());
                assert!(first.ok(), "{first:?}");
                acked.push(r.id().to_hex());
                let again = http.post_bytes(&format!("/v1/proposals/{id}/responses"), bytes);
                assert_eq!(again.kind(), "duplicate");
            }
            acked
        }));
    }
    let acked: Vec<String> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    assert_eq!(acked.len(), AGENTS * PROPOSALS);
    let lines = http.log_lines();
    let logged: Vec<String> = lines
        .iter()
        .filter_map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            let m = synod_core::SignedMessage::from_value(v["message"].clone()).ok()?;
            Some(m.id().to_hex())
        })
        .collect();
    let unique: BTreeSet<&String> = logged.iter().collect();
    assert_eq!(unique.len(), logged.len(), "a message was logged twice");
    for id in &acked {
        assert!(unique.contains(id), "acknowledged response {id} is missing");
    }
    for id in &ids {
        let p = http.get(&format!("/v1/proposals/{id}")).body;
        assert_eq!(p["status"], "escalated", "every member answered");
        assert_eq!(p["responses"].as_array().unwrap().len(), AGENTS);
    }
    // Group commit: the entries were written in fewer fsyncs than entries.
    let metrics = http.get_text("/metrics");
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {metrics}"))
    };
    let (entries, fsyncs) = (
        value("synod_fsync_batch_entries_sum "),
        value("synod_fsync_batch_entries_count "),
    );
    assert!(
        entries > fsyncs,
        "{entries} entries in {fsyncs} fsyncs: no batch held two"
    );
    let (ok, out) = audit(&lines);
    assert!(ok, "{out}");
}

/// Reads SSE frames from a raw connection until `want` events arrived.
fn read_events(
    base: &str,
    path: &str,
    last_id: Option<&str>,
    want: usize,
    timeout: Duration,
) -> Vec<(String, String, Value)> {
    let addr = base.strip_prefix("http://").unwrap();
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(timeout)).unwrap();
    let last = last_id
        .map(|id| format!("Last-Event-ID: {id}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n{last}\r\n"
    )
    .unwrap();
    let mut reader = BufReader::new(stream);
    let mut events = Vec::new();
    let (mut id, mut name) = (String::new(), String::new());
    let deadline = Instant::now() + timeout;
    let mut line = String::new();
    while events.len() < want && Instant::now() < deadline {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        let l = line.trim_end();
        if let Some(v) = l.strip_prefix("id: ") {
            id = v.to_string();
        } else if let Some(v) = l.strip_prefix("event: ") {
            name = v.to_string();
        } else if let Some(v) = l.strip_prefix("data: ") {
            events.push((id.clone(), name.clone(), serde_json::from_str(v).unwrap()));
        }
    }
    let _ = reader.get_mut().shutdown(std::net::Shutdown::Both);
    let mut rest = Vec::new();
    let _ = reader.read_to_end(&mut rest);
    events
}

#[test]
fn events_resume_where_the_client_left_off_and_deadlines_close_through_the_log() {
    let dir = TempDir::new("events");
    let server = Server::start(dir.path());
    let http = server.client();
    let k = team(&server);
    // Everything so far, from the start of the log: the space, then a grant
    // and a registration for each of the five.
    let all = read_events(
        &server.base,
        "/v1/events?from=0",
        None,
        11,
        Duration::from_secs(10),
    );
    assert_eq!(all.len(), 11);
    assert_eq!(all[0].1, "space_created");
    assert_eq!(
        (all[1].1.as_str(), all[2].1.as_str()),
        ("granted", "agent_registered")
    );
    // Reconnecting after the 5th event resumes exactly with the 6th.
    let resumed = read_events(
        &server.base,
        "/v1/events",
        Some(&all[4].0),
        6,
        Duration::from_secs(10),
    );
    assert_eq!(
        resumed.iter().map(|e| &e.0).collect::<Vec<_>>(),
        all[5..11].iter().map(|e| &e.0).collect::<Vec<_>>()
    );

    // A proposal with a 1.5 s deadline and no votes closes at its deadline,
    // through a log entry the node appends; a live subscriber sees it.
    let from = http.get("/v1/space").body["head"]["next_index"]
        .as_u64()
        .unwrap();
    let p = proposal(
        &http,
        &k["alice"],
        "fraud.detection",
        "medium",
        "0.6",
        "expires",
        1_500,
    );
    let id = post_proposal(&http, &p);
    let live = read_events(
        &server.base,
        &format!("/v1/events?from={from}"),
        None,
        2,
        Duration::from_secs(10),
    );
    assert_eq!(live[0].1, "proposal_opened");
    assert_eq!(live[1].1, "proposal_closed");
    assert_eq!(live[1].2["cause"], "deadline");
    assert_eq!(live[1].2["final"], true);
    assert_eq!(live[1].2["proposal"], json!(id));
    let view = http.get(&format!("/v1/proposals/{id}")).body;
    assert_eq!(view["status"], "escalated");
    assert_eq!(view["reason"], "no_quorum");
}

#[test]
fn a_restart_recovers_everything_acknowledged() {
    let dir = TempDir::new("restart");
    let (id, hash, entries) = {
        let server = Server::start(dir.path());
        let http = server.client();
        let k = team(&server);
        let p = proposal(
            &http,
            &k["alice"],
            "fraud.detection",
            "critical",
            "0.9",
            "survives",
            600_000,
        );
        let id = post_proposal(&http, &p);
        let (space, time) = http.space();
        assert!(
            http.post(
                &format!("/v1/proposals/{id}/responses"),
                &response(&space, time, &id, "endorse", "0.8", &k["bob"])
            )
            .ok()
        );
        (id, http.state_hash(), http.log_lines().len())
    };
    let server = Server::start(dir.path());
    let http = server.client();
    assert_eq!(http.state_hash(), hash);
    assert_eq!(http.log_lines().len(), entries);
    assert_eq!(
        http.get(&format!("/v1/proposals/{id}")).body["responses"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn reviewer_tokens_decide_as_the_reviewer_they_stand_for() {
    let dir = TempDir::new("tokens");
    let server = Server::start(dir.path());
    let http = server.client();
    let k = team(&server);
    let out = std::process::Command::new(bin())
        .args([
            "reviewer",
            "add",
            "Avery",
            "--node",
            &server.base,
            "--admin-key",
        ])
        .arg(dir.path().join("admin.key"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let p = proposal(
        &http,
        &k["alice"],
        "fraud.detection",
        "critical",
        "0.9",
        "needs a human",
        600_000,
    );
    let id = post_proposal(&http, &p);
    let (space, time) = http.space();
    http.post(
        &format!("/v1/proposals/{id}/responses"),
        &response(&space, time, &id, "endorse", "1", &k["bob"]),
    );
    http.post(
        &format!("/v1/proposals/{id}/responses"),
        &response(&space, time, &id, "endorse", "1", &k["carol"]),
    );

    let path = format!("{}/v1/escalations/{id}/decisions", server.base);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let post = |token: &str, body: Value| {
        let mut r = agent
            .post(&path)
            .header("authorization", &format!("Bearer {token}"))
            .header("content-type", "application/json")
            .send(body.to_string())
            .unwrap();
        (r.status().as_u16(), r.body_mut().read_to_string().unwrap())
    };
    // A body naming another reviewer is refused: identity is the token's.
    let (status, _) = post(
        &token,
        json!({"decision": "approve", "note": "x", "reviewer": k["rita"].id()}),
    );
    assert_eq!(status, 400);
    let (status, _) = post("synod_rt_forged", json!({"decision": "approve"}));
    assert_eq!(status, 401);
    let (status, body) = post(
        &token,
        json!({"decision": "approve", "note": "checked with the customer"}),
    );
    assert_eq!(status, 200, "{body}");
    let view = http.get(&format!("/v1/proposals/{id}")).body;
    assert_eq!(view["status"], "approved_by_human");
    let reviewer = synod_node::keys::reviewer_key(&token).unwrap();
    assert_eq!(
        view["package"]["decisions"][0]["reviewer"],
        json!(reviewer.id())
    );
}

#[test]
fn the_openapi_document_lists_every_route() {
    let dir = TempDir::new("openapi");
    let server = Server::start(dir.path());
    let doc = server.client().get("/openapi.json").body;
    let paths = doc["paths"].as_object().unwrap();
    for (method, route) in synod_node::ROUTES {
        assert!(
            paths.get(*route).and_then(|p| p.get(*method)).is_some(),
            "{method} {route} is not documented"
        );
    }
    let documented: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
    assert_eq!(
        documented,
        synod_node::ROUTES.len(),
        "the document lists a route the node does not serve"
    );
    let kinds = doc["components"]["schemas"]["Error"]["properties"]["error"]["enum"]
        .as_array()
        .unwrap();
    for kind in synod_node::error_statuses().keys() {
        assert!(kinds.contains(&json!(kind)), "{kind} is not documented");
    }
    // Every documented route is served: probing it never hits the fallback.
    let http = server.client();
    for (method, route) in synod_node::ROUTES {
        let path = route.replace("{id}", &"ab".repeat(32));
        let answer = if *method == "get" {
            if path == "/v1/events" {
                continue; // a stream: covered by the events test
            }
            http.get(&path)
        } else {
            http.post_bytes(&path, b"{}".to_vec())
        };
        assert_ne!(
            answer.body["message"], "no such route",
            "{method} {route} is not served"
        );
    }
    // Refusals outside the protocol are JSON too.
    let unknown = http.get("/v1/proposals?colour=blue");
    assert_eq!(
        (unknown.status, unknown.kind()),
        (400, "malformed"),
        "{unknown:?}"
    );
    let bad = http.get("/v1/proposals?limit=many");
    assert_eq!((bad.status, bad.kind()), (400, "malformed"));
    let method = http.post_bytes("/v1/escalations", b"{}".to_vec());
    assert_eq!((method.status, method.kind()), (405, "method_not_allowed"));
    let missing = http.get("/v1/nothing");
    assert_eq!((missing.status, missing.kind()), (404, "not_found"));
    let metrics = server.client().get_text("/metrics");
    for name in [
        "synod_entries_appended_total",
        "synod_fsync_batch_entries_bucket",
        "synod_fsync_seconds_bucket",
        "synod_proposals{status=\"open\"}",
        "synod_escalation_queue_depth",
        "synod_last_vote_to_outcome_seconds_bucket",
        "synod_rejections_total{kind=\"bad_signature\"}",
        "synod_rounds_per_decision_bucket",
    ] {
        assert!(metrics.contains(name), "metrics lack {name}");
    }
}

#[test]
fn requests_naming_another_host_are_refused() {
    // A page that rebinds its own name to 127.0.0.1 still sends its name.
    let dir = TempDir::new("host");
    let server = Server::start(dir.path());
    let addr = server.base.strip_prefix("http://").unwrap();
    let ask = |host: &str| {
        let mut stream = TcpStream::connect(addr).unwrap();
        write!(
            stream,
            "GET /v1/space HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer.lines().next().unwrap_or("").to_string()
    };
    assert!(
        ask("attacker.example").contains(" 421 "),
        "{}",
        ask("attacker.example")
    );
    assert!(ask(addr).contains(" 200 "));
    assert!(ask("localhost:1234").contains(" 200 "));
    let named = Server::start_with(
        TempDir::new("host-named").path(),
        &["--allowed-host", "synod.internal"],
    );
    let addr = named.base.strip_prefix("http://").unwrap();
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET /healthz HTTP/1.1\r\nHost: synod.internal\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[test]
fn a_revoked_reviewer_token_stops_working_and_events_resume_inside_an_entry() {
    let dir = TempDir::new("revoke");
    let server = Server::start(dir.path());
    let http = server.client();
    let k = team(&server);
    let admin = server.admin();
    let p = proposal(
        &http,
        &k["alice"],
        "fraud.detection",
        "critical",
        "0.9",
        "revocation",
        600_000,
    );
    let id = post_proposal(&http, &p);
    let (space, time) = http.space();
    http.post(
        &format!("/v1/proposals/{id}/responses"),
        &response(&space, time, &id, "endorse", "1", &k["bob"]),
    );
    // This response closes the proposal: one entry, two effects.
    let closing = http.post(
        &format!("/v1/proposals/{id}/responses"),
        &response(&space, time, &id, "endorse", "1", &k["carol"]),
    );
    let index = closing.body["index"].as_u64().unwrap();
    let after_first = read_events(
        &server.base,
        "/v1/events",
        Some(&format!("{index}.0")),
        1,
        Duration::from_secs(10),
    );
    assert_eq!(after_first[0].0, format!("{index}.1"));
    assert_eq!(after_first[0].1, "proposal_closed");
    let beyond = http.get("/v1/events?from=999999");
    assert_eq!(beyond.kind(), "malformed");

    // rita's role is revoked: her signed decision is refused.
    let seq = http.get("/v1/space").body["config_seq"].as_u64().unwrap() + 1;
    let revoke = sign(
        &space,
        time,
        MessageType::Configuration,
        json!({"seq": seq, "change": {"grant": {"agent": k["rita"].id(), "roles": []}}}),
        &admin,
    );
    assert!(http.post("/v1/config", &revoke).ok());
    let decision = sign(
        &space,
        time,
        MessageType::Decision,
        json!({"proposal": id, "decision": "approve"}),
        &k["rita"],
    );
    let refused = http.post(&format!("/v1/escalations/{id}/decisions"), &decision);
    assert_eq!((refused.status, refused.kind()), (403, "wrong_role"));
}

#[test]
fn the_agent_card_is_signed_by_the_nodes_key() {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    // Without a public URL the card names the host asked for, unsigned: a
    // signature must never cover a host name the client chose.
    let plain = TempDir::new("card-plain");
    let server = Server::start(plain.path());
    let card = server.client().get("/.well-known/agent-card.json").body;
    assert_eq!(card["url"], json!(format!("{}/mcp", server.base)));
    assert!(card.get("signatures").is_none(), "{card}");
    drop(server);

    let dir = TempDir::new("card");
    let server = Server::start_with(dir.path(), &["--public-url", "https://synod.example.com/"]);
    let http = server.client();
    let answer = http.get("/.well-known/agent-card.json");
    assert_eq!(answer.status, 200, "{answer:?}");
    let card = answer.body;
    let (space, _) = http.space();
    assert_eq!(card["name"], json!(format!("synod space {space}")));
    assert_eq!(card["url"], json!("https://synod.example.com/mcp"));
    assert!(card.to_string().contains("https://synod.example.com/v1"));
    assert!(!card.to_string().contains("127.0.0.1"), "{card}");
    let skills: BTreeSet<&str> = card["skills"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    for skill in [
        "propose",
        "respond",
        "status",
        "outcome",
        "escalation",
        "audit",
    ] {
        assert!(skills.contains(skill), "no {skill} skill");
    }
    // The JWS: its header names the admin key, and it verifies over the
    // card's canonical form without `signatures`.
    let jws = &card["signatures"][0];
    let protected = jws["protected"].as_str().unwrap();
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(protected).unwrap()).unwrap();
    let admin = server.admin();
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(header["kid"], json!(admin.id()));
    let mut unsigned = card.clone();
    unsigned.as_object_mut().unwrap().remove("signatures");
    let payload = URL_SAFE_NO_PAD.encode(synod_core::wire::canonicalize(&unsigned));
    let signature: [u8; 64] = URL_SAFE_NO_PAD
        .decode(jws["signature"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let key = synod_core::AgentId::parse(header["kid"].as_str().unwrap())
        .unwrap()
        .key();
    let input = format!("{protected}.{payload}");
    assert!(
        key.verify_strict(
            input.as_bytes(),
            &ed25519_dalek::Signature::from_bytes(&signature)
        )
        .is_ok()
    );
    unsigned["url"] = json!("http://elsewhere/mcp");
    let forged = format!(
        "{protected}.{}",
        URL_SAFE_NO_PAD.encode(synod_core::wire::canonicalize(&unsigned))
    );
    assert!(
        key.verify_strict(
            forged.as_bytes(),
            &ed25519_dalek::Signature::from_bytes(&signature)
        )
        .is_err()
    );
    // The MCP endpoint sits behind the same Host check as the API.
    let addr = http.base.strip_prefix("http://").unwrap();
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "POST /mcp HTTP/1.1\r\nHost: evil.example\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 421"), "{answer}");
}

#[test]
fn the_cli_commits_and_reveals_a_sealed_answer() {
    // PROTOCOL.md §18 through `synod propose --sealed` and `synod respond
    // --commit` / `--salt`, as the README shows it.
    let dir = TempDir::new("sealed");
    let server = Server::start(dir.path());
    let k = team(&server);
    let key_file = |name: &str| {
        let path = dir.path().join(format!("{name}.key"));
        synod_node::keys::write(&path, &k[name], true).unwrap();
        path
    };
    let cli = |name: &str, args: &[&str]| {
        let out = std::process::Command::new(bin())
            .args(args)
            .args(["--node", &server.base, "--key"])
            .arg(key_file(name))
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (ok, id, err) = cli(
        "alice",
        &[
            "propose",
            "--domain",
            "fraud.detection",
            "--kind",
            "block_card",
            "--summary",
            "Block card 9",
            "--confidence",
            "0.9",
            "--stakes",
            "critical",
            "--sealed",
            "2s",
        ],
    );
    assert!(ok, "{err}");
    let answer = [
        "respond",
        &id,
        "endorse",
        "0.8",
        "--reasoning",
        "velocity spike",
    ];
    let (ok, salt, err) = cli("bob", &[&answer[..], &["--commit"]].concat());
    assert!(ok, "{err}");
    assert_eq!(salt.len(), 32, "{salt}");
    // Too early: the commit phase is not over.
    let (ok, _, err) = cli("bob", &[&answer[..], &["--salt", &salt]].concat());
    assert!(!ok && err.contains("wrong_phase"), "{err}");
    let (ok, status, _) = cli("bob", &["status", &id]);
    assert!(
        ok && status.contains("commit phase") && status.contains("1 committed"),
        "{status}"
    );
    std::thread::sleep(Duration::from_millis(2_500));
    // Another answer does not open the commitment; the committed one does.
    let (ok, _, err) = cli(
        "bob",
        &[
            "respond",
            &id,
            "endorse",
            "0.9",
            "--reasoning",
            "velocity spike",
            "--salt",
            &salt,
        ],
    );
    assert!(!ok && err.contains("bad_reveal"), "{err}");
    let (ok, out, err) = cli("bob", &[&answer[..], &["--salt", &salt]].concat());
    assert!(ok && out.contains("counted"), "{out} {err}");
    let detail = server.client().get(&format!("/v1/proposals/{id}")).body;
    assert_eq!(detail["responses"][0]["stance"], "endorse");
    assert_eq!(detail["sealed"]["phase"], "reveal");
}

#[test]
fn the_cli_asks_an_open_question_and_reports_its_answer() {
    // PROTOCOL.md §19 through `synod propose --open`, `synod respond
    // --answer`, `synod status` and `synod outcome --answer`.
    let dir = TempDir::new("open");
    let server = Server::start(dir.path());
    let k = team(&server);
    let cli = |name: &str, args: &[&str]| {
        let path = dir.path().join(format!("{name}.key"));
        synod_node::keys::write(&path, &k[name], true).unwrap();
        let out = std::process::Command::new(bin())
            .args(args)
            .args(["--node", &server.base, "--key"])
            .arg(path)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (ok, id, err) = cli(
        "alice",
        &[
            "propose",
            "--domain",
            "fraud.detection",
            "--kind",
            "estimate",
            "--summary",
            "How many chargebacks next week?",
            "--stakes",
            "low",
            "--open",
            "--tolerance",
            "1",
        ],
    );
    assert!(ok, "{err}");
    let (ok, _, err) = cli("bob", &["respond", &id, "endorse", "0.9", "--answer", "12"]);
    assert!(!ok && err.contains("--answer"), "{err}");
    let (ok, _, err) = cli(
        "bob",
        &["respond", &id, "--answer", " 12 ", "--sure", "0.8"],
    );
    assert!(ok, "{err}");
    let (ok, _, err) = cli(
        "carol",
        &["respond", &id, "--answer", "13.0", "--sure", "0.6"],
    );
    assert!(ok, "{err}");
    let (ok, status, err) = cli("oscar", &["status", &id]);
    assert!(ok, "{err}");
    assert!(
        status.contains("approved") && status.contains("clusters  12 ("),
        "{status}"
    );
    assert!(status.contains("leader 12 at 1"), "{status}");
    let (ok, out, err) = cli("oscar", &["outcome", &id, "--answer", "12.5"]);
    assert!(ok && out.contains("trust"), "{out} {err}");
    let detail = server.client().get(&format!("/v1/proposals/{id}")).body;
    assert_eq!(detail["choice"], "12");
    assert_eq!(detail["outcome"]["answer"], "12.5");
    assert_eq!(detail["responses"][1]["answer"], "13");
}
