//! [`ProcessDriver`]: the client side of a scenario as a child process speaking the driver
//! protocol (`harness/PROTOCOL.md`) as JSON lines on its stdin and stdout.
//!
//! The command runs as `sh -c COMMAND` in a process group of its own, so that stopping it ends
//! the whole tree (a Node adapter, the browser it started, a `sleep` in a shell script). Every
//! queue between the process and the engine is bounded and every wait has a timeout:
//!
//! - commands: the engine's bounded `commands` channel → one writer task numbering them and
//!   writing lines to stdin (a write that blocks longer than [`STDIN_TIMEOUT`] fails it);
//! - answers: routed by id to the `oneshot` the command came with;
//! - events: into the bounded `events` channel. A slow engine gets backpressure (the adapter's
//!   stdout pipe fills and it blocks) for up to [`EVENT_BACKPRESSURE`] per event; past that the
//!   event is dropped *and recorded* as a protocol error in the log, never silently;
//! - stderr: the last [`STDERR_LIMIT`] bytes are kept (the dropped prefix is counted).
use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rehearsal_scenarios::engine::{Answer, ClientDriver, ClientEvent, Command, DriverEnv, DriverError, DriverLog, Hello, Link};
use serde_json::{Value, json};
use tokio::process::Child;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

mod pipes;
use pipes::{read_stderr, read_stdout, write_commands};

/// The driver protocol version this harness speaks.
pub const PROTOCOL_VERSION: u32 = 1;
/// How long a program has to answer `hello` before it is run in observed mode. Generous on
/// purpose: the reference adapter loads the SDK before it answers, and on a 2-core CI machine busy
/// with other test binaries that once took over 5 s, which turned a protocol-speaking client into
/// an observed one. A client known to speak no protocol skips the wait (`RunOptions::observed`).
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a program has to exit after `shutdown` (or SIGTERM in observed mode) before its
/// process group is killed.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Bytes of stderr kept (the newest).
pub const STDERR_LIMIT: usize = 64 * 1024;
/// Longest stdout line accepted; a longer one is a protocol error and is skipped.
pub const MAX_LINE: usize = 16 * 1024 * 1024;
/// How long one event may wait for room in the events channel.
pub const EVENT_BACKPRESSURE: Duration = Duration::from_secs(10);
/// How long one line may take to be written to the program's stdin.
pub const STDIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Capacity of the commands and events channels.
const COMMAND_QUEUE: usize = 64;
const EVENT_QUEUE: usize = 1024;
/// Protocol errors kept in the log (further ones are only counted).
const MAX_PROTOCOL_ERRORS: usize = 100;

/// Runs the client under test as a child process. One driver plays one scenario; it can be
/// started again after [`ClientDriver::stop`].
///
/// ```no_run
/// # async fn demo(env: rehearsal_scenarios::engine::DriverEnv) {
/// use rehearsal_scenarios::engine::ClientDriver;
/// let mut driver = rehearsal_harness::ProcessDriver::new("node adapters/twilio-conversations-js/adapter.mjs");
/// let link = driver.start(env).await.expect("the adapter starts");
/// println!("{:?}", link.hello.map(|h| h.name));
/// let log = driver.stop().await;
/// println!("{}", log.stderr);
/// # }
/// ```
pub struct ProcessDriver {
    command: String,
    hello_timeout: Duration,
    shutdown_grace: Duration,
    running: Option<Running>,
    hello: Option<Hello>,
    last_log: Option<DriverLog>,
    protocol_errors: Vec<String>,
}

struct Running {
    child: Child,
    /// The process group (the child's pid), killed as a whole at the end.
    pgid: Option<u32>,
    shared: Arc<Shared>,
    /// The driver's own way in (for `hello` and `shutdown`), next to the engine's clones.
    commands: mpsc::Sender<Command>,
    writer: JoinHandle<()>,
    reader: JoinHandle<()>,
    stderr: JoinHandle<()>,
}

/// What the I/O tasks share with the driver. Std mutexes: held for short, non-async sections.
#[derive(Default)]
struct Shared {
    pending: Mutex<HashMap<u64, oneshot::Sender<Answer>>>,
    errors: Mutex<ProtocolErrors>,
    stderr: Mutex<Tail>,
}

#[derive(Default)]
struct ProtocolErrors {
    kept: Vec<String>,
    more: usize,
}

