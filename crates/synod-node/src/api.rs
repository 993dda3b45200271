//! The HTTP API under `/v1`, plus `/healthz`, `/metrics` and
//! `/openapi.json`. Requests carry the signed messages of `docs/PROTOCOL.md`;
//! every refusal comes back as `{"error": kind, "message": …}`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use synod_core::message::{Body as MessageBody, Role};
use synod_core::package::DecisionPackage;
use synod_core::space::{ProposalRecord, Space, Status};
use synod_core::wire::{Digest, MAX_MESSAGE_BYTES, MessageType, Prepared, SignedMessage, Verified};
use synod_core::{AgentId, ErrorKind, Rejection};

use crate::{Node, SubmitError, keys, now_ms};

/// Most items one list request returns.
pub const MAX_PAGE: usize = 500;
/// An over-limit body up to this size is read and discarded before the 413,
/// so that a client still sending it can read the answer.
pub const MAX_DRAINED_BYTES: usize = 4 * 1024 * 1024;

/// An API error: an HTTP status and the JSON body `{"error", "message"}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    kind: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            kind,
            message: message.into(),
        }
    }

    /// The error kind's wire name.
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// The explanation.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }
}

/// The HTTP status of each protocol error kind.
pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::Malformed | ErrorKind::WrongSpace => StatusCode::BAD_REQUEST,
        ErrorKind::BadSignature => StatusCode::UNAUTHORIZED,
        ErrorKind::UnknownAgent | ErrorKind::NotEligible | ErrorKind::WrongRole => {
            StatusCode::FORBIDDEN
        }
        ErrorKind::UnknownProposal => StatusCode::NOT_FOUND,
        ErrorKind::Duplicate
        | ErrorKind::ProposalClosed
        | ErrorKind::InvalidState
        | ErrorKind::WrongPhase => StatusCode::CONFLICT,
        ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorKind::OutOfRange
        | ErrorKind::PolicyViolation
        | ErrorKind::InsufficientWork
        | ErrorKind::BadReveal
        | ErrorKind::BadDeadline
        | ErrorKind::ClockSkew => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

impl From<Rejection> for ApiError {
    fn from(r: Rejection) -> ApiError {
        ApiError::new(status_of(r.kind), r.kind.as_str(), r.message)
    }
}

impl From<SubmitError> for ApiError {
    fn from(e: SubmitError) -> ApiError {
        match e {
            SubmitError::Rejected(r) => r.into(),
            SubmitError::Unavailable(why) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", why)
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": self.kind, "message": self.message});
        (self.status, axum::Json(body)).into_response()
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// Query parameters, refused as JSON `malformed` (not axum's plain text)
/// when they do not parse or name an unknown parameter.
pub(crate) struct Q<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Q<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Q<T>, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| Q(value))
            .map_err(|e| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "malformed",
                    format!("query: {}", e.body_text()),
                )
            })
    }
}

/// The whole router: API, events, inbox pages, metrics.
pub fn router(node: Arc<Node>) -> Router {
    router_with(node, Router::new())
}

/// [`router`] with `extra` routes (e.g. the MCP endpoint) merged in, behind
/// the same `Host` check and fallbacks.
pub fn router_with(node: Arc<Node>, extra: Router<Arc<Node>>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .route("/v1/space", get(space_info))
        .route("/v1/agents", post(register).get(list_agents))
        .route("/v1/agents/{id}", get(get_agent))
        .route("/v1/config", post(configure))
        .route("/v1/proposals", post(propose).get(list_proposals))
        .route("/v1/proposals/{id}", get(get_proposal))
        .route("/v1/proposals/{id}/responses", post(respond))
        .route("/v1/proposals/{id}/outcome", post(outcome))
        .route("/v1/escalations", get(list_escalations))
        .route("/v1/lottery/proposer", get(round_proposer))
        .route("/v1/escalations/{id}/decisions", post(decide))
        .route("/v1/events", get(crate::events::stream))
        .route("/v1/log", get(export_log))
        .route("/v1/cluster", get(crate::cluster::status))
        .route("/.well-known/agent-card.json", get(crate::card::serve))
        .merge(crate::inbox::routes())
        .merge(extra)
        .layer(axum::middleware::from_fn_with_state(
            node.clone(),
            crate::cluster::consistent_reads,
        ))
        .layer(axum::middleware::from_fn_with_state(
            node.clone(),
            check_host,
        ))
        // Peers name each other by whatever address the membership holds;
        // their requests are authenticated by MAC, so the `Host` check
        // (which guards browsers) does not apply to them.
        .merge(crate::cluster::peer_routes())
        .fallback(|| async { ApiError::not_found("no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take that method",
            )
        })
        .with_state(node)
}

