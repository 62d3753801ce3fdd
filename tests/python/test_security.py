"""Who may see and do what (issue 14, steps 1-2): one principal per caller, checked inside the
archive, its tenants applied in the catalog query, the same subset over every interface.

A server with anonymous access off, two scanners known by AE title (CT_A stores into
`hug/radiology`, CT_B into `chuv`, by tenancy rules on the calling AE) and API keys made with
`vna apikey` for the HTTP callers:

- no credential: 401 with `WWW-Authenticate: Bearer`; a malformed or unknown key 401
  `invalid_token`; a key without the read scope 403; a revoked key 401;
- a key of tenant `hug` sees, counts, retrieves and renders only the `hug/radiology` study, by
  QIDO-RS, WADO-RS, metadata, rendered and WADO-URI; a UID of the other study is "not found";
- a key that may not write gets 403 on STOW-RS, and a writer of `chuv` cannot add an instance
  to the `hug/radiology` study (409: a study never straddles tenants);
- over DIMSE each scanner finds, moves and gets only its tenant's study; an unknown AE title
  is rejected at association; a known title from another host than its own is refused 0x0124.

The visibility is in the catalog's SQL (conformance suite on both backends); this runs the
front ends on the embedded catalog and on PostgreSQL (the blob store plays no part).
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest
import requests
from pydicom.dataset import Dataset
from pynetdicom import AE, build_role, evt
from pynetdicom.pdu_primitives import UserIdentityNegotiation
from pynetdicom.sop_class import (
    CTImageStorage,
    StudyRootQueryRetrieveInformationModelFind as STUDY_ROOT_FIND,
    StudyRootQueryRetrieveInformationModelGet as STUDY_ROOT_GET,
    StudyRootQueryRetrieveInformationModelMove as STUDY_ROOT_MOVE,
)

import dicomgen
import helpers
from conftest import ServerPool, vna_bin

EXPLICIT = "1.2.840.10008.1.2.1"




class World:
    def __init__(self, server, config: Path, studies: dict[str, list[dicomgen.Instance]], keys: dict[str, str]):
        self.server = server
        self.config = config
        self.studies = studies
        self.keys = keys

    def vna(self, *args: str) -> subprocess.CompletedProcess:
        cmd = [vna_bin(), "--config", str(self.config), "--data-dir", str(self.server.data_dir)]
        if self.server.db is not None:
            cmd += ["--catalog-url", self.server.db.url]
        return subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=120)

    def get(self, path: str, key: str | None, **kw) -> requests.Response:
        headers = kw.pop("headers", {})
        if key is not None:
            headers["Authorization"] = f"Bearer {self.keys.get(key, key)}"
        return requests.get(self.server.dicomweb + path, headers=headers, timeout=60, **kw)


def c_store(port: int, ae_title: str, instances: list[dicomgen.Instance]) -> list[int]:
    ae = AE(ae_title=ae_title)
    ae.add_requested_context(CTImageStorage, [EXPLICIT])
    assoc = ae.associate("127.0.0.1", port, ae_title="VNA")
    assert assoc.is_established, f"{ae_title} could not associate"
    try:
        return [assoc.send_c_store(i.reread()).Status for i in instances]
    finally:
        assoc.release()


def user_identity(kind: int, primary: bytes, secondary: bytes = b"") -> UserIdentityNegotiation:
    """A User Identity sub-item (PS3.7 §D.3.3.7) asking for a positive response."""
    item = UserIdentityNegotiation()
    item.user_identity_type = kind
    item.primary_field = primary
    if kind == 2:
        item.secondary_field = secondary
    item.positive_response_requested = True
    return item


def c_find(port: int, ae_title: str, identity: UserIdentityNegotiation | None = None) -> set[str] | int | str:
    """The studies found, the final status of a failed C-FIND, or "rejected"."""
    ae = AE(ae_title=ae_title)
    ae.add_requested_context(STUDY_ROOT_FIND)
    assoc = ae.associate("127.0.0.1", port, ae_title="VNA", ext_neg=[identity] if identity else None)
    if assoc.is_rejected:
        return "rejected"
    assert assoc.is_established
    try:
        q = Dataset()
        q.QueryRetrieveLevel = "STUDY"
        q.StudyInstanceUID = ""
        q.PatientID = dicomgen.PATIENT_ID_PREFIX + "SEC-*"
        found, final = set(), None
        for status, identifier in assoc.send_c_find(q, STUDY_ROOT_FIND):
            if status.Status in (0xFF00, 0xFF01):
                found.add(str(identifier.StudyInstanceUID))
            else:
                final = status.Status
        return found if final == 0x0000 else final
    finally:
        assoc.release()


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def world(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(f"security-{request.param}")
    dest_port = helpers.free_port()
    config = tmp / "vna.toml"
    scanner = 'host = "127.0.0.1"\nport = {port}\ncan_store = true\ncan_query = true\ncan_retrieve = true\n'
    config.write_text(
        "version = 1\n"
        '[auth]\nanonymous = "off"\n'
        '[tenancy]\ndefault_tenant = "default"\n'
        '[[tenancy.rules]]\ntenant = "hug/radiology"\ncalling_ae = "CT_A"\n'
        '[[tenancy.rules]]\ntenant = "chuv"\ncalling_ae = "CT_B"\n'
        "[dimse]\nallow_any_calling_ae = false\n"
        '[[dimse.known_aes]]\nae_title = "CT_A"\n' + scanner.format(port=dest_port) + 'tenants = ["hug"]\n'
        '[[dimse.known_aes]]\nae_title = "CT_B"\n' + scanner.format(port=dest_port) + 'tenants = ["chuv"]\n'
        # A workstation whose users log in (User Identity Negotiation), seeing every tenant itself.
        '[[dimse.known_aes]]\nae_title = "WORKSTATION"\n' + scanner.format(port=dest_port) + 'require_user_identity = true\n'
        # A known title whose host is elsewhere: calls from here are someone else using its name.
        '[[dimse.known_aes]]\nae_title = "FARAWAY"\nhost = "192.0.2.10"\nport = 104\n')
    pool = ServerPool(tmp / "servers")
    srv = pool.start(request.param, name=f"security-{request.param}", args=["--config", str(config)])
    srv.dest_port = dest_port
    studies = {
        label: dicomgen.ct_study(series_count=1, instances_per_series=2, patient_id=dicomgen.PATIENT_ID_PREFIX + f"SEC-{label}")
        for label in ("a", "b")
    }
    assert c_store(srv.dimse_port, "CT_A", studies["a"]) == [0, 0]
    assert c_store(srv.dimse_port, "CT_B", studies["b"]) == [0, 0]
    w = World(srv, config, studies, {})
    for name, scopes, tenants in [
        ("hug-reader", ["system/ImagingStudy.read"], ["hug"]),
        ("chuv-reader", ["system/ImagingStudy.rs"], ["chuv"]),
        ("writer-only", ["system/ImagingStudy.c"], ["*"]),
        ("chuv-writer", ["system/ImagingStudy.cruds"], ["chuv"]),
        ("revoked", ["system/ImagingStudy.read"], ["*"]),
        ("auditor", ["vna.audit"], ["*"]),
    ]:
        args = ["apikey", "create", "--name", name] + [f"--scope={s}" for s in scopes] + [f"--tenant={t}" for t in tenants]
        r = w.vna(*args)
        assert r.returncode == 0, r.stderr
        w.keys[name] = r.stdout.strip()
        assert w.keys[name].startswith("vnak_"), r.stdout
    yield w
    pool.close()


def uid(w: World, label: str) -> str:
    return w.studies[label][0].study_uid


def qido_studies(w: World, key: str, **params) -> set[str] | int:
    r = w.get("/studies", key, params={"PatientID": dicomgen.PATIENT_ID_PREFIX + "SEC-*", **params})
    if r.status_code == 204:
        return set()
    if r.status_code != 200:
        return r.status_code
    return {helpers.value(d, "0020000D") for d in r.json()}


# --------------------------------------------------------------------------
# Who is asking (HTTP)
# --------------------------------------------------------------------------


def test_no_credential_or_a_bad_one_is_401(world):
    r = world.get("/studies", None)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Bearer"), r.headers
    for bad in ["vnak_0123", "vnak_" + "0" * 12 + "_" + "0" * 64, "not-a-jwt"]:
        r = world.get("/studies", bad)
        assert r.status_code == 401, bad
        assert 'error="invalid_token"' in r.headers["WWW-Authenticate"], bad
    r = requests.get(world.server.base_url + f"/admin/instances/{world.studies['a'][0].sop_uid}/versions", timeout=60)
    assert r.status_code == 401, "the admin API is behind the same check"


def test_a_key_without_the_scope_is_403_and_a_revoked_one_401(world):
    assert qido_studies(world, "writer-only") == 403
    assert qido_studies(world, "revoked") == {uid(world, "a"), uid(world, "b")}, "a key of every tenant sees both"
    key_id = world.keys["revoked"].split("_")[1]
    r = world.vna("apikey", "revoke", key_id)
    assert r.returncode == 0, r.stderr
    assert qido_studies(world, "revoked") == 401
    listed = world.vna("apikey", "list").stdout
    assert f"{key_id}\trevoked" in listed and "vnak_" not in listed, listed


# --------------------------------------------------------------------------
# What each one sees: the same subset on every route
# --------------------------------------------------------------------------


def test_each_tenant_sees_only_its_studies_through_qido(world):
    assert qido_studies(world, "hug-reader") == {uid(world, "a")}
    assert qido_studies(world, "chuv-reader") == {uid(world, "b")}
    assert qido_studies(world, "hug-reader", StudyInstanceUID=uid(world, "b")) == set(), "a UID does not open a hidden study"
    r = world.get("/studies", "hug-reader", params={"PatientID": dicomgen.PATIENT_ID_PREFIX + "SEC-*", "includefield": "all"})
    (study,) = r.json()
    assert helpers.value(study, "00201208") == 2, "counters count what the reader sees"
    r = world.get("/instances", "hug-reader", params={"PatientID": dicomgen.PATIENT_ID_PREFIX + "SEC-*"})
    assert {helpers.value(d, "00080018") for d in r.json()} == {i.sop_uid for i in world.studies["a"]}
    r = world.get(f"/studies/{uid(world, 'b')}/series", "hug-reader")
    assert r.status_code == 204, r.status_code


def test_retrieve_metadata_and_rendered_of_another_tenant_are_not_found(world):
    a, b = world.studies["a"][0], world.studies["b"][0]
    for inst, ok in ((a, True), (b, False)):
        base = f"/studies/{inst.study_uid}"
        inst_path = f"{base}/series/{inst.series_uid}/instances/{inst.sop_uid}"
        for path, accept in [
            (base, helpers.ACCEPT_DICOM_ANY_TS),
            (base + "/metadata", "application/dicom+json"),
            (inst_path + "/frames/1", 'multipart/related; type="application/octet-stream"'),
            (inst_path + "/rendered", "image/jpeg"),
            (base + "/thumbnail", "image/jpeg"),
        ]:
            r = world.get(path, "hug-reader", headers={"Accept": accept})
            assert r.status_code == (200 if ok else 404), f"{path}: {r.status_code}"
        q = {"requestType": "WADO", "studyUID": inst.study_uid, "seriesUID": inst.series_uid, "objectUID": inst.sop_uid}
        r = requests.get(world.server.dicomweb + "/wado", params=q, headers={"Authorization": f"Bearer {world.keys['hug-reader']}"},
                         timeout=60)
        assert r.status_code == (200 if ok else 404), f"WADO-URI: {r.status_code}"


def test_fhir_sees_what_qido_sees(world):
    """FHIR ImagingStudy goes through the same principal and visibility: a tenant's reader
    finds and reads its own study only; no credential is 401, the wrong scope 403; the
    CapabilityStatement alone is public."""
    fhir = world.server.base_url + "/fhir"

    def get(path: str, key: str | None, **kw) -> requests.Response:
        headers = {"Authorization": f"Bearer {world.keys[key]}"} if key else {}
        return requests.get(fhir + path, headers=headers, timeout=60, **kw)

    def found(key: str, **params) -> set[str]:
        r = get("/ImagingStudy", key, params=params)
        assert r.status_code == 200, (r.status_code, r.text)
        return {e["resource"]["id"] for e in r.json().get("entry", [])}

    a, b = uid(world, "a"), uid(world, "b")
    for label, key, expected in [("a", "hug-reader", {a}), ("b", "hug-reader", set()), ("b", "chuv-reader", {b})]:
        pid = dicomgen.PATIENT_ID_PREFIX + f"SEC-{label}"
        assert found(key, **{"patient:identifier": pid}) == expected, (label, key)
    assert found("hug-reader", identifier=f"urn:oid:{a},urn:oid:{b}") == {a}
    assert get(f"/ImagingStudy/{a}", "hug-reader").status_code == 200
    assert get(f"/ImagingStudy/{b}", "hug-reader").status_code == 404, "a hidden study is not found, not forbidden"
    assert get(f"/ImagingStudy/{a}", None).status_code == 401
    assert get("/ImagingStudy", "writer-only", params={"_id": a}).status_code == 403
    r = get("/metadata", None)
    assert r.status_code == 200 and r.json()["resourceType"] == "CapabilityStatement"


def test_stores_need_the_write_permission_and_the_study_s_tenant(world):
    new = dicomgen.ct_study(series_count=1, instances_per_series=1, patient_id=dicomgen.PATIENT_ID_PREFIX + "SEC-c")[0]

    def stow(key: str, data: bytes) -> requests.Response:
        b, bd = helpers.multipart_body([("application/dicom", data)])
        return requests.post(world.server.dicomweb + "/studies", data=b, timeout=60,
                             headers={"Content-Type": f'multipart/related; type="application/dicom"; boundary={bd}',
                                      "Accept": "application/dicom+json", "Authorization": f"Bearer {world.keys[key]}"})

    assert stow("hug-reader", new.data).status_code == 403
    # A chuv writer adding an instance to the hug/radiology study: the study keeps its tenant.
    intruder = dicomgen.with_changes(world.studies["a"][0], SOPInstanceUID=dicomgen.new_uid())
    r = stow("chuv-writer", intruder.data)
    assert r.status_code == 409, f"{r.status_code} {r.text[:300]}"
    assert qido_studies(world, "hug-reader", StudyInstanceUID=uid(world, "a")) == {uid(world, "a")}
    r = world.get("/instances", "hug-reader", params={"SOPInstanceUID": intruder.sop_uid})
    assert r.status_code == 204, "nothing was stored"
    # Its own new study goes to its tenant: chuv sees it, hug does not.
    assert stow("chuv-writer", new.data).status_code == 200
    assert uid_in(world, "chuv-reader", new.study_uid) and not uid_in(world, "hug-reader", new.study_uid)


def uid_in(w: World, key: str, study_uid: str) -> bool:
    return qido_studies(w, key, StudyInstanceUID=study_uid) == {study_uid}


# --------------------------------------------------------------------------
# DIMSE: the known AE table
# --------------------------------------------------------------------------


def test_c_find_sees_the_scanner_s_tenant_only(world):
    assert c_find(world.server.dimse_port, "CT_A") == {uid(world, "a")}
    b_found = c_find(world.server.dimse_port, "CT_B")
    assert uid(world, "b") in b_found and uid(world, "a") not in b_found


def test_c_move_and_c_get_of_another_tenant_s_study_send_nothing(world):
    received: list[str] = []

    def on_store(event):
        received.append(str(event.dataset.SOPInstanceUID))
        return 0x0000

    scp_ae = AE(ae_title="CT_B")
    scp_ae.add_supported_context(CTImageStorage, [EXPLICIT])
    scp = scp_ae.start_server(("127.0.0.1", world.server.dest_port), block=False, evt_handlers=[(evt.EVT_C_STORE, on_store)])
    try:
        for study_label, expected in (("a", 0), ("b", 2)):
            ae = AE(ae_title="CT_B")
            ae.add_requested_context(STUDY_ROOT_MOVE)
            assoc = ae.associate("127.0.0.1", world.server.dimse_port, ae_title="VNA")
            assert assoc.is_established
            try:
                q = Dataset()
                q.QueryRetrieveLevel = "STUDY"
                q.StudyInstanceUID = uid(world, study_label)
                responses = [s for s, _ in assoc.send_c_move(q, "CT_B", STUDY_ROOT_MOVE)]
            finally:
                assoc.release()
            assert responses[-1].Status == 0x0000
            assert responses[-1].get("NumberOfCompletedSuboperations", 0) == expected, study_label
    finally:
        scp.shutdown()
    assert sorted(received) == sorted(i.sop_uid for i in world.studies["b"])

    got: list[str] = []
    ae = AE(ae_title="CT_B")
    ae.add_requested_context(STUDY_ROOT_GET)
    ae.add_requested_context(CTImageStorage, [EXPLICIT])
    assoc = ae.associate("127.0.0.1", world.server.dimse_port, ae_title="VNA", ext_neg=[build_role(CTImageStorage, scp_role=True)],
                         evt_handlers=[(evt.EVT_C_STORE, lambda e: got.append(str(e.dataset.SOPInstanceUID)) or 0x0000)])
    assert assoc.is_established
    try:
        q = Dataset()
        q.QueryRetrieveLevel = "STUDY"
        q.StudyInstanceUID = uid(world, "a")
        final = [s.Status for s, _ in assoc.send_c_get(q, STUDY_ROOT_GET)][-1]
    finally:
        assoc.release()
    assert (final, got) == (0x0000, []), "CT_B gets nothing of CT_A's study"


def test_unknown_and_misplaced_ae_titles_are_refused(world):
    ae = AE(ae_title="STRANGER")
    ae.add_requested_context(STUDY_ROOT_FIND)
    assoc = ae.associate("127.0.0.1", world.server.dimse_port, ae_title="VNA")
    assert assoc.is_rejected, "an unknown calling AE title is rejected at association"
    assert c_find(world.server.dimse_port, "FARAWAY") == 0x0124, "a known title from another host"
    assert c_store(world.server.dimse_port, "FARAWAY", world.studies["a"][:1]) == [0x0124]


# --------------------------------------------------------------------------
# Signed links for the patient record
# --------------------------------------------------------------------------


def make_link(w: World, key: str, **body) -> requests.Response:
    return requests.post(w.server.base_url + "/admin/links", json=body, timeout=60,
                         headers={"Authorization": f"Bearer {w.keys[key]}"})


def test_a_signed_link_opens_its_study_only_and_expires(world):
    a, b = world.studies["a"][0], world.studies["b"][0]
    r = make_link(world, "hug-reader", study=a.study_uid)
    assert r.status_code == 201, r.text
    link = r.json()["link"]
    assert link.startswith("vnal_") and r.json()["expiresAt"] > 0

    def thumb(study_uid: str, token: str) -> requests.Response:
        return requests.get(f"{world.server.dicomweb}/studies/{study_uid}/thumbnail", params={"link": token},
                            headers={"Accept": "image/jpeg"}, timeout=60)

    r = thumb(a.study_uid, link)
    assert r.status_code == 200 and r.headers["Content-Type"] == "image/jpeg", r.status_code
    assert thumb(b.study_uid, link).status_code == 404, "another study"
    r = requests.get(world.server.dicomweb + "/studies", params={"link": link, "PatientID": dicomgen.PATIENT_ID_PREFIX + "SEC-*"},
                     timeout=60)
    assert {helpers.value(d, "0020000D") for d in r.json()} == {a.study_uid}, "the link is taken out of the query"
    r = requests.get(f"{world.server.dicomweb}/studies/{a.study_uid}", headers={"Authorization": f"Bearer {link}",
                                                                              "Accept": helpers.ACCEPT_DICOM_ANY_TS}, timeout=60)
    assert r.status_code == 200, "as a bearer token too"
    body, boundary = helpers.multipart_body([("application/dicom", a.data)])
    r = requests.post(world.server.dicomweb + "/studies", data=body, timeout=60, params={"link": link},
                      headers={"Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}'})
    assert r.status_code == 403, "a link only reads"
    tampered = link[:-1] + ("0" if link[-1] != "0" else "1")
    assert thumb(a.study_uid, tampered).status_code == 401

    # Only what its maker may read; at most a day; then it expires.
    assert make_link(world, "hug-reader", study=b.study_uid).status_code == 404
    assert make_link(world, "hug-reader", study=a.study_uid, ttlSeconds=2 * 86400).status_code == 400
    short = make_link(world, "hug-reader", study=a.study_uid, ttlSeconds=1).json()["link"]
    time.sleep(2.1)
    assert thumb(a.study_uid, short).status_code == 401


def test_user_identity_negotiation_narrows_an_ae_to_its_user(world):
    """PS3.7 §D.3.3.7: a username with an API key as passcode (type 2) or a bearer credential in
    the JWT field (type 5); the user acts through the AE with what both may do and see."""
    port = world.server.dimse_port
    assert c_find(port, "WORKSTATION") == "rejected", "this AE must authenticate a user"
    assert c_find(port, "WORKSTATION", user_identity(1, b"alice")) == "rejected", "a username alone proves nothing"
    assert c_find(port, "WORKSTATION", user_identity(2, b"alice", b"vnak_bogus_key")) == "rejected"
    hug = world.keys["hug-reader"].encode()
    assert c_find(port, "WORKSTATION", user_identity(2, b"alice", hug)) == {uid(world, "a")}
    chuv = c_find(port, "WORKSTATION", user_identity(5, world.keys["chuv-reader"].encode()))
    assert uid(world, "b") in chuv and uid(world, "a") not in chuv, chuv
    # CT_A sees hug only, whoever logs in through it; an AE without the requirement may still send one.
    assert c_find(port, "CT_A", user_identity(2, b"bob", world.keys["chuv-reader"].encode())) == set()
    assert c_find(port, "CT_A", user_identity(5, b"not a token")) == "rejected"
    # The positive response (PS3.7 §D.3.3.7.2) comes back, and a reader may not store.
    ae = AE(ae_title="WORKSTATION")
    ae.add_requested_context(CTImageStorage, [EXPLICIT])
    assoc = ae.associate("127.0.0.1", port, ae_title="VNA", ext_neg=[user_identity(2, b"alice", hug)])
    assert assoc.is_established
    try:
        responses = [i for i in assoc.acceptor.user_information if isinstance(i, UserIdentityNegotiation)]
        assert len(responses) == 1 and responses[0].server_response == b"", "a positive response"
        new = dicomgen.ct_study(series_count=1, instances_per_series=1, patient_id=dicomgen.PATIENT_ID_PREFIX + "SEC-ws")[0]
        assert assoc.send_c_store(new.reread()).Status == 0x0124
    finally:
        assoc.release()
    # The failed logins are in the audit trail (User Authentication, Login, serious failure), from
    # DIMSE, with no credential in them.
    r = requests.get(world.server.base_url + "/admin/audit", params={"limit": "1000"}, timeout=60,
                     headers={"Authorization": f"Bearer {world.keys['auditor']}"})
    assert r.status_code == 200, r.text[:300]
    failed = [e for e in r.json()["events"] if e["eventId"] == "110114" and e["interface"] == "dimse"]
    assert len(failed) == 2 and all("vnak_" not in e["detail"] and "token" not in e["user"] for e in failed), failed


def test_no_credential_or_query_string_in_the_logs_even_at_debug(pool):
    """With every target at debug level, requests are logged by method and path only: a signed
    link, an API key or a patient's name in the query string never reaches the log."""
    srv = pool.start("sqlite", name="debug-logs", env={"RUST_LOG": "debug"})
    secret_link = "vnal_SECRETLINK0123456789"
    requests.get(srv.dicomweb + "/studies", params={"PatientName": "SECRETNAME^PATIENT", "link": secret_link}, timeout=30)
    requests.get(srv.dicomweb + "/studies", params={"PatientName": "SECRETNAME^PATIENT"}, timeout=30,
                 headers={"Authorization": "Bearer vnak_SECRETKEYID_SECRETKEYSECRET"})
    requests.get(srv.dicomweb + "/studies", params={"PatientName": "SECRETNAME^PATIENT"}, timeout=30)
    log = re.sub(r"\x1b\[[0-9;]*m", "", srv.log_path.read_text())
    assert "path=/dicom-web/studies" in log, "request spans are logged at debug level"
    for secret in ("SECRETLINK", "SECRETKEY", "SECRETNAME"):
        assert secret not in log, f"{secret} leaked into the log"
