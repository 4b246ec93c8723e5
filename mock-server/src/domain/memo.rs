//! Renderings of an account's state kept until the state next changes.
//!
//! A REST list of 50 conversations spent most of its time formatting URLs and dates and
//! escaping strings into JSON; the same page asked again with nothing changed renders the same
//! bytes. The account keeps such renderings here under its caller's key, each stamped with the
//! account's revision (bumped by every write under the write lock), and hands them back while
//! the revision is unchanged. The memo holds bytes and knows nothing of what they are; it is
//! one per account, so nothing rendered for one account can be served to another, and it goes
//! away with the account (a reset builds a new one).
//!
//! Bounded in count and bytes: past either bound the oldest entries are dropped, and a
//! rendering larger than [`MAX_ENTRY_BYTES`] is not kept at all.
use std::collections::{HashMap, VecDeque};

use bytes::Bytes;

/// Renderings kept per account.
pub const MAX_ENTRIES: usize = 32;
/// Bytes of renderings kept per account.
pub const MAX_BYTES: usize = 2 * 1024 * 1024;
/// A rendering larger than this is not kept.
pub const MAX_ENTRY_BYTES: usize = 512 * 1024;

#[derive(Debug, Default)]
pub(super) struct Memo {
    entries: HashMap<String, (u64, Bytes)>,
    /// Keys, oldest first (each key once).
    order: VecDeque<String>,
    bytes: usize,
}

impl Memo {
    /// The rendering kept under `key` if it was made at `revision`.
    pub(super) fn get(&self, key: &str, revision: u64) -> Option<Bytes> {
        match self.entries.get(key) {
            Some((at, bytes)) if *at == revision => Some(bytes.clone()),
            _ => None,
        }
    }

    /// Keeps `bytes` under `key`, made at `revision`, replacing what was there.
    pub(super) fn put(&mut self, key: &str, revision: u64, bytes: Bytes) {
        if bytes.len() > MAX_ENTRY_BYTES {
            return;
        }
        if let Some((_, old)) = self.entries.remove(key) {
            self.bytes -= old.len();
            self.order.retain(|k| k != key);
        }
        while !self.order.is_empty() && (self.order.len() >= MAX_ENTRIES || self.bytes + bytes.len() > MAX_BYTES) {
            if let Some(oldest) = self.order.pop_front()
                && let Some((_, old)) = self.entries.remove(&oldest)
            {
                self.bytes -= old.len();
            }
        }
        self.bytes += bytes.len();
        self.order.push_back(key.to_owned());
        self.entries.insert(key.to_owned(), (revision, bytes));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rendering_is_served_only_at_its_revision() {
        let mut m = Memo::default();
        m.put("k", 7, Bytes::from_static(b"seven"));
        assert_eq!(m.get("k", 7).as_deref(), Some(&b"seven"[..]));
        assert_eq!(m.get("k", 8), None, "the state changed since");
        assert_eq!(m.get("other", 7), None);
        m.put("k", 8, Bytes::from_static(b"eight"));
        assert_eq!(m.get("k", 8).as_deref(), Some(&b"eight"[..]));
        assert_eq!(m.bytes, 5);
        assert_eq!(m.order.len(), 1);
    }

    #[test]
    fn count_and_bytes_are_bounded_oldest_first() {
        let mut m = Memo::default();
        for i in 0..MAX_ENTRIES + 5 {
            m.put(&format!("k{i}"), 1, Bytes::from_static(b"x"));
        }
        assert_eq!(m.len(), MAX_ENTRIES);
        assert_eq!(m.get("k0", 1), None);
        assert!(m.get(&format!("k{}", MAX_ENTRIES + 4), 1).is_some());

        let mut m = Memo::default();
        let big = Bytes::from(vec![0; MAX_ENTRY_BYTES]);
        for i in 0..8 {
            m.put(&format!("b{i}"), 1, big.clone());
            assert!(m.bytes <= MAX_BYTES, "{} bytes kept", m.bytes);
        }
        assert_eq!(m.bytes, MAX_BYTES / MAX_ENTRY_BYTES * MAX_ENTRY_BYTES);
        assert!(m.get("b7", 1).is_some() && m.get("b0", 1).is_none());

        m.put("huge", 1, Bytes::from(vec![0; MAX_ENTRY_BYTES + 1]));
        assert_eq!(m.get("huge", 1), None, "too large to keep");
    }
}
