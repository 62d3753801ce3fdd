//! Expiry as the catalog records it: an instance whose retention has passed leaves the catalog
//! (every version, with its frames and metadata) in one transaction that writes a tombstone per
//! version (what it was, where its object is, why and when it went) and an `instance-expired`
//! change; the object itself is destroyed afterwards by the caller, by version id, and the
//! tombstone marked purged. A crash in between leaves a tombstone not yet purged, which the
//! next pass purges: never a catalog row without its object.
//!
//! The expiry names the version rows its decision saw: if another version arrived (or one was
//! expired) since, nothing changes and the caller decides again later.
//!
//! A tier move switches one version to its verified copy on another tier in one transaction
//! with a `moved` tombstone for the old object (destroyed afterwards, once no read can still be
//! using it and its store lets it go) and an `instance-moved` change.

use crate::db::{AnyRow, Pool, Tx, Value};
use crate::read::decode_instance;
use crate::sqlbuild::SqlBuilder;
use crate::translate::{instance_select, live, visible, Joined};
use crate::{BlobLocation, CatalogError, ChangeKind, InstanceRow, Visibility};

/// An instance to expire: every version the decision saw, by primary key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expiry {
    pub sop_uid: vna_dicom::uid::SopInstanceUid,
    pub version_pks: Vec<i64>,
    /// `expired`.
    pub reason: String,
    /// The rules that decided it, and the hash of the policy set they are from.
    pub rules: Vec<String>,
    pub policy_set: String,
    pub now_ms: i64,
    /// The audit event of the deletion, recorded in the same transaction.
    pub audit: Option<crate::AuditEvent>,
}

/// What an expiry did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpiryOutcome {
    /// The instance left the catalog: the tombstone of each version, its object to destroy.
    Expired(Vec<Tombstone>),
    /// Its versions are no longer those named: nothing changed (decide again).
    Changed,
    /// A legal hold is recorded on one of its versions: nothing changed.
    Held,
}

/// What remains of an expired instance version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tombstone {
    pub pk: i64,
    pub sop_uid: String,
    pub study_uid: String,
    pub series_uid: String,
    pub tenant: String,
    pub version: i64,
    pub sop_class_uid: String,
    pub blob: BlobLocation,
    pub reason: String,
    pub rules: Vec<String>,
    pub policy_set: String,
    pub rejected_code: Option<String>,
    pub at_ms: i64,
    /// When its stored object was destroyed; `None` while it waits for that.
    pub purged_at_ms: Option<i64>,
}

const COLUMNS: &str = "pk, sop_uid, study_uid, series_uid, tenant, version, sop_class_uid, tier, blob_key, blob_version_id, \
     size, sha256, reason, rules, policy_set, rejected_code, at_ms, purged_at_ms";

fn decode(row: &AnyRow) -> Result<Tombstone, CatalogError> {
    let mut c = row.cols();
    Ok(Tombstone {
        pk: c.int("tombstone pk")?,
        sop_uid: c.text("tombstone sop uid")?,
        study_uid: c.text("tombstone study uid")?,
        series_uid: c.text("tombstone series uid")?,
        tenant: c.text("tombstone tenant")?,
        version: c.int("tombstone version")?,
        sop_class_uid: c.text("tombstone sop class")?,
        blob: BlobLocation {
            tier: c.text("tombstone tier")?,
            key: c.text("tombstone blob key")?,
            version_id: c.opt_text("tombstone blob version")?,
            size: c.uint("tombstone size")?,
            sha256: c.text("tombstone sha256")?,
        },
        reason: c.text("tombstone reason")?,
        rules: c.text("tombstone rules")?.split_whitespace().map(str::to_owned).collect(),
        policy_set: c.text("tombstone policy set")?,
        rejected_code: c.opt_text("tombstone rejection")?,
        at_ms: c.int("tombstone time")?,
        purged_at_ms: c.opt_int("tombstone purge time")?,
    })
}

