//! How a `match` table compares with a payload (a client event's, a command result's, a journal
//! entry's detail), so that every engine judges alike.
//!
//! - A table matches an object that has every key of the table, each value matching; other keys
//!   of the object are ignored.
//! - An array matches an array of the same length, element by element.
//! - A string matches a string; `*` in the pattern stands for any run of characters (the only
//!   wildcard), so `"/v3/Lists/*/Items"` matches any list's items.
//! - Numbers match when numerically equal (`3` matches `3.0`); booleans when equal.
//! - A table or an array matches a string holding JSON that it matches: attributes travel as JSON
//!   strings in the driver protocol, and `attributes = { priority = "high" }` says what they hold.
use serde_json::{Map, Value};

/// Whether `actual` contains `pattern` (see the module documentation).
pub fn matches(pattern: &Value, actual: &Value) -> bool {
    match (pattern, actual) {
        (Value::Object(p), Value::Object(a)) => table_matches(p, a),
        (Value::Array(p), Value::Array(a)) => p.len() == a.len() && p.iter().zip(a).all(|(p, a)| matches(p, a)),
        (Value::String(p), Value::String(a)) => glob(p, a),
        (Value::Object(_) | Value::Array(_), Value::String(a)) => {
            serde_json::from_str::<Value>(a).is_ok_and(|parsed| !parsed.is_string() && matches(pattern, &parsed))
        }
        (Value::Number(p), Value::Number(a)) => match (p.as_f64(), a.as_f64()) {
            (Some(p), Some(a)) => p == a,
            _ => p == a,
        },
        (p, a) => p == a,
    }
}

/// Whether every key of `pattern` is in `actual` with a matching value.
pub fn table_matches(pattern: &Map<String, Value>, actual: &Map<String, Value>) -> bool {
    pattern.iter().all(|(k, p)| actual.get(k).is_some_and(|a| matches(p, a)))
}

/// `*` matches any run of characters (also none); everything else literally.
pub fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_are_contained() {
        let actual = json!({"state": "connected", "extra": 1, "nested": {"a": 1, "b": [1, 2]}});
        assert!(matches(&json!({"state": "connected"}), &actual));
        assert!(matches(&json!({"nested": {"b": [1, 2]}}), &actual));
        assert!(matches(&json!({}), &actual));
        assert!(!matches(&json!({"state": "denied"}), &actual));
        assert!(!matches(&json!({"missing": null}), &actual));
        assert!(!matches(&json!({"nested": {"b": [1]}}), &actual));
        assert!(matches(&json!({"extra": 1.0}), &actual));
    }

    #[test]
    fn tables_look_inside_json_strings() {
        let actual = json!({"attributes": "{\"priority\":\"high\",\"tags\":[\"a\"],\"n\":1}"});
        assert!(matches(&json!({"attributes": {"priority": "high"}}), &actual));
        assert!(matches(&json!({"attributes": {"tags": ["a"], "n": 1.0}}), &actual));
        assert!(!matches(&json!({"attributes": {"priority": "low"}}), &actual));
        assert!(!matches(&json!({"attributes": {"x": 1}}), &json!({"attributes": "not json"})));
        assert!(matches(&json!({"v": [1, 2]}), &json!({"v": "[1,2]"})));
    }

    #[test]
    fn globs() {
        for (p, t, ok) in [
            ("/v3/Lists/*/Items", "/v3/Lists/CH1.messages/Items", true),
            ("/v3/Lists/*/Items", "/v3/Maps/x/Items", false),
            ("*", "", true),
            ("a*", "a", true),
            ("*b", "ab", true),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "acb", false),
            ("ab*ba", "aba", false),
            ("exact", "exact", true),
            ("exact", "exactly", false),
        ] {
            assert_eq!(glob(p, t), ok, "{p} ~ {t}");
        }
    }
}
