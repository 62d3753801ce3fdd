//! Negation and uncertainty, after NegEx (Chapman et al., 2001): a cue ("pas de", "kein
//! Hinweis auf", "no evidence of", "ruled out", "suspicion de") puts the words in its scope
//! under its polarity. A cue before its finding (pre) reaches forward, one after it (post)
//! backward; each to the end of its sentence, to a stop word ("mais", "aber", "but") or another
//! cue, at most [`MAX_SCOPE`] words. A cue with nothing on its side in the sentence reaches the
//! other way ("Effusion: none" is negated; "Lungenembolie nicht auszuschließen" uncertain).
//! Cues are matched on folded words, longest first.

use crate::analyze::Word;

/// Most words a cue reaches.
pub const MAX_SCOPE: usize = 8;

/// What a report says about a word's finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Polarity {
    /// Said present (or said nothing about).
    Affirmed,
    /// Said absent.
    Negated,
    /// Said possible, suspected, not excluded.
    Uncertain,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Pre,
    Post,
    Uncertain,
    Stop,
}

/// The cues of one language, as folded word sequences.
#[derive(Debug, Default)]
pub struct Cues {
    cues: Vec<(Vec<String>, Kind)>,
    longest: usize,
}

impl Cues {
    /// Cues from the table's lists.
    pub fn new(pre: &[String], post: &[String], uncertain: &[String], stop: &[String]) -> Cues {
        let mut cues = Vec::new();
        for (list, kind) in [(pre, Kind::Pre), (post, Kind::Post), (uncertain, Kind::Uncertain), (stop, Kind::Stop)] {
            for cue in list {
                let key: Vec<String> = crate::analyze::words(cue).into_iter().map(|w| w.folded).collect();
                if !key.is_empty() {
                    cues.push((key, kind));
                }
            }
        }
        // Longest first, so "cannot be ruled out" wins over "ruled out" at the same word.
        cues.sort_by_key(|c| std::cmp::Reverse(c.0.len()));
        let longest = cues.first().map_or(0, |c| c.0.len());
        Cues { cues, longest }
    }

    fn at(&self, words: &[Word], i: usize) -> Option<(usize, Kind)> {
        let room = self.longest.min(words.len() - i);
        self.cues.iter().find_map(|(key, kind)| {
            (key.len() <= room && key.iter().zip(&words[i..]).all(|(k, w)| *k == w.folded)).then_some((key.len(), *kind))
        })
    }

    /// The polarity of every word of a text (cue words themselves are affirmed: they name no
    /// finding).
    pub fn polarity(&self, words: &[Word]) -> Vec<Polarity> {
        let mut out = vec![Polarity::Affirmed; words.len()];
        // Cues and their spans: (first word, words, kind).
        let mut found = Vec::new();
        let mut i = 0;
        while i < words.len() {
            match self.at(words, i) {
                Some((len, kind)) => {
                    found.push((i, len, kind));
                    i += len;
                }
                None => i += 1,
            }
        }
        let is_cue = |j: usize| found.iter().any(|&(s, l, _)| j >= s && j < s + l);
        let forward = |end: usize| -> Vec<usize> {
            let mut scope = Vec::new();
            let mut j = end;
            while j < words.len() && scope.len() < MAX_SCOPE {
                if words[j].sentence_start {
                    break;
                }
                if is_cue(j) {
                    break;
                }
                scope.push(j);
                j += 1;
            }
            scope
        };
        let backward = |start: usize| -> Vec<usize> {
            let mut scope = Vec::new();
            let mut j = start;
            while j > 0 && scope.len() < MAX_SCOPE {
                if words[j].sentence_start && j == start {
                    break;
                }
                j -= 1;
                if is_cue(j) {
                    break;
                }
                scope.push(j);
                if words[j].sentence_start {
                    break;
                }
            }
            scope
        };
        for &(start, len, kind) in &found {
            let (polarity, scope) = match kind {
                Kind::Stop => continue,
                Kind::Pre | Kind::Uncertain => {
                    let p = if kind == Kind::Pre { Polarity::Negated } else { Polarity::Uncertain };
                    let ahead = forward(start + len);
                    (p, if ahead.is_empty() { backward(start) } else { ahead })
                }
                Kind::Post => {
                    let behind = backward(start);
                    (Polarity::Negated, if behind.is_empty() { forward(start + len) } else { behind })
                }
            };
            for j in scope {
                // Negation wins over uncertainty where scopes meet.
                if out[j] != Polarity::Negated {
                    out[j] = polarity;
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::words;
    use crate::concepts::Vocabulary;

    fn marked(text: &str) -> String {
        let v = Vocabulary::builtin();
        let w = words(text);
        let p = v.cues().polarity(&w);
        w.iter()
            .zip(p)
            .map(|(w, p)| match p {
                Polarity::Affirmed => w.folded.clone(),
                Polarity::Negated => format!("-{}", w.folded),
                Polarity::Uncertain => format!("?{}", w.folded),
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn pre_cues_negate_forward_to_the_sentence_end() {
        assert_eq!(marked("Pas d'embolie pulmonaire. Nodule pulmonaire droit."), "pas d -embolie -pulmonaire nodule pulmonaire droit");
        assert_eq!(
            marked("Kein Hinweis auf Lungenembolie oder Pneumonie. Pleuraerguss links."),
            "kein hinweis auf -lungenembolie -oder -pneumonie pleuraerguss links"
        );
        assert_eq!(
            marked("No evidence of pulmonary embolism, but a small nodule."),
            "no evidence of -pulmonary -embolism but a small nodule"
        );
    }

    #[test]
    fn post_cues_negate_backward() {
        assert_eq!(marked("Pneumothorax ruled out."), "-pneumothorax ruled out");
        assert_eq!(marked("Eine Fraktur ist ausgeschlossen."), "-eine -fraktur -ist ausgeschlossen");
        assert_eq!(marked("Fracture exclue. Épanchement."), "-fracture exclue epanchement");
        assert_eq!(
            marked("Nephrolithiasis nicht auszuschließen. Ossäre Strukturen regelrecht."),
            "?nephrolithiasis nicht auszuschliessen ossare strukturen regelrecht",
            "a scope ends with its sentence"
        );
    }

    #[test]
    fn uncertainty_and_the_longest_cue_win() {
        assert_eq!(marked("Embolism cannot be ruled out."), "?embolism cannot be ruled out");
        assert_eq!(marked("V.a. Pneumonie rechts."), "v a ?pneumonie ?rechts");
        assert_eq!(marked("Suspicion d'EP."), "suspicion d ?ep");
    }

    #[test]
    fn a_cue_alone_at_the_end_reaches_back() {
        assert_eq!(marked("Pneumothorax: none."), "-pneumothorax none");
        assert_eq!(marked("Effusion none."), "-effusion none");
    }
}
