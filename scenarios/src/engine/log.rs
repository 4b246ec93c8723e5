//! The shared record of one play: what the client reported, what the server journaled, the
//! commands and their answers, marks and actions, each at milliseconds since the scenario
//! started. Waiting, triggers and judging all read it; only the engine's tasks write it.
//!
//! Times are wall time: the journal's entries carry the system clock (`wall_ms`), client events
//! the adapter's (`at`, same machine), everything else is stamped on arrival. Tenant clocks may
//! be frozen or moved; windows and gaps are real time.
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::format::ObservationKind;
use crate::outcome::{TimelineEntry, Verdict};

/// Microseconds since the scenario started (reports show milliseconds; microseconds keep a
/// mark apart from the entries just before it).
pub(crate) type Us = u64;

/// Microseconds as the milliseconds reports show.
pub(crate) fn ms(at: Us) -> u64 {
    at / 1000
}

/// A client event, as the driver reported it.
#[derive(Debug, Clone)]
pub(crate) struct EventRec {
    pub at: Us,
    pub client: String,
    pub name: String,
    pub payload: Value,
}

/// A journal entry of the tenant, as an observation a scenario can name.
#[derive(Debug, Clone)]
pub(crate) struct ObsRec {
    pub at: Us,
    pub seq: u64,
    pub kind: ObservationKind,
    pub session: Option<u64>,
    pub identity: Option<String>,
    /// What `match` compares with (see `ObservationKind`).
    pub detail: Value,
    pub summary: String,
}

/// How a command ended.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Reply {
    Ok(Value),
    /// `{message, code?, status?}`.
    Error(Value),
    Unsupported(String),
    /// No answer within the step's timeout.
    Timeout,
    /// The client went away before answering.
    Gone,
}

impl Reply {
    /// `ok`, `error`, `unsupported`, `timeout`, `gone`.
    pub fn word(&self) -> &'static str {
        match self {
            Reply::Ok(_) => "ok",
            Reply::Error(_) => "error",
            Reply::Unsupported(_) => "unsupported",
            Reply::Timeout => "timeout",
            Reply::Gone => "gone",
        }
    }

    /// The value a `match` compares with: the result, or the error object.
    pub fn value(&self) -> Value {
        match self {
            Reply::Ok(v) | Reply::Error(v) => v.clone(),
            Reply::Unsupported(m) => serde_json::json!({ "message": m }),
            Reply::Timeout | Reply::Gone => Value::Null,
        }
    }
}

/// One command sent to the client, and its answer once there is one.
#[derive(Debug, Clone)]
pub(crate) struct CommandRec {
    pub label: Option<String>,
    pub client: String,
    /// The protocol's command name.
    pub cmd: String,
    /// The conversation as the scenario wrote it (a unique name), if any.
    pub conversation: Option<String>,
    pub body: Value,
    pub sent_at: Us,
    pub answer: Option<(Us, Reply)>,
}

/// Why a play stopped early (the first reason wins).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Abort {
    pub verdict: Verdict,
    pub reason: String,
}

#[derive(Default)]
pub(crate) struct Records {
    pub events: Vec<EventRec>,
    /// Sorted by `at` (a connection attempt is attributed once its `init` names the tenant).
    pub observations: Vec<ObsRec>,
    pub commands: Vec<CommandRec>,
    pub marks: Vec<(String, Us)>,
    pub abort: Option<Abort>,
    /// When the client's event stream ended (its process exited or was stopped).
    pub client_gone: Option<Us>,
    timeline: Vec<TimelineEntry>,
    timeline_dropped: u64,
}

impl Records {
    pub fn mark(&self, name: &str) -> Option<Us> {
        if name == "start" {
            return Some(0);
        }
        self.marks.iter().find(|(m, _)| m == name).map(|(_, at)| *at)
    }
}

/// The record of one play, shared by the engine's tasks.
pub(crate) struct Log {
    records: Mutex<Records>,
    tick: watch::Sender<u64>,
    started: Instant,
    started_unix_us: i64,
    max_timeline: usize,
}

impl Log {
    /// Starts the scenario's clock now.
    pub fn new(max_timeline: usize) -> Log {
        Log {
            records: Mutex::default(),
            tick: watch::channel(0).0,
            started: Instant::now(),
            started_unix_us: unix_us(),
            max_timeline,
        }
    }

    /// Microseconds since the start (wall time).
    pub fn now(&self) -> Us {
        self.of_unix_us(unix_us())
    }

    /// A Unix-microseconds time as microseconds since the start (0 if earlier).
    pub fn of_unix_us(&self, unix_us: i64) -> Us {
        u64::try_from(unix_us.saturating_sub(self.started_unix_us)).unwrap_or(0)
    }

    /// The instant `at` stands for, to sleep until it.
    pub fn instant(&self, at: Us) -> Instant {
        let far = self.started + Duration::from_secs(24 * 3600);
        self.started.checked_add(Duration::from_micros(at)).map_or(far, |i| i.min(far))
    }

