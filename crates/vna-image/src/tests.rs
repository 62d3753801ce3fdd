use super::*;
use dicom_pixeldata::image::{self, GenericImageView};
use serde_json::json;

fn info_json(rows: u16, cols: u16, bits: u16, photometric: &str, extra: serde_json::Value) -> serde_json::Value {
    let mut j = json!({
        "00280010": {"vr": "US", "Value": [rows]},
        "00280011": {"vr": "US", "Value": [cols]},
        "00280002": {"vr": "US", "Value": [if photometric == "RGB" { 3 } else { 1 }]},
        "00280100": {"vr": "US", "Value": [bits]},
        "00280101": {"vr": "US", "Value": [bits]},
        "00280102": {"vr": "US", "Value": [bits - 1]},
        "00280103": {"vr": "US", "Value": [0]},
        "00280004": {"vr": "CS", "Value": [photometric]},
    });
    if let (Some(o), Some(e)) = (j.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    j
}

fn png_pixels(png: &[u8]) -> image::DynamicImage {
    image::load_from_memory_with_format(png, image::ImageFormat::Png).expect("a PNG")
}

#[test]
fn native_16bit_is_windowed_from_the_data_set() {
    // 4x2, values 0..=700 step 100; window 400/400 maps 200 -> 0 and 600 -> 255 (linear).
    let j = info_json(
        2,
        4,
        16,
        "MONOCHROME2",
        json!({
            "00281050": {"vr": "DS", "Value": [400]},
            "00281051": {"vr": "DS", "Value": [400]},
        }),
    );
    let info = ImageInfo::from_dicom_json(&j, vna_dicom::ts::EXPLICIT_VR_LITTLE_ENDIAN, 0).expect("info");
    assert_eq!(info.window.map(|w| (w.center, w.width)), Some((400.0, 400.0)));
    let frame: Vec<u8> = (0u16..8).flat_map(|i| (i * 100).to_le_bytes()).collect();
    let decoded = decode(&info, frame.clone()).expect("decoded");
    assert_eq!(decoded.native_bytes(), &frame[..], "native bytes pass through");
    let png = render(&decoded, &info, &RenderOptions { format: Format::Png, ..Default::default() }).expect("png");
    let img = png_pixels(&png).to_luma8();
    assert_eq!(img.dimensions(), (4, 2));
    let px: Vec<u8> = img.pixels().map(|p| p.0[0]).collect();
    // PS3.3 §C.11.2.1.2.1: y = ((x - (c - 0.5)) / (w - 1) + 0.5) * 255, clamped.
    assert_eq!(px, vec![0, 0, 0, 64, 128, 192, 255, 255]);
}

#[test]
fn a_requested_window_overrides_and_monochrome1_is_inverted() {
    let j = info_json(1, 2, 8, "MONOCHROME1", json!({}));
    let info = ImageInfo::from_dicom_json(&j, vna_dicom::ts::EXPLICIT_VR_LITTLE_ENDIAN, 0).expect("info");
    let decoded = decode(&info, vec![0, 255]).expect("decoded");
    let w = Window { center: 127.5, width: 256.0, function: WindowFunction::Linear };
    let png = render(&decoded, &info, &RenderOptions { format: Format::Png, window: Some(w), ..Default::default() }).expect("png");
    let px: Vec<u8> = png_pixels(&png).to_luma8().pixels().map(|p| p.0[0]).collect();
    assert_eq!(px, vec![255, 0], "MONOCHROME1: 0 is white");
}

/// RLE Lossless (PS3.5 Annex G): one segment per byte of a sample.
fn rle_frame(pixels: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 64];
    f[0..4].copy_from_slice(&1u32.to_le_bytes());
    f[4..8].copy_from_slice(&64u32.to_le_bytes());
    for chunk in pixels.chunks(128) {
        f.push((chunk.len() - 1) as u8); // a literal run
        f.extend_from_slice(chunk);
    }
    if f.len() % 2 == 1 {
        f.push(0);
    }
    f
}

#[test]
fn rle_decodes_to_the_same_pixels() {
    let pixels: Vec<u8> = (0..=255u8).chain(0..=43).collect(); // 300 = 20x15
    let j = info_json(15, 20, 8, "MONOCHROME2", json!({}));
    let info = ImageInfo::from_dicom_json(&j, "1.2.840.10008.1.2.5", 0).expect("info");
    assert!(can_decode("1.2.840.10008.1.2.5"));
    let decoded = decode(&info, rle_frame(&pixels)).expect("decoded");
    assert_eq!(decoded.native_bytes(), &pixels[..]);
}

