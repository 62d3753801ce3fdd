//! Search by meaning (`vna-search`) inside the archive: each node's index of studies, fed from
//! the catalog's change feed, and searched like every query — the principal's permission
//! checked, its visibility a condition of the index query itself, the search audited.
//!
//! The index is derived, never the source of truth. A study's document is rebuilt whole from
//! the catalog whenever the feed names the study (stored, replaced, rejected, expired: a study
//! without a live instance leaves the index), and each batch is committed with the feed
//! position it reached, so a crash loses no position and repeats at most one batch.
//!
//! A rebuild (a `search-reindex` change that `vna search reindex` or the admin API appends, or
//! an empty index beside a catalog with history) writes every study into the index's next
//! generation while the current one keeps answering, commits it at the change's position and
//! switches to it; each node rebuilds its own when its indexer meets the change.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use vna_catalog::{ChangeKind, Filter, Key, Level, Matcher, Query, Visibility};
use vna_search::{SearchIndex, SearchRequest, SearchResults, StudyDoc};

use crate::audit::{self, EventId};
use crate::{Archive, ArchiveError, Permission, Principal};

/// Bytes of report text kept in memory, at most.
const REPORT_TEXT_BYTES: usize = 16 << 20;

/// Changes read from the feed per batch (one commit each).
const BATCH: u32 = 1000;

/// The node's index and what the indexer knows of the feed.
#[derive(Debug)]
pub struct Search {
    index: RwLock<Arc<SearchIndex>>,
    /// A rebuild from the catalog is under way.
    rebuilding: AtomicBool,
    /// Batches committed since the node started.
    batches: AtomicI64,
    /// How old the oldest change of the last batch was when it became searchable (ms).
    last_lag_ms: AtomicI64,
    /// The text of report instances already read, by instance version key, and its bytes.
    report_texts: std::sync::Mutex<(std::collections::HashMap<i64, String>, usize)>,
}

impl Search {
    pub fn new(index: SearchIndex) -> Search {
        Search {
            index: RwLock::new(Arc::new(index)),
            rebuilding: AtomicBool::new(false),
            batches: AtomicI64::new(0),
            last_lag_ms: AtomicI64::new(0),
            report_texts: Default::default(),
        }
    }

    pub(crate) fn cached_text(&self, pk: i64) -> Option<String> {
        self.report_texts.lock().unwrap_or_else(|e| e.into_inner()).0.get(&pk).cloned()
    }

    /// Keeps a report's text; the cache starts over past [`REPORT_TEXT_BYTES`].
    pub(crate) fn remember_text(&self, pk: i64, text: &str) {
        let mut guard = self.report_texts.lock().unwrap_or_else(|e| e.into_inner());
        let (texts, bytes) = &mut *guard;
        if *bytes + text.len() > REPORT_TEXT_BYTES {
            texts.clear();
            *bytes = 0;
        }
        *bytes += text.len();
        texts.insert(pk, text.to_owned());
    }

