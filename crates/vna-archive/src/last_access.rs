//! When instances were last read, for lifecycle rules that count time without access
//! (`unused_for`): noted in memory on every read, written to the catalog in batches.

use crate::{Archive, ArchiveError};
use std::sync::Arc;
use vna_catalog::InstanceRow;

/// Instances read since the last flush, by catalog key: recorded on every read (a set insert),
/// written to the catalog in one batch per flush (`Archive::flush_accesses`), at most one
/// write per instance and interval whatever the number of frames read.
#[derive(Default)]
pub(crate) struct Accesses(std::sync::Mutex<std::collections::HashSet<i64>>);

/// Most distinct instances remembered between two flushes; reads beyond are not counted until
/// the next flush (an object read that much is not unused).
const ACCESSES_CAP: usize = 500_000;

impl Archive {
    /// Notes that these instance versions were read (for `unused_for` rules).
    pub(crate) fn touch<'a>(&self, rows: impl IntoIterator<Item = &'a InstanceRow>) {
        let mut seen = self.accesses.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for r in rows {
            if seen.len() >= ACCESSES_CAP {
                break;
            }
            seen.insert(r.pk);
        }
    }

    /// Writes the reads noted since the last flush to the catalog as read now, in one batch;
    /// how many instances' last access moved forward. On failure the reads are kept for the
    /// next flush.
    pub async fn flush_accesses(&self) -> Result<u64, ArchiveError> {
        let pks: Vec<i64> = {
            let mut seen = self.accesses.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            seen.drain().collect()
        };
        match self.catalog.record_accesses(&pks, crate::now_ms()).await {
            Ok(n) => Ok(n),
            Err(e) => {
                self.touch_keys(&pks);
                Err(ArchiveError::catalog("recording accesses")(e))
            }
        }
    }

    fn touch_keys(&self, pks: &[i64]) {
        let mut seen = self.accesses.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let room = ACCESSES_CAP.saturating_sub(seen.len());
        seen.extend(pks.iter().take(room));
    }

    /// Flushes the reads every `every` until `stop` turns true, and once more then.
    pub async fn track_accesses(self: Arc<Self>, every: std::time::Duration, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            let stopping = tokio::select! {
                _ = tokio::time::sleep(every) => false,
                _ = stop.wait_for(|s| *s) => true,
            };
            if let Err(e) = self.flush_accesses().await {
                tracing::warn!(error = %e, "could not record the last accesses of instances; retrying at the next flush");
            }
            if stopping {
                return;
            }
        }
    }
}
