//! The lean subscribers of `bench fanout` (`--generator lean`, the default): just enough of an
//! SDK connection to reach the subscribed state, then a read loop that costs the load generator
//! as little per push as possible, so that on a 2-core machine the server, not the generator,
//! sets the latencies.
//!
//! Per connection: a WebSocket handshake, the SDK's `init`, one `POST /v4/Subscriptions`
//! upstream request for the objects the full client found (its `subscription_established` is
//! awaited), then frames are read straight off the socket. Every server packet with an id is
//! acked as the SDK acks it (a twilsock `reply`), all acks caused by one read go out in one
//! write, WebSocket pings are answered, and a push's header is read for its method and id only.
//! The packets it sends are the client's own (`rehearsal_client::codec`), so the server sees
//! what it sees from `rehearsal-client` and from the SDK.
//!
//! Subscribers run on current-thread runtimes, each on its own OS thread ([`SubscriberThread`],
//! `--subscriber-threads`, default 2): a push wakes nothing on another thread, and the
//! generator's CPU is a few threads the operating system schedules beside the server's.
use std::borrow::Cow;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use bytes::{Buf, BytesMut};
use rehearsal_client::codec;
use rehearsal_mock_server::twilsock::websocket;
use serde::Deserialize;
use serde_json::{Map, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest frame a subscriber accepts (a push is a few hundred bytes; a replayed history in a
/// `subscription_established` is the largest thing the server sends).
const MAX_FRAME: usize = 16 * 1024 * 1024;
/// Bytes read per read call at most (one read usually holds every push that arrived since the
/// last one).
const READ_CHUNK: usize = 16 * 1024;
/// The opening handshake's answer must fit in this.
const MAX_HANDSHAKE: usize = 16 * 1024;
/// The opening handshake's key (RFC 6455 §1.3's example: any 16 bytes in base64 will do, and
/// the answer's `Sec-WebSocket-Accept` is checked against it).
const HANDSHAKE_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
/// The correlation id of the subscription request (one per connection).
const CORRELATION: u64 = 1;

/// One twilsock packet as the lean subscriber sees it: the header's method and id, the raw
/// header (parsed further only during setup) and the payload.
pub(super) struct Packet<'a> {
    pub method: &'a str,
    pub id: Option<&'a str>,
    pub header: &'a [u8],
    pub payload: &'a [u8],
}

#[derive(Deserialize)]
struct HeaderLite<'a> {
    #[serde(borrow)]
    method: Cow<'a, str>,
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    payload_size: usize,
}

/// Splits a twilsock frame into its header, read for the method, id and payload size only, the
/// raw header and the payload.
fn split_packet(frame: &[u8]) -> anyhow::Result<(HeaderLite<'_>, &[u8], &[u8])> {
    let (header, rest) = codec::split(frame)?;
    let h: HeaderLite = serde_json::from_slice(header).context("twilsock header")?;
    let payload = rest
        .get(..h.payload_size)
        .context("twilsock packet shorter than its payload_size")?;
    Ok((h, header, payload))
}

/// Appends one masked client frame (FIN set) to `out`: the server's header with the mask bit,
/// the key, the payload masked (RFC 6455 §5.3; masking is its own inverse, so the server's
/// `unmask` masks).
fn push_frame(out: &mut Vec<u8>, opcode: u8, payload: &[u8], mask: [u8; 4]) {
    let mut head = [0; websocket::MAX_SERVER_HEADER_LEN];
    let n = websocket::write_header(&mut head, opcode, payload.len());
    head[1] |= 0x80;
    out.extend_from_slice(&head[..n]);
    out.extend_from_slice(&mask);
    let start = out.len();
    out.extend_from_slice(payload);
    websocket::unmask(&mut out[start..], mask);
}

/// A server frame's opcode and where its payload is in the buffer, if the buffer holds it whole.
fn frame_at(buf: &[u8]) -> anyhow::Result<Option<(u8, usize, usize)>> {
    let [b0, b1, ..] = *buf else { return Ok(None) };
    ensure!(b0 & 0x80 != 0 && b0 & 0x70 == 0, "fragmented or extended WebSocket frame");
    ensure!(b1 & 0x80 == 0, "masked frame from the server");
    let (head, len) = match b1 & 0x7f {
        126 => match buf.get(2..4) {
            Some(b) => (4, u16::from_be_bytes([b[0], b[1]]) as usize),
            None => return Ok(None),
        },
        127 => match buf.get(2..10) {
            Some(b) => (10, usize::try_from(u64::from_be_bytes(b.try_into()?)).unwrap_or(usize::MAX)),
            None => return Ok(None),
        },
        n => (2, n as usize),
    };
    ensure!(len <= MAX_FRAME, "frame of {len} bytes from the server");
    Ok((buf.len() >= head + len).then_some((b0 & 0x0f, head, len)))
}

/// One subscribed connection.
pub(super) struct Lean {
    stream: TcpStream,
    buf: BytesMut,
    out: Vec<u8>,
    /// The ack being written (reused: acking allocates nothing).
    packet: Vec<u8>,
    mask: [u8; 4],
    ack: bool,
}

