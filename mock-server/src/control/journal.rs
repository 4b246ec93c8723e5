//! The journal: every observation the server makes — connection lifecycle, twilsock packets
//! (summarised), upstream requests, REST requests, Sync pushes, faults applied, webhook
//! deliveries — in a bounded ring, queryable with filters and streamable live.
//!
//! Bounded on purpose: a long-running server keeps the newest `capacity` entries and counts what
//! it dropped, so memory never grows without limit. Live followers get a bounded broadcast; a
//! follower that lags is told how many entries it missed.
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
    /// Entries evicted from the ring since the server started.
    pub dropped: u64,
    pub capacity: usize,
    /// The newest `seq` recorded so far (0 when empty).
    pub last_seq: u64,
}

pub struct Journal {
    inner: Mutex<Ring>,
    live: broadcast::Sender<Entry>,
}

struct Ring {
    entries: VecDeque<Entry>,
    capacity: usize,
    dropped: u64,
    next_seq: u64,
}

pub const DEFAULT_CAPACITY: usize = 10_000;

/// The system clock in Unix microseconds (0 if it reads before 1970).
fn wall_now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

impl Journal {
    pub fn new(capacity: usize) -> Journal {
        let capacity = capacity.max(1);
        Journal {
            inner: Mutex::new(Ring {
                entries: VecDeque::with_capacity(capacity.min(4096)),
                capacity,
                dropped: 0,
                next_seq: 1,
            }),
            live: broadcast::channel(1024).0,
        }
    }

    pub fn record(&self, o: Observation) {
        let entry = {
            let mut r = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            let e = Entry {
                seq: r.next_seq,
                at: o.at,
                wall_us: wall_now_us(),
                kind: o.kind,
                account: o.account,
                session: o.session,
                identity: o.identity,
                summary: o.summary,
                detail: o.detail,
            };
            r.next_seq += 1;
            if r.entries.len() == r.capacity {
                r.entries.pop_front();
                r.dropped += 1;
            }
            r.entries.push_back(e.clone());
            e
        };
        // No receivers is fine: nobody is following.
        let _ = self.live.send(entry);
    }

    pub fn query(&self, f: &Filter) -> Page {
        let r = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let limit = f.limit.unwrap_or(usize::MAX);
        let mut entries: Vec<Entry> = r.entries.iter().filter(|e| f.matches(e)).cloned().collect();
        if entries.len() > limit {
            entries.drain(..entries.len() - limit);
        }
        Page {
            entries,
            dropped: r.dropped,
            capacity: r.capacity,
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
        r.entries.retain(|e| e.account.as_deref() != Some(account));
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
}
