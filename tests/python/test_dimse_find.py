"""C-FIND and Storage Commitment against the real binary, on both catalog backends.

dcmtk's findscu (by full path: pynetdicom's apps install commands with the same names) queries
a corpus stored with dcmtk's storescu at every level of both models, with wildcards on UTF-8
names, date ranges, UID lists and universal matching; its responses (``--extract``) are read
back with pydicom. pynetdicom checks refusals, C-CANCEL (a corpus large enough for many
pending responses) and Storage Commitment with the result on the same association.
"""

from __future__ import annotations

import queue
import subprocess
import tempfile
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE, evt
from pynetdicom.sop_class import (
    PatientRootQueryRetrieveInformationModelFind as PATIENT_ROOT,
    StorageCommitmentPushModel,
    StudyRootQueryRetrieveInformationModelFind as STUDY_ROOT,
)

import dicomgen
import helpers
from conftest import ServerPool

FINDSCU = "/usr/bin/findscu"
STORESCU = "/usr/bin/storescu"
COMMITMENT_INSTANCE = "1.2.840.10008.1.20.1.1"
# storescu sends a file in its own transfer syntax only when the context leads with it.
PROPOSAL = {
    "1.2.840.10008.1.2": ["-xi"],
    "1.2.840.10008.1.2.1": ["-xe"],
    "1.2.840.10008.1.2.4.50": ["-xy"],
}


