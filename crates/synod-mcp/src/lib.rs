//! synod's MCP server: the Model Context Protocol in front of a node's HTTP
//! API, for LLM agents.
//!
//! Everything that touches rmcp (whose API changes often) is in this crate,
//! and this crate knows nothing of the node but its public HTTP API, through
//! [`Api`]. A session is bound to one agent key: a key given when the server
//! starts (`synod mcp --key`, over stdio), or, over streamable HTTP, a key
//! derived from the bearer token each request carries ([`token_keypair`]).
//! The server builds and signs every message on the agent's behalf, so the
//! model never handles keys or signatures.

use std::sync::Arc;

use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock};
use rmcp::schemars::{self, JsonSchema};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{
    ErrorData, RoleServer, ServerHandler, ServiceExt as _, tool, tool_handler, tool_router,
};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use synod_core::Keypair;
use synod_core::domain::DomainPattern;
use synod_core::wire::{MessageType, Verified};

/// A node's HTTP API, as the adapter uses it. Calls block; the server runs
/// them off the async runtime.
pub trait Api: Send + Sync + 'static {
    /// `GET path` (path and query), the JSON answer.
    fn get(&self, path: &str) -> Result<Value, Failure>;
    /// `POST path` with a JSON body, the JSON answer.
    fn post(&self, path: &str, body: &Value) -> Result<Value, Failure>;
}

/// Why a call to the node failed: the node's error kind and message, or
/// `unreachable` when there was no answer.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The node's error kind (docs/PROTOCOL.md §12), or `unreachable`.
    pub kind: String,
    /// What went wrong, for the model to read.
    pub message: String,
}

/// Stamps a proposal `body` (its `space` and `created_at` set) when the
/// space's proof-of-work admission asks it of `signer` (PROTOCOL.md §16):
/// its trust in the proposal's domain, read from the node, is below
/// `admission_trust_below` in `space` (the answer of `GET /v1/space`).
/// Returns the difficulty minted at, or `None` when no stamp was needed.
/// Shared by the MCP tools and the `synod` CLI.
pub fn stamp_if_required(
    api: &dyn Api,
    space: &Value,
    body: &mut Value,
    signer: &synod_core::AgentId,
) -> Result<Option<u32>, Failure> {
    use synod_core::fixed::Trust;
    let config = &space["config"];
    let below = config["admission_trust_below"]
        .as_str()
        .and_then(|t| Trust::parse(t).ok())
        .unwrap_or(Trust::ZERO);
    if below == Trust::ZERO {
        return Ok(None);
    }
    let Some(record) = own_record(api, signer.as_str())? else {
        // The node refuses the proposal of an unknown agent anyway.
        return Ok(None);
    };
    let domain = body["domain"].as_str().unwrap_or_default();
    let trust = record["trust"][domain]
        .as_str()
        .or(record["trust_prior"].as_str())
        .and_then(|t| Trust::parse(t).ok())
        .unwrap_or(Trust::ZERO);
    if trust >= below {
        return Ok(None);
    }
    let difficulty = config["admission_difficulty"]
        .as_u64()
        .and_then(|d| u32::try_from(d).ok())
        .unwrap_or(synod_core::stamp::MAX_ADMISSION_DIFFICULTY);
    synod_core::stamp::stamp_body(body, signer, difficulty)
        .ok_or_else(|| failure("insufficient_work", "no stamp exists for this proposal"))?;
    Ok(Some(difficulty))
}

/// Proposals asked for per page (the node serves at most 500).
const LIST_PAGE: usize = 500;
/// Most proposals `list_open_proposals` returns; `more` says there are more.
const LIST_MAX: usize = 1_000;

/// The label mixed into a token to derive an agent key from it.
pub const AGENT_TOKEN_CONTEXT: &[u8] = b"synod/agent-token/v1";

/// What every agent token starts with.
pub const AGENT_TOKEN_PREFIX: &str = "synod_at_";

/// The agent key a token stands for: the Ed25519 key whose seed is
/// `SHA-256("synod/agent-token/v1" ‖ token)`; `None` unless the token is
/// `synod_at_` and 64 lowercase hex characters (what `synod agent token`
/// makes: 256 random bits), so that a guessable string is never an agent.
/// The node stores nothing; whoever holds the token is the agent, so a token
/// is a secret like a key file.
pub fn token_keypair(token: &str) -> Option<Keypair> {
    let secret = token.strip_prefix(AGENT_TOKEN_PREFIX)?;
    if secret.len() != 64
        || !secret
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return None;
    }
    let mut h = Sha256::new();
    h.update(AGENT_TOKEN_CONTEXT);
    h.update(token.as_bytes());
    Some(Keypair::from_seed(&h.finalize().into()))
}

