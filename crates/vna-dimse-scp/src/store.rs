//! C-STORE SCP (PS3.4 Annex B): the data set streams from the P-DATA values into the ingest
//! pipeline behind a synthesized preamble and file meta group (PS3.10 §7.1), so that what is
//! stored is a Part 10 object whose data set is byte for byte the one received.

use crate::status::store_failure;
use bytes::Bytes;
use std::sync::Arc;
use vna_archive::{Archive, IngestBody, Principal, StoreRequest as IngestRequest};
use vna_dicom::uid::{SopClassUid, SopInstanceUid};
use vna_dimse::{DataStream, Reply, Status, StoreReply, StoreRequest};

pub(crate) async fn c_store(
    archive: &Arc<Archive>,
    who: &Principal,
    calling_ae: &str,
    request: StoreRequest<'_>,
    data: &mut DataStream<'_>,
) -> Reply {
    match receive(archive, who, calling_ae, request, data).await {
        Received::Reply(reply) => reply,
        Received::Commit { body, failed } => commit(body, failed).await,
    }
}

/// C-STORE on an association with an asynchronous operations window (PS3.7 §D.3.3.3): the
/// data set is read here; the commit runs on while the association reads the next request.
pub(crate) async fn c_store_deferred(
    archive: &Arc<Archive>,
    who: &Principal,
    calling_ae: &str,
    request: StoreRequest<'_>,
    data: &mut DataStream<'_>,
) -> StoreReply {
    match receive(archive, who, calling_ae, request, data).await {
        Received::Reply(reply) => StoreReply::Now(reply),
        Received::Commit { body, failed } => StoreReply::Later(Box::pin(commit(body, failed))),
    }
}

enum Received {
    Reply(Reply),
    /// The data set went into the pipeline (`failed`: the pipeline refused a part of it).
    Commit {
        body: IngestBody,
        failed: bool,
    },
}

async fn receive(
    archive: &Arc<Archive>,
    who: &Principal,
    calling_ae: &str,
    request: StoreRequest<'_>,
    data: &mut DataStream<'_>,
) -> Received {
    let (Ok(class), Ok(instance)) = (SopClassUid::new(request.sop_class_uid), SopInstanceUid::new(request.sop_instance_uid)) else {
        return Received::Reply(Reply::with_comment(Status::CANNOT_UNDERSTAND, "affected SOP class or instance UID is not a valid UID"));
    };
    let meta = vna_dicom::write::file_meta(class.as_str(), instance.as_str(), request.transfer_syntax);
    let ingest =
        IngestRequest { expected_sop: Some((class, instance)), calling_ae: Some(calling_ae.to_owned()), ..IngestRequest::new(who.clone()) };
    let mut body = match archive.begin_store(ingest) {
        Ok(b) => b,
        Err(e) => return Received::Reply(store_failure(&e)),
    };
    let mut failed = body.send(Bytes::from(meta)).await.is_err();
    while !failed {
        match data.next().await {
            Ok(Some(chunk)) => failed = body.send(chunk).await.is_err(),
            Ok(None) => break,
            // The association is gone: dropping `body` without `finish` aborts the store, and
            // no response can be sent anyway.
            Err(_) => return Received::Reply(Reply::status(Status::PROCESSING_FAILURE)),
        }
    }
    Received::Commit { body, failed }
}

/// Waits for the store to be durable (or for why it failed) and answers.
async fn commit(body: IngestBody, failed: bool) -> Reply {
    // After a failed send, `wait` reports why; the toolkit discards the rest of the data set.
    let outcome = if failed { body.wait().await } else { body.finish().await };
    match outcome {
        // Stored, duplicate (a no-op), new version, or kept as prior version: all durable.
        Ok(_) => Reply::status(Status::SUCCESS),
        Err(e) => store_failure(&e),
    }
}
