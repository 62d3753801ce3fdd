//! WADO-RS (PS3.18 §10.4): instances as stored, metadata, frames and bulk data. Every body
//! streams from the blob store; frames are ranged reads at the offsets recorded at ingest.

use crate::accept::{ranges, MediaRange};
use crate::error::ApiError;
use crate::multipart::{self, Part};
use crate::{base_url, AppState, Authed};
use axum::body::Body;
use axum::extract::Path;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::{FutureExt, StreamExt, TryStreamExt};
use std::sync::Arc;
use vna_archive::model::{ByteRange, Found, Scope};
use vna_archive::{Archive, ArchiveError, BulkValue, Delivery};
use vna_dicom::json::resolve_bulk_uris;
use vna_dicom::recode::Framing;
use vna_dicom::uid::{SeriesUid, SopInstanceUid, StudyUid};

pub(crate) fn scope(study: &str, series: Option<&str>, instance: Option<&str>) -> Result<Scope, ApiError> {
    let bad = |what: &str, e: vna_dicom::uid::UidError| ApiError::BadRequest(format!("invalid {what} UID in the path: {e}"));
    Ok(Scope {
        study: StudyUid::new(study).map_err(|e| bad("Study Instance", e))?,
        series: series.map(SeriesUid::new).transpose().map_err(|e| bad("Series Instance", e))?,
        instance: instance.map(SopInstanceUid::new).transpose().map_err(|e| bad("SOP Instance", e))?,
    })
}

fn respond(r: Result<Response, ApiError>) -> Response {
    r.unwrap_or_else(IntoResponse::into_response)
}

pub(crate) async fn study(Authed(s): Authed, Path(study): Path<String>, h: HeaderMap) -> Response {
    respond(async { retrieve(&s, &h, scope(&study, None, None)?).await }.await)
}
pub(crate) async fn series(Authed(s): Authed, Path((st, se)): Path<(String, String)>, h: HeaderMap) -> Response {
    respond(async { retrieve(&s, &h, scope(&st, Some(&se), None)?).await }.await)
}
pub(crate) async fn instance(Authed(s): Authed, Path((st, se, i)): Path<(String, String, String)>, h: HeaderMap) -> Response {
    respond(async { retrieve(&s, &h, scope(&st, Some(&se), Some(&i))?).await }.await)
}
pub(crate) async fn study_metadata(Authed(s): Authed, Path(study): Path<String>, h: HeaderMap) -> Response {
    respond(async { metadata(&s, &h, scope(&study, None, None)?).await }.await)
}
pub(crate) async fn series_metadata(Authed(s): Authed, Path((st, se)): Path<(String, String)>, h: HeaderMap) -> Response {
    respond(async { metadata(&s, &h, scope(&st, Some(&se), None)?).await }.await)
}
pub(crate) async fn instance_metadata(Authed(s): Authed, Path((st, se, i)): Path<(String, String, String)>, h: HeaderMap) -> Response {
    respond(async { metadata(&s, &h, scope(&st, Some(&se), Some(&i))?).await }.await)
}

/// A transfer syntax the client takes for a part, as its Accept header names it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Wanted {
    /// `transfer-syntax=*`: whatever is stored.
    Stored,
    Syntax(String),
}

/// The transfer syntaxes the client accepts for parts of media type `part`, in its order of
/// preference (PS3.18 §8.7.3.5.2): a range without the parameter means the default, Explicit
/// VR Little Endian. Implicit VR Little Endian is never offered over the web (PS3.18 §8.7.3.5.2
/// Table 8.7.3-2 lists it for no media type), so a range asking only for it fits nothing.
pub(crate) fn wanted_syntaxes(ranges: &[MediaRange], part: &str) -> Vec<Wanted> {
    let fits = |r: &MediaRange| match r.essence.as_str() {
        "multipart/related" => r.part_type.as_deref().is_none_or(|t| t == part),
        "*/*" | "multipart/*" => true,
        e => e == part,
    };
    ranges
        .iter()
        .filter(|r| fits(r))
        .filter_map(|r| match r.transfer_syntax.as_deref() {
            Some("*") => Some(Wanted::Stored),
            Some(vna_dicom::ts::IMPLICIT_VR_LITTLE_ENDIAN) => None,
            Some(ts) => Some(Wanted::Syntax(ts.to_owned())),
            None => Some(Wanted::Syntax(vna_dicom::ts::EXPLICIT_VR_LITTLE_ENDIAN.to_owned())),
        })
        .collect()
}

