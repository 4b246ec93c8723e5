//! Typed journal queries: what the server observed (connections, packets, REST requests, pushes,
//! faults, webhooks), and waits for an observation.
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rehearsal_mock_server::journal::{self as inner, Journal};
use serde_json::Value;
use tokio::sync::broadcast::error::RecvError;

use crate::error::WaitError;

/// What kind of observation an [`Entry`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EntryKind {
    /// A socket was accepted, established, updated or closed.
    Connection,
    /// A twilsock packet from a client (summarised).
    PacketIn,
    /// A twilsock packet the session wrote to its client (replies, control frames).
    PacketOut,
    /// A request tunnelled over twilsock and its answer.
    Upstream,
    /// A REST request and its answer.
    Rest,
    /// A Sync event pushed to subscribers (once per event).
    SyncPush,
    /// A media upload or download.
    Media,
    /// An injected fault took effect (or a session applied a control command).
    Fault,
    /// A control-plane action.
    Control,
    /// A webhook delivery to your backend.
    Webhook,
}

impl EntryKind {
    fn to_inner(self) -> inner::Kind {
        match self {
            EntryKind::Connection => inner::Kind::Connection,
            EntryKind::PacketIn => inner::Kind::PacketIn,
            EntryKind::PacketOut => inner::Kind::PacketOut,
            EntryKind::Upstream => inner::Kind::Upstream,
            EntryKind::Rest => inner::Kind::Rest,
            EntryKind::SyncPush => inner::Kind::SyncPush,
            EntryKind::Media => inner::Kind::Media,
            EntryKind::Fault => inner::Kind::Fault,
            EntryKind::Control => inner::Kind::Control,
            EntryKind::Webhook => inner::Kind::Webhook,
        }
    }

    fn of(k: inner::Kind) -> EntryKind {
        match k {
            inner::Kind::Connection => EntryKind::Connection,
            inner::Kind::PacketIn => EntryKind::PacketIn,
            inner::Kind::PacketOut => EntryKind::PacketOut,
            inner::Kind::Upstream => EntryKind::Upstream,
            inner::Kind::Rest => EntryKind::Rest,
            inner::Kind::SyncPush => EntryKind::SyncPush,
            inner::Kind::Media => EntryKind::Media,
            inner::Kind::Fault => EntryKind::Fault,
            inner::Kind::Control => EntryKind::Control,
            inner::Kind::Webhook => EntryKind::Webhook,
        }
    }
}

/// One observation.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Entry {
    /// Increases by one per entry; pass it to [`JournalFilter::after`] to look only later.
    pub seq: u64,
    /// When, on the account's clock (the server's when no account is involved).
    pub at: SystemTime,
    pub kind: EntryKind,
    /// The account (tenant) SID, when one is involved.
    pub account: Option<String>,
    /// The twilsock session id, for session observations.
    pub session: Option<u64>,
    /// The client identity, when known.
    pub identity: Option<String>,
    /// One readable line, e.g. `POST /v1/Conversations -> 201` or `connection established`.
    pub summary: String,
    /// Structured details (method, path, status, codes, sizes…), as the HTTP API shows them.
    pub detail: Value,
}

impl Entry {
    fn of(e: inner::Entry) -> Entry {
        Entry {
            seq: e.seq,
            at: UNIX_EPOCH + Duration::from_millis(u64::try_from(e.at.0).unwrap_or(0)),
            kind: EntryKind::of(e.kind),
            account: e.account,
            session: e.session,
            identity: e.identity,
            summary: e.summary,
            detail: e.detail,
        }
    }
}

/// Which entries a query or a wait is about; every condition set must hold.
///
/// ```
/// use rehearsal::{EntryKind, JournalFilter};
/// let f = JournalFilter::new().kind(EntryKind::Connection).identity("alice").contains("established");
/// assert_eq!(f.to_string(), "kind=[Connection] identity=alice contains=\"established\"");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct JournalFilter {
    /// Any of these kinds (empty: any kind).
    pub kinds: Vec<EntryKind>,
    pub identity: Option<String>,
    pub session: Option<u64>,
    /// A substring of the summary.
    pub contains: Option<String>,
    /// Only entries with a greater `seq`.
    pub after: Option<u64>,
}

impl JournalFilter {
    /// Matches every entry.
    ///
    /// ```
    /// assert_eq!(rehearsal::JournalFilter::new(), rehearsal::JournalFilter::default());
    /// ```
    pub fn new() -> JournalFilter {
        JournalFilter::default()
    }

