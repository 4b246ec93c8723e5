//! The compatibility matrix: its reporters on a hand-built matrix (snapshots, the JSON schema,
//! the HTML grid), a matrix played against two fake implementations with a scripted engine, and
//! the README table check both ways.
use std::path::PathBuf;
use std::time::Duration;

use rehearsal_harness::matrix::doc::{MatrixDoc, NOT_RUN};
use rehearsal_harness::matrix::readme::{self, ReadmeError};
use rehearsal_harness::matrix::{self, ClientSpec, ImplementationRun, MatrixKind, MatrixObserver, MatrixRun, badge, markdown};
use rehearsal_harness::runner::{ClientInfo, driver_env, harness_outcome};
use rehearsal_harness::{Play, ProcessDriver, Reporter, RunError, RunOptions, RunSummary, Selection, exit};
use rehearsal_mock_server::MockServer;
use rehearsal_scenarios::Loaded;
use rehearsal_scenarios::engine::ClientDriver;
use rehearsal_scenarios::outcome::{ScenarioOutcome, Verdict};
use serde_json::Value;

use crate::support::{fake, sample_report};

pub fn matrix_schema() -> jsonschema::Validator {
    let schema: Value = serde_json::from_str(include_str!("../../schema/matrix.schema.json")).unwrap();
    jsonschema::validator_for(&schema).expect("the matrix schema is a valid JSON Schema")
}

fn assert_valid_matrix(json: &str) {
    let doc: Value = serde_json::from_str(json).expect("the matrix report is JSON");
    let errors: Vec<String> = matrix_schema()
        .iter_errors(&doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "the matrix does not match harness/schema/matrix.schema.json:\n{}",
        errors.join("\n")
    );
}

fn spec(name: &str, command: &str) -> ClientSpec {
    ClientSpec {
        name: name.into(),
        command: command.into(),
    }
}

/// Three implementations: the sample run (one scenario of each verdict), the same run by a
/// newer release where everything passes, and one that could not start.
fn sample_matrix() -> MatrixRun {
    let first = sample_report();
    let mut second = sample_report();
    second.info.client = Some(ClientInfo {
        name: "fake".into(),
        version: "0.0.2".into(),
        protocol: 1,
        capabilities: vec!["hello".into()],
    });
    for r in &mut second.results {
        r.outcome.verdict = Verdict::Ok;
        r.outcome.reason = None;
        r.deviated = false;
        r.deviation = None;
    }
    second.summary = RunSummary::of(
        7,
        &second.results,
        vec!["typing.started-then-ended".into()],
        Duration::from_millis(4000),
    );
    MatrixRun {
        implementations: vec![
            ImplementationRun {
                client: spec("fake-0.0.1", "sh fake.sh ok"),
                deviations: Some("deviations.toml".into()),
                outcome: Ok(first),
            },
            ImplementationRun {
                client: spec("fake-0.0.2", "FAKE_VERSION=0.0.2 sh fake.sh ok"),
                deviations: None,
                outcome: Ok(second),
            },
            ImplementationRun {
                client: spec("broken", "exit 3"),
                deviations: None,
                outcome: Err(RunError::ClientStart {
                    command: "exit 3".into(),
                    message: "it exited with status 3 before answering hello".into(),
                }),
            },
        ],
        started_at: "2026-11-26T07:00:00Z".into(),
        duration: Duration::from_millis(12_000),
        jobs: 2,
        harness_version: "0.1.0".into(),
    }
}

