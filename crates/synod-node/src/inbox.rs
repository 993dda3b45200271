//! The human escalation inbox: server-rendered pages at `/`, usable without
//! JavaScript. A small vendored script (no framework) reloads a page when the
//! event stream reports activity, so it stays live while other reviewers and
//! agents act.
//!
//! A reviewer signs in with a reviewer token; the token stays in an
//! HttpOnly, SameSite=Strict cookie, and every decision is signed with the key
//! the token stands for, so the reviewer's identity comes from the sign-in,
//! never from what a form says.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use synod_core::AgentId;
use synod_core::message::HumanVerdict;
use synod_core::package::DecisionPackage;
use synod_core::policy::Weighting;
use synod_core::space::{ProposalRecord, Space, Status};
use synod_core::tally::Reason;
use synod_core::wire::Digest;

use crate::Node;
use crate::api::{decide_as, reviewer_from_token};

const COOKIE: &str = "synod_reviewer";
const STYLE: &str = include_str!("assets/style.css");
const SCRIPT: &str = include_str!("assets/live.js");
/// Most proposals the decisions page lists.
const RECENT_DECISIONS: usize = 50;

/// Headers on every inbox response: no framing (clickjacking), scripts and
/// styles only from the node itself, no referrer to other sites. (With no
/// referrer at all, browsers send `Origin: null` on form posts, which the
/// same-origin check must refuse.)
async fn protect(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::X_FRAME_OPTIONS,
        header::HeaderValue::from_static("DENY"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; \
             frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
    );
    h.insert(
        header::REFERRER_POLICY,
        header::HeaderValue::from_static("same-origin"),
    );
    response
}

/// Whether a form post comes from a page of this node. Browsers send
/// `Sec-Fetch-Site` and `Origin` with form posts; a post from another site —
/// or another port on the same host, which cookies do not tell apart — is
/// refused, so a page elsewhere cannot decide in a reviewer's name.
fn same_origin(headers: &HeaderMap) -> bool {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = header("sec-fetch-site")
        && !matches!(site, "same-origin" | "none")
    {
        return false;
    }
    match (header("origin"), header("host")) {
        (Some(origin), Some(host)) => {
            origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"))
                == Some(host)
        }
        (Some(_), None) => false,
        (None, _) => true,
    }
}

fn cross_site() -> Response {
    (StatusCode::FORBIDDEN, "cross-site form posts are refused").into_response()
}

pub(crate) fn routes() -> Router<Arc<Node>> {
    Router::new()
        .route("/", get(inbox))
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/decisions", get(decisions))
        .route("/proposals/{id}", get(proposal_page))
        .route("/agents/{id}", get(agent_page))
        .route("/inbox/{id}/decide", post(decide))
        .route(
            "/assets/style.css",
            get(|| async { ([(header::CONTENT_TYPE, "text/css")], STYLE) }),
        )
        .route(
            "/assets/live.js",
            get(|| async { ([(header::CONTENT_TYPE, "text/javascript")], SCRIPT) }),
        )
        .layer(axum::middleware::map_response(protect))
}

/// Escapes text for HTML.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// `YYYY-MM-DD HH:MM:SS UTC` of a log time.
fn when(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn short(id: &Digest) -> String {
    id.to_hex()[..12].to_string()
}

fn page(title: &str, reviewer: Option<&str>, live_from: Option<u64>, body: &str) -> Html<String> {
    let nav = match reviewer {
        Some(name) => format!(
            r#"<nav><a href="/">Inbox</a> <a href="/decisions">Recent decisions</a>
<form method="post" action="/logout" class="inline"><span class="who">Signed in as {}</span> <button type="submit">Sign out</button></form></nav>"#,
            esc(name)
        ),
        None => String::new(),
    };
    let live = live_from
        .map(|from| format!(r#"<script src="/assets/live.js" data-from="{from}" defer></script>"#))
        .unwrap_or_default();
    Html(format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · synod</title><link rel="icon" href="data:,"><link rel="stylesheet" href="/assets/style.css">{live}</head>
<body><header><h1><a href="/">synod</a></h1>{nav}</header>
<div id="live-banner" hidden>New activity. <a href="">Reload</a></div>
<main>{body}</main></body></html>"#,
        title = esc(title)
    ))
}

/// A 404 page for a missing proposal or agent.
fn not_found(reviewer: &str, what: &str) -> Response {
    let body = format!("<p>No such {}.</p>", esc(what));
    (
        StatusCode::NOT_FOUND,
        page("Not found", Some(reviewer), None, &body),
    )
        .into_response()
}

fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_string())
}

struct Reviewer {
    key: synod_core::Keypair,
    name: String,
}

fn signed_in(node: &Node, headers: &HeaderMap) -> Option<Reviewer> {
    let token = cookie_token(headers)?;
    let key = reviewer_from_token(node, &token).ok()?;
    let name = node.read(|s| s.agent(key.id()).map(|a| a.name.clone()))?;
    Some(Reviewer { key, name })
}

