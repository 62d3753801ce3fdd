//! The search index at scale: index N synthetic studies (the relevance set's generator: reports
//! in French, German and English) into an index on disk, committing every `--commit-every`
//! studies as the archive's indexer does per batch, then time the relevance set's queries
//! against it. Prints studies/s, index size, peak memory and query latency percentiles.
//!
//! `cargo run --release -p vna-search --example search_bench -- --studies 1000000 --dir DIR`
//! (`loadtest/search-scale.sh` runs it and keeps the output).

#[path = "../tests/relevance/corpus.rs"]
#[allow(dead_code)]
mod corpus;

use std::sync::Arc;
use std::time::{Duration, Instant};

use vna_search::{SearchIndex, SearchRequest, Vocabulary};

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn peak_rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .unwrap_or(0)
        / 1024
}

fn dir_size(path: &std::path::Path) -> u64 {
    std::fs::read_dir(path)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| {
                    let p = e.path();
                    if p.is_dir() {
                        dir_size(&p)
                    } else {
                        e.metadata().map(|m| m.len()).unwrap_or(0)
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let studies = arg("--studies", 100_000);
    let commit_every = arg("--commit-every", 1000).max(1);
    let rounds = arg("--rounds", 20);
    let args: Vec<String> = std::env::args().collect();
    let dir = args.iter().position(|a| a == "--dir").and_then(|i| args.get(i + 1)).ok_or("--dir DIR is required")?;
    let dir = std::path::PathBuf::from(dir);
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    let index = SearchIndex::open(&dir, Arc::new(Vocabulary::builtin()))?;

    let started = Instant::now();
    let mut done = 0u64;
    let mut chunk = 0u64;
    let mut position = 0i64;
    let mut last_report = Instant::now();
    while done < studies {
        let n = (studies - done).min(commit_every) as usize;
        let (docs, _) = corpus::generate(n, 7_000_000 + chunk);
        for (i, mut doc) in docs.into_iter().enumerate() {
            doc.study_uid = format!("1.2.826.0.1.3680043.10.543.9.{}", done + i as u64 + 1);
            // Two tenants: odd rounds search as a reader of one of them.
            doc.tenant = if i % 2 == 0 { "default".into() } else { "other/radiology".into() };
            index.upsert(&doc)?;
        }
        done += n as u64;
        chunk += 1;
        position += n as i64;
        index.commit(position)?;
        if last_report.elapsed() > Duration::from_secs(30) {
            eprintln!("  {done} studies, {:.0}/s", done as f64 / started.elapsed().as_secs_f64());
            last_report = Instant::now();
        }
    }
    let index_secs = started.elapsed().as_secs_f64();
    println!("indexed {studies} studies in {index_secs:.1} s: {:.0} studies/s (commit every {commit_every})", studies as f64 / index_secs);
    println!("index size: {:.1} MiB ({:.0} bytes/study)", dir_size(&dir) as f64 / 1048576.0, dir_size(&dir) as f64 / studies as f64);

    let mut latencies = Vec::new();
    let mut totals = Vec::new();
    let default_tenant = ["default".to_owned()];
    for round in 0..rounds {
        for q in corpus::QUERIES {
            let req = SearchRequest {
                q: q.q.into(),
                limit: 10,
                offset: if round % 4 == 3 { 10 } else { 0 },
                modalities: q.modality.map(|m| vec![m.to_owned()]).unwrap_or_default(),
                date_from: q.dates.map(|d| d.0),
                date_to: q.dates.map(|d| d.1),
                ..SearchRequest::default()
            };
            let t = Instant::now();
            let found = index.search(&req, if round % 2 == 0 { None } else { Some(&default_tenant[..]) })?;
            latencies.push(t.elapsed());
            if round == 0 {
                totals.push(found.total);
            }
        }
    }
    latencies.sort();
    println!(
        "queries: {} ({} rounds of {}), latency ms p50 {:.1} p95 {:.1} p99 {:.1} max {:.1}; matches per query median {}",
        latencies.len(),
        rounds,
        corpus::QUERIES.len(),
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.95),
        percentile(&latencies, 0.99),
        percentile(&latencies, 1.0),
        {
            totals.sort_unstable();
            totals.get(totals.len() / 2).copied().unwrap_or(0)
        }
    );
    println!("peak memory (VmHWM): {} MiB", peak_rss_mib());
    Ok(())
}