/// Refuses a request whose `Host` is not this node (DNS rebinding).
async fn check_host(
    State(node): State<Arc<Node>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok());
    if node.host_allowed(host) {
        next.run(request).await
    } else {
        ApiError::new(
            StatusCode::MISDIRECTED_REQUEST,
            "wrong_host",
            "this node does not serve that host name; start it with --allowed-host NAME",
        )
        .into_response()
    }
}

/// Reads a request body of at most [`MAX_MESSAGE_BYTES`].
async fn limited_body(headers: &HeaderMap, body: Body) -> ApiResult<Bytes> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("the body is larger than {MAX_MESSAGE_BYTES} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_MESSAGE_BYTES) {
        if declared.is_some_and(|n| n <= MAX_DRAINED_BYTES) {
            let _ = axum::body::to_bytes(body, MAX_DRAINED_BYTES).await;
        }
        return Err(too_large());
    }
    axum::body::to_bytes(body, MAX_MESSAGE_BYTES)
        .await
        .map_err(|_| too_large())
}

/// Parses a signed message of type `expected` and decodes its signature;
/// the sequencer checks the signature, in a batch with others.
async fn signed(
    node: &Node,
    headers: &HeaderMap,
    body: Body,
    expected: MessageType,
) -> ApiResult<Prepared> {
    let bytes = limited_body(headers, body).await?;
    let result = SignedMessage::parse_cached(&bytes, node.keys()).and_then(|m| {
        if m.kind() != expected {
            return Err(Rejection::new(
                ErrorKind::Malformed,
                format!(
                    "this endpoint takes a {} message, not a {}",
                    expected.as_str(),
                    m.kind().as_str()
                ),
            ));
        }
        m.prepare()
    });
    result.map_err(|r| {
        node.metrics().rejected(r.kind);
        ApiError::from(r)
    })
}

fn parse_id(text: &str) -> ApiResult<Digest> {
    Digest::from_hex(text).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed",
            "a proposal id is 64 lowercase hex characters",
        )
    })
}

fn receipt_json(receipt: &crate::Receipt) -> Value {
    json!({"index": receipt.index, "time": receipt.time, "effects": receipt.effects})
}

/// The proposal's status and tally right after a receipt's entry, read from
/// its effects so that answering takes no lock on the state. `None` when the
/// entry did not touch the proposal's status.
fn status_after(receipt: &crate::Receipt, id: &Digest) -> (Option<Status>, Option<Value>) {
    use synod_core::space::Effect;
    let mut status = None;
    let mut tally = None;
    for effect in &receipt.effects {
        match effect {
            Effect::ProposalOpened { proposal, .. } if proposal == id => {
                status = Some(Status::Open)
            }
            Effect::ResponseCounted {
                proposal, tally: t, ..
            } if proposal == id => {
                status = status.or(Some(Status::Open));
                tally = Some(json!(t));
            }
            Effect::ProposalClosed {
                proposal,
                status: s,
                tally: t,
                ..
            } if proposal == id => {
                status = Some(*s);
                tally = Some(json!(t));
            }
            Effect::HumanResolved {
                proposal,
                status: s,
                ..
            } if proposal == id => status = Some(*s),
            // A hierarchy's executive decision and objections leave the
            // proposal open until its window closes (PROTOCOL.md §21).
            Effect::ExecutiveDecided { proposal, .. }
            | Effect::ObjectionRecorded { proposal, .. }
                if proposal == id =>
            {
                status = status.or(Some(Status::Open))
            }
            _ => {}
        }
    }
    (status, tally)
}

async fn healthz(State(node): State<Arc<Node>>) -> Response {
    match node.fatal() {
        None => (
            StatusCode::OK,
            axum::Json(json!({"status": "ok", "durable_next": node.durable_next()})),
        )
            .into_response(),
        Some(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"status": "failed", "reason": why})),
        )
            .into_response(),
    }
}

