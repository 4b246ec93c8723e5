//! `rehearsal serve`: its flags, the server's start (seed, state, banner) and the `--state`
//! export at the end.
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use rehearsal_mock_server::clock::Clock;
use rehearsal_mock_server::control::http::PREFIX as CONTROL_PREFIX;
use rehearsal_mock_server::domain::seed::Seed;
use rehearsal_mock_server::inspector::PATH as INSPECTOR_PATH;
use rehearsal_mock_server::server::{Credentials, ServerConfig, Startup, prepare, run};

use crate::DEFAULT_LISTEN;
use crate::scenario_play;
use crate::signals::{Signals, shutdown_signal};

#[derive(clap::Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = DEFAULT_LISTEN, env = "REHEARSAL_LISTEN")]
    listen: SocketAddr,
    /// Start from this seed file instead of the embedded default seed.
    #[arg(long, conflicts_with = "no_seed")]
    seed: Option<PathBuf>,
    /// Start with no accounts at all.
    #[arg(long)]
    no_seed: bool,
    /// Import state from FILE at start (if it exists) and export it there at clean exit.
    #[arg(long)]
    state: Option<PathBuf>,
    /// Do not serve the development token endpoint (`GET /token?identity=…`).
    #[arg(long)]
    no_token_endpoint: bool,
    /// Base URL to put in responses, when clients reach the server through another name.
    #[arg(long)]
    public_url: Option<String>,
    /// Token the control plane (/_rehearsal/v1) requires; default: a random one, printed.
    #[arg(long, env = "REHEARSAL_CONTROL_TOKEN", hide_env_values = true)]
    control_token: Option<String>,
    /// Let loopback clients use the control plane without the token.
    #[arg(long)]
    control_open_loopback: bool,
    /// Journal entries kept before the oldest are dropped (and counted).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    journal_size: u64,
    /// Journal size bound in MiB: the oldest entries are dropped (and counted) beyond it.
    #[arg(long, value_name = "MIB", default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
    journal_max_mib: u64,
    /// Bytes (MiB) a twilsock connection may have waiting to be written before it is closed as a
    /// slow consumer.
    #[arg(long, value_name = "MIB", default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
    outbox_max_mib: u64,
    /// Media (MCS uploads) one tenant may store, in MiB; uploads past it get 413 (code 50512).
    #[arg(long, value_name = "MIB", default_value_t = 256, value_parser = clap::value_parser!(u64).range(0..=1 << 30))]
    media_quota_mib: u64,
    /// How long a webhook may take to answer, in milliseconds (Twilio: 5000). A pre-action hook
    /// that does not answer in time lets the action proceed; a post-action attempt is retried.
    #[arg(long, value_name = "MS", default_value_t = 5000, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    webhook_timeout_ms: u64,
    /// HTTP connections open at once (WebSockets included); more are closed as they arrive,
    /// with a log line.
    #[arg(long, value_name = "N", default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    max_connections: u64,
    /// How long a request's head may take to arrive, counted from when the server waits for it
    /// (connection opened or previous response sent): silent and idle keep-alive connections
    /// are closed after it.
    #[arg(long, value_name = "MS", default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    header_read_timeout_ms: u64,
    /// How long a request body may send nothing, or a response go unread, before the connection
    /// is closed (WebSockets keep their own liveness rules).
    #[arg(long, value_name = "MS", default_value_t = 60_000, value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    idle_timeout_ms: u64,
    /// On SIGINT/SIGTERM, how long open requests may finish before their connections are dropped
    /// (the --state export happens after it either way).
    #[arg(long, value_name = "MS", default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(0..=600_000))]
    shutdown_timeout_ms: u64,
    /// Play the server side of this library scenario (see `rehearsal scenarios list`) against
    /// whatever connects: the default account starts from the scenario's seed, and the play
    /// starts when your app connects as one of its identities (again after each play).
    #[arg(long, value_name = "ID", conflicts_with_all = ["seed", "no_seed", "state"])]
    scenario: Option<String>,
}

