//! `[search]`: the node's search index of studies (`vna-search`).

use serde::Deserialize;

/// `[search]`: search by meaning over reports and metadata, from an index each node keeps.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SearchConfig {
    /// Whether this node keeps the index and answers `/api/search`.
    pub enabled: bool,
    /// The index's directory; empty: `{data_dir}/search`. Derived data: deleting it makes the
    /// node rebuild it from the catalog.
    pub dir: String,
    /// The medical concept table; empty: the one the archive ships
    /// (`config/search-concepts.toml`).
    pub concepts_file: String,
    /// How often an idle indexer looks at the catalog's change feed, in milliseconds.
    pub poll_ms: u64,
}

impl Default for SearchConfig {
    fn default() -> Self {
        SearchConfig { enabled: true, dir: String::new(), concepts_file: String::new(), poll_ms: 500 }
    }
}
