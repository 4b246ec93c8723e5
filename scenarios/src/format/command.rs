//! Client commands: what a driven client is told to do through its driver
//! (`[[steps]] command = "…"`, `client = "<name>"`).
use std::borrow::Cow;
use std::time::Duration;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::MapAccess;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::duration::{self, DurationText};
use super::tagged::{CommonFields, tagged_enum};
use super::values::{MessageRef, ReadHorizon};
use super::{Capability, Media, TokenKind};

tagged_enum! {
    /// A command to one driven client. Every command names its `client`.
    pub enum ClientCommand, tag "command", what "a client command" {
        "connect" => Connect(Connect),
        "update_token" => UpdateToken(UpdateToken),
        "list_conversations" => ListConversations(ListConversations),
        "join" => Join(Join),
        "leave" => Leave(Leave),
        "create" => Create(Create),
        "send" => Send(Send),
        "page_messages" => PageMessages(PageMessages),
        "edit" => Edit(Edit),
        "remove" => Remove(Remove),
        "typing" => Typing(Typing),
        "set_read_horizon" => SetReadHorizon(SetReadHorizon),
        "get_media" => GetMedia(GetMedia),
        "shutdown" => Shutdown(Shutdown),
    }
}

impl ClientCommand {
    /// The client the command is for.
    pub fn client(&self) -> &str {
        match self {
            ClientCommand::Connect(c) => &c.client,
            ClientCommand::UpdateToken(c) => &c.client,
            ClientCommand::ListConversations(c) => &c.client,
            ClientCommand::Join(c) => &c.client,
            ClientCommand::Leave(c) => &c.client,
            ClientCommand::Create(c) => &c.client,
            ClientCommand::Send(c) => &c.client,
            ClientCommand::PageMessages(c) => &c.client,
            ClientCommand::Edit(c) => &c.client,
            ClientCommand::Remove(c) => &c.client,
            ClientCommand::Typing(c) => &c.client,
            ClientCommand::SetReadHorizon(c) => &c.client,
            ClientCommand::GetMedia(c) => &c.client,
            ClientCommand::Shutdown(c) => &c.client,
        }
    }

    /// The driver capability the command needs (`send` with media needs `send_media`).
    pub fn capability(&self) -> Capability {
        match self {
            ClientCommand::Connect(_) => Capability::Connect,
            ClientCommand::UpdateToken(_) => Capability::UpdateToken,
            ClientCommand::ListConversations(_) => Capability::ListConversations,
            ClientCommand::Join(_) => Capability::Join,
            ClientCommand::Leave(_) => Capability::Leave,
            ClientCommand::Create(_) => Capability::Create,
            ClientCommand::Send(s) if s.media.is_some() => Capability::SendMedia,
            ClientCommand::Send(_) => Capability::Send,
            ClientCommand::PageMessages(_) => Capability::PageMessages,
            ClientCommand::Edit(_) => Capability::Edit,
            ClientCommand::Remove(_) => Capability::Remove,
            ClientCommand::Typing(_) => Capability::Typing,
            ClientCommand::SetReadHorizon(_) => Capability::SetReadHorizon,
            ClientCommand::GetMedia(_) => Capability::GetMedia,
            ClientCommand::Shutdown(_) => Capability::Shutdown,
        }
    }

    /// The conversation (unique name) the command is about, if any.
    pub fn conversation(&self) -> Option<&str> {
        match self {
            ClientCommand::Join(c) => Some(&c.conversation),
            ClientCommand::Leave(c) => Some(&c.conversation),
            ClientCommand::Send(c) => Some(&c.conversation),
            ClientCommand::PageMessages(c) => Some(&c.conversation),
            ClientCommand::Edit(c) => Some(&c.conversation),
            ClientCommand::Remove(c) => Some(&c.conversation),
            ClientCommand::Typing(c) => Some(&c.conversation),
            ClientCommand::SetReadHorizon(c) => Some(&c.conversation),
            ClientCommand::GetMedia(c) => Some(&c.conversation),
            _ => None,
        }
    }
}

