//! What the CLI's integration test files share: starting `rehearsal serve` on a free loopback
//! port, reading the URL from its banner, its log and memory, the control plane's common calls,
//! and raw HTTP on a socket. Each test file adds the calls only it needs with an `impl Served`
//! block of its own.
#![allow(dead_code)] // each test file is its own crate and uses part of this

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub const BIN: &str = env!("CARGO_BIN_EXE_rehearsal");
/// The control token every server started by [`Served::start`] has.
pub const CONTROL_TOKEN: &str = "hostile-control-token";

/// The URL a `rehearsal serve` child (spawned with `stdout(Stdio::piped())`) prints in its
/// "listening on URL" line, waiting at most 20 s. Its stdout keeps being drained by a thread so
/// the server never blocks on a full pipe.
pub fn listening_url(child: &mut Child) -> String {
    let stdout = child.stdout.take().expect("serve's stdout is piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("listening on ").nth(1) {
                let _ = tx.send(rest.trim().to_owned());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(20)).expect("serve printed its listening line")
}

/// `rehearsal serve` on a free loopback port with [`CONTROL_TOKEN`], logging at `info` into a
/// file of its own; killed on drop.
pub struct Served {
    pub child: Child,
    /// `http://127.0.0.1:PORT`
    pub url: String,
    /// `127.0.0.1:PORT`
    pub addr: String,
    stderr: PathBuf,
    _dir: tempfile::TempDir,
}

impl Served {
    pub fn start(args: &[&str]) -> Served {
        let dir = tempfile::tempdir().unwrap();
        let stderr = dir.path().join("stderr.log");
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--control-token", CONTROL_TOKEN])
            .args(args)
            .env("REHEARSAL_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let url = listening_url(&mut child);
        let addr = url.trim_start_matches("http://").to_owned();
        Served {
            child,
            url,
            addr,
            stderr,
            _dir: dir,
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.rsplit(':').next().unwrap().parse().unwrap()
    }

    pub fn control(&self, path: &str) -> String {
        format!("{}/_rehearsal/v1{path}", self.url)
    }

    /// What the server has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Waits (at most `within`) until the server's log has a line containing every one of
    /// `parts`, and returns it.
    pub fn wait_log_line(&self, parts: &[&str], within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let log = self.log();
            if let Some(line) = log.lines().find(|l| parts.iter().all(|p| l.contains(p))) {
                return line.to_owned();
            }
            assert!(Instant::now() < deadline, "no log line with {parts:?}:\n{log}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's resident set size in bytes, from /proc.
    pub fn rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/PID/status");
        kib * 1024
    }

    /// A fresh tenant, by the control plane: its credentials and `token_key`.
    pub async fn tenant(&self) -> Value {
        let res = control_http()
            .post(self.control("/tenants"))
            .bearer_auth(CONTROL_TOKEN)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
        res.json().await.unwrap()
    }

    /// A control-plane POST with the token: the status and the JSON body (`null` if none).
    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let res = control_http()
            .post(self.control(path))
            .bearer_auth(CONTROL_TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path} got no answer: {e}"));
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The account SID of a tenant as [`Served::tenant`] returns it.
pub fn sid(tenant: &Value) -> &str {
    tenant["account_sid"].as_str().expect("a tenant's account_sid")
}

fn control_http() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap()
}

/// One HTTP/1.1 keep-alive GET on a raw connection, waiting at most `within` for each read;
/// the status code (the body is read, so the connection can carry the next request).
pub fn raw_get(stream: &mut TcpStream, path: &str, within: Duration) -> u16 {
    stream.set_read_timeout(Some(within)).unwrap();
    // One write: pieces would wait on Nagle and delayed ACKs (40 ms a request).
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(stream.read(&mut byte).expect("an answer"), 1, "the connection closed mid-answer");
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap())
        })
        .expect("a content-length");
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).unwrap();
    head.split(' ').nth(1).unwrap().parse().unwrap()
}

/// Runs `rehearsal ARGS --json` to the end and returns its parsed report; a run that takes
/// longer than `within` is a hang: it is killed (a bench's server child goes with it, the bench
/// kills it on exit) and the test fails. A non-zero exit fails the test with both outputs.
pub fn run_json(args: &[&str], within: Duration) -> Value {
    let child = Command::new(BIN)
        .args(args)
        .arg("--json")
        .env("REHEARSAL_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("rehearsal starts");
    // Waited for on a thread, so that the wait has a deadline.
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let std::process::Output { status, stdout, stderr } = match rx.recv_timeout(within) {
        Ok(out) => out.expect("output of rehearsal"),
        Err(_) => {
            if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
            panic!("rehearsal {args:?} did not finish within {within:?}");
        }
    };
    let stdout = String::from_utf8_lossy(&stdout);
    let stderr = String::from_utf8_lossy(&stderr);
    assert!(status.success(), "rehearsal {args:?} failed ({status}):\n{stdout}\n{stderr}");
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}\n{stderr}"))
}
