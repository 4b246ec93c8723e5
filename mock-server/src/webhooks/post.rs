//! Post-action webhooks: after a change is committed, its deliveries are queued and sent in the
//! background, in commit order per conversation.
//!
//! The observer runs under the account's lock, so it only builds the form fields (from the
//! state as committed) and hands each delivery to its *lane* with a non-blocking `try_send`. A
//! lane is a bounded queue and a task that sends one delivery at a time: one lane per
//! conversation (user events: one per service), so a slow or failing backend delays that
//! conversation only, and never the domain. A full lane drops the delivery and journals it.
//! Lanes end after a while without work, and at shutdown.
//!
//! Retry policy: up to [`super::WebhookSettings::post_attempts`] attempts (`RetryCount` 0, 1,
//! …). An attempt that gets no answer within the timeout, cannot connect, or is answered 429
//! or 5xx is retried after [`super::WebhookSettings::retry_backoff`], doubled each time; any
//! other answer ends the delivery (2xx: `delivered`, else `failed`). The last failed attempt is
//! journaled as `gave_up`. Later deliveries of the lane wait for the retries: order is kept.
use std::time::Duration;

use tokio::sync::mpsc;

use super::delivery::{self, Target};
use super::payload::{self, Fields};
use super::{EventType, Webhooks, config_for};
use crate::clock::Millis;
use crate::domain::conversation::{ConversationEntry, ConversationState};
use crate::domain::{AccountState, Cause, ChatService, DomainEvent, DomainObserver, Origin};

/// (account, lane): a conversation SID, or `users:IS…`.
pub(super) type LaneKey = (String, String);

/// How long a lane waits for more work before it ends.
const LANE_IDLE: Duration = Duration::from_secs(30);

pub(super) struct Delivery {
    account: String,
    identity: Option<String>,
    event: EventType,
    target: Target,
    fields: Fields,
}

impl DomainObserver for Webhooks {
    fn on_events(&self, account_sid: &str, now: Millis, state: &AccountState, cause: &Cause, events: &[DomainEvent]) {
        let (fire, origin) = (cause.webhooks, &cause.origin);
        for ev in events {
            let state_change = self.track_state(account_sid, state, ev);
            if fire {
                self.post_event(account_sid, now, state, origin, ev, state_change);
            }
        }
    }
}

impl Webhooks {
    /// Keeps the non-`active` conversation states, so an update that changes the state (also
    /// when webhooks are off at that moment) is recognised; returns the state it changed from.
    fn track_state(&self, account: &str, state: &AccountState, ev: &DomainEvent) -> Option<ConversationState> {
        let (service, conversation, removed) = match ev {
            DomainEvent::ConversationAdded { service, conversation } | DomainEvent::ConversationUpdated { service, conversation } => {
                (service, conversation.as_str(), false)
            }
            DomainEvent::ConversationRemoved { service, conversation, .. } => (service, conversation.sid.as_str(), true),
            _ => return None,
        };
        let key = (account.to_owned(), conversation.to_owned());
        let mut states = self.inner.states.lock().unwrap_or_else(|e| e.into_inner());
        if removed {
            states.remove(&key);
            return None;
        }
        let now = state
            .service(Some(service))
            .ok()?
            .conversation(conversation)
            .ok()?
            .conversation
            .state;
        let before = if now == ConversationState::Active {
            states.remove(&key)
        } else {
            states.insert(key, now)
        }
        .unwrap_or(ConversationState::Active);
        (matches!(ev, DomainEvent::ConversationUpdated { .. }) && before != now).then_some(before)
    }

