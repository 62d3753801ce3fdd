"""DICOM TLS on the DIMSE listener (issue 14; PS3.15 Annex B, BCP 195), with real clients:
dcmtk's echoscu, storescu and findscu with `+tls` (its movescu has no TLS options), and pynetdicom
over Python's ssl.

Certificates are made here with openssl: a test CA, the archive's certificate for 127.0.0.1,
client certificates for two modalities, and one from a CA nobody trusts. The archive asks for
client certificates (verified against the test CA) without requiring them, and binds STORESCU's
title to its certificate:

- dcmtk over TLS echoes, stores, finds and moves; plain DICOM on the TLS port gets no association;
- STORESCU without a certificate, or with another valid certificate, is refused 0x0124 (its title
  is not enough); a certificate of an unknown CA fails the handshake;
- C-MOVE reaches a destination marked `tls` over TLS (the destination requires our client
  certificate, signed by the same CA) and a plain destination over TCP.
"""

from __future__ import annotations

import hashlib
import re
import ssl
import subprocess
from pathlib import Path

import pydicom
import pytest
from pynetdicom import AE, evt
from pydicom.dataset import Dataset
from pynetdicom.sop_class import CTImageStorage, StudyRootQueryRetrieveInformationModelMove as STUDY_ROOT_MOVE

import dicomgen
import helpers
from conftest import ServerPool

EXPLICIT = "1.2.840.10008.1.2.1"
NOT_AUTHORIZED = 0x0124


def openssl(*args: str, cwd: Path) -> None:
    r = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def make_ca(d: Path, name: str) -> None:
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2",
            "-subj", f"/CN={name}", cwd=d)


def make_cert(d: Path, name: str, ca: str = "ca") -> None:
    """`name`.pem / `name`.key signed by `ca`, for 127.0.0.1, usable by servers and clients."""
    openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}",
            cwd=d)
    (d / f"{name}.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n")
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key", "-CAcreateserial", "-days", "2",
            "-extfile", f"{name}.cnf", "-out", f"{name}.pem", cwd=d)


def fingerprint(pem: Path) -> str:
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem.read_text())).hexdigest()


def client_context(d: Path, cert: str | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(d / "ca.pem"))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert is not None:
        ctx.load_cert_chain(str(d / f"{cert}.pem"), str(d / f"{cert}.key"))
    return ctx


class Destination:
    """A pynetdicom storage SCP, over TLS (requiring a client certificate of the test CA) or not."""

    def __init__(self, d: Path, ae_title: str, tls: bool):
        self.port = helpers.free_port()
        self.received: list = []
        self.ae = AE(ae_title=ae_title)
        self.ae.add_supported_context(CTImageStorage, [EXPLICIT, "1.2.840.10008.1.2"])
        ctx = None
        if tls:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(d / "ca.pem"))
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_cert_chain(str(d / "dest.pem"), str(d / "dest.key"))
        self.server = self.ae.start_server(("127.0.0.1", self.port), block=False, ssl_context=ctx,
                                           evt_handlers=[(evt.EVT_C_STORE, helpers.collecting_store_handler(self.received))])

    def stop(self) -> None:
        self.server.shutdown()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp("dimse-tls")
    make_ca(d, "ca")
    make_ca(d, "rogue-ca")
    for name in ("server", "storescu", "other", "dest"):
        make_cert(d, name)
    make_cert(d, "rogue", ca="rogue-ca")
    secure = Destination(d, "SECURE_DEST", tls=True)
    plain = Destination(d, "PLAIN_DEST", tls=False)
    (d / "vna.toml").write_text(f"""version = 1
[dimse]
allow_any_calling_ae = false
tls_cert_file = "{d}/server.pem"
tls_key_file = "{d}/server.key"
tls_ca_file = "{d}/ca.pem"

[[dimse.known_aes]]
ae_title = "STORESCU"
host = "127.0.0.1"
port = 1
tls_certificate_sha256 = "{fingerprint(d / 'storescu.pem')}"

[[dimse.known_aes]]
ae_title = "FINDSCU"
host = "127.0.0.1"
port = 1

[[dimse.known_aes]]
ae_title = "SECURE_DEST"
host = "127.0.0.1"
port = {secure.port}
tls = true

[[dimse.known_aes]]
ae_title = "PLAIN_DEST"
host = "127.0.0.1"
port = {plain.port}
""")
    pool = ServerPool(d / "servers")
    try:
        srv = pool.start("sqlite", name="dimse-tls", args=["--config", str(d / "vna.toml")])
        yield d, srv, secure, plain
    finally:
        pool.close()
        secure.stop()
        plain.stop()


def dcmtk(tool: str, d: Path, port: int, *args: str, cert: str | None = "storescu", ae: str = "STORESCU",
          cwd: Path | None = None, files: list[str] = ()) -> subprocess.CompletedProcess:
    tls = ["+tls", str(d / f"{cert}.key"), str(d / f"{cert}.pem"), "-pw"] if cert else ["+tla"]
    cmd = [f"/usr/bin/{tool}", *tls, "+cf", str(d / "ca.pem"), "-aet", ae, "-aec", "VNA", *args, "127.0.0.1", str(port),
           *files]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=cwd)


