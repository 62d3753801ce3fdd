//! Fault injection in-process: the router the binary serves, over an archive whose blob store
//! (FaultyBlobStore over FsBlobStore) or catalog fails on demand, driven by a real HTTP
//! client. Checks invariants 1 and 5: nothing half-stored, a retryable 503 for outages, and
//! the server keeps serving.

use async_trait::async_trait;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use vna_archive::ArchiveConfig;
use vna_catalog::*;
use vna_dicom::uid::SopInstanceUid;
use vna_e2e::fixtures::Ct;
use vna_e2e::http::{self, StreamedStow};
use vna_e2e::inproc::{self, FaultyFixture};
use vna_e2e::wait_until;

/// Delegates to SQLite, but `register_after` fails with a transient error while `fail_register` is set.
struct FailingCatalog {
    inner: Arc<SqliteCatalog>,
    fail_register: AtomicBool,
}

#[async_trait]
impl Catalog for FailingCatalog {
    async fn register_after(&self, new: &NewInstance, policy: VersionPolicy, durable: Durable) -> Result<RegisterOutcome, CatalogError> {
        if self.fail_register.load(Ordering::SeqCst) {
            return Err(CatalogError::Query { op: "registering an instance (injected)", source: sqlx::Error::PoolTimedOut });
        }
        self.inner.register_after(new, policy, durable).await
    }
    async fn current_instance(&self, sop: &SopInstanceUid, v: &Visibility) -> Result<Option<InstanceRow>, CatalogError> {
        self.inner.current_instance(sop, v).await
    }
    async fn instance_versions(&self, sop: &SopInstanceUid, v: &Visibility) -> Result<Vec<InstanceRow>, CatalogError> {
        self.inner.instance_versions(sop, v).await
    }
    async fn instances_in(&self, scope: &Scope, v: &Visibility) -> Result<Vec<InstanceRow>, CatalogError> {
        self.inner.instances_in(scope, v).await
    }
    async fn metadata(&self, pks: &[i64]) -> Result<Vec<(i64, String)>, CatalogError> {
        self.inner.metadata(pks).await
    }
    async fn frames(&self, pk: i64, numbers: &[u32]) -> Result<Option<Vec<Vec<ByteRange>>>, CatalogError> {
        self.inner.frames(pk, numbers).await
    }
    async fn query_patients(&self, q: &Query, v: &Visibility) -> Result<Vec<PatientRow>, CatalogError> {
        self.inner.query_patients(q, v).await
    }
    async fn query_studies(&self, q: &Query, v: &Visibility) -> Result<Vec<StudyRow>, CatalogError> {
        self.inner.query_studies(q, v).await
    }
    async fn query_series(&self, q: &Query, v: &Visibility) -> Result<Vec<SeriesRow>, CatalogError> {
        self.inner.query_series(q, v).await
    }
    async fn query_instances(&self, q: &Query, v: &Visibility) -> Result<Vec<InstanceRow>, CatalogError> {
        self.inner.query_instances(q, v).await
    }
    async fn versions_of(&self, sops: &[vna_dicom::uid::SopInstanceUid], v: &Visibility) -> Result<Vec<InstanceRow>, CatalogError> {
        self.inner.versions_of(sops, v).await
    }
    async fn query_instances_after(&self, q: &Query, after_pk: i64, limit: u32, v: &Visibility) -> Result<Vec<InstanceRow>, CatalogError> {
        self.inner.query_instances_after(q, after_pk, limit, v).await
    }
    async fn rejections(&self, v: &Visibility, limit: u32, offset: u32) -> Result<Vec<vna_catalog::RejectionRecord>, CatalogError> {
        self.inner.rejections(v, limit, offset).await
    }
    async fn enqueue_job(&self, job: &vna_catalog::NewJob) -> Result<i64, CatalogError> {
        self.inner.enqueue_job(job).await
    }
    async fn enqueue_scheduled(
        &self,
        name: &str,
        slot: i64,
        busy_kinds: &[String],
        jobs: &[vna_catalog::NewJob],
    ) -> Result<Option<Vec<i64>>, CatalogError> {
        self.inner.enqueue_scheduled(name, slot, busy_kinds, jobs).await
    }
    async fn claim_job(
        &self,
        owner: &str,
        kinds: &[String],
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<Option<vna_catalog::JobRow>, CatalogError> {
        self.inner.claim_job(owner, kinds, now_ms, lease_ms).await
    }
    async fn renew_job(
        &self,
        id: i64,
        owner: &str,
        now_ms: i64,
        lease_ms: i64,
        progress: &vna_catalog::Progress,
    ) -> Result<vna_catalog::Renewal, CatalogError> {
        self.inner.renew_job(id, owner, now_ms, lease_ms, progress).await
    }
    async fn finish_job(
        &self,
        id: i64,
        owner: &str,
        state: vna_catalog::JobState,
        outcome: &str,
        progress: &vna_catalog::Progress,
        now_ms: i64,
    ) -> Result<bool, CatalogError> {
        self.inner.finish_job(id, owner, state, outcome, progress, now_ms).await
    }
    async fn release_job(&self, id: i64, owner: &str, progress: &vna_catalog::Progress) -> Result<bool, CatalogError> {
        self.inner.release_job(id, owner, progress).await
    }
    async fn cancel_job(&self, id: i64, now_ms: i64) -> Result<Option<vna_catalog::JobState>, CatalogError> {
        self.inner.cancel_job(id, now_ms).await
    }
    async fn job(&self, id: i64) -> Result<Option<vna_catalog::JobRow>, CatalogError> {
        self.inner.job(id).await
    }
    async fn jobs(&self, q: &vna_catalog::JobQuery) -> Result<Vec<vna_catalog::JobRow>, CatalogError> {
        self.inner.jobs(q).await
    }
    async fn job_failures(&self, id: i64, limit: u32, offset: u32) -> Result<Vec<vna_catalog::JobFailure>, CatalogError> {
        self.inner.job_failures(id, limit, offset).await
    }
    async fn instances_after(&self, after_pk: i64, limit: u32, v: &Visibility) -> Result<Vec<InstanceRow>, CatalogError> {
        self.inner.instances_after(after_pk, limit, v).await
    }
    async fn mark_legal_hold(&self, pk: i64, on: bool) -> Result<bool, CatalogError> {
        self.inner.mark_legal_hold(pk, on).await
    }
    async fn expire_instance(&self, e: &vna_catalog::Expiry) -> Result<vna_catalog::ExpiryOutcome, CatalogError> {
        self.inner.expire_instance(e).await
    }
    async fn move_version(&self, m: &vna_catalog::TierMove) -> Result<Option<vna_catalog::Tombstone>, CatalogError> {
        self.inner.move_version(m).await
    }
    async fn record_accesses(&self, pks: &[i64], at_ms: i64) -> Result<u64, CatalogError> {
        self.inner.record_accesses(pks, at_ms).await
    }
    async fn mark_purged(&self, tombstone_pk: i64, now_ms: i64) -> Result<bool, CatalogError> {
        self.inner.mark_purged(tombstone_pk, now_ms).await
    }
    async fn unpurged_tombstones(&self, after_pk: i64, limit: u32) -> Result<Vec<vna_catalog::Tombstone>, CatalogError> {
        self.inner.unpurged_tombstones(after_pk, limit).await
    }
    async fn tombstones(&self, sop: &SopInstanceUid, v: &Visibility) -> Result<Vec<vna_catalog::Tombstone>, CatalogError> {
        self.inner.tombstones(sop, v).await
    }
    async fn changes_since(&self, after: i64, limit: u32) -> Result<Vec<Change>, CatalogError> {
        self.inner.changes_since(after, limit).await
    }
    async fn add_report(&self, report: &vna_catalog::NewReport) -> Result<i64, CatalogError> {
        self.inner.add_report(report).await
    }
    async fn reports_of(&self, study_uid: &str) -> Result<Vec<vna_catalog::StoredReport>, CatalogError> {
        self.inner.reports_of(study_uid).await
    }
    async fn report_study(&self, pk: i64) -> Result<Option<String>, CatalogError> {
        self.inner.report_study(pk).await
    }
    async fn request_search_reindex(&self, at_ms: i64) -> Result<i64, CatalogError> {
        self.inner.request_search_reindex(at_ms).await
    }
    async fn studies_after(&self, after_pk: i64, limit: u32) -> Result<Vec<(i64, String)>, CatalogError> {
        self.inner.studies_after(after_pk, limit).await
    }
    async fn last_change_seq(&self) -> Result<i64, CatalogError> {
        self.inner.last_change_seq().await
    }
    async fn last_instance_key(&self) -> Result<i64, CatalogError> {
        self.inner.last_instance_key().await
    }
    async fn count_instances(&self) -> Result<i64, CatalogError> {
        self.inner.count_instances().await
    }
    async fn count_drift(&self) -> Result<i64, CatalogError> {
        self.inner.count_drift().await
    }
    async fn latest_study_date(&self, patient_id: &str, issuer: &str) -> Result<Option<String>, CatalogError> {
        self.inner.latest_study_date(patient_id, issuer).await
    }
    async fn study_tenant(&self, study: &vna_dicom::uid::StudyUid) -> Result<Option<String>, CatalogError> {
        self.inner.study_tenant(study).await
    }
    async fn create_api_key(&self, key: &ApiKey) -> Result<(), CatalogError> {
        self.inner.create_api_key(key).await
    }
    async fn api_key(&self, id: &str) -> Result<Option<ApiKey>, CatalogError> {
        self.inner.api_key(id).await
    }
    async fn api_keys(&self) -> Result<Vec<ApiKey>, CatalogError> {
        self.inner.api_keys().await
    }
    async fn revoke_api_key(&self, id: &str, at_ms: i64) -> Result<bool, CatalogError> {
        self.inner.revoke_api_key(id, at_ms).await
    }
    async fn record_audit(&self, events: Vec<AuditEvent>) -> Result<(), CatalogError> {
        self.inner.record_audit(events).await
    }
    async fn audit_events(&self, q: &AuditQuery) -> Result<Vec<AuditRecord>, CatalogError> {
        self.inner.audit_events(q).await
    }
}

async fn start(config: ArchiveConfig) -> (FaultyFixture, inproc::InProcess) {
    let fx = FaultyFixture::new().await;
    let archive = fx.archive(fx.sqlite.clone(), config);
    let server = inproc::serve(archive).await;
    (fx, server)
}

async fn assert_retryable_503(resp: reqwest::Response, what: &str) {
    let status = resp.status().as_u16();
    let retry_after = resp.headers().get(reqwest::header::RETRY_AFTER).cloned();
    let body = resp.text().await.unwrap_or_default();
    assert_eq!(status, 503, "{what}: expected 503, body: {body}");
    assert!(retry_after.is_some(), "{what}: 503 without Retry-After");
}

async fn assert_nothing_stored(fx: &FaultyFixture, server: &inproc::InProcess) {
    assert_eq!(server.archive.catalog().count_instances().await.expect("counting"), 0, "catalog rows");
    wait_until("no blob or temporary file is left", || async { fx.blob_files().is_empty() }).await;
}

async fn assert_stored_intact(client: &reqwest::Client, base: &str, ct: &Ct, bytes: &[u8]) {
    let url = http::instance_url(base, &ct.study_uid, &ct.series_uid, &ct.sop_uid);
    assert!(http::retrieve_instance(client, &url).await == bytes, "retrieved bytes differ from the stored ones");
}

#[tokio::test]
async fn commit_failure_is_retryable_and_leaves_nothing_then_succeeds() {
    let (fx, server) = start(ArchiveConfig::default()).await;
    let client = http::client();
    let ct = Ct::new_study();
    let bytes = ct.to_bytes();

    fx.faults.fail_commit.store(true, Ordering::SeqCst);
    let resp = http::stow(&client, &server.base, std::slice::from_ref(&bytes)).await;
    assert_retryable_503(resp, "STOW with failing commit").await;
    assert_nothing_stored(&fx, &server).await;

    fx.faults.fail_commit.store(false, Ordering::SeqCst);
    let resp = http::stow(&client, &server.base, std::slice::from_ref(&bytes)).await;
    assert_eq!(resp.status().as_u16(), 200, "STOW after the fault cleared: {}", resp.text().await.unwrap_or_default());
    assert_eq!(server.archive.catalog().count_instances().await.expect("counting"), 1);
    assert_stored_intact(&client, &server.base, &ct, &bytes).await;
}

#[tokio::test]
async fn create_failure_is_retryable() {
    let (fx, server) = start(ArchiveConfig::default()).await;
    let client = http::client();
    fx.faults.fail_create.store(true, Ordering::SeqCst);
    let resp = http::stow(&client, &server.base, &[Ct::new_study().to_bytes()]).await;
    assert_retryable_503(resp, "STOW with failing create").await;
    assert_nothing_stored(&fx, &server).await;
}

#[tokio::test]
async fn write_failure_mid_stream_is_retryable_and_stores_nothing() {
    let (fx, server) = start(ArchiveConfig::default()).await;
    let client = http::client();
    let bytes = Ct::new_study().with_size(512, 512).to_bytes();
    let (first, rest) = bytes.split_at(bytes.len() / 2);

    let stow = StreamedStow::start(&client, &server.base);
    stow.send(&http::part_head(true));
    stow.send(first);
    wait_until("the store has started", || async { server.archive.stores_in_progress() == 1 }).await;
    fx.faults.fail_write.store(true, Ordering::SeqCst);
    stow.send(rest);
    stow.send(&http::closing());
    assert_retryable_503(stow.finish().await, "STOW with a write failing mid-stream").await;
    assert_nothing_stored(&fx, &server).await;
}

#[tokio::test]
async fn read_failure_on_retrieve_is_an_error_and_the_server_keeps_serving() {
    let (fx, server) = start(ArchiveConfig::default()).await;
    let client = http::client();
    let ct = Ct::new_study();
    let bytes = ct.to_bytes();
    let resp = http::stow(&client, &server.base, std::slice::from_ref(&bytes)).await;
    assert_eq!(resp.status().as_u16(), 200);

    fx.faults.fail_read.store(true, Ordering::SeqCst);
    let url = http::instance_url(&server.base, &ct.study_uid, &ct.series_uid, &ct.sop_uid);
    // WADO-RS opens the first object before the status line goes out: a clean, retryable 503.
    let resp = client.get(&url).header(reqwest::header::ACCEPT, "multipart/related; type=\"application/dicom\"").send().await;
    assert_retryable_503(resp.expect("WADO-RS"), "WADO-RS with failing reads").await;
    // WADO-URI opens the object before answering: a clean, retryable 503.
    let wado_uri = format!(
        "{}/wado?requestType=WADO&studyUID={}&seriesUID={}&objectUID={}&contentType=application/dicom",
        server.base, ct.study_uid, ct.series_uid, ct.sop_uid
    );
    assert_retryable_503(client.get(&wado_uri).send().await.expect("WADO-URI"), "WADO-URI with failing reads").await;
    // The server keeps serving: query works during the fault, retrieve after it.
    let studies = http::qido_studies(&client, &server.base, &format!("StudyInstanceUID={}", ct.study_uid)).await;
    assert_eq!(studies.len(), 1);
    fx.faults.fail_read.store(false, Ordering::SeqCst);
    assert_stored_intact(&client, &server.base, &ct, &bytes).await;
}

#[tokio::test]
async fn catalog_failure_is_retryable_and_deletes_the_orphan_blob() {
    let fx = FaultyFixture::new().await;
    let catalog = Arc::new(FailingCatalog { inner: fx.sqlite.clone(), fail_register: AtomicBool::new(true) });
    let server = inproc::serve(fx.archive(catalog.clone(), ArchiveConfig::default())).await;
    let client = http::client();
    let ct = Ct::new_study();
    let bytes = ct.to_bytes();

    let resp = http::stow(&client, &server.base, std::slice::from_ref(&bytes)).await;
    assert_retryable_503(resp, "STOW with a failing catalog").await;
    assert_nothing_stored(&fx, &server).await;

    catalog.fail_register.store(false, Ordering::SeqCst);
    let resp = http::stow(&client, &server.base, std::slice::from_ref(&bytes)).await;
    assert_eq!(resp.status().as_u16(), 200);
    assert_stored_intact(&client, &server.base, &ct, &bytes).await;
}

#[tokio::test]
async fn store_cap_answers_busy_at_once_instead_of_stalling() {
    let (_fx, server) = start(ArchiveConfig { max_concurrent_stores: 1, ..Default::default() }).await;
    let client = http::client();
    let held = Ct::new_study();
    let held_bytes = held.to_bytes();
    let (first, rest) = held_bytes.split_at(held_bytes.len() / 2);

    // Hold the only store slot with a body that stops half way.
    let slow = StreamedStow::start(&client, &server.base);
    slow.send(&http::part_head(true));
    slow.send(first);
    wait_until("the first store holds the slot", || async { server.archive.stores_in_progress() == 1 }).await;

    let other = held.next_instance();
    let resp = http::stow(&client, &server.base, &[other.to_bytes()]).await;
    assert_retryable_503(resp, "STOW over the store cap").await;

    slow.send(rest);
    slow.send(&http::closing());
    let resp = slow.finish().await;
    assert_eq!(resp.status().as_u16(), 200, "the held store: {}", resp.text().await.unwrap_or_default());
    assert_stored_intact(&client, &server.base, &held, &held_bytes).await;

    // The slot is free again.
    let resp = http::stow(&client, &server.base, &[other.to_bytes()]).await;
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(server.archive.catalog().count_instances().await.expect("counting"), 2);
}

#[tokio::test]
async fn client_abort_mid_object_stores_nothing() {
    let (fx, server) = start(ArchiveConfig::default()).await;
    let client = http::client();
    let ct = Ct::new_study().with_size(256, 256);
    let bytes = ct.to_bytes();

    let stow = StreamedStow::start(&client, &server.base);
    stow.send(&http::part_head(true));
    stow.send(&bytes[..bytes.len() / 2]);
    wait_until("the store has started", || async { server.archive.stores_in_progress() == 1 }).await;
    // Cut the connection mid-body (the body stream itself never ends).
    let mut stow = stow;
    stow.response.abort();
    assert!((&mut stow.response).await.is_err_and(|e| e.is_cancelled()), "the request was cut, not completed");
    drop(stow);

    assert_nothing_stored(&fx, &server).await;
    // The server serves the next request, and the same object can be stored whole.
    let resp = http::stow(&client, &server.base, std::slice::from_ref(&bytes)).await;
    assert_eq!(resp.status().as_u16(), 200);
    assert_stored_intact(&client, &server.base, &ct, &bytes).await;
}
