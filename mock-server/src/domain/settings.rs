//! An account's settings: its services, their configuration, the account-wide configuration and
//! webhook targets. Twilio vets none of these with a pre-action webhook, so they are
//! synchronous; like every other change they run under the account's write lock and emit a
//! [`DomainEvent`] that observers see before the lock is released.
use super::conversation::check_sid_param;
use super::service::Cause;
use super::webhook::{HookConfig, HookConfigUpdate};
use super::{Account, ChatService, Configuration, DomainError, DomainEvent, Resource};

/// `POST /v1/Services/{sid}/Configuration`: each `Some` is set.
#[derive(Debug, Clone, Default)]
pub struct ServiceSettings {
    pub default_conversation_creator_role_sid: Option<String>,
    pub default_conversation_role_sid: Option<String>,
    pub default_service_role_sid: Option<String>,
    pub reachability_enabled: Option<bool>,
}

/// `POST /v1/Configuration`: each `Some` is set (an empty timer clears it).
#[derive(Debug, Clone, Default)]
pub struct AccountSettings {
    pub default_service: Option<String>,
    pub default_messaging_service_sid: Option<String>,
    pub default_inactive_timer: Option<String>,
    pub default_closed_timer: Option<String>,
}

/// Whose webhook targets a [`HookConfigUpdate`] changes.
#[derive(Debug, Clone, Copy)]
pub enum HookLevel<'a> {
    /// Account-wide (`/v1/Configuration/Webhooks`; has a `Target`).
    Account,
    /// One service (`/v1/Services/{sid}/Configuration/Webhooks`; `None`: the default service).
    Service(Option<&'a str>),
}

fn service_mut<'s>(services: &'s mut super::Collection<ChatService>, sid: &str) -> Result<&'s mut ChatService, DomainError> {
    let seq = services
        .seq_of_sid(sid)
        .ok_or_else(|| DomainError::not_found(Resource::Service, format!("/Services/{sid}")))?;
    Ok(services.get_seq_mut(seq).expect("seq from lookup"))
}

impl Account {
    /// Adds a service with Twilio's default roles.
    pub fn create_service(&self, cause: &Cause, friendly_name: &str) -> Result<ChatService, DomainError> {
        self.write_settings(cause, |s, now, events| {
            let svc = s.create_service(friendly_name, now);
            events.push(DomainEvent::ServiceAdded { service: svc.sid.clone() });
            Ok(svc)
        })
    }

    /// Removes a service and its content; the default service cannot go.
    pub fn remove_service(&self, cause: &Cause, sid: &str) -> Result<(), DomainError> {
        self.write_settings(cause, |s, _, events| {
            if s.default_service == sid {
                return Err(DomainError::invalid(
                    "ChatServiceSid",
                    "the account's default Conversations service cannot be deleted; make another service the default first",
                ));
            }
            let seq = s
                .services
                .seq_of_sid(sid)
                .ok_or_else(|| DomainError::not_found(Resource::Service, format!("/Services/{sid}")))?;
            s.services.remove_seq(seq);
            events.push(DomainEvent::ServiceRemoved { service: sid.to_owned() });
            Ok(())
        })
    }

    /// Changes a service's default roles and reachability; yields the service as it is now.
    pub fn configure_service(&self, cause: &Cause, sid: &str, settings: ServiceSettings) -> Result<ChatService, DomainError> {
        self.write_settings(cause, |s, now, events| {
            let svc = service_mut(&mut s.services, sid)?;
            let roles = [
                &settings.default_conversation_creator_role_sid,
                &settings.default_conversation_role_sid,
                &settings.default_service_role_sid,
            ];
            for r in roles.into_iter().flatten() {
                svc.role_param(r, "RoleSid")?;
            }
            if let Some(r) = settings.default_conversation_creator_role_sid {
                svc.default_conversation_creator_role_sid = r;
            }
            if let Some(r) = settings.default_conversation_role_sid {
                svc.default_conversation_role_sid = r;
            }
            if let Some(r) = settings.default_service_role_sid {
                svc.default_service_role_sid = r;
            }
            if let Some(b) = settings.reachability_enabled {
                svc.reachability_enabled = b;
            }
            svc.date_updated = now;
            events.push(DomainEvent::ServiceUpdated { service: sid.to_owned() });
            Ok(svc.clone())
        })
    }

    /// Changes the account-wide configuration; yields the default service's SID and the
    /// configuration as they are now.
    pub fn configure(&self, cause: &Cause, settings: AccountSettings) -> Result<(String, Configuration), DomainError> {
        self.write_settings(cause, |s, _, events| {
            if let Some(d) = settings.default_service {
                if s.services.seq_of_sid(&d).is_none() {
                    return Err(DomainError::invalid(
                        "DefaultChatServiceSid",
                        format!("Conversations service {d} was not found"),
                    ));
                }
                s.default_service = d;
            }
            if let Some(m) = settings.default_messaging_service_sid {
                // `^MG[0-9a-fA-F]{32}$` in Twilio's OpenAPI description of `POST /v1/Configuration`.
                check_sid_param(
                    Some(&m),
                    crate::sid::MESSAGING_SERVICE,
                    "DefaultMessagingServiceSid",
                    "a Messaging Service SID",
                )?;
                s.configuration.default_messaging_service_sid = Some(m);
            }
            if let Some(t) = settings.default_inactive_timer {
                s.configuration.default_inactive_timer = Some(t).filter(|t| !t.is_empty());
            }
            if let Some(t) = settings.default_closed_timer {
                s.configuration.default_closed_timer = Some(t).filter(|t| !t.is_empty());
            }
            events.push(DomainEvent::ConfigurationUpdated);
            Ok((s.default_service.clone(), s.configuration.clone()))
        })
    }

    /// Changes the webhook targets of the account or of one service (validated as a whole: a
    /// bad update changes nothing); yields them as they are now.
    pub fn configure_webhooks(&self, cause: &Cause, level: HookLevel<'_>, update: HookConfigUpdate) -> Result<HookConfig, DomainError> {
        self.write_settings(cause, |s, _, events| match level {
            HookLevel::Account => {
                let mut c = s.configuration.webhooks.clone();
                update.apply(&mut c, true)?;
                s.configuration.webhooks = c.clone();
                events.push(DomainEvent::ConfigurationUpdated);
                Ok(c)
            }
            HookLevel::Service(sid) => {
                let sid = sid.unwrap_or(&s.default_service).to_owned();
                let svc = service_mut(&mut s.services, &sid)?;
                let mut c = svc.webhooks.clone();
                update.apply(&mut c, false)?;
                svc.webhooks = c.clone();
                events.push(DomainEvent::ServiceUpdated { service: sid });
                Ok(c)
            }
        })
    }
}
