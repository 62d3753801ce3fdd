//! The re-encoder against objects written in every uncompressed syntax, fed whole and in
//! small pieces: values byte-identical, VRs as the dictionary says, sequences delimited.

use super::*;
use crate::dataset::{DataSet, Value};
use crate::parse::{parse_bytes, ParseLimits};
use crate::write::{file_meta, part10, Items};

const CT: &str = "1.2.840.10008.5.1.4.1.1.2";
const SOP: &str = "1.2.3.4.5";

fn keep_all() -> ParseLimits {
    ParseLimits { bulk_threshold: u32::MAX, ..ParseLimits::default() }
}

/// Every leaf element as (nesting path, tag, value bytes as stored), pixel data read from its
/// position in `bytes`.
fn leaves(ds: &DataSet, bytes: &[u8], path: &str, out: &mut Vec<(String, Tag, Vec<u8>)>) {
    for el in &ds.elements {
        match &el.value {
            Value::Bytes(b) => out.push((path.to_owned(), el.tag, b.clone())),
            Value::Bulk => {
                let (o, l) = (el.extent.offset as usize, el.extent.length as usize);
                out.push((path.to_owned(), el.tag, bytes[o..o + l].to_vec()))
            }
            Value::Sequence(items) => {
                out.push((path.to_owned(), el.tag, Vec::new()));
                for (i, item) in items.iter().enumerate() {
                    leaves(item, bytes, &format!("{path}/{:04X}{:04X}[{i}]", el.tag.0, el.tag.1), out);
                }
            }
            Value::Fragments(_) => panic!("no encapsulated data in these tests"),
        }
    }
}

fn flat(bytes: &[u8]) -> (Vec<(String, Tag, Vec<u8>)>, String) {
    let obj = parse_bytes(bytes, keep_all()).expect("parses");
    let mut out = Vec::new();
    leaves(&obj.dataset, bytes, "", &mut out);
    (out, obj.transfer_syntax)
}

fn vr_of(bytes: &[u8], tag: Tag) -> VR {
    parse_bytes(bytes, keep_all()).expect("parses").dataset.get(tag).expect("present").vr
}

/// Recodes `input` in chunks of `chunk` bytes (0: whole).
fn recode(input: &[u8], target: &str, framing: Framing, chunk: usize) -> Result<Vec<u8>, RecodeError> {
    let mut r = Recoder::new(target, framing);
    let mut out = Vec::new();
    let size = if chunk == 0 { input.len().max(1) } else { chunk };
    for piece in input.chunks(size) {
        r.feed(piece, &mut out)?;
    }
    r.finish(&mut out)?;
    Ok(out)
}

/// The same output whatever the chunking.
fn recode_all_ways(input: &[u8], target: &str, framing: Framing) -> Vec<u8> {
    let whole = recode(input, target, framing, 0).expect("recodes");
    for chunk in [1, 3, 7, 100] {
        assert_eq!(recode(input, target, framing, chunk).expect("recodes"), whole, "chunk size {chunk}");
    }
    whole
}

fn sample() -> Items {
    let item = |n: &str| {
        Items::new().str(Tag(0x0008, 0x0100), VR::SH, n).str(Tag(0x0008, 0x0104), VR::LO, "Meaning").sequence(
            Tag(0x0040, 0xA168),
            vec![Items::new().str(Tag(0x0008, 0x0100), VR::SH, "inner")],
            false,
        )
    };
    Items::new()
        .str(Tag(0x0008, 0x0005), VR::CS, "ISO_IR 192")
        .str(Tag(0x0008, 0x0016), VR::UI, CT)
        .str(Tag(0x0008, 0x0018), VR::UI, SOP)
        .bytes(Tag(0x0010, 0x0010), VR::PN, "Müller^Jürgen".as_bytes().to_vec())
        .sequence(Tag(0x0008, 0x1032), vec![item("A"), item("B")], false)
        .sequence(Tag(0x0040, 0x0275), vec![item("C")], true)
        .sequence(Tag(0x0040, 0x0555), vec![], false)
        .bytes(Tag(0x0018, 0x0050), VR::DS, b"2.5 ".to_vec())
        .bytes(Tag(0x0020, 0x0032), VR::DS, b"0\\0\\-2.5 ".to_vec())
        .u16(Tag(0x0028, 0x0010), 2)
        .u16(Tag(0x0028, 0x0011), 2)
        .u16(Tag(0x0028, 0x0100), 16)
        .u16(Tag(0x0028, 0x0103), 1)
        .bytes(Tag(0x0028, 0x0106), VR::SS, (-5i16).to_le_bytes().to_vec())
        .str(Tag(0x0029, 0x0010), VR::LO, "ACME")
        .bytes(Tag(0x0029, 0x1001), VR::OB, vec![1, 2, 3, 4])
        .bytes(Tag(0x0018, 0x9328), VR::FD, 1.5f64.to_le_bytes().to_vec())
        .native_pixels(VR::OW, vec![1, 0, 2, 0, 3, 0, 4, 0])
}

