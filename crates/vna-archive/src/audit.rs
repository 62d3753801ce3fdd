//! The audit trail (DICOM PS3.15 Annex A.5): every access to patient data and every security
//! event, recorded in the catalog before the caller is answered, so that no event of an
//! answered request is lost when the process is killed. A store's event commits in the same
//! transaction as its registration; a query's or a read's in the writer's next group commit,
//! awaited before the rows are handed back. An event that cannot be recorded fails the
//! operation: nothing is served unaudited.
//!
//! Events name the principal (never a patient's data in the user fields), its address and
//! interface, the patients and studies concerned, and what was done in words without PHI. They
//! are served to auditors as A.5 `AuditMessage` XML ([`a5_xml`]) or JSON by the admin API.

use crate::clock::now_ms;
use crate::{Archive, ArchiveError, Permission, Principal, PrincipalKind};
use std::collections::BTreeSet;
use vna_catalog::{AuditEvent, AuditQuery, AuditRecord, InstanceRow};

/// An EventID of PS3.15 A.5.3 (DCM codes, PS3.16 CID 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventId {
    /// 110101 Audit Log Used (A.5.3.2).
    AuditLogUsed,
    /// 110103 DICOM Instances Accessed (A.5.3.4): metadata, frames, rendered, bulk data.
    InstancesAccessed,
    /// 110104 DICOM Instances Transferred (A.5.3.5): stored (C), retrieved (R).
    InstancesTransferred,
    /// 110105 DICOM Study Deleted (A.5.3.6): instances removed for good (expiry).
    StudyDeleted,
    /// 110110 Patient Record (A.5.3.9): a report added to a patient's study.
    PatientRecord,
    /// 110112 Query (A.5.3.10).
    Query,
    /// 110113 Security Alert (A.5.3.11): a refused operation, a change of who may do what.
    SecurityAlert,
    /// 110114 User Authentication (A.5.3.12).
    UserAuthentication,
    /// 110100 Application Activity (A.5.3.1): the archive started or stopped.
    ApplicationActivity,
}

/// EventTypeCode of a Security Alert: Use of Restricted Function (PS3.16 CID 403), an
/// operation its caller has no right to.
pub const USE_OF_RESTRICTED_FUNCTION: &str = "110132";
/// EventTypeCode of a Security Alert: User Security Attributes Changed (API keys made, revoked).
pub const USER_SECURITY_ATTRIBUTES_CHANGED: &str = "110137";
/// EventTypeCodes of Application Activity: Application Start, Application Stop.
pub const APPLICATION_START: &str = "110120";
pub const APPLICATION_STOP: &str = "110121";

impl EventId {
    pub fn code(self) -> &'static str {
        match self {
            EventId::AuditLogUsed => "110101",
            EventId::InstancesAccessed => "110103",
            EventId::InstancesTransferred => "110104",
            EventId::StudyDeleted => "110105",
            EventId::PatientRecord => "110110",
            EventId::Query => "110112",
            EventId::SecurityAlert => "110113",
            EventId::UserAuthentication => "110114",
            EventId::ApplicationActivity => "110100",
        }
    }

    /// The code meaning, PS3.16 Annex D.
    pub fn meaning(code: &str) -> &'static str {
        match code {
            "110101" => "Audit Log Used",
            "110103" => "DICOM Instances Accessed",
            "110104" => "DICOM Instances Transferred",
            "110105" => "DICOM Study Deleted",
            "110110" => "Patient Record",
            "110112" => "Query",
            "110113" => "Security Alert",
            "110114" => "User Authentication",
            "110100" => "Application Activity",
            "110120" => "Application Start",
            "110121" => "Application Stop",
            "110122" => "Login",
            "110132" => "Use of Restricted Function",
            "110137" => "User Security Attributes Changed",
            _ => "Unknown",
        }
    }
}

