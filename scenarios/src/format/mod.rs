//! The scenario format: the types a scenario file deserialises into, as an engine executes them.
//!
//! A scenario file is TOML. Top-level keys: `id`, `title`, `area`, `checks`, `reference`,
//! `rationale`, `requires`, `timeout`, `[seed]`, `[[clients]]`, `[[steps]]`, `[[on]]` (triggers)
//! and `[[expect]]` (expectations judged at the end). Every table that can be of several kinds
//! starts with the key naming its kind (see `tagged`). Durations are texts (`"200ms"`).
//!
//! Layout: `action` (server actions), `command` (client commands), `expect` (expectations),
//! `step` (steps, conditions, triggers), `values` (targets, actors, counts…), `duration`,
//! `matching` (how `match` tables compare), `tagged` (serde plumbing).
use std::fmt;
use std::time::Duration;

use schemars::JsonSchema;
use serde::de::DeserializeSeed;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub mod action;
pub mod command;
pub mod duration;
pub mod expect;
pub mod matching;
pub mod step;
pub(crate) mod tagged;
pub mod values;

pub use action::ServerAction;
pub use command::{ClientCommand, CommandStep, Outcome};
pub use expect::{ExpectKind, Expectation, Grade};
pub use step::{Condition, EventMatch, Mark, ObservedMatch, Step, Trigger, Wait, WaitFor};
pub use values::{Actor, CloseCode, Count, MessageRef, ReadHorizon, Target, Times};

use duration::DurationText;

/// How long a scenario may take (wall time) unless it says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest `timeout` a scenario may ask for: scenarios are meant to run in seconds.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(60);
/// Token lifetime of a client that does not give one.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(3600);

/// A scenario: one situation to put a client in, and what to expect of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    title = "Rehearsal scenario",
    description = "A situation to put a Twilio Conversations client in, and what to expect of it."
)]
pub struct Scenario {
    /// `<area>.<name>`, e.g. `connection.drop-reconnects`: lowercase letters, digits and `-`.
    pub id: String,
    /// One line saying what happens.
    pub title: String,
    pub area: Area,
    /// The behaviour the scenario checks, in a sentence or two.
    pub checks: String,
    /// Where that behaviour is described: `protocol §2.8` (Rehearsal's SDK wire-protocol notes)
    /// or an `https://` link to Twilio's documentation.
    pub reference: String,
    /// One line: why a client must get this right.
    pub rationale: String,
    /// Driver capabilities the scenario needs; always written, so that the mode is never
    /// implicit. `[]`: **observed mode** — no driver; the client connects as configured by its
    /// environment and is judged by what the server saw.
    pub requires: Vec<Capability>,
    /// Wall-time budget (default 10 s, at most 60 s).
    #[serde(default, with = "duration::option", skip_serializing_if = "Option::is_none")]
    #[schemars(with = "DurationText")]
    pub timeout: Option<Duration>,
    /// The tenant's starting state (default: the server's default seed).
    #[serde(default, skip_serializing_if = "Seed::is_default")]
    pub seed: Seed,
    /// The clients under test. All are started when the scenario starts; driven clients
    /// connect on `command = "connect"`, observed ones by themselves.
    pub clients: Vec<Client>,
    /// Run in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<Step>,
    /// Triggers: steps run when something happens, alongside `steps`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on: Vec<Trigger>,
    /// Judged once the steps are done and every window has closed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expect: Vec<Expectation>,
    /// The app's backend, played by the engine: when present, the tenant's service sends its
    /// pre- and post-action webhooks to a local endpoint that answers as `answer` says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhooks: Option<Webhooks>,
}

/// The app's backend for a webhook scenario. The engine serves it on a loopback port and sets
/// the tenant service's webhook configuration to it (pre- and post-action URL, `method`,
/// `filters`); every delivery is in the server's journal (`observed = "webhook"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Webhooks {
    /// The events the configuration names (Twilio's `Filters`): `onMessageAdd`,
    /// `onMessageAdded`, …
    pub filters: Vec<String>,
    /// `POST` (default, form-encoded fields) or `GET` (fields in the query).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// How the backend answers; the first rule matching a request applies. A request no rule
    /// matches gets `200` with an empty body (the action proceeds unchanged).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub answer: Vec<HookAnswer>,
}

