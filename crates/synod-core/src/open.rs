//! Open questions with clustered answers (`docs/PROTOCOL.md` §19).
//!
//! A proposal with `"method": "open"` asks a question without options;
//! each member answers with free text (and its confidence that the answer
//! is right). Equivalent answers are clustered — the same text after
//! normalisation, or numbers within the proposal's tolerance — and the
//! cluster with the most weight wins when its share of the weight reaches
//! the policy's `pool_threshold`; otherwise (a tie included) the proposal
//! escalates.
//!
//! Everything is exact: numbers are millionths in an `i128`, weights are
//! the pool weights of §15.1, the agreement is compared as a cross product.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{ErrorKind, Rejection, reject};
use crate::fixed::{ONE_WIDE, format_scaled};
use crate::policy::Policy;
use crate::tally::{Reason, Tally, Verdict, quorum_met};

/// Longest answer, in bytes after normalisation.
pub const MAX_ANSWER_BYTES: usize = 256;
/// Most distinct (normalised) answers one proposal takes; a response with a
/// new answer beyond it is `too_large`.
pub const MAX_DISTINCT_ANSWERS: usize = 4096;
/// Largest magnitude of a numeric answer or tolerance: 10¹², as decimals.
const MAX_NUMBER_MICROS: i128 = 1_000_000_000_000_000_000;

/// A proposal's terms for its open question (`"open"` on the wire).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenTerms {
    /// Numbers within this distance of each other are the same answer: a
    /// non-negative decimal with at most six places (default `"0"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerance: Option<String>,
}

impl OpenTerms {
    /// The tolerance in millionths; checks its syntax.
    pub fn tolerance_micros(&self) -> Result<i128, Rejection> {
        match &self.tolerance {
            None => Ok(0),
            Some(text) => match parse_number(text) {
                Some(t) if t >= 0 => Ok(t),
                _ => reject(
                    ErrorKind::Malformed,
                    "open.tolerance is a non-negative decimal with at most 6 places and 12 integer digits",
                ),
            },
        }
    }
}

/// Normalises an answer: ASCII letters to lower case, every run of ASCII
/// whitespace (tab, line feed, vertical tab, form feed, carriage return,
/// space) to one space, leading and trailing whitespace removed. Other
/// characters are kept as they are (no Unicode case folding or
/// normalisation). An answer that then reads as a number
/// ([`parse_number`]) is written in its canonical form: no trailing zeros
/// after the point, no point without decimals, `0` for `-0`. Refuses an answer that is empty after this or longer
/// than [`MAX_ANSWER_BYTES`] bytes, or that holds another control
/// character.
pub fn normalize(text: &str) -> Result<String, Rejection> {
    let mut out = String::with_capacity(text.len());
    let mut space = false;
    for c in text.chars() {
        if matches!(c, '\t' | '\n' | '\u{b}' | '\u{c}' | '\r' | ' ') {
            space = !out.is_empty();
            continue;
        }
        if c.is_control() {
            return reject(
                ErrorKind::Malformed,
                "an answer holds no control characters other than whitespace",
            );
        }
        if space {
            out.push(' ');
            space = false;
        }
        out.push(c.to_ascii_lowercase());
    }
    if out.is_empty() {
        return reject(ErrorKind::Malformed, "an answer must not be empty");
    }
    if out.len() > MAX_ANSWER_BYTES {
        return reject(
            ErrorKind::TooLarge,
            format!("an answer is at most {MAX_ANSWER_BYTES} bytes"),
        );
    }
    Ok(match parse_number(&out) {
        Some(value) => format_number(value),
        None => out,
    })
}

/// A number (millionths) in canonical form: `-1.5`, `100`, `0.000001`.
pub fn format_number(value: i128) -> String {
    let text = format_scaled(value.unsigned_abs(), 6);
    if value < 0 { format!("-{text}") } else { text }
}

