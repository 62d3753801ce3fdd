//! Storage Commitment request parsing and result building, through the bare data set parser.

#![allow(clippy::unwrap_used)]
use super::*;
use vna_dicom::parse::parse_dataset_bytes;
use vna_dimse::CommandField;

const CT: &str = "1.2.840.10008.5.1.4.1.1.2";

fn rq() -> Command {
    Command::n_action_rq(1, STORAGE_COMMITMENT_PUSH_MODEL, STORAGE_COMMITMENT_INSTANCE, ACTION_REQUEST_COMMITMENT, true)
}

fn info(refs: &[(&str, &str)]) -> Items {
    let items = refs
        .iter()
        .map(|(c, i)| Items::new().str(tags::REFERENCED_SOP_CLASS_UID, VR::UI, c).str(tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, i))
        .collect();
    Items::new().str(tags::TRANSACTION_UID, VR::UI, "1.2.3.99").sequence(tags::REFERENCED_SOP_SEQUENCE, items, true)
}

#[test]
fn parses_in_both_little_endian_syntaxes() {
    for syntax in [ts::IMPLICIT_VR_LITTLE_ENDIAN, ts::EXPLICIT_VR_LITTLE_ENDIAN] {
        let bytes = data_set(&info(&[(CT, "1.2.3.1"), (CT, "1.2.3.2")]), syntax);
        let req = parse_request(&rq(), Some(&bytes), syntax).unwrap();
        assert_eq!(req.transaction_uid, "1.2.3.99");
        assert_eq!(req.references.len(), 2);
        assert_eq!(req.references[1], Reference { sop_class: CT.into(), sop_instance: "1.2.3.2".into() });
    }
}

#[test]
fn refusals() {
    let syntax = ts::EXPLICIT_VR_LITTLE_ENDIAN;
    let good = data_set(&info(&[(CT, "1.2.3.1")]), syntax);
    let mut other_class = rq();
    other_class.requested_sop_class_uid = Some("1.2.3".into());
    assert_eq!(parse_request(&other_class, Some(&good), syntax).unwrap_err().status(), Status(0x0118));
    let mut other_instance = rq();
    other_instance.requested_sop_instance_uid = Some("1.2.3".into());
    assert_eq!(parse_request(&other_instance, Some(&good), syntax).unwrap_err().status(), Status(0x0112));
    let mut other_action = rq();
    other_action.action_type_id = Some(2);
    assert_eq!(parse_request(&other_action, Some(&good), syntax).unwrap_err().status(), Status(0x0123));
    assert_eq!(parse_request(&rq(), None, syntax).unwrap_err().status(), Status(0x0115));
    let no_transaction = data_set(&Items::new().sequence(tags::REFERENCED_SOP_SEQUENCE, vec![], false), syntax);
    assert_eq!(parse_request(&rq(), Some(&no_transaction), syntax), Err(CommitmentError::Missing(tags::TRANSACTION_UID)));
    let bad_uid = data_set(&info(&[(CT, "1.2.x")]), syntax);
    let e = parse_request(&rq(), Some(&bad_uid), syntax).unwrap_err();
    assert_eq!(e, CommitmentError::Invalid(tags::REFERENCED_SOP_INSTANCE_UID));
    assert_eq!(e.status(), Status(0x0106));
    // No values in the comment.
    assert!(!e.to_string().contains("1.2.x"));
}

fn sequence(ds: &DataSet, tag: Tag) -> Vec<DataSet> {
    match ds.get(tag).map(|e| &e.value) {
        Some(Value::Sequence(items)) => items.clone(),
        _ => Vec::new(),
    }
}

#[test]
fn result_lists_committed_and_failed() {
    let req = CommitmentRequest {
        transaction_uid: "1.2.3.99".into(),
        references: vec![
            Reference { sop_class: CT.into(), sop_instance: "1.2.3.1".into() },
            Reference { sop_class: CT.into(), sop_instance: "1.2.3.2".into() },
            Reference { sop_class: CT.into(), sop_instance: "1.2.3.3".into() },
        ],
    };
    let results = [Ok(()), Err(failure_reason::NO_SUCH_OBJECT_INSTANCE), Err(failure_reason::CLASS_INSTANCE_CONFLICT)];
    let (event, items) = event_information(&req, &results, Some("VNA"));
    assert_eq!(event, EVENT_SOME_FAILURES);
    let bytes = encode(&items, ts::IMPLICIT_VR_LITTLE_ENDIAN).unwrap();
    let ds = parse_dataset_bytes(&bytes, ts::IMPLICIT_VR_LITTLE_ENDIAN, ParseLimits::default()).unwrap().dataset;
    assert_eq!(ds.bytes(tags::TRANSACTION_UID), Some(&b"1.2.3.99"[..]));
    let ok = sequence(&ds, tags::REFERENCED_SOP_SEQUENCE);
    assert_eq!(ok.len(), 1);
    assert_eq!(ok[0].bytes(tags::REFERENCED_SOP_INSTANCE_UID), Some(&b"1.2.3.1\0"[..]));
    let failed = sequence(&ds, tags::FAILED_SOP_SEQUENCE);
    let reasons: Vec<_> = failed.iter().map(|i| i.int(tags::FAILURE_REASON, false)).collect();
    assert_eq!(reasons, vec![Some(0x0112), Some(0x0119)]);

    let (event, items) = event_information(&req, &[Ok(()), Ok(()), Ok(())], None);
    assert_eq!(event, EVENT_ALL_SUCCESS);
    let ds =
        parse_dataset_bytes(&encode(&items, ts::EXPLICIT_VR_LITTLE_ENDIAN).unwrap(), ts::EXPLICIT_VR_LITTLE_ENDIAN, ParseLimits::default())
            .unwrap()
            .dataset;
    assert!(ds.get(tags::FAILED_SOP_SEQUENCE).is_none());
    assert_eq!(sequence(&ds, tags::REFERENCED_SOP_SEQUENCE).len(), 3);
    assert_eq!(
        Command::event_report_rq(1, STORAGE_COMMITMENT_PUSH_MODEL, STORAGE_COMMITMENT_INSTANCE, event, true).field,
        CommandField::N_EVENT_REPORT_RQ
    );
}
