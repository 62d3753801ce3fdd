//! HTTP Range (RFC 9110 §14) on representations that are byte ranges of a stored object:
//! a video's stream (its fragments' contents in order), a bulk data value, the stored Part 10
//! object of WADO-URI. One byte range is served (206 with `Content-Range`, suffix and open
//! ranges included), an unsatisfiable one is 416 with `bytes */length`, and anything else
//! (several ranges, another unit, a malformed header) is ignored and the whole representation
//! sent with 200, as §14.2 allows. The SHA-256 of the stored version is the strong validator
//! for `ETag`, `If-None-Match` and `If-Range`.

use crate::error::ApiError;
use crate::AppState;
use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use vna_archive::model::{ByteRange, Found};

/// `pieces` of `row`'s stored object, in order, make the representation of type `media`:
/// the whole of it, or the range the request asks for.
pub(crate) async fn ranged(s: &AppState, h: &HeaderMap, row: Found, pieces: Vec<ByteRange>, media: &str) -> Result<Response, ApiError> {
    let total: u64 = pieces.iter().map(|p| p.length).sum();
    // The stored version never changes: its SHA-256 is a strong validator (RFC 9110 §8.8.3).
    let etag = format!("\"{}\"", row.blob.sha256);
    let header_str = |name: header::HeaderName| h.get(name).and_then(|v| v.to_str().ok());
    if header_str(header::IF_NONE_MATCH).is_some_and(|v| v.trim() == "*" || v.split(',').any(|t| t.trim().trim_start_matches("W/") == etag))
    {
        let mut r = StatusCode::NOT_MODIFIED.into_response();
        if let Ok(v) = HeaderValue::from_str(&etag) {
            r.headers_mut().insert(header::ETAG, v);
        }
        return Ok(r);
    }
    // If-Range (RFC 9110 §13.1.5): a range only while the client's copy is this one.
    let range_applies = header_str(header::IF_RANGE).is_none_or(|v| v.trim() == etag);
    let requested = header_str(header::RANGE).filter(|_| range_applies).map(|v| byte_range(v, total));
    let (status, start, length) = match requested {
        None | Some(RangeRequest::Ignored) => (StatusCode::OK, 0, total),
        Some(RangeRequest::Satisfiable(a, b)) => (StatusCode::PARTIAL_CONTENT, a, b - a + 1),
        Some(RangeRequest::Unsatisfiable) => {
            let mut r = (StatusCode::RANGE_NOT_SATISFIABLE, format!("the representation has {total} bytes")).into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{total}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(r);
        }
    };
    let pieces = slice(&pieces, start, length);
    let body = crate::wado::ranged_body(s.archive.clone(), row, Some(pieces)).await?;
    let mut resp = (status, Body::from_stream(body)).into_response();
    let hs = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(media) {
        hs.insert(header::CONTENT_TYPE, v);
    }
    hs.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    hs.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    if let Ok(etag) = HeaderValue::from_str(&etag) {
        hs.insert(header::ETAG, etag);
    }
    if status == StatusCode::PARTIAL_CONTENT {
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{}/{total}", start + length - 1)) {
            hs.insert(header::CONTENT_RANGE, v);
        }
    }
    Ok(resp)
}

#[derive(Debug, PartialEq)]
pub(crate) enum RangeRequest {
    /// Inclusive first and last byte.
    Satisfiable(u64, u64),
    Unsatisfiable,
    /// Not a single byte range we serve (other unit, several ranges, malformed): the whole
    /// representation is sent with 200, as RFC 9110 §14.2 allows.
    Ignored,
}

/// One `bytes=` range (RFC 9110 §14.1.2): `a-b`, `a-` or the suffix `-n`.
pub(crate) fn byte_range(v: &str, total: u64) -> RangeRequest {
    let Some(spec) = v.trim().strip_prefix("bytes=") else { return RangeRequest::Ignored };
    if spec.contains(',') {
        return RangeRequest::Ignored;
    }
    let Some((a, b)) = spec.trim().split_once('-') else { return RangeRequest::Ignored };
    let (a, b) = (a.trim(), b.trim());
    let parsed = match (a.is_empty(), b.is_empty()) {
        (true, false) => b.parse::<u64>().ok().map(|n| (total.saturating_sub(n), total.saturating_sub(1), n > 0)),
        (false, true) => a.parse::<u64>().ok().map(|a| (a, total.saturating_sub(1), true)),
        (false, false) => match (a.parse::<u64>(), b.parse::<u64>()) {
            (Ok(a), Ok(b)) if a <= b => Some((a, b.min(total.saturating_sub(1)), true)),
            _ => None,
        },
        (true, true) => None,
    };
    match parsed {
        None => RangeRequest::Ignored,
        Some((a, b, nonempty)) if nonempty && a < total && a <= b => RangeRequest::Satisfiable(a, b),
        Some(_) => RangeRequest::Unsatisfiable,
    }
}

/// The stored byte ranges covering `length` bytes from `start` of the stream the pieces form.
pub(crate) fn slice(pieces: &[ByteRange], start: u64, length: u64) -> Vec<ByteRange> {
    let mut out = Vec::new();
    let (mut pos, end) = (0u64, start + length);
    for p in pieces {
        let (p_start, p_end) = (pos, pos + p.length);
        pos = p_end;
        if p_end <= start || p_start >= end {
            continue;
        }
        let from = start.max(p_start);
        let to = end.min(p_end);
        out.push(ByteRange { offset: p.offset + (from - p_start), length: to - from });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_ranges() {
        use RangeRequest::*;
        assert_eq!(byte_range("bytes=0-99", 1000), Satisfiable(0, 99));
        assert_eq!(byte_range("bytes=900-", 1000), Satisfiable(900, 999));
        assert_eq!(byte_range("bytes=-100", 1000), Satisfiable(900, 999));
        assert_eq!(byte_range("bytes=990-2000", 1000), Satisfiable(990, 999));
        assert_eq!(byte_range("bytes=-5000", 1000), Satisfiable(0, 999));
        assert_eq!(byte_range("bytes=1000-", 1000), Unsatisfiable);
        assert_eq!(byte_range("bytes=-0", 1000), Unsatisfiable);
        assert_eq!(byte_range("bytes=5-1", 1000), Ignored);
        assert_eq!(byte_range("bytes=0-1,5-9", 1000), Ignored);
        assert_eq!(byte_range("items=0-1", 1000), Ignored);
    }

    #[test]
    fn slices_span_fragments() {
        let pieces = [ByteRange { offset: 100, length: 10 }, ByteRange { offset: 200, length: 10 }, ByteRange { offset: 300, length: 10 }];
        assert_eq!(slice(&pieces, 5, 10), vec![ByteRange { offset: 105, length: 5 }, ByteRange { offset: 200, length: 5 }]);
        assert_eq!(slice(&pieces, 0, 30), pieces.to_vec());
        assert_eq!(slice(&pieces, 29, 1), vec![ByteRange { offset: 309, length: 1 }]);
        assert_eq!(slice(&pieces, 10, 10), vec![ByteRange { offset: 200, length: 10 }]);
    }
}
