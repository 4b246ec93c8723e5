//! One account on the server and what a test does to it: tokens, typed control calls, journal.
use std::ops::Deref;
use std::time::Duration;

use rehearsal_mock_server::auth::identity::MintError;
use rehearsal_mock_server::control::sessions::Target as InnerTarget;
use rehearsal_mock_server::control::{Control, actors};
use rehearsal_mock_server::twilsock::{CloseCode as InnerCloseCode, SessionCommand};

use crate::clock::ClockControl;
use crate::error::{ControlError, TokenError, WaitError};
use crate::faults::{FaultId, HttpFault};
use crate::journal::{self, Entry, JournalFilter};

/// An account's credentials: what the helper libraries (REST, Basic auth) and your token
/// endpoint (API key) need.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Credentials {
    pub account_sid: String,
    pub auth_token: String,
    pub api_key: String,
    pub api_secret: String,
    /// The default Conversations service (`IS…`).
    pub service_sid: String,
}

/// Which live twilsock sessions of a tenant a command is for.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Target {
    /// Every live session of the tenant.
    All,
    /// Every live session of one identity.
    Identity(String),
    /// One session, by id ([`Session::id`], or [`Entry::session`] in the journal).
    Session(u64),
}

impl Target {
    /// Every session of `identity`.
    ///
    /// ```
    /// assert_eq!(rehearsal::Target::identity("alice"), rehearsal::Target::Identity("alice".into()));
    /// ```
    pub fn identity(identity: impl Into<String>) -> Target {
        Target::Identity(identity.into())
    }
}

/// The twilsock `close` codes, and what the SDK does with each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseCode {
    /// 308: go away and reconnect, after at least `backoff` if given.
    Offload { backoff: Option<Duration> },
    /// 401: authentication failed; terminal.
    Unauthorized,
    /// 406: the server cannot parse the protocol; terminal.
    CannotParse,
    /// 410: the token expired (error 20104); terminal, the SDK emits `tokenExpired`.
    TokenExpired,
    /// 417: the server cannot parse a client reply; terminal.
    CannotParseReply,
}

/// Which sessions a command reached and which applied it in time (2 s each).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Commanded {
    pub sessions: Vec<u64>,
    pub applied: Vec<u64>,
}

/// A live (initialised) twilsock session.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Session {
    pub id: u64,
    pub identity: String,
    /// The token's expiry, Unix seconds.
    pub token_expires_at: i64,
    /// In-session token updates so far.
    pub token_updates: u32,
    /// Sync objects it is subscribed to.
    pub subscriptions: Vec<String>,
}

/// A message posted with [`Tenant::post`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PostedMessage {
    /// `IM…`
    pub sid: String,
    pub index: u64,
    /// `CH…`
    pub conversation_sid: String,
}

/// One account on the server, isolated from the others: its own credentials, content, clock,
/// faults and journal entries. [`crate::MockServer::default_tenant`] is the seed's first
/// account; [`crate::MockServer::tenant`] makes a fresh one per test ([`TenantGuard`] derefs to
/// this).
#[derive(Clone)]
pub struct Tenant {
    pub(crate) control: Control,
    pub(crate) credentials: Credentials,
    pub(crate) base_url: String,
    pub(crate) token_ttl: Duration,
}

impl Tenant {
    pub(crate) fn new(control: Control, credentials: rehearsal_mock_server::Credentials, base_url: String, token_ttl: Duration) -> Tenant {
        Tenant {
            control,
            credentials: Credentials {
                account_sid: credentials.account_sid,
                auth_token: credentials.auth_token,
                api_key: credentials.api_key,
                api_secret: credentials.api_secret,
                service_sid: credentials.service_sid,
            },
            base_url,
            token_ttl,
        }
    }

    /// The account SID (`AC…`).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let server = rehearsal::MockServer::start().await?;
    /// let tenant = server.tenant()?;
    /// assert!(tenant.sid().starts_with("AC"));
    /// # Ok(()) }
    /// ```
    pub fn sid(&self) -> &str {
        &self.credentials.account_sid
    }

    /// The account's credentials.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let server = rehearsal::MockServer::start().await?;
    /// let tenant = server.tenant()?;
    /// let c = tenant.credentials();
    /// assert_ne!(c.auth_token, server.credentials().unwrap().auth_token, "fresh secrets per tenant");
    /// # Ok(()) }
    /// ```
    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    /// A Conversations access token for `identity`, valid for the server's token lifetime
    /// (default one hour, see [`crate::MockServerBuilder::token_ttl`]) on this tenant's clock.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let server = rehearsal::MockServer::start().await?;
    /// let tenant = server.tenant()?;
    /// let token = tenant.token("alice")?;
    /// assert_eq!(token.split('.').count(), 3, "a JWT");
    /// # Ok(()) }
    /// ```
    pub fn token(&self, identity: &str) -> Result<String, TokenError> {
        self.token_with_ttl(identity, self.token_ttl)
    }

