"""IHE IOCM rejection notes (issue 15): a Key Object Selection document titled 113001 (rejected
for quality reasons), sent by dcmtk's storescu, hides the instances it names at once from every
clinical interface — QIDO-RS and its counters, WADO-RS, WADO-URI, C-FIND (dcmtk findscu), C-GET
and C-MOVE (pynetdicom) — on every backend, while administrators still list the rejections and
fetch the stored bytes. An instance the note names before it arrives is stored when it comes
(acknowledged: nothing is lost) and hidden from the first moment. A note from another tenant's
study cannot hide anything of this one (tests of the catalog: `rejection_stays_in_its_tenant`).
A note that names nothing is refused, over both protocols, and changes nothing. The lifecycle
policies then see the rejection: `rejections.toml` deletes objects rejected for quality 30 days
after the rejection.
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import pydicom
import pytest
import requests
from pydicom.dataset import Dataset
from pynetdicom import AE, build_role, evt
from pynetdicom.sop_class import (
    CTImageStorage,
    StudyRootQueryRetrieveInformationModelGet as STUDY_ROOT_GET,
    StudyRootQueryRetrieveInformationModelMove as STUDY_ROOT_MOVE,
)

import dicomgen
import helpers
from conftest import BACKENDS, REPO_ROOT, ServerPool, aws, vna_bin

STORESCU = "/usr/bin/storescu"
FINDSCU = "/usr/bin/findscu"
MOVE_AE = "MOVEDEST"
EXPLICIT = "1.2.840.10008.1.2.1"
IMPLICIT = "1.2.840.10008.1.2"


def storescu(srv, tmp: Path, inst: dicomgen.Instance) -> subprocess.CompletedProcess:
    f = Path(tempfile.mkdtemp(dir=tmp)) / "note.dcm"
    f.write_bytes(inst.data)
    return subprocess.run([STORESCU, "-aec", "VNA", "-xe", "127.0.0.1", str(srv.dimse_port), str(f)],
                          capture_output=True, text=True, timeout=120)


def findscu_images(srv, tmp: Path, study: str, series: str) -> list[str]:
    out = Path(tempfile.mkdtemp(dir=tmp))
    r = subprocess.run([FINDSCU, "-aec", "VNA", "-S", "-X", "-od", str(out), "-k", "QueryRetrieveLevel=IMAGE",
                        "-k", f"StudyInstanceUID={study}", "-k", f"SeriesInstanceUID={series}", "-k", "SOPInstanceUID",
                        "127.0.0.1", str(srv.dimse_port)],
                       capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr.decode("utf-8", "replace")
    return sorted(str(pydicom.dcmread(f, force=True).SOPInstanceUID) for f in out.glob("rsp*.dcm"))


def c_get_series(srv, study: str, series: str) -> tuple[int, list[str]]:
    got: list = []
    ae = AE(ae_title="GETSCU")
    ae.add_requested_context(STUDY_ROOT_GET)
    ae.add_requested_context(CTImageStorage, [EXPLICIT])
    assoc = ae.associate("127.0.0.1", srv.dimse_port, ae_title="VNA", ext_neg=[build_role(CTImageStorage, scp_role=True)],
                         evt_handlers=[(evt.EVT_C_STORE, helpers.collecting_store_handler(got))])
    assert assoc.is_established
    try:
        q = Dataset()
        q.QueryRetrieveLevel = "SERIES"
        q.StudyInstanceUID = study
        q.SeriesInstanceUID = series
        final = [s.Status for s, _ in assoc.send_c_get(q, STUDY_ROOT_GET)][-1]
    finally:
        assoc.release()
    return final, sorted(str(ds.SOPInstanceUID) for _, ds in got)


def c_move_series(srv, study: str, series: str) -> tuple[int, list[str]]:
    received: list = []
    dest = AE(ae_title=MOVE_AE)
    dest.add_supported_context(CTImageStorage, [EXPLICIT, IMPLICIT])
    scp = dest.start_server(("127.0.0.1", srv.move_port), block=False,
                            evt_handlers=[(evt.EVT_C_STORE, helpers.collecting_store_handler(received))])
    try:
        ae = AE(ae_title="MOVESCU")
        ae.add_requested_context(STUDY_ROOT_MOVE)
        assoc = ae.associate("127.0.0.1", srv.dimse_port, ae_title="VNA")
        assert assoc.is_established
        try:
            q = Dataset()
            q.QueryRetrieveLevel = "SERIES"
            q.StudyInstanceUID = study
            q.SeriesInstanceUID = series
            final = [s.Status for s, _ in assoc.send_c_move(q, MOVE_AE, STUDY_ROOT_MOVE)][-1]
        finally:
            assoc.release()
    finally:
        scp.shutdown()
    return final, sorted(str(ds.SOPInstanceUID) for _, ds in received)


def qido_sops(srv, study: str) -> list[str]:
    status, rows = helpers.qido(srv.dicomweb, f"studies/{study}/instances")
    assert status in (200, 204)
    return sorted(helpers.value(r, "00080018") for r in rows)


@pytest.fixture(scope="module", params=BACKENDS)
def rejected(request, tmp_path_factory):
    """A CT series of three, the first two and one not received yet rejected for quality by a
    note sent over C-STORE."""
    tmp = tmp_path_factory.mktemp(f"iocm-{request.param}")
    move_port = helpers.free_port()
    config = tmp / "vna.toml"
    config.write_text(f'version = 1\n[[dimse.known_aes]]\nae_title = "{MOVE_AE}"\nhost = "127.0.0.1"\nport = {move_port}\n'
                      'can_store = false\ncan_query = false\ncan_retrieve = false\n')
    pool = ServerPool(tmp / "servers")
    srv = pool.start(request.param, name=f"iocm-{request.param}", args=["--config", str(config)])
    srv.move_port = move_port
    cts = dicomgen.ct_study(series_count=1, instances_per_series=3, patient_id=dicomgen.PATIENT_ID_PREFIX + "IOCM",
                            study_date="20260301")
    r = helpers.stow(srv.dicomweb, [c.data for c in cts])
    assert r.status_code == 200, r.text[:300]
    late = dicomgen.with_changes(cts[0], SOPInstanceUID=dicomgen.new_uid(), InstanceNumber=4)
    named = [(c.study_uid, c.series_uid, c.sop_class_uid, c.sop_uid) for c in (cts[0], cts[1], late)]
    note = dicomgen.rejection_note(cts[0], named, code="113001")
    sent = storescu(srv, tmp, note)
    assert sent.returncode == 0 and "Status" not in sent.stderr.replace("Success", ""), sent.stderr
    yield srv, cts, late, note, tmp
    pool.close()


def test_rejected_instances_are_gone_from_every_clinical_interface(rejected):
    srv, cts, late, note, tmp = rejected
    study, series = cts[0].study_uid, cts[0].series_uid
    kept = sorted([cts[2].sop_uid, note.sop_uid])
    # QIDO-RS: instances, and the study's counters.
    assert qido_sops(srv, study) == kept
    status, studies = helpers.qido(srv.dicomweb, "studies", {"StudyInstanceUID": study})
    assert status == 200 and helpers.value(studies[0], "00201208") == 2, studies
    status, by_uid = helpers.qido(srv.dicomweb, "instances", {"SOPInstanceUID": cts[0].sop_uid})
    assert status in (200, 204) and by_uid == []
    # WADO-RS: the instance, its metadata, its frames; the study's metadata leaves it out.
    url = helpers.instance_url(srv.dicomweb, study, series, cts[0].sop_uid)
    for u in (url, url + "/metadata", url + "/frames/1"):
        assert requests.get(u, headers={"Accept": "multipart/related; type=\"application/octet-stream\""}
                            if u.endswith("/1") else {}, timeout=60).status_code == 404, u
    meta = requests.get(f"{srv.dicomweb}/studies/{study}/metadata", timeout=60).json()
    assert sorted(helpers.value(m, "00080018") for m in meta) == kept
    # WADO-URI.
    uri = requests.get(f"{srv.dicomweb}/wado", timeout=60, params={
        "requestType": "WADO", "studyUID": study, "seriesUID": series, "objectUID": cts[0].sop_uid,
        "contentType": "application/dicom"})
    assert uri.status_code == 404, uri.status_code
    # C-FIND, C-GET, C-MOVE.
    assert findscu_images(srv, tmp, study, series) == [cts[2].sop_uid]
    assert c_get_series(srv, study, series) == (0x0000, [cts[2].sop_uid])
    assert c_move_series(srv, study, series) == (0x0000, [cts[2].sop_uid])


def test_administrators_still_list_and_fetch_rejected_instances(rejected):
    srv, cts, late, note, _ = rejected
    listing = requests.get(f"{srv.base_url}/admin/rejections", timeout=60)
    assert listing.status_code == 200, listing.text
    by_sop = {r["sopInstanceUid"]: r for r in listing.json()}
    for inst in (cts[0], cts[1], late):
        r = by_sop[inst.sop_uid]
        assert (r["code"], r["rejectionNote"], r["studyInstanceUid"]) == ("113001", note.sop_uid, inst.study_uid)
    assert by_sop[cts[0].sop_uid]["received"] and by_sop[cts[1].sop_uid]["received"]
    versions = requests.get(f"{srv.base_url}/admin/instances/{cts[0].sop_uid}/versions", timeout=60).json()
    assert [v["rejection"]["code"] for v in versions] == ["113001"]
    stored = requests.get(f"{srv.base_url}/admin/instances/{cts[0].sop_uid}/versions/1", timeout=60)
    assert stored.status_code == 200 and stored.content == cts[0].data, "the stored bytes are untouched"
    protection = requests.get(f"{srv.base_url}/admin/instances/{cts[0].sop_uid}/protection", timeout=60).json()
    assert protection["rejection"]["code"] == "113001"
    assert requests.get(f"{srv.base_url}/admin/rejections", params={"limit": "x"}, timeout=60).status_code == 400


def test_an_instance_rejected_before_it_arrives_is_stored_and_hidden(rejected):
    srv, cts, late, note, _ = rejected
    listing = {r["sopInstanceUid"]: r for r in requests.get(f"{srv.base_url}/admin/rejections", timeout=60).json()}
    assert not listing[late.sop_uid]["received"]
    r = helpers.stow(srv.dicomweb, [late.data])
    assert r.status_code == 200, r.text[:300]
    assert late.sop_uid in helpers.referenced(helpers.stow_json(r)), "acknowledged like any store"
    assert late.sop_uid not in qido_sops(srv, late.study_uid)
    assert requests.get(helpers.instance_url(srv.dicomweb, late.study_uid, late.series_uid, late.sop_uid),
                        timeout=60).status_code == 404
    listing = {r["sopInstanceUid"]: r for r in requests.get(f"{srv.base_url}/admin/rejections", timeout=60).json()}
    assert listing[late.sop_uid]["received"]


def test_a_rejection_note_that_names_nothing_is_refused(rejected):
    srv, cts, _, _, tmp = rejected
    empty = dicomgen.rejection_note(cts[2], [], code="113001")
    r = helpers.stow(srv.dicomweb, [empty.data])
    assert r.status_code == 409, r.status_code
    (failure,) = helpers.failed(helpers.stow_json(r))
    assert helpers.value(failure, "00081197") == 0xC000, failure
    sent = storescu(srv, tmp, empty)
    assert sent.returncode != 0, "storescu reports the refused store in its exit code"
    assert empty.sop_uid not in qido_sops(srv, cts[2].study_uid)
    # A Key Object Selection with another title is just a key object: it hides nothing.
    of_interest = dicomgen.rejection_note(cts[2], [(cts[2].study_uid, cts[2].series_uid, cts[2].sop_class_uid, cts[2].sop_uid)],
                                          code="113000")
    assert helpers.stow(srv.dicomweb, [of_interest.data]).status_code == 200
    assert cts[2].sop_uid in qido_sops(srv, cts[2].study_uid)


def test_the_policies_see_the_rejection(rejected):
    srv, cts, *_ = rejected
    r = lifecycle(srv, "plan", "--now", "2099-01-01", "--json", "--objects", "--with-uids")
    assert r.returncode == 0, r.stderr[-2000:]
    by_uid = {o["sopInstanceUid"]: o for o in json.loads(r.stdout)["objects"]}
    for inst in cts[:2]:
        o = by_uid[inst.sop_uid]
        assert o["rules"] == ["rejected-for-quality"] and o["expireAt"] is not None, o
    assert "rejected-for-quality" not in by_uid[cts[2].sop_uid]["rules"]


def lifecycle(srv, *args: str, runners: int = 1) -> subprocess.CompletedProcess:
    """`vna lifecycle …` on the server's catalog and storage, with the example policies (the
    server itself runs without policies: its job runner leaves these jobs alone)."""
    cmd = [vna_bin(), "--data-dir", str(srv.data_dir)]
    env = dict(os.environ) | {"VNA__JOBS__RUNNERS": str(runners)}
    if srv.db is not None:
        cmd += ["--catalog-url", srv.db.url]
    if srv.bucket is not None:
        env |= srv.bucket.server_env()
    return subprocess.run(cmd + ["lifecycle", *args, "--policies", str(REPO_ROOT / "lifecycle-policies")],
                          capture_output=True, text=True, timeout=300, env=env)


def test_apply_deletes_rejected_objects_once_their_retention_has_passed(rejected):
    srv, cts, late, note, _ = rejected
    gone = [cts[0], cts[1], late]
    # Ten days after the rejection: planned for later, nothing due.
    ten_days = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=10)).strftime("%Y-%m-%d")
    soon = lifecycle(srv, "plan", "--now", ten_days, "--json")
    assert soon.returncode == 0, soon.stderr[-2000:]
    p = json.loads(soon.stdout)
    assert p["expiry"]["due"]["instances"] == 0 and p["expiry"]["later"]["instances"] == 3, p["expiry"]

    p = json.loads(lifecycle(srv, "plan", "--now", "2099-01-01", "--json").stdout)
    assert p["expiry"]["due"]["instances"] == 3, p["expiry"]
    refused = lifecycle(srv, "apply", "--now", "2099-01-01", "--plan", "0" * 64)
    assert refused.returncode != 0 and "plan changed" in refused.stderr, refused.stderr[-2000:]
    # Split into jobs of two instance keys, three runners in the CLI taking them at once (ten
    # objects a second each, so that no runner is through them all before the others look).
    applied = lifecycle(srv, "apply", "--now", "2099-01-01", "--plan", p["planHash"], "--instances-per-job", "2",
                        "--max-per-second", "10", runners=3)
    assert applied.returncode == 0, applied.stderr[-2000:]
    job = json.loads(applied.stdout)
    assert job["state"] == "done" and len(job["jobs"]) >= 3, job
    assert len({d["outcome"]["ranBy"] for d in job["details"]}) >= 2, "several runners took part"
    assert (job["outcome"]["expired"], job["outcome"]["purged"], job["outcome"]["failed"]) == (3, 3, 0), job
    assert job["outcome"]["examined"] >= 5 and job["failures"] == []

    # Gone for everyone, administrators included; what was kept is still served.
    for inst in gone:
        assert requests.get(f"{srv.base_url}/admin/instances/{inst.sop_uid}/versions", timeout=60).status_code == 404
        stones = requests.get(f"{srv.base_url}/admin/instances/{inst.sop_uid}/tombstones", timeout=60).json()
        assert [(t["reason"], t["rules"], t["rejectionCode"]) for t in stones] == [("expired", ["rejected-for-quality"], "113001")]
        assert stones[0]["purgedAt"] is not None and stones[0]["policySetHash"] == p["policySetHash"]
    left = qido_sops(srv, cts[2].study_uid)
    assert cts[2].sop_uid in left and note.sop_uid in left and not {i.sop_uid for i in gone} & set(left)
    # The stored objects are destroyed, every version, in the store itself.
    keys = {requests.get(f"{srv.base_url}/admin/instances/{i.sop_uid}/tombstones", timeout=60).json()[0]["object"].split("/", 1)[1]
            for i in gone}
    if srv.bucket is not None:
        left = " ".join(srv.bucket.versions())
        assert not any(k in left for k in keys), "an expired object version is still in the bucket"
    else:
        files = {f for _, _, fs in os.walk(srv.data_dir) for f in fs}
        assert not keys & files, "an expired object is still on disk"
    # Audited as deletions by the archive, on its policies' word.
    events = requests.get(f"{srv.base_url}/admin/audit", params={"study": cts[0].study_uid, "limit": "1000"}, timeout=60).json()["events"]
    deleted = [e for e in events if e["eventId"] == "110105"]
    assert len(deleted) == 3 and all(e["action"] == "D" and "rejected-for-quality" in e["detail"] for e in deleted), deleted

    # What is kept is now locked in its store as its policies say: the adult's CT ten years
    # after the patient's last study, in COMPLIANCE mode (the server wrote it without policies).
    assert job["outcome"]["locks"]["extended"] >= 1, job
    kept = requests.get(f"{srv.base_url}/admin/instances/{cts[2].sop_uid}/protection", timeout=60).json()
    until = int(datetime.datetime(2036, 3, 1, tzinfo=datetime.timezone.utc).timestamp())
    assert kept["retention"] == {"mode": "COMPLIANCE", "retainUntilEpochSeconds": until}, kept
    if srv.bucket is not None:
        key, version = kept["key"], kept["storeVersionId"]
        r = aws("s3api", "get-object-retention", "--bucket", srv.bucket.name, "--key", "vna/" + key, f"--version-id={version}",
                "--output", "json")
        got = json.loads(r.stdout)["Retention"]
        assert got["Mode"] == "COMPLIANCE" and got["RetainUntilDate"].startswith("2036-03-01T00:00:00"), got
        refused = aws("s3api", "delete-object", "--bucket", srv.bucket.name, "--key", "vna/" + key, f"--version-id={version}",
                      check=False)
        assert refused.returncode != 0, "the store itself refuses to delete a locked version"

    # Nothing more to do: a second run expires nothing and extends no lock.
    again = json.loads(lifecycle(srv, "plan", "--now", "2099-01-01", "--json").stdout)
    assert again["expiry"]["due"]["instances"] == 0
    second = lifecycle(srv, "apply", "--now", "2099-01-01", "--plan", again["planHash"])
    assert second.returncode == 0, second.stderr[-2000:]
    outcome = json.loads(second.stdout)["outcome"]
    assert (outcome["expired"], outcome["locks"]["extended"]) == (0, 0) and outcome["locks"]["unchanged"] >= 1, outcome


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_killed_apply_loses_nothing_and_is_taken_over_from_its_cursor(backend, tmp_path):
    """kill -9 of `vna lifecycle apply` in the middle of expiring: every catalog row still has
    its object (`vna verify`), and the next run takes the dead one's job over once its lease
    lapses, from its cursor: each rejected instance is expired once, and audited once."""
    pool = ServerPool(tmp_path / "servers")
    try:
        srv = pool.start(backend, name=f"iocm-kill-{backend}")
        cts = dicomgen.ct_study(series_count=1, instances_per_series=24, patient_id=dicomgen.PATIENT_ID_PREFIX + "IOCM-KILL")
        assert helpers.stow(srv.dicomweb, [c.data for c in cts]).status_code == 200
        note = dicomgen.rejection_note(cts[0], [(c.study_uid, c.series_uid, c.sop_class_uid, c.sop_uid) for c in cts], code="113001")
        assert helpers.stow(srv.dicomweb, [note.data]).status_code == 200
        env = dict(os.environ) | {"VNA__JOBS__LEASE_SECONDS": "3"}
        base = [vna_bin(), "--data-dir", str(srv.data_dir)] + (["--catalog-url", srv.db.url] if srv.db is not None else [])
        if srv.bucket is not None:
            env |= srv.bucket.server_env()
        policies = ["--policies", str(REPO_ROOT / "lifecycle-policies")]
        plan = json.loads(subprocess.run(base + ["lifecycle", "plan", "--now", "2099-01-01", "--json", *policies],
                                         capture_output=True, text=True, timeout=120, env=env).stdout)
        assert plan["expiry"]["due"]["instances"] == 24
        # Four objects a second: killed a few seconds in, in the middle of the walk.
        proc = subprocess.Popen(base + ["lifecycle", "apply", "--now", "2099-01-01", "--plan", plan["planHash"], "--max-per-second", "4",
                                        *policies], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        dead = helpers.kill_when_done(srv.base_url, proc, 6)
        assert dead["state"] == "running" and 6 <= dead["progress"]["done"] < 26, dead

        # Nothing lost: every instance the catalog holds has its object, intact.
        verify = subprocess.run(base + ["verify"], capture_output=True, text=True, timeout=300, env=env)
        assert verify.returncode == 0, verify.stdout + verify.stderr[-2000:]

        # Once the dead job's lease lapses, the next run takes it over from its cursor.
        lapse = datetime.datetime.fromisoformat(dead["leaseUntil"].replace("Z", "+00:00"))
        while datetime.datetime.now(datetime.timezone.utc) <= lapse:
            time.sleep(0.1)
        again = json.loads(subprocess.run(base + ["lifecycle", "plan", "--now", "2099-01-01", "--json", *policies],
                                          capture_output=True, text=True, timeout=120, env=env).stdout)
        r = subprocess.run(base + ["lifecycle", "apply", "--now", "2099-01-01", "--plan", again["planHash"], *policies],
                           capture_output=True, text=True, timeout=300, env=env)
        assert r.returncode == 0, r.stderr[-2000:]
        taken = requests.get(f"{srv.base_url}/admin/jobs/{dead['id']}", timeout=30).json()
        assert taken["state"] == "done" and taken["attempts"] == 2, taken
        assert taken["progress"]["done"] >= 26 - 1, "resumed after the last object the dead run recorded"
        for c in cts:
            stones = requests.get(f"{srv.base_url}/admin/instances/{c.sop_uid}/tombstones", timeout=30).json()
            assert len(stones) == 1 and stones[0]["purgedAt"] is not None, (c.label, stones)
        events = requests.get(f"{srv.base_url}/admin/audit", params={"study": cts[0].study_uid, "limit": "1000"}, timeout=30).json()
        assert len([e for e in events["events"] if e["eventId"] == "110105"]) == 24, "each expiry audited once"
        assert qido_sops(srv, cts[0].study_uid) == [note.sop_uid]
        verify = subprocess.run(base + ["verify"], capture_output=True, text=True, timeout=300, env=env)
        assert verify.returncode == 0, verify.stdout
    finally:
        pool.close()


def test_two_nodes_share_an_apply_run_and_handle_each_object_once(tmp_path):
    """Two nodes on one PostgreSQL catalog and one S3 bucket, both with the policies, share the
    jobs of one run (split five instance keys per job): both take part, and each rejected
    instance is expired once and audited once."""
    pool = ServerPool(tmp_path / "servers")
    try:
        first = pool.start("s3", name="iocm-ingest")
        cts = dicomgen.ct_study(series_count=1, instances_per_series=40, patient_id=dicomgen.PATIENT_ID_PREFIX + "IOCM-TWO")
        assert helpers.stow(first.dicomweb, [c.data for c in cts]).status_code == 200
        note = dicomgen.rejection_note(cts[0], [(c.study_uid, c.series_uid, c.sop_class_uid, c.sop_uid) for c in cts], code="113001")
        assert helpers.stow(first.dicomweb, [note.data]).status_code == 200
        env = first.bucket.server_env() | {"VNA__LIFECYCLE__POLICIES_DIR": str(REPO_ROOT / "lifecycle-policies"),
                                           "VNA__JOBS__POLL_SECONDS": "1"}
        nodes = [pool.start("sqlite", name=f"iocm-node-{n}", env=env, args=["--catalog-url", first.db.url]) for n in (1, 2)]
        admin = f"{nodes[0].base_url}/admin"
        plan = requests.get(f"{admin}/lifecycle/plan", params={"now": "2099-01-01"}, timeout=60).json()
        assert plan["expiry"]["due"]["instances"] == 40, plan["expiry"]
        r = requests.post(f"{admin}/lifecycle/apply", params={"now": "2099-01-01", "plan": plan["planHash"], "instancesPerJob": "5",
                                                                "maxPerSecond": "5"}, timeout=60)
        assert r.status_code == 202, r.text
        ids = r.json()["jobs"]
        assert len(ids) >= 8, ids
        deadline = time.monotonic() + 180
        while True:
            jobs = [requests.get(f"{admin}/jobs/{i}", timeout=30).json() for i in ids]
            if all(j["state"] not in ("queued", "running") for j in jobs):
                break
            assert time.monotonic() < deadline, [(j["id"], j["state"]) for j in jobs]
            time.sleep(0.2)
        assert all(j["state"] == "done" and j["failures"] == [] for j in jobs), jobs
        assert len({j["outcome"]["ranBy"] for j in jobs}) == 2, "both nodes took part"
        assert sum(j["outcome"]["expired"] for j in jobs) == 40
        for c in cts:
            stones = requests.get(f"{admin}/instances/{c.sop_uid}/tombstones", timeout=30).json()
            assert len(stones) == 1 and stones[0]["purgedAt"] is not None, (c.label, stones)
        events = requests.get(f"{admin}/audit", params={"study": cts[0].study_uid, "limit": "1000"}, timeout=30).json()["events"]
        assert len([e for e in events if e["eventId"] == "110105"]) == 40, "each expiry audited once"
        left = " ".join(first.bucket.versions())
        assert not any(s["object"].split("/", 1)[1] in left
                       for c in cts for s in requests.get(f"{admin}/instances/{c.sop_uid}/tombstones", timeout=30).json())
    finally:
        pool.close()
