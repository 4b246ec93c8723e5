//! Serde plumbing for the format's polymorphic tables.
//!
//! Every table that can be one of several kinds starts with the key that says which kind it is
//! (`server = "drop"`, `command = "send"`, `expect = "event"`, `wait = "1s"`…). Serde's own
//! internally tagged enums would buffer the table before choosing a variant, and buffering loses
//! toml's spans: an error inside a step would then point at the step, not at the faulty key or
//! value. Reading the first key and then *streaming* the rest of the table into the chosen type
//! keeps every key and value deserialised by toml itself, so every error names its exact line and
//! column. The price is a rule writers can see: the kind key comes first.
//!
//! Invariant: nothing here buffers a value; every key and value is read from the underlying
//! `MapAccess`, which is what attaches spans to errors.
use std::fmt;

use schemars::{Schema, SchemaGenerator};
use serde::de::value::MapAccessDeserializer;
use serde::de::{self, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, Visitor};
use serde_json::{Map, Value};

/// Quotes and joins names for messages: `` `a`, `b` or `c` ``.
pub(crate) fn one_of(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match quoted.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

/// Reads a table's first key, which must be one of `expected`. A wrong key fails while the key
/// itself is being deserialised, so toml points at it.
pub(crate) struct FirstKey {
    pub expected: &'static [&'static str],
    pub what: &'static str,
}

impl<'de> DeserializeSeed<'de> for FirstKey {
    type Value = &'static str;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for FirstKey {
    type Value = &'static str;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "one of {}", one_of(self.expected))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        self.expected.iter().find(|k| **k == v).copied().ok_or_else(|| {
            E::custom(format_args!(
                "{} starts with {} (found `{v}`): put that key first",
                self.what,
                one_of(self.expected)
            ))
        })
    }
}

/// Reads a kind name (the value of a tag key), which must be one of `names`.
pub(crate) struct VariantName {
    pub names: &'static [&'static str],
}

impl<'de> DeserializeSeed<'de> for VariantName {
    type Value = &'static str;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for VariantName {
    type Value = &'static str;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "one of {}", one_of(self.names))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        self.names
            .iter()
            .find(|k| **k == v)
            .copied()
            .ok_or_else(|| E::unknown_variant(v, self.names))
    }
}

/// A `MapAccess` that yields one already-read key first, then the rest of `map`. Lets a derived
/// struct deserialise a table whose first key was read to choose the struct.
pub(crate) struct Prepend<A> {
    first: Option<&'static str>,
    map: A,
}

impl<A> Prepend<A> {
    pub(crate) fn new(first: &'static str, map: A) -> Self {
        Prepend { first: Some(first), map }
    }
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Prepend<A> {
    type Error = A::Error;
    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, A::Error> {
        match self.first.take() {
            Some(key) => seed.deserialize(key.into_deserializer()).map(Some),
            None => self.map.next_key_seed(seed),
        }
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        self.map.next_value_seed(seed)
    }
}

/// Deserialises a derived type from the rest of a map.
pub(crate) fn from_map<'de, T: serde::Deserialize<'de>, A: MapAccess<'de>>(map: A) -> Result<T, A::Error> {
    T::deserialize(MapAccessDeserializer::new(map))
}

/// Fields shared by every kind of a table (a command's `label`, an expectation's `grade`) that
/// may appear anywhere after the kind key.
pub(crate) trait CommonFields: Default {
    const KEYS: &'static [&'static str];
    fn read<'de, A: MapAccess<'de>>(&mut self, key: &'static str, map: &mut A) -> Result<(), A::Error>;
    /// Schemas of the common fields, added to every kind's schema.
    fn properties(generator: &mut SchemaGenerator) -> Vec<(&'static str, Schema)>;
}

/// A `MapAccess` that takes the common fields out of a table and passes the other keys on.
pub(crate) struct Intercept<'c, A, C> {
    pub map: A,
    pub common: &'c mut C,
}

impl<'de, A: MapAccess<'de>, C: CommonFields> MapAccess<'de> for Intercept<'_, A, C> {
    type Error = A::Error;
    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, A::Error> {
        let mut seed = seed;
        loop {
            match self.map.next_key_seed(Peek { seed, keys: C::KEYS })? {
                None => return Ok(None),
                Some(Peeked::Field(v)) => return Ok(Some(v)),
                Some(Peeked::Common(key, s)) => {
                    self.common.read(key, &mut self.map)?;
                    seed = s;
                }
            }
        }
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        self.map.next_value_seed(seed)
    }
}

