//! The server side of RFC 6455 framing, as plain functions over bytes: the opening handshake's
//! accept key, frame headers read from the client (always masked) and written to it (never
//! masked), and close frame payloads. No I/O here (the session's `socket` does that), so every
//! rule is testable, and fuzzable, on its own.
//!
//! Why not tungstenite: a session spends most of its life idle, and tungstenite keeps a read
//! buffer, a write buffer (with the capacity of the largest batch it ever wrote) and two waker
//! `Arc`s for every socket, ~4 KB per idle connection. Written from here, a frame goes to the
//! kernel straight from its `Bytes` with its header in a vectored write, and bytes read are kept
//! only while a frame is incomplete.
//!
//! No extension is negotiated (so the RSV bits must be clear) and no sub-protocol.
use base64::Engine as _;
use bytes::{Buf, Bytes, BytesMut};
use sha1::{Digest, Sha1};

/// A continuation frame of a fragmented message.
pub const OP_CONTINUATION: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// The longest frame header: 2 bytes, an 8-byte length and a 4-byte mask.
pub const MAX_HEADER_LEN: usize = 14;
/// The longest header the server writes (no mask).
pub const MAX_SERVER_HEADER_LEN: usize = 10;
/// Control frames carry at most this much payload (RFC 6455 §5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key` (RFC 6455 §4.2.2).
pub fn accept_key(key: &[u8]) -> String {
    const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    let mut sha = Sha1::new();
    sha.update(key);
    sha.update(GUID);
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}

/// A frame header read from the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub fin: bool,
    pub opcode: u8,
    pub mask: [u8; 4],
    /// Bytes of the header itself.
    pub len: usize,
    /// Bytes of payload after it.
    pub payload_len: usize,
}

/// Why the client's bytes are not a WebSocket frame the server accepts. Each names the close
/// code the connection fails with (RFC 6455 §7.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Over the size limit: close 1009.
    #[error("frame payload of {len} bytes is over the limit of {max}")]
    TooBig { len: u64, max: usize },
    /// A protocol violation: close 1002.
    #[error("protocol error: {0}")]
    Protocol(&'static str),
    /// A text message or close reason that is not UTF-8: close 1007.
    #[error("text that is not UTF-8")]
    NotUtf8,
}

impl FrameError {
    /// The close code the connection fails with.
    pub fn close_code(self) -> u16 {
        match self {
            FrameError::TooBig { .. } => 1009,
            FrameError::Protocol(_) => 1002,
            FrameError::NotUtf8 => 1007,
        }
    }

    /// The close frame's reason (static, so a hostile client cannot make it long).
    pub fn close_reason(self) -> &'static str {
        match self {
            FrameError::TooBig { .. } => "message too big",
            FrameError::Protocol(why) => why,
            FrameError::NotUtf8 => "text is not UTF-8",
        }
    }
}

/// Reads a client frame's header from the start of `buf`: `Ok(None)` while `buf` holds less
/// than the whole header. `max_payload` bounds the payload before any of it is read.
pub fn parse_header(buf: &[u8], max_payload: usize) -> Result<Option<Header>, FrameError> {
    let [b0, b1, ..] = *buf else { return Ok(None) };
    let fin = b0 & 0x80 != 0;
    if b0 & 0x70 != 0 {
        return Err(FrameError::Protocol("reserved bits set without an extension"));
    }
    let opcode = b0 & 0x0F;
    if !matches!(opcode, OP_CONTINUATION | OP_TEXT | OP_BINARY | OP_CLOSE | OP_PING | OP_PONG) {
        return Err(FrameError::Protocol("reserved opcode"));
    }
    if b1 & 0x80 == 0 {
        return Err(FrameError::Protocol("client frame not masked"));
    }
    let (payload_len, at) = match b1 & 0x7F {
        126 => {
            let Some(bytes) = buf.get(2..4) else { return Ok(None) };
            (u64::from(u16::from_be_bytes([bytes[0], bytes[1]])), 4)
        }
        127 => {
            let Some(bytes) = buf.get(2..10) else { return Ok(None) };
            let mut be = [0u8; 8];
            be.copy_from_slice(bytes);
            let len = u64::from_be_bytes(be);
            if len >> 63 != 0 {
                return Err(FrameError::Protocol("payload length with its top bit set"));
            }
            (len, 10)
        }
        short => (u64::from(short), 2),
    };
    let control = opcode & 0x8 != 0;
    if control && (!fin || payload_len > MAX_CONTROL_PAYLOAD as u64) {
        return Err(FrameError::Protocol("control frame fragmented or over 125 bytes"));
    }
    let payload_len = match usize::try_from(payload_len) {
        Ok(n) if n <= max_payload => n,
        _ => {
            return Err(FrameError::TooBig {
                len: payload_len,
                max: max_payload,
            });
        }
    };
    let Some(mask) = buf.get(at..at + 4) else { return Ok(None) };
    Ok(Some(Header {
        fin,
        opcode,
        mask: [mask[0], mask[1], mask[2], mask[3]],
        len: at + 4,
        payload_len,
    }))
}

