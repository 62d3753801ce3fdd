//! Read side of the catalog, shared by both backends: row decoding, queries, frames, metadata
//! and the change feed.

use std::collections::{BTreeSet, HashMap};

use vna_dicom::uid::{SeriesUid, SopClassUid, SopInstanceUid, StudyUid};

use crate::db::{AnyRow, Cols, Dialect, Pool, Value};
use crate::sqlbuild::SqlBuilder;
use crate::translate::{self, instance_select, live, visible, Joined};
use crate::{
    BlobLocation, ByteRange, CatalogError, Change, ChangeKind, InstanceAttrs, InstanceRow, MultiFrameAttrs, PatientAttrs, PatientRow,
    Query, Rejection, Scope, SeriesAttrs, SeriesRow, StudyAttrs, StudyRow, Visibility,
};

/// Bind-parameter budget per statement for pk lists (well under both backends' limits).
const PKS_PER_STATEMENT: usize = 500;

fn uid<T>(s: String, parse: fn(&str) -> Result<T, vna_dicom::uid::UidError>, what: &'static str) -> Result<T, CatalogError> {
    parse(&s).map_err(|_| CatalogError::Corrupt { what })
}

fn patient(c: &mut Cols<'_>) -> Result<PatientAttrs, CatalogError> {
    Ok(PatientAttrs {
        patient_id: c.text("patient id")?,
        issuer_of_patient_id: c.text("issuer of patient id")?,
        patient_name: c.text("patient name")?,
        patient_birth_date: c.text("patient birth date")?,
        patient_sex: c.text("patient sex")?,
    })
}

fn study(c: &mut Cols<'_>) -> Result<StudyAttrs, CatalogError> {
    Ok(StudyAttrs {
        study_uid: uid(c.text("study uid")?, StudyUid::new, "study uid")?,
        study_date: c.text("study date")?,
        study_time: c.text("study time")?,
        accession_number: c.text("accession number")?,
        study_id: c.text("study id")?,
        referring_physician_name: c.text("referring physician name")?,
        study_description: c.text("study description")?,
    })
}

fn series(c: &mut Cols<'_>) -> Result<SeriesAttrs, CatalogError> {
    Ok(SeriesAttrs {
        series_uid: uid(c.text("series uid")?, SeriesUid::new, "series uid")?,
        modality: c.text("modality")?,
        series_number: c.opt_int("series number")?,
        series_description: c.text("series description")?,
        body_part_examined: c.text("body part examined")?,
        performed_procedure_step_start_date: c.text("pps start date")?,
        performed_procedure_step_start_time: c.text("pps start time")?,
        institution_name: c.text("institution name")?,
        department_name: c.text("department name")?,
    })
}

/// Decodes a row selected by [`instance_select`].
pub(crate) fn decode_instance(row: &AnyRow) -> Result<InstanceRow, CatalogError> {
    decode_instance_cols(row.cols())
}

