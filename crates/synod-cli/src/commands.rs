//! The client commands: they sign messages with the user's key and talk to a
//! node over HTTP.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use synod_core::wire::MessageType;
use synod_node::keys;

use crate::Conn;
use crate::client::Client;
use crate::table;

#[derive(Subcommand)]
pub enum AgentCommand {
    /// Register (or update) the key's agent in the space.
    Register {
        /// Display name.
        #[arg(long)]
        name: String,
        /// Vendor label, e.g. anthropic.
        #[arg(long)]
        vendor: Option<String>,
        /// Model label.
        #[arg(long)]
        model: Option<String>,
        /// Declared authority, `PATTERN=VALUE` (repeatable): `fraud.*=0.9`.
        #[arg(long = "authority", value_name = "PATTERN=VALUE")]
        authorities: Vec<String>,
        /// Role asked for (repeatable); only an admin's grant gives one.
        #[arg(long = "role")]
        roles: Vec<String>,
    },
    /// Make a new agent token for the MCP endpoint (`/mcp`): print the token
    /// and the did it stands for. The token is the agent's key (its seed is
    /// derived from it); the node stores nothing. Register the agent, or
    /// grant it authority, under that did.
    Token,
    /// List agents.
    List,
    /// Show one agent (default: the key's own).
    Show {
        /// The agent's did.
        did: Option<String>,
    },
}

#[derive(Args)]
pub struct ProposeArgs {
    /// Domain, e.g. credit.loans.
    #[arg(long)]
    domain: String,
    /// Action kind, e.g. approve_loan.
    #[arg(long)]
    kind: String,
    /// One-line summary for people.
    #[arg(long)]
    summary: String,
    /// JSON payload for the agents.
    #[arg(long)]
    payload: Option<String>,
    /// Your confidence, in (0, 1]. Required for a vote; a belief proposal
    /// records it (default 1) but does not use it.
    #[arg(long)]
    confidence: Option<String>,
    /// low, medium, high or critical.
    #[arg(long, default_value = "medium")]
    stakes: String,
    /// How long the vote stays open: 90s, 10m, 2h, 1d.
    #[arg(long, default_value = "10m")]
    deadline: String,
    /// A proposal of yours this one replaces.
    #[arg(long)]
    supersedes: Option<String>,
    /// Policy override, `FIELD=VALUE` (repeatable); may only tighten.
    #[arg(long = "policy", value_name = "FIELD=VALUE")]
    policy: Vec<String>,
    /// Ask a question instead (belief consensus): the options, comma
    /// separated (`acme,globex,initech`); responses are distributions over
    /// them.
    #[arg(long, value_delimiter = ',', value_name = "LABELS")]
    options: Vec<String>,
    /// With --options: your own distribution, `OPTION=PROBABILITY`, comma
    /// separated (`acme=0.7,globex=0.3`); the probabilities sum to 1.
    #[arg(long, value_delimiter = ',', value_name = "OPTION=P")]
    distribution: Vec<String>,
    /// `stake`: decide by stake, approved only by more than two thirds of
    /// the whole electorate's stake (PROTOCOL.md §20); `hierarchy`: a
    /// worker's proposal that the supervisors evaluate and the executive
    /// decides (§21; the executive decides with `synod review`, workers
    /// object with `synod respond ID challenge`); default a vote.
    #[arg(long, value_parser = ["vote", "stake", "hierarchy"])]
    method: Option<String>,
    /// A low-stakes proposal decided by a committee of K members drawn by
    /// stake (where the space's min_committee allows it).
    #[arg(long, value_name = "K")]
    committee: Option<u32>,
    /// Sealed responses (commit, then reveal): how long the commit phase
    /// lasts, e.g. 5m; it must end before the deadline.
    #[arg(long, value_name = "DURATION")]
    sealed: Option<String>,
    /// Ask an open question instead: responses are free answers, clustered
    /// (PROTOCOL.md §19).
    #[arg(long, conflicts_with_all = ["options", "distribution", "method"])]
    open: bool,
    /// With --open: numbers within this distance are the same answer.
    #[arg(long, requires = "open", value_name = "DECIMAL")]
    tolerance: Option<String>,
}

#[derive(Args)]
pub struct RespondArgs {
    /// The proposal id.
    id: String,
    /// endorse, challenge or abstain (not with --distribution or --answer).
    #[arg(required_unless_present_any = ["distribution", "answer"])]
    stance: Option<String>,
    /// Your probability that your stance is right, in [0, 1].
    #[arg(required_unless_present_any = ["distribution", "answer"])]
    confidence: Option<String>,
    /// An open question's answer (free text), with --sure.
    #[arg(long, conflicts_with_all = ["stance", "distribution"], requires = "sure")]
    answer: Option<String>,
    /// With --answer: your probability that the answer is right, in [0, 1].
    #[arg(long, value_name = "P", requires = "answer")]
    sure: Option<String>,
    /// A belief proposal's answer: your distribution over its options,
    /// `OPTION=PROBABILITY`, comma separated; the probabilities sum to 1.
    #[arg(long, value_delimiter = ',', value_name = "OPTION=P", conflicts_with_all = ["stance", "confidence"])]
    distribution: Vec<String>,
    /// Why; kept in the audit log.
    #[arg(long, default_value = "")]
    reasoning: String,
    /// A sealed proposal's commit phase: send only a commitment to this
    /// answer and print the salt that reveals it later.
    #[arg(long)]
    commit: bool,
    /// A sealed proposal's reveal: the salt printed by --commit (with the
    /// same answer and reasoning); with --commit, the salt to commit with.
    #[arg(long, value_name = "HEX")]
    salt: Option<String>,
}