#[test]
fn explicit_to_implicit_and_back_keeps_every_value() {
    let explicit = part10(&sample(), ts::EXPLICIT_VR_LITTLE_ENDIAN);
    let implicit = recode_all_ways(&explicit, ts::IMPLICIT_VR_LITTLE_ENDIAN, Framing::Part10);
    let (a, a_ts) = flat(&explicit);
    let (b, b_ts) = flat(&implicit);
    assert_eq!(a_ts, ts::EXPLICIT_VR_LITTLE_ENDIAN);
    assert_eq!(b_ts, ts::IMPLICIT_VR_LITTLE_ENDIAN);
    assert_eq!(a, b);
    let back = recode_all_ways(&implicit, ts::EXPLICIT_VR_LITTLE_ENDIAN, Framing::Part10);
    let (c, _) = flat(&back);
    assert_eq!(a, c);
    // VRs from the dictionary, ambiguous ones by context, private ones UN / LO.
    assert_eq!(vr_of(&back, Tag(0x0010, 0x0010)), VR::PN);
    assert_eq!(vr_of(&back, Tag(0x0028, 0x0106)), VR::SS, "US or SS, Pixel Representation 1");
    assert_eq!(vr_of(&back, Tag(0x0029, 0x0010)), VR::LO);
    assert_eq!(vr_of(&back, Tag(0x0029, 0x1001)), VR::UN);
    assert_eq!(vr_of(&back, Tag(0x7FE0, 0x0010)), VR::OW);
    assert_eq!(vr_of(&back, Tag(0x0008, 0x1032)), VR::SQ);
}

#[test]
fn implicit_input_gets_dictionary_vrs() {
    let ds = Items::new()
        .str(Tag(0x0008, 0x0016), VR::UI, CT)
        .str(Tag(0x0008, 0x0018), VR::UI, SOP)
        .u16(Tag(0x0028, 0x0100), 8)
        .u16(Tag(0x0028, 0x0103), 0)
        .bytes(Tag(0x0028, 0x0106), VR::US, 7u16.to_le_bytes().to_vec())
        // A value too long for a 16-bit length field (LO in the dictionary).
        .bytes(Tag(0x0018, 0x1020), VR::LO, vec![b'x'; 70_000])
        .native_pixels(VR::OW, vec![9; 6]);
    let implicit = part10(&ds, ts::IMPLICIT_VR_LITTLE_ENDIAN);
    let explicit = recode_all_ways(&implicit, ts::EXPLICIT_VR_LITTLE_ENDIAN, Framing::Part10);
    assert_eq!(flat(&implicit).0, flat(&explicit).0);
    assert_eq!(vr_of(&explicit, Tag(0x0028, 0x0106)), VR::US, "Pixel Representation 0");
    assert_eq!(vr_of(&explicit, Tag(0x0018, 0x1020)), VR::UN, "PS3.5 §6.2.2: longer than 0xFFFF");
    assert_eq!(vr_of(&explicit, Tag(0x7FE0, 0x0010)), VR::OB, "Bits Allocated 8");
}

