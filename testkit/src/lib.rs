//! Rehearsal, the offline stand-in for Twilio Conversations, embedded in Rust tests.
//!
//! One [`MockServer`] per test binary (or per test) serves REST for the helper libraries,
//! twilsock for the official SDK, media and a development token endpoint on a random loopback
//! port. Each test takes its own [`MockServer::tenant`] — an isolated account with fresh
//! credentials, deleted when the guard drops — mints tokens, puts its clients into situations
//! through typed control calls (drop or close sessions, expire tokens, move the clock, post as
//! another user, arm HTTP faults) and waits for what the server observed with
//! [`Tenant::wait_for`].
//!
//! ```
//! use std::time::Duration;
//! use rehearsal::{EntryKind, JournalFilter, MockServer, Target};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let server = MockServer::builder().start().await?;
//! let tenant = server.tenant()?;
//! let token = tenant.token("alice")?;
//! # let _ = token;
//! let mark = tenant.journal_mark();
//! // … connect your client with `token` to `server.twilsock_url()` (SDK) or call
//! // `server.url()` with `tenant.credentials()` (REST) …
//! tenant.post("bob", "general", "hi Alice").await?;
//! tenant.clock().advance(Duration::from_secs(3600))?; // alice's token expires
//! let moved = JournalFilter::new().kind(EntryKind::Control).contains("clock advanced").after(mark);
//! tenant.wait_for(&moved, Duration::from_secs(5)).await?;
//! tenant.drop_sessions(Target::identity("alice")).await?;
//! # Ok(()) }
//! ```
//!
//! The surface here is the stable one; the server's internals live in
//! `rehearsal-mock-server` and may change between releases.
mod builder;
mod clock;
mod error;
mod faults;
mod journal;
mod server;
mod tenant;

pub use builder::{Clock, Limits, MockServerBuilder, Seed};
pub use clock::ClockControl;
pub use error::{ControlError, SeedError, StartError, TokenError, WaitError};
pub use faults::{FaultId, HttpFault};
pub use journal::{Entry, EntryKind, JournalFilter};
pub use server::MockServer;
pub use tenant::{CloseCode, Commanded, Credentials, PostedMessage, Session, Target, Tenant, TenantGuard};
