//! Running N operations with C concurrent clients and tallying latencies (HDR histograms,
//! microsecond resolution), throughput, errors and verification counts.

use hdrhistogram::Histogram;
use serde::Serialize;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Error messages kept per scenario (the count is always complete).
const ERROR_SAMPLES: usize = 5;

/// What one successful operation did.
#[derive(Debug, Default, Clone, Copy)]
pub struct OpOk {
    /// Index into the scenario's operation kinds (e.g. the QIDO query type).
    pub kind: usize,
    /// Instances stored, frames fetched, queries answered…
    pub items: u64,
    /// Payload bytes moved.
    pub bytes: u64,
    /// Results checked against what was expected and found equal.
    pub verified: u64,
    /// Results checked and found different (wrong bytes, wrong number of matches).
    pub mismatches: u64,
}

/// Latency summary in milliseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Latency {
    pub count: u64,
    pub mean: f64,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

impl Latency {
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Self {
            count: h.len(),
            mean: h.mean() / 1000.0,
            p50: ms(h.value_at_quantile(0.50)),
            p95: ms(h.value_at_quantile(0.95)),
            p99: ms(h.value_at_quantile(0.99)),
            max: ms(h.max()),
        }
    }
}

pub fn histogram() -> Histogram<u64> {
    // 1 µs to 1 hour at 3 significant digits; values above are clamped.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("constant, valid histogram bounds")
}

/// Everything measured over one scenario run.
pub struct Tally {
    pub overall: Histogram<u64>,
    pub per_kind: Vec<Histogram<u64>>,
    pub ops: u64,
    pub items: u64,
    pub bytes: u64,
    pub verified: u64,
    pub mismatches: u64,
    pub errors: u64,
    pub error_samples: Vec<String>,
    pub elapsed: Duration,
}

impl Tally {
    pub fn new(kinds: usize) -> Self {
        Self {
            overall: histogram(),
            per_kind: (0..kinds.max(1)).map(|_| histogram()).collect(),
            ops: 0,
            items: 0,
            bytes: 0,
            verified: 0,
            mismatches: 0,
            errors: 0,
            error_samples: Vec::new(),
            elapsed: Duration::ZERO,
        }
    }

    pub fn record(&mut self, latency: Duration, outcome: anyhow::Result<OpOk>) {
        self.ops += 1;
        match outcome {
            Ok(ok) => {
                let us = (latency.as_micros() as u64).clamp(1, 3_600_000_000);
                self.overall.saturating_record(us);
                if let Some(h) = self.per_kind.get_mut(ok.kind) {
                    h.saturating_record(us);
                }
                self.items += ok.items;
                self.bytes += ok.bytes;
                self.verified += ok.verified;
                self.mismatches += ok.mismatches;
            }
            Err(e) => {
                self.errors += 1;
                if self.error_samples.len() < ERROR_SAMPLES {
                    self.error_samples.push(format!("{e:#}"));
                }
            }
        }
    }

    pub fn merge(&mut self, other: Tally) {
        // Same bounds on both sides: adding cannot fail.
        let _ = self.overall.add(&other.overall);
        for (a, b) in self.per_kind.iter_mut().zip(&other.per_kind) {
            let _ = a.add(b);
        }
        self.ops += other.ops;
        self.items += other.items;
        self.bytes += other.bytes;
        self.verified += other.verified;
        self.mismatches += other.mismatches;
        self.errors += other.errors;
        for e in other.error_samples {
            if self.error_samples.len() < ERROR_SAMPLES {
                self.error_samples.push(e);
            }
        }
    }
}

/// Runs operations `0..total` with `concurrency` workers, each taking the next index until
/// none is left; `op(i)` is timed from its call to its completion.
pub async fn drive<F, Fut>(concurrency: usize, total: usize, kinds: usize, op: F) -> Tally
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<OpOk>> + Send + 'static,
{
    let op = Arc::new(op);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency.max(1))
        .map(|_| {
            let op = op.clone();
            let next = next.clone();
            tokio::spawn(async move {
                let mut tally = Tally::new(kinds);
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        break;
                    }
                    let t = Instant::now();
                    let outcome = op(i).await;
                    tally.record(t.elapsed(), outcome);
                }
                tally
            })
        })
        .collect();
    let mut total_tally = Tally::new(kinds);
    for w in workers {
        match w.await {
            Ok(t) => total_tally.merge(t),
            Err(e) => total_tally.record(Duration::ZERO, Err(anyhow::anyhow!("worker task failed: {e}"))),
        }
    }
    total_tally.elapsed = started.elapsed();
    total_tally
}
