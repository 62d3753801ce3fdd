"""Retrieve hands over what was stored (issue 26), checked with the peers that hit it.

A study of a JPEG baseline whole-slide image, a JPEG 2000 lossless CT and an uncompressed CT:

- Debian's Orthanc pulls it by C-MOVE through its own REST API (`/modalities/{id}/move`): every
  object arrives in its stored transfer syntax with the same data set, Pixel Data byte for
  byte. It is the peer of the defect: offered one context with several syntaxes, it takes an
  uncompressed one, and the slide arrived decoded.
- A pynetdicom storage SCP that accepts only Implicit VR Little Endian still gets every
  object, decoded (the fallback contexts).
- A pynetdicom C-GET requester that offers, per SOP class, the stored syntax and the
  uncompressed ones in separate contexts gets each object in its stored syntax.

The retrieve path does not depend on the catalog or blob backend (the sub-operations read
through the archive like every other read), so this runs on the embedded backend only.
"""

from __future__ import annotations

import copy
import io
import json
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pydicom
import pytest
import requests
from pydicom.dataset import Dataset
from pydicom.uid import JPEG2000Lossless
from pynetdicom import AE, build_role, evt
from pynetdicom.sop_class import (
    CTImageStorage,
    StudyRootQueryRetrieveInformationModelGet as STUDY_ROOT_GET,
    StudyRootQueryRetrieveInformationModelMove as STUDY_ROOT_MOVE,
    VLWholeSlideMicroscopyImageStorage,
)

import dicomgen
import helpers
import imagegen
from conftest import ServerPool

IMPLICIT = "1.2.840.10008.1.2"
EXPLICIT = "1.2.840.10008.1.2.1"
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
ORTHANC_AE = "ORTHANC"
IMPLICIT_ONLY_AE = "IMPLONLY"




def orthanc_binary() -> str:
    for p in ("/usr/sbin/Orthanc", "/usr/bin/Orthanc"):
        if Path(p).exists():
            return p
    found = shutil.which("Orthanc")
    if not found:
        pytest.fail("Orthanc is not installed (scripts/test.sh installs Debian's orthanc)")
    return found


def j2k_ct(template: dicomgen.Instance) -> dicomgen.Instance:
    """The CT `template` (same study) as a new instance with JPEG 2000 lossless Pixel Data."""
    ds = copy.deepcopy(template.ds)
    ds.SOPInstanceUID = dicomgen.new_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = JPEG2000Lossless
    ds.InstanceNumber = 99
    pixels = np.frombuffer(template.frames[0], dtype="<u2").reshape(64, 64)
    j2k = imagegen.j2k_lossless(pixels)
    ds.add_new(0x7FE00010, "OB", imagegen.encapsulated([j2k + (b"\x00" if len(j2k) % 2 else b"")]))
    ds["PixelData"].is_undefined_length = True
    return dicomgen.Instance(ds, dicomgen.to_part10(ds), [template.frames[0]], label="ct-j2k")


class Study:
    def __init__(self, server, instances: list[dicomgen.Instance]):
        self.server = server
        self.instances = {i.sop_uid: i for i in instances}
        self.study_uid = instances[0].study_uid


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("as-stored")
    orthanc_dimse, implicit_port = helpers.free_port(), helpers.free_port()
    config = tmp / "vna.toml"
    config.write_text(
        "version = 1\n"
        f'[[dimse.known_aes]]\nae_title = "{ORTHANC_AE}"\nhost = "127.0.0.1"\nport = {orthanc_dimse}\n'
        "can_store = false\ncan_query = true\ncan_retrieve = true\n"
        f'[[dimse.known_aes]]\nae_title = "{IMPLICIT_ONLY_AE}"\nhost = "127.0.0.1"\nport = {implicit_port}\n'
        "can_store = false\ncan_query = false\ncan_retrieve = false\n")
    pool = ServerPool(tmp / "servers")
    srv = pool.start("sqlite", name="as-stored", args=["--config", str(config)])
    srv.orthanc_dimse = orthanc_dimse
    srv.implicit_port = implicit_port
    study_uid = dicomgen.new_uid()
    ct = dicomgen.ct_study(series_count=1, instances_per_series=1, study_uid=study_uid,
                           patient_id=dicomgen.PATIENT_ID_PREFIX + "ASSTORED")[0]
    slide = dicomgen.wsi_slide(has_bot=True, tiles_x=3, tiles_y=2, study_uid=study_uid,
                               patient_name="Müller^Jürgen", patient_id=dicomgen.PATIENT_ID_PREFIX + "ASSTORED")
    instances = [slide, j2k_ct(ct), ct]
    r = helpers.stow(srv.dicomweb, [i.data for i in instances])
    assert r.status_code == 200, f"{r.status_code} {r.text[:300]}"
    yield Study(srv, instances)
    pool.close()


