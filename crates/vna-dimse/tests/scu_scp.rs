//! The toolkit's SCU against its own SCP with a test handler: echo, streamed store, rejections,
//! the association cap, an abort in the middle of a data set, and shutdown.
#![allow(clippy::unwrap_used)]

use async_trait::async_trait;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use vna_dimse::negotiate::AcceptorPolicy;
use vna_dimse::{
    AssociationInfo, Client, ClientOptions, DataStream, DimseError, Handler, ProposedContext, Reply, ScpConfig, Status, StoreRequest,
    Timeouts,
};

const CT: &str = "1.2.840.10008.5.1.4.1.1.2";
const ELE: &str = "1.2.840.10008.1.2.1";

/// (instance, transfer syntax, bytes, fragments) of a completed store.
type Stored = (String, String, Vec<u8>, usize);

struct Recorder {
    stored: Mutex<Vec<Stored>>,
    /// Stores whose stream failed (association gone).
    broken: Mutex<usize>,
    /// Holds a store until released, to keep an association busy.
    gate: tokio::sync::Semaphore,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder { stored: Mutex::default(), broken: Mutex::default(), gate: tokio::sync::Semaphore::new(0) }
    }
}

#[async_trait]
impl Handler for Recorder {
    async fn c_store(&self, _info: &AssociationInfo, request: StoreRequest<'_>, data: &mut DataStream<'_>) -> Reply {
        let mut bytes = Vec::new();
        let mut fragments = 0;
        loop {
            match data.next().await {
                Ok(Some(chunk)) => {
                    fragments += 1;
                    bytes.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(_) => {
                    *self.broken.lock().unwrap() += 1;
                    return Reply::status(Status::PROCESSING_FAILURE);
                }
            }
        }
        if request.sop_instance_uid.ends_with(".slow") {
            let _permit = self.gate.acquire().await.unwrap();
        }
        self.stored.lock().unwrap().push((request.sop_instance_uid.to_owned(), request.transfer_syntax.to_owned(), bytes, fragments));
        Reply::status(Status::SUCCESS)
    }
}

struct Scp {
    addr: String,
    handler: Arc<Recorder>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

async fn start(max_associations: usize, allow_any: bool) -> Scp {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let handler = Arc::new(Recorder::default());
    let t = Some(Duration::from_secs(10));
    let config = ScpConfig {
        policy: AcceptorPolicy {
            ae_title: "VNA".into(),
            allow_any_calling_ae: allow_any,
            known_calling_aes: vec!["KNOWN".into()],
            max_pdu_length: 16384,
        },
        max_associations,
        timeouts: Timeouts { read: t, idle: t, write: t },
        shutdown_grace: Duration::from_secs(5),
        tls: None,
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let h = handler.clone();
    let task = tokio::spawn(async move {
        vna_dimse::serve(listener, config, h, async {
            let _ = stopped.await;
        })
        .await
    });
    Scp { addr, handler, stop: Some(stop), task }
}

fn contexts() -> Vec<ProposedContext> {
    vec![ProposedContext::new(vna_dimse::VERIFICATION, &["1.2.840.10008.1.2"]), ProposedContext::new(CT, &[ELE, "1.2.840.10008.1.2"])]
}

#[tokio::test]
async fn echo_store_and_release() {
    let scp = start(4, false).await;
    let mut client = Client::connect(&scp.addr, "KNOWN", "VNA", &contexts()).await.unwrap();
    assert_eq!(client.echo().await.unwrap(), Status::SUCCESS);
    // 100 000 bytes over a 16 KiB PDU limit: several fragments, reassembled in order.
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let rsp = client.store(CT, "1.2.3.4", ELE, &data[..]).await.unwrap();
    assert_eq!(rsp.status, Some(Status::SUCCESS));
    assert_eq!(rsp.affected_sop_instance_uid.as_deref(), Some("1.2.3.4"));
    assert_eq!(rsp.message_id_being_responded_to, Some(2));
    client.release().await.unwrap();
    let stored = scp.handler.stored.lock().unwrap().clone();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].0, "1.2.3.4");
    assert_eq!(stored[0].1, ELE);
    assert_eq!(stored[0].2, data);
    assert!(stored[0].3 >= 7, "expected the data set in several fragments, got {}", stored[0].3);
}

#[tokio::test]
async fn unsupported_operation_gets_0211() {
    let scp = start(4, true).await;
    let find_model = "1.2.840.10008.5.1.4.1.2.2.1";
    // The default handler does not accept the query model at association time…
    let mut client = Client::connect(&scp.addr, "ANY", "VNA", &[ProposedContext::new(find_model, &[ELE])]).await.unwrap();
    assert!(matches!(client.find(find_model, b"").await, Err(DimseError::NoPresentationContext { .. })));
    // …and a C-FIND sent on another context is answered "unrecognized operation".
    let mut client = Client::connect(&scp.addr, "ANY", "VNA", &contexts()).await.unwrap();
    let ctx = client.association().find_context(CT, None).unwrap().id;
    let rq = vna_dimse::Command::find_rq(9, CT);
    client.association().send_message(ctx, &rq, Some(b"")).await.unwrap();
    let rsp = client.response(vna_dimse::CommandField::C_FIND_RQ).await.unwrap();
    assert_eq!(rsp.status, Some(Status::UNRECOGNIZED_OPERATION));
    client.release().await.unwrap();
}

#[tokio::test]
async fn ae_titles_are_checked() {
    let scp = start(4, false).await;
    let err = Client::connect(&scp.addr, "STRANGER", "VNA", &contexts()).await.err().unwrap();
    let DimseError::Rejected(rj) = err else { panic!("expected a rejection, got {err:?}") };
    assert_eq!(
        rj.source,
        dicom_ul::pdu::AssociationRJSource::ServiceUser(dicom_ul::pdu::AssociationRJServiceUserReason::CallingAETitleNotRecognized)
    );
    let err = Client::connect(&scp.addr, "KNOWN", "NOT-VNA", &contexts()).await.err().unwrap();
    let DimseError::Rejected(rj) = err else { panic!("expected a rejection, got {err:?}") };
    assert_eq!(
        rj.source,
        dicom_ul::pdu::AssociationRJSource::ServiceUser(dicom_ul::pdu::AssociationRJServiceUserReason::CalledAETitleNotRecognized)
    );
}

#[tokio::test]
async fn over_the_cap_is_rejected_at_once_and_abort_mid_data_set_keeps_nothing() {
    let scp = start(1, true).await;
    let mut busy = Client::connect(&scp.addr, "A", "VNA", &contexts()).await.unwrap();
    // Half a data set, then the association holds its slot.
    let ctx = busy.association().find_context(CT, Some(ELE)).unwrap().id;
    busy.association().send_command(ctx, &vna_dimse::Command::store_rq(1, CT, "1.2.3.9")).await.unwrap();
    busy.association().send_data(ctx, &[0u8; 5000], false).await.unwrap();
    let started = std::time::Instant::now();
    let err = Client::connect(&scp.addr, "B", "VNA", &contexts()).await.err().unwrap();
    let DimseError::Rejected(rj) = err else { panic!("expected a rejection, got {err:?}") };
    assert_eq!(rj.result, dicom_ul::pdu::AssociationRJResult::Transient);
    assert_eq!(
        rj.source,
        dicom_ul::pdu::AssociationRJSource::ServiceProviderPresentation(
            dicom_ul::pdu::AssociationRJServiceProviderPresentationReason::LocalLimitExceeded
        )
    );
    assert!(started.elapsed() < Duration::from_secs(5), "rejection must not wait for a slot");
    busy.abort().await;
    // The slot comes back, the aborted store was never completed.
    let mut next = None;
    for _ in 0..100 {
        if let Ok(c) = Client::connect(&scp.addr, "C", "VNA", &contexts()).await {
            next = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut next = next.expect("the slot of the aborted association was not freed");
    assert_eq!(next.echo().await.unwrap(), Status::SUCCESS);
    next.release().await.unwrap();
    assert!(scp.handler.stored.lock().unwrap().is_empty());
    assert_eq!(*scp.handler.broken.lock().unwrap(), 1);
}

#[tokio::test]
async fn shutdown_lets_an_in_flight_store_finish() {
    let mut scp = start(4, true).await;
    let mut client = Client::connect_with(&scp.addr, "A", "VNA", &contexts(), ClientOptions::default()).await.unwrap();
    let store = tokio::spawn(async move {
        let rsp = client.store(CT, "1.2.3.5.slow", ELE, &b"abcd"[..]).await;
        (client, rsp)
    });
    // Wait until the store is inside the handler, then begin shutdown and open the gate.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _ = scp.stop.take().unwrap().send(());
    tokio::time::sleep(Duration::from_millis(100)).await;
    // New associations are refused once shutdown began.
    assert!(Client::connect(&scp.addr, "B", "VNA", &contexts()).await.is_err());
    scp.handler.gate.add_permits(1);
    let (_client, rsp) = store.await.unwrap();
    assert_eq!(rsp.unwrap().status, Some(Status::SUCCESS));
    tokio::time::timeout(Duration::from_secs(10), scp.task).await.unwrap().unwrap();
    assert_eq!(scp.handler.stored.lock().unwrap().len(), 1);
}