    /// A token for `identity` that lives `ttl` (1 s to 24 h).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// let server = rehearsal::MockServer::start().await?;
    /// let tenant = server.tenant()?;
    /// tenant.token_with_ttl("alice", Duration::from_secs(30))?;
    /// assert!(tenant.token_with_ttl("alice", Duration::from_secs(2 * 86_400)).is_err());
    /// # Ok(()) }
    /// ```
    pub fn token_with_ttl(&self, identity: &str, ttl: Duration) -> Result<String, TokenError> {
        let max = Duration::from_secs(rehearsal_mock_server::auth::token::MAX_TTL_SECS.unsigned_abs());
        if ttl < Duration::from_secs(1) || ttl > max {
            return Err(TokenError::Ttl(ttl));
        }
        if identity.is_empty() {
            return Err(TokenError::Identity(identity.to_owned()));
        }
        self.control
            .mint_token(self.sid(), identity, ttl.as_secs())
            .ok_or_else(|| TokenError::NoTenant(self.sid().to_owned()))?
            .map_err(|e| match e {
                MintError::ReservedIdentity(i) => TokenError::Identity(i),
                MintError::NoApiKey => TokenError::NoApiKey,
            })
    }

    /// The development token endpoint for this tenant, for a browser app under test: append
    /// `&identity=alice` (and `&ttl=SECONDS`).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let server = rehearsal::MockServer::start().await?;
    /// let tenant = server.tenant()?;
    /// assert!(tenant.token_url().starts_with(&format!("{}/token?account={}&key=", server.url(), tenant.sid())));
    /// # Ok(()) }
    /// ```
    pub fn token_url(&self) -> String {
        self.control.tenant(self.sid()).map(|t| t.credentials).ok().map_or_else(
            || format!("{}/token?account={}", self.base_url, self.sid()),
            |c| c.token_url(&self.base_url),
        )
    }

    /// This tenant's clock (it follows the server's until moved on its own).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let server = rehearsal::MockServer::start().await?;
    /// let tenant = server.tenant()?;
    /// let at = tenant.clock().freeze()?;
    /// tenant.clock().advance(std::time::Duration::from_secs(60))?;
    /// assert!(server.clock().now() < tenant.clock().now(), "only the tenant's clock moved");
    /// # let _ = at; Ok(()) }
    /// ```
    pub fn clock(&self) -> ClockControl {
        ClockControl {
            control: self.control.clone(),
            account: Some(self.sid().to_owned()),
        }
    }

    /// The tenant's live twilsock sessions, oldest first.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let server = rehearsal::MockServer::start().await?;
    /// assert!(server.tenant()?.sessions().is_empty());
    /// # Ok(()) }
    /// ```
    pub fn sessions(&self) -> Vec<Session> {
        self.control
            .connections(Some(self.sid()))
            .into_iter()
            .map(|s| Session {
                id: s.id,
                identity: s.identity,
                token_expires_at: s.token_expires_at,
                token_updates: s.token_updates,
                subscriptions: s.subscriptions,
            })
            .collect()
    }

    /// Drops the target sessions' sockets without a close handshake, like a network failure:
    /// the SDK reconnects. Returns once they have applied it (or 2 s passed).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let server = rehearsal::MockServer::start().await?;
    /// let tenant = server.tenant()?;
    /// let done = tenant.drop_sessions(rehearsal::Target::identity("alice")).await?;
    /// assert!(done.sessions.is_empty(), "nobody connected yet");
    /// # Ok(()) }
    /// ```
    pub async fn drop_sessions(&self, target: Target) -> Result<Commanded, ControlError> {
        self.command(target, SessionCommand::Drop).await
    }

    /// Sends the target sessions a twilsock `close` with `code`, then ends them.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use rehearsal::{CloseCode, Target};
    /// let server = rehearsal::MockServer::start().await?;
    /// let tenant = server.tenant()?;
    /// let backoff = Some(std::time::Duration::from_secs(2));
    /// tenant.close_sessions(Target::All, CloseCode::Offload { backoff }).await?;
    /// # Ok(()) }
    /// ```
    pub async fn close_sessions(&self, target: Target, code: CloseCode) -> Result<Commanded, ControlError> {
        let (code, backoff) = match code {
            CloseCode::Offload { backoff } => (InnerCloseCode::Offload, backoff),
            CloseCode::Unauthorized => (InnerCloseCode::Unauthorized, None),
            CloseCode::CannotParse => (InnerCloseCode::CannotParse, None),
            CloseCode::TokenExpired => (InnerCloseCode::TokenExpired, None),
            CloseCode::CannotParseReply => (InnerCloseCode::CannotParseReply, None),
        };
        let backoff_ms = backoff.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        if let Some(ms) = backoff_ms.filter(|ms| *ms > rehearsal_mock_server::control::limits::MAX_DURATION_MS) {
            return Err(ControlError::OutOfRange(format!("a backoff of {ms} ms is more than a day")));
        }
        self.command(target, SessionCommand::close(code, backoff_ms)).await
    }

