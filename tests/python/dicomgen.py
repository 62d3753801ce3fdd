"""Synthetic, PHI-free DICOM fixtures for the end-to-end tests.

Everything is built in code with pydicom (and Pillow for JPEG tiles); nothing
is downloaded. Every generator returns :class:`Instance` objects that carry the
pydicom dataset, the exact Part-10 bytes that the tests send, and (for
multi-frame objects) the exact bytes of every frame, so that retrieved frames
and instances can be compared byte for byte.

Run ``python dicomgen.py OUTDIR`` to write the corpus to a folder (handy for
inspecting it with dcmdump or for ``vna import``).
"""

from __future__ import annotations

import io
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image
from pydicom import config as pydicom_config
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
    PYDICOM_IMPLEMENTATION_UID,
    generate_uid,
)

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
MF_GRAYSCALE_BYTE_SC = "1.2.840.10008.5.1.4.1.1.7.2"
VL_WHOLE_SLIDE = "1.2.840.10008.5.1.4.1.1.77.1.6"
KEY_OBJECT_SELECTION = "1.2.840.10008.5.1.4.1.1.88.59"
# IHE IOCM rejection note titles (PS3.16 CID 7011).
REJECTION_TITLES = {
    "113001": "Rejected for Quality Reasons",
    "113037": "Rejected for Patient Safety Reasons",
    "113038": "Incorrect Modality Worklist Entry",
    "113039": "Data Retention Policy Expired",
}

# All synthetic patients carry this prefix in their PatientID.
PATIENT_ID_PREFIX = "VNAE2E-"


@dataclass
class Instance:
    """One synthetic instance and the exact bytes the tests send."""

    ds: Dataset
    data: bytes
    frames: list[bytes] = field(default_factory=list)
    label: str = ""

    @property
    def study_uid(self) -> str:
        return str(self.ds.StudyInstanceUID)

    @property
    def series_uid(self) -> str:
        return str(self.ds.SeriesInstanceUID)

    @property
    def sop_uid(self) -> str:
        return str(self.ds.SOPInstanceUID)

    @property
    def sop_class_uid(self) -> str:
        return str(self.ds.SOPClassUID)

    @property
    def transfer_syntax(self) -> str:
        return str(self.ds.file_meta.TransferSyntaxUID)

    def reread(self) -> Dataset:
        """The dataset as a reader sees it from :attr:`data`."""
        return pydicom.dcmread(io.BytesIO(self.data))


def new_uid() -> str:
    """A fresh UID (2.25.<uuid>), at most 64 characters."""
    return generate_uid(prefix=None)


def to_part10(ds: Dataset) -> bytes:
    """Encode as a DICOM Part-10 file (preamble, DICM, file meta group)."""
    buf = io.BytesIO()
    major = int(pydicom.__version__.split(".")[0])
    if major >= 3:
        ds.save_as(buf, enforce_file_format=True)
    else:  # pragma: no cover - pydicom 2.x
        ds.save_as(buf, write_like_original=False)
    return buf.getvalue()


def _base(
    *,
    sop_class: str,
    transfer_syntax: str,
    study_uid: str,
    series_uid: str,
    sop_uid: str | None = None,
    charset: str | None = "ISO_IR 192",
    patient_name: str,
    patient_id: str,
    modality: str,
    study_date: str,
    study_time: str = "101500",
    accession: str = "",
    study_description: str = "",
    series_description: str = "",
    series_number: int = 1,
    instance_number: int = 1,
) -> Dataset:
    sop_uid = sop_uid or new_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = transfer_syntax
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = "VNA_E2E_GEN"

    ds = Dataset()
    ds.file_meta = meta
    ds.preamble = b"\x00" * 128
    if charset:
        # Must be set before any text value so pydicom encodes with it.
        ds.SpecificCharacterSet = charset
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.StudyDate = study_date
    ds.StudyTime = study_time
    ds.ContentDate = study_date
    ds.ContentTime = study_time
    ds.AccessionNumber = accession
    ds.Modality = modality
    ds.Manufacturer = "VNA synthetic"
    ds.ReferringPhysicianName = "Referrer^Test"
    ds.StudyDescription = study_description
    ds.SeriesDescription = series_description
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "O"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = "1"
    ds.SeriesNumber = series_number
    ds.InstanceNumber = instance_number
    return ds


def _set_pixel_data(ds: Dataset, vr: str, value: bytes, encapsulated: bool = False) -> None:
    ds.add_new(0x7FE00010, vr, value)
    if encapsulated:
        ds["PixelData"].is_undefined_length = True