/// The agent an HTTP request's `Authorization: Bearer <agent token>` names,
/// if it carries a well-formed agent token. The scheme is case-insensitive
/// (RFC 9110 §11.1); the token is trimmed.
pub fn bearer_agent(headers: &http::HeaderMap) -> Option<Keypair> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    token_keypair(token.trim())
}

/// Whose key signs what a session does.
#[derive(Clone)]
enum Identity {
    /// One key for the whole server (stdio).
    Key(Arc<Keypair>),
    /// Each HTTP request's `Authorization: Bearer <token>`.
    BearerToken,
}

/// The MCP server: one per session.
#[derive(Clone)]
pub struct Synod {
    api: Arc<dyn Api>,
    identity: Identity,
    /// Salts of the sealed answers this server committed, by (agent,
    /// proposal), so that a reveal needs no salt from the agent (§18).
    salts: Arc<std::sync::Mutex<std::collections::BTreeMap<(String, String), String>>>,
}

impl std::fmt::Debug for Synod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Synod").finish_non_exhaustive()
    }
}

/// Parameters of `register`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterArgs {
    /// A short name people will see (e.g. "fraud-screening").
    pub name: String,
    /// Who built or runs the agent (e.g. "Acme AI").
    #[serde(default)]
    pub vendor: Option<String>,
    /// The model behind it (e.g. "claude-sonnet").
    #[serde(default)]
    pub model: Option<String>,
    /// Domains you claim authority in, with a weight from 0 to 1, e.g.
    /// {"credit.*": "0.8"}. In an open space these count; in a closed
    /// space an administrator grants authority instead.
    #[serde(default)]
    pub authorities: std::collections::BTreeMap<String, Decimal>,
}

/// Parameters of `list_open_proposals`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListArgs {
    /// Only this domain or pattern (e.g. "credit.*"); default: every domain
    /// you have authority in.
    #[serde(default)]
    pub domain: Option<String>,
}

/// A proposal id.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProposalArgs {
    /// The proposal id: 64 lowercase hex characters.
    pub proposal_id: String,
}

/// Parameters of `propose`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProposeArgs {
    /// The domain the decision belongs to, e.g. "credit.loans".
    pub domain: String,
    /// A machine-readable kind of action, e.g. "approve_loan".
    pub kind: String,
    /// One line a person can read, e.g. "Approve loan #4411 for 25,000 EUR".
    pub summary: String,
    /// Details the other agents need to judge (any JSON object).
    #[serde(default)]
    pub payload: Option<Value>,
    /// Your probability, 0 to 1, that the action is right. Required unless
    /// you ask a question with `options`.
    #[serde(default)]
    pub confidence: Option<Decimal>,
    /// How much is at stake: "low", "medium", "high" or "critical"
    /// ("critical" always goes to a human).
    pub stakes: String,
    /// Minutes until the vote closes (default 60).
    #[serde(default)]
    pub deadline_minutes: Option<u32>,
    /// Ask a question instead of proposing one action (belief consensus):
    /// 2 to 16 option labels of a-z, 0-9, _ . - (e.g. ["acme", "globex"]).
    /// The agents answer with a probability per option; the pooled answer
    /// is adopted if it is probable enough, or a human decides.
    #[serde(default)]
    pub options: Option<Vec<String>>,
    /// With `options`: your own probability per option, summing to 1
    /// (e.g. {"acme": 0.7, "globex": 0.3}).
    #[serde(default)]
    pub distribution: Option<std::collections::BTreeMap<String, Decimal>>,
    /// "stake" to decide by stake: approved only when members holding more
    /// than two thirds of the whole electorate's stake endorse (silence
    /// counts against), rejected once a third challenges; "hierarchy" for a
    /// worker's proposal that supervisors evaluate and the executive
    /// decides. Default "vote".
    #[serde(default)]
    pub method: Option<String>,
    /// A low-stakes proposal decided by a committee of this many members
    /// drawn by stake, where the space allows committees.
    #[serde(default)]
    pub committee: Option<u32>,
    /// Seal the answers (commit, then reveal): seconds of the commit phase,
    /// during which agents send only a commitment, so nobody sees a stance
    /// before fixing their own. Must be less than the deadline.
    #[serde(default)]
    pub commit_seconds: Option<u32>,
    /// Ask an open question instead (no options): the agents answer in free
    /// text, equivalent answers are clustered, and the heaviest cluster's
    /// answer is adopted if it holds enough of the weight.
    #[serde(default)]
    pub open: Option<bool>,
    /// With `open`: numbers within this distance are the same answer
    /// (e.g. "0.5"; default 0).
    #[serde(default)]
    pub tolerance: Option<String>,
}

/// Parameters of `decide_as_executive`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecutiveArgs {
    /// The proposal id: 64 lowercase hex characters.
    pub proposal_id: String,
    /// "approve" or "reject".
    pub decision: String,
    /// Why; kept in the audit log and shown to reviewers if workers object.
    #[serde(default)]
    pub note: String,
}

