//! Reports: those a sender gives the archive as text (`POST /api/reports`: plain text or an
//! HL7 v2 ORU^R01, linked to a study by its UID or accession number) and the text of the
//! reports stored as objects (DICOM SR, Encapsulated PDF), for the search index.

use vna_catalog::{Filter, Key, Level, Matcher, NewReport, Query};
use vna_dicom::uid::StudyUid;
use vna_search::{Piece, Report};

use crate::audit::{self, EventId};
use crate::{Archive, ArchiveError, Permission, Principal};

/// Longest report accepted through the API, in bytes.
pub const MAX_REPORT_BYTES: usize = 1 << 20;

/// How a sent report names its study.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StudyRef {
    Uid(StudyUid),
    Accession(String),
}

/// A report sent to the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportIn {
    /// The study; `None`: the one an HL7 message names (ZDS-1, else OBR-18 or OBR-3).
    pub study: Option<StudyRef>,
    /// Plain text, or an HL7 v2 ORU^R01.
    pub body: String,
    pub hl7: bool,
    /// ISO 639-1 code, when the sender knows it.
    pub lang: Option<String>,
}

/// A report as the patient record shows it.
#[derive(Debug, Clone)]
pub struct ReportView {
    pub study_uid: StudyUid,
    pub source: ReportSource,
    /// Its text: what was sent, an SR's content tree, a PDF's text; empty when none can be read
    /// (a scanned PDF).
    pub text: String,
}

/// Where a report came from.
#[derive(Debug, Clone)]
pub enum ReportSource {
    /// Sent through the API (`POST /api/reports`): its key, whether it came as an HL7 v2
    /// ORU^R01, its language (ISO 639-1, empty when not given), when it arrived.
    Sent { pk: i64, hl7: bool, lang: String, received_at_ms: i64 },
    /// Stored as an object: an SR or Encapsulated PDF instance.
    Stored(Box<crate::Found>),
}

impl Archive {
    /// Records a report for a study `who` may write to; the study's UID and the report's key.
    /// Audited as a Patient Record creation (PS3.15 A.5.3.9) in the same transaction.
    pub async fn add_report(&self, who: &Principal, r: ReportIn) -> Result<(StudyUid, i64), ArchiveError> {
        self.require(who, Permission::Write).await?;
        if r.body.len() > MAX_REPORT_BYTES {
            return Err(ArchiveError::TooLarge { limit: MAX_REPORT_BYTES as u64 });
        }
        if r.body.contains('\0') {
            return Err(ArchiveError::BadQuery { why: "the report contains a NUL character".into() });
        }
        let lang = match r.lang.as_deref() {
            None | Some("") => String::new(),
            Some(code) => match vna_search::Lang::from_code(code) {
                Some(l) => l.code().to_owned(),
                None => return Err(ArchiveError::BadQuery { why: "lang must be en, fr or de (or absent: detected)".into() }),
            },
        };
        let (text, study) = if r.hl7 {
            let oru = vna_search::parse_oru(&r.body).map_err(|why| ArchiveError::BadQuery { why })?;
            let named = match (oru.study_uid, oru.accession) {
                (Some(uid), _) => Some(StudyRef::Uid(
                    StudyUid::new(&uid).map_err(|source| ArchiveError::InvalidUid { attribute: "ZDS-1 Study Instance UID", source })?,
                )),
                (None, Some(acc)) => Some(StudyRef::Accession(acc)),
                (None, None) => None,
            };
            (oru.text, r.study.or(named))
        } else {
            (r.body.trim().to_owned(), r.study)
        };
        if text.trim().is_empty() {
            return Err(ArchiveError::BadQuery { why: "the report has no text".into() });
        }
        let Some(study) = study else {
            return Err(ArchiveError::BadQuery {
                why: "give StudyInstanceUID or AccessionNumber (or an ORU with ZDS-1 or OBR-18/OBR-3)".into(),
            });
        };
        let row = self.report_study(who, &study).await?;
        let uid = row.study.study_uid.clone();
        let tenant =
            self.catalog.study_tenant(&uid).await.map_err(ArchiveError::catalog("reading the study's tenant"))?.unwrap_or_default();
        if !who.may_write_tenant(&tenant) {
            self.audit_refusal(who, "write permission refused for the study's tenant").await;
            return Err(ArchiveError::Forbidden { needed: Permission::Write });
        }
        let mut e = audit::event(who, EventId::PatientRecord, "C", &[], "report added");
        e.patients.push(row.patient.patient_id.clone());
        e.studies.push(uid.to_string());
        let audit = (who.kind != crate::PrincipalKind::System).then_some(e);
        let new = NewReport {
            study_uid: uid.to_string(),
            source: if r.hl7 { "hl7" } else { "text" }.into(),
            lang,
            body: text,
            at_ms: crate::now_ms(),
            audit,
        };
        let pk = self.catalog.add_report(&new).await.map_err(ArchiveError::catalog("recording a report"))?;
        Ok((uid, pk))
    }

