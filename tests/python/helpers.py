"""Plain-HTTP helpers for the DICOMweb end-to-end tests (PS3.18)."""

from __future__ import annotations

import io
import re
import socket
import time
import uuid

import pydicom
import requests

TIMEOUT = 60


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now (for a peer the test starts)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
DICOM_JSON = "application/dicom+json"

# PS3.18 store-instances response attributes
REFERENCED_SOP_SEQUENCE = "00081199"
FAILED_SOP_SEQUENCE = "00081198"
REFERENCED_SOP_CLASS_UID = "00081150"
REFERENCED_SOP_INSTANCE_UID = "00081155"
RETRIEVE_URL = "00081190"
FAILURE_REASON = "00081197"

# Accept header asking for the stored transfer syntax, whatever it is.
ACCEPT_DICOM_ANY_TS = 'multipart/related; type="application/dicom"; transfer-syntax=*'


def client_encoding(ds: pydicom.Dataset) -> bytes:
    """The bytes dicomweb-client's store_instances sends for `ds`."""
    b = io.BytesIO()
    pydicom.dcmwrite(b, ds)
    return b.getvalue()


def multipart_body(parts: list[tuple[str, bytes]], boundary: str | None = None) -> tuple[bytes, str]:
    """Encode (content type, bytes) parts as multipart/related; returns (body, boundary)."""
    boundary = boundary or "vna-e2e-" + uuid.uuid4().hex
    out = io.BytesIO()
    for ctype, data in parts:
        out.write(f"--{boundary}\r\nContent-Type: {ctype}\r\n\r\n".encode())
        out.write(data)
        out.write(b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), boundary


def stow(base: str, datas: list[bytes] | None = None, *, parts: list[tuple[str, bytes]] | None = None,
         study_uid: str | None = None, content_type: str | None = None, body: bytes | None = None,
         session: requests.Session | None = None) -> requests.Response:
    """POST {base}/studies[/{study_uid}] with the given DICOM files (or raw parts/body)."""
    if parts is None:
        parts = [("application/dicom", d) for d in (datas or [])]
    if body is None:
        body, boundary = multipart_body(parts)
        content_type = content_type or f'multipart/related; type="application/dicom"; boundary={boundary}'
    url = f"{base}/studies" + (f"/{study_uid}" if study_uid else "")
    headers = {"Accept": DICOM_JSON}
    if content_type is not None:
        headers["Content-Type"] = content_type
    return (session or requests).post(url, data=body, headers=headers, timeout=TIMEOUT)


def values(obj: dict, tag: str) -> list:
    """The Value array of `tag` in a DICOM JSON object ([] when absent/empty)."""
    el = obj.get(tag)
    if not el:
        return []
    return el.get("Value", [])


def value(obj: dict, tag: str):
    v = values(obj, tag)
    return v[0] if v else None


def stow_json(resp: requests.Response) -> dict:
    """The PS3.18 store-instances response body, checked for its media type."""
    ctype = resp.headers.get("Content-Type", "")
    assert ctype.split(";")[0].strip() in (DICOM_JSON, "application/json"), \
        f"STOW response Content-Type {ctype!r}, body {resp.text[:500]!r}"
    body = resp.json()
    if isinstance(body, list):  # some servers wrap the data set in an array
        assert len(body) == 1
        body = body[0]
    return body


def referenced(resp_json: dict) -> dict[str, dict]:
    """ReferencedSOPSequence items keyed by ReferencedSOPInstanceUID."""
    return {value(it, REFERENCED_SOP_INSTANCE_UID): it for it in values(resp_json, REFERENCED_SOP_SEQUENCE)}


def failed(resp_json: dict) -> list[dict]:
    return values(resp_json, FAILED_SOP_SEQUENCE)


def assert_failed_items_have_reason(resp_json: dict, expected_count: int) -> list[dict]:
    items = failed(resp_json)
    assert len(items) == expected_count, f"FailedSOPSequence: {items}"
    for it in items:
        reason = value(it, FAILURE_REASON)
        assert isinstance(reason, int) and reason > 0, f"FailedSOPSequence item without FailureReason: {it}"
    return items


