//! IHE IOCM rejection notes in the catalog: what a note names is recorded (`rejection`, also
//! for instances not received yet) and the versions already here are hidden, in the note's own
//! registration transaction; an instance arriving later is hidden on arrival; administrators
//! list what was rejected.

use crate::db::{Pool, Tx};
use crate::read::decode_instance_cols;
use crate::sqlbuild::SqlBuilder;
use crate::translate::{self, INSTANCE_COLS, PATIENT_COLS, SERIES_COLS, STUDY_COLS};
use crate::{CatalogError, ChangeKind, InstanceRow, NewInstance, Rejection, RejectionNote, RejectionRecord, Visibility};

/// The current version of `new`'s SOP Instance UID (if any), how many versions it has, and
/// the rejection that names it in its study and tenant (remembered before it arrived), in one
/// statement: a round trip, on PostgreSQL, where there were two.
pub(crate) async fn current_and_earlier(
    tx: &mut Tx<'_>,
    new: &NewInstance,
) -> Result<(Option<InstanceRow>, i64, Option<Rejection>), CatalogError> {
    let sop = new.instance.sop_uid.as_str();
    let sql = format!(
        "SELECT (SELECT COALESCE(MAX(version), 0) FROM instance WHERE sop_uid = ?), r.code, r.at_ms, \
         i.pk, {PATIENT_COLS}, {STUDY_COLS}, {SERIES_COLS}, {INSTANCE_COLS}, st.tenant \
         FROM (SELECT 1 AS one) AS one \
         LEFT JOIN rejection r ON r.sop_uid = ? AND r.study_uid = ? AND r.tenant = ? \
         LEFT JOIN instance i ON i.sop_uid = ? AND i.is_current \
         LEFT JOIN series s ON s.pk = i.series_pk LEFT JOIN study st ON st.pk = s.study_pk \
         LEFT JOIN patient p ON p.pk = st.patient_pk"
    );
    let binds = [sop.into(), sop.into(), new.study.study_uid.as_str().into(), new.tenant.as_str().into(), sop.into()];
    let row = tx.fetch_one("register: current version, versions and earlier rejection", &sql, &binds).await?;
    let mut c = row.cols();
    let version = c.int("instance version")?;
    let rejection = match (c.opt_text("rejection code")?, c.opt_int("rejection time")?) {
        (Some(code), Some(at_ms)) => Some(Rejection { code, at_ms }),
        _ => None,
    };
    let current = match c.opt_int("instance pk")? {
        Some(_) => Some(decode_instance_cols(row.cols_from(3))?),
        None => None,
    };
    Ok((current, version, rejection))
}

/// Records what a rejection note rejects and hides the instances already here: every version
/// of each named SOP Instance UID in the named study of the note's tenant, each hidden current
/// version announced on the change feed. The first note to name a UID is the one remembered.
pub(crate) async fn apply(tx: &mut Tx<'_>, note_instance: &NewInstance, note: &RejectionNote, at_ms: i64) -> Result<(), CatalogError> {
    let note_sop = note_instance.instance.sop_uid.as_str();
    let tenant = note_instance.tenant.as_str();
    for r in note.references.iter().filter(|r| r.sop_uid.as_str() != note_sop) {
        let (sop, study, series) = (r.sop_uid.as_str(), r.study_uid.as_str(), r.series_uid.as_str());
        let inserted = tx
            .execute(
                "reject: remember",
                "INSERT INTO rejection (sop_uid, study_uid, series_uid, tenant, code, note_sop_uid, at_ms) \
                 VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (sop_uid, tenant) DO NOTHING",
                &[sop.into(), study.into(), series.into(), tenant.into(), note.code.as_str().into(), note_sop.into(), at_ms.into()],
            )
            .await?;
        if inserted == 0 {
            continue;
        }
        let hidden = tx
            .fetch_all(
                "reject: hide",
                "UPDATE instance SET rejected_code = ?, rejected_at_ms = ? WHERE sop_uid = ? AND rejected_code IS NULL \
                 AND series_pk IN (SELECT s.pk FROM series s JOIN study st ON st.pk = s.study_pk \
                 WHERE st.study_uid = ? AND st.tenant = ?) RETURNING pk, is_current, series_pk",
                &[note.code.as_str().into(), at_ms.into(), sop.into(), study.into(), tenant.into()],
            )
            .await?;
        for row in hidden {
            let mut c = row.cols();
            let (pk, current, series_pk) = (c.int("instance pk")?, c.flag("is current")?, c.int("series pk")?);
            if !current {
                continue;
            }
            // The series the instance is really in (the note may name another).
            let series_row =
                tx.fetch_one("reject: series of instance", "SELECT series_uid FROM series WHERE pk = ?", &[series_pk.into()]).await?;
            let series_uid = series_row.cols().text("series uid")?;
            tx.execute(
                "reject: append change",
                "INSERT INTO change_feed (kind, study_uid, series_uid, sop_uid, instance_pk, at_ms) VALUES (?, ?, ?, ?, ?, ?)",
                &[ChangeKind::InstanceRejected.as_str().into(), study.into(), series_uid.into(), sop.into(), pk.into(), at_ms.into()],
            )
            .await?;
        }
    }
    Ok(())
}

/// Rejected SOP Instance UIDs in the tenants `v` sees, oldest rejection first, with whether the
/// instance has arrived.
pub(crate) async fn rejections(pool: &Pool, v: &Visibility, limit: u32, offset: u32) -> Result<Vec<RejectionRecord>, CatalogError> {
    let mut b = SqlBuilder::new(pool.dialect());
    b.push(
        "SELECT r.sop_uid, r.study_uid, r.series_uid, r.tenant, r.code, r.note_sop_uid, r.at_ms, \
         EXISTS (SELECT 1 FROM instance i WHERE i.sop_uid = r.sop_uid AND i.rejected_code IS NOT NULL) \
         FROM rejection r WHERE 1 = 1",
    );
    if let Some(grants) = &v.tenants {
        translate::within_tenants(&mut b, "r.tenant", grants);
    }
    if let Some(only) = &v.only {
        b.push(" AND r.study_uid = ").bind(only.study.as_str());
    }
    b.push(" ORDER BY r.at_ms, r.sop_uid, r.tenant");
    b.limit_offset(Some(limit), offset);
    let rows = pool.fetch_built("rejections", &b.sql, &b.binds).await?;
    rows.iter()
        .map(|row| {
            let mut c = row.cols();
            Ok(RejectionRecord {
                sop_uid: c.text("rejected sop uid")?,
                study_uid: c.text("rejected study uid")?,
                series_uid: c.text("rejected series uid")?,
                tenant: c.text("rejection tenant")?,
                code: c.text("rejection code")?,
                note_sop_uid: c.text("rejection note uid")?,
                at_ms: c.int("rejection time")?,
                received: c.flag("rejected instance received")?,
            })
        })
        .collect()
}
