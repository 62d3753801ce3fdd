"""A small, deterministic VL Whole Slide Microscopy pyramid for the wsidicom tests.

Everything is built in code with pydicom and Pillow from a seed: the same seed
gives the same UIDs, pixels and bytes. A slide is one study with one series
(modality SM, SOP class 1.2.840.10008.5.1.4.1.1.77.1.6) holding

* three VOLUME levels: the base level (1024x768 px by default) and two levels
  down-sampled by 2 and 4, all with 256x256 JPEG baseline tiles (the lower
  levels end in partial tiles, padded with white as scanners do);
* a LABEL and an OVERVIEW image, one JPEG frame each.

Layout options reproduce what real scanners write:

* ``concatenated_level=N``: level N is stored as a concatenation of two
  instances (ConcatenationUID, SOPInstanceUIDOfConcatenationSource,
  InConcatenationNumber, ConcatenationFrameOffsetNumber), split at a frame that
  is not at the start of a tile row;
* ``sparse_level=N``: level N is TILED_SPARSE: its frames are in a shuffled
  order, one tile is left out (it reads as background), and a Per-Frame
  Functional Groups Sequence gives every frame's plane position.

The pixels are a function of the position on the slide (a red gradient along x,
a green one along y, and seeded random blue 64x64 blocks of the base level), so
a tile read from the wrong position, level or instance does not match. What a
reader must see is not the pattern itself (JPEG is lossy) but the JPEG tiles as
decoded by Pillow: :attr:`Level.expected` holds them, stitched and cropped to
the total pixel matrix.

``python slidegen.py OUTDIR`` writes the default slides out for inspection.
"""

from __future__ import annotations

import io
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence
from pydicom.uid import JPEGBaseline8Bit

import dicomgen
from dicomgen import VL_WHOLE_SLIDE, Instance

TILE = 256
BASE_WIDTH = 1024
BASE_HEIGHT = 768
LEVELS = 3                      # base, /2, /4
BASE_PIXEL_SPACING_MM = 0.0005  # 0.5 um/px ("20x")
JPEG_QUALITY = 90
# Slide coordinates (mm) of the top left corner of the imaged area, and the
# usual orientation of a scanner's pixel matrix on the slide (PS3.3 C.8.12.2.1.1).
ORIGIN_MM = (20.0, 40.0)
IMAGE_ORIENTATION_SLIDE = [0, -1, 0, -1, 0, 0]
WHITE = 255
# White in PS3.3 C.10.7.1.1 encoding (L* 100, a* 0, b* 0).
WHITE_CIELAB = [0xFFFF, 0x8080, 0x8080]


def code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def srgb_icc_profile() -> bytes:
    """An sRGB ICC profile (littleCMS, via Pillow), padded to even length.

    littleCMS stamps the creation time into the header (bytes 24-35, six
    big-endian uint16: year, month, day, hour, minute, second); it is fixed
    here so that the output is deterministic. The profile carries no profile
    ID (MD5) that this would invalidate."""
    data = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    assert data[36:40] == b"acsp" and not any(data[84:100])
    data[24:36] = b"".join(v.to_bytes(2, "big") for v in (2024, 6, 10, 9, 30, 0))
    return bytes(data) + b"\x00" * (len(data) % 2)


def encode_jpeg(rgb: np.ndarray) -> bytes:
    """JPEG baseline, 4:2:2 (matching YBR_FULL_422), padded to even length.

    The padding (a trailing 0x00 after EOI, ignored by decoders) is what DICOM
    encapsulation adds anyway, so the returned bytes are exactly the stored
    fragment, and what WADO-RS frames must return."""
    buf = io.BytesIO()
    Image.fromarray(rgb, mode="RGB").save(buf, format="JPEG", quality=JPEG_QUALITY, subsampling=1)
    data = buf.getvalue()
    assert data[:2] == b"\xff\xd8" and data.endswith(b"\xff\xd9")
    return data + b"\x00" * (len(data) % 2)


def decode_jpeg(data: bytes) -> np.ndarray:
    """The pixels a Pillow-based reader (as wsidicom is here) gets from a tile."""
    with Image.open(io.BytesIO(data)) as img:
        assert img.format == "JPEG"
        return np.asarray(img.convert("RGB"))


