//! Rendering a decoded frame for presentation (PS3.18 §8.3.5.1): the VOI transformation, the
//! viewport, and the rendered media type.

use crate::{Decoded, ImageError, ImageInfo};
use dicom_pixeldata::image::codecs::png::PngEncoder;
use dicom_pixeldata::image::imageops::FilterType;
use dicom_pixeldata::image::{DynamicImage, ExtendedColorType, GrayImage, ImageEncoder, Rgb, RgbImage};
use dicom_pixeldata::{ConvertOptions, VoiLutOption};

/// Rendered media types we produce (PS3.18 §8.7.4, Table 8.7.4-1: image/jpeg is required,
/// image/png is optional).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Jpeg,
    Png,
}

impl Format {
    pub fn media_type(self) -> &'static str {
        match self {
            Format::Jpeg => "image/jpeg",
            Format::Png => "image/png",
        }
    }
}

/// VOI LUT function of a window (PS3.3 §C.11.2.1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowFunction {
    Linear,
    LinearExact,
    Sigmoid,
}

/// A window: center and width in modality units (after the rescale).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    pub center: f64,
    pub width: f64,
    pub function: WindowFunction,
}

/// `viewport=vw,vh[,sx,sy,sw,sh]` (PS3.18 §8.3.5.1.3): the output box, and optionally the
/// source region in image pixels (a negative width or height flips that axis).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Viewport {
    pub width: u32,
    pub height: u32,
    pub source: Option<(u32, u32, i64, i64)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RenderOptions {
    pub format: Format,
    /// 1..=100, for lossy formats (PS3.18 §8.3.5.1.2).
    pub quality: u8,
    pub viewport: Option<Viewport>,
    /// Overrides the window of the data set (PS3.18 §8.3.5.1.4).
    pub window: Option<Window>,
    /// Scale down to the viewport but never up (thumbnails of small images).
    pub shrink_only: bool,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions { format: Format::Jpeg, quality: 90, viewport: None, window: None, shrink_only: false }
    }
}

/// Renders a decoded frame. Monochrome: the modality LUT (rescale), then the requested
/// window, else the data set's, else (neither present) the stored values as they are when
/// they fit 8 bits, or a min-max normalisation; MONOCHROME1 is inverted. The VOI functions
/// are PS3.3 §C.11.2.1.2 exactly, rounded to the nearest level. Colour: the samples as
/// decoded (RGB). Then the source region, the scale to fit the viewport (aspect ratio kept),
/// and the encoding.
pub fn render(decoded: &Decoded, info: &ImageInfo, options: &RenderOptions) -> Result<Vec<u8>, ImageError> {
    let px = decoded.pixels();
    let mut img = if info.is_monochrome() {
        // Stored values (no modality LUT), then one table over their range: rescale and VOI
        // are computed once per distinct value, not once per pixel.
        let raw: Vec<i32> = px
            .to_vec_frame_with_options(0, &ConvertOptions::new().with_modality_lut(dicom_pixeldata::ModalityLutOption::None))
            .map_err(ImageError::Decode)?;
        let (lo, hi) = raw.iter().fold((i32::MAX, i32::MIN), |(l, h), &v| (l.min(v), h.max(v)));
        let (slope, intercept) = info.rescale.map_or((1.0, 0.0), |r| (r.slope, r.intercept));
        let rescaled = |v: i32| v as f64 * slope + intercept;
        let window = options.window.or(info.window);
        let levels: Vec<u8> = if raw.is_empty() || i64::from(hi) - i64::from(lo) > 1 << 20 {
            // 32-bit samples over a wide range: per pixel.
            voi(&raw.iter().map(|&v| rescaled(v)).collect::<Vec<_>>(), window, info)
        } else {
            let table = voi(&(lo..=hi).map(rescaled).collect::<Vec<_>>(), window, info);
            raw.iter().map(|&v| table[(v - lo) as usize]).collect()
        };
        let levels = if info.photometric == "MONOCHROME1" { levels.into_iter().map(|v| 255 - v).collect() } else { levels };
        let gray = GrayImage::from_raw(px.columns(), px.rows(), levels)
            .ok_or(ImageError::Inconsistent("the decoded frame's size differs from its attributes"))?;
        DynamicImage::ImageLuma8(gray)
    } else {
        let convert = ConvertOptions::new().with_voi_lut(VoiLutOption::Identity).force_8bit();
        px.to_dynamic_image_with_options(0, &convert).map_err(ImageError::Decode)?
    };
    if let Some(vp) = options.viewport {
        img = apply_viewport(img, vp, options.shrink_only)?;
    }
    encode(img, options)
}

