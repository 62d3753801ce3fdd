//! Identifier → FindRequest: levels against models, the hierarchy's unique keys, every
//! matching type of PS3.4 §C.2.2.2, character sets, and the failure statuses.

use super::test_support::*;
use super::*;
use vna_archive::query::{Filter, Key, Level, Matcher};
use vna_dicom::tags;
use vna_dicom::write::Items;

fn filters(r: &FindRequest) -> Vec<(Key, Matcher)> {
    r.query.filters.iter().map(|Filter { key, matcher }| (*key, matcher.clone())).collect()
}

fn single(s: &str) -> Matcher {
    Matcher::Single(s.into())
}

fn range(from: Option<&str>, to: Option<&str>) -> Matcher {
    Matcher::Range { from: from.map(Into::into), to: to.map(Into::into) }
}

/// A Patient Root PATIENT-level request with one key.
fn patient_key(tag: Tag, vr: VR, value: &str) -> Result<FindRequest, FindError> {
    find(PATIENT_ROOT_FIND, qr("PATIENT").str(tag, vr, value))
}

/// A Study Root STUDY-level request with one key.
fn study_key(tag: Tag, vr: VR, value: &str) -> Result<FindRequest, FindError> {
    find(STUDY_ROOT_FIND, qr("STUDY").str(tag, vr, value))
}

#[test]
fn every_level_of_both_models() {
    let study = tags::STUDY_INSTANCE_UID;
    let cases: [(&str, &str, Items, Level); 7] = [
        (PATIENT_ROOT_FIND, "PATIENT", qr("PATIENT"), Level::Patient),
        (PATIENT_ROOT_FIND, "STUDY", qr("STUDY").str(tags::PATIENT_ID, VR::LO, "P1"), Level::Study),
        (PATIENT_ROOT_FIND, "SERIES", qr("SERIES").str(tags::PATIENT_ID, VR::LO, "P1").str(study, VR::UI, "1.2"), Level::Series),
        (
            PATIENT_ROOT_FIND,
            "IMAGE",
            qr("IMAGE").str(tags::PATIENT_ID, VR::LO, "P1").str(study, VR::UI, "1.2").str(tags::SERIES_INSTANCE_UID, VR::UI, "1.2.3"),
            Level::Instance,
        ),
        (STUDY_ROOT_FIND, "STUDY", qr("STUDY"), Level::Study),
        (STUDY_ROOT_FIND, "SERIES", qr("SERIES").str(study, VR::UI, "1.2"), Level::Series),
        (STUDY_ROOT_FIND, "IMAGE", qr("IMAGE").str(study, VR::UI, "1.2").str(tags::SERIES_INSTANCE_UID, VR::UI, "1.2.3"), Level::Instance),
    ];
    for (model, code, identifier, level) in cases {
        let r = find(model, identifier).unwrap_or_else(|e| panic!("{model} {code}: {e}"));
        assert_eq!((r.level.code(), r.query.level), (code, level));
        assert_eq!((r.query.limit, r.query.offset), (None, 0));
        // The upper unique keys are matched (single value) and returned.
        let uniques = filters(&r).iter().filter(|(_, m)| matches!(m, Matcher::Single(_))).count();
        assert_eq!(uniques, r.requested.len(), "{model} {code}");
    }
    assert_eq!(find(PATIENT_ROOT_FIND, qr("PATIENT")).unwrap().model, InformationModel::PatientRoot);
    assert_eq!(find(STUDY_ROOT_FIND, qr("STUDY")).unwrap().model, InformationModel::StudyRoot);
}

