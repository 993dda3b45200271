//! `synod demo`'s proof-of-work admission (PROTOCOL.md §16): the admin asks
//! for a 16-bit stamp on proposals from agents whose trust in the domain is
//! below 0.6 (everyone, at the prior 0.5); Customer Care's proposal without
//! one is refused, with one it enters, and the same stamp carried to another
//! proposal is refused because a stamp is bound to the body it was found for.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use synod_core::Keypair;
use synod_core::wire::{MessageType, Verified};

use crate::client::Client;
use crate::commands::configure;

/// The admitted proposal's summary, as the inbox lists it.
pub const SUMMARY: &str = "Waive the 35 EUR late fee on account #2290";
/// The demo's difficulty: about 65,000 hashes, a fraction of a second.
const DIFFICULTY: u32 = 16;

/// A proposal body at the space's current time, without a stamp (signed
/// and posted by [`post`], since `Client::send` would mint one itself).
fn body(client: &Client, summary: &str) -> Result<Value> {
    let space = client.get("/v1/space")?;
    Ok(json!({"space": space["space"], "created_at": space["time"],
              "domain": "payments.fees", "action": {"kind": "waive_fee", "summary": summary},
              "confidence": "0.8", "stakes": "low",
              "deadline": space["time"].as_u64().context("space time")? + 10 * 60_000}))
}

fn post(client: &Client, body: Value, key: &Keypair) -> Result<Value> {
    let message = Verified::sign(MessageType::Proposal, body, key);
    client.post("/v1/proposals", &message.to_value(), None)
}

/// Plays the scenario; returns its row of the demo's decisions table.
pub fn play(
    client: &Client,
    admin: &Keypair,
    agents: &BTreeMap<&str, Keypair>,
) -> Result<Vec<String>> {
    let title = "A proposal admitted by proof of work";
    println!("\n▶ {title}");
    configure(
        client,
        admin,
        json!({"set": {"admission_trust_below": "0.6", "admission_difficulty": DIFFICULTY}}),
    )?;
    println!(
        "  The admin asks for a {DIFFICULTY}-bit stamp on proposals from agents trusted below 0.6 in their domain"
    );
    let proposer = &agents["Customer Care"];
    match post(client, body(client, SUMMARY)?, proposer) {
        Err(e) => println!("  Customer Care (trust 0.5) proposes without a stamp: refused ({e})"),
        Ok(_) => bail!("a proposal without the stamp the space asks for was accepted"),
    }
    let mut stamped = body(client, SUMMARY)?;
    let started = Instant::now();
    let nonce = synod_core::stamp::stamp_body(&mut stamped, proposer.id(), DIFFICULTY)
        .context("no stamp found")?;
    let took = started.elapsed();
    let answer = post(client, stamped, proposer)?;
    let id = answer["id"].as_str().context("proposal id")?.to_string();
    println!(
        "  It mints a stamp (nonce {nonce}, {:.0} ms) and proposes again: {SUMMARY}",
        took.as_secs_f64() * 1000.0
    );
    let mut copied = body(client, "Waive the 35 EUR late fee on account #2291")?;
    copied["stamp"] = json!(nonce);
    match post(client, copied, proposer) {
        Err(e) => println!("  The same stamp on another proposal: refused ({e})"),
        Ok(_) => bail!("a stamp minted for one proposal admitted another"),
    }
    for (who, confidence, why) in [
        (
            "Fraud Sentinel",
            "0.8",
            "First late payment in six years; no fraud signals.",
        ),
        (
            "Compliance",
            "0.75",
            "Within the goodwill policy for a first late fee.",
        ),
    ] {
        if client.get(&format!("/v1/proposals/{id}"))?["status"] != "open" {
            println!("  {who} does not need to answer: the result was already final");
            continue;
        }
        client.send(
            &format!("/v1/proposals/{id}/responses"),
            MessageType::Response,
            json!({"proposal": id, "stance": "endorse", "confidence": confidence, "reasoning": why}),
            &agents[who],
        )?;
        println!("  {who} endorses at {confidence}: {why}");
    }
    // The rest of the demo, and whoever explores it afterwards, proposes
    // without stamps again.
    configure(
        client,
        admin,
        json!({"set": {"admission_trust_below": "0"}}),
    )?;
    let row = crate::demo::decision_row(title, &crate::demo::await_close(client, &id)?);
    println!("  → {} ({}); admission is off again", row[1], row[5]);
    Ok(row)
}
