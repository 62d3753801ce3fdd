//! `cstore`: the CT corpus of `stow` sent through DIMSE C-STORE over K parallel associations,
//! each association sending its contiguous share of the instances one after the other (as a
//! modality or a PACS forwarding a study does). Each C-STORE is timed from its request to its
//! response; any status but Success counts as an error. Afterwards every series is counted
//! through QIDO-RS to check that every instance is there.

use super::{Target, REQUEST_TIMEOUT};
use crate::corpus::{CorpusSpec, PixelSlabs, CT_IMAGE_STORAGE, EXPLICIT_VR_LE};
use crate::dimse::{check_store, dataset_offset, DimseTarget};
use crate::http;
use crate::procmon::Monitor;
use crate::report::ScenarioReport;
use crate::stats::{OpOk, Tally};
use anyhow::Context;
use bytes::Bytes;
use std::io::Cursor;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use vna_dimse::ProposedContext;

/// Bound on every read and write of an association (a 0.5 MB store answers in milliseconds).
const IO_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, Clone)]
pub struct CstoreOpts {
    /// Row name in the report (`cstore`, or `cstore_k4` when `all` runs several K).
    pub name: String,
    /// Same shape as `stow`'s; give it a namespace when `stow` stored the plain corpus already.
    pub corpus: CorpusSpec,
    pub associations: usize,
    /// C-STOREs each association sends before waiting for a response, when the archive
    /// agrees (PS3.7 §D.3.3.3 Asynchronous Operations Window); 1: one at a time.
    pub window: u16,
}

/// One association's share: instances `range`, sent in order.
async fn association(
    dimse: DimseTarget,
    range: std::ops::Range<usize>,
    corpus: CorpusSpec,
    datasets: Arc<Vec<Bytes>>,
    slabs: Arc<PixelSlabs>,
    window: u16,
) -> (Tally, Duration) {
    let mut tally = Tally::new(1);
    let t = Instant::now();
    let contexts = [ProposedContext::new(CT_IMAGE_STORAGE, &[EXPLICIT_VR_LE])];
    let mut client = match dimse.connect_with_window(&contexts, IO_TIMEOUT, window).await {
        Ok(c) => c,
        Err(e) => {
            // Every instance of this share is lost: count each, keep one message.
            for _ in range {
                tally.record(Duration::ZERO, Err(anyhow::anyhow!("{e:#}")));
            }
            return (tally, t.elapsed());
        }
    };
    let setup = t.elapsed();
    if client.window() > 1 {
        let broken = pipelined(&mut client, range, corpus, &datasets, &slabs, &mut tally).await;
        if broken.is_none() {
            if let Err(e) = client.release().await {
                tally.record(Duration::ZERO, Err(anyhow::Error::new(e).context("A-RELEASE")));
            }
        }
        return (tally, setup);
    }
    let mut broken = None;
    for k in range {
        if let Some(why) = &broken {
            tally.record(Duration::ZERO, Err(anyhow::anyhow!("not sent: the association failed earlier: {why}")));
            continue;
        }
        let (head, pixels) = (datasets[k].clone(), slabs.for_instance(k));
        let bytes = (head.len() + pixels.len()) as u64;
        let uid = corpus.instance_uid(k);
        let t = Instant::now();
        let outcome = match client.store(CT_IMAGE_STORAGE, &uid, EXPLICIT_VR_LE, Cursor::new(head).chain(Cursor::new(pixels))).await {
            Ok(rsp) => check_store(&rsp, &uid).map(|()| OpOk { kind: 0, items: 1, bytes, verified: 0, mismatches: 0 }),
            Err(e) => {
                // A protocol or network failure leaves the association unusable.
                broken = Some(format!("{e}"));
                Err(anyhow::Error::new(e).context("C-STORE"))
            }
        };
        tally.record(t.elapsed(), outcome);
    }
    if broken.is_none() {
        if let Err(e) = client.release().await {
            tally.record(Duration::ZERO, Err(anyhow::Error::new(e).context("A-RELEASE")));
        }
    }
    (tally, setup)
}

