//! Checks of expectations: their references, values and windows (an inline positive
//! expectation needs a bound).
use std::time::Duration;

use super::{Validator, at_index, join};
use crate::format::expect::{ExpectKind, Expectation};
use crate::load::Seg;

impl<'s> Validator<'s> {
    pub(super) fn expectation(&mut self, at: &[Seg], e: &Expectation, inline: bool) {
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

    pub(super) fn observer(&mut self, at: &[Seg], client: Option<&str>, identity: Option<&str>) {
        if let Some(c) = client {
            self.client(join(at, "client"), c);
        }
        if client.is_some() && identity.is_some() {
            self.err(join(at, "identity"), "give `client` or `identity`, not both");
        }
    }

    /// Inline positive expectations hold the sequence until decided, so they need a bound.
    pub(super) fn window(&mut self, at: &[Seg], key: &str, within: Option<Duration>, inline: bool) {
        match within {
            Some(d) => self.positive(join(at, key), key, d),
            None if inline => self.err(
                at.to_vec(),
                format!("an expectation among the steps needs `{key}`: how long it may hold the sequence"),
            ),
            None => {}
        }
    }
}
