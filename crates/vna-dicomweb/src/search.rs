//! `GET /api/search`: studies found by meaning (`vna-search` through the archive);
//! `POST /api/reports`: a report for a study, as plain text or an HL7 v2 ORU^R01; and
//! `GET /admin/search`: where this node's index stands against the change feed;
//! `POST /admin/search/reindex`: every node rebuilds its index from the catalog.
//!
//! Parameters: `q` (words, `"phrases"`, `-exclusions`), `limit` (1–1000, default 20),
//! `offset`, `modality` (repeated or comma-separated), `from` and `to` (study dates,
//! `YYYYMMDD` or `YYYY-MM-DD`, inclusive), `patientId`, `institution`. Each hit links to its
//! study in DICOMweb (`RetrieveURL`, PS3.18 §10.4).

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde_json::json;
use std::sync::Arc;
use vna_archive::{Archive, Principal, ReportIn, SearchRequest, StudyRef};

use crate::error::ApiError;
use crate::{base_url, Authed};

/// Hits per page when `limit` is not given.
const DEFAULT_LIMIT: usize = 20;

const KNOWN: &[&str] = &["q", "limit", "offset", "modality", "from", "to", "patientId", "institution"];

fn request(params: &[(String, String)]) -> Result<SearchRequest, ApiError> {
    let mut req = SearchRequest { limit: DEFAULT_LIMIT, ..SearchRequest::default() };
    let mut seen = std::collections::HashSet::new();
    for (k, v) in params {
        if !KNOWN.contains(&k.as_str()) {
            return Err(ApiError::BadRequest(format!("unknown parameter {k}")));
        }
        if k != "modality" && !seen.insert(k.as_str()) {
            return Err(ApiError::BadRequest(format!("parameter {k} is given twice")));
        }
        let number = |what: &str| v.parse::<usize>().map_err(|_| ApiError::BadRequest(format!("{what} must be a non-negative integer")));
        match k.as_str() {
            "q" => req.q = v.clone(),
            "limit" => req.limit = number("limit")?,
            "offset" => req.offset = number("offset")?,
            "modality" => {
                for m in v.split(',').map(str::trim).filter(|m| !m.is_empty()) {
                    if m.len() > 16 || !m.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                        return Err(ApiError::BadRequest("modality must be a DICOM modality code (CS)".into()));
                    }
                    req.modalities.push(m.to_owned());
                }
            }
            "from" => req.date_from = Some(date(v)?),
            "to" => req.date_to = Some(date(v)?),
            "patientId" => req.patient_id = Some(v.clone()),
            "institution" => req.institution = Some(v.clone()),
            _ => {}
        }
    }
    Ok(req)
}

/// A study date bound: `YYYYMMDD` or `YYYY-MM-DD`, a real calendar date.
fn date(v: &str) -> Result<u32, ApiError> {
    let bad = || ApiError::BadRequest("from and to must be dates, YYYYMMDD or YYYY-MM-DD".into());
    vna_archive::parse_date(v).ok_or_else(bad)?;
    v.trim().replace('-', "").parse().map_err(|_| bad())
}

/// `GET /api/search`.
pub(crate) async fn search(Authed(state): Authed, headers: HeaderMap, Query(params): Query<Vec<(String, String)>>) -> Response {
    let result = async {
        let req = request(&params)?;
        let results = state.archive.search_text(&state.who, req).await?;
        let base = base_url(&state, &headers);
        let hits: Vec<serde_json::Value> = results
            .hits
            .into_iter()
            .map(|h| {
                let url = format!("{base}/studies/{}", h.study_instance_uid);
                let mut v = serde_json::to_value(h).unwrap_or_default();
                v["RetrieveURL"] = json!(url);
                v
            })
            .collect();
        Ok::<_, ApiError>(json!({ "hits": hits, "total": results.total }))
    }
    .await;
    match result {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response(),
        Err(e) => e.into_response(),
    }
}

/// Media types of an HL7 v2 message in its pipe-delimited encoding (ER7).
const HL7_TYPES: &[&str] = &["x-application/hl7-v2+er7", "application/hl7-v2", "application/hl7-v2+er7", "application/edi-hl7"];

