//! One named client of the protocol: a supervisor task that keeps a `rehearsal-client`
//! connection up the way the SDK's twilsock does (wire protocol §2.5–§2.8, §3) and turns what the
//! server pushes into protocol events.
//!
//! - Connection states as the SDK reports them: `connecting` → `connected`; a drop goes back to
//!   `connecting` and retries with backoff (1 s doubling to 2 min, ±20 %); a server `close` goes
//!   `disconnecting`, then reconnects (308 and unknown codes, no sooner than the
//!   `backoff_policy.reconnect_min_ms` it carries) or ends `disconnected` (401, 406, 410, 417);
//!   an `init` or `update` answered 401/403 ends `denied`; 429 and other refusals retry.
//! - The quickstart's token policy: on `token_about_to_expire` fetch a token and `update` in
//!   session; on an expiry (close 410, or a denial with error 20104) fetch one and connect anew.
//!   A terminal state is otherwise left only through `update_token`.
//! - At the first connection: the Configuration, the user's conversations map, the REST list of
//!   the user's conversations page by page, and one subscription for all their Sync objects;
//!   after a reconnect, a resubscription from the last event id seen of each object, so that
//!   what happened while the client was away is replayed.
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rehearsal_client::{Client, Config, Error as ClientError, Notification};
use serde_json::{Value, json};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::conversations::Book;
use crate::log;
use crate::protocol::{CommandError, Output};
use crate::token::TokenSource;

mod load;
mod notifications;

/// Bound of every request and of the connection handshake.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Conversations opened at once at startup.
const OPEN_CONCURRENCY: usize = 8;
/// Objects per `POST /v4/Subscriptions` (the server's `max_batch_size`).
const SUBSCRIPTION_BATCH: usize = 100;
/// Twilsock's retry policy: min 1 s, max 2 min, ±20 %.
const BACKOFF_MIN_MS: u64 = 1_000;
const BACKOFF_MAX_MS: u64 = 120_000;
/// How long a command waits for a connection that is being re-established (the SDK queues
/// requests made while offline for 20 s).
const LINK_WAIT: Duration = Duration::from_secs(20);
/// Token fetches after an expiry while the endpoint returns the expired token.
const EXPIRED_REFRESH_ATTEMPTS: u32 = 5;
/// Attempts of a startup read (the SDK's `fetchResource` retries any failure).
const STARTUP_READ_ATTEMPTS: u32 = 4;

/// How a connection ended.
enum End {
    /// `shutdown`: the client is closed for good.
    Stopped,
    /// The socket went away without a twilsock `close`.
    Dropped,
    /// A server `close` packet.
    Closed(Close),
}

/// A server `close` packet's status and backoff.
struct Close {
    code: u64,
    error_code: Option<u64>,
    description: Option<String>,
    backoff_ms: Option<u64>,
}

impl Close {
    fn from_packet(n: &Notification) -> Close {
        let status = n.header.get("status").cloned().unwrap_or(Value::Null);
        Close {
            code: status["code"].as_u64().unwrap_or(0),
            error_code: status["errorCode"].as_u64(),
            description: status["description"].as_str().map(str::to_owned),
            backoff_ms: backoff_policy(&n.payload_json().unwrap_or(Value::Null)),
        }
    }

    /// 401, 406, 410 and 417 end the session for good; anything else reconnects (§2.6).
    fn terminal(&self) -> bool {
        matches!(self.code, 401 | 406 | 410 | 417)
    }
}

fn backoff_policy(payload: &Value) -> Option<u64> {
    payload["backoff_policy"]["reconnect_min_ms"].as_u64()
}

/// The delay before retry `attempt` (0-based): twilsock's doubling backoff with ±20 % jitter,
/// raised to at least the server's `reconnect_min_ms` (never less than it: the server asked).
fn backoff(attempt: u32, server_min_ms: Option<u64>) -> Duration {
    let base = BACKOFF_MIN_MS.saturating_mul(1 << attempt.min(10)).min(BACKOFF_MAX_MS);
    let jittered = (base as f64 * rand::random_range(0.8..1.2)) as u64;
    let ms = match server_min_ms {
        Some(min) => jittered.max((min.min(BACKOFF_MAX_MS) as f64 * rand::random_range(1.0..1.2)) as u64),
        None => jittered,
    };
    Duration::from_millis(ms)
}

