//! The Sync projection: the documents, lists and maps the SDK reads and subscribes to, derived
//! from domain events — never written by request handlers.
//!
//! Layout: `object` (object ids and item rendering from domain state), `projection` (per-account
//! event ids, replay, subscriptions, encode-once pushes), `query` (the `/v3` object reads and
//! `/v4/Subscriptions` as the SDK calls them over twilsock).
//!
//! Locking: the projection of an account is behind its own mutex, always taken *inside* the
//! account's lock (observers run under the account's write lock; reads take the account's read
//! lock first), so domain changes and Sync events are ordered the same way.
pub mod object;
pub mod projection;
pub mod query;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::json;

use crate::clock::Millis;
use crate::domain::{AccountState, DomainEvent, DomainObserver};
use crate::twilsock::Outbox;
use object::{Key, ObjectRef};
use projection::{Change, Projection};

/// Who a closed session was.
#[derive(Debug, Clone)]
pub struct ClosedSession {
    pub account: String,
    pub service: String,
    pub identity: String,
    /// The identity still has other live sessions.
    pub others: bool,
}

/// All accounts' projections, plus which account each live session belongs to.
pub struct SyncHub {
    base_url: Arc<str>,
    accounts: Mutex<HashMap<String, Arc<Mutex<Projection>>>>,
    session_accounts: Mutex<HashMap<u64, String>>,
    /// Seconds a typing indicator lasts (sent to clients as `typing_timeout`).
    pub typing_timeout_secs: u64,
    /// Where pushes are recorded (set once by the server after the control plane exists).
    journal: std::sync::OnceLock<Arc<crate::journal::Journal>>,
}

impl SyncHub {
    pub fn new(base_url: Arc<str>) -> Arc<SyncHub> {
        Arc::new(SyncHub {
            base_url,
            accounts: Mutex::default(),
            session_accounts: Mutex::default(),
            typing_timeout_secs: 5,
            journal: std::sync::OnceLock::new(),
        })
    }

