//! `synod bench --cluster`: synod's cluster mode and etcd side by side, on
//! this machine, in one run.
//!
//! For each cluster size, runs alternate between the two systems (synod,
//! etcd, synod, …) so that a change in the machine's load falls on both.
//! A synod run: a fresh open space on a cluster of real `synod serve`
//! processes on loopback, agents registered, proposals opened, then
//! pre-signed responses (about 450 bytes each) sent from `--connections`
//! connections to the leader, as etcd's client library sends its writes to
//! etcd's leader; a response is committed when its answer arrives. An etcd
//! run: the same load generator writing values of the same size
//! (`crate::etcd`). Then each system's leader is killed with `kill -9` and
//! the time until a survivor acknowledges a write is measured.

use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use synod_core::Keypair;
use synod_core::wire::{Digest, MessageType, Verified};
use synod_node::cluster::ClusterSecret;

use crate::bench::{BenchArgs, blast, percentile};
use crate::client::Client;
use crate::etcd::WriteRun;
use crate::table;

/// One `synod serve` member.
struct Member {
    url: String,
    listen: String,
    dir: PathBuf,
    id: usize,
    child: Option<Child>,
}

/// A cluster of `synod serve` processes on loopback under one temporary
/// directory; all are killed on drop.
struct SynodCluster {
    members: Vec<Member>,
    home: PathBuf,
    secret_path: PathBuf,
    /// Extra `synod serve` arguments for every member.
    extra: Vec<String>,
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl SynodCluster {
    fn start(size: usize, extra: &[&str]) -> Result<SynodCluster> {
        let mut suffix = [0u8; 6];
        getrandom::fill(&mut suffix).map_err(|e| anyhow::anyhow!("{e}"))?;
        let home = std::env::temp_dir().join(format!(
            "synod-bench-cluster-{}",
            synod_core::wire::hex_encode(&suffix)
        ));
        std::fs::create_dir_all(&home)?;
        let secret_path = home.join("cluster.secret");
        crate::cluster::write_secret(&secret_path, false)?;
        let mut cluster = SynodCluster {
            members: Vec::new(),
            home,
            secret_path,
            // Experiments pass hidden `synod serve` flags to every member
            // through SYNOD_BENCH_SERVE_ARGS (split on whitespace).
            extra: extra
                .iter()
                .map(|a| a.to_string())
                .chain(
                    std::env::var("SYNOD_BENCH_SERVE_ARGS")
                        .unwrap_or_default()
                        .split_whitespace()
                        .map(String::from),
                )
                .collect(),
        };
        for i in 0..size {
            let port = free_port()?;
            cluster.members.push(Member {
                url: format!("http://127.0.0.1:{port}"),
                listen: format!("127.0.0.1:{port}"),
                dir: cluster.home.join(format!("n{}", i + 1)),
                id: i + 1,
                child: None,
            });
            cluster.spawn(i)?;
        }
        let members: std::collections::BTreeMap<u64, String> = cluster
            .members
            .iter()
            .map(|m| (m.id as u64, m.url.clone()))
            .collect();
        crate::cluster::admin(
            &cluster.members[0].url,
            &ClusterSecret::read(&cluster.secret_path)?,
            "init",
            &json!({"members": members, "open": true}),
        )?;
        Ok(cluster)
    }

    fn spawn(&mut self, i: usize) -> Result<()> {
        let exe = std::env::current_exe()?;
        let member = &mut self.members[i];
        let mut child = Command::new(exe)
            .args(["serve", "--listen", &member.listen, "--data-dir"])
            .arg(&member.dir)
            .args(["--node-id", &member.id.to_string(), "--cluster-secret"])
            .arg(&self.secret_path)
            .args(&self.extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting synod serve")?;
        let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
        let first = lines.next().context("synod serve printed nothing")??;
        if !first.starts_with("listening on ") {
            bail!("unexpected output: {first}");
        }
        std::thread::spawn(move || for _ in lines {});
        member.child = Some(child);
        Ok(())
    }

    /// The leader's index, as the first running member that knows one says.
    fn leader(&self) -> Option<usize> {
        self.members
            .iter()
            .filter(|m| m.child.is_some())
            .find_map(|m| {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .timeout_global(Some(Duration::from_millis(500)))
                    .build()
                    .into();
                let view: Value = agent
                    .get(&format!("{}/v1/cluster", m.url))
                    .call()
                    .ok()?
                    .body_mut()
                    .read_json()
                    .ok()?;
                let id = view["leader"]["id"].as_u64()? as usize;
                self.members.iter().position(|m| m.id == id)
            })
    }

    /// Starts the killed member `i` again and waits until it knows the
    /// leader (it has rejoined).
    fn restart(&mut self, i: usize) -> Result<()> {
        self.spawn(i)?;
        let until = Instant::now() + Duration::from_secs(30);
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_millis(500)))
            .build()
            .into();
        loop {
            let view: Option<Value> = agent
                .get(&format!("{}/v1/cluster", self.members[i].url))
                .call()
                .ok()
                .and_then(|mut r| r.body_mut().read_json().ok());
            if view.is_some_and(|v| v["leader"]["id"].is_u64()) {
                return Ok(());
            }
            if Instant::now() > until {
                bail!("member {} did not rejoin within 30 s", self.members[i].id);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn wait_for_leader(&self) -> Result<usize> {
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(l) = self.leader() {
                return Ok(l);
            }
            if Instant::now() > until {
                bail!("the synod cluster elected no leader within 30 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for SynodCluster {
    fn drop(&mut self) {
        for m in &mut self.members {
            if let Some(mut child) = m.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        let _ = std::fs::remove_dir_all(&self.home);
    }
}

fn key(run: usize, i: usize) -> Keypair {
    Keypair::from_seed(&Digest::of(format!("bench-cluster-{run}-{i}").as_bytes()).0)
}

/// One write load on the cluster: `agents` agents register, one opens
/// enough critical proposals for `writes` responses, and the responses are
/// sent to the leader from `connections` connections. Returns the
/// responses' commit figures.
fn synod_load(
    cluster: &SynodCluster,
    run: usize,
    writes: usize,
    agents: usize,
    connections: usize,
) -> Result<WriteRun> {
    let leader = &cluster.members[cluster.wait_for_leader()?].url;
    let client = Client::new(leader);
    let (space, time) = client.space()?;
    let registrations: Vec<(String, Vec<u8>, usize)> = (0..agents)
        .map(|i| {
            let m = Verified::sign(
                MessageType::Registration,
                json!({"space": space, "created_at": time, "seq": 1, "name": format!("agent {i}"), "authorities": {"bench.*": "0.5"}}),
                &key(run, i),
            );
            ("/v1/agents".to_string(), serde_json::to_vec(&m.to_value()).expect("json"), i)
        })
        .collect();
    blast(leader, registrations, connections)?;
    let voters = agents - 1;
    let proposals = writes.div_ceil(voters);
    let proposer = key(run, 0);
    let mut ids = Vec::new();
    for p in 0..proposals {
        let m = Verified::sign(
            MessageType::Proposal,
            json!({"space": space, "created_at": time, "domain": "bench.ops", "action": {"kind": "bench", "summary": format!("run {run} proposal {p}")},
                   "confidence": "0.8", "stakes": "critical", "deadline": time + 3_600_000}),
            &proposer,
        );
        client.post("/v1/proposals", &m.to_value(), None)?;
        ids.push(m.id().to_hex());
    }
    let mut jobs = Vec::with_capacity(writes);
    'fill: for a in 1..agents {
        let k = key(run, a);
        for (p, id) in ids.iter().enumerate() {
            if jobs.len() == writes {
                break 'fill;
            }
            let stance = if (a + p) % 3 == 0 {
                "challenge"
            } else {
                "endorse"
            };
            let m = Verified::sign(
                MessageType::Response,
                json!({"space": space, "created_at": time, "proposal": id, "stance": stance, "confidence": "0.7", "reasoning": "bench"}),
                &k,
            );
            jobs.push((
                format!("/v1/proposals/{id}/responses"),
                serde_json::to_vec(&m.to_value())?,
                p,
            ));
        }
    }
    // Proposal by proposal, so that every connection has work throughout.
    jobs.sort_by_key(|j| j.2);
    let (sent, elapsed) = blast(leader, jobs, connections)?;
    let mut latencies: Vec<Duration> = sent.iter().map(|s| s.2).collect();
    latencies.sort();
    Ok(WriteRun {
        writes: sent.len(),
        per_second: sent.len() as f64 / elapsed.as_secs_f64(),
        p50: percentile(&latencies, 50.0),
        p99: percentile(&latencies, 99.0),
    })
}

/// Kills the leader with `kill -9` and measures the time until a survivor
/// acknowledges a write (a registration of a new agent; each attempt a new
/// one, each with a 200 ms timeout), as `crate::etcd::failover` does.
/// Returns the killed member and the time.
fn synod_failover(cluster: &mut SynodCluster, round: usize) -> Result<(usize, Duration)> {
    let leader = cluster.wait_for_leader()?;
    let client = Client::new(&cluster.members[leader].url);
    let (space, time) = client.space()?;
    if let Some(mut child) = cluster.members[leader].child.take() {
        child.kill()?;
        child.wait()?;
    }
    let killed = Instant::now();
    let until = killed + Duration::from_secs(30);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_millis(200)))
        .http_status_as_error(false)
        .build()
        .into();
    let mut attempt = 0;
    loop {
        for m in cluster.members.iter().filter(|m| m.child.is_some()) {
            attempt += 1;
            let message = Verified::sign(
                MessageType::Registration,
                json!({"space": space, "created_at": time, "seq": 1, "name": format!("failover {round}.{attempt}")}),
                &key(usize::MAX - round, attempt),
            );
            let answer = agent
                .post(&format!("{}/v1/agents", m.url))
                .header("content-type", "application/json")
                .send(serde_json::to_vec(&message.to_value())?.as_slice());
            if answer.is_ok_and(|r| r.status().is_success()) {
                return Ok((leader, killed.elapsed()));
            }
        }
        if Instant::now() > until {
            bail!("no write was acknowledged within 30 s of killing the leader");
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(mut runs: Vec<WriteRun>) -> WriteRun {
    runs.sort_by(|a, b| a.per_second.total_cmp(&b.per_second));
    runs.swap_remove(runs.len() / 2)
}

/// Agents registered per synod run: each response is one agent's vote on a
/// proposal, so a run has `writes / (AGENTS - 1)` proposals.
const AGENTS: usize = 101;

/// `--failovers` leader kills of each system, interleaved, each killed
/// leader restarted before the next kill; the times sorted.
fn failovers(
    synod: &mut SynodCluster,
    etcd: &mut crate::etcd::EtcdCluster,
    rounds: usize,
) -> Result<(Vec<Duration>, Vec<Duration>)> {
    let (mut s, mut e) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let (killed, took) = synod_failover(synod, round)?;
        s.push(took);
        synod.restart(killed)?;
        let (killed, took) = crate::etcd::failover(etcd)?;
        e.push(took);
        etcd.restart(killed)?;
    }
    s.sort();
    e.sort();
    Ok((s, e))
}

/// Median and slowest of sorted times, in ms, as text and JSON.
fn spread(sorted: &[Duration]) -> (String, Value) {
    match (sorted.get(sorted.len() / 2), sorted.last()) {
        (Some(median), Some(max)) => (
            format!("{:.0} / {:.0}", ms(*median), ms(*max)),
            json!({"median": ms(*median), "max": ms(*max), "all": sorted.iter().map(|d| ms(*d)).collect::<Vec<_>>()}),
        ),
        _ => ("-".into(), Value::Null),
    }
}

fn row(rows: &mut Vec<Vec<String>>, name: String, run: &WriteRun, failover: &str) {
    rows.push(vec![
        name,
        run.writes.to_string(),
        format!("{:.0}", run.per_second),
        format!("{:.1} / {:.1}", ms(run.p50), ms(run.p99)),
        failover.to_string(),
    ]);
}

fn run_json(run: &WriteRun) -> Value {
    json!({"writes": run.writes, "writes_per_second": run.per_second,
           "commit_ms": {"p50": ms(run.p50), "p99": ms(run.p99)}})
}

/// The cluster configurations `--ablation` compares: name and `synod
/// serve` arguments.
const ABLATION: [(&str, &[&str]); 5] = [
    ("batched, pipelined (default)", &[]),
    ("batches of at most 32", &["--max-batch", "32"]),
    ("not batched", &["--max-batch", "1"]),
    ("not pipelined", &["--max-inflight", "1"]),
    ("neither", &["--max-batch", "1", "--max-inflight", "1"]),
];

/// `synod bench --cluster --ablation`: the default cluster next to the same
/// cluster with batching, pipelining or both turned off, in interleaved
/// runs of the same load.
fn ablation(args: &BenchArgs) -> Result<(Vec<Vec<String>>, Vec<Value>)> {
    let (mut rows, mut out) = (Vec::new(), Vec::new());
    for &size in &args.nodes {
        let clusters: Vec<SynodCluster> = ABLATION
            .iter()
            .map(|(_, extra)| SynodCluster::start(size, extra))
            .collect::<Result<_>>()?;
        let mut runs: Vec<Vec<WriteRun>> = ABLATION.iter().map(|_| Vec::new()).collect();
        for run in 0..args.repeat.max(1) {
            for (c, cluster) in clusters.iter().enumerate() {
                eprint!(
                    "\r{size} nodes: run {} of {}, {}            ",
                    run + 1,
                    args.repeat.max(1),
                    ABLATION[c].0
                );
                runs[c].push(synod_load(
                    cluster,
                    run,
                    args.writes,
                    AGENTS,
                    args.connections,
                )?);
            }
        }
        eprintln!();
        for ((name, extra), runs) in ABLATION.iter().zip(runs) {
            let run = median(runs);
            row(&mut rows, format!("synod, {size} nodes, {name}"), &run, "-");
            out.push(
                json!({"system": "synod", "nodes": size, "configuration": name,
                            "serve_args": extra, "run": run_json(&run)}),
            );
        }
    }
    Ok((rows, out))
}

/// `synod bench --cluster`.
pub fn run(args: &BenchArgs) -> Result<()> {
    let (rows, out) = if args.ablation {
        ablation(args)?
    } else {
        against_etcd(args)?
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "connections": args.connections, "value_bytes": args.value_bytes,
                "repeat": args.repeat.max(1), "failovers": args.failovers, "runs": out
            }))?
        );
        return Ok(());
    }
    if args.ablation {
        println!(
            "{} connections to the leader, signed responses; median of {} interleaved runs",
            args.connections,
            args.repeat.max(1)
        );
    } else {
        println!(
            "{} connections to the leader; synod: signed responses, etcd: {}-byte values; median of {} interleaved runs; failover: median / max of {} leader kills",
            args.connections,
            args.value_bytes,
            args.repeat.max(1),
            args.failovers
        );
    }
    table::print(
        &[
            "SYSTEM",
            "WRITES",
            "COMMITTED/S",
            "COMMIT P50/P99 MS",
            "FAILOVER MS",
        ],
        &rows,
    );
    Ok(())
}

/// For each size: interleaved write loads on synod and etcd, then their
/// failovers.
fn against_etcd(args: &BenchArgs) -> Result<(Vec<Vec<String>>, Vec<Value>)> {
    let (mut rows, mut out) = (Vec::new(), Vec::new());
    for &size in &args.nodes {
        let mut synod = SynodCluster::start(size, &[])?;
        let mut etcd = crate::etcd::EtcdCluster::start(size)?;
        let (mut synod_runs, mut etcd_runs) = (Vec::new(), Vec::new());
        for run in 0..args.repeat.max(1) {
            eprint!("\r{size} nodes: run {} of {}", run + 1, args.repeat.max(1));
            synod_runs.push(synod_load(
                &synod,
                run,
                args.writes,
                AGENTS,
                args.connections,
            )?);
            etcd_runs.push(crate::etcd::write_load(
                &etcd,
                args.writes,
                args.connections,
                args.value_bytes,
            )?);
        }
        eprintln!(", {} failovers each", args.failovers);
        let (synod_failovers, etcd_failovers) = failovers(&mut synod, &mut etcd, args.failovers)?;
        for (system, run, failovers) in [
            ("synod", median(synod_runs), synod_failovers),
            ("etcd", median(etcd_runs), etcd_failovers),
        ] {
            let (text, failover) = spread(&failovers);
            row(&mut rows, format!("{system}, {size} nodes"), &run, &text);
            out.push(
                json!({"system": system, "nodes": size, "run": run_json(&run),
                            "failover_ms": failover}),
            );
        }
    }
    Ok((rows, out))
}
