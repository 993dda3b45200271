//! `synod demo`: an embedded node in a temporary directory, agents from
//! different vendors, and the scenarios of the problem statement played over
//! the real HTTP API.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result};
use serde_json::{Value, json};
use synod_core::Keypair;
use synod_core::wire::MessageType;
use synod_node::{Node, NodeConfig, keys};

use crate::client::Client;
use crate::commands::{add_reviewer, grant};
use crate::{serve, table};

struct DemoAgent {
    name: &'static str,
    vendor: &'static str,
    model: &'static str,
    authorities: &'static [(&'static str, &'static str)],
    roles: &'static [&'static str],
}

const AGENTS: &[DemoAgent] = &[
    DemoAgent {
        name: "Credit Risk",
        vendor: "anthropic",
        model: "claude",
        authorities: &[("credit.*", "0.9")],
        roles: &["agent"],
    },
    DemoAgent {
        name: "Compliance",
        vendor: "openai",
        model: "gpt",
        authorities: &[("credit.*", "0.8"), ("payments.*", "0.7")],
        roles: &["agent"],
    },
    DemoAgent {
        name: "Fraud Sentinel",
        vendor: "google",
        model: "gemini",
        authorities: &[("payments.*", "0.9"), ("credit.*", "0.3")],
        roles: &["agent"],
    },
    DemoAgent {
        name: "Customer Care",
        vendor: "mistral",
        model: "mistral-large",
        authorities: &[("payments.*", "0.6"), ("credit.*", "0.3")],
        roles: &["agent"],
    },
    DemoAgent {
        name: "Ledger",
        vendor: "in-house",
        model: "rules",
        authorities: &[],
        roles: &["oracle"],
    },
];

/// One response in a scenario: who, stance, confidence, why.
type Vote = (&'static str, &'static str, &'static str, &'static str);

struct Scenario {
    title: &'static str,
    proposer: &'static str,
    domain: &'static str,
    kind: &'static str,
    summary: &'static str,
    payload: fn() -> Value,
    confidence: &'static str,
    stakes: &'static str,
    votes: &'static [Vote],
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        title: "A loan decision that is approved",
        proposer: "Credit Risk",
        domain: "credit.loans",
        kind: "approve_loan",
        summary: "Approve a 25,000 EUR personal loan for applicant #4411",
        payload: || json!({"applicant": 4411, "amount_eur": 25000, "term_months": 48, "debt_to_income": "0.31"}),
        confidence: "0.85",
        stakes: "medium",
        votes: &[
            (
                "Compliance",
                "endorse",
                "0.8",
                "KYC complete; debt-to-income 0.31 is under the 0.45 cap.",
            ),
            (
                "Fraud Sentinel",
                "endorse",
                "0.7",
                "No fraud signals on the application or device.",
            ),
        ],
    },
    Scenario {
        title: "A transaction block that is rejected",
        proposer: "Fraud Sentinel",
        domain: "payments.transactions",
        kind: "block_transaction",
        summary: "Block card payment #88120 of 3,200 EUR abroad",
        payload: || json!({"transaction": 88120, "amount_eur": 3200, "country": "PT", "score": "0.62"}),
        confidence: "0.55",
        stakes: "high",
        votes: &[
            (
                "Compliance",
                "challenge",
                "0.9",
                "The customer pre-announced this trip; the merchant is verified.",
            ),
            (
                "Customer Care",
                "challenge",
                "0.95",
                "Customer confirmed the purchase by phone ten minutes ago.",
            ),
        ],
    },
    Scenario {
        title: "A contested decision that escalates to the inbox",
        proposer: "Credit Risk",
        domain: "credit.limits",
        kind: "raise_credit_limit",
        summary: "Raise the credit limit of account #5127 from 5,000 to 12,000 EUR",
        payload: || json!({"account": 5127, "from_eur": 5000, "to_eur": 12000}),
        confidence: "0.7",
        stakes: "medium",
        votes: &[
            (
                "Fraud Sentinel",
                "challenge",
                "0.8",
                "Three new devices logged in this month.",
            ),
            (
                "Compliance",
                "challenge",
                "0.7",
                "Income documents are eleven months old.",
            ),
            (
                "Customer Care",
                "endorse",
                "0.5",
                "Long-standing customer, no complaints.",
            ),
        ],
    },
];

