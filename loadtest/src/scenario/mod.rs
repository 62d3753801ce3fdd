//! The scenarios: each runs against a [`Target`] and returns the figures it measured.

pub mod big;
pub mod big_cstore;
pub mod cstore;
pub mod frames;
pub mod huge;
pub mod qido;
pub mod rendered;
pub mod stow;

use std::time::Duration;

/// Limit on one small request (a STOW batch, a query, a frame); big transfers have none.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

/// The archive under test: its DICOMweb root and, when known, its process.
#[derive(Clone)]
pub struct Target {
    pub client: reqwest::Client,
    /// DICOMweb root, e.g. `http://127.0.0.1:8080/dicom-web` (no trailing slash).
    pub base: String,
    pub server_pid: Option<u32>,
}

impl Target {
    pub fn new(base: &str, server_pid: Option<u32>) -> anyhow::Result<Self> {
        Ok(Self { client: crate::http::client()?, base: base.trim_end_matches('/').to_owned(), server_pid })
    }
}
