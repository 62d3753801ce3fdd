//! The per-node index of studies (tantivy): one document per study, replaced whole when the
//! study changes, and the position in the catalog's change feed it reflects, committed with it.
//!
//! Text fields are fed already analysed ([`PreTokenizedString`]): the analysis is ours
//! (`analyze.rs`), the same for a query and a report, and tantivy scores (BM25) and stores.

use std::path::Path;
use std::sync::Mutex;

use tantivy::collector::{Count, TopDocs};
use tantivy::query::{AllQuery, BooleanQuery, BoostQuery, ConstScoreQuery, Occur, PhraseQuery, Query, RangeQuery, TermQuery};
use tantivy::schema::{Field, IndexRecordOption, NumericOptions, Schema, TextFieldIndexing, TextOptions, Value, STORED, STRING};
use tantivy::tokenizer::{PreTokenizedString, Token};
use tantivy::{DocAddress, Index, IndexReader, IndexWriter, Order, ReloadPolicy, TantivyDocument, Term};

use crate::analyze::{fold, words, Lang, Term as Analysed};
use crate::concepts::Vocabulary;
use crate::document::{Report, StudyDoc};
use crate::highlight::highlights;
use crate::query::{plan, Plan, SearchError, SearchRequest, Unit, MAX_LIMIT, MAX_OFFSET};

/// The version of the index's schema and analysis: an index of another is rebuilt.
pub const SCHEMA_VERSION: u32 = 1;

/// The file in an index's root naming its current generation.
const CURRENT: &str = "CURRENT";

/// Memory of the index writer (tantivy's minimum is 15 MB).
const WRITER_HEAP: usize = 64 * 1024 * 1024;

/// How much each kind of match weighs: concepts by a constant per polarity, words by BM25
/// times their weight.
mod weight {
    pub const CONCEPT: f32 = 10.0;
    pub const CONCEPT_UNCERTAIN: f32 = 4.0;
    pub const TEXT: f32 = 1.0;
    pub const META: f32 = 1.0;
    pub const NAME: f32 = 2.0;
    pub const IDENTIFIER: f32 = 2.0;
    pub const PHRASE: f32 = 2.0;
    /// A finding said absent still matches, far below one said present.
    pub const NEGATED: f32 = 0.02;
}

struct Fields {
    uid: Field,
    tenant: Field,
    patient_id: Field,
    accession: Field,
    institution: Field,
    modality: Field,
    sex: Field,
    age: Field,
    date: Field,
    description: Field,
    reports: Field,
    name: Field,
    meta: Field,
    text: Field,
    text_neg: Field,
    concept: Field,
    concept_uncertain: Field,
    concept_neg: Field,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let analysed = TextOptions::default()
        .set_indexing_options(TextFieldIndexing::default().set_tokenizer("raw").set_index_option(IndexRecordOption::WithFreqsAndPositions));
    let number = NumericOptions::default().set_indexed().set_fast().set_stored();
    let fields = Fields {
        uid: b.add_text_field("uid", STRING | STORED),
        tenant: b.add_text_field("tenant", STRING),
        patient_id: b.add_text_field("patient_id", STRING | STORED),
        accession: b.add_text_field("accession", STRING),
        institution: b.add_text_field("institution", STRING),
        modality: b.add_text_field("modality", STRING | STORED),
        sex: b.add_text_field("sex", STRING),
        age: b.add_u64_field("age", number.clone()),
        date: b.add_i64_field("date", number),
        description: b.add_text_field("description", STORED),
        reports: b.add_text_field("reports", STORED),
        name: b.add_text_field("name", analysed.clone()),
        meta: b.add_text_field("meta", analysed.clone()),
        text: b.add_text_field("text", analysed.clone()),
        text_neg: b.add_text_field("text_neg", analysed.clone()),
        concept: b.add_text_field("concept", analysed.clone()),
        concept_uncertain: b.add_text_field("concept_uncertain", analysed.clone()),
        concept_neg: b.add_text_field("concept_neg", analysed),
    };
    (b.build(), fields)
}

