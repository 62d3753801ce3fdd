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
