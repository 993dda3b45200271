//! The log-odds of a confidence, in exact integer arithmetic: the building
//! block of the log-odds weighting that the decision-quality benchmark
//! favours (docs/DECISION-QUALITY.md, "Ablation"). Every step is an integer
//! operation with a stated rounding (docs/PROTOCOL.md §14), so every
//! implementation computes the same bits.

use crate::fixed::{Authority, Confidence, Ratio, Trust};

/// Units of a [`LogOdds`]: 10⁻¹².
pub const LOG_ODDS_DECIMALS: u32 = 12;

/// A natural-log odds `ln(c / (1 − c))`, in units of 10⁻¹², rounded toward
/// zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LogOdds(pub i64);

/// Units of log-odds evidence: 10⁻³⁰, the product of an authority (10⁻⁶),
/// a squared doubled trust (10⁻¹²) and a log-odds (10⁻¹²).
pub const EVIDENCE_DECIMALS: u32 = 30;

/// The most log-odds one response contributes, either way: `logit(0.8)`
/// (`ln 4`). A confidence above 0.8 counts as 0.8. The benchmark's
/// ablation (docs/DECISION-QUALITY.md) found that capping stated confidence
/// there beats trusting it further: agents that state 0.99 are rarely that
/// right, and a liar's only lever is its stated confidence.
pub const EVIDENCE_CAP: LogOdds = LogOdds(1_386_294_361_119);

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
/// 2. while `3n ≥ 4d`: `d ← 2d`, `k ← k + 1` (now `n/d` is in [2/3, 4/3),
///    exactly);
/// 3. `y = (n − d) × 10¹⁸ / (n + d)` (so −10¹⁸/5 ≤ y < 10¹⁸/7);
/// 4. `s = Σ tᵢ / (2i + 1)` for i = 0, 1, … while `tᵢ ≠ 0`, where `t₀ = y`
///    and `tᵢ₊₁ = tᵢ × (y × y / 10¹⁸) / 10¹⁸` (this is atanh(y));
/// 5. the result is `(k × ⌊ln 2 × 10¹⁸⌋ + 2s) / 10⁶`, in units of 10⁻¹².
pub fn logit(c: Confidence) -> LogOdds {
    let micros = c.micros().clamp(EDGE, 1_000_000 - EDGE);
    if micros < 500_000 {
        return LogOdds(-logit(Confidence::from_micros(1_000_000 - micros)).0);
    }
    let ln = ln_ratio(u128::from(micros), u128::from(1_000_000 - micros));
    LogOdds(ln as i64)
}

/// `ln(n / d)` for integers `1 ≤ d ≤ n < 2⁶³`, in units of
/// 10⁻¹², truncated toward zero (docs/PROTOCOL.md §14.1). Every division
/// truncates toward zero:
///
/// 1. `k = 0`; while `3n ≥ 4d`: `d ← 2d`, `k ← k + 1` (now `n/d` is in
///    [2/3, 4/3), exactly: a ratio in [4/3, 2) halves to below 1);
/// 2. `y = (n − d) × 10¹⁸ / (n + d)` (so −10¹⁸/5 ≤ y < 10¹⁸/7; y is
///    negative when the reduction went below 1, and every division then
///    truncates toward zero, not down);
/// 3. `s = Σ tᵢ / (2i + 1)` for i = 0, 1, … while `tᵢ ≠ 0`, where `t₀ = y`
///    and `tᵢ₊₁ = tᵢ × (y × y / 10¹⁸) / 10¹⁸` (this is atanh(y));
/// 4. the result is `(k × ⌊ln 2 × 10¹⁸⌋ + 2s) / 10⁶`.
///
/// [`logit`] is this function at `n = c`, `d = 10⁶ − c`.
pub fn ln_ratio(n: u128, d: u128) -> i128 {
    assert!(
        d >= 1 && n >= d && n < 1 << 63,
        "ln_ratio needs 1 ≤ d ≤ n < 2⁶³"
    );
    let (n, mut d) = (n as i128, d as i128);
    let mut k: i128 = 0;
    while 3 * n >= 4 * d {
        d *= 2;
        k += 1;
    }
    // n − d < 2⁶³ and 10¹⁸ < 2⁶⁰: the product fits.
    let y = (n - d) * Q / (n + d);
    let y2 = y * y / Q;
    let (mut sum, mut term, mut odd) = (0i128, y, 1i128);
    while term != 0 {
        sum += term / odd;
        term = term * y2 / Q;
        odd += 2;
    }
    (k * LN2 + 2 * sum) / 1_000_000
}

