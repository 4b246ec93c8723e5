//! Pre-action webhooks: asked before an action, they let it proceed, change it or veto it.
//!
//! [`Webhooks`] is the domain's [`Gate`]: the domain service (`domain::service`,
//! `Account::perform`) asks it about every proposal with no lock held, then applies the change
//! as modified. Between the two another change may land (as on Twilio, where the hook runs before
//! the action is committed); the domain validates again when it applies.
use serde_json::Value;

use super::delivery::{self, Answer};
use super::payload::{self, Fields};
use super::{EventType, Webhooks, pre_target};
use crate::domain::service::GateAnswer;
use crate::domain::{Account, Amendment, Cause, ChatService, DomainError, Gate, Proposed};

/// What a pre-action hook may change, from the JSON object of its 200 answer: `body`,
/// `author`, `attributes` of a message (`onMessageAdd`, `onMessageUpdate`); `friendly_name`,
/// `unique_name`, `attributes` of a conversation (`onConversationAdd`, `onConversationUpdate`).
/// Anything else in the answer is ignored. The domain's [`Amendment`], which it applies.
pub type Modifications = Amendment;

impl Modifications {
    /// The modifications `answer_body` asks for on `event` (`None`: none, or not JSON).
    pub fn parse(event: EventType, answer_body: &str) -> Option<Modifications> {
        let Ok(Value::Object(o)) = serde_json::from_str::<Value>(answer_body.trim()) else {
            return None;
        };
        let text = |k: &str| match o.get(k) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => Some(other.to_string()),
        };
        let m = match event {
            EventType::MessageAdd | EventType::MessageUpdate => Modifications {
                body: text("body"),
                author: text("author"),
                attributes: text("attributes"),
                ..Default::default()
            },
            EventType::ConversationAdd | EventType::ConversationUpdate => Modifications {
                friendly_name: text("friendly_name"),
                unique_name: text("unique_name"),
                attributes: text("attributes"),
                ..Default::default()
            },
            _ => Modifications::default(),
        };
        (m != Modifications::default()).then_some(m)
    }
}

/// The backend vetoed the action (it answered 4xx or 5xx).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the action was rejected by the {event} pre-action webhook (it answered {hook_status})")]
pub struct Rejection {
    pub event: EventType,
    /// What the backend answered (not what the caller gets).
    pub hook_status: u16,
}

impl Rejection {
    /// The HTTP status the caller (REST or SDK) gets.
    pub const STATUS: u16 = 403;
    /// The error code the caller gets: Twilio's generic "Forbidden" (20403). Twilio's public
    /// documentation does not name the code it returns for a rejecting pre-action webhook; this
    /// is the closest documented one.
    pub const CODE: u32 = 20403;
}

impl From<Rejection> for DomainError {
    fn from(r: Rejection) -> DomainError {
        DomainError::Forbidden {
            code: Rejection::CODE,
            message: r.to_string(),
        }
    }
}

/// The event a proposal fires and the fields it proposes (read access only).
fn event_of(svc: &ChatService, cause: &Cause, proposed: Proposed<'_>) -> Result<(EventType, Fields), DomainError> {
    Ok(match proposed {
        Proposed::AddConversation(req) => (EventType::ConversationAdd, payload::conversation_add(svc, req)),
        Proposed::UpdateConversation { conversation, update } => (
            EventType::ConversationUpdate,
            payload::conversation_update(svc, conversation, update)?,
        ),
        Proposed::RemoveConversation { conversation } => (EventType::ConversationRemove, payload::conversation_remove(svc, conversation)?),
        Proposed::AddParticipant { conversation, participant } => {
            (EventType::ParticipantAdd, payload::participant_add(svc, conversation, participant)?)
        }
        Proposed::UpdateParticipant {
            conversation,
            participant,
            update,
        } => (
            EventType::ParticipantUpdate,
            payload::participant_update(svc, conversation, participant, update)?,
        ),
        Proposed::RemoveParticipant { conversation, participant } => (
            EventType::ParticipantRemove,
            payload::participant_remove(svc, conversation, participant)?,
        ),
        Proposed::AddMessage { conversation, message } => (
            EventType::MessageAdd,
            payload::message_add(svc, conversation, &cause.origin, message)?,
        ),
        Proposed::UpdateMessage {
            conversation,
            message,
            update,
        } => (
            EventType::MessageUpdate,
            payload::message_update(svc, conversation, message, update)?,
        ),
        Proposed::RemoveMessage { conversation, message } => {
            (EventType::MessageRemove, payload::message_remove(svc, conversation, message)?)
        }
        Proposed::UpdateUser { user, update } => (EventType::UserUpdate, payload::user_update(svc, user, update)?),
    })
}

impl Gate for Webhooks {
    fn ask<'a>(&'a self, account: &'a Account, service: Option<&'a str>, cause: &'a Cause, proposed: Proposed<'a>) -> GateAnswer<'a> {
        Box::pin(self.pre_action(account, service, cause, proposed))
    }
}