pub(crate) fn decode_instance_cols(mut c: crate::db::Cols<'_>) -> Result<InstanceRow, CatalogError> {
    let pk = c.int("instance pk")?;
    let patient = patient(&mut c)?;
    let study = study(&mut c)?;
    let series = series(&mut c)?;
    let instance = InstanceAttrs {
        sop_uid: uid(c.text("sop instance uid")?, SopInstanceUid::new, "sop instance uid")?,
        sop_class_uid: uid(c.text("sop class uid")?, SopClassUid::new, "sop class uid")?,
        instance_number: c.opt_int("instance number")?,
        rows: c.opt_int("rows")?,
        columns: c.opt_int("columns")?,
        bits_allocated: c.opt_int("bits allocated")?,
        number_of_frames: c.opt_int("number of frames")?,
        transfer_syntax: c.text("transfer syntax")?,
        multi_frame: MultiFrameAttrs::default(),
    };
    let blob = BlobLocation {
        tier: c.text("tier")?,
        key: c.text("blob key")?,
        version_id: c.opt_text("blob version id")?,
        size: c.uint("blob size")?,
        sha256: c.text("sha256")?,
    };
    let version = i32::try_from(c.int("instance version")?).map_err(|_| CatalogError::Corrupt { what: "instance version" })?;
    let is_current = c.flag("is current")?;
    let stored_at_ms = c.int("stored at")?;
    let mut instance = instance;
    instance.multi_frame = MultiFrameAttrs {
        concatenation_uid: c.opt_text("concatenation uid")?,
        concatenation_source: c.opt_text("concatenation source")?,
        in_concatenation_number: c.opt_int("in-concatenation number")?,
        dimension_organization_type: c.opt_text("dimension organization type")?,
        total_pixel_matrix_columns: c.opt_int("total pixel matrix columns")?,
        total_pixel_matrix_rows: c.opt_int("total pixel matrix rows")?,
    };
    let rejection = match (c.opt_text("rejection code")?, c.opt_int("rejection time")?) {
        (Some(code), Some(at_ms)) => Some(Rejection { code, at_ms }),
        (None, None) => None,
        _ => return Err(CatalogError::Corrupt { what: "instance rejection" }),
    };
    let last_access_ms = c.opt_int("last access")?;
    let tenant = c.text("study tenant")?;
    Ok(InstanceRow { pk, patient, study, series, instance, blob, version, is_current, stored_at_ms, tenant, rejection, last_access_ms })
}

fn decode_all(rows: &[AnyRow]) -> Result<Vec<InstanceRow>, CatalogError> {
    rows.iter().map(decode_instance).collect()
}

pub(crate) async fn latest_study_date(pool: &Pool, patient_id: &str, issuer: &str) -> Result<Option<String>, CatalogError> {
    // The patient row by its unique (patient_id, issuer, orphan_study) index; DA sorts as text.
    let sql = "SELECT MAX(st.study_date) FROM study st JOIN patient p ON p.pk = st.patient_pk \
               WHERE p.patient_id = ? AND p.issuer = ? AND p.orphan_study = '' AND st.study_date <> ''";
    let rows = pool.fetch_all("latest study date", sql, &[patient_id.into(), issuer.into()]).await?;
    match rows.first() {
        Some(r) => r.cols().opt_text("latest study date"),
        None => Ok(None),
    }
}

pub(crate) async fn current_instance(pool: &Pool, sop: &SopInstanceUid, v: &Visibility) -> Result<Option<InstanceRow>, CatalogError> {
    let (sql, binds) = current_instance_sql(pool.dialect(), sop, v);
    let rows = pool.fetch_built("current instance", &sql, &binds).await?;
    rows.first().map(decode_instance).transpose()
}

/// What a store settles before committing its object (`Catalog::before_store`): the study's
/// tenant and whether a current version exists, in one small statement; that version's row
/// only when there is one (a store sent again, a new version). Most stores are of new
/// instances: on PostgreSQL the joined read of a version cost ~3× its execution to bind (0.13
/// against 0.04 ms, log_min_duration_statement), on every store. The register decides for good.
pub(crate) async fn before_store(
    pool: &Pool,
    study: &StudyUid,
    sop: &SopInstanceUid,
) -> Result<(Option<String>, Option<InstanceRow>), CatalogError> {
    let rows = pool
        .fetch_all(
            "before store",
            "SELECT (SELECT tenant FROM study WHERE study_uid = ?), \
             EXISTS (SELECT 1 FROM instance WHERE sop_uid = ? AND is_current)",
            &[study.as_str().into(), sop.as_str().into()],
        )
        .await?;
    let row = rows.first().ok_or(CatalogError::Corrupt { what: "before-store row" })?;
    let mut c = row.cols();
    let tenant = c.opt_text("study tenant")?;
    let current = if c.flag("current version exists")? { current_instance(pool, sop, &Visibility::ALL).await? } else { None };
    Ok((tenant, current))
}

