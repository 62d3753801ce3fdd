//! FHIR R4 (4.0.1) for the electronic patient record, at `/fhir`, JSON only: `ImagingStudy`
//! and `DiagnosticReport` read and search, filled from the catalog through the same archive calls (and so the same
//! principal, visibility and audit trail) as QIDO-RS, and the `CapabilityStatement` that says
//! so (`GET /fhir/metadata`, R4 §2.39 / RESTful API §3.1.0.11).
//!
//! An `ImagingStudy` is a study of the catalog: its logical id is the Study Instance UID (a
//! UID is a valid FHIR id: digits and dots, at most 64), the elements follow R4's DICOM mapping
//! (ImagingStudy §13.4.4: identifier = `urn:dicom:uid` / `urn:oid:`UID and the accession number
//! as an `ACSN` identifier, subject = Patient ID with its issuer, started = Study Date, modality =
//! ModalitiesInStudy, series and instances with their UIDs, numbers, modalities and SOP Classes),
//! and its `endpoint` is a contained `Endpoint` of connection type `dicom-wado-rs` whose
//! address is our DICOMweb root, from which a viewer retrieves the study.
//!
//! The archive holds no Patient resources: a study's `subject` is a logical reference (an
//! identifier, R4 §2.3.0.3.1), and searches name the patient the same way (`patient:identifier`,
//! `patient.identifier`, `subject:Patient.identifier`). Dates are date precision: DICOM's Study
//! Time has no time zone, and a FHIR time without one is not a valid `dateTime`.
//!
//! Search parameters (R4 ImagingStudy §13.4.5, search §3.1.1): `_id`, `identifier`,
//! `patient`/`subject` by identifier, `started` (`eq`, `ge`, `gt`, `le`, `lt`, `sa`, `eb`; date
//! precision), `modality`, `_count` and `_offset` (the paging links carry it). A parameter the
//! server does not know is ignored and left out of the `self` link, as §3.1.1.5.6 describes,
//! unless the client sends `Prefer: handling=strict`; a known parameter with a value we cannot
//! apply is always an error (an `OperationOutcome`), never dropped.

use std::collections::HashMap;

use axum::extract::{Path, Query as QueryParams, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::{Months, NaiveDate};
use serde_json::{json, Map, Value};
use vna_archive::model::{Found, PatientAttrs, SeriesRow, StudyRow};
use vna_archive::query::{Filter, Key, Level, Matcher, Query};
use vna_archive::{ArchiveError, ReportSource, ReportView};
use vna_dicom::uid::{SopInstanceUid, StudyUid};

use crate::{accept, AppState, Authed};

/// Where FHIR lives, beside the DICOMweb root.
pub(crate) const ROOT: &str = "/fhir";

/// Studies in a page when the client does not say (`_count`); the most is `query.max_limit`.
const DEFAULT_COUNT: u32 = 20;

const FHIR_JSON: &str = "application/fhir+json; charset=utf-8";
/// The DICOM Controlled Terminology (PS3.16), the code system of modalities in R4.
const DCM: &str = "http://dicom.nema.org/resources/ontology/DCM";
const STUDY_UID_SYSTEM: &str = "urn:dicom:uid";
/// Encapsulated PDF Storage.
const PDF_CLASS: &str = "1.2.840.10008.5.1.4.1.1.104.1";

/// `/fhir` behind authentication.
pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .route(&format!("{ROOT}/ImagingStudy"), get(search_studies))
        .route(&format!("{ROOT}/ImagingStudy/{{id}}"), get(read_study))
        .route(&format!("{ROOT}/DiagnosticReport"), get(search_reports))
        .route(&format!("{ROOT}/DiagnosticReport/{{id}}"), get(read_report))
        .with_state(state)
}

/// `/fhir/metadata`, served without authentication.
pub(crate) fn public_router(state: AppState) -> Router {
    Router::new().route(&format!("{ROOT}/metadata"), get(capabilities)).with_state(state)
}

/// A refusal as FHIR gives it: a status and an `OperationOutcome` (R4 §2.37) with one issue.
#[derive(Debug)]
pub(crate) struct Outcome {
    status: StatusCode,
    /// The issue type (R4 value set `issue-type`): `invalid`, `not-found`, `not-supported`…
    code: &'static str,
    diagnostics: String,
}

impl Outcome {
    fn invalid(msg: impl Into<String>) -> Outcome {
        Outcome { status: StatusCode::BAD_REQUEST, code: "invalid", diagnostics: msg.into() }
    }
    fn not_supported(msg: impl Into<String>) -> Outcome {
        Outcome { status: StatusCode::BAD_REQUEST, code: "not-supported", diagnostics: msg.into() }
    }
    fn not_found(msg: impl Into<String>) -> Outcome {
        Outcome { status: StatusCode::NOT_FOUND, code: "not-found", diagnostics: msg.into() }
    }
}

impl From<ArchiveError> for Outcome {
    fn from(e: ArchiveError) -> Outcome {
        let class = e.class();
        let (status, diagnostics) = crate::error::status_and_message(e);
        let code = match class {
            vna_archive::ErrorClass::InvalidInput => "invalid",
            vna_archive::ErrorClass::NotFound => "not-found",
            vna_archive::ErrorClass::Conflict => "conflict",
            vna_archive::ErrorClass::Unsupported => "not-supported",
            vna_archive::ErrorClass::TooLarge => "too-costly",
            vna_archive::ErrorClass::Busy => "transient",
            vna_archive::ErrorClass::Timeout => "timeout",
            vna_archive::ErrorClass::Forbidden => "forbidden",
            vna_archive::ErrorClass::Internal => "exception",
        };
        Outcome { status, code, diagnostics }
    }
}

impl IntoResponse for Outcome {
    fn into_response(self) -> Response {
        let body = json!({
            "resourceType": "OperationOutcome",
            "issue": [{ "severity": "error", "code": self.code, "diagnostics": self.diagnostics }],
        });
        let mut resp = fhir_response(self.status, &body);
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
        }
        resp
    }
}

