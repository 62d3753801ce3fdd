"""Fixtures that start the real `vna` binary and point real clients at it.

* ``VNA_BIN``: the server binary (scripts/test.sh sets it; defaults to
  <repo>/target/debug/vna when that exists).
* ``VNA_TEST_POSTGRES_URL``: a PostgreSQL server; each PostgreSQL-backed vna
  gets its own fresh database on it. Missing: the PostgreSQL variants fail
  under CI=true and are skipped (with the reason) otherwise.
* ``VNA_TEST_S3_ENDPOINT`` (with ``VNA_TEST_S3_ACCESS_KEY``, ``_SECRET_KEY``,
  ``_REGION``): an S3 server with Object Lock (scripts/s3-throwaway.sh). The
  ``s3`` backend is PostgreSQL plus an S3 tier on a fresh bucket (created with
  Object Lock through the AWS CLI) per server. Missing: as for PostgreSQL.

* ``VNA_TEST_SECURE=1``: every server whose test does not configure ``[auth]``
  itself runs with anonymous access off (``VNA__AUTH__ANONYMOUS=off``) and an
  API key with every scope, made with ``vna apikey create`` before it starts;
  one whose test does not configure ``[dimse]`` accepts only the calling AE
  titles of ``SUITE_AE_TITLES``, from loopback;
  every HTTP request the tests make through ``requests`` (and so
  dicomweb-client and wsidicom) to such a server carries that key, unless the
  request brings its own credentials. The suites thus run unchanged against an
  archive that lets nobody in without a credential (scripts/test.sh runs the
  DICOMweb suites a second time so).

Every server runs in its own temporary data directory (and database), on a
free port chosen by the server itself (``--http-listen 127.0.0.1:0``); its
port is read from the single ready line it prints on stdout. Its log (stderr)
goes to a file that is attached to the report of any failing test.
"""

from __future__ import annotations

import errno
import json
import os
import queue
import re
import shutil
import signal
import sys
import subprocess
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests
from dicomweb_client.api import DICOMwebClient

import dicomgen

REPO_ROOT = Path(__file__).resolve().parents[2]
READY_RE = re.compile(r"^vna ready: http=(http://127\.0\.0\.1:(\d+)) dimse=(127\.0\.0\.1:(\d+))$")
READY_TIMEOUT_S = 60
STOP_TIMEOUT_S = 15
HTTP_TIMEOUT_S = 60
BACKENDS = ["sqlite", "postgres", "s3"]

def _close_pynetdicom_pause_race() -> None:
    """Closes a race in pynetdicom's requestor (pynetdicom#875, still in 3.0.4).

    Before each request `Association.send_c_*` clears `_reactor_checkpoint` and
    spins until the reactor thread says `_is_paused`. The reactor sets
    `_is_paused = True`, waits on the checkpoint and sets it back to False, so
    the sender can read a stale True just after the reactor's wait returned;
    the reactor then takes the archive's (fast) response off the queue itself
    ("Received unexpected C-FIND service message") and the client waits out its
    DIMSE timeout for a response it has already received. The tests sent several
    requests on one association and failed so, rarely, in CI.

    Here the reactor, on leaving its pause, checks the checkpoint again: if the
    sender cleared it meanwhile (having read the stale True), the reactor pauses
    again before touching the queue. Every other write of `_is_paused = False`
    happens with the checkpoint set, so it is unchanged.
    """
    from pynetdicom.association import Association

    if isinstance(getattr(Association, "_is_paused", None), property):
        return

    def get(self) -> bool:
        return self.__dict__.get("_vna_is_paused", False)

    def set_(self, paused: bool) -> None:
        self.__dict__["_vna_is_paused"] = paused
        checkpoint = self.__dict__.get("_reactor_checkpoint")
        if paused or checkpoint is None or threading.current_thread() is not self:
            return
        while not checkpoint.is_set():
            self.__dict__["_vna_is_paused"] = True
            checkpoint.wait()
            self.__dict__["_vna_is_paused"] = False

    Association._is_paused = property(get, set_)


