"""Lifecycle policies over stored objects (issue 15, step 1): `vna lifecycle plan` with the
example policies of `lifecycle-policies/` on a mixed corpus stored through STOW-RS — an adult
with two studies, a child, a whole-slide image, a CT without a birth date — decides, as of a
given date (an injected clock, not a sleep), the retention each object's policies give, the
slide's move to the cold tier, and nothing for what no rule covers. The plan is read-only and
its hash changes when the catalog does."""

from __future__ import annotations

import datetime
import json
import subprocess
import time

import pytest
import requests

import dicomgen
import helpers
from conftest import REPO_ROOT, vna_bin

POLICIES = REPO_ROOT / "lifecycle-policies"
P = dicomgen.PATIENT_ID_PREFIX


def plan(srv, now: str, objects: bool = True) -> dict:
    cmd = [vna_bin(), "--data-dir", str(srv.data_dir)]
    if srv.db is not None:
        cmd += ["--catalog-url", srv.db.url]
    extra = ["--objects", "--with-uids"] if objects else []
    r = subprocess.run(cmd + ["lifecycle", "plan", "--policies", str(POLICIES), "--now", now, "--json", *extra],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout)


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    from conftest import ServerPool
    pool = ServerPool(tmp_path_factory.mktemp("lifecycle"))
    # The server's job runner looks for work every second (the apply test follows a job).
    srv = pool.start("sqlite", name="lifecycle", env={"VNA__LIFECYCLE__POLICIES_DIR": str(POLICIES), "VNA__JOBS__POLL_SECONDS": "1"})
    adult_first = dicomgen.with_changes(
        dicomgen.ct_study(series_count=1, instances_per_series=1, patient_id=P + "LC-ADULT", study_date="20200101")[0],
        PatientBirthDate="19600101")
    adult_last = dicomgen.with_changes(
        dicomgen.ct_study(series_count=1, instances_per_series=1, patient_id=P + "LC-ADULT", study_date="20240601")[0],
        PatientBirthDate="19600101")
    child = dicomgen.with_changes(
        dicomgen.ct_study(series_count=1, instances_per_series=1, patient_id=P + "LC-CHILD", study_date="20200101")[0],
        PatientBirthDate="20150310")
    unknown = dicomgen.with_changes(
        dicomgen.ct_study(series_count=1, instances_per_series=1, patient_id=P + "LC-NOBIRTH", study_date="20200101")[0],
        PatientBirthDate=None)
    slide = dicomgen.wsi_slide(has_bot=False, tiles_x=2, tiles_y=2, patient_id=P + "LC-SLIDE", study_date="20211120")
    objects = {"adult_first": adult_first, "adult_last": adult_last, "child": child, "unknown": unknown, "slide": slide}
    r = helpers.stow(srv.dicomweb, [o.data for o in objects.values()])
    assert r.status_code == 200, r.text[:300]
    yield srv, objects
    pool.close()


def test_plan_gives_each_object_its_policies_decision(stored):
    srv, objects = stored
    p = plan(srv, "2027-06-01")
    by_uid = {o["sopInstanceUid"]: o for o in p["objects"]}
    got = {name: by_uid[inst.sop_uid] for name, inst in objects.items()}
    # The adult's both studies: 10 years after the patient's last study.
    for name in ("adult_first", "adult_last"):
        assert (got[name]["rules"], got[name]["retainUntil"], got[name]["mode"]) == (
            ["adult-radiology"], "2034-06-01T00:00:00.000Z", "COMPLIANCE"), got[name]
    # The child: until the 28th birthday, later than 10 years after the study.
    assert (got["child"]["rules"], got["child"]["retainUntil"]) == (["minors"], "2043-03-10T00:00:00.000Z")
    # No birth date: no age rule applies; the plan says so, it does not guess.
    assert (got["unknown"]["rules"], got["unknown"]["retainUntil"]) == ([], None)
    # The slide: 50 years after its study, cold 30 days after arrival (never read since).
    assert got["slide"]["rules"] == ["pathology-slides"] and got["slide"]["retainUntil"] == "2071-11-20T00:00:00.000Z"
    assert got["slide"]["tier"] == "cold" and got["slide"]["moveAt"] < "2027-06-01"
    assert all(o["object"].startswith("default/") and o["expireAt"] is None and not o["hold"] for o in got.values())
    # The summary agrees with the objects.
    assert p["instances"]["instances"] == 5
    assert p["rules"]["adult-radiology"]["instances"] == 2 and p["rules"]["minors"]["instances"] == 1
    assert p["retention"]["locked"]["COMPLIANCE"]["instances"] == 4 and p["retention"]["notLocked"]["instances"] == 1
    assert p["transitions"]["due"]["cold"]["instances"] == 1 and p["transitions"]["later"] == {}
    assert p["retention"]["latest"] == "2071-11-20T00:00:00.000Z"