/// What a commit records beside the documents.
#[derive(serde::Serialize, serde::Deserialize)]
struct Payload {
    schema: u32,
    position: i64,
}

/// One hit of a search.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Hit {
    /// Study Instance UID.
    #[serde(rename = "StudyInstanceUID")]
    pub study_instance_uid: String,
    /// The score (higher is better; only comparable within one search).
    #[serde(rename = "score")]
    pub score: f32,
    /// Patient ID.
    #[serde(rename = "PatientID")]
    pub patient_id: String,
    /// Study Date (YYYYMMDD), empty when unknown.
    pub study_date: String,
    /// Study Description.
    pub study_description: String,
    /// Modalities in Study.
    pub modalities_in_study: Vec<String>,
    /// Snippets of the reports with the matched words in `<em>` (HTML-escaped).
    #[serde(rename = "highlights")]
    pub highlights: Vec<String>,
}

/// A page of hits and how many studies match in all.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SearchResults {
    /// The page.
    pub hits: Vec<Hit>,
    /// Every study that matches.
    pub total: usize,
}

/// The index of studies.
pub struct SearchIndex {
    reader: IndexReader,
    writer: Mutex<IndexWriter>,
    fields: Fields,
    vocab: std::sync::Arc<Vocabulary>,
    /// On disk: the root directory and this index's generation in it.
    home: Option<(std::path::PathBuf, u64)>,
    /// The change-feed position of the last commit.
    position: std::sync::atomic::AtomicI64,
}

impl std::fmt::Debug for SearchIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchIndex").finish_non_exhaustive()
    }
}

