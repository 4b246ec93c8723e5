//! Seeds: a human-written JSON description of starting state (accounts, users, conversations,
//! history, media) applied through the domain service like any other change.
use base64::Engine;
use serde::Deserialize;

use super::conversation::NewConversation;
use super::message::NewMessage;
use super::participant::NewParticipant;
use super::user::NewUser;
use super::{ApiKey, Domain, DomainError, NewAccount};
use crate::sid;

/// The seed `rehearsal serve` starts with unless told otherwise.
pub const DEFAULT_SEED: &str = include_str!("../../../fixtures/seeds/default.json");

pub const FORMAT: u32 = 1;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seed {
    pub format: u32,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub rng_seed: u64,
    pub accounts: Vec<SeedAccount>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedAccount {
    pub sid: Option<String>,
    pub friendly_name: Option<String>,
    pub auth_token: Option<String>,
    #[serde(default)]
    pub api_keys: Vec<ApiKey>,
    #[serde(default)]
    pub service: Option<SeedService>,
    #[serde(default)]
    pub users: Vec<SeedUser>,
    #[serde(default)]
    pub conversations: Vec<SeedConversation>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedService {
    pub sid: Option<String>,
    pub friendly_name: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedUser {
    pub identity: String,
    pub friendly_name: Option<String>,
    pub attributes: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedConversation {
    pub unique_name: Option<String>,
    pub friendly_name: Option<String>,
    pub attributes: Option<String>,
    #[serde(default)]
    pub participants: Vec<String>,
    #[serde(default)]
    pub messages: Vec<SeedMessage>,
    /// Appends this many generated messages ("message 1", …) by the participants in turn.
    #[serde(default)]
    pub generate_messages: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedMessage {
    pub author: String,
    pub body: Option<String>,
    pub attributes: Option<String>,
    pub media: Option<SeedMedia>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedMedia {
    pub content_type: String,
    pub filename: Option<String>,
    pub base64: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("seed is not valid JSON for the seed format: {0}")]
    Parse(serde_json::Error),
    #[error("seed format {found} is newer than this build understands ({supported})")]
    Format { found: u32, supported: u32 },
    #[error("account {index}: {error}")]
    Account { index: usize, error: super::CreateAccountError },
    #[error("account {account}: {what}: {error}")]
    Apply { account: String, what: String, error: DomainError },
    #[error("account {index}: conversation {conversation}: generate_messages {count} is more than {max}")]
    TooManyGenerated {
        index: usize,
        conversation: String,
        count: u64,
        max: u64,
    },
    #[error("account {account}: media for message {index} of {conversation} is not valid base64")]
    Media {
        account: String,
        conversation: String,
        index: usize,
    },
}

// The cause is part of the message (the workspace's convention: Display only, no `source`).
impl From<serde_json::Error> for SeedError {
    fn from(e: serde_json::Error) -> SeedError {
        SeedError::Parse(e)
    }
}
impl Seed {
    pub fn parse(text: &str) -> Result<Seed, SeedError> {
        let seed: Seed = serde_json::from_str(text)?;
        if seed.format > FORMAT {
            return Err(SeedError::Format {
                found: seed.format,
                supported: FORMAT,
            });
        }
        Ok(seed)
    }

    pub fn default_seed() -> Seed {
        Seed::parse(DEFAULT_SEED).expect("the embedded default seed is valid")
    }

    /// Creates the seed's accounts and their content in `domain`. Returns the account SIDs.
    pub fn apply(&self, domain: &Domain) -> Result<Vec<String>, SeedError> {
        // Checked before anything is created, so a refused seed leaves no half-built account.
        for (index, a) in self.accounts.iter().enumerate() {
            for c in &a.conversations {
                if c.generate_messages > super::limits::MAX_GENERATED_MESSAGES {
                    return Err(SeedError::TooManyGenerated {
                        index,
                        conversation: c.unique_name.clone().or_else(|| c.friendly_name.clone()).unwrap_or_default(),
                        count: c.generate_messages,
                        max: super::limits::MAX_GENERATED_MESSAGES,
                    });
                }
            }
        }
        let mut created = Vec::new();
        for (index, a) in self.accounts.iter().enumerate() {
            let account = domain
                .create_account(NewAccount {
                    sid: a.sid.clone(),
                    friendly_name: a.friendly_name.clone(),
                    auth_token: a.auth_token.clone(),
                    api_keys: a.api_keys.clone(),
                    service_sid: a.service.as_ref().and_then(|s| s.sid.clone()),
                    service_name: a.service.as_ref().and_then(|s| s.friendly_name.clone()),
                    rng_seed: self.rng_seed.wrapping_add(index as u64),
                })
                .map_err(|error| SeedError::Account { index, error })?;
            let acc = account.sid.clone();
            let origin = super::Cause::system();
            let fail = |what: String| {
                let account = acc.clone();
                move |error| SeedError::Apply { account, what, error }
            };
            for u in &a.users {
                account
                    .write(&origin, None, |svc, cx| {
                        svc.create_user(
                            cx,
                            NewUser {
                                identity: u.identity.clone(),
                                friendly_name: u.friendly_name.clone(),
                                attributes: u.attributes.clone(),
                                role_sid: None,
                            },
                        )
                    })
                    .map_err(fail(format!("user {}", u.identity)))?;
            }
            for c in &a.conversations {
                let label = c.unique_name.clone().or_else(|| c.friendly_name.clone()).unwrap_or_default();
                let conv = account
                    .write(&origin, None, |svc, cx| {
                        svc.create_conversation(
                            cx,
                            NewConversation {
                                friendly_name: c.friendly_name.clone(),
                                unique_name: c.unique_name.clone(),
                                attributes: c.attributes.clone(),
                                created_by: Some(crate::domain::SYSTEM_IDENTITY.into()),
                                ..Default::default()
                            },
                        )
                    })
                    .map_err(fail(format!("conversation {label}")))?;
                for p in &c.participants {
                    account
                        .write(&origin, None, |svc, cx| {
                            svc.add_participant(
                                cx,
                                &conv.sid,
                                NewParticipant {
                                    identity: Some(p.clone()),
                                    ..Default::default()
                                },
                            )
                        })
                        .map_err(fail(format!("participant {p} of {label}")))?;
                }
                for (i, m) in c.messages.iter().enumerate() {
                    let media = match &m.media {
                        Some(md) => Some((
                            base64::engine::general_purpose::STANDARD
                                .decode(&md.base64)
                                .map_err(|_| SeedError::Media {
                                    account: account.sid.clone(),
                                    conversation: label.clone(),
                                    index: i,
                                })?,
                            md,
                        )),
                        None => None,
                    };
                    account
                        .write(&origin, None, |svc, cx| {
                            let mut media_sids = Vec::new();
                            if let Some((bytes, md)) = media {
                                let rec = svc.store_media(
                                    cx,
                                    bytes.into(),
                                    md.content_type.clone(),
                                    md.filename.clone(),
                                    "media".into(),
                                    Some(m.author.clone()),
                                );
                                media_sids.push(rec.sid);
                            }
                            svc.add_message(
                                cx,
                                &conv.sid,
                                NewMessage {
                                    author: Some(m.author.clone()),
                                    body: m.body.clone(),
                                    attributes: m.attributes.clone(),
                                    media_sids,
                                    ..Default::default()
                                },
                            )
                        })
                        .map_err(fail(format!("message {i} of {label}")))?;
                }
                for n in 0..c.generate_messages {
                    let author = c
                        .participants
                        .get((n as usize) % c.participants.len().max(1))
                        .cloned()
                        .unwrap_or_else(|| crate::domain::SYSTEM_IDENTITY.into());
                    account
                        .write(&origin, None, |svc, cx| {
                            svc.add_message(
                                cx,
                                &conv.sid,
                                NewMessage {
                                    author: Some(author),
                                    body: Some(format!("message {}", n + 1)),
                                    ..Default::default()
                                },
                            )
                        })
                        .map_err(fail(format!("generated message {n} of {label}")))?;
                }
            }
            created.push(account.sid.clone());
        }
        Ok(created)
    }
}

impl super::ChatService {
    /// Stores uploaded bytes as a media record (MCS upload, seeds).
    pub fn store_media(
        &mut self,
        cx: &mut super::Ctx<'_>,
        bytes: bytes::Bytes,
        content_type: String,
        filename: Option<String>,
        category: String,
        author: Option<String>,
    ) -> super::media::Media {
        let rec = super::media::Media {
            sid: cx.sids.next(sid::MEDIA),
            content_type,
            filename,
            category,
            author,
            conversation_sid: None,
            message_sid: None,
            date_created: cx.now,
            date_updated: cx.now,
            bytes,
        };
        self.media.insert(rec.clone());
        rec
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, Millis};
    use crate::domain::Limits;

    #[test]
    fn default_seed_applies_and_is_deterministic() {
        let sids = |_: ()| {
            let d = Domain::new(Clock::frozen_at(Millis(1_700_000_000_000)), Limits::default());
            let accs = Seed::default_seed().apply(&d).unwrap();
            let a = d.account(&accs[0]).unwrap();
            a.read(|s| {
                s.default_service()
                    .conversations
                    .iter()
                    .map(|(_, c)| c.conversation.sid.clone())
                    .collect::<Vec<_>>()
            })
        };
        let first = sids(());
        assert!(!first.is_empty());
        assert_eq!(first, sids(()));
    }

    #[test]
    fn newer_format_is_refused() {
        let err = Seed::parse(r#"{"format": 99, "accounts": []}"#).unwrap_err();
        assert!(err.to_string().contains("newer"), "{err}");
    }
}
