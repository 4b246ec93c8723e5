//! What the client sends: WebSocket messages, decoded into twilsock packets and dispatched.
use bytes::Bytes;
use serde_json::Value;
use tokio::time::Instant;

use super::super::backend::{Backend, EndReason, SessionObservation};
use super::super::codec::{self, DecodeError, Limits};
use super::super::websocket::FrameError;
use super::packets::{self, CloseCode};
use super::socket::{Message, ReadError};
use super::writer::WriterCommand;
use super::{Closing, Flow, Session};

impl<B: Backend> Session<B> {
    /// One read from the socket: a message, a read error, or the end of the stream. Any message
    /// proves the peer alive, so it also ends the wait for a pong (`pong_due`).
    pub(super) fn on_read(&mut self, read: Option<Result<Message, ReadError>>, pong_due: &mut Option<Instant>) -> Flow {
        match read {
            None => {
                tracing::debug!("client went away");
                Flow::Close(Closing::Abrupt, EndReason::ConnectionLost)
            }
            Some(Err(ReadError::Frame(e))) => {
                let code = e.close_code();
                let reason = match e {
                    FrameError::TooBig { .. } => {
                        tracing::info!(session = self.id, error = %e, "message over the size limit: closing with 1009");
                        EndReason::MessageTooBig
                    }
                    FrameError::Protocol(_) | FrameError::NotUtf8 => {
                        tracing::info!(session = self.id, error = %e, code, "WebSocket protocol violation: closing");
                        EndReason::ProtocolError
                    }
                };
                Flow::Close(
                    Closing::Socket {
                        code,
                        reason: e.close_reason(),
                    },
                    reason,
                )
            }
            Some(Err(ReadError::Io(e))) => {
                tracing::debug!(error = %e, "socket read failed");
                Flow::Close(Closing::Abrupt, EndReason::ConnectionLost)
            }
            Some(Ok(msg)) => {
                *pong_due = None;
                self.on_ws_message(msg)
            }
        }
    }

    fn on_ws_message(&mut self, msg: Message) -> Flow {
        match msg {
            // The SDK only sends binary frames; text ones are decoded the same way.
            Message::Data(frame) => self.on_frame(&frame),
            Message::Ping(payload) => {
                // A full writer queue drops this pong; a later ping gets its own (RFC 6455 §5.5.3
                // asks only for the most recent one).
                let _ = self.writer.tell(WriterCommand::Pong(payload));
                Flow::Continue
            }
            Message::Pong => Flow::Continue,
            Message::Close(code) => {
                tracing::debug!(?code, "client closed the socket");
                // The reply echoes the client's code (RFC 6455 §5.5.1), as tungstenite's did.
                Flow::Close(
                    Closing::Socket {
                        code: code.unwrap_or(1000),
                        reason: "",
                    },
                    EndReason::ClientClosed,
                )
            }
        }
    }

    fn on_frame(&mut self, frame: &Bytes) -> Flow {
        crate::frame_tap::Tap(self.id).inbound(frame);
        // The client's acks of our notifications, client_updates and closes: counted, on a
        // path that builds no header map (one ack arrives per delivery).
        if codec::is_reply(frame, &self.config.limits) {
            self.acks += 1;
            return Flow::Continue;
        }
        let packet = match codec::decode_bytes(frame, &self.config.limits) {
            Ok(p) => p,
            Err(err) => return self.on_undecodable(frame, &err),
        };
        // `decode` guarantees both fields.
        let id = packet.id().unwrap_or_default();
        let method = packet.method().unwrap_or_default();
        tracing::trace!(method, id, "packet");
        if method == "reply" {
            // Only unusual but valid acks get here (see `codec::is_reply`).
            self.acks += 1;
            return Flow::Continue;
        }
        if method != "message" {
            // An upstream request is observed with its request line, once parsed.
            self.observe(SessionObservation::PacketIn { method, id, request: None });
        }
        match method {
            "init" => self.on_init(id, &packet),
            "update" => self.on_update(id, &packet),
            "message" => self.on_upstream(id, &packet),
            "put_notification_ctx" | "delete_notification_ctx" => {
                self.send(packets::reply_ok(id));
                Flow::Continue
            }
            // Fire-and-forget; never confirmed as a capability, so a client sending it anyway
            // gets no answer either.
            "telemetry.v1" => Flow::Continue,
            // Counted above.
            "reply" => Flow::Continue,
            "close" => {
                tracing::debug!("client sent close");
                Flow::Close(
                    Closing::Socket {
                        code: 1000,
                        reason: "client closed",
                    },
                    EndReason::ClientClosed,
                )
            }
            other => {
                tracing::debug!(method = other, "unknown method");
                let description = format!("unknown method `{other}`");
                self.send(packets::reply_status(id, 400, "BAD_REQUEST", Some(&description), None));
                Flow::Continue
            }
        }
    }

