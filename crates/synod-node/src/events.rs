//! `GET /v1/events`: Server-Sent Events from a log position.
//!
//! Each effect of each durable entry is one event, with id `INDEX.K` (the
//! entry index and the effect's place in it), the effect's type as the event
//! name, and the effect as JSON data with `index`, `time` and, for tallies and
//! closes, `final`. A client that reconnects with `Last-Event-ID` (or
//! `?from=INDEX`) resumes exactly after the last event it saw: history comes
//! from the store, then the stream follows live entries as they become durable.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use synod_core::space::Effect;
use tokio::sync::{broadcast, mpsc};

use crate::{Node, Published};

/// Most event streams open at once.
pub const MAX_EVENT_STREAMS: usize = 1_024;
/// Entries read from the store per catch-up step.
const CATCH_UP_ENTRIES: usize = 1_000;
/// A comment is sent after this long without events, so proxies keep the
/// connection and clients notice a dead one.
const KEEPALIVE: Duration = Duration::from_secs(15);

static OPEN_STREAMS: AtomicUsize = AtomicUsize::new(0);

struct StreamSlot;

impl Drop for StreamSlot {
    fn drop(&mut self) {
        OPEN_STREAMS.fetch_sub(1, Ordering::AcqRel);
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EventsQuery {
    #[serde(default)]
    from: Option<u64>,
}

/// Where a stream starts: the first entry, and how many of its effects the
/// client has already seen.
fn start(node: &Node, query: &EventsQuery, headers: &HeaderMap) -> Result<(u64, usize), String> {
    if let Some(last) = headers.get("last-event-id").and_then(|v| v.to_str().ok()) {
        let (index, k) = last
            .split_once('.')
            .and_then(|(i, k)| {
                Some((
                    i.parse::<u64>().ok()?,
                    k.parse::<usize>().ok()?.checked_add(1)?,
                ))
            })
            .ok_or_else(|| format!("Last-Event-ID {last:?} is not INDEX.K"))?;
        return within(node, index).map(|i| (i, k));
    }
    within(node, query.from.unwrap_or_else(|| node.durable_next())).map(|i| (i, 0))
}

/// Refuses a position beyond the log: a client asking for it has the wrong
/// node or the wrong space, and would otherwise wait in silence.
fn within(node: &Node, index: u64) -> Result<u64, String> {
    let head = node.durable_next();
    if index > head {
        return Err(format!(
            "position {index} is beyond the log, which ends before {head}"
        ));
    }
    Ok(index)
}

fn is_final(effect: &Effect) -> Option<bool> {
    match effect {
        // An executive's decision is not final until its objection window
        // closes (PROTOCOL.md §21).
        Effect::ResponseCounted { .. }
        | Effect::ExecutiveDecided { .. }
        | Effect::ObjectionRecorded { .. } => Some(false),
        Effect::ProposalClosed { .. } | Effect::HumanResolved { .. } => Some(true),
        _ => None,
    }
}

/// The SSE frames of one entry, skipping its first `skip` effects.
fn frames(index: u64, time: u64, effects: &[Effect], skip: usize) -> String {
    let mut out = String::new();
    for (k, effect) in effects.iter().enumerate().skip(skip) {
        let mut data = serde_json::to_value(effect).expect("effects serialize");
        let name = data["type"].as_str().unwrap_or("effect").to_string();
        if let Value::Object(map) = &mut data {
            map.insert("index".into(), json!(index));
            map.insert("time".into(), json!(time));
            if let Some(f) = is_final(effect) {
                map.insert("final".into(), json!(f));
            }
        }
        out.push_str(&format!("id: {index}.{k}\nevent: {name}\ndata: {data}\n\n"));
    }
    out
}

pub(crate) async fn stream(
    State(node): State<Arc<Node>>,
    crate::api::Q(query): crate::api::Q<EventsQuery>,
    headers: HeaderMap,
) -> Response {
    let (from, skip) = match start(&node, &query, &headers) {
        Ok(position) => position,
        Err(why) => {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({"error": "malformed", "message": why})),
            )
                .into_response();
        }
    };
    let held = node.log_start();
    if from < held {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"error": "unavailable", "message": format!("this node installed a snapshot and is still fetching the log before index {held} from a peer; retry shortly, or resume from another node")})),
        )
            .into_response();
    }
    if OPEN_STREAMS.fetch_add(1, Ordering::AcqRel) >= MAX_EVENT_STREAMS {
        OPEN_STREAMS.fetch_sub(1, Ordering::AcqRel);
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"error": "unavailable", "message": format!("{MAX_EVENT_STREAMS} event streams are open")})),
        )
            .into_response();
    }
    let slot = StreamSlot;
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(64);
    tokio::spawn(async move {
        let _slot = slot;
        pump(node, from, skip, tx).await;
    });
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx)),
    )
        .into_response()
}