/// A client command step: the command plus how the engine runs it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CommandStep {
    #[serde(flatten)]
    pub command: ClientCommand,
    /// Names the command so that `expect = "result"` can check what it returned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// The outcome the scenario needs (default `ok`); any other outcome fails the scenario as a
    /// `must`. `any` records the outcome without judging it.
    #[serde(skip_serializing_if = "Outcome::is_ok")]
    pub outcome: Outcome,
    /// How long the engine waits for the driver's answer before it counts as `timeout`
    /// (default: the engine's, 5 s suggested).
    #[serde(serialize_with = "duration::option::serialize", skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
}

/// What a command's driver answer must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The SDK call resolved.
    #[default]
    Ok,
    /// The SDK call rejected (or threw).
    Error,
    /// Either; recorded, not judged.
    Any,
}

impl Outcome {
    pub fn is_ok(&self) -> bool {
        *self == Outcome::Ok
    }
}

#[derive(Default)]
pub(crate) struct CommandCommon {
    label: Option<String>,
    outcome: Option<Outcome>,
    timeout: Option<Duration>,
}

impl CommonFields for CommandCommon {
    const KEYS: &'static [&'static str] = &["label", "outcome", "timeout"];

    fn read<'de, A: MapAccess<'de>>(&mut self, key: &'static str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "label" => self.label = Some(map.next_value()?),
            "outcome" => self.outcome = Some(map.next_value()?),
            _ => self.timeout = Some(map.next_value_seed(super::DurationSeed)?),
        }
        Ok(())
    }

    fn properties(generator: &mut SchemaGenerator) -> Vec<(&'static str, Schema)> {
        vec![
            (
                "label",
                json_schema!({ "type": "string", "minLength": 1, "description": "Names the command for `expect = \"result\"`." }),
            ),
            ("outcome", generator.subschema_for::<Outcome>()),
            ("timeout", generator.subschema_for::<DurationText>()),
        ]
    }
}

impl CommandStep {
    pub(crate) fn deserialize_after_tag<'de, A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        let mut common = CommandCommon::default();
        let command = ClientCommand::deserialize_after_tag(super::tagged::Intercept { map, common: &mut common })?;
        Ok(CommandStep {
            command,
            label: common.label,
            outcome: common.outcome.unwrap_or_default(),
            timeout: common.timeout,
        })
    }
}

impl JsonSchema for CommandStep {
    fn schema_name() -> Cow<'static, str> {
        "CommandStep".into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let common = CommandCommon::properties(generator);
        let kinds = ClientCommand::kind_schemas(generator, &common);
        json_schema!({ "oneOf": kinds })
    }
}

/// Connect with the client's token (identity and lifetime from its `[[clients]]` entry).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Connect {
    pub client: String,
}

/// Call `updateToken` with a `fresh`, `stale` (expired) or `wrong` (bad signature) token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateToken {
    pub client: String,
    pub token: TokenKind,
}

/// List the conversations the client is subscribed to; the result is `{ conversations = [{ sid,
/// unique_name, friendly_name }] }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListConversations {
    pub client: String,
}

/// Join a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Join {
    pub client: String,
    pub conversation: String,
}

/// Leave a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Leave {
    pub client: String,
    pub conversation: String,
}

/// Create a conversation (the client joins it); the result is `{ sid }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Create {
    pub client: String,
    pub unique_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub friendly_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<Map<String, Value>>,
}

/// Send a message: text, media, or both; the result is `{ index }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Send {
    pub client: String,
    pub conversation: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<Media>,
}

/// Which way `page_messages` walks from its anchor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Towards older messages (the SDK's default).
    #[default]
    Backwards,
    /// Towards newer messages.
    Forwards,
}

impl Direction {
    pub fn is_backwards(&self) -> bool {
        *self == Direction::Backwards
    }
}

/// How many pages `page_messages` fetches: a number, or `"all"` (until there is no further page;
/// sent to the driver as [`Pages::ALL_AS_COUNT`], the protocol's `pages` being a number).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pages {
    Count(u32),
    All,
}

