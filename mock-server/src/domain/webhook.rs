//! Webhook configuration: where Twilio would call the customer's backend, as stored state.
//!
//! Three levels, as on Twilio: the account-wide configuration (`/v1/Configuration/Webhooks`,
//! kept in [`super::Configuration`]), one per service (`/v1/Services/{sid}/Configuration/Webhooks`,
//! kept in [`ChatService::webhooks`]) and up to five conversation-scoped webhooks (WH…, kept in
//! [`super::conversation::ConversationEntry::webhooks`]). This is data only: calling the URLs is
//! the `webhooks` module's business.
use serde::{Deserialize, Serialize};

use super::collection::Keyed;
use super::{ChatService, Ctx, DomainError, Resource};
use crate::clock::Millis;

/// The SID prefix of conversation-scoped webhooks.
pub const SID_PREFIX: &str = "WH";

/// Twilio's limit of conversation-scoped webhooks per conversation.
pub const MAX_SCOPED_PER_CONVERSATION: usize = 5;

/// Every event a filter may name, pre-action events first. `onDeliveryUpdated` is accepted in
/// filters but never fires: Rehearsal has no delivery receipts (no SMS or WhatsApp channels).
pub const EVENT_NAMES: &[&str] = &[
    "onConversationAdd",
    "onConversationUpdate",
    "onConversationRemove",
    "onMessageAdd",
    "onMessageUpdate",
    "onMessageRemove",
    "onParticipantAdd",
    "onParticipantUpdate",
    "onParticipantRemove",
    "onUserUpdate",
    "onConversationAdded",
    "onConversationUpdated",
    "onConversationRemoved",
    "onConversationStateUpdated",
    "onMessageAdded",
    "onMessageUpdated",
    "onMessageRemoved",
    "onParticipantAdded",
    "onParticipantUpdated",
    "onParticipantRemoved",
    "onUserAdded",
    "onUserUpdated",
    "onDeliveryUpdated",
];

/// Whether `name` is a post-action event (conversation-scoped webhooks only take these).
pub fn is_post_action(name: &str) -> bool {
    EVENT_NAMES.contains(&name) && (name.ends_with("ed") || name == "onConversationStateUpdated")
}

/// Account-wide or per-service webhook targets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookConfig {
    pub pre_webhook_url: Option<String>,
    pub post_webhook_url: Option<String>,
    /// `GET` or `POST`; unset means `POST`.
    pub method: Option<String>,
    /// Events that fire; Twilio sends nothing for an event not listed here.
    #[serde(default)]
    pub filters: Vec<String>,
    /// Account level only: `webhook` or `flex`.
    #[serde(default)]
    pub target: Option<String>,
}

impl HookConfig {
    /// Whether this level has any URL (a service's configuration then overrides the account's).
    pub fn is_configured(&self) -> bool {
        self.pre_webhook_url.is_some() || self.post_webhook_url.is_some()
    }

    /// Nothing set at all (kept out of snapshots, so older state files compare equal).
    pub fn is_unset(&self) -> bool {
        *self == HookConfig::default()
    }

    pub fn method_or_default(&self) -> &str {
        self.method.as_deref().unwrap_or("POST")
    }

    pub fn fires(&self, event: &str) -> bool {
        self.filters.iter().any(|f| f == event)
    }
}

/// An update of a [`HookConfig`]: each `Some` is set; an empty URL clears it.
#[derive(Debug, Clone, Default)]
pub struct HookConfigUpdate {
    pub pre_webhook_url: Option<String>,
    pub post_webhook_url: Option<String>,
    pub method: Option<String>,
    pub filters: Option<Vec<String>>,
    pub target: Option<String>,
}

impl HookConfigUpdate {
    /// Validates and applies the update (`with_target`: the account level has a `Target`).
    pub fn apply(self, to: &mut HookConfig, with_target: bool) -> Result<(), DomainError> {
        let method = self.method.map(|m| parse_method(&m, "Method")).transpose()?;
        if let Some(f) = &self.filters {
            for name in f {
                if !EVENT_NAMES.contains(&name.as_str()) {
                    return Err(DomainError::invalid("Filters", format!("Filters: {name:?} is not a webhook event")));
                }
            }
        }
        let target = match self.target.filter(|t| !t.is_empty()) {
            Some(t) if with_target && (t == "webhook" || t == "flex") => Some(t),
            Some(t) => return Err(DomainError::invalid("Target", format!("Target must be webhook or flex; got {t:?}"))),
            None => None,
        };
        let pre = self.pre_webhook_url.map(|u| check_url(u, "PreWebhookUrl")).transpose()?;
        let post = self.post_webhook_url.map(|u| check_url(u, "PostWebhookUrl")).transpose()?;
        if let Some(u) = pre {
            to.pre_webhook_url = u;
        }
        if let Some(u) = post {
            to.post_webhook_url = u;
        }
        if let Some(m) = method {
            to.method = Some(m.to_ascii_uppercase());
        }
        if let Some(f) = self.filters {
            to.filters = f;
        }
        if let Some(t) = target {
            to.target = Some(t);
        }
        Ok(())
    }
}

