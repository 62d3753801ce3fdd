//! DICOM JSON (PS3.18 Annex F) of a parsed data set, as served by WADO-RS metadata and QIDO-RS.
//!
//! Bulk values are written as `"BulkDataURI": "vna-bulk:{offset}-{length}"`; the front end
//! rewrites that internal form into an absolute URL with [`resolve_bulk_uris`] when it serves
//! the document, so the stored JSON does not depend on the host name the archive is reached by.

use crate::charset::Charset;
use crate::dataset::{decode_text, numbers, DataSet, Element, Number, Value};
use dicom_core::{Tag, VR};
use serde_json::{json, Map, Value as Json};

const SPECIFIC_CHARACTER_SET: Tag = Tag(0x0008, 0x0005);
/// Internal BulkDataURI scheme; see the module comment.
pub const BULK_PREFIX: &str = "vna-bulk:";

/// Converts a data set to DICOM JSON. File meta (group 0002) and group lengths are left out.
pub fn to_json(ds: &DataSet, big_endian: bool, bulk_threshold: u64) -> Json {
    let charset =
        ds.text(SPECIFIC_CHARACTER_SET, &Charset::default()).map(|s| Charset::from_specific_character_set(&s)).unwrap_or_default();
    dataset(ds, &charset, big_endian, bulk_threshold)
}

fn dataset(ds: &DataSet, charset: &Charset, be: bool, threshold: u64) -> Json {
    let mut map = Map::new();
    // An item may redeclare the character set (PS3.5 §6.1.2.5.4? no: §C.12.1.1.2 allows it in
    // sequence items); honour it for that item.
    let own;
    let charset = match ds.text(SPECIFIC_CHARACTER_SET, &Charset::default()) {
        Some(s) => {
            own = Charset::from_specific_character_set(&s);
            &own
        }
        None => charset,
    };
    for el in &ds.elements {
        if el.tag.0 == 0x0002 || el.tag.1 == 0x0000 {
            continue;
        }
        map.insert(tag_key(el.tag), element(el, charset, be, threshold));
    }
    Json::Object(map)
}

/// `GGGGEEEE`, upper-case hex (PS3.18 §F.2.1.1).
pub fn tag_key(tag: Tag) -> String {
    let mut key = String::with_capacity(8);
    push_tag_key(&mut key, tag);
    key
}

/// [`tag_key`] appended to `out`, without an allocation of its own (a QIDO-RS answer writes
/// one per attribute of every result).
pub fn push_tag_key(out: &mut String, tag: Tag) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let v = (u32::from(tag.0) << 16) | u32::from(tag.1);
    for shift in (0..8).rev() {
        out.push(char::from(HEX[(v >> (shift * 4)) as usize & 0xF]));
    }
}

fn element(el: &Element, charset: &Charset, be: bool, threshold: u64) -> Json {
    let vr = el.vr.to_string();
    let bulk = || json!({ "vr": vr, "BulkDataURI": format!("{BULK_PREFIX}{}-{}", el.extent.offset, el.extent.length) });
    match &el.value {
        Value::Bulk | Value::Fragments(_) => bulk(),
        Value::Sequence(items) => {
            let items: Vec<Json> = items.iter().map(|i| dataset(i, charset, be, threshold)).collect();
            if items.is_empty() {
                json!({ "vr": vr })
            } else {
                json!({ "vr": vr, "Value": items })
            }
        }
        Value::Bytes(b) => {
            if b.is_empty() {
                return json!({ "vr": vr });
            }
            match el.vr {
                VR::OB | VR::OW | VR::OF | VR::OD | VR::OL | VR::OV | VR::UN => {
                    if b.len() as u64 > threshold {
                        bulk()
                    } else {
                        json!({ "vr": vr, "InlineBinary": base64(b) })
                    }
                }
                VR::PN => values(vr, decode_text(el.vr, b, charset).split('\\').map(person_name).collect()),
                VR::US | VR::SS | VR::UL | VR::SL | VR::SV | VR::UV | VR::FL | VR::FD | VR::IS | VR::DS => {
                    let nums = numbers(el.vr, b, be);
                    if nums.is_empty() {
                        // A numeric string that does not parse: keep it rather than lose it.
                        return text_values(el, b, charset);
                    }
                    values(vr, nums.into_iter().map(number).collect())
                }
                VR::AT => {
                    let tags = b
                        .chunks_exact(4)
                        .map(|c| {
                            let g = if be { u16::from_be_bytes([c[0], c[1]]) } else { u16::from_le_bytes([c[0], c[1]]) };
                            let e = if be { u16::from_be_bytes([c[2], c[3]]) } else { u16::from_le_bytes([c[2], c[3]]) };
                            Json::String(tag_key(Tag(g, e)))
                        })
                        .collect();
                    values(vr, tags)
                }
                _ => text_values(el, b, charset),
            }
        }
    }
}