    /// Records every push in `journal` from now on.
    pub fn set_journal(&self, journal: Arc<crate::journal::Journal>) {
        let _ = self.journal.set(journal);
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn projection(&self, account: &str) -> Arc<Mutex<Projection>> {
        self.accounts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(account.to_owned())
            .or_default()
            .clone()
    }

    /// Drops an account's projection (after a reset or import): objects re-materialise.
    pub fn reset_account(&self, account: &str) {
        self.accounts.lock().unwrap_or_else(|e| e.into_inner()).remove(account);
    }

    pub fn session_opened(&self, account: &str, session: u64, service: &str, identity: &str, outbox: Outbox) {
        self.session_accounts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(session, account.to_owned());
        let p = self.projection(account);
        p.lock()
            .unwrap_or_else(|e| e.into_inner())
            .add_session(session, service.to_owned(), identity.to_owned(), outbox);
    }

    /// Forgets a session. Returns its account, service and identity, and whether that identity
    /// still has other live sessions (reachability).
    pub fn session_closed(&self, session: u64) -> Option<ClosedSession> {
        let account = self.session_accounts.lock().unwrap_or_else(|e| e.into_inner()).remove(&session)?;
        let p = self.projection(&account);
        let mut p = p.lock().unwrap_or_else(|e| e.into_inner());
        let (service, identity) = p.remove_session(session)?;
        let others = p.sessions_of(&service, &identity).next().is_some();
        Some(ClosedSession {
            account,
            service,
            identity,
            others,
        })
    }
}

impl DomainObserver for SyncHub {
    fn on_events(&self, account_sid: &str, now: Millis, state: &AccountState, _cause: &crate::domain::Cause, events: &[DomainEvent]) {
        let p = self.projection(account_sid);
        let mut p = p.lock().unwrap_or_else(|e| e.into_inner());
        let base = self.base_url.clone();
        for ev in events {
            apply(&mut p, &base, state, ev, now, self.typing_timeout_secs);
        }
        let pushes = p.take_pushes();
        drop(p);
        if let Some(j) = self.journal.get() {
            for r in pushes {
                j.record(crate::journal::Observation {
                    at: now,
                    kind: crate::journal::Kind::SyncPush,
                    account: Some(account_sid.to_owned()),
                    session: None,
                    identity: None,
                    summary: format!("{} #{} on {} -> {} subscriber(s)", r.event_type, r.id, r.object, r.delivered),
                    detail: serde_json::json!({ "object": r.object, "event_type": r.event_type, "id": r.id, "delivered": r.delivered, "refused": r.refused }),
                });
            }
        }
    }
}

fn user_sid(state: &AccountState, service: &str, identity: &str) -> Option<String> {
    state.services.get(service)?.users.get(identity).map(|u| u.sid.clone())
}

fn apply(p: &mut Projection, base: &str, state: &AccountState, ev: &DomainEvent, now: Millis, typing_timeout: u64) {
    match ev {
        DomainEvent::ConversationAdded { .. } | DomainEvent::UserAdded { .. } => {}
        // Nothing a client subscribes to depends on services or the account's configuration.
        DomainEvent::ServiceAdded { .. }
        | DomainEvent::ServiceUpdated { .. }
        | DomainEvent::ServiceRemoved { .. }
        | DomainEvent::ConfigurationUpdated => {}
        DomainEvent::ConversationUpdated { service, conversation } => {
            p.change(
                base,
                state,
                &ObjectRef::Channel(conversation.clone()),
                None,
                Change::Updated,
                None,
                now,
            );
            if let Some((_, e)) = object::find_conversation(state, conversation) {
                for (_, part) in e.participants.iter() {
                    if let Some(u) = part.identity.as_deref().and_then(|i| user_sid(state, service, i)) {
                        p.change(
                            base,
                            state,
                            &ObjectRef::MyConversations(u),
                            Some(Key::Name(conversation.clone())),
                            Change::Updated,
                            None,
                            now,
                        );
                    }
                }
            }
        }
        DomainEvent::ConversationRemoved {
            service,
            conversation,
            participants,
        } => {
            for part in participants {
                if let Some(u) = part.identity.as_deref().and_then(|i| user_sid(state, service, i)) {
                    let data = json!({ "status": "notParticipating", "channel": ObjectRef::Channel(conversation.sid.clone()).id() });
                    p.change(
                        base,
                        state,
                        &ObjectRef::MyConversations(u),
                        Some(Key::Name(conversation.sid.clone())),
                        Change::Removed,
                        Some(data),
                        now,
                    );
                }
            }
            for o in [
                ObjectRef::Channel(conversation.sid.clone()),
                ObjectRef::Messages(conversation.sid.clone()),
                ObjectRef::Roster(conversation.sid.clone()),
            ] {
                p.change(base, state, &o, None, Change::Removed, None, now);
                p.forget(&o);
            }
        }
        DomainEvent::ParticipantAdded {
            service,
            conversation,
            participant,
        }
        | DomainEvent::ParticipantUpdated {
            service,
            conversation,
            participant,
        } => {
            let added = matches!(ev, DomainEvent::ParticipantAdded { .. });
            let ch = if added { Change::Added } else { Change::Updated };
            p.change(
                base,
                state,
                &ObjectRef::Roster(conversation.clone()),
                Some(Key::Name(participant.clone())),
                ch,
                None,
                now,
            );
            let identity = object::find_conversation(state, conversation)
                .and_then(|(_, e)| e.participants.get(participant))
                .and_then(|x| x.identity.clone());
            if let Some(u) = identity.as_deref().and_then(|i| user_sid(state, service, i)) {
                p.change(
                    base,
                    state,
                    &ObjectRef::MyConversations(u),
                    Some(Key::Name(conversation.clone())),
                    ch,
                    None,
                    now,
                );
            }
        }
        DomainEvent::ParticipantRemoved {
            service,
            conversation,
            participant,
        } => {
            let data = object::find_conversation(state, conversation)
                .map(|(svc, _)| object::roster_data(svc, participant))
                .unwrap_or_default();
            p.change(
                base,
                state,
                &ObjectRef::Roster(conversation.clone()),
                Some(Key::Name(participant.sid.clone())),
                Change::Removed,
                Some(data),
                now,
            );
            if let Some(u) = participant.identity.as_deref().and_then(|i| user_sid(state, service, i)) {
                let data = json!({ "status": "notParticipating", "channel": ObjectRef::Channel(conversation.clone()).id() });
                p.change(
                    base,
                    state,
                    &ObjectRef::MyConversations(u),
                    Some(Key::Name(conversation.clone())),
                    Change::Removed,
                    Some(data),
                    now,
                );
            }
        }
        DomainEvent::MessageAdded { conversation, index, .. } | DomainEvent::MessageUpdated { conversation, index, .. } => {
            let ch = if matches!(ev, DomainEvent::MessageAdded { .. }) {
                Change::Added
            } else {
                Change::Updated
            };
            p.change(
                base,
                state,
                &ObjectRef::Messages(conversation.clone()),
                Some(Key::Index(*index)),
                ch,
                None,
                now,
            );
            if ch == Change::Added {
                p.change(
                    base,
                    state,
                    &ObjectRef::Channel(conversation.clone()),
                    None,
                    Change::Updated,
                    None,
                    now,
                );
            }
        }
        DomainEvent::MessageRemoved { conversation, message, .. } => {
            let data = object::message_data(message);
            p.change(
                base,
                state,
                &ObjectRef::Messages(conversation.clone()),
                Some(Key::Index(message.index)),
                Change::Removed,
                Some(data),
                now,
            );
            p.change(
                base,
                state,
                &ObjectRef::Channel(conversation.clone()),
                None,
                Change::Updated,
                None,
                now,
            );
        }
        DomainEvent::UserUpdated { user, .. } => {
            for k in ["friendlyName", "attributes", "reachability"] {
                if object::item_data(state, &ObjectRef::UserInfo(user.clone()), Some(&Key::Name(k.into()))).is_some() {
                    p.change(
                        base,
                        state,
                        &ObjectRef::UserInfo(user.clone()),
                        Some(Key::Name(k.into())),
                        Change::Updated,
                        None,
                        now,
                    );
                }
            }
        }
        DomainEvent::UserRemoved { user, .. } => {
            p.forget(&ObjectRef::UserInfo(user.clone()));
            p.forget(&ObjectRef::MyConversations(user.clone()));
        }
        DomainEvent::Typing {
            service,
            conversation,
            identity,
        } => {
            let Some((_, e)) = object::find_conversation(state, conversation) else {
                return;
            };
            let payload = json!({ "channel_sid": conversation, "identity": identity, "typing_timeout": typing_timeout });
            let members: Vec<String> = e
                .participants
                .iter()
                .filter_map(|(_, x)| x.identity.clone())
                .filter(|i| i != identity)
                .collect();
            let mut targets = Vec::new();
            for m in &members {
                targets.extend(p.sessions_of(service, m).map(|(_, o)| o.clone()));
            }
            if !targets.is_empty() {
                let frame = projection::notification_frame(format!("TMtyping{}", now.0), "twilio.ipmsg.typing_indicator", &payload);
                for o in targets {
                    let _ = o.push(frame.clone());
                }
            }
        }
    }
}
