"""QIDO-RS, WADO-RS and WADO-URI against a server holding the synthetic corpus.

The `loaded` fixture (conftest.py) starts one server per catalog backend
(SQLite, PostgreSQL) and stores the corpus through STOW-RS with
dicomweb-client; every test here runs against both.
"""

from __future__ import annotations

import io
import re
import subprocess
from urllib.parse import urljoin

import numpy as np
import pydicom
import pytest
import requests
from PIL import Image

import dicomgen
from helpers import (
    ACCEPT_DICOM_ANY_TS,
    DICOM_JSON,
    TIMEOUT,
    client_encoding,
    instance_url,
    parse_multipart,
    qido,
    retrieve_raw,
    value,
    values,
)

DCMDUMP = "/usr/bin/dcmdump"

# DICOM JSON tags
PATIENT_NAME = "00100010"
PATIENT_ID = "00100020"
STUDY_UID = "0020000D"
SERIES_UID = "0020000E"
SOP_UID = "00080018"
SOP_CLASS = "00080016"
STUDY_DATE = "00080020"
MODALITY = "00080060"
MODALITIES_IN_STUDY = "00080061"
STUDY_DESCRIPTION = "00081030"
SERIES_NUMBER = "00200011"
INSTANCE_NUMBER = "00200013"
NUM_STUDY_SERIES = "00201206"
NUM_STUDY_INSTANCES = "00201208"
NUM_SERIES_INSTANCES = "00201209"
NUMBER_OF_FRAMES = "00280008"
ROWS = "00280010"
PIXEL_DATA = "7FE00010"
RETRIEVE_URL = "00081190"

JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
EXPLICIT_LE = "1.2.840.10008.1.2.1"


def uids(results: list[dict], tag: str) -> set[str]:
    return {value(r, tag) for r in results}


def by_label(loaded, label: str) -> dicomgen.Instance:
    for inst in loaded.corpus.all():
        if inst.label == label:
            return inst
    raise KeyError(label)


def study_of(loaded, key: str) -> str:
    c = loaded.corpus
    return {
        "ct": c.ct[0].study_uid,
        "mr": c.mr_latin1.study_uid,
        "sc": c.sc_implicit.study_uid,
        "mf": c.mf_native.study_uid,
        "wsi": c.wsi_bot.study_uid,
    }[key]


# --------------------------------------------------------------------------
# The corpus went in as sent
# --------------------------------------------------------------------------


def test_client_sends_the_generated_bytes(loaded):
    """Precondition of every byte comparison below: dicomweb-client's encoding
    of each corpus data set is exactly the generated Part-10 file."""
    for inst in loaded.corpus.all():
        assert client_encoding(inst.reread()) == inst.data, inst.label


# --------------------------------------------------------------------------
# QIDO-RS
# --------------------------------------------------------------------------


def test_search_all_studies(loaded):
    results = loaded.client.search_for_studies()
    assert uids(results, STUDY_UID) == set(loaded.corpus.studies())
    assert len(results) == 5


def test_study_computed_attributes(loaded):
    ct = loaded.client.search_for_studies(search_filters={"StudyInstanceUID": study_of(loaded, "ct")})
    assert len(ct) == 1
    assert value(ct[0], NUM_STUDY_SERIES) == 2
    assert value(ct[0], NUM_STUDY_INSTANCES) == 10
    assert values(ct[0], MODALITIES_IN_STUDY) == ["CT"]
    assert value(ct[0], STUDY_DATE) == "20240315"
    assert value(ct[0], PATIENT_ID) == dicomgen.PATIENT_ID_PREFIX + "CT-001"

    wsi = loaded.client.search_for_studies(search_filters={"StudyInstanceUID": study_of(loaded, "wsi")})
    assert len(wsi) == 1
    assert value(wsi[0], NUM_STUDY_SERIES) == 1
    assert value(wsi[0], NUM_STUDY_INSTANCES) == 2
    assert values(wsi[0], MODALITIES_IN_STUDY) == ["SM"]


@pytest.mark.parametrize("key,name", [("ct", "Müller^Jürgen"), ("mr", "Dürer^Élodie")],
                         ids=["utf8-ISO_IR_192", "latin1-ISO_IR_100"])
def test_person_name_json(loaded, key, name):
    (res,) = loaded.client.search_for_studies(search_filters={"StudyInstanceUID": study_of(loaded, key)})
    assert res[PATIENT_NAME] == {"vr": "PN", "Value": [{"Alphabetic": name}]}


