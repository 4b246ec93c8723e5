//! Server actions: what the control plane does to the tenant while a scenario plays
//! (`[[steps]] server = "…"`). Names mirror `rehearsal_mock_server::control::Control`.
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::duration::{self, DurationText};
use super::tagged::tagged_enum;
use super::values::{Actor, CloseCode, MessageRef, Target};
use super::{HttpMethod, Media};

tagged_enum! {
    /// A control-plane action. Connection actions take a `target`; actor actions take `as`
    /// (`"rest"` or an identity); faults and the clock apply to the tenant.
    pub enum ServerAction, tag "server", what "a server action" {
        "drop" => Drop(DropAction),
        "close" => Close(CloseAction),
        "warn_token_expiry" => WarnTokenExpiry(WarnTokenExpiry),
        "expire_token" => ExpireToken(ExpireToken),
        "deny_inits" => DenyInits(DenyInits),
        "refuse_connections" => RefuseConnections(RefuseConnections),
        "latency" => Latency(Latency),
        "hold_notifications" => HoldNotifications(HoldNotifications),
        "release_notifications" => ReleaseNotifications(ReleaseNotifications),
        "stall" => Stall(Stall),
        "unstall" => Unstall(Unstall),
        "inject_frame" => InjectFrame(InjectFrame),
        "freeze" => Freeze(Freeze),
        "advance" => Advance(Advance),
        "resume" => Resume(Resume),
        "fail_requests" => FailRequests(FailRequests),
        "delay_requests" => DelayRequests(DelayRequests),
        "fail_uploads" => FailUploads(FailUploads),
        "stall_uploads" => StallUploads(StallUploads),
        "post" => Post(Post),
        "edit" => Edit(Edit),
        "remove_message" => RemoveMessage(RemoveMessage),
        "typing" => Typing(Typing),
        "join" => Join(Join),
        "leave" => Leave(Leave),
        "add_participant" => AddParticipant(AddParticipant),
        "remove_participant" => RemoveParticipant(RemoveParticipant),
        "create_conversation" => CreateConversation(CreateConversation),
        "delete_conversation" => DeleteConversation(DeleteConversation),
        "update_conversation" => UpdateConversation(UpdateConversation),
        "generate_messages" => GenerateMessages(GenerateMessages),
        "set_read_horizon" => SetReadHorizon(SetReadHorizon),
    }
}

impl ServerAction {
    /// The connection target, for actions that have one.
    pub fn target(&self) -> Option<&Target> {
        match self {
            ServerAction::Drop(a) => Some(&a.target),
            ServerAction::Close(a) => Some(&a.target),
            ServerAction::WarnTokenExpiry(a) => Some(&a.target),
            ServerAction::ExpireToken(a) => Some(&a.target),
            ServerAction::HoldNotifications(a) => Some(&a.target),
            ServerAction::ReleaseNotifications(a) => Some(&a.target),
            ServerAction::Stall(a) => Some(&a.target),
            ServerAction::Unstall(a) => Some(&a.target),
            ServerAction::InjectFrame(a) => Some(&a.target),
            ServerAction::DenyInits(a) => a.target.as_ref(),
            ServerAction::Latency(a) => a.target.as_ref(),
            _ => None,
        }
    }

    /// Who acts, for actor actions.
    pub fn actor(&self) -> Option<&Actor> {
        match self {
            ServerAction::Post(a) => Some(&a.actor),
            ServerAction::Edit(a) => Some(&a.actor),
            ServerAction::RemoveMessage(a) => Some(&a.actor),
            ServerAction::Typing(a) => Some(&a.actor),
            ServerAction::Join(a) => Some(&a.actor),
            ServerAction::Leave(a) => Some(&a.actor),
            ServerAction::AddParticipant(a) => Some(&a.actor),
            ServerAction::RemoveParticipant(a) => Some(&a.actor),
            ServerAction::CreateConversation(a) => Some(&a.actor),
            ServerAction::DeleteConversation(a) => Some(&a.actor),
            ServerAction::UpdateConversation(a) => Some(&a.actor),
            ServerAction::GenerateMessages(a) => a.actor.as_ref(),
            ServerAction::SetReadHorizon(a) => Some(&a.actor),
            _ => None,
        }
    }

    /// The conversation (unique name) the action reads or changes, if any.
    pub fn conversation(&self) -> Option<&str> {
        match self {
            ServerAction::Post(a) => Some(&a.conversation),
            ServerAction::Edit(a) => Some(&a.conversation),
            ServerAction::RemoveMessage(a) => Some(&a.conversation),
            ServerAction::Typing(a) => Some(&a.conversation),
            ServerAction::Join(a) => Some(&a.conversation),
            ServerAction::Leave(a) => Some(&a.conversation),
            ServerAction::AddParticipant(a) => Some(&a.conversation),
            ServerAction::RemoveParticipant(a) => Some(&a.conversation),
            ServerAction::DeleteConversation(a) => Some(&a.conversation),
            ServerAction::UpdateConversation(a) => Some(&a.conversation),
            ServerAction::GenerateMessages(a) => Some(&a.conversation),
            ServerAction::SetReadHorizon(a) => Some(&a.conversation),
            _ => None,
        }
    }
}

/// Abrupt socket loss, no close handshake (like a network failure): the SDK retries after ~1 s.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DropAction {
    pub target: Target,
}

/// A twilsock `close` packet with `code`; 308 may carry a `backoff` (the SDK's minimum reconnect
/// delay). The SDK stays `disconnecting` for 3 s after any close.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CloseAction {
    pub target: Target,
    pub code: CloseCode,
    #[serde(default, with = "duration::option", skip_serializing_if = "Option::is_none")]
    #[schemars(with = "DurationText")]
    pub backoff: Option<Duration>,
}