/// Unmasks (or masks: the operation is its own inverse) a payload in place.
pub fn unmask(payload: &mut [u8], mask: [u8; 4]) {
    let word = u32::from_ne_bytes(mask);
    let mut chunks = payload.chunks_exact_mut(4);
    for chunk in &mut chunks {
        let v = u32::from_ne_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]) ^ word;
        chunk.copy_from_slice(&v.to_ne_bytes());
    }
    for (byte, m) in chunks.into_remainder().iter_mut().zip(mask) {
        *byte ^= m;
    }
}

/// Writes the header of an unfragmented server frame (unmasked) into `out`; returns its length.
pub fn write_header(out: &mut [u8; MAX_SERVER_HEADER_LEN], opcode: u8, payload_len: usize) -> usize {
    out[0] = 0x80 | (opcode & 0x0F);
    match payload_len {
        0..=125 => {
            out[1] = payload_len as u8;
            2
        }
        126..=0xFFFF => {
            out[1] = 126;
            out[2..4].copy_from_slice(&(payload_len as u16).to_be_bytes());
            4
        }
        _ => {
            out[1] = 127;
            out[2..10].copy_from_slice(&(payload_len as u64).to_be_bytes());
            10
        }
    }
}

/// A close frame's payload from the client: `Ok(None)` for an empty one (no code).
pub fn parse_close(payload: &[u8]) -> Result<Option<u16>, FrameError> {
    match payload {
        [] => Ok(None),
        [_] => Err(FrameError::Protocol("close payload of one byte")),
        [hi, lo, reason @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            // The codes an endpoint may send (RFC 6455 §7.4, IANA registry); 1005, 1006 and
            // 1015 are never sent on the wire.
            if !matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999) {
                return Err(FrameError::Protocol("close code not allowed on the wire"));
            }
            std::str::from_utf8(reason).map_err(|_| FrameError::NotUtf8)?;
            Ok(Some(code))
        }
    }
}

/// A close frame's payload to send: the code, then the reason cut to fit a control frame (on a
/// character boundary).
pub fn close_payload(code: u16, reason: &str, out: &mut [u8; MAX_CONTROL_PAYLOAD]) -> usize {
    out[..2].copy_from_slice(&code.to_be_bytes());
    let mut end = reason.len().min(MAX_CONTROL_PAYLOAD - 2);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    out[2..2 + end].copy_from_slice(&reason.as_bytes()[..end]);
    2 + end
}

/// A message from the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A text or binary message (text is checked to be UTF-8); twilsock treats both alike.
    Data(Bytes),
    /// A ping: its payload goes back in the pong.
    Ping(Bytes),
    Pong,
    /// A close frame, with its code if it had one.
    Close(Option<u16>),
}

/// Turns the bytes read from a client, in pieces of any size, into its messages: whole frames,
/// unmasked, fragmented messages put together, control frames between fragments handed out as
/// they come. Holds only what is not a whole frame yet: a frame's payload becomes its message's
/// `Bytes` without a copy, and the storage is given up with the last frame that uses it.
#[derive(Debug)]
pub struct Assembler {
    /// Bytes read and not yet handed out: the start of a frame still arriving.
    pending: BytesMut,
    /// A fragmented message being put together: its opcode and its payload so far.
    fragments: Option<(u8, BytesMut)>,
    /// The largest message (and frame) accepted.
    max_message: usize,
}

