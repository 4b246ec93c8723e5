//! What a server starts with: [`MockServerBuilder`], its [`Seed`], [`Clock`] and [`Limits`].
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rehearsal_mock_server::clock::{self as inner_clock, Millis};
use rehearsal_mock_server::domain::seed::Seed as InnerSeed;
use rehearsal_mock_server::{ServerConfig, Startup};

use crate::MockServer;
use crate::error::{SeedError, StartError};

/// The content a server starts with: accounts (with credentials), services, users,
/// conversations, messages. The format is the one `rehearsal serve --seed FILE` reads
/// (`fixtures/seeds/default.json` in the repository is the default).
#[derive(Debug, Clone)]
pub struct Seed(pub(crate) InnerSeed);

impl Default for Seed {
    /// The embedded default seed: one account with users `alice`, `bob`, `carol` and the
    /// conversations `general` and `random` with history.
    ///
    /// ```
    /// let seed = rehearsal::Seed::default();
    /// assert_eq!(seed.accounts(), 1);
    /// ```
    fn default() -> Self {
        Seed(InnerSeed::default_seed())
    }
}

impl Seed {
    /// No account at all: every test makes its own with [`MockServer::tenant`].
    ///
    /// ```
    /// assert_eq!(rehearsal::Seed::empty().accounts(), 0);
    /// ```
    pub fn empty() -> Seed {
        let mut s = InnerSeed::default_seed();
        s.accounts.clear();
        s.description = None;
        Seed(s)
    }

    /// Parses a seed in its JSON format. Content errors (duplicate SIDs, bodies over the
    /// limits) are found when the server starts.
    ///
    /// ```
    /// let seed = rehearsal::Seed::from_json(r#"{"format": 1, "accounts": [{"users": [{"identity": "dana"}]}]}"#)?;
    /// assert_eq!(seed.accounts(), 1);
    /// assert!(rehearsal::Seed::from_json("{}").is_err());
    /// # Ok::<(), rehearsal::SeedError>(())
    /// ```
    pub fn from_json(text: &str) -> Result<Seed, SeedError> {
        InnerSeed::parse(text).map(Seed).map_err(|e| SeedError(e.to_string()))
    }

    /// How many accounts the seed creates.
    ///
    /// ```
    /// assert_eq!(rehearsal::Seed::default().accounts(), 1);
    /// ```
    pub fn accounts(&self) -> usize {
        self.0.accounts.len()
    }
}

/// The clock a server starts with. Tokens, timestamps and timers all read it; move it later
/// with [`crate::ClockControl`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Clock {
    /// The system's time (until frozen or advanced).
    #[default]
    System,
    /// Stands still at this instant until advanced or resumed: reproducible timestamps.
    FrozenAt(SystemTime),
}

impl Clock {
    /// A clock frozen at `unix_ms` milliseconds after the Unix epoch.
    ///
    /// ```
    /// use std::time::{Duration, UNIX_EPOCH};
    /// let clock = rehearsal::Clock::frozen_at_unix_ms(1_700_000_000_000);
    /// assert_eq!(clock, rehearsal::Clock::FrozenAt(UNIX_EPOCH + Duration::from_millis(1_700_000_000_000)));
    /// ```
    pub fn frozen_at_unix_ms(unix_ms: u64) -> Clock {
        Clock::FrozenAt(UNIX_EPOCH + Duration::from_millis(unix_ms))
    }

    fn build(self) -> Result<inner_clock::Clock, StartError> {
        match self {
            Clock::System => Ok(inner_clock::Clock::system()),
            Clock::FrozenAt(at) => Ok(inner_clock::Clock::frozen_at(to_millis(at).map_err(StartError::Clock)?)),
        }
    }
}

/// `at` as clock milliseconds, if a clock can show it.
pub(crate) fn to_millis(at: SystemTime) -> Result<Millis, String> {
    let ms = at
        .duration_since(UNIX_EPOCH)
        .map_err(|_| format!("{at:?} is before 1970"))?
        .as_millis();
    match i64::try_from(ms) {
        Ok(ms) if ms <= inner_clock::MAX_CLOCK_MS => Ok(Millis(ms)),
        _ => Err(format!("{ms} ms is after 9999-12-31T23:59:59.999Z")),
    }
}

