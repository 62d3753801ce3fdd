//! The HTTP side of the load generator: one client, STOW-RS request bodies assembled from
//! shared chunks, and streaming `multipart/related` response reading (PS3.18 §8.7.1.2).

use anyhow::{bail, Context};
use bytes::Bytes;
use futures::Stream;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use std::time::Duration;

/// Boundary of every STOW-RS request (never occurs in the generated objects' headers; pixel
/// bytes are random, so a 40-byte boundary collides with probability ~2^-320).
pub const BOUNDARY: &str = "vna-loadtest-4d1f0b8e6c2a4f0e9b7d3c5a1e8f6b2d";

/// Environment variable holding a bearer token (an API key or an access token) that every
/// request sends, to measure the archive with authentication on.
pub const TOKEN_VAR: &str = "VNA_LOADTEST_TOKEN";

pub fn client() -> anyhow::Result<reqwest::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Ok(token) = std::env::var(TOKEN_VAR) {
        let value = reqwest::header::HeaderValue::from_str(&format!("Bearer {}", token.trim())).context("VNA_LOADTEST_TOKEN")?;
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    Ok(reqwest::Client::builder().connect_timeout(Duration::from_secs(10)).tcp_nodelay(true).default_headers(headers).build()?)
}

/// `Content-Type` of a STOW-RS request.
pub fn stow_content_type() -> String {
    format!("multipart/related; type=\"application/dicom\"; boundary={BOUNDARY}")
}

/// The chunks of a STOW-RS body holding one part per object, each object given as chunks.
pub fn stow_chunks(objects: Vec<Vec<Bytes>>) -> Vec<Bytes> {
    let mut out = Vec::new();
    for (i, object) in objects.into_iter().enumerate() {
        let lead = if i == 0 { "" } else { "\r\n" };
        out.push(Bytes::from(format!("{lead}--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n")));
        out.extend(object);
    }
    out.push(Bytes::from(format!("\r\n--{BOUNDARY}--\r\n")));
    out
}

/// The tail of a STOW-RS body after the last object's bytes.
pub fn stow_closing() -> Bytes {
    Bytes::from(format!("\r\n--{BOUNDARY}--\r\n"))
}

/// The head of a STOW-RS body before the first object's bytes.
pub fn stow_opening() -> Bytes {
    Bytes::from(format!("--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n"))
}

/// POSTs a STOW-RS body (streamed from `body`) to `{base}/studies` and checks the PS3.18
/// store-instances response: 200 and `expected` entries in ReferencedSOPSequence.
pub async fn stow<S>(client: &reqwest::Client, base: &str, body: S, expected: usize, timeout: Option<Duration>) -> anyhow::Result<()>
where
    S: Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
{
    let mut req = client
        .post(format!("{base}/studies"))
        .header(CONTENT_TYPE, stow_content_type())
        .header(ACCEPT, "application/dicom+json")
        .body(reqwest::Body::wrap_stream(body));
    if let Some(t) = timeout {
        req = req.timeout(t);
    }
    let resp = req.send().await.context("STOW-RS request")?;
    let status = resp.status();
    let text = resp.text().await.context("reading the STOW-RS response")?;
    if status != reqwest::StatusCode::OK {
        bail!("STOW-RS answered {status}: {}", excerpt(&text));
    }
    let json: serde_json::Value = serde_json::from_str(&text).context("STOW-RS response is not JSON")?;
    let stored = json["00081199"]["Value"].as_array().map_or(0, Vec::len);
    if stored != expected {
        bail!("STOW-RS response lists {stored} stored instances, {expected} were sent");
    }
    Ok(())
}

/// GETs `url` with `accept` and feeds every chunk of every part of the multipart response to
/// `on_chunk(part_index, bytes)`; returns the number of parts.
pub async fn get_multipart(
    client: &reqwest::Client,
    url: &str,
    accept: &str,
    timeout: Option<Duration>,
    mut on_chunk: impl FnMut(usize, &[u8]),
) -> anyhow::Result<usize> {
    let mut req = client.get(url).header(ACCEPT, accept);
    if let Some(t) = timeout {
        req = req.timeout(t);
    }
    let resp = req.send().await.context("WADO-RS request")?;
    let status = resp.status();
    if status != reqwest::StatusCode::OK {
        let text = resp.text().await.unwrap_or_default();
        bail!("WADO-RS answered {status}: {}", excerpt(&text));
    }
    let ct = resp.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let boundary = boundary_of(&ct).with_context(|| format!("response Content-Type {ct:?} has no boundary"))?;
    let mut multipart = multer::Multipart::new(resp.bytes_stream(), boundary);
    let mut parts = 0;
    while let Some(mut field) = multipart.next_field().await.context("reading a multipart part")? {
        while let Some(chunk) = field.chunk().await.context("reading a multipart part's body")? {
            on_chunk(parts, &chunk);
        }
        parts += 1;
    }
    Ok(parts)
}

/// The `boundary` parameter of a multipart Content-Type (quoted or not).
fn boundary_of(content_type: &str) -> Option<String> {
    content_type.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim().eq_ignore_ascii_case("boundary").then(|| v.trim().trim_matches('"').to_owned())
    })
}

/// GETs a QIDO-RS URL: 200 with a JSON array, or 204 (no match). Returns the number of results.
pub async fn qido(client: &reqwest::Client, url: &str, timeout: Duration) -> anyhow::Result<usize> {
    let resp = client.get(url).header(ACCEPT, "application/dicom+json").timeout(timeout).send().await.context("QIDO-RS request")?;
    let status = resp.status();
    let text = resp.text().await.context("reading the QIDO-RS response")?;
    match status {
        reqwest::StatusCode::NO_CONTENT => Ok(0),
        reqwest::StatusCode::OK => {
            // Checked as JSON and counted without building a tree: the load generator shares
            // the machine with the server, and a tree of a 1 MB answer costs it milliseconds.
            let items: Vec<serde::de::IgnoredAny> = serde_json::from_str(&text).context("QIDO-RS response is not a JSON array")?;
            Ok(items.len())
        }
        other => bail!("QIDO-RS answered {other}: {}", excerpt(&text)),
    }
}

fn excerpt(text: &str) -> String {
    text.chars().take(300).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries() {
        assert_eq!(boundary_of("multipart/related; type=\"application/dicom\"; boundary=abc").as_deref(), Some("abc"));
        assert_eq!(boundary_of("multipart/related; boundary=\"x y\"").as_deref(), Some("x y"));
        assert_eq!(boundary_of("application/json"), None);
    }
}
