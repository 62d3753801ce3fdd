//! The register transaction: duplicate/version policy, upserts, instance version, frames,
//! metadata and change row, all or nothing (run by the writer, `writer`, in its batches).

use std::time::{SystemTime, UNIX_EPOCH};

use crate::db::{u64_value, Dialect, Tx, Value};
use crate::{CatalogError, ChangeKind, FrameIndex, InstanceRow, NewInstance, RegisterOutcome, VersionPolicy};

pub(crate) fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)).unwrap_or(0)
}

/// The patient, study and series rows a registration wrote, and their values: a later
/// registration with the very same values (no other writer in between: see [`Recent`]), the
/// usual case for the images of one series sent together, reuses them instead of upserting
/// again.
pub(crate) struct Upserted {
    patient: crate::PatientAttrs,
    study: crate::StudyAttrs,
    series: crate::SeriesAttrs,
    tenant: String,
    pks: (i64, i64, i64),
    /// Whether the registration upserted these rows (or reused them as they were).
    wrote: bool,
}

/// The rows of the last few registrations' patients, studies and series, most recent last:
/// associations storing different series at once (each its own series, one instance after
/// another) reuse theirs instead of upserting again. An upsert rewrites its patient, study and
/// series rows; an entry naming one of them stays only if its values are the very ones
/// written (and its study and series still hang under the same patient and study), so what
/// remains still holds exactly the values it names. Entries are not dropped merely for sharing
/// a patient or study: two series of one study arriving together (a CT's axial and coronal
/// series sent over two associations) would otherwise evict each other at every instance and
/// upsert every time.
#[derive(Default)]
pub(crate) struct Recent(Vec<Upserted>);

/// Entries kept in [`Recent`].
const RECENT: usize = 8;

impl Recent {
    fn find(&self, new: &NewInstance) -> Option<(i64, i64, i64)> {
        self.0
            .iter()
            .rev()
            .find(|l| l.patient == new.patient && l.study == new.study && l.series == new.series && l.tenant == new.tenant)
            .map(|l| l.pks)
    }

    /// Records what a registration wrote (or reused).
    pub(crate) fn record(&mut self, u: Upserted) {
        if u.wrote {
            self.0.retain(|e| still_holds(e, &u));
        }
        self.0.retain(|e| e.pks != u.pks);
        if self.0.len() == RECENT {
            self.0.remove(0);
        }
        self.0.push(u);
    }
}

/// Whether entry `e` still names rows as they are after the upserts of `u`: a row `u` rewrote
/// holds `u`'s values, and its study or series hangs under `u`'s patient or study.
fn still_holds(e: &Upserted, u: &Upserted) -> bool {
    let (patient, study, series) = u.pks;
    (e.pks.0 != patient || e.patient == u.patient)
        && (e.pks.1 != study || (e.study == u.study && e.pks.0 == patient && e.tenant == u.tenant))
        && (e.pks.2 != series || (e.series == u.series && e.pks.1 == study))
}

