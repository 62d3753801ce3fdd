//! The synthetic corpus of the relevance set: studies with reports in French, German and
//! English, generated from findings said present, absent or uncertain, and the queries with
//! their graded judgments, derived from how each study was generated.
//!
//! The reports' phrasings are chosen apart from the queries' where a query type tests a
//! synonym, a lay term or an abbreviation: a report never uses the words of such a query. Most
//! phrasings are terms of the concept table (the set measures how the search uses it, not how
//! much of real reporting the table covers); a few are not ("filling defect in the pulmonary
//! arteries", "frische Ischämie"), and the search misses those as plain BM25 does.

use vna_search::{Report, StudyDoc};

/// A small deterministic generator (splitmix64): the corpus is the same on every run.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// A finding as reports phrase it.
pub struct Finding {
    pub concept: &'static str,
    /// Broader concepts (as the concept table has them), for the judgments.
    pub broader: &'static [&'static str],
    pub modality: &'static str,
    pub en: &'static [&'static str],
    pub fr: &'static [&'static str],
    pub de: &'static [&'static str],
}

pub const FINDINGS: &[Finding] = &[
    Finding {
        concept: "lung-nodule",
        broader: &["lung-lesion", "nodule", "lesion"],
        modality: "CT",
        en: &["pulmonary nodule", "lung nodule"],
        fr: &["nodule pulmonaire", "micronodule pulmonaire"],
        de: &["Lungenrundherd", "pulmonaler Rundherd"],
    },
    Finding {
        concept: "pulmonary-embolism",
        broader: &["embolism"],
        modality: "CT",
        en: &["pulmonary embolism", "pulmonary emboli", "filling defect in the pulmonary arteries"],
        fr: &["embolie pulmonaire", "défect endoluminal de l'artère pulmonaire"],
        de: &["Lungenembolie", "Lungenarterienembolie", "Füllungsdefekt der Pulmonalarterie"],
    },
    Finding { concept: "pneumothorax", broader: &[], modality: "CR", en: &["pneumothorax"], fr: &["pneumothorax"], de: &["Pneumothorax"] },
    Finding {
        concept: "pleural-effusion",
        broader: &[],
        modality: "CR",
        en: &["pleural effusion"],
        fr: &["épanchement pleural"],
        de: &["Pleuraerguss"],
    },
    Finding {
        concept: "pneumonia",
        broader: &[],
        modality: "CR",
        en: &["pneumonia", "consolidation", "airspace opacity"],
        fr: &["pneumopathie", "foyer de condensation", "opacité alvéolaire"],
        de: &["Pneumonie", "Infiltrat", "alveoläre Verdichtung"],
    },
    Finding {
        concept: "ischemic-stroke",
        broader: &["stroke"],
        modality: "MR",
        en: &["cerebral infarction", "ischemic stroke"],
        fr: &["infarctus cérébral", "ischémie cérébrale", "lésion ischémique récente"],
        de: &["Territorialinfarkt", "zerebrale Ischämie", "frische Ischämie"],
    },
    Finding {
        concept: "intracranial-hemorrhage",
        broader: &["stroke"],
        modality: "CT",
        en: &["subdural hematoma", "subarachnoid hemorrhage"],
        fr: &["hématome sous-dural", "hémorragie sous-arachnoïdienne"],
        de: &["Subduralhämatom", "Subarachnoidalblutung"],
    },
    Finding {
        concept: "hip-fracture",
        broader: &["fracture"],
        modality: "CR",
        en: &["femoral neck fracture", "fracture of the femoral neck"],
        fr: &["fracture du col du fémur", "fracture cervicale fémorale"],
        de: &["Schenkelhalsfraktur", "mediale Femurfraktur"],
    },
    Finding {
        concept: "rib-fracture",
        broader: &["fracture"],
        modality: "CT",
        en: &["rib fracture"],
        fr: &["fracture costale"],
        de: &["Rippenfraktur"],
    },
    Finding {
        concept: "vertebral-fracture",
        broader: &["fracture"],
        modality: "CT",
        en: &["vertebral fracture", "compression fracture"],
        fr: &["fracture vertébrale", "tassement vertébral"],
        de: &["Wirbelkörperfraktur"],
    },
    Finding {
        concept: "kidney-stone",
        broader: &[],
        modality: "CT",
        en: &["renal calculus", "nephrolithiasis", "stone in the renal pelvis"],
        fr: &["lithiase rénale", "calcul rénal", "calcul du bassinet"],
        de: &["Nephrolithiasis", "Harnstein", "Konkrement im Nierenbecken"],
    },
    Finding { concept: "appendicitis", broader: &[], modality: "US", en: &["appendicitis"], fr: &["appendicite"], de: &["Appendizitis"] },
    Finding {
        concept: "deep-vein-thrombosis",
        broader: &[],
        modality: "US",
        en: &["deep vein thrombosis"],
        fr: &["thrombose veineuse profonde"],
        de: &["tiefe Venenthrombose", "Beinvenenthrombose"],
    },
    Finding {
        concept: "cardiomegaly",
        broader: &[],
        modality: "CR",
        en: &["cardiomegaly"],
        fr: &["cardiomégalie"],
        de: &["Kardiomegalie"],
    },
    Finding {
        concept: "aortic-aneurysm",
        broader: &[],
        modality: "CT",
        en: &["abdominal aortic aneurysm"],
        fr: &["anévrisme de l'aorte abdominale"],
        de: &["Bauchaortenaneurysma"],
    },
    Finding { concept: "liver-cyst", broader: &[], modality: "US", en: &["hepatic cyst"], fr: &["kyste hépatique"], de: &["Leberzyste"] },
    Finding {
        concept: "meniscal-tear",
        broader: &[],
        modality: "MR",
        en: &["meniscal tear"],
        fr: &["fissure méniscale", "déchirure méniscale"],
        de: &["Meniskusriss", "Meniskusläsion"],
    },
    Finding {
        concept: "metastasis",
        broader: &["cancer", "lesion"],
        modality: "CT",
        en: &["metastases", "metastatic disease"],
        fr: &["métastases", "localisations secondaires"],
        de: &["Metastasen", "Filiae"],
    },
];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Said {
    Present,
    Absent,
    Uncertain,
}

