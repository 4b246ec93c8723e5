//! Small values with more than one written form: targets, actors, message references, counts,
//! repetition and close codes. Each reads every accepted form with its own error text.
use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Who a connection action hits: `target = "alice"` is the sessions of the scenario's client
/// named `alice`; `target = { identity = "bob" }` is every session of that identity, the
/// scenario's clients or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Client(String),
    Identity(String),
}

impl Serialize for Target {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Target::Client(name) => s.serialize_str(name),
            Target::Identity(identity) => {
                use serde::ser::SerializeMap;
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("identity", identity)?;
                m.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Target {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Target;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a client name (\"alice\") or { identity = \"…\" }")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Target, E> {
                Ok(Target::Client(v.to_owned()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Target, A::Error> {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields, rename_all = "snake_case")]
                enum Key {
                    Identity,
                }
                match map.next_key::<Key>()? {
                    Some(Key::Identity) => {
                        let identity = map.next_value()?;
                        if map.next_key::<Key>()?.is_some() {
                            return Err(de::Error::duplicate_field("identity"));
                        }
                        Ok(Target::Identity(identity))
                    }
                    None => Err(de::Error::missing_field("identity")),
                }
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for Target {
    fn schema_name() -> Cow<'static, str> {
        "Target".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A client of this scenario by name, or { identity = \"…\" } for every session of that identity.",
            "oneOf": [
                { "type": "string", "minLength": 1 },
                {
                    "type": "object",
                    "properties": { "identity": { "type": "string", "minLength": 1 } },
                    "required": ["identity"],
                    "additionalProperties": false
                }
            ]
        })
    }
}

/// Who performs a server-side action: `as = "rest"` is the REST API with the tenant's
/// credentials; any other text is the identity the control plane acts as (that identity need
/// not be one of the scenario's clients).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    Rest,
    Identity(String),
}

impl Actor {
    pub const REST: &'static str = "rest";

    pub fn identity(&self) -> Option<&str> {
        match self {
            Actor::Rest => None,
            Actor::Identity(i) => Some(i),
        }
    }
}

impl Serialize for Actor {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Actor::Rest => s.serialize_str(Actor::REST),
            Actor::Identity(i) => s.serialize_str(i),
        }
    }
}

impl<'de> Deserialize<'de> for Actor {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        if text.is_empty() {
            return Err(de::Error::invalid_value(de::Unexpected::Str(""), &"\"rest\" or an identity"));
        }
        Ok(if text == Actor::REST { Actor::Rest } else { Actor::Identity(text) })
    }
}

impl JsonSchema for Actor {
    fn schema_name() -> Cow<'static, str> {
        "Actor".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "minLength": 1,
            "description": "\"rest\" for the REST API, otherwise the identity acting.",
            "examples": ["rest", "bob"]
        })
    }
}

/// A message in a conversation: its index (`3`), or `"first"` / `"last"` at the time the step
/// runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageRef {
    Index(u64),
    First,
    Last,
}

impl Serialize for MessageRef {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            MessageRef::Index(i) => s.serialize_u64(*i),
            MessageRef::First => s.serialize_str("first"),
            MessageRef::Last => s.serialize_str("last"),
        }
    }
}

impl<'de> Deserialize<'de> for MessageRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = MessageRef;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a message index (0 or more), \"first\" or \"last\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<MessageRef, E> {
                Ok(MessageRef::Index(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<MessageRef, E> {
                u64::try_from(v)
                    .map(MessageRef::Index)
                    .map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<MessageRef, E> {
                match v {
                    "first" => Ok(MessageRef::First),
                    "last" => Ok(MessageRef::Last),
                    _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
                }
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for MessageRef {
    fn schema_name() -> Cow<'static, str> {
        "MessageRef".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A message index, or \"first\" / \"last\" when the step runs.",
            "oneOf": [
                { "type": "integer", "minimum": 0 },
                { "enum": ["first", "last"] }
            ]
        })
    }
}

/// What a client's read horizon is set to: a message index (`3`), `"all"` (every message read)
/// or `"none"` (nothing read). The driver protocol's `index`: a number, `"all"` or `null`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadHorizon {
    Index(u64),
    All,
    None,
}

impl ReadHorizon {
    /// As the driver protocol writes it.
    pub fn to_protocol(self) -> serde_json::Value {
        match self {
            ReadHorizon::Index(i) => i.into(),
            ReadHorizon::All => "all".into(),
            ReadHorizon::None => serde_json::Value::Null,
        }
    }
}

impl Serialize for ReadHorizon {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ReadHorizon::Index(i) => s.serialize_u64(*i),
            ReadHorizon::All => s.serialize_str("all"),
            ReadHorizon::None => s.serialize_str("none"),
        }
    }
}

impl<'de> Deserialize<'de> for ReadHorizon {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ReadHorizon;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a message index (0 or more), \"all\" or \"none\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ReadHorizon, E> {
                Ok(ReadHorizon::Index(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ReadHorizon, E> {
                u64::try_from(v)
                    .map(ReadHorizon::Index)
                    .map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ReadHorizon, E> {
                match v {
                    "all" => Ok(ReadHorizon::All),
                    "none" => Ok(ReadHorizon::None),
                    _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
                }
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for ReadHorizon {
    fn schema_name() -> Cow<'static, str> {
        "ReadHorizon".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A message index, \"all\" (everything read) or \"none\" (nothing read).",
            "oneOf": [
                { "type": "integer", "minimum": 0 },
                { "enum": ["all", "none"] }
            ]
        })
    }
}

/// How many: `count = 3` (exactly), `count = { min = 1 }`, `count = { min = 1, max = 3 }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count {
    pub min: u64,
    pub max: Option<u64>,
}

impl Count {
    pub const AT_LEAST_ONE: Count = Count { min: 1, max: None };

