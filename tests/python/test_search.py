"""Search by meaning (issue 16): `GET /api/search` over each node's index of studies, fed from
the catalog's change feed.

A server with anonymous access off, tenancy rules by Institution Name (HUG into
`hug/radiology`, CHUV into `chuv`) and API keys made with `vna apikey`; studies stored by
STOW-RS with descriptions in French, German and English:

- a query finds studies by what their metadata means, in any language and by abbreviation
  (`MRI` finds "IRM cérébrale" and "MRT Schädel"), by the patient's name, with the filters
  (modality, date range, patient ID, institution) applied in the same query;
- each key sees only its tenants' studies; a key without the read permission gets 403;
- an IOCM-rejected study leaves the results, and so does one a lifecycle rule expired; bad
  queries are 400 with a reason;
- reports are found by what they say, across languages: a Comprehensive SR's text (one
  value over the bulk-data threshold, read from the stored object), an Encapsulated PDF's text
  (uploaded through `/api/non-dicom`), a scanned PDF without text indexed without error; a
  finding said absent ranks below one said present; hits carry highlights;
- reports sent through `POST /api/reports` (plain text linked by Study Instance UID, an HL7
  v2 ORU^R01 linked by its accession number) are found like stored ones; an unknown study is
  404, an accession number of several studies 409, a message that is no ORU^R01 400, another
  media type 415, a reader 403;
- `vna search reindex` (beside the running server) has it rebuild its index from the catalog
  while it answers, with the same results afterwards, in a new generation of the index;
- `GET /admin/search` tells the index's position, the feed's head and the lag;
- a server killed with SIGKILL while it indexes keeps the position its last commit recorded,
  and once restarted catches up with every study stored, without rebuilding.

Runs on the embedded catalog and on PostgreSQL (the blob store plays no part).
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
import requests

import dicomgen
import helpers
from conftest import ServerPool, vna_bin

PREFIX = dicomgen.PATIENT_ID_PREFIX + "SRCH-"


class World:
    def __init__(self, server, config: Path):
        self.server = server
        self.config = config
        self.keys: dict[str, str] = {}
        self.studies: dict[str, str] = {}

    def vna(self, *args: str) -> subprocess.CompletedProcess:
        cmd = [vna_bin(), "--config", str(self.config), "--data-dir", str(self.server.data_dir)]
        if self.server.db is not None:
            cmd += ["--catalog-url", self.server.db.url]
        return subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=120)

    def session(self, key: str) -> requests.Session:
        s = requests.Session()
        s.headers["Authorization"] = f"Bearer {self.keys[key]}"
        return s

    def search(self, key: str, **params) -> requests.Response:
        return self.session(key).get(self.server.base_url + "/api/search", params=params, timeout=60)

    def found(self, key: str, **params) -> list[str]:
        r = self.search(key, **params)
        assert r.status_code == 200, (r.status_code, r.text)
        labels = {uid: label for label, uid in self.studies.items()}
        return [labels.get(h["StudyInstanceUID"], h["StudyInstanceUID"]) for h in r.json()["hits"]]

    def status(self) -> dict:
        r = self.session("admin").get(self.server.base_url + "/admin/search", timeout=60)
        assert r.status_code == 200, (r.status_code, r.text)
        return r.json()

    def caught_up(self, timeout: float = 30.0) -> dict:
        """Waits until the index reflects the whole change feed (the indexer polls it)."""
        deadline = time.monotonic() + timeout
        while True:
            s = self.status()
            if s["lag"] == 0:
                return s
            assert time.monotonic() < deadline, f"the search index did not catch up: {s}"
            time.sleep(0.2)


STUDIES = {
    # label: (institution, modality, study description, date, patient)
    "irm": ("HUG", "MR", "IRM cérébrale", "20240110", "Dupont^Marie"),
    "mrt": ("HUG", "MR", "MRT Schädel", "20230505", "Dupont^Marie"),
    "ct": ("HUG", "CT", "CT THORAX", "20240220", "Meier^Hans"),
    "chuv": ("CHUV", "CT", "Scanner thoracique", "20240301", "Rossi^Luca"),
}


def study(label: str) -> list[dicomgen.Instance]:
    institution, modality, description, date, patient = STUDIES[label]
    base = dicomgen.ct_study(series_count=1, instances_per_series=1, patient_id=PREFIX + label.upper(),
                             patient_name=patient, study_date=date, accession=f"ACC-{label}")
    return [dicomgen.with_changes(i, InstitutionName=institution, Modality=modality, StudyDescription=description) for i in base]


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def world(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(f"search-{request.param}")
    config = tmp / "vna.toml"
    config.write_text(
        "version = 1\n"
        '[auth]\nanonymous = "off"\n'
        '[tenancy]\ndefault_tenant = "default"\n'
        '[[tenancy.rules]]\ntenant = "hug/radiology"\ninstitution = "HUG"\n'
        '[[tenancy.rules]]\ntenant = "chuv"\ninstitution = "CHUV"\n'
        "[search]\npoll_ms = 100\n")
    pool = ServerPool(tmp / "servers")
    srv = pool.start(request.param, name=f"search-{request.param}", args=["--config", str(config)])
    w = World(srv, config)
    for name, scopes, tenants in [
        ("writer", ["system/ImagingStudy.cruds"], ["*"]),
        ("everyone", ["system/ImagingStudy.read"], ["*"]),
        ("hug", ["system/ImagingStudy.read"], ["hug"]),
        ("chuv", ["system/ImagingStudy.read"], ["chuv"]),
        ("writer-only", ["system/ImagingStudy.c"], ["*"]),
        ("admin", ["vna.admin"], ["*"]),
    ]:
        args = ["apikey", "create", "--name", name] + [f"--scope={s}" for s in scopes] + [f"--tenant={t}" for t in tenants]
        r = w.vna(*args)
        assert r.returncode == 0, r.stderr
        w.keys[name] = r.stdout.strip()
    for label in STUDIES:
        instances = study(label)
        r = helpers.stow(srv.dicomweb, [i.data for i in instances], session=w.session("writer"))
        assert r.status_code == 200, (r.status_code, r.text)
        w.studies[label] = instances[0].study_uid
    w.caught_up()
    yield w
    pool.close()


def test_metadata_is_found_by_meaning_in_any_language(world):
    assert sorted(world.found("everyone", q="MRI")) == ["irm", "mrt"], "IRM and MRT are MRI"
    assert sorted(world.found("everyone", q="brain")) == ["irm", "mrt"], "cérébrale and Schädel are the brain"
    assert sorted(world.found("everyone", q="CT")) == ["chuv", "ct"], "a scanner is a CT in French"
    assert sorted(world.found("everyone", q="dupont")) == ["irm", "mrt"], "the patient's name, case folded"


def test_filters_apply_in_the_query(world):
    assert world.found("everyone", q="MRI", **{"from": "2024-01-01", "to": "20241231"}) == ["irm"]
    assert sorted(world.found("everyone", modality="CT")) == ["chuv", "ct"], "a filter alone lists the newest first"
    assert world.found("everyone", modality="CT") == ["chuv", "ct"]
    assert world.found("everyone", q="CT", patientId=PREFIX + "CT") == ["ct"]
    assert world.found("everyone", q="CT", institution="chuv") == ["chuv"]


def test_hits_carry_the_study_and_link_to_it(world):
    r = world.search("everyone", q="MRT")
    body = r.json()
    assert body["total"] == 2
    hit = next(h for h in body["hits"] if h["StudyInstanceUID"] == world.studies["irm"])
    assert hit["PatientID"] == PREFIX + "IRM" and hit["StudyDate"] == "20240110"
    assert hit["StudyDescription"] == "IRM cérébrale" and hit["ModalitiesInStudy"] == ["MR"]
    assert hit["score"] > 0 and hit["highlights"] == []
    study = world.session("everyone").get(hit["RetrieveURL"] + "/metadata", timeout=60)
    assert study.status_code == 200, "the hit links to its DICOMweb study"


def test_each_key_finds_only_its_tenants_studies(world):
    assert sorted(world.found("hug", q="CT")) == ["ct"]
    assert world.found("chuv", q="CT") == ["chuv"]
    assert world.found("chuv", q="MRI") == []
    assert world.search("writer-only", q="CT").status_code == 403


def test_bad_queries_are_400_with_a_reason(world):
    for params, reason in [
        ({"q": '"lung nodule'}, "not closed"),
        ({"q": "CT", "limit": "0"}, "limit"),
        ({"q": "CT", "limit": "100000"}, "limit"),
        ({"q": "CT", "from": "2024-13-01"}, "date"),
        ({"q": "CT", "colour": "red"}, "unknown parameter"),
        ({}, "filter"),
    ]:
        r = world.search("everyone", **params)
        assert r.status_code == 400, (params, r.status_code, r.text)
        assert reason in r.text, (params, r.text)
    assert world.search("everyone", q="CT").status_code == 200, "and it keeps serving"


def test_a_rejected_study_leaves_the_results(world):
    instances = study("chuv")
    # A study of its own, rejected by an IOCM note (KOS 113001) once it is found.
    extra = [dicomgen.with_changes(i, StudyInstanceUID=dicomgen.new_uid(), SOPInstanceUID=dicomgen.new_uid(),
                                   StudyDescription="Arthro-IRM du genou", PatientID=PREFIX + "KNEE") for i in instances]
    r = helpers.stow(world.server.dicomweb, [i.data for i in extra], session=world.session("writer"))
    assert r.status_code == 200, r.text
    world.caught_up()
    assert world.found("everyone", q="genou") == [extra[0].study_uid]
    note = dicomgen.rejection_note(extra[0], [(extra[0].study_uid, extra[0].series_uid, extra[0].sop_class_uid, extra[0].sop_uid)])
    note = dicomgen.with_changes(note, InstitutionName="CHUV")  # the study's tenant
    r = helpers.stow(world.server.dicomweb, [note.data], session=world.session("writer"))
    assert r.status_code == 200, r.text
    world.caught_up()
    assert world.found("everyone", q="genou") == [], "the rejected study is gone from the results"


sr = dicomgen.comprehensive_sr
text_pdf = dicomgen.text_pdf


@pytest.fixture(scope="module")
def reports(world):
    """Four studies of the default tenant with reports: French SR, German SR (one long value),
    English PDF, scanned PDF."""
    made = {}
    for label, description in [("r-fr", "CT THORAX"), ("r-de", "CT THORAX"), ("r-en", "CT THORAX"), ("r-scan", "Courrier numérisé")]:
        base = dicomgen.ct_study(series_count=1, instances_per_series=1, patient_id=PREFIX + label.upper(), patient_name="Report^Patient")
        base = [dicomgen.with_changes(i, StudyDescription=description) for i in base]
        r = helpers.stow(world.server.dicomweb, [i.data for i in base], session=world.session("writer"))
        assert r.status_code == 200, r.text
        made[label] = base[0]
        world.studies[label] = base[0].study_uid
    filler = "Examen comparé au précédent, technique standard, sans injection, coupes fines reconstruites. " * 15
    sr_fr = sr(made["r-fr"], ["Nodule pulmonaire de 8 mm du lobe inférieur droit.", "Pas d'épanchement pleural."])
    sr_de = sr(made["r-de"], ["Kein Hinweis auf eine Lungenembolie. Lungenrundherd im rechten Oberlappen, 6 mm. " + filler])
    r = helpers.stow(world.server.dicomweb, [sr_fr.data, sr_de.data], session=world.session("writer"))
    assert r.status_code == 200, r.text
    for label, lines in [("r-en", ["Report", "No evidence of pulmonary embolism.", "Small pleural effusion on the right."]), ("r-scan", [])]:
        fields = [("metadata", (None, json.dumps({"StudyInstanceUID": made[label].study_uid, "DocumentTitle": "Report"}), "application/json")),
                  ("file", ("report.pdf", text_pdf(lines), "application/pdf"))]
        r = world.session("writer").post(world.server.base_url + "/api/non-dicom", files=fields, timeout=60)
        assert r.status_code in (200, 201), (r.status_code, r.text)
    world.caught_up()
    return made


def test_reports_are_found_across_languages_and_absent_findings_rank_low(world, reports):
    assert sorted(world.found("everyone", q="Lungenrundherd")) == ["r-de", "r-fr"], "an SR's text, a long value read from the object"
    assert sorted(world.found("everyone", q="lung nodule")) == ["r-de", "r-fr"]
    effusion = world.found("everyone", q="épanchement pleural")
    assert effusion[0] == "r-en", f"the PDF says there is one; the French SR says there is none: {effusion}"
    assert "r-fr" in effusion[1:], effusion
    embolism = world.found("everyone", q="Lungenembolie")
    assert sorted(embolism) == ["r-de", "r-en"], "both say it is absent: found, at the bottom of any list"
    assert world.found("everyone", q="courrier") == ["r-scan"], "a scanned PDF is no error: its study is indexed"


def test_hits_highlight_the_report_words_that_matched(world, reports):
    r = world.search("everyone", q="pleural effusion")
    hit = next(h for h in r.json()["hits"] if h["StudyInstanceUID"] == world.studies["r-en"])
    assert any("<em>pleural</em> <em>effusion</em>" in h for h in hit["highlights"]), hit["highlights"]


def post_report(world, key: str, body: str, media: str = "text/plain; charset=utf-8", **params) -> requests.Response:
    return world.session(key).post(world.server.base_url + "/api/reports", params=params, data=body.encode(),
                                   headers={"Content-Type": media}, timeout=60)


ORU = ("MSH|^~\\&|RIS|HUG|VNA|HUG|20240105120000||ORU^R01^ORU_R01|MSG{n}|P|2.5\r"
       "PID|1||{pid}^^^HUG||Dupont^Marie\r"
       "OBR|1|PLC1|FIL1^RIS||MRT Schädel|||||||||||||{accession}\r"
       "OBX|1|TX|18782-3^Study observation^LN||Kein Pneumothorax.\\.br\\Subduralhämatom links, 8 mm.||||||F\r")


def test_reports_sent_as_text_or_hl7_are_found(world):
    r = post_report(world, "writer", "Small apical pneumothorax on the right, no pleural effusion.",
                    StudyInstanceUID=world.studies["ct"], lang="en")
    assert r.status_code == 201, (r.status_code, r.text)
    assert r.json()["StudyInstanceUID"] == world.studies["ct"] and r.json()["reportId"] > 0
    r = post_report(world, "writer", ORU.format(n=1, pid=PREFIX + "MRT", accession="ACC-mrt"), "x-application/hl7-v2+er7")
    assert r.status_code == 201, (r.status_code, r.text)
    assert r.json()["StudyInstanceUID"] == world.studies["mrt"], "the ORU's accession number (OBR-18) names the study"
    world.caught_up()
    assert world.found("everyone", q="PNO")[0] == "ct", "a plain-text report, by abbreviation"
    assert "mrt" in world.found("everyone", q="hématome sous-dural"), "an HL7 report, across languages"
    assert world.found("everyone", q="pneumothorax")[0] == "ct", "the ORU says there is none: below"


def test_sent_reports_that_cannot_be_linked_or_read_are_refused(world, reports):
    text = "Nodule pulmonaire."
    assert post_report(world, "writer", text, StudyInstanceUID=dicomgen.new_uid()).status_code == 404
    assert post_report(world, "writer", text, AccessionNumber="NO-SUCH").status_code == 404
    assert post_report(world, "writer", text, AccessionNumber="E2E-CT-1").status_code == 409, "four studies have it"
    assert post_report(world, "writer", text).status_code == 400, "no study named"
    adt = ORU.format(n=2, pid="X", accession="ACC-mrt").replace("ORU^R01^ORU_R01", "ADT^A08")
    r = post_report(world, "writer", adt, "x-application/hl7-v2+er7")
    assert r.status_code == 400 and "ORU^R01" in r.text, r.text
    assert post_report(world, "writer", text, "application/pdf", StudyInstanceUID=world.studies["ct"]).status_code == 415
    assert post_report(world, "writer", text, "text/plain; charset=latin-1", StudyInstanceUID=world.studies["ct"]).status_code == 415
    assert post_report(world, "writer", text, StudyInstanceUID=world.studies["ct"], lang="xx").status_code == 400
    assert post_report(world, "everyone", text, StudyInstanceUID=world.studies["ct"]).status_code == 403
    assert post_report(world, "writer", "x" * (2 << 20), StudyInstanceUID=world.studies["ct"]).status_code == 413


def test_reindex_while_serving_gives_the_same_results(world, reports):
    queries = ["MRI", "CT", "Lungenrundherd", "pleural effusion", "Lungenembolie", "courrier", "Dupont"]
    before = {q: sorted(world.found("everyone", q=q)) for q in queries}
    r = world.vna("search", "reindex")
    assert r.returncode == 0, r.stderr
    seq = int(r.stdout.split("reindex requested at change ")[1].split(":")[0])
    deadline = time.monotonic() + 60
    while True:
        s = world.status()
        assert world.search("everyone", q="MRI").status_code == 200, "it answers while it rebuilds"
        if s["position"] >= seq and not s["rebuilding"]:
            break
        assert time.monotonic() < deadline, f"the rebuild did not finish: {s}"
        time.sleep(0.2)
    after = {q: sorted(world.found("everyone", q=q)) for q in queries}
    assert after == before
    index_dir = world.server.data_dir / "search"
    generations = sorted(p.name for p in index_dir.iterdir() if p.is_dir())
    assert len(generations) == 1 and generations[0] != "gen-1", generations
    r = world.session("admin").post(world.server.base_url + "/admin/search/reindex", timeout=60)
    assert r.status_code == 202 and r.json()["seq"] > seq, r.text
    assert world.session("everyone").post(world.server.base_url + "/admin/search/reindex", timeout=60).status_code == 403


EXPIRE_SCRATCH = """version = 1

