//! C-GET and C-MOVE through the toolkit on both sides: C-STORE sub-operations sent by the SCP
//! on the C-GET's association (role selection, streamed data sets, a C-CANCEL arriving while a
//! sub-operation is in flight) and received by the SCU into a sink; C-MOVE pending counts and
//! the final identifier.
#![allow(clippy::unwrap_used)]

use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use vna_dimse::negotiate::AcceptorPolicy;
use vna_dimse::{
    AssociationInfo, Client, ClientOptions, Command, DataStream, Handler, ProposedContext, Reply, Responder, ScpConfig, Status,
    StoreRequest, StoreSink, SubOperations, SubStoreOutcome, Timeouts,
};

const CT: &str = "1.2.840.10008.5.1.4.1.1.2";
const ELE: &str = "1.2.840.10008.1.2.1";
const GET_MODEL: &str = "1.2.840.10008.5.1.4.1.2.2.3";
const MOVE_MODEL: &str = "1.2.840.10008.5.1.4.1.2.2.2";
const INSTANCES: u16 = 5;

/// Sends `INSTANCES` objects of 40 000 bytes each as sub-operations of any C-GET.
struct Sender;

fn object(i: u16) -> Vec<u8> {
    (0..40_000u32).map(|b| ((b + u32::from(i)) % 251) as u8).collect()
}

#[async_trait]
impl Handler for Sender {
    fn accepts(&self, abstract_syntax: &str) -> bool {
        abstract_syntax == GET_MODEL || abstract_syntax == MOVE_MODEL || vna_dimse::is_storage_class(abstract_syntax)
    }

    async fn c_store(&self, _info: &AssociationInfo, _request: StoreRequest<'_>, _data: &mut DataStream<'_>) -> Reply {
        Reply::status(Status::SUCCESS)
    }

    async fn c_get(&self, _info: &AssociationInfo, _request: &Command, _identifier: Vec<u8>, responder: &mut Responder<'_>) -> Reply {
        let mut counts = SubOperations { remaining: Some(INSTANCES), ..SubOperations::default() };
        for i in 0..INSTANCES {
            if responder.cancelled() {
                return Reply { suboperations: Some(counts), ..Reply::status(Status::CANCEL) };
            }
            counts.remaining = counts.remaining.map(|r| r - 1);
            let Some(context) = responder.store_context(CT, ELE) else {
                counts.failed += 1;
                continue;
            };
            let data = object(i);
            match responder.store(context, CT, &format!("1.2.3.{i}"), &data[..]).await {
                Ok(SubStoreOutcome::Response(rsp)) if rsp.status == Some(Status::SUCCESS) => counts.completed += 1,
                Ok(_) => counts.failed += 1,
                Err(_) => return Reply::status(Status::PROCESSING_FAILURE),
            }
            responder.pending(Status::PENDING, None, Some(counts)).await.unwrap();
        }
        counts.remaining = None;
        let status = if counts.failed > 0 { Status::OUT_OF_RESOURCES_SUBOPERATIONS } else { Status::SUCCESS };
        Reply { suboperations: Some(counts), ..Reply::status(status) }
    }

    async fn c_move(&self, _info: &AssociationInfo, request: &Command, _identifier: Vec<u8>, responder: &mut Responder<'_>) -> Reply {
        assert_eq!(request.move_destination.as_deref(), Some("DEST"));
        let counts = SubOperations { remaining: Some(1), completed: 1, failed: 0, warning: 0 };
        responder.pending(Status::PENDING, None, Some(counts)).await.unwrap();
        let done = SubOperations { remaining: None, completed: 1, failed: 1, warning: 0 };
        Reply { suboperations: Some(done), data_set: Some(b"failed-list".to_vec()), ..Reply::status(Status::SUBOPERATIONS_WITH_FAILURES) }
    }
}

/// Keeps what arrives.
#[derive(Default)]
struct Sink {
    got: Vec<(String, String, Vec<u8>)>,
}

#[async_trait]
impl StoreSink for Sink {
    async fn store(&mut self, request: StoreRequest<'_>, data: &mut DataStream<'_>) -> Status {
        let mut bytes = Vec::new();
        while let Ok(Some(chunk)) = data.next().await {
            bytes.extend_from_slice(&chunk);
        }
        self.got.push((request.sop_instance_uid.to_owned(), request.transfer_syntax.to_owned(), bytes));
        Status::SUCCESS
    }
}

