"""A pathology viewer's view of the archive: wsidicom opens stored slides over DICOMweb.

One server per catalog backend holds three synthetic slides (slidegen.py), stored
with STOW-RS through dicomweb-client:

* ``plain``: three TILED_FULL levels (1024x768, 512x384, 256x192; 256x256 JPEG
  tiles), a LABEL and an OVERVIEW;
* ``concatenated``: the same, but the base level is a concatenation of two
  instances split inside a tile row;
* ``sparse``: the same, but level 1 is TILED_SPARSE: shuffled frames with their
  positions in the Per-Frame Functional Groups Sequence, one tile absent.

wsidicom (``WsiDicom.open_web`` on a ``WsiDicomWebClient``) finds the instances
with QIDO-RS, reads their metadata with WADO-RS and fetches the tiles it needs
with WADO-RS frames, as a viewer does. What it reads is compared with the
generated tiles, decoded with Pillow.

Why the pixel comparisons are exact (tolerance 0): JPEG is lossy, so the
generated pattern is not what a reader can see; but the archive must return
each stored JPEG frame byte for byte, and wsidicom decodes it with the same
Pillow (libjpeg) that decoded the expected tiles. Any difference is a wrong,
shifted, re-encoded or mis-stitched tile, never rounding.

Every request the viewer makes is recorded (method, URL, Accept, status and,
for an error, the body); a failing test prints them.
"""

from __future__ import annotations

import functools
import threading

import numpy as np
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from pydicom.dataset import Dataset
from wsidicom import WsiDicom, WsiDicomWebClient

import slidegen
from conftest import BACKENDS, HTTP_TIMEOUT_S, ServerPool

JPEG_BASELINE = "1.2.840.10008.1.2.4.50"

# name -> slidegen.slide() arguments (distinct seeds: distinct UIDs and pixels)
SLIDES = {
    "plain": dict(seed=11),
    "concatenated": dict(seed=12, concatenated_level=0),
    "sparse": dict(seed=13, sparse_level=1),
}
KINDS = list(SLIDES)

# wsidicom reads instance metadata with pydicom's Dataset.from_json and no bulk
# data handler; PixelData is a BulkDataURI there (as it should be) and pydicom
# warns about each one. The frames are fetched separately.
pytestmark = pytest.mark.filterwarnings("ignore:No bulk data URI handler provided:UserWarning")


@functools.cache
def make_slide(kind: str) -> slidegen.Slide:
    return slidegen.slide(**SLIDES[kind], name=f"wsi-{kind}")


class RecordingSession(requests.Session):
    """A requests session that records every response (wsidicom opens
    instances from several threads, hence the lock)."""

    def __init__(self):
        super().__init__()
        self.log: list[dict] = []
        self._lock = threading.Lock()
        self.hooks["response"].append(self._record)

    def _record(self, resp: requests.Response, *args, **kwargs):
        entry = {"method": resp.request.method, "url": resp.request.url,
                 "accept": resp.request.headers.get("Accept"), "status": resp.status_code}
        if resp.status_code >= 400:
            entry["body"] = resp.text[:1000]
        with self._lock:
            self.log.append(entry)

    def dump(self) -> str:
        return "\n".join(f"{e['status']} {e['method']} {e['url']}  Accept: {e['accept']}"
                         + (f"\n    body: {e['body']!r}" if "body" in e else "") for e in self.log)

    def failed(self) -> list[dict]:
        return [e for e in self.log if e["status"] >= 400]


@pytest.fixture(scope="module", params=BACKENDS)
def archive(request, tmp_path_factory) -> str:
    """Module-scoped server (per backend) holding the three slides, stored with
    STOW-RS by dicomweb-client; yields its DICOMweb base URL."""
    pool = ServerPool(tmp_path_factory.mktemp(f"wsi-{request.param}"))
    try:
        srv = pool.start(request.param, name=f"wsi-{request.param}")
        client = srv.client()
        for kind in KINDS:
            slide = make_slide(kind)
            resp = client.store_instances(slide.datasets_for_stow())
            stored = {str(it.ReferencedSOPInstanceUID) for it in resp.get("ReferencedSOPSequence", [])}
            assert stored == {i.sop_uid for i in slide.instances()}, f"slide {kind} not fully stored"
            assert len(resp.get("FailedSOPSequence", [])) == 0
        yield srv.dicomweb
    finally:
        pool.close()


