//! Prometheus metrics, kept in atomics and rendered as text on scrape.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use synod_core::ErrorKind;
use synod_core::space::{Effect, Space, Status};
use synod_core::wire::Digest;

/// A histogram with fixed upper bounds.
#[derive(Debug)]
struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    sum_micros: AtomicU64,
    total: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
            total: AtomicU64::new(0),
        }
    }

    fn observe(&self, value: f64) {
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            if value <= *bound {
                count.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.sum_micros
            .fetch_add((value * 1e6) as u64, Ordering::Relaxed);
        self.total.fetch_add(1, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{bound}\"}} {}",
                count.load(Ordering::Relaxed)
            );
        }
        let total = self.total.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {total}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {total}");
    }
}

const BATCH_BOUNDS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0,
];
const SECONDS_BOUNDS: &[f64] = &[
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];
const VOTE_BOUNDS: &[f64] = &[
    0.0, 0.001, 0.01, 0.1, 1.0, 10.0, 60.0, 600.0, 3600.0, 86400.0,
];
const ROUND_BOUNDS: &[f64] = &[1.0, 2.0, 3.0, 5.0, 10.0];

/// The node's metrics.
#[derive(Debug)]
pub struct Metrics {
    entries: AtomicU64,
    batch_entries: Histogram,
    signature_batch: Histogram,
    fsync_seconds: Histogram,
    vote_to_outcome_seconds: Histogram,
    rounds: Histogram,
    rejections: Mutex<HashMap<ErrorKind, u64>>,
    decided: Mutex<HashMap<&'static str, u64>>,
    last_vote: Mutex<HashMap<Digest, u64>>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            entries: AtomicU64::new(0),
            batch_entries: Histogram::new(BATCH_BOUNDS),
            signature_batch: Histogram::new(BATCH_BOUNDS),
            fsync_seconds: Histogram::new(SECONDS_BOUNDS),
            vote_to_outcome_seconds: Histogram::new(VOTE_BOUNDS),
            rounds: Histogram::new(ROUND_BOUNDS),
            rejections: Mutex::new(HashMap::new()),
            decided: Mutex::new(HashMap::new()),
            last_vote: Mutex::new(HashMap::new()),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Metrics {
    pub(crate) fn committed(&self, entries: usize, fsync: Duration) {
        self.entries.fetch_add(entries as u64, Ordering::Relaxed);
        self.batch_entries.observe(entries as f64);
        self.fsync_seconds.observe(fsync.as_secs_f64());
    }

    /// Counts entries a cluster replica applied (their durability is the
    /// replica's concern, so no fsync time is observed).
    pub(crate) fn applied(&self, entries: usize) {
        self.entries.fetch_add(entries as u64, Ordering::Relaxed);
        self.batch_entries.observe(entries as f64);
    }

    pub(crate) fn verified(&self, signatures: usize) {
        self.signature_batch.observe(signatures as f64);
    }

    /// Counts a refusal of `kind` (the node also calls it for requests it
    /// refuses before they reach the sequencer).
    pub fn rejected(&self, kind: ErrorKind) {
        *lock(&self.rejections).entry(kind).or_default() += 1;
    }

    pub(crate) fn observe_effects(&self, space: &Space, time: u64, effects: &[Effect]) {
        for effect in effects {
            match effect {
                Effect::ResponseCounted { proposal, .. } => {
                    lock(&self.last_vote).insert(*proposal, time);
                }
                Effect::ProposalClosed {
                    proposal, status, ..
                } => {
                    let last = lock(&self.last_vote).remove(proposal);
                    let since = last.unwrap_or_else(|| {
                        space.proposal(proposal).map_or(time, |p| p.entered_time)
                    });
                    self.vote_to_outcome_seconds
                        .observe(time.saturating_sub(since) as f64 / 1000.0);
                    *lock(&self.decided).entry(status.as_str()).or_default() += 1;
                    if matches!(status, Status::Approved | Status::Rejected) {
                        self.rounds.observe(rounds(space, proposal) as f64);
                    }
                }
                Effect::HumanResolved {
                    proposal, status, ..
                } => {
                    *lock(&self.decided).entry(status.as_str()).or_default() += 1;
                    self.rounds.observe(rounds(space, proposal) as f64);
                }
                Effect::ProposalSuperseded { proposal, .. } => {
                    lock(&self.last_vote).remove(proposal);
                }
                _ => {}
            }
        }
    }

    /// The metrics in Prometheus text format; gauges are read from `space`.
    pub fn render(&self, space: &Space, queued: usize) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP synod_entries_appended_total Log entries made durable.\n# TYPE synod_entries_appended_total counter\nsynod_entries_appended_total {}",
            self.entries.load(Ordering::Relaxed)
        );
        self.batch_entries.render(
            &mut out,
            "synod_fsync_batch_entries",
            "Entries committed per fsync.",
        );
        self.signature_batch.render(
            &mut out,
            "synod_signature_batch_size",
            "Signatures checked together in one batch verification.",
        );
        self.fsync_seconds.render(
            &mut out,
            "synod_fsync_seconds",
            "Time to write and fsync one batch.",
        );
        let mut by_status: HashMap<Status, u64> = HashMap::new();
        for p in space.proposals().values() {
            *by_status.entry(p.status).or_default() += 1;
        }
        let _ = writeln!(
            out,
            "# HELP synod_proposals Proposals by current status.\n# TYPE synod_proposals gauge"
        );
        for status in Status::ALL {
            let _ = writeln!(
                out,
                "synod_proposals{{status=\"{}\"}} {}",
                status.as_str(),
                by_status.get(&status).copied().unwrap_or(0)
            );
        }
        let _ = writeln!(
            out,
            "# HELP synod_decisions_total Proposals decided, by outcome.\n# TYPE synod_decisions_total counter"
        );
        let decided = lock(&self.decided);
        let mut names: Vec<_> = decided.keys().collect();
        names.sort();
        for name in names {
            let _ = writeln!(
                out,
                "synod_decisions_total{{outcome=\"{name}\"}} {}",
                decided[name]
            );
        }
        let _ = writeln!(
            out,
            "# HELP synod_escalation_queue_depth Escalated proposals waiting for reviewers.\n# TYPE synod_escalation_queue_depth gauge\nsynod_escalation_queue_depth {}",
            by_status.get(&Status::Escalated).copied().unwrap_or(0)
        );
        self.vote_to_outcome_seconds.render(
            &mut out,
            "synod_last_vote_to_outcome_seconds",
            "Log time from a proposal's last counted response to its close.",
        );
        self.rounds.render(
            &mut out,
            "synod_rounds_per_decision",
            "Proposals in a decided proposal's supersede chain (1 when it was decided first time).",
        );
        let _ = writeln!(
            out,
            "# HELP synod_rejections_total Refused messages by error kind.\n# TYPE synod_rejections_total counter"
        );
        let rejections = lock(&self.rejections);
        for kind in ErrorKind::ALL {
            let _ = writeln!(
                out,
                "synod_rejections_total{{kind=\"{}\"}} {}",
                kind.as_str(),
                rejections.get(&kind).copied().unwrap_or(0)
            );
        }
        let _ = writeln!(
            out,
            "# HELP synod_queue_depth Messages waiting for the sequencer.\n# TYPE synod_queue_depth gauge\nsynod_queue_depth {queued}"
        );
        out
    }
}

/// How many proposals it took: 1 plus the length of the supersede chain.
fn rounds(space: &Space, proposal: &Digest) -> u64 {
    let mut n = 1;
    let mut current = space.proposal(proposal).and_then(|p| p.supersedes);
    while let Some(id) = current {
        n += 1;
        if n > 1_000 {
            break;
        }
        current = space.proposal(&id).and_then(|p| p.supersedes);
    }
    n
}