@pytest.mark.parametrize(
    "filters,expected",
    [
        ({"PatientName": "Müller^Jürgen"}, {"ct"}),
        ({"PatientName": "Dürer^Élodie"}, {"mr"}),
        ({"PatientName": "Mü*"}, {"ct"}),
        ({"PatientName": "M?ller*"}, {"ct"}),
        ({"PatientName": "*^Élodie"}, {"mr"}),
        ({"PatientName": "*a*"}, {"mf", "wsi", "sc"}),  # Native^Frames, Slide^Patient, Implicit^Ivan
        ({"PatientID": dicomgen.PATIENT_ID_PREFIX + "*"}, {"ct", "mr", "sc", "mf", "wsi"}),
        ({"PatientID": dicomgen.PATIENT_ID_PREFIX + "MR-LATIN1"}, {"mr"}),
        ({"PatientID": dicomgen.PATIENT_ID_PREFIX + "??-001"}, {"ct", "wsi"}),  # CT-001, SM-001
        ({"AccessionNumber": "E2E-SM-1"}, {"wsi"}),
        ({"StudyDate": "20220601"}, {"mf"}),
        ({"StudyDate": "20230101-20231231"}, {"mr"}),
        ({"StudyDate": "20240101-"}, {"ct"}),
        ({"StudyDate": "-20201231"}, {"sc"}),
        ({"StudyDate": "20210101-20221231"}, {"mf", "wsi"}),
        ({"StudyTime": "100000-110000"}, {"ct"}),
        ({"StudyDate": "20240315", "StudyTime": "101500"}, {"ct"}),
        ({"ModalitiesInStudy": "SM"}, {"wsi"}),
        ({"ModalitiesInStudy": "CT"}, {"ct"}),
        ({"ModalitiesInStudy": "XA"}, {"mf"}),
        ({"PatientName": "Mü*", "ModalitiesInStudy": "CT"}, {"ct"}),
    ],
    # Sets rendered sorted: a test's id must not depend on the hash seed (pytest-xdist's workers
    # collect separately and must agree on every id).
    ids=lambda v: re.sub(r"\W+", "_", str(sorted(v) if isinstance(v, set) else v)),
)
def test_search_studies_matching(loaded, filters, expected):
    results = loaded.client.search_for_studies(search_filters=filters)
    assert uids(results, STUDY_UID) == {study_of(loaded, k) for k in expected}


def test_search_studies_uid_list(loaded):
    wanted = {study_of(loaded, "ct"), study_of(loaded, "wsi")}
    results = loaded.client.search_for_studies(search_filters={"StudyInstanceUID": ",".join(sorted(wanted))})
    assert uids(results, STUDY_UID) == wanted


@pytest.mark.parametrize(
    "name,expected",
    [("muller", "ct"), ("MÜLLER", "ct"), ("jurgen", "ct"), ("Jür", "ct"),
     ("elodie", "mr"), ("durer", "mr"), ("DÜR", "mr")],
)
def test_fuzzy_person_name(loaded, name, expected):
    """fuzzymatching=true: case- and accent-insensitive prefix of any name component."""
    results = loaded.client.search_for_studies(fuzzymatching=True, search_filters={"PatientName": name})
    assert uids(results, STUDY_UID) == {study_of(loaded, expected)}


def test_fuzzy_does_not_match_everything(loaded):
    status, results = qido(loaded.url, "studies", {"PatientName": "zzzz", "fuzzymatching": "true"})
    assert status == 204 and results == []


def test_limit_offset_pages(loaded):
    all_uids = set(loaded.corpus.studies())
    seen: list[str] = []
    for offset in (0, 2, 4):
        status, page = qido(loaded.url, "studies", {"limit": 2, "offset": offset})
        assert status == 200
        assert len(page) == (2 if offset < 4 else 1), (offset, page)
        seen += [value(r, STUDY_UID) for r in page]
    assert len(seen) == len(set(seen)) == 5, "pages overlap"
    assert set(seen) == all_uids
    status, page = qido(loaded.url, "studies", {"limit": 2, "offset": 5})
    assert status == 204 and page == []


def test_limit_via_client(loaded):
    assert len(loaded.client.search_for_studies(limit=3)) == 3
    assert len(loaded.client.search_for_studies(limit=3, offset=3)) == 2


@pytest.mark.parametrize("field", ["StudyDescription", "00081030", "all"])
def test_includefield(loaded, field):
    (res,) = loaded.client.search_for_studies(
        fields=[field], search_filters={"StudyInstanceUID": study_of(loaded, "ct")})
    assert value(res, STUDY_DESCRIPTION) == "CT THORAX synthetic"
    assert value(res, STUDY_UID) == study_of(loaded, "ct")


