//! WADO-URI (PS3.18 §9): `GET {root}/wado?requestType=WADO&studyUID=…&seriesUID=…&objectUID=…`.
//! Serves `application/dicom` (the stored object); rendered JPEG is not produced yet, so a
//! request for it gets 406 with a reason rather than a silently different media type.

use crate::error::ApiError;
use crate::AppState;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt;
use std::collections::HashMap;
use vna_catalog::Scope;
use vna_dicom::uid::{SeriesUid, SopInstanceUid, StudyUid};

pub(crate) async fn wado(State(state): State<AppState>, Query(p): Query<HashMap<String, String>>) -> Response {
    handle(state, p).await.unwrap_or_else(IntoResponse::into_response)
}

async fn handle(state: AppState, p: HashMap<String, String>) -> Result<Response, ApiError> {
    let get = |k: &str| p.get(k).map(String::as_str).unwrap_or("");
    if get("requestType") != "WADO" {
        return Err(ApiError::BadRequest("requestType must be WADO".into()));
    }
    let bad = |k: &str, e: vna_dicom::uid::UidError| ApiError::BadRequest(format!("{k}: {e}"));
    let scope = Scope {
        study: StudyUid::new(get("studyUID")).map_err(|e| bad("studyUID", e))?,
        series: Some(SeriesUid::new(get("seriesUID")).map_err(|e| bad("seriesUID", e))?),
        instance: Some(SopInstanceUid::new(get("objectUID")).map_err(|e| bad("objectUID", e))?),
    };
    // PS3.18 §9.1.2.3.3: the default is image/jpeg for images; ask for application/dicom.
    let content_type = p.get("contentType").map(String::as_str).unwrap_or("image/jpeg");
    let accepts_dicom = content_type.split(',').any(|c| matches!(c.trim().split(';').next().unwrap_or(""), "application/dicom" | "*/*"));
    if !accepts_dicom {
        return Err(ApiError::NotAcceptable(format!("contentType {content_type} is not available; use contentType=application/dicom")));
    }
    let row = state
        .archive
        .instances(&scope)
        .await?
        .into_iter()
        .next()
        .ok_or(ApiError::Archive(vna_archive::ArchiveError::NotFound { what: "instance" }))?;
    if let Some(ts) = p.get("transferSyntax").filter(|t| !t.is_empty() && **t != row.instance.transfer_syntax) {
        return Err(ApiError::NotAcceptable(format!("transferSyntax {ts} requires transcoding, which is not supported yet")));
    }
    let stream = state.archive.open(&row, None).await?.map_err(|e| std::io::Error::other(e.to_string()));
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/dicom".to_owned()), (header::CONTENT_LENGTH, row.blob.size.to_string())],
        Body::from_stream(stream),
    )
        .into_response())
}
