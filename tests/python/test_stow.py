"""STOW-RS behaviour (PS3.18 §10.5): response body and status codes,
idempotent re-send, replacement of a changed object, partial failures.

Every test gets a fresh, empty server, once per catalog backend.
"""

from __future__ import annotations

from urllib.parse import urljoin

import dicomgen
from helpers import (
    FAILURE_REASON,
    REFERENCED_SOP_CLASS_UID,
    REFERENCED_SOP_INSTANCE_UID,
    RETRIEVE_URL,
    assert_failed_items_have_reason,
    instance_url,
    qido,
    referenced,
    retrieve_raw,
    stow,
    stow_json,
    value,
)

STUDY_UID = "0020000D"
SOP_UID = "00080018"
NUM_STUDY_INSTANCES = "00201208"


def _assert_referenced(body: dict, instances: list[dicomgen.Instance], base: str) -> None:
    refs = referenced(body)
    assert set(refs) == {i.sop_uid for i in instances}
    for inst in instances:
        item = refs[inst.sop_uid]
        assert value(item, REFERENCED_SOP_CLASS_UID) == inst.sop_class_uid
        assert value(item, REFERENCED_SOP_INSTANCE_UID) == inst.sop_uid
        url = value(item, RETRIEVE_URL)
        path = f"/studies/{inst.study_uid}/series/{inst.series_uid}/instances/{inst.sop_uid}"
        assert isinstance(url, str) and url.endswith(path), url
        # The RetrieveURL really retrieves the instance, byte for byte.
        assert retrieve_raw(urljoin(base + "/", url)) == [inst.data]


def test_stow_qido_wado_roundtrip_with_client(server):
    """The core round trip with dicomweb-client on both catalog backends."""
    client = server.client()
    study = dicomgen.ct_study()
    resp = client.store_instances([i.reread() for i in study])
    assert {str(it.ReferencedSOPInstanceUID) for it in resp.ReferencedSOPSequence} == {i.sop_uid for i in study}
    assert len(getattr(resp, "FailedSOPSequence", [])) == 0

    (found,) = client.search_for_studies(search_filters={"PatientID": study[0].ds.PatientID})
    assert value(found, STUDY_UID) == study[0].study_uid
    assert value(found, NUM_STUDY_INSTANCES) == 10
    assert len(client.search_for_instances(study_instance_uid=study[0].study_uid)) == 10

    for inst in (study[0], study[-1]):
        ds = client.retrieve_instance(inst.study_uid, inst.series_uid, inst.sop_uid)
        assert ds.SOPInstanceUID == inst.sop_uid
        assert str(ds.PatientName) == "Müller^Jürgen"
        assert ds.PixelData == inst.frames[0]
        assert retrieve_raw(instance_url(server.dicomweb, inst.study_uid, inst.series_uid, inst.sop_uid)) == [inst.data]


def test_stow_all_stored_is_200_with_references(server):
    insts = dicomgen.ct_study(series_count=1, instances_per_series=3) + [dicomgen.latin1_mr()]
    r = stow(server.dicomweb, [i.data for i in insts])
    assert r.status_code == 200, r.text[:500]
    body = stow_json(r)
    _assert_referenced(body, insts, server.dicomweb)
    assert not body.get("00081198", {}).get("Value"), "FailedSOPSequence on full success"


def test_stow_to_study_resource(server):
    insts = dicomgen.ct_study(series_count=1, instances_per_series=2)
    r = stow(server.dicomweb, [i.data for i in insts], study_uid=insts[0].study_uid)
    assert r.status_code == 200, r.text[:500]
    _assert_referenced(stow_json(r), insts, server.dicomweb)


def test_stow_multiframe_objects(server):
    insts = [dicomgen.native_multiframe(), dicomgen.wsi_slide(has_bot=False), dicomgen.wsi_slide(has_bot=True)]
    r = stow(server.dicomweb, [i.data for i in insts])
    assert r.status_code == 200, r.text[:500]
    _assert_referenced(stow_json(r), insts, server.dicomweb)