/// The belief-consensus question (PROTOCOL.md §15): the credit agents
/// answer with distributions over three repayment plans. Customer Care rules
/// the monthly plan out (probability 0); the pool's floor keeps that from
/// vetoing it, and the pool adopts it at low stakes (0.6).
struct Question {
    title: &'static str,
    proposer: &'static str,
    domain: &'static str,
    summary: &'static str,
    stakes: &'static str,
    options: &'static [&'static str],
    /// The proposer's own distribution, then each answer: who, the
    /// distribution in the order of `options`, why.
    own: &'static [&'static str],
    answers: &'static [(&'static str, &'static [&'static str], &'static str)],
    /// The option that turned out right.
    right: &'static str,
}

const QUESTION: Question = Question {
    title: "A question answered by belief consensus",
    proposer: "Credit Risk",
    domain: "credit.collections",
    summary: "Which repayment plan should account #5127 be offered?",
    stakes: "low",
    options: &["monthly", "biweekly", "deferred"],
    own: &["0.8", "0.15", "0.05"],
    answers: &[
        (
            "Compliance",
            &["0.75", "0.2", "0.05"],
            "Monthly matches the salary cycle on file.",
        ),
        (
            "Fraud Sentinel",
            &["0.7", "0.25", "0.05"],
            "No signal either way; monthly is the lowest-risk default.",
        ),
        (
            "Customer Care",
            &["0", "0.9", "0.1"],
            "The customer asked for biweekly payments on the phone.",
        ),
    ],
    right: "monthly",
};

fn distribution_of(options: &[&str], probabilities: &[&str]) -> Value {
    let map: serde_json::Map<String, Value> = options
        .iter()
        .zip(probabilities)
        .map(|(o, p)| (o.to_string(), json!(p)))
        .collect();
    Value::Object(map)
}

