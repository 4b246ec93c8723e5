//! Expectations: what a scenario checks, each graded `must`, `should` or `informational`.
//!
//! Three sources: what a driven client **reported** (its adapter's events and command results),
//! what the server **observed** (the control plane's journal), and the **final state** of the
//! tenant. Windows: `since` names a mark (or `"start"`); when it is absent, an expectation among
//! the steps starts at the preceding action or command, one in `[[expect]]` at the start of the
//! scenario. `within` bounds a positive expectation; `for` is how long a negative one watches.
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::Duration;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::MapAccess;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::command::Outcome;
use super::duration::{self, DurationText};
use super::tagged::{CommonFields, Intercept, tagged_enum};
use super::values::Count;
use super::{ClientEvent, ConnectionState, ObservationKind};

tagged_enum! {
    /// What is checked. `event`, `no_event`, `order`, `sequence`, `client_state` and `result`
    /// need a driven client (capability `events`); the others work in observed mode.
    pub enum ExpectKind, tag "expect", what "an expectation" {
        "event" => Event(EventExpect),
        "no_event" => NoEvent(NoEventExpect),
        "order" => Order(OrderExpect),
        "sequence" => Sequence(SequenceExpect),
        "client_state" => ClientState(ClientStateExpect),
        "result" => Result(ResultExpect),
        "observed" => Observed(ObservedExpect),
        "not_observed" => NotObserved(NotObservedExpect),
        "reconnects" => Reconnects(ReconnectsExpect),
        "pages" => Pages(PagesExpect),
        "media" => Media(MediaExpect),
        "state" => State(StateExpect),
    }
}

impl ExpectKind {
    /// Whether this kind judges what a client reported (so it needs an adapter that reports events).
    pub fn needs_client_reports(&self) -> bool {
        matches!(
            self,
            ExpectKind::Event(_)
                | ExpectKind::NoEvent(_)
                | ExpectKind::Order(_)
                | ExpectKind::Sequence(_)
                | ExpectKind::ClientState(_)
                | ExpectKind::Result(_)
        )
    }

    /// The mark the window starts at, when given.
    pub fn since(&self) -> Option<&str> {
        match self {
            ExpectKind::Event(e) => e.since.as_deref(),
            ExpectKind::NoEvent(e) => e.since.as_deref(),
            ExpectKind::Order(e) => e.since.as_deref(),
            ExpectKind::Sequence(e) => e.since.as_deref(),
            ExpectKind::Observed(e) => e.since.as_deref(),
            ExpectKind::NotObserved(e) => e.since.as_deref(),
            ExpectKind::Reconnects(e) => e.since.as_deref(),
            ExpectKind::Pages(e) => e.since.as_deref(),
            ExpectKind::Media(e) => e.since.as_deref(),
            ExpectKind::ClientState(_) | ExpectKind::Result(_) | ExpectKind::State(_) => None,
        }
    }

    /// How long the expectation may wait (positive kinds) or must watch (negative kinds) from
    /// the start of its window; `None` for kinds judged on what has happened by the time they
    /// are evaluated.
    pub fn window(&self) -> Option<Duration> {
        match self {
            ExpectKind::Event(e) => e.within,
            ExpectKind::NoEvent(e) => Some(e.duration),
            ExpectKind::Order(e) => e.within,
            ExpectKind::Sequence(e) => e.within,
            ExpectKind::Observed(e) => e.within,
            ExpectKind::NotObserved(e) => Some(e.duration),
            ExpectKind::Reconnects(e) => e.within,
            ExpectKind::Pages(_) | ExpectKind::Media(_) | ExpectKind::ClientState(_) | ExpectKind::Result(_) | ExpectKind::State(_) => None,
        }
    }
}

/// How much a failed expectation matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Grade {
    /// Required behaviour: failing it fails the scenario. An inline `must` that fails also
    /// stops the scenario (later steps would build on it).
    #[default]
    Must,
    /// Expected of a good client; failing it is reported as a warning.
    Should,
    /// Measured and reported, never judged.
    Informational,
}

impl Grade {
    pub fn is_must(&self) -> bool {
        *self == Grade::Must
    }
}

