//! `frames`: one large slide-like instance of JPEG-like tiles stored through STOW-RS, then
//! frames fetched at random by C clients (a viewer panning), every returned tile compared
//! byte for byte with what was stored.

use super::{Target, REQUEST_TIMEOUT};
use crate::http;
use crate::objects::{slide_object, slide_tiles};
use crate::prng::SplitMix64;
use crate::procmon::Monitor;
use crate::report::ScenarioReport;
use crate::stats::{drive, OpOk};
use anyhow::Context;
use bytes::Bytes;
use std::sync::Arc;
use std::time::Instant;

/// Frames as stored, in whatever media type the archive keeps them (PS3.18 §8.7.3.5.2).
const FRAME_ACCEPT: &str = "multipart/related; type=\"application/octet-stream\"; transfer-syntax=*";

#[derive(Debug, Clone, Copy)]
pub struct FramesOpts {
    pub seed: u64,
    pub slide_frames: usize,
    pub frame_bytes: usize,
    pub concurrency: usize,
    pub requests: usize,
}

pub async fn run(target: &Target, opts: FramesOpts) -> anyhow::Result<ScenarioReport> {
    let (seed, count, mean) = (opts.seed, opts.slide_frames.max(1), opts.frame_bytes);
    let (tiles, uids, object) = tokio::task::spawn_blocking(move || {
        let tiles = slide_tiles(seed, count, mean);
        let (uids, object) = slide_object(seed, &tiles);
        (tiles, uids, object)
    })
    .await?;
    let object_bytes = object.len();
    let stored_at = Instant::now();
    let body = futures::stream::iter(http::stow_chunks(vec![vec![Bytes::from(object)]]).into_iter().map(Ok::<_, std::io::Error>));
    http::stow(&target.client, &target.base, body, 1, None).await.context("storing the slide")?;
    let store_s = stored_at.elapsed().as_secs_f64();

    let tiles = Arc::new(tiles);
    let instance_url = format!("{}{}", target.base, uids.path());
    let client = target.client.clone();
    let monitor = Monitor::start(target.server_pid);
    let tally = drive(opts.concurrency, opts.requests, 1, move |i| {
        let (client, tiles, instance_url) = (client.clone(), tiles.clone(), instance_url.clone());
        async move {
            let n = SplitMix64::derive(seed, "frame-pick", i as u64).below(tiles.len() as u64) as usize;
            let mut got = Vec::with_capacity(tiles[n].len());
            let url = format!("{instance_url}/frames/{}", n + 1);
            let parts =
                http::get_multipart(&client, &url, FRAME_ACCEPT, Some(REQUEST_TIMEOUT), |_, chunk| got.extend_from_slice(chunk)).await?;
            let same = parts == 1 && got == tiles[n];
            Ok(OpOk { kind: 0, items: 1, bytes: got.len() as u64, verified: u64::from(same), mismatches: u64::from(!same) })
        }
    })
    .await;
    let (server, client_cpu) = monitor.finish().await;
    Ok(ScenarioReport::new("frames", "frames", opts.concurrency, &tally, &["frame"], server)
        .client_cpu(client_cpu)
        .note("slide_frames", count)
        .note("slide_bytes", object_bytes)
        .note("slide_store_s", store_s)
        .note("verification", "every returned frame compared with the stored tile"))
}
