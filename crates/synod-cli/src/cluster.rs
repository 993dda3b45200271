//! `synod cluster`: make a cluster secret, form a cluster, add and remove
//! members, and show every member's view.
//!
//! Membership requests go to a node's `/raft/v1/admin/…` routes with the
//! cluster secret's MAC and their time (refused outside five minutes of the
//! node's clock); the node checks the answer's MAC too. The secret is an
//! operator's credential: whoever holds it runs the cluster's machinery, as
//! the admin key governs the space's rules.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use clap::Subcommand;
use serde_json::{Value, json};
use synod_node::cluster::{ClusterSecret, InitRequest, JoinRequest, LeaveRequest, NodeId};

use crate::Conn;

/// Longest a membership request may take (a new member catches up first).
const ADMIN_TIMEOUT: Duration = Duration::from_secs(150);
/// Tries to connect to a node that refuses connections (not started yet).
const CONNECT_ATTEMPTS: u32 = 20;

#[derive(Subcommand)]
pub enum ClusterCommand {
    /// Write a new cluster secret (64 hex characters) to FILE; every node
    /// and every `synod cluster` command of the cluster needs it.
    Secret {
        /// The file to write.
        #[arg(long, default_value = "cluster.secret")]
        out: PathBuf,
        /// Replace an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Form a new cluster of running, empty nodes and create its space.
    /// Run once, against one of the members; the space's admin key is
    /// written to that node's data directory.
    Init {
        /// The members, each as ID=URL (e.g. 1=http://127.0.0.1:7421).
        #[arg(required = true, value_name = "ID=URL")]
        members: Vec<String>,
        /// Create the space open (anyone may register).
        #[arg(long)]
        open: bool,
        /// The space's id (random when absent).
        #[arg(long)]
        space_id: Option<String>,
        #[command(flatten)]
        secret: SecretArg,
        #[command(flatten)]
        conn: Conn,
    },
    /// Add a running, empty node as a voting member: it first catches up
    /// with the log, then votes.
    Join {
        /// The new member as ID=URL.
        #[arg(value_name = "ID=URL")]
        member: String,
        #[command(flatten)]
        secret: SecretArg,
        #[command(flatten)]
        conn: Conn,
    },
    /// Remove a member from the cluster (it stops voting and receiving the
    /// log; its process keeps running until stopped).
    Leave {
        /// The member's id.
        id: NodeId,
        #[command(flatten)]
        secret: SecretArg,
        #[command(flatten)]
        conn: Conn,
    },
    /// Show the members, the leader, and each member's own view.
    Status {
        #[command(flatten)]
        conn: Conn,
    },
}

#[derive(clap::Args, Clone, Debug)]
pub struct SecretArg {
    /// The cluster secret file (from `synod cluster secret`).
    #[arg(
        long = "cluster-secret",
        env = "SYNOD_CLUSTER_SECRET",
        value_name = "FILE"
    )]
    pub cluster_secret: PathBuf,
}

impl SecretArg {
    fn read(&self) -> Result<ClusterSecret> {
        Ok(ClusterSecret::read(&self.cluster_secret)?)
    }
}

