//! Person Name (PN) handling shared by ingest and query: the normalised tokens behind
//! `fuzzymatching=true` (PS3.18 §8.3.4.6, PS3.4 §C.2.2.2.1.4 leaves the algorithm to the archive).
//!
//! Our fuzzy rule: case- and accent-insensitive, and a query word matches when it is a prefix of
//! any name component (family, given, middle, prefix, suffix) of any representation group.

use unicode_normalization::UnicodeNormalization;

/// Lower-cases and strips diacritics ("Müller" → "muller", "Ångström" → "angstrom").
pub fn fold(s: &str) -> String {
    // Only the Latin combining diacritics (U+0300–U+036F) are dropped: marks of other scripts
    // (Japanese dakuten, for instance) change the letter, not its accent.
    let stripped: String = s.nfkd().filter(|c| !('\u{0300}'..='\u{036F}').contains(c)).nfc().collect();
    let mut out = String::with_capacity(stripped.len());
    for c in stripped.chars().flat_map(char::to_lowercase) {
        match c {
            'ß' => out.push_str("ss"),
            'ø' => out.push('o'),
            'ł' => out.push('l'),
            'đ' => out.push('d'),
            'æ' => out.push_str("ae"),
            'œ' => out.push_str("oe"),
            other => out.push(other),
        }
    }
    out
}

/// The searchable tokens of a PN value: every non-empty name word, folded, deduplicated.
pub fn fuzzy_tokens(pn: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for word in pn.split(['^', '=', ' ', ',', '-', '\'']) {
        let folded = fold(word.trim());
        if !folded.is_empty() && !out.contains(&folded) {
            out.push(folded);
        }
    }
    out
}

/// The words of a fuzzy query ("joh do" → ["joh", "do"]); each must prefix-match some token.
/// Wildcards `*` and `?` are dropped: fuzzy matching is already a prefix match.
pub fn fuzzy_query_words(query: &str) -> Vec<String> {
    fuzzy_tokens(&query.replace(['*', '?'], " "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_case_and_accents() {
        assert_eq!(fold("Müller"), "muller");
        assert_eq!(fold("ÉLODIE"), "elodie");
        assert_eq!(fold("Strauß"), "strauss");
    }

    #[test]
    fn tokens_of_a_name() {
        assert_eq!(fuzzy_tokens("Dürer^Albrecht^^Dr."), vec!["durer", "albrecht", "dr."]);
        assert_eq!(fuzzy_tokens("Doe^John=ドウ^ジョン"), vec!["doe", "john", "ドウ", "ジョン"]);
        assert_eq!(fuzzy_query_words("joh*"), vec!["joh"]);
    }
}
