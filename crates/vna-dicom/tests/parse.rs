//! Parser tests on synthetic objects written by `vna_dicom::write`, fed whole and in every
//! chunking that could split a header or a value.

use vna_dicom::charset::Charset;
use vna_dicom::dataset::Value;
use vna_dicom::frames::{frame_layout, FrameLayout};
use vna_dicom::parse::{parse_bytes, parse_dataset_bytes, ParseError, ParseLimits, StreamParser};
use vna_dicom::tags;
use vna_dicom::ts;
use vna_dicom::write::{data_set, part10, Items};
use vna_dicom::VR;

fn base() -> Items {
    Items::new()
        .str(tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192")
        .str(tags::SOP_CLASS_UID, VR::UI, "1.2.840.10008.5.1.4.1.1.2")
        .str(tags::SOP_INSTANCE_UID, VR::UI, "1.2.3.4.5.6.7")
        .str(tags::STUDY_INSTANCE_UID, VR::UI, "1.2.3.4")
        .str(tags::SERIES_INSTANCE_UID, VR::UI, "1.2.3.4.5")
        .str(tags::PATIENT_NAME, VR::PN, "Müller^Jürgen")
        .str(tags::MODALITY, VR::CS, "CT")
}

/// The data set's DICOM JSON as stored, parsed back.
fn metadata(ds: &vna_dicom::dataset::DataSet) -> serde_json::Value {
    let text = vna_dicom::json::write_json(ds, false, 1024);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn feed_in_chunks(bytes: &[u8], chunk: usize) -> Result<vna_dicom::parse::ParsedObject, ParseError> {
    let mut p = StreamParser::new(ParseLimits::default());
    for c in bytes.chunks(chunk) {
        p.feed(c)?;
    }
    p.finish()
}

#[test]
fn explicit_native_frames_in_any_chunking() {
    let frames = 3u64;
    let pixels: Vec<u8> = (0..(4 * 4 * 2 * frames)).map(|i| i as u8).collect();
    let ds = base()
        .u16(tags::ROWS, 4)
        .u16(tags::COLUMNS, 4)
        .u16(tags::BITS_ALLOCATED, 16)
        .u16(tags::SAMPLES_PER_PIXEL, 1)
        .str(tags::NUMBER_OF_FRAMES, VR::IS, "3")
        .native_pixels(VR::OW, pixels.clone());
    let bytes = part10(&ds, ts::EXPLICIT_VR_LITTLE_ENDIAN);
    for chunk in [1, 2, 3, 7, 8, 13, 64, bytes.len()] {
        let obj = feed_in_chunks(&bytes, chunk).unwrap();
        assert_eq!(obj.transfer_syntax, ts::EXPLICIT_VR_LITTLE_ENDIAN);
        let name = obj.dataset.text(tags::PATIENT_NAME, &Charset::from_specific_character_set("ISO_IR 192"));
        assert_eq!(name.as_deref(), Some("Müller^Jürgen"));
        let FrameLayout::Native { first_offset, frame_length, count } = frame_layout(&obj) else { panic!("native") };
        assert_eq!((frame_length, count), (32, 3));
        let f2 = &bytes[(first_offset + frame_length) as usize..(first_offset + 2 * frame_length) as usize];
        assert_eq!(f2, &pixels[32..64]);
    }
}

#[test]
fn encapsulated_frames_with_and_without_offset_table() {
    let tiles: Vec<Vec<u8>> = (0..5u8).map(|i| [vec![0xFF, 0xD8, 0xFF, 0xE0], vec![i; 20]].concat()).collect();
    for (per_frame, table) in [(1, false), (1, true), (3, true), (2, false)] {
        let ds = base()
            .u16(tags::ROWS, 8)
            .u16(tags::COLUMNS, 8)
            .str(tags::NUMBER_OF_FRAMES, VR::IS, "5")
            .encapsulated_pixels(&tiles, per_frame, table);
        let bytes = part10(&ds, ts::JPEG_BASELINE);
        let obj = feed_in_chunks(&bytes, 5).unwrap();
        let FrameLayout::Encapsulated(frames) = frame_layout(&obj) else { panic!("encapsulated {per_frame} {table}") };
        assert_eq!(frames.len(), 5);
        for (i, pieces) in frames.iter().enumerate() {
            let got: Vec<u8> = pieces.iter().flat_map(|e| bytes[e.offset as usize..(e.offset + e.length) as usize].to_vec()).collect();
            // 24-byte tiles split into 1, 2 or 3 even fragments: no padding to account for.
            assert_eq!(got, tiles[i], "frame {i} ({per_frame} fragments/frame, table {table})");
        }
    }
}

#[test]
fn implicit_vr_and_nested_sequences() {
    let item = Items::new().str(tags::CODE_VALUE, VR::SH, "T-04000").str(tags::CODING_SCHEME_DESIGNATOR, VR::SH, "SRT");
    for undefined in [false, true] {
        let ds = base().sequence(tags::ANATOMIC_REGION_SEQUENCE, vec![item.clone(), item.clone()], undefined);
        for syntax in [ts::IMPLICIT_VR_LITTLE_ENDIAN, ts::EXPLICIT_VR_LITTLE_ENDIAN] {
            let bytes = part10(&ds, syntax);
            let obj = feed_in_chunks(&bytes, 3).unwrap();
            let seq = obj.dataset.get(tags::ANATOMIC_REGION_SEQUENCE).unwrap();
            let Value::Sequence(items) = &seq.value else { panic!("sequence") };
            assert_eq!(items.len(), 2);
            assert_eq!(items[1].first_text(tags::CODE_VALUE, &Charset::default()), "T-04000");
            assert_eq!(obj.dataset.first_text(tags::MODALITY, &Charset::default()), "CT");
            let json = metadata(&obj.dataset);
            assert_eq!(json["00082218"]["Value"][1]["00080100"]["Value"][0], "T-04000");
            assert_eq!(json["00100010"]["Value"][0]["Alphabetic"], "Müller^Jürgen");
        }
    }
}

/// PS3.18 Annex F for each kind of value the metadata holds: multiple values with empty ones
/// (`null`), all empty (no `Value`), numbers, tags, person names, text kept whole or trimmed,
/// binary inline or by reference, sequences empty and with items, strings that need escaping.
#[test]
fn metadata_json_of_every_kind_of_value() {
    use vna_dicom::Tag;
    let item = Items::new().str(tags::CODE_VALUE, VR::SH, "T-04000").str(Tag(0x0008, 0x0104), VR::LO, "say \"hi\"");
    let ds = base()
        .str(Tag(0x0008, 0x0008), VR::CS, "ORIGINAL\\\\AXIAL ")
        .str(Tag(0x0008, 0x0050), VR::SH, "")
        .str(Tag(0x0008, 0x0090), VR::PN, "Doe^John\\\\Roe^Jane=ロウ")
        .str(Tag(0x0008, 0x1030), VR::LO, "  lead and tail  ")
        .str(Tag(0x0020, 0x4000), VR::LT, "  line one\r\nline two\u{1} \\ end")
        .str(Tag(0x0028, 0x0030), VR::DS, "0.5\\1e-7")
        .str(Tag(0x0020, 0x0013), VR::IS, "12")
        .str(Tag(0x0018, 0x0050), VR::DS, "not a number")
        .u16(tags::ROWS, 512)
        .bytes(Tag(0x0028, 0x0009), VR::AT, vec![0x18, 0x00, 0x63, 0x10])
        .bytes(Tag(0x0009, 0x1001), VR::OB, vec![1, 2, 3, 4])
        .bytes(tags::ENCAPSULATED_DOCUMENT, VR::OB, vec![b'%'; 2048])
        .sequence(tags::ANATOMIC_REGION_SEQUENCE, vec![item.clone(), item], false)
        .sequence(Tag(0x0008, 0x1140), vec![], false);
    let obj = parse_bytes(&part10(&ds, ts::EXPLICIT_VR_LITTLE_ENDIAN), ParseLimits::default()).unwrap();
    let json = metadata(&obj.dataset);
    let expect = |key: &str, want: serde_json::Value| assert_eq!(json[key], want, "{key}: {json}");
    use serde_json::json;
    expect("00080008", json!({"vr": "CS", "Value": ["ORIGINAL", null, "AXIAL"]}));
    expect("00080050", json!({"vr": "SH"}));
    expect("00080090", json!({"vr": "PN", "Value": [{"Alphabetic": "Doe^John"}, null, {"Alphabetic": "Roe^Jane", "Ideographic": "ロウ"}]}));
    expect("00081030", json!({"vr": "LO", "Value": ["  lead and tail"]}));
    expect("00204000", json!({"vr": "LT", "Value": ["  line one\r\nline two\u{1} \\ end"]}));
    expect("00280030", json!({"vr": "DS", "Value": [0.5, 1e-7]}));
    expect("00200013", json!({"vr": "IS", "Value": [12]}));
    expect("00180050", json!({"vr": "DS", "Value": ["not a number"]}));
    expect("00280010", json!({"vr": "US", "Value": [512]}));
    expect("00280009", json!({"vr": "AT", "Value": ["00181063"]}));
    expect("00091001", json!({"vr": "OB", "InlineBinary": "AQIDBA=="}));
    let bulk = obj.dataset.get(tags::ENCAPSULATED_DOCUMENT).unwrap().extent;
    expect("00420011", json!({"vr": "OB", "BulkDataURI": format!("vna-bulk:{}-2048", bulk.offset)}));
    expect("00081140", json!({"vr": "SQ"}));
    let region = &json["00082218"];
    assert_eq!(region["Value"].as_array().map(Vec::len), Some(2));
    assert_eq!(region["Value"][1]["00080104"], json!({"vr": "LO", "Value": ["say \"hi\""]}));
    assert!(json.get("00020010").is_none() && json.get("00080000").is_none(), "file meta and group lengths are left out");
    let keys: Vec<&String> = json.as_object().unwrap().keys().collect();
    assert!(keys.windows(2).all(|w| w[0] < w[1]), "tag order: {keys:?}");
}

/// A malformed data set, out of tag order and repeating a tag: its JSON is in tag order, each
/// key once, with the repeated tag's last value (as a JSON object would keep it).
#[test]
fn metadata_json_of_a_data_set_out_of_order() {
    let first = Items::new().str(tags::MODALITY, VR::CS, "CT").str(tags::STUDY_DESCRIPTION, VR::LO, "first");
    let second = Items::new().str(tags::ACCESSION_NUMBER, VR::SH, "A1").str(tags::STUDY_DESCRIPTION, VR::LO, "second");
    let mut bytes = data_set(&first, ts::EXPLICIT_VR_LITTLE_ENDIAN);
    bytes.extend(data_set(&second, ts::EXPLICIT_VR_LITTLE_ENDIAN));
    let obj = parse_dataset_bytes(&bytes, ts::EXPLICIT_VR_LITTLE_ENDIAN, ParseLimits::default()).unwrap();
    let text = vna_dicom::json::write_json(&obj.dataset, false, 1024);
    assert_eq!(text.matches("\"00081030\"").count(), 1, "{text}");
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let keys: Vec<&String> = json.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["00080050", "00080060", "00081030"]);
    assert_eq!(json["00081030"]["Value"][0], "second");
}

#[test]
fn truncated_and_garbage_are_rejected() {
    let ds = base().native_pixels(VR::OB, vec![7; 2000]);
    let bytes = part10(&ds, ts::EXPLICIT_VR_LITTLE_ENDIAN);
    for cut in [10, 131, 140, 300, bytes.len() - 1] {
        let err = parse_bytes(&bytes[..cut], ParseLimits::default()).unwrap_err();
        assert!(matches!(err, ParseError::Truncated { .. } | ParseError::ValueCut { .. } | ParseError::NotPart10), "cut {cut}: {err:?}");
    }
    assert_eq!(parse_bytes(&[0u8; 200], ParseLimits::default()).unwrap_err(), ParseError::NotPart10);
    assert_eq!(parse_bytes(b"hello world", ParseLimits::default()).unwrap_err(), ParseError::NotPart10);
}

#[test]
fn bulk_values_are_located_not_kept() {
    let ds = base().bytes(tags::ENCAPSULATED_DOCUMENT, VR::OB, vec![b'%'; 4096]);
    let bytes = part10(&ds, ts::EXPLICIT_VR_LITTLE_ENDIAN);
    let obj = parse_bytes(&bytes, ParseLimits::default()).unwrap();
    let el = obj.dataset.get(tags::ENCAPSULATED_DOCUMENT).unwrap();
    assert_eq!(el.value, Value::Bulk);
    assert_eq!(&bytes[el.extent.offset as usize..][..4096], &vec![b'%'; 4096][..]);
    let json = vna_dicom::json::write_json(&obj.dataset, false, 1024);
    let resolved = vna_dicom::json::resolve_bulk_uris(&json, "http://h/i");
    assert!(resolved.contains(&format!("\"BulkDataURI\":\"http://h/i/bulkdata/{}-4096\"", el.extent.offset)), "{resolved}");
}

#[test]
fn header_limit_is_enforced() {
    let ds = base().str(tags::STUDY_DESCRIPTION, VR::LO, &"x".repeat(60)).str(tags::IMAGE_COMMENTS, VR::LT, &"y".repeat(5000));
    let bytes = part10(&ds, ts::EXPLICIT_VR_LITTLE_ENDIAN);
    let limits = ParseLimits { max_header_bytes: 1000, ..Default::default() };
    assert_eq!(parse_bytes(&bytes, limits).unwrap_err(), ParseError::HeaderTooLarge { max: 1000 });
}

#[test]
fn deflated_dataset_is_inflated() {
    use std::io::Write;
    let ds = base();
    let plain = part10(&ds, ts::DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN);
    // Split the meta from the data set and deflate the data set part.
    let meta_len = u32::from_le_bytes(plain[140..144].try_into().unwrap()) as usize;
    let split = 144 + meta_len;
    let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(&plain[split..]).unwrap();
    let bytes = [plain[..split].to_vec(), enc.finish().unwrap()].concat();
    let obj = feed_in_chunks(&bytes, 7).unwrap();
    assert!(!obj.positions_are_stored_offsets);
    assert_eq!(obj.dataset.first_text(tags::MODALITY, &Charset::default()), "CT");
}

/// A C-FIND identifier as DIMSE carries it: no preamble, no meta group (PS3.7 §6.3.1).
fn identifier() -> Items {
    let item = Items::new().str(tags::CODE_VALUE, VR::SH, "T-04000");
    Items::new()
        .str(tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192")
        .str(tags::QUERY_RETRIEVE_LEVEL, VR::CS, "STUDY")
        .str(tags::PATIENT_NAME, VR::PN, "Müller*")
        .bytes(tags::STUDY_INSTANCE_UID, VR::UI, Vec::new())
        .sequence(tags::ANATOMIC_REGION_SEQUENCE, vec![item], true)
}

#[test]
fn bare_dataset_explicit_and_implicit_in_any_chunking() {
    let utf8 = Charset::from_specific_character_set("ISO_IR 192");
    for syntax in [ts::EXPLICIT_VR_LITTLE_ENDIAN, ts::IMPLICIT_VR_LITTLE_ENDIAN] {
        let bytes = data_set(&identifier(), syntax);
        for chunk in [1, 3, 8, bytes.len()] {
            let mut p = StreamParser::for_dataset(ParseLimits::default(), syntax);
            for c in bytes.chunks(chunk) {
                p.feed(c).unwrap();
            }
            let obj = p.finish().unwrap();
            assert!(obj.meta.elements.is_empty());
            assert_eq!(obj.transfer_syntax, syntax);
            assert_eq!(obj.size, bytes.len() as u64);
            assert_eq!(obj.dataset.first_text(tags::QUERY_RETRIEVE_LEVEL, &utf8), "STUDY");
            assert_eq!(obj.dataset.text(tags::PATIENT_NAME, &utf8).as_deref(), Some("Müller*"));
            // An empty value (universal matching key) is present, with zero length.
            let uid = obj.dataset.get(tags::STUDY_INSTANCE_UID).unwrap();
            assert_eq!((uid.vr, uid.value.clone()), (VR::UI, Value::Bytes(Vec::new())));
            let Value::Sequence(items) = &obj.dataset.get(tags::ANATOMIC_REGION_SEQUENCE).unwrap().value else {
                panic!("sequence ({syntax})")
            };
            assert_eq!(items[0].first_text(tags::CODE_VALUE, &utf8), "T-04000");
        }
    }
}

#[test]
fn bare_dataset_empty_deflated_and_truncated() {
    use std::io::Write;
    let empty = parse_dataset_bytes(&[], ts::EXPLICIT_VR_LITTLE_ENDIAN, ParseLimits::default()).unwrap();
    assert!(empty.dataset.elements.is_empty());
    let plain = data_set(&identifier(), ts::EXPLICIT_VR_LITTLE_ENDIAN);
    let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(&plain).unwrap();
    let deflated = enc.finish().unwrap();
    let obj = parse_dataset_bytes(&deflated, ts::DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN, ParseLimits::default()).unwrap();
    assert_eq!(obj.dataset.first_text(tags::QUERY_RETRIEVE_LEVEL, &Charset::default()), "STUDY");
    let err = parse_dataset_bytes(&plain[..plain.len() - 3], ts::EXPLICIT_VR_LITTLE_ENDIAN, ParseLimits::default()).unwrap_err();
    assert!(matches!(err, ParseError::ValueCut { .. } | ParseError::Truncated { .. }), "{err:?}");
    // A Part 10 file is not a bare data set: its preamble reads as garbage.
    assert!(parse_dataset_bytes(&part10(&base(), ts::EXPLICIT_VR_LITTLE_ENDIAN), ts::EXPLICIT_VR_LITTLE_ENDIAN, ParseLimits::default())
        .is_err());
}

/// Where an object is cut decides the wording, never whether it is refused.
#[test]
fn a_cut_is_named_where_it_happens() {
    let ds = base()
        .sequence(tags::REFERENCED_IMAGE_SEQUENCE, vec![Items::new().str(tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, "1.2.3")], true)
        .native_pixels(VR::OB, vec![7; 2000]);
    let bytes = part10(&ds, ts::EXPLICIT_VR_LITTLE_ENDIAN);
    let parse = |n: usize| parse_bytes(&bytes[..n], ParseLimits::default()).unwrap_err();
    // Inside the pixel data value: the element, what it declares and how much is missing.
    assert_eq!(
        parse(bytes.len() - 500),
        ParseError::ValueCut { group: 0x7FE0, element: 0x0010, at: (bytes.len() - 2000) as u64, declared: 2000, missing: 500 }
    );
    // Inside the pixel data element header.
    assert!(matches!(parse(bytes.len() - 2005), ParseError::Truncated { .. }));
    // Inside the item of undefined length: after the item header, before its delimiter.
    let item = bytes.windows(8).position(|w| w == [0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF]).expect("an item of undefined length");
    assert!(matches!(parse(item + 8), ParseError::Truncated { .. }));
    assert!(matches!(parse(item + 10), ParseError::Truncated { .. }));
}

#[test]
fn a_declared_length_the_object_cannot_hold_is_malformed_not_too_large() {
    // A 4 GiB long text in an object of a few hundred bytes: the stream ends long before.
    let mut bytes = part10(&base(), ts::EXPLICIT_VR_LITTLE_ENDIAN);
    bytes.extend_from_slice(&[0x20, 0x00, 0x00, 0x40, b'L', b'T', 0xFE, 0xFF]); // (0020,4000) LT, 65534
    bytes.extend_from_slice(&[0x08, 0x00, 0x30, 0x10, b'U', b'T', 0, 0, 0xF0, 0xFF, 0xFF, 0xFF]); // misplaced, never reached
    let limits = ParseLimits { max_header_bytes: 1000, ..Default::default() };
    let err = parse_bytes(&bytes, limits).unwrap_err();
    assert!(matches!(err, ParseError::ValueCut { group: 0x0020, element: 0x4000, declared: 65534, .. }), "{err:?}");
    let mut huge = part10(&base(), ts::EXPLICIT_VR_LITTLE_ENDIAN);
    huge.extend_from_slice(&[0x20, 0x00, 0x00, 0x40, b'U', b'T', 0, 0, 0xF0, 0xFF, 0xFF, 0xFF]); // (0020,4000) UT, ~4 GiB
    huge.extend_from_slice(&[b'x'; 100]);
    let err = parse_bytes(&huge, ParseLimits::default()).unwrap_err();
    assert!(matches!(err, ParseError::ValueCut { declared: 0xFFFF_FFF0, .. }), "{err:?}");
    // A complete object over the limit is still too large.
    let big = part10(&base().str(tags::IMAGE_COMMENTS, VR::LT, &"y".repeat(5000)), ts::EXPLICIT_VR_LITTLE_ENDIAN);
    assert_eq!(parse_bytes(&big, limits).unwrap_err(), ParseError::HeaderTooLarge { max: 1000 });
}

#[test]
fn binary_values_must_be_whole() {
    // Rows (US) with 3 bytes.
    let ds = base().bytes(tags::ROWS, VR::US, vec![1, 0, 0, 0]);
    let mut bytes = part10(&ds, ts::EXPLICIT_VR_LITTLE_ENDIAN);
    let at = bytes.windows(6).position(|w| w == [0x28, 0x00, 0x10, 0x00, b'U', b'S']).expect("Rows");
    bytes[at + 6] = 3;
    bytes.remove(at + 8);
    let err = parse_bytes(&bytes, ParseLimits::default()).unwrap_err();
    assert!(matches!(err, ParseError::BadLength { group: 0x0028, element: 0x0010, length: 3, .. }), "{err:?}");
    // The same in implicit VR, where the dictionary says US.
    let mut bytes = part10(&ds, ts::IMPLICIT_VR_LITTLE_ENDIAN);
    let at = bytes.windows(4).position(|w| w == [0x28, 0x00, 0x10, 0x00]).expect("Rows");
    bytes[at + 4] = 3;
    bytes.remove(at + 8);
    assert!(matches!(parse_bytes(&bytes, ParseLimits::default()), Err(ParseError::BadLength { .. })));
}

#[test]
fn a_value_overrunning_its_item_is_refused_at_once() {
    let ds =
        base().sequence(tags::REFERENCED_IMAGE_SEQUENCE, vec![Items::new().str(tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, "1.2.3")], false);
    let mut bytes = part10(&ds, ts::EXPLICIT_VR_LITTLE_ENDIAN);
    let at = bytes.windows(6).position(|w| w == [0x08, 0x00, 0x55, 0x11, b'U', b'I']).expect("the UID");
    bytes[at + 6] = 0xF0; // 0x00F0 bytes, far past the item
    let mut p = StreamParser::new(ParseLimits::default());
    assert!(matches!(p.feed(&bytes), Err(ParseError::Overrun { .. })), "refused while feeding, not at the end");
}
