//! A linearizability checker for an append-only log, the object a synod
//! space is to its clients: writes append an entry (a signed message, named
//! by its id) and are acknowledged or not; reads return the whole log, or a
//! prefix of it, as a sequence of ids.
//!
//! A history of such operations, each with the instants it was invoked and
//! completed (as the client saw them), is linearizable exactly when these
//! hold (proof sketch below):
//!
//! 1. no read holds an id twice;
//! 2. any two reads are prefixes of one another (the log only grows at its
//!    end);
//! 3. a read that completed before another was invoked is a prefix of it;
//! 4. a read holds every write acknowledged before the read was invoked;
//! 5. a read holds no write invoked after the read completed;
//! 6. if write `a` was acknowledged before write `b` was invoked and both
//!    are in a read, `a` comes first.
//!
//! Writes that were never acknowledged (timeouts, crashes) may appear
//! anywhere after they were invoked, or never; ids in reads that no write of
//! the history made (entries other clients or the node itself wrote) are
//! allowed. Sufficiency: order the reads by length (a chain by 2, consistent
//! with real time by 3), put each write just before the first read holding
//! it, in log order, and the rest at the end; 4–6 make every real-time
//! precedence hold. Necessity: each condition is a property of any sequential
//! append-only log.
//!
//! Durability is separate: [`acknowledged_exactly_once`].

#![allow(dead_code)]

use std::collections::HashMap;
use std::time::Instant;

/// A write: it appended `id`, if acknowledged.
#[derive(Debug, Clone)]
pub struct Write {
    pub id: String,
    pub invoked: Instant,
    /// When the acknowledgement arrived; `None` if it never did.
    pub acknowledged: Option<Instant>,
}

/// A read that returned `log`.
#[derive(Debug, Clone)]
pub struct Read {
    pub log: Vec<String>,
    pub invoked: Instant,
    pub completed: Instant,
}

/// The first violation found, in words.
pub type Violation = String;

/// Checks conditions 1–6 of the module documentation.
pub fn check(writes: &[Write], reads: &[Read]) -> Result<(), Violation> {
    let by_id: HashMap<&str, &Write> = writes.iter().map(|w| (w.id.as_str(), w)).collect();
    let positions: Vec<HashMap<&str, usize>> = reads
        .iter()
        .map(|r| {
            r.log
                .iter()
                .enumerate()
                .map(|(i, id)| (id.as_str(), i))
                .collect()
        })
        .collect();
    for (r, pos) in reads.iter().zip(&positions) {
        if pos.len() != r.log.len() {
            return Err(format!("a read holds an id twice: {:?}", duplicate(&r.log)));
        }
    }
    let mut order: Vec<usize> = (0..reads.len()).collect();
    order.sort_by_key(|&i| reads[i].log.len());
    for pair in order.windows(2) {
        let (short, long) = (&reads[pair[0]], &reads[pair[1]]);
        if long.log[..short.log.len()] != short.log[..] {
            return Err(format!(
                "two reads diverge: one of {} entries is not a prefix of one of {}",
                short.log.len(),
                long.log.len()
            ));
        }
    }
    for a in reads {
        for b in reads {
            if a.completed < b.invoked && a.log.len() > b.log.len() {
                return Err(format!(
                    "a read of {} entries completed before a read of {} began",
                    a.log.len(),
                    b.log.len()
                ));
            }
        }
    }
    for (r, pos) in reads.iter().zip(&positions) {
        for w in writes {
            if w.acknowledged.is_some_and(|t| t < r.invoked) && !pos.contains_key(w.id.as_str()) {
                return Err(format!(
                    "{} was acknowledged before a read began, and the read lacks it",
                    w.id
                ));
            }
        }
        for id in &r.log {
            if let Some(w) = by_id.get(id.as_str())
                && w.invoked > r.completed
            {
                return Err(format!("a read holds {id}, written only after it"));
            }
        }
    }
    let Some(longest) = order.last().map(|&i| &positions[i]) else {
        return Ok(());
    };
    // Condition 6 by a sweep: writes by acknowledgement time, each later
    // write checked against the furthest position of those acknowledged
    // before it was sent.
    let mut by_ack: Vec<(Instant, usize, &str)> = writes
        .iter()
        .filter_map(|w| {
            let t = w.acknowledged?;
            longest.get(w.id.as_str()).map(|&p| (t, p, w.id.as_str()))
        })
        .collect();
    by_ack.sort();
    let mut by_invoke: Vec<(Instant, usize, &str)> = writes
        .iter()
        .filter_map(|w| {
            longest
                .get(w.id.as_str())
                .map(|&p| (w.invoked, p, w.id.as_str()))
        })
        .collect();
    by_invoke.sort();
    let (mut next, mut furthest): (usize, Option<(usize, &str)>) = (0, None);
    for (invoked, position, id) in by_invoke {
        while next < by_ack.len() && by_ack[next].0 < invoked {
            let (_, p, a) = by_ack[next];
            if furthest.is_none_or(|(f, _)| p > f) {
                furthest = Some((p, a));
            }
            next += 1;
        }
        if let Some((p, a)) = furthest
            && p > position
        {
            return Err(format!(
                "{a} was acknowledged before {id} was sent, yet comes after it"
            ));
        }
    }
    Ok(())
}

/// Every acknowledged write appears exactly once in `log`.
pub fn acknowledged_exactly_once(writes: &[Write], log: &[String]) -> Result<(), Violation> {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for id in log {
        *counts.entry(id.as_str()).or_default() += 1;
    }
    for w in writes.iter().filter(|w| w.acknowledged.is_some()) {
        match counts.get(w.id.as_str()) {
            Some(1) => {}
            Some(n) => return Err(format!("{} is in the log {n} times", w.id)),
            None => return Err(format!("{} was acknowledged and is lost", w.id)),
        }
    }
    Ok(())
}

fn duplicate(log: &[String]) -> Option<&String> {
    let mut seen = std::collections::HashSet::new();
    log.iter().find(|id| !seen.insert(id.as_str()))
}
