//! The local sequencer: one thread that orders messages, stamps log time,
//! applies them to the space, and group-commits each batch before it answers.
//!
//! One loop iteration: wait for the first message (or the next deadline),
//! take everything else already queued (up to [`MAX_BATCH`]), apply it all
//! under the state's write lock, append the accepted entries to the store in
//! one transaction (one fsync), release the lock, then answer and publish.
//! While one batch is being written, the next one queues up: the busier the
//! node, the more entries share an fsync.

use std::sync::atomic::Ordering;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use synod_core::log::LogIndex;
use synod_core::space::Effect;
use synod_core::wire::Verified;
use tokio::sync::oneshot;

use crate::{Node, Published, SubmitError, now_ms};

/// A batch smaller than this waits up to [`GROUP_COMMIT_WAIT`] for more.
pub const GROUP_COMMIT_TARGET: usize = 32;
/// Longest a small batch waits for company before it is committed. Measured
/// with `synod bench`: 1 ms raises durable responses per second by about
/// 8 % on the project machine without raising median latency
/// (docs/PERFORMANCE.md).
pub const GROUP_COMMIT_WAIT: Duration = Duration::from_millis(1);

/// Most messages applied and committed in one batch.
pub const MAX_BATCH: usize = 4_096;
/// A snapshot is written after this many entries since the last one.
pub const SNAPSHOT_EVERY_ENTRIES: u64 = 10_000;
/// Longest the sequencer sleeps with nothing queued, so that a deadline
/// scheduled by another node's clock is never missed by much.
const MAX_IDLE: Duration = Duration::from_secs(1);

/// What the sequencer is asked to do.
// Nearly every command is a submission; see `Payload`.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Command {
    /// Order, apply and persist a message.
    Submit {
        message: Verified,
        reply: oneshot::Sender<Result<Receipt, SubmitError>>,
    },
    /// Stop after the commands before this one.
    Shutdown,
}

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
    let mut last_snapshot = node.durable_next();
    loop {
        let wait = node
            .read(|s| s.next_deadline())
            .map(|d| Duration::from_millis(d.saturating_sub(now_ms())))
            .unwrap_or(MAX_IDLE)
            .min(MAX_IDLE);
        let mut commands = Vec::new();
        match rx.recv_timeout(wait) {
            Ok(c) => commands.push(c),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
        while commands.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(c) => commands.push(c),
                Err(_) => break,
            }
        }
        // Group commit: when only a few messages are waiting, give others a
        // moment to join this fsync. Each commit costs CPU (page writes, the
        // device's doorbell), so fewer, fuller batches leave more CPU for
        // checking signatures; the wait is bounded by [`GROUP_COMMIT_WAIT`].
        if !commands.is_empty() && commands.len() < GROUP_COMMIT_TARGET {
            let until = Instant::now() + GROUP_COMMIT_WAIT;
            while commands.len() < GROUP_COMMIT_TARGET {
                let left = until.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                match rx.recv_timeout(left) {
                    Ok(c) => commands.push(c),
                    Err(_) => break,
                }
            }
        }
        node.queued.fetch_sub(
            commands
                .iter()
                .filter(|c| matches!(c, Command::Submit { .. }))
                .count(),
            Ordering::Relaxed,
        );
        let mut stop = false;
        let mut submissions = Vec::with_capacity(commands.len());
        for command in commands {
            match command {
                Command::Submit { message, reply } => submissions.push((message, reply)),
                Command::Shutdown => stop = true,
            }
        }
        let stepped =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| step(&node, submissions)));
        match stepped {
            Ok(true) => {}
            Ok(false) => return,
            Err(panic) => {
                let what = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                let mut space = node.space.write().unwrap_or_else(|e| e.into_inner());
                halt(&node, &mut space, format!("the sequencer panicked: {what}"));
                return;
            }
        }
        let next = node.durable_next();
        if next - last_snapshot >= SNAPSHOT_EVERY_ENTRIES {
            let (index, bytes) = node.read(|s| (s.head().next_index - 1, s.to_snapshot()));
            match node.store.save_snapshot(index, &bytes) {
                Ok(()) => last_snapshot = next,
                Err(e) => eprintln!("synod: snapshot at entry {index} failed: {e}"),
            }
        }
        if stop {
            return;
        }
    }
}

/// Stops the node taking messages, and puts the state back to what is on
/// disk, so that no reader ever sees an entry that was applied in memory but
/// not made durable. If even that fails, the process cannot serve a true
/// state and aborts; a restart recovers from the store.
fn halt(node: &Node, space: &mut synod_core::Space, why: String) {
    eprintln!("synod: {why}; the node stops taking messages");
    *node.fatal.lock().unwrap_or_else(|p| p.into_inner()) = Some(why);
    match node.store.recover() {
        Ok((durable, _)) => *space = durable,
        Err(e) => {
            eprintln!("synod: cannot reload the durable state ({e}); aborting");
            std::process::abort();
        }
    }
}

/// Applies and persists one batch. Returns false once the node must stop.
fn step(
    node: &Node,
    submissions: Vec<(Verified, oneshot::Sender<Result<Receipt, SubmitError>>)>,
) -> bool {
    let now = now_ms();
    let mut space = node.space.write().unwrap_or_else(|e| e.into_inner());
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
    if let Err(e) = node.store.append(&batch) {
        let why = format!("storage failed: {e}");
        halt(node, &mut space, why.clone());
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

    for (reply, index, time, effects) in waiting {
        let _ = reply.send(Ok(Receipt {
            index,
            time,
            effects,
        }));
    }
    for (entry, effects) in batch {
        let published = Published {
            index: entry.index,
            time: entry.time,
            effects,
            frames: std::sync::OnceLock::new(),
        };
        node.record_trust(&published);
        // No subscriber is fine: the event is in the store.
        let _ = node.events.send(Arc::new(published));
    }
    true
}
