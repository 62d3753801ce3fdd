//! `vna import PATH…`: stores folders of DICOM files (recursively) through the same ingest
//! pipeline as the network front ends, several files at once, with a progress bar and a
//! summary. Re-running it is safe: identical instances are recognised as duplicates.

use bytes::Bytes;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::AsyncReadExt;
use vna_archive::{Archive, ArchiveError, StoreRequest, StoreStatus};

const CHUNK: usize = 256 * 1024;

#[derive(Debug, Default)]
pub struct Summary {
    pub stored: u64,
    pub duplicates: u64,
    pub replaced: u64,
    pub bytes: u64,
    /// Reason → files rejected for it (paths are the operator's own; no DICOM content).
    pub rejected: BTreeMap<String, Vec<PathBuf>>,
}

impl Summary {
    pub fn rejected_count(&self) -> usize {
        self.rejected.values().map(Vec::len).sum()
    }
}

/// Every regular file under the given paths, in a stable order.
pub fn collect_files(paths: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for p in paths {
        if !p.exists() {
            return Err(std::io::Error::new(std::io::ErrorKind::NotFound, format!("{} does not exist", p.display())));
        }
        for entry in walkdir::WalkDir::new(p).follow_links(true).sort_by_file_name() {
            let entry = entry.map_err(std::io::Error::other)?;
            if entry.file_type().is_file() {
                files.push(entry.into_path());
            }
        }
    }
    Ok(files)
}

async fn store_file(archive: &Arc<Archive>, path: &Path) -> Result<vna_archive::Stored, String> {
    let mut file = tokio::fs::File::open(path).await.map_err(|e| format!("cannot read the file: {}", e.kind()))?;
    // Wait for a slot rather than fail: import is a batch job, not a client to push back on.
    let mut body = loop {
        match archive.begin_store(StoreRequest::new(vna_archive::Principal::system())) {
            Ok(b) => break b,
            Err(ArchiveError::Busy) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
            Err(e) => return Err(e.kind()),
        }
    };
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = file.read(&mut buf).await.map_err(|e| format!("cannot read the file: {}", e.kind()))?;
        if n == 0 {
            break;
        }
        if body.send(Bytes::copy_from_slice(&buf[..n])).await.is_err() {
            return body.wait().await.map_err(|e| e.kind());
        }
    }
    body.finish().await.map_err(|e| e.kind())
}

/// Imports the files with `parallelism` stores in flight.
pub async fn import(archive: Arc<Archive>, files: Vec<PathBuf>, parallelism: usize, progress: bool) -> Summary {
    let bar = if progress { ProgressBar::new(files.len() as u64) } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} files ({per_sec}, eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut summary = Summary::default();
    let mut results = futures::stream::iter(files)
        .map(|path| {
            let archive = archive.clone();
            async move {
                let r = store_file(&archive, &path).await;
                (path, r)
            }
        })
        .buffer_unordered(parallelism.max(1));
    while let Some((path, result)) = results.next().await {
        bar.inc(1);
        match result {
            Ok(stored) => {
                match stored.status {
                    StoreStatus::Stored => summary.stored += 1,
                    StoreStatus::Duplicate => summary.duplicates += 1,
                    StoreStatus::Replaced | StoreStatus::KeptAsPriorVersion => summary.replaced += 1,
                }
                summary.bytes += stored.instance.blob.size;
            }
            Err(reason) => summary.rejected.entry(reason).or_default().push(path),
        }
    }
    bar.finish_and_clear();
    summary
}