/// An event done by `who` on the instances `rows` (their patients and studies, each once).
pub(crate) fn event(who: &Principal, id: EventId, action: &str, rows: &[&InstanceRow], detail: impl Into<String>) -> AuditEvent {
    let patients: BTreeSet<&str> = rows.iter().map(|r| r.patient.patient_id.as_str()).filter(|p| !p.is_empty()).collect();
    let studies: BTreeSet<&str> = rows.iter().map(|r| r.study.study_uid.as_str()).collect();
    AuditEvent {
        at_ms: now_ms(),
        event_id: id.code().to_owned(),
        event_type: None,
        action: action.to_owned(),
        outcome: 0,
        user_id: who.id.clone(),
        user_kind: who.kind.as_str().to_owned(),
        source: who.address.clone(),
        interface: who.interface.to_owned(),
        patients: patients.into_iter().map(str::to_owned).collect(),
        studies: studies.into_iter().map(str::to_owned).collect(),
        instances: rows.len() as i64,
        detail: detail.into(),
    }
}

/// The event of a store by `who` (A.5.3.5, action C), recorded with the registration; none
/// for the archive's own imports.
pub(crate) fn store_event(who: &Principal, patient_id: &str, study_uid: &str) -> Option<AuditEvent> {
    if who.kind == PrincipalKind::System {
        return None;
    }
    let mut e = event(who, EventId::InstancesTransferred, "C", &[], "instance stored");
    e.patients = if patient_id.is_empty() { Vec::new() } else { vec![patient_id.to_owned()] };
    e.studies = vec![study_uid.to_owned()];
    e.instances = 1;
    Some(e)
}

/// How long one recorded read (A.5.3.4, DICOM Instances Accessed) covers the same reads again:
/// a viewer fetching a slide's tiles or a series' frames makes hundreds of requests a minute on
/// the same instances; the first is recorded (durably, before its answer) and stands for the
/// others by the same principal, from the same address, on the same studies, within the window.
pub const ACCESS_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);

/// Most reads remembered; past that, expired ones are dropped, then everything (the next read
/// of each is simply recorded again).
const RECENT_READS_CAP: usize = 16_384;

/// Reads recorded within [`ACCESS_WINDOW`], by who, from where and on what.
#[derive(Default)]
pub(crate) struct RecentReads(std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>);

impl RecentReads {
    fn key(e: &AuditEvent) -> String {
        format!("{}\u{0}{}\u{0}{}\u{0}{}\u{0}{}", e.user_id, e.source, e.interface, e.patients.join("\\"), e.studies.join("\\"))
    }

    fn covers(&self, e: &AuditEvent) -> bool {
        let map = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(&Self::key(e)).is_some_and(|t| t.elapsed() < ACCESS_WINDOW)
    }

    fn remember(&self, e: &AuditEvent) {
        let mut map = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= RECENT_READS_CAP {
            map.retain(|_, t| t.elapsed() < ACCESS_WINDOW);
            if map.len() >= RECENT_READS_CAP {
                map.clear();
            }
        }
        map.insert(Self::key(e), std::time::Instant::now());
    }
}

impl Archive {
    /// Records `e` before the caller is answered; the archive's own work is not audited, and a
    /// read already recorded within [`ACCESS_WINDOW`] is covered by that record.
    pub(crate) async fn audited(&self, who: &Principal, e: AuditEvent) -> Result<(), ArchiveError> {
        if who.kind == PrincipalKind::System {
            return Ok(());
        }
        let read = e.event_id == EventId::InstancesAccessed.code() && e.action == "R";
        if read && self.recent_reads.covers(&e) {
            return Ok(());
        }
        self.catalog.record_audit(vec![e.clone()]).await.map_err(ArchiveError::catalog("recording the audit trail"))?;
        if read {
            self.recent_reads.remember(&e);
        }
        Ok(())
    }

    /// A failed authentication from `address` through `interface` (A.5.3.12, Login, minor
    /// failure). `why` says what was wrong with the credential, never the credential.
    pub async fn audit_failed_login(&self, interface: &'static str, address: &str, why: &str) -> Result<(), ArchiveError> {
        let e = AuditEvent {
            at_ms: now_ms(),
            event_id: EventId::UserAuthentication.code().to_owned(),
            event_type: Some("110122".to_owned()),
            action: "E".to_owned(),
            outcome: 4,
            user_id: "unauthenticated".to_owned(),
            user_kind: PrincipalKind::Anonymous.as_str().to_owned(),
            source: address.to_owned(),
            interface: interface.to_owned(),
            patients: Vec::new(),
            studies: Vec::new(),
            instances: 0,
            detail: why.to_owned(),
        };
        self.catalog.record_audit(vec![e]).await.map_err(ArchiveError::catalog("recording the audit trail"))
    }

