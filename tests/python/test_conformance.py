"""Conformance gaps real clients hit, each checked with the client that hit it, on every backend.

- Uncompressed syntaxes are re-encoded: an instance stored in Implicit VR LE, Explicit VR BE
  or Deflated Explicit VR LE (made with dcmtk's dcmconv) comes back over WADO-RS and WADO-URI
  as Explicit VR LE by default (PS3.18 §8.7.3.5.2), every value the same, readable by dcmtk.
- C-GET and C-MOVE send each instance in a syntax the peer accepted: pynetdicom proposing
  implicit first, a storage SCP taking implicit only, a JPEG Lossless instance decoded for it.
- One verdict per defect, whichever protocol carries the object: truncated (cut inside a
  value, a header, an item of undefined length), meta group not describing the data set, a
  US of 3 bytes, an unknown transfer syntax, a length the object cannot hold. STOW-RS,
  C-STORE (pynetdicom, re-encoding and raw) and `vna import` refuse each, and store nothing.
"""

from __future__ import annotations

import io
import subprocess
import tempfile
from pathlib import Path

import pydicom
import pytest
import requests
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pynetdicom import AE, build_role, evt
from pynetdicom import _config as pynetdicom_config
from pynetdicom.sop_class import (
    CTImageStorage,
    StudyRootQueryRetrieveInformationModelGet as STUDY_ROOT_GET,
    StudyRootQueryRetrieveInformationModelMove as STUDY_ROOT_MOVE,
)

import dicomgen
import helpers
from conftest import BACKENDS, ServerPool, vna_bin

IMPLICIT = "1.2.840.10008.1.2"
EXPLICIT = "1.2.840.10008.1.2.1"
DEFLATED = "1.2.840.10008.1.2.1.99"
BIG_ENDIAN = "1.2.840.10008.1.2.2"
JPEG_LOSSLESS_SV1 = "1.2.840.10008.1.2.4.70"
DCMCONV = {IMPLICIT: "+ti", BIG_ENDIAN: "+tb", DEFLATED: "+td", EXPLICIT: "+te"}
MOVE_AE = "MOVEDEST"




def run(cmd: list[str]) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, capture_output=True, timeout=120)
    assert r.returncode == 0, f"{' '.join(cmd)}: {r.stderr.decode('utf-8', 'replace')[-2000:]}"
    return r


def rich_ct(patient_id: str) -> dicomgen.Instance:
    """A CT with what re-encoding must keep: nested sequences (defined and undefined lengths),
    private elements, signed and unsigned binary values, UTF-8 text."""
    inst = dicomgen.ct_study(series_count=1, instances_per_series=1, patient_id=patient_id)[0]
    ds = inst.reread()
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "T-D3000", "SRT", "Poitrine"
    inner = Dataset()
    inner.ReferencedSOPClassUID, inner.ReferencedSOPInstanceUID = CTImageStorage, dicomgen.new_uid()
    code.ReferencedImageSequence = Sequence([inner])
    ds.AnatomicRegionSequence = Sequence([code])
    ds["AnatomicRegionSequence"].is_undefined_length = True
    code.is_undefined_length_sequence_item = True
    ds.add_new(0x00291010, "LO", "ACME 1.0")
    ds.add_new(0x00291011, "LO", "private text")
    ds.add_new(0x00291012, "OB", b"\x01\x02\x03\x04")
    ds.add_new(0x00280106, "US", 0)  # Smallest Image Pixel Value: US or SS, by Pixel Representation
    ds.add_new(0x00280107, "US", 4095)
    ds.add_new(0x00189328, "FD", 1.5)  # Exposure Time in ms
    data = dicomgen.to_part10(ds)
    return dicomgen.Instance(pydicom.dcmread(io.BytesIO(data)), data, inst.frames, label="rich-ct")


def converted(inst: dicomgen.Instance, ts: str, workdir: Path) -> bytes:
    src, dst = workdir / f"{inst.sop_uid}.in.dcm", workdir / f"{inst.sop_uid}.{ts}.dcm"
    src.write_bytes(inst.data)
    run(["/usr/bin/dcmconv", DCMCONV[ts], str(src), str(dst)])
    out = dst.read_bytes()
    assert pydicom.dcmread(io.BytesIO(out)).file_meta.TransferSyntaxUID == ts
    return out


