//! Reports in HL7 v2: the text of an ORU^R01 (HL7 v2.5 §7.3.1) — its OBX values of a text
//! type, in order — and the study it reports on, parsed with `hl7-parser`.
//!
//! The study: the Study Instance UID of the IHE ZDS segment (ZDS-1, IHE RAD TF-2 §4.128),
//! else the accession number: OBR-18 (Placer Field 1, where IHE Scheduled Workflow puts it),
//! else OBR-3 (Filler Order Number), first component.

/// What an ORU^R01 says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OruReport {
    /// The text of its OBX segments of type TX, FT, ST or CE (its text), one line each.
    pub text: String,
    /// ZDS-1, when present.
    pub study_uid: Option<String>,
    /// OBR-18, else OBR-3.
    pub accession: Option<String>,
}

/// OBX value types that carry report text (HL7 v2.5 Table 0125).
const TEXT_TYPES: &[&str] = &["TX", "FT", "ST", "CE", "CWE"];

/// Parse an ORU^R01; the reason when it is not one or has no text.
pub fn parse_oru(message: &str) -> Result<OruReport, String> {
    // The parser's own message quotes the input: name only where it failed.
    let msg = hl7_parser::Message::parse_with_lenient_newlines(message, true).map_err(|e| match e {
        hl7_parser::parser::ParseError::FailedToParse { position, .. } => {
            format!("not an HL7 v2 message: parsing failed at byte {position}")
        }
        hl7_parser::parser::ParseError::IncompleteInput(_) => "not an HL7 v2 message: it ends before its structure does".to_owned(),
    })?;
    let msh = msg.segment("MSH").ok_or("the message has no MSH segment")?;
    let kind = msh.field(9).map(|f| (component(f, 1), component(f, 2))).unwrap_or_default();
    if kind != ("ORU".to_owned(), "R01".to_owned()) {
        return Err("the message is not an ORU^R01 (MSH-9)".into());
    }
    let mut lines = Vec::new();
    for obx in msg.segments().filter(|s| s.name == "OBX") {
        let value_type = obx.field(2).map(|f| f.raw_value().trim().to_ascii_uppercase()).unwrap_or_default();
        if !TEXT_TYPES.contains(&value_type.as_str()) {
            continue;
        }
        let Some(value) = obx.field(5) else { continue };
        for repeat in value.repeats() {
            let text = if value_type == "CE" || value_type == "CWE" {
                // A coded value's text is its second component.
                repeat.component(2).map(|c| c.display(&msg.separators).to_string()).unwrap_or_default()
            } else {
                repeat.display(&msg.separators).to_string()
            };
            let text = text.replace('\r', "\n");
            if !text.trim().is_empty() {
                lines.push(text.trim().to_owned());
            }
        }
    }
    if lines.is_empty() {
        return Err("the message has no OBX text (TX, FT, ST, CE)".into());
    }
    let nonempty = |s: String| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
    let study_uid = msg.segment("ZDS").and_then(|z| z.field(1)).and_then(|f| nonempty(component(f, 1)));
    let obr = msg.segment("OBR");
    let accession = obr
        .and_then(|o| o.field(18))
        .and_then(|f| nonempty(component(f, 1)))
        .or_else(|| obr.and_then(|o| o.field(3)).and_then(|f| nonempty(component(f, 1))));
    Ok(OruReport { text: lines.join("\n"), study_uid, accession })
}

fn component(field: &hl7_parser::message::Field<'_>, n: usize) -> String {
    field.component(n).map(|c| c.raw_value().to_owned()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORU: &str = "MSH|^~\\&|RIS|HUG|VNA|HUG|20240101120000||ORU^R01^ORU_R01|MSG1|P|2.5\r\
        PID|1||PAT1^^^HUG||Dupont^Marie\r\
        OBR|1|PLC1|FIL9^RIS||CT THORAX|||||||||||||ACC123\r\
        ZDS|1.2.826.0.1.3680043.10.543.1^100^Application^DICOM\r\
        OBX|1|TX|18782-3^Study observation^LN||Nodule pulmonaire de 8 mm.\\.br\\Pas d'épanchement pleural.~Conclusion: nodule.||||||F\r\
        OBX|2|NM|8867-4^Heart rate^LN||72\r\
        OBX|3|CE|IMP^Impression^L||C1^Lungenrundherd^L\n";

    #[test]
    fn an_oru_gives_its_text_and_its_study() {
        let r = parse_oru(ORU).expect("ORU");
        assert_eq!(r.text, "Nodule pulmonaire de 8 mm.\nPas d'épanchement pleural.\nConclusion: nodule.\nLungenrundherd");
        assert_eq!(r.study_uid.as_deref(), Some("1.2.826.0.1.3680043.10.543.1"));
        assert_eq!(r.accession.as_deref(), Some("ACC123"), "OBR-18 before OBR-3");
        let without_18 = ORU.replace("|||||||||||||ACC123", "");
        assert_eq!(parse_oru(&without_18).expect("ORU").accession.as_deref(), Some("FIL9"));
    }

    #[test]
    fn other_messages_are_refused_with_a_reason() {
        assert!(parse_oru("hello").expect_err("not HL7").contains("HL7"));
        let broken = parse_oru("PID|1||SECRET-NAME\r").expect_err("no MSH");
        assert!(broken.contains("not an HL7 v2 message") && !broken.contains("SECRET"), "no part of the message in the reason: {broken}");
        let adt = ORU.replace("ORU^R01^ORU_R01", "ADT^A08");
        assert!(parse_oru(&adt).expect_err("ADT").contains("ORU^R01"));
        let no_text = "MSH|^~\\&|RIS|HUG|VNA|HUG|20240101||ORU^R01|1|P|2.5\rOBX|1|NM|X||72\r";
        assert!(parse_oru(no_text).expect_err("no text").contains("no OBX text"));
    }
}
