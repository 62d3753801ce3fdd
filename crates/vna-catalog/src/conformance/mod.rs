//! The conformance suite every catalog backend must pass, with synthetic PHI-free fixtures.
//!
//! Use [`catalog_conformance_tests!`](crate::catalog_conformance_tests) in a backend's test file
//! to get one `#[tokio::test]` per case (the calling crate needs `tokio` with `macros`).

#![allow(clippy::unwrap_used)]

mod audit_cases;
mod job_cases;
mod patient_cases;
mod query_cases;
mod rejection_cases;
mod visibility_cases;
mod write_cases;

pub use audit_cases::*;
pub use job_cases::*;
pub use patient_cases::*;
pub use query_cases::*;
pub use rejection_cases::*;
pub use visibility_cases::*;
pub use write_cases::*;

use vna_dicom::uid::{SeriesUid, SopClassUid, SopInstanceUid, StudyUid};

use crate::{
    BlobLocation, Catalog, Filter, FrameIndex, InstanceAttrs, InstanceRow, Key, Level, Matcher, NewInstance, PatientAttrs, Query,
    RegisterOutcome, SeriesAttrs, StudyAttrs, VersionPolicy, Visibility,
};

/// Generates one test per conformance case. `$make` is an async fn returning
/// `Option<(catalog, guard)>`: `None` skips (the constructor says why), the guard (temp dir,
/// schema) lives until the case ends.
#[macro_export]
macro_rules! catalog_conformance_tests {
    ($make:path) => {
        $crate::catalog_conformance_tests!(@by_ref $make;
            register_stores_first_version, a_row_waits_for_its_object_s_flush, duplicate_writes_nothing, reject_reports_conflict,
            keep_both_records_prior_version, replace_makes_new_current, latest_attributes_win, interleaved_series_keep_the_latest_values,
            series_of_one_study_interleaved_keep_the_latest_values,
            patients_without_id_stay_apart, study_and_series_counts, frames_native, frames_encapsulated,
            frames_none_and_unknown, metadata_in_request_order, change_feed_order, reports_are_recorded_with_their_change,
            instances_in_scope_and_order, single_matching, wildcard_matching, wildcard_escaping,
            date_and_time_ranges, integer_matching, uid_lists, modalities_in_study,
            lower_level_filters_at_higher_levels, fuzzy_person_names, limit_and_offset,
            result_ordering, patient_level_matching, patient_counters_count_current_instances,
            patient_level_paging_and_order, multi_frame_matching, tenant_grants_bound_every_read,
            link_scope_bounds_every_read, study_keeps_its_tenant, latest_study_date_of_a_patient, api_keys_round_trip,
            audit_events_round_trip, a_store_s_event_commits_with_it, rejection_hides_from_every_read,
            rejection_waits_for_unknown_instances, rejection_stays_in_its_tenant, a_study_wholly_rejected_disappears,
            jobs_are_claimed_once_and_finished_by_their_owner, a_lapsed_lease_is_taken_over_from_the_last_cursor,
            jobs_are_released_and_cancelled, expiry_leaves_tombstones_until_purged,
            a_tier_move_switches_the_version_and_leaves_the_old_object_to_purge, accesses_are_recorded_in_batches_and_never_go_back,
            a_schedule_queues_each_slot_once, keyset_pages_of_a_match);
        $crate::catalog_conformance_tests!(@shared $make;
            concurrent_duplicates_store_once, concurrent_replaces_keep_one_current,
            concurrent_change_feed_is_gapless, concurrent_claims_take_each_job_once, concurrent_schedulers_queue_one_run);
        $crate::catalog_conformance_tests!(@one_thread $make; concurrent_failure_stays_alone, one_batch_sees_its_own_writes);
    };
    (@by_ref $make:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let Some((catalog, _guard)) = $make().await else { return };
                $crate::conformance::$case(&catalog).await;
            }
        )*
    };
    // One thread: every spawned registration is queued before a writer task gets to run, so
    // on PostgreSQL (and in-memory SQLite) they meet in one group commit; the SQLite file's
    // writer is a thread of its own and may take them in several batches.
    (@one_thread $make:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "current_thread")]
            async fn $case() {
                let Some((catalog, _guard)) = $make().await else { return };
                $crate::conformance::$case(std::sync::Arc::new(catalog)).await;
            }
        )*
    };
    (@shared $make:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let Some((catalog, _guard)) = $make().await else { return };
                $crate::conformance::$case(std::sync::Arc::new(catalog)).await;
            }
        )*
    };
}

pub const CT_IMAGE: &str = "1.2.840.10008.5.1.4.1.1.2";
pub const MR_IMAGE: &str = "1.2.840.10008.5.1.4.1.1.4";
pub const BASIC_TEXT_SR: &str = "1.2.840.10008.5.1.4.1.1.88.11";
pub const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";

/// A stand-in SHA-256 (64 lower-case hex digits) derived from a seed.
pub fn fake_sha(seed: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in seed.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}").repeat(4)
}

