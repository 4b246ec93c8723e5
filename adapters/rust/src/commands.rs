//! The protocol's commands over `rehearsal-client`, each as the SDK method it stands for would
//! do it on the wire (wire protocol §5.3, §6.3). Commands the client cannot do answer
//! `unsupported`, so the harness grades them UNIMPLEMENTED rather than FAILED.
use std::sync::Arc;
use std::time::Duration;

use rehearsal_client::{Client, Order, enc};
use serde_json::{Value, json};

use crate::protocol::{Command, CommandError, PROTOCOL_VERSION};
use crate::registry::Registry;
use crate::session::Session;

pub const ADAPTER_NAME: &str = "rehearsal-adapter-rust";

/// The commands this adapter implements (`hello`'s `capabilities`). `send` with `media`, and
/// `get_media`, are not among them: the lean client has no media (MCS) support.
pub const CAPABILITIES: [&str; 14] = [
    "hello",
    "connect",
    "update_token",
    "list_conversations",
    "join",
    "leave",
    "create",
    "send",
    "page_messages",
    "edit",
    "remove",
    "typing",
    "set_read_horizon",
    "shutdown",
];

/// Bound on `connect` (the first connection and its load).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// The typing throttle before the server has said otherwise (`typing_timeout`, seconds).
const DEFAULT_TYPING_TIMEOUT_SECS: u64 = 5;
/// Reads of one page across reconnects.
const PAGE_READ_ATTEMPTS: u32 = 3;
/// The largest page the server serves (Sync's `PageSize` limit).
const MAX_PAGE_SIZE: u64 = 100;
/// A bound on `pages` (the harness sends `"all"` as 100 000).
const MAX_PAGES: u64 = 1_000_000;

/// Where the connection settings come from when a command does not give them.
pub struct Defaults {
    pub token_url: Option<String>,
    pub twilsock_url: Option<String>,
}

/// Runs one command.
pub async fn run(registry: &Registry, defaults: &Defaults, out: &crate::protocol::Output, cmd: &Command) -> Result<Value, CommandError> {
    match cmd.name.as_str() {
        "hello" => Ok(json!({
            "name": ADAPTER_NAME,
            "version": env!("CARGO_PKG_VERSION"),
            "protocol": PROTOCOL_VERSION,
            "capabilities": CAPABILITIES,
            "sdk": "rehearsal-client",
        })),
        "connect" => connect(registry, defaults, out, cmd).await,
        "update_token" => {
            let s = registry.get(cmd.str("client")?)?;
            s.update_token(cmd.str("token")?.to_owned()).await.map(|()| json!({}))
        }
        "list_conversations" => {
            let s = registry.get(cmd.str("client")?)?;
            let client = s.client().await?;
            let list = s.conversation_list(&client).await?;
            let conversations: Vec<Value> = list
                .iter()
                .map(|c| json!({ "sid": c["conversation_sid"].as_str().or(c["sid"].as_str()), "unique_name": c["unique_name"], "friendly_name": c["friendly_name"] }))
                .collect();
            Ok(json!({ "conversations": conversations }))
        }
        "join" => {
            let (s, client) = live(registry, cmd).await?;
            let sid = resolve(&s, &client, cmd.str("conversation")?).await?;
            client.join(&sid).await?;
            Ok(json!({}))
        }
        "leave" => {
            let (s, client) = live(registry, cmd).await?;
            let sid = resolve(&s, &client, cmd.str("conversation")?).await?;
            client.leave(&sid).await?;
            Ok(json!({}))
        }
        "create" => create(registry, cmd).await,
        "send" => send(registry, cmd).await,
        "page_messages" => page_messages(registry, cmd).await,
        "edit" => {
            let text = cmd.str_or_empty("text")?;
            let (client, sid, msid) = message_at(registry, cmd).await?;
            let cfg = client.configuration().await?;
            let body = Value::String(json!({ "body": text }).to_string());
            client
                .call(
                    "POST",
                    &format!("{}/{sid}/Messages/{msid}", cfg.conversations_url),
                    &[],
                    Some(&body),
                )
                .await?;
            Ok(json!({}))
        }
        "remove" => {
            let (client, sid, msid) = message_at(registry, cmd).await?;
            let cfg = client.configuration().await?;
            client
                .call(
                    "DELETE",
                    &format!("{}/{sid}/Messages/{msid}", cfg.conversations_url),
                    &[],
                    Some(&Value::String("{}".into())),
                )
                .await?;
            Ok(json!({}))
        }
        "typing" => {
            let (s, client) = live(registry, cmd).await?;
            let sid = resolve(&s, &client, cmd.str("conversation")?).await?;
            if !s.typing_due(&sid) {
                return Ok(json!({}));
            }
            // Counted from before the request, so that calls made while it is in flight are
            // throttled too.
            let sent_at = std::time::Instant::now();
            s.typing_sent(&sid, sent_at, Duration::from_secs(DEFAULT_TYPING_TIMEOUT_SECS));
            let cfg = client.configuration().await?;
            let typing = cfg.raw["links"]["typing"]
                .as_str()
                .ok_or_else(|| CommandError::failed("the Configuration has no typing link"))?;
            // The SDK posts typing as a form, not JSON (wire protocol §5.3).
            let form = format!("ChannelSid={}", enc(&sid));
            let a = client
                .request_with("POST", typing, &[], "application/x-www-form-urlencoded", form.into_bytes())
                .await?;
            let answer = http_ok("POST", typing, a)?;
            let timeout = answer["typing_timeout"].as_u64().unwrap_or(DEFAULT_TYPING_TIMEOUT_SECS).min(60);
            s.typing_sent(&sid, sent_at, Duration::from_secs(timeout));
            Ok(json!({}))
        }
        "set_read_horizon" => set_read_horizon(registry, cmd).await,
        "get_media" => Err(CommandError::unsupported(format!(
            "get_media is not implemented by {ADAPTER_NAME}: rehearsal-client has no media (MCS) support"
        ))),
        "shutdown" => {
            match cmd.opt_str("client")? {
                Some(name) => {
                    let s = registry
                        .remove(name)
                        .ok_or_else(|| CommandError::failed(format!("no client named \"{name}\"")))?;
                    s.shutdown().await;
                }
                None => shutdown_all(registry).await,
            }
            Ok(json!({}))
        }
        other => Err(CommandError::unsupported(format!(
            "command {other:?} is not implemented by {ADAPTER_NAME}"
        ))),
    }
}

