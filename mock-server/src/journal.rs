//! The journal: every observation the server makes — connection lifecycle, twilsock packets
//! (summarised), upstream requests, REST requests, Sync pushes, faults applied, webhook
//! deliveries — in a bounded ring, queryable with filters and streamable live.
//!
//! Bounded on purpose, in entries and in bytes: a long-running server keeps the newest
//! `capacity` entries, at most `max_bytes` of them, and counts what it dropped, so memory never
//! grows without limit. Every string an entry keeps (summary, identity, account, each string in
//! `detail`) is cut to [`MAX_FIELD_BYTES`] with a visible `…[truncated N bytes]` marker, so that
//! one request with a 64 KB path costs the journal a few KB, not hundreds. Live followers get a
//! bounded broadcast; a follower that lags is told how many entries it missed.
//!
//! The ring keeps each entry compact: its strings and its `detail` rendered as compact JSON,
//! back to back in one allocation (see `Compact`). [`Entry`] values, with `detail` parsed
//! again, are built only for what a query returns (after the ring's lock is released) and for
//! live followers (only while there are any).
use std::collections::VecDeque;
use std::mem::size_of;
use std::sync::Mutex;

use serde::Serialize;
use serde_json::Value;
use tokio::sync::broadcast;

use crate::clock::Millis;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A socket was accepted, established, updated or closed.
    Connection,
    /// A twilsock packet from a client (summarised).
    PacketIn,
    /// A twilsock packet to a client that the session itself wrote (replies, control frames).
    PacketOut,
    /// An upstream (HTTP over twilsock) request and its answer.
    Upstream,
    /// A REST request and its answer.
    Rest,
    /// A Sync event pushed to subscribers (once per event, not per socket).
    SyncPush,
    /// A media upload or download.
    Media,
    /// A fault the control plane injected took effect.
    Fault,
    /// A control-plane action.
    Control,
    /// A webhook delivery to the customer's backend (pre- or post-action): request, response,
    /// timing and outcome; also deliveries dropped because a queue was full.
    Webhook,
}

#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// Increases by one per entry, across drops; a gap tells a follower what it missed.
    pub seq: u64,
    /// Account time of the observation (server time when no account is involved).
    pub at: Millis,
    /// Wall time of the observation (Unix microseconds of the system clock): account clocks
    /// may be frozen or moved, and a scenario measures windows and gaps in real time, ordering
    /// entries against its own steps (microseconds keep an action apart from what it caused).
    pub wall_us: i64,
    pub kind: Kind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// A short human-readable line, e.g. `GET /v1/Conversations -> 200`.
    pub summary: String,
    /// Structured details (method, path, status, codes, sizes…).
    pub detail: Value,
}

/// What to record: the journal assigns `seq`.
#[derive(Debug, Clone)]
pub struct Observation {
    pub at: Millis,
    pub kind: Kind,
    pub account: Option<String>,
    pub session: Option<u64>,
    pub identity: Option<String>,
    pub summary: String,
    pub detail: Value,
}

#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct Filter {
    pub account: Option<String>,
    pub kind: Option<Vec<Kind>>,
    pub identity: Option<String>,
    pub session: Option<u64>,
    /// Only entries with `seq` greater than this.
    pub after: Option<u64>,
    /// Substring of the summary.
    pub contains: Option<String>,
    pub limit: Option<usize>,
}

impl Filter {
    pub fn matches(&self, e: &Entry) -> bool {
        self.matches_view(&View {
            seq: e.seq,
            kind: e.kind,
            account: e.account.as_deref(),
            identity: e.identity.as_deref(),
            session: e.session,
            summary: &e.summary,
        })
    }

    /// [`Filter::matches`] on what a filter looks at (never `detail`), for entries and for the
    /// ring's compact entries alike.
    fn matches_view(&self, e: &View<'_>) -> bool {
        self.account.as_deref().is_none_or(|a| e.account == Some(a))
            && self.kind.as_ref().is_none_or(|k| k.contains(&e.kind))
            && self.identity.as_deref().is_none_or(|i| e.identity == Some(i))
            && self.session.is_none_or(|s| e.session == Some(s))
            && self.after.is_none_or(|a| e.seq > a)
            && self.contains.as_ref().is_none_or(|c| e.summary.contains(c.as_str()))
    }
}

