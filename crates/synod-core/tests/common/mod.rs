//! A space driven through the local sequencer's path, with named agents whose
//! keys derive from their names, so every run signs the same bytes.

#![allow(dead_code)]

use std::collections::BTreeMap;

use serde_json::{Value, json};
use synod_core::log::ExportLine;
use synod_core::policy::StakesPolicies;
use synod_core::space::Effect;
use synod_core::wire::{Digest, MessageType, Verified};
use synod_core::{AgentId, Entry, Keypair, Rejection, Space};

pub const SPACE: &str = "test-space";
/// Log time of the genesis entry: 2023-11-14T22:13:20Z.
pub const T0: u64 = 1_700_000_000_000;
pub const MINUTE: u64 = 60_000;

/// The default policies with linear weighting, as JSON.
pub fn linear_policies() -> Value {
    let mut policies = serde_json::to_value(StakesPolicies::default()).unwrap();
    for policy in policies.as_object_mut().unwrap().values_mut() {
        policy["weighting"] = json!("linear");
    }
    policies
}

pub fn key_of(name: &str) -> Keypair {
    Keypair::from_seed(&Digest::of(name.as_bytes()).0)
}

pub struct Harness {
    pub space: Space,
    pub time: u64,
    pub lines: Vec<String>,
    pub entries: Vec<Entry>,
    admin_seq: u64,
    reg_seq: BTreeMap<String, u64>,
}

impl Harness {
    /// A closed space with default configuration.
    pub fn closed() -> Harness {
        Harness::with_config(json!({}))
    }

    /// A closed space whose policies use linear weighting (the source
    /// essay's rule), with the default thresholds.
    pub fn closed_linear() -> Harness {
        Harness::with_config(json!({ "policies": linear_policies() }))
    }

    /// An open space with default configuration.
    pub fn open() -> Harness {
        Harness::with_config(json!({"mode": "open"}))
    }

    /// A space whose genesis sets `patch`.
    pub fn with_config(patch: Value) -> Harness {
        let mut h = Harness {
            space: Space::new(),
            time: T0,
            lines: Vec::new(),
            entries: Vec::new(),
            admin_seq: 0,
            reg_seq: BTreeMap::new(),
        };
        h.send(
            "admin",
            MessageType::Configuration,
            json!({"seq": 0, "change": {"set": patch}}),
        )
        .expect("genesis");
        h
    }

    pub fn id(&self, name: &str) -> AgentId {
        key_of(name).id().clone()
    }

    /// Signs `body` (adding `space` and `created_at` when absent) as `signer`.
    pub fn sign(&self, signer: &str, kind: MessageType, mut body: Value) -> Verified {
        let object = body.as_object_mut().expect("bodies are objects");
        object.entry("space").or_insert(json!(SPACE));
        object.entry("created_at").or_insert(json!(self.time));
        Verified::sign(kind, body, &key_of(signer))
    }

    /// Appends a signed message through the local sequencer's path.
    pub fn append(&mut self, message: Verified) -> Result<Vec<Effect>, Rejection> {
        let (entry, effects) = self.space.append(message, self.time)?;
        self.lines
            .push(ExportLine::new(&entry, effects.clone(), None).to_json());
        self.entries.push(entry);
        Ok(effects)
    }

    pub fn send(
        &mut self,
        signer: &str,
        kind: MessageType,
        body: Value,
    ) -> Result<Vec<Effect>, Rejection> {
        let message = self.sign(signer, kind, body);
        self.append(message)
    }

    /// Advances log time by `ms` with a tick entry.
    pub fn advance(&mut self, ms: u64) -> Vec<Effect> {
        self.time += ms;
        let (entry, effects) = self.space.tick(self.time);
        self.lines
            .push(ExportLine::new(&entry, effects.clone(), None).to_json());
        self.entries.push(entry);
        effects
    }

    /// An admin configuration change.
    pub fn configure(&mut self, change: Value) -> Result<Vec<Effect>, Rejection> {
        self.configure_as("admin", change)
    }

    /// A configuration change signed by `signer` (with the next admin seq).
    pub fn configure_as(&mut self, signer: &str, change: Value) -> Result<Vec<Effect>, Rejection> {
        let seq = self.admin_seq + 1;
        let effects = self.send(
            signer,
            MessageType::Configuration,
            json!({"seq": seq, "change": change}),
        )?;
        self.admin_seq = seq;
        Ok(effects)
    }

