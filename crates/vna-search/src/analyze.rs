//! Text analysis: words with their offsets, case and accent folding, the language of a text,
//! stop words, Snowball stemming and the splitting of German compounds.
//!
//! The same functions analyse a report when it is indexed and a query when it is asked, so a
//! word meets itself whatever its case, accents or inflection.

use std::collections::{HashMap, HashSet};

use unicode_normalization::UnicodeNormalization;

/// The languages reports are analysed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    /// English.
    En,
    /// French.
    Fr,
    /// German.
    De,
}

impl Lang {
    /// Every language, in the order queries try them.
    pub const ALL: [Lang; 3] = [Lang::En, Lang::Fr, Lang::De];

    /// The ISO 639-1 code.
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Fr => "fr",
            Lang::De => "de",
        }
    }

    /// The language of an ISO 639-1 code.
    pub fn from_code(code: &str) -> Option<Lang> {
        match code.to_ascii_lowercase().as_str() {
            "en" => Some(Lang::En),
            "fr" => Some(Lang::Fr),
            "de" => Some(Lang::De),
            _ => None,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The language of a text among [`Lang::ALL`]: whatlang's trigram model restricted to them
/// when it is sure; else the language whose stop words the text uses most (short reports,
/// where trigrams decide by chance: "Absence de fracture costale" looks English to them);
/// else whatlang's best guess; `None` when nothing tells.
pub fn detect(text: &str) -> Option<Lang> {
    let detector = whatlang::Detector::with_allowlist(vec![whatlang::Lang::Eng, whatlang::Lang::Fra, whatlang::Lang::Deu]);
    let info = detector.detect(text);
    let of = |l: whatlang::Lang| match l {
        whatlang::Lang::Eng => Some(Lang::En),
        whatlang::Lang::Fra => Some(Lang::Fr),
        whatlang::Lang::Deu => Some(Lang::De),
        _ => None,
    };
    if let Some(info) = &info {
        if info.is_reliable() {
            return of(info.lang());
        }
    }
    let mut votes = [0usize; 3];
    for w in words(text) {
        for lang in Lang::ALL {
            let list = match lang {
                Lang::En => crate::stopwords::EN,
                Lang::Fr => crate::stopwords::FR,
                Lang::De => crate::stopwords::DE,
            };
            if list.contains(&w.folded.as_str()) {
                votes[lang.index()] += 1;
            }
        }
    }
    let best = votes.iter().copied().max().unwrap_or(0);
    if best > 0 && votes.iter().filter(|&&v| v == best).count() == 1 {
        return Lang::ALL.into_iter().find(|l| votes[l.index()] == best);
    }
    info.and_then(|i| of(i.lang()))
}

/// One word of a text: a run of letters and digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    /// Byte offsets in the text.
    pub start: usize,
    /// End byte offset (exclusive).
    pub end: usize,
    /// Lowercase, accents removed ([`fold`]).
    pub folded: String,
    /// Written in capitals (two characters or more, no lowercase letter): how an abbreviation
    /// is told from an ordinary word.
    pub caps: bool,
    /// A sentence ends between the previous word and this one.
    pub sentence_start: bool,
}

/// The words of `text`. A sentence ends at `.`, `!` or `?` followed by a space or the end
/// (not at the point after a single letter, an abbreviation), at `;` or a line break (not at `:`, which introduces what a finding is: "Effusion: none").
pub fn words(text: &str) -> Vec<Word> {
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    let mut pending_break = true;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c.is_alphanumeric() {
            if start.is_none() {
                start = Some(i);
            }
            continue;
        }
        let mut last_len = 0;
        if let Some(s) = start.take() {
            out.push(word(text, s, i, pending_break));
            pending_break = false;
            last_len = text[s..i].chars().count();
        }
        let next_is_space = chars.peek().is_none_or(|(_, n)| n.is_whitespace());
        // A point right after one letter abbreviates ("V.a. Pneumonie"): no sentence ends.
        let abbreviation = c == '.' && last_len == 1;
        if matches!(c, ';' | '\n' | '\r') || (matches!(c, '.' | '!' | '?') && next_is_space && !abbreviation) {
            pending_break = true;
        }
    }
    if let Some(s) = start {
        out.push(word(text, s, text.len(), pending_break));
    }
    out
}

fn word(text: &str, start: usize, end: usize, sentence_start: bool) -> Word {
    let orig = &text[start..end];
    let caps = orig.chars().count() >= 2 && !orig.chars().any(char::is_lowercase);
    Word { start, end, folded: fold(orig), caps, sentence_start }
}