/// What a study was generated with: (finding index, how it was said).
pub struct Truth {
    pub uid: String,
    pub lang: &'static str,
    pub modality: &'static str,
    pub date: u32,
    pub findings: Vec<(usize, Said)>,
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

fn sentence(rng: &mut Rng, lang: &str, phrase: &str, said: Said) -> String {
    let n = 3 + rng.below(25);
    let side = |rng: &mut Rng, l: &str| match l {
        "fr" => *rng.pick(&["droit", "gauche", "bilatéral"]),
        "de" => *rng.pick(&["rechts", "links", "beidseits"]),
        _ => *rng.pick(&["right", "left", "bilateral"]),
    };
    let elided = |prep: &str| {
        if phrase.starts_with(|c: char| "aeiouéèhAEIOUÉH".contains(c)) {
            format!("{}'{phrase}", &prep[..prep.len() - 1])
        } else {
            format!("{prep} {phrase}")
        }
    };
    let s = side(rng, lang);
    match (lang, said) {
        ("en", Said::Present) => match rng.below(3) {
            0 => format!("There is a {phrase} on the {s}, measuring {n} mm."),
            1 => format!("Findings consistent with {phrase}."),
            _ => format!("{} on the {s}.", capitalise(phrase)),
        },
        ("en", Said::Absent) => match rng.below(3) {
            0 => format!("No evidence of {phrase}."),
            1 => format!("No {phrase}."),
            _ => format!("{} is ruled out.", capitalise(phrase)),
        },
        ("en", Said::Uncertain) => match rng.below(2) {
            0 => format!("Possible {phrase} on the {s}."),
            _ => format!("{} cannot be excluded.", capitalise(phrase)),
        },
        ("fr", Said::Present) => match rng.below(3) {
            0 => format!("Mise en évidence {} {s} de {n} mm.", elided("de")),
            1 => format!("Aspect évoquant une {phrase}, {s}."),
            _ => format!("{} {s}.", capitalise(phrase)),
        },
        ("fr", Said::Absent) => match rng.below(3) {
            0 => format!("Pas {}.", elided("de")),
            1 => format!("Absence {}.", elided("de")),
            _ => format!("{} exclue.", capitalise(phrase)),
        },
        ("fr", Said::Uncertain) => match rng.below(2) {
            0 => format!("Suspicion {} {s}.", elided("de")),
            _ => format!("{} à confirmer.", capitalise(phrase)),
        },
        ("de", Said::Present) => match rng.below(3) {
            0 => format!("Nachweis einer {phrase} {s}, {n} mm."),
            1 => format!("{} {s}.", capitalise(phrase)),
            _ => format!("Es zeigt sich eine {phrase} {s}."),
        },
        ("de", Said::Absent) => match rng.below(3) {
            0 => format!("Kein Hinweis auf {phrase}."),
            1 => format!("{} ausgeschlossen.", capitalise(phrase)),
            _ => format!("Keine {phrase}."),
        },
        (_, _) => match rng.below(2) {
            0 => format!("V.a. {phrase} {s}."),
            _ => format!("{} nicht auszuschließen.", capitalise(phrase)),
        },
    }
}

fn filler(rng: &mut Rng, lang: &str) -> &'static str {
    let options: &[&'static str] = match lang {
        "fr" => &[
            "Le reste de l'examen est sans particularité.",
            "Structures osseuses d'aspect normal.",
            "Comparaison avec l'examen précédent.",
            "Examen réalisé après injection de produit de contraste.",
        ],
        "de" => &[
            "Übrige Strukturen unauffällig.",
            "Ossäre Strukturen regelrecht.",
            "Vergleich mit der Voruntersuchung.",
            "Untersuchung nach Kontrastmittelgabe.",
        ],
        _ => &[
            "The remainder of the examination is unremarkable.",
            "Osseous structures are normal.",
            "Comparison with the prior examination.",
            "Examination after intravenous contrast.",
        ],
    };
    options[rng.below(options.len())]
}

