"""Rendered images, thumbnails, transcoded frames and video playback (PS3.18 §10.4.1.1.3-4, §8.3.5.1).

One server per catalog backend holds the corpus of imagegen.py, stored with STOW-RS one
instance at a time:

* study ``ct``: a 64x48 16-bit MONOCHROME2 CT-like image (Rescale Intercept -1024, window
  40/256) natively, in RLE Lossless, JPEG Lossless (.4.57 SV6 and .4.70 SV1, dcmcjpeg), JPEG
  2000 lossless (Pillow), and stored signed with a zero intercept; its 12-bit variant natively
  and in JPEG Extended (.4.51, lossy, dcmcjpeg +ee); a MONOCHROME1 twin and a window-less twin;
* study ``levels``: three flat images (grey 32/128/224 after their window), stored 3, 1, 2;
* study ``mf``: a 5-frame 8-bit native multi-frame and its RLE twin;
* study ``rgb``: a 320x240 RGB JPEG baseline (YBR_FULL_422);
* study ``jls``: the CT image in JPEG-LS (not decodable by the archive: 406);
* studies ``video-h264`` (MP4, fragmentable H.264 High@4.1, .4.102.1, in five unequal
  fragments) and ``video-mpeg2`` (MPEG-2 MP@ML, .4.100).

What is exact: every lossless encoding renders pixel-identical to the native one, and the
native one equals the PS3.3 C.11.2.1.2.1 window computed with numpy. Window 40/256 makes
the linear function y = x - c + 128, an integer, so that comparison is exact; for other
windows the standard leaves the final quantisation to 8 bits open, so a rendered value must
be within one grey level of the exact real value (|got - y| < 1: floor, round or ceil).
Lossy inputs (JPEG baseline, 12-bit extended) are compared with a reference decoder
(Pillow, dcmtk's dcmdjpeg) within stated tolerances; lossy output (rendered JPEG) is compared
with the exact PNG rendering within a stated tolerance.
"""

from __future__ import annotations

import io
import json
import re
import subprocess

import numpy as np
import pytest
import requests
from PIL import Image

import imagegen
from conftest import BACKENDS, ServerPool
from helpers import TIMEOUT, parse_multipart, stow

FFPROBE = "/usr/bin/ffprobe"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
ACCEPT_NATIVE_FRAMES = f'multipart/related; type="application/octet-stream"; transfer-syntax={EXPLICIT_LE}'
ACCEPT_STORED_FRAMES = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SOI = b"\xff\xd8"

LOSSLESS_16 = ["ct16-rle", "ct16-jpegll57", "ct16-jpegll70", "ct16-j2k", "ct16-signed"]
# JPEG Extended with 12-bit samples (dcmcjpeg +ee): jpeg-decoder, the archive's pure-Rust JPEG
# codec, has no 12-bit DCT, so the archive refuses to render or transcode it with 406 and a
# reason naming the transfer syntax (it still stores and serves the stored bytes).
JPEG_EXTENDED = "1.2.840.10008.1.2.4.51"


# --------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> imagegen.RenderCorpus:
    return imagegen.build(tmp_path_factory.mktemp("render-corpus"))


class Archive:
    def __init__(self, server, corpus: imagegen.RenderCorpus):
        self.server = server
        self.corpus = corpus
        self.url = server.dicomweb
        self.http = requests.Session()

    def __getitem__(self, label: str) -> imagegen.Img:
        return self.corpus[label]

    def study_url(self, label: str) -> str:
        return f"{self.url}/studies/{self[label].study_uid}"

    def series_url(self, label: str) -> str:
        return f"{self.study_url(label)}/series/{self[label].series_uid}"

    def instance_url(self, label: str) -> str:
        return f"{self.series_url(label)}/instances/{self[label].sop_uid}"

    def get(self, url: str, accept: str | None = "*/*", params: dict | None = None,
            headers: dict | None = None, method: str = "GET") -> requests.Response:
        h = {"Accept": accept} | (headers or {})
        return self.http.request(method, url, params=params, headers=h, timeout=TIMEOUT)


@pytest.fixture(scope="module", params=BACKENDS)
def archive(request, tmp_path_factory, corpus):
    pool = ServerPool(tmp_path_factory.mktemp(f"rendered-{request.param}"))
    try:
        srv = pool.start(request.param, name=f"rendered-{request.param}")
        # One instance per request, in corpus order (the "levels" series goes in as 3, 1, 2).
        for inst in corpus.all():
            r = stow(srv.dicomweb, [inst.data])
            assert r.status_code == 200, f"STOW {inst.label}: {r.status_code} {r.text[:300]}"
        a = Archive(srv, corpus)
        yield a
        a.http.close()
    finally:
        pool.close()


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


def media_type(r: requests.Response) -> str:
    return r.headers.get("Content-Type", "").split(";")[0].strip().lower()


def ok(r: requests.Response, mtype: str) -> bytes:
    assert r.status_code == 200, f"{r.request.method} {r.url}: {r.status_code} {r.text[:300]}"
    assert media_type(r) == mtype, f"{r.url}: Content-Type {r.headers.get('Content-Type')!r}, expected {mtype}"
    return r.content


def decode(data: bytes, fmt: str) -> np.ndarray:
    assert data.startswith(PNG_SIGNATURE if fmt == "PNG" else JPEG_SOI), f"not a {fmt}: {data[:16]!r}"
    img = Image.open(io.BytesIO(data))
    assert img.format == fmt
    return np.asarray(img)


def gray(a: np.ndarray) -> np.ndarray:
    """A monochrome rendering: 8-bit grey (L), or RGB with three equal channels."""
    if a.ndim == 3:
        assert a.shape[2] == 3 and (a[..., 0] == a[..., 1]).all() and (a[..., 0] == a[..., 2]).all(), \
            "a monochrome image rendered with colour"
        a = a[..., 0]
    assert a.dtype == np.uint8
    return a


def png(r: requests.Response) -> np.ndarray:
    return decode(ok(r, "image/png"), "PNG")


def jpeg(r: requests.Response) -> np.ndarray:
    return decode(ok(r, "image/jpeg"), "JPEG")


def rendered_png(archive: Archive, label: str, suffix: str = "rendered", **params) -> np.ndarray:
    return gray(png(archive.get(f"{archive.instance_url(label)}/{suffix}", accept="image/png", params=params)))


def assert_within(got: np.ndarray, expected: np.ndarray, tol: float, what: str, mean_tol: float | None = None):
    """|got - expected| < tol everywhere (and mean |got - expected| <= mean_tol)."""
    assert got.shape == expected.shape, f"{what}: shape {got.shape}, expected {expected.shape}"
    d = np.abs(got.astype(np.float64) - expected.astype(np.float64))
    bad = np.argwhere(d >= tol)
    assert bad.size == 0, (f"{what}: {len(bad)} pixels off by >= {tol} (max {d.max():.3f}); first at "
                           f"{bad[0].tolist()}: got {got[tuple(bad[0])]}, expected {expected[tuple(bad[0])]}")
    if mean_tol is not None:
        assert d.mean() <= mean_tol, f"{what}: mean difference {d.mean():.3f} > {mean_tol}"


