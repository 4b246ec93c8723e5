//! `media`: bytes that went up or came down intact.
use std::fmt::Write;

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{EVIDENCE, Judged, Window, count_text, identity_of, obs_evidence};
use crate::engine::Play;
use crate::engine::log::{ObsRec, Records, Reply, Us};
use crate::engine::tenant;
use crate::format::expect::{MediaDirection, MediaExpect};
use crate::format::{Count, ObservationKind};

pub(super) fn media(play: &Play<'_>, x: &MediaExpect, w: Window, now: Us, r: &Records) -> Judged {
    let identity = x.client.as_deref().map(|c| identity_of(play, c)).or(x.identity.as_deref());
    let kind = match x.direction {
        MediaDirection::Upload => ObservationKind::MediaUpload,
        MediaDirection::Download => ObservationKind::MediaDownload,
    };
    // A temporary URL names nobody: a download without an identity is the client's if one of
    // its `get_media` commands was running then.
    let fetching = |i: &str, at: Us| {
        r.commands.iter().any(|c| {
            c.cmd == "get_media"
                && identity_of(play, &c.client) == i
                && c.sent_at <= at
                && c.answer.as_ref().is_none_or(|(answered, _)| at <= *answered)
        })
    };
    let all: Vec<&ObsRec> = r
        .observations
        .iter()
        .filter(|o| o.kind == kind && w.contains(o.at, now))
        .filter(|o| {
            identity.is_none_or(|i| match o.identity.as_deref() {
                Some(who) => who == i,
                None => kind == ObservationKind::MediaDownload && fetching(i, o.at),
            })
        })
        .collect();
    let selected: Vec<&ObsRec> = all
        .iter()
        .copied()
        .filter(|o| {
            x.content_type
                .as_ref()
                .is_none_or(|t| o.detail["content_type"].as_str() == Some(t.as_str()))
        })
        .filter(|o| x.size.is_none_or(|s| o.detail["size"].as_u64() == Some(s)))
        .filter(|o| x.status.is_none_or(|s| o.detail["status"].as_u64() == Some(u64::from(s))))
        .collect();
    let count = x.count.unwrap_or(Count::AT_LEAST_ONE);
    let n = selected.len() as u64;
    let mut problems = Vec::new();
    if !count.contains(n) {
        problems.push(format!(
            "{n} such transfer(s) among {} {}(s)",
            all.len(),
            if kind == ObservationKind::MediaUpload {
                "upload"
            } else {
                "download"
            }
        ));
    }
    if x.intact == Some(true) {
        for o in &selected {
            if let Some(p) = not_intact(play, &x.client, o, r) {
                problems.push(p);
            }
        }
    }
    let mut expected = format!(
        "{} {}",
        identity.unwrap_or("anyone"),
        if kind == ObservationKind::MediaUpload {
            "uploads"
        } else {
            "downloads"
        }
    );
    let mut filters = Vec::new();
    if let Some(t) = &x.content_type {
        filters.push(format!("of type {t}"));
    }
    if let Some(s) = x.size {
        filters.push(format!("of {s} bytes"));
    }
    if let Some(s) = x.status {
        filters.push(format!("answered {s}"));
    }
    write!(
        expected,
        " media {}{}",
        count_text(count),
        if filters.is_empty() {
            String::new()
        } else {
            format!(" {}", filters.join(", "))
        }
    )
    .ok();
    if x.intact == Some(true) {
        expected.push_str(", bytes intact");
    }
    let passed = problems.is_empty();
    Judged {
        passed,
        expected,
        actual: problems.join("; "),
        evidence: all.iter().take(EVIDENCE).map(|o| obs_evidence(o)).collect(),
        fin: false,
    }
}

/// Why a download was not intact, if it was not.
pub(super) fn not_intact(play: &Play<'_>, client: &Option<String>, o: &ObsRec, r: &Records) -> Option<String> {
    let sid = o.detail["media"].as_str()?;
    if o.detail["status"].as_u64() != Some(200) {
        return Some(format!("the download of {sid} answered {}", o.detail["status"]));
    }
    let stored = tenant::read(play.control, &play.tenant.account, |svc| {
        svc.media.get(sid).map(|m| m.bytes.clone())
    })
    .flatten();
    let Some(stored) = stored else {
        return Some(format!("media {sid} is not stored"));
    };
    if let Some(size) = o.detail["size"].as_u64() {
        if size != stored.len() as u64 {
            return Some(format!("{sid}: served {size} bytes of {}", stored.len()));
        }
    }
    let want = hex(&Sha256::digest(&stored));
    let reported = r
        .commands
        .iter()
        .filter(|c| c.cmd == "get_media" && client.as_ref().is_none_or(|n| &c.client == n))
        .filter_map(|c| match &c.answer {
            Some((_, Reply::Ok(v))) if v.get("sid").and_then(Value::as_str).is_none_or(|s| s == sid) => {
                v.get("sha256").and_then(Value::as_str).map(str::to_owned)
            }
            _ => None,
        })
        .collect::<Vec<_>>();
    if !reported.is_empty() && !reported.iter().any(|h| h.eq_ignore_ascii_case(&want)) {
        return Some(format!(
            "{sid}: the client's bytes hash to {} , the stored ones to {want}",
            reported[0]
        ));
    }
    None
}

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