def jpeg_lossless(inst: dicomgen.Instance, workdir: Path) -> bytes:
    src, dst = workdir / f"{inst.sop_uid}.jl.in.dcm", workdir / f"{inst.sop_uid}.jl.dcm"
    src.write_bytes(inst.data)
    run(["/usr/bin/dcmcjpeg", "+e1", str(src), str(dst)])
    return dst.read_bytes()


def values(data: bytes) -> list:
    """Every element of the data set as (tag, value), sequences flattened, Pixel Data as the
    native samples: what must survive any re-encoding."""
    ds = pydicom.dcmread(io.BytesIO(data))
    out = []

    def walk(d: Dataset, path: str):
        for el in d:
            if el.tag == 0x7FE00010:
                out.append((path, el.tag, d.pixel_array.astype("<u2").tobytes()))
            elif el.VR == "SQ":
                for i, item in enumerate(el.value):
                    walk(item, f"{path}/{el.tag:08X}[{i}]")
            else:
                # Read from implicit VR, a private value is UN bytes; from explicit, its text.
                v = el.value
                text = bytes(v).decode("latin-1") if isinstance(v, (bytes, bytearray)) else str(v)
                out.append((path, el.tag, text.rstrip(" \0")))

    walk(ds, "")
    return out


def dcmtk_reads(data: bytes, workdir: Path) -> None:
    p = workdir / "check.dcm"
    p.write_bytes(data)
    r = subprocess.run(["/usr/bin/dcmdump", "-q", "+E", str(p)], capture_output=True, timeout=60)
    assert r.returncode == 0 and not r.stderr.strip(), r.stderr.decode("utf-8", "replace")[-1000:]


class Stored:
    def __init__(self, server, tmp: Path):
        self.server = server
        self.tmp = tmp
        self.by_label: dict[str, tuple[dicomgen.Instance, bytes]] = {}

    def url(self, label: str) -> str:
        inst = self.by_label[label][0]
        return helpers.instance_url(self.server.dicomweb, inst.study_uid, inst.series_uid, inst.sop_uid)


@pytest.fixture(scope="module", params=BACKENDS)
def stored(request, tmp_path_factory):
    """A server per backend, knowing MOVEDEST as a C-MOVE destination, holding the rich CT in
    every uncompressed syntax and as JPEG Lossless."""
    tmp = tmp_path_factory.mktemp(f"conformance-{request.param}")
    move_port = helpers.free_port()
    config = tmp / "vna.toml"
    config.write_text(f'version = 1\n[[dimse.known_aes]]\nae_title = "{MOVE_AE}"\nhost = "127.0.0.1"\nport = {move_port}\n'
                      'can_store = false\ncan_query = false\ncan_retrieve = false\n')
    pool = ServerPool(tmp / "servers")
    srv = pool.start(request.param, name=f"conformance-{request.param}", args=["--config", str(config)])
    srv.move_port = move_port
    s = Stored(srv, tmp)
    for ts in (IMPLICIT, BIG_ENDIAN, DEFLATED, EXPLICIT):
        inst = rich_ct(dicomgen.PATIENT_ID_PREFIX + "CONF-" + ts)
        data = inst.data if ts == EXPLICIT else converted(inst, ts, tmp)
        r = helpers.stow(srv.dicomweb, [data])
        assert r.status_code == 200, f"{ts}: {r.status_code} {r.text[:300]}"
        s.by_label[ts] = (inst, data)
    inst = rich_ct(dicomgen.PATIENT_ID_PREFIX + "CONF-JPEG")
    data = jpeg_lossless(inst, tmp)
    r = helpers.stow(srv.dicomweb, [data])
    assert r.status_code == 200, r.text[:300]
    s.by_label["jpeg"] = (inst, data)
    yield s
    pool.close()


def one_part(r: requests.Response) -> tuple[dict, bytes]:
    assert r.status_code == 200, f"{r.status_code} {r.text[:300]}"
    (part,) = helpers.parse_multipart(r)
    return part


# --------------------------------------------------------------------------
# Re-encoding on retrieval
# --------------------------------------------------------------------------