    fn post_event(
        &self,
        account: &str,
        now: Millis,
        state: &AccountState,
        origin: &Origin,
        ev: &DomainEvent,
        state_change: Option<ConversationState>,
    ) {
        use EventType as E;
        let service = match ev {
            DomainEvent::ConversationAdded { service, .. }
            | DomainEvent::ConversationUpdated { service, .. }
            | DomainEvent::ConversationRemoved { service, .. }
            | DomainEvent::ParticipantAdded { service, .. }
            | DomainEvent::ParticipantUpdated { service, .. }
            | DomainEvent::ParticipantRemoved { service, .. }
            | DomainEvent::MessageAdded { service, .. }
            | DomainEvent::MessageUpdated { service, .. }
            | DomainEvent::MessageRemoved { service, .. }
            | DomainEvent::UserAdded { service, .. }
            | DomainEvent::UserUpdated { service, .. }
            | DomainEvent::UserRemoved { service, .. }
            | DomainEvent::Typing { service, .. } => service,
            // Twilio has no post-action event for services or configuration.
            DomainEvent::ServiceAdded { .. }
            | DomainEvent::ServiceUpdated { .. }
            | DomainEvent::ServiceRemoved { .. }
            | DomainEvent::ConfigurationUpdated => return,
        };
        let Ok(svc) = state.service(Some(service)) else {
            return;
        };
        let entry = |c: &str| svc.conversation(c).ok();
        // (event, fields, the conversation for scoped webhooks and the lane, message body)
        let mut out: Vec<(EventType, Fields, Option<&ConversationEntry>, Option<String>)> = Vec::new();
        match ev {
            DomainEvent::ConversationAdded { conversation, .. } | DomainEvent::ConversationUpdated { conversation, .. } => {
                let Some(e) = entry(conversation) else { return };
                let added = matches!(ev, DomainEvent::ConversationAdded { .. });
                let event = if added { E::ConversationAdded } else { E::ConversationUpdated };
                out.push((event, payload::conversation(&svc.sid, &e.conversation), Some(e), None));
                if let Some(from) = state_change {
                    let f = payload::state_updated(&svc.sid, &e.conversation, from, now);
                    out.push((E::ConversationStateUpdated, f, Some(e), None));
                }
            }
            DomainEvent::ConversationRemoved { conversation, .. } => {
                // Its scoped webhooks went with it; the lane is still the conversation's.
                let f = payload::conversation(&svc.sid, conversation);
                self.deliver_to(
                    account,
                    origin,
                    svc,
                    state,
                    E::ConversationRemoved,
                    f,
                    None,
                    &conversation.sid,
                    None,
                );
                return;
            }
            DomainEvent::ParticipantAdded {
                conversation, participant, ..
            }
            | DomainEvent::ParticipantUpdated {
                conversation, participant, ..
            } => {
                let Some(e) = entry(conversation) else { return };
                let Some(p) = e.participants.get(participant) else { return };
                let added = matches!(ev, DomainEvent::ParticipantAdded { .. });
                let event = if added { E::ParticipantAdded } else { E::ParticipantUpdated };
                out.push((event, payload::participant(p, !added), Some(e), None));
            }
            DomainEvent::ParticipantRemoved {
                conversation, participant, ..
            } => {
                let f = payload::participant(participant, true);
                out.push((E::ParticipantRemoved, f, entry(conversation), None));
            }
            DomainEvent::MessageAdded { conversation, index, .. } | DomainEvent::MessageUpdated { conversation, index, .. } => {
                let Some(e) = entry(conversation) else { return };
                let Some(m) = e.messages.get_seq(*index) else { return };
                let added = matches!(ev, DomainEvent::MessageAdded { .. });
                let event = if added { E::MessageAdded } else { E::MessageUpdated };
                out.push((event, payload::message(m, !added), Some(e), m.body.clone()));
            }
            DomainEvent::MessageRemoved { conversation, message, .. } => {
                out.push((E::MessageRemoved, payload::message(message, true), entry(conversation), None));
            }
            DomainEvent::UserAdded { user, .. } | DomainEvent::UserUpdated { user, .. } => {
                let Some(u) = svc.users.get(user) else { return };
                let event = if matches!(ev, DomainEvent::UserAdded { .. }) {
                    E::UserAdded
                } else {
                    E::UserUpdated
                };
                let lane = format!("users:{}", svc.sid);
                self.deliver_to(account, origin, svc, state, event, payload::user(&svc.sid, u), None, &lane, None);
                return;
            }
            // Twilio has no webhook for these.
            DomainEvent::UserRemoved { .. }
            | DomainEvent::Typing { .. }
            | DomainEvent::ServiceAdded { .. }
            | DomainEvent::ServiceUpdated { .. }
            | DomainEvent::ServiceRemoved { .. }
            | DomainEvent::ConfigurationUpdated => return,
        }
        for (event, fields, e, body) in out {
            let lane = match (e, fields.get("ConversationSid")) {
                (Some(e), _) => e.conversation.sid.clone(),
                (None, Some(c)) => c.to_owned(),
                (None, None) => continue,
            };
            self.deliver_to(account, origin, svc, state, event, fields, e, &lane, body.as_deref());
        }
    }

    /// Queues `event` to the service's (or account's) post-action URL and to the conversation's
    /// scoped webhooks that fire for it.
    #[allow(clippy::too_many_arguments)]
    fn deliver_to(
        &self,
        account: &str,
        origin: &Origin,
        svc: &ChatService,
        state: &AccountState,
        event: EventType,
        fields: Fields,
        conversation: Option<&ConversationEntry>,
        lane: &str,
        body: Option<&str>,
    ) {
        let mut targets = Vec::new();
        let config = config_for(state, svc);
        if let Some(url) = config.post_webhook_url.as_ref().filter(|_| config.fires(event.name())) {
            targets.push(Target {
                url: url.clone(),
                method: config.method_or_default().to_owned(),
                scoped: None,
            });
        }
        if let Some(e) = conversation {
            for (_, w) in e.webhooks.iter() {
                if let (true, Some(url)) = (w.fires(event.name(), body), &w.url) {
                    targets.push(Target {
                        url: url.clone(),
                        method: w.method.to_ascii_uppercase(),
                        scoped: Some((w.sid.clone(), w.target.clone())),
                    });
                }
            }
        }
        for target in targets {
            let mut f = payload::common(account, event.name(), origin);
            if let Some((sid, kind)) = &target.scoped {
                f.put("WebhookSid", sid).put("WebhookType", kind);
            }
            f.0.extend(fields.0.iter().cloned());
            self.enqueue(
                lane,
                Delivery {
                    account: account.to_owned(),
                    identity: origin.identity().map(str::to_owned),
                    event,
                    target,
                    fields: f,
                },
            );
        }
    }

