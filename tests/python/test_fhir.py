"""FHIR R4 for the patient record (issue 18): ImagingStudy and DiagnosticReport read and search,
and the CapabilityStatement, read the way an EPR reads them.

Every resource the server writes is checked twice: parsed strictly by the FHIR 4.0.1 models of
SMART's `fhirclient` (required elements, types, cardinality: the EPR-style client reading them),
and validated by the pydantic models of `fhir.resources` (R4B, whose ImagingStudy, Bundle,
Endpoint, OperationOutcome and CapabilityStatement are R4's: the FHIR datatype patterns of ids,
dates, URIs and codes). Searches are checked against a corpus of four studies of two patients
for exactly the studies each must return.

The FHIR front end reads through the same archive calls as QIDO-RS; the catalog's SQL for these
keys is the one QIDO-RS and C-FIND use, so the suite runs on both catalogs and not on S3 (the
blob tier is not read).
"""

from __future__ import annotations

import base64
import urllib.error
import urllib.request

import pytest
import requests
from fhir.resources.R4B.bundle import Bundle as R4BBundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement as R4BCapabilityStatement
from fhir.resources.R4B.diagnosticreport import DiagnosticReport as R4BDiagnosticReport
from fhir.resources.R4B.imagingstudy import ImagingStudy as R4BImagingStudy
from fhir.resources.R4B.operationoutcome import OperationOutcome as R4BOperationOutcome
from fhirclient import client as fhir_client
from fhirclient.models.bundle import Bundle
from fhirclient.models.capabilitystatement import CapabilityStatement
from fhirclient.models.diagnosticreport import DiagnosticReport
from fhirclient.models.imagingstudy import ImagingStudy
from fhirclient.models.operationoutcome import OperationOutcome

import dicomgen
from conftest import ServerPool

FHIR_JSON = "application/fhir+json"
DCM = "http://dicom.nema.org/resources/ontology/DCM"
ISSUER = "1.2.250.1.71.4"
PATIENT_A = dicomgen.PATIENT_ID_PREFIX + "FHIR-A"
PATIENT_B = dicomgen.PATIENT_ID_PREFIX + "FHIR-B"


def study(label: str, *, patient_id: str, name: str, date: str, accession: str, modality: str,
          series: int, per_series: int, issuer: str | None = None) -> list[dicomgen.Instance]:
    instances = dicomgen.ct_study(series_count=series, instances_per_series=per_series, patient_name=name,
                                  patient_id=patient_id, study_date=date, accession=accession)
    changes = {"Modality": modality}
    if issuer:
        changes["IssuerOfPatientID"] = issuer
    return [dicomgen.with_changes(i, **changes) for i in instances]


class Corpus:
    def __init__(self, server, studies: dict[str, list[dicomgen.Instance]]):
        self.server = server
        self.studies = studies
        self.base = server.base_url + "/fhir"

    def uid(self, label: str) -> str:
        return self.studies[label][0].study_uid

    def label(self, uid: str) -> str:
        return next(k for k, v in self.studies.items() if v[0].study_uid == uid)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def corpus(request, tmp_path_factory):
    pool = ServerPool(tmp_path_factory.mktemp(f"fhir-{request.param}"))
    srv = pool.start(request.param, name=f"fhir-{request.param}")
    studies = {
        "a-ct": study("a-ct", patient_id=PATIENT_A, issuer=ISSUER, name="Dupont^Marie^Claire^Mme", date="20240315",
                      accession="FH-ACC-1", modality="CT", series=2, per_series=2),
        "a-mr": study("a-mr", patient_id=PATIENT_A, issuer=ISSUER, name="Dupont^Marie^Claire^Mme", date="20240601",
                      accession="FH-ACC-2", modality="MR", series=1, per_series=3),
        "b-ct": study("b-ct", patient_id=PATIENT_B, name="Smith^John", date="20231231", accession="FH-ACC-3",
                      modality="CT", series=1, per_series=1),
        "b-us": study("b-us", patient_id=PATIENT_B, name="Smith^John", date="20240101", accession="",
                      modality="US", series=1, per_series=2),
    }
    client = srv.client()
    for label, instances in studies.items():
        resp = client.store_instances([i.reread() for i in instances])
        assert len(resp.ReferencedSOPSequence) == len(instances), label
    yield Corpus(srv, studies)
    pool.close()


def get(url: str, **kw) -> requests.Response:
    return requests.get(url, timeout=60, **kw)