/// Asks [`QUESTION`]; returns its id and the row for the decisions table.
fn ask(client: &Client, agents: &BTreeMap<&str, Keypair>) -> Result<(String, Vec<String>)> {
    let q = &QUESTION;
    println!("\n▶ {}", q.title);
    let (_, now) = client.space()?;
    let proposal = client.send(
        "/v1/proposals",
        MessageType::Proposal,
        json!({"domain": q.domain, "action": {"kind": "choose_repayment_plan", "summary": q.summary},
               "confidence": "1", "stakes": q.stakes, "deadline": now + 10 * 60_000,
               "method": "belief", "options": q.options, "distribution": distribution_of(q.options, q.own)}),
        &agents[q.proposer],
    )?;
    let id = proposal["id"].as_str().context("proposal id")?.to_string();
    let shares = |p: &[&str]| {
        q.options
            .iter()
            .zip(p)
            .map(|(o, p)| format!("{o} {p}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "  {} asks: {} ({} stakes); its own view: {}",
        q.proposer,
        q.summary,
        q.stakes,
        shares(q.own)
    );
    for (who, p, why) in q.answers {
        client.send(
            &format!("/v1/proposals/{id}/responses"),
            MessageType::Response,
            json!({"proposal": id, "distribution": distribution_of(q.options, p), "reasoning": why}),
            &agents[who],
        )?;
        println!("  {who}: {} — {why}", shares(p));
    }
    let p = client.get(&format!("/v1/proposals/{id}"))?;
    let status = p["status"].as_str().unwrap_or("?").to_string();
    let pooled = q
        .options
        .iter()
        .map(|o| format!("{o} {}", p["pool"]["pooled"][o].as_str().unwrap_or("?")))
        .collect::<Vec<_>>()
        .join(", ");
    let choice = p["choice"].as_str().unwrap_or("none").to_string();
    println!("  log pool (weighted geometric mean, a zero counts as 0.01): {pooled}");
    println!(
        "  → {status}: adopts {choice} (needs 0.6 at low stakes; Customer Care's zero did not veto it)"
    );
    let how = p["closure"]["cause"]
        .as_str()
        .unwrap_or("")
        .replace('_', " ");
    let row = vec![
        q.title.to_string(),
        format!("{status} ({choice})"),
        p["reason"].as_str().unwrap_or("").to_string(),
        "-".to_string(),
        "-".to_string(),
        how,
    ];
    Ok((id, row))
}

/// The sealed vote (PROTOCOL.md §18): the payments agents commit to their
/// answers before anyone sees one, then reveal them once the two-second
/// commit phase is over.
fn sealed_vote(client: &Client, agents: &BTreeMap<&str, Keypair>) -> Result<Vec<String>> {
    const TITLE: &str = "A sealed vote: nobody sees a stance before committing";
    const SUMMARY: &str = "Refund 480 EUR for disputed order #7731";
    let answers: [(&str, &str, &str, &str); 2] = [
        (
            "Compliance",
            "endorse",
            "0.8",
            "The merchant never shipped; the dispute is within 60 days.",
        ),
        (
            "Customer Care",
            "endorse",
            "0.9",
            "Tracking shows no delivery; the customer has no prior disputes.",
        ),
    ];
    println!("\n▶ {TITLE}");
    let (_, now) = client.space()?;
    let commit_deadline = now + 2_000;
    let proposal = client.send(
        "/v1/proposals",
        MessageType::Proposal,
        json!({"domain": "payments.disputes", "action": {"kind": "refund", "summary": SUMMARY},
               "confidence": "0.75", "stakes": "medium", "deadline": now + 10 * 60_000,
               "sealed": {"commit_deadline": commit_deadline}}),
        &agents["Fraud Sentinel"],
    )?;
    let id = proposal["id"].as_str().context("proposal id")?.to_string();
    let digest = synod_core::Digest::from_hex(&id).context("proposal id")?;
    println!(
        "  Fraud Sentinel proposes: {SUMMARY} (confidence 0.75, medium stakes, sealed for 2 s)"
    );
    let mut sealed = Vec::new();
    for (who, stance, confidence, why) in answers {
        let answer = json!({"stance": stance, "confidence": confidence, "reasoning": why});
        let mut salt = [0u8; synod_core::sealed::MIN_SALT_BYTES];
        getrandom::fill(&mut salt).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
        let key = &agents[who];
        let commitment = synod_core::sealed::commitment(&digest, key.id(), &salt, &answer);
        client.send(
            &format!("/v1/proposals/{id}/responses"),
            MessageType::Response,
            json!({"proposal": id, "commitment": commitment}),
            key,
        )?;
        println!(
            "  {who} commits {}… (its answer stays hidden)",
            &commitment.to_hex()[..12]
        );
        sealed.push((who, answer, synod_core::wire::hex_encode(&salt)));
    }
    // The node ticks at the commit deadline; wait for the reveal phase.
    let mut phase = String::new();
    for _ in 0..100 {
        let p = client.get(&format!("/v1/proposals/{id}"))?;
        phase = p["sealed"]["phase"].as_str().unwrap_or("").to_string();
        if phase == "reveal" || p["status"] != "open" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    println!("  the commit phase is over ({phase} phase): the answers are revealed");
    for (who, answer, salt) in sealed {
        let mut body = answer.clone();
        body["proposal"] = json!(id);
        body["salt"] = json!(salt);
        client.send(
            &format!("/v1/proposals/{id}/responses"),
            MessageType::Response,
            body,
            &agents[who],
        )?;
        println!(
            "  {who} reveals: {}s at {}: {}",
            answer["stance"].as_str().unwrap_or(""),
            answer["confidence"].as_str().unwrap_or(""),
            answer["reasoning"].as_str().unwrap_or("")
        );
    }
    let row = decision_row(TITLE, &client.get(&format!("/v1/proposals/{id}"))?);
    println!("  → {} ({})", row[1], row[5]);
    Ok(row)
}

/// The open question (PROTOCOL.md §19): free answers, numbers within a
/// tolerance of 500 EUR clustered; the heaviest cluster is adopted when it
/// holds 0.7 of the weight (medium stakes), and the dissent is kept.
fn open_question(client: &Client, agents: &BTreeMap<&str, Keypair>) -> Result<Vec<String>> {
    const TITLE: &str = "An open question with clustered answers";
    const SUMMARY: &str = "What credit limit (EUR) should account #5127 get?";
    let answers: [(&str, &str, &str, &str); 3] = [
        (
            "Compliance",
            "8000",
            "0.7",
            "Income supports 8,000 at our 30% exposure rule.",
        ),
        (
            "Fraud Sentinel",
            "12000",
            "0.4",
            "The requested 12,000; no fraud signal against it.",
        ),
        (
            "Customer Care",
            "8500",
            "0.6",
            "Spending averages 2,800 a month; 8,500 covers three.",
        ),
    ];
    println!("\n▶ {TITLE}");
    let (_, now) = client.space()?;
    let proposal = client.send(
        "/v1/proposals",
        MessageType::Proposal,
        json!({"domain": "credit.limits", "action": {"kind": "set_credit_limit", "summary": SUMMARY},
               "confidence": "1", "stakes": "medium", "deadline": now + 10 * 60_000,
               "method": "open", "open": {"tolerance": "500"}}),
        &agents["Credit Risk"],
    )?;
    let id = proposal["id"].as_str().context("proposal id")?.to_string();
    println!("  Credit Risk asks: {SUMMARY} (answers within 500 EUR are the same answer)");
    for (who, answer, sure, why) in answers {
        client.send(
            &format!("/v1/proposals/{id}/responses"),
            MessageType::Response,
            json!({"proposal": id, "answer": answer, "confidence": sure, "reasoning": why}),
            &agents[who],
        )?;
        println!("  {who}: {answer} (confidence {sure}) — {why}");
    }
    let p = client.get(&format!("/v1/proposals/{id}"))?;
    let status = p["status"].as_str().unwrap_or("?").to_string();
    let clusters: Vec<String> = p["clusters"]["clusters"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let members: Vec<&str> = c["answers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            format!(
                "{{{}}} weight {}",
                members.join(", "),
                c["weight"].as_str().unwrap_or("?")
            )
        })
        .collect();
    let choice = p["choice"].as_str().unwrap_or("none").to_string();
    println!("  clusters: {}", clusters.join("; "));
    println!(
        "  → {status}: adopts {choice} (agreement {}, needs 0.7; the 12000 dissent stays on record)",
        p["clusters"]["agreement"].as_str().unwrap_or("?")
    );
    let how = p["closure"]["cause"]
        .as_str()
        .unwrap_or("")
        .replace('_', " ");
    Ok(vec![
        TITLE.to_string(),
        format!("{status} ({choice})"),
        p["reason"].as_str().unwrap_or("").to_string(),
        "-".to_string(),
        "-".to_string(),
        how,
    ])
}

fn demo_dir() -> Result<PathBuf> {
    let mut suffix = [0u8; 4];
    getrandom::fill(&mut suffix).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    let dir = std::env::temp_dir().join(format!(
        "synod-demo-{}",
        synod_core::wire::hex_encode(&suffix)
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

pub fn run(listen: &str, exit: bool) -> Result<()> {
    let dir = demo_dir()?;
    let rt = serve::runtime()?;
    rt.block_on(async {
        let node = Node::open(&NodeConfig {
            data_dir: dir.join("data"),
            open: false,
            space_id: Some("demo".into()),
            allowed_hosts: Vec::new(),
            public_url: None,
        })?;
        let listener = match tokio::net::TcpListener::bind(listen).await {
            Ok(l) => l,
            // The default port is taken (another synod?): any free port will do.
            Err(_) => tokio::net::TcpListener::bind("127.0.0.1:0").await.context("binding a port")?,
        };
        let addr = listener.local_addr()?;
        let base = format!("http://{addr}");
        println!("synod demo: a node in {} serving {base}\n", dir.display());
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve::run(node.clone(), listener, async move {
            let _ = stop_rx.await;
        }));
        let admin = keys::read(&node.admin_key_path())?;
        let play_base = base.clone();
        let key_dir = dir.join("keys");
        let token = tokio::task::spawn_blocking(move || play(&play_base, &admin, &key_dir)).await??;
        println!("\nThe inbox: {base}/");
        println!("Sign in with the reviewer token:\n\n  {token}\n");
        println!("Open the escalated proposal, approve or reject it, and watch trust move with `synod agent show`.");
        if exit {
            let _ = stop_tx.send(());
        } else {
            println!("Serving until Ctrl-C.");
            serve::ctrl_c().await;
            let _ = stop_tx.send(());
        }
        server.await??;
        Ok::<(), anyhow::Error>(())
    })?;
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}

/// Plays the scenarios; returns the reviewer token.
fn play(base: &str, admin: &Keypair, key_dir: &std::path::Path) -> Result<String> {
    let client = Client::new(base);
    let mut agents: BTreeMap<&str, Keypair> = BTreeMap::new();
    for a in AGENTS {
        let key = keys::generate()?;
        keys::write(
            &key_dir.join(format!("{}.json", a.name.to_lowercase().replace(' ', "-"))),
            &key,
            true,
        )?;
        let authorities: BTreeMap<String, String> = a
            .authorities
            .iter()
            .map(|(p, v)| (p.to_string(), v.to_string()))
            .collect();
        grant(
            &client,
            admin,
            key.id().as_str(),
            authorities.clone(),
            a.roles.iter().map(|r| r.to_string()).collect(),
        )?;
        client.send(
            "/v1/agents",
            MessageType::Registration,
            json!({"seq": 1, "name": a.name, "vendor": a.vendor, "model": a.model, "authorities": authorities}),
            &key,
        )?;
        agents.insert(a.name, key);
    }
    let rows: Vec<Vec<String>> = AGENTS
        .iter()
        .map(|a| {
            vec![
                a.name.to_string(),
                a.vendor.to_string(),
                a.authorities
                    .iter()
                    .map(|(p, v)| format!("{p}={v}"))
                    .collect::<Vec<_>>()
                    .join(" "),
                a.roles.join(","),
            ]
        })
        .collect();
    println!("Agents (closed space, granted by the admin; trust starts at 0.5):");
    table::print(&["AGENT", "VENDOR", "AUTHORITY", "ROLE"], &rows);

    let (token, _) = add_reviewer(&client, admin, "Avery (risk officer)")?;
    let mut ids = Vec::new();
    let mut decisions = Vec::new();
    for s in SCENARIOS {
        println!("\n▶ {}", s.title);
        let (_, now) = client.space()?;
        let proposal = client.send(
            "/v1/proposals",
            MessageType::Proposal,
            json!({"domain": s.domain, "action": {"kind": s.kind, "summary": s.summary, "payload": (s.payload)()},
                   "confidence": s.confidence, "stakes": s.stakes, "deadline": now + 10 * 60_000}),
            &agents[s.proposer],
        )?;
        let id = proposal["id"].as_str().context("proposal id")?.to_string();
        println!(
            "  {} proposes: {} (confidence {}, {} stakes)",
            s.proposer, s.summary, s.confidence, s.stakes
        );
        for (who, stance, confidence, why) in s.votes {
            let current = client.get(&format!("/v1/proposals/{id}"))?;
            if current["status"] != "open" {
                println!("  {who} does not need to answer: the result was already final");
                continue;
            }
            client.send(
                &format!("/v1/proposals/{id}/responses"),
                MessageType::Response,
                json!({"proposal": id, "stance": stance, "confidence": confidence, "reasoning": why}),
                &agents[who],
            )?;
            println!("  {who} {stance}s at {confidence}: {why}");
        }
        let row = decision_row(s.title, &client.get(&format!("/v1/proposals/{id}"))?);
        let reason = if row[2].is_empty() {
            String::new()
        } else {
            format!(": {}", row[2])
        };
        println!("  → {}{reason} ({})", row[1], row[5]);
        decisions.push(row);
        ids.push(id);
    }
    let (question, row) = ask(&client, &agents)?;
    decisions.push(row);
    decisions.push(crate::demo_stake::play(&client, &agents)?);
    decisions.push(crate::demo_hierarchy::play(&client, admin, &agents)?);
    decisions.push(sealed_vote(&client, &agents)?);
    decisions.push(open_question(&client, &agents)?);
    decisions.push(crate::demo_admission::play(&client, admin, &agents)?);
    println!("\nDecisions:");
    table::print(
        &["SCENARIO", "STATUS", "REASON", "E", "C", "CLOSED"],
        &decisions,
    );

    // Outcomes arrive: the loan was repaid on schedule; the blocked payment
    // was legitimate, so blocking it would have been wrong.
    println!("\n▶ Outcomes move trust");
    let before: BTreeMap<String, Value> = trust_by_agent(&client, &agents)?;
    client.send(
        &format!("/v1/proposals/{}/outcome", ids[0]),
        MessageType::Outcome,
        json!({"proposal": ids[0], "result": "success"}),
        &agents["Ledger"],
    )?;
    println!("  Ledger: the loan is being repaid on schedule (success)");
    client.send(
        &format!("/v1/proposals/{}/outcome", ids[1]),
        MessageType::Outcome,
        json!({"proposal": ids[1], "result": "failure"}),
        &agents["Ledger"],
    )?;
    println!(
        "  Ledger: the payment was the customer's own; blocking it would have failed (failure)"
    );
    client.send(
        &format!("/v1/proposals/{question}/outcome"),
        MessageType::Outcome,
        json!({"proposal": question, "option": QUESTION.right}),
        &agents["Ledger"],
    )?;
    println!(
        "  Ledger: the customer is paying monthly without arrears (the right option: {})",
        QUESTION.right
    );
    let after = trust_by_agent(&client, &agents)?;
    let mut rows = Vec::new();
    for (name, trust) in &after {
        for (domain, value) in trust.as_object().into_iter().flatten() {
            let old = before
                .get(name)
                .and_then(|t| t[domain].as_str())
                .unwrap_or("0.5");
            rows.push(vec![
                name.clone(),
                domain.clone(),
                old.to_string(),
                value.as_str().unwrap_or("").to_string(),
            ]);
        }
    }
    println!("\nTrust after outcomes (confident and right gains, confident and wrong loses):");
    table::print(&["AGENT", "DOMAIN", "BEFORE", "AFTER"], &rows);
    Ok(token)
}

/// A proposal's row of the demo's decisions table: title, status, reason,
/// endorsed and challenged weight, and how it closed.
pub(crate) fn decision_row(title: &str, p: &Value) -> Vec<String> {
    let text = |v: &Value| v.as_str().unwrap_or("").to_string();
    vec![
        title.to_string(),
        p["status"].as_str().unwrap_or("?").to_string(),
        text(&p["reason"]),
        text(&p["tally"]["endorse"]),
        text(&p["tally"]["challenge"]),
        text(&p["closure"]["cause"]).replace('_', " "),
    ]
}

/// Polls proposal `id` until it is no longer open (a deadline closing
/// through the log), for at most ten seconds; returns its last view.
pub(crate) fn await_close(client: &Client, id: &str) -> Result<Value> {
    let started = std::time::Instant::now();
    loop {
        let p = client.get(&format!("/v1/proposals/{id}"))?;
        if p["status"] != "open" || started.elapsed() > std::time::Duration::from_secs(10) {
            return Ok(p);
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

fn trust_by_agent(
    client: &Client,
    agents: &BTreeMap<&str, Keypair>,
) -> Result<BTreeMap<String, Value>> {
    let mut out = BTreeMap::new();
    for (name, key) in agents {
        let a = client.get(&format!("/v1/agents/{}", key.id()))?;
        out.insert(name.to_string(), a["trust"].clone());
    }
    Ok(out)
}