    fn index(&self) -> Arc<SearchIndex> {
        self.index.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Where the index stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchStatus {
    /// The change-feed position the index reflects.
    pub position: i64,
    /// The feed's latest position.
    pub head: i64,
    /// Changes not indexed yet.
    pub lag: i64,
    /// Studies in the index.
    pub studies: u64,
    /// A rebuild from the catalog is under way (the index in use answers meanwhile).
    pub rebuilding: bool,
    /// Batches of the change feed committed since the node started.
    pub batches: i64,
    /// How long the oldest change of the last batch waited to become searchable, in ms: an
    /// upper bound of the lag of every change in it.
    pub last_lag_ms: i64,
}

impl Archive {
    fn search(&self) -> Result<&Search, ArchiveError> {
        self.config.search.as_deref().ok_or(ArchiveError::NotFound { what: "search (search.enabled is off on this node)" })
    }

    /// Studies matching a text query and filters, among those `who` may see (PS3.18 has no
    /// such transaction: this is the archive's own `/api/search`).
    pub async fn search_text(&self, who: &Principal, req: SearchRequest) -> Result<SearchResults, ArchiveError> {
        self.require(who, Permission::Read).await?;
        let search = self.search()?;
        if who.visibility().only.is_some() {
            // A link's scope is one study, series or instance: not a collection to search.
            return Err(ArchiveError::Forbidden { needed: Permission::Read });
        }
        let tenants: Option<Vec<String>> = who.tenants().map(<[String]>::to_vec);
        let index = search.index();
        let patient = req.patient_id.clone();
        let results = tokio::task::spawn_blocking(move || index.search(&req, tenants.as_deref()))
            .await
            .map_err(|_| ArchiveError::Task { step: "searching" })?
            .map_err(search_error)?;
        let mut e = audit::event(who, EventId::Query, "E", &[], "text search of studies");
        e.patients.extend(patient);
        self.audited(who, e).await?;
        Ok(results)
    }

    /// Where the index stands against the change feed (administrators).
    pub async fn search_status(&self, who: &Principal) -> Result<SearchStatus, ArchiveError> {
        self.require(who, Permission::Admin).await?;
        let search = self.search()?;
        let index = search.index();
        let position = index.position();
        let head = self.catalog.last_change_seq().await.map_err(ArchiveError::catalog("reading the change feed"))?;
        let rebuilding = search.rebuilding.load(Ordering::Relaxed);
        Ok(SearchStatus {
            position,
            head,
            lag: (head - position).max(0),
            studies: index.len(),
            rebuilding,
            batches: search.batches.load(Ordering::Relaxed),
            last_lag_ms: search.last_lag_ms.load(Ordering::Relaxed),
        })
    }

    /// A study's document for the index, from the catalog: `None` when no live instance of it
    /// is left (expired, rejected).
    pub async fn study_document(&self, study_uid: &vna_dicom::uid::StudyUid) -> Result<Option<StudyDoc>, ArchiveError> {
        // Live instances only: rejected ones leave the index like they leave every clinical
        // read. Read by series (one row each, not one per instance: a study of thousands of
        // images is read again whenever one arrives).
        let live = Visibility { tenants: None, only: None, rejected: false };
        let of_study = || Filter { key: Key::StudyUid, matcher: Matcher::Single(study_uid.to_string()) };
        let q = Query { level: Level::Series, filters: vec![of_study()], limit: None, offset: 0 };
        let series = self.catalog.query_series(&q, &live).await.map_err(ArchiveError::catalog("reading a study to index"))?;
        // A study left with Key Object Selections only (the IOCM rejection note of everything
        // else, typically) has nothing to find.
        if series.iter().all(|s| s.series.modality == "KO") {
            return Ok(None);
        }
        let Some(first) = series.first() else { return Ok(None) };
        let tenant = self.catalog.study_tenant(study_uid).await.map_err(ArchiveError::catalog("reading a study's tenant"))?;
        let mut doc = StudyDoc {
            study_uid: study_uid.to_string(),
            tenant: tenant.unwrap_or_default(),
            patient_id: first.patient.patient_id.clone(),
            patient_name: first.patient.patient_name.clone(),
            patient_sex: first.patient.patient_sex.clone(),
            patient_age_years: age_at(&first.patient.patient_birth_date, &first.study.study_date),
            study_date: first.study.study_date.parse().ok(),
            accession: first.study.accession_number.clone(),
            study_description: first.study.study_description.clone(),
            referring_physician: first.study.referring_physician_name.clone(),
            ..StudyDoc::default()
        };
        let mut modalities = BTreeSet::new();
        let mut other = BTreeSet::new();
        for row in &series {
            if !row.series.modality.is_empty() {
                modalities.insert(row.series.modality.clone());
            }
            for text in [&row.series.series_description, &row.series.body_part_examined, &row.series.department_name] {
                if !text.trim().is_empty() {
                    other.insert(text.trim().to_owned());
                }
            }
            if doc.institution.is_empty() && !row.series.institution_name.trim().is_empty() {
                doc.institution = row.series.institution_name.trim().to_owned();
            }
        }
        doc.modalities = modalities.into_iter().collect();
        doc.other_text = other.into_iter().collect();
        let report_classes = vna_search::SR_CLASSES.iter().copied().chain([vna_search::PDF_CLASS]).map(str::to_owned).collect();
        let q = Query {
            level: Level::Instance,
            filters: vec![of_study(), Filter { key: Key::SopClassUid, matcher: Matcher::List(report_classes) }],
            limit: None,
            offset: 0,
        };
        let reports = self.catalog.query_instances(&q, &live).await.map_err(ArchiveError::catalog("reading a study's reports"))?;
        doc.reports = self.stored_reports(&reports).await?;
        doc.reports.extend(self.sent_reports(study_uid).await?);
        Ok(Some(doc))
    }

    /// Index the next batch of the change feed; the number of changes consumed (0: caught up).
    /// A `search-reindex` change in the batch (or an index at position 0 beside a feed that is
    /// not) rebuilds the index from the catalog instead.
    pub async fn index_changes(&self) -> Result<usize, ArchiveError> {
        let search = self.search()?;
        let index = search.index();
        let position = index.position();
        if position == 0 {
            let head = self.catalog.last_change_seq().await.map_err(ArchiveError::catalog("reading the change feed"))?;
            if head > 0 {
                // A new or discarded index beside a catalog with history: build it from the
                // catalog, not by replaying every change since the first.
                self.rebuild_search(head).await?;
                return Ok(1);
            }
        }
        let changes = self.catalog.changes_since(position, BATCH).await.map_err(ArchiveError::catalog("reading the change feed"))?;
        let Some(last) = changes.last().map(|c| c.seq) else { return Ok(0) };
        if let Some(reindex) = changes.iter().rev().find(|c| c.kind == ChangeKind::SearchReindex) {
            // Everything before it is in the catalog the rebuild reads.
            self.rebuild_search(reindex.seq).await?;
            return Ok(changes.iter().filter(|c| c.seq <= reindex.seq).count());
        }
        let studies: BTreeSet<&str> = changes
            .iter()
            // A prior version or a move changes nothing a search sees.
            .filter(|c| !matches!(c.kind, ChangeKind::PriorVersionRecorded | ChangeKind::InstanceMoved))
            .map(|c| c.study_uid.as_str())
            .collect();
        let mut docs = Vec::with_capacity(studies.len());
        for uid in studies {
            docs.push(self.indexed_study(uid).await?);
        }
        write_documents(index, docs, Some(last)).await?;
        let oldest = changes.iter().map(|c| c.at_ms).min().unwrap_or(0);
        search.last_lag_ms.store((crate::now_ms() - oldest).max(0), Ordering::Relaxed);
        search.batches.fetch_add(1, Ordering::Relaxed);
        Ok(changes.len())
    }

    /// What the index is to hold of a study: its document, or nothing (`None`: remove it).
    async fn indexed_study(&self, uid: &str) -> Result<(String, Option<StudyDoc>), ArchiveError> {
        let Ok(study) = vna_dicom::uid::StudyUid::new(uid) else {
            tracing::warn!("the catalog names a study by an invalid UID; skipped by the search index");
            return Ok((uid.to_owned(), None));
        };
        Ok((uid.to_owned(), self.study_document(&study).await?))
    }

    /// Rebuild the index from the catalog as of change `at` (or later): every study into the
    /// next generation, committed at `at`, then made current. Searches go on meanwhile against
    /// the index in use; a crash before the switch leaves that one, which meets the same
    /// request again.
    async fn rebuild_search(&self, at: i64) -> Result<(), ArchiveError> {
        let search = self.search()?;
        let old = search.index();
        let fresh = Arc::new(old.next_generation().map_err(search_error)?);
        search.rebuilding.store(true, Ordering::Relaxed);
        let started = std::time::Instant::now();
        let mut after = 0;
        let mut studies = 0u64;
        let result = async {
            loop {
                let page = self.catalog.studies_after(after, 500).await.map_err(ArchiveError::catalog("listing studies to index"))?;
                let Some(&(last, _)) = page.last() else { break };
                let mut docs = Vec::with_capacity(page.len());
                for (_, uid) in &page {
                    docs.push(self.indexed_study(uid).await?);
                }
                write_documents(fresh.clone(), docs, None).await?;
                studies += page.len() as u64;
                after = last;
            }
            let committing = fresh.clone();
            tokio::task::spawn_blocking(move || {
                committing.commit(at)?;
                committing.make_current()?;
                committing.remove_other_generations()
            })
            .await
            .map_err(|_| ArchiveError::Task { step: "committing the rebuilt search index" })?
            .map_err(search_error)
        }
        .await;
        search.rebuilding.store(false, Ordering::Relaxed);
        result?;
        *search.index.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        tracing::info!(studies, at, seconds = started.elapsed().as_secs_f64(), "search index rebuilt from the catalog");
        Ok(())
    }

    /// Ask every node to rebuild its search index from the catalog (a `search-reindex` change
    /// each meets in feed order); the change's seq. Administrators.
    pub async fn request_search_reindex(&self, who: &Principal) -> Result<i64, ArchiveError> {
        self.require(who, Permission::Admin).await?;
        let seq = self.catalog.request_search_reindex(crate::now_ms()).await.map_err(ArchiveError::catalog("requesting a reindex"))?;
        tracing::info!(seq, by = %who.id, "search reindex requested");
        Ok(seq)
    }

    /// Follow the change feed until `stop`: after a full batch the next at once (a backlog
    /// drains at the index's pace), after a partial or empty one a pause of `poll`, so that a
    /// steady stream of stores is committed a batch per `poll` — an index commit flushes
    /// several files, and one per stored instance would take the disk from ingest — and after
    /// a failure a pause of at least 2 s (logged; the position stays where the last commit
    /// left it).
    pub async fn run_search_indexer(self: Arc<Self>, poll: Duration, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            let wait = match self.index_changes().await {
                Ok(n) if n >= BATCH as usize => Duration::ZERO,
                Ok(_) => poll,
                Err(e) => {
                    tracing::warn!(error = %e, "search indexer: batch failed; retrying");
                    poll.max(Duration::from_secs(2))
                }
            };
            if *stop.borrow() {
                return;
            }
            if !wait.is_zero() {
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.changed() => return,
                }
            }
        }
    }
}

