//! `synod demo`'s stake-weighted validation (PROTOCOL.md §20): a low-stakes
//! key rotation in `payments.*`, where each member's stake is its influence
//! (authority × trust), approved only by more than two thirds of the whole
//! electorate's stake. Kept apart from `demo.rs` so that the scenarios
//! stay easy to read.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use serde_json::json;
use synod_core::Keypair;
use synod_core::wire::MessageType;

use crate::client::Client;

/// The proposal's summary, as the inbox lists it.
pub const SUMMARY: &str = "Rotate the payments API signing key";

/// Plays the scenario; returns its row of the demo's decisions table.
pub fn play(client: &Client, agents: &BTreeMap<&str, Keypair>) -> Result<Vec<String>> {
    let title = "A key rotation validated by stake";
    println!("\n▶ {title}");
    let (_, now) = client.space()?;
    let proposal = client.send(
        "/v1/proposals",
        MessageType::Proposal,
        json!({"domain": "payments.keys", "action": {"kind": "rotate_key", "summary": SUMMARY},
               "confidence": "0.9", "stakes": "low", "deadline": now + 10 * 60_000,
               "method": "stake"}),
        &agents["Fraud Sentinel"],
    )?;
    let id = proposal["id"].as_str().context("proposal id")?.to_string();
    let share = |client: &Client| -> Result<(String, String, String)> {
        let p = client.get(&format!("/v1/proposals/{id}"))?;
        let t = &p["tally"];
        Ok((
            p["status"].as_str().unwrap_or("?").to_string(),
            t["endorse"].as_str().unwrap_or("?").to_string(),
            t["potential"].as_str().unwrap_or("?").to_string(),
        ))
    };
    let (_, endorsed, whole) = share(client)?;
    println!(
        "  Fraud Sentinel proposes it by stake: approval needs more than 2/3 of the whole stake in payments ({whole}: authority × trust of every member), not of those who answer"
    );
    println!("  Fraud Sentinel's own stake endorses: {endorsed} of {whole}");
    for (who, stance, why) in [
        (
            "Customer Care",
            "abstain",
            "Not a customer-facing change; I leave it to the others.",
        ),
        (
            "Compliance",
            "endorse",
            "Rotation is due under the key policy; the old key is revoked after.",
        ),
    ] {
        client.send(
            &format!("/v1/proposals/{id}/responses"),
            MessageType::Response,
            json!({"proposal": id, "stance": stance, "confidence": "0.8", "reasoning": why}),
            &agents[who],
        )?;
        let (status, endorsed, whole) = share(client)?;
        println!("  {who} {stance}s: {why} → endorsed {endorsed} of {whole}, {status}");
    }
    let row = crate::demo::decision_row(title, &client.get(&format!("/v1/proposals/{id}"))?);
    println!(
        "  → {} ({}): the abstention counted against it until Compliance's stake took it past two thirds",
        row[1], row[5]
    );
    Ok(row)
}