#[test]
fn matrix_json_matches_its_schema_and_names_each_implementation() {
    let run = sample_matrix();
    let doc = MatrixDoc::of(&run);
    let json = doc.to_json();
    assert_valid_matrix(&json);
    assert_valid_matrix(&MatrixDoc::of(&sample_matrix().redacted()).to_json());
    // Read back as written.
    assert_eq!(MatrixDoc::parse(&json).unwrap(), doc);
    assert_eq!(doc.exit_code, exit::ERROR, "one implementation could not run");
    let names: Vec<(&str, Option<&str>)> = doc
        .implementations
        .iter()
        .map(|i| (i.name.as_str(), i.client.as_ref().map(|c| c.version.as_str())))
        .collect();
    assert_eq!(
        names,
        [("fake-0.0.1", Some("0.0.1")), ("fake-0.0.2", Some("0.0.2")), ("broken", None)]
    );
    let codes: Vec<u8> = doc.implementations.iter().map(|i| i.exit_code).collect();
    assert_eq!(codes, [exit::FAILED, exit::OK, exit::ERROR]);
    // 6 played + 1 not run (--fail-fast) rows; passed = OK + NON-STRICT + INFORMATIONAL.
    assert_eq!(doc.scenarios.len(), 7);
    let conformance: Vec<(usize, usize)> = doc
        .implementations
        .iter()
        .map(|i| (i.conformance.passed, i.conformance.total))
        .collect();
    assert_eq!(conformance, [(3, 7), (6, 7), (0, 7)]);
    let deviated = doc.scenarios.iter().find(|s| s.id == "token.refresh-while-disconnected").unwrap();
    assert_eq!(deviated.results[0].verdict, "FAILED");
    assert!(deviated.results[0].deviated);
    assert_eq!(deviated.results[2].verdict, NOT_RUN);
    assert!(deviated.results[2].reason.as_deref().unwrap().contains("could not run"));
    let not_run = doc.scenarios.iter().find(|s| s.id == "typing.started-then-ended").unwrap();
    assert_eq!(not_run.results[0].verdict, NOT_RUN);
    // Rows in library order: by area, then id.
    let areas: Vec<&str> = doc.scenarios.iter().map(|s| s.area.as_str()).collect();
    assert_eq!(areas, ["connection", "connection", "token", "token", "media", "typing", "typing"]);
    // A run report is not a matrix.
    let run_report = rehearsal_harness::ReportKind::Json.render(&sample_report());
    assert!(MatrixDoc::parse(&run_report).unwrap_err().contains("not a matrix report"));
}

#[test]
fn matrix_json_snapshot() {
    insta::assert_snapshot!("matrix_json", MatrixDoc::of(&sample_matrix().redacted()).to_json());
}

#[test]
fn matrix_markdown_snapshot() {
    let md = markdown::render(&MatrixDoc::of(&sample_matrix()));
    // Nothing volatile: the README's table only changes when a verdict does.
    for volatile in ["2026-11-26", "12000", "6543", "sh fake.sh"] {
        assert!(!md.contains(volatile), "{volatile} in\n{md}");
    }
    insta::assert_snapshot!("matrix_markdown", md);
}

#[test]
fn matrix_markdown_with_every_scenario_ok() {
    let mut run = sample_matrix();
    run.implementations.retain(|i| i.client.name == "fake-0.0.2");
    let md = markdown::render(&MatrixDoc::of(&run));
    assert!(md.contains("| conformance | **6/7** |"), "{md}");
    assert!(md.contains("`typing.started-then-ended` | NOT-RUN"), "{md}");
    assert!(!md.contains("connection.drop-reconnects"), "OK-everywhere rows are left out:\n{md}");
    run.implementations[0].outcome.as_mut().unwrap().summary.not_run.clear();
    let md = markdown::render(&MatrixDoc::of(&run));
    assert!(
        md.ends_with("Every one of the 6 scenarios is OK for every implementation.\n"),
        "{md}"
    );
}

#[test]
fn badges_one_per_implementation() {
    let badges = badge::badges(&MatrixDoc::of(&sample_matrix()));
    let files: Vec<&str> = badges.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(files, ["fake-0.0.1.svg", "fake-0.0.2.svg", "broken.svg"]);
    assert!(badges[0].1.contains("<title>conformance: 3/7</title>") && badges[0].1.contains(badge::ORANGE));
    assert!(badges[1].1.contains("<title>conformance: 6/7</title>") && badges[1].1.contains(badge::YELLOW_GREEN));
    assert!(badges[2].1.contains("<title>conformance: could not run</title>") && badges[2].1.contains(badge::GREY));
    insta::assert_snapshot!("matrix_badge", &badges[1].1);
}