    /// Hands a delivery to its lane without waiting; starts the lane if it is not running.
    fn enqueue(&self, lane: &str, d: Delivery) {
        let key: LaneKey = (d.account.clone(), lane.to_owned());
        let mut lanes = self.inner.lanes.lock().unwrap_or_else(|e| e.into_inner());
        let d = match lanes.get(&key) {
            Some(tx) => match tx.try_send(d) {
                Ok(()) => return,
                Err(mpsc::error::TrySendError::Full(d)) => {
                    drop(lanes);
                    return self.dropped(d, "its conversation's queue is full");
                }
                Err(mpsc::error::TrySendError::Closed(d)) => {
                    lanes.remove(&key);
                    d
                }
            },
            None => d,
        };
        let Some(runtime) = self.inner.runtime.clone() else {
            drop(lanes);
            return self.dropped(d, "no runtime to deliver it");
        };
        if lanes.len() >= self.inner.settings.max_lanes {
            drop(lanes);
            return self.dropped(d, "too many conversations have deliveries queued");
        }
        let (tx, rx) = mpsc::channel(self.inner.settings.queue_capacity.max(1));
        if tx.try_send(d).is_err() {
            unreachable!("a new channel has room for one");
        }
        lanes.insert(key.clone(), tx);
        drop(lanes);
        runtime.spawn(self.clone().run_lane(key, rx));
    }

    fn dropped(&self, d: Delivery, why: &str) {
        self.record(
            &d.account,
            d.identity.as_deref(),
            format!("post {} {} {} dropped: {why}", d.event, d.target.method, d.target.url),
            serde_json::json!({
                "phase": "post",
                "event": d.event.name(),
                "method": d.target.method,
                "url": d.target.url,
                "request": { "params": d.fields.to_json() },
                "outcome": "dropped",
                "reason": why,
                "conversation": d.fields.get("ConversationSid"),
            }),
        );
    }

    async fn run_lane(self, key: LaneKey, mut rx: mpsc::Receiver<Delivery>) {
        let mut stop = self.inner.stop.clone();
        loop {
            if *stop.borrow() {
                return;
            }
            let next = tokio::select! {
                d = rx.recv() => d,
                _ = tokio::time::sleep(LANE_IDLE) => self.retire(&key, &mut rx),
                _ = stop.changed() => return,
            };
            let Some(d) = next else { return };
            if !self.deliver(d, &mut stop).await {
                return;
            }
        }
    }

    /// An idle lane leaves the map, unless a delivery arrived meanwhile (checked under the map's
    /// lock, which `enqueue` holds while it sends, so nothing is lost).
    fn retire(&self, key: &LaneKey, rx: &mut mpsc::Receiver<Delivery>) -> Option<Delivery> {
        let mut lanes = self.inner.lanes.lock().unwrap_or_else(|e| e.into_inner());
        match rx.try_recv() {
            Ok(d) => Some(d),
            Err(_) => {
                lanes.remove(key);
                None
            }
        }
    }

    /// Sends one delivery with retries; `false` if the server stopped meanwhile.
    async fn deliver(&self, d: Delivery, stop: &mut tokio::sync::watch::Receiver<bool>) -> bool {
        let s = &self.inner.settings;
        let attempts = s.post_attempts.max(1);
        for attempt in 0..attempts {
            let Some(account) = self.inner.domain.account(&d.account) else {
                return true;
            };
            let mut fields = d.fields.clone();
            fields.put("RetryCount", attempt.to_string());
            let req = delivery::prepare(&d.target, &fields, &account.auth_token);
            drop(account);
            let answer = delivery::send(&self.inner.client, &req, s.timeout, s.body_limit).await;
            let retryable = match answer.status {
                None => true,
                Some(status) => status == 429 || status >= 500,
            };
            let last = attempt + 1 == attempts;
            let outcome = if answer.is_success() {
                "delivered"
            } else if !retryable {
                "failed"
            } else if last {
                "gave_up"
            } else {
                "retrying"
            };
            self.record(
                &d.account,
                d.identity.as_deref(),
                delivery::summary("post", d.event.name(), &req, &answer, outcome),
                delivery::detail("post", d.event.name(), &d.target, &fields, &req, &answer, outcome),
            );
            if outcome != "retrying" {
                return true;
            }
            let wait = s.retry_backoff.saturating_mul(1 << attempt.min(16));
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.changed() => return false,
            }
        }
        true
    }
}