# ---------------------------------------------------------------------------
# CT-like multi-series study (UTF-8 patient name with accents and ^)
# ---------------------------------------------------------------------------


def ct_pixels(series_index: int, instance_index: int, size: int = 64) -> np.ndarray:
    """A deterministic 16-bit image, different for every instance."""
    y, x = np.mgrid[0:size, 0:size]
    img = (x * 17 + y * 31 + series_index * 1000 + instance_index * 97) % 4096
    return img.astype("<u2")


def ct_study(
    *,
    series_count: int = 2,
    instances_per_series: int = 5,
    patient_name: str = "Müller^Jürgen",
    patient_id: str = PATIENT_ID_PREFIX + "CT-001",
    study_date: str = "20240315",
    study_time: str = "101500",
    accession: str = "E2E-CT-1",
    study_uid: str | None = None,
) -> list[Instance]:
    """A CT-like study: N series x M instances, 64x64 16-bit MONOCHROME2,
    explicit VR little endian, SpecificCharacterSet ISO_IR 192."""
    study_uid = study_uid or new_uid()
    out = []
    for s in range(series_count):
        series_uid = new_uid()
        for i in range(instances_per_series):
            ds = _base(
                sop_class=CT_IMAGE_STORAGE,
                transfer_syntax=ExplicitVRLittleEndian,
                study_uid=study_uid,
                series_uid=series_uid,
                charset="ISO_IR 192",
                patient_name=patient_name,
                patient_id=patient_id,
                modality="CT",
                study_date=study_date,
                study_time=study_time,
                accession=accession,
                study_description="CT THORAX synthetic",
                series_description=f"Axial {s + 1}",
                series_number=s + 1,
                instance_number=i + 1,
            )
            ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
            ds.BodyPartExamined = "CHEST"
            ds.SliceThickness = "2.5"
            ds.ImagePositionPatient = [0, 0, -2.5 * i]
            ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
            ds.PixelSpacing = [0.7, 0.7]
            ds.SamplesPerPixel = 1
            ds.PhotometricInterpretation = "MONOCHROME2"
            ds.Rows = 64
            ds.Columns = 64
            ds.BitsAllocated = 16
            ds.BitsStored = 12
            ds.HighBit = 11
            ds.PixelRepresentation = 0
            ds.RescaleIntercept = "-1024"
            ds.RescaleSlope = "1"
            pixels = ct_pixels(s, i).tobytes()
            _set_pixel_data(ds, "OW", pixels)
            out.append(Instance(ds, to_part10(ds), [pixels], label=f"ct-s{s + 1}-i{i + 1}"))
    return out


# ---------------------------------------------------------------------------
# Single-frame instances with other character sets / transfer syntaxes
# ---------------------------------------------------------------------------


def _small_mono8(ds: Dataset, size: int, seed: int) -> bytes:
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = size
    ds.Columns = size
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(size, size), dtype=np.uint8).tobytes()


def latin1_mr(
    *,
    patient_name: str = "Dürer^Élodie",
    patient_id: str = PATIENT_ID_PREFIX + "MR-LATIN1",
    study_date: str = "20230110",
) -> Instance:
    """An MR-like instance whose text is encoded in ISO 8859-1 (ISO_IR 100)."""
    ds = _base(
        sop_class=MR_IMAGE_STORAGE,
        transfer_syntax=ExplicitVRLittleEndian,
        study_uid=new_uid(),
        series_uid=new_uid(),
        charset="ISO_IR 100",
        patient_name=patient_name,
        patient_id=patient_id,
        modality="MR",
        study_date=study_date,
        study_time="083000",
        accession="E2E-MR-1",
        study_description="IRM genou synthétique",
        series_description="T1 sag",
    )
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.ScanningSequence = "SE"
    ds.SequenceVariant = "NONE"
    ds.ScanOptions = ""
    ds.MRAcquisitionType = "2D"
    ds.EchoTime = "15"
    ds.RepetitionTime = "500"
    ds.MagneticFieldStrength = "1.5"
    pixels = _small_mono8(ds, 32, seed=42)
    _set_pixel_data(ds, "OB", pixels)
    inst = Instance(ds, to_part10(ds), [pixels], label="mr-latin1")
    assert "Dürer".encode("latin-1") in inst.data, "Latin-1 encoding not applied"
    return inst