def test_the_plan_is_read_only_and_its_hash_follows_the_catalog_and_the_clock(stored):
    srv, objects = stored
    first, again = plan(srv, "2027-06-01"), plan(srv, "2027-06-01")
    assert first["planHash"] == again["planHash"] and first["policySetHash"] == again["policySetHash"]
    assert plan(srv, "2027-06-01", objects=False)["planHash"] == first["planHash"], "UIDs shown or not, the same plan"
    # Before its 30 days the slide's move is not due yet: another plan, another hash.
    early = plan(srv, "2026-01-01")
    assert early["transitions"]["due"] == {} and early["transitions"]["later"]["cold"]["instances"] == 1
    assert early["planHash"] != first["planHash"]
    # Nothing was changed by planning: the objects are served as stored.
    for inst in objects.values():
        got = helpers.retrieve_raw(helpers.instance_url(srv.dicomweb, inst.study_uid, inst.series_uid, inst.sop_uid))
        assert got == [inst.data]
    # A new object changes the plan.
    more = dicomgen.ct_study(series_count=1, instances_per_series=1, patient_id=P + "LC-MORE")[0]
    assert helpers.stow(srv.dicomweb, [more.data]).status_code == 200
    assert plan(srv, "2027-06-01")["planHash"] != first["planHash"]


def test_protection_shows_what_the_policies_decide_and_holds_are_audited(stored):
    srv, objects = stored
    url = f"{srv.base_url}/admin/instances/{objects['adult_first'].sop_uid}/protection"
    r = requests.get(url, timeout=30)
    assert r.status_code == 200, r.text
    policy = r.json()["policy"]
    assert policy["rules"] == ["adult-radiology"] and policy["policySetHash"] == plan(srv, "2027-06-01")["policySetHash"]
    assert policy["retention"] == {"mode": "COMPLIANCE", "retainUntil": "2034-06-01T00:00:00.000Z", "rules": ["adult-radiology"]}
    assert policy["transition"] is None and policy["expireAt"] is None and policy["hold"] == []
    slide = requests.get(f"{srv.base_url}/admin/instances/{objects['slide'].sop_uid}/protection", timeout=30).json()["policy"]
    assert slide["transition"]["tier"] == "cold" and slide["transition"]["rule"] == "pathology-slides"
    # A legal hold placed and lifted through the archive: each recorded (Instances Accessed, Update).
    hold = f"{srv.base_url}/admin/instances/{objects['adult_first'].sop_uid}/legal-hold"
    assert requests.put(hold, data="on", timeout=30).status_code == 204
    assert requests.put(hold, data="off", timeout=30).status_code == 204
    events = requests.get(f"{srv.base_url}/admin/audit", params={"limit": "1000"}, timeout=30).json()["events"]
    changes = [e["detail"] for e in events if e["eventId"] == "110103" and e["action"] == "U"]
    assert changes[:2] == ["legal hold placed", "legal hold lifted"], changes


