//! The crash test: concurrent load on the real binary, `kill -9` at random
//! moments, restart, and check that every acknowledged message survived
//! exactly once and that the exported log passes `synod audit verify`.
//!
//! The seed is printed; `SYNOD_CRASH_SEED=<seed>` replays a run, and
//! `SYNOD_CRASH_ROUNDS` sets how many kills it makes.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use support::*;

const AGENTS: usize = 24;
const PROPOSALS: usize = 120;
const WORKERS: usize = 8;

/// (path, body, message id) of each response still to send.
type Queue = Arc<Mutex<Vec<(String, Vec<u8>, String)>>>;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Message ids in the exported log, with how often each appears.
fn logged(lines: &[String]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for line in lines {
        let v: Value = serde_json::from_str(line).unwrap();
        if v["message"].is_null() {
            continue;
        }
        let m = synod_core::SignedMessage::from_value(v["message"].clone()).unwrap();
        *counts.entry(m.id().to_hex()).or_insert(0) += 1;
    }
    counts
}

#[test]
fn kill_9_under_load_loses_no_acknowledged_message() {
    let seed: u64 = std::env::var("SYNOD_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            let mut b = [0u8; 8];
            getrandom::fill(&mut b).unwrap();
            u64::from_le_bytes(b) | 1
        });
    let rounds: usize = std::env::var("SYNOD_CRASH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12);
    eprintln!("crash test: seed {seed}, {rounds} rounds (replay with SYNOD_CRASH_SEED={seed})");
    let mut rng = Rng(seed);

    let dir = TempDir::new("crash");
    let mut server = Server::start(dir.path());
    let http = server.client();
    let admin = server.admin();
    let (agents, ids) = voting_space(&http, &admin, AGENTS, PROPOSALS);
    let (space, time) = http.space();
    // Every response that will be sent, split among the workers.
    let mut queues: Vec<Vec<(String, Vec<u8>, String)>> = vec![Vec::new(); WORKERS];
    for (a, agent) in agents.iter().enumerate() {
        for (p, id) in ids.iter().enumerate() {
            let stance = if (a + p) % 4 == 0 {
                "challenge"
            } else {
                "endorse"
            };
            let r = response(&space, time, id, stance, "0.7", agent);
            let bytes = serde_json::to_vec(&r.to_value()).unwrap();
            queues[(a * PROPOSALS + p) % WORKERS].push((
                format!("/v1/proposals/{id}/responses"),
                bytes,
                r.id().to_hex(),
            ));
        }
    }
    let queues: Vec<Queue> = queues
        .into_iter()
        .map(|q| Arc::new(Mutex::new(q)))
        .collect();
    let acked: Arc<Mutex<BTreeSet<String>>> = Arc::new(Mutex::new(BTreeSet::new()));
    // Sent before a kill, answered `duplicate` after the restart: these must
    // be in the log too (the first copy was made durable, its answer lost).
    let retried: Arc<Mutex<BTreeSet<String>>> = Arc::new(Mutex::new(BTreeSet::new()));
    let mut kills = 0;

    for round in 0..rounds {
        let base = server.base.clone();
        let workers: Vec<_> = queues
            .iter()
            .map(|queue| {
                let (queue, acked, retried, base) =
                    (queue.clone(), acked.clone(), retried.clone(), base.clone());
                std::thread::spawn(move || {
                    let http = Http::new(&base);
                    loop {
                        let Some((path, bytes, id)) = queue.lock().unwrap().last().cloned() else {
                            return;
                        };
                        match http.try_post_bytes(&path, bytes) {
                            Ok(answer) if answer.ok() => {
                                acked.lock().unwrap().insert(id);
                                queue.lock().unwrap().pop();
                            }
                            // Sent before a crash, durable, but its answer was
                            // lost: the retry is refused as a duplicate.
                            Ok(answer) if answer.kind() == "duplicate" => {
                                retried.lock().unwrap().insert(id);
                                queue.lock().unwrap().pop();
                            }
                            Ok(answer) if answer.status == 503 => {
                                std::thread::sleep(Duration::from_millis(5))
                            }
                            Ok(answer) => panic!("unexpected answer: {answer:?}"),
                            // The server is gone: stop until it restarts.
                            Err(_) => return,
                        }
                    }
                })
            })
            .collect();
        // Kill after a random number of acknowledgements, so the kills land
        // under load whatever the machine's speed (with a time limit, in case
        // the load runs out).
        let target = acked.lock().unwrap().len() + 20 + (rng.next() % 200) as usize;
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while acked.lock().unwrap().len() < target && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        let remaining: usize = queues.iter().map(|q| q.lock().unwrap().len()).sum();
        server.kill();
        if remaining > 0 {
            kills += 1;
        }
        for w in workers {
            w.join().unwrap();
        }
        server = Server::start(dir.path());
        let http = server.client();
        let lines = http.log_lines();
        let counts = logged(&lines);
        for (id, n) in &counts {
            assert_eq!(
                *n, 1,
                "round {round}: message {id} is in the log {n} times (seed {seed})"
            );
        }
        for id in acked.lock().unwrap().iter() {
            assert!(
                counts.contains_key(id),
                "round {round}: acknowledged {id} was lost (seed {seed})"
            );
        }
        for id in retried.lock().unwrap().iter() {
            assert!(
                counts.contains_key(id),
                "round {round}: {id} was refused as a duplicate but is not in the log (seed {seed})"
            );
        }
        let (ok, out) = audit(&lines);
        assert!(ok, "round {round}: audit failed (seed {seed}): {out}");
    }
    // Finish the load and check the end state.
    let http = server.client();
    for queue in &queues {
        for (path, bytes, _) in queue.lock().unwrap().drain(..) {
            let answer = http.post_bytes(&path, bytes);
            assert!(answer.ok() || answer.kind() == "duplicate", "{answer:?}");
        }
    }
    for id in &ids {
        let p = http.get(&format!("/v1/proposals/{id}")).body;
        assert_eq!(
            p["responses"].as_array().unwrap().len(),
            AGENTS,
            "proposal {id}"
        );
        assert_eq!(p["status"], "escalated");
    }
    let lines = http.log_lines();
    assert!(logged(&lines).values().all(|n| *n == 1));
    let (ok, out) = audit(&lines);
    assert!(ok, "{out}");
    assert!(
        kills >= rounds / 2,
        "only {kills} kills happened under load"
    );
    eprintln!(
        "crash test: {kills} kills, {} acknowledged responses survived",
        acked.lock().unwrap().len()
    );
}

