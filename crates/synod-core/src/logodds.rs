//! The log-odds of a confidence, in exact integer arithmetic: the building
//! block of the log-odds weighting that the decision-quality benchmark
//! favours (docs/DECISION-QUALITY.md, "Ablation"). Every step is an integer
//! operation with a stated rounding (docs/PROTOCOL.md §14), so every
//! implementation computes the same bits.

use crate::fixed::Confidence;

/// Units of a [`LogOdds`]: 10⁻¹².
pub const LOG_ODDS_DECIMALS: u32 = 12;

/// A natural-log odds `ln(c / (1 − c))`, in units of 10⁻¹², rounded toward
/// zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LogOdds(pub i64);

/// The working scale: 10¹⁸.
const Q: i128 = 1_000_000_000_000_000_000;
/// ⌊ln 2 × 10¹⁸⌋.
const LN2: i128 = 693_147_180_559_945_309;
/// The confidence a log-odds is taken at when the stated one is 0 or 1,
/// whose log-odds are infinite: one millionth from the edge.
const EDGE: u32 = 1;

/// `ln(c / (1 − c))` for a confidence `c`, with `c` first clamped to
/// [10⁻⁶, 1 − 10⁻⁶]. Below one half it is `−logit(1 − c)`, so the function
/// is exactly odd about one half. From one half up (every division
/// truncates toward zero):
///
/// 1. `n = c`, `d = 10⁶ − c` (millionths), `k = 0`;
/// 2. while `3n ≥ 4d`: `d ← 2d`, `k ← k + 1` (now `n/d` is in [1, 4/3),
///    exactly);
/// 3. `y = (n − d) × 10¹⁸ / (n + d)` (so 0 ≤ y < 10¹⁸/7);
/// 4. `s = Σ tᵢ / (2i + 1)` for i = 0, 1, … while `tᵢ ≠ 0`, where `t₀ = y`
///    and `tᵢ₊₁ = tᵢ × (y × y / 10¹⁸) / 10¹⁸` (this is atanh(y));
/// 5. the result is `(k × ⌊ln 2 × 10¹⁸⌋ + 2s) / 10⁶`, in units of 10⁻¹².
pub fn logit(c: Confidence) -> LogOdds {
    let micros = c.micros().clamp(EDGE, 1_000_000 - EDGE);
    if micros < 500_000 {
        return LogOdds(-logit(Confidence::from_micros(1_000_000 - micros)).0);
    }
    let (n, mut d) = (i128::from(micros), i128::from(1_000_000 - micros));
    let mut k: i128 = 0;
    while 3 * n >= 4 * d {
        d *= 2;
        k += 1;
    }
    let y = (n - d) * Q / (n + d);
    let y2 = y * y / Q;
    let (mut sum, mut term, mut odd) = (0i128, y, 1i128);
    while term != 0 {
        sum += term / odd;
        term = term * y2 / Q;
        odd += 2;
    }
    let ln = k * LN2 + 2 * sum;
    LogOdds((ln / 1_000_000) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(micros: u32) -> i64 {
        logit(Confidence::from_micros(micros)).0
    }

    #[test]
    fn known_values() {
        assert_eq!(at(500_000), 0);
        // ln 4 = 1.386294361119890618…, ln 9 = 2.197224577336219382…
        assert_eq!(at(800_000), 1_386_294_361_119);
        assert_eq!(at(900_000), 2_197_224_577_336);
        assert_eq!(at(200_000), -1_386_294_361_119);
        // ln 999999 = 13.815509557963773…
        assert_eq!(at(999_999), 13_815_509_557_963);
        assert_eq!(at(1_000_000), at(999_999));
        assert_eq!(at(0), -at(999_999));
    }

    #[test]
    fn close_to_the_real_log_odds() {
        for micros in (1..1_000_000).step_by(331).chain([999_999, 500_001]) {
            // Both arguments are exact in floating point.
            let real = (f64::from(micros).ln() - f64::from(1_000_000 - micros).ln()) * 1e12;
            let exact = at(micros) as f64;
            assert!((exact - real).abs() <= 1.5, "{micros}: {exact} vs {real}");
        }
    }

    #[test]
    fn odd_and_increasing_everywhere() {
        let mut last = i64::MIN;
        for micros in (1..1_000_000).step_by(997) {
            let v = at(micros);
            assert_eq!(v, -at(1_000_000 - micros), "{micros}");
            assert!(v > last, "{micros}");
            last = v;
        }
    }
}