@pytest.mark.parametrize("field", ["Manufacturer", "00080070"])
def test_includefield_outside_the_catalog_columns(loaded, field):
    """Manufacturer is not a catalog column: it comes from one stored instance's metadata."""
    (study,) = loaded.client.search_for_studies(
        fields=[field], search_filters={"StudyInstanceUID": study_of(loaded, "ct")})
    assert study["00080070"]["Value"] == ["VNA synthetic"]
    series = loaded.client.search_for_series(study_instance_uid=study_of(loaded, "ct"), fields=[field])
    assert len(series) == 2
    assert all(s["00080070"]["Value"] == ["VNA synthetic"] for s in series)


def test_search_series_of_study(loaded):
    results = loaded.client.search_for_series(study_instance_uid=study_of(loaded, "ct"))
    assert uids(results, SERIES_UID) == {i.series_uid for i in loaded.corpus.ct}
    assert {value(r, SERIES_NUMBER) for r in results} == {1, 2}
    for r in results:
        assert value(r, MODALITY) == "CT"
        assert value(r, NUM_SERIES_INSTANCES) == 5


@pytest.mark.parametrize("filters,expected", [
    ({"Modality": "SM"}, "wsi"),
    ({"Modality": "MR"}, "mr"),
    ({"Modality": "CT", "SeriesNumber": "2"}, "ct2"),
])
def test_search_series_filters(loaded, filters, expected):
    c = loaded.corpus
    want = {"wsi": {c.wsi_bot.series_uid}, "mr": {c.mr_latin1.series_uid},
            "ct2": {i.series_uid for i in c.ct if i.ds.SeriesNumber == 2}}[expected]
    assert uids(loaded.client.search_for_series(search_filters=filters), SERIES_UID) == want


def test_search_instances(loaded):
    ct = loaded.corpus.ct
    s1 = [i for i in ct if i.series_uid == ct[0].series_uid]
    res = loaded.client.search_for_instances(study_instance_uid=ct[0].study_uid, series_instance_uid=ct[0].series_uid)
    assert uids(res, SOP_UID) == {i.sop_uid for i in s1}
    assert {value(r, INSTANCE_NUMBER) for r in res} == {1, 2, 3, 4, 5}
    assert uids(res, SOP_CLASS) == {dicomgen.CT_IMAGE_STORAGE}

    res = loaded.client.search_for_instances(study_instance_uid=ct[0].study_uid)
    assert uids(res, SOP_UID) == {i.sop_uid for i in ct}

    res = loaded.client.search_for_instances()
    assert uids(res, SOP_UID) == {i.sop_uid for i in loaded.corpus.all()}


def test_search_instance_by_uid_has_frames_and_retrieve_url(loaded):
    wsi = loaded.corpus.wsi_bot
    (res,) = loaded.client.search_for_instances(search_filters={"SOPInstanceUID": wsi.sop_uid})
    assert value(res, NUMBER_OF_FRAMES) == 120
    assert value(res, ROWS) == 64
    url = value(res, RETRIEVE_URL)
    assert url and url.endswith(f"/studies/{wsi.study_uid}/series/{wsi.series_uid}/instances/{wsi.sop_uid}"), url


@pytest.mark.parametrize("path,params", [
    ("studies", {"PatientID": "NO-SUCH-PATIENT"}),
    ("studies", {"StudyDate": "19000101-19001231"}),
    ("series", {"Modality": "US"}),
    ("instances", {"SOPInstanceUID": "1.2.3.4.5.6.7.8.9"}),
])
def test_empty_result_is_204(loaded, path, params):
    status, results = qido(loaded.url, path, params)
    assert status == 204 and results == []


def test_empty_series_of_existing_study_is_204(loaded):
    status, results = qido(loaded.url, f"studies/{study_of(loaded, 'ct')}/series", {"Modality": "MR"})
    assert status == 204 and results == []


# --------------------------------------------------------------------------
# WADO-RS: instances, series, studies
# --------------------------------------------------------------------------

ALL_LABELS = ["ct-s1-i1", "ct-s2-i5", "mr-latin1", "sc-implicit", "mf-native", "wsi-nobot", "wsi-bot"]