#[test]
fn jpeg_baseline_decodes_renders_and_scales_to_the_viewport() {
    let src = image::RgbImage::from_fn(64, 32, |x, y| image::Rgb([(x * 4) as u8, (y * 8) as u8, 128]));
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 95).encode_image(&src).expect("jpeg");
    let j = info_json(32, 64, 8, "YBR_FULL_422", json!({"00280002": {"vr": "US", "Value": [3]}}));
    let info = ImageInfo::from_dicom_json(&j, vna_dicom::ts::JPEG_BASELINE, 0).expect("info");
    let decoded = decode(&info, jpeg).expect("decoded");
    assert_eq!((decoded.columns(), decoded.rows()), (64, 32));
    assert_eq!(decoded.photometric_interpretation(), "RGB", "the decoder converts to RGB");
    let vp = Viewport { width: 16, height: 16, source: None };
    let out = render(&decoded, &info, &RenderOptions { viewport: Some(vp), ..Default::default() }).expect("jpeg");
    let img = image::load_from_memory_with_format(&out, image::ImageFormat::Jpeg).expect("a JPEG");
    assert_eq!(img.dimensions(), (16, 8), "fit in 16x16, aspect kept");
    let p = img.to_rgb8().get_pixel(15, 7).0;
    assert!(p[0] > 200 && p[1] > 180 && (100..160).contains(&p[2]), "bottom-right keeps its colour: {p:?}");
}

#[test]
fn a_source_region_crops_and_flips() {
    let j = info_json(1, 4, 8, "MONOCHROME2", json!({}));
    let info = ImageInfo::from_dicom_json(&j, vna_dicom::ts::EXPLICIT_VR_LITTLE_ENDIAN, 0).expect("info");
    let decoded = decode(&info, vec![0, 85, 170, 255]).expect("decoded");
    let vp = Viewport { width: 2, height: 1, source: Some((1, 0, -2, 1)) };
    let w = Window { center: 127.5, width: 256.0, function: WindowFunction::LinearExact };
    let png = render(&decoded, &info, &RenderOptions { format: Format::Png, viewport: Some(vp), window: Some(w), ..Default::default() })
        .expect("png");
    let px: Vec<u8> = png_pixels(&png).to_luma8().pixels().map(|p| p.0[0]).collect();
    assert_eq!(px.len(), 2);
    assert!(px[0] > px[1], "flipped: {px:?}");
}

#[test]
fn unsupported_and_inconsistent_input_is_an_error() {
    let j = info_json(2, 2, 8, "MONOCHROME2", json!({}));
    let jls = ImageInfo::from_dicom_json(&j, "1.2.840.10008.1.2.4.80", 0).expect("info");
    assert!(matches!(decode(&jls, vec![0; 4]), Err(ImageError::Unsupported(_))));
    let native = ImageInfo::from_dicom_json(&j, vna_dicom::ts::EXPLICIT_VR_LITTLE_ENDIAN, 0).expect("info");
    assert!(matches!(decode(&native, vec![0; 3]), Err(ImageError::Inconsistent(_))), "short frame");
    let jpeg = ImageInfo::from_dicom_json(&j, vna_dicom::ts::JPEG_BASELINE, 0).expect("info");
    assert!(matches!(decode(&jpeg, vec![0xFF, 0xD8, 1, 2]), Err(ImageError::Decode(_))), "corrupt JPEG");
    assert!(ImageInfo::from_dicom_json(&json!({}), vna_dicom::ts::JPEG_BASELINE, 0).is_err(), "no rows");
}