def parse_multipart(resp: requests.Response) -> list[tuple[dict[str, str], bytes]]:
    """Split a multipart/related response into (headers, body) parts."""
    ctype = resp.headers.get("Content-Type", "")
    assert ctype.lower().startswith("multipart/related"), f"not multipart: {ctype!r}"
    m = re.search(r'boundary="?([^";]+)"?', ctype, re.I)
    assert m, f"no boundary in {ctype!r}"
    delim = b"--" + m.group(1).encode()
    body = resp.content
    chunks = body.split(delim)
    # chunks[0] is the preamble; the last is the epilogue starting with "--"
    assert len(chunks) >= 2 and chunks[-1].startswith(b"--"), "multipart body not terminated"
    out = []
    for chunk in chunks[1:-1]:
        assert chunk.startswith(b"\r\n"), "malformed part"
        head, sep, data = chunk[2:].partition(b"\r\n\r\n")
        assert sep, "part without header terminator"
        assert data.endswith(b"\r\n"), "part body not followed by CRLF"
        headers = {}
        for line in head.decode("latin-1").split("\r\n"):
            if line:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
        out.append((headers, data[:-2]))
    return out


def retrieve_raw(url: str, accept: str = ACCEPT_DICOM_ANY_TS) -> list[bytes]:
    """GET a WADO-RS resource and return the bytes of every part."""
    r = requests.get(url, headers={"Accept": accept}, timeout=TIMEOUT)
    assert r.status_code == 200, f"GET {url}: {r.status_code} {r.text[:300]}"
    parts = parse_multipart(r)
    for headers, _ in parts:
        assert headers.get("content-type", "").startswith(accept.split('type="')[1].split('"')[0]), headers
    return [data for _, data in parts]


def instance_url(base: str, st: str, se: str, sop: str) -> str:
    return f"{base}/studies/{st}/series/{se}/instances/{sop}"


def qido(base: str, path: str, params: dict | None = None) -> tuple[int, list[dict]]:
    """GET a QIDO-RS resource; returns (status, results) with [] for 204."""
    r = requests.get(f"{base}/{path.lstrip('/')}", params=params or {},
                     headers={"Accept": DICOM_JSON}, timeout=TIMEOUT)
    if r.status_code == 204:
        assert not r.content, "204 with a body"
        return 204, []
    assert r.status_code == 200, f"QIDO {path} {params}: {r.status_code} {r.text[:300]}"
    assert r.headers.get("Content-Type", "").startswith(DICOM_JSON), r.headers.get("Content-Type")
    body = r.json()
    assert isinstance(body, list)
    return 200, body


def assert_nothing_stored(base: str) -> None:
    """Nothing at all is visible through QIDO."""
    for level in ("studies", "series", "instances"):
        status, results = qido(base, level)
        assert status == 204 and results == [], f"{level} not empty after a rejected STOW: {results}"


def assert_still_serving(base: str) -> None:
    """The server answers and still stores a valid instance."""
    import dicomgen  # local import: helpers stays importable without numpy users

    inst = dicomgen.implicit_vr_sc(patient_id=dicomgen.PATIENT_ID_PREFIX + "ALIVE")
    r = stow(base, [inst.data])
    assert r.status_code == 200, f"valid STOW after a rejected one: {r.status_code} {r.text[:300]}"
    status, results = qido(base, "instances", {"SOPInstanceUID": inst.sop_uid})
    assert status == 200 and len(results) == 1
    got = retrieve_raw(instance_url(base, inst.study_uid, inst.series_uid, inst.sop_uid))
    assert got == [inst.data]


def collecting_store_handler(into: list):
    """A pynetdicom EVT_C_STORE handler that keeps (accepted transfer syntax, data set with its
    file meta) of every sub-operation received in `into`, and answers Success."""
    def on_store(event):
        ds = event.dataset
        ds.file_meta = event.file_meta
        into.append((str(event.context.transfer_syntax), ds))
        return 0x0000
    return on_store


def finished_job(job_url: str, timeout_s: float = 120) -> dict:
    """Follows an archive job (`GET /admin/jobs/{id}`) until it is no longer queued or running."""
    deadline = time.monotonic() + timeout_s
    while (job := requests.get(job_url, timeout=30).json())["state"] in ("queued", "running"):
        assert time.monotonic() < deadline, f"the server's runner did not finish the job: {job}"
        time.sleep(0.2)
    return job


def kill_when_done(base_url: str, proc, done: int, timeout_s: float = 60) -> dict:
    """kill -9 of `proc` (a `vna lifecycle apply`) once the newest job of the server at
    `base_url` has recorded `done` objects; returns that job as the dead run left it."""
    deadline = time.monotonic() + timeout_s
    while True:
        jobs = requests.get(f"{base_url}/admin/jobs", timeout=30).json()
        if jobs and jobs[0]["progress"]["done"] >= done:
            break
        assert proc.poll() is None and time.monotonic() < deadline, f"the apply ended before it could be killed: {jobs}"
        time.sleep(0.05)
    proc.kill()
    proc.wait(timeout=30)
    return requests.get(f"{base_url}/admin/jobs", timeout=30).json()[0]
