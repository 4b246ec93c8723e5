//! Frame taps: the most recent twilsock frames in and out of a session, kept only for the
//! sessions someone asked to watch (the inspector's frame view, `PUT
//! /_rehearsal/v1/tenants/{AC}/connections/{id}/tap`).
//!
//! **Why on demand.** An always-on ring per session would cost every idle connection memory and
//! every frame a copy and a lock, for a view almost nobody opens; one ring per tenant would put
//! one lock on the path of every frame of every session of the tenant (fan-out writes thousands
//! per second). So a session costs nothing here until it is tapped: the twilsock session calls
//! [`Tap::inbound`] / [`Tap::outbound`] (a `Copy` of its id, no allocation), which return after
//! one relaxed atomic load while no tap is on anywhere in the process. A ring is allocated when
//! the control plane turns the tap on for a live session, and freed when it turns it off, when
//! the tenant is reset or deleted, or when a newer tap evicts it.
//!
//! **Bounds.** At most [`MAX_TAPS`] rings in the process (turning on one more evicts the oldest,
//! whose followers see the stream end); each ring keeps at most [`RING_FRAMES`] frames and
//! [`RING_BYTES`] bytes (oldest dropped first, counted); each frame keeps at most
//! [`MAX_FRAME_BYTES`] of its bytes, the rest only counted, and its view says how many were
//! clipped. Worst case: `MAX_TAPS × RING_BYTES` = 8 MiB.
//!
//! **Scope.** The registry is one per process because session ids are (twilsock's
//! `NEXT_SESSION_ID`), so the hook needs no plumbing through the session's constructors. Each
//! ring records the account and the `owner` (the control plane that turned it on; one per
//! server), and [`Taps::ring`] hands it only to that same owner for that same account: a
//! tenant's frames are never visible in another tenant's scope, nor through another server in
//! the same test process.
//!
//! A leaf like the journal: it imports nothing of the crate but `clock`.
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use serde::Serialize;
use serde_json::{Map, Value};
use tokio::sync::watch;

use crate::clock::{Clock, Millis};

/// Most sessions tapped at once in the process.
pub const MAX_TAPS: usize = 32;
/// Most frames one ring keeps.
pub const RING_FRAMES: usize = 500;
/// Most frame bytes one ring keeps (after clipping).
pub const RING_BYTES: usize = 256 * 1024;
/// Most bytes of one frame a ring keeps; the rest is counted and shown as clipped.
pub const MAX_FRAME_BYTES: usize = 16 * 1024;

/// Which way a frame went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// From the client.
    In,
    /// To the client.
    Out,
}

/// The hook a twilsock session holds: its id. Free while its session is not tapped.
#[derive(Debug, Clone, Copy)]
pub struct Tap(pub u64);

impl Tap {
    /// A frame the session read from its client (before decoding: broken frames show too).
    #[inline]
    pub fn inbound(self, frame: &[u8]) {
        if ACTIVE.load(Ordering::Relaxed) != 0 {
            TAPS.record(self.0, Direction::In, frame);
        }
    }

    /// A frame the session handed to its socket.
    #[inline]
    pub fn outbound(self, frame: &[u8]) {
        if ACTIVE.load(Ordering::Relaxed) != 0 {
            TAPS.record(self.0, Direction::Out, frame);
        }
    }
}

/// Number of rings registered: the hook's fast path.
static ACTIVE: AtomicUsize = AtomicUsize::new(0);

/// The process's taps.
pub static TAPS: Taps = Taps {
    rings: Mutex::new(Vec::new()),
};

/// The registry of rings, oldest first.
pub struct Taps {
    rings: Mutex<Vec<Arc<Ring>>>,
}

impl Taps {
    fn lock(&self) -> MutexGuard<'_, Vec<Arc<Ring>>> {
        self.rings.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn record(&self, session: u64, dir: Direction, frame: &[u8]) {
        let ring = self.lock().iter().find(|r| r.session == session).cloned();
        if let Some(ring) = ring {
            ring.push(dir, frame);
        }
    }

