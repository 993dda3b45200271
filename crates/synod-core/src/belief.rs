//! Belief consensus: responses are probability distributions over a
//! proposal's options, pooled into one distribution whose leading option is
//! adopted when its pooled probability reaches the policy's
//! `pool_threshold` (`docs/PROTOCOL.md` §15).
//!
//! Units: probabilities are millionths; a member's pool weight is its weight
//! factor under the policy's weighting (`a·t` in 10⁻¹² linear,
//! `a·(2·min(t, trust_cap))²` in 10⁻¹⁸ log-odds). The log pool sums
//! `w × ln(10⁶ / max(p, floor))` exactly (the logarithm in 10⁻¹², §14.1) and
//! compares options through the integer exponential of §14.2; the linear
//! pool sums `w × p` exactly. The only roundings are the documented
//! truncations of the logarithm, of the per-option exponent and of the
//! exponential; the printed pooled probabilities are floored to millionths.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::fixed::{ONE, ONE_WIDE, Probability, format_scaled};
use crate::logodds::{exp_neg, ln_ratio};
use crate::policy::{Policy, Pool};
use crate::tally::{Reason, Tally, Verdict, quorum_met};

/// 10¹⁸: the unit of [`exp_neg`]'s result, and so `exp(0)`.
const E_ONE: u128 = 1_000_000_000_000_000_000;

/// The running sums of a belief proposal's pool.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BeliefTally {
    /// Per option, in the proposal's order: under the log pool the weighted
    /// penalty `Σ wᵢ × ln(10⁶ / max(pᵢ, floor))` (smaller is better); under
    /// the linear pool the weighted mass `Σ wᵢ × pᵢ` (larger is better).
    pub sums: Vec<u128>,
    /// `W = Σ wᵢ` over the counted distributions.
    pub weight: u128,
}

impl BeliefTally {
    /// An empty pool over `options` options.
    pub fn new(options: usize) -> BeliefTally {
        BeliefTally {
            sums: vec![0; options],
            weight: 0,
        }
    }

    /// Counts one distribution (millionths, in option order) with pool
    /// weight `weight`.
    pub fn add(&mut self, policy: &Policy, weight: u128, distribution: &[u32]) {
        assert_eq!(
            distribution.len(),
            self.sums.len(),
            "a distribution covers every option"
        );
        debug_assert_eq!(
            distribution.iter().map(|&p| u64::from(p)).sum::<u64>(),
            u64::from(ONE)
        );
        for (sum, &p) in self.sums.iter_mut().zip(distribution) {
            *sum += weight
                * match policy.pool {
                    Pool::Log => penalty(policy, p),
                    Pool::Linear => u128::from(p),
                };
        }
        self.weight += weight;
    }
}

/// `ln(10⁶ / max(p, floor))` in 10⁻¹²: how much less likely than certain
/// the log pool takes a probability `p` (millionths) to be.
pub fn penalty(policy: &Policy, p: u32) -> u128 {
    let clipped = p.max(policy.pool_floor.micros()).max(1);
    ln_ratio(ONE_WIDE, u128::from(clipped)) as u128
}

/// The pool of a belief proposal, as the rule sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pooled {
    /// The option with the highest pooled probability, if exactly one has
    /// it and some weight was counted.
    pub leader: Option<usize>,
    /// The pooled probability of each option in millionths, floored; empty
    /// when no weight was counted.
    pub probabilities: Vec<u32>,
    /// Whether the leader's pooled probability reaches `pool_threshold`
    /// (decided exactly, not on the floored figures).
    pub clears: bool,
}

/// A pool as effects and packages show it: the leader and the pooled
/// probabilities by option label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolReport {
    /// The option with the highest pooled probability, if exactly one has
    /// it; `null` on a tie or when nothing was counted.
    pub leader: Option<String>,
    /// The pooled probability of each option, floored to millionths; empty
    /// when nothing was counted.
    pub pooled: BTreeMap<String, Probability>,
}