#[test]
fn functional_groups_override_the_top_level() {
    let j = info_json(
        1,
        1,
        16,
        "MONOCHROME2",
        json!({
            "00281052": {"vr": "DS", "Value": [0]},
            "00281053": {"vr": "DS", "Value": [1]},
            "52009229": {"vr": "SQ", "Value": [{
                "00289145": {"vr": "SQ", "Value": [{"00281052": {"vr": "DS", "Value": [-1024]}, "00281053": {"vr": "DS", "Value": [1]}}]}
            }]},
            "52009230": {"vr": "SQ", "Value": [
                {"00289132": {"vr": "SQ", "Value": [{"00281050": {"vr": "DS", "Value": [40]}, "00281051": {"vr": "DS", "Value": [400]}}]}},
                {"00289132": {"vr": "SQ", "Value": [{"00281050": {"vr": "DS", "Value": [300]}, "00281051": {"vr": "DS", "Value": [1500]}, "00281056": {"vr": "CS", "Value": ["SIGMOID"]}}]}}
            ]},
        }),
    );
    let f0 = ImageInfo::from_dicom_json(&j, vna_dicom::ts::EXPLICIT_VR_LITTLE_ENDIAN, 0).expect("info");
    let f1 = ImageInfo::from_dicom_json(&j, vna_dicom::ts::EXPLICIT_VR_LITTLE_ENDIAN, 1).expect("info");
    assert_eq!(f0.rescale.map(|r| r.intercept), Some(-1024.0));
    assert_eq!(f0.window.map(|w| w.center), Some(40.0));
    assert_eq!(f1.window.map(|w| (w.center, w.function)), Some((300.0, WindowFunction::Sigmoid)));
}

#[test]
fn a_poster_has_the_video_aspect_ratio() {
    let out = poster(1080, 1920, 128, &RenderOptions { format: Format::Png, ..Default::default() }).expect("png");
    assert_eq!(png_pixels(&out).dimensions(), (128, 72));
}

#[test]
fn an_8bit_identity_window_and_no_window_keep_every_level() {
    let j = info_json(1, 256, 8, "MONOCHROME2", json!({}));
    let info = ImageInfo::from_dicom_json(&j, vna_dicom::ts::EXPLICIT_VR_LITTLE_ENDIAN, 0).expect("info");
    let all: Vec<u8> = (0..=255).collect();
    let decoded = decode(&info, all.clone()).expect("decoded");
    let identity = Window { center: 128.0, width: 256.0, function: WindowFunction::Linear };
    for window in [Some(identity), None] {
        let png = render(&decoded, &info, &RenderOptions { format: Format::Png, window, ..Default::default() }).expect("png");
        let px: Vec<u8> = png_pixels(&png).to_luma8().pixels().map(|p| p.0[0]).collect();
        assert_eq!(px, all, "window {window:?}");
    }
}

#[test]
fn thumbnails_do_not_enlarge_small_images() {
    let j = info_json(48, 64, 8, "MONOCHROME2", json!({}));
    let info = ImageInfo::from_dicom_json(&j, vna_dicom::ts::EXPLICIT_VR_LITTLE_ENDIAN, 0).expect("info");
    let decoded = decode(&info, vec![7; 64 * 48]).expect("decoded");
    let vp = Some(Viewport { width: 256, height: 256, source: None });
    let shrink = render(&decoded, &info, &RenderOptions { format: Format::Png, viewport: vp, shrink_only: true, ..Default::default() })
        .expect("png");
    assert_eq!(png_pixels(&shrink).dimensions(), (64, 48));
    let fit = render(&decoded, &info, &RenderOptions { format: Format::Png, viewport: vp, ..Default::default() }).expect("png");
    assert_eq!(png_pixels(&fit).dimensions(), (256, 192), "a requested viewport is filled");
}

#[test]
fn native_8bit_frames_encode_as_baseline_jpeg() {
    let j = info_json(8, 16, 8, "RGB", json!({"00280006": {"vr": "US", "Value": [1]}}));
    let info = ImageInfo::from_dicom_json(&j, vna_dicom::ts::EXPLICIT_VR_LITTLE_ENDIAN, 0).expect("info");
    // Planar: a red plane, an empty green plane, a full blue plane.
    let frame: Vec<u8> = [vec![200u8; 128], vec![0; 128], vec![255; 128]].concat();
    let jpeg = jpeg_baseline_frame(&info, &frame, 95).expect("jpeg");
    assert_eq!(&jpeg[..2], &[0xFF, 0xD8]);
    let img = image::load_from_memory_with_format(&jpeg, image::ImageFormat::Jpeg).expect("decodes").to_rgb8();
    let p = img.get_pixel(3, 3).0;
    assert!(p[0] > 180 && p[1] < 30 && p[2] > 230, "{p:?}");
    let j16 = info_json(8, 16, 16, "MONOCHROME2", json!({}));
    let info16 = ImageInfo::from_dicom_json(&j16, vna_dicom::ts::EXPLICIT_VR_LITTLE_ENDIAN, 0).expect("info");
    assert!(matches!(jpeg_baseline_frame(&info16, &[0; 256], 90), Err(ImageError::Unsupported(_))));
}
