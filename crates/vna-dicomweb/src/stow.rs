//! STOW-RS (PS3.18 §10.5): `POST /studies[/{study}]` with a `multipart/related;
//! type="application/dicom"` body. Each part streams into the ingest pipeline as it arrives;
//! a part's store is acknowledged in the response only once it is durable and catalogued.
//! Several parts of one request are stored concurrently (each fsync is the slow step), within
//! the archive's global cap.

use crate::accept::split_outside_quotes;
use crate::error::ApiError;
use crate::{base_url, AppState, Authed};
use axum::body::Body;
use axum::extract::Path;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt;
use serde_json::{json, Map, Value};
use std::collections::VecDeque;
use vna_archive::{ArchiveError, ErrorClass, IngestBody, StoreRequest, Stored};
use vna_dicom::uid::StudyUid;

/// Parts of one request being committed at once.
const PARTS_IN_FLIGHT: usize = 4;

pub(crate) async fn store(Authed(state): Authed, headers: HeaderMap, body: Body) -> Response {
    handle(state, headers, None, body).await.unwrap_or_else(IntoResponse::into_response)
}

pub(crate) async fn store_in_study(Authed(state): Authed, Path(study): Path<String>, headers: HeaderMap, body: Body) -> Response {
    let study = match StudyUid::new(&study) {
        Ok(s) => s,
        Err(e) => return ApiError::BadRequest(format!("invalid Study Instance UID in the path: {e}")).into_response(),
    };
    handle(state, headers, Some(study), body).await.unwrap_or_else(IntoResponse::into_response)
}

/// The result of one part.
enum PartResult {
    Stored(Box<Stored>),
    Failed {
        error: ArchiveError,
    },
    /// Not `application/dicom`: refused without reading it.
    WrongType,
}

/// Validates `multipart/related; type="application/dicom"; boundary=…` and returns the boundary.
fn boundary_of(headers: &HeaderMap) -> Result<String, ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::UnsupportedMediaType("STOW-RS needs Content-Type multipart/related; type=\"application/dicom\"".into()))?;
    let mut parts = split_outside_quotes(ct, ';').into_iter();
    let essence = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
    if essence != "multipart/related" {
        return Err(ApiError::UnsupportedMediaType(format!(
            "Content-Type {essence} is not supported: use multipart/related; type=\"application/dicom\""
        )));
    }
    let mut boundary = None;
    for p in parts {
        let Some((k, v)) = p.split_once('=') else { continue };
        let v = v.trim().trim_matches('"');
        match k.trim().to_ascii_lowercase().as_str() {
            "type" if !v.eq_ignore_ascii_case("application/dicom") => {
                return Err(ApiError::UnsupportedMediaType(format!(
                    "multipart/related type {v} is not supported: only application/dicom parts are accepted"
                )))
            }
            "boundary" => boundary = Some(v.to_owned()),
            _ => {}
        }
    }
    boundary.filter(|b| !b.is_empty()).ok_or_else(|| ApiError::BadRequest("multipart/related body without a boundary parameter".into()))
}