/// Lowercase without accents: `Épanchement` → `epanchement`, `Größe` → `grosse`.
pub fn fold(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.nfd() {
        if unicode_normalization::char::is_combining_mark(c) {
            continue;
        }
        match c {
            'ß' => out.push_str("ss"),
            'æ' | 'Æ' => out.push_str("ae"),
            'œ' | 'Œ' => out.push_str("oe"),
            'ø' | 'Ø' => out.push('o'),
            'ł' | 'Ł' => out.push('l'),
            'đ' | 'Đ' => out.push('d'),
            _ => out.extend(c.to_lowercase()),
        }
    }
    out
}

/// An analysed word: its stem and where it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    /// The stem (folded, then stemmed in the text's language).
    pub stem: String,
    /// The index of its word in the text (parts of a compound share it).
    pub position: u32,
    /// Byte offsets of the word in the text.
    pub start: usize,
    /// End byte offset (exclusive).
    pub end: usize,
    /// A part of a German compound, beside the compound's own term at the same position.
    pub part: bool,
}

/// Stemmers, stop words and German compound parts: everything a language's analysis needs.
pub struct Analyzer {
    stemmers: [frostem::Stemmer; 3],
    stop: [HashSet<&'static str>; 3],
    parts: HashSet<String>,
    longest_part: usize,
}

impl std::fmt::Debug for Analyzer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Analyzer").field("compound_parts", &self.parts.len()).finish()
    }
}

/// Shortest part a compound is split into: shorter ones would split words by chance.
const MIN_PART: usize = 4;

impl Analyzer {
    /// An analyzer that splits German compounds into `parts` (folded words).
    pub fn new(parts: impl IntoIterator<Item = String>) -> Analyzer {
        let parts: HashSet<String> = parts.into_iter().map(|p| fold(&p)).filter(|p| p.chars().count() >= MIN_PART).collect();
        let longest_part = parts.iter().map(|p| p.len()).max().unwrap_or(0);
        Analyzer {
            stemmers: [
                frostem::Stemmer::new(frostem::Algorithm::English),
                frostem::Stemmer::new(frostem::Algorithm::French),
                frostem::Stemmer::new(frostem::Algorithm::German),
            ],
            stop: [
                crate::stopwords::EN.iter().copied().collect(),
                crate::stopwords::FR.iter().copied().collect(),
                crate::stopwords::DE.iter().copied().collect(),
            ],
            parts,
            longest_part,
        }
    }

    /// The stem of a folded word in `lang`.
    pub fn stem(&self, lang: Lang, folded: &str) -> String {
        self.stemmers[lang.index()].stem(folded).into_owned()
    }

    /// Whether a folded word is a stop word of `lang`.
    pub fn is_stop(&self, lang: Lang, folded: &str) -> bool {
        self.stop[lang.index()].contains(folded)
    }

    /// The terms of `words` in `lang`: stop words dropped, stems kept, and for German the
    /// stems of a compound's parts beside the compound's own.
    pub fn terms(&self, lang: Lang, words: &[Word]) -> Vec<Term> {
        let mut out = Vec::with_capacity(words.len());
        let mut stems: HashMap<&str, String> = HashMap::new();
        for (i, w) in words.iter().enumerate() {
            if self.is_stop(lang, &w.folded) {
                continue;
            }
            let position = u32::try_from(i).unwrap_or(u32::MAX);
            let stem = stems.entry(&w.folded).or_insert_with(|| self.stem(lang, &w.folded)).clone();
            out.push(Term { stem, position, start: w.start, end: w.end, part: false });
            if lang == Lang::De {
                for part in self.split_compound(&w.folded) {
                    let stem = self.stem(lang, &part);
                    if out.last().is_some_and(|t: &Term| t.position == position && t.stem == stem) {
                        continue;
                    }
                    out.push(Term { stem, position, start: w.start, end: w.end, part: true });
                }
            }
        }
        out
    }

    /// The parts of a German compound (`lungenembolie` → `lungen`, `embolie`), each a known
    /// part, joined directly or by a linking `s`, `es`, `n`, `en` or `e`; empty unless the
    /// whole word splits into two parts or more.
    pub fn split_compound(&self, folded: &str) -> Vec<String> {
        if folded.len() < 2 * MIN_PART || !folded.is_ascii() {
            return Vec::new();
        }
        let mut parts = Vec::new();
        // The word itself may be a known part (a term's word): its parts are shorter.
        if self.split_from(folded, folded.len() - 1, &mut parts) && parts.len() >= 2 {
            parts
        } else {
            Vec::new()
        }
    }