/// `exp(−x)` for `x ≥ 0` given in units of 10⁻¹², as an integer in units of
/// 10⁻¹⁸, truncated (docs/PROTOCOL.md §14.2). Every division truncates
/// toward zero, and every intermediate is non-negative:
///
/// 1. `X = x × 10⁶` (10⁻¹⁸); `k = ⌊X / ⌊ln 2 × 10¹⁸⌋⌋`,
///    `r = X − k × ⌊ln 2 × 10¹⁸⌋` (so 0 ≤ r < ln 2); if `k ≥ 64` the result
///    is 0;
/// 2. `s = Σ (−1)ʲ tⱼ` for j = 0, 1, … while `tⱼ ≠ 0`, where `t₀ = 10¹⁸`
///    and `tⱼ = tⱼ₋₁ × r / (j × 10¹⁸)` (this is exp(−r));
/// 3. the result is `s / 2ᵏ`.
pub fn exp_neg(x: u128) -> u128 {
    let big = x
        .checked_mul(1_000_000)
        .expect("exp_neg of a sane exponent");
    let q = Q as u128;
    let ln2 = LN2 as u128;
    let k = big / ln2;
    if k >= 64 {
        return 0;
    }
    let r = big - k * ln2;
    let (mut sum, mut term, mut j) = (q, q, 1u128);
    loop {
        term = term * r / (j * q);
        if term == 0 {
            break;
        }
        // The terms shrink (r < 1), so the alternating sum stays positive.
        if j % 2 == 1 {
            sum -= term;
        } else {
            sum += term;
        }
        j += 1;
    }
    sum >> k
}

/// `a × (2t)²`, the factor a response's log-odds are multiplied by, in
/// 10⁻¹⁸: authority in millionths times the doubled trust squared.
pub(crate) fn factor(authority: Authority, trust: Trust) -> i128 {
    let doubled = 2 * i128::from(trust.micros());
    i128::from(authority.micros()) * doubled * doubled
}

/// The evidence of one response under log-odds weighting, signed (positive
/// for the action), exactly, in 10⁻³⁰: `a × (2t)² × clamp(logit(f), ±cap)`
/// where `f` is the response's forecast that the action is right
/// (`trust::forecast`) and cap is [`EVIDENCE_CAP`]. Trust at its prior 0.5
/// takes a response at face value; trust 1 counts it four times.
pub fn evidence(authority: Authority, trust: Trust, forecast: Confidence) -> i128 {
    let odds = logit(forecast).0.clamp(-EVIDENCE_CAP.0, EVIDENCE_CAP.0);
    factor(authority, trust) * i128::from(odds)
}

/// The most evidence one member can still add either way, in 10⁻³⁰:
/// `a × (2t)² × cap`. Early finality bounds what is still to come by it.
pub fn reach(authority: Authority, trust: Trust) -> u128 {
    (factor(authority, trust) * i128::from(EVIDENCE_CAP.0)) as u128
}

