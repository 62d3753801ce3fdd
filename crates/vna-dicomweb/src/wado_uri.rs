//! WADO-URI (PS3.18 §9): `GET {root}/wado?requestType=WADO&studyUID=…&seriesUID=…&objectUID=…`,
//! the link a patient record embeds in an `<img src>`.
//!
//! - `contentType` (§9.1.2.1.5, a list in order of preference) absent: `image/jpeg` for an image
//!   the archive can render that is one frame or addressed with `frameNumber`, otherwise
//!   `application/dicom` (§9.3.2).
//! - `image/jpeg`, `image/png` (and `*/*` or `image/*` for an image): the frame rendered with
//!   `rows`/`columns` (the size to fit, aspect kept), `region` (`x1,y1,x2,y2` as fractions of
//!   the image), `windowCenter`/`windowWidth`, `frameNumber` and `imageQuality` (§9.1.2.1.6–13).
//!   `image/gif` is not produced: 406, like any other type not listed.
//! - `application/dicom`: the object in `transferSyntax` (§9.1.2.1.14), by default Explicit VR
//!   Little Endian (§9.3.2.1); `*` for the stored bytes. Stored bytes honour HTTP Range.
//! - `anonymize=yes` and `presentationUID` are refused with 400: the archive does neither, and
//!   a silently different image would be worse than an error; `annotation` and `charset` are
//!   accepted and have no effect (nothing is burnt in).

use crate::error::ApiError;
use crate::{AppState, Authed};
use axum::body::Body;
use axum::extract::Query;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt;
use std::collections::HashMap;
use vna_archive::model::{ByteRange, Found, InstanceRow, Scope};
use vna_archive::Delivery;
use vna_dicom::recode::Framing;
use vna_dicom::uid::{SeriesUid, SopInstanceUid, StudyUid};
use vna_image::{Format, RenderOptions, Viewport, Window, WindowFunction};

pub(crate) async fn wado(Authed(state): Authed, headers: HeaderMap, Query(p): Query<HashMap<String, String>>) -> Response {
    handle(state, headers, p).await.unwrap_or_else(IntoResponse::into_response)
}

/// What the response is made of.
#[derive(Debug, Clone, PartialEq)]
enum Wanted {
    Dicom,
    Image(Format),
}

fn bad(m: impl Into<String>) -> ApiError {
    ApiError::BadRequest(m.into())
}

async fn handle(state: AppState, headers: HeaderMap, p: HashMap<String, String>) -> Result<Response, ApiError> {
    let get = |k: &str| p.get(k).map(String::as_str).unwrap_or("");
    if get("requestType") != "WADO" {
        return Err(bad("requestType must be WADO"));
    }
    let uid_err = |k: &str, e: vna_dicom::uid::UidError| bad(format!("{k}: {e}"));
    let scope = Scope {
        study: StudyUid::new(get("studyUID")).map_err(|e| uid_err("studyUID", e))?,
        series: Some(SeriesUid::new(get("seriesUID")).map_err(|e| uid_err("seriesUID", e))?),
        instance: Some(SopInstanceUid::new(get("objectUID")).map_err(|e| uid_err("objectUID", e))?),
    };
    if get("anonymize").eq_ignore_ascii_case("yes") {
        return Err(bad("anonymize=yes is not supported by this archive"));
    }
    if !get("presentationUID").is_empty() || !get("presentationSeriesUID").is_empty() {
        return Err(bad("presentation states are not applied by this archive (presentationUID)"));
    }
    let frame = match p.get("frameNumber") {
        None => None,
        Some(v) => Some(v.trim().parse::<u32>().ok().filter(|n| *n >= 1).ok_or_else(|| bad("frameNumber must be an integer from 1"))?),
    };
    let row = state.archive.instances(&state.who, &scope).await?.remove(0);
    let wanted = choose(p.get("contentType").map(String::as_str), &row, frame)?;
    match wanted {
        Wanted::Dicom => {
            if frame.is_some() {
                return Err(bad("frameNumber applies to rendered images, not to application/dicom"));
            }
            dicom(&state, &headers, row, p.get("transferSyntax").map(String::as_str)).await
        }
        Wanted::Image(format) => {
            let options = render_options(&p, &row, format)?;
            let bytes = state.archive.render_frame(&row, frame.unwrap_or(1), &options).await?;
            Ok((StatusCode::OK, [(header::CONTENT_TYPE, format.media_type())], bytes).into_response())
        }
    }
}

