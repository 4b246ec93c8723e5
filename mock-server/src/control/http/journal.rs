//! The journal: queries and the live NDJSON follow.
use std::collections::VecDeque;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::{broadcast, watch};

use super::Error;
use super::error::{Answer, QueryOf, Tenant, existing};
use crate::journal::{Entry, Filter, Kind};
use crate::server::AppState;

/// Journal filters in a query string: `kind` is a comma-separated list.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct JournalQuery {
    #[serde(default)]
    account: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    identity: Option<String>,
    #[serde(default)]
    session: Option<u64>,
    #[serde(default)]
    after: Option<u64>,
    #[serde(default)]
    contains: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
}

impl JournalQuery {
    fn into_filter(self, account: Option<String>) -> Result<Filter, Error> {
        if let (Some(path), Some(query)) = (&account, &self.account) {
            if path != query {
                return Err(Error::invalid("account in the query differs from the path's"));
            }
        }
        let kind = match self.kind.as_deref().filter(|k| !k.is_empty()) {
            None => None,
            Some(list) => Some(
                list.split(',')
                    .map(|k| {
                        serde_json::from_value::<Kind>(Value::String(k.trim().to_owned())).map_err(|_| {
                            Error::invalid(format!(
                                "unknown journal kind {k:?}; kinds: connection, packet_in, packet_out, upstream, rest, \
                                 sync_push, media, fault, control"
                            ))
                        })
                    })
                    .collect::<Result<Vec<Kind>, Error>>()?,
            ),
        };
        Ok(Filter {
            account: account.or(self.account),
            kind,
            identity: self.identity,
            session: self.session,
            after: self.after,
            contains: self.contains,
            limit: self.limit,
        })
    }
}

pub(super) async fn journal(State(st): State<AppState>, QueryOf(q): QueryOf<JournalQuery>) -> Answer {
    Ok(Json(json!(st.control.journal.query(&q.into_filter(None)?))))
}

pub(super) async fn tenant_journal(State(st): State<AppState>, Tenant(sid): Tenant, QueryOf(q): QueryOf<JournalQuery>) -> Answer {
    existing(&st, &sid)?;
    Ok(Json(json!(st.control.journal.query(&q.into_filter(Some(sid))?))))
}

pub(super) async fn journal_stream(State(st): State<AppState>, QueryOf(q): QueryOf<JournalQuery>) -> Answer<Response> {
    Ok(stream(&st, q.into_filter(None)?))
}

pub(super) async fn tenant_journal_stream(
    State(st): State<AppState>,
    Tenant(sid): Tenant,
    QueryOf(q): QueryOf<JournalQuery>,
) -> Answer<Response> {
    existing(&st, &sid)?;
    Ok(stream(&st, q.into_filter(Some(sid))?))
}

/// Newline-delimited JSON: with `after`, the matching entries still in the ring first; then new
/// entries as they are recorded. `limit` ends the stream after that many entries. A follower
/// that falls more than the broadcast's capacity behind gets `{"lagged": N}` (entries it
/// missed) and goes on; the stream ends when the server shuts down.
fn stream(st: &AppState, mut filter: Filter) -> Response {
    // Follow before reading the ring, so nothing recorded in between is missed; duplicates are
    // skipped by `seq`.
    let live = st.control.journal.follow();
    let remaining = filter.limit.take();
    let backlog: VecDeque<Entry> = match filter.after {
        Some(_) => st.control.journal.query(&filter).entries.into(),
        None => VecDeque::new(),
    };
    let follower = Follower {
        live,
        backlog,
        filter,
        last_seq: 0,
        remaining,
        stop: st.stop.subscribe(),
    };
    let body = futures_util::stream::unfold(follower, |mut f| async move {
        let line = f.next_line().await?;
        Some((Ok::<_, std::convert::Infallible>(line), f))
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "application/x-ndjson")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(body))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

struct Follower {
    live: broadcast::Receiver<Entry>,
    backlog: VecDeque<Entry>,
    filter: Filter,
    last_seq: u64,
    remaining: Option<usize>,
    stop: watch::Receiver<bool>,
}

impl Follower {
    /// The next line to send, or `None` when the stream is over.
    async fn next_line(&mut self) -> Option<Bytes> {
        if self.remaining == Some(0) {
            return None;
        }
        let entry = match self.backlog.pop_front() {
            Some(e) => e,
            None => loop {
                tokio::select! {
                    r = self.live.recv() => match r {
                        Ok(e) if e.seq > self.last_seq && self.filter.matches(&e) => break e,
                        Ok(_) => {}
                        Err(broadcast::error::RecvError::Lagged(n)) => return Some(line(&json!({ "lagged": n }))),
                        Err(broadcast::error::RecvError::Closed) => return None,
                    },
                    () = stopped(&mut self.stop) => return None,
                }
            },
        };
        self.last_seq = entry.seq;
        if let Some(r) = self.remaining.as_mut() {
            *r -= 1;
        }
        Some(line(&entry))
    }
}

pub(super) fn line(v: &impl serde::Serialize) -> Bytes {
    let mut bytes = serde_json::to_vec(v).unwrap_or_default();
    bytes.push(b'\n');
    bytes.into()
}

/// Completes when the server shuts down (or its stop flag is gone).
pub(super) async fn stopped(stop: &mut watch::Receiver<bool>) {
    while !*stop.borrow_and_update() {
        if stop.changed().await.is_err() {
            return;
        }
    }
}
