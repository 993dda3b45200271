//! The A2A agent card at `/.well-known/agent-card.json`: what this node
//! offers other agents. When the node knows its public URL (`--public-url`)
//! the card names it and is signed with the node's key (its space's admin
//! key) as a JWS over the card's RFC 8785 form, computed once. Without it the
//! card names the host the request used and carries no signature: a signed
//! card must never name a host a client chose.
//!
//! synod does not speak A2A's own message protocol; the card points to the
//! interfaces it does speak (MCP, the HTTP API) as extensions, and claims no
//! A2A capability.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use synod_core::Keypair;
use synod_core::wire::canonicalize;

use crate::Node;

/// The card for a node reached at `base` (scheme and authority).
pub fn card(base: &str, space: &str) -> Value {
    let skill = |id: &str, name: &str, description: &str, tags: &[&str]| json!({"id": id, "name": name, "description": description, "tags": tags});
    json!({
        "protocolVersion": "0.3.0",
        "name": format!("synod space {space}"),
        "description": "A coordination space where agents from different vendors decide together whether an action should be taken: one proposes, the agents with authority in its domain endorse, challenge or abstain with a confidence, and the weighted result approves, rejects or escalates to a human. Every message is signed; the log is hash-chained and auditable.",
        "url": format!("{base}/mcp"),
        "version": env!("CARGO_PKG_VERSION"),
        "documentationUrl": format!("{base}/openapi.json"),
        "capabilities": {
            "streaming": false,
            "pushNotifications": false,
            "stateTransitionHistory": false,
            "extensions": [
                {"uri": "https://modelcontextprotocol.io/specification", "required": false,
                 "description": "The tools, over MCP streamable HTTP; authenticate with `Authorization: Bearer <agent token>`.",
                 "params": {"url": format!("{base}/mcp")}},
                {"uri": "https://spec.openapis.org/oas/v3.1.0", "required": false,
                 "description": "synod's own HTTP API: signed messages (docs/PROTOCOL.md) under /v1.",
                 "params": {"url": format!("{base}/v1"), "openapi": format!("{base}/openapi.json")}},
            ],
        },
        "securitySchemes": {
            "agentToken": {"type": "http", "scheme": "bearer", "description": "An agent token (`synod agent token`): the agent's key is derived from it."}
        },
        "security": [{"agentToken": []}],
        "defaultInputModes": ["application/json"],
        "defaultOutputModes": ["application/json"],
        "skills": [
            skill("propose", "Propose an action", "Put an action (e.g. approve a loan, block a transaction) to the agents of its domain.", &["consensus", "proposal"]),
            skill("respond", "Judge a proposal", "Endorse, challenge or abstain on an open proposal in your domains, with a confidence and reasoning.", &["consensus", "vote"]),
            skill("status", "Follow a decision", "Read a proposal's tally, current leaning, outcome and decision package; stream events.", &["consensus", "events"]),
            skill("outcome", "Report an outcome", "Report how a decided action turned out, which moves every responder's trust.", &["trust", "feedback"]),
            skill("escalation", "Human review", "Escalated decisions wait in a web inbox for reviewers, with the whole decision package.", &["human-in-the-loop"]),
            skill("audit", "Audit the log", "Export the hash-chained log; anyone can re-derive every decision with `synod audit verify`.", &["audit"]),
        ],
    })
}

/// Adds `signatures` to `card`: one JWS (RFC 7515, flattened, detached
/// payload) whose payload is the RFC 8785 form of the card without
/// `signatures`, with header `{"alg": "EdDSA", "kid": <did>, "typ": "JOSE"}`.
pub fn sign(mut card: Value, key: &Keypair) -> Value {
    let protected = json!({"alg": "EdDSA", "kid": key.id(), "typ": "JOSE"});
    let protected = URL_SAFE_NO_PAD.encode(canonicalize(&protected));
    let payload = URL_SAFE_NO_PAD.encode(canonicalize(&card));
    let signature = key.sign(format!("{protected}.{payload}").as_bytes());
    card["signatures"] = json!([{
        "protected": protected,
        "signature": URL_SAFE_NO_PAD.encode(signature.to_bytes()),
    }]);
    card
}

pub(crate) async fn serve(State(node): State<Arc<Node>>, headers: HeaderMap) -> Response {
    // The card names the node as the client reached it; the router's Host
    // check has already refused names this node does not serve.
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    if let Some(signed) = node.signed_card() {
        return axum::Json(signed.clone()).into_response();
    }
    let space = node.read(|s| s.id().to_string());
    axum::Json(card(&format!("http://{host}"), &space)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_covers_the_card() {
        let key = Keypair::from_seed(&[3; 32]);
        let signed = sign(card("http://127.0.0.1:7420", "space-x"), &key);
        let jws = &signed["signatures"][0];
        let mut unsigned = signed.clone();
        unsigned.as_object_mut().unwrap().remove("signatures");
        let payload = URL_SAFE_NO_PAD.encode(canonicalize(&unsigned));
        let input = format!("{}.{payload}", jws["protected"].as_str().unwrap());
        let signature: [u8; 64] = URL_SAFE_NO_PAD
            .decode(jws["signature"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap();
        let verifying = key.verifying_key();
        let sig = ed25519_dalek::Signature::from_bytes(&signature);
        assert!(verifying.verify_strict(input.as_bytes(), &sig).is_ok());
        // Changing the card breaks it.
        unsigned["name"] = json!("synod space space-y");
        let payload = URL_SAFE_NO_PAD.encode(canonicalize(&unsigned));
        let tampered = format!("{}.{payload}", jws["protected"].as_str().unwrap());
        assert!(verifying.verify_strict(tampered.as_bytes(), &sig).is_err());
    }
}