impl Shared {
    fn protocol_error(&self, message: String) {
        tracing::debug!(%message, "driver protocol error");
        let mut e = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        if e.kept.len() < MAX_PROTOCOL_ERRORS {
            e.kept.push(message);
        } else {
            e.more += 1;
        }
    }

    fn protocol_errors(&self) -> Vec<String> {
        let e = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = e.kept.clone();
        if e.more > 0 {
            out.push(format!("… and {} more protocol errors", e.more));
        }
        out
    }

    fn take_pending(&self, id: u64) -> Option<oneshot::Sender<Answer>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).remove(&id)
    }

    /// Ends every pending command: its engine side sees the reply channel closed.
    fn drop_pending(&self) {
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

/// The newest `limit` bytes of a stream, and how many were dropped before them.
#[derive(Debug, Default)]
struct Tail {
    bytes: Vec<u8>,
    dropped: usize,
    /// The last byte dropped ended a line (the kept text starts with a whole line).
    clean_cut: bool,
}

impl Tail {
    fn push(&mut self, chunk: &[u8], limit: usize) {
        self.bytes.extend_from_slice(chunk);
        if self.bytes.len() > limit {
            let cut = self.bytes.len() - limit;
            self.clean_cut = self.bytes[cut - 1] == b'\n';
            self.bytes.drain(..cut);
            self.dropped += cut;
        }
    }

    fn text(&self) -> String {
        let body = String::from_utf8_lossy(&self.bytes);
        if self.dropped > 0 {
            // The cut may have split a line (or a character): start at the next line.
            let body = if self.clean_cut {
                &*body
            } else {
                body.split_once('\n').map_or(&*body, |(_, rest)| rest)
            };
            format!("[rehearsal: {} earlier bytes of stderr not kept]\n{body}", self.dropped)
        } else {
            body.into_owned()
        }
    }
}

impl ProcessDriver {
    /// A driver for `command`, run as `sh -c COMMAND` (so it may contain arguments, pipes and
    /// environment assignments).
    pub fn new(command: impl Into<String>) -> ProcessDriver {
        ProcessDriver {
            command: command.into(),
            hello_timeout: HELLO_TIMEOUT,
            shutdown_grace: SHUTDOWN_GRACE,
            running: None,
            hello: None,
            last_log: None,
            protocol_errors: Vec::new(),
        }
    }

    /// How long to wait for the answer to `hello` (default [`HELLO_TIMEOUT`]).
    #[must_use]
    pub fn hello_timeout(mut self, d: Duration) -> ProcessDriver {
        self.hello_timeout = d;
        self
    }

    /// How long the program may take to exit when stopped (default [`SHUTDOWN_GRACE`]).
    #[must_use]
    pub fn shutdown_grace(mut self, d: Duration) -> ProcessDriver {
        self.shutdown_grace = d;
        self
    }

    pub fn command(&self) -> &str {
        &self.command
    }

    /// The answer to `hello` of the last start (`None`: not started, or observed mode).
    pub fn hello(&self) -> Option<&Hello> {
        self.hello.as_ref()
    }

    /// Lines the program wrote that broke the protocol, so far (also appended to the log's
    /// stderr by `stop`).
    pub fn protocol_errors(&self) -> Vec<String> {
        match &self.running {
            Some(r) => r.shared.protocol_errors(),
            None => self.protocol_errors.clone(),
        }
    }

    /// The process id of the running program (the leader of its process group).
    pub fn pid(&self) -> Option<u32> {
        self.running.as_ref().and_then(|r| r.pgid)
    }

    async fn start_process(&mut self, env: DriverEnv) -> Result<Link, DriverError> {
        if self.running.is_some() {
            // A second start without a stop: end the first program cleanly first.
            self.stop_process().await;
        }
        self.hello = None;
        self.last_log = None;
        self.protocol_errors.clear();
        let observed = env.observed_identity.is_some();

        let mut cmd = tokio::process::Command::new("sh");
        cmd.arg("-c").arg(&self.command);
        for (k, v) in environment(&env) {
            cmd.env(k, v);
        }
        if !observed {
            cmd.env_remove("REHEARSAL_OBSERVED").env_remove("REHEARSAL_IDENTITY");
        }
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        #[cfg(unix)]
        cmd.process_group(0);
        let mut child = cmd
            .spawn()
            .map_err(|e| DriverError::Start(format!("cannot run `sh -c {}`: {e}", self.command)))?;
        let pgid = child.id();
        let stdin = child.stdin.take().expect("stdin is piped");
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");

        let shared = Arc::new(Shared::default());
        let (commands_tx, commands_rx) = mpsc::channel::<Command>(COMMAND_QUEUE);
        let (events_tx, events_rx) = mpsc::channel::<ClientEvent>(EVENT_QUEUE);
        let writer = tokio::spawn(write_commands(commands_rx, stdin, shared.clone()));
        let reader = tokio::spawn(read_stdout(stdout, events_tx, shared.clone(), observed));
        let stderr = tokio::spawn(read_stderr(stderr, shared.clone()));
        self.running = Some(Running {
            child,
            pgid,
            shared,
            commands: commands_tx.clone(),
            writer,
            reader,
            stderr,
        });

        if observed {
            // Observed mode: the program speaks no protocol (PROTOCOL.md); it connects as
            // REHEARSAL_IDENTITY by itself.
            return Ok(Link {
                hello: None,
                commands: commands_tx,
                events: events_rx,
            });
        }

        let (reply_tx, reply_rx) = oneshot::channel();
        let hello = Command {
            body: json!({"cmd": "hello", "protocol": PROTOCOL_VERSION, "scenario": env.scenario}),
            reply: reply_tx,
        };
        if commands_tx.send(hello).await.is_err() {
            let log = self.stop_process().await;
            return Err(DriverError::Start(exited_early(&log)));
        }
        match tokio::time::timeout(self.hello_timeout, reply_rx).await {
            // Not answered in time: observed mode, the program keeps running.
            Err(_elapsed) => {
                tracing::debug!(command = %self.command, "no answer to hello: observed mode");
                Ok(Link {
                    hello: None,
                    commands: commands_tx,
                    events: events_rx,
                })
            }
            // stdout closed before an answer: the program ended (or closed it).
            Ok(Err(_closed)) => {
                let log = self.stop_process().await;
                Err(DriverError::Start(exited_early(&log)))
            }
            Ok(Ok(answer)) => match parse_hello(answer) {
                Ok(hello) if hello.protocol > PROTOCOL_VERSION => {
                    let v = hello.protocol;
                    self.stop_process().await;
                    Err(DriverError::Protocol(v, PROTOCOL_VERSION))
                }
                Ok(hello) => {
                    self.hello = Some(hello.clone());
                    Ok(Link {
                        hello: Some(hello),
                        commands: commands_tx,
                        events: events_rx,
                    })
                }
                Err(why) => {
                    self.stop_process().await;
                    Err(DriverError::Start(why))
                }
            },
        }
    }

    async fn stop_process(&mut self) -> DriverLog {
        let Some(mut r) = self.running.take() else {
            return self.last_log.clone().unwrap_or_default();
        };
        let grace = self.shutdown_grace;
        let mut how = "";
        if r.child.try_wait().ok().flatten().is_none() {
            if self.hello.is_some() {
                // Driven: ask politely. The answer does not matter, the exit does.
                let (reply, _answer) = oneshot::channel();
                let shutdown = Command {
                    body: json!({"cmd": "shutdown"}),
                    reply,
                };
                let _ = tokio::time::timeout(Duration::from_secs(1), r.commands.send(shutdown)).await;
            } else {
                // Observed (or never said hello): SIGTERM is its clean shutdown.
                signal_group(r.pgid, Signal::Term);
            }
            if tokio::time::timeout(grace, r.child.wait()).await.is_err() {
                how = " (killed: it did not exit within the shutdown grace period)";
            }
        }
        // Whatever happened to the leader, end the rest of the tree.
        signal_group(r.pgid, Signal::Kill);
        let status = match tokio::time::timeout(Duration::from_secs(5), r.child.wait()).await {
            Ok(Ok(status)) => Some(status),
            _ => {
                let _ = r.child.start_kill();
                None
            }
        };
        r.writer.abort();
        // Readers end at EOF, which comes once every holder of the pipes is dead; a daemonised
        // grandchild in another group could keep them open, so the wait is bounded.
        for task in [&mut r.reader, &mut r.stderr] {
            if tokio::time::timeout(Duration::from_secs(2), &mut *task).await.is_err() {
                task.abort();
            }
        }
        r.shared.drop_pending();

        let errors = r.shared.protocol_errors();
        let mut stderr = r.shared.stderr.lock().unwrap_or_else(|e| e.into_inner()).text();
        for e in &errors {
            if !stderr.is_empty() && !stderr.ends_with('\n') {
                stderr.push('\n');
            }
            stderr.push_str(&format!("[rehearsal: protocol error: {e}]\n"));
        }
        let exit = Some(match status {
            Some(s) => format!("{}{how}", describe_status(s)),
            None => format!("did not end after SIGKILL{how}"),
        });
        self.protocol_errors = errors;
        let log = DriverLog { stderr, exit };
        self.last_log = Some(log.clone());
        log
    }
}

impl ClientDriver for ProcessDriver {
    fn start(&mut self, env: DriverEnv) -> impl Future<Output = Result<Link, DriverError>> + Send {
        self.start_process(env)
    }

    fn stop(&mut self) -> impl Future<Output = DriverLog> + Send {
        self.stop_process()
    }
}

impl Drop for ProcessDriver {
    /// A driver dropped without `stop` (a panic, an aborted task) still ends the whole tree.
    fn drop(&mut self) {
        if let Some(r) = &self.running {
            signal_group(r.pgid, Signal::Kill);
        }
    }
}

/// The adapter's environment (PROTOCOL.md, "Lifecycle").
pub fn environment(env: &DriverEnv) -> Vec<(&'static str, String)> {
    let mut vars = vec![
        ("REHEARSAL_URL", env.base_url.clone()),
        ("REHEARSAL_TWILSOCK_URL", env.twilsock_url.clone()),
        // As the engine gives it: in observed mode it already asks for the scenario's token
        // lifetime (or serves the scenario's literal first token).
        ("REHEARSAL_TOKEN_URL", env.token_url.clone()),
        ("TWILIO_ACCOUNT_SID", env.account_sid.clone()),
        ("TWILIO_AUTH_TOKEN", env.auth_token.clone()),
        ("TWILIO_API_KEY", env.api_key.clone()),
        ("TWILIO_API_SECRET", env.api_secret.clone()),
        ("TWILIO_CONVERSATIONS_SERVICE_SID", env.service_sid.clone()),
        ("REHEARSAL_SCENARIO", env.scenario.clone()),
    ];
    if let Some(identity) = &env.observed_identity {
        vars.push(("REHEARSAL_OBSERVED", "1".to_owned()));
        vars.push(("REHEARSAL_IDENTITY", identity.clone()));
        if let Some(ttl) = env.observed_token_ttl {
            vars.push(("REHEARSAL_TOKEN_TTL", ttl.as_secs().max(1).to_string()));
        }
    }
    vars
}

fn parse_hello(answer: Answer) -> Result<Hello, String> {
    let result = match answer {
        Answer::Ok(v) => v,
        Answer::Unsupported(m) => return Err(format!("the client answered `hello` with unsupported: {m}")),
        Answer::Failed(e) => return Err(format!("the client answered `hello` with an error: {e}")),
    };
    let protocol = result
        .get("protocol")
        .and_then(Value::as_u64)
        .ok_or_else(|| format!("the answer to `hello` has no protocol version: {result}"))?;
    let text = |k: &str| result.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
    Ok(Hello {
        name: text("name"),
        version: text("version"),
        protocol: u32::try_from(protocol).unwrap_or(u32::MAX),
        capabilities: result
            .get("capabilities")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            .unwrap_or_default(),
    })
}

fn exited_early(log: &DriverLog) -> String {
    let exit = log.exit.as_deref().unwrap_or("ended");
    let tail: Vec<&str> = log.stderr.lines().rev().take(10).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    if tail.is_empty() {
        format!("the client closed its stdout without answering `hello` ({exit})")
    } else {
        format!(
            "the client closed its stdout without answering `hello` ({exit}); its stderr ends with:\n{}",
            tail.join("\n")
        )
    }
}

fn describe_status(s: std::process::ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = s.signal() {
            return format!("killed by signal {sig}");
        }
    }
    match s.code() {
        Some(c) => format!("exited with status {c}"),
        None => "ended".to_owned(),
    }
}

