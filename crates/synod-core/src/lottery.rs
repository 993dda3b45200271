//! Verifiable stake-weighted lotteries (docs/PROTOCOL.md §17): who proposes
//! a round, or which `k` members of a large electorate decide a low-stakes
//! proposal. The seed comes from the log (the hash of the entry before the
//! draw, and what is being drawn for), so nobody chooses it and anyone with
//! the log can redo the draw; every step is integer arithmetic on SHA-256
//! output, so every implementation draws the same members.

use sha2::{Digest as _, Sha256};

use crate::wire::Digest;

/// Domain separation of lottery seeds and draws.
const TAG: &[u8] = b"synod/lottery/v1";

/// The seed of a lottery: SHA-256 of the tag, then each part as its length
/// (8 bytes, big-endian) and its bytes. What the parts are is the caller's:
/// a committee's are in `stake::committee_seed` (the proposal's own log
/// entry's hash, PROTOCOL.md §20.3), a round proposer's in §20.4.
pub fn seed(parts: &[&[u8]]) -> Digest {
    let mut h = Sha256::new();
    h.update(TAG);
    for part in parts {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    Digest(h.finalize().into())
}

/// A uniform integer in `[0, total)` for draw `j`, by rejection sampling on
/// 128-bit numbers: SHA-256(seed ‖ j ‖ attempt) (both 4 bytes, big-endian),
/// its first 16 bytes big-endian as `x`, accepted when
/// `x < ⌊(2¹²⁸ − 1) / total⌋ × total`, then `x mod total`. `total > 0`.
fn uniform(seed: &Digest, j: u32, total: u128) -> u128 {
    let limit = (u128::MAX / total) * total;
    for attempt in 0u32.. {
        let mut h = Sha256::new();
        h.update(seed.0);
        h.update(j.to_be_bytes());
        h.update(attempt.to_be_bytes());
        let bytes: [u8; 32] = h.finalize().into();
        let x = u128::from_be_bytes(bytes[..16].try_into().expect("16 bytes"));
        if x < limit {
            return x % total;
        }
    }
    unreachable!("a rejection happens with probability below one half")
}

/// Draws up to `k` distinct indices of `stakes`, without replacement: draw
/// `j` picks among the members not drawn yet, each with probability its
/// stake over their total. With `r` the uniform number of draw `j` over
/// that total, the pick is the first member (in index order, skipping those
/// drawn) whose running sum of stakes exceeds `r`. Members with stake 0 are
/// never drawn; fewer than `k` come back when fewer have stake.
pub fn draw(seed: &Digest, stakes: &[u128], k: usize) -> Vec<usize> {
    let mut drawn = vec![false; stakes.len()];
    let mut total: u128 = stakes.iter().sum();
    let mut out = Vec::with_capacity(k.min(stakes.len()));
    for j in 0..k {
        if total == 0 {
            break;
        }
        let r = uniform(seed, j as u32, total);
        let mut running = 0u128;
        let pick = stakes
            .iter()
            .enumerate()
            .filter(|(i, _)| !drawn[*i])
            .find(|(_, s)| {
                running += **s;
                r < running
            })
            .map(|(i, _)| i)
            .expect("r is below the total of the members left");
        drawn[pick] = true;
        total -= stakes[pick];
        out.push(pick);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_draws_the_same_members() {
        let s = seed(&[b"head", b"proposal"]);
        let stakes: Vec<u128> = (1..=50).collect();
        assert_eq!(draw(&s, &stakes, 7), draw(&s, &stakes, 7));
        assert_ne!(
            draw(&s, &stakes, 7),
            draw(&seed(&[b"head", b"other"]), &stakes, 7)
        );
        // Parts are length-prefixed: moving a byte between them changes the seed.
        assert_ne!(seed(&[b"ab", b"c"]), seed(&[b"a", b"bc"]));
    }

    #[test]
    fn draws_are_distinct_and_skip_zero_stakes() {
        let stakes = [0, 5, 0, 1, 3, 0];
        for n in 0..20u8 {
            let got = draw(&seed(&[&[n]]), &stakes, 10);
            let mut sorted = got.clone();
            sorted.sort();
            assert_eq!(sorted, vec![1, 3, 4], "{got:?}");
        }
        assert!(draw(&seed(&[]), &[0, 0], 2).is_empty());
        assert!(draw(&seed(&[]), &[], 3).is_empty());
    }

    #[test]
    fn a_member_is_drawn_in_proportion_to_its_stake() {
        // First picks over 4,000 seeds; stakes 1 : 2 : 7 (means 400, 800,
        // 2,800; ± 5 standard deviations is about ± 100, 130, 150).
        let stakes = [1u128, 2, 7];
        let mut counts = [0u32; 3];
        for n in 0..4_000u32 {
            counts[draw(&seed(&[&n.to_be_bytes()]), &stakes, 1)[0]] += 1;
        }
        for (count, expected) in counts.iter().zip([400, 800, 2_800]) {
            assert!(count.abs_diff(expected) < 160, "{counts:?}");
        }
    }

    #[test]
    fn huge_stakes_do_not_overflow() {
        let stakes = [u128::MAX / 4, u128::MAX / 4, 1];
        let got = draw(&seed(&[b"x"]), &stakes, 3);
        assert_eq!(got.len(), 3);
    }
}
