//! The DIMSE side of the load generator, on the project's SCU toolkit (`vna_dimse::Client`, a
//! protocol client like reqwest is for HTTP): where the archive listens, opening associations,
//! judging C-STORE responses, and the Part 10 framing around a bare data set (C-STORE sends a
//! data set without preamble and meta group; WADO-RS returns it with the archive's own meta).

use anyhow::{bail, Context};
use sha2::{Digest, Sha256};
use std::time::Duration;
use vna_dimse::{Client, ClientOptions, ClientTls, Command, ProposedContext, Status, Timeouts};

/// Our AE title when the command line names none.
pub const CALLING_AE: &str = "LOADTEST";

/// Preamble (128) + "DICM" (4) + the (0002,0000) UL element header and value (12).
const META_HEAD: usize = 144;

/// The archive's DIMSE listener and the AE titles to use.
#[derive(Debug, Clone)]
pub struct DimseTarget {
    /// `host:port`.
    pub addr: String,
    pub called_ae: String,
    pub calling_ae: String,
    /// DICOM TLS (PS3.15 Annex B) to the listener; `None`: plain TCP.
    pub tls: Option<ClientTls>,
}

/// A TLS client configuration trusting the CA certificates of the PEM file `ca`.
pub fn tls_trusting(ca: &std::path::Path) -> anyhow::Result<ClientTls> {
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).with_context(|| format!("reading {}", ca.display()))? {
        roots.add(cert.with_context(|| format!("parsing {}", ca.display()))?).context("a CA certificate")?;
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .context("TLS versions")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(ClientTls { config: std::sync::Arc::new(config), server_name: None })
}

impl DimseTarget {
    /// Requests an association proposing `contexts`; `timeout` bounds every read and write
    /// (for a big object it must cover the archive's final fsync before the response).
    pub async fn connect(&self, contexts: &[ProposedContext], timeout: Duration) -> anyhow::Result<Client> {
        self.connect_with_window(contexts, timeout, 1).await
    }

    /// Like [`Self::connect`], proposing to invoke up to `window` operations without waiting
    /// (PS3.7 §D.3.3.3) when over 1.
    pub async fn connect_with_window(&self, contexts: &[ProposedContext], timeout: Duration, window: u16) -> anyhow::Result<Client> {
        let t = Some(timeout);
        let options =
            ClientOptions { timeouts: Timeouts { read: t, idle: t, write: t }, tls: self.tls.clone(), window, ..ClientOptions::default() };
        Client::connect_with(&self.addr, &self.calling_ae, &self.called_ae, contexts, options)
            .await
            .with_context(|| format!("A-ASSOCIATE to {} ({} -> {})", self.addr, self.calling_ae, self.called_ae))
    }
}

/// Ok when a C-STORE-RSP says Success (0000) for `sop_instance`; anything else — warnings
/// included — is an error carrying the status and the Error Comment.
pub fn check_store(rsp: &Command, sop_instance: &str) -> anyhow::Result<()> {
    match rsp.status {
        Some(Status::SUCCESS) => {}
        Some(s) => bail!("C-STORE status {:04X}{}", s.0, rsp.error_comment.as_deref().map(|c| format!(": {c}")).unwrap_or_default()),
        None => bail!("C-STORE-RSP without a status"),
    }
    if let Some(uid) = &rsp.affected_sop_instance_uid {
        if uid != sop_instance {
            bail!("C-STORE-RSP names another SOP instance than the one sent");
        }
    }
    Ok(())
}

/// Where the data set starts in a Part 10 byte string: after the preamble, "DICM" and the meta
/// group whose length (0002,0000) gives (PS3.10 §7.1).
pub fn dataset_offset(part10: &[u8]) -> anyhow::Result<usize> {
    let head = part10.get(..META_HEAD).context("shorter than a Part 10 preamble and meta group")?;
    meta_end(head)
}

fn meta_end(head: &[u8]) -> anyhow::Result<usize> {
    if &head[128..132] != b"DICM" || head[132..136] != [2, 0, 0, 0] || &head[136..138] != b"UL" {
        bail!("not a Part 10 header (no DICM prefix or no meta group length)");
    }
    let group = u32::from_le_bytes([head[140], head[141], head[142], head[143]]) as usize;
    if group > 1 << 20 {
        bail!("implausible meta group length {group}");
    }
    Ok(META_HEAD + group)
}

enum SkipState {
    /// Collecting the first 144 bytes.
    Head(Vec<u8>),
    /// Bytes of the meta group still to skip.
    Meta(usize),
    Body,
    Bad(String),
}

/// Hashes the data set part of a Part 10 object fed in arbitrary chunks: the preamble and meta
/// group (which the archive writes itself for a C-STOREd object) are skipped, the rest is
/// counted and hashed. Holds at most 144 bytes.
pub struct DatasetHasher {
    state: SkipState,
    hash: Sha256,
    len: u64,
}

impl Default for DatasetHasher {
    fn default() -> Self {
        Self { state: SkipState::Head(Vec::with_capacity(META_HEAD)), hash: Sha256::new(), len: 0 }
    }
}

impl DatasetHasher {
    pub fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            match &mut self.state {
                SkipState::Head(head) => {
                    let take = (META_HEAD - head.len()).min(data.len());
                    head.extend_from_slice(&data[..take]);
                    data = &data[take..];
                    if head.len() == META_HEAD {
                        self.state = match meta_end(head) {
                            Ok(end) => SkipState::Meta(end - META_HEAD),
                            Err(e) => SkipState::Bad(format!("{e:#}")),
                        };
                    }
                }
                SkipState::Meta(left) => {
                    let skip = (*left).min(data.len());
                    data = &data[skip..];
                    *left -= skip;
                    if *left == 0 {
                        self.state = SkipState::Body;
                    }
                }
                SkipState::Body => {
                    self.hash.update(data);
                    self.len += data.len() as u64;
                    return;
                }
                SkipState::Bad(_) => return,
            }
        }
    }

    /// Length and hex SHA-256 of the data set, or why the input was not a Part 10 object.
    pub fn finish(self) -> anyhow::Result<(u64, String)> {
        match self.state {
            SkipState::Body => Ok((self.len, hex(&self.hash.finalize()))),
            SkipState::Meta(0) => Ok((0, hex(&self.hash.finalize()))),
            SkipState::Head(_) | SkipState::Meta(_) => bail!("the object ended inside its Part 10 header"),
            SkipState::Bad(why) => bail!("{why}"),
        }
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corpus::CorpusSpec;

    #[test]
    fn strips_the_meta_group_in_any_chunking() {
        let spec =
            CorpusSpec { seed: 1, instances: 4, series_per_study: 1, instances_per_series: 4, namespace: 0, side: crate::corpus::CT_SIDE };
        let mut object = spec.instance_header(1);
        object.extend((0..5000u32).map(|i| i as u8));
        let off = dataset_offset(&object).expect("part 10");
        assert!(off > META_HEAD && off < 400, "{off}");
        let want = (object.len() as u64 - off as u64, hex(&Sha256::digest(&object[off..])));
        for chunk in [1, 7, 143, 144, 145, 1000, object.len()] {
            let mut h = DatasetHasher::default();
            for c in object.chunks(chunk) {
                h.update(c);
            }
            assert_eq!(h.finish().expect("part 10"), want, "chunks of {chunk}");
        }
        let mut h = DatasetHasher::default();
        h.update(&object[off..]);
        assert!(h.finish().is_err(), "a bare data set is not Part 10");
        assert!(dataset_offset(&object[..100]).is_err());
    }
}
