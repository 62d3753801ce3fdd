//! The description of an image, read from the instance's DICOM JSON (PS3.18 Annex F).

use crate::render::{Window, WindowFunction};
use crate::ImageError;
use serde_json::Value;

/// Modality LUT as a linear function (PS3.3 §C.11.1.1.2).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rescale {
    pub slope: f64,
    pub intercept: f64,
}

/// What decoding and rendering one frame need to know about an instance.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageInfo {
    pub transfer_syntax: String,
    pub rows: u16,
    pub columns: u16,
    pub samples_per_pixel: u16,
    pub bits_allocated: u16,
    pub bits_stored: u16,
    pub high_bit: u16,
    pub pixel_representation: u16,
    pub photometric: String,
    pub planar_configuration: u16,
    pub number_of_frames: u32,
    pub rescale: Option<Rescale>,
    /// The first window of the data set (or of the frame's functional groups), if any.
    pub window: Option<Window>,
}

const ROWS: &str = "00280010";
const COLUMNS: &str = "00280011";
const SAMPLES_PER_PIXEL: &str = "00280002";
const BITS_ALLOCATED: &str = "00280100";
const BITS_STORED: &str = "00280101";
const HIGH_BIT: &str = "00280102";
const PIXEL_REPRESENTATION: &str = "00280103";
const PHOTOMETRIC: &str = "00280004";
const PLANAR_CONFIGURATION: &str = "00280006";
const NUMBER_OF_FRAMES: &str = "00280008";
const RESCALE_INTERCEPT: &str = "00281052";
const RESCALE_SLOPE: &str = "00281053";
const WINDOW_CENTER: &str = "00281050";
const WINDOW_WIDTH: &str = "00281051";
const VOI_LUT_FUNCTION: &str = "00281056";
const SHARED_FUNCTIONAL_GROUPS: &str = "52009229";
const PER_FRAME_FUNCTIONAL_GROUPS: &str = "52009230";
const PIXEL_VALUE_TRANSFORMATION: &str = "00289145";
const FRAME_VOI_LUT: &str = "00289132";

/// The description of every frame of an instance: the common attributes, and the
/// presentation attributes per frame where an enhanced multi-frame object's per-frame
/// functional groups give them. Compact, so that it can be cached per instance version.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageDescription {
    base: ImageInfo,
    per_frame: Vec<(Option<Rescale>, Option<Window>)>,
}

impl ImageDescription {
    /// Reads the description from one instance's DICOM JSON object. A frame's per-frame
    /// functional group overrides the shared one, which overrides the top level (PS3.3
    /// §C.7.6.16).
    pub fn from_dicom_json(json: &Value, transfer_syntax: &str) -> Result<Self, ImageError> {
        let int = |tag: &str| first(json, tag).and_then(Value::as_f64).map(|v| v as i64);
        let rows = int(ROWS).ok_or(ImageError::NotAnImage("no Rows"))?;
        let columns = int(COLUMNS).ok_or(ImageError::NotAnImage("no Columns"))?;
        let bits_allocated = int(BITS_ALLOCATED).unwrap_or(8);
        let u16_of = |v: i64, what: &'static str| u16::try_from(v).map_err(|_| ImageError::NotAnImage(what));
        let bits_allocated = u16_of(bits_allocated, "Bits Allocated out of range")?;
        let bits_stored = u16_of(int(BITS_STORED).unwrap_or(bits_allocated as i64), "Bits Stored out of range")?;
        let mut base = ImageInfo {
            transfer_syntax: transfer_syntax.to_owned(),
            rows: u16_of(rows, "Rows out of range")?,
            columns: u16_of(columns, "Columns out of range")?,
            samples_per_pixel: u16_of(int(SAMPLES_PER_PIXEL).unwrap_or(1), "Samples per Pixel out of range")?,
            bits_allocated,
            bits_stored,
            high_bit: u16_of(int(HIGH_BIT).unwrap_or(bits_stored as i64 - 1), "High Bit out of range")?,
            pixel_representation: u16_of(int(PIXEL_REPRESENTATION).unwrap_or(0), "Pixel Representation out of range")?,
            photometric: first(json, PHOTOMETRIC).and_then(Value::as_str).unwrap_or("MONOCHROME2").trim().to_owned(),
            planar_configuration: u16_of(int(PLANAR_CONFIGURATION).unwrap_or(0), "Planar Configuration out of range")?,
            number_of_frames: first(json, NUMBER_OF_FRAMES).and_then(number).map(|v| v as u32).filter(|n| *n > 0).unwrap_or(1),
            rescale: rescale_in(json),
            window: window_in(json),
        };
        if base.rows == 0 || base.columns == 0 || base.samples_per_pixel == 0 || base.bits_allocated == 0 {
            return Err(ImageError::NotAnImage("an image dimension is zero"));
        }
        if let Some(shared) = item(json, SHARED_FUNCTIONAL_GROUPS, 0) {
            let (r, w) = presentation_in(shared);
            base.rescale = r.or(base.rescale);
            base.window = w.or(base.window);
        }
        let mut per_frame = Vec::new();
        if let Some(items) = json.get(PER_FRAME_FUNCTIONAL_GROUPS).and_then(|s| s.get("Value")).and_then(Value::as_array) {
            let all: Vec<_> = items.iter().map(presentation_in).collect();
            if all.iter().any(|(r, w)| r.is_some() || w.is_some()) {
                per_frame = all;
            }
        }
        Ok(ImageDescription { base, per_frame })
    }

