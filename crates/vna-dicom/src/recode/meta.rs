//! The preamble and file meta group of the object being re-encoded (PS3.10 §7.1, always
//! explicit VR little endian): read and kept, so that the data set's syntax is known and a
//! new meta group can be written.

use super::{RecodeError, UNDEFINED};
use crate::parse::has_long_length_vr as has_long_length;
use dicom_core::{Tag, VR};

/// A meta group is a dozen short values; anything larger is not one.
const MAX_META_BYTES: usize = 64 << 10;

/// Reads the preamble and the file meta group (PS3.10 §7.1, always explicit VR little
/// endian), keeping its values.
#[derive(Default)]
pub(super) struct MetaReader {
    pub(super) pos: u64,
    acc: Vec<u8>,
    /// Bytes still wanted for the current step; 0 means "start".
    step: MetaStep,
    elements: Vec<(Tag, Vec<u8>)>,
    kept: usize,
    end: Option<u64>,
    pub(super) done: bool,
    /// The 8 bytes of the first data set element header, when the group had no length.
    pub(super) ended_by_header: Option<Vec<u8>>,
}

#[derive(Default, Clone, Copy)]
enum MetaStep {
    #[default]
    Preamble,
    Header,
    LongLength(Tag),
    Value(Tag, usize),
}

impl MetaReader {
    fn need(&self) -> usize {
        match self.step {
            MetaStep::Preamble => 132,
            MetaStep::Header => 8,
            MetaStep::LongLength(_) => 4,
            MetaStep::Value(_, n) => n,
        }
    }

    /// Takes what belongs to the meta group from `data`; returns how much it used.
    pub(super) fn feed(&mut self, data: &[u8]) -> Result<usize, RecodeError> {
        let mut used = 0;
        while !self.done {
            if self.end == Some(self.pos) && self.acc.is_empty() {
                self.done = true;
                break;
            }
            let want = self.need() - self.acc.len();
            if want > 0 {
                let n = want.min(data.len() - used);
                if n == 0 {
                    break;
                }
                self.acc.extend_from_slice(&data[used..used + n]);
                used += n;
                self.pos += n as u64;
                if self.acc.len() < self.need() {
                    break;
                }
            }
            let acc = std::mem::take(&mut self.acc);
            self.step = match self.step {
                MetaStep::Preamble if &acc[128..132] == b"DICM" => MetaStep::Header,
                MetaStep::Preamble => return Err(RecodeError::NotPart10),
                MetaStep::Header => {
                    let tag = Tag(u16::from_le_bytes([acc[0], acc[1]]), u16::from_le_bytes([acc[2], acc[3]]));
                    if tag.0 != 0x0002 {
                        self.ended_by_header = Some(acc);
                        self.done = true;
                        break;
                    }
                    let vr = VR::from_binary([acc[4], acc[5]]).ok_or(RecodeError::Meta { at: self.pos - 8 })?;
                    if has_long_length(vr) {
                        MetaStep::LongLength(tag)
                    } else {
                        self.value_step(tag, u16::from_le_bytes([acc[6], acc[7]]) as u32)?
                    }
                }
                MetaStep::LongLength(tag) => self.value_step(tag, u32::from_le_bytes([acc[0], acc[1], acc[2], acc[3]]))?,
                MetaStep::Value(tag, _) => {
                    if tag == Tag(0x0002, 0x0000) && acc.len() == 4 {
                        self.end = Some(self.pos + u32::from_le_bytes([acc[0], acc[1], acc[2], acc[3]]) as u64);
                    }
                    self.elements.push((tag, acc));
                    MetaStep::Header
                }
            };
            if let MetaStep::Value(tag, 0) = self.step {
                self.elements.push((tag, Vec::new()));
                self.step = MetaStep::Header;
            }
        }
        Ok(used)
    }

    fn value_step(&mut self, tag: Tag, len: u32) -> Result<MetaStep, RecodeError> {
        self.kept += len as usize;
        if len == UNDEFINED || self.kept > MAX_META_BYTES {
            return Err(RecodeError::Meta { at: self.pos });
        }
        Ok(MetaStep::Value(tag, len as usize))
    }

    pub(super) fn uids(&self) -> Result<(String, String, String), RecodeError> {
        let text = |tag: Tag| {
            self.elements
                .iter()
                .find(|(t, _)| *t == tag)
                .map(|(_, v)| String::from_utf8_lossy(v).trim_end_matches(['\0', ' ']).trim_start().to_owned())
                .filter(|s| !s.is_empty())
                .ok_or(RecodeError::MetaIncomplete)
        };
        Ok((text(Tag(0x0002, 0x0002))?, text(Tag(0x0002, 0x0003))?, text(Tag(0x0002, 0x0010))?))
    }
}