def implicit_vr_sc(
    *,
    patient_name: str = "Implicit^Ivan",
    patient_id: str = PATIENT_ID_PREFIX + "SC-IMPLICIT",
    study_date: str = "20200202",
) -> Instance:
    """A Secondary Capture instance in implicit VR little endian (1.2.840.10008.1.2)."""
    ds = _base(
        sop_class=SECONDARY_CAPTURE,
        transfer_syntax=ImplicitVRLittleEndian,
        study_uid=new_uid(),
        series_uid=new_uid(),
        charset="ISO_IR 192",
        patient_name=patient_name,
        patient_id=patient_id,
        modality="OT",
        study_date=study_date,
        study_time="120000",
        accession="E2E-SC-1",
        study_description="Implicit VR synthetic",
        series_description="SC",
    )
    ds.ConversionType = "WSD"
    pixels = _small_mono8(ds, 16, seed=7)
    _set_pixel_data(ds, "OB", pixels)
    return Instance(ds, to_part10(ds), [pixels], label="sc-implicit")


# ---------------------------------------------------------------------------
# Multi-frame, native pixel data
# ---------------------------------------------------------------------------


def native_multiframe(
    *,
    frames: int = 10,
    size: int = 32,
    patient_name: str = "Native^Frames",
    patient_id: str = PATIENT_ID_PREFIX + "MF-NATIVE",
    study_date: str = "20220601",
) -> Instance:
    """Multi-frame Grayscale Byte SC: `frames` frames of size x size, 8 bits,
    native (uncompressed) explicit VR little endian."""
    ds = _base(
        sop_class=MF_GRAYSCALE_BYTE_SC,
        transfer_syntax=ExplicitVRLittleEndian,
        study_uid=new_uid(),
        series_uid=new_uid(),
        charset="ISO_IR 192",
        patient_name=patient_name,
        patient_id=patient_id,
        modality="XA",
        study_date=study_date,
        study_time="141500",
        accession="E2E-MF-1",
        study_description="Native multi-frame synthetic",
        series_description="Cine",
    )
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = size
    ds.Columns = size
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.NumberOfFrames = frames
    ds.FrameIncrementPointer = 0x00181063  # Frame Time
    ds.FrameTime = "100"
    frame_bytes = []
    y, x = np.mgrid[0:size, 0:size]
    for f in range(frames):
        img = ((x * 8 + y * 3 + f * 23) % 256).astype(np.uint8)
        img[f % size, :] = 255  # a moving bright line makes every frame unique
        frame_bytes.append(img.tobytes())
    _set_pixel_data(ds, "OB", b"".join(frame_bytes))
    return Instance(ds, to_part10(ds), frame_bytes, label="mf-native")


# ---------------------------------------------------------------------------
# Whole-slide-like image: encapsulated JPEG baseline tiles
# ---------------------------------------------------------------------------


def jpeg_tile(index: int, size: int = 64) -> bytes:
    """A unique RGB tile encoded as JPEG baseline (4:2:2), padded to even length.

    The even-length padding (a trailing 0x00 after EOI, which decoders ignore)
    is what DICOM encapsulation would add anyway; doing it here means the
    tile bytes are exactly the fragment bytes stored in the file.
    """
    rng = np.random.default_rng(1000 + index)
    y, x = np.mgrid[0:size, 0:size]
    rgb = np.stack(
        [
            (x * 4 + index * 7) % 256,
            (y * 4 + index * 13) % 256,
            ((x + y) * 2 + index * 29) % 256,
        ],
        axis=-1,
    ).astype(np.int16)
    rgb += rng.integers(-12, 12, size=rgb.shape, dtype=np.int16)
    img = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), mode="RGB")
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=85, subsampling=1)  # 1 = 4:2:2
    data = buf.getvalue()
    assert data[:2] == b"\xff\xd8" and data.endswith(b"\xff\xd9")
    if len(data) % 2:
        data += b"\x00"
    return data


