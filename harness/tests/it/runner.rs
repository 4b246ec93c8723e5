//! The runner with a scripted engine and fake adapters: events, order, parallelism,
//! deviations, fail-fast, a client that does not start, an observed-only client, a panicking
//! engine, and the exit codes.
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rehearsal_harness::report::{ReportError, Reporter};
use rehearsal_harness::runner::{driver_env, harness_outcome};
use rehearsal_harness::{Play, ProcessDriver, RunError, RunEvent, RunOptions, Selection, exit, run_with};
use rehearsal_mock_server::MockServer;
use rehearsal_scenarios::engine::{Answer, ClientDriver, Command};
use rehearsal_scenarios::outcome::{ScenarioOutcome, Verdict};
use rehearsal_scenarios::{Area, Loaded, Mode};
use serde_json::json;
use tokio::sync::oneshot;

use crate::support::fake;

/// Plays like the engine would, minus the judging: a tenant, the driver started with its
/// environment, one `connect` when driven. Scenarios whose id contains `drop` FAIL; any
/// containing `panic` panic.
struct Scripted;

impl Play for Scripted {
    async fn play(&self, server: &MockServer, loaded: &Loaded, driver: &mut ProcessDriver) -> ScenarioOutcome {
        let s = &loaded.scenario;
        if s.id.contains("panic") {
            panic!("scripted panic in {}", s.id);
        }
        let tenant = server.control().create_tenant(Default::default()).expect("a tenant");
        let mut env = driver_env(server, &s.id, &tenant.credentials);
        if s.mode() == Mode::Observed {
            env.observed_identity = Some("alice".into());
        }
        let verdict = match driver.start(env).await {
            Ok(link) => {
                if link.hello.is_some() {
                    let (reply, answer) = oneshot::channel();
                    link.commands
                        .send(Command {
                            body: json!({"cmd": "connect", "client": "alice"}),
                            reply,
                        })
                        .await
                        .unwrap();
                    assert_eq!(answer.await.unwrap(), Answer::Ok(json!({})));
                }
                if link.hello.is_none() {
                    // Observed: the client runs by itself for a while.
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                if s.id.contains("drop") { Verdict::Failed } else { Verdict::Ok }
            }
            Err(_) => Verdict::Failed,
        };
        let log = driver.stop().await;
        let _ = server.control().delete_tenant(&tenant.credentials.account_sid);
        let mut o = harness_outcome(loaded, verdict, "scripted".into(), log.stderr, Duration::from_millis(5));
        if verdict == Verdict::Ok {
            o.reason = None;
        }
        o
    }
}

#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<RunEvent>>>);

impl Reporter for Recorder {
    fn event(&mut self, e: &RunEvent) {
        self.0.lock().unwrap().push(e.clone());
    }
    fn finish(&mut self) -> Result<(), ReportError> {
        Ok(())
    }
}

fn opts(mode: &str, globs: &[&str]) -> RunOptions {
    let mut o = RunOptions::new(fake(mode));
    o.selection = Selection {
        globs: globs.iter().map(|g| (*g).to_owned()).collect(),
        areas: vec![],
    };
    o.jobs = 2;
    o.hello_timeout = Duration::from_millis(800);
    o.shutdown_grace = Duration::from_millis(800);
    o
}

fn finished_ids(events: &[RunEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            RunEvent::ScenarioFinished { result, .. } => Some(result.outcome.id.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn runs_in_parallel_and_reports_in_library_order() {
    let rec = Recorder::default();
    let report = run_with(
        opts("ok", &["connection.drop-*", "typing.*", "token.quickstart-refresh-on-warning"]),
        Scripted,
        vec![Box::new(rec.clone())],
    )
    .await
    .expect("runs");
    let events = rec.0.lock().unwrap().clone();
    assert!(matches!(events.first(), Some(RunEvent::RunStarted { total: 7, info }) if info.client.as_ref().unwrap().name == "fake"));
    assert!(matches!(events.last(), Some(RunEvent::RunFinished { .. })));
    // Each scenario starts before it finishes.
    for id in finished_ids(&events) {
        let started = events
            .iter()
            .position(|e| matches!(e, RunEvent::ScenarioStarted { id: i, .. } if *i == id));
        let finished = events
            .iter()
            .position(|e| matches!(e, RunEvent::ScenarioFinished { result, .. } if result.outcome.id == id));
        assert!(started < finished, "{id}");
    }
    let ids: Vec<&str> = report.results.iter().map(|r| r.outcome.id.as_str()).collect();
    let mut sorted = ids.clone();
    sorted.sort_by_key(|id| (rehearsal_harness::runner::area_order(id.split('.').next().unwrap()), id.to_string()));
    assert_eq!(ids, sorted, "library order");
    let s = &report.summary;
    assert_eq!((s.total, s.failed, s.ok), (7, 3, 4), "{s:?}");
    assert_eq!(report.exit_code(), exit::FAILED);
    // The observed scenario's adapter got observed mode (the fake prints its environment).
    let observed = report
        .results
        .iter()
        .find(|r| r.outcome.id == "token.quickstart-refresh-on-warning")
        .unwrap();
    assert_eq!(observed.outcome.verdict, Verdict::Ok);
}

#[tokio::test]
async fn deviations_keep_the_verdict_and_pass_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deviations.toml");
    std::fs::write(
        &path,
        "[[deviation]]\nscenario = \"connection.drop-*\"\nimplementation = \"fake\"\nreason = \"known\"\nlink = \"https://example.com/1\"\n\n[[deviation]]\nscenario = \"typing.*\"\nimplementation = \"another\"\nreason = \"not this one\"\n",
    )
    .unwrap();
    let mut o = opts("ok", &["connection.drop-*", "typing.started-then-ended"]);
    o.deviations = Some(path);
    let report = run_with(o, Scripted, vec![]).await.unwrap();
    for r in &report.results {
        if r.outcome.id.starts_with("connection.drop-") {
            assert_eq!(r.outcome.verdict, Verdict::Failed);
            assert!(r.deviated);
            assert_eq!(r.deviation.as_ref().unwrap().reason, "known");
        } else {
            assert!(!r.deviated, "another implementation's deviation does not apply");
        }
    }
    assert_eq!(report.summary.deviated, 3);
    assert_eq!(report.exit_code(), exit::OK);
}

#[tokio::test]
async fn fail_fast_stops_scheduling() {
    let mut o = opts("ok", &["connection.*"]);
    o.jobs = 1;
    o.fail_fast = true;
    o.selection.globs = vec![
        "connection.drop-reconnects".into(),
        "connection.stall-then-unstall".into(),
        "typing.*".into(),
    ];
    let report = run_with(o, Scripted, vec![]).await.unwrap();
    assert_eq!(report.results.len(), 1, "only the first (failing) scenario ran");
    assert_eq!(report.summary.not_run.len(), 4);
    assert_eq!(report.summary.not_run[0], "connection.stall-then-unstall");
    assert_eq!(report.exit_code(), exit::FAILED);
}

#[tokio::test]
async fn a_client_that_does_not_start_fails_the_run_with_exit_2() {
    let err = run_with(opts("crash", &["typing.*"]), Scripted, vec![]).await.unwrap_err();
    assert!(matches!(err, RunError::ClientStart { .. }), "{err}");
    assert!(err.to_string().contains("cannot find module"), "{err}");
    assert_eq!(err.exit_code(), exit::ERROR);
}

#[tokio::test]
async fn bad_selections_and_files_are_exit_2() {
    let err = run_with(opts("ok", &["typnig.*"]), Scripted, vec![]).await.unwrap_err();
    assert_eq!(err.to_string(), "no scenario matches `typnig.*` (see `rehearsal scenarios list`)");
    assert_eq!(err.exit_code(), exit::ERROR);
    let mut o = opts("ok", &["typing.*"]);
    o.selection.areas = vec![Area::Media];
    assert!(matches!(run_with(o, Scripted, vec![]).await.unwrap_err(), RunError::Select(_)));
    let mut o = opts("ok", &["typing.*"]);
    o.deviations = Some("/nonexistent/deviations.toml".into());
    assert!(matches!(run_with(o, Scripted, vec![]).await.unwrap_err(), RunError::Deviations(_)));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.toml"), "id = \"x\"\n").unwrap();
    let mut o = opts("ok", &[]);
    o.scenarios_dir = Some(dir.path().to_owned());
    assert!(matches!(run_with(o, Scripted, vec![]).await.unwrap_err(), RunError::Library(_)));
}

#[tokio::test]
async fn an_observed_only_client_plays_observed_scenarios_only() {
    let report = run_with(
        opts("silent", &["connection.drop-reconnects", "typing.started-then-ended"]),
        Scripted,
        vec![],
    )
    .await
    .unwrap();
    assert!(report.info.client.is_none());
    let typing = report.results.iter().find(|r| r.outcome.id.starts_with("typing.")).unwrap();
    assert_eq!(typing.outcome.verdict, Verdict::Unimplemented, "driven: not played");
    assert!(typing.outcome.reason.as_deref().unwrap().contains("observed mode"));
    let drop = report.results.iter().find(|r| r.outcome.id.starts_with("connection.")).unwrap();
    assert_eq!(drop.outcome.verdict, Verdict::Failed, "observed: played (the script fails `drop`)");
    assert!(drop.outcome.stderr.contains("observed=1 identity=alice"), "{:?}", drop.outcome);
}

/// `--observed`: a client that would answer `hello` is never asked, so it plays the observed
/// scenarios only and the run names no implementation.
#[tokio::test]
async fn a_client_declared_observed_is_not_asked_hello() {
    let mut o = opts("ok", &["connection.drop-reconnects", "typing.started-then-ended"]);
    o.observed = true;
    o.hello_timeout = Duration::from_secs(600);
    let report = tokio::time::timeout(Duration::from_secs(60), run_with(o, Scripted, vec![]))
        .await
        .expect("no hello wait: the run is not held up for the 600 s hello timeout")
        .unwrap();
    assert!(report.info.client.is_none());
    let typing = report.results.iter().find(|r| r.outcome.id.starts_with("typing.")).unwrap();
    assert_eq!(typing.outcome.verdict, Verdict::Unimplemented);
    assert!(
        typing.outcome.reason.as_deref().unwrap().contains("--observed"),
        "{:?}",
        typing.outcome.reason
    );
}

#[tokio::test]
async fn a_panicking_engine_is_a_failed_scenario() {
    struct Panicky;
    impl Play for Panicky {
        async fn play(&self, _: &MockServer, loaded: &Loaded, _: &mut ProcessDriver) -> ScenarioOutcome {
            panic!("boom in {}", loaded.scenario.id);
        }
    }
    let report = run_with(opts("ok", &["typing.started-then-ended"]), Panicky, vec![]).await.unwrap();
    let r = &report.results[0];
    assert_eq!(r.outcome.verdict, Verdict::Failed);
    assert_eq!(
        r.outcome.reason.as_deref(),
        Some("the engine panicked: boom in typing.started-then-ended")
    );
}
