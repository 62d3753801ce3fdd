//! An instance delivered in a transfer syntax a client or peer asks for: as stored, re-encoded
//! between the uncompressed syntaxes (`vna_dicom::recode`, lossless, streamed), or decoded
//! to native pixels first and then re-encoded. One decision for every front end: WADO-RS and
//! WADO-URI choose the syntax of the response, C-MOVE proposes and C-GET picks presentation
//! contexts by it (PS3.4 §C.4.2.1.4: the SCP may send in any syntax the peer accepted).

use crate::Found;
use crate::{Archive, ArchiveError};
use bytes::Bytes;
use futures::StreamExt;
use std::sync::Arc;
use vna_blob::{BlobError, ByteStream};
use vna_catalog::InstanceRow;
use vna_dicom::recode::{can_recode, Framing, Recoder};
use vna_dicom::ts::{EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN};

/// How the bytes of an instance reach a transfer syntax.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The stored bytes.
    Stored,
    /// Re-encoded between uncompressed syntaxes: the same values, other framing.
    Recoded,
    /// Compressed pixel data decoded to native samples (then re-encoded if need be).
    Decoded,
}

/// How `row` can be delivered in `target`, or `None` when it cannot.
pub fn delivery(row: &InstanceRow, target: &str) -> Option<Delivery> {
    let stored = row.instance.transfer_syntax.as_str();
    if stored == target {
        Some(Delivery::Stored)
    } else if can_recode(stored, target) {
        Some(Delivery::Recoded)
    } else if (target == EXPLICIT_VR_LITTLE_ENDIAN || target == IMPLICIT_VR_LITTLE_ENDIAN) && crate::can_decode(row) {
        Some(Delivery::Decoded)
    } else {
        None
    }
}

/// The transfer syntaxes `row` can be sent in, the preferred first: as stored (no work, no
/// change), then explicit VR little endian (keeps every VR), then implicit VR little endian.
/// What a C-MOVE proposes for the instance, in that order.
pub fn deliverable_syntaxes(row: &InstanceRow) -> Vec<String> {
    let mut out = vec![row.instance.transfer_syntax.clone()];
    for ts in [EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN] {
        if !out.iter().any(|t| t == ts) && delivery(row, ts).is_some() {
            out.push(ts.to_owned());
        }
    }
    out
}

impl Archive {
    /// The instance in `target` syntax with `framing` (a Part 10 object, or the bare data set
    /// a C-STORE carries), streamed. `Unsupported` when [`delivery`] says it cannot be done.
    pub async fn open_as(self: &Arc<Self>, row: &Found, target: &str, framing: Framing) -> Result<ByteStream, ArchiveError> {
        let source = match delivery(row, target) {
            Some(Delivery::Stored) if framing == Framing::Part10 => return self.open(row, None).await,
            Some(Delivery::Stored | Delivery::Recoded) => self.open(row, None).await?,
            // Decoding yields explicit VR little endian, re-encoded from there if need be.
            Some(Delivery::Decoded) => {
                let decoded = self.transcoded(row).await?;
                if target == EXPLICIT_VR_LITTLE_ENDIAN && framing == Framing::Part10 {
                    return Ok(decoded);
                }
                decoded
            }
            None => {
                return Err(ArchiveError::SyntaxUnavailable { stored: row.instance.transfer_syntax.clone(), requested: target.to_owned() })
            }
        };
        Ok(recoded(source, Recoder::new(target, framing)))
    }
}

/// `source` passed through `recoder` chunk by chunk (a few microseconds per chunk: headers are
/// rewritten, values copied). A failure cuts the stream; it is logged here, once.
fn recoded(source: ByteStream, recoder: Recoder) -> ByteStream {
    let cut = |e: vna_dicom::recode::RecodeError| {
        tracing::warn!(error = %e, "re-encoding a stored object failed; response cut");
        BlobError::Io { step: "re-encoding the stored object", source: std::io::Error::other(e) }
    };
    futures::stream::unfold(Some((source, recoder)), move |state| async move {
        let (mut source, mut recoder) = state?;
        loop {
            let mut out = Vec::new();
            match source.next().await {
                Some(Ok(chunk)) => match recoder.feed(&chunk, &mut out) {
                    Ok(()) if out.is_empty() => continue,
                    Ok(()) => return Some((Ok(Bytes::from(out)), Some((source, recoder)))),
                    Err(e) => return Some((Err(cut(e)), None)),
                },
                Some(Err(e)) => return Some((Err(e), None)),
                None => {
                    return match recoder.finish(&mut out) {
                        Ok(()) if out.is_empty() => None,
                        Ok(()) => Some((Ok(Bytes::from(out)), None)),
                        Err(e) => Some((Err(cut(e)), None)),
                    }
                }
            }
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(ts: &str, rows: Option<i64>, bits: Option<i64>) -> InstanceRow {
        let mut r = vna_catalog::conformance::instance_row(vna_catalog::conformance::new_instance("1.2.3", "1.2.3.4", "1.2.3.4.5"));
        r.instance.transfer_syntax = ts.to_owned();
        r.instance.rows = rows;
        r.instance.bits_allocated = bits;
        r
    }

    #[test]
    fn uncompressed_instances_go_anywhere_uncompressed() {
        for stored in ["1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99"] {
            let r = row(stored, Some(2), Some(16));
            assert_eq!(delivery(&r, stored), Some(Delivery::Stored));
            let all = deliverable_syntaxes(&r);
            assert_eq!(all[0], stored, "stored first");
            assert!(all.iter().any(|t| t == EXPLICIT_VR_LITTLE_ENDIAN) && all.iter().any(|t| t == IMPLICIT_VR_LITTLE_ENDIAN));
            if stored != IMPLICIT_VR_LITTLE_ENDIAN {
                let at = |ts: &str| all.iter().position(|t| t == ts);
                assert!(at(EXPLICIT_VR_LITTLE_ENDIAN) < at(IMPLICIT_VR_LITTLE_ENDIAN), "explicit (keeps VRs) before implicit");
            }
            assert_eq!(delivery(&r, "1.2.840.10008.1.2.4.50"), None, "no encoding into a compressed syntax");
        }
        assert_eq!(delivery(&row("1.2.840.10008.1.2", None, None), EXPLICIT_VR_LITTLE_ENDIAN), Some(Delivery::Recoded), "not only images");
    }

    #[test]
    fn compressed_instances_are_decoded_when_the_archive_can() {
        let jpeg = row("1.2.840.10008.1.2.4.50", Some(64), Some(8));
        assert_eq!(delivery(&jpeg, EXPLICIT_VR_LITTLE_ENDIAN), Some(Delivery::Decoded));
        assert_eq!(deliverable_syntaxes(&jpeg), ["1.2.840.10008.1.2.4.50", EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN]);
        // JPEG-LS: no decoder here; a video: never decoded; an encapsulated PDF: no image.
        for stored in ["1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.102"] {
            assert_eq!(deliverable_syntaxes(&row(stored, Some(64), Some(8))), [stored]);
        }
        assert_eq!(deliverable_syntaxes(&row("1.2.840.10008.1.2.4.50", None, None)), ["1.2.840.10008.1.2.4.50"]);
    }
}
