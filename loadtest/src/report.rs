//! What a run reports: one [`ScenarioReport`] per scenario (and the machine's limits), printed
//! as a table and written as JSON with the same figures.

use crate::machine::MachineLimits;
use crate::procmon::ServerUsage;
use crate::stats::{Latency, Tally};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Clone, Serialize)]
pub struct ScenarioReport {
    pub scenario: String,
    pub concurrency: usize,
    pub requests: u64,
    pub errors: u64,
    pub error_samples: Vec<String>,
    pub elapsed_s: f64,
    pub requests_per_s: f64,
    /// What `items` counts: instances, queries, frames, objects.
    pub item_unit: String,
    pub items: u64,
    pub items_per_s: f64,
    pub bytes: u64,
    pub mb_per_s: f64,
    pub latency_ms: Latency,
    /// Per operation kind (QIDO query type); empty when there is one kind.
    pub latency_by_kind_ms: BTreeMap<String, Latency>,
    pub verified: u64,
    pub mismatches: u64,
    pub server: Option<ServerUsage>,
    /// CPU seconds the load generator itself spent (it shares the machine with the server).
    pub client_cpu_s: f64,
    /// Scenario-specific facts (sizes, hashes, corpus shape).
    pub notes: serde_json::Map<String, serde_json::Value>,
}

impl ScenarioReport {
    pub fn new(scenario: &str, item_unit: &str, concurrency: usize, tally: &Tally, kinds: &[&str], server: Option<ServerUsage>) -> Self {
        let secs = tally.elapsed.as_secs_f64().max(1e-9);
        let latency_by_kind_ms = if kinds.len() > 1 {
            kinds.iter().zip(&tally.per_kind).map(|(k, h)| ((*k).to_owned(), Latency::of(h))).collect()
        } else {
            BTreeMap::new()
        };
        Self {
            scenario: scenario.to_owned(),
            concurrency,
            requests: tally.ops,
            errors: tally.errors,
            error_samples: tally.error_samples.clone(),
            elapsed_s: secs,
            requests_per_s: tally.ops as f64 / secs,
            item_unit: item_unit.to_owned(),
            items: tally.items,
            items_per_s: tally.items as f64 / secs,
            bytes: tally.bytes,
            mb_per_s: tally.bytes as f64 / 1e6 / secs,
            latency_ms: Latency::of(&tally.overall),
            latency_by_kind_ms,
            verified: tally.verified,
            mismatches: tally.mismatches,
            server,
            client_cpu_s: 0.0,
            notes: serde_json::Map::new(),
        }
    }

    pub fn client_cpu(mut self, seconds: f64) -> Self {
        self.client_cpu_s = seconds;
        self
    }

    pub fn note(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.notes.insert(key.to_owned(), value.into());
        self
    }
}

/// A whole run: context, machine limits (for `all`), and the scenarios in order.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub tool: &'static str,
    pub version: &'static str,
    pub started_unix_s: u64,
    pub target: String,
    pub machine: Option<MachineLimits>,
    pub scenarios: serde_json::Map<String, serde_json::Value>,
    #[serde(skip)]
    pub ordered: Vec<ScenarioReport>,
}

impl Report {
    pub fn new(target: &str) -> Self {
        let started = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        Self {
            tool: "vna-loadtest",
            version: env!("CARGO_PKG_VERSION"),
            started_unix_s: started,
            target: target.to_owned(),
            machine: None,
            scenarios: serde_json::Map::new(),
            ordered: Vec::new(),
        }
    }

    pub fn push(&mut self, s: ScenarioReport) -> anyhow::Result<()> {
        self.scenarios.insert(s.scenario.clone(), serde_json::to_value(&s)?);
        self.ordered.push(s);
        Ok(())
    }

    pub fn total_errors(&self) -> u64 {
        self.ordered.iter().map(|s| s.errors + s.mismatches).sum()
    }

    pub fn write_json(&self, path: &Path) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(self)?;
        std::fs::write(path, text + "\n").map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))
    }

    /// The readable table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        if let Some(m) = &self.machine {
            out.push_str(&m.table());
            out.push('\n');
        }
        out.push_str(&format!(
            "{:<22} {:>5} {:>7} {:>6} {:>16} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>10} {:>8} {:>10}\n",
            "scenario",
            "conc",
            "reqs",
            "errors",
            "throughput",
            "MB/s",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "max ms",
            "verified",
            "srv RSS MB",
            "srv CPU",
            "client CPU"
        ));
        for s in &self.ordered {
            out.push_str(&row(&s.scenario, s, &s.latency_ms));
            for (kind, l) in &s.latency_by_kind_ms {
                out.push_str(&format!(
                    "  {:<20} {:>5} {:>7} {:>6} {:>16} {:>9} {:>9.2} {:>9.2} {:>9.2} {:>9.2}\n",
                    kind, "", l.count, "", "", "", l.p50, l.p95, l.p99, l.max
                ));
            }
        }
        for s in self.ordered.iter().filter(|s| !s.error_samples.is_empty()) {
            out.push_str(&format!("errors in {}:\n", s.scenario));
            for e in &s.error_samples {
                out.push_str(&format!("  {e}\n"));
            }
        }
        out
    }
}

fn row(name: &str, s: &ScenarioReport, l: &Latency) -> String {
    let throughput = format!("{:.1} {}/s", s.items_per_s, short_unit(&s.item_unit));
    let (rss, cpu) = match &s.server {
        Some(u) => (format!("{:.0}", u.peak_rss_sampled_mb), format!("{:.1} s", u.cpu_s)),
        None => ("-".into(), "-".into()),
    };
    let verified = if s.mismatches > 0 { format!("{}/{} BAD", s.verified, s.verified + s.mismatches) } else { s.verified.to_string() };
    format!(
        "{:<22} {:>5} {:>7} {:>6} {:>16} {:>9.1} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9} {:>10} {:>8} {:>10}\n",
        name,
        s.concurrency,
        s.requests,
        s.errors,
        throughput,
        s.mb_per_s,
        l.p50,
        l.p95,
        l.p99,
        l.max,
        verified,
        rss,
        cpu,
        format!("{:.1} s", s.client_cpu_s)
    )
}

fn short_unit(unit: &str) -> &str {
    match unit {
        "instances" => "inst",
        "queries" => "q",
        "frames" => "fr",
        "objects" => "obj",
        other => other,
    }
}
