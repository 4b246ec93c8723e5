//! Durations as written in scenarios: a whole number and a unit, optionally several from the
//! largest unit down — `"200ms"`, `"5s"`, `"1m30s"`, `"1h"`. Millisecond precision; no bare
//! numbers, because `wait = 200` would leave the reader guessing the unit.
//!
//! Use with `#[serde(with = "duration")]` (or `duration::option`) and
//! `#[schemars(with = "DurationText")]` on `std::time::Duration` fields.
use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Visitor};
use serde::{Deserializer, Serializer};

const UNITS: [(&str, u64); 4] = [("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)];

/// Why a duration text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration `{text}`: {why}; write a whole number and a unit (ms, s, m or h), e.g. \"200ms\", \"5s\", \"1m30s\"")]
pub struct ParseDurationError {
    pub text: String,
    pub why: &'static str,
}

/// Parses `"200ms"`, `"5s"`, `"1m30s"`, `"1h"`.
pub fn parse(text: &str) -> Result<Duration, ParseDurationError> {
    let fail = |why| ParseDurationError {
        text: text.to_owned(),
        why,
    };
    if text.is_empty() {
        return Err(fail("it is empty"));
    }
    let mut rest = text;
    let mut total: u64 = 0;
    // Index into UNITS of the smallest unit used so far: units must go from large to small.
    let mut next_unit = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(fail("expected a number"));
        }
        let number: u64 = rest[..digits].parse().map_err(|_| fail("the number is too large"))?;
        rest = &rest[digits..];
        let letters = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = &rest[..letters];
        rest = &rest[letters..];
        let Some(position) = UNITS.iter().position(|(name, _)| *name == unit) else {
            return Err(fail(if unit.is_empty() { "a unit is missing" } else { "unknown unit" }));
        };
        if position < next_unit {
            return Err(fail("units must go from the largest to the smallest, each once"));
        }
        next_unit = position + 1;
        let millis = number.checked_mul(UNITS[position].1).ok_or_else(|| fail("it is too long"))?;
        total = total.checked_add(millis).ok_or_else(|| fail("it is too long"))?;
    }
    Ok(Duration::from_millis(total))
}

/// Formats whole milliseconds the way [`parse`] reads them (sub-millisecond parts are dropped):
/// `1500ms` → `"1s500ms"`, `0` → `"0s"`.
pub fn format(d: Duration) -> String {
    let mut millis = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    if millis == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    for (name, size) in UNITS {
        let n = millis / size;
        if n > 0 {
            out.push_str(&n.to_string());
            out.push_str(name);
            millis -= n * size;
        }
    }
    out
}

pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format(*d))
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    d.deserialize_str(DurationVisitor)
}

struct DurationVisitor;

impl Visitor<'_> for DurationVisitor {
    type Value = Duration;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a duration text with a unit, e.g. \"200ms\" or \"5s\"")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
        parse(v).map_err(E::custom)
    }
}

/// For `Option<Duration>` fields (use with `#[serde(default)]`).
pub mod option {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => super::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        super::deserialize(d).map(Some)
    }
}

/// The schema of a duration text (for `#[schemars(with = "DurationText")]`).
pub struct DurationText;

impl JsonSchema for DurationText {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^([0-9]+h)?([0-9]+m)?([0-9]+s)?([0-9]+ms)?$",
            "minLength": 2,
            "description": "A duration: a whole number and a unit (ms, s, m, h), several from the largest down, e.g. \"200ms\", \"5s\", \"1m30s\".",
            "examples": ["200ms", "5s", "1m30s", "1h"]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats() {
        for (text, millis, canonical) in [
            ("200ms", 200, "200ms"),
            ("5s", 5_000, "5s"),
            ("1m30s", 90_000, "1m30s"),
            ("1h", 3_600_000, "1h"),
            ("90s", 90_000, "1m30s"),
            ("1500ms", 1_500, "1s500ms"),
            ("0s", 0, "0s"),
            ("1h2m3s4ms", 3_723_004, "1h2m3s4ms"),
        ] {
            let d = parse(text).unwrap();
            assert_eq!(d, Duration::from_millis(millis), "{text}");
            assert_eq!(format(d), canonical);
            assert_eq!(parse(&format(d)).unwrap(), d);
        }
    }

    #[test]
    fn refuses_with_reasons() {
        for (text, why) in [
            ("", "it is empty"),
            ("200", "a unit is missing"),
            ("5 s", "a unit is missing"),
            ("5sec", "unknown unit"),
            ("s", "expected a number"),
            ("1s1m", "units must go from the largest to the smallest, each once"),
            ("1s1s", "units must go from the largest to the smallest, each once"),
            ("-1s", "expected a number"),
            ("99999999999999999999s", "the number is too large"),
            ("9999999999999999h", "it is too long"),
        ] {
            assert_eq!(parse(text).unwrap_err().why, why, "{text}");
        }
    }
}
