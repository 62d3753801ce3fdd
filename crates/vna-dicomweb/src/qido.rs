//! QIDO-RS (PS3.18 §10.6): query parameters into the archive's query model. Each matching
//! key's value goes through the archive's one parser (`vna_archive::query::parse_match`, the
//! one C-FIND uses too): PS3.4 §C.2.2.2 single value, wildcard, range, UID list, universal,
//! fuzzy PN.

use crate::error::ApiError;
use crate::qido_json::{instance_json, series_json, study_json, Includes};
use crate::{accept, base_url, AppState, Authed};
use axum::extract::{Path, Query as QueryParams};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use vna_archive::query::{matching_key, parse_match, Filter, Key, Level, MatchOptions, Matcher, Query};
use vna_dicom::tag_from_key;
use vna_dicom::uid::{SeriesUid, StudyUid};

type Params = QueryParams<Vec<(String, String)>>;

pub(crate) async fn studies(Authed(s): Authed, h: HeaderMap, QueryParams(p): Params) -> Response {
    run(s, h, p, Level::Study, None, None).await.unwrap_or_else(IntoResponse::into_response)
}
pub(crate) async fn all_series(Authed(s): Authed, h: HeaderMap, QueryParams(p): Params) -> Response {
    run(s, h, p, Level::Series, None, None).await.unwrap_or_else(IntoResponse::into_response)
}
pub(crate) async fn all_instances(Authed(s): Authed, h: HeaderMap, QueryParams(p): Params) -> Response {
    run(s, h, p, Level::Instance, None, None).await.unwrap_or_else(IntoResponse::into_response)
}
pub(crate) async fn study_series(Authed(s): Authed, Path(study): Path<String>, h: HeaderMap, QueryParams(p): Params) -> Response {
    run(s, h, p, Level::Series, Some(study), None).await.unwrap_or_else(IntoResponse::into_response)
}
pub(crate) async fn study_instances(Authed(s): Authed, Path(study): Path<String>, h: HeaderMap, QueryParams(p): Params) -> Response {
    run(s, h, p, Level::Instance, Some(study), None).await.unwrap_or_else(IntoResponse::into_response)
}
pub(crate) async fn series_instances(
    Authed(s): Authed,
    Path((study, series)): Path<(String, String)>,
    h: HeaderMap,
    QueryParams(p): Params,
) -> Response {
    run(s, h, p, Level::Instance, Some(study), Some(series)).await.unwrap_or_else(IntoResponse::into_response)
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::BadRequest(msg.into())
}

struct Parsed {
    query: Query,
    includes: Includes,
    warnings: Vec<String>,
}

fn parse(params: Vec<(String, String)>, level: Level, state: &AppState) -> Result<Parsed, ApiError> {
    let fuzzy = params.iter().any(|(k, v)| k == "fuzzymatching" && v.eq_ignore_ascii_case("true"));
    let max_list = state.archive.config().max_list_items as usize;
    let options = MatchOptions { fuzzy, max_list };
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
                    } else if includes.tags.len() >= max_list {
                        return Err(bad(format!("includefield names at most {max_list} attributes")));
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
                match matching_key(tag) {
                    Some(key) => {
                        if let Some(matcher) = parse_match(key, &v, options).map_err(|e| bad(format!("{k}: {e}")))? {
                            filters.push(Filter { key: key.key, matcher });
                        }
                    }
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
    let docs: Vec<String> = match level {
        // No QIDO-RS resource is at the patient level (PS3.18 §10.6); only C-FIND asks for it.
        Level::Patient => Vec::new(),
        Level::Study => {
            let rows = archive.search_studies(&state.who, &parsed.query).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                out.push(study_json(r, &base, &parsed.includes, archive, &state.who).await?);
            }
            out
        }
        Level::Series => {
            let rows = archive.search_series(&state.who, &parsed.query).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                out.push(series_json(r, &base, &parsed.includes, archive, &state.who).await?);
            }
            out
        }
        Level::Instance => {
            let rows = archive.search_instances(&state.who, &parsed.query).await?;
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
    let mut body = String::with_capacity(docs.iter().map(|d| d.len() + 1).sum::<usize>() + 2);
    body.push('[');
    for (i, d) in docs.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(d);
    }
    body.push(']');
    let mut resp = (StatusCode::OK, [(header::CONTENT_TYPE, "application/dicom+json")], body).into_response();
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
