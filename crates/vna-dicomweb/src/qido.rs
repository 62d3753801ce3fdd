//! QIDO-RS (PS3.18 §10.6): query parameters into the catalog's query model, matching as
//! PS3.4 §C.2.2.2 defines (single value, wildcard, range, UID list, universal, fuzzy PN).

use crate::error::ApiError;
use crate::qido_json::{instance_json, series_json, study_json, Includes};
use crate::{accept, base_url, AppState};
use axum::extract::{Path, Query as QueryParams, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use vna_catalog::{Filter, Key, Level, Matcher, Query};
use vna_dicom::uid::{SeriesUid, StudyUid};
use vna_dicom::{tag_from_key, tags, Tag};

type Params = QueryParams<Vec<(String, String)>>;

pub(crate) async fn studies(State(s): State<AppState>, h: HeaderMap, QueryParams(p): Params) -> Response {
    run(s, h, p, Level::Study, None, None).await.unwrap_or_else(IntoResponse::into_response)
}
pub(crate) async fn all_series(State(s): State<AppState>, h: HeaderMap, QueryParams(p): Params) -> Response {
    run(s, h, p, Level::Series, None, None).await.unwrap_or_else(IntoResponse::into_response)
}
pub(crate) async fn all_instances(State(s): State<AppState>, h: HeaderMap, QueryParams(p): Params) -> Response {
    run(s, h, p, Level::Instance, None, None).await.unwrap_or_else(IntoResponse::into_response)
}
pub(crate) async fn study_series(State(s): State<AppState>, Path(study): Path<String>, h: HeaderMap, QueryParams(p): Params) -> Response {
    run(s, h, p, Level::Series, Some(study), None).await.unwrap_or_else(IntoResponse::into_response)
}
pub(crate) async fn study_instances(
    State(s): State<AppState>,
    Path(study): Path<String>,
    h: HeaderMap,
    QueryParams(p): Params,
) -> Response {
    run(s, h, p, Level::Instance, Some(study), None).await.unwrap_or_else(IntoResponse::into_response)
}
pub(crate) async fn series_instances(
    State(s): State<AppState>,
    Path((study, series)): Path<(String, String)>,
    h: HeaderMap,
    QueryParams(p): Params,
) -> Response {
    run(s, h, p, Level::Instance, Some(study), Some(series)).await.unwrap_or_else(IntoResponse::into_response)
}

/// How a key's values are written and matched.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Uid,
    Date,
    Time,
    Int,
    PersonName,
    /// Code strings that may be given as a list (Modality, ModalitiesInStudy).
    CodeList,
    Text,
}

fn key_of(tag: Tag) -> Option<(Key, Kind)> {
    Some(match tag {
        tags::PATIENT_ID => (Key::PatientId, Kind::Text),
        tags::ISSUER_OF_PATIENT_ID => (Key::IssuerOfPatientId, Kind::Text),
        tags::PATIENT_NAME => (Key::PatientName, Kind::PersonName),
        tags::PATIENT_BIRTH_DATE => (Key::PatientBirthDate, Kind::Date),
        tags::PATIENT_SEX => (Key::PatientSex, Kind::Text),
        tags::STUDY_INSTANCE_UID => (Key::StudyUid, Kind::Uid),
        tags::STUDY_DATE => (Key::StudyDate, Kind::Date),
        tags::STUDY_TIME => (Key::StudyTime, Kind::Time),
        tags::ACCESSION_NUMBER => (Key::AccessionNumber, Kind::Text),
        tags::STUDY_ID => (Key::StudyId, Kind::Text),
        tags::REFERRING_PHYSICIAN_NAME => (Key::ReferringPhysicianName, Kind::PersonName),
        tags::STUDY_DESCRIPTION => (Key::StudyDescription, Kind::Text),
        tags::MODALITIES_IN_STUDY => (Key::ModalitiesInStudy, Kind::CodeList),
        tags::SERIES_INSTANCE_UID => (Key::SeriesUid, Kind::Uid),
        tags::MODALITY => (Key::Modality, Kind::CodeList),
        tags::SERIES_NUMBER => (Key::SeriesNumber, Kind::Int),
        tags::SERIES_DESCRIPTION => (Key::SeriesDescription, Kind::Text),
        tags::BODY_PART_EXAMINED => (Key::BodyPartExamined, Kind::Text),
        tags::PERFORMED_PROCEDURE_STEP_START_DATE => (Key::PerformedProcedureStepStartDate, Kind::Date),
        tags::SOP_INSTANCE_UID => (Key::SopInstanceUid, Kind::Uid),
        tags::SOP_CLASS_UID => (Key::SopClassUid, Kind::Uid),
        tags::INSTANCE_NUMBER => (Key::InstanceNumber, Kind::Int),
        tags::CONCATENATION_UID => (Key::ConcatenationUid, Kind::Uid),
        tags::SOP_INSTANCE_UID_OF_CONCATENATION_SOURCE => (Key::ConcatenationSource, Kind::Uid),
        tags::IN_CONCATENATION_NUMBER => (Key::InConcatenationNumber, Kind::Int),
        tags::DIMENSION_ORGANIZATION_TYPE => (Key::DimensionOrganizationType, Kind::Text),
        tags::TOTAL_PIXEL_MATRIX_COLUMNS => (Key::TotalPixelMatrixColumns, Kind::Int),
        tags::TOTAL_PIXEL_MATRIX_ROWS => (Key::TotalPixelMatrixRows, Kind::Int),
        _ => return None,
    })
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::BadRequest(msg.into())
}