@pytest.mark.parametrize("label", ALL_LABELS)
def test_retrieve_instance_bytes_identical(loaded, label):
    inst = by_label(loaded, label)
    got = retrieve_raw(instance_url(loaded.url, inst.study_uid, inst.series_uid, inst.sop_uid))
    assert len(got) == 1
    assert got[0] == inst.data, f"{label}: retrieved {len(got[0])} bytes, stored {len(inst.data)}"


@pytest.mark.parametrize("label", ["ct-s1-i1", "mr-latin1", "sc-implicit", "wsi-bot"])
def test_retrieve_instance_with_client(loaded, label):
    inst = by_label(loaded, label)
    ds = loaded.client.retrieve_instance(inst.study_uid, inst.series_uid, inst.sop_uid)
    assert ds.SOPInstanceUID == inst.sop_uid
    assert str(ds.PatientName) == str(inst.ds.PatientName)
    assert ds.file_meta.TransferSyntaxUID == inst.transfer_syntax


def test_retrieve_series(loaded):
    ct = loaded.corpus.ct
    series = [i for i in ct if i.series_uid == ct[5].series_uid]
    datasets = loaded.client.retrieve_series(ct[5].study_uid, ct[5].series_uid)
    assert {d.SOPInstanceUID for d in datasets} == {i.sop_uid for i in series}
    raw = retrieve_raw(f"{loaded.url}/studies/{ct[5].study_uid}/series/{ct[5].series_uid}")
    assert sorted(raw) == sorted(i.data for i in series)


def test_retrieve_study(loaded):
    raw = retrieve_raw(f"{loaded.url}/studies/{study_of(loaded, 'wsi')}")
    assert sorted(raw) == sorted(i.data for i in loaded.corpus.wsi)
    datasets = loaded.client.retrieve_study(study_of(loaded, "ct"))
    assert {d.SOPInstanceUID for d in datasets} == {i.sop_uid for i in loaded.corpus.ct}


def test_unsupported_transfer_syntax_is_406(loaded):
    inst = loaded.corpus.ct[0]
    r = requests.get(instance_url(loaded.url, inst.study_uid, inst.series_uid, inst.sop_uid),
                     headers={"Accept": 'multipart/related; type="application/dicom"; '
                                        'transfer-syntax=1.2.840.10008.1.2.4.100'},  # MPEG2 for a CT slice
                     timeout=TIMEOUT)
    assert r.status_code == 406, r.text[:300]
    assert r.text.strip(), "406 without an explanation"


# --------------------------------------------------------------------------
# WADO-RS: metadata and bulkdata
# --------------------------------------------------------------------------


def _assert_pixel_data_is_bulk(meta: dict):
    pd = meta.get(PIXEL_DATA)
    assert pd is not None, "PixelData missing from metadata"
    assert "BulkDataURI" in pd and "InlineBinary" not in pd, pd


def test_study_metadata(loaded):
    meta = loaded.client.retrieve_study_metadata(study_of(loaded, "ct"))
    assert uids(meta, SOP_UID) == {i.sop_uid for i in loaded.corpus.ct}
    for m in meta:
        assert m[PATIENT_NAME] == {"vr": "PN", "Value": [{"Alphabetic": "Müller^Jürgen"}]}
        assert value(m, STUDY_UID) == study_of(loaded, "ct")
        assert value(m, ROWS) == 64
        _assert_pixel_data_is_bulk(m)


def test_series_metadata(loaded):
    wsi = loaded.corpus.wsi_bot
    meta = loaded.client.retrieve_series_metadata(wsi.study_uid, wsi.series_uid)
    assert uids(meta, SOP_UID) == {i.sop_uid for i in loaded.corpus.wsi}
    for m in meta:
        assert value(m, NUMBER_OF_FRAMES) == 120
        assert value(m, SOP_CLASS) == dicomgen.VL_WHOLE_SLIDE
        _assert_pixel_data_is_bulk(m)


def test_instance_metadata_latin1(loaded):
    mr = loaded.corpus.mr_latin1
    m = loaded.client.retrieve_instance_metadata(mr.study_uid, mr.series_uid, mr.sop_uid)
    assert value(m, SOP_UID) == mr.sop_uid
    assert m[PATIENT_NAME] == {"vr": "PN", "Value": [{"Alphabetic": "Dürer^Élodie"}]}
    assert value(m, STUDY_DESCRIPTION) == "IRM genou synthétique"


