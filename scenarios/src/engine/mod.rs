//! The engine: plays a scenario against a tenant of a running server and a client driver, and
//! returns a [`crate::outcome::ScenarioOutcome`] — data, never a panic.
pub mod driver;

pub use driver::{Answer, ClientDriver, ClientEvent, Command, DriverEnv, DriverError, DriverLog, Hello, Link};