async fn handle(state: AppState, headers: HeaderMap, study: Option<StudyUid>, body: Body) -> Result<Response, ApiError> {
    state.archive.require(&state.who, vna_archive::Permission::Write).await?;
    let boundary = boundary_of(&headers)?;
    let stream = body.into_data_stream().map_err(std::io::Error::other);
    let mut multipart = multer::Multipart::new(stream, boundary);
    let mut results: Vec<PartResult> = Vec::new();
    let mut pending: VecDeque<IngestBody> = VecDeque::new();
    let mut malformed = None;
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                malformed = Some(e);
                break;
            }
        };
        let part_type = field.content_type().map(|m| m.essence_str().to_ascii_lowercase());
        if part_type.as_deref().is_some_and(|t| t != "application/dicom") {
            results.push(PartResult::WrongType);
            continue;
        }
        let mut ingest =
            match state.archive.begin_store(StoreRequest { expected_study: study.clone(), ..StoreRequest::new((*state.who).clone()) }) {
                Ok(b) => b,
                Err(ArchiveError::Busy) if results.is_empty() && pending.is_empty() => {
                    return Err(ApiError::Archive(ArchiveError::Busy));
                }
                Err(error) => {
                    results.push(PartResult::Failed { error });
                    continue;
                }
            };
        let mut field = field;
        let mut pipeline_failed = false;
        loop {
            match field.chunk().await {
                Ok(Some(chunk)) => {
                    if ingest.send(chunk).await.is_err() {
                        pipeline_failed = true;
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    // The body broke inside this part: it is not stored (dropping the
                    // unfinished ingest body aborts it).
                    malformed = Some(e);
                    break;
                }
            }
        }
        if malformed.is_some() {
            drop(ingest);
            break;
        }
        if pipeline_failed {
            // The pipeline refused the object early (e.g. not DICOM); multer skips the rest of
            // the part when the next one is requested.
            results.push(part_result(ingest.wait().await));
            continue;
        }
        ingest.end().await;
        pending.push_back(ingest);
        // Ending a body is cheap; awaiting its commit is not. Keep a few commits overlapping.
        while pending.len() >= PARTS_IN_FLIGHT {
            if let Some(p) = pending.pop_front() {
                results.push(part_result(p.wait().await));
            }
        }
    }
    for p in pending {
        results.push(part_result(p.wait().await));
    }
    if let Some(e) = malformed {
        if results.iter().all(|r| !matches!(r, PartResult::Stored(_))) {
            return Err(ApiError::BadRequest(format!("malformed multipart body: {}", multer_reason(&e))));
        }
        // Parts before the break were stored and acknowledged below; the broken one is not.
        tracing::info!(error = %e, "multipart body ended abnormally after stored parts");
    }
    if results.is_empty() {
        return Err(ApiError::BadRequest("the multipart body holds no parts".into()));
    }
    Ok(response(&state, &headers, study.as_ref(), results))
}

fn part_result(r: Result<Stored, ArchiveError>) -> PartResult {
    match r {
        Ok(s) => PartResult::Stored(Box::new(s)),
        Err(error) => PartResult::Failed { error },
    }
}

fn multer_reason(e: &multer::Error) -> &'static str {
    match e {
        multer::Error::IncompleteStream | multer::Error::IncompleteFieldData { .. } => "the body ended inside a part",
        multer::Error::IncompleteHeaders | multer::Error::ReadHeaderFailed(_) => "a part has malformed headers",
        multer::Error::StreamReadFailed(_) => "the request body could not be read",
        _ => "the multipart framing is invalid",
    }
}

/// PS3.18 Table 10.5.3-3 failure reasons, from the one error-class table.
fn failure_reason(error: &ArchiveError) -> u16 {
    match error {
        e if e.is_identity_mismatch() => 0xA900,
        e => match e.class() {
            ErrorClass::InvalidInput => 0xC000,
            ErrorClass::TooLarge | ErrorClass::Busy | ErrorClass::Timeout => 0xA700,
            ErrorClass::Unsupported => 0x0122,
            // An instance of a tenant the sender may not write (the whole request without the
            // write permission is refused with 403 before its body is read).
            ErrorClass::Conflict | ErrorClass::NotFound | ErrorClass::Forbidden | ErrorClass::Internal => 0x0110,
        },
    }
}

