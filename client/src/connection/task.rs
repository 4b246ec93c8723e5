//! The connection's one task: owns the socket, reads frames (acking each server packet as the
//! SDK does), routes replies and correlated answers, delivers notifications, writes commands.
use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures_util::{FutureExt, SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;

use super::{Command, Error, Notification, READ_BATCH, Sink, Ws};
use crate::codec::{self, Packet};

pub(super) struct Task {
    pub(super) ws: Ws,
    pub(super) sink: Sink,
    pub(super) pending: HashMap<String, oneshot::Sender<Packet>>,
    pub(super) correlations: HashMap<u64, oneshot::Sender<Value>>,
    pub(super) ack: bool,
    pub(super) control_packets: bool,
    pub(super) sink_wait: Duration,
}

impl Task {
    pub(super) async fn run(mut self, mut commands: mpsc::Receiver<Command>) -> Result<(), Error> {
        loop {
            tokio::select! {
                cmd = commands.recv() => match cmd {
                    None => {
                        let _ = self.ws.close(None).await;
                        return Ok(());
                    }
                    Some(Command::Request { id, frame, reply }) => {
                        self.pending.insert(id, reply);
                        self.ws.send(Message::Binary(frame)).await?;
                    }
                    Some(Command::AwaitCorrelation { correlation, reply }) => {
                        self.correlations.insert(correlation, reply);
                    }
                    Some(Command::Send(frame)) => self.ws.send(Message::Binary(frame)).await?,
                    Some(Command::Close) => {
                        let _ = self.ws.close(None).await;
                        return Ok(());
                    }
                },
                msg = self.ws.next() => {
                    let mut wrote = self.inbound(msg).await?;
                    // Handle what is already readable before flushing the acks it caused.
                    for _ in 1..READ_BATCH {
                        match self.ws.next().now_or_never() {
                            Some(msg) => wrote |= self.inbound(msg).await?,
                            None => break,
                        }
                    }
                    if wrote {
                        self.ws.flush().await?;
                    }
                }
            }
        }
    }

    /// Handles one frame; `true` if it queued a write (an ack) that still needs a flush.
    async fn inbound(&mut self, msg: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>) -> Result<bool, Error> {
        let bytes = match msg {
            None | Some(Ok(Message::Close(_))) => return Err(Error::Closed),
            Some(Err(e)) => return Err(e.into()),
            Some(Ok(Message::Binary(b))) => b,
            // Pings are answered by tungstenite itself; the server sends no text frames.
            Some(Ok(_)) => return Ok(false),
        };
        let received = Instant::now();
        let p = codec::decode(&bytes).map_err(|e| Error::Protocol(e.to_string()))?;
        let method = p.method().unwrap_or_default();
        if method == "reply" {
            if let Some(tx) = p.id().and_then(|id| self.pending.remove(id)) {
                let _ = tx.send(p);
            }
            return Ok(false);
        }
        let mut wrote = false;
        if self.ack
            && let Some(id) = p.id()
        {
            self.ws.feed(Message::Binary(codec::ack(id))).await?;
            wrote = true;
        }
        let control = self.control_packets && matches!(method, "client_update" | "close");
        if method != "notification" && !control {
            return Ok(wrote);
        }
        if !self.correlations.is_empty() {
            self.resolve_correlation(&p.payload);
        }
        let n = Notification {
            header: p.header,
            payload: p.payload,
            received,
        };
        match &mut self.sink {
            Sink::Handler(h) => h(n),
            Sink::Channel(tx) => match tx.try_send(n) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Closed(_)) => {}
                Err(mpsc::error::TrySendError::Full(n)) => {
                    // Flush the acks before waiting, so the server is not kept waiting too.
                    if wrote {
                        self.ws.flush().await?;
                        wrote = false;
                    }
                    match timeout(self.sink_wait, tx.send(n)).await {
                        Ok(_) => {}
                        Err(_) => return Err(Error::SlowConsumer),
                    }
                }
            },
        }
        Ok(wrote)
    }

    fn resolve_correlation(&mut self, payload: &[u8]) {
        #[derive(serde::Deserialize)]
        struct Control {
            event_type: String,
            correlation_id: Option<u64>,
        }
        let Ok(c) = serde_json::from_slice::<Control>(payload) else {
            return;
        };
        if !matches!(
            c.event_type.as_str(),
            "subscription_established" | "subscription_failed" | "subscription_canceled"
        ) {
            return;
        }
        if let Some(tx) = c.correlation_id.and_then(|id| self.correlations.remove(&id))
            && let Ok(v) = serde_json::from_slice(payload)
        {
            let _ = tx.send(v);
        }
    }
}
