"""The archive on S3 with Object Lock, checked from outside with the AWS CLI, as an operator
holding the archive's own credentials would: a COMPLIANCE-retained version cannot be deleted
or have its retention shortened, a legal hold placed through the archive blocks deletion,
and credentials from the standard AWS environment variables work.

Runs on the ``s3`` backend only (PostgreSQL + a fresh Object Lock bucket on the test RGW).
"""

from __future__ import annotations

import json
import time

import requests

import dicomgen
from conftest import aws, s3_env
from helpers import instance_url, qido, retrieve_raw, stow

TIER = "VNA__STORAGE__TIERS__S3__"


def _protection(srv, sop: str) -> dict:
    r = requests.get(f"{srv.base_url}/admin/instances/{sop}/protection", timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def _head(bucket: str, key: str, version: str) -> dict:
    r = aws("s3api", "head-object", "--bucket", bucket, "--key", key, f"--version-id={version}", "--output", "json")
    return json.loads(r.stdout)


def _store_one(srv) -> dicomgen.Instance:
    inst = dicomgen.ct_study()[0]
    r = stow(srv.dicomweb, [inst.data])
    assert r.status_code == 200, r.text
    return inst


def test_compliance_retention_holds_against_the_aws_cli(pool):
    srv = pool.start("s3", env={TIER + "RETENTION": '{ mode = "COMPLIANCE", days = 1 }'})
    inst = _store_one(srv)
    p = _protection(srv, inst.sop_uid)
    assert p["retention"]["mode"] == "COMPLIANCE" and p["enforcedBy"] == "store", p
    bucket, key, version = srv.bucket.name, "vna/" + p["key"], p["storeVersionId"]
    assert version, "the catalog records the S3 version id"
    head = _head(bucket, key, version)
    assert head.get("ObjectLockMode") == "COMPLIANCE", head
    # Delete the version, even asking to bypass governance: refused.
    r = aws("s3api", "delete-object", "--bucket", bucket, "--key", key, f"--version-id={version}",
            "--bypass-governance-retention", check=False)
    assert r.returncode != 0, "a COMPLIANCE-retained version was deleted"
    # Shorten the retention: refused.
    soon = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 120))
    r = aws("s3api", "put-object-retention", "--bucket", bucket, "--key", key, f"--version-id={version}",
            "--retention", json.dumps({"Mode": "COMPLIANCE", "RetainUntilDate": soon}),
            "--bypass-governance-retention", check=False)
    assert r.returncode != 0, "a COMPLIANCE retention was shortened"
    assert _protection(srv, inst.sop_uid)["retention"] == p["retention"]
    # A plain delete only adds a delete marker; the archive reads its pinned version on.
    aws("s3api", "delete-object", "--bucket", bucket, "--key", key)
    got = retrieve_raw(instance_url(srv.dicomweb, inst.study_uid, inst.series_uid, inst.sop_uid))
    assert got == [inst.data]


def test_legal_hold_through_the_archive_blocks_the_aws_cli(pool):
    srv = pool.start("s3")
    inst = _store_one(srv)
    url = f"{srv.base_url}/admin/instances/{inst.sop_uid}/legal-hold"
    assert requests.put(url, data="on", timeout=30).status_code == 204
    p = _protection(srv, inst.sop_uid)
    assert p["legalHold"] is True and p["retention"] is None, p
    bucket, key, version = srv.bucket.name, "vna/" + p["key"], p["storeVersionId"]
    r = aws("s3api", "get-object-legal-hold", "--bucket", bucket, "--key", key, f"--version-id={version}", "--output", "json")
    assert json.loads(r.stdout)["LegalHold"]["Status"] == "ON"
    r = aws("s3api", "delete-object", "--bucket", bucket, "--key", key, f"--version-id={version}", check=False)
    assert r.returncode != 0, "a version under legal hold was deleted"
    assert _head(bucket, key, version)["ContentLength"] == len(inst.data)
    assert requests.put(url, data="off", timeout=30).status_code == 204
    assert _protection(srv, inst.sop_uid)["legalHold"] is False


def test_credentials_from_the_aws_environment(pool):
    e = s3_env()
    srv = pool.start("s3", env={
        TIER + "ACCESS_KEY_ID": "",
        TIER + "SECRET_ACCESS_KEY_FILE": "",
        "AWS_ACCESS_KEY_ID": e["VNA_TEST_S3_ACCESS_KEY"],
        "AWS_SECRET_ACCESS_KEY": e["VNA_TEST_S3_SECRET_KEY"],
        "AWS_EC2_METADATA_DISABLED": "true",
    })
    inst = _store_one(srv)
    status, found = qido(srv.dicomweb, "instances", {"SOPInstanceUID": inst.sop_uid})
    assert status == 200 and len(found) == 1
    assert retrieve_raw(instance_url(srv.dicomweb, inst.study_uid, inst.series_uid, inst.sop_uid)) == [inst.data]


def test_server_side_encryption_with_kms_is_confirmed_by_the_store(pool):
    """SSE-KMS asked for every new object (single PUT and multipart), confirmed in the store's
    answers, seen from outside with the AWS CLI; the archive reads the objects back unchanged.
    The test RGW has the "testing" KMS backend with one key, vna-test-key (s3-throwaway.sh)."""
    srv = pool.start("s3", env={TIER + "ENCRYPTION": "SSE-KMS", TIER + "KMS_KEY_ID": "vna-test-key"})
    small = _store_one(srv)
    big = dicomgen.large_instance(total_bytes=6_000_000)
    assert len(big.data) > 5 << 20, "large enough for a multipart upload"
    assert stow(srv.dicomweb, [big.data]).status_code == 200
    for inst in (small, big):
        p = _protection(srv, inst.sop_uid)
        head = _head(srv.bucket.name, "vna/" + p["key"], p["storeVersionId"])
        assert head.get("ServerSideEncryption") == "aws:kms", head
        assert head.get("SSEKMSKeyId", "").endswith("vna-test-key"), head
        assert retrieve_raw(instance_url(srv.dicomweb, inst.study_uid, inst.series_uid, inst.sop_uid)) == [inst.data]


def test_an_encryption_the_store_does_not_apply_fails_the_store_and_acknowledges_nothing(pool):
    """SSE-KMS with a key the store does not have: the store refuses or ignores it, and either
    way nothing is acknowledged (the archive checks the store's answer)."""
    srv = pool.start("s3", env={TIER + "ENCRYPTION": "SSE-KMS", TIER + "KMS_KEY_ID": "no-such-key"})
    inst = dicomgen.ct_study()[0]
    r = stow(srv.dicomweb, [inst.data])
    assert r.status_code != 200, r.text[:300]
    assert qido(srv.dicomweb, "/instances", {"SOPInstanceUID": inst.sop_uid})[1] == []