    pub fn exactly(n: u64) -> Count {
        Count { min: n, max: Some(n) }
    }

    pub fn contains(&self, n: u64) -> bool {
        n >= self.min && self.max.is_none_or(|max| n <= max)
    }
}

impl fmt::Display for Count {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self.max {
            Some(max) if max == self.min => write!(f, "exactly {max}"),
            Some(max) => write!(f, "{} to {max}", self.min),
            None => write!(f, "at least {}", self.min),
        }
    }
}

impl Serialize for Count {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        if self.max == Some(self.min) {
            return s.serialize_u64(self.min);
        }
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("min", &self.min)?;
        if let Some(max) = self.max {
            m.serialize_entry("max", &max)?;
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Range {
            #[serde(default)]
            min: u64,
            max: Option<u64>,
        }
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Count;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a count (0 or more) or { min = …, max = … }")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Count, E> {
                Ok(Count::exactly(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Count, E> {
                u64::try_from(v)
                    .map(Count::exactly)
                    .map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Count, A::Error> {
                let r: Range = super::tagged::from_map(map)?;
                Ok(Count { min: r.min, max: r.max })
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for Count {
    fn schema_name() -> Cow<'static, str> {
        "Count".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "Exactly this many, or a range { min, max } (both optional; min defaults to 0).",
            "oneOf": [
                { "type": "integer", "minimum": 0 },
                {
                    "type": "object",
                    "properties": {
                        "min": { "type": "integer", "minimum": 0 },
                        "max": { "type": "integer", "minimum": 0 }
                    },
                    "additionalProperties": false
                }
            ]
        })
    }
}

/// How often a trigger fires: `times = 2`, or `times = "every"` (each time its condition holds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Times {
    #[default]
    Once,
    Count(u32),
    Every,
}

impl Times {
    pub fn limit(&self) -> Option<u32> {
        match self {
            Times::Once => Some(1),
            Times::Count(n) => Some(*n),
            Times::Every => None,
        }
    }

    pub fn is_once(&self) -> bool {
        self.limit() == Some(1)
    }
}

impl Serialize for Times {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.limit() {
            Some(n) => s.serialize_u32(n),
            None => s.serialize_str("every"),
        }
    }
}

impl<'de> Deserialize<'de> for Times {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Times;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number of times (1 or more) or \"every\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Times, E> {
                match u32::try_from(v) {
                    Ok(1) => Ok(Times::Once),
                    Ok(n) if n > 1 => Ok(Times::Count(n)),
                    _ => Err(E::invalid_value(de::Unexpected::Signed(v), &self)),
                }
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Times, E> {
                self.visit_i64(i64::try_from(v).unwrap_or(i64::MAX))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Times, E> {
                match v {
                    "every" => Ok(Times::Every),
                    _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
                }
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for Times {
    fn schema_name() -> Cow<'static, str> {
        "Times".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "How many times the trigger fires (default 1), or \"every\".",
            "oneOf": [ { "type": "integer", "minimum": 1 }, { "const": "every" } ]
        })
    }
}

/// The twilsock `close` codes the SDK distinguishes (protocol §2.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseCode {
    /// 308: offload, go elsewhere; the SDK reconnects, honouring `backoff`.
    Offload,
    /// 401: authentication failure; terminal.
    Unauthorized,
    /// 406: the server cannot parse the protocol; terminal.
    NotAcceptable,
    /// 410: the token expired; `tokenExpired`, then terminal.
    TokenExpired,
    /// 417: the server cannot parse the client's reply; terminal.
    ExpectationFailed,
}

impl CloseCode {
    pub const ALL: [CloseCode; 5] = [
        CloseCode::Offload,
        CloseCode::Unauthorized,
        CloseCode::NotAcceptable,
        CloseCode::TokenExpired,
        CloseCode::ExpectationFailed,
    ];

    pub fn code(self) -> u16 {
        match self {
            CloseCode::Offload => 308,
            CloseCode::Unauthorized => 401,
            CloseCode::NotAcceptable => 406,
            CloseCode::TokenExpired => 410,
            CloseCode::ExpectationFailed => 417,
        }
    }

    pub fn from_code(code: u16) -> Option<CloseCode> {
        CloseCode::ALL.into_iter().find(|c| c.code() == code)
    }

    /// Whether the SDK gives up after this close (everything but 308).
    pub fn is_terminal(self) -> bool {
        self != CloseCode::Offload
    }
}

impl Serialize for CloseCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u16(self.code())
    }
}

impl<'de> Deserialize<'de> for CloseCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = CloseCode;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a twilsock close code: 308, 401, 406, 410 or 417")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<CloseCode, E> {
                u16::try_from(v)
                    .ok()
                    .and_then(CloseCode::from_code)
                    .ok_or_else(|| E::invalid_value(de::Unexpected::Signed(v), &self))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<CloseCode, E> {
                self.visit_i64(i64::try_from(v).unwrap_or(i64::MAX))
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for CloseCode {
    fn schema_name() -> Cow<'static, str> {
        "CloseCode".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A twilsock close code: 308 (offload, reconnect), 401, 406, 410 (token expired) or 417 (terminal).",
            "enum": [308, 401, 406, 410, 417]
        })
    }
}