fn text_values(el: &Element, b: &[u8], charset: &Charset) -> Json {
    let vr = el.vr.to_string();
    let text = decode_text(el.vr, b, charset);
    let single = matches!(el.vr, VR::LT | VR::ST | VR::UT | VR::UR);
    let parts: Vec<Json> = if single {
        vec![Json::String(text)]
    } else {
        text.split('\\')
            .map(|s| {
                let s = s.trim_end_matches([' ', '\0']);
                let s = if matches!(el.vr, VR::DA | VR::TM | VR::DT | VR::UI | VR::CS | VR::AE | VR::AS) { s.trim_start() } else { s };
                if s.is_empty() {
                    Json::Null
                } else {
                    Json::String(s.to_owned())
                }
            })
            .collect()
    };
    values(vr, parts)
}

fn values(vr: &str, v: Vec<Json>) -> Json {
    if v.iter().all(Json::is_null) {
        json!({ "vr": vr })
    } else {
        json!({ "vr": vr, "Value": v })
    }
}

fn number(n: Number) -> Json {
    match n {
        Number::Int(i) => json!(i),
        Number::Float(f) => json!(f),
    }
}

/// PS3.18 §F.2.2: a PN value is an object with Alphabetic / Ideographic / Phonetic groups.
fn person_name(v: &str) -> Json {
    let v = v.trim_end_matches(' ');
    if v.is_empty() {
        return Json::Null;
    }
    let mut m = Map::new();
    for (name, group) in ["Alphabetic", "Ideographic", "Phonetic"].iter().zip(v.split('=')) {
        if !group.is_empty() {
            m.insert((*name).to_owned(), Json::String(group.to_owned()));
        }
    }
    Json::Object(m)
}

fn base64(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// Rewrites internal bulk references of a stored JSON document into absolute URLs under
/// `instance_url` (`…/studies/{s}/series/{se}/instances/{i}`), without parsing the document:
/// the marker can only occur as a key/value pair we wrote, since JSON escapes quotes inside
/// string values.
pub fn resolve_bulk_uris(stored: &str, instance_url: &str) -> String {
    let needle = format!("\"BulkDataURI\":\"{BULK_PREFIX}");
    let replacement = format!("\"BulkDataURI\":\"{instance_url}/bulkdata/");
    stored.replace(&needle, &replacement)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_keys_are_eight_upper_case_hex_digits() {
        for (tag, key) in [
            (Tag(0, 0), "00000000"),
            (Tag(0x0010, 0x0010), "00100010"),
            (Tag(0x7FE0, 0x0010), "7FE00010"),
            (Tag(0xFFFE, 0xE0DD), "FFFEE0DD"),
            (Tag(0x0009, 0xAB0C), "0009AB0C"),
        ] {
            assert_eq!(tag_key(tag), key);
            let mut out = String::from("x");
            push_tag_key(&mut out, tag);
            assert_eq!(out, format!("x{key}"));
        }
    }

    #[test]
    fn base64_matches_rfc4648() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn person_name_groups() {
        assert_eq!(person_name("Doe^John"), json!({"Alphabetic": "Doe^John"}));
        assert_eq!(person_name("Yamada^Tarou=山田^太郎"), json!({"Alphabetic": "Yamada^Tarou", "Ideographic": "山田^太郎"}));
    }
}
