//! A search request: the query's syntax, and what its words mean — the concepts they name in
//! any language, the stems they have in each, the filters beside them.
//!
//! Syntax: words, `"a phrase"` (its words in order), `-word` or `-"a phrase"` (studies that
//! have it are left out). Every unit of meaning must match (a concept, or a word that is no
//! stop word): a concept matches by any of its terms in any language, by a narrower concept,
//! or by its words in a report or the metadata; a finding said absent matches too, but ranks
//! far below one said present.

use std::collections::HashSet;

use crate::analyze::{words, Lang, Word};
use crate::concepts::Vocabulary;

/// Most characters a query may have.
pub const MAX_QUERY_CHARS: usize = 1000;
/// Most hits one page may ask for.
pub const MAX_LIMIT: usize = 1000;
/// Farthest a page may start: deeper paging is a crawl, which `vna search` is not for.
pub const MAX_OFFSET: usize = 10_000;

/// What a client asks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchRequest {
    /// The text query (may be empty when a filter is given).
    pub q: String,
    /// Hits per page (1..=[`MAX_LIMIT`]).
    pub limit: usize,
    /// Hits skipped (at most [`MAX_OFFSET`]).
    pub offset: usize,
    /// Only studies with one of these modalities.
    pub modalities: Vec<String>,
    /// Only studies on or after this date (YYYYMMDD).
    pub date_from: Option<u32>,
    /// Only studies on or before this date (YYYYMMDD).
    pub date_to: Option<u32>,
    /// Only this patient's studies.
    pub patient_id: Option<String>,
    /// Only studies of this institution (its name, case and accents ignored).
    pub institution: Option<String>,
}

/// Why a search cannot be answered.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// The request is wrong: the reason is for the client.
    #[error("{0}")]
    BadRequest(String),
    /// The index failed.
    #[error("search index: {0}")]
    Index(#[from] tantivy::TantivyError),
    /// The index directory could not be used.
    #[error("search index: {0}")]
    Io(#[from] std::io::Error),
}

/// One unit of meaning of a query.
#[derive(Debug, Clone, Default)]
pub(crate) struct Unit {
    /// The concepts it names (any of them matches).
    pub concepts: Vec<usize>,
    /// Its words' stems in each language.
    pub stems: [Vec<String>; 3],
    /// Its words folded (names, identifiers).
    pub folded: Vec<String>,
    /// Its words as typed (identifiers match exactly).
    pub typed: Vec<String>,
}

/// A phrase: its stems in each language, with their positions.
#[derive(Debug, Clone, Default)]
pub(crate) struct Phrase {
    pub stems: [Vec<(usize, String)>; 3],
}

/// A query understood.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    pub units: Vec<Unit>,
    pub phrases: Vec<Phrase>,
    pub excluded: Vec<Unit>,
}

impl Plan {
    /// Whether the query has anything to match (else only the filters select).
    pub fn is_empty(&self) -> bool {
        self.units.is_empty() && self.phrases.is_empty()
    }

    /// Every stem to mark in a report of `lang`.
    pub fn stems(&self, lang: Lang) -> HashSet<&str> {
        let l = lang as usize;
        self.units
            .iter()
            .flat_map(|u| u.stems[l].iter().map(String::as_str))
            .chain(self.phrases.iter().flat_map(|p| p.stems[l].iter().map(|(_, s)| s.as_str())))
            .collect()
    }

    /// Every concept the query names.
    pub fn concepts(&self) -> HashSet<usize> {
        self.units.iter().flat_map(|u| u.concepts.iter().copied()).collect()
    }
}

enum Part {
    Words(String),
    Phrase(String),
    Exclude(String),
}

fn split(q: &str) -> Result<Vec<Part>, SearchError> {
    let mut parts = Vec::new();
    let mut free = String::new();
    let mut rest = q.trim();
    while !rest.is_empty() {
        let (negated, body) = match rest.strip_prefix('-') {
            Some(b) if !b.starts_with(char::is_whitespace) && !b.is_empty() => (true, b),
            _ => (false, rest),
        };
        let (text, quoted, after) = if let Some(inner) = body.strip_prefix('"') {
            let Some(end) = inner.find('"') else {
                return Err(SearchError::BadRequest("a quotation mark in q is not closed".into()));
            };
            (&inner[..end], true, &inner[end + 1..])
        } else {
            let end = body.find(char::is_whitespace).unwrap_or(body.len());
            let word = &body[..end];
            if word.contains('"') {
                return Err(SearchError::BadRequest("a quotation mark in q must start or end a phrase".into()));
            }
            (word, false, &body[end..])
        };
        match (negated, quoted) {
            (true, _) => parts.push(Part::Exclude(text.to_owned())),
            (false, true) => parts.push(Part::Phrase(text.to_owned())),
            (false, false) => {
                free.push_str(text);
                free.push(' ');
            }
        }
        rest = after.trim_start();
    }
    if !free.trim().is_empty() {
        parts.insert(0, Part::Words(free));
    }
    Ok(parts)
}