def assert_equal_image(got: np.ndarray, expected: np.ndarray, what: str):
    assert got.shape == expected.shape, f"{what}: shape {got.shape}, expected {expected.shape}"
    diff = np.argwhere(got != expected)
    assert diff.size == 0, (f"{what}: {len(diff)} pixels differ; first at {diff[0].tolist()}: "
                            f"got {got[tuple(diff[0])]}, expected {expected[tuple(diff[0])]}")


def ct_modality(archive: Archive, label: str = "ct16-native") -> np.ndarray:
    return imagegen.modality(archive[label].pixels)


def expected_ct16() -> np.ndarray:
    """The data set window (40/256) applied to the CT image: an integer function, exact."""
    e = imagegen.window_linear(imagegen.modality(imagegen.ct_array(16)), *imagegen.CT_WINDOW)
    r = np.rint(e)
    assert np.abs(e - r).max() < 1e-9 and 0 < (e == 0).sum() and 0 < (e == 255).sum() \
        and ((e > 0) & (e < 255)).sum() > 500, "window 40/256 should be an integer ramp with both clamps"
    return r.astype(np.uint8)


def multipart_images(r: requests.Response, mtype: str) -> list[bytes]:
    assert r.status_code == 200, f"{r.url}: {r.status_code} {r.text[:300]}"
    ctype = r.headers.get("Content-Type", "")
    assert media_type(r) == "multipart/related", ctype
    m = re.search(r'type="?([^";]+)"?', ctype, re.I)
    assert m and m.group(1).lower() == mtype, f"multipart type parameter in {ctype!r}, expected {mtype}"
    parts = parse_multipart(r)
    for headers, data in parts:
        assert headers.get("content-type", "").split(";")[0].strip().lower() == mtype, headers
    return [data for _, data in parts]


def frames_native(archive: Archive, label: str, frames: str, accept: str = ACCEPT_NATIVE_FRAMES) -> list[tuple[dict, bytes]]:
    r = archive.get(f"{archive.instance_url(label)}/frames/{frames}", accept=accept)
    assert r.status_code == 200, f"{r.url}: {r.status_code} {r.text[:300]}"
    return parse_multipart(r)


# --------------------------------------------------------------------------
# Windowing and lossless decoding: exact
# --------------------------------------------------------------------------


def test_native_png_is_the_data_set_window(archive):
    r = archive.get(f"{archive.instance_url('ct16-native')}/rendered", accept="image/png")
    got = gray(png(r))
    assert got.shape == (imagegen.CT_ROWS, imagegen.CT_COLS)
    assert_equal_image(got, expected_ct16(), "ct16-native, data set window 40/256")


@pytest.mark.parametrize("label", [*LOSSLESS_16, "ct12-native"])
def test_lossless_variant_renders_pixel_identical_to_native(archive, label):
    """Same modality values in another encoding (or stored signed, or 12 bits): same image.
    The outlier (30000) and the zero of the 16-bit image sit in the clamped parts, the ramp in
    between; a decoder that drops bits, mixes bytes or ignores the sign shows."""
    native = rendered_png(archive, "ct16-native")
    got = rendered_png(archive, label)
    assert_equal_image(got, native, f"{label} vs ct16-native")
    assert_equal_image(got, expected_ct16(), f"{label} vs the window formula")


@pytest.mark.parametrize("fn,ref", [
    ("", imagegen.window_linear),
    ("linear", imagegen.window_linear),
    ("linear-exact", imagegen.window_linear_exact),
    ("sigmoid", imagegen.window_sigmoid),
], ids=["default", "linear", "linear-exact", "sigmoid"])
@pytest.mark.parametrize("label", ["ct16-native", "ct16-j2k", "ct16-signed"])
def test_window_parameter_overrides_the_data_set(archive, label, fn, ref):
    c, w = 100.0, 600.0
    window = f"{c:g},{w:g}" + (f",{fn}" if fn else "")
    got = rendered_png(archive, label, window=window)
    expected = ref(ct_modality(archive), c, w)
    assert ((expected > 5) & (expected < 250)).mean() > 0.9, "the override window should cover the ramp"
    assert_within(got, expected, 1.0, f"{label} window={window}")
    assert not np.array_equal(got, expected_ct16()), "the data set window was used"


def test_window_functions_differ(archive):
    """linear-exact and sigmoid are not silently the linear function."""
    lin = rendered_png(archive, "ct16-native", window="100,600,linear").astype(int)
    sig = rendered_png(archive, "ct16-native", window="100,600,sigmoid").astype(int)
    assert np.abs(lin - sig).max() > 10
    # sigmoid: 127.5 at the center, never reaching 0 or 255 on the ramp; monotonic in x
    x = ct_modality(archive).ravel()
    order = np.argsort(x, kind="stable")
    assert (np.diff(sig.ravel()[order]) >= 0).all(), "sigmoid output is not monotonic in the input"


def test_monochrome1_is_inverted(archive):
    got = rendered_png(archive, "mono1")
    assert_equal_image(got, 255 - expected_ct16(), "MONOCHROME1 with window 40/256")


def test_no_window_is_min_max_normalised(archive):
    got = rendered_png(archive, "nowindow")
    assert_within(got, imagegen.min_max(ct_modality(archive)), 1.0, "min-max normalisation")
    assert got.min() == 0 and got.max() == 255


def test_8bit_full_range_without_window_is_unchanged(archive):
    """0..255 min-max normalised onto 0..255 is the identity (no rounding involved)."""
    assert_equal_image(rendered_png(archive, "mono8"), archive["mono8"].pixels, "mono8 without a window")


# --------------------------------------------------------------------------
# Lossy inputs and outputs
# --------------------------------------------------------------------------


def test_rendered_default_is_jpeg_close_to_png(archive):
    url = f"{archive.instance_url('ct16-native')}/rendered"
    exact = expected_ct16()
    for accept in (None, "image/jpeg", "image/*", "*/*"):
        r = archive.get(url, accept=accept)
        got = gray(jpeg(r))
        assert got.shape == exact.shape, f"Accept {accept}"
        # JPEG at the default quality of a noisy ramp: stated tolerance < 40, mean 3 (measured: 15, 2.1).
        assert_within(got, exact, 40, f"rendered JPEG (Accept {accept})", mean_tol=3.0)


def test_accept_query_parameter_png(archive):
    r = archive.get(f"{archive.instance_url('ct16-native')}/rendered", accept="image/jpeg",
                    params={"accept": "image/png"})
    assert_equal_image(gray(png(r)), expected_ct16(), "?accept=image/png")


