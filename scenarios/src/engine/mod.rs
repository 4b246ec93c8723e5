//! The engine: plays a scenario against a tenant of a running server and a client driver, and
//! returns a [`crate::outcome::ScenarioOutcome`] — data, never a panic.
//!
//! ```no_run
//! # async fn demo(driver: &mut impl rehearsal_scenarios::engine::ClientDriver) {
//! use rehearsal_scenarios::engine::{PlayOptions, play};
//! let server = rehearsal_mock_server::MockServer::start().await;
//! let library = rehearsal_scenarios::Library::load_embedded().unwrap();
//! let scenario = library.get("connection.drop-reconnects").unwrap();
//! let outcome = play(&server, scenario, driver, &PlayOptions::default()).await;
//! println!("{:?}: {:?}", outcome.verdict, outcome.reason);
//! # }
//! ```
//!
//! Layout: `driver` (the boundary to the client: [`ClientDriver`], [`Link`], commands and
//! events as the driver protocol's JSON), `options` ([`PlayOptions`]), `play` ([`play`] and its
//! kin: the tenant, the client and the sequence around one play, the outcome), `client` (the
//! client side of a play: start, `hello`, its events into the log), `steps` (one step after
//! another: server actions, commands and their answers), `waits` (`wait`, `wait_for`, and
//! finding what met a condition), `expect` (when inline and end expectations are judged),
//! `triggers` (`[[on]]`, alongside the sequence), `error` (one error type per operation),
//! `tenant` (seed → tenant, names, message references, state),
//! `commands` (scenario commands in the protocol's words), `actions` (server actions on the
//! control plane), `tokens` (fresh, stale and wrong tokens; the first-token endpoint),
//! `journal` (the tenant's journal as observations), `log` (the shared record of a play),
//! `judge` (expectations against the record).
//!
//! Semantics, in short:
//! - Times are wall-clock milliseconds since the play started (the journal's `wall_ms`, the
//!   adapter's `at`); tenant clocks may be frozen or moved and only serve what the server
//!   does. `wait` is real time.
//! - A window starts at the expectation's `since` mark, else — among the steps — at the start
//!   of the preceding action or command, else at the start. `wait_for` looks from there too, so
//!   an event that came while a command was still running counts.
//! - An inline expectation holds the sequence until decided; a failed inline `must` stops it.
//!   `[[expect]]`s are judged once their windows have closed; one without a window once it has
//!   held for [`PlayOptions::settle`]; all of them when the scenario's `timeout` is up.
//! - FAILED is also the engine's verdict when a `wait_for` times out, a command's outcome is
//!   not the one required, a server action fails, the time is up before the steps are done, or
//!   a driven client's event stream ends; UNIMPLEMENTED when `hello` lacks a required command
//!   or a command is answered `unsupported`.
pub mod driver;

mod actions;
mod backend;
mod client;
mod commands;
mod error;
mod expect;
mod journal;
mod judge;
mod log;
mod options;
mod play;
mod steps;
mod tenant;
mod tokens;
mod triggers;
mod waits;

pub use driver::{Answer, ClientDriver, ClientEvent, Command, DriverEnv, DriverError, DriverLog, Hello, Link};
pub use error::{SeedError, SetupError};
pub use options::{OnStep, PlayOptions};
pub(crate) use play::Play;
pub use play::{play, play_server_side, play_with};
pub use tenant::serve_seed;
