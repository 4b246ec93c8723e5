//! Deviations: known differences of an implementation, recorded rather than hidden (as Ably's
//! per-SDK deviation files do). A TOML file of entries:
//!
//! ```toml
//! [[deviation]]
//! scenario = "token.refresh-while-disconnected"   # an id, or a glob with `*`
//! implementation = "twilio-conversations-js"      # optional: only for this `hello` name
//! reason = "the SDK drops token updates while disconnecting"
//! link = "https://github.com/twilio/conversations-ios/issues/19"   # optional
//! ```
//!
//! A scenario matched by an entry keeps its verdict, is reported with `deviated: true`, and
//! does not fail the run.
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::select::glob_match;

/// One known difference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deviation {
    /// A scenario id or a glob (`*` matches any run of characters).
    pub scenario: String,
    /// Applies only to the implementation whose `hello` answer has this `name`; every
    /// implementation when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub implementation: Option<String>,
    /// Why the implementation differs.
    pub reason: String,
    /// Where it is tracked (an `http(s)://` link).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

/// A deviations file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deviations {
    #[serde(default, rename = "deviation")]
    pub entries: Vec<Deviation>,
}

#[derive(Debug, thiserror::Error)]
pub enum DeviationsError {
    #[error("{path}: cannot read: {error}")]
    Read { path: PathBuf, error: std::io::Error },
    #[error("{path}:{line}:{column}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
}

impl Deviations {
    pub fn load(path: impl AsRef<Path>) -> Result<Deviations, DeviationsError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|error| DeviationsError::Read {
            path: path.to_owned(),
            error,
        })?;
        Deviations::parse(path, &text)
    }

    /// Parses `text`; `path` names the file in errors (`file:line:col: message`).
    pub fn parse(path: impl AsRef<Path>, text: &str) -> Result<Deviations, DeviationsError> {
        let path = path.as_ref();
        let at = |offset: usize, message: String| {
            let before = &text[..offset.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            DeviationsError::Invalid {
                path: path.to_owned(),
                line,
                column,
                message,
            }
        };
        let parsed: Deviations = toml::from_str(text).map_err(|e| {
            let message = e.message().trim_end().replace('\n', "; ");
            at(e.span().map_or(0, |s| s.start), message)
        })?;
        for (i, d) in parsed.entries.iter().enumerate() {
            let locate = |needle: &str| text.find(needle).unwrap_or(0);
            if d.scenario.trim().is_empty() {
                return Err(at(locate("scenario"), format!("deviation {}: `scenario` is empty", i + 1)));
            }
            if d.reason.trim().is_empty() {
                return Err(at(locate("reason"), format!("deviation {}: `reason` is empty: say why", i + 1)));
            }
            if let Some(link) = &d.link
                && !(link.starts_with("https://") || link.starts_with("http://"))
            {
                return Err(at(
                    locate(link),
                    format!("deviation {}: `link` must be an http(s):// address, not `{link}`", i + 1),
                ));
            }
        }
        Ok(parsed)
    }

    /// The first entry that applies to scenario `id` played by `implementation` (the name the
    /// client gave in `hello`; `None` for a client in observed mode, which only matches
    /// entries without `implementation`).
    pub fn find(&self, id: &str, implementation: Option<&str>) -> Option<&Deviation> {
        self.entries.iter().find(|d| {
            glob_match(&d.scenario, id)
                && match (&d.implementation, implementation) {
                    (None, _) => true,
                    (Some(want), Some(have)) => want == have,
                    (Some(_), None) => false,
                }
        })
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
[[deviation]]
scenario = "token.*"
implementation = "twilio-conversations-js"
reason = "known SDK bug"
link = "https://example.com/issues/1"

[[deviation]]
scenario = "media.size-limit"
reason = "no limit on this platform"
"#;

    #[test]
    fn entries_match_by_glob_and_implementation() {
        let d = Deviations::parse("dev.toml", FILE).unwrap();
        assert_eq!(d.entries.len(), 2);
        assert_eq!(
            d.find("token.expiry-without-refresh", Some("twilio-conversations-js"))
                .unwrap()
                .reason,
            "known SDK bug"
        );
        assert!(d.find("token.expiry-without-refresh", Some("other")).is_none());
        assert!(d.find("token.expiry-without-refresh", None).is_none());
        assert!(d.find("media.size-limit", None).is_some());
        assert!(d.find("media.size-limit", Some("anything")).is_some());
        assert!(d.find("media.content-types", None).is_none());
        assert!(Deviations::parse("empty.toml", "").unwrap().is_empty());
    }

    #[test]
    fn errors_name_file_line_and_column() {
        let e = Deviations::parse("dev.toml", "[[deviation]]\nscenario = \"x\"\nreasn = \"typo\"\n").unwrap_err();
        assert!(e.to_string().starts_with("dev.toml:3:1: unknown field `reasn`"), "{e}");
        let e = Deviations::parse("dev.toml", "[[deviation]]\nscenario = \"x\"\nreason = \"r\"\nlink = \"ftp://x\"\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "dev.toml:4:9: deviation 1: `link` must be an http(s):// address, not `ftp://x`"
        );
        let e = Deviations::parse("dev.toml", "[[deviation]]\nscenario = \"x\"\n").unwrap_err();
        assert!(e.to_string().contains("missing field `reason`"), "{e}");
    }
}