#[test]
fn same_syntax_only_changes_the_framing() {
    let explicit = part10(&sample(), ts::EXPLICIT_VR_LITTLE_ENDIAN);
    let meta_len = file_meta(CT, SOP, ts::EXPLICIT_VR_LITTLE_ENDIAN).len();
    assert_eq!(recode_all_ways(&explicit, ts::EXPLICIT_VR_LITTLE_ENDIAN, Framing::DataSet), explicit[meta_len..]);
    assert_eq!(recode_all_ways(&explicit, ts::EXPLICIT_VR_LITTLE_ENDIAN, Framing::Part10), explicit);
    // A compressed object as it is, minus its meta group: a C-STORE data set.
    let jpeg = Items::new().str(Tag(0x0008, 0x0016), VR::UI, CT).str(Tag(0x0008, 0x0018), VR::UI, SOP).encapsulated_pixels(
        &[vec![0xFF, 0xD8, 0xFF, 0xD9]],
        1,
        true,
    );
    let stored = part10(&jpeg, ts::JPEG_BASELINE);
    let meta_len = file_meta(CT, SOP, ts::JPEG_BASELINE).len();
    assert_eq!(recode_all_ways(&stored, ts::JPEG_BASELINE, Framing::DataSet), stored[meta_len..]);
    // ... which cannot become an uncompressed syntax without decoding.
    assert!(matches!(recode(&stored, ts::IMPLICIT_VR_LITTLE_ENDIAN, Framing::DataSet, 0), Err(RecodeError::Unsupported { .. })));
    assert!(!can_recode(ts::JPEG_BASELINE, ts::EXPLICIT_VR_LITTLE_ENDIAN));
    assert!(can_recode(ts::JPEG_BASELINE, ts::JPEG_BASELINE));
    assert!(can_recode(ts::EXPLICIT_VR_BIG_ENDIAN, ts::IMPLICIT_VR_LITTLE_ENDIAN));
    assert!(!can_recode(ts::IMPLICIT_VR_LITTLE_ENDIAN, ts::EXPLICIT_VR_BIG_ENDIAN));
}

/// Explicit VR big endian, written by hand (the writer makes little endian only).
fn be_element(out: &mut Vec<u8>, tag: Tag, vr: VR, le_value: &[u8]) {
    out.extend_from_slice(&tag.0.to_be_bytes());
    out.extend_from_slice(&tag.1.to_be_bytes());
    out.extend_from_slice(&vr.to_bytes());
    if has_long_length(vr) {
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&(le_value.len() as u32).to_be_bytes());
    } else {
        out.extend_from_slice(&(le_value.len() as u16).to_be_bytes());
    }
    // The unit written out here, not taken from the code under test.
    let unit = match vr {
        VR::US | VR::OW | VR::AT => 2,
        VR::UL => 4,
        VR::FD => 8,
        _ => 1,
    };
    for c in le_value.chunks(unit) {
        out.extend(c.iter().rev());
    }
}