def pynet_store(d: Path, port: int, ae_title: str, cert: str | None, inst) -> int | str:
    """The C-STORE status, or why there was no association."""
    ae = AE(ae_title=ae_title)
    ae.add_requested_context(CTImageStorage, [EXPLICIT])
    try:
        assoc = ae.associate("127.0.0.1", port, ae_title="VNA", tls_args=(client_context(d, cert), "127.0.0.1"))
    except (ssl.SSLError, OSError) as e:
        return f"no association: {e}"
    if not assoc.is_established:
        return "no association"
    try:
        return assoc.send_c_store(inst.reread()).Status
    finally:
        assoc.release()


def pynet_move(d: Path, port: int, destination: str, study: str) -> int:
    """A study-level C-MOVE over TLS (dcmtk 3.6.7's movescu has no TLS options); the final status."""
    ae = AE(ae_title="FINDSCU")
    ae.add_requested_context(STUDY_ROOT_MOVE)
    assoc = ae.associate("127.0.0.1", port, ae_title="VNA", tls_args=(client_context(d, "other"), "127.0.0.1"))
    assert assoc.is_established
    try:
        query = Dataset()
        query.QueryRetrieveLevel = "STUDY"
        query.StudyInstanceUID = study
        statuses = [s.Status for s, _ in assoc.send_c_move(query, destination, STUDY_ROOT_MOVE) if s]
        return statuses[-1]
    finally:
        assoc.release()


def test_dcmtk_echo_and_store_over_tls_and_plain_dicom_refused(world, tmp_path):
    d, srv, _, _ = world
    r = dcmtk("echoscu", d, srv.dimse_port)
    assert r.returncode == 0, r.stdout + r.stderr
    plain = subprocess.run(["/usr/bin/echoscu", "-aet", "STORESCU", "-aec", "VNA", "127.0.0.1", str(srv.dimse_port)],
                           capture_output=True, text=True, timeout=60)
    assert plain.returncode != 0, "plain DICOM on the TLS port must get no association"
    insts = dicomgen.ct_study(series_count=1, instances_per_series=2, patient_id=dicomgen.PATIENT_ID_PREFIX + "DTLS1")
    files = []
    for i, inst in enumerate(insts):
        p = tmp_path / f"{i}.dcm"
        p.write_bytes(inst.data)
        files.append(str(p))
    r = dcmtk("storescu", d, srv.dimse_port, files=files)
    assert r.returncode == 0, r.stdout + r.stderr
    status, found = helpers.qido(srv.dicomweb, "/instances", {"StudyInstanceUID": insts[0].study_uid})
    assert status == 200 and len(found) == 2, "both instances stored over TLS"
    helpers.assert_still_serving(srv.dicomweb)


def test_a_title_bound_to_a_certificate_needs_that_certificate(world):
    d, srv, _, _ = world
    inst = dicomgen.ct_study(series_count=1, instances_per_series=1, patient_id=dicomgen.PATIENT_ID_PREFIX + "DTLS2")[0]
    assert pynet_store(d, srv.dimse_port, "STORESCU", None, inst) == NOT_AUTHORIZED, "no client certificate"
    assert pynet_store(d, srv.dimse_port, "STORESCU", "other", inst) == NOT_AUTHORIZED, "another AE's certificate"
    assert pynet_store(d, srv.dimse_port, "STORESCU", "rogue", inst) != 0, "a certificate of an unknown CA"
    assert helpers.qido(srv.dicomweb, "/instances", {"StudyInstanceUID": inst.study_uid})[1] == []
    assert pynet_store(d, srv.dimse_port, "STORESCU", "storescu", inst) == 0
    # A title not bound to a certificate may come with any or none, over TLS.
    other = dicomgen.ct_study(series_count=1, instances_per_series=1, patient_id=dicomgen.PATIENT_ID_PREFIX + "DTLS3")[0]
    assert pynet_store(d, srv.dimse_port, "FINDSCU", None, other) == 0


def test_dcmtk_find_and_move_over_tls_to_secure_and_plain_destinations(world, tmp_path):
    d, srv, secure, plain = world
    insts = dicomgen.ct_study(series_count=1, instances_per_series=3, patient_id=dicomgen.PATIENT_ID_PREFIX + "DTLS4")
    for inst in insts:
        assert pynet_store(d, srv.dimse_port, "STORESCU", "storescu", inst) == 0
    study = insts[0].study_uid
    r = dcmtk("findscu", d, srv.dimse_port, "-S", "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study}",
              "-k", "NumberOfStudyRelatedInstances", "-X", cert=None, ae="FINDSCU", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    answers = [pydicom.dcmread(p) for p in sorted(tmp_path.glob("rsp*.dcm"))]
    assert [(a.StudyInstanceUID, int(a.NumberOfStudyRelatedInstances)) for a in answers] == [(study, 3)]
    for dest in (secure, plain):
        name = "SECURE_DEST" if dest is secure else "PLAIN_DEST"
        assert pynet_move(d, srv.dimse_port, name, study) == 0
        got = sorted(ds.SOPInstanceUID for _, ds in dest.received if ds.StudyInstanceUID == study)
        assert got == sorted(i.sop_uid for i in insts), f"{name} received the study"
    log = srv.log_path.read_text()
    assert not re.search(r"c-move: cannot associate", log), log[-2000:]
