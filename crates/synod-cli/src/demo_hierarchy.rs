//! `synod demo`'s hierarchical decision (PROTOCOL.md §21): in
//! `payments.refunds` the customer-facing agents are workers, Compliance
//! supervises, and an operations lead decides; a worker objects, but one of
//! three is not more than half, so the decision stands when the objection
//! window closes through the log.

use anyhow::{Context, Result, bail};
use serde_json::json;
use std::collections::BTreeMap;
use synod_core::Keypair;
use synod_core::wire::MessageType;
use synod_node::keys;

use crate::client::Client;
use crate::commands::{configure, grant};

/// The proposal's summary, as the inbox lists it.
pub const SUMMARY: &str = "Refund order #3391 (240 EUR) to the customer's card";
/// How long workers may object in the demo.
const WINDOW_MS: u64 = 1_500;

/// Plays the scenario; returns its row of the demo's decisions table.
pub fn play(
    client: &Client,
    admin: &Keypair,
    agents: &BTreeMap<&str, Keypair>,
) -> Result<Vec<String>> {
    let title = "A refund decided by a hierarchy";
    println!("\n▶ {title}");
    let lead = keys::generate()?;
    grant(
        client,
        admin,
        lead.id().as_str(),
        BTreeMap::new(),
        Vec::new(),
    )?;
    client.send(
        "/v1/agents",
        MessageType::Registration,
        json!({"seq": 1, "name": "Operations Lead", "vendor": "in-house", "model": "person-in-the-loop"}),
        &lead,
    )?;
    let workers = ["Customer Care", "Fraud Sentinel", "Credit Risk"];
    configure(
        client,
        admin,
        json!({"set": {"hierarchies": {"payments.refunds": {
            "workers": workers.iter().map(|w| agents[w].id().clone()).collect::<Vec<_>>(),
            "supervisors": [agents["Compliance"].id()],
            "executive": lead.id(),
            "objection_window_ms": WINDOW_MS,
        }}}}),
    )?;
    println!(
        "  payments.refunds: workers {}; Compliance supervises; Operations Lead decides; objections within {} ms",
        workers.join(", "),
        WINDOW_MS
    );
    let (_, now) = client.space()?;
    let proposal = client.send(
        "/v1/proposals",
        MessageType::Proposal,
        json!({"domain": "payments.refunds", "action": {"kind": "refund", "summary": SUMMARY},
               "confidence": "0.8", "stakes": "medium", "deadline": now + 10 * 60_000,
               "method": "hierarchy"}),
        &agents["Customer Care"],
    )?;
    let id = proposal["id"].as_str().context("proposal id")?.to_string();
    println!("  Customer Care proposes: {SUMMARY}");
    let decide = |note: &str| {
        client.send(
            &format!("/v1/escalations/{id}/decisions"),
            MessageType::Decision,
            json!({"proposal": id, "decision": "approve", "note": note}),
            &lead,
        )
    };
    match decide("Too early") {
        Err(e) => println!("  Operations Lead tries to decide at once: refused ({e})"),
        Ok(_) => bail!("the executive decided before the supervisor"),
    }
    let why = "The parcel was lost in transit; the carrier confirmed it.";
    client.send(
        &format!("/v1/proposals/{id}/responses"),
        MessageType::Response,
        json!({"proposal": id, "stance": "endorse", "confidence": "0.85", "reasoning": why}),
        &agents["Compliance"],
    )?;
    println!("  Compliance endorses at 0.85: {why}");
    decide("Refund approved: carrier-confirmed loss.")?;
    println!("  Operations Lead approves; the decision is final only when the window closes");
    let objection = "The card was reported stolen last week; refund to the account instead.";
    client.send(
        &format!("/v1/proposals/{id}/responses"),
        MessageType::Response,
        json!({"proposal": id, "stance": "challenge", "confidence": "0.6", "reasoning": objection}),
        &agents["Fraud Sentinel"],
    )?;
    println!("  Fraud Sentinel objects: {objection} (1 of 3 workers: not more than half)");
    // The window closes through the log: the node ticks at the deadline.
    let row = crate::demo::decision_row(title, &crate::demo::await_close(client, &id)?);
    println!(
        "  → {} ({}): the objection window closed and the decision stood",
        row[1], row[5]
    );
    Ok(row)
}
