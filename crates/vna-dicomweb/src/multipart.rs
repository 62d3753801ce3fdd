//! Streaming `multipart/related` response bodies (RFC 2387, PS3.18 §8.7.1.2): part headers,
//! then each part's bytes as they come from the blob store, never a whole object in memory.

use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};
use futures::FutureExt;

pub(crate) type Body = BoxStream<'static, Result<Bytes, std::io::Error>>;

pub(crate) fn new_boundary() -> String {
    format!("vna-{}", uuid::Uuid::new_v4().simple())
}

/// One part: its Content-Type and a lazily opened body.
pub(crate) struct Part {
    pub content_type: String,
    pub extra_headers: Vec<(String, String)>,
    pub body: futures::future::BoxFuture<'static, Result<Body, vna_archive::ArchiveError>>,
}

impl Part {
    /// A part whose bytes are computed whole (a rendered image, a decoded frame) when the
    /// response reaches it.
    pub fn computed<F>(content_type: String, bytes: F) -> Part
    where
        F: std::future::Future<Output = Result<Vec<u8>, vna_archive::ArchiveError>> + Send + 'static,
    {
        let body = async move {
            let bytes = Bytes::from(bytes.await?);
            Ok(futures::stream::once(async move { Ok(bytes) }).boxed())
        };
        Part { content_type, extra_headers: Vec::new(), body: body.boxed() }
    }
}

/// Opens the first part's body before the response status is sent, so that an unreadable
/// store (outage, missing object) is answered with an error status instead of a cut
/// connection. Later parts can only fail mid-stream.
pub(crate) async fn open_first(mut parts: Vec<Part>) -> Result<Vec<Part>, vna_archive::ArchiveError> {
    if let Some(first) = parts.first_mut() {
        let body = std::mem::replace(&mut first.body, futures::future::ready(Ok(futures::stream::empty().boxed())).boxed());
        let opened = body.await?;
        first.body = futures::future::ready(Ok(opened)).boxed();
    }
    Ok(parts)
}

/// Concatenates the parts into one multipart body. A part whose body fails to open or read
/// ends the stream with an error (the client sees a truncated response; the status line is
/// already sent).
pub(crate) fn body(boundary: String, parts: Vec<Part>) -> Body {
    let closing = Bytes::from(format!("\r\n--{boundary}--\r\n"));
    let stream = futures::stream::iter(parts.into_iter().enumerate())
        .then(move |(i, part)| {
            let boundary = boundary.clone();
            async move {
                let mut head = String::new();
                if i > 0 {
                    head.push_str("\r\n");
                }
                head.push_str(&format!("--{boundary}\r\nContent-Type: {}\r\n", part.content_type));
                for (k, v) in &part.extra_headers {
                    head.push_str(&format!("{k}: {v}\r\n"));
                }
                head.push_str("\r\n");
                let head = futures::stream::once(async move { Ok(Bytes::from(head)) });
                match part.body.await {
                    Ok(body) => head.chain(body).boxed(),
                    Err(e) => {
                        tracing::warn!(error = %e, source = ?std::error::Error::source(&e), "a part of a response could not be read; response cut");
                        head.chain(futures::stream::once(async move { Err(std::io::Error::other("stored object unreadable")) })).boxed()
                    }
                }
            }
        })
        .flatten()
        .chain(futures::stream::once(async move { Ok(closing) }));
    stream.boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(content_type: &str, bytes: &'static [u8]) -> Part {
        Part::computed(content_type.to_owned(), async move { Ok(bytes.to_vec()) })
    }

    async fn collect(body: Body) -> Result<Vec<u8>, std::io::Error> {
        let mut out = Vec::new();
        futures::pin_mut!(body);
        while let Some(chunk) = body.next().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(out)
    }

    #[tokio::test]
    async fn parts_are_framed_as_rfc_2387_says() {
        let mut second = part("application/dicom; transfer-syntax=1.2.840.10008.1.2.1", b"\r\n--b\r\n");
        second.extra_headers.push(("Content-Length".into(), "7".into()));
        let parts = open_first(vec![part("application/dicom", b"one"), second]).await.expect("opens");
        let got = collect(body("b".into(), parts)).await.expect("streams");
        let want = "--b\r\nContent-Type: application/dicom\r\n\r\none\
                    \r\n--b\r\nContent-Type: application/dicom; transfer-syntax=1.2.840.10008.1.2.1\r\nContent-Length: 7\r\n\r\n\r\n--b\r\n\
                    \r\n--b--\r\n";
        assert_eq!(String::from_utf8_lossy(&got), want);
        assert!(new_boundary() != new_boundary(), "a fresh boundary per response");
    }

    #[tokio::test]
    async fn a_first_part_that_cannot_open_is_an_error_before_the_status() {
        let failing = Part::computed("application/dicom".into(), async { Err(vna_archive::ArchiveError::NotFound { what: "object" }) });
        assert!(open_first(vec![failing]).await.is_err());
        // A later part failing cuts the stream: the client must not take it for complete.
        let later = Part::computed("application/dicom".into(), async { Err(vna_archive::ArchiveError::NotFound { what: "object" }) });
        let parts = open_first(vec![part("application/dicom", b"one"), later]).await.expect("the first opens");
        assert!(collect(body("b".into(), parts)).await.is_err());
    }
}