/// Twilio's limits as the server enforces them (defaults: Twilio's documented ones). Lower
/// them to test how a client handles a refusal without sending megabytes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Chat message body, in bytes (32 KiB).
    pub message_body_bytes: usize,
    /// Message attributes JSON, in bytes (4 KiB).
    pub message_attributes_bytes: usize,
    /// Conversation attributes JSON, in bytes (16 KiB).
    pub conversation_attributes_bytes: usize,
    /// Participant attributes JSON, in bytes (4 KiB).
    pub participant_attributes_bytes: usize,
    /// User attributes JSON, in bytes (16 KiB).
    pub user_attributes_bytes: usize,
    /// Friendly names, in characters (256).
    pub friendly_name_chars: usize,
    /// Participants in one conversation (1000).
    pub participants_per_conversation: usize,
    /// Largest page of conversations, messages and participants.
    pub page_size_max: usize,
    /// Largest page of users and roles.
    pub small_page_size_max: usize,
    /// Page size when a request names none.
    pub default_page_size: usize,
}

impl Default for Limits {
    /// Twilio's limits.
    ///
    /// ```
    /// let mut limits = rehearsal::Limits::default();
    /// assert_eq!(limits.message_body_bytes, 32 * 1024);
    /// limits.message_body_bytes = 16;
    /// ```
    fn default() -> Self {
        let d = rehearsal_mock_server::domain::Limits::default();
        Limits {
            message_body_bytes: d.message_body_bytes,
            message_attributes_bytes: d.message_attributes_bytes,
            conversation_attributes_bytes: d.conversation_attributes_bytes,
            participant_attributes_bytes: d.participant_attributes_bytes,
            user_attributes_bytes: d.user_attributes_bytes,
            friendly_name_chars: d.friendly_name_chars,
            participants_per_conversation: d.participants_per_conversation,
            page_size_max: d.page_size_max,
            small_page_size_max: d.small_page_size_max,
            default_page_size: d.default_page_size,
        }
    }
}

impl Limits {
    fn build(self) -> rehearsal_mock_server::domain::Limits {
        rehearsal_mock_server::domain::Limits {
            message_body_bytes: self.message_body_bytes,
            message_attributes_bytes: self.message_attributes_bytes,
            conversation_attributes_bytes: self.conversation_attributes_bytes,
            participant_attributes_bytes: self.participant_attributes_bytes,
            user_attributes_bytes: self.user_attributes_bytes,
            friendly_name_chars: self.friendly_name_chars,
            participants_per_conversation: self.participants_per_conversation,
            page_size_max: self.page_size_max,
            small_page_size_max: self.small_page_size_max,
            default_page_size: self.default_page_size,
        }
    }
}

/// Configures an embedded server; [`MockServerBuilder::start`] binds a random loopback port.
/// Made by [`MockServer::builder`].
#[derive(Debug, Clone)]
#[must_use = "nothing starts until .start().await"]
pub struct MockServerBuilder {
    seed: Seed,
    clock: Clock,
    webhook_timeout: Option<Duration>,
    control_token: Option<String>,
    limits: Limits,
    token_ttl: Duration,
    journal_entries: Option<usize>,
}

impl Default for MockServerBuilder {
    fn default() -> Self {
        MockServerBuilder {
            seed: Seed::default(),
            clock: Clock::System,
            webhook_timeout: None,
            control_token: None,
            limits: Limits::default(),
            token_ttl: Duration::from_secs(3600),
            journal_entries: None,
        }
    }
}

impl MockServerBuilder {
    /// The content to start with (default: [`Seed::default`]). Its first account is the one
    /// [`MockServer::token`] and [`MockServer::credentials`] use.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let server = rehearsal::MockServer::builder().seed(rehearsal::Seed::empty()).start().await?;
    /// assert!(server.credentials().is_none());
    /// # Ok(()) }
    /// ```
    pub fn seed(mut self, seed: Seed) -> Self {
        self.seed = seed;
        self
    }