/// Returns the outcome, the rows it upserted when there is something to commit, and whether
/// the store's audit event (`new.audit`) was written with it (PostgreSQL: in the instance's
/// statement). `known`: what the catalog holds for the SOP Instance UID, read earlier in this
/// transaction with nothing written to it since (`rejection::head_and_current`); `None` reads
/// it here.
pub(crate) async fn register_in(
    tx: &mut Tx<'_>,
    new: &NewInstance,
    policy: VersionPolicy,
    recent: &Recent,
    known: Option<crate::rejection::Current>,
) -> Result<(RegisterOutcome, Option<Upserted>, bool), CatalogError> {
    let sop = new.instance.sop_uid.as_str();
    // The current version, the number of versions and a rejection note that came first (it
    // hides this instance on arrival), in one statement.
    let (existing, recorded_versions, rejection) = match known {
        Some(known) => known,
        None => crate::rejection::current_and_earlier(tx, new).await?,
    };
    if let Some(existing) = &existing {
        if existing.blob.sha256 == new.blob.sha256 {
            return Ok((RegisterOutcome::Duplicate { existing: existing.clone() }, None, false));
        }
        if policy == VersionPolicy::Reject {
            return Ok((RegisterOutcome::Conflict { existing: existing.clone() }, None, false));
        }
    }
    let becomes_current = existing.is_none() || policy == VersionPolicy::Replace;

    let ((patient_pk, study_pk, series_pk), wrote) = match recent.find(new) {
        Some(pks) => (pks, false),
        None => {
            // A study keeps the tenant of its first instance. Batches are serial (the change-feed
            // lock, `BEGIN IMMEDIATE`), so no other writer can create the study in between.
            let recorded = tx
                .fetch_optional(
                    "register: study tenant",
                    "SELECT tenant FROM study WHERE study_uid = ?",
                    &[new.study.study_uid.as_str().into()],
                )
                .await?;
            if let Some(row) = recorded {
                if row.cols().text("study tenant")? != new.tenant {
                    return Ok((RegisterOutcome::TenantConflict, None, false));
                }
            }
            let patient_pk = upsert_patient(tx, new).await?;
            let study_pk = upsert_study(tx, new, patient_pk).await?;
            ((patient_pk, study_pk, upsert_series(tx, new, study_pk).await?), true)
        }
    };

    let version = i32::try_from(recorded_versions + 1).map_err(|_| CatalogError::Corrupt { what: "instance version" })?;

    if becomes_current && existing.is_some() {
        tx.execute(
            "register: retire current version",
            "UPDATE instance SET is_current = FALSE WHERE sop_uid = ? AND is_current",
            &[sop.into()],
        )
        .await?;
    }

    let stored_at_ms = now_ms();
    let (kind, first_offset, frame_length, frame_count) = match &new.frames {
        FrameIndex::None => ("none", 0, 0, 0u64),
        FrameIndex::Native { first_offset, frame_length, count } => ("native", *first_offset, *frame_length, u64::from(*count)),
        FrameIndex::Encapsulated { frames } => ("encapsulated", 0, 0, frames.len() as u64),
    };
    let i = &new.instance;
    let b = &new.blob;
    let instance_binds: Vec<crate::db::Value> = vec![
        series_pk.into(),
        sop.into(),
        i64::from(version).into(),
        becomes_current.into(),
        i.sop_class_uid.as_str().into(),
        i.instance_number.into(),
        i.rows.into(),
        i.columns.into(),
        i.bits_allocated.into(),
        i.number_of_frames.into(),
        i.transfer_syntax.as_str().into(),
        b.tier.as_str().into(),
        b.key.as_str().into(),
        b.version_id.clone().into(),
        u64_value(b.size, "blob size")?,
        b.sha256.as_str().into(),
        kind.into(),
        u64_value(first_offset, "frame offset")?,
        u64_value(frame_length, "frame length")?,
        u64_value(frame_count, "frame count")?,
        stored_at_ms.into(),
        i.multi_frame.concatenation_uid.clone().into(),
        i.multi_frame.concatenation_source.clone().into(),
        i.multi_frame.in_concatenation_number.into(),
        i.multi_frame.dimension_organization_type.clone().into(),
        i.multi_frame.total_pixel_matrix_columns.into(),
        i.multi_frame.total_pixel_matrix_rows.into(),
        rejection.as_ref().map(|r| r.code.clone()).into(),
        rejection.as_ref().map(|r| r.at_ms).into(),
    ];
    let change_kind = match (&existing, becomes_current) {
        (None, _) => ChangeKind::InstanceStored,
        (Some(_), true) => ChangeKind::InstanceReplaced,
        (Some(_), false) => ChangeKind::PriorVersionRecorded,
    };
    let mut audited = false;
    let (pk, change_seq) = if tx.dialect() == Dialect::Postgres {
        // The instance, its metadata, its change-feed row, the live counts of its series and
        // study when it counts (current and not rejected: migration 0016; on SQLite triggers
        // keep them) and the store's audit event in one statement: one round trip where there
        // were five, and no trigger.
        let mut binds = instance_binds;
        binds.extend([
            new.metadata.as_str().into(),
            change_kind.as_str().into(),
            new.study.study_uid.as_str().into(),
            new.series.series_uid.as_str().into(),
            sop.into(),
            stored_at_ms.into(),
            study_pk.into(),
        ]);
        let audit = match new.audit.as_ref().and_then(crate::audit::cte) {
            Some((cte, audit_binds)) => {
                binds.extend(audit_binds);
                audited = true;
                format!(", {cte}")
            }
            None => String::new(),
        };
        let sql = format!(
            "WITH i AS ({INSERT_INSTANCE} RETURNING pk, series_pk, sop_class_uid, is_current AND rejected_code IS NULL AS live), \
             m AS (INSERT INTO instance_metadata (instance_pk, json) SELECT pk, ? FROM i), \
             c AS (INSERT INTO change_feed (kind, study_uid, series_uid, sop_uid, instance_pk, at_ms) \
                   SELECT ?, ?, ?, ?, pk, ? FROM i RETURNING seq), \
             sc AS (INSERT INTO series_count (series_pk, sop_class_uid, live) SELECT series_pk, sop_class_uid, 1 FROM i \
                    WHERE live ON CONFLICT (series_pk, sop_class_uid) DO UPDATE SET live = series_count.live + 1), \
             sl AS (UPDATE study SET live_instances = live_instances + 1 WHERE pk = ? AND (SELECT live FROM i)){audit} \
             SELECT i.pk, c.seq FROM i, c"
        );
        let row = tx.fetch_one("register: insert instance, metadata and change", &sql, &binds).await?;
        let mut c = row.cols();
        (c.int("instance pk")?, c.int("change seq")?)
    } else {
        let pk_row = tx.fetch_one("register: insert instance", &format!("{INSERT_INSTANCE} RETURNING pk"), &instance_binds).await?;
        let pk = pk_row.cols().int("instance pk")?;
        tx.execute(
            "register: insert metadata",
            "INSERT INTO instance_metadata (instance_pk, json) VALUES (?, ?)",
            &[pk.into(), new.metadata.as_str().into()],
        )
        .await?;
        (pk, append_change(tx, new, pk, &change_kind, stored_at_ms).await?)
    };
    if let FrameIndex::Encapsulated { frames } = &new.frames {
        insert_frame_pieces(tx, pk, frames).await?;
    }
    if let Some(note) = &new.rejects {
        crate::rejection::apply(tx, new, note, stored_at_ms).await?;
    }

    let instance = InstanceRow {
        pk,
        patient: new.patient.clone(),
        study: new.study.clone(),
        series: new.series.clone(),
        instance: new.instance.clone(),
        blob: new.blob.clone(),
        version,
        is_current: becomes_current,
        stored_at_ms,
        tenant: new.tenant.clone(),
        rejection,
        last_access_ms: None,
    };
    let outcome = if becomes_current {
        RegisterOutcome::Stored { instance, change_seq, replaced_previous: existing.is_some() }
    } else {
        RegisterOutcome::StoredAsPriorVersion { instance, change_seq }
    };
    let upserted = Upserted {
        patient: new.patient.clone(),
        study: new.study.clone(),
        series: new.series.clone(),
        tenant: new.tenant.clone(),
        pks: (patient_pk, study_pk, series_pk),
        wrote,
    };
    Ok((outcome, Some(upserted), audited))
}