impl Assembler {
    pub fn new(max_message: usize) -> Assembler {
        Assembler {
            pending: BytesMut::new(),
            fragments: None,
            max_message,
        }
    }

    /// Bytes just read.
    pub fn extend(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
    }

    /// The next whole message, if it has arrived. After an error the connection must fail
    /// (with [`FrameError::close_code`]): what follows is not read.
    pub fn next_message(&mut self) -> Result<Option<Message>, FrameError> {
        loop {
            let Some(header) = parse_header(&self.pending, self.max_message)? else {
                return Ok(None);
            };
            let whole = header.len.saturating_add(header.payload_len);
            if self.pending.len() < whole {
                // Storage grows with the bytes that arrive, never with what a header announces:
                // a 14-byte header must not make the server set aside the size limit.
                return Ok(None);
            }
            let mut payload = self.pending.split_to(whole);
            if self.pending.is_empty() {
                // Give the storage up with the last frame that uses it.
                self.pending = BytesMut::new();
            }
            payload.advance(header.len);
            unmask(&mut payload, header.mask);
            let opcode = header.opcode;
            let message = match opcode {
                OP_PING => Message::Ping(payload.freeze()),
                OP_PONG => Message::Pong,
                OP_CLOSE => Message::Close(parse_close(&payload)?),
                OP_TEXT | OP_BINARY if self.fragments.is_some() => {
                    return Err(FrameError::Protocol("a new message before the fragmented one ended"));
                }
                OP_TEXT | OP_BINARY if !header.fin => {
                    self.fragments = Some((opcode, payload));
                    continue;
                }
                OP_TEXT | OP_BINARY => data(opcode, payload)?,
                OP_CONTINUATION => {
                    let Some((_, so_far)) = self.fragments.as_mut() else {
                        return Err(FrameError::Protocol("a continuation frame without a message to continue"));
                    };
                    let len = so_far.len().saturating_add(payload.len());
                    if len > self.max_message {
                        return Err(FrameError::TooBig {
                            len: len as u64,
                            max: self.max_message,
                        });
                    }
                    so_far.extend_from_slice(&payload);
                    if !header.fin {
                        continue;
                    }
                    match self.fragments.take() {
                        Some((opcode, whole)) => data(opcode, whole)?,
                        None => continue,
                    }
                }
                // `parse_header` accepts no other opcode.
                _ => return Err(FrameError::Protocol("reserved opcode")),
            };
            return Ok(Some(message));
        }
    }

    /// Bytes held: an incomplete frame and a fragmented message's payload so far.
    pub fn held(&self) -> usize {
        self.pending.len() + self.fragments.as_ref().map_or(0, |(_, so_far)| so_far.len())
    }
}

