//! The archive's query vocabulary, one for every front end: which attributes can be matched,
//! how each value is written, and the one parser of matching keys (PS3.4 §C.2.2.2) that
//! QIDO-RS and C-FIND both call, so that the same value matches the same instances whichever
//! protocol carries it. Front ends hand in decoded text (QIDO: the URL's value; C-FIND: the
//! identifier's value decoded with its Specific Character Set) and get a [`Matcher`].
//!
//! The query model itself ([`Query`], [`Filter`], [`Key`], [`Matcher`], [`Level`]) is
//! defined beside the SQL that translates it, in the catalog, and re-exported here: front
//! ends name it through the archive.

pub use vna_catalog::{Filter, Key, Level, Matcher, Query};
use vna_dicom::{tags, Tag};

/// How a key's values are written (PS3.5 Table 6.2-1) and so which matching types apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    /// UI: single value or a list (PS3.4 §C.2.2.2.2), never wildcards.
    Uid,
    /// DA: single value or range (§C.2.2.2.5).
    Date,
    /// TM: a value stands for the span it names ("10" is 10:00–10:59:59.999999), or a range.
    Time,
    /// IS/US: single value, compared as a number.
    Int,
    /// PN: single value, wildcard, or fuzzy when asked (§C.2.2.2.1).
    PersonName,
    /// CS attributes where a list means any of its values (Modality, Modalities in Study).
    CodeList,
    /// Other strings: single value or wildcard (§C.2.2.2.4).
    Text,
}

/// An attribute the catalog matches on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatchingKey {
    pub tag: Tag,
    pub key: Key,
    pub kind: ValueKind,
}

const fn mk(tag: Tag, key: Key, kind: ValueKind) -> MatchingKey {
    MatchingKey { tag, key, kind }
}

/// Every matching key, each served by an index in the catalog.
pub const MATCHING_KEYS: &[MatchingKey] = &[
    mk(tags::PATIENT_ID, Key::PatientId, ValueKind::Text),
    mk(tags::ISSUER_OF_PATIENT_ID, Key::IssuerOfPatientId, ValueKind::Text),
    mk(tags::PATIENT_NAME, Key::PatientName, ValueKind::PersonName),
    mk(tags::PATIENT_BIRTH_DATE, Key::PatientBirthDate, ValueKind::Date),
    mk(tags::PATIENT_SEX, Key::PatientSex, ValueKind::Text),
    mk(tags::STUDY_INSTANCE_UID, Key::StudyUid, ValueKind::Uid),
    mk(tags::STUDY_DATE, Key::StudyDate, ValueKind::Date),
    mk(tags::STUDY_TIME, Key::StudyTime, ValueKind::Time),
    mk(tags::ACCESSION_NUMBER, Key::AccessionNumber, ValueKind::Text),
    mk(tags::STUDY_ID, Key::StudyId, ValueKind::Text),
    mk(tags::REFERRING_PHYSICIAN_NAME, Key::ReferringPhysicianName, ValueKind::PersonName),
    mk(tags::STUDY_DESCRIPTION, Key::StudyDescription, ValueKind::Text),
    mk(tags::MODALITIES_IN_STUDY, Key::ModalitiesInStudy, ValueKind::CodeList),
    mk(tags::SERIES_INSTANCE_UID, Key::SeriesUid, ValueKind::Uid),
    mk(tags::MODALITY, Key::Modality, ValueKind::CodeList),
    mk(tags::SERIES_NUMBER, Key::SeriesNumber, ValueKind::Int),
    mk(tags::SERIES_DESCRIPTION, Key::SeriesDescription, ValueKind::Text),
    mk(tags::BODY_PART_EXAMINED, Key::BodyPartExamined, ValueKind::Text),
    mk(tags::PERFORMED_PROCEDURE_STEP_START_DATE, Key::PerformedProcedureStepStartDate, ValueKind::Date),
    mk(tags::SOP_INSTANCE_UID, Key::SopInstanceUid, ValueKind::Uid),
    mk(tags::SOP_CLASS_UID, Key::SopClassUid, ValueKind::Uid),
    mk(tags::INSTANCE_NUMBER, Key::InstanceNumber, ValueKind::Int),
    mk(tags::CONCATENATION_UID, Key::ConcatenationUid, ValueKind::Uid),
    mk(tags::SOP_INSTANCE_UID_OF_CONCATENATION_SOURCE, Key::ConcatenationSource, ValueKind::Uid),
    mk(tags::IN_CONCATENATION_NUMBER, Key::InConcatenationNumber, ValueKind::Int),
    mk(tags::DIMENSION_ORGANIZATION_TYPE, Key::DimensionOrganizationType, ValueKind::Text),
    mk(tags::TOTAL_PIXEL_MATRIX_COLUMNS, Key::TotalPixelMatrixColumns, ValueKind::Int),
    mk(tags::TOTAL_PIXEL_MATRIX_ROWS, Key::TotalPixelMatrixRows, ValueKind::Int),
];

