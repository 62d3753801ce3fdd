//! Rows that cannot be forged: an instance version reaches the calls that read its bytes,
//! frames, pixels or metadata only as a [`Found`], and only the archive's own lookups make one,
//! after checking the caller's permission and applying its visibility in the catalog query.
//! A front end can read every attribute of it, keep it and pass it back, but never make one
//! up from a UID or a row of its own, so no path reaches an object without passing the check.

use std::ops::Deref;
use vna_catalog::InstanceRow;

/// An instance version a lookup of the archive returned to a principal allowed to see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Found(InstanceRow);

impl Found {
    /// Only for rows a checked lookup (or the archive acting for itself) returned.
    pub(crate) fn checked(row: InstanceRow) -> Found {
        Found(row)
    }

    pub(crate) fn all(rows: Vec<InstanceRow>) -> Vec<Found> {
        rows.into_iter().map(Found).collect()
    }
}

impl Deref for Found {
    type Target = InstanceRow;

    fn deref(&self) -> &InstanceRow {
        &self.0
    }
}
