//! One twilsock connection: the `init` handshake, then one tokio task that owns the socket.
//!
//! The task reads frames, acks every server packet the way the SDK does (a `reply` with the
//! packet's id), routes replies to the request that is waiting for them (by packet id), hands
//! notifications to a bounded channel or to a callback, and writes what the [`Client`] handle
//! asks it to. It is the only task a connection has, so thousands of connections cost thousands
//! of small tasks, not threads.
//!
//! Bounds: requests in flight per connection ([`Config::max_in_flight`]), commands to the task
//! (a bounded channel), notifications (a bounded channel; a consumer that leaves it full for
//! longer than [`Config::timeout`] ends the connection with [`Error::SlowConsumer`]), and every
//! wait ([`Config::timeout`]).
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Map, Value, json};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::codec::{self, Packet};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

mod task;
use task::Task;

/// Frames read and handled before the acks they caused are flushed: one write for a burst of
/// pushes instead of one per push, without starving the command side.
const READ_BATCH: usize = 64;
/// Commands queued to the connection task.
const COMMAND_QUEUE: usize = 64;

/// How a connection behaves.
#[derive(Debug, Clone)]
pub struct Config {
    /// The twilsock URL, e.g. `ws://127.0.0.1:4510/v3/wsconnect`.
    pub url: String,
    /// Bound of every wait: connecting, `init`, each request's reply, a full notification queue.
    pub timeout: Duration,
    /// Notifications queued for [`Notifications`] (channel mode only).
    pub notification_capacity: usize,
    /// Requests awaiting their reply at once on this connection.
    pub max_in_flight: usize,
    /// Ack server packets as the SDK does. Off only to measure what acks cost the server.
    pub ack: bool,
    /// The WebSocket read buffer. tungstenite zero-fills the whole buffer before every socket
    /// read, so its 128 KiB default costs a 128 KiB memset per read and 128 KiB per connection;
    /// frames larger than the buffer still arrive whole (it grows for them).
    pub read_buffer_size: usize,
    /// Also hand the server's `client_update` and `close` packets to the notification sink
    /// (see [`Notification::method`]), as an SDK needs them for its token and reconnect policy.
    /// Off by default: a benchmark counts only `notification`s.
    pub control_packets: bool,
}

