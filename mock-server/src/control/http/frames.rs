//! The frame view: taps on live sessions ([`crate::frame_tap`]) and their frames, decoded, as a
//! page or followed live (NDJSON, like the journal's stream).
//!
//! `PUT /tenants/{AC}/connections/{id}/tap` turns the tap on for a live session of the tenant
//! (idempotent), `DELETE` turns it off and frees the frames; `GET …/frames[?after=&limit=]`
//! reads them, `GET …/frames/stream[?after=]` follows them. The frames of a session that ended
//! stay readable until the tap is turned off, the tenant reset or deleted, or a newer tap
//! evicts them. A tap is found only through the tenant and the server that turned it on.
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::watch;

use super::Error;
use super::error::{Answer, QueryOf, existing};
use super::journal::{line, stopped};
use crate::frame_tap::{FrameView, RING_FRAMES, Ring};
use crate::server::AppState;

/// Frames read from the ring per turn of a stream.
const STREAM_BATCH: usize = 64;

/// `{account}` and `{id}` of the path, the id range-checked.
fn target(params: &HashMap<String, String>) -> Result<(String, u64), Error> {
    let account = params.get("account").cloned().unwrap_or_default();
    let id = params.get("id").map(String::as_str).unwrap_or_default();
    let id = id
        .parse::<u64>()
        .map_err(|_| Error::invalid(format!("{id:?} is not a session id")))?;
    Ok((account, id))
}

fn no_tap(account: &str, id: u64) -> Error {
    Error::new(
        StatusCode::NOT_FOUND,
        "no_tap",
        format!("session {id} of tenant {account} is not tapped: PUT …/connections/{id}/tap first"),
    )
}

fn ring(st: &AppState, params: &HashMap<String, String>) -> Result<Arc<Ring>, Error> {
    let (account, id) = target(params)?;
    existing(st, &account)?;
    st.control.sessions.tapped(&account, id).ok_or_else(|| no_tap(&account, id))
}

pub(super) async fn start_tap(State(st): State<AppState>, Path(params): Path<HashMap<String, String>>) -> Answer {
    let (account, id) = target(&params)?;
    let clock = st
        .domain
        .account(&account)
        .ok_or_else(|| Error::no_tenant(&account))?
        .clock()
        .clone();
    let ring = st.control.sessions.tap(&account, id, clock).ok_or_else(|| {
        Error::new(
            StatusCode::NOT_FOUND,
            "no_session",
            format!("no live session {id} in tenant {account}"),
        )
    })?;
    Ok(Json(json!({ "session": ring.session(), "tapping": true })))
}

pub(super) async fn stop_tap(State(st): State<AppState>, Path(params): Path<HashMap<String, String>>) -> Answer<StatusCode> {
    let (account, id) = target(&params)?;
    existing(&st, &account)?;
    match st.control.sessions.untap(&account, Some(id)) {
        0 => Err(no_tap(&account, id)),
        _ => Ok(StatusCode::NO_CONTENT),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FramesQuery {
    #[serde(default)]
    after: Option<u64>,
    #[serde(default)]
    limit: Option<usize>,
}

/// `{frames, dropped, tapping}`: the frames after `after` (oldest first, at most `limit` ≤ the
/// ring's size), how many the ring dropped since the tap went on, and whether it is still on.
pub(super) async fn frames(
    State(st): State<AppState>,
    Path(params): Path<HashMap<String, String>>,
    QueryOf(q): QueryOf<FramesQuery>,
) -> Answer {
    let ring = ring(&st, &params)?;
    let page = ring.page(q.after.unwrap_or(0), q.limit.unwrap_or(RING_FRAMES).min(RING_FRAMES));
    let frames: Vec<FrameView> = page.frames.iter().map(|f| f.view()).collect();
    Ok(Json(json!({ "frames": frames, "dropped": page.dropped, "tapping": page.tapping })))
}

/// NDJSON: the frames still kept after `after` (all of them without it), then each new frame as
/// it is recorded; `{"lagged": N}` when the ring dropped N frames before this follower read
/// them. Ends when the tap goes off or the server shuts down.
pub(super) async fn stream(
    State(st): State<AppState>,
    Path(params): Path<HashMap<String, String>>,
    QueryOf(q): QueryOf<FramesQuery>,
) -> Answer<Response> {
    let ring = ring(&st, &params)?;
    if q.limit.is_some() {
        return Err(Error::invalid("the frame stream takes `after` only"));
    }
    let follower = Follower {
        changes: ring.watch(),
        ring,
        last: q.after.unwrap_or(0),
        strict: q.after.is_some(),
        queue: VecDeque::new(),
        stop: st.stop.subscribe(),
    };
    let body = futures_util::stream::unfold(follower, |mut f| async move {
        let line = f.next_line().await?;
        Some((Ok::<_, std::convert::Infallible>(line), f))
    });
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, "application/x-ndjson")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(body))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()))
}

struct Follower {
    ring: Arc<Ring>,
    changes: watch::Receiver<u64>,
    /// The `seq` of the last frame sent.
    last: u64,
    /// Whether frames missing after `last` count as lagged (not for the first read without
    /// `after`: frames dropped before the follower came are not its loss).
    strict: bool,
    queue: VecDeque<Value>,
    stop: watch::Receiver<bool>,
}

impl Follower {
    async fn next_line(&mut self) -> Option<Bytes> {
        loop {
            if let Some(v) = self.queue.pop_front() {
                return Some(line(&v));
            }
            // Seen before reading, so a frame recorded after the read wakes the wait below.
            self.changes.borrow_and_update();
            let page = self.ring.page(self.last, STREAM_BATCH);
            if let Some(first) = page.frames.first() {
                if self.strict && first.seq > self.last.saturating_add(1) {
                    self.queue.push_back(json!({ "lagged": first.seq - self.last - 1 }));
                }
                self.strict = true;
                for f in &page.frames {
                    self.last = f.seq;
                    self.queue.push_back(json!(f.view()));
                }
                continue;
            }
            if !page.tapping {
                return None;
            }
            tokio::select! {
                r = self.changes.changed() => if r.is_err() { return None },
                () = stopped(&mut self.stop) => return None,
            }
        }
    }
}
