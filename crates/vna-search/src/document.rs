//! What is indexed of a study, and how its texts are analysed into the index's fields.

use std::collections::HashSet;

use crate::analyze::{detect, words, Lang, Term};
use crate::concepts::Vocabulary;
use crate::negation::Polarity;

/// One study as the index knows it: the catalog's attributes and the texts of its reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StudyDoc {
    /// Study Instance UID.
    pub study_uid: String,
    /// The study's tenant (the visibility rules' unit), `""` when none.
    pub tenant: String,
    /// Patient ID.
    pub patient_id: String,
    /// Patient's Name as stored (PN, `^`-separated).
    pub patient_name: String,
    /// Patient's Sex (M, F, O, or empty).
    pub patient_sex: String,
    /// Age at the study in years, when known.
    pub patient_age_years: Option<u32>,
    /// Study Date as YYYYMMDD.
    pub study_date: Option<u32>,
    /// Accession Number.
    pub accession: String,
    /// Study Description.
    pub study_description: String,
    /// Modalities in the study.
    pub modalities: Vec<String>,
    /// Body parts examined, series descriptions, protocol names: the rest of the metadata.
    pub other_text: Vec<String>,
    /// Institution Name.
    pub institution: String,
    /// Referring Physician's Name.
    pub referring_physician: String,
    /// The study's reports, in the order they were stored.
    pub reports: Vec<Report>,
}

/// The text of one report.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Report {
    /// Its language, detected when `None` (and English when it cannot be told).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lang: Option<Lang>,
    /// The text.
    pub text: String,
}

/// The language a report is analysed in when none is given and its text does not tell.
pub const FALLBACK_LANG: Lang = Lang::En;

/// A study's texts analysed into what each field of the index receives.
#[derive(Debug, Default)]
pub(crate) struct Analysed {
    /// Per report value: affirmed and uncertain terms.
    pub text: Vec<Vec<Term>>,
    /// Per report value: negated terms.
    pub text_neg: Vec<Vec<Term>>,
    /// Terms of the metadata, in every language's stemming.
    pub meta: Vec<Term>,
    /// Concept ids (with their broader concepts) said present.
    pub concepts: Vec<String>,
    /// … said uncertain.
    pub concepts_uncertain: Vec<String>,
    /// … said absent (and nowhere present).
    pub concepts_negated: Vec<String>,
    /// The reports with their language decided.
    pub reports: Vec<Report>,
}

impl StudyDoc {
    /// Analyse the study's metadata and reports.
    pub(crate) fn analyse(&self, vocab: &Vocabulary) -> Analysed {
        let mut out = Analysed::default();
        let mut present = Vec::new();
        let mut uncertain = Vec::new();
        let mut negated = Vec::new();

        let meta_text = self.meta_text();
        let meta_words = words(&meta_text);
        let mut seen: HashSet<(u32, String)> = HashSet::new();
        for lang in Lang::ALL {
            let terms = vocab.analyzer().terms(lang, &meta_words);
            for hit in vocab.find(lang, &meta_words, &terms) {
                present.push(hit.concept);
            }
            for t in terms {
                if seen.insert((t.position, t.stem.clone())) {
                    out.meta.push(t);
                }
            }
        }
        out.meta.sort_by_key(|t| t.position);

        for report in &self.reports {
            let lang = report.lang.or_else(|| detect(&report.text)).unwrap_or(FALLBACK_LANG);
            let w = words(&report.text);
            let polarity = vocab.cues().polarity(&w);
            let terms = vocab.analyzer().terms(lang, &w);
            let mut hits = vocab.find(lang, &w, &terms);
            for other in Lang::ALL.into_iter().filter(|&l| l != lang) {
                hits.extend(vocab.find_foreign(other, &w, &vocab.analyzer().terms(other, &w)));
            }
            // A shorter term inside a longer one's words is the longer one's part.
            let spans: Vec<(usize, usize)> = hits.iter().map(|h| (h.first, h.last)).collect();
            hits.retain(|h| !spans.iter().any(|&(f, l)| f <= h.first && h.last <= l && (l - f) > (h.last - h.first)));
            for hit in hits {
                let span = &polarity[hit.first..=hit.last];
                if span.contains(&Polarity::Negated) {
                    negated.push(hit.concept);
                } else if span.contains(&Polarity::Uncertain) {
                    uncertain.push(hit.concept);
                } else {
                    present.push(hit.concept);
                }
            }
            let (neg, pos): (Vec<Term>, Vec<Term>) = terms.into_iter().partition(|t| polarity[t.position as usize] == Polarity::Negated);
            out.text.push(pos);
            out.text_neg.push(neg);
            out.reports.push(Report { lang: Some(lang), text: report.text.clone() });
        }

        let with_ancestors = |list: &[usize]| -> HashSet<usize> {
            list.iter().flat_map(|&c| std::iter::once(c).chain(vocab.ancestors(c).iter().copied())).collect()
        };
        let present = with_ancestors(&present);
        let uncertain: HashSet<usize> = with_ancestors(&uncertain).difference(&present).copied().collect();
        // A finding said absent in one place and present in another is present. Its broader
        // concepts are not negated: "no embolism" says nothing against another lesion.
        let negated: HashSet<usize> = negated.into_iter().filter(|c| !present.contains(c) && !uncertain.contains(c)).collect();
        let ids = |set: HashSet<usize>| {
            let mut v: Vec<String> = set.into_iter().map(|c| vocab.id(c).to_owned()).collect();
            v.sort();
            v
        };
        out.concepts = ids(present);
        out.concepts_uncertain = ids(uncertain);
        out.concepts_negated = ids(negated);
        out
    }

