//! Checks of the scenario as a whole: its header (id, title, rationale, area, timeout), its
//! clients, its seed, the marks, labels and conversations later checks refer to, its webhook
//! backend, its `requires` against what it uses, and that a driven scenario connects every client.
use std::collections::BTreeSet;

use super::{MAX_TOKEN_TTL, START, Validator, is_slug, join};
use crate::format::action::ServerAction;
use crate::format::command::ClientCommand;
use crate::format::values::Actor;
use crate::format::{MAX_TIMEOUT, Step};
use crate::load::{SeedSummary, at, step_paths};

impl<'s> Validator<'s> {
    /// The backend's filters name real events, every answer is for a filtered event, and a
    /// `webhooks` scenario has a backend.
    pub(super) fn webhooks(&mut self) {
        use rehearsal_mock_server::domain::webhook::EVENT_NAMES;
        let s = self.s;
        let Some(w) = &s.webhooks else {
            if s.area == crate::format::Area::Webhooks {
                self.err(at!["area"], "a `webhooks` scenario needs a `[webhooks]` backend");
            }
            return;
        };
        if w.filters.is_empty() {
            self.err(at!["webhooks", "filters"], "name at least one event");
        }
        for (i, f) in w.filters.iter().enumerate() {
            if !EVENT_NAMES.contains(&f.as_str()) {
                self.err(at!["webhooks", "filters", i], format!("`{f}` is not a webhook event"));
            }
        }
        if let Some(m) = &w.method {
            if m != "POST" && m != "GET" {
                self.err(at!["webhooks", "method"], format!("`{m}`: the method is POST or GET"));
            }
        }
        for (i, a) in w.answer.iter().enumerate() {
            if !w.filters.contains(&a.event) {
                self.err(
                    at!["webhooks", "answer", i, "event"],
                    format!("`{}` is not in `filters`: the backend would never be asked", a.event),
                );
            }
            if let Some(st) = a.status {
                if !(200..600).contains(&st) {
                    self.err(at!["webhooks", "answer", i, "status"], format!("{st} is not an HTTP status"));
                }
            }
        }
    }

