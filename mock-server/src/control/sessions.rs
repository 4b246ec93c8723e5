//! The registry of live (initialised) twilsock sessions, and commands to them.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::clock::{Clock, Millis};
use crate::frame_tap::{Ring, TAPS};
use crate::realtime::SessionInfo;
use crate::twilsock::session::{Ack, SessionCommand};

struct Live {
    info: SessionInfo,
    since: Millis,
    token_updates: u32,
}

pub struct Sessions {
    /// Boxed: a map keeps up to twice as many slots as entries, and an entry (the session's
    /// info) is ~200 bytes, so unboxed every live session paid ~400 bytes here.
    inner: Mutex<HashMap<u64, Box<Live>>>,
    /// This server's key on the process's frame taps ([`crate::frame_tap`]): it sees only the
    /// taps it turned on.
    tap_owner: u64,
}

impl Default for Sessions {
    fn default() -> Self {
        Sessions {
            inner: Mutex::default(),
            tap_owner: rand::random(),
        }
    }
}

impl Drop for Sessions {
    /// The server is gone: so are the rings of the sessions it tapped.
    fn drop(&mut self) {
        crate::frame_tap::TAPS.stop_owner(self.tap_owner);
    }
}

/// A live session as the control plane shows it.
#[derive(Debug, Clone, Serialize)]
pub struct SessionView {
    pub id: u64,
    pub account: String,
    pub identity: String,
    pub service: String,
    /// `connected`: initialised and not closed (sessions before `init` are not listed).
    pub state: &'static str,
    /// When `init` succeeded (account time).
    pub since: Millis,
    pub token_expires_at: i64,
    pub token_updates: u32,
    /// Frames waiting in the outbound queue.
    pub queue_depth: usize,
    /// Bytes waiting in the outbound queue (bounded by the session's `outbox_bytes`).
    pub queue_bytes: usize,
    pub subscriptions: Vec<String>,
}

/// Which sessions a command is for.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct Target {
    pub account: String,
    /// One session.
    #[serde(default)]
    pub session: Option<u64>,
    /// All sessions of an identity.
    #[serde(default)]
    pub identity: Option<String>,
}

impl Sessions {
    pub fn opened(&self, info: &SessionInfo, now: Millis) {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).insert(
            info.id,
            Box::new(Live {
                info: info.clone(),
                since: now,
                token_updates: 0,
            }),
        );
    }

    pub fn updated(&self, info: &SessionInfo) {
        if let Some(l) = self.inner.lock().unwrap_or_else(|e| e.into_inner()).get_mut(&info.id) {
            l.info = info.clone();
            l.token_updates += 1;
        }
    }

    pub fn closed(&self, id: u64) {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
    }

    /// Turns the frame tap on for a live session of `account` (`None`: no such session).
    pub fn tap(&self, account: &str, id: u64, clock: Clock) -> Option<Arc<Ring>> {
        let live = self
            .inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .is_some_and(|l| l.info.caller.account.sid == account);
        live.then(|| TAPS.start(self.tap_owner, account, id, clock))
    }

    /// The ring of a session of `account` this server tapped (live or ended since).
    pub fn tapped(&self, account: &str, id: u64) -> Option<Arc<Ring>> {
        TAPS.ring(self.tap_owner, account, id)
    }

    /// Turns the frame tap off (`id` `None`: every tap of the account); how many were on.
    pub fn untap(&self, account: &str, id: Option<u64>) -> usize {
        TAPS.stop(self.tap_owner, account, id)
    }

    /// Live sessions of an account (all accounts when `None`), oldest first.
    pub fn list(&self, account: Option<&str>, subscriptions: impl Fn(&str, u64) -> Vec<String>) -> Vec<SessionView> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<SessionView> = inner
            .values()
            .filter(|l| account.is_none_or(|a| l.info.caller.account.sid == a))
            .map(|l| SessionView {
                id: l.info.id,
                account: l.info.caller.account.sid.clone(),
                identity: l.info.caller.identity().to_owned(),
                service: l.info.caller.service_sid.clone(),
                state: "connected",
                since: l.since,
                token_expires_at: l.info.caller.claims.expires_at,
                token_updates: l.token_updates,
                queue_depth: l.info.outbox.depth(),
                queue_bytes: l.info.outbox.queued_bytes(),
                subscriptions: Vec::new(),
            })
            .collect();
        drop(inner);
        for s in &mut v {
            s.subscriptions = subscriptions(&s.account, s.id);
        }
        v.sort_by_key(|s| (s.since, s.id));
        v
    }

    /// Sends `cmd` to every session matching `target`; returns the ids it reached, in order, each
    /// with that session's acknowledgement of this very command. A session whose command queue is
    /// full is skipped and not listed.
    pub fn command(&self, target: &Target, cmd: &SessionCommand) -> Vec<(u64, Ack)> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut reached: Vec<(u64, Ack)> = inner
            .values()
            .filter(|l| l.info.caller.account.sid == target.account)
            .filter(|l| target.session.is_none_or(|s| s == l.info.id))
            .filter(|l| target.identity.as_deref().is_none_or(|i| i == l.info.caller.identity()))
            .filter_map(|l| l.info.commands.try_send_acked(cmd.clone()).ok().map(|ack| (l.info.id, ack)))
            .collect();
        reached.sort_unstable_by_key(|(id, _)| *id);
        reached
    }

    /// Ends every session of an account abruptly (tenant reset or deletion), and frees the
    /// frames tapped from them.
    pub fn drop_account(&self, account: &str) -> Vec<u64> {
        self.untap(account, None);
        self.command(
            &Target {
                account: account.to_owned(),
                session: None,
                identity: None,
            },
            &SessionCommand::Drop,
        )
        .into_iter()
        .map(|(id, _)| id)
        .collect()
    }
}
