//! `rendered`: CT-like instances (512×512×16-bit, stored native) stored through STOW-RS, then
//! WADO-RS `/rendered` (JPEG, a random window and viewport, as a viewer scrolling and
//! windowing would ask) and `/thumbnail` (an EPR's study list) requests by C clients. Each
//! answer must be a complete JPEG (SOI … EOI) of type image/jpeg.

use super::{Target, REQUEST_TIMEOUT};
use crate::corpus::{CorpusSpec, PixelSlabs};
use crate::http;
use crate::prng::SplitMix64;
use crate::procmon::Monitor;
use crate::report::ScenarioReport;
use crate::stats::{drive, OpOk};
use anyhow::Context;
use bytes::Bytes;
use std::sync::Arc;

#[derive(Debug, Clone, Copy)]
pub struct RenderedOpts {
    pub corpus: CorpusSpec,
    pub concurrency: usize,
    pub requests: usize,
    /// Every fourth request a `/thumbnail` (PS3.18 §10.4.1.1.4, 2019; not every archive has it).
    pub thumbnails: bool,
}

/// The corpus namespace of this scenario: its own UIDs and patients, so that it never lands on
/// `stow`'s instances (an archive that ignores a re-sent SOP Instance UID would keep them where
/// `stow` put them).
const NAMESPACE: u32 = 90;

pub async fn run(target: &Target, opts: RenderedOpts) -> anyhow::Result<ScenarioReport> {
    let corpus = opts.corpus.namespaced(NAMESPACE);
    let (headers, slabs) = tokio::task::spawn_blocking(move || {
        let headers: Vec<Bytes> = (0..corpus.instances).map(|k| Bytes::from(corpus.instance_header(k))).collect();
        (headers, PixelSlabs::new(&corpus))
    })
    .await?;
    let objects: Vec<Vec<Bytes>> = (0..corpus.instances).map(|k| vec![headers[k].clone(), slabs.for_instance(k)]).collect();
    let body = futures::stream::iter(http::stow_chunks(objects).into_iter().map(Ok::<_, std::io::Error>));
    http::stow(&target.client, &target.base, body, corpus.instances, None).await.context("storing the CT instances")?;

    let urls: Arc<Vec<String>> = Arc::new(
        (0..corpus.instances)
            .map(|k| {
                let (s, se, _) = corpus.locate(k);
                format!(
                    "{}/studies/{}/series/{}/instances/{}",
                    target.base,
                    corpus.study(s).uid,
                    corpus.series_uid(s, se),
                    corpus.instance_uid(k)
                )
            })
            .collect(),
    );
    let (client, seed) = (target.client.clone(), corpus.seed);
    let monitor = Monitor::start(target.server_pid);
    let tally = drive(opts.concurrency, opts.requests, 2, move |i| {
        let opts = opts;
        let (client, urls) = (client.clone(), urls.clone());
        async move {
            let mut rng = SplitMix64::derive(seed, "rendered-pick", i as u64);
            let url = &urls[rng.below(urls.len() as u64) as usize];
            // Three rendered requests for one thumbnail.
            let (kind, url) = if opts.thumbnails && i % 4 == 3 {
                (1, format!("{url}/thumbnail"))
            } else {
                let center = rng.below(400) as i64 - 100;
                let width = 200 + rng.below(1800);
                // PS3.18 §8.3.5.1.4: center, width and the VOI LUT function.
                (0, format!("{url}/rendered?window={center},{width},linear&viewport=512,512&quality=90"))
            };
            let resp = client.get(&url).header("Accept", "image/jpeg").timeout(REQUEST_TIMEOUT).send().await?;
            anyhow::ensure!(resp.status().is_success(), "{} from {url}", resp.status());
            let jpeg_type = resp.headers().get("content-type").is_some_and(|v| v.as_bytes() == b"image/jpeg");
            let body = resp.bytes().await?;
            let ok = jpeg_type && body.starts_with(&[0xFF, 0xD8]) && body.ends_with(&[0xFF, 0xD9]);
            Ok(OpOk { kind, items: 1, bytes: body.len() as u64, verified: u64::from(ok), mismatches: u64::from(!ok) })
        }
    })
    .await;
    let (server, client_cpu) = monitor.finish().await;
    Ok(ScenarioReport::new("rendered", "images", opts.concurrency, &tally, &["rendered", "thumbnail"], server)
        .client_cpu(client_cpu)
        .note("instances", corpus.instances)
        .note("image", "512x512 16-bit MONOCHROME2, stored native")
        .note("verification", "every answer is image/jpeg from SOI to EOI"))
}
