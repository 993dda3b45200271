//! Trust from outcomes: an exponentially forgetting average of a strictly
//! proper (quadratic) score of what each agent said (`docs/PROTOCOL.md` §8).
//!
//! For one response, the agent's forecast that the action succeeds is
//! `f = c` for an endorsement at confidence `c`, `f = 1 − c` for a challenge;
//! an abstention makes no forecast and is never scored. With the outcome
//! `y ∈ [0, 1]` (1 success, 0 failure), the score is
//!
//! ```text
//! g = 1 − 2 (f − y)²            ∈ [−1, 1]   (0.5 for a forecast of one half)
//! t' = clamp(t + η (g − t), 0, 1)
//! ```
//!
//! `η` is the space's `trust_learning_rate`. Because `g` is an affine map of
//! the Brier score, an agent maximises its expected trust by stating its true
//! belief; because `t'` forgets at rate `η`, old evidence fades, so an agent
//! that turns bad loses its influence within a number of outcomes that depends
//! on `η` and its new scores, never on how long it behaved. Trust moves toward
//! the score of what the agent itself said against what happened — never toward
//! agreement with other agents — and at any confidence above one half a right
//! call scores above a wrong one. Confidence is the agent's probability that
//! its stance is right: 0.5 is a coin flip (scoring 0.5 on a plain success or
//! failure either way) and abstaining is how to say nothing.
//!
//! Fixed point: `f`, `y`, `t`, `η` are millionths; `g` is computed exactly in
//! 10⁻¹², `t + η (g − t)` exactly in 10⁻¹⁸, then floored to millionths.

use crate::fixed::{Confidence, ONE, Ratio, Score, Trust};
use crate::tally::Stance;

/// The forecast of success a response makes, in millionths; `None` for an
/// abstention.
pub fn forecast(stance: Stance, confidence: Confidence) -> Option<u32> {
    match stance {
        Stance::Endorse => Some(confidence.micros()),
        Stance::Challenge => Some(ONE - confidence.micros()),
        Stance::Abstain => None,
    }
}

/// The score `g` of a forecast against an outcome, in 10⁻¹².
pub fn score(forecast_micros: u32, outcome: Score) -> i128 {
    let miss = i128::from(forecast_micros) - i128::from(outcome.micros());
    let one_sq = i128::from(ONE) * i128::from(ONE);
    one_sq - 2 * miss * miss
}

/// The trust after one scored forecast.
pub fn update(trust: Trust, forecast_micros: u32, outcome: Score, rate: Ratio) -> Trust {
    update_with_score(trust, score(forecast_micros, outcome), rate)
}