fn fhir_response(status: StatusCode, body: &Value) -> Response {
    (status, [(header::CONTENT_TYPE, FHIR_JSON)], body.to_string()).into_response()
}

/// JSON is what we serve (R4 §3.1.0.1.10: `_format` overrides Accept). XML is refused with
/// 406, in JSON, since that is all we write.
fn negotiate(headers: &HeaderMap, params: &[(String, String)]) -> Result<(), Outcome> {
    let json_like = |t: &str| matches!(t, "json" | "application/json" | "application/fhir+json" | "*/*" | "application/*");
    if let Some((_, f)) = params.iter().find(|(k, _)| k == "_format") {
        let f = f.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        if json_like(&f) {
            return Ok(());
        }
        return Err(Outcome {
            status: StatusCode::NOT_ACCEPTABLE,
            code: "not-supported",
            diagnostics: "_format: this server writes FHIR JSON only".into(),
        });
    }
    if accept::ranges(headers).iter().any(|r| json_like(&r.essence)) {
        return Ok(());
    }
    Err(Outcome {
        status: StatusCode::NOT_ACCEPTABLE,
        code: "not-supported",
        diagnostics: "Accept: this server writes application/fhir+json only".into(),
    })
}

/// Scheme and authority plus `/fhir`: the base of every URL we write.
fn fhir_base(state: &AppState, headers: &HeaderMap) -> String {
    format!("{}{ROOT}", crate::origin(state, headers))
}

type Params = QueryParams<Vec<(String, String)>>;

/// The query for the one row at `level` whose `key` is `value` (a UID).
fn one(level: Level, key: Key, value: &str) -> Query {
    Query { level, filters: vec![Filter { key, matcher: Matcher::Single(value.to_owned()) }], limit: Some(1), offset: 0 }
}

/// `GET /fhir/ImagingStudy/{id}`.
async fn read_study(Authed(s): Authed, Path(id): Path<String>, headers: HeaderMap, QueryParams(params): Params) -> Response {
    read(s, id, headers, params).await.unwrap_or_else(IntoResponse::into_response)
}

async fn read(state: AppState, id: String, headers: HeaderMap, params: Vec<(String, String)>) -> Result<Response, Outcome> {
    negotiate(&headers, &params)?;
    let missing = || Outcome::not_found(format!("ImagingStudy/{id} is not known"));
    // Every id we give out is a Study Instance UID; anything else names nothing.
    let uid = StudyUid::new(&id).map_err(|_| missing())?;
    let studies = state.archive.search_studies(&state.who, &one(Level::Study, Key::StudyUid, uid.as_str())).await?;
    let study = studies.first().ok_or_else(missing)?;
    let mut resources = resources(&state, &headers, &studies).await?;
    let resource = resources.pop().ok_or_else(missing)?;
    debug_assert_eq!(resource["id"], study.study.study_uid.as_str());
    Ok(fhir_response(StatusCode::OK, &resource))
}

/// `GET /fhir/ImagingStudy?…`: a `searchset` Bundle (R4 §3.1.1.2), paged by `_count` and
/// `_offset`.
async fn search_studies(Authed(s): Authed, headers: HeaderMap, QueryParams(params): Params) -> Response {
    search(s, headers, params).await.unwrap_or_else(IntoResponse::into_response)
}

async fn search(state: AppState, headers: HeaderMap, params: Vec<(String, String)>) -> Result<Response, Outcome> {
    negotiate(&headers, &params)?;
    let parsed = parse_search(&params, strict(&headers), state.config.max_limit, Kind::ImagingStudy)?;
    let mut studies = Vec::new();
    if !parsed.matches_nothing && parsed.count > 0 {
        let query = Query {
            level: Level::Study,
            filters: parsed.filters.clone(),
            // One more than the page: whether there is a next page, without counting.
            limit: Some(parsed.count.saturating_add(1)),
            offset: parsed.offset,
        };
        studies = state.archive.search_studies(&state.who, &query).await?;
    }
    let more = studies.len() > parsed.count as usize;
    studies.truncate(parsed.count as usize);
    let resources = resources(&state, &headers, &studies).await?;
    // The whole result is on this page: its size is known without counting.
    let total = (parsed.offset == 0 && !more).then_some(resources.len());
    let bundle = searchset(&fhir_base(&state, &headers), Kind::ImagingStudy, &parsed, resources, more, total);
    Ok(fhir_response(StatusCode::OK, &bundle))
}

/// Whether the client asked for strict handling of unknown parameters (R4 §3.1.1.5.6:
/// `Prefer: handling=strict`).
fn strict(headers: &HeaderMap) -> bool {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split([',', ';']))
        .any(|p| p.trim().eq_ignore_ascii_case("handling=strict"))
}

/// A `searchset` Bundle (R4 §3.1.1.2) of one page: each resource an entry with its full URL,
/// `self`, `next` and `previous` links that carry the parameters applied, `total` when known.
fn searchset(base: &str, kind: Kind, parsed: &Search, resources: Vec<Value>, more: bool, total: Option<usize>) -> Value {
    let page = |offset: u32| {
        let mut url = format!("{base}/{}?", kind.name());
        for (k, v) in &parsed.applied {
            url.push_str(&format!("{}={}&", encode(k), encode(v)));
        }
        url.push_str(&format!("_count={}&_offset={offset}", parsed.count));
        url
    };
    let mut links = vec![json!({ "relation": "self", "url": page(parsed.offset) })];
    if more {
        links.push(json!({ "relation": "next", "url": page(parsed.offset.saturating_add(parsed.count)) }));
    }
    if parsed.offset > 0 {
        links.push(json!({ "relation": "previous", "url": page(parsed.offset.saturating_sub(parsed.count)) }));
    }
    let entries: Vec<Value> = resources
        .into_iter()
        .map(|r| {
            let full_url = format!("{base}/{}/{}", kind.name(), r["id"].as_str().unwrap_or_default());
            json!({ "fullUrl": full_url, "resource": r, "search": { "mode": "match" } })
        })
        .collect();
    let mut bundle = Map::new();
    bundle.insert("resourceType".into(), "Bundle".into());
    bundle.insert("type".into(), "searchset".into());
    if let Some(total) = total {
        bundle.insert("total".into(), total.into());
    }
    bundle.insert("link".into(), links.into());
    if !entries.is_empty() {
        bundle.insert("entry".into(), entries.into());
    }
    Value::Object(bundle)
}

