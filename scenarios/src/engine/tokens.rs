//! Access tokens for a scenario's clients: `fresh`, `stale` (expired) and `wrong` (signed with
//! another secret), minted on the tenant's clock, and the token endpoint a client that *starts*
//! with a stale or wrong token fetches from.
//!
//! The driver protocol's `connect` carries a token URL, not a token (clients fetch their tokens,
//! as the Conversations quickstart does). A client whose scenario says `token = "stale"` gets
//! the URL of a small endpoint of the engine's own: its first answer is the stale token, every
//! later one a fresh token — an app that cached an old token and then fetches a new one.
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rehearsal_mock_server::auth::token::{MintRequest, mint};
use rehearsal_mock_server::control::Control;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::tenant::Tenant;
use crate::format::TokenKind;

/// Mints tokens for the tenant's identities.
#[derive(Clone)]
pub(crate) struct Minter {
    control: Control,
    tenant: Tenant,
    /// Each token gets a distinct `nbf`, so that two tokens minted within one second differ:
    /// the SDK ignores a token identical to the one it has.
    serial: Arc<AtomicI64>,
}

impl Minter {
    pub fn new(control: Control, tenant: Tenant) -> Minter {
        Minter {
            control,
            tenant,
            serial: Arc::default(),
        }
    }

    pub fn mint(&self, identity: &str, ttl: Duration, kind: TokenKind) -> String {
        let now = self
            .control
            .clock(Some(&self.tenant.account))
            .map(|c| c.now().unix_secs())
            .or_else(|_| self.control.clock(None).map(|c| c.now().unix_secs()))
            .unwrap_or_default();
        let ttl_secs = ttl.as_secs().max(1);
        let serial = self.serial.fetch_add(1, Ordering::Relaxed) + 1;
        let (now_unix, secret) = match kind {
            TokenKind::Fresh => (now, self.tenant.api_secret.clone()),
            // Issued one lifetime and a minute ago: expired for a minute.
            TokenKind::Stale => (
                now - i64::try_from(ttl_secs).unwrap_or(i64::MAX / 2) - 60,
                self.tenant.api_secret.clone(),
            ),
            TokenKind::Wrong => (now, format!("not-{}", self.tenant.api_secret)),
        };
        mint(&MintRequest {
            account_sid: self.tenant.account.clone(),
            api_key_sid: self.tenant.api_key.clone(),
            api_key_secret: secret,
            identity: identity.to_owned(),
            service_sid: Some(self.tenant.service.clone()),
            ttl_secs,
            now_unix,
            nbf_unix: Some(now_unix - serial),
        })
    }
}

/// The engine's token endpoint for clients that start with a stale or wrong token.
pub(crate) struct FirstTokens {
    pub base: String,
    task: JoinHandle<()>,
}

struct Plan {
    identity: String,
    ttl: Duration,
    first: TokenKind,
    served: u32,
}

impl FirstTokens {
    /// Serves `GET /token?client=NAME…` for the given clients (name, identity, ttl, first kind).
    pub async fn start(minter: Minter, clients: Vec<(String, String, Duration, TokenKind)>) -> std::io::Result<FirstTokens> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let plans: HashMap<String, Plan> = clients
            .into_iter()
            .map(|(name, identity, ttl, first)| {
                (
                    name,
                    Plan {
                        identity,
                        ttl,
                        first,
                        served: 0,
                    },
                )
            })
            .collect();
        let plans = Arc::new(Mutex::new(plans));
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else { return };
                let plans = plans.clone();
                let minter = minter.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::with_capacity(1024);
                    let mut chunk = [0u8; 1024];
                    // Only the request line matters; read until the headers end (bounded).
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16 * 1024 {
                        match tokio::time::timeout(Duration::from_secs(5), socket.read(&mut chunk)).await {
                            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                            _ => break,
                        }
                    }
                    let head = String::from_utf8_lossy(&buf);
                    let target = head.split_whitespace().nth(1).unwrap_or("/");
                    let (status, body) = answer(target, &plans, &minter);
                    let response = format!(
                        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nAccess-Control-Allow-Origin: *\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(response.as_bytes()).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        Ok(FirstTokens { base, task })
    }

    /// The token URL of one client.
    pub fn url(&self, client: &str) -> String {
        format!("{}/token?client={client}", self.base)
    }
}

impl Drop for FirstTokens {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn answer(target: &str, plans: &Mutex<HashMap<String, Plan>>, minter: &Minter) -> (&'static str, String) {
    let query = target.split_once('?').map_or("", |(_, q)| q);
    let client = query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == "client")
        .map(|(_, v)| v.to_owned());
    let mut plans = plans.lock().unwrap_or_else(|e| e.into_inner());
    let Some(plan) = client.as_deref().and_then(|c| plans.get_mut(c)) else {
        return ("404 Not Found", r#"{"message":"unknown client"}"#.to_owned());
    };
    let kind = if plan.served == 0 { plan.first } else { TokenKind::Fresh };
    plan.served += 1;
    let token = minter.mint(&plan.identity, plan.ttl, kind);
    let body = serde_json::json!({ "identity": plan.identity, "token": token, "ttl": plan.ttl.as_secs() });
    ("200 OK", body.to_string())
}