async fn upsert_patient(tx: &mut Tx<'_>, new: &NewInstance) -> Result<i64, CatalogError> {
    let p = &new.patient;
    let orphan_study = if p.patient_id.is_empty() { new.study.study_uid.as_str() } else { "" };
    let row = tx
        .fetch_one(
            "register: upsert patient",
            "INSERT INTO patient (patient_id, issuer, orphan_study, patient_name, birth_date, sex) \
             VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (patient_id, issuer, orphan_study) DO UPDATE SET \
             patient_name = excluded.patient_name, birth_date = excluded.birth_date, sex = excluded.sex \
             RETURNING pk",
            &[
                p.patient_id.as_str().into(),
                p.issuer_of_patient_id.as_str().into(),
                orphan_study.into(),
                p.patient_name.as_str().into(),
                p.patient_birth_date.as_str().into(),
                p.patient_sex.as_str().into(),
            ],
        )
        .await?;
    let pk = row.cols().int("patient pk")?;
    replace_tokens(tx, "patient_name_token", "patient_pk", pk, &p.patient_name).await?;
    Ok(pk)
}

async fn upsert_study(tx: &mut Tx<'_>, new: &NewInstance, patient_pk: i64) -> Result<i64, CatalogError> {
    let s = &new.study;
    let row = tx
        .fetch_one(
            "register: upsert study",
            "INSERT INTO study (study_uid, patient_pk, study_date, study_time, accession_number, study_id, \
             referring_physician_name, study_description, tenant) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (study_uid) DO UPDATE SET patient_pk = excluded.patient_pk, \
             study_date = excluded.study_date, study_time = excluded.study_time, \
             accession_number = excluded.accession_number, study_id = excluded.study_id, \
             referring_physician_name = excluded.referring_physician_name, \
             study_description = excluded.study_description RETURNING pk",
            &[
                s.study_uid.as_str().into(),
                patient_pk.into(),
                s.study_date.as_str().into(),
                s.study_time.as_str().into(),
                s.accession_number.as_str().into(),
                s.study_id.as_str().into(),
                s.referring_physician_name.as_str().into(),
                s.study_description.as_str().into(),
                new.tenant.as_str().into(),
            ],
        )
        .await?;
    let pk = row.cols().int("study pk")?;
    replace_tokens(tx, "referring_name_token", "study_pk", pk, &s.referring_physician_name).await?;
    Ok(pk)
}