/// The VOI LUT of a monochrome frame to 8-bit levels.
fn voi(values: &[f64], window: Option<Window>, info: &ImageInfo) -> Vec<u8> {
    const Y_MAX: f64 = 255.0;
    let level = |y: f64| y.round().clamp(0.0, Y_MAX) as u8;
    match window {
        Some(Window { center: c, width: w, function: WindowFunction::Linear }) => {
            // §C.11.2.1.2.1: y = ((x - (c - 0.5)) / (w - 1) + 0.5) * (ymax - ymin) + ymin.
            let w1 = (w - 1.0).max(f64::MIN_POSITIVE);
            values.iter().map(|&x| level(((x - (c - 0.5)) / w1 + 0.5) * Y_MAX)).collect()
        }
        Some(Window { center: c, width: w, function: WindowFunction::LinearExact }) => {
            // §C.11.2.1.3.2: y = (x - c) / w + 0.5, scaled.
            values.iter().map(|&x| level(((x - c) / w + 0.5) * Y_MAX)).collect()
        }
        Some(Window { center: c, width: w, function: WindowFunction::Sigmoid }) => {
            // §C.11.2.1.3.1: y = ymax / (1 + exp(-4 (x - c) / w)).
            values.iter().map(|&x| level(Y_MAX / (1.0 + (-4.0 * (x - c) / w).exp()))).collect()
        }
        None if info.bits_stored <= 8
            && info.pixel_representation == 0
            && info.rescale.is_none_or(|r| r.slope == 1.0 && r.intercept == 0.0) =>
        {
            values.iter().map(|&x| level(x)).collect()
        }
        None => {
            let (min, max) = values.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| (lo.min(x), hi.max(x)));
            if max.partial_cmp(&min) != Some(std::cmp::Ordering::Greater) {
                return vec![0; values.len()];
            }
            values.iter().map(|&x| level((x - min) / (max - min) * Y_MAX)).collect()
        }
    }
}

fn apply_viewport(mut img: DynamicImage, vp: Viewport, shrink_only: bool) -> Result<DynamicImage, ImageError> {
    if let Some((sx, sy, sw, sh)) = vp.source {
        let (w, h) = (img.width(), img.height());
        let (cw, ch) = (sw.unsigned_abs().min(u32::MAX as u64) as u32, sh.unsigned_abs().min(u32::MAX as u64) as u32);
        if sx >= w || sy >= h || cw == 0 || ch == 0 {
            return Err(ImageError::InvalidRequest("the viewport's source region lies outside the image"));
        }
        img = img.crop_imm(sx, sy, cw.min(w - sx), ch.min(h - sy));
        if sw < 0 {
            img = img.fliph();
        }
        if sh < 0 {
            img = img.flipv();
        }
    }
    if vp.width == 0 || vp.height == 0 {
        return Err(ImageError::InvalidRequest("the viewport has a zero dimension"));
    }
    let fits = img.width() <= vp.width && img.height() <= vp.height;
    if (vp.width != img.width() || vp.height != img.height()) && !(shrink_only && fits) {
        img = img.resize(vp.width, vp.height, FilterType::Triangle);
    }
    Ok(img)
}

fn encode(img: DynamicImage, options: &RenderOptions) -> Result<Vec<u8>, ImageError> {
    let mut out = Vec::new();
    let enc = |e: dicom_pixeldata::image::ImageError| ImageError::Encode(Box::new(e));
    let (bytes, w, h, color) = match img {
        DynamicImage::ImageLuma8(g) => {
            let (w, h) = g.dimensions();
            (g.into_raw(), w, h, ExtendedColorType::L8)
        }
        other => {
            let rgb = other.into_rgb8();
            let (w, h) = rgb.dimensions();
            (rgb.into_raw(), w, h, ExtendedColorType::Rgb8)
        }
    };
    match options.format {
        Format::Jpeg => jpeg(&mut out, &bytes, w, h, color, options.quality)?,
        Format::Png => PngEncoder::new(&mut out).write_image(&bytes, w, h, color).map_err(enc)?,
    }
    Ok(out)
}

