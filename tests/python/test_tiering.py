"""Tier moves under Object Lock (issue 15), on every backend, with the example policies: a
pathology slide goes to the cold tier 30 days after it arrived when nobody read it. Locked on
arrival on the hot tier for its hot period only (move date + the 30-day margin), because a
locked version could not be removed from there after the move; with its full 50 years on the
cold tier. `vna lifecycle apply` (the injected date: 31 days later) copies it, checks it, locks
it and switches the catalog; frames are byte-identical before, during (the old object is kept
for the move's grace period) and after, and the store itself refuses to delete either copy
before its lock allows (checked with the AWS CLI on S3). The hot copy is destroyed by a later
run once its own lock allows: until then the run reports it, with the lock's end.
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import time

import pytest
import requests

import dicomgen
import helpers
from conftest import BACKENDS, REPO_ROOT, ServerPool, S3Bucket, aws, vna_bin

POLICIES = REPO_ROOT / "lifecycle-policies"
OCTETS = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'
DAY = 86_400


def days_from_now(epoch_seconds: int) -> float:
    return (epoch_seconds - datetime.datetime.now(datetime.timezone.utc).timestamp()) / DAY


@pytest.fixture(scope="module", params=BACKENDS)
def slide(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(f"tiering-{request.param}")
    env = {"VNA__LIFECYCLE__POLICIES_DIR": str(POLICIES), "VNA__JOBS__RUN": "false"}
    cold_bucket = None
    if request.param == "s3":
        cold_bucket = S3Bucket(tmp / "cold-bucket")
        env |= {k: v for k, v in cold_bucket.server_env("cold").items() if k != "VNA__STORAGE__DEFAULT_TIER"}
    else:
        # Naming one tier by environment names them all: the default one again, and the cold one.
        env |= {"VNA__STORAGE__TIERS__DEFAULT__KIND": "filesystem", "VNA__STORAGE__TIERS__COLD__KIND": "filesystem",
                "VNA__STORAGE__TIERS__COLD__PATH": str(tmp / "cold")}
    pool = ServerPool(tmp / "servers")
    srv = pool.start(request.param, name=f"tiering-{request.param}", env=env)
    srv.cold_bucket = cold_bucket
    today = datetime.date.today().strftime("%Y%m%d")
    wsi = dicomgen.wsi_slide(has_bot=False, tiles_x=3, tiles_y=2, patient_id=dicomgen.PATIENT_ID_PREFIX + "TIER", study_date=today)
    r = helpers.stow(srv.dicomweb, [wsi.data])
    assert r.status_code == 200, r.text[:300]
    yield srv, wsi, env
    pool.close()


def cli(srv, env: dict, *args: str) -> subprocess.CompletedProcess:
    cmd = [vna_bin(), "--data-dir", str(srv.data_dir)]
    full = dict(os.environ) | env
    if srv.db is not None:
        cmd += ["--catalog-url", srv.db.url]
    if srv.bucket is not None:
        full |= srv.bucket.server_env()
        full |= {k: v for k, v in srv.cold_bucket.server_env("cold").items() if k != "VNA__STORAGE__DEFAULT_TIER"}
    return subprocess.run(cmd + ["lifecycle", *args, "--policies", str(POLICIES)], capture_output=True, text=True,
                          timeout=300, env=full)


def frames(srv, wsi) -> list[bytes]:
    url = helpers.instance_url(srv.dicomweb, wsi.study_uid, wsi.series_uid, wsi.sop_uid)
    return [helpers.retrieve_raw(f"{url}/frames/{n}", accept=OCTETS)[0] for n in range(1, len(wsi.frames) + 1)]


def protection(srv, wsi) -> dict:
    r = requests.get(f"{srv.base_url}/admin/instances/{wsi.sop_uid}/protection", timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def s3_delete_refused(bucket, key: str, version: str) -> bool:
    r = aws("s3api", "delete-object", "--bucket", bucket.name, "--key", "vna/" + key, f"--version-id={version}", check=False)
    return r.returncode != 0


def test_a_slide_is_locked_on_the_hot_tier_for_its_hot_period_only(slide):
    srv, wsi, _ = slide
    p = protection(srv, wsi)
    assert p["tier"] == "default" if srv.bucket is None else p["tier"] == "s3"
    assert p["retention"]["mode"] == "COMPLIANCE", p
    # 30 days without a read, then the 30-day margin: not the 50 years of its policy.
    assert 59 <= days_from_now(p["retention"]["retainUntilEpochSeconds"]) <= 61, p
    assert p["policy"]["transition"]["tier"] == "cold"


def test_apply_moves_the_slide_to_the_cold_tier_and_locks_it_there(slide):
    srv, wsi, env = slide
    before = frames(srv, wsi)
    assert before == wsi.frames
    hot = protection(srv, wsi)
    when = (datetime.date.today() + datetime.timedelta(days=31)).isoformat()
    p = cli(srv, env, "plan", "--now", when, "--json")
    assert p.returncode == 0, p.stderr[-2000:]
    plan = json.loads(p.stdout)
    assert plan["transitions"]["due"]["cold"]["instances"] == 1, plan["transitions"]
    r = cli(srv, env, "apply", "--now", when, "--plan", plan["planHash"])
    assert r.returncode == 0, r.stderr[-2000:]
    job = json.loads(r.stdout)
    assert job["state"] == "done" and job["failures"] == [], job
    assert (job["outcome"]["moved"], job["outcome"]["purged"]) == (1, 0), job

    # On the cold tier, locked for its 50 years there; served from there, byte for byte.
    cold = protection(srv, wsi)
    assert cold["tier"] == "cold" and cold["key"] != hot["key"], cold
    until = int(datetime.datetime(datetime.date.today().year + 50, datetime.date.today().month, datetime.date.today().day,
                                  tzinfo=datetime.timezone.utc).timestamp())
    assert cold["retention"] == {"mode": "COMPLIANCE", "retainUntilEpochSeconds": until}, cold
    assert frames(srv, wsi) == before
    got = helpers.retrieve_raw(helpers.instance_url(srv.dicomweb, wsi.study_uid, wsi.series_uid, wsi.sop_uid))
    assert got == [wsi.data], "the whole instance, as stored"
    # The hot copy is kept for the move's grace period, recorded as a tombstone to purge.
    stones = requests.get(f"{srv.base_url}/admin/instances/{wsi.sop_uid}/tombstones", timeout=60).json()
    assert [(t["reason"], t["object"], t["purgedAt"]) for t in stones] == [("moved", f"{hot['tier']}/{hot['key']}", None)]
    events = requests.get(f"{srv.base_url}/admin/audit", params={"study": wsi.study_uid, "limit": "1000"}, timeout=60).json()["events"]
    moves = [e for e in events if e["eventId"] == "110103" and e["action"] == "U" and "moved to tier cold" in e["detail"]]
    assert len(moves) == 1 and "pathology-slides" in moves[0]["detail"], events
    if srv.bucket is not None:
        assert s3_delete_refused(srv.bucket, hot["key"], hot["storeVersionId"]), "the hot copy is locked in its bucket"
        assert s3_delete_refused(srv.cold_bucket, cold["key"], cold["storeVersionId"]), "the cold copy is locked in its bucket"


def test_the_hot_copy_goes_only_when_its_own_lock_allows(slide):
    srv, wsi, env = slide
    hot_stone = requests.get(f"{srv.base_url}/admin/instances/{wsi.sop_uid}/tombstones", timeout=60).json()[0]
    when = (datetime.date.today() + datetime.timedelta(days=32)).isoformat()
    plan = json.loads(cli(srv, env, "plan", "--now", when, "--json").stdout)
    assert plan["transitions"]["due"] == {}, "moved already"
    r = cli(srv, env, "apply", "--now", when, "--plan", plan["planHash"], "--move-grace-seconds", "0")
    assert r.returncode == 0, r.stderr[-2000:]
    job = json.loads(r.stdout)
    assert job["state"] == "done" and job["outcome"]["purged"] == 0, job
    (failure,) = job["failures"]
    assert failure["object"] == hot_stone["object"] and "refused" in failure["reason"], failure
    stones = requests.get(f"{srv.base_url}/admin/instances/{wsi.sop_uid}/tombstones", timeout=60).json()
    assert stones[0]["purgedAt"] is None, "still there, still locked, still to purge"
    assert frames(srv, wsi) == wsi.frames


def test_an_old_study_whose_retention_has_ended_is_stored_unlocked(slide):
    """An adult's CT from 2005: ten years after the last study ended in 2015. It is stored
    (a store refuses a retain-until date in the past) and left unlocked."""
    srv, _, _ = slide
    old = dicomgen.with_changes(
        dicomgen.ct_study(series_count=1, instances_per_series=1, patient_id=dicomgen.PATIENT_ID_PREFIX + "TIER-OLD",
                          study_date="20050301")[0], PatientBirthDate="19500101")
    r = helpers.stow(srv.dicomweb, [old.data])
    assert r.status_code == 200, r.text[:300]
    p = protection(srv, old)
    assert p["retention"] is None and p["policy"]["rules"] == ["adult-radiology"], p


MOVE_CT = """
version = 1