async fn upsert_series(tx: &mut Tx<'_>, new: &NewInstance, study_pk: i64) -> Result<i64, CatalogError> {
    let s = &new.series;
    let row = tx
        .fetch_one(
            "register: upsert series",
            "INSERT INTO series (series_uid, study_pk, modality, series_number, series_description, \
             body_part_examined, pps_start_date, pps_start_time, institution_name, department_name) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (series_uid) DO UPDATE SET study_pk = excluded.study_pk, \
             modality = excluded.modality, series_number = excluded.series_number, \
             series_description = excluded.series_description, \
             body_part_examined = excluded.body_part_examined, \
             pps_start_date = excluded.pps_start_date, pps_start_time = excluded.pps_start_time, \
             institution_name = excluded.institution_name, department_name = excluded.department_name \
             RETURNING pk",
            &[
                s.series_uid.as_str().into(),
                study_pk.into(),
                s.modality.as_str().into(),
                s.series_number.into(),
                s.series_description.as_str().into(),
                s.body_part_examined.as_str().into(),
                s.performed_procedure_step_start_date.as_str().into(),
                s.performed_procedure_step_start_time.as_str().into(),
                s.institution_name.as_str().into(),
                s.department_name.as_str().into(),
            ],
        )
        .await?;
    row.cols().int("series pk")
}

/// Rewrites the fuzzy-match tokens of one PN value. `table`/`owner` are our own identifiers.
async fn replace_tokens(tx: &mut Tx<'_>, table: &'static str, owner: &'static str, pk: i64, name: &str) -> Result<(), CatalogError> {
    let tokens = vna_dicom::pn::fuzzy_tokens(name);
    tx.execute("register: delete name tokens", &format!("DELETE FROM {table} WHERE {owner} = ?"), &[pk.into()]).await?;
    if tokens.is_empty() {
        return Ok(());
    }
    let mut sql = format!("INSERT INTO {table} (token, {owner}) VALUES ");
    let mut binds = Vec::with_capacity(tokens.len() * 2);
    for (n, t) in tokens.into_iter().enumerate() {
        sql.push_str(if n == 0 { "(?, ?)" } else { ", (?, ?)" });
        binds.push(Value::Text(t));
        binds.push(Value::Int(pk));
    }
    tx.execute("register: insert name tokens", &sql, &binds).await?;
    Ok(())
}

async fn insert_frame_pieces(tx: &mut Tx<'_>, pk: i64, frames: &[Vec<crate::ByteRange>]) -> Result<(), CatalogError> {
    // Multi-row inserts in chunks: a WSI can have tens of thousands of frames, and both
    // backends cap the number of bind parameters per statement.
    const ROWS_PER_STATEMENT: usize = 500;
    let mut rows: Vec<[Value; 5]> = Vec::new();
    for (f, pieces) in frames.iter().enumerate() {
        for (p, r) in pieces.iter().enumerate() {
            rows.push([
                Value::Int(pk),
                Value::Int(f as i64 + 1),
                Value::Int(p as i64),
                u64_value(r.offset, "frame piece offset")?,
                u64_value(r.length, "frame piece length")?,
            ]);
        }
    }
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let mut sql = String::from("INSERT INTO frame_piece (instance_pk, frame_number, piece_index, byte_offset, byte_length) VALUES ");
        let mut binds = Vec::with_capacity(chunk.len() * 5);
        for (n, row) in chunk.iter().enumerate() {
            sql.push_str(if n == 0 { "(?, ?, ?, ?, ?)" } else { ", (?, ?, ?, ?, ?)" });
            binds.extend(row.iter().cloned());
        }
        tx.execute("register: insert frame pieces", &sql, &binds).await?;
    }
    Ok(())
}

/// The insert of an instance version (29 binds, in the order `register_in` gives them).
const INSERT_INSTANCE: &str = "INSERT INTO instance (series_pk, sop_uid, version, is_current, sop_class_uid, instance_number, \
     n_rows, n_columns, bits_allocated, number_of_frames, transfer_syntax, tier, blob_key, \
     blob_version_id, size, sha256, frame_kind, frame_first_offset, frame_length, frame_count, stored_at_ms, \
     concatenation_uid, concatenation_source, in_concatenation_number, dimension_organization_type, \
     total_pixel_matrix_columns, total_pixel_matrix_rows, rejected_code, rejected_at_ms) \
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

async fn append_change(tx: &mut Tx<'_>, new: &NewInstance, pk: i64, kind: &ChangeKind, at_ms: i64) -> Result<i64, CatalogError> {
    let row = tx
        .fetch_one(
            "register: append change",
            "INSERT INTO change_feed (kind, study_uid, series_uid, sop_uid, instance_pk, at_ms) \
             VALUES (?, ?, ?, ?, ?, ?) RETURNING seq",
            &[
                kind.as_str().into(),
                new.study.study_uid.as_str().into(),
                new.series.series_uid.as_str().into(),
                new.instance.sop_uid.as_str().into(),
                pk.into(),
                at_ms.into(),
            ],
        )
        .await?;
    row.cols().int("change seq")
}