impl Webhooks {
    /// Asks the pre-action hook about `proposed` in `service` (`None`: the default service), if
    /// one is configured and its filters name the event. `Ok(None)`: proceed unchanged; a
    /// rejection is the domain's `Forbidden` (403, [`Rejection::CODE`]).
    ///
    /// Never called with a lock held (see `domain::service`): the HTTP request is awaited
    /// between the domain service's read of the state and its write.
    pub async fn pre_action(
        &self,
        account: &Account,
        service: Option<&str>,
        cause: &Cause,
        proposed: Proposed<'_>,
    ) -> Result<Option<Modifications>, DomainError> {
        let origin = &cause.origin;
        let prepared = account.read(|s| -> Result<_, DomainError> {
            let svc = s.service(service)?;
            let event = event_kind(proposed);
            let Some(target) = pre_target(s, svc, event) else {
                return Ok(None);
            };
            let (event, built) = event_of(svc, cause, proposed)?;
            let mut fields = payload::common(&account.sid, event.name(), origin);
            fields.0.extend(built.0);
            Ok(Some((event, target, fields)))
        })?;
        let Some((event, target, fields)) = prepared else {
            return Ok(None);
        };
        debug_assert!(event.is_pre());
        let req = delivery::prepare(&target, &fields, &account.auth_token);
        let s = &self.inner.settings;
        let answer = delivery::send(&self.inner.client, &req, s.timeout, s.body_limit).await;
        let (outcome, result) = judge(event, &answer);
        self.record(
            &account.sid,
            origin.identity(),
            delivery::summary("pre", event.name(), &req, &answer, outcome),
            delivery::detail("pre", event.name(), &target, &fields, &req, &answer, outcome),
        );
        Ok(result?)
    }
}

/// The event type of a proposal, before anything is built (the filters decide on it).
fn event_kind(proposed: Proposed<'_>) -> EventType {
    match proposed {
        Proposed::AddConversation(_) => EventType::ConversationAdd,
        Proposed::UpdateConversation { .. } => EventType::ConversationUpdate,
        Proposed::RemoveConversation { .. } => EventType::ConversationRemove,
        Proposed::AddParticipant { .. } => EventType::ParticipantAdd,
        Proposed::UpdateParticipant { .. } => EventType::ParticipantUpdate,
        Proposed::RemoveParticipant { .. } => EventType::ParticipantRemove,
        Proposed::AddMessage { .. } => EventType::MessageAdd,
        Proposed::UpdateMessage { .. } => EventType::MessageUpdate,
        Proposed::RemoveMessage { .. } => EventType::MessageRemove,
        Proposed::UpdateUser { .. } => EventType::UserUpdate,
    }
}

/// The outcome word journaled, and what the caller does.
fn judge(event: EventType, a: &Answer) -> (&'static str, Result<Option<Modifications>, Rejection>) {
    match a.status {
        Some(status) if status >= 400 => (
            "rejected",
            Err(Rejection {
                event,
                hook_status: status,
            }),
        ),
        Some(status) if (200..300).contains(&status) => match Modifications::parse(event, &a.body) {
            Some(m) => ("modified", Ok(Some(m))),
            None => ("proceeded", Ok(None)),
        },
        Some(_) => ("proceeded", Ok(None)),
        None if a.timed_out => ("timed_out", Ok(None)),
        None => ("unreachable", Ok(None)),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::domain::conversation::NewConversation;

    fn answer(status: Option<u16>, body: &str, timed_out: bool) -> Answer {
        Answer {
            status,
            body: body.into(),
            duration: Duration::ZERO,
            timed_out,
            error: None,
        }
    }

    #[test]
    fn answers_are_judged_as_twilio_judges_them() {
        let e = EventType::MessageAdd;
        assert_eq!(judge(e, &answer(Some(200), "", false)).0, "proceeded");
        assert_eq!(judge(e, &answer(Some(204), "", false)).0, "proceeded");
        assert_eq!(judge(e, &answer(Some(200), "not json", false)).0, "proceeded");
        let (o, r) = judge(e, &answer(Some(200), r#"{"body":"hi","attributes":{"a":1}}"#, false));
        assert_eq!(o, "modified");
        let m = r.unwrap().unwrap();
        assert_eq!(m.body.as_deref(), Some("hi"));
        assert_eq!(m.attributes.as_deref(), Some(r#"{"a":1}"#));
        assert_eq!(judge(e, &answer(Some(403), "", false)).0, "rejected");
        assert_eq!(judge(e, &answer(Some(500), "", false)).0, "rejected");
        assert_eq!(judge(e, &answer(None, "", true)).0, "timed_out");
        assert!(judge(e, &answer(None, "", true)).1.unwrap().is_none());
    }

    #[test]
    fn only_the_fields_of_the_event_modify() {
        assert_eq!(Modifications::parse(EventType::ConversationAdd, r#"{"body":"x"}"#), None);
        let m = Modifications::parse(EventType::ConversationAdd, r#"{"friendly_name":"Renamed"}"#).unwrap();
        let mut c = NewConversation {
            friendly_name: Some("Original".into()),
            ..Default::default()
        };
        m.apply_new_conversation(&mut c);
        assert_eq!(c.friendly_name.as_deref(), Some("Renamed"));
    }
}