/// A native 8-bit frame (MONOCHROME2 or RGB) encoded as JPEG Baseline (Process 1), the
/// stored samples unchanged by any window: for a viewer that asks WADO-RS `/frames` of an
/// uncompressed slide as image/jpeg (PS3.18 §8.7.3.5.2, transfer syntax .4.50). Lossy, as that
/// request says.
pub fn jpeg_baseline_frame(info: &ImageInfo, frame: &[u8], quality: u8) -> Result<Vec<u8>, ImageError> {
    let (w, h) = (info.columns as u32, info.rows as u32);
    let n = (w * h) as usize;
    let (color, samples) = match (info.photometric.as_str(), info.samples_per_pixel, info.bits_allocated) {
        ("MONOCHROME2", 1, 8) => (ExtendedColorType::L8, 1),
        ("RGB", 3, 8) => (ExtendedColorType::Rgb8, 3),
        _ => {
            return Err(ImageError::Unsupported(format!(
                "JPEG baseline frames need 8-bit MONOCHROME2 or RGB samples (this image: {}, {} bits)",
                info.photometric, info.bits_allocated
            )))
        }
    };
    let pixels = frame.get(..n * samples).ok_or(ImageError::Inconsistent("the native frame is shorter than rows × columns × samples"))?;
    // Planar configuration 1 (R plane, G plane, B plane) interleaved for the encoder.
    let interleaved: Vec<u8> = if samples == 3 && info.planar_configuration == 1 {
        (0..n).flat_map(|i| [pixels[i], pixels[n + i], pixels[2 * n + i]]).collect()
    } else {
        pixels.to_vec()
    };
    let mut out = Vec::new();
    jpeg(&mut out, &interleaved, w, h, color, quality)?;
    Ok(out)
}

/// JPEG Baseline (Process 1, 4:2:0 for colour) with jpeg-encoder.
fn jpeg(out: &mut Vec<u8>, samples: &[u8], w: u32, h: u32, color: ExtendedColorType, quality: u8) -> Result<(), ImageError> {
    let (Ok(w), Ok(h)) = (u16::try_from(w), u16::try_from(h)) else {
        return Err(ImageError::InvalidRequest("a JPEG is at most 65535 pixels wide and high"));
    };
    let color = match color {
        ExtendedColorType::L8 => jpeg_encoder::ColorType::Luma,
        _ => jpeg_encoder::ColorType::Rgb,
    };
    jpeg_encoder::Encoder::new(out, quality.clamp(1, 100)).encode(samples, w, h, color).map_err(|e| ImageError::Encode(Box::new(e)))
}

/// The representative image of a video instance: a dark frame of the video's aspect ratio
/// with a light "play" triangle, at most `max` pixels on its longer side (or the viewport).
/// The archive does not decode MPEG/H.264/HEVC, so a poster is what thumbnails show.
pub fn poster(rows: u16, columns: u16, max: u32, options: &RenderOptions) -> Result<Vec<u8>, ImageError> {
    let (rows, columns) = (rows.max(1) as f64, columns.max(1) as f64);
    let (bw, bh) = match options.viewport {
        Some(vp) if vp.width > 0 && vp.height > 0 => (vp.width, vp.height),
        _ => (max, max),
    };
    let scale = (bw as f64 / columns).min(bh as f64 / rows);
    let (w, h) = (((columns * scale).round() as u32).max(1), ((rows * scale).round() as u32).max(1));
    let mut img = RgbImage::from_pixel(w, h, Rgb([32, 32, 32]));
    // A triangle pointing right, centred, a third of the shorter side high.
    let side = (w.min(h) as f64 / 3.0).max(2.0);
    let (cx, cy) = (w as f64 / 2.0, h as f64 / 2.0);
    let (x0, x1) = (cx - side * 0.4, cx + side * 0.6);
    for y in 0..h {
        for x in 0..w {
            let (fx, fy) = (x as f64 + 0.5, y as f64 + 0.5);
            if fx >= x0 && fx <= x1 {
                let half = side / 2.0 * (1.0 - (fx - x0) / (x1 - x0));
                if (fy - cy).abs() <= half {
                    img.put_pixel(x, y, Rgb([230, 230, 230]));
                }
            }
        }
    }
    encode(DynamicImage::ImageRgb8(img), options)
}
