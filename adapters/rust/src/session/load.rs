//! The first load after `init` (Configuration, the user's conversations, one subscription for
//! all their Sync objects) and the resubscription after a reconnect.
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::StreamExt;
use rehearsal_client::{Client, Error as ClientError};
use serde_json::{Value, json};

use super::{OPEN_CONCURRENCY, STARTUP_READ_ATTEMPTS, SUBSCRIPTION_BATCH, Session};
use crate::conversations::{Conversation, ObjectKind};
use crate::log;
use crate::protocol::CommandError;

impl Session {
    /// What follows a successful `init`: the first load, or a resubscription.
    pub(super) async fn load(self: Arc<Self>, client: Arc<Client>) {
        if self.loaded.load(Ordering::Acquire) {
            let requests = self.with_book(|b| b.subscriptions());
            if let Err(e) = self.subscribe(&client, requests).await {
                log!("[{}] resubscribing after a reconnect failed: {}", self.name, e.message);
            }
            return;
        }
        match self.first_load(&client).await {
            Ok(joined) => {
                self.loaded.store(true, Ordering::Release);
                self.report_joined(&joined);
                self.settle(Ok(()));
            }
            Err(e) => {
                log!("[{}] loading after initialisation failed: {}", self.name, e.message);
                self.settle(Err(e));
            }
        }
    }

    /// The Configuration, the user's conversations map, the conversation list, then one
    /// subscription for everything; the conversations joined.
    pub(super) async fn first_load(self: &Arc<Self>, client: &Client) -> Result<Vec<String>, CommandError> {
        let cfg = retry(|| client.configuration()).await?;
        let map = retry(|| client.descriptor("map", &cfg.my_conversations_map)).await?;
        self.with_book(|b| b.track_my_conversations(&map.sid, map.last_event_id));
        self.event("initialized", json!({}));
        let mut joined = Vec::new();
        for c in self.conversation_list(client).await? {
            if let Some(c) = Conversation::from_rest(&c) {
                let sid = c.sid.clone();
                if self.with_book(|b| b.add(c)) {
                    joined.push(sid);
                }
            }
        }
        self.open_objects(client, &joined).await;
        let mut requests = vec![json!({ "object_sid": map.sid, "object_type": "map", "last_event_id": map.last_event_id })];
        requests.extend(self.with_book(|b| {
            b.subscriptions()
                .into_iter()
                .filter(|r| r["object_sid"] != map.sid.as_str())
                .collect::<Vec<_>>()
        }));
        self.subscribe(client, requests).await?;
        Ok(joined)
    }

    /// The user's conversations (`GET {my_conversations}`), following `meta.next_token`.
    pub async fn conversation_list(&self, client: &Client) -> Result<Vec<Value>, CommandError> {
        let cfg = client.configuration().await?;
        let mut all = Vec::new();
        let mut page_token: Option<String> = None;
        loop {
            let params: Vec<(&str, &str)> = page_token.iter().map(|t| ("PageToken", t.as_str())).collect();
            let page = retry(|| client.call("GET", &cfg.my_conversations_url, &params, None)).await?;
            if let Some(items) = page["conversations"].as_array() {
                all.extend(items.iter().cloned());
            }
            match page["meta"]["next_token"].as_str() {
                Some(t) if !t.is_empty() && page_token.as_deref() != Some(t) => page_token = Some(t.to_owned()),
                _ => return Ok(all),
            }
        }
    }

    /// Reads the descriptors of the conversations' objects and tracks them from their event
    /// ids (a failure leaves that conversation untracked, logged).
    pub(super) async fn open_objects(&self, client: &Client, sids: &[String]) {
        let objects: Vec<(String, String, String, String)> = self.with_book(|b| {
            sids.iter()
                .filter_map(|s| b.conversations.get(s))
                .map(|c| (c.sid.clone(), c.document.clone(), c.messages.clone(), c.roster.clone()))
                .collect()
        });
        let reads = futures_util::stream::iter(objects)
            .map(|(sid, document, messages, roster)| async move {
                let read = async {
                    let d = client.descriptor("document", &document).await?;
                    let l = client.descriptor("list", &messages).await?;
                    let r = client.descriptor("map", &roster).await?;
                    Ok::<_, ClientError>((d, l, r))
                };
                (sid, read.await)
            })
            .buffer_unordered(OPEN_CONCURRENCY)
            .collect::<Vec<_>>()
            .await;
        for (sid, read) in reads {
            match read {
                Ok((d, l, r)) => self.with_book(|b| {
                    if let Some(c) = b.conversations.get_mut(&sid) {
                        c.messages_items = Some(l.items_url.clone());
                        b.track(&sid, ObjectKind::Document, &d.sid, d.last_event_id);
                        b.track(&sid, ObjectKind::Messages, &l.sid, l.last_event_id);
                        b.track(&sid, ObjectKind::Roster, &r.sid, r.last_event_id);
                    }
                }),
                Err(e) => log!("[{}] reading the objects of {sid} failed: {e}", self.name),
            }
        }
    }

    /// Opens conversations joined after startup: their objects, then their subscription.
    pub(super) async fn open(&self, client: &Client, sids: &[String]) -> Result<(), CommandError> {
        self.open_objects(client, sids).await;
        let requests = self.with_book(|b| {
            b.objects
                .iter()
                .filter(|(_, t)| t.conversation.as_ref().is_some_and(|c| sids.contains(c)))
                .map(|(sid, t)| json!({ "object_sid": sid, "object_type": t.kind.sync_type(), "last_event_id": t.last_event_id }))
                .collect::<Vec<_>>()
        });
        self.subscribe(client, requests).await
    }

    pub(super) async fn subscribe(&self, client: &Client, requests: Vec<Value>) -> Result<(), CommandError> {
        for batch in requests.chunks(SUBSCRIPTION_BATCH) {
            client.subscriptions("establish", Value::Array(batch.to_vec())).await?;
        }
        Ok(())
    }

    pub(super) fn report_joined(&self, sids: &[String]) {
        for sid in sids {
            let fields = self.with_book(|b| b.conversations.get(sid).map(Conversation::fields));
            if let Some(fields) = fields {
                self.event("conversation_joined", fields);
            }
        }
    }
}

/// A startup read, retried on failure as the SDK's `fetchResource` does (50 ms doubling).
async fn retry<T, F, Fut>(mut read: F) -> Result<T, CommandError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ClientError>>,
{
    let mut delay = Duration::from_millis(50);
    let mut attempt = 1;
    loop {
        match read().await {
            Ok(v) => return Ok(v),
            Err(e @ (ClientError::Closed | ClientError::WebSocket(_))) => return Err(e.into()),
            Err(e) if attempt >= STARTUP_READ_ATTEMPTS => return Err(e.into()),
            Err(_) => {
                tokio::time::sleep(delay).await;
                delay *= 2;
                attempt += 1;
            }
        }
    }
}