/// Parameters of `who_may_propose`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DomainArgs {
    /// The domain, e.g. "ops.deploy".
    pub domain: String,
}

/// Parameters of `respond`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RespondArgs {
    /// The proposal id.
    pub proposal_id: String,
    /// "endorse" (the action is right), "challenge" (it is wrong) or
    /// "abstain" (you cannot judge it). Not with `distribution`.
    #[serde(default)]
    pub stance: Option<String>,
    /// Your probability, 0 to 1, that your stance is right.
    #[serde(default)]
    pub confidence: Option<Decimal>,
    /// A question's answer (a proposal with options): your probability for
    /// each option, summing to exactly 1, e.g. {"acme": 0.7, "globex": 0.3}.
    #[serde(default)]
    pub distribution: Option<std::collections::BTreeMap<String, Decimal>>,
    /// Why: the evidence you relied on. Kept in the audit log and shown to
    /// the humans who review escalations.
    pub reasoning: String,
    /// A sealed proposal's reveal: the salt `respond` returned when you
    /// committed (not needed if this server committed for you).
    #[serde(default)]
    pub salt: Option<String>,
    /// An open question's answer (free text), with `confidence`: your
    /// probability that it is right.
    #[serde(default)]
    pub answer: Option<String>,
}

/// A distribution as the protocol wants it: each probability as text.
fn distribution_json(d: &std::collections::BTreeMap<String, Decimal>) -> Value {
    Value::Object(
        d.iter()
            .map(|(o, p)| (o.clone(), json!(p.text())))
            .collect(),
    )
}

/// Parameters of `report_outcome`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OutcomeArgs {
    /// The proposal id.
    pub proposal_id: String,
    /// "success" or "failure": how the decision turned out in reality.
    #[serde(default)]
    pub result: Option<String>,
    /// Or a score from 0 (a clear failure) to 1 (a clear success).
    #[serde(default)]
    pub score: Option<Decimal>,
    /// For a question (a proposal with options): the option that turned out
    /// right, instead of `result` or `score`.
    #[serde(default)]
    pub option: Option<String>,
    /// For an open question: the answer that turned out right.
    #[serde(default)]
    pub answer: Option<String>,
}

/// A decimal from 0 to 1, as text ("0.85") or as a number (0.85). Numbers
/// are written with at most six decimals before signing; the protocol only
/// ever sees the text.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Decimal {
    /// Exact decimal text.
    Text(String),
    /// A JSON number.
    Number(f64),
}

impl Decimal {
    fn text(&self) -> String {
        match self {
            Decimal::Text(t) => t.clone(),
            Decimal::Number(n) => {
                let s = format!("{n:.6}");
                let s = s.trim_end_matches('0').trim_end_matches('.');
                if s.is_empty() || s == "-" {
                    "0".into()
                } else {
                    s.into()
                }
            }
        }
    }
}

fn ok(value: &Value) -> CallToolResult {
    let text = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
    CallToolResult::success(vec![ContentBlock::text(text)])
}

/// A failure the model should read and act on (not a protocol error).
fn refused(failure: Failure) -> CallToolResult {
    let text = json!({"error": failure.kind, "message": failure.message}).to_string();
    CallToolResult::error(vec![ContentBlock::text(text)])
}

fn failure(kind: &str, message: impl Into<String>) -> Failure {
    Failure {
        kind: kind.into(),
        message: message.into(),
    }
}

fn check_id(id: &str) -> Result<(), Failure> {
    if id.len() == 64 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        Ok(())
    } else {
        Err(failure(
            "malformed",
            "a proposal id is 64 lowercase hex characters",
        ))
    }
}

impl Synod {
    /// Commits to `answer` on a sealed proposal in its commit phase
    /// (PROTOCOL.md §18): a fresh 16-byte salt (or the one given), the
    /// commitment sent, the salt remembered and returned for the reveal.
    async fn commit(
        &self,
        key: Arc<Keypair>,
        path: String,
        answer: Value,
        salt: Option<String>,
        slot: (String, String),
    ) -> Result<Value, Failure> {
        let salt = match salt {
            Some(salt) => salt,
            None => {
                let mut bytes = [0u8; synod_core::sealed::MIN_SALT_BYTES];
                getrandom::fill(&mut bytes)
                    .map_err(|e| failure("internal", format!("no randomness: {e}")))?;
                synod_core::wire::hex_encode(&bytes)
            }
        };
        let raw = synod_core::sealed::decode_salt(&salt)
            .map_err(|r| failure(r.kind.as_str(), r.message))?;
        let proposal = synod_core::Digest::from_hex(&slot.1)
            .ok_or_else(|| failure("malformed", "a proposal id is 64 lowercase hex characters"))?;
        let commitment = synod_core::sealed::commitment(
            &proposal,
            key.id(),
            &raw,
            &synod_core::sealed::answer_of(&answer),
        );
        let body = json!({"proposal": slot.1, "commitment": commitment});
        let mut sent = self
            .send(key, path, MessageType::Response, body, None)
            .await?;
        self.salts.lock().expect("salts").insert(slot, salt.clone());
        sent["salt"] = json!(salt);
        sent["sealed"] = json!(
            "committed: your answer stays hidden until the commit deadline; then call respond again with the same answer (and this salt) to reveal it"
        );
        Ok(sent)
    }

