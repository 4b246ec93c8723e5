//! Server actions: each scenario action as a call on the control plane, scoped to the tenant.
//! Connection actions reach the sessions of the target's identity in this tenant; the clock is
//! the tenant's; HTTP faults and init denials apply to the tenant's account only.
use std::time::Duration;

use base64::Engine;
use rehearsal_mock_server::control::actors::{Action, MediaSpec};
use rehearsal_mock_server::control::faults::{HttpFault, HttpRule, InitDenial};
use rehearsal_mock_server::control::sessions::Target as SessionTarget;
use rehearsal_mock_server::control::{ClockAction, Control, Delivery};
use rehearsal_mock_server::twilsock::{CloseCode as WireCloseCode, SessionCommand};
use serde_json::{Map, Value, json};

use super::Play;
use super::commands::media_bytes;
use super::error::ActionError;
use super::tenant;
use crate::format::action::ServerAction;
use crate::format::values::{Actor, CloseCode, Target};

/// The Twilio error code sent with a status when a scenario gives none.
fn default_code(status: u16) -> u32 {
    20000 + u32::from(status)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn attributes(a: &Option<Map<String, Value>>) -> Option<String> {
    a.as_ref().map(|m| Value::Object(m.clone()).to_string())
}

/// Runs one action; returns what it did (for the step's detail) or why it could not. A session
/// command also leaves its [`Delivery`] in `delivered`, for the play to wait on.
pub(crate) async fn run(play: &Play<'_>, action: &ServerAction, delivered: &mut Option<Delivery>) -> Result<Value, ActionError> {
    let control: &Control = play.control;
    let account = play.tenant.account.as_str();
    let target = |t: &Target| -> Result<SessionTarget, ActionError> {
        let identity = match t {
            Target::Client(name) => play.client(name)?.identity().to_owned(),
            Target::Identity(i) => i.clone(),
        };
        Ok(SessionTarget {
            account: account.to_owned(),
            session: None,
            identity: Some(identity),
        })
    };
    let everyone = || SessionTarget {
        account: account.to_owned(),
        session: None,
        identity: None,
    };
    // The play then waits for the sessions to acknowledge it (`Play::run_step`).
    let mut command = |t: SessionTarget, cmd: SessionCommand| -> Result<Value, ActionError> {
        let name = cmd.name();
        let delivery = control.command(&t, cmd);
        let reached = delivery.reached();
        *delivered = Some(delivery);
        Ok(json!({ "command": name, "sessions": reached }))
    };
    let clock = |a: ClockAction| -> Result<Value, ActionError> {
        let view = control.clock_action(Some(account), a)?;
        serde_json::to_value(view).map_err(ActionError::Render)
    };
    let act = async |actor: Option<&Actor>, a: Action| -> Result<Value, ActionError> {
        control
            .act(account, actor.and_then(Actor::identity), a)
            .await
            .map_err(ActionError::from)
    };
    let message = |conversation: &str, r| -> Result<String, ActionError> {
        Ok(tenant::message_index(control, account, conversation, r)?.to_string())
    };
    let http = |method: Option<String>, path: &str, count: u32, fault: HttpFault| -> Result<Value, ActionError> {
        let id = control.arm_http(HttpRule {
            id: 0,
            account: Some(account.to_owned()),
            method,
            path: path.to_owned(),
            count,
            fault,
        })?;
        Ok(json!({ "rule": id }))
    };
    match action {
        ServerAction::Drop(a) => command(target(&a.target)?, SessionCommand::Drop),
        ServerAction::Close(a) => {
            let code = match a.code {
                CloseCode::Offload => WireCloseCode::Offload,
                CloseCode::Unauthorized => WireCloseCode::Unauthorized,
                CloseCode::NotAcceptable => WireCloseCode::CannotParse,
                CloseCode::TokenExpired => WireCloseCode::TokenExpired,
                CloseCode::ExpectationFailed => WireCloseCode::CannotParseReply,
            };
            command(target(&a.target)?, SessionCommand::close(code, a.backoff.map(millis)))
        }
        ServerAction::WarnTokenExpiry(a) => command(target(&a.target)?, SessionCommand::WarnTokenExpiry),
        ServerAction::ExpireToken(a) => command(target(&a.target)?, SessionCommand::ExpireTokenNow),
        ServerAction::HoldNotifications(a) => command(target(&a.target)?, SessionCommand::HoldNotifications),
        ServerAction::ReleaseNotifications(a) => command(target(&a.target)?, SessionCommand::ReleaseNotifications),
        ServerAction::Stall(a) => command(target(&a.target)?, SessionCommand::Stall),
        ServerAction::Unstall(a) => command(target(&a.target)?, SessionCommand::Unstall),
        ServerAction::InjectFrame(a) => command(
            target(&a.target)?,
            SessionCommand::SendRaw(bytes::Bytes::copy_from_slice(a.raw.as_bytes())),
        ),
        ServerAction::Latency(a) => {
            let t = match &a.target {
                Some(t) => target(t)?,
                None => everyone(),
            };
            command(t, SessionCommand::SetLatency(a.by))
        }
        ServerAction::DenyInits(a) => {
            let identity = match &a.target {
                Some(t) => target(t)?.identity,
                None => None,
            };
            let id = control.deny_inits(InitDenial {
                id: 0,
                account: Some(account.to_owned()),
                identity,
                count: a.count,
                status: a.status,
                error_code: a.error_code.unwrap_or_else(|| default_code(a.status)),
                description: None,
                backoff_ms: a.backoff.map(millis),
            });
            Ok(json!({ "denial": id }))
        }
        ServerAction::RefuseConnections(a) => {
            control.refuse_connections(account, a.duration)?;
            Ok(json!({ "for_ms": millis(a.duration) }))
        }
        ServerAction::Freeze(_) => clock(ClockAction::Freeze { at: None }),
        ServerAction::Advance(a) => clock(ClockAction::Advance { by_ms: millis(a.by) }),
        ServerAction::Resume(_) => clock(ClockAction::Resume),
        ServerAction::FailRequests(a) => http(
            a.method.map(|m| format!("{m:?}").to_uppercase()),
            &a.path,
            a.count,
            HttpFault::Fail {
                status: a.status,
                code: a.code.unwrap_or_else(|| default_code(a.status)),
                message: None,
            },
        ),
        ServerAction::DelayRequests(a) => http(
            a.method.map(|m| format!("{m:?}").to_uppercase()),
            &a.path,
            a.count,
            HttpFault::Delay { by: a.by },
        ),
        ServerAction::FailUploads(a) => http(
            Some("POST".into()),
            "/v1/Services/*/Media",
            a.count,
            HttpFault::Fail {
                status: a.status,
                code: a.code.unwrap_or_else(|| default_code(a.status)),
                message: None,
            },
        ),
        // "Never answered" within any scenario: an hour's delay (the request is dropped with
        // the connection when the client gives up).
        ServerAction::StallUploads(a) => http(
            Some("POST".into()),
            "/v1/Services/*/Media",
            a.count.unwrap_or(1),
            HttpFault::Delay {
                by: Duration::from_secs(3600),
            },
        ),
        ServerAction::Post(a) => {
            let media = match &a.media {
                Some(m) => Some(MediaSpec {
                    content_type: m.content_type.clone(),
                    filename: m.filename.clone(),
                    base64: Some(base64::engine::general_purpose::STANDARD.encode(media_bytes(m, &play.loaded.fixtures)?)),
                    size: None,
                }),
                None => None,
            };
            act(
                Some(&a.actor),
                Action::Post {
                    conversation: a.conversation.clone(),
                    body: a.body.clone(),
                    attributes: attributes(&a.attributes),
                    media,
                },
            )
            .await
        }
        ServerAction::Edit(a) => {
            act(
                Some(&a.actor),
                Action::Edit {
                    conversation: a.conversation.clone(),
                    message: message(&a.conversation, a.message)?,
                    body: a.body.clone(),
                    attributes: attributes(&a.attributes),
                },
            )
            .await
        }
        ServerAction::RemoveMessage(a) => {
            act(
                Some(&a.actor),
                Action::RemoveMessage {
                    conversation: a.conversation.clone(),
                    message: message(&a.conversation, a.message)?,
                },
            )
            .await
        }
        ServerAction::Typing(a) => {
            act(
                Some(&a.actor),
                Action::Typing {
                    conversation: a.conversation.clone(),
                },
            )
            .await
        }
        ServerAction::Join(a) => {
            act(
                Some(&a.actor),
                Action::Join {
                    conversation: a.conversation.clone(),
                },
            )
            .await
        }
        ServerAction::Leave(a) => {
            act(
                Some(&a.actor),
                Action::Leave {
                    conversation: a.conversation.clone(),
                },
            )
            .await
        }
        ServerAction::AddParticipant(a) => {
            act(
                Some(&a.actor),
                Action::AddParticipant {
                    conversation: a.conversation.clone(),
                    identity: a.identity.clone(),
                    attributes: None,
                },
            )
            .await
        }
        ServerAction::RemoveParticipant(a) => {
            act(
                Some(&a.actor),
                Action::RemoveParticipant {
                    conversation: a.conversation.clone(),
                    identity: a.identity.clone(),
                },
            )
            .await
        }
        ServerAction::CreateConversation(a) => {
            act(
                Some(&a.actor),
                Action::CreateConversation {
                    unique_name: Some(a.unique_name.clone()),
                    friendly_name: a.friendly_name.clone(),
                    attributes: attributes(&a.attributes),
                    participants: a.participants.clone(),
                },
            )
            .await
        }
        ServerAction::DeleteConversation(a) => {
            act(
                Some(&a.actor),
                Action::DeleteConversation {
                    conversation: a.conversation.clone(),
                },
            )
            .await
        }
        ServerAction::UpdateConversation(a) => {
            act(
                Some(&a.actor),
                Action::UpdateConversation {
                    conversation: a.conversation.clone(),
                    friendly_name: a.friendly_name.clone(),
                    attributes: attributes(&a.attributes),
                },
            )
            .await
        }
        ServerAction::GenerateMessages(a) => {
            // Without `as`, the participants take turns (as the format says).
            let authors = match &a.actor {
                Some(_) => Vec::new(),
                None => tenant::conversation(control, account, &a.conversation, |c| {
                    c.participants.iter().filter_map(|(_, p)| p.identity.clone()).collect()
                })
                .unwrap_or_default(),
            };
            act(
                a.actor.as_ref(),
                Action::GenerateMessages {
                    conversation: a.conversation.clone(),
                    count: u64::from(a.count),
                    authors,
                    body_prefix: None,
                },
            )
            .await
        }
        ServerAction::SetReadHorizon(a) => {
            let index = tenant::message_index(control, account, &a.conversation, a.index)?;
            act(
                Some(&a.actor),
                Action::SetReadHorizon {
                    conversation: a.conversation.clone(),
                    index: Some(index),
                },
            )
            .await
        }
    }
}

/// `drop alice`, `post general`, `advance 3m` — for step descriptions.
pub(crate) fn describe(action: &ServerAction) -> String {
    let mut s = format!("server {}", action.name());
    match action.target() {
        Some(Target::Client(c)) => s.push_str(&format!(" {c}")),
        Some(Target::Identity(i)) => s.push_str(&format!(" identity {i}")),
        None => {}
    }
    if let Some(c) = action.conversation() {
        s.push_str(&format!(" {c}"));
    }
    if let ServerAction::Advance(a) = action {
        s.push_str(&format!(" {}", crate::format::duration::format(a.by)));
    }
    s
}