    /// Turns the tap on for `session` (of `account`, as its `owner` sees it; the caller checked
    /// that the session is live there) and returns its ring; the existing one if it is on
    /// already. Evicts the oldest ring beyond [`MAX_TAPS`].
    pub fn start(&self, owner: u64, account: &str, session: u64, clock: Clock) -> Arc<Ring> {
        let mut rings = self.lock();
        if let Some(r) = rings.iter().find(|r| r.session == session) {
            return r.clone();
        }
        if rings.len() >= MAX_TAPS {
            let old = rings.remove(0);
            old.stop();
        }
        let (seq, _) = watch::channel(0);
        let ring = Arc::new(Ring {
            owner,
            account: account.to_owned(),
            session,
            clock,
            inner: Mutex::new(Frames::default()),
            seq,
        });
        rings.push(ring.clone());
        ACTIVE.store(rings.len(), Ordering::Relaxed);
        ring
    }

    /// The ring of `session`, if `owner` turned it on for `account`.
    pub fn ring(&self, owner: u64, account: &str, session: u64) -> Option<Arc<Ring>> {
        self.lock()
            .iter()
            .find(|r| r.session == session && r.owner == owner && r.account == account)
            .cloned()
    }

    /// Turns taps off and frees their rings: one session's, or (`session` `None`) all of an
    /// account's. Returns how many were on.
    pub fn stop(&self, owner: u64, account: &str, session: Option<u64>) -> usize {
        let mut rings = self.lock();
        let before = rings.len();
        rings.retain(|r| {
            let hit = r.owner == owner && r.account == account && session.is_none_or(|s| s == r.session);
            if hit {
                r.stop();
            }
            !hit
        });
        ACTIVE.store(rings.len(), Ordering::Relaxed);
        before - rings.len()
    }

    /// Turns off every tap `owner` turned on (its server stops).
    pub fn stop_owner(&self, owner: u64) {
        let mut rings = self.lock();
        rings.retain(|r| {
            if r.owner == owner {
                r.stop();
            }
            r.owner != owner
        });
        ACTIVE.store(rings.len(), Ordering::Relaxed);
    }
}

/// One tapped session's recent frames.
pub struct Ring {
    owner: u64,
    account: String,
    session: u64,
    /// The account's clock: frame times read like the journal's.
    clock: Clock,
    inner: Mutex<Frames>,
    /// The `seq` of the newest frame; `u64::MAX` once the tap is off.
    seq: watch::Sender<u64>,
}

#[derive(Default)]
struct Frames {
    frames: VecDeque<Frame>,
    bytes: usize,
    next_seq: u64,
    /// Frames dropped from the front to stay within the bounds.
    dropped: u64,
}

/// One frame as kept (clipped to [`MAX_FRAME_BYTES`]).
#[derive(Debug, Clone)]
pub struct Frame {
    pub seq: u64,
    pub at: Millis,
    pub direction: Direction,
    /// The frame's full size.
    pub size: usize,
    /// Its first bytes (all of them unless `size` > [`MAX_FRAME_BYTES`]).
    pub bytes: Bytes,
}

/// A page of a ring: frames after a `seq`, and how many older ones are gone.
#[derive(Debug, Clone)]
pub struct Page {
    pub frames: Vec<Frame>,
    /// Frames dropped from the ring since it was turned on.
    pub dropped: u64,
    /// Whether the tap is still on.
    pub tapping: bool,
}

impl Ring {
    pub fn account(&self) -> &str {
        &self.account
    }

    pub fn session(&self) -> u64 {
        self.session
    }

    fn push(&self, direction: Direction, frame: &[u8]) {
        let kept = Bytes::copy_from_slice(&frame[..frame.len().min(MAX_FRAME_BYTES)]);
        let at = self.clock.now();
        let seq = {
            let mut f = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            f.next_seq += 1;
            let seq = f.next_seq;
            f.bytes += kept.len();
            f.frames.push_back(Frame {
                seq,
                at,
                direction,
                size: frame.len(),
                bytes: kept,
            });
            while f.frames.len() > RING_FRAMES || f.bytes > RING_BYTES {
                match f.frames.pop_front() {
                    Some(old) => {
                        f.bytes -= old.bytes.len();
                        f.dropped += 1;
                    }
                    None => break,
                }
            }
            seq
        };
        // Never lowers the value: a stopped ring stays stopped.
        self.seq.send_if_modified(|s| {
            let newer = *s != u64::MAX && *s < seq;
            if newer {
                *s = seq;
            }
            newer
        });
    }