    /// A server that signs everything with `key` (stdio).
    pub fn with_key(api: Arc<dyn Api>, key: Keypair) -> Synod {
        Synod {
            api,
            identity: Identity::Key(Arc::new(key)),
            salts: Arc::default(),
        }
    }

    /// A server that signs with the key of each request's bearer token
    /// (streamable HTTP).
    pub fn with_bearer_tokens(api: Arc<dyn Api>) -> Synod {
        Synod {
            api,
            identity: Identity::BearerToken,
            salts: Arc::default(),
        }
    }

    fn key(&self, context: &RequestContext<RoleServer>) -> Result<Arc<Keypair>, Failure> {
        match &self.identity {
            Identity::Key(key) => Ok(key.clone()),
            Identity::BearerToken => {
                let agent = context
                    .extensions
                    .get::<http::request::Parts>()
                    .and_then(|parts| bearer_agent(&parts.headers));
                match agent {
                    Some(key) => Ok(Arc::new(key)),
                    None => Err(failure(
                        "unauthorized",
                        "this MCP endpoint needs `Authorization: Bearer <agent token>` with a token made by `synod agent token` (synod_at_ and 64 hex characters)",
                    )),
                }
            }
        }
    }

    /// Runs `f` against the node off the async runtime.
    async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Api) -> Result<T, Failure> + Send + 'static,
    ) -> Result<T, Failure> {
        let api = self.api.clone();
        tokio::task::spawn_blocking(move || f(api.as_ref()))
            .await
            .unwrap_or_else(|e| Err(failure("internal", format!("the call failed: {e}"))))
    }

    /// Signs `body` as `kind` (adding the node's space and clock, and a
    /// deadline `deadline_ms` after that clock if given) and posts it to
    /// `path`.
    async fn send(
        &self,
        key: Arc<Keypair>,
        path: String,
        kind: MessageType,
        mut body: Value,
        deadline_ms: Option<u64>,
    ) -> Result<Value, Failure> {
        self.call(move |api| {
            let space = api.get("/v1/space")?;
            body["space"] = space["space"].clone();
            body["created_at"] = space["time"].clone();
            if let Some(ms) = deadline_ms {
                let now = space["time"].as_u64().unwrap_or(0);
                body["deadline"] = json!(now.saturating_add(ms));
                // A sealed proposal's commit phase, given in ms from now.
                if let Some(commit_ms) = body["sealed"]["commit_in_ms"].as_u64() {
                    body["sealed"] = json!({"commit_deadline": now.saturating_add(commit_ms)});
                }
            }
            if kind == MessageType::Proposal {
                stamp_if_required(api, &space, &mut body, key.id())?;
            }
            let message = Verified::sign(kind, body, &key);
            let mut answer = api.post(&path, &message.to_value())?;
            answer["signed_by"] = json!(key.id());
            Ok(answer)
        })
        .await
    }

    fn answer(result: Result<Value, Failure>) -> Result<CallToolResult, ErrorData> {
        Ok(match result {
            Ok(value) => ok(&value),
            Err(f) => refused(f),
        })
    }
}

/// The agent's own record, or `None` if it is not registered.
fn own_record(api: &dyn Api, did: &str) -> Result<Option<Value>, Failure> {
    match api.get(&format!("/v1/agents/{did}")) {
        Ok(v) => Ok(Some(v)),
        Err(f) if f.kind == "not_found" => Ok(None),
        Err(f) => Err(f),
    }
}

/// The domain patterns an agent's record gives it authority in: granted if
/// any (a closed space), else declared (an open space).
fn authority_patterns(record: &Value) -> Vec<DomainPattern> {
    let granted = &record["granted_authorities"];
    let source = if granted.as_object().is_some_and(|o| !o.is_empty()) {
        granted
    } else {
        &record["declared_authorities"]
    };
    source
        .as_object()
        .into_iter()
        .flat_map(|o| o.keys())
        .filter_map(|p| DomainPattern::parse(p).ok())
        .collect()
}

