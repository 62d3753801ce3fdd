//! Conformance cases for the audit trail: events recorded with their patients and studies, found
//! by patient, study, user and time; a store's event commits with its registration.

use super::*;
use crate::{AuditEvent, AuditQuery};

pub fn audit_event(at_ms: i64, event_id: &str, user: &str, patients: &[&str], studies: &[&str]) -> AuditEvent {
    AuditEvent {
        at_ms,
        event_id: event_id.into(),
        event_type: None,
        action: "R".into(),
        outcome: 0,
        user_id: user.into(),
        user_kind: "user".into(),
        source: "127.0.0.1".into(),
        interface: "dicomweb".into(),
        patients: patients.iter().map(|s| (*s).to_owned()).collect(),
        studies: studies.iter().map(|s| (*s).to_owned()).collect(),
        instances: 1,
        detail: "retrieve study".into(),
    }
}

fn q() -> AuditQuery {
    AuditQuery { limit: 100, ..AuditQuery::default() }
}

pub async fn audit_events_round_trip(c: &dyn Catalog) {
    let a = audit_event(1000, "110104", "user:alice", &["P1"], &["1.2.3"]);
    let mut b = audit_event(2000, "110112", "user:bob", &[], &[]);
    b.event_type = None;
    b.action = "E".into();
    b.instances = 0;
    let mut failed = audit_event(3000, "110114", "anonymous", &[], &[]);
    failed.event_type = Some("110122".into());
    failed.outcome = 4;
    c.record_audit(vec![a.clone(), b.clone()]).await.unwrap();
    c.record_audit(vec![failed.clone()]).await.unwrap();
    c.record_audit(Vec::new()).await.unwrap();
    let all = c.audit_events(&q()).await.unwrap();
    assert_eq!(all.iter().map(|r| &r.event).collect::<Vec<_>>(), vec![&a, &b, &failed], "in order, every field kept");
    assert!(all.windows(2).all(|w| w[0].seq < w[1].seq));
    let by_patient = c.audit_events(&AuditQuery { patient: Some("P1".into()), ..q() }).await.unwrap();
    assert_eq!(by_patient.iter().map(|r| r.event.at_ms).collect::<Vec<_>>(), vec![1000]);
    let by_study = c.audit_events(&AuditQuery { study: Some("1.2.3".into()), ..q() }).await.unwrap();
    assert_eq!(by_study.len(), 1);
    let by_user = c.audit_events(&AuditQuery { user: Some("user:bob".into()), ..q() }).await.unwrap();
    assert_eq!(by_user.iter().map(|r| r.event.at_ms).collect::<Vec<_>>(), vec![2000]);
    let window = c.audit_events(&AuditQuery { since_ms: Some(2000), until_ms: Some(3000), ..q() }).await.unwrap();
    assert_eq!(window.iter().map(|r| r.event.at_ms).collect::<Vec<_>>(), vec![2000], "since inclusive, until exclusive");
    let after = c.audit_events(&AuditQuery { after_seq: Some(all[0].seq), limit: 1, ..q() }).await.unwrap();
    assert_eq!(after.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![all[1].seq], "paged by seq");
    assert!(c.audit_events(&AuditQuery { patient: Some("P2".into()), ..q() }).await.unwrap().is_empty());
}

pub async fn a_store_s_event_commits_with_it(c: &dyn Catalog) {
    let mut n = new_instance("1.2.3.1", "1.2.3.1.1", "1.2.3.1.1.1");
    n.audit = Some(audit_event(5000, "110104", "ae:CT1", &[&n.patient.patient_id], &["1.2.3.1"]));
    store(c, &n).await;
    let events = c.audit_events(&AuditQuery { study: Some("1.2.3.1".into()), ..q() }).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event.outcome, 0);
    // Refused by the catalog (reject policy, other bytes): recorded, as a minor failure.
    let mut again = new_bytes(n.clone(), "v2");
    again.audit = Some(audit_event(6000, "110104", "ae:CT1", &[], &["1.2.3.1"]));
    assert!(matches!(c.register(&again, VersionPolicy::Reject).await.unwrap(), RegisterOutcome::Conflict { .. }));
    let events = c.audit_events(&AuditQuery { study: Some("1.2.3.1".into()), ..q() }).await.unwrap();
    assert_eq!(events.iter().map(|r| (r.event.at_ms, r.event.outcome)).collect::<Vec<_>>(), vec![(5000, 0), (6000, 4)]);
}