def test_a_legal_hold_by_patient_holds_each_of_its_instances_and_is_lifted_the_same_way(stored):
    srv, objects = stored
    pid = str(objects["adult_first"].ds.PatientID)
    url = f"{srv.base_url}/admin/legal-hold"
    r = requests.post(url, params={"PatientID": pid}, data="on", timeout=30)
    assert r.status_code == 200 and r.json() == {"matched": 2, "changed": 2, "failed": 0}, r.text
    for name in ("adult_first", "adult_last"):
        p = requests.get(f"{srv.base_url}/admin/instances/{objects[name].sop_uid}/protection", timeout=30).json()
        assert p["legalHold"] is True, p
    child = requests.get(f"{srv.base_url}/admin/instances/{objects['child'].sop_uid}/protection", timeout=30).json()
    assert child["legalHold"] is False, "another patient is not held"
    r = requests.post(url, params={"StudyInstanceUID": objects["adult_last"].study_uid}, data="off", timeout=30)
    assert r.json() == {"matched": 1, "changed": 1, "failed": 0}
    assert requests.post(url, params={"PatientID": pid}, data="off", timeout=30).json()["changed"] == 2
    events = requests.get(f"{srv.base_url}/admin/audit", params={"limit": "1000"}, timeout=30).json()["events"]
    held = [e for e in events if e["eventId"] == "110103" and e["action"] == "U" and "of 2 instances" in e["detail"]]
    assert [e["detail"] for e in held] == ["legal hold placed on 2 of 2 instances", "legal hold lifted on 2 of 2 instances"]
    assert held[0]["patients"] == [pid] and len(held[0]["studies"]) == 2
    # Bad selections change nothing.
    for params, body in [({}, "on"), ({"PatientID": "*"}, "on"), ({"StudyDate": "2020"}, "on"), ({"NoSuchKey": "x"}, "on"),
                         ({"PatientID": pid, "job": "maybe"}, "on"), ({"PatientID": pid}, "maybe")]:
        r = requests.post(url, params=params, data=body, timeout=30)
        assert r.status_code == 400, (params, r.text)
    assert requests.get(f"{srv.base_url}/admin/instances/{objects['adult_first'].sop_uid}/protection",
                        timeout=30).json()["legalHold"] is False


def test_a_legal_hold_over_a_query_runs_as_a_job_page_by_page(stored):
    """A set chosen with QIDO-RS matching (every CT study of 1 January 2020, a wildcard on the
    Patient ID), held by a job (`job=true`; a set over 100 000 instances gets one by itself):
    exactly the matching instances are held, the job's pages are audited in the
    administrator's name, and the same query lifts the hold at once."""
    srv, objects = stored
    url = f"{srv.base_url}/admin/legal-hold"
    chosen = {"ModalitiesInStudy": "CT", "StudyDate": "20200101", "PatientID": P + "LC-*"}
    r = requests.post(url, params=chosen | {"job": "true"}, data="on", timeout=30)
    assert r.status_code == 202, r.text
    job_url = srv.base_url + r.json()["location"]
    job = helpers.finished_job(job_url)
    assert job["kind"] == "legal-hold" and job["state"] == "done", job
    assert (job["outcome"]["changed"], job["outcome"]["failed"], job["failures"]) == (3, 0, []), job
    held = {"adult_first", "child", "unknown"}
    for name in objects:
        p = requests.get(f"{srv.base_url}/admin/instances/{objects[name].sop_uid}/protection", timeout=30).json()
        assert p["legalHold"] is (name in held), (name, p)
    events = requests.get(f"{srv.base_url}/admin/audit", params={"limit": "1000"}, timeout=30).json()["events"]
    (page,) = [e for e in events if e["detail"] == f"legal hold placed (job {job['id']})"]
    assert page["eventId"] == "110103" and page["action"] == "U" and len(page["studies"]) == 3, page
    r = requests.post(url, params=chosen, data="off", timeout=30)
    assert r.status_code == 200 and r.json() == {"matched": 3, "changed": 3, "failed": 0}, r.text
    for name in held:
        p = requests.get(f"{srv.base_url}/admin/instances/{objects[name].sop_uid}/protection", timeout=30).json()
        assert p["legalHold"] is False, (name, p)


