//! Actors: anything a participant or the REST API could do, done by the control plane as a
//! named identity (origin SDK) or as the REST API, through the same domain service.
use serde::Deserialize;
use serde_json::{Value, json};

use super::limits::MAX_GENERATED_MESSAGES;
use crate::domain::conversation::{ConversationUpdate, NewConversation};
use crate::domain::message::{MessageUpdate, NewMessage};
use crate::domain::participant::{NewParticipant, ParticipantUpdate};
use crate::domain::{Account, DomainError, Origin};
use crate::media::DEFAULT_MAX_UPLOAD_BYTES;

/// One action. `conversation` is a SID or unique name; `message` a SID or index.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    Post {
        conversation: String,
        #[serde(default)]
        body: Option<String>,
        #[serde(default)]
        attributes: Option<String>,
        /// Bytes to attach as media (base64), with their content type.
        #[serde(default)]
        media: Option<MediaSpec>,
    },
    Edit {
        conversation: String,
        message: String,
        #[serde(default)]
        body: Option<String>,
        #[serde(default)]
        attributes: Option<String>,
    },
    RemoveMessage {
        conversation: String,
        message: String,
    },
    Typing {
        conversation: String,
    },
    /// The actor joins (adds itself).
    Join {
        conversation: String,
    },
    /// The actor leaves (removes itself).
    Leave {
        conversation: String,
    },
    AddParticipant {
        conversation: String,
        identity: String,
        #[serde(default)]
        attributes: Option<String>,
    },
    RemoveParticipant {
        conversation: String,
        identity: String,
    },
    CreateConversation {
        #[serde(default)]
        unique_name: Option<String>,
        #[serde(default)]
        friendly_name: Option<String>,
        #[serde(default)]
        attributes: Option<String>,
        #[serde(default)]
        participants: Vec<String>,
    },
    UpdateConversation {
        conversation: String,
        #[serde(default)]
        friendly_name: Option<String>,
        #[serde(default)]
        attributes: Option<String>,
    },
    DeleteConversation {
        conversation: String,
    },
    /// Appends `count` messages quickly (`body_prefix` N), by the actor or in turn by `authors`.
    GenerateMessages {
        conversation: String,
        count: u64,
        #[serde(default)]
        authors: Vec<String>,
        #[serde(default)]
        body_prefix: Option<String>,
    },
    SetReadHorizon {
        conversation: String,
        /// `None` clears it.
        #[serde(default)]
        index: Option<u64>,
    },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaSpec {
    pub content_type: String,
    #[serde(default)]
    pub filename: Option<String>,
    /// The bytes, base64; or `size` bytes of a deterministic pattern.
    #[serde(default)]
    pub base64: Option<String>,
    #[serde(default)]
    pub size: Option<usize>,
}