/// A normalised answer read as a number, in millionths:
/// `-?(0|[1-9][0-9]{0,11})(.[0-9]{1,6})?` (so `1.50` is `1.5`, `-0` is 0).
pub fn parse_number(text: &str) -> Option<i128> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, frac) = match digits.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (digits, None),
    };
    let ok_whole = !whole.is_empty()
        && whole.len() <= 12
        && whole.bytes().all(|b| b.is_ascii_digit())
        && (whole == "0" || !whole.starts_with('0'));
    let ok_frac =
        frac.is_none_or(|f| !f.is_empty() && f.len() <= 6 && f.bytes().all(|b| b.is_ascii_digit()));
    if !ok_whole || !ok_frac {
        return None;
    }
    let mut value: i128 = whole.parse::<i128>().ok()? * 1_000_000;
    if let Some(f) = frac {
        value += format!("{f:0<6}").parse::<i128>().ok()?;
    }
    debug_assert!(value < MAX_NUMBER_MICROS);
    Some(if negative { -value } else { value })
}

/// A normalised answer and, if it reads as one, its number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The normalised text.
    pub text: String,
    /// Its value in millionths, if it is a number.
    pub number: Option<i128>,
}

impl Answer {
    /// A normalised answer.
    pub fn of(text: String) -> Answer {
        let number = parse_number(&text);
        Answer { text, number }
    }
}

/// When two answers are the same answer. Clusters are the connected
/// components of this relation. An implementation must be deterministic and
/// symmetric: every replica of a space must use the same one, so it is part
/// of the space's configuration (§19).
pub trait Similarity {
    /// Whether `a` and `b` are the same answer.
    fn similar(&self, a: &Answer, b: &Answer) -> bool;

    /// The component of each answer (an index into `answers` of one member
    /// of its component, the same for all its members). The default
    /// compares every pair; an implementation may do better.
    fn components(&self, answers: &[Answer]) -> Vec<usize> {
        let mut parent: Vec<usize> = (0..answers.len()).collect();
        for i in 0..answers.len() {
            for j in i + 1..answers.len() {
                if self.similar(&answers[i], &answers[j]) {
                    union(&mut parent, i, j);
                }
            }
        }
        (0..answers.len()).map(|i| find(&mut parent, i)).collect()
    }
}

fn find(parent: &mut [usize], mut i: usize) -> usize {
    while parent[i] != i {
        parent[i] = parent[parent[i]];
        i = parent[i];
    }
    i
}

fn union(parent: &mut [usize], a: usize, b: usize) {
    let (ra, rb) = (find(parent, a), find(parent, b));
    if ra != rb {
        let (lo, hi) = (ra.min(rb), ra.max(rb));
        parent[hi] = lo;
    }
}

/// The protocol's similarity: numbers within `tolerance` (millionths) of
/// each other, or the same normalised text. A number and a text are never
/// the same answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DefaultSimilarity {
    /// The proposal's tolerance, in millionths.
    pub tolerance: i128,
}

impl Similarity for DefaultSimilarity {
    fn similar(&self, a: &Answer, b: &Answer) -> bool {
        match (a.number, b.number) {
            (Some(x), Some(y)) => (x - y).abs() <= self.tolerance,
            (None, None) => a.text == b.text,
            _ => false,
        }
    }

    /// Distinct texts are their own components, except numbers: sorted by
    /// value, each is joined to the next when they are within the
    /// tolerance, which gives the same components as comparing every pair.
    fn components(&self, answers: &[Answer]) -> Vec<usize> {
        let mut parent: Vec<usize> = (0..answers.len()).collect();
        let mut by_text: BTreeMap<&str, usize> = BTreeMap::new();
        let mut numbers: Vec<(i128, usize)> = Vec::new();
        for (i, a) in answers.iter().enumerate() {
            match a.number {
                Some(x) => numbers.push((x, i)),
                None => {
                    let first = *by_text.entry(a.text.as_str()).or_insert(i);
                    union(&mut parent, first, i);
                }
            }
        }
        numbers.sort();
        for pair in numbers.windows(2) {
            if pair[1].0 - pair[0].0 <= self.tolerance {
                union(&mut parent, pair[0].1, pair[1].1);
            }
        }
        (0..answers.len()).map(|i| find(&mut parent, i)).collect()
    }
}

/// The running state of an open question: the weight behind each distinct
/// normalised answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenTally {
    /// The tolerance, in millionths.
    pub tolerance: i128,
    /// Pool weight per distinct normalised answer.
    pub answers: BTreeMap<String, u128>,
    /// `W`: the summed pool weight of the counted answers.
    pub weight: u128,
    /// The answer adopted, by the rule or by reviewers.
    pub choice: Option<String>,
}