async fn metrics(State(node): State<Arc<Node>>) -> Response {
    let mut text = node.read(|s| node.metrics().render(s, node.queued()));
    text.push_str(&format!(
        "# HELP synod_recovery_replayed_entries Log entries replayed after the latest snapshot when the node opened.\n# TYPE synod_recovery_replayed_entries gauge\nsynod_recovery_replayed_entries {}\n",
        node.replayed_at_open()
    ));
    if let Some(cluster) = node.cluster() {
        text.push_str(&cluster.metrics_text());
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

async fn openapi() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        include_str!("openapi.json"),
    )
        .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SpaceQuery {
    /// Also compute the state hash (costs time in proportion to the state).
    #[serde(default)]
    state_hash: bool,
}

async fn space_info(State(node): State<Arc<Node>>, Q(q): Q<SpaceQuery>) -> axum::Json<Value> {
    axum::Json(node.read(|s| {
        let mut out = json!({
            "space": s.id(),
            "config": s.config(),
            "config_seq": s.config_seq(),
            "head": {"next_index": s.head().next_index, "last_hash": s.head().last_hash, "last_time": s.head().last_time},
            "time": now_ms(),
            "agents": s.agents().len(),
            "proposals": s.proposals().len(),
        });
        if q.state_hash {
            out["state_hash"] = json!(s.state_hash());
        }
        out
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProposerQuery {
    domain: String,
}

/// Who may propose in the current round in a domain (PROTOCOL.md §20.4):
/// the round, its anchor, the seed, the candidates with their stakes and
/// the drawn agent, so that anyone with the log can redo the draw.
async fn round_proposer(
    State(node): State<Arc<Node>>,
    Q(q): Q<ProposerQuery>,
) -> ApiResult<axum::Json<Value>> {
    let domain = synod_core::domain::Domain::parse(&q.domain)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "malformed", e.0))?;
    Ok(axum::Json(node.read(|s| {
        let round_ms = s.config().proposer_round_ms;
        match s.round_proposer(&domain, now_ms()) {
            None => json!({"domain": domain, "enabled": false, "round_ms": 0}),
            Some(d) => json!({
                "domain": domain,
                "enabled": true,
                "round_ms": round_ms,
                "round": d.round,
                "starts": d.round.saturating_mul(round_ms),
                "ends": d.round.saturating_add(1).saturating_mul(round_ms),
                "anchor": d.anchor,
                "seed": d.seed,
                "candidates": d.candidates.iter().map(|(agent, stake)| json!({
                    "agent": agent,
                    "stake": synod_core::fixed::format_scaled(*stake, 12),
                })).collect::<Vec<_>>(),
                "proposer": d.proposer,
            }),
        }
    })))
}

async fn register(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let message = signed(&node, &headers, body, MessageType::Registration).await?;
    let agent = message.signer().clone();
    let receipt = node.submit(message).await?;
    let mut out = receipt_json(&receipt);
    out["agent"] = json!(agent);
    Ok((StatusCode::OK, axum::Json(out)).into_response())
}

async fn configure(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let message = signed(&node, &headers, body, MessageType::Configuration).await?;
    let receipt = node.submit(message).await?;
    Ok((StatusCode::OK, axum::Json(receipt_json(&receipt))).into_response())
}

async fn propose(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let message = signed(&node, &headers, body, MessageType::Proposal).await?;
    let id = message.id();
    let receipt = node.submit(message).await?;
    let mut out = receipt_json(&receipt);
    out["id"] = json!(id);
    out["status"] = json!(status_after(&receipt, &id).0);
    Ok((StatusCode::CREATED, axum::Json(out)).into_response())
}

/// Refuses a message whose `proposal` is not the one in the path. The full
/// body is checked by the sequencer; this only compares the field.
fn check_path_matches(message: &SignedMessage, id: &Digest) -> ApiResult<()> {
    let named = message.body().get("proposal").and_then(Value::as_str);
    if named.and_then(Digest::from_hex) != Some(*id) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed",
            "the message's proposal is not the one in the path",
        ));
    }
    Ok(())
}

/// Reads, verifies and submits a message of `kind` about the proposal in the
/// path.
async fn submit_about(
    node: &Node,
    id: &str,
    headers: &HeaderMap,
    body: Body,
    kind: MessageType,
) -> ApiResult<(Digest, crate::Receipt)> {
    let id = parse_id(id)?;
    let message = signed(node, headers, body, kind).await?;
    check_path_matches(&message, &id)?;
    Ok((id, node.submit(message).await?))
}

