//! The one implementation of [`Catalog`](crate::Catalog) over [`db::Pool`](crate::db::Pool), wired to
//! each backend type (`SqliteCatalog`, `PostgresCatalog`) by `impl_catalog!`: every method hands
//! over to the module that owns it (the writer, `read`, `jobs`, `expiry`, `audit`, …).

/// Implements [`Catalog`](crate::Catalog) for a backend type holding `pool` and `registrar`.
macro_rules! impl_catalog {
    ($ty:ty) => {
        #[async_trait::async_trait]
        impl $crate::Catalog for $ty {
            async fn register_after(
                &self,
                new: &$crate::NewInstance,
                policy: $crate::VersionPolicy,
                durable: $crate::Durable,
            ) -> Result<$crate::RegisterOutcome, $crate::CatalogError> {
                self.registrar.register(new, policy, durable).await
            }
            async fn current_instance(
                &self,
                sop: &vna_dicom::uid::SopInstanceUid,
                v: &$crate::Visibility,
            ) -> Result<Option<$crate::InstanceRow>, $crate::CatalogError> {
                $crate::read::current_instance(&self.pool, sop, v).await
            }
            async fn versions_of(
                &self,
                sops: &[vna_dicom::uid::SopInstanceUid],
                v: &$crate::Visibility,
            ) -> Result<Vec<$crate::InstanceRow>, $crate::CatalogError> {
                $crate::read::versions_of(&self.pool, sops, v).await
            }
            async fn instance_versions(
                &self,
                sop: &vna_dicom::uid::SopInstanceUid,
                v: &$crate::Visibility,
            ) -> Result<Vec<$crate::InstanceRow>, $crate::CatalogError> {
                $crate::read::instance_versions(&self.pool, sop, v).await
            }
            async fn instances_in(
                &self,
                scope: &$crate::Scope,
                v: &$crate::Visibility,
            ) -> Result<Vec<$crate::InstanceRow>, $crate::CatalogError> {
                $crate::read::instances_in(&self.pool, scope, v).await
            }
            async fn metadata(&self, pks: &[i64]) -> Result<Vec<(i64, String)>, $crate::CatalogError> {
                $crate::read::metadata(&self.pool, pks).await
            }
            async fn frames(&self, pk: i64, numbers: &[u32]) -> Result<Option<Vec<Vec<$crate::ByteRange>>>, $crate::CatalogError> {
                $crate::read::frames(&self.pool, pk, numbers).await
            }
            async fn query_patients(
                &self,
                q: &$crate::Query,
                v: &$crate::Visibility,
            ) -> Result<Vec<$crate::PatientRow>, $crate::CatalogError> {
                $crate::read::query_patients(&self.pool, q, v).await
            }
            async fn query_studies(
                &self,
                q: &$crate::Query,
                v: &$crate::Visibility,
            ) -> Result<Vec<$crate::StudyRow>, $crate::CatalogError> {
                $crate::read::query_studies(&self.pool, q, v).await
            }
            async fn query_series(
                &self,
                q: &$crate::Query,
                v: &$crate::Visibility,
            ) -> Result<Vec<$crate::SeriesRow>, $crate::CatalogError> {
                $crate::read::query_series(&self.pool, q, v).await
            }
            async fn query_instances(
                &self,
                q: &$crate::Query,
                v: &$crate::Visibility,
            ) -> Result<Vec<$crate::InstanceRow>, $crate::CatalogError> {
                $crate::read::query_instances(&self.pool, q, v).await
            }
            async fn query_instances_after(
                &self,
                q: &$crate::Query,
                after_pk: i64,
                limit: u32,
                v: &$crate::Visibility,
            ) -> Result<Vec<$crate::InstanceRow>, $crate::CatalogError> {
                $crate::read::query_instances_after(&self.pool, q, after_pk, limit, v).await
            }
            async fn rejections(
                &self,
                v: &$crate::Visibility,
                limit: u32,
                offset: u32,
            ) -> Result<Vec<$crate::RejectionRecord>, $crate::CatalogError> {
                $crate::rejection::rejections(&self.pool, v, limit, offset).await
            }
            async fn changes_since(&self, after: i64, limit: u32) -> Result<Vec<$crate::Change>, $crate::CatalogError> {
                $crate::read::changes_since(&self.pool, after, limit).await
            }
            async fn last_change_seq(&self) -> Result<i64, $crate::CatalogError> {
                $crate::read::last_change_seq(&self.pool).await
            }
            async fn last_instance_key(&self) -> Result<i64, $crate::CatalogError> {
                $crate::read::last_instance_key(&self.pool).await
            }
            async fn count_instances(&self) -> Result<i64, $crate::CatalogError> {
                $crate::read::count_instances(&self.pool).await
            }
            async fn count_drift(&self) -> Result<i64, $crate::CatalogError> {
                $crate::read::count_drift(&self.pool).await
            }
            async fn latest_study_date(&self, patient_id: &str, issuer: &str) -> Result<Option<String>, $crate::CatalogError> {
                $crate::read::latest_study_date(&self.pool, patient_id, issuer).await
            }
            async fn study_tenant(&self, study: &vna_dicom::uid::StudyUid) -> Result<Option<String>, $crate::CatalogError> {
                $crate::security::study_tenant(&self.pool, study).await
            }
            async fn before_store(
                &self,
                study: &vna_dicom::uid::StudyUid,
                sop: &vna_dicom::uid::SopInstanceUid,
            ) -> Result<(Option<String>, Option<$crate::InstanceRow>), $crate::CatalogError> {
                self.settle_before_store(study, sop).await
            }
            async fn create_api_key(&self, key: &$crate::ApiKey) -> Result<(), $crate::CatalogError> {
                $crate::security::create_api_key(&self.pool, key).await
            }
            async fn api_key(&self, id: &str) -> Result<Option<$crate::ApiKey>, $crate::CatalogError> {
                $crate::security::api_key(&self.pool, id).await
            }
            async fn api_keys(&self) -> Result<Vec<$crate::ApiKey>, $crate::CatalogError> {
                $crate::security::api_keys(&self.pool).await
            }
            async fn revoke_api_key(&self, id: &str, at_ms: i64) -> Result<bool, $crate::CatalogError> {
                $crate::security::revoke_api_key(&self.pool, id, at_ms).await
            }
            async fn enqueue_job(&self, job: &$crate::NewJob) -> Result<i64, $crate::CatalogError> {
                match self.registrar.job($crate::jobs::JobOp::Enqueue(job.clone())).await? {
                    $crate::jobs::JobReply::Enqueued(id) => Ok(id),
                    _ => Err($crate::CatalogError::Corrupt { what: "job reply" }),
                }
            }
            async fn enqueue_scheduled(
                &self,
                name: &str,
                slot: i64,
                busy_kinds: &[String],
                jobs: &[$crate::NewJob],
            ) -> Result<Option<Vec<i64>>, $crate::CatalogError> {
                let op = $crate::jobs::JobOp::EnqueueScheduled {
                    name: name.to_owned(),
                    slot,
                    busy_kinds: busy_kinds.to_vec(),
                    jobs: jobs.to_vec(),
                };
                match self.registrar.job(op).await? {
                    $crate::jobs::JobReply::Scheduled(ids) => Ok(ids),
                    _ => Err($crate::CatalogError::Corrupt { what: "job reply" }),
                }
            }
            async fn claim_job(
                &self,
                owner: &str,
                kinds: &[String],
                now_ms: i64,
                lease_ms: i64,
            ) -> Result<Option<$crate::JobRow>, $crate::CatalogError> {
                let op = $crate::jobs::JobOp::Claim { owner: owner.to_owned(), kinds: kinds.to_vec(), now_ms, lease_ms };
                match self.registrar.job(op).await? {
                    $crate::jobs::JobReply::Claimed(job) => Ok(job.map(|j| *j)),
                    _ => Err($crate::CatalogError::Corrupt { what: "job reply" }),
                }
            }
            async fn renew_job(
                &self,
                id: i64,
                owner: &str,
                now_ms: i64,
                lease_ms: i64,
                progress: &$crate::Progress,
            ) -> Result<$crate::Renewal, $crate::CatalogError> {
                let op = $crate::jobs::JobOp::Renew { id, owner: owner.to_owned(), now_ms, lease_ms, progress: progress.clone() };
                match self.registrar.job(op).await? {
                    $crate::jobs::JobReply::Renewed(r) => Ok(r),
                    _ => Err($crate::CatalogError::Corrupt { what: "job reply" }),
                }
            }
            async fn finish_job(
                &self,
                id: i64,
                owner: &str,
                state: $crate::JobState,
                outcome: &str,
                progress: &$crate::Progress,
                now_ms: i64,
            ) -> Result<bool, $crate::CatalogError> {
                let op = $crate::jobs::JobOp::Finish {
                    id,
                    owner: owner.to_owned(),
                    state,
                    outcome: outcome.to_owned(),
                    progress: progress.clone(),
                    now_ms,
                };
                match self.registrar.job(op).await? {
                    $crate::jobs::JobReply::Ended(held) => Ok(held),
                    _ => Err($crate::CatalogError::Corrupt { what: "job reply" }),
                }
            }
            async fn release_job(&self, id: i64, owner: &str, progress: &$crate::Progress) -> Result<bool, $crate::CatalogError> {
                let op = $crate::jobs::JobOp::Release { id, owner: owner.to_owned(), progress: progress.clone() };
                match self.registrar.job(op).await? {
                    $crate::jobs::JobReply::Ended(held) => Ok(held),
                    _ => Err($crate::CatalogError::Corrupt { what: "job reply" }),
                }
            }
            async fn cancel_job(&self, id: i64, now_ms: i64) -> Result<Option<$crate::JobState>, $crate::CatalogError> {
                match self.registrar.job($crate::jobs::JobOp::Cancel { id, now_ms }).await? {
                    $crate::jobs::JobReply::Cancel(state) => Ok(state),
                    _ => Err($crate::CatalogError::Corrupt { what: "job reply" }),
                }
            }
            async fn job(&self, id: i64) -> Result<Option<$crate::JobRow>, $crate::CatalogError> {
                $crate::jobs::job(&self.pool, id).await
            }
            async fn jobs(&self, q: &$crate::JobQuery) -> Result<Vec<$crate::JobRow>, $crate::CatalogError> {
                $crate::jobs::jobs(&self.pool, q).await
            }
            async fn job_failures(&self, id: i64, limit: u32, offset: u32) -> Result<Vec<$crate::JobFailure>, $crate::CatalogError> {
                $crate::jobs::job_failures(&self.pool, id, limit, offset).await
            }
            async fn instances_after(
                &self,
                after_pk: i64,
                limit: u32,
                v: &$crate::Visibility,
            ) -> Result<Vec<$crate::InstanceRow>, $crate::CatalogError> {
                $crate::expiry::instances_after(&self.pool, after_pk, limit, v).await
            }
            async fn mark_legal_hold(&self, pk: i64, on: bool) -> Result<bool, $crate::CatalogError> {
                match self.registrar.job($crate::jobs::JobOp::MarkHold { pk, on }).await? {
                    $crate::jobs::JobReply::Ended(found) => Ok(found),
                    _ => Err($crate::CatalogError::Corrupt { what: "job reply" }),
                }
            }
            async fn expire_instance(&self, e: &$crate::Expiry) -> Result<$crate::ExpiryOutcome, $crate::CatalogError> {
                match self.registrar.job($crate::jobs::JobOp::Expire(Box::new(e.clone()))).await? {
                    $crate::jobs::JobReply::Expired(t) => Ok(t),
                    _ => Err($crate::CatalogError::Corrupt { what: "job reply" }),
                }
            }
            async fn move_version(&self, m: &$crate::TierMove) -> Result<Option<$crate::Tombstone>, $crate::CatalogError> {
                match self.registrar.job($crate::jobs::JobOp::Move(Box::new(m.clone()))).await? {
                    $crate::jobs::JobReply::Moved(t) => Ok(t.map(|t| *t)),
                    _ => Err($crate::CatalogError::Corrupt { what: "job reply" }),
                }
            }
            async fn record_accesses(&self, pks: &[i64], at_ms: i64) -> Result<u64, $crate::CatalogError> {
                if pks.is_empty() {
                    return Ok(0);
                }
                match self.registrar.job($crate::jobs::JobOp::Accessed { pks: pks.to_vec(), at_ms }).await? {
                    $crate::jobs::JobReply::Accesses(n) => Ok(n),
                    _ => Err($crate::CatalogError::Corrupt { what: "job reply" }),
                }
            }
            async fn add_report(&self, report: &$crate::NewReport) -> Result<i64, $crate::CatalogError> {
                match self.registrar.job($crate::jobs::JobOp::AddReport(Box::new(report.clone()))).await? {
                    $crate::jobs::JobReply::Report(pk) => Ok(pk),
                    _ => Err($crate::CatalogError::Corrupt { what: "job reply" }),
                }
            }
            async fn reports_of(&self, study_uid: &str) -> Result<Vec<$crate::StoredReport>, $crate::CatalogError> {
                $crate::report::of_study(&self.pool, study_uid).await
            }
            async fn report_study(&self, pk: i64) -> Result<Option<String>, $crate::CatalogError> {
                $crate::report::study_of(&self.pool, pk).await
            }
            async fn request_search_reindex(&self, at_ms: i64) -> Result<i64, $crate::CatalogError> {
                match self.registrar.job($crate::jobs::JobOp::RequestReindex { at_ms }).await? {
                    $crate::jobs::JobReply::Report(seq) => Ok(seq),
                    _ => Err($crate::CatalogError::Corrupt { what: "job reply" }),
                }
            }
            async fn studies_after(&self, after_pk: i64, limit: u32) -> Result<Vec<(i64, String)>, $crate::CatalogError> {
                $crate::report::studies_after(&self.pool, after_pk, limit).await
            }
            async fn mark_purged(&self, tombstone_pk: i64, now_ms: i64) -> Result<bool, $crate::CatalogError> {
                match self.registrar.job($crate::jobs::JobOp::Purged { pk: tombstone_pk, now_ms }).await? {
                    $crate::jobs::JobReply::Ended(done) => Ok(done),
                    _ => Err($crate::CatalogError::Corrupt { what: "job reply" }),
                }
            }
            async fn unpurged_tombstones(&self, after_pk: i64, limit: u32) -> Result<Vec<$crate::Tombstone>, $crate::CatalogError> {
                $crate::expiry::unpurged(&self.pool, after_pk, limit).await
            }
            async fn tombstones(
                &self,
                sop: &vna_dicom::uid::SopInstanceUid,
                v: &$crate::Visibility,
            ) -> Result<Vec<$crate::Tombstone>, $crate::CatalogError> {
                $crate::expiry::tombstones(&self.pool, sop.as_str(), v).await
            }
            async fn record_audit(&self, events: Vec<$crate::AuditEvent>) -> Result<(), $crate::CatalogError> {
                self.registrar.audit(events).await
            }
            async fn audit_events(&self, q: &$crate::AuditQuery) -> Result<Vec<$crate::AuditRecord>, $crate::CatalogError> {
                $crate::audit::query(&self.pool, q).await
            }
        }
    };
}
pub(crate) use impl_catalog;
