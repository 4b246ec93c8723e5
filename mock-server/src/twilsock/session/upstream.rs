//! Upstream requests (`message` packets): each handled by the backend on its own task, its
//! reply encoded and reserved in the outbox there, then queued in completion order, after the
//! latency in force (`SessionCommand::SetLatency`).
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::task::{self, JoinError, JoinSet};
use tokio::time::Instant;

use super::super::backend::{Backend, RequestLine, SessionInfo, SessionObservation, UpstreamRequest, UpstreamResponse};
use super::super::codec::Packet;
use super::super::outbox::{Outbox, ReplyGate};
use super::{Flow, Session, packets, request};

impl<B: Backend> Session<B> {
    /// `message`: decoded and handed to the backend on its own task, so that a slow answer never
    /// holds up the socket.
    pub(super) fn on_upstream(&mut self, id: &str, packet: &Packet) -> Flow {
        let parsed = request::parse(packet);
        self.observe(SessionObservation::PacketIn {
            method: "message",
            id,
            request: parsed.as_ref().ok().map(|r| RequestLine {
                method: &r.method,
                path: &r.path,
            }),
        });
        // The SDK queues requests until `init` succeeded, so this is a misbehaving client.
        let Some(info) = &self.established else {
            self.send(packets::reply_status(
                id,
                403,
                "FORBIDDEN",
                Some("upstream message before a successful init"),
                None,
            ));
            return Flow::Continue;
        };
        match parsed {
            Ok(req) => {
                tracing::trace!(method = %req.method, path = %req.path, "upstream");
                self.upstream.spawn(id, self.backend.clone(), info.clone(), req);
            }
            Err(e) => {
                tracing::debug!(error = %e, "bad upstream request");
                self.send(packets::reply_status(id, 400, "BAD_REQUEST", Some(&e.to_string()), None));
            }
        }
        Flow::Continue
    }

    /// Queues the upstream replies whose latency has passed, in completion order.
    pub(super) fn send_due_replies(&mut self) {
        let now = Instant::now();
        while let Some(done) = self.upstream.pop_due(now, self.latency) {
            // Its bytes were reserved when it was built.
            if let Err(e) = self.outbox.push_own_reserved(done.frame) {
                tracing::debug!(error = ?e, "reply not queued");
            }
            // Released right after its reply (a gate releases itself when dropped).
            drop(done.gate);
            let waited = now.saturating_duration_since(done.request.started);
            self.observe(SessionObservation::UpstreamReply {
                id: &done.request.packet_id,
                request: RequestLine {
                    method: &done.request.method,
                    path: &done.request.path,
                },
                status: done.status,
                duration_ms: u64::try_from(waited.as_millis()).unwrap_or(u64::MAX),
            });
        }
    }
}

/// Upstream requests in flight, each on its own task (a panicking handler fails its request
/// with a 500, not the session), and the replies waiting out a latency.
#[derive(Default)]
pub(super) struct Upstream {
    /// `None` while nothing is in flight: an empty `JoinSet` still holds its shared state.
    tasks: Option<JoinSet<Built>>,
    /// Task → what it answers.
    requests: HashMap<task::Id, InFlight>,
    /// Replies of completed requests not queued yet, in completion order.
    pub(super) delayed: VecDeque<Completed>,
    /// Bytes of the encoded replies in `delayed`.
    pub(super) delayed_bytes: usize,
}

/// What the reply to an upstream request needs, and its observation.
struct InFlight {
    packet_id: String,
    method: String,
    path: String,
    started: Instant,
}

/// An upstream reply as its handler's task leaves it: encoded, and its bytes reserved in the
/// session's outbox (`frame` is `None` when they did not fit: the outbox overflowed and the
/// session is closing). Done on the handler's task, so that a burst of large replies is bounded
/// in bytes as each one is built, not only once the driver gets to it.
pub(super) struct Built {
    status: u16,
    frame: Option<Bytes>,
    gate: Option<ReplyGate>,
}

