//! The text of stored reports: a DICOM Structured Report's content tree (PS3.3 §C.17.3: the
//! document title, then each item's concept name with its text or code meaning, in tree
//! order) and an Encapsulated PDF's text (lopdf, pure Rust). No I/O: the archive reads the
//! bytes and the values the instance's metadata keeps as bulk data.

use serde_json::Value;

/// SR storage SOP classes whose content tree is read (PS3.4 Annex B.5): Basic Text, Enhanced,
/// Comprehensive, Comprehensive 3D and Extensible SR.
pub const SR_CLASSES: &[&str] = &[
    "1.2.840.10008.5.1.4.1.1.88.11",
    "1.2.840.10008.5.1.4.1.1.88.22",
    "1.2.840.10008.5.1.4.1.1.88.33",
    "1.2.840.10008.5.1.4.1.1.88.34",
    "1.2.840.10008.5.1.4.1.1.88.35",
];

/// Encapsulated PDF Storage (PS3.4 Annex B.5).
pub const PDF_CLASS: &str = "1.2.840.10008.5.1.4.1.1.104.1";

/// Largest PDF whose text is extracted: a PDF is read whole (its cross-reference table is at
/// its end), so this bounds the memory one extraction takes. Larger ones are indexed without
/// their text (and logged).
pub const MAX_PDF_BYTES: u64 = 32 << 20;

/// Longest text value read from bulk data for the index.
pub const MAX_TEXT_VALUE_BYTES: u64 = 1 << 20;

/// A piece of a report's text: known, or a bulk value of the instance to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Text as the metadata has it.
    Text(String),
    /// A value kept as bulk data: its byte range in the stored object.
    Bulk {
        /// Offset of the value in the object.
        offset: u64,
        /// Its length.
        length: u64,
    },
}

const CONTENT_SEQUENCE: &str = "0040A730";
const CONCEPT_NAME: &str = "0040A043";
const CONCEPT_CODE: &str = "0040A168";
const CODE_MEANING: &str = "00080104";
const VALUE_TYPE: &str = "0040A040";
const TEXT_VALUE: &str = "0040A160";
/// Encapsulated Document (0042,0011).
pub const ENCAPSULATED_DOCUMENT: &str = "00420011";
/// Specific Character Set (0008,0005).
pub const SPECIFIC_CHARACTER_SET: &str = "00080005";

fn first_string(item: &Value, tag: &str) -> Option<String> {
    item.get(tag)?.get("Value")?.get(0)?.as_str().map(str::to_owned)
}

fn meaning(item: &Value, sequence: &str) -> Option<String> {
    let code = item.get(sequence)?.get("Value")?.get(0)?;
    first_string(code, CODE_MEANING).filter(|m| !m.trim().is_empty())
}

/// A bulk value's range from its internal BulkDataURI (`vna-bulk:{offset}-{length}`).
pub fn bulk_range(element: &Value) -> Option<(u64, u64)> {
    let uri = element.get("BulkDataURI")?.as_str()?;
    let (offset, length) = uri.strip_prefix("vna-bulk:")?.split_once('-')?;
    Some((offset.parse().ok()?, length.parse().ok()?))
}

/// The pieces of an SR's text from its DICOM JSON: the title, then each content item in
/// order, one per line ("Finding: …"); containers name their section.
pub fn sr_outline(dataset: &Value) -> Vec<Piece> {
    let mut out = Vec::new();
    if let Some(title) = meaning(dataset, CONCEPT_NAME) {
        out.push(Piece::Text(format!("{title}\n")));
    }
    walk(dataset, 0, &mut out);
    out
}

/// Deepest content tree walked (a tree deeper than this is malformed or hostile).
const MAX_DEPTH: usize = 64;