impl Config {
    pub fn new(url: impl Into<String>) -> Config {
        Config {
            url: url.into(),
            timeout: Duration::from_secs(10),
            notification_capacity: 4096,
            max_in_flight: 32,
            ack: true,
            read_buffer_size: 8 * 1024,
            control_packets: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("websocket: {0}")]
    WebSocket(tokio_tungstenite::tungstenite::Error),
    #[error("timed out: {0}")]
    Timeout(&'static str),
    #[error("the connection is closed")]
    Closed,
    /// An `init` (or `update`) answered with a non-200 status; `payload` is the reply's JSON
    /// payload (`{"backoff_policy":{"reconnect_min_ms":N}}` for a 429), `null` when empty
    /// (boxed: it keeps `Error` small).
    #[error("init refused with status {status}: {header}")]
    InitRefused { status: u64, header: Value, payload: Box<Value> },
    #[error("protocol: {0}")]
    Protocol(String),
    #[error("{method} {target} answered HTTP {status}: {body}")]
    Http {
        method: String,
        target: String,
        status: u16,
        body: Value,
    },
    #[error("notifications were not consumed in time (queue full)")]
    SlowConsumer,
}

/// A server `notification` (or, with [`Config::control_packets`], a `client_update` or `close`)
/// and when it was read off the socket.
#[derive(Debug, Clone)]
pub struct Notification {
    pub header: Map<String, Value>,
    pub payload: Bytes,
    pub received: Instant,
}

impl Notification {
    /// `notification`, or with [`Config::control_packets`] also `client_update` and `close`.
    pub fn method(&self) -> &str {
        self.header.get("method").and_then(Value::as_str).unwrap_or_default()
    }

    /// `twilio.sync.event` or `twilio.ipmsg.typing_indicator`.
    pub fn message_type(&self) -> &str {
        self.header.get("message_type").and_then(Value::as_str).unwrap_or_default()
    }

    pub fn payload_json(&self) -> Result<Value, serde_json::Error> {
        serde_json::from_slice(&self.payload)
    }
}

/// The receiving end of a connection's notifications (channel mode). `None` once the
/// connection has ended.
pub struct Notifications {
    rx: mpsc::Receiver<Notification>,
}

impl Notifications {
    /// The next notification within `wait`; `Err(Timeout)` if none came, `Err(Closed)` if the
    /// connection ended.
    pub async fn next(&mut self, wait: Duration) -> Result<Notification, Error> {
        match timeout(wait, self.rx.recv()).await {
            Ok(Some(n)) => Ok(n),
            Ok(None) => Err(Error::Closed),
            Err(_) => Err(Error::Timeout("notification")),
        }
    }

    /// A notification already received, if any (never waits).
    pub fn try_next(&mut self) -> Option<Notification> {
        self.rx.try_recv().ok()
    }
}

/// Where the task hands notifications.
enum Sink {
    Channel(mpsc::Sender<Notification>),
    Handler(Box<dyn FnMut(Notification) + Send>),
}

enum Command {
    Request {
        id: String,
        frame: Bytes,
        reply: oneshot::Sender<Packet>,
    },
    /// Resolve `reply` with the payload of the first control event (`subscription_*`) carrying
    /// this correlation id. Registered before the request is sent, so it cannot be missed.
    AwaitCorrelation {
        correlation: u64,
        reply: oneshot::Sender<Value>,
    },
    Send(Bytes),
    /// Close the WebSocket and end the task.
    Close,
}

/// The HTTP answer to an upstream request.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

/// The SDK's Configuration, reduced to what a client needs.
#[derive(Debug, Clone)]
pub struct Configuration {
    pub identity: String,
    pub my_conversations_map: String,
    pub my_user_info_map: String,
    pub my_conversations_url: String,
    pub conversations_url: String,
    pub raw: Value,
}

/// A handle to one connection. Cheap to share by reference between tasks: requests may run
/// concurrently (up to [`Config::max_in_flight`]). Dropping it closes the connection.
pub struct Client {
    commands: mpsc::Sender<Command>,
    in_flight: Arc<Semaphore>,
    seq: AtomicU64,
    config: Config,
    /// `http://host:port`: stripped from the absolute URLs the server hands out.
    base: String,
    configuration: OnceLock<Configuration>,
    task: Mutex<Option<JoinHandle<Result<(), Error>>>>,
    init_reply: Packet,
}

impl Client {
    /// Connects, completes `init`, and queues notifications for the returned receiver.
    pub async fn connect(config: &Config, token: &str) -> Result<(Client, Notifications), Error> {
        let (tx, rx) = mpsc::channel(config.notification_capacity.max(1));
        let client = Client::start(config, token, Sink::Channel(tx)).await?;
        Ok((client, Notifications { rx }))
    }

    /// Connects, completes `init`, and calls `handler` on the connection's task for every
    /// notification (no queue, no second task): what a benchmark with thousands of connections
    /// wants. The handler must not block.
    pub async fn connect_with(config: &Config, token: &str, handler: impl FnMut(Notification) + Send + 'static) -> Result<Client, Error> {
        Client::start(config, token, Sink::Handler(Box::new(handler))).await
    }

    async fn start(config: &Config, token: &str, sink: Sink) -> Result<Client, Error> {
        let ws_config = WebSocketConfig::default().read_buffer_size(config.read_buffer_size.max(1024));
        // TCP_NODELAY, as the SDK's `ws` package sets it: small frames go out at once.
        let connect = tokio_tungstenite::connect_async_with_config(config.url.as_str(), Some(ws_config), true);
        let (mut ws, _) = timeout(config.timeout, connect).await.map_err(|_| Error::Timeout("connect"))??;
        let id = "TMinit-0";
        ws.send(Message::Binary(codec::init(id, token))).await?;
        let init_reply = timeout(config.timeout, async {
            loop {
                match ws.next().await {
                    Some(Ok(Message::Binary(b))) => {
                        let p = codec::decode(&b).map_err(|e| Error::Protocol(e.to_string()))?;
                        if p.method() == Some("reply") && p.id() == Some(id) {
                            return Ok(p);
                        }
                        // Nothing but the init reply is expected before init completes; a server
                        // packet (ping) still gets its ack.
                        if let Some(pid) = p.id().filter(|_| p.method() != Some("reply")) {
                            ws.send(Message::Binary(codec::ack(pid))).await?;
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(Error::from(e)),
                    None => return Err(Error::Closed),
                }
            }
        })
        .await
        .map_err(|_| Error::Timeout("init reply"))??;
        let status = init_reply.header.get("status").and_then(|s| s.get("code")).and_then(Value::as_u64);
        if status != Some(200) {
            return Err(refusal(init_reply));
        }
        let (commands, rx) = mpsc::channel(COMMAND_QUEUE);
        let task = tokio::spawn(
            Task {
                ws,
                sink,
                pending: HashMap::new(),
                correlations: HashMap::new(),
                ack: config.ack,
                control_packets: config.control_packets,
                sink_wait: config.timeout,
            }
            .run(rx),
        );
        let base = config
            .url
            .replacen("ws://", "http://", 1)
            .replacen("wss://", "https://", 1)
            .split("/v3/")
            .next()
            .unwrap_or_default()
            .to_owned();
        Ok(Client {
            commands,
            in_flight: Arc::new(Semaphore::new(config.max_in_flight.max(1))),
            seq: AtomicU64::new(0),
            config: config.clone(),
            base,
            configuration: OnceLock::new(),
            task: Mutex::new(Some(task)),
            init_reply,
        })
    }

    /// The header of the `init` reply (continuation token, capabilities).
    pub fn init_reply(&self) -> &Map<String, Value> {
        &self.init_reply.header
    }

    /// `http://host:port` of the server.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn next_id(&self) -> String {
        format!("TM{:032x}", self.seq.fetch_add(1, Ordering::Relaxed) + 1)
    }

    /// An upstream (HTTP-over-twilsock) request, as the SDK sends it. `target` is a path or an
    /// absolute URL on the server (as `links` hold); `params` are sent percent-encoded in
    /// `http_request.params`, as the SDK does.
    pub async fn request(&self, method: &str, target: &str, params: &[(&str, &str)], body: Option<&Value>) -> Result<Answer, Error> {
        let payload = body
            .map(|b| serde_json::to_vec(b).expect("a JSON value serialises"))
            .unwrap_or_default();
        self.request_with(method, target, params, "application/json", payload).await
    }

    /// [`Client::request`] with a body of any type: the SDK sends typing as a form
    /// (`application/x-www-form-urlencoded`).
    pub async fn request_with(
        &self,
        method: &str,
        target: &str,
        params: &[(&str, &str)],
        content_type: &str,
        payload: Vec<u8>,
    ) -> Result<Answer, Error> {
        let _permit = timeout(self.config.timeout, self.in_flight.acquire())
            .await
            .map_err(|_| Error::Timeout("request slot"))?
            .map_err(|_| Error::Closed)?;
        let path = target.strip_prefix(&self.base).unwrap_or(target);
        let params: Map<String, Value> = params.iter().map(|(k, v)| ((*k).to_owned(), Value::String(enc(v)))).collect();
        let id = self.next_id();
        let frame = codec::upstream_request(&id, method, path, params, content_type, &payload);
        let (tx, rx) = oneshot::channel();
        self.command(Command::Request { id, frame, reply: tx }).await?;
        let reply = timeout(self.config.timeout, rx)
            .await
            .map_err(|_| Error::Timeout("upstream reply"))?
            .map_err(|_| Error::Closed)?;
        let twilsock_status = reply.header.get("status").and_then(|s| s.get("code")).and_then(Value::as_u64);
        if twilsock_status != Some(200) {
            return Err(Error::Protocol(format!(
                "twilsock status {twilsock_status:?} for {method} {target}"
            )));
        }
        let status = reply
            .header
            .get("http_status")
            .and_then(|s| s.get("code"))
            .and_then(Value::as_u64)
            .and_then(|s| u16::try_from(s).ok())
            .ok_or_else(|| Error::Protocol(format!("no http_status in the reply to {method} {target}")))?;
        let body = reply.payload_json().map_err(|e| Error::Protocol(format!("reply body: {e}")))?;
        Ok(Answer { status, body })
    }

    /// A request whose answer must be 2xx; returns the body.
    pub async fn call(&self, method: &str, target: &str, params: &[(&str, &str)], body: Option<&Value>) -> Result<Value, Error> {
        let a = self.request(method, target, params, body).await?;
        if (200..300).contains(&a.status) {
            Ok(a.body)
        } else {
            Err(Error::Http {
                method: method.to_owned(),
                target: target.to_owned(),
                status: a.status,
                body: a.body,
            })
        }
    }

    /// Gives the session a new token in place (a twilsock `update`, as the SDK's `updateToken`
    /// does while connected). A refusal is [`Error::InitRefused`] with the reply's status.
    pub async fn update_token(&self, token: &str) -> Result<(), Error> {
        let id = self.next_id();
        let Value::Object(header) = json!({"method": "update", "id": id, "token": token}) else {
            unreachable!("a JSON object literal")
        };
        let (tx, rx) = oneshot::channel();
        self.command(Command::Request {
            id,
            frame: codec::encode(&header, b""),
            reply: tx,
        })
        .await?;
        let reply = timeout(self.config.timeout, rx)
            .await
            .map_err(|_| Error::Timeout("update reply"))?
            .map_err(|_| Error::Closed)?;
        match reply.header.get("status").and_then(|s| s.get("code")).and_then(Value::as_u64) {
            Some(200) => Ok(()),
            _ => Err(refusal(reply)),
        }
    }

    async fn command(&self, c: Command) -> Result<(), Error> {
        timeout(self.config.timeout, self.commands.send(c))
            .await
            .map_err(|_| Error::Timeout("command queue"))?
            .map_err(|_| Error::Closed)
    }

    /// Sends a raw twilsock packet (no reply awaited).
    pub async fn send_packet(&self, header: &Map<String, Value>, payload: &[u8]) -> Result<(), Error> {
        self.command(Command::Send(codec::encode(header, payload))).await
    }

    /// The Configuration (`GET /Client/v2/Configuration`), fetched once and kept.
    pub async fn configuration(&self) -> Result<Configuration, Error> {
        if let Some(c) = self.configuration.get() {
            return Ok(c.clone());
        }
        let raw = self.call("GET", "/Client/v2/Configuration", &[], None).await?;
        let s = |p: &str| {
            raw.pointer(p)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| Error::Protocol(format!("Configuration has no {p}")))
        };
        let c = Configuration {
            identity: s("/identity")?,
            my_conversations_map: s("/sync_objects/my_conversations")?,
            my_user_info_map: s("/sync_objects/my_user_info")?,
            my_conversations_url: s("/links/my_conversations")?,
            conversations_url: s("/links/conversations")?,
            raw: raw.clone(),
        };
        Ok(self.configuration.get_or_init(|| c).clone())
    }

    /// `POST /v4/Subscriptions` with `action` (`establish` or `cancel`) and waits for its control
    /// event; returns that event's payload (`subscription_established`, or an error for
    /// `subscription_failed`). Events replayed before it reach the notification sink first.
    pub async fn subscriptions(&self, action: &str, requests: Value) -> Result<Value, Error> {
        let correlation = self.seq.fetch_add(1, Ordering::Relaxed) + 1_000_000_000_000;
        let (tx, rx) = oneshot::channel();
        self.command(Command::AwaitCorrelation { correlation, reply: tx }).await?;
        let body = crate::sync::subscriptions_body(action, correlation, requests);
        self.call("POST", "/v4/Subscriptions", &[], Some(&body)).await?;
        let control = timeout(self.config.timeout, rx)
            .await
            .map_err(|_| Error::Timeout("subscription control event"))?
            .map_err(|_| Error::Closed)?;
        if control["event_type"] == "subscription_failed" {
            return Err(Error::Protocol(format!("subscription failed: {control}")));
        }
        Ok(control)
    }

    /// Ends the connection with a twilsock `close` and a WebSocket close, and waits (bounded)
    /// for the task to finish.
    pub async fn close(self) {
        self.shut_down().await;
    }

    /// [`Client::close`] through a shared handle: what an owner of an `Arc<Client>` that others
    /// may still hold calls. Their later requests fail with [`Error::Closed`].
    pub async fn shut_down(&self) {
        let Value::Object(h) = json!({"method": "close", "id": self.next_id()}) else {
            unreachable!("a JSON object literal")
        };
        let _ = self.send_packet(&h, b"").await;
        let _ = self.command(Command::Close).await;
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = task {
            let _ = timeout(self.config.timeout, task).await;
        }
    }

    /// Ends the connection abruptly (no close packet, no WebSocket close): what a network drop
    /// looks like to the server.
    pub fn disconnect(&self) {
        if let Some(task) = self.task.lock().unwrap_or_else(|e| e.into_inner()).take() {
            task.abort();
        }
    }

    /// Whether the connection's task is still running.
    pub fn is_open(&self) -> bool {
        self.task
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_some_and(|t| !t.is_finished())
    }
}

/// The error for a refused `init`/`update` reply.
fn refusal(reply: Packet) -> Error {
    let status = reply.header.get("status").and_then(|s| s.get("code")).and_then(Value::as_u64);
    let payload = if reply.payload.is_empty() {
        Value::Null
    } else {
        reply.payload_json().unwrap_or(Value::Null)
    };
    Error::InitRefused {
        status: status.unwrap_or(0),
        header: Value::Object(reply.header),
        payload: Box::new(payload),
    }
}

/// Percent-encodes a query value as the SDK does.
pub fn enc(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC).to_string()
}

// The cause is part of the message (the workspace's convention: Display only, no `source`, so
// that `{:#}` and error-chain printers do not print it twice).
impl From<tokio_tungstenite::tungstenite::Error> for Error {
    fn from(e: tokio_tungstenite::tungstenite::Error) -> Error {
        Error::WebSocket(e)
    }
}
