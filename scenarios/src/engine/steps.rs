//! The steps of a sequence (the scenario's, or a trigger's `then`): each step in order, a server
//! action on the control plane, a command to the client and its answer. Waits, inline
//! expectations and marks are dispatched from here to their own modules.
use serde_json::json;
use tokio::sync::oneshot;

use super::driver::{Answer, Command};
use super::log::{CommandRec, Reply, Us};
use super::play::Play;
use super::waits::condition_text;
use super::{actions, commands};
use crate::format::command::{CommandStep, Outcome};
use crate::format::step::{Condition, Step};
use crate::outcome::Verdict;

/// Why a step or expectation is not played in a server-side play, if it is not.
const SERVER_SIDE_SKIP: &str = "skipped: server-side play (the app under test acts on its own)";

/// Where a step is in its sequence and when it started: what its record and messages name.
#[derive(Debug, Clone, Copy)]
pub(super) struct Slot<'x> {
    /// `steps[2]`, `on[0].then[1]`.
    pub at: &'x str,
    pub index: usize,
    /// What the step's description starts with (empty for the scenario's own steps).
    pub prefix: &'x str,
    pub started: Us,
}

/// Whether a sequence goes on after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Flow {
    Continue,
    Stop,
}

impl Play<'_> {
    /// Runs steps in order; `start` is where the window of the first one starts.
    pub(super) async fn run_steps(&self, steps: &[Step], where_: &str, mut window_start: Us) -> Flow {
        for (i, step) in steps.iter().enumerate() {
            if self.stopped() {
                if self.log.aborted().is_none() {
                    self.time_up(&format!("before {where_}[{i}] {}", step.describe()));
                }
                return Flow::Stop;
            }
            let (flow, start) = self.run_step(step, &format!("{where_}[{i}]"), i, window_start).await;
            if let Some(s) = start {
                window_start = s;
            }
            if flow == Flow::Stop {
                return Flow::Stop;
            }
        }
        Flow::Continue
    }

    /// Runs one step; returns whether to go on and, for actions and commands, when they started
    /// (the window start of what follows).
    pub(super) async fn run_step(&self, step: &Step, at: &str, index: usize, window_start: Us) -> (Flow, Option<Us>) {
        let started = self.log.now();
        let prefix = if at.starts_with("steps") {
            String::new()
        } else {
            format!("{at}: ")
        };
        let slot = Slot {
            at,
            index,
            prefix: &prefix,
            started,
        };
        match step {
            Step::Server(a) => {
                let description = format!("{prefix}{}", actions::describe(a));
                let mut delivered = None;
                let mut result = actions::run(self, a, &mut delivered).await;
                // A session command takes effect on the session's own task: wait until every
                // session reached has acknowledged it, so the next step meets its effect.
                if let Ok(v) = &mut result
                    && let Some(delivery) = delivered
                {
                    v["applied"] = json!(delivery.applied().await);
                }
                self.names.refresh(self.control, &self.tenant.account);
                let (ok, detail) = match &result {
                    Ok(v) => (true, Some(v.to_string())),
                    Err(e) => (false, Some(e.to_string())),
                };
                self.log.timeline(
                    started,
                    "action",
                    "engine",
                    description.clone(),
                    match &result {
                        Ok(v) => v.clone(),
                        Err(e) => json!({ "error": e.to_string() }),
                    },
                );
                self.record_step(index, description.clone(), ok, detail, started);
                if let Err(e) = result {
                    self.log.abort(Verdict::Failed, format!("{at} ({description}) failed: {e}"));
                    return (Flow::Stop, Some(started));
                }
                (Flow::Continue, Some(started))
            }
            Step::Command(c) if self.server_side => {
                let description = format!("{prefix}command {} {}", c.command.name(), c.command.client());
                self.record_step(index, description, true, Some(SERVER_SIDE_SKIP.into()), started);
                // Not an action: what follows still looks from the app's connection on.
                (Flow::Continue, None)
            }
            Step::Command(c) => {
                let flow = self.command(c, at, index, &prefix).await;
                (flow, Some(started))
            }
            Step::WaitFor(wf) if self.server_side && matches!(wf.wait_for, Condition::Event(_)) => {
                let description = format!("{prefix}wait_for {}", condition_text(&wf.wait_for));
                self.record_step(index, description, true, Some(SERVER_SIDE_SKIP.into()), started);
                (Flow::Continue, None)
            }
            Step::Expect(e) if self.server_side && e.kind.needs_client_reports() => {
                self.record_step(
                    index,
                    format!("{prefix}{}", step.describe()),
                    true,
                    Some(SERVER_SIDE_SKIP.into()),
                    started,
                );
                (Flow::Continue, None)
            }
            Step::Wait(w) => (self.wait(w, step, &slot).await, None),
            Step::WaitFor(wf) => (self.wait_for(wf, window_start, &slot).await, None),
            Step::Expect(e) => (self.expect_step(e, step, window_start, &slot).await, None),
            Step::Mark(m) => {
                self.log.mark(&m.mark, started);
                self.record_step(index, format!("{prefix}{}", step.describe()), true, None, started);
                (Flow::Continue, None)
            }
        }
    }

    pub(super) async fn command(&self, c: &CommandStep, at: &str, index: usize, prefix: &str) -> Flow {
        let started = self.log.now();
        let name = c.command.name();
        let client = c.command.client();
        let description = format!("{prefix}command {name} {client}");
        let sender = self.commands.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let Some(sender) = sender else {
            self.record_step(index, description, false, Some("no client is running".into()), started);
            self.log.abort(
                Verdict::Failed,
                format!("{at} (command {name}): no client is running to take commands"),
            );
            return Flow::Stop;
        };
        let body = match commands::body(self, &c.command) {
            Ok(b) => b,
            Err(e) => {
                self.record_step(index, description, false, Some(e.to_string()), started);
                self.log.abort(Verdict::Failed, format!("{at} (command {name}): {e}"));
                return Flow::Stop;
            }
        };
        let (tx, rx) = oneshot::channel();
        let position = self.log.push_command(CommandRec {
            label: c.label.clone(),
            client: client.to_owned(),
            cmd: name.to_owned(),
            conversation: c.command.conversation().map(str::to_owned),
            body: body.clone(),
            sent_at: started,
            answer: None,
        });
        let limit = started.saturating_add(u64::try_from(c.timeout.unwrap_or(self.opts.command_timeout).as_micros()).unwrap_or(u64::MAX));
        let reply = if sender.send(Command { body, reply: tx }).await.is_err() {
            Reply::Gone
        } else {
            self.await_answer(rx, limit).await
        };
        let answered = self.log.now();
        self.log.answer(position, answered, reply.clone());
        self.names.refresh(self.control, &self.tenant.account);
        let wanted_ok = match (c.outcome, &reply) {
            (_, Reply::Unsupported(_) | Reply::Gone) => false,
            (Outcome::Any, _) => true,
            (Outcome::Ok, Reply::Ok(_)) | (Outcome::Error, Reply::Error(_)) => true,
            _ => false,
        };
        let detail = match &reply {
            Reply::Ok(v) => truncate(&v.to_string()),
            other => format!("{}: {}", other.word(), truncate(&other.value().to_string())),
        };
        self.record_step(index, description.clone(), wanted_ok, Some(detail), started);
        if wanted_ok {
            return Flow::Continue;
        }
        if self.log.aborted().is_some() {
            return Flow::Stop;
        }
        match &reply {
            Reply::Unsupported(m) => self
                .log
                .abort(Verdict::Unimplemented, format!("the client does not support `{name}`: {m}")),
            Reply::Gone => self.log.abort(
                Verdict::Failed,
                format!("{at} ({description}): the client went away before answering"),
            ),
            Reply::Timeout if answered >= self.deadline => self.time_up(&format!("waiting for {at} {description}")),
            other => {
                let want = match c.outcome {
                    Outcome::Ok => "succeed",
                    Outcome::Error => "fail",
                    Outcome::Any => "answer",
                };
                self.log.abort(
                    Verdict::Failed,
                    format!(
                        "{at} ({description}) was expected to {want}; it ended {}: {}",
                        other.word(),
                        truncate(&other.value().to_string())
                    ),
                );
            }
        }
        Flow::Stop
    }

    pub(super) async fn await_answer(&self, rx: oneshot::Receiver<Answer>, limit: Us) -> Reply {
        let until = limit.min(self.deadline);
        let abort_watch = async {
            let mut ticks = self.log.subscribe();
            loop {
                if self.log.aborted().is_some() {
                    return;
                }
                if ticks.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::select! {
            answer = rx => match answer {
                Ok(Answer::Ok(v)) => Reply::Ok(v),
                Ok(Answer::Failed(v)) => Reply::Error(v),
                Ok(Answer::Unsupported(m)) => Reply::Unsupported(m),
                Err(_) => Reply::Gone,
            },
            () = tokio::time::sleep_until(self.log.instant(until)) => Reply::Timeout,
            () = abort_watch => Reply::Gone,
        }
    }
}

fn truncate(s: &str) -> String {
    if s.chars().count() <= 500 {
        s.to_owned()
    } else {
        format!("{}…", s.chars().take(500).collect::<String>())
    }
}
