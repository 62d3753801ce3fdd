//! The audit trail sent to a syslog collector: each event of the catalog's append-only trail as
//! an RFC 5424 message (facility authpriv, severity notice, MSGID `IHE+RFC-3881`, the PS3.15
//! A.5 `AuditMessage` XML as the message, its catalog sequence number in `[meta sequenceId]`),
//! over TLS with octet-counting framing (RFC 5425), as IHE ATNA's Record Audit Event asks.
//!
//! The catalog is the spool: events are read from it in order after the last one sent, whose
//! sequence number is kept in a file, so an outage of the collector, of the network or of this
//! process loses nothing; sending resumes where it stopped. Syslog over TLS has no
//! acknowledgement, so an event is counted as sent once written; before each batch the
//! connection is checked for a close from the collector, and after a failure the last batch is
//! sent again: an event may reach the collector twice around an outage (its sequence number
//! tells), never not at all.
//!
//! Sequence numbers are allocated before commit: on PostgreSQL a later number may become
//! visible before an earlier one. A gap is waited for (a transaction still committing) for up
//! to [`GAP_WAIT`] before it is taken as a rolled-back number and passed.

use anyhow::Context;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use vna_archive::model::AuditRecord;
use vna_archive::Archive;

/// Events read and sent at once.
const BATCH: u32 = 200;
/// Waiting for new events when all were sent.
const IDLE_POLL: Duration = Duration::from_millis(500);
/// Waiting before reconnecting, doubled on each failure up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long a gap in sequence numbers may be a transaction still committing.
const GAP_WAIT: Duration = Duration::from_secs(10);
/// Connecting and the TLS handshake.
const CONNECT_DEADLINE: Duration = Duration::from_secs(10);
/// Writing one batch.
const WRITE_DEADLINE: Duration = Duration::from_secs(30);
/// PRI of every message: facility 10 (security/authorization) × 8 + severity 5 (notice).
const PRI: u8 = 85;

/// Where and how to send.
#[derive(Debug, Clone)]
pub struct SyslogTarget {
    pub address: String,
    pub server_name: String,
    pub tls: Arc<rustls::ClientConfig>,
    pub hostname: String,
    /// The file holding the sequence number of the last event sent.
    pub position_file: PathBuf,
}

impl SyslogTarget {
    /// From `[audit.syslog]`; certificates are read now, so a bad file fails the start.
    pub fn from_config(c: &vna_config::SyslogConfig, data_dir: &Path) -> anyhow::Result<SyslogTarget> {
        let files = (!c.cert_file.is_empty()).then(|| crate::tls::TlsFiles::server(&c.cert_file, &c.key_file));
        let tls = crate::tls::client_config(files.as_ref(), Path::new(&c.ca_file)).context("audit.syslog TLS")?;
        let host = vna_dimse::transport::host_of(&c.address);
        let hostname = if c.hostname.is_empty() {
            std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_owned()).unwrap_or_default()
        } else {
            c.hostname.clone()
        };
        Ok(SyslogTarget {
            address: c.address.clone(),
            server_name: if c.server_name.is_empty() { host.to_owned() } else { c.server_name.clone() },
            tls,
            hostname: header_field(&hostname),
            position_file: data_dir.join("audit-syslog.position"),
        })
    }
}

/// An RFC 5424 header field: printable US-ASCII without spaces, at most 255 characters; `-`
/// when empty.
fn header_field(s: &str) -> String {
    let f: String = s.chars().filter(|c| c.is_ascii_graphic()).take(255).collect();
    if f.is_empty() {
        "-".into()
    } else {
        f
    }
}

/// One event as an RFC 5424 message in RFC 5425 framing (`LEN SP MSG`).
pub fn frame(r: &AuditRecord, hostname: &str) -> Vec<u8> {
    let time = vna_archive::utc_timestamp(r.event.at_ms);
    let xml = vna_archive::a5_xml(r, "vna");
    // The message is UTF-8, said by its byte order mark (RFC 5424 §6.4).
    let msg = format!("<{PRI}>1 {time} {hostname} vna - IHE+RFC-3881 [meta sequenceId=\"{}\"] \u{feff}{xml}", r.seq);
    let mut out = format!("{} ", msg.len()).into_bytes();
    out.extend_from_slice(msg.as_bytes());
    out
}

