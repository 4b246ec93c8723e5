//! Tenants: isolated accounts created from a seed (kept, so that a reset rebuilds the same
//! tenant), reset, deleted, exported and imported; reading and configuring them.
use serde::Serialize;
use serde_json::{Value, json};

use super::{Control, ControlError};
use crate::domain::seed::{Seed, SeedAccount, SeedError};
use crate::domain::settings::HookLevel;
use crate::domain::snapshot::ImportError;
use crate::domain::webhook::{HookConfig, HookConfigUpdate};
use crate::domain::{AccountState, Cause};
use crate::journal::Kind;
use crate::server::Credentials;

/// 32 lowercase hex digits (128 bits) from the operating system's random source.
fn os_random_hex() -> Result<String, ControlError> {
    let mut bytes = [0u8; 16];
    fill_os_random(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Fills `bytes` from the operating system's random source. Without one the server cannot make
/// a secret nobody could guess, so it refuses rather than hand out a weak one.
fn fill_os_random(bytes: &mut [u8]) -> Result<(), ControlError> {
    use rand::TryRngCore;
    rand::rngs::OsRng
        .try_fill_bytes(bytes)
        .map_err(|e| ControlError::Invalid(format!("no secret could be drawn from the OS random source: {e}")))
}

/// What a new tenant looks like.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTenant {
    /// The tenant's content in the seed format (one account; credentials and SIDs it leaves
    /// out are generated). Default: the default seed's content with fresh credentials.
    #[serde(default)]
    pub seed: Option<Value>,
    /// Makes generated SIDs and secrets reproducible (for tests that compare runs). Without
    /// it, the auth token and API key are drawn from the OS random source.
    #[serde(default)]
    pub rng_seed: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Tenant {
    #[serde(flatten)]
    pub credentials: Credentials,
}

impl Control {
    /// Creates an isolated account with its own credentials and content.
    pub fn create_tenant(&self, req: NewTenant) -> Result<Tenant, ControlError> {
        let n = self.counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut account: SeedAccount = match req.seed {
            Some(v) => serde_json::from_value(v).map_err(|e| ControlError::Seed(SeedError::Parse(e)))?,
            None => {
                let mut a = Seed::default_seed().accounts.remove(0);
                a.sid = None;
                a.auth_token = None;
                a.api_keys = Vec::new();
                if let Some(s) = a.service.as_mut() {
                    s.sid = None;
                }
                a
            }
        };
        let rng = match req.rng_seed {
            // Asked for: everything the seed leaves out, secrets included, follows from it.
            Some(seed) => seed,
            None => {
                // Secrets drawn from the OS, never derived from a seed someone could guess (a
                // creation time can be brute-forced from the account SID in seconds).
                if account.auth_token.is_none() {
                    account.auth_token = Some(os_random_hex()?);
                }
                if account.api_keys.is_empty() {
                    account.api_keys.push(crate::domain::ApiKey {
                        sid: format!("{}{}", crate::sid::API_KEY, os_random_hex()?),
                        secret: os_random_hex()?,
                        friendly_name: None,
                    });
                }
                let mut bytes = [0u8; 8];
                fill_os_random(&mut bytes)?;
                u64::from_le_bytes(bytes) ^ n.rotate_left(32)
            }
        };
        let seed = Seed {
            format: crate::domain::seed::FORMAT,
            description: None,
            rng_seed: rng,
            accounts: vec![account.clone()],
        };
        let sid = seed.apply(&self.domain)?.remove(0);
        // Pin the generated credentials so a reset rebuilds the same tenant.
        let created = self.domain.account(&sid).ok_or_else(|| ControlError::NoTenant(sid.clone()))?;
        account.sid = Some(created.sid.clone());
        account.auth_token = Some(created.auth_token.clone());
        account.api_keys = created.api_keys.clone();
        let service_sid = created.read(|s| s.default_service.clone());
        match account.service.as_mut() {
            Some(s) => s.sid = Some(service_sid),
            None => {
                account.service = Some(crate::domain::seed::SeedService {
                    sid: Some(service_sid),
                    friendly_name: None,
                })
            }
        }
        self.remember_seed(&sid, account);
        self.record(Kind::Control, Some(&sid), "tenant created".into(), json!({}));
        self.tenant(&sid)
    }

    pub fn tenant(&self, sid: &str) -> Result<Tenant, ControlError> {
        Credentials::of(&self.domain, sid)
            .map(|credentials| Tenant { credentials })
            .ok_or_else(|| ControlError::NoTenant(sid.to_owned()))
    }

    /// Rebuilds a tenant from its seed: same credentials, fresh content; live sessions dropped.
    pub fn reset_tenant(&self, sid: &str) -> Result<Tenant, ControlError> {
        let seed = self
            .seeds
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(sid)
            .cloned()
            .ok_or_else(|| ControlError::NoTenant(sid.to_owned()))?;
        self.teardown(sid);
        let s = Seed {
            format: crate::domain::seed::FORMAT,
            description: None,
            rng_seed: 0,
            accounts: vec![seed],
        };
        s.apply(&self.domain)?;
        self.record(Kind::Control, Some(sid), "tenant reset".into(), json!({}));
        self.tenant(sid)
    }

    pub fn delete_tenant(&self, sid: &str) -> Result<(), ControlError> {
        if self.domain.account(sid).is_none() {
            return Err(ControlError::NoTenant(sid.to_owned()));
        }
        self.teardown(sid);
        self.seeds.lock().unwrap_or_else(|e| e.into_inner()).remove(sid);
        self.journal.forget_account(sid);
        self.near_misses.clear(Some(sid));
        Ok(())
    }

    fn teardown(&self, sid: &str) {
        self.sessions.drop_account(sid);
        self.domain.remove_account(sid);
        self.hub.reset_account(sid);
        self.faults.clear(Some(sid));
    }

    /// Exports one tenant as a versioned snapshot.
    pub fn export(&self, sid: &str) -> Result<Value, ControlError> {
        if self.domain.account(sid).is_none() {
            return Err(ControlError::NoTenant(sid.to_owned()));
        }
        serde_json::to_value(self.domain.export(Some(&[sid.to_owned()]))).map_err(|e| ControlError::Invalid(e.to_string()))
    }

    /// Imports a snapshot (replacing tenants with the same SIDs; their sessions are dropped).
    pub fn import(&self, snapshot: &str) -> Result<Vec<String>, ControlError> {
        let imported = self.domain.import_json(snapshot)?;
        for sid in &imported {
            self.sessions.drop_account(sid);
            self.hub.reset_account(sid);
        }
        Ok(imported)
    }

    /// Whether the tenant exists.
    pub fn has_tenant(&self, sid: &str) -> bool {
        self.domain.account(sid).is_some()
    }

    /// Reads a tenant's state (under its read lock: keep `f` short, and never call back into
    /// the control plane from it).
    pub fn read<R>(&self, account: &str, f: impl FnOnce(&AccountState) -> R) -> Result<R, ControlError> {
        let acc = self
            .domain
            .account(account)
            .ok_or_else(|| ControlError::NoTenant(account.to_owned()))?;
        Ok(acc.read(f))
    }

    /// Changes the webhook targets of a tenant's default service, as
    /// `POST /v1/Services/{sid}/Configuration/Webhooks` does.
    pub fn configure_webhooks(&self, account: &str, update: HookConfigUpdate) -> Result<HookConfig, ControlError> {
        let acc = self
            .domain
            .account(account)
            .ok_or_else(|| ControlError::NoTenant(account.to_owned()))?;
        acc.configure_webhooks(&Cause::api(false), HookLevel::Service(None), update)
            .map_err(|e| ControlError::Invalid(e.to_string()))
    }

    /// Mints an access token for `identity` in a tenant, signed with its first API key, on the
    /// tenant's clock; `None` if there is no such tenant.
    pub fn mint_token(&self, account: &str, identity: &str, ttl_secs: u64) -> Option<Result<String, crate::auth::identity::MintError>> {
        let acc = self.domain.account(account)?;
        Some(crate::auth::identity::mint_for(&acc, identity, ttl_secs))
    }

    /// Every tenant (account), by SID.
    pub fn tenants(&self) -> Vec<Tenant> {
        self.domain.accounts().iter().filter_map(|a| self.tenant(&a.sid).ok()).collect()
    }

    /// Exports every tenant: the format of `rehearsal serve --state`.
    pub fn export_all(&self) -> Result<Value, ControlError> {
        serde_json::to_value(self.domain.export(None)).map_err(|e| ControlError::Invalid(e.to_string()))
    }

    /// Imports a snapshot of exactly one tenant, `sid` (created or replaced). A snapshot from a
    /// newer format is refused before anything else is looked at.
    pub fn import_tenant(&self, sid: &str, snapshot: &str) -> Result<(), ControlError> {
        let probe: Value = serde_json::from_str(snapshot).map_err(ImportError::Parse)?;
        let newer = probe
            .get("format")
            .and_then(Value::as_u64)
            .is_some_and(|f| f > u64::from(crate::domain::snapshot::FORMAT));
        if !newer {
            let parsed: crate::domain::snapshot::Snapshot = serde_json::from_value(probe).map_err(ImportError::Parse)?;
            let sids: Vec<&str> = parsed.accounts.iter().map(|a| a.sid.as_str()).collect();
            if sids != [sid] {
                return Err(ControlError::Invalid(format!(
                    "the snapshot must hold exactly the account {sid}; it holds {sids:?}"
                )));
            }
        }
        self.import(snapshot)?;
        self.record(Kind::Control, Some(sid), "tenant imported".into(), json!({}));
        Ok(())
    }
}
