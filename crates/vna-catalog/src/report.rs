//! Reports sent through the API, linked to a study: written by the writer with a
//! `report-added` change (so every node's search indexer sees them, in feed order), read by
//! study for the index; the `search-reindex` change that has every node rebuild its index, and
//! the studies by key that a rebuild walks.

use crate::db::{Pool, Tx};
use crate::{AuditEvent, CatalogError, ChangeKind};

/// A report to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewReport {
    pub study_uid: String,
    /// `text` or `hl7`.
    pub source: String,
    /// ISO 639-1, or empty.
    pub lang: String,
    pub body: String,
    pub at_ms: i64,
    /// Recorded in the same transaction.
    pub audit: Option<AuditEvent>,
}

/// A recorded report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredReport {
    pub pk: i64,
    pub study_uid: String,
    pub source: String,
    pub lang: String,
    pub body: String,
    pub received_at_ms: i64,
}

/// Records a report and its change; its key.
pub(crate) async fn add(tx: &mut Tx<'_>, r: &NewReport) -> Result<i64, CatalogError> {
    let row = tx
        .fetch_one(
            "report: add",
            "INSERT INTO report (study_uid, source, lang, body, received_at_ms) VALUES (?, ?, ?, ?, ?) RETURNING pk",
            &[r.study_uid.as_str().into(), r.source.as_str().into(), r.lang.as_str().into(), r.body.as_str().into(), r.at_ms.into()],
        )
        .await?;
    let pk = row.cols().int("report pk")?;
    // No instance: instance_pk 0.
    tx.execute(
        "report: append change",
        "INSERT INTO change_feed (kind, study_uid, series_uid, sop_uid, instance_pk, at_ms) VALUES (?, ?, '', '', 0, ?)",
        &[ChangeKind::ReportAdded.as_str().into(), r.study_uid.as_str().into(), r.at_ms.into()],
    )
    .await?;
    if let Some(a) = &r.audit {
        crate::audit::insert(tx, a).await?;
    }
    Ok(pk)
}

/// A study's reports, oldest first.
pub(crate) async fn of_study(pool: &Pool, study_uid: &str) -> Result<Vec<StoredReport>, CatalogError> {
    let rows = pool
        .fetch_all(
            "reports of a study",
            "SELECT pk, study_uid, source, lang, body, received_at_ms FROM report WHERE study_uid = ? ORDER BY pk",
            &[study_uid.into()],
        )
        .await?;
    rows.iter()
        .map(|row| {
            let mut c = row.cols();
            Ok(StoredReport {
                pk: c.int("report pk")?,
                study_uid: c.text("report study")?,
                source: c.text("report source")?,
                lang: c.text("report lang")?,
                body: c.text("report body")?,
                received_at_ms: c.int("report time")?,
            })
        })
        .collect()
}

/// The study of the report with key `pk`, if there is one.
pub(crate) async fn study_of(pool: &Pool, pk: i64) -> Result<Option<String>, CatalogError> {
    let rows = pool.fetch_all("report's study", "SELECT study_uid FROM report WHERE pk = ?", &[pk.into()]).await?;
    rows.first().map(|r| r.cols().text("report study")).transpose()
}

/// Asks every node's search indexer to rebuild its index from the catalog: a `search-reindex`
/// change, met by each in feed order.
pub(crate) async fn request_reindex(tx: &mut Tx<'_>, at_ms: i64) -> Result<i64, CatalogError> {
    let row = tx
        .fetch_one(
            "search: request reindex",
            "INSERT INTO change_feed (kind, study_uid, series_uid, sop_uid, instance_pk, at_ms) VALUES (?, '', '', '', 0, ?) RETURNING seq",
            &[ChangeKind::SearchReindex.as_str().into(), at_ms.into()],
        )
        .await?;
    row.cols().int("change seq")
}

/// Studies by key after `after_pk`, in key order: (key, Study Instance UID).
pub(crate) async fn studies_after(pool: &Pool, after_pk: i64, limit: u32) -> Result<Vec<(i64, String)>, CatalogError> {
    let rows = pool
        .fetch_all(
            "studies after",
            "SELECT pk, study_uid FROM study WHERE pk > ? ORDER BY pk LIMIT ?",
            &[after_pk.into(), i64::from(limit).into()],
        )
        .await?;
    rows.iter()
        .map(|row| {
            let mut c = row.cols();
            Ok((c.int("study pk")?, c.text("study uid")?))
        })
        .collect()
}
