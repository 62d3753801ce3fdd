//! The lifecycle policies (`vna-lifecycle`) as the archive sees its objects: the facts of a
//! catalog row the rules match on, and what the configured policy set decides for an instance.
//! Nothing here locks, moves or deletes: the apply job (`apply.rs`) does, with the locks
//! planned here (`Archive::lock_plan`); reads are tracked for `unused_for` in `last_access.rs`.

use crate::{Archive, ArchiveError};
use std::collections::BTreeMap;
use std::sync::Arc;
use vna_catalog::{InstanceAttrs, InstanceRow, PatientAttrs, SeriesAttrs, StudyAttrs};
use vna_lifecycle::{Decision, Facts, PolicySet};

/// The facts the rules see of a catalog row; `last_study` is the patient's latest study date
/// (Unix milliseconds of its start).
pub fn lifecycle_facts(row: &InstanceRow, last_study: Option<i64>) -> Facts {
    let mut facts = facts_of(&row.patient, &row.study, &row.series, &row.instance, &row.tenant, row.stored_at_ms, last_study);
    facts.last_access = row.last_access_ms;
    // An IOCM rejection: the clinical rules no longer match, the rejection rules do.
    facts.rejection = row.rejection.as_ref().map(|r| vna_lifecycle::Rejection { code: r.code.clone(), at: r.at_ms });
    facts
}

/// The facts of an object from its attributes, stored (or arriving) at `ingest`.
fn facts_of(
    patient: &PatientAttrs,
    study: &StudyAttrs,
    series: &SeriesAttrs,
    instance: &InstanceAttrs,
    tenant: &str,
    ingest: i64,
    last_study: Option<i64>,
) -> Facts {
    Facts {
        modality: series.modality.clone(),
        sop_class_uid: instance.sop_class_uid.to_string(),
        family: None,
        body_part: series.body_part_examined.clone(),
        tenant: tenant.to_owned(),
        institution: series.institution_name.clone(),
        department: series.department_name.clone(),
        birth_date: vna_lifecycle::parse_date(&patient.patient_birth_date),
        study_date: vna_lifecycle::parse_date(&study.study_date),
        last_study_date: last_study,
        ingest,
        last_access: None,
        rejection: None,
        attributes: attributes(patient, study, series, instance),
    }
}

/// The catalog's attributes of an object that rules may match ([`vna_lifecycle::ATTRIBUTES`]),
/// by tag; an empty one is left out (it matches no value).
fn attributes(patient: &PatientAttrs, study: &StudyAttrs, series: &SeriesAttrs, instance: &InstanceAttrs) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (tag, _) in vna_lifecycle::ATTRIBUTES {
        let value = match *tag {
            "00100020" => patient.patient_id.clone(),
            "00100021" => patient.issuer_of_patient_id.clone(),
            "00100030" => patient.patient_birth_date.clone(),
            "00100040" => patient.patient_sex.clone(),
            "0020000D" => study.study_uid.to_string(),
            "00080020" => study.study_date.clone(),
            "00080030" => study.study_time.clone(),
            "00080050" => study.accession_number.clone(),
            "00200010" => study.study_id.clone(),
            "00081030" => study.study_description.clone(),
            "0020000E" => series.series_uid.to_string(),
            "00080060" => series.modality.clone(),
            "00200011" => series.series_number.map(|n| n.to_string()).unwrap_or_default(),
            "0008103E" => series.series_description.clone(),
            "00180015" => series.body_part_examined.clone(),
            "00400244" => series.performed_procedure_step_start_date.clone(),
            "00080080" => series.institution_name.clone(),
            "00081040" => series.department_name.clone(),
            "00080016" => instance.sop_class_uid.to_string(),
            "00080018" => instance.sop_uid.to_string(),
            "00200013" => instance.instance_number.map(|n| n.to_string()).unwrap_or_default(),
            _ => String::new(),
        };
        if !value.is_empty() {
            out.insert((*tag).to_owned(), value);
        }
    }
    out
}

impl Archive {
    /// The lifecycle policies configured, if any.
    pub fn policies(&self) -> Option<&Arc<PolicySet>> {
        self.config.policies.as_ref()
    }

    /// What the configured policies decide for `row` as of `now`; `None` without policies.
    /// The caller has already been allowed to see the row.
    pub async fn policy_decision(&self, row: &InstanceRow, now: i64) -> Result<Option<Decision>, ArchiveError> {
        let Some(set) = self.policies() else { return Ok(None) };
        let last = self.patient_last_study(&row.patient).await?;
        Ok(Some(set.decide(&lifecycle_facts(row, last), now)))
    }

