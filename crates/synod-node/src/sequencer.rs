//! The local sequencer: one thread that orders messages, stamps log time,
//! applies them to the space, and group-commits each batch before it answers.
//!
//! One loop iteration: wait for the first message (or the next deadline),
//! take everything else already queued (up to [`MAX_BATCH`]), check the
//! signatures of the whole batch at once (batch verification,
//! docs/PROTOCOL.md §2.3; the API threads have already parsed each message
//! and decoded its signature), apply it all under the state's write lock,
//! append the accepted entries to the store in one transaction (one fsync),
//! release the lock, then answer and publish.
//! While one batch is being written, the next one queues up: the busier the
//! node, the more entries share an fsync.

use std::sync::atomic::Ordering;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use synod_core::log::LogIndex;
use synod_core::space::Effect;
use synod_core::wire::{Prepared, Verified, verify_batch};
use tokio::sync::oneshot;

use crate::{Local, Node, Published, Submission, SubmitError, now_ms};

/// A batch smaller than this waits up to [`GROUP_COMMIT_WAIT`] for more.
pub const GROUP_COMMIT_TARGET: usize = 32;
/// Longest a small batch waits for company before it is committed. Measured
/// with `synod bench` (docs/PERFORMANCE.md): waits of 0.5 and 1.5 ms both
/// raised durable responses per second by about 8 % over no wait on the
/// project machine, without raising median latency; 1 ms sits between them.
pub const GROUP_COMMIT_WAIT: Duration = Duration::from_millis(1);

/// Most messages applied and committed in one batch.
pub const MAX_BATCH: usize = 4_096;
/// A snapshot is written after this many entries since the last one.
pub const SNAPSHOT_EVERY_ENTRIES: u64 = 10_000;
/// Longest the sequencer sleeps with nothing queued, so that a deadline
/// scheduled by another node's clock is never missed by much.
const MAX_IDLE: Duration = Duration::from_secs(1);

/// What the sequencer is asked to do.
// Nearly every command is a submission.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Command {
    /// Check the signature (if not yet checked), order, apply and persist a
    /// message.
    Submit { message: Submission, reply: Reply },
    /// Stop after the commands before this one.
    Shutdown,
}

pub(crate) type Reply = oneshot::Sender<Result<Receipt, SubmitError>>;

/// A durable, applied message.
#[derive(Debug, Clone)]
pub struct Receipt {
    /// Its log index.
    pub index: LogIndex,
    /// Its log time.
    pub time: u64,
    /// What applying it did.
    pub effects: Vec<Effect>,
}

pub(crate) fn run(node: Arc<Node>, rx: mpsc::Receiver<Command>) {
    let Some(local) = node.local() else { return };
    let mut last_snapshot = node.durable_next();
    loop {
        let wait = node
            .read(|s| s.next_deadline())
            .map(|d| Duration::from_millis(d.saturating_sub(now_ms())))
            .unwrap_or(MAX_IDLE)
            .min(MAX_IDLE);
        let Some((submissions, stop)) = collect(&node, &rx, wait, MAX_BATCH) else {
            return;
        };
        let stepped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            step(&node, local, submissions)
        }));
        match stepped {
            Ok(true) => {}
            Ok(false) => return,
            Err(panic) => {
                let what = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                let mut space = local.space.write().unwrap_or_else(|e| e.into_inner());
                halt(
                    &node,
                    local,
                    &mut space,
                    format!("the sequencer panicked: {what}"),
                );
                return;
            }
        }
        let next = node.durable_next();
        if next - last_snapshot >= SNAPSHOT_EVERY_ENTRIES {
            let (index, bytes) = node.read(|s| (s.head().next_index - 1, s.to_snapshot()));
            match local.store.save_snapshot(index, &bytes) {
                Ok(()) => last_snapshot = next,
                Err(e) => eprintln!("synod: snapshot at entry {index} failed: {e}"),
            }
        }
        if stop {
            return;
        }
    }
}

/// Waits up to `wait` for the first command, then takes what else is queued
/// (at most `limit` messages) and, when only a few came, waits up to
/// [`GROUP_COMMIT_WAIT`] for more. Returns the submissions and whether a
/// `Shutdown` came; `None` when every sender is gone.
pub(crate) fn collect(
    node: &Node,
    rx: &mpsc::Receiver<Command>,
    wait: Duration,
    limit: usize,
) -> Option<(Vec<(Submission, Reply)>, bool)> {
    let mut submissions = Vec::new();
    let mut stop = match rx.recv_timeout(wait) {
        Ok(c) => take(node, c, &mut submissions),
        Err(mpsc::RecvTimeoutError::Timeout) => false,
        Err(mpsc::RecvTimeoutError::Disconnected) => return None,
    };
    if !stop {
        stop = drain(node, rx, &mut submissions, limit);
    }
    // Group commit: when only a few messages are waiting, give others a
    // moment to join this fsync. Each commit costs CPU (page writes, the
    // device's doorbell), and bigger batches verify their signatures more
    // cheaply, so fewer, fuller batches leave more CPU for the rest; the
    // wait is bounded by [`GROUP_COMMIT_WAIT`].
    let target = GROUP_COMMIT_TARGET.min(limit);
    if !stop && !submissions.is_empty() && submissions.len() < target {
        let until = Instant::now() + GROUP_COMMIT_WAIT;
        while !stop && submissions.len() < target {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match rx.recv_timeout(left) {
                Ok(c) => stop = take(node, c, &mut submissions),
                Err(_) => break,
            }
        }
    }
    Some((submissions, stop))
}

