//! Starting the real `synod serve` binary and talking to it over HTTP, as an
//! agent in another process would.

#![allow(dead_code)]

pub mod history;
pub mod netns;

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use synod_core::Keypair;
use synod_core::wire::{Digest, MessageType, Verified};

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_synod")
}

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let mut suffix = [0u8; 6];
        getrandom::fill(&mut suffix).unwrap();
        let dir = std::env::temp_dir().join(format!(
            "synod-test-{name}-{}",
            synod_core::wire::hex_encode(&suffix)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running `synod serve`, killed with SIGKILL on drop.
pub struct Server {
    pub child: Child,
    pub base: String,
    pub data_dir: PathBuf,
}

impl Server {
    pub fn start(data_dir: &Path) -> Server {
        Server::start_with(data_dir, &[])
    }

    pub fn start_with(data_dir: &Path, extra: &[&str]) -> Server {
        Server::start_on("127.0.0.1:0", data_dir, extra)
    }

    /// Starts a node listening on `listen` (a fixed port, for a cluster
    /// member whose address the membership records).
    pub fn start_on(listen: &str, data_dir: &Path, extra: &[&str]) -> Server {
        let mut child = Command::new(bin())
            .args(["serve", "--listen", listen, "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start synod serve");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let first = lines
            .next()
            .expect("synod serve printed nothing")
            .expect("read synod serve's output");
        let base = first
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {first}"))
            .to_string();
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server {
            child,
            base,
            data_dir: data_dir.to_path_buf(),
        }
    }

    /// SIGKILL, and wait for the process to be gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn client(&self) -> Http {
        Http::new(&self.base)
    }

    pub fn admin(&self) -> Keypair {
        synod_node::keys::read(&self.data_dir.join("admin.key")).unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// An HTTP answer: status and JSON body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Answer {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    pub fn kind(&self) -> &str {
        self.body["error"].as_str().unwrap_or("")
    }
}

#[derive(Clone)]
pub struct Http {
    pub base: String,
    agent: ureq::Agent,
}

impl Http {
    pub fn new(base: &str) -> Http {
        Http::with_timeout(base, Duration::from_secs(30))
    }

    /// A client whose requests give up after `timeout`.
    pub fn with_timeout(base: &str, timeout: Duration) -> Http {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .build()
            .into();
        Http {
            base: base.to_string(),
            agent,
        }
    }

    fn read(mut r: ureq::http::Response<ureq::Body>) -> Answer {
        let status = r.status().as_u16();
        let text = r.body_mut().read_to_string().unwrap_or_default();
        Answer {
            status,
            body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
        }
    }

    /// GETs; `Err` when the connection itself failed.
    pub fn try_get(&self, path: &str) -> Result<Answer, ureq::Error> {
        self.agent
            .get(&format!("{}{path}", self.base))
            .call()
            .map(Http::read)
    }

    pub fn get(&self, path: &str) -> Answer {
        Http::read(
            self.agent
                .get(&format!("{}{path}", self.base))
                .call()
                .expect("GET"),
        )
    }

    /// GETs text; `Err` when the connection failed or the status is not
    /// 2xx.
    pub fn try_get_text(&self, path: &str) -> Result<String, String> {
        let mut r = self
            .agent
            .get(&format!("{}{path}", self.base))
            .call()
            .map_err(|e| e.to_string())?;
        if !r.status().is_success() {
            return Err(format!("HTTP {}", r.status()));
        }
        r.body_mut()
            .with_config()
            .limit(TEXT_LIMIT)
            .read_to_string()
            .map_err(|e| e.to_string())
    }

    pub fn get_text(&self, path: &str) -> String {
        let mut r = self
            .agent
            .get(&format!("{}{path}", self.base))
            .call()
            .expect("GET");
        r.body_mut()
            .with_config()
            .limit(TEXT_LIMIT)
            .read_to_string()
            .unwrap()
    }

    /// POSTs raw bytes; `Err` when the connection itself failed.
    pub fn try_post_bytes(&self, path: &str, bytes: Vec<u8>) -> Result<Answer, ureq::Error> {
        self.agent
            .post(&format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .send(bytes)
            .map(Http::read)
    }

    pub fn post_bytes(&self, path: &str, bytes: Vec<u8>) -> Answer {
        self.try_post_bytes(path, bytes).expect("POST")
    }

    pub fn post(&self, path: &str, message: &Verified) -> Answer {
        self.post_bytes(path, serde_json::to_vec(&message.to_value()).unwrap())
    }

    pub fn space(&self) -> (String, u64) {
        let s = self.get("/v1/space").body;
        (
            s["space"].as_str().unwrap().to_string(),
            s["time"].as_u64().unwrap(),
        )
    }

    pub fn state_hash(&self) -> String {
        self.get("/v1/space?state_hash=true").body["state_hash"]
            .as_str()
            .unwrap()
            .to_string()
    }

    pub fn log_lines(&self) -> Vec<String> {
        self.get_text("/v1/log").lines().map(String::from).collect()
    }
}

/// Exports of a whole log run past ureq's default 10 MiB body limit
/// after a few thousand entries; the tests read up to 1 GiB.
const TEXT_LIMIT: u64 = 1 << 30;

pub fn key(name: &str) -> Keypair {
    Keypair::from_seed(&Digest::of(name.as_bytes()).0)
}

/// Builds and signs a message for the space.
pub fn sign(space: &str, time: u64, kind: MessageType, mut body: Value, key: &Keypair) -> Verified {
    body["space"] = json!(space);
    body["created_at"] = json!(time);
    Verified::sign(kind, body, key)
}

/// Admits `name` (grant by the admin, then registration) with authorities and roles.
pub fn admit(
    http: &Http,
    admin: &Keypair,
    name: &str,
    authorities: Value,
    roles: &[&str],
) -> Keypair {
    let (space, time) = http.space();
    let agent = key(name);
    let seq = http.get("/v1/space").body["config_seq"].as_u64().unwrap() + 1;
    let grant = sign(
        &space,
        time,
        MessageType::Configuration,
        json!({"seq": seq, "change": {"grant": {"agent": agent.id(), "authorities": authorities, "roles": roles}}}),
        admin,
    );
    let answer = http.post("/v1/config", &grant);
    assert!(answer.ok(), "grant {name}: {answer:?}");
    let registration = sign(
        &space,
        time,
        MessageType::Registration,
        json!({"seq": 1, "name": name, "vendor": "test", "authorities": authorities}),
        &agent,
    );
    let answer = http.post("/v1/agents", &registration);
    assert!(answer.ok(), "register {name}: {answer:?}");
    agent
}

/// A proposal body with a deadline `ms` ahead of the node's clock.
pub fn proposal(
    http: &Http,
    proposer: &Keypair,
    domain: &str,
    stakes: &str,
    confidence: &str,
    summary: &str,
    ms: u64,
) -> Verified {
    let (space, time) = http.space();
    sign(
        &space,
        time,
        MessageType::Proposal,
        json!({"domain": domain, "action": {"kind": "test", "summary": summary}, "confidence": confidence,
               "stakes": stakes, "deadline": time + ms}),
        proposer,
    )
}

/// `voters` agents and a proposer in `ops.*`, and `proposals` critical
/// proposals (critical stakes never close early, so every member's response
/// stays acceptable until all have answered). Returns the voters and the ids.
pub fn voting_space(
    http: &Http,
    admin: &Keypair,
    voters: usize,
    proposals: usize,
) -> (Vec<Keypair>, Vec<String>) {
    let agents = (0..voters)
        .map(|i| {
            admit(
                http,
                admin,
                &format!("voter-{i}"),
                json!({"ops.*": "0.5"}),
                &["agent"],
            )
        })
        .collect();
    let proposer = admit(http, admin, "proposer", json!({"ops.*": "0.5"}), &["agent"]);
    let ids = (0..proposals)
        .map(|i| {
            let p = proposal(
                http,
                &proposer,
                "ops.deploy",
                "critical",
                "0.6",
                &format!("change {i}"),
                3_600_000,
            );
            post_proposal(http, &p)
        })
        .collect();
    (agents, ids)
}

/// Posts a proposal, which must be accepted (201); returns its id.
pub fn post_proposal(http: &Http, proposal: &Verified) -> String {
    let answer = http.post("/v1/proposals", proposal);
    assert_eq!(answer.status, 201, "{answer:?}");
    answer.body["id"].as_str().unwrap().to_string()
}

pub fn response(
    space: &str,
    time: u64,
    proposal: &str,
    stance: &str,
    confidence: &str,
    agent: &Keypair,
) -> Verified {
    sign(
        space,
        time,
        MessageType::Response,
        json!({"proposal": proposal, "stance": stance, "confidence": confidence, "reasoning": "test"}),
        agent,
    )
}

/// Runs `synod audit verify` on export lines; returns (success, output).
pub fn audit(lines: &[String]) -> (bool, String) {
    let dir = TempDir::new("audit");
    let path = dir.path().join("export.jsonl");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let out = Command::new(bin())
        .args(["audit", "verify"])
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// Reads Server-Sent Events from `path` on a raw connection, resuming after
/// `last_id` if given, until `want` events arrived or `timeout` passed:
/// (id, event name, data) each.
pub fn read_events(
    base: &str,
    path: &str,
    last_id: Option<&str>,
    want: usize,
    timeout: Duration,
) -> Vec<(String, String, Value)> {
    use std::io::{Read as _, Write as _};
    let addr = base.strip_prefix("http://").unwrap();
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
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
    let deadline = std::time::Instant::now() + timeout;
    let mut line = String::new();
    while events.len() < want && std::time::Instant::now() < deadline {
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
