"""Non-DICOM ingest (POST /api/non-dicom): what an operating-room recorder or a
department sends outside DICOM — an MP4 video, a PDF report, a JPEG photo — with
patient/study metadata as JSON, archived as DICOM and found and retrieved like
everything else.

Per backend, one server. The files are made here: the video with Debian's ffmpeg
(testsrc, H.264 High profile), the photo with Pillow, the PDF by hand. Checks:

* the upload answers 201 with UIDs and a RetrieveURL (also the Location header);
* the stored object, retrieved with dicomweb-client, is the right IOD (SOP class,
  transfer syntax, attributes from the metadata and from the file: rows, columns,
  frames, frame time) and carries the file byte for byte; dcmdump reads it;
* joining a stored study by StudyInstanceUID copies its patient and study;
* the video plays back: /rendered as video/mp4 with Range, accepted by ffprobe;
  the photo renders; the instances are found by QIDO-RS and by C-FIND (dcmtk);
* bad input (unknown attribute, invalid value, wrong or missing part, a file that
  is not what its Content-Type says, a patient that does not match the study, an
  oversize file) is refused with a precise status, stores nothing, and the server
  keeps serving.
"""

from __future__ import annotations

import io
import json
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pydicom
import pytest
import requests
from PIL import Image

from conftest import BACKENDS, HTTP_TIMEOUT_S, ServerPool

FFMPEG = "/usr/bin/ffmpeg"
FFPROBE = "/usr/bin/ffprobe"
DCMDUMP = "/usr/bin/dcmdump"
FINDSCU = "/usr/bin/findscu"

VIDEO_ENDOSCOPIC = "1.2.840.10008.5.1.4.1.1.77.1.1.1"
VIDEO_PHOTOGRAPHIC = "1.2.840.10008.5.1.4.1.1.77.1.4.1"
VL_PHOTOGRAPHIC = "1.2.840.10008.5.1.4.1.1.77.1.4"
ENCAPSULATED_PDF = "1.2.840.10008.5.1.4.1.1.104.1"
H264_HIGH_41 = "1.2.840.10008.1.2.4.102"
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
EXPLICIT_LE = "1.2.840.10008.1.2.1"


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, bytes]:
    d = tmp_path_factory.mktemp("non-dicom-files")
    mp4 = d / "clip.mp4"
    r = subprocess.run([FFMPEG, "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25", "-t", "2",
                        "-c:v", "libx264", "-profile:v", "high", "-level", "4.1", "-pix_fmt", "yuv420p",
                        "-bitexact", "-y", str(mp4)], capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr.decode("utf-8", "replace")
    rng = np.random.default_rng(5)
    img = Image.fromarray(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8), "RGB")
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    pdf = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n" + b"x"  # odd length
    return {"video/mp4": mp4.read_bytes(), "image/jpeg": buf.getvalue(), "application/pdf": pdf}


@pytest.fixture(scope="module", params=BACKENDS)
def srv(request, tmp_path_factory):
    pool = ServerPool(tmp_path_factory.mktemp(f"non-dicom-{request.param}"))
    try:
        # A small object limit so that the oversize case is cheap (the video is ~10 kB).
        yield pool.start(request.param, name=f"non-dicom-{request.param}",
                         env={"VNA__INGEST__MAX_OBJECT_BYTES": "1048576"})
    finally:
        pool.close()


def upload(srv, metadata, content: bytes, media_type: str, *, raw_metadata: str | None = None) -> requests.Response:
    fields = [("metadata", (None, raw_metadata if raw_metadata is not None else json.dumps(metadata), "application/json")),
              ("file", ("upload", content, media_type))]
    return requests.post(srv.base_url + "/api/non-dicom", files=fields, timeout=HTTP_TIMEOUT_S)


def retrieve(srv, created: dict) -> pydicom.Dataset:
    client = srv.client()
    return client.retrieve_instance(created["StudyInstanceUID"], created["SeriesInstanceUID"], created["SOPInstanceUID"],
                                    media_types=(("application/dicom", "*"),))


def fragments(ds: pydicom.Dataset) -> bytes:
    return b"".join(pydicom.encaps.generate_fragments(ds.PixelData))


def stored_count(srv) -> int:
    r = requests.get(srv.dicomweb + "/instances", timeout=HTTP_TIMEOUT_S)
    return 0 if r.status_code == 204 else len(r.json())


