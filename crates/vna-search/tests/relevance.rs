//! The relevance set: a few hundred synthetic studies with reports in French, German and
//! English (`relevance/corpus.rs`), queries across languages, synonyms, lay terms,
//! abbreviations, broader terms and metadata filters, with graded judgments from how each
//! study was generated. Prints nDCG@10, recall@10 and MRR per kind of query for the archive's
//! search and for plain BM25 over the same texts (tantivy's default analysis: lowercase
//! words, no stemming, no concepts, no negation), and holds the targets:
//! nDCG@10 at least twice BM25's on cross-language and synonym queries, and no study that
//! only says the finding is absent in the top 3 of any query.
//!
//! `cargo nextest run -p vna-search --test relevance --no-capture` prints the table.

#[path = "relevance/corpus.rs"]
mod corpus;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use corpus::{generate, grade, negated_only, Kind, Query, Truth, QUERIES};
use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, Occur, QueryParser, RangeQuery, TermQuery};
use tantivy::schema::{IndexRecordOption, NumericOptions, Schema, Value, STORED, STRING, TEXT};
use tantivy::{doc, Index, TantivyDocument, Term};
use vna_search::{SearchIndex, SearchRequest, StudyDoc, Vocabulary};

const STUDIES: usize = 360;
const SEED: u64 = 20261206;
const DEPTH: usize = 100;

/// Plain BM25 over the same texts.
struct Baseline {
    index: Index,
    body: tantivy::schema::Field,
    uid: tantivy::schema::Field,
    modality: tantivy::schema::Field,
    date: tantivy::schema::Field,
}

impl Baseline {
    fn new(docs: &[StudyDoc]) -> Baseline {
        let mut b = Schema::builder();
        let uid = b.add_text_field("uid", STRING | STORED);
        let body = b.add_text_field("body", TEXT);
        let modality = b.add_text_field("modality", STRING);
        let date = b.add_i64_field("date", NumericOptions::default().set_indexed());
        let index = Index::create_in_ram(b.build());
        let mut writer = index.writer_with_num_threads(1, 20_000_000).expect("writer");
        for d in docs {
            let text = std::iter::once(d.study_description.as_str())
                .chain(d.reports.iter().map(|r| r.text.as_str()))
                .collect::<Vec<_>>()
                .join("\n");
            writer
                .add_document(doc!(uid => d.study_uid.clone(), body => text, modality => d.modalities[0].clone(), date => i64::from(d.study_date.unwrap_or(0))))
                .expect("add");
        }
        writer.commit().expect("commit");
        Baseline { index, body, uid, modality, date }
    }

    fn search(&self, q: &Query) -> Vec<String> {
        let parser = QueryParser::for_index(&self.index, vec![self.body]);
        let parsed = parser.parse_query(q.q).expect("baseline query");
        let mut clauses: Vec<(Occur, Box<dyn tantivy::query::Query>)> = vec![(Occur::Must, parsed)];
        if let Some(m) = q.modality {
            clauses.push((Occur::Must, Box::new(TermQuery::new(Term::from_field_text(self.modality, m), IndexRecordOption::Basic))));
        }
        if let Some((from, to)) = q.dates {
            let t = |d: u32| std::ops::Bound::Included(Term::from_field_i64(self.date, i64::from(d)));
            clauses.push((Occur::Must, Box::new(RangeQuery::new(t(from), t(to)))));
        }
        let reader = self.index.reader().expect("reader");
        let searcher = reader.searcher();
        let top = searcher.search(&BooleanQuery::new(clauses), &TopDocs::with_limit(DEPTH).order_by_score()).expect("search");
        top.into_iter()
            .map(|(_, a)| {
                let d: TantivyDocument = searcher.doc(a).expect("doc");
                d.get_first(self.uid).and_then(|v| v.as_str()).unwrap_or_default().to_owned()
            })
            .collect()
    }
}

#[derive(Default, Clone, Copy)]
struct Scores {
    ndcg: f64,
    recall: f64,
    mrr: f64,
    negated_in_top3: usize,
}

fn score(ranked: &[String], q: &Query, truths: &HashMap<&str, &Truth>) -> Scores {
    let gain = |g: u32| f64::from((1u32 << g) - 1);
    let grades: Vec<u32> = ranked.iter().map(|uid| truths.get(uid.as_str()).map_or(0, |t| grade(q, t))).collect();
    let dcg: f64 = grades.iter().take(10).enumerate().map(|(i, &g)| gain(g) / ((i + 2) as f64).log2()).sum();
    let mut ideal: Vec<u32> = truths.values().map(|t| grade(q, t)).filter(|&g| g > 0).collect();
    ideal.sort_unstable_by(|a, b| b.cmp(a));
    let idcg: f64 = ideal.iter().take(10).enumerate().map(|(i, &g)| gain(g) / ((i + 2) as f64).log2()).sum();
    let relevant = truths.values().filter(|t| grade(q, t) >= 2).count();
    let found = grades.iter().take(10).filter(|&&g| g >= 2).count();
    let first = grades.iter().position(|&g| g >= 2);
    let negated_in_top3 = ranked.iter().take(3).filter(|uid| truths.get(String::as_str(uid)).is_some_and(|t| negated_only(q, t))).count();
    Scores {
        ndcg: if idcg > 0.0 { dcg / idcg } else { 0.0 },
        recall: if relevant > 0 { found as f64 / relevant.min(10) as f64 } else { 0.0 },
        mrr: first.map_or(0.0, |p| 1.0 / (p + 1) as f64),
        negated_in_top3,
    }
}

