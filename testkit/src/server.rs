//! The embedded server handle.
use std::time::Duration;

use rehearsal_mock_server::control::NewTenant;

use crate::builder::MockServerBuilder;
use crate::clock::ClockControl;
use crate::error::{ControlError, StartError, TokenError, WaitError};
use crate::journal::{self, Entry, JournalFilter};
use crate::tenant::{Credentials, Tenant, TenantGuard};

/// Rehearsal running inside your test process, on a random loopback port: REST
/// (`/v1/…`, for the helper libraries), twilsock (`/v3/wsconnect`, for the SDK), media, the
/// development token endpoint and the control plane. Stops when dropped.
#[must_use = "the server stops when the handle is dropped"]
pub struct MockServer {
    inner: rehearsal_mock_server::MockServer,
    default: Option<Tenant>,
    token_ttl: Duration,
}

impl MockServer {
    pub(crate) fn new(inner: rehearsal_mock_server::MockServer, token_ttl: Duration) -> MockServer {
        let default = inner
            .credentials()
            .map(|c| Tenant::new(inner.control().clone(), c, inner.url(), token_ttl));
        MockServer { inner, default, token_ttl }
    }

    /// A builder: seed, clock, webhook timeout, control token, limits.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// use rehearsal::{Clock, MockServer, Seed};
    /// let server = MockServer::builder()
    ///     .seed(Seed::default())
    ///     .clock(Clock::frozen_at_unix_ms(1_700_000_000_000))
    ///     .webhook_timeout(Duration::from_secs(1))
    ///     .start()
    ///     .await?;
    /// # drop(server); Ok(()) }
    /// ```
    pub fn builder() -> MockServerBuilder {
        MockServerBuilder::default()
    }

    /// Starts with the defaults: the embedded default seed, the system clock.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let server = rehearsal::MockServer::start().await?;
    /// # drop(server); Ok(()) }
    /// ```
    pub async fn start() -> Result<MockServer, StartError> {
        MockServer::builder().start().await
    }

    /// The base URL, `http://127.0.0.1:PORT`: the REST API (`/v1/…`, what the helper libraries'
    /// `conversations` base URL is set to), media and `/token`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let server = rehearsal::MockServer::start().await?;
    /// assert!(server.url().starts_with("http://127.0.0.1:"));
    /// # Ok(()) }
    /// ```
    pub fn url(&self) -> String {
        self.inner.url()
    }

    /// The twilsock endpoint for the SDK's `twilsock.uri` option: `ws://127.0.0.1:PORT/v3/wsconnect`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let server = rehearsal::MockServer::start().await?;
    /// assert!(server.twilsock_url().ends_with("/v3/wsconnect"));
    /// # Ok(()) }
    /// ```
    pub fn twilsock_url(&self) -> String {
        self.inner.twilsock_url()
    }

    /// The control plane's HTTP API, for test code in another process or language:
    /// `http://127.0.0.1:PORT/_rehearsal/v1`, with `Authorization: Bearer` [`MockServer::control_token`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let server = rehearsal::MockServer::start().await?;
    /// assert_eq!(server.control_url(), format!("{}/_rehearsal/v1", server.url()));
    /// # Ok(()) }
    /// ```
    pub fn control_url(&self) -> String {
        self.inner.control_url()
    }

    /// The token the control plane's HTTP API requires.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let server = rehearsal::MockServer::start().await?;
    /// assert!(!server.control_token().is_empty(), "a random one unless set");
    /// # Ok(()) }
    /// ```
    pub fn control_token(&self) -> &str {
        self.inner.control_token()
    }

    /// The seed's first account (`None` when started with [`crate::Seed::empty`]).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let server = rehearsal::MockServer::start().await?;
    /// let default = server.default_tenant().expect("the default seed has an account");
    /// assert_eq!(default.sid(), server.credentials().unwrap().account_sid);
    /// # Ok(()) }
    /// ```
    pub fn default_tenant(&self) -> Option<&Tenant> {
        self.default.as_ref()
    }

    /// The default account's credentials (see [`MockServer::default_tenant`]).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let server = rehearsal::MockServer::start().await?;
    /// assert_eq!(server.credentials().unwrap().auth_token, "rehearsal-auth-token");
    /// # Ok(()) }
    /// ```
    pub fn credentials(&self) -> Option<&Credentials> {
        self.default.as_ref().map(Tenant::credentials)
    }

