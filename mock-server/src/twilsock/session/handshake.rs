//! `init` and `update`: verifying the token, opening the session with the backend, and the
//! token timers (the `token_about_to_expire` warning and the expiry).
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use bytes::Bytes;
use serde_json::Value;

use super::super::backend::{Backend, InitRejection, Principal as _, SessionInfo, SessionObservation};
use super::super::codec::Packet;
use super::packets::{self, storage_id, token_about_to_expire};
use super::wake_filter::WakeFilter;
use super::{Flow, Session};
use crate::auth::TokenError;
use crate::clock::{Clock, Millis};

/// Server-clock deadlines of the current token.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct TokenTimers {
    pub(super) warn_at: Option<Millis>,
    pub(super) expire_at: Option<Millis>,
}

impl TokenTimers {
    /// The earliest deadline.
    fn next(&self) -> Option<Millis> {
        match (self.warn_at, self.expire_at) {
            (Some(w), Some(e)) => Some(w.min(e)),
            (w, e) => w.or(e),
        }
    }

    /// Which timer is due at `now`; the expiry wins over the warning, as it ends the session.
    pub(super) fn due(&self, now: Millis) -> Option<TokenTimer> {
        if self.expire_at.is_some_and(|at| now >= at) {
            Some(TokenTimer::Expiry)
        } else if self.warn_at.is_some_and(|at| now >= at) {
            Some(TokenTimer::Warning)
        } else {
            None
        }
    }
}

/// A token timer that fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TokenTimer {
    Warning,
    Expiry,
}

/// The token timers as one sleep the driver keeps across its turns, rebuilt only when the
/// timers change. (A sleep on the server clock registers for the clock's changes and arms a
/// tokio timer: made afresh on every turn, as it once was, that cost an allocation, a timer
/// registration and its removal for every ack a subscriber sent.)
pub(super) struct TokenAlarm {
    /// The timers `sleep` was made for; `None`: make it again.
    armed_for: Option<TokenTimers>,
    /// The clock's sleep, boxed as it is (it owns its clock handle): the one allocation an idle
    /// session's alarm holds, about 200 bytes (see [`Clock::sleep_until`]).
    sleep: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    /// `sleep` is polled only when it woke the driver (see `wake_filter`).
    filter: WakeFilter,
}

impl Default for TokenAlarm {
    fn default() -> Self {
        TokenAlarm {
            armed_for: None,
            sleep: None,
            filter: WakeFilter::new(),
        }
    }
}

impl TokenAlarm {
    /// Makes the sleep again if `timers` changed since it was made.
    pub(super) fn arm(&mut self, clock: &Clock, timers: TokenTimers) {
        if self.armed_for == Some(timers) {
            return;
        }
        self.armed_for = Some(timers);
        self.sleep = timers
            .next()
            .map(|at| Box::pin(clock.sleep_until(at)) as Pin<Box<dyn Future<Output = ()> + Send>>);
        self.filter.rearm();
    }

    /// Completes when the earliest timer is due (never without one). Once it has, the next
    /// [`TokenAlarm::arm`] makes a new sleep.
    pub(super) async fn rings(&mut self) {
        std::future::poll_fn(|cx| {
            let Some(sleep) = self.sleep.as_mut() else {
                return Poll::Pending;
            };
            let rang = self.filter.poll(cx, |cx| sleep.as_mut().poll(cx));
            if rang.is_ready() {
                self.sleep = None;
                self.armed_for = None;
            }
            rang
        })
        .await
    }
}

impl<B: Backend> Session<B> {
    pub(super) fn warn_token_expiry(&self) {
        self.send(token_about_to_expire());
        self.observe(SessionObservation::TokenWarningSent);
    }

    fn verify(&self, packet: &Packet) -> Result<B::Caller, InitRejection> {
        match packet.header.get("token").and_then(Value::as_str).filter(|t| !t.is_empty()) {
            Some(token) => self.backend.verify_for(self.id, token),
            None => Err(TokenError::Malformed {
                reason: "no token in the packet",
            }
            .into()),
        }
    }

    /// Answers a refused `init` or `update` and observes it.
    fn refuse(&self, id: &str, kind: TokenChange, rejection: &InitRejection) {
        self.send(packets::reply_rejection(id, rejection));
        self.observe_refusal(kind, rejection.status, rejection.error_code);
    }