/// `n` studies and what each was generated with.
pub fn generate(n: usize, seed: u64) -> (Vec<StudyDoc>, Vec<Truth>) {
    let mut rng = Rng::new(seed);
    let mut docs = Vec::with_capacity(n);
    let mut truths = Vec::with_capacity(n);
    for i in 0..n {
        let lang = *rng.pick(&["en", "fr", "de"]);
        let primary = rng.below(FINDINGS.len());
        let said = match rng.below(20) {
            0..=11 => Said::Present,
            12..=16 => Said::Absent,
            _ => Said::Uncertain,
        };
        let mut findings = vec![(primary, said)];
        if rng.below(2) == 0 {
            // A second finding, said absent, as reports list what they looked for.
            let other = rng.below(FINDINGS.len());
            if other != primary {
                findings.push((other, Said::Absent));
            }
        }
        let mut sentences = Vec::new();
        for &(f, said) in &findings {
            let finding = &FINDINGS[f];
            let phrases = match lang {
                "fr" => finding.fr,
                "de" => finding.de,
                _ => finding.en,
            };
            let phrase = *rng.pick(phrases);
            sentences.push(sentence(&mut rng, lang, phrase, said));
        }
        sentences.push(filler(&mut rng, lang).to_owned());
        let modality = FINDINGS[primary].modality;
        let date = 20150101 + 10000 * rng.below(11) as u32 + 100 * rng.below(12) as u32 + rng.below(28) as u32;
        let uid = format!("1.2.826.0.1.3680043.10.543.{}", i + 1);
        docs.push(StudyDoc {
            study_uid: uid.clone(),
            patient_id: format!("PAT{:05}", rng.below(100_000)),
            patient_name: format!("Patient^{}", i + 1),
            study_date: Some(date),
            modalities: vec![modality.to_owned()],
            study_description: modality.to_owned(),
            reports: vec![Report { lang: None, text: sentences.join(" ") }],
            ..StudyDoc::default()
        });
        truths.push(Truth { uid, lang, modality, date, findings });
    }
    (docs, truths)
}

/// The kinds of query the set measures.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub enum Kind {
    /// A finding's term in one language; relevant reports are in all three.
    CrossLanguage,
    /// A term the reports never use for the finding.
    Synonym,
    /// What a patient would say.
    Lay,
    /// An abbreviation.
    Abbreviation,
    /// A broader term: the narrower findings are relevant.
    Broader,
    /// A finding with a filter on the metadata.
    Metadata,
}

pub struct Query {
    pub kind: Kind,
    pub q: &'static str,
    /// The concept whose findings (and narrower ones) are relevant.
    pub concept: &'static str,
    pub modality: Option<&'static str>,
    pub dates: Option<(u32, u32)>,
}

const fn q(kind: Kind, q: &'static str, concept: &'static str) -> Query {
    Query { kind, q, concept, modality: None, dates: None }
}