    /// The description of frame `index` (0-based).
    pub fn frame(&self, index: u32) -> ImageInfo {
        let mut info = self.base.clone();
        if let Some((r, w)) = self.per_frame.get(index as usize) {
            info.rescale = r.or(info.rescale);
            info.window = w.or(info.window);
        }
        info
    }

    pub fn base(&self) -> &ImageInfo {
        &self.base
    }
}

fn presentation_in(group: &Value) -> (Option<Rescale>, Option<Window>) {
    (item(group, PIXEL_VALUE_TRANSFORMATION, 0).and_then(rescale_in), item(group, FRAME_VOI_LUT, 0).and_then(window_in))
}

impl ImageInfo {
    /// The description of frame `frame` (0-based) of an instance, from its DICOM JSON.
    pub fn from_dicom_json(json: &Value, transfer_syntax: &str, frame: u32) -> Result<Self, ImageError> {
        Ok(ImageDescription::from_dicom_json(json, transfer_syntax)?.frame(frame))
    }

    /// Bytes of one native frame.
    pub fn frame_bytes(&self) -> u64 {
        let bits = self.rows as u64 * self.columns as u64 * self.samples_per_pixel as u64 * self.bits_allocated as u64;
        bits.div_ceil(8)
    }

    /// True for a monochrome image (windowing applies).
    pub fn is_monochrome(&self) -> bool {
        self.photometric.starts_with("MONOCHROME")
    }
}

/// The first value of an attribute.
fn first<'a>(json: &'a Value, tag: &str) -> Option<&'a Value> {
    json.get(tag)?.get("Value")?.get(0)
}

/// Item `index` of a sequence attribute.
fn item<'a>(json: &'a Value, tag: &str, index: usize) -> Option<&'a Value> {
    json.get(tag)?.get("Value")?.get(index)
}

/// DS values come as JSON numbers (PS3.18 §F.2.3); a non-conformant string is accepted too.
fn number(v: &Value) -> Option<f64> {
    v.as_f64().or_else(|| v.as_str().and_then(|s| s.trim().parse().ok())).filter(|f: &f64| f.is_finite())
}

fn rescale_in(json: &Value) -> Option<Rescale> {
    let slope = first(json, RESCALE_SLOPE).and_then(number);
    let intercept = first(json, RESCALE_INTERCEPT).and_then(number);
    if slope.is_none() && intercept.is_none() {
        return None;
    }
    Some(Rescale { slope: slope.unwrap_or(1.0), intercept: intercept.unwrap_or(0.0) })
}

fn window_in(json: &Value) -> Option<Window> {
    let center = first(json, WINDOW_CENTER).and_then(number)?;
    let width = first(json, WINDOW_WIDTH).and_then(number).filter(|w| *w >= 1.0)?;
    let function = match first(json, VOI_LUT_FUNCTION).and_then(Value::as_str).map(str::trim) {
        Some("SIGMOID") => WindowFunction::Sigmoid,
        Some("LINEAR_EXACT") => WindowFunction::LinearExact,
        _ => WindowFunction::Linear,
    };
    Some(Window { center, width, function })
}