#[tool_router]
impl Synod {
    #[tool(
        description = "Who you are in this space: your agent id (did:key), whether you are registered, your roles, the domains you have authority in, and your trust per domain.",
        annotations(read_only_hint = true)
    )]
    async fn whoami(
        &self,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        Self::answer(
            async {
                let did = self.key(&context)?.id().to_string();
                self.call(move |api| {
                    let space = api.get("/v1/space")?;
                    let record = own_record(api, &did)?;
                    Ok(json!({"agent": did, "space": space["space"], "mode": space["config"]["mode"],
                              "registered": record.as_ref().is_some_and(|r| r["registered"] == true),
                              "record": record}))
                })
                .await
            }
            .await,
        )
    }

    #[tool(
        description = "Register yourself as an agent of this space, or update your registration (name, vendor, model, claimed authorities). In an open space, claimed authorities are what your votes weigh; in a closed space an administrator grants authority, and registering only names you."
    )]
    async fn register(
        &self,
        Parameters(args): Parameters<RegisterArgs>,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        Self::answer(
            async {
                let key = self.key(&context)?;
                let did = key.id().to_string();
                let record = self.call(move |api| own_record(api, &did)).await?;
                let seq = record.and_then(|r| r["seq"].as_u64()).unwrap_or(0) + 1;
                let authorities: serde_json::Map<String, Value> = args
                    .authorities
                    .iter()
                    .map(|(p, a)| (p.clone(), json!(a.text())))
                    .collect();
                let mut body = json!({"seq": seq, "name": args.name, "authorities": authorities});
                if let Some(v) = args.vendor {
                    body["vendor"] = json!(v);
                }
                if let Some(m) = args.model {
                    body["model"] = json!(m);
                }
                self.send(
                    key,
                    "/v1/agents".into(),
                    MessageType::Registration,
                    body,
                    None,
                )
                .await
            }
            .await,
        )
    }

    #[tool(
        description = "The open proposals that await a judgement in your domains (or in `domain`), oldest first: id, domain, action, stakes, deadline and the current tally. Read one with `read_proposal` before you respond.",
        annotations(read_only_hint = true)
    )]
    async fn list_open_proposals(
        &self,
        Parameters(args): Parameters<ListArgs>,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        Self::answer(
            async {
                let did = self.key(&context)?.id().to_string();
                if let Some(d) = &args.domain
                    && DomainPattern::parse(d).is_err()
                {
                    return Err(failure(
                        "malformed",
                        format!("{d:?} is not a domain or pattern (e.g. credit.loans, credit.*)"),
                    ));
                }
                self.call(move |api| open_proposals(api, &did, args.domain))
                    .await
            }
            .await,
        )
    }

    #[tool(
        description = "Everything about one proposal: the action and its payload, the proposer's confidence, each response so far (stance, confidence, reasoning), the live tally and what the rule would say now (`leaning`, not final), where you stand (`member`: whether you may answer, your weight, whether you already did), and, once escalated or decided by people, the decision package.",
        annotations(read_only_hint = true)
    )]
    async fn read_proposal(
        &self,
        Parameters(args): Parameters<ProposalArgs>,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        Self::answer(
            async {
                check_id(&args.proposal_id)?;
                // With a key, the answer also says where this agent stands.
                let path = match self.key(&context) {
                    Ok(key) => format!("/v1/proposals/{}?agent={}", args.proposal_id, key.id()),
                    Err(_) => format!("/v1/proposals/{}", args.proposal_id),
                };
                self.call(move |api| api.get(&path)).await
            }
            .await,
        )
    }

    #[tool(
        description = "Propose an action for the agents of its domain to judge. Proposals cannot be edited: to change one, propose again. Stakes set how sure the agents must be: low, medium, high; critical always goes to a human. Confidence is your probability, 0 to 1, that the action is right; it is scored against the outcome. Or ask a question with `options` (2 to 16 labels): the agents answer with a probability per option, and the pooled answer is adopted when it is probable enough (0.6, 0.7, 0.8 by stakes), else a human picks. Or ask an open question with `open: true`: the agents answer in free text, equivalent answers are clustered (numbers within `tolerance`), and the heaviest cluster's answer is adopted when it holds enough of the weight. `commit_seconds` seals the answers: commitments first, reveals after (not for a hierarchy). With method \"stake\" it needs endorsements from more than two thirds of the whole electorate's stake; `committee` lets that many members drawn by stake decide a low-stakes vote or stake proposal. With method \"hierarchy\" (a domain with a hierarchy; you are one of its workers) the supervisors evaluate it, the executive decides, and workers may object with a challenge response before the decision is final. If the space asks proof of work of agents without a track record in the domain, the stamp is minted for you (a fraction of a second). Returns the proposal id."
    )]
    async fn propose(
        &self,
        Parameters(args): Parameters<ProposeArgs>,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        Self::answer(
            async {
                let key = self.key(&context)?;
                let minutes = u64::from(args.deadline_minutes.unwrap_or(60).max(1));
                let mut action = json!({"kind": args.kind, "summary": args.summary});
                if let Some(payload) = args.payload {
                    action["payload"] = payload;
                }
                let open = args.open.unwrap_or(false);
                let confidence = match (&args.confidence, &args.options) {
                    (Some(c), _) => c.text(),
                    // A question records a confidence but does not use it.
                    (None, Some(_)) => "1".to_string(),
                    (None, None) if open => "1".to_string(),
                    (None, None) => {
                        return Err(failure(
                            "malformed",
                            "give `confidence` (0 to 1), or `options` to ask a question",
                        ));
                    }
                };
                let mut body = json!({"domain": args.domain, "action": action,
                                  "confidence": confidence, "stakes": args.stakes});
                if let Some(options) = &args.options {
                    body["method"] = json!("belief");
                    body["options"] = json!(options);
                }
                if open {
                    body["method"] = json!("open");
                    if let Some(t) = &args.tolerance {
                        body["open"] = json!({"tolerance": t});
                    }
                }
                if let Some(d) = &args.distribution {
                    body["distribution"] = distribution_json(d);
                }
                if let Some(method) = &args.method {
                    if open || args.options.is_some() {
                        return Err(failure(
                            "malformed",
                            "`open` and `options` choose the method: leave out `method`",
                        ));
                    }
                    body["method"] = json!(method);
                }
                if let Some(k) = args.committee {
                    body["committee"] = json!(k);
                }
                if let Some(s) = args.commit_seconds {
                    body["sealed"] = json!({"commit_in_ms": u64::from(s) * 1_000});
                }
                let path = "/v1/proposals".to_string();
                self.send(
                    key,
                    path,
                    MessageType::Proposal,
                    body,
                    Some(minutes * 60_000),
                )
                .await
            }
            .await,
        )
    }

    #[tool(description = RESPOND_DESCRIPTION)]
    async fn respond(
        &self,
        Parameters(args): Parameters<RespondArgs>,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        Self::answer(
            async {
                let key = self.key(&context)?;
                check_id(&args.proposal_id)?;
                let path = format!("/v1/proposals/{}/responses", args.proposal_id);
                let mut body = match (&args.stance, &args.confidence, &args.distribution) {
                    (None, Some(c), None) if args.answer.is_some() => json!({"proposal": args.proposal_id,
                                  "answer": args.answer, "confidence": c.text(), "reasoning": args.reasoning}),
                    (Some(stance), Some(c), None) => json!({"proposal": args.proposal_id, "stance": stance,
                                  "confidence": c.text(), "reasoning": args.reasoning}),
                    (None, None, Some(d)) => json!({"proposal": args.proposal_id,
                                  "distribution": distribution_json(d), "reasoning": args.reasoning}),
                    _ => {
                        return Err(failure(
                            "malformed",
                            "give `stance` and `confidence`, or (for a question with options) `distribution`, or (for an open question) `answer` and `confidence`",
                        ));
                    }
                };
                let id = args.proposal_id.clone();
                let phase = self
                    .call(move |api| {
                        let p = api.get(&format!("/v1/proposals/{id}"))?;
                        Ok(p["sealed"]["phase"].as_str().map(str::to_string))
                    })
                    .await?;
                let slot = (key.id().to_string(), args.proposal_id.clone());
                match phase.as_deref() {
                    Some("commit") => self.commit(key, path, body, args.salt, slot).await,
                    Some(_) => {
                        let remembered = self.salts.lock().expect("salts").get(&slot).cloned();
                        let salt = args.salt.or(remembered).ok_or_else(|| {
                            failure(
                                "malformed",
                                "this sealed proposal is in its reveal phase: give the `salt` you committed with, and the same answer",
                            )
                        })?;
                        body["salt"] = json!(salt);
                        self.send(key, path, MessageType::Response, body, None).await
                    }
                    None => {
                        if let Some(salt) = args.salt {
                            body["salt"] = json!(salt);
                        }
                        self.send(key, path, MessageType::Response, body, None).await
                    }
                }
            }
            .await,
        )
    }

    #[tool(
        description = "As the executive of a domain's hierarchy: approve or reject a worker's proposal (method \"hierarchy\") once every supervisor has responded. The decision becomes final only when the objection window closes; if more than half of the workers object (a challenge response) it goes to human reviewers."
    )]
    async fn decide_as_executive(
        &self,
        Parameters(args): Parameters<ExecutiveArgs>,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        Self::answer(
            async {
                let key = self.key(&context)?;
                check_id(&args.proposal_id)?;
                let path = format!("/v1/escalations/{}/decisions", args.proposal_id);
                let body = json!({"proposal": args.proposal_id, "decision": args.decision, "note": args.note});
                self.send(key, path, MessageType::Decision, body, None).await
            }
            .await,
        )
    }

    #[tool(
        description = "Who may propose in the current round in a domain, where the space draws one proposer per round by stake (a verifiable lottery seeded from the log): the round, its anchor entry hash, the seed, the candidates with their stakes and the drawn agent. enabled is false when anyone may propose.",
        annotations(read_only_hint = true)
    )]
    async fn who_may_propose(
        &self,
        Parameters(args): Parameters<DomainArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        Self::answer(
            async {
                synod_core::domain::Domain::parse(&args.domain)
                    .map_err(|e| failure("malformed", &e.0))?;
                let domain = args.domain;
                self.call(move |api| api.get(&format!("/v1/lottery/proposer?domain={domain}")))
                    .await
            }
            .await,
        )
    }

    #[tool(
        description = "A proposal's status in a few words: open (with the live tally and the current leaning, which is not final), approved, rejected, escalated (waiting for a human), approved_by_human, rejected_by_human, expired or superseded; and its outcome once reported.",
        annotations(read_only_hint = true)
    )]
    async fn check_status(
        &self,
        Parameters(args): Parameters<ProposalArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        Self::answer(
            async {
                check_id(&args.proposal_id)?;
                let id = args.proposal_id;
                self.call(move |api| {
                    let p = api.get(&format!("/v1/proposals/{id}"))?;
                    let mut out = json!({"id": p["id"], "status": p["status"], "reason": p["reason"], "tally": p["tally"],
                              "leaning": p["leaning"], "responses": p["responses"].as_array().map_or(0, Vec::len),
                              "outcome": p["outcome"]});
                    if p["sealed"].is_object() {
                        out["sealed"] = p["sealed"].clone();
                    }
                    if p["method"] == "open" {
                        out["clusters"] = p["clusters"].clone();
                        out["choice"] = p["choice"].clone();
                    }
                    if p["method"] == "belief" {
                        out["options"] = p["options"].clone();
                        out["pool"] = p["pool"].clone();
                        out["choice"] = p["choice"].clone();
                    }
                    Ok(out)
                })
                .await
            }
            .await,
        )
    }

    #[tool(
        description = "Report how a decided proposal turned out in reality: result \"success\" or \"failure\", or a score from 0 to 1; for a question, the `option` that turned out right. Outcomes move every responder's trust: those who were confidently right gain influence, those confidently wrong lose it. Report only what you observed; the report is signed and audited."
    )]
    async fn report_outcome(
        &self,
        Parameters(args): Parameters<OutcomeArgs>,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        Self::answer(
            async {
                let key = self.key(&context)?;
                check_id(&args.proposal_id)?;
                let mut body = json!({"proposal": args.proposal_id});
                match (args.result, args.score, args.option) {
                    (None, None, None) if args.answer.is_some() => body["answer"] = json!(args.answer),
                    _ if args.answer.is_some() => {
                        return Err(failure(
                            "malformed",
                            "an open question's outcome is an `answer` alone",
                        ));
                    }
                    (Some(r), None, None) => body["result"] = json!(r),
                    (None, Some(s), None) => body["score"] = json!(s.text()),
                    (None, None, Some(o)) => body["option"] = json!(o),
                    _ => {
                        return Err(failure(
                            "malformed",
                            "give exactly one of `result` (\"success\" or \"failure\"), `score` (0 to 1) and, for a question, `option`",
                        ));
                    }
                }
                let path = format!("/v1/proposals/{}/outcome", args.proposal_id);
                self.send(key, path, MessageType::Outcome, body, None).await
            }
            .await,
        )
    }
}

