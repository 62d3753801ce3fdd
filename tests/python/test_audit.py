"""The audit trail (issue 14, step 4, DICOM PS3.15 A.5): a scripted session over both protocols
yields exactly the expected events, in order (a viewer's repeated reads of one study within a
minute covered by the first), each with its requestor, address, interface,
patient and study, and each rendered as an A.5 `AuditMessage` valid against PS3.15's audit
message schema (A.5.1.1, `tests/audit/dicom-audit-message.rnc`, checked by jing); auditors read the trail through
`GET /admin/audit` (the `vna.audit` scope), filtered by patient, and that reading is audited in
turn. Others get 403. The database refuses to change an event (catalog tests)."""

from __future__ import annotations

import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import requests
from pydicom.dataset import Dataset
from pynetdicom import AE, build_role, evt
from pynetdicom.sop_class import CTImageStorage, StudyRootQueryRetrieveInformationModelGet as STUDY_ROOT_GET

import dicomgen
from conftest import ServerPool, vna_bin
from test_security import EXPLICIT, c_find, c_store

PATIENT = dicomgen.PATIENT_ID_PREFIX + "SEC-audit"
SCHEMA = Path(__file__).resolve().parents[1] / "audit" / "dicom-audit-message.rnc"
JING = "/usr/bin/jing"


def assert_schema_valid(messages: list[str], workdir: Path) -> None:
    """Every message valid against PS3.15's audit message schema (A.5.1.1), checked by jing, the
    reference RELAX NG validator (Debian's jing; scripts/test.sh installs it)."""
    if not Path(JING).exists():
        pytest.fail("jing is missing: scripts/test.sh installs it (apt-get install jing)")
    files = []
    for n, m in enumerate(messages):
        f = workdir / f"audit-{n}.xml"
        f.write_text(m, encoding="utf-8")
        files.append(str(f))
    r = subprocess.run([JING, "-c", str(SCHEMA), *files], capture_output=True, text=True, timeout=300)
    errors = [line for line in r.stdout.splitlines() + r.stderr.splitlines() if "error" in line]
    assert r.returncode == 0 and not errors, "\n".join(errors[:20]) or r.stderr[-2000:]