/// One way the backend answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HookAnswer {
    /// The request's `EventType`.
    pub event: String,
    /// Further request fields that must be equal (e.g. `{ Body = "bad word" }`).
    #[serde(rename = "match", default, skip_serializing_if = "Option::is_none")]
    pub matches: Option<Map<String, Value>>,
    /// The HTTP status (default 200). A 4xx or 5xx to a pre-action hook rejects the action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// A JSON body; to a pre-action hook, a modification (`{ body = "…" }`, `{ friendly_name = "…" }`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    /// Answer only after this long (longer than the server's webhook timeout of 5 s: no answer).
    #[serde(default, with = "duration::option", skip_serializing_if = "Option::is_none")]
    #[schemars(with = "DurationText")]
    pub delay: Option<Duration>,
}

/// Whether a scenario needs a driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// No driver: the client connects by itself; only server observations and state are judged.
    Observed,
    /// A driver runs commands and reports events.
    Driven,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            Mode::Observed => "observed",
            Mode::Driven => "driven",
        })
    }
}

impl Scenario {
    pub fn mode(&self) -> Mode {
        if self.requires.is_empty() { Mode::Observed } else { Mode::Driven }
    }

    pub fn timeout(&self) -> Duration {
        self.timeout.unwrap_or(DEFAULT_TIMEOUT)
    }

    pub fn client(&self, name: &str) -> Option<&Client> {
        self.clients.iter().find(|c| c.name == name)
    }

    /// `connection.drop-reconnects  [observed]  A dropped socket …` — one line for listings.
    pub fn summary_line(&self) -> String {
        let mode = match self.mode() {
            Mode::Observed => "[observed]",
            Mode::Driven => "[driven]  ",
        };
        format!("{:<44} {mode} {}", self.id, self.title)
    }

    /// The scenario as TOML, in the library's layout: top-level keys, then `[seed]`, then one
    /// `[[clients]]`, `[[steps]]`, `[[on]]` or `[[expect]]` table per element with every value
    /// inline, so that each table keeps its kind key first. `load` reads it back to an equal
    /// scenario.
    pub fn to_toml(&self) -> String {
        let table = toml::Table::try_from(self).expect("a scenario serialises to a TOML table");
        render(&table)
    }

    /// Every step, main sequence first, then each trigger's `then`, with where it is
    /// (`steps[3]`, `on[0].then[1]`).
    pub fn all_steps(&self) -> Vec<(String, &Step)> {
        let mut out: Vec<(String, &Step)> = self.steps.iter().enumerate().map(|(i, s)| (format!("steps[{i}]"), s)).collect();
        for (t, trigger) in self.on.iter().enumerate() {
            out.extend(trigger.then.iter().enumerate().map(|(i, s)| (format!("on[{t}].then[{i}]"), s)));
        }
        out
    }
}

/// The part of the product a scenario exercises; library folders are named after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Area {
    /// Connection states, drops, offloads, terminal closes, refused and stalled connections.
    Connection,
    /// Token lifetime: warnings, expiry, stale and wrong tokens, refresh.
    Token,
    /// Joining and leaving, by REST and by the client; deleted and re-added conversations.
    Membership,
    /// Fan-out, order, edits, removals, attributes, bursts.
    Messaging,
    /// History paging: depth, anchors, page sizes, holes, arrivals while paging.
    Pagination,
    /// Uploads and downloads: integrity, limits, content types, temporary URLs, failures.
    Media,
    /// Typing indicators.
    Typing,
    /// Read horizon and unread counts.
    ReadHorizon,
    /// Pre- and post-action hooks to the app's backend (played by the engine).
    Webhooks,
}

impl Area {
    pub const ALL: [Area; 9] = [
        Area::Connection,
        Area::Token,
        Area::Membership,
        Area::Messaging,
        Area::Pagination,
        Area::Media,
        Area::Typing,
        Area::ReadHorizon,
        Area::Webhooks,
    ];

    /// As written in files (and the library folder's name).
    pub fn as_str(self) -> &'static str {
        match self {
            Area::Connection => "connection",
            Area::Token => "token",
            Area::Membership => "membership",
            Area::Messaging => "messaging",
            Area::Pagination => "pagination",
            Area::Media => "media",
            Area::Typing => "typing",
            Area::ReadHorizon => "read_horizon",
            Area::Webhooks => "webhooks",
        }
    }
}