    /// Also matches entries of this kind (the first call narrows to it).
    ///
    /// ```
    /// use rehearsal::{EntryKind, JournalFilter};
    /// let f = JournalFilter::new().kind(EntryKind::Rest).kind(EntryKind::Upstream);
    /// assert_eq!(f.kinds, [EntryKind::Rest, EntryKind::Upstream]);
    /// ```
    pub fn kind(mut self, kind: EntryKind) -> Self {
        self.kinds.push(kind);
        self
    }

    /// Only entries about this client identity.
    ///
    /// ```
    /// assert_eq!(rehearsal::JournalFilter::new().identity("bob").identity.as_deref(), Some("bob"));
    /// ```
    pub fn identity(mut self, identity: impl Into<String>) -> Self {
        self.identity = Some(identity.into());
        self
    }

    /// Only entries about this twilsock session.
    ///
    /// ```
    /// assert_eq!(rehearsal::JournalFilter::new().session(7).session, Some(7));
    /// ```
    pub fn session(mut self, session: u64) -> Self {
        self.session = Some(session);
        self
    }

    /// Only entries whose summary contains `text`.
    ///
    /// ```
    /// let f = rehearsal::JournalFilter::new().contains("-> 404");
    /// assert_eq!(f.contains.as_deref(), Some("-> 404"));
    /// ```
    pub fn contains(mut self, text: impl Into<String>) -> Self {
        self.contains = Some(text.into());
        self
    }

    /// Only entries recorded after `seq` (see [`crate::Tenant::journal_mark`]).
    ///
    /// ```
    /// assert_eq!(rehearsal::JournalFilter::new().after(41).after, Some(41));
    /// ```
    pub fn after(mut self, seq: u64) -> Self {
        self.after = Some(seq);
        self
    }

    pub(crate) fn to_inner(&self, account: Option<&str>) -> inner::Filter {
        inner::Filter {
            account: account.map(str::to_owned),
            kind: (!self.kinds.is_empty()).then(|| self.kinds.iter().map(|k| k.to_inner()).collect()),
            identity: self.identity.clone(),
            session: self.session,
            after: self.after,
            contains: self.contains.clone(),
            limit: None,
        }
    }
}

impl fmt::Display for JournalFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if !self.kinds.is_empty() {
            parts.push(format!("kind={:?}", self.kinds));
        }
        if let Some(i) = &self.identity {
            parts.push(format!("identity={i}"));
        }
        if let Some(s) = self.session {
            parts.push(format!("session={s}"));
        }
        if let Some(c) = &self.contains {
            parts.push(format!("contains={c:?}"));
        }
        if let Some(a) = self.after {
            parts.push(format!("after={a}"));
        }
        if parts.is_empty() {
            f.write_str("(any entry)")
        } else {
            f.write_str(&parts.join(" "))
        }
    }
}

pub(crate) fn query(journal: &Journal, filter: &JournalFilter, account: Option<&str>) -> Vec<Entry> {
    journal
        .query(&filter.to_inner(account))
        .entries
        .into_iter()
        .map(Entry::of)
        .collect()
}

/// The newest `seq` so far.
pub(crate) fn mark(journal: &Journal) -> u64 {
    journal
        .query(&inner::Filter {
            after: Some(u64::MAX),
            ..inner::Filter::default()
        })
        .last_seq
}

/// The oldest retained entry matching `filter`, as soon as there is one, or a timeout. Follows
/// the journal live, so it wakes on the entry rather than polling.
pub(crate) async fn wait_for(
    journal: &Journal,
    filter: &JournalFilter,
    account: Option<&str>,
    timeout: Duration,
) -> Result<Entry, WaitError> {
    let inner_filter = filter.to_inner(account);
    // Subscribe before looking, so that nothing recorded in between is missed.
    let mut live = journal.follow();
    let deadline = tokio::time::Instant::now() + timeout;
    let first = |j: &Journal| j.query(&inner_filter).entries.into_iter().next();
    if let Some(e) = first(journal) {
        return Ok(Entry::of(e));
    }
    loop {
        match tokio::time::timeout_at(deadline, live.recv()).await {
            Ok(Ok(e)) if inner_filter.matches(&e) => return Ok(Entry::of(e)),
            Ok(Ok(_)) => {}
            // Missed some live entries: the ring is the record.
            Ok(Err(RecvError::Lagged(_))) => {
                if let Some(e) = first(journal) {
                    return Ok(Entry::of(e));
                }
            }
            Ok(Err(RecvError::Closed)) => return Err(WaitError::Stopped),
            Err(_) => {
                return Err(WaitError::Timeout {
                    filter: filter.to_string(),
                    timeout,
                });
            }
        }
    }
}
