//! The domain's error vocabulary, in Twilio's terms.
//!
//! Every way in (REST, the SDK's requests over twilsock, scenario actions) renders domain errors
//! to a wire that carries Twilio's HTTP status and numeric error code, so the domain speaks that
//! vocabulary directly: each variant knows its status and code. Codes are Twilio's published ones
//! where one exists for the case; the few marked "closest" are the nearest published code.

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DomainError {
    /// A resource addressed by SID or unique name does not exist (REST: 20404).
    #[error("the requested resource {path} was not found")]
    NotFound { kind: Resource, path: String },
    /// A parameter is missing or has a value Twilio rejects.
    #[error("{message}")]
    InvalidParameter { param: &'static str, message: String },
    /// Attributes must be a JSON string that parses (Twilio: 50006, closest).
    #[error("invalid attributes: {param} must be valid JSON")]
    InvalidAttributes { param: &'static str },
    /// A length limit from Twilio's published limits was exceeded.
    #[error("{what} is too long: {actual} bytes, at most {limit}")]
    TooLong {
        what: &'static str,
        code: u32,
        actual: usize,
        limit: usize,
    },
    /// A unique name or identity is already taken.
    #[error("{message}")]
    Conflict { code: u32, message: String },
    /// A per-conversation or per-service capacity limit.
    #[error("{message}")]
    LimitReached { code: u32, message: String },
    /// The caller may not see or change this resource (SDK access rules).
    #[error("{message}")]
    Forbidden { code: u32, message: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Service,
    Conversation,
    Participant,
    Message,
    User,
    Role,
    Media,
    /// A conversation-scoped webhook (WH…).
    Webhook,
}

impl DomainError {
    pub fn status(&self) -> u16 {
        match self {
            DomainError::NotFound { .. } => 404,
            DomainError::InvalidParameter { .. } | DomainError::InvalidAttributes { .. } | DomainError::TooLong { .. } => 400,
            DomainError::Conflict { .. } => 409,
            DomainError::LimitReached { .. } => 400,
            DomainError::Forbidden { .. } => 403,
        }
    }

    /// Twilio's error code as the REST API reports it.
    pub fn code(&self) -> u32 {
        match self {
            DomainError::NotFound { .. } => 20404,
            // Twilio's generic "invalid parameter" answer.
            DomainError::InvalidParameter { .. } => 20001,
            DomainError::InvalidAttributes { .. } => 50006,
            DomainError::TooLong { code, .. }
            | DomainError::Conflict { code, .. }
            | DomainError::LimitReached { code, .. }
            | DomainError::Forbidden { code, .. } => *code,
        }
    }

    /// The code the Conversations client API (aim) uses, which names the missing resource.
    pub fn client_code(&self) -> u32 {
        match self {
            DomainError::NotFound { kind, .. } => match kind {
                Resource::Service => 50050,
                Resource::Conversation => 50350,
                Resource::Participant => 50400,
                Resource::Message => 50500,
                Resource::User => 50200,
                Resource::Role => 50100,
                Resource::Media => 50510,
                Resource::Webhook => 50360,
            },
            other => other.code(),
        }
    }

    pub fn not_found(kind: Resource, path: impl Into<String>) -> DomainError {
        DomainError::NotFound { kind, path: path.into() }
    }

    pub fn invalid(param: &'static str, message: impl Into<String>) -> DomainError {
        DomainError::InvalidParameter {
            param,
            message: message.into(),
        }
    }
}

/// Codes used by the domain, named so call sites read as prose.
pub mod codes {
    /// Message body exceeds the maximum length.
    pub const MESSAGE_BODY_TOO_LONG: u32 = 50504;
    /// Attributes exceed the maximum size (closest published code).
    pub const ATTRIBUTES_TOO_LONG: u32 = 50006;
    /// A conversation with this unique name already exists.
    pub const CONVERSATION_UNIQUE_NAME_TAKEN: u32 = 50353;
    /// The participant (identity or binding) is already in the conversation.
    pub const PARTICIPANT_EXISTS: u32 = 50433;
    /// A binding for this participant and proxy address already exists.
    pub const BINDING_EXISTS: u32 = 50416;
    /// The conversation has reached its participant limit.
    pub const PARTICIPANT_LIMIT: u32 = 50438;
    /// A user with this identity already exists.
    pub const USER_EXISTS: u32 = 50201;
    /// The SDK user is not a participant of the conversation.
    pub const NOT_A_PARTICIPANT: u32 = 50430;
    /// Friendly name too long (closest published code).
    pub const NAME_TOO_LONG: u32 = 20001;
}
