//! The server under test: a `rehearsal serve` child process (the same binary) on a free
//! loopback port, or a server given by URL. A child is measured from outside, as an operator
//! would: CPU seconds and RSS from `/proc/<pid>/stat` and `/proc/<pid>/status`.
use std::collections::VecDeque;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Lines of the child's output kept for error messages.
const TAIL_LINES: usize = 40;
/// How long the child may take to print its banner and answer.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Linux reports CPU time in clock ticks of `USER_HZ`, which is 100 on every mainstream
/// configuration (it is part of the kernel ABI, independent of `CONFIG_HZ`).
const CLOCK_TICKS_PER_SEC: f64 = 100.0;

/// CPU time and resident memory of a process at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    pub cpu_seconds: f64,
    pub rss_bytes: u64,
}

/// Reads `/proc/<pid>/stat` (utime + stime) and `/proc/<pid>/status` (`VmRSS`).
pub fn usage(pid: u32) -> Option<Usage> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces; fields are counted after its `)`.
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After `)`: state is field 3, so utime (14) and stime (15) are at 11 and 12.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())?;
    Some(Usage {
        cpu_seconds: ticks as f64 / CLOCK_TICKS_PER_SEC,
        rss_bytes: rss_kb * 1024,
    })
}

/// The server a benchmark talks to.
pub struct Server {
    pub url: String,
    pub control_token: Option<String>,
    /// The child, when the benchmark started one.
    child: Option<Child>,
    pub pid: Option<u32>,
    /// From spawning the child to its first answered HTTP request, in milliseconds.
    pub start_ms: Option<f64>,
    tail: Arc<Mutex<VecDeque<String>>>,
}

impl Server {
    /// `--server` if given (with its control token), else a new child process.
    pub async fn get(target: &super::Target) -> anyhow::Result<Server> {
        match &target.server {
            Some(url) => Ok(Server {
                url: url.trim_end_matches('/').to_owned(),
                control_token: target.control_token.clone(),
                child: None,
                pid: None,
                start_ms: None,
                tail: Arc::default(),
            }),
            None => Server::spawn(target.serve_binary.clone()).await,
        }
    }

    /// Starts `rehearsal serve --listen 127.0.0.1:0` with a fresh control token, waits for the
    /// banner's `listening on http://…` and for the first answered request.
    async fn spawn(binary: Option<std::path::PathBuf>) -> anyhow::Result<Server> {
        let exe = match binary {
            Some(b) => b,
            None => std::env::current_exe().context("locating the rehearsal binary")?,
        };
        let token = format!("bench-{:016x}", rand::random::<u64>());
        let args = ["serve", "--listen", "127.0.0.1:0", "--control-token", &token].map(str::to_owned);
        Server::spawn_process(exe, &args, Some(token)).await
    }

    /// Starts the minimal server of `--floor` (`rehearsal bench floor-server`, this binary) as a
    /// child, measured like the Rehearsal child.
    pub async fn spawn_floor(list_push_bytes: usize, document_push_bytes: usize) -> anyhow::Result<Server> {
        let exe = std::env::current_exe().context("locating the rehearsal binary")?;
        let args = [
            "bench".to_owned(),
            "floor-server".to_owned(),
            "--list-push-bytes".to_owned(),
            list_push_bytes.to_string(),
            "--document-push-bytes".to_owned(),
            document_push_bytes.to_string(),
        ];
        Server::spawn_process(exe, &args, None).await
    }