#[derive(Clone, Copy)]
enum Signal {
    Term,
    Kill,
}

/// Signals every process of the group; a group that is already gone is fine.
fn signal_group(pgid: Option<u32>, signal: Signal) {
    #[cfg(unix)]
    {
        use rustix::process::{Pid, Signal as S, kill_process_group};
        let Some(pid) = pgid.and_then(|p| i32::try_from(p).ok()).and_then(Pid::from_raw) else {
            return;
        };
        let sig = match signal {
            Signal::Term => S::TERM,
            Signal::Kill => S::KILL,
        };
        let _ = kill_process_group(pid, sig);
    }
    #[cfg(not(unix))]
    let _ = (pgid, signal);
}

#[cfg(test)]
mod tests {
    use super::pipes::{Incoming, classify};
    use super::*;

    #[test]
    fn tail_keeps_the_newest_bytes() {
        let mut t = Tail::default();
        t.push(b"first line\nsecond", 12);
        t.push(b" line\n", 12);
        assert_eq!(t.dropped, 11);
        assert_eq!(t.text(), "[rehearsal: 11 earlier bytes of stderr not kept]\nsecond line\n");
        t.push(b"third", 12);
        assert_eq!(t.text(), "[rehearsal: 16 earlier bytes of stderr not kept]\nthird");
        let mut t = Tail::default();
        t.push(b"short\n", 100);
        assert_eq!(t.text(), "short\n");
    }

