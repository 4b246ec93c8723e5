//! Users (US…): identities known to a service.
use serde::{Deserialize, Serialize};

use super::collection::Keyed;
use super::error::codes;
use super::{ChatService, Ctx, DomainError, DomainEvent, Resource, check_attributes, check_friendly_name};
use crate::clock::Millis;
use crate::sid;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    pub sid: String,
    pub identity: String,
    pub friendly_name: Option<String>,
    pub attributes: String,
    pub role_sid: String,
    pub is_online: Option<bool>,
    pub is_notifiable: Option<bool>,
    pub date_created: Millis,
    pub date_updated: Millis,
}

impl Keyed for User {
    fn sid(&self) -> &str {
        &self.sid
    }
    fn name(&self) -> Option<&str> {
        Some(&self.identity)
    }
}

#[derive(Debug, Clone, Default)]
pub struct NewUser {
    pub identity: String,
    pub friendly_name: Option<String>,
    pub attributes: Option<String>,
    pub role_sid: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct UserUpdate {
    pub friendly_name: Option<String>,
    pub attributes: Option<String>,
    pub role_sid: Option<String>,
    pub is_online: Option<bool>,
}

impl ChatService {
    pub fn create_user(&mut self, cx: &mut Ctx<'_>, req: NewUser) -> Result<User, DomainError> {
        if req.identity.is_empty() {
            return Err(DomainError::invalid("Identity", "Identity is required"));
        }
        if self.users.seq_of_name(&req.identity).is_some() {
            return Err(DomainError::Conflict {
                code: codes::USER_EXISTS,
                message: format!("User with provided identity already exists: {}", req.identity),
            });
        }
        let attributes = check_attributes(req.attributes.as_deref(), "Attributes", cx.limits.user_attributes_bytes)?;
        check_friendly_name(req.friendly_name.as_deref(), cx.limits)?;
        let role_sid = match req.role_sid {
            Some(r) => self.role_param(&r, "RoleSid")?.sid.clone(),
            None => self.default_service_role_sid.clone(),
        };
        let user = User {
            sid: cx.sids.next(sid::USER),
            identity: req.identity,
            friendly_name: req.friendly_name.filter(|f| !f.is_empty()),
            attributes,
            role_sid,
            is_online: if self.reachability_enabled { Some(false) } else { None },
            is_notifiable: None,
            date_created: cx.now,
            date_updated: cx.now,
        };
        self.users.insert(user.clone());
        cx.emit(DomainEvent::UserAdded {
            service: self.sid.clone(),
            user: user.sid.clone(),
        });
        Ok(user)
    }

    pub fn update_user(&mut self, cx: &mut Ctx<'_>, sid_or_identity: &str, req: UserUpdate) -> Result<User, DomainError> {
        let seq = self
            .users
            .seq_of(sid_or_identity)
            .ok_or_else(|| DomainError::not_found(Resource::User, format!("/Users/{sid_or_identity}")))?;
        let attributes = match &req.attributes {
            Some(a) => Some(check_attributes(Some(a), "Attributes", cx.limits.user_attributes_bytes)?),
            None => None,
        };
        check_friendly_name(req.friendly_name.as_deref(), cx.limits)?;
        let role_sid = match &req.role_sid {
            Some(r) => Some(self.role_param(r, "RoleSid")?.sid.clone()),
            None => None,
        };
        let reachability = self.reachability_enabled;
        let u = self.users.get_seq_mut(seq).expect("seq from lookup");
        if let Some(f) = req.friendly_name {
            u.friendly_name = Some(f).filter(|f| !f.is_empty());
        }
        if let Some(a) = attributes {
            u.attributes = a;
        }
        if let Some(r) = role_sid {
            u.role_sid = r;
        }
        if let (Some(o), true) = (req.is_online, reachability) {
            u.is_online = Some(o);
        }
        u.date_updated = cx.now;
        let out = u.clone();
        cx.emit(DomainEvent::UserUpdated {
            service: self.sid.clone(),
            user: out.sid.clone(),
        });
        Ok(out)
    }

    pub fn remove_user(&mut self, cx: &mut Ctx<'_>, sid_or_identity: &str) -> Result<User, DomainError> {
        let seq = self
            .users
            .seq_of(sid_or_identity)
            .ok_or_else(|| DomainError::not_found(Resource::User, format!("/Users/{sid_or_identity}")))?;
        let u = self.users.remove_seq(seq).expect("seq from lookup");
        cx.emit(DomainEvent::UserRemoved {
            service: self.sid.clone(),
            identity: u.identity.clone(),
            user: u.sid.clone(),
        });
        Ok(u)
    }
}