class Session:
    def __init__(self, server, config: Path):
        self.server = server
        self.config = config
        self.keys: dict[str, str] = {}

    def apikey(self, name: str, *scopes: str) -> str:
        cmd = [vna_bin(), "--config", str(self.config), "--data-dir", str(self.server.data_dir)]
        if self.server.db is not None:
            cmd += ["--catalog-url", self.server.db.url]
        r = subprocess.run(cmd + ["apikey", "create", "--name", name] + [f"--scope={s}" for s in scopes],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        return r.stdout.strip()

    def get(self, path: str, key: str, **kw) -> requests.Response:
        return requests.get(self.server.base_url + path, headers={"Authorization": f"Bearer {key}", **kw.pop("headers", {})},
                            timeout=60, **kw)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def session(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(f"audit-{request.param}")
    config = tmp / "vna.toml"
    config.write_text('version = 1\n[auth]\nanonymous = "off"\n'
                      '[dimse]\nallow_any_calling_ae = false\n'
                      '[[dimse.known_aes]]\nae_title = "CT_A"\nhost = "127.0.0.1"\nport = 104\n'
                      '[[dimse.known_aes]]\nae_title = "FARAWAY"\nhost = "192.0.2.10"\nport = 104\n')
    pool = ServerPool(tmp / "servers")
    s = Session(pool.start(request.param, name=f"audit-{request.param}", args=["--config", str(config)]), config)
    yield s
    pool.close()


def events(s: Session, key: str, **params) -> list[dict]:
    r = s.get("/admin/audit", key, params=params)
    assert r.status_code == 200, f"{r.status_code} {r.text[:300]}"
    return r.json()["events"]


def test_a_scripted_session_yields_exactly_its_events(session):
    s = session
    reader = s.apikey("viewer back end", "system/ImagingStudy.read")
    auditor = s.apikey("auditor", "vna.audit")
    reader_id, auditor_id = (f"api-key:{k.split('_')[1]}" for k in (reader, auditor))
    (inst,) = dicomgen.ct_study(series_count=1, instances_per_series=1, patient_id=PATIENT)
    base = s.server.dicomweb.removeprefix(s.server.base_url)

    # The session: a store over DIMSE, a query and a retrieve over DICOMweb, a query and a
    # retrieve over DIMSE, a failed authentication.
    assert c_store(s.server.dimse_port, "CT_A", [inst]) == [0]
    # includefield of an attribute the catalog does not keep reads an instance: part of the query.
    r = s.get(base + "/studies", reader, params={"PatientID": PATIENT, "includefield": "00180050"})
    assert r.status_code == 200
    r = s.get(f"{base}/studies/{inst.study_uid}", reader, headers={"Accept": 'multipart/related; type="application/dicom"'})
    assert r.status_code == 200
    # A viewer's next reads of the same study within a minute (metadata, frames) are covered by
    # that record (vna_archive::audit::ACCESS_WINDOW): no event each.
    inst_path = f"{base}/studies/{inst.study_uid}/series/{inst.series_uid}/instances/{inst.sop_uid}"
    assert s.get(inst_path + "/metadata", reader).status_code == 200
    for _ in range(3):
        assert s.get(inst_path + "/frames/1", reader, headers={"Accept": 'multipart/related; type="application/octet-stream"'}).status_code == 200
    assert c_find(s.server.dimse_port, "CT_A") == {inst.study_uid}
    ae = AE(ae_title="CT_A")
    ae.add_requested_context(STUDY_ROOT_GET)
    ae.add_requested_context(CTImageStorage, [EXPLICIT])
    assoc = ae.associate("127.0.0.1", s.server.dimse_port, ae_title="VNA", ext_neg=[build_role(CTImageStorage, scp_role=True)],
                         evt_handlers=[(evt.EVT_C_STORE, lambda event: 0x0000)])
    assert assoc.is_established
    try:
        q = Dataset()
        q.QueryRetrieveLevel = "STUDY"
        q.StudyInstanceUID = inst.study_uid
        assert [st.Status for st, _ in assoc.send_c_get(q, STUDY_ROOT_GET)][-1] == 0x0000
    finally:
        assoc.release()
    assert s.get(base + "/studies", "vnak_" + "0" * 12 + "_" + "0" * 64).status_code == 401

    # Refused: a reader storing, an AE title from another host than its own.
    assert requests.post(s.server.dicomweb + "/studies", data=b"", timeout=60,
                         headers={"Authorization": f"Bearer {reader}",
                                  "Content-Type": 'multipart/related; type="application/dicom"; boundary=x'}).status_code == 403
    assert c_find(s.server.dimse_port, "FARAWAY") == 0x0124
    stranger = AE(ae_title="STRANGER")
    stranger.add_requested_context(STUDY_ROOT_GET)
    assert stranger.associate("127.0.0.1", s.server.dimse_port, ae_title="VNA").is_rejected

    # Only an auditor reads the trail.
    assert s.get("/admin/audit", reader).status_code == 403
    got = events(s, auditor)
    summary = [(e["eventId"], e["eventType"], e["action"], e["outcome"], e["user"], e["interface"]) for e in got]
    assert summary[:3] == [
        ("110100", "110120", "E", 0, "vna", "internal"),
        ("110113", "110137", "E", 0, "vna", "internal"),
        ("110113", "110137", "E", 0, "vna", "internal"),
    ], summary[:3]
    assert [e["detail"].split(" (")[0] for e in got[1:3]] == [f"api key {k.split('_')[1]} created" for k in (reader, auditor)]
    got = got[3:]
    summary = summary[3:]
    assert summary == [
        ("110104", None, "C", 0, "ae:CT_A", "dimse"),
        ("110112", None, "E", 0, reader_id, "dicomweb"),
        ("110103", None, "R", 0, reader_id, "dicomweb"),
        ("110112", None, "E", 0, "ae:CT_A", "dimse"),
        ("110104", None, "R", 0, "ae:CT_A", "dimse"),
        ("110114", "110122", "E", 4, "unauthenticated", "dicomweb"),
        ("110113", "110132", "E", 4, reader_id, "dicomweb"),
        ("110113", "110132", "E", 4, "ae:FARAWAY", "dimse"),
        ("110113", "110132", "E", 4, "ae:STRANGER", "dimse"),
        ("110113", "110132", "E", 4, reader_id, "dicomweb"),
    ], summary
    store, qido, wado, cfind, cget, login, stow_refused, faraway, stranger_refused, audit_refused = got
    assert "association rejected" in stranger_refused["detail"], stranger_refused
    for e in (store, wado, cget):
        assert (e["patients"], e["studies"], e["instances"]) == ([PATIENT], [inst.study_uid], 1), e
    assert qido["patients"] == [PATIENT] and "PatientId" in qido["detail"], qido
    assert all(e["source"] == "127.0.0.1" for e in got), [e["source"] for e in got]
    assert "write" in stow_refused["detail"] and "audit" in audit_refused["detail"], (stow_refused, audit_refused)
    assert login["patients"] == [] and "vnak_" not in login["detail"], "no credential in the trail"

    # Each event is an A.5 AuditMessage.
    for e in got:
        msg = ET.fromstring(e["auditMessage"])
        assert msg.tag == "AuditMessage"
        ident = msg.find("EventIdentification")
        assert ident is not None and ident.get("EventActionCode") == e["action"]
        assert ident.find("EventID").get("csd-code") == e["eventId"]
        requestor = [p for p in msg.findall("ActiveParticipant") if p.get("UserIsRequestor") == "true"]
        assert [p.get("UserID") for p in requestor] == [e["user"]]
        objects = {o.get("ParticipantObjectID") for o in msg.findall("ParticipantObjectIdentification")}
        assert objects == set(e["patients"]) | set(e["studies"])
    assert ET.fromstring(login["auditMessage"]).find("EventIdentification/EventTypeCode").get("csd-code") == "110122"

    assert_schema_valid([e["auditMessage"] for e in got], s.server.workdir)

    # Filters, and the reading itself is audited (Audit Log Used).
    by_patient = events(s, auditor, patient=PATIENT)
    assert [e["eventId"] for e in by_patient] == ["110104", "110112", "110103", "110104"]
    later = events(s, auditor, after=got[-1]["seq"])
    assert [(e["eventId"], e["user"]) for e in later][:1] == [("110101", auditor_id)]
    assert s.get("/admin/audit", auditor, params={"limit": "0"}).status_code == 400