/// The Store Instances Response Module (PS3.18 §10.5.3.1) and the status (PS3.18 Table
/// 10.5.3-1): 200 all stored, 202 some failed, 409 all failed (413 when every failure was an
/// object over the size limit, 503 with Retry-After when every failure was a transient outage
/// of storage, catalog or capacity: the same request may succeed later).
fn response(state: &AppState, headers: &HeaderMap, study: Option<&StudyUid>, results: Vec<PartResult>) -> Response {
    let base = base_url(state, headers);
    let mut referenced = Vec::new();
    let mut failed = Vec::new();
    let mut all_too_large = true;
    let mut all_busy = true;
    let mut study_of_first: Option<String> = study.map(|s| s.to_string());
    for r in results {
        match r {
            PartResult::Stored(s) => {
                let i = &s.instance;
                let url = format!("{base}/studies/{}/series/{}/instances/{}", i.study.study_uid, i.series.series_uid, i.instance.sop_uid);
                study_of_first.get_or_insert_with(|| i.study.study_uid.to_string());
                referenced.push(json!({
                    "00081150": { "vr": "UI", "Value": [i.instance.sop_class_uid.as_str()] },
                    "00081155": { "vr": "UI", "Value": [i.instance.sop_uid.as_str()] },
                    "00081190": { "vr": "UR", "Value": [url] },
                }));
            }
            PartResult::Failed { error } => {
                all_too_large &= error.class() == ErrorClass::TooLarge;
                all_busy &= error.class() == ErrorClass::Busy;
                let mut item = Map::new();
                if let Some(sop) = error.sop() {
                    item.insert("00081150".into(), json!({ "vr": "UI", "Value": [sop.class.as_str()] }));
                    item.insert("00081155".into(), json!({ "vr": "UI", "Value": [sop.instance.as_str()] }));
                }
                item.insert("00081197".into(), json!({ "vr": "US", "Value": [failure_reason(&error)] }));
                // Reason text for people reading the response; not a standard attribute.
                item.insert("00090010".into(), json!({ "vr": "LO", "Value": ["VNA"] }));
                item.insert("00091001".into(), json!({ "vr": "LT", "Value": [error.to_string()] }));
                failed.push(Value::Object(item));
            }
            PartResult::WrongType => {
                all_too_large = false;
                all_busy = false;
                failed.push(json!({
                    "00081197": { "vr": "US", "Value": [0xC000u16] },
                    "00090010": { "vr": "LO", "Value": ["VNA"] },
                    "00091001": { "vr": "LT", "Value": ["part is not application/dicom"] },
                }));
            }
        }
    }
    let status = match (referenced.is_empty(), failed.is_empty()) {
        (false, true) => StatusCode::OK,
        (false, false) => StatusCode::ACCEPTED,
        (true, _) if all_too_large => StatusCode::PAYLOAD_TOO_LARGE,
        (true, _) if all_busy => StatusCode::SERVICE_UNAVAILABLE,
        (true, _) => StatusCode::CONFLICT,
    };
    let mut doc = Map::new();
    if let (Some(s), false) = (&study_of_first, referenced.is_empty()) {
        doc.insert("00081190".into(), json!({ "vr": "UR", "Value": [format!("{base}/studies/{s}")] }));
    }
    if !failed.is_empty() {
        doc.insert("00081198".into(), json!({ "vr": "SQ", "Value": failed }));
    }
    if !referenced.is_empty() {
        doc.insert("00081199".into(), json!({ "vr": "SQ", "Value": referenced }));
    }
    let mut resp = (status, [(header::CONTENT_TYPE, "application/dicom+json")], Value::Object(doc).to_string()).into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        resp.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ct(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, v.parse().expect("a header value"));
        h
    }

    #[test]
    fn the_boundary_of_a_stow_request() {
        assert_eq!(boundary_of(&ct("multipart/related; type=\"application/dicom\"; boundary=abc")).ok().as_deref(), Some("abc"));
        assert_eq!(boundary_of(&ct("Multipart/Related; boundary=\"a;b\"; type=application/dicom")).ok().as_deref(), Some("a;b"));
        assert_eq!(boundary_of(&ct("multipart/related; boundary=abc")).ok().as_deref(), Some("abc"), "type may be left out");
        assert!(matches!(boundary_of(&ct("application/dicom")), Err(ApiError::UnsupportedMediaType(_))));
        assert!(matches!(
            boundary_of(&ct("multipart/related; type=\"application/dicom+json\"; boundary=x")),
            Err(ApiError::UnsupportedMediaType(_))
        ));
        assert!(matches!(boundary_of(&ct("multipart/related; type=\"application/dicom\"")), Err(ApiError::BadRequest(_))));
        assert!(matches!(boundary_of(&HeaderMap::new()), Err(ApiError::UnsupportedMediaType(_))));
    }

    #[test]
    fn failure_reasons_follow_the_error_class() {
        use vna_dicom::validate::Defect;
        assert_eq!(failure_reason(&ArchiveError::Invalid(Defect::MetaSopInstanceMismatch)), 0xA900);
        assert_eq!(failure_reason(&ArchiveError::Invalid(Defect::PixelDataTooShort { actual: 1, expected: 2 })), 0xC000);
        assert_eq!(failure_reason(&ArchiveError::TooLarge { limit: 1 }), 0xA700);
        assert_eq!(failure_reason(&ArchiveError::Busy), 0xA700);
    }
}