def test_jpeg_baseline_rgb(archive):
    """A lossy colour input: rendered at its size, in colour, like Pillow's decoding of the
    stored JPEG. Stated tolerance (two JPEG decoders, 4:2:2 chroma upsampling): < 8 per sample,
    mean 0.5 (measured: 3, 0.09); the rendered JPEG (re-encoded): < 48, mean 1.5 (measured: 21, 0.37)."""
    inst = archive["rgb-jpeg"]
    got = png(archive.get(f"{archive.instance_url('rgb-jpeg')}/rendered", accept="image/png"))
    assert got.shape == (imagegen.RGB_ROWS, imagegen.RGB_COLS, 3)
    assert_within(got, inst.reference, 8, "rgb-jpeg rendered PNG vs Pillow", mean_tol=0.5)
    j = jpeg(archive.get(f"{archive.instance_url('rgb-jpeg')}/rendered", accept="image/jpeg"))
    assert j.shape == (imagegen.RGB_ROWS, imagegen.RGB_COLS, 3)
    assert_within(j, inst.reference, 48, "rgb-jpeg rendered JPEG vs Pillow", mean_tol=1.5)


def test_jpeg_extended_12bit_rendered_is_406_with_the_reason(archive):
    r = archive.get(f"{archive.instance_url('ct12-extended')}/rendered", accept="image/png")
    assert r.status_code == 406, f"{r.status_code} {r.text[:200]}"
    assert JPEG_EXTENDED in r.text
    assert archive.get(f"{archive.instance_url('ct16-native')}/rendered", accept="image/png").status_code == 200


@pytest.mark.parametrize("label", ["rgb-jpeg", "ct16-native"])
def test_quality_changes_jpeg_size(archive, label):
    url = f"{archive.instance_url(label)}/rendered"
    sizes = {}
    for q in (5, 50, 100):
        data = ok(archive.get(url, accept="image/jpeg", params={"quality": q}), "image/jpeg")
        img = decode(data, "JPEG")
        assert img.shape[:2] == archive[label].pixels.shape[:2]
        sizes[q] = len(data)
    assert sizes[5] < sizes[50] < sizes[100], sizes


# --------------------------------------------------------------------------
# Viewport
# --------------------------------------------------------------------------