/// The open proposals in `domain`, or in every pattern `did` has authority
/// in, asking the node per pattern (it filters and pages) so that open
/// proposals elsewhere never crowd these out of a page.
fn open_proposals(api: &dyn Api, did: &str, domain: Option<String>) -> Result<Value, Failure> {
    let mine = own_record(api, did)?
        .map(|r| authority_patterns(&r))
        .unwrap_or_default();
    let patterns: Vec<String> = match domain {
        Some(d) => vec![d],
        None => mine.iter().map(|m| m.to_string()).collect(),
    };
    let mut found: std::collections::BTreeMap<u64, Value> = Default::default();
    let mut more = false;
    for pattern in &patterns {
        let mut after: Option<u64> = None;
        loop {
            let mut path = format!("/v1/proposals?status=open&limit={LIST_PAGE}&domain={pattern}");
            if let Some(a) = after {
                path.push_str(&format!("&after={a}"));
            }
            let page = api.get(&path)?;
            let items = page["proposals"].as_array().cloned().unwrap_or_default();
            for p in &items {
                if let Some(i) = p["entered_index"].as_u64() {
                    found.insert(i, p.clone());
                }
            }
            after = items.last().and_then(|p| p["entered_index"].as_u64());
            if page["more"] != true || after.is_none() {
                break;
            }
            if found.len() >= LIST_MAX {
                more = true;
                break;
            }
        }
    }
    let proposals: Vec<Value> = found.into_values().take(LIST_MAX).collect();
    Ok(json!({"proposals": proposals, "more": more,
              "your_domains": mine.iter().map(|m| m.to_string()).collect::<Vec<_>>()}))
}

