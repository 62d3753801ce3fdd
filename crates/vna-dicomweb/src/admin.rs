//! Administrative HTTP routes outside DICOMweb (mounted at `/admin`): what an archive
//! administrator needs that no DICOM service offers. For now, the versions of an instance.
//! No authentication yet: the server binds to loopback by default (security issue to come).

use crate::error::ApiError;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures::TryStreamExt;
use serde_json::json;
use std::sync::Arc;
use vna_archive::Archive;
use vna_dicom::uid::SopInstanceUid;

pub fn admin_router(archive: Arc<Archive>) -> Router {
    Router::new()
        .route("/instances/{sop}/versions", get(versions))
        .route("/instances/{sop}/versions/{version}", get(version_bytes))
        .with_state(archive)
}

fn sop(s: &str) -> Result<SopInstanceUid, ApiError> {
    SopInstanceUid::new(s).map_err(|e| ApiError::BadRequest(format!("invalid SOP Instance UID in the path: {e}")))
}

/// `GET /admin/instances/{sop}/versions`: every stored version, oldest first.
async fn versions(State(archive): State<Arc<Archive>>, Path(uid): Path<String>) -> Response {
    let result = async {
        let rows = archive.versions(&sop(&uid)?).await?;
        let list: Vec<_> = rows
            .iter()
            .map(|r| {
                json!({
                    "version": r.version,
                    "current": r.is_current,
                    "storedAtMs": r.stored_at_ms,
                    "size": r.blob.size,
                    "sha256": r.blob.sha256,
                    "transferSyntax": r.instance.transfer_syntax,
                    "studyInstanceUid": r.study.study_uid.as_str(),
                    "seriesInstanceUid": r.series.series_uid.as_str(),
                })
            })
            .collect();
        Ok::<_, ApiError>((StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], serde_json::Value::Array(list).to_string()).into_response())
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `GET /admin/instances/{sop}/versions/{n}`: the stored bytes of version `n`.
async fn version_bytes(State(archive): State<Arc<Archive>>, Path((uid, version)): Path<(String, i32)>) -> Response {
    let result = async {
        let rows = archive.versions(&sop(&uid)?).await?;
        let row = rows
            .into_iter()
            .find(|r| r.version == version)
            .ok_or(ApiError::Archive(vna_archive::ArchiveError::NotFound { what: "instance version" }))?;
        let stream = archive.open(&row, None).await?.map_err(|e| std::io::Error::other(e.to_string()));
        Ok::<_, ApiError>(
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/dicom".to_owned()), (header::CONTENT_LENGTH, row.blob.size.to_string())],
                Body::from_stream(stream),
            )
                .into_response(),
        )
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}