def test_a_video_becomes_a_video_endoscopic_image_and_plays_back(srv, files, tmp_path):
    mp4 = files["video/mp4"]
    meta = {"PatientID": "ND-VID-1", "PatientName": "Endo^Video", "PatientBirthDate": "19700101", "PatientSex": "F",
            "StudyDescription": "Colonoscopy", "AccessionNumber": "ACC-ND-1", "Modality": "ES",
            "SeriesDescription": "OR recorder"}
    r = upload(srv, meta, mp4, "video/mp4")
    assert r.status_code == 201, r.text
    created = r.json()
    assert r.headers["Location"] == created["RetrieveURL"]
    assert created["SOPClassUID"] == VIDEO_ENDOSCOPIC and created["TransferSyntaxUID"] == H264_HIGH_41
    for k in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
        assert created[k].startswith("2.25.") and len(created[k]) <= 64

    ds = retrieve(srv, created)
    assert ds.file_meta.TransferSyntaxUID == H264_HIGH_41
    assert (ds.PatientID, str(ds.PatientName), ds.PatientBirthDate, ds.PatientSex) == ("ND-VID-1", "Endo^Video", "19700101", "F")
    assert (ds.StudyDescription, ds.AccessionNumber, ds.Modality, ds.SeriesDescription) == ("Colonoscopy", "ACC-ND-1", "ES", "OR recorder")
    assert (ds.Rows, ds.Columns, int(ds.NumberOfFrames), ds.SamplesPerPixel) == (240, 320, 50, 3)
    assert float(ds.FrameTime) == pytest.approx(40.0) and int(ds.CineRate) == 25
    assert ds.PhotometricInterpretation == "YBR_PARTIAL_420"
    assert fragments(ds).rstrip(b"\0")[: len(mp4)] == mp4 and len(fragments(ds)) == len(mp4) + len(mp4) % 2

    path = tmp_path / "video.dcm"
    ds.save_as(path, enforce_file_format=True)
    dump = subprocess.run([DCMDUMP, "-q", str(path)], capture_output=True, timeout=60)
    assert dump.returncode == 0, dump.stderr.decode("utf-8", "replace")

    url = created["RetrieveURL"] + "/rendered"
    whole = requests.get(url, headers={"Accept": "video/mp4"}, timeout=HTTP_TIMEOUT_S)
    assert whole.status_code == 200 and whole.headers["Content-Type"] == "video/mp4"
    assert whole.headers["Accept-Ranges"] == "bytes"
    assert whole.content[: len(mp4)] == mp4
    part = requests.get(url, headers={"Accept": "video/mp4", "Range": "bytes=1000-1999"}, timeout=HTTP_TIMEOUT_S)
    assert part.status_code == 206 and part.content == whole.content[1000:2000]
    assert part.headers["Content-Range"] == f"bytes 1000-1999/{len(whole.content)}"
    played = tmp_path / "played.mp4"
    played.write_bytes(whole.content)
    probe = subprocess.run([FFPROBE, "-v", "error", "-select_streams", "v:0", "-show_entries",
                            "stream=codec_name,width,height", "-of", "json", str(played)], capture_output=True, timeout=60)
    assert probe.returncode == 0, probe.stderr.decode("utf-8", "replace")
    stream = json.loads(probe.stdout)["streams"][0]
    assert (stream["codec_name"], stream["width"], stream["height"]) == ("h264", 320, 240)


def test_a_pdf_and_a_photo_join_a_stored_study(srv, files):
    first = upload(srv, {"PatientID": "ND-JOIN-1", "PatientName": "Join^Study", "StudyDescription": "Dermatology",
                         "StudyDate": "20261130", "AccessionNumber": "ACC-J"}, files["image/jpeg"], "image/jpeg")
    assert first.status_code == 201, first.text
    study = first.json()["StudyInstanceUID"]
    photo = retrieve(srv, first.json())
    assert photo.SOPClassUID == VL_PHOTOGRAPHIC and photo.file_meta.TransferSyntaxUID == JPEG_BASELINE
    assert (photo.Rows, photo.Columns, photo.SamplesPerPixel, photo.PhotometricInterpretation) == (120, 160, 3, "YBR_FULL_422")
    jpeg = files["image/jpeg"]
    assert fragments(photo)[: len(jpeg)] == jpeg
    rendered = requests.get(first.json()["RetrieveURL"] + "/rendered", headers={"Accept": "image/png"}, timeout=HTTP_TIMEOUT_S)
    assert rendered.status_code == 200, rendered.text
    assert Image.open(io.BytesIO(rendered.content)).size == (160, 120)

    # Only the study UID: the patient and study come from the stored study.
    pdf = files["application/pdf"]
    second = upload(srv, {"StudyInstanceUID": study, "DocumentTitle": "Discharge letter"}, pdf, "application/pdf")
    assert second.status_code == 201, second.text
    assert second.json()["StudyInstanceUID"] == study
    doc = retrieve(srv, second.json())
    assert doc.SOPClassUID == ENCAPSULATED_PDF and doc.file_meta.TransferSyntaxUID == EXPLICIT_LE
    assert (doc.PatientID, str(doc.PatientName), doc.StudyDescription, doc.StudyDate, doc.AccessionNumber) == \
        ("ND-JOIN-1", "Join^Study", "Dermatology", "20261130", "ACC-J")
    assert doc.MIMETypeOfEncapsulatedDocument == "application/pdf" and doc.DocumentTitle == "Discharge letter"
    assert doc.EncapsulatedDocumentLength == len(pdf)
    assert bytes(doc.EncapsulatedDocument)[: len(pdf)] == pdf

    r = requests.get(f"{srv.dicomweb}/studies/{study}/instances", timeout=HTTP_TIMEOUT_S)
    classes = sorted(i["00080016"]["Value"][0] for i in r.json())
    assert classes == sorted([VL_PHOTOGRAPHIC, ENCAPSULATED_PDF])

    out = Path(tempfile.mkdtemp())
    args = [FINDSCU, "-aec", "VNA", "-S", "-X", "-od", str(out), "-k", "QueryRetrieveLevel=STUDY",
            "-k", f"StudyInstanceUID={study}", "-k", "PatientID", "-k", "NumberOfStudyRelatedInstances"]
    f = subprocess.run([*args, "127.0.0.1", str(srv.dimse_port)], capture_output=True, timeout=120)
    assert f.returncode == 0, f.stderr.decode("utf-8", "replace")
    found = [pydicom.dcmread(p, force=True) for p in sorted(out.glob("rsp*.dcm"))]
    assert [(x.PatientID, int(x.NumberOfStudyRelatedInstances)) for x in found] == [("ND-JOIN-1", 2)]


