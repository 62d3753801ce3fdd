//! `summarize`: the JSON reports of several rounds against two targets (A and B, run
//! alternately by `loadtest/compare.sh`) turned into one table: per scenario, the median
//! over the rounds of each figure for A and for B, and the ratio that says who is better
//! (throughput A/B, latency and memory B/A: above 1 means A is better).

use anyhow::Context;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

/// One figure of a scenario: how to read it and which way is better.
struct Figure {
    name: &'static str,
    pointer: &'static str,
    higher_is_better: bool,
}

const FIGURES: &[Figure] = &[
    Figure { name: "items/s", pointer: "/items_per_s", higher_is_better: true },
    Figure { name: "MB/s", pointer: "/mb_per_s", higher_is_better: true },
    Figure { name: "p50 ms", pointer: "/latency_ms/p50", higher_is_better: false },
    Figure { name: "p95 ms", pointer: "/latency_ms/p95", higher_is_better: false },
    Figure { name: "p99 ms", pointer: "/latency_ms/p99", higher_is_better: false },
    Figure { name: "server peak RSS MB", pointer: "/server/peak_rss_sampled_mb", higher_is_better: false },
    Figure { name: "server CPU s", pointer: "/server/cpu_s", higher_is_better: false },
];

/// Scenario name → figure name → values over the rounds; and problems (errors, mismatches).
#[derive(Default)]
struct Side {
    values: BTreeMap<String, BTreeMap<&'static str, Vec<f64>>>,
    problems: Vec<String>,
}

fn read(files: &[PathBuf]) -> anyhow::Result<Side> {
    let mut side = Side::default();
    for f in files {
        let text = std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
        let report: Value = serde_json::from_str(&text).with_context(|| format!("parsing {}", f.display()))?;
        let Some(scenarios) = report.get("scenarios").and_then(Value::as_object) else { continue };
        for (name, s) in scenarios {
            let (errors, mismatches) = (s["errors"].as_u64().unwrap_or(0), s["mismatches"].as_u64().unwrap_or(0));
            if errors > 0 || mismatches > 0 {
                side.problems.push(format!("{} {name}: {errors} errors, {mismatches} mismatches", f.display()));
            }
            for fig in FIGURES {
                if let Some(v) = s.pointer(fig.pointer).and_then(Value::as_f64) {
                    side.values.entry(name.clone()).or_default().entry(fig.name).or_default().push(v);
                }
            }
        }
    }
    Ok(side)
}

fn median(v: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let m = v.len() / 2;
    Some(if v.len() % 2 == 1 { v[m] } else { (v[m - 1] + v[m]) / 2.0 })
}

fn fmt(v: Option<f64>) -> String {
    match v {
        Some(x) if x >= 100.0 => format!("{x:.0}"),
        Some(x) if x >= 10.0 => format!("{x:.1}"),
        Some(x) => format!("{x:.2}"),
        None => "—".into(),
    }
}

/// The markdown table, with the rounds' ranges, and the problems found.
pub fn summarize(a_name: &str, a: &[PathBuf], b_name: &str, b: &[PathBuf]) -> anyhow::Result<String> {
    let (sa, sb) = (read(a)?, read(b)?);
    let mut out = String::new();
    let _ = writeln!(out, "| scenario | figure | {a_name} (median, range) | {b_name} (median, range) | {a_name} better by |");
    let _ = writeln!(out, "| --- | --- | --- | --- | --- |");
    let range = |v: &[f64]| {
        let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if v.len() > 1 {
            format!(" ({}–{}, n={})", fmt(Some(lo)), fmt(Some(hi)), v.len())
        } else {
            String::new()
        }
    };
    let empty = BTreeMap::new();
    for (scenario, figs) in &sa.values {
        let other = sb.values.get(scenario).unwrap_or(&empty);
        for fig in FIGURES {
            let (Some(va), vb) = (figs.get(fig.name), other.get(fig.name)) else { continue };
            let (ma, mb) = (median(va), vb.and_then(|v| median(v)));
            // Throughput of a scenario that did not run is no figure.
            if ma == Some(0.0) && vb.is_none() {
                continue;
            }
            let ratio = match (ma, mb) {
                (Some(x), Some(y)) if x > 0.0 && y > 0.0 => {
                    let r = if fig.higher_is_better { x / y } else { y / x };
                    format!("{r:.2}×")
                }
                _ => "—".into(),
            };
            let _ = writeln!(
                out,
                "| {scenario} | {} | {}{} | {}{} | {ratio} |",
                fig.name,
                fmt(ma),
                range(va),
                fmt(mb),
                vb.map(|v| range(v)).unwrap_or_default()
            );
        }
    }
    for (side, name) in [(&sa, a_name), (&sb, b_name)] {
        for p in &side.problems {
            let _ = writeln!(out, "\n{name}: {p}");
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_ratios() {
        let dir = tempfile::tempdir().expect("dir");
        let write = |name: &str, ips: f64, p95: f64| {
            let p = dir.path().join(name);
            let v =
                serde_json::json!({"scenarios": {"stow": {"errors": 0, "mismatches": 0, "items_per_s": ips, "latency_ms": {"p95": p95}}}});
            std::fs::write(&p, v.to_string()).expect("write");
            p
        };
        let a = vec![write("a1", 300.0, 10.0), write("a2", 100.0, 30.0), write("a3", 200.0, 20.0)];
        let b = vec![write("b1", 50.0, 100.0), write("b2", 40.0, 80.0), write("b3", 60.0, 90.0)];
        let t = summarize("vna", &a, "orthanc", &b).expect("table");
        assert!(t.contains("| stow | items/s | 200 (100–300, n=3) | 50.0 (40.0–60.0, n=3) | 4.00× |"), "{t}");
        assert!(t.contains("| stow | p95 ms | 20.0 (10.0–30.0, n=3) | 90.0 (80.0–100, n=3) | 4.50× |"), "{t}");
        assert_eq!(median(&[1.0, 2.0, 3.0, 4.0]), Some(2.5));
    }
}