/// Looks at a key while toml deserialises it: a common key is reported back (with the seed, so
/// the caller can try again), any other key goes to the inner seed. Errors of the inner seed
/// (unknown fields) are raised inside toml's key deserialisation and so carry the key's span.
struct Peek<K> {
    seed: K,
    keys: &'static [&'static str],
}

enum Peeked<V, K> {
    Field(V),
    Common(&'static str, K),
}

impl<'de, K: DeserializeSeed<'de>> DeserializeSeed<'de> for Peek<K> {
    type Value = Peeked<K::Value, K>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de, K: DeserializeSeed<'de>> Visitor<'de> for Peek<K> {
    type Value = Peeked<K::Value, K>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        if let Some(key) = self.keys.iter().find(|k| **k == v) {
            return Ok(Peeked::Common(key, self.seed));
        }
        self.seed.deserialize(v.into_deserializer()).map(Peeked::Field)
    }
}

/// The schema of one kind of a tagged table: the kind struct's own (closed) object schema with
/// the tag (a constant) and the common fields added.
pub(crate) fn kind_schema(mut schema: Schema, tag: &str, name: &str, common: &[(&'static str, Schema)]) -> Schema {
    let obj = schema.ensure_object();
    let mut properties = Map::new();
    properties.insert(tag.to_owned(), serde_json::json!({ "const": name }));
    if let Some(Value::Object(own)) = obj.remove("properties") {
        properties.extend(own);
    }
    for (key, s) in common {
        properties.insert((*key).to_owned(), s.clone().to_value());
    }
    let mut required = vec![Value::String(tag.to_owned())];
    if let Some(Value::Array(own)) = obj.remove("required") {
        required.extend(own);
    }
    obj.insert("type".into(), "object".into());
    obj.insert("properties".into(), Value::Object(properties));
    obj.insert("required".into(), Value::Array(required));
    obj.insert("additionalProperties".into(), false.into());
    // The struct's title (its Rust name) means nothing to a writer; its description stays.
    obj.remove("title");
    schema
}

/// Declares an enum whose tables start with `tag = "<kind>"`: each kind is a struct (its fields
/// follow the tag). Generates the enum (serialised with serde's internal tagging, tag first),
/// a streaming `Deserialize` and a `JsonSchema` (`oneOf` the kinds).
macro_rules! tagged_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident, tag $tag:literal, what $what:literal {
            $( $(#[$vmeta:meta])* $wire:literal => $variant:ident($inner:ty) ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, serde::Serialize)]
        #[serde(tag = $tag)]
        pub enum $name {
            $( $(#[$vmeta])* #[serde(rename = $wire)] $variant($inner), )+
        }

        impl $name {
            /// The key that names the kind.
            pub const TAG: &'static str = $tag;
            /// Every kind's name, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$($wire),+];

            /// This value's kind, as written in scenario files.
            pub fn name(&self) -> &'static str {
                match self { $( $name::$variant(_) => $wire, )+ }
            }

            /// Reads the kind (the tag's value; the tag key itself was read by the caller)
            /// and the kind's fields from the rest of `map`.
            pub(crate) fn deserialize_after_tag<'de, A: serde::de::MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
                let kind = map.next_value_seed($crate::format::tagged::VariantName { names: Self::NAMES })?;
                match kind {
                    $( $wire => Ok($name::$variant($crate::format::tagged::from_map::<$inner, A>(map)?)), )+
                    other => Err(<A::Error as serde::de::Error>::unknown_variant(other, Self::NAMES)),
                }
            }

            /// One closed object schema per kind, each with `common` added.
            pub(crate) fn kind_schemas(
                generator: &mut schemars::SchemaGenerator,
                common: &[(&'static str, schemars::Schema)],
            ) -> Vec<serde_json::Value> {
                vec![ $(
                    $crate::format::tagged::kind_schema(
                        <$inner as schemars::JsonSchema>::json_schema(generator), $tag, $wire, common,
                    ).to_value(),
                )+ ]
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> serde::de::Visitor<'de> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                        write!(f, "{} (a table starting with `{}`)", $what, $tag)
                    }
                    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<$name, A::Error> {
                        let first = $crate::format::tagged::FirstKey { expected: &[$tag], what: $what };
                        match map.next_key_seed(first)? {
                            Some(_) => $name::deserialize_after_tag(map),
                            None => Err(<A::Error as serde::de::Error>::missing_field($tag)),
                        }
                    }
                }
                d.deserialize_map(V)
            }
        }

        impl schemars::JsonSchema for $name {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }
            fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
                let kinds = $name::kind_schemas(generator, &[]);
                schemars::json_schema!({ "oneOf": kinds })
            }
        }
    };
}

pub(crate) use tagged_enum;