@pytest.mark.parametrize("viewport,size", [
    ("32,32", (32, 24)), ("16,12", (16, 12)), ("96,1000", (96, 72)), ("1000,96", (128, 96)), ("64,48", (64, 48)),
])
def test_viewport_scales_to_fit(archive, viewport, size):
    exact = expected_ct16()
    got = rendered_png(archive, "ct16-native", viewport=viewport)
    assert (got.shape[1], got.shape[0]) == size, f"viewport={viewport}: {got.shape[1]}x{got.shape[0]}"
    if size == (64, 48):
        assert_equal_image(got, exact, "viewport of the image's own size")
    # Scaled, not cropped or flipped: the mean grey and the left/right, top/bottom halves agree.
    assert abs(got.mean() - exact.mean()) < 1.5, (got.mean(), exact.mean())
    h, w = got.shape
    assert got[:, w // 2:].mean() > got[:, :w // 2].mean() + 20
    assert got[h // 2:, :].mean() > got[:h // 2, :].mean() + 10


@pytest.mark.parametrize("viewport,crop", [
    ("16,16,8,8,16,16", lambda a: a[8:24, 8:24]),
    ("16,16,8,8,-16,16", lambda a: a[8:24, 8:24][:, ::-1]),
    ("16,16,8,8,16,-16", lambda a: a[8:24, 8:24][::-1, :]),
    ("16,16,8,8,-16,-16", lambda a: a[8:24, 8:24][::-1, ::-1]),
    ("40,10,20,30,40,10", lambda a: a[30:40, 20:60]),
    ("64,48,0,0,-64,48", lambda a: a[:, ::-1]),
], ids=["crop", "flip-h", "flip-v", "flip-both", "crop-wide", "mirror"])
def test_viewport_source_region(archive, viewport, crop):
    """A source region rendered 1:1 is exactly that region of the full rendering; a negative
    sw/sh flips it (the region is sx..sx+|sw|)."""
    full = expected_ct16()
    got = rendered_png(archive, "ct16-native", viewport=viewport)
    assert_equal_image(got, np.ascontiguousarray(crop(full)), f"viewport={viewport}")


def test_viewport_source_region_scaled(archive):
    got = rendered_png(archive, "ct16-native", viewport="64,64,16,8,32,32")
    assert got.shape == (64, 64)
    region = expected_ct16()[8:40, 16:48]
    big = np.asarray(Image.fromarray(region).resize((64, 64), Image.BILINEAR))
    assert_within(got, big, 16, "2x enlargement of a region (bilinear-like)", mean_tol=1.0)


# --------------------------------------------------------------------------
# Bad parameters and media types
# --------------------------------------------------------------------------


@pytest.mark.parametrize("params", [
    {"viewport": "abc"}, {"viewport": "10"}, {"viewport": "0,0"}, {"viewport": "-5,10"}, {"viewport": "10,10,1"},
    {"viewport": "16,16,100,100,16,16"},
    {"viewport": "10,x"},
    {"window": "abc"}, {"window": "40"}, {"window": "40,0"}, {"window": "40,400,cubic"}, {"window": "40,abc"},
    {"quality": "0"}, {"quality": "101"}, {"quality": "high"}, {"quality": "-5"},
], ids=lambda p: "&".join(f"{k}={v}" for k, v in p.items()))
def test_bad_parameter_is_400(archive, params):
    for suffix in ("rendered", "thumbnail", "frames/1/rendered"):
        r = archive.get(f"{archive.instance_url('ct16-native')}/{suffix}", accept="image/jpeg", params=params)
        assert r.status_code == 400, f"{suffix} {params}: {r.status_code} {r.text[:200]}"
        assert r.text.strip(), "400 without a reason"
    assert archive.server.alive


@pytest.mark.parametrize("accept", ["image/gif", "application/dicom", "video/mp4", "text/html"])
def test_unsupported_accept_is_406(archive, accept):
    r = archive.get(f"{archive.instance_url('ct16-native')}/rendered", accept=accept)
    assert r.status_code == 406, f"Accept {accept}: {r.status_code} {r.headers.get('Content-Type')}"
    assert r.text.strip(), "406 without a reason"


def test_unsupported_accept_query_is_406(archive):
    r = archive.get(f"{archive.instance_url('ct16-native')}/rendered", accept=None, params={"accept": "image/gif"})
    assert r.status_code == 406, r.status_code


# --------------------------------------------------------------------------
# Multi-frame
# --------------------------------------------------------------------------


def assert_is_frame(got: np.ndarray, frames: list[np.ndarray], n: int, what: str, tol: float = 2, mean_tol: float = 0.5):
    """`got` is frame n (1-based), within `tol` (see test_8bit_identity_window_is_exact for why
    not exactly), and clearly not any other frame."""
    assert_within(got, frames[n - 1], tol, f"{what}: frame {n}", mean_tol=mean_tol)
    for m, other in enumerate(frames, 1):
        if m != n:
            assert np.abs(got.astype(int) - other).mean() > 10, f"{what}: looks like frame {m}, not {n}"


@pytest.mark.parametrize("label", ["mf-native", "mf-rle"])
def test_8bit_identity_window_is_exact(archive, label):
    assert_equal_image(rendered_png(archive, label), archive[label].frame_arrays[0], f"{label} frame 1")


@pytest.mark.parametrize("label", ["mf-native", "mf-rle"])
def test_rendered_frame(archive, label):
    frames = archive[label].frame_arrays
    assert_is_frame(rendered_png(archive, label), frames, 1, f"{label} rendered")
    for n in (2, 5):
        assert_is_frame(rendered_png(archive, label, f"frames/{n}/rendered"), frames, n, f"{label} frames/{n}")


@pytest.mark.parametrize("label", ["mf-native", "mf-rle"])
def test_rendered_frame_list_is_multipart(archive, label):
    frames = archive[label].frame_arrays
    url = f"{archive.instance_url(label)}/frames/1,3/rendered"
    pngs = multipart_images(archive.get(url, accept=None, params={"accept": "image/png"}), "image/png")
    assert len(pngs) == 2
    for n, data in zip((1, 3), pngs):
        single = rendered_png(archive, label, f"frames/{n}/rendered")
        assert_equal_image(gray(decode(data, "PNG")), single, f"{label} part for frame {n} vs frames/{n}/rendered")
        assert_is_frame(single, frames, n, label)
    pngs = multipart_images(archive.get(f"{archive.instance_url(label)}/frames/4,2,5/rendered", accept="image/png"),
                            "image/png")
    assert len(pngs) == 3
    for n, data in zip((4, 2, 5), pngs):
        assert_is_frame(gray(decode(data, "PNG")), frames, n, f"{label} frames/4,2,5 (in the requested order)")
    jpegs = multipart_images(archive.get(url, accept="image/jpeg"), "image/jpeg")
    assert len(jpegs) == 2
    for n, data in zip((1, 3), jpegs):
        # JPEG at the default quality of a sharp 8-bit pattern: stated tolerance < 40, mean 3 (measured: 12, 1.6)
        assert_within(gray(decode(data, "JPEG")), frames[n - 1], 40, f"{label} JPEG part for frame {n}", mean_tol=3.0)


@pytest.mark.parametrize("frame", ["0", "6", "x"])
def test_rendered_frame_out_of_range(archive, frame):
    r = archive.get(f"{archive.instance_url('mf-native')}/frames/{frame}/rendered", accept="image/jpeg")
    assert r.status_code in (400, 404), r.status_code
    assert archive.server.alive


# --------------------------------------------------------------------------
# Study and series rendered
# --------------------------------------------------------------------------


@pytest.mark.parametrize("level", ["study", "series"])
def test_rendered_series_and_study_multipart(archive, level):
    """Every decodable instance of the study (10, less the 12-bit JPEG Extended one, which the
    archive cannot decode and leaves out rather than cut the response) or of the lossless
    series (6) is one image part."""
    c = archive.corpus
    url = (archive.study_url("ct16-native") if level == "study" else archive.series_url("ct16-native")) + "/rendered"
    members = c.study("ct16-native") if level == "study" else c.series("ct16-native")
    assert len(members) == (10 if level == "study" else 6)
    jpegs = multipart_images(archive.get(url, accept="image/jpeg"), "image/jpeg")
    assert len(jpegs) == len(members) - (1 if level == "study" else 0)
    for data in jpegs:
        assert decode(data, "JPEG").shape[:2] == (imagegen.CT_ROWS, imagegen.CT_COLS)
    if level == "series":
        # every member of the lossless series renders to the same exact image
        pngs = multipart_images(archive.get(url, accept="image/png"), "image/png")
        assert len(pngs) == len(members)
        for data in pngs:
            assert_equal_image(gray(decode(data, "PNG")), expected_ct16(), "series part")


def test_rendered_levels_study(archive):
    pngs = multipart_images(archive.get(f"{archive.study_url('level-1')}/rendered", accept="image/png"), "image/png")
    greys = sorted(int(np.unique(gray(decode(d, "PNG")))[0]) for d in pngs)
    assert greys == sorted(imagegen.LEVELS.values())
    for d in pngs:
        assert len(np.unique(gray(decode(d, "PNG")))) == 1


# --------------------------------------------------------------------------
# Thumbnails
# --------------------------------------------------------------------------


def _thumb(archive: Archive, url: str, **params) -> np.ndarray:
    img = jpeg(archive.get(url, accept="image/jpeg", params=params))
    h, w = img.shape[:2]
    assert max(w, h) <= 256, f"{url}: thumbnail {w}x{h}"
    return img


@pytest.mark.parametrize("label", ["ct16-native", "mf-rle", "rgb-jpeg", "level-2", "video-h264"])
def test_thumbnail_at_every_level(archive, label):
    urls = [archive.study_url(label), archive.series_url(label), archive.instance_url(label),
            archive.instance_url(label) + "/frames/1"]
    for base in urls:
        img = _thumb(archive, base + "/thumbnail")
        h, w = img.shape[:2]
        assert abs(w / h - 4 / 3) < 0.02, f"{base}/thumbnail: {w}x{h} is not 4:3"
    default = jpeg(archive.get(archive.instance_url(label) + "/thumbnail", accept=None))
    assert default.shape[:2] == img.shape[:2]


def test_thumbnail_of_a_large_image_is_256(archive):
    img = _thumb(archive, archive.instance_url("rgb-jpeg") + "/thumbnail")
    assert img.shape == (192, 256, 3)
    small = np.asarray(Image.fromarray(archive["rgb-jpeg"].reference).resize((256, 192), Image.BILINEAR))
    # JPEG and two resampling filters: < 48, mean 3 (measured: 15, 1.2)
    assert_within(img, small, 48, "thumbnail vs the image scaled", mean_tol=3.0)


def test_thumbnail_viewport(archive):
    img = _thumb(archive, archive.instance_url("rgb-jpeg") + "/thumbnail", viewport="64,64")
    assert img.shape == (48, 64, 3)
    png_thumb = gray(png(archive.get(archive.instance_url("ct16-native") + "/thumbnail", accept="image/png",
                                     params={"viewport": "64,48"})))
    assert_equal_image(png_thumb, expected_ct16(), "PNG thumbnail at the image's own size")


def test_thumbnail_is_the_middle_instance(archive):
    """Study and series thumbnails show the middle instance by Instance Number (grey 128),
    though the instances were stored 3, 1, 2."""
    for url in (archive.study_url("level-1"), archive.series_url("level-1")):
        got = gray(png(archive.get(url + "/thumbnail", accept="image/png")))
        assert max(got.shape) <= 256
        assert set(np.unique(got).tolist()) == {imagegen.LEVELS[2]}, f"{url}/thumbnail: {np.unique(got)}"


def test_thumbnail_is_the_middle_frame(archive):
    frames = archive["mf-native"].frame_arrays
    for label in ("mf-native", "mf-rle"):
        got = gray(png(archive.get(archive.instance_url(label) + "/thumbnail", accept="image/png",
                                   params={"viewport": f"{imagegen.MF_COLS},{imagegen.MF_ROWS}"})))
        assert_is_frame(got, frames, 3, f"{label} thumbnail (middle of 5 frames)")
        got = gray(png(archive.get(archive.instance_url(label) + "/frames/5/thumbnail", accept="image/png",
                                   params={"viewport": f"{imagegen.MF_COLS},{imagegen.MF_ROWS}"})))
        assert_is_frame(got, frames, 5, f"{label} frames/5/thumbnail")


# --------------------------------------------------------------------------
# Transcoding frames to native
# --------------------------------------------------------------------------


@pytest.mark.parametrize("label", ["ct16-native", *LOSSLESS_16[:-1], "ct12-native"])
def test_frame_transcoded_to_native(archive, label):
    ((headers, data),) = frames_native(archive, label, "1")
    ctype = headers.get("content-type", "").replace(" ", "")
    assert ctype == f"application/octet-stream;transfer-syntax={EXPLICIT_LE}", headers
    assert data == archive[label].native_frames[0], f"{label}: {len(data)} bytes, not the native pixels"


def test_multiframe_rle_frames_transcoded(archive):
    frames = archive["mf-rle"].native_frames
    parts = frames_native(archive, "mf-rle", "2,4,1")
    assert [d for _, d in parts] == [frames[1], frames[3], frames[0]]


def test_jpeg_baseline_frame_transcoded_to_rgb(archive):
    """A YBR_FULL_422 JPEG frame decodes to interleaved RGB; stated tolerance against Pillow's
    decoding: < 8 per sample, mean 0.5 (as rendered)."""
    ((_, data),) = frames_native(archive, "rgb-jpeg", "1")
    assert len(data) == imagegen.RGB_ROWS * imagegen.RGB_COLS * 3
    got = np.frombuffer(data, np.uint8).reshape(imagegen.RGB_ROWS, imagegen.RGB_COLS, 3)
    assert_within(got, archive["rgb-jpeg"].reference, 8, "rgb-jpeg transcoded", mean_tol=0.5)


def test_jpeg_extended_12bit_frame_transcoding_is_406(archive):
    r = archive.get(f"{archive.instance_url('ct12-extended')}/frames/1", accept=ACCEPT_NATIVE_FRAMES)
    assert r.status_code == 406, f"{r.status_code} {r.text[:200]}"
    assert JPEG_EXTENDED in r.text


@pytest.mark.parametrize("label", ["ct16-jpegll70", "ct16-j2k", "ct16-rle", "jls", "rgb-jpeg"])
def test_stored_frame_bytes_still_served(archive, label):
    inst = archive[label]
    for accept in (ACCEPT_STORED_FRAMES,
                   f'multipart/related; type="application/octet-stream"; transfer-syntax={inst.transfer_syntax}'):
        ((headers, data),) = frames_native(archive, label, "1", accept=accept)
        assert data == inst.frames[0], f"{label} ({accept}): not the stored frame"


def test_jpeg_ls_frame_transcoding_is_406(archive):
    r = archive.get(f"{archive.instance_url('jls')}/frames/1", accept=ACCEPT_NATIVE_FRAMES)
    assert r.status_code == 406, f"{r.status_code} {r.text[:200]}"
    assert r.text.strip()


# --------------------------------------------------------------------------
# Not decodable: JPEG-LS
# --------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["instance/rendered", "instance/frames/1/rendered", "series/rendered",
                                   "study/rendered", "instance/thumbnail", "series/thumbnail", "study/thumbnail"])
