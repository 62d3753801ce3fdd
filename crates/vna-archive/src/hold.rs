//! Legal holds over a set of instances chosen with the query vocabulary of QIDO-RS and C-FIND
//! (a patient, a study, "every mammogram of 2019 at this site"): placed or lifted at once for
//! a small set, or by a job over a set of any size — keyset pages of the match, each object's
//! current version held in its store, every page audited, failures recorded and the job going
//! on, resumable from its cursor by any node.

use crate::query::{matching_key, parse_match, MatchOptions};
use crate::{Archive, ArchiveError, Permission, Principal, PrincipalKind};
use vna_catalog::{Filter, InstanceRow, Level, Query, Visibility};
use vna_dicom::Tag;

/// The job that places or lifts a legal hold over a match. Parameters: `on`, `terms` (the
/// query: `[tag as 8 hex digits, value]` pairs, as QIDO-RS would take them), and who asked
/// (`by`, `byKind`, `tenants`: the holds reach what they could see, and the audit trail
/// names them).
pub const HOLD_JOB: &str = "legal-hold";

/// Instances per page of a hold job (one audit event each).
const HOLD_PAGE: u32 = 500;

/// The filters of a hold's query terms: each a matching key of the one query vocabulary with
/// a value (universal matching holds nothing); at least one, so that nothing is held by
/// accident.
pub fn hold_filters(terms: &[(Tag, String)]) -> Result<Vec<Filter>, ArchiveError> {
    let options = MatchOptions { fuzzy: false, max_list: 100 };
    let mut filters = Vec::new();
    for (tag, value) in terms {
        let bad = |why: String| ArchiveError::BadQuery { why };
        let key = matching_key(*tag).ok_or_else(|| bad(format!("{tag} is not a matching key")))?;
        match parse_match(key, value, options).map_err(|e| bad(format!("{tag}: {e}")))? {
            Some(matcher) => filters.push(Filter { key: key.key, matcher }),
            None => return Err(bad(format!("{tag}: a legal hold needs a value, not universal matching"))),
        }
    }
    if filters.is_empty() {
        return Err(ArchiveError::BadQuery { why: "a legal hold needs at least one matching key with a value".to_owned() });
    }
    Ok(filters)
}

impl Archive {
    /// Queues a job placing (`on`) or lifting a legal hold on the current version of every
    /// instance matching `terms` that `who` (an administrator) sees, rejected ones included.
    /// The terms are checked before anything is queued. Returns the job's id.
    pub async fn queue_legal_hold(&self, who: &Principal, terms: &[(Tag, String)], on: bool) -> Result<i64, ArchiveError> {
        self.require(who, Permission::Admin).await?;
        hold_filters(terms)?;
        let terms: Vec<[String; 2]> = terms.iter().map(|(t, v)| [format!("{:04X}{:04X}", t.0, t.1), v.clone()]).collect();
        let params = serde_json::json!({
            "on": on,
            "terms": terms,
            "by": who.id,
            "byKind": who.kind.as_str(),
            "tenants": who.visibility().tenants,
        });
        self.enqueue_job(HOLD_JOB, &params, crate::now_ms()).await
    }
}

/// The requester of a hold job as its parameters recorded them.
fn requester(params: &serde_json::Value) -> Result<Principal, String> {
    let id = params["by"].as_str().ok_or("the job does not say who asked")?;
    let kind = PrincipalKind::parse(params["byKind"].as_str().unwrap_or_default()).ok_or("the job's requester kind is unknown")?;
    let tenants = match &params["tenants"] {
        serde_json::Value::Null => None,
        serde_json::Value::Array(a) => Some(a.iter().filter_map(|t| t.as_str().map(str::to_owned)).collect()),
        _ => return Err("the job's tenants are not a list".into()),
    };
    Ok(Principal::new(id, kind, [Permission::Admin], tenants).via("job", ""))
}

fn terms(params: &serde_json::Value) -> Result<Vec<(Tag, String)>, String> {
    let list = params["terms"].as_array().ok_or("the job has no terms")?;
    list.iter()
        .map(|t| {
            let (tag, value) = (t[0].as_str().unwrap_or_default(), t[1].as_str().ok_or("a term without a value")?);
            let n = u32::from_str_radix(tag, 16).map_err(|_| "a term's tag is not hexadecimal")?;
            Ok((Tag((n >> 16) as u16, (n & 0xFFFF) as u16), value.to_owned()))
        })
        .collect()
}

pub(crate) async fn hold_job(ctx: &mut crate::jobs::JobCtx) -> Result<serde_json::Value, crate::jobs::JobError> {
    use crate::jobs::JobError;
    let params: serde_json::Value =
        serde_json::from_str(&ctx.job().params).map_err(|_| JobError::Failed("the job's parameters are not JSON".into()))?;
    let on = params["on"].as_bool().ok_or_else(|| JobError::Failed("the job does not say on or off".into()))?;
    let who = requester(&params).map_err(JobError::Failed)?;
    let filters = hold_filters(&terms(&params).map_err(JobError::Failed)?)?;
    let query = Query { level: Level::Instance, filters, limit: None, offset: 0 };
    let seen = Visibility { rejected: true, ..who.visibility().clone() };
    let archive = ctx.archive().clone();
    let mut after: i64 = ctx.progress.cursor.as_deref().and_then(|c| c.parse().ok()).unwrap_or(0);
    let mut changed_here = 0u64;
    loop {
        let page = archive.catalog().query_instances_after(&query, after, HOLD_PAGE, &seen).await;
        let page = page.map_err(|e| JobError::Failed(format!("reading the instances to hold: {e}")))?;
        let Some(last) = page.last() else { break };
        let mut changed: Vec<&InstanceRow> = Vec::new();
        for row in &page {
            match archive.hold_version(row, on).await.map_err(|e| e.to_string()) {
                Ok(()) => changed.push(row),
                Err(why) => ctx.fail(format!("{}/{}", row.blob.tier, row.blob.key), why),
            }
        }
        if !changed.is_empty() {
            // DICOM Instances Accessed, Update (PS3.15 A.5.3.3), in the requester's name.
            let what = format!("legal hold {} (job {})", if on { "placed" } else { "lifted" }, ctx.job().id);
            let event = crate::audit::event(&who, crate::EventId::InstancesAccessed, "U", &changed, what);
            archive.audited(&who, event).await.map_err(|e| JobError::Failed(format!("recording the audit event: {e}")))?;
        }
        changed_here += changed.len() as u64;
        ctx.progress.done += changed.len() as i64;
        after = last.pk;
        ctx.progress.cursor = Some(after.to_string());
        ctx.checkpoint().await?;
    }
    Ok(serde_json::json!({
        "on": on,
        "changed": ctx.progress.done,
        "changedByThisRun": changed_here,
        "failed": ctx.progress.failed,
        "ranBy": ctx.owner(),
    }))
}