/// `OPTION=PROBABILITY` items as a distribution object; the node checks
/// the labels and the sum.
fn distribution(items: &[String]) -> Result<Value> {
    let mut out = serde_json::Map::new();
    for (option, p) in pairs(items, "distribution entry")? {
        if out.insert(option.clone(), json!(p)).is_some() {
            return Err(anyhow!("--distribution gives {option:?} twice"));
        }
    }
    Ok(Value::Object(out))
}

#[derive(Subcommand)]
pub enum ReviewerCommand {
    /// Admit a human reviewer and print the token they sign in with.
    Add {
        /// The reviewer's name.
        name: String,
        /// The space's admin key.
        #[arg(long, env = "SYNOD_ADMIN_KEY", default_value = "synod-data/admin.key")]
        admin_key: PathBuf,
    },
}

#[derive(Subcommand)]
pub enum LogCommand {
    /// Write the audit export (JSON lines) to stdout or a file.
    Export {
        /// First entry.
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// Write here instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
pub enum AdminCommand {
    /// Grant an agent authorities and roles (replacing earlier grants).
    Grant {
        /// The agent's did.
        did: String,
        /// `PATTERN=VALUE` (repeatable).
        #[arg(long = "authority", value_name = "PATTERN=VALUE")]
        authorities: Vec<String>,
        /// agent, reviewer, oracle or admin (repeatable).
        #[arg(long = "role")]
        roles: Vec<String>,
        /// The agent's stake in whole units, counted where the space's
        /// `stake` is `granted` (PROTOCOL.md §20.1); none means 0.
        #[arg(long)]
        stake: Option<u64>,
        /// The space's admin key.
        #[arg(long, env = "SYNOD_ADMIN_KEY", default_value = "synod-data/admin.key")]
        admin_key: PathBuf,
    },
    /// Set configuration fields, `FIELD=VALUE` (mode=open, trust_prior=0.5, …).
    Set {
        /// `FIELD=VALUE` pairs.
        #[arg(required = true)]
        fields: Vec<String>,
        /// The space's admin key.
        #[arg(long, env = "SYNOD_ADMIN_KEY", default_value = "synod-data/admin.key")]
        admin_key: PathBuf,
    },
    /// Show the space's configuration.
    Show,
}

fn pairs(items: &[String], what: &str) -> Result<BTreeMap<String, String>> {
    items
        .iter()
        .map(|item| {
            item.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .ok_or_else(|| anyhow!("{what} {item:?} is not KEY=VALUE"))
        })
        .collect()
}

fn print_json(value: &Value) -> Result<ExitCode> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(ExitCode::SUCCESS)
}

/// `90s`, `10m`, `2h`, `1d` in milliseconds.
pub fn duration_ms(text: &str) -> Result<u64> {
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = number
        .parse()
        .with_context(|| format!("{text:?} is not a duration like 90s, 10m, 2h, 1d"))?;
    let scale = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => bail!("{text:?} is not a duration like 90s, 10m, 2h, 1d"),
    };
    n.checked_mul(scale)
        .with_context(|| format!("{text:?} is too long a duration"))
}

