//! WADO-RS rendered and thumbnail resources (PS3.18 §10.4.1.1.3 rendered, §10.4.1.1.4
//! thumbnail, query parameters §8.3.5.1) and video playback.
//!
//! - Images: the frame is decoded and rendered as image/jpeg (the default, required) or
//!   image/png. A rendered instance is its first frame; a rendered frame list with several
//!   frames, a rendered series or study, is multipart/related with one image per frame or
//!   instance, each rendered lazily while the response streams.
//! - Videos (MPEG-2, H.264, HEVC): the rendered instance (or frame 1) is the stored stream as
//!   video/mp4 or video/mpeg, straight from the stored fragments, with HTTP Range (RFC 9110
//!   §14: `Accept-Ranges`, 206, 416) so that an HTML5 `<video>` element can seek.
//! - Thumbnails: a representative image fitting 256×256 (or the viewport): the middle instance
//!   of a study or series, the middle frame of a multi-frame instance; a poster for a video.

use crate::accept::ranges;
use crate::error::ApiError;
use crate::multipart::{self, Part};
use crate::wado::scope;
use crate::{AppState, Authed};
use axum::body::Body;
use axum::extract::{Path, Query};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use vna_archive::model::{ByteRange, Found, Scope};
use vna_archive::ArchiveError;
use vna_image::{Format, RenderOptions, Viewport, Window, WindowFunction};

/// Longer side of a thumbnail when the request gives no viewport.
const THUMBNAIL_SIZE: u32 = 256;

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Rendered,
    Thumbnail,
}

type Params = Query<HashMap<String, String>>;

pub(crate) async fn study(Authed(s): Authed, Path(st): Path<String>, q: Params, h: HeaderMap) -> Response {
    respond(async { many(&s, &h, &q, scope(&st, None, None)?, Kind::Rendered).await }.await)
}
pub(crate) async fn series(Authed(s): Authed, Path((st, se)): Path<(String, String)>, q: Params, h: HeaderMap) -> Response {
    respond(async { many(&s, &h, &q, scope(&st, Some(&se), None)?, Kind::Rendered).await }.await)
}
pub(crate) async fn instance(Authed(s): Authed, Path((st, se, i)): Path<(String, String, String)>, q: Params, h: HeaderMap) -> Response {
    respond(async { one_instance(&s, &h, &q, scope(&st, Some(&se), Some(&i))?, None).await }.await)
}
pub(crate) async fn frames(
    Authed(s): Authed,
    Path((st, se, i, list)): Path<(String, String, String, String)>,
    q: Params,
    h: HeaderMap,
) -> Response {
    respond(
        async {
            let numbers = crate::wado::frame_numbers(&list, s.archive.config().max_list_items)?;
            let scope = scope(&st, Some(&se), Some(&i))?;
            if numbers.len() == 1 {
                return one_instance(&s, &h, &q, scope, Some(numbers[0])).await;
            }
            let row = s.archive.instances(&s.who, &scope).await?.remove(0);
            if vna_dicom::ts::is_video(&row.instance.transfer_syntax) {
                return Err(ApiError::Archive(ArchiveError::VideoFrame));
            }
            let options = options(&h, &q, Kind::Rendered)?;
            let parts = numbers.into_iter().map(|n| rendered_part(&s, row.clone(), n, options.clone())).collect();
            multipart_images(options.format, parts).await
        }
        .await,
    )
}
pub(crate) async fn study_thumbnail(Authed(s): Authed, Path(st): Path<String>, q: Params, h: HeaderMap) -> Response {
    respond(async { thumbnail(&s, &h, &q, scope(&st, None, None)?, None).await }.await)
}
pub(crate) async fn series_thumbnail(Authed(s): Authed, Path((st, se)): Path<(String, String)>, q: Params, h: HeaderMap) -> Response {
    respond(async { thumbnail(&s, &h, &q, scope(&st, Some(&se), None)?, None).await }.await)
}
pub(crate) async fn instance_thumbnail(
    Authed(s): Authed,
    Path((st, se, i)): Path<(String, String, String)>,
    q: Params,
    h: HeaderMap,
) -> Response {
    respond(async { thumbnail(&s, &h, &q, scope(&st, Some(&se), Some(&i))?, None).await }.await)
}
pub(crate) async fn frame_thumbnail(
    Authed(s): Authed,
    Path((st, se, i, f)): Path<(String, String, String, String)>,
    q: Params,
    h: HeaderMap,
) -> Response {
    respond(
        async {
            let numbers = crate::wado::frame_numbers(&f, s.archive.config().max_list_items)?;
            let [n] = numbers[..] else { return Err(ApiError::BadRequest("a thumbnail is of one frame".into())) };
            thumbnail(&s, &h, &q, scope(&st, Some(&se), Some(&i))?, Some(n)).await
        }
        .await,
    )
}