/// The matching key of an attribute, if the catalog matches on it.
pub fn matching_key(tag: Tag) -> Option<&'static MatchingKey> {
    MATCHING_KEYS.iter().find(|k| k.tag == tag)
}

/// What a front end allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatchOptions {
    /// PN fuzzy matching: QIDO `fuzzymatching=true`, C-FIND when negotiated.
    pub fuzzy: bool,
    /// Most values in a list (the archive's `max_list_items`).
    pub max_list: usize,
}

/// Why a value cannot be matched. Messages describe the form expected, never the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MatchError {
    #[error("not a valid UID (digits and dots, at most 64 characters; wildcards do not apply to UIDs)")]
    Uid,
    #[error("a date is YYYYMMDD, or a range A-B, -B or A-")]
    Date,
    #[error("a time is HH[MM[SS[.FFFFFF]]], or a range A-B, -B or A-")]
    Time,
    #[error("not an integer")]
    Int,
    #[error("a list has at most {max} values")]
    TooManyValues { max: usize },
    #[error("a value cannot contain NUL (0x00)")]
    Nul,
}

/// PS3.4 §C.2.2.2: the matching type of `value` for `key`; `None` is universal matching (an
/// empty value, §C.2.2.2.3, or only `*`, §C.2.2.2.4). Leading and trailing spaces are not
/// part of a value. A NUL is in no value's repertoire (PS3.5 §6.1, §6.2): the front end strips
/// the one NUL that pads a DICOM value, and any NUL left is refused — read as padding, a lone
/// NUL would be an empty value, a universal match.
pub fn parse_match(key: &MatchingKey, value: &str, options: MatchOptions) -> Result<Option<Matcher>, MatchError> {
    if value.contains('\0') {
        return Err(MatchError::Nul);
    }
    let v = value.trim_matches(' ');
    if v.is_empty() || v == "*" {
        return Ok(None);
    }
    let wildcard = v.contains(['*', '?']);
    Ok(Some(match key.kind {
        // §C.2.2.2.2: a list of UIDs, backslash-separated (PS3.18 §8.3.4.1 also allows commas).
        ValueKind::Uid => {
            let uids = list(v, options.max_list)?;
            for u in &uids {
                vna_dicom::uid::validate(u).map_err(|_| MatchError::Uid)?;
            }
            one_or_list(uids)
        }
        ValueKind::Date => date(v).ok_or(MatchError::Date)?,
        ValueKind::Time => time(v).ok_or(MatchError::Time)?,
        ValueKind::Int => Matcher::Single(v.parse::<i64>().map_err(|_| MatchError::Int)?.to_string()),
        ValueKind::PersonName if options.fuzzy => Matcher::Fuzzy(v.to_owned()),
        ValueKind::CodeList if !wildcard => one_or_list(list(v, options.max_list)?),
        ValueKind::PersonName | ValueKind::CodeList | ValueKind::Text if wildcard => Matcher::Wildcard(v.to_owned()),
        ValueKind::PersonName | ValueKind::CodeList | ValueKind::Text => Matcher::Single(v.to_owned()),
    }))
}

fn list(v: &str, max: usize) -> Result<Vec<String>, MatchError> {
    let values: Vec<String> = v.split(['\\', ',']).map(|s| s.trim_matches(' ')).filter(|s| !s.is_empty()).map(str::to_owned).collect();
    if values.len() > max {
        return Err(MatchError::TooManyValues { max });
    }
    Ok(values)
}

fn one_or_list(mut values: Vec<String>) -> Matcher {
    if values.len() == 1 {
        Matcher::Single(values.remove(0))
    } else {
        Matcher::List(values)
    }
}