pub async fn shutdown_all(registry: &Registry) {
    let all = registry.drain();
    futures_util::future::join_all(all.iter().map(|s| s.shutdown())).await;
}

impl Command {
    /// A string argument that may be empty (a message body), but must be present.
    fn str_or_empty(&self, key: &str) -> Result<&str, CommandError> {
        match self.args.get(key) {
            Some(Value::String(s)) => Ok(s),
            _ => Err(CommandError::failed(format!("missing \"{key}\""))),
        }
    }
}

async fn connect(registry: &Registry, defaults: &Defaults, out: &crate::protocol::Output, cmd: &Command) -> Result<Value, CommandError> {
    let name = cmd.str("client")?;
    if registry.contains(name) {
        return Err(CommandError::failed(format!("client \"{name}\" already exists")));
    }
    let identity = cmd.opt_str("identity")?.unwrap_or(name);
    let token_url = cmd
        .opt_str("token_url")?
        .or(defaults.token_url.as_deref())
        .ok_or_else(|| CommandError::failed("missing \"token_url\" (and no REHEARSAL_TOKEN_URL)"))?;
    let twilsock_url = cmd
        .opt_str("twilsock_url")?
        .or(defaults.twilsock_url.as_deref())
        .ok_or_else(|| CommandError::failed("missing \"twilsock_url\" (and no REHEARSAL_TWILSOCK_URL)"))?;
    let session = Session::start(name, identity, token_url, twilsock_url, out.clone());
    registry.insert(session.clone())?;
    // A client that started stays registered on failure: its events go on, and `update_token`
    // may still recover it.
    session.ready(CONNECT_TIMEOUT).await.map(|()| json!({}))
}

async fn live(registry: &Registry, cmd: &Command) -> Result<(Arc<Session>, Arc<Client>), CommandError> {
    let s = registry.get(cmd.str("client")?)?;
    let client = s.client().await?;
    Ok((s, client))
}

fn http_ok(method: &str, target: &str, a: rehearsal_client::Answer) -> Result<Value, CommandError> {
    if (200..300).contains(&a.status) {
        Ok(a.body)
    } else {
        Err(rehearsal_client::Error::Http {
            method: method.to_owned(),
            target: target.to_owned(),
            status: a.status,
            body: a.body,
        }
        .into())
    }
}