    #[test]
    fn answers_and_events_are_told_apart() {
        assert!(
            matches!(classify(json!({"id": 3, "ok": true, "result": {"index": 1}})), Incoming::Answer(3, Answer::Ok(v)) if v == json!({"index": 1}))
        );
        assert!(matches!(classify(json!({"id": 3, "ok": true})), Incoming::Answer(3, Answer::Ok(v)) if v == json!({})));
        assert!(matches!(
            classify(json!({"id": 4, "ok": false, "error": {"kind": "unsupported", "message": "no media"}})),
            Incoming::Answer(4, Answer::Unsupported(m)) if m == "no media"
        ));
        assert!(matches!(
            classify(json!({"id": 5, "ok": false, "error": {"kind": "failed", "message": "x", "code": 50350}})),
            Incoming::Answer(5, Answer::Failed(v)) if v == json!({"message": "x", "code": 50350})
        ));
        assert!(matches!(
            classify(json!({"event": "initialized", "client": "alice"})),
            Incoming::Event(_)
        ));
        assert!(matches!(classify(json!([1])), Incoming::Invalid(_)));
        assert!(matches!(classify(json!({"id": 1})), Incoming::Invalid(_)));
        assert!(matches!(classify(json!({"id": 1, "ok": false})), Incoming::Invalid(_)));
    }