/// An expectation: its kind plus how much it matters.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Expectation {
    #[serde(flatten)]
    pub kind: ExpectKind,
    #[serde(skip_serializing_if = "Grade::is_must")]
    pub grade: Grade,
    /// A short name for reports (default: the kind and its position).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

#[derive(Default)]
pub(crate) struct ExpectCommon {
    grade: Option<Grade>,
    label: Option<String>,
}

impl CommonFields for ExpectCommon {
    const KEYS: &'static [&'static str] = &["grade", "label"];

    fn read<'de, A: MapAccess<'de>>(&mut self, key: &'static str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "grade" => self.grade = Some(map.next_value()?),
            _ => self.label = Some(map.next_value()?),
        }
        Ok(())
    }

    fn properties(generator: &mut SchemaGenerator) -> Vec<(&'static str, Schema)> {
        vec![
            ("grade", generator.subschema_for::<Grade>()),
            (
                "label",
                json_schema!({ "type": "string", "minLength": 1, "description": "A short name for reports." }),
            ),
        ]
    }
}

impl Expectation {
    pub(crate) fn deserialize_after_tag<'de, A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        let mut common = ExpectCommon::default();
        let kind = ExpectKind::deserialize_after_tag(Intercept { map, common: &mut common })?;
        Ok(Expectation {
            kind,
            grade: common.grade.unwrap_or_default(),
            label: common.label,
        })
    }
}

impl<'de> Deserialize<'de> for Expectation {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Expectation;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an expectation (a table starting with `expect`)")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Expectation, A::Error> {
                let first = super::tagged::FirstKey {
                    expected: &["expect"],
                    what: "an expectation",
                };
                match map.next_key_seed(first)? {
                    Some(_) => Expectation::deserialize_after_tag(map),
                    None => Err(serde::de::Error::missing_field("expect")),
                }
            }
        }
        d.deserialize_map(V)
    }
}

impl JsonSchema for Expectation {
    fn schema_name() -> Cow<'static, str> {
        "Expectation".into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let common = ExpectCommon::properties(generator);
        let kinds = ExpectKind::kind_schemas(generator, &common);
        json_schema!({ "oneOf": kinds })
    }
}

/// A client reported `event` (its payload containing `match`) within the window, `count` times
/// (default: at least once).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventExpect {
    pub event: ClientEvent,
    pub client: String,
    #[serde(rename = "match", default, skip_serializing_if = "Option::is_none")]
    pub matches: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    #[serde(default, with = "duration::option", skip_serializing_if = "Option::is_none")]
    #[schemars(with = "DurationText")]
    pub within: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<Count>,
}

/// A client did *not* report `event` (matching `match`) during `for` from the window's start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoEventExpect {
    pub event: ClientEvent,
    pub client: String,
    #[serde(rename = "match", default, skip_serializing_if = "Option::is_none")]
    pub matches: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    #[serde(rename = "for", with = "duration")]
    #[schemars(with = "DurationText")]
    pub duration: Duration,
}

/// One event in an `order` expectation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventPattern {
    pub event: ClientEvent,
    #[serde(rename = "match", default, skip_serializing_if = "Option::is_none")]
    pub matches: Option<Map<String, Value>>,
}

/// A client reported `events` in this order (other events may come between them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderExpect {
    pub client: String,
    pub events: Vec<EventPattern>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    #[serde(default, with = "duration::option", skip_serializing_if = "Option::is_none")]
    #[schemars(with = "DurationText")]
    pub within: Option<Duration>,
}

/// The values of payload `field` over every `event` (matching `match`) each client reported,
/// in order: equal to `values` when given, a run of consecutive integers with no gap or
/// repeat when `contiguous`, and the same for every client listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SequenceExpect {
    pub clients: Vec<String>,
    pub event: ClientEvent,
    #[serde(rename = "match", default, skip_serializing_if = "Option::is_none")]
    pub matches: Option<Map<String, Value>>,
    /// A payload field, dotted for nested ones; a number picks an array element
    /// (`media.0.content_type`).
    pub field: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<Value>>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub contiguous: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    #[serde(default, with = "duration::option", skip_serializing_if = "Option::is_none")]
    #[schemars(with = "DurationText")]
    pub within: Option<Duration>,
}