/// `GET /fhir/DiagnosticReport/{id}`: a report sent through the API (`sent-{key}`) or stored
/// as an SR or Encapsulated PDF object (its SOP Instance UID).
async fn read_report(Authed(s): Authed, Path(id): Path<String>, headers: HeaderMap, QueryParams(params): Params) -> Response {
    report(s, id, headers, params).await.unwrap_or_else(IntoResponse::into_response)
}

async fn report(state: AppState, id: String, headers: HeaderMap, params: Vec<(String, String)>) -> Result<Response, Outcome> {
    negotiate(&headers, &params)?;
    let missing = || Outcome::not_found(format!("DiagnosticReport/{id} is not known"));
    let study = match id.strip_prefix("sent-") {
        Some(pk) => {
            let pk: i64 = pk.parse().map_err(|_| missing())?;
            state.archive.sent_report_study(&state.who, pk).await?
        }
        None => {
            let sop = SopInstanceUid::new(&id).map_err(|_| missing())?;
            let found = state.archive.search_instances(&state.who, &one(Level::Instance, Key::SopInstanceUid, sop.as_str())).await?;
            found.first().map(|f| f.study.study_uid.clone())
        }
    };
    let study = study.ok_or_else(missing)?;
    let studies = state.archive.search_studies(&state.who, &one(Level::Study, Key::StudyUid, study.as_str())).await?;
    let row = studies.first().ok_or_else(missing)?;
    let views = state.archive.reports_of(&state.who, std::slice::from_ref(&study)).await?;
    let view = views.iter().find(|v| report_id(v) == id).ok_or_else(missing)?;
    Ok(fhir_response(StatusCode::OK, &diagnostic_report(view, row)))
}

/// `GET /fhir/DiagnosticReport?…`: the reports of the studies the parameters select (the
/// patient, the study's accession number, its date), paged over the reports.
async fn search_reports(Authed(s): Authed, headers: HeaderMap, QueryParams(params): Params) -> Response {
    report_search(s, headers, params).await.unwrap_or_else(IntoResponse::into_response)
}

async fn report_search(state: AppState, headers: HeaderMap, params: Vec<(String, String)>) -> Result<Response, Outcome> {
    negotiate(&headers, &params)?;
    let parsed = parse_search(&params, strict(&headers), state.config.max_limit, Kind::DiagnosticReport)?;
    let mut found = Vec::new();
    let mut studies = Vec::new();
    if !parsed.matches_nothing {
        // Every report of every selected study is read, then paged: a search that selects more
        // studies than one answer may hold is refused, not cut short.
        let most = state.config.max_limit;
        let query = Query { level: Level::Study, filters: parsed.filters.clone(), limit: Some(most.saturating_add(1)), offset: 0 };
        studies = state.archive.search_studies(&state.who, &query).await?;
        if studies.len() > most as usize {
            return Err(Outcome {
                status: StatusCode::BAD_REQUEST,
                code: "too-costly",
                diagnostics: format!("more than {most} studies match: name the patient, an accession number or a date range"),
            });
        }
        let uids: Vec<StudyUid> = studies.iter().map(|s| s.study.study_uid.clone()).collect();
        found = state.archive.reports_of(&state.who, &uids).await?;
        if let Some(ids) = &parsed.report_ids {
            found.retain(|v| ids.contains(&report_id(v)));
        }
    }
    let total = found.len();
    let page: Vec<Value> = found
        .iter()
        .skip(parsed.offset as usize)
        .take(parsed.count as usize)
        .filter_map(|v| studies.iter().find(|s| s.study.study_uid == v.study_uid).map(|s| diagnostic_report(v, s)))
        .collect();
    let more = (parsed.offset as usize).saturating_add(parsed.count as usize) < total;
    let bundle = searchset(&fhir_base(&state, &headers), Kind::DiagnosticReport, &parsed, page, more, Some(total));
    Ok(fhir_response(StatusCode::OK, &bundle))
}

/// A report's logical id: `sent-{key}` for one sent through the API, the SOP Instance UID of a
/// stored one.
fn report_id(v: &ReportView) -> String {
    match &v.source {
        ReportSource::Sent { pk, .. } => format!("sent-{pk}"),
        ReportSource::Stored(found) => found.instance.sop_uid.to_string(),
    }
}