/// The statement of [`current_instance`], in `dialect`'s syntax, and its binds.
pub(crate) fn current_instance_sql(dialect: Dialect, sop: &SopInstanceUid, v: &Visibility) -> (String, Vec<Value>) {
    let mut b = SqlBuilder::new(dialect);
    b.push(&instance_select()).push(" WHERE i.sop_uid = ").bind(sop.as_str()).push(" AND ").push(&live("i", v));
    visible(&mut b, v, Joined::Instance);
    (b.sql, b.binds)
}

pub(crate) async fn instance_versions(pool: &Pool, sop: &SopInstanceUid, v: &Visibility) -> Result<Vec<InstanceRow>, CatalogError> {
    let mut b = SqlBuilder::new(pool.dialect());
    b.push(&instance_select()).push(" WHERE i.sop_uid = ").bind(sop.as_str());
    if !v.rejected {
        b.push(" AND i.rejected_code IS NULL");
    }
    visible(&mut b, v, Joined::Instance);
    b.push(" ORDER BY i.version");
    decode_all(&pool.fetch_built("instance versions", &b.sql, &b.binds).await?)
}

/// Every version of each of `sops`, by SOP Instance UID then version: one query for a page.
pub(crate) async fn versions_of(pool: &Pool, sops: &[SopInstanceUid], v: &Visibility) -> Result<Vec<InstanceRow>, CatalogError> {
    if sops.is_empty() {
        return Ok(Vec::new());
    }
    let mut b = SqlBuilder::new(pool.dialect());
    b.push(&instance_select()).push(" WHERE i.sop_uid IN ").bind_list(sops.iter().map(SopInstanceUid::as_str));
    if !v.rejected {
        b.push(" AND i.rejected_code IS NULL");
    }
    visible(&mut b, v, Joined::Instance);
    b.push(" ORDER BY i.sop_uid, i.version");
    decode_all(&pool.fetch_built("versions of instances", &b.sql, &b.binds).await?)
}

pub(crate) async fn instances_in(pool: &Pool, scope: &Scope, v: &Visibility) -> Result<Vec<InstanceRow>, CatalogError> {
    let mut b = SqlBuilder::new(pool.dialect());
    b.push(&instance_select()).push(" WHERE st.study_uid = ").bind(scope.study.as_str());
    if let Some(series) = &scope.series {
        b.push(" AND s.series_uid = ").bind(series.as_str());
    }
    if let Some(sop) = &scope.instance {
        b.push(" AND i.sop_uid = ").bind(sop.as_str());
    }
    visible(&mut b, v, Joined::Instance);
    b.push(" AND ").push(&live("i", v)).push(" ORDER BY s.series_number NULLS LAST, s.series_uid, i.instance_number NULLS LAST, i.sop_uid");
    decode_all(&pool.fetch_built("instances in scope", &b.sql, &b.binds).await?)
}

pub(crate) async fn metadata(pool: &Pool, pks: &[i64]) -> Result<Vec<(i64, String)>, CatalogError> {
    let mut found: HashMap<i64, String> = HashMap::with_capacity(pks.len());
    for chunk in pks.chunks(PKS_PER_STATEMENT) {
        let mut b = SqlBuilder::new(pool.dialect());
        b.push("SELECT instance_pk, json FROM instance_metadata WHERE instance_pk IN ").bind_list(chunk.iter().copied());
        for row in pool.fetch_built("metadata", &b.sql, &b.binds).await? {
            let mut c = row.cols();
            let pk = c.int("metadata pk")?;
            found.insert(pk, c.text("metadata json")?);
        }
    }
    Ok(pks.iter().filter_map(|pk| found.get(pk).map(|j| (*pk, j.clone()))).collect())
}

