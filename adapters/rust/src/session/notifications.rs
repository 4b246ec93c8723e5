//! What the server pushes, turned into protocol events: the notification pump, the effects of
//! Sync events on the client's conversations, typing indicators.
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rehearsal_client::{Client, Error as ClientError, Notification, Notifications, sync_events};
use serde_json::{Value, json};
use tokio::sync::watch;

use super::{Close, End, Session};
use crate::conversations::Effect;
use crate::log;

impl Session {
    /// Reads the connection's notifications until it ends.
    pub(super) async fn pump(self: &Arc<Self>, client: &Arc<Client>, notes: &mut Notifications, stop: &mut watch::Receiver<bool>) -> End {
        loop {
            let next = tokio::select! {
                n = notes.next(Duration::from_secs(3600)) => n,
                _ = stop.changed() => return End::Stopped,
            };
            let n = match next {
                Ok(n) => n,
                Err(ClientError::Timeout(_)) => continue,
                Err(_) => return End::Dropped,
            };
            match n.method() {
                "close" => return End::Closed(Close::from_packet(&n)),
                "client_update" => {
                    if n.header.get("client_update_type").and_then(Value::as_str) == Some("token_about_to_expire") {
                        self.event("token_about_to_expire", json!({}));
                        self.refresh_in_session(client.clone());
                    }
                }
                _ if n.message_type() == "twilio.ipmsg.typing_indicator" => self.typing_indicator(&n),
                _ => match sync_events(&n.payload) {
                    Ok(events) => {
                        for ev in events {
                            let effects = self.with_book(|b| b.apply(&ev));
                            self.effects(client, effects);
                        }
                    }
                    Err(e) => log!("[{}] ignoring a notification: {e}", self.name),
                },
            }
        }
    }

    pub(super) fn effects(self: &Arc<Self>, client: &Arc<Client>, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Emit(name, fields) => self.event(name, fields),
                Effect::Open(sid) => {
                    let (session, client) = (self.clone(), client.clone());
                    tokio::spawn(async move {
                        match session.open(&client, std::slice::from_ref(&sid)).await {
                            Ok(()) => session.report_joined(&[sid]),
                            Err(e) => log!("[{}] opening {sid} failed: {}", session.name, e.message),
                        }
                    });
                }
                Effect::StopTyping { conversation, identity } => {
                    let shown = self
                        .typing
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&(conversation.clone(), identity.clone()))
                        .is_some();
                    if shown {
                        self.event("typing_ended", json!({ "conversation": conversation, "identity": identity }));
                    }
                }
            }
        }
    }

    /// `typing_started` for someone else's indicator, and `typing_ended` when its
    /// `typing_timeout` passes without another (or their message ends it first).
    pub(super) fn typing_indicator(self: &Arc<Self>, n: &Notification) {
        let Ok(p) = n.payload_json() else { return };
        let (Some(conversation), Some(identity)) = (p["channel_sid"].as_str(), p["identity"].as_str()) else {
            return;
        };
        if identity == self.identity {
            return;
        }
        let timeout = Duration::from_secs(p["typing_timeout"].as_u64().unwrap_or(5).clamp(1, 60));
        let key = (conversation.to_owned(), identity.to_owned());
        let generation = self.typing_generation.fetch_add(1, Ordering::Relaxed) + 1;
        let started = self
            .typing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.clone(), generation)
            .is_none();
        if started {
            self.event("typing_started", json!({ "conversation": conversation, "identity": identity }));
        }
        let session = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(timeout).await;
            let ended = {
                let mut typing = session.typing.lock().unwrap_or_else(|e| e.into_inner());
                if typing.get(&key) == Some(&generation) {
                    typing.remove(&key);
                    true
                } else {
                    false
                }
            };
            if ended {
                session.event("typing_ended", json!({ "conversation": key.0, "identity": key.1 }));
            }
        });
    }
}