    /// A token for `identity` on the default account (see [`Tenant::token`]).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let server = rehearsal::MockServer::start().await?;
    /// let token = server.token("alice")?;
    /// assert!(server.token("system").is_err(), "a reserved identity");
    /// # let _ = token; Ok(()) }
    /// ```
    pub fn token(&self, identity: &str) -> Result<String, TokenError> {
        self.token_with_ttl(identity, self.token_ttl)
    }

    /// A token for `identity` on the default account that lives `ttl`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let server = rehearsal::MockServer::start().await?;
    /// let token = server.token_with_ttl("alice", std::time::Duration::from_secs(120))?;
    /// # let _ = token; Ok(()) }
    /// ```
    pub fn token_with_ttl(&self, identity: &str, ttl: Duration) -> Result<String, TokenError> {
        self.default
            .as_ref()
            .ok_or(TokenError::NoDefaultAccount)?
            .token_with_ttl(identity, ttl)
    }

    /// A fresh tenant (the default seed's content with new credentials and secrets), isolated
    /// from every other: deleted when the guard drops. One per test lets tests share a server.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let server = rehearsal::MockServer::start().await?;
    /// let (a, b) = (server.tenant()?, server.tenant()?);
    /// assert_ne!(a.sid(), b.sid());
    /// # Ok(()) }
    /// ```
    pub fn tenant(&self) -> Result<TenantGuard, ControlError> {
        let created = self.inner.control().create_tenant(NewTenant::default())?;
        Ok(TenantGuard {
            tenant: Tenant::new(self.inner.control().clone(), created.credentials, self.url(), self.token_ttl),
        })
    }

    /// The SIDs of every tenant on the server, the default one included.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let server = rehearsal::MockServer::start().await?;
    /// let tenant = server.tenant()?;
    /// assert!(server.tenant_sids().contains(&tenant.sid().to_owned()));
    /// # Ok(()) }
    /// ```
    pub fn tenant_sids(&self) -> Vec<String> {
        self.inner
            .control()
            .tenants()
            .into_iter()
            .map(|t| t.credentials.account_sid)
            .collect()
    }

    /// The server's clock, which every tenant's clock follows until moved on its own.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let server = rehearsal::MockServer::start().await?;
    /// let tenant = server.tenant()?;
    /// let at = server.clock().freeze()?;
    /// assert_eq!(tenant.clock().now(), at, "tenants follow the server clock");
    /// # Ok(()) }
    /// ```
    pub fn clock(&self) -> ClockControl {
        ClockControl {
            control: self.inner.control().clone(),
            account: None,
        }
    }

    /// Every retained journal entry matching `filter`, all tenants, oldest first.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use rehearsal::{EntryKind, JournalFilter};
    /// let server = rehearsal::MockServer::start().await?;
    /// let _tenant = server.tenant()?;
    /// let created = server.journal(&JournalFilter::new().kind(EntryKind::Control).contains("tenant created"));
    /// assert_eq!(created.len(), 1);
    /// # Ok(()) }
    /// ```
    pub fn journal(&self, filter: &JournalFilter) -> Vec<Entry> {
        journal::query(self.inner.control().journal(), filter, None)
    }

    /// The first entry of any tenant matching `filter`, as soon as there is one, or
    /// [`WaitError::Timeout`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// use rehearsal::{EntryKind, JournalFilter};
    /// let server = rehearsal::MockServer::start().await?;
    /// let _tenant = server.tenant()?;
    /// let e = server.wait_for(&JournalFilter::new().contains("tenant created"), Duration::from_secs(5)).await?;
    /// assert_eq!(e.kind, EntryKind::Control);
    /// # Ok(()) }
    /// ```
    pub async fn wait_for(&self, filter: &JournalFilter, timeout: Duration) -> Result<Entry, WaitError> {
        journal::wait_for(self.inner.control().journal(), filter, None, timeout).await
    }

    /// Stops accepting, finishes in-flight requests and waits for the server to end (dropping
    /// the handle stops it too, without waiting).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let server = rehearsal::MockServer::start().await?;
    /// let url = server.url();
    /// server.shutdown().await;
    /// assert!(std::net::TcpStream::connect(url.trim_start_matches("http://")).is_err());
    /// # Ok(()) }
    /// ```
    pub async fn shutdown(self) {
        self.inner.shutdown().await;
    }
}
