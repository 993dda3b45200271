//! `synod bench`: a load generator against a real `synod serve` process.
//!
//! It starts the node as a child process on a fresh data directory (an open
//! space, so agents register themselves), registers agents, opens proposals,
//! and sends pre-signed responses over HTTP from many connections. Proposals
//! use critical stakes, so none closes early and every response is counted; a
//! proposal closes when its last member answers, and the time from that last
//! vote to the `proposal_closed` event on the event stream is measured. In the
//! same run it measures single-core Ed25519 verification, the floor of what a
//! response can cost.

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::{Value, json};
use synod_core::Keypair;
use synod_core::wire::{Digest, MessageType, SignedMessage, Verified};

use crate::client::Client;
use crate::table;

#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// Which load: `throughput` (agents × proposals, all answer), `wide`
    /// (10,000 agents on one proposal), `many` (1,000 open proposals), `agents`
    /// (register agents and report the node's memory), or `all` of those.
    #[arg(long, default_value = "all")]
    pub(crate) scenario: String,
    /// Cluster mode next to etcd: for each `--nodes` size, committed
    /// responses per second and commit latency through the leader of a
    /// synod cluster and the same load of writes on a real etcd cluster, in
    /// interleaved runs, then each one's failovers after `kill -9` of its
    /// leader.
    #[arg(long)]
    pub(crate) cluster: bool,
    /// With `--cluster`: instead of etcd, synod with batching and pipelining
    /// each turned off (one client message per Raft entry; one Raft entry
    /// in flight), interleaved with the default.
    #[arg(long, requires = "cluster")]
    pub(crate) ablation: bool,
    /// Cluster sizes for `--cluster`.
    #[arg(long, value_delimiter = ',', default_value = "3,5")]
    pub(crate) nodes: Vec<usize>,
    /// Writes per run for `--cluster`.
    #[arg(long, default_value_t = 20_000)]
    pub(crate) writes: usize,
    /// Leader kills per system and cluster size for `--cluster` (each
    /// killed leader is restarted before the next kill).
    #[arg(long, default_value_t = 5)]
    pub(crate) failovers: usize,
    /// Bytes per value written to etcd: about a signed response's size.
    #[arg(long, default_value_t = 400)]
    pub(crate) value_bytes: usize,
    /// Agents voting in the `throughput` scenario, or registered in `agents`.
    #[arg(long)]
    pub(crate) agents: Option<usize>,
    /// Proposals in the `throughput` scenario.
    #[arg(long, default_value_t = 50)]
    pub(crate) proposals: usize,
    /// Concurrent HTTP connections.
    #[arg(long, default_value_t = 128)]
    pub(crate) connections: usize,
    /// Run the `throughput` scenario this many times and report the median.
    #[arg(long, default_value_t = 3)]
    pub(crate) repeat: usize,
    /// Print JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

/// A `synod serve` child process on a temporary directory.
struct NodeProcess {
    child: Child,
    base: String,
    dir: PathBuf,
}

impl NodeProcess {
    fn start() -> Result<NodeProcess> {
        let mut suffix = [0u8; 6];
        getrandom::fill(&mut suffix).map_err(|e| anyhow::anyhow!("{e}"))?;
        let dir = std::env::temp_dir().join(format!(
            "synod-bench-{}",
            synod_core::wire::hex_encode(&suffix)
        ));
        let exe = std::env::current_exe()?;
        let mut child = Command::new(exe)
            .args(["serve", "--open", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting synod serve")?;
        let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
        let first = lines.next().context("synod serve printed nothing")??;
        let base = first
            .strip_prefix("listening on ")
            .with_context(|| format!("unexpected output: {first}"))?
            .to_string();
        std::thread::spawn(move || for _ in lines {});
        Ok(NodeProcess { child, base, dir })
    }

    /// CPU time the node has used so far (user + system), from /proc.
    fn cpu_time(&self) -> Option<Duration> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).ok()?;
        // Fields after the command name, which is in parentheses.
        let rest = stat.rsplit_once(')')?.1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 =
            fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        // The kernel reports clock ticks of 1/100 s on Linux.
        Some(Duration::from_millis(ticks * 10))
    }