/// The trust after a position scored `g` (in 10⁻¹², within `[−1, 1]`):
/// `clamp(⌊t + η (g − t)⌋, 0, 1)` in millionths. A vote's score is
/// [`score`]; a belief proposal's is [`crate::belief::score`].
pub fn update_with_score(trust: Trust, g: i128, rate: Ratio) -> Trust {
    let one = i128::from(ONE);
    debug_assert!(
        (-one * one..=one * one).contains(&g),
        "a score is in [−1, 1]"
    );
    let t = i128::from(trust.micros());
    // t + η (g − t), in 10⁻¹⁸: t·10¹² + η·(g − t·10⁶).
    let next = t * one * one + i128::from(rate.micros()) * (g - t * one);
    let floored = next.div_euclid(one * one).clamp(0, one);
    Trust::from_micros(floored as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(x: &str) -> Trust {
        Trust::parse(x).unwrap()
    }

    fn c(x: &str) -> Confidence {
        Confidence::parse(x).unwrap()
    }

    const RATE: Ratio = Ratio::from_micros(50_000);
    const SUCCESS: Score = Score::ONE;
    const FAILURE: Score = Score::ZERO;

    fn after(trust: &str, stance: Stance, conf: &str, outcome: Score) -> Trust {
        update(t(trust), forecast(stance, c(conf)).unwrap(), outcome, RATE)
    }

    // Spec §8: each property of the trust rule is a test.

    #[test]
    fn confident_wrong_loses_more_than_unconfident_wrong() {
        for start in ["0.1", "0.5", "0.9", "1"] {
            let confident = after(start, Stance::Endorse, "0.95", FAILURE);
            let unsure = after(start, Stance::Endorse, "0.6", FAILURE);
            assert!(confident < unsure, "from {start}: {confident} vs {unsure}");
            let confident = after(start, Stance::Challenge, "0.95", SUCCESS);
            let unsure = after(start, Stance::Challenge, "0.6", SUCCESS);
            assert!(confident < unsure, "from {start}: {confident} vs {unsure}");
        }
        // From the default prior, a wrong call at any confidence above one half loses.
        assert!(after("0.5", Stance::Endorse, "0.51", FAILURE) < t("0.5"));
    }

    #[test]
    fn confident_right_gains_more_than_unconfident_right() {
        for start in ["0", "0.3", "0.5", "0.9"] {
            let confident = after(start, Stance::Endorse, "0.95", SUCCESS);
            let unsure = after(start, Stance::Endorse, "0.6", SUCCESS);
            assert!(confident > unsure, "from {start}");
            let confident = after(start, Stance::Challenge, "0.95", FAILURE);
            let unsure = after(start, Stance::Challenge, "0.6", FAILURE);
            assert!(confident > unsure, "from {start}");
        }
        assert!(after("0.5", Stance::Endorse, "0.51", SUCCESS) > t("0.5"));
    }

    #[test]
    fn abstaining_makes_no_forecast() {
        assert_eq!(forecast(Stance::Abstain, c("1")), None);
        assert_eq!(forecast(Stance::Abstain, c("0")), None);
    }

    #[test]
    fn trust_stays_bounded_and_is_deterministic() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut trust = t("0.5");
        for _ in 0..10_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let f = (seed % 1_000_001) as u32;
            let y = Score::from_micros(((seed >> 32) % 1_000_001) as u32);
            let rate = Ratio::from_micros(((seed >> 20) % 1_000_001) as u32);
            let next = update(trust, f, y, rate);
            assert_eq!(next, update(trust, f, y, rate));
            assert!(next <= Trust::ONE);
            trust = next;
        }
        assert_eq!(update(Trust::ONE, ONE, SUCCESS, Ratio::ONE), Trust::ONE);
        assert_eq!(update(Trust::ONE, ONE, FAILURE, Ratio::ONE), Trust::ZERO);
    }

    #[test]
    fn defection_is_punished_within_a_bound_independent_of_history() {
        // A sleeper is right, confidently, for `history` outcomes, then wrong,
        // confidently, until its trust is below 0.25. The number of wrong
        // outcomes that takes must not grow with the history.
        let defect_count = |history: usize| {
            let mut trust = t("0.5");
            for _ in 0..history {
                trust = after(&trust.to_string(), Stance::Endorse, "0.95", SUCCESS);
            }
            let mut n = 0;
            while trust >= t("0.25") {
                trust = after(&trust.to_string(), Stance::Endorse, "0.95", FAILURE);
                n += 1;
                assert!(n < 1_000, "never lost influence");
            }
            n
        };
        // With η = 0.05 and a 0.95 miss (g = −0.805), trust after n misses from
        // t₀ ≤ 1 is at most g + (1 − g)(1 − η)ⁿ, below 0.25 once
        // n > ln((0.25 − g) / (1 − g)) / ln(1 − η) ≈ 10.5. One more outcome
        // of slack covers the flooring to millionths.
        let g = 1.0 - 2.0 * 0.95f64.powi(2);
        let bound = ((0.25 - g) / (1.0 - g)).ln() / 0.95f64.ln();
        let bound = bound.ceil() as usize + 1;
        assert_eq!(bound, 12);
        let counts: Vec<usize> = [0, 10, 100, 1_000, 10_000]
            .iter()
            .map(|&h| defect_count(h))
            .collect();
        for (&count, h) in counts.iter().zip([0, 10, 100, 1_000, 10_000]) {
            assert!(count <= bound, "history {h}: {count} outcomes");
        }
        assert_eq!(
            counts[3], counts[4],
            "the bound grew with history: {counts:?}"
        );
    }

    #[test]
    fn a_coin_flip_forecast_scores_one_half() {
        assert_eq!(score(500_000, SUCCESS), 500_000_000_000);
        assert_eq!(score(500_000, FAILURE), 500_000_000_000);
        assert_eq!(update(t("0.5"), 500_000, FAILURE, RATE), t("0.5"));
    }
}