def test_jpeg_ls_rendered_is_406_and_server_keeps_serving(archive, where):
    level, suffix = where.split("/", 1)
    base = {"instance": archive.instance_url, "series": archive.series_url, "study": archive.study_url}[level]("jls")
    r = archive.get(f"{base}/{suffix}", accept="image/jpeg")
    assert r.status_code == 406, f"{r.status_code} {r.text[:200]}"
    assert media_type(r) == "text/plain" and "1.2.840.10008.1.2.4.80" in r.text, r.text[:200]
    assert archive.server.alive
    assert_equal_image(rendered_png(archive, "ct16-native"), expected_ct16(), "after a 406")


# --------------------------------------------------------------------------
# Video
# --------------------------------------------------------------------------


def stream_of(archive: Archive, label: str = "video-h264") -> bytes:
    """What the archive must serve: the fragments concatenated (the last keeps its pad byte)."""
    return b"".join(archive[label].fragments)


def video_url(archive: Archive, label: str = "video-h264") -> str:
    return f"{archive.instance_url(label)}/rendered"


@pytest.mark.parametrize("accept", ["video/mp4", "video/*", "*/*", None])
@pytest.mark.parametrize("suffix", ["rendered", "frames/1/rendered"])
def test_video_rendered_is_the_stream(archive, accept, suffix):
    stream = stream_of(archive)
    assert len(archive["video-h264"].fragments) == 5
    r = archive.get(f"{archive.instance_url('video-h264')}/{suffix}", accept=accept)
    assert ok(r, "video/mp4") == stream, f"{len(r.content)} bytes, stream {len(stream)}"
    assert r.headers.get("Accept-Ranges") == "bytes"
    assert int(r.headers.get("Content-Length", -1)) == len(stream)
    assert r.headers.get("ETag"), "no ETag"


def test_video_mpeg2_is_video_mpeg(archive):
    r = archive.get(video_url(archive, "video-mpeg2"), accept="video/*")
    assert ok(r, "video/mpeg") == stream_of(archive, "video-mpeg2")
    r = archive.get(video_url(archive, "video-mpeg2"), accept="video/mpeg")
    assert ok(r, "video/mpeg") == stream_of(archive, "video-mpeg2")


