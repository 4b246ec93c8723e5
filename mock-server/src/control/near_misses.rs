//! Near-misses: requests Rehearsal answered 404 or 405 because it has no such route (not
//! because a resource was missing), grouped by what was asked, with counts — what a user needs
//! to see when an app calls something the fake lacks (WireMock calls these "near misses").
//!
//! Recorded by the REST/media middleware (the router's fallbacks mark their answers with
//! [`Unrouted`]) and by `Realtime::upstream` for requests tunnelled over twilsock that no
//! handler takes. Each request is also journaled as usual, with `detail.near_miss` set.
//!
//! Bounded: at most [`MAX_GROUPS`] groups (further new groups are counted in `overflow`, never
//! kept), each path cut to [`MAX_PATH_BYTES`]. Paths are grouped by shape: a segment that looks
//! like a Twilio SID (two capital letters and 32 hex digits) reads `{SID}` so that calls for
//! many resources of one unimplemented kind make one group.
use std::collections::HashMap;
use std::sync::Mutex;

use serde::Serialize;

use crate::clock::Millis;

/// Groups kept at most; new groups past it are only counted.
pub const MAX_GROUPS: usize = 500;

/// The longest path (and example path) a group keeps.
pub const MAX_PATH_BYTES: usize = 512;

/// Why a request is a near-miss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// No route has this path.
    NoRoute,
    /// The path exists, not with this method.
    MethodNotAllowed,
}

/// Set by the router's fallbacks on their answers, so that the middleware tells an unknown
/// route from a missing resource (both are 404 to the client).
#[derive(Debug, Clone, Copy)]
pub struct Unrouted(pub Reason);

/// One group of near-misses.
#[derive(Debug, Clone, Serialize)]
pub struct Group {
    /// `rest`, `media` or `twilsock`.
    pub transport: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    pub method: String,
    /// The path with SID-like segments as `{SID}`.
    pub path: String,
    /// The last path seen in full (cut to [`MAX_PATH_BYTES`]).
    pub example: String,
    pub reason: Reason,
    pub status: u16,
    pub count: u64,
    /// Account time of the first and the last request.
    pub first_at: Millis,
    pub last_at: Millis,
    /// The journal entry of the last one is at or after this `seq` (0 if unknown).
    pub last_seq: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct View {
    /// Most frequent first.
    pub groups: Vec<Group>,
    /// Requests of groups that were not kept (the table was full).
    pub overflow: u64,
    pub max_groups: usize,
}

type Key = (&'static str, Option<String>, String, String);

#[derive(Default)]
pub struct NearMisses {
    inner: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    groups: HashMap<Key, Group>,
    overflow: u64,
}

/// One request to count.
pub struct Miss<'a> {
    pub transport: &'static str,
    pub account: Option<&'a str>,
    pub method: &'a str,
    pub path: &'a str,
    pub reason: Reason,
    pub status: u16,
    pub at: Millis,
    pub seq: u64,
}

fn cut(s: &str) -> String {
    if s.len() <= MAX_PATH_BYTES {
        return s.to_owned();
    }
    let mut end = MAX_PATH_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// `AB` + 32 hex digits: a Twilio SID.
fn is_sid(seg: &str) -> bool {
    seg.len() == 34 && seg.as_bytes()[..2].iter().all(u8::is_ascii_uppercase) && seg.as_bytes()[2..].iter().all(u8::is_ascii_hexdigit)
}

/// The path with SID-like segments replaced by `{SID}`.
pub fn shape(path: &str) -> String {
    let shaped: Vec<&str> = path.split('/').map(|s| if is_sid(s) { "{SID}" } else { s }).collect();
    cut(&shaped.join("/"))
}

impl NearMisses {
    pub fn record(&self, m: Miss<'_>) {
        let key: Key = (m.transport, m.account.map(str::to_owned), cut(m.method), shape(m.path));
        let mut t = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(g) = t.groups.get_mut(&key) {
            g.count += 1;
            g.last_at = m.at;
            g.last_seq = m.seq;
            g.status = m.status;
            g.reason = m.reason;
            g.example = cut(m.path);
            return;
        }
        if t.groups.len() >= MAX_GROUPS {
            t.overflow += 1;
            return;
        }
        let group = Group {
            transport: key.0,
            account: key.1.clone(),
            method: key.2.clone(),
            path: key.3.clone(),
            example: cut(m.path),
            reason: m.reason,
            status: m.status,
            count: 1,
            first_at: m.at,
            last_at: m.at,
            last_seq: m.seq,
        };
        t.groups.insert(key, group);
    }

    /// The groups of an account (all, with `None`), most frequent first.
    pub fn view(&self, account: Option<&str>) -> View {
        let t = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut groups: Vec<Group> = t
            .groups
            .values()
            .filter(|g| account.is_none_or(|a| g.account.as_deref() == Some(a)))
            .cloned()
            .collect();
        groups.sort_by(|a, b| b.count.cmp(&a.count).then(b.last_seq.cmp(&a.last_seq)));
        View {
            groups,
            overflow: t.overflow,
            max_groups: MAX_GROUPS,
        }
    }

    /// Forgets an account's groups (`None`: all of them, and the overflow count).
    pub fn clear(&self, account: Option<&str>) {
        let mut t = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        match account {
            None => *t = Table::default(),
            Some(a) => t.groups.retain(|k, _| k.1.as_deref() != Some(a)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn miss<'a>(account: Option<&'a str>, method: &'a str, path: &'a str) -> Miss<'a> {
        Miss {
            transport: "rest",
            account,
            method,
            path,
            reason: Reason::NoRoute,
            status: 404,
            at: Millis(1),
            seq: 1,
        }
    }

    #[test]
    fn requests_group_by_shape_and_count() {
        let n = NearMisses::default();
        n.record(miss(
            Some("AC1"),
            "GET",
            "/v1/Conversations/CH0123456789abcdef0123456789abcdef/Nope",
        ));
        n.record(miss(
            Some("AC1"),
            "GET",
            "/v1/Conversations/CHfedcba9876543210fedcba9876543210/Nope",
        ));
        n.record(miss(
            Some("AC1"),
            "POST",
            "/v1/Conversations/CHfedcba9876543210fedcba9876543210/Nope",
        ));
        n.record(miss(Some("AC2"), "GET", "/v1/Other"));
        let v = n.view(Some("AC1"));
        assert_eq!(v.groups.len(), 2);
        assert_eq!(v.groups[0].count, 2);
        assert_eq!(v.groups[0].path, "/v1/Conversations/{SID}/Nope");
        assert_eq!(v.groups[0].example, "/v1/Conversations/CHfedcba9876543210fedcba9876543210/Nope");
        assert_eq!(n.view(None).groups.len(), 3);
        n.clear(Some("AC1"));
        assert_eq!(n.view(None).groups.len(), 1);
    }

    #[test]
    fn the_table_is_bounded() {
        let n = NearMisses::default();
        let long = "x".repeat(10_000);
        for i in 0..MAX_GROUPS + 10 {
            n.record(miss(None, "GET", &format!("/{i}/{long}")));
        }
        let v = n.view(None);
        assert_eq!(v.groups.len(), MAX_GROUPS);
        assert_eq!(v.overflow, 10);
        assert!(
            v.groups
                .iter()
                .all(|g| g.path.len() <= MAX_PATH_BYTES + 3 && g.example.len() <= MAX_PATH_BYTES + 3)
        );
    }
}
