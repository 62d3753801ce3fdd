//! Request identifier → [`FindRequest`]: the level checked against the information model
//! (PS3.4 §C.6.1.1, §C.6.2.1), the unique keys of the levels above (§C.4.1.3.1), and every
//! key turned into a catalog filter with its PS3.4 §C.2.2.2 matching type.

use super::keys::{self, KeyDef};
use super::{FindError, FindOptions, FindRequest, InformationModel, QueryLevel, RequestedKey};
use vna_catalog::{Filter, Key, Matcher, Query};
use vna_dicom::charset::Charset;
use vna_dicom::dataset::{decode_text, DataSet, Element, Value};
use vna_dicom::parse::{parse_dataset_bytes, ParseLimits};
use vna_dicom::{tags, Tag, VR};

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
        let Some(key) = d.key else { continue };
        if let Some(matcher) = matcher(d, key, el, &charset, options.fuzzy)? {
            filters.push(Filter { key, matcher });
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

/// The matching type of one key (PS3.4 §C.2.2.2); `None` is universal matching.
fn matcher(d: &KeyDef, key: Key, el: &Element, charset: &Charset, fuzzy: bool) -> Result<Option<Matcher>, FindError> {
    let tag = d.tag;
    let Value::Bytes(bytes) = &el.value else { return Err(FindError::InvalidValue { tag }) };
    let text = decode_text(d.vr, bytes, charset);
    let v = text.trim_matches([' ', '\0']);
    // §C.2.2.2.3: an empty value is universal; §C.2.2.2.4: so is a value of only "*".
    if v.is_empty() || v == "*" {
        return Ok(None);
    }
    Ok(Some(match d.vr {
        // §C.2.2.2.2 list of UID matching; wildcards do not apply to UIDs.
        VR::UI if v.contains('\\') => {
            let uids: Vec<String> = v.split('\\').map(str::trim).filter(|u| !u.is_empty()).map(str::to_owned).collect();
            if uids.is_empty() {
                return Ok(None);
            }
            Matcher::List(uids)
        }
        VR::UI => Matcher::Single(v.to_owned()),
        VR::DA => date_matcher(v).ok_or(FindError::InvalidValue { tag })?,
        VR::TM => time_matcher(v).ok_or(FindError::InvalidValue { tag })?,
        // §C.2.2.2.1: with fuzzy semantic matching negotiated, names match by folded word prefix.
        VR::PN if fuzzy => Matcher::Fuzzy(v.to_owned()),
        // Modalities In Study is multi-valued: "CT\MR" asks for either.
        VR::CS if key == Key::ModalitiesInStudy && v.contains('\\') => {
            Matcher::List(v.split('\\').map(str::trim).filter(|m| !m.is_empty()).map(str::to_owned).collect())
        }
        // §C.2.2.2.4 wildcard matching, then §C.2.2.2.1 single value matching (case-sensitive,
        // PN included).
        _ if v.contains(['*', '?']) => Matcher::Wildcard(v.to_owned()),
        _ => Matcher::Single(v.to_owned()),
    }))
}

/// DA: `YYYYMMDD`, or a range `a-b`, `-b`, `a-` (§C.2.2.2.5). `None` when malformed.
fn date_matcher(v: &str) -> Option<Matcher> {
    let is_date = |s: &str| s.len() == 8 && s.bytes().all(|b| b.is_ascii_digit());
    match v.split_once('-') {
        None => is_date(v).then(|| Matcher::Single(v.to_owned())),
        Some((from, to)) => {
            let (from, to) = (from.trim(), to.trim());
            if [from, to].iter().any(|s| !s.is_empty() && !is_date(s)) {
                return None;
            }
            let bound = |s: &str| (!s.is_empty()).then(|| s.to_owned());
            Some(Matcher::Range { from: bound(from), to: bound(to) })
        }
    }
}

/// TM: `HH[MM[SS[.F{1,6}]]]` (colons of the old `HH:MM:SS` form tolerated), or a range. A
/// value stands for the whole span it names, so "10" matches 10:00:00 to 10:59:59.999999 and
/// an upper bound is widened the same way (§C.2.2.2.5 compares times, not strings).
fn time_matcher(v: &str) -> Option<Matcher> {
    let v = v.replace(':', "");
    match v.split_once('-') {
        None => Some(Matcher::Range { from: Some(time(&v)?.to_owned()), to: Some(time_upper(&v)?) }),
        Some((from, to)) => {
            let (from, to) = (from.trim(), to.trim());
            let from = if from.is_empty() { None } else { Some(time(from)?.to_owned()) };
            let to = if to.is_empty() { None } else { Some(time_upper(to)?) };
            Some(Matcher::Range { from, to })
        }
    }
}

fn time(s: &str) -> Option<&str> {
    let (hms, fraction) = match s.split_once('.') {
        Some((hms, f)) => (hms, Some(f)),
        None => (s, None),
    };
    let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    let ok_hms = matches!(hms.len(), 2 | 4 | 6) && digits(hms);
    let ok_fraction = match fraction {
        None => true,
        Some(f) => hms.len() == 6 && (1..=6).contains(&f.len()) && digits(f),
    };
    (ok_hms && ok_fraction).then_some(s)
}

fn time_upper(s: &str) -> Option<String> {
    let s = time(s)?;
    Some(match s.split_once('.') {
        Some((hms, f)) => format!("{hms}.{f:9<6}"),
        // `time` allows 2, 4 or 6 digits here: the suffix completes them to HHMMSS.FFFFFF.
        None => format!("{s}{}", &"5959.999999"[s.len() - 2..]),
    })
}
