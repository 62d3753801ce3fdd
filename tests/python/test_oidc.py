"""Bearer access tokens from a real OpenID provider (issue 14, step 3).

panva's `oidc-provider` (npm, `tests/oidc/`) runs on loopback with client-credentials clients
for the patient record's back end and a public client with PKCE for a browser application
(its users sign in through the provider's login and consent forms); its access tokens are JWTs (RFC 9068) for the resource
`urn:vna`, with a `tenants` claim. vna is configured with the provider's issuer only: it
discovers the JWKS, verifies every token and maps its scopes and tenants to a principal.

- tokens from the provider open exactly their tenant's study; a token for another audience,
  or without the read scope, is 401 / 403;
- hostile tokens a provider never issues, made by the signer in `tests/oidc/oidc.mjs` with the
  provider's own key (so only the defect differs from a token that passes): another issuer,
  expired, not yet valid, `alg: none`, HMAC keyed with the public key, a key not in the JWKS;
- a person signed in with PKCE sees their tenant and is audited as `user:<sub>`, a client
  acting for itself as `client:<id>`;
- the same token in a DIMSE User Identity sub-item (PS3.7 §D.3.3.7) narrows the association;
- key rotation: the provider restarts with a new key; vna fetches the new JWKS on the first
  token that names it, without a restart.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import shutil
import subprocess
import time
import urllib.parse
from pathlib import Path

import pytest
import requests
from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.pdu_primitives import UserIdentityNegotiation
from pynetdicom.sop_class import CTImageStorage, StudyRootQueryRetrieveInformationModelFind as STUDY_ROOT_FIND

import dicomgen
import helpers
from conftest import REPO_ROOT, ServerPool

OIDC_DIR = REPO_ROOT / "tests" / "oidc"
AUDIENCE = "urn:vna"
EXPLICIT = "1.2.840.10008.1.2.1"




def node() -> str:
    n = shutil.which("node")
    if n is None:
        pytest.fail("node is not installed: the OpenID provider of these tests runs on Node.js")
    if not (OIDC_DIR / "node_modules" / "oidc-provider").is_dir():
        pytest.fail("tests/oidc/node_modules is missing: scripts/test.sh installs it (npm ci in tests/oidc)")
    return n


def oidc(*args: str) -> str:
    r = subprocess.run([node(), str(OIDC_DIR / "oidc.mjs"), *args], capture_output=True, text=True, timeout=60, cwd=OIDC_DIR)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


class Provider:
    def __init__(self, workdir: Path, port: int, keys: Path):
        self.issuer = f"http://127.0.0.1:{port}"
        self.log = open(workdir / f"oidc-{keys.stem}.log", "w")
        self.proc = subprocess.Popen([node(), str(OIDC_DIR / "oidc.mjs"), "serve", str(port), str(keys)], cwd=OIDC_DIR,
                                     stdout=subprocess.PIPE, stderr=self.log, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.startswith("oidc ready"), f"the provider did not start: {line!r}"

    def token(self, client: str, scope: str, resource: str = AUDIENCE) -> str:
        r = requests.post(self.issuer + "/token", auth=(client, f"{client}-secret-0123456789abcdef"),
                          data={"grant_type": "client_credentials", "scope": scope, "resource": resource}, timeout=30)
        assert r.status_code == 200, r.text
        return r.json()["access_token"]

    def viewer_login(self, login: str) -> str:
        """The access token of `login` signed in through the public client `viewer` (a browser
        application): authorization code with PKCE (RFC 7636, S256), the provider's own login and
        consent forms submitted as a browser would, the code exchanged without a client secret."""
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        redirect = "http://127.0.0.1/viewer/callback"
        s = requests.Session()
        r = s.get(self.issuer + "/auth", allow_redirects=False, timeout=30, params={
            "client_id": "viewer", "response_type": "code", "redirect_uri": redirect, "scope": "openid user/ImagingStudy.read",
            "code_challenge": challenge, "code_challenge_method": "S256", "resource": AUDIENCE, "state": "s1"})
        for _ in range(12):
            location = r.headers.get("location")
            if location and location.startswith(redirect):
                query = urllib.parse.parse_qs(urllib.parse.urlparse(location).query)
                assert query["state"] == ["s1"], query
                break
            if location:
                r = s.get(urllib.parse.urljoin(r.url, location), allow_redirects=False, timeout=30)
                continue
            assert r.status_code == 200, r.text[:300]
            action = re.search(r'<form[^>]*action="([^"]+)"', r.text)
            assert action, r.text[-1000:]
            fields = dict(re.findall(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', r.text))
            if 'name="login"' in r.text:
                fields.update(login=login, password="any")
            r = s.post(urllib.parse.urljoin(r.url, action.group(1)), data=fields, allow_redirects=False, timeout=30)
        else:
            pytest.fail("the provider never redirected back with a code")
        t = requests.post(self.issuer + "/token", timeout=30, data={
            "grant_type": "authorization_code", "code": query["code"][0], "redirect_uri": redirect, "client_id": "viewer",
            "code_verifier": verifier})
        assert t.status_code == 200, t.text
        return t.json()["access_token"]

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=20)
        self.log.close()


class World:
    def __init__(self, server, tmp: Path, port: int, studies: dict[str, str]):
        self.server = server
        self.tmp = tmp
        self.port = port
        self.studies = studies
        self.keys = tmp / "k1.json"
        self.provider: Provider | None = None

    def studies_seen(self, token: str) -> set[str] | int:
        r = requests.get(self.server.dicomweb + "/studies", headers={"Authorization": f"Bearer {token}"},
                         params={"PatientID": dicomgen.PATIENT_ID_PREFIX + "OIDC-*"}, timeout=60)
        if r.status_code == 204:
            return set()
        if r.status_code != 200:
            return r.status_code
        return {helpers.value(d, "0020000D") for d in r.json()}

    def sign(self, claims: dict, alg: str = "RS256", keys: Path | None = None, header: dict | None = None) -> str:
        return oidc("sign", str(keys or self.keys), alg, json.dumps(header or {"typ": "at+jwt"}), json.dumps(claims))

    def claims(self, **changes) -> dict:
        now = int(time.time())
        c = {"iss": self.provider.issuer, "aud": AUDIENCE, "sub": "tester", "iat": now, "exp": now + 300,
             "scope": "system/ImagingStudy.read", "tenants": ["hug"]}
        c.update(changes)
        return {k: v for k, v in c.items() if v is not None}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("oidc")
    port = helpers.free_port()
    oidc("keygen", str(tmp / "k1.json"), "k1")
    provider = Provider(tmp, port, tmp / "k1.json")
    config = tmp / "vna.toml"
    config.write_text(
        "version = 1\n"
        '[auth]\nanonymous = "off"\n'
        f'[auth.oidc]\nissuer = "http://127.0.0.1:{port}"\naudience = "{AUDIENCE}"\ntenant_claim = "tenants"\n'
        '[[tenancy.rules]]\ntenant = "hug/radiology"\ncalling_ae = "CT_A"\n'
        '[[tenancy.rules]]\ntenant = "chuv"\ncalling_ae = "CT_B"\n')
    pool = ServerPool(tmp / "servers")
    srv = pool.start("sqlite", name="oidc", args=["--config", str(config)])
    studies = {}
    for label, ae_title in (("hug", "CT_A"), ("chuv", "CT_B")):
        insts = dicomgen.ct_study(series_count=1, instances_per_series=1, patient_id=dicomgen.PATIENT_ID_PREFIX + f"OIDC-{label}")
        ae = AE(ae_title=ae_title)
        ae.add_requested_context(CTImageStorage, [EXPLICIT])
        assoc = ae.associate("127.0.0.1", srv.dimse_port, ae_title="VNA")
        assert assoc.is_established
        try:
            assert assoc.send_c_store(insts[0].reread()).Status == 0
        finally:
            assoc.release()
        studies[label] = insts[0].study_uid
    w = World(srv, tmp, port, studies)
    w.provider = provider
    yield w
    if w.provider is not None:
        w.provider.stop()
    pool.close()


def test_provider_tokens_open_their_tenant_only(world):
    hug = world.provider.token("epr-hug", "system/ImagingStudy.read")
    assert world.studies_seen(hug) == {world.studies["hug"]}
    chuv = world.provider.token("epr-chuv", "system/ImagingStudy.rs")
    assert world.studies_seen(chuv) == {world.studies["chuv"]}
    # No tenants claim while the configuration names one: nothing is visible.
    assert world.studies_seen(world.provider.token("epr-all", "system/ImagingStudy.read")) == set()


def test_a_browser_user_signed_in_with_pkce_sees_its_tenant_and_is_audited_as_a_person(world):
    token = world.provider.viewer_login("hug-alice")
    assert world.studies_seen(token) == {world.studies["hug"]}
    assert world.studies_seen(world.provider.viewer_login("bob")) == set(), "no tenant claim: nothing"
    machine = world.provider.token("epr-hug", "system/ImagingStudy.read")
    assert world.studies_seen(machine) == {world.studies["hug"]}
    auditor = world.provider.token("epr-all", "vna.audit")
    r = requests.get(world.server.base_url + "/admin/audit", params={"limit": "1000"}, timeout=60,
                     headers={"Authorization": f"Bearer {auditor}"})
    assert r.status_code == 200, r.text[:300]
    kinds = {(e["user"], e["userKind"]) for e in r.json()["events"] if e["eventId"] == "110112"}
    assert ("user:hug-alice", "user") in kinds and ("client:epr-hug", "application") in kinds, kinds


def test_wrong_audience_and_missing_scope(world):
    other = world.provider.token("epr-hug", "system/ImagingStudy.read", resource="urn:other")
    r = requests.get(world.server.dicomweb + "/studies", headers={"Authorization": f"Bearer {other}"}, timeout=60)
    assert r.status_code == 401 and 'error="invalid_token"' in r.headers["WWW-Authenticate"]
    admin_only = world.provider.token("epr-hug", "vna.admin")
    assert world.studies_seen(admin_only) == 403


def test_hostile_tokens_are_refused(world):
    # The signer's own well-formed token passes: each case below differs from it in one defect.
    assert world.studies_seen(world.sign(world.claims())) == {world.studies["hug"]}
    now = int(time.time())
    cases = {
        "another issuer": world.sign(world.claims(iss="http://127.0.0.1:1")),
        "another audience": world.sign(world.claims(aud="vna-other")),
        "expired": world.sign(world.claims(iat=now - 7200, exp=now - 3600)),
        "not yet valid": world.sign(world.claims(nbf=now + 3600)),
        "no exp": world.sign(world.claims(exp=None)),
        "alg none": world.sign(world.claims(), alg="none"),
        "hmac with the public key": world.sign(world.claims(), alg="HS256"),
    }
    oidc("keygen", str(world.tmp / "stranger.json"), "k1")
    cases["a key of the same kid not in the JWKS"] = world.sign(world.claims(), keys=world.tmp / "stranger.json")
    for what, token in cases.items():
        assert world.studies_seen(token) == 401, what


def dimse_studies_seen(world, token: bytes) -> set[str] | str:
    """A C-FIND over an association whose user identity is `token` (PS3.7 §D.3.3.7, type 5)."""
    item = UserIdentityNegotiation()
    item.user_identity_type = 5
    item.primary_field = token
    ae = AE(ae_title="WORKSTATION")
    ae.add_requested_context(STUDY_ROOT_FIND)
    assoc = ae.associate("127.0.0.1", world.server.dimse_port, ae_title="VNA", ext_neg=[item])
    if not assoc.is_established:
        return "rejected"
    try:
        q = Dataset()
        q.QueryRetrieveLevel = "STUDY"
        q.StudyInstanceUID = ""
        q.PatientID = dicomgen.PATIENT_ID_PREFIX + "OIDC-*"
        found = {str(i.StudyInstanceUID) for s, i in assoc.send_c_find(q, STUDY_ROOT_FIND) if s and s.Status in (0xFF00, 0xFF01)}
        return found
    finally:
        assoc.release()


def test_a_provider_token_over_dimse_user_identity(world):
    """The same access token as over HTTP, in a DIMSE User Identity sub-item: the association's
    user sees its tenant only; a forged token gets no association."""
    hug = world.provider.token("epr-hug", "system/ImagingStudy.read")
    assert dimse_studies_seen(world, hug.encode()) == {world.studies["hug"]}
    chuv = world.provider.token("epr-chuv", "system/ImagingStudy.rs")
    assert dimse_studies_seen(world, chuv.encode()) == {world.studies["chuv"]}
    assert dimse_studies_seen(world, world.sign(world.claims(aud="vna-other")).encode()) == "rejected"
    assert dimse_studies_seen(world, world.sign(world.claims(), alg="none").encode()) == "rejected"


def test_key_rotation_needs_no_restart(world):
    assert world.studies_seen(world.provider.token("epr-hug", "system/ImagingStudy.read")) == {world.studies["hug"]}
    world.provider.stop()
    oidc("keygen", str(world.tmp / "k2.json"), "k2")
    world.provider = Provider(world.tmp, world.port, world.tmp / "k2.json")
    token = world.provider.token("epr-hug", "system/ImagingStudy.read")
    # An unknown kid refetches the key set at most every 30 s (vna_auth::KEY_REFETCH_INTERVAL),
    # so that forged kids cannot make the archive hammer the provider: wait that out once.
    time.sleep(31)
    assert world.studies_seen(token) == {world.studies["hug"]}, "the new key was fetched"