impl SearchIndex {
    /// Open the index kept in `root`, or create it. `root` holds generations (`gen-N/`, one
    /// tantivy index each) and `CURRENT`, the one in use: a rebuild writes the next generation
    /// beside it and switches `CURRENT` in one rename. An index of another schema version, one
    /// that cannot be read, or a directory of another layout is removed and created empty: it
    /// is derived, and rebuilt from the catalog.
    pub fn open(root: &Path, vocab: std::sync::Arc<Vocabulary>) -> Result<SearchIndex, SearchError> {
        std::fs::create_dir_all(root)?;
        let current = std::fs::read_to_string(root.join(CURRENT)).ok().and_then(|s| s.trim().parse::<u64>().ok());
        let generation = match current {
            Some(g) if root.join(format!("gen-{g}")).is_dir() => g,
            _ => {
                // Nothing usable: start over at generation 1.
                for entry in std::fs::read_dir(root)? {
                    let path = entry?.path();
                    if path.is_dir() {
                        std::fs::remove_dir_all(&path)?;
                    } else {
                        std::fs::remove_file(&path)?;
                    }
                }
                let index = SearchIndex::create(root, 1, vocab)?;
                index.make_current()?;
                return Ok(index);
            }
        };
        let dir = root.join(format!("gen-{generation}"));
        let (schema, fields) = schema();
        let usable = |index: &Index| {
            index.schema() == schema
                && index
                    .load_metas()
                    .ok()
                    .and_then(|m| m.payload)
                    .and_then(|p| serde_json::from_str::<Payload>(&p).ok())
                    .is_none_or(|p| p.schema == SCHEMA_VERSION)
        };
        match Index::open_in_dir(&dir) {
            Ok(index) if usable(&index) => {
                let mut opened = SearchIndex::with_index(index, fields, vocab)?;
                opened.home = Some((root.to_path_buf(), generation));
                Ok(opened)
            }
            Ok(_)
            | Err(tantivy::TantivyError::OpenReadError(_))
            | Err(tantivy::TantivyError::OpenDirectoryError(_))
            | Err(tantivy::TantivyError::IncompatibleIndex(_))
            | Err(tantivy::TantivyError::DataCorruption(_)) => {
                tracing::warn!(dir = %dir.display(), "search index of another version or unreadable: rebuilding it");
                let index = SearchIndex::create(root, generation + 1, vocab)?;
                index.make_current()?;
                index.remove_other_generations()?;
                Ok(index)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// A new, empty generation `generation` in `root` (not current yet).
    fn create(root: &Path, generation: u64, vocab: std::sync::Arc<Vocabulary>) -> Result<SearchIndex, SearchError> {
        let dir = root.join(format!("gen-{generation}"));
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::create_dir_all(&dir)?;
        let (schema, fields) = schema();
        let mut index = SearchIndex::with_index(Index::create_in_dir(&dir, schema)?, fields, vocab)?;
        index.home = Some((root.to_path_buf(), generation));
        Ok(index)
    }

    /// An empty index to rebuild this one into: the next generation beside it on disk (not
    /// current until [`Self::make_current`]), or another index in memory.
    pub fn next_generation(&self) -> Result<SearchIndex, SearchError> {
        match &self.home {
            Some((root, generation)) => SearchIndex::create(root, generation + 1, self.vocab.clone()),
            None => SearchIndex::in_memory(self.vocab.clone()),
        }
    }

    /// Make this generation the one [`Self::open`] opens (an atomic rename, synced).
    pub fn make_current(&self) -> Result<(), SearchError> {
        let Some((root, generation)) = &self.home else { return Ok(()) };
        let tmp = root.join(format!("{CURRENT}.tmp"));
        {
            let mut f = std::fs::File::create(&tmp)?;
            std::io::Write::write_all(&mut f, format!("{generation}\n").as_bytes())?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, root.join(CURRENT))?;
        std::fs::File::open(root)?.sync_all()?;
        Ok(())
    }

    /// Remove the generations beside this one (after a rebuild switched to it; searches still
    /// holding the old index keep reading its open files).
    pub fn remove_other_generations(&self) -> Result<(), SearchError> {
        let Some((root, generation)) = &self.home else { return Ok(()) };
        let mine = format!("gen-{generation}");
        for entry in std::fs::read_dir(root)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("gen-") && name != mine && entry.path().is_dir() {
                std::fs::remove_dir_all(entry.path())?;
            }
        }
        Ok(())
    }

    /// An index in memory (tests, benchmarks).
    pub fn in_memory(vocab: std::sync::Arc<Vocabulary>) -> Result<SearchIndex, SearchError> {
        let (schema, fields) = schema();
        SearchIndex::with_index(Index::create_in_ram(schema), fields, vocab)
    }

    fn with_index(index: Index, fields: Fields, vocab: std::sync::Arc<Vocabulary>) -> Result<SearchIndex, SearchError> {
        let writer = index.writer_with_num_threads(1, WRITER_HEAP)?;
        let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into()?;
        let position = index.load_metas()?.payload.and_then(|p| serde_json::from_str::<Payload>(&p).ok()).map_or(0, |p| p.position);
        Ok(SearchIndex {
            reader,
            writer: Mutex::new(writer),
            fields,
            vocab,
            home: None,
            position: std::sync::atomic::AtomicI64::new(position),
        })
    }

    /// The concept table the index analyses with.
    pub fn vocabulary(&self) -> &Vocabulary {
        &self.vocab
    }

    /// The change-feed position of the last commit (0 for a new index): read from the index's
    /// metadata when it is opened, then kept by [`Self::commit`].
    pub fn position(&self) -> i64 {
        self.position.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Put a study's document in place of the one it had (visible after [`Self::commit`]).
    pub fn upsert(&self, study: &StudyDoc) -> Result<(), SearchError> {
        let doc = self.document(study);
        let writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        writer.delete_term(Term::from_field_text(self.fields.uid, &study.study_uid));
        writer.add_document(doc)?;
        Ok(())
    }

    /// Remove a study (visible after [`Self::commit`]).
    pub fn remove(&self, study_uid: &str) {
        let writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        writer.delete_term(Term::from_field_text(self.fields.uid, study_uid));
    }

    /// Make the changes since the last commit durable and visible, with the change-feed
    /// position they reflect, in one step: a crash keeps both or neither.
    pub fn commit(&self, position: i64) -> Result<(), SearchError> {
        let payload = serde_json::to_string(&Payload { schema: SCHEMA_VERSION, position }).unwrap_or_default();
        {
            let mut writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
            let mut prepared = writer.prepare_commit()?;
            prepared.set_payload(&payload);
            prepared.commit()?;
        }
        self.position.store(position, std::sync::atomic::Ordering::Release);
        self.reader.reload()?;
        Ok(())
    }

    /// How many studies the index holds (as of the last commit).
    pub fn len(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// Whether the index holds no study.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn document(&self, s: &StudyDoc) -> TantivyDocument {
        let f = &self.fields;
        let a = s.analyse(&self.vocab);
        let mut doc = TantivyDocument::default();
        doc.add_text(f.uid, &s.study_uid);
        for (i, _) in s.tenant.match_indices('/').chain(std::iter::once((s.tenant.len(), ""))) {
            doc.add_text(f.tenant, &s.tenant[..i]);
        }
        doc.add_text(f.patient_id, &s.patient_id);
        doc.add_text(f.accession, &s.accession);
        doc.add_text(f.institution, fold(s.institution.trim()));
        for m in &s.modalities {
            doc.add_text(f.modality, m.trim().to_ascii_uppercase());
        }
        doc.add_text(f.sex, s.patient_sex.trim().to_ascii_uppercase());
        if let Some(age) = s.patient_age_years {
            doc.add_u64(f.age, u64::from(age));
        }
        if let Some(date) = s.study_date {
            doc.add_i64(f.date, i64::from(date));
        }
        doc.add_text(f.description, &s.study_description);
        doc.add_text(f.reports, serde_json::to_string(&a.reports).unwrap_or_default());
        let name: Vec<Analysed> = words(&s.patient_name.replace('^', " "))
            .into_iter()
            .enumerate()
            .map(|(i, w)| Analysed { stem: w.folded, position: i as u32, start: w.start, end: w.end, part: false })
            .collect();
        doc.add_pre_tokenized_text(f.name, pre_tokenized(&name));
        doc.add_pre_tokenized_text(f.meta, pre_tokenized(&a.meta));
        for terms in &a.text {
            doc.add_pre_tokenized_text(f.text, pre_tokenized(terms));
        }
        for terms in &a.text_neg {
            doc.add_pre_tokenized_text(f.text_neg, pre_tokenized(terms));
        }
        doc.add_pre_tokenized_text(f.concept, ids(&a.concepts));
        doc.add_pre_tokenized_text(f.concept_uncertain, ids(&a.concepts_uncertain));
        doc.add_pre_tokenized_text(f.concept_neg, ids(&a.concepts_negated));
        doc
    }

    /// Search the studies `tenants` may see (`None`: all).
    pub fn search(&self, req: &SearchRequest, tenants: Option<&[String]>) -> Result<SearchResults, SearchError> {
        if req.limit == 0 || req.limit > MAX_LIMIT {
            return Err(SearchError::BadRequest(format!("limit must be between 1 and {MAX_LIMIT}")));
        }
        if req.offset > MAX_OFFSET {
            return Err(SearchError::BadRequest(format!("offset must be at most {MAX_OFFSET}")));
        }
        if let (Some(from), Some(to)) = (req.date_from, req.date_to) {
            if from > to {
                return Err(SearchError::BadRequest("the date range ends before it starts".into()));
            }
        }
        let plan = plan(&self.vocab, &req.q)?;
        let filtered = !req.modalities.is_empty()
            || req.date_from.is_some()
            || req.date_to.is_some()
            || req.patient_id.is_some()
            || req.institution.is_some();
        if plan.is_empty() && !filtered {
            return Err(SearchError::BadRequest("give q, or a filter (modality, date, patient, institution)".into()));
        }
        let query = self.query(&plan, req, tenants);
        let searcher = self.reader.searcher();
        let total = searcher.search(&query, &Count)?;
        let page: Vec<(f32, DocAddress)> = if plan.is_empty() {
            // Nothing to rank by: the newest studies first.
            searcher
                .search(&query, &TopDocs::with_limit(req.limit).and_offset(req.offset).order_by_fast_field::<i64>("date", Order::Desc))?
                .into_iter()
                .map(|(_, a)| (0.0, a))
                .collect()
        } else {
            searcher.search(&query, &TopDocs::with_limit(req.limit).and_offset(req.offset).order_by_score())?
        };
        let concepts = plan.concepts();
        let mut hits = Vec::with_capacity(page.len());
        for (score, address) in page {
            let doc: TantivyDocument = searcher.doc(address)?;
            let text = |field: Field| doc.get_first(field).and_then(|v| v.as_str()).unwrap_or_default().to_owned();
            let reports: Vec<Report> = serde_json::from_str(&text(self.fields.reports)).unwrap_or_default();
            hits.push(Hit {
                study_instance_uid: text(self.fields.uid),
                score,
                patient_id: text(self.fields.patient_id),
                study_date: doc.get_first(self.fields.date).and_then(|v| v.as_i64()).map(|d| d.to_string()).unwrap_or_default(),
                study_description: text(self.fields.description),
                modalities_in_study: doc.get_all(self.fields.modality).filter_map(|v| v.as_str().map(str::to_owned)).collect(),
                highlights: highlights(&self.vocab, &plan, &concepts, &reports),
            });
        }
        Ok(SearchResults { hits, total })
    }

    fn query(&self, plan: &Plan, req: &SearchRequest, tenants: Option<&[String]>) -> Box<dyn Query> {
        let f = &self.fields;
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for unit in &plan.units {
            clauses.push((Occur::Must, self.unit_query(unit)));
        }
        for phrase in &plan.phrases {
            let mut any: Vec<(Occur, Box<dyn Query>)> = Vec::new();
            for lang in Lang::ALL {
                let stems = &phrase.stems[lang as usize];
                let first = stems.first().map_or(0, |s| s.0);
                for field in [f.text, f.meta] {
                    let terms: Vec<(usize, Term)> = stems.iter().map(|(p, s)| (p - first, Term::from_field_text(field, s))).collect();
                    let q: Box<dyn Query> = match terms.len() {
                        0 => continue,
                        1 => Box::new(TermQuery::new(terms[0].1.clone(), IndexRecordOption::WithFreqs)),
                        _ => Box::new(PhraseQuery::new_with_offset(terms)),
                    };
                    any.push((Occur::Should, Box::new(BoostQuery::new(q, weight::PHRASE))));
                }
            }
            clauses.push((Occur::Must, Box::new(BooleanQuery::new(any))));
        }
        for unit in &plan.excluded {
            clauses.push((Occur::MustNot, self.unit_query(unit)));
        }
        let filter = |q: Box<dyn Query>| -> (Occur, Box<dyn Query>) { (Occur::Must, Box::new(ConstScoreQuery::new(q, 0.0))) };
        let any_of = |field: Field, values: &mut dyn Iterator<Item = String>| -> Box<dyn Query> {
            Box::new(BooleanQuery::new(values.map(|v| (Occur::Should, term(Term::from_field_text(field, &v), 1.0))).collect()))
        };
        if let Some(grants) = tenants {
            clauses.push(filter(any_of(f.tenant, &mut grants.iter().cloned())));
        }
        if !req.modalities.is_empty() {
            clauses.push(filter(any_of(f.modality, &mut req.modalities.iter().map(|m| m.trim().to_ascii_uppercase()))));
        }
        if let Some(id) = &req.patient_id {
            clauses.push(filter(any_of(f.patient_id, &mut std::iter::once(id.clone()))));
        }
        if let Some(inst) = &req.institution {
            clauses.push(filter(any_of(f.institution, &mut std::iter::once(fold(inst.trim())))));
        }
        if req.date_from.is_some() || req.date_to.is_some() {
            let bound = |d: Option<u32>| match d {
                Some(d) => std::ops::Bound::Included(Term::from_field_i64(f.date, i64::from(d))),
                None => std::ops::Bound::Unbounded,
            };
            clauses.push(filter(Box::new(RangeQuery::new(bound(req.date_from), bound(req.date_to)))));
        }
        if plan.is_empty() {
            clauses.push((Occur::Must, Box::new(AllQuery)));
        }
        Box::new(BooleanQuery::new(clauses))
    }

    /// What matches one unit of meaning: its concepts (present, uncertain, and far below,
    /// absent), its words in the reports and the metadata, a name or an identifier.
    fn unit_query(&self, unit: &Unit) -> Box<dyn Query> {
        let f = &self.fields;
        let mut any: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for &c in &unit.concepts {
            let id = self.vocab.id(c);
            // A constant per polarity: BM25's idf, computed per field, would rank a rare
            // uncertain mention above a common present one.
            any.push((Occur::Should, constant(Term::from_field_text(f.concept, id), weight::CONCEPT)));
            any.push((Occur::Should, constant(Term::from_field_text(f.concept_uncertain, id), weight::CONCEPT_UNCERTAIN)));
            any.push((Occur::Should, constant(Term::from_field_text(f.concept_neg, id), weight::NEGATED)));
        }
        // Its words in the text: all of them (in one language's stems), present or absent.
        let mut seen: Vec<&Vec<String>> = Vec::new();
        for stems in &unit.stems {
            if stems.is_empty() || seen.contains(&stems) {
                continue;
            }
            seen.push(stems);
            let all = |fields: &[(Field, f32)]| -> Box<dyn Query> {
                Box::new(BooleanQuery::new(
                    stems
                        .iter()
                        .map(|s| {
                            let any = fields.iter().map(|&(f, w)| (Occur::Should, term(Term::from_field_text(f, s), w))).collect();
                            (Occur::Must, Box::new(BooleanQuery::new(any)) as Box<dyn Query>)
                        })
                        .collect(),
                ))
            };
            any.push((Occur::Should, all(&[(f.text, weight::TEXT), (f.meta, weight::META)])));
            any.push((Occur::Should, all(&[(f.text_neg, weight::NEGATED)])));
        }
        for folded in &unit.folded {
            any.push((Occur::Should, term(Term::from_field_text(f.name, folded), weight::NAME)));
        }
        for typed in &unit.typed {
            any.push((Occur::Should, term(Term::from_field_text(f.patient_id, typed), weight::IDENTIFIER)));
            any.push((Occur::Should, term(Term::from_field_text(f.accession, typed), weight::IDENTIFIER)));
        }
        Box::new(BooleanQuery::new(any))
    }
}

fn constant(t: Term, score: f32) -> Box<dyn Query> {
    Box::new(ConstScoreQuery::new(Box::new(TermQuery::new(t, IndexRecordOption::Basic)), score))
}

fn term(t: Term, boost: f32) -> Box<dyn Query> {
    Box::new(BoostQuery::new(Box::new(TermQuery::new(t, IndexRecordOption::WithFreqs)), boost))
}

fn pre_tokenized(terms: &[Analysed]) -> PreTokenizedString {
    PreTokenizedString {
        text: String::new(),
        tokens: terms
            .iter()
            .map(|t| Token {
                offset_from: t.start,
                offset_to: t.end,
                position: t.position as usize,
                text: t.stem.clone(),
                position_length: 1,
            })
            .collect(),
    }
}

fn ids(ids: &[String]) -> PreTokenizedString {
    PreTokenizedString {
        text: String::new(),
        tokens: ids
            .iter()
            .enumerate()
            .map(|(i, id)| Token { offset_from: 0, offset_to: 0, position: i, text: id.clone(), position_length: 1 })
            .collect(),
    }
}