/// A synthetic CT instance; tests adjust fields with struct update syntax.
pub fn new_instance(study: &str, series: &str, sop: &str) -> NewInstance {
    NewInstance {
        patient: PatientAttrs {
            patient_id: "PAT-0001".into(),
            issuer_of_patient_id: "SYNTH".into(),
            patient_name: "Doe^Jane".into(),
            patient_birth_date: "19700101".into(),
            patient_sex: "F".into(),
        },
        study: StudyAttrs {
            study_uid: StudyUid::new(study).unwrap(),
            study_date: "20240102".into(),
            study_time: "101500".into(),
            accession_number: "ACC-0001".into(),
            study_id: "S1".into(),
            referring_physician_name: "Ref^Doctor".into(),
            study_description: "Synthetic study".into(),
        },
        series: SeriesAttrs {
            series_uid: SeriesUid::new(series).unwrap(),
            modality: "CT".into(),
            series_number: Some(1),
            series_description: "Axial".into(),
            body_part_examined: "HEAD".into(),
            performed_procedure_step_start_date: "20240102".into(),
            performed_procedure_step_start_time: "101000".into(),
            institution_name: "Synthetic Hospital".into(),
            department_name: "Radiology".into(),
        },
        instance: InstanceAttrs {
            sop_uid: SopInstanceUid::new(sop).unwrap(),
            sop_class_uid: SopClassUid::new(CT_IMAGE).unwrap(),
            instance_number: Some(1),
            rows: Some(512),
            columns: Some(512),
            bits_allocated: Some(16),
            number_of_frames: None,
            transfer_syntax: EXPLICIT_LE.into(),
            multi_frame: Default::default(),
        },
        blob: BlobLocation {
            tier: "default".into(),
            key: format!("obj-{}", &fake_sha(sop)[..16]),
            version_id: None,
            size: 1024,
            sha256: fake_sha(sop),
        },
        frames: FrameIndex::None,
        tenant: "default".into(),
        audit: None,
        rejects: None,
        metadata: format!("{{\"00080018\":{{\"vr\":\"UI\",\"Value\":[\"{sop}\"]}}}}"),
    }
}

/// The row a catalog would give back for `n` as the first, current version (for unit tests of
/// logic that takes rows, without a catalog).
pub fn instance_row(n: NewInstance) -> InstanceRow {
    InstanceRow {
        pk: 1,
        patient: n.patient,
        study: n.study,
        series: n.series,
        instance: n.instance,
        blob: n.blob,
        version: 1,
        is_current: true,
        stored_at_ms: 0,
        tenant: n.tenant,
        rejection: None,
        last_access_ms: None,
    }
}

/// The same SOP instance with different bytes (a corrected version).
pub fn new_bytes(mut n: NewInstance, seed: &str) -> NewInstance {
    n.blob.sha256 = fake_sha(seed);
    n.blob.key = format!("obj-{}", &fake_sha(seed)[..16]);
    n
}

pub async fn store(c: &dyn Catalog, n: &NewInstance) -> i64 {
    match c.register(n, VersionPolicy::Reject).await.unwrap() {
        RegisterOutcome::Stored { instance, .. } => instance.pk,
        other => panic!("expected Stored, got {other:?}"),
    }
}

pub fn filter(key: Key, matcher: Matcher) -> Filter {
    Filter { key, matcher }
}

pub fn query(level: Level, filters: Vec<Filter>) -> Query {
    Query { level, filters, limit: None, offset: 0 }
}

/// The maintained live counts (what clinical counters read) agree with the instances.
pub async fn assert_counts_true(c: &dyn Catalog) {
    assert_eq!(c.count_drift().await.unwrap(), 0, "live counts (series, study) that differ from their instances");
}

pub async fn patient_ids(c: &dyn Catalog, filters: Vec<Filter>) -> Vec<String> {
    let rows = c.query_patients(&query(Level::Patient, filters), &Visibility::ALL).await.unwrap();
    rows.into_iter().map(|r| r.patient.patient_id).collect()
}

pub async fn study_uids(c: &dyn Catalog, filters: Vec<Filter>) -> Vec<String> {
    let rows = c.query_studies(&query(Level::Study, filters), &Visibility::ALL).await.unwrap();
    rows.into_iter().map(|r| r.study.study_uid.as_str().to_owned()).collect()
}

pub async fn series_uids(c: &dyn Catalog, filters: Vec<Filter>) -> Vec<String> {
    let rows = c.query_series(&query(Level::Series, filters), &Visibility::ALL).await.unwrap();
    rows.into_iter().map(|r| r.series.series_uid.as_str().to_owned()).collect()
}

pub async fn sop_uids(c: &dyn Catalog, filters: Vec<Filter>) -> Vec<String> {
    let rows = c.query_instances(&query(Level::Instance, filters), &Visibility::ALL).await.unwrap();
    rows.into_iter().map(|r| r.instance.sop_uid.as_str().to_owned()).collect()
}

pub fn single(s: &str) -> Matcher {
    Matcher::Single(s.into())
}
pub fn wild(s: &str) -> Matcher {
    Matcher::Wildcard(s.into())
}
pub fn fuzzy(s: &str) -> Matcher {
    Matcher::Fuzzy(s.into())
}
pub fn range(from: Option<&str>, to: Option<&str>) -> Matcher {
    Matcher::Range { from: from.map(Into::into), to: to.map(Into::into) }
}
pub fn list(v: &[&str]) -> Matcher {
    Matcher::List(v.iter().map(|s| (*s).to_owned()).collect())
}