    /// A frame the codec rejected. If its header can still be read (the problem is the payload),
    /// the packet gets an error reply and the session goes on; a frame without a readable id
    /// cannot be answered, so the session closes with 406 ("server cannot parse protocol").
    /// Client acks are never answered, even broken ones.
    fn on_undecodable(&mut self, frame: &[u8], err: &DecodeError) -> Flow {
        match salvage_header(frame, &self.config.limits) {
            Some((id, method)) if method == "reply" => {
                tracing::debug!(error = %err, "undecodable client reply ignored");
                self.observe(SessionObservation::PacketIn {
                    method: &method,
                    id: &id,
                    request: None,
                });
                Flow::Continue
            }
            Some((id, method)) => {
                tracing::debug!(error = %err, method, "undecodable packet");
                self.observe(SessionObservation::PacketIn {
                    method: &method,
                    id: &id,
                    request: None,
                });
                let (code, status) = match err {
                    DecodeError::PayloadTooLarge { .. } => (413, "PAYLOAD_TOO_LARGE"),
                    _ => (400, "BAD_REQUEST"),
                };
                self.send(packets::reply_status(&id, code, status, Some(&err.to_string()), None));
                Flow::Continue
            }
            None => {
                tracing::debug!(error = %err, "unparseable frame: closing with 406");
                let code = CloseCode::CannotParse;
                Flow::Close(Closing::packet(code.frame(None), code.code()), EndReason::ProtocolError)
            }
        }
    }
}

/// Reads `id` and `method` from a frame the codec rejected, when its header is intact.
fn salvage_header(frame: &[u8], limits: &Limits) -> Option<(String, String)> {
    let rest = frame.strip_prefix(b"TWILSOCK V3.0 ")?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 20 {
        return None;
    }
    let len: usize = std::str::from_utf8(rest.get(..digits)?).ok()?.parse().ok()?;
    if len > limits.max_header_bytes {
        return None;
    }
    let header = rest.get(digits..)?.strip_prefix(b"\r\n")?.get(..len)?;
    let Ok(Value::Object(h)) = serde_json::from_slice::<Value>(header) else {
        return None;
    };
    let field = |name: &str| h.get(name).and_then(Value::as_str).map(str::to_owned);
    Some((field("id")?, field("method")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn salvages_header_of_bad_payload_only() {
        let limits = Limits::default();
        let header = r#"{"method":"message","id":"TM1","payload_size":10}"#;
        let frame = format!("TWILSOCK V3.0 {}\r\n{header}\r\nabc", header.len());
        assert!(codec::decode(frame.as_bytes(), &limits).is_err());
        assert_eq!(
            salvage_header(frame.as_bytes(), &limits),
            Some(("TM1".to_owned(), "message".to_owned()))
        );
        for garbage in [
            &b"hello"[..],
            b"TWILSOCK V3.0 \r\n{}\r\n",
            b"TWILSOCK V3.0 2\r\n{}\r\n",
            b"TWILSOCK V3.0 99\r\n{\"id\":\"x\"}",
            b"TWILSOCK V3.0 11\r\n{\"id\":\"x\"}\r\n",
        ] {
            assert_eq!(salvage_header(garbage, &limits), None, "{garbage:?}");
        }
    }
}