#[test]
fn matrix_html_is_a_grid_whose_cells_open_timelines() {
    let run = sample_matrix();
    let html = matrix::html::render(&run, &MatrixDoc::of(&run));
    assert!(html.starts_with("<!DOCTYPE html>"));
    for external in ["<script", "<link", "src=\"http", "url(http", "@import"] {
        assert!(!html.contains(external), "no external asset: found {external}");
    }
    assert!(html.contains("<table class=\"grid\">"));
    // A column per implementation, a row per scenario (and per area).
    assert_eq!(html.matches("<th class=\"imp\"").count(), 3);
    assert_eq!(html.matches("<tr><th class=\"sc\"").count(), 7);
    assert!(html.contains("<tr class=\"area\"><th colspan=\"4\">connection</th></tr>"));
    // Every played cell links to its own section holding the single-run report's block.
    let links: Vec<&str> = html
        .split("<td class=\"v ")
        .skip(1)
        .filter_map(|c| c.split("</td>").next().unwrap().split("href=\"#").nth(1))
        .map(|c| c.split('"').next().unwrap())
        .collect();
    assert_eq!(links.len(), 12, "6 played by each of two implementations");
    for id in &links {
        assert!(html.contains(&format!("<section class=\"cell\" id=\"{id}\">")), "{id}");
    }
    assert!(links.contains(&"c1-s-connection.drop-replays-missed-messages"));
    assert_eq!(html.matches("<section class=\"cell\"").count(), 12);
    assert_eq!(html.matches("<svg ").count(), 12, "a sequence diagram per played cell");
    assert!(html.contains(">client</text>") && html.contains(">harness</text>") && html.contains(">server</text>"));
    assert!(html.contains("section.cell:target{display:block}"));
    // Verdict colours, deviations, the implementation that could not run.
    assert!(html.contains("<td class=\"v failed\"><a href=\"#c0-s-connection.drop-replays-missed-messages\""));
    assert!(html.contains("<span class=\"dm\">dev</span>"));
    assert_eq!(html.matches("<td class=\"v notrun\"").count(), 7 + 2);
    assert!(html.contains("<h2>Could not run</h2>") && html.contains("exited with status 3"));
    assert!(html.contains("ERROR (exit 2)"));
    // Text is escaped.
    assert!(html.contains("session_closed &lt;dropped&gt; &amp; gone") && !html.contains("<dropped>"));
}

#[test]
fn matrix_exit_code_is_the_highest_of_its_implementations() {
    let mut run = sample_matrix();
    assert_eq!(run.exit_code(), exit::ERROR);
    run.implementations.pop();
    assert_eq!(run.exit_code(), exit::FAILED);
    run.implementations.remove(0);
    assert_eq!(run.exit_code(), exit::OK);
    run.implementations.clear();
    assert_eq!(run.exit_code(), exit::OK);
}

#[test]
fn readme_table_check_passes_fresh_and_fails_stale() {
    let doc = MatrixDoc::of(&sample_matrix());
    let readme_text = format!(
        "# Project\n\n## Compatibility\n\n{}\n(placeholder)\n{}\n\n## Next\ntext\n",
        readme::BEGIN,
        readme::END
    );
    // The placeholder is stale.
    assert!(matches!(
        readme::check(&readme_text, &doc, "README.md", "m.json"),
        Err(ReadmeError::Stale { .. })
    ));
    let fresh = readme::rewrite(&readme_text, &doc, "README.md").unwrap();
    assert!(fresh.starts_with("# Project\n\n## Compatibility\n\n<!-- compat:begin -->\n"));
    assert!(
        fresh.ends_with("<!-- compat:end -->\n\n## Next\ntext\n"),
        "only the marked part changes"
    );
    assert!(fresh.contains(&markdown::render(&doc)));
    assert_eq!(readme::check(&fresh, &doc, "README.md", "m.json"), Ok(()));
    assert_eq!(
        readme::rewrite(&fresh, &doc, "README.md").unwrap(),
        fresh,
        "rewriting is idempotent"
    );
    // A verdict changes: the committed table is stale, and the diff says which line.
    let mut changed = doc.clone();
    let row = changed.scenarios.iter_mut().find(|s| s.id == "media.upload-integrity").unwrap();
    row.results[1].verdict = "FAILED".into();
    let Err(ReadmeError::Stale { diff, .. }) = readme::check(&fresh, &changed, "README.md", "m.json") else {
        panic!("a changed verdict must make the table stale");
    };
    assert!(
        diff.contains("-| `media.upload-integrity` | UNIMPLEMENTED | OK | NOT-RUN |"),
        "{diff}"
    );
    assert!(
        diff.contains("+| `media.upload-integrity` | UNIMPLEMENTED | FAILED | NOT-RUN |"),
        "{diff}"
    );
    let message = readme::check(&fresh, &changed, "README.md", "m.json").unwrap_err().to_string();
    assert!(message.contains("rehearsal compat --matrix m.json --readme README.md"), "{message}");
    // A hand edit inside the markers is stale too; a README without markers is an error.
    let edited = fresh.replace("| OK | 1 | 6 | — |", "| OK | 1 | 7 | — |");
    assert_ne!(edited, fresh);
    assert!(readme::check(&edited, &doc, "README.md", "m.json").is_err());
    assert_eq!(
        readme::check("# no table\n", &doc, "README.md", "m.json"),
        Err(ReadmeError::NoMarkers("README.md".into()))
    );
}