/// Adds a command taken off the queue to `into`; true if it is `Shutdown`.
fn take(node: &Node, command: Command, into: &mut Vec<(Submission, Reply)>) -> bool {
    match command {
        Command::Submit { message, reply } => {
            node.queued.fetch_sub(1, Ordering::Relaxed);
            into.push((message, reply));
            false
        }
        Command::Shutdown => true,
    }
}

/// Takes what is already queued, up to `limit` messages, without waiting.
/// True if it met `Shutdown` (it takes nothing after it).
fn drain(
    node: &Node,
    rx: &mpsc::Receiver<Command>,
    into: &mut Vec<(Submission, Reply)>,
    limit: usize,
) -> bool {
    while into.len() < limit {
        match rx.try_recv() {
            Ok(c) => {
                if take(node, c, into) {
                    return true;
                }
            }
            Err(_) => break,
        }
    }
    false
}

/// Stops the node taking messages, and puts the state back to what is on
/// disk, so that no reader ever sees an entry that was applied in memory but
/// not made durable. If even that fails, the process cannot serve a true
/// state and aborts; a restart recovers from the store.
fn halt(node: &Node, local: &Local, space: &mut synod_core::Space, why: String) {
    eprintln!("synod: {why}; the node stops taking messages");
    *node.fatal.lock().unwrap_or_else(|p| p.into_inner()) = Some(why);
    match local.store.recover() {
        Ok((durable, _)) => *space = durable,
        Err(e) => {
            eprintln!("synod: cannot reload the durable state ({e}); aborting");
            std::process::abort();
        }
    }
}

/// Checks the signatures of every prepared submission, as one batch, and
/// answers those that fail.
pub(crate) fn verify(node: &Node, submissions: Vec<(Submission, Reply)>) -> Vec<(Verified, Reply)> {
    let mut verified = Vec::with_capacity(submissions.len());
    let mut prepared: Vec<Prepared> = Vec::new();
    let mut waiting = Vec::new();
    // Keep arrival order: the prepared ones go back into their slots.
    for (i, (message, reply)) in submissions.into_iter().enumerate() {
        match message {
            Submission::Verified(message) => verified.push((i, message, reply)),
            Submission::Prepared(message) => {
                prepared.push(message);
                waiting.push((i, reply));
            }
        }
    }
    if !prepared.is_empty() {
        node.metrics.verified(prepared.len());
    }
    for ((i, reply), result) in waiting.into_iter().zip(verify_batch(prepared)) {
        match result {
            Ok(message) => verified.push((i, message, reply)),
            Err(rejection) => {
                node.metrics.rejected(rejection.kind);
                let _ = reply.send(Err(SubmitError::Rejected(rejection)));
            }
        }
    }
    verified.sort_by_key(|(i, ..)| *i);
    verified.into_iter().map(|(_, m, r)| (m, r)).collect()
}

/// Verifies, applies and persists one batch. Returns false once the node
/// must stop.
fn step(node: &Node, local: &Local, submissions: Vec<(Submission, Reply)>) -> bool {
    let submissions = verify(node, submissions);
    let now = now_ms();
    let mut space = local.space.write().unwrap_or_else(|e| e.into_inner());
    let mut batch = Vec::new();
    if space.next_deadline().is_some_and(|d| d <= now) {
        batch.push(space.tick(now));
    }
    let mut waiting = Vec::with_capacity(submissions.len());
    for (message, reply) in submissions {
        match space.append(message, now) {
            Ok((entry, effects)) => {
                waiting.push((reply, entry.index, entry.time, effects.clone()));
                batch.push((entry, effects));
            }
            Err(rejection) => {
                node.metrics.rejected(rejection.kind);
                let _ = reply.send(Err(SubmitError::Rejected(rejection)));
            }
        }
    }
    if batch.is_empty() {
        return true;
    }
    let started = Instant::now();
    if let Err(e) = local.store.append(&batch) {
        let why = format!("storage failed: {e}");
        halt(node, local, &mut space, why.clone());
        drop(space);
        for (reply, ..) in waiting {
            let _ = reply.send(Err(SubmitError::Unavailable(why.clone())));
        }
        return false;
    }
    node.metrics.committed(batch.len(), started.elapsed());
    for (entry, effects) in &batch {
        node.metrics.observe_effects(&space, entry.time, effects);
    }
    node.durable_next
        .store(space.head().next_index, Ordering::Release);
    drop(space);

    // Trust history first, so that a client reading an agent right after its
    // answer sees the history that answer implies.
    let published: Vec<Published> = batch
        .into_iter()
        .map(|(entry, effects)| Published {
            index: entry.index,
            time: entry.time,
            effects,
            frames: std::sync::OnceLock::new(),
        })
        .collect();
    // The entries are durable: whatever happens to this bookkeeping, every
    // client below gets its answer.
    let recorded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        for p in &published {
            node.record_trust(p);
        }
    }));
    if recorded.is_err() {
        eprintln!("synod: recording trust history panicked; the log is intact");
    }
    for (reply, index, time, effects) in waiting {
        let _ = reply.send(Ok(Receipt {
            index,
            time,
            effects,
        }));
    }
    for p in published {
        // No subscriber is fine: the event is in the store.
        let _ = node.events.send(Arc::new(p));
    }
    true
}