async fn start() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let t = Some(Duration::from_secs(10));
    let config = ScpConfig {
        policy: AcceptorPolicy { ae_title: "VNA".into(), allow_any_calling_ae: true, known_calling_aes: vec![], max_pdu_length: 16384 },
        max_associations: 4,
        timeouts: Timeouts { read: t, idle: t, write: t },
        shutdown_grace: Duration::from_secs(1),
        tls: None,
    };
    tokio::spawn(vna_dimse::serve(listener, config, Arc::new(Sender), std::future::pending::<()>()));
    addr
}

fn contexts() -> Vec<ProposedContext> {
    vec![ProposedContext::new(GET_MODEL, &[ELE]), ProposedContext::new(MOVE_MODEL, &[ELE]), ProposedContext::new(CT, &[ELE])]
}

#[tokio::test]
async fn c_get_sub_operations_stream_into_the_sink() {
    let addr = start().await;
    let options = ClientOptions { max_pdu_length: 16384, ..ClientOptions::default() };
    let mut client = Client::connect_with_roles(&addr, "GETTER", "VNA", &contexts(), &[CT], options).await.unwrap();
    let mut sink = Sink::default();
    let out = client.get(GET_MODEL, b"", &mut sink).await.unwrap();
    assert_eq!(out.status(), Status::SUCCESS);
    assert_eq!(out.counts(), SubOperations { remaining: None, completed: INSTANCES, failed: 0, warning: 0 });
    assert_eq!(out.pending.len(), usize::from(INSTANCES));
    assert_eq!(out.pending[0].remaining, Some(INSTANCES - 1));
    assert_eq!(sink.got.len(), usize::from(INSTANCES));
    for (i, (uid, ts, bytes)) in sink.got.iter().enumerate() {
        assert_eq!((uid.as_str(), ts.as_str()), (format!("1.2.3.{i}").as_str(), ELE));
        assert_eq!(bytes, &object(i as u16), "object {i} changed on the way");
    }
    // The association is still usable afterwards.
    assert_eq!(client.get(GET_MODEL, b"", &mut Sink::default()).await.unwrap().status(), Status::SUCCESS);
    client.release().await.unwrap();
}

#[tokio::test]
async fn without_the_scp_role_no_sub_operation_is_sent() {
    let addr = start().await;
    let mut client = Client::connect(&addr, "GETTER", "VNA", &contexts()).await.unwrap();
    let mut sink = Sink::default();
    let out = client.get(GET_MODEL, b"", &mut sink).await.unwrap();
    assert_eq!(out.status(), Status::OUT_OF_RESOURCES_SUBOPERATIONS);
    assert_eq!(out.counts().failed, INSTANCES);
    assert!(sink.got.is_empty());
    client.release().await.unwrap();
}

#[tokio::test]
async fn c_cancel_during_a_c_get_stops_the_sub_operations() {
    let addr = start().await;
    let mut client = Client::connect_with_roles(&addr, "GETTER", "VNA", &contexts(), &[CT], ClientOptions::default()).await.unwrap();
    let mut sink = Sink::default();
    // Cancel after the first pending response: the C-CANCEL-RQ reaches the SCP before it
    // polls again, or while it awaits the next C-STORE-RSP (kept for `cancelled`).
    let out = client.get_with(GET_MODEL, b"", &mut sink, |_| false).await.unwrap();
    assert_eq!(out.status(), Status::CANCEL);
    let c = out.counts();
    assert!(c.completed >= 1 && c.completed <= 2, "{c:?}");
    assert_eq!(c.remaining, Some(INSTANCES - c.completed));
    assert_eq!(sink.got.len(), usize::from(c.completed));
    // A cancelled operation leaves the association usable.
    assert_eq!(client.get(GET_MODEL, b"", &mut Sink::default()).await.unwrap().status(), Status::SUCCESS);
    client.release().await.unwrap();
}

#[tokio::test]
async fn c_move_reports_pending_counts_and_the_final_identifier() {
    let addr = start().await;
    let mut client = Client::connect(&addr, "MOVER", "VNA", &contexts()).await.unwrap();
    let out = client.move_(MOVE_MODEL, "DEST", b"").await.unwrap();
    assert_eq!(out.status(), Status::SUBOPERATIONS_WITH_FAILURES);
    assert_eq!(out.pending, vec![SubOperations { remaining: Some(1), completed: 1, failed: 0, warning: 0 }]);
    assert_eq!(out.counts(), SubOperations { remaining: None, completed: 1, failed: 1, warning: 0 });
    assert_eq!(out.identifier.as_deref(), Some(&b"failed-list"[..]));
    client.release().await.unwrap();
}