async fn respond(
    State(node): State<Arc<Node>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let (id, receipt) = submit_about(&node, &id, &headers, body, MessageType::Response).await?;
    let (status, tally) = status_after(&receipt, &id);
    let mut out = receipt_json(&receipt);
    out["status"] = json!(status);
    out["tally"] = json!(tally);
    Ok((StatusCode::OK, axum::Json(out)).into_response())
}

async fn outcome(
    State(node): State<Arc<Node>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let (_, receipt) = submit_about(&node, &id, &headers, body, MessageType::Outcome).await?;
    Ok((StatusCode::OK, axum::Json(receipt_json(&receipt))).into_response())
}

/// A reviewer's decision as the inbox and token holders send it: the
/// reviewer's identity comes from the token, never from this body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenDecision {
    decision: synod_core::message::HumanVerdict,
    /// The option a belief proposal's approval adopts.
    #[serde(default)]
    option: Option<String>,
    /// The answer an open question's approval adopts (§19).
    #[serde(default)]
    answer: Option<String>,
    #[serde(default)]
    note: String,
}

/// The reviewer key a bearer token stands for, checked against the space.
pub(crate) fn reviewer_from_token(node: &Node, token: &str) -> ApiResult<synod_core::Keypair> {
    let key =
        keys::reviewer_key(token).map_err(|_| ApiError::unauthorized("not a reviewer token"))?;
    let is_reviewer = node.read(|s| {
        s.agent(key.id())
            .is_some_and(|a| s.roles(a).contains(&Role::Reviewer))
    });
    if !is_reviewer {
        return Err(ApiError::unauthorized(
            "this token's reviewer is not registered or has lost the reviewer role",
        ));
    }
    Ok(key)
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

/// Signs and submits a decision for the reviewer `key`.
pub(crate) async fn decide_as(
    node: &Node,
    key: &synod_core::Keypair,
    id: Digest,
    decision: synod_core::message::HumanVerdict,
    option: Option<&str>,
    note: &str,
) -> ApiResult<crate::Receipt> {
    let (space, open) = node.read(|s| {
        let open = s
            .proposal(&id)
            .is_some_and(|p| p.method == synod_core::message::Method::Open);
        (s.id().to_string(), open)
    });
    let mut body = json!({"space": space, "created_at": now_ms(), "proposal": id, "decision": decision, "note": note});
    // `option` is a belief proposal's option, or an open question's answer.
    if let Some(option) = option {
        body[if open { "answer" } else { "option" }] = json!(option);
    }
    let message = Verified::sign(MessageType::Decision, body, key);
    // A note that breaks a limit is refused like any other message.
    MessageBody::decode(&message)?;
    Ok(node.submit(message).await?)
}

async fn decide(
    State(node): State<Arc<Node>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    let receipt = match bearer(&headers) {
        Some(token) => {
            let key = reviewer_from_token(&node, token)?;
            let bytes = limited_body(&headers, body).await?;
            let request: TokenDecision = serde_json::from_slice(&bytes).map_err(|e| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "malformed",
                    format!("decision: {e}"),
                )
            })?;
            let option = request.option.as_deref().or(request.answer.as_deref());
            decide_as(&node, &key, id, request.decision, option, &request.note).await?
        }
        None => {
            let message = signed(&node, &headers, body, MessageType::Decision).await?;
            check_path_matches(&message, &id)?;
            node.submit(message).await?
        }
    };
    // A decision that does not resolve leaves the proposal escalated.
    let status = status_after(&receipt, &id).0.unwrap_or(Status::Escalated);
    let mut out = receipt_json(&receipt);
    out["status"] = json!(status);
    Ok((StatusCode::OK, axum::Json(out)).into_response())
}