def valid_study(doc: dict) -> ImagingStudy:
    R4BImagingStudy.model_validate(doc)
    return ImagingStudy(doc, strict=True)


def valid_bundle(doc: dict) -> Bundle:
    R4BBundle.model_validate(doc)
    b = Bundle(doc, strict=True)
    assert b.type == "searchset"
    for e in b.entry or []:
        valid_study(e.resource.as_json())
        assert e.search.mode == "match"
        assert e.fullUrl.endswith("/ImagingStudy/" + e.resource.id)
    return b


def outcome(r: requests.Response, status: int, code: str) -> str:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["Content-Type"].startswith(FHIR_JSON)
    doc = r.json()
    R4BOperationOutcome.model_validate(doc)
    (issue,) = OperationOutcome(doc, strict=True).issue
    assert (issue.severity, issue.code) == ("error", code), doc
    return issue.diagnostics


def search(c: Corpus, params: list[tuple[str, str]] | dict, **kw) -> list[str]:
    r = get(c.base + "/ImagingStudy", params=params, **kw)
    assert r.status_code == 200, (r.status_code, r.text)
    assert r.headers["Content-Type"].startswith(FHIR_JSON)
    b = valid_bundle(r.json())
    return sorted(c.label(e.resource.id) for e in b.entry or [])


def test_the_capability_statement_is_public_and_valid(corpus):
    # Without any credential (urllib, not the suite's requests that carry a key in secure mode).
    with urllib.request.urlopen(corpus.base + "/metadata", timeout=60) as resp:
        assert resp.headers["Content-Type"].startswith(FHIR_JSON)
        doc = __import__("json").loads(resp.read())
    R4BCapabilityStatement.model_validate(doc)
    cs = CapabilityStatement(doc, strict=True)
    assert cs.fhirVersion == "4.0.1" and cs.kind == "instance"
    (rest,) = cs.rest
    study, report = rest.resource
    assert (study.type, report.type) == ("ImagingStudy", "DiagnosticReport")
    for res in rest.resource:
        assert {i.code for i in res.interaction} == {"read", "search-type"}
    assert {p.name for p in study.searchParam} >= {"identifier", "patient", "started", "modality"}
    assert {p.name for p in report.searchParam} >= {"identifier", "patient", "date"}


def test_a_study_reads_as_an_imaging_study(corpus):
    uid = corpus.uid("a-ct")
    r = get(f"{corpus.base}/ImagingStudy/{uid}")
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith(FHIR_JSON)
    s = valid_study(r.json())
    assert s.id == uid and s.status == "available"
    ids = {(i.system, i.value) for i in s.identifier}
    assert ("urn:dicom:uid", "urn:oid:" + uid) in ids
    (acc,) = [i for i in s.identifier if i.type is not None]
    assert (acc.type.coding[0].code, acc.value) == ("ACSN", "FH-ACC-1")
    assert (s.subject.identifier.system, s.subject.identifier.value) == ("urn:oid:" + ISSUER, PATIENT_A)
    assert s.subject.display == "Mme Marie Claire Dupont"
    assert r.json()["started"] == "2024-03-15", "date precision: DICOM times carry no zone"
    assert [(m.system, m.code) for m in s.modality] == [(DCM, "CT")]
    assert (s.numberOfSeries, s.numberOfInstances) == (2, 4)
    assert s.description == "CT THORAX synthetic"
    # Series and instances, in number order, with what DICOM says of them.
    stored = corpus.studies["a-ct"]
    assert [se.number for se in s.series] == [1, 2]
    for se in s.series:
        mine = [i for i in stored if i.series_uid == se.uid]
        assert len(mine) == 2 and se.numberOfInstances == 2
        assert (se.modality.system, se.modality.code) == (DCM, "CT")
        assert se.bodySite.display == "CHEST"
        assert [i.uid for i in se.instance] == [i.sop_uid for i in mine]
        assert [i.number for i in se.instance] == [1, 2]
        assert {i.sopClass.code for i in se.instance} == {"urn:oid:" + mine[0].sop_class_uid}
    # The endpoint is where a viewer gets the study: our DICOMweb root, which answers for it.
    (ref,) = s.endpoint
    (endpoint,) = [e for e in s.contained if "#" + e.id == ref.reference]
    assert endpoint.connectionType.code == "dicom-wado-rs"
    assert endpoint.address == corpus.server.dicomweb
    q = get(endpoint.address + "/studies", params={"StudyInstanceUID": uid}, headers={"Accept": "application/dicom+json"})
    assert q.status_code == 200 and len(q.json()) == 1