[[rules]]
name = "ct-cold"
[rules.match]
modality = ["CT"]
[rules.transition]
tier = "cold"
after = "1d"
priority = 1
"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_move_killed_midway_loses_nothing_and_each_instance_moves_once(backend, tmp_path):
    """kill -9 of `vna lifecycle apply` in the middle of its moves: every catalog row still has
    its object, intact (`vna verify`), reads go on from wherever the catalog says; the next run
    takes the dead job over once its lease lapses, and in the end every instance is on the
    cold tier, byte for byte, moved exactly once (one `moved` tombstone each, purged)."""
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "ct.toml").write_text(MOVE_CT)
    env = {"VNA__LIFECYCLE__POLICIES_DIR": str(policies), "VNA__JOBS__RUN": "false", "VNA__JOBS__LEASE_SECONDS": "3"}
    cold_bucket = None
    if backend == "s3":
        cold_bucket = S3Bucket(tmp_path / "cold-bucket")
        env |= {k: v for k, v in cold_bucket.server_env("cold").items() if k != "VNA__STORAGE__DEFAULT_TIER"}
    else:
        env |= {"VNA__STORAGE__TIERS__DEFAULT__KIND": "filesystem", "VNA__STORAGE__TIERS__COLD__KIND": "filesystem",
                "VNA__STORAGE__TIERS__COLD__PATH": str(tmp_path / "cold")}
    pool = ServerPool(tmp_path / "servers")
    try:
        srv = pool.start(backend, name=f"move-kill-{backend}", env=env)
        srv.cold_bucket = cold_bucket
        cts = dicomgen.ct_study(series_count=1, instances_per_series=24, patient_id=dicomgen.PATIENT_ID_PREFIX + "MOVE-KILL")
        assert helpers.stow(srv.dicomweb, [c.data for c in cts]).status_code == 200
        when = (datetime.date.today() + datetime.timedelta(days=2)).isoformat()

        def run(*args: str, wait: bool = True):
            cmd = [vna_bin(), "--data-dir", str(srv.data_dir)] + (["--catalog-url", srv.db.url] if srv.db is not None else [])
            full = dict(os.environ) | env
            if srv.bucket is not None:
                full |= srv.bucket.server_env()
                full |= {k: v for k, v in cold_bucket.server_env("cold").items() if k != "VNA__STORAGE__DEFAULT_TIER"}
            if not wait:
                return subprocess.Popen(cmd + list(args), env=full, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            return subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=300, env=full)

        def planned() -> dict:
            p = run("lifecycle", "plan", "--now", when, "--json", "--policies", str(policies))
            assert p.returncode == 0, p.stderr[-2000:]
            return json.loads(p.stdout)

        plan = planned()
        assert plan["transitions"]["due"]["cold"]["instances"] == 24, plan["transitions"]
        # Four objects a second: killed a few seconds in, in the middle of the walk.
        proc = run("lifecycle", "apply", "--now", when, "--plan", plan["planHash"], "--max-per-second", "4",
                   "--move-grace-seconds", "0", "--policies", str(policies), wait=False)
        dead = helpers.kill_when_done(srv.base_url, proc, 6)
        assert dead["state"] == "running" and 6 <= dead["progress"]["done"] < 24, dead

        # Nothing lost: every row has its object, intact, on whichever tier it names.
        verify = run("verify")
        assert verify.returncode == 0, verify.stdout + verify.stderr[-2000:]
        tiers = [requests.get(f"{srv.base_url}/admin/instances/{c.sop_uid}/protection", timeout=30).json()["tier"] for c in cts]
        assert "cold" in tiers and any(t != "cold" for t in tiers), f"killed between moves: {tiers}"
        for c in (cts[0], cts[-1]):
            got = helpers.retrieve_raw(helpers.instance_url(srv.dicomweb, c.study_uid, c.series_uid, c.sop_uid))
            assert got == [c.data], c.label

        lapse = datetime.datetime.fromisoformat(dead["leaseUntil"].replace("Z", "+00:00"))
        while datetime.datetime.now(datetime.timezone.utc) <= lapse:
            time.sleep(0.1)
        again = planned()
        r = run("lifecycle", "apply", "--now", when, "--plan", again["planHash"], "--move-grace-seconds", "0",
                "--policies", str(policies))
        assert r.returncode == 0, r.stderr[-2000:]
        taken = requests.get(f"{srv.base_url}/admin/jobs/{dead['id']}", timeout=30).json()
        assert taken["state"] == "done" and taken["attempts"] == 2 and taken["failures"] == [], taken
        for c in cts:
            p = requests.get(f"{srv.base_url}/admin/instances/{c.sop_uid}/protection", timeout=30).json()
            assert p["tier"] == "cold", (c.label, p)
            stones = requests.get(f"{srv.base_url}/admin/instances/{c.sop_uid}/tombstones", timeout=30).json()
            assert [(t["reason"], t["purgedAt"] is not None) for t in stones] == [("moved", True)], (c.label, stones)
            got = helpers.retrieve_raw(helpers.instance_url(srv.dicomweb, c.study_uid, c.series_uid, c.sop_uid))
            assert got == [c.data], c.label
        assert planned()["transitions"]["due"] == {}
        verify = run("verify")
        assert verify.returncode == 0, verify.stdout + verify.stderr[-2000:]
    finally:
        pool.close()
