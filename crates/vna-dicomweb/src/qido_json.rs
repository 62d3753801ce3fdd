//! DICOM JSON of QIDO-RS results: the attributes PS3.18 §10.6.3.3 Tables 10.6.3-3 (study),
//! -4 (series) and -5 (instance) require, computed ones included, plus `includefield`s.

use crate::error::ApiError;
use serde_json::Value;
use vna_archive::model::{Found, PatientAttrs, Scope, SeriesAttrs, SeriesRow, StudyAttrs, StudyRow};
use vna_archive::{Archive, Principal};
use vna_dicom::json::{push_json_str, push_tag_key, resolve_bulk_uris};
use vna_dicom::tag_from_key;
use vna_dicom::{tags, Tag};

/// What `includefield` asked for beyond the defaults.
#[derive(Debug, Default)]
pub(crate) struct Includes {
    pub all: bool,
    pub tags: Vec<Tag>,
}

impl Includes {
    /// True when an included attribute is not answered from the catalog's instance columns.
    pub fn needs_metadata_for_instances(&self) -> bool {
        self.all || self.tags.iter().any(|t| !MULTI_FRAME_TAGS.contains(t))
    }
    fn wants(&self, tag: Tag) -> bool {
        self.all || self.tags.contains(&tag)
    }
}

/// Instance attributes the catalog holds beyond PS3.18's defaults, returned when included.
const MULTI_FRAME_TAGS: [Tag; 6] = [
    tags::CONCATENATION_UID,
    tags::SOP_INSTANCE_UID_OF_CONCATENATION_SOURCE,
    tags::IN_CONCATENATION_NUMBER,
    tags::DIMENSION_ORGANIZATION_TYPE,
    tags::TOTAL_PIXEL_MATRIX_COLUMNS,
    tags::TOTAL_PIXEL_MATRIX_ROWS,
];

/// Attributes of a result, each already rendered as its DICOM JSON object
/// (`{"vr":…,"Value":[…]}`) into one buffer, put in tag order when the result is written: a
/// page of a thousand studies is written straight into the response's text, not built as a
/// tree of JSON values first (which cost more than the query), with two allocations per result
/// rather than one per attribute.
#[derive(Default)]
struct Doc {
    /// The rendered elements, one after another.
    text: String,
    /// Each attribute's element in `text`; an attribute put again points at its new text.
    at: Vec<(Tag, std::ops::Range<usize>)>,
}