/// The fields of an entry a [`Filter`] looks at, borrowed.
struct View<'a> {
    seq: u64,
    kind: Kind,
    account: Option<&'a str>,
    identity: Option<&'a str>,
    session: Option<u64>,
    summary: &'a str,
}

#[derive(Debug, Clone, Serialize)]
pub struct Page {
    pub entries: Vec<Entry>,
    /// Entries evicted from the ring since the server started (for the entry or the byte bound).
    pub dropped: u64,
    pub capacity: usize,
    /// The bound on `bytes`.
    pub max_bytes: usize,
    /// What the retained entries take in the ring: per entry, its strings and its rendered
    /// `detail` JSON, plus its slot in the ring and a fixed 16 bytes for the allocator.
    pub bytes: usize,
    /// The newest `seq` recorded so far (0 when empty).
    pub last_seq: u64,
}

pub struct Journal {
    inner: Mutex<Ring>,
    live: broadcast::Sender<Entry>,
}

struct Ring {
    /// Oldest first; `seq` increases along the ring.
    entries: VecDeque<Compact>,
    capacity: usize,
    max_bytes: usize,
    /// The sum of the entries' [`Compact::size`].
    bytes: usize,
    dropped: u64,
    next_seq: u64,
}

/// An entry as the ring keeps it: the summary, the account, the identity and `detail` rendered
/// as compact JSON, back to back in one string (one allocation instead of an `IndexMap` and a
/// `String` per key and value), and the scalar fields inline.
#[derive(Clone)]
struct Compact {
    seq: u64,
    at: Millis,
    wall_us: i64,
    session: Option<u64>,
    /// `summary`, `account`, `identity`, then `detail` as compact JSON (empty for
    /// `Value::Null`). Every string in it was truncated before rendering.
    text: Box<str>,
    /// Where the summary, the account and the identity end in `text` (the detail runs to the
    /// end). Each string is at most [`MAX_FIELD_BYTES`] and a marker, so they fit (asserted
    /// at compile time below).
    ends: [u32; 3],
    kind: Kind,
    /// Whether `account` / `identity` is there (an empty one is not a missing one).
    has_account: bool,
    has_identity: bool,
}

// The three strings before the detail, truncated (a marker is under 64 bytes), fit `u32` offsets.
const _: () = assert!(3 * (MAX_FIELD_BYTES + 64) < u32::MAX as usize);

impl Compact {
    /// Renders an observation whose strings were truncated already; `seq` and `wall_us` are
    /// set under the ring's lock.
    fn new(o: &Observation) -> Compact {
        let detail = match &o.detail {
            Value::Null => String::new(),
            // Rendering a `Value` cannot fail (its keys are strings); should it, the entry
            // keeps no detail rather than a partial one.
            v => serde_json::to_string(v).unwrap_or_default(),
        };
        let account = o.account.as_deref().unwrap_or("");
        let identity = o.identity.as_deref().unwrap_or("");
        let mut text = String::with_capacity(o.summary.len() + account.len() + identity.len() + detail.len());
        let mut ends = [0; 3];
        for (end, part) in ends.iter_mut().zip([o.summary.as_str(), account, identity]) {
            text.push_str(part);
            *end = u32::try_from(text.len()).unwrap_or(u32::MAX);
        }
        text.push_str(&detail);
        Compact {
            seq: 0,
            at: o.at,
            wall_us: 0,
            session: o.session,
            text: text.into_boxed_str(),
            ends,
            kind: o.kind,
            has_account: o.account.is_some(),
            has_identity: o.identity.is_some(),
        }
    }

    /// What the entry takes in the ring: its slot, its text and [`ENTRY_OVERHEAD`].
    fn size(&self) -> usize {
        size_of::<Compact>() + self.text.len() + ENTRY_OVERHEAD
    }

    /// `text` from `from` to `to` (never panics: a bad range is empty).
    fn part(&self, from: u32, to: Option<u32>) -> &str {
        let from = from as usize;
        match to {
            Some(to) => self.text.get(from..to as usize),
            None => self.text.get(from..),
        }
        .unwrap_or("")
    }

    fn summary(&self) -> &str {
        self.part(0, Some(self.ends[0]))
    }

