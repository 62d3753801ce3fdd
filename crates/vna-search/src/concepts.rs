//! The medical concept table (`config/search-concepts.toml`): concepts with their terms in each
//! language, abbreviations and broader links; the negation and uncertainty cues; the German
//! compound parts. Loaded strictly, compiled once into what the analysis matches: each term as
//! the stems its language gives it, each cue as folded words.

use std::collections::{HashMap, HashSet};

use serde::Deserialize;

use crate::analyze::{words, Analyzer, Lang, Term, Word};
use crate::negation::Cues;

/// The concept table the archive ships (`config/search-concepts.toml`).
pub const DEFAULT_TABLE: &str = include_str!("../../../config/search-concepts.toml");

/// The one version of the table's format.
pub const CURRENT_VERSION: u32 = 1;

/// A concept table that cannot be used, with what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    /// Not TOML, or a key or type the format does not have.
    #[error("concept table: {0}")]
    Format(String),
    /// Readable, but inconsistent.
    #[error("concept table: {0}")]
    Invalid(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileFormat {
    version: u32,
    #[serde(default)]
    negation: HashMap<String, CueFormat>,
    #[serde(default)]
    compounds: CompoundFormat,
    #[serde(default, rename = "concept")]
    concepts: Vec<ConceptFormat>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CueFormat {
    #[serde(default)]
    pre: Vec<String>,
    #[serde(default)]
    post: Vec<String>,
    #[serde(default)]
    uncertain: Vec<String>,
    #[serde(default)]
    stop: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CompoundFormat {
    #[serde(default)]
    de: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConceptFormat {
    id: String,
    #[serde(default)]
    broader: Vec<String>,
    #[serde(default)]
    en: Vec<String>,
    #[serde(default)]
    fr: Vec<String>,
    #[serde(default)]
    de: Vec<String>,
    #[serde(default)]
    abbr: Vec<String>,
}

/// Where a concept was found in a text: its words `first..=last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConceptHit {
    /// The concept's index in the table.
    pub concept: usize,
    /// Index of its first word.
    pub first: usize,
    /// Index of its last word.
    pub last: usize,
}

/// The compiled table, with the analyzer its terms were compiled by.
#[derive(Debug)]
pub struct Vocabulary {
    analyzer: Analyzer,
    ids: Vec<String>,
    by_id: HashMap<String, usize>,
    /// Each concept's broader concepts, transitively, without itself.
    ancestors: Vec<Vec<usize>>,
    /// Per language: a term's stems → the concepts it names.
    terms: [HashMap<Vec<String>, Vec<usize>>; 3],
    longest_term: [usize; 3],
    /// Abbreviations as folded words → concepts.
    abbrs: HashMap<Vec<String>, Vec<usize>>,
    longest_abbr: usize,
    cues: Cues,
}

impl Vocabulary {
    /// The table the archive ships.
    pub fn builtin() -> Vocabulary {
        #[allow(clippy::expect_used)] // checked by this crate's tests
        Vocabulary::parse(DEFAULT_TABLE).expect("the shipped concept table is valid")
    }

    /// Parse and check a table.
    pub fn parse(text: &str) -> Result<Vocabulary, TableError> {
        let file: FileFormat = toml::from_str(text).map_err(|e| TableError::Format(e.to_string()))?;
        if file.version != CURRENT_VERSION {
            return Err(TableError::Invalid(format!(
                "version {} is not known (this archive reads version {CURRENT_VERSION})",
                file.version
            )));
        }
        let mut parts: Vec<String> = file.compounds.de.clone();
        for c in &file.concepts {
            parts.extend(c.de.iter().flat_map(|t| words(t).into_iter().map(|w| w.folded)));
        }
        let analyzer = Analyzer::new(parts);

        let mut by_id = HashMap::new();
        for (i, c) in file.concepts.iter().enumerate() {
            if c.id.is_empty() || !c.id.chars().all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-') {
                return Err(TableError::Invalid(format!("concept id {:?}: lowercase letters, digits and dashes only", c.id)));
            }
            if by_id.insert(c.id.clone(), i).is_some() {
                return Err(TableError::Invalid(format!("concept {:?} is defined twice", c.id)));
            }
        }
        let mut parents = Vec::with_capacity(file.concepts.len());
        for c in &file.concepts {
            let mut p = Vec::new();
            for b in &c.broader {
                let Some(&j) = by_id.get(b) else {
                    return Err(TableError::Invalid(format!("concept {:?}: broader {b:?} is no concept", c.id)));
                };
                p.push(j);
            }
            parents.push(p);
        }
        let mut ancestors = Vec::with_capacity(parents.len());
        for (i, c) in file.concepts.iter().enumerate() {
            let mut seen = HashSet::new();
            let mut todo = parents[i].clone();
            while let Some(j) = todo.pop() {
                if j == i {
                    return Err(TableError::Invalid(format!("concept {:?} is broader than itself", c.id)));
                }
                if seen.insert(j) {
                    todo.extend(&parents[j]);
                }
            }
            let mut list: Vec<usize> = seen.into_iter().collect();
            list.sort_unstable();
            ancestors.push(list);
        }

        let mut terms: [HashMap<Vec<String>, Vec<usize>>; 3] = Default::default();
        let mut abbrs: HashMap<Vec<String>, Vec<usize>> = HashMap::new();
        for (i, c) in file.concepts.iter().enumerate() {
            for (lang, list) in [(Lang::En, &c.en), (Lang::Fr, &c.fr), (Lang::De, &c.de)] {
                for term in list {
                    let stems: Vec<String> = analyzer.terms(lang, &words(term)).into_iter().filter(|t| !t.part).map(|t| t.stem).collect();
                    if stems.is_empty() {
                        return Err(TableError::Invalid(format!(
                            "concept {:?}: the {} term {term:?} has only stop words",
                            c.id,
                            lang.code()
                        )));
                    }
                    push_unique(terms[lang as usize].entry(stems).or_default(), i);
                }
            }
            for abbr in &c.abbr {
                let key: Vec<String> = words(abbr).into_iter().map(|w| w.folded).collect();
                if key.is_empty() || abbr.chars().any(char::is_lowercase) {
                    return Err(TableError::Invalid(format!("concept {:?}: abbreviation {abbr:?} must be written in capitals", c.id)));
                }
                push_unique(abbrs.entry(key).or_default(), i);
            }
        }
        let longest_term = [0, 1, 2].map(|l| terms[l].keys().map(Vec::len).max().unwrap_or(0));
        let longest_abbr = abbrs.keys().map(Vec::len).max().unwrap_or(0);

        // Every language's cues apply to every report: a short report's language may be
        // mistaken, and a German report may say "ruled out".
        let (mut pre, mut post, mut uncertain, mut stop) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (code, cue) in &file.negation {
            if Lang::from_code(code).is_none() {
                return Err(TableError::Invalid(format!("negation.{code}: not a language of the search (en, fr, de)")));
            }
            pre.extend(cue.pre.iter().cloned());
            post.extend(cue.post.iter().cloned());
            uncertain.extend(cue.uncertain.iter().cloned());
            stop.extend(cue.stop.iter().cloned());
        }
        let cues = Cues::new(&pre, &post, &uncertain, &stop);

        Ok(Vocabulary {
            analyzer,
            ids: file.concepts.into_iter().map(|c| c.id).collect(),
            by_id,
            ancestors,
            terms,
            longest_term,
            abbrs,
            longest_abbr,
            cues,
        })
    }

    /// The analyzer (stemmers, stop words, compound parts).
    pub fn analyzer(&self) -> &Analyzer {
        &self.analyzer
    }

    /// The negation and uncertainty cues (of every language).
    pub fn cues(&self) -> &Cues {
        &self.cues
    }

    /// A concept's id.
    pub fn id(&self, concept: usize) -> &str {
        &self.ids[concept]
    }

    /// The concept of an id.
    pub fn concept(&self, id: &str) -> Option<usize> {
        self.by_id.get(id).copied()
    }

    /// The concepts named in a text of another language than `lang` by `lang`'s terms (on
    /// `terms`, the text's terms in `lang`): a report in one language quoting another. Only
    /// distinctive terms count here — two words or more, or one of seven letters or more — for
    /// a short word of one language is often an ordinary word of another ("sein" is a breast
    /// in French and "to be" in German).
    pub fn find_foreign(&self, lang: Lang, words: &[Word], terms: &[Term]) -> Vec<ConceptHit> {
        self.find_terms(lang, words, terms, true)
    }

    fn find_terms(&self, lang: Lang, words: &[Word], terms: &[Term], distinctive: bool) -> Vec<ConceptHit> {
        let mut hits = Vec::new();
        let primary: Vec<&Term> = terms.iter().filter(|t| !t.part).collect();
        // The stems once, so that each span is looked up as a slice of them.
        let stems: Vec<String> = primary.iter().map(|t| t.stem.clone()).collect();
        let table = &self.terms[lang as usize];
        let mut i = 0;
        while i < primary.len() {
            let mut matched = 0;
            let longest = self.longest_term[lang as usize].min(primary.len() - i);
            for len in (1..=longest).rev() {
                if let Some(concepts) = table.get(&stems[i..i + len]) {
                    let first = primary[i].position as usize;
                    let last = primary[i + len - 1].position as usize;
                    if distinctive && first == last && words[first].folded.chars().count() < 7 {
                        continue;
                    }
                    hits.extend(concepts.iter().map(|&concept| ConceptHit { concept, first, last }));
                    matched = len;
                    break;
                }
            }
            i += matched.max(1);
        }
        hits
    }

    /// The concepts a concept is a kind of, transitively.
    pub fn ancestors(&self, concept: usize) -> &[usize] {
        &self.ancestors[concept]
    }

    /// How many concepts the table has.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether the table has no concept.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The concepts named in a text of `lang`: its terms (on `terms`, the text's terms in that
    /// language) and the abbreviations written in capitals (on `words`). At each word the
    /// longest term wins; a term naming several concepts gives a hit for each.
    pub fn find(&self, lang: Lang, words: &[Word], terms: &[Term]) -> Vec<ConceptHit> {
        let mut hits = self.find_terms(lang, words, terms, false);
        let folded: Vec<String> = words.iter().map(|w| w.folded.clone()).collect();
        let mut i = 0;
        while i < words.len() {
            let mut matched = 0;
            let longest = self.longest_abbr.min(words.len() - i);
            for len in (1..=longest).rev() {
                let span = &words[i..i + len];
                if !span.iter().all(|w| w.caps || w.folded.chars().all(|c| c.is_ascii_digit())) {
                    continue;
                }
                if let Some(concepts) = self.abbrs.get(&folded[i..i + len]) {
                    hits.extend(concepts.iter().map(|&concept| ConceptHit { concept, first: i, last: i + len - 1 }));
                    matched = len;
                    break;
                }
            }
            i += matched.max(1);
        }
        hits
    }
}

fn push_unique(list: &mut Vec<usize>, i: usize) {
    if !list.contains(&i) {
        list.push(i);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(v: &Vocabulary, lang: Lang, text: &str) -> Vec<String> {
        let w = words(text);
        let t = v.analyzer().terms(lang, &w);
        let mut ids: Vec<String> = v.find(lang, &w, &t).into_iter().map(|h| v.id(h.concept).to_owned()).collect();
        ids.sort();
        ids.dedup();
        ids
    }

    #[test]
    fn the_shipped_table_is_valid() {
        let v = Vocabulary::builtin();
        assert!(v.len() > 30);
        let nodule = v.concept("lung-nodule").expect("lung-nodule");
        let mut ancestors: Vec<&str> = v.ancestors(nodule).iter().map(|&a| v.id(a)).collect();
        ancestors.sort_unstable();
        assert_eq!(ancestors, ["lesion", "lung-lesion", "nodule"]);
    }

    #[test]
    fn terms_are_found_in_each_language_whatever_the_inflection() {
        let v = Vocabulary::builtin();
        assert_eq!(find(&v, Lang::Fr, "Deux nodules pulmonaires à droite."), ["lung-nodule"]);
        assert_eq!(find(&v, Lang::De, "Lungenrundherde rechts"), ["lung-nodule"]);
        assert_eq!(find(&v, Lang::En, "Multiple pulmonary nodules"), ["lung-nodule"]);
    }

    #[test]
    fn abbreviations_match_only_in_capitals() {
        let v = Vocabulary::builtin();
        assert_eq!(find(&v, Lang::Fr, "Suspicion d'EP"), ["pulmonary-embolism"]);
        assert!(find(&v, Lang::Fr, "le patient").is_empty());
        assert_eq!(find(&v, Lang::De, "Ausschluss LE"), ["pulmonary-embolism"]);
    }

    #[test]
    fn a_bad_table_is_refused_with_the_reason() {
        let bad = |t: &str| Vocabulary::parse(t).expect_err("must be refused").to_string();
        assert!(bad("version = 2").contains("version 2"));
        assert!(bad("version = 1\nextra = 1").contains("unknown field"));
        let twice = "version = 1\n[[concept]]\nid = \"a\"\nen = [\"x\"]\n[[concept]]\nid = \"a\"\nen = [\"y\"]";
        assert!(bad(twice).contains("twice"));
        let cycle = "version = 1\n[[concept]]\nid = \"a\"\nbroader = [\"b\"]\n[[concept]]\nid = \"b\"\nbroader = [\"a\"]";
        assert!(bad(cycle).contains("broader than itself"));
        assert!(bad("version = 1\n[[concept]]\nid = \"a\"\nbroader = [\"z\"]").contains("no concept"));
        assert!(bad("version = 1\n[[concept]]\nid = \"a\"\nabbr = [\"pe\"]").contains("capitals"));
        assert!(bad("version = 1\n[[concept]]\nid = \"a\"\nen = [\"the\"]").contains("only stop words"));
    }
}
