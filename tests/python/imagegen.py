"""Synthetic images in many stored encodings, for the rendered/thumbnail/transcoding tests.

Everything is deterministic: pixel values come from formulas and fixed seeds, UIDs are
name-based (2.25.<uuid5>). Encoders:

* native explicit VR little endian, RLE Lossless: pydicom (``Dataset.compress``);
* JPEG Lossless (process 14, .4.57 with selection value 6, and SV1 .4.70), JPEG Extended
  12-bit lossy (.4.51): dcmtk's ``/usr/bin/dcmcjpeg``; JPEG-LS lossless (.4.80): ``/usr/bin/dcmcjpls``;
* JPEG 2000 lossless (.4.90): Pillow's OpenJPEG encoder (``irreversible=False``, a raw
  codestream), encapsulated with pydicom;
* JPEG baseline (.4.50) RGB: Pillow;
* video: ``/usr/bin/ffmpeg`` (H.264 High in MP4, MPEG-2 Main in an MPEG program stream),
  split into Pixel Data fragments of unequal length.

:func:`build` writes the intermediate files into a working directory and returns a
:class:`RenderCorpus`; ``python imagegen.py OUTDIR`` writes the instances out for inspection.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.uid import (
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    RLELossless,
)

from dicomgen import (
    CT_IMAGE_STORAGE,
    MF_GRAYSCALE_BYTE_SC,
    PATIENT_ID_PREFIX,
    SECONDARY_CAPTURE,
    Instance,
    _base,
    _set_pixel_data,
    to_part10,
)

DCMCJPEG = "/usr/bin/dcmcjpeg"
DCMCJPLS = "/usr/bin/dcmcjpls"
DCMDJPEG = "/usr/bin/dcmdjpeg"
FFMPEG = "/usr/bin/ffmpeg"

JPEG_LOSSLESS_P14 = "1.2.840.10008.1.2.4.57"
JPEG_LOSSLESS_SV1 = "1.2.840.10008.1.2.4.70"
JPEG_EXTENDED_12 = "1.2.840.10008.1.2.4.51"
JPEG_LS_LOSSLESS = "1.2.840.10008.1.2.4.80"
MPEG2_MPML = "1.2.840.10008.1.2.4.100"
H264_HP41_FRAGMENTABLE = "1.2.840.10008.1.2.4.102.1"
VIDEO_ENDOSCOPIC = "1.2.840.10008.5.1.4.1.1.77.1.1.1"
MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"

# The CT-like image: Rows x Columns (not square, so that a swapped axis shows).
CT_ROWS, CT_COLS = 48, 64
CT_INTERCEPT = -1024
# The data set's window (modality units, i.e. HU). Width 256 makes the linear function an
# integer one: y = x - c + 128 (clamped), so its expected output has no rounding to argue about.
CT_WINDOW = (40.0, 256.0)
# An outlier that only a 16-bit decoder keeps (BitsStored 16 variants).
CT_OUTLIER = 30000

# The "levels" series: three images whose windowed output is flat at these grey levels,
# identifiable at any size and after JPEG, stored out of order.
LEVELS = {1: 32, 2: 128, 3: 224}   # instance number -> grey level
LEVELS_STORE_ORDER = [3, 1, 2]

MF_ROWS, MF_COLS, MF_FRAMES = 24, 32, 5
RGB_ROWS, RGB_COLS = 240, 320
VIDEO_ROWS, VIDEO_COLS, VIDEO_FRAMES, VIDEO_FPS = 240, 320, 50, 25

SERIES_NUMBERS = {"lossless": 1, "twelve": 2, "other": 3, "mf": 1, "mono8": 2}
NAMESPACE = uuid.UUID("0b6f2a38-4d9e-4c1b-8f57-6a3e1d2c9b70")  # arbitrary, fixed


def uid(name: str) -> str:
    return f"2.25.{uuid.uuid5(NAMESPACE, name).int}"


# ---------------------------------------------------------------------------
# Pixel values
# ---------------------------------------------------------------------------


def ct_array(bits_stored: int = 16) -> np.ndarray:
    """Stored values (uint16) of the CT-like image: a ramp across the data set's window plus
    seeded noise, a 0 and (16 bits) an outlier; 12 bits: the same, outlier clipped."""
    y, x = np.mgrid[0:CT_ROWS, 0:CT_COLS]
    rng = np.random.default_rng(20240601)
    arr = 800 + x * 6 + y * 4 + rng.integers(0, 32, size=(CT_ROWS, CT_COLS))
    arr[0, 0] = 0
    arr[0, CT_COLS - 1] = CT_OUTLIER if bits_stored == 16 else 4095
    arr[CT_ROWS - 1, 0] = 4095
    assert arr.max() < (1 << bits_stored)
    return arr.astype("<u2")


def mf_frames() -> list[np.ndarray]:
    """Five distinct 8-bit frames, each holding 0 and 255 (min-max normalisation is then the identity)."""
    y, x = np.mgrid[0:MF_ROWS, 0:MF_COLS]
    out = []
    for f in range(MF_FRAMES):
        img = ((x * 7 + y * 5 + f * 45) % 256).astype(np.uint8)
        img[f * 4: f * 4 + 2, :] = 200  # a moving bar
        img[0, 0], img[0, 1] = 0, 255
        out.append(img)
    return out


def rgb_array() -> np.ndarray:
    """A smooth RGB picture with shapes and a little seeded noise (JPEG output size then
    depends visibly on the quality)."""
    y, x = np.mgrid[0:RGB_ROWS, 0:RGB_COLS]
    rgb = np.stack([x * 255 // (RGB_COLS - 1), y * 255 // (RGB_ROWS - 1), (x + y) * 255 // (RGB_COLS + RGB_ROWS - 2)],
                   axis=-1).astype(np.int16)
    rgb[60:120, 40:140] = (230, 40, 40)
    rgb[150:210, 200:300] = (30, 30, 220)
    rng = np.random.default_rng(77)
    rgb += rng.integers(-6, 7, size=rgb.shape, dtype=np.int16)
    return np.clip(rgb, 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------
# Windowing (PS3.3 C.11.2.1.2) as numpy reference
# ---------------------------------------------------------------------------


def modality(stored: np.ndarray, slope: float = 1.0, intercept: float = CT_INTERCEPT) -> np.ndarray:
    return stored.astype(np.float64) * slope + intercept


def window_linear(x: np.ndarray, c: float, w: float) -> np.ndarray:
    """PS3.3 C.11.2.1.2.1, output range 0..255, as exact floats."""
    y = ((x - (c - 0.5)) / (w - 1) + 0.5) * 255.0
    return np.clip(y, 0.0, 255.0)


def window_linear_exact(x: np.ndarray, c: float, w: float) -> np.ndarray:
    """PS3.3 C.11.2.1.3.2."""
    return np.clip(((x - c) / w + 0.5) * 255.0, 0.0, 255.0)


def window_sigmoid(x: np.ndarray, c: float, w: float) -> np.ndarray:
    """PS3.3 C.11.2.1.3.1."""
    return 255.0 / (1.0 + np.exp(-4.0 * (x - c) / w))


def min_max(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    return (x - x.min()) / (x.max() - x.min()) * 255.0


# ---------------------------------------------------------------------------
# Encoders
# ---------------------------------------------------------------------------


def _run(cmd: list[str]) -> None:
    r = subprocess.run(cmd, capture_output=True, timeout=120)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr.decode('utf-8', 'replace')[-2000:]}")


def _dcmtk(tool: str, option: str, ds: Dataset, workdir: Path, name: str) -> Dataset:
    """Compresses `ds` with a dcmtk tool; returns the result with `ds`'s SOP Instance UID
    (dcmcjpeg gives lossy output a new one)."""
    src, dst = workdir / f"{name}.in.dcm", workdir / f"{name}.out.dcm"
    src.write_bytes(to_part10(ds))
    _run([tool, option, str(src), str(dst)])
    out = pydicom.dcmread(dst)
    out.SOPInstanceUID = ds.SOPInstanceUID
    out.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    out.preamble = b"\x00" * 128
    return out


def j2k_lossless(arr: np.ndarray) -> bytes:
    """A raw JPEG 2000 codestream (no JP2 boxes), reversible 5/3 wavelet, checked lossless."""
    img = Image.fromarray(arr.astype("<u2"))
    assert img.mode == "I;16", img.mode
    buf = io.BytesIO()
    img.save(buf, format="JPEG2000", irreversible=False, no_jp2=True)
    data = buf.getvalue()
    assert data[:4] == b"\xff\x4f\xff\x51", "not a J2K codestream"
    back = np.asarray(Image.open(io.BytesIO(data)), dtype=np.uint16)
    assert np.array_equal(back, arr), "Pillow's JPEG 2000 round trip is not lossless"
    return data


def encapsulated(fragments: list[bytes]) -> bytes:
    """Pixel Data items: an empty Basic Offset Table, then one item per fragment (each even)."""
    out = bytearray(b"\xfe\xff\x00\xe0" + (0).to_bytes(4, "little"))
    for frag in fragments:
        assert len(frag) % 2 == 0
        out += b"\xfe\xff\x00\xe0" + len(frag).to_bytes(4, "little") + frag
    return bytes(out)


def split_fragments(stream: bytes, fractions=(0.04, 0.31, 0.36, 0.8)) -> list[bytes]:
    """The stream cut at (even) offsets into fragments of unequal length, the last padded
    with a zero byte to even length (what DICOM encapsulation requires)."""
    cuts = sorted({int(len(stream) * f) // 2 * 2 for f in fractions})
    bounds = [0, *cuts, len(stream)]
    frags = [stream[a:b] for a, b in zip(bounds, bounds[1:])]
    if len(frags[-1]) % 2:
        frags[-1] += b"\x00"
    assert len({len(f) for f in frags}) == len(frags), "fragment lengths should all differ"
    return frags


# ---------------------------------------------------------------------------
# Data sets
# ---------------------------------------------------------------------------


@dataclass
class Img(Instance):
    """An instance plus what rendering it must show."""

    pixels: np.ndarray | None = None          # stored values of frame 1 (native layout)
    # Lossy encodings: frame 1 as a reference decoder reads it (Pillow, dcmtk's dcmdjpeg).
    reference: np.ndarray | None = None
    frame_arrays: list[np.ndarray] = field(default_factory=list)  # every frame, multi-frame
    native_frames: list[bytes] = field(default_factory=list)  # each frame as native LE bytes
    fragments: list[bytes] = field(default_factory=list)  # video: the Pixel Data fragments


def _image_base(*, sop_class: str, ts: str, study: str, series: str, name: str, number: int,
                modality_: str, patient: str, description: str) -> Dataset:
    ds = _base(sop_class=sop_class, transfer_syntax=ts, study_uid=uid(f"study/{study}"),
               series_uid=uid(f"series/{series}"), sop_uid=uid(f"instance/{name}"), patient_name=patient, patient_id=PATIENT_ID_PREFIX + "RENDER-" + study.upper(),
               modality=modality_, study_date="20240601", study_time="090000", accession="E2E-RND-" + study[:7],
               study_description=f"Rendering {study}", series_description=description,
               series_number=SERIES_NUMBERS.get(series, 1), instance_number=number)
    return ds


def _mono(ds: Dataset, rows: int, cols: int, bits: int, *, signed: bool = False,
          photometric: str = "MONOCHROME2") -> None:
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.Rows = rows
    ds.Columns = cols
    ds.BitsAllocated = 16 if bits > 8 else 8
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 1 if signed else 0


def ct(name: str, *, study: str = "ct", series: str, number: int, bits: int = 16, signed: bool = False,
       photometric: str = "MONOCHROME2", window: tuple[float, float] | None = CT_WINDOW) -> tuple[Dataset, np.ndarray]:
    """The native CT-like data set and its stored values. `signed`: the same modality values
    stored as int16 with a zero intercept."""
    ds = _image_base(sop_class=CT_IMAGE_STORAGE, ts=ExplicitVRLittleEndian, study=study, series=series,
                     name=name, number=number, modality_="CT", patient="Render^Ct", description=series)
    _mono(ds, CT_ROWS, CT_COLS, bits, signed=signed, photometric=photometric)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    arr = ct_array(bits)
    if signed:
        stored = (arr.astype(np.int32) + CT_INTERCEPT).astype("<i2")
        ds.RescaleIntercept = "0"
    else:
        stored = arr
        ds.RescaleIntercept = str(CT_INTERCEPT)
    ds.RescaleSlope = "1"
    ds.RescaleType = "HU"
    if window is not None:
        ds.WindowCenter = f"{window[0]:g}"
        ds.WindowWidth = f"{window[1]:g}"
    _set_pixel_data(ds, "OW", stored.tobytes())
    return ds, stored


def _img(ds: Dataset, label: str, pixels: np.ndarray | None, native_frames: list[bytes], **kw) -> Img:
    """The instance; its `frames` are the frames as stored (native bytes, or the
    encapsulated frame data)."""
    data = to_part10(ds)
    back = pydicom.dcmread(io.BytesIO(data))
    if kw.get("fragments"):  # video: one stream in all the fragments
        stored = [b"".join(kw["fragments"])]
    elif back.file_meta.TransferSyntaxUID.is_encapsulated:
        stored = list(generate_frames(back.PixelData, number_of_frames=int(back.get("NumberOfFrames", 1))))
    else:
        stored = list(native_frames)
    return Img(back, data, stored, label=label, pixels=pixels, native_frames=native_frames, **kw)


@dataclass
class RenderCorpus:
    by_label: dict[str, Img]
    store_order: list[str]

    def __getitem__(self, label: str) -> Img:
        return self.by_label[label]

    def all(self) -> list[Img]:
        return [self.by_label[k] for k in self.store_order]

    def study(self, label: str) -> list[Img]:
        st = self[label].study_uid
        return [i for i in self.all() if i.study_uid == st]

    def series(self, label: str) -> list[Img]:
        se = self[label].series_uid
        return [i for i in self.all() if i.series_uid == se]


def build(workdir: Path) -> RenderCorpus:
    workdir.mkdir(parents=True, exist_ok=True)
    out: dict[str, Img] = {}

    def add(img: Img) -> None:
        assert img.label not in out
        out[img.label] = img

    # --- study "ct", series "lossless": the 16-bit image in every lossless encoding ---
    n = 0

    def ct16(name: str, **kw) -> tuple[Dataset, np.ndarray]:
        nonlocal n
        n += 1
        return ct(name, series="lossless", number=n, **kw)

    ds, stored = ct16("ct16-native")
    native16 = stored.tobytes()
    add(_img(ds, "ct16-native", stored, [native16]))

    ds, _ = ct16("ct16-rle")
    ds.compress(RLELossless)
    add(_img(ds, "ct16-rle", stored, [native16]))

    ds, _ = ct16("ct16-jpegll57")
    add(_img(_dcmtk(DCMCJPEG, "+el", ds, workdir, "ct16-jpegll57"), "ct16-jpegll57", stored, [native16]))

    ds, _ = ct16("ct16-jpegll70")
    add(_img(_dcmtk(DCMCJPEG, "+e1", ds, workdir, "ct16-jpegll70"), "ct16-jpegll70", stored, [native16]))

    ds, _ = ct16("ct16-j2k")
    j2k = j2k_lossless(stored)
    ds.file_meta.TransferSyntaxUID = JPEG2000Lossless
    del ds["PixelData"]
    _set_pixel_data(ds, "OB", encapsulate([j2k + (b"\x00" if len(j2k) % 2 else b"")]), encapsulated=True)
    add(_img(ds, "ct16-j2k", stored, [native16]))

    ds, signed = ct16("ct16-signed", signed=True)
    add(_img(ds, "ct16-signed", signed, [signed.tobytes()]))

    # --- series "twelve": 12 bits stored, native and JPEG extended (lossy) ---
    ds, stored12 = ct("ct12-native", series="twelve", number=1, bits=12)
    add(_img(ds, "ct12-native", stored12, [stored12.tobytes()]))
    ds, _ = ct("ct12-extended", series="twelve", number=2, bits=12)
    lossy = _dcmtk(DCMCJPEG, "+ee", ds, workdir, "ct12-extended")
    add(_img(lossy, "ct12-extended", stored12, [stored12.tobytes()],
             reference=_dcmtk(DCMDJPEG, "+te", lossy, workdir, "ct12-extended-decoded").pixel_array))

    # --- series "other": MONOCHROME1 (data set window) and a window-less MONOCHROME2 ---
    ds, stored = ct("mono1", series="other", number=1, photometric="MONOCHROME1")
    add(_img(ds, "mono1", stored, [stored.tobytes()]))
    ds, stored = ct("nowindow", series="other", number=2, window=None)
    add(_img(ds, "nowindow", stored, [stored.tobytes()]))

    # --- study "levels": three flat images (grey levels LEVELS after the data set window) ---
    for number, grey in LEVELS.items():
        ds = _image_base(sop_class=MR_IMAGE_STORAGE, ts=ExplicitVRLittleEndian, study="levels", series="levels",
                         name=f"level-{number}", number=number, modality_="MR", patient="Render^Levels",
                         description="levels")
        _mono(ds, CT_ROWS, CT_COLS, 16)
        ds.WindowCenter = "1000"
        ds.WindowWidth = "256"
        # window 1000/256 linear: y = x - 1000 + 128
        stored = np.full((CT_ROWS, CT_COLS), 1000 - 128 + grey, dtype="<u2")
        _set_pixel_data(ds, "OW", stored.tobytes())
        add(_img(ds, f"level-{number}", stored, [stored.tobytes()]))

    # --- study "mf": a 5-frame native multi-frame, and its RLE twin ---
    frames = mf_frames()
    for label, compress in (("mf-native", False), ("mf-rle", True)):
        ds = _image_base(sop_class=MF_GRAYSCALE_BYTE_SC, ts=ExplicitVRLittleEndian, study="mf", series="mf",
                         name=label, number=1 + compress, modality_="OT", patient="Render^Frames", description="mf")
        _mono(ds, MF_ROWS, MF_COLS, 8)
        # window 128/256 linear: y = x, exact (min-max normalisation has its own test image)
        ds.WindowCenter = "128"
        ds.WindowWidth = "256"
        ds.NumberOfFrames = MF_FRAMES
        ds.FrameIncrementPointer = 0x00181063
        ds.FrameTime = "100"
        _set_pixel_data(ds, "OB", b"".join(f.tobytes() for f in frames))
        if compress:
            ds.compress(RLELossless)
        add(_img(ds, label, frames[0], [f.tobytes() for f in frames], frame_arrays=frames))

    # --- ... and an 8-bit full-range image without a window: min-max normalisation is the identity ---
    ds = _image_base(sop_class=SECONDARY_CAPTURE, ts=ExplicitVRLittleEndian, study="mf", series="mono8",
                     name="mono8", number=1, modality_="OT", patient="Render^Frames", description="mono8")
    ds.ConversionType = "WSD"
    _mono(ds, MF_ROWS, MF_COLS, 8)
    y, x = np.mgrid[0:MF_ROWS, 0:MF_COLS]
    mono8 = ((x + y * MF_COLS) * 255 // (MF_ROWS * MF_COLS - 1)).astype(np.uint8)  # 0..255, every level
    assert mono8.min() == 0 and mono8.max() == 255
    _set_pixel_data(ds, "OB", mono8.tobytes())
    add(_img(ds, "mono8", mono8, [mono8.tobytes()]))

    # --- study "rgb": JPEG baseline, YBR_FULL_422 ---
    rgb = rgb_array()
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=90, subsampling=1)  # 4:2:2
    jpeg = buf.getvalue()
    if len(jpeg) % 2:
        jpeg += b"\x00"
    ds = _image_base(sop_class=SECONDARY_CAPTURE, ts=JPEGBaseline8Bit, study="rgb", series="rgb", name="rgb-jpeg",
                     number=1, modality_="OT", patient="Render^Colour", description="rgb")
    ds.ConversionType = "WSD"
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "YBR_FULL_422"
    ds.PlanarConfiguration = 0
    ds.Rows, ds.Columns = RGB_ROWS, RGB_COLS
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.LossyImageCompression = "01"
    ds.LossyImageCompressionMethod = "ISO_10918_1"
    _set_pixel_data(ds, "OB", encapsulate([jpeg]), encapsulated=True)
    decoded = np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"))
    add(_img(ds, "rgb-jpeg", rgb, [], reference=decoded))

    # --- study "jls": JPEG-LS lossless, which the server cannot decode ---
    ds, stored = ct("jls", study="jls", series="jls", number=1)
    add(_img(_dcmtk(DCMCJPLS, "+el", ds, workdir, "jls"), "jls", stored, [stored.tobytes()]))

    # --- study "video": H.264 (fragmentable, MP4) and MPEG-2 (program stream) ---
    add(video(workdir, "h264"))
    add(video(workdir, "mpeg2"))

    order = [k for k in out if not k.startswith("level-")]
    order[order.index("mf-native"):order.index("mf-native")] = [f"level-{i}" for i in LEVELS_STORE_ORDER]
    return RenderCorpus(out, order)


def make_video(workdir: Path, codec: str) -> bytes:
    """Two seconds of ffmpeg's test pattern, 320x240 at 25 frames/s."""
    src = ["-f", "lavfi", "-i", f"testsrc=size={VIDEO_COLS}x{VIDEO_ROWS}:rate={VIDEO_FPS}", "-t", "2"]
    if codec == "h264":
        path = workdir / "video.mp4"
        enc = ["-c:v", "libx264", "-profile:v", "high", "-level", "4.1", "-pix_fmt", "yuv420p",
               "-movflags", "+faststart", "-bitexact", "-threads", "1", "-x264-params", "threads=1"]
    else:
        path = workdir / "video.mpg"
        enc = ["-c:v", "mpeg2video", "-profile:v", "4", "-level:v", "8", "-pix_fmt", "yuv420p",
               "-b:v", "800k", "-bitexact", "-f", "mpeg"]
    _run([FFMPEG, "-nostdin", "-loglevel", "error", "-y", *src, *enc, str(path)])
    return path.read_bytes()


