//! The scenario's tenant: created from its seed with fresh credentials, read for names, message
//! references and final state, deleted at the end. Everything goes through the control plane
//! (`Control`) and the tenant's own account: nothing here touches another tenant or the server
//! clock.
use super::error::{MessageRefError, SeedError, SetupError};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use rehearsal_mock_server::control::{Control, NewTenant};
use rehearsal_mock_server::domain::conversation::ConversationEntry;
use serde_json::{Map, Value};

use crate::format::{MessageRef, Seed};
use crate::load::Loaded;

/// The tenant's credentials.
#[derive(Debug, Clone)]
pub(crate) struct Tenant {
    pub account: String,
    pub auth_token: String,
    pub api_key: String,
    pub api_secret: String,
    pub service: String,
    /// Lets the development token endpoint serve this tenant (`key=` in its token URLs).
    pub token_key: String,
}

impl Tenant {
    pub(crate) fn of(c: rehearsal_mock_server::server::Credentials) -> Tenant {
        Tenant {
            account: c.account_sid,
            auth_token: c.auth_token,
            api_key: c.api_key,
            api_secret: c.api_secret,
            service: c.service_sid,
            token_key: c.token_key,
        }
    }

    /// The tenant's development token endpoint on the server at `base_url`, for a client to
    /// append `&identity=…`.
    pub(crate) fn token_url(&self, base_url: &str) -> String {
        format!("{base_url}/token?account={}&key={}", self.account, self.token_key)
    }
}

/// The seed document a scenario starts from: its own, or the server's default.
fn seed_document(loaded: &Loaded) -> Result<Value, SeedError> {
    match &loaded.seed {
        Some(doc) => Ok(doc.clone()),
        None => serde_json::from_str(crate::load::DEFAULT_SEED).map_err(SeedError::DefaultSeed),
    }
}

/// The one account of the seed, without what must be fresh for every tenant (SIDs and
/// credentials), with the scenario's generated history added.
pub(crate) fn tenant_seed(loaded: &Loaded) -> Result<Value, SeedError> {
    let mut account = first_account(&seed_document(loaded)?).ok_or(SeedError::NoAccount)?;
    let obj = account.as_object_mut().ok_or(SeedError::AccountNotObject)?;
    for key in ["sid", "auth_token", "api_keys"] {
        obj.remove(key);
    }
    if let Some(service) = obj.get_mut("service").and_then(Value::as_object_mut) {
        service.remove("sid");
    }
    add_generated(obj, &loaded.scenario.seed)?;
    Ok(account)
}

/// The seed document `rehearsal serve --scenario` starts from: the scenario's account (its own
/// seed or the default one, with its generated history) under the default seed's SIDs and
/// credentials, so an app configured for `rehearsal serve` works unchanged whatever the
/// scenario.
pub fn serve_seed(loaded: &Loaded) -> Result<Value, SeedError> {
    let mut account = tenant_seed(loaded)?;
    let mut doc: Value = serde_json::from_str(crate::load::DEFAULT_SEED).map_err(SeedError::DefaultSeed)?;
    let default = first_account(&doc).ok_or(SeedError::DefaultHasNoAccount)?;
    let obj = account.as_object_mut().ok_or(SeedError::AccountNotObject)?;
    for key in ["sid", "auth_token", "api_keys"] {
        if let Some(v) = default.get(key) {
            obj.insert(key.into(), v.clone());
        }
    }
    if let (Some(sid), Some(service)) = (
        default.pointer("/service/sid"),
        obj.get_mut("service").and_then(Value::as_object_mut),
    ) {
        service.insert("sid".into(), sid.clone());
    }
    doc["accounts"] = Value::Array(vec![account]);
    Ok(doc)
}

fn first_account(doc: &Value) -> Option<Value> {
    doc.get("accounts").and_then(Value::as_array).and_then(|a| a.first()).cloned()
}

fn add_generated(account: &mut Map<String, Value>, seed: &Seed) -> Result<(), SeedError> {
    for g in &seed.generate_messages {
        let conversation = account
            .get_mut("conversations")
            .and_then(Value::as_array_mut)
            .and_then(|list| {
                list.iter_mut()
                    .find(|c| c.get("unique_name").and_then(Value::as_str) == Some(g.conversation.as_str()))
            })
            .and_then(Value::as_object_mut)
            .ok_or_else(|| SeedError::NoConversation(g.conversation.clone()))?;
        let before = conversation.get("generate_messages").and_then(Value::as_u64).unwrap_or(0);
        conversation.insert("generate_messages".into(), (before + u64::from(g.count)).into());
    }
    Ok(())
}

/// Creates the tenant of a scenario.
pub(crate) fn create(control: &Control, loaded: &Loaded, rng_seed: Option<u64>) -> Result<Tenant, SetupError> {
    let seed = tenant_seed(loaded)?;
    let created = control
        .create_tenant(NewTenant {
            seed: Some(seed),
            rng_seed,
        })
        .map_err(SetupError::Tenant)?;
    Ok(Tenant::of(created.credentials))
}

/// Reads the tenant's default service.
pub(crate) fn read<R>(control: &Control, account: &str, f: impl FnOnce(&rehearsal_mock_server::domain::ChatService) -> R) -> Option<R> {
    control.read(account, |s| f(s.default_service())).ok()
}

/// Reads one conversation (by SID or unique name) of the tenant.
pub(crate) fn conversation<R>(control: &Control, account: &str, name: &str, f: impl FnOnce(&ConversationEntry) -> R) -> Option<R> {
    read(control, account, |svc| svc.conversations.get(name).map(f)).flatten()
}

/// The index a message reference stands for now: `first`/`last` existing message, or the index.
pub(crate) fn message_index(control: &Control, account: &str, conversation_name: &str, r: MessageRef) -> Result<u64, MessageRefError> {
    match r {
        MessageRef::Index(i) => Ok(i),
        MessageRef::First | MessageRef::Last => {
            let found = conversation(control, account, conversation_name, |c| match r {
                MessageRef::First => c.messages.first_seq(),
                _ => c.messages.last_seq(),
            })
            .ok_or_else(|| MessageRefError::NoConversation(conversation_name.to_owned()))?;
            found.ok_or_else(|| MessageRefError::NoMessages(conversation_name.to_owned()))
        }
    }
}

/// Conversation unique names and the SIDs they have stood for during the play: a deleted
/// conversation's SID stays known, so events about it still match its name.
#[derive(Default)]
pub(crate) struct Names {
    by_name: Mutex<BTreeMap<String, BTreeSet<String>>>,
}

impl Names {
    /// Learns the tenant's current conversations.
    pub fn refresh(&self, control: &Control, account: &str) {
        let found: Vec<(String, String)> = read(control, account, |svc| {
            svc.conversations
                .iter()
                .filter_map(|(_, c)| Some((c.conversation.unique_name.clone()?, c.conversation.sid.clone())))
                .collect()
        })
        .unwrap_or_default();
        let mut names = self.by_name.lock().unwrap_or_else(|e| e.into_inner());
        for (name, sid) in found {
            names.entry(name).or_default().insert(sid);
        }
    }

    /// A copy to match with.
    pub fn snapshot(&self) -> BTreeMap<String, BTreeSet<String>> {
        self.by_name.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The current SID of `name` (the conversation's unique name), if it exists now.
    pub fn current_sid(control: &Control, account: &str, name: &str) -> Option<String> {
        conversation(control, account, name, |c| c.conversation.sid.clone())
    }
}