/// Removes the instance's versions and writes their tombstones; nothing changes when the
/// versions are no longer the ones the expiry names (`Changed`) or a legal hold is recorded on
/// one of them (`Held`).
pub(crate) async fn expire(tx: &mut Tx<'_>, e: &Expiry) -> Result<ExpiryOutcome, CatalogError> {
    // The versions' rows first, locked on PostgreSQL: a legal hold being recorded on one of
    // them either committed before (and is seen here) or waits, and then finds no row.
    let lock = if tx.dialect() == crate::db::Dialect::Postgres { " FOR UPDATE" } else { "" };
    let flags = tx
        .fetch_all("expire: holds", &format!("SELECT legal_hold FROM instance WHERE sop_uid = ?{lock}"), &[e.sop_uid.as_str().into()])
        .await?;
    for f in &flags {
        if f.cols().flag("instance legal hold")? {
            return Ok(ExpiryOutcome::Held);
        }
    }
    let sql = format!("{} WHERE i.sop_uid = ? ORDER BY i.version", instance_select());
    let rows: Vec<InstanceRow> = tx
        .fetch_all("expire: versions", &sql, &[e.sop_uid.as_str().into()])
        .await?
        .iter()
        .map(decode_instance)
        .collect::<Result<_, _>>()?;
    let mut seen: Vec<i64> = rows.iter().map(|r| r.pk).collect();
    let mut named = e.version_pks.clone();
    seen.sort_unstable();
    named.sort_unstable();
    if rows.is_empty() || seen != named {
        return Ok(ExpiryOutcome::Changed);
    }
    let mut stones = Vec::with_capacity(rows.len());
    for r in &rows {
        stones.push(tombstone(tx, r, &r.blob, &e.reason, &e.rules, &e.policy_set, e.now_ms).await?);
    }
    if let Some(a) = &e.audit {
        crate::audit::insert(tx, a).await?;
    }
    // Frames and metadata go with their rows (ON DELETE CASCADE).
    tx.execute("expire: delete versions", "DELETE FROM instance WHERE sop_uid = ?", &[e.sop_uid.as_str().into()]).await?;
    let last = rows.iter().find(|r| r.is_current).unwrap_or(&rows[rows.len() - 1]);
    tx.execute(
        "expire: append change",
        "INSERT INTO change_feed (kind, study_uid, series_uid, sop_uid, instance_pk, at_ms) VALUES (?, ?, ?, ?, ?, ?)",
        &[
            ChangeKind::InstanceExpired.as_str().into(),
            last.study.study_uid.as_str().into(),
            last.series.series_uid.as_str().into(),
            e.sop_uid.as_str().into(),
            last.pk.into(),
            e.now_ms.into(),
        ],
    )
    .await?;
    Ok(ExpiryOutcome::Expired(stones))
}

/// Records (`on`) or clears the legal hold flag of the instance version `pk`; false when there
/// is no such row (expired meanwhile).
pub(crate) async fn mark_legal_hold(tx: &mut Tx<'_>, pk: i64, on: bool) -> Result<bool, CatalogError> {
    let n = tx.execute("legal hold: mark", "UPDATE instance SET legal_hold = ? WHERE pk = ?", &[Value::Bool(on), pk.into()]).await?;
    Ok(n > 0)
}

/// Writes the tombstone of `blob` (the version `r`'s object, now or before a move).
async fn tombstone(
    tx: &mut Tx<'_>,
    r: &InstanceRow,
    b: &BlobLocation,
    reason: &str,
    rules: &[String],
    policy_set: &str,
    now_ms: i64,
) -> Result<Tombstone, CatalogError> {
    let binds: Vec<Value> = vec![
        r.instance.sop_uid.as_str().into(),
        r.study.study_uid.as_str().into(),
        r.series.series_uid.as_str().into(),
        r.tenant.as_str().into(),
        i64::from(r.version).into(),
        r.instance.sop_class_uid.as_str().into(),
        b.tier.as_str().into(),
        b.key.as_str().into(),
        b.version_id.clone().into(),
        crate::db::u64_value(b.size, "blob size")?,
        b.sha256.as_str().into(),
        reason.into(),
        rules.join(" ").into(),
        policy_set.into(),
        r.rejection.as_ref().map(|x| x.code.clone()).into(),
        now_ms.into(),
    ];
    let row = tx
        .fetch_one(
            "tombstone: insert",
            &format!(
                "INSERT INTO tombstone (sop_uid, study_uid, series_uid, tenant, version, sop_class_uid, tier, blob_key, \
                 blob_version_id, size, sha256, reason, rules, policy_set, rejected_code, at_ms) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING {COLUMNS}"
            ),
            &binds,
        )
        .await?;
    decode(&row)
}

/// A version's object copied to another tier: where it was, where it is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TierMove {
    /// The instance version (its primary key).
    pub pk: i64,
    pub from: BlobLocation,
    pub to: BlobLocation,
    pub rules: Vec<String>,
    pub policy_set: String,
    pub now_ms: i64,
    /// The audit event of the move, recorded in the same transaction.
    pub audit: Option<crate::AuditEvent>,
}