/// Past the snapshot interval, a `kill -9`ed node comes back from its
/// snapshot plus the entries after it, not from a full replay: restart time
/// does not grow with history.
#[test]
fn a_long_log_restarts_from_a_snapshot() {
    const REGISTRATIONS: usize = synod_node::SNAPSHOT_EVERY_ENTRIES as usize + 150;
    const WORKERS: usize = 16;
    let dir = TempDir::new("snapshot");
    let mut server = Server::start_with(dir.path(), &["--open"]);
    let http = server.client();
    let (space, time) = http.space();
    let failures = Arc::new(Mutex::new(Vec::new()));
    std::thread::scope(|scope| {
        for w in 0..WORKERS {
            let (http, space, failures) = (http.clone(), space.clone(), failures.clone());
            scope.spawn(move || {
                for i in (w..REGISTRATIONS).step_by(WORKERS) {
                    let agent = key(&format!("snapshot-agent-{i}"));
                    let m = sign(
                        &space,
                        time,
                        synod_core::wire::MessageType::Registration,
                        serde_json::json!({"seq": 1, "name": format!("agent {i}")}),
                        &agent,
                    );
                    let answer = http.post("/v1/agents", &m);
                    if !answer.ok() {
                        failures.lock().unwrap().push(format!("{i}: {answer:?}"));
                    }
                }
            });
        }
    });
    let failures = failures.lock().unwrap();
    assert!(
        failures.is_empty(),
        "{} failed, e.g. {}",
        failures.len(),
        failures[0]
    );
    let head = http.get("/v1/space").body["head"].clone();
    let hash = http.state_hash();
    assert!(head["next_index"].as_u64().unwrap() > synod_node::SNAPSHOT_EVERY_ENTRIES);

    server.kill();
    let server = Server::start(dir.path());
    let http = server.client();
    assert_eq!(http.get("/v1/space").body["head"], head);
    assert_eq!(http.state_hash(), hash);
    let metrics = http.get_text("/metrics");
    let replayed: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("synod_recovery_replayed_entries "))
        .and_then(|v| v.parse().ok())
        .expect("the replay gauge");
    assert!(
        replayed < 1_000,
        "{replayed} entries replayed: the snapshot was not used"
    );
    assert_eq!(
        http.get("/v1/space").body["agents"].as_u64().unwrap() as usize,
        REGISTRATIONS + 1
    );
}