impl PoolReport {
    /// The report of `pooled` over `options`.
    pub fn new(pooled: &Pooled, options: &[String]) -> PoolReport {
        PoolReport {
            leader: pooled.leader.map(|i| options[i].clone()),
            pooled: options
                .iter()
                .zip(&pooled.probabilities)
                .map(|(o, &p)| (o.clone(), Probability::from_micros(p)))
                .collect(),
        }
    }
}

/// Pools `belief` under `policy` (§15.2).
pub fn pool(policy: &Policy, belief: &BeliefTally) -> Pooled {
    let w = belief.weight;
    let threshold = u128::from(policy.pool_threshold.micros());
    if w == 0 || belief.sums.is_empty() {
        return Pooled {
            leader: None,
            probabilities: Vec::new(),
            clears: false,
        };
    }
    let unique = |best: u128| {
        let mut at = belief.sums.iter().enumerate().filter(|(_, s)| **s == best);
        match (at.next(), at.next()) {
            (Some((i, _)), None) => Some(i),
            _ => None,
        }
    };
    match policy.pool {
        Pool::Log => {
            let best = *belief.sums.iter().min().expect("options");
            let leader = unique(best);
            // exp(−(Λₒ − Λ_best) / W): each option's pooled odds against the
            // best, in 10⁻¹⁸; the best's are exactly 1.
            let odds: Vec<u128> = belief
                .sums
                .iter()
                .map(|&s| exp_neg((s - best) / w))
                .collect();
            let z: u128 = odds.iter().sum();
            Pooled {
                leader,
                probabilities: odds.iter().map(|&e| (e * ONE_WIDE / z) as u32).collect(),
                // E_best / Z ≥ θ, with E_best = 10¹⁸: 10²⁴ ≥ θµ × Z.
                clears: leader.is_some() && E_ONE * ONE_WIDE >= threshold * z,
            }
        }
        Pool::Linear => {
            let best = *belief.sums.iter().max().expect("options");
            let leader = unique(best);
            Pooled {
                leader,
                // Σₒ Lₒ = 10⁶ × W exactly, so Lₒ / W is in millionths.
                probabilities: belief.sums.iter().map(|&s| (s / w) as u32).collect(),
                // L_best / (10⁶ W) ≥ θ: L_best ≥ θµ × W.
                clears: leader.is_some() && best >= threshold * w,
            }
        }
    }
}

/// The rule for a belief proposal (§15.3), checks in order: a human
/// required; the quorum; a unique leader whose pooled probability reaches
/// `pool_threshold` (approved, adopting it); otherwise contested.
pub fn resolve(policy: &Policy, tally: &Tally, belief: &BeliefTally) -> (Verdict, Pooled) {
    let pooled = pool(policy, belief);
    let verdict = if policy.human_required {
        Verdict::Escalated(Reason::Stakes)
    } else if !quorum_met(policy, tally) {
        Verdict::Escalated(Reason::NoQuorum)
    } else if pooled.clears {
        Verdict::Approved
    } else {
        Verdict::Escalated(Reason::Contested)
    };
    (verdict, pooled)
}

/// The quadratic score of a distribution (millionths) when `outcome` is the
/// option that turned out right, in 10⁻¹²: `1 − Σₒ (pₒ − yₒ)²` with `y`
/// the outcome's indicator; in `[−1, 1]`. For two options it equals the
/// score of §8 for a forecast `p` of the first (`1 − 2 (p − y)²`).
pub fn score(distribution: &[u32], outcome: usize) -> i128 {
    let one = i128::from(ONE);
    let miss: i128 = distribution
        .iter()
        .enumerate()
        .map(|(o, &p)| {
            let y = if o == outcome { one } else { 0 };
            (i128::from(p) - y).pow(2)
        })
        .sum();
    one * one - miss
}

/// `Σₒ |pₒ − πₒ|` in millionths between a distribution and the pooled one:
/// twice the total variation distance, so [`divergence_decimal`] halves it.
pub fn divergence(distribution: &[u32], pooled: &[u32]) -> u64 {
    distribution
        .iter()
        .zip(pooled)
        .map(|(&p, &q)| u64::from(p.abs_diff(q)))
        .sum()
}

