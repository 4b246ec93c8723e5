//! How the engine plays scenarios: the options a caller gives [`super::play`] and its kin.
use std::sync::Arc;
use std::time::Duration;

use crate::outcome::StepOutcome;

/// How the engine plays scenarios (the defaults suit the library).
#[derive(Debug, Clone)]
pub struct PlayOptions {
    /// How long a command may take to be answered when its step gives no `timeout`.
    pub command_timeout: Duration,
    /// An expectation without a window (`state`, `result`, an `event` with no `within`…) is
    /// judged at the end once it has held for this long, or when the scenario's time is up:
    /// late duplicates and late convergence both get a chance to show.
    pub settle: Duration,
    /// Most timeline entries kept (further ones are counted).
    pub max_timeline: usize,
    /// Makes the tenant's generated SIDs reproducible (`None`: random, as parallel tenants
    /// want).
    pub rng_seed: Option<u64>,
    /// Leave the tenant in place after the play, for inspection.
    pub keep_tenant: bool,
    /// Told of each step as it ends (`rehearsal serve --scenario` shows the play's progress
    /// with it). Called on the engine's task: keep it short and never block.
    pub on_step: Option<OnStep>,
}

/// A callback for each step as it ends ([`PlayOptions::on_step`]).
#[derive(Clone)]
pub struct OnStep(pub Arc<dyn Fn(&StepOutcome) + Send + Sync>);

impl std::fmt::Debug for OnStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OnStep(..)")
    }
}

impl Default for PlayOptions {
    fn default() -> Self {
        PlayOptions {
            command_timeout: Duration::from_secs(5),
            settle: Duration::from_secs(1),
            max_timeline: 20_000,
            rng_seed: None,
            keep_tenant: false,
            on_step: None,
        }
    }
}
