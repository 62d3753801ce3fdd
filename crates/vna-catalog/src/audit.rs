//! The audit trail as the catalog keeps it: append-only rows of DICOM PS3.15 A.5 events (the
//! database refuses updates and deletes), each with the patients and studies it concerns, so an
//! auditor can ask "who saw this patient" with an index. Events are written by the catalog's one
//! writer: a store's event in the same transaction as its registration, other events in the
//! next group commit, and the caller is answered only once its event is committed.

use crate::db::{Dialect, Pool, Tx, Value};
use crate::sqlbuild::SqlBuilder;
use crate::CatalogError;

/// One audit event (PS3.15 A.5.3): what happened, with which outcome, by whom, about what.
/// Codes are DCM codes (PS3.16 CID 400-403); the catalog does not interpret them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    pub at_ms: i64,
    /// EventID, e.g. `110112` (Query).
    pub event_id: String,
    /// EventTypeCode, e.g. `110122` (Login), if the event has one.
    pub event_type: Option<String>,
    /// EventActionCode: `C`, `R`, `U`, `D` or `E`.
    pub action: String,
    /// EventOutcomeIndicator: 0 success, 4 minor failure, 8 serious failure, 12 major failure.
    pub outcome: i32,
    /// The principal's id (never a patient's data) and kind.
    pub user_id: String,
    pub user_kind: String,
    /// Where the request came from: a network address, with the calling AE title for DIMSE.
    pub source: String,
    /// `dicomweb`, `dimse`, `admin`, `cli`.
    pub interface: String,
    /// Patient IDs and Study Instance UIDs concerned (ParticipantObjects).
    pub patients: Vec<String>,
    pub studies: Vec<String>,
    /// Instances concerned (0 for a query).
    pub instances: i64,
    /// What the event was, in words without patient data (the operation, query keys by name).
    pub detail: String,
}

/// An event as recorded, with its place in the trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub seq: i64,
    pub event: AuditEvent,
}

/// Which events an auditor asks for; every condition given must hold. Oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    pub patient: Option<String>,
    pub study: Option<String>,
    pub user: Option<String>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    pub after_seq: Option<i64>,
    pub limit: u32,
}

/// Appends `e` inside the writer's transaction.
pub(crate) async fn insert(tx: &mut Tx<'_>, e: &AuditEvent) -> Result<(), CatalogError> {
    let event_binds = event_binds(e);
    if tx.dialect() == Dialect::Postgres {
        if let Some((cte, binds)) = cte(e) {
            // The event and its patients and studies in one statement: a round trip where
            // there were two, for every store.
            tx.execute("audit: insert event and objects", &format!("WITH {cte} SELECT 1"), &binds).await?;
            return Ok(());
        }
    }
    let objects = objects(e);
    let row = tx.fetch_one("audit: insert event", &format!("{INSERT_EVENT} RETURNING seq"), &event_binds).await?;
    let seq = row.cols().int("audit seq")?;
    // The event's patients and studies in one statement per chunk.
    for chunk in objects.chunks(OBJECTS_PER_INSERT) {
        let mut sql = String::from("INSERT INTO audit_object (event_seq, kind, value) VALUES ");
        let mut binds = Vec::with_capacity(chunk.len() * 3);
        for (i, (kind, v)) in chunk.iter().enumerate() {
            sql.push_str(if i == 0 { "(?, ?, ?)" } else { ", (?, ?, ?)" });
            binds.extend([seq.into(), (*kind).into(), v.as_str().into()]);
        }
        tx.execute("audit: insert objects", &sql, &binds).await?;
    }
    Ok(())
}

/// PostgreSQL: the insert of `e` and of its objects as data-modifying CTEs (`audit_event AS
/// (…), audit_objects AS (…)`, with their binds in order), for a statement that writes more
/// (a store's registration); `None` when its objects are too many for one statement.
pub(crate) fn cte(e: &AuditEvent) -> Option<(String, Vec<Value>)> {
    let objects = objects(e);
    if objects.len() > OBJECTS_PER_INSERT {
        return None;
    }
    let mut binds = event_binds(e);
    let mut sql = format!("audit_event_row AS ({INSERT_EVENT} RETURNING seq)");
    if !objects.is_empty() {
        sql.push_str(
            ", audit_object_rows AS (INSERT INTO audit_object (event_seq, kind, value) \
             SELECT audit_event_row.seq, o.kind, o.value FROM audit_event_row, (VALUES ",
        );
        for (i, (kind, v)) in objects.iter().enumerate() {
            sql.push_str(if i == 0 { "(?, ?)" } else { ", (?, ?)" });
            binds.extend([(*kind).into(), v.as_str().into()]);
        }
        sql.push_str(") AS o (kind, value))");
    }
    Some((sql, binds))
}