/// `POST /api/reports?StudyInstanceUID=…` (or `AccessionNumber=…`; an HL7 message may name
/// its study itself), `lang=` optional: the body is the report, `text/plain` or HL7 v2 ER7,
/// UTF-8. 201 with `{"StudyInstanceUID", "reportId"}`.
pub(crate) async fn add_report(
    Authed(state): Authed,
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
    body: axum::body::Bytes,
) -> Response {
    let result = async {
        let mut study = None;
        let mut lang = None;
        for (k, v) in &params {
            match k.as_str() {
                "StudyInstanceUID" => {
                    let uid =
                        vna_dicom::uid::StudyUid::new(v).map_err(|e| ApiError::BadRequest(format!("invalid StudyInstanceUID: {e}")))?;
                    study = Some(StudyRef::Uid(uid));
                }
                "AccessionNumber" if !v.trim().is_empty() => study = Some(StudyRef::Accession(v.trim().to_owned())),
                "lang" => lang = Some(v.clone()),
                _ => return Err(ApiError::BadRequest(format!("unknown parameter {k}"))),
            }
        }
        let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
        let mut parts = content_type.split(';').map(str::trim);
        let media = parts.next().unwrap_or("");
        if parts.any(|p| p.strip_prefix("charset=").is_some_and(|c| !c.trim_matches('"').eq_ignore_ascii_case("utf-8"))) {
            return Err(ApiError::UnsupportedMediaType("reports are UTF-8".into()));
        }
        let hl7 = match media {
            "text/plain" => false,
            m if HL7_TYPES.contains(&m) => true,
            _ => return Err(ApiError::UnsupportedMediaType("send text/plain or an HL7 v2 message (x-application/hl7-v2+er7)".into())),
        };
        let body = String::from_utf8(body.to_vec()).map_err(|_| ApiError::BadRequest("the report is not UTF-8".into()))?;
        let (uid, id) = state.archive.add_report(&state.who, ReportIn { study, body, hl7, lang }).await?;
        Ok::<_, ApiError>(json!({ "StudyInstanceUID": uid.to_string(), "reportId": id }))
    }
    .await;
    match result {
        Ok(body) => (StatusCode::CREATED, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `GET /admin/search`: `{position, head, lag, studies, rebuilding, batches, lastBatchLagMs}`.
pub(crate) async fn status(State(archive): State<Arc<Archive>>, Extension(who): Extension<Arc<Principal>>) -> Response {
    match archive.search_status(&who).await {
        Ok(s) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            json!({
                "position": s.position,
                "head": s.head,
                "lag": s.lag,
                "studies": s.studies,
                "rebuilding": s.rebuilding,
                "batches": s.batches,
                "lastBatchLagMs": s.last_lag_ms,
            })
            .to_string(),
        )
            .into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// `POST /admin/search/reindex`: every node rebuilds its index from the catalog; 202 with the
/// change's `seq` (a node has done so once its `position` reached it).
pub(crate) async fn reindex(State(archive): State<Arc<Archive>>, Extension(who): Extension<Arc<Principal>>) -> Response {
    match archive.request_search_reindex(&who).await {
        Ok(seq) => (StatusCode::ACCEPTED, [(header::CONTENT_TYPE, "application/json")], json!({ "seq": seq }).to_string()).into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn parameters_become_a_request_and_bad_ones_a_reason() {
        let req = request(&params(&[
            ("q", "lung nodule"),
            ("modality", "CT,MR"),
            ("modality", "CR"),
            ("from", "2024-01-01"),
            ("to", "20241231"),
        ]))
        .expect("request");
        assert_eq!(req.modalities, ["CT", "MR", "CR"]);
        assert_eq!((req.date_from, req.date_to, req.limit), (Some(20240101), Some(20241231), DEFAULT_LIMIT));
        let bad = |list: &[(&str, &str)]| match request(&params(list)) {
            Err(ApiError::BadRequest(m)) => m,
            other => panic!("{list:?} must be refused, got {other:?}"),
        };
        assert!(bad(&[("q", "x"), ("colour", "red")]).contains("unknown parameter"));
        assert!(bad(&[("q", "x"), ("limit", "-1")]).contains("limit"));
        assert!(bad(&[("q", "x"), ("from", "2024-02-30")]).contains("dates"));
        assert!(bad(&[("q", "x"), ("q", "y")]).contains("twice"));
        assert!(bad(&[("q", "x"), ("modality", "C T")]).contains("modality"));
    }
}
