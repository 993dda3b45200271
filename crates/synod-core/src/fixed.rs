//! Exact fixed-point quantities.
//!
//! Every number that decides an outcome or is hashed is an integer. Inputs are
//! decimals with at most six fractional digits (`"0.85"`), held as a count of
//! millionths. Products keep their full precision in wider integers, so a
//! weight `authority × confidence × trust` is an exact integer count of
//! 10⁻¹⁸ units and sums of weights never round. See `docs/PROTOCOL.md` §3.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Number of fractional digits of every input decimal.
pub const DECIMALS: u32 = 6;
/// One whole unit, in millionths.
pub const ONE: u32 = 1_000_000;
/// `ONE` as a wide integer, for scaling products.
pub const ONE_WIDE: u128 = ONE as u128;
/// Largest integer part a decimal input may have. Keeps every parsed value
/// within `i64` millionths with room to spare; larger inputs are out of range.
pub const MAX_INTEGER_PART: u64 = 1_000_000_000_000;

/// Why a decimal string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecimalError {
    /// The text is not a plain decimal (`123`, `0.5`): no exponent, no sign
    /// other than a leading `-`, no leading `+` or `.`, at most six fractional
    /// digits.
    #[error("not a decimal with at most 6 fractional digits: {0:?}")]
    Malformed(String),
    /// A well-formed decimal outside the range the field allows.
    #[error("{value} is outside [{min}, {max}]")]
    OutOfRange {
        /// The value as given.
        value: String,
        /// Smallest allowed value.
        min: String,
        /// Largest allowed value.
        max: String,
    },
}

/// A signed decimal as parsed from text, in millionths. It is only an
/// intermediate: fields convert it to a range-checked quantity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Decimal(pub i64);

impl Decimal {
    /// Parses `-?(0|[1-9][0-9]*)(\.[0-9]{1,6})?` exactly; never through `f64`.
    pub fn parse(text: &str) -> Result<Decimal, DecimalError> {
        let bad = || DecimalError::Malformed(truncate(text));
        let (negative, rest) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (int_part, frac_part) = match rest.split_once('.') {
            Some((i, f)) => (i, Some(f)),
            None => (rest, None),
        };
        if int_part.is_empty() || !int_part.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        if int_part.len() > 1 && int_part.starts_with('0') {
            return Err(bad());
        }
        let mut frac_micros: i64 = 0;
        if let Some(frac) = frac_part {
            if frac.is_empty()
                || frac.len() > DECIMALS as usize
                || !frac.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(bad());
            }
            for (i, b) in frac.bytes().enumerate() {
                frac_micros += i64::from(b - b'0') * 10i64.pow(DECIMALS - 1 - i as u32);
            }
        }
        // More than 13 integer digits can only be out of range; checking the
        // length first keeps the parse below from overflowing.
        if int_part.len() > 13 {
            return Err(DecimalError::OutOfRange {
                value: truncate(text),
                min: "-1000000000000".into(),
                max: "1000000000000".into(),
            });
        }
        let int_value: u64 = int_part.parse().map_err(|_| bad())?;
        if int_value > MAX_INTEGER_PART {
            return Err(DecimalError::OutOfRange {
                value: truncate(text),
                min: "-1000000000000".into(),
                max: "1000000000000".into(),
            });
        }
        let magnitude = int_value as i64 * i64::from(ONE) + frac_micros;
        Ok(Decimal(if negative { -magnitude } else { magnitude }))
    }

    /// Converts to a value in `[0, 1]`, naming `field` in the error.
    pub fn unit(self, text: &str) -> Result<Unit, DecimalError> {
        if (0..=i64::from(ONE)).contains(&self.0) {
            Ok(Unit(self.0 as u32))
        } else {
            Err(DecimalError::OutOfRange {
                value: truncate(text),
                min: "0".into(),
                max: "1".into(),
            })
        }
    }
}

fn truncate(text: &str) -> String {
    const MAX_ECHO_CHARS: usize = 40;
    if text.chars().count() > MAX_ECHO_CHARS {
        let head: String = text.chars().take(MAX_ECHO_CHARS).collect();
        format!("{head}…")
    } else {
        text.to_string()
    }
}

/// A value in `[0, 1]` with six fractional digits, stored as millionths.
///
/// Authority, confidence, trust, outcome scores and policy thresholds are all
/// of this shape; each has its own newtype below so they cannot be mixed up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Unit(u32);

impl Unit {
    /// Zero.
    pub const ZERO: Unit = Unit(0);
    /// One.
    pub const ONE: Unit = Unit(ONE);

    /// From millionths; `None` above one.
    pub const fn from_micros(micros: u32) -> Option<Unit> {
        if micros <= ONE {
            Some(Unit(micros))
        } else {
            None
        }
    }

    /// The value in millionths.
    pub const fn micros(self) -> u32 {
        self.0
    }

    /// Parses a decimal string that must lie in `[0, 1]`.
    pub fn parse(text: &str) -> Result<Unit, DecimalError> {
        Decimal::parse(text)?.unit(text)
    }

    /// Whether the value is zero.
    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }
}

impl fmt::Display for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_scaled(u128::from(self.0), DECIMALS))
    }
}

impl Serialize for Unit {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Unit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Unit, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Unit::parse(&text).map_err(|e| {
            if matches!(e, DecimalError::OutOfRange { .. }) {
                OUT_OF_RANGE_SEEN.set(true);
            }
            serde::de::Error::custom(e)
        })
    }
}