    /// The one study a report names, among those `who` sees.
    async fn report_study(&self, who: &Principal, study: &StudyRef) -> Result<vna_catalog::StudyRow, ArchiveError> {
        let (key, value) = match study {
            StudyRef::Uid(uid) => (Key::StudyUid, uid.to_string()),
            StudyRef::Accession(acc) => (Key::AccessionNumber, acc.clone()),
        };
        let q = Query { level: Level::Study, filters: vec![Filter { key, matcher: Matcher::Single(value) }], limit: Some(2), offset: 0 };
        let mut rows = self.catalog.query_studies(&q, who.visibility()).await.map_err(ArchiveError::catalog("finding a report's study"))?;
        match rows.len() {
            0 => Err(ArchiveError::NotFound { what: "study" }),
            1 => Ok(rows.remove(0)),
            _ => Err(ArchiveError::AmbiguousStudy),
        }
    }

    /// The reports of the named studies that `who` sees, for the patient record: those sent
    /// through the API and those stored as objects (SR, Encapsulated PDF), with their text,
    /// study by study in the order given, sent ones after stored ones, oldest first. Which
    /// studies and objects `who` sees is decided in the catalog's queries, as for every read.
    /// Audited as one DICOM Instances Accessed event (PS3.15 A.5.3.4, "R"): a report discloses
    /// what its study's objects do.
    pub async fn reports_of(&self, who: &Principal, studies: &[StudyUid]) -> Result<Vec<ReportView>, ArchiveError> {
        self.require(who, Permission::Read).await?;
        if studies.is_empty() {
            return Ok(Vec::new());
        }
        let uids: Vec<String> = studies.iter().map(ToString::to_string).collect();
        let q = Query {
            level: Level::Study,
            filters: vec![Filter { key: Key::StudyUid, matcher: Matcher::List(uids) }],
            limit: None,
            offset: 0,
        };
        let visible = self.catalog.query_studies(&q, who.visibility()).await.map_err(ArchiveError::catalog("finding reports' studies"))?;
        let visible: Vec<&StudyUid> = studies.iter().filter(|u| visible.iter().any(|v| &v.study.study_uid == *u)).collect();
        if visible.is_empty() {
            return Ok(Vec::new());
        }
        let report_classes = vna_search::SR_CLASSES.iter().copied().chain([vna_search::PDF_CLASS]).map(str::to_owned).collect();
        let q = Query {
            level: Level::Instance,
            filters: vec![
                Filter { key: Key::StudyUid, matcher: Matcher::List(visible.iter().map(ToString::to_string).collect()) },
                Filter { key: Key::SopClassUid, matcher: Matcher::List(report_classes) },
            ],
            limit: None,
            offset: 0,
        };
        let stored = self.catalog.query_instances(&q, who.visibility()).await.map_err(ArchiveError::catalog("finding stored reports"))?;
        let mut texts = self.report_texts(&stored).await?;
        let refs: Vec<&vna_catalog::InstanceRow> = stored.iter().collect();
        let mut e = audit::event(who, EventId::InstancesAccessed, "R", &refs, "reports read");
        let mut out = Vec::new();
        for uid in visible {
            for row in stored.iter().filter(|r| &r.study.study_uid == uid) {
                let text = texts.remove(&row.pk).unwrap_or_default();
                out.push(ReportView {
                    study_uid: uid.clone(),
                    source: ReportSource::Stored(Box::new(crate::Found::checked(row.clone()))),
                    text,
                });
            }
            let sent = self.catalog.reports_of(uid.as_str()).await.map_err(ArchiveError::catalog("reading a study's reports"))?;
            if !sent.is_empty() && !e.studies.contains(&uid.to_string()) {
                e.studies.push(uid.to_string());
            }
            for r in sent {
                let source = ReportSource::Sent { pk: r.pk, hl7: r.source == "hl7", lang: r.lang, received_at_ms: r.received_at_ms };
                out.push(ReportView { study_uid: uid.clone(), source, text: r.body });
            }
        }
        if !out.is_empty() {
            self.audited(who, e).await?;
        }
        Ok(out)
    }