impl Default for Pages {
    fn default() -> Self {
        Pages::Count(1)
    }
}

impl Pages {
    /// What `"all"` is sent as: more pages than any history a scenario can build, so the driver
    /// walks until the SDK reports no further page.
    pub const ALL_AS_COUNT: u32 = 100_000;

    pub fn is_one(&self) -> bool {
        *self == Pages::Count(1)
    }

    /// The protocol's `pages`.
    pub fn count(&self) -> u32 {
        match self {
            Pages::Count(n) => *n,
            Pages::All => Pages::ALL_AS_COUNT,
        }
    }
}

impl Serialize for Pages {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Pages::Count(n) => s.serialize_u32(*n),
            Pages::All => s.serialize_str("all"),
        }
    }
}

impl<'de> Deserialize<'de> for Pages {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::{Error, Unexpected, Visitor};
        struct V;
        impl Visitor<'_> for V {
            type Value = Pages;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a number of pages (1 or more) or \"all\"")
            }
            fn visit_i64<E: Error>(self, v: i64) -> Result<Pages, E> {
                match u32::try_from(v) {
                    Ok(n) if n > 0 => Ok(Pages::Count(n)),
                    _ => Err(E::invalid_value(Unexpected::Signed(v), &self)),
                }
            }
            fn visit_u64<E: Error>(self, v: u64) -> Result<Pages, E> {
                self.visit_i64(i64::try_from(v).unwrap_or(i64::MAX))
            }
            fn visit_str<E: Error>(self, v: &str) -> Result<Pages, E> {
                match v {
                    "all" => Ok(Pages::All),
                    _ => Err(E::invalid_value(Unexpected::Str(v), &self)),
                }
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for Pages {
    fn schema_name() -> Cow<'static, str> {
        "Pages".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "How many pages to fetch (default 1), or \"all\".",
            "oneOf": [ { "type": "integer", "minimum": 1 }, { "const": "all" } ]
        })
    }
}

/// Read history with `getMessages(page_size, anchor, direction)` and follow `prevPage` /
/// `nextPage` (in `direction`) for `pages` pages. The result is the protocol's `{ pages, has_more }`:
/// each page's message indices in the order the SDK returned them (`[[110, …, 119], [90, …]]`),
/// and whether a further page exists. `expect = "pages"` judges a walk's completeness without
/// listing indices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PageMessages {
    pub client: String,
    pub conversation: String,
    /// 1 to 100.
    pub page_size: u32,
    /// The message to start from (inclusive); absent = the SDK's default, the end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anchor: Option<MessageRef>,
    #[serde(default, skip_serializing_if = "Direction::is_backwards")]
    pub direction: Direction,
    #[serde(default, skip_serializing_if = "Pages::is_one")]
    pub pages: Pages,
}

/// Edit the body of one of the client's messages (`message.updateBody(text)`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Edit {
    pub client: String,
    pub conversation: String,
    pub index: MessageRef,
    pub text: String,
}

/// Remove a message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Remove {
    pub client: String,
    pub conversation: String,
    pub index: MessageRef,
}

/// Signal typing (`conversation.typing()`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Typing {
    pub client: String,
    pub conversation: String,
}

/// Set the read horizon: `updateLastReadMessageIndex(n)` for a number, `setAllMessagesRead()`
/// for `"all"`, `setAllMessagesUnread()` for `"none"`. The result is `{ unread }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetReadHorizon {
    pub client: String,
    pub conversation: String,
    pub index: ReadHorizon,
}

/// Get a message's media temporary URL and download it; the result is `{ content_type, size,
/// sha256 }` of the downloaded bytes (a failed download is an `error` outcome with its `status`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetMedia {
    pub client: String,
    pub conversation: String,
    /// The message (`"first"`/`"last"` are resolved when the step runs).
    pub index: MessageRef,
}

/// Shut the client down (`client.shutdown()`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Shutdown {
    pub client: String,
}