    pub(super) fn header(&mut self) {
        let s = self.s;
        let area = s.area.as_str();
        match s.id.split_once('.') {
            Some((prefix, name)) if prefix == area && is_slug(name) && !name.contains('_') => {}
            Some((prefix, _)) if prefix != area => {
                self.err(at!["id"], format!("id `{}` must start with its area: `{area}.`", s.id));
            }
            _ => self.err(
                at!["id"],
                format!(
                    "id `{}` must be `{area}.<name>`, the name in lowercase letters, digits and `-`",
                    s.id
                ),
            ),
        }
        for (key, text, max) in [("title", &s.title, 100), ("rationale", &s.rationale, 160)] {
            if text.trim().is_empty() {
                self.err(at![key], format!("`{key}` cannot be empty"));
            } else if text.contains('\n') {
                self.err(at![key], format!("`{key}` is one line"));
            } else if text.chars().count() > max {
                self.err(
                    at![key],
                    format!("`{key}` is at most {max} characters ({} here)", text.chars().count()),
                );
            }
        }
        if s.checks.trim().is_empty() {
            self.err(at!["checks"], "`checks` cannot be empty: say what behaviour the scenario checks");
        }
        let r = s.reference.as_str();
        let protocol = r
            .strip_prefix("protocol §")
            .is_some_and(|n| !n.is_empty() && n.split('.').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())));
        let link = r.starts_with("https://") && r.len() > "https://".len() && !r.contains(char::is_whitespace);
        if !protocol && !link {
            self.err(
                at!["reference"],
                format!("reference `{r}` is neither `protocol §N.N` (the wire-protocol notes) nor an https:// link"),
            );
        }
        if let Some(t) = s.timeout {
            if t.is_zero() || t > MAX_TIMEOUT {
                self.err(at!["timeout"], "`timeout` is more than 0s and at most 1m");
            }
        }
        let mut seen = BTreeSet::new();
        for (i, c) in s.requires.iter().enumerate() {
            if !seen.insert(*c) {
                self.err(at!["requires", i], format!("`{c}` is listed twice"));
            }
        }
    }

    pub(super) fn clients(&mut self) {
        let s = self.s;
        if s.clients.is_empty() {
            self.err(at!["clients"], "a scenario has at least one client (`[[clients]]`)");
        }
        let mut names = BTreeSet::new();
        for (i, c) in s.clients.iter().enumerate() {
            if !is_slug(&c.name) {
                self.err(
                    at!["clients", i, "name"],
                    format!("client name `{}` must be lowercase letters, digits, `-` or `_`", c.name),
                );
            }
            if !names.insert(c.name.as_str()) {
                self.err(at!["clients", i, "name"], format!("client `{}` is declared twice", c.name));
            }
            if let Some(identity) = &c.identity {
                if identity.is_empty() || identity == Actor::REST {
                    self.err(at!["clients", i, "identity"], format!("`{identity}` cannot be an identity"));
                }
            } else if c.name == Actor::REST {
                self.err(
                    at!["clients", i, "name"],
                    "a client named `rest` needs an `identity` other than `rest`",
                );
            }
            if let Some(mark) = &c.launch_after {
                self.since(at!["clients", i, "launch_after"], Some(mark));
            }
            if let Some(ttl) = c.token_ttl {
                if ttl.is_zero() || ttl > MAX_TOKEN_TTL {
                    self.err(
                        at!["clients", i, "token_ttl"],
                        "`token_ttl` is more than 0s and at most 24h (Twilio's limit)",
                    );
                }
            }
        }
    }

    pub(super) fn seed(&mut self, seed: Option<&SeedSummary>) {
        let s = self.s;
        if s.seed.file.is_some() && s.seed.inline.is_some() {
            self.err(at!["seed", "inline"], "a seed is either `file` or `inline`, not both");
        }
        self.conversations = seed.map(|summary| summary.conversations.iter().cloned().collect());
        for (i, g) in s.seed.generate_messages.iter().enumerate() {
            if g.count == 0 {
                self.err(at!["seed", "generate_messages", i, "count"], "`count` is at least 1");
            }
            if let Some(known) = &self.conversations {
                if !known.contains(&g.conversation) {
                    let message = format!("the seed has no conversation `{}`", g.conversation);
                    self.err(at!["seed", "generate_messages", i, "conversation"], message);
                }
            }
        }
    }

    /// Marks, labels and created conversations, which later checks refer to.
    pub(super) fn collect_names(&mut self) {
        let s = self.s;
        for (at, step) in step_paths(s) {
            match step {
                Step::Mark(m) => {
                    if m.mark == START {
                        self.err(join(&at, "mark"), "`start` is the scenario's start; choose another mark name");
                    } else if !is_slug(&m.mark) {
                        self.err(
                            join(&at, "mark"),
                            format!("mark `{}` must be lowercase letters, digits, `-` or `_`", m.mark),
                        );
                    } else if !self.marks.insert(&m.mark) {
                        self.err(join(&at, "mark"), format!("mark `{}` is set twice", m.mark));
                    }
                }
                Step::Command(c) => {
                    if let Some(label) = &c.label {
                        if !self.labels.insert(label) {
                            self.err(join(&at, "label"), format!("label `{label}` is used twice"));
                        }
                    }
                    if let ClientCommand::Create(create) = &c.command {
                        self.conversations.as_mut().map(|k| k.insert(create.unique_name.clone()));
                    }
                }
                Step::Server(ServerAction::CreateConversation(create)) => {
                    self.conversations.as_mut().map(|k| k.insert(create.unique_name.clone()));
                }
                _ => {}
            }
        }
    }

    /// Driven clients connect only when told: a driven scenario connects every client it has.
    pub(super) fn connected(&mut self) {
        let s = self.s;
        if s.requires.is_empty() {
            return;
        }
        for (i, c) in s.clients.iter().enumerate() {
            let connects = step_paths(s)
                .iter()
                .any(|(_, st)| matches!(st, Step::Command(cs) if matches!(&cs.command, ClientCommand::Connect(x) if x.client == c.name)));
            if !connects {
                let message = format!(
                    "client `{}` is never connected: in a driven scenario, clients connect on `command = \"connect\"`",
                    c.name
                );
                self.err(at!["clients", i], message);
            }
        }
    }

    pub(super) fn requires(&mut self) {
        let s = self.s;
        let used = std::mem::take(&mut self.used);
        for (capability, at) in &used {
            if !s.requires.contains(capability) {
                let observed = if s.requires.is_empty() {
                    " (with no requirements the scenario runs in observed mode)"
                } else {
                    ""
                };
                self.err(
                    at.clone(),
                    format!("this needs capability `{capability}`, which `requires` does not list{observed}"),
                );
            }
        }
        for (i, c) in s.requires.iter().enumerate() {
            if !used.contains_key(c) {
                self.err(
                    at!["requires", i],
                    format!("`requires` lists `{c}`, which nothing in the scenario uses"),
                );
            }
        }
    }
}
