//! A stored instance as the data set of a C-STORE sub-operation, in the transfer syntax of
//! the presentation context that carries it: the stored bytes past their meta group, or the
//! instance re-encoded or decoded on the way (`Archive::open_as`) — streamed, never the whole
//! object in memory.

use futures::TryStreamExt;
use std::sync::Arc;
use tokio::io::AsyncRead;
use tokio_util::io::StreamReader;
use vna_archive::model::Found;
use vna_archive::{Archive, ArchiveError};
use vna_dicom::recode::Framing;

/// The data set of `row` in `transfer_syntax`, one of `vna_archive::deliverable_syntaxes(row)`.
pub(crate) async fn open_data_set(
    archive: &Arc<Archive>,
    row: &Found,
    transfer_syntax: &str,
) -> Result<impl AsyncRead + Unpin + Send, ArchiveError> {
    let stream = archive.open_as(row, transfer_syntax, Framing::DataSet).await?;
    Ok(StreamReader::new(stream.map_err(std::io::Error::other)))
}
