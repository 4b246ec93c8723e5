//! A raw twilsock client for tests: one WebSocket, packets sent and read one at a time, and a
//! timeout on every wait (a hung server fails the test instead of stalling it).
//!
//! It frames with the server crate's codec and decodes what the server sends with the codec's
//! default limits, so every frame the server writes is also checked to be one it would accept.
//! Nothing is answered behind the test's back except WebSocket pings (tungstenite answers them
//! while reading): notifications are acked only when the test acks them, so tests see exactly
//! the packets in the order the server wrote them. For frames the client itself would refuse to
//! send (a head declaring more bytes than follow), [`Client::write_raw`] writes bytes under the
//! WebSocket framing.

use std::io;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{FutureExt, SinkExt, StreamExt};
use rehearsal_mock_server::twilsock::codec::{self, DecodeError, Limits};
use serde_json::{Map, Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub use rehearsal_mock_server::twilsock::Packet;
pub use tokio_tungstenite::tungstenite::{Error as WsError, Message};

/// The default bound of every wait; [`Client::with_wait`] changes it per client.
pub const WAIT: Duration = Duration::from_secs(10);

/// The host the SDK addresses Conversations' client API (`/Client/…`) at.
pub const AIM_HOST: &str = "aim.us1.twilio.com";
/// The host the SDK addresses Sync (`/v3/…`, `/v4/Subscriptions`) at.
pub const CDS_HOST: &str = "cds.us1.twilio.com";

/// The WebSocket as tungstenite gives it.
pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How a socket ended, as the client saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// A WebSocket close frame with this code (1005 for a close frame without one).
    CloseFrame(u16),
    /// The connection ended without a close handshake (end of stream or reset).
    Dropped,
}

/// One twilsock frame: `header` (a JSON object) and `payload`, as the server's codec frames it
/// (`payload_size` written from the payload).
#[track_caller]
pub fn frame(header: Value, payload: &[u8]) -> Bytes {
    let Value::Object(header) = header else {
        panic!("a twilsock header is a JSON object, got {header}")
    };
    codec::encode(header, payload)
}

/// Decodes a frame the server sent, within the codec's default limits.
pub fn decode(frame: &Bytes) -> Result<Packet, DecodeError> {
    codec::decode_bytes(frame, &Limits::default())
}

/// The `init` header the JS SDK sends (capabilities, metadata, registrations), with `id` and
/// `token`.
pub fn sdk_init(id: &str, token: &str) -> Value {
    json!({
        "method": "init", "id": id, "token": token, "continuation_token": null,
        "capabilities": ["client_update", "offline_storage", "telemetry.v1"],
        "metadata": {"ver": "1.0.2", "env": "Node.js", "type": "conversations", "sdk": "JS", "sdkv": "3.0.1"},
        "registrations": [{"product": "ip_messaging", "type": "ers", "notification_protocol_version": 0,
                           "message_types": ["twilio.sync.event"]}],
        "tweaks": null,
    })
}

/// The header of an upstream request (`message`) as the SDK sends it: `target` is a path or an
/// absolute URL (only its path is sent; the host is Conversations' for `/Client/…`, Sync's
/// otherwise), `params` are percent-encoded into `http_request.params`, and the body is JSON.
pub fn request_header(id: &str, method: &str, target: &str, params: &[(&str, &str)]) -> Value {
    let path = target
        .split_once("://")
        .map_or(target, |(_, rest)| &rest[rest.find('/').unwrap_or(rest.len())..]);
    let host = if path.starts_with("/Client/") { AIM_HOST } else { CDS_HOST };
    let params: Map<String, Value> = params.iter().map(|(k, v)| ((*k).to_owned(), Value::String(enc(v)))).collect();
    json!({
        "method": "message", "id": id, "active_grant": "ip_messaging", "payload_type": "application/json",
        "http_request": {"host": host, "path": path, "method": method, "params": params,
                         "headers": {"Content-Type": "application/json"}},
    })
}