pub(crate) async fn frames(pool: &Pool, pk: i64, numbers: &[u32]) -> Result<Option<Vec<Vec<ByteRange>>>, CatalogError> {
    let rows = pool
        .fetch_all(
            "frames: read layout",
            "SELECT frame_kind, frame_first_offset, frame_length, frame_count FROM instance WHERE pk = ?",
            &[pk.into()],
        )
        .await?;
    let Some(row) = rows.first() else { return Ok(None) };
    let mut c = row.cols();
    let kind = c.text("frame kind")?;
    let first_offset = c.uint("frame offset")?;
    let frame_length = c.uint("frame length")?;
    let count = u32::try_from(c.int("frame count")?).map_err(|_| CatalogError::Corrupt { what: "frame count" })?;
    if let Some(&bad) = numbers.iter().find(|&&n| n == 0 || n > count) {
        return Err(CatalogError::FrameOutOfRange { number: bad, count });
    }
    match kind.as_str() {
        "none" => Ok(Some(Vec::new())),
        "native" => Ok(Some(
            numbers
                .iter()
                .map(|&n| {
                    let offset = (u64::from(n) - 1)
                        .checked_mul(frame_length)
                        .and_then(|o| o.checked_add(first_offset))
                        .ok_or(CatalogError::Corrupt { what: "native frame offset" })?;
                    Ok(vec![ByteRange { offset, length: frame_length }])
                })
                .collect::<Result<_, CatalogError>>()?,
        )),
        "encapsulated" => encapsulated(pool, pk, numbers).await.map(Some),
        _ => Err(CatalogError::Corrupt { what: "frame kind" }),
    }
}

async fn encapsulated(pool: &Pool, pk: i64, numbers: &[u32]) -> Result<Vec<Vec<ByteRange>>, CatalogError> {
    let wanted: BTreeSet<u32> = numbers.iter().copied().collect();
    let mut pieces: HashMap<u32, Vec<ByteRange>> = HashMap::with_capacity(wanted.len());
    let wanted: Vec<i64> = wanted.into_iter().map(i64::from).collect();
    for chunk in wanted.chunks(PKS_PER_STATEMENT) {
        let mut b = SqlBuilder::new(pool.dialect());
        b.push("SELECT frame_number, byte_offset, byte_length FROM frame_piece WHERE instance_pk = ")
            .bind(pk)
            .push(" AND frame_number IN ")
            .bind_list(chunk.iter().copied())
            .push(" ORDER BY frame_number, piece_index");
        for row in pool.fetch_built("frames: read pieces", &b.sql, &b.binds).await? {
            let mut c = row.cols();
            let n = u32::try_from(c.int("frame number")?).map_err(|_| CatalogError::Corrupt { what: "frame number" })?;
            let offset = c.uint("frame piece offset")?;
            let length = c.uint("frame piece length")?;
            pieces.entry(n).or_default().push(ByteRange { offset, length });
        }
    }
    numbers.iter().map(|n| pieces.get(n).cloned().ok_or(CatalogError::Corrupt { what: "frame pieces" })).collect()
}