def test_bulkdata_native_pixel_data(loaded):
    ct = loaded.corpus.ct[3]
    meta_url = instance_url(loaded.url, ct.study_uid, ct.series_uid, ct.sop_uid) + "/metadata"
    m = loaded.client.retrieve_instance_metadata(ct.study_uid, ct.series_uid, ct.sop_uid)
    uri = urljoin(meta_url, m[PIXEL_DATA]["BulkDataURI"])
    parts = loaded.client.retrieve_bulkdata(uri, media_types=("application/octet-stream",))
    assert len(parts) == 1
    assert parts[0] == ct.frames[0]


# --------------------------------------------------------------------------
# WADO-RS: frames
# --------------------------------------------------------------------------


@pytest.mark.parametrize("frames", [[1], [10], [3, 7], [10, 1, 5], list(range(1, 11))], ids=str)
def test_native_frames(loaded, frames):
    mf = loaded.corpus.mf_native
    got = loaded.client.retrieve_instance_frames(
        mf.study_uid, mf.series_uid, mf.sop_uid, frame_numbers=frames,
        media_types=(("application/octet-stream", EXPLICIT_LE),))
    assert got == [mf.frames[n - 1] for n in frames]


@pytest.mark.parametrize("label", ["wsi-nobot", "wsi-bot"])
@pytest.mark.parametrize("frames", [[1], [120], [2, 61, 119], [77, 3]], ids=str)
def test_jpeg_frames(loaded, label, frames):
    wsi = by_label(loaded, label)
    got = loaded.client.retrieve_instance_frames(
        wsi.study_uid, wsi.series_uid, wsi.sop_uid, frame_numbers=frames,
        media_types=(("image/jpeg", JPEG_BASELINE),))
    assert len(got) == len(frames)
    for n, data in zip(frames, got):
        assert data == wsi.frames[n - 1], f"frame {n} differs ({len(data)} vs {len(wsi.frames[n - 1])} bytes)"
    img = Image.open(io.BytesIO(got[0]))
    assert img.format == "JPEG" and img.size == (64, 64)


@pytest.mark.parametrize("label", ["wsi-nobot", "wsi-bot"])
def test_all_jpeg_frames_in_one_request(loaded, label):
    wsi = by_label(loaded, label)
    got = loaded.client.retrieve_instance_frames(
        wsi.study_uid, wsi.series_uid, wsi.sop_uid, frame_numbers=list(range(1, 121)),
        media_types=(("image/jpeg", JPEG_BASELINE),))
    assert got == wsi.frames


def test_jpeg_frame_as_octet_stream_in_stored_syntax(loaded):
    wsi = loaded.corpus.wsi_nobot
    url = instance_url(loaded.url, wsi.study_uid, wsi.series_uid, wsi.sop_uid) + "/frames/42"
    got = retrieve_raw(url, accept='multipart/related; type="application/octet-stream"; transfer-syntax=*')
    assert got == [wsi.frames[41]]


@pytest.mark.parametrize("frame", ["0", "121"])
def test_frame_out_of_range(loaded, frame):
    wsi = loaded.corpus.wsi_bot
    url = instance_url(loaded.url, wsi.study_uid, wsi.series_uid, wsi.sop_uid) + f"/frames/{frame}"
    r = requests.get(url, headers={"Accept": 'multipart/related; type="application/octet-stream"; '
                                              'transfer-syntax=*'}, timeout=TIMEOUT)
    assert r.status_code in (400, 404), r.status_code
    assert loaded.server.alive


# --------------------------------------------------------------------------
# dcmtk validates what comes back
# --------------------------------------------------------------------------


def dcmdump(path) -> str:
    r = subprocess.run([DCMDUMP, "+U8", str(path)], capture_output=True, timeout=60)
    out = r.stdout.decode("utf-8", "replace")
    assert r.returncode == 0, f"dcmdump failed ({r.returncode}): {r.stderr.decode('utf-8', 'replace')}"
    assert "E: " not in r.stderr.decode("utf-8", "replace"), r.stderr
    return out


def dumped_value(dump: str, tag: str) -> str:
    m = re.search(r"^\(" + re.escape(tag) + r"\) \w\w \[(.*?)\]", dump, re.M)
    assert m, f"({tag}) not in dcmdump output"
    return m.group(1)


