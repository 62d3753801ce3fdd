//! DICOM JSON (PS3.18 Annex F) of a parsed data set, as served by WADO-RS metadata and QIDO-RS.
//!
//! Bulk values are written as `"BulkDataURI": "vna-bulk:{offset}-{length}"`; the front end
//! rewrites that internal form into an absolute URL with [`resolve_bulk_uris`] when it serves
//! the document, so the stored JSON does not depend on the host name the archive is reached by.

use crate::charset::Charset;
use crate::dataset::{decode_text, numbers, DataSet, Element, Number, Value};
use dicom_core::{Tag, VR};

const SPECIFIC_CHARACTER_SET: Tag = Tag(0x0008, 0x0005);
/// Internal BulkDataURI scheme; see the module comment.
pub const BULK_PREFIX: &str = "vna-bulk:";

/// A data set as a DICOM JSON document, written directly (no tree of values in between: this
/// runs for every stored instance). File meta (group 0002) and group lengths are left out;
/// attributes are written in tag order, once each (a malformed data set that repeats a tag
/// keeps its last value).
pub fn write_json(ds: &DataSet, big_endian: bool, bulk_threshold: u64) -> String {
    let charset =
        ds.text(SPECIFIC_CHARACTER_SET, &Charset::default()).map(|s| Charset::from_specific_character_set(&s)).unwrap_or_default();
    let mut out = String::with_capacity(4096);
    dataset(&mut out, ds, &charset, big_endian, bulk_threshold);
    out
}

fn dataset(out: &mut String, ds: &DataSet, charset: &Charset, be: bool, threshold: u64) {
    // An item may redeclare the character set (PS3.5 §C.12.1.1.2 allows it in sequence
    // items); honour it for that item.
    let own;
    let charset = match ds.text(SPECIFIC_CHARACTER_SET, &Charset::default()) {
        Some(s) => {
            own = Charset::from_specific_character_set(&s);
            &own
        }
        None => charset,
    };
    let mut elements: Vec<&Element> = ds.elements.iter().filter(|el| el.tag.0 != 0x0002 && el.tag.1 != 0x0000).collect();
    if !elements.is_sorted_by_key(|el| el.tag) {
        elements.sort_by_key(|el| el.tag); // stable: of a repeated tag, the last value comes last
    }
    out.push('{');
    let last_of_each = elements.iter().enumerate().filter(|(i, el)| elements.get(i + 1).is_none_or(|next| next.tag != el.tag));
    for (n, (_, el)) in last_of_each.enumerate() {
        if n > 0 {
            out.push(',');
        }
        out.push('"');
        push_tag_key(out, el.tag);
        out.push_str("\":");
        element(out, el, charset, be, threshold);
    }
    out.push('}');
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

/// `s` as a JSON string (RFC 8259 §7), appended to `out`: the runs between characters that
/// need escaping are copied whole.
pub fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    let mut run = 0;
    for (i, b) in s.bytes().enumerate() {
        let escaped = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            b if b < 0x20 => "",
            _ => continue,
        };
        out.push_str(&s[run..i]);
        if escaped.is_empty() {
            use std::fmt::Write;
            let _ = write!(out, "\\u{:04x}", b);
        } else {
            out.push_str(escaped);
        }
        run = i + 1;
    }
    out.push_str(&s[run..]);
    out.push('"');
}

/// One attribute's object: `{"vr":…}`, with its `Value`, `InlineBinary` or `BulkDataURI`.
fn element(out: &mut String, el: &Element, charset: &Charset, be: bool, threshold: u64) {
    use std::fmt::Write;
    let vr = el.vr.to_string();
    let _ = write!(out, "{{\"vr\":\"{vr}\"");
    match &el.value {
        Value::Bulk | Value::Fragments(_) => bulk(out, el),
        Value::Sequence(items) => {
            if !items.is_empty() {
                out.push_str(",\"Value\":[");
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    dataset(out, item, charset, be, threshold);
                }
                out.push(']');
            }
        }
        Value::Bytes(b) if b.is_empty() => {}
        Value::Bytes(b) => match el.vr {
            VR::OB | VR::OW | VR::OF | VR::OD | VR::OL | VR::OV | VR::UN => {
                if b.len() as u64 > threshold {
                    bulk(out, el);
                } else {
                    out.push_str(",\"InlineBinary\":\"");
                    out.push_str(&base64(b));
                    out.push('"');
                }
            }
            VR::PN => {
                let text = decode_text(el.vr, b, charset);
                let names: Vec<&str> = text.split('\\').map(|v| v.trim_end_matches(' ')).collect();
                values(out, &names, |out, v| person_name(out, v));
            }
            VR::US | VR::SS | VR::UL | VR::SL | VR::SV | VR::UV | VR::FL | VR::FD | VR::IS | VR::DS => {
                let nums = numbers(el.vr, b, be);
                if nums.is_empty() {
                    // A numeric string that does not parse: keep it rather than lose it.
                    text_values(out, el, b, charset);
                } else {
                    values(out, &nums, |out, n| number(out, *n));
                }
            }
            VR::AT => {
                let tags: Vec<Tag> = b
                    .chunks_exact(4)
                    .map(|c| {
                        let g = if be { u16::from_be_bytes([c[0], c[1]]) } else { u16::from_le_bytes([c[0], c[1]]) };
                        let e = if be { u16::from_be_bytes([c[2], c[3]]) } else { u16::from_le_bytes([c[2], c[3]]) };
                        Tag(g, e)
                    })
                    .collect();
                values(out, &tags, |out, t| {
                    out.push('"');
                    push_tag_key(out, *t);
                    out.push('"');
                    true
                });
            }
            _ => text_values(out, el, b, charset),
        },
    }
    out.push('}');
}