def test_a_patient_without_an_oid_issuer_and_a_study_without_accession(corpus):
    s = valid_study(get(f"{corpus.base}/ImagingStudy/{corpus.uid('b-us')}").json())
    assert s.subject.identifier.system is None and s.subject.identifier.value == PATIENT_B
    assert s.subject.display == "John Smith"
    assert [i.system for i in s.identifier] == ["urn:dicom:uid"], "no accession number, no ACSN identifier"
    assert [m.code for m in s.modality] == ["US"]


def test_unknown_ids_are_not_found(corpus):
    for id_ in ["1.2.3.4.5.6.7", "not-a-uid"]:
        outcome(get(f"{corpus.base}/ImagingStudy/{id_}"), 404, "not-found")


SEARCHES = [
    ([("patient:identifier", PATIENT_A)], ["a-ct", "a-mr"]),
    ([("patient.identifier", f"urn:oid:{ISSUER}|{PATIENT_A}")], ["a-ct", "a-mr"]),
    ([("subject:Patient.identifier", f"urn:oid:9.9.9|{PATIENT_A}")], []),
    ([("subject:identifier", PATIENT_B)], ["b-ct", "b-us"]),
    ([("identifier", "FH-ACC-1")], ["a-ct"]),
    ([("identifier", "http://hospital.example/accession|FH-ACC-1")], []),
    ([("identifier", "urn:dicom:uid|urn:oid:{a-mr}")], ["a-mr"]),
    ([("identifier", "urn:oid:{a-ct},urn:oid:{b-us}")], ["a-ct", "b-us"]),
    ([("_id", "{b-ct}")], ["b-ct"]),
    ([("started", "2024")], ["a-ct", "a-mr", "b-us"]),
    ([("started", "ge2024-03-15"), ("started", "lt2024-06-01")], ["a-ct"]),
    ([("started", "lt2024-01-01")], ["b-ct"]),
    ([("started", "gt2024-01-01")], ["a-ct", "a-mr"]),
    ([("started", "eq2024-06")], ["a-mr"]),
    ([("modality", "MR")], ["a-mr"]),
    ([("modality", f"{DCM}|US,MR")], ["a-mr", "b-us"]),
    ([("patient:identifier", PATIENT_A), ("modality", "CT")], ["a-ct"]),
    ([("patient:identifier", PATIENT_B), ("started", "2024")], ["b-us"]),
]


@pytest.mark.parametrize("params,expected", SEARCHES, ids=lambda v: repr(v) if isinstance(v, list) else None)
def test_searches_return_exactly_the_expected_studies(corpus, params, expected):
    resolved = [(k, v.format(**{label: corpus.uid(label) for label in corpus.studies})) for k, v in params]
    # Only our corpus's patients: the module's server holds nothing else.
    assert search(corpus, resolved) == expected


def test_pages_follow_next_links_and_links_say_what_was_applied(corpus):
    r = get(corpus.base + "/ImagingStudy", params=[("started", "2024"), ("_sort", "-started"), ("_count", "1")])
    seen = []
    pages = 0
    while True:
        assert r.status_code == 200, r.text
        b = valid_bundle(r.json())
        pages += 1
        links = {l.relation: l.url for l in b.link}
        assert "_sort" not in links["self"], "an ignored parameter is left out of the self link"
        assert "started=2024" in links["self"] and "_count=1" in links["self"]
        assert b.total is None, "the size of a result over several pages is not counted"
        seen += [corpus.label(e.resource.id) for e in b.entry]
        if "next" not in links:
            break
        assert pages < 5, "the next links do not end"
        r = get(links["next"])
    assert pages == 3 and sorted(seen) == ["a-ct", "a-mr", "b-us"], (pages, seen)
    b = valid_bundle(get(corpus.base + "/ImagingStudy", params={"modality": "MR"}).json())
    assert b.total == 1, "a result on one page has its size"
    b = valid_bundle(get(corpus.base + "/ImagingStudy", params={"modality": "XA"}).json())
    assert b.total == 0 and not b.entry