    /// Registers `name` declaring `authorities`.
    pub fn register_declaring(
        &mut self,
        name: &str,
        authorities: &[(&str, &str)],
    ) -> Result<Vec<Effect>, Rejection> {
        let seq = self.reg_seq.entry(name.to_string()).or_insert(0);
        *seq += 1;
        let seq = *seq;
        let authorities: BTreeMap<&str, &str> = authorities.iter().copied().collect();
        self.send(
            name,
            MessageType::Registration,
            json!({"seq": seq, "name": name, "vendor": "test", "authorities": authorities}),
        )
    }

    /// Grants `name` authorities and roles.
    pub fn grant(&mut self, name: &str, authorities: &[(&str, &str)], roles: &[&str]) {
        let authorities: BTreeMap<&str, &str> = authorities.iter().copied().collect();
        let agent = self.id(name);
        self.configure(
            json!({"grant": {"agent": agent, "authorities": authorities, "roles": roles}}),
        )
        .expect("grant");
    }

    /// Registers `name` and, in a closed space, grants it the authorities and
    /// the agent role.
    /// Admits `name` (in a closed space, an admin grants the authorities and
    /// the agent role first) and registers it.
    pub fn agent(&mut self, name: &str, authorities: &[(&str, &str)]) {
        if self.space.config().mode == synod_core::config::Mode::Closed {
            self.grant(name, authorities, &["agent"]);
        }
        self.register_declaring(name, authorities)
            .expect("registration");
    }

    /// Admits `name` with the given roles only, and registers it.
    pub fn person(&mut self, name: &str, roles: &[&str]) {
        self.grant(name, &[], roles);
        self.register_declaring(name, &[]).expect("registration");
    }

    pub fn proposal_body(&self, domain: &str, stakes: &str, confidence: &str) -> Value {
        json!({
            "domain": domain,
            "action": {"kind": "test_action", "summary": "do the thing", "payload": {"n": 1}},
            "confidence": confidence,
            "stakes": stakes,
            "deadline": self.time + 10 * MINUTE,
        })
    }

    pub fn propose_with(&mut self, proposer: &str, body: Value) -> Result<Digest, Rejection> {
        let message = self.sign(proposer, MessageType::Proposal, body);
        let id = message.id();
        self.append(message)?;
        Ok(id)
    }

    pub fn propose(
        &mut self,
        proposer: &str,
        domain: &str,
        stakes: &str,
        confidence: &str,
    ) -> Result<Digest, Rejection> {
        let body = self.proposal_body(domain, stakes, confidence);
        self.propose_with(proposer, body)
    }

    pub fn respond(
        &mut self,
        agent: &str,
        proposal: Digest,
        stance: &str,
        confidence: &str,
    ) -> Result<Vec<Effect>, Rejection> {
        self.send(
            agent,
            MessageType::Response,
            json!({"proposal": proposal, "stance": stance, "confidence": confidence, "reasoning": format!("{agent} says {stance}")}),
        )
    }

    pub fn decide(
        &mut self,
        reviewer: &str,
        proposal: Digest,
        decision: &str,
    ) -> Result<Vec<Effect>, Rejection> {
        self.send(
            reviewer,
            MessageType::Decision,
            json!({"proposal": proposal, "decision": decision, "note": "checked by hand"}),
        )
    }

    pub fn outcome(
        &mut self,
        reporter: &str,
        proposal: Digest,
        result: &str,
    ) -> Result<Vec<Effect>, Rejection> {
        self.send(
            reporter,
            MessageType::Outcome,
            json!({"proposal": proposal, "result": result}),
        )
    }

    pub fn status(&self, proposal: &Digest) -> &'static str {
        self.space
            .proposal(proposal)
            .expect("known proposal")
            .status
            .as_str()
    }

    pub fn trust(&self, name: &str, domain: &str) -> String {
        let agent = self.space.agent(&self.id(name)).expect("registered");
        self.space
            .trust(agent, &synod_core::domain::Domain::parse(domain).unwrap())
            .to_string()
    }
}