#[test]
fn invalid_levels_and_models() {
    let err = find(STUDY_ROOT_FIND, qr("PATIENT")).unwrap_err();
    assert_eq!(err, FindError::LevelNotInModel { model: "Study Root", level: "PATIENT" });
    assert_eq!((err.status(), err.offending_element()), (0xA900, Some(tags::QUERY_RETRIEVE_LEVEL)));
    let no_level = find(PATIENT_ROOT_FIND, Items::new().str(tags::PATIENT_ID, VR::LO, "P1")).unwrap_err();
    assert_eq!(no_level, FindError::MissingLevel);
    assert_eq!(find(PATIENT_ROOT_FIND, qr("")).unwrap_err(), FindError::MissingLevel);
    assert_eq!(find(PATIENT_ROOT_FIND, qr("WORKLIST")).unwrap_err(), FindError::UnknownLevel);
    assert_eq!(find(PATIENT_ROOT_FIND, qr("study")).unwrap_err(), FindError::UnknownLevel, "CS is upper case");
    // Modality Worklist FIND is not a query/retrieve model.
    let err = find("1.2.840.10008.5.1.4.31", qr("STUDY")).unwrap_err();
    assert_eq!((err.clone(), err.status(), err.offending_element()), (FindError::UnsupportedModel, 0x0122, None));
}

#[test]
fn hierarchy_requires_single_unique_keys_above() {
    use FindError::{MissingUniqueKey, UniqueKeyNotSingle};
    let study = tags::STUDY_INSTANCE_UID;
    let series = tags::SERIES_INSTANCE_UID;
    let pid = tags::PATIENT_ID;
    assert_eq!(find(PATIENT_ROOT_FIND, qr("STUDY")).unwrap_err(), MissingUniqueKey { tag: pid });
    assert_eq!(find(PATIENT_ROOT_FIND, qr("STUDY").str(pid, VR::LO, "")).unwrap_err(), MissingUniqueKey { tag: pid });
    assert_eq!(find(PATIENT_ROOT_FIND, qr("STUDY").str(pid, VR::LO, "P*")).unwrap_err(), UniqueKeyNotSingle { tag: pid });
    let err = find(PATIENT_ROOT_FIND, qr("SERIES").str(pid, VR::LO, "P1")).unwrap_err();
    assert_eq!((err.clone(), err.offending_element()), (MissingUniqueKey { tag: study }, Some(study)));
    let list = qr("SERIES").str(pid, VR::LO, "P1").str(study, VR::UI, "1.2\\1.3");
    assert_eq!(find(PATIENT_ROOT_FIND, list).unwrap_err(), UniqueKeyNotSingle { tag: study });
    let no_series = qr("IMAGE").str(pid, VR::LO, "P1").str(study, VR::UI, "1.2");
    assert_eq!(find(PATIENT_ROOT_FIND, no_series).unwrap_err(), MissingUniqueKey { tag: series });
    assert_eq!(find(STUDY_ROOT_FIND, qr("SERIES")).unwrap_err(), MissingUniqueKey { tag: study });
    assert_eq!(find(STUDY_ROOT_FIND, qr("IMAGE").str(study, VR::UI, "1.2")).unwrap_err(), MissingUniqueKey { tag: series });
    // Study Root has no patient level: no Patient ID needed.
    assert!(find(STUDY_ROOT_FIND, qr("SERIES").str(study, VR::UI, "1.2")).is_ok());
    // Relational queries (extended negotiation) lift the requirement.
    let relational = FindOptions { relational: true, ..Default::default() };
    let r = find_with(PATIENT_ROOT_FIND, qr("IMAGE").str(tags::MODALITY, VR::CS, "CT"), relational).unwrap();
    assert_eq!(filters(&r), vec![(Key::Modality, single("CT"))]);
}