pub(crate) async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let scenario = match &args.scenario {
        None => None,
        Some(id) => {
            let library = rehearsal_scenarios::Library::load_embedded()
                .map_err(|errors| anyhow::anyhow!("the embedded library does not load: {}", errors.len()))?;
            let loaded = library
                .get(id)
                .cloned()
                .with_context(|| format!("no scenario `{id}` in the library (see `rehearsal scenarios list`)"))?;
            Some(loaded)
        }
    };
    let seed = match (&args.seed, args.no_seed) {
        _ if scenario.is_some() => {
            let loaded = scenario.as_ref().expect("checked");
            let doc = rehearsal_scenarios::engine::serve_seed(loaded).map_err(|e| anyhow::anyhow!("the scenario's seed: {e}"))?;
            Some(Seed::parse(&doc.to_string()).context("the scenario's seed")?)
        }
        (_, true) => None,
        (Some(path), false) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading seed {}", path.display()))?;
            Some(Seed::parse(&text).with_context(|| format!("seed {}", path.display()))?)
        }
        (None, false) => Some(Seed::default_seed()),
    };
    if let Some(path) = &args.state {
        remove_stale_temporaries(path);
    }
    let state_json = match &args.state {
        Some(p) if p.exists() => Some(std::fs::read_to_string(p).with_context(|| format!("reading state {}", p.display()))?),
        _ => None,
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    let config = ServerConfig {
        token_endpoint: !args.no_token_endpoint,
        public_url: args.public_url.clone(),
        control_token: args.control_token.clone(),
        control_open_loopback: args.control_open_loopback,
        journal_size: usize::try_from(args.journal_size).unwrap_or(usize::MAX),
        journal_bytes: mib_to_bytes(args.journal_max_mib),
        session: rehearsal_mock_server::twilsock::SessionConfig {
            outbox_bytes: mib_to_bytes(args.outbox_max_mib),
            ..Default::default()
        },
        media: rehearsal_mock_server::media::MediaConfig {
            quota_bytes: args.media_quota_mib.saturating_mul(1024 * 1024),
            ..Default::default()
        },
        webhooks: rehearsal_mock_server::webhooks::WebhookSettings {
            timeout: std::time::Duration::from_millis(args.webhook_timeout_ms),
            ..Default::default()
        },
        connections: rehearsal_mock_server::server::ConnectionLimits {
            max_connections: usize::try_from(args.max_connections).unwrap_or(usize::MAX),
            header_read_timeout: std::time::Duration::from_millis(args.header_read_timeout_ms),
            idle_timeout: std::time::Duration::from_millis(args.idle_timeout_ms),
            shutdown_timeout: std::time::Duration::from_millis(args.shutdown_timeout_ms),
        },
        ..Default::default()
    };
    let state = prepare(
        addr,
        Startup {
            seed,
            state_json,
            config,
            clock: Clock::system(),
        },
    )?;
    let signals = Signals::listen();
    print_banner(&state, addr);
    tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, "ready");
    if let Some(loaded) = scenario {
        print_scenario_banner(&loaded);
        let stop = state.stop.subscribe();
        tokio::spawn(scenario_play::replay(
            state.clone(),
            format!("ws://{addr}/v3/wsconnect"),
            loaded,
            stop,
        ));
    }
    let domain = state.domain.clone();
    // `run` ends within the shutdown timeout whatever the peers do; the state is exported even
    // if serving failed, so nothing acknowledged since start is lost.
    let served = run(listener, state, shutdown_signal(signals)).await;
    if let Some(path) = &args.state {
        export_state(&domain, path)?;
        eprintln!("rehearsal: state written to {}", path.display());
    }
    Ok(served?)
}

fn print_scenario_banner(loaded: &rehearsal_scenarios::Loaded) {
    let s = &loaded.scenario;
    let mut out = format!("\n  scenario      {} — {}\n", s.id, s.title);
    for c in &s.clients {
        out.push_str(&format!(
            "  connect as    {}  (the scenario's token lifetime: {} s; ask /token?identity={}&ttl={})\n",
            c.identity(),
            c.token_ttl().as_secs(),
            c.identity(),
            c.token_ttl().as_secs()
        ));
    }
    out.push_str("  the play starts when your app connects as one of these identities\n");
    eprint!("{out}");
}

