//! `pages`: what a client paged through, against what the conversation holds.
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use serde_json::{Value, json};

use super::{Judged, NameMap, Window, truncate};
use crate::engine::Play;
use crate::engine::log::{Records, Reply, Us};
use crate::engine::tenant;
use crate::format::expect::PagesExpect;

/// The indices of the messages that exist now in a conversation.
pub(super) fn existing(play: &Play<'_>, conversation: &str) -> Option<BTreeSet<u64>> {
    tenant::conversation(play.control, &play.tenant.account, conversation, |c| {
        c.messages.iter().map(|(i, _)| i).collect()
    })
}

pub(super) fn pages(play: &Play<'_>, x: &PagesExpect, w: Window, now: Us, r: &Records, names: &NameMap) -> Judged {
    let walks: Vec<(&crate::engine::log::CommandRec, &Value)> = r
        .commands
        .iter()
        .filter(|c| c.cmd == "page_messages" && c.client == x.client)
        .filter(|c| match &x.command {
            Some(label) => c.label.as_deref() == Some(label.as_str()),
            None => {
                w.contains(c.sent_at, now)
                    && c.conversation.as_deref().is_some_and(|name| {
                        name == x.conversation
                            || names
                                .get(&x.conversation)
                                .is_some_and(|sids| c.body.get("conversation").and_then(Value::as_str).is_some_and(|s| sids.contains(s)))
                    })
            }
        })
        .filter_map(|c| match &c.answer {
            Some((_, Reply::Ok(v))) => Some((c, v)),
            _ => None,
        })
        .collect();
    let mut expected = format!("the pages {} fetched from {}", x.client, x.conversation);
    if let Some(l) = &x.command {
        write!(expected, " (command `{l}`)").ok();
    }
    match x.covers {
        Some(c) => write!(expected, " hold every message from {} to {} once", c.from, c.to).ok(),
        None => write!(expected, " hold every message once").ok(),
    };
    if let Some(m) = x.max_page_size {
        write!(expected, ", pages of at most {m}").ok();
    }
    let Some(exists) = existing(play, &x.conversation) else {
        return Judged {
            passed: false,
            expected,
            actual: format!("conversation {} does not exist", x.conversation),
            evidence: Vec::new(),
            fin: false,
        };
    };
    let pages: Vec<Vec<Value>> = walks
        .iter()
        .flat_map(|(_, v)| v.get("pages").and_then(Value::as_array).cloned().unwrap_or_default())
        .map(|p| p.as_array().cloned().unwrap_or_default())
        .collect();
    let mut problems = Vec::new();
    if walks.is_empty() {
        problems.push("no page_messages result".to_owned());
    }
    let mut seen: BTreeMap<u64, usize> = BTreeMap::new();
    for (i, page) in pages.iter().enumerate() {
        let indices: Vec<Option<u64>> = page.iter().map(Value::as_u64).collect();
        if indices.iter().any(Option::is_none) {
            problems.push(format!("page {i} holds something that is not an index"));
            continue;
        }
        let indices: Vec<u64> = indices.into_iter().flatten().collect();
        if let Some(max) = x.max_page_size {
            if indices.len() > max as usize {
                problems.push(format!("page {i} holds {} messages", indices.len()));
            }
        }
        if indices.windows(2).any(|p| p[1] <= p[0]) {
            problems.push(format!("page {i} is not in ascending order"));
        }
        for idx in indices {
            *seen.entry(idx).or_default() += 1;
        }
    }
    let (from, to) = match x.covers {
        Some(c) => (c.from, c.to),
        None => (exists.first().copied().unwrap_or(0), exists.last().copied().unwrap_or(0)),
    };
    let wanted: Vec<u64> = exists.range(from..=to).copied().collect();
    let missing: Vec<u64> = wanted.iter().copied().filter(|i| !seen.contains_key(i)).collect();
    let twice: Vec<u64> = seen.iter().filter(|(_, n)| **n > 1).map(|(i, _)| *i).collect();
    let strangers: Vec<u64> = seen.keys().copied().filter(|i| !exists.contains(i)).collect();
    if !missing.is_empty() {
        problems.push(format!("{} missing ({})", missing.len(), ranges(&missing)));
    }
    if !twice.is_empty() {
        problems.push(format!("{} more than once ({})", twice.len(), ranges(&twice)));
    }
    if !strangers.is_empty() {
        problems.push(format!("{} not in the conversation ({})", strangers.len(), ranges(&strangers)));
    }
    let passed = problems.is_empty();
    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    Judged {
        passed,
        expected,
        actual: if passed {
            String::new()
        } else {
            format!("{} ({} page(s) of sizes {})", problems.join("; "), pages.len(), truncate(&format!("{sizes:?}"), 120))
        },
        evidence: walks
            .iter()
            .map(|(c, v)| json!({ "command": c.body, "pages": v.get("pages").and_then(Value::as_array).map(|p| p.len()), "has_more": v.get("has_more") }))
            .collect(),
        fin: false,
    }
}

/// `3-5, 9` for a sorted list of indices (shortened).
pub(super) fn ranges(v: &[u64]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < v.len() {
        let mut j = i;
        while j + 1 < v.len() && v[j + 1] == v[j] + 1 {
            j += 1;
        }
        parts.push(if i == j { v[i].to_string() } else { format!("{}-{}", v[i], v[j]) });
        i = j + 1;
    }
    if parts.len() > 8 {
        let n = parts.len();
        parts.truncate(8);
        parts.push(format!("… {} more runs", n - 8));
    }
    parts.join(", ")
}