def test_restow_identical_is_idempotent(server):
    inst = dicomgen.ct_study(series_count=1, instances_per_series=1)[0]
    for _ in range(2):
        r = stow(server.dicomweb, [inst.data])
        assert r.status_code == 200, r.text[:500]
        _assert_referenced(stow_json(r), [inst], server.dicomweb)
    status, found = qido(server.dicomweb, "instances", {"SOPInstanceUID": inst.sop_uid})
    assert status == 200 and len(found) == 1
    status, studies = qido(server.dicomweb, "studies")
    assert len(studies) == 1 and value(studies[0], NUM_STUDY_INSTANCES) == 1
    assert retrieve_raw(instance_url(server.dicomweb, inst.study_uid, inst.series_uid, inst.sop_uid)) == [inst.data]


def test_restow_changed_object_replaces(server):
    """Default version policy `replace`: same SOP Instance UID, different
    bytes -> 200, still one instance, and retrieval returns the new bytes."""
    old = dicomgen.ct_study(series_count=1, instances_per_series=1)[0]
    new = dicomgen.with_changes(old, SeriesDescription="Corrected series", InstanceNumber=7)
    assert new.sop_uid == old.sop_uid and new.data != old.data

    assert stow(server.dicomweb, [old.data]).status_code == 200
    r = stow(server.dicomweb, [new.data])
    assert r.status_code == 200, r.text[:500]
    _assert_referenced(stow_json(r), [new], server.dicomweb)

    status, found = qido(server.dicomweb, "instances", {"SOPInstanceUID": old.sop_uid})
    assert status == 200 and len(found) == 1
    assert value(found[0], "00200013") == 7
    status, studies = qido(server.dicomweb, "studies")
    assert len(studies) == 1 and value(studies[0], NUM_STUDY_INSTANCES) == 1
    assert retrieve_raw(instance_url(server.dicomweb, old.study_uid, old.series_uid, old.sop_uid)) == [new.data]


def test_non_dicom_part_fails_others_stored_202(server):
    good = dicomgen.ct_study(series_count=1, instances_per_series=1)[0]
    r = stow(server.dicomweb, parts=[("application/dicom", good.data),
                                     ("text/plain", b"this part is not a DICOM object\r\n")])
    assert r.status_code == 202, r.text[:500]
    body = stow_json(r)
    assert set(referenced(body)) == {good.sop_uid}
    assert_failed_items_have_reason(body, 1)
    status, found = qido(server.dicomweb, "instances")
    assert uids_of(found) == {good.sop_uid}


def test_study_uid_mismatch_fails_that_instance_202(server):
    a = dicomgen.ct_study(series_count=1, instances_per_series=1)[0]
    b = dicomgen.latin1_mr()
    r = stow(server.dicomweb, [a.data, b.data], study_uid=a.study_uid)
    assert r.status_code == 202, r.text[:500]
    body = stow_json(r)
    assert set(referenced(body)) == {a.sop_uid}
    (item,) = assert_failed_items_have_reason(body, 1)
    assert value(item, REFERENCED_SOP_INSTANCE_UID) == b.sop_uid
    assert value(item, REFERENCED_SOP_CLASS_UID) == b.sop_class_uid
    assert isinstance(value(item, FAILURE_REASON), int)
    status, found = qido(server.dicomweb, "instances")
    assert uids_of(found) == {a.sop_uid}
    status, _ = qido(server.dicomweb, "studies", {"StudyInstanceUID": b.study_uid})
    assert status == 204


def test_study_uid_mismatch_only_instance_409(server):
    a_study = dicomgen.new_uid()
    b = dicomgen.latin1_mr()
    r = stow(server.dicomweb, [b.data], study_uid=a_study)
    assert r.status_code == 409, r.text[:500]
    (item,) = assert_failed_items_have_reason(stow_json(r), 1)
    assert value(item, REFERENCED_SOP_INSTANCE_UID) == b.sop_uid
    status, _ = qido(server.dicomweb, "instances")
    assert status == 204


def uids_of(results: list[dict]) -> set[str]:
    return {value(r, SOP_UID) for r in results}