/// DA: `YYYYMMDD`, or a range `a-b`, `-b`, `a-` (§C.2.2.2.5).
fn date(v: &str) -> Option<Matcher> {
    let is_date = |s: &str| s.len() == 8 && s.bytes().all(|b| b.is_ascii_digit());
    match v.split_once('-') {
        None => is_date(v).then(|| Matcher::Single(v.to_owned())),
        Some((from, to)) => {
            let (from, to) = (from.trim(), to.trim());
            if (from.is_empty() && to.is_empty()) || [from, to].iter().any(|s| !s.is_empty() && !is_date(s)) {
                return None;
            }
            let bound = |s: &str| (!s.is_empty()).then(|| s.to_owned());
            Some(Matcher::Range { from: bound(from), to: bound(to) })
        }
    }
}

/// TM: `HH[MM[SS[.F{1,6}]]]` (colons of the old `HH:MM:SS` form tolerated), or a range. A value
/// stands for the whole span it names, so "10" matches 10:00:00 to 10:59:59.999999, and an
/// upper bound is widened the same way (§C.2.2.2.5 compares times, not strings).
fn time(v: &str) -> Option<Matcher> {
    let v = v.replace(':', "");
    match v.split_once('-') {
        None => Some(Matcher::Range { from: Some(time_value(&v)?.to_owned()), to: Some(time_upper(&v)?) }),
        Some((from, to)) => {
            let (from, to) = (from.trim(), to.trim());
            if from.is_empty() && to.is_empty() {
                return None;
            }
            let from = if from.is_empty() { None } else { Some(time_value(from)?.to_owned()) };
            let to = if to.is_empty() { None } else { Some(time_upper(to)?) };
            Some(Matcher::Range { from, to })
        }
    }
}

fn time_value(s: &str) -> Option<&str> {
    let (hms, fraction) = match s.split_once('.') {
        Some((hms, f)) => (hms, Some(f)),
        None => (s, None),
    };
    let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    let ok_hms = matches!(hms.len(), 2 | 4 | 6) && digits(hms);
    let ok_fraction = match fraction {
        None => true,
        Some(f) => hms.len() == 6 && (1..=6).contains(&f.len()) && digits(f),
    };
    (ok_hms && ok_fraction).then_some(s)
}

