//! IHE IOCM rejection notes in the catalog: what a note names is recorded (`rejection`, also
//! for instances not received yet) and the versions already here are hidden, in the note's own
//! registration transaction; an instance arriving later is hidden on arrival; administrators
//! list what was rejected.

use crate::db::{Pool, Tx};
use crate::read::decode_instance_cols;
use crate::sqlbuild::SqlBuilder;
use crate::translate::{self, INSTANCE_COLS, PATIENT_COLS, SERIES_COLS, STUDY_COLS};
use crate::{CatalogError, ChangeKind, InstanceRow, NewInstance, Rejection, RejectionNote, RejectionRecord, Visibility};

/// What the catalog holds for one SOP Instance UID about to be registered: its current
/// version (if any), how many versions it has, and the rejection that names it in its study
/// and tenant (remembered before it arrived).
pub(crate) type Current = (Option<InstanceRow>, i64, Option<Rejection>);

/// From a row `q` of a SOP Instance UID (`q.sop`), its study (`q.study`) and tenant
/// (`q.tenant`): its number of versions and the rejection remembered for it
/// ([`decode_earlier`] reads these three columns), then [`CURRENT_COLS`] adds the current
/// version's primary key.
const EARLIER_COLS: &str = "(SELECT COALESCE(MAX(version), 0) FROM instance WHERE sop_uid = q.sop), r.code, r.at_ms";
const EARLIER_JOIN: &str = "LEFT JOIN rejection r ON r.sop_uid = q.sop AND r.study_uid = q.study AND r.tenant = q.tenant";
const CURRENT_COLS: &str = "i.pk";
const CURRENT_JOINS: &str = "LEFT JOIN instance i ON i.sop_uid = q.sop AND i.is_current \
     LEFT JOIN series s ON s.pk = i.series_pk LEFT JOIN study st ON st.pk = s.study_pk \
     LEFT JOIN patient p ON p.pk = st.patient_pk";

/// The current version of `new`'s SOP Instance UID, its number of versions and an earlier
/// rejection, in one statement: a round trip, on PostgreSQL, where there were two.
pub(crate) async fn current_and_earlier(tx: &mut Tx<'_>, new: &NewInstance) -> Result<Current, CatalogError> {
    let sql = format!(
        "SELECT {EARLIER_COLS}, {CURRENT_COLS}, {PATIENT_COLS}, {STUDY_COLS}, {SERIES_COLS}, {INSTANCE_COLS}, st.tenant \
         FROM (SELECT ? AS sop, ? AS study, ? AS tenant) AS q {EARLIER_JOIN} {CURRENT_JOINS}"
    );
    let binds = [new.instance.sop_uid.as_str().into(), new.study.study_uid.as_str().into(), new.tenant.as_str().into()];
    let row = tx.fetch_one("register: current version, versions and earlier rejection", &sql, &binds).await?;
    let mut c = row.cols();
    let (version, rejection) = decode_earlier(&mut c)?;
    let current = match c.opt_int("instance pk")? {
        Some(_) => Some(decode_instance_cols(row.cols_from(3))?),
        None => None,
    };
    Ok((current, version, rejection))
}

/// PostgreSQL, at the start of a batch (after the change-feed lock): the change feed's head and,
/// for each of `news` whose SOP Instance UID has no current version (the usual case), what
/// [`current_and_earlier`] would answer; `None` for one that has (a re-send, a new version):
/// its registration reads the version's row itself. One statement, one round trip, where there
/// were one per registration and one more; it joins no patient, study or series, so planning
/// it (at each execution) stays cheap. The list is padded to a power of two with rows that
/// match nothing, so that a handful of statements serve every batch size.
pub(crate) async fn head_and_current(tx: &mut Tx<'_>, news: &[&NewInstance]) -> Result<(i64, Vec<Option<Current>>), CatalogError> {
    if news.is_empty() {
        let row = tx.fetch_one("register: change feed head", "SELECT COALESCE(MAX(seq), 0) FROM change_feed", &[]).await?;
        return Ok((row.cols().int("change feed head")?, Vec::new()));
    }
    let rows = news.len().next_power_of_two();
    let mut values = String::new();
    let mut binds = Vec::with_capacity(rows * 3);
    for n in 0..rows {
        values.push_str(if n == 0 { "" } else { ", " });
        values.push_str(&format!("(?, ?, ?, {n})"));
        match news.get(n) {
            Some(new) => {
                binds.extend([new.instance.sop_uid.as_str().into(), new.study.study_uid.as_str().into(), new.tenant.as_str().into()])
            }
            None => binds.extend(["".into(), "".into(), "".into()]),
        }
    }
    let sql = format!(
        "SELECT (SELECT COALESCE(MAX(seq), 0) FROM change_feed), {EARLIER_COLS}, \
         EXISTS (SELECT 1 FROM instance i WHERE i.sop_uid = q.sop AND i.is_current) \
         FROM (VALUES {values}) AS q (sop, study, tenant, ord) {EARLIER_JOIN} ORDER BY q.ord"
    );
    let found = tx.fetch_all("register: change feed head, versions and earlier rejections", &sql, &binds).await?;
    let head = found.first().ok_or(CatalogError::Corrupt { what: "change feed head" })?.cols().int("change feed head")?;
    let mut current = Vec::with_capacity(news.len());
    for row in found.iter().take(news.len()) {
        let mut c = row.cols_from(1);
        let (version, rejection) = decode_earlier(&mut c)?;
        current.push(if c.flag("current version exists")? { None } else { Some((None, version, rejection)) });
    }
    if current.len() != news.len() {
        return Err(CatalogError::Corrupt { what: "current versions of a batch" });
    }
    Ok((head, current))
}

/// Reads the columns of [`EARLIER_COLS`]: the number of versions and a remembered rejection.
fn decode_earlier(c: &mut crate::db::Cols<'_>) -> Result<(i64, Option<Rejection>), CatalogError> {
    let version = c.int("instance version")?;
    let rejection = match (c.opt_text("rejection code")?, c.opt_int("rejection time")?) {
        (Some(code), Some(at_ms)) => Some(Rejection { code, at_ms }),
        _ => None,
    };
    Ok((version, rejection))
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
