//! End-to-end test harness: synthetic DICOM fixtures, STOW-RS bodies and multipart parsing,
//! dcmtk and DIMSE helpers,
//! an in-process server over any archive, and a locator and launcher for the real `vna`
//! binary. The tests themselves live in `tests/tests/`.

pub mod binary;
pub mod dimse;
pub mod fixtures;
pub mod http;
pub mod inproc;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Generous upper bound for anything a test waits for; never a timing assertion.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// Polls `check` until it returns true or [`DEADLINE`] passes (then panics with `what`).
pub async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + DEADLINE;
    loop {
        if check().await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out after {DEADLINE:?} waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every regular file below `dir` (recursively); empty when `dir` does not exist.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(path),
                Ok(t) if t.is_file() => out.push(path),
                _ => {}
            }
        }
    }
    out.sort();
    out
}