/// The syntax an instance is sent in: the first the client wants that the archive can
/// deliver it in, or 406 naming what it could have had.
pub(crate) fn choose_syntax(wanted: &[Wanted], row: &Found) -> Result<(String, Delivery), ApiError> {
    for w in wanted {
        let ts = match w {
            Wanted::Stored => &row.instance.transfer_syntax,
            Wanted::Syntax(ts) => ts,
        };
        if let Some(d) = vna_archive::delivery(row, ts) {
            return Ok((ts.clone(), d));
        }
    }
    let offered: Vec<String> =
        vna_archive::deliverable_syntaxes(row).into_iter().filter(|t| t != vna_dicom::ts::IMPLICIT_VR_LITTLE_ENDIAN).collect();
    Err(ApiError::NotAcceptable(format!(
        "an instance is stored as {}; it is available as {} (or transfer-syntax=* for the stored bytes)",
        row.instance.transfer_syntax,
        offered.join(", ")
    )))
}

async fn multipart_response(part_type: &str, parts: Vec<Part>) -> Result<Response, ApiError> {
    let parts = multipart::open_first(parts).await?;
    let boundary = multipart::new_boundary();
    let ct = format!("multipart/related; type=\"{part_type}\"; boundary={boundary}");
    let body = Body::from_stream(multipart::body(boundary, parts));
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, ct)], body).into_response())
}

/// A lazily opened part body over one or more byte ranges of an instance (or all of it).
pub(crate) fn ranged_body(
    archive: Arc<Archive>,
    row: Found,
    pieces: Option<Vec<ByteRange>>,
) -> futures::future::BoxFuture<'static, Result<multipart::Body, ArchiveError>> {
    async move {
        let io = |e: vna_blob::BlobError| std::io::Error::other(e.to_string());
        let Some(pieces) = pieces else {
            return Ok(archive.open(&row, None).await?.map_err(io).boxed());
        };
        // The first range is opened now (so a failure becomes a status), the others when the
        // previous one is done: one ranged read per fragment.
        let mut pieces = pieces.into_iter();
        let first = match pieces.next() {
            Some(p) => archive.open(&row, Some(p)).await?.map_err(io).boxed(),
            None => futures::stream::empty().boxed(),
        };
        let rest = futures::stream::iter(pieces)
            .then(move |p| {
                let archive = archive.clone();
                let row = row.clone();
                async move {
                    match archive.open(&row, Some(p)).await {
                        Ok(s) => Ok(s.map_err(io)),
                        Err(e) => {
                            tracing::warn!(error = %e, "reading a frame piece failed; response cut");
                            Err(std::io::Error::other("stored object unreadable"))
                        }
                    }
                }
            })
            .try_flatten();
        Ok(first.chain(rest).boxed())
    }
    .boxed()
}