/// The first acceptable entry of `contentType` (§9.1.2.1.5), or the default for the object.
fn choose(content_type: Option<&str>, row: &InstanceRow, frame: Option<u32>) -> Result<Wanted, ApiError> {
    let image = row.instance.rows.is_some() && !vna_dicom::ts::is_video(&row.instance.transfer_syntax);
    let single = row.instance.number_of_frames.unwrap_or(1) <= 1 || frame.is_some();
    let Some(list) = content_type.filter(|c| !c.trim().is_empty()) else {
        return Ok(if image && single && vna_archive::can_decode(row) { Wanted::Image(Format::Jpeg) } else { Wanted::Dicom });
    };
    for entry in list.split(',') {
        let media = entry.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        match media.as_str() {
            "application/dicom" => return Ok(Wanted::Dicom),
            "image/jpeg" if image => return Ok(Wanted::Image(Format::Jpeg)),
            "image/png" if image => return Ok(Wanted::Image(Format::Png)),
            "image/*" | "*/*" if image && vna_archive::can_decode(row) => return Ok(Wanted::Image(Format::Jpeg)),
            "*/*" => return Ok(Wanted::Dicom),
            _ => {}
        }
    }
    let offered = if image { "application/dicom, image/jpeg or image/png" } else { "application/dicom" };
    Err(ApiError::NotAcceptable(format!("contentType {list} is not available for this object; it is served as {offered}")))
}

