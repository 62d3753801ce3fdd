//! The one table from archive error classes to HTTP statuses (PS3.18 §8.6 status codes), and
//! the error response itself: a short, PHI-free reason; 5xx say only "internal error" and an
//! id that the log line carries too.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use vna_archive::{ArchiveError, ErrorClass};

#[derive(Debug)]
pub(crate) enum ApiError {
    Archive(ArchiveError),
    /// A malformed request (bad UID in the path, bad query parameter…).
    BadRequest(String),
    /// The request asks for a representation we cannot produce.
    NotAcceptable(String),
    UnsupportedMediaType(String),
}

pub(crate) fn status_of(class: ErrorClass) -> StatusCode {
    match class {
        ErrorClass::InvalidInput => StatusCode::BAD_REQUEST,
        ErrorClass::NotFound => StatusCode::NOT_FOUND,
        ErrorClass::Conflict => StatusCode::CONFLICT,
        ErrorClass::Unsupported => StatusCode::NOT_ACCEPTABLE,
        ErrorClass::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorClass::Busy => StatusCode::SERVICE_UNAVAILABLE,
        ErrorClass::Timeout => StatusCode::GATEWAY_TIMEOUT,
        ErrorClass::Forbidden => StatusCode::FORBIDDEN,
        ErrorClass::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<ArchiveError> for ApiError {
    fn from(e: ArchiveError) -> Self {
        ApiError::Archive(e)
    }
}

/// The status of an archive error and what the client is told: its PHI-free reason, or for a
/// server error only an id that the log line (written here) carries too.
pub(crate) fn status_and_message(e: ArchiveError) -> (StatusCode, String) {
    let status = status_of(e.class());
    if !status.is_server_error() {
        return (status, e.to_string());
    }
    let id = uuid::Uuid::new_v4().simple().to_string();
    tracing::error!(error_id = %id, error = %e, source = ?std::error::Error::source(&e), "request failed");
    let message =
        if status == StatusCode::SERVICE_UNAVAILABLE { format!("{e} (error id {id})") } else { format!("internal error (error id {id})") };
    (status, message)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
            ApiError::NotAcceptable(m) => (StatusCode::NOT_ACCEPTABLE, m),
            ApiError::UnsupportedMediaType(m) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, m),
            ApiError::Archive(e) => status_and_message(e),
        };
        let mut resp = (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], message).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        resp
    }
}