const RESPOND_DESCRIPTION: &str = concat!(
    "Answer a proposal in your domain: endorse (the action is right), challenge (it is wrong) or abstain. ",
    "Abstain when the question is outside what you can judge or you lack the information: an abstention is counted ",
    "as taking part but weighs nothing, and it costs no trust. Confidence is the probability, from 0 to 1, that your ",
    "stance is right; it is scored against the real outcome, so state what you believe, not what would sway the vote ",
    "(confidence beyond 0.8 adds no weight, and a confidence below 0.5 counts against your own stance). ",
    "Your reasoning is kept in the audit log and shown to the humans who review escalations: give the evidence. ",
    "A question (a proposal with `options`) takes a `distribution` instead: your probability for each option, ",
    "summing to 1; it is scored against the option that turns out right, so give your real belief, and avoid 0 ",
    "unless you are sure (a 0 counts as 0.01 in the pool). ",
    "As a worker of a domain's hierarchy, a challenge of a hierarchy proposal the executive has decided is an objection; ",
    "more than half of the workers objecting sends the decision to humans. ",
    "An open question (method \"open\") takes an `answer` in free text with `confidence`, your probability that it is ",
    "right; answers that mean the same are clustered (case and spacing do not matter; numbers within the tolerance are one answer). ",
    "A sealed proposal (`sealed` in read_proposal) is answered twice with the same answer: during its commit phase ",
    "respond sends only a commitment and returns a salt; after the commit deadline, respond again with the same ",
    "answer and reasoning (and the salt) to reveal it. An answer never revealed counts as an abstention. ",
    "You can answer each proposal once; the answer is final."
);