def wsi_slide(
    *,
    has_bot: bool,
    tiles_x: int = 10,
    tiles_y: int = 12,
    tile: int = 64,
    study_uid: str | None = None,
    series_uid: str | None = None,
    patient_name: str = "Slide^Patient",
    patient_id: str = PATIENT_ID_PREFIX + "SM-001",
    study_date: str = "20211120",
    instance_number: int = 1,
) -> Instance:
    """VL Whole Slide Microscopy Image, TILED_FULL, tiles_x*tiles_y JPEG
    baseline frames (1.2.840.10008.1.2.4.50), with an empty or a filled
    Basic Offset Table."""
    n = tiles_x * tiles_y
    ds = _base(
        sop_class=VL_WHOLE_SLIDE,
        transfer_syntax=JPEGBaseline8Bit,
        study_uid=study_uid or new_uid(),
        series_uid=series_uid or new_uid(),
        charset="ISO_IR 192",
        patient_name=patient_name,
        patient_id=patient_id,
        modality="SM",
        study_date=study_date,
        study_time="160000",
        accession="E2E-SM-1",
        study_description="Slide synthetic",
        series_description="HE 20x",
        instance_number=instance_number,
    )
    ds.ImageType = ["ORIGINAL", "PRIMARY", "VOLUME", "NONE"]
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "YBR_FULL_422"
    ds.PlanarConfiguration = 0
    ds.Rows = tile
    ds.Columns = tile
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.NumberOfFrames = n
    ds.TotalPixelMatrixColumns = tiles_x * tile
    ds.TotalPixelMatrixRows = tiles_y * tile
    ds.TotalPixelMatrixFocalPlanes = 1
    ds.DimensionOrganizationType = "TILED_FULL"
    ds.ImagedVolumeWidth = 1.0
    ds.ImagedVolumeHeight = 1.0
    ds.ImagedVolumeDepth = 0.001
    ds.LossyImageCompression = "01"
    ds.LossyImageCompressionMethod = "ISO_10918_1"
    ds.LossyImageCompressionRatio = "10"
    ds.ContainerIdentifier = "E2E-SLIDE-1"
    ds.SpecimenLabelInImage = "NO"
    ds.BurnedInAnnotation = "NO"
    ds.FocusMethod = "AUTO"
    ds.ExtendedDepthOfField = "NO"
    tiles = [jpeg_tile(i, tile) for i in range(n)]
    _set_pixel_data(ds, "OB", encapsulate(tiles, has_bot=has_bot), encapsulated=True)
    label = "wsi-bot" if has_bot else "wsi-nobot"
    return Instance(ds, to_part10(ds), tiles, label=label)


# ---------------------------------------------------------------------------
# The standard corpus and bad inputs
# ---------------------------------------------------------------------------


@dataclass
class Corpus:
    ct: list[Instance]
    mr_latin1: Instance
    sc_implicit: Instance
    mf_native: Instance
    wsi_nobot: Instance
    wsi_bot: Instance

    @property
    def wsi(self) -> list[Instance]:
        return [self.wsi_nobot, self.wsi_bot]

    def all(self) -> list[Instance]:
        return [*self.ct, self.mr_latin1, self.sc_implicit, self.mf_native, *self.wsi]

    def studies(self) -> dict[str, list[Instance]]:
        out: dict[str, list[Instance]] = {}
        for inst in self.all():
            out.setdefault(inst.study_uid, []).append(inst)
        return out


def corpus() -> Corpus:
    """Five studies: CT (2x5, UTF-8 name), MR (Latin-1 name), SC (implicit VR),
    native multi-frame XA-like, and a slide study with two WSI instances
    (empty and filled Basic Offset Table) in one series."""
    study, series = new_uid(), new_uid()
    return Corpus(
        ct=ct_study(),
        mr_latin1=latin1_mr(),
        sc_implicit=implicit_vr_sc(),
        mf_native=native_multiframe(),
        wsi_nobot=wsi_slide(has_bot=False, study_uid=study, series_uid=series, instance_number=1),
        wsi_bot=wsi_slide(has_bot=True, study_uid=study, series_uid=series, instance_number=2),
    )


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    c = Dataset()
    c.CodeValue = value
    c.CodingSchemeDesignator = scheme
    c.CodeMeaning = meaning
    return c