#[test]
fn matching_types() {
    use tags::*;
    let f = |r: Result<FindRequest, FindError>| filters(&r.unwrap());
    // Single value: exact, PN case-sensitive.
    assert_eq!(f(patient_key(PATIENT_ID, VR::LO, "PID-1")), vec![(Key::PatientId, single("PID-1"))]);
    assert_eq!(f(patient_key(PATIENT_NAME, VR::PN, "Doe^John")), vec![(Key::PatientName, single("Doe^John"))]);
    assert_eq!(f(study_key(SERIES_NUMBER, VR::IS, "3")), vec![], "series keys are below the study level");
    // Wildcards.
    assert_eq!(f(patient_key(PATIENT_NAME, VR::PN, "Doe*")), vec![(Key::PatientName, Matcher::Wildcard("Doe*".into()))]);
    assert_eq!(f(study_key(ACCESSION_NUMBER, VR::SH, "A?C")), vec![(Key::AccessionNumber, Matcher::Wildcard("A?C".into()))]);
    // Universal: an empty value or a lone "*" matches everything, and is still returned.
    for value in ["", "*"] {
        let r = patient_key(PATIENT_NAME, VR::PN, value).unwrap();
        assert!(r.query.filters.is_empty(), "{value:?}");
        assert_eq!(r.requested, vec![RequestedKey { tag: PATIENT_NAME, vr: VR::PN }]);
        assert!(r.unsupported.is_empty());
    }
    // Ranges on DA, open at either end.
    let date = |v: &str| study_key(STUDY_DATE, VR::DA, v);
    assert_eq!(f(date("20200101")), vec![(Key::StudyDate, single("20200101"))]);
    assert_eq!(f(date("20200101-20201231")), vec![(Key::StudyDate, range(Some("20200101"), Some("20201231")))]);
    assert_eq!(f(date("-20201231")), vec![(Key::StudyDate, range(None, Some("20201231")))]);
    assert_eq!(f(date("20200101-")), vec![(Key::StudyDate, range(Some("20200101"), None))]);
    assert_eq!(f(patient_key(PATIENT_BIRTH_DATE, VR::DA, "-19700101")), vec![(Key::PatientBirthDate, range(None, Some("19700101")))]);
    for bad in ["2020-01-01", "2020", "yesterday", "20200101-2021"] {
        let err = date(bad).unwrap_err();
        assert_eq!((err.clone(), err.status()), (FindError::InvalidValue { tag: STUDY_DATE }, 0xA900), "{bad:?}");
    }
    // TM: a value covers the span it names; upper bounds widen the same way.
    let time = |v: &str| f(study_key(STUDY_TIME, VR::TM, v));
    assert_eq!(time("10"), vec![(Key::StudyTime, range(Some("10"), Some("105959.999999")))]);
    assert_eq!(time("101500"), vec![(Key::StudyTime, range(Some("101500"), Some("101500.999999")))]);
    assert_eq!(time("0800-1030"), vec![(Key::StudyTime, range(Some("0800"), Some("103059.999999")))]);
    assert_eq!(time("-10:30:00.5"), vec![(Key::StudyTime, range(None, Some("103000.599999")))]);
    assert_eq!(study_key(STUDY_TIME, VR::TM, "10h").unwrap_err(), FindError::InvalidValue { tag: STUDY_TIME });
    // List of UIDs.
    let uids = f(study_key(STUDY_INSTANCE_UID, VR::UI, "1.2.3\\1.2.4"));
    assert_eq!(uids, vec![(Key::StudyUid, Matcher::List(vec!["1.2.3".into(), "1.2.4".into()]))]);
    assert_eq!(f(study_key(STUDY_INSTANCE_UID, VR::UI, "1.2.3")), vec![(Key::StudyUid, single("1.2.3"))]);
    // Modalities In Study is multi-valued.
    let mods = f(study_key(MODALITIES_IN_STUDY, VR::CS, "CT\\MR"));
    assert_eq!(mods, vec![(Key::ModalitiesInStudy, Matcher::List(vec!["CT".into(), "MR".into()]))]);
    // Fuzzy person names only when negotiated.
    let fuzzy = FindOptions { fuzzy: true, ..Default::default() };
    let r = find_with(STUDY_ROOT_FIND, qr("STUDY").str(REFERRING_PHYSICIAN_NAME, VR::PN, "smith"), fuzzy).unwrap();
    assert_eq!(filters(&r), vec![(Key::ReferringPhysicianName, Matcher::Fuzzy("smith".into()))]);
    let r = find_with(PATIENT_ROOT_FIND, qr("PATIENT").str(PATIENT_ID, VR::LO, "p*"), fuzzy).unwrap();
    assert_eq!(filters(&r), vec![(Key::PatientId, Matcher::Wildcard("p*".into()))], "only PN is fuzzy");
}

