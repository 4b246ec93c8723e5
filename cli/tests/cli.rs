//! The `rehearsal` binary as users run it: tokens, env, and `serve` with its state file.
mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rehearsal_test_support::jwt_payload;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_rehearsal");
const ACCOUNT: &str = "AC72656865617273616c00000000000001";
const AUTH_TOKEN: &str = "rehearsal-auth-token";

#[test]
fn token_prints_an_access_token_for_the_default_seed() {
    let out = Command::new(BIN)
        .args(["token", "--identity", "bob", "--ttl", "60"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let payload = jwt_payload(&String::from_utf8(out.stdout).unwrap());
    assert_eq!(payload["grants"]["identity"], "bob");
    assert_eq!(payload["sub"], ACCOUNT);
    assert_eq!(payload["grants"]["chat"]["service_sid"], "IS72656865617273616c00000000000001");
    assert_eq!(payload["exp"].as_i64().unwrap() - payload["iat"].as_i64().unwrap(), 60);
}

#[test]
fn env_prints_exports_and_json() {
    let out = Command::new(BIN)
        .args(["env", "--json", "--listen", "127.0.0.1:9999"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["TWILIO_ACCOUNT_SID"], ACCOUNT);
    assert_eq!(v["TWILIO_AUTH_TOKEN"], AUTH_TOKEN);
    assert_eq!(v["REHEARSAL_URL"], "http://127.0.0.1:9999");
    assert_eq!(v["REHEARSAL_TWILSOCK_URL"], "ws://127.0.0.1:9999/v3/wsconnect");
    let out = Command::new(BIN).args(["env"]).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.lines().any(|l| l == format!("export TWILIO_ACCOUNT_SID='{ACCOUNT}'")),
        "{text}"
    );
}

#[test]
fn bad_usage_exits_2_and_a_bad_seed_exits_1() {
    let out = Command::new(BIN).args(["serve", "--no-such-flag"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("seed.json");
    std::fs::write(&seed, r#"{"format": 1, "accounts": [{"nope": true}]}"#).unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--seed"])
        .arg(&seed)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("seed.json") && err.contains("nope"), "{err}");
}

struct Served {
    child: Child,
    url: String,
}

impl Served {
    fn start(args: &[&str], state: Option<&Path>) -> Served {
        let mut cmd = Command::new(BIN);
        cmd.args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(s) = state {
            cmd.arg("--state").arg(s);
        }
        let mut child = cmd.spawn().unwrap();
        let url = support::listening_url(&mut child);
        Served { child, url }
    }

    /// SIGTERM, then wait for a clean exit.
    fn stop(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "serve did not exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap()
}

#[tokio::test]
async fn state_file_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let first = Served::start(&[], Some(&state));
    let res = client()
        .post(format!("{}/v1/Conversations", first.url))
        .basic_auth(ACCOUNT, Some(AUTH_TOKEN))
        .form(&[("UniqueName", "kept"), ("FriendlyName", "Kept across restarts")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.unwrap();
    assert!(first.stop().success());
    let text = std::fs::read_to_string(&state).expect("state written at exit");
    assert!(text.contains("Kept across restarts"));
    assert!(
        !dir.path().join(".state.json.tmp").exists(),
        "the temporary file was renamed into place"
    );

    let second = Served::start(&[], Some(&state));
    let res = client()
        .get(format!("{}/v1/Conversations/kept", second.url))
        .basic_auth(ACCOUNT, Some(AUTH_TOKEN))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let fetched: Value = res.json().await.unwrap();
    assert_eq!(fetched["sid"], created["sid"]);
    assert!(second.stop().success());
}

#[tokio::test]
async fn no_seed_starts_empty_and_the_token_endpoint_can_be_switched_off() {
    let s = Served::start(&["--no-seed", "--no-token-endpoint"], None);
    let res = client()
        .get(format!("{}/v1/Conversations", s.url))
        .basic_auth(ACCOUNT, Some(AUTH_TOKEN))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let res = client().get(format!("{}/token?identity=alice", s.url)).send().await.unwrap();
    assert_eq!(res.status(), 404);
    assert!(s.stop().success());
}

#[tokio::test]
async fn the_development_token_endpoint_answers_browsers() {
    let s = Served::start(&[], None);
    let res = client()
        .get(format!("{}/token?identity=alice&ttl=120", s.url))
        .header("Origin", "http://localhost:3000")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers().get("access-control-allow-origin").map(|v| v.to_str().unwrap()),
        Some("*")
    );
    let body: Value = res.json().await.unwrap();
    assert_eq!(jwt_payload(body["token"].as_str().unwrap())["grants"]["identity"], "alice");
    let pre = client()
        .request(reqwest::Method::OPTIONS, format!("{}/token?identity=alice", s.url))
        .header("Origin", "http://localhost:3000")
        .header("Access-Control-Request-Method", "GET")
        .send()
        .await
        .unwrap();
    assert!(pre.status().is_success(), "{}", pre.status());
    assert!(s.stop().success());
}

#[test]
fn scenarios_list_show_and_validate() {
    let out = Command::new(BIN).args(["scenarios", "list"]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), rehearsal_scenarios_count());
    assert!(
        text.lines()
            .any(|l| l.starts_with("connection.drop-reconnects ") && l.contains("[observed]")),
        "{text}"
    );

    let out = Command::new(BIN)
        .args(["scenarios", "show", "token.update-keeps-session"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("checks: ") && text.contains("expectations:") && text.contains("id = \"token.update-keeps-session\""),
        "{text}"
    );
    let out = Command::new(BIN).args(["scenarios", "show", "token.nope"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));

    let out = Command::new(BIN).args(["scenarios", "validate"]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "id = \"typing.x\"\ntitle = \"t\"\narea = \"typing\"\nchecks = \"c\"\nreference = \"r\"\nrationale = \"r\"\nrequires = []\nclients = [{ name = \"alice\" }]\n[[steps]]\nserver = \"dorp\"\ntarget = \"alice\"\n").unwrap();
    let out = Command::new(BIN).args(["scenarios", "validate"]).arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.starts_with(&format!("{}:10:10: ", bad.display())), "{err}");
    assert!(err.contains("^"), "a caret under the column: {err}");
}

fn rehearsal_scenarios_count() -> usize {
    std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/library"))
        .unwrap()
        .flat_map(|area| std::fs::read_dir(area.unwrap().path()).unwrap())
        .filter(|f| f.as_ref().unwrap().path().extension().is_some_and(|e| e == "toml"))
        .count()
}

#[test]
fn run_exits_2_when_it_cannot_run() {
    // A glob that matches nothing.
    let out = Command::new(BIN)
        .args(["run", "--client", "true", "--scenario", "typnig.*"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no scenario matches `typnig.*`"));
    // A client that exits without answering hello.
    let out = Command::new(BIN)
        .args([
            "run",
            "--client",
            "echo 'no such adapter' >&2; exit 3",
            "--scenario",
            "typing.*",
            "--no-progress",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("does not start") && err.contains("no such adapter"), "{err}");
    // Usage errors.
    let out = Command::new(BIN).args(["run", "--client", "x", "--area", "nope"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(BIN)
        .args(["run", "--client", "x", "--report", "pdf=x.pdf"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let help = Command::new(BIN).args(["run", "--help"]).output().unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    assert!(help.contains("Exit codes:") && help.contains("1  some scenario FAILED"), "{help}");
}

/// A supervisor may stop serve the moment it prints its URL. The signal handlers are in place
/// before the banner, so that SIGTERM is a clean shutdown that exports `--state`, never the
/// default action (death by signal, nothing exported). With `--scenario` serve has work to do
/// between the banner and serving, which is where a late handler lost the signal.
#[test]
fn sigterm_right_after_the_banner_is_a_clean_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..12 {
        // `--scenario` and `--state` exclude each other: alternate.
        if round % 2 == 0 {
            let status = Served::start(&["--scenario", "pagination.conversation-list-pages"], None).stop();
            assert!(
                status.success(),
                "round {round}: serve ended with {status} on SIGTERM after its banner"
            );
        } else {
            let state = dir.path().join(format!("state-{round}.json"));
            let status = Served::start(&[], Some(&state)).stop();
            assert!(
                status.success(),
                "round {round}: serve ended with {status} on SIGTERM after its banner"
            );
            assert!(state.exists(), "round {round}: --state was not written");
        }
    }
}

#[tokio::test]
async fn serve_scenario_starts_from_the_scenarios_seed_under_the_default_credentials() {
    // The scenario's generated history (9,880 messages on top of the seed's 120).
    let s = Served::start(&["--scenario", "pagination.deep-history-backwards"], None);
    let res = client()
        .get(format!("{}/v1/Conversations/history/Messages?PageSize=1&Order=desc", s.url))
        .basic_auth(ACCOUNT, Some(AUTH_TOKEN))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let page: Value = res.json().await.unwrap();
    assert_eq!(page["messages"][0]["index"], 9999, "{page:#}");
    assert!(s.stop().success());

    // A scenario with a seed of its own: its content, the default account's credentials.
    let s = Served::start(&["--scenario", "pagination.conversation-list-pages"], None);
    let res = client()
        .get(format!("{}/v1/Conversations?PageSize=50", s.url))
        .basic_auth(ACCOUNT, Some(AUTH_TOKEN))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let page: Value = res.json().await.unwrap();
    assert_eq!(page["conversations"].as_array().unwrap().len(), 50, "{page:#}");
    assert!(page["meta"]["next_page_url"].is_string(), "{page:#}");
    assert!(s.stop().success());

    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--scenario", "no.such-scenario"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no scenario `no.such-scenario`"), "{err}");
}

#[tokio::test]
async fn the_webhook_timeout_is_a_serve_option() {
    // A backend that accepts connections and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hook = format!("http://{}/pre", silent.local_addr().unwrap());
    let s = Served::start(&["--webhook-timeout-ms", "300"], None);
    let res = client()
        .post(format!("{}/v1/Configuration/Webhooks", s.url))
        .basic_auth(ACCOUNT, Some(AUTH_TOKEN))
        .form(&[("PreWebhookUrl", hook.as_str()), ("Method", "POST"), ("Filters", "onMessageAdd")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let started = Instant::now();
    let res = client()
        .post(format!("{}/v1/Conversations/general/Messages", s.url))
        .basic_auth(ACCOUNT, Some(AUTH_TOKEN))
        .header("X-Twilio-Webhook-Enabled", "true")
        .form(&[("Author", "alice"), ("Body", "through a silent backend")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "no answer in time: the action proceeds");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_millis(4000),
        "the hook was given the configured 300 ms, not the default 5 s: {took:?}"
    );
    assert!(s.stop().success());
    drop(silent);
}

fn fake_adapter() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../harness/tests/it/adapters/fake.sh");
    format!("sh '{}' ok", path.display())
}

#[test]
fn run_with_several_clients_writes_one_matrix_and_a_report_per_client() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().display().to_string();
    // With several clients, a run report must say where each client's goes.
    let refused = Command::new(BIN)
        .args(["run", "--client", "a=x", "--client", "b=y", "--report", "json=r.json"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("{client}"));
    let run = Command::new(BIN)
        .args([
            "run",
            "--client",
            &format!("old=FAKE_VERSION=2.0.0 {}", fake_adapter()),
            "--client",
            &format!("new=FAKE_VERSION=3.0.1 {}", fake_adapter()),
            "--scenario",
            "typing.ended-by-message",
            "--no-progress",
            "--report",
            &format!("json={out}/{{client}}.json"),
            "--report",
            &format!("matrix-json={out}/matrix.json"),
            "--report",
            &format!("matrix-md={out}/matrix.md"),
            "--report",
            &format!("badges={out}/badges"),
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    // The fake answers `connect` but opens no session: the scenario FAILS for both (exit 1,
    // the highest of the clients').
    assert_eq!(run.status.code(), Some(1), "{stdout}\n{}", String::from_utf8_lossy(&run.stderr));
    assert!(stdout.contains("=== old (1/2):") && stdout.contains("=== new (2/2):"), "{stdout}");
    assert!(stdout.contains("| client | fake 2.0.0 | fake 3.0.1 |"), "{stdout}");
    for name in ["old", "new"] {
        let report: Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join(format!("{name}.json"))).unwrap()).unwrap();
        assert_eq!(report["format"], "rehearsal-run-report");
        assert!(dir.path().join(format!("badges/{name}.svg")).is_file());
    }
    let matrix: Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join("matrix.json")).unwrap()).unwrap();
    assert_eq!(matrix["format"], "rehearsal-matrix-report");
    assert_eq!(matrix["implementations"][1]["client"]["version"], "3.0.1");
    assert_eq!(matrix["exit_code"], 1);
    assert_eq!(matrix["scenarios"][0]["results"][0]["verdict"], "FAILED");
    assert!(
        std::fs::read_to_string(dir.path().join("matrix.md"))
            .unwrap()
            .contains("| FAILED | 1 | 1 |")
    );

    // The README table, from that matrix: written, then checked fresh (0) and stale (1).
    let readme = dir.path().join("README.md");
    std::fs::write(
        &readme,
        "# x\n\n## Compatibility\n\n<!-- compat:begin -->\nold table\n<!-- compat:end -->\n",
    )
    .unwrap();
    let compat = |check: bool| {
        let mut c = Command::new(BIN);
        c.args([
            "compat",
            "--matrix",
            &format!("{out}/matrix.json"),
            "--readme",
            readme.to_str().unwrap(),
        ]);
        if check {
            c.arg("--check");
        }
        c.output().unwrap()
    };
    let stale = compat(true);
    assert_eq!(stale.status.code(), Some(1));
    let diff = String::from_utf8_lossy(&stale.stderr);
    assert!(
        diff.contains("is stale") && diff.contains("-old table") && diff.contains("+| client | fake 2.0.0 | fake 3.0.1 |"),
        "{diff}"
    );
    assert_eq!(compat(false).status.code(), Some(0));
    assert!(
        std::fs::read_to_string(&readme)
            .unwrap()
            .contains("| conformance | **0/1** | **0/1** |")
    );
    let fresh = compat(true);
    assert_eq!(fresh.status.code(), Some(0), "{}", String::from_utf8_lossy(&fresh.stderr));
    // No markers, or not a matrix: cannot check (2).
    std::fs::write(&readme, "# x\n").unwrap();
    assert_eq!(compat(true).status.code(), Some(2));
}