impl Doc {
    fn put(&mut self, tag: Tag, vr: &str, values: impl FnOnce(&mut String) -> bool) {
        let el = &mut self.text;
        let start = el.len();
        el.push_str("{\"vr\":\"");
        el.push_str(vr);
        el.push('"');
        let mark = el.len();
        el.push_str(",\"Value\":[");
        if values(el) {
            el.push_str("]}");
        } else {
            el.truncate(mark);
            el.push('}');
        }
        let end = el.len();
        self.place(tag, start..end);
    }
    fn place(&mut self, tag: Tag, range: std::ops::Range<usize>) {
        match self.at.iter_mut().find(|(t, _)| *t == tag) {
            Some((_, r)) => *r = range,
            None => self.at.push((tag, range)),
        }
    }
    fn text(&mut self, tag: Tag, vr: &str, v: &str) {
        self.put(tag, vr, |el| {
            push_json_str(el, v);
            !v.is_empty()
        });
    }
    fn list(&mut self, tag: Tag, vr: &str, v: &[String]) {
        self.put(tag, vr, |el| {
            for (i, item) in v.iter().enumerate() {
                if i > 0 {
                    el.push(',');
                }
                push_json_str(el, item);
            }
            !v.is_empty()
        });
    }
    fn pn(&mut self, tag: Tag, v: &str) {
        self.put(tag, "PN", |el| {
            el.push('{');
            let mut first = true;
            for (name, g) in ["Alphabetic", "Ideographic", "Phonetic"].iter().zip(v.split('=')) {
                if !g.is_empty() {
                    if !first {
                        el.push(',');
                    }
                    first = false;
                    push_json_str(el, name);
                    el.push(':');
                    push_json_str(el, g);
                }
            }
            el.push('}');
            !v.is_empty()
        });
    }
    fn int(&mut self, tag: Tag, vr: &str, v: Option<i64>) {
        self.put(tag, vr, |el| match v {
            Some(n) => {
                use std::fmt::Write;
                let _ = write!(el, "{n}");
                true
            }
            None => false,
        });
    }
    fn has(&self, tag: Tag) -> bool {
        self.at.iter().any(|(t, _)| *t == tag)
    }
    /// Adds requested attributes found in an instance's stored metadata, without overriding
    /// what the catalog already gave.
    fn merge(&mut self, metadata: &str, includes: &Includes, instance_url: &str, only_missing_all: bool) {
        let Ok(Value::Object(map)) = serde_json::from_str::<Value>(&resolve_bulk_uris(metadata, instance_url)) else { return };
        for (k, v) in map {
            let Some(tag) = tag_from_key(&k) else { continue };
            let wanted = (includes.all && only_missing_all) || includes.tags.contains(&tag);
            if wanted && !self.has(tag) {
                use std::fmt::Write;
                let start = self.text.len();
                let _ = write!(self.text, "{v}");
                let end = self.text.len();
                self.place(tag, start..end);
            }
        }
    }
    /// The result as one JSON object, its attributes in tag order.
    fn into_json(mut self) -> String {
        self.at.sort_unstable_by_key(|(t, _)| *t);
        let mut out = String::with_capacity(self.at.iter().map(|(_, r)| r.len() + 12).sum::<usize>() + 2);
        out.push('{');
        for (i, (tag, r)) in self.at.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push('"');
            push_tag_key(&mut out, *tag);
            out.push_str("\":");
            out.push_str(&self.text[r.clone()]);
        }
        out.push('}');
        out
    }
}

fn patient(d: &mut Doc, p: &PatientAttrs) {
    d.pn(tags::PATIENT_NAME, &p.patient_name);
    d.text(tags::PATIENT_ID, "LO", &p.patient_id);
    d.text(tags::ISSUER_OF_PATIENT_ID, "LO", &p.issuer_of_patient_id);
    d.text(tags::PATIENT_BIRTH_DATE, "DA", &p.patient_birth_date);
    d.text(tags::PATIENT_SEX, "CS", &p.patient_sex);
}

fn study(d: &mut Doc, s: &StudyAttrs) {
    d.text(tags::SPECIFIC_CHARACTER_SET, "CS", "ISO_IR 192");
    d.text(tags::STUDY_DATE, "DA", &s.study_date);
    d.text(tags::STUDY_TIME, "TM", &s.study_time);
    d.text(tags::ACCESSION_NUMBER, "SH", &s.accession_number);
    d.pn(tags::REFERRING_PHYSICIAN_NAME, &s.referring_physician_name);
    d.text(tags::STUDY_DESCRIPTION, "LO", &s.study_description);
    d.text(tags::STUDY_INSTANCE_UID, "UI", s.study_uid.as_str());
    d.text(tags::STUDY_ID, "SH", &s.study_id);
}

fn series(d: &mut Doc, s: &SeriesAttrs) {
    d.text(tags::MODALITY, "CS", &s.modality);
    d.text(tags::SERIES_DESCRIPTION, "LO", &s.series_description);
    d.text(tags::SERIES_INSTANCE_UID, "UI", s.series_uid.as_str());
    d.int(tags::SERIES_NUMBER, "IS", s.series_number);
    d.text(tags::BODY_PART_EXAMINED, "CS", &s.body_part_examined);
    d.text(tags::PERFORMED_PROCEDURE_STEP_START_DATE, "DA", &s.performed_procedure_step_start_date);
    d.text(tags::PERFORMED_PROCEDURE_STEP_START_TIME, "TM", &s.performed_procedure_step_start_time);
}

