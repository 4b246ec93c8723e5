//! Shared helpers: fake adapters, environments, hand-built outcomes.
use std::path::PathBuf;
use std::time::Duration;

use rehearsal_harness::deviations::Deviation;
use rehearsal_harness::runner::{ClientInfo, RunInfo, RunReport, RunSummary, ScenarioResult};
use rehearsal_scenarios::engine::DriverEnv;
use rehearsal_scenarios::outcome::{ExpectationGrade, ExpectationOutcome, ScenarioOutcome, StepOutcome, TimelineEntry, Verdict};
use serde_json::json;

pub fn fake_adapter() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/it/adapters/fake.sh")
}

/// `sh fake.sh MODE`, as a client command.
pub fn fake(mode: &str) -> String {
    format!("sh '{}' {mode}", fake_adapter().display())
}

pub fn env(scenario: &str) -> DriverEnv {
    DriverEnv {
        scenario: scenario.to_owned(),
        base_url: "http://127.0.0.1:9".into(),
        twilsock_url: "ws://127.0.0.1:9/v3/wsconnect".into(),
        token_url: "http://127.0.0.1:9/token?account=AC00000000000000000000000000000001".into(),
        account_sid: "AC00000000000000000000000000000001".into(),
        auth_token: "auth".into(),
        api_key: "SK00000000000000000000000000000001".into(),
        api_secret: "secret".into(),
        service_sid: "IS00000000000000000000000000000001".into(),
        observed_identity: None,
        observed_token_ttl: None,
    }
}

fn expectation(label: &str, grade: ExpectationGrade, passed: bool, at_ms: u64) -> ExpectationOutcome {
    ExpectationOutcome {
        label: label.to_owned(),
        kind: "event".to_owned(),
        grade,
        passed,
        expected: "message_added {body: \"sent while you were away\"} from alice, exactly once, within 5s".to_owned(),
        actual: if passed {
            String::new()
        } else {
            "no such event in 5s; alice reported connection_state <disconnected> at +1203ms".to_owned()
        },
        evidence: vec![json!({"event": "connection_state", "at": 1795670317090u64, "client": "alice", "state": "disconnected"})],
        at_ms,
    }
}

fn timeline() -> Vec<TimelineEntry> {
    let e = |at_ms, lane: &str, actor: &str, summary: &str| TimelineEntry {
        at_ms,
        lane: lane.to_owned(),
        actor: actor.to_owned(),
        summary: summary.to_owned(),
        detail: json!({"url": "ws://127.0.0.1:41234/v3/wsconnect", "conversation": "CH0123456789abcdef0123456789abcdef"}),
    };
    vec![
        e(2, "command", "alice", "connect"),
        e(180, "server", "alice", "session_opened"),
        e(260, "client", "alice", "connection_state connected"),
        e(262, "answer", "alice", "ok {}"),
        e(300, "action", "server", "drop alice"),
        e(301, "server", "alice", "session_closed <dropped> & gone"),
        e(305, "action", "bob", "post general \"sent while you were away\""),
        e(1203, "client", "alice", "connection_state disconnected"),
    ]
}

fn outcome(id: &str, title: &str, verdict: Verdict, expectations: Vec<ExpectationOutcome>, reason: Option<&str>) -> ScenarioOutcome {
    ScenarioOutcome {
        id: id.to_owned(),
        title: title.to_owned(),
        area: id.split('.').next().unwrap_or_default().to_owned(),
        verdict,
        reason: reason.map(str::to_owned),
        duration: Duration::from_millis(1234),
        steps: vec![
            StepOutcome {
                index: 0,
                description: "command connect alice".into(),
                ok: true,
                detail: None,
                started_ms: 1,
                duration_ms: 260,
            },
            StepOutcome {
                index: 1,
                description: "server drop alice".into(),
                ok: true,
                detail: Some("sessions [3]".into()),
                started_ms: 300,
                duration_ms: 1,
            },
        ],
        expectations,
        timeline: timeline(),
        stderr: "[adapter] connecting to ws://127.0.0.1:41234/v3/wsconnect\n[adapter] \u{1b}[31mwarn\u{1b}[0m <reconnect> & retry\n".into(),
    }
}

/// A run with one scenario of every verdict, one failing and one deviated.
pub fn sample_report() -> RunReport {
    use ExpectationGrade::*;
    let results = vec![
        ScenarioResult {
            outcome: outcome(
                "connection.drop-replays-missed-messages",
                "A message posted while the socket is down arrives once after the reconnect",
                Verdict::Failed,
                vec![
                    expectation("delivered exactly once", Must, false, 5300),
                    expectation("reconnects", Should, true, 900),
                ],
                Some("`delivered exactly once` failed: no such event in 5s"),
            ),
            deviated: false,
            deviation: None,
        },
        ScenarioResult {
            outcome: outcome(
                "connection.drop-reconnects",
                "A dropped socket reconnects",
                Verdict::Ok,
                vec![expectation("reconnects", Must, true, 900)],
                None,
            ),
            deviated: false,
            deviation: None,
        },
        ScenarioResult {
            outcome: outcome(
                "token.update-keeps-session",
                "updateToken keeps the session",
                Verdict::NonStrict,
                vec![expectation("no reconnect", Should, false, 700)],
                Some("`no reconnect` (should) failed"),
            ),
            deviated: false,
            deviation: None,
        },
        ScenarioResult {
            outcome: outcome(
                "media.upload-integrity",
                "Uploaded bytes come back intact",
                Verdict::Unimplemented,
                vec![],
                Some("the client does not support `send_media`"),
            ),
            deviated: false,
            deviation: None,
        },
        ScenarioResult {
            outcome: outcome(
                "token.refresh-while-disconnected",
                "A token refreshed while disconnected is used on reconnect",
                Verdict::Failed,
                vec![expectation("reconnected with the new token", Must, false, 3000)],
                Some("`reconnected with the new token` failed"),
            ),
            deviated: true,
            deviation: Some(Deviation {
                scenario: "token.refresh-*".into(),
                implementation: Some("fake".into()),
                reason: "the SDK drops token updates while disconnecting".into(),
                link: Some("https://example.com/issues/7".into()),
            }),
        },
        ScenarioResult {
            outcome: outcome(
                "typing.client-signals-typing",
                "Typing reaches others",
                Verdict::Informational,
                vec![expectation("typing latency", Informational, true, 400)],
                None,
            ),
            deviated: false,
            deviation: None,
        },
    ];
    let summary = RunSummary::of(7, &results, vec!["typing.started-then-ended".into()], Duration::from_millis(6543));
    RunReport {
        info: RunInfo {
            harness_version: "0.1.0".into(),
            protocol: 1,
            command: "sh fake.sh ok".into(),
            client: Some(ClientInfo {
                name: "fake".into(),
                version: "0.0.1".into(),
                protocol: 1,
                capabilities: vec!["hello".into(), "connect".into()],
            }),
            jobs: 2,
            started_at: "2026-11-26T07:00:00Z".into(),
            deviations: Some("deviations.toml".into()),
        },
        results,
        summary,
    }
}