/// Longest a stream may wait for a client to take a frame before it is
/// closed: a client that stops reading must not hold a slot for ever.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);

async fn send(tx: &mpsc::Sender<Result<Bytes, Infallible>>, text: String) -> bool {
    if text.is_empty() {
        return true;
    }
    matches!(
        tokio::time::timeout(SEND_TIMEOUT, tx.send(Ok(Bytes::from(text)))).await,
        Ok(Ok(()))
    )
}

/// Sends stored entries from `*next` up to (not including) `until`.
async fn catch_up(
    node: &Arc<Node>,
    next: &mut u64,
    skip: &mut usize,
    until: u64,
    tx: &mpsc::Sender<Result<Bytes, Infallible>>,
) -> bool {
    while *next < until {
        let reader = node.clone();
        let from = *next;
        let count = CATCH_UP_ENTRIES.min((until - from) as usize);
        let batch = tokio::task::spawn_blocking(move || reader.read_log(from, count)).await;
        let Ok(Ok(batch)) = batch else { return false };
        if batch.is_empty() {
            return false;
        }
        for stored in batch {
            let text = frames(
                stored.entry.index,
                stored.entry.time,
                &stored.effects,
                *skip,
            );
            *skip = 0;
            *next = stored.entry.index + 1;
            if !send(tx, text).await {
                return false;
            }
        }
    }
    true
}

async fn pump(
    node: Arc<Node>,
    mut next: u64,
    mut skip: usize,
    tx: mpsc::Sender<Result<Bytes, Infallible>>,
) {
    // Subscribe before reading history, so no entry falls between the two.
    let mut live = node.subscribe();
    if !send(&tx, ": synod events\n\n".into()).await {
        return;
    }
    if !catch_up(&node, &mut next, &mut skip, node.durable_next(), &tx).await {
        return;
    }
    // Then follow live entries; the store is read again only to fill a gap
    // (this stream fell behind the broadcast).
    loop {
        match tokio::time::timeout(KEEPALIVE, live.recv()).await {
            Ok(Ok(published)) => {
                let Published {
                    index,
                    time,
                    effects,
                    frames: cached,
                } = &*published;
                if *index < next {
                    continue;
                }
                if *index > next && !catch_up(&node, &mut next, &mut skip, *index, &tx).await {
                    return;
                }
                let text = if skip == 0 {
                    cached
                        .get_or_init(|| frames(*index, *time, effects, 0))
                        .clone()
                } else {
                    frames(*index, *time, effects, skip)
                };
                skip = 0;
                next = index + 1;
                if !send(&tx, text).await {
                    return;
                }
            }
            Ok(Err(broadcast::error::RecvError::Lagged(_))) => {
                if !catch_up(&node, &mut next, &mut skip, node.durable_next(), &tx).await {
                    return;
                }
            }
            Ok(Err(broadcast::error::RecvError::Closed)) => return,
            Err(_) => {
                if !send(&tx, ": keepalive\n\n".into()).await {
                    return;
                }
            }
        }
    }
}