    /// Resident and peak resident memory of the node, in KiB (Linux).
    fn memory_kib(&self) -> Option<(u64, u64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        };
        Some((field("VmRSS:")?, field("VmHWM:")?))
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// CPU time this process (the load generator) has used, from /proc.
fn own_cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = fields
        .get(11)
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
        + fields
            .get(12)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

fn key(i: usize) -> Keypair {
    Keypair::from_seed(&Digest::of(format!("bench-agent-{i}").as_bytes()).0)
}

pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A minimal HTTP/1.1 keep-alive connection: the load generator shares the
/// machine with the node, so it spends as little CPU per request as it can
/// (one thread drives every connection; requests are built before the clock
/// starts; responses are parsed only for their status and length).
struct Conn {
    stream: tokio::net::TcpStream,
    buffer: Vec<u8>,
}

impl Conn {
    async fn open(host: &str) -> Result<Conn> {
        let stream = tokio::net::TcpStream::connect(host).await?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            buffer: Vec::with_capacity(8192),
        })
    }

    /// A POST request's bytes, built before the clock starts.
    fn request(host: &str, path: &str, body: &[u8]) -> Vec<u8> {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let mut request = Vec::with_capacity(head.len() + body.len());
        request.extend_from_slice(head.as_bytes());
        request.extend_from_slice(body);
        request
    }

    /// Sends a request built by [`Conn::request`]; returns the status and
    /// the response body.
    async fn send(&mut self, request: &[u8]) -> Result<(u16, Vec<u8>)> {
        use tokio::io::AsyncWriteExt as _;
        self.stream.write_all(request).await?;
        let head_end = loop {
            if let Some(i) = self.buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            self.fill().await?;
        };
        let head = std::str::from_utf8(&self.buffer[..head_end]).context("a bad response head")?;
        let mut lines = head.split("\r\n");
        let status: u16 = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
            .context("a bad status line")?;
        let mut length = 0usize;
        for header in lines {
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse()?;
            }
        }
        while self.buffer.len() < head_end + length {
            self.fill().await?;
        }
        let body = self.buffer[head_end..head_end + length].to_vec();
        self.buffer.drain(..head_end + length);
        Ok((status, body))
    }

    async fn fill(&mut self) -> Result<()> {
        use tokio::io::AsyncReadExt as _;
        let mut chunk = [0u8; 8192];
        let n = tokio::time::timeout(Duration::from_secs(60), self.stream.read(&mut chunk))
            .await
            .context("no response within 60 s")??;
        if n == 0 {
            bail!("the node closed the connection");
        }
        self.buffer.extend_from_slice(&chunk[..n]);
        Ok(())
    }
}

/// One accepted request: its tag, when it was sent, how long it took.
pub(crate) type Sent = (usize, Instant, Duration);

/// Posts `jobs` (path, body, tag) from `connections` threads; returns each
/// job's (tag, send instant, latency) for the accepted ones, and the wall time.
pub(crate) fn blast(
    base: &str,
    jobs: Vec<(String, Vec<u8>, usize)>,
    connections: usize,
) -> Result<(Vec<Sent>, Duration)> {
    let host = base
        .strip_prefix("http://")
        .context("the node's URL is http://HOST:PORT")?;
    let jobs: Vec<(String, Vec<u8>, usize)> = jobs
        .into_iter()
        .map(|(path, body, tag)| {
            let r = Conn::request(host, &path, &body);
            (path, r, tag)
        })
        .collect();
    let jobs = Arc::new(jobs);
    let next = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let started = Instant::now();
    let all = runtime.block_on(async {
        let tasks: Vec<_> = (0..connections)
            .map(|_| {
                let (jobs, next, failures, host) = (
                    jobs.clone(),
                    next.clone(),
                    failures.clone(),
                    host.to_string(),
                );
                tokio::spawn(async move {
                    let mut done = Vec::new();
                    let mut conn = match Conn::open(&host).await {
                        Ok(c) => c,
                        Err(e) => {
                            failures.lock().unwrap().push(format!("connecting: {e}"));
                            return done;
                        }
                    };
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some((path, request, tag)) = jobs.get(i) else {
                            break;
                        };
                        let sent = Instant::now();
                        match conn.send(request).await {
                            Ok((status, _)) if (200..300).contains(&status) => {
                                done.push((*tag, sent, sent.elapsed()))
                            }
                            Ok((status, text)) => {
                                failures.lock().unwrap().push(format!(
                                    "{path}: {status} {}",
                                    String::from_utf8_lossy(&text)
                                ));
                            }
                            Err(e) => {
                                failures.lock().unwrap().push(format!("{path}: {e}"));
                                break;
                            }
                        }
                    }
                    done
                })
            })
            .collect();
        let mut all = Vec::new();
        for task in tasks {
            match task.await {
                Ok(done) => all.extend(done),
                Err(_) => failures.lock().unwrap().push("a load task panicked".into()),
            }
        }
        all
    });
    let elapsed = started.elapsed();
    let failures = failures.lock().unwrap();
    if !failures.is_empty() {
        bail!("{} requests failed, e.g. {}", failures.len(), failures[0]);
    }
    Ok((all, elapsed))
}