async fn retrieve(state: &AppState, headers: &HeaderMap, scope: Scope) -> Result<Response, ApiError> {
    let wanted = wanted_syntaxes(&ranges(headers), "application/dicom");
    if wanted.is_empty() {
        return Err(ApiError::NotAcceptable(
            "this resource is served as multipart/related; type=\"application/dicom\" (not in Implicit VR Little Endian)".into(),
        ));
    }
    let rows = state.archive.instances(&state.who, &scope).await?;
    let chosen = rows.iter().map(|r| choose_syntax(&wanted, r)).collect::<Result<Vec<_>, _>>()?;
    let parts = rows
        .into_iter()
        .zip(chosen)
        .map(|(row, (ts, delivery))| {
            let content_type = format!("application/dicom; transfer-syntax={ts}");
            if delivery == Delivery::Stored {
                let extra_headers = vec![("Content-Length".into(), row.blob.size.to_string())];
                return Part { content_type, extra_headers, body: ranged_body(state.archive.clone(), row, None) };
            }
            let archive = state.archive.clone();
            let body = async move {
                let io = |e: vna_blob::BlobError| std::io::Error::other(e.to_string());
                Ok(archive.open_as(&row, &ts, Framing::Part10).await?.map_err(io).boxed())
            }
            .boxed();
            Part { content_type, extra_headers: Vec::new(), body }
        })
        .collect();
    multipart_response("application/dicom", parts).await
}

async fn metadata(state: &AppState, headers: &HeaderMap, scope: Scope) -> Result<Response, ApiError> {
    if !crate::accept::accepts_json(headers) {
        return Err(ApiError::NotAcceptable("metadata is served as application/dicom+json".into()));
    }
    let base = base_url(state, headers);
    let docs = state.archive.metadata(&state.who, &scope).await?;
    let mut out = String::with_capacity(docs.iter().map(|(_, m)| m.len() + 1).sum::<usize>() + 2);
    out.push('[');
    for (i, (row, meta)) in docs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let url = format!("{base}/studies/{}/series/{}/instances/{}", row.study.study_uid, row.series.series_uid, row.instance.sop_uid);
        out.push_str(&resolve_bulk_uris(meta, &url));
    }
    out.push(']');
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, "application/dicom+json")], out).into_response())
}

/// PS3.18 §10.4.1.1.4 frame list: comma-separated, 1-based, at most `max` numbers (each one
/// is a ranged read; `http.max_list_items`).
pub(crate) fn frame_numbers(list: &str, max: u32) -> Result<Vec<u32>, ApiError> {
    let count = list.split(',').count();
    if count > max as usize {
        return Err(ApiError::BadRequest(format!("a frame list has at most {max} frame numbers (this one has {count})")));
    }
    let nums: Result<Vec<u32>, _> = list.split(',').map(|s| s.trim().parse::<u32>()).collect();
    match nums {
        Ok(n) if !n.is_empty() && n.iter().all(|&f| f >= 1) => Ok(n),
        _ => Err(ApiError::BadRequest("frame list must be comma-separated frame numbers starting at 1".into())),
    }
}