@pytest.mark.parametrize("case", ["unknown-attribute", "invalid-date", "invalid-uid", "not-json", "not-an-object",
                                  "no-patient", "wrong-content-type", "not-a-jpeg", "not-an-mp4", "file-first",
                                  "patient-mismatch", "oversize", "not-form-data"])
def test_bad_input_is_refused_and_nothing_is_stored(srv, files, case):
    before = stored_count(srv)
    jpeg, mp4 = files["image/jpeg"], files["video/mp4"]
    expected = 400
    if case == "unknown-attribute":
        r = upload(srv, {"PatientID": "B", "PatientWeight": "80"}, jpeg, "image/jpeg")
    elif case == "invalid-date":
        r = upload(srv, {"PatientID": "B", "PatientBirthDate": "1980-02-30"}, jpeg, "image/jpeg")
    elif case == "invalid-uid":
        r = upload(srv, {"PatientID": "B", "StudyInstanceUID": "1.2.x"}, jpeg, "image/jpeg")
    elif case == "not-json":
        r = upload(srv, None, jpeg, "image/jpeg", raw_metadata="{PatientID: B")
    elif case == "not-an-object":
        r = upload(srv, ["PatientID", "B"], jpeg, "image/jpeg")
    elif case == "no-patient":
        r = upload(srv, {"StudyDescription": "x"}, jpeg, "image/jpeg")
    elif case == "wrong-content-type":
        r, expected = upload(srv, {"PatientID": "B"}, jpeg, "image/png"), 415
    elif case == "not-a-jpeg":
        r = upload(srv, {"PatientID": "B"}, files["application/pdf"], "image/jpeg")
    elif case == "not-an-mp4":
        r = upload(srv, {"PatientID": "B"}, jpeg, "video/mp4")
    elif case == "file-first":
        fields = [("file", ("upload", jpeg, "image/jpeg")), ("metadata", (None, '{"PatientID": "B"}', "application/json"))]
        r = requests.post(srv.base_url + "/api/non-dicom", files=fields, timeout=HTTP_TIMEOUT_S)
    elif case == "patient-mismatch":
        ok = upload(srv, {"PatientID": "ND-MISMATCH"}, jpeg, "image/jpeg")
        assert ok.status_code == 201, ok.text
        before = stored_count(srv)
        r, expected = upload(srv, {"PatientID": "SOMEONE-ELSE", "StudyInstanceUID": ok.json()["StudyInstanceUID"]}, jpeg, "image/jpeg"), 409
    elif case == "oversize":
        r, expected = upload(srv, {"PatientID": "B"}, mp4 * (2 * 1048576 // len(mp4) + 1), "video/mp4"), 413
    else:
        r, expected = requests.post(srv.base_url + "/api/non-dicom", data=jpeg, headers={"Content-Type": "image/jpeg"},
                                    timeout=HTTP_TIMEOUT_S), 415
    assert r.status_code == expected, (case, r.status_code, r.text)
    assert r.text.strip(), "the refusal says why"
    assert stored_count(srv) == before, "nothing was stored"
    assert requests.get(srv.base_url + "/healthz", timeout=HTTP_TIMEOUT_S).status_code == 200
    spool = srv.data_dir / "spool"
    assert not (spool.exists() and list(spool.glob("*"))), "the spooled upload was removed"