thread_local! {
    /// Set when a [`Unit`] is refused as out of range while deserializing, so
    /// that the caller can report `out_of_range` rather than `malformed`
    /// without reading the error's text (which may contain the sender's words).
    static OUT_OF_RANGE_SEEN: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `decode` and reports whether a decimal in it was out of range.
pub(crate) fn watch_out_of_range<T>(decode: impl FnOnce() -> T) -> (T, bool) {
    OUT_OF_RANGE_SEEN.set(false);
    let out = decode();
    (out, OUT_OF_RANGE_SEEN.replace(false))
}

macro_rules! unit_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Unit);

        impl $name {
            /// Zero.
            pub const ZERO: $name = $name(Unit::ZERO);
            /// One.
            pub const ONE: $name = $name(Unit::ONE);

            /// From millionths; panics above one, so only for constants and tests.
            pub const fn from_micros(micros: u32) -> $name {
                match Unit::from_micros(micros) {
                    Some(u) => $name(u),
                    None => panic!(concat!(stringify!($name), " above one")),
                }
            }

            /// The value in millionths.
            pub const fn micros(self) -> u32 {
                self.0.micros()
            }

            /// Parses a decimal string in `[0, 1]`.
            pub fn parse(text: &str) -> Result<$name, DecimalError> {
                Unit::parse(text).map($name)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

unit_newtype!(
    /// How relevant an agent's expertise is to a domain; 0 means observer.
    Authority
);
unit_newtype!(
    /// An agent's self-assessed certainty for one response or proposal.
    Confidence
);
unit_newtype!(
    /// An agent's earned track record in one domain.
    Trust
);
unit_newtype!(
    /// A policy threshold or rate: a margin, quorum, minimum confidence or
    /// learning rate.
    Ratio
);
unit_newtype!(
    /// How well an action turned out: 1 success, 0 failure.
    Score
);
unit_newtype!(
    /// The probability an agent gives one option of a belief proposal.
    Probability
);

/// `authority × trust`, exact, in units of 10⁻¹².
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Influence(pub u64);

impl Influence {
    /// Decimal places of the unit.
    pub const DECIMALS: u32 = 12;

    /// `authority × trust`.
    pub fn of(authority: Authority, trust: Trust) -> Influence {
        Influence(u64::from(authority.micros()) * u64::from(trust.micros()))
    }

    /// `self × confidence`: the weight of a response.
    pub fn weight(self, confidence: Confidence) -> Weight {
        Weight(self.0 * u64::from(confidence.micros()))
    }

    /// The weight of this influence at full confidence.
    pub fn full_weight(self) -> Weight {
        self.weight(Confidence::ONE)
    }
}

/// `authority × confidence × trust`, exact, in units of 10⁻¹⁸.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Weight(pub u64);

impl Weight {
    /// Decimal places of the unit.
    pub const DECIMALS: u32 = 18;
}

/// Formats `value × 10^-decimals` exactly, without trailing zeros: `"0"`,
/// `"1"`, `"0.504"`. This is the form of every tally in the protocol.
pub fn format_scaled(value: u128, decimals: u32) -> String {
    let scale = 10u128.pow(decimals);
    let int_part = value / scale;
    let frac_part = value % scale;
    if frac_part == 0 {
        return int_part.to_string();
    }
    let mut frac = format!("{:0width$}", frac_part, width = decimals as usize);
    while frac.ends_with('0') {
        frac.pop();
    }
    format!("{int_part}.{frac}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_exact_decimals() {
        let cases = [
            ("0", 0),
            ("1", 1_000_000),
            ("0.5", 500_000),
            ("0.000001", 1),
            ("0.123456", 123_456),
            ("1.000000", 1_000_000),
            ("12.25", 12_250_000),
            ("-0.5", -500_000),
        ];
        for (text, micros) in cases {
            assert_eq!(Decimal::parse(text), Ok(Decimal(micros)), "{text}");
        }
    }

    #[test]
    fn refuses_inexact_or_odd_decimals() {
        for text in [
            "",
            ".5",
            "5.",
            "0.1234567",
            "1e-3",
            "+1",
            "01",
            "0x1",
            " 1",
            "1 ",
            "--1",
            "NaN",
            "inf",
            "0,5",
            "１",
        ] {
            assert!(
                matches!(Decimal::parse(text), Err(DecimalError::Malformed(_))),
                "{text:?} should be malformed"
            );
        }
    }

    #[test]
    fn unit_range_is_checked() {
        assert!(Unit::parse("1").is_ok());
        assert!(Unit::parse("0").is_ok());
        for text in ["1.000001", "-0.000001", "2", "99999999999999999999"] {
            assert!(
                matches!(Unit::parse(text), Err(DecimalError::OutOfRange { .. })),
                "{text}"
            );
        }
    }

    #[test]
    fn formats_without_rounding() {
        assert_eq!(format_scaled(0, 18), "0");
        assert_eq!(format_scaled(10u128.pow(18), 18), "1");
        assert_eq!(format_scaled(504 * 10u128.pow(15), 18), "0.504");
        assert_eq!(format_scaled(1, 18), "0.000000000000000001");
        assert_eq!(format_scaled(25 * 10u128.pow(17), 18), "2.5");
    }

    #[test]
    fn weight_is_exact_product() {
        let a = Authority::parse("0.9").unwrap();
        let t = Trust::parse("0.7").unwrap();
        let c = Confidence::parse("0.8").unwrap();
        let w = Influence::of(a, t).weight(c);
        assert_eq!(format_scaled(u128::from(w.0), Weight::DECIMALS), "0.504");
    }
}