@pytest.mark.parametrize("ts", [IMPLICIT, BIG_ENDIAN, DEFLATED])
@pytest.mark.parametrize("accept", ['multipart/related; type="application/dicom"',
                                    f'multipart/related; type="application/dicom"; transfer-syntax={EXPLICIT}',
                                    "multipart/related; type=application/dicom", "*/*"])
def test_wado_rs_returns_explicit_le_with_every_value(stored, ts, accept):
    inst, data = stored.by_label[ts]
    headers, body = one_part(requests.get(stored.url(ts), headers={"Accept": accept}, timeout=60))
    assert headers["content-type"].replace(" ", "") == f"application/dicom;transfer-syntax={EXPLICIT}", headers
    assert pydicom.dcmread(io.BytesIO(body)).file_meta.TransferSyntaxUID == EXPLICIT
    assert values(body) == values(inst.data) == values(data)
    dcmtk_reads(body, stored.tmp)


@pytest.mark.parametrize("ts", [IMPLICIT, BIG_ENDIAN, DEFLATED, EXPLICIT])
def test_stored_bytes_on_request_and_never_implicit(stored, ts):
    _, data = stored.by_label[ts]
    _, body = one_part(requests.get(stored.url(ts), headers={"Accept": helpers.ACCEPT_DICOM_ANY_TS}, timeout=60))
    assert body == data
    r = requests.get(stored.url(ts), headers={"Accept": f'multipart/related; type="application/dicom"; transfer-syntax={IMPLICIT}'},
                     timeout=60)
    assert r.status_code == 406 and r.text.strip(), r.status_code
    # dicomweb-client asks for transfer-syntax=*: the stored object.
    inst = stored.by_label[ts][0]
    ds = stored.server.client().retrieve_instance(inst.study_uid, inst.series_uid, inst.sop_uid)
    assert ds.file_meta.TransferSyntaxUID == ts


@pytest.mark.parametrize("ts", [IMPLICIT, BIG_ENDIAN, DEFLATED])
def test_wado_uri_application_dicom_is_explicit_le(stored, ts):
    inst, data = stored.by_label[ts]
    q = {"requestType": "WADO", "studyUID": inst.study_uid, "seriesUID": inst.series_uid, "objectUID": inst.sop_uid,
         "contentType": "application/dicom"}
    r = requests.get(stored.server.dicomweb + "/wado", params=q, timeout=60)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/dicom")
    assert pydicom.dcmread(io.BytesIO(r.content)).file_meta.TransferSyntaxUID == EXPLICIT
    assert values(r.content) == values(data)
    r = requests.get(stored.server.dicomweb + "/wado", params=q | {"transferSyntax": "*"}, timeout=60)
    assert r.content == data
    r = requests.get(stored.server.dicomweb + "/wado", params=q | {"transferSyntax": IMPLICIT}, timeout=60)
    assert r.status_code == 406


def test_a_compressed_instance_is_decoded_by_default(stored):
    inst, data = stored.by_label["jpeg"]
    headers, body = one_part(requests.get(stored.url("jpeg"), headers={"Accept": 'multipart/related; type="application/dicom"'},
                                          timeout=60))
    assert f"transfer-syntax={EXPLICIT}" in headers["content-type"].replace(" ", "")
    assert pydicom.dcmread(io.BytesIO(body)).PixelData == inst.frames[0], "JPEG Lossless decodes exactly"


# --------------------------------------------------------------------------
# C-GET and C-MOVE in the syntax the peer accepted
# --------------------------------------------------------------------------


def c_get(server, study_uid: str, syntaxes: list[str]) -> tuple[int, list[tuple[str, Dataset]]]:
    got: list[tuple[str, Dataset]] = []

    on_store = helpers.collecting_store_handler(got)

    ae = AE(ae_title="GETSCU")
    ae.add_requested_context(STUDY_ROOT_GET)
    ae.add_requested_context(CTImageStorage, syntaxes)
    assoc = ae.associate("127.0.0.1", server.dimse_port, ae_title="VNA", ext_neg=[build_role(CTImageStorage, scp_role=True)],
                         evt_handlers=[(evt.EVT_C_STORE, on_store)])
    assert assoc.is_established
    try:
        q = Dataset()
        q.QueryRetrieveLevel = "STUDY"
        q.StudyInstanceUID = study_uid
        final = [s.Status for s, _ in assoc.send_c_get(q, STUDY_ROOT_GET)][-1]
    finally:
        assoc.release()
    return final, got