/// The total variation distance `½ Σₒ |pₒ − πₒ|` as an exact decimal (at
/// most seven places).
pub fn divergence_decimal(twice: u64) -> String {
    format_scaled(u128::from(twice) * 5, 7)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixed::Ratio;
    use crate::policy::Stakes;

    fn policy(pool: Pool) -> Policy {
        Policy {
            pool,
            ..Policy::default_for(Stakes::Medium)
        }
    }

    fn pooled(pool: Pool, members: &[(u128, &[u32])]) -> Pooled {
        let p = policy(pool);
        let mut b = BeliefTally::new(members[0].1.len());
        for (w, d) in members {
            b.add(&p, *w, d);
        }
        super::pool(&p, &b)
    }

    #[test]
    fn one_zero_does_not_veto_under_the_log_pool() {
        // §15.2: four agents at 0.9 for `a`; one certain it is `b`.
        let many: &[u32] = &[900_000, 100_000];
        let one: &[u32] = &[0, 1_000_000];
        let five = [(1, many), (1, many), (1, many), (1, many), (1, one)];
        let p = pooled(Pool::Log, &five);
        // With the default floor 0.01, `a` still leads:
        // s_a = (4 ln 0.9 + ln 0.01)/5, s_b = (4 ln 0.1)/5,
        // π_a = 1 / (1 + exp(s_b − s_a)) ≈ 0.698, just short of 0.7.
        assert_eq!(p.leader, Some(0));
        let real = {
            let sa = (4.0 * 0.9f64.ln() + 0.01f64.ln()) / 5.0;
            let sb = (4.0 * 0.1f64.ln()) / 5.0;
            1.0 / (1.0 + (sb - sa).exp())
        };
        assert!((f64::from(p.probabilities[0]) / 1e6 - real).abs() < 2e-6);
        assert!(!p.clears, "0.698 < 0.7: strong dissent escalates");
        // With the smallest floor, 10⁻⁶, the one zero all but vetoes `a`:
        // ln 10⁻⁶ outweighs four times ln 0.9 − ln 0.1.
        let nearly_veto = Policy {
            pool_floor: Ratio::from_micros(1),
            ..policy(Pool::Log)
        };
        let mut b = BeliefTally::new(2);
        for (w, d) in five {
            b.add(&nearly_veto, w, d);
        }
        assert_eq!(pool(&nearly_veto, &b).leader, Some(1));
        // The linear pool has no veto at all: (4 × 0.9 + 0) / 5 = 0.72.
        let linear = pooled(Pool::Linear, &five);
        assert_eq!(linear.probabilities, vec![720_000, 280_000]);
        assert!(linear.clears);
    }

    #[test]
    fn the_log_pool_is_the_normalised_geometric_mean() {
        // Two equal agents: (0.6, 0.4) and (0.3, 0.7). Geometric means
        // √0.18 and √0.28, renormalised.
        let p = pooled(
            Pool::Log,
            &[(5, &[600_000, 400_000]), (5, &[300_000, 700_000])],
        );
        let (a, b) = (0.18f64.sqrt(), 0.28f64.sqrt());
        assert_eq!(p.leader, Some(1));
        assert!((f64::from(p.probabilities[1]) / 1e6 - b / (a + b)).abs() < 2e-6);
        // Weights scale out: the same with weights 1 and 1.
        let q = pooled(
            Pool::Log,
            &[(1, &[600_000, 400_000]), (1, &[300_000, 700_000])],
        );
        assert_eq!(p, q);
    }

    #[test]
    fn the_linear_pool_is_the_weighted_mean_exactly() {
        // (3 × 0.7 + 0.2) / 4 = 0.575; (3 × 0.3 + 0.8) / 4 = 0.425.
        let p = pooled(
            Pool::Linear,
            &[(3, &[700_000, 300_000]), (1, &[200_000, 800_000])],
        );
        assert_eq!(p.leader, Some(0));
        assert_eq!(p.probabilities, vec![575_000, 425_000]);
        assert!(!p.clears, "0.575 < 0.7");
        // (3 × 0.6 + 0.2) / 4 = 0.5 each: a tie.
        let tie = pooled(
            Pool::Linear,
            &[(3, &[600_000, 400_000]), (1, &[200_000, 800_000])],
        );
        assert_eq!(tie.leader, None);
        assert_eq!(tie.probabilities, vec![500_000, 500_000]);
    }

    #[test]
    fn ties_have_no_leader_and_never_clear() {
        for pool in [Pool::Log, Pool::Linear] {
            let p = pooled(pool, &[(1, &[700_000, 300_000]), (1, &[300_000, 700_000])]);
            assert_eq!(p.leader, None, "{pool:?}");
            assert!(!p.clears);
        }
        let none = pool(&policy(Pool::Log), &BeliefTally::new(3));
        assert_eq!(none.leader, None);
        assert!(none.probabilities.is_empty());
    }

    #[test]
    fn the_threshold_is_exact_under_the_linear_pool() {
        // Medium: 0.7. One agent at exactly 0.7 clears; 0.699999 does not.
        let at = pooled(Pool::Linear, &[(1, &[700_000, 300_000])]);
        assert!(at.clears);
        let below = pooled(Pool::Linear, &[(1, &[699_999, 300_001])]);
        assert!(!below.clears);
        assert_eq!(below.leader, Some(0));
    }

    #[test]
    fn the_threshold_is_exact_under_the_log_pool() {
        // One agent (0.7, 0.3): no clipping, δ = ln(10⁶/3·10⁵) − ln(10⁶/7·10⁵).
        // Z = 10¹⁸ + exp_neg(δ); clears iff 10²⁴ ≥ 700000 × Z.
        let p = policy(Pool::Log);
        let mut b = BeliefTally::new(2);
        b.add(&p, 1, &[700_000, 300_000]);
        let delta = penalty(&p, 300_000) - penalty(&p, 700_000);
        let z = E_ONE + exp_neg(delta);
        let exact = E_ONE * ONE_WIDE >= 700_000 * z;
        assert_eq!(pool(&p, &b).clears, exact);
        // Put the threshold exactly at the computed pooled probability and
        // one unit above it.
        let pi = (E_ONE * ONE_WIDE / z) as u32;
        let at = Policy {
            pool_threshold: Ratio::from_micros(pi),
            ..p
        };
        let above = Policy {
            pool_threshold: Ratio::from_micros(pi + 1),
            ..p
        };
        assert!(pool(&at, &b).clears);
        assert!(!pool(&above, &b).clears);
    }

    #[test]
    fn the_score_generalises_the_binary_score() {
        // Two options: 1 − Σ(p − y)² = 1 − 2(p₀ − y₀)², the score of §8.
        for p0 in [0u32, 100_000, 500_000, 800_000, 1_000_000] {
            let d = [p0, ONE - p0];
            for (outcome, y) in [
                (0usize, crate::fixed::Score::ONE),
                (1, crate::fixed::Score::ZERO),
            ] {
                assert_eq!(score(&d, outcome), crate::trust::score(p0, y));
            }
        }
        // Certain and right: 1; certain and wrong: −1; uniform over four:
        // 1 − (0.75² + 3 × 0.25²) = 0.25.
        assert_eq!(score(&[ONE, 0, 0], 0), 10i128.pow(12));
        assert_eq!(score(&[ONE, 0, 0], 2), -(10i128.pow(12)));
        assert_eq!(score(&[250_000; 4], 1), 250_000_000_000);
    }

    #[test]
    fn divergence_is_the_total_variation_distance() {
        assert_eq!(divergence(&[1_000_000, 0], &[0, 1_000_000]), 2_000_000);
        assert_eq!(divergence_decimal(2_000_000), "1");
        assert_eq!(
            divergence_decimal(divergence(&[600_000, 400_000], &[500_001, 499_999])),
            "0.099999"
        );
        assert_eq!(divergence_decimal(1), "0.0000005");
    }
}