/// A conversation SID from a SID or a unique name: the client's own conversations first, then
/// the server (`GET {conversations}/{id}` resolves both).
async fn resolve(s: &Session, client: &Client, reference: &str) -> Result<String, CommandError> {
    if let Some(sid) = s.with_book(|b| b.find(reference).map(|c| c.sid.clone())) {
        return Ok(sid);
    }
    let cfg = client.configuration().await?;
    let c = client
        .call("GET", &format!("{}/{}", cfg.conversations_url, enc(reference)), &[], None)
        .await?;
    c["sid"]
        .as_str()
        .or(c["conversation_sid"].as_str())
        .map(str::to_owned)
        .ok_or_else(|| CommandError::failed(format!("the server described {reference} without a sid")))
}

/// `links.items` of a conversation's message list.
async fn messages_items(s: &Session, client: &Client, sid: &str) -> Result<String, CommandError> {
    if let Some(url) = s.with_book(|b| b.conversations.get(sid).and_then(|c| c.messages_items.clone())) {
        return Ok(url);
    }
    let objects = client.conversation(sid).await?;
    let list = client.descriptor("list", &objects.messages).await?;
    Ok(list.items_url)
}

async fn create(registry: &Registry, cmd: &Command) -> Result<Value, CommandError> {
    let (_, client) = live(registry, cmd).await?;
    let cfg = client.configuration().await?;
    let mut body = serde_json::Map::new();
    for (arg, field) in [
        ("unique_name", "unique_name"),
        ("friendly_name", "friendly_name"),
        ("attributes", "attributes"),
    ] {
        if let Some(v) = cmd.opt_str(arg)? {
            body.insert(field.into(), v.into());
        }
    }
    let payload = Value::String(Value::Object(body).to_string());
    let c = client.call("POST", &cfg.conversations_url, &[], Some(&payload)).await?;
    let sid = c["sid"].as_str().or(c["conversation_sid"].as_str());
    Ok(json!({ "sid": sid }))
}

async fn send(registry: &Registry, cmd: &Command) -> Result<Value, CommandError> {
    if cmd.args.get("media").is_some_and(|m| !m.is_null()) {
        return Err(CommandError::unsupported(format!(
            "sending media is not implemented by {ADAPTER_NAME}: rehearsal-client has no media (MCS) upload"
        )));
    }
    let (s, client) = live(registry, cmd).await?;
    let sid = resolve(&s, &client, cmd.str("conversation")?).await?;
    let attributes = match cmd.opt_str("attributes")? {
        Some(a) => {
            serde_json::from_str::<Value>(a).map_err(|e| CommandError::failed(format!("\"attributes\" is not a JSON string: {e}")))?;
            a.to_owned()
        }
        None => "{}".to_owned(),
    };
    let text = cmd.opt_str("text")?.unwrap_or_default();
    let cfg = client.configuration().await?;
    // Conversations takes its body as a JSON string (wire protocol §2.7).
    let payload = Value::String(json!({ "body": text, "attributes": attributes }).to_string());
    let m = client
        .call("POST", &format!("{}/{sid}/Messages", cfg.conversations_url), &[], Some(&payload))
        .await?;
    Ok(json!({ "index": m["index"] }))
}

/// `conversation.getMessages(page_size, anchor, direction)` and the page walk: backwards is
/// `Order=desc` from the anchor (inclusive), each next page from just below the lowest index
/// seen; forwards is `Order=asc`, from just above the highest. Pages are reported ascending,
/// as the SDK sorts them.
async fn page_messages(registry: &Registry, cmd: &Command) -> Result<Value, CommandError> {
    let (s, client) = live(registry, cmd).await?;
    let sid = resolve(&s, &client, cmd.str("conversation")?).await?;
    let backwards = match cmd.opt_str("direction")?.unwrap_or("backwards") {
        "backwards" | "backward" => true,
        "forwards" | "forward" => false,
        other => {
            return Err(CommandError::failed(format!(
                "\"direction\" must be \"backwards\" or \"forwards\", not {other:?}"
            )));
        }
    };
    let page_size = cmd.opt_u64("page_size", MAX_PAGE_SIZE)?.unwrap_or(30);
    if page_size == 0 {
        return Err(CommandError::failed("\"page_size\" must be a positive integer"));
    }
    let wanted = match cmd.args.get("pages") {
        Some(Value::String(all)) if all == "all" => MAX_PAGES,
        _ => cmd.opt_u64("pages", MAX_PAGES)?.unwrap_or(1).max(1),
    };
    let items = messages_items(&s, &client, &sid).await?;
    let order = if backwards { Order::Desc } else { Order::Asc };
    let page_size = u32::try_from(page_size).unwrap_or(30);
    let mut from = cmd.opt_u64("anchor", u64::MAX)?;
    let mut pages: Vec<Vec<u64>> = Vec::new();
    let has_more = loop {
        let page = page_over_reconnects(&s, &items, from, page_size, order).await?;
        let mut indexes = page.indexes();
        indexes.sort_unstable();
        let more = page.has_next && !indexes.is_empty();
        let next_from = if backwards {
            indexes.first().and_then(|i| i.checked_sub(1))
        } else {
            indexes.last().and_then(|i| i.checked_add(1))
        };
        pages.push(indexes);
        match next_from {
            Some(f) if more && (pages.len() as u64) < wanted => from = Some(f),
            // No index below 0: nothing older can exist.
            None => break false,
            _ => break more,
        }
    };
    Ok(json!({ "pages": pages, "has_more": has_more }))
}

