//! Participants (MB…): chat identities and SMS-style messaging bindings.
use serde::{Deserialize, Serialize};

use super::collection::Keyed;
use super::error::codes;
use super::user::NewUser;
use super::{ChatService, Ctx, DomainError, DomainEvent, Resource, check_attributes};
use crate::clock::Millis;
use crate::sid;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessagingBinding {
    #[serde(rename = "type")]
    pub kind: String,
    pub address: String,
    pub proxy_address: Option<String>,
    pub projected_address: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Participant {
    pub sid: String,
    pub conversation_sid: String,
    /// Chat participants have an identity; SMS-style ones have a binding instead.
    pub identity: Option<String>,
    pub messaging_binding: Option<MessagingBinding>,
    pub attributes: String,
    pub role_sid: String,
    pub date_created: Millis,
    pub date_updated: Millis,
    pub last_read_message_index: Option<u64>,
    pub last_read_timestamp: Option<Millis>,
    /// The user's notification level for this conversation (`default` or `muted`).
    pub notification_level: String,
}

impl Keyed for Participant {
    fn sid(&self) -> &str {
        &self.sid
    }
    fn name(&self) -> Option<&str> {
        self.identity.as_deref()
    }
}

#[derive(Debug, Clone, Default)]
pub struct NewParticipant {
    pub identity: Option<String>,
    pub binding_address: Option<String>,
    pub binding_proxy_address: Option<String>,
    pub binding_projected_address: Option<String>,
    pub attributes: Option<String>,
    pub role_sid: Option<String>,
    pub date_created: Option<Millis>,
    pub date_updated: Option<Millis>,
}

#[derive(Debug, Clone, Default)]
pub struct ParticipantUpdate {
    pub attributes: Option<String>,
    pub role_sid: Option<String>,
    /// `Some(None)` clears the read horizon.
    pub last_read_message_index: Option<Option<u64>>,
    pub last_read_timestamp: Option<Millis>,
    pub notification_level: Option<String>,
    pub date_created: Option<Millis>,
    pub date_updated: Option<Millis>,
}

impl ChatService {
    pub fn add_participant(&mut self, cx: &mut Ctx<'_>, conversation: &str, req: NewParticipant) -> Result<Participant, DomainError> {
        let seq = self.conversation_seq(conversation)?;
        let attributes = check_attributes(req.attributes.as_deref(), "Attributes", cx.limits.participant_attributes_bytes)?;
        let identity = req.identity.filter(|i| !i.is_empty());
        let binding = match req.binding_address.filter(|a| !a.is_empty()) {
            Some(address) => Some(MessagingBinding {
                kind: if address.starts_with("whatsapp:") {
                    "whatsapp".into()
                } else {
                    "sms".into()
                },
                address,
                proxy_address: req.binding_proxy_address,
                projected_address: req.binding_projected_address,
            }),
            None => None,
        };
        if identity.is_none() && binding.is_none() {
            return Err(DomainError::invalid(
                "Identity",
                "Either Identity or MessagingBinding.Address must be specified",
            ));
        }
        if identity.is_some() && binding.as_ref().is_some_and(|b| b.proxy_address.is_some()) {
            return Err(DomainError::invalid(
                "Identity",
                "Identity and MessagingBinding.ProxyAddress cannot both be specified",
            ));
        }
        let role_sid = match req.role_sid {
            Some(r) => self.role_param(&r, "RoleSid")?.sid.clone(),
            None => self.default_conversation_role_sid.clone(),
        };
        {
            let entry = self.conversations.get_seq(seq).expect("seq from lookup");
            if entry.participants.len() >= cx.limits.participants_per_conversation {
                return Err(DomainError::LimitReached {
                    code: codes::PARTICIPANT_LIMIT,
                    message: format!(
                        "Conversation already has the maximum of {} participants",
                        cx.limits.participants_per_conversation
                    ),
                });
            }
            if let Some(id) = &identity {
                if entry.participants.seq_of_name(id).is_some() {
                    return Err(DomainError::Conflict {
                        code: codes::PARTICIPANT_EXISTS,
                        message: format!("Participant already exists: {id}"),
                    });
                }
            }
            if let Some(b) = &binding {
                let clash = entry.participants.iter().any(|(_, p)| {
                    p.messaging_binding
                        .as_ref()
                        .is_some_and(|pb| pb.address == b.address && pb.proxy_address == b.proxy_address)
                });
                if clash {
                    return Err(DomainError::Conflict {
                        code: codes::BINDING_EXISTS,
                        message: format!("A binding for this participant and proxy address already exists in Conversation {conversation}"),
                    });
                }
            }
        }
        if let Some(id) = &identity {
            self.ensure_user(cx, id)?;
        }
        let now = cx.now;
        let entry = self.conversations.get_seq_mut(seq).expect("seq from lookup");
        let date_created = req.date_created.unwrap_or(now);
        let p = Participant {
            sid: cx.sids.next(sid::PARTICIPANT),
            conversation_sid: entry.conversation.sid.clone(),
            identity,
            messaging_binding: binding,
            attributes,
            role_sid,
            date_created,
            date_updated: req.date_updated.unwrap_or(date_created),
            last_read_message_index: None,
            last_read_timestamp: None,
            notification_level: "default".into(),
        };
        entry.participants.insert(p.clone());
        cx.emit(DomainEvent::ParticipantAdded {
            service: self.sid.clone(),
            conversation: p.conversation_sid.clone(),
            participant: p.sid.clone(),
        });
        Ok(p)
    }

    /// Creates the user for `identity` if it does not exist yet (Twilio does this when a chat
    /// participant is added or an SDK client connects with a new identity).
    pub fn ensure_user(&mut self, cx: &mut Ctx<'_>, identity: &str) -> Result<(), DomainError> {
        if self.users.seq_of_name(identity).is_none() {
            self.create_user(
                cx,
                NewUser {
                    identity: identity.to_owned(),
                    ..Default::default()
                },
            )?;
        }
        Ok(())
    }

    pub fn participant(&self, conversation: &str, sid_or_identity: &str) -> Result<&Participant, DomainError> {
        self.conversation(conversation)?.participants.get(sid_or_identity).ok_or_else(|| {
            DomainError::not_found(
                Resource::Participant,
                format!("/Conversations/{conversation}/Participants/{sid_or_identity}"),
            )
        })
    }

    pub fn update_participant(
        &mut self,
        cx: &mut Ctx<'_>,
        conversation: &str,
        sid_or_identity: &str,
        req: ParticipantUpdate,
    ) -> Result<Participant, DomainError> {
        let seq = self.conversation_seq(conversation)?;
        let attributes = match &req.attributes {
            Some(a) => Some(check_attributes(Some(a), "Attributes", cx.limits.participant_attributes_bytes)?),
            None => None,
        };
        let role_sid = match &req.role_sid {
            Some(r) => Some(self.role_param(r, "RoleSid")?.sid.clone()),
            None => None,
        };
        if let Some(level) = &req.notification_level {
            if level != "default" && level != "muted" {
                return Err(DomainError::invalid(
                    "NotificationLevel",
                    format!("NotificationLevel must be default or muted; got {level:?}"),
                ));
            }
        }
        let now = cx.now;
        let entry = self.conversations.get_seq_mut(seq).expect("seq from lookup");
        let pseq = entry.participants.seq_of(sid_or_identity).ok_or_else(|| {
            DomainError::not_found(
                Resource::Participant,
                format!("/Conversations/{conversation}/Participants/{sid_or_identity}"),
            )
        })?;
        let p = entry.participants.get_seq_mut(pseq).expect("seq from lookup");
        if let Some(a) = attributes {
            p.attributes = a;
        }
        if let Some(r) = role_sid {
            p.role_sid = r;
        }
        if let Some(idx) = req.last_read_message_index {
            p.last_read_message_index = idx;
            p.last_read_timestamp = Some(req.last_read_timestamp.unwrap_or(now));
        } else if let Some(ts) = req.last_read_timestamp {
            p.last_read_timestamp = Some(ts);
        }
        if let Some(level) = req.notification_level {
            p.notification_level = level;
        }
        if let Some(d) = req.date_created {
            p.date_created = d;
        }
        p.date_updated = req.date_updated.unwrap_or(now);
        let out = p.clone();
        cx.emit(DomainEvent::ParticipantUpdated {
            service: self.sid.clone(),
            conversation: out.conversation_sid.clone(),
            participant: out.sid.clone(),
        });
        Ok(out)
    }

    pub fn remove_participant(&mut self, cx: &mut Ctx<'_>, conversation: &str, sid_or_identity: &str) -> Result<Participant, DomainError> {
        let seq = self.conversation_seq(conversation)?;
        let entry = self.conversations.get_seq_mut(seq).expect("seq from lookup");
        let pseq = entry.participants.seq_of(sid_or_identity).ok_or_else(|| {
            DomainError::not_found(
                Resource::Participant,
                format!("/Conversations/{conversation}/Participants/{sid_or_identity}"),
            )
        })?;
        let p = entry.participants.remove_seq(pseq).expect("seq from lookup");
        cx.emit(DomainEvent::ParticipantRemoved {
            service: self.sid.clone(),
            conversation: p.conversation_sid.clone(),
            participant: Box::new(p.clone()),
        });
        Ok(p)
    }
}