#[test]
fn keys_by_level_and_unsupported_keys() {
    use tags::*;
    // Study Root: patient attributes are study-level keys.
    let r = study_key(PATIENT_NAME, VR::PN, "Doe^Jane").unwrap();
    assert_eq!(filters(&r), vec![(Key::PatientName, single("Doe^Jane"))]);
    // Keys of higher levels are matched too; lower ones are universal and come back empty.
    let identifier = qr("SERIES")
        .str(STUDY_INSTANCE_UID, VR::UI, "1.2")
        .str(PATIENT_SEX, VR::CS, "F")
        .str(SOP_INSTANCE_UID, VR::UI, "1.2.3.4")
        .str(NUMBER_OF_STUDY_RELATED_SERIES, VR::IS, "")
        .str(INSTITUTION_NAME, VR::LO, "Somewhere")
        .sequence(REFERENCED_STUDY_SEQUENCE, vec![Items::new().str(REFERENCED_SOP_INSTANCE_UID, VR::UI, "1.9")], false)
        .str(Tag(0x0009, 0x0010), VR::LO, "PRIVATE CREATOR")
        .str(SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192")
        .str(RETRIEVE_AE_TITLE, VR::AE, "");
    let r = find(STUDY_ROOT_FIND, identifier).unwrap();
    assert_eq!(filters(&r), vec![(Key::PatientSex, single("F")), (Key::StudyUid, single("1.2"))]);
    let requested: Vec<Tag> = r.requested.iter().map(|k| k.tag).collect();
    let want =
        [INSTITUTION_NAME, REFERENCED_STUDY_SEQUENCE, PATIENT_SEX, STUDY_INSTANCE_UID, NUMBER_OF_STUDY_RELATED_SERIES, SOP_INSTANCE_UID];
    let mut want = want.to_vec();
    want.sort();
    assert_eq!(requested, want, "tag order; no private, level, charset or AE title");
    assert_eq!(r.unsupported, vec![SOP_INSTANCE_UID, INSTITUTION_NAME, REFERENCED_STUDY_SEQUENCE, NUMBER_OF_STUDY_RELATED_SERIES]);
    assert_eq!(r.requested[2], RequestedKey { tag: REFERENCED_STUDY_SEQUENCE, vr: VR::SQ });
    // Matching on a return-only key is universal.
    assert!(study_key(NUMBER_OF_STUDY_RELATED_INSTANCES, VR::IS, "3").unwrap().query.filters.is_empty());
    // Patient counters only exist at the patient level (Patient Root).
    assert!(study_key(NUMBER_OF_PATIENT_RELATED_STUDIES, VR::IS, "").unwrap().unsupported.contains(&NUMBER_OF_PATIENT_RELATED_STUDIES));
    assert!(patient_key(NUMBER_OF_PATIENT_RELATED_STUDIES, VR::IS, "").unwrap().unsupported.is_empty());
}

#[test]
fn specific_character_set_decodes_values() {
    for (charset, name) in [("ISO_IR 100", b"M\xfcller*".to_vec()), ("ISO_IR 192", "Müller*".as_bytes().to_vec())] {
        let identifier = qr("PATIENT").str(tags::SPECIFIC_CHARACTER_SET, VR::CS, charset).bytes(tags::PATIENT_NAME, VR::PN, padded(name));
        let r = find(PATIENT_ROOT_FIND, identifier).unwrap();
        assert_eq!(filters(&r), vec![(Key::PatientName, Matcher::Wildcard("Müller*".into()))], "{charset}");
    }
    // Without a declared repertoire, UTF-8 is recognised (and anything else read as Latin-1).
    let r = find(PATIENT_ROOT_FIND, qr("PATIENT").bytes(tags::PATIENT_NAME, VR::PN, padded("Jürgen".as_bytes().to_vec()))).unwrap();
    assert_eq!(filters(&r), vec![(Key::PatientName, single("Jürgen"))]);
}

#[test]
fn only_the_padding_nul_is_padding() {
    use tags::*;
    let raw = |tag: Tag, vr: VR, bytes: &[u8]| find(STUDY_ROOT_FIND, qr("STUDY").bytes(tag, vr, bytes.to_vec()));
    // The one trailing NUL of a UI value (PS3.5 §6.2), and one a sender put after a string.
    let r = raw(STUDY_INSTANCE_UID, VR::UI, b"1.2.3\0").unwrap();
    assert_eq!(filters(&r), vec![(Key::StudyUid, single("1.2.3"))]);
    let r = raw(ACCESSION_NUMBER, VR::SH, b"ACC\0").unwrap();
    assert_eq!(filters(&r), vec![(Key::AccessionNumber, single("ACC"))]);
    // A NUL that is not that byte is part of the value, and no value holds one: a lone NUL
    // would otherwise be an empty value, a universal match.
    for (tag, vr, bytes) in [
        (STUDY_DESCRIPTION, VR::LO, &b"\0 "[..]),
        (STUDY_DESCRIPTION, VR::LO, b"\0\0"),
        (ACCESSION_NUMBER, VR::SH, b"A\0BC "),
        (STUDY_INSTANCE_UID, VR::UI, b"1.2\0\0"),
    ] {
        let err = raw(tag, vr, bytes).unwrap_err();
        assert_eq!((err.clone(), err.status()), (FindError::InvalidValue { tag }, 0xA900), "{bytes:?}");
    }
}

fn padded(mut b: Vec<u8>) -> Vec<u8> {
    if b.len() % 2 == 1 {
        b.push(b' ');
    }
    b
}

#[test]
fn unparseable_identifier_is_unable_to_process() {
    let err = parse_request(
        &[0x08, 0x00, 0x52, 0x00, b'C', b'S', 0x10],
        vna_dicom::ts::EXPLICIT_VR_LITTLE_ENDIAN,
        STUDY_ROOT_FIND,
        FindOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, FindError::Unparseable(_)), "{err:?}");
    assert_eq!((err.status(), err.offending_element()), (0xC000, None));
}

