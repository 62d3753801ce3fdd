"""The archive as a DIMSE peer, on both catalog backends: dcmtk's storescu sends the
synthetic corpus (CT, MR Latin-1, implicit VR SC, native multi-frame; the whole-slide JPEG
files with JPEG proposed), DICOMweb reads back the same data sets, and a killed storescu
leaves nothing behind.

dcmtk is called by full path: pynetdicom's apps install commands with the same names.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import dicomgen
from helpers import qido, retrieve_raw, instance_url

STORESCU = "/usr/bin/storescu"
ECHOSCU = "/usr/bin/echoscu"


def _data_set(part10: bytes) -> bytes:
    """Everything after the file meta group (PS3.10 §7.1)."""
    assert part10[128:132] == b"DICM"
    group_length = int.from_bytes(part10[140:144], "little")
    return part10[144 + group_length:]


def _dcmtk(tool: str, server, *args: str, files: list[Path] = ()) -> subprocess.CompletedProcess:
    return subprocess.run([tool, "-aec", "VNA", *args, "127.0.0.1", str(server.dimse_port), *map(str, files)],
                          capture_output=True, text=True, timeout=120)


def test_storescu_corpus_then_wado_returns_the_same_data_sets(server, tmp_path: Path):
    echo = _dcmtk(ECHOSCU, server)
    assert echo.returncode == 0, echo.stderr
    corpus = dicomgen.corpus()
    instances = corpus.all()
    files = []
    for inst in instances:
        p = tmp_path / f"{inst.label}.dcm"
        p.write_bytes(inst.data)
        files.append(p)
    # -R: propose only the SOP classes of the files. storescu converts a file whose transfer
    # syntax was not accepted (which would change the bytes), and we accept the first syntax it
    # proposes in each context: so each syntax is sent with proposals that lead with it.
    proposal = {
        "1.2.840.10008.1.2": ["-xi"],  # implicit VR little endian only
        "1.2.840.10008.1.2.1": ["-xe"],  # explicit VR little endian only
        "1.2.840.10008.1.2.4.50": ["-xy"],  # JPEG baseline (and uncompressed)
    }
    groups: dict[str, list[Path]] = {}
    for f, inst in zip(files, instances):
        groups.setdefault(inst.transfer_syntax, []).append(f)
    assert set(groups) <= set(proposal), f"no storescu proposal for {set(groups) - set(proposal)}"
    for ts, batch in groups.items():
        r = _dcmtk(STORESCU, server, "-R", *proposal[ts], files=batch)
        assert r.returncode == 0, r.stderr
    for inst in instances:
        status, results = qido(server.dicomweb, "instances", {"SOPInstanceUID": inst.sop_uid})
        assert status == 200 and len(results) == 1, f"{inst.label} not found after C-STORE"
        got = retrieve_raw(instance_url(server.dicomweb, inst.study_uid, inst.series_uid, inst.sop_uid))
        assert len(got) == 1
        assert _data_set(got[0]) == _data_set(inst.data), f"{inst.label}: data set changed on the way"


def test_killed_storescu_leaves_nothing_and_the_server_keeps_serving(server, tmp_path: Path):
    # On S3 a store in progress shows as a multipart upload, which takes the AWS CLI about half
    # a second to see: the object must outlast that by far, or storescu has sent it all before
    # the kill (and it is then rightly stored).
    big = dicomgen.large_instance(total_bytes=400_000_000 if server.bucket is not None else 40_000_000)
    p = tmp_path / "big.dcm"
    p.write_bytes(big.data)
    # Slow the sender down (small PDUs) so it is surely killed in the middle of the data set.
    proc = subprocess.Popen([STORESCU, "-aec", "VNA", "-R", "--max-send-pdu", "4096", "127.0.0.1",
                             str(server.dimse_port), str(p)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # Kill it as soon as the store is under way: a partial object exists in the blob store.
    deadline = time.monotonic() + 30
    while proc.poll() is None and time.monotonic() < deadline and not server.stores_in_progress():
        time.sleep(0.002)
    proc.kill()
    proc.wait(timeout=10)
    assert proc.returncode < 0, "storescu finished before it could be killed; make the object larger"
    status, results = qido(server.dicomweb, "instances", {"SOPInstanceUID": big.sop_uid})
    assert status == 204 and results == [], "a half-received instance was stored"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        leftovers = server.stored_blobs()
        if not leftovers:
            break
        time.sleep(0.1)
    assert not leftovers, f"partial blobs left behind: {leftovers}"
    ok = dicomgen.implicit_vr_sc(patient_id=dicomgen.PATIENT_ID_PREFIX + "ALIVE")
    q = tmp_path / "ok.dcm"
    q.write_bytes(ok.data)
    r = _dcmtk(STORESCU, server, "-R", files=[q])
    assert r.returncode == 0, r.stderr
    status, results = qido(server.dicomweb, "instances", {"SOPInstanceUID": ok.sop_uid})
    assert status == 200 and len(results) == 1


def test_stores_sent_without_waiting_in_an_asynchronous_operations_window(server):
    """PS3.7 §D.3.3.3: pynetdicom proposes to invoke up to 8 operations without waiting; the
    archive answers that it performs 8, then twelve C-STORE-RQs go out with never more than 8
    unanswered, their responses come back (in any order) each naming its request, and every
    instance is stored. Without the sub-item, the archive does not answer one."""
    from io import BytesIO

    from pynetdicom import AE
    from pynetdicom.dimse_primitives import C_STORE
    from pynetdicom.pdu_primitives import AsynchronousOperationsWindowNegotiation

    ct = "1.2.840.10008.5.1.4.1.1.2"
    ae = AE(ae_title="STORESCU")
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
    ae.add_requested_context(ct, ["1.2.840.10008.1.2.1"])

    plain = ae.associate("127.0.0.1", server.dimse_port, ae_title="VNA")
    assert plain.is_established
    assert plain.acceptor.asynchronous_operations == (1, 1), "no window offered unless asked"
    plain.release()

    item = AsynchronousOperationsWindowNegotiation()
    item.maximum_number_operations_invoked = 8
    item.maximum_number_operations_performed = 1
    assoc = ae.associate("127.0.0.1", server.dimse_port, ae_title="VNA", ext_neg=[item])
    assert assoc.is_established
    assert assoc.acceptor.asynchronous_operations == (1, 8), "the archive performs up to 8 at once"
    context = assoc.accepted_contexts[0]
    instances = dicomgen.ct_study(series_count=1, instances_per_series=12, patient_id=dicomgen.PATIENT_ID_PREFIX + "ASYNC-1")
    statuses: dict[int, int] = {}

    def collect_one() -> None:
        _, rsp = assoc.dimse.get_msg(block=True)
        assert rsp is not None, "a C-STORE-RSP"
        statuses[rsp.MessageIDBeingRespondedTo] = rsp.Status

    # pynetdicom sends requests and reads responses itself only one at a time: pause its
    # reactor, as its own send_c_echo does, so that the responses wait for us.
    assoc._reactor_checkpoint.clear()
    while not assoc._is_paused:
        time.sleep(0.0001)
    try:
        for n, inst in enumerate(instances, start=1):
            while n - 1 - len(statuses) >= 8:
                collect_one()
            req = C_STORE()
            req.MessageID = n
            req.AffectedSOPClassUID = ct
            req.AffectedSOPInstanceUID = inst.sop_uid
            req.Priority = 2
            req.DataSet = BytesIO(_data_set(inst.data))
            assoc.dimse.send_msg(req, context.context_id)
        while len(statuses) < len(instances):
            collect_one()
    finally:
        assoc._reactor_checkpoint.set()
        assoc.release()
    assert statuses == {n: 0 for n in range(1, len(instances) + 1)}, statuses
    for inst in instances:
        status, results = qido(server.dicomweb, "instances", {"SOPInstanceUID": inst.sop_uid})
        assert status == 200 and len(results) == 1
