//! Redaction of volatile values, so that reports can be compared and snapshot-tested: ports,
//! SIDs, access tokens, token keys, UUIDs, timestamps, durations, server-wide counters (journal sequence
//! numbers, session ids) and the harness version.
//!
//! Production code, used the same way by every reporter: the runner redacts each
//! [`RunEvent`] once before handing it to the reporters when `--redact` is given (reports
//! meant to be committed and diffed, as Autobahn users diff theirs), and the snapshot tests
//! always redact. Redacted numbers become `0`, so a redacted report still validates against
//! `harness/schema/report.schema.json`.
use regex::Regex;
use rehearsal_scenarios::outcome::ScenarioOutcome;
use serde_json::Value;

use crate::events::{RunEvent, RunInfo, RunReport, ScenarioResult};

pub const PORT: &str = "[port]";
pub const TIMESTAMP: &str = "[timestamp]";
pub const TOKEN: &str = "[token]";
pub const VERSION: &str = "[version]";
pub const UUID: &str = "[uuid]";
/// What replaces the tenant's token key in token URLs (`key=…`): a secret, and volatile.
pub const KEY: &str = "[key]";

/// Keys whose numbers are volatile: moments and durations, and the server-wide counters
/// (journal sequence numbers, session ids) that parallel scenarios interleave.
const VOLATILE_KEYS: &[&str] = &[
    "at",
    "at_ms",
    "ts",
    "timestamp",
    "time",
    "tenant_time",
    "elapsed_ms",
    "duration_ms",
    "took_ms",
    "seq",
    "session",
];

/// Compiled patterns; build once per run.
#[derive(Debug, Clone)]
pub struct Redactor {
    port: Regex,
    sid: Regex,
    token: Regex,
    rfc3339: Regex,
    epoch_ms: Regex,
    uuid: Regex,
    key: Regex,
}

impl Default for Redactor {
    fn default() -> Self {
        Self::new()
    }
}

