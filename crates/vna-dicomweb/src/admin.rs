//! Administrative HTTP routes outside DICOMweb (mounted at `/admin`): what an archive
//! administrator needs that no DICOM service offers: the versions of an instance (rejected ones
//! too), the retention and legal hold of its stored object, what IOCM rejection notes rejected.
//! The archive decides who may: the instance routes need the admin permission, `/audit` the
//! audit permission, `/links` the right to read the linked scope; each sees only the tenants
//! its principal sees.

use crate::error::ApiError;
use axum::body::Body;
use axum::extract::{Extension, Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::Router;
use futures::TryStreamExt;
use serde_json::json;
use std::sync::Arc;
use vna_archive::{Archive, Principal};
use vna_dicom::uid::SopInstanceUid;

/// The admin routes; `links` enables `POST /admin/links`.
pub fn admin_router(archive: Arc<Archive>, links: Option<Arc<vna_auth::LinkSigner>>) -> Router {
    let links = match links {
        Some(signer) => Router::new().route("/links", axum::routing::post(create_link)).with_state((archive.clone(), signer)),
        None => Router::new(),
    };
    Router::new()
        .route("/instances/{sop}/versions", get(versions))
        .route("/instances/{sop}/versions/{version}", get(version_bytes))
        .route("/instances/{sop}/protection", get(protection))
        .route("/instances/{sop}/legal-hold", put(legal_hold))
        .route("/legal-hold", axum::routing::post(legal_hold_where))
        .route("/audit", get(audit))
        .route("/rejections", get(rejections))
        .route("/instances/{sop}/tombstones", get(tombstones))
        .route("/lifecycle/plan", get(lifecycle_plan))
        .route("/lifecycle/apply", axum::routing::post(lifecycle_apply))
        .route("/jobs", get(jobs))
        .route("/jobs/{id}", get(job))
        .route("/jobs/{id}/cancel", axum::routing::post(cancel_job))
        .route("/search", get(crate::search::status))
        .route("/search/reindex", axum::routing::post(crate::search::reindex))
        .with_state(archive)
        .merge(links)
}

/// The body of a legal hold request: `on` or `off`.
fn on_off(body: &str) -> Result<bool, ApiError> {
    match body.trim() {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(ApiError::BadRequest("body must be `on` or `off`".to_owned())),
    }
}

fn sop(s: &str) -> Result<SopInstanceUid, ApiError> {
    SopInstanceUid::new(s).map_err(|e| ApiError::BadRequest(format!("invalid SOP Instance UID in the path: {e}")))
}

/// `GET /admin/instances/{sop}/versions`: every stored version, oldest first.
async fn versions(State(archive): State<Arc<Archive>>, Extension(who): Extension<Arc<Principal>>, Path(uid): Path<String>) -> Response {
    let result = async {
        let rows = archive.versions(&who, &sop(&uid)?).await?;
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
                    "rejection": rejection_json(r.rejection.as_ref()),
                })
            })
            .collect();
        Ok::<_, ApiError>(
            (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], serde_json::Value::Array(list).to_string()).into_response(),
        )
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// An IOCM rejection hiding an instance version: its code and when (`null` when none).
fn rejection_json(r: Option<&vna_archive::model::Rejection>) -> serde_json::Value {
    r.map_or(serde_json::Value::Null, |r| json!({ "code": r.code, "at": vna_archive::utc_timestamp(r.at_ms) }))
}

