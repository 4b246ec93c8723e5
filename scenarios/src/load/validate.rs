//! Consistency checks serde cannot make: names that must refer to something (clients, marks,
//! labels, conversations), capabilities that must cover what the scenario uses, values that
//! must be in range. Each problem carries the path of what it is about.
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::{Problem, SeedSummary, Seg, at, media_of, step_paths};
use crate::format::action::ServerAction;
use crate::format::command::ClientCommand;
use crate::format::expect::{DurationRange, ExpectKind, Expectation};
use crate::format::values::{Actor, CloseCode, Count, Target};
use crate::format::{Capability, Condition, MAX_TIMEOUT, Scenario, Step};

/// The most a client's token may live: Twilio's limit (24 h; the server refuses more, 20157).
const MAX_TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);
const START: &str = "start";

pub(crate) fn validate(s: &Scenario, seed: Option<&SeedSummary>) -> Vec<Problem> {
    let mut v = Validator {
        s,
        problems: Vec::new(),
        used: BTreeMap::new(),
        marks: BTreeSet::new(),
        labels: BTreeSet::new(),
        conversations: None,
    };
    v.header();
    v.seed(seed);
    v.collect_names();
    v.clients();
    for (at, step) in step_paths(s) {
        v.step(&at, step);
    }
    for (t, trigger) in s.on.iter().enumerate() {
        v.trigger(t, trigger);
    }
    for (i, e) in s.expect.iter().enumerate() {
        v.expectation(&[Seg::from("expect"), Seg::from(i)], e, false);
    }
    for (at, media) in media_of(s) {
        v.media(&at, media);
    }
    v.webhooks();
    v.requires();
    v.connected();
    let has_expectation = !s.expect.is_empty() || step_paths(s).iter().any(|(_, st)| matches!(st, Step::Expect(_)));
    if !has_expectation {
        v.err(at![], "a scenario expects something: add `[[expect]]` or an `expect` step");
    }
    v.problems
}

struct Validator<'s> {
    s: &'s Scenario,
    problems: Vec<Problem>,
    /// Capabilities the scenario uses, each with where it is first used.
    used: BTreeMap<Capability, Vec<Seg>>,
    marks: BTreeSet<&'s str>,
    labels: BTreeSet<&'s str>,
    /// Conversations that exist (seeded or created by a step); `None` when the seed is unknown.
    conversations: Option<BTreeSet<String>>,
}

fn join(base: &[Seg], key: &str) -> Vec<Seg> {
    let mut at = base.to_vec();
    at.push(Seg::from(key));
    at
}