# --------------------------------------------------------------------------
# Orthanc pulls the study by C-MOVE
# --------------------------------------------------------------------------


class Orthanc:
    """A throw-away Orthanc on loopback that knows vna as a modality."""

    def __init__(self, workdir: Path, dimse_port: int, vna_port: int):
        workdir.mkdir(parents=True, exist_ok=True)
        self.http = f"http://127.0.0.1:{helpers.free_port()}"
        conf = {
            "Name": "vna-e2e-orthanc",
            "StorageDirectory": str(workdir / "storage"),
            "IndexDirectory": str(workdir / "index"),
            "StorageCompression": False,
            "Plugins": [],
            "HttpPort": int(self.http.rsplit(":", 1)[1]),
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "DicomServerEnabled": True,
            "DicomAet": ORTHANC_AE,
            "DicomPort": dimse_port,
            "DicomCheckCalledAet": False,
            "DicomAlwaysAllowStore": True,
            "UnknownSopClassAccepted": True,
            "SaveJobs": False,
            "DicomModalities": {"vna": ["VNA", "127.0.0.1", vna_port]},
        }
        (workdir / "orthanc.json").write_text(json.dumps(conf, indent=2))
        self.log = open(workdir / "orthanc.log", "wb")
        self.proc = subprocess.Popen([orthanc_binary(), str(workdir / "orthanc.json")], stdout=self.log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.log_path = workdir / "orthanc.log"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Orthanc exited at start:\n{self.log_tail()}")
            try:
                if requests.get(self.http + "/system", timeout=2).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"Orthanc did not answer within 60 s:\n{self.log_tail()}")

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def same_data_set(got: Dataset, stored: dicomgen.Instance) -> None:
    want = stored.reread()
    assert str(got.file_meta.TransferSyntaxUID) == stored.transfer_syntax, stored.label
    assert got.PixelData == want.PixelData, f"{stored.label}: Pixel Data differs from what was stored"
    assert got.PhotometricInterpretation == want.PhotometricInterpretation, stored.label
    differing = [str(e.tag) for e in want if e.tag not in got or got[e.tag].value != e.value]
    assert not differing, f"{stored.label}: elements differ or are missing: {differing}"


def test_orthanc_c_move_gets_every_object_as_stored(study, tmp_path):
    orthanc = Orthanc(tmp_path / "orthanc", study.server.orthanc_dimse, study.server.dimse_port)
    try:
        r = requests.post(orthanc.http + "/modalities/vna/move",
                          json={"Level": "Study", "Resources": [{"StudyInstanceUID": study.study_uid}], "Synchronous": True},
                          timeout=300)
        assert r.ok, f"Orthanc's C-MOVE failed: {r.status_code} {r.text[:500]}\n{orthanc.log_tail()}\n{study.server.log_tail()}"
        ids = requests.get(orthanc.http + "/instances", timeout=60).json()
        assert len(ids) == len(study.instances), f"Orthanc holds {len(ids)} of {len(study.instances)} instances"
        for oid in ids:
            data = requests.get(f"{orthanc.http}/instances/{oid}/file", timeout=60).content
            got = pydicom.dcmread(io.BytesIO(data))
            same_data_set(got, study.instances[str(got.SOPInstanceUID)])
    finally:
        orthanc.stop()