    fn account(&self) -> Option<&str> {
        self.has_account.then(|| self.part(self.ends[0], Some(self.ends[1])))
    }

    fn identity(&self) -> Option<&str> {
        self.has_identity.then(|| self.part(self.ends[1], Some(self.ends[2])))
    }

    /// The rendered detail; empty for `Value::Null`.
    fn detail(&self) -> &str {
        self.part(self.ends[2], None)
    }

    fn view(&self) -> View<'_> {
        View {
            seq: self.seq,
            kind: self.kind,
            account: self.account(),
            identity: self.identity(),
            session: self.session,
            summary: self.summary(),
        }
    }

    /// The entry as readers see it, `detail` parsed again. The journal rendered it, so parsing
    /// does not fail (details are shallow, far from serde_json's nesting limit); should it,
    /// the detail reads as `Value::Null`.
    fn to_entry(&self) -> Entry {
        let detail = match self.detail() {
            "" => Value::Null,
            json => serde_json::from_str(json).unwrap_or(Value::Null),
        };
        Entry {
            seq: self.seq,
            at: self.at,
            wall_us: self.wall_us,
            kind: self.kind,
            account: self.account().map(str::to_owned),
            session: self.session,
            identity: self.identity().map(str::to_owned),
            summary: self.summary().to_owned(),
            detail,
        }
    }
}

/// Entries kept by default: hours of a busy test run, a few MB at typical entry sizes.
pub const DEFAULT_CAPACITY: usize = 10_000;

/// Bytes the retained entries may take by default: 64 MiB. [`DEFAULT_CAPACITY`] typical entries
/// (a few hundred bytes each, as the ring keeps them) take a few MB, so this only bites when
/// entries are large — a stream of requests with maximal paths or webhook payloads — which
/// otherwise grew the server by more than a GB for 10,000 entries.
pub const DEFAULT_MAX_BYTES: usize = 64 * 1024 * 1024;

/// The longest string an entry keeps whole: 34 KiB, so a maximal message body (32 KiB, e.g. in
/// a webhook's parameters, which scenarios match) is never cut; anything longer (paths, raw
/// bodies, header values a client chose) keeps its first bytes and a `…[truncated N bytes]`
/// marker.
pub const MAX_FIELD_BYTES: usize = 34 * 1024;

/// What an entry costs in the byte bound besides its slot and its text: the allocator's header
/// and rounding of the text's one allocation.
const ENTRY_OVERHEAD: usize = 16;

/// Cuts `s` to at most [`MAX_FIELD_BYTES`] (on a character boundary) plus a marker saying how
/// many bytes were cut.
fn truncate(s: &mut String) {
    if s.len() <= MAX_FIELD_BYTES {
        return;
    }
    let mut end = MAX_FIELD_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let cut = s.len() - end;
    s.truncate(end);
    s.push_str(&format!("…[truncated {cut} bytes]"));
}