fn instance_url(base: &str, r: &Found) -> String {
    format!("{base}/studies/{}/series/{}/instances/{}", r.study.study_uid, r.series.series_uid, r.instance.sop_uid)
}

pub(crate) async fn study_json(
    r: &StudyRow,
    base: &str,
    includes: &Includes,
    archive: &Archive,
    who: &Principal,
) -> Result<String, ApiError> {
    let mut d = Doc::default();
    patient(&mut d, &r.patient);
    study(&mut d, &r.study);
    d.text(tags::INSTANCE_AVAILABILITY, "CS", "ONLINE");
    d.list(tags::MODALITIES_IN_STUDY, "CS", &r.modalities_in_study);
    d.list(tags::SOP_CLASSES_IN_STUDY, "UI", &r.sop_classes_in_study);
    d.int(tags::NUMBER_OF_STUDY_RELATED_SERIES, "IS", Some(r.number_of_series));
    d.int(tags::NUMBER_OF_STUDY_RELATED_INSTANCES, "IS", Some(r.number_of_instances));
    d.text(tags::RETRIEVE_URL, "UR", &format!("{base}/studies/{}", r.study.study_uid));
    let missing: Vec<Tag> = includes.tags.iter().copied().filter(|t| !d.has(*t)).collect();
    if !missing.is_empty() {
        let scope = Scope { study: r.study.study_uid.clone(), series: None, instance: None };
        if let Some((row, meta)) = archive.sample_metadata(who, &scope).await? {
            d.merge(&meta, &Includes { all: false, tags: missing }, &instance_url(base, &row), false);
        }
    }
    Ok(d.into_json())
}

pub(crate) async fn series_json(
    r: &SeriesRow,
    base: &str,
    includes: &Includes,
    archive: &Archive,
    who: &Principal,
) -> Result<String, ApiError> {
    let mut d = Doc::default();
    patient(&mut d, &r.patient);
    study(&mut d, &r.study);
    series(&mut d, &r.series);
    d.text(tags::INSTANCE_AVAILABILITY, "CS", "ONLINE");
    d.int(tags::NUMBER_OF_SERIES_RELATED_INSTANCES, "IS", Some(r.number_of_instances));
    d.text(tags::RETRIEVE_URL, "UR", &format!("{base}/studies/{}/series/{}", r.study.study_uid, r.series.series_uid));
    let missing: Vec<Tag> = includes.tags.iter().copied().filter(|t| !d.has(*t)).collect();
    if !missing.is_empty() {
        let scope = Scope { study: r.study.study_uid.clone(), series: Some(r.series.series_uid.clone()), instance: None };
        if let Some((row, meta)) = archive.sample_metadata(who, &scope).await? {
            d.merge(&meta, &Includes { all: false, tags: missing }, &instance_url(base, &row), false);
        }
    }
    Ok(d.into_json())
}