#[test]
fn big_endian_values_are_swapped_by_vr() {
    let mut be = file_meta(CT, SOP, ts::EXPLICIT_VR_BIG_ENDIAN);
    let mut ds = Vec::new();
    be_element(&mut ds, Tag(0x0008, 0x0016), VR::UI, b"1.2.840.10008.5.1.4.1.1.2\0");
    be_element(&mut ds, Tag(0x0008, 0x0018), VR::UI, b"1.2.3.4.5\0");
    // A sequence of defined length with one item of defined length.
    let mut item = Vec::new();
    be_element(&mut item, Tag(0x0008, 0x0100), VR::SH, b"CODE");
    be_element(&mut item, Tag(0x0020, 0x9157), VR::UL, &[1, 0, 0, 0, 2, 0, 0, 0]);
    let mut seq = Vec::new();
    seq.extend_from_slice(&[0xFF, 0xFE, 0xE0, 0x00]);
    seq.extend_from_slice(&(item.len() as u32).to_be_bytes());
    seq.extend_from_slice(&item);
    ds.extend_from_slice(&[0x00, 0x08, 0x10, 0x32, b'S', b'Q', 0, 0]);
    ds.extend_from_slice(&(seq.len() as u32).to_be_bytes());
    ds.extend_from_slice(&seq);
    be_element(&mut ds, Tag(0x0018, 0x9328), VR::FD, &1.5f64.to_le_bytes());
    be_element(&mut ds, Tag(0x0020, 0x9165), VR::AT, &[0x20, 0x00, 0x32, 0x00]);
    be_element(&mut ds, Tag(0x0028, 0x0010), VR::US, &[2, 0]);
    be_element(&mut ds, Tag(0x0028, 0x0100), VR::US, &[16, 0]);
    be_element(&mut ds, Tag(0x7FE0, 0x0010), VR::OW, &[1, 2, 3, 4, 5, 6]);
    be.extend_from_slice(&ds);

    let le = recode_all_ways(&be, ts::EXPLICIT_VR_LITTLE_ENDIAN, Framing::Part10);
    let expected = Items::new()
        .str(Tag(0x0008, 0x0016), VR::UI, CT)
        .str(Tag(0x0008, 0x0018), VR::UI, SOP)
        .sequence(
            Tag(0x0008, 0x1032),
            vec![Items::new().str(Tag(0x0008, 0x0100), VR::SH, "CODE").bytes(Tag(0x0020, 0x9157), VR::UL, vec![1, 0, 0, 0, 2, 0, 0, 0])],
            true,
        )
        .bytes(Tag(0x0018, 0x9328), VR::FD, 1.5f64.to_le_bytes().to_vec())
        .bytes(Tag(0x0020, 0x9165), VR::AT, vec![0x20, 0x00, 0x32, 0x00])
        .u16(Tag(0x0028, 0x0010), 2)
        .u16(Tag(0x0028, 0x0100), 16)
        .native_pixels(VR::OW, vec![1, 2, 3, 4, 5, 6]);
    // Byte for byte what a little endian writer makes, sequences with undefined lengths.
    assert_eq!(le, part10(&expected, ts::EXPLICIT_VR_LITTLE_ENDIAN));
    let implicit = recode_all_ways(&be, ts::IMPLICIT_VR_LITTLE_ENDIAN, Framing::Part10);
    assert_eq!(flat(&implicit).0, flat(&le).0);
}

#[test]
fn deflated_input_is_inflated() {
    use std::io::Write;
    let plain = part10(&sample(), ts::EXPLICIT_VR_LITTLE_ENDIAN);
    let meta_len = file_meta(CT, SOP, ts::EXPLICIT_VR_LITTLE_ENDIAN).len();
    let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(&plain[meta_len..]).expect("deflates");
    let mut deflated = file_meta(CT, SOP, ts::DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN);
    deflated.extend_from_slice(&z.finish().expect("deflates"));
    assert_eq!(recode_all_ways(&deflated, ts::EXPLICIT_VR_LITTLE_ENDIAN, Framing::Part10), plain);
    let implicit = recode_all_ways(&deflated, ts::IMPLICIT_VR_LITTLE_ENDIAN, Framing::DataSet);
    assert_eq!(implicit, recode(&plain, ts::IMPLICIT_VR_LITTLE_ENDIAN, Framing::DataSet, 0).expect("recodes"));
    // A cut deflate stream is an error, not a short object.
    let cut = &deflated[..deflated.len() - 10];
    assert!(recode(cut, ts::EXPLICIT_VR_LITTLE_ENDIAN, Framing::Part10, 0).is_err());
}