def _ranges(stream: bytes, frags: list[bytes]) -> list[tuple[str, int, int]]:
    n = len(stream)
    b1 = len(frags[0])
    b2 = b1 + len(frags[1])
    return [
        ("bytes=0-99", 0, 99),
        (f"bytes={b1 - 10}-{b1 + 9}", b1 - 10, b1 + 9),          # across the first fragment boundary
        (f"bytes={b1 - 3}-{b2 + 3}", b1 - 3, b2 + 3),            # spans a whole fragment
        (f"bytes={b2}-{b2}", b2, b2),                            # one byte, first of a fragment
        (f"bytes={n // 2}-", n // 2, n - 1),
        ("bytes=-100", n - 100, n - 1),
        (f"bytes={n - 50}-{n + 1000}", n - 50, n - 1),           # last-pos past the end: clamped
        (f"bytes=-{n + 1000}", 0, n - 1),                        # suffix longer than the stream
        ("bytes=0-", 0, n - 1),
        (f"bytes={n - 1}-", n - 1, n - 1),
    ]


def test_video_range_requests(archive):
    stream = stream_of(archive)
    n = len(stream)
    url = video_url(archive)
    for header, first, last in _ranges(stream, archive["video-h264"].fragments):
        r = archive.get(url, accept="video/mp4", headers={"Range": header})
        assert r.status_code == 206, f"Range {header}: {r.status_code}"
        assert media_type(r) == "video/mp4"
        assert r.headers.get("Content-Range") == f"bytes {first}-{last}/{n}", f"Range {header}: {r.headers}"
        assert int(r.headers.get("Content-Length", -1)) == last - first + 1
        assert r.content == stream[first:last + 1], f"Range {header}: wrong bytes"


@pytest.mark.parametrize("header", ["bytes={n}-", "bytes={n}-{m}", "bytes={m}-"])
def test_video_range_past_the_end_is_416(archive, header):
    n = len(stream_of(archive))
    h = header.format(n=n, m=n + 100)
    r = archive.get(video_url(archive), accept="video/mp4", headers={"Range": h})
    assert r.status_code == 416, f"Range {h}: {r.status_code}"
    assert r.headers.get("Content-Range") == f"bytes */{n}", r.headers


@pytest.mark.parametrize("header", ["bytes=0-9,20-29", "bytes=abc", "items=0-9", "bytes=10-5", "bytes=", "bytes=--5"])
def test_video_unsatisfiable_syntax_or_multiple_ranges_gives_whole(archive, header):
    r = archive.get(video_url(archive), accept="video/mp4", headers={"Range": header})
    assert r.status_code == 200, f"Range {header}: {r.status_code}"
    assert r.content == stream_of(archive)
    assert "Content-Range" not in r.headers


def test_video_head(archive):
    n = len(stream_of(archive))
    get = archive.get(video_url(archive), accept="video/mp4")
    r = archive.get(video_url(archive), accept="video/mp4", method="HEAD")
    assert r.status_code == 200 and media_type(r) == "video/mp4"
    assert r.content == b""
    assert int(r.headers.get("Content-Length", -1)) == n
    assert r.headers.get("Accept-Ranges") == "bytes"
    assert r.headers.get("ETag") == get.headers.get("ETag")


def test_video_seeks_like_a_browser(archive):
    """An HTML5 <video> element: `bytes=0-` first, then open-ended ranges from where it seeks
    (forward, backward, to the end), expecting the same ETag each time."""
    stream = stream_of(archive)
    n = len(stream)
    url = video_url(archive)
    first = archive.get(url, accept="video/mp4", headers={"Range": "bytes=0-"})
    assert first.status_code == 206 and first.headers.get("Content-Range") == f"bytes 0-{n - 1}/{n}"
    assert first.content == stream
    etag = first.headers.get("ETag")
    assert etag
    for start in (n * 3 // 4, n // 3, n // 3 + 1, 17, n - 2, 0):
        r = archive.get(url, accept="video/*, */*;q=0.8", headers={"Range": f"bytes={start}-"})
        assert r.status_code == 206, f"seek to {start}: {r.status_code}"
        assert r.headers.get("Content-Range") == f"bytes {start}-{n - 1}/{n}"
        assert r.content == stream[start:]
        assert r.headers.get("ETag") == etag


def test_video_if_range_with_the_current_etag(archive):
    stream = stream_of(archive)
    etag = archive.get(video_url(archive), accept="video/mp4", method="HEAD").headers["ETag"]
    r = archive.get(video_url(archive), accept="video/mp4", headers={"Range": "bytes=10-19", "If-Range": etag})
    assert r.status_code == 206 and r.content == stream[10:20]


def test_video_if_range_with_a_stale_etag_gives_whole(archive):
    r = archive.get(video_url(archive), accept="video/mp4", headers={"Range": "bytes=10-19", "If-Range": '"stale"'})
    assert r.status_code == 200 and r.content == stream_of(archive)


def test_video_if_none_match_is_304(archive):
    etag = archive.get(video_url(archive), accept="video/mp4", method="HEAD").headers["ETag"]
    r = archive.get(video_url(archive), accept="video/mp4", headers={"If-None-Match": etag})
    assert r.status_code == 304 and r.content == b""
    assert r.headers.get("ETag") == etag


def test_ffprobe_accepts_the_stream(archive, tmp_path):
    path = tmp_path / "served.mp4"
    path.write_bytes(ok(archive.get(video_url(archive), accept="video/mp4"), "video/mp4"))
    r = subprocess.run([FFPROBE, "-v", "error", "-print_format", "json", "-show_streams", "-show_format", str(path)],
                       capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr.decode("utf-8", "replace")
    info = json.loads(r.stdout)
    (video,) = [s for s in info["streams"] if s["codec_type"] == "video"]
    assert video["codec_name"] == "h264" and (video["width"], video["height"]) == (320, 240), video
    assert video.get("profile") == "High", video.get("profile")
    assert abs(float(info["format"]["duration"]) - 2.0) < 0.1, info["format"]


def test_video_thumbnail_is_a_poster(archive):
    """A generated poster: 4:3 like the video, dark, with a (lighter) play triangle in the middle."""
    for url in (archive.instance_url("video-h264"), archive.series_url("video-h264"),
                archive.study_url("video-h264"), archive.instance_url("video-mpeg2")):
        img = _thumb(archive, url + "/thumbnail")
        h, w = img.shape[:2]
        assert abs(w / h - 4 / 3) < 0.02, f"{w}x{h}"
        g = img.astype(np.float64).mean(axis=-1) if img.ndim == 3 else img.astype(np.float64)
        corners = [g[:h // 8, :w // 8], g[:h // 8, -w // 8:], g[-h // 8:, :w // 8], g[-h // 8:, -w // 8:]]
        assert all(c.mean() < 80 for c in corners), [round(c.mean()) for c in corners]
        centre = g[h * 3 // 8:h * 5 // 8, w * 3 // 8:w * 5 // 8]
        assert centre.max() > 150, "no play triangle in the middle"
    img = _thumb(archive, archive.instance_url("video-h264") + "/thumbnail", viewport="100,100")
    assert img.shape[:2] == (75, 100)


@pytest.mark.parametrize("accept", ["image/jpeg", "image/png"])
def test_video_rendered_as_image_is_406(archive, accept):
    r = archive.get(video_url(archive), accept=accept)
    assert r.status_code == 406, f"Accept {accept}: {r.status_code} {r.headers.get('Content-Type')}"
    assert r.text.strip()


# --------------------------------------------------------------------------
# Whole instances transcoded to Explicit VR Little Endian (PS3.18 8.7.3.5.2)
# --------------------------------------------------------------------------

ACCEPT_INSTANCE_EXPLICIT = f'multipart/related; type="application/dicom"; transfer-syntax={EXPLICIT_LE}'


def transcoded(archive: Archive, label: str):
    import pydicom
    r = archive.get(archive.instance_url(label), accept=ACCEPT_INSTANCE_EXPLICIT)
    assert r.status_code == 200, f"{r.url}: {r.status_code} {r.text[:300]}"
    ((headers, data),) = parse_multipart(r)
    assert headers["content-type"].replace(" ", "") == f"application/dicom;transfer-syntax={EXPLICIT_LE}", headers
    return pydicom.dcmread(io.BytesIO(data)), data


@pytest.mark.parametrize("label", ["ct16-rle", "ct16-jpegll57", "ct16-jpegll70", "ct16-j2k", "mf-rle"])
def test_lossless_instance_transcoded_to_native_is_exact(archive, label, tmp_path):
    inst = archive[label]
    ds, data = transcoded(archive, label)
    assert ds.file_meta.TransferSyntaxUID == EXPLICIT_LE
    assert ds.SOPInstanceUID == inst.sop_uid and ds.PatientName == inst.ds.PatientName
    assert "ExtendedOffsetTable" not in ds
    want = b"".join(inst.native_frames) if inst.native_frames else inst.pixels.tobytes()
    if label == "mf-rle":
        want = b"".join(f.tobytes() for f in imagegen.mf_frames())
    assert ds.PixelData[: len(want)] == want and len(ds.PixelData) == len(want) + len(want) % 2
    path = tmp_path / "t.dcm"
    path.write_bytes(data)
    dump = subprocess.run(["/usr/bin/dcmdump", "-q", str(path)], capture_output=True, timeout=60)
    assert dump.returncode == 0, dump.stderr.decode("utf-8", "replace")


def test_jpeg_baseline_instance_transcoded_is_rgb(archive):
    ds, _ = transcoded(archive, "rgb-jpeg")
    assert ds.PhotometricInterpretation == "RGB" and ds.SamplesPerPixel == 3 and ds.PlanarConfiguration == 0
    got = np.frombuffer(ds.PixelData, np.uint8)[: ds.Rows * ds.Columns * 3].reshape(ds.Rows, ds.Columns, 3)
    ref = archive["rgb-jpeg"].reference
    # The archive's decoder (jpeg-decoder) and Pillow's libjpeg differ by IDCT rounding only.
    assert np.abs(got.astype(int) - ref.astype(int)).max() <= 3


@pytest.mark.parametrize("label", ["jls", "ct12-extended"])
def test_instance_transcoding_it_cannot_do_is_406(archive, label):
    r = archive.get(archive.instance_url(label), accept=ACCEPT_INSTANCE_EXPLICIT)
    assert r.status_code == 406, f"{r.status_code} {r.text[:200]}"
    assert archive[label].transfer_syntax in r.text
    stored = archive.get(archive.instance_url(label), accept='multipart/related; type="application/dicom"; transfer-syntax=*')
    assert stored.status_code == 200


def test_a_series_mixing_native_and_compressed_is_transcoded_per_instance(archive):
    import pydicom
    r = archive.get(archive.series_url("ct16-native"), accept=ACCEPT_INSTANCE_EXPLICIT)
    # ct16-native is stored explicit LE (served as stored); its compressed twins are decoded.
    assert r.status_code == 200, r.text[:300]
    parts = parse_multipart(r)
    datasets = [pydicom.dcmread(io.BytesIO(d)) for _, d in parts]
    assert {d.file_meta.TransferSyntaxUID for d in datasets} == {EXPLICIT_LE}
    members = {i.sop_uid: i for i in archive.corpus.series("ct16-native")}
    assert sorted(d.SOPInstanceUID for d in datasets) == sorted(members)
    for d in datasets:
        native = members[d.SOPInstanceUID].native_frames[0]
        assert d.PixelData[: len(native)] == native, members[d.SOPInstanceUID].label


def test_native_8bit_frames_as_jpeg_on_request(archive):
    """A viewer asking image/jpeg for the frames of an uncompressed 8-bit image gets each
    frame encoded as JPEG Baseline (lossy, quality 90: within a few levels of the stored
    samples), the stored values unwindowed."""
    url = f"{archive.instance_url('mf-native')}/frames/2,4"
    jpegs = multipart_images(archive.get(url, accept='multipart/related; type="image/jpeg"'), "image/jpeg")
    frames = imagegen.mf_frames()
    assert len(jpegs) == 2
    for data, want in zip(jpegs, [frames[1], frames[3]]):
        got = gray(decode(data, "JPEG"))
        assert got.shape == want.shape
        diff = np.abs(got.astype(int) - want.astype(int))
        assert diff.mean() < 3 and diff.max() < 40, (diff.mean(), diff.max())
    # 16-bit samples have no JPEG Baseline encoding: 406 with the reason.
    r = archive.get(f"{archive.instance_url('ct16-native')}/frames/1", accept='multipart/related; type="image/jpeg"')
    assert r.status_code == 406 and "8-bit" in r.text, f"{r.status_code} {r.text[:200]}"


def test_video_frames_beyond_the_stream_are_400_saying_why(archive):
    """A video's pixel data is one stream (its only "frame"): frame 2 is a 400 that says so,
    frame 1 is the stream, as stored."""
    base = archive.instance_url("video-h264")
    r = archive.get(f"{base}/frames/2", accept="*/*")
    assert r.status_code == 400 and "one stream" in r.text, f"{r.status_code} {r.text[:200]}"
    ((_, data),) = parse_multipart(archive.get(f"{base}/frames/1", accept="*/*"))
    assert data == stream_of(archive)


# --------------------------------------------------------------------------
# WADO-URI (PS3.18 §9): the <img src> of a patient record
# --------------------------------------------------------------------------


def wado_uri(archive: Archive, label: str, accept: str | None = "*/*", headers: dict | None = None, **params) -> requests.Response:
    img = archive[label]
    q = {"requestType": "WADO", "studyUID": img.study_uid, "seriesUID": img.series_uid, "objectUID": img.sop_uid} | params
    return archive.get(f"{archive.url}/wado", accept=accept, params=q, headers=headers)


def test_wado_uri_without_content_type_renders_jpeg(archive):
    """PS3.18 §9.3.2: the default for a single-frame image is image/jpeg (JPEG Baseline)."""
    got = ok(wado_uri(archive, "ct16-native", accept=None), "image/jpeg")
    # The same renderer, the same default quality: the very bytes of WADO-RS /rendered.
    assert got == ok(archive.get(f"{archive.instance_url('ct16-native')}/rendered", accept="image/jpeg"), "image/jpeg")
    assert gray(decode(got, "JPEG")).shape == (imagegen.CT_ROWS, imagegen.CT_COLS)
    # image/png on request is the exact data set window, as over WADO-RS.
    assert_equal_image(gray(png(wado_uri(archive, "ct16-native", contentType="image/png"))), expected_ct16(), "WADO-URI PNG")
    # A list: the first type this object can be is taken.
    assert media_type(wado_uri(archive, "ct16-native", contentType="image/gif,image/png")) == "image/png"


def test_wado_uri_rendering_parameters_match_wado_rs(archive):
    same = [
        ({"windowCenter": "100", "windowWidth": "300"}, {"window": "100,300"}),
        ({"columns": "32"}, {"viewport": "32,32"}),
        ({"rows": "32", "columns": "32", "region": "0,0,0.5,0.5"},
         {"viewport": f"32,32,0,0,{imagegen.CT_COLS // 2},{imagegen.CT_ROWS // 2}"}),
    ]
    for uri_params, rs_params in same:
        got = gray(png(wado_uri(archive, "ct16-native", contentType="image/png", **uri_params)))
        want = rendered_png(archive, "ct16-native", **rs_params)
        assert_equal_image(got, want, f"WADO-URI {uri_params} against WADO-RS {rs_params}")
    # One dimension given: the other keeps the aspect ratio.
    assert gray(png(wado_uri(archive, "ct16-native", contentType="image/png", rows="16"))).shape == (16, 16 * imagegen.CT_COLS // imagegen.CT_ROWS)
    small = wado_uri(archive, "ct16-native", contentType="image/jpeg", imageQuality="10")
    large = wado_uri(archive, "ct16-native", contentType="image/jpeg", imageQuality="100")
    assert len(ok(small, "image/jpeg")) < len(ok(large, "image/jpeg"))


def test_wado_uri_frame_number_of_a_multi_frame_image(archive):
    frames = imagegen.mf_frames()
    got = gray(png(wado_uri(archive, "mf-native", contentType="image/png", frameNumber="3")))
    assert_equal_image(got, frames[2], "frame 3 (identity window)")
    # Without frameNumber the default for a multi-frame object is the object itself.
    r = wado_uri(archive, "mf-native", accept=None)
    assert ok(r, "application/dicom")[128:132] == b"DICM"
    # Default with frameNumber: that frame, as JPEG.
    assert media_type(wado_uri(archive, "mf-native", accept=None, frameNumber="2")) == "image/jpeg"


@pytest.mark.parametrize("params,status", [
    ({"contentType": "image/gif"}, 406),
    ({"windowCenter": "40"}, 400),
    ({"rows": "0"}, 400),
    ({"region": "0.5,0.5,0.2,1"}, 400),
    ({"imageQuality": "101"}, 400),
    ({"frameNumber": "0"}, 400),
    ({"frameNumber": "9", "contentType": "image/png"}, 400),
    ({"anonymize": "yes"}, 400),
])
def test_wado_uri_bad_rendering_requests(archive, params, status):
    label = "mf-native" if "frameNumber" in params else "ct16-native"
    r = wado_uri(archive, label, **params)
    assert r.status_code == status, f"{params}: {r.status_code} {r.text[:200]}"
    assert r.text.strip(), "an error without a reason"


def test_wado_uri_undecodable_image_defaults_to_the_object(archive):
    """12-bit JPEG Extended cannot be rendered (nor decoded) here: the default is then
    application/dicom, whose default transfer syntax (Explicit VR Little Endian) needs decoding
    too, so that is a 406 naming transferSyntax=*, which returns the stored object. Asking for
    a JPEG is a 406 that says why."""
    r = wado_uri(archive, "ct12-extended", accept=None)
    assert r.status_code == 406 and "transferSyntax=*" in r.text, f"{r.status_code} {r.text[:200]}"
    r = wado_uri(archive, "ct12-extended", accept=None, transferSyntax="*")
    assert ok(r, "application/dicom") == archive["ct12-extended"].data
    r = wado_uri(archive, "ct12-extended", contentType="image/jpeg")
    assert r.status_code == 406 and JPEG_EXTENDED in r.text, f"{r.status_code} {r.text[:200]}"


def test_wado_uri_dicom_with_range(archive):
    stored = archive["ct16-native"].data
    n = len(stored)
    for header, first, last in [("bytes=0-131", 0, 131), ("bytes=-100", n - 100, n - 1), (f"bytes={n - 10}-", n - 10, n - 1)]:
        r = wado_uri(archive, "ct16-native", contentType="application/dicom", transferSyntax="*", headers={"Range": header})
        assert r.status_code == 206, f"{header}: {r.status_code}"
        assert r.headers.get("Content-Range") == f"bytes {first}-{last}/{n}"
        assert r.content == stored[first:last + 1]
    r = wado_uri(archive, "ct16-native", contentType="application/dicom", headers={"Range": f"bytes={n}-"})
    assert r.status_code == 416 and r.headers.get("Content-Range") == f"bytes */{n}"
    r = wado_uri(archive, "ct16-native", contentType="application/dicom", headers={"Range": "bytes=0-9,20-29"})
    assert r.status_code == 200 and r.content == stored, "several ranges: the whole object"


# --------------------------------------------------------------------------
# Bulk data: Range, and encapsulated Pixel Data as PS3.18 Table 8.7.3-5 says
# --------------------------------------------------------------------------


def pixel_bulk_uri(archive: Archive, label: str) -> str:
    r = archive.get(f"{archive.instance_url(label)}/metadata", accept="application/dicom+json")
    assert r.status_code == 200, r.text[:200]
    return r.json()[0]["7FE00010"]["BulkDataURI"]


def test_bulk_data_with_range(archive):
    uri = pixel_bulk_uri(archive, "ct16-native")
    value = archive["ct16-native"].native_frames[0]
    whole = archive.get(uri, accept="application/octet-stream")
    assert ok(whole, "application/octet-stream") == value and whole.headers.get("Accept-Ranges") == "bytes"
    r = archive.get(uri, accept="application/octet-stream", headers={"Range": "bytes=10-19"})
    assert r.status_code == 206 and r.content == value[10:20] and r.headers["Content-Range"] == f"bytes 10-19/{len(value)}"
    r = archive.get(uri, accept=None, headers={"Range": "bytes=-4"})
    assert r.status_code == 206 and r.content == value[-4:]
    r = archive.get(uri, accept="application/octet-stream", headers={"Range": f"bytes={len(value)}-"})
    assert r.status_code == 416
    # multipart (what dicomweb-client asks for) stays multipart, whole.
    ((headers, data),) = parse_multipart(archive.get(uri, accept='multipart/related; type="application/octet-stream"'))
    assert data == value


def test_video_pixel_data_bulk_uri_is_the_stream(archive):
    """The BulkDataURI of a video's Pixel Data delivers the video itself (PS3.18 Table
    8.7.3-5: video/mp4), not the encapsulated items, with Range for seeking."""
    uri = pixel_bulk_uri(archive, "video-h264")
    stream = stream_of(archive)
    r = archive.get(uri, accept="video/mp4")
    assert ok(r, "video/mp4") == stream
    r = archive.get(uri, accept="*/*", headers={"Range": "bytes=100-199"})
    assert r.status_code == 206 and media_type(r) == "video/mp4" and r.content == stream[100:200]
    ((headers, data),) = parse_multipart(archive.get(uri, accept='multipart/related; type="video/mp4"'))
    assert headers["content-type"].startswith("video/mp4") and data == stream
    mpeg = pixel_bulk_uri(archive, "video-mpeg2")
    assert ok(archive.get(mpeg, accept="video/*"), "video/mpeg") == stream_of(archive, "video-mpeg2")
    assert archive.get(uri, accept="image/jpeg").status_code == 406


def test_compressed_pixel_data_bulk_uri_is_its_frames(archive):
    uri = pixel_bulk_uri(archive, "rgb-jpeg")
    parts = multipart_images(archive.get(uri, accept='multipart/related; type="image/jpeg"'), "image/jpeg")
    assert len(parts) == 1 and parts[0].startswith(JPEG_SOI)
    frames = multipart_images(archive.get(uri, accept="*/*"), "application/octet-stream")
    assert frames == parts, "the same frames, labelled as octet-stream"


def test_long_frame_lists_are_refused(archive):
    base = f"{archive.instance_url('mf-native')}/frames/"
    for count in (1001, 10_000):
        r = archive.get(base + ",".join(["1"] * count), accept=ACCEPT_STORED_FRAMES)
        assert r.status_code == 400 and "at most 1000" in r.text, f"{count}: {r.status_code} {r.text[:200]}"
    r = archive.get(base + ",".join(["1"] * 1000), accept=ACCEPT_STORED_FRAMES)
    assert r.status_code == 200 and len(parse_multipart(r)) == 1000