fn respond(r: Result<Response, ApiError>) -> Response {
    r.unwrap_or_else(IntoResponse::into_response)
}

/// One instance rendered: its first (or the given) frame as an image, or its video stream.
async fn one_instance(s: &AppState, h: &HeaderMap, q: &Params, scope: Scope, frame: Option<u32>) -> Result<Response, ApiError> {
    let row = s.archive.instances(&s.who, &scope).await?.remove(0);
    if let Some(stream) = s.archive.video_stream(&row).await? {
        if frame.is_some_and(|n| n != 1) {
            return Err(ApiError::Archive(ArchiveError::VideoFrame));
        }
        return video(s, h, row, stream).await;
    }
    let options = options(h, q, Kind::Rendered)?;
    let bytes = s.archive.render_frame(&row, frame.unwrap_or(1), &options).await?;
    Ok(image_response(options.format, bytes))
}

/// A study or series rendered: one image per instance (its first frame), multipart.
async fn many(s: &AppState, h: &HeaderMap, q: &Params, scope: Scope, kind: Kind) -> Result<Response, ApiError> {
    let options = options(h, q, kind)?;
    let rows = s.archive.instances(&s.who, &scope).await?;
    let images: Vec<Found> =
        rows.into_iter().filter(|r| r.instance.rows.is_some() && !vna_dicom::ts::is_video(&r.instance.transfer_syntax)).collect();
    let Some(first) = images.first().cloned() else {
        return Err(ApiError::Archive(ArchiveError::NotFound { what: "renderable image" }));
    };
    // Only what decodes: a part failing mid-stream could only cut the response.
    let parts: Vec<Part> =
        images.into_iter().filter(|r| vna_archive::can_decode(r)).map(|row| rendered_part(s, row, 1, options.clone())).collect();
    if parts.is_empty() {
        return Err(ApiError::Archive(ArchiveError::Image(vna_image::ImageError::Unsupported(first.instance.transfer_syntax.clone()))));
    }
    multipart_images(options.format, parts).await
}

async fn thumbnail(s: &AppState, h: &HeaderMap, q: &Params, scope: Scope, frame: Option<u32>) -> Result<Response, ApiError> {
    let options = options(h, q, Kind::Thumbnail)?;
    let rows = s.archive.instances(&s.who, &scope).await?;
    // The representative instance: the middle one that has an image (a CT's middle slice).
    let images: Vec<&Found> = rows.iter().filter(|r| r.instance.rows.is_some()).collect();
    let Some(row) = images.get(images.len() / 2).copied() else {
        return Err(ApiError::Archive(ArchiveError::NotFound { what: "image for a thumbnail" }));
    };
    if vna_dicom::ts::is_video(&row.instance.transfer_syntax) {
        let bytes = s.archive.video_poster(row, THUMBNAIL_SIZE, &options).await?;
        return Ok(image_response(options.format, bytes));
    }
    let frames = row.instance.number_of_frames.unwrap_or(1).max(1) as u32;
    let number = frame.unwrap_or(frames.div_ceil(2));
    let bytes = s.archive.render_frame(row, number, &options).await?;
    Ok(image_response(options.format, bytes))
}

fn rendered_part(s: &AppState, row: Found, number: u32, options: RenderOptions) -> Part {
    let archive = s.archive.clone();
    Part::computed(options.format.media_type().to_owned(), async move { archive.render_frame(&row, number, &options).await })
}

async fn multipart_images(format: Format, parts: Vec<Part>) -> Result<Response, ApiError> {
    let parts = multipart::open_first(parts).await?;
    let boundary = multipart::new_boundary();
    let ct = format!("multipart/related; type=\"{}\"; boundary={boundary}", format.media_type());
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, ct)], Body::from_stream(multipart::body(boundary, parts))).into_response())
}

fn image_response(format: Format, bytes: Vec<u8>) -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, format.media_type())], bytes).into_response()
}

/// The rendered media type (Accept header, or the `accept` query parameter which overrides
/// it, PS3.18 §8.3.3.1) and the rendering parameters.
fn options(h: &HeaderMap, q: &Params, kind: Kind) -> Result<RenderOptions, ApiError> {
    let mut opts = RenderOptions::default();
    let wanted: Vec<String> = match q.get("accept") {
        Some(a) => a.split(',').map(|m| m.split(';').next().unwrap_or("").trim().to_ascii_lowercase()).collect(),
        None => ranges(h).into_iter().map(|r| r.part_type.filter(|_| r.essence == "multipart/related").unwrap_or(r.essence)).collect(),
    };
    opts.format = wanted
        .iter()
        .find_map(|m| match m.as_str() {
            "image/jpeg" | "image/*" | "*/*" | "multipart/related" | "multipart/*" => Some(Format::Jpeg),
            "image/png" => Some(Format::Png),
            _ => None,
        })
        .ok_or_else(|| {
            ApiError::NotAcceptable("rendered images are served as image/jpeg or image/png (videos as video/mp4 or video/mpeg)".into())
        })?;
    if let Some(v) = q.get("quality") {
        opts.quality =
            v.trim().parse::<u8>().ok().filter(|q| (1..=100).contains(q)).ok_or_else(|| bad("quality must be an integer from 1 to 100"))?;
    }
    if let Some(v) = q.get("viewport") {
        opts.viewport = Some(viewport(v)?);
    } else if kind == Kind::Thumbnail {
        opts.viewport = Some(Viewport { width: THUMBNAIL_SIZE, height: THUMBNAIL_SIZE, source: None });
        opts.shrink_only = true;
    }
    if let Some(v) = q.get("window") {
        opts.window = Some(window(v)?);
    }
    Ok(opts)
}

