//! `rehearsal-client`: a lean twilsock client that speaks to Rehearsal (or any twilsock v3
//! server) the way the official Conversations SDK does on the wire, so that benchmarks and Rust
//! tests can act as thousands of SDK users from one process.
//!
//! Lean on purpose: one tokio task per connection ([`Client`] is a handle to it), bounded queues,
//! every wait with a timeout, and no SDK state beyond what a caller asks for (no caches, no
//! retries): a benchmark measures the server, not the client.
//!
//! ```no_run
//! # async fn demo(token: &str) -> Result<(), rehearsal_client::Error> {
//! use rehearsal_client::{Client, Config};
//! let (client, mut notes) = Client::connect(&Config::new("ws://127.0.0.1:4510/v3/wsconnect"), token).await?;
//! let conv = client.open_conversation("general").await?;
//! let index = client.send_message(&conv.objects.sid, "hi").await?;
//! let pushed = notes.next(std::time::Duration::from_secs(5)).await?;
//! # Ok(()) }
//! ```
pub mod codec;
mod connection;
pub mod sync;

pub use connection::{Answer, Client, Config, Configuration, Error, Notification, Notifications, enc};
pub use sync::{ConversationObjects, Descriptor, OpenConversation, Order, Page, SyncEvent, sync_events};