/// One report as an R4 `DiagnosticReport` (§10.3) of its study: its text as the presented form.
/// The archive does not know whether a report is preliminary or final (a sent report does not
/// say; an SR's flags are not read yet): its status is `unknown`.
fn diagnostic_report(v: &ReportView, study: &StudyRow) -> Value {
    use base64::Engine as _;
    let mut r = Map::new();
    r.insert("resourceType".into(), "DiagnosticReport".into());
    r.insert("id".into(), report_id(v).into());
    let mut identifiers = Vec::new();
    let (issued_ms, lang, title) = match &v.source {
        ReportSource::Sent { received_at_ms, lang, hl7, .. } => {
            (*received_at_ms, lang.as_str(), if *hl7 { "Report (HL7 v2 ORU^R01)" } else { "Report" })
        }
        ReportSource::Stored(found) => {
            identifiers.push(json!({ "system": STUDY_UID_SYSTEM, "value": format!("urn:oid:{}", found.instance.sop_uid) }));
            let title =
                if found.instance.sop_class_uid.as_str() == PDF_CLASS { "PDF report (its text)" } else { "Structured report (its text)" };
            (found.stored_at_ms, "", title)
        }
    };
    if !study.study.accession_number.is_empty() {
        identifiers.push(json!({
            "type": { "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "ACSN" }] },
            "value": study.study.accession_number,
        }));
    }
    if !identifiers.is_empty() {
        r.insert("identifier".into(), identifiers.into());
    }
    r.insert("status".into(), "unknown".into());
    r.insert(
        "code".into(),
        json!({ "coding": [{ "system": "http://loinc.org", "code": "18748-4", "display": "Diagnostic imaging study" }], "text": "Imaging report" }),
    );
    r.insert("subject".into(), subject(&study.patient));
    if let Some(d) = fhir_date(&study.study.study_date) {
        r.insert("effectiveDateTime".into(), d.into());
    }
    r.insert("issued".into(), vna_archive::utc_timestamp(issued_ms).into());
    r.insert("imagingStudy".into(), json!([{ "reference": format!("ImagingStudy/{}", v.study_uid) }]));
    if !v.text.trim().is_empty() {
        let mut form = Map::new();
        form.insert("contentType".into(), "text/plain; charset=utf-8".into());
        if !lang.is_empty() {
            form.insert("language".into(), lang.into());
        }
        form.insert("data".into(), base64::engine::general_purpose::STANDARD.encode(v.text.as_bytes()).into());
        form.insert("title".into(), title.into());
        r.insert("presentedForm".into(), json!([form]));
    }
    Value::Object(r)
}

/// Percent-encodes a query component (RFC 3986 §2.1: everything but unreserved characters).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A search as the catalog runs it.
#[derive(Debug, Default)]
struct Search {
    filters: Vec<Filter>,
    /// A condition no study can meet (an identifier system we never write): no query at all.
    matches_nothing: bool,
    count: u32,
    offset: u32,
    /// The parameters applied, for the `self` and paging links (R4 §3.1.1.5.6).
    applied: Vec<(String, String)>,
    /// DiagnosticReport: only the reports with these ids (`_id`, or an `identifier` that is a
    /// stored report's SOP Instance UID); every condition given must hold.
    report_ids: Option<Vec<String>>,
}

/// The resource a search is of: the parameters differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    ImagingStudy,
    DiagnosticReport,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::ImagingStudy => "ImagingStudy",
            Kind::DiagnosticReport => "DiagnosticReport",
        }
    }
}

impl Search {
    /// Keeps only the reports named by `ids` (an intersection when asked twice).
    fn only_reports(&mut self, ids: Vec<String>) {
        self.report_ids = Some(match self.report_ids.take() {
            Some(before) => before.into_iter().filter(|id| ids.contains(id)).collect(),
            None => ids,
        });
    }
}

fn parse_search(params: &[(String, String)], strict: bool, max_count: u32, kind: Kind) -> Result<Search, Outcome> {
    let mut s = Search { count: DEFAULT_COUNT.min(max_count), ..Search::default() };
    let mut started: (Option<String>, Option<String>) = (None, None);
    for (k, v) in params {
        let name = k.as_str();
        match name {
            "_format" => continue,
            "_count" => {
                let n: u32 = v.parse().map_err(|_| Outcome::invalid("_count must be a non-negative integer"))?;
                s.count = n.min(max_count);
                continue;
            }
            "_offset" => {
                s.offset = v.parse().map_err(|_| Outcome::invalid("_offset must be a non-negative integer"))?;
                continue;
            }
            _ => {}
        }
        if v.is_empty() {
            // R4 §3.1.1.1: a parameter without a value is ignored.
            continue;
        }
        match (kind, name) {
            (Kind::DiagnosticReport, "_id") => s.only_reports(v.split(',').map(str::to_owned).collect()),
            (Kind::DiagnosticReport, "identifier") => report_identifier(v, &mut s)?,
            (Kind::ImagingStudy, "_id") => {
                let uids = v.split(',').map(|id| StudyUid::new(id).map(|u| u.to_string())).collect::<Result<Vec<_>, _>>();
                match uids {
                    Ok(uids) => s.filters.push(Filter { key: Key::StudyUid, matcher: Matcher::List(uids) }),
                    // An id that is no UID names no study we hold.
                    Err(_) => s.matches_nothing = true,
                }
            }
            (Kind::ImagingStudy, "identifier") => identifier(v, &mut s)?,
            (
                _,
                "patient:identifier" | "subject:identifier" | "patient.identifier" | "subject.identifier" | "subject:Patient.identifier",
            ) => patient_identifier(name, v, &mut s)?,
            (_, "patient" | "subject") => {
                return Err(Outcome::not_supported(format!(
                    "{name}: this archive holds no Patient resources; name the patient by identifier \
                     ({name}:identifier=[system|]value, or {name}.identifier=…)"
                )))
            }
            (Kind::ImagingStudy, "started") | (Kind::DiagnosticReport, "date") => {
                let (from, to) = date_range(name, v)?;
                if let Some(f) = from {
                    started.0 = Some(started.0.map_or(f.clone(), |g: String| g.max(f)));
                }
                if let Some(t) = to {
                    started.1 = Some(started.1.map_or(t.clone(), |u: String| u.min(t)));
                }
            }
            (Kind::ImagingStudy, "modality") => {
                let mut codes = Vec::new();
                for token in v.split(',') {
                    let (system, code) = split_token(token);
                    if system.is_some_and(|s| !s.is_empty() && s != DCM) {
                        return Err(Outcome::not_supported(format!("modality: codes are of the system {DCM}")));
                    }
                    if code.is_empty() || !code.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_') {
                        return Err(Outcome::invalid("modality: a code such as CT or MR"));
                    }
                    codes.push(code.to_owned());
                }
                s.filters.push(Filter { key: Key::ModalitiesInStudy, matcher: Matcher::List(codes) });
            }
            _ if strict => {
                return Err(Outcome::not_supported(format!(
                    "{name}: not a search parameter of {} on this server (see /fhir/metadata)",
                    kind.name()
                )))
            }
            _ => continue,
        }
        s.applied.push((k.clone(), v.clone()));
    }
    match started {
        (Some(f), Some(t)) if f > t => s.matches_nothing = true,
        (None, None) => {}
        (from, to) => s.filters.push(Filter { key: Key::StudyDate, matcher: Matcher::Range { from, to } }),
    }
    Ok(s)
}

