//! Cluster mode with real processes: three `synod serve` replicas, a load
//! of signed responses from several threads through every node, and rounds
//! of `kill -9` of the leader or a random follower (and, in network
//! namespaces, cuts of a host off the network), each followed by a restart
//! or a heal. Meanwhile readers take linearizable reads of the log
//! (`/v1/log?consistent=true`) from any node.
//!
//! Then the checks: the history of writes and reads is linearizable
//! (`support::history::check`); every acknowledged write is in every
//! node's exported log exactly once, and so is every write answered
//! `duplicate` after a retry; `synod audit verify` passes on every node's
//! export; every node has the same head and state hash.
//!
//! The seed is printed; `SYNOD_CLUSTER_SEED=<seed>` replays its choices
//! (not the machine's timing), `SYNOD_CLUSTER_ROUNDS` sets the rounds.

mod support;

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::history::{Read, Write, acknowledged_exactly_once, check};
use support::netns::Network;
use support::*;

const NODES: usize = 3;
/// Replicas the membership test grows the cluster to.
const GROWN: usize = 4;
const AGENTS: usize = 16;
/// Snapshot interval of the kill tests' replicas.
const SNAPSHOT_EVERY: &str = "2000";
/// Responses kept waiting for the workers.
const QUEUED: usize = 2_000;
const WORKERS: usize = 8;
const READERS: usize = 2;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn seed(var: &str) -> u64 {
    std::env::var(var)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            let mut b = [0u8; 8];
            getrandom::fill(&mut b).unwrap();
            u64::from_le_bytes(b) | 1
        })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Where the three replicas run: on loopback, or each on a host of its own.
enum Hosts {
    Loopback { ports: Vec<u16> },
    Netns { net: Network },
}

/// Port every replica listens on inside its own namespace host.
const NETNS_PORT: u16 = 7400;

struct Cluster {
    hosts: Hosts,
    dirs: Vec<TempDir>,
    secret: PathBuf,
    children: Vec<Option<Child>>,
    cut: Vec<bool>,
    /// Arguments every `synod serve` of this cluster gets.
    extra: Vec<String>,
}

impl Cluster {
    fn new(hosts: Hosts, secret_dir: &Path, nodes: usize) -> Cluster {
        let secret = Cluster::new_secret(secret_dir, "cluster.secret");
        Cluster {
            hosts,
            dirs: (0..nodes)
                .map(|i| TempDir::new(&format!("cluster-{i}")))
                .collect(),
            secret,
            children: (0..nodes).map(|_| None).collect(),
            cut: vec![false; nodes],
            extra: Vec::new(),
        }
    }

