//! Actors: anything a participant or the REST API could do, done by the control plane as a
//! named identity (as the SDK: webhooks fire) or as the REST API, through the same domain
//! service as the SDK's and the REST API's own requests.
use serde::Deserialize;
use serde_json::{Value, json};

use super::limits::MAX_GENERATED_MESSAGES;
use super::{Control, ControlError};
use crate::domain::conversation::{ConversationUpdate, NewConversation};
use crate::domain::message::{MessageUpdate, NewMessage};
use crate::domain::participant::{NewParticipant, ParticipantUpdate};
use crate::domain::service::{
    AddConversation, AddMessage, AddParticipant, Member, RemoveConversation, RemoveMessage, RemoveParticipant, StoreMedia, Typing,
    UpdateConversation, UpdateMembership, UpdateMessage,
};
use crate::domain::{Account, Cause, DomainError};
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
    #[error(transparent)]
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
///
/// Every change goes through the domain service like the SDK's or the REST API's: acting as an
/// identity, the pre-action webhook is asked first (with no lock held) and post-action webhooks
/// fire, as for the SDK; as the REST API, neither fires (as a REST call without
/// `X-Twilio-Webhook-Enabled`).
pub async fn act(account: &Account, who: Option<&str>, action: Action) -> Result<Value, ActError> {
    let cause = match who {
        Some(i) => Cause::sdk(i),
        None => Cause::api(false),
    };
    let out = match action {
        Action::Post {
            conversation,
            body,
            attributes,
            media,
        } => {
            let mut media_sids = Vec::new();
            if let Some(m) = media {
                let stored = account.apply(
                    &cause,
                    None,
                    StoreMedia {
                        bytes: media_bytes(&m)?.into(),
                        content_type: m.content_type,
                        filename: m.filename,
                        category: "media".into(),
                        author: who.map(str::to_owned),
                        reservation: None,
                    },
                )?;
                media_sids.push(stored.sid);
            }
            let message = NewMessage {
                author: who.map(str::to_owned),
                body,
                attributes,
                media_sids,
                ..Default::default()
            };
            let msg = account.perform(&cause, None, AddMessage { conversation, message }).await?;
            json!({ "sid": msg.sid, "index": msg.index, "conversation_sid": msg.conversation_sid })
        }
        Action::Edit {
            conversation,
            message,
            body,
            attributes,
        } => {
            let update = MessageUpdate {
                body,
                attributes,
                ..Default::default()
            };
            let change = UpdateMessage {
                conversation,
                message,
                update,
            };
            let m = account.perform(&cause, None, change).await?;
            json!({ "sid": m.sid, "index": m.index })
        }
        Action::RemoveMessage { conversation, message } => {
            let m = account.perform(&cause, None, RemoveMessage { conversation, message }).await?;
            json!({ "sid": m.sid, "index": m.index })
        }
        Action::Typing { conversation } => {
            let identity = identity(who, "typing")?.to_owned();
            account.apply(&cause, None, Typing { conversation, identity })?;
            json!({})
        }
        Action::Join { conversation } => {
            let me = identity(who, "join")?;
            let participant = NewParticipant {
                identity: Some(me.to_owned()),
                ..Default::default()
            };
            let p = account.perform(&cause, None, AddParticipant { conversation, participant }).await?;
            json!({ "participant_sid": p.sid })
        }
        Action::Leave { conversation } => {
            let participant = identity(who, "leave")?.to_owned();
            let change = RemoveParticipant { conversation, participant };
            let p = account.perform(&cause, None, change).await?;
            json!({ "participant_sid": p.sid })
        }
        Action::AddParticipant {
            conversation,
            identity,
            attributes,
        } => {
            let participant = NewParticipant {
                identity: Some(identity),
                attributes,
                ..Default::default()
            };
            let p = account.perform(&cause, None, AddParticipant { conversation, participant }).await?;
            json!({ "participant_sid": p.sid })
        }
        Action::RemoveParticipant { conversation, identity } => {
            let change = RemoveParticipant {
                conversation,
                participant: identity,
            };
            let p = account.perform(&cause, None, change).await?;
            json!({ "participant_sid": p.sid })
        }
        Action::CreateConversation {
            unique_name,
            friendly_name,
            attributes,
            participants,
        } => {
            let new = NewConversation {
                unique_name,
                friendly_name,
                attributes,
                created_by: who.map(str::to_owned),
                ..Default::default()
            };
            let c = account.perform(&cause, None, AddConversation(new)).await?;
            let mut members: Vec<String> = participants;
            if let Some(me) = who {
                if !members.iter().any(|m| m == me) {
                    members.insert(0, me.to_owned());
                }
            }
            // One change per member, each vetted as the SDK's `add` would be.
            for m in members {
                let participant = NewParticipant {
                    identity: Some(m),
                    ..Default::default()
                };
                account
                    .perform(
                        &cause,
                        None,
                        AddParticipant {
                            conversation: c.sid.clone(),
                            participant,
                        },
                    )
                    .await?;
            }
            json!({ "sid": c.sid, "unique_name": c.unique_name })
        }
        Action::UpdateConversation {
            conversation,
            friendly_name,
            attributes,
        } => {
            let update = ConversationUpdate {
                friendly_name,
                attributes,
                ..Default::default()
            };
            let c = account.perform(&cause, None, UpdateConversation { conversation, update }).await?;
            json!({ "sid": c.sid })
        }
        Action::DeleteConversation { conversation } => {
            let c = account.perform(&cause, None, RemoveConversation { conversation }).await?;
            json!({ "sid": c.sid })
        }
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
            // One change per message keeps each commit small and the Sync events in order.
            for n in 0..count {
                let author = if authors.is_empty() {
                    who.map(str::to_owned)
                } else {
                    Some(authors[(n as usize) % authors.len()].clone())
                };
                let message = NewMessage {
                    author,
                    body: Some(format!("{prefix} {}", n + 1)),
                    ..Default::default()
                };
                let change = AddMessage {
                    conversation: conversation.clone(),
                    message,
                };
                let m = account.perform(&cause, None, change).await?;
                first.get_or_insert(m.index);
                last = Some(m.index);
            }
            json!({ "count": count, "first_index": first, "last_index": last })
        }
        Action::SetReadHorizon { conversation, index } => {
            let me = identity(who, "set_read_horizon")?;
            let change = UpdateMembership {
                conversation,
                member: Member::Participant(me.to_owned()),
                update: ParticipantUpdate {
                    last_read_message_index: Some(index),
                    ..Default::default()
                },
            };
            let p = account.apply(&cause, None, change)?;
            json!({ "last_read_message_index": p.last_read_message_index })
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

impl Control {
    /// Performs `action` in a tenant as `who` (an SDK identity: webhooks fire as for the SDK)
    /// or, when `None`, as the REST API; see [`act`].
    pub async fn act(&self, account: &str, who: Option<&str>, action: Action) -> Result<Value, ControlError> {
        let acc = self
            .domain
            .account(account)
            .ok_or_else(|| ControlError::NoTenant(account.to_owned()))?;
        Ok(act(&acc, who, action).await?)
    }
}