/// Percent-encodes a parameter value (every byte but ASCII letters and digits), as the lean
/// client and the SDK's query encoding do.
pub fn enc(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// One twilsock connection. Methods that return plain values panic on anything unexpected
/// (with what came instead); the `try_` ones report failures, for tests where a failure is an
/// outcome (proptest cases, a client that reconnects).
pub struct Client {
    ws: Socket,
    wait: Duration,
}

impl Client {
    /// Opens the WebSocket without sending anything.
    #[track_caller]
    pub fn connect(url: &str) -> impl Future<Output = Client> + '_ {
        let caller = std::panic::Location::caller();
        async move {
            Client::try_connect(url)
                .await
                .unwrap_or_else(|e| panic!("{caller}: connecting to {url}: {e}"))
        }
    }

    /// Opens the WebSocket; an error if the handshake fails or takes longer than [`WAIT`].
    pub async fn try_connect(url: &str) -> Result<Client, WsError> {
        let (ws, _) = timeout(WAIT, tokio_tungstenite::connect_async(url))
            .await
            .map_err(|_| WsError::Io(io::Error::new(io::ErrorKind::TimedOut, "no handshake in time")))??;
        Ok(Client { ws, wait: WAIT })
    }

    /// A client on a WebSocket the test opened itself (a handshake with headers of its own).
    pub fn from_socket(ws: Socket) -> Client {
        Client { ws, wait: WAIT }
    }

    /// The same client with every later wait bounded by `wait`.
    pub fn with_wait(mut self, wait: Duration) -> Client {
        self.wait = wait;
        self
    }

    /// The bound of every wait.
    pub fn wait(&self) -> Duration {
        self.wait
    }

    /// The WebSocket itself, for checks below twilsock (pings).
    pub fn socket(&mut self) -> &mut Socket {
        &mut self.ws
    }

    // -----------------------------------------------------------------------------------------
    // Sending
    // -----------------------------------------------------------------------------------------

    /// Sends one WebSocket message as given (text frames, bytes that are no twilsock frame).
    pub async fn send_message(&mut self, msg: Message) {
        timeout(self.wait, self.ws.send(msg)).await.expect("sent in time").expect("sent");
    }

    /// Sends one WebSocket message; an error if the socket is closed or the send takes too long.
    pub async fn try_send_message(&mut self, msg: Message) -> Result<(), WsError> {
        timeout(self.wait, self.ws.send(msg))
            .await
            .map_err(|_| WsError::Io(io::Error::new(io::ErrorKind::TimedOut, "not sent in time")))?
    }

    /// Sends a twilsock packet: `header` (a JSON object) and `payload`.
    pub async fn send(&mut self, header: Value, payload: &[u8]) {
        self.send_message(Message::Binary(frame(header, payload))).await;
    }

    /// Sends a twilsock packet; an error if the socket is closed.
    pub async fn try_send(&mut self, header: Value, payload: &[u8]) -> Result<(), WsError> {
        self.try_send_message(Message::Binary(frame(header, payload))).await
    }

    /// Writes `bytes` straight to the TCP stream, under the WebSocket framing: for frames the
    /// client would not send (a head declaring more than follows). Whole messages sent before
    /// are flushed, so the bytes start a new frame.
    pub async fn write_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        let stream = match self.ws.get_mut() {
            MaybeTlsStream::Plain(s) => s,
            _ => return Err(io::Error::other("not a plain TCP stream")),
        };
        timeout(self.wait, stream.write_all(bytes))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "not written in time"))?
    }

    /// Starts the close handshake: a close frame with `(code, reason)`, or with no code at all.
    pub async fn close(&mut self, code: Option<(u16, &str)>) {
        let frame = code.map(|(code, reason)| CloseFrame {
            code: code.into(),
            reason: reason.to_owned().into(),
        });
        timeout(self.wait, self.ws.close(frame))
            .await
            .expect("closed in time")
            .expect("close sent");
    }

    /// Acks a server packet as the SDK does.
    pub async fn ack(&mut self, id: &str) {
        self.send(
            json!({"method": "reply", "id": id, "payload_type": "application/json", "status": {"code": 200, "status": "OK"}}),
            b"",
        )
        .await;
    }

    /// Sends an upstream request as the SDK does ([`request_header`]), `body` as JSON; its reply
    /// is not waited for.
    pub async fn send_request(&mut self, id: &str, method: &str, target: &str, params: &[(&str, &str)], body: Option<&Value>) {
        let payload = body.map(|b| serde_json::to_vec(b).expect("a JSON body")).unwrap_or_default();
        self.send(request_header(id, method, target, params), &payload).await;
    }

    /// Sends the SDK's `init` with `token` ([`sdk_init`]); returns the reply, which must come next.
    pub async fn init(&mut self, id: &str, token: &str) -> Packet {
        self.send(sdk_init(id, token), b"").await;
        self.reply_to(id).await
    }

    /// Sends `update` with `token`; returns the reply, which must come next.
    pub async fn update(&mut self, id: &str, token: &str) -> Packet {
        self.send(json!({"method": "update", "id": id, "token": token}), b"").await;
        self.reply_to(id).await
    }

    /// An upstream `GET` of `path`; returns the reply, which must come next.
    pub async fn get(&mut self, id: &str, path: &str) -> Packet {
        self.send_request(id, "GET", path, &[], None).await;
        self.reply_to(id).await
    }

    /// A harmless request (`put_notification_ctx`) whose reply, which must come next and be a
    /// 200, proves that everything sent before it was handled and everything the server queued
    /// before it was read.
    pub async fn probe(&mut self, id: &str) {
        self.send(
            json!({"method": "put_notification_ctx", "id": id, "notification_ctx_id": "ctx"}),
            b"{}",
        )
        .await;
        let p = self.reply_to(id).await;
        assert_eq!(p.header["status"], json!({"code": 200, "status": "OK"}), "{p:?}");
    }

    // -----------------------------------------------------------------------------------------
    // Receiving
    // -----------------------------------------------------------------------------------------

    /// The next WebSocket message as tungstenite reads it, with no timeout (for `select!` loops
    /// and for checks that nothing arrives within a time of the test's choosing).
    pub async fn next_message(&mut self) -> Option<Result<Message, WsError>> {
        self.ws.next().await
    }

    /// The next twilsock packet (pings skipped); panics on anything else.
    pub async fn recv(&mut self) -> Packet {
        let next = async {
            loop {
                match self.ws.next().await {
                    Some(Ok(Message::Binary(b))) => return decode(&b).expect("server frames decode"),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    other => panic!("expected a twilsock packet, got {other:?}"),
                }
            }
        };
        timeout(self.wait, next).await.expect("a packet in time")
    }

    /// The next twilsock packet, or `None` if the socket ended (closed or reset) first.
    pub async fn try_recv(&mut self) -> Option<Packet> {
        let next = async {
            loop {
                match self.ws.next().await {
                    Some(Ok(Message::Binary(b))) => return Some(decode(&b).expect("server frames decode")),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    Some(Ok(Message::Close(_)) | Err(_)) | None => return None,
                    Some(Ok(other)) => panic!("expected a twilsock packet, got {other:?}"),
                }
            }
        };
        timeout(self.wait, next).await.expect("a packet or the end of the socket in time")
    }

    /// The next packet, which must be the reply to `id`.
    pub async fn reply_to(&mut self, id: &str) -> Packet {
        let p = self.recv().await;
        assert_eq!(p.method(), Some("reply"), "expected the reply to {id}, got {p:?}");
        assert_eq!(p.id(), Some(id), "expected the reply to {id}, got {p:?}");
        p
    }

    /// Skips packets until one with `method`; panics if the socket ends first.
    pub async fn until(&mut self, method: &str) -> Packet {
        loop {
            let p = self
                .try_recv()
                .await
                .unwrap_or_else(|| panic!("the socket ended before a {method}"));
            if p.method() == Some(method) {
                return p;
            }
        }
    }

    /// Waits until the socket ends; packets on the way are ignored.
    pub async fn ended(&mut self) {
        while self.try_recv().await.is_some() {}
    }

    /// Reads everything up to the end of the socket: the twilsock `close` packets among the
    /// packets, and how the socket ended.
    pub async fn closes_until_end(&mut self) -> (Vec<Packet>, Ending) {
        let mut closes = Vec::new();
        let end = async {
            loop {
                match self.ws.next().await {
                    Some(Ok(Message::Binary(b))) => {
                        let p = decode(&b).expect("server frames decode");
                        if p.method() == Some("close") {
                            closes.push(p);
                        }
                    }
                    Some(Ok(Message::Close(frame))) => return close_code(frame.as_ref()),
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => return Ending::Dropped,
                }
            }
        };
        let ending = timeout(self.wait, end).await.expect("the socket ended in time");
        (closes, ending)
    }

    /// Reads until the socket ends; no twilsock packet may arrive meanwhile.
    pub async fn ending(&mut self) -> Ending {
        let end = async {
            loop {
                match self.ws.next().await {
                    Some(Ok(Message::Close(frame))) => return close_code(frame.as_ref()),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    Some(Ok(other)) => panic!("expected the socket to end, got {other:?}"),
                    Some(Err(_)) | None => return Ending::Dropped,
                }
            }
        };
        timeout(self.wait, end).await.expect("the socket ended in time")
    }

    /// Reads until the socket ends (close frame, reset or end of stream); returns how many
    /// twilsock packets came before.
    pub async fn packets_until_end(&mut self) -> usize {
        let mut n = 0;
        let end = async {
            loop {
                match self.ws.next().await {
                    Some(Ok(Message::Binary(_))) => n += 1,
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    Some(Ok(_) | Err(_)) | None => return,
                }
            }
        };
        timeout(self.wait, end).await.expect("the socket ended in time");
        n
    }

    /// How many twilsock packets can be read right now without waiting (pings skipped).
    pub fn packets_ready(&mut self) -> usize {
        let mut n = 0;
        while let Some(msg) = self.ws.next().now_or_never() {
            match msg {
                Some(Ok(Message::Binary(_))) => n += 1,
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                other => panic!("expected packets or nothing, got {other:?}"),
            }
        }
        n
    }
}