/// What `e` names, as `audit_object` rows: its patients, then its studies.
fn objects(e: &AuditEvent) -> Vec<(&'static str, &String)> {
    e.patients.iter().map(|v| ("patient", v)).chain(e.studies.iter().map(|v| ("study", v))).collect()
}

/// The binds of [`INSERT_EVENT`] for `e`.
fn event_binds(e: &AuditEvent) -> Vec<Value> {
    vec![
        e.at_ms.into(),
        e.event_id.as_str().into(),
        e.event_type.clone().into(),
        e.action.as_str().into(),
        i64::from(e.outcome).into(),
        e.user_id.as_str().into(),
        e.user_kind.as_str().into(),
        e.source.as_str().into(),
        e.interface.as_str().into(),
        e.instances.into(),
        e.detail.as_str().into(),
    ]
}

const INSERT_EVENT: &str = "INSERT INTO audit_event (at_ms, event_id, event_type, action, outcome, user_id, user_kind, source, \
     interface, instances, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

/// Rows of one `audit_object` insert (three binds each, well under SQLite's limit).
const OBJECTS_PER_INSERT: usize = 200;

/// The events `q` asks for, oldest first, with their patients and studies.
pub(crate) async fn query(pool: &Pool, q: &AuditQuery) -> Result<Vec<AuditRecord>, CatalogError> {
    let mut b = SqlBuilder::new(pool.dialect());
    b.push(
        "SELECT e.seq, e.at_ms, e.event_id, e.event_type, e.action, e.outcome, e.user_id, e.user_kind, e.source, \
         e.interface, e.instances, e.detail FROM audit_event e WHERE 1 = 1",
    );
    for (kind, value) in [("patient", &q.patient), ("study", &q.study)] {
        if let Some(v) = value {
            b.push(" AND e.seq IN (SELECT o.event_seq FROM audit_object o WHERE o.kind = ").bind(kind).push(" AND o.value = ");
            b.bind(v.as_str()).push(")");
        }
    }
    if let Some(u) = &q.user {
        b.push(" AND e.user_id = ").bind(u.as_str());
    }
    if let Some(t) = q.since_ms {
        b.push(" AND e.at_ms >= ").bind(t);
    }
    if let Some(t) = q.until_ms {
        b.push(" AND e.at_ms < ").bind(t);
    }
    if let Some(s) = q.after_seq {
        b.push(" AND e.seq > ").bind(s);
    }
    b.push(" ORDER BY e.seq");
    b.limit_offset(Some(q.limit), 0);
    let rows = pool.fetch_built("audit: query events", &b.sql, &b.binds).await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let mut c = row.cols();
        let seq = c.int("audit seq")?;
        let event = AuditEvent {
            at_ms: c.int("audit time")?,
            event_id: c.text("audit event id")?,
            event_type: c.opt_text("audit event type")?,
            action: c.text("audit action")?,
            outcome: i32::try_from(c.int("audit outcome")?).map_err(|_| CatalogError::Corrupt { what: "audit outcome" })?,
            user_id: c.text("audit user")?,
            user_kind: c.text("audit user kind")?,
            source: c.text("audit source")?,
            interface: c.text("audit interface")?,
            patients: Vec::new(),
            studies: Vec::new(),
            instances: c.int("audit instances")?,
            detail: c.text("audit detail")?,
        };
        out.push(AuditRecord { seq, event });
    }
    if out.is_empty() {
        return Ok(out);
    }
    let mut b = SqlBuilder::new(pool.dialect());
    b.push("SELECT event_seq, kind, value FROM audit_object WHERE event_seq IN ")
        .bind_list(out.iter().map(|r| r.seq))
        .push(" ORDER BY event_seq, kind, value");
    for row in pool.fetch_built("audit: query objects", &b.sql, &b.binds).await? {
        let mut c = row.cols();
        let (seq, kind, value) = (c.int("audit object seq")?, c.text("audit object kind")?, c.text("audit object value")?);
        if let Some(r) = out.iter_mut().find(|r| r.seq == seq) {
            match kind.as_str() {
                "patient" => r.event.patients.push(value),
                _ => r.event.studies.push(value),
            }
        }
    }
    Ok(out)
}
