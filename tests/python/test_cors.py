"""CORS for a viewer or a patient record served from another origin (issue 18).

A browser asks first (a preflight `OPTIONS` with `Origin`, `Access-Control-Request-Method` and
`-Headers`, and no credentials), then sends the request with its bearer token and reads only
the response headers it was allowed to. The requests here are made with urllib, as a browser
makes them: without the API key the suite's `requests` add in secure mode, so a preflight that
needed a credential would fail here as it fails in a browser. (A real browser on another origin
drives the bundled viewer in a later test of issue 18.)
"""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

import dicomgen

VIEWER = "http://viewer.example:3000"


def call(url: str, method: str = "GET", headers: dict[str, str] | None = None) -> tuple[int, dict[str, str]]:
    req = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            resp.read()
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}


def preflight(base: str, path: str, origin: str, method: str = "GET", headers: str = "authorization, accept") -> tuple[int, dict]:
    return call(base + path, "OPTIONS", {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": headers,
    })


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    from conftest import ServerPool
    pool = ServerPool(tmp_path_factory.mktemp("cors"))
    listed = pool.start("sqlite", name="cors-listed", env={"VNA__HTTP__CORS_ORIGINS": f'["{VIEWER}"]'})
    anyone = pool.start("sqlite", name="cors-any", env={"VNA__HTTP__CORS_ORIGINS": '["*"]'})
    none = pool.start("sqlite", name="cors-none")
    study = dicomgen.ct_study(series_count=1, instances_per_series=1, patient_id=dicomgen.PATIENT_ID_PREFIX + "CORS")
    listed.client().store_instances([i.reread() for i in study])
    yield listed, anyone, none, study
    pool.close()


@pytest.mark.parametrize("path", ["/dicom-web/studies", "/fhir/ImagingStudy", "/dicom-web/studies/1.2.3/metadata"])
def test_a_listed_origin_is_allowed_the_bearer_token_and_accept(servers, path):
    listed = servers[0]
    status, h = preflight(listed.base_url, path, VIEWER)
    assert status in (200, 204), (status, h)
    assert h["access-control-allow-origin"] == VIEWER
    allowed = {x.strip().lower() for x in h["access-control-allow-headers"].split(",")}
    assert {"authorization", "accept"} <= allowed, allowed
    assert "GET" in h["access-control-allow-methods"]
    assert "origin" in h.get("vary", "").lower(), "the answer depends on the origin: caches must know"


def test_the_response_names_the_origin_and_exposes_what_a_viewer_reads(servers):
    listed, _, _, study = servers
    status, h = preflight(listed.base_url, "/dicom-web/studies", VIEWER, "POST", "authorization, content-type")
    assert status in (200, 204) and "POST" in h["access-control-allow-methods"]
    # The request itself (in secure mode it is 401 without a credential: the header is there all
    # the same, so the page can read why).
    status, h = call(listed.dicomweb + f"/studies?StudyInstanceUID={study[0].study_uid}",
                     headers={"Origin": VIEWER, "Accept": "application/dicom+json"})
    assert status in (200, 401), status
    assert h["access-control-allow-origin"] == VIEWER
    exposed = {x.strip().lower() for x in h["access-control-expose-headers"].split(",")}
    assert {"content-range", "etag", "warning", "www-authenticate"} <= exposed, exposed


def test_another_origin_gets_no_permission(servers):
    listed = servers[0]
    status, h = preflight(listed.base_url, "/dicom-web/studies", "http://evil.example")
    assert "access-control-allow-origin" not in h, h
    status, h = call(listed.dicomweb + "/studies", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in h, h


def test_star_allows_any_origin_and_none_is_same_origin_only(servers):
    _, anyone, none, _ = servers
    status, h = preflight(anyone.base_url, "/dicom-web/studies", "http://elsewhere.example:8000")
    assert status in (200, 204) and h["access-control-allow-origin"] == "*"
    assert "authorization" in h["access-control-allow-headers"].lower()
    assert "access-control-allow-credentials" not in h, "bearer tokens, not cookies: no credentials mode"
    status, h = preflight(none.base_url, "/dicom-web/studies", VIEWER)
    assert "access-control-allow-origin" not in h, "no origins configured: the browser refuses the call"