impl fmt::Display for Area {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a driver must be able to do for a scenario: report events, or run a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    /// Report the client's events (needed by client-reported expectations and event conditions).
    Events,
    Connect,
    UpdateToken,
    ListConversations,
    Join,
    Leave,
    Create,
    Send,
    SendMedia,
    PageMessages,
    Edit,
    Remove,
    Typing,
    SetReadHorizon,
    GetMedia,
    Shutdown,
}

impl Capability {
    pub fn as_str(self) -> &'static str {
        match self {
            Capability::Events => "events",
            Capability::Connect => "connect",
            Capability::UpdateToken => "update_token",
            Capability::ListConversations => "list_conversations",
            Capability::Join => "join",
            Capability::Leave => "leave",
            Capability::Create => "create",
            Capability::Send => "send",
            Capability::SendMedia => "send_media",
            Capability::PageMessages => "page_messages",
            Capability::Edit => "edit",
            Capability::Remove => "remove",
            Capability::Typing => "typing",
            Capability::SetReadHorizon => "set_read_horizon",
            Capability::GetMedia => "get_media",
            Capability::Shutdown => "shutdown",
        }
    }
}

impl Capability {
    /// The driver-protocol command an adapter must list in `hello`'s `capabilities` for this
    /// capability; `None` for `events` (every adapter speaking the protocol reports events).
    /// `send_media` is the `send` command with `media`: only an `unsupported` answer can tell.
    pub fn protocol_command(self) -> Option<&'static str> {
        match self {
            Capability::Events => None,
            Capability::SendMedia => Some("send"),
            other => Some(other.as_str()),
        }
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A client under test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Client {
    /// How steps refer to it.
    pub name: String,
    /// The identity in its tokens (default: `name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// Lifetime of the tokens minted for it (default 1 h), on the tenant's clock.
    #[serde(default, with = "duration::option", skip_serializing_if = "Option::is_none")]
    #[schemars(with = "DurationText")]
    pub token_ttl: Option<Duration>,
    /// The token it starts with (default `fresh`).
    #[serde(default, skip_serializing_if = "TokenKind::is_fresh")]
    pub token: TokenKind,
    /// Start the client only when the sequence reaches this mark (default: when the scenario
    /// starts), e.g. once faults that must meet its very first connection are in place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch_after: Option<String>,
}

impl Client {
    pub fn identity(&self) -> &str {
        self.identity.as_deref().unwrap_or(&self.name)
    }

    pub fn token_ttl(&self) -> Duration {
        self.token_ttl.unwrap_or(DEFAULT_TOKEN_TTL)
    }
}

/// A kind of access token the engine mints for a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    /// Valid now, for the client's `token_ttl`.
    #[default]
    Fresh,
    /// Expired (the server answers 401 with error 20104).
    Stale,
    /// Signed with the wrong secret (401, error 20107).
    Wrong,
}

impl TokenKind {
    pub fn is_fresh(&self) -> bool {
        *self == TokenKind::Fresh
    }
}

/// The tenant's starting state: the server's default seed, a seed file, or an inline seed (both
/// in the mock server's seed format, with one account), plus generated history.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Seed {
    /// A seed file, relative to the scenario file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// A seed written in the scenario (same shape as a seed file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inline: Option<Map<String, Value>>,
    /// Messages appended to seeded conversations before the scenario starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub generate_messages: Vec<GenerateHistory>,
}

/// Where the seed comes from (validation guarantees at most one of `file` and `inline`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SeedBase<'a> {
    Default,
    File(&'a str),
    Inline(&'a Map<String, Value>),
}

impl Seed {
    pub fn is_default(&self) -> bool {
        *self == Seed::default()
    }

    pub fn base(&self) -> SeedBase<'_> {
        match (&self.file, &self.inline) {
            (Some(file), _) => SeedBase::File(file),
            (None, Some(inline)) => SeedBase::Inline(inline),
            (None, None) => SeedBase::Default,
        }
    }
}

/// `count` generated messages ("message 1", …, by the participants in turn) appended to a
/// seeded conversation: big histories without big files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GenerateHistory {
    /// The conversation's unique name.
    pub conversation: String,
    pub count: u32,
}

/// Media to send: `content_type` and exactly one of `size` (that many deterministic bytes),
/// `base64` (these bytes) or `fixture` (a file relative to the scenario file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Media {
    pub content_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base64: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixture: Option<String>,
}

/// An HTTP method, for request faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    Get,
    Post,
    Put,
    Delete,
}

