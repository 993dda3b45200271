//! The linearizability checker of `support/history.rs` on histories made by
//! hand: it accepts the legal ones and names the violation in each illegal
//! one, so that a pass in the cluster tests means something.

mod support;

use std::time::{Duration, Instant};

use support::history::{Read, Write, acknowledged_exactly_once, check};

/// Instants at whole "ticks" after a common origin.
struct Clock(Instant);

impl Clock {
    fn at(&self, tick: u64) -> Instant {
        self.0 + Duration::from_millis(tick)
    }
    fn write(&self, id: &str, invoked: u64, acknowledged: Option<u64>) -> Write {
        Write {
            id: id.into(),
            invoked: self.at(invoked),
            acknowledged: acknowledged.map(|t| self.at(t)),
        }
    }
    fn read(&self, log: &[&str], invoked: u64, completed: u64) -> Read {
        Read {
            log: log.iter().map(|s| s.to_string()).collect(),
            invoked: self.at(invoked),
            completed: self.at(completed),
        }
    }
}

#[test]
fn legal_histories_pass() {
    let c = Clock(Instant::now());
    // a then b, concurrent c that is seen by the last read only; an
    // unacknowledged d that shows up; an id written by someone else (x).
    let writes = [
        c.write("a", 0, Some(2)),
        c.write("b", 3, Some(5)),
        c.write("c", 4, Some(9)),
        c.write("d", 4, None),
    ];
    let reads = [
        c.read(&["x", "a"], 2, 3),
        c.read(&["x", "a", "b"], 6, 7),
        c.read(&["x", "a", "b", "d", "c"], 10, 11),
        // Concurrent with c's write: may or may not see it.
        c.read(&["x", "a", "b"], 8, 12),
    ];
    assert_eq!(check(&writes, &reads), Ok(()));
    let log: Vec<String> = reads[2].log.clone();
    assert_eq!(acknowledged_exactly_once(&writes, &log), Ok(()));
}

#[test]
fn each_violation_is_named() {
    let c = Clock(Instant::now());
    let writes = [c.write("a", 0, Some(2)), c.write("b", 3, Some(5))];
    let cases = [
        (vec![c.read(&["a", "a"], 6, 7)], "twice"),
        (
            vec![c.read(&["a", "b"], 6, 7), c.read(&["b", "a"], 6, 7)],
            "diverge",
        ),
        (
            vec![c.read(&["a", "b"], 6, 7), c.read(&["a"], 8, 9)],
            "completed before",
        ),
        (vec![c.read(&[], 3, 4)], "lacks it"),
        (vec![c.read(&["a", "b"], 1, 2)], "written only after"),
        (vec![c.read(&["b", "a"], 6, 7)], "yet comes after"),
    ];
    for (reads, expected) in cases {
        let got = check(&writes, &reads).unwrap_err();
        assert!(got.contains(expected), "{expected:?} in {got:?}");
    }
    let log = vec!["a".to_string()];
    assert!(
        acknowledged_exactly_once(&writes, &log)
            .unwrap_err()
            .contains("lost")
    );
    let log: Vec<String> = ["a", "b", "b"].iter().map(|s| s.to_string()).collect();
    assert!(
        acknowledged_exactly_once(&writes, &log)
            .unwrap_err()
            .contains("2 times")
    );
}
