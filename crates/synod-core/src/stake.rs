//! Stake-weighted validation and selection (`docs/PROTOCOL.md` §20).
//!
//! * **The stake rule.** A proposal with `"method": "stake"` is approved
//!   when the stake that endorsed it is *more than two thirds of the whole
//!   electorate's stake*, not of those who answered: silence and abstention
//!   count against approval. It is rejected as soon as the stake that
//!   challenged it is at least one third of the whole, because approval is
//!   then impossible. Otherwise it escalates when it closes.
//! * **Committees.** A low-stakes proposal may ask for a committee of `k`:
//!   the electorate becomes `k` members drawn by stake with the lottery of
//!   §17, seeded from the hash of the proposal's own log entry.
//! * **Round proposers.** A space may let only the member drawn for the
//!   current round propose in a domain.
//!
//! Stakes are integers in 10⁻¹² (the unit of influence); a granted stake of
//! `n` whole units is `n × 10¹²`. Everything here is integer arithmetic.

use serde::{Deserialize, Serialize};

use crate::domain::Domain;
use crate::error::{ErrorKind, Rejection, reject};
use crate::fixed::{Authority, Influence, Trust};
use crate::lottery;
use crate::message::{Method, Proposal};
use crate::policy::Policy;
use crate::tally::{Reason, Stance, Tally, Verdict};
use crate::wire::Digest;

/// Largest committee a proposal may ask for.
pub const MAX_COMMITTEE: u32 = 100;
/// Largest stake an admin may grant one agent, in whole units.
pub const MAX_GRANTED_STAKE: u64 = 1_000_000_000_000;
/// A whole unit of stake in the stake unit (10⁻¹²).
pub const STAKE_ONE: u128 = 1_000_000_000_000;
/// What the endorsement and challenge of a stake tally are scaled by, so
/// that they print like a linear tally's weights (10⁻¹⁸).
const TALLY_SCALE: u128 = 1_000_000;

/// Shape of a proposal's `committee` (§4.4): only on a vote or a stake
/// proposal (`malformed` on a belief proposal), `1 … MAX_COMMITTEE`
/// (`out_of_range`).
pub fn check_committee(p: &Proposal) -> Result<(), Rejection> {
    let Some(k) = p.committee else {
        return Ok(());
    };
    if !matches!(p.method(), Method::Vote | Method::Stake) {
        return reject(
            ErrorKind::Malformed,
            "a committee decides a vote or a stake proposal only",
        );
    }
    if k == 0 || k > MAX_COMMITTEE {
        return reject(
            ErrorKind::OutOfRange,
            format!("committee must be in 1..={MAX_COMMITTEE}"),
        );
    }
    Ok(())
}

/// Shape of a grant's `stake` (§4.8): at most [`MAX_GRANTED_STAKE`] whole
/// units (`out_of_range`).
pub fn check_granted(stake: Option<u64>) -> Result<(), Rejection> {
    match stake {
        Some(s) if s > MAX_GRANTED_STAKE => reject(
            ErrorKind::OutOfRange,
            format!("a granted stake is at most {MAX_GRANTED_STAKE} units"),
        ),
        _ => Ok(()),
    }
}

/// Where a member's stake comes from (space configuration `stake`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StakeSource {
    /// Its influence in the domain, `authority × trust` (earned trust is the
    /// stake).
    #[default]
    Influence,
    /// The stake the admin granted it (`grant.stake`), in whole units.
    Granted,
}

impl StakeSource {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            StakeSource::Influence => "influence",
            StakeSource::Granted => "granted",
        }
    }
}

/// A member's stake: its influence, or its granted whole units × 10¹².
pub fn stake_of(source: StakeSource, authority: Authority, trust: Trust, granted: u64) -> u128 {
    match source {
        StakeSource::Influence => u128::from(Influence::of(authority, trust).0),
        StakeSource::Granted => u128::from(granted) * STAKE_ONE,
    }
}

/// Counts a response of a member holding `stake` in a stake proposal's
/// tally: `E`, `C` in 10⁻¹⁸ (stake × 10⁶), `V` the stake that took a side.
/// An abstention adds nothing. The confidence does not weigh.
pub fn add(tally: &mut Tally, stance: Stance, stake: u128) {
    match stance {
        Stance::Endorse => tally.endorse += stake * TALLY_SCALE,
        Stance::Challenge => tally.challenge += stake * TALLY_SCALE,
        Stance::Abstain => return,
    }
    tally.voted += stake;
}

/// The stake that endorsed and the stake that challenged (10⁻¹²).
fn sides(tally: &Tally) -> (u128, u128) {
    (tally.endorse / TALLY_SCALE, tally.challenge / TALLY_SCALE)
}

/// The stake rule (§20.2), `S = P` the electorate's whole stake:
/// `human_required` → escalated (`stakes`); `3E > 2S` → approved;
/// `S > 0` and `3C ≥ S` → rejected; otherwise escalated (`no_quorum`: no
/// supermajority of the whole stake).
pub fn resolve(policy: &Policy, tally: &Tally) -> Verdict {
    if policy.human_required {
        return Verdict::Escalated(Reason::Stakes);
    }
    let (e, c) = sides(tally);
    let s = tally.potential;
    if 3 * e > 2 * s {
        Verdict::Approved
    } else if s > 0 && 3 * c >= s {
        Verdict::Rejected
    } else {
        Verdict::Escalated(Reason::NoQuorum)
    }
}

