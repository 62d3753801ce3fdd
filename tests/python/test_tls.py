"""TLS on HTTP (issue 14): rustls with a certificate and key from files (made here with openssl,
signed by a test CA, for 127.0.0.1): a client that trusts the CA is served, over TLS 1.2 or
1.3 only; plain HTTP on the TLS port gets nothing; URLs in responses are https; a new
certificate written over the files is served to new connections without a restart."""

from __future__ import annotations

import hashlib
import re
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest
import requests

import dicomgen
import helpers
from conftest import vna_bin

READY = re.compile(r"^vna ready: http=(https://127\.0\.0\.1:(\d+)) dimse=")


def openssl(*args: str, cwd: Path) -> None:
    r = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def make_cert(d: Path, name: str) -> None:
    """`name`.pem / `name`.key: a certificate for 127.0.0.1 signed by the test CA in `d`."""
    openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}",
            cwd=d)
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
            "-extfile", "ext.cnf", "-out", f"{name}.pem", cwd=d)


def served_cert(port: int, ca: Path) -> bytes:
    ctx = ssl.create_default_context(cafile=str(ca))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
        return s.getpeercert(binary_form=True)


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=vna test CA", cwd=d)
    make_cert(d, "first")
    (d / "server.pem").write_bytes((d / "first.pem").read_bytes())
    (d / "server.key").write_bytes((d / "first.key").read_bytes())
    (d / "vna.toml").write_text(f'version = 1\n[http]\ntls_cert_file = "{d}/server.pem"\ntls_key_file = "{d}/server.key"\n')
    log = open(d / "vna.log", "wb")
    proc = subprocess.Popen([vna_bin(), "--config", str(d / "vna.toml"), "serve", "--data-dir", str(d / "data"),
                             "--http-listen", "127.0.0.1:0", "--dimse-listen", "127.0.0.1:0"],
                            stdout=subprocess.PIPE, stderr=log, text=True)
    line = proc.stdout.readline()
    m = READY.match(line.strip())
    assert m, f"no https ready line: {line!r}\n{(d / 'vna.log').read_text()[-2000:]}"
    yield d, m.group(1), int(m.group(2))
    proc.terminate()
    proc.wait(timeout=30)
    log.close()


def test_served_over_tls_only(tls_server):
    d, base, port = tls_server
    ca = str(d / "ca.pem")
    inst = dicomgen.ct_study(series_count=1, instances_per_series=1, patient_id=dicomgen.PATIENT_ID_PREFIX + "TLS")[0]
    body, boundary = helpers.multipart_body([("application/dicom", inst.data)])
    r = requests.post(base + "/dicom-web/studies", data=body, verify=ca, timeout=60,
                      headers={"Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
                               "Accept": "application/dicom+json"})
    assert r.status_code == 200, r.text[:300]
    r = requests.get(base + "/dicom-web/studies", params={"StudyInstanceUID": inst.study_uid}, verify=ca, timeout=60)
    assert r.status_code == 200
    assert helpers.value(r.json()[0], "00081190").startswith(f"https://127.0.0.1:{port}/"), "RetrieveURL is https"
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(base + "/dicom-web/studies", timeout=10)  # the test CA is not trusted by default
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/dicom-web/studies", timeout=10)
    old = ssl.create_default_context(cafile=ca)
    old.minimum_version = ssl.TLSVersion.TLSv1
    old.maximum_version = ssl.TLSVersion.TLSv1_1
    old.set_ciphers("ALL:@SECLEVEL=0")
    with pytest.raises((ssl.SSLError, OSError)):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, old.wrap_socket(raw, server_hostname="127.0.0.1"):
            pass


def test_a_new_certificate_is_served_without_restart(tls_server):
    d, base, port = tls_server
    ca = d / "ca.pem"
    first = served_cert(port, ca)
    make_cert(d, "second")
    (d / "server.key").write_bytes((d / "second.key").read_bytes())
    (d / "server.pem").write_bytes((d / "second.pem").read_bytes())
    second = ssl.PEM_cert_to_DER_cert((d / "second.pem").read_text())
    deadline = time.monotonic() + 30
    while served_cert(port, ca) != second:
        assert time.monotonic() < deadline, "the new certificate was not picked up within 30 s"
        time.sleep(0.5)
    assert hashlib.sha256(first).digest() != hashlib.sha256(second).digest()
    assert requests.get(base + "/dicom-web/studies", verify=str(ca), timeout=60).status_code in (200, 204)