pub(crate) async fn frames(
    Authed(state): Authed,
    Path((st, se, i, list)): Path<(String, String, String, String)>,
    headers: HeaderMap,
) -> Response {
    respond(
        async {
            let scope = scope(&st, Some(&se), Some(&i))?;
            let numbers = frame_numbers(&list, state.archive.config().max_list_items)?;
            let located = state.archive.frames(&state.who, &scope, &numbers).await?;
            let row = located.instance;
            let stored_ts = row.instance.transfer_syntax.clone();
            let media = vna_dicom::ts::frame_media_type(&stored_ts).unwrap_or("application/octet-stream");
            // Accept: the stored media type, application/octet-stream (served as stored: the
            // part's transfer-syntax parameter tells the client what it got), or */*.
            let ranges = ranges(&headers);
            let native = vna_dicom::ts::is_native(&stored_ts);
            let part_of = |r: &crate::accept::MediaRange| {
                if r.essence == "multipart/related" { r.part_type.clone().unwrap_or_else(|| "application/octet-stream".into()) } else { r.essence.clone() }
            };
            let acceptable = ranges.iter().find(|r| {
                let t = part_of(r);
                matches!(t.as_str(), "*/*" | "application/octet-stream" | "multipart/*") || t == media || (native && t == "image/jpeg")
            });
            let Some(chosen) = acceptable else {
                return Err(ApiError::NotAcceptable(format!("frames of this instance are available as {media} or application/octet-stream (stored bytes)")));
            };
            if native && part_of(chosen) == "image/jpeg" {
                // Native frames encoded as JPEG Baseline on request (8-bit samples only).
                let ts = chosen.transfer_syntax.as_deref().unwrap_or(vna_dicom::ts::JPEG_BASELINE);
                if ts != "*" && ts != vna_dicom::ts::JPEG_BASELINE {
                    return Err(ApiError::NotAcceptable(format!("native frames are encoded as image/jpeg in {} only", vna_dicom::ts::JPEG_BASELINE)));
                }
                let parts = located.frames.into_iter().map(|f| jpeg_frame_part(state.archive.clone(), row.clone(), f.number)).collect();
                return multipart_response("image/jpeg", parts).await;
            }
            let part_type = if chosen.part_type.as_deref() == Some(media) || chosen.essence == media { media } else { "application/octet-stream" };
            // Native little-endian frames are the same bytes whatever the data set's VR encoding.
            let le_native = |t: &str| t == vna_dicom::ts::EXPLICIT_VR_LITTLE_ENDIAN || t == vna_dicom::ts::IMPLICIT_VR_LITTLE_ENDIAN;
            let requested = chosen.transfer_syntax.as_deref().filter(|t| *t != "*" && *t != stored_ts);
            let label = match requested {
                Some(t) if le_native(t) && le_native(&stored_ts) => t.to_owned(),
                _ => stored_ts.clone(),
            };
            if let Some(ts) = requested.filter(|_| label == stored_ts) {
                // Transcoding (PS3.18 §8.7.3.5.2): compressed frames decoded to explicit VR
                // little endian samples, one frame at a time on the decoder pool.
                let decodable = ts == vna_dicom::ts::EXPLICIT_VR_LITTLE_ENDIAN
                    && part_type == "application/octet-stream"
                    && !vna_dicom::ts::is_native(&stored_ts)
                    && vna_image::can_decode(&stored_ts)
                    && !vna_dicom::ts::is_video(&stored_ts);
                if !decodable {
                    return Err(ApiError::NotAcceptable(format!(
                        "transfer syntax {ts} was requested; frames are stored as {stored_ts}, and only decoding to application/octet-stream; transfer-syntax={} is offered for it",
                        vna_dicom::ts::EXPLICIT_VR_LITTLE_ENDIAN
                    )));
                }
                let parts = located.frames.into_iter().map(|f| native_frame_part(state.archive.clone(), row.clone(), f.number)).collect();
                return multipart_response("application/octet-stream", parts).await;
            }
            let parts = located
                .frames
                .into_iter()
                .map(|f| Part {
                    content_type: format!("{part_type}; transfer-syntax={label}"),
                    extra_headers: vec![("Content-Length".into(), f.pieces.iter().map(|p| p.length).sum::<u64>().to_string())],
                    body: ranged_body(state.archive.clone(), row.clone(), Some(f.pieces)),
                })
                .collect();
            multipart_response(part_type, parts).await
        }
        .await,
    )
}

/// A native frame encoded as JPEG Baseline, as a lazily produced part.
fn jpeg_frame_part(archive: Arc<Archive>, row: Found, number: u32) -> Part {
    let content_type = format!("image/jpeg; transfer-syntax={}", vna_dicom::ts::JPEG_BASELINE);
    Part::computed(content_type, async move { archive.jpeg_frame(&row, number).await })
}

/// A frame decoded to native samples, as a lazily produced part.
fn native_frame_part(archive: Arc<Archive>, row: Found, number: u32) -> Part {
    let content_type = format!("application/octet-stream; transfer-syntax={}", vna_dicom::ts::EXPLICIT_VR_LITTLE_ENDIAN);
    Part::computed(content_type, async move { archive.native_frame(&row, number).await.map(|f| f.bytes) })
}

