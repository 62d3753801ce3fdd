//! `qido`: a viewer's QIDO-RS query mix over the stored corpus, round-robin over five query
//! types; every answer's number of matches is checked against what the corpus implies.

use super::{Target, REQUEST_TIMEOUT};
use crate::corpus::{CorpusSpec, Study};
use crate::http;
use crate::prng::SplitMix64;
use crate::procmon::Monitor;
use crate::report::ScenarioReport;
use crate::stats::{drive, OpOk};
use std::collections::HashMap;
use std::sync::Arc;

pub const KINDS: [&str; 5] = ["patient_id", "patient_name_prefix", "study_date_range", "series_of_study", "instances_of_series"];

/// Results the server returns at most without a `limit` (the archive's default
/// `query.default_limit`); expected counts are capped at it.
const DEFAULT_LIMIT: usize = 1000;

#[derive(Debug, Clone, Copy)]
pub struct QidoOpts {
    pub corpus: CorpusSpec,
    pub concurrency: usize,
    pub requests: usize,
    /// `limit` on the three study-level queries, as a viewer's worklist pages them (OHIF asks
    /// for 101 at a time); `None`: the server's default limit.
    pub limit: Option<usize>,
}

/// What the corpus holds, indexed for computing expected answers.
struct Expect {
    corpus: CorpusSpec,
    studies: Vec<Study>,
    by_patient_id: HashMap<String, usize>,
    by_name_prefix: HashMap<String, usize>,
    sorted_dates: Vec<u32>,
}

fn name_prefix(name: &str) -> String {
    name.chars().take(3).collect()
}

impl Expect {
    fn new(corpus: CorpusSpec) -> Self {
        let studies: Vec<Study> = (0..corpus.studies()).map(|s| corpus.study(s)).collect();
        let mut by_patient_id = HashMap::new();
        let mut by_name_prefix = HashMap::new();
        for st in &studies {
            *by_patient_id.entry(st.patient.id.clone()).or_insert(0) += 1;
            *by_name_prefix.entry(name_prefix(&st.patient.name)).or_insert(0) += 1;
        }
        let mut sorted_dates: Vec<u32> = studies.iter().map(|s| s.date).collect();
        sorted_dates.sort_unstable();
        Self { corpus, studies, by_patient_id, by_name_prefix, sorted_dates }
    }

    /// The i-th query: its kind, path and query string below the root, and expected matches.
    fn query(&self, i: usize, limit: Option<usize>) -> (usize, String, usize) {
        let mut g = SplitMix64::derive(self.corpus.seed, "qido", i as u64);
        let s = g.below(self.studies.len() as u64) as usize;
        let study = &self.studies[s];
        let kind = i % KINDS.len();
        let (path, expected) = match kind {
            0 => (format!("/studies?PatientID={}", study.patient.id), self.by_patient_id[&study.patient.id]),
            1 => {
                let prefix = name_prefix(&study.patient.name);
                (format!("/studies?PatientName={prefix}*"), self.by_name_prefix[&prefix])
            }
            2 => {
                // About a quarter of a year starting at the first of this study's month.
                let (year, month) = (study.date / 10_000, study.date / 100 % 100);
                let (end_year, end_month) = if month > 10 { (year + 1, month - 10) } else { (year, month + 2) };
                let (from, to) = (year * 10_000 + month * 100 + 1, end_year * 10_000 + end_month * 100 + 28);
                let n = self.sorted_dates.partition_point(|d| *d <= to) - self.sorted_dates.partition_point(|d| *d < from);
                (format!("/studies?StudyDate={from}-{to}"), n)
            }
            3 => (format!("/studies/{}/series", study.uid), self.corpus.series_in_study(s)),
            _ => {
                let se = g.below(self.corpus.series_in_study(s) as u64) as usize;
                let path = format!("/studies/{}/series/{}/instances", study.uid, self.corpus.series_uid(s, se));
                (path, self.corpus.instances_in_series(s, se))
            }
        };
        match limit {
            Some(n) if kind < 3 => (kind, format!("{path}&limit={n}"), expected.min(n).min(DEFAULT_LIMIT)),
            _ => (kind, path, expected.min(DEFAULT_LIMIT)),
        }
    }
}

pub async fn run(target: &Target, opts: QidoOpts) -> anyhow::Result<ScenarioReport> {
    let corpus = opts.corpus;
    let expect = Arc::new(tokio::task::spawn_blocking(move || Expect::new(corpus)).await?);
    let (client, base) = (target.client.clone(), target.base.clone());
    let monitor = Monitor::start(target.server_pid);
    let tally = drive(opts.concurrency, opts.requests, KINDS.len(), move |i| {
        let (client, base, expect) = (client.clone(), base.clone(), expect.clone());
        async move {
            let (kind, path, expected) = expect.query(i, opts.limit);
            let got = http::qido(&client, &format!("{base}{path}"), REQUEST_TIMEOUT).await?;
            let ok = got == expected;
            Ok(OpOk { kind, items: 1, bytes: 0, verified: u64::from(ok), mismatches: u64::from(!ok) })
        }
    })
    .await;
    let (server, client_cpu) = monitor.finish().await;
    Ok(ScenarioReport::new("qido", "queries", opts.concurrency, &tally, &KINDS, server)
        .client_cpu(client_cpu)
        .note("studies_in_corpus", corpus.studies())
        .note("study_query_limit", opts.limit.map_or("server default".to_owned(), |n| n.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_counts_are_consistent() {
        let corpus = CorpusSpec {
            seed: 3,
            instances: 500,
            series_per_study: 3,
            instances_per_series: 20,
            namespace: 0,
            side: crate::corpus::CT_SIDE,
        };
        let e = Expect::new(corpus);
        for i in 0..50 {
            let (kind, path, expected) = e.query(i, None);
            assert_eq!(kind, i % 5);
            assert!(path.starts_with("/studies"), "{path}");
            assert!(expected >= 1, "query {path} must match at least the study it came from");
            let (_, paged, at_most) = e.query(i, Some(2));
            if kind < 3 {
                assert_eq!((paged, at_most), (format!("{path}&limit=2"), expected.min(2)));
            } else {
                assert_eq!((paged, at_most), (path, expected), "series and instance lists are not paged");
            }
        }
    }
}