[[rules]]
name = "scratch-exports"
expire = true
[rules.match]
modality = ["OT"]
[rules.retain]
mode = "GOVERNANCE"
at_least = [{ duration = "1d", after = "ingest" }]
"""


def test_an_expired_study_leaves_the_results(world, tmp_path):
    base = dicomgen.ct_study(series_count=1, instances_per_series=2, patient_id=PREFIX + "SCRATCH", accession="ACC-scratch")
    scratch = [dicomgen.with_changes(i, Modality="OT", StudyDescription="Export de recherche temporaire",
                                     InstitutionName="CHUV") for i in base]
    r = helpers.stow(world.server.dicomweb, [i.data for i in scratch], session=world.session("writer"))
    assert r.status_code == 200, r.text
    world.caught_up()
    assert world.found("everyone", q="recherche temporaire") == [scratch[0].study_uid]
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "scratch.toml").write_text(EXPIRE_SCRATCH)
    plan = world.vna("lifecycle", "plan", "--policies", str(policies), "--now", "2099-01-01", "--json")
    assert plan.returncode == 0, plan.stderr
    applied = world.vna("lifecycle", "apply", "--policies", str(policies), "--now", "2099-01-01",
                        "--plan", json.loads(plan.stdout)["planHash"])
    assert applied.returncode == 0, applied.stderr + applied.stdout
    world.caught_up()
    assert world.found("everyone", q="recherche temporaire") == [], "the expired study is gone from the results"


def test_the_status_tells_position_head_and_lag(world):
    s = world.caught_up()
    assert s["lag"] == 0 and s["position"] == s["head"] > 0
    assert s["studies"] >= len(STUDIES)
    assert s["batches"] > 0 and s["lastBatchLagMs"] >= 0 and s["rebuilding"] is False
    r = world.session("everyone").get(world.server.base_url + "/admin/search", timeout=60)
    assert r.status_code == 403, "administrators only"


def _serve(data_dir: Path, log: Path) -> tuple[subprocess.Popen, str]:
    """`vna serve` on `data_dir` (anonymous on loopback), and its base URL."""
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("VNA__")}
    env.update({"VNA__AUTH__ANONYMOUS": "loopback", "VNA__SEARCH__POLL_MS": "50"})
    proc = subprocess.Popen([vna_bin(), "serve", "--data-dir", str(data_dir), "--http-listen", "127.0.0.1:0",
                             "--dimse-listen", "127.0.0.1:0"], env=env, stdout=subprocess.PIPE,
                            stderr=open(log, "ab"), text=True)
    line = proc.stdout.readline()
    assert line.startswith("vna ready"), f"the server did not start: {line!r}"
    return proc, line.split("http=")[1].split()[0]


def test_a_killed_server_keeps_its_index_position_and_catches_up(tmp_path):
    data, log = tmp_path / "data", tmp_path / "vna.log"
    proc, base = _serve(data, log)
    try:
        studies = [dicomgen.ct_study(series_count=1, instances_per_series=1, patient_id=PREFIX + f"KILL-{n}",
                                     patient_name="Kill^Test") for n in range(40)]
        for st in studies[:20]:
            assert helpers.stow(base + "/dicom-web", [i.data for i in st]).status_code == 200
        deadline = time.monotonic() + 30
        while (s := requests.get(base + "/admin/search", timeout=30).json())["lag"] > 0:
            assert time.monotonic() < deadline, s
            time.sleep(0.05)
        # More stores, and SIGKILL while the indexer may be in the middle of a batch.
        for st in studies[20:]:
            assert helpers.stow(base + "/dicom-web", [i.data for i in st]).status_code == 200
        generations = lambda: sorted(p.name for p in (data / "search").iterdir() if p.is_dir())
        before = generations()
        proc.kill()
        proc.wait(timeout=30)
        proc, base = _serve(data, log)
        after = requests.get(base + "/admin/search", timeout=30).json()
        assert after["position"] >= s["position"], ("the committed position survives", s, after)
        deadline = time.monotonic() + 30
        while (after := requests.get(base + "/admin/search", timeout=30).json())["lag"] > 0:
            assert time.monotonic() < deadline, after
            time.sleep(0.05)
        r = requests.get(base + "/api/search", params={"q": "Kill", "limit": 100}, timeout=30)
        assert r.status_code == 200 and r.json()["total"] == 40, r.text
        assert not after["rebuilding"] and generations() == before, "no rebuild: the index went on from its position"
    finally:
        proc.kill()
        proc.wait(timeout=30)