impl Built {
    fn new(outbox: &Outbox, packet_id: &str, resp: UpstreamResponse) -> Built {
        let frame = packets::reply_upstream(packet_id, &resp);
        let frame = outbox.reserve(frame.len()).ok().map(|()| frame);
        Built {
            status: resp.status,
            frame,
            gate: resp.gate,
        }
    }
}

/// A completed upstream request, its reply encoded (and its bytes reserved).
pub(super) struct Completed {
    request: InFlight,
    status: u16,
    frame: Bytes,
    gate: Option<ReplyGate>,
    at: Instant,
}

impl Upstream {
    fn spawn<B: Backend>(&mut self, packet_id: &str, backend: Arc<B>, info: SessionInfo<B::Caller>, req: UpstreamRequest) {
        let request = InFlight {
            packet_id: packet_id.to_owned(),
            method: req.method.clone(),
            path: req.path.clone(),
            started: Instant::now(),
        };
        let id = request.packet_id.clone();
        let handle = self.tasks.get_or_insert_with(JoinSet::new).spawn(async move {
            let outbox = info.outbox.clone();
            let resp = backend.upstream(&info, req).await;
            Built::new(&outbox, &id, resp)
        });
        self.requests.insert(handle.id(), request);
    }

    /// Forgets the request a task answered. The map's storage is freed once no request is in
    /// flight: most sessions sit idle after their first few requests, and each one would
    /// otherwise keep the table (and `delayed`'s slots) its busiest moment needed.
    fn take_request(&mut self, task: task::Id) -> Option<InFlight> {
        let request = self.requests.remove(&task);
        if self.requests.is_empty() {
            self.requests = HashMap::new();
        }
        if self.tasks.as_ref().is_some_and(JoinSet::is_empty) {
            self.tasks = None;
        }
        request
    }

    /// The next request whose handler finished; `None` at once when none is in flight.
    pub(super) async fn join_next(&mut self) -> Option<Result<(task::Id, Built), JoinError>> {
        self.tasks.as_mut()?.join_next_with_id().await
    }

    /// Requests whose reply has not been queued yet.
    pub(super) fn in_flight(&self) -> usize {
        self.tasks.as_ref().map_or(0, JoinSet::len) + self.delayed.len()
    }

    /// Puts the reply of a finished request in line (a failed handler's is a 500). `session`: the
    /// session's id, for the log.
    pub(super) fn complete(&mut self, done: Result<(task::Id, Built), JoinError>, outbox: &Outbox, session: u64) {
        let (request, built) = match done {
            Ok((task, built)) => match self.take_request(task) {
                Some(request) => (request, built),
                None => return,
            },
            Err(e) => {
                let Some(request) = self.take_request(e.id()) else {
                    return;
                };
                tracing::error!(session, error = %e, packet = %request.packet_id, "upstream handler failed");
                let built = Built::new(
                    outbox,
                    &request.packet_id,
                    UpstreamResponse::error(500, 20500, "Internal Server Error"),
                );
                (request, built)
            }
        };
        // Over the byte budget: the outbox overflowed and the session is closing.
        let Some(frame) = built.frame else {
            return;
        };
        self.delayed_bytes += frame.len();
        self.delayed.push_back(Completed {
            frame,
            status: built.status,
            gate: built.gate,
            request,
            at: Instant::now(),
        });
    }

    /// When the oldest waiting reply is due under `latency`. Completion times only grow, so the
    /// oldest is also the first due: the order of completion is kept.
    pub(super) fn next_due(&self, latency: Duration) -> Option<Instant> {
        // `MAX_LATENCY` keeps this far from the end of `Instant`; were it ever reached, the
        // reply is due rather than the session panicking.
        self.delayed.front().map(|c| c.at.checked_add(latency).unwrap_or(c.at))
    }

    fn pop_due(&mut self, now: Instant, latency: Duration) -> Option<Completed> {
        if self.next_due(latency)? <= now {
            let done = self.delayed.pop_front()?;
            self.delayed_bytes -= done.frame.len();
            if self.delayed.is_empty() {
                // An idle session keeps no storage for replies (see `take_request`).
                self.delayed = VecDeque::new();
            }
            Some(done)
        } else {
            None
        }
    }
}