impl OpenTally {
    /// An empty tally with the proposal's tolerance.
    pub fn new(tolerance: i128) -> OpenTally {
        OpenTally {
            tolerance,
            ..OpenTally::default()
        }
    }

    /// Whether one more answer `text` (normalised) would be a distinct
    /// answer beyond [`MAX_DISTINCT_ANSWERS`].
    pub fn full_for(&self, text: &str) -> bool {
        self.answers.len() >= MAX_DISTINCT_ANSWERS && !self.answers.contains_key(text)
    }

    /// Counts a normalised answer with pool weight `weight`.
    pub fn add(&mut self, text: String, weight: u128) {
        *self.answers.entry(text).or_insert(0) += weight;
        self.weight += weight;
    }

    /// The similarity this proposal clusters by.
    pub fn similarity(&self) -> DefaultSimilarity {
        DefaultSimilarity {
            tolerance: self.tolerance,
        }
    }
}

/// One cluster of equivalent answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    /// The answer that names the cluster: its answer with the most weight
    /// (the first in byte order on a tie).
    pub answer: String,
    /// Every distinct normalised answer in it, in byte order.
    pub answers: Vec<String>,
    /// Its summed pool weight (exact; 12 places under linear weighting, 18
    /// under log-odds).
    pub weight: String,
}

/// The clusters of an open question, as the rule sees them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Clustered {
    /// The cluster with the most weight, if exactly one has it: its answer.
    pub leader: Option<String>,
    /// The leader's weight over the total, floored to millionths (`"0"`
    /// without a leader).
    pub agreement: String,
    /// Every cluster, heaviest first (ties in byte order of their answer).
    pub clusters: Vec<Cluster>,
}

/// Clusters `tally`'s answers with `similarity` and finds the leader.
/// `decimals` is the number of places of a weight (12 or 18).
pub fn cluster(tally: &OpenTally, similarity: &dyn Similarity, decimals: u32) -> Clustered {
    cluster_weighed(tally, similarity, decimals).0
}

/// [`cluster`], with the leader's weight (0 without a leader).
fn cluster_weighed(
    tally: &OpenTally,
    similarity: &dyn Similarity,
    decimals: u32,
) -> (Clustered, u128) {
    let distinct: Vec<Answer> = tally.answers.keys().cloned().map(Answer::of).collect();
    let weights: Vec<u128> = tally.answers.values().copied().collect();
    let components = similarity.components(&distinct);
    let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, c) in components.into_iter().enumerate() {
        groups.entry(c).or_default().push(i);
    }
    let mut clusters: Vec<(u128, Cluster)> = groups
        .into_values()
        .map(|members| {
            // Members are in byte order (the map's); the first with the
            // most weight names the cluster.
            let named = members
                .iter()
                .copied()
                .fold(None::<usize>, |best, i| match best {
                    Some(b) if weights[b] >= weights[i] => Some(b),
                    _ => Some(i),
                })
                .expect("a cluster has a member");
            let weight: u128 = members.iter().map(|&i| weights[i]).sum();
            let cluster = Cluster {
                answer: distinct[named].text.clone(),
                answers: members.iter().map(|&i| distinct[i].text.clone()).collect(),
                weight: format_scaled(weight, decimals),
            };
            (weight, cluster)
        })
        .collect();
    clusters.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.answer.cmp(&b.1.answer)));
    let top = clusters.first().map_or(0, |c| c.0);
    let unique = top > 0 && clusters.get(1).is_none_or(|c| c.0 < top);
    let leader = unique.then(|| clusters[0].1.answer.clone());
    let agreement = if unique {
        format_scaled(top * ONE_WIDE / tally.weight, 6)
    } else {
        "0".to_string()
    };
    let clustered = Clustered {
        leader,
        agreement,
        clusters: clusters.into_iter().map(|(_, c)| c).collect(),
    };
    (clustered, if unique { top } else { 0 })
}