@pytest.mark.parametrize("label,name", [
    ("ct-s1-i2", "Müller^Jürgen"),
    ("mr-latin1", "Dürer^Élodie"),
    ("sc-implicit", "Implicit^Ivan"),
    ("wsi-nobot", "Slide^Patient"),
])
def test_dcmdump_parses_retrieved_instance(loaded, tmp_path, label, name):
    inst = by_label(loaded, label)
    ds = loaded.client.retrieve_instance(inst.study_uid, inst.series_uid, inst.sop_uid)
    (raw,) = retrieve_raw(instance_url(loaded.url, inst.study_uid, inst.series_uid, inst.sop_uid))
    path = tmp_path / f"{label}.dcm"
    path.write_bytes(raw)
    dump = dcmdump(path)
    assert dumped_value(dump, "0008,0018") == inst.sop_uid == ds.SOPInstanceUID
    assert dumped_value(dump, "0010,0010") == name
    if label.startswith("wsi"):
        assert "PixelSequence #=121" in dump  # offset table item + 120 fragments


# --------------------------------------------------------------------------
# WADO-URI
# --------------------------------------------------------------------------


@pytest.mark.parametrize("label", ["ct-s1-i1", "sc-implicit", "wsi-bot"])
def test_wado_uri(loaded, label):
    inst = by_label(loaded, label)
    params = {"requestType": "WADO", "studyUID": inst.study_uid, "seriesUID": inst.series_uid,
              "objectUID": inst.sop_uid, "contentType": "application/dicom"}
    # transferSyntax=*: the stored bytes.
    r = requests.get(f"{loaded.url}/wado", params=params | {"transferSyntax": "*"}, timeout=TIMEOUT)
    assert r.status_code == 200, r.text[:300]
    assert r.headers.get("Content-Type", "").startswith("application/dicom")
    assert r.content == inst.data
    # By default Explicit VR Little Endian (PS3.18 §9.3.2.1): the same data set.
    r = requests.get(f"{loaded.url}/wado", params=params, timeout=TIMEOUT)
    assert r.status_code == 200, r.text[:300]
    got = pydicom.dcmread(io.BytesIO(r.content))
    assert got.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    want = inst.reread()
    if inst.transfer_syntax == "1.2.840.10008.1.2.1":
        assert r.content == inst.data
    elif inst.transfer_syntax == "1.2.840.10008.1.2":
        assert got.SOPInstanceUID == want.SOPInstanceUID and got.PixelData == want.PixelData, "re-encoded, same values"
    else:
        # A JPEG slide is decoded to native samples, every frame; two JPEG decoders (ours,
        # pydicom's) may round the inverse DCT differently by a level or two.
        assert got.SOPInstanceUID == want.SOPInstanceUID
        diff = np.abs(got.pixel_array.astype(int) - want.pixel_array.astype(int))
        assert got.pixel_array.shape == want.pixel_array.shape and diff.max() <= 4 and diff.mean() < 0.5, (diff.max(), diff.mean())


# --------------------------------------------------------------------------
# Unknown and invalid resources on a populated server
# --------------------------------------------------------------------------


def test_unknown_study_is_404(loaded):
    unknown = dicomgen.new_uid()
    ct = loaded.corpus.ct[0]
    for url, accept in [
        (f"{loaded.url}/studies/{unknown}", ACCEPT_DICOM_ANY_TS),
        (f"{loaded.url}/studies/{unknown}/metadata", DICOM_JSON),
        (f"{loaded.url}/studies/{unknown}/series/{ct.series_uid}/instances/{ct.sop_uid}", ACCEPT_DICOM_ANY_TS),
        (f"{loaded.url}/studies/{ct.study_uid}/series/{unknown}/metadata", DICOM_JSON),
        (f"{loaded.url}/studies/{ct.study_uid}/series/{ct.series_uid}/instances/{unknown}", ACCEPT_DICOM_ANY_TS),
    ]:
        r = requests.get(url, headers={"Accept": accept}, timeout=TIMEOUT)
        assert r.status_code == 404, f"{url}: {r.status_code}"
    r = requests.get(f"{loaded.url}/wado", params={
        "requestType": "WADO", "studyUID": unknown, "seriesUID": ct.series_uid,
        "objectUID": ct.sop_uid, "contentType": "application/dicom"}, timeout=TIMEOUT)
    assert r.status_code == 404


def test_multipart_parts_are_well_formed(loaded):
    """Each part of a WADO-RS response names its media type and transfer syntax."""
    inst = loaded.corpus.sc_implicit
    r = requests.get(instance_url(loaded.url, inst.study_uid, inst.series_uid, inst.sop_uid),
                     headers={"Accept": ACCEPT_DICOM_ANY_TS}, timeout=TIMEOUT)
    assert r.status_code == 200
    ((headers, data),) = parse_multipart(r)
    assert headers["content-type"].startswith("application/dicom")
    assert data == inst.data
