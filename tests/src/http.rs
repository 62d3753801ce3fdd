//! DICOMweb over plain HTTP: STOW-RS request bodies (whole or piece by piece for streamed
//! requests), a minimal `multipart/related` reader for WADO-RS responses, and small client
//! helpers. `base` is always the DICOMweb root, e.g. `http://127.0.0.1:PORT/dicom-web`.

use bytes::Bytes;
use futures::channel::mpsc;
use serde_json::Value;

/// Boundary of every STOW-RS body the tests build.
pub const BOUNDARY: &str = "vna-e2e-7d1f0b9c";

/// `Content-Type` of a STOW-RS request.
pub fn stow_content_type() -> String {
    format!("multipart/related; type=\"application/dicom\"; boundary={BOUNDARY}")
}

/// Delimiter and headers that open a part (the first part, or any after a part's data).
pub fn part_head(first: bool) -> Vec<u8> {
    let lead = if first { "" } else { "\r\n" };
    format!("{lead}--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n").into_bytes()
}

/// The close delimiter that ends the body.
pub fn closing() -> Vec<u8> {
    format!("\r\n--{BOUNDARY}--\r\n").into_bytes()
}

/// A whole STOW-RS body with one part per object.
pub fn stow_body(objects: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        out.extend_from_slice(&part_head(i == 0));
        out.extend_from_slice(o);
    }
    out.extend_from_slice(&closing());
    out
}

/// One client per test; no connection pooling across tests. A generous overall timeout turns
/// a stall into a failure instead of a hang.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(crate::DEADLINE).build().expect("building the HTTP client")
}

/// POSTs a STOW-RS body to `{base}/studies`.
pub async fn stow(client: &reqwest::Client, base: &str, objects: &[Vec<u8>]) -> reqwest::Response {
    client
        .post(format!("{base}/studies"))
        .header(reqwest::header::CONTENT_TYPE, stow_content_type())
        .header(reqwest::header::ACCEPT, "application/dicom+json")
        .body(stow_body(objects))
        .send()
        .await
        .expect("sending STOW-RS")
}

/// A STOW-RS request whose body the test feeds piece by piece (a slow or broken client).
pub struct StreamedStow {
    tx: Option<mpsc::UnboundedSender<Result<Bytes, std::io::Error>>>,
    /// The request in flight; abort it to drop the connection mid-body.
    pub response: tokio::task::JoinHandle<reqwest::Result<reqwest::Response>>,
}

impl StreamedStow {
    /// Starts `POST {base}/studies` with a body that is whatever [`StreamedStow::send`] gives.
    pub fn start(client: &reqwest::Client, base: &str) -> StreamedStow {
        let (tx, rx) = mpsc::unbounded::<Result<Bytes, std::io::Error>>();
        let request = client
            .post(format!("{base}/studies"))
            .header(reqwest::header::CONTENT_TYPE, stow_content_type())
            .header(reqwest::header::ACCEPT, "application/dicom+json")
            .body(reqwest::Body::wrap_stream(rx));
        StreamedStow { tx: Some(tx), response: tokio::spawn(request.send()) }
    }

    /// Queues more body bytes.
    pub fn send(&self, bytes: &[u8]) {
        if let Some(tx) = &self.tx {
            // The request may already have failed; its outcome tells the test why.
            let _ = tx.unbounded_send(Ok(Bytes::copy_from_slice(bytes)));
        }
    }

    /// Ends the body and waits for the response.
    pub async fn finish(mut self) -> reqwest::Response {
        self.tx = None;
        (&mut self.response).await.expect("the STOW-RS task").expect("the STOW-RS request")
    }
}

/// QIDO-RS `{base}/studies?{query}`: the matches (empty on 204). Panics on another status.
pub async fn qido_studies(client: &reqwest::Client, base: &str, query: &str) -> Vec<Value> {
    let resp = client
        .get(format!("{base}/studies?{query}"))
        .header(reqwest::header::ACCEPT, "application/dicom+json")
        .send()
        .await
        .expect("sending QIDO-RS");
    match resp.status().as_u16() {
        204 => Vec::new(),
        200 => match resp.json::<Value>().await.expect("QIDO-RS JSON") {
            Value::Array(a) => a,
            other => panic!("QIDO-RS answered a non-array: {other}"),
        },
        s => panic!("QIDO-RS answered {s}: {}", resp.text().await.unwrap_or_default()),
    }
}

/// The first value of attribute `tag` (8 hex digits) in a DICOM JSON object.
pub fn first_value<'a>(object: &'a Value, tag: &str) -> Option<&'a Value> {
    object.get(tag)?.get("Value")?.get(0)
}

/// WADO-RS instance URL.
pub fn instance_url(base: &str, study: &str, series: &str, sop: &str) -> String {
    format!("{base}/studies/{study}/series/{series}/instances/{sop}")
}

/// Retrieves one instance with WADO-RS and returns the bytes of its single part.
pub async fn retrieve_instance(client: &reqwest::Client, url: &str) -> Vec<u8> {
    let resp = client
        .get(url)
        .header(reqwest::header::ACCEPT, "multipart/related; type=\"application/dicom\"")
        .send()
        .await
        .expect("sending WADO-RS");
    assert_eq!(resp.status().as_u16(), 200, "WADO-RS {url}");
    let ct = resp.headers().get(reqwest::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let body = resp.bytes().await.expect("WADO-RS body");
    let mut parts = parse_multipart(&ct, &body);
    assert_eq!(parts.len(), 1, "WADO-RS of one instance returned {} parts", parts.len());
    parts.remove(0)
}

/// The `boundary` parameter of a multipart content type.
pub fn boundary_of(content_type: &str) -> Option<String> {
    content_type.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim().eq_ignore_ascii_case("boundary").then(|| v.trim().trim_matches('"').to_owned())
    })
}

/// Splits a complete `multipart/related` body into the contents of its parts. Panics when the
/// framing is incomplete (no close delimiter): a truncated response is not a valid one.
pub fn parse_multipart(content_type: &str, body: &[u8]) -> Vec<Vec<u8>> {
    try_parse_multipart(content_type, body)
        .unwrap_or_else(|| panic!("incomplete multipart body ({} bytes, content type {content_type})", body.len()))
}

/// Like [`parse_multipart`], `None` when the body is not a complete multipart body.
pub fn try_parse_multipart(content_type: &str, body: &[u8]) -> Option<Vec<Vec<u8>>> {
    let boundary = boundary_of(content_type)?;
    let delimiter = format!("--{boundary}").into_bytes();
    let next_delimiter = format!("\r\n--{boundary}").into_bytes();
    let mut pos = find(body, &delimiter, 0)? + delimiter.len();
    let mut parts = Vec::new();
    loop {
        if body[pos..].starts_with(b"--") {
            return Some(parts);
        }
        let headers_end = find(body, b"\r\n\r\n", pos)? + 4;
        let end = find(body, &next_delimiter, headers_end)?;
        parts.push(body[headers_end..end].to_vec());
        pos = end + next_delimiter.len();
    }
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    haystack.get(from..)?.windows(needle.len()).position(|w| w == needle).map(|i| i + from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stow_body_round_trips_through_the_multipart_reader() {
        let objects = vec![b"first object".to_vec(), b"\r\nsecond\r\n".to_vec(), Vec::new()];
        let parts = parse_multipart(&stow_content_type(), &stow_body(&objects));
        assert_eq!(parts, objects);
        let truncated = stow_body(&objects);
        assert!(try_parse_multipart(&stow_content_type(), &truncated[..truncated.len() - 10]).is_none());
    }
}
