//! Streaming `multipart/related` response bodies (RFC 2387, PS3.18 §8.7.1.2): part headers,
//! then each part's bytes as they come from the blob store, never a whole object in memory.

use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};

pub(crate) type Body = BoxStream<'static, Result<Bytes, std::io::Error>>;

pub(crate) fn new_boundary() -> String {
    format!("vna-{}", uuid::Uuid::new_v4().simple())
}

/// One part: its Content-Type and a lazily opened body.
pub(crate) struct Part {
    pub content_type: String,
    pub extra_headers: Vec<(String, String)>,
    pub body: futures::future::BoxFuture<'static, Result<Body, std::io::Error>>,
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
                    Err(e) => head.chain(futures::stream::once(async move { Err(e) })).boxed(),
                }
            }
        })
        .flatten()
        .chain(futures::stream::once(async move { Ok(closing) }));
    stream.boxed()
}