/// The last connection state a client reported, when the expectation is evaluated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientStateExpect {
    pub client: String,
    pub connection: ConnectionState,
}

/// What the labelled command returned: its outcome and a payload containing `match`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResultExpect {
    /// The `label` of a command step.
    pub command: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    #[serde(rename = "match", default, skip_serializing_if = "Option::is_none")]
    pub matches: Option<Map<String, Value>>,
}

/// The server journal holds `observed` entries (of `client`'s or `identity`'s sessions, detail
/// containing `match`) within the window, `count` times (default: at least once).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ObservedExpect {
    pub observed: ObservationKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    #[serde(rename = "match", default, skip_serializing_if = "Option::is_none")]
    pub matches: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    #[serde(default, with = "duration::option", skip_serializing_if = "Option::is_none")]
    #[schemars(with = "DurationText")]
    pub within: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<Count>,
    /// With `values`: a field of the matching observations, dotted for nested ones
    /// (`params.Body`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The values of `field` over the matching observations, in the order the server observed
    /// them, are exactly these (the count is then their number).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<Value>>,
}

/// The server journal holds no such entry during `for` from the window's start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NotObservedExpect {
    pub observed: ObservationKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    #[serde(rename = "match", default, skip_serializing_if = "Option::is_none")]
    pub matches: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    #[serde(rename = "for", with = "duration")]
    #[schemars(with = "DurationText")]
    pub duration: Duration,
}

/// A range of durations; either end may be open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DurationRange {
    #[serde(default, with = "duration::option", skip_serializing_if = "Option::is_none")]
    #[schemars(with = "DurationText")]
    pub min: Option<Duration>,
    #[serde(default, with = "duration::option", skip_serializing_if = "Option::is_none")]
    #[schemars(with = "DurationText")]
    pub max: Option<Duration>,
}

impl DurationRange {
    pub fn contains(&self, d: Duration) -> bool {
        self.min.is_none_or(|min| d >= min) && self.max.is_none_or(|max| d <= max)
    }
}

/// A client's connection attempts (every twilsock upgrade, refused ones included) after the
/// window's start: how many (`count`, within `within`), how long until the first
/// (`first_after`), and the spacing between consecutive ones (`gap`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReconnectsExpect {
    pub client: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    #[serde(default, with = "duration::option", skip_serializing_if = "Option::is_none")]
    #[schemars(with = "DurationText")]
    pub within: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<Count>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_after: Option<DurationRange>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gap: Option<DurationRange>,
}

/// A range of message indices, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IndexRange {
    pub from: u64,
    pub to: u64,
}

/// The message pages a client fetched from `conversation` — the `pages` its `page_messages`
/// commands returned (in the window; with `command`, only that labelled command's) — hold every
/// message existing in `covers` (default: the whole history, when judged) exactly once: no gap,
/// no duplicate, no index outside the conversation, each page in ascending order and no page
/// larger than `max_page_size`. The server's journal records which list was read, not which
/// items a page held, so this is judged on what the client reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PagesExpect {
    pub client: String,
    pub conversation: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub covers: Option<IndexRange>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_page_size: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
}

/// Upload or download.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MediaDirection {
    Upload,
    Download,
}

/// Media transfers the server saw (of `client` or `identity`, if given). `content_type`, `size`
/// and `status` select transfers (the request's for uploads, the response's for downloads);
/// `count` (default: at least one) is how many were selected; `intact` = each selected download
/// served the stored bytes whole, and the bytes the client reported (`get_media`'s `sha256`) are
/// the stored ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MediaExpect {
    pub direction: MediaDirection,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<Count>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intact: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
}

/// The tenant's state of `conversation` when the expectation is evaluated. Only the fields
/// given are checked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StateExpect {
    pub conversation: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exists: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub friendly_name: Option<String>,
    /// Contained in the conversation's attributes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<Map<String, Value>>,
    /// Exactly these identities, in any order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub participants: Option<Vec<String>>,
    /// Messages currently in the conversation (removed ones do not count).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_count: Option<u64>,
    /// Contained in the newest message (`index`, `author`, `body`, `attributes`, `media`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_message: Option<Map<String, Value>>,
    /// Identity → last read message index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_horizon: Option<BTreeMap<String, u64>>,
}