    /// The study of the report sent through the API with key `pk`, when `who` sees it.
    pub async fn sent_report_study(&self, who: &Principal, pk: i64) -> Result<Option<StudyUid>, ArchiveError> {
        self.require(who, Permission::Read).await?;
        let Some(uid) = self.catalog.report_study(pk).await.map_err(ArchiveError::catalog("finding a report's study"))? else {
            return Ok(None);
        };
        let q = Query {
            level: Level::Study,
            filters: vec![Filter { key: Key::StudyUid, matcher: Matcher::Single(uid.clone()) }],
            limit: Some(1),
            offset: 0,
        };
        let seen = self.catalog.query_studies(&q, who.visibility()).await.map_err(ArchiveError::catalog("finding a report's study"))?;
        Ok(seen.into_iter().next().map(|row| row.study.study_uid))
    }

    /// The text of a study's stored reports (`reports`: its SR and Encapsulated PDF instances):
    /// each SR's content tree, each PDF's text, in catalog order. A report that cannot be read as text (a scanned PDF, a damaged
    /// one, one over the size bound) adds nothing; the study is indexed all the same.
    pub(crate) async fn stored_reports(&self, reports: &[vna_catalog::InstanceRow]) -> Result<Vec<Report>, ArchiveError> {
        let mut texts = self.report_texts(reports).await?;
        Ok(reports
            .iter()
            .filter_map(|r| texts.remove(&r.pk))
            .filter(|text| !text.trim().is_empty())
            .map(|text| Report { lang: None, text })
            .collect())
    }

    /// The text of each stored report (SR or Encapsulated PDF instance) by instance key, empty
    /// when it has none that can be read.
    async fn report_texts(&self, reports: &[vna_catalog::InstanceRow]) -> Result<std::collections::HashMap<i64, String>, ArchiveError> {
        // An instance version never changes: its text is read once (a study's PDF is not
        // read again each time an image of the study arrives).
        let cache = self.config.search.as_deref();
        let mut texts: std::collections::HashMap<i64, String> =
            reports.iter().filter_map(|r| Some((r.pk, cache?.cached_text(r.pk)?))).collect();
        let missing: Vec<i64> = reports.iter().map(|r| r.pk).filter(|pk| !texts.contains_key(pk)).collect();
        if !missing.is_empty() {
            let metadata: std::collections::HashMap<i64, String> =
                self.catalog.metadata(&missing).await.map_err(ArchiveError::catalog("reading report metadata"))?.into_iter().collect();
            for row in reports.iter().filter(|r| missing.contains(&r.pk)) {
                let Some(json) = metadata.get(&row.pk).and_then(|m| serde_json::from_str::<serde_json::Value>(m).ok()) else { continue };
                let text = if row.instance.sop_class_uid.as_str() == vna_search::PDF_CLASS {
                    self.pdf_report(row, &json).await?
                } else {
                    self.sr_report(row, &json).await?
                };
                if let Some(cache) = cache {
                    cache.remember_text(row.pk, &text);
                }
                texts.insert(row.pk, text);
            }
        }
        Ok(texts)
    }