/// The rule for an open question (§19.3): `human_required`, the quorum,
/// then a leader whose agreement reaches `pool_threshold`; otherwise
/// contested.
pub fn resolve(
    policy: &Policy,
    tally: &Tally,
    open: &OpenTally,
    decimals: u32,
) -> (Verdict, Clustered) {
    let (clustered, top) = cluster_weighed(open, &open.similarity(), decimals);
    // The leader's share of the weight reaches the threshold: top × 10⁶ ≥
    // θ × W, exactly (no leader: top is 0 and nothing clears).
    let clears =
        top > 0 && top * ONE_WIDE >= u128::from(policy.pool_threshold.micros()) * open.weight;
    let verdict = if policy.human_required {
        Verdict::Escalated(Reason::Stakes)
    } else if !quorum_met(policy, tally) {
        Verdict::Escalated(Reason::NoQuorum)
    } else if clears {
        Verdict::Approved
    } else {
        Verdict::Escalated(Reason::Contested)
    };
    (verdict, clustered)
}

/// Whether a member's answer is right given the outcome's (both
/// normalised), by the proposal's similarity: 1 or 0, the outcome `y` of
/// its trust update (§19.4).
pub fn is_right(open: &OpenTally, answer: &str, outcome: &str) -> bool {
    open.similarity().similar(
        &Answer::of(answer.to_string()),
        &Answer::of(outcome.to_string()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_folds_ascii_case_and_collapses_whitespace() {
        assert_eq!(normalize("  Paris\t\n FRANCE ").unwrap(), "paris france");
        // Only ASCII letters fold: É stays as it is.
        assert_eq!(normalize("ÉCOLE").unwrap(), "\u{c9}cole");
        assert!(normalize(" \t ").is_err());
        assert_eq!(normalize(" 100.40 ").unwrap(), "100.4");
        assert_eq!(normalize("-0.0").unwrap(), "0");
        assert_eq!(normalize("1.").unwrap(), "1.");
        assert_eq!(normalize("-2.500").unwrap(), "-2.5");
        assert!(normalize("a\u{0}b").is_err());
        assert_eq!(normalize(&"x".repeat(256)).unwrap().len(), 256);
        assert_eq!(
            normalize(&"x".repeat(257)).unwrap_err().kind,
            ErrorKind::TooLarge
        );
    }

    #[test]
    fn numbers_are_exact_millionths() {
        assert_eq!(parse_number("1.50"), Some(1_500_000));
        assert_eq!(parse_number("-0"), Some(0));
        assert_eq!(parse_number("007"), None);
        assert_eq!(parse_number("1e3"), None);
        assert_eq!(parse_number("1.1234567"), None);
        assert_eq!(
            parse_number("999999999999.999999"),
            Some(999_999_999_999_999_999)
        );
        assert_eq!(parse_number("1000000000000"), None);
    }

    #[test]
    fn the_fast_components_agree_with_every_pair() {
        struct Pairs(DefaultSimilarity);
        impl Similarity for Pairs {
            fn similar(&self, a: &Answer, b: &Answer) -> bool {
                self.0.similar(a, b)
            }
        }
        let texts = [
            "1", "1.4", "1.9", "2.5", "4", "10", "-1", "paris", "rome", "0.6",
        ];
        let mut cases: Vec<Vec<String>> = vec![texts.iter().map(|t| t.to_string()).collect()];
        // And random sets of numbers and words, from a fixed seed.
        let mut x: u64 = 7;
        for _ in 0..200 {
            let mut set = Vec::new();
            for _ in 0..12 {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let v = (x >> 40) % 4000;
                set.push(match v % 7 {
                    0 => ["a", "b", "c"][(v % 3) as usize].to_string(),
                    _ => format_number(v as i128 * 1_000 - 2_000_000),
                });
            }
            set.sort();
            set.dedup();
            cases.push(set);
        }
        for (texts, tolerance) in cases
            .iter()
            .flat_map(|t| [0, 400_000, 500_000, 600_000, 3_000_000].map(|tol| (t, tol)))
        {
            let answers: Vec<Answer> = texts.iter().map(|t| Answer::of(t.to_string())).collect();
            let fast = DefaultSimilarity { tolerance }.components(&answers);
            let slow = Pairs(DefaultSimilarity { tolerance }).components(&answers);
            for i in 0..answers.len() {
                for j in 0..answers.len() {
                    assert_eq!(
                        fast[i] == fast[j],
                        slow[i] == slow[j],
                        "{tolerance} {i} {j}"
                    );
                }
            }
        }
    }
}