fn walk(node: &Value, depth: usize, out: &mut Vec<Piece>) {
    if depth > MAX_DEPTH {
        return;
    }
    let Some(items) = node.get(CONTENT_SEQUENCE).and_then(|s| s.get("Value")).and_then(Value::as_array) else { return };
    for item in items {
        let name = meaning(item, CONCEPT_NAME);
        let prefix = name.as_deref().map(|n| format!("{n}: ")).unwrap_or_default();
        match first_string(item, VALUE_TYPE).as_deref() {
            Some("TEXT") => {
                if let Some(text) = first_string(item, TEXT_VALUE) {
                    out.push(Piece::Text(format!("{prefix}{text}\n")));
                } else if let Some((offset, length)) = item.get(TEXT_VALUE).and_then(bulk_range) {
                    out.push(Piece::Text(prefix));
                    out.push(Piece::Bulk { offset, length });
                    out.push(Piece::Text("\n".into()));
                }
            }
            Some("CODE") => {
                if let Some(code) = meaning(item, CONCEPT_CODE) {
                    out.push(Piece::Text(format!("{prefix}{code}\n")));
                }
            }
            Some("CONTAINER") => {
                if let Some(n) = name {
                    out.push(Piece::Text(format!("{n}\n")));
                }
            }
            _ => {}
        }
        walk(item, depth + 1, out);
    }
}

/// Where an Encapsulated PDF's bytes are: in its metadata (a small one, `InlineBinary`) or a
/// bulk value of the object to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PdfSource {
    /// The document itself.
    Inline(Vec<u8>),
    /// Its byte range in the stored object.
    Bulk {
        /// Offset of the value in the object.
        offset: u64,
        /// Its length.
        length: u64,
    },
}

/// Where the Encapsulated Document (0042,0011) of a PDF instance's DICOM JSON is.
pub fn pdf_source(dataset: &Value) -> Option<PdfSource> {
    use base64::Engine;
    let element = dataset.get(ENCAPSULATED_DOCUMENT)?;
    if let Some((offset, length)) = bulk_range(element) {
        return Some(PdfSource::Bulk { offset, length });
    }
    let inline = element.get("InlineBinary")?.as_str()?;
    base64::engine::general_purpose::STANDARD.decode(inline).ok().map(PdfSource::Inline)
}