/// Events a client adapter reports (named after the SDK's events), with the driver protocol's
/// payload fields (`harness/PROTOCOL.md`), for `match`: `connection_state` {state};
/// `connection_error` {terminal, code, status, message}; `init_failed` {error: {message, code,
/// status}}; `conversation_*` {conversation, unique_name}; `message_*` {conversation, index, author,
/// body, type, attributes, media: [{sid, content_type, size, filename}]}; `participant_*` and
/// `typing_*` {conversation, identity}; `token_refreshed` {reason}. A `conversation` in `match`
/// may be written as the unique name: it matches the SID the event carries. `attributes` travel
/// as a JSON string; a table in `match` compares with the parsed object (see `matching`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClientEvent {
    /// The client finished initialising (`stateChanged('initialized')`).
    Initialized,
    ConnectionState,
    TokenAboutToExpire,
    TokenExpired,
    InitFailed,
    ConnectionError,
    ConversationJoined,
    ConversationLeft,
    ConversationUpdated,
    MessageAdded,
    MessageUpdated,
    MessageRemoved,
    ParticipantJoined,
    ParticipantLeft,
    ParticipantUpdated,
    TypingStarted,
    TypingEnded,
    /// The adapter obtained a new token and gave it to the SDK (the token policy).
    TokenRefreshed,
}

/// Public connection states of the SDK (protocol §2.8). `retrying` is the SDK's literal state
/// after a socket error, which leaks through to `connectionStateChanged`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionState {
    Connecting,
    Connected,
    Disconnecting,
    Disconnected,
    Denied,
    Retrying,
}

/// What the server's journal records, for `observed` conditions and expectations. Detail
/// fields, for `match`: `connection_attempt` {identity, refused (its init never succeeded)};
/// `session_opened` {identity}; `session_closed` {identity, reason, code (of the close packet
/// sent, if any)}; `init` and `token_update` {identity, outcome ("ok" or "denied"), status,
/// error_code}; `upstream` and `rest` {method, path (without the query), query, status};
/// `sync_push` {object, event_type}; `media_upload` {size, content_type, status};
/// `media_download` {size, content_type, status, media}; `fault_applied` {fault, …the fault's
/// details}; `webhook` {phase ("pre" or "post"), event, outcome ("proceeded", "modified",
/// "rejected", "timed_out", "unreachable"; "delivered", "retrying", "failed", "gave_up"),
/// status (the backend's answer), conversation, params (the request's fields), retry_count}.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ObservationKind {
    /// A twilsock upgrade request, accepted or refused.
    ConnectionAttempt,
    SessionOpened,
    SessionClosed,
    Init,
    TokenUpdate,
    Upstream,
    Rest,
    SyncPush,
    MediaUpload,
    MediaDownload,
    FaultApplied,
    /// A webhook delivery attempt to the app's backend.
    Webhook,
}

/// Renders a document whose tables (and tables in arrays) hold only inline values.
fn render(doc: &toml::Table) -> String {
    use std::fmt::Write;
    use toml::Value;
    let is_table_array = |v: &Value| matches!(v, Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_table));
    let mut out = String::new();
    let entries = |out: &mut String, table: &toml::Table| {
        for (k, v) in table {
            writeln!(out, "{} = {v}", key(k)).expect("writing to a String");
        }
    };
    for (k, v) in doc.iter().filter(|(_, v)| !v.is_table() && !is_table_array(v)) {
        writeln!(out, "{} = {v}", key(k)).expect("writing to a String");
    }
    for (k, v) in doc {
        match v {
            Value::Table(t) => {
                write!(out, "\n[{}]\n", key(k)).expect("writing to a String");
                entries(&mut out, t);
            }
            Value::Array(items) if is_table_array(v) => {
                for item in items.iter().filter_map(Value::as_table) {
                    write!(out, "\n[[{}]]\n", key(k)).expect("writing to a String");
                    entries(&mut out, item);
                }
            }
            _ => {}
        }
    }
    out
}

/// A bare key when TOML allows one, else a quoted one.
fn key(k: &str) -> String {
    if !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        k.to_owned()
    } else {
        toml::Value::String(k.to_owned()).to_string()
    }
}

/// Reads a duration text (for common fields read by hand).
pub(crate) struct DurationSeed;

impl<'de> DeserializeSeed<'de> for DurationSeed {
    type Value = Duration;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Duration, D::Error> {
        duration::deserialize(d)
    }
}