/// A token's `system|code`: the system is `None` without a bar, `Some("")` for `|code`.
fn split_token(token: &str) -> (Option<&str>, &str) {
    match token.split_once('|') {
        Some((system, code)) => (Some(system), code),
        None => (None, token),
    }
}

/// `identifier`: the study's UID (`urn:dicom:uid|urn:oid:…`, or the value alone) or its
/// accession number (a value without a system; we write accession numbers without one).
fn identifier(v: &str, s: &mut Search) -> Result<(), Outcome> {
    let mut uids = Vec::new();
    let mut accessions = Vec::new();
    for token in v.split(',') {
        match split_token(token) {
            (Some(STUDY_UID_SYSTEM) | None, value) if value.starts_with("urn:oid:") => match StudyUid::new(&value["urn:oid:".len()..]) {
                Ok(uid) => uids.push(uid.to_string()),
                Err(_) => return Err(Outcome::invalid("identifier: urn:oid: followed by a Study Instance UID")),
            },
            (Some(STUDY_UID_SYSTEM), _) => return Err(Outcome::invalid("identifier: urn:dicom:uid values are urn:oid:<UID>")),
            (None | Some(""), value) => accessions.push(value.to_owned()),
            // No identifier we write has another system.
            (Some(_), _) => {}
        }
    }
    match (uids.is_empty(), accessions.len()) {
        (true, 0) => s.matches_nothing = true,
        (false, 0) => s.filters.push(Filter { key: Key::StudyUid, matcher: Matcher::List(uids) }),
        (true, 1) => s.filters.push(Filter { key: Key::AccessionNumber, matcher: Matcher::Single(accessions.remove(0)) }),
        _ => return Err(Outcome::not_supported("identifier: a list of values is supported for Study Instance UIDs only")),
    }
    Ok(())
}

/// DiagnosticReport's `identifier`: a stored report's SOP Instance UID (`urn:dicom:uid|urn:oid:…`,
/// or the value alone) or its study's accession number (a value without a system).
fn report_identifier(v: &str, s: &mut Search) -> Result<(), Outcome> {
    let mut sops = Vec::new();
    let mut accessions = Vec::new();
    for token in v.split(',') {
        match split_token(token) {
            (Some(STUDY_UID_SYSTEM) | None, value) if value.starts_with("urn:oid:") => sops.push(value["urn:oid:".len()..].to_owned()),
            (Some(STUDY_UID_SYSTEM), _) => return Err(Outcome::invalid("identifier: urn:dicom:uid values are urn:oid:<UID>")),
            (None | Some(""), value) => accessions.push(value.to_owned()),
            (Some(_), _) => {}
        }
    }
    match (sops.is_empty(), accessions.len()) {
        (true, 0) => s.matches_nothing = true,
        (false, 0) => s.only_reports(sops),
        (true, 1) => s.filters.push(Filter { key: Key::AccessionNumber, matcher: Matcher::Single(accessions.remove(0)) }),
        _ => return Err(Outcome::not_supported("identifier: a list of values is supported for SOP Instance UIDs only")),
    }
    Ok(())
}

/// The patient by identifier: Patient ID, and Issuer of Patient ID when a system is given
/// (`urn:oid:` stripped: the issuer we write as `urn:oid:…` when it is an OID).
fn patient_identifier(name: &str, v: &str, s: &mut Search) -> Result<(), Outcome> {
    if v.contains(',') {
        return Err(Outcome::not_supported(format!("{name}: one patient identifier per parameter")));
    }
    let (system, value) = split_token(v);
    if value.is_empty() {
        return Err(Outcome::invalid(format!("{name}: [system|]value")));
    }
    s.filters.push(Filter { key: Key::PatientId, matcher: Matcher::Single(value.to_owned()) });
    if let Some(system) = system.filter(|s| !s.is_empty()) {
        let issuer = system.strip_prefix("urn:oid:").unwrap_or(system);
        s.filters.push(Filter { key: Key::IssuerOfPatientId, matcher: Matcher::Single(issuer.to_owned()) });
    }
    Ok(())
}

/// A date parameter's value (`started`, `date`: R4 §3.1.1.4.2, date precision) as inclusive
/// DICOM DA bounds of the Study Date.
fn date_range(name: &str, v: &str) -> Result<(Option<String>, Option<String>), Outcome> {
    let prefixed = v.len() > 2 && v.as_bytes()[..2].iter().all(u8::is_ascii_lowercase);
    let (prefix, date) = if prefixed { v.split_at(2) } else { ("eq", v) };
    let bad = || Outcome::invalid(format!("{name}: [prefix]YYYY, YYYY-MM or YYYY-MM-DD"));
    if date.contains('T') {
        return Err(Outcome::not_supported(format!(
            "{name}: date precision only (YYYY, YYYY-MM or YYYY-MM-DD): DICOM study times carry no time zone"
        )));
    }
    let num = |s: &str, len: usize| (s.len() == len && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse::<u32>().ok()).flatten();
    let day = |y: u32, m: u32, d: u32| NaiveDate::from_ymd_opt(i32::try_from(y).ok()?, m, d);
    // The first and the last day the value covers.
    let (first, last) = match date.split('-').collect::<Vec<_>>().as_slice() {
        [y] => {
            let y = num(y, 4).ok_or_else(bad)?;
            (day(y, 1, 1), day(y, 12, 31))
        }
        [y, m] => {
            let (y, m) = (num(y, 4).ok_or_else(bad)?, num(m, 2).ok_or_else(bad)?);
            let first = day(y, m, 1);
            (first, first.and_then(|f| f.checked_add_months(Months::new(1))).and_then(|n| n.pred_opt()))
        }
        [y, m, d] => {
            let d = day(num(y, 4).ok_or_else(bad)?, num(m, 2).ok_or_else(bad)?, num(d, 2).ok_or_else(bad)?);
            (d, d)
        }
        _ => return Err(bad()),
    };
    let (first, last) = (first.ok_or_else(bad)?, last.ok_or_else(bad)?);
    let da = |d: Option<NaiveDate>| d.map(|d| d.format("%Y%m%d").to_string());
    Ok(match prefix {
        "eq" => (da(Some(first)), da(Some(last))),
        "ge" => (da(Some(first)), None),
        "gt" | "sa" => (da(Some(last.succ_opt().ok_or_else(bad)?)), None),
        "le" => (None, da(Some(last))),
        "lt" | "eb" => (None, da(Some(first.pred_opt().ok_or_else(bad)?))),
        "ne" | "ap" => return Err(Outcome::not_supported(format!("{name}: the prefix {prefix} is not supported"))),
        _ => return Err(bad()),
    })
}