def video(workdir: Path, codec: str) -> Img:
    stream = make_video(workdir, codec)
    ts = H264_HP41_FRAGMENTABLE if codec == "h264" else MPEG2_MPML
    label = f"video-{codec}"
    ds = _image_base(sop_class=VIDEO_ENDOSCOPIC, ts=ts, study=label, series=label, name=label, number=1,
                     modality_="ES", patient="Render^Video", description=codec)
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "YBR_PARTIAL_420"
    ds.PlanarConfiguration = 0
    ds.Rows, ds.Columns = VIDEO_ROWS, VIDEO_COLS
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.NumberOfFrames = VIDEO_FRAMES
    ds.FrameIncrementPointer = 0x00181063
    ds.FrameTime = str(1000 // VIDEO_FPS)  # 40 ms
    ds.CineRate = VIDEO_FPS
    ds.RecommendedDisplayFrameRate = VIDEO_FPS
    ds.LossyImageCompression = "01"
    ds.LossyImageCompressionMethod = "ISO_14496_10" if codec == "h264" else "ISO_13818_2"
    frags = split_fragments(stream)
    _set_pixel_data(ds, "OB", encapsulated(frags), encapsulated=True)
    return _img(ds, label, None, [], fragments=frags)


def write(outdir: Path) -> list[Path]:
    outdir.mkdir(parents=True, exist_ok=True)
    corpus = build(outdir / "work")
    paths = []
    for inst in corpus.all():
        p = outdir / f"{inst.label}.dcm"
        p.write_bytes(inst.data)
        paths.append(p)
    shutil.rmtree(outdir / "work")
    return paths


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python imagegen.py OUTDIR")
    for p in write(Path(sys.argv[1])):
        print(p)