    /// `Forbidden` unless `who` holds `p`; a refusal is recorded as a Security Alert (Use of
    /// Restricted Function, minor failure) before it is answered.
    pub async fn require(&self, who: &Principal, p: Permission) -> Result<(), ArchiveError> {
        let refused = who.require(p);
        if refused.is_err() {
            self.audit_refusal(who, &format!("{p} permission refused")).await;
        }
        refused
    }

    /// Records a refused operation by `who` (A.5.3.11). A failure to record is logged: the
    /// refusal stands either way.
    pub async fn audit_refusal(&self, who: &Principal, detail: &str) {
        self.audit_security(who, USE_OF_RESTRICTED_FUNCTION, 4, detail).await;
    }

    /// Records a security event by `who` (A.5.3.11, or A.5.3.1 for the archive's start and
    /// stop), the archive's own included; a failure to record is logged.
    pub async fn audit_security(&self, who: &Principal, type_code: &str, outcome: i32, detail: &str) {
        let id =
            if matches!(type_code, APPLICATION_START | APPLICATION_STOP) { EventId::ApplicationActivity } else { EventId::SecurityAlert };
        let mut e = event(who, id, "E", &[], detail);
        e.event_type = Some(type_code.to_owned());
        e.outcome = outcome;
        if let Err(err) = self.catalog.record_audit(vec![e]).await {
            tracing::warn!(error = %err, "a security event could not be recorded in the audit trail");
        }
    }

    /// The events `q` asks for, for an auditor; the reading is itself recorded (Audit Log Used).
    /// Up to `limit` events after `after_seq`, oldest first, for the archive's own export of
    /// its trail (syslog): the system forwarding what it recorded, not an access by anyone,
    /// so not itself audited.
    pub async fn audit_feed(&self, after_seq: i64, limit: u32) -> Result<Vec<AuditRecord>, ArchiveError> {
        let q = AuditQuery { after_seq: Some(after_seq), limit, ..AuditQuery::default() };
        self.catalog.audit_events(&q).await.map_err(ArchiveError::catalog("reading the audit trail for export"))
    }

    pub async fn audit_trail(&self, who: &Principal, q: &AuditQuery) -> Result<Vec<AuditRecord>, ArchiveError> {
        self.require(who, Permission::Audit).await?;
        let records = self.catalog.audit_events(q).await.map_err(ArchiveError::catalog("reading the audit trail"))?;
        self.audited(who, event(who, EventId::AuditLogUsed, "R", &[], "audit trail read")).await?;
        Ok(records)
    }
}

/// XML character data and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