_close_pynetdicom_pause_race()


def _truthy(v: str | None) -> bool:
    return (v or "").strip().lower() in {"1", "true", "yes", "on"}


_RUNNING: list["VnaServer"] = []
SECURE = _truthy(os.environ.get("VNA_TEST_SECURE"))
# The calling AE titles of the suites' DIMSE clients (dcmtk's defaults, pynetdicom's, the tests'
# own): in secure mode the only ones a server accepts, from loopback.
SUITE_AE_TITLES = ["STORESCU", "FINDSCU", "MOVESCU", "GETSCU", "ECHOSCU", "MATCHSCU", "PYNETDICOM"]
# Base URL of each server started in secure mode -> its API key.
_KEYS: dict[str, str] = {}


def _with_key(request):
    """Wraps `requests.Session.request`: a request to a secured server gets its API key."""
    def wrapped(self, method, url, *args, **kwargs):
        key = next((k for base, k in _KEYS.items() if str(url).startswith(base + "/")), None)
        if key is not None:
            headers = dict(kwargs.get("headers") or {})
            given = {h.lower() for h in headers} | {h.lower() for h in (self.headers or {})}
            params = kwargs.get("params") or {}
            if "authorization" not in given and "link=" not in str(url) and not (isinstance(params, dict) and "link" in params):
                headers["Authorization"] = f"Bearer {key}"
                kwargs["headers"] = headers
        return request(self, method, url, *args, **kwargs)
    return wrapped


if SECURE:
    requests.Session.request = _with_key(requests.Session.request)


def vna_bin() -> str:
    b = os.environ.get("VNA_BIN")
    if not b:
        default = REPO_ROOT / "target" / "debug" / "vna"
        if default.exists():
            return str(default)
        pytest.fail("VNA_BIN is not set and target/debug/vna does not exist: "
                    "run ./scripts/test.sh, or cargo build and export VNA_BIN", pytrace=False)
    if not (os.path.isfile(b) and os.access(b, os.X_OK)):
        pytest.fail(f"VNA_BIN={b} is not an executable file", pytrace=False)
    return b


def postgres_admin_url() -> str:
    url = os.environ.get("VNA_TEST_POSTGRES_URL")
    if url:
        return url
    msg = ("VNA_TEST_POSTGRES_URL is not set: PostgreSQL-backed variant cannot run "
           "(./scripts/test.sh starts a throw-away cluster; or run scripts/pg-throwaway.sh start "
           "and export VNA_TEST_POSTGRES_URL=$(scripts/pg-throwaway.sh url))")
    if _truthy(os.environ.get("CI")):
        pytest.fail(msg + " [CI=true: failing instead of skipping]", pytrace=False)
    pytest.skip("SKIPPED LOUDLY: " + msg)


def _psql() -> str:
    for p in (shutil.which("psql"), "/usr/bin/psql"):
        if p and os.path.exists(p):
            return p
    pytest.fail("psql not found (apt-get install postgresql-client); needed to create test databases",
                pytrace=False)


def _with_db(url: str, db: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + db, parts.query, parts.fragment))


def _run_psql(admin_url: str, sql: str) -> None:
    r = subprocess.run([_psql(), admin_url, "-v", "ON_ERROR_STOP=1", "-qAtc", sql],
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f"psql failed ({sql}): {r.stderr.strip()}")


def s3_env() -> dict[str, str]:
    keys = ["VNA_TEST_S3_ENDPOINT", "VNA_TEST_S3_ACCESS_KEY", "VNA_TEST_S3_SECRET_KEY"]
    if all(os.environ.get(k) for k in keys):
        return {k: os.environ[k] for k in keys} | {"VNA_TEST_S3_REGION": os.environ.get("VNA_TEST_S3_REGION", "us-east-1")}
    msg = ("VNA_TEST_S3_ENDPOINT/ACCESS_KEY/SECRET_KEY are not set: S3-backed variant cannot run "
           "(./scripts/test.sh starts a Ceph RGW; or `set -a; eval \"$(scripts/s3-throwaway.sh start)\"; set +a`)")
    if _truthy(os.environ.get("CI")):
        pytest.fail(msg + " [CI=true: failing instead of skipping]", pytrace=False)
    pytest.skip("SKIPPED LOUDLY: " + msg)


