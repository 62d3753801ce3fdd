//! The lifecycle policies (`vna-lifecycle`) as the archive sees its objects: the facts of a
//! catalog row the rules match on, and what the configured policy set decides for an instance.
//! Nothing here locks, moves or deletes; jobs that apply decisions build on it.

use crate::query::{Filter, Key, Level, Matcher, Query};
use crate::{Archive, ArchiveError};
use std::collections::BTreeMap;
use std::sync::Arc;
use vna_catalog::{InstanceRow, PatientAttrs, Visibility};
use vna_lifecycle::{Decision, Facts, PolicySet};

/// The facts the rules see of a catalog row; `last_study` is the patient's latest study date
/// (Unix milliseconds of its start).
pub fn lifecycle_facts(row: &InstanceRow, last_study: Option<i64>) -> Facts {
    Facts {
        modality: row.series.modality.clone(),
        sop_class_uid: row.instance.sop_class_uid.to_string(),
        family: None,
        body_part: row.series.body_part_examined.clone(),
        tenant: row.tenant.clone(),
        institution: String::new(),
        birth_date: vna_lifecycle::parse_date(&row.patient.patient_birth_date),
        study_date: vna_lifecycle::parse_date(&row.study.study_date),
        last_study_date: last_study,
        ingest: row.stored_at_ms,
        last_access: None,
        rejection: None,
        attributes: BTreeMap::new(),
    }
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
        let last = self.last_study_date(&row.patient).await?;
        Ok(Some(set.decide(&lifecycle_facts(row, last), now)))
    }

    /// The date of the patient's latest study in the archive, whoever may see it: a retention
    /// counted from it must not depend on who asks.
    async fn last_study_date(&self, patient: &PatientAttrs) -> Result<Option<i64>, ArchiveError> {
        let mut filters = vec![Filter { key: Key::PatientId, matcher: Matcher::Single(patient.patient_id.clone()) }];
        if !patient.issuer_of_patient_id.is_empty() {
            filters.push(Filter { key: Key::IssuerOfPatientId, matcher: Matcher::Single(patient.issuer_of_patient_id.clone()) });
        }
        let q = Query { level: Level::Study, filters, limit: None, offset: 0 };
        let studies =
            self.catalog.query_studies(&q, &Visibility::ALL).await.map_err(ArchiveError::catalog("finding the patient's studies"))?;
        Ok(studies.iter().filter_map(|s| vna_lifecycle::parse_date(&s.study.study_date)).max())
    }
}
