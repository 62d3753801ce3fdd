//! Request identifier → [`FindRequest`]: the level checked against the information model
//! (PS3.4 §C.6.1.1, §C.6.2.1), the unique keys of the levels above (§C.4.1.3.1), and every
//! key turned into a catalog filter with its PS3.4 §C.2.2.2 matching type.

use super::keys::{self, KeyDef};
use super::{FindError, FindOptions, FindRequest, InformationModel, QueryLevel, RequestedKey};
use vna_archive::query::{parse_match, Filter, MatchOptions, Matcher, MatchingKey, Query};
use vna_dicom::charset::Charset;
use vna_dicom::dataset::{decode_value, DataSet, Element, Value};
use vna_dicom::parse::{parse_dataset_bytes, ParseLimits};
use vna_dicom::{tags, Tag};

/// An identifier is a handful of short keys: a megabyte is generous, and bounds what a
/// hostile request can make us hold.
const IDENTIFIER_LIMITS: ParseLimits = ParseLimits { max_header_bytes: 1 << 20, bulk_threshold: 1024, max_depth: 8 };

/// Parses the identifier of a C-FIND-RQ (a bare data set in the presentation context's
/// `transfer_syntax`) sent for `sop_class_uid` (Affected SOP Class UID of the command).
pub fn parse_request(
    identifier: &[u8],
    transfer_syntax: &str,
    sop_class_uid: &str,
    options: FindOptions,
) -> Result<FindRequest, FindError> {
    let model = InformationModel::from_sop_class(sop_class_uid).ok_or(FindError::UnsupportedModel)?;
    let parsed = parse_dataset_bytes(identifier, transfer_syntax, IDENTIFIER_LIMITS).map_err(FindError::Unparseable)?;
    request_from_dataset(&parsed.dataset, model, options)
}

/// Builds the request from an already parsed identifier.
///
/// Values are decoded with the identifier's Specific Character Set (PS3.5 §6.1.2.3; any
/// repertoire `vna_dicom::charset` knows, UTF-8 and Latin-1 among them). Sequence matching
/// (PS3.4 §C.2.2.2.6) is not supported: the catalog indexes no sequence, so a sequence key
/// is universal and comes back as an empty sequence. Private attributes are ignored.
pub fn request_from_dataset(ds: &DataSet, model: InformationModel, options: FindOptions) -> Result<FindRequest, FindError> {
    let charset =
        ds.text(tags::SPECIFIC_CHARACTER_SET, &Charset::default()).map(|s| Charset::from_specific_character_set(&s)).unwrap_or_default();
    let code = ds.text(tags::QUERY_RETRIEVE_LEVEL, &Charset::default()).unwrap_or_default();
    let level = match QueryLevel::from_code(&code) {
        Some(level) => level,
        None if code.trim().is_empty() => return Err(FindError::MissingLevel),
        None => return Err(FindError::UnknownLevel),
    };
    if !model.levels().contains(&level) {
        return Err(FindError::LevelNotInModel { model: model.name(), level: level.code() });
    }
    if !options.relational {
        for upper in model.levels().iter().filter(|l| **l < level) {
            check_unique_key(ds, keys::unique_key(*upper), &charset)?;
        }
    }
    let mut filters = Vec::new();
    let mut requested: Vec<RequestedKey> = Vec::new();
    let mut unsupported = Vec::new();
    for el in &ds.elements {
        let tag = el.tag;
        let skipped = [tags::QUERY_RETRIEVE_LEVEL, tags::SPECIFIC_CHARACTER_SET, tags::RETRIEVE_AE_TITLE];
        if tag.0 % 2 == 1 || tag.1 == 0 || tag.0 <= 0x0002 || skipped.contains(&tag) {
            continue;
        }
        if requested.iter().any(|k| k.tag == tag) {
            continue;
        }
        let def = keys::lookup(tag);
        requested.push(RequestedKey { tag, vr: def.map_or(el.vr, |d| d.vr) });
        if !def.is_some_and(|d| d.answered_at(model, level)) {
            unsupported.push(tag);
        }
        let Some(d) = def.filter(|d| d.matched_at(model, level)) else { continue };
        let Some(key) = d.matching() else { continue };
        if let Some(matcher) = matcher(d, key, el, &charset, &options)? {
            filters.push(Filter { key: key.key, matcher });
        }
    }
    requested.sort_by_key(|k| k.tag);
    unsupported.sort();
    let query = Query { level: level.catalog_level(), filters, limit: None, offset: 0 };
    Ok(FindRequest { model, level, query, requested, unsupported })
}

/// Hierarchical search: the unique key of a level above the query level must be there with
/// one value (PS3.4 §C.4.1.3.1).
fn check_unique_key(ds: &DataSet, tag: Tag, charset: &Charset) -> Result<(), FindError> {
    let value = ds.text(tag, charset).unwrap_or_default();
    let value = value.trim();
    if value.is_empty() {
        return Err(FindError::MissingUniqueKey { tag });
    }
    if value.contains(['\\', '*', '?']) {
        return Err(FindError::UniqueKeyNotSingle { tag });
    }
    Ok(())
}

/// The matching type of one key (PS3.4 §C.2.2.2), by the archive's one parser; `None` is
/// universal. Sequence matching is not supported (the catalog indexes no sequence).
fn matcher(d: &KeyDef, key: &MatchingKey, el: &Element, charset: &Charset, options: &FindOptions) -> Result<Option<Matcher>, FindError> {
    let tag = d.tag;
    let Value::Bytes(bytes) = &el.value else { return Err(FindError::InvalidValue { tag }) };
    // PS3.5 §6.2: a value is padded to an even length by one trailing byte (NUL for UI,
    // space for the other strings, NUL from some senders). Only that byte is padding: a NUL
    // anywhere else stays in the text, and the parser refuses it.
    let unpadded = bytes.strip_suffix(b"\0").unwrap_or(bytes);
    let text = decode_value(d.vr, unpadded, charset);
    let opts = MatchOptions { fuzzy: options.fuzzy, max_list: options.max_list };
    parse_match(key, &text, opts).map_err(|_| FindError::InvalidValue { tag })
}