def aws(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Runs the AWS CLI (from the test venv) against the test S3 server."""
    e = s3_env()
    venv_aws = Path(sys.executable).parent / "aws"
    exe = str(venv_aws) if venv_aws.exists() else (shutil.which("aws") or "aws")
    env = dict(os.environ, AWS_ACCESS_KEY_ID=e["VNA_TEST_S3_ACCESS_KEY"], AWS_SECRET_ACCESS_KEY=e["VNA_TEST_S3_SECRET_KEY"],
               AWS_DEFAULT_REGION=e["VNA_TEST_S3_REGION"], AWS_EC2_METADATA_DISABLED="true")
    r = subprocess.run([exe, "--endpoint-url", e["VNA_TEST_S3_ENDPOINT"], *args], capture_output=True, text=True,
                       timeout=120, env=env)
    if check and r.returncode != 0:
        raise RuntimeError(f"aws {' '.join(args)} failed ({r.returncode}): {r.stderr.strip()}")
    return r


class S3Bucket:
    """A fresh bucket with Object Lock (and so versioning) on the test S3 server."""

    def __init__(self, workdir: Path):
        self.env = s3_env()
        self.name = "vna-e2e-" + uuid.uuid4().hex[:16]
        aws("s3api", "create-bucket", "--bucket", self.name, "--object-lock-enabled-for-bucket")
        workdir.mkdir(parents=True, exist_ok=True)
        self.secret_file = workdir / "s3-secret"
        self.secret_file.write_text(self.env["VNA_TEST_S3_SECRET_KEY"] + "\n")
        self.secret_file.chmod(0o600)

    def _list(self, what: str, field: str) -> list[str]:
        r = aws("s3api", what, "--bucket", self.name, "--output", "json")
        if not r.stdout.strip():
            return []
        return [u.get("Key", "") + " " + (u.get("UploadId") or u.get("VersionId") or "")
                for u in json.loads(r.stdout).get(field) or []]

    def uploads(self) -> list[str]:
        return self._list("list-multipart-uploads", "Uploads")

    def versions(self) -> list[str]:
        return self._list("list-object-versions", "Versions")

    def server_env(self, tier: str = "s3") -> dict[str, str]:
        p = f"VNA__STORAGE__TIERS__{tier.upper()}__"
        return {
            "VNA__STORAGE__DEFAULT_TIER": tier,
            p + "KIND": "s3",
            p + "ENDPOINT": self.env["VNA_TEST_S3_ENDPOINT"],
            p + "REGION": self.env["VNA_TEST_S3_REGION"],
            p + "BUCKET": self.name,
            p + "PREFIX": "vna/",
            p + "ACCESS_KEY_ID": self.env["VNA_TEST_S3_ACCESS_KEY"],
            p + "SECRET_ACCESS_KEY_FILE": str(self.secret_file),
            p + "OBJECT_LOCK": "true",
            # Small parts so that the multi-MB test objects take the multipart path too.
            p + "PART_SIZE_MIB": "5",
        }


class PgDatabase:
    """A fresh database on the test PostgreSQL server, dropped afterwards."""

    def __init__(self, admin_url: str):
        self.admin_url = admin_url
        self.name = "vna_e2e_" + uuid.uuid4().hex[:12]
        _run_psql(admin_url, f'CREATE DATABASE "{self.name}"')
        self.url = _with_db(admin_url, self.name)

    def drop(self) -> None:
        try:
            _run_psql(self.admin_url, f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        except Exception as e:  # never hide the test result behind a cleanup error
            print(f"warning: could not drop test database {self.name}: {e}")


class VnaServer:
    """One running `vna serve` process."""

    def __init__(self, name: str, workdir: Path, backend: str = "sqlite",
                 env: dict[str, str] | None = None, args: list[str] | None = None):
        self.name = name
        self.backend = backend
        self.workdir = workdir
        self.data_dir = workdir / "data"
        self.log_path = workdir / "vna.log"
        self.stdout_lines: list[str] = []
        self.db: PgDatabase | None = None
        self.proc: subprocess.Popen | None = None
        self.exit_code: int | None = None
        self.died_early = False

        workdir.mkdir(parents=True, exist_ok=True)
        cmd = [vna_bin(), "serve", "--data-dir", str(self.data_dir), "--http-listen", "127.0.0.1:0",
               "--dimse-listen", "127.0.0.1:0"]
        self.bucket: S3Bucket | None = None
        extra_env: dict[str, str] = {}
        if backend in ("postgres", "s3"):
            self.db = PgDatabase(postgres_admin_url())
            cmd += ["--catalog-url", self.db.url]
        elif backend != "sqlite":
            raise ValueError(backend)
        if backend == "s3":
            self.bucket = S3Bucket(workdir)
            extra_env = self.bucket.server_env()
        cmd += list(args or [])
        self.cmd = cmd

        child_env = {k: v for k, v in os.environ.items() if not k.startswith("VNA__")}
        child_env.setdefault("RUST_BACKTRACE", "1")
        child_env.update(extra_env)
        child_env.update(env or {})
        self.api_key: str | None = None
        self.known_aes_only = False
        if SECURE and not self._configures(args or [], "[dimse") and "VNA__DIMSE__KNOWN_AES" not in child_env:
            # Only the titles the suites call with, each bound to loopback.
            child_env["VNA__DIMSE__ALLOW_ANY_CALLING_AE"] = "false"
            child_env["VNA__DIMSE__KNOWN_AES"] = "[" + ", ".join(
                f'{{ ae_title = "{t}", host = "127.0.0.1", port = 104, can_store = true, can_query = true, can_retrieve = true }}'
                for t in SUITE_AE_TITLES) + "]"
            self.known_aes_only = True
        if SECURE and not self._configures(args or [], "[auth") and "VNA__AUTH__ANONYMOUS" not in child_env:
            child_env["VNA__AUTH__ANONYMOUS"] = "off"
            key_cmd = cmd[:1] + [a for a in cmd[1:] if a != "serve" and not a.endswith("-listen") and a != "127.0.0.1:0"]
            made = subprocess.run(key_cmd + ["apikey", "create", "--name", "e2e-suite", "--scope=system/ImagingStudy.cruds",
                                             "--scope=vna.admin", "--scope=vna.audit"],
                                  env=child_env, capture_output=True, text=True, timeout=120)
            if made.returncode != 0:
                raise RuntimeError(f"vna apikey create failed for the secure run: {made.stderr[-2000:]}")
            self.api_key = made.stdout.strip()
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, cwd=workdir, env=child_env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=self._log)
        _RUNNING.append(self)
        try:
            self.base_url, self.dimse_port = self._wait_ready()
        except BaseException:
            self.stop()
            raise
        self.dicomweb = self.base_url + "/dicom-web"
        if self.api_key is not None:
            _KEYS[self.base_url] = self.api_key
            # The secure run is real only if the server turns away a request without the key.
            bare = requests.get(self.dicomweb + "/studies", headers={"Authorization": ""}, timeout=HTTP_TIMEOUT_S)
            if bare.status_code != 401:
                self.stop()
                raise RuntimeError(f"secure run: a request without credentials got {bare.status_code}, not 401")
        if self.known_aes_only:
            from pynetdicom import AE
            ae = AE(ae_title="STRANGER")
            ae.add_requested_context("1.2.840.10008.1.1")
            # pynetdicom now and then reports a rejection it was sent as an abort (seen once in
            # many runs, the server's log saying it rejected the association): ask up to three
            # times. Accepted even once fails at once.
            for _ in range(3):
                assoc = ae.associate("127.0.0.1", self.dimse_port, ae_title="VNA")
                if assoc.is_rejected:
                    break
                state = "accepted" if assoc.is_established else "aborted" if assoc.is_aborted else "no answer"
                if assoc.is_established:
                    assoc.release()
                if state != "aborted":
                    break
            if not assoc.is_rejected:
                self.stop()
                raise RuntimeError(f"secure run: an unknown calling AE title was not rejected ({state}); "
                                   f"server log: {self.log_path.read_text(errors='replace')[-3000:]}")

    @staticmethod
    def _configures(args: list[str], section: str) -> bool:
        """Whether the test gives the server a configuration file with its own `section`."""
        for flag, value in zip(args, args[1:]):
            if flag == "--config" and section in Path(value).read_text():
                return True
        return False

    def _wait_ready(self) -> tuple[str, int]:
        q: queue.Queue = queue.Queue()
        assert self.proc is not None and self.proc.stdout is not None
        stdout = self.proc.stdout

        def reader():
            for raw in iter(stdout.readline, b""):
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                self.stdout_lines.append(line)
                q.put(line)
            q.put(None)

        threading.Thread(target=reader, name=f"stdout-{self.name}", daemon=True).start()
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(self._why(f"no ready line within {READY_TIMEOUT_S}s"))
            try:
                line = q.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                self.proc.wait(timeout=10)
                raise RuntimeError(self._why(f"exited with {self.proc.returncode} before its ready line"))
            m = READY_RE.match(line)
            if m:
                return m.group(1), int(m.group(4))

    def _why(self, what: str) -> str:
        return (f"vna server '{self.name}' {what}\ncommand: {' '.join(self.cmd)}\n"
                f"stdout:\n" + "\n".join(self.stdout_lines) + f"\nlog ({self.log_path}):\n" + self.log_tail())

    def log_tail(self, max_lines: int = 300) -> str:
        try:
            self._log.flush()
            lines = self.log_path.read_text("utf-8", "replace").splitlines()
        except OSError as e:
            return f"(cannot read log: {e})"
        if len(lines) > max_lines:
            lines = [f"... ({len(lines) - max_lines} earlier lines in {self.log_path})"] + lines[-max_lines:]
        return "\n".join(lines)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def client(self) -> DICOMwebClient:
        return DICOMwebClient(url=self.dicomweb, timeout=HTTP_TIMEOUT_S)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is not None:
            self.died_early = self.exit_code is None
        else:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.exit_code = self.proc.returncode
        # Its port may be given to a later server: the key must not follow it there.
        if getattr(self, "base_url", None) is not None:
            _KEYS.pop(self.base_url, None)
        if self.proc.stdout:
            self.proc.stdout.close()
        self._log.close()
        self.proc = None
        if self in _RUNNING:
            _RUNNING.remove(self)
        if self.db is not None:
            self.db.drop()
            self.db = None

    def stores_in_progress(self) -> bool:
        """True while some object is being written: a temporary file on the filesystem, a
        multipart upload on S3."""
        if self.bucket is not None:
            return bool(self.bucket.uploads())
        tmp = self.data_dir / "blobs" / "tmp"
        return tmp.is_dir() and any(tmp.iterdir())

    def stored_blobs(self) -> list[str]:
        """Every object (file, or S3 object version and multipart upload) in the default tier."""
        if self.bucket is not None:
            return self.bucket.versions() + [f"upload {u}" for u in self.bucket.uploads()]
        # store.lock is the blob store's open-count lock (vna_blob::fs::StoreLock), not a blob;
        # small objects are packed into segments under packs/, listed one by one.
        blobs = self.data_dir / "blobs"
        files = [str(f) for f in blobs.rglob("*")
                 if f.is_file() and f.name != "store.lock" and "packs" not in f.relative_to(blobs).parts]
        return files + packed_objects(blobs)

    def __repr__(self) -> str:
        return f"<vna {self.name} {self.backend} {getattr(self, 'base_url', '?')}>"


def packed_objects(blobs: Path) -> list[str]:
    """The objects still in the pack segments of a filesystem store (`vna_blob::pack`): each
    starts on a block with a 16-byte header (b"VNAPACK1", its length little-endian); a freed
    object is a hole."""
    packs = blobs / "packs"
    if not packs.is_dir():
        return []
    align = max(4096, os.stat(packs).st_blksize)
    out = []
    for seg in sorted(packs.glob("*.pack")):
        with open(seg, "rb") as f:
            fd, at = f.fileno(), 0
            while True:
                try:
                    data = os.lseek(fd, at, os.SEEK_DATA)
                except OSError as e:
                    if e.errno == errno.ENXIO:
                        break
                    raise
                offset = data // align * align
                header = os.pread(fd, 16, offset)
                length = int.from_bytes(header[8:], "little") if len(header) == 16 and header[:8] == b"VNAPACK1" else 0
                if length == 0:
                    break
                out.append(f"{seg}@{offset}+{length}")
                at = offset + (16 + length + align - 1) // align * align
    return out


class ServerPool:
    """Starts servers on demand and stops them all at teardown. A server that
    died on its own before teardown is reported as an error."""

    def __init__(self, root: Path):
        self.root = root
        self.servers: list[VnaServer] = []

    def start(self, backend: str = "sqlite", *, env: dict[str, str] | None = None,
              args: list[str] | None = None, name: str | None = None) -> VnaServer:
        name = name or f"{backend}-{len(self.servers) + 1}"
        srv = VnaServer(name, self.root / name, backend=backend, env=env, args=args)
        self.servers.append(srv)
        return srv

    def close(self) -> None:
        dead = []
        for srv in self.servers:
            if srv.proc is not None and not srv.alive:
                dead.append(srv)
            srv.stop()
        if dead:
            pytest.fail("vna server(s) died during the test: " + "; ".join(
                f"{s.name} exit {s.exit_code}\n{s.log_tail(80)}" for s in dead), pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    rep = yield
    if rep.failed:
        for srv in list(_RUNNING):
            rep.sections.append((f"vna server log: {srv.name} ({srv.backend}) {srv.log_path}",
                                 srv.log_tail()))
    return rep


# --------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------


@pytest.fixture
def pool(tmp_path):
    """Function-scoped: start servers with pool.start(backend, env=..., args=...)."""
    p = ServerPool(tmp_path / "servers")
    yield p
    p.close()


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture
def server(pool, backend) -> VnaServer:
    """A fresh, empty server (function scope), once per catalog backend."""
    return pool.start(backend)


@pytest.fixture(scope="module", params=BACKENDS)
def loaded(request, tmp_path_factory):
    """Module-scoped server (per backend) holding the standard corpus
    (see dicomgen.corpus), stored once through STOW-RS with dicomweb-client."""
    p = ServerPool(tmp_path_factory.mktemp(f"loaded-{request.param}"))
    srv = p.start(request.param, name=f"loaded-{request.param}")
    corpus = dicomgen.corpus()
    client = srv.client()
    for study_uid, instances in corpus.studies().items():
        resp = client.store_instances([i.reread() for i in instances])
        stored = {str(it.ReferencedSOPInstanceUID) for it in resp.get("ReferencedSOPSequence", [])}
        assert stored == {i.sop_uid for i in instances}, f"corpus study {study_uid} not fully stored"
        assert "FailedSOPSequence" not in resp or len(resp.FailedSOPSequence) == 0
    yield Loaded(srv, corpus)
    p.close()


class Loaded:
    def __init__(self, server: VnaServer, corpus: dicomgen.Corpus):
        self.server = server
        self.corpus = corpus
        self.client = server.client()

    @property
    def url(self) -> str:
        return self.server.dicomweb


@pytest.fixture
def http() -> requests.Session:
    s = requests.Session()
    yield s
    s.close()