fn bad(m: &str) -> ApiError {
    ApiError::BadRequest(m.to_owned())
}

/// `vw,vh[,sx,sy,sw,sh]` (PS3.18 §8.3.5.1.3). Omitted source values default to the whole
/// image; here a source region needs all four.
fn viewport(v: &str) -> Result<Viewport, ApiError> {
    let f: Vec<&str> = v.split(',').map(str::trim).collect();
    let dim = |s: &str| s.parse::<u32>().ok().filter(|d| (1..=8192).contains(d));
    let err = || bad("viewport must be vw,vh or vw,vh,sx,sy,sw,sh (vw and vh from 1 to 8192)");
    let (Some(width), Some(height)) = (f.first().and_then(|s| dim(s)), f.get(1).and_then(|s| dim(s))) else { return Err(err()) };
    let source = match f.len() {
        2 => None,
        6 => {
            let (Some(sx), Some(sy), Some(sw), Some(sh)) =
                (f[2].parse::<u32>().ok(), f[3].parse::<u32>().ok(), f[4].parse::<i64>().ok(), f[5].parse::<i64>().ok())
            else {
                return Err(err());
            };
            Some((sx, sy, sw, sh))
        }
        _ => return Err(err()),
    };
    Ok(Viewport { width, height, source })
}

/// `center,width[,function]` (PS3.18 §8.3.5.1.4), function linear (default), linear-exact or
/// sigmoid.
fn window(v: &str) -> Result<Window, ApiError> {
    let f: Vec<&str> = v.split(',').map(str::trim).collect();
    let err = || bad("window must be center,width[,linear|linear-exact|sigmoid] with a width of at least 1");
    let num = |s: &str| s.parse::<f64>().ok().filter(|x| x.is_finite());
    let (Some(center), Some(width)) = (f.first().and_then(|s| num(s)), f.get(1).and_then(|s| num(s))) else { return Err(err()) };
    if width < 1.0 || f.len() > 3 {
        return Err(err());
    }
    let function = match f.get(2).map(|s| s.to_ascii_lowercase()) {
        None => WindowFunction::Linear,
        Some(s) if s == "linear" => WindowFunction::Linear,
        Some(s) if s == "linear-exact" => WindowFunction::LinearExact,
        Some(s) if s == "sigmoid" => WindowFunction::Sigmoid,
        Some(_) => return Err(err()),
    };
    Ok(Window { center, width, function })
}

/// The stored video stream, whole or a byte range of it.
async fn video(s: &AppState, h: &HeaderMap, row: Found, stream: Vec<ByteRange>) -> Result<Response, ApiError> {
    let media =
        if vna_dicom::ts::frame_media_type(&row.instance.transfer_syntax) == Some("video/mpeg") { "video/mpeg" } else { "video/mp4" };
    let accepted = ranges(h).iter().any(|r| {
        let t = r.part_type.as_deref().filter(|_| r.essence == "multipart/related").unwrap_or(&r.essence);
        matches!(t, "*/*" | "video/*") || t == media
    });
    if !accepted {
        return Err(ApiError::NotAcceptable(format!("this video is served as {media}; its thumbnail gives a poster image")));
    }
    crate::range::ranged(s, h, row, stream, media).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters() {
        assert_eq!(viewport("64,32").ok().map(|v| (v.width, v.height)), Some((64, 32)));
        assert_eq!(viewport("64,32,1,2,-3,4").ok().and_then(|v| v.source), Some((1, 2, -3, 4)));
        assert!(viewport("0,32").is_err() && viewport("64").is_err() && viewport("64,32,1").is_err());
        assert_eq!(window("40,400").ok().map(|w| (w.center, w.width)), Some((40.0, 400.0)));
        assert_eq!(window("40,400,sigmoid").ok().map(|w| w.function), Some(WindowFunction::Sigmoid));
        assert!(window("40,0").is_err() && window("40").is_err() && window("40,400,cubic").is_err());
    }
}