#[derive(Debug, thiserror::Error)]
pub enum ActError {
    #[error("{0}")]
    Domain(#[from] DomainError),
    #[error("action {0} needs an actor identity (\"as\")")]
    NeedsIdentity(&'static str),
    #[error("media: {0}")]
    Media(String),
    #[error("{0}")]
    OutOfRange(String),
}

fn identity<'a>(who: Option<&'a str>, action: &'static str) -> Result<&'a str, ActError> {
    who.ok_or(ActError::NeedsIdentity(action))
}

/// Performs `action` in the account's default service as `who` (an SDK identity) or, when
/// `None`, as the REST API. Returns a JSON summary of what it did.
pub fn act(account: &Account, who: Option<&str>, action: Action) -> Result<Value, ActError> {
    let origin = match who {
        Some(i) => Origin::Sdk { identity: i.to_owned() },
        None => Origin::Api,
    };
    let w = |f: &mut dyn FnMut(&mut crate::domain::ChatService, &mut crate::domain::Ctx<'_>) -> Result<Value, DomainError>| {
        account.write(&origin, None, |svc, cx| f(svc, cx))
    };
    let out = match action {
        Action::Post {
            conversation,
            body,
            attributes,
            media,
        } => {
            let media = match media {
                Some(m) => Some((media_bytes(&m)?, m)),
                None => None,
            };
            w(&mut |svc, cx| {
                let mut media_sids = Vec::new();
                if let Some((bytes, m)) = &media {
                    let rec = svc.store_media(
                        cx,
                        bytes.clone().into(),
                        m.content_type.clone(),
                        m.filename.clone(),
                        "media".into(),
                        who.map(str::to_owned),
                    );
                    media_sids.push(rec.sid);
                }
                let msg = svc.add_message(
                    cx,
                    &conversation,
                    NewMessage {
                        author: who.map(str::to_owned),
                        body: body.clone(),
                        attributes: attributes.clone(),
                        media_sids,
                        ..Default::default()
                    },
                )?;
                Ok(json!({ "sid": msg.sid, "index": msg.index, "conversation_sid": msg.conversation_sid }))
            })?
        }
        Action::Edit {
            conversation,
            message,
            body,
            attributes,
        } => w(&mut |svc, cx| {
            let m = svc.update_message(
                cx,
                &conversation,
                &message,
                MessageUpdate {
                    body: body.clone(),
                    attributes: attributes.clone(),
                    ..Default::default()
                },
            )?;
            Ok(json!({ "sid": m.sid, "index": m.index }))
        })?,
        Action::RemoveMessage { conversation, message } => w(&mut |svc, cx| {
            let m = svc.remove_message(cx, &conversation, &message)?;
            Ok(json!({ "sid": m.sid, "index": m.index }))
        })?,
        Action::Typing { conversation } => {
            let me = identity(who, "typing")?;
            w(&mut |svc, cx| svc.typing(cx, &conversation, me).map(|_| json!({})))?
        }
        Action::Join { conversation } => {
            let me = identity(who, "join")?;
            w(&mut |svc, cx| {
                let p = svc.add_participant(
                    cx,
                    &conversation,
                    NewParticipant {
                        identity: Some(me.to_owned()),
                        ..Default::default()
                    },
                )?;
                Ok(json!({ "participant_sid": p.sid }))
            })?
        }
        Action::Leave { conversation } => {
            let me = identity(who, "leave")?;
            w(&mut |svc, cx| {
                let p = svc.remove_participant(cx, &conversation, me)?;
                Ok(json!({ "participant_sid": p.sid }))
            })?
        }
        Action::AddParticipant {
            conversation,
            identity,
            attributes,
        } => w(&mut |svc, cx| {
            let p = svc.add_participant(
                cx,
                &conversation,
                NewParticipant {
                    identity: Some(identity.clone()),
                    attributes: attributes.clone(),
                    ..Default::default()
                },
            )?;
            Ok(json!({ "participant_sid": p.sid }))
        })?,
        Action::RemoveParticipant { conversation, identity } => w(&mut |svc, cx| {
            let p = svc.remove_participant(cx, &conversation, &identity)?;
            Ok(json!({ "participant_sid": p.sid }))
        })?,
        Action::CreateConversation {
            unique_name,
            friendly_name,
            attributes,
            participants,
        } => w(&mut |svc, cx| {
            let c = svc.create_conversation(
                cx,
                NewConversation {
                    unique_name: unique_name.clone(),
                    friendly_name: friendly_name.clone(),
                    attributes: attributes.clone(),
                    created_by: who.map(str::to_owned),
                    ..Default::default()
                },
            )?;
            let mut members: Vec<String> = participants.clone();
            if let Some(me) = who {
                if !members.iter().any(|m| m == me) {
                    members.insert(0, me.to_owned());
                }
            }
            for m in &members {
                svc.add_participant(
                    cx,
                    &c.sid,
                    NewParticipant {
                        identity: Some(m.clone()),
                        ..Default::default()
                    },
                )?;
            }
            Ok(json!({ "sid": c.sid, "unique_name": c.unique_name }))
        })?,
        Action::UpdateConversation {
            conversation,
            friendly_name,
            attributes,
        } => w(&mut |svc, cx| {
            let c = svc.update_conversation(
                cx,
                &conversation,
                ConversationUpdate {
                    friendly_name: friendly_name.clone(),
                    attributes: attributes.clone(),
                    ..Default::default()
                },
            )?;
            Ok(json!({ "sid": c.sid }))
        })?,
        Action::DeleteConversation { conversation } => w(&mut |svc, cx| {
            let c = svc.remove_conversation(cx, &conversation)?;
            Ok(json!({ "sid": c.sid }))
        })?,
        Action::GenerateMessages {
            conversation,
            count,
            authors,
            body_prefix,
        } => {
            if count > MAX_GENERATED_MESSAGES {
                return Err(ActError::OutOfRange(format!(
                    "count {count} is more than {MAX_GENERATED_MESSAGES} messages per call; generate in chunks"
                )));
            }
            let prefix = body_prefix.unwrap_or_else(|| "message".into());
            let mut first = None;
            let mut last = None;
            // One write per message keeps each commit small and the Sync events in order.
            for n in 0..count {
                let author = if authors.is_empty() {
                    who.map(str::to_owned)
                } else {
                    Some(authors[(n as usize) % authors.len()].clone())
                };
                let m = account.write(&origin, None, |svc, cx| {
                    svc.add_message(
                        cx,
                        &conversation,
                        NewMessage {
                            author: author.clone(),
                            body: Some(format!("{prefix} {}", n + 1)),
                            ..Default::default()
                        },
                    )
                })?;
                first.get_or_insert(m.index);
                last = Some(m.index);
            }
            json!({ "count": count, "first_index": first, "last_index": last })
        }
        Action::SetReadHorizon { conversation, index } => {
            let me = identity(who, "set_read_horizon")?;
            w(&mut |svc, cx| {
                let p = svc.update_participant(
                    cx,
                    &conversation,
                    me,
                    ParticipantUpdate {
                        last_read_message_index: Some(index),
                        ..Default::default()
                    },
                )?;
                Ok(json!({ "last_read_message_index": p.last_read_message_index }))
            })?
        }
    };
    Ok(out)
}

fn media_bytes(m: &MediaSpec) -> Result<Vec<u8>, ActError> {
    use base64::Engine;
    match (&m.base64, m.size) {
        (Some(b), _) => base64::engine::general_purpose::STANDARD
            .decode(b)
            .map_err(|e| ActError::Media(format!("base64: {e}"))),
        (None, Some(n)) if n > DEFAULT_MAX_UPLOAD_BYTES => Err(ActError::OutOfRange(format!(
            "media size {n} is more than the largest upload, {DEFAULT_MAX_UPLOAD_BYTES} bytes"
        ))),
        (None, Some(n)) => Ok((0..n).map(|i| (i % 251) as u8).collect()),
        (None, None) => Err(ActError::Media("give base64 or size".into())),
    }
}
