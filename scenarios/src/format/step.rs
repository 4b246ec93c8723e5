//! Steps (run in order), conditions, and triggers (steps run when something happens).
use std::fmt;
use std::time::Duration;

use schemars::JsonSchema;
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use super::action::ServerAction;
use super::command::CommandStep;
use super::duration::{self, DurationText};
use super::expect::Expectation;
use super::tagged::{FirstKey, Prepend, from_map};
use super::values::Times;
use super::{ClientEvent, ObservationKind};

/// One step. The key that comes first says which kind:
/// `server` (a control-plane action), `command` (a client command), `wait` (real time),
/// `wait_for` (a condition, or the scenario cannot go on), `expect` (an expectation checked at
/// this point; it holds the sequence until it is decided) or `mark` (names this moment).
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum Step {
    Server(ServerAction),
    Command(CommandStep),
    Wait(Wait),
    WaitFor(WaitFor),
    Expect(Expectation),
    Mark(Mark),
}

impl Step {
    pub const KINDS: &'static [&'static str] = &["server", "command", "wait", "wait_for", "expect", "mark"];

    /// The step's kind key and, for actions, commands and expectations, the kind's name
    /// (`server drop`, `command send`, `wait`…).
    pub fn describe(&self) -> String {
        match self {
            Step::Server(a) => format!("server {}", a.name()),
            Step::Command(c) => format!("command {}", c.command.name()),
            Step::Wait(w) => format!("wait {}", duration::format(w.wait)),
            Step::WaitFor(_) => "wait_for".to_owned(),
            Step::Expect(e) => format!("expect {}", e.kind.name()),
            Step::Mark(m) => format!("mark {}", m.mark),
        }
    }
}

impl<'de> Deserialize<'de> for Step {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Step;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a step (a table starting with `server`, `command`, `wait`, `wait_for`, `expect` or `mark`)")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Step, A::Error> {
                let Some(kind) = map.next_key_seed(FirstKey {
                    expected: Step::KINDS,
                    what: "a step",
                })?
                else {
                    return Err(de::Error::custom(format_args!(
                        "a step cannot be empty: it starts with {}",
                        super::tagged::one_of(Step::KINDS)
                    )));
                };
                match kind {
                    "server" => ServerAction::deserialize_after_tag(map).map(Step::Server),
                    "command" => CommandStep::deserialize_after_tag(map).map(Step::Command),
                    "expect" => Expectation::deserialize_after_tag(map).map(Step::Expect),
                    "wait" => from_map(Prepend::new("wait", map)).map(Step::Wait),
                    "wait_for" => from_map(Prepend::new("wait_for", map)).map(Step::WaitFor),
                    _ => from_map(Prepend::new("mark", map)).map(Step::Mark),
                }
            }
        }
        d.deserialize_map(V)
    }
}

/// Let real time pass (the SDK's own timers: backoff, the 3 s close timer). Prefer the server
/// clock (`server = "advance"`) for server-side time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Wait {
    #[serde(with = "duration")]
    #[schemars(with = "DurationText")]
    pub wait: Duration,
}

/// Hold the sequence until `wait_for` holds. If it does not within `timeout`, the scenario is
/// *aborted* (its setup did not happen), which is reported apart from failed expectations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitFor {
    pub wait_for: Condition,
    #[serde(with = "duration")]
    #[schemars(with = "DurationText")]
    pub timeout: Duration,
}

/// Names the moment this step is reached, for `since` (expectations, triggers).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Mark {
    pub mark: String,
}

/// Something that happens: a client reports an event (`{ event = "…", client = "…" }`) or the
/// server observes something (`{ observed = "…" }`). `match` is contained in the payload.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum Condition {
    Event(EventMatch),
    Observed(ObservedMatch),
}

impl<'de> Deserialize<'de> for Condition {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Condition;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a condition: { event = \"…\", client = \"…\" } or { observed = \"…\" }")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Condition, A::Error> {
                const KEYS: &[&str] = &["event", "observed"];
                match map.next_key_seed(FirstKey {
                    expected: KEYS,
                    what: "a condition",
                })? {
                    Some("event") => from_map(Prepend::new("event", map)).map(Condition::Event),
                    Some(_) => from_map(Prepend::new("observed", map)).map(Condition::Observed),
                    None => Err(de::Error::custom(
                        "a condition cannot be empty: it starts with `event` or `observed`",
                    )),
                }
            }
        }
        d.deserialize_map(V)
    }
}

/// A client reported `event`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventMatch {
    pub event: ClientEvent,
    pub client: String,
    #[serde(rename = "match", default, skip_serializing_if = "Option::is_none")]
    pub matches: Option<Map<String, Value>>,
}

/// The server observed `observed` (for `client`'s or `identity`'s sessions, if given).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ObservedMatch {
    pub observed: ObservationKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    #[serde(rename = "match", default, skip_serializing_if = "Option::is_none")]
    pub matches: Option<Map<String, Value>>,
}

/// Steps run when something happens, alongside the main sequence: "when alice's session is
/// established, wait 200 ms, then drop it".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Trigger {
    pub when: Condition,
    /// Only what happens after this mark counts (default: the start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// How many times it fires (default once). A firing runs its `then` to the end before the
    /// trigger can fire again.
    #[serde(default, skip_serializing_if = "Times::is_once")]
    pub times: Times,
    pub then: Vec<Step>,
}
