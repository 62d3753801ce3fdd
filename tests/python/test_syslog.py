"""The audit trail sent to a syslog collector over TLS (issue 14; RFC 5424 messages, RFC 5425
transport, IHE ATNA), received by a real collector: Debian's rsyslog with its gnutls driver,
listening on loopback with a certificate of a test CA made here with openssl.

- every event of the catalog's trail arrives, once connected, as an RFC 5424 message carrying the
  A.5 AuditMessage of that event and its sequence number;
- while the collector is down, events wait in the catalog; when it is back they all arrive.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import requests

import dicomgen
import helpers
from conftest import ServerPool
from test_audit import assert_schema_valid

RSYSLOGD = "/usr/sbin/rsyslogd"
MESSAGE = re.compile(r'^<85>1 (\S+) (\S+) vna - IHE\+RFC-3881 \[meta sequenceId="(\d+)"\] \ufeff(<AuditMessage>.*</AuditMessage>)$')


def openssl(*args: str, cwd: Path) -> None:
    r = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


class Collector:
    """rsyslogd in the foreground with a TLS listener on `port`, each message's raw text one line
    of `received.log`."""

    def __init__(self, d: Path, port: int):
        if not Path(RSYSLOGD).exists():
            pytest.fail("rsyslogd is missing: scripts/test.sh installs rsyslog and rsyslog-gnutls")
        self.d, self.port, self.proc = d, port, None
        self.received = d / "received.log"
        (d / "work").mkdir(exist_ok=True)
        (d / "rsyslog.conf").write_text(f"""
global(workDirectory="{d}/work" maxMessageSize="64k"
       DefaultNetstreamDriver="gtls"
       DefaultNetstreamDriverCAFile="{d}/ca.pem"
       DefaultNetstreamDriverCertFile="{d}/collector.pem"
       DefaultNetstreamDriverKeyFile="{d}/collector.key")
module(load="imtcp" StreamDriver.Name="gtls" StreamDriver.Mode="1" StreamDriver.AuthMode="anon")
input(type="imtcp" port="{port}" address="127.0.0.1")
template(name="raw" type="string" string="%rawmsg%\\n")
action(type="omfile" file="{self.received}" template="raw")
""")

    def start(self) -> None:
        self.log = open(self.d / "rsyslogd.log", "ab")
        self.proc = subprocess.Popen([RSYSLOGD, "-n", "-f", str(self.d / "rsyslog.conf"), "-i", str(self.d / "rsyslogd.pid")],
                                     stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 20
        while not helpers_port_open(self.port):
            assert self.proc.poll() is None, (self.d / "rsyslogd.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "rsyslogd did not listen within 20 s"
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=20)
            self.log.close()
        self.proc = None

    def messages(self) -> dict[int, tuple[str, str]]:
        """sequence number -> (hostname, AuditMessage XML), of every well-formed line; a line that
        is not one fails the test."""
        out = {}
        if not self.received.exists():
            return out
        for line in self.received.read_text(encoding="utf-8").splitlines():
            m = MESSAGE.match(line)
            assert m, f"not an RFC 5424 audit message: {line[:300]!r}"
            out[int(m.group(3))] = (m.group(2), m.group(4))
        return out


def helpers_port_open(port: int) -> bool:
    import socket
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp("syslog")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=vna test CA", cwd=d)
    openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", "collector.key", "-out", "collector.csr",
            "-subj", "/CN=collector", cwd=d)
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "collector.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
            "-extfile", "ext.cnf", "-out", "collector.pem", cwd=d)
    port = helpers.free_port()
    collector = Collector(d, port)
    collector.start()
    (d / "vna.toml").write_text(f'version = 1\n[audit.syslog]\naddress = "127.0.0.1:{port}"\nca_file = "{d}/ca.pem"\n'
                                'hostname = "vna-node-1"\n')
    pool = ServerPool(d / "servers")
    try:
        srv = pool.start("sqlite", name="syslog", args=["--config", str(d / "vna.toml")])
        yield srv, collector
    finally:
        pool.close()
        collector.stop()


def trail(srv) -> dict[int, dict]:
    r = requests.get(srv.base_url + "/admin/audit", params={"limit": "1000"}, timeout=60)
    assert r.status_code == 200, r.text[:300]
    return {e["seq"]: e for e in r.json()["events"]}


def wait_for_all(srv, collector: Collector, timeout_s: float = 90) -> dict[int, tuple[str, str]]:
    """Waits until every event of the trail (as read now) has reached the collector."""
    expected = trail(srv)
    deadline = time.monotonic() + timeout_s
    while True:
        got = collector.messages()
        missing = sorted(set(expected) - set(got))
        if not missing:
            return got
        assert time.monotonic() < deadline, f"events {missing[:20]} never reached the collector"
        time.sleep(0.5)


def test_every_event_reaches_the_collector_as_its_a5_message(world):
    srv, collector = world
    inst = dicomgen.ct_study(series_count=1, instances_per_series=1, patient_id=dicomgen.PATIENT_ID_PREFIX + "SYSLOG1")[0]
    helpers.stow(srv.dicomweb, [inst.data])
    assert helpers.qido(srv.dicomweb, "/studies", {"StudyInstanceUID": inst.study_uid})[0] == 200
    # The trail as read here, then waited for: reading the trail is itself audited (Audit Log
    # Used), so a second read could name an event still on its way to the collector.
    events = trail(srv)
    got = wait_for_all(srv, collector)
    assert len(events) >= 3, "start, store, query"
    for seq, e in events.items():
        hostname, xml = got[seq]
        assert hostname == "vna-node-1"
        msg = ET.fromstring(xml)
        assert msg.find("EventIdentification/EventID").get("csd-code") == e["eventId"]
        assert xml == e["auditMessage"], "the same A.5 message as the admin API serves"
    assert_schema_valid([xml for _, xml in got.values()], srv.workdir)
    stored = [e for e in events.values() if e["eventId"] == "110104" and inst.study_uid in e["studies"]]
    assert len(stored) == 1


def test_events_made_while_the_collector_is_down_arrive_when_it_is_back(world):
    srv, collector = world
    wait_for_all(srv, collector)
    collector.stop()
    before = set(trail(srv))
    for n in range(3):
        helpers.qido(srv.dicomweb, "/studies", {"PatientID": dicomgen.PATIENT_ID_PREFIX + f"OUTAGE{n}"})
    during = set(trail(srv)) - before
    assert len(during) >= 3, "the queries made while the collector was down are in the catalog"
    time.sleep(2)  # the exporter notices the collector is gone and retries meanwhile
    collector.start()
    got = wait_for_all(srv, collector)
    assert during <= set(got)
    assert "connection lost" in srv.log_path.read_text() or "collector unreachable" in srv.log_path.read_text()