pub(crate) async fn query_patients(pool: &Pool, q: &Query, v: &Visibility) -> Result<Vec<PatientRow>, CatalogError> {
    let b = translate::build(pool.dialect(), &Query { level: crate::Level::Patient, ..q.clone() }, v);
    let rows = pool.fetch_built("query patients", &b.sql, &b.binds).await?;
    let mut patients = Vec::with_capacity(rows.len());
    let mut pks = Vec::with_capacity(rows.len());
    for row in &rows {
        let mut c = row.cols();
        pks.push(c.int("patient pk")?);
        patients.push(PatientRow { patient: patient(&mut c)?, number_of_studies: 0, number_of_series: 0, number_of_instances: 0 });
    }
    // Counters over current instances of visible studies only, for this page of patients
    // (indexes: study by patient, series by study, partial index of current instances by series).
    for (chunk_pks, chunk_rows) in pks.chunks(PKS_PER_STATEMENT).zip(patients.chunks_mut(PKS_PER_STATEMENT)) {
        let mut b = SqlBuilder::new(pool.dialect());
        if translate::counts_serve(v) {
            b.push(
                "SELECT st.patient_pk, COUNT(DISTINCT st.pk), COUNT(DISTINCT s.pk), CAST(SUM(sc.live) AS BIGINT) FROM study st \
                 JOIN series s ON s.study_pk = st.pk JOIN series_count sc ON sc.series_pk = s.pk \
                 WHERE sc.live > 0 AND st.patient_pk IN ",
            )
            .bind_list(chunk_pks.iter().copied());
            visible(&mut b, v, Joined::Study);
        } else {
            b.push(
                "SELECT st.patient_pk, COUNT(DISTINCT st.pk), COUNT(DISTINCT s.pk), COUNT(*) FROM study st \
                 JOIN series s ON s.study_pk = st.pk JOIN instance i ON i.series_pk = s.pk \
                 WHERE st.patient_pk IN ",
            )
            .bind_list(chunk_pks.iter().copied())
            .push(" AND ")
            .push(&live("i", v));
            visible(&mut b, v, Joined::Instance);
        }
        b.push(" GROUP BY st.patient_pk");
        let mut counts: HashMap<i64, (i64, i64, i64)> = HashMap::with_capacity(chunk_pks.len());
        for row in pool.fetch_built("query patients: counters", &b.sql, &b.binds).await? {
            let mut c = row.cols();
            let pk = c.int("patient pk")?;
            counts.insert(pk, (c.int("study count")?, c.int("series count")?, c.int("instance count")?));
        }
        for (pk, row) in chunk_pks.iter().zip(chunk_rows.iter_mut()) {
            if let Some(&(studies, series, instances)) = counts.get(pk) {
                (row.number_of_studies, row.number_of_series, row.number_of_instances) = (studies, series, instances);
            }
        }
    }
    Ok(patients)
}

pub(crate) async fn query_studies(pool: &Pool, q: &Query, v: &Visibility) -> Result<Vec<StudyRow>, CatalogError> {
    let b = translate::build(pool.dialect(), &Query { level: crate::Level::Study, ..q.clone() }, v);
    let rows = pool.fetch_built("query studies", &b.sql, &b.binds).await?;
    let mut studies = Vec::with_capacity(rows.len());
    let mut pks = Vec::with_capacity(rows.len());
    let counted = translate::counts_serve(v);
    for row in &rows {
        let mut c = row.cols();
        pks.push(c.int("study pk")?);
        let mut found = StudyRow {
            patient: patient(&mut c)?,
            study: study(&mut c)?,
            modalities_in_study: Vec::new(),
            sop_classes_in_study: Vec::new(),
            number_of_series: 0,
            number_of_instances: 0,
        };
        // The row's counts are of whole series, as a clinical reader sees them; anyone else's
        // are counted below from what they may see.
        if counted {
            found.number_of_series = c.int("live series")?;
            found.number_of_instances = c.int("live instances")?;
            found.modalities_in_study = split_list(&c.text("modalities")?);
            found.sop_classes_in_study = split_list(&c.text("sop classes")?);
        }
        studies.push(found);
    }
    if counted {
        return Ok(studies);
    }
    let stats = study_stats(pool, &pks, v).await?;
    for (pk, row) in pks.iter().zip(studies.iter_mut()) {
        if let Some(s) = stats.get(pk) {
            row.modalities_in_study = s.modalities.iter().cloned().collect();
            row.sop_classes_in_study = s.sop_classes.iter().cloned().collect();
            row.number_of_series = s.series.len() as i64;
            row.number_of_instances = s.instances;
        }
    }
    Ok(studies)
}

/// A list kept on the study row (migration 0017): values joined by `\`, sorted, no repeats.
fn split_list(joined: &str) -> Vec<String> {
    joined.split('\\').filter(|v| !v.is_empty()).map(str::to_owned).collect()
}

#[derive(Default)]
struct StudyStats {
    modalities: BTreeSet<String>,
    sop_classes: BTreeSet<String>,
    series: BTreeSet<i64>,
    instances: i64,
}

