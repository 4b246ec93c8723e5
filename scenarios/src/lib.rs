//! Rehearsal scenarios: situations to put a Twilio Conversations client in — a token expiring
//! mid-session, a socket dying during a page fetch, a 10,000-message history — written as
//! small TOML files, loaded with errors that name file, line and column, and shipped as a
//! library embedded in the `rehearsal` binary.
//!
//! ```
//! let library = rehearsal_scenarios::Library::load_embedded().expect("the library is valid");
//! let drop = library.get("connection.drop-reconnects").unwrap();
//! println!("{}", drop.scenario.summary_line());
//! ```
//!
//! Layout:
//! - `format`: the types a scenario deserialises into (what an engine executes).
//! - `load`: one file or a folder → [`Loaded`] scenarios or [`LoadError`]s (syntax, format,
//!   consistency, duplicate ids).
//! - `schema`: the JSON Schema of the format, for editors.
//! - `library`: the embedded library (`scenarios/library/<area>/*.toml`).
//!
//! - `engine`: plays a scenario against a tenant of an in-process server (its control plane)
//!   and a [`engine::ClientDriver`]; `outcome`: what that produced, as data.
//!
//! Boundary: the engine drives clients only through `ClientDriver` (commands and events as the
//! driver protocol's JSON), and the server only through its control plane.
pub mod engine;
pub mod format;
#[doc(hidden)]
pub mod fuzzing;
pub mod library;
pub mod load;
pub mod outcome;
pub mod schema;

pub use format::{Area, Capability, Grade, Mode, Scenario};
pub use library::Library;
pub use load::{LoadError, LoadErrorKind, Loaded, load_file, load_str, validate_path};