/// A PDF's text, pages in order; empty for a PDF without text (a scan). An error for what
/// lopdf cannot read (damaged, encrypted): the caller indexes the study without it. The
/// reason is lopdf's kind of error only (what follows its first colon may quote the document).
pub fn pdf_text(bytes: &[u8]) -> Result<String, String> {
    let kind = |e: lopdf::Error| e.to_string().split(':').next().unwrap_or_default().trim().to_owned();
    let doc = lopdf::Document::load_mem(bytes).map_err(kind)?;
    let pages: Vec<u32> = doc.get_pages().keys().copied().collect();
    if pages.is_empty() {
        return Ok(String::new());
    }
    let text = doc.extract_text(&pages).map_err(kind)?;
    Ok(text.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn code(meaning: &str) -> Value {
        json!({"vr": "SQ", "Value": [{"00080100": {"vr": "SH", "Value": ["X"]}, "00080104": {"vr": "LO", "Value": [meaning]}}]})
    }

    #[test]
    fn an_sr_content_tree_reads_in_order_with_bulk_values_to_fetch() {
        let sr = json!({
            "0040A043": code("Imaging Report"),
            "0040A040": {"vr": "CS", "Value": ["CONTAINER"]},
            "0040A730": {"vr": "SQ", "Value": [
                {"0040A040": {"vr": "CS", "Value": ["CONTAINER"]}, "0040A043": code("Findings"), "0040A730": {"vr": "SQ", "Value": [
                    {"0040A040": {"vr": "CS", "Value": ["TEXT"]}, "0040A043": code("Finding"), "0040A160": {"vr": "UT", "Value": ["Nodule pulmonaire droit."]}},
                    {"0040A040": {"vr": "CS", "Value": ["CODE"]}, "0040A043": code("Finding"), "0040A168": code("Pleural effusion")},
                    {"0040A040": {"vr": "CS", "Value": ["NUM"]}, "0040A043": code("Diameter")},
                ]}},
                {"0040A040": {"vr": "CS", "Value": ["TEXT"]}, "0040A043": code("Impression"), "0040A160": {"vr": "UT", "BulkDataURI": "vna-bulk:1200-4000"}},
            ]},
        });
        assert_eq!(
            sr_outline(&sr),
            vec![
                Piece::Text("Imaging Report\n".into()),
                Piece::Text("Findings\n".into()),
                Piece::Text("Finding: Nodule pulmonaire droit.\n".into()),
                Piece::Text("Finding: Pleural effusion\n".into()),
                Piece::Text("Impression: ".into()),
                Piece::Bulk { offset: 1200, length: 4000 },
                Piece::Text("\n".into()),
            ]
        );
    }

    /// A one-page PDF showing `lines` in Helvetica (WinAnsiEncoding), or none: a scan.
    fn pdf(lines: &[&str]) -> Vec<u8> {
        use lopdf::content::{Content, Operation};
        use lopdf::{dictionary, Document, Object, Stream};
        let mut doc = Document::with_version("1.5");
        let pages_id = doc.new_object_id();
        let font = doc
            .add_object(dictionary! {"Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica", "Encoding" => "WinAnsiEncoding"});
        let resources = doc.add_object(dictionary! {"Font" => dictionary! {"F1" => font}});
        let mut ops = vec![Operation::new("BT", vec![]), Operation::new("Tf", vec!["F1".into(), 12.into()])];
        for (i, line) in lines.iter().enumerate() {
            let y = 700 - 20 * i as i64;
            ops.push(Operation::new("Tm", vec![1.into(), 0.into(), 0.into(), 1.into(), 72.into(), y.into()]));
            let (latin1, _, _) = encoding_rs::WINDOWS_1252.encode(line);
            ops.push(Operation::new("Tj", vec![Object::String(latin1.into_owned(), lopdf::StringFormat::Literal)]));
        }
        ops.push(Operation::new("ET", vec![]));
        let content = doc.add_object(Stream::new(dictionary! {}, Content { operations: ops }.encode().expect("content")));
        let page = doc.add_object(dictionary! {"Type" => "Page", "Parent" => pages_id, "Contents" => content});
        doc.objects.insert(
            pages_id,
            Object::Dictionary(dictionary! {
                "Type" => "Pages", "Kids" => vec![page.into()], "Count" => 1, "Resources" => resources,
                "MediaBox" => vec![0.into(), 0.into(), 595.into(), 842.into()],
            }),
        );
        let catalog = doc.add_object(dictionary! {"Type" => "Catalog", "Pages" => pages_id});
        doc.trailer.set("Root", catalog);
        let mut out = Vec::new();
        doc.save_to(&mut out).expect("save");
        out
    }

    #[test]
    fn a_pdf_gives_its_text_and_a_scan_none() {
        let text = pdf_text(&pdf(&["Compte rendu", "Embolie pulmonaire segmentaire droite."])).expect("text");
        assert!(text.contains("Compte rendu") && text.contains("Embolie pulmonaire segmentaire droite."), "{text:?}");
        let accents = pdf_text(&pdf(&["Épanchement pleural, Lungenentzündung"])).expect("text");
        assert!(accents.contains("Épanchement") && accents.contains("Lungenentzündung"), "{accents:?}");
        assert_eq!(pdf_text(&pdf(&[])).expect("a scan has no text"), "");
    }

    #[test]
    fn a_pdf_is_found_inline_or_in_bulk_data() {
        let inline = json!({"00420011": {"vr": "OB", "InlineBinary": "JVBERg=="}});
        assert_eq!(pdf_source(&inline), Some(PdfSource::Inline(b"%PDF".to_vec())));
        let bulk = json!({"00420011": {"vr": "OB", "BulkDataURI": "vna-bulk:900-123456"}});
        assert_eq!(pdf_source(&bulk), Some(PdfSource::Bulk { offset: 900, length: 123_456 }));
        assert_eq!(pdf_source(&json!({})), None);
    }

    #[test]
    fn a_damaged_pdf_is_an_error_not_a_panic() {
        assert!(pdf_text(b"%PDF-1.4 garbage").is_err());
        assert!(pdf_text(b"").is_err());
    }
}