def test_bad_searches_get_an_operation_outcome(corpus):
    url = corpus.base + "/ImagingStudy"
    outcome(get(url, params={"started": "2024-13"}), 400, "invalid")
    assert "time zone" in outcome(get(url, params={"started": "ge2024-01-01T10:00:00Z"}), 400, "not-supported")
    assert "identifier" in outcome(get(url, params={"patient": "Patient/17"}), 400, "not-supported")
    outcome(get(url, params={"_count": "-1"}), 400, "invalid")
    outcome(get(url, params={"modality": "http://loinc.org|CT"}), 400, "not-supported")
    outcome(get(url, params={"_sort": "-started"}, headers={"Prefer": "handling=strict"}), 400, "not-supported")
    outcome(get(url, params={"patient:identifier": PATIENT_A}, headers={"Accept": "application/fhir+xml"}), 406, "not-supported")
    outcome(get(url, params={"patient:identifier": PATIENT_A, "_format": "xml"}), 406, "not-supported")
    assert search(corpus, {"patient:identifier": PATIENT_A, "_format": "json"}) == ["a-ct", "a-mr"]
    assert corpus.server.alive


def test_an_epr_client_reads_a_patient_s_studies(corpus):
    """SMART's fhirclient, as an EPR's integration would use it: search by the patient's
    identifier, then read one study and follow its endpoint."""
    smart = fhir_client.FHIRClient(settings={"app_id": "vna-e2e-epr", "api_base": corpus.base})
    found = ImagingStudy.where(struct={"patient:identifier": PATIENT_A}).perform_resources(smart.server)
    assert sorted(corpus.label(s.id) for s in found) == ["a-ct", "a-mr"]
    one = ImagingStudy.read(corpus.uid("a-mr"), smart.server)
    assert one.numberOfInstances == 3 and one.series[0].modality.code == "MR"
    assert one.contained[0].address == corpus.server.dicomweb


# --------------------------------------------------------------------------
# DiagnosticReport: reports sent through the API and stored as SR or PDF
# --------------------------------------------------------------------------

ORU = ("MSH|^~\\&|RIS|HUG|VNA|HUG|20240601120000||ORU^R01^ORU_R01|MSG1|P|2.5\r"
       "PID|1||{pid}^^^HUG||Dupont^Marie\r"
       "OBR|1|PLC1|FIL1^RIS||IRM cérébrale|||||||||||||{accession}\r"
       "OBX|1|TX|18782-3^Study observation^LN||Pas de lésion ischémique.||||||F\r")


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def reported(request, tmp_path_factory):
    """Patient A's CT with an SR and a French text report, its MR with an HL7 ORU^R01 (linked
    by accession number); patient B's US with a PDF report."""
    pool = ServerPool(tmp_path_factory.mktemp(f"fhir-reports-{request.param}"))
    srv = pool.start(request.param, name=f"fhir-reports-{request.param}")
    studies = {
        "a-ct": study("a-ct", patient_id=PATIENT_A, issuer=ISSUER, name="Dupont^Marie", date="20240315", accession="FR-ACC-1",
                      modality="CT", series=1, per_series=1),
        "a-mr": study("a-mr", patient_id=PATIENT_A, issuer=ISSUER, name="Dupont^Marie", date="20240601", accession="FR-ACC-2",
                      modality="MR", series=1, per_series=1),
        "b-us": study("b-us", patient_id=PATIENT_B, name="Smith^John", date="20240101", accession="FR-ACC-3",
                      modality="US", series=1, per_series=1),
    }
    sr = dicomgen.comprehensive_sr(studies["a-ct"][0], ["Nodule pulmonaire de 8 mm.", "Pas d'épanchement pleural."])
    sr = dicomgen.with_changes(sr, IssuerOfPatientID=ISSUER)
    client = srv.client()
    for instances in [*studies.values(), [sr]]:
        client.store_instances([i.reread() for i in instances])
    post = lambda body, media, **params: requests.post(srv.base_url + "/api/reports", params=params, data=body.encode(),  # noqa: E731
                                                      headers={"Content-Type": media}, timeout=60)
    r = post("Nodule stable, contrôle dans 6 mois.", "text/plain; charset=utf-8", StudyInstanceUID=studies["a-ct"][0].study_uid, lang="fr")
    assert r.status_code == 201, r.text
    text_id = f"sent-{r.json()['reportId']}"
    r = post(ORU.format(pid=PATIENT_A, accession="FR-ACC-2"), "x-application/hl7-v2+er7")
    assert r.status_code == 201, r.text
    hl7_id = f"sent-{r.json()['reportId']}"
    fields = [("metadata", (None, __import__("json").dumps({"StudyInstanceUID": studies["b-us"][0].study_uid, "DocumentTitle": "Report"}),
                            "application/json")),
              ("file", ("report.pdf", dicomgen.text_pdf(["Echographie abdominale normale."]), "application/pdf"))]
    r = requests.post(srv.base_url + "/api/non-dicom", files=fields, timeout=60)
    assert r.status_code in (200, 201), r.text
    pdf_sop = r.json()["SOPInstanceUID"]
    c = Corpus(srv, studies)
    c.ids = {"sr": sr.sop_uid, "text": text_id, "hl7": hl7_id, "pdf": pdf_sop}
    yield c
    pool.close()