fn bulk(out: &mut String, el: &Element) {
    use std::fmt::Write;
    let _ = write!(out, ",\"BulkDataURI\":\"{BULK_PREFIX}{}-{}\"", el.extent.offset, el.extent.length);
}

fn text_values(out: &mut String, el: &Element, b: &[u8], charset: &Charset) {
    let text = decode_text(el.vr, b, charset);
    // LT, ST, UT and UR hold one value, kept whole (even empty); the others are split at `\`
    // and padding trimmed, an empty value being `null`.
    let whole = matches!(el.vr, VR::LT | VR::ST | VR::UT | VR::UR);
    let trim_start = matches!(el.vr, VR::DA | VR::TM | VR::DT | VR::UI | VR::CS | VR::AE | VR::AS);
    let parts: Vec<&str> = if whole {
        vec![text.as_str()]
    } else {
        text.split('\\')
            .map(|s| {
                let s = s.trim_end_matches([' ', '\0']);
                if trim_start {
                    s.trim_start()
                } else {
                    s
                }
            })
            .collect()
    };
    values(out, &parts, |out, s| {
        if s.is_empty() && !whole {
            return false;
        }
        push_json_str(out, s);
        true
    });
}

/// `,"Value":[…]` unless every value is empty (then the attribute has no `Value`, PS3.18
/// §F.2.5); an empty one among others is `null`. `write` writes one value, or answers false
/// for an empty one (having written nothing).
fn values<T>(out: &mut String, v: &[T], mut write: impl FnMut(&mut String, &T) -> bool) {
    let mark = out.len();
    out.push_str(",\"Value\":[");
    let mut any = false;
    for (i, x) in v.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        if write(out, x) {
            any = true;
        } else {
            out.push_str("null");
        }
    }
    if any {
        out.push(']');
    } else {
        out.truncate(mark);
    }
}

/// A number as serde_json writes it (shortest round-trip form); not finite: empty.
fn number(out: &mut String, n: Number) -> bool {
    use std::fmt::Write;
    match n {
        Number::Int(i) => {
            let _ = write!(out, "{i}");
            true
        }
        Number::Float(f) => match serde_json::Number::from_f64(f) {
            Some(n) => {
                let _ = write!(out, "{n}");
                true
            }
            None => false,
        },
    }
}

/// PS3.18 §F.2.2: a PN value is an object with Alphabetic / Ideographic / Phonetic groups.
fn person_name(out: &mut String, v: &str) -> bool {
    if v.is_empty() {
        return false;
    }
    out.push('{');
    let mut first = true;
    for (name, group) in ["Alphabetic", "Ideographic", "Phonetic"].iter().zip(v.split('=')) {
        if !group.is_empty() {
            if !first {
                out.push(',');
            }
            first = false;
            out.push('"');
            out.push_str(name);
            out.push_str("\":");
            push_json_str(out, group);
        }
    }
    out.push('}');
    true
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
        let pn = |v: &str| {
            let mut out = String::new();
            let written = person_name(&mut out, v);
            (written, out)
        };
        assert_eq!(pn("Doe^John"), (true, r#"{"Alphabetic":"Doe^John"}"#.to_owned()));
        assert_eq!(pn("Yamada^Tarou=山田^太郎"), (true, r#"{"Alphabetic":"Yamada^Tarou","Ideographic":"山田^太郎"}"#.to_owned()));
        assert_eq!(pn("==Yamada"), (true, r#"{"Phonetic":"Yamada"}"#.to_owned()));
        assert_eq!(pn(""), (false, String::new()));
    }

    #[test]
    fn strings_are_escaped_as_json_wants() {
        for s in ["plain", "a\"b\\c", "tab\there\nnew\rline", "\u{1}\u{1f}\u{7f}", "Müller^Jürgen", "山田", ""] {
            let mut out = String::new();
            push_json_str(&mut out, s);
            assert_eq!(serde_json::from_str::<String>(&out).unwrap(), s, "{out}");
            assert!(!out[1..out.len() - 1].bytes().any(|b| b < 0x20), "{out}");
        }
    }
}