impl Lean {
    /// Connects, initialises with `token` and subscribes to `requests` (the `requests` of
    /// `POST /v4/Subscriptions`); returns once the subscription is established. Pushes that
    /// arrive before that go to `on_push` too.
    pub async fn subscribe(
        url: &str,
        token: &str,
        requests: Value,
        ack: bool,
        wait: Duration,
        on_push: &mut impl FnMut(&[u8], Instant),
    ) -> anyhow::Result<Lean> {
        let (authority, path) = url
            .strip_prefix("ws://")
            .and_then(|r| r.split_once('/'))
            .context("the lean subscriber speaks ws:// only")?;
        let setup = async {
            let stream = TcpStream::connect(authority).await.context("connect")?;
            // TCP_NODELAY, as the SDK's `ws` package sets it.
            stream.set_nodelay(true)?;
            let mut lean = Lean {
                stream,
                buf: BytesMut::new(),
                out: Vec::new(),
                packet: Vec::new(),
                mask: rand::random(),
                ack,
            };
            lean.handshake(authority, path).await?;
            lean.send(&codec::init("TMinit-0", token)).await?;
            let mut init = None;
            while init.is_none() {
                lean.pump(&mut |p, _| {
                    if p.method == "reply" && p.id == Some("TMinit-0") {
                        init = Some(serde_json::from_slice::<Value>(p.header).unwrap_or_default());
                    }
                })
                .await?;
            }
            let init = init.unwrap_or_default();
            ensure!(init["status"]["code"] == 200, "init refused: {init}");

            let body = rehearsal_client::sync::subscriptions_body("establish", CORRELATION, requests);
            let body = serde_json::to_vec(&body)?;
            lean.send(&codec::upstream_request(
                "TMsub-1",
                "POST",
                "/v4/Subscriptions",
                Map::new(),
                "application/json",
                &body,
            ))
            .await?;
            let (mut replied, mut control) = (None, None::<Value>);
            while replied.is_none() || control.is_none() {
                lean.pump(&mut |p, received| {
                    if p.method == "reply" && p.id == Some("TMsub-1") {
                        replied = Some(serde_json::from_slice::<Value>(p.header).unwrap_or_default());
                    } else if p.method == "notification" {
                        // The control event is a push like any other to the benchmark (it counts
                        // frames); here it also ends the setup.
                        if let Ok(v) = serde_json::from_slice::<Value>(p.payload)
                            && v["correlation_id"] == CORRELATION
                            && v["event_type"].as_str().is_some_and(|t| t.starts_with("subscription_"))
                        {
                            control = Some(v);
                        }
                        on_push(p.payload, received);
                    }
                })
                .await?;
            }
            let (replied, control) = (replied.unwrap_or_default(), control.unwrap_or_default());
            let status = replied["http_status"]["code"].as_u64().unwrap_or(0);
            ensure!((200..300).contains(&status), "POST /v4/Subscriptions answered {replied}");
            ensure!(
                control["event_type"] == "subscription_established",
                "subscription not established: {control}"
            );
            Ok(lean)
        };
        tokio::time::timeout(wait, setup)
            .await
            .map_err(|_| anyhow::anyhow!("no subscription within {wait:?}"))?
    }

    /// Reads pushes until the server closes or breaks the protocol (the benchmark ends it by
    /// dropping the task).
    pub async fn run(mut self, mut on_push: impl FnMut(&[u8], Instant)) -> anyhow::Result<()> {
        loop {
            self.pump(&mut |p, received| {
                if p.method == "notification" {
                    on_push(p.payload, received)
                }
            })
            .await?;
        }
    }