/// The evidence a decision confidence asks for: `logit(p)` in 10⁻³⁰.
pub fn threshold(p: Ratio) -> i128 {
    let micros = p.micros().min(1_000_000);
    i128::from(logit(Confidence::from_micros(micros)).0) * 1_000_000_000_000_000_000
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
    fn the_cap_is_the_log_odds_of_four_fifths() {
        assert_eq!(EVIDENCE_CAP.0, at(800_000));
    }

    #[test]
    fn evidence_scales_and_saturates() {
        let a = |m| Authority::from_micros(m);
        let t = |m| Trust::from_micros(m);
        let c = |m| Confidence::from_micros(m);
        // Authority 1, trust 0.5: face value, in 10⁻³⁰.
        let face = evidence(a(1_000_000), t(500_000), c(750_000));
        assert_eq!(face, i128::from(at(750_000)) * 10i128.pow(18));
        // Above 0.8 it saturates; below 0.5 it argues against.
        assert_eq!(
            evidence(a(1_000_000), t(500_000), c(990_000)),
            i128::from(EVIDENCE_CAP.0) * 10i128.pow(18)
        );
        assert_eq!(
            evidence(a(1_000_000), t(500_000), c(100_000)),
            -(i128::from(EVIDENCE_CAP.0) * 10i128.pow(18))
        );
        // Trust 1 counts four times, trust 0.25 a quarter; authority is linear.
        assert_eq!(evidence(a(1_000_000), t(1_000_000), c(750_000)), 4 * face);
        assert_eq!(evidence(a(1_000_000), t(250_000), c(750_000)) * 4, face);
        assert_eq!(evidence(a(500_000), t(500_000), c(750_000)) * 2, face);
        assert_eq!(evidence(a(0), t(1_000_000), c(990_000)), 0);
        // Reach is the evidence at the cap.
        assert_eq!(
            reach(a(300_000), t(700_000)) as i128,
            evidence(a(300_000), t(700_000), c(999_999))
        );
        assert_eq!(
            threshold(Ratio::from_micros(800_000)),
            reach(a(1_000_000), t(500_000)) as i128
        );
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
    fn ln_ratio_is_close_to_the_real_logarithm() {
        assert_eq!(ln_ratio(1, 1), 0);
        // ln 2 = 0.693147180559945309…, ln 10⁶ = 13.815510557964274…
        assert_eq!(ln_ratio(2, 1), 693_147_180_559);
        assert_eq!(ln_ratio(1_000_000, 1), 13_815_510_557_964);
        assert_eq!(ln_ratio(100, 1), 4_605_170_185_988);
        for (n, d) in [
            (1_000_000u128, 3u128),
            (7, 3),
            (1_000_000, 999_999),
            (977, 13),
        ] {
            let real = ((n as f64) / (d as f64)).ln() * 1e12;
            let exact = ln_ratio(n, d) as f64;
            assert!((exact - real).abs() <= 2.0, "{n}/{d}: {exact} vs {real}");
        }
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..2_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let d = u128::from(x % 1_000_000 + 1);
            let n = d + u128::from((x >> 24) % 1_000_000_000);
            let real = ((n as f64) / (d as f64)).ln() * 1e12;
            let exact = ln_ratio(n, d) as f64;
            // f64 has ~16 digits: at ln ≈ 20 that is 2e-3 of a unit.
            assert!((exact - real).abs() <= 2.0, "{n}/{d}: {exact} vs {real}");
        }
    }

    #[test]
    fn exp_neg_is_close_to_the_real_exponential() {
        assert_eq!(exp_neg(0), 10u128.pow(18));
        // exp(−ln 2) is a half, up to the truncation of ln 2 itself.
        let half = exp_neg(693_147_180_559);
        assert!(half.abs_diff(5 * 10u128.pow(17)) <= 1_000_000, "{half}");
        let mut last = u128::MAX;
        for micro_units in (0..30_000_000u128).step_by(9_973) {
            let x = micro_units * 1_000_000; // x in 10⁻¹², up to 30
            let exact = exp_neg(x);
            assert!(exact <= last, "exp(−x) does not increase: {x}");
            last = exact;
            let real = (-(x as f64) / 1e12).exp() * 1e18;
            // Relative error below 10⁻¹⁴, plus the unit.
            assert!(
                (exact as f64 - real).abs() <= real * 1e-14 + 2.0,
                "{x}: {exact} vs {real}"
            );
        }
        assert_eq!(exp_neg(64 * 693_147_180_560), 0);
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
