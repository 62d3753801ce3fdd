//! Pixel data of one frame, for the rendered, thumbnail and transcoding resources of WADO-RS
//! (PS3.18 §8.3.5, §10.4.1.1.3–5). No I/O: the caller reads the frame's bytes (one ranged read
//! at the offsets recorded at ingest) and hands them over with the image's description.
//!
//! - [`ImageInfo`]: the Image Pixel module (PS3.3 §C.7.6.3) and the presentation attributes of
//!   an instance, read from its DICOM JSON (top level, then shared and per-frame functional
//!   groups of enhanced multi-frame objects).
//! - [`decode`]: one frame to native pixels through dicom-pixeldata, whose codecs are pure Rust:
//!   native, RLE, JPEG baseline/extended/lossless (jpeg-decoder) and JPEG 2000 (openjp2).
//! - [`render()`]: windowing (PS3.3 §C.11.2.1.2, or the `window` of the request), viewport
//!   scaling, then JPEG or PNG.
//! - [`poster`]: the representative image of a video, whose stream we do not decode.
//!
//! Decoding is CPU-bound; the caller runs it off the async runtime on a bounded pool.
//!
//! # How it is built
//!
//! Pixel data of one frame, no I/O: `ImageDescription` (from the instance's DICOM JSON: the Image
//! Pixel module, rescale and window, with shared and per-frame functional groups of enhanced
//! objects; compact, cached per instance version by the archive), `decode` (dicom-pixeldata on a
//! one-frame in-memory data set built from the description and the frame's bytes: native, RLE,
//! JPEG baseline/lossless via jpeg-decoder, JPEG 2000 via openjp2 — all pure Rust; JPEG-LS,
//! HTJ2K, 12-bit JPEG Extended and deflate are `Unsupported`), `render` (the VOI functions of
//! PS3.3 §C.11.2.1.2 computed and rounded here, not dicom-pixeldata's LUTs, so that identity
//! windows are exact; MONOCHROME1 inverted; no window: 8-bit data as stored, deeper data min-max;
//! viewport with source region and flips; PNG through `image`, JPEG through jpeg-encoder, whose
//! run-time-detected AVX2 path is its own `unsafe`, not ours) and `poster` (the
//! generated representative image of a video: we do not decode MPEG/H.264/HEVC).

mod info;
mod render;

pub use info::{ImageDescription, ImageInfo, Rescale};
pub use render::{jpeg_baseline_frame, poster, render, Format, RenderOptions, Viewport, Window, WindowFunction};

