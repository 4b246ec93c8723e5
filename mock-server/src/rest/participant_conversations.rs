//! `/v1/ParticipantConversations?Identity=…|Address=…`: every conversation a chat identity or a
//! messaging address takes part in.
use axum::Json;
use serde_json::{Value, json};

use super::Routes;
use super::conversations::timers_json;
use super::error::ApiError;
use super::form::Query;
use super::paging::{PageRequest, envelope};
use super::participants::binding_json;
use super::scope::Scope;
use crate::domain::DomainError;
use crate::domain::conversation::ConversationEntry;
use crate::domain::participant::Participant;

pub(super) fn routes(r: Routes) -> Routes {
    r.both("/ParticipantConversations", axum::routing::get(list))
}

async fn list(scope: Scope, Query(q): Query) -> Result<Json<Value>, ApiError> {
    let identity = q.string("Identity").filter(|s| !s.is_empty());
    let address = q.string("Address").filter(|s| !s.is_empty());
    if identity.is_none() && address.is_none() {
        return Err(ApiError::invalid("Either Identity or Address must be specified"));
    }
    let limits = scope.account.limits().clone();
    let req = PageRequest::parse(&q, limits.small_page_size_max, limits.default_page_size)?;
    let body = scope.account.read(|s| -> Result<Value, DomainError> {
        let svc = s.service(scope.service.as_deref())?;
        let matches = |p: &Participant| {
            identity.as_deref().is_some_and(|i| p.identity.as_deref() == Some(i))
                || address
                    .as_deref()
                    .is_some_and(|a| p.messaging_binding.as_ref().is_some_and(|b| b.address == a))
        };
        let all: Vec<(u64, (&ConversationEntry, &Participant))> = svc
            .conversations
            .iter()
            .filter_map(|(k, e)| e.participants.iter().map(|(_, p)| p).find(|p| matches(p)).map(|p| (k, (e, p))))
            .collect();
        let slice = req.select_sorted(&all);
        let items = slice
            .items
            .iter()
            .map(|(_, (e, p))| {
                let c = &e.conversation;
                let user_sid = p.identity.as_deref().and_then(|i| svc.users.get(i)).map(|u| u.sid.clone());
                json!({
                    "account_sid": scope.account.sid,
                    "chat_service_sid": scope.service_sid,
                    "participant_sid": p.sid,
                    "participant_user_sid": user_sid,
                    "participant_identity": p.identity,
                    "participant_messaging_binding": binding_json(p),
                    "conversation_sid": c.sid,
                    "conversation_unique_name": c.unique_name,
                    "conversation_friendly_name": c.friendly_name,
                    "conversation_attributes": c.attributes,
                    "conversation_date_created": c.date_created.rfc3339(),
                    "conversation_date_updated": c.date_updated.rfc3339(),
                    "conversation_created_by": c.creator(),
                    "conversation_state": c.state.as_str(),
                    "conversation_timers": timers_json(&c.timers),
                    "links": {
                        "participant": scope.url(&format!("/Conversations/{}/Participants/{}", c.sid, p.sid)),
                        "conversation": scope.url(&format!("/Conversations/{}", c.sid)),
                    },
                })
            })
            .collect();
        let mut extra = Vec::new();
        if let Some(i) = &identity {
            extra.push(("Identity", i.clone()));
        }
        if let Some(a) = &address {
            extra.push(("Address", a.clone()));
        }
        Ok(envelope(
            "conversations",
            &scope.url("/ParticipantConversations"),
            &extra,
            &req,
            &slice,
            items,
        ))
    })?;
    Ok(Json(body))
}
