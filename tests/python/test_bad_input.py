"""Bad input gets a clear error and changes nothing (DESIGN.md invariant 5).

Each test runs on a fresh, empty server (once per catalog backend) and checks
three things: the status the standard asks for, that nothing was stored
(QIDO at every level is empty), and that the server still stores and serves
a valid instance afterwards.
"""

from __future__ import annotations

import os

import pytest
import requests

import dicomgen
from helpers import (
    ACCEPT_DICOM_ANY_TS,
    DICOM_JSON,
    TIMEOUT,
    assert_failed_items_have_reason,
    assert_nothing_stored,
    assert_still_serving,
    multipart_body,
    referenced,
    stow,
    stow_json,
)

UID_65 = "1." + "2" * 63
assert len(UID_65) == 65


def _ct() -> dicomgen.Instance:
    return dicomgen.ct_study(series_count=1, instances_per_series=1)[0]


def _bad_instances() -> dict:
    ct = _ct()
    return {
        "not-dicom": lambda: b"this is not a DICOM file, just text\n" * 64,
        "empty-part": lambda: b"",
        "truncated-in-pixel-data": lambda: ct.data[: len(ct.data) - 3000],
        "truncated-in-header": lambda: ct.data[:300],
        "preamble-only": lambda: ct.data[:132],
        "missing-sop-instance-uid": lambda: dicomgen.without_sop_instance_uid(ct),
        "study-uid-path-traversal": lambda: dicomgen.with_changes(ct, StudyInstanceUID="../../etc/passwd").data,
        "sop-uid-65-chars": lambda: dicomgen.with_changes(ct, SOPInstanceUID=UID_65).data,
        "series-uid-letters": lambda: dicomgen.with_changes(ct, SeriesInstanceUID="1.2.840.abc.5").data,
        "study-uid-empty": lambda: dicomgen.with_changes(ct, StudyInstanceUID="").data,
    }


BAD_CASES = list(_bad_instances())


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_instance_is_rejected_409(server, case):
    data = _bad_instances()[case]()
    r = stow(server.dicomweb, [data])
    assert r.status_code == 409, f"{case}: {r.status_code} {r.text[:500]}"
    body = stow_json(r)
    assert referenced(body) == {}
    assert_failed_items_have_reason(body, 1)
    assert_nothing_stored(server.dicomweb)
    # A UID is never used as a path: nothing named after it appears anywhere.
    for root, dirs, files in os.walk(server.workdir):
        for name in dirs + files:
            assert name not in ("passwd", "etc") and UID_65 not in name, os.path.join(root, name)
    assert_still_serving(server.dicomweb)


@pytest.mark.parametrize("case", ["not-dicom", "truncated-in-pixel-data", "missing-sop-instance-uid",
                                  "study-uid-path-traversal"])
def test_bad_instance_next_to_good_one_202(server, case):
    good = _ct()
    bad = _bad_instances()[case]()
    r = stow(server.dicomweb, [bad, good.data])
    assert r.status_code == 202, f"{case}: {r.status_code} {r.text[:500]}"
    body = stow_json(r)
    assert set(referenced(body)) == {good.sop_uid}
    assert_failed_items_have_reason(body, 1)
    r = requests.get(f"{server.dicomweb}/instances", headers={"Accept": DICOM_JSON}, timeout=TIMEOUT)
    assert r.status_code == 200 and len(r.json()) == 1
    assert_still_serving(server.dicomweb)


@pytest.mark.parametrize("content_type,body", [
    ("application/json", b'{"00100010": {"vr": "PN", "Value": [{"Alphabetic": "Test"}]}}'),
    ("text/plain", b"hello"),
])
def test_unsupported_media_type_415(server, content_type, body):
    r = stow(server.dicomweb, body=body, content_type=content_type)
    assert r.status_code == 415, f"{r.status_code} {r.text[:300]}"
    assert_nothing_stored(server.dicomweb)
    assert_still_serving(server.dicomweb)


def test_dicom_file_with_json_content_type_415(server):
    """A valid DICOM multipart body labelled application/json is refused."""
    body, _ = multipart_body([("application/dicom", _ct().data)])
    r = stow(server.dicomweb, body=body, content_type="application/json")
    assert r.status_code == 415, f"{r.status_code} {r.text[:300]}"
    assert_nothing_stored(server.dicomweb)
    assert_still_serving(server.dicomweb)


