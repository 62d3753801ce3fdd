"""kill -9 of the server in the middle of an ingest storm, three times over: STOW-RS batches and
C-STORE over one association at once, small objects (packed into the filesystem tier's
segments) and, now and then, one over 1 MiB (a file of its own). Afterwards every instance
that was acknowledged is there (byte for byte as sent over STOW-RS; over C-STORE, the data set
that was sent), and `vna verify` finds the object of every catalog row intact. On the embedded
catalog and on PostgreSQL."""

from __future__ import annotations

import io
import os
import random
import subprocess
import threading
import time
from pathlib import Path

import pydicom
import pytest
import requests
from pynetdicom import AE

import dicomgen
import helpers
from conftest import PgDatabase, postgres_admin_url, vna_bin

PREFIX = dicomgen.PATIENT_ID_PREFIX + "CRASH-"
ROUNDS = 3


def _serve(data: Path, log: Path, catalog_url: str | None) -> tuple[subprocess.Popen, str, int]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VNA__")}
    env["VNA__AUTH__ANONYMOUS"] = "loopback"
    cmd = [vna_bin(), "serve", "--data-dir", str(data), "--http-listen", "127.0.0.1:0", "--dimse-listen", "127.0.0.1:0"]
    if catalog_url:
        cmd += ["--catalog-url", catalog_url]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=open(log, "ab"), text=True)
    line = proc.stdout.readline()
    assert line.startswith("vna ready"), f"the server did not start: {line!r}\n{log.read_text()[-3000:]}"
    http = line.split("http=")[1].split()[0]
    dimse = int(line.split("dimse=")[1].split(":")[-1])
    return proc, http, dimse


class Storm:
    """Two clients storing until told to stop, each remembering what was acknowledged."""

    def __init__(self, base: str, dimse_port: int, round_no: int):
        self.base, self.dimse_port, self.round_no = base, dimse_port, round_no
        self.acked: dict[str, tuple[dicomgen.Instance, str]] = {}
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._stow, daemon=True), threading.Thread(target=self._cstore, daemon=True)]
        self.assoc = None

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def join(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=3)
            # pynetdicom may wait out its timeouts on a connection whose peer was killed.
            if t.is_alive() and self.assoc is not None:
                self.assoc.abort()
            t.join(timeout=60)
            assert not t.is_alive(), f"{t.name} did not stop"

    def _ack(self, inst: dicomgen.Instance, how: str) -> None:
        with self.lock:
            self.acked[inst.sop_uid] = (inst, how)

    def _stow(self) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            batch = dicomgen.ct_study(series_count=1, instances_per_series=4,
                                      patient_id=f"{PREFIX}{self.round_no}-S{n}", patient_name="Crash^Stow")
            if n % 7 == 0:
                batch.append(dicomgen.large_instance(total_bytes=1_300_000, patient_id=f"{PREFIX}{self.round_no}-B{n}"))
            try:
                r = helpers.stow(self.base + "/dicom-web", [i.data for i in batch])
            except requests.RequestException:
                return  # the server is gone: nothing of this batch was acknowledged
            if r.status_code == 200:
                for i in batch:
                    self._ack(i, "stow")

    def _cstore(self) -> None:
        try:
            self._cstore_until_stopped()
        except (RuntimeError, OSError):
            pass  # the server was killed under the association: nothing more is acknowledged

    def _cstore_until_stopped(self) -> None:
        ae = AE(ae_title="STORESCU")
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
        for ctx in ("1.2.840.10008.5.1.4.1.1.2",):
            ae.add_requested_context(ctx, ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"])
        assoc = self.assoc = ae.associate("127.0.0.1", self.dimse_port, ae_title="VNA")
        if not assoc.is_established:
            return
        n = 0
        try:
            while not self.stop.is_set():
                n += 1
                for inst in dicomgen.ct_study(series_count=1, instances_per_series=3,
                                              patient_id=f"{PREFIX}{self.round_no}-C{n}", patient_name="Crash^Cstore"):
                    status = assoc.send_c_store(inst.reread())
                    if not assoc.is_established:
                        return
                    if status and status.Status == 0x0000:
                        self._ack(inst, "c-store")
        finally:
            if assoc.is_established:
                assoc.release()


def check_acknowledged(base: str, data: Path, url: str | None, acked: dict[str, tuple[dicomgen.Instance, str]]) -> None:
    """Every acknowledged instance is served (as sent over STOW-RS; over C-STORE, the data set
    that was sent), and `vna verify` finds the object of every catalog row intact."""
    for sop, (inst, how) in acked.items():
        got = helpers.retrieve_raw(helpers.instance_url(base + "/dicom-web", inst.study_uid, inst.series_uid, sop))
        assert len(got) == 1, f"an instance acknowledged over {how} is missing ({len(acked)} acknowledged)"
        if how == "stow":
            assert got[0] == inst.data, f"an instance acknowledged over STOW-RS changed ({len(acked)} acknowledged)"
        else:
            # The SCU sent the data set (its own encoding); the file meta is the archive's.
            assert pydicom.dcmread(io.BytesIO(got[0])) == inst.reread(), "an instance acknowledged over C-STORE changed"
    verify = subprocess.run([vna_bin(), "--data-dir", str(data)] + (["--catalog-url", url] if url else []) + ["verify"],
                            capture_output=True, text=True, timeout=300,
                            env={k: v for k, v in os.environ.items() if not k.startswith("VNA__")})
    assert verify.returncode == 0, verify.stdout[-3000:] + verify.stderr[-2000:]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_kill_9_in_an_ingest_storm_loses_nothing_acknowledged(backend, tmp_path):
    db = PgDatabase(postgres_admin_url()) if backend == "postgres" else None
    url = db.url if db else None
    data, log = tmp_path / "data", tmp_path / "vna.log"
    rng = random.Random(17)
    acked: dict[str, tuple[dicomgen.Instance, str]] = {}
    proc = None
    try:
        for round_no in range(ROUNDS):
            proc, base, dimse = _serve(data, log, url)
            storm = Storm(base, dimse, round_no)
            storm.start()
            time.sleep(rng.uniform(0.6, 1.2))
            proc.kill()
            proc.wait(timeout=30)
            storm.join()
            acked |= storm.acked
        assert {how for _, how in acked.values()} == {"stow", "c-store"}, "both clients had stores acknowledged"
        assert any(len(i.data) > 1 << 20 for i, _ in acked.values()), "an object over 1 MiB was acknowledged"

        proc, base, _ = _serve(data, log, url)
        check_acknowledged(base, data, url, acked)
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        if db is not None:
            db.drop()