    /// Starts `exe ARGS`, waits for its `listening on http://…` line and its first answered
    /// request.
    async fn spawn_process(exe: std::path::PathBuf, args: &[String], token: Option<String>) -> anyhow::Result<Server> {
        let started = Instant::now();
        let mut child = Command::new(exe)
            .args(args)
            .env("REHEARSAL_LOG", std::env::var("REHEARSAL_LOG").unwrap_or_else(|_| "warn".into()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {args:?}"))?;
        let pid = child.id();
        let tail: Arc<Mutex<VecDeque<String>>> = Arc::default();
        let (url_tx, mut url_rx) = tokio::sync::mpsc::channel::<String>(1);
        if let Some(out) = child.stdout.take() {
            tokio::spawn(drain(BufReader::new(out), tail.clone(), Some(url_tx)));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(drain(BufReader::new(err), tail.clone(), None));
        }
        let url = match tokio::time::timeout(START_TIMEOUT, url_rx.recv()).await {
            Ok(Some(url)) => url,
            _ => bail!("{args:?} printed no `listening on` line:\n{}", tail_text(&tail)),
        };
        // The first request that gets an answer: how soon the server is usable after start.
        let http = reqwest::Client::builder().no_proxy().build()?;
        let deadline = started + START_TIMEOUT;
        loop {
            match http.get(format!("{url}/v1/Services")).send().await {
                Ok(_) => break,
                Err(e) if Instant::now() > deadline => bail!("the server does not answer: {e}\n{}", tail_text(&tail)),
                Err(_) => tokio::task::yield_now().await,
            }
        }
        let start_ms = started.elapsed().as_secs_f64() * 1000.0;
        Ok(Server {
            url,
            control_token: token,
            child: Some(child),
            pid,
            start_ms: Some(start_ms),
            tail,
        })
    }

    /// CPU and memory of the child (none for a server given by URL).
    pub fn usage(&self) -> Option<Usage> {
        self.pid.and_then(usage)
    }

    /// The last lines the child printed.
    pub fn output_tail(&self) -> String {
        tail_text(&self.tail)
    }

    /// Stops the child (SIGKILL: nothing of its state is wanted) and reaps it.
    pub async fn stop(mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.start_kill();
            let _ = tokio::time::timeout(Duration::from_secs(5), c.wait()).await;
        }
    }

    /// The twilsock URL.
    pub fn twilsock_url(&self) -> String {
        format!("{}/v3/wsconnect", self.url.replacen("http://", "ws://", 1))
    }
}

fn tail_text(tail: &Mutex<VecDeque<String>>) -> String {
    let t = tail.lock().unwrap_or_else(|e| e.into_inner());
    t.iter().map(String::as_str).collect::<Vec<_>>().join("\n")
}

/// Reads a pipe of the child to its end (so it never blocks on a full pipe), keeping the last
/// lines; on stdout, reports the banner's URL.
async fn drain(
    mut r: BufReader<impl tokio::io::AsyncRead + Unpin>,
    tail: Arc<Mutex<VecDeque<String>>>,
    mut url_tx: Option<tokio::sync::mpsc::Sender<String>>,
) {
    let mut line = String::new();
    loop {
        line.clear();
        match r.read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let l = line.trim_end().to_owned();
        if let Some(tx) = &url_tx
            && let Some(url) = l.split("listening on ").nth(1)
        {
            let _ = tx.try_send(url.trim().to_owned());
            url_tx = None;
        }
        let mut t = tail.lock().unwrap_or_else(|e| e.into_inner());
        if t.len() == TAIL_LINES {
            t.pop_front();
        }
        t.push_back(l);
    }
}

/// Twilio's REST API with the default seed's credentials, plus the control plane.
#[derive(Clone)]
pub struct Rest {
    http: reqwest::Client,
    pub base: String,
    account: String,
    auth_token: String,
    control_token: Option<String>,
}

/// Every REST call gives up after this long (generating a deep history takes the longest).
const REST_TIMEOUT: Duration = Duration::from_secs(300);

impl Rest {
    pub fn new(server: &Server, account: &str, auth_token: &str) -> anyhow::Result<Rest> {
        Ok(Rest {
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(REST_TIMEOUT)
                .pool_max_idle_per_host(256)
                .build()?,
            base: server.url.clone(),
            account: account.to_owned(),
            auth_token: auth_token.to_owned(),
            control_token: server.control_token.clone(),
        })
    }

    fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        }
    }

    async fn answer(res: reqwest::Response, what: &str) -> anyhow::Result<Value> {
        let status = res.status();
        let body: Value = res.json().await.with_context(|| format!("{what}: body"))?;
        if !status.is_success() {
            bail!("{what}: HTTP {status}: {body}");
        }
        Ok(body)
    }

    /// A GET whose body is returned unparsed (the caller times the parse it needs).
    pub async fn get_bytes(&self, path: &str) -> anyhow::Result<Vec<u8>> {
        let res = self
            .http
            .get(self.url(path))
            .basic_auth(&self.account, Some(&self.auth_token))
            .send()
            .await
            .with_context(|| format!("GET {path}"))?;
        let status = res.status();
        let body = res.bytes().await.with_context(|| format!("GET {path}: body"))?;
        if !status.is_success() {
            bail!("GET {path}: HTTP {status}: {}", String::from_utf8_lossy(&body));
        }
        Ok(body.to_vec())
    }

    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> anyhow::Result<Value> {
        let res = self
            .http
            .post(self.url(path))
            .basic_auth(&self.account, Some(&self.auth_token))
            .form(form)
            .send()
            .await
            .with_context(|| format!("POST {path}"))?;
        Rest::answer(res, &format!("POST {path}")).await
    }

    /// A control-plane call (`/_rehearsal/v1/…`) with the server's control token.
    pub async fn control(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let mut req = self
            .http
            .post(format!("{}/_rehearsal/v1{path}", self.base))
            .header("Content-Type", "application/json")
            .body(body.to_string());
        if let Some(t) = &self.control_token {
            req = req.bearer_auth(t);
        }
        let res = req.send().await.with_context(|| format!("control {path}"))?;
        Rest::answer(res, &format!("control {path}")).await
    }

    /// A new conversation with a unique name; returns its SID.
    pub async fn create_conversation(&self, prefix: &str) -> anyhow::Result<String> {
        let name = format!("{prefix}-{:012x}", rand::random::<u64>() >> 16);
        let c = self
            .post("/v1/Conversations", &[("UniqueName", &name), ("FriendlyName", &name)])
            .await?;
        c["sid"].as_str().map(str::to_owned).context("conversation without sid")
    }

    /// Adds `identities` as participants (the users are created with them), a few at a time.
    pub async fn add_participants(&self, conversation: &str, identities: &[String]) -> anyhow::Result<()> {
        use futures_util::StreamExt;
        let path = format!("/v1/Conversations/{conversation}/Participants");
        let results: Vec<anyhow::Result<Value>> = futures_util::stream::iter(identities)
            .map(|id| {
                let path = path.clone();
                async move { self.post(&path, &[("Identity", id)]).await }
            })
            .buffer_unordered(16)
            .collect()
            .await;
        results.into_iter().try_for_each(|r| r.map(drop))
    }
}