/// One page read; a read cut off by a lost connection is made again on the next one, as
/// twilsock re-sends what was queued while offline (bounded: [`PAGE_READ_ATTEMPTS`]).
async fn page_over_reconnects(
    s: &Session,
    items: &str,
    from: Option<u64>,
    page_size: u32,
    order: Order,
) -> Result<rehearsal_client::Page, CommandError> {
    let mut attempt = 1;
    loop {
        let client = s.client().await?;
        match client.list_page(items, from, page_size, order).await {
            Err(rehearsal_client::Error::Closed | rehearsal_client::Error::WebSocket(_)) if attempt < PAGE_READ_ATTEMPTS => {
                attempt += 1;
                // The dead connection stays current until its session notices; let it.
                let mut waited = 0;
                while s.client().await.is_ok_and(|c| Arc::ptr_eq(&c, &client)) && waited < 50 {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    waited += 1;
                }
            }
            other => return other.map_err(CommandError::from),
        }
    }
}

/// The message at `index` of a conversation: (client, conversation SID, message SID).
async fn message_at(registry: &Registry, cmd: &Command) -> Result<(Arc<Client>, String, String), CommandError> {
    let (s, client) = live(registry, cmd).await?;
    let sid = resolve(&s, &client, cmd.str("conversation")?).await?;
    let index = cmd
        .opt_u64("index", u64::MAX)?
        .ok_or_else(|| CommandError::failed("\"index\" must be an integer"))?;
    let items = messages_items(&s, &client, &sid).await?;
    let page = client.list_page(&items, Some(index), 1, Order::Asc).await?;
    let msid = page
        .items
        .iter()
        .find(|i| i["index"].as_u64() == Some(index))
        .and_then(|i| i["data"]["sid"].as_str())
        .ok_or_else(|| CommandError::failed(format!("no message with index {index} in {sid}")))?
        .to_owned();
    Ok((client, sid, msid))
}

/// `updateLastReadMessageIndex(n)` / `setAllMessagesUnread()` (`null`) /
/// `setAllMessagesRead()` (`"all"`: the last message's index): `POST {my_conversations}/{sid}`.
async fn set_read_horizon(registry: &Registry, cmd: &Command) -> Result<Value, CommandError> {
    let (s, client) = live(registry, cmd).await?;
    let sid = resolve(&s, &client, cmd.str("conversation")?).await?;
    let index = match cmd.args.get("index") {
        None => return Err(CommandError::failed("missing \"index\" (a number, null or \"all\")")),
        Some(Value::Null) => Value::Null,
        Some(Value::String(a)) if a == "all" => {
            let items = messages_items(&s, &client, &sid).await?;
            let last = client.list_page(&items, None, 1, Order::Desc).await?;
            last.indexes().first().map_or(Value::Null, |i| Value::from(*i))
        }
        Some(v) => match v.as_u64() {
            Some(n) => n.into(),
            None => {
                return Err(CommandError::failed(format!(
                    "\"index\" must be a number, null or \"all\", not {v}"
                )));
            }
        },
    };
    let cfg = client.configuration().await?;
    let payload = Value::String(json!({ "last_read_message_index": index }).to_string());
    let c = client
        .call("POST", &format!("{}/{sid}", cfg.my_conversations_url), &[], Some(&payload))
        .await?;
    Ok(json!({ "unread": c["unread_messages_count"] }))
}
