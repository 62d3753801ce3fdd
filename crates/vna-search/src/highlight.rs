//! Highlights: snippets of a hit's reports around the words that matched the query — its
//! stems, and the terms of the concepts it names or of narrower ones — HTML-escaped, the
//! matched words in `<em>`.

use std::collections::{BTreeSet, HashSet};

use crate::analyze::{words, Lang};
use crate::concepts::Vocabulary;
use crate::document::{Report, FALLBACK_LANG};
use crate::query::Plan;

/// Most snippets per hit.
pub const MAX_SNIPPETS: usize = 3;
/// Context kept on each side of the matched words, in bytes (cut at a word boundary).
const CONTEXT: usize = 60;

pub(crate) fn highlights(vocab: &Vocabulary, plan: &Plan, concepts: &HashSet<usize>, reports: &[Report]) -> Vec<String> {
    let mut out = Vec::new();
    for report in reports {
        let lang: Lang = report.lang.unwrap_or(FALLBACK_LANG);
        let w = words(&report.text);
        let terms = vocab.analyzer().terms(lang, &w);
        let stems = plan.stems(lang);
        let mut marked: BTreeSet<usize> = terms.iter().filter(|t| stems.contains(t.stem.as_str())).map(|t| t.position as usize).collect();
        for hit in vocab.find(lang, &w, &terms) {
            let named = concepts.contains(&hit.concept) || vocab.ancestors(hit.concept).iter().any(|a| concepts.contains(a));
            if named {
                marked.extend(hit.first..=hit.last);
            }
        }
        // Clusters of marked words close enough to share a snippet.
        let mut clusters: Vec<(usize, usize)> = Vec::new();
        for &i in &marked {
            match clusters.last_mut() {
                Some(c) if w[i].start.saturating_sub(w[c.1].end) <= CONTEXT => c.1 = i,
                _ => clusters.push((i, i)),
            }
        }
        for (first, last) in clusters {
            if out.len() == MAX_SNIPPETS {
                return out;
            }
            let text = &report.text;
            let from = w.iter().find(|x| x.start + CONTEXT >= w[first].start).map_or(0, |x| x.start);
            let to = w.iter().rev().find(|x| x.end <= w[last].end + CONTEXT).map_or(text.len(), |x| x.end);
            let mut s = String::new();
            if from > 0 {
                s.push('…');
            }
            let mut at = from;
            for i in marked.range(first..=last) {
                escape(&text[at..w[*i].start], &mut s);
                s.push_str("<em>");
                escape(&text[w[*i].start..w[*i].end], &mut s);
                s.push_str("</em>");
                at = w[*i].end;
            }
            escape(&text[at..to.max(at)], &mut s);
            if to < text.trim_end().len() {
                s.push('…');
            }
            out.push(s.split_whitespace().collect::<Vec<_>>().join(" "));
        }
    }
    out
}

fn escape(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
}