/// `application/dicom` in the requested transfer syntax (default Explicit VR Little Endian,
/// PS3.18 §9.3.2.1; `*` the stored bytes, with HTTP Range).
async fn dicom(state: &AppState, headers: &HeaderMap, row: Found, transfer_syntax: Option<&str>) -> Result<Response, ApiError> {
    let target = match transfer_syntax.map(str::trim).filter(|t| !t.is_empty()) {
        None => vna_dicom::ts::EXPLICIT_VR_LITTLE_ENDIAN.to_owned(),
        Some("*") => row.instance.transfer_syntax.clone(),
        Some(ts) => {
            vna_dicom::uid::validate(ts).map_err(|e| bad(format!("transferSyntax: {e}")))?;
            ts.to_owned()
        }
    };
    if target == vna_dicom::ts::IMPLICIT_VR_LITTLE_ENDIAN && transfer_syntax != Some("*") {
        return Err(ApiError::NotAcceptable(
            "web services do not return Implicit VR Little Endian (PS3.18 §8.7.3.5.2); transferSyntax=* gives the stored bytes".into(),
        ));
    }
    match vna_archive::delivery(&row, &target) {
        Some(Delivery::Stored) => {
            let whole = vec![ByteRange { offset: 0, length: row.blob.size }];
            crate::range::ranged(state, headers, row, whole, "application/dicom").await
        }
        Some(_) => {
            let stream = state.archive.open_as(&row, &target, Framing::Part10).await?.map_err(|e| std::io::Error::other(e.to_string()));
            Ok((StatusCode::OK, [(header::CONTENT_TYPE, "application/dicom")], Body::from_stream(stream)).into_response())
        }
        None => Err(ApiError::NotAcceptable(format!(
            "the object is stored as {} and is available as {} (transferSyntax=* for the stored bytes)",
            row.instance.transfer_syntax,
            vna_archive::deliverable_syntaxes(&row)
                .into_iter()
                .filter(|t| t != vna_dicom::ts::IMPLICIT_VR_LITTLE_ENDIAN)
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// Rendering parameters of §9.1.2.1.6–13 as the renderer's options.
fn render_options(p: &HashMap<String, String>, row: &InstanceRow, format: Format) -> Result<RenderOptions, ApiError> {
    let mut opts = RenderOptions { format, ..RenderOptions::default() };
    let dim = |k: &str| -> Result<Option<u32>, ApiError> {
        match p.get(k).map(|v| v.trim()).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => v
                .parse::<u32>()
                .ok()
                .filter(|d| (1..=8192).contains(d))
                .map(Some)
                .ok_or_else(|| bad(format!("{k} must be an integer from 1 to 8192"))),
        }
    };
    let (rows, columns) = (dim("rows")?, dim("columns")?);
    let (img_w, img_h) = (row.instance.columns.unwrap_or(0).max(1) as f64, row.instance.rows.unwrap_or(0).max(1) as f64);
    let region = match p.get("region").map(|v| v.trim()).filter(|v| !v.is_empty()) {
        None => None,
        Some(v) => Some(region(v)?),
    };
    // The source region in pixels, and the size it would have unscaled.
    let source = region.map(|(x1, y1, x2, y2)| {
        let (sx, sy) = ((x1 * img_w).floor() as u32, (y1 * img_h).floor() as u32);
        let (sw, sh) = ((((x2 - x1) * img_w).round() as i64).max(1), (((y2 - y1) * img_h).round() as i64).max(1));
        (sx, sy, sw, sh)
    });
    let (base_w, base_h) = source.map_or((img_w, img_h), |(_, _, w, h)| (w as f64, h as f64));
    let size = match (columns, rows) {
        (Some(w), Some(h)) => Some((w, h)),
        // One dimension: the other follows the aspect ratio (§9.1.2.1.6).
        (Some(w), None) => Some((w, ((w as f64) * base_h / base_w).round().max(1.0) as u32)),
        (None, Some(h)) => Some((((h as f64) * base_w / base_h).round().max(1.0) as u32, h)),
        (None, None) => source.map(|(_, _, w, h)| (w as u32, h as u32)),
    };
    if let Some((width, height)) = size {
        opts.viewport = Some(Viewport { width, height, source });
    }
    match (p.get("windowCenter"), p.get("windowWidth")) {
        (None, None) => {}
        (Some(c), Some(w)) => {
            let num = |s: &str| s.trim().parse::<f64>().ok().filter(|x| x.is_finite());
            let (Some(center), Some(width)) = (num(c), num(w).filter(|w| *w >= 1.0)) else {
                return Err(bad("windowCenter and windowWidth must be numbers, the width at least 1"));
            };
            opts.window = Some(Window { center, width, function: WindowFunction::Linear });
        }
        _ => return Err(bad("windowCenter and windowWidth go together")),
    }
    if let Some(q) = p.get("imageQuality") {
        opts.quality = q
            .trim()
            .parse::<u8>()
            .ok()
            .filter(|q| (1..=100).contains(q))
            .ok_or_else(|| bad("imageQuality must be an integer from 1 to 100"))?;
    }
    Ok(opts)
}

/// `x1,y1,x2,y2`, normalised to the image (0.0–1.0), top left then bottom right (§9.1.2.1.8).
fn region(v: &str) -> Result<(f64, f64, f64, f64), ApiError> {
    let f: Vec<f64> = v.split(',').map(|s| s.trim().parse::<f64>()).collect::<Result<_, _>>().map_err(|_| region_error())?;
    let [x1, y1, x2, y2] = f[..] else { return Err(region_error()) };
    let inside = |x: f64| (0.0..=1.0).contains(&x);
    if !(inside(x1) && inside(y1) && inside(x2) && inside(y2) && x1 < x2 && y1 < y2) {
        return Err(region_error());
    }
    Ok((x1, y1, x2, y2))
}

fn region_error() -> ApiError {
    bad("region must be x1,y1,x2,y2 with 0.0 <= x1 < x2 <= 1.0 and 0.0 <= y1 < y2 <= 1.0")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(ts: &str, frames: Option<i64>, rows: Option<i64>) -> InstanceRow {
        let mut r = vna_catalog::conformance::instance_row(vna_catalog::conformance::new_instance("1.2.3", "1.2.3.4", "1.2.3.4.5"));
        r.instance.transfer_syntax = ts.into();
        r.instance.number_of_frames = frames;
        r.instance.rows = rows;
        r.instance.columns = rows.map(|r| r * 2);
        r
    }

    #[test]
    fn the_default_is_jpeg_for_one_frame_and_dicom_otherwise() {
        let ct = row("1.2.840.10008.1.2.1", None, Some(64));
        assert_eq!(choose(None, &ct, None).ok(), Some(Wanted::Image(Format::Jpeg)));
        let multi = row("1.2.840.10008.1.2.1", Some(10), Some(64));
        assert_eq!(choose(None, &multi, None).ok(), Some(Wanted::Dicom));
        assert_eq!(choose(None, &multi, Some(3)).ok(), Some(Wanted::Image(Format::Jpeg)));
        let pdf = row("1.2.840.10008.1.2.1", None, None);
        assert_eq!(choose(None, &pdf, None).ok(), Some(Wanted::Dicom));
        // JPEG-LS: no decoder here, so the default falls back to the object itself.
        assert_eq!(choose(None, &row("1.2.840.10008.1.2.4.80", None, Some(64)), None).ok(), Some(Wanted::Dicom));
    }

    #[test]
    fn content_type_lists_are_taken_in_order() {
        let ct = row("1.2.840.10008.1.2.1", None, Some(64));
        assert_eq!(choose(Some("image/gif, image/png"), &ct, None).ok(), Some(Wanted::Image(Format::Png)));
        assert_eq!(choose(Some("application/dicom,image/jpeg"), &ct, None).ok(), Some(Wanted::Dicom));
        assert!(choose(Some("image/gif"), &ct, None).is_err());
        assert!(choose(Some("image/jpeg"), &row("1.2.840.10008.1.2.1", None, None), None).is_err(), "no image to render");
    }

    #[test]
    fn rendering_parameters() {
        let ct = row("1.2.840.10008.1.2.1", None, Some(100)); // 200 columns x 100 rows
        let p = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect::<HashMap<_, _>>();
        let o = render_options(&p(&[("columns", "100")]), &ct, Format::Jpeg).ok().and_then(|o| o.viewport);
        assert_eq!(o.map(|v| (v.width, v.height)), Some((100, 50)), "aspect kept");
        let o = render_options(&p(&[("region", "0.5,0,1,0.5")]), &ct, Format::Jpeg).ok().and_then(|o| o.viewport);
        assert_eq!(o.map(|v| (v.width, v.height, v.source)), Some((100, 50, Some((100, 0, 100, 50)))));
        let o = render_options(&p(&[("windowCenter", "40"), ("windowWidth", "400"), ("imageQuality", "50")]), &ct, Format::Jpeg).ok();
        assert_eq!(o.as_ref().and_then(|o| o.window.map(|w| (w.center, w.width))), Some((40.0, 400.0)));
        assert_eq!(o.map(|o| o.quality), Some(50));
        for bad in [
            &[("windowCenter", "40")][..],
            &[("rows", "0")],
            &[("region", "0.5,0.5,0.4,1")],
            &[("region", "0,0,1")],
            &[("imageQuality", "0")],
        ] {
            assert!(render_options(&p(bad), &ct, Format::Jpeg).is_err(), "{bad:?}");
        }
    }
}