fn is_slug(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

impl<'s> Validator<'s> {
    fn err(&mut self, at: Vec<Seg>, message: impl Into<String>) {
        self.problems.push(Problem::invalid(at, message));
    }

    /// The backend's filters name real events, every answer is for a filtered event, and a
    /// `webhooks` scenario has a backend.
    fn webhooks(&mut self) {
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

    fn uses(&mut self, capability: Capability, at: &[Seg]) {
        self.used.entry(capability).or_insert_with(|| at.to_vec());
    }

    fn header(&mut self) {
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

    fn clients(&mut self) {
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

    fn seed(&mut self, seed: Option<&SeedSummary>) {
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
    fn collect_names(&mut self) {
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

    fn client(&mut self, at: Vec<Seg>, name: &str) {
        if self.s.client(name).is_none() {
            let known: Vec<&str> = self.s.clients.iter().map(|c| c.name.as_str()).collect();
            let message = match super::suggest(name, &known) {
                Some(best) => format!("unknown client `{name}`: did you mean `{best}`?"),
                None => format!("unknown client `{name}` (clients: {})", crate::format::tagged::one_of(&known)),
            };
            self.err(at, message);
        }
    }

    fn conversation(&mut self, at: Vec<Seg>, name: &str) {
        if let Some(known) = &self.conversations {
            if !known.contains(name) {
                let list: Vec<&str> = known.iter().map(String::as_str).collect();
                let message = match super::suggest(name, &list) {
                    Some(best) => format!("unknown conversation `{name}`: did you mean `{best}`?"),
                    None => format!(
                        "unknown conversation `{name}`: neither seeded nor created by a step (known: {})",
                        crate::format::tagged::one_of(&list)
                    ),
                };
                self.err(at, message);
            }
        }
    }

    fn since(&mut self, at: Vec<Seg>, since: Option<&str>) {
        if let Some(mark) = since {
            if mark != START && !self.marks.contains(mark) {
                let known: Vec<&str> = self.marks.iter().copied().collect();
                let message = match super::suggest(mark, &known) {
                    Some(best) => format!("unknown mark `{mark}`: did you mean `{best}`?"),
                    None => format!("unknown mark `{mark}` (`start` or a `mark` step)"),
                };
                self.err(at, message);
            }
        }
    }

    fn positive(&mut self, at: Vec<Seg>, what: &str, d: Duration) {
        if d.is_zero() {
            self.err(at, format!("`{what}` is more than 0s"));
        } else if d > MAX_TIMEOUT {
            self.err(at, format!("`{what}` is at most 1m: scenarios run in seconds"));
        }
    }

    fn count(&mut self, at: Vec<Seg>, count: Option<&Count>) {
        if let Some(c) = count {
            if c.max.is_some_and(|max| max < c.min) {
                self.err(
                    at,
                    format!("count range is empty: min {} is more than max {}", c.min, c.max.unwrap_or_default()),
                );
            }
        }
    }

    fn range(&mut self, at: Vec<Seg>, range: Option<&DurationRange>) {
        if let Some(DurationRange {
            min: Some(min),
            max: Some(max),
        }) = range
        {
            if max < min {
                self.err(at, "duration range is empty: `min` is more than `max`");
            }
        }
    }

    fn status(&mut self, at: Vec<Seg>, status: u16, lowest: u16) {
        if !(lowest..=599).contains(&status) {
            self.err(at, format!("status {status} is not an HTTP status from {lowest} to 599"));
        }
    }

    fn target(&mut self, at: &[Seg], target: Option<&Target>) {
        if let Some(Target::Client(name)) = target {
            self.client(join(at, "target"), name);
        }
    }

    fn condition(&mut self, at: &[Seg], c: &Condition) {
        match c {
            Condition::Event(e) => {
                self.client(join(at, "client"), &e.client);
                self.uses(Capability::Events, at);
            }
            Condition::Observed(o) => {
                if let Some(client) = &o.client {
                    self.client(join(at, "client"), client);
                }
                if o.client.is_some() && o.identity.is_some() {
                    self.err(join(at, "identity"), "give `client` or `identity`, not both");
                }
            }
        }
    }

    fn trigger(&mut self, t: usize, trigger: &crate::format::Trigger) {
        self.condition(&[Seg::from("on"), Seg::from(t), Seg::from("when")], &trigger.when);
        self.since(at!["on", t, "since"], trigger.since.as_deref());
        if trigger.then.is_empty() {
            self.err(at!["on", t], "a trigger needs steps in `then`");
        }
    }

    fn step(&mut self, at: &[Seg], step: &'s Step) {
        match step {
            Step::Server(a) => self.action(at, a),
            Step::Command(c) => {
                let cmd = &c.command;
                self.client(join(at, "client"), cmd.client());
                self.uses(cmd.capability(), at);
                if let Some(conversation) = cmd.conversation() {
                    self.conversation(join(at, "conversation"), conversation);
                }
                if let Some(t) = c.timeout {
                    self.positive(join(at, "timeout"), "timeout", t);
                }
                match cmd {
                    ClientCommand::Send(send) if send.text.is_none() && send.media.is_none() => {
                        self.err(at.to_vec(), "`send` needs `text`, `media` or both");
                    }
                    ClientCommand::PageMessages(p) if !(1..=100).contains(&p.page_size) => {
                        self.err(join(at, "page_size"), format!("page_size {} is not from 1 to 100", p.page_size));
                    }
                    _ => {}
                }
            }
            Step::Wait(w) => self.positive(join(at, "wait"), "wait", w.wait),
            Step::WaitFor(w) => {
                self.condition(&join(at, "wait_for"), &w.wait_for);
                self.positive(join(at, "timeout"), "timeout", w.timeout);
            }
            Step::Expect(e) => self.expectation(at, e, true),
            Step::Mark(_) => {}
        }
    }

    fn action(&mut self, at: &[Seg], a: &ServerAction) {
        self.target(at, a.target());
        if let Some(conversation) = a.conversation() {
            self.conversation(join(at, "conversation"), conversation);
        }
        match a {
            ServerAction::Close(c) if c.backoff.is_some() && c.code != CloseCode::Offload => {
                let message = format!("`backoff` only means something with code 308; {} is terminal", c.code.code());
                self.err(join(at, "backoff"), message);
            }
            ServerAction::DenyInits(d) => {
                self.status(join(at, "status"), d.status, 400);
                self.nonzero(join(at, "count"), d.count);
            }
            ServerAction::RefuseConnections(r) => self.positive(join(at, "for"), "for", r.duration),
            ServerAction::Advance(adv) if adv.by.is_zero() => self.err(join(at, "by"), "`by` is more than 0s"),
            ServerAction::FailRequests(f) => {
                self.path_glob(join(at, "path"), &f.path);
                self.nonzero(join(at, "count"), f.count);
                self.status(join(at, "status"), f.status, 400);
            }
            ServerAction::DelayRequests(d) => {
                self.path_glob(join(at, "path"), &d.path);
                self.nonzero(join(at, "count"), d.count);
                self.positive(join(at, "by"), "by", d.by);
            }
            ServerAction::FailUploads(f) => {
                self.nonzero(join(at, "count"), f.count);
                self.status(join(at, "status"), f.status, 400);
            }
            ServerAction::StallUploads(s) => {
                if let Some(count) = s.count {
                    self.nonzero(join(at, "count"), count);
                }
            }
            ServerAction::Post(p) if p.body.is_none() && p.media.is_none() => {
                self.err(at.to_vec(), "`post` needs `body`, `media` or both");
            }
            ServerAction::Edit(e) if e.body.is_none() && e.attributes.is_none() => {
                self.err(at.to_vec(), "`edit` needs `body`, `attributes` or both");
            }
            ServerAction::GenerateMessages(g) => self.nonzero(join(at, "count"), g.count),
            ServerAction::InjectFrame(f) if f.raw.is_empty() => self.err(join(at, "raw"), "`raw` cannot be empty"),
            _ => {}
        }
        let needs_identity = matches!(
            a,
            ServerAction::Typing(_) | ServerAction::Join(_) | ServerAction::Leave(_) | ServerAction::SetReadHorizon(_)
        );
        if needs_identity && a.actor() == Some(&Actor::Rest) {
            self.err(join(at, "as"), format!("`{}` is done by an identity, not by `rest`", a.name()));
        }
    }

    fn nonzero(&mut self, at: Vec<Seg>, n: u32) {
        if n == 0 {
            self.err(at, "`count` is at least 1");
        }
    }

    fn path_glob(&mut self, at: Vec<Seg>, path: &str) {
        if !path.starts_with('/') && path != "*" {
            self.err(at, format!("path `{path}` starts with `/` (`*` matches any run of characters)"));
        }
    }

    fn media(&mut self, at: &[Seg], m: &crate::format::Media) {
        let sources = [m.size.is_some(), m.base64.is_some(), m.fixture.is_some()]
            .into_iter()
            .filter(|b| *b)
            .count();
        if sources != 1 {
            self.err(at.to_vec(), "media has exactly one of `size`, `base64` or `fixture`");
        }
        let valid_type = m
            .content_type
            .split_once('/')
            .is_some_and(|(t, s)| !t.is_empty() && !s.is_empty() && !m.content_type.contains(char::is_whitespace));
        if !valid_type {
            self.err(
                join(at, "content_type"),
                format!("`{}` is not a media type like `image/png`", m.content_type),
            );
        }
        if let Some(b64) = &m.base64 {
            let ok = b64.len() % 4 == 0
                && b64
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=');
            if !ok {
                self.err(
                    join(at, "base64"),
                    "`base64` is not standard base64 (A–Z, a–z, 0–9, +, /, padded with =)",
                );
            }
        }
    }

    fn expectation(&mut self, at: &[Seg], e: &Expectation, inline: bool) {
        let needs_events = e.kind.needs_client_reports() && !matches!(e.kind, ExpectKind::Result(_));
        if needs_events {
            self.uses(crate::format::Capability::Events, at);
        }
        self.since(join(at, "since"), e.kind.since());
        if let Some(label) = &e.label {
            if label.trim().is_empty() {
                self.err(join(at, "label"), "`label` cannot be empty");
            }
        }
        match &e.kind {
            ExpectKind::Event(x) => {
                self.client(join(at, "client"), &x.client);
                self.count(join(at, "count"), x.count.as_ref());
                self.window(at, "within", x.within, inline);
            }
            ExpectKind::NoEvent(x) => {
                self.client(join(at, "client"), &x.client);
                self.positive(join(at, "for"), "for", x.duration);
            }
            ExpectKind::Order(x) => {
                self.client(join(at, "client"), &x.client);
                if x.events.len() < 2 {
                    self.err(join(at, "events"), "`order` needs at least two events");
                }
                self.window(at, "within", x.within, inline);
            }
            ExpectKind::Sequence(x) => {
                if x.clients.is_empty() {
                    self.err(join(at, "clients"), "`clients` lists at least one client");
                }
                for (i, c) in x.clients.iter().enumerate() {
                    self.client(at_index(at, "clients", i), c);
                }
                if x.field.is_empty() {
                    self.err(join(at, "field"), "`field` cannot be empty");
                }
                if x.values.is_none() && !x.contiguous && x.clients.len() < 2 {
                    self.err(
                        at.to_vec(),
                        "a `sequence` checks `values`, `contiguous = true`, or that several clients agree",
                    );
                }
                self.window(at, "within", x.within, inline);
            }
            ExpectKind::ClientState(x) => self.client(join(at, "client"), &x.client),
            ExpectKind::Result(x) => {
                if !self.labels.contains(x.command.as_str()) {
                    self.err(join(at, "command"), format!("no command step has `label = \"{}\"`", x.command));
                }
            }
            ExpectKind::Observed(x) => {
                self.observer(at, x.client.as_deref(), x.identity.as_deref());
                self.count(join(at, "count"), x.count.as_ref());
                self.window(at, "within", x.within, inline);
                match (&x.field, &x.values) {
                    (Some(_), None) => self.err(join(at, "field"), "`field` goes with `values`"),
                    (None, Some(_)) => self.err(join(at, "values"), "`values` goes with `field`"),
                    (Some(_), Some(_)) if x.count.is_some() => {
                        self.err(join(at, "count"), "with `values`, the count is their number: leave `count` out")
                    }
                    _ => {}
                }
            }
            ExpectKind::NotObserved(x) => {
                self.observer(at, x.client.as_deref(), x.identity.as_deref());
                self.positive(join(at, "for"), "for", x.duration);
            }
            ExpectKind::Reconnects(x) => {
                self.client(join(at, "client"), &x.client);
                self.count(join(at, "count"), x.count.as_ref());
                self.range(join(at, "first_after"), x.first_after.as_ref());
                self.range(join(at, "gap"), x.gap.as_ref());
                self.window(at, "within", x.within, inline);
            }
            ExpectKind::Pages(x) => {
                self.client(join(at, "client"), &x.client);
                if let Some(label) = &x.command {
                    if !self.labels.contains(label.as_str()) {
                        self.err(join(at, "command"), format!("no command step has `label = \"{label}\"`"));
                    }
                }
                self.conversation(join(at, "conversation"), &x.conversation);
                if let Some(r) = x.covers {
                    if r.to < r.from {
                        self.err(join(at, "covers"), "`covers` is empty: `from` is after `to`");
                    }
                }
                if let Some(n) = x.max_page_size {
                    if !(1..=100).contains(&n) {
                        self.err(join(at, "max_page_size"), "`max_page_size` is from 1 to 100");
                    }
                }
            }
            ExpectKind::Media(x) => {
                self.observer(at, x.client.as_deref(), x.identity.as_deref());
                self.count(join(at, "count"), x.count.as_ref());
            }
            ExpectKind::State(x) => self.conversation(join(at, "conversation"), &x.conversation),
        }
    }

    fn observer(&mut self, at: &[Seg], client: Option<&str>, identity: Option<&str>) {
        if let Some(c) = client {
            self.client(join(at, "client"), c);
        }
        if client.is_some() && identity.is_some() {
            self.err(join(at, "identity"), "give `client` or `identity`, not both");
        }
    }

    /// Inline positive expectations hold the sequence until decided, so they need a bound.
    fn window(&mut self, at: &[Seg], key: &str, within: Option<Duration>, inline: bool) {
        match within {
            Some(d) => self.positive(join(at, key), key, d),
            None if inline => self.err(
                at.to_vec(),
                format!("an expectation among the steps needs `{key}`: how long it may hold the sequence"),
            ),
            None => {}
        }
    }

    /// Driven clients connect only when told: a driven scenario connects every client it has.
    fn connected(&mut self) {
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

    fn requires(&mut self) {
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

fn at_index(base: &[Seg], key: &str, i: usize) -> Vec<Seg> {
    let mut at = join(base, key);
    at.push(Seg::from(i));
    at
}
