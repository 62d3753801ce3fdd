//! `POST /api/non-dicom`: archive a file made outside DICOM — an MP4 video from an operating
//! room recorder, a PDF report, a JPEG photo — as a DICOM instance (see
//! `vna_dicom::encapsulate`), found and retrieved afterwards through DICOMweb and DIMSE like
//! any other.
//!
//! The body is `multipart/form-data` (RFC 7578) with two parts, in this order:
//! - `metadata`: a JSON object of DICOM keywords to string values, e.g. `{"PatientID": "123",
//!   "PatientName": "Doe^Jane", "StudyDescription": "Colonoscopy", "Modality": "ES"}`; or only
//!   `{"StudyInstanceUID": "…"}` of a stored study, whose patient and study are then used;
//! - `file`: the file, with its Content-Type (`video/mp4`, `application/pdf`, `image/jpeg`).
//!
//! The metadata is checked before the file is read, so a bad request is refused without
//! spooling gigabytes. The file is spooled to the data directory's `spool/` (removed when
//! the request ends), probed, and streamed into the ingest pipeline. The answer, once the
//! instance is durable and catalogued: 201 with its UIDs and RetrieveURL.

use crate::accept::split_outside_quotes;
use crate::error::ApiError;
use crate::{base_url, AppState, Authed};
use axum::body::Body;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use vna_archive::{ArchiveError, ErrorClass, NON_DICOM_MEDIA_TYPES};
use vna_dicom::encapsulate::Attributes;

/// Largest metadata part.
const MAX_METADATA_BYTES: usize = 64 * 1024;

pub(crate) async fn store(Authed(state): Authed, headers: HeaderMap, body: Body) -> Response {
    handle(state, headers, body).await.unwrap_or_else(IntoResponse::into_response)
}

async fn handle(state: AppState, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    // Before anything is read or spooled.
    state.archive.require(&state.who, vna_archive::Permission::Write).await?;
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let essence = split_outside_quotes(ct, ';').into_iter().next().unwrap_or_default().trim().to_ascii_lowercase();
    if essence != "multipart/form-data" {
        return Err(ApiError::UnsupportedMediaType("use multipart/form-data with a `metadata` part (JSON) and a `file` part".into()));
    }
    let boundary = multer::parse_boundary(ct).map_err(|_| ApiError::BadRequest("multipart/form-data without a boundary".into()))?;
    let mut multipart = multer::Multipart::new(body.into_data_stream().map_err(std::io::Error::other), boundary);
    let malformed = |e: multer::Error| ApiError::BadRequest(format!("malformed multipart body: {e}"));
    let mut attrs: Option<Attributes> = None;
    let mut spooled: Option<(tempfile::TempPath, String)> = None;
    while let Some(mut field) = multipart.next_field().await.map_err(malformed)? {
        match field.name() {
            Some("metadata") if attrs.is_none() && spooled.is_none() => {
                let mut raw = Vec::new();
                while let Some(chunk) = field.chunk().await.map_err(malformed)? {
                    raw.extend_from_slice(&chunk);
                    if raw.len() > MAX_METADATA_BYTES {
                        return Err(ApiError::BadRequest(format!("the metadata part is larger than {MAX_METADATA_BYTES} bytes")));
                    }
                }
                attrs = Some(attributes(&raw)?);
            }
            Some("file") if spooled.is_none() => {
                if attrs.is_none() {
                    return Err(ApiError::BadRequest("the metadata part must come before the file part".into()));
                }
                let media = field.content_type().map(|m| m.essence_str().to_ascii_lowercase()).unwrap_or_default();
                if !NON_DICOM_MEDIA_TYPES.contains(&media.as_str()) {
                    return Err(ApiError::UnsupportedMediaType(format!(
                        "the file part's Content-Type must be one of {} (was {})",
                        NON_DICOM_MEDIA_TYPES.join(", "),
                        if media.is_empty() { "missing" } else { &media }
                    )));
                }
                spooled = Some((spool(&state, &mut field).await?, media));
            }
            Some(name @ ("metadata" | "file")) => return Err(ApiError::BadRequest(format!("the `{name}` part is given twice"))),
            _ => return Err(ApiError::BadRequest("unknown part: only `metadata` and `file` are accepted".into())),
        }
    }
    let (Some(attrs), Some((path, media))) = (attrs, spooled) else {
        return Err(ApiError::BadRequest("both a `metadata` part and a `file` part are required".into()));
    };
    let stored = state.archive.store_non_dicom(&state.who, &path, &media, attrs).await.map_err(|e| match e.class() {
        ErrorClass::Unsupported => ApiError::UnsupportedMediaType(e.to_string()),
        _ => ApiError::Archive(e),
    })?;
    drop(path);
    let i = &stored.instance;
    let url = format!(
        "{}/studies/{}/series/{}/instances/{}",
        base_url(&state, &headers),
        i.study.study_uid,
        i.series.series_uid,
        i.instance.sop_uid
    );
    let body = json!({
        "SOPClassUID": i.instance.sop_class_uid.as_str(),
        "SOPInstanceUID": i.instance.sop_uid.as_str(),
        "StudyInstanceUID": i.study.study_uid.as_str(),
        "SeriesInstanceUID": i.series.series_uid.as_str(),
        "TransferSyntaxUID": i.instance.transfer_syntax,
        "RetrieveURL": url,
    });
    Ok((StatusCode::CREATED, [(header::CONTENT_TYPE, "application/json".to_owned()), (header::LOCATION, url)], body.to_string())
        .into_response())
}

