//! A stored instance as the data set of a C-STORE sub-operation: the blob streamed from its
//! store, the Part 10 preamble and meta group (PS3.10 §7.1) read past, the rest handed out
//! as it is read — never the whole object in memory.

use futures::TryStreamExt;
use tokio::io::AsyncRead;
use tokio_util::io::StreamReader;
use vna_archive::{Archive, ArchiveError};
use vna_catalog::InstanceRow;
use vna_dimse::DimseError;

/// Why a stored instance could not be opened for sending.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SourceError {
    #[error("opening the stored object")]
    Open(#[source] ArchiveError),
    #[error("reading the meta group of the stored object")]
    Meta(#[source] DimseError),
    #[error("the stored object's meta group says transfer syntax {meta}, the catalog {catalog}")]
    TransferSyntax { meta: String, catalog: String },
}

/// The data set of `row`'s stored object, positioned after the meta group.
pub(crate) async fn open_data_set(archive: &Archive, row: &InstanceRow) -> Result<impl AsyncRead + Unpin + Send, SourceError> {
    let stream = archive.open(row, None).await.map_err(SourceError::Open)?;
    let mut reader = StreamReader::new(stream.map_err(std::io::Error::other));
    let meta = vna_dimse::read_meta(&mut reader).await.map_err(SourceError::Meta)?;
    // The context was chosen by the catalog's transfer syntax: sending bytes in another one
    // would be a lie to the receiver.
    if meta.transfer_syntax != row.instance.transfer_syntax {
        return Err(SourceError::TransferSyntax { meta: meta.transfer_syntax, catalog: row.instance.transfer_syntax.clone() });
    }
    Ok(reader)
}