fn split_list(v: &str) -> Vec<String> {
    v.split([',', '\\']).map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect()
}

fn check_date(s: &str, name: &str) -> Result<(), ApiError> {
    if s.is_empty() || (s.len() == 8 && s.bytes().all(|b| b.is_ascii_digit())) {
        Ok(())
    } else {
        Err(bad(format!("{name}: a date is YYYYMMDD (ranges: A-B, -B, A-)")))
    }
}

fn check_time(s: &str, name: &str) -> Result<(), ApiError> {
    let digits = s.split('.').next().unwrap_or("");
    if s.is_empty()
        || (digits.len() >= 2 && digits.len() <= 6 && digits.len().is_multiple_of(2) && s.bytes().all(|b| b.is_ascii_digit() || b == b'.'))
    {
        Ok(())
    } else {
        Err(bad(format!("{name}: a time is HH[MM[SS[.FFFFFF]]] (ranges: A-B, -B, A-)")))
    }
}

/// PS3.4 §C.2.2.2 matching type for one key and value.
fn matcher(kind: Kind, value: &str, fuzzy: bool, name: &str) -> Result<Matcher, ApiError> {
    let wildcard = value.contains(['*', '?']);
    Ok(match kind {
        Kind::Uid => {
            let list = split_list(value);
            for u in &list {
                vna_dicom::uid::validate(u).map_err(|e| bad(format!("{name}: invalid UID: {e}")))?;
            }
            if list.len() == 1 {
                Matcher::Single(list[0].clone())
            } else {
                Matcher::List(list)
            }
        }
        Kind::Date | Kind::Time => {
            let check = if kind == Kind::Date { check_date } else { check_time };
            match value.split_once('-') {
                Some((from, to)) => {
                    check(from, name)?;
                    check(to, name)?;
                    if from.is_empty() && to.is_empty() {
                        return Err(bad(format!("{name}: a range needs at least one bound")));
                    }
                    Matcher::Range { from: (!from.is_empty()).then(|| from.to_owned()), to: (!to.is_empty()).then(|| to.to_owned()) }
                }
                None => {
                    check(value, name)?;
                    Matcher::Single(value.to_owned())
                }
            }
        }
        Kind::Int => {
            let n: i64 = value.trim().parse().map_err(|_| bad(format!("{name}: not an integer")))?;
            Matcher::Single(n.to_string())
        }
        Kind::PersonName if fuzzy => Matcher::Fuzzy(value.to_owned()),
        Kind::CodeList => {
            let list = split_list(value);
            if wildcard {
                Matcher::Wildcard(value.to_owned())
            } else if list.len() == 1 {
                Matcher::Single(list[0].clone())
            } else {
                Matcher::List(list)
            }
        }
        Kind::PersonName | Kind::Text => {
            if wildcard {
                Matcher::Wildcard(value.to_owned())
            } else {
                Matcher::Single(value.to_owned())
            }
        }
    })
}

struct Parsed {
    query: Query,
    includes: Includes,
    warnings: Vec<String>,
}