/// One association's share with up to `client.window()` C-STOREs outstanding: each is timed
/// from its request to its response, which may come in any order. Returns why the association
/// broke, if it did.
async fn pipelined(
    client: &mut vna_dimse::Client,
    range: std::ops::Range<usize>,
    corpus: CorpusSpec,
    datasets: &[Bytes],
    slabs: &PixelSlabs,
    tally: &mut Tally,
) -> Option<String> {
    let window = usize::from(client.window());
    let mut in_flight: std::collections::HashMap<u16, (String, u64, Instant)> = std::collections::HashMap::new();
    let mut todo = range;
    loop {
        // Keep the window full, then take one response.
        while in_flight.len() < window {
            let Some(k) = todo.next() else { break };
            let (head, pixels) = (datasets[k].clone(), slabs.for_instance(k));
            let bytes = (head.len() + pixels.len()) as u64;
            let uid = corpus.instance_uid(k);
            let t = Instant::now();
            match client.send_store(CT_IMAGE_STORAGE, &uid, EXPLICIT_VR_LE, Cursor::new(head).chain(Cursor::new(pixels))).await {
                Ok(id) => {
                    in_flight.insert(id, (uid, bytes, t));
                }
                Err(e) => return Some(lost(tally, &e, in_flight.len() + 1 + todo.len())),
            }
        }
        if in_flight.is_empty() {
            return None;
        }
        let rsp = match client.store_response().await {
            Ok(rsp) => rsp,
            Err(e) => return Some(lost(tally, &e, in_flight.len() + todo.len())),
        };
        let Some((uid, bytes, t)) = rsp.message_id_being_responded_to.and_then(|id| in_flight.remove(&id)) else {
            tally.record(Duration::ZERO, Err(anyhow::anyhow!("a C-STORE-RSP answering no outstanding request")));
            continue;
        };
        let outcome = check_store(&rsp, &uid).map(|()| OpOk { kind: 0, items: 1, bytes, verified: 0, mismatches: 0 });
        tally.record(t.elapsed(), outcome);
    }
}

/// Counts `n` stores lost with the association; returns why.
fn lost(tally: &mut Tally, e: &vna_dimse::DimseError, n: usize) -> String {
    for _ in 0..n {
        tally.record(Duration::ZERO, Err(anyhow::anyhow!("C-STORE: the association failed: {e}")));
    }
    e.to_string()
}

pub async fn run(target: &Target, dimse: &DimseTarget, opts: &CstoreOpts) -> anyhow::Result<ScenarioReport> {
    let corpus = opts.corpus;
    // The data sets without preamble and meta (C-STORE carries those in the command), built
    // before the clock starts; pixel data are the shared slabs, as for `stow`.
    let (datasets, slabs) = tokio::task::spawn_blocking(move || {
        let datasets = (0..corpus.instances)
            .map(|k| {
                let part10 = corpus.instance_header(k);
                let off = dataset_offset(&part10)?;
                Ok(Bytes::from(part10).slice(off..))
            })
            .collect::<anyhow::Result<Vec<Bytes>>>()?;
        Ok::<_, anyhow::Error>((datasets, PixelSlabs::new(&corpus)))
    })
    .await??;
    let (datasets, slabs) = (Arc::new(datasets), Arc::new(slabs));
    let k = opts.associations.clamp(1, corpus.instances.max(1));
    let share = corpus.instances.div_ceil(k);

    let monitor = Monitor::start(target.server_pid);
    let started = Instant::now();
    let tasks: Vec<_> = (0..k)
        .map(|a| {
            let range = (a * share).min(corpus.instances)..((a + 1) * share).min(corpus.instances);
            tokio::spawn(association(dimse.clone(), range, corpus, datasets.clone(), slabs.clone(), opts.window))
        })
        .collect();
    let mut tally = Tally::new(1);
    let mut setup_max = Duration::ZERO;
    for task in tasks {
        match task.await {
            Ok((t, setup)) => {
                tally.merge(t);
                setup_max = setup_max.max(setup);
            }
            Err(e) => tally.record(Duration::ZERO, Err(anyhow::anyhow!("association task failed: {e}"))),
        }
    }
    tally.elapsed = started.elapsed();
    let (server, client_cpu) = monitor.finish().await;

    let (verified, missing) = verify(target, corpus, &mut tally).await;
    tally.verified += verified;
    tally.mismatches += missing;
    Ok(ScenarioReport::new(&opts.name, "instances", k, &tally, &["c-store"], server)
        .client_cpu(client_cpu)
        .note("protocol", "DIMSE C-STORE, Explicit VR Little Endian")
        .note("associations", k)
        .note("window", opts.window)
        .note("instances", corpus.instances)
        .note("association_setup_max_ms", setup_max.as_secs_f64() * 1e3)
        .note("bytes_counted", "data set bytes (no preamble or meta group)")
        .note("verification", "QIDO-RS instance count of every series")
        .note("corpus_namespace", corpus.namespace)
        .note("seed", corpus.seed))
}

/// Counts every series' instances through QIDO-RS: (instances found, instances missing or
/// extra). A failed query counts its series as missing and keeps its message as an error sample.
async fn verify(target: &Target, corpus: CorpusSpec, tally: &mut Tally) -> (u64, u64) {
    let (mut found, mut off) = (0u64, 0u64);
    for s in 0..corpus.studies() {
        let study = corpus.study(s).uid;
        for se in 0..corpus.series_in_study(s) {
            let expected = corpus.instances_in_series(s, se);
            let url = format!("{}/studies/{study}/series/{}/instances", target.base, corpus.series_uid(s, se));
            match http::qido(&target.client, &url, REQUEST_TIMEOUT).await.context("QIDO-RS check after C-STORE") {
                Ok(got) => {
                    found += got.min(expected) as u64;
                    off += got.abs_diff(expected) as u64;
                }
                Err(e) => {
                    off += expected as u64;
                    if tally.error_samples.len() < 5 {
                        tally.error_samples.push(format!("{e:#}"));
                    }
                }
            }
        }
    }
    (found, off)
}
