//! The two large synthetic objects: a whole-slide-like image of many JPEG-like tiles
//! (encapsulated) and a big native multi-frame object whose pixel bytes are generated as a
//! stream and never held in memory.

use crate::corpus::EXPLICIT_VR_LE;
use crate::prng::{uid, SplitMix64};
use bytes::Bytes;
use vna_dicom::tags;
use vna_dicom::write::{native_pixel_data_header, part10, Items};
use vna_dicom::VR;

pub const VL_WHOLE_SLIDE_MICROSCOPY: &str = "1.2.840.10008.5.1.4.1.1.77.1.6";
pub const JPEG_BASELINE: &str = "1.2.840.10008.1.2.4.50";
pub const MULTIFRAME_GRAYSCALE_WORD_SC: &str = "1.2.840.10008.5.1.4.1.1.7.3";

/// Study, series and SOP Instance UIDs of one object.
#[derive(Debug, Clone)]
pub struct ObjectUids {
    pub study: String,
    pub series: String,
    pub instance: String,
}

impl ObjectUids {
    pub fn new(seed: u64, what: &str) -> Self {
        Self { study: uid(seed, what, 0), series: uid(seed, what, 1), instance: uid(seed, what, 2) }
    }

    /// The WADO-RS path of the instance below the DICOMweb root.
    pub fn path(&self) -> String {
        format!("/studies/{}/series/{}/instances/{}", self.study, self.series, self.instance)
    }
}

/// The patient and study attributes every synthetic object of the load generator carries.
pub fn patient(ds: Items, id: &str, name: &str) -> Items {
    ds.str(tags::PATIENT_ID, VR::LO, id)
        .str(tags::PATIENT_NAME, VR::PN, name)
        .str(tags::STUDY_DATE, VR::DA, "20240312")
        .str(tags::STUDY_TIME, VR::TM, "101500")
        .str(tags::ACCESSION_NUMBER, VR::SH, "LOADTEST")
        .str(tags::STUDY_ID, VR::SH, "1")
        .str(tags::SERIES_NUMBER, VR::IS, "1")
        .str(tags::INSTANCE_NUMBER, VR::IS, "1")
}

/// JPEG-like tiles: SOI + APP0 marker start, random bytes, EOI; even lengths around
/// `mean_bytes` (±25 %) so no fragment needs padding.
pub fn slide_tiles(seed: u64, count: usize, mean_bytes: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|n| {
            let mut g = SplitMix64::derive(seed, "tile", n as u64);
            let spread = (mean_bytes / 2).max(2) as u64;
            let len = ((mean_bytes as u64 * 3 / 4 + g.below(spread)) as usize).max(8) & !1;
            let mut tile = vec![0u8; len];
            g.fill(&mut tile);
            tile[..4].copy_from_slice(&[0xFF, 0xD8, 0xFF, 0xE0]);
            tile[len - 2..].copy_from_slice(&[0xFF, 0xD9]);
            tile
        })
        .collect()
}