@dataclass
class Level:
    """One pyramid level: its geometry, the instances it is stored in, its
    tiles in raster order (bytes as stored), and the expected pixels."""

    index: int                  # pyramid level: down-sampled by 2**index
    width: int
    height: int
    pixel_spacing_mm: float
    tiles: list[bytes]          # raster order (TILED_FULL frame order), encoded
    expected: np.ndarray        # height x width x 3: decoded tiles, stitched and cropped
    instances: list[Instance] = field(default_factory=list)
    missing_tiles: set[tuple[int, int]] = field(default_factory=set)  # (col, row), sparse only

    @property
    def tiles_x(self) -> int:
        return -(-self.width // TILE)

    @property
    def tiles_y(self) -> int:
        return -(-self.height // TILE)

    def tile(self, col: int, row: int) -> bytes:
        return self.tiles[row * self.tiles_x + col]


@dataclass
class SingleImage:
    """A LABEL or OVERVIEW image (one frame) and its decoded pixels."""

    instance: Instance
    expected: np.ndarray


@dataclass
class Slide:
    study_uid: str
    series_uid: str
    levels: list[Level]
    label: SingleImage
    overview: SingleImage
    name: str = ""

    def instances(self) -> list[Instance]:
        out = [i for lvl in self.levels for i in lvl.instances]
        return out + [self.label.instance, self.overview.instance]

    def datasets_for_stow(self) -> list[Dataset]:
        return [i.reread() for i in self.instances()]


class _Uids:
    """Deterministic UIDs derived from the seed and a name: 2.25.<name-based
    UUID> (PS3.5 B.2). (pydicom's generate_uid ignores its entropy sources when
    asked for a 2.25 UID, so it cannot be used here.)"""

    NAMESPACE = uuid.UUID("6f1d3c52-7d0e-4a55-9a53-0c2a7e5f9b11")  # arbitrary, fixed

    def __init__(self, seed: int, name: str):
        self.seed, self.name = seed, name

    def __call__(self, what: str) -> str:
        return f"2.25.{uuid.uuid5(self.NAMESPACE, f'{self.seed}/{self.name}/{what}').int}"


# ---------------------------------------------------------------------------
# pixels
# ---------------------------------------------------------------------------


def slide_pattern(seed: int, base_x: np.ndarray, base_y: np.ndarray) -> np.ndarray:
    """RGB of the slide at base-level pixel coordinates (arrays, any shape)."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(40, 216, size=(BASE_HEIGHT // 64 + 1, BASE_WIDTH // 64 + 1))
    bx = np.clip(base_x, 0, BASE_WIDTH - 1)
    by = np.clip(base_y, 0, BASE_HEIGHT - 1)
    r = 255.0 * bx / (BASE_WIDTH - 1)
    g = 255.0 * by / (BASE_HEIGHT - 1)
    b = blocks[(by // 64).astype(int), (bx // 64).astype(int)]
    return np.stack([r, g, b], axis=-1).round().astype(np.uint8)


def level_pixels(seed: int, index: int, width: int, height: int) -> np.ndarray:
    """The pattern sampled at the centres of this level's pixels, padded with
    white to whole tiles."""
    d = 2 ** index
    tiles_w, tiles_h = -(-width // TILE) * TILE, -(-height // TILE) * TILE
    y, x = np.mgrid[0:tiles_h, 0:tiles_w]
    rgb = slide_pattern(seed, (x + 0.5) * d - 0.5, (y + 0.5) * d - 0.5)
    rgb[height:, :, :] = WHITE
    rgb[:, width:, :] = WHITE
    return rgb


def make_level(seed: int, index: int) -> Level:
    width, height = BASE_WIDTH >> index, BASE_HEIGHT >> index
    pixels = level_pixels(seed, index, width, height)
    tiles, decoded = [], np.zeros_like(pixels)
    for row in range(pixels.shape[0] // TILE):
        for col in range(pixels.shape[1] // TILE):
            ys, xs = slice(row * TILE, (row + 1) * TILE), slice(col * TILE, (col + 1) * TILE)
            data = encode_jpeg(np.ascontiguousarray(pixels[ys, xs]))
            tiles.append(data)
            decoded[ys, xs] = decode_jpeg(data)
    # Sanity check of the generator: JPEG keeps the pattern (so that a tile from
    # elsewhere is far off), and every tile differs from every other one.
    err = np.abs(decoded.astype(int) - pixels.astype(int)).mean()
    assert err < 4, f"level {index}: JPEG error {err:.1f} too large"
    assert len(set(tiles)) == len(tiles)
    return Level(index, width, height, BASE_PIXEL_SPACING_MM * 2 ** index, tiles,
                 np.ascontiguousarray(decoded[:height, :width]))


# ---------------------------------------------------------------------------
# datasets
# ---------------------------------------------------------------------------


def _wsi_dataset(uid: _Uids, *, study_uid: str, series_uid: str, sop_uid: str, image_type: list[str],
                 instance_number: int, width: int, height: int, tile: tuple[int, int], frames: int,
                 pixel_spacing_mm: float, origin_mm: tuple[float, float], container: str) -> Dataset:
    """The attributes every image of the slide carries (PS3.3 A.32.8)."""
    ds = dicomgen._base(
        sop_class=VL_WHOLE_SLIDE,
        transfer_syntax=JPEGBaseline8Bit,
        study_uid=study_uid,
        series_uid=series_uid,
        sop_uid=sop_uid,
        charset="ISO_IR 192",
        patient_name="Pyramid^Slide",
        patient_id=dicomgen.PATIENT_ID_PREFIX + "SM-PYRAMID",
        modality="SM",
        study_date="20240610",
        study_time="093000",
        accession="E2E-SM-PYR",
        study_description="Slide pyramid synthetic",
        series_description="HE 20x pyramid",
        instance_number=instance_number,
    )
    ds.ContentDate, ds.ContentTime = "20240610", "093000"
    ds.AcquisitionDateTime = "20240610093000"
    # Enhanced General Equipment
    ds.ManufacturerModelName = "Synthetic scanner"
    ds.DeviceSerialNumber = "E2E-0001"
    ds.SoftwareVersions = "slidegen 1"
    # Frame of Reference
    ds.FrameOfReferenceUID = uid("frame-of-reference")
    ds.PositionReferenceIndicator = "SLIDE_CORNER"
    # Whole Slide Microscopy Image
    ds.ImageType = image_type
    ds.VolumetricProperties = "VOLUME"
    ds.ImagedVolumeWidth = round(width * pixel_spacing_mm, 6)
    ds.ImagedVolumeHeight = round(height * pixel_spacing_mm, 6)
    ds.ImagedVolumeDepth = 0.001
    ds.TotalPixelMatrixColumns = width
    ds.TotalPixelMatrixRows = height
    ds.TotalPixelMatrixFocalPlanes = 1
    origin = Dataset()
    origin.XOffsetInSlideCoordinateSystem = origin_mm[0]
    origin.YOffsetInSlideCoordinateSystem = origin_mm[1]
    ds.TotalPixelMatrixOriginSequence = Sequence([origin])
    ds.ImageOrientationSlide = IMAGE_ORIENTATION_SLIDE
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "YBR_FULL_422"
    ds.PlanarConfiguration = 0
    ds.Rows, ds.Columns = tile[1], tile[0]
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.PixelRepresentation = 0
    ds.NumberOfFrames = frames
    ds.LossyImageCompression = "01"
    ds.LossyImageCompressionMethod = "ISO_10918_1"
    ds.LossyImageCompressionRatio = "10"
    label = image_type[2] == "LABEL"
    ds.SpecimenLabelInImage = "YES" if label or image_type[2] == "OVERVIEW" else "NO"
    ds.BurnedInAnnotation = "YES" if label else "NO"
    ds.FocusMethod = "AUTO"
    ds.ExtendedDepthOfField = "NO"
    ds.DimensionOrganizationType = "TILED_FULL"
    ds.RecommendedAbsentPixelCIELabValue = WHITE_CIELAB
    # Multi-frame Dimension: tiles are indexed by their position in the total pixel matrix.
    dim_org = uid("dimension-organization")
    ds.DimensionOrganizationSequence = Sequence([Dataset()])
    ds.DimensionOrganizationSequence[0].DimensionOrganizationUID = dim_org
    dims = []
    for pointer in (0x0048021E, 0x0048021F):  # Column/Row Position In Total Image Pixel Matrix
        d = Dataset()
        d.DimensionOrganizationUID = dim_org
        d.DimensionIndexPointer = pointer
        d.FunctionalGroupPointer = 0x0048021A  # Plane Position (Slide) Sequence
        dims.append(d)
    ds.DimensionIndexSequence = Sequence(dims)
    # Shared Functional Groups: pixel measures, frame type, optical path.
    shared = Dataset()
    measures = Dataset()
    measures.PixelSpacing = [pixel_spacing_mm, pixel_spacing_mm]
    measures.SliceThickness = 0.001
    measures.SpacingBetweenSlices = 0.0
    shared.PixelMeasuresSequence = Sequence([measures])
    frame_type = Dataset()
    frame_type.FrameType = image_type
    shared.WholeSlideMicroscopyImageFrameTypeSequence = Sequence([frame_type])
    path_id = Dataset()
    path_id.OpticalPathIdentifier = "0"
    shared.OpticalPathIdentificationSequence = Sequence([path_id])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    # Optical Path: one bright-field path with an sRGB ICC profile (required for colour images).
    ds.NumberOfOpticalPaths = 1
    path = Dataset()
    path.OpticalPathIdentifier = "0"
    path.OpticalPathDescription = "Brightfield"
    path.IlluminationTypeCodeSequence = Sequence([code("111744", "DCM", "Brightfield illumination")])
    path.IlluminationColorCodeSequence = Sequence([code("414298005", "SCT", "Full Spectrum")])
    path.ICCProfile = srgb_icc_profile()
    path.ColorSpace = "SRGB"
    ds.OpticalPathSequence = Sequence([path])
    # Specimen: one slide with one specimen, no preparation steps recorded.
    ds.ContainerIdentifier = container
    ds.IssuerOfTheContainerIdentifierSequence = Sequence([])
    ds.ContainerTypeCodeSequence = Sequence([code("433466003", "SCT", "Microscope slide")])
    specimen = Dataset()
    specimen.SpecimenIdentifier = container + "-A"
    specimen.SpecimenUID = uid("specimen")
    specimen.IssuerOfTheSpecimenIdentifierSequence = Sequence([])
    specimen.SpecimenPreparationSequence = Sequence([])
    ds.SpecimenDescriptionSequence = Sequence([specimen])
    ds.AcquisitionContextSequence = Sequence([])
    return ds


def _finish(ds: Dataset, frames: list[bytes], label: str) -> Instance:
    # Basic Offset Table filled: what most scanners write.
    ds.add_new(0x7FE00010, "OB", encapsulate(frames, has_bot=True))
    ds["PixelData"].is_undefined_length = True
    return Instance(ds, dicomgen.to_part10(ds), list(frames), label=label)


def _plane_positions(level: Level, tiles: list[tuple[int, int]]) -> Sequence:
    """Per-Frame Functional Groups: where each frame (tile col, row) sits."""
    sx = sy = level.pixel_spacing_mm
    items = []
    for col, row in tiles:
        item = Dataset()
        content = Dataset()
        content.DimensionIndexValues = [col + 1, row + 1]
        item.FrameContentSequence = Sequence([content])
        pos = Dataset()
        c, r = col * TILE, row * TILE
        # With ImageOrientationSlide [0,-1,0,-1,0,0] columns run along -Y and rows along -X.
        pos.XOffsetInSlideCoordinateSystem = round(ORIGIN_MM[0] - r * sy, 6)
        pos.YOffsetInSlideCoordinateSystem = round(ORIGIN_MM[1] - c * sx, 6)
        pos.ZOffsetInSlideCoordinateSystem = 0.0
        pos.ColumnPositionInTotalImagePixelMatrix = c + 1
        pos.RowPositionInTotalImagePixelMatrix = r + 1
        item.PlanePositionSlideSequence = Sequence([pos])
        items.append(item)
    return Sequence(items)


def slide(seed: int = 1, *, concatenated_level: int | None = None, sparse_level: int | None = None,
          name: str | None = None) -> Slide:
    """Build the slide (see the module docstring)."""
    name = name or f"slide-{seed}" + (f"-concat{concatenated_level}" if concatenated_level is not None else "") \
        + (f"-sparse{sparse_level}" if sparse_level is not None else "")
    uid = _Uids(seed, name)
    study_uid, series_uid = uid("study"), uid("series")
    container = f"E2E-SLIDE-{seed}"
    rng = np.random.default_rng(seed + 1)
    common = dict(study_uid=study_uid, series_uid=series_uid, container=container, origin_mm=ORIGIN_MM)

    levels = []
    number = 1
    for index in range(LEVELS):
        lvl = make_level(seed, index)
        image_type = ["ORIGINAL", "PRIMARY", "VOLUME", "NONE"] if index == 0 else \
            ["DERIVED", "PRIMARY", "VOLUME", "RESAMPLED"]
        geom = dict(image_type=image_type, width=lvl.width, height=lvl.height, tile=(TILE, TILE),
                    pixel_spacing_mm=lvl.pixel_spacing_mm, **common)
        if index == concatenated_level:
            # Two parts, split inside a tile row so that the frame offset matters.
            split = len(lvl.tiles) // 2 + 1
            assert 0 < split < len(lvl.tiles) and split % lvl.tiles_x
            source_uid = uid(f"level{index}-concatenation-source")
            for part, (start, stop) in enumerate([(0, split), (split, len(lvl.tiles))], start=1):
                ds = _wsi_dataset(uid, sop_uid=uid(f"level{index}-part{part}"), instance_number=number,
                                  frames=stop - start, **geom)
                ds.SOPInstanceUIDOfConcatenationSource = source_uid
                ds.ConcatenationUID = uid(f"level{index}-concatenation")
                ds.InConcatenationNumber = part
                ds.InConcatenationTotalNumber = 2
                ds.ConcatenationFrameOffsetNumber = start
                lvl.instances.append(_finish(ds, lvl.tiles[start:stop], f"{name}-level{index}-part{part}"))
        elif index == sparse_level:
            # Frames in a shuffled order, one tile (not the first) left out.
            positions = [(c, r) for r in range(lvl.tiles_y) for c in range(lvl.tiles_x)]
            order = [int(i) for i in rng.permutation(len(positions))]
            assert order != sorted(order)
            missing = positions[order.pop(1)]
            lvl.missing_tiles = {missing}
            c, r = missing
            lvl.expected = lvl.expected.copy()
            lvl.expected[r * TILE:(r + 1) * TILE, c * TILE:(c + 1) * TILE] = WHITE
            ds = _wsi_dataset(uid, sop_uid=uid(f"level{index}"), instance_number=number, frames=len(order), **geom)
            ds.DimensionOrganizationType = "TILED_SPARSE"
            ds.PerFrameFunctionalGroupsSequence = _plane_positions(lvl, [positions[i] for i in order])
            lvl.instances.append(_finish(ds, [lvl.tiles[i] for i in order], f"{name}-level{index}-sparse"))
        else:
            ds = _wsi_dataset(uid, sop_uid=uid(f"level{index}"), instance_number=number,
                              frames=len(lvl.tiles), **geom)
            lvl.instances.append(_finish(ds, lvl.tiles, f"{name}-level{index}"))
        number += 1
        levels.append(lvl)

    def single(kind: str, width: int, height: int, spacing_mm: float, pixels: np.ndarray) -> SingleImage:
        nonlocal number
        data = encode_jpeg(pixels)
        ds = _wsi_dataset(uid, sop_uid=uid(kind), image_type=["ORIGINAL", "PRIMARY", kind, "NONE"],
                          instance_number=number, width=width, height=height, tile=(width, height), frames=1,
                          pixel_spacing_mm=spacing_mm, **common)
        number += 1
        return SingleImage(_finish(ds, [data], f"{name}-{kind.lower()}"), decode_jpeg(data))

    # LABEL: diagonal stripes; OVERVIEW: the slide pattern, coarsely sampled.
    y, x = np.mgrid[0:128, 0:192]
    stripes = np.where(((x + y) // 16) % 2 == 0, 230, 30).astype(np.uint8)
    label_px = np.stack([stripes, stripes // 2 + 60, 255 - stripes], axis=-1)
    label = single("LABEL", 192, 128, 0.1, label_px)
    y, x = np.mgrid[0:96, 0:128]
    overview = single("OVERVIEW", 128, 96, BASE_PIXEL_SPACING_MM * 8,
                      slide_pattern(seed, x * 8.0 + 3.5, y * 8.0 + 3.5))
    return Slide(study_uid, series_uid, levels, label, overview, name)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(f"usage: {argv[0]} OUTDIR", file=sys.stderr)
        return 2
    out = Path(argv[1])
    out.mkdir(parents=True, exist_ok=True)
    for s in (slide(1), slide(2, concatenated_level=0), slide(3, sparse_level=1)):
        for inst in s.instances():
            (out / f"{inst.label}.dcm").write_bytes(inst.data)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