pub(crate) fn agent_json(space: &Space, agent: &synod_core::space::Agent, detail: bool) -> Value {
    let roles: Vec<Role> = space.roles(agent).into_iter().collect();
    let mut out = json!({
        "id": agent.id,
        "name": agent.name,
        "vendor": agent.vendor,
        "model": agent.model,
        "registered": agent.seq > 0,
        "seq": agent.seq,
        "roles": roles,
        "declared_authorities": agent.declared,
        "granted_authorities": agent.granted,
        "responses": agent.responses,
        "outcomes": agent.outcomes,
    });
    if detail {
        out["trust"] = json!(agent.trust);
        out["trust_prior"] = json!(space.trust_prior(agent));
    }
    out
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Page {
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    after: Option<usize>,
}

async fn list_agents(State(node): State<Arc<Node>>, Q(page): Q<Page>) -> axum::Json<Value> {
    let limit = page.limit.unwrap_or(100).min(MAX_PAGE);
    let after = page.after.unwrap_or(0);
    axum::Json(node.read(|s| {
        let agents: Vec<Value> = s
            .agents()
            .iter()
            .skip(after)
            .take(limit)
            .map(|a| agent_json(s, a, false))
            .collect();
        json!({"agents": agents, "total": s.agents().len()})
    }))
}

async fn get_agent(
    State(node): State<Arc<Node>>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    let agent_id = AgentId::parse(&id)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "malformed", e.to_string()))?;
    let mut out = node
        .read(|s| s.agent(&agent_id).map(|a| agent_json(s, a, true)))
        .ok_or_else(|| ApiError::not_found(format!("no agent {id}")))?;
    let history: Vec<Value> = node
        .trust_history(&id)
        .into_iter()
        .map(|p| json!({"time": p.time, "index": p.index, "domain": p.domain, "trust": p.trust}))
        .collect();
    out["trust_history"] = json!(history);
    Ok(axum::Json(out))
}

/// The summary of a proposal in lists.
pub(crate) fn proposal_summary(space: &Space, p: &ProposalRecord) -> Value {
    let body = p.body();
    let mut out = json!({
        "id": p.id,
        "status": p.status,
        "domain": p.domain,
        "stakes": p.stakes,
        "proposer": space.agent_at(p.proposer).id,
        "kind": body.action.kind,
        "summary": body.action.summary,
        "deadline": p.deadline,
        "entered_index": p.entered_index,
        "tally": p.tally_decimal(),
        "reason": p.closure.and_then(|c| c.verdict.reason()),
        "method": p.method,
    });
    if let Some(k) = p.committee {
        out["committee"] = json!(k);
    }
    if p.method == synod_core::message::Method::Belief {
        out["options"] = json!(p.options);
        out["pool"] = json!(p.pool_report());
        out["choice"] = json!(p.choice.map(|c| p.option_label(c)));
    }
    if let Some(s) = &p.sealed {
        out["sealed"] = sealed_json(space, s);
    }
    if let Some(open) = &p.open {
        out["clusters"] = json!(p.clusters());
        out["choice"] = json!(open.choice);
    }
    out
}

/// A sealed proposal's phase and who committed (§18): never a stance.
fn sealed_json(space: &Space, s: &synod_core::sealed::SealedState) -> Value {
    let commits = s.in_log_order();
    let ids = |unrevealed: bool| -> Vec<&AgentId> {
        commits
            .iter()
            .filter(|c| !unrevealed || !c.revealed)
            .map(|c| &space.agent_at(c.agent).id)
            .collect()
    };
    json!({"commit_deadline": s.commit_deadline, "phase": s.phase(),
           "committed": ids(false), "unrevealed": ids(true)})
}