/// A whole text or binary message.
fn data(opcode: u8, payload: BytesMut) -> Result<Message, FrameError> {
    if opcode == OP_TEXT && std::str::from_utf8(&payload).is_err() {
        return Err(FrameError::NotUtf8);
    }
    Ok(Message::Data(payload.freeze()))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// One message as a client sends it: `(opcode, payload, fragment sizes)`.
    fn arb_message() -> impl Strategy<Value = (u8, Vec<u8>, Vec<usize>)> {
        prop_oneof![
            (prop::collection::vec(any::<u8>(), 0..400), prop::collection::vec(0usize..200, 0..4))
                .prop_map(|(payload, cuts)| (OP_BINARY, payload, cuts)),
            ("[a-zé€ ]{0,60}", prop::collection::vec(0usize..50, 0..3)).prop_map(|(text, cuts)| (OP_TEXT, text.into_bytes(), cuts)),
            prop::collection::vec(any::<u8>(), 0..=125).prop_map(|payload| (OP_PING, payload, vec![])),
        ]
    }

    /// The frames of one message, fragmented at `cuts` (data messages only).
    fn frames_of(opcode: u8, payload: &[u8], cuts: &[usize], mask: [u8; 4]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut rest = payload;
        let mut first = true;
        for &cut in cuts {
            let (part, tail) = rest.split_at(cut.min(rest.len()));
            out.extend(client_frame(false, if first { opcode } else { OP_CONTINUATION }, part, mask));
            first = false;
            rest = tail;
        }
        out.extend(client_frame(true, if first { opcode } else { OP_CONTINUATION }, rest, mask));
        out
    }

    #[test]
    fn a_header_announcing_a_large_frame_sets_nothing_aside() {
        let max = 16 << 20;
        let mut assembler = Assembler::new(max);
        let mut head = vec![0x82, 0x80 | 127];
        head.extend_from_slice(&(max as u64).to_be_bytes());
        head.extend_from_slice(&[1, 2, 3, 4]);
        assembler.extend(&head);
        assert_eq!(assembler.next_message(), Ok(None));
        assert!(
            assembler.pending.capacity() < 1024,
            "{} bytes set aside",
            assembler.pending.capacity()
        );
        assembler.extend(&[0; 100]);
        assert_eq!(assembler.next_message(), Ok(None));
        assert!(
            assembler.pending.capacity() < 1024,
            "{} bytes set aside",
            assembler.pending.capacity()
        );
    }

    proptest! {
        #[test]
        fn messages_arrive_whole_however_the_bytes_are_cut(
            messages in prop::collection::vec(arb_message(), 1..8),
            mask in any::<[u8; 4]>(),
            chunk in 1usize..64,
        ) {
            let mut wire = Vec::new();
            let mut expected = Vec::new();
            for (opcode, payload, cuts) in &messages {
                wire.extend(frames_of(*opcode, payload, cuts, mask));
                expected.push(if *opcode == OP_PING {
                    Message::Ping(Bytes::copy_from_slice(payload))
                } else {
                    Message::Data(Bytes::copy_from_slice(payload))
                });
            }
            let mut assembler = Assembler::new(1000);
            let mut got = Vec::new();
            for piece in wire.chunks(chunk) {
                assembler.extend(piece);
                while let Some(message) = assembler.next_message().expect("valid frames") {
                    got.push(message);
                }
            }
            prop_assert_eq!(got, expected);
            prop_assert_eq!(assembler.held(), 0, "nothing left over");
            prop_assert_eq!(assembler.pending.capacity(), 0, "no storage kept between messages");
        }

        #[test]
        fn arbitrary_bytes_fail_cleanly_and_hold_at_most_a_frame(
            bytes in prop::collection::vec(any::<u8>(), 0..2048),
            chunk in 1usize..300,
        ) {
            let max = 256;
            let mut assembler = Assembler::new(max);
            'feed: for piece in bytes.chunks(chunk) {
                assembler.extend(piece);
                loop {
                    match assembler.next_message() {
                        Ok(Some(_)) => {}
                        Ok(None) => break,
                        Err(e) => {
                            prop_assert!(matches!(e.close_code(), 1002 | 1007 | 1009));
                            break 'feed;
                        }
                    }
                }
                // An incomplete frame (header and at most `max` bytes) plus a message so far.
                prop_assert!(assembler.held() <= MAX_HEADER_LEN + chunk + 2 * max, "{}", assembler.held());
            }
        }
    }

    #[test]
    fn the_accept_key_of_the_rfc_example() {
        // RFC 6455 §1.3.
        assert_eq!(accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    fn client_frame(fin: bool, opcode: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
        let mut out = vec![(if fin { 0x80 } else { 0 }) | opcode];
        match payload.len() {
            n @ 0..=125 => out.push(0x80 | n as u8),
            n @ 126..=0xFFFF => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&mask);
        let mut masked = payload.to_vec();
        unmask(&mut masked, mask);
        out.extend_from_slice(&masked);
        out
    }

    #[test]
    fn headers_of_every_length_form_parse_and_unmask() {
        for len in [0usize, 1, 5, 125, 126, 127, 1000, 0xFFFF, 0x10000, 70_000] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            let frame = client_frame(true, OP_BINARY, &payload, [1, 2, 3, 250]);
            let header = parse_header(&frame, 100_000).expect("valid").expect("whole");
            assert_eq!((header.fin, header.opcode, header.payload_len), (true, OP_BINARY, len));
            assert_eq!(header.len + len, frame.len());
            let mut body = frame[header.len..].to_vec();
            unmask(&mut body, header.mask);
            assert_eq!(body, payload);
            // Every strict prefix of the header is incomplete, never an error.
            for cut in 0..header.len {
                assert_eq!(parse_header(&frame[..cut], 100_000), Ok(None), "len {len}, cut {cut}");
            }
        }
    }

    #[test]
    fn protocol_violations_are_named() {
        let unmasked = [0x82, 0x01, b'x'];
        assert_eq!(parse_header(&unmasked, 10), Err(FrameError::Protocol("client frame not masked")));
        let rsv = [0xC2, 0x80, 0, 0, 0, 0];
        assert!(matches!(parse_header(&rsv, 10), Err(FrameError::Protocol(_))));
        let reserved_opcode = [0x83, 0x80, 0, 0, 0, 0];
        assert!(matches!(parse_header(&reserved_opcode, 10), Err(FrameError::Protocol(_))));
        let fragmented_ping = [0x09, 0x80, 0, 0, 0, 0];
        assert!(matches!(parse_header(&fragmented_ping, 10), Err(FrameError::Protocol(_))));
        let long_ping = client_frame(true, OP_PING, &[0; 126], [0; 4]);
        assert!(matches!(parse_header(&long_ping, 1000), Err(FrameError::Protocol(_))));
        let top_bit = [0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert!(matches!(parse_header(&top_bit, 10), Err(FrameError::Protocol(_))));
    }

    #[test]
    fn the_size_limit_applies_before_the_payload_arrives() {
        let frame = client_frame(true, OP_BINARY, &[0; 300], [9; 4]);
        assert_eq!(parse_header(&frame[..8], 299), Err(FrameError::TooBig { len: 300, max: 299 }));
        assert!(parse_header(&frame[..8], 300).expect("at the limit").is_some());
        let huge = [0x82, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];
        assert!(matches!(parse_header(&huge, 1 << 40), Err(FrameError::TooBig { .. })));
        assert_eq!(FrameError::TooBig { len: 1, max: 0 }.close_code(), 1009);
    }

    #[test]
    fn server_headers_pick_the_shortest_length_form() {
        let mut out = [0u8; MAX_SERVER_HEADER_LEN];
        assert_eq!(write_header(&mut out, OP_BINARY, 125), 2);
        assert_eq!(out[..2], [0x82, 125]);
        assert_eq!(write_header(&mut out, OP_PING, 0), 2);
        assert_eq!(out[..2], [0x89, 0]);
        assert_eq!(write_header(&mut out, OP_BINARY, 126), 4);
        assert_eq!(out[..4], [0x82, 126, 0, 126]);
        assert_eq!(write_header(&mut out, OP_BINARY, 0x10000), 10);
        assert_eq!(out[..10], [0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0]);
    }

    #[test]
    fn close_payloads() {
        assert_eq!(parse_close(&[]), Ok(None));
        assert_eq!(parse_close(&[0x03, 0xE8]), Ok(Some(1000)));
        assert_eq!(parse_close(b"\x0f\xa0bye"), Ok(Some(4000)));
        assert!(matches!(parse_close(&[3]), Err(FrameError::Protocol(_))));
        assert!(
            matches!(parse_close(&[0x03, 0xED]), Err(FrameError::Protocol(_))),
            "1005 is never sent"
        );
        assert_eq!(parse_close(&[0x03, 0xE8, 0xFF]), Err(FrameError::NotUtf8));

        let mut out = [0u8; MAX_CONTROL_PAYLOAD];
        let n = close_payload(1001, "server shutting down", &mut out);
        assert_eq!(&out[..n], b"\x03\xe9server shutting down");
        let long = "é".repeat(100);
        let n = close_payload(1000, &long, &mut out);
        assert!(n <= MAX_CONTROL_PAYLOAD);
        assert!(std::str::from_utf8(&out[2..n]).is_ok(), "cut on a character boundary");
    }
}
