//! `stow`: the CT corpus sent through STOW-RS by C clients, B instances per request.
//! Headers are generated before the clock starts; pixel data are shared slabs, so building a
//! request only strings together reference-counted chunks.

use super::{Target, REQUEST_TIMEOUT};
use crate::corpus::{CorpusSpec, PixelSlabs};
use crate::http;
use crate::procmon::Monitor;
use crate::report::ScenarioReport;
use crate::stats::{drive, OpOk};
use bytes::Bytes;
use std::sync::Arc;

#[derive(Debug, Clone, Copy)]
pub struct StowOpts {
    pub corpus: CorpusSpec,
    pub concurrency: usize,
    pub batch: usize,
}

pub async fn run(target: &Target, opts: StowOpts) -> anyhow::Result<ScenarioReport> {
    let corpus = opts.corpus;
    let (headers, slabs) = tokio::task::spawn_blocking(move || {
        let headers: Vec<Bytes> = (0..corpus.instances).map(|k| Bytes::from(corpus.instance_header(k))).collect();
        (headers, PixelSlabs::new(&corpus))
    })
    .await?;
    let (headers, slabs) = (Arc::new(headers), Arc::new(slabs));
    let batch = opts.batch.max(1);
    let requests = corpus.instances.div_ceil(batch);
    let (client, base) = (target.client.clone(), target.base.clone());
    let monitor = Monitor::start(target.server_pid);
    let tally = drive(opts.concurrency, requests, 1, move |r| {
        let (client, base, headers, slabs) = (client.clone(), base.clone(), headers.clone(), slabs.clone());
        async move {
            let range = r * batch..((r + 1) * batch).min(headers.len());
            let count = range.len();
            let objects: Vec<Vec<Bytes>> = range.map(|k| vec![headers[k].clone(), slabs.for_instance(k)]).collect();
            let bytes: u64 = objects.iter().flatten().map(|b| b.len() as u64).sum();
            let body = futures::stream::iter(http::stow_chunks(objects).into_iter().map(Ok::<_, std::io::Error>));
            http::stow(&client, &base, body, count, Some(REQUEST_TIMEOUT)).await?;
            Ok(OpOk { kind: 0, items: count as u64, bytes, verified: count as u64, mismatches: 0 })
        }
    })
    .await;
    let (server, client_cpu) = monitor.finish().await;
    Ok(ScenarioReport::new("stow", "instances", opts.concurrency, &tally, &["stow"], server)
        .client_cpu(client_cpu)
        .note("batch", batch)
        .note("instances", corpus.instances)
        .note("studies", corpus.studies())
        .note("patients", corpus.patients())
        .note("series_per_study", corpus.series_per_study)
        .note("instances_per_series", corpus.instances_per_series)
        .note("seed", corpus.seed))
}
