//! Domains (`fraud.detection`) and the patterns authorities are declared on
//! (`fraud.detection`, `fraud.*`, `*`).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Most dot-separated segments in a domain.
pub const MAX_DOMAIN_SEGMENTS: usize = 8;
/// Longest segment, in characters.
pub const MAX_SEGMENT_CHARS: usize = 32;

/// Why a domain or pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid domain {0:?}: use dot-separated lowercase segments such as fraud.detection (each [a-z][a-z0-9_-]*, at most 32 characters, at most 8 segments)"
)]
pub struct DomainError(pub String);

/// A domain: dot-separated lowercase segments, e.g. `credit.risk`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Domain(String);

fn valid_segment(segment: &str) -> bool {
    let mut bytes = segment.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z'))
        && segment.len() <= MAX_SEGMENT_CHARS
        && bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-'))
}

fn valid_path(text: &str) -> bool {
    let segments = text.split('.').count();
    segments <= MAX_DOMAIN_SEGMENTS && text.split('.').all(valid_segment)
}

fn error(text: &str) -> DomainError {
    DomainError(text.chars().take(80).collect())
}

impl Domain {
    /// Parses a domain.
    pub fn parse(text: &str) -> Result<Domain, DomainError> {
        if valid_path(text) {
            Ok(Domain(text.to_string()))
        } else {
            Err(error(text))
        }
    }

    /// The domain as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `self` is `prefix` or lies below it.
    fn is_within(&self, prefix: &str) -> bool {
        self.0 == prefix
            || (self.0.len() > prefix.len()
                && self.0.starts_with(prefix)
                && self.0.as_bytes()[prefix.len()] == b'.')
    }
}

/// A pattern an authority is declared on.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DomainPattern {
    /// `*`: every domain.
    Any,
    /// `fraud.*`: `fraud` and every domain below it.
    Subtree(String),
    /// `fraud.detection`: that domain only.
    Exact(String),
}

impl DomainPattern {
    /// Parses `*`, `a.b.*` or `a.b`.
    pub fn parse(text: &str) -> Result<DomainPattern, DomainError> {
        if text == "*" {
            return Ok(DomainPattern::Any);
        }
        if let Some(prefix) = text.strip_suffix(".*") {
            if valid_path(prefix) {
                return Ok(DomainPattern::Subtree(prefix.to_string()));
            }
            return Err(error(text));
        }
        Domain::parse(text)
            .map(|d| DomainPattern::Exact(d.0))
            .map_err(|_| error(text))
    }

    /// Whether the pattern covers `domain`.
    pub fn matches(&self, domain: &Domain) -> bool {
        match self {
            DomainPattern::Any => true,
            DomainPattern::Subtree(prefix) => domain.is_within(prefix),
            DomainPattern::Exact(exact) => domain.0 == *exact,
        }
    }

    /// How specific the pattern is: among matching patterns, the greatest wins.
    /// An exact pattern beats a subtree of the same depth; a deeper subtree
    /// beats a shallower one; `*` loses to everything.
    pub fn specificity(&self) -> (usize, u8) {
        match self {
            DomainPattern::Any => (0, 0),
            DomainPattern::Subtree(prefix) => (prefix.split('.').count(), 0),
            DomainPattern::Exact(exact) => (exact.split('.').count(), 1),
        }
    }
}

/// Picks the value of the most specific pattern in `entries` that matches
/// `domain`. Two distinct patterns never tie on a domain they both match, so
/// the answer does not depend on the order of `entries`.
pub fn most_specific<'a, T>(
    entries: impl IntoIterator<Item = (&'a DomainPattern, T)>,
    domain: &Domain,
) -> Option<T> {
    entries
        .into_iter()
        .filter(|(pattern, _)| pattern.matches(domain))
        .max_by_key(|(pattern, _)| pattern.specificity())
        .map(|(_, value)| value)
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Domain({})", self.0)
    }
}

impl fmt::Display for DomainPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DomainPattern::Any => f.write_str("*"),
            DomainPattern::Subtree(prefix) => write!(f, "{prefix}.*"),
            DomainPattern::Exact(exact) => f.write_str(exact),
        }
    }
}

impl fmt::Debug for DomainPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DomainPattern({self})")
    }
}

macro_rules! string_serde {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<$t, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                <$t>::parse(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}

string_serde!(Domain);
string_serde!(DomainPattern);

#[cfg(test)]
mod tests {
    use super::*;

    fn d(text: &str) -> Domain {
        Domain::parse(text).unwrap()
    }

    fn p(text: &str) -> DomainPattern {
        DomainPattern::parse(text).unwrap()
    }

    #[test]
    fn domains_are_dotted_lowercase() {
        for ok in [
            "fraud",
            "fraud.detection",
            "credit.risk.retail_loans",
            "a1.b-2",
        ] {
            assert!(Domain::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Fraud",
            "fraud.",
            ".fraud",
            "fraud..x",
            "1fraud",
            "fraud.*",
            "*",
            "a b",
            "a.b.c.d.e.f.g.h.i",
        ] {
            assert!(Domain::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn patterns_match_as_documented() {
        assert!(p("*").matches(&d("anything.at.all")));
        assert!(p("fraud.*").matches(&d("fraud")));
        assert!(p("fraud.*").matches(&d("fraud.detection")));
        assert!(!p("fraud.*").matches(&d("fraudulent")));
        assert!(!p("fraud.*").matches(&d("credit.fraud")));
        assert!(p("fraud.detection").matches(&d("fraud.detection")));
        assert!(!p("fraud.detection").matches(&d("fraud.detection.cards")));
        for bad in ["**", "fraud.*.x", ".*", "fraud*", "Fraud.*"] {
            assert!(DomainPattern::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn most_specific_pattern_wins_whatever_the_order() {
        let patterns = [
            p("*"),
            p("fraud.*"),
            p("fraud.detection.*"),
            p("fraud.detection"),
        ];
        let values = [1, 2, 3, 4];
        let pick = |domain: &str, order: &[usize]| {
            most_specific(order.iter().map(|&i| (&patterns[i], values[i])), &d(domain))
        };
        for order in [[0, 1, 2, 3], [3, 2, 1, 0], [2, 0, 3, 1]] {
            assert_eq!(pick("fraud.detection", &order), Some(4));
            assert_eq!(pick("fraud.detection.cards", &order), Some(3));
            assert_eq!(pick("fraud.review", &order), Some(2));
            assert_eq!(pick("credit", &order), Some(1));
        }
        assert_eq!(most_specific([(&p("fraud.*"), 1)], &d("credit")), None);
    }
}