#[test]
fn error_comments_fit_and_carry_no_values() {
    let t = tags::PATIENT_ID;
    let errors = [
        FindError::UnsupportedModel,
        FindError::Unparseable(vna_dicom::parse::ParseError::UndefinedLength { group: 0x10, element: 0x10, at: 123 }),
        FindError::MissingLevel,
        FindError::UnknownLevel,
        FindError::LevelNotInModel { model: "Study Root", level: "PATIENT" },
        FindError::MissingUniqueKey { tag: t },
        FindError::UniqueKeyNotSingle { tag: t },
        FindError::InvalidValue { tag: t },
    ];
    for e in errors {
        let comment = e.error_comment();
        assert!(comment.len() <= 64 && !comment.is_empty(), "{comment:?} ({} chars)", comment.len());
        if !matches!(e, FindError::Unparseable(_)) {
            assert_eq!(comment, e.to_string());
        }
    }
    assert_eq!(FindError::MissingUniqueKey { tag: t }.error_comment(), "missing unique key (0010,0020) of a higher level");
    // The value sent never shows up.
    let err = study_key(tags::STUDY_DATE, VR::DA, "SECRET-19700101").unwrap_err();
    assert!(!err.error_comment().contains("SECRET") && !err.to_string().contains("SECRET"));
}