def reports_found(c: Corpus, params) -> dict[str, DiagnosticReport]:
    r = get(c.base + "/DiagnosticReport", params=params)
    assert r.status_code == 200, (r.status_code, r.text)
    doc = r.json()
    R4BBundle.model_validate(doc)
    b = Bundle(doc, strict=True)
    out = {}
    for e in b.entry or []:
        R4BDiagnosticReport.model_validate(e.resource.as_json())
        assert e.fullUrl.endswith("/DiagnosticReport/" + e.resource.id)
        label = next(k for k, v in c.ids.items() if v == e.resource.id)
        out[label] = e.resource
    assert b.total == len(out)
    return out


def text_of(report) -> str:
    (form,) = report.presentedForm
    assert form.contentType == "text/plain; charset=utf-8"
    return base64.b64decode(form.data).decode()


def test_a_patient_s_reports_read_as_diagnostic_reports(reported):
    c = reported
    found = reports_found(c, {"patient:identifier": PATIENT_A})
    assert set(found) == {"sr", "text", "hl7"}
    for label, study_label in [("sr", "a-ct"), ("text", "a-ct"), ("hl7", "a-mr")]:
        r = found[label]
        assert r.status == "unknown" and r.code.coding[0].code == "18748-4"
        assert [s.reference for s in r.imagingStudy] == ["ImagingStudy/" + c.uid(study_label)]
        assert (r.subject.identifier.system, r.subject.identifier.value) == ("urn:oid:" + ISSUER, PATIENT_A)
        assert r.issued is not None
    assert "Nodule pulmonaire de 8 mm." in text_of(found["sr"])
    assert ("urn:dicom:uid", "urn:oid:" + c.ids["sr"]) in {(i.system, i.value) for i in found["sr"].identifier}
    assert text_of(found["text"]) == "Nodule stable, contrôle dans 6 mois."
    assert found["text"].presentedForm[0].language == "fr"
    assert "Pas de lésion ischémique." in text_of(found["hl7"])
    assert found["hl7"].as_json()["effectiveDateTime"] == "2024-06-01"
    # Each reads alone, the same.
    for label, report in found.items():
        r = get(f"{c.base}/DiagnosticReport/{c.ids[label]}")
        assert r.status_code == 200, r.text
        R4BDiagnosticReport.model_validate(r.json())
        assert DiagnosticReport(r.json(), strict=True).as_json() == report.as_json()


@pytest.mark.parametrize("params,expected", [
    ({"patient:identifier": PATIENT_B}, ["pdf"]),
    ({"identifier": "FR-ACC-2"}, ["hl7"]),
    ({"identifier": "urn:dicom:uid|urn:oid:{sr}"}, ["sr"]),
    ({"_id": "{text},{pdf}"}, ["pdf", "text"]),
    ({"patient:identifier": PATIENT_A, "date": "ge2024-04"}, ["hl7"]),
    ({"patient:identifier": PATIENT_A, "_id": "{pdf}"}, []),
], ids=repr)
def test_report_searches_return_exactly_their_reports(reported, params, expected):
    resolved = {k: v.format(**reported.ids) for k, v in params.items()}
    assert sorted(reports_found(reported, resolved)) == expected


def test_a_pdf_report_gives_its_text_and_unknown_reports_are_not_found(reported):
    (pdf,) = reports_found(reported, {"patient:identifier": PATIENT_B}).values()
    assert "Echographie abdominale normale." in text_of(pdf)
    for id_ in ["sent-999999", "sent-x", "1.2.3.4", "not-a-uid"]:
        outcome(get(f"{reported.base}/DiagnosticReport/{id_}"), 404, "not-found")
    page = get(reported.base + "/DiagnosticReport", params={"patient:identifier": PATIENT_A, "_count": "2"}).json()
    assert len(page["entry"]) == 2 and page["total"] == 3
    assert any(l["relation"] == "next" for l in page["link"])