    /// Acts as if the target sessions' tokens expired now: `close` 410 (error 20104).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let server = rehearsal::MockServer::start().await?;
    /// server.tenant()?.expire_token(rehearsal::Target::identity("alice")).await?;
    /// # Ok(()) }
    /// ```
    pub async fn expire_token(&self, target: Target) -> Result<Commanded, ControlError> {
        self.command(target, SessionCommand::ExpireTokenNow).await
    }

    /// Sends the target sessions `tokenAboutToExpire` now (the scheduled warning still comes).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let server = rehearsal::MockServer::start().await?;
    /// server.tenant()?.warn_token_expiry(rehearsal::Target::All).await?;
    /// # Ok(()) }
    /// ```
    pub async fn warn_token_expiry(&self, target: Target) -> Result<Commanded, ControlError> {
        self.command(target, SessionCommand::WarnTokenExpiry).await
    }

    /// Keeps Sync notifications (messages, typing…) back from the target sessions, in order,
    /// while replies keep flowing, until [`Tenant::release_notifications`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let server = rehearsal::MockServer::start().await?;
    /// let tenant = server.tenant()?;
    /// tenant.hold_notifications(rehearsal::Target::All).await?;
    /// tenant.release_notifications(rehearsal::Target::All).await?;
    /// # Ok(()) }
    /// ```
    pub async fn hold_notifications(&self, target: Target) -> Result<Commanded, ControlError> {
        self.command(target, SessionCommand::HoldNotifications).await
    }

    /// Writes the held notifications, in order, and stops holding.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let server = rehearsal::MockServer::start().await?;
    /// server.tenant()?.release_notifications(rehearsal::Target::identity("bob")).await?;
    /// # Ok(()) }
    /// ```
    pub async fn release_notifications(&self, target: Target) -> Result<Commanded, ControlError> {
        self.command(target, SessionCommand::ReleaseNotifications).await
    }

    /// Answers the target sessions' requests `latency` later (a slow backend; zero removes it).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let server = rehearsal::MockServer::start().await?;
    /// server.tenant()?.set_latency(rehearsal::Target::All, std::time::Duration::from_millis(300)).await?;
    /// # Ok(()) }
    /// ```
    pub async fn set_latency(&self, target: Target, latency: Duration) -> Result<Commanded, ControlError> {
        if latency.as_millis() > u128::from(rehearsal_mock_server::control::limits::MAX_DURATION_MS) {
            return Err(ControlError::OutOfRange(format!("a latency of {latency:?} is more than a day")));
        }
        self.command(target, SessionCommand::SetLatency(latency)).await
    }

    async fn command(&self, target: Target, cmd: SessionCommand) -> Result<Commanded, ControlError> {
        if !self.control.has_tenant(self.sid()) {
            return Err(ControlError::NoTenant(self.sid().to_owned()));
        }
        let inner = InnerTarget {
            account: self.sid().to_owned(),
            session: match &target {
                Target::Session(id) => Some(*id),
                _ => None,
            },
            identity: match &target {
                Target::Identity(i) => Some(i.clone()),
                _ => None,
            },
        };
        let (sessions, applied) = self.control.command_applied(&inner, cmd).await;
        match target {
            Target::Session(id) if sessions.is_empty() => Err(ControlError::NoSession(id)),
            _ => Ok(Commanded { sessions, applied }),
        }
    }

    /// Refuses new sessions for `period` (on the tenant's clock): `init` answers 503 and the SDK
    /// retries with backoff.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let server = rehearsal::MockServer::start().await?;
    /// server.tenant()?.refuse_connections(std::time::Duration::from_secs(5))?;
    /// # Ok(()) }
    /// ```
    pub fn refuse_connections(&self, period: Duration) -> Result<(), ControlError> {
        if period.as_millis() > u128::from(rehearsal_mock_server::control::limits::MAX_DURATION_MS) {
            return Err(ControlError::OutOfRange(format!("{period:?} is more than a day")));
        }
        Ok(self.control.refuse_connections(self.sid(), period)?)
    }