def test_apply_through_the_admin_api_locks_an_earlier_study_as_long_as_the_last(stored):
    """The adult's first study was locked when it arrived; its patient's later study makes its
    policies ask for longer. Applying the plan through the admin API (the server's own job
    runner does the work) extends the lock to ten years after the last study."""
    srv, objects = stored
    admin = f"{srv.base_url}/admin"
    url = f"{admin}/instances/{objects['adult_first'].sop_uid}/protection"
    before = requests.get(url, timeout=30).json()["retention"]
    p = requests.get(f"{admin}/lifecycle/plan", params={"now": "2027-06-01"}, timeout=60)
    assert p.status_code == 200, p.text
    stale = requests.post(f"{admin}/lifecycle/apply", params={"now": "2027-06-01", "plan": "0" * 64}, timeout=60)
    assert stale.status_code == 409, stale.text
    r = requests.post(f"{admin}/lifecycle/apply", params={"now": "2027-06-01", "plan": p.json()["planHash"]}, timeout=60)
    assert r.status_code == 202, r.text
    job_url = srv.base_url + r.json()["location"]
    job = helpers.finished_job(job_url)
    assert job["state"] == "done" and job["outcome"]["examined"] == 6 and job["outcome"]["expired"] == 0, job
    # The slide's move is due, but this server has no cold tier: reported, and the job went on.
    (failure,) = job["failures"]
    assert "tier cold, which is not configured" in failure["reason"] and job["outcome"]["moved"] == 0, job
    after = requests.get(url, timeout=30).json()["retention"]
    until = int(datetime.datetime(2034, 6, 1, tzinfo=datetime.timezone.utc).timestamp())
    assert after == {"mode": "COMPLIANCE", "retainUntilEpochSeconds": until}, after
    assert before["retainUntilEpochSeconds"] < after["retainUntilEpochSeconds"], "locked at arrival to its own study's date"
    assert job["outcome"]["locks"]["extended"] >= 1 and job["outcome"]["locks"]["longerThanPolicy"] == 0, job
    assert job["id"] in [j["id"] for j in requests.get(f"{admin}/jobs", timeout=30).json()]
    assert requests.post(f"{job_url}/cancel", timeout=30).json() == {"job": job["id"], "state": "done"}
    assert requests.get(f"{admin}/jobs/99999999", timeout=30).status_code == 404
    assert requests.get(f"{admin}/jobs", params={"state": "bogus"}, timeout=30).status_code == 400
    assert requests.post(f"{admin}/lifecycle/apply", params={"now": "2027-06-01"}, timeout=30).status_code == 400
    bad_pace = {"now": "2027-06-01", "plan": p.json()["planHash"], "maxMegabytesPerSecond": "fast"}
    assert requests.post(f"{admin}/lifecycle/apply", params=bad_pace, timeout=30).status_code == 400


def test_policies_that_fail_their_checks_refuse_the_start(tmp_path):
    from conftest import ServerPool
    bad = tmp_path / "policies"
    bad.mkdir()
    text = (POLICIES / "video.toml").read_text().replace('retain_until = "2036-02-01"', 'retain_until = "2031-02-01"')
    (bad / "video.toml").write_text(text)
    pool = ServerPool(tmp_path / "servers")
    try:
        with pytest.raises(RuntimeError, match="do not pass their checks"):
            pool.start("sqlite", name="bad-policies", env={"VNA__LIFECYCLE__POLICIES_DIR": str(bad)})
    finally:
        pool.servers.clear()
        pool.close()