def rejection_note(of: Instance, rejected: list[tuple[str, str, str, str]], code: str = "113001",
                   title_scheme: str = "DCM") -> Instance:
    """An IHE IOCM rejection note (Key Object Selection, TID 2010, titled from CID 7011) in the
    study of `of`, in a series of its own, rejecting `rejected` as (study, series, SOP class,
    SOP instance) UIDs: the Current Requested Procedure Evidence Sequence and the content tree
    both name them."""
    ds = _base(sop_class=KEY_OBJECT_SELECTION, transfer_syntax=ExplicitVRLittleEndian, study_uid=of.study_uid,
               series_uid=new_uid(), patient_name=str(of.ds.PatientName), patient_id=str(of.ds.PatientID), modality="KO",
               study_date=str(of.ds.StudyDate), series_description="Rejection note", series_number=99)
    ds.PatientBirthDate = of.ds.get("PatientBirthDate", "")
    meaning = REJECTION_TITLES.get(code, "Of Interest")
    ds.ValueType = "CONTAINER"
    ds.ContinuityOfContent = "SEPARATE"
    ds.ConceptNameCodeSequence = [_code(code, title_scheme, meaning)]
    template = Dataset()
    template.MappingResource = "DCMR"
    template.TemplateIdentifier = "2010"
    ds.ContentTemplateSequence = [template]
    ds.ReferencedPerformedProcedureStepSequence = []
    evidence = []
    for study in dict.fromkeys(r[0] for r in rejected):
        st = Dataset()
        st.StudyInstanceUID = study
        st.ReferencedSeriesSequence = []
        for series in dict.fromkeys(r[1] for r in rejected if r[0] == study):
            se = Dataset()
            se.SeriesInstanceUID = series
            se.ReferencedSOPSequence = []
            for (_, _, cls, sop) in (r for r in rejected if r[0] == study and r[1] == series):
                ref = Dataset()
                ref.ReferencedSOPClassUID = cls
                ref.ReferencedSOPInstanceUID = sop
                se.ReferencedSOPSequence.append(ref)
            st.ReferencedSeriesSequence.append(se)
        evidence.append(st)
    ds.CurrentRequestedProcedureEvidenceSequence = evidence
    content = []
    for (_, _, cls, sop) in rejected:
        item = Dataset()
        item.RelationshipType = "CONTAINS"
        item.ValueType = "IMAGE"
        ref = Dataset()
        ref.ReferencedSOPClassUID = cls
        ref.ReferencedSOPInstanceUID = sop
        item.ReferencedSOPSequence = [ref]
        content.append(item)
    ds.ContentSequence = content
    return Instance(ds, to_part10(ds), [], label=f"rejection-{code}")


def with_changes(inst: Instance, **attrs) -> Instance:
    """A copy of `inst` with attributes changed (UIDs kept unless changed),
    re-encoded. Invalid values are written as given (validation off)."""
    ds = pydicom.dcmread(io.BytesIO(inst.data))
    with _no_validation():
        for k, v in attrs.items():
            if v is None:
                if k in ds:
                    delattr(ds, k)
            else:
                setattr(ds, k, v)
        if "SOPInstanceUID" in attrs and attrs["SOPInstanceUID"] is not None:
            ds.file_meta.MediaStorageSOPInstanceUID = attrs["SOPInstanceUID"]
        data = to_part10(ds)
    return Instance(ds, data, list(inst.frames), label=inst.label + "-changed")


class _no_validation:
    def __enter__(self):
        self._r = pydicom_config.settings.reading_validation_mode
        self._w = pydicom_config.settings.writing_validation_mode
        pydicom_config.settings.reading_validation_mode = pydicom_config.IGNORE
        pydicom_config.settings.writing_validation_mode = pydicom_config.IGNORE
        self._warn = warnings.catch_warnings()
        self._warn.__enter__()
        warnings.simplefilter("ignore")
        return self

    def __exit__(self, *exc):
        self._warn.__exit__(*exc)
        pydicom_config.settings.reading_validation_mode = self._r
        pydicom_config.settings.writing_validation_mode = self._w
        return False


def _element_span(data: bytes, tag: tuple[int, int], start: int, explicit: bool = True) -> tuple[int, int]:
    """(offset, total length) of the first top-level occurrence of a short
    explicit-VR element with the given tag, found by walking from `start`."""
    group, elem = tag
    pos = start
    while pos + 8 <= len(data):
        g = int.from_bytes(data[pos:pos + 2], "little")
        e = int.from_bytes(data[pos + 2:pos + 4], "little")
        vr = data[pos + 4:pos + 6]
        if vr in (b"OB", b"OW", b"OF", b"SQ", b"UT", b"UN", b"UC", b"UR", b"OD", b"OL", b"OV", b"SV", b"UV"):
            length = int.from_bytes(data[pos + 8:pos + 12], "little")
            header = 12
        else:
            length = int.from_bytes(data[pos + 6:pos + 8], "little")
            header = 8
        if (g, e) == (group, elem):
            return pos, header + length
        if length == 0xFFFFFFFF or (g, e) > (group, elem):
            break
        pos += header + length
    raise ValueError(f"tag {tag} not found")