/// Counters of visible studies (`pks` from a visibility-checked read) for a reader whose
/// counts the study rows do not hold ([`translate::counts_serve`]): over what `v` lets the
/// reader see of them (a link to one series counts that series; rejected instances for who
/// sees them).
async fn study_stats(pool: &Pool, pks: &[i64], v: &Visibility) -> Result<HashMap<i64, StudyStats>, CatalogError> {
    let mut out: HashMap<i64, StudyStats> = HashMap::with_capacity(pks.len());
    for chunk in pks.chunks(PKS_PER_STATEMENT) {
        let mut b = SqlBuilder::new(pool.dialect());
        b.push(
            "SELECT s.study_pk, s.pk, s.modality, i.sop_class_uid, COUNT(*) FROM series s \
             JOIN study st ON st.pk = s.study_pk JOIN instance i ON i.series_pk = s.pk WHERE s.study_pk IN ",
        )
        .bind_list(chunk.iter().copied())
        .push(" AND ")
        .push(&live("i", v));
        visible(&mut b, v, Joined::Instance);
        b.push(" GROUP BY s.study_pk, s.pk, s.modality, i.sop_class_uid");
        for row in pool.fetch_built("query studies: counters", &b.sql, &b.binds).await? {
            let mut c = row.cols();
            let st = out.entry(c.int("study pk")?).or_default();
            st.series.insert(c.int("series pk")?);
            let modality = c.text("modality")?;
            if !modality.is_empty() {
                st.modalities.insert(modality);
            }
            st.sop_classes.insert(c.text("sop class uid")?);
            st.instances += c.int("instance count")?;
        }
    }
    Ok(out)
}

pub(crate) async fn query_series(pool: &Pool, q: &Query, v: &Visibility) -> Result<Vec<SeriesRow>, CatalogError> {
    let b = translate::build(pool.dialect(), &Query { level: crate::Level::Series, ..q.clone() }, v);
    let rows = pool.fetch_built("query series", &b.sql, &b.binds).await?;
    rows.iter()
        .map(|row| {
            let mut c = row.cols();
            c.int("series pk")?;
            Ok(SeriesRow {
                patient: patient(&mut c)?,
                study: study(&mut c)?,
                series: series(&mut c)?,
                number_of_instances: c.int("instance count")?,
            })
        })
        .collect()
}

pub(crate) async fn query_instances(pool: &Pool, q: &Query, v: &Visibility) -> Result<Vec<InstanceRow>, CatalogError> {
    let b = translate::build(pool.dialect(), &Query { level: crate::Level::Instance, ..q.clone() }, v);
    decode_all(&pool.fetch_built("query instances", &b.sql, &b.binds).await?)
}

pub(crate) async fn query_instances_after(
    pool: &Pool,
    q: &Query,
    after_pk: i64,
    limit: u32,
    v: &Visibility,
) -> Result<Vec<InstanceRow>, CatalogError> {
    let b = translate::build_instances_after(pool.dialect(), q, after_pk, limit, v);
    decode_all(&pool.fetch_built("query instances after", &b.sql, &b.binds).await?)
}

pub(crate) async fn changes_since(pool: &Pool, after: i64, limit: u32) -> Result<Vec<Change>, CatalogError> {
    let rows = pool
        .fetch_all(
            "changes since",
            "SELECT seq, kind, study_uid, series_uid, sop_uid, at_ms FROM change_feed WHERE seq > ? ORDER BY seq LIMIT ?",
            &[after.into(), Value::Int(i64::from(limit))],
        )
        .await?;
    rows.iter()
        .map(|row| {
            let mut c = row.cols();
            let seq = c.int("change seq")?;
            let kind = match c.text("change kind")?.as_str() {
                "instance-stored" => ChangeKind::InstanceStored,
                "instance-replaced" => ChangeKind::InstanceReplaced,
                "prior-version-recorded" => ChangeKind::PriorVersionRecorded,
                "instance-rejected" => ChangeKind::InstanceRejected,
                "instance-expired" => ChangeKind::InstanceExpired,
                "instance-moved" => ChangeKind::InstanceMoved,
                "report-added" => ChangeKind::ReportAdded,
                "search-reindex" => ChangeKind::SearchReindex,
                _ => return Err(CatalogError::Corrupt { what: "change kind" }),
            };
            Ok(Change {
                seq,
                kind,
                study_uid: c.text("change study uid")?,
                series_uid: c.text("change series uid")?,
                sop_uid: c.text("change sop uid")?,
                at_ms: c.int("change time")?,
            })
        })
        .collect()
}

