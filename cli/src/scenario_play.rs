//! `rehearsal serve --scenario ID`: plays the server side of one library scenario against
//! whatever connects to the default account, again each time the app reconnects after a play,
//! until the server stops. Steps are logged as they happen; each play ends with its verdict.
//!
//! **Progress per step.** The engine tells [`PlayOptions::on_step`] of each step as it ends;
//! [`record_step`] turns that into the board's `steps_done`, `last_step` and `next_step`, which
//! the inspector shows while the play runs.
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use rehearsal_harness::report::verdict_name;
use rehearsal_mock_server::AppState;
use rehearsal_scenarios::engine::{OnStep, PlayOptions, play_server_side};
use rehearsal_scenarios::load::Loaded;
use rehearsal_scenarios::outcome::{ScenarioOutcome, StepOutcome};
use serde_json::{Value, json};

/// Plays `loaded` on the server's default account, over and over, until `stop` flips.
pub async fn replay(state: AppState, twilsock_url: String, loaded: Loaded, mut stop: tokio::sync::watch::Receiver<bool>) {
    let Some(account) = state.default_account.clone() else {
        eprintln!("rehearsal: --scenario needs an account to play on (the seed has none)");
        return;
    };
    let board = state.control.scenario_board().clone();
    let opts = PlayOptions {
        keep_tenant: true,
        settle: Duration::from_secs(1),
        on_step: Some(OnStep(Arc::new(move |step: &StepOutcome| board.update(|v| record_step(v, step))))),
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
        "steps": s.steps.iter().take(MAX_LISTED_STEPS).map(|st| st.describe()).collect::<Vec<_>>(),
        "steps_total": s.steps.len(),
        "steps_done": 0,
        "last_step": null,
        "next_step": s.steps.first().map(|st| st.describe()),
    }));
}

/// Steps of the scenario the board lists (the rest only counted in `steps_total`).
const MAX_LISTED_STEPS: usize = 100;

/// One step ended: counts it, and names the one after it (by position among the scenario's
/// steps; triggered steps count too, so this is the best guess the log allows).
fn record_step(board: &mut Value, step: &StepOutcome) {
    let done = board["steps_done"].as_u64().unwrap_or(0) + 1;
    board["steps_done"] = done.into();
    board["last_step"] = json!({
        "description": step.description,
        "ok": step.ok,
        "detail": step.detail.as_deref().filter(|d| !d.is_empty()),
    });
    let next = usize::try_from(done).ok().and_then(|i| board["steps"].get(i).cloned());
    board["next_step"] = next.unwrap_or(Value::Null);
}

/// One play's verdict and expectations, for the board (no timeline: it can be long).
fn summary(o: &ScenarioOutcome, round: u32) -> Value {
    json!({
        "round": round,
        "verdict": verdict_name(o.verdict),
        "reason": o.reason,
        "duration_ms": o.duration.as_millis() as u64,
        "steps": o.steps.iter().take(MAX_LISTED_STEPS).map(|st| json!({
            "description": st.description, "ok": st.ok, "detail": st.detail,
        })).collect::<Vec<_>>(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_ended_step_moves_the_boards_progress() {
        let mut board = json!({ "steps": ["server drop alice", "wait 2s"], "steps_total": 2, "steps_done": 0 });
        let step = StepOutcome {
            index: 0,
            description: "server drop alice".into(),
            ok: true,
            detail: Some(String::new()),
            started_ms: 5,
            duration_ms: 1,
        };
        record_step(&mut board, &step);
        assert_eq!(board["steps_done"], 1);
        assert_eq!(
            board["last_step"],
            json!({ "description": "server drop alice", "ok": true, "detail": null })
        );
        assert_eq!(board["next_step"], "wait 2s");
        record_step(
            &mut board,
            &StepOutcome {
                index: 1,
                description: "wait 2s".into(),
                ..step
            },
        );
        assert_eq!((board["steps_done"].clone(), board["next_step"].clone()), (json!(2), Value::Null));
    }
}