/// `GET /admin/rejections?limit=&offset=`: the SOP instances IHE IOCM rejection notes rejected
/// (hidden from every clinical interface), oldest rejection first, whether they arrived or not;
/// `limit` defaults to and is capped at 1000.
async fn rejections(
    State(archive): State<Arc<Archive>>,
    Extension(who): Extension<Arc<Principal>>,
    axum::extract::Query(p): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Response {
    let result = async {
        if let Some(k) = p.keys().find(|k| !["limit", "offset"].contains(&k.as_str())) {
            return Err(ApiError::BadRequest(format!("unknown parameter {k}")));
        }
        let n = |k: &str, default: u32| -> Result<u32, ApiError> {
            p.get(k)
                .map_or(Ok(default), |v| v.parse::<u32>().map_err(|_| ApiError::BadRequest(format!("{k} must be a non-negative integer"))))
        };
        let (limit, offset) = (n("limit", 1000)?.min(1000), n("offset", 0)?);
        let records = archive.rejections(&who, limit, offset).await?;
        let list: Vec<_> = records
            .iter()
            .map(|r| {
                json!({
                    "sopInstanceUid": r.sop_uid,
                    "studyInstanceUid": r.study_uid,
                    "seriesInstanceUid": r.series_uid,
                    "tenant": r.tenant,
                    "code": r.code,
                    "rejectionNote": r.note_sop_uid,
                    "at": vna_archive::utc_timestamp(r.at_ms),
                    "received": r.received,
                })
            })
            .collect();
        Ok::<_, ApiError>(
            (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], serde_json::Value::Array(list).to_string()).into_response(),
        )
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `GET /admin/instances/{sop}/tombstones`: what remains of the expired versions of an instance:
/// what each was (study, series, version, object, size, SHA-256), why it went (the rules and the
/// policy set, the rejection before it), when, and when its object was destroyed.
async fn tombstones(State(archive): State<Arc<Archive>>, Extension(who): Extension<Arc<Principal>>, Path(uid): Path<String>) -> Response {
    let result = async {
        let stones = archive.tombstones(&who, &sop(&uid)?).await?;
        let list: Vec<_> = stones
            .iter()
            .map(|t| {
                json!({
                    "version": t.version,
                    "studyInstanceUid": t.study_uid,
                    "seriesInstanceUid": t.series_uid,
                    "sopClassUid": t.sop_class_uid,
                    "object": format!("{}/{}", t.blob.tier, t.blob.key),
                    "storeVersionId": t.blob.version_id,
                    "size": t.blob.size,
                    "sha256": t.blob.sha256,
                    "reason": t.reason,
                    "rules": t.rules,
                    "policySetHash": t.policy_set,
                    "rejectionCode": t.rejected_code,
                    "at": vna_archive::utc_timestamp(t.at_ms),
                    "purgedAt": t.purged_at_ms.map(vna_archive::utc_timestamp),
                })
            })
            .collect();
        Ok::<_, ApiError>(
            (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], serde_json::Value::Array(list).to_string()).into_response(),
        )
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

type Params = axum::extract::Query<std::collections::HashMap<String, String>>;

/// Refuses a parameter not in `known` (a typo must not silently change what is done).
fn only(p: &std::collections::HashMap<String, String>, known: &[&str]) -> Result<(), ApiError> {
    match p.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(ApiError::BadRequest(format!("unknown parameter {k}"))),
        None => Ok(()),
    }
}

/// `now`: a date or RFC 3339 instant; absent: the current time.
fn now_param(p: &std::collections::HashMap<String, String>) -> Result<i64, ApiError> {
    match p.get("now") {
        Some(t) => vna_archive::parse_instant(t).ok_or_else(|| ApiError::BadRequest("now must be a date or an RFC 3339 instant".into())),
        None => Ok(vna_archive::now_ms()),
    }
}

fn json_response(status: StatusCode, body: &serde_json::Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

/// `GET /admin/lifecycle/plan?now=&objects=true`: what the configured policies would do as of
/// `now` (`vna lifecycle plan --json`; objects by opaque id, without UIDs), with the `planHash`
/// to apply it by.
async fn lifecycle_plan(
    State(archive): State<Arc<Archive>>,
    Extension(who): Extension<Arc<Principal>>,
    axum::extract::Query(p): Params,
) -> Response {
    let result = async {
        only(&p, &["now", "objects"])?;
        let objects = p.get("objects").is_some_and(|v| v == "true");
        let plan = archive.lifecycle_plan(&who, None, now_param(&p)?, objects, false).await?;
        Ok::<_, ApiError>(json_response(StatusCode::OK, &plan))
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `POST /admin/lifecycle/apply?plan=HASH&now=&maxPerSecond=&maxMegabytesPerSecond=&moveGraceSeconds=&instancesPerJob=`:
/// queues the jobs applying the configured policies as of `now` if the plan for that date still
/// has this hash (409 when the catalog or the policies changed since); 202 with their ids
/// (`jobs`), the first (`job`) and where to follow it.
async fn lifecycle_apply(
    State(archive): State<Arc<Archive>>,
    Extension(who): Extension<Arc<Principal>>,
    axum::extract::Query(p): Params,
) -> Response {
    let result = async {
        only(&p, &["now", "plan", "maxPerSecond", "maxMegabytesPerSecond", "moveGraceSeconds", "instancesPerJob"])?;
        let plan = p.get("plan").ok_or_else(|| ApiError::BadRequest("plan (the plan's hash) is required".into()))?;
        let rate = |k: &str| {
            p.get(k).map(|v| v.parse::<u32>().map_err(|_| ApiError::BadRequest(format!("{k} must be a positive integer")))).transpose()
        };
        let pace = vna_archive::Pace { objects_per_second: rate("maxPerSecond")?, megabytes_per_second: rate("maxMegabytesPerSecond")? };
        let grace = p
            .get("moveGraceSeconds")
            .map(|v| v.parse::<u64>().map_err(|_| ApiError::BadRequest("moveGraceSeconds must be a whole number".into())))
            .transpose()?;
        let per_job = p
            .get("instancesPerJob")
            .map(|v| {
                v.parse::<i64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| ApiError::BadRequest("instancesPerJob must be a positive integer".into()))
            })
            .transpose()?;
        let ids = archive.queue_lifecycle_apply(&who, now_param(&p)?, plan, pace, grace, per_job).await?;
        let first = ids.first().copied().unwrap_or_default();
        let body = json!({ "job": first, "jobs": ids, "location": format!("/admin/jobs/{first}") });
        Ok::<_, ApiError>(json_response(StatusCode::ACCEPTED, &body))
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `GET /admin/jobs?state=&kind=&before=&limit=`: jobs, newest first (paged by `before`, the
/// last id seen; `limit` up to 1000, 100 by default).
async fn jobs(State(archive): State<Arc<Archive>>, Extension(who): Extension<Arc<Principal>>, axum::extract::Query(p): Params) -> Response {
    let result = async {
        only(&p, &["state", "kind", "before", "limit"])?;
        let state = p
            .get("state")
            .map(|s| vna_archive::model::JobState::parse(s).ok_or_else(|| ApiError::BadRequest(format!("unknown job state {s}"))))
            .transpose()?;
        let int =
            |k: &str| p.get(k).map(|v| v.parse::<i64>().map_err(|_| ApiError::BadRequest(format!("{k} must be an integer")))).transpose();
        let limit = int("limit")?.unwrap_or(100);
        if !(1..=1000).contains(&limit) {
            return Err(ApiError::BadRequest("limit must be 1 to 1000".into()));
        }
        let q = vna_archive::model::JobQuery { state, kind: p.get("kind").cloned(), before_id: int("before")?, limit: limit as u32 };
        let list: Vec<_> = archive.jobs(&who, &q).await?.iter().map(|j| vna_archive::jobs::job_json(j, &[])).collect();
        Ok::<_, ApiError>(json_response(StatusCode::OK, &serde_json::Value::Array(list)))
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `GET /admin/jobs/{id}`: one job, its progress and outcome, and the first 100 objects it could
/// not handle (by opaque id) with why.
async fn job(State(archive): State<Arc<Archive>>, Extension(who): Extension<Arc<Principal>>, Path(id): Path<i64>) -> Response {
    let result = async {
        let (job, failures) = archive.job(&who, id, 100).await?;
        Ok::<_, ApiError>(json_response(StatusCode::OK, &vna_archive::jobs::job_json(&job, &failures)))
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `POST /admin/jobs/{id}/cancel`: a queued job is cancelled at once, a running one stops at its
/// next step; answers the job's state.
async fn cancel_job(State(archive): State<Arc<Archive>>, Extension(who): Extension<Arc<Principal>>, Path(id): Path<i64>) -> Response {
    let result = async {
        let state = archive.cancel_job(&who, id).await?;
        Ok::<_, ApiError>(json_response(StatusCode::OK, &json!({ "job": id, "state": state.as_str() })))
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `GET /admin/instances/{sop}/versions/{n}`: the stored bytes of version `n`.
async fn version_bytes(
    State(archive): State<Arc<Archive>>,
    Extension(who): Extension<Arc<Principal>>,
    Path((uid, version)): Path<(String, i32)>,
) -> Response {
    let result = async {
        let rows = archive.versions(&who, &sop(&uid)?).await?;
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

/// `GET /admin/instances/{sop}/protection`: retention and legal hold of the current version's
/// stored object, as the store reports them, how strongly the store enforces them, and what the
/// lifecycle policies decide for it (`policy`: the rules that match, the retention they ask
/// for, a move, expiry, holds; `null` without policies).
async fn protection(State(archive): State<Arc<Archive>>, Extension(who): Extension<Arc<Principal>>, Path(uid): Path<String>) -> Response {
    let result = async {
        let (row, p, locking) = archive.protection(&who, &sop(&uid)?).await?;
        let retention = p.retention.map(|r| {
            let secs = r.retain_until.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
            json!({ "mode": r.mode.as_str(), "retainUntilEpochSeconds": secs })
        });
        // What the lifecycle policies decide for it, and why (the rules), as of now.
        let decision = archive.policy_decision(&row, vna_archive::now_ms()).await?;
        let policy = decision.map(|d| {
            let at = |t: Option<i64>| t.map(vna_archive::utc_timestamp);
            json!({
                "policySetHash": archive.policies().map(|s| s.hash.clone()),
                "rules": d.rules,
                "retention": d.retention.as_ref().map(|r| json!({
                    "mode": r.mode.as_str(),
                    "retainUntil": vna_archive::utc_timestamp(r.until),
                    "rules": r.rules,
                })),
                "undetermined": d.undetermined,
                "transition": d.transition.as_ref().map(|m| json!({ "tier": m.tier, "at": at(m.at), "rule": m.rule })),
                "expireAt": at(d.expire_at),
                "hold": d.hold,
            })
        });
        let body = json!({
            "version": row.version,
            "tier": row.blob.tier,
            "key": row.blob.key,
            "storeVersionId": row.blob.version_id,
            "retention": retention,
            "legalHold": p.legal_hold,
            "enforcedBy": locking.enforced_by(),
            "rejection": rejection_json(row.rejection.as_ref()),
            "policy": policy,
        });
        Ok::<_, ApiError>((StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response())
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `PUT /admin/instances/{sop}/legal-hold` with body `on` or `off`: places or lifts a legal hold
/// on the current version's stored object. 204 on success.
async fn legal_hold(
    State(archive): State<Arc<Archive>>,
    Extension(who): Extension<Arc<Principal>>,
    Path(uid): Path<String>,
    body: String,
) -> Response {
    let result = async {
        let on = on_off(&body)?;
        archive.set_legal_hold(&who, &sop(&uid)?, on).await?;
        Ok::<_, ApiError>(StatusCode::NO_CONTENT.into_response())
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// Most instances one `POST /admin/legal-hold` changes.
const MAX_HOLD_INSTANCES: u32 = 100_000;

/// `POST /admin/legal-hold?{query}[&job=true]` with body `on` or `off`: places or lifts a legal
/// hold on the current version of every instance the administrator sees (rejected ones
/// included) that matches the query — any matching key of QIDO-RS, by keyword or tag, with
/// its value forms (`PatientID=…`, `StudyInstanceUID=…`, `ModalitiesInStudy=MG&StudyDate=20190101-20191231`),
/// at least one, universal matching refused. Up to 100 000 instances at once: 200 with what
/// was matched, changed and failed, audited once. More, or `job=true`: 202 with a job that
/// holds them page by page (`GET /admin/jobs/{id}`: progress, the objects that failed and
/// why), each page audited in the administrator's name.
async fn legal_hold_where(
    State(archive): State<Arc<Archive>>,
    Extension(who): Extension<Arc<Principal>>,
    axum::extract::Query(p): axum::extract::Query<Vec<(String, String)>>,
    body: String,
) -> Response {
    let result = async {
        let on = on_off(&body)?;
        let mut terms = Vec::new();
        let mut as_job = false;
        for (k, v) in p {
            if k == "job" {
                as_job = match v.as_str() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(ApiError::BadRequest("job must be true or false".to_owned())),
                };
                continue;
            }
            let tag = vna_dicom::tag_from_key(&k).ok_or_else(|| ApiError::BadRequest(format!("unknown attribute: {k}")))?;
            terms.push((tag, v));
        }
        let filters = vna_archive::hold_filters(&terms)?;
        let queued = |id: i64| {
            let body = json!({ "job": id, "location": format!("/admin/jobs/{id}") });
            (StatusCode::ACCEPTED, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
        };
        if as_job {
            return Ok(queued(archive.queue_legal_hold(&who, &terms, on).await?));
        }
        match archive.set_legal_hold_where(&who, filters, on, MAX_HOLD_INSTANCES).await {
            Ok(outcome) => {
                let body = json!({ "matched": outcome.matched, "changed": outcome.changed, "failed": outcome.failed });
                Ok((StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response())
            }
            Err(vna_archive::ArchiveError::TooManyObjects { .. }) => Ok(queued(archive.queue_legal_hold(&who, &terms, on).await?)),
            Err(e) => Err(e.into()),
        }
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// Most events in one answer of `GET /admin/audit`.
const MAX_AUDIT_PAGE: u32 = 1000;

/// `GET /admin/audit`: the audit trail for an auditor (the `vna.audit` scope), oldest first,
/// filtered by `patient` (Patient ID), `study` (Study Instance UID), `user` (principal id),
/// `since`/`until` (Unix milliseconds, until exclusive), paged by `after` (the last `seq` seen)
/// and `limit` (at most 1000). Each event comes with its PS3.15 A.5.1 `AuditMessage` XML.
async fn audit(
    State(archive): State<Arc<Archive>>,
    Extension(who): Extension<Arc<Principal>>,
    axum::extract::Query(p): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Response {
    let result = async {
        let int = |k: &str| -> Result<Option<i64>, ApiError> {
            p.get(k).map(|v| v.parse::<i64>().map_err(|_| ApiError::BadRequest(format!("{k} must be an integer")))).transpose()
        };
        if let Some(k) = p.keys().find(|k| !["patient", "study", "user", "since", "until", "after", "limit"].contains(&k.as_str())) {
            return Err(ApiError::BadRequest(format!("unknown parameter {k}")));
        }
        let limit = int("limit")?.unwrap_or(100);
        if !(1..=i64::from(MAX_AUDIT_PAGE)).contains(&limit) {
            return Err(ApiError::BadRequest(format!("limit must be 1 to {MAX_AUDIT_PAGE}")));
        }
        let q = vna_archive::model::AuditQuery {
            patient: p.get("patient").cloned(),
            study: p.get("study").cloned(),
            user: p.get("user").cloned(),
            since_ms: int("since")?,
            until_ms: int("until")?,
            after_seq: int("after")?,
            limit: u32::try_from(limit).unwrap_or(MAX_AUDIT_PAGE),
        };
        let records = archive.audit_trail(&who, &q).await?;
        let events: Vec<_> = records
            .iter()
            .map(|r| {
                let e = &r.event;
                json!({
                    "seq": r.seq,
                    "atMs": e.at_ms,
                    "eventId": e.event_id,
                    "eventType": e.event_type,
                    "action": e.action,
                    "outcome": e.outcome,
                    "user": e.user_id,
                    "userKind": e.user_kind,
                    "source": e.source,
                    "interface": e.interface,
                    "patients": e.patients,
                    "studies": e.studies,
                    "instances": e.instances,
                    "detail": e.detail,
                    "auditMessage": vna_archive::a5_xml(r, "vna"),
                })
            })
            .collect();
        let body = json!({ "events": events, "last": records.last().map(|r| r.seq) });
        Ok::<_, ApiError>((StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response())
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// Link lifetime when none is asked.
const DEFAULT_LINK_TTL_SECONDS: u64 = 900;

/// `POST /admin/links` with `{"study": UID, "series": UID?, "instance": UID?, "ttlSeconds": N?}`:
/// a signed link (read-only, that scope only, `ttlSeconds` at most a day, 15 minutes by default)
/// for a caller that may read the scope itself, e.g. the patient record's back end embedding a
/// thumbnail. The link is sent as `Authorization: Bearer vnal_…` or as the `link` query
/// parameter; making it is recorded in the audit trail with its id.
async fn create_link(
    State((archive, signer)): State<(Arc<Archive>, Arc<vna_auth::LinkSigner>)>,
    Extension(who): Extension<Arc<Principal>>,
    body: String,
) -> Response {
    let result = async {
        let req: serde_json::Value =
            serde_json::from_str(&body).map_err(|_| ApiError::BadRequest("the body must be a JSON object".into()))?;
        let text = |k: &str| req.get(k).and_then(serde_json::Value::as_str);
        let bad_uid = |k: &str| ApiError::BadRequest(format!("{k} is not a valid UID"));
        let study = vna_dicom::uid::StudyUid::new(text("study").ok_or_else(|| ApiError::BadRequest("study is required".into()))?)
            .map_err(|_| bad_uid("study"))?;
        let series = text("series").map(vna_dicom::uid::SeriesUid::new).transpose().map_err(|_| bad_uid("series"))?;
        let instance = text("instance").map(SopInstanceUid::new).transpose().map_err(|_| bad_uid("instance"))?;
        if instance.is_some() && series.is_none() {
            return Err(ApiError::BadRequest("an instance link names its series too".into()));
        }
        let ttl = match req.get("ttlSeconds") {
            None => DEFAULT_LINK_TTL_SECONDS,
            Some(v) => v.as_u64().filter(|&t| t > 0).ok_or_else(|| ApiError::BadRequest("ttlSeconds must be a positive integer".into()))?,
        };
        let scope = vna_archive::model::Scope { study, series, instance };
        // Only what the caller may read itself: a scope it cannot see is not found.
        archive.instances(&who, &scope).await?;
        let link = signer
            .sign(&scope, std::time::Duration::from_secs(ttl), vna_archive::now_ms() / 1000)
            .map_err(|e| ApiError::BadRequest(e.to_string()))?;
        let detail = format!("signed link {} made for study {} until {}", link.id, scope.study.as_str(), link.expires_at);
        archive.audit_security(&who, vna_archive::USER_SECURITY_ATTRIBUTES_CHANGED, 0, &detail).await;
        let body = json!({ "id": link.id, "link": link.token, "expiresAt": link.expires_at });
        Ok::<_, ApiError>((StatusCode::CREATED, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response())
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}