pub const QUERIES: &[Query] = &[
    q(Kind::CrossLanguage, "nodule pulmonaire", "lung-nodule"),
    q(Kind::CrossLanguage, "Lungenrundherd", "lung-nodule"),
    q(Kind::CrossLanguage, "lung nodule", "lung-nodule"),
    q(Kind::CrossLanguage, "embolie pulmonaire", "pulmonary-embolism"),
    q(Kind::CrossLanguage, "Lungenembolie", "pulmonary-embolism"),
    q(Kind::CrossLanguage, "pulmonary embolism", "pulmonary-embolism"),
    q(Kind::CrossLanguage, "épanchement pleural", "pleural-effusion"),
    q(Kind::CrossLanguage, "Pleuraerguss", "pleural-effusion"),
    q(Kind::CrossLanguage, "pleural effusion", "pleural-effusion"),
    q(Kind::CrossLanguage, "fracture du col du fémur", "hip-fracture"),
    q(Kind::CrossLanguage, "Schenkelhalsfraktur", "hip-fracture"),
    q(Kind::CrossLanguage, "Appendizitis", "appendicitis"),
    q(Kind::CrossLanguage, "kyste hépatique", "liver-cyst"),
    q(Kind::CrossLanguage, "Meniskusriss", "meniscal-tear"),
    q(Kind::CrossLanguage, "cardiomégalie", "cardiomegaly"),
    q(Kind::Synonym, "solitary pulmonary nodule", "lung-nodule"),
    q(Kind::Synonym, "Lungenknoten", "lung-nodule"),
    q(Kind::Synonym, "hip fracture", "hip-fracture"),
    q(Kind::Synonym, "urolithiasis", "kidney-stone"),
    q(Kind::Synonym, "Nierenstein", "kidney-stone"),
    q(Kind::Synonym, "infection pulmonaire", "pneumonia"),
    q(Kind::Synonym, "Herzvergrößerung", "cardiomegaly"),
    q(Kind::Synonym, "phlébite", "deep-vein-thrombosis"),
    q(Kind::Synonym, "Hirninfarkt", "ischemic-stroke"),
    q(Kind::Synonym, "brain infarct", "ischemic-stroke"),
    q(Kind::Lay, "blood clot in the lung", "pulmonary-embolism"),
    q(Kind::Lay, "collapsed lung", "pneumothorax"),
    q(Kind::Lay, "broken hip", "hip-fracture"),
    q(Kind::Lay, "water on the lung", "pleural-effusion"),
    q(Kind::Lay, "kidney stone", "kidney-stone"),
    q(Kind::Lay, "lung infection", "pneumonia"),
    q(Kind::Lay, "enlarged heart", "cardiomegaly"),
    q(Kind::Lay, "broken rib", "rib-fracture"),
    q(Kind::Lay, "Lungenentzündung", "pneumonia"),
    q(Kind::Abbreviation, "PE", "pulmonary-embolism"),
    q(Kind::Abbreviation, "EP", "pulmonary-embolism"),
    q(Kind::Abbreviation, "LE", "pulmonary-embolism"),
    q(Kind::Abbreviation, "PNO", "pneumothorax"),
    q(Kind::Abbreviation, "TVP", "deep-vein-thrombosis"),
    q(Kind::Abbreviation, "DVT", "deep-vein-thrombosis"),
    q(Kind::Abbreviation, "AAA", "aortic-aneurysm"),
    q(Kind::Abbreviation, "SDH", "intracranial-hemorrhage"),
    q(Kind::Broader, "fracture", "fracture"),
    q(Kind::Broader, "Fraktur", "fracture"),
    q(Kind::Broader, "stroke", "stroke"),
    q(Kind::Broader, "AVC", "stroke"),
    q(Kind::Broader, "lung lesion", "lung-lesion"),
    q(Kind::Broader, "Embolie", "embolism"),
    q(Kind::Broader, "cancer", "cancer"),
    Query { kind: Kind::Metadata, q: "fracture", concept: "fracture", modality: Some("CT"), dates: None },
    Query { kind: Kind::Metadata, q: "Lungenembolie", concept: "pulmonary-embolism", modality: None, dates: Some((20180101, 20221231)) },
    Query { kind: Kind::Metadata, q: "pneumonia", concept: "pneumonia", modality: Some("CR"), dates: Some((20150101, 20201231)) },
    Query { kind: Kind::Metadata, q: "nodule pulmonaire", concept: "lung-nodule", modality: None, dates: Some((20200101, 20251231)) },
];

/// The grade of a study for a query: 3 the finding present, 2 a narrower finding present,
/// 1 either said uncertain, 0 otherwise (absent, or not mentioned, or outside the filters).
pub fn grade(query: &Query, truth: &Truth) -> u32 {
    if query.modality.is_some_and(|m| m != truth.modality) {
        return 0;
    }
    if query.dates.is_some_and(|(from, to)| truth.date < from || truth.date > to) {
        return 0;
    }
    let mut best = 0;
    for &(f, said) in &truth.findings {
        let finding = &FINDINGS[f];
        let g = if finding.concept == query.concept {
            3
        } else if finding.broader.contains(&query.concept) {
            2
        } else {
            continue;
        };
        let g = match said {
            Said::Present => g,
            Said::Uncertain => 1,
            Said::Absent => 0,
        };
        best = best.max(g);
    }
    best
}

/// Whether a study mentions the query's finding only as absent.
pub fn negated_only(query: &Query, truth: &Truth) -> bool {
    let mentions: Vec<Said> = truth
        .findings
        .iter()
        .filter(|(f, _)| FINDINGS[*f].concept == query.concept || FINDINGS[*f].broader.contains(&query.concept))
        .map(|(_, s)| *s)
        .collect();
    !mentions.is_empty() && mentions.iter().all(|s| *s == Said::Absent)
}