/// Truncates every string in `v`, keys included.
fn bound_value(v: &mut Value) {
    match v {
        Value::String(s) => truncate(s),
        Value::Array(items) => items.iter_mut().for_each(bound_value),
        Value::Object(map) => {
            if map.keys().any(|k| k.len() > MAX_FIELD_BYTES) {
                let old = std::mem::take(map);
                for (mut k, v) in old {
                    truncate(&mut k);
                    map.insert(k, v);
                }
            }
            map.values_mut().for_each(bound_value);
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// Truncates the observation's strings.
fn bound_observation(o: &mut Observation) {
    truncate(&mut o.summary);
    for s in [&mut o.account, &mut o.identity].into_iter().flatten() {
        truncate(s);
    }
    bound_value(&mut o.detail);
}

/// The system clock in Unix microseconds (0 if it reads before 1970).
fn wall_now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

impl Journal {
    /// A journal of `capacity` entries and [`DEFAULT_MAX_BYTES`].
    pub fn new(capacity: usize) -> Journal {
        Journal::bounded(capacity, DEFAULT_MAX_BYTES)
    }

    /// A journal of at most `capacity` entries taking at most `max_bytes` (the newest entry is
    /// always kept, whatever its size).
    pub fn bounded(capacity: usize, max_bytes: usize) -> Journal {
        let capacity = capacity.max(1);
        Journal {
            inner: Mutex::new(Ring {
                entries: VecDeque::with_capacity(capacity.min(4096)),
                capacity,
                max_bytes,
                bytes: 0,
                dropped: 0,
                next_seq: 1,
            }),
            live: broadcast::channel(1024).0,
        }
    }

    pub fn record(&self, mut o: Observation) {
        // Outside the lock: the work is the caller's, not every recorder's.
        bound_observation(&mut o);
        let mut c = Compact::new(&o);
        let size = c.size();
        let stamped = {
            let mut r = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            c.seq = r.next_seq;
            // Under the lock, so that wall time never decreases along `seq`.
            c.wall_us = wall_now_us();
            r.next_seq += 1;
            while !r.entries.is_empty() && (r.entries.len() >= r.capacity || r.bytes.saturating_add(size) > r.max_bytes) {
                if let Some(old) = r.entries.pop_front() {
                    r.bytes -= old.size();
                    r.dropped += 1;
                }
            }
            // Grow by doubling but never past `capacity`: a full ring's slots are all in use.
            if r.entries.len() == r.entries.capacity() {
                let room = r.entries.len().max(1).min(r.capacity - r.entries.len());
                r.entries.reserve_exact(room);
            }
            r.bytes += size;
            let stamp = (c.seq, c.wall_us);
            r.entries.push_back(c);
            // An entry for live followers only: with none, sending would drop it at once.
            (self.live.receiver_count() > 0).then_some(stamp)
        };
        if let Some((seq, wall_us)) = stamped {
            // A follower gone meanwhile is fine.
            let _ = self.live.send(Entry {
                seq,
                wall_us,
                at: o.at,
                kind: o.kind,
                account: o.account,
                session: o.session,
                identity: o.identity,
                summary: o.summary,
                detail: o.detail,
            });
        }
    }

    /// The newest `limit` entries matching `f`, oldest first. Matching entries are copied
    /// under the lock (compact); their details are parsed after it is released.
    pub fn query(&self, f: &Filter) -> Page {
        let limit = f.limit.unwrap_or(usize::MAX);
        let (picked, mut page) = {
            let r = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            let mut picked: Vec<Compact> = Vec::new();
            if limit > 0 {
                for c in r.entries.iter().rev() {
                    // `seq` increases along the ring: nothing older can match `after`.
                    if f.after.is_some_and(|a| c.seq <= a) {
                        break;
                    }
                    if f.matches_view(&c.view()) {
                        picked.push(c.clone());
                        if picked.len() >= limit {
                            break;
                        }
                    }
                }
            }
            let page = Page {
                entries: Vec::new(),
                dropped: r.dropped,
                capacity: r.capacity,
                max_bytes: r.max_bytes,
                bytes: r.bytes,
                last_seq: r.next_seq - 1,
            };
            (picked, page)
        };
        page.entries = picked.iter().rev().map(Compact::to_entry).collect();
        page
    }

    /// Follows new entries live.
    pub fn follow(&self) -> broadcast::Receiver<Entry> {
        self.live.subscribe()
    }

    /// Forgets an account's entries (tenant reset or deletion).
    pub fn forget_account(&self, account: &str) {
        let mut r = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        r.entries.retain(|c| c.account() != Some(account));
        r.bytes = r.entries.iter().map(Compact::size).sum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(n: u64, account: &str) -> Observation {
        Observation {
            at: Millis(n as i64),
            kind: Kind::Rest,
            account: Some(account.into()),
            session: None,
            identity: None,
            summary: format!("GET /{n}"),
            detail: Value::Null,
        }
    }

    #[test]
    fn the_ring_is_bounded_and_counts_what_it_dropped() {
        let j = Journal::new(3);
        for n in 0..5 {
            j.record(obs(n, "AC1"));
        }
        let p = j.query(&Filter::default());
        assert_eq!(p.entries.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![3, 4, 5]);
        assert_eq!(p.dropped, 2);
        assert_eq!(p.last_seq, 5);
    }

    #[test]
    fn filters_select_by_account_kind_and_position() {
        let j = Journal::new(10);
        j.record(obs(1, "AC1"));
        j.record(obs(2, "AC2"));
        j.record(obs(3, "AC1"));
        let p = j.query(&Filter {
            account: Some("AC1".into()),
            after: Some(1),
            ..Default::default()
        });
        assert_eq!(p.entries.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![3]);
        let p = j.query(&Filter {
            kind: Some(vec![Kind::Connection]),
            ..Default::default()
        });
        assert!(p.entries.is_empty());
        let p = j.query(&Filter {
            limit: Some(1),
            ..Default::default()
        });
        assert_eq!(p.entries[0].seq, 3, "a limit keeps the newest");
    }

    #[test]
    fn entries_carry_wall_time_whatever_the_account_clock_says() {
        let j = Journal::new(4);
        let before = wall_now_us();
        j.record(obs(7, "AC1"));
        let after = wall_now_us();
        let e = &j.query(&Filter::default()).entries[0];
        assert_eq!(e.at, Millis(7), "`at` is the account time given");
        assert!((before..=after).contains(&e.wall_us), "{before} <= {} <= {after}", e.wall_us);
    }

    #[test]
    fn long_strings_are_cut_with_a_marker() {
        let j = Journal::new(4);
        let mut live = j.follow();
        let long = "é".repeat(MAX_FIELD_BYTES); // two bytes each: cut inside a character
        j.record(Observation {
            at: Millis(1),
            kind: Kind::Rest,
            account: Some(long.clone()),
            session: None,
            identity: Some("alice".into()),
            summary: format!("GET /{long}"),
            detail: serde_json::json!({ "path": long, "nested": [long], long.clone(): 1 }),
        });
        let e = &j.query(&Filter::default()).entries[0];
        let cut = |s: &str| {
            assert!(s.len() < MAX_FIELD_BYTES + 40, "{} bytes kept", s.len());
            let (kept, marker) = s.split_once("…[truncated ").expect("a marker");
            let n: usize = marker.trim_end_matches(" bytes]").parse().expect("a count");
            assert!(kept.len() <= MAX_FIELD_BYTES);
            n
        };
        // "GET /" puts the characters at odd offsets: the cut moves back one byte.
        assert_eq!(cut(&e.summary), long.len() + 5 - (MAX_FIELD_BYTES - 1));
        assert_eq!(cut(e.account.as_deref().unwrap()), long.len() - MAX_FIELD_BYTES);
        assert_eq!(e.identity.as_deref(), Some("alice"), "short strings are kept whole");
        cut(e.detail["path"].as_str().unwrap());
        cut(e.detail["nested"][0].as_str().unwrap());
        let key = e.detail.as_object().unwrap().keys().find(|k| k.len() > 100).unwrap();
        cut(key);
        // Cut before rendering: the ring keeps (and accounts for) the cut strings only.
        assert!(
            j.query(&Filter::default()).bytes < 6 * (MAX_FIELD_BYTES + 64),
            "the ring keeps cut strings"
        );
        // Followers get the same cut entry.
        let l = live.try_recv().expect("a live entry");
        assert_eq!(serde_json::to_string(&l).unwrap(), serde_json::to_string(e).unwrap());
    }

    #[test]
    fn the_ring_is_bounded_in_bytes_and_counts_what_it_dropped() {
        let j = Journal::bounded(1000, 64 * 1024);
        for n in 0..100 {
            let mut o = obs(n, "AC1");
            o.detail = Value::String("x".repeat(10_000));
            j.record(o);
        }
        let p = j.query(&Filter::default());
        assert!(p.bytes <= 64 * 1024, "{} bytes kept", p.bytes);
        assert!(p.bytes > 50 * 1024, "{} bytes kept: evicted too much", p.bytes);
        assert_eq!(p.dropped as usize + p.entries.len(), 100);
        assert_eq!(p.entries.last().map(|e| e.seq), Some(100), "the newest are kept");
        assert_eq!(p.max_bytes, 64 * 1024);
        // An entry larger than the whole budget is still kept, alone.
        let j = Journal::bounded(10, 100);
        j.record(obs(1, "AC1"));
        j.record(obs(2, "AC1"));
        let p = j.query(&Filter::default());
        assert_eq!(p.entries.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![2]);
        j.forget_account("AC1");
        assert_eq!(j.query(&Filter::default()).bytes, 0, "forgotten entries leave the budget");
    }

    /// Renders the entry's fields a reader sees, keys in their order (`Value`'s equality
    /// ignores the order of an object's keys).
    fn rendered(e: &Entry) -> String {
        serde_json::to_string(e).unwrap()
    }

    /// Floats whose shortest rendering has many digits (a parser that is not exact misreads
    /// some of them), from a fixed sequence.
    fn awkward_floats() -> Vec<Value> {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut out = vec![
            serde_json::json!(0.1 + 0.2),
            serde_json::json!(-0.0),
            serde_json::json!(5e-324),
            serde_json::json!(2.225_073_858_507_201_4e-308),
            serde_json::json!(f64::MAX),
            serde_json::json!(-1.5),
        ];
        while out.len() < 500 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            let f = f64::from_bits(x);
            if f.is_finite() {
                out.push(serde_json::json!(f));
            }
        }
        out
    }

    #[test]
    fn details_come_back_as_recorded_from_queries_and_followers() {
        let j = Journal::new(8);
        let mut live = j.follow();
        let detail = serde_json::json!({
            "zeta": "last letter first",
            "alpha": { "nested": [1, -2, 3.5, ["ü", "日本語", "🎉", "quote \" backslash \\ newline \n tab \t nul \u{0}"], null, true, false, []] },
            "neg": -42,
            "float": -0.000_123_4,
            "big": u64::MAX,
            "min": i64::MIN,
            "mid": { "b": 1, "a": { "y": {}, "x": [] } },
            "ключ 🔑": "unicode key",
            "floats": awkward_floats(),
        });
        let recorded = Observation {
            at: Millis(-5),
            kind: Kind::Upstream,
            account: Some("AC1".into()),
            session: Some(u64::MAX),
            identity: Some("ユーザー".into()),
            summary: "GET /v3/Things -> 200".into(),
            detail: detail.clone(),
        };
        // Empty strings are not missing ones; a `null` detail stays `null`.
        let bare = Observation {
            at: Millis(0),
            kind: Kind::Control,
            account: Some(String::new()),
            session: None,
            identity: None,
            summary: String::new(),
            detail: Value::Null,
        };
        j.record(recorded.clone());
        j.record(bare.clone());
        let page = j.query(&Filter::default());
        let (first, second) = (&page.entries[0], &page.entries[1]);
        for (got, want) in [(first, &recorded), (second, &bare)] {
            assert_eq!(got.at, want.at);
            assert_eq!(got.kind, want.kind);
            assert_eq!(got.account, want.account);
            assert_eq!(got.session, want.session);
            assert_eq!(got.identity, want.identity);
            assert_eq!(got.summary, want.summary);
            assert_eq!(got.detail, want.detail);
            assert_eq!(
                serde_json::to_string(&got.detail).unwrap(),
                serde_json::to_string(&want.detail).unwrap(),
                "keys keep their order"
            );
        }
        let keys: Vec<&str> = first.detail.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["zeta", "alpha", "neg", "float", "big", "min", "mid", "ключ 🔑", "floats"]);
        // Bit for bit, the sign of zero included.
        let bits = |v: &Value| {
            v.as_array()
                .unwrap()
                .iter()
                .map(|f| f.as_f64().unwrap().to_bits())
                .collect::<Vec<_>>()
        };
        assert_eq!(bits(&first.detail["floats"]), bits(&detail["floats"]));
        assert_eq!(first.detail["big"].as_u64(), Some(u64::MAX));
        assert_eq!(first.detail["min"].as_i64(), Some(i64::MIN));
        // Followers get the same entries, `seq` and wall time included.
        for queried in &page.entries {
            let followed = live.try_recv().expect("a live entry");
            assert_eq!(rendered(&followed), rendered(queried));
            assert_eq!(followed.detail, queried.detail);
        }
        // The empty account is an account: filters and forgetting tell it from none.
        let only_empty = Filter {
            account: Some(String::new()),
            ..Default::default()
        };
        assert_eq!(j.query(&only_empty).entries.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![2]);
        j.forget_account("");
        assert_eq!(
            j.query(&Filter::default()).entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![1]
        );
    }

    #[test]
    fn the_byte_bound_counts_the_compact_entry() {
        let j = Journal::new(4);
        let detail = Value::Object(
            (0..20)
                .map(|n| (format!("field_{n:02}"), Value::String(format!("{n:0>36}"))))
                .collect(),
        );
        let json = serde_json::to_string(&detail).unwrap();
        assert!((900..1200).contains(&json.len()), "a detail of about 1 KB: {}", json.len());
        let o = Observation {
            at: Millis(1),
            kind: Kind::Rest,
            account: Some("AC72656865617273616c00000000000001".into()),
            session: Some(3),
            identity: Some("user-17".into()),
            summary: "GET /v1/Conversations -> 200".into(),
            detail,
        };
        let strings = o.summary.len() + o.account.as_ref().unwrap().len() + o.identity.as_ref().unwrap().len();
        j.record(o);
        let bytes = j.query(&Filter::default()).bytes;
        let compact = json.len() + strings;
        assert!(bytes >= compact, "{bytes} bytes counted for {compact} bytes of text");
        assert!(bytes <= compact + 128, "{bytes} bytes counted for {compact} bytes of text");
        assert_eq!(bytes, compact + size_of::<Compact>() + ENTRY_OVERHEAD);
        // A null detail costs nothing but the entry.
        let j = Journal::new(4);
        j.record(obs(1, "AC1"));
        assert_eq!(
            j.query(&Filter::default()).bytes,
            "GET /1".len() + "AC1".len() + size_of::<Compact>() + ENTRY_OVERHEAD
        );
    }

    /// A typical upstream entry, as a server with many connections records them.
    fn typical(n: u64) -> Observation {
        let path = format!("/v3/Services/IS{n:032x}/Conversations/CH{:032x}/Messages", n * 7);
        Observation {
            at: Millis(1_700_000_000_000 + n as i64),
            kind: Kind::Upstream,
            account: Some("AC72656865617273616c00000000000001".into()),
            session: Some(n),
            identity: Some("user-17".into()),
            summary: format!("GET {path}?PageSize=50 -> 200"),
            detail: serde_json::json!({
                "method": "GET",
                "path": path,
                "status": 200,
                "request_id": format!("RQ{:032x}", n * 31),
                "bytes": 1834 + n % 100,
                "ms": n % 40,
            }),
        }
    }

    #[test]
    fn a_full_ring_of_typical_entries_takes_a_few_mb() {
        let j = Journal::new(DEFAULT_CAPACITY);
        for n in 0..DEFAULT_CAPACITY as u64 + 10 {
            j.record(typical(n));
        }
        let p = j.query(&Filter {
            limit: Some(1),
            ..Default::default()
        });
        assert_eq!(p.dropped, 10);
        // About 380 bytes of text and 88 of slot and overhead each (it was ~1.3 KB as values).
        let per_entry = p.bytes / DEFAULT_CAPACITY;
        assert!(per_entry < 512, "{per_entry} bytes per typical entry");
        // The ring's slots grow to `capacity`, not to the next doubling past it.
        let slots = j.inner.lock().unwrap().entries.capacity();
        assert!((DEFAULT_CAPACITY..DEFAULT_CAPACITY + 64).contains(&slots), "{slots} slots");
    }

    #[test]
    fn queries_take_the_newest_matches_after_a_position() {
        let j = Journal::new(100);
        for n in 0..50 {
            j.record(obs(n, if n % 2 == 0 { "AC1" } else { "AC2" }));
        }
        let seqs = |f: Filter| j.query(&f).entries.iter().map(|e| e.seq).collect::<Vec<_>>();
        assert_eq!(
            seqs(Filter {
                account: Some("AC2".into()),
                limit: Some(3),
                ..Default::default()
            }),
            vec![46, 48, 50]
        );
        assert_eq!(
            seqs(Filter {
                after: Some(45),
                contains: Some("GET /4".into()),
                ..Default::default()
            }),
            vec![46, 47, 48, 49, 50]
        );
        assert!(
            seqs(Filter {
                limit: Some(0),
                ..Default::default()
            })
            .is_empty()
        );
        let p = j.query(&Filter {
            after: Some(u64::MAX),
            ..Default::default()
        });
        assert!(p.entries.is_empty());
        assert_eq!(p.last_seq, 50);
    }
}
