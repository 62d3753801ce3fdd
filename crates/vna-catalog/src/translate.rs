//! Query model → SQL: PS3.4 §C.2.2.2 matching on indexed columns, shared by both backends.
//!
//! Aliases: `p` patient, `st` study, `s` series, `i` instance. Only current instance versions
//! exist for queries: a patient, study or series shows up only while it has a current instance.

use crate::db::Dialect;
use crate::sqlbuild::SqlBuilder;
use crate::{Filter, Key, Level, Matcher, Query, Visibility};

/// Greater than every character; `w || MAX_CHAR` bounds the range of strings starting with `w`
/// (byte order: SQLite BINARY, PostgreSQL `COLLATE "C"`).
const MAX_CHAR: char = '\u{10FFFF}';

#[derive(Clone, Copy, PartialEq, Eq)]
enum Tier {
    Patient,
    /// Study columns, joined at every level but the patient's.
    Study,
    Series,
    Instance,
}

#[derive(Clone, Copy)]
enum Col {
    Text(&'static str),
    Int(&'static str),
    /// A PN column with its fuzzy token table: (column, token table, owner column, owner pk).
    Name(&'static str, &'static str, &'static str, &'static str),
}

fn column(key: Key) -> Option<(Tier, Col)> {
    use Col::*;
    use Tier::*;
    Some(match key {
        Key::PatientId => (Patient, Text("p.patient_id")),
        Key::IssuerOfPatientId => (Patient, Text("p.issuer")),
        Key::PatientName => (Patient, Name("p.patient_name", "patient_name_token", "patient_pk", "p.pk")),
        Key::PatientBirthDate => (Patient, Text("p.birth_date")),
        Key::PatientSex => (Patient, Text("p.sex")),
        Key::StudyUid => (Study, Text("st.study_uid")),
        Key::StudyDate => (Study, Text("st.study_date")),
        Key::StudyTime => (Study, Text("st.study_time")),
        Key::AccessionNumber => (Study, Text("st.accession_number")),
        Key::StudyId => (Study, Text("st.study_id")),
        Key::ReferringPhysicianName => (Study, Name("st.referring_physician_name", "referring_name_token", "study_pk", "st.pk")),
        Key::StudyDescription => (Study, Text("st.study_description")),
        Key::ModalitiesInStudy => return None,
        Key::SeriesUid => (Series, Text("s.series_uid")),
        Key::Modality => (Series, Text("s.modality")),
        Key::SeriesNumber => (Series, Int("s.series_number")),
        Key::SeriesDescription => (Series, Text("s.series_description")),
        Key::BodyPartExamined => (Series, Text("s.body_part_examined")),
        Key::PerformedProcedureStepStartDate => (Series, Text("s.pps_start_date")),
        Key::SopInstanceUid => (Instance, Text("i.sop_uid")),
        Key::SopClassUid => (Instance, Text("i.sop_class_uid")),
        Key::InstanceNumber => (Instance, Int("i.instance_number")),
        Key::ConcatenationUid => (Instance, Text("i.concatenation_uid")),
        Key::ConcatenationSource => (Instance, Text("i.concatenation_source")),
        Key::InConcatenationNumber => (Instance, Int("i.in_concatenation_number")),
        Key::DimensionOrganizationType => (Instance, Text("i.dimension_organization_type")),
        Key::TotalPixelMatrixColumns => (Instance, Int("i.total_pixel_matrix_columns")),
        Key::TotalPixelMatrixRows => (Instance, Int("i.total_pixel_matrix_rows")),
    })
}

pub(crate) const PATIENT_COLS: &str = "p.patient_id, p.issuer, p.patient_name, p.birth_date, p.sex";
pub(crate) const STUDY_COLS: &str = "st.study_uid, st.study_date, st.study_time, st.accession_number, \
     st.study_id, st.referring_physician_name, st.study_description";
/// What the study row keeps about its series (migrations 0015, 0017), true for the readers
/// [`counts_serve`] names: live series and instances, modalities and SOP Classes (`\`-joined).
pub(crate) const STUDY_AGGREGATE_COLS: &str = "st.live_series, st.live_instances, st.modalities, st.sop_classes";
pub(crate) const SERIES_COLS: &str = "s.series_uid, s.modality, s.series_number, s.series_description, \
     s.body_part_examined, s.pps_start_date, s.pps_start_time, s.institution_name, s.department_name";
pub(crate) const INSTANCE_COLS: &str = "i.sop_uid, i.sop_class_uid, i.instance_number, i.n_rows, \
     i.n_columns, i.bits_allocated, i.number_of_frames, i.transfer_syntax, i.tier, i.blob_key, \
     i.blob_version_id, i.size, i.sha256, i.version, i.is_current, i.stored_at_ms, \
     i.concatenation_uid, i.concatenation_source, i.in_concatenation_number, i.dimension_organization_type, \
     i.total_pixel_matrix_columns, i.total_pixel_matrix_rows, i.rejected_code, i.rejected_at_ms, i.last_access_ms";

/// `SELECT i.pk, <patient>, <study>, <series>, <instance> FROM … ` for instance rows; callers
/// append ` WHERE …`.
pub(crate) fn instance_select() -> String {
    format!(
        "SELECT i.pk, {PATIENT_COLS}, {STUDY_COLS}, {SERIES_COLS}, {INSTANCE_COLS}, st.tenant \
         FROM instance i JOIN series s ON s.pk = i.series_pk JOIN study st ON st.pk = s.study_pk \
         JOIN patient p ON p.pk = st.patient_pk"
    )
}

/// The one condition under which an instance version is there to be seen: every read, counter
/// and page of the catalog writes it through this function (`alias` is the instance table's
/// alias in the statement), so a state that hides an instance (rejected, expired) is added
/// here once and no count or lookup can miss it: the current version, not hidden by an IOCM
/// rejection unless `v` includes rejected instances. Who may see it is [`visible`]'s business.
/// (The text `rejected_code IS NULL` is also the condition of the counters' partial index.)
pub(crate) fn live(alias: &str, v: &Visibility) -> String {
    if v.rejected {
        format!("{alias}.is_current")
    } else {
        format!("{alias}.is_current AND {alias}.rejected_code IS NULL")
    }
}

/// Whether the maintained counts of live instances per series and SOP Class (`series_count`,
/// migration 0014, kept by triggers stating [`live`] for `Visibility::default()`; their sum
/// per study is `study.live_instances`, migration 0015, and the study's live series,
/// modalities and SOP Classes are on its row, migration 0017) answer for
/// `v`: a reader who does not see rejected instances, counting whole series (not a link
/// limited to one series or instance, whose counts are taken from the instances).
pub(crate) fn counts_serve(v: &Visibility) -> bool {
    !v.rejected && v.only.as_ref().is_none_or(|o| o.series.is_none() && o.instance.is_none())
}

/// Which aliases of the patient/study/series/instance join a statement has.
#[derive(Clone, Copy)]
pub(crate) enum Joined {
    Study,
    Series,
    Instance,
}

/// Appends ` AND …` restricting the study alias `st` (and `s`, `i` where joined) to what `v`
/// lets the reader see: the tenant grants as equality or a `grant/` prefix range (the tenant
/// index serves both), a link's study, series and instance. Nothing for [`Visibility::ALL`].
pub(crate) fn visible(b: &mut SqlBuilder, v: &Visibility, joined: Joined) {
    if let Some(grants) = &v.tenants {
        within_tenants(b, "st.tenant", grants);
    }
    if let Some(only) = &v.only {
        b.push(" AND st.study_uid = ").bind(only.study.as_str());
        if let (Some(series), Joined::Series | Joined::Instance) = (&only.series, joined) {
            b.push(" AND s.series_uid = ").bind(series.as_str());
        }
        if let (Some(sop), Joined::Instance) = (&only.instance, joined) {
            b.push(" AND i.sop_uid = ").bind(sop.as_str());
        }
    }
}

/// Appends ` AND …` keeping rows whose tenant column `col` is one of `grants` or below one.
pub(crate) fn within_tenants(b: &mut SqlBuilder, col: &str, grants: &[String]) {
    if grants.is_empty() {
        b.push(" AND 1 = 0");
        return;
    }
    b.push(" AND (");
    for (n, g) in grants.iter().enumerate() {
        if n > 0 {
            b.push(" OR ");
        }
        // `g/` up to `g0`: '0' follows '/' in byte order.
        b.push(&format!("{col} = ")).bind(g.as_str()).push(&format!(" OR ({col} >= ")).bind(format!("{g}/"));
        b.push(&format!(" AND {col} < ")).bind(format!("{g}0")).push(")");
    }
    b.push(")");
}

/// The full statement for a query at its level, with ordering, limit and offset, seeing only
/// what `v` lets the reader see.
pub(crate) fn build(dialect: Dialect, q: &Query, v: &Visibility) -> SqlBuilder {
    let mut b = SqlBuilder::new(dialect);
    let mine = |t: Tier| q.filters.iter().filter(move |f| column(f.key).is_some_and(|(tier, _)| tier == t));
    match q.level {
        Level::Patient => {
            b.push(&format!("SELECT p.pk, {PATIENT_COLS} FROM patient p WHERE "));
            let lower: Vec<&Filter> = mine(Tier::Study).chain(mine(Tier::Series)).chain(mine(Tier::Instance)).collect();
            let by_modality = q.filters.iter().any(|f| f.key == Key::ModalitiesInStudy);
            if lower.is_empty() && !by_modality && counts_serve(v) {
                b.push("EXISTS (SELECT 1 FROM study st WHERE st.patient_pk = p.pk AND st.live_instances > 0");
                visible(&mut b, v, Joined::Study);
                b.push(")");
            } else if lower.is_empty() && !by_modality {
                b.push(
                    "EXISTS (SELECT 1 FROM study st JOIN series s ON s.study_pk = st.pk \
                     JOIN instance i ON i.series_pk = s.pk WHERE st.patient_pk = p.pk AND ",
                )
                .push(&live("i", v));
                visible(&mut b, v, Joined::Instance);
                b.push(")");
            } else {
                b.push(
                    "p.pk IN (SELECT st.patient_pk FROM study st JOIN series s ON s.study_pk = st.pk \
                     JOIN instance i ON i.series_pk = s.pk WHERE ",
                )
                .push(&live("i", v));
                conditions(&mut b, lower.into_iter());
                modalities_in_study(&mut b, q, v);
                visible(&mut b, v, Joined::Instance);
                b.push(")");
            }
            conditions(&mut b, mine(Tier::Patient));
            // The UNIQUE (patient_id, issuer, orphan_study) index gives this order for free.
            b.push(" ORDER BY p.patient_id, p.issuer, p.orphan_study");
        }
        Level::Study => {
            b.push(&format!(
                "SELECT st.pk, {PATIENT_COLS}, {STUDY_COLS}, {STUDY_AGGREGATE_COLS} FROM study st JOIN patient p ON p.pk = st.patient_pk WHERE "
            ));
            let lower: Vec<&Filter> = mine(Tier::Series).chain(mine(Tier::Instance)).collect();
            if lower.is_empty() && !v.rejected {
                b.push("st.live_instances > 0");
            } else if lower.is_empty() {
                b.push("EXISTS (SELECT 1 FROM series s JOIN instance i ON i.series_pk = s.pk WHERE s.study_pk = st.pk AND ")
                    .push(&live("i", v))
                    .push(")");
            } else {
                // IN rather than EXISTS: lets the planner drive the query from the series or
                // instance index when the lower-level key is the selective one.
                b.push("st.pk IN (SELECT s.study_pk FROM series s JOIN instance i ON i.series_pk = s.pk WHERE ").push(&live("i", v));
                conditions(&mut b, lower.into_iter());
                b.push(")");
            }
            conditions(&mut b, mine(Tier::Patient).chain(mine(Tier::Study)));
            modalities_in_study(&mut b, q, v);
            visible(&mut b, v, Joined::Study);
            b.push(" ORDER BY st.study_date DESC, st.study_time DESC, st.study_uid");
        }
        Level::Series => {
            if counts_serve(v) {
                b.push(&format!(
                    "SELECT s.pk, {PATIENT_COLS}, {STUDY_COLS}, {SERIES_COLS}, \
                     (SELECT CAST(COALESCE(SUM(sc.live), 0) AS BIGINT) FROM series_count sc WHERE sc.series_pk = s.pk"
                ));
            } else {
                b.push(&format!(
                    "SELECT s.pk, {PATIENT_COLS}, {STUDY_COLS}, {SERIES_COLS}, \
                     (SELECT COUNT(*) FROM instance ci WHERE ci.series_pk = s.pk AND {}",
                    live("ci", v)
                ));
                // A link to one instance counts that instance only.
                if let Some(sop) = v.only.as_ref().and_then(|o| o.instance.as_ref()) {
                    b.push(" AND ci.sop_uid = ").bind(sop.as_str());
                }
            }
            b.push(") FROM series s JOIN study st ON st.pk = s.study_pk JOIN patient p ON p.pk = st.patient_pk WHERE ");
            let lower: Vec<&Filter> = mine(Tier::Instance).collect();
            if lower.is_empty() && !v.rejected {
                b.push("EXISTS (SELECT 1 FROM series_count sc WHERE sc.series_pk = s.pk AND sc.live > 0)");
            } else if lower.is_empty() {
                b.push("EXISTS (SELECT 1 FROM instance i WHERE i.series_pk = s.pk AND ").push(&live("i", v)).push(")");
            } else {
                b.push("s.pk IN (SELECT i.series_pk FROM instance i WHERE ").push(&live("i", v));
                conditions(&mut b, lower.into_iter());
                b.push(")");
            }
            conditions(&mut b, mine(Tier::Patient).chain(mine(Tier::Study)).chain(mine(Tier::Series)));
            modalities_in_study(&mut b, q, v);
            visible(&mut b, v, Joined::Series);
            b.push(" ORDER BY s.series_number NULLS LAST, s.series_uid");
        }
        Level::Instance => {
            b.push(&instance_select()).push(" WHERE ");
            instance_conditions(&mut b, q, v);
            let upper_filters = q.filters.iter().any(|f| column(f.key).is_none_or(|(tier, _)| tier != Tier::Instance));
            // With a filter on a patient/study/series key, SQLite (without statistics) would
            // rather walk the instance_number index for the ORDER BY and test every current
            // instance; the unary `+` (a no-op in both dialects) keeps it on the filter's index.
            let order = if upper_filters { "+i.instance_number" } else { "i.instance_number" };
            b.push(&format!(" ORDER BY {order} NULLS LAST, i.sop_uid"));
        }
    }
    b.limit_offset(q.limit, q.offset);
    b
}

/// The conditions an instance of `q` (at any level's keys) meets, as `v` sees it: after the
/// `WHERE` of a query over `instance i` joined to its series, study and patient.
fn instance_conditions(b: &mut SqlBuilder, q: &Query, v: &Visibility) {
    let mine = |t: Tier| q.filters.iter().filter(move |f| column(f.key).is_some_and(|(tier, _)| tier == t));
    b.push(&live("i", v));
    let all = mine(Tier::Patient).chain(mine(Tier::Study)).chain(mine(Tier::Series)).chain(mine(Tier::Instance));
    conditions(b, all);
    modalities_in_study(b, q, v);
    visible(b, v, Joined::Instance);
}

/// The instances matching `q` (its level, limit and offset aside) with a key above `after_pk`,
/// in key order, at most `limit`: a keyset page of a match too large for one answer (a legal
/// hold over a set), correct while instances come and go.
pub(crate) fn build_instances_after(dialect: Dialect, q: &Query, after_pk: i64, limit: u32, v: &Visibility) -> SqlBuilder {
    let mut b = SqlBuilder::new(dialect);
    b.push(&instance_select()).push(" WHERE i.pk > ").bind(after_pk).push(" AND ");
    instance_conditions(&mut b, q, v);
    b.push(" ORDER BY i.pk");
    b.limit_offset(Some(limit), 0);
    b
}

fn conditions<'a>(b: &mut SqlBuilder, filters: impl Iterator<Item = &'a Filter>) {
    for f in filters {
        if let Some((_, col)) = column(f.key) {
            condition(b, col, &f.matcher);
        }
    }
}

/// Studies having any series (with a current instance) of one of the modalities (IN, so the
/// modality index can drive the query).
fn modalities_in_study(b: &mut SqlBuilder, q: &Query, v: &Visibility) {
    for f in q.filters.iter().filter(|f| f.key == Key::ModalitiesInStudy) {
        let values: Vec<String> = match &f.matcher {
            Matcher::Single(v) | Matcher::Fuzzy(v) => vec![v.clone()],
            Matcher::List(vs) => vs.clone(),
            Matcher::Wildcard(w) if w.chars().all(|c| c == '*') => continue,
            Matcher::Wildcard(w) => {
                b.push(" AND st.pk IN (SELECT ms.study_pk FROM series ms JOIN instance mi ON mi.series_pk = ms.pk WHERE ")
                    .push(&live("mi", v));
                condition(b, Col::Text("ms.modality"), &Matcher::Wildcard(w.clone()));
                b.push(")");
                continue;
            }
            Matcher::Range { .. } => continue,
        };
        if values.is_empty() {
            b.push(" AND 1 = 0");
            continue;
        }
        if !v.rejected {
            b.push(" AND st.pk IN (SELECT ms.study_pk FROM series ms JOIN series_count msc ON msc.series_pk = ms.pk WHERE msc.live > 0")
                .push(" AND ms.modality IN ")
                .bind_list(values)
                .push(")");
            continue;
        }
        b.push(" AND st.pk IN (SELECT ms.study_pk FROM series ms JOIN instance mi ON mi.series_pk = ms.pk WHERE ")
            .push(&live("mi", v))
            .push(" AND ms.modality IN ")
            .bind_list(values)
            .push(")");
    }
}

/// Appends ` AND <condition>` for one matcher on one column (nothing for a universal match).
fn condition(b: &mut SqlBuilder, col: Col, m: &Matcher) {
    match (col, m) {
        (Col::Name(_, table, owner, owner_pk), Matcher::Fuzzy(q)) => {
            for w in vna_dicom::pn::fuzzy_query_words(q) {
                let upper = format!("{w}{MAX_CHAR}");
                b.push(&format!(" AND {owner_pk} IN (SELECT {owner} FROM {table} WHERE token >= "))
                    .bind(w)
                    .push(" AND token < ")
                    .bind(upper)
                    .push(")");
            }
        }
        (Col::Text(c) | Col::Name(c, ..), m) => text_condition(b, c, m),
        (Col::Int(c), m) => int_condition(b, c, m),
    }
}

fn text_condition(b: &mut SqlBuilder, c: &str, m: &Matcher) {
    match m {
        Matcher::Single(v) | Matcher::Fuzzy(v) => {
            b.push(&format!(" AND {c} = ")).bind(v.as_str());
        }
        Matcher::List(vs) if vs.is_empty() => {
            b.push(" AND 1 = 0");
        }
        Matcher::List(vs) => {
            b.push(&format!(" AND {c} IN ")).bind_list(vs.iter().map(String::as_str));
        }
        Matcher::Range { from, to } => {
            if let Some(f) = from {
                b.push(&format!(" AND {c} >= ")).bind(f.as_str());
            }
            if let Some(t) = to {
                b.push(&format!(" AND {c} <= ")).bind(t.as_str());
            }
        }
        Matcher::Wildcard(w) => wildcard(b, c, w),
    }
}

fn wildcard(b: &mut SqlBuilder, c: &str, w: &str) {
    if w.chars().all(|ch| ch == '*') {
        return;
    }
    let Some(first) = w.find(['*', '?']) else {
        b.push(&format!(" AND {c} = ")).bind(w);
        return;
    };
    // The literal prefix as a range lets a plain btree index narrow the scan in both backends,
    // whatever the LIKE/GLOB optimiser makes of a bound pattern.
    let prefix = &w[..first];
    if !prefix.is_empty() {
        b.push(&format!(" AND {c} >= ")).bind(prefix).push(&format!(" AND {c} < ")).bind(format!("{prefix}{MAX_CHAR}"));
    }
    match b.dialect() {
        // SQLite's LIKE ignores ASCII case; GLOB is case-sensitive, as PS3.4 wants.
        Dialect::Sqlite => {
            b.push(&format!(" AND {c} GLOB ")).bind(glob_pattern(w));
        }
        Dialect::Postgres => {
            b.push(&format!(" AND {c} LIKE ")).bind(like_pattern(w)).push(" ESCAPE '\\'");
        }
    }
}

/// DICOM wildcard → LIKE pattern with `\` escaping literal `%`, `_` and `\`.
pub(crate) fn like_pattern(w: &str) -> String {
    let mut out = String::with_capacity(w.len() + 4);
    for ch in w.chars() {
        match ch {
            '*' => out.push('%'),
            '?' => out.push('_'),
            '%' | '_' | '\\' => {
                out.push('\\');
                out.push(ch);
            }
            other => out.push(other),
        }
    }
    out
}

/// DICOM wildcard → GLOB pattern; `[` is GLOB's only other special character.
pub(crate) fn glob_pattern(w: &str) -> String {
    let mut out = String::with_capacity(w.len() + 4);
    for ch in w.chars() {
        match ch {
            '[' => out.push_str("[[]"),
            other => out.push(other),
        }
    }
    out
}

/// Integer keys: a value that is not an integer matches nothing (no row holds it).
fn int_condition(b: &mut SqlBuilder, c: &str, m: &Matcher) {
    let parse = |s: &str| s.trim().parse::<i64>().ok();
    match m {
        Matcher::Single(v) | Matcher::Fuzzy(v) => match parse(v) {
            Some(n) => {
                b.push(&format!(" AND {c} = ")).bind(n);
            }
            None => {
                b.push(" AND 1 = 0");
            }
        },
        Matcher::Wildcard(w) if w.chars().all(|ch| ch == '*') => {}
        Matcher::Wildcard(w) => int_condition(b, c, &Matcher::Single(w.clone())),
        Matcher::List(vs) => {
            let ns: Vec<i64> = vs.iter().filter_map(|v| parse(v)).collect();
            if ns.is_empty() {
                b.push(" AND 1 = 0");
            } else {
                b.push(&format!(" AND {c} IN ")).bind_list(ns);
            }
        }
        Matcher::Range { from, to } => {
            for (bound, op) in [(from, ">="), (to, "<=")] {
                if let Some(v) = bound {
                    match parse(v) {
                        Some(n) => {
                            b.push(&format!(" AND {c} {op} ")).bind(n);
                        }
                        None => {
                            b.push(" AND 1 = 0");
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_escape_literals() {
        assert_eq!(like_pattern("a*b?%_\\"), "a%b_\\%\\_\\\\");
        assert_eq!(glob_pattern("a*[b]?%"), "a*[[]b]?%");
    }

    #[test]
    fn values_are_bound_not_formatted() {
        let q = Query {
            level: Level::Study,
            filters: vec![Filter { key: Key::PatientId, matcher: Matcher::Single("x'; DROP TABLE study; --".into()) }],
            limit: Some(10),
            offset: 0,
        };
        let b = build(Dialect::Postgres, &q, &Visibility::ALL);
        assert!(!b.sql.contains("DROP"));
        assert_eq!(b.binds.len(), 3);
    }

    #[test]
    fn visibility_is_bound_at_every_level() {
        let v = Visibility { tenants: Some(vec!["a'--".into(), "b".into()]), only: None, rejected: false };
        for level in [Level::Patient, Level::Study, Level::Series, Level::Instance] {
            let q = Query { level, filters: Vec::new(), limit: None, offset: 0 };
            let b = build(Dialect::Sqlite, &q, &v);
            assert!(!b.sql.contains("a'--"), "{level:?}");
            assert!(b.sql.contains("st.tenant = ?"), "{level:?}: {}", b.sql);
            assert_eq!(b.binds.len(), 7, "{level:?} (two grants of three binds, the offset): {}", b.sql);
        }
        let none = Visibility { tenants: Some(Vec::new()), only: None, rejected: false };
        assert!(build(Dialect::Sqlite, &Query { level: Level::Study, filters: Vec::new(), limit: None, offset: 0 }, &none)
            .sql
            .contains("1 = 0"));
    }
}
