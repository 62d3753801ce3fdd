//! The S3 store's own rates through this backend alone (no archive): N objects of SIZE bytes
//! stored by C concurrent writers into a fresh Object Lock bucket of the test server
//! (`VNA_TEST_S3_*`), then N ranged GETs of 16 KiB at random places in them by C readers (a
//! viewer's tile reads). What the archive's ingest and frame retrieval on S3 can at best
//! approach.
//!
//!     cargo run --release -p vna-blob-s3 --example put_rate -- 2000 524288 4

use std::sync::Arc;
use std::time::Instant;
use vna_blob::BlobStore;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>().expect("numbers: COUNT SIZE CONCURRENCY"));
    let (count, size, conc) = (args.next().unwrap_or(2000), args.next().unwrap_or(512 << 10), args.next().unwrap_or(4));
    let Some(s3) = vna_blob_s3::testing::TestS3::from_env() else { return };
    let bucket = s3.new_bucket().await;
    let mut settings = s3.settings(&bucket);
    settings.part_size = 16 << 20;
    let store = Arc::new(vna_blob_s3::S3BlobStore::new(settings).await.expect("store"));
    let data = bytes::Bytes::from((0..size).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    let sha = vna_blob::conformance::sha256_hex(&data);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..conc {
        let (store, data, sha, next) = (store.clone(), data.clone(), sha.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut keys = Vec::new();
            while next.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < count {
                let t = Instant::now();
                let mut w = store.create().await.expect("create");
                w.write(data.clone()).await.expect("write");
                keys.push(w.commit(&sha).await.expect("commit"));
                lat.push(t.elapsed().as_secs_f64() * 1e3);
            }
            (lat, keys)
        }));
    }
    let mut lat: Vec<f64> = Vec::new();
    let mut keys = Vec::new();
    for t in tasks {
        let (l, k) = t.await.expect("task");
        lat.extend(l);
        keys.extend(k);
    }
    let secs = started.elapsed().as_secs_f64();
    let (p50, p95, p99) = percentiles(&mut lat);
    println!(
        "{count} PUTs of {size} bytes, {conc} at once: {:.1} objects/s, {:.1} MB/s; p50 {p50:.1} ms, p95 {p95:.1} ms, p99 {p99:.1} ms",
        count as f64 / secs,
        (count * size) as f64 / secs / 1e6
    );

    const TILE: u64 = 16 << 10;
    let keys = Arc::new(keys);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for reader in 0..conc {
        let (store, keys, next) = (store.clone(), keys.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ reader as u64;
            while next.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < count {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let blob = &keys[(x % keys.len() as u64) as usize];
                let offset = (x >> 20) % (size as u64 - TILE);
                let t = Instant::now();
                let got = vna_blob::read_all(store.as_ref(), blob.into(), Some(vna_blob::Range { offset, length: TILE }))
                    .await
                    .expect("ranged read");
                assert_eq!(got.len() as u64, TILE);
                lat.push(t.elapsed().as_secs_f64() * 1e3);
            }
            lat
        }));
    }
    let mut lat: Vec<f64> = Vec::new();
    for t in tasks {
        lat.extend(t.await.expect("task"));
    }
    let secs = started.elapsed().as_secs_f64();
    let (p50, p95, p99) = percentiles(&mut lat);
    println!(
        "{count} ranged GETs of {TILE} bytes, {conc} at once: {:.1} reads/s; p50 {p50:.1} ms, p95 {p95:.1} ms, p99 {p99:.1} ms",
        count as f64 / secs
    );
}

fn percentiles(lat: &mut [f64]) -> (f64, f64, f64) {
    lat.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    (pct(0.5), pct(0.95), pct(0.99))
}