pub(crate) fn instance_json(r: &Found, base: &str, includes: &Includes, metadata: Option<&str>) -> String {
    let mut d = Doc::default();
    d.text(tags::SPECIFIC_CHARACTER_SET, "CS", "ISO_IR 192");
    d.text(tags::STUDY_INSTANCE_UID, "UI", r.study.study_uid.as_str());
    d.text(tags::SERIES_INSTANCE_UID, "UI", r.series.series_uid.as_str());
    d.text(tags::MODALITY, "CS", &r.series.modality);
    d.int(tags::SERIES_NUMBER, "IS", r.series.series_number);
    let i = &r.instance;
    d.text(tags::SOP_CLASS_UID, "UI", i.sop_class_uid.as_str());
    d.text(tags::SOP_INSTANCE_UID, "UI", i.sop_uid.as_str());
    d.text(tags::INSTANCE_AVAILABILITY, "CS", "ONLINE");
    d.int(tags::INSTANCE_NUMBER, "IS", i.instance_number);
    d.int(tags::ROWS, "US", i.rows);
    d.int(tags::COLUMNS, "US", i.columns);
    d.int(tags::BITS_ALLOCATED, "US", i.bits_allocated);
    d.int(tags::NUMBER_OF_FRAMES, "IS", i.number_of_frames);
    d.text(tags::AVAILABLE_TRANSFER_SYNTAX_UID, "UI", &i.transfer_syntax);
    d.text(tags::RETRIEVE_URL, "UR", &instance_url(base, r));
    let m = &i.multi_frame;
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    for tag in MULTI_FRAME_TAGS.into_iter().filter(|t| includes.wants(*t)) {
        match tag {
            tags::CONCATENATION_UID => d.text(tag, "UI", &opt(&m.concatenation_uid)),
            tags::SOP_INSTANCE_UID_OF_CONCATENATION_SOURCE => d.text(tag, "UI", &opt(&m.concatenation_source)),
            tags::IN_CONCATENATION_NUMBER => d.int(tag, "US", m.in_concatenation_number),
            tags::DIMENSION_ORGANIZATION_TYPE => d.text(tag, "CS", &opt(&m.dimension_organization_type)),
            tags::TOTAL_PIXEL_MATRIX_COLUMNS => d.int(tag, "UL", m.total_pixel_matrix_columns),
            _ => d.int(tag, "UL", m.total_pixel_matrix_rows),
        }
    }
    if let Some(meta) = metadata {
        d.merge(meta, includes, &instance_url(base, r), true);
    }
    d.into_json()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_doc_is_dicom_json_in_tag_order_with_every_string_escaped() {
        let mut d = Doc::default();
        d.text(tags::STUDY_DESCRIPTION, "LO", "a \"quoted\" back\\slash\ttab\u{1}ctl Ünïcødé");
        d.pn(tags::PATIENT_NAME, "Yamada^Tarou=山田^太郎=やまだ^たろう");
        d.pn(tags::REFERRING_PHYSICIAN_NAME, "");
        d.list(tags::MODALITIES_IN_STUDY, "CS", &["CT".into(), "MR".into()]);
        d.list(tags::SOP_CLASSES_IN_STUDY, "UI", &[]);
        d.int(tags::NUMBER_OF_STUDY_RELATED_INSTANCES, "IS", Some(-3));
        d.int(tags::SERIES_NUMBER, "IS", None);
        d.text(tags::ACCESSION_NUMBER, "SH", "replaced");
        d.text(tags::ACCESSION_NUMBER, "SH", "");
        let meta =
            r#"{"00080050":{"vr":"SH","Value":["from metadata"]},"00180050":{"vr":"DS","Value":[1.5]},"00200013":{"vr":"IS","Value":[7]}}"#;
        d.merge(meta, &Includes { all: false, tags: vec![tags::ACCESSION_NUMBER, Tag(0x0018, 0x0050)] }, "http://x/i", false);
        let text = d.into_json();
        let keys: Vec<&str> = text.match_indices("\":{").map(|(i, _)| &text[i - 8..i]).collect();
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        assert_eq!(keys, sorted, "attributes in tag order");
        let got: Value = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(
            got,
            json!({
                "00080050": { "vr": "SH" },
                "00080061": { "vr": "CS", "Value": ["CT", "MR"] },
                "00080062": { "vr": "UI" },
                "00080090": { "vr": "PN" },
                "00081030": { "vr": "LO", "Value": ["a \"quoted\" back\\slash\ttab\u{1}ctl Ünïcødé"] },
                "00100010": { "vr": "PN", "Value": [{ "Alphabetic": "Yamada^Tarou", "Ideographic": "山田^太郎", "Phonetic": "やまだ^たろう" }] },
                "00180050": { "vr": "DS", "Value": [1.5] },
                "00200011": { "vr": "IS" },
                "00201208": { "vr": "IS", "Value": [-3] },
            })
        );
    }
}
