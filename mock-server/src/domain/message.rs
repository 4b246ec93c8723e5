//! Messages (IM…): per-conversation history with monotonically increasing indexes.
use serde::{Deserialize, Serialize};

use super::collection::Keyed;
use super::error::codes;
use super::media::MediaRef;
use super::{ChatService, Ctx, DomainError, DomainEvent, Resource, check_attributes};
use crate::clock::Millis;
use crate::sid;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Message {
    pub sid: String,
    pub conversation_sid: String,
    pub index: u64,
    pub author: Option<String>,
    pub body: Option<String>,
    pub subject: Option<String>,
    /// A JSON string, `"{}"` when unset.
    pub attributes: String,
    pub participant_sid: Option<String>,
    pub media: Vec<MediaRef>,
    pub content_sid: Option<String>,
    pub date_created: Millis,
    pub date_updated: Millis,
    /// Identity of the last editor, if edited by an SDK user.
    pub last_updated_by: Option<String>,
}

impl Keyed for Message {
    fn sid(&self) -> &str {
        &self.sid
    }
}

#[derive(Debug, Clone, Default)]
pub struct NewMessage {
    pub author: Option<String>,
    pub body: Option<String>,
    pub subject: Option<String>,
    pub attributes: Option<String>,
    pub media_sids: Vec<String>,
    pub content_sid: Option<String>,
    pub date_created: Option<Millis>,
    pub date_updated: Option<Millis>,
}

#[derive(Debug, Clone, Default)]
pub struct MessageUpdate {
    pub author: Option<String>,
    pub body: Option<String>,
    pub subject: Option<String>,
    pub attributes: Option<String>,
    pub date_created: Option<Millis>,
    pub date_updated: Option<Millis>,
    pub updated_by: Option<String>,
}

/// A message index as a path names it: decimal digits in canonical form, `0` or without a
/// leading zero, within `u64`. `+1`, `01` or a string of 34 zeros is not an index (Rust's
/// `u64::from_str` would take all three), so such a path is a 404, as an unknown SID is.
pub fn parse_index(s: &str) -> Option<u64> {
    let canonical = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    if canonical { s.parse().ok() } else { None }
}

impl ChatService {
    pub fn add_message(&mut self, cx: &mut Ctx<'_>, conversation: &str, req: NewMessage) -> Result<Message, DomainError> {
        let seq = self.conversation_seq(conversation)?;
        if let Some(b) = &req.body {
            if b.len() > cx.limits.message_body_bytes {
                return Err(DomainError::TooLong {
                    what: "Body",
                    code: codes::MESSAGE_BODY_TOO_LONG,
                    actual: b.len(),
                    limit: cx.limits.message_body_bytes,
                });
            }
        }
        let attributes = check_attributes(req.attributes.as_deref(), "Attributes", cx.limits.message_attributes_bytes)?;
        // Twilio's OpenAPI description (`twilio_conversations_v1.json`, message create):
        // `ContentSid` matches `^HX[0-9a-fA-F]{32}$`.
        super::conversation::check_sid_param(req.content_sid.as_deref(), crate::sid::CONTENT, "ContentSid", "a Content SID")?;
        let body = req.body.filter(|b| !b.is_empty());
        if body.is_none() && req.media_sids.is_empty() && req.content_sid.is_none() {
            return Err(DomainError::invalid(
                "Body",
                "Either Body, MediaSid or ContentSid must be specified",
            ));
        }
        let mut media = Vec::with_capacity(req.media_sids.len());
        for m in &req.media_sids {
            let rec = self
                .media_item(m)
                .map_err(|_| DomainError::invalid("MediaSid", format!("Media {m} was not found")))?;
            if rec.message_sid.is_some() {
                return Err(DomainError::invalid(
                    "MediaSid",
                    format!("Media {m} is already attached to a message"),
                ));
            }
            media.push(MediaRef::from(rec));
        }
        let now = cx.now;
        let author = req
            .author
            .filter(|a| !a.is_empty())
            .or_else(|| cx.cause.origin.identity().map(str::to_owned))
            .unwrap_or_else(|| crate::domain::SYSTEM_IDENTITY.into());
        let entry = self.conversations.get_seq_mut(seq).expect("seq from lookup");
        let participant_sid = entry.participants.get(&author).map(|p| p.sid.clone());
        let index = entry.messages.next_seq();
        let date_created = req.date_created.unwrap_or(now);
        let message = Message {
            sid: cx.sids.next(sid::MESSAGE),
            conversation_sid: entry.conversation.sid.clone(),
            index,
            author: Some(author),
            body,
            subject: req.subject,
            attributes,
            participant_sid,
            media,
            content_sid: req.content_sid,
            date_created,
            date_updated: req.date_updated.unwrap_or(date_created),
            last_updated_by: None,
        };
        entry.messages.insert(message.clone());
        for m in &message.media {
            if let Some(mseq) = self.media.seq_of_sid(&m.sid) {
                let rec = self.media.get_seq_mut(mseq).expect("seq from lookup");
                rec.message_sid = Some(message.sid.clone());
                rec.conversation_sid = Some(message.conversation_sid.clone());
            }
        }
        cx.emit(DomainEvent::MessageAdded {
            service: self.sid.clone(),
            conversation: message.conversation_sid.clone(),
            index,
        });
        Ok(message)
    }

