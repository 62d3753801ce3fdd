//! Search of the archive by meaning: a clinician types *nodule pulmonaire*, *Lungenrundherd* or
//! *lung nodule* and finds the same studies, ranked, the ones whose report says the finding is
//! absent far below. Knows no catalog, blob store or protocol: the archive hands it studies
//! ([`StudyDoc`]) and asks it queries ([`SearchRequest`]).
//!
//! # How it is built
//!
//! - `analyze.rs`: words with offsets, case and accent folding, the language of a report
//!   (whatlang, among French, German and English), stop words (`stopwords.rs`), Snowball stems
//!   (frostem, the stemmers tantivy uses), and German compounds split into known parts so that
//!   *Lungenembolie* meets *Embolie*.
//! - `concepts.rs`: the medical concept table, data in `config/search-concepts.toml` — concepts
//!   with terms per language, abbreviations (matched only in capitals: *EP*, not *le*), broader
//!   links — compiled into stem sequences per language and matched longest first.
//! - `negation.rs`: NegEx-style cues per language (*pas de*, *kein Hinweis auf*, *ruled out*,
//!   *V.a.*), each with a scope, so a finding is present, absent or uncertain.
//! - `document.rs`: a study's metadata and reports analysed into the index's fields: words said
//!   present apart from words said absent, concepts (with their broader ones) in three fields
//!   by polarity.
//! - `query.rs`: the query syntax (words, `"phrases"`, `-exclusions`), its units of meaning
//!   (the concepts it names in any language, then its other words), limits and filters.
//! - `index.rs`: the tantivy index. Fields are fed pre-tokenized by our analysis; tantivy
//!   scores, stores and commits. A concept scores a constant by polarity (present 10,
//!   uncertain 4, absent 0.02: BM25's per-field idf would rank a rare uncertain mention above
//!   a common present one); words score BM25 (absent ones ×0.02). Every unit of the query must
//!   match. The visibility rules' tenants are a filter of the same query (a tenant is indexed
//!   with each of its ancestors: `hug/radiology` under `hug`). A commit records the catalog
//!   change-feed position it reflects, atomically with the documents.
//! - `hl7.rs`: the text of an HL7 v2 ORU^R01 and the study it reports on (hl7-parser).
//! - `highlight.rs`: snippets of the reports around what matched.
//! - `extract.rs`: the text of stored reports: an SR's content tree from its DICOM JSON (bulk
//!   text values named for the archive to read) and an Encapsulated PDF's text (lopdf; read
//!   whole, so bounded by [`MAX_PDF_BYTES`]).

mod analyze;
mod concepts;
mod document;
mod extract;
mod highlight;
mod hl7;
mod index;
mod negation;
mod query;
mod stopwords;

pub use analyze::{detect, fold, words, Analyzer, Lang, Term, Word};
pub use concepts::{ConceptHit, TableError, Vocabulary, CURRENT_VERSION, DEFAULT_TABLE};
pub use document::{Report, StudyDoc, FALLBACK_LANG};
pub use extract::{
    bulk_range, pdf_source, pdf_text, sr_outline, PdfSource, Piece, ENCAPSULATED_DOCUMENT, MAX_PDF_BYTES, MAX_TEXT_VALUE_BYTES, PDF_CLASS,
    SPECIFIC_CHARACTER_SET, SR_CLASSES,
};
pub use hl7::{parse_oru, OruReport};
pub use index::{Hit, SearchIndex, SearchResults, SCHEMA_VERSION};
pub use negation::{Cues, Polarity, MAX_SCOPE};
pub use query::{SearchError, SearchRequest, MAX_LIMIT, MAX_OFFSET, MAX_QUERY_CHARS};