pub fn run(command: ClusterCommand) -> Result<std::process::ExitCode> {
    match command {
        ClusterCommand::Secret { out, force } => {
            write_secret(&out, force)?;
            eprintln!("cluster secret written to {}", out.display());
        }
        ClusterCommand::Init {
            members,
            open,
            space_id,
            secret,
            conn,
        } => {
            let members = members
                .iter()
                .map(|m| parse_member(m))
                .collect::<Result<_>>()?;
            let request = InitRequest {
                members,
                open,
                space_id,
            };
            let answer = admin(&conn.node, &secret.read()?, "init", &json!(request))?;
            if conn.json {
                println!("{}", serde_json::to_string_pretty(&answer)?);
            } else {
                println!(
                    "cluster formed; space {} created",
                    answer["space"].as_str().unwrap_or("?")
                );
                println!(
                    "  leader     node {} at {}",
                    answer["leader"]["id"],
                    answer["leader"]["addr"].as_str().unwrap_or("?")
                );
                println!(
                    "  admin key  {} (on the node at {})",
                    answer["admin_key"].as_str().unwrap_or("?"),
                    conn.node
                );
            }
        }
        ClusterCommand::Join {
            member,
            secret,
            conn,
        } => {
            let (id, addr) = parse_member(&member)?;
            let answer = admin(
                &conn.node,
                &secret.read()?,
                "join",
                &json!(JoinRequest { id, addr }),
            )?;
            print_members(&answer, conn.json)?;
        }
        ClusterCommand::Leave { id, secret, conn } => {
            let answer = admin(
                &conn.node,
                &secret.read()?,
                "leave",
                &json!(LeaveRequest { id }),
            )?;
            print_members(&answer, conn.json)?;
        }
        ClusterCommand::Status { conn } => status(&conn)?,
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// `ID=URL`.
fn parse_member(text: &str) -> Result<(NodeId, String)> {
    let (id, url) = text
        .split_once('=')
        .ok_or_else(|| anyhow!("{text:?} is not ID=URL (e.g. 1=http://127.0.0.1:7421)"))?;
    let id: NodeId = id
        .trim()
        .parse()
        .map_err(|_| anyhow!("{id:?} is not a node id (a number)"))?;
    let url = url.trim().trim_end_matches('/').to_string();
    synod_raft_url(&url)?;
    Ok((id, url))
}

fn synod_raft_url(url: &str) -> Result<()> {
    let ok = url
        .strip_prefix("http://")
        .is_some_and(|rest| !rest.is_empty() && !rest.contains(['/', '?', '#', '@', ' ']));
    if !ok {
        bail!("{url:?} is not a node URL (http://host:port)");
    }
    Ok(())
}

pub(crate) fn write_secret(path: &Path, force: bool) -> Result<()> {
    use std::io::Write as _;
    if path.exists() && !force {
        bail!(
            "{} already exists; pass --force to replace it",
            path.display()
        );
    }
    let mut bytes = [0u8; synod_node::cluster::SECRET_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| anyhow!("no randomness: {e}"))?;
    let secret = ClusterSecret::from_bytes(bytes);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("restricting {}", path.display()))?;
    }
    writeln!(file, "{}", secret.to_hex())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn now_ms() -> u64 {
    synod_node::now_ms()
}

/// Sends a membership request with the secret's MAC, checks the answer's
/// MAC, and returns its JSON (an error for a refusal).
pub fn admin(node: &str, secret: &ClusterSecret, op: &str, body: &Value) -> Result<Value> {
    use synod_node::cluster::{REPLY_HEADER, REQUEST_HEADER};
    let base = node.trim_end_matches('/');
    let path = format!("/raft/v1/admin/{op}");
    let body = serde_json::to_vec(body)?;
    let time = now_ms();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(ADMIN_TIMEOUT))
        .build()
        .into();
    // A node started a moment ago may not listen yet: retry a refused
    // connection (nothing was delivered) for a few seconds.
    let mut attempts = 0;
    let mut response = loop {
        attempts += 1;
        match agent
            .post(&format!("{base}{path}"))
            .header(
                REQUEST_HEADER,
                secret.request_header("POST", &path, time, &body),
            )
            .header("content-type", "application/json")
            .send(&body[..])
        {
            Ok(response) => break response,
            Err(ureq::Error::Io(e))
                if e.kind() == std::io::ErrorKind::ConnectionRefused
                    && attempts < CONNECT_ATTEMPTS =>
            {
                std::thread::sleep(Duration::from_millis(250));
            }
            Err(e) => bail!("cannot reach the node at {base}: {e}"),
        }
    };
    let status = response.status().as_u16();
    let mac = response
        .headers()
        .get(REPLY_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let text = response
        .body_mut()
        .read_to_vec()
        .context("reading the answer")?;
    let value: Value = serde_json::from_slice(&text).unwrap_or(Value::Null);
    let request_mac = secret.request_mac("POST", &path, time, &body);
    if let Err(e) = secret.check_reply(mac.as_deref(), &request_mac, status, &text) {
        let said = value["message"].as_str().unwrap_or("");
        bail!("the node's answer is not authentic ({e}); HTTP {status} {said}");
    }
    if status >= 400 {
        return Err(crate::client::ApiError {
            status,
            kind: value["error"].as_str().unwrap_or("error").to_string(),
            message: value["message"]
                .as_str()
                .map_or_else(|| value.to_string(), str::to_string),
        }
        .into());
    }
    Ok(value)
}

fn print_members(answer: &Value, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(answer)?);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = answer["members"]
        .as_array()
        .map(|m| {
            m.iter()
                .map(|m| {
                    vec![
                        m["id"].to_string(),
                        m["addr"].as_str().unwrap_or("").to_string(),
                        if m["voter"] == true {
                            "voter"
                        } else {
                            "learner"
                        }
                        .to_string(),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    crate::table::print(&["ID", "ADDRESS", "KIND"], &rows);
    Ok(())
}

/// Asks the node for the membership, then every member for its own view.
fn status(conn: &Conn) -> Result<()> {
    let here = conn.client().get("/v1/cluster")?;
    if here["mode"] != "cluster" {
        bail!(
            "the node at {} is a single node, not a cluster member",
            conn.node
        );
    }
    let members: Vec<(u64, String, bool)> = here["members"]
        .as_array()
        .map(|m| {
            m.iter()
                .filter_map(|m| {
                    Some((
                        m["id"].as_u64()?,
                        m["addr"].as_str()?.to_string(),
                        m["voter"] == true,
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    let views: Vec<(u64, String, bool, Option<Value>)> = members
        .into_iter()
        .map(|(id, addr, voter)| {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .timeout_global(Some(Duration::from_secs(2)))
                .build()
                .into();
            let view = agent
                .get(&format!("{addr}/v1/cluster"))
                .call()
                .ok()
                .and_then(|mut r| r.body_mut().read_json::<Value>().ok());
            (id, addr, voter, view)
        })
        .collect();
    if conn.json {
        let out: Vec<Value> = views
            .iter()
            .map(|(id, addr, voter, view)| json!({"id": id, "addr": addr, "voter": voter, "view": view}))
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({"members": out}))?
        );
        return Ok(());
    }
    println!(
        "space {}; leader {}",
        here["space"].as_str().unwrap_or(""),
        match here["leader"]["id"].as_u64() {
            Some(id) => format!(
                "node {id} at {}",
                here["leader"]["addr"].as_str().unwrap_or("")
            ),
            None => "unknown".into(),
        }
    );
    let rows: Vec<Vec<String>> = views
        .iter()
        .map(|(id, addr, voter, view)| {
            let kind = if *voter { "voter" } else { "learner" };
            match view {
                Some(v) => vec![
                    id.to_string(),
                    addr.clone(),
                    kind.to_string(),
                    v["role"].as_str().unwrap_or("").to_string(),
                    v["term"].to_string(),
                    v["raft"]["applied"].to_string(),
                    v["head"]["next_index"].to_string(),
                ],
                None => vec![
                    id.to_string(),
                    addr.clone(),
                    kind.to_string(),
                    "unreachable".into(),
                    String::new(),
                    String::new(),
                    String::new(),
                ],
            }
        })
        .collect();
    crate::table::print(
        &[
            "ID", "ADDRESS", "KIND", "ROLE", "TERM", "APPLIED", "ENTRIES",
        ],
        &rows,
    );
    Ok(())
}
