//! Turning aws-sdk-s3 errors into [`BlobError`]s: one place decides what is transient
//! (timeouts, connection failures, 5xx, throttling), what is missing, what was refused as
//! corrupted, and what the store answered otherwise.

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use vna_blob::BlobError;

/// What an S3 call failed with, before the caller decides what it means for its operation.
#[derive(Debug)]
pub(crate) struct S3Failure {
    /// HTTP status, when a response came back at all.
    pub status: Option<u16>,
    pub code: String,
    /// No answer because the request never left (a bug or a bad setting), not because the
    /// store could not be reached: retrying will not help.
    pub not_sent: bool,
}

impl S3Failure {
    pub fn from_sdk<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> Self
    where
        R: RawStatus,
    {
        let (status, code, not_sent) = match e {
            SdkError::ServiceError(ctx) => (Some(ctx.raw().status_u16()), ctx.err().code().unwrap_or(""), false),
            SdkError::ResponseError(ctx) => (Some(ctx.raw().status_u16()), "unparseable response", false),
            SdkError::TimeoutError(_) => (None, "timeout", false),
            SdkError::DispatchFailure(_) => (None, "connection failed", false),
            SdkError::ConstructionFailure(_) => (None, "request construction failed", true),
            _ => (None, "unknown failure", false),
        };
        S3Failure { status, code: code.to_owned(), not_sent }
    }

    pub fn is_not_found(&self) -> bool {
        self.status == Some(404) && self.code != "NoSuchBucket"
    }

    pub fn is_corruption(&self) -> bool {
        matches!(self.code.as_str(), "BadDigest" | "InvalidDigest" | "XAmzContentSHA256Mismatch" | "XAmzContentChecksumMismatch")
    }

    pub fn is_access_denied(&self) -> bool {
        self.status == Some(403)
    }

    /// The version has no retention or legal hold, or the bucket no Object Lock at all.
    pub fn is_no_lock(&self) -> bool {
        self.status == Some(404) || matches!(self.code.as_str(), "NoSuchObjectLockConfiguration" | "InvalidRequest")
    }

    /// The generic rendering: transient when the store could not be reached or said so.
    pub fn into_blob_error(self, step: &'static str, key: &str) -> BlobError {
        if self.is_not_found() {
            return BlobError::NotFound { key: key.to_owned() };
        }
        if self.is_corruption() {
            return BlobError::Corrupted { step };
        }
        match self.status {
            None if self.not_sent => BlobError::Service { step, status: 0, code: self.code },
            None => BlobError::Unavailable { step },
            Some(status) => BlobError::Service { step, status, code: self.code },
        }
    }
}

/// The status of a raw HTTP response, whatever the SDK's response type.
pub(crate) trait RawStatus {
    fn status_u16(&self) -> u16;
}

impl RawStatus for aws_sdk_s3::config::http::HttpResponse {
    fn status_u16(&self) -> u16 {
        self.status().as_u16()
    }
}

/// Maps any SDK error with the generic rules.
pub(crate) fn sdk<'k, E: ProvideErrorMetadata>(
    step: &'static str,
    key: &'k str,
) -> impl FnOnce(SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> BlobError + 'k {
    move |e| {
        let f = S3Failure::from_sdk(&e);
        tracing::debug!(step, status = ?f.status, code = %f.code, "s3 request failed");
        f.into_blob_error(step, key)
    }
}

/// For deletes and retention changes: a 403 is the store's Object Lock refusing (retention or
/// legal hold); anything else as usual.
pub(crate) fn locked_or<'k, E: ProvideErrorMetadata>(
    step: &'static str,
    key: &'k str,
) -> impl FnOnce(SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> BlobError + 'k {
    move |e| {
        let f = S3Failure::from_sdk(&e);
        if f.is_access_denied() {
            BlobError::Locked { key: key.to_owned() }
        } else {
            f.into_blob_error(step, key)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        let f = |status: Option<u16>, code: &str| S3Failure { status, code: code.to_owned(), not_sent: false };
        assert!(matches!(f(Some(404), "NoSuchKey").into_blob_error("x", "k"), BlobError::NotFound { .. }));
        assert!(matches!(f(Some(404), "NoSuchBucket").into_blob_error("x", "k"), BlobError::Service { status: 404, .. }));
        assert!(matches!(f(Some(400), "BadDigest").into_blob_error("x", "k"), BlobError::Corrupted { .. }));
        assert!(f(Some(503), "SlowDown").into_blob_error("x", "k").is_transient());
        assert!(f(Some(500), "InternalError").into_blob_error("x", "k").is_transient());
        assert!(f(None, "timeout").into_blob_error("x", "k").is_transient());
        assert!(f(None, "connection failed").into_blob_error("x", "k").is_transient());
        assert!(!f(Some(403), "AccessDenied").into_blob_error("x", "k").is_transient());
        let not_sent = S3Failure { status: None, code: "request construction failed".to_owned(), not_sent: true };
        assert!(!not_sent.into_blob_error("x", "k").is_transient());
    }
}