fn register(node: &NodeProcess, count: usize, connections: usize) -> Result<Duration> {
    let client = Client::new(&node.base);
    let (space, time) = client.space()?;
    let jobs: Vec<(String, Vec<u8>, usize)> = (0..count)
        .map(|i| {
            let m = Verified::sign(
                MessageType::Registration,
                json!({"space": space, "created_at": time, "seq": 1, "name": format!("agent {i}"), "authorities": {"bench.*": "0.5"}}),
                &key(i),
            );
            ("/v1/agents".to_string(), serde_json::to_vec(&m.to_value()).expect("json"), i)
        })
        .collect();
    Ok(blast(&node.base, jobs, connections)?.1)
}

/// Result of one voting scenario.
struct VoteRun {
    name: String,
    /// Mean entries per fsync and mean fsync time (ms), from the node's metrics.
    batch_mean: f64,
    signature_batch_mean: f64,
    fsync_mean_ms: f64,
    /// Node CPU time per accepted response, µs.
    node_cpu_us: f64,
    /// The load generator's CPU time per request, µs (it shares the machine).
    client_cpu_us: f64,
    agents: usize,
    proposals: usize,
    responses: usize,
    per_second: f64,
    ack_p50: Duration,
    ack_p99: Duration,
    outcome_p50: Duration,
    outcome_p99: Duration,
}