    fn observe_refusal(&self, kind: TokenChange, status: u16, error_code: Option<u32>) {
        self.observe(match kind {
            TokenChange::Init => SessionObservation::InitRefused { status, error_code },
            TokenChange::Update => SessionObservation::UpdateRefused { status, error_code },
        });
    }

    /// `init`. A rejected token gets a 401 reply and leaves the socket open and uninitialised:
    /// the SDK closes it, and a later `init` on it may still succeed. So does any other refusal
    /// (the control plane's 503 while refusing connections, init denials): the SDK closes the
    /// socket and retries, the server only replies.
    ///
    /// An `init` on an established session (the SDK never sends one: it uses `update` while
    /// connected) is taken as a token update that answers with a full init reply: same session
    /// id and outbox, same identity, account and service required, `session_updated`.
    pub(super) fn on_init(&mut self, id: &str, packet: &Packet) -> Flow {
        let caller = match self.verify(packet) {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = ?e, "init rejected");
                self.refuse(id, TokenChange::Init, &e);
                return Flow::Continue;
            }
        };
        let storage = storage_id(caller.account(), caller.identity());
        if self.established.is_some() {
            return self.replace_token(id, TokenChange::Init, caller, packets::reply_init(id, &storage));
        }
        let info = SessionInfo {
            id: self.id,
            caller,
            outbox: self.outbox.clone(),
            commands: self.commands.clone(),
        };
        self.send(packets::reply_init(id, &storage));
        tracing::info!(
            session = self.id,
            identity = info.caller.identity(),
            account = info.caller.account(),
            "session opened"
        );
        let expires_at = info.caller.expires_at();
        self.established = Some(info);
        self.arm_timers(expires_at);
        self.observe(SessionObservation::InitOk);
        if let Some(info) = &self.established {
            self.backend.session_opened(info);
        }
        Flow::Continue
    }

    /// `update`: a new token for the same identity, account and service. Rejected tokens get a
    /// 401 reply and the session keeps its old token and timers.
    pub(super) fn on_update(&mut self, id: &str, packet: &Packet) -> Flow {
        if self.established.is_none() {
            self.send(packets::reply_status(
                id,
                403,
                "FORBIDDEN",
                Some("update before a successful init"),
                None,
            ));
            self.observe_refusal(TokenChange::Update, 403, None);
            return Flow::Continue;
        }
        match self.verify(packet) {
            Ok(caller) => self.replace_token(id, TokenChange::Update, caller, packets::reply_ok(id)),
            Err(e) => {
                tracing::debug!(error = ?e, "update rejected");
                self.refuse(id, TokenChange::Update, &e);
                Flow::Continue
            }
        }
    }

    fn replace_token(&mut self, id: &str, kind: TokenChange, caller: B::Caller, reply: Bytes) -> Flow {
        let expires_at = caller.expires_at();
        match self.established.as_mut() {
            Some(info) if info.caller.same_principal(&caller) => info.caller = caller,
            Some(_) => {
                tracing::debug!("token update for another principal rejected");
                self.send(packets::reply_principal_mismatch(id));
                self.observe_refusal(kind, 401, Some(packets::INVALID_TOKEN_ERROR_CODE));
                return Flow::Continue;
            }
            None => return Flow::Continue,
        }
        self.send(reply);
        self.arm_timers(expires_at);
        self.observe(SessionObservation::UpdateOk);
        if let Some(info) = &self.established {
            tracing::debug!("token updated");
            self.backend.session_updated(info);
        }
        Flow::Continue
    }

    /// Schedules the warning and the expiry of a token that expires at `expires_at` (Unix
    /// seconds), replacing any earlier schedule.
    fn arm_timers(&mut self, expires_at: i64) {
        // Token time is the caller's account time (each account has its own clock).
        if let Some(info) = &self.established {
            self.clock = info.caller.clock().clone();
        }
        let expire = Millis(expires_at.saturating_mul(1000));
        let lead = i64::try_from(self.config.token_warning_lead.as_millis()).unwrap_or(i64::MAX);
        self.timers = TokenTimers {
            warn_at: Some(Millis(expire.0.saturating_sub(lead))),
            expire_at: Some(expire),
        };
    }
}

/// Which packet a token change came in, for its observation.
#[derive(Debug, Clone, Copy)]
enum TokenChange {
    Init,
    Update,
}