/// The `ImagingStudy` resources of `studies`, in their order: their series and instances read
/// in two queries for the lot.
async fn resources(state: &AppState, headers: &HeaderMap, studies: &[StudyRow]) -> Result<Vec<Value>, Outcome> {
    if studies.is_empty() {
        return Ok(Vec::new());
    }
    let uids: Vec<String> = studies.iter().map(|s| s.study.study_uid.to_string()).collect();
    let of_studies =
        |level| Query { level, filters: vec![Filter { key: Key::StudyUid, matcher: Matcher::List(uids.clone()) }], limit: None, offset: 0 };
    let series = state.archive.search_series(&state.who, &of_studies(Level::Series)).await?;
    let instances = state.archive.search_instances(&state.who, &of_studies(Level::Instance)).await?;
    let mut series_of: HashMap<&str, Vec<&SeriesRow>> = HashMap::new();
    for s in &series {
        series_of.entry(s.study.study_uid.as_str()).or_default().push(s);
    }
    let mut instances_of: HashMap<&str, Vec<&Found>> = HashMap::new();
    for i in &instances {
        instances_of.entry(i.series.series_uid.as_str()).or_default().push(i);
    }
    let dicomweb = crate::base_url(state, headers);
    Ok(studies
        .iter()
        .map(|s| imaging_study(s, series_of.get(s.study.study_uid.as_str()).map_or(&[][..], Vec::as_slice), &instances_of, &dicomweb))
        .collect())
}

