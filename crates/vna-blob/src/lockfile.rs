//! The filesystem backend's emulation of Object Lock: a small `<key>.lock` file beside the
//! object holding its retention and legal hold, checked by the archive before every delete.
//! Weaker than S3 Object Lock by nature: anyone with write access to the directory can remove
//! both files. It exists so that the archive behaves the same on both backends.

use crate::{BlobError, LockMode, Protection, Retention};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

/// `mode=COMPLIANCE until=1767225600 hold=0`, one line.
fn render(p: &Protection) -> String {
    let (mode, until) = match p.retention {
        Some(r) => (r.mode.as_str(), r.retain_until.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)),
        None => ("NONE", 0),
    };
    format!("mode={mode} until={until} hold={}\n", u8::from(p.legal_hold))
}

fn parse(text: &str) -> Option<Protection> {
    let mut mode = None;
    let mut until = None;
    let mut hold = None;
    for field in text.split_whitespace() {
        let (k, v) = field.split_once('=')?;
        match k {
            "mode" => mode = Some(v),
            "until" => until = v.parse::<u64>().ok(),
            "hold" => hold = Some(v == "1"),
            _ => return None,
        }
    }
    let retention = match mode? {
        "NONE" => None,
        m => {
            let mode = match m {
                "COMPLIANCE" => LockMode::Compliance,
                "GOVERNANCE" => LockMode::Governance,
                _ => return None,
            };
            Some(Retention { mode, retain_until: UNIX_EPOCH + Duration::from_secs(until?) })
        }
    };
    Some(Protection { retention, legal_hold: hold? })
}

/// Reads the protection of an object; no lock file means none.
pub(crate) fn read(lock_path: &Path) -> Result<Protection, BlobError> {
    match std::fs::read_to_string(lock_path) {
        Ok(text) => parse(&text).ok_or(BlobError::Io {
            step: "reading a lock file",
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, "malformed lock file"),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Protection::default()),
        Err(e) => Err(BlobError::Io { step: "reading a lock file", source: e }),
    }
}

/// Writes the protection durably (temporary file, fsync, rename, directory fsync).
pub(crate) fn write(lock_path: &Path, p: &Protection) -> Result<(), BlobError> {
    let tmp = lock_path.with_extension("lock.tmp");
    let mut f = std::fs::File::create(&tmp).map_err(BlobError::io("creating a lock file"))?;
    f.write_all(render(p).as_bytes()).map_err(BlobError::io("writing a lock file"))?;
    f.sync_all().map_err(BlobError::io("syncing a lock file"))?;
    drop(f);
    std::fs::rename(&tmp, lock_path).map_err(BlobError::io("renaming a lock file"))?;
    if let Some(dir) = lock_path.parent() {
        std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(BlobError::io("syncing a blob directory"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_and_parses() {
        let p = Protection {
            retention: Some(Retention { mode: LockMode::Governance, retain_until: UNIX_EPOCH + Duration::from_secs(1_900_000_000) }),
            legal_hold: true,
        };
        assert_eq!(parse(&render(&p)), Some(p));
        assert_eq!(parse(&render(&Protection::default())), Some(Protection::default()));
        assert_eq!(parse("mode=SOMETIMES until=1 hold=0"), None);
        assert_eq!(parse("mode=NONE hold=0 extra=1"), None);
    }
}