#[tool_handler(
    name = "synod",
    instructions = "synod lets several agents decide together whether an action should be taken. An agent proposes an action in a domain (e.g. credit.loans); the agents with authority in that domain endorse, challenge or abstain, each with a confidence; synod weighs each answer by authority, confidence (as log-odds evidence) and earned trust, and approves, rejects, or escalates to a human. Trust moves with real outcomes: being confidently wrong costs influence. Start with `whoami`, then `list_open_proposals` to see what awaits your judgement, `read_proposal` before you answer, and `respond`. Everything you send is signed with your agent key and kept in the audit log."
)]
impl ServerHandler for Synod {}

/// Serves one session over standard input and output until the client
/// closes it.
pub async fn serve_stdio(server: Synod) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let running = server.serve(rmcp::transport::stdio()).await?;
    running.waiting().await?;
    Ok(())
}

/// The streamable HTTP endpoint (mounted at `/mcp` by `synod serve`): each
/// session's key comes from its requests' bearer token. rmcp's own `Host`
/// check is off: the node's router checks `Host` for every route, this one
/// included, against the node's configured names.
pub fn http_service(api: Arc<dyn Api>) -> StreamableHttpService<Synod, LocalSessionManager> {
    let config = StreamableHttpServerConfig::default().disable_allowed_hosts();
    StreamableHttpService::new(
        move || Ok(Synod::with_bearer_tokens(api.clone())),
        LocalSessionManager::default().into(),
        config,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use synod_core::domain::Domain;

    #[test]
    fn numbers_become_decimal_text() {
        assert_eq!(Decimal::Number(0.85).text(), "0.85");
        assert_eq!(Decimal::Number(1.0).text(), "1");
        assert_eq!(Decimal::Number(0.0).text(), "0");
        assert_eq!(Decimal::Number(0.1234567).text(), "0.123457");
        assert_eq!(Decimal::Text("0.70".into()).text(), "0.70");
    }

    #[test]
    fn a_token_always_names_the_same_agent_and_only_real_tokens_name_one() {
        let one = format!("{AGENT_TOKEN_PREFIX}{}", "ab".repeat(32));
        let two = format!("{AGENT_TOKEN_PREFIX}{}", "cd".repeat(32));
        let a = token_keypair(&one).unwrap();
        assert_eq!(a.id(), token_keypair(&one).unwrap().id());
        assert_ne!(a.id(), token_keypair(&two).unwrap().id());
        for bad in [
            "",
            "test",
            "synod_at_",
            &one[..one.len() - 1],
            &one.to_uppercase(),
            &format!(" {one}"),
        ] {
            assert!(token_keypair(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn authority_comes_from_grants_when_there_are_any() {
        let record = json!({"granted_authorities": {"credit.*": "0.9"}, "declared_authorities": {"fraud": "1"}});
        let p = authority_patterns(&record);
        assert_eq!(p.len(), 1);
        assert!(p[0].matches(&Domain::parse("credit.loans").unwrap()));
        let record = json!({"granted_authorities": {}, "declared_authorities": {"fraud": "1"}});
        assert!(authority_patterns(&record)[0].matches(&Domain::parse("fraud").unwrap()));
    }
}