@pytest.mark.parametrize("label", [EXPLICIT, BIG_ENDIAN, "jpeg"])
@pytest.mark.parametrize("syntaxes", [[IMPLICIT, EXPLICIT], [IMPLICIT], [EXPLICIT]])
def test_c_get_sends_in_an_accepted_syntax(stored, label, syntaxes):
    inst, _ = stored.by_label[label]
    final, got = c_get(stored.server, inst.study_uid, syntaxes)
    assert final == 0x0000, f"final status {final:#06x}"
    ((ts, ds),) = got
    assert ts == syntaxes[0], "the context was accepted with the requester's first syntax"
    assert ds.SOPInstanceUID == inst.sop_uid
    assert ds.PixelData == inst.frames[0]
    assert ds.AnatomicRegionSequence[0].ReferencedImageSequence[0].ReferencedSOPClassUID == CTImageStorage
    assert ds[0x00291012].value == b"\x01\x02\x03\x04"


class StorageScp:
    """A storage SCP (pynetdicom) that accepts CT Image Storage in implicit VR only."""

    def __init__(self, port: int, syntaxes: list[str]):
        self.received: list[tuple[str, Dataset]] = []
        ae = AE(ae_title=MOVE_AE)
        ae.add_supported_context(CTImageStorage, syntaxes)

        on_store = helpers.collecting_store_handler(self.received)

        self.server = ae.start_server(("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_STORE, on_store)])

    def stop(self):
        self.server.shutdown()


@pytest.mark.parametrize("label", [EXPLICIT, DEFLATED, "jpeg"])
def test_c_move_to_a_peer_that_takes_implicit_only(stored, label):
    inst, _ = stored.by_label[label]
    scp = StorageScp(stored.server.move_port, [IMPLICIT])
    try:
        ae = AE(ae_title="MOVESCU")
        ae.add_requested_context(STUDY_ROOT_MOVE)
        assoc = ae.associate("127.0.0.1", stored.server.dimse_port, ae_title="VNA")
        assert assoc.is_established
        try:
            q = Dataset()
            q.QueryRetrieveLevel = "STUDY"
            q.StudyInstanceUID = inst.study_uid
            final = [s.Status for s, _ in assoc.send_c_move(q, MOVE_AE, STUDY_ROOT_MOVE)][-1]
        finally:
            assoc.release()
    finally:
        scp.stop()
    assert final == 0x0000, f"final status {final:#06x}"
    ((ts, ds),) = scp.received
    assert ts == IMPLICIT
    assert ds.PixelData == inst.frames[0]
    assert ds.AnatomicRegionSequence[0].CodeMeaning == "Poitrine"


# --------------------------------------------------------------------------
# One verdict per defect, whichever protocol carries the object
# --------------------------------------------------------------------------


def _meta_end(data: bytes) -> int:
    return 144 + int.from_bytes(data[140:144], "little")


def _find(data: bytes, needle: bytes, start: int = 0) -> int:
    at = data.find(needle, start)
    assert at >= 0, needle
    return at


def _defects() -> dict[str, tuple[bytes, int, str]]:
    """label: (Part 10 bytes, expected C-STORE/STOW failure code, words of the reason)."""
    ct = rich_ct(dicomgen.PATIENT_ID_PREFIX + "DEFECT")
    data = ct.data
    out = {}
    out["cut-in-value"] = (data[: len(data) - 1000], 0xC000, "declares")
    pixel = _find(data, b"\xe0\x7f\x10\x00OW")
    out["cut-in-header"] = (data[: pixel + 6], 0xC000, "truncated")
    item = _find(data, b"\xfe\xff\x00\xe0\xff\xff\xff\xff", _meta_end(data))
    out["cut-in-undefined-item"] = (data[: item + 20], 0xC000, "")
    # The meta group names another SOP instance than the data set.
    # (Patched in place: pydicom rewrites the meta group from the data set when it saves.)
    uid = ct.sop_uid.encode()
    other = uid[:-1] + (b"1" if uid[-1:] != b"1" else b"2")
    at = _find(data, uid)
    assert at < _meta_end(data), "the first occurrence is the meta group's"
    out["meta-mismatch"] = (data[:at] + other + data[at + len(uid):], 0xA900, "Media Storage SOP Instance UID")
    # Rows (US) with a value length of 3.
    b = bytearray(data)
    rows = _find(bytes(b), b"\x28\x00\x10\x00US\x02\x00", _meta_end(data))
    b[rows + 6:rows + 8] = (3).to_bytes(2, "little")
    b.insert(rows + 8, 0)
    out["us-length-3"] = (bytes(b), 0xC000, "multiple")
    # A long text declaring about 4 GiB in an object of a few KB.
    b = bytearray(data)
    at = _find(bytes(b), b"\xe0\x7f\x10\x00OW")
    b[at:at] = b"\x20\x00\x00\x40UT\x00\x00\xf0\xff\xff\xff" + b"x" * 64
    out["declares-4-gib"] = (bytes(b), 0xC000, "declares")
    return out


def _unknown_ts() -> bytes:
    ds = rich_ct(dicomgen.PATIENT_ID_PREFIX + "DEFECT-TS").reread()
    ds.file_meta.TransferSyntaxUID = "1.2.3.4.5.6.7.8.9"
    buf = io.BytesIO()
    with dicomgen._no_validation():
        pydicom.dcmwrite(buf, ds, implicit_vr=False, little_endian=True, enforce_file_format=True)
    return buf.getvalue()


DEFECTS = list(_defects())


@pytest.fixture(scope="module")
def defect_server(tmp_path_factory):
    pool = ServerPool(tmp_path_factory.mktemp("defects"))
    yield pool.start("sqlite", name="defects")
    pool.close()


@pytest.mark.parametrize("label", DEFECTS)
def test_stow_and_c_store_refuse_alike(defect_server, label):
    data, code, words = _defects()[label]
    r = helpers.stow(defect_server.dicomweb, [data])
    assert r.status_code == 409, f"STOW {label}: {r.status_code} {r.text[:300]}"
    (item,) = helpers.failed(helpers.stow_json(r))
    assert helpers.value(item, "00081197") == code, f"STOW FailureReason {helpers.value(item, '00081197'):#06x}"
    # C-STORE of the same bytes, as pynetdicom sends a file without decoding it.
    status = c_store_raw(defect_server, data)
    if label == "meta-mismatch":
        # pynetdicom takes the command's SOP Instance UID from the meta group: A900 again.
        assert status == 0xA900, f"C-STORE {label}: {status:#06x}"
    else:
        assert status == code, f"C-STORE {label}: {status:#06x}"
    assert_no_defect_stored(defect_server)
    helpers.assert_still_serving(defect_server.dicomweb)


def assert_no_defect_stored(server) -> None:
    status, found = helpers.qido(server.dicomweb, "/instances", {"PatientID": dicomgen.PATIENT_ID_PREFIX + "DEFECT*"})
    assert status == 204 and not found, f"a refused object is visible: {status} {found[:1]}"


def c_store_raw(server, data: bytes, decode: bool = False) -> int:
    """C-STORE of a file with pynetdicom: sent as its bytes (pynetdicom's chunked mode), or,
    with `decode`, read by pydicom and re-encoded (its default)."""
    with tempfile.NamedTemporaryFile(suffix=".dcm") as f:
        f.write(data)
        f.flush()
        meta = pydicom.filereader.read_file_meta_info(f.name)
        ae = AE(ae_title="STORESCU")
        ae.add_requested_context(meta.MediaStorageSOPClassUID, [EXPLICIT])
        assoc = ae.associate("127.0.0.1", server.dimse_port, ae_title="VNA")
        assert assoc.is_established
        old = pynetdicom_config.STORE_SEND_CHUNKED_DATASET
        pynetdicom_config.STORE_SEND_CHUNKED_DATASET = not decode
        try:
            status = assoc.send_c_store(f.name)
        finally:
            pynetdicom_config.STORE_SEND_CHUNKED_DATASET = old
            assoc.release()
    assert status, "no C-STORE response"
    return status.Status


def test_a_cut_image_re_encoded_by_a_tolerant_reader_is_refused(defect_server):
    """pydicom reads a file cut inside Pixel Data and sends a shorter, well-formed value: the
    Image Pixel Module says how long it must be, so it is refused, not stored."""
    data, _, _ = _defects()["cut-in-value"]
    assert c_store_raw(defect_server, data, decode=True) == 0xC000
    assert_no_defect_stored(defect_server)


def test_an_unknown_transfer_syntax_is_refused_everywhere(defect_server):
    data = _unknown_ts()
    r = helpers.stow(defect_server.dicomweb, [data])
    assert r.status_code == 409 and "not a transfer syntax" in r.text, r.text[:300]
    # DIMSE refuses it at negotiation: the context is not accepted.
    ae = AE(ae_title="STORESCU")
    ae.add_requested_context(CTImageStorage, ["1.2.3.4.5.6.7.8.9"])
    assoc = ae.associate("127.0.0.1", defect_server.dimse_port, ae_title="VNA")
    try:
        assert not assoc.is_established or not assoc.accepted_contexts
    finally:
        if assoc.is_established:
            assoc.release()
    assert_no_defect_stored(defect_server)


def test_import_refuses_the_same_files(tmp_path):
    """`vna import` runs the same validation: every defect is a rejected file, and the valid
    one next to them is stored."""
    src = tmp_path / "src"
    src.mkdir()
    for label, (data, _, _) in _defects().items():
        (src / f"{label}.dcm").write_bytes(data)
    (src / "unknown-ts.dcm").write_bytes(_unknown_ts())
    good = rich_ct(dicomgen.PATIENT_ID_PREFIX + "IMPORT-OK")
    (src / "good.dcm").write_bytes(good.data)
    data_dir = tmp_path / "data"
    r = subprocess.run([vna_bin(), "import", "--data-dir", str(data_dir), str(src)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 1, f"import must exit 1 when files were rejected: {r.returncode} {r.stderr[-2000:]}"
    assert f"stored 1, duplicates 0, new versions 0, rejected {len(DEFECTS) + 1} " in r.stdout, r.stdout[-3000:]
    for label in [*DEFECTS, "unknown-ts"]:
        assert f"{label}.dcm" in r.stdout, f"{label} not listed as rejected:\n{r.stdout[-3000:]}"


# --------------------------------------------------------------------------
# Only the process that owns a store cleans its leftovers
# --------------------------------------------------------------------------


def test_verify_and_import_leave_a_running_servers_files_alone(tmp_path):
    """`vna verify` and `vna import` on the data directory of a running server must not take
    its uploads in progress for leftovers of a crash: the blob store's tmp/ and the spool are
    cleaned only by a process that has them to itself."""
    pool = ServerPool(tmp_path / "servers")
    try:
        srv = pool.start("sqlite", name="owner")
        data_dir = srv.data_dir
        in_progress = data_dir / "blobs" / "tmp" / "0123456789abcdef0123456789abcdef.part"
        spooled = data_dir / "spool" / "upload-in-progress"
        spooled.parent.mkdir(exist_ok=True)
        in_progress.write_bytes(b"a store in progress")
        spooled.write_bytes(b"an upload in progress")
        src = tmp_path / "import"
        src.mkdir()
        (src / "one.dcm").write_bytes(rich_ct(dicomgen.PATIENT_ID_PREFIX + "OWNER").data)
        for args in (["verify"], ["import", str(src)]):
            r = subprocess.run([vna_bin(), "--data-dir", str(data_dir), *args], capture_output=True, text=True, timeout=300)
            assert r.returncode == 0, f"vna {args[0]}: {r.returncode} {r.stdout[-1000:]} {r.stderr[-1000:]}"
            assert in_progress.exists(), f"vna {args[0]} removed the running server's temporary blob"
            assert spooled.exists(), f"vna {args[0]} removed the running server's spooled upload"
        helpers.assert_still_serving(srv.dicomweb)
        srv.stop()
        # Alone now: the next process to open the store cleans tmp/, the next server the spool.
        r = subprocess.run([vna_bin(), "--data-dir", str(data_dir), "verify"], capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-1000:]
        assert not in_progress.exists(), "leftovers of a store nobody has open stay forever"
        assert spooled.exists(), "verify never touches the spool"
        pool.start("sqlite", name="owner")
        assert not spooled.exists(), "a server alone on its data directory empties the spool"
    finally:
        pool.close()