/// Points an instance version at its copy on another tier, and leaves a tombstone (`moved`) for
/// the old object so that it is destroyed afterwards (by the caller, or a later run if the
/// store still protects it) and an `instance-moved` change for a current version; `None`
/// (nothing changed) when the version is no longer where the move found it.
pub(crate) async fn move_version(tx: &mut Tx<'_>, m: &TierMove) -> Result<Option<Tombstone>, CatalogError> {
    let sql = format!("{} WHERE i.pk = ?", instance_select());
    let Some(row) = tx.fetch_optional("move: version", &sql, &[m.pk.into()]).await? else { return Ok(None) };
    let r = decode_instance(&row)?;
    if r.blob != m.from {
        return Ok(None);
    }
    if m.to.sha256 != m.from.sha256 || m.to.size != m.from.size {
        return Err(CatalogError::Corrupt { what: "a moved object differs from the original" });
    }
    tx.execute(
        "move: switch",
        "UPDATE instance SET tier = ?, blob_key = ?, blob_version_id = ? WHERE pk = ?",
        &[m.to.tier.as_str().into(), m.to.key.as_str().into(), m.to.version_id.clone().into(), m.pk.into()],
    )
    .await?;
    let stone = tombstone(tx, &r, &m.from, "moved", &m.rules, &m.policy_set, m.now_ms).await?;
    if let Some(a) = &m.audit {
        crate::audit::insert(tx, a).await?;
    }
    if r.is_current {
        tx.execute(
            "move: append change",
            "INSERT INTO change_feed (kind, study_uid, series_uid, sop_uid, instance_pk, at_ms) VALUES (?, ?, ?, ?, ?, ?)",
            &[
                ChangeKind::InstanceMoved.as_str().into(),
                r.study.study_uid.as_str().into(),
                r.series.series_uid.as_str().into(),
                r.instance.sop_uid.as_str().into(),
                m.pk.into(),
                m.now_ms.into(),
            ],
        )
        .await?;
    }
    Ok(Some(stone))
}

/// Marks a tombstone's object destroyed; false when it already was (or is unknown).
pub(crate) async fn purged(tx: &mut Tx<'_>, pk: i64, now_ms: i64) -> Result<bool, CatalogError> {
    let n = tx
        .execute(
            "expire: mark purged",
            "UPDATE tombstone SET purged_at_ms = ? WHERE pk = ? AND purged_at_ms IS NULL",
            &[now_ms.into(), pk.into()],
        )
        .await?;
    Ok(n == 1)
}

/// Tombstones whose object is not destroyed yet, after `after_pk`, oldest first.
pub(crate) async fn unpurged(pool: &Pool, after_pk: i64, limit: u32) -> Result<Vec<Tombstone>, CatalogError> {
    let mut b = SqlBuilder::new(pool.dialect());
    b.push(&format!("SELECT {COLUMNS} FROM tombstone WHERE purged_at_ms IS NULL AND pk > ")).bind(after_pk).push(" ORDER BY pk");
    b.limit_offset(Some(limit), 0);
    pool.fetch_built("unpurged tombstones", &b.sql, &b.binds).await?.iter().map(decode).collect()
}

/// The tombstones of one SOP Instance UID in the tenants `v` sees, oldest first.
pub(crate) async fn tombstones(pool: &Pool, sop: &str, v: &Visibility) -> Result<Vec<Tombstone>, CatalogError> {
    let mut b = SqlBuilder::new(pool.dialect());
    b.push(&format!("SELECT {COLUMNS} FROM tombstone WHERE sop_uid = ")).bind(sop);
    if let Some(grants) = &v.tenants {
        crate::translate::within_tenants(&mut b, "tenant", grants);
    }
    b.push(" ORDER BY pk");
    pool.fetch_built("tombstones", &b.sql, &b.binds).await?.iter().map(decode).collect()
}

/// Current instances (as `v` sees them) with a primary key above `after_pk`, in key order: a
/// keyset page that stays correct while instances are added or removed.
pub(crate) async fn instances_after(pool: &Pool, after_pk: i64, limit: u32, v: &Visibility) -> Result<Vec<InstanceRow>, CatalogError> {
    let mut b = SqlBuilder::new(pool.dialect());
    b.push(&instance_select()).push(" WHERE i.pk > ").bind(after_pk).push(" AND ").push(&live("i", v));
    visible(&mut b, v, Joined::Instance);
    b.push(" ORDER BY i.pk");
    b.limit_offset(Some(limit), 0);
    pool.fetch_built("instances after", &b.sql, &b.binds).await?.iter().map(decode_instance).collect()
}
