//! `state`: what the server holds at the end.
use std::collections::BTreeMap;
use std::fmt::Write;

use serde_json::{Value, json};

use super::{Judged, pattern_text, truncate};
use crate::engine::Play;
use crate::engine::tenant;
use crate::format::expect::StateExpect;
use crate::format::matching::matches;

pub(super) fn state(play: &Play<'_>, x: &StateExpect) -> Judged {
    let mut expected = format!("conversation {}", x.conversation);
    let mut parts = Vec::new();
    if let Some(e) = x.exists {
        parts.push(if e { "exists".to_owned() } else { "does not exist".to_owned() });
    }
    if let Some(f) = &x.friendly_name {
        parts.push(format!("is named {f:?}"));
    }
    if let Some(a) = &x.attributes {
        parts.push(format!("has attributes{}", pattern_text(Some(a))));
    }
    if let Some(p) = &x.participants {
        parts.push(format!("has exactly the participants {}", p.join(", ")));
    }
    if let Some(n) = x.message_count {
        parts.push(format!("holds {n} messages"));
    }
    if let Some(m) = &x.last_message {
        parts.push(format!("ends with a message{}", pattern_text(Some(m))));
    }
    if let Some(h) = &x.read_horizon {
        let hs: Vec<String> = h.iter().map(|(k, v)| format!("{k} at {v}")).collect();
        parts.push(format!("has read horizons {}", hs.join(", ")));
    }
    write!(expected, " {}", parts.join(", ")).ok();

    let snapshot = tenant::conversation(play.control, &play.tenant.account, &x.conversation, |c| {
        let mut participants: Vec<String> = c.participants.iter().filter_map(|(_, p)| p.identity.clone()).collect();
        participants.sort();
        let horizons: BTreeMap<String, Option<u64>> = c
            .participants
            .iter()
            .filter_map(|(_, p)| Some((p.identity.clone()?, p.last_read_message_index)))
            .collect();
        let last = c.messages.iter().next_back().map(|(_, m)| {
            json!({
                "index": m.index, "author": m.author, "body": m.body, "attributes": m.attributes,
                "media": m.media.iter().map(|x| json!({ "sid": x.sid, "content_type": x.content_type, "size": x.size, "filename": x.filename })).collect::<Vec<_>>(),
            })
        });
        json!({
            "sid": c.conversation.sid,
            "friendly_name": c.conversation.friendly_name,
            "attributes": c.conversation.attributes,
            "participants": participants,
            "message_count": c.messages.len(),
            "last_message": last,
            "read_horizon": horizons,
        })
    });
    let mut problems = Vec::new();
    match (&snapshot, x.exists) {
        (None, Some(false)) => {}
        (None, _) => problems.push("it does not exist".to_owned()),
        (Some(_), Some(false)) => problems.push("it still exists".to_owned()),
        (Some(s), _) => {
            if let Some(f) = &x.friendly_name {
                if s["friendly_name"].as_str() != Some(f.as_str()) {
                    problems.push(format!("it is named {}", s["friendly_name"]));
                }
            }
            if let Some(a) = &x.attributes {
                if !matches(&Value::Object(a.clone()), &s["attributes"]) {
                    problems.push(format!("its attributes are {}", s["attributes"]));
                }
            }
            if let Some(p) = &x.participants {
                let mut want = p.clone();
                want.sort();
                if s["participants"] != json!(want) {
                    problems.push(format!("its participants are {}", s["participants"]));
                }
            }
            if let Some(n) = x.message_count {
                if s["message_count"].as_u64() != Some(n) {
                    problems.push(format!("it holds {} messages", s["message_count"]));
                }
            }
            if let Some(m) = &x.last_message {
                if !matches(&Value::Object(m.clone()), &s["last_message"]) {
                    problems.push(format!("its last message is {}", truncate(&s["last_message"].to_string(), 300)));
                }
            }
            if let Some(h) = &x.read_horizon {
                for (identity, want) in h {
                    let got = s["read_horizon"].get(identity);
                    if got.and_then(Value::as_u64) != Some(*want) {
                        problems.push(format!(
                            "{identity}'s read horizon is {}",
                            got.map_or("absent (not a participant)".to_owned(), Value::to_string)
                        ));
                    }
                }
            }
        }
    }
    let passed = problems.is_empty();
    Judged {
        passed,
        expected,
        actual: problems.join("; "),
        evidence: snapshot.into_iter().collect(),
        fin: false,
    }
}