    /// The reports sent for a study through the API, oldest first.
    pub(crate) async fn sent_reports(&self, study: &StudyUid) -> Result<Vec<Report>, ArchiveError> {
        let sent = self.catalog.reports_of(study.as_str()).await.map_err(ArchiveError::catalog("reading a study's reports"))?;
        Ok(sent.into_iter().map(|r| Report { lang: vna_search::Lang::from_code(&r.lang), text: r.body }).collect())
    }

    async fn sr_report(&self, row: &vna_catalog::InstanceRow, json: &serde_json::Value) -> Result<String, ArchiveError> {
        let charset = json
            .get(vna_search::SPECIFIC_CHARACTER_SET)
            .and_then(|e| e.get("Value"))
            .and_then(serde_json::Value::as_array)
            .map(|v| v.iter().filter_map(serde_json::Value::as_str).collect::<Vec<_>>().join("\\"))
            .unwrap_or_default();
        let charset = vna_dicom::charset::Charset::from_specific_character_set(&charset);
        let mut text = String::new();
        for piece in vna_search::sr_outline(json) {
            match piece {
                Piece::Text(t) => text.push_str(&t),
                Piece::Bulk { offset, length } if length <= vna_search::MAX_TEXT_VALUE_BYTES => {
                    if let Some(bytes) = self.read_range(row, offset, length).await? {
                        text.push_str(charset.decode(&bytes).trim_end_matches(['\0', ' ']));
                    }
                }
                Piece::Bulk { .. } => tracing::warn!(pk = row.pk, "an SR text value over the search's size bound is not indexed"),
            }
        }
        Ok(text)
    }

    async fn pdf_report(&self, row: &vna_catalog::InstanceRow, json: &serde_json::Value) -> Result<String, ArchiveError> {
        let bytes = match vna_search::pdf_source(json) {
            None => return Ok(String::new()),
            Some(vna_search::PdfSource::Inline(bytes)) => bytes,
            Some(vna_search::PdfSource::Bulk { length, .. }) if length > vna_search::MAX_PDF_BYTES => {
                tracing::warn!(pk = row.pk, length, "a PDF over the search's size bound is indexed without its text");
                return Ok(String::new());
            }
            Some(vna_search::PdfSource::Bulk { offset, length }) => match self.read_range(row, offset, length).await? {
                Some(bytes) => bytes,
                None => return Ok(String::new()),
            },
        };
        match tokio::task::spawn_blocking(move || vna_search::pdf_text(&bytes)).await {
            Ok(Ok(text)) => Ok(text),
            Ok(Err(why)) => {
                tracing::warn!(pk = row.pk, %why, "a PDF's text could not be read; indexed without it");
                Ok(String::new())
            }
            Err(_) => Err(ArchiveError::Task { step: "reading a PDF's text" }),
        }
    }

    /// A byte range of an instance's object, `None` when it lies outside the object.
    async fn read_range(&self, row: &vna_catalog::InstanceRow, offset: u64, length: u64) -> Result<Option<Vec<u8>>, ArchiveError> {
        use futures::TryStreamExt;
        if offset.checked_add(length).is_none_or(|end| end > row.blob.size) {
            return Ok(None);
        }
        let found = crate::Found::checked(row.clone());
        let stream = self.open(&found, Some(vna_catalog::ByteRange { offset, length })).await?;
        let chunks: Vec<bytes::Bytes> = stream.try_collect().await.map_err(ArchiveError::blob("reading a report"))?;
        Ok(Some(chunks.concat()))
    }
}