/// A proposal with everything about it.
pub(crate) fn proposal_detail(space: &Space, p: &ProposalRecord) -> Value {
    let mut out = proposal_summary(space, p);
    let responses: Vec<Value> = p
        .responses
        .iter()
        .map(|r| {
            let agent = space.agent_at(r.agent);
            let mut out = json!({"agent": agent.id, "name": agent.name, "stance": r.stance, "confidence": r.confidence,
                   "reasoning": r.reasoning, "index": r.index});
            if let Some(d) = &r.distribution {
                out["distribution"] = distribution_json(p, d);
            }
            if let Some(a) = &r.answer {
                out["answer"] = json!(a);
            }
            out
        })
        .collect();
    out["message"] = p.message.to_value();
    out["action"] = json!(p.body().action);
    out["confidence"] = json!(p.confidence);
    out["policy"] = json!(p.policy);
    out["entered_time"] = json!(p.entered_time);
    out["electorate"] = json!({"members": p.electorate.len(), "pending": p.pending});
    out["responses"] = json!(responses);
    out["closure"] = json!(p.closure);
    out["supersedes"] = json!(p.supersedes);
    out["superseded_by"] = json!(p.superseded_by);
    out["outcome"] = json!(p.outcome.as_ref().map(|o| {
        let mut out = json!({"reporter": space.agent_at(o.reporter).id, "index": o.index});
        // A vote's outcome is a score, a belief proposal's the right option.
        match (o.score, o.option) {
            (Some(score), _) => out["score"] = json!(score),
            (None, Some(i)) => out["option"] = json!(p.option_label(i)),
            (None, None) => out["answer"] = json!(o.answer),
        }
        out
    }));
    if let Some(d) = &p.proposer_distribution {
        out["distribution"] = distribution_json(p, d);
    }
    if let Some(h) = p.hierarchy.as_deref() {
        // The executive's decision and the objections (PROTOCOL.md §21).
        out["hierarchy"] = json!({
            "workers": h.workers,
            "executive": h.executive,
            "objection_window_ms": h.objection_window_ms,
            "decision": h.decision.as_ref().map(|d| json!({
                "decision": d.decision, "note": d.note, "index": d.index,
                "objections_until": d.objections_until,
            })),
            "objections": h.objections.iter().map(|o| json!({
                "worker": o.worker, "reasoning": o.reasoning, "index": o.index,
            })).collect::<Vec<_>>(),
        });
    }
    if p.status == Status::Open {
        // What the rule would say if the proposal closed now: not a decision.
        out["leaning"] = json!({"verdict": p.verdict().0, "final": false});
    }
    if matches!(
        p.status,
        Status::Escalated | Status::ApprovedByHuman | Status::RejectedByHuman
    ) {
        out["package"] = json!(DecisionPackage::build(space, p));
    }
    out
}