/// `{"Keyword": "value", …}`; numbers are accepted for numeric-string attributes.
fn attributes(raw: &[u8]) -> Result<Attributes, ApiError> {
    let json: Value = serde_json::from_slice(raw).map_err(|_| ApiError::BadRequest("the metadata part is not valid JSON".into()))?;
    let Value::Object(map) = json else {
        return Err(ApiError::BadRequest("the metadata part must be a JSON object of keyword to value".into()));
    };
    let mut attrs = Attributes::default();
    for (k, v) in map {
        let v = match v {
            Value::String(s) => s,
            Value::Number(n) => n.to_string(),
            _ => {
                return Err(ApiError::BadRequest(format!(
                    "metadata: the value of {} must be a string",
                    k.chars().filter(char::is_ascii_alphanumeric).take(64).collect::<String>()
                )))
            }
        };
        attrs.set(&k, &v).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    }
    Ok(attrs)
}

/// Writes the part to a temporary file in the spool directory, within the object size limit.
async fn spool(state: &AppState, field: &mut multer::Field<'_>) -> Result<tempfile::TempPath, ApiError> {
    let internal = |_| ApiError::Archive(ArchiveError::Task { step: "spooling the upload" });
    let dir = state.config.spool_dir.clone();
    tokio::fs::create_dir_all(&dir).await.map_err(internal)?;
    let tmp = tokio::task::spawn_blocking(move || tempfile::Builder::new().prefix("upload-").tempfile_in(dir))
        .await
        .map_err(|_| ApiError::Archive(ArchiveError::Task { step: "spooling the upload" }))?
        .map_err(internal)?;
    let (std_file, path) = tmp.into_parts();
    let mut file = tokio::fs::File::from_std(std_file);
    let limit = state.archive.config().max_object_bytes;
    let mut written = 0u64;
    while let Some(chunk) = field.chunk().await.map_err(|e| ApiError::BadRequest(format!("malformed multipart body: {e}")))? {
        written += chunk.len() as u64;
        if written > limit {
            return Err(ApiError::Archive(ArchiveError::TooLarge { limit }));
        }
        file.write_all(&chunk).await.map_err(internal)?;
    }
    file.flush().await.map_err(internal)?;
    Ok(path)
}