    /// Writes another cluster secret into `dir`.
    fn new_secret(dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(name);
        let out = Command::new(bin())
            .args(["cluster", "secret", "--out"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        path
    }

    fn url(&self, i: usize) -> String {
        match &self.hosts {
            Hosts::Loopback { ports } => format!("http://127.0.0.1:{}", ports[i]),
            Hosts::Netns { net } => format!("http://{}:{NETNS_PORT}", net.address(i)),
        }
    }

    fn start(&mut self, i: usize) {
        let extra = self.extra.clone();
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        self.start_with(i, &extra);
    }

    fn start_with(&mut self, i: usize, extra: &[&str]) {
        assert!(self.children[i].is_none());
        let id = (i + 1).to_string();
        let data = self.dirs[i].path().to_str().unwrap().to_string();
        let secret = self.secret.to_str().unwrap().to_string();
        let listen = match &self.hosts {
            Hosts::Loopback { ports } => format!("127.0.0.1:{}", ports[i]),
            Hosts::Netns { .. } => format!("0.0.0.0:{NETNS_PORT}"),
        };
        let args = [
            "serve",
            "--listen",
            &listen,
            "--data-dir",
            &data,
            "--node-id",
            &id,
            "--cluster-secret",
            &secret,
        ];
        let mut command = match &self.hosts {
            Hosts::Loopback { .. } => Command::new(bin()),
            Hosts::Netns { net } => net.command(i, bin()),
        };
        let child = command
            .args(args)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("synod serve starts");
        self.children[i] = Some(child);
        let health = format!("{}/healthz", self.url(i));
        let until = Instant::now() + Duration::from_secs(30);
        while !answers(&health) {
            assert!(Instant::now() < until, "node {} never answered", i + 1);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `kill -9`.
    fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.children[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn cut(&mut self, i: usize) {
        if let Hosts::Netns { net } = &self.hosts {
            net.cut(i);
            self.cut[i] = true;
        }
    }

    fn heal(&mut self, i: usize) {
        if let Hosts::Netns { net } = &self.hosts {
            net.heal(i);
            self.cut[i] = false;
        }
    }

    /// The leader's index, as some reachable node sees it.
    fn leader(&self) -> Option<usize> {
        (0..self.children.len())
            .filter(|&i| self.children[i].is_some() && !self.cut[i])
            .find_map(|i| {
                let view = quick(&self.url(i)).get("/v1/cluster").body;
                view["leader"]["id"].as_u64().map(|id| id as usize - 1)
            })
    }

    fn cli(&self, args: &[&str], node: usize) -> Value {
        let mut command = Command::new(bin());
        command
            .args(["cluster"])
            .args(args)
            .args(["--json", "--node", &self.url(node)]);
        if args[0] != "status" {
            command.arg("--cluster-secret").arg(&self.secret);
        }
        let out = command.output().unwrap();
        assert!(
            out.status.success(),
            "synod cluster {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.children.len() {
            self.kill(i);
        }
    }
}

fn answers(url: &str) -> bool {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_millis(500)))
        .build()
        .into();
    agent.get(url).call().is_ok()
}

/// A client that gives up after 3 s: a request to a host cut off the
/// network must not hold a worker for long (its write counts as maybe
/// made, and is retried elsewhere).
fn quick(base: &str) -> Http {
    Http::with_timeout(base, Duration::from_secs(3))
}

/// Message ids in an export, in log order; `cache` maps entry hashes to
/// ids so that a line is parsed once across all reads.
fn log_ids(text: &str, cache: &mut HashMap<String, Option<String>>) -> Option<Vec<String>> {
    let mut out = Vec::new();
    for line in text.lines() {
        let at = line.find("\"hash\":\"")? + 8;
        let hash = line.get(at..at + 64)?;
        let id = cache.entry(hash.to_string()).or_insert_with(|| {
            let v: Value = serde_json::from_str(line).expect("an export line");
            (!v["message"].is_null()).then(|| {
                synod_core::SignedMessage::from_value(v["message"].clone())
                    .expect("a logged message")
                    .id()
                    .to_hex()
            })
        });
        if let Some(id) = id {
            out.push(id.clone());
        }
    }
    Some(out)
}

/// Everything the load's threads record.
#[derive(Default)]
struct Journal {
    writes: Mutex<HashMap<String, Write>>,
    /// Retried after a lost answer and refused `duplicate`: in the log.
    retried: Mutex<BTreeSet<String>>,
    reads: Mutex<Vec<Read>>,
    acked: AtomicUsize,
}

/// (path, body, id) of responses still to send.
type Queue = Arc<Mutex<VecDeque<(String, Vec<u8>, String)>>>;

/// Keeps the queue of responses topped up: adds a proposal through any
/// node whenever fewer than [`QUEUED`] responses wait, and queues every
/// agent's response to it. Proposals are writes of the history too.
fn proposer(
    urls: Vec<String>,
    proposer: synod_core::Keypair,
    agents: Vec<synod_core::Keypair>,
    queue: Queue,
    journal: Arc<Journal>,
    stop: Arc<AtomicBool>,
) {
    let clients: Vec<Http> = urls.iter().map(|u| quick(u)).collect();
    let mut next = 0;
    let mut made = 0;
    let (space, time) = loop {
        if let Ok(answer) = clients[0].try_get("/v1/space")
            && let (Some(space), Some(time)) =
                (answer.body["space"].as_str(), answer.body["time"].as_u64())
        {
            break (space.to_string(), time);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    while !stop.load(Ordering::Acquire) {
        if queue.lock().unwrap().len() >= QUEUED {
            std::thread::sleep(Duration::from_millis(5));
            continue;
        }
        made += 1;
        let p = sign(
            &space,
            time,
            synod_core::wire::MessageType::Proposal,
            serde_json::json!({"domain": "ops.deploy", "action": {"kind": "test", "summary": format!("change {made}")},
                   "confidence": "0.6", "stakes": "critical", "deadline": time + 3_600_000}),
            &proposer,
        );
        let id = p.id().to_hex();
        let body = serde_json::to_vec(&p.to_value()).unwrap();
        journal.writes.lock().unwrap().insert(
            id.clone(),
            Write {
                id: id.clone(),
                invoked: Instant::now(),
                acknowledged: None,
            },
        );
        loop {
            if stop.load(Ordering::Acquire) {
                return;
            }
            next += 1;
            match clients[next % clients.len()].try_post_bytes("/v1/proposals", body.clone()) {
                Ok(answer) if answer.status == 201 => {
                    journal
                        .writes
                        .lock()
                        .unwrap()
                        .get_mut(&id)
                        .unwrap()
                        .acknowledged = Some(Instant::now());
                    break;
                }
                Ok(answer) if answer.kind() == "duplicate" => {
                    journal.retried.lock().unwrap().insert(id.clone());
                    break;
                }
                Ok(answer) if answer.status == 503 => std::thread::sleep(Duration::from_millis(5)),
                Ok(answer) => panic!("proposal: {answer:?}"),
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        let mut q = queue.lock().unwrap();
        for (a, agent) in agents.iter().enumerate() {
            let stance = if (a + made) % 4 == 0 {
                "challenge"
            } else {
                "endorse"
            };
            let r = response(&space, time, &id, stance, "0.7", agent);
            q.push_back((
                format!("/v1/proposals/{id}/responses"),
                serde_json::to_vec(&r.to_value()).unwrap(),
                r.id().to_hex(),
            ));
        }
    }
}

fn worker(
    urls: Vec<String>,
    queue: Queue,
    journal: Arc<Journal>,
    stop: Arc<AtomicBool>,
    first: usize,
) {
    let clients: Vec<Http> = urls.iter().map(|u| quick(u)).collect();
    let mut next = first;
    let mut current: Option<(String, Vec<u8>, String)> = None;
    while !stop.load(Ordering::Acquire) {
        if current.is_none() {
            current = queue.lock().unwrap().pop_front();
        }
        let Some((path, bytes, id)) = current.clone() else {
            std::thread::sleep(Duration::from_millis(5));
            continue;
        };
        let http = &clients[next % clients.len()];
        journal
            .writes
            .lock()
            .unwrap()
            .entry(id.clone())
            .or_insert_with(|| Write {
                id: id.clone(),
                invoked: Instant::now(),
                acknowledged: None,
            });
        match http.try_post_bytes(&path, bytes) {
            Ok(answer) if answer.ok() => {
                let now = Instant::now();
                journal
                    .writes
                    .lock()
                    .unwrap()
                    .get_mut(&id)
                    .unwrap()
                    .acknowledged = Some(now);
                journal.acked.fetch_add(1, Ordering::AcqRel);
                current = None;
                next += 1;
            }
            Ok(answer) if answer.kind() == "duplicate" => {
                journal.retried.lock().unwrap().insert(id);
                current = None;
            }
            Ok(answer) if answer.status == 503 => {
                next += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
            Ok(answer) => panic!("unexpected answer to {path}: {answer:?}"),
            // Down, cut off, or killed while answering: the write may have
            // been made; retry it on another node.
            Err(_) => {
                next += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

fn reader(urls: Vec<String>, journal: Arc<Journal>, stop: Arc<AtomicBool>, first: usize) {
    let clients: Vec<Http> = urls.iter().map(|u| quick(u)).collect();
    let mut cache = HashMap::new();
    let mut next = first;
    while !stop.load(Ordering::Acquire) {
        next += 1;
        let invoked = Instant::now();
        let Ok(text) = clients[next % clients.len()].try_get_text("/v1/log?consistent=true") else {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        };
        let completed = Instant::now();
        if let Some(log) = log_ids(&text, &mut cache) {
            journal.reads.lock().unwrap().push(Read {
                log,
                invoked,
                completed,
            });
        }
        std::thread::sleep(Duration::from_millis(30));
    }
}

/// Waits until `journal` has `more` acknowledgements beyond `from`, or
/// `limit` passes.
fn wait_acks(journal: &Journal, from: usize, more: usize, limit: Duration) {
    let until = Instant::now() + limit;
    while journal.acked.load(Ordering::Acquire) < from + more && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn run(hosts: Hosts, name: &str) {
    let seed = seed("SYNOD_CLUSTER_SEED");
    let rounds: usize = std::env::var("SYNOD_CLUSTER_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    eprintln!(
        "cluster test ({name}): seed {seed}, {rounds} rounds (replay with SYNOD_CLUSTER_SEED={seed})"
    );
    let mut rng = Rng(seed);
    let started = Instant::now();
    let home = TempDir::new("cluster-secret");
    let mut cluster = Cluster::new(hosts, home.path(), NODES);
    // Snapshots (and Raft log purges) every 2,000 entries: several happen
    // during the run, and a restart replays at most that many.
    cluster.extra = vec!["--snapshot-every".into(), SNAPSHOT_EVERY.into()];
    for i in 0..NODES {
        cluster.start(i);
    }
    let members: Vec<String> = (0..NODES)
        .map(|i| format!("{}={}", i + 1, cluster.url(i)))
        .collect();
    let mut init = vec!["init"];
    init.extend(members.iter().map(String::as_str));
    let formed = cluster.cli(&init, 0);
    let admin_path = PathBuf::from(formed["admin_key"].as_str().unwrap());
    let admin = synod_node::keys::read(&admin_path).unwrap();
    let status = cluster.cli(&["status"], 1);
    assert_eq!(status["members"].as_array().unwrap().len(), NODES);

    // The space, set up through one node: it answers each write once its
    // own replica has applied it, so the next request there sees it.
    let setup = Http::new(&cluster.url(0));
    let (agents, _) = voting_space(&setup, &admin, AGENTS, 0);
    assert_eq!(agents.len(), AGENTS);
    let proposer_key = key("proposer");
    let queue: Queue = Arc::new(Mutex::new(VecDeque::new()));
    let urls: Vec<String> = (0..NODES).map(|i| cluster.url(i)).collect();
    let journal = Arc::new(Journal::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for w in 0..WORKERS {
        let (urls, queue, journal, stop) =
            (urls.clone(), queue.clone(), journal.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            worker(urls, queue, journal, stop, w)
        }));
    }
    {
        let (urls, queue, journal, stop) =
            (urls.clone(), queue.clone(), journal.clone(), stop.clone());
        // The voters `voting_space` admitted, by their names.
        let agents = (0..AGENTS).map(|i| key(&format!("voter-{i}"))).collect();
        threads.push(std::thread::spawn(move || {
            proposer(urls, proposer_key, agents, queue, journal, stop)
        }));
    }
    for r in 0..READERS {
        let (urls, journal, stop) = (urls.clone(), journal.clone(), stop.clone());
        threads.push(std::thread::spawn(move || reader(urls, journal, stop, r)));
    }

    let mut kills = 0;
    let mut leader_kills = 0;
    let mut cuts = 0;
    let mut failovers = Vec::new();
    for round in 0..rounds {
        let round_started = Instant::now();
        let acked = journal.acked.load(Ordering::Acquire);
        wait_acks(
            &journal,
            acked,
            10 + rng.below(80) as usize,
            Duration::from_secs(5),
        );
        let leader = cluster.leader();
        let victim = match (rng.below(2), leader) {
            (0, Some(l)) => l,
            _ => rng.below(NODES as u64) as usize,
        };
        let netns = matches!(cluster.hosts, Hosts::Netns { .. });
        let cut = netns && rng.below(2) == 0;
        let down_for = Duration::from_millis(100 + rng.below(600));
        let before = journal.acked.load(Ordering::Acquire);
        let at = Instant::now();
        if cut {
            cluster.cut(victim);
            cuts += 1;
        } else {
            cluster.kill(victim);
            kills += 1;
        }
        if Some(victim) == leader && !cut {
            leader_kills += 1;
            // Failover as clients see it: until writes are acknowledged
            // again by the others.
            wait_acks(&journal, before, 5, Duration::from_secs(10));
            failovers.push(at.elapsed());
        }
        std::thread::sleep(down_for);
        if cut {
            cluster.heal(victim);
        } else {
            cluster.start(victim);
        }
        eprintln!(
            "round {round}: {} node {} (leader {:?}) for {down_for:?}; {} acknowledged; {:?}",
            if cut { "cut" } else { "killed" },
            victim + 1,
            leader.map(|l| l + 1),
            journal.acked.load(Ordering::Acquire),
            round_started.elapsed()
        );
    }
    // A little more load on the whole cluster, then stop.
    let acked = journal.acked.load(Ordering::Acquire);
    wait_acks(&journal, acked, 50, Duration::from_secs(10));
    stop.store(true, Ordering::Release);
    for t in threads {
        t.join().unwrap();
    }

    // Converge: every node reaches the same head.
    let clients: Vec<Http> = urls.iter().map(|u| Http::new(u)).collect();
    let until = Instant::now() + Duration::from_secs(30);
    let heads = loop {
        let heads: Vec<Value> = clients
            .iter()
            .map(|c| c.get("/v1/space?consistent=true").body["head"].clone())
            .collect();
        if heads.windows(2).all(|w| w[0] == w[1]) && !heads[0].is_null() {
            break heads;
        }
        assert!(
            Instant::now() < until,
            "no convergence: {heads:?} (seed {seed})"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let writes: Vec<Write> = journal.writes.lock().unwrap().values().cloned().collect();
    let reads = journal.reads.lock().unwrap().clone();
    let acknowledged = writes.iter().filter(|w| w.acknowledged.is_some()).count();
    assert!(
        acknowledged > rounds * 10,
        "only {acknowledged} writes acknowledged"
    );
    assert!(reads.len() > rounds, "only {} reads", reads.len());
    if let Err(v) = check(&writes, &reads) {
        panic!("not linearizable: {v} (seed {seed})");
    }
    let mut hashes = Vec::new();
    let mut cache = HashMap::new();
    for (i, c) in clients.iter().enumerate() {
        let lines = c.log_lines();
        let ids = log_ids(&(lines.join("\n") + "\n"), &mut cache).unwrap();
        if let Err(v) = acknowledged_exactly_once(&writes, &ids) {
            panic!("node {}: {v} (seed {seed})", i + 1);
        }
        let logged: BTreeSet<&String> = ids.iter().collect();
        assert_eq!(logged.len(), ids.len(), "node {}: a message twice", i + 1);
        for id in journal.retried.lock().unwrap().iter() {
            assert!(
                logged.contains(id),
                "node {}: {id} was refused as a duplicate but is not in the log (seed {seed})",
                i + 1
            );
        }
        let (ok, out) = audit(&lines);
        assert!(ok, "node {}: audit failed (seed {seed}): {out}", i + 1);
        hashes.push(c.state_hash());
    }
    assert!(
        hashes.windows(2).all(|w| w[0] == w[1]),
        "state hashes differ: {hashes:?} (seed {seed})"
    );
    failovers.sort();
    eprintln!(
        "cluster test ({name}): {kills} kills ({leader_kills} of the leader), {cuts} cuts; {acknowledged} writes acknowledged, {} retried, {} reads checked; head {}; failover to the next acknowledged write: median {:?}, max {:?}; {:?} in all",
        journal.retried.lock().unwrap().len(),
        reads.len(),
        heads[0],
        failovers.get(failovers.len() / 2),
        failovers.last(),
        started.elapsed()
    );
}

#[test]
fn three_nodes_on_loopback_survive_kill_9_of_leaders_and_followers() {
    let ports = (0..NODES).map(|_| free_port()).collect();
    run(Hosts::Loopback { ports }, "loopback");
}

#[test]
fn three_hosts_survive_kills_and_cuts() {
    // Prefix and subnet from the process id, so that two runs of this test
    // at once (another checkout's) do not share a bridge or a subnet.
    let pid = std::process::id();
    let net = Network::new(
        &format!("sc{}", pid % 100_000),
        100 + (pid % 100) as u8,
        NODES,
    );
    run(Hosts::Netns { net }, "network namespaces");
}

/// `synod cluster join` adds a fourth member, which serves writes and ends
/// with the others' log; `leave` removes the first, after which the rest
/// carry on without it.
#[test]
fn members_join_and_leave() {
    let ports = (0..GROWN).map(|_| free_port()).collect();
    let home = TempDir::new("cluster-membership");
    let mut cluster = Cluster::new(Hosts::Loopback { ports }, home.path(), GROWN);
    for i in 0..GROWN {
        cluster.start(i);
    }
    let members: Vec<String> = (0..NODES)
        .map(|i| format!("{}={}", i + 1, cluster.url(i)))
        .collect();
    let mut init = vec!["init"];
    init.extend(members.iter().map(String::as_str));
    let formed = cluster.cli(&init, 1);
    let admin = synod_node::keys::read(Path::new(formed["admin_key"].as_str().unwrap())).unwrap();
    let first = Http::new(&cluster.url(1));
    admit(
        &first,
        &admin,
        "before",
        serde_json::json!({"ops.*": "0.5"}),
        &["agent"],
    );

    // The new member is not in the cluster: it knows no leader.
    let outsider = quick(&cluster.url(3)).get("/v1/cluster").body;
    assert_eq!(
        outsider["members"].as_array().unwrap().len(),
        0,
        "{outsider}"
    );
    let joined = cluster.cli(&["join", &format!("4={}", cluster.url(3))], 2);
    let voters = |view: &Value| -> Vec<u64> {
        view["members"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["voter"] == true)
            .map(|m| m["id"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(voters(&joined), vec![1, 2, 3, 4], "{joined}");
    let fourth = Http::new(&cluster.url(3));
    let metrics = fourth.get_text("/metrics");
    assert!(metrics.contains("synod_cluster_members 4"), "{metrics}");
    // Every member serves the inbox.
    assert!(fourth.get_text("/").contains("<html"));
    admit(
        &fourth,
        &admin,
        "after-join",
        serde_json::json!({"ops.*": "0.5"}),
        &["agent"],
    );
    assert_eq!(
        fourth.log_lines(),
        first
            .get_text("/v1/log?consistent=true")
            .lines()
            .map(String::from)
            .collect::<Vec<_>>()
    );
    // A second join of a voter is refused.
    let again = Command::new(bin())
        .args([
            "cluster",
            "join",
            &format!("4={}", cluster.url(3)),
            "--node",
            &cluster.url(0),
        ])
        .arg("--cluster-secret")
        .arg(&cluster.secret)
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already a voter"));

    let left = cluster.cli(&["leave", "1"], 3);
    assert_eq!(voters(&left), vec![2, 3, 4], "{left}");
    cluster.kill(0);
    admit(
        &fourth,
        &admin,
        "after-leave",
        serde_json::json!({"ops.*": "0.5"}),
        &["agent"],
    );
    let hashes: Vec<String> = (1..GROWN)
        .map(|i| {
            let http = Http::new(&cluster.url(i));
            http.get("/v1/space?consistent=true");
            http.state_hash()
        })
        .collect();
    assert!(hashes.windows(2).all(|w| w[0] == w[1]), "{hashes:?}");
    // Requests without the secret are refused and change nothing.
    let forged = Command::new(bin())
        .args([
            "cluster",
            "leave",
            "2",
            "--node",
            &cluster.url(1),
            "--cluster-secret",
        ])
        .arg(Cluster::new_secret(home.path(), "other.secret"))
        .output()
        .unwrap();
    assert!(!forged.status.success());
    let view = Http::new(&cluster.url(1)).get("/v1/cluster").body;
    assert_eq!(voters(&view), vec![2, 3, 4]);
}

/// A member that was down while the others snapshotted and purged their Raft
/// log past where it stopped gets the leader's snapshot, then fetches the
/// synod entries before it from a peer, so its export is the whole log
/// again and passes the audit.
#[test]
fn a_member_behind_a_purged_log_gets_a_snapshot_and_fills_its_log() {
    const EVERY: &str = "20";
    let ports = (0..NODES).map(|_| free_port()).collect();
    let home = TempDir::new("cluster-gap");
    let mut cluster = Cluster::new(Hosts::Loopback { ports }, home.path(), NODES);
    for i in 0..NODES {
        cluster.start_with(i, &["--snapshot-every", EVERY]);
    }
    let members: Vec<String> = (0..NODES)
        .map(|i| format!("{}={}", i + 1, cluster.url(i)))
        .collect();
    let mut init = vec!["init", "--open"];
    init.extend(members.iter().map(String::as_str));
    cluster.cli(&init, 0);
    let first = Http::new(&cluster.url(0));
    let register = |http: &Http, name: &str| {
        let (space, time) = http.space();
        let m = sign(
            &space,
            time,
            synod_core::wire::MessageType::Registration,
            serde_json::json!({"seq": 1, "name": name}),
            &key(name),
        );
        let answer = http.post("/v1/agents", &m);
        assert!(answer.ok(), "{answer:?}");
    };
    for i in 0..5 {
        register(&first, &format!("early-{i}"));
    }
    cluster.kill(2);
    // One Raft entry each (they are sent one at a time): several snapshots,
    // and the Raft log purged far past where node 3 stopped.
    for i in 0..120 {
        register(&first, &format!("while-down-{i}"));
    }
    cluster.start_with(2, &["--snapshot-every", EVERY]);
    let third = Http::new(&cluster.url(2));
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let view = third.get("/v1/cluster").body;
        if view["log"]["gaps_filled"].as_u64() >= Some(1) && view["log"]["starts_at"] == 0 {
            break;
        }
        assert!(Instant::now() < until, "the gap was never filled: {view}");
        std::thread::sleep(Duration::from_millis(100));
    }
    register(&third, "after");
    let expected = first.get_text("/v1/log?consistent=true");
    let lines = third.log_lines();
    assert_eq!(lines.join("\n") + "\n", expected);
    let (ok, out) = audit(&lines);
    assert!(ok, "{out}");
    assert_eq!(third.state_hash(), first.state_hash());
}

/// An event stream resumes on another member from its `Last-Event-ID`, even
/// after the member it came from (the leader) is killed: the same events,
/// with the same ids, none missing or repeated.
#[test]
fn an_event_stream_resumes_on_another_member_after_failover() {
    let ports = (0..NODES).map(|_| free_port()).collect();
    let home = TempDir::new("cluster-events");
    let mut cluster = Cluster::new(Hosts::Loopback { ports }, home.path(), NODES);
    for i in 0..NODES {
        cluster.start(i);
    }
    let members: Vec<String> = (0..NODES)
        .map(|i| format!("{}={}", i + 1, cluster.url(i)))
        .collect();
    let mut init = vec!["init", "--open"];
    init.extend(members.iter().map(String::as_str));
    cluster.cli(&init, 0);
    let leader = cluster.leader().expect("a leader");
    let register = |http: &Http, name: &str| {
        let (space, time) = http.space();
        let m = sign(
            &space,
            time,
            synod_core::wire::MessageType::Registration,
            serde_json::json!({"seq": 1, "name": name}),
            &key(name),
        );
        let answer = http.post("/v1/agents", &m);
        assert!(answer.ok(), "{answer:?}");
    };
    let at_leader = Http::new(&cluster.url(leader));
    for i in 0..10 {
        register(&at_leader, &format!("before-{i}"));
    }
    // A client reads the first events from the leader, then loses it.
    let first = read_events(
        &cluster.url(leader),
        "/v1/events?from=0",
        None,
        6,
        Duration::from_secs(10),
    );
    assert_eq!(first.len(), 6);
    cluster.kill(leader);
    let other = (leader + 1) % NODES;
    let at_other = Http::new(&cluster.url(other));
    for i in 0..5 {
        register(&at_other, &format!("after-{i}"));
    }
    // It resumes on another member where it left off.
    // Each stream is read until it falls quiet: all its history.
    let last = &first[5].0;
    let resumed = read_events(
        &cluster.url(other),
        "/v1/events",
        Some(last),
        usize::MAX,
        Duration::from_secs(2),
    );
    let whole = read_events(
        &cluster.url(other),
        "/v1/events?from=0",
        None,
        usize::MAX,
        Duration::from_secs(2),
    );
    assert_eq!(&whole[..6], &first[..], "the members' histories differ");
    assert_eq!(
        resumed,
        whole[6..].to_vec(),
        "the stream did not resume exactly"
    );
    assert!(
        resumed
            .iter()
            .any(|(_, name, data)| name == "agent_registered"
                && data["index"].as_u64() > first[5].2["index"].as_u64()),
        "{resumed:?}"
    );
}