def without_sop_instance_uid(inst: Instance) -> bytes:
    """Part-10 bytes of `inst` with SOP Instance UID (0008,0018) removed from
    the data set and Media Storage SOP Instance UID (0002,0003) removed from
    the file meta group (group length fixed up). pydicom refuses to write such
    a file, so the elements are cut out of the encoded bytes."""
    assert inst.transfer_syntax == ExplicitVRLittleEndian
    data = bytearray(inst.data)
    # Dataset part first (it comes after the meta group, so offsets before it stay valid).
    meta_len_pos = 128 + 4 + 8  # preamble, DICM, (0002,0000) UL header
    meta_len = int.from_bytes(data[meta_len_pos:meta_len_pos + 4], "little")
    ds_start = meta_len_pos + 4 + meta_len
    off, ln = _element_span(bytes(data), (0x0008, 0x0018), ds_start)
    del data[off:off + ln]
    off, ln = _element_span(bytes(data), (0x0002, 0x0003), meta_len_pos + 4)
    del data[off:off + ln]
    data[meta_len_pos:meta_len_pos + 4] = (meta_len - ln).to_bytes(4, "little")
    out = bytes(data)
    ds = pydicom.dcmread(io.BytesIO(out))
    assert "SOPInstanceUID" not in ds and "MediaStorageSOPInstanceUID" not in ds.file_meta
    return out


def large_instance(total_bytes: int = 1_600_000, patient_id: str = PATIENT_ID_PREFIX + "BIG") -> Instance:
    """A valid single-frame 16-bit instance larger than `total_bytes`."""
    side = int((total_bytes / 2) ** 0.5) + 1
    ds = _base(
        sop_class=SECONDARY_CAPTURE,
        transfer_syntax=ExplicitVRLittleEndian,
        study_uid=new_uid(),
        series_uid=new_uid(),
        patient_name="Big^Object",
        patient_id=patient_id,
        modality="OT",
        study_date="20240101",
        study_description="Oversize synthetic",
    )
    ds.ConversionType = "WSD"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = side
    ds.Columns = side
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 65535, size=(side, side), dtype=np.uint16).astype("<u2").tobytes()
    _set_pixel_data(ds, "OW", pixels)
    inst = Instance(ds, to_part10(ds), [pixels], label="big")
    assert len(inst.data) > total_bytes
    return inst


def write_corpus(outdir: Path) -> list[Path]:
    outdir.mkdir(parents=True, exist_ok=True)
    paths = []
    for inst in corpus().all():
        p = outdir / f"{inst.label}.dcm"
        p.write_bytes(inst.data)
        paths.append(p)
    return paths



# ---------------------------------------------------------------------------
# Reports: an SR with text findings, a PDF with text
# ---------------------------------------------------------------------------


def comprehensive_sr(of: Instance, texts: list[str]) -> Instance:
    """A Comprehensive SR in the study of `of`: a report container with TEXT findings."""
    ds = _base(sop_class="1.2.840.10008.5.1.4.1.1.88.33", transfer_syntax="1.2.840.10008.1.2.1",
               study_uid=of.study_uid, series_uid=new_uid(), patient_name=str(of.ds.PatientName),
               patient_id=str(of.ds.PatientID), modality="SR", study_date=str(of.ds.StudyDate),
               series_description="Report", series_number=90)
    ds.ValueType = "CONTAINER"
    ds.ContinuityOfContent = "SEPARATE"
    ds.ConceptNameCodeSequence = [_code("18748-4", "LN", "Diagnostic Imaging Report")]
    ds.CompletionFlag = "COMPLETE"
    ds.VerificationFlag = "UNVERIFIED"
    content = []
    for text in texts:
        item = Dataset()
        item.RelationshipType = "CONTAINS"
        item.ValueType = "TEXT"
        item.ConceptNameCodeSequence = [_code("121071", "DCM", "Finding")]
        item.TextValue = text
        content.append(item)
    ds.ContentSequence = content
    return Instance(ds, to_part10(ds), [], label="sr")


def text_pdf(lines: list[str]) -> bytes:
    """A one-page PDF showing `lines` in Helvetica (WinAnsiEncoding); no lines: a scan."""
    def esc(t: str) -> bytes:
        return t.encode("cp1252").replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")
    content = b"BT /F1 12 Tf " + b" ".join(b"1 0 0 1 72 %d Tm (" % (700 - 20 * i) + esc(line) + b") Tj" for i, line in enumerate(lines)) + b" ET"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for n, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python dicomgen.py OUTDIR")
    for p in write_corpus(Path(sys.argv[1])):
        print(p)