fn sign_in_page(message: Option<&str>) -> Response {
    let notice = message
        .map(|m| format!(r#"<p class="error" role="alert">{}</p>"#, esc(m)))
        .unwrap_or_default();
    let body = format!(
        r#"<section class="signin"><h2>Reviewer sign-in</h2>{notice}
<p>Paste the reviewer token you were given (<code>synod reviewer add NAME</code> prints one).</p>
<form method="post" action="/login"><label for="token">Reviewer token</label>
<input id="token" name="token" type="password" autocomplete="off" required>
<button type="submit">Sign in</button></form></section>"#
    );
    page("Sign in", None, None, &body).into_response()
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
}

async fn login(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    if !same_origin(&headers) {
        return cross_site();
    }
    let token = form.token.trim();
    if reviewer_from_token(&node, token).is_err() {
        let mut response = sign_in_page(Some(
            "That token does not belong to a reviewer of this space.",
        ));
        *response.status_mut() = StatusCode::UNAUTHORIZED;
        return response;
    }
    let cookie = format!("{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/");
    ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response()
}

async fn logout(headers: HeaderMap) -> Response {
    if !same_origin(&headers) {
        return cross_site();
    }
    let cookie = format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
    ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response()
}

fn reason_text(reason: Option<Reason>, method: synod_core::message::Method) -> &'static str {
    use synod_core::message::Method;
    match reason {
        Some(Reason::Stakes) => "The stakes require a human decision.",
        Some(Reason::NoQuorum) if method == Method::Stake => {
            "Neither more than two thirds of the whole stake endorsed, nor a third challenged (no quorum)."
        }
        Some(Reason::NoQuorum) if method == Method::Hierarchy => {
            "The executive did not decide before the deadline (no quorum)."
        }
        Some(Reason::NoQuorum) => "Too little of the electorate voted (no quorum).",
        Some(Reason::LowConfidence) => "The votes were not confident enough (low confidence).",
        Some(Reason::Contested) => "Neither side cleared its margin (contested).",
        Some(Reason::Objected) => {
            "More than half of the workers objected to the executive's decision (objected)."
        }
        None => "",
    }
}

/// An outcome as text: a vote's score, or the option that turned out right.
fn outcome_text(record: &ProposalRecord, o: &synod_core::space::OutcomeRecord) -> String {
    if let Some(answer) = &o.answer {
        return esc(answer);
    }
    match (o.score, o.option) {
        (Some(score), _) => score.to_string(),
        (None, Some(option)) => esc(&record.option_label(option)),
        (None, None) => "—".to_string(),
    }
}

/// A distribution as `a 0.7 · b 0.3`, in the order of the proposal's options.
fn in_option_order(
    record: &ProposalRecord,
    d: &std::collections::BTreeMap<String, synod_core::fixed::Probability>,
) -> String {
    record
        .options
        .iter()
        .filter_map(|o| d.get(o).map(|q| format!("{} {q}", esc(o))))
        .collect::<Vec<_>>()
        .join(" · ")
}

/// The decision package, as HTML.
fn package_html(space: &Space, record: &ProposalRecord) -> String {
    let pkg = DecisionPackage::build(space, record);
    let body = record.body();
    let proposer = space.agent_at(record.proposer);
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<p class="summary">{summary}</p>
<dl class="facts"><dt>Action</dt><dd><code>{kind}</code></dd><dt>Domain</dt><dd>{domain}</dd>
<dt>Stakes</dt><dd>{stakes}</dd><dt>Proposer</dt><dd><a href="/agents/{pid}">{pname}</a>{conf}</dd>
<dt>Why a human</dt><dd class="reason">{reason}</dd></dl>"#,
        summary = esc(&body.action.summary),
        kind = esc(&body.action.kind),
        domain = esc(record.domain.as_str()),
        stakes = record.stakes.as_str(),
        pid = esc(proposer.id.as_str()),
        pname = esc(&proposer.name),
        // A belief proposal's confidence decides nothing: its options do;
        // an open question's neither.
        conf = if record.open.is_some() {
            "; an open question".to_string()
        } else if record.options.is_empty() {
            format!(" at confidence {}", record.confidence)
        } else {
            format!(
                "; options {}",
                record
                    .options
                    .iter()
                    .map(|o| esc(o))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        },
        reason = reason_text(pkg.reason, record.method),
    );
    if !body.action.payload.is_null() {
        let payload = serde_json::to_string_pretty(&body.action.payload).unwrap_or_default();
        let _ = write!(
            out,
            "<details><summary>Payload</summary><pre>{}</pre></details>",
            esc(&payload)
        );
    }
    out.push_str(if pkg.belief.is_some() {
        r#"<table class="positions"><thead><tr><th>Agent</th><th>Distribution</th><th>From the pool</th><th>Authority</th><th>Trust</th><th>Weight</th><th>Reasoning</th></tr></thead><tbody>"#
    } else if pkg.open.is_some() {
        r#"<table class="positions"><thead><tr><th>Agent</th><th>Answer</th><th>Confidence</th><th>Authority</th><th>Trust</th><th>Weight</th><th>Reasoning</th></tr></thead><tbody>"#
    } else {
        r#"<table class="positions"><thead><tr><th>Agent</th><th>Stance</th><th>Confidence</th><th>Authority</th><th>Trust</th><th>Weight</th><th>Reasoning</th></tr></thead><tbody>"#
    });
    for p in &pkg.positions {
        let who = if p.proposer { " (proposer)" } else { "" };
        // A belief proposal's position is a distribution; the confidence
        // column then shows how far it is from the pool.
        let (cls, stance, conf) = match (&p.distribution, p.stance, p.confidence) {
            _ if p.answer.is_some() => (
                "answer",
                esc(p.answer.as_deref().unwrap_or("")),
                p.confidence.map_or(String::new(), |c| c.to_string()),
            ),
            (Some(d), _, _) => (
                "belief",
                in_option_order(record, d),
                format!("distance {}", p.divergence.as_deref().unwrap_or("—")),
            ),
            (None, Some(s), Some(c)) => (s.as_str(), s.as_str().to_string(), c.to_string()),
            _ => ("abstain", "abstain".to_string(), String::new()),
        };
        let _ = write!(
            out,
            r#"<tr class="{cls}"><td><a href="/agents/{id}">{name}</a>{who}<br><small>{vendor}</small></td><td>{stance}</td><td>{conf}</td><td>{auth}</td><td>{trust}</td><td>{weight}</td><td>{reasoning}</td></tr>"#,
            id = esc(p.agent.as_str()),
            name = esc(&p.name),
            vendor = esc(p.vendor.as_deref().unwrap_or("")),
            auth = p.authority,
            trust = p.trust,
            weight = p.weight,
            reasoning = esc(&p.reasoning),
        );
    }
    out.push_str("</tbody></table>");
    if let Some(hp) = &pkg.hierarchy {
        // The executive's decision and the workers' objections (§21).
        let decided = match (hp.decision, hp.objections_until) {
            (Some(d), Some(until)) => format!(
                "{} — {} (objections until {})",
                if d == HumanVerdict::Approve {
                    "approve"
                } else {
                    "reject"
                },
                esc(&hp.note),
                when(until)
            ),
            _ => "did not decide".to_string(),
        };
        let executive = space
            .agent(&hp.executive)
            .map_or(String::new(), |a| a.name.clone());
        let _ = write!(
            out,
            r#"<h4>Hierarchy</h4><dl class="facts hierarchy"><dt>Executive</dt><dd>{} : {decided}</dd><dt>Objections</dt><dd>{} of {} workers</dd></dl><ul class="objections">"#,
            esc(&executive),
            hp.objections.len(),
            hp.workers,
        );
        for o in &hp.objections {
            let _ = write!(
                out,
                "<li><strong>{}</strong> objects: {}</li>",
                esc(&o.name),
                esc(&o.reasoning)
            );
        }
        out.push_str("</ul>");
    }
    if !pkg.silent.is_empty() {
        let _ = write!(
            out,
            "<p class=\"silent\">{} member(s) of the electorate did not answer.</p>",
            pkg.silent.len()
        );
    }
    let t = &pkg.tally;
    let th = &pkg.thresholds;
    let p = &pkg.policy;
    let margin_neg = th
        .margin
        .strip_prefix('-')
        .map_or_else(|| format!("-{}", th.margin), str::to_string);
    if record.method == synod_core::message::Method::Stake {
        // The stake rule (PROTOCOL.md §20.2): shares of the whole stake.
        let _ = write!(
            out,
            r#"<table class="tally"><thead><tr><th>Check</th><th>Value</th><th>Needed</th></tr></thead><tbody>
<tr><td>Approve: endorsed stake</td><td>{e}</td><td>more than 2/3 of the whole stake {s}: ≥ {a}</td></tr>
<tr><td>Reject: challenged stake</td><td>{c}</td><td>at least 1/3 of {s}: ≥ {r}</td></tr></tbody></table>"#,
            e = t.endorse,
            c = t.challenge,
            s = t.potential,
            a = th.approve_needed,
            r = th.reject_needed,
        );
    } else {
        let _ = write!(
            out,
            r#"<table class="tally"><thead><tr><th>Check</th><th>Value</th><th>Needed</th></tr></thead><tbody>
<tr><td>Quorum: voted influence V</td><td>{v}</td><td>≥ {q} × P ({p}) = {qn}</td></tr>"#,
            v = t.voted,
            q = p.quorum,
            p = t.potential,
            qn = th.quorum_needed,
        );
        match (&pkg.belief, p.weighting) {
            _ if pkg.open.is_some() => {
                // Every cluster, the dissenting ones included (§19.5).
                let o = pkg.open.as_ref().expect("an open question");
                let rows: String = o
                    .clusters
                    .clusters
                    .iter()
                    .map(|c| {
                        format!(
                            "<tr class=\"cluster\"><td>Cluster {}</td><td>{}</td><td>weight {}</td></tr>",
                            esc(&c.answer),
                            c.answers.iter().map(|a| esc(a)).collect::<Vec<_>>().join(" · "),
                            c.weight
                        )
                    })
                    .collect();
                let _ = write!(
                    out,
                    r#"
{rows}<tr><td>Leading answer</td><td>{leader} at {lead}</td><td>≥ {threshold}</td></tr></tbody></table>"#,
                    leader = o
                        .clusters
                        .leader
                        .as_deref()
                        .map_or("none (tie)".to_string(), esc),
                    lead = th.margin,
                    threshold = th.approve_needed,
                );
            }
            (Some(b), _) => {
                let pooled = in_option_order(record, &b.pooled);
                let _ = write!(
                    out,
                    r#"
<tr><td>Pooled distribution ({pool} pool)</td><td>{pooled}</td><td></td></tr>
<tr><td>Leading option</td><td>{leader} at {lead}</td><td>≥ {threshold}</td></tr></tbody></table>"#,
                    pool = p.pool.as_str(),
                    leader = b.leader.as_deref().map_or("none (tie)".to_string(), esc),
                    lead = th.margin,
                    threshold = th.approve_needed,
                );
            }
            (None, weighting) => {
                // The second row, and what approve and reject each needed.
                let (sums, approve, reject) = match weighting {
                    Weighting::Linear => (
                        format!(
                            "<td>Confidence: total weight T = E + C</td><td>E {} + C {}</td><td>≥ {} × V = {}</td>",
                            t.endorse, t.challenge, p.min_confidence, th.confidence_needed
                        ),
                        format!("≥ {} × T = {}", p.approve_margin, th.approve_needed),
                        format!("≥ {} × T = {}", p.reject_margin, th.reject_needed),
                    ),
                    Weighting::LogOdds => (
                        format!(
                            "<td>Evidence for E, against C (log-odds)</td><td>E {}, C {}</td><td></td>",
                            t.endorse, t.challenge
                        ),
                        format!("≥ logit({}) = {}", p.approve_confidence, th.approve_needed),
                        format!("≥ logit({}) = {}", p.reject_confidence, th.reject_needed),
                    ),
                };
                let _ = write!(
                    out,
                    r#"
<tr>{sums}</tr>
<tr><td>Approve: E − C</td><td>{margin}</td><td>{approve}</td></tr>
<tr><td>Reject: C − E</td><td>{margin_neg}</td><td>{reject}</td></tr></tbody></table>"#,
                    margin = th.margin,
                );
            }
        }
    }
    // Confidences mean nothing for a belief proposal's distributions, and
    // an open question's are only scored.
    if pkg.belief.is_none() && pkg.open.is_none() {
        let max = pkg
            .confidences
            .histogram
            .iter()
            .copied()
            .max()
            .unwrap_or(0)
            .max(1);
        out.push_str(r#"<figure class="histogram" aria-label="Distribution of confidences"><figcaption>Confidences</figcaption><div class="bars">"#);
        for (i, count) in pkg.confidences.histogram.iter().enumerate() {
            let height = count * 100 / max;
            let _ = write!(
                out,
                r#"<div class="bar" title="{lo:.1}–{hi:.1}: {count}"><span style="height:{height}%"></span><small>{lo:.1}</small></div>"#,
                lo = i as f64 / 10.0,
                hi = (i + 1) as f64 / 10.0,
            );
        }
        out.push_str("</div></figure>");
    }
    if !pkg.decisions.is_empty() {
        out.push_str("<h4>Reviewer decisions</h4><ul class=\"decisions\">");
        for d in &pkg.decisions {
            let name = space
                .agent(&d.reviewer)
                .map_or(String::new(), |a| a.name.clone());
            let verdict = match (d.decision, &d.option) {
                (HumanVerdict::Approve, Some(o)) => format!("approve {}", esc(o)),
                (HumanVerdict::Approve, None) => "approve".to_string(),
                (HumanVerdict::Reject, _) => "reject".to_string(),
            };
            let _ = write!(
                out,
                "<li><strong>{}</strong>: {verdict} — {}</li>",
                esc(&name),
                esc(&d.note)
            );
        }
        out.push_str("</ul>");
    }
    out
}

async fn inbox(State(node): State<Arc<Node>>, headers: HeaderMap) -> Response {
    let Some(reviewer) = signed_in(&node, &headers) else {
        return sign_in_page(None);
    };
    let from = node.durable_next();
    let body = node.read(|s| {
        let mut escalated: Vec<&ProposalRecord> =
            s.proposals().values().filter(|p| p.status == Status::Escalated).collect();
        escalated.sort_by_key(|p| p.closure.map(|c| c.index));
        let mut out = format!("<h2>Escalations <span class=\"count\">{}</span></h2>", escalated.len());
        if escalated.is_empty() {
            out.push_str("<p class=\"empty\">Nothing waits for a human decision.</p>");
        }
        for record in escalated {
            let decided = record.decisions.iter().any(|d| s.agent_at(d.reviewer).id == *reviewer.key.id());
            let needed = record.policy.reviewers_required;
            let form = if decided {
                "<p class=\"done\">You have decided this one; it waits for other reviewers.</p>".to_string()
            } else {
                // A belief proposal's approval adopts one of its options,
                // the pool's leader first.
                let choose = if let Some(clusters) = record.clusters() {
                    // An open question's approval adopts an answer: the
                    // leading cluster's, or whatever the reviewer types.
                    let leader = clusters
                        .leader
                        .or_else(|| clusters.clusters.first().map(|c| c.answer.clone()))
                        .unwrap_or_default();
                    format!(r#"<label for="option-{id}">Answer to adopt</label><input id="option-{id}" name="option" maxlength="256" value="{v}">"#, id = record.id, v = esc(&leader))
                } else if record.options.is_empty() {
                    String::new()
                } else {
                    let leader = record.pool_report().and_then(|r| r.leader);
                    let mut options: Vec<&String> = record.options.iter().collect();
                    options.sort_by_key(|o| Some(*o) != leader.as_ref());
                    let items: String = options
                        .iter()
                        .map(|o| format!(r#"<option value="{v}">{v}</option>"#, v = esc(o)))
                        .collect();
                    format!(r#"<label for="option-{id}">Option to adopt</label><select id="option-{id}" name="option">{items}</select>"#, id = record.id)
                };
                format!(
                    r#"<form method="post" action="/inbox/{id}/decide" class="decide">{choose}
<label for="note-{id}">Note (kept in the audit log)</label><textarea id="note-{id}" name="note" rows="2" maxlength="4096"></textarea>
<button type="submit" name="decision" value="approve" class="approve">Approve</button>
<button type="submit" name="decision" value="reject" class="reject">Reject</button></form>"#,
                    id = record.id
                )
            };
            let _ = write!(
                out,
                r#"<article class="escalation" id="p-{id}"><h3><a href="/proposals/{id}">{summary}</a> <small>{short}</small></h3>
{package}<p class="needed">Needs {needed} agreeing reviewer decision(s).</p>{form}</article>"#,
                id = record.id,
                short = short(&record.id),
                summary = esc(&record.body().action.summary),
                package = package_html(s, record),
            );
        }
        out
    });
    page("Inbox", Some(&reviewer.name), Some(from), &body).into_response()
}

#[derive(Deserialize)]
struct DecideForm {
    decision: HumanVerdict,
    /// A belief proposal's option; sent with either button, used only with
    /// an approval.
    #[serde(default)]
    option: Option<String>,
    #[serde(default)]
    note: String,
}

async fn decide(
    State(node): State<Arc<Node>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<DecideForm>,
) -> Response {
    if !same_origin(&headers) {
        return cross_site();
    }
    let Some(reviewer) = signed_in(&node, &headers) else {
        let mut response = sign_in_page(Some("Sign in again to decide."));
        *response.status_mut() = StatusCode::UNAUTHORIZED;
        return response;
    };
    let Some(id) = Digest::from_hex(&id) else {
        return (StatusCode::BAD_REQUEST, "bad proposal id").into_response();
    };
    let option = match form.decision {
        HumanVerdict::Approve => form.option.as_deref(),
        HumanVerdict::Reject => None,
    };
    match decide_as(&node, &reviewer.key, id, form.decision, option, &form.note).await {
        Ok(_) => Redirect::to(&format!("/proposals/{id}")).into_response(),
        // A second click on the same decision: the first one counted.
        Err(e) if e.kind() == "duplicate" => {
            Redirect::to(&format!("/proposals/{id}")).into_response()
        }
        Err(e) => {
            let body = format!(
                r#"<p class="error" role="alert">The decision was not recorded ({}): {}</p><p><a href="/">Back to the inbox</a></p>"#,
                esc(e.kind()),
                esc(e.message())
            );
            (
                e.status(),
                page("Not recorded", Some(&reviewer.name), None, &body),
            )
                .into_response()
        }
    }
}

async fn proposal_page(
    State(node): State<Arc<Node>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(reviewer) = signed_in(&node, &headers) else {
        return sign_in_page(None);
    };
    let Some(id) = Digest::from_hex(&id) else {
        return not_found(&reviewer.name, "proposal");
    };
    let from = node.durable_next();
    let body = node.read(|s| {
        let record = s.proposal(&id)?;
        let mut out = format!(
            r#"<h2>{summary}</h2><p class="status status-{status}">Status: <strong>{status}</strong>{reason}</p>"#,
            summary = esc(&record.body().action.summary),
            status = record.status.as_str(),
            reason = record
                .closure
                .and_then(|c| c.verdict.reason())
                .map(|r| format!(" — {}", reason_text(Some(r), record.method)))
                .unwrap_or_default(),
        );
        if let Some(sealed) = &record.sealed {
            // Only who committed, never what: the answers stay sealed
            // until the commit deadline (PROTOCOL.md §18).
            let commits = sealed.in_log_order();
            let _ = write!(
                out,
                r#"<p class="sealed">Sealed responses: {} phase, commitments until {}; {} committed, {} not revealed</p>"#,
                sealed.phase(),
                when(sealed.commit_deadline),
                commits.len(),
                commits.iter().filter(|c| !c.revealed).count()
            );
        }
        out.push_str(&package_html(s, record));
        out.push_str("<h3>History</h3><ol class=\"history\">");
        let _ = write!(
            out,
            "<li>Entry {}: proposed by {} at {}, deadline {}</li>",
            record.entered_index,
            esc(&s.agent_at(record.proposer).name),
            when(record.entered_time),
            when(record.deadline)
        );
        for c in record.sealed.iter().flat_map(|s| s.in_log_order()) {
            let _ = write!(
                out,
                "<li>Entry {}: {} commits to a sealed answer</li>",
                c.index,
                esc(&s.agent_at(c.agent).name),
            );
        }
        for r in &record.responses {
            let what = match (&r.distribution, r.stance, r.confidence) {
                (Some(d), _, _) => format!(
                    "gives {}",
                    record
                        .options
                        .iter()
                        .zip(d)
                        .map(|(o, &m)| format!("{} {}", esc(o), synod_core::fixed::Probability::from_micros(m)))
                        .collect::<Vec<_>>()
                        .join(" · ")
                ),
                _ if r.answer.is_some() => format!(
                    "answers {} at confidence {}",
                    esc(r.answer.as_deref().unwrap_or("")),
                    r.confidence.map_or(String::new(), |c| c.to_string())
                ),
                (None, Some(stance), Some(c)) => format!("{}s at confidence {c}", stance.as_str()),
                _ => "responds".to_string(),
            };
            let _ = write!(
                out,
                "<li>Entry {}: {} {what}</li>",
                r.index,
                esc(&s.agent_at(r.agent).name),
            );
        }
        if let Some(c) = record.closure {
            let cause = match c.cause {
                synod_core::space::CloseCause::Deadline => "at its deadline",
                synod_core::space::CloseCause::AllResponded => "when everyone had answered",
                synod_core::space::CloseCause::Early => "early: no remaining answer could change it",
                synod_core::space::CloseCause::Objected => "when more than half of the workers objected",
            };
            let _ = write!(out, "<li>Entry {}: closed {cause} at {}</li>", c.index, when(c.time));
        }
        for d in &record.decisions {
            let _ = write!(
                out,
                "<li>Entry {}: reviewer {} decided {}</li>",
                d.index,
                esc(&s.agent_at(d.reviewer).name),
                match (d.decision, d.option) {
                    (HumanVerdict::Approve, Some(o)) => format!("approve {}", esc(&record.option_label(o))),
                    (HumanVerdict::Approve, None) => "approve".to_string(),
                    (HumanVerdict::Reject, _) => "reject".to_string(),
                }
            );
        }
        if let Some(o) = &record.outcome {
            let _ = write!(
                out,
                "<li>Entry {}: outcome {} reported by {}</li>",
                o.index,
                outcome_text(record, o),
                esc(&s.agent_at(o.reporter).name)
            );
        }
        out.push_str("</ol>");
        Some(out)
    });
    match body {
        Some(body) => page("Proposal", Some(&reviewer.name), Some(from), &body).into_response(),
        None => not_found(&reviewer.name, "proposal"),
    }
}

/// A small SVG line chart of trust points (0 to 1), oldest first: one line
/// per domain, a dot (with its value as a tooltip) for every point, so that a
/// single outcome shows too, and the domain's name at its latest point.
fn trust_chart(points: &[crate::TrustPoint]) -> String {
    const W: f64 = 480.0;
    const H: f64 = 160.0;
    if points.is_empty() {
        return "<p class=\"empty\">No outcomes have scored this agent yet.</p>".into();
    }
    let n = points.len().max(2) as f64 - 1.0;
    // Per domain: the path so far and the latest point.
    let mut lines: std::collections::BTreeMap<&str, (String, f64, f64)> = Default::default();
    let mut dots = String::new();
    for (i, p) in points.iter().enumerate() {
        let trust: f64 = p.trust.parse().unwrap_or(0.0);
        let x = if points.len() == 1 {
            30.0 + (W - 40.0) / 2.0
        } else {
            30.0 + (W - 40.0) * i as f64 / n
        };
        let y = 10.0 + (H - 30.0) * (1.0 - trust);
        let line = lines.entry(p.domain.as_str()).or_default();
        let _ = write!(
            line.0,
            "{}{x:.1},{y:.1}",
            if line.0.is_empty() { "M" } else { " L" }
        );
        (line.1, line.2) = (x, y);
        let _ = write!(
            dots,
            r#"<circle cx="{x:.1}" cy="{y:.1}" r="3" class="trust-point"><title>{}: {}</title></circle>"#,
            esc(&p.domain),
            esc(&p.trust)
        );
    }
    let mut paths = String::new();
    for (domain, (d, x, y)) in &lines {
        // The label beside the latest point, inside the chart.
        let (tx, anchor) = if *x < W / 2.0 {
            (x + 6.0, "start")
        } else {
            (x - 6.0, "end")
        };
        let ty = if *y < 24.0 { y + 14.0 } else { y - 6.0 };
        let _ = write!(
            paths,
            r#"<path d="{d}" class="trust-line"/><text x="{tx:.1}" y="{ty:.1}" text-anchor="{anchor}" class="trust-label">{}</text>"#,
            esc(domain),
        );
    }
    format!(
        r#"<svg class="chart" viewBox="0 0 {W} {H}" role="img" aria-label="Trust over time">
<line x1="30" y1="10" x2="30" y2="{b}" class="axis"/><line x1="30" y1="{b}" x2="{r}" y2="{b}" class="axis"/>
<text x="2" y="14">1</text><text x="2" y="{b}">0</text>
{paths}{dots}</svg>"#,
        b = H - 20.0,
        r = W - 10.0
    )
}

async fn agent_page(
    State(node): State<Arc<Node>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(reviewer) = signed_in(&node, &headers) else {
        return sign_in_page(None);
    };
    let Ok(agent_id) = AgentId::parse(&id) else {
        return not_found(&reviewer.name, "agent");
    };
    let history = node.trust_history(agent_id.as_str());
    let body = node.read(|s| {
        let agent = s.agent(&agent_id)?;
        let roles: Vec<&str> = s.roles(agent).into_iter().map(|r| r.as_str()).collect();
        let mut out = format!(
            r#"<h2>{name}</h2><dl class="facts"><dt>Id</dt><dd><code>{id}</code></dd><dt>Vendor</dt><dd>{vendor}</dd><dt>Model</dt><dd>{model}</dd>
<dt>Roles</dt><dd>{roles}</dd><dt>Responses</dt><dd>{responses}</dd><dt>Scored outcomes</dt><dd>{outcomes}</dd><dt>Starting trust</dt><dd>{prior}</dd></dl>"#,
            name = esc(&agent.name),
            id = esc(agent.id.as_str()),
            vendor = esc(agent.vendor.as_deref().unwrap_or("—")),
            model = esc(agent.model.as_deref().unwrap_or("—")),
            roles = roles.join(", "),
            responses = agent.responses,
            outcomes = agent.outcomes,
            prior = s.trust_prior(agent),
        );
        out.push_str("<h3>Authorities</h3><table><thead><tr><th>Pattern</th><th>Granted</th><th>Declared</th></tr></thead><tbody>");
        let patterns: std::collections::BTreeSet<_> = agent.granted.keys().chain(agent.declared.keys()).collect();
        for pattern in patterns {
            let _ = write!(
                out,
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                esc(&pattern.to_string()),
                agent.granted.get(pattern).map_or("—".into(), |a| a.to_string()),
                agent.declared.get(pattern).map_or("—".into(), |a| a.to_string()),
            );
        }
        out.push_str("</tbody></table><h3>Trust by domain</h3><table class=\"trust\"><thead><tr><th>Domain</th><th>Trust</th></tr></thead><tbody>");
        for (domain, trust) in &agent.trust {
            let _ = write!(out, "<tr><td>{}</td><td>{trust}</td></tr>", esc(domain.as_str()));
        }
        out.push_str("</tbody></table><h3>Trust over time</h3>");
        out.push_str(&trust_chart(&history));
        Some(out)
    });
    match body {
        Some(body) => page(
            "Agent",
            Some(&reviewer.name),
            Some(node.durable_next()),
            &body,
        )
        .into_response(),
        None => not_found(&reviewer.name, "agent"),
    }
}

async fn decisions(State(node): State<Arc<Node>>, headers: HeaderMap) -> Response {
    let Some(reviewer) = signed_in(&node, &headers) else {
        return sign_in_page(None);
    };
    let from = node.durable_next();
    let body = node.read(|s| {
        let mut closed: Vec<&ProposalRecord> = s.proposals().values().filter(|p| p.closure.is_some()).collect();
        closed.sort_by_key(|p| std::cmp::Reverse(p.closure.map(|c| c.index)));
        let mut out = String::from(
            "<h2>Recent decisions</h2><table class=\"recent\"><thead><tr><th>Closed</th><th>Proposal</th><th>Domain</th><th>Status</th><th>Outcome</th></tr></thead><tbody>",
        );
        for p in closed.into_iter().take(RECENT_DECISIONS) {
            let closure = p.closure.expect("filtered");
            let _ = write!(
                out,
                r#"<tr><td>{when}</td><td><a href="/proposals/{id}">{summary}</a></td><td>{domain}</td><td class="status-{status}">{status}</td><td>{outcome}</td></tr>"#,
                when = when(closure.time),
                id = p.id,
                summary = esc(&p.body().action.summary),
                domain = esc(p.domain.as_str()),
                status = p.status.as_str(),
                outcome = p.outcome.as_ref().map_or("—".into(), |o| outcome_text(p, o)),
            );
        }
        out.push_str("</tbody></table>");
        out
    });
    page("Recent decisions", Some(&reviewer.name), Some(from), &body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cross_site_posts_are_recognised() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, header::HeaderValue::from_static(v));
            }
            h
        };
        assert!(same_origin(&headers(&[
            ("host", "127.0.0.1:7420"),
            ("origin", "http://127.0.0.1:7420"),
            ("sec-fetch-site", "same-origin")
        ])));
        assert!(same_origin(&headers(&[("host", "127.0.0.1:7420")])));
        assert!(!same_origin(&headers(&[
            ("host", "127.0.0.1:7420"),
            ("origin", "http://127.0.0.1:8080")
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "127.0.0.1:7420"),
            ("sec-fetch-site", "same-site")
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "127.0.0.1:7420"),
            ("origin", "http://evil.example")
        ])));
        // A sandboxed frame, or a page sending no referrer, posts `Origin: null`.
        assert!(!same_origin(&headers(&[
            ("host", "127.0.0.1:7420"),
            ("origin", "null")
        ])));
    }

    #[test]
    fn escapes_markup() {
        assert_eq!(
            esc("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn trust_chart_draws_every_point_and_one_line_per_domain() {
        let point = |index, domain: &str, trust: &str| crate::TrustPoint {
            time: 0,
            index,
            domain: domain.into(),
            trust: trust.into(),
        };
        // A single outcome is a visible dot, not an empty path.
        let one = trust_chart(&[point(1, "credit.loans", "0.52275")]);
        assert_eq!(one.matches("<circle").count(), 1);
        assert!(one.contains("credit.loans: 0.52275"));
        let two = trust_chart(&[
            point(1, "credit.loans", "0.521"),
            point(2, "payments.transactions", "0.524"),
            point(3, "credit.loans", "0.6"),
        ]);
        assert_eq!(two.matches("<circle").count(), 3);
        assert_eq!(two.matches("class=\"trust-line\"").count(), 2);
        assert!(two.contains(r#"d="M30.0,72.3 L470.0,62.0""#), "{two}");
    }

    /// A space built by signed messages, with the state machine alone.
    fn send(
        space: &mut Space,
        key: &synod_core::Keypair,
        kind: synod_core::MessageType,
        mut body: serde_json::Value,
        time: u64,
    ) -> Digest {
        body["space"] = serde_json::json!("t");
        body["created_at"] = serde_json::json!(time);
        let message = synod_core::Verified::sign(kind, body, key);
        let id = message.id();
        space.append(message, time).expect("accepted");
        id
    }

    #[test]
    fn packages_show_the_stake_rule_and_a_hierarchys_objections() {
        use serde_json::json;
        use synod_core::MessageType as M;
        let key = |n: &str| synod_core::Keypair::from_seed(&Digest::of(n.as_bytes()).0);
        let t = 1_700_000_000_000u64;
        let mut space = Space::new();
        let admin = key("admin");
        send(
            &mut space,
            &admin,
            M::Configuration,
            json!({"seq": 0, "change": {"set": {"stake": "granted"}}}),
            t,
        );
        let mut seq = 0;
        let mut grant = |space: &mut Space, who: &str, roles: serde_json::Value, stake: u64| {
            seq += 1;
            send(
                space,
                &admin,
                M::Configuration,
                json!({"seq": seq, "change": {"grant": {
                "agent": key(who).id(), "authorities": {"ops.*": "1"}, "roles": roles, "stake": stake}}}),
                t,
            );
        };
        for (who, stake) in [("w1", 1), ("w2", 1), ("w3", 1), ("sup", 1), ("boss", 1)] {
            grant(&mut space, who, json!(["agent"]), stake);
        }
        let ids = |names: &[&str]| {
            names
                .iter()
                .map(|n| key(n).id().clone())
                .collect::<Vec<_>>()
        };
        seq += 1;
        send(
            &mut space,
            &admin,
            M::Configuration,
            json!({"seq": seq, "change": {"set": {"hierarchies": {"ops.deploy": {
            "workers": ids(&["w1", "w2", "w3"]), "supervisors": ids(&["sup"]), "executive": key("boss").id(),
            "objection_window_ms": 60_000}}}}}),
            t,
        );
        let proposal = |method: &str, summary: &str| {
            json!({"domain": "ops.deploy",
            "action": {"kind": "k", "summary": summary}, "confidence": "0.9", "stakes": "medium",
            "deadline": t + 600_000, "method": method})
        };
        let p = send(
            &mut space,
            &key("w1"),
            M::Proposal,
            proposal("hierarchy", "ship"),
            t,
        );
        let respond = |space: &mut Space, who: &str, stance: &str, why: &str| {
            send(
                space,
                &key(who),
                M::Response,
                json!({"proposal": p, "stance": stance, "confidence": "0.9", "reasoning": why}),
                t,
            );
        };
        respond(&mut space, "sup", "endorse", "fine by me");
        send(
            &mut space,
            &key("boss"),
            M::Decision,
            json!({"proposal": p, "decision": "approve", "note": "go ahead"}),
            t,
        );
        respond(&mut space, "w2", "challenge", "not on a friday");
        respond(&mut space, "w3", "challenge", "the rollback is untested");
        let html = package_html(&space, space.proposal(&p).unwrap());
        assert!(html.contains("Hierarchy"), "{html}");
        assert!(html.contains("2 of 3 workers"), "{html}");
        assert!(html.contains("the rollback is untested"), "{html}");
        assert!(html.contains("go ahead"), "{html}");
        assert!(
            html.contains("More than half of the workers objected"),
            "{html}"
        );
        // A stake proposal at exactly two thirds: the thresholds it missed.
        let s = send(
            &mut space,
            &key("w1"),
            M::Proposal,
            proposal("stake", "rotate"),
            t,
        );
        for (who, stance) in [
            ("w2", "endorse"),
            ("w3", "endorse"),
            ("sup", "abstain"),
            ("boss", "abstain"),
        ] {
            send(
                &mut space,
                &key(who),
                M::Response,
                json!({"proposal": s, "stance": stance, "confidence": "0.9"}),
                t,
            );
        }
        let html = package_html(&space, space.proposal(&s).unwrap());
        // S = 5 (one unit each), E = 3 (w1's proposal, w2, w3): 3 × 3 = 9 is
        // not above 2 × 5 = 10; the least that approves is ⌊10/3⌋ + 1 units
        // of 10⁻¹² above nothing: 3.333333333334.
        assert!(html.contains("Approve: endorsed stake</td><td>3</td><td>more than 2/3 of the whole stake 5: ≥ 3.333333333334"), "{html}");
        assert!(
            html.contains("more than two thirds of the whole stake endorsed"),
            "{html}"
        );
    }

    #[test]
    fn formats_log_time_as_utc() {
        assert_eq!(when(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(when(1_700_000_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(when(951_782_400_000), "2000-02-29 00:00:00 UTC");
    }
}
