"""The power is cut in the middle of an ingest storm, three times over: the archive's data
directory lives on `powerfs.py`, a filesystem that keeps only what was flushed (a file's bytes
after its `fsync`/`fdatasync`, a directory's names after the directory's own flush, as POSIX
promises and no more). At a random moment the disk "loses power": from that instant every
operation fails and the state that survives is what had been made durable; the server is killed
and, once the filesystem is served again from that state, restarted on it. Every instance that
was acknowledged before the cut must be there, intact, and `vna verify` must find the object of
every catalog row. What kill -9 cannot show (the page cache outlives the process) this does: an
acknowledgement sent before the flush that makes its object or its row durable would lose it.

On the embedded catalog both the catalog and the objects are on the failing disk; on PostgreSQL
the objects are (the database is a server of its own, with its own log; what this tests is that
a row is never committed before its object is durable). The S3 tier is not here: its PUT is the
durability point, answered by the store."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import PgDatabase, packed_objects, postgres_admin_url
from test_crash import Storm, _serve, check_acknowledged

ROUNDS = 3
POWERFS = Path(__file__).with_name("powerfs.py")

pytestmark = pytest.mark.skipif(
    not os.access("/dev/fuse", os.R_OK | os.W_OK),
    reason="LOUD SKIP: /dev/fuse is not usable here, so the power-loss filesystem cannot be mounted",
)


class PowerDisk:
    """`powerfs.py` mounted at `mount`, its surviving state kept in `state` between power cuts."""

    def __init__(self, root: Path):
        self.mount, self.state, self.log = root / "mnt", root / "powerfs.state", root / "powerfs.log"
        self.mount.mkdir()
        self.proc: subprocess.Popen | None = None

    def up(self) -> None:
        self.proc = subprocess.Popen([sys.executable, str(POWERFS), str(self.mount), "--state", str(self.state)],
                                     stdout=subprocess.DEVNULL, stderr=open(self.log, "ab"))
        deadline = time.monotonic() + 30
        while not os.path.ismount(self.mount):
            assert self.proc.poll() is None, f"powerfs did not start:\n{self.log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, "powerfs did not mount within 30 s"
            time.sleep(0.05)

    def control(self, command: str) -> None:
        with open(self.mount / ".powerfs", "w") as f:
            f.write(command)

    def down(self) -> None:
        """Unmounted (everything on it closed first); the surviving state is then on disk."""
        subprocess.run(["umount", "-l", str(self.mount)], check=True)
        assert self.proc is not None
        self.proc.wait(timeout=120)
        self.proc = None

    def close(self) -> None:
        if self.proc is not None:
            subprocess.run(["umount", "-l", str(self.mount)], check=False)
            self.proc.wait(timeout=120)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_power_cut_in_an_ingest_storm_loses_nothing_acknowledged(backend, tmp_path):
    db = PgDatabase(postgres_admin_url()) if backend == "postgres" else None
    url = db.url if db else None
    disk = PowerDisk(tmp_path)
    data, log = disk.mount / "data", tmp_path / "vna.log"
    rng = random.Random(23)
    acked: dict = {}
    proc = None
    try:
        disk.up()
        # Installed, then everything on the disk (as after a clean shutdown of the machine).
        proc, base, dimse = _serve(data, log, url)
        disk.control("sync")
        for round_no in range(ROUNDS):
            if proc is None:
                proc, base, dimse = _serve(data, log, url)
            storm = Storm(base, dimse, round_no)
            storm.start()
            time.sleep(rng.uniform(2.0, 4.0))
            disk.control("cut")
            proc.kill()
            proc.wait(timeout=60)
            proc = None
            storm.join()
            acked |= storm.acked
            disk.down()
            disk.up()
        assert {how for _, how in acked.values()} == {"stow", "c-store"}, "both clients had stores acknowledged"

        proc, base, _ = _serve(data, log, url)
        check_acknowledged(base, data, url, acked)
        assert packed_objects(data / "blobs"), "small objects were packed (the filesystem punches holes and reports them)"
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=60)
        disk.close()
        if db is not None:
            db.drop()