    /// Reads the records under the lock (keep `f` short: no awaiting inside).
    pub fn read<R>(&self, f: impl FnOnce(&Records) -> R) -> R {
        f(&self.records.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn write<R>(&self, f: impl FnOnce(&mut Records) -> R) -> R {
        let out = f(&mut self.records.lock().unwrap_or_else(|e| e.into_inner()));
        self.tick.send_modify(|n| *n = n.wrapping_add(1));
        out
    }

    /// Wakes on every change (subscribe before checking, then await `changed`).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.tick.subscribe()
    }

    pub fn timeline(&self, at: Us, lane: &str, actor: &str, summary: String, detail: Value) {
        self.write(|r| push_timeline(r, self.max_timeline, at, lane, actor, summary, detail));
    }

    pub fn push_event(&self, rec: EventRec) {
        let summary = event_summary(&rec);
        self.write(|r| {
            push_timeline(r, self.max_timeline, rec.at, "client", &rec.client, summary, rec.payload.clone());
            r.events.push(rec);
        });
    }

    /// Adds an observation in time order.
    pub fn push_observation(&self, rec: ObsRec) {
        self.write(|r| {
            let at = r.observations.partition_point(|o| o.at <= rec.at);
            r.observations.insert(at, rec);
        });
    }

    /// Changes the detail of the observations of `session` of one kind (a connection attempt
    /// learns later whether it was refused).
    pub fn update_observations(&self, session: u64, kind: ObservationKind, f: impl Fn(&mut Value)) {
        self.write(|r| {
            for o in r.observations.iter_mut().filter(|o| o.session == Some(session) && o.kind == kind) {
                f(&mut o.detail);
            }
        });
    }

    /// Records a command as sent; returns its position, for [`Log::answer`].
    pub fn push_command(&self, rec: CommandRec) -> usize {
        self.write(|r| {
            let summary = match &rec.conversation {
                Some(c) => format!("{} {c}", rec.cmd),
                None => rec.cmd.clone(),
            };
            push_timeline(r, self.max_timeline, rec.sent_at, "command", &rec.client, summary, rec.body.clone());
            r.commands.push(rec);
            r.commands.len() - 1
        })
    }

    pub fn answer(&self, position: usize, at: Us, reply: Reply) {
        self.write(|r| {
            let Some(c) = r.commands.get_mut(position) else { return };
            let client = c.client.clone();
            let summary = match &reply {
                Reply::Ok(_) => format!("{}: ok", c.cmd),
                Reply::Error(e) => format!(
                    "{}: error: {}",
                    c.cmd,
                    e.get("message").and_then(Value::as_str).unwrap_or("(no message)")
                ),
                Reply::Unsupported(m) => format!("{}: unsupported: {m}", c.cmd),
                Reply::Timeout => format!("{}: no answer in time", c.cmd),
                Reply::Gone => format!("{}: the client went away", c.cmd),
            };
            let detail = reply.value();
            c.answer = Some((at, reply));
            push_timeline(r, self.max_timeline, at, "answer", &client, summary, detail);
        });
    }

    pub fn mark(&self, name: &str, at: Us) {
        self.write(|r| {
            r.marks.push((name.to_owned(), at));
            push_timeline(r, self.max_timeline, at, "mark", "engine", name.to_owned(), Value::Null);
        });
    }

    /// Records why the play stops; the first reason wins.
    pub fn abort(&self, verdict: Verdict, reason: String) {
        self.write(|r| {
            if r.abort.is_none() {
                r.abort = Some(Abort { verdict, reason });
            }
        });
    }

    pub fn aborted(&self) -> Option<Abort> {
        self.read(|r| r.abort.clone())
    }

    pub fn client_gone(&self, at: Us) {
        self.write(|r| {
            r.client_gone.get_or_insert(at);
            push_timeline(
                r,
                self.max_timeline,
                at,
                "client",
                "driver",
                "the client's event stream ended".into(),
                Value::Null,
            );
        });
    }

    /// The timeline in time order (stable: same-time entries keep their recording order).
    pub fn take_timeline(&self) -> Vec<TimelineEntry> {
        self.write(|r| {
            let mut t = std::mem::take(&mut r.timeline);
            t.sort_by_key(|e| e.at_ms);
            if r.timeline_dropped > 0 {
                let at = t.last().map_or(0, |e| e.at_ms);
                t.push(TimelineEntry {
                    at_ms: at,
                    lane: "engine".into(),
                    actor: "engine".into(),
                    summary: format!(
                        "{} more entries not kept (timeline limit {})",
                        r.timeline_dropped, self.max_timeline
                    ),
                    detail: Value::Null,
                });
            }
            t
        })
    }
}

fn unix_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

fn push_timeline(r: &mut Records, max: usize, at: Us, lane: &str, actor: &str, summary: String, detail: Value) {
    if r.timeline.len() >= max {
        r.timeline_dropped += 1;
        return;
    }
    r.timeline.push(TimelineEntry {
        at_ms: ms(at),
        lane: lane.to_owned(),
        actor: actor.to_owned(),
        summary,
        detail,
    });
}

/// `message_added #4 by alice: hi`, `connection_state connected`, …
fn event_summary(e: &EventRec) -> String {
    let p = &e.payload;
    let text = |k: &str| p.get(k).and_then(Value::as_str);
    let mut s = e.name.clone();
    if let Some(state) = text("state") {
        s.push(' ');
        s.push_str(state);
    }
    if let Some(i) = p.get("index").and_then(Value::as_u64) {
        s.push_str(&format!(" #{i}"));
    }
    if let Some(who) = text("author").or_else(|| text("identity")) {
        s.push_str(&format!(" by {who}"));
    }
    if let Some(body) = text("body") {
        let short: String = body.chars().take(40).collect();
        s.push_str(&format!(": {short}"));
    }
    s
}
