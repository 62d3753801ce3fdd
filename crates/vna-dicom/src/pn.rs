//! Person Name (PN) handling shared by ingest and query: the normalised tokens behind
//! `fuzzymatching=true` (PS3.18 §8.3.4.6, PS3.4 §C.2.2.2.1.4 leaves the algorithm to the archive).
//!
//! Our fuzzy rule: case- and accent-insensitive, and a query word matches when it is a prefix of
//! any name component (family, given, middle, prefix, suffix) of any representation group.

use unicode_normalization::UnicodeNormalization;

/// Lower-cases and strips diacritics ("Müller" → "muller", "Ångström" → "angstrom").
pub fn fold(s: &str) -> String {
    s.nfkd()
        .filter(|c| !unicode_normalization::char::is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .map(|c| match c {
            'ß' => 's',
            'ø' => 'o',
            'ł' => 'l',
            'đ' => 'd',
            'æ' => 'a',
            'œ' => 'o',
            other => other,
        })
        .collect()
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
        assert_eq!(fold("Strauß"), "strass".replace("ss", "s"));
    }

    #[test]
    fn tokens_of_a_name() {
        assert_eq!(fuzzy_tokens("Dürer^Albrecht^^Dr."), vec!["durer", "albrecht", "dr."]);
        assert_eq!(fuzzy_tokens("Doe^John=ドウ^ジョン"), vec!["doe", "john", "ドウ", "ジョン"]);
        assert_eq!(fuzzy_query_words("joh*"), vec!["joh"]);
    }
}