fn vote(name: &str, agents: usize, proposals: usize, connections: usize) -> Result<VoteRun> {
    if agents < 2 || proposals == 0 || connections == 0 {
        bail!("a voting run needs at least 2 agents, 1 proposal and 1 connection");
    }
    let node = NodeProcess::start()?;
    register(&node, agents, connections)?;
    let client = Client::new(&node.base);
    let (space, time) = client.space()?;
    let proposer = key(0);
    let mut ids = Vec::new();
    for p in 0..proposals {
        let m = Verified::sign(
            MessageType::Proposal,
            json!({"space": space, "created_at": time, "domain": "bench.ops", "action": {"kind": "bench", "summary": format!("proposal {p}")},
                   "confidence": "0.8", "stakes": "critical", "deadline": time + 3_600_000}),
            &proposer,
        );
        client.post("/v1/proposals", &m.to_value(), None)?;
        ids.push(m.id().to_hex());
    }
    // Listen for closes on the event stream from here on.
    let from = client.get("/v1/space")?["head"]["next_index"]
        .as_u64()
        .unwrap_or(0);
    let closes: Arc<Mutex<HashMap<String, Instant>>> = Arc::new(Mutex::new(HashMap::new()));
    let listener = {
        let (closes, base, want) = (closes.clone(), node.base.clone(), proposals);
        std::thread::spawn(move || {
            let _ = Client::new(&base).events(
                &format!("/v1/events?from={from}"),
                None,
                |_, name, data| {
                    if name == "proposal_closed" {
                        let mut c = closes.lock().unwrap();
                        c.insert(
                            data["proposal"].as_str().unwrap_or("").to_string(),
                            Instant::now(),
                        );
                        return Ok(c.len() < want);
                    }
                    Ok(true)
                },
            );
        })
    };
    // Pre-sign every response (not timed), interleaving proposals.
    let mut jobs = Vec::with_capacity((agents - 1) * proposals);
    for a in 1..agents {
        let k = key(a);
        for (p, id) in ids.iter().enumerate() {
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
    let responses = jobs.len();
    let cpu_before = node.cpu_time().unwrap_or_default();
    let own_before = own_cpu_time();
    let (done, elapsed) = blast(&node.base, jobs, connections)?;
    let own_cpu = own_cpu_time().saturating_sub(own_before);
    let node_cpu = node
        .cpu_time()
        .unwrap_or_default()
        .saturating_sub(cpu_before);
    // The last vote of each proposal: the latest send among its responses.
    let mut last_vote: HashMap<usize, Instant> = HashMap::new();
    let mut latencies: Vec<Duration> = Vec::with_capacity(done.len());
    for (p, sent, latency) in &done {
        latencies.push(*latency);
        let e = last_vote.entry(*p).or_insert(*sent);
        if *sent > *e {
            *e = *sent;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while closes.lock().unwrap().len() < proposals && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let closes = closes.lock().unwrap().clone();
    if closes.len() < proposals {
        bail!("only {} of {proposals} proposals closed", closes.len());
    }
    let _ = listener;
    let mut outcome: Vec<Duration> = ids
        .iter()
        .enumerate()
        .map(|(p, id)| closes[id].saturating_duration_since(last_vote[&p]))
        .collect();
    latencies.sort();
    outcome.sort();
    let metrics = client.get_text("/metrics")?;
    let metric = |name: &str| {
        metrics
            .lines()
            .find_map(|l| {
                l.strip_prefix(name)
                    .and_then(|v| v.trim().parse::<f64>().ok())
            })
            .unwrap_or(0.0)
    };
    let batches = metric("synod_fsync_batch_entries_count ").max(1.0);
    Ok(VoteRun {
        name: name.to_string(),
        batch_mean: metric("synod_fsync_batch_entries_sum ") / batches,
        signature_batch_mean: metric("synod_signature_batch_size_sum ")
            / metric("synod_signature_batch_size_count ").max(1.0),
        node_cpu_us: node_cpu.as_secs_f64() * 1e6 / done.len().max(1) as f64,
        client_cpu_us: own_cpu.as_secs_f64() * 1e6 / done.len().max(1) as f64,
        fsync_mean_ms: metric("synod_fsync_seconds_sum ") * 1000.0
            / metric("synod_fsync_seconds_count ").max(1.0),
        agents,
        proposals,
        responses,
        per_second: done.len() as f64 / elapsed.as_secs_f64(),
        ack_p50: percentile(&latencies, 50.0),
        ack_p99: percentile(&latencies, 99.0),
        outcome_p50: percentile(&outcome, 50.0),
        outcome_p99: percentile(&outcome, 99.0),
    })
}

/// Single-core strict Ed25519 verifications per second of a response-sized
/// message: the best of ten 100 ms windows. Taking the best makes the ratio
/// of node throughput to it conservative on a noisy machine.
fn verify_rate() -> f64 {
    let m = SignedMessage::sign(
        MessageType::Response,
        json!({"space": "bench", "created_at": 1, "proposal": Digest::of(b"p"), "stance": "endorse", "confidence": "0.7", "reasoning": "bench"}),
        &key(1),
    );
    let mut best = 0.0f64;
    for _ in 0..10 {
        let started = Instant::now();
        let mut n = 0u64;
        while started.elapsed() < Duration::from_millis(100) {
            for _ in 0..50 {
                assert!(m.check_signature().is_ok());
            }
            n += 50;
        }
        best = best.max(n as f64 / started.elapsed().as_secs_f64());
    }
    best
}

pub fn run(args: BenchArgs) -> Result<()> {
    if args.cluster {
        return crate::bench_cluster::run(&args);
    }
    let all = args.scenario == "all";
    if !all && !["throughput", "wide", "many", "agents"].contains(&args.scenario.as_str()) {
        bail!("unknown scenario {:?}", args.scenario);
    }
    let verify_before = verify_rate();
    let mut runs = Vec::new();
    if all || args.scenario == "throughput" {
        let mut repeats = Vec::new();
        for _ in 0..args.repeat.max(1) {
            repeats.push(vote(
                "throughput",
                args.agents.unwrap_or(201),
                args.proposals,
                args.connections,
            )?);
        }
        repeats.sort_by(|a, b| a.per_second.total_cmp(&b.per_second));
        let mut median = repeats.swap_remove(repeats.len() / 2);
        median.name = format!("throughput (median of {})", args.repeat.max(1));
        runs.push(median);
    }
    if all || args.scenario == "wide" {
        runs.push(vote(
            "wide: 10,000 agents on one proposal",
            10_001,
            1,
            args.connections,
        )?);
    }
    if all || args.scenario == "many" {
        runs.push(vote(
            "many: 1,000 open proposals",
            11,
            1_000,
            args.connections,
        )?);
    }
    let mut memory = None;
    if all || args.scenario == "agents" {
        let count = args.agents.filter(|_| !all).unwrap_or(100_000);
        let node = NodeProcess::start()?;
        let elapsed = register(&node, count, args.connections)?;
        let (rss, peak) = node
            .memory_kib()
            .context("reading the node's memory (Linux /proc)")?;
        memory = Some((count, rss, peak, count as f64 / elapsed.as_secs_f64()));
    }
    // Measured before and after the load; the faster one is the reference.
    let verify = verify_before.max(verify_rate());
    if !args.json {
        println!(
            "single-core Ed25519 verification: {verify:.0}/s ({:.1} µs each)",
            1e6 / verify
        );
    }
    if args.json {
        let runs: Vec<Value> = runs
            .iter()
            .map(|r| {
                json!({"scenario": r.name, "agents": r.agents, "proposals": r.proposals, "responses": r.responses,
                       "durable_responses_per_second": r.per_second,
                       "ack_ms": {"p50": ms(r.ack_p50), "p99": ms(r.ack_p99)},
                       "last_vote_to_outcome_ms": {"p50": ms(r.outcome_p50), "p99": ms(r.outcome_p99)},
                       "ratio_to_single_core_verify": r.per_second / verify,
                       "entries_per_fsync_mean": r.batch_mean, "fsync_ms_mean": r.fsync_mean_ms,
                       "signatures_per_batch_mean": r.signature_batch_mean,
                       "node_cpu_us_per_response": r.node_cpu_us,
                       "load_generator_cpu_us_per_request": r.client_cpu_us})
            })
            .collect();
        let memory = memory.map(|(n, rss, peak, rate)| json!({"agents": n, "rss_kib": rss, "peak_rss_kib": peak, "registrations_per_second": rate}));
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "single_core_verify_per_second": verify, "connections": args.connections, "runs": runs, "memory": memory
            }))?
        );
        return Ok(());
    }
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            vec![
                r.name.clone(),
                r.responses.to_string(),
                format!("{:.0}", r.per_second),
                format!("{:.2}", r.per_second / verify),
                format!("{:.1} / {:.1}", ms(r.ack_p50), ms(r.ack_p99)),
                format!("{:.1} / {:.1}", ms(r.outcome_p50), ms(r.outcome_p99)),
                format!("{:.0} / {:.1}", r.batch_mean, r.fsync_mean_ms),
                format!("{:.0}", r.signature_batch_mean),
                format!("{:.0} / {:.0}", r.node_cpu_us, r.client_cpu_us),
            ]
        })
        .collect();
    if !rows.is_empty() {
        println!("{} connections", args.connections);
        table::print(
            &[
                "SCENARIO",
                "RESPONSES",
                "DURABLE/S",
                "× VERIFY",
                "ACK P50/P99 MS",
                "LAST VOTE→OUTCOME P50/P99 MS",
                "ENTRIES/FSYNC, FSYNC MS",
                "SIGS/BATCH",
                "CPU µS/RESPONSE NODE / LOADGEN",
            ],
            &rows,
        );
    }
    if let Some((n, rss, peak, rate)) = memory {
        println!(
            "{n} agents registered at {rate:.0}/s; node memory {:.0} MiB resident, {:.0} MiB peak",
            rss as f64 / 1024.0,
            peak as f64 / 1024.0
        );
    }
    Ok(())
}