/// The first path segment reserved for the server itself (its control plane lives under
/// `/_rehearsal/v1`). No webhook may point there: deliveries come from the server, a loopback
/// peer, and must not become a way for one tenant to drive the control plane (reset another
/// tenant, say).
const RESERVED_SEGMENT: &str = "_rehearsal";

/// Whether `url` is an http(s) URL whose path lies under the server's reserved prefix, however
/// it is spelled: parsed as the HTTP client will send it (dot segments resolved, `\` read as
/// `/`), percent-decoded, repeated slashes and case ignored.
pub fn reaches_reserved_path(url: &str) -> bool {
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return false;
    };
    let decoded = percent_encoding::percent_decode_str(parsed.path()).decode_utf8_lossy();
    let first = decoded.trim_start_matches(['/', '\\']).split(['/', '\\']).next().unwrap_or("");
    first.eq_ignore_ascii_case(RESERVED_SEGMENT)
}

/// `Some(url)` for an absolute http(s) URL, `None` for an empty value (clears it).
fn check_url(url: String, param: &'static str) -> Result<Option<String>, DomainError> {
    if url.is_empty() {
        return Ok(None);
    }
    if reaches_reserved_path(&url) {
        return Err(DomainError::invalid(
            param,
            format!("{param} may not point at the server's own /{RESERVED_SEGMENT}/ control plane; got {url:?}"),
        ));
    }
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(Some(url))
    } else {
        Err(DomainError::invalid(
            param,
            format!("{param} must be an absolute http(s) URL; got {url:?}"),
        ))
    }
}

fn parse_method(m: &str, param: &'static str) -> Result<String, DomainError> {
    match m.to_ascii_uppercase().as_str() {
        "GET" | "POST" => Ok(m.to_ascii_lowercase()),
        _ => Err(DomainError::invalid(param, format!("{param} must be GET or POST; got {m:?}"))),
    }
}

/// A conversation-scoped webhook (WH…): post-action events of one conversation only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScopedWebhook {
    pub sid: String,
    pub conversation_sid: String,
    /// `webhook`, `trigger` or `studio`.
    pub target: String,
    pub url: Option<String>,
    /// Lowercase, as Twilio renders it: `get` or `post`.
    pub method: String,
    /// Post-action events (target `webhook`).
    #[serde(default)]
    pub filters: Vec<String>,
    /// Keywords (target `trigger`): a new message whose body contains one as a word fires.
    #[serde(default)]
    pub triggers: Vec<String>,
    pub flow_sid: Option<String>,
    pub replay_after: Option<u64>,
    pub date_created: Millis,
    pub date_updated: Millis,
}

impl Keyed for ScopedWebhook {
    fn sid(&self) -> &str {
        &self.sid
    }
}

impl ScopedWebhook {
    /// Whether this webhook fires for a post-action `event` (`body`: the message's, for triggers).
    pub fn fires(&self, event: &str, body: Option<&str>) -> bool {
        match self.target.as_str() {
            "webhook" => self.filters.iter().any(|f| f == event),
            "trigger" => {
                event == "onMessageAdded"
                    && body.is_some_and(|b| {
                        b.split(|c: char| !c.is_alphanumeric())
                            .any(|w| self.triggers.iter().any(|t| t.eq_ignore_ascii_case(w)))
                    })
            }
            // Studio flows do not run offline.
            _ => false,
        }
    }
}

/// `Configuration.*` parameters of a conversation-scoped webhook.
#[derive(Debug, Clone, Default)]
pub struct ScopedWebhookParams {
    pub target: Option<String>,
    pub url: Option<String>,
    pub method: Option<String>,
    pub filters: Option<Vec<String>>,
    pub triggers: Option<Vec<String>>,
    pub flow_sid: Option<String>,
    pub replay_after: Option<u64>,
}