fn print_banner(state: &rehearsal_mock_server::AppState, addr: SocketAddr) {
    use std::io::Write;
    let base = &state.base_url;
    let mut out = String::new();
    out.push_str(&format!("rehearsal: listening on {base}\n"));
    out.push_str(&format!("  REST API      {base}/v1/Conversations\n"));
    out.push_str(&format!("  twilsock      ws://{addr}/v3/wsconnect\n"));
    if state.config.token_endpoint {
        out.push_str(&format!("  tokens        {base}/token?identity=alice\n"));
    }
    let control_token = state.config.control_token.as_deref().unwrap_or_default();
    let loopback = if state.config.control_open_loopback {
        "  (open to loopback)"
    } else {
        ""
    };
    out.push_str(&format!(
        "  control       {base}{CONTROL_PREFIX}  token {control_token}{loopback}\n"
    ));
    // The token rides in the fragment, which the browser never sends: it stays out of request
    // lines, server logs and `Referer`.
    out.push_str(&format!(
        "  inspector     {base}{INSPECTOR_PATH}#token={}\n",
        fragment_encode(control_token)
    ));
    if !addr.ip().is_loopback() {
        out.push_str(&format!(
            "\n  WARNING: bound to {}, beyond loopback: anyone who can reach this port can use the \
             REST API with the seed's credentials and the control plane with its token. Keep the \
             port private, and set --control-token (REHEARSAL_CONTROL_TOKEN) to a secret.\n\n",
            addr.ip()
        ));
    }
    if let Some(c) = state.default_account.as_deref().and_then(|a| Credentials::of(&state.domain, a)) {
        out.push_str(&format!("  account       {}  auth token {}\n", c.account_sid, c.auth_token));
        out.push_str(&format!("  API key       {}  secret {}\n", c.api_key, c.api_secret));
        out.push_str(&format!("  service       {}\n", c.service_sid));
        out.push_str(&format!(
            "\n  eval \"$(rehearsal env --listen {addr})\"   # exports these for your shell\n"
        ));
        out.push_str(&format!(
            "  twilio-node:   const client = twilio(ACCOUNT_SID, AUTH_TOKEN); client.conversations.baseUrl = '{base}'  (see README)\n"
        ));
        out.push_str(&format!(
            "  the SDK:       new Client(token, {{ twilsock: {{ uri: 'ws://{addr}/v3/wsconnect' }} }})\n"
        ));
    }
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(out.as_bytes());
    let _ = stdout.flush();
}

/// Percent-encodes everything but unreserved characters, for a value in a URL fragment that
/// the inspector reads with `decodeURIComponent`.
fn fragment_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The temporary files an export of `path` writes: `.{name}.*.tmp` beside it (and the fixed
/// `.{name}.tmp` older versions used).
fn temporary_name_parts(path: &Path) -> (PathBuf, String) {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("state");
    (dir.to_path_buf(), format!(".{name}."))
}

/// Writes the state atomically and durably: a uniquely named temporary file beside `path`
/// (mode 0600: the state holds auth tokens and API secrets), fsynced, renamed over `path`, and
/// the directory fsynced so the rename itself survives a crash.
fn export_state(domain: &rehearsal_mock_server::domain::Domain, path: &Path) -> anyhow::Result<()> {
    use std::io::Write;
    let json = serde_json::to_vec_pretty(&domain.export(None))?;
    let (dir, prefix) = temporary_name_parts(path);
    // tempfile creates the file with mode 0600 on Unix.
    let mut tmp = tempfile::Builder::new()
        .prefix(&prefix)
        .suffix(".tmp")
        .tempfile_in(&dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    tmp.write_all(&json).with_context(|| format!("writing {}", tmp.path().display()))?;
    tmp.as_file()
        .sync_all()
        .with_context(|| format!("syncing {}", tmp.path().display()))?;
    tmp.persist(path).with_context(|| format!("renaming into {}", path.display()))?;
    #[cfg(unix)]
    std::fs::File::open(&dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing the directory {}", dir.display()))?;
    Ok(())
}

/// Removes what an export interrupted by a crash left behind (they would pile up otherwise,
/// each a full copy of the state with its secrets).
fn remove_stale_temporaries(path: &Path) {
    let (dir, prefix) = temporary_name_parts(path);
    let Ok(entries) = std::fs::read_dir(&dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with(&prefix) && name.ends_with(".tmp") {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => tracing::info!(file = %entry.path().display(), "removed a stale temporary state file"),
                Err(e) => tracing::warn!(file = %entry.path().display(), error = %e, "could not remove a stale temporary state file"),
            }
        }
    }
}

/// A size given in MiB, in bytes (saturating on 32-bit targets).
fn mib_to_bytes(mib: u64) -> usize {
    usize::try_from(mib.saturating_mul(1024 * 1024)).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::fragment_encode;

    #[test]
    fn a_control_token_survives_the_fragment() {
        assert_eq!(fragment_encode("197d866e90e5"), "197d866e90e5");
        assert_eq!(fragment_encode("a b&c=d#e/é"), "a%20b%26c%3Dd%23e%2F%C3%A9");
    }
}
