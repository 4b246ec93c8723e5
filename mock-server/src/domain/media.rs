//! Media records (ME…): bytes uploaded through MCS or seeded, attached to messages by SID.
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::collection::Keyed;
use crate::clock::Millis;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Media {
    pub sid: String,
    pub content_type: String,
    pub filename: Option<String>,
    /// `media`, `body` or `history` (MCS categories).
    pub category: String,
    pub author: Option<String>,
    pub conversation_sid: Option<String>,
    pub message_sid: Option<String>,
    pub date_created: Millis,
    pub date_updated: Millis,
    #[serde(with = "base64_bytes")]
    pub bytes: Bytes,
}

impl Keyed for Media {
    fn sid(&self) -> &str {
        &self.sid
    }
}

impl Media {
    pub fn size(&self) -> usize {
        self.bytes.len()
    }
}

/// What a message keeps of an attached media record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaRef {
    pub sid: String,
    pub content_type: String,
    pub filename: Option<String>,
    pub size: usize,
    pub category: String,
}

impl From<&Media> for MediaRef {
    fn from(m: &Media) -> Self {
        MediaRef {
            sid: m.sid.clone(),
            content_type: m.content_type.clone(),
            filename: m.filename.clone(),
            size: m.size(),
            category: m.category.clone(),
        }
    }
}

mod base64_bytes {
    use base64::Engine;
    use bytes::Bytes;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(b: &Bytes, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(b))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        let s = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(s)
            .map(Bytes::from)
            .map_err(serde::de::Error::custom)
    }
}