pub fn agent(command: AgentCommand, conn: &Conn) -> Result<ExitCode> {
    let client = conn.client();
    match command {
        AgentCommand::Register {
            name,
            vendor,
            model,
            authorities,
            roles,
        } => {
            let key = conn.keypair()?;
            let seq = match client.get(&format!("/v1/agents/{}", key.id())) {
                Ok(agent) => agent["seq"].as_u64().unwrap_or(0) + 1,
                Err(e)
                    if e.downcast_ref::<crate::client::ApiError>()
                        .is_some_and(|a| a.status == 404) =>
                {
                    1
                }
                Err(e) => return Err(e),
            };
            let mut body = json!({"seq": seq, "name": name, "authorities": pairs(&authorities, "authority")?, "roles": roles});
            if let Some(v) = vendor {
                body["vendor"] = json!(v);
            }
            if let Some(m) = model {
                body["model"] = json!(m);
            }
            let answer = client.send("/v1/agents", MessageType::Registration, body, &key)?;
            if conn.json {
                return print_json(&answer);
            }
            println!(
                "registered {} (seq {seq}) at log index {}",
                key.id(),
                answer["index"]
            );
            Ok(ExitCode::SUCCESS)
        }
        AgentCommand::List => {
            let answer = client.get("/v1/agents?limit=500")?;
            if conn.json {
                return print_json(&answer);
            }
            let rows: Vec<Vec<String>> = answer["agents"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|a| {
                    vec![
                        a["name"].as_str().unwrap_or("").to_string(),
                        a["vendor"].as_str().unwrap_or("").to_string(),
                        a["id"].as_str().unwrap_or("").to_string(),
                        roles_text(&a["roles"]),
                        authorities_text(&a["granted_authorities"], &a["declared_authorities"]),
                    ]
                })
                .collect();
            table::print(&["NAME", "VENDOR", "ID", "ROLES", "AUTHORITY"], &rows);
            Ok(ExitCode::SUCCESS)
        }
        AgentCommand::Token => {
            let mut secret = [0u8; 32];
            getrandom::fill(&mut secret).map_err(|e| anyhow!("no randomness available: {e}"))?;
            let token = format!("synod_at_{}", synod_core::wire::hex_encode(&secret));
            let did = synod_mcp::token_keypair(&token)
                .context("a fresh token is well formed")?
                .id()
                .to_string();
            if conn.json {
                return print_json(&json!({"token": token, "did": did}));
            }
            println!("{token}");
            eprintln!(
                "agent {did}: send `Authorization: Bearer <token>` to {}/mcp; keep the token secret, it is the agent's key",
                conn.node
            );
            Ok(ExitCode::SUCCESS)
        }
        AgentCommand::Show { did } => {
            let did = match did {
                Some(d) => d,
                None => conn.keypair()?.id().to_string(),
            };
            let a = client.get(&format!("/v1/agents/{did}"))?;
            if conn.json {
                return print_json(&a);
            }
            println!(
                "{}  ({})",
                table::clean(a["name"].as_str().unwrap_or("")),
                did
            );
            println!("  roles       {}", roles_text(&a["roles"]));
            println!(
                "  authority   {}",
                authorities_text(&a["granted_authorities"], &a["declared_authorities"])
            );
            println!(
                "  responses   {}   scored outcomes {}",
                a["responses"], a["outcomes"]
            );
            println!("  trust prior {}", a["trust_prior"].as_str().unwrap_or(""));
            let rows: Vec<Vec<String>> = a["trust"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(d, t)| vec![d.clone(), t.as_str().unwrap_or("").to_string()])
                .collect();
            if !rows.is_empty() {
                table::print(&["DOMAIN", "TRUST"], &rows);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn roles_text(roles: &Value) -> String {
    roles
        .as_array()
        .map(|r| {
            r.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

fn authorities_text(granted: &Value, declared: &Value) -> String {
    let source = if granted.as_object().is_some_and(|o| !o.is_empty()) {
        granted
    } else {
        declared
    };
    source
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(p, a)| format!("{p}={}", a.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

pub fn propose(args: ProposeArgs, conn: &Conn) -> Result<ExitCode> {
    let client = conn.client();
    let key = conn.keypair()?;
    let (_, now) = client.space()?;
    let deadline = now
        .checked_add(duration_ms(&args.deadline)?)
        .context("the deadline is too far away")?;
    let payload: Value = match &args.payload {
        Some(text) => serde_json::from_str(text).context("--payload is not JSON")?,
        None => Value::Null,
    };
    let mut action = json!({"kind": args.kind, "summary": args.summary});
    if !payload.is_null() {
        action["payload"] = payload;
    }
    let belief = !args.options.is_empty() || args.open;
    let confidence = match (&args.confidence, belief) {
        (Some(c), _) => c.clone(),
        (None, true) => "1".to_string(),
        (None, false) => {
            return Err(anyhow!(
                "--confidence is required (or --options, to ask a question)"
            ));
        }
    };
    let mut body = json!({"domain": args.domain, "action": action, "confidence": confidence,
                          "stakes": args.stakes, "deadline": deadline});
    if args.open {
        body["method"] = json!("open");
        if let Some(t) = &args.tolerance {
            body["open"] = json!({"tolerance": t});
        }
    } else if belief {
        body["method"] = json!("belief");
        body["options"] = json!(args.options);
        if !args.distribution.is_empty() {
            body["distribution"] = distribution(&args.distribution)?;
        }
    } else if !args.distribution.is_empty() {
        return Err(anyhow!("--distribution needs --options"));
    }
    match (&args.method, belief) {
        (Some(_), true) => return Err(anyhow!("--options asks a question; leave out --method")),
        (Some(method), false) => body["method"] = json!(method),
        (None, _) => {}
    }
    if let Some(k) = args.committee {
        body["committee"] = json!(k);
    }
    if let Some(s) = args.supersedes {
        body["supersedes"] = json!(s);
    }
    if let Some(window) = &args.sealed {
        let commit_deadline = now
            .checked_add(duration_ms(window)?)
            .context("the commit deadline is too far away")?;
        body["sealed"] = json!({"commit_deadline": commit_deadline});
    }
    if !args.policy.is_empty() {
        let mut policy = serde_json::Map::new();
        for (field, value) in pairs(&args.policy, "policy")? {
            let v = match value.as_str() {
                "true" => json!(true),
                "false" => json!(false),
                _ if field == "reviewers_required" => json!(
                    value
                        .parse::<u32>()
                        .context("reviewers_required is a count")?
                ),
                _ => json!(value),
            };
            policy.insert(field, v);
        }
        body["policy"] = Value::Object(policy);
    }
    let answer = client.send("/v1/proposals", MessageType::Proposal, body, &key)?;
    if conn.json {
        return print_json(&answer);
    }
    println!("{}", answer["id"].as_str().unwrap_or(""));
    eprintln!(
        "proposed at log index {}; status {}",
        answer["index"],
        answer["status"].as_str().unwrap_or("?")
    );
    Ok(ExitCode::SUCCESS)
}

pub fn respond(args: RespondArgs, conn: &Conn) -> Result<ExitCode> {
    let client = conn.client();
    let key = conn.keypair()?;
    let mut body = if let Some(a) = &args.answer {
        json!({"proposal": args.id, "answer": a, "confidence": args.sure, "reasoning": args.reasoning})
    } else if args.distribution.is_empty() {
        json!({"proposal": args.id, "stance": args.stance, "confidence": args.confidence, "reasoning": args.reasoning})
    } else {
        json!({"proposal": args.id, "distribution": distribution(&args.distribution)?, "reasoning": args.reasoning})
    };
    if args.commit {
        return commit(&args, body, conn);
    }
    if let Some(salt) = &args.salt {
        body["salt"] = json!(salt);
    }
    let answer = client.send(
        &format!("/v1/proposals/{}/responses", args.id),
        MessageType::Response,
        body,
        &key,
    )?;
    if conn.json {
        return print_json(&answer);
    }
    let t = &answer["tally"];
    if !args.distribution.is_empty() || args.answer.is_some() {
        println!(
            "counted at log index {}; proposal {} (V {} P {})",
            answer["index"],
            answer["status"].as_str().unwrap_or("?"),
            t["voted"].as_str().unwrap_or(""),
            t["potential"].as_str().unwrap_or("")
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "counted at log index {}; proposal {} (E {} C {} V {} P {})",
        answer["index"],
        answer["status"].as_str().unwrap_or("?"),
        t["endorse"].as_str().unwrap_or(""),
        t["challenge"].as_str().unwrap_or(""),
        t["voted"].as_str().unwrap_or(""),
        t["potential"].as_str().unwrap_or("")
    );
    Ok(ExitCode::SUCCESS)
}

/// The commit phase of a sealed proposal (PROTOCOL.md §18): commits to
/// `answer` (the body the reveal will send, without its salt) with a fresh
/// 16-byte salt, or the one given, and prints how to reveal.
fn commit(args: &RespondArgs, answer: Value, conn: &Conn) -> Result<ExitCode> {
    let key = conn.keypair()?;
    let proposal = synod_core::Digest::from_hex(&args.id)
        .ok_or_else(|| anyhow!("a proposal id is 64 lowercase hex characters"))?;
    let salt = match &args.salt {
        Some(hex) => hex.clone(),
        None => {
            let mut bytes = [0u8; synod_core::sealed::MIN_SALT_BYTES];
            getrandom::fill(&mut bytes).map_err(|e| anyhow!("no randomness available: {e}"))?;
            synod_core::wire::hex_encode(&bytes)
        }
    };
    let salt_bytes =
        synod_core::sealed::decode_salt(&salt).map_err(|r| anyhow!("--salt: {}", r.message))?;
    let commitment = synod_core::sealed::commitment(
        &proposal,
        key.id(),
        &salt_bytes,
        &synod_core::sealed::answer_of(&answer),
    );
    let sent = conn.client().send(
        &format!("/v1/proposals/{}/responses", args.id),
        MessageType::Response,
        json!({"proposal": args.id, "commitment": commitment}),
        &key,
    )?;
    if conn.json {
        return print_json(
            &json!({"index": sent["index"], "commitment": commitment, "salt": salt}),
        );
    }
    println!("{salt}");
    eprintln!(
        "committed at log index {}; keep the salt, and after the commit deadline reveal with the same answer and --salt {salt}",
        sent["index"]
    );
    Ok(ExitCode::SUCCESS)
}

pub fn status(id: &str, conn: &Conn) -> Result<ExitCode> {
    let p = conn.client().get(&format!("/v1/proposals/{id}"))?;
    if conn.json {
        return print_json(&p);
    }
    print!("{}", describe_proposal(&p));
    Ok(ExitCode::SUCCESS)
}

/// A proposal as text: what, status, tally, responses.
pub fn describe_proposal(p: &Value) -> String {
    // Text from the node is cleaned before it reaches the terminal.
    let s = |v: &Value| table::clean(v.as_str().unwrap_or(""));
    let mut out = String::new();
    out.push_str(&format!("{}\n", s(&p["summary"])));
    out.push_str(&format!("  id        {}\n", s(&p["id"])));
    out.push_str(&format!(
        "  action    {} in {} ({} stakes)\n",
        s(&p["kind"]),
        s(&p["domain"]),
        s(&p["stakes"])
    ));
    let mut status = s(&p["status"]);
    if let Some(reason) = p["reason"].as_str() {
        status.push_str(&format!(" ({reason})"));
    }
    if let Some(cause) = p["closure"]["cause"].as_str() {
        status.push_str(&format!(", closed: {cause}"));
    }
    if let Some(choice) = p["choice"].as_str() {
        status.push_str(&format!(", adopted {}", table::clean(choice)));
    }
    if let Some(leaning) = p["leaning"]["verdict"]
        .as_str()
        .or_else(|| p["leaning"]["verdict"]["escalated"].as_str())
    {
        status.push_str(&format!(", leaning {leaning} (tentative)"));
    }
    out.push_str(&format!("  status    {status}\n"));
    if p["sealed"].is_object() {
        let sealed = &p["sealed"];
        let count = |k: &str| sealed[k].as_array().map_or(0, Vec::len);
        out.push_str(&format!(
            "  sealed    {} phase (commit deadline {}); {} committed, {} not revealed\n",
            s(&sealed["phase"]),
            sealed["commit_deadline"],
            count("committed"),
            count("unrevealed")
        ));
    }
    let t = &p["tally"];
    // A distribution as `a 0.7 · b 0.3`, in the order of the options.
    let shares = |d: &Value| -> String {
        p["options"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|o| o.as_str())
            .map(|o| format!("{} {}", table::clean(o), s(&d[o])))
            .collect::<Vec<_>>()
            .join(" · ")
    };
    if p["method"] == "open" {
        let clusters: Vec<String> = p["clusters"]["clusters"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| format!("{} ({})", s(&c["answer"]), s(&c["weight"])))
            .collect();
        out.push_str(&format!(
            "  clusters  {} (leader {} at {}; V {}  P {})\n",
            clusters.join(" · "),
            p["clusters"]["leader"]
                .as_str()
                .map_or("none".into(), table::clean),
            s(&p["clusters"]["agreement"]),
            s(&t["voted"]),
            s(&t["potential"])
        ));
    } else if p["method"] == "belief" {
        out.push_str(&format!(
            "  pool      {} (leader {}; V {}  P {})\n",
            shares(&p["pool"]["pooled"]),
            p["pool"]["leader"]
                .as_str()
                .map_or("none".into(), table::clean),
            s(&t["voted"]),
            s(&t["potential"])
        ));
    } else {
        out.push_str(&format!(
            "  tally     E {}  C {}  V {}  P {}\n",
            s(&t["endorse"]),
            s(&t["challenge"]),
            s(&t["voted"]),
            s(&t["potential"])
        ));
    }
    let rows: Vec<Vec<String>> = p["responses"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| match r.get("distribution") {
            _ if r.get("answer").is_some() => vec![
                s(&r["name"]),
                format!("{} at {}", s(&r["answer"]), s(&r["confidence"])),
                s(&r["reasoning"]),
            ],
            Some(d) => vec![s(&r["name"]), shares(d), s(&r["reasoning"])],
            None if p["method"] == "belief" => {
                vec![s(&r["name"]), s(&r["stance"]), s(&r["reasoning"])]
            }
            None => vec![
                s(&r["name"]),
                s(&r["stance"]),
                s(&r["confidence"]),
                s(&r["reasoning"]),
            ],
        })
        .collect();
    if !rows.is_empty() {
        let header: &[&str] = if p["method"] == "belief" {
            &["AGENT", "DISTRIBUTION", "REASONING"]
        } else {
            &["AGENT", "STANCE", "CONFIDENCE", "REASONING"]
        };
        out.push_str(&table::render(header, &rows));
    }
    out
}

pub fn proposals(status: Option<String>, domain: Option<String>, conn: &Conn) -> Result<ExitCode> {
    let mut query = vec!["limit=500".to_string()];
    if let Some(s) = status {
        query.push(format!("status={s}"));
    }
    if let Some(d) = domain {
        query.push(format!("domain={d}"));
    }
    let answer = conn
        .client()
        .get(&format!("/v1/proposals?{}", query.join("&")))?;
    if conn.json {
        return print_json(&answer);
    }
    let rows: Vec<Vec<String>> = answer["proposals"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            vec![
                table::short(p["id"].as_str().unwrap_or("")),
                p["status"].as_str().unwrap_or("").to_string(),
                p["domain"].as_str().unwrap_or("").to_string(),
                p["summary"].as_str().unwrap_or("").to_string(),
            ]
        })
        .collect();
    table::print(&["ID", "STATUS", "DOMAIN", "SUMMARY"], &rows);
    Ok(ExitCode::SUCCESS)
}

fn cursor_path(space: &str) -> Result<PathBuf> {
    let keys = keys::key_dir()?;
    let dir = keys
        .parent()
        .map(|p| p.join("watch"))
        .unwrap_or_else(|| PathBuf::from("watch"));
    Ok(dir.join(format!("{space}.cursor")))
}

/// One event as a line for people.
pub fn describe_event(name: &str, data: &Value) -> String {
    let s = |v: &Value| v.as_str().unwrap_or("").to_string();
    let short = |v: &Value| table::short(v.as_str().unwrap_or(""));
    match name {
        "proposal_opened" => format!(
            "opened     {} in {} ({} in the electorate)",
            short(&data["proposal"]),
            s(&data["domain"]),
            data["electorate"]
        ),
        "response_counted" => {
            let leaning = data["leaning"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| {
                    format!(
                        "escalated: {}",
                        data["leaning"]["escalated"].as_str().unwrap_or("?")
                    )
                });
            if let Some(c) = data.get("clusters") {
                let lead = c["leader"].as_str().map_or("none".to_string(), |l| {
                    format!("{} at {}", table::clean(l), s(&c["agreement"]))
                });
                return format!(
                    "response   {} {} answer: leading {lead}, leaning {leaning} (tentative)",
                    short(&data["proposal"]),
                    short(&data["agent"]),
                );
            }
            if let Some(pool) = data.get("pool") {
                let lead = pool["leader"].as_str().map_or("none".to_string(), |l| {
                    format!("{} at {}", table::clean(l), s(&pool["pooled"][l]))
                });
                return format!(
                    "response   {} {} {}: pool leader {lead}, leaning {leaning} (tentative)",
                    short(&data["proposal"]),
                    short(&data["agent"]),
                    data["stance"].as_str().unwrap_or("distribution"),
                );
            }
            format!(
                "response   {} {} {}: E {} C {}, leaning {leaning} (tentative)",
                short(&data["proposal"]),
                short(&data["agent"]),
                s(&data["stance"]),
                s(&data["tally"]["endorse"]),
                s(&data["tally"]["challenge"])
            )
        }
        "proposal_closed" => {
            let reason = data["reason"]
                .as_str()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default();
            let choice = data["choice"]
                .as_str()
                .map(|c| format!(": adopted {}", table::clean(c)))
                .unwrap_or_default();
            format!(
                "DECIDED    {} {}{reason}{choice} [{}] (final)",
                short(&data["proposal"]),
                s(&data["status"]),
                s(&data["cause"])
            )
        }
        "human_decided" => format!(
            "reviewer   {} {} by {}",
            short(&data["proposal"]),
            s(&data["decision"]),
            short(&data["reviewer"])
        ),
        "human_resolved" => format!(
            "DECIDED    {} {}{} (final)",
            short(&data["proposal"]),
            s(&data["status"]),
            data["option"]
                .as_str()
                .map(|o| format!(": adopted {}", table::clean(o)))
                .unwrap_or_default()
        ),
        "outcome_recorded" => match data["option"].as_str() {
            Some(option) => format!(
                "outcome    {} right option {}",
                short(&data["proposal"]),
                table::clean(option)
            ),
            None => format!(
                "outcome    {} score {}",
                short(&data["proposal"]),
                s(&data["score"])
            ),
        },
        "trust_updated" => format!(
            "trust      {} in {}: {} -> {}",
            short(&data["agent"]),
            s(&data["domain"]),
            s(&data["before"]),
            s(&data["after"])
        ),
        "space_created" => format!(
            "space      {} created by {}",
            s(&data["space"]),
            short(&data["admin"])
        ),
        "granted" => format!(
            "grant      {} admitted or re-granted by an admin",
            short(&data["agent"])
        ),
        "config_changed" => format!("config     configuration changed (seq {})", data["seq"]),
        "committed" => format!(
            "committed  {} {} (sealed: the answer stays hidden until the commit deadline)",
            short(&data["proposal"]),
            short(&data["agent"])
        ),
        "reveal_opened" => format!(
            "reveal     {}: the commit phase is over, {} committed",
            short(&data["proposal"]),
            data["committed"]
        ),
        "agent_registered" => format!(
            "agent      {} registered (seq {})",
            short(&data["agent"]),
            data["seq"]
        ),
        "proposal_superseded" => format!(
            "superseded {} by {}",
            short(&data["proposal"]),
            short(&data["by"])
        ),
        other => format!("{other:<10} {data}"),
    }
}

pub fn watch(from: Option<u64>, count: Option<u64>, conn: &Conn) -> Result<ExitCode> {
    let client = conn.client();
    let (space, _) = client.space()?;
    let cursor = cursor_path(&space)?;
    let saved = std::fs::read_to_string(&cursor)
        .ok()
        .map(|s| s.trim().to_string());
    let (path, last_id) = match from {
        Some(index) => (format!("/v1/events?from={index}"), None),
        None => ("/v1/events?from=0".to_string(), saved),
    };
    if let Some(dir) = cursor.parent() {
        std::fs::create_dir_all(dir).ok();
    }
    let mut seen = 0u64;
    let stdout = std::io::stdout();
    client.events(&path, last_id.as_deref(), |id, name, data| {
        let mut out = stdout.lock();
        if conn.json {
            writeln!(out, "{}", json!({"id": id, "event": name, "data": data}))?;
        } else {
            writeln!(
                out,
                "{id:>8}  {}",
                table::clean(&describe_event(name, data))
            )?;
        }
        out.flush()?;
        std::fs::write(&cursor, id).ok();
        seen += 1;
        Ok(count.is_none_or(|c| seen < c))
    })?;
    Ok(ExitCode::SUCCESS)
}

pub fn outcome(
    id: &str,
    result: Option<&str>,
    option: Option<&str>,
    right: Option<&str>,
    conn: &Conn,
) -> Result<ExitCode> {
    let client = conn.client();
    let key = conn.keypair()?;
    let mut body = json!({"proposal": id});
    match (result, option) {
        _ if right.is_some() => body["answer"] = json!(right),
        (None, Some(option)) => body["option"] = json!(option),
        (Some(r @ ("success" | "failure")), None) => body["result"] = json!(r),
        (Some(score), None) => body["score"] = json!(score),
        _ => return Err(anyhow!("give a result, or --option for a belief proposal")),
    }
    let answer = client.send(
        &format!("/v1/proposals/{id}/outcome"),
        MessageType::Outcome,
        body,
        &key,
    )?;
    if conn.json {
        return print_json(&answer);
    }
    println!("outcome recorded at log index {}", answer["index"]);
    for effect in answer["effects"].as_array().into_iter().flatten() {
        if effect["type"] == "trust_updated" {
            println!("  {}", describe_event("trust_updated", effect));
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn escalations(conn: &Conn) -> Result<ExitCode> {
    let answer = conn.client().get("/v1/escalations")?;
    if conn.json {
        return print_json(&answer);
    }
    let rows: Vec<Vec<String>> = answer["escalations"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            vec![
                p["id"].as_str().unwrap_or("").to_string(),
                p["reason"].as_str().unwrap_or("").to_string(),
                p["domain"].as_str().unwrap_or("").to_string(),
                p["summary"].as_str().unwrap_or("").to_string(),
            ]
        })
        .collect();
    table::print(&["ID", "REASON", "DOMAIN", "SUMMARY"], &rows);
    Ok(ExitCode::SUCCESS)
}

pub fn review(
    id: &str,
    decision: &str,
    option: Option<&str>,
    right: Option<&str>,
    note: &str,
    token: Option<&str>,
    conn: &Conn,
) -> Result<ExitCode> {
    let client = conn.client();
    let path = format!("/v1/escalations/{id}/decisions");
    let mut body = json!({"decision": decision, "note": note});
    if let Some(option) = option {
        body["option"] = json!(option);
    }
    if let Some(answer) = right {
        body["answer"] = json!(answer);
    }
    let answer = match token {
        Some(token) => client.post(&path, &body, Some(token))?,
        None => {
            let key = conn.keypair()?;
            body["proposal"] = json!(id);
            client.send(&path, MessageType::Decision, body, &key)?
        }
    };
    if conn.json {
        return print_json(&answer);
    }
    println!(
        "decision recorded at log index {}; proposal {}",
        answer["index"],
        answer["status"].as_str().unwrap_or("?")
    );
    Ok(ExitCode::SUCCESS)
}

/// Admits a reviewer: the admin grants the role to the key the new token
/// stands for, and that key registers. Returns (token, did).
pub fn add_reviewer(
    client: &Client,
    admin: &synod_core::Keypair,
    name: &str,
) -> Result<(String, String)> {
    let token = keys::new_reviewer_token()?;
    let reviewer = keys::reviewer_key(&token)?;
    grant(
        client,
        admin,
        reviewer.id().as_str(),
        BTreeMap::new(),
        vec!["reviewer".into()],
    )?;
    client.send(
        "/v1/agents",
        MessageType::Registration,
        json!({"seq": 1, "name": name, "roles": ["reviewer"]}),
        &reviewer,
    )?;
    Ok((token, reviewer.id().to_string()))
}

/// Sends an admin configuration change with the next sequence number.
pub fn configure(client: &Client, admin: &synod_core::Keypair, change: Value) -> Result<Value> {
    let mut last = None;
    for _ in 0..3 {
        let seq = client.get("/v1/space")?["config_seq"].as_u64().unwrap_or(0) + 1;
        match client.send(
            "/v1/config",
            MessageType::Configuration,
            json!({"seq": seq, "change": change}),
            admin,
        ) {
            Ok(answer) => return Ok(answer),
            // Another admin took this sequence number first: try the next.
            Err(e)
                if e.downcast_ref::<crate::client::ApiError>()
                    .is_some_and(|a| a.kind == "duplicate") =>
            {
                last = Some(e)
            }
            Err(e) => return Err(e),
        }
    }
    Err(last.expect("three attempts"))
}

pub fn grant(
    client: &Client,
    admin: &synod_core::Keypair,
    did: &str,
    authorities: BTreeMap<String, String>,
    roles: Vec<String>,
) -> Result<Value> {
    configure(
        client,
        admin,
        json!({"grant": {"agent": did, "authorities": authorities, "roles": roles}}),
    )
}

fn admin_key(path: &std::path::Path) -> Result<synod_core::Keypair> {
    keys::read(path).map_err(|e| {
        anyhow!("{e} (the admin key is in the node's data directory; pass --admin-key)")
    })
}

pub fn reviewer(command: ReviewerCommand, conn: &Conn) -> Result<ExitCode> {
    match command {
        ReviewerCommand::Add {
            name,
            admin_key: path,
        } => {
            let admin = admin_key(&path)?;
            let (token, did) = add_reviewer(&conn.client(), &admin, &name)?;
            if conn.json {
                return print_json(&json!({"name": name, "did": did, "token": token}));
            }
            println!("{token}");
            eprintln!(
                "reviewer {name} ({did}) admitted; sign in to the inbox at {}/ with the token above",
                conn.node
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub fn log(command: LogCommand, conn: &Conn) -> Result<ExitCode> {
    match command {
        LogCommand::Export { from, out } => {
            let path = format!("/v1/log?from={from}");
            match out {
                Some(file) => {
                    let mut writer = std::io::BufWriter::new(
                        std::fs::File::create(&file)
                            .with_context(|| format!("writing {}", file.display()))?,
                    );
                    let bytes = conn.client().download(&path, &mut writer)?;
                    writer.flush()?;
                    eprintln!("{bytes} bytes of log written to {}", file.display());
                }
                None => {
                    let stdout = std::io::stdout();
                    let mut lock = stdout.lock();
                    conn.client().download(&path, &mut lock)?;
                    lock.flush()?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub fn admin(command: AdminCommand, conn: &Conn) -> Result<ExitCode> {
    let client = conn.client();
    match command {
        AdminCommand::Grant {
            did,
            authorities,
            roles,
            stake,
            admin_key: path,
        } => {
            let admin = admin_key(&path)?;
            let mut change = json!({"grant": {"agent": did, "authorities": pairs(&authorities, "authority")?, "roles": roles}});
            if let Some(stake) = stake {
                change["grant"]["stake"] = json!(stake);
            }
            let answer = configure(&client, &admin, change)?;
            if conn.json {
                return print_json(&answer);
            }
            println!("granted at log index {}", answer["index"]);
            Ok(ExitCode::SUCCESS)
        }
        AdminCommand::Set {
            fields,
            admin_key: path,
        } => {
            let admin = admin_key(&path)?;
            let mut patch = serde_json::Map::new();
            for (field, value) in pairs(&fields, "field")? {
                let v = match value.parse::<u64>() {
                    Ok(n)
                        if field.ends_with("_ms")
                            || field == "max_open_per_agent"
                            || field == "admission_difficulty"
                            || field == "min_committee" =>
                    {
                        json!(n)
                    }
                    _ if field == "policies" || field == "hierarchies" => {
                        serde_json::from_str(&value).with_context(|| format!("{field} is JSON"))?
                    }
                    _ => json!(value),
                };
                patch.insert(field, v);
            }
            let answer = configure(&client, &admin, json!({"set": patch}))?;
            if conn.json {
                return print_json(&answer);
            }
            println!("configuration changed at log index {}", answer["index"]);
            Ok(ExitCode::SUCCESS)
        }
        AdminCommand::Show => {
            let space = client.get("/v1/space")?;
            print_json(&space)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(duration_ms("90s").unwrap(), 90_000);
        assert_eq!(duration_ms("10m").unwrap(), 600_000);
        assert_eq!(duration_ms("2h").unwrap(), 7_200_000);
        assert_eq!(duration_ms("1d").unwrap(), 86_400_000);
        assert!(duration_ms("10").is_err());
        assert!(duration_ms("m").is_err());
        assert!(duration_ms("5w").is_err());
    }
}

#[derive(Subcommand)]
pub enum LotteryCommand {
    /// Who may propose in the current round in a domain (PROTOCOL.md
    /// §20.4), with the round's anchor, seed and candidates; the draw is
    /// redone here from them and must agree with the node's.
    Proposer {
        /// The domain, e.g. ops.deploy.
        #[arg(long)]
        domain: String,
    },
}

pub fn lottery(command: LotteryCommand, conn: &Conn) -> Result<ExitCode> {
    let client = conn.client();
    let LotteryCommand::Proposer { domain } = command;
    let answer = client.get(&format!("/v1/lottery/proposer?domain={domain}"))?;
    if answer["enabled"] != json!(true) {
        if conn.json {
            return print_json(&answer);
        }
        println!("this space does not draw proposers (proposer_round_ms is 0): anyone may propose");
        return Ok(ExitCode::SUCCESS);
    }
    // Redo the draw from what the node reports: the seed from the domain,
    // the round and the anchor; one draw over the candidates' stakes.
    let parse_digest = |v: &Value| {
        v.as_str()
            .and_then(synod_core::Digest::from_hex)
            .ok_or_else(|| anyhow!("the node sent a malformed digest"))
    };
    let anchor = parse_digest(&answer["anchor"])?;
    let round = answer["round"].as_u64().context("round")?;
    let parsed = synod_core::domain::Domain::parse(&domain).map_err(|e| anyhow!(e.0))?;
    let seed = synod_core::stake::proposer_seed(&parsed, round, &anchor);
    if seed != parse_digest(&answer["seed"])? {
        bail!("the node's seed does not follow from its round and anchor");
    }
    let candidates = answer["candidates"].as_array().cloned().unwrap_or_default();
    let mut stakes = Vec::with_capacity(candidates.len());
    for c in &candidates {
        let text = c["stake"].as_str().context("stake")?;
        stakes.push(scaled_12(text).with_context(|| format!("stake {text:?}"))?);
    }
    let drawn = synod_core::lottery::draw(&seed, &stakes, 1);
    let ours = drawn
        .first()
        .map(|&i| candidates[i]["agent"].clone())
        .unwrap_or(Value::Null);
    if ours != answer["proposer"] {
        bail!("the node's proposer is not the one its seed and stakes draw");
    }
    if conn.json {
        return print_json(&answer);
    }
    println!(
        "{}",
        answer["proposer"]
            .as_str()
            .unwrap_or("nobody (no candidate has stake)")
    );
    eprintln!(
        "round {} of {} ms in {domain} (log time {} to {}), anchor {}, {} candidates; redrawn here and confirmed",
        round,
        answer["round_ms"],
        answer["starts"],
        answer["ends"],
        answer["anchor"].as_str().unwrap_or(""),
        candidates.len()
    );
    Ok(ExitCode::SUCCESS)
}

/// An exact decimal with at most 12 places (a stake, §20.1) in 10⁻¹².
fn scaled_12(text: &str) -> Option<u128> {
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty()
        || frac.len() > 12
        || !whole
            .bytes()
            .chain(frac.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let frac: u128 = format!("{frac:0<12}").parse().ok()?;
    whole
        .parse::<u128>()
        .ok()?
        .checked_mul(1_000_000_000_000)?
        .checked_add(frac)
}