    /// The clock to start with (default: the system's).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::{Duration, UNIX_EPOCH};
    /// let server = rehearsal::MockServer::builder()
    ///     .clock(rehearsal::Clock::frozen_at_unix_ms(1_700_000_000_000))
    ///     .start()
    ///     .await?;
    /// assert_eq!(server.clock().now(), UNIX_EPOCH + Duration::from_millis(1_700_000_000_000));
    /// # Ok(()) }
    /// ```
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// How long a webhook to your backend may take to answer (Twilio: 5 s). A pre-action hook
    /// that does not answer in time lets the action proceed; a post-action one is retried.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let server = rehearsal::MockServer::builder()
    ///     .webhook_timeout(std::time::Duration::from_millis(300))
    ///     .start()
    ///     .await?;
    /// # drop(server); Ok(()) }
    /// ```
    pub fn webhook_timeout(mut self, timeout: Duration) -> Self {
        self.webhook_timeout = Some(timeout);
        self
    }

    /// The token the control plane's HTTP API (`/_rehearsal/v1/…`) requires, for test code in
    /// another process; default: a random one, read back with [`MockServer::control_token`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let server = rehearsal::MockServer::builder().control_token("s3cret").start().await?;
    /// assert_eq!(server.control_token(), "s3cret");
    /// # Ok(()) }
    /// ```
    pub fn control_token(mut self, token: impl Into<String>) -> Self {
        self.control_token = Some(token.into());
        self
    }

    /// Twilio's limits as the server enforces them (default: Twilio's).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let mut limits = rehearsal::Limits::default();
    /// limits.message_body_bytes = 32; // the default seed's longest message has 21
    /// let server = rehearsal::MockServer::builder().limits(limits).start().await?;
    /// let long = "longer than thirty-two bytes, by a few";
    /// let err = server.default_tenant().unwrap().post("alice", "general", long).await.unwrap_err();
    /// assert!(matches!(err, rehearsal::ControlError::Twilio { status: 400, .. }), "{err}");
    /// # Ok(()) }
    /// ```
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The lifetime of tokens from [`MockServer::token`] and the development token endpoint
    /// when none is asked for (default: one hour).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let server = rehearsal::MockServer::builder()
    ///     .token_ttl(std::time::Duration::from_secs(60))
    ///     .start()
    ///     .await?;
    /// let too_long = rehearsal::MockServer::builder().token_ttl(std::time::Duration::from_secs(86_401));
    /// assert!(matches!(too_long.start().await, Err(rehearsal::StartError::Invalid(_))));
    /// # drop(server); Ok(()) }
    /// ```
    ///
    /// A lifetime outside 1 s to 24 h makes [`MockServerBuilder::start`] fail.
    pub fn token_ttl(mut self, ttl: Duration) -> Self {
        self.token_ttl = ttl;
        self
    }

    /// How many entries the journal keeps before dropping the oldest (default 10,000).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let server = rehearsal::MockServer::builder().journal_entries(100_000).start().await?;
    /// # drop(server); Ok(()) }
    /// ```
    pub fn journal_entries(mut self, entries: usize) -> Self {
        self.journal_entries = Some(entries);
        self
    }

    /// Starts the server on a random loopback port. It stops when the [`MockServer`] is
    /// dropped (or with [`MockServer::shutdown`]). Needs a Tokio runtime.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let server = rehearsal::MockServer::builder().start().await?;
    /// assert!(server.url().starts_with("http://127.0.0.1:"));
    /// # Ok(()) }
    /// ```
    pub async fn start(self) -> Result<MockServer, StartError> {
        let max_ttl = Duration::from_secs(rehearsal_mock_server::auth::token::MAX_TTL_SECS.unsigned_abs());
        if self.token_ttl < Duration::from_secs(1) || self.token_ttl > max_ttl {
            return Err(StartError::Invalid(format!(
                "token_ttl must be 1 s to 24 h (the longest an access token may live); got {:?}",
                self.token_ttl
            )));
        }
        let mut config = ServerConfig {
            limits: self.limits.build(),
            control_token: self.control_token,
            token_ttl_secs: self.token_ttl.as_secs(),
            ..ServerConfig::default()
        };
        if let Some(t) = self.webhook_timeout {
            config.webhooks.timeout = t;
        }
        if let Some(n) = self.journal_entries {
            config.journal_size = n;
        }
        let startup = Startup {
            seed: Some(self.seed.0),
            state_json: None,
            config,
            clock: self.clock.build()?,
        };
        let inner = rehearsal_mock_server::MockServer::start_with(startup).await.map_err(|e| match e {
            rehearsal_mock_server::server::StartError::Bind(io) => StartError::Bind(io),
            other => StartError::Seed(other.to_string()),
        })?;
        Ok(MockServer::new(inner, self.token_ttl))
    }
}
