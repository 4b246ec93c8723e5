//! Checks of steps and triggers: each step's references and values, conditions, server actions
//! (with the capabilities they use) and media.
use super::{Validator, join};
use crate::format::action::ServerAction;
use crate::format::command::ClientCommand;
use crate::format::values::{Actor, CloseCode};
use crate::format::{Capability, Condition, Step};
use crate::load::{Seg, at};

impl<'s> Validator<'s> {
    pub(super) fn condition(&mut self, at: &[Seg], c: &Condition) {
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

    pub(super) fn trigger(&mut self, t: usize, trigger: &crate::format::Trigger) {
        self.condition(&[Seg::from("on"), Seg::from(t), Seg::from("when")], &trigger.when);
        self.since(at!["on", t, "since"], trigger.since.as_deref());
        if trigger.then.is_empty() {
            self.err(at!["on", t], "a trigger needs steps in `then`");
        }
    }

    pub(super) fn step(&mut self, at: &[Seg], step: &'s Step) {
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

    pub(super) fn action(&mut self, at: &[Seg], a: &ServerAction) {
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

    pub(super) fn media(&mut self, at: &[Seg], m: &crate::format::Media) {
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
}