def storescu(port: int, instances: list[dicomgen.Instance], workdir: Path) -> None:
    groups: dict[str, list[Path]] = {}
    for n, inst in enumerate(instances):
        d = workdir / inst.transfer_syntax
        d.mkdir(parents=True, exist_ok=True)
        p = d / f"{n:06d}.dcm"
        p.write_bytes(inst.data)
        groups.setdefault(inst.transfer_syntax, []).append(p)
    for ts, files in groups.items():
        r = subprocess.run([STORESCU, "-aec", "VNA", "-R", *PROPOSAL[ts], "+sd", "127.0.0.1", str(port),
                            str(workdir / ts)], capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr


class Stored:
    def __init__(self, server, corpus: dicomgen.Corpus, extra: list[dicomgen.Instance]):
        self.server = server
        self.corpus = corpus
        self.extra = extra
        self.instances = corpus.all() + extra

    @property
    def studies(self) -> set[str]:
        return {i.study_uid for i in self.instances}


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def stored(request, tmp_path_factory):
    """A server per backend holding the standard corpus plus a second "Mül…" patient with a
    2020 study, all stored with storescu."""
    pool = ServerPool(tmp_path_factory.mktemp(f"find-{request.param}"))
    srv = pool.start(request.param, name=f"find-{request.param}")
    extra = dicomgen.ct_study(series_count=1, instances_per_series=2, patient_name="Mülheim^Anna",
                              patient_id=dicomgen.PATIENT_ID_PREFIX + "CT-002", study_date="20201107",
                              accession="E2E-CT-2")
    corpus = dicomgen.corpus()
    storescu(srv.dimse_port, corpus.all() + extra, tmp_path_factory.mktemp("files"))
    yield Stored(srv, corpus, extra)
    pool.close()


def findscu(server, tmp_path: Path, model: str, level: str, *keys: str) -> list[Dataset]:
    """Runs findscu with -k keys; returns the response identifiers it extracted."""
    out = Path(tempfile.mkdtemp(dir=tmp_path))
    args = [FINDSCU, "-aec", "VNA", model, "-X", "-od", str(out), "-k", f"QueryRetrieveLevel={level}"]
    for k in keys:
        args += ["-k", k]
    r = subprocess.run([*args, "127.0.0.1", str(server.dimse_port)], capture_output=True, timeout=120)
    stderr = r.stderr.decode("utf-8", "replace")
    assert r.returncode == 0, stderr
    files = sorted(out.glob("rsp*.dcm"))
    return [pydicom.dcmread(f, force=True) for f in files]


def values(responses: list[Dataset], keyword: str) -> list[str]:
    return sorted(str(getattr(r, keyword)) for r in responses)


def test_patient_level_wildcard_on_utf8_names(stored, tmp_path):
    rsp = findscu(stored.server, tmp_path, "-P", "PATIENT", "SpecificCharacterSet=ISO_IR 192", "PatientName=Mül*",
                  "PatientID", "NumberOfPatientRelatedStudies", "NumberOfPatientRelatedInstances")
    assert values(rsp, "PatientName") == ["Mülheim^Anna", "Müller^Jürgen"]
    by_id = {r.PatientID: r for r in rsp}
    ct = by_id[dicomgen.PATIENT_ID_PREFIX + "CT-001"]
    assert int(ct.NumberOfPatientRelatedStudies) == 1
    assert int(ct.NumberOfPatientRelatedInstances) == len(stored.corpus.ct)
    for r in rsp:
        assert r.QueryRetrieveLevel == "PATIENT"
        assert r.SpecificCharacterSet == "ISO_IR 192"
        # Exactly the requested keys (plus the ones every response carries).
        assert {e.keyword for e in r} <= {"SpecificCharacterSet", "QueryRetrieveLevel", "RetrieveAETitle", "PatientName",
                                          "PatientID", "NumberOfPatientRelatedStudies", "NumberOfPatientRelatedInstances"}


def test_latin1_stored_name_answers_in_utf8(stored, tmp_path):
    rsp = findscu(stored.server, tmp_path, "-S", "STUDY", "SpecificCharacterSet=ISO_IR 192", "PatientName=Dür*",
                  "StudyInstanceUID", "ModalitiesInStudy")
    assert len(rsp) == 1
    assert str(rsp[0].PatientName) == "Dürer^Élodie"
    assert rsp[0].StudyInstanceUID == stored.corpus.mr_latin1.study_uid
    assert rsp[0].ModalitiesInStudy == "MR"


def test_study_level_date_range(stored, tmp_path):
    rsp = findscu(stored.server, tmp_path, "-S", "STUDY", "StudyDate=20200101-20201231", "StudyInstanceUID",
                  "NumberOfStudyRelatedInstances")
    want = {stored.extra[0].study_uid, stored.corpus.sc_implicit.study_uid}
    assert set(values(rsp, "StudyInstanceUID")) == want
    assert all("20200101" <= r.StudyDate <= "20201231" for r in rsp)
    extra = next(r for r in rsp if r.StudyInstanceUID == stored.extra[0].study_uid)
    assert int(extra.NumberOfStudyRelatedInstances) == 2


def test_universal_matching_and_uid_list(stored, tmp_path):
    everything = findscu(stored.server, tmp_path, "-S", "STUDY", "StudyInstanceUID")
    assert set(values(everything, "StudyInstanceUID")) == stored.studies
    two = [stored.corpus.mr_latin1.study_uid, stored.corpus.mf_native.study_uid]
    rsp = findscu(stored.server, tmp_path, "-S", "STUDY", "StudyInstanceUID=" + "\\".join(two))
    assert values(rsp, "StudyInstanceUID") == sorted(two)
    # Patient Root at the study level needs the patient's ID (hierarchical search).
    rsp = findscu(stored.server, tmp_path, "-P", "STUDY", f"PatientID={dicomgen.PATIENT_ID_PREFIX}CT-001", "StudyInstanceUID")
    assert values(rsp, "StudyInstanceUID") == [stored.corpus.ct[0].study_uid]


def test_series_and_image_levels_in_both_models(stored, tmp_path):
    ct = stored.corpus.ct
    study = ct[0].study_uid
    series = findscu(stored.server, tmp_path, "-S", "SERIES", f"StudyInstanceUID={study}", "SeriesInstanceUID", "Modality",
                     "NumberOfSeriesRelatedInstances")
    assert set(values(series, "SeriesInstanceUID")) == {i.series_uid for i in ct}
    assert all(r.Modality == "CT" and int(r.NumberOfSeriesRelatedInstances) == 5 for r in series)
    first = ct[0].series_uid
    want = sorted(i.sop_uid for i in ct if i.series_uid == first)
    for model, keys in [("-S", []), ("-P", [f"PatientID={dicomgen.PATIENT_ID_PREFIX}CT-001"])]:
        images = findscu(stored.server, tmp_path, model, "IMAGE", *keys, f"StudyInstanceUID={study}",
                         f"SeriesInstanceUID={first}", "SOPInstanceUID", "SOPClassUID", "InstanceNumber")
        assert values(images, "SOPInstanceUID") == want, model
        assert all(r.SOPClassUID == dicomgen.CT_IMAGE_STORAGE for r in images)
        assert sorted(int(r.InstanceNumber) for r in images) == [1, 2, 3, 4, 5]
    # A single SOP Instance UID and a list of them.
    one = findscu(stored.server, tmp_path, "-S", "IMAGE", f"StudyInstanceUID={study}", f"SeriesInstanceUID={first}",
                  f"SOPInstanceUID={want[0]}")
    assert values(one, "SOPInstanceUID") == [want[0]]
    listed = findscu(stored.server, tmp_path, "-S", "IMAGE", f"StudyInstanceUID={study}", f"SeriesInstanceUID={first}",
                     "SOPInstanceUID=" + "\\".join(want[:2]))
    assert values(listed, "SOPInstanceUID") == want[:2]


def _associate(server, *contexts, handlers=None):
    ae = AE(ae_title="PYNETDICOM")
    for c in contexts:
        ae.add_requested_context(c)
    assoc = ae.associate("127.0.0.1", server.dimse_port, ae_title="VNA", evt_handlers=handlers or [])
    assert assoc.is_established
    return assoc


def _identifier(level: str, **keys) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for k, v in keys.items():
        setattr(ds, k, v)
    return ds


def test_refusals_carry_the_standard_statuses(stored):
    assoc = _associate(stored.server, STUDY_ROOT)
    try:
        # PATIENT is not a level of Study Root; SERIES needs the Study Instance UID.
        for ds in [_identifier("PATIENT", PatientID=""), _identifier("SERIES", SeriesInstanceUID=""),
                   _identifier("NOPE", StudyInstanceUID="")]:
            rsp = list(assoc.send_c_find(ds, STUDY_ROOT))
            assert len(rsp) == 1
            status, identifier = rsp[0]
            assert status.Status == 0xA900 and identifier is None
            assert "ErrorComment" in status
        # Keys the archive does not support at this level: 0xFF01 pendings (PS3.4 §C.4.1.1.4).
        rsp = list(assoc.send_c_find(_identifier("STUDY", StudyInstanceUID=stored.corpus.ct[0].study_uid,
                                                 InstitutionName=""), STUDY_ROOT))
        assert [s.Status for s, _ in rsp] == [0xFF01, 0x0000]
        assert rsp[0][1].InstitutionName == ""
    finally:
        assoc.release()


def test_c_cancel_ends_a_long_find_with_cancel_status():
    """Many matches (stored on tmpfs, where fsync is cheap): cancel after the first pending,
    expect 0xFE00 before all matches were sent."""
    count = 2500
    with tempfile.TemporaryDirectory(dir="/dev/shm") as root:
        pool = ServerPool(Path(root) / "servers")
        try:
            srv = pool.start("sqlite", name="cancel")
            study = dicomgen.new_uid()
            instances = dicomgen.ct_study(series_count=1, instances_per_series=count, study_uid=study,
                                          patient_id=dicomgen.PATIENT_ID_PREFIX + "MANY")
            # STOW-RS in batches: storescu would take ~45 ms per instance (see the closing note).
            for n in range(0, count, 250):
                r = helpers.stow(srv.dicomweb, [i.data for i in instances[n:n + 250]])
                assert r.status_code == 200, r.text[:500]
            assoc = _associate(srv, STUDY_ROOT)
            try:
                msg_id = 11
                ds = _identifier("IMAGE", StudyInstanceUID=study, SeriesInstanceUID=instances[0].series_uid,
                                 SOPInstanceUID="")
                responses = assoc.send_c_find(ds, STUDY_ROOT, msg_id=msg_id)
                status, identifier = next(responses)
                assert status.Status == 0xFF00 and identifier.SOPInstanceUID
                assoc.send_c_cancel(msg_id, assoc.accepted_contexts[0].context_id)
                rest = [s.Status for s, _ in responses]
                assert rest[-1] == 0xFE00, f"final status {rest[-1]:#06x} after {len(rest)} responses"
                assert set(rest[:-1]) <= {0xFF00}
                assert len(rest) - 1 < count - 1, "every match was sent despite the cancel"
                # The association still works afterwards.
                again = list(assoc.send_c_find(_identifier("STUDY", StudyInstanceUID=study), STUDY_ROOT))
                assert [s.Status for s, _ in again] == [0xFF00, 0x0000]
            finally:
                assoc.release()
        finally:
            pool.close()


def test_storage_commitment_on_the_same_association(stored):
    reports: queue.Queue = queue.Queue()

    def on_event_report(event):
        reports.put((event.request.EventTypeID, event.event_information))
        return 0x0000, None

    held = stored.corpus.ct[:3]
    mismatched = stored.corpus.mr_latin1  # stored as MR, referenced as CT
    unknown = dicomgen.new_uid()
    ds = Dataset()
    ds.TransactionUID = dicomgen.new_uid()
    refs = [(i.ds.SOPClassUID, i.sop_uid) for i in held]
    refs += [(dicomgen.CT_IMAGE_STORAGE, mismatched.sop_uid), (dicomgen.CT_IMAGE_STORAGE, unknown)]
    ds.ReferencedSOPSequence = []
    for cls, uid in refs:
        item = Dataset()
        item.ReferencedSOPClassUID = cls
        item.ReferencedSOPInstanceUID = uid
        ds.ReferencedSOPSequence.append(item)
    assoc = _associate(stored.server, StorageCommitmentPushModel, handlers=[(evt.EVT_N_EVENT_REPORT, on_event_report)])
    try:
        status, reply = assoc.send_n_action(ds, 1, StorageCommitmentPushModel, COMMITMENT_INSTANCE)
        assert status.Status == 0x0000
        event_type, info = reports.get(timeout=60)
    finally:
        assoc.release()
    assert event_type == 2  # some failures
    assert info.TransactionUID == ds.TransactionUID
    assert {it.ReferencedSOPInstanceUID for it in info.ReferencedSOPSequence} == {i.sop_uid for i in held}
    failed = {it.ReferencedSOPInstanceUID: it.FailureReason for it in info.FailedSOPSequence}
    assert failed == {mismatched.sop_uid: 0x0119, unknown: 0x0112}

    # All held: event type 1, no Failed SOP Sequence.
    ds.TransactionUID = dicomgen.new_uid()
    ds.ReferencedSOPSequence = ds.ReferencedSOPSequence[:3]
    assoc = _associate(stored.server, StorageCommitmentPushModel, handlers=[(evt.EVT_N_EVENT_REPORT, on_event_report)])
    try:
        status, _ = assoc.send_n_action(ds, 1, StorageCommitmentPushModel, COMMITMENT_INSTANCE)
        assert status.Status == 0x0000
        event_type, info = reports.get(timeout=60)
    finally:
        assoc.release()
    assert event_type == 1
    assert "FailedSOPSequence" not in info
    assert len(info.ReferencedSOPSequence) == 3
