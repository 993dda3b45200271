//! The etcd side of `synod bench --cluster`, the side-by-side comparison
//! of docs/PERFORMANCE.md: a real etcd cluster
//! of Debian's `etcd-server` on loopback, driven through its JSON gateway
//! with the same load generator, connection count and request size as the
//! synod side, and the time it takes to elect a leader after the old one is
//! killed with `kill -9`.
//!
//! Nothing here is a model of etcd: the processes are the real server,
//! started with its default timeouts (heartbeat 100 ms, election 1 s).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use serde_json::{Value, json};

use crate::bench::{Sent, blast};

/// Longest wait for a fresh cluster to elect its first leader.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// One `etcd` process.
#[derive(Debug)]
struct Member {
    name: String,
    client: String,
    peer: String,
    child: Option<Child>,
}

/// A cluster of `etcd` processes on loopback, each with its own data
/// directory under one temporary directory; all are killed on drop.
#[derive(Debug)]
pub struct EtcdCluster {
    members: Vec<Member>,
    dir: PathBuf,
    binary: PathBuf,
    /// `--initial-cluster`: every member's name and peer URL.
    initial: String,
}

/// A port nothing listens on right now (the kernel's choice).
fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A blocking JSON POST with a short timeout; `None` if it failed.
fn post(url: &str, body: &Value, timeout: Duration) -> Option<Value> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .build()
        .into();
    let mut response = agent.post(url).send_json(body).ok()?;
    response.body_mut().read_json().ok()
}

impl EtcdCluster {
    /// Starts `size` members and waits until they agree on a leader.
    pub fn start(size: usize) -> Result<EtcdCluster> {
        let binary = which_etcd()?;
        let dir = std::env::temp_dir().join(format!(
            "synod-bench-etcd-{}-{}",
            std::process::id(),
            Instant::now().elapsed().as_nanos()
        ));
        std::fs::create_dir_all(&dir)?;
        let mut ports = Vec::new();
        for _ in 0..size {
            ports.push((free_port()?, free_port()?));
        }
        let initial: Vec<String> = ports
            .iter()
            .enumerate()
            .map(|(i, (_, peer))| format!("n{i}=http://127.0.0.1:{peer}"))
            .collect();
        let mut cluster = EtcdCluster {
            members: ports
                .iter()
                .enumerate()
                .map(|(i, (client, peer))| Member {
                    name: format!("n{i}"),
                    client: format!("http://127.0.0.1:{client}"),
                    peer: format!("http://127.0.0.1:{peer}"),
                    child: None,
                })
                .collect(),
            dir: dir.clone(),
            binary,
            initial: initial.join(","),
        };
        for i in 0..size {
            cluster.spawn(i)?;
        }
        cluster.wait_for_leader()?;
        Ok(cluster)
    }