fn parse(params: Vec<(String, String)>, level: Level, state: &AppState) -> Result<Parsed, ApiError> {
    let fuzzy = params.iter().any(|(k, v)| k == "fuzzymatching" && v.eq_ignore_ascii_case("true"));
    let mut filters = Vec::new();
    let mut includes = Includes::default();
    let mut warnings = Vec::new();
    let mut limit = state.config.default_limit;
    let mut offset = 0;
    for (k, v) in params {
        match k.as_str() {
            "fuzzymatching" => {
                if !v.eq_ignore_ascii_case("true") && !v.eq_ignore_ascii_case("false") {
                    return Err(bad("fuzzymatching must be true or false"));
                }
            }
            "limit" => limit = v.parse().map_err(|_| bad("limit must be a non-negative integer"))?,
            "offset" => offset = v.parse().map_err(|_| bad("offset must be a non-negative integer"))?,
            "includefield" => {
                for f in v.split(',').map(str::trim).filter(|f| !f.is_empty()) {
                    if f == "all" {
                        includes.all = true;
                    } else {
                        let tag = tag_from_key(f).ok_or_else(|| bad(format!("includefield: unknown attribute {f}")))?;
                        includes.tags.push(tag);
                    }
                }
            }
            _ => {
                let tag = tag_from_key(&k).ok_or_else(|| bad(format!("unknown query parameter or attribute: {k}")))?;
                includes.tags.push(tag);
                if v.is_empty() {
                    continue; // universal matching: return the attribute, match everything
                }
                match key_of(tag) {
                    Some((key, kind)) => filters.push(Filter { key, matcher: matcher(kind, &v, fuzzy, &k)? }),
                    None => warnings.push(format!("299 vna \"{k} is not a supported matching key; it was ignored\"")),
                }
            }
        }
    }
    if limit > state.config.max_limit {
        warnings.push(format!("299 vna \"limit was reduced to {}\"", state.config.max_limit));
        limit = state.config.max_limit;
    }
    Ok(Parsed { query: Query { level, filters, limit: Some(limit), offset }, includes, warnings })
}

async fn run(
    state: AppState,
    headers: HeaderMap,
    params: Vec<(String, String)>,
    level: Level,
    study: Option<String>,
    series: Option<String>,
) -> Result<Response, ApiError> {
    if !accept::accepts_json(&headers) {
        return Err(ApiError::NotAcceptable("QIDO-RS responses are application/dicom+json".into()));
    }
    let mut parsed = parse(params, level, &state)?;
    if let Some(study) = study {
        let uid = StudyUid::new(&study).map_err(|e| bad(format!("invalid Study Instance UID in the path: {e}")))?;
        parsed.query.filters.push(Filter { key: Key::StudyUid, matcher: Matcher::Single(uid.to_string()) });
    }
    if let Some(series) = series {
        let uid = SeriesUid::new(&series).map_err(|e| bad(format!("invalid Series Instance UID in the path: {e}")))?;
        parsed.query.filters.push(Filter { key: Key::SeriesUid, matcher: Matcher::Single(uid.to_string()) });
    }
    if parsed.query.limit == Some(0) {
        return Ok(empty(&parsed.warnings));
    }
    let base = base_url(&state, &headers);
    let archive = &state.archive;
    let docs: Vec<serde_json::Value> = match level {
        // No QIDO-RS resource is at the patient level (PS3.18 §10.6); only C-FIND asks for it.
        Level::Patient => Vec::new(),
        Level::Study => {
            let rows = archive.search_studies(&parsed.query).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                out.push(study_json(r, &base, &parsed.includes, archive).await?);
            }
            out
        }
        Level::Series => {
            let rows = archive.search_series(&parsed.query).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                out.push(series_json(r, &base, &parsed.includes, archive).await?);
            }
            out
        }
        Level::Instance => {
            let rows = archive.search_instances(&parsed.query).await?;
            let extra = if parsed.includes.needs_metadata_for_instances() {
                archive.metadata_of(rows.clone()).await?.into_iter().map(|(r, m)| (r.pk, m)).collect()
            } else {
                std::collections::HashMap::new()
            };
            rows.iter().map(|r| instance_json(r, &base, &parsed.includes, extra.get(&r.pk).map(String::as_str))).collect()
        }
    };
    if docs.is_empty() {
        return Ok(empty(&parsed.warnings));
    }
    let mut resp =
        (StatusCode::OK, [(header::CONTENT_TYPE, "application/dicom+json")], serde_json::Value::Array(docs).to_string()).into_response();
    add_warnings(&mut resp, &parsed.warnings);
    Ok(resp)
}

fn empty(warnings: &[String]) -> Response {
    let mut resp = StatusCode::NO_CONTENT.into_response();
    add_warnings(&mut resp, warnings);
    resp
}

fn add_warnings(resp: &mut Response, warnings: &[String]) {
    for w in warnings {
        if let Ok(v) = HeaderValue::from_str(w) {
            resp.headers_mut().append(header::WARNING, v);
        }
    }
}