    async fn handshake(&mut self, authority: &str, path: &str) -> anyhow::Result<()> {
        let request = format!(
            "GET /{path} HTTP/1.1\r\nHost: {authority}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {HANDSHAKE_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        self.stream.write_all(request.as_bytes()).await?;
        let end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            ensure!(self.buf.len() < MAX_HANDSHAKE, "handshake answer over {MAX_HANDSHAKE} bytes");
            self.buf.reserve(READ_CHUNK);
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                bail!("closed during the handshake");
            }
        };
        let answer = String::from_utf8_lossy(&self.buf[..end]).into_owned();
        ensure!(answer.starts_with("HTTP/1.1 101"), "handshake refused: {answer}");
        let accept = websocket::accept_key(HANDSHAKE_KEY.as_bytes());
        ensure!(
            answer.lines().any(|l| l
                .split_once(':')
                .is_some_and(|(k, v)| k.eq_ignore_ascii_case("sec-websocket-accept") && v.trim() == accept)),
            "handshake answer without Sec-WebSocket-Accept: {accept}: {answer}"
        );
        self.buf.advance(end);
        Ok(())
    }

    /// Sends one twilsock packet in a masked binary frame.
    async fn send(&mut self, packet: &[u8]) -> anyhow::Result<()> {
        self.out.clear();
        push_frame(&mut self.out, websocket::OP_BINARY, packet, self.mask);
        self.stream.write_all(&self.out).await?;
        Ok(())
    }

    /// Handles every whole frame already read, else reads once and handles what arrived:
    /// `handle` sees each twilsock packet with the time its read returned; acks and pongs go
    /// out together afterwards in one write.
    async fn pump(&mut self, handle: &mut impl FnMut(Packet<'_>, Instant)) -> anyhow::Result<()> {
        if frame_at(&self.buf)?.is_none() {
            self.buf.reserve(READ_CHUNK);
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                bail!("closed by the server");
            }
        }
        let received = Instant::now();
        self.out.clear();
        while let Some((opcode, head, len)) = frame_at(&self.buf)? {
            let payload = &self.buf[head..head + len];
            match opcode {
                websocket::OP_BINARY | websocket::OP_TEXT => {
                    let (h, header, body) = split_packet(payload)?;
                    if self.ack
                        && h.method != "reply"
                        && let Some(id) = &h.id
                    {
                        self.packet.clear();
                        codec::ack_into(&mut self.packet, id);
                        push_frame(&mut self.out, websocket::OP_BINARY, &self.packet, self.mask);
                    }
                    handle(
                        Packet {
                            method: &h.method,
                            id: h.id.as_deref(),
                            header,
                            payload: body,
                        },
                        received,
                    );
                }
                websocket::OP_PING => push_frame(&mut self.out, websocket::OP_PONG, payload, self.mask),
                websocket::OP_PONG => {}
                websocket::OP_CLOSE => {
                    let code = payload.get(..2).map(|c| u16::from_be_bytes([c[0], c[1]]));
                    bail!("closed by the server (WebSocket close {code:?})");
                }
                other => bail!("unexpected WebSocket opcode {other}"),
            }
            self.buf.advance(head + len);
        }
        if !self.out.is_empty() {
            self.stream.write_all(&self.out).await?;
        }
        Ok(())
    }
}

/// A current-thread runtime on its own OS thread, for the lean subscribers; dropping it ends
/// them (their sockets close) and joins the thread.
pub(super) struct SubscriberThread {
    handle: tokio::runtime::Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SubscriberThread {
    pub fn start() -> anyhow::Result<SubscriberThread> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("the subscribers' runtime")?;
        let handle = rt.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("bench-subscribers".into())
            .spawn(move || {
                let _ = rt.block_on(stopped);
            })
            .context("the subscribers' thread")?;
        Ok(SubscriberThread {
            handle,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    pub fn handle(&self) -> &tokio::runtime::Handle {
        &self.handle
    }
}

impl Drop for SubscriberThread {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_packet_splits_into_method_id_and_payload() {
        let Value::Object(h) = serde_json::json!({"method": "notification", "id": "TM\"1"}) else {
            unreachable!()
        };
        let f = codec::encode(&h, br#"{"a":1}"#);
        let (h, header, payload) = split_packet(&f).unwrap();
        assert_eq!((h.method.as_ref(), h.id.as_deref()), ("notification", Some("TM\"1")));
        assert!(header.starts_with(b"{\"method\""));
        assert_eq!(payload, br#"{"a":1}"#);
        assert!(split_packet(&f[..f.len() - 1]).is_err(), "a short payload is an error");
        assert!(split_packet(b"TWILSOCK V3.0 99\r\n{}").is_err());
    }

    #[test]
    fn frames_are_found_whole_or_not_at_all() {
        let mut f = vec![0x82, 126, 0x01, 0x00];
        f.extend(std::iter::repeat_n(7u8, 256));
        assert_eq!(frame_at(&f).unwrap(), Some((2, 4, 256)));
        assert_eq!(frame_at(&f[..100]).unwrap(), None);
        assert_eq!(frame_at(&f[..3]).unwrap(), None);
        assert!(frame_at(&[0x02, 0x00]).is_err(), "a fragment is refused");
        assert!(frame_at(&[0x82, 0x80]).is_err(), "a masked server frame is refused");
        assert!(frame_at(&[0x82, 127, 0, 0, 0, 0, 0x10, 0, 0, 0]).is_err(), "over the frame limit");
    }

    #[test]
    fn a_masked_frame_unmasks_to_its_payload() {
        let mask = [1, 2, 3, 4];
        for len in [5usize, 200, 70_000] {
            let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut out = Vec::new();
            push_frame(&mut out, 0x2, &payload, mask);
            let head = match len {
                0..=125 => 2,
                126..=0xffff => 4,
                _ => 10,
            };
            assert_eq!(out[0], 0x82);
            assert_eq!(out[1] & 0x80, 0x80, "masked");
            assert_eq!(&out[head..head + 4], &mask);
            let unmasked: Vec<u8> = out[head + 4..].iter().enumerate().map(|(i, b)| b ^ mask[i & 3]).collect();
            assert_eq!(unmasked, payload);
        }
    }
}