/// Bulk data (PS3.18 §10.4.1.1.5, the BulkDataURIs of the metadata). A value's bytes go as
/// multipart/related of one `application/octet-stream` part by default; a client that asks for
/// `application/octet-stream` itself, or sends `Range` without insisting on multipart, gets the
/// single part with HTTP Range (RFC 9110 §14). Encapsulated Pixel Data is what PS3.18 Table
/// 8.7.3-5 says: a video's stream as `video/mp4` or `video/mpeg` (single part with Range, or
/// multipart when asked), an image's frames as multipart in their stored media type.
pub(crate) async fn bulkdata(
    Authed(state): Authed,
    Path((st, se, i, range)): Path<(String, String, String, String)>,
    headers: HeaderMap,
) -> Response {
    respond(
        async {
            let scope = scope(&st, Some(&se), Some(&i))?;
            let parsed = range.split_once('-').and_then(|(o, l)| Some(ByteRange { offset: o.parse().ok()?, length: l.parse().ok()? }));
            let Some(r) = parsed else {
                return Err(ApiError::Archive(ArchiveError::NotFound { what: "bulk data" }));
            };
            let (row, value) = state.archive.bulk(&state.who, &scope, r).await?;
            let accept = ranges(&headers);
            let wants_multipart = accept.first().is_some_and(|a| a.essence == "multipart/related");
            let has_range = headers.contains_key(header::RANGE);
            match value {
                BulkValue::Bytes(r) => {
                    let single = accept.iter().any(|a| a.essence == "application/octet-stream")
                        || (has_range && !wants_multipart && accept.iter().any(|a| matches!(a.essence.as_str(), "*/*" | "application/*")));
                    if single {
                        return crate::range::ranged(&state, &headers, row, vec![r], "application/octet-stream").await;
                    }
                    if !accept.iter().any(|a| fits_part(a, "application/octet-stream")) {
                        return Err(ApiError::NotAcceptable("bulk data is served as application/octet-stream".into()));
                    }
                    let parts = vec![Part {
                        content_type: "application/octet-stream".into(),
                        extra_headers: vec![("Content-Length".into(), r.length.to_string())],
                        body: ranged_body(state.archive.clone(), row, Some(vec![r])),
                    }];
                    multipart_response("application/octet-stream", parts).await
                }
                BulkValue::Video(stream) => {
                    let media = vna_dicom::ts::frame_media_type(&row.instance.transfer_syntax).unwrap_or("video/mp4");
                    if !accept.iter().any(|a| fits_part(a, media)) {
                        return Err(ApiError::NotAcceptable(format!("the pixel data of this video is served as {media}")));
                    }
                    if wants_multipart {
                        let length = stream.iter().map(|p| p.length).sum::<u64>();
                        let parts = vec![Part {
                            content_type: media.to_owned(),
                            extra_headers: vec![("Content-Length".into(), length.to_string())],
                            body: ranged_body(state.archive.clone(), row, Some(stream)),
                        }];
                        return multipart_response(media, parts).await;
                    }
                    crate::range::ranged(&state, &headers, row, stream, media).await
                }
                BulkValue::Frames => {
                    let ts = row.instance.transfer_syntax.clone();
                    let media = vna_dicom::ts::frame_media_type(&ts).unwrap_or("application/octet-stream");
                    let part_type = if accept.iter().any(|a| a.part_type.as_deref() == Some(media) || a.essence == media) {
                        media
                    } else if accept.iter().any(|a| fits_part(a, "application/octet-stream")) {
                        "application/octet-stream"
                    } else {
                        return Err(ApiError::NotAcceptable(format!("the pixel data of this instance is served as frames, {media}")));
                    };
                    let count = row.instance.number_of_frames.unwrap_or(1).max(1) as u32;
                    if count > state.archive.config().max_list_items {
                        return Err(ApiError::BadRequest(format!(
                            "this instance has {count} frames, more than the {} parts a response may have; retrieve them with /frames",
                            state.archive.config().max_list_items
                        )));
                    }
                    let numbers: Vec<u32> = (1..=count).collect();
                    let located = state.archive.frames(&state.who, &scope, &numbers).await?;
                    let parts = located
                        .frames
                        .into_iter()
                        .map(|f| Part {
                            content_type: format!("{part_type}; transfer-syntax={ts}"),
                            extra_headers: vec![("Content-Length".into(), f.pieces.iter().map(|p| p.length).sum::<u64>().to_string())],
                            body: ranged_body(state.archive.clone(), located.instance.clone(), Some(f.pieces)),
                        })
                        .collect();
                    multipart_response(part_type, parts).await
                }
            }
        }
        .await,
    )
}