pub(crate) async fn last_change_seq(pool: &Pool) -> Result<i64, CatalogError> {
    let rows = pool.fetch_all("last change", "SELECT COALESCE(MAX(seq), 0) FROM change_feed", &[]).await?;
    match rows.first() {
        Some(row) => row.cols().int("last change"),
        None => Ok(0),
    }
}

pub(crate) async fn last_instance_key(pool: &Pool) -> Result<i64, CatalogError> {
    let rows = pool.fetch_all("last instance key", "SELECT COALESCE(MAX(pk), 0) FROM instance", &[]).await?;
    match rows.first() {
        Some(row) => row.cols().int("last instance key"),
        None => Ok(0),
    }
}

/// The (series, SOP Class) pairs where `series_count` and the live instances disagree, both
/// ways, the studies whose `live_instances` is not the sum of their series' counts, and those
/// whose live series, modalities or SOP Classes (migration 0017) are not what their series'
/// counts say.
pub(crate) async fn count_drift(pool: &Pool) -> Result<i64, CatalogError> {
    let actual = format!(
        "SELECT i.series_pk, i.sop_class_uid, COUNT(*) AS n FROM instance i WHERE {} GROUP BY i.series_pk, i.sop_class_uid",
        live("i", &Visibility::default())
    );
    let kept = "SELECT series_pk, sop_class_uid, live AS n FROM series_count WHERE live <> 0";
    let studies = "SELECT COUNT(*) FROM study st WHERE st.live_instances <> \
         (SELECT COALESCE(SUM(sc.live), 0) FROM series s JOIN series_count sc ON sc.series_pk = s.pk WHERE s.study_pk = st.pk)";
    // The migration's statement once more; its lists sorted bytewise in both dialects.
    let (joined, bytewise) = match pool.dialect() {
        Dialect::Sqlite => ("group_concat(v, '\\')", ""),
        Dialect::Postgres => ("string_agg(v, '\\' ORDER BY v)", " COLLATE \"C\""),
    };
    let live_series = "FROM series s JOIN series_count sc ON sc.series_pk = s.pk WHERE s.study_pk = st.pk AND sc.live > 0";
    let list = |col: &str, extra: &str| {
        format!("(SELECT COALESCE({joined}, '') FROM (SELECT DISTINCT {col}{bytewise} AS v {live_series}{extra} ORDER BY v) AS l)")
    };
    let aggregates = format!(
        "SELECT COUNT(*) FROM study st WHERE st.live_series <> (SELECT COUNT(DISTINCT s.pk) {live_series}) \
         OR st.modalities <> {} OR st.sop_classes <> {}",
        list("s.modality", " AND s.modality <> ''"),
        list("sc.sop_class_uid", "")
    );
    let sql = format!(
        "SELECT (SELECT COUNT(*) FROM ({kept} EXCEPT {actual}) AS extra) + (SELECT COUNT(*) FROM ({actual} EXCEPT {kept}) AS lacking) \
         + ({studies}) + ({aggregates})"
    );
    match pool.fetch_all("count drift", &sql, &[]).await?.first() {
        Some(row) => row.cols().int("count drift"),
        None => Ok(0),
    }
}

pub(crate) async fn count_instances(pool: &Pool) -> Result<i64, CatalogError> {
    let rows = pool
        .fetch_all("count instances", &format!("SELECT COUNT(*) FROM instance i WHERE {}", live("i", &Visibility::default())), &[])
        .await?;
    match rows.first() {
        Some(row) => row.cols().int("instance count"),
        None => Ok(0),
    }
}