# --------------------------------------------------------------------------
# A destination that takes implicit VR only still gets everything, decoded
# --------------------------------------------------------------------------


def test_c_move_to_a_peer_that_takes_implicit_only_gets_everything_decoded(study):
    received: list[tuple[str, Dataset]] = []

    on_store = helpers.collecting_store_handler(received)

    scp_ae = AE(ae_title=IMPLICIT_ONLY_AE)
    for sop_class in (CTImageStorage, VLWholeSlideMicroscopyImageStorage):
        scp_ae.add_supported_context(sop_class, [IMPLICIT])
    scp = scp_ae.start_server(("127.0.0.1", study.server.implicit_port), block=False, evt_handlers=[(evt.EVT_C_STORE, on_store)])
    try:
        ae = AE(ae_title="MOVESCU")
        ae.add_requested_context(STUDY_ROOT_MOVE)
        assoc = ae.associate("127.0.0.1", study.server.dimse_port, ae_title="VNA")
        assert assoc.is_established
        try:
            q = Dataset()
            q.QueryRetrieveLevel = "STUDY"
            q.StudyInstanceUID = study.study_uid
            final = [s.Status for s, _ in assoc.send_c_move(q, IMPLICIT_ONLY_AE, STUDY_ROOT_MOVE)][-1]
        finally:
            assoc.release()
    finally:
        scp.shutdown()
    assert final == 0x0000, f"final status {final:#06x}"
    assert sorted(str(ds.SOPInstanceUID) for _, ds in received) == sorted(study.instances)
    for ts, ds in received:
        inst = study.instances[str(ds.SOPInstanceUID)]
        assert ts == IMPLICIT, inst.label
        frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
        assert len(ds.PixelData) == ds.Rows * ds.Columns * ds.SamplesPerPixel * (ds.BitsAllocated // 8) * frames, inst.label
        if inst.label.startswith("ct"):
            assert ds.PixelData == inst.frames[0], f"{inst.label}: lossless data decodes exactly"
        else:
            assert ds.PhotometricInterpretation == "RGB", "decoded JPEG samples are RGB"


# --------------------------------------------------------------------------
# C-GET: the requester offers the stored syntax and the fallbacks apart
# --------------------------------------------------------------------------


def test_c_get_with_separate_contexts_gets_the_stored_syntax(study):
    got: list[tuple[str, Dataset]] = []

    on_store = helpers.collecting_store_handler(got)

    ae = AE(ae_title="GETSCU")
    ae.add_requested_context(STUDY_ROOT_GET)
    # The uncompressed contexts first: the archive must still pick the stored syntax's one.
    for sop_class, stored in ((CTImageStorage, JPEG2000Lossless), (CTImageStorage, EXPLICIT),
                              (VLWholeSlideMicroscopyImageStorage, JPEG_BASELINE)):
        for ts in (IMPLICIT, EXPLICIT, stored):
            if not any(c.abstract_syntax == sop_class and c.transfer_syntax == [ts] for c in ae.requested_contexts):
                ae.add_requested_context(sop_class, [ts])
    roles = [build_role(CTImageStorage, scp_role=True), build_role(VLWholeSlideMicroscopyImageStorage, scp_role=True)]
    assoc = ae.associate("127.0.0.1", study.server.dimse_port, ae_title="VNA", ext_neg=roles,
                         evt_handlers=[(evt.EVT_C_STORE, on_store)])
    assert assoc.is_established
    try:
        q = Dataset()
        q.QueryRetrieveLevel = "STUDY"
        q.StudyInstanceUID = study.study_uid
        final = [s.Status for s, _ in assoc.send_c_get(q, STUDY_ROOT_GET)][-1]
    finally:
        assoc.release()
    assert final == 0x0000, f"final status {final:#06x}"
    assert sorted(str(ds.SOPInstanceUID) for _, ds in got) == sorted(study.instances)
    for ts, ds in got:
        inst = study.instances[str(ds.SOPInstanceUID)]
        assert ts == inst.transfer_syntax, f"{inst.label} came in {ts}"
        same_data_set(ds, inst)
