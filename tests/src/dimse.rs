//! DIMSE helpers for end-to-end tests: dcmtk's tools by full path (pynetdicom installs
//! commands with the same names), storage contexts for our SCU, and the data set part of a
//! Part 10 object.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use vna_dimse::ProposedContext;

pub const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";
pub const IMPLICIT_LE: &str = "1.2.840.10008.1.2";

/// `/usr/bin/<tool>` of dcmtk; panics with the reason when it is missing (scripts/test.sh
/// installs dcmtk, so a missing tool is a broken setup, not a skip).
pub fn dcmtk(tool: &str) -> PathBuf {
    let p = Path::new("/usr/bin").join(tool);
    assert!(p.is_file(), "{} is missing: install dcmtk (scripts/test.sh does)", p.display());
    p
}

/// Runs a dcmtk tool against `addr` (`host:port`) with extra arguments before host and port.
pub fn run_dcmtk(tool: &str, args: &[&str], addr: &str, files: &[PathBuf]) -> Output {
    let (host, port) = addr.rsplit_once(':').expect("host:port");
    let mut cmd = Command::new(dcmtk(tool));
    cmd.args(args).arg(host).arg(port).args(files).stdin(Stdio::null());
    cmd.output().unwrap_or_else(|e| panic!("running {tool}: {e}"))
}

/// Verification and CT storage in explicit and implicit little endian.
pub fn ct_contexts() -> Vec<ProposedContext> {
    vec![
        ProposedContext::new(vna_dimse::VERIFICATION, &[IMPLICIT_LE]),
        ProposedContext::new(crate::fixtures::CT_IMAGE_STORAGE, &[EXPLICIT_LE, IMPLICIT_LE]),
    ]
}

/// The data set of a Part 10 object: everything after the file meta group.
pub fn data_set_of(part10: &[u8]) -> &[u8] {
    assert!(part10.len() > 144 && &part10[128..132] == b"DICM", "not a Part 10 object");
    let group_length = u32::from_le_bytes([part10[140], part10[141], part10[142], part10[143]]) as usize;
    &part10[144 + group_length..]
}
