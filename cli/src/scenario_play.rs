//! `rehearsal serve --scenario ID`: plays the server side of one library scenario against
//! whatever connects to the default account, again each time the app reconnects after a play,
//! until the server stops. Steps are logged as they happen; each play ends with its verdict.
use std::collections::VecDeque;
use std::time::Duration;

use rehearsal_harness::report::verdict_name;
use rehearsal_mock_server::AppState;
use rehearsal_scenarios::engine::{PlayOptions, play_server_side};
use rehearsal_scenarios::load::Loaded;
use rehearsal_scenarios::outcome::ScenarioOutcome;
use serde_json::{Value, json};

/// Plays `loaded` on the server's default account, over and over, until `stop` flips.
pub async fn replay(state: AppState, twilsock_url: String, loaded: Loaded, mut stop: tokio::sync::watch::Receiver<bool>) {
    let Some(account) = state.default_account.clone() else {
        eprintln!("rehearsal: --scenario needs an account to play on (the seed has none)");
        return;
    };
    let opts = PlayOptions {
        keep_tenant: true,
        settle: Duration::from_secs(1),
        ..PlayOptions::default()
    };
    let mut round = 1u32;
    let mut outcomes: VecDeque<Value> = VecDeque::new();
    loop {
        post(&state, &loaded, round, "waiting for the app to connect, then playing", &outcomes);
        let play = play_server_side(&state.control, &state.base_url, &twilsock_url, &loaded, &account, &opts);
        tokio::select! {
            outcome = play => {
                eprint!("{}", render(&outcome, round));
                if outcomes.len() == KEPT_OUTCOMES {
                    outcomes.pop_front();
                }
                outcomes.push_back(summary(&outcome, round));
            }
            _ = stop.wait_for(|s| *s) => return,
        }
        round += 1;
    }
}

/// Outcomes the inspector's board keeps (the newest).
const KEPT_OUTCOMES: usize = 10;

/// Shows the play's progress on the inspector (`GET /_rehearsal/v1/scenario`).
fn post(state: &AppState, loaded: &Loaded, round: u32, what: &str, outcomes: &VecDeque<Value>) {
    let s = &loaded.scenario;
    state.control.scenario_board().set(json!({
        "id": s.id,
        "title": s.title,
        "identities": s.clients.iter().map(|c| c.identity()).collect::<Vec<_>>(),
        "round": round,
        "state": what,
        "outcomes": outcomes,
    }));
}

/// One play's verdict and expectations, for the board (no timeline: it can be long).
fn summary(o: &ScenarioOutcome, round: u32) -> Value {
    json!({
        "round": round,
        "verdict": verdict_name(o.verdict),
        "reason": o.reason,
        "duration_ms": o.duration.as_millis() as u64,
        "expectations": o.expectations.iter().map(|e| json!({
            "label": e.label, "passed": e.passed, "grade": grade_word(e),
            "expected": e.expected.to_string(), "actual": e.actual.to_string(),
        })).collect::<Vec<_>>(),
    })
}

/// What a developer reads after one play: the verdict, what was judged, what was skipped.
pub fn render(o: &ScenarioOutcome, round: u32) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nrehearsal: scenario {} (play {round}) ended {} after {:.1} s",
        o.id,
        verdict_name(o.verdict),
        o.duration.as_secs_f64()
    );
    if let Some(reason) = &o.reason {
        let _ = writeln!(out, "  reason: {reason}");
    }
    for e in &o.expectations {
        let mark = if e.passed { "ok  " } else { "FAIL" };
        let _ = writeln!(out, "  {mark} [{}] {}", grade_word(e), e.label);
        if !e.passed {
            let _ = writeln!(out, "         expected {}", e.expected);
            let _ = writeln!(out, "         {}", e.actual);
        }
    }
    let skipped = o
        .steps
        .iter()
        .filter(|s| s.detail.as_deref().is_some_and(|d| d.starts_with("skipped")))
        .count();
    if skipped > 0 {
        let _ = writeln!(
            out,
            "  {skipped} step(s) for a driven client were skipped; expectations on what a client reports are not judged"
        );
    }
    let _ = writeln!(out, "  reconnect (or connect again) to play it once more; Ctrl-C stops the server");
    out
}

fn grade_word(e: &rehearsal_scenarios::outcome::ExpectationOutcome) -> String {
    serde_json::to_value(e.grade)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}