/// True when a media range takes a representation (or multipart part) of type `media`.
fn fits_part(r: &MediaRange, media: &str) -> bool {
    let top = media.split('/').next().unwrap_or("");
    match r.essence.as_str() {
        "multipart/related" => r.part_type.as_deref().is_none_or(|t| t == media || t == "*/*" || t == format!("{top}/*")),
        "*/*" | "multipart/*" => true,
        e => e == media || e == format!("{top}/*"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(v: &str) -> Vec<MediaRange> {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, v.parse().expect("a header value"));
        ranges(&h)
    }

    fn syntax(ts: &str) -> Wanted {
        Wanted::Syntax(ts.to_owned())
    }

    #[test]
    fn no_transfer_syntax_parameter_means_explicit_vr_little_endian() {
        let explicit = syntax(vna_dicom::ts::EXPLICIT_VR_LITTLE_ENDIAN);
        for a in ["multipart/related; type=\"application/dicom\"", "multipart/related; type=application/dicom", "*/*", "multipart/related"]
        {
            assert_eq!(wanted_syntaxes(&accept(a), "application/dicom"), vec![explicit.clone()], "{a}");
        }
        let any = "multipart/related; type=\"application/dicom\"; transfer-syntax=*";
        assert_eq!(wanted_syntaxes(&accept(any), "application/dicom"), vec![Wanted::Stored]);
    }

    #[test]
    fn preferences_are_kept_in_order_and_implicit_is_never_offered() {
        let a = "multipart/related; type=\"application/dicom\"; transfer-syntax=1.2.840.10008.1.2.4.50, \
                 multipart/related; type=\"application/dicom\"; transfer-syntax=1.2.840.10008.1.2;q=0.9, \
                 multipart/related; type=\"application/dicom\"; transfer-syntax=*;q=0.5";
        assert_eq!(wanted_syntaxes(&accept(a), "application/dicom"), vec![syntax("1.2.840.10008.1.2.4.50"), Wanted::Stored]);
        assert!(wanted_syntaxes(
            &accept("multipart/related; type=\"application/dicom\"; transfer-syntax=1.2.840.10008.1.2"),
            "application/dicom"
        )
        .is_empty());
        assert!(wanted_syntaxes(&accept("application/dicom+json"), "application/dicom").is_empty());
        assert!(wanted_syntaxes(&accept("multipart/related; type=\"image/jpeg\""), "application/dicom").is_empty());
    }

    #[test]
    fn parts_fit_their_ranges() {
        let r = |a: &str| accept(a).remove(0);
        assert!(fits_part(&r("multipart/related; type=\"video/mp4\""), "video/mp4"));
        assert!(fits_part(&r("multipart/related; type=\"video/*\""), "video/mp4"));
        assert!(fits_part(&r("video/*"), "video/mp4") && fits_part(&r("*/*"), "video/mp4"));
        assert!(!fits_part(&r("image/jpeg"), "video/mp4"));
        assert!(!fits_part(&r("multipart/related; type=\"application/octet-stream\""), "video/mp4"));
    }

    #[test]
    fn frame_lists() {
        assert_eq!(frame_numbers("1, 3,2", 10).ok(), Some(vec![1, 3, 2]));
        for bad in ["", "0", "1,,2", "a", "-1"] {
            assert!(frame_numbers(bad, 10).is_err(), "{bad:?}");
        }
        assert!(frame_numbers(&["1"; 11].join(","), 10).is_err(), "over the cap");
        assert!(frame_numbers(&["1"; 10].join(","), 10).is_ok());
    }
}