/// Send `token_about_to_expire` now (the SDK's `tokenAboutToExpire`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WarnTokenExpiry {
    pub target: Target,
}

/// Act as if the token expired now: `close` 410 (error 20104).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpireToken {
    pub target: Target,
}

/// Answer the next `count` `init`s (of `target`, or of anyone) with `status` and `error_code`.
/// 401/403 make the SDK `denied` (20104 also `tokenExpired`); 429 and 5xx make it retry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DenyInits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
    pub count: u32,
    pub status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<u32>,
    /// Sent as the reply's `backoff_policy.reconnect_min_ms` (meaningful with 429).
    #[serde(default, with = "duration::option", skip_serializing_if = "Option::is_none")]
    #[schemars(with = "DurationText")]
    pub backoff: Option<Duration>,
}

/// Refuse new twilsock connections (the upgrade fails) for a while.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RefuseConnections {
    #[serde(rename = "for", with = "duration")]
    #[schemars(with = "DurationText")]
    pub duration: Duration,
}

/// Delay every frame to `target` (or to every session) by `by`; `by = "0ms"` removes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Latency {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
    #[serde(with = "duration")]
    #[schemars(with = "DurationText")]
    pub by: Duration,
}

/// Queue notifications (Sync pushes, typing) to `target` instead of sending them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HoldNotifications {
    pub target: Target,
}

/// Send what `hold_notifications` queued, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReleaseNotifications {
    pub target: Target,
}

/// Stop writing to `target`'s socket and stop answering it, without closing it (a half-dead
/// connection).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Stall {
    pub target: Target,
}

/// End a `stall`: what was held is written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Unstall {
    pub target: Target,
}

/// Write `raw` (a complete twilsock frame, as text) to `target`'s socket, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InjectFrame {
    pub target: Target,
    pub raw: String,
}

/// Freeze the tenant's clock (token lifetimes, typing timeouts, temporary media URLs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Freeze {}

/// Move the tenant's clock forward by `by`; timers due in between fire in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Advance {
    #[serde(with = "duration")]
    #[schemars(with = "DurationText")]
    pub by: Duration,
}

/// Let the tenant's clock run again from where it stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Resume {}

/// Answer the next `count` HTTP requests (upstream over twilsock and REST) whose path matches
/// the glob `path` (and `method`, if given) with `status` and Twilio error `code`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FailRequests {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<HttpMethod>,
    pub path: String,
    pub count: u32,
    pub status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<u32>,
}

/// Hold the next `count` matching requests for `by` before answering them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DelayRequests {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<HttpMethod>,
    pub path: String,
    pub count: u32,
    #[serde(with = "duration")]
    #[schemars(with = "DurationText")]
    pub by: Duration,
}

/// Answer the next `count` media uploads with `status` (and Twilio error `code`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FailUploads {
    pub count: u32,
    pub status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<u32>,
}

/// Accept the next `count` media uploads (default 1) but never answer them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StallUploads {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
}

/// Post a message as `as` (the author) or over REST.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Post {
    #[serde(rename = "as")]
    pub actor: Actor,
    pub conversation: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<Media>,
}

/// Change a message's body and/or attributes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Edit {
    #[serde(rename = "as")]
    pub actor: Actor,
    pub conversation: String,
    pub message: MessageRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<Map<String, Value>>,
}

/// Remove a message (it leaves a hole in the indices).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RemoveMessage {
    #[serde(rename = "as")]
    pub actor: Actor,
    pub conversation: String,
    pub message: MessageRef,
}

/// `as` (an identity) starts typing in `conversation`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Typing {
    #[serde(rename = "as")]
    pub actor: Actor,
    pub conversation: String,
}

/// `as` (an identity) joins `conversation`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Join {
    #[serde(rename = "as")]
    pub actor: Actor,
    pub conversation: String,
}

/// `as` (an identity) leaves `conversation`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Leave {
    #[serde(rename = "as")]
    pub actor: Actor,
    pub conversation: String,
}

/// Add `identity` to `conversation`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AddParticipant {
    #[serde(rename = "as")]
    pub actor: Actor,
    pub conversation: String,
    pub identity: String,
}

/// Remove `identity` from `conversation`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RemoveParticipant {
    #[serde(rename = "as")]
    pub actor: Actor,
    pub conversation: String,
    pub identity: String,
}

/// Create a conversation; later steps refer to it by `unique_name`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateConversation {
    #[serde(rename = "as")]
    pub actor: Actor,
    pub unique_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub friendly_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<Map<String, Value>>,
    /// Identities added right after creation, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub participants: Vec<String>,
}

/// Delete a conversation (its participants see it go).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteConversation {
    #[serde(rename = "as")]
    pub actor: Actor,
    pub conversation: String,
}

/// Change a conversation's friendly name and/or attributes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateConversation {
    #[serde(rename = "as")]
    pub actor: Actor,
    pub conversation: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub friendly_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<Map<String, Value>>,
}

/// Append `count` messages ("message N"), authored by `as`, or by the participants in turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GenerateMessages {
    #[serde(rename = "as", default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<Actor>,
    pub conversation: String,
    pub count: u32,
}

/// Set `as`'s read horizon (last read message index) in `conversation`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetReadHorizon {
    #[serde(rename = "as")]
    pub actor: Actor,
    pub conversation: String,
    pub index: MessageRef,
}