#[test]
fn an_undefined_length_un_is_a_sequence() {
    // PS3.5 §6.2.2: its content is implicit VR little endian.
    let inner = crate::write::data_set(
        &Items::new().str(Tag(0x0029, 0x0010), VR::LO, "X").str(Tag(0x0008, 0x0100), VR::SH, "AB"),
        ts::IMPLICIT_VR_LITTLE_ENDIAN,
    );
    let mut ds = crate::write::data_set(
        &Items::new().str(Tag(0x0008, 0x0016), VR::UI, CT).str(Tag(0x0008, 0x0018), VR::UI, SOP),
        ts::EXPLICIT_VR_LITTLE_ENDIAN,
    );
    ds.extend_from_slice(&[0x29, 0x00, 0x00, 0x10, b'U', b'N', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF]);
    ds.extend_from_slice(&crate::write::item_header(inner.len() as u32));
    ds.extend_from_slice(&inner);
    ds.extend_from_slice(&crate::write::SEQUENCE_DELIMITER);
    let mut explicit = file_meta(CT, SOP, ts::EXPLICIT_VR_LITTLE_ENDIAN);
    explicit.extend_from_slice(&ds);
    let implicit = recode_all_ways(&explicit, ts::IMPLICIT_VR_LITTLE_ENDIAN, Framing::Part10);
    let back = recode_all_ways(&implicit, ts::EXPLICIT_VR_LITTLE_ENDIAN, Framing::Part10);
    assert_eq!(flat(&explicit).0, flat(&back).0);
    assert_eq!(flat(&explicit).0, flat(&implicit).0);
}

#[test]
fn cut_objects_are_errors_wherever_the_cut_is() {
    let explicit = part10(&sample(), ts::EXPLICIT_VR_LITTLE_ENDIAN);
    let implicit = part10(&sample(), ts::IMPLICIT_VR_LITTLE_ENDIAN);
    for (input, target) in [(&explicit, ts::IMPLICIT_VR_LITTLE_ENDIAN), (&implicit, ts::EXPLICIT_VR_LITTLE_ENDIAN)] {
        // Every cut but the full length fails: inside the preamble, the meta group, a header,
        // a value, an item of defined or undefined length.
        for len in (0..input.len()).step_by(5) {
            let r = recode(&input[..len], target, Framing::Part10, 0);
            // A cut exactly between two top-level elements is a complete (shorter) data set.
            if r.is_ok() {
                let obj = parse_bytes(&input[..len], keep_all());
                assert!(obj.is_ok(), "the recoder accepted a cut at {len} that the parser refuses");
            }
        }
        assert!(recode(&input[..input.len() - 3], target, Framing::Part10, 0).is_err());
        assert!(matches!(recode(&input[..100], target, Framing::Part10, 0), Err(RecodeError::NotPart10)));
    }
}

#[test]
fn malformed_structure_is_refused() {
    let mut bad = file_meta(CT, SOP, ts::EXPLICIT_VR_LITTLE_ENDIAN);
    // An item delimiter at the top level.
    bad.extend_from_slice(&[0xFE, 0xFF, 0x0D, 0xE0, 0, 0, 0, 0]);
    assert!(matches!(recode(&bad, ts::IMPLICIT_VR_LITTLE_ENDIAN, Framing::Part10, 0), Err(RecodeError::Unexpected { .. })));
    // Encapsulated pixel data in an explicit VR little endian object cannot go implicit.
    let mut enc = file_meta(CT, SOP, ts::EXPLICIT_VR_LITTLE_ENDIAN);
    enc.extend_from_slice(&[0xE0, 0x7F, 0x10, 0x00, b'O', b'B', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF]);
    assert_eq!(recode(&enc, ts::IMPLICIT_VR_LITTLE_ENDIAN, Framing::Part10, 0), Err(RecodeError::Encapsulated));
    // A value running past its item.
    let ds = Items::new().str(Tag(0x0008, 0x0016), VR::UI, CT).str(Tag(0x0008, 0x0018), VR::UI, SOP).sequence(
        Tag(0x0008, 0x1032),
        vec![Items::new().str(Tag(0x0008, 0x0100), VR::SH, "ABCD")],
        false,
    );
    let mut over = part10(&ds, ts::EXPLICIT_VR_LITTLE_ENDIAN);
    let n = over.len();
    over[n - 6] = 8; // the SH length: 8 instead of 4
    over.extend_from_slice(b"EFGH");
    assert!(matches!(recode(&over, ts::IMPLICIT_VR_LITTLE_ENDIAN, Framing::Part10, 0), Err(RecodeError::Overrun { .. })));
}
