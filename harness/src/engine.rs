//! The one place the harness calls the scenario engine (`rehearsal_scenarios::engine`).
use rehearsal_mock_server::MockServer;
use rehearsal_scenarios::Loaded;
use rehearsal_scenarios::engine::PlayOptions;
use rehearsal_scenarios::outcome::ScenarioOutcome;

use crate::process::ProcessDriver;

/// Plays `loaded` against a tenant of `server` (the engine creates and deletes it) with
/// `driver` as the client side.
pub async fn play(server: &MockServer, loaded: &Loaded, driver: &mut ProcessDriver, opts: &PlayOptions) -> ScenarioOutcome {
    rehearsal_scenarios::engine::play(server, loaded, driver, opts).await
}