    /// The metadata that is searched as text, one attribute per line.
    fn meta_text(&self) -> String {
        let mut parts: Vec<&str> = vec![&self.study_description, &self.institution];
        parts.extend(self.modalities.iter().map(String::as_str));
        parts.extend(self.other_text.iter().map(String::as_str));
        let referring = self.referring_physician.replace('^', " ");
        parts.push(&referring);
        parts.retain(|p| !p.trim().is_empty());
        parts.join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn study(reports: &[&str]) -> StudyDoc {
        StudyDoc {
            study_uid: "1.2.3".into(),
            study_description: "CT THORAX".into(),
            modalities: vec!["CT".into()],
            reports: reports.iter().map(|t| Report { lang: None, text: (*t).to_owned() }).collect(),
            ..StudyDoc::default()
        }
    }

    #[test]
    fn concepts_are_sorted_by_what_the_report_says() {
        let v = Vocabulary::builtin();
        let a = study(&["Pas d'embolie pulmonaire. Nodule pulmonaire du lobe supérieur droit, suspicion de pneumonie."]).analyse(&v);
        assert!(a.concepts.contains(&"lung-nodule".to_owned()), "{a:?}");
        assert!(a.concepts.contains(&"lung-lesion".to_owned()), "broader concepts are indexed: {a:?}");
        assert!(a.concepts.contains(&"exam-ct".to_owned()), "metadata concepts: {a:?}");
        assert_eq!(a.concepts_negated, ["pulmonary-embolism"]);
        assert_eq!(a.concepts_uncertain, ["pneumonia"]);
        assert_eq!(a.reports[0].lang, Some(Lang::Fr));
    }

    #[test]
    fn a_report_quoting_another_language_names_its_concepts() {
        let v = Vocabulary::builtin();
        let a = study(&["Examen comparé au précédent, technique standard, coupes fines reconstruites. Lungenrundherd rechts."]).analyse(&v);
        assert_eq!(a.reports[0].lang, Some(Lang::Fr));
        assert!(a.concepts.contains(&"lung-nodule".to_owned()), "{a:?}");
        let b = study(&["Das kann sein. Die Untersuchung ist unauffällig, der Befund ist stabil."]).analyse(&v);
        assert!(!b.concepts.contains(&"region-breast".to_owned()), "a short word of another language is no term: {b:?}");
    }

    #[test]
    fn present_somewhere_is_present() {
        let v = Vocabulary::builtin();
        let a = study(&["No pleural effusion on the left. Small pleural effusion on the right."]).analyse(&v);
        assert!(a.concepts.contains(&"pleural-effusion".to_owned()));
        assert!(a.concepts_negated.is_empty());
    }
}