    /// Starts member `i` on its data directory (a new member the first
    /// time, the same member again after [`EtcdCluster::kill`]).
    fn spawn(&mut self, i: usize) -> Result<()> {
        let member = &self.members[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("{}.log", member.name)))?;
        let child = Command::new(&self.binary)
            .args(["--name", &member.name])
            .arg("--data-dir")
            .arg(self.dir.join(&member.name))
            .args(["--listen-client-urls", &member.client])
            .args(["--advertise-client-urls", &member.client])
            .args(["--listen-peer-urls", &member.peer])
            .args(["--initial-advertise-peer-urls", &member.peer])
            .args(["--initial-cluster", &self.initial])
            .args(["--initial-cluster-state", "new"])
            .args(["--initial-cluster-token", "synod-bench"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", self.binary.display()))?;
        self.members[i].child = Some(child);
        Ok(())
    }

    /// Starts the killed member `i` again and waits until every member
    /// agrees on a leader.
    pub fn restart(&mut self, i: usize) -> Result<()> {
        self.spawn(i)?;
        self.wait_for_leader()
    }

    fn wait_for_leader(&self) -> Result<()> {
        let until = Instant::now() + START_TIMEOUT;
        while self.leader().is_none() {
            if Instant::now() > until {
                bail!(
                    "etcd has no leader all members agree on after {START_TIMEOUT:?}; logs in {}",
                    self.dir.display()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// The client URLs of the members still running.
    pub fn clients(&self) -> Vec<String> {
        self.members
            .iter()
            .filter(|m| m.child.is_some())
            .map(|m| m.client.clone())
            .collect()
    }

    /// Index of the member that is the leader, as the running members
    /// report it (their `maintenance/status`), if they agree on one.
    pub fn leader(&self) -> Option<usize> {
        let mut leader_id = None;
        let mut ids = Vec::new();
        for m in &self.members {
            if m.child.is_none() {
                ids.push(None);
                continue;
            }
            let status = post(
                &format!("{}/v3/maintenance/status", m.client),
                &json!({}),
                Duration::from_millis(500),
            );
            let own = status
                .as_ref()
                .and_then(|s| s["header"]["member_id"].as_str())
                .map(str::to_string);
            let leader = status
                .as_ref()
                .and_then(|s| s["leader"].as_str())
                .map(str::to_string);
            match (&leader_id, leader) {
                (_, None) => return None,
                (None, Some(l)) => leader_id = Some(l),
                (Some(a), Some(b)) if *a != b => return None,
                _ => {}
            }
            ids.push(own);
        }
        let leader_id = leader_id?;
        ids.iter().position(|id| id.as_deref() == Some(&leader_id))
    }

    /// `kill -9` of member `i`.
    pub fn kill(&mut self, i: usize) -> Result<()> {
        let member = &mut self.members[i];
        let mut child = member
            .child
            .take()
            .with_context(|| format!("{} is not running", member.name))?;
        child.kill()?;
        child.wait()?;
        Ok(())
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for m in &mut self.members {
            if let Some(mut child) = m.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The `etcd` binary: on PATH, or where Debian's `etcd-server` puts it.
fn which_etcd() -> Result<PathBuf> {
    let candidates = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain([PathBuf::from("/usr/bin")])
        .map(|d| d.join("etcd"));
    for c in candidates {
        if c.is_file() {
            return Ok(c);
        }
    }
    bail!("no etcd binary: install Debian's etcd-server (scripts/bench-cluster does)")
}

/// Result of one write load.
#[derive(Debug)]
pub struct WriteRun {
    /// Acknowledged writes.
    pub writes: usize,
    /// Acknowledged writes per second of wall time.
    pub per_second: f64,
    /// Commit latency: request sent to acknowledgement.
    pub p50: Duration,
    /// 99th percentile of the same.
    pub p99: Duration,
}

/// `writes` puts of `value_len`-byte values under distinct keys, spread over
/// `connections` connections to the leader (where a client library sends
/// them too).
pub fn write_load(
    cluster: &EtcdCluster,
    writes: usize,
    connections: usize,
    value_len: usize,
) -> Result<WriteRun> {
    let leader = cluster.leader().context("the cluster has no leader")?;
    let base = cluster.members[leader].client.clone();
    let b64 = base64::engine::general_purpose::STANDARD;
    let value = b64.encode(vec![b'v'; value_len]);
    let jobs: Vec<(String, Vec<u8>, usize)> = (0..writes)
        .map(|i| {
            let body = json!({"key": b64.encode(format!("bench/{i}")), "value": value});
            ("/v3/kv/put".to_string(), body.to_string().into_bytes(), i)
        })
        .collect();
    let (sent, elapsed): (Vec<Sent>, Duration) = blast(&base, jobs, connections)?;
    let mut latencies: Vec<Duration> = sent.iter().map(|s| s.2).collect();
    latencies.sort();
    Ok(WriteRun {
        writes: sent.len(),
        per_second: sent.len() as f64 / elapsed.as_secs_f64(),
        p50: crate::bench::percentile(&latencies, 50.0),
        p99: crate::bench::percentile(&latencies, 99.0),
    })
}

/// Kills the leader with `kill -9` and measures the time until a write is
/// acknowledged again by one of the survivors (the client side of a leader
/// election: what an application waits).
pub fn failover(cluster: &mut EtcdCluster) -> Result<(usize, Duration)> {
    let leader = cluster.leader().context("the cluster has no leader")?;
    let b64 = base64::engine::general_purpose::STANDARD;
    let body = json!({"key": b64.encode("bench/failover"), "value": b64.encode("x")});
    cluster.kill(leader)?;
    let killed = Instant::now();
    let until = killed + Duration::from_secs(30);
    loop {
        for url in cluster.clients() {
            let answer = post(
                &format!("{url}/v3/kv/put"),
                &body,
                Duration::from_millis(200),
            );
            if answer.is_some_and(|a| a.get("header").is_some()) {
                return Ok((leader, killed.elapsed()));
            }
        }
        if Instant::now() > until {
            bail!("no write was acknowledged within 30 s of killing the leader");
        }
    }
}