@pytest.fixture
def viewer(archive, request):
    """Opens a slide the way a viewer does; yields (wsi, slide, session).
    Use with indirect parametrisation: the parameter is the slide kind."""
    slide = make_slide(request.param)
    session = RecordingSession()
    client = WsiDicomWebClient(DICOMwebClient(url=archive, session=session, timeout=HTTP_TIMEOUT_S))
    try:
        # No requested transfer syntax: wsidicom takes the first it can decode
        # among AvailableTransferSyntaxUID from QIDO-RS, as a viewer does by default.
        wsi = WsiDicom.open_web(client, slide.study_uid, slide.series_uid)
    except BaseException:
        print("requests made by wsidicom:\n" + session.dump())
        raise
    try:
        yield wsi, slide, session
    finally:
        print(f"requests made by wsidicom ({request.param}):\n" + session.dump())
        wsi.close()
        session.close()


def regions(level: slidegen.Level) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """(location, size) a viewer might ask for: the whole level, one whole tile,
    a window across tile borders, the bottom right corner (which ends inside
    partial tiles on the lower levels), and a 1-pixel sliver."""
    w, h, t = level.width, level.height, slidegen.TILE
    out = [((0, 0), (w, h)), ((0, 0), (min(t, w), min(t, h)))]
    if w > t or h > t:
        out.append(((max(0, min(t, w) - 40), max(0, min(t, h) - 30)), (min(90, w), min(70, h))))
    out.append(((w - 77, h - 55), (77, 55)))
    out.append(((w // 2, h // 3), (1, 1)))
    return out


def assert_pixels(got: np.ndarray, want: np.ndarray, what: str):
    assert got.shape == want.shape, f"{what}: shape {got.shape}, expected {want.shape}"
    diff = np.abs(got.astype(int) - want.astype(int))
    if diff.max():
        ys, xs = np.nonzero(diff.max(axis=-1))
        raise AssertionError(f"{what}: {len(ys)} pixels differ (max {diff.max()}), first at x={xs[0]} y={ys[0]}: "
                             f"got {got[ys[0], xs[0]].tolist()}, expected {want[ys[0], xs[0]].tolist()}")


# Not an archive bug: the archive serves both parts of the concatenation correctly
# (test_frames_of_every_instance_over_plain_dicomweb, test_metadata_keeps_...) and
# wsidicom reads the same two files correctly from disk (WsiDicom.open). Its
# DICOMweb source makes one WsiInstance per instance found by QIDO-RS, each with
# a single dataset (web/wsidicom_web_source.py, WsiDicomWebImageData([dataset])),
# while a level keys its instances by identifier, which for a concatenation part
# is SOPInstanceUIDOfConcatenationSource (group/group.py): the second part
# replaces the first, and the TILED_FULL index of the whole level is then read
# from that part alone: frames 1..12 of the 5-frame part 2, which the archive
# rightly refuses with 400 "frame 6 does not exist (the instance has 5 frames)".
WSIDICOM_WEB_CONCATENATION = (
    "wsidicom 0.36.1 cannot read a concatenation over DICOMweb: its web source keeps only "
    "one part per level (keyed by SOPInstanceUIDOfConcatenationSource) and reads the whole "
    "level's frames from it (archive answers 400 for frames past that part's end)")


def kinds(xfail: dict[str, str] | None = None, raises: type[BaseException] | None = None) -> list:
    """The slide kinds as parameters; those in `xfail` marked strict xfail with
    the reason, expecting exactly the exception `raises` (so that another
    failure of the same test still fails)."""
    xfail = xfail or {}
    return [pytest.param(k, marks=pytest.mark.xfail(strict=True, reason=xfail[k], raises=raises))
            if k in xfail else k for k in KINDS]


CONCAT_XFAIL = {"concatenated": WSIDICOM_WEB_CONCATENATION}


# --------------------------------------------------------------------------
# the slide as wsidicom sees it
# --------------------------------------------------------------------------


@pytest.mark.parametrize("viewer", kinds(), indirect=True)
def test_pyramid_structure(viewer):
    wsi, slide, _ = viewer
    assert [lvl.level for lvl in wsi.levels] == [lvl.index for lvl in slide.levels]
    assert [(lvl.size.width, lvl.size.height) for lvl in wsi.levels] == \
        [(lvl.width, lvl.height) for lvl in slide.levels]
    for got, want in zip(wsi.levels, slide.levels):
        assert float(got.pixel_spacing.width) == pytest.approx(want.pixel_spacing_mm)
        assert float(got.pixel_spacing.height) == pytest.approx(want.pixel_spacing_mm)
        assert (got.tile_size.width, got.tile_size.height) == (slidegen.TILE, slidegen.TILE)
    assert (wsi.size.width, wsi.size.height) == (slidegen.BASE_WIDTH, slidegen.BASE_HEIGHT)
    assert float(wsi.mpp.width) == pytest.approx(slidegen.BASE_PIXEL_SPACING_MM * 1000)
    assert wsi.labels is not None and len(wsi.labels) == 1
    assert wsi.overviews is not None and len(wsi.overviews) == 1
    assert str(wsi.uids.study_instance) == slide.study_uid
    assert str(wsi.uids.series_instance) == slide.series_uid
    # The ICC profile (inline binary in a nested sequence of the metadata) is
    # what a colour-managed viewer applies.
    (path,) = wsi.metadata.pyramid.optical_paths
    assert path.identifier == "0"
    assert path.icc_profile == slide.levels[0].instances[0].ds.OpticalPathSequence[0].ICCProfile


@pytest.mark.parametrize("viewer", kinds(CONCAT_XFAIL, raises=AssertionError), indirect=True)
def test_levels_are_made_of_every_stored_instance(viewer):
    """Each level wsidicom reports reads the frames of all of its stored instances."""
    wsi, slide, _ = viewer
    for got, want in zip(wsi.levels, slide.levels):
        uids = {str(ds.uids.instance) for inst in got.instances.values() for ds in inst.datasets}
        frames = sum(ds.frame_count for inst in got.instances.values() for ds in inst.datasets)
        assert uids == {i.sop_uid for i in want.instances}, f"level {want.index}"
        assert frames == sum(len(i.frames) for i in want.instances), f"level {want.index}"


@pytest.mark.parametrize("viewer", kinds(CONCAT_XFAIL, raises=requests.HTTPError), indirect=True)
def test_read_regions_at_every_level(viewer):
    wsi, slide, _ = viewer
    for lvl in slide.levels:
        for (x, y), (w, h) in regions(lvl):
            got = wsi.read_region((x, y), lvl.index, (w, h), as_array=True)
            assert_pixels(got, lvl.expected[y:y + h, x:x + w], f"level {lvl.index} region ({x},{y}) {w}x{h}")


@pytest.mark.parametrize("viewer", kinds(CONCAT_XFAIL, raises=AssertionError), indirect=True)
def test_encoded_tiles_are_the_stored_frames(viewer):
    """A viewer that forwards JPEG tiles unchanged gets the stored bytes."""
    wsi, slide, _ = viewer
    for lvl in slide.levels:
        for row in range(lvl.tiles_y):
            for col in range(lvl.tiles_x):
                if (col, row) in lvl.missing_tiles:
                    continue
                got = wsi.read_encoded_tile(lvl.index, (col, row), crop_to_image_boundary=False)
                assert got == lvl.tile(col, row), f"level {lvl.index} tile ({col},{row}) differs"


@pytest.mark.parametrize("viewer", kinds(), indirect=True)
def test_label_and_overview(viewer):
    wsi, slide, _ = viewer
    assert_pixels(wsi.read_label(as_array=True), slide.label.expected, "label")
    assert_pixels(wsi.read_overview(as_array=True), slide.overview.expected, "overview")


@pytest.mark.parametrize("viewer", kinds(CONCAT_XFAIL, raises=requests.HTTPError), indirect=True)
def test_viewer_requests_all_succeed(viewer):
    """Opening and reading every level makes only successful requests, and the
    tiles come as JPEG baseline frames (the stored transfer syntax)."""
    wsi, slide, session = viewer
    for lvl in slide.levels:
        wsi.read_region((0, 0), lvl.index, (lvl.width, lvl.height))
    wsi.read_label()
    wsi.read_overview()
    assert session.failed() == [], "failed requests:\n" + session.dump()
    frame_requests = [e for e in session.log if "/frames/" in e["url"]]
    assert frame_requests, session.dump()
    for e in frame_requests:
        assert "image/jpeg" in e["accept"] and JPEG_BASELINE in e["accept"], e


# --------------------------------------------------------------------------
# the archive's side of the scanner layouts, without wsidicom
# --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_frames_of_every_instance_over_plain_dicomweb(archive, kind):
    """Each stored instance (concatenation part, sparse level) returns its own
    frames, in its own frame order, byte for byte."""
    client = DICOMwebClient(url=archive, timeout=HTTP_TIMEOUT_S)
    for inst in make_slide(kind).instances():
        numbers = list(range(1, len(inst.frames) + 1))
        got = client.retrieve_instance_frames(inst.study_uid, inst.series_uid, inst.sop_uid, frame_numbers=numbers,
                                              media_types=(("image/jpeg", JPEG_BASELINE),))
        assert got == inst.frames, f"{inst.label}: frames differ"


@pytest.mark.parametrize("kind", ["concatenated", "sparse"])
def test_metadata_keeps_concatenation_and_frame_positions(archive, kind):
    """What wsidicom needs from the metadata of these layouts is there, unchanged."""
    client = DICOMwebClient(url=archive, timeout=HTTP_TIMEOUT_S)
    slide = make_slide(kind)
    for lvl in slide.levels:
        for inst in lvl.instances:
            meta = client.retrieve_instance_metadata(inst.study_uid, inst.series_uid, inst.sop_uid)
            ds = Dataset.from_json(meta)
            for kw in ("SOPInstanceUIDOfConcatenationSource", "ConcatenationUID", "InConcatenationNumber",
                       "InConcatenationTotalNumber", "ConcatenationFrameOffsetNumber",
                       "DimensionOrganizationType", "NumberOfFrames", "TotalPixelMatrixColumns",
                       "TotalPixelMatrixRows", "FrameOfReferenceUID"):
                assert ds.get(kw) == inst.ds.get(kw), f"{inst.label}: {kw} {ds.get(kw)!r} != {inst.ds.get(kw)!r}"
            if "PerFrameFunctionalGroupsSequence" in inst.ds:
                want = [(f.PlanePositionSlideSequence[0].ColumnPositionInTotalImagePixelMatrix,
                         f.PlanePositionSlideSequence[0].RowPositionInTotalImagePixelMatrix)
                        for f in inst.ds.PerFrameFunctionalGroupsSequence]
                got = [(f.PlanePositionSlideSequence[0].ColumnPositionInTotalImagePixelMatrix,
                        f.PlanePositionSlideSequence[0].RowPositionInTotalImagePixelMatrix)
                       for f in ds.PerFrameFunctionalGroupsSequence]
                assert got == want, f"{inst.label}: plane positions differ"


@pytest.mark.parametrize("kind", ["concatenated", "sparse"])
def test_qido_finds_concatenation_parts_and_tiled_levels(archive, kind):
    """A viewer finds a slide's layout through QIDO-RS, matched and returned from the
    catalog's own columns: the parts of a concatenation by ConcatenationUID (in
    InConcatenationNumber order), the sparse level by DimensionOrganizationType, a level by
    its TotalPixelMatrixColumns."""
    slide = make_slide(kind)
    url = f"{archive}/studies/{slide.study_uid}/series/{slide.series_uid}/instances"
    fields = ["ConcatenationUID", "SOPInstanceUIDOfConcatenationSource", "InConcatenationNumber",
              "DimensionOrganizationType", "TotalPixelMatrixColumns", "TotalPixelMatrixRows"]
    def qido(**params) -> list[Dataset]:
        r = requests.get(url, params={**params, "includefield": ",".join(fields)}, timeout=HTTP_TIMEOUT_S)
        assert r.status_code in (200, 204), r.text
        return [] if r.status_code == 204 else [Dataset.from_json(d) for d in r.json()]

    volume = [i for lvl in slide.levels for i in lvl.instances]
    if kind == "concatenated":
        parts = [i for i in volume if "ConcatenationUID" in i.ds]
        assert len(parts) == 2
        found = qido(ConcatenationUID=parts[0].ds.ConcatenationUID)
        assert sorted(str(d.SOPInstanceUID) for d in found) == sorted(i.sop_uid for i in parts)
        for d in found:
            want = next(i.ds for i in parts if i.sop_uid == d.SOPInstanceUID)
            for kw in fields:
                assert d.get(kw) == want.get(kw), f"{kw}: {d.get(kw)!r} != {want.get(kw)!r}"
        assert [str(d.SOPInstanceUID) for d in qido(InConcatenationNumber="2")] == [i.sop_uid for i in parts if i.ds.InConcatenationNumber == 2]
    else:
        sparse = [i for i in volume if i.ds.get("DimensionOrganizationType") == "TILED_SPARSE"]
        assert len(sparse) == 1
        assert [str(d.SOPInstanceUID) for d in qido(DimensionOrganizationType="TILED_SPARSE")] == [sparse[0].sop_uid]
        base = slide.levels[0]
        found = qido(TotalPixelMatrixColumns=str(base.width))
        assert sorted(str(d.SOPInstanceUID) for d in found) == sorted(i.sop_uid for i in base.instances)