def _until(head: dict) -> str:
    """The RetainUntilDate the AWS CLI printed, as YYYY-MM-DD (UTC)."""
    from datetime import datetime, timezone
    t = datetime.fromisoformat(head["ObjectLockRetainUntilDate"].replace("Z", "+00:00"))
    return t.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def test_new_objects_are_locked_from_their_first_write_as_the_policies_say(tmp_path):
    """Retention at write time on the real RGW with Object Lock: each new version is locked by its
    PUT (or right after its multipart upload completes, before the store is acknowledged) until
    the date its policies give, read back with the AWS CLI; the filesystem tier (emulated) too."""
    from conftest import ServerPool, aws
    pool = ServerPool(tmp_path / "servers")
    try:
        srv = pool.start("s3", env={"VNA__LIFECYCLE__POLICIES_DIR": str(POLICIES)})
        adult = dicomgen.with_changes(
            dicomgen.ct_study(series_count=1, instances_per_series=1, patient_id=P + "LC-S3-ADULT", study_date="20200101")[0],
            PatientBirthDate="19600101")
        child = dicomgen.with_changes(
            dicomgen.ct_study(series_count=1, instances_per_series=1, patient_id=P + "LC-S3-CHILD", study_date="20200101")[0],
            PatientBirthDate="20150310")
        big = dicomgen.with_changes(dicomgen.large_instance(total_bytes=6_000_000, patient_id=P + "LC-S3-BIG"),
                                    PatientBirthDate="19700101", StudyDate="20250101")
        assert len(big.data) > 5 << 20, "a multipart upload (5 MiB parts)"
        for inst in (adult, child, big):
            assert helpers.stow(srv.dicomweb, [inst.data]).status_code == 200
        expected = {adult.sop_uid: "2030-01-01 00:00:00", child.sop_uid: "2043-03-10 00:00:00", big.sop_uid: "2035-01-01 00:00:00"}
        for sop, until in expected.items():
            p = requests.get(f"{srv.base_url}/admin/instances/{sop}/protection", timeout=30).json()
            head = json.loads(aws("s3api", "head-object", "--bucket", srv.bucket.name, "--key", "vna/" + p["key"],
                                  f"--version-id={p['storeVersionId']}", "--output", "json").stdout)
            assert head.get("ObjectLockMode") == "COMPLIANCE" and _until(head) == until, (sop, head)
            assert p["retention"]["mode"] == "COMPLIANCE" and p["policy"]["retention"]["retainUntil"].startswith(until[:10])
        # A later study of the adult is locked 10 years after itself; extending the first study's
        # lock to match is the lifecycle jobs' work (not yet built).
        later = dicomgen.with_changes(
            dicomgen.ct_study(series_count=1, instances_per_series=1, patient_id=P + "LC-S3-ADULT", study_date="20240601")[0],
            PatientBirthDate="19600101")
        assert helpers.stow(srv.dicomweb, [later.data]).status_code == 200
        p = requests.get(f"{srv.base_url}/admin/instances/{later.sop_uid}/protection", timeout=30).json()
        assert p["retention"]["retainUntilEpochSeconds"] == 2032732800, p  # 2034-06-01T00:00:00Z
    finally:
        pool.close()


def test_the_filesystem_tier_locks_new_objects_as_the_policies_say(stored):
    srv, objects = stored
    p = requests.get(f"{srv.base_url}/admin/instances/{objects['child'].sop_uid}/protection", timeout=30).json()
    assert p["enforcedBy"] != "store" and p["retention"] == {"mode": "COMPLIANCE", "retainUntilEpochSeconds": 2309558400}, p


