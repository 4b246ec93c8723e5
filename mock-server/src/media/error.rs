//! MCS errors: Twilio's JSON error body (`code`, `message`, `more_info`, `status`), always with
//! `Content-Type: application/json`.
//!
//! Unlike the REST API's rendering, a 401 carries the `WWW-Authenticate: Basic` challenge only
//! when the caller tried HTTP Basic credentials: the SDK authenticates with a token header from
//! browsers, where a Basic challenge on a failed request can pop up a login dialog.
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::auth::TokenError;
use crate::domain::codes;
use crate::rest::ApiError;

/// Twilio's generic "Forbidden".
const FORBIDDEN: u32 = 20403;
/// Twilio's "Method not allowed".
const METHOD_NOT_ALLOWED: u32 = 20004;
/// Conversations: "Invalid message media content type".
const BAD_CONTENT_TYPE: u32 = 50511;
/// Conversations: "Message media size is too large".
const TOO_LARGE: u32 = 50512;

#[derive(Debug)]
pub(super) struct McsError {
    pub(super) api: ApiError,
    /// Render through [`ApiError`], `WWW-Authenticate` challenge included.
    basic_challenge: bool,
}

impl From<ApiError> for McsError {
    fn from(api: ApiError) -> Self {
        McsError {
            api,
            basic_challenge: false,
        }
    }
}

impl McsError {
    fn new(status: u16, code: u32, message: impl Into<String>) -> McsError {
        ApiError::new(status, code, message).into()
    }

    /// A failure of HTTP Basic credentials, rendered as the REST API renders it.
    pub(super) fn basic(api: ApiError) -> McsError {
        McsError {
            api,
            basic_challenge: true,
        }
    }

    /// No credentials at all.
    pub(super) fn unauthenticated() -> McsError {
        ApiError::unauthenticated().into()
    }

    /// A rejected access token: 401 with the token error's own code (20101–20107, 20157).
    pub(super) fn token(e: &TokenError) -> McsError {
        McsError::new(e.status(), e.code(), e.to_string())
    }

    pub(super) fn not_found(path: &str) -> McsError {
        ApiError::not_found(path).into()
    }

    pub(super) fn invalid(message: impl Into<String>) -> McsError {
        ApiError::invalid(message).into()
    }

    pub(super) fn forbidden(message: impl Into<String>) -> McsError {
        McsError::new(403, FORBIDDEN, message)
    }

    /// The caller may not read this media (not the uploader, not in its conversation).
    pub(super) fn not_a_participant(media_sid: &str) -> McsError {
        McsError::new(
            403,
            codes::NOT_A_PARTICIPANT,
            format!("User is not allowed to access media {media_sid}"),
        )
    }

    pub(super) fn too_large(limit: usize) -> McsError {
        McsError::new(413, TOO_LARGE, format!("Media size is too large: the limit is {limit} bytes"))
    }

    /// The upload would take the tenant past its media quota. Twilio documents no MCS storage
    /// quota; its closest documented answer is the size limit's, 50512 "Message media size is
    /// too large" (<https://www.twilio.com/docs/api/errors/50512>), with 413, so a client that
    /// handles one handles the other. The message says which limit it was.
    pub(super) fn quota_exceeded(quota: u64, used: u64, size: usize) -> McsError {
        McsError::new(
            413,
            TOO_LARGE,
            format!(
                "Media storage quota exceeded: the account stores (or is uploading) {used} of {quota} bytes and this upload has {size}; \
                 delete the tenant's media (reset or delete the tenant) or raise the quota"
            ),
        )
    }

    pub(super) fn bad_content_type(message: impl Into<String>) -> McsError {
        McsError::new(400, BAD_CONTENT_TYPE, message)
    }

    pub(super) fn method_not_allowed() -> McsError {
        McsError::new(405, METHOD_NOT_ALLOWED, "Method not allowed")
    }
}

impl IntoResponse for McsError {
    fn into_response(self) -> Response {
        if self.basic_challenge {
            return self.api.into_response();
        }
        let status = StatusCode::from_u16(self.api.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, axum::Json(self.api.body())).into_response()
    }
}