fn time_upper(s: &str) -> Option<String> {
    let s = time_value(s)?;
    Some(match s.split_once('.') {
        Some((hms, f)) => format!("{hms}.{f:9<6}"),
        // `time_value` allows 2, 4 or 6 digits here: the suffix completes them to HHMMSS.FFFFFF.
        None => format!("{s}{}", &"5959.999999"[s.len() - 2..]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPTS: MatchOptions = MatchOptions { fuzzy: false, max_list: 3 };

    fn m(tag: Tag, v: &str) -> Result<Option<Matcher>, MatchError> {
        parse_match(matching_key(tag).expect("a matching key"), v, OPTS)
    }

    fn s(v: &str) -> Option<Matcher> {
        Some(Matcher::Single(v.into()))
    }

    #[test]
    fn universal_single_and_wildcard() {
        assert_eq!(m(tags::PATIENT_NAME, ""), Ok(None));
        assert_eq!(m(tags::PATIENT_NAME, "*"), Ok(None));
        assert_eq!(m(tags::PATIENT_NAME, "  "), Ok(None));
        assert_eq!(m(tags::PATIENT_NAME, "Doe^Jane "), Ok(s("Doe^Jane")));
        assert_eq!(m(tags::PATIENT_NAME, "Doe*"), Ok(Some(Matcher::Wildcard("Doe*".into()))));
        assert_eq!(m(tags::PATIENT_ID, "A?C"), Ok(Some(Matcher::Wildcard("A?C".into()))));
        let fuzzy = MatchOptions { fuzzy: true, ..OPTS };
        assert_eq!(parse_match(matching_key(tags::PATIENT_NAME).expect("key"), "jurg", fuzzy), Ok(Some(Matcher::Fuzzy("jurg".into()))));
        assert_eq!(parse_match(matching_key(tags::PATIENT_ID).expect("key"), "jurg", fuzzy), Ok(s("jurg")), "fuzzy is for names");
    }

    #[test]
    fn uids_and_lists() {
        assert_eq!(m(tags::STUDY_INSTANCE_UID, "1.2.3"), Ok(s("1.2.3")));
        assert_eq!(m(tags::STUDY_INSTANCE_UID, "1.2.3\\1.2.4"), Ok(Some(Matcher::List(vec!["1.2.3".into(), "1.2.4".into()]))));
        assert_eq!(m(tags::STUDY_INSTANCE_UID, "1.2.3,1.2.4"), Ok(Some(Matcher::List(vec!["1.2.3".into(), "1.2.4".into()]))));
        assert_eq!(m(tags::STUDY_INSTANCE_UID, "1.2.*"), Err(MatchError::Uid));
        assert_eq!(m(tags::STUDY_INSTANCE_UID, "1.2.3.x"), Err(MatchError::Uid));
        assert_eq!(m(tags::STUDY_INSTANCE_UID, "1,2,3,4"), Err(MatchError::TooManyValues { max: 3 }));
        assert_eq!(m(tags::MODALITY, "CT\\MR"), Ok(Some(Matcher::List(vec!["CT".into(), "MR".into()]))));
        assert_eq!(m(tags::MODALITIES_IN_STUDY, "CT"), Ok(s("CT")));
        assert_eq!(m(tags::MODALITY, "C*"), Ok(Some(Matcher::Wildcard("C*".into()))));
    }

    #[test]
    fn dates_times_numbers() {
        assert_eq!(m(tags::STUDY_DATE, "20240102"), Ok(s("20240102")));
        assert_eq!(
            m(tags::STUDY_DATE, "20240101-20241231"),
            Ok(Some(Matcher::Range { from: Some("20240101".into()), to: Some("20241231".into()) }))
        );
        assert_eq!(m(tags::STUDY_DATE, "-20241231"), Ok(Some(Matcher::Range { from: None, to: Some("20241231".into()) })));
        for bad in ["2024", "2024-01-02", "-", "20240101-2024"] {
            assert_eq!(m(tags::STUDY_DATE, bad), Err(MatchError::Date), "{bad}");
        }
        // "10" is the hour, over both protocols.
        assert_eq!(m(tags::STUDY_TIME, "10"), Ok(Some(Matcher::Range { from: Some("10".into()), to: Some("105959.999999".into()) })));
        assert_eq!(m(tags::STUDY_TIME, "1015"), Ok(Some(Matcher::Range { from: Some("1015".into()), to: Some("101559.999999".into()) })));
        assert_eq!(
            m(tags::STUDY_TIME, "10:15:30"),
            Ok(Some(Matcher::Range { from: Some("101530".into()), to: Some("101530.999999".into()) }))
        );
        assert_eq!(
            m(tags::STUDY_TIME, "101530.5"),
            Ok(Some(Matcher::Range { from: Some("101530.5".into()), to: Some("101530.599999".into()) }))
        );
        assert_eq!(m(tags::STUDY_TIME, "08-12"), Ok(Some(Matcher::Range { from: Some("08".into()), to: Some("125959.999999".into()) })));
        for bad in ["1", "101", "25x", "10.5", "-"] {
            assert_eq!(m(tags::STUDY_TIME, bad), Err(MatchError::Time), "{bad}");
        }
        assert_eq!(m(tags::SERIES_NUMBER, " 007 "), Ok(s("7")));
        assert_eq!(m(tags::SERIES_NUMBER, "7a"), Err(MatchError::Int));
    }

    #[test]
    fn a_nul_is_refused_wherever_it_is() {
        // A lone NUL read as padding would be an empty value: a universal match.
        for (tag, v) in [
            (tags::STUDY_DESCRIPTION, "\0"),
            (tags::STUDY_DESCRIPTION, " \0 "),
            (tags::PATIENT_NAME, "Doe\0*"),
            (tags::STUDY_INSTANCE_UID, "1.2.3\0"),
            (tags::STUDY_INSTANCE_UID, "1.2.3\\\0"),
            (tags::STUDY_DATE, "20240102\0"),
            (tags::MODALITY, "CT\\\0"),
        ] {
            assert_eq!(m(tag, v), Err(MatchError::Nul), "{v:?}");
        }
    }

    #[test]
    fn every_key_has_one_entry() {
        for (i, k) in MATCHING_KEYS.iter().enumerate() {
            assert!(MATCHING_KEYS[i + 1..].iter().all(|o| o.tag != k.tag && o.key != k.key), "{k:?} twice");
        }
    }
}