    fn stop(&self) {
        self.seq.send_replace(u64::MAX);
    }

    /// Whether the tap is still on.
    pub fn tapping(&self) -> bool {
        *self.seq.borrow() != u64::MAX
    }

    /// The frames with `seq > after`, oldest first, at most `limit`.
    pub fn page(&self, after: u64, limit: usize) -> Page {
        let f = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let start = f.frames.partition_point(|fr| fr.seq <= after);
        Page {
            frames: f.frames.iter().skip(start).take(limit).cloned().collect(),
            dropped: f.dropped,
            tapping: self.tapping(),
        }
    }

    /// The `seq` of the oldest frame still kept (0 when empty).
    pub fn oldest(&self) -> u64 {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .frames
            .front()
            .map_or(0, |f| f.seq)
    }

    /// Changes whenever a frame is recorded or the tap goes off.
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.seq.subscribe()
    }
}

/// A frame decoded for people: the twilsock header as JSON, the payload as JSON when it is JSON
/// (text otherwise), and what was clipped.
#[derive(Debug, Clone, Serialize)]
pub struct FrameView {
    pub seq: u64,
    pub at: Millis,
    pub direction: Direction,
    pub size: usize,
    /// `method` of the header (`init`, `message`, `reply`, `notification`, `close`…).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// What the frame is about: the upstream request line, the status of a reply, the type of a
    /// notification or `client_update`.
    pub summary: String,
    /// The header, when it parses as a JSON object.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header: Option<Map<String, Value>>,
    /// The payload as JSON, when it is JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<Value>,
    /// The payload (or the whole frame, when it is not a twilsock frame) as text, when it is
    /// not JSON; invalid UTF-8 replaced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Bytes of the frame not kept (0: the frame is whole).
    pub clipped: usize,
}

impl Frame {
    /// Decodes what was kept. Never fails: a frame that is not twilsock shows as text.
    pub fn view(&self) -> FrameView {
        let mut v = FrameView {
            seq: self.seq,
            at: self.at,
            direction: self.direction,
            size: self.size,
            method: None,
            id: None,
            summary: String::new(),
            header: None,
            payload: None,
            text: None,
            clipped: self.size.saturating_sub(self.bytes.len()),
        };
        let b = &self.bytes[..];
        let parsed = b.strip_prefix(b"TWILSOCK V3.0 ").and_then(|rest| {
            let eol = rest.windows(2).position(|w| w == b"\r\n")?;
            let len: usize = std::str::from_utf8(&rest[..eol]).ok()?.trim().parse().ok()?;
            let body = &rest[eol + 2..];
            let header = body.get(..len)?;
            let header: Map<String, Value> = serde_json::from_slice(header).ok()?;
            let payload = body.get(len..).map(|p| p.strip_prefix(b"\r\n").unwrap_or(p)).unwrap_or_default();
            Some((header, payload))
        });
        let payload = match parsed {
            Some((header, payload)) => {
                let s = |k: &str| header.get(k).and_then(Value::as_str).map(str::to_owned);
                v.method = s("method");
                v.id = s("id");
                v.summary = summary(&header);
                v.header = Some(header);
                payload
            }
            None => {
                v.summary = "not a twilsock frame".to_owned();
                b
            }
        };
        if !payload.is_empty() {
            match serde_json::from_slice::<Value>(payload) {
                Ok(json) if v.clipped == 0 => v.payload = Some(json),
                _ => v.text = Some(String::from_utf8_lossy(payload).into_owned()),
            }
        }
        v
    }
}

