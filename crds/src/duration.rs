//! Durations in manifests: a whole number and a unit (`250ms`, `5s`, `2m`, `1h`).
//!
//! Strings rather than bare integers so that a manifest never leaves the reader guessing the unit; one unit per
//! value (no `1m30s`) keeps the grammar small enough to state in the CRD schema as a pattern, so `kubectl apply`
//! refuses the same values the server does.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// The pattern of a duration, as put in the CRD schema.
pub const DURATION_PATTERN: &str = "^[0-9]+(ms|s|m|h)$";

/// The suffixes, with their length in milliseconds, largest first (the order `Display` tries them in).
const UNITS: [(&str, u64); 4] = [("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)];

/// A duration as written in a manifest. It serializes in the largest unit that divides it exactly, so
/// `1000ms` is written back as `1s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HumanDuration(Duration);

impl HumanDuration {
    /// The duration itself.
    pub fn get(self) -> Duration {
        self.0
    }
}

impl From<Duration> for HumanDuration {
    /// Sub-millisecond precision is dropped: manifests cannot express it.
    fn from(d: Duration) -> Self {
        HumanDuration(Duration::from_millis(
            u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
        ))
    }
}

impl From<HumanDuration> for Duration {
    fn from(d: HumanDuration) -> Self {
        d.0
    }
}

impl std::str::FromStr for HumanDuration {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        parse_duration(s).map(HumanDuration)
    }
}

/// Parses `250ms`, `5s`, `2m`, `1h`; the error is the message for the field.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let not_a_duration = || format!("\"{text}\" is not a duration (use e.g. 500ms, 5s, 2m, 1h)");
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(not_a_duration)?;
    let (number, unit) = text.split_at(digits_end);
    if number.is_empty() {
        return Err(not_a_duration());
    }
    let scale = UNITS
        .iter()
        .find(|(suffix, _)| *suffix == unit)
        .map(|(_, millis)| *millis)
        .ok_or_else(not_a_duration)?;
    // A number too large for u64 milliseconds is a typo, not a wish to wait for longer than the universe.
    let millis = number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .ok_or_else(not_a_duration)?;
    Ok(Duration::from_millis(millis))
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let millis = u64::try_from(self.0.as_millis()).unwrap_or(u64::MAX);
        if millis == 0 {
            return f.write_str("0s");
        }
        let (suffix, scale) = UNITS
            .iter()
            .find(|(_, scale)| millis % scale == 0)
            .copied()
            .unwrap_or(("ms", 1));
        write!(f, "{}{suffix}", millis / scale)
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DurationVisitor;

        impl Visitor<'_> for DurationVisitor {
            type Value = HumanDuration;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration string such as 500ms, 5s, 2m or 1h")
            }

            fn visit_str<E: de::Error>(self, s: &str) -> Result<HumanDuration, E> {
                s.parse().map_err(E::custom)
            }
        }

        deserializer.deserialize_str(DurationVisitor)
    }
}

impl JsonSchema for HumanDuration {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        "HumanDuration".into()
    }

    fn json_schema(_generator: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": DURATION_PATTERN,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_unit() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn refuses_anything_else() {
        for bad in [
            "",
            "5",
            "s",
            "-5s",
            "1.5s",
            "5 s",
            " 5s",
            "5S",
            "1m30s",
            "1d",
            "5sec",
            "99999999999999999999ms",
            "18446744073709551615h",
        ] {
            assert_eq!(
                parse_duration(bad),
                Err(format!(
                    "\"{bad}\" is not a duration (use e.g. 500ms, 5s, 2m, 1h)"
                )),
                "{bad}"
            );
        }
    }

    #[test]
    fn displays_in_the_largest_exact_unit() {
        let show = |ms| HumanDuration::from(Duration::from_millis(ms)).to_string();
        assert_eq!(show(0), "0s");
        assert_eq!(show(1500), "1500ms");
        assert_eq!(show(1000), "1s");
        assert_eq!(show(90_000), "90s");
        assert_eq!(show(120_000), "2m");
        assert_eq!(show(7_200_000), "2h");
        for text in ["250ms", "5s", "2m", "1h"] {
            let d: HumanDuration = text.parse().unwrap();
            assert_eq!(d.to_string(), text);
        }
    }

    #[test]
    fn the_schema_pattern_agrees_with_the_parser() {
        // No regex crate here: check that every unit the parser takes is in the pattern's alternation.
        let (_, alternation) = DURATION_PATTERN.split_once('(').unwrap();
        let alternation = alternation.strip_suffix(")$").unwrap();
        let mut in_pattern: Vec<&str> = alternation.split('|').collect();
        let mut in_parser: Vec<&str> = UNITS.iter().map(|(s, _)| *s).collect();
        in_pattern.sort_unstable();
        in_parser.sort_unstable();
        assert_eq!(in_pattern, in_parser);
    }
}