/// One study as an R4 `ImagingStudy`.
fn imaging_study(s: &StudyRow, series: &[&SeriesRow], instances_of: &HashMap<&str, Vec<&Found>>, dicomweb: &str) -> Value {
    let mut r = Map::new();
    r.insert("resourceType".into(), "ImagingStudy".into());
    r.insert("id".into(), s.study.study_uid.as_str().into());
    r.insert(
        "contained".into(),
        json!([{
            "resourceType": "Endpoint",
            "id": "dicomweb",
            "status": "active",
            "connectionType": {
                "system": "http://terminology.hl7.org/CodeSystem/endpoint-connection-type",
                "code": "dicom-wado-rs",
            },
            "payloadType": [{ "text": "DICOM" }],
            "payloadMimeType": ["application/dicom"],
            "address": dicomweb,
        }]),
    );
    let mut identifiers = vec![json!({ "use": "official", "system": STUDY_UID_SYSTEM, "value": format!("urn:oid:{}", s.study.study_uid) })];
    if !s.study.accession_number.is_empty() {
        identifiers.push(json!({
            "type": { "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "ACSN" }] },
            "value": s.study.accession_number,
        }));
    }
    r.insert("identifier".into(), identifiers.into());
    r.insert("status".into(), "available".into());
    if !s.modalities_in_study.is_empty() {
        r.insert("modality".into(), s.modalities_in_study.iter().map(|m| modality(m)).collect::<Vec<_>>().into());
    }
    r.insert("subject".into(), subject(&s.patient));
    if let Some(d) = fhir_date(&s.study.study_date) {
        r.insert("started".into(), d.into());
    }
    r.insert("endpoint".into(), json!([{ "reference": "#dicomweb" }]));
    r.insert("numberOfSeries".into(), s.number_of_series.into());
    r.insert("numberOfInstances".into(), s.number_of_instances.into());
    if !s.study.study_description.is_empty() {
        r.insert("description".into(), s.study.study_description.as_str().into());
    }
    let mut series: Vec<&&SeriesRow> = series.iter().collect();
    series.sort_by(|a, b| (a.series.series_number, &a.series.series_uid).cmp(&(b.series.series_number, &b.series.series_uid)));
    let series: Vec<Value> = series
        .into_iter()
        .map(|se| {
            let a = &se.series;
            let mut o = Map::new();
            o.insert("uid".into(), a.series_uid.as_str().into());
            if let Some(n) = a.series_number.filter(|n| (0..=i64::from(u32::MAX)).contains(n)) {
                o.insert("number".into(), n.into());
            }
            // Modality is Type 1 in DICOM and 1..1 here: "OT" (other) for an object without one.
            o.insert("modality".into(), modality(if a.modality.is_empty() { "OT" } else { &a.modality }));
            if !a.series_description.is_empty() {
                o.insert("description".into(), a.series_description.as_str().into());
            }
            o.insert("numberOfInstances".into(), se.number_of_instances.into());
            if !a.body_part_examined.is_empty() {
                // A DICOM code string (PS3.16 CID 4031's defined terms), not a SNOMED code.
                o.insert("bodySite".into(), json!({ "display": a.body_part_examined }));
            }
            if let Some(d) = fhir_date(&a.performed_procedure_step_start_date) {
                o.insert("started".into(), d.into());
            }
            let mut instances: Vec<&Found> = instances_of.get(a.series_uid.as_str()).cloned().unwrap_or_default();
            instances
                .sort_by(|x, y| (x.instance.instance_number, &x.instance.sop_uid).cmp(&(y.instance.instance_number, &y.instance.sop_uid)));
            if !instances.is_empty() {
                let list: Vec<Value> = instances
                    .iter()
                    .map(|i| {
                        let mut o = Map::new();
                        o.insert("uid".into(), i.instance.sop_uid.as_str().into());
                        o.insert(
                            "sopClass".into(),
                            json!({ "system": "urn:ietf:rfc:3986", "code": format!("urn:oid:{}", i.instance.sop_class_uid) }),
                        );
                        if let Some(n) = i.instance.instance_number.filter(|n| (0..=i64::from(u32::MAX)).contains(n)) {
                            o.insert("number".into(), n.into());
                        }
                        Value::Object(o)
                    })
                    .collect();
                o.insert("instance".into(), list.into());
            }
            Value::Object(o)
        })
        .collect();
    if !series.is_empty() {
        r.insert("series".into(), series.into());
    }
    Value::Object(r)
}

fn modality(code: &str) -> Value {
    json!({ "system": DCM, "code": code })
}

/// The study's patient as a logical reference: Patient ID (with its issuer: as the system when
/// it is an OID, as the assigner's name otherwise) and the name for display.
fn subject(p: &PatientAttrs) -> Value {
    let mut r = Map::new();
    if !p.patient_id.is_empty() {
        let mut id = Map::new();
        let issuer = p.issuer_of_patient_id.as_str();
        if !issuer.is_empty() && issuer.bytes().all(|b| b.is_ascii_digit() || b == b'.') && vna_dicom::uid::validate(issuer).is_ok() {
            id.insert("system".into(), format!("urn:oid:{issuer}").into());
        } else if !issuer.is_empty() {
            id.insert("assigner".into(), json!({ "display": issuer }));
        }
        id.insert("value".into(), p.patient_id.as_str().into());
        r.insert("type".into(), "Patient".into());
        r.insert("identifier".into(), Value::Object(id));
    }
    let name = display_name(&p.patient_name);
    if !name.is_empty() {
        r.insert("display".into(), name.into());
    } else if r.is_empty() {
        // A reference needs an element; a study without patient identity still has a subject.
        r.insert("display".into(), "(no patient identity recorded)".into());
    }
    Value::Object(r)
}

/// A DICOM PN (`Family^Given^Middle^Prefix^Suffix`, its first component group) in reading
/// order: prefix, given, middle, family, suffix.
fn display_name(pn: &str) -> String {
    let alphabetic = pn.split('=').next().unwrap_or_default();
    let c: Vec<&str> = alphabetic.split('^').map(str::trim).collect();
    let at = |i: usize| c.get(i).copied().unwrap_or_default();
    [at(3), at(1), at(2), at(0), at(4)].iter().filter(|s| !s.is_empty()).copied().collect::<Vec<_>>().join(" ")
}

/// A DICOM DA (`YYYYMMDD`) as a FHIR date, if it is one.
fn fhir_date(da: &str) -> Option<String> {
    if da.len() != 8 || !da.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    NaiveDate::parse_from_str(da, "%Y%m%d").ok().map(|d| d.format("%Y-%m-%d").to_string())
}

/// `GET /fhir/metadata`: what this server does (R4 CapabilityStatement, §3.1.0.11), without
/// authentication (a client reads it before it knows how to authenticate; no patient data).
async fn capabilities(State(s): State<AppState>, headers: HeaderMap, QueryParams(params): Params) -> Response {
    if let Err(o) = negotiate(&headers, &params) {
        return o.into_response();
    }
    let base = fhir_base(&s, &headers);
    let param = |name: &str, kind: &str, doc: &str| json!({ "name": name, "type": kind, "documentation": doc });
    let body = json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-12-08",
        "publisher": "vna",
        "kind": "instance",
        "software": { "name": "vna", "version": env!("CARGO_PKG_VERSION") },
        "implementation": { "description": "vna vendor-neutral archive: imaging studies for the patient record", "url": base },
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "rest": [{
            "mode": "server",
            "documentation": "Studies of the archive as ImagingStudy, each with a contained Endpoint (dicom-wado-rs) to retrieve it. \
                              Unknown search parameters are ignored unless Prefer: handling=strict.",
            "resource": [{
                "type": "ImagingStudy",
                "profile": "http://hl7.org/fhir/StructureDefinition/ImagingStudy",
                "interaction": [{ "code": "read" }, { "code": "search-type" }],
                "searchParam": [
                    param("_id", "token", "Study Instance UID"),
                    param("identifier", "token", "urn:dicom:uid|urn:oid:<Study Instance UID>, or an accession number (no system)"),
                    param("patient", "reference", "by identifier only: patient:identifier or patient.identifier = [system|]Patient ID"),
                    param("subject", "reference", "by identifier only: subject:identifier or subject:Patient.identifier"),
                    param("started", "date", "Study Date, date precision; prefixes eq, ge, gt, le, lt, sa, eb"),
                    param("modality", "token", "a modality of the study (DICOM DCM codes), comma-separated for any of them"),
                ],
            }, {
                "type": "DiagnosticReport",
                "profile": "http://hl7.org/fhir/StructureDefinition/DiagnosticReport",
                "documentation": "Reports of the archive's studies: sent through its API (id sent-<key>) or stored as SR or \
                                  Encapsulated PDF objects (id = SOP Instance UID), their text as the presented form.",
                "interaction": [{ "code": "read" }, { "code": "search-type" }],
                "searchParam": [
                    param("_id", "token", "sent-<key> or the SOP Instance UID of a stored report"),
                    param("identifier", "token", "urn:dicom:uid|urn:oid:<SOP Instance UID>, or the study's accession number (no system)"),
                    param("patient", "reference", "by identifier only: patient:identifier or patient.identifier = [system|]Patient ID"),
                    param("subject", "reference", "by identifier only: subject:identifier or subject:Patient.identifier"),
                    param("date", "date", "the study's date, date precision; prefixes eq, ge, gt, le, lt, sa, eb"),
                ],
            }],
        }],
    });
    fhir_response(StatusCode::OK, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn range(v: &str) -> (Option<String>, Option<String>) {
        date_range("started", v).unwrap_or_else(|e| panic!("{v}: {e:?}"))
    }

    fn s(x: &str) -> Option<String> {
        Some(x.to_owned())
    }

    #[test]
    fn started_values_become_inclusive_study_date_bounds() {
        assert_eq!(range("2024"), (s("20240101"), s("20241231")));
        assert_eq!(range("eq2024-02"), (s("20240201"), s("20240229")));
        assert_eq!(range("2023-02"), (s("20230201"), s("20230228")));
        assert_eq!(range("ge2024-03-01"), (s("20240301"), None));
        assert_eq!(range("gt2024-02-29"), (s("20240301"), None));
        assert_eq!(range("sa2024-12"), (s("20250101"), None));
        assert_eq!(range("le2024-03"), (None, s("20240331")));
        assert_eq!(range("lt2024-01-01"), (None, s("20231231")));
        assert_eq!(range("eb2024-03-01"), (None, s("20240229")));
        for bad in ["24", "2024-13", "2023-02-29", "2024-1-1", "xx2024", "2024-01-01-01", "20240101"] {
            assert_eq!(date_range("started", bad).map_err(|e| e.code), Err("invalid"), "{bad}");
        }
        assert_eq!(date_range("started", "ne2024").map_err(|e| e.code), Err("not-supported"));
        assert_eq!(date_range("started", "ge2024-01-01T10:00:00Z").map_err(|e| e.code), Err("not-supported"));
    }

    #[test]
    fn several_started_parameters_intersect() {
        let p = parse_search(
            &params(&[("started", "ge2024-01"), ("started", "lt2024-03-01"), ("started", "ge2024-02-10")]),
            false,
            100,
            Kind::ImagingStudy,
        )
        .unwrap();
        assert_eq!(p.filters, vec![Filter { key: Key::StudyDate, matcher: Matcher::Range { from: s("20240210"), to: s("20240229") } }]);
        let p = parse_search(&params(&[("started", "ge2024-03"), ("started", "lt2024-03-01")]), false, 100, Kind::ImagingStudy).unwrap();
        assert!(p.matches_nothing);
    }

    #[test]
    fn identifiers_name_a_study_uid_or_an_accession_number() {
        let p =
            parse_search(&params(&[("identifier", "urn:dicom:uid|urn:oid:1.2.3,urn:oid:1.2.4")]), false, 100, Kind::ImagingStudy).unwrap();
        assert_eq!(p.filters, vec![Filter { key: Key::StudyUid, matcher: Matcher::List(vec!["1.2.3".into(), "1.2.4".into()]) }]);
        let p = parse_search(&params(&[("identifier", "ACC-7")]), false, 100, Kind::ImagingStudy).unwrap();
        assert_eq!(p.filters, vec![Filter { key: Key::AccessionNumber, matcher: Matcher::Single("ACC-7".into()) }]);
        let p = parse_search(&params(&[("identifier", "http://hospital.example/acc|ACC-7")]), false, 100, Kind::ImagingStudy).unwrap();
        assert!(p.matches_nothing, "no identifier we write has that system");
        assert!(parse_search(&params(&[("identifier", "urn:dicom:uid|1.2.3")]), false, 100, Kind::ImagingStudy).is_err());
        assert!(parse_search(&params(&[("identifier", "urn:oid:1.2.3,ACC-7")]), false, 100, Kind::ImagingStudy).is_err());
    }

    #[test]
    fn the_patient_is_named_by_identifier_only() {
        let p = parse_search(&params(&[("patient:identifier", "urn:oid:1.2.250.1|P-1")]), false, 100, Kind::ImagingStudy).unwrap();
        assert_eq!(
            p.filters,
            vec![
                Filter { key: Key::PatientId, matcher: Matcher::Single("P-1".into()) },
                Filter { key: Key::IssuerOfPatientId, matcher: Matcher::Single("1.2.250.1".into()) },
            ]
        );
        let p = parse_search(&params(&[("subject:Patient.identifier", "P-1")]), false, 100, Kind::ImagingStudy).unwrap();
        assert_eq!(p.filters, vec![Filter { key: Key::PatientId, matcher: Matcher::Single("P-1".into()) }]);
        assert_eq!(
            parse_search(&params(&[("patient", "Patient/7")]), false, 100, Kind::ImagingStudy).map(|_| ()).map_err(|e| e.code),
            Err("not-supported")
        );
    }

    #[test]
    fn unknown_parameters_are_ignored_unless_strict_and_left_out_of_the_links() {
        let p = parse_search(&params(&[("_sort", "-started"), ("modality", "CT,MR"), ("_count", "500")]), false, 100, Kind::ImagingStudy)
            .unwrap();
        assert_eq!(p.applied, params(&[("modality", "CT,MR")]));
        assert_eq!(p.count, 100, "capped at the server's maximum");
        assert_eq!(p.filters, vec![Filter { key: Key::ModalitiesInStudy, matcher: Matcher::List(vec!["CT".into(), "MR".into()]) }]);
        let e = parse_search(&params(&[("_sort", "-started")]), true, 100, Kind::ImagingStudy).map(|_| ()).unwrap_err();
        assert_eq!((e.status, e.code), (StatusCode::BAD_REQUEST, "not-supported"));
        assert!(parse_search(&params(&[("modality", "ct")]), false, 100, Kind::ImagingStudy).is_err());
        assert!(parse_search(&params(&[("modality", "http://loinc.org|CT")]), false, 100, Kind::ImagingStudy).is_err());
    }

    #[test]
    fn names_and_dates_read_as_fhir_writes_them() {
        assert_eq!(display_name("Doe^Jane^M^Dr^PhD=ドウ^ジェーン"), "Dr Jane M Doe PhD");
        assert_eq!(display_name("Doe"), "Doe");
        assert_eq!(display_name(""), "");
        assert_eq!(fhir_date("20240229").as_deref(), Some("2024-02-29"));
        assert_eq!(fhir_date("20230229"), None);
        assert_eq!(fhir_date("2024"), None);
        assert_eq!(encode("urn:oid:1.2|x y"), "urn%3Aoid%3A1.2%7Cx%20y");
    }
}