    /// Finds a message by SID or by index (the REST API accepts either in `{Sid}`).
    pub fn message_index(&self, conversation: &str, sid_or_index: &str) -> Result<u64, DomainError> {
        let entry = self.conversation(conversation)?;
        let not_found = || DomainError::not_found(Resource::Message, format!("/Conversations/{conversation}/Messages/{sid_or_index}"));
        if let Some(seq) = entry.messages.seq_of_sid(sid_or_index) {
            return Ok(seq);
        }
        match parse_index(sid_or_index) {
            Some(i) if entry.messages.get_seq(i).is_some() => Ok(i),
            _ => Err(not_found()),
        }
    }

    pub fn message(&self, conversation: &str, sid_or_index: &str) -> Result<&Message, DomainError> {
        let i = self.message_index(conversation, sid_or_index)?;
        Ok(self.conversation(conversation)?.messages.get_seq(i).expect("index from lookup"))
    }

    pub fn update_message(
        &mut self,
        cx: &mut Ctx<'_>,
        conversation: &str,
        sid_or_index: &str,
        req: MessageUpdate,
    ) -> Result<Message, DomainError> {
        let index = self.message_index(conversation, sid_or_index)?;
        if let Some(b) = &req.body {
            if b.len() > cx.limits.message_body_bytes {
                return Err(DomainError::TooLong {
                    what: "Body",
                    code: codes::MESSAGE_BODY_TOO_LONG,
                    actual: b.len(),
                    limit: cx.limits.message_body_bytes,
                });
            }
        }
        let attributes = match &req.attributes {
            Some(a) => Some(check_attributes(Some(a), "Attributes", cx.limits.message_attributes_bytes)?),
            None => None,
        };
        let now = cx.now;
        let seq = self.conversation_seq(conversation)?;
        let entry = self.conversations.get_seq_mut(seq).expect("seq from lookup");
        let m = entry.messages.get_seq_mut(index).expect("index from lookup");
        if let Some(b) = req.body {
            m.body = Some(b);
        }
        if let Some(a) = req.author {
            m.author = Some(a);
        }
        if let Some(s) = req.subject {
            m.subject = Some(s);
        }
        if let Some(a) = attributes {
            m.attributes = a;
        }
        if let Some(d) = req.date_created {
            m.date_created = d;
        }
        m.date_updated = req.date_updated.unwrap_or(now);
        m.last_updated_by = req.updated_by.or_else(|| cx.cause.origin.identity().map(str::to_owned));
        let out = m.clone();
        cx.emit(DomainEvent::MessageUpdated {
            service: self.sid.clone(),
            conversation: out.conversation_sid.clone(),
            index,
        });
        Ok(out)
    }

    pub fn remove_message(&mut self, cx: &mut Ctx<'_>, conversation: &str, sid_or_index: &str) -> Result<Message, DomainError> {
        let index = self.message_index(conversation, sid_or_index)?;
        let seq = self.conversation_seq(conversation)?;
        let entry = self.conversations.get_seq_mut(seq).expect("seq from lookup");
        let m = entry.messages.remove_seq(index).expect("index from lookup");
        cx.emit(DomainEvent::MessageRemoved {
            service: self.sid.clone(),
            conversation: m.conversation_sid.clone(),
            message: Box::new(m.clone()),
        });
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::parse_index;

    #[test]
    fn indexes_are_read_only_in_canonical_form() {
        assert_eq!(parse_index("0"), Some(0));
        assert_eq!(parse_index("17"), Some(17));
        assert_eq!(parse_index("18446744073709551615"), Some(u64::MAX));
        for bad in [
            "",
            "+1",
            "-1",
            "01",
            "00",
            &"0".repeat(34),
            " 1",
            "1 ",
            "1e3",
            "18446744073709551616",
            "IM1",
        ] {
            assert_eq!(parse_index(bad), None, "{bad:?}");
        }
    }
}
