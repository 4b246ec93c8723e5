//! Consistency checks serde cannot make: names that must refer to something (clients, marks,
//! labels, conversations), capabilities that must cover what the scenario uses, values that
//! must be in range. Each problem carries the path of what it is about.
//!
//! One `Validator` walks the scenario; its checks are split by what they look at: `scenario`
//! (the header, clients, seed, names, webhooks, `requires`, who connects), `steps` (steps,
//! triggers, conditions, server actions, media), `expect` (expectations and their windows).
//! This file holds the walk and the checks they share (references to clients, conversations
//! and marks; durations, counts, statuses).
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::{Problem, SeedSummary, Seg, at, media_of, step_paths};
use crate::format::expect::DurationRange;
use crate::format::values::{Count, Target};
use crate::format::{Capability, MAX_TIMEOUT, Scenario, Step};

mod expect;
mod scenario;
mod steps;

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

fn at_index(base: &[Seg], key: &str, i: usize) -> Vec<Seg> {
    let mut at = join(base, key);
    at.push(Seg::from(i));
    at
}

impl<'s> Validator<'s> {
    fn err(&mut self, at: Vec<Seg>, message: impl Into<String>) {
        self.problems.push(Problem::invalid(at, message));
    }

    fn uses(&mut self, capability: Capability, at: &[Seg]) {
        self.used.entry(capability).or_insert_with(|| at.to_vec());
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
}