@pytest.mark.parametrize("case", ["no-boundary-parameter", "boundary-not-in-body", "unterminated"])
def test_malformed_multipart_400(server, case):
    ct = _ct()
    if case == "no-boundary-parameter":
        body, _ = multipart_body([("application/dicom", ct.data)])
        ctype = 'multipart/related; type="application/dicom"'
    elif case == "boundary-not-in-body":
        body = b"garbage without any multipart structure\r\n" * 10
        ctype = 'multipart/related; type="application/dicom"; boundary=nowhere-to-be-found'
    else:
        body, boundary = multipart_body([("application/dicom", ct.data)])
        body = body[: body.index(f"--{boundary}\r\nContent-Type".encode()) + 40]  # cut inside the first part header
        ctype = f'multipart/related; type="application/dicom"; boundary={boundary}'
    r = stow(server.dicomweb, body=body, content_type=ctype)
    assert r.status_code == 400, f"{case}: {r.status_code} {r.text[:300]}"
    assert_nothing_stored(server.dicomweb)
    assert_still_serving(server.dicomweb)


def test_oversize_object_413(pool, backend):
    srv = pool.start(backend, env={"VNA__INGEST__MAX_OBJECT_BYTES": "1048576"})
    big = dicomgen.large_instance(1_600_000)
    r = stow(srv.dicomweb, [big.data])
    assert r.status_code == 413, f"{r.status_code} {r.text[:300]}"
    assert_nothing_stored(srv.dicomweb)
    assert_still_serving(srv.dicomweb)  # a small instance is still accepted
    assert srv.alive


BAD_PATHS = [
    "studies/1.2.abc/metadata",
    f"studies/{UID_65}/metadata",
    "studies/..%2F..%2Fetc%2Fpasswd/metadata",
    "studies/1.2.3/series/1.2.x.4/metadata",
    "studies/1.2.3/series/1.2.4/instances/1.2.-5",
    "studies/1.2.3/series/1.2.4/instances/abc/frames/1",
    "studies/1.2.abc",
    "studies/1.2.abc/series",
    f"studies/{UID_65}/instances",
    "studies/1.2.3/series/1.2.abc/instances",
]


@pytest.mark.parametrize("path", BAD_PATHS)
def test_invalid_uid_in_path_400(server, path):
    accept = DICOM_JSON if path.endswith(("metadata", "series", "/instances")) else ACCEPT_DICOM_ANY_TS
    r = requests.get(f"{server.dicomweb}/{path}", headers={"Accept": accept}, timeout=TIMEOUT)
    assert r.status_code == 400, f"{path}: {r.status_code} {r.text[:300]}"
    assert "/etc" not in r.text and "panicked" not in r.text
    assert_still_serving(server.dicomweb)


def test_invalid_uid_in_wado_uri_400(server):
    r = requests.get(f"{server.dicomweb}/wado", params={
        "requestType": "WADO", "studyUID": "../../etc/passwd", "seriesUID": "1.2.3",
        "objectUID": "1.2.4", "contentType": "application/dicom"}, timeout=TIMEOUT)
    assert r.status_code == 400, f"{r.status_code} {r.text[:300]}"
    assert_still_serving(server.dicomweb)


def test_stow_to_invalid_study_path_400(server):
    ct = _ct()
    r = stow(server.dicomweb, [ct.data], study_uid="1.2.abc")
    assert r.status_code == 400, f"{r.status_code} {r.text[:300]}"
    assert_nothing_stored(server.dicomweb)
    assert_still_serving(server.dicomweb)


def test_unknown_study_on_empty_server_404(server):
    unknown = dicomgen.new_uid()
    for path, accept in [(f"studies/{unknown}", ACCEPT_DICOM_ANY_TS),
                         (f"studies/{unknown}/metadata", DICOM_JSON)]:
        r = requests.get(f"{server.dicomweb}/{path}", headers={"Accept": accept}, timeout=TIMEOUT)
        assert r.status_code == 404, f"{path}: {r.status_code}"
    assert_still_serving(server.dicomweb)