/// Twilio's codes for conversation-scoped webhooks.
pub mod codes {
    /// The webhook SID is not one of this conversation's.
    pub const NOT_FOUND: u32 = 50360;
    /// `Target` is not `webhook`, `trigger` or `studio`.
    pub const INVALID_TARGET: u32 = 50364;
    /// A `Configuration.Filters` value is not a (post-action) event.
    pub const INVALID_FILTER: u32 = 50365;
    /// A `Configuration.Triggers` keyword is empty or longer than 248 characters.
    pub const INVALID_TRIGGER: u32 = 50366;
    /// `Target` is missing.
    pub const TARGET_MISSING: u32 = 50368;
    /// `Configuration.Filters` is missing (target `webhook`).
    pub const FILTER_MISSING: u32 = 50370;
    /// `Configuration.Triggers` is missing (target `trigger`).
    pub const TRIGGER_MISSING: u32 = 50371;
}

fn bad(code: u32, message: impl Into<String>) -> DomainError {
    DomainError::LimitReached {
        code,
        message: message.into(),
    }
}

fn validate(w: &ScopedWebhook) -> Result<(), DomainError> {
    match w.target.as_str() {
        "webhook" => {
            if w.filters.is_empty() {
                return Err(bad(codes::FILTER_MISSING, "Configuration.Filters is required for target webhook"));
            }
            if let Some(f) = w.filters.iter().find(|f| !is_post_action(f)) {
                return Err(bad(
                    codes::INVALID_FILTER,
                    format!("Configuration.Filters: {f:?} is not a post-action webhook event"),
                ));
            }
        }
        "trigger" => {
            if w.triggers.is_empty() {
                return Err(bad(codes::TRIGGER_MISSING, "Configuration.Triggers is required for target trigger"));
            }
            if let Some(t) = w.triggers.iter().find(|t| t.is_empty() || t.chars().count() > 248) {
                return Err(bad(
                    codes::INVALID_TRIGGER,
                    format!("Configuration.Triggers: invalid keyword {t:?}"),
                ));
            }
        }
        "studio" => {
            if !w.flow_sid.as_deref().is_some_and(|f| crate::sid::is_sid(f, "FW")) {
                return Err(DomainError::invalid(
                    "Configuration.FlowSid",
                    "Configuration.FlowSid (FW…) is required for target studio",
                ));
            }
        }
        other => {
            return Err(bad(
                codes::INVALID_TARGET,
                format!("Target must be webhook, trigger or studio; got {other:?}"),
            ));
        }
    }
    if w.target != "studio" && w.url.is_none() {
        return Err(DomainError::invalid(
            "Configuration.Url",
            format!("Configuration.Url is required for target {}", w.target),
        ));
    }
    Ok(())
}

impl ChatService {
    pub fn scoped_webhook(&self, conversation: &str, sid: &str) -> Result<&ScopedWebhook, DomainError> {
        self.conversation(conversation)?
            .webhooks
            .get(sid)
            .ok_or_else(|| DomainError::not_found(Resource::Webhook, format!("/Conversations/{conversation}/Webhooks/{sid}")))
    }

    pub fn create_scoped_webhook(
        &mut self,
        cx: &mut Ctx<'_>,
        conversation: &str,
        p: ScopedWebhookParams,
    ) -> Result<ScopedWebhook, DomainError> {
        let seq = self.conversation_seq(conversation)?;
        let target = p
            .target
            .filter(|t| !t.is_empty())
            .ok_or_else(|| bad(codes::TARGET_MISSING, "Target is required"))?;
        let url = p.url.map(|u| check_url(u, "Configuration.Url")).transpose()?.flatten();
        let method = p.method.map(|m| parse_method(&m, "Configuration.Method")).transpose()?;
        let entry = self.conversations.get_seq_mut(seq).expect("seq from lookup");
        if entry.webhooks.len() >= MAX_SCOPED_PER_CONVERSATION {
            // Closest documented code: Twilio's generic invalid-parameter answer.
            return Err(DomainError::LimitReached {
                code: 20001,
                message: format!("A conversation has at most {MAX_SCOPED_PER_CONVERSATION} webhooks"),
            });
        }
        let w = ScopedWebhook {
            sid: cx.sids.next(SID_PREFIX),
            conversation_sid: entry.conversation.sid.clone(),
            target,
            url,
            method: method.unwrap_or_else(|| "post".into()),
            filters: p.filters.unwrap_or_default(),
            triggers: p.triggers.unwrap_or_default(),
            flow_sid: p.flow_sid.filter(|f| !f.is_empty()),
            replay_after: p.replay_after,
            date_created: cx.now,
            date_updated: cx.now,
        };
        validate(&w)?;
        entry.webhooks.insert(w.clone());
        Ok(w)
    }