/// Analyses and writes documents (removing the studies without one), then commits at `commit`
/// if given: on the blocking pool, for analysing reports is CPU work.
async fn write_documents(index: Arc<SearchIndex>, docs: Vec<(String, Option<StudyDoc>)>, commit: Option<i64>) -> Result<(), ArchiveError> {
    tokio::task::spawn_blocking(move || {
        for (uid, doc) in docs {
            match doc {
                Some(doc) => index.upsert(&doc)?,
                None => index.remove(&uid),
            }
        }
        commit.map_or(Ok(()), |position| index.commit(position))
    })
    .await
    .map_err(|_| ArchiveError::Task { step: "writing the search index" })?
    .map_err(search_error)
}

fn search_error(e: vna_search::SearchError) -> ArchiveError {
    match e {
        vna_search::SearchError::BadRequest(why) => ArchiveError::BadQuery { why },
        other => {
            tracing::error!(error = %other, "search index failed");
            ArchiveError::Task { step: "using the search index" }
        }
    }
}

/// Whole years between a birth date and a study date (both `YYYYMMDD`).
fn age_at(birth: &str, at: &str) -> Option<u32> {
    let years = vna_lifecycle::years_between(vna_lifecycle::parse_date(birth)?, vna_lifecycle::parse_date(at)?)?;
    u32::try_from(years).ok()
}

#[cfg(test)]
mod tests {
    use super::age_at;

    #[test]
    fn age_counts_whole_years() {
        assert_eq!(age_at("19800615", "20240614"), Some(43));
        assert_eq!(age_at("19800615", "20240615"), Some(44));
        assert_eq!(age_at("", "20240615"), None);
        assert_eq!(age_at("20250101", "20240101"), None);
    }
}