use dicom_core::value::PixelFragmentSequence;
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_encoding::transfer_syntax::TransferSyntaxIndex;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use dicom_pixeldata::{DecodedPixelData, PixelDecoder};
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The instance has no image this crate can describe (no pixel data, no rows/columns…).
    #[error("not an image: {0}")]
    NotAnImage(&'static str),
    /// The stored encoding has no decoder here (e.g. JPEG-LS, HTJ2K, video).
    #[error("transfer syntax {0} cannot be decoded by this archive")]
    Unsupported(String),
    /// The codec refused the frame's bytes (corrupt, or inconsistent with the attributes); the
    /// codec's own error is the source, for the log.
    #[error("the frame could not be decoded")]
    Decode(#[source] dicom_pixeldata::Error),
    /// The frame's size or the one-frame data set did not fit the attributes.
    #[error("the frame does not fit its attributes: {0}")]
    Inconsistent(&'static str),
    /// The rendering parameters do not fit this image (e.g. a source region outside it).
    #[error("{0}")]
    InvalidRequest(&'static str),
    #[error("the image could not be encoded")]
    Encode(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// True when [`decode`] can decode frames of this many bits allocated stored in this
/// transfer syntax. JPEG Extended with 12-bit samples has no pure-Rust decoder here
/// (jpeg-decoder reads 8-bit DCT and lossless only).
pub fn can_decode_bits(transfer_syntax: &str, bits_allocated: u16) -> bool {
    can_decode(transfer_syntax) && !(transfer_syntax == JPEG_EXTENDED && bits_allocated > 8)
}

const JPEG_EXTENDED: &str = "1.2.840.10008.1.2.4.51";

/// True when [`decode`] can decode frames stored in this transfer syntax (at some bit depth;
/// see [`can_decode_bits`]).
pub fn can_decode(transfer_syntax: &str) -> bool {
    if vna_dicom::ts::is_native(transfer_syntax) {
        return transfer_syntax != vna_dicom::ts::DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN;
    }
    TransferSyntaxRegistry.get(transfer_syntax).is_some_and(|ts| ts.can_decode_all())
}

/// One decoded frame: native samples, little endian, with the photometric interpretation and
/// planar configuration they now have (a JPEG decoder yields RGB from YBR, for instance).
pub struct Decoded {
    pixels: DecodedPixelData<'static>,
}

impl Decoded {
    pub fn rows(&self) -> u32 {
        self.pixels.rows()
    }
    pub fn columns(&self) -> u32 {
        self.pixels.columns()
    }
    /// The samples as explicit VR little endian pixel data (PS3.5 §8.1.1), for transcoding.
    pub fn native_bytes(&self) -> &[u8] {
        self.pixels.data()
    }
    pub fn into_native_bytes(self) -> Vec<u8> {
        self.pixels.into_data()
    }
    pub fn photometric_interpretation(&self) -> &str {
        self.pixels.photometric_interpretation().as_str()
    }
    pub fn planar_configuration(&self) -> u16 {
        match self.pixels.planar_configuration() {
            dicom_pixeldata::PlanarConfiguration::Standard => 0,
            dicom_pixeldata::PlanarConfiguration::PixelFirst => 1,
        }
    }
    pub fn bits_allocated(&self) -> u16 {
        self.pixels.bits_allocated()
    }
    pub(crate) fn pixels(&self) -> &DecodedPixelData<'static> {
        &self.pixels
    }
}

/// Decodes one frame. `frame` holds the frame's bytes as stored: for native syntaxes exactly
/// one frame of samples, for encapsulated ones the frame's fragments concatenated (one
/// codestream). The frame is wrapped in a one-frame data set with the instance's image
/// attributes so that dicom-pixeldata applies its codecs and photometric rules unchanged.
pub fn decode(info: &ImageInfo, frame: Vec<u8>) -> Result<Decoded, ImageError> {
    let ts = info.transfer_syntax.as_str();
    if !can_decode_bits(ts, info.bits_allocated) {
        return Err(ImageError::Unsupported(if ts == JPEG_EXTENDED { format!("{ts} with more than 8 bits") } else { ts.to_owned() }));
    }
    let mut obj = InMemDicomObject::new_empty();
    let us = |v: u16| PrimitiveValue::from(v);
    obj.put(DataElement::new(tags::ROWS, VR::US, us(info.rows)));
    obj.put(DataElement::new(tags::COLUMNS, VR::US, us(info.columns)));
    obj.put(DataElement::new(tags::SAMPLES_PER_PIXEL, VR::US, us(info.samples_per_pixel)));
    obj.put(DataElement::new(tags::BITS_ALLOCATED, VR::US, us(info.bits_allocated)));
    obj.put(DataElement::new(tags::BITS_STORED, VR::US, us(info.bits_stored)));
    obj.put(DataElement::new(tags::HIGH_BIT, VR::US, us(info.high_bit)));
    obj.put(DataElement::new(tags::PIXEL_REPRESENTATION, VR::US, us(info.pixel_representation)));
    obj.put(DataElement::new(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, PrimitiveValue::from(info.photometric.as_str())));
    if info.samples_per_pixel > 1 {
        obj.put(DataElement::new(tags::PLANAR_CONFIGURATION, VR::US, us(info.planar_configuration)));
    }
    obj.put(DataElement::new(tags::NUMBER_OF_FRAMES, VR::IS, PrimitiveValue::from("1")));
    if let Some(r) = info.rescale {
        obj.put(DataElement::new(tags::RESCALE_INTERCEPT, VR::DS, PrimitiveValue::from(r.intercept.to_string())));
        obj.put(DataElement::new(tags::RESCALE_SLOPE, VR::DS, PrimitiveValue::from(r.slope.to_string())));
    }
    if vna_dicom::ts::is_native(ts) {
        let expected = info.frame_bytes();
        if (frame.len() as u64) < expected {
            return Err(ImageError::Inconsistent("the native frame is shorter than rows × columns × samples × bits"));
        }
        let vr = if info.bits_allocated > 8 { VR::OW } else { VR::OB };
        obj.put(DataElement::new(tags::PIXEL_DATA, vr, PrimitiveValue::U8(frame.into())));
    } else {
        let seq = PixelFragmentSequence::new(Vec::<u32>::new(), vec![frame]);
        obj.put(DataElement::new(tags::PIXEL_DATA, VR::OB, seq));
    }
    let meta = FileMetaTableBuilder::new()
        .transfer_syntax(ts)
        .media_storage_sop_class_uid("1.2.840.10008.5.1.4.1.1.7")
        .media_storage_sop_instance_uid("2.25.0");
    let file = obj.with_meta(meta).map_err(|_| ImageError::Inconsistent("the one-frame data set could not be made"))?;
    let pixels = file.decode_pixel_data_frame(0).map_err(ImageError::Decode)?;
    Ok(Decoded { pixels: pixels.to_owned() })
}

#[cfg(test)]
mod tests;