    /// Posts a message to `conversation` (SID or unique name) as `identity`, as the SDK would
    /// (author, webhooks, Sync pushes to every subscriber).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let server = rehearsal::MockServer::start().await?;
    /// let tenant = server.tenant()?;
    /// let posted = tenant.post("bob", "general", "hello from bob").await?;
    /// assert!(posted.sid.starts_with("IM"));
    /// # Ok(()) }
    /// ```
    pub async fn post(&self, identity: &str, conversation: &str, body: &str) -> Result<PostedMessage, ControlError> {
        let v = self
            .control
            .act(
                self.sid(),
                Some(identity),
                actors::Action::Post {
                    conversation: conversation.to_owned(),
                    body: Some(body.to_owned()),
                    attributes: None,
                    media: None,
                },
            )
            .await?;
        let text = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
        Ok(PostedMessage {
            sid: text("sid"),
            index: v["index"].as_u64().unwrap_or_default(),
            conversation_sid: text("conversation_sid"),
        })
    }

    /// Arms an HTTP fault on this tenant's requests; it disarms itself after it fired its
    /// `times`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use rehearsal::HttpFault;
    /// let server = rehearsal::MockServer::start().await?;
    /// let tenant = server.tenant()?;
    /// tenant.arm_http_fault(HttpFault::fail("/v1/Conversations", 503, 20503).method("POST"))?;
    /// assert!(tenant.arm_http_fault(HttpFault::fail("no-slash", 503, 20503)).is_err());
    /// # Ok(()) }
    /// ```
    pub fn arm_http_fault(&self, fault: HttpFault) -> Result<FaultId, ControlError> {
        if !self.control.has_tenant(self.sid()) {
            return Err(ControlError::NoTenant(self.sid().to_owned()));
        }
        Ok(FaultId(self.control.arm_http(fault.into_rule(self.sid()))?))
    }

    /// Removes an armed fault; `false` if it had already fired or been removed.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let server = rehearsal::MockServer::start().await?;
    /// let tenant = server.tenant()?;
    /// let id = tenant.arm_http_fault(rehearsal::HttpFault::fail("/v1/Users", 500, 20500))?;
    /// assert!(tenant.remove_fault(id));
    /// assert!(!tenant.remove_fault(id));
    /// # Ok(()) }
    /// ```
    pub fn remove_fault(&self, id: FaultId) -> bool {
        self.control.disarm_http(id.0)
    }

    /// Where the journal stands now: wait only for what comes next with
    /// `JournalFilter::new().after(mark)`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let server = rehearsal::MockServer::start().await?;
    /// let tenant = server.tenant()?;
    /// let before = tenant.journal_mark();
    /// tenant.clock().freeze()?; // journaled
    /// assert!(tenant.journal_mark() > before);
    /// # Ok(()) }
    /// ```
    pub fn journal_mark(&self) -> u64 {
        journal::mark(self.control.journal())
    }

    /// This tenant's retained journal entries matching `filter`, oldest first.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use rehearsal::{EntryKind, JournalFilter};
    /// let server = rehearsal::MockServer::start().await?;
    /// let tenant = server.tenant()?;
    /// tenant.clock().freeze()?;
    /// let entries = tenant.journal(&JournalFilter::new().kind(EntryKind::Control).contains("clock frozen"));
    /// assert_eq!(entries.len(), 1);
    /// # Ok(()) }
    /// ```
    pub fn journal(&self, filter: &JournalFilter) -> Vec<Entry> {
        journal::query(self.control.journal(), filter, Some(self.sid()))
    }

    /// The first of this tenant's entries matching `filter`, as soon as there is one (an entry
    /// already recorded counts: narrow with [`JournalFilter::after`]), or [`WaitError::Timeout`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// use rehearsal::{EntryKind, JournalFilter};
    /// let server = rehearsal::MockServer::start().await?;
    /// let tenant = server.tenant()?;
    /// let connected = JournalFilter::new().kind(EntryKind::Connection).identity("alice");
    /// assert!(tenant.wait_for(&connected, Duration::from_millis(50)).await.is_err(), "nobody connected");
    /// # Ok(()) }
    /// ```
    pub async fn wait_for(&self, filter: &JournalFilter, timeout: Duration) -> Result<Entry, WaitError> {
        journal::wait_for(self.control.journal(), filter, Some(self.sid()), timeout).await
    }
}

/// A tenant made for one test: deleted, with its sessions, faults and journal entries, when
/// dropped. Derefs to [`Tenant`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let server = rehearsal::MockServer::start().await?;
/// let sid = {
///     let tenant = server.tenant()?;
///     tenant.sid().to_owned()
/// };
/// assert!(!server.tenant_sids().contains(&sid), "deleted on drop");
/// # Ok(()) }
/// ```
#[must_use = "the tenant is deleted when the guard is dropped"]
pub struct TenantGuard {
    pub(crate) tenant: Tenant,
}

impl Deref for TenantGuard {
    type Target = Tenant;

    fn deref(&self) -> &Tenant {
        &self.tenant
    }
}

impl Drop for TenantGuard {
    fn drop(&mut self) {
        // Already gone (deleted through the HTTP API, or the server reset) is fine.
        let _ = self.tenant.control.delete_tenant(self.tenant.sid());
    }
}