fn read_position(path: &Path) -> anyhow::Result<i64> {
    match std::fs::read_to_string(path) {
        Ok(s) => s.trim().parse().with_context(|| format!("{} does not hold a sequence number", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Replaces the position file whole (a temporary file renamed over it, both synced).
fn write_position(path: &Path, seq: i64) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(seq.to_string().as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// The events of `batch` that may be sent now: those following `position` without a gap, or
/// past a gap that has lasted [`GAP_WAIT`] (`gap_since` remembers since when).
fn sendable(batch: Vec<AuditRecord>, position: i64, gap_since: &mut Option<Instant>) -> Vec<AuditRecord> {
    let mut expected = position + 1;
    let mut out = Vec::with_capacity(batch.len());
    for r in batch {
        if r.seq != expected {
            let since = *gap_since.get_or_insert_with(Instant::now);
            if since.elapsed() < GAP_WAIT {
                break;
            }
            tracing::debug!(missing_from = expected, next = r.seq, "audit export: passing a gap in sequence numbers");
        }
        *gap_since = None;
        expected = r.seq + 1;
        out.push(r);
    }
    out
}

async fn connect(target: &SyslogTarget) -> anyhow::Result<TlsStream<TcpStream>> {
    let name = rustls::pki_types::ServerName::try_from(target.server_name.clone()).context("audit.syslog server name")?;
    let connector = tokio_rustls::TlsConnector::from(target.tls.clone());
    let fut = async {
        let tcp = TcpStream::connect(&target.address).await.with_context(|| format!("connecting to {}", target.address))?;
        let _ = tcp.set_nodelay(true);
        connector.connect(name, tcp).await.context("TLS handshake with the collector")
    };
    tokio::time::timeout(CONNECT_DEADLINE, fut).await.context("connecting to the syslog collector timed out")?
}

/// Whether the collector closed the connection (it never sends anything otherwise).
async fn closed_by_peer(stream: &mut TlsStream<TcpStream>) -> bool {
    let mut byte = [0u8; 1];
    match tokio::time::timeout(Duration::from_millis(1), stream.read(&mut byte)).await {
        Err(_) => false,
        Ok(Ok(0) | Err(_)) => true,
        Ok(Ok(_)) => false,
    }
}

/// Sends the trail from the saved position on, until the process ends.
pub async fn run(archive: Arc<Archive>, target: SyslogTarget) {
    let mut position = match read_position(&target.position_file) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "audit export to syslog stopped: its position cannot be read");
            return;
        }
    };
    let mut backoff = MIN_BACKOFF;
    let mut gap_since = None;
    loop {
        let mut stream = match connect(&target).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(collector = %target.address, error = format!("{e:#}"), "audit export: collector unreachable; events wait in the catalog");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        tracing::info!(collector = %target.address, from_seq = position + 1, "audit export: connected");
        // The position before the last batch written on this connection: sent again if the
        // connection turns out dead, since a write that succeeded may never have arrived.
        let mut before_last = position;
        let failure = loop {
            let batch = match archive.audit_feed(position, BATCH).await {
                Ok(b) => sendable(b, position, &mut gap_since),
                Err(e) => {
                    tracing::warn!(error = %e, "audit export: the catalog cannot be read");
                    tokio::time::sleep(MAX_BACKOFF.min(backoff * 4)).await;
                    continue;
                }
            };
            if closed_by_peer(&mut stream).await {
                break "the collector closed the connection".to_owned();
            }
            let Some(last) = batch.last().map(|r| r.seq) else {
                tokio::time::sleep(IDLE_POLL).await;
                continue;
            };
            let bytes: Vec<u8> = batch.iter().flat_map(|r| frame(r, &target.hostname)).collect();
            let write = async {
                stream.write_all(&bytes).await?;
                stream.flush().await
            };
            match tokio::time::timeout(WRITE_DEADLINE, write).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => break format!("writing: {e}"),
                Err(_) => break "writing timed out".to_owned(),
            }
            before_last = position;
            position = last;
            backoff = MIN_BACKOFF;
            if let Err(e) = write_position(&target.position_file, position) {
                tracing::warn!(error = %e, "audit export: its position cannot be saved (events may be sent again after a restart)");
            }
        };
        tracing::warn!(collector = %target.address, why = failure, resend_from = before_last + 1, "audit export: connection lost; events wait in the catalog");
        position = before_last;
        let _ = write_position(&target.position_file, position);
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vna_archive::model::AuditEvent;

    fn record(seq: i64) -> AuditRecord {
        AuditRecord {
            seq,
            event: AuditEvent {
                at_ms: 1_765_000_000_123,
                event_id: "110112".into(),
                event_type: None,
                action: "E".into(),
                outcome: 0,
                user_id: "ae:CT".into(),
                user_kind: "application".into(),
                source: "127.0.0.1".into(),
                interface: "dimse".into(),
                patients: vec![],
                studies: vec![],
                instances: 0,
                detail: "q".into(),
            },
        }
    }

    #[test]
    fn a_frame_is_an_octet_counted_rfc5424_message() {
        let f = frame(&record(42), "node1");
        let text = String::from_utf8(f).unwrap();
        let (len, msg) = text.split_once(' ').unwrap();
        assert_eq!(len.parse::<usize>().unwrap(), msg.len());
        assert!(
            msg.starts_with("<85>1 2025-12-06T05:46:40.123Z node1 vna - IHE+RFC-3881 [meta sequenceId=\"42\"] \u{feff}<AuditMessage>"),
            "{msg}"
        );
    }

    #[test]
    fn gaps_are_waited_for_then_passed() {
        let mut since = None;
        let got = sendable(vec![record(5), record(6), record(8)], 4, &mut since);
        assert_eq!(got.iter().map(|r| r.seq).collect::<Vec<_>>(), [5, 6]);
        assert!(since.is_some(), "waiting for 7");
        since = Some(Instant::now() - GAP_WAIT);
        let got = sendable(vec![record(8), record(9)], 6, &mut since);
        assert_eq!(got.iter().map(|r| r.seq).collect::<Vec<_>>(), [8, 9]);
        assert!(since.is_none());
    }

    #[test]
    fn header_fields_are_printable_ascii() {
        assert_eq!(header_field("node 1\u{e9}"), "node1");
        assert_eq!(header_field(""), "-");
    }
}