fn close_code(frame: Option<&CloseFrame>) -> Ending {
    Ending::CloseFrame(frame.map_or(1005, |f| u16::from(f.code)))
}

/// The head of a masked client frame (FIN, `opcode`) declaring `len` payload bytes, with
/// `mask`; for [`Client::write_raw`].
pub fn frame_head(opcode: u8, len: u64, mask: [u8; 4]) -> Vec<u8> {
    let mut head = vec![0x80 | opcode];
    if len < 126 {
        head.push(0x80 | len as u8);
    } else if let Ok(len) = u16::try_from(len) {
        head.push(0x80 | 126);
        head.extend_from_slice(&len.to_be_bytes());
    } else {
        head.push(0x80 | 127);
        head.extend_from_slice(&len.to_be_bytes());
    }
    head.extend_from_slice(&mask);
    head
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_decode_to_their_header_and_payload() {
        let f = frame(json!({"method": "reply", "id": "TM1"}), br#"{"a":1}"#);
        let p = decode(&f).expect("decodes");
        assert_eq!((p.method(), p.id()), (Some("reply"), Some("TM1")));
        assert_eq!(p.payload_json::<Value>().expect("JSON"), json!({"a": 1}));
    }

    #[test]
    fn requests_are_addressed_as_the_sdk_addresses_them() {
        let h = request_header("TM1", "GET", "http://127.0.0.1:1/v3/Lists/ES1/Items", &[("From", "a b")]);
        assert_eq!(h["http_request"]["host"], CDS_HOST);
        assert_eq!(h["http_request"]["path"], "/v3/Lists/ES1/Items");
        assert_eq!(h["http_request"]["params"], json!({"From": "a%20b"}));
        let h = request_header("TM2", "GET", "/Client/v2/Configuration", &[]);
        assert_eq!(h["http_request"]["host"], AIM_HOST);
    }

    #[test]
    fn frame_heads_use_the_shortest_length_encoding() {
        let mask = [1, 2, 3, 4];
        assert_eq!(frame_head(2, 125, mask), [0x82, 0x80 | 125, 1, 2, 3, 4]);
        assert_eq!(frame_head(2, 126, mask), [0x82, 0x80 | 126, 0, 126, 1, 2, 3, 4]);
        assert_eq!(frame_head(2, 65_535, mask), [0x82, 0x80 | 126, 0xff, 0xff, 1, 2, 3, 4]);
        assert_eq!(frame_head(2, 65_536, mask), [0x82, 0x80 | 127, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4]);
    }
}