    /// The lock the policies give an object arriving now with these attributes (its own study
    /// counted as the patient's latest if it is), as the blob store takes it; `None` without
    /// policies or when no rule asks for a retention. Retention applies from the first write:
    /// there is no unlocked window to close later.
    pub(crate) async fn retention_at_write(
        &self,
        patient: &PatientAttrs,
        study: &StudyAttrs,
        series: &SeriesAttrs,
        instance: &InstanceAttrs,
        tenant: &str,
        now: i64,
    ) -> Result<Option<(vna_blob::Retention, Vec<String>)>, ArchiveError> {
        let Some(set) = self.policies() else { return Ok(None) };
        let this = vna_lifecycle::parse_date(&study.study_date);
        let last = self.patient_last_study(patient).await?.max(this);
        let d = set.decide(&facts_of(patient, study, series, instance, tenant, now, last), now);
        if !d.undetermined.is_empty() {
            tracing::warn!(rules = ?d.undetermined, "a lifecycle retention could not be computed for a new object (a date it counts from is missing)");
        }
        // An object that will leave this tier is locked here for the hot period only: its
        // full retention is placed on the tier it moves to (a locked version could not be
        // removed from here after the move).
        let leaving = d.transition.as_ref().filter(|m| m.tier != self.config.default_tier).and_then(|m| m.at);
        let lock = d.retention.map(|r| (self.lock_plan(&r, leaving, now).lock, r.rules));
        // An old study whose retention has already ended arrives unlocked (a store refuses a
        // retain-until date in the past).
        let now_sys = std::time::UNIX_EPOCH + std::time::Duration::from_millis(u64::try_from(now.max(0)).unwrap_or(0));
        Ok(lock.filter(|(l, _)| l.retain_until > now_sys))
    }

    /// The lock to place for a policy retention at `now` (wall clock) on a tier the object
    /// leaves at `leaving` (a due or planned move elsewhere), and below which an existing lock
    /// is to be extended: see [`LockPlan`].
    pub(crate) fn lock_plan(&self, r: &vna_lifecycle::Retention, leaving: Option<i64>, now: i64) -> LockPlan {
        let mode = match r.mode {
            vna_lifecycle::LockMode::Compliance => vna_blob::LockMode::Compliance,
            vna_lifecycle::LockMode::Governance => vna_blob::LockMode::Governance,
        };
        let ms = |d: std::time::Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let (mut until, mut enough) = (r.until, r.until);
        if let Some(h) = self.config.lock_horizon {
            until = until.min(now.saturating_add(ms(h)));
            enough = enough.min(now.saturating_add(ms(h / 2)));
        }
        if let Some(at) = leaving {
            let from = at.max(now);
            let margin = self.config.hot_margin;
            until = until.min(from.saturating_add(ms(margin)));
            enough = enough.min(from.saturating_add(ms(margin / 2)));
        }
        let at = |t: i64| std::time::UNIX_EPOCH + std::time::Duration::from_secs(u64::try_from(t.max(0)).unwrap_or(0).div_ceil(1000));
        LockPlan { lock: vna_blob::Retention { mode, retain_until: at(until) }, enough: at(enough.min(until)), policy_end: at(r.until) }
    }

    /// The lock for a policy retention on the tier the object stays on.
    pub(crate) fn policy_lock(&self, r: &vna_lifecycle::Retention, now: i64) -> vna_blob::Retention {
        self.lock_plan(r, None, now).lock
    }

    /// The date of the patient's latest study in the archive, whoever may see it: a retention
    /// counted from it must not depend on who asks.
    pub async fn patient_last_study(&self, patient: &PatientAttrs) -> Result<Option<i64>, ArchiveError> {
        if patient.patient_id.is_empty() {
            // Patients without an ID are never one patient across studies.
            return Ok(None);
        }
        let date = self
            .catalog
            .latest_study_date(&patient.patient_id, &patient.issuer_of_patient_id)
            .await
            .map_err(ArchiveError::catalog("finding the patient's last study"))?;
        Ok(date.as_deref().and_then(vna_lifecycle::parse_date))
    }
}

/// How long an object is locked on a tier beyond the date it is due to leave it by default (a
/// move done a little late is still covered; `lifecycle.hot_margin_days`); the apply job
/// extends such a lock while the move waits.
pub const HOT_MARGIN: std::time::Duration = std::time::Duration::from_secs(30 * 86_400);

/// A lock to place and when an existing one is enough.
pub(crate) struct LockPlan {
    /// The policy's retention, capped by the lock horizon and, on a tier the object leaves, by
    /// its move date plus the hot margin ([`HOT_MARGIN`] by default).
    pub(crate) lock: vna_blob::Retention,
    /// An existing lock ending at or after this is left alone (half the horizon or margin
    /// left); one ending before is extended to `lock`.
    pub(crate) enough: std::time::SystemTime,
    /// The end of the policy's retention itself (a COMPLIANCE lock beyond it is reported).
    pub(crate) policy_end: std::time::SystemTime,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_attribute_a_rule_may_match_is_handed_to_it() {
        let mut n = vna_catalog::conformance::new_instance("1.2.3", "1.2.3.4", "1.2.3.4.5");
        n.patient.patient_sex = "F".into();
        let got = attributes(&n.patient, &n.study, &n.series, &n.instance);
        for (tag, keyword) in vna_lifecycle::ATTRIBUTES {
            assert!(got.get(*tag).is_some_and(|v| !v.is_empty()), "{tag} {keyword} is not handed to the rules");
        }
        assert_eq!(got["00080080"], "Synthetic Hospital");
        assert_eq!(got["00200013"], "1");
        let f = facts_of(&n.patient, &n.study, &n.series, &n.instance, "t", 0, None);
        assert_eq!((f.institution.as_str(), f.department.as_str()), ("Synthetic Hospital", "Radiology"));
    }
}