/// A distribution in millionths, in option order, as `{option: decimal}`.
fn distribution_json(p: &ProposalRecord, d: &[u32]) -> Value {
    let map: BTreeMap<&str, synod_core::fixed::Probability> = p
        .options
        .iter()
        .zip(d)
        .map(|(o, &m)| (o.as_str(), synod_core::fixed::Probability::from_micros(m)))
        .collect();
    json!(map)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProposalFilter {
    #[serde(default)]
    status: Option<Status>,
    #[serde(default)]
    domain: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
    /// Only proposals that entered the log after this index.
    #[serde(default)]
    after: Option<u64>,
}

async fn list_proposals(
    State(node): State<Arc<Node>>,
    Q(filter): Q<ProposalFilter>,
) -> ApiResult<axum::Json<Value>> {
    let pattern = filter
        .domain
        .as_deref()
        .map(synod_core::domain::DomainPattern::parse)
        .transpose()
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "malformed", e.to_string()))?;
    let limit = filter.limit.unwrap_or(100).min(MAX_PAGE);
    Ok(axum::Json(node.read(|s| {
        let mut matching: Vec<&ProposalRecord> = s
            .proposals()
            .values()
            .filter(|p| filter.status.is_none_or(|st| p.status == st))
            .filter(|p| pattern.as_ref().is_none_or(|pat| pat.matches(&p.domain)))
            .filter(|p| filter.after.is_none_or(|a| p.entered_index > a))
            .collect();
        matching.sort_by_key(|p| p.entered_index);
        let items: Vec<Value> = matching
            .iter()
            .take(limit)
            .map(|p| proposal_summary(s, p))
            .collect();
        json!({"proposals": items, "more": matching.len() > limit})
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProposalView {
    /// Also say where this agent stands: in the electorate or not, with
    /// what influence, answered or not.
    #[serde(default)]
    agent: Option<String>,
}

async fn get_proposal(
    State(node): State<Arc<Node>>,
    Path(id): Path<String>,
    Q(view): Q<ProposalView>,
) -> ApiResult<axum::Json<Value>> {
    let id = parse_id(&id)?;
    let agent = view
        .agent
        .as_deref()
        .map(AgentId::parse)
        .transpose()
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "malformed", format!("agent: {e}")))?;
    node.read(|s| {
        s.proposal(&id).map(|p| {
            let mut out = proposal_detail(s, p);
            if let Some(agent) = &agent {
                out["member"] = membership(s, p, agent);
            }
            out
        })
    })
    .map(axum::Json)
    .ok_or_else(|| ApiError::not_found(format!("no proposal {id}")))
}

/// Where `agent` stands on a proposal: whether it is in the electorate frozen
/// when the proposal entered the log (with its authority, trust and
/// influence then), whether it proposed it, and whether it has answered.
fn membership(space: &Space, p: &ProposalRecord, agent: &AgentId) -> Value {
    let is = |idx| space.agent_at(idx).id == *agent;
    let member = p.electorate.iter().find(|m| is(m.agent));
    let response = p.responses.iter().find(|r| is(r.agent));
    let mut out = json!({
        "agent": agent,
        "eligible": member.is_some(),
        "proposer": is(p.proposer),
        "responded": response.is_some(),
        "stance": response.map(|r| r.stance),
    });
    if let Some(m) = member {
        out["authority"] = json!(m.authority);
        out["trust"] = json!(m.trust);
        out["influence"] = json!(synod_core::fixed::format_scaled(
            u128::from(m.influence().0),
            synod_core::fixed::Influence::DECIMALS,
        ));
    }
    out
}

async fn list_escalations(State(node): State<Arc<Node>>) -> axum::Json<Value> {
    axum::Json(node.read(|s| {
        let mut escalated: Vec<&ProposalRecord> = s
            .proposals()
            .values()
            .filter(|p| p.status == Status::Escalated)
            .collect();
        escalated.sort_by_key(|p| p.closure.map(|c| c.index));
        let items: Vec<Value> = escalated
            .iter()
            .take(MAX_PAGE)
            .map(|p| {
                let mut v = proposal_summary(s, p);
                v["package"] = json!(DecisionPackage::build(s, p));
                v
            })
            .collect();
        json!({"escalations": items, "total": escalated.len()})
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LogRange {
    #[serde(default)]
    from: Option<u64>,
    #[serde(default)]
    limit: Option<u64>,
}

/// The audit export: JSON lines from `from`, up to the durable head when the
/// request arrived (or `limit` lines).
async fn export_log(State(node): State<Arc<Node>>, Q(range): Q<LogRange>) -> Response {
    let from = range.from.unwrap_or(0);
    let start = node.log_start();
    if from < start {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!(
                "this node installed a snapshot and is still fetching the log before index {start} from a peer; retry shortly, or read from another node"
            ),
        )
        .into_response();
    }
    let end = node.durable_next();
    let end = match range.limit {
        Some(limit) => end.min(from.saturating_add(limit)),
        None => end,
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::task::spawn_blocking(move || {
        let mut next = from;
        while next < end {
            let batch = match node.read_log(
                next,
                synod_store::MAX_READ_ENTRIES.min((end - next) as usize),
            ) {
                Ok(b) if !b.is_empty() => b,
                Ok(_) => break,
                Err(e) => {
                    let _ = tx.blocking_send(Err(std::io::Error::other(e)));
                    return;
                }
            };
            next = batch.last().expect("non-empty").entry.index + 1;
            let mut chunk = String::new();
            for stored in &batch {
                chunk.push_str(&stored.export_line().to_json());
                chunk.push('\n');
            }
            if tx.blocking_send(Ok(Bytes::from(chunk))).is_err() {
                return;
            }
        }
    });
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    (
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(stream),
    )
        .into_response()
}

/// Every route the router serves, for the OpenAPI consistency test.
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/healthz"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
    ("get", "/v1/space"),
    ("post", "/v1/agents"),
    ("get", "/v1/agents"),
    ("get", "/v1/agents/{id}"),
    ("post", "/v1/config"),
    ("post", "/v1/proposals"),
    ("get", "/v1/proposals"),
    ("get", "/v1/proposals/{id}"),
    ("post", "/v1/proposals/{id}/responses"),
    ("post", "/v1/proposals/{id}/outcome"),
    ("get", "/v1/escalations"),
    ("post", "/v1/escalations/{id}/decisions"),
    ("get", "/v1/lottery/proposer"),
    ("get", "/v1/events"),
    ("get", "/v1/log"),
    ("get", "/v1/cluster"),
    ("get", "/.well-known/agent-card.json"),
];

/// The error kinds and statuses, for the OpenAPI document and tests.
pub fn error_statuses() -> BTreeMap<&'static str, u16> {
    ErrorKind::ALL
        .iter()
        .map(|k| (k.as_str(), status_of(*k).as_u16()))
        .collect()
}