#[test]
fn the_archive_beats_plain_bm25_across_languages_and_synonyms_and_keeps_negated_findings_out_of_the_top() {
    let (docs, truths) = generate(STUDIES, SEED);
    let by_uid: HashMap<&str, &Truth> = truths.iter().map(|t| (t.uid.as_str(), t)).collect();
    let index = SearchIndex::in_memory(Arc::new(Vocabulary::builtin())).expect("index");
    for d in &docs {
        index.upsert(d).expect("upsert");
    }
    index.commit(1).expect("commit");
    let baseline = Baseline::new(&docs);

    let mut per_kind: BTreeMap<Kind, Vec<(Scores, Scores)>> = BTreeMap::new();
    let mut negated_queries = Vec::new();
    for q in QUERIES {
        let req = SearchRequest {
            q: q.q.into(),
            limit: DEPTH,
            modalities: q.modality.map(|m| vec![m.to_owned()]).unwrap_or_default(),
            date_from: q.dates.map(|d| d.0),
            date_to: q.dates.map(|d| d.1),
            ..SearchRequest::default()
        };
        let ours: Vec<String> = index.search(&req, None).expect("search").hits.into_iter().map(|h| h.study_instance_uid).collect();
        let theirs = baseline.search(q);
        let (a, b) = (score(&ours, q, &by_uid), score(&theirs, q, &by_uid));
        if a.negated_in_top3 > 0 {
            negated_queries.push(q.q);
        }
        per_kind.entry(q.kind).or_default().push((a, b));
    }

    println!("\nrelevance set: {STUDIES} studies (en/fr/de), {} queries, seed {SEED}", QUERIES.len());
    println!(
        "{:<14} {:>3} | {:>8} {:>8} {:>6} | {:>8} {:>8} | {:>6} {:>6} | {:>5} {:>5}",
        "kind", "n", "nDCG@10", "BM25", "ratio", "R@10", "BM25", "MRR", "BM25", "neg3", "BM25"
    );
    let mean = |v: &[(Scores, Scores)], f: &dyn Fn(&(Scores, Scores)) -> f64| v.iter().map(f).sum::<f64>() / v.len() as f64;
    let mut ratios = HashMap::new();
    let mut all = Vec::new();
    for (kind, v) in &per_kind {
        let (na, nb) = (mean(v, &|s| s.0.ndcg), mean(v, &|s| s.1.ndcg));
        ratios.insert(*kind, (na, nb));
        println!(
            "{:<14} {:>3} | {:>8.3} {:>8.3} {:>6.2} | {:>8.3} {:>8.3} | {:>6.3} {:>6.3} | {:>5} {:>5}",
            format!("{kind:?}"),
            v.len(),
            na,
            nb,
            if nb > 0.0 { na / nb } else { f64::INFINITY },
            mean(v, &|s| s.0.recall),
            mean(v, &|s| s.1.recall),
            mean(v, &|s| s.0.mrr),
            mean(v, &|s| s.1.mrr),
            v.iter().map(|s| s.0.negated_in_top3).sum::<usize>(),
            v.iter().map(|s| s.1.negated_in_top3).sum::<usize>(),
        );
        all.extend(v.iter().copied());
    }
    println!(
        "{:<14} {:>3} | {:>8.3} {:>8.3} {:>6.2} | {:>8.3} {:>8.3} | {:>6.3} {:>6.3} |",
        "all",
        all.len(),
        mean(&all, &|s| s.0.ndcg),
        mean(&all, &|s| s.1.ndcg),
        mean(&all, &|s| s.0.ndcg) / mean(&all, &|s| s.1.ndcg),
        mean(&all, &|s| s.0.recall),
        mean(&all, &|s| s.1.recall),
        mean(&all, &|s| s.0.mrr),
        mean(&all, &|s| s.1.mrr),
    );
    println!("neg3: studies that only say the finding is absent, in the top 3 (summed over queries)");
    let detected =
        docs.iter().zip(&truths).filter(|(d, t)| vna_search::detect(&d.reports[0].text).map(|l| l.code()) == Some(t.lang)).count();
    println!("language detected right: {detected} of {} reports", docs.len());

    for kind in [Kind::CrossLanguage, Kind::Synonym] {
        let (ours, theirs) = ratios[&kind];
        assert!(ours >= 2.0 * theirs, "{kind:?}: nDCG@10 {ours:.3} is not twice BM25's {theirs:.3}");
    }
    assert!(negated_queries.is_empty(), "a study that only says the finding is absent is in the top 3 of {negated_queries:?}");
}