/// Understand a query's text.
pub(crate) fn plan(vocab: &Vocabulary, q: &str) -> Result<Plan, SearchError> {
    if q.chars().count() > MAX_QUERY_CHARS {
        return Err(SearchError::BadRequest(format!("q is longer than {MAX_QUERY_CHARS} characters")));
    }
    if q.contains('\0') {
        return Err(SearchError::BadRequest("q contains a NUL character".into()));
    }
    let mut plan = Plan::default();
    for part in split(q)? {
        match part {
            Part::Words(text) => plan.units.extend(units(vocab, &text)),
            Part::Exclude(text) => plan.excluded.extend(units(vocab, &text)),
            Part::Phrase(text) => {
                let w = words(&text);
                let mut phrase = Phrase::default();
                for lang in Lang::ALL {
                    phrase.stems[lang as usize] =
                        vocab.analyzer().terms(lang, &w).into_iter().filter(|t| !t.part).map(|t| (t.position as usize, t.stem)).collect();
                }
                if phrase.stems.iter().any(|s| !s.is_empty()) {
                    plan.phrases.push(phrase);
                }
            }
        }
    }
    if plan.is_empty() && !plan.excluded.is_empty() {
        return Err(SearchError::BadRequest("q only excludes: say what to search for".into()));
    }
    Ok(plan)
}

/// The units of meaning of free text: the concepts it names (the longest span wins where
/// they overlap, whatever the language), then each remaining word that is a stop word in no
/// language.
fn units(vocab: &Vocabulary, text: &str) -> Vec<Unit> {
    let w = words(text);
    let mut hits = Vec::new();
    for lang in Lang::ALL {
        let terms = vocab.analyzer().terms(lang, &w);
        hits.extend(vocab.find(lang, &w, &terms));
    }
    hits.sort_by_key(|h| (std::cmp::Reverse(h.last - h.first), h.first));
    let mut spans: Vec<(usize, usize, Vec<usize>)> = Vec::new();
    for h in hits {
        if let Some(span) = spans.iter_mut().find(|s| s.0 == h.first && s.1 == h.last) {
            if !span.2.contains(&h.concept) {
                span.2.push(h.concept);
            }
        } else if !spans.iter().any(|s| h.first <= s.1 && s.0 <= h.last) {
            spans.push((h.first, h.last, vec![h.concept]));
        }
    }
    spans.sort_by_key(|s| s.0);
    let mut out = Vec::new();
    let mut i = 0;
    while i < w.len() {
        if let Some(span) = spans.iter().find(|s| s.0 == i) {
            let mut unit = unit_of(vocab, text, &w[span.0..=span.1]);
            unit.concepts = span.2.clone();
            out.push(unit);
            i = span.1 + 1;
            continue;
        }
        let word = &w[i];
        let stop = Lang::ALL.iter().any(|&l| vocab.analyzer().is_stop(l, &word.folded));
        if !stop || word.caps {
            out.push(unit_of(vocab, text, std::slice::from_ref(word)));
        }
        i += 1;
    }
    out
}

fn unit_of(vocab: &Vocabulary, text: &str, words: &[Word]) -> Unit {
    let mut unit = Unit::default();
    for w in words {
        for lang in Lang::ALL {
            let stems = &mut unit.stems[lang as usize];
            if vocab.analyzer().is_stop(lang, &w.folded) && !w.caps {
                continue;
            }
            let stem = vocab.analyzer().stem(lang, &w.folded);
            if !stems.contains(&stem) {
                stems.push(stem);
            }
        }
        unit.folded.push(w.folded.clone());
    }
    unit.typed = words.iter().map(|w| text[w.start..w.end].to_owned()).collect();
    unit
}

#[cfg(test)]
mod tests {
    use super::*;

    fn concepts(v: &Vocabulary, q: &str) -> Vec<Vec<String>> {
        let p = plan(v, q).expect("plan");
        p.units
            .iter()
            .map(|u| {
                if u.concepts.is_empty() {
                    u.folded.clone()
                } else {
                    let mut c: Vec<String> = u.concepts.iter().map(|&c| v.id(c).to_owned()).collect();
                    c.sort();
                    c
                }
            })
            .collect()
    }

    #[test]
    fn queries_become_concepts_in_any_language() {
        let v = Vocabulary::builtin();
        assert_eq!(concepts(&v, "nodule pulmonaire"), [["lung-nodule"]]);
        assert_eq!(concepts(&v, "Lungenrundherd"), [["lung-nodule"]]);
        assert_eq!(concepts(&v, "lung nodule"), [["lung-nodule"]]);
        assert_eq!(concepts(&v, "PE"), [["pulmonary-embolism"]]);
        assert_eq!(concepts(&v, "pe"), [["pe"]], "an abbreviation only in capitals");
        assert_eq!(concepts(&v, "the lung nodule Müller"), vec![vec!["lung-nodule".to_owned()], vec!["muller".to_owned()]]);
    }

    #[test]
    fn bad_syntax_is_refused_with_a_reason() {
        let v = Vocabulary::builtin();
        let bad = |q: &str| match plan(&v, q) {
            Err(SearchError::BadRequest(r)) => r,
            other => panic!("{q:?} must be refused, got {other:?}"),
        };
        assert!(bad("\"lung nodule").contains("not closed"));
        assert!(bad("lung\"nodule").contains("quotation"));
        assert!(bad("-nodule").contains("only excludes"));
        assert!(bad(&"a".repeat(MAX_QUERY_CHARS + 1)).contains("longer"));
        let p = plan(&v, "\"pleural effusion\" -pneumothorax ct").expect("plan");
        assert_eq!((p.units.len(), p.phrases.len(), p.excluded.len()), (1, 1, 1));
    }
}
