//! Snapshots: the whole state of accounts as versioned JSON, for `--state` files and the
//! control plane's export/import. Import refuses a snapshot from a newer format.
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::account::{Account, Configuration};
use super::collection::Collection;
use super::{ApiKey, ChatService, CreateAccountError, Domain};
use crate::sid::{SidGen, SidGenState};

pub const FORMAT: u32 = 1;
const KIND: &str = "rehearsal-state";

#[derive(Serialize, Deserialize)]
pub struct Snapshot {
    pub kind: String,
    pub format: u32,
    pub accounts: Vec<AccountSnapshot>,
}

#[derive(Serialize, Deserialize)]
pub struct AccountSnapshot {
    pub sid: String,
    pub friendly_name: String,
    pub auth_token: String,
    pub api_keys: Vec<ApiKey>,
    pub default_service: String,
    #[serde(default)]
    pub configuration: Configuration,
    pub sids: SidGenState,
    pub services: Collection<ChatService>,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("not a Rehearsal state snapshot: {0}")]
    Parse(serde_json::Error),
    #[error("not a Rehearsal state snapshot (kind {0:?})")]
    Kind(String),
    #[error("snapshot format {found} is newer than this build understands ({supported}); upgrade Rehearsal")]
    Format { found: u32, supported: u32 },
    #[error("snapshot account {sid} has no default service {service}")]
    NoDefaultService { sid: String, service: String },
    #[error(transparent)]
    Account(#[from] CreateAccountError),
}

// The cause is part of the message (the workspace's convention: Display only, no `source`).
impl From<serde_json::Error> for ImportError {
    fn from(e: serde_json::Error) -> ImportError {
        ImportError::Parse(e)
    }
}

impl Domain {
    /// Exports the given accounts (all when `None`).
    pub fn export(&self, only: Option<&[String]>) -> Snapshot {
        let accounts = self
            .accounts()
            .into_iter()
            .filter(|a| only.is_none_or(|o| o.contains(&a.sid)))
            .map(|a| {
                let sids = a.sid_state();
                a.read(|s| AccountSnapshot {
                    sid: a.sid.clone(),
                    friendly_name: a.friendly_name.clone(),
                    auth_token: a.auth_token.clone(),
                    api_keys: a.api_keys.clone(),
                    default_service: s.default_service.clone(),
                    configuration: s.configuration.clone(),
                    sids,
                    services: s.services.clone(),
                })
            })
            .collect();
        Snapshot {
            kind: KIND.into(),
            format: FORMAT,
            accounts,
        }
    }

    /// Imports a snapshot, replacing accounts with the same SID. Returns the imported SIDs.
    pub fn import(&self, snapshot: Snapshot) -> Result<Vec<String>, ImportError> {
        if snapshot.kind != KIND {
            return Err(ImportError::Kind(snapshot.kind));
        }
        if snapshot.format > FORMAT {
            return Err(ImportError::Format {
                found: snapshot.format,
                supported: FORMAT,
            });
        }
        let mut imported = Vec::new();
        for a in snapshot.accounts {
            if a.services.get(&a.default_service).is_none() {
                return Err(ImportError::NoDefaultService {
                    sid: a.sid,
                    service: a.default_service,
                });
            }
            let state = Account::from_parts(a.services, a.default_service, a.configuration, SidGen::resume(&a.sids));
            let account = Arc::new(Account::new(
                a.sid.clone(),
                a.friendly_name,
                a.auth_token,
                a.api_keys,
                state,
                self.shared(),
            ));
            self.remove_account(&a.sid);
            self.insert_account(account)?;
            imported.push(a.sid);
        }
        Ok(imported)
    }

    pub fn import_json(&self, text: &str) -> Result<Vec<String>, ImportError> {
        let probe: serde_json::Value = serde_json::from_str(text)?;
        if let Some(f) = probe.get("format").and_then(|f| f.as_u64()) {
            if f > u64::from(FORMAT) {
                return Err(ImportError::Format {
                    found: f as u32,
                    supported: FORMAT,
                });
            }
        }
        self.import(serde_json::from_value(probe)?)
    }
}

#[cfg(test)]
mod tests {
    use crate::clock::{Clock, Millis};
    use crate::domain::seed::Seed;
    use crate::domain::{Domain, Limits};

    #[test]
    fn export_import_round_trip_keeps_everything() {
        let d = Domain::new(Clock::frozen_at(Millis(1_700_000_000_000)), Limits::default());
        Seed::default_seed().apply(&d).unwrap();
        let text = serde_json::to_string(&d.export(None)).unwrap();
        let d2 = Domain::new(Clock::frozen_at(Millis(1_700_000_000_000)), Limits::default());
        d2.import_json(&text).unwrap();
        assert_eq!(text, serde_json::to_string(&d2.export(None)).unwrap());
    }

    #[test]
    fn newer_format_refused() {
        let d = Domain::new(Clock::system(), Limits::default());
        let err = d.import_json(r#"{"kind":"rehearsal-state","format":2,"accounts":[]}"#).unwrap_err();
        assert!(err.to_string().contains("newer"), "{err}");
    }
}