def test_nodes_apply_the_policies_on_their_own_once_a_period(tmp_path):
    """`lifecycle.apply_every_hours`: two nodes on one PostgreSQL catalog and one S3 bucket
    each offer the period's apply run as they start and every poll after; the catalog lets one
    of them queue it, and the run locks what the policies retain."""
    from conftest import ServerPool
    pool = ServerPool(tmp_path / "servers")
    try:
        first = pool.start("s3", name="scheduled-ingest")
        cts = dicomgen.ct_study(series_count=1, instances_per_series=3, patient_id=P + "LC-SCHEDULED", study_date="20240601")
        cts = [dicomgen.with_changes(c, PatientBirthDate="19600101") for c in cts]
        assert helpers.stow(first.dicomweb, [c.data for c in cts]).status_code == 200
        env = first.bucket.server_env() | {"VNA__LIFECYCLE__POLICIES_DIR": str(POLICIES), "VNA__JOBS__POLL_SECONDS": "1",
                                           "VNA__LIFECYCLE__APPLY_EVERY_HOURS": "1"}
        nodes = [pool.start("sqlite", name=f"scheduled-node-{n}", env=env, args=["--catalog-url", first.db.url]) for n in (1, 2)]
        admin = f"{nodes[0].base_url}/admin"
        deadline = time.monotonic() + 120
        while True:
            runs = [j for j in requests.get(f"{admin}/jobs", timeout=30).json() if j["kind"].startswith("lifecycle-apply")]
            if runs and all(j["state"] == "done" for j in runs):
                break
            assert time.monotonic() < deadline, runs
            time.sleep(0.2)
        # Both nodes have looked again a few times since: still the one run of this period.
        time.sleep(3)
        runs = [j for j in requests.get(f"{admin}/jobs", timeout=30).json() if j["kind"].startswith("lifecycle-apply")]
        assert len(runs) == 1, runs
        (run,) = runs
        assert run["outcome"]["examined"] == 3 and run["failures"] == [], run
        until = int(datetime.datetime(2034, 6, 1, tzinfo=datetime.timezone.utc).timestamp())
        for c in cts:
            p = requests.get(f"{admin}/instances/{c.sop_uid}/protection", timeout=30).json()
            assert p["retention"] == {"mode": "COMPLIANCE", "retainUntilEpochSeconds": until}, p
    finally:
        pool.close()


SITE_RULES = """
version = 1

[[rules]]
name = "site-a-mammography"
[rules.match]
institution = ["Site A"]
department = ["Senology"]
attribute = [{ tag = "00081030", value = "Screening mammography" }]
[rules.retain]
mode = "GOVERNANCE"
at_least = [{ duration = "30y", after = "study_date" }]
"""


def test_rules_select_by_institution_department_and_catalog_attributes(tmp_path):
    """Institution Name, Institutional Department Name and an attribute the catalog holds
    (Study Description), as stored through STOW-RS, select the objects a rule applies to: only
    the study of that site, department and description gets its retention."""
    from conftest import ServerPool
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "sites.toml").write_text(SITE_RULES)
    pool = ServerPool(tmp_path / "servers")
    try:
        srv = pool.start("sqlite", name="lifecycle-sites", env={"VNA__LIFECYCLE__POLICIES_DIR": str(policies)})
        base = dict(StudyDescription="Screening mammography", InstitutionName="Site A", InstitutionalDepartmentName="Senology")
        variants = {"match": base, "other_site": base | {"InstitutionName": "Site B"},
                    "other_department": base | {"InstitutionalDepartmentName": "Radiology"},
                    "other_description": base | {"StudyDescription": "Diagnostic mammography"}}
        objects = {k: dicomgen.with_changes(dicomgen.ct_study(series_count=1, instances_per_series=1, patient_id=P + "LC-SITE-" + k,
                                                              study_date="20200101")[0], **v)
                   for k, v in variants.items()}
        assert helpers.stow(srv.dicomweb, [o.data for o in objects.values()]).status_code == 200
        for name, o in objects.items():
            p = requests.get(f"{srv.base_url}/admin/instances/{o.sop_uid}/protection", timeout=30).json()
            rules = p["policy"]["rules"]
            if name == "match":
                until = int(datetime.datetime(2050, 1, 1, tzinfo=datetime.timezone.utc).timestamp())
                assert rules == ["site-a-mammography"] and p["retention"] == {"mode": "GOVERNANCE", "retainUntilEpochSeconds": until}, p
            else:
                assert rules == [] and p["retention"] is None, (name, p)
        # A rule on an attribute the catalog does not hold is refused before the start.
        (policies / "sites.toml").write_text(SITE_RULES.replace("00081030", "00180050"))
        with pytest.raises(RuntimeError, match="does not hold attribute 00180050"):
            pool.start("sqlite", name="lifecycle-bad-attribute", env={"VNA__LIFECYCLE__POLICIES_DIR": str(policies)})
        pool.servers = [s for s in pool.servers if s.name != "lifecycle-bad-attribute"]
    finally:
        pool.close()
