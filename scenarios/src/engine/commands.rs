//! Client commands as the driver protocol writes them (`harness/PROTOCOL.md`): the scenario's
//! command with everything resolved that only the engine knows — token URLs and tokens, the
//! conversation's SID, `first`/`last` message indices, media bytes, attributes as JSON text.
use base64::Engine;
use serde_json::{Map, Value, json};

use super::Play;
use super::error::{CommandError, MediaError};
use super::tenant::{self, Names};
use crate::format::command::ClientCommand;
use crate::format::{Client, Media, TokenKind};

/// The protocol's `{cmd, client, …}` for a scenario command.
pub(crate) fn body(play: &Play<'_>, command: &ClientCommand) -> Result<Value, CommandError> {
    let client = command.client();
    let mut b = Map::new();
    b.insert("cmd".into(), protocol_name(command).into());
    b.insert("client".into(), client.into());
    let conversation = |b: &mut Map<String, Value>, name: &str| {
        // A SID works for every command, also for a conversation the client is not in yet
        // (the SDK finds only its own conversations by unique name).
        let sid = Names::current_sid(play.control, &play.tenant.account, name).unwrap_or_else(|| name.to_owned());
        b.insert("conversation".into(), sid.into());
    };
    let index = |name: &str, r| tenant::message_index(play.control, &play.tenant.account, name, r);
    match command {
        ClientCommand::Connect(_) => {
            let c = play.client(client)?;
            b.insert("identity".into(), c.identity().into());
            b.insert("token_url".into(), play.token_url(c).into());
            b.insert("twilsock_url".into(), play.twilsock_url.clone().into());
        }
        ClientCommand::UpdateToken(u) => {
            let c = play.client(client)?;
            b.insert("token".into(), play.minter.mint(c.identity(), c.token_ttl(), u.token).into());
        }
        ClientCommand::ListConversations(_) | ClientCommand::Shutdown(_) => {}
        ClientCommand::Join(j) => conversation(&mut b, &j.conversation),
        ClientCommand::Leave(l) => conversation(&mut b, &l.conversation),
        ClientCommand::Create(c) => {
            b.insert("unique_name".into(), c.unique_name.clone().into());
            if let Some(f) = &c.friendly_name {
                b.insert("friendly_name".into(), f.clone().into());
            }
            if let Some(a) = &c.attributes {
                b.insert("attributes".into(), Value::Object(a.clone()).to_string().into());
            }
        }
        ClientCommand::Send(s) => {
            conversation(&mut b, &s.conversation);
            if let Some(t) = &s.text {
                b.insert("text".into(), t.clone().into());
            }
            if let Some(a) = &s.attributes {
                b.insert("attributes".into(), Value::Object(a.clone()).to_string().into());
            }
            if let Some(m) = &s.media {
                let bytes = media_bytes(m, &play.loaded.fixtures)?;
                let mut media = json!({
                    "content_type": m.content_type,
                    "base64": base64::engine::general_purpose::STANDARD.encode(&bytes),
                });
                if let Some(f) = &m.filename {
                    media["filename"] = f.clone().into();
                }
                b.insert("media".into(), media);
            }
        }
        ClientCommand::PageMessages(p) => {
            conversation(&mut b, &p.conversation);
            b.insert("page_size".into(), p.page_size.into());
            if let Some(a) = p.anchor {
                b.insert("anchor".into(), index(&p.conversation, a)?.into());
            }
            let direction = match p.direction {
                crate::format::command::Direction::Backwards => "backwards",
                crate::format::command::Direction::Forwards => "forwards",
            };
            b.insert("direction".into(), direction.into());
            b.insert("pages".into(), p.pages.count().into());
        }
        ClientCommand::Edit(e) => {
            conversation(&mut b, &e.conversation);
            b.insert("index".into(), index(&e.conversation, e.index)?.into());
            b.insert("text".into(), e.text.clone().into());
        }
        ClientCommand::Remove(r) => {
            conversation(&mut b, &r.conversation);
            b.insert("index".into(), index(&r.conversation, r.index)?.into());
        }
        ClientCommand::Typing(t) => conversation(&mut b, &t.conversation),
        ClientCommand::SetReadHorizon(s) => {
            conversation(&mut b, &s.conversation);
            b.insert("index".into(), s.index.to_protocol());
        }
        ClientCommand::GetMedia(g) => {
            conversation(&mut b, &g.conversation);
            b.insert("index".into(), index(&g.conversation, g.index)?.into());
        }
    }
    Ok(Value::Object(b))
}

/// The command's name in the protocol (the format uses the protocol's names).
pub(crate) fn protocol_name(command: &ClientCommand) -> &'static str {
    command.name()
}

/// The bytes a media spec stands for: `size` deterministic bytes (the control plane's pattern),
/// `base64`, or a fixture file loaded with the scenario.
pub(crate) fn media_bytes(m: &Media, fixtures: &std::collections::BTreeMap<String, Vec<u8>>) -> Result<Vec<u8>, MediaError> {
    if let Some(size) = m.size {
        let size = usize::try_from(size).map_err(|_| MediaError::TooLarge(size))?;
        return Ok((0..size).map(|i| (i % 251) as u8).collect());
    }
    if let Some(b64) = &m.base64 {
        return base64::engine::general_purpose::STANDARD.decode(b64).map_err(MediaError::Base64);
    }
    if let Some(f) = &m.fixture {
        return fixtures.get(f).cloned().ok_or_else(|| MediaError::NoFixture(f.clone()));
    }
    Err(MediaError::Empty)
}

/// Whether a client gets its first token from the engine (not the tenant's token endpoint).
pub(crate) fn starts_with_literal_token(c: &Client) -> bool {
    c.token != TokenKind::Fresh
}
