//! Twilio's REST error body, for every failure including extractor rejections.
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::domain::DomainError;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: u16,
    pub code: u32,
    pub message: String,
}

impl ApiError {
    pub fn new(status: u16, code: u32, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn unauthenticated() -> ApiError {
        ApiError::new(401, 20003, "Authenticate")
    }

    pub fn not_found(path: &str) -> ApiError {
        ApiError::new(404, 20404, format!("The requested resource {path} was not found"))
    }

    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(400, 20001, message)
    }

    pub fn body(&self) -> serde_json::Value {
        json!({
            "code": self.code,
            "message": self.message,
            "more_info": format!("https://www.twilio.com/docs/errors/{}", self.code),
            "status": self.status,
        })
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        ApiError {
            status: e.status(),
            code: e.code(),
            message: e.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut res = (status, axum::Json(self.body())).into_response();
        if self.status == 401 {
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"Twilio API\""));
        }
        res
    }
}