    pub fn update_scoped_webhook(
        &mut self,
        cx: &mut Ctx<'_>,
        conversation: &str,
        sid: &str,
        p: ScopedWebhookParams,
    ) -> Result<ScopedWebhook, DomainError> {
        let mut w = self.scoped_webhook(conversation, sid)?.clone();
        if let Some(u) = p.url {
            w.url = check_url(u, "Configuration.Url")?;
        }
        if let Some(m) = p.method {
            w.method = parse_method(&m, "Configuration.Method")?;
        }
        if let Some(f) = p.filters {
            w.filters = f;
        }
        if let Some(t) = p.triggers {
            w.triggers = t;
        }
        if let Some(f) = p.flow_sid {
            w.flow_sid = Some(f).filter(|f| !f.is_empty());
        }
        w.date_updated = cx.now;
        validate(&w)?;
        let seq = self.conversation_seq(conversation)?;
        let entry = self.conversations.get_seq_mut(seq).expect("seq from lookup");
        let wseq = entry.webhooks.seq_of_sid(&w.sid).expect("looked up above");
        *entry.webhooks.get_seq_mut(wseq).expect("seq from lookup") = w.clone();
        Ok(w)
    }

    pub fn remove_scoped_webhook(&mut self, conversation: &str, sid: &str) -> Result<ScopedWebhook, DomainError> {
        let found = self.scoped_webhook(conversation, sid)?.sid.clone();
        let seq = self.conversation_seq(conversation)?;
        let entry = self.conversations.get_seq_mut(seq).expect("seq from lookup");
        let wseq = entry.webhooks.seq_of_sid(&found).expect("looked up above");
        Ok(entry.webhooks.remove_seq(wseq).expect("seq from lookup"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reserved_prefix_is_found_however_it_is_spelled() {
        for url in [
            "http://127.0.0.1:1/_rehearsal/v1/tenants/AC1/reset",
            "http://localhost:1/_REHEARSAL/v1/state",
            "http://127.0.0.1:1/%5Frehearsal/v1/clock",
            "http://127.0.0.1:1/%5frehearsal%2Fv1/clock",
            "http://127.0.0.1:1/a/../_rehearsal/v1/clock",
            "http://127.0.0.1:1//_rehearsal/v1/clock",
            "http://127.0.0.1:1\\_rehearsal\\v1\\clock",
            "https://example.com/_rehearsal",
        ] {
            assert!(reaches_reserved_path(url), "{url}");
            assert!(check_url(url.to_owned(), "PostWebhookUrl").is_err(), "{url}");
        }
        for url in [
            "http://127.0.0.1:1/hooks/_rehearsal",
            "http://127.0.0.1:1/_rehearsals",
            "http://x/",
            "not a url",
        ] {
            assert!(!reaches_reserved_path(url), "{url}");
        }
    }

    #[test]
    fn post_action_names_are_told_apart() {
        assert!(is_post_action("onMessageAdded"));
        assert!(is_post_action("onConversationStateUpdated"));
        assert!(is_post_action("onUserAdded"));
        assert!(!is_post_action("onMessageAdd"));
        assert!(!is_post_action("onUserUpdate"));
        assert!(!is_post_action("onMessageSent"));
    }

    #[test]
    fn a_config_update_validates_before_it_changes_anything() {
        let mut c = HookConfig::default();
        let bad = HookConfigUpdate {
            pre_webhook_url: Some("http://x/pre".into()),
            filters: Some(vec!["onNothing".into()]),
            ..Default::default()
        };
        assert!(bad.apply(&mut c, false).is_err());
        assert_eq!(c, HookConfig::default());
        HookConfigUpdate {
            pre_webhook_url: Some("http://x/pre".into()),
            method: Some("get".into()),
            filters: Some(vec!["onMessageAdd".into()]),
            ..Default::default()
        }
        .apply(&mut c, false)
        .unwrap();
        assert_eq!(c.method.as_deref(), Some("GET"));
        assert!(c.fires("onMessageAdd") && !c.fires("onMessageAdded"));
    }

    #[test]
    fn triggers_match_whole_words_case_insensitively() {
        let w = ScopedWebhook {
            sid: "WH1".into(),
            conversation_sid: "CH1".into(),
            target: "trigger".into(),
            url: Some("http://x".into()),
            method: "post".into(),
            filters: vec![],
            triggers: vec!["help".into()],
            flow_sid: None,
            replay_after: None,
            date_created: Millis(0),
            date_updated: Millis(0),
        };
        assert!(w.fires("onMessageAdded", Some("I need HELP!")));
        assert!(!w.fires("onMessageAdded", Some("helpful")));
        assert!(!w.fires("onMessageUpdated", Some("help")));
    }
}