impl Redactor {
    pub fn new() -> Redactor {
        let re = |p: &str| Regex::new(p).expect("a valid pattern");
        Redactor {
            port: re(r"(127\.0\.0\.1|localhost|\[::1\]|0\.0\.0\.0):\d{1,5}"),
            // Twilio SIDs: two capital letters and 32 hex digits.
            sid: re(r"\b([A-Z]{2})[0-9a-fA-F]{32}\b"),
            token: re(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+"),
            rfc3339: re(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?"),
            // Milliseconds since the epoch, 2017 to 2033.
            epoch_ms: re(r"\b1[5-9]\d{11}\b"),
            uuid: re(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"),
            key: re(r"\bkey=[0-9a-f]{64}\b"),
        }
    }

    /// A text with ports, SIDs, tokens and timestamps replaced.
    pub fn text(&self, s: &str) -> String {
        let s = self.port.replace_all(s, format!("${{1}}:{PORT}"));
        let s = self.sid.replace_all(&s, "${1}[sid]");
        let s = self.token.replace_all(&s, TOKEN);
        let s = self.rfc3339.replace_all(&s, TIMESTAMP);
        let s = self.epoch_ms.replace_all(&s, TIMESTAMP);
        let s = self.uuid.replace_all(&s, UUID);
        let s = self.key.replace_all(&s, format!("key={KEY}"));
        s.into_owned()
    }

    /// A JSON value with every string redacted, and numbers that are timestamps (epoch
    /// milliseconds, or any number under a key naming a time) set to 0.
    pub fn value(&self, v: &Value) -> Value {
        self.value_under(None, v)
    }

    fn value_under(&self, key: Option<&str>, v: &Value) -> Value {
        match v {
            Value::String(s) => Value::String(self.text(s)),
            Value::Number(n) => {
                let timeish = key.is_some_and(|k| VOLATILE_KEYS.contains(&k));
                let epoch = n.as_u64().is_some_and(|x| (1_500_000_000_000..2_000_000_000_000).contains(&x));
                if timeish || epoch { Value::from(0) } else { v.clone() }
            }
            Value::Array(items) => Value::Array(items.iter().map(|x| self.value_under(key, x)).collect()),
            Value::Object(map) => Value::Object(map.iter().map(|(k, x)| (self.text(k), self.value_under(Some(k), x))).collect()),
            other => other.clone(),
        }
    }

    pub fn outcome(&self, o: &ScenarioOutcome) -> ScenarioOutcome {
        let mut o = o.clone();
        o.duration = std::time::Duration::ZERO;
        o.reason = o.reason.as_deref().map(|r| self.text(r));
        o.stderr = self.text(&o.stderr);
        for s in &mut o.steps {
            s.started_ms = 0;
            s.duration_ms = 0;
            s.description = self.text(&s.description);
            s.detail = s.detail.as_deref().map(|d| self.text(d));
        }
        for e in &mut o.expectations {
            e.at_ms = 0;
            e.expected = self.text(&e.expected);
            e.actual = self.text(&e.actual);
            e.label = self.text(&e.label);
            e.evidence = e.evidence.iter().map(|v| self.value(v)).collect();
        }
        for t in &mut o.timeline {
            t.at_ms = 0;
            t.actor = self.text(&t.actor);
            t.summary = self.text(&t.summary);
            t.detail = self.value(&t.detail);
        }
        o
    }

    pub fn result(&self, r: &ScenarioResult) -> ScenarioResult {
        ScenarioResult {
            outcome: self.outcome(&r.outcome),
            deviated: r.deviated,
            deviation: r.deviation.clone(),
        }
    }

    pub fn info(&self, i: &RunInfo) -> RunInfo {
        let mut i = i.clone();
        i.started_at = TIMESTAMP.to_owned();
        i.harness_version = VERSION.to_owned();
        i.command = self.text(&i.command);
        i
    }

    /// A whole finished run (what reporters would have built from redacted events).
    pub fn report(&self, r: &RunReport) -> RunReport {
        let mut summary = r.summary.clone();
        summary.duration_ms = 0;
        RunReport {
            info: self.info(&r.info),
            results: r.results.iter().map(|x| self.result(x)).collect(),
            summary,
        }
    }

    pub fn event(&self, e: &RunEvent) -> RunEvent {
        match e {
            RunEvent::RunStarted { total, info } => RunEvent::RunStarted {
                total: *total,
                info: self.info(info),
            },
            RunEvent::ScenarioStarted { .. } => e.clone(),
            RunEvent::ScenarioFinished { index, result } => RunEvent::ScenarioFinished {
                index: *index,
                result: self.result(result),
            },
            RunEvent::RunFinished { summary } => {
                let mut summary = summary.clone();
                summary.duration_ms = 0;
                RunEvent::RunFinished { summary }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn texts_lose_their_volatile_parts() {
        let r = Redactor::new();
        assert_eq!(
            r.text("GET http://127.0.0.1:43125/v1/Conversations/CH0123456789abcdef0123456789abcdef at 2026-11-26T07:00:00.123Z"),
            "GET http://127.0.0.1:[port]/v1/Conversations/CH[sid] at [timestamp]"
        );
        assert_eq!(
            r.text("token eyJhbGci.eyJzdWIi.c2lnbmF0dXJl sent at 1795670317090"),
            "token [token] sent at [timestamp]"
        );
        assert_eq!(r.text("index 12 of 120, 5s"), "index 12 of 120, 5s");
        assert_eq!(r.text("id TMd1286e8d-c693-42f1-9f89-fe0b548f9c2f"), "id TM[uuid]");
        let key = "0123456789abcdef".repeat(4);
        assert_eq!(
            r.text(&format!(
                "http://127.0.0.1:1/token?account=AC0123456789abcdef0123456789abcdef&key={key}&ttl=60"
            )),
            "http://127.0.0.1:[port]/token?account=AC[sid]&key=[key]&ttl=60"
        );
    }

    #[test]
    fn values_keep_their_shape() {
        let r = Redactor::new();
        assert_eq!(
            r.value(&json!({"event": "message_added", "at": 1795670317090u64, "index": 12, "conversation": "CH0123456789abcdef0123456789abcdef", "list": [{"at": 5}], "seq": 7})),
            json!({"event": "message_added", "at": 0, "index": 12, "conversation": "CH[sid]", "list": [{"at": 0}], "seq": 0})
        );
    }
}