    #[test]
    fn observed_environment_carries_identity_and_ttl() {
        let env = DriverEnv {
            scenario: "token.x".into(),
            base_url: "http://127.0.0.1:1".into(),
            twilsock_url: "ws://127.0.0.1:1/v3/wsconnect".into(),
            token_url: "http://127.0.0.1:1/token?account=AC1".into(),
            account_sid: "AC1".into(),
            auth_token: "t".into(),
            api_key: "SK1".into(),
            api_secret: "s".into(),
            service_sid: "IS1".into(),
            observed_identity: Some("alice".into()),
            observed_token_ttl: Some(Duration::from_secs(90)),
        };
        let vars: HashMap<_, _> = environment(&env).into_iter().collect();
        assert_eq!(
            vars["REHEARSAL_TOKEN_URL"], "http://127.0.0.1:1/token?account=AC1",
            "the engine's URL, untouched"
        );
        assert_eq!(vars["REHEARSAL_TOKEN_TTL"], "90");
        assert_eq!(vars["REHEARSAL_OBSERVED"], "1");
        assert_eq!(vars["REHEARSAL_IDENTITY"], "alice");
        let driven = DriverEnv {
            observed_identity: None,
            ..env
        };
        let vars: HashMap<_, _> = environment(&driven).into_iter().collect();
        assert_eq!(vars["REHEARSAL_TOKEN_URL"], "http://127.0.0.1:1/token?account=AC1");
        assert!(!vars.contains_key("REHEARSAL_OBSERVED") && !vars.contains_key("REHEARSAL_TOKEN_TTL"));
    }
}