/// A VL Whole Slide Microscopy instance in JPEG Baseline holding `tiles` as its frames,
/// one fragment per frame with a Basic Offset Table.
pub fn slide_object(seed: u64, tiles: &[Vec<u8>]) -> (ObjectUids, Vec<u8>) {
    let uids = ObjectUids::new(seed, "slide");
    let side = (tiles.len() as f64).sqrt().ceil() as u32;
    let ds = patient(Items::new(), "LTSLIDE", "SLIDE^LOADTEST")
        .str(tags::SOP_CLASS_UID, VR::UI, VL_WHOLE_SLIDE_MICROSCOPY)
        .str(tags::SOP_INSTANCE_UID, VR::UI, &uids.instance)
        .str(tags::STUDY_INSTANCE_UID, VR::UI, &uids.study)
        .str(tags::SERIES_INSTANCE_UID, VR::UI, &uids.series)
        .str(tags::MODALITY, VR::CS, "SM")
        .str(tags::IMAGE_TYPE, VR::CS, "ORIGINAL\\PRIMARY\\VOLUME\\NONE")
        .u16(tags::SAMPLES_PER_PIXEL, 3)
        .str(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "YBR_FULL_422")
        .u16(tags::PLANAR_CONFIGURATION, 0)
        .str(tags::NUMBER_OF_FRAMES, VR::IS, &tiles.len().to_string())
        .u16(tags::ROWS, 256)
        .u16(tags::COLUMNS, 256)
        .u16(tags::BITS_ALLOCATED, 8)
        .u16(tags::BITS_STORED, 8)
        .u16(tags::HIGH_BIT, 7)
        .u16(tags::PIXEL_REPRESENTATION, 0)
        .bytes(tags::TOTAL_PIXEL_MATRIX_COLUMNS, VR::UL, (side * 256).to_le_bytes().to_vec())
        .bytes(tags::TOTAL_PIXEL_MATRIX_ROWS, VR::UL, (side * 256).to_le_bytes().to_vec())
        .encapsulated_pixels(tiles, 1, true);
    (uids, part10(&ds, JPEG_BASELINE))
}

/// Bytes of one frame of the big object (512×512, 16 bits).
pub const BIG_FRAME_BYTES: u64 = 512 * 512 * 2;

/// The big native multi-frame object: its header (Part 10 up to and including the Pixel Data
/// element header) and the number of pixel bytes that follow. `pixel_bytes` must be a
/// multiple of [`BIG_FRAME_BYTES`] below 4 GiB (a defined 32-bit length). `what` names the
/// object (its UIDs derive from it): `big` for STOW-RS, `big-cstore` for C-STORE.
pub fn big_header(seed: u64, what: &str, pixel_bytes: u64) -> (ObjectUids, Vec<u8>) {
    let uids = ObjectUids::new(seed, what);
    let frames = pixel_bytes / BIG_FRAME_BYTES;
    let ds = patient(Items::new(), "LTBIG", "BIG^LOADTEST")
        .str(tags::SOP_CLASS_UID, VR::UI, MULTIFRAME_GRAYSCALE_WORD_SC)
        .str(tags::SOP_INSTANCE_UID, VR::UI, &uids.instance)
        .str(tags::STUDY_INSTANCE_UID, VR::UI, &uids.study)
        .str(tags::SERIES_INSTANCE_UID, VR::UI, &uids.series)
        .str(tags::MODALITY, VR::CS, "OT")
        .str(tags::CONVERSION_TYPE, VR::CS, "WSD")
        .u16(tags::SAMPLES_PER_PIXEL, 1)
        .str(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2")
        .str(tags::NUMBER_OF_FRAMES, VR::IS, &frames.to_string())
        .u16(tags::ROWS, 512)
        .u16(tags::COLUMNS, 512)
        .u16(tags::BITS_ALLOCATED, 16)
        .u16(tags::BITS_STORED, 16)
        .u16(tags::HIGH_BIT, 15)
        .u16(tags::PIXEL_REPRESENTATION, 0);
    let mut out = part10(&ds, EXPLICIT_VR_LE);
    out.extend_from_slice(&native_pixel_data_header(pixel_bytes as u32));
    (uids, out)
}

/// Generates the big object's pixel bytes chunk by chunk, deterministically from the seed.
pub struct PixelStream {
    rng: SplitMix64,
    remaining: u64,
    chunk: usize,
}

impl PixelStream {
    pub fn new(seed: u64, total: u64, chunk: usize) -> Self {
        Self { rng: SplitMix64::derive(seed, "big-pixels", 0), remaining: total, chunk: chunk.max(8) }
    }

    pub fn next_chunk(&mut self) -> Option<Bytes> {
        if self.remaining == 0 {
            return None;
        }
        let n = (self.chunk as u64).min(self.remaining) as usize;
        let mut buf = vec![0u8; n];
        self.rng.fill(&mut buf);
        self.remaining -= n as u64;
        Some(Bytes::from(buf))
    }
}