/// Plays like the engine would, minus the judging: the driver started, and a verdict from the
/// implementation's `hello` version: release 2.x FAILS the `connection.drop-*` scenarios, and
/// every other scenario is OK.
#[derive(Clone)]
struct ByVersion;

impl Play for ByVersion {
    async fn play(&self, server: &MockServer, loaded: &Loaded, driver: &mut ProcessDriver) -> ScenarioOutcome {
        let s = &loaded.scenario;
        let tenant = server.control().create_tenant(Default::default()).expect("a tenant");
        let verdict = match driver.start(driver_env(server, &s.id, &tenant.credentials)).await {
            Ok(link) => match link.hello {
                Some(h) if h.version.starts_with("2.") && s.id.starts_with("connection.drop-") => Verdict::Failed,
                Some(_) => Verdict::Ok,
                None => Verdict::Unimplemented,
            },
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

#[derive(Default)]
struct Observer {
    started: Vec<(String, usize, usize)>,
    finished: Vec<(String, u8)>,
}

impl MatrixObserver for Observer {
    fn reporters(&mut self, client: &ClientSpec, index: usize, of: usize) -> Vec<Box<dyn Reporter>> {
        self.started.push((client.name.clone(), index, of));
        Vec::new()
    }
    fn finished(&mut self, run: &ImplementationRun) {
        self.finished.push((run.client.name.clone(), run.exit_code()));
    }
}

fn base_opts(globs: &[&str]) -> RunOptions {
    let mut o = RunOptions::new(String::new());
    o.selection = Selection {
        globs: globs.iter().map(|g| (*g).to_owned()).collect(),
        areas: vec![],
    };
    o.jobs = 2;
    o.hello_timeout = Duration::from_millis(800);
    o.shutdown_grace = Duration::from_millis(800);
    o
}

#[tokio::test]
async fn a_matrix_of_two_implementations_and_one_that_does_not_start() {
    let dir = tempfile::tempdir().unwrap();
    let deviations = dir.path().join("v2.toml");
    std::fs::write(
        &deviations,
        "[[deviation]]\nscenario = \"connection.drop-reconnects\"\nreason = \"release 2 does not reconnect\"\n",
    )
    .unwrap();
    let clients = ClientSpec::parse_all(&[
        format!("v3=FAKE_VERSION=3.0.1 {}", fake("ok")),
        format!("v2=FAKE_VERSION=2.0.0 {}", fake("ok")),
        "down=echo 'no adapter here' >&2; exit 3".to_owned(),
    ])
    .unwrap();
    let dev_path = deviations.clone();
    let mut observer = Observer::default();
    let run = matrix::run_matrix(
        &clients,
        &base_opts(&[
            "connection.drop-reconnects",
            "connection.drop-state-sequence",
            "typing.ended-by-message",
        ]),
        move |c: &ClientSpec| (c.name == "v2").then(|| dev_path.clone()),
        ByVersion,
        &mut observer,
        std::future::pending(),
    )
    .await
    .expect("the matrix runs");
    assert_eq!(
        observer.started,
        [("v3".to_owned(), 0, 3), ("v2".to_owned(), 1, 3), ("down".to_owned(), 2, 3)]
    );
    assert_eq!(
        observer.finished,
        [
            ("v3".to_owned(), exit::OK),
            ("v2".to_owned(), exit::FAILED),
            ("down".to_owned(), exit::ERROR)
        ]
    );
    assert_eq!(run.exit_code(), exit::ERROR);

    for (kind, path) in [
        (MatrixKind::Json, dir.path().join("out/matrix.json")),
        (MatrixKind::Markdown, dir.path().join("out/matrix.md")),
        (MatrixKind::Html, dir.path().join("out/matrix.html")),
        (MatrixKind::Badges, dir.path().join("out/badges")),
    ] {
        matrix::write(&run, kind, &path).unwrap();
    }
    let json = std::fs::read_to_string(dir.path().join("out/matrix.json")).unwrap();
    assert_valid_matrix(&json);
    let doc = MatrixDoc::parse(&json).unwrap();
    let versions: Vec<Option<String>> = doc
        .implementations
        .iter()
        .map(|i| i.client.as_ref().map(|c| c.version.clone()))
        .collect();
    assert_eq!(versions, [Some("3.0.1".to_owned()), Some("2.0.0".to_owned()), None]);
    assert_eq!(doc.implementations[1].deviations.as_deref(), Some(deviations.to_str().unwrap()));
    assert!(doc.implementations[2].error.as_deref().unwrap().contains("no adapter here"));
    let verdicts: Vec<(String, Vec<String>)> = doc
        .scenarios
        .iter()
        .map(|s| {
            (
                s.id.clone(),
                s.results
                    .iter()
                    .map(|c| format!("{}{}", c.verdict, if c.deviated { "~" } else { "" }))
                    .collect(),
            )
        })
        .collect();
    assert_eq!(
        verdicts,
        [
            (
                "connection.drop-reconnects".to_owned(),
                vec!["OK".to_owned(), "FAILED~".to_owned(), NOT_RUN.to_owned()]
            ),
            (
                "connection.drop-state-sequence".to_owned(),
                vec!["OK".to_owned(), "FAILED".to_owned(), NOT_RUN.to_owned()]
            ),
            (
                "typing.ended-by-message".to_owned(),
                vec!["OK".to_owned(), "OK".to_owned(), NOT_RUN.to_owned()]
            ),
        ]
    );

    let md = std::fs::read_to_string(dir.path().join("out/matrix.md")).unwrap();
    assert!(md.starts_with("|  | **v3** | **v2** | **down** |\n"), "{md}");
    assert!(md.contains("| client | fake 3.0.1 | fake 2.0.0 | could not run |"), "{md}");
    assert!(md.contains("| conformance | **3/3** | **1/3** | — |"), "{md}");
    assert!(md.contains("| `connection.drop-reconnects` | OK | deviated | NOT-RUN |"), "{md}");
    assert!(md.contains("| `typing.ended-by-message` | OK | OK | NOT-RUN |"), "{md}");

    let badge = |name: &str| std::fs::read_to_string(dir.path().join(format!("out/badges/{name}.svg"))).unwrap();
    assert!(badge("v3").contains("conformance: 3/3") && badge("v3").contains(badge::BRIGHT_GREEN));
    assert!(badge("v2").contains("conformance: 1/3") && badge("v2").contains(badge::RED));
    assert!(badge("down").contains("could not run"));
    let html = std::fs::read_to_string(dir.path().join("out/matrix.html")).unwrap();
    assert_eq!(html.matches("<section class=\"cell\"").count(), 6);
}

#[tokio::test]
async fn a_selection_that_matches_nothing_ends_the_matrix_at_once() {
    let clients = ClientSpec::parse_all(&[fake("ok"), fake("ok")]).unwrap();
    let mut observer = Observer::default();
    let err = matrix::run_matrix(
        &clients,
        &base_opts(&["typnig.*"]),
        |_: &ClientSpec| None::<PathBuf>,
        ByVersion,
        &mut observer,
        std::future::pending(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, RunError::Select(_)), "{err}");
    assert_eq!(observer.started.len(), 1, "the second client is not started");
}