    fn split_from(&self, rest: &str, max_part: usize, parts: &mut Vec<String>) -> bool {
        if rest.is_empty() {
            return true;
        }
        // Longest known part first; the word is ASCII, so every byte is a boundary.
        let max = rest.len().min(self.longest_part).min(max_part);
        for len in (MIN_PART..=max).rev() {
            let (head, tail) = rest.split_at(len);
            if !self.parts.contains(head) {
                continue;
            }
            for link in ["", "s", "es", "n", "en", "e"] {
                let Some(after) = tail.strip_prefix(link) else { continue };
                if !after.is_empty() && after.len() < MIN_PART {
                    continue;
                }
                parts.push(head.to_owned());
                if self.split_from(after, usize::MAX, parts) {
                    return true;
                }
                parts.pop();
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn analyzer() -> Analyzer {
        let parts = ["lunge", "lungen", "embolie", "lungenembolie", "arterie", "rund", "herd", "schenkel", "hals", "fraktur"];
        Analyzer::new(parts.map(String::from))
    }

    #[test]
    fn folding_removes_case_and_accents() {
        assert_eq!(fold("Épanchement PLEURAL"), "epanchement pleural");
        assert_eq!(fold("Größe"), "grosse");
        assert_eq!(fold("Lungenentzündung"), "lungenentzundung");
        assert_eq!(fold("cœur"), "coeur");
    }

    #[test]
    fn words_keep_offsets_capitals_and_sentences() {
        let text = "Pas d'EP. Embolie: non.\nV.a. Pneumonie";
        let w = words(text);
        let folded: Vec<&str> = w.iter().map(|w| w.folded.as_str()).collect();
        assert_eq!(folded, ["pas", "d", "ep", "embolie", "non", "v", "a", "pneumonie"]);
        assert_eq!(&text[w[2].start..w[2].end], "EP");
        assert!(w[2].caps && !w[0].caps && !w[1].caps);
        let starts: Vec<bool> = w.iter().map(|w| w.sentence_start).collect();
        // "V.a." is an abbreviation: no sentence ends in or after it.
        assert_eq!(starts, [true, false, false, true, false, true, false, false]);
    }

    #[test]
    fn stems_meet_across_inflections() {
        let a = analyzer();
        assert_eq!(a.stem(Lang::Fr, "nodules"), a.stem(Lang::Fr, "nodule"));
        assert_eq!(a.stem(Lang::Fr, "pulmonaires"), a.stem(Lang::Fr, "pulmonaire"));
        assert_eq!(a.stem(Lang::En, "nodules"), a.stem(Lang::En, "nodule"));
        assert_eq!(a.stem(Lang::De, "lungenembolien"), a.stem(Lang::De, "lungenembolie"));
    }

    #[test]
    fn german_compounds_split_into_known_parts() {
        let a = analyzer();
        assert_eq!(a.split_compound("lungenembolie"), ["lungen", "embolie"]);
        assert_eq!(a.split_compound("lungenarterienembolie"), ["lungen", "arterie", "embolie"]);
        assert_eq!(a.split_compound("schenkelhalsfraktur"), ["schenkel", "hals", "fraktur"]);
        assert_eq!(a.split_compound("lungenrundherd"), ["lungen", "rund", "herd"]);
        assert!(a.split_compound("embolie").is_empty(), "one part is no compound");
        assert!(a.split_compound("lungenxyz").is_empty(), "an unknown rest splits nothing");
        let terms = a.terms(Lang::De, &words("Kein Hinweis auf eine Lungenembolie"));
        let embolie = a.stem(Lang::De, "embolie");
        assert!(terms.iter().any(|t| t.stem == embolie && t.position == 4), "{terms:?}");
    }

    #[test]
    fn stop_words_are_dropped_per_language() {
        let a = analyzer();
        let stems: Vec<String> = a.terms(Lang::Fr, &words("Le nodule du poumon droit")).into_iter().map(|t| t.stem).collect();
        assert_eq!(stems, ["nodul", "poumon", "droit"]);
    }

    #[test]
    fn languages_are_told_apart() {
        assert_eq!(detect("Pas d'argument pour une embolie pulmonaire. Le parenchyme pulmonaire est normal."), Some(Lang::Fr));
        assert_eq!(detect("Kein Hinweis auf eine Lungenembolie. Das Lungenparenchym ist unauffällig."), Some(Lang::De));
        assert_eq!(detect("No evidence of pulmonary embolism. The lung parenchyma is normal."), Some(Lang::En));
        // Too short for trigrams alone.
        assert_eq!(detect("Absence de fracture costale. Structures osseuses d'aspect normal."), Some(Lang::Fr));
        assert_eq!(detect("Kein Pneumothorax. Übrige Strukturen unauffällig."), Some(Lang::De));
    }
}