/// One named client.
pub struct Session {
    pub name: String,
    identity: String,
    tokens: TokenSource,
    config: Config,
    out: Output,
    token: Mutex<String>,
    /// The live connection, `None` while (re)connecting or ended.
    link: watch::Sender<Option<Arc<Client>>>,
    book: Mutex<Book>,
    state: Mutex<&'static str>,
    /// `None` until the first connection has loaded (or failed to start).
    ready: watch::Sender<Option<Result<(), CommandError>>>,
    loaded: AtomicBool,
    /// A token given by `update_token` while not connected.
    new_token: Notify,
    stop: watch::Sender<bool>,
    /// An `update` was refused: the error code to act on once the connection is down.
    denial: Mutex<Option<Option<u64>>>,
    refreshing: AtomicBool,
    /// Typing indicators shown: (conversation, identity) → generation of its timer.
    typing: Mutex<HashMap<(String, String), u64>>,
    typing_generation: AtomicU64,
    /// Own typing signals: conversation → until when another would be redundant.
    typing_sent: Mutex<HashMap<String, Instant>>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Session {
    /// Starts the client's supervisor; [`Session::ready`] tells when it has connected.
    pub fn start(name: &str, identity: &str, token_url: &str, twilsock_url: &str, out: Output) -> Arc<Session> {
        let mut config = Config::new(twilsock_url);
        config.timeout = REQUEST_TIMEOUT;
        config.control_packets = true;
        let session = Arc::new(Session {
            name: name.to_owned(),
            identity: identity.to_owned(),
            tokens: TokenSource::new(token_url, identity),
            config,
            out,
            token: Mutex::new(String::new()),
            link: watch::channel(None).0,
            book: Mutex::new(Book::default()),
            state: Mutex::new(""),
            ready: watch::channel(None).0,
            loaded: AtomicBool::new(false),
            new_token: Notify::new(),
            stop: watch::channel(false).0,
            denial: Mutex::new(None),
            refreshing: AtomicBool::new(false),
            typing: Mutex::new(HashMap::new()),
            typing_generation: AtomicU64::new(0),
            typing_sent: Mutex::new(HashMap::new()),
            task: Mutex::new(None),
        });
        let task = tokio::spawn(session.clone().supervise());
        *session.task.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
        session
    }

    fn event(&self, name: &str, fields: Value) {
        self.out.event(name, &self.name, fields);
    }

    fn set_state(&self, state: &'static str) {
        let changed = {
            let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
            std::mem::replace(&mut *s, state) != state
        };
        if changed {
            self.event("connection_state", json!({ "state": state }));
        }
    }

    fn token(&self) -> String {
        self.token.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set_token(&self, token: String) {
        *self.token.lock().unwrap_or_else(|e| e.into_inner()) = token;
    }

    fn settle(&self, outcome: Result<(), CommandError>) {
        self.ready.send_if_modified(|r| {
            if r.is_some() {
                return false;
            }
            *r = Some(outcome);
            true
        });
    }

    /// Waits (bounded) until the first connection has loaded; its failure otherwise.
    pub async fn ready(&self, wait: Duration) -> Result<(), CommandError> {
        let mut rx = self.ready.subscribe();
        match tokio::time::timeout(wait, rx.wait_for(Option::is_some)).await {
            Ok(Ok(r)) => r.clone().unwrap_or(Ok(())),
            Ok(Err(_)) => Err(CommandError::failed("the client ended before it was initialised")),
            Err(_) => Err(CommandError::failed(format!(
                "client not initialised within {wait:?} (state {})",
                self.state.lock().unwrap_or_else(|e| e.into_inner())
            ))),
        }
    }

    /// The live connection, waiting (bounded) while it is being re-established.
    pub async fn client(&self) -> Result<Arc<Client>, CommandError> {
        let mut rx = self.link.subscribe();
        match tokio::time::timeout(LINK_WAIT, rx.wait_for(Option::is_some)).await {
            Ok(Ok(c)) => c.clone().ok_or_else(|| CommandError::failed("not connected")),
            _ => Err(CommandError::failed(format!("client \"{}\" is not connected", self.name))),
        }
    }

    /// Whether a typing signal for `conversation` is due: the SDK sends at most one per
    /// `typing_timeout` (from the last answer; 5 s before any), and calls in between are no-ops.
    pub fn typing_due(&self, conversation: &str) -> bool {
        let sent = self.typing_sent.lock().unwrap_or_else(|e| e.into_inner());
        sent.get(conversation).is_none_or(|until| Instant::now() >= *until)
    }

    /// Records a typing signal sent for `conversation`, quiet for `timeout` after `sent_at`.
    pub fn typing_sent(&self, conversation: &str, sent_at: Instant, timeout: Duration) {
        self.typing_sent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(conversation.to_owned(), sent_at + timeout);
    }

    /// What the client knows of its conversations.
    pub fn with_book<T>(&self, f: impl FnOnce(&mut Book) -> T) -> T {
        f(&mut self.book.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// `update_token`: an `update` on the live connection, or a new connection when the client
    /// is down (denied, disconnected, or retrying).
    pub async fn update_token(&self, token: String) -> Result<(), CommandError> {
        self.set_token(token.clone());
        let live = self.link.borrow().clone();
        match live {
            Some(client) => self.update_in_session(&client, &token).await,
            None => {
                self.new_token.notify_one();
                Ok(())
            }
        }
    }

    /// Sends `update`; a 401/403 answer ends the session `denied` (the SDK's `rejected`).
    async fn update_in_session(&self, client: &Client, token: &str) -> Result<(), CommandError> {
        match client.update_token(token).await {
            Ok(()) => Ok(()),
            Err(e @ ClientError::InitRefused { status, .. }) => {
                let info = CommandError::from(e);
                let terminal = matches!(status, 401 | 403);
                self.connection_error(terminal, &info);
                if terminal {
                    *self.denial.lock().unwrap_or_else(|e| e.into_inner()) = Some(info.code);
                    self.set_state("denied");
                    client.disconnect();
                }
                Err(info)
            }
            Err(e) => Err(e.into()),
        }
    }

    fn connection_error(&self, terminal: bool, info: &CommandError) {
        let mut fields = json!({ "terminal": terminal, "message": info.message });
        if let Some(c) = info.code {
            fields["code"] = c.into();
        }
        if let Some(s) = info.status {
            fields["status"] = s.into();
        }
        self.event("connection_error", fields);
    }

    /// Ends the client: closes its connection (twilsock `close`) and waits for the supervisor.
    pub async fn shutdown(&self) {
        self.stop.send_replace(true);
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = task {
            let abort = task.abort_handle();
            if tokio::time::timeout(REQUEST_TIMEOUT, task).await.is_err() {
                abort.abort();
            }
        }
        if let Some(client) = self.link.send_replace(None) {
            client.disconnect();
        }
        self.set_state("disconnected");
    }

    /// The connection loop; returns when the client is shut down or cannot start at all.
    async fn supervise(self: Arc<Self>) {
        let mut stop = self.stop.subscribe();
        match self.tokens.fetch().await {
            Ok(t) => self.set_token(t),
            Err(e) => {
                self.settle(Err(e));
                return;
            }
        }
        let mut attempt = 0u32;
        let mut server_min = None;
        loop {
            if *stop.borrow_and_update() {
                return;
            }
            self.set_state("connecting");
            let token = self.token();
            let connected = tokio::select! {
                r = Client::connect(&self.config, &token) => r,
                _ = stop.changed() => return,
            };
            match connected {
                Ok((client, mut notes)) => {
                    attempt = 0;
                    server_min = None;
                    let client = Arc::new(client);
                    self.link.send_replace(Some(client.clone()));
                    self.set_state("connected");
                    let load = tokio::spawn(self.clone().load(client.clone()));
                    let end = self.pump(&client, &mut notes, &mut stop).await;
                    load.abort();
                    self.link.send_replace(None);
                    let denial = self.denial.lock().unwrap_or_else(|e| e.into_inner()).take();
                    match end {
                        End::Stopped => {
                            client.shut_down().await;
                            return;
                        }
                        _ if denial.is_some() => {
                            client.disconnect();
                            if !self.recover_from_denial(denial.flatten(), &mut stop).await {
                                return;
                            }
                            continue;
                        }
                        End::Dropped => {
                            client.disconnect();
                            self.set_state("connecting");
                        }
                        End::Closed(close) => {
                            client.disconnect();
                            self.set_state("disconnecting");
                            if close.terminal() {
                                let mut info = CommandError::failed(
                                    close
                                        .description
                                        .clone()
                                        .unwrap_or_else(|| format!("connection closed by the server ({})", close.code)),
                                );
                                info.code = close.error_code;
                                info.status = Some(close.code);
                                self.connection_error(true, &info);
                                // The SDK emits `tokenExpired` at the close, `disconnected` only
                                // when its close timer ends.
                                if close.code == 410 {
                                    self.event("token_expired", json!({}));
                                }
                                self.set_state("disconnected");
                                if close.code == 410 && self.refresh_expired(&mut stop).await {
                                    continue;
                                }
                                if !self.wait_for_token(&mut stop).await {
                                    return;
                                }
                                continue;
                            }
                            server_min = close.backoff_ms;
                        }
                    }
                }
                Err(e @ ClientError::InitRefused { status: 401 | 403, .. }) => {
                    let info = CommandError::from(e);
                    self.connection_error(true, &info);
                    if !self.loaded.load(Ordering::Relaxed) {
                        self.event("init_failed", json!({ "error": info.to_json() }));
                        self.settle(Err(info.clone()));
                    }
                    self.set_state("denied");
                    if !self.recover_from_denial(info.code, &mut stop).await {
                        return;
                    }
                    continue;
                }
                Err(ClientError::InitRefused { status, header, payload }) => {
                    server_min = backoff_policy(&payload);
                    let info = CommandError::from(ClientError::InitRefused { status, header, payload });
                    self.connection_error(false, &info);
                }
                Err(e) => {
                    self.connection_error(false, &CommandError::failed(e.to_string()));
                }
            }
            let delay = backoff(attempt, server_min.take());
            attempt = attempt.saturating_add(1);
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                _ = stop.changed() => return,
            }
        }
    }

    /// After a denial: an expired token (20104) is refreshed at once; otherwise (or when the
    /// endpoint has nothing new) wait for `update_token`. `false`: shut down meanwhile.
    async fn recover_from_denial(&self, error_code: Option<u64>, stop: &mut watch::Receiver<bool>) -> bool {
        if error_code == Some(20104) {
            self.event("token_expired", json!({}));
            if self.refresh_expired(stop).await {
                return true;
            }
        }
        self.wait_for_token(stop).await
    }

    /// Waits for a token from `update_token`; `false` if the client is shut down first.
    async fn wait_for_token(&self, stop: &mut watch::Receiver<bool>) -> bool {
        tokio::select! {
            () = self.new_token.notified() => true,
            _ = stop.changed() => false,
        }
    }

    /// After an expiry: fetches a token, and while the endpoint hands back the expired one
    /// (minted within the same second, on a clock that may be frozen) asks again once a second
    /// a few times. `true` once a new token is in place; `false` if none came or on shutdown.
    async fn refresh_expired(&self, stop: &mut watch::Receiver<bool>) -> bool {
        for _ in 0..EXPIRED_REFRESH_ATTEMPTS {
            if self.refresh("tokenExpired").await {
                return true;
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = stop.changed() => return false,
            }
        }
        false
    }

    /// Fetches a token; `true` if it differs from the one in use (now replaced). Development
    /// endpoints mint the same token twice within a second, and the SDK ignores a token
    /// identical to its own: then there is nothing to apply.
    async fn refresh(&self, reason: &str) -> bool {
        match self.tokens.fetch().await {
            Ok(t) if t != self.token() => {
                self.set_token(t);
                self.event("token_refreshed", json!({ "reason": reason }));
                true
            }
            Ok(_) => {
                log!(
                    "[{}] token refresh after {reason}: the endpoint returned the token in use",
                    self.name
                );
                false
            }
            Err(e) => {
                log!("[{}] token refresh after {reason} failed: {}", self.name, e.message);
                false
            }
        }
    }

    /// `token_about_to_expire`: a fresh token, given to the live session with `update`.
    fn refresh_in_session(self: &Arc<Self>, client: Arc<Client>) {
        if self.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let session = self.clone();
        tokio::spawn(async move {
            match session.tokens.fetch().await {
                Ok(t) if t != session.token() => {
                    session.set_token(t.clone());
                    match session.update_in_session(&client, &t).await {
                        Ok(()) => session.event("token_refreshed", json!({ "reason": "tokenAboutToExpire" })),
                        Err(e) => log!("[{}] update after tokenAboutToExpire failed: {}", session.name, e.message),
                    }
                }
                Ok(_) => log!("[{}] tokenAboutToExpire: the endpoint returned the token in use", session.name),
                Err(e) => log!("[{}] token fetch after tokenAboutToExpire failed: {}", session.name, e.message),
            }
            session.refreshing.store(false, Ordering::Release);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_honours_the_server_minimum() {
        for _ in 0..100 {
            let first = backoff(0, None).as_millis();
            assert!((800..=1200).contains(&first), "{first}");
            let third = backoff(2, None).as_millis();
            assert!((3200..=4800).contains(&third), "{third}");
            let raised = backoff(0, Some(3000)).as_millis();
            assert!((3000..=3600).contains(&raised), "{raised}");
            assert!(backoff(40, None).as_millis() <= 144_000);
        }
    }
}
