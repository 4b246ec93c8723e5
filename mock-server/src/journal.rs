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
use std::collections::VecDeque;
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
        self.account.as_ref().is_none_or(|a| e.account.as_ref() == Some(a))
            && self.kind.as_ref().is_none_or(|k| k.contains(&e.kind))
            && self.identity.as_ref().is_none_or(|i| e.identity.as_ref() == Some(i))
            && self.session.is_none_or(|s| e.session == Some(s))
            && self.after.is_none_or(|a| e.seq > a)
            && self.contains.as_ref().is_none_or(|c| e.summary.contains(c.as_str()))
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Page {
    pub entries: Vec<Entry>,
    /// Entries evicted from the ring since the server started (for the entry or the byte bound).
    pub dropped: u64,
    pub capacity: usize,
    /// The bound on `bytes`.
    pub max_bytes: usize,
    /// What the retained entries take, estimated (strings plus a fixed cost per entry and value).
    pub bytes: usize,
    /// The newest `seq` recorded so far (0 when empty).
    pub last_seq: u64,
}

pub struct Journal {
    inner: Mutex<Ring>,
    live: broadcast::Sender<Entry>,
}

struct Ring {
    /// Each entry with its estimated size.
    entries: VecDeque<(Entry, usize)>,
    capacity: usize,
    max_bytes: usize,
    /// The sum of the sizes in `entries`.
    bytes: usize,
    dropped: u64,
    next_seq: u64,
}

/// Entries kept by default: hours of a busy test run, a few MB at typical entry sizes.
pub const DEFAULT_CAPACITY: usize = 10_000;

/// Bytes the retained entries may take by default: 64 MiB. [`DEFAULT_CAPACITY`] typical entries
/// (a few hundred bytes each) take a few MB, so this only bites when entries are large — a
/// stream of requests with maximal paths or webhook payloads — which otherwise grew the server
/// by more than a GB for 10,000 entries.
pub const DEFAULT_MAX_BYTES: usize = 64 * 1024 * 1024;

/// The longest string an entry keeps whole: 34 KiB, so a maximal message body (32 KiB, e.g. in
/// a webhook's parameters, which scenarios match) is never cut; anything longer (paths, raw
/// bodies, header values a client chose) keeps its first bytes and a `…[truncated N bytes]`
/// marker.
pub const MAX_FIELD_BYTES: usize = 34 * 1024;

/// What an entry costs besides its strings (the struct, the ring slot), for the byte bound.
const ENTRY_OVERHEAD: usize = std::mem::size_of::<Entry>() + 16;

/// What a JSON value costs besides its strings (the node, a map slot).
const VALUE_OVERHEAD: usize = std::mem::size_of::<Value>() + 16;

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

/// Truncates every string in `v` (keys included) and returns its estimated size.
fn bound_value(v: &mut Value) -> usize {
    VALUE_OVERHEAD
        + match v {
            Value::String(s) => {
                truncate(s);
                s.len()
            }
            Value::Array(items) => items.iter_mut().map(bound_value).sum(),
            Value::Object(map) => {
                if map.keys().any(|k| k.len() > MAX_FIELD_BYTES) {
                    let old = std::mem::take(map);
                    for (mut k, v) in old {
                        truncate(&mut k);
                        map.insert(k, v);
                    }
                }
                map.iter_mut().map(|(k, v)| k.len() + bound_value(v)).sum()
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => 0,
        }
}

/// Truncates the entry's strings and returns its estimated size.
fn bound_entry(e: &mut Entry) -> usize {
    let mut size = ENTRY_OVERHEAD;
    truncate(&mut e.summary);
    size += e.summary.len();
    for s in [&mut e.account, &mut e.identity].into_iter().flatten() {
        truncate(s);
        size += s.len();
    }
    size + bound_value(&mut e.detail)
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

    pub fn record(&self, o: Observation) {
        let mut e = Entry {
            seq: 0,
            at: o.at,
            wall_us: 0,
            kind: o.kind,
            account: o.account,
            session: o.session,
            identity: o.identity,
            summary: o.summary,
            detail: o.detail,
        };
        // Outside the lock: the work is the caller's, not every recorder's.
        let size = bound_entry(&mut e);
        let entry = {
            let mut r = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            e.seq = r.next_seq;
            // Under the lock, so that wall time never decreases along `seq`.
            e.wall_us = wall_now_us();
            r.next_seq += 1;
            while !r.entries.is_empty() && (r.entries.len() >= r.capacity || r.bytes.saturating_add(size) > r.max_bytes) {
                if let Some((_, old)) = r.entries.pop_front() {
                    r.bytes -= old;
                    r.dropped += 1;
                }
            }
            r.bytes += size;
            // Cloned only for live followers: with none, sending would drop the clone at once.
            if self.live.receiver_count() > 0 {
                r.entries.push_back((e.clone(), size));
                Some(e)
            } else {
                r.entries.push_back((e, size));
                None
            }
        };
        if let Some(entry) = entry {
            // A follower gone meanwhile is fine.
            let _ = self.live.send(entry);
        }
    }

    pub fn query(&self, f: &Filter) -> Page {
        let r = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let limit = f.limit.unwrap_or(usize::MAX);
        let mut entries: Vec<Entry> = r.entries.iter().map(|(e, _)| e).filter(|e| f.matches(e)).cloned().collect();
        if entries.len() > limit {
            entries.drain(..entries.len() - limit);
        }
        Page {
            entries,
            dropped: r.dropped,
            capacity: r.capacity,
            max_bytes: r.max_bytes,
            bytes: r.bytes,
            last_seq: r.next_seq - 1,
        }
    }

    /// Follows new entries live.
    pub fn follow(&self) -> broadcast::Receiver<Entry> {
        self.live.subscribe()
    }

    /// Forgets an account's entries (tenant reset or deletion).
    pub fn forget_account(&self, account: &str) {
        let mut r = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        r.entries.retain(|(e, _)| e.account.as_deref() != Some(account));
        r.bytes = r.entries.iter().map(|(_, size)| size).sum();
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
}
