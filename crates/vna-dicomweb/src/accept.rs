//! Accept header negotiation for the media types we serve (PS3.18 §8.7): media ranges with
//! their `type` and `transfer-syntax` parameters, in the client's order of preference.

use axum::http::HeaderMap;

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MediaRange {
    /// Lower-case `type/subtype`.
    pub essence: String,
    /// The `type` parameter of a multipart/related range, lower-case, unquoted.
    pub part_type: Option<String>,
    /// The `transfer-syntax` parameter, unquoted.
    pub transfer_syntax: Option<String>,
    pub q: f32,
}

/// Parses every Accept header into media ranges, best first. No Accept header: `*/*`.
pub(crate) fn ranges(headers: &HeaderMap) -> Vec<MediaRange> {
    let mut out = Vec::new();
    for value in headers.get_all(axum::http::header::ACCEPT) {
        let Ok(value) = value.to_str() else { continue };
        for range in split_outside_quotes(value, ',') {
            let mut parts = split_outside_quotes(&range, ';').into_iter();
            let essence = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
            if essence.is_empty() {
                continue;
            }
            let mut r = MediaRange { essence, part_type: None, transfer_syntax: None, q: 1.0 };
            for p in parts {
                let Some((k, v)) = p.split_once('=') else { continue };
                let v = v.trim().trim_matches('"').to_owned();
                match k.trim().to_ascii_lowercase().as_str() {
                    "type" => r.part_type = Some(v.to_ascii_lowercase()),
                    "transfer-syntax" => r.transfer_syntax = Some(v),
                    "q" => r.q = v.parse().unwrap_or(1.0),
                    _ => {}
                }
            }
            out.push(r);
        }
    }
    if out.is_empty() {
        out.push(MediaRange { essence: "*/*".into(), part_type: None, transfer_syntax: None, q: 1.0 });
    }
    out.sort_by(|a, b| b.q.partial_cmp(&a.q).unwrap_or(std::cmp::Ordering::Equal));
    out
}

pub(crate) fn split_outside_quotes(s: &str, sep: char) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in s.chars() {
        if c == '"' {
            quoted = !quoted;
        }
        if c == sep && !quoted {
            out.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    out.push(cur);
    out
}

/// True when the client accepts a DICOM JSON response (QIDO, metadata, STOW response).
pub(crate) fn accepts_json(headers: &HeaderMap) -> bool {
    ranges(headers).iter().any(|r| matches!(r.essence.as_str(), "application/dicom+json" | "application/json" | "*/*" | "application/*"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_multipart_ranges() {
        let mut h = HeaderMap::new();
        h.insert(
            axum::http::header::ACCEPT,
            "multipart/related; type=\"application/dicom\"; transfer-syntax=*, application/dicom+json;q=0.5".parse().unwrap(),
        );
        let r = ranges(&h);
        assert_eq!(r[0].essence, "multipart/related");
        assert_eq!(r[0].part_type.as_deref(), Some("application/dicom"));
        assert_eq!(r[0].transfer_syntax.as_deref(), Some("*"));
        assert_eq!(r[1].essence, "application/dicom+json");
    }
}