/// Early finality for the stake rule (§20.2): endorsements and challenges
/// only grow, so an approval or a rejection that holds now holds for every
/// completion; an escalation never closes early.
pub fn early(policy: &Policy, tally: &Tally) -> Option<Verdict> {
    match resolve(policy, tally) {
        v @ (Verdict::Approved | Verdict::Rejected) => Some(v),
        Verdict::Escalated(_) => None,
    }
}

/// The least endorsed stake that approves (`⌊2S/3⌋ + 1`) and the least
/// challenged stake that rejects (`⌈S/3⌉`, at least 1), in 10⁻¹².
pub fn thresholds(potential: u128) -> (u128, u128) {
    (2 * potential / 3 + 1, potential.div_ceil(3).max(1))
}

/// The seed of a proposal's committee: the lottery seed (§17) of the tag
/// `synod/committee` and the hash of the log entry that carries the
/// proposal.
pub fn committee_seed(entry_hash: &Digest) -> Digest {
    lottery::seed(&[b"synod/committee", &entry_hash.0])
}

/// The seed of round `round`'s proposer draw in `domain`: the lottery seed
/// of the tag `synod/proposer`, the domain, the round (8 bytes, big-endian)
/// and the round's anchor (the hash of the last entry before the round).
pub fn proposer_seed(domain: &Domain, round: u64, anchor: &Digest) -> Digest {
    lottery::seed(&[
        b"synod/proposer",
        domain.as_str().as_bytes(),
        &round.to_be_bytes(),
        &anchor.0,
    ])
}

/// The round a log time falls in, with rounds of `round_ms`.
pub fn round_of(time: u64, round_ms: u64) -> u64 {
    time / round_ms
}

/// Who was drawn to propose in a round: what a node reports and anyone
/// holding the log can redo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoundDraw {
    /// The round: `⌊log time / proposer_round_ms⌋`.
    pub round: u64,
    /// The hash of the last log entry before the round began.
    pub anchor: Digest,
    /// The lottery seed.
    pub seed: Digest,
    /// The candidates in admission order, with their stakes (10⁻¹²).
    pub candidates: Vec<(crate::identity::AgentId, u128)>,
    /// The drawn proposer; `None` when no candidate has stake.
    pub proposer: Option<crate::identity::AgentId>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Stakes;

    fn tally(e: u128, c: u128, s: u128) -> Tally {
        let mut t = Tally::new(s);
        add(&mut t, Stance::Endorse, e);
        add(&mut t, Stance::Challenge, c);
        t
    }

    #[test]
    fn two_thirds_of_the_whole_stake_is_not_enough() {
        let p = Policy::default_for(Stakes::Low);
        assert_eq!(
            resolve(&p, &tally(2, 0, 3)),
            Verdict::Escalated(Reason::NoQuorum)
        );
        assert_eq!(resolve(&p, &tally(201, 0, 300)), Verdict::Approved);
        assert_eq!(
            resolve(&p, &tally(200, 0, 300)),
            Verdict::Escalated(Reason::NoQuorum)
        );
        // All who voted endorsed, but they hold only 2/3 of the whole.
        assert_eq!(early(&p, &tally(200, 0, 300)), None);
        // A third challenging blocks approval: rejected.
        assert_eq!(resolve(&p, &tally(0, 100, 300)), Verdict::Rejected);
        assert_eq!(
            resolve(&p, &tally(0, 99, 300)),
            Verdict::Escalated(Reason::NoQuorum)
        );
        // Nothing at stake decides nothing.
        assert_eq!(
            resolve(&p, &tally(0, 0, 0)),
            Verdict::Escalated(Reason::NoQuorum)
        );
        let human = Policy {
            human_required: true,
            ..p
        };
        assert_eq!(
            resolve(&human, &tally(300, 0, 300)),
            Verdict::Escalated(Reason::Stakes)
        );
        assert_eq!(early(&human, &tally(300, 0, 300)), None);
    }

    #[test]
    fn thresholds_are_the_least_stakes_that_decide() {
        let p = Policy::default_for(Stakes::Low);
        for s in 1..200u128 {
            let (approve, reject) = thresholds(s);
            assert_eq!(resolve(&p, &tally(approve, 0, s)), Verdict::Approved, "{s}");
            assert_ne!(
                resolve(&p, &tally(approve - 1, 0, s)),
                Verdict::Approved,
                "{s}"
            );
            assert_eq!(resolve(&p, &tally(0, reject, s)), Verdict::Rejected, "{s}");
            assert_ne!(
                resolve(&p, &tally(0, reject - 1, s)),
                Verdict::Rejected,
                "{s}"
            );
        }
    }

    #[test]
    fn approval_and_rejection_exclude_each_other() {
        let p = Policy::default_for(Stakes::Low);
        for s in 0..40u128 {
            for e in 0..=s {
                for c in 0..=s - e {
                    let t = tally(e, c, s);
                    let approve = 3 * e > 2 * s;
                    let reject = s > 0 && 3 * c >= s;
                    assert!(!(approve && reject));
                    // Early finality agrees with every completion: the
                    // remaining stake s − e − c may go either way.
                    if let Some(v) = early(&p, &t) {
                        let rest = s - e - c;
                        assert_eq!(resolve(&p, &tally(e + rest, c, s)), v);
                        assert_eq!(resolve(&p, &tally(e, c + rest, s)), v);
                        assert_eq!(resolve(&p, &tally(e, c, s)), v);
                    }
                }
            }
        }
    }
}