/// The one line the frame list shows besides the method.
fn summary(h: &Map<String, Value>) -> String {
    let s = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or_default().to_owned();
    let mut parts = Vec::new();
    if let Some(req) = h.get("http_request").and_then(Value::as_object) {
        parts.push(format!("{} {}", s(req.get("method")), s(req.get("path"))));
    }
    if let Some(status) = h.get("status").and_then(Value::as_object) {
        let code = status.get("code").map(Value::to_string).unwrap_or_default();
        parts.push(format!("{code} {}", s(status.get("status"))).trim().to_owned());
    }
    if let Some(resp) = h.get("http_status").and_then(Value::as_object) {
        let code = resp.get("code").map(Value::to_string).unwrap_or_default();
        parts.push(format!("http {code}"));
    }
    for key in ["message_type", "client_update_type", "notification_ctx_id"] {
        if let Some(t) = h.get(key).and_then(Value::as_str) {
            parts.push(t.to_owned());
        }
    }
    parts.join(" · ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(header: &str, payload: &[u8]) -> Vec<u8> {
        let mut f = format!("TWILSOCK V3.0 {}\r\n{header}\r\n", header.len()).into_bytes();
        f.extend_from_slice(payload);
        f
    }

    fn owner() -> u64 {
        rand::random()
    }

    #[test]
    fn a_ring_keeps_order_and_its_bounds_and_clips_big_frames() {
        let (owner, session) = (owner(), 1 << 62 | u64::from(rand::random::<u32>()));
        let ring = TAPS.start(owner, "AC1", session, Clock::system());
        Tap(session).inbound(&frame(r#"{"method":"init","id":"a"}"#, b"{}"));
        Tap(session).outbound(&frame(r#"{"method":"reply","id":"a","status":{"code":200,"status":"OK"}}"#, b""));
        let page = ring.page(0, 10);
        assert_eq!(page.frames.len(), 2);
        let (a, b) = (page.frames[0].view(), page.frames[1].view());
        assert_eq!(
            (a.direction, a.method.as_deref(), a.payload.clone()),
            (Direction::In, Some("init"), Some(serde_json::json!({})))
        );
        assert_eq!((b.direction, b.summary.as_str()), (Direction::Out, "200 OK"));

        let big = frame(r#"{"method":"message","id":"b"}"#, &vec![b'x'; MAX_FRAME_BYTES * 2]);
        Tap(session).inbound(&big);
        let v = ring.page(2, 10).frames[0].view();
        assert_eq!(v.clipped, big.len() - MAX_FRAME_BYTES);
        assert!(v.payload.is_none() && v.text.is_some());

        for _ in 0..RING_FRAMES * 2 {
            Tap(session).outbound(&big);
        }
        let page = ring.page(0, usize::MAX);
        assert!(page.frames.len() <= RING_FRAMES);
        assert!(page.frames.iter().map(|f| f.bytes.len()).sum::<usize>() <= RING_BYTES);
        assert!(page.dropped > 0);
        assert!(page.frames.windows(2).all(|w| w[0].seq + 1 == w[1].seq));

        // Another owner or account sees nothing; turning it off frees it and ends followers.
        assert!(TAPS.ring(owner ^ 1, "AC1", session).is_none());
        assert!(TAPS.ring(owner, "AC2", session).is_none());
        let watch = ring.watch();
        assert_eq!(TAPS.stop(owner, "AC1", Some(session)), 1);
        assert_eq!(*watch.borrow(), u64::MAX);
        assert!(TAPS.ring(owner, "AC1", session).is_none());
    }

    #[test]
    fn anything_decodes_without_panicking() {
        for junk in [
            &b""[..],
            b"TWILSOCK V3.0 ",
            b"TWILSOCK V3.0 99999999999999999999999\r\n{}",
            b"TWILSOCK V3.0 2\r\n{",
            b"\xff\xfe",
        ] {
            let f = Frame {
                seq: 1,
                at: Millis(0),
                direction: Direction::In,
                size: junk.len(),
                bytes: Bytes::copy_from_slice(junk),
            };
            let v = f.view();
            assert!(v.header.is_none(), "{junk:?}");
        }
    }
}
