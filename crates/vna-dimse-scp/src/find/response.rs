//! Catalog row → response identifier of a Pending C-FIND-RSP (PS3.4 §C.4.1.1.3.2): exactly the
//! requested keys with the archive's values, keys it cannot answer zero-length, plus
//! Query/Retrieve Level, Specific Character Set and Retrieve AE Title.

use super::keys;
use super::{FindRequest, QueryLevel};
use std::io::Write;
use vna_archive::model::{InstanceAttrs, InstanceRow, PatientAttrs, PatientRow, SeriesAttrs, SeriesRow, StudyAttrs, StudyRow};
use vna_dicom::write::{data_set, Items};
use vna_dicom::{tags, ts, Tag, VR};

/// One result of a catalog query, at the level it was asked for.
#[derive(Debug, Clone, Copy)]
pub enum FindRow<'a> {
    Patient(&'a PatientRow),
    Study(&'a StudyRow),
    Series(&'a SeriesRow),
    Image(&'a InstanceRow),
}

impl FindRow<'_> {
    pub fn level(&self) -> QueryLevel {
        match self {
            FindRow::Patient(_) => QueryLevel::Patient,
            FindRow::Study(_) => QueryLevel::Study,
            FindRow::Series(_) => QueryLevel::Series,
            FindRow::Image(_) => QueryLevel::Image,
        }
    }

    fn patient(&self) -> &PatientAttrs {
        match self {
            FindRow::Patient(r) => &r.patient,
            FindRow::Study(r) => &r.patient,
            FindRow::Series(r) => &r.patient,
            FindRow::Image(r) => &r.patient,
        }
    }

    fn study(&self) -> Option<&StudyAttrs> {
        match self {
            FindRow::Patient(_) => None,
            FindRow::Study(r) => Some(&r.study),
            FindRow::Series(r) => Some(&r.study),
            FindRow::Image(r) => Some(&r.study),
        }
    }

    fn series(&self) -> Option<&SeriesAttrs> {
        match self {
            FindRow::Series(r) => Some(&r.series),
            FindRow::Image(r) => Some(&r.series),
            _ => None,
        }
    }

    fn instance(&self) -> Option<&InstanceAttrs> {
        match self {
            FindRow::Image(r) => Some(&r.instance),
            _ => None,
        }
    }
}

/// How response identifiers are encoded: the presentation context's transfer syntax.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseEncoding {
    ImplicitLittleEndian,
    ExplicitLittleEndian,
    /// Deflated Explicit VR Little Endian (PS3.5 §A.5): raw deflate of the explicit encoding.
    DeflatedExplicitLittleEndian,
}

impl ResponseEncoding {
    /// `None` for syntaxes a query context should not have accepted (big endian, or an
    /// encapsulated pixel syntax, which a data set without pixels cannot use).
    pub fn for_transfer_syntax(uid: &str) -> Option<Self> {
        match uid.trim_end_matches(['\0', ' ']) {
            ts::IMPLICIT_VR_LITTLE_ENDIAN => Some(ResponseEncoding::ImplicitLittleEndian),
            ts::EXPLICIT_VR_LITTLE_ENDIAN => Some(ResponseEncoding::ExplicitLittleEndian),
            ts::DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN => Some(ResponseEncoding::DeflatedExplicitLittleEndian),
            _ => None,
        }
    }
}

/// The response identifier as a data set to write (see [`response_identifier`]).
pub fn response_items(req: &FindRequest, row: FindRow<'_>, retrieve_ae_title: Option<&str>) -> Items {
    let mut items = Items::new()
        // Values come from the catalog as UTF-8 (PS3.5 §6.1.2.3).
        .str(tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192")
        .str(tags::QUERY_RETRIEVE_LEVEL, VR::CS, req.level.code());
    if let Some(ae) = retrieve_ae_title {
        items = items.str(tags::RETRIEVE_AE_TITLE, VR::AE, ae);
    }
    for key in &req.requested {
        let answered = keys::lookup(key.tag).is_some_and(|d| d.answered_at(req.model, req.level));
        items = match (answered.then(|| answer(key.tag, &row)).flatten(), key.vr) {
            (_, VR::SQ) => items.sequence(key.tag, Vec::new(), false),
            (Some(Answer::Text(s)), vr) => items.str(key.tag, vr, &s),
            (Some(Answer::U16(n)), _) => items.u16(key.tag, n),
            (None, vr) => items.bytes(key.tag, vr, Vec::new()),
        };
    }
    items
}

/// The response identifier bytes of one Pending C-FIND-RSP for `row`.
pub fn response_identifier(req: &FindRequest, row: FindRow<'_>, retrieve_ae_title: Option<&str>, encoding: ResponseEncoding) -> Vec<u8> {
    let items = response_items(req, row, retrieve_ae_title);
    match encoding {
        ResponseEncoding::ImplicitLittleEndian => data_set(&items, ts::IMPLICIT_VR_LITTLE_ENDIAN),
        ResponseEncoding::ExplicitLittleEndian => data_set(&items, ts::EXPLICIT_VR_LITTLE_ENDIAN),
        ResponseEncoding::DeflatedExplicitLittleEndian => {
            let plain = data_set(&items, ts::EXPLICIT_VR_LITTLE_ENDIAN);
            let mut enc = flate2::write::DeflateEncoder::new(Vec::with_capacity(plain.len()), flate2::Compression::default());
            enc.write_all(&plain).and_then(|()| enc.finish()).expect("deflating into memory cannot fail")
        }
    }
}

enum Answer {
    Text(String),
    U16(u16),
}

fn text(s: &str) -> Option<Answer> {
    Some(Answer::Text(s.to_owned()))
}

fn int(n: Option<i64>) -> Option<Answer> {
    n.map(|n| Answer::Text(n.to_string()))
}

fn us(n: Option<i64>) -> Option<Answer> {
    n.and_then(|n| u16::try_from(n).ok()).map(Answer::U16)
}

/// The archive's value of `tag` for `row`; `None` when the row does not have it.
fn answer(tag: Tag, row: &FindRow<'_>) -> Option<Answer> {
    let p = row.patient();
    match tag {
        tags::PATIENT_NAME => text(&p.patient_name),
        tags::PATIENT_ID => text(&p.patient_id),
        tags::ISSUER_OF_PATIENT_ID => text(&p.issuer_of_patient_id),
        tags::PATIENT_BIRTH_DATE => text(&p.patient_birth_date),
        tags::PATIENT_SEX => text(&p.patient_sex),
        tags::INSTANCE_AVAILABILITY => text("ONLINE"),
        tags::NUMBER_OF_PATIENT_RELATED_STUDIES | tags::NUMBER_OF_PATIENT_RELATED_SERIES | tags::NUMBER_OF_PATIENT_RELATED_INSTANCES => {
            let FindRow::Patient(r) = row else { return None };
            int(Some(match tag {
                tags::NUMBER_OF_PATIENT_RELATED_STUDIES => r.number_of_studies,
                tags::NUMBER_OF_PATIENT_RELATED_SERIES => r.number_of_series,
                _ => r.number_of_instances,
            }))
        }
        tags::MODALITIES_IN_STUDY
        | tags::SOP_CLASSES_IN_STUDY
        | tags::NUMBER_OF_STUDY_RELATED_SERIES
        | tags::NUMBER_OF_STUDY_RELATED_INSTANCES => {
            let FindRow::Study(r) = row else { return None };
            match tag {
                tags::MODALITIES_IN_STUDY => text(&r.modalities_in_study.join("\\")),
                tags::SOP_CLASSES_IN_STUDY => text(&r.sop_classes_in_study.join("\\")),
                tags::NUMBER_OF_STUDY_RELATED_SERIES => int(Some(r.number_of_series)),
                _ => int(Some(r.number_of_instances)),
            }
        }
        tags::NUMBER_OF_SERIES_RELATED_INSTANCES => {
            let FindRow::Series(r) = row else { return None };
            int(Some(r.number_of_instances))
        }
        _ => study_answer(tag, row.study()?)
            .or_else(|| row.series().and_then(|s| series_answer(tag, s)))
            .or_else(|| row.instance().and_then(|i| instance_answer(tag, i))),
    }
}

fn study_answer(tag: Tag, s: &StudyAttrs) -> Option<Answer> {
    match tag {
        tags::STUDY_INSTANCE_UID => text(s.study_uid.as_str()),
        tags::STUDY_DATE => text(&s.study_date),
        tags::STUDY_TIME => text(&s.study_time),
        tags::ACCESSION_NUMBER => text(&s.accession_number),
        tags::STUDY_ID => text(&s.study_id),
        tags::REFERRING_PHYSICIAN_NAME => text(&s.referring_physician_name),
        tags::STUDY_DESCRIPTION => text(&s.study_description),
        _ => None,
    }
}

fn series_answer(tag: Tag, s: &SeriesAttrs) -> Option<Answer> {
    match tag {
        tags::SERIES_INSTANCE_UID => text(s.series_uid.as_str()),
        tags::MODALITY => text(&s.modality),
        tags::SERIES_NUMBER => int(s.series_number),
        tags::SERIES_DESCRIPTION => text(&s.series_description),
        tags::BODY_PART_EXAMINED => text(&s.body_part_examined),
        tags::PERFORMED_PROCEDURE_STEP_START_DATE => text(&s.performed_procedure_step_start_date),
        tags::PERFORMED_PROCEDURE_STEP_START_TIME => text(&s.performed_procedure_step_start_time),
        _ => None,
    }
}

fn instance_answer(tag: Tag, i: &InstanceAttrs) -> Option<Answer> {
    match tag {
        tags::SOP_INSTANCE_UID => text(i.sop_uid.as_str()),
        tags::SOP_CLASS_UID => text(i.sop_class_uid.as_str()),
        tags::INSTANCE_NUMBER => int(i.instance_number),
        tags::ROWS => us(i.rows),
        tags::COLUMNS => us(i.columns),
        tags::BITS_ALLOCATED => us(i.bits_allocated),
        tags::NUMBER_OF_FRAMES => int(i.number_of_frames),
        tags::CONCATENATION_UID => text(i.multi_frame.concatenation_uid.as_deref().unwrap_or("")),
        tags::SOP_INSTANCE_UID_OF_CONCATENATION_SOURCE => text(i.multi_frame.concatenation_source.as_deref().unwrap_or("")),
        tags::IN_CONCATENATION_NUMBER => us(i.multi_frame.in_concatenation_number),
        tags::DIMENSION_ORGANIZATION_TYPE => text(i.multi_frame.dimension_organization_type.as_deref().unwrap_or("")),
        _ => None,
    }
}