fn coded(element: &str, code: &str, system: &str, meaning: &str) -> String {
    format!(r#"<{element} csd-code="{}" codeSystemName="{}" originalText="{}"/>"#, esc(code), esc(system), esc(meaning))
}

/// An RFC 3339 UTC time with milliseconds (`xs:dateTime`).
/// The event as a PS3.15 A.5.1 `AuditMessage`: event identification, the requestor and the
/// archive (`audit_source`, its AE title or name) as active participants, the audit source,
/// and the patients and studies as participant objects.
pub fn a5_xml(r: &AuditRecord, audit_source: &str) -> String {
    let e = &r.event;
    let mut x = String::with_capacity(1024);
    x.push_str("<AuditMessage>");
    x.push_str(&format!(
        r#"<EventIdentification EventActionCode="{}" EventDateTime="{}" EventOutcomeIndicator="{}">"#,
        esc(&e.action),
        crate::clock::utc_timestamp(e.at_ms),
        e.outcome
    ));
    x.push_str(&coded("EventID", &e.event_id, "DCM", EventId::meaning(&e.event_id)));
    if let Some(t) = &e.event_type {
        x.push_str(&coded("EventTypeCode", t, "DCM", EventId::meaning(t)));
    }
    x.push_str("</EventIdentification>");
    let (requestor_role, archive_role) = match (e.event_id.as_str(), e.action.as_str()) {
        ("110104", "C") => (("110153", "Source Role ID"), ("110152", "Destination Role ID")),
        ("110104", _) => (("110152", "Destination Role ID"), ("110153", "Source Role ID")),
        _ => (("110153", "Source Role ID"), ("110152", "Destination Role ID")),
    };
    let access_point = if e.source.is_empty() {
        String::new()
    } else {
        format!(r#" NetworkAccessPointID="{}" NetworkAccessPointTypeCode="2""#, esc(&e.source))
    };
    x.push_str(&format!(r#"<ActiveParticipant UserID="{}" UserIsRequestor="true"{access_point}>"#, esc(&e.user_id)));
    x.push_str(&coded("RoleIDCode", requestor_role.0, "DCM", requestor_role.1));
    x.push_str("</ActiveParticipant>");
    x.push_str(&format!(r#"<ActiveParticipant UserID="{}" UserIsRequestor="false">"#, esc(audit_source)));
    x.push_str(&coded("RoleIDCode", archive_role.0, "DCM", archive_role.1));
    x.push_str("</ActiveParticipant>");
    x.push_str(&format!(r#"<AuditSourceIdentification AuditSourceID="{}"/>"#, esc(audit_source)));
    // Patients (person, patient, RFC 3881 Patient Number) and studies (system object, report,
    // DCM Study Instance UID): PS3.15 A.5.2.
    let objects = e.patients.iter().map(|p| (p, 1, 1, ("2", "RFC-3881", "Patient Number")));
    let objects = objects.chain(e.studies.iter().map(|s| (s, 2, 3, ("110180", "DCM", "Study Instance UID"))));
    for (id, type_code, role, (code, system, meaning)) in objects {
        x.push_str(&format!(
            r#"<ParticipantObjectIdentification ParticipantObjectID="{}" ParticipantObjectTypeCode="{type_code}" ParticipantObjectTypeCodeRole="{role}">"#,
            esc(id)
        ));
        x.push_str(&coded("ParticipantObjectIDTypeCode", code, system, meaning));
        // The schema (A.5.1.1) wants a name or a query here: the event records no patient name
        // (and a study has none), so the name is empty.
        x.push_str("<ParticipantObjectName></ParticipantObjectName>");
        x.push_str("</ParticipantObjectIdentification>");
    }
    x.push_str("</AuditMessage>");
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc_rfc3339() {
        assert_eq!(crate::clock::utc_timestamp(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(crate::clock::utc_timestamp(1_796_560_359_123), "2026-12-06T12:32:39.123Z");
        assert_eq!(crate::clock::utc_timestamp(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn a_message_names_who_what_and_whom() {
        let r = AuditRecord {
            seq: 7,
            event: AuditEvent {
                at_ms: 0,
                event_id: "110104".into(),
                event_type: None,
                action: "C".into(),
                outcome: 0,
                user_id: "ae:CT<1>".into(),
                user_kind: "application".into(),
                source: "127.0.0.1".into(),
                interface: "dimse".into(),
                patients: vec!["P&1".into()],
                studies: vec!["1.2.3".into()],
                instances: 1,
                detail: "store".into(),
            },
        };
        let x = a5_xml(&r, "VNA");
        assert!(x.starts_with(r#"<AuditMessage><EventIdentification EventActionCode="C" EventDateTime="1970-01-01T00:00:00.000Z" EventOutcomeIndicator="0"><EventID csd-code="110104" codeSystemName="DCM" originalText="DICOM Instances Transferred"/>"#), "{x}");
        assert!(x.contains(r#"UserID="ae:CT&lt;1&gt;" UserIsRequestor="true" NetworkAccessPointID="127.0.0.1""#), "{x}");
        assert!(x.contains(r#"ParticipantObjectID="P&amp;1""#) && x.contains(r#"ParticipantObjectID="1.2.3""#), "{x}");
        assert!(x.ends_with("</AuditMessage>"));
    }
}
