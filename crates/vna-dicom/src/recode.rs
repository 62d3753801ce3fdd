//! Re-encoding a stored Part 10 object into another uncompressed transfer syntax as its bytes
//! stream through (PS3.5 §A.1 implicit VR little endian, §A.2 explicit VR little endian,
//! §A.3 explicit VR big endian, §A.5 deflated): what WADO-RS, WADO-URI and the C-STORE
//! sub-operations of C-MOVE/C-GET need when a client does not take the stored syntax.
//!
//! The target is explicit or implicit VR little endian (web services default to the first,
//! PS3.18 §8.7.3.5.2, and never return the second; DIMSE peers may accept only the second).
//! Every element value leaves byte for byte as it came (byte-swapped from big endian), so the
//! re-encoding is lossless. What changes is the framing around values:
//!
//! - VRs are written or dropped. From implicit VR they come from the standard dictionary, the
//!   ambiguous ones resolved by context (US/SS by Pixel Representation, OB/OW by Bits
//!   Allocated, PS3.5 §A.1); private and unknown elements become UN, private creators LO. A
//!   value too long for a 16-bit length field becomes UN (PS3.5 §6.2.2).
//! - Sequences and items are always written with undefined lengths and delimiters: their
//!   contents change size when VRs are added or dropped, and undefined lengths let the output
//!   go before the end of a sequence is known. A UN of undefined length (a sequence encoded in
//!   implicit VR, PS3.5 §6.2.2) becomes a sequence in explicit VR.
//! - The file meta group is written anew with the target syntax (or left out when the output
//!   is a bare data set, as DIMSE sends it).
//!
//! Nothing but headers is held: memory does not depend on the object's size. The same type
//! also only strips the meta group (target = stored syntax, bare output), which is how any
//! stored object, compressed or not, becomes a C-STORE data set.

use crate::parse::has_long_length_vr as has_long_length;
use crate::ts::{self, Encoding};
use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry, VirtualVr};
use dicom_core::{Tag, VR};
use dicom_dictionary_std::StandardDataDictionary;
use meta::MetaReader;

mod meta;

const UNDEFINED: u32 = 0xFFFF_FFFF;
const ITEM: Tag = Tag(0xFFFE, 0xE000);
const ITEM_DELIMITER: Tag = Tag(0xFFFE, 0xE00D);
const SEQUENCE_DELIMITER: Tag = Tag(0xFFFE, 0xE0DD);
const PIXEL_DATA: Tag = Tag(0x7FE0, 0x0010);
const BITS_ALLOCATED: Tag = Tag(0x0028, 0x0100);
const PIXEL_REPRESENTATION: Tag = Tag(0x0028, 0x0103);
const MAX_DEPTH: usize = 64;

/// What the output is: a whole Part 10 object (preamble, meta group, data set) or the data
/// set alone, as a C-STORE-RQ carries it (PS3.7 §9.3.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Part10,
    DataSet,
}

/// Why an object cannot be re-encoded. Messages name positions and tags, never values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecodeError {
    #[error("not a DICOM Part 10 object: no 'DICM' prefix after the 128-byte preamble")]
    NotPart10,
    #[error("the file meta information is malformed at byte {at}")]
    Meta { at: u64 },
    #[error("the file meta information lacks its transfer syntax or SOP class/instance UID")]
    MetaIncomplete,
    #[error("an object in transfer syntax {from} cannot be re-encoded as {to}")]
    Unsupported { from: String, to: String },
    #[error("encapsulated pixel data cannot be carried by an uncompressed transfer syntax")]
    Encapsulated,
    #[error("the object ends inside an element (byte {at})")]
    Truncated { at: u64 },
    #[error("invalid value representation at byte {at}")]
    BadVr { at: u64 },
    #[error("unexpected item or delimiter ({group:04X},{element:04X}) at byte {at}")]
    Unexpected { group: u16, element: u16, at: u64 },
    #[error("element ({group:04X},{element:04X}) at byte {at} has an undefined length but is not a sequence")]
    UndefinedLength { group: u16, element: u16, at: u64 },
    #[error("an element at byte {at} runs past the end of its item or sequence")]
    Overrun { at: u64 },
    #[error("sequences nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("the deflated data set cannot be inflated")]
    Deflate,
}

/// True when an object stored in `from` can be delivered in `to` by [`Recoder`]: the same
/// syntax (only the framing changes), or from any uncompressed syntax to explicit or implicit
/// VR little endian.
pub fn can_recode(from: &str, to: &str) -> bool {
    from == to || (ts::is_native(from) && (to == ts::EXPLICIT_VR_LITTLE_ENDIAN || to == ts::IMPLICIT_VR_LITTLE_ENDIAN))
}

/// A push-based re-encoder: feed it the stored object's bytes as they are read, collect the
/// output as it is produced.
pub struct Recoder {
    target: String,
    framing: Framing,
    phase: Phase,
    inflater: Option<Box<flate2::Decompress>>,
    scratch: Vec<u8>,
    /// Bytes of the data set seen (after the meta group; deflated bytes for a deflated one).
    data_set_bytes: u64,
}

enum Phase {
    Meta(MetaReader),
    /// The data set is passed through unchanged (same encoding).
    Copy,
    Recode(Box<Machine>),
    /// The inflated stream has ended; anything after it is ignored as a reader would.
    Done,
}

impl Recoder {
    /// A re-encoder of a Part 10 object into `target` (see [`can_recode`]; the source syntax
    /// is read from the object's meta group), written with `framing`.
    pub fn new(target: &str, framing: Framing) -> Self {
        Recoder {
            target: target.to_owned(),
            framing,
            phase: Phase::Meta(MetaReader::default()),
            inflater: None,
            scratch: Vec::new(),
            data_set_bytes: 0,
        }
    }

    /// Consumes the next bytes of the object and appends what can be written to `out`.
    pub fn feed(&mut self, mut data: &[u8], out: &mut Vec<u8>) -> Result<(), RecodeError> {
        if let Phase::Meta(meta) = &mut self.phase {
            let used = meta.feed(data)?;
            data = &data[used..];
            if meta.done {
                self.start_data_set(out)?;
            }
        }
        if data.is_empty() {
            return Ok(());
        }
        self.data_set_bytes += data.len() as u64;
        if self.inflater.is_some() {
            return self.inflate(data, out, false);
        }
        self.plain(data, out)
    }

    /// Ends the object: it must be complete.
    pub fn finish(mut self, out: &mut Vec<u8>) -> Result<(), RecodeError> {
        if self.inflater.is_some() {
            self.inflate(&[], out, true)?;
        }
        match &self.phase {
            Phase::Meta(m) => Err(if m.pos < 132 { RecodeError::NotPart10 } else { RecodeError::Truncated { at: m.pos } }),
            // A meta group with nothing after it: no data set at all.
            _ if self.data_set_bytes == 0 => Err(RecodeError::Truncated { at: 0 }),
            Phase::Copy | Phase::Done => Ok(()),
            Phase::Recode(m) => m.finish(),
        }
    }

    fn start_data_set(&mut self, out: &mut Vec<u8>) -> Result<(), RecodeError> {
        let Phase::Meta(meta) = std::mem::replace(&mut self.phase, Phase::Copy) else { return Ok(()) };
        let (class, instance, from) = meta.uids()?;
        if !can_recode(&from, &self.target) {
            return Err(RecodeError::Unsupported { from, to: self.target.clone() });
        }
        if self.framing == Framing::Part10 {
            out.extend_from_slice(&crate::write::file_meta(&class, &instance, &self.target));
        }
        let syntax = ts::lookup(&from);
        if syntax.deflated {
            if meta.ended_by_header.is_some() {
                // The deflate stream began inside the bytes read as a header: only a correct
                // group length lets a reader find its start.
                return Err(RecodeError::Meta { at: meta.pos });
            }
            self.inflater = Some(Box::new(flate2::Decompress::new(false)));
            self.scratch = vec![0; 64 << 10];
        }
        let to_explicit = self.target == ts::EXPLICIT_VR_LITTLE_ENDIAN;
        let same = from == self.target || (syntax.deflated && to_explicit);
        self.phase = if same { Phase::Copy } else { Phase::Recode(Box::new(Machine::new(syntax.encoding, to_explicit))) };
        if let Some(header) = meta.ended_by_header {
            self.plain(&header, out)?;
        }
        Ok(())
    }

    fn plain(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), RecodeError> {
        match &mut self.phase {
            Phase::Copy => {
                out.extend_from_slice(data);
                Ok(())
            }
            Phase::Recode(m) => m.feed(data, out),
            Phase::Meta(_) | Phase::Done => Ok(()),
        }
    }

    fn inflate(&mut self, mut data: &[u8], out: &mut Vec<u8>, finish: bool) -> Result<(), RecodeError> {
        let mut scratch = std::mem::take(&mut self.scratch);
        let result = loop {
            let Some(inflater) = self.inflater.as_mut() else { break Ok(()) };
            let (before_in, before_out) = (inflater.total_in(), inflater.total_out());
            let flush = if finish { flate2::FlushDecompress::Finish } else { flate2::FlushDecompress::None };
            let status = match inflater.decompress(data, &mut scratch, flush) {
                Ok(s) => s,
                Err(_) => break Err(RecodeError::Deflate),
            };
            let used = (inflater.total_in() - before_in) as usize;
            let produced = (inflater.total_out() - before_out) as usize;
            data = &data[used..];
            if let Err(e) = self.plain(&scratch[..produced], out) {
                break Err(e);
            }
            if status == flate2::Status::StreamEnd {
                self.inflater = None;
                if let Phase::Recode(m) = &self.phase {
                    if let Err(e) = m.finish() {
                        break Err(e);
                    }
                }
                self.phase = Phase::Done;
                break Ok(());
            }
            if produced == 0 && (used == 0 || data.is_empty()) {
                break if finish { Err(RecodeError::Deflate) } else { Ok(()) };
            }
        };
        self.scratch = scratch;
        result
    }
}

/// The data set re-encoder proper.
struct Machine {
    /// The encoding being read (implicit LE inside a UN of undefined length).
    src: Encoding,
    explicit_out: bool,
    pos: u64,
    acc: [u8; 12],
    have: usize,
    step: Step,
    stack: Vec<Node>,
    /// Bytes of a value unit split across feeds (big endian swapping).
    carry: Vec<u8>,
    captured: Vec<u8>,
    pixel_representation: Option<u16>,
    bits_allocated: Option<u16>,
}

#[derive(Clone, Copy)]
enum Step {
    Header,
    LongLength { tag: Tag, vr: VR },
    Value { tag: Tag, remaining: u64, unit: usize },
}

struct Node {
    item: bool,
    /// Where the container ends in the input, for a defined length.
    end: Option<u64>,
    /// The encoding to go back to when a UN sequence (implicit inside) closes.
    restore: Option<Encoding>,
}

impl Machine {
    fn new(src: Encoding, explicit_out: bool) -> Self {
        Machine {
            src,
            explicit_out,
            pos: 0,
            acc: [0; 12],
            have: 0,
            step: Step::Header,
            stack: Vec::new(),
            carry: Vec::new(),
            captured: Vec::new(),
            pixel_representation: None,
            bits_allocated: None,
        }
    }

    fn u16_at(&self, i: usize) -> u16 {
        let b = [self.acc[i], self.acc[i + 1]];
        if self.src.big_endian {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        }
    }

    fn u32_at(&self, i: usize) -> u32 {
        let b = [self.acc[i], self.acc[i + 1], self.acc[i + 2], self.acc[i + 3]];
        if self.src.big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    }

    fn feed(&mut self, mut data: &[u8], out: &mut Vec<u8>) -> Result<(), RecodeError> {
        while !data.is_empty() {
            match self.step {
                Step::Value { tag, remaining, unit } => {
                    let n = remaining.min(data.len() as u64) as usize;
                    self.copy_value(tag, &data[..n], unit, out);
                    data = &data[n..];
                    self.pos += n as u64;
                    let remaining = remaining - n as u64;
                    self.step = Step::Value { tag, remaining, unit };
                    if remaining == 0 {
                        self.value_done(tag, out);
                        self.settle(out)?;
                    }
                }
                Step::Header | Step::LongLength { .. } => {
                    let need = if matches!(self.step, Step::Header) { 8 } else { 12 };
                    let n = (need - self.have).min(data.len());
                    self.acc[self.have..self.have + n].copy_from_slice(&data[..n]);
                    self.have += n;
                    self.pos += n as u64;
                    data = &data[n..];
                    if self.have == need {
                        self.on_header(out)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn finish(&self) -> Result<(), RecodeError> {
        if !matches!(self.step, Step::Header) || self.have != 0 || !self.stack.is_empty() {
            return Err(RecodeError::Truncated { at: self.pos });
        }
        Ok(())
    }

    fn on_header(&mut self, out: &mut Vec<u8>) -> Result<(), RecodeError> {
        let at = self.pos - self.have as u64;
        if let Step::LongLength { tag, vr } = self.step {
            let len = self.u32_at(8);
            self.have = 0;
            return self.on_element(tag, vr, len, at, out);
        }
        let tag = Tag(self.u16_at(0), self.u16_at(2));
        if tag.0 == 0xFFFE {
            let len = self.u32_at(4);
            self.have = 0;
            return self.on_item(tag, len, at, out);
        }
        if matches!(self.stack.last(), Some(Node { item: false, .. })) {
            return Err(RecodeError::Unexpected { group: tag.0, element: tag.1, at });
        }
        if self.src.explicit_vr {
            let vr = VR::from_binary([self.acc[4], self.acc[5]]).ok_or(RecodeError::BadVr { at })?;
            if has_long_length(vr) {
                self.step = Step::LongLength { tag, vr };
                return Ok(());
            }
            let len = u32::from(self.u16_at(6));
            self.have = 0;
            self.on_element(tag, vr, len, at, out)
        } else {
            let len = self.u32_at(4);
            self.have = 0;
            let vr = self.implicit_vr(tag, len);
            self.on_element(tag, vr, len, at, out)
        }
    }

    fn push(&mut self, node: Node) -> Result<(), RecodeError> {
        if self.stack.len() >= MAX_DEPTH * 2 {
            return Err(RecodeError::TooDeep);
        }
        self.stack.push(node);
        Ok(())
    }

    fn on_element(&mut self, tag: Tag, vr: VR, len: u32, at: u64, out: &mut Vec<u8>) -> Result<(), RecodeError> {
        let undefined = len == UNDEFINED;
        if undefined && tag == PIXEL_DATA {
            return Err(RecodeError::Encapsulated);
        }
        if undefined || vr == VR::SQ {
            if undefined && !(vr == VR::SQ || vr == VR::UN || !self.src.explicit_vr) {
                return Err(RecodeError::UndefinedLength { group: tag.0, element: tag.1, at });
            }
            // PS3.5 §6.2.2: a UN of undefined length holds a sequence in implicit VR LE.
            let restore = (vr == VR::UN && self.src.explicit_vr).then_some(self.src);
            if restore.is_some() {
                self.src = Encoding::IMPLICIT_LE;
            }
            self.push(Node { item: false, end: (!undefined).then(|| self.pos + u64::from(len)), restore })?;
            put_header(out, tag, VR::SQ, UNDEFINED, self.explicit_out);
            self.step = Step::Header;
            return self.settle(out);
        }
        let out_vr = if self.explicit_out && !has_long_length(vr) && len > 0xFFFF { VR::UN } else { vr };
        put_header(out, tag, out_vr, len, self.explicit_out);
        let unit = if self.src.big_endian { swap_unit(vr) } else { 1 };
        self.captured.clear();
        self.step = Step::Value { tag, remaining: u64::from(len), unit };
        if len == 0 {
            self.value_done(tag, out);
            return self.settle(out);
        }
        Ok(())
    }

    fn on_item(&mut self, tag: Tag, len: u32, at: u64, out: &mut Vec<u8>) -> Result<(), RecodeError> {
        let unexpected = RecodeError::Unexpected { group: tag.0, element: tag.1, at };
        match (self.stack.last(), tag) {
            (Some(Node { item: false, .. }), ITEM) => {
                let end = (len != UNDEFINED).then(|| self.pos + u64::from(len));
                self.push(Node { item: true, end, restore: None })?;
                put_item(out, ITEM, UNDEFINED);
            }
            (Some(Node { item: true, end: None, .. }), ITEM_DELIMITER) => self.close(out),
            (Some(Node { item: false, end: None, .. }), SEQUENCE_DELIMITER) => self.close(out),
            _ => return Err(unexpected),
        }
        self.step = Step::Header;
        self.settle(out)
    }

    /// Pops the innermost container and writes its delimiter.
    fn close(&mut self, out: &mut Vec<u8>) {
        if let Some(node) = self.stack.pop() {
            put_item(out, if node.item { ITEM_DELIMITER } else { SEQUENCE_DELIMITER }, 0);
            if let Some(enc) = node.restore {
                self.src = enc;
            }
        }
    }

    /// After an element or item header: closes every container whose defined length is
    /// reached, and expects the next header.
    fn settle(&mut self, out: &mut Vec<u8>) -> Result<(), RecodeError> {
        while let Some(Node { end: Some(end), .. }) = self.stack.last() {
            if self.pos > *end {
                return Err(RecodeError::Overrun { at: self.pos });
            }
            if self.pos < *end {
                break;
            }
            self.close(out);
        }
        self.step = Step::Header;
        Ok(())
    }

    fn copy_value(&mut self, tag: Tag, data: &[u8], unit: usize, out: &mut Vec<u8>) {
        let start = out.len();
        if unit == 1 {
            out.extend_from_slice(data);
        } else {
            let mut data = data;
            if !self.carry.is_empty() {
                let n = (unit - self.carry.len()).min(data.len());
                self.carry.extend_from_slice(&data[..n]);
                data = &data[n..];
                if self.carry.len() == unit {
                    self.carry.reverse();
                    out.extend_from_slice(&self.carry);
                    self.carry.clear();
                }
            }
            let whole = data.len() / unit * unit;
            for chunk in data[..whole].chunks_exact(unit) {
                out.extend(chunk.iter().rev());
            }
            self.carry.extend_from_slice(&data[whole..]);
        }
        if self.stack.is_empty() && (tag == BITS_ALLOCATED || tag == PIXEL_REPRESENTATION) && self.captured.len() < 8 {
            self.captured.extend_from_slice(&out[start..]);
        }
    }

    fn value_done(&mut self, tag: Tag, out: &mut Vec<u8>) {
        // A value whose length is not a multiple of its unit (malformed) ends as it came.
        out.append(&mut self.carry);
        if self.stack.is_empty() && self.captured.len() == 2 {
            let v = u16::from_le_bytes([self.captured[0], self.captured[1]]);
            match tag {
                BITS_ALLOCATED => self.bits_allocated = Some(v),
                PIXEL_REPRESENTATION => self.pixel_representation = Some(v),
                _ => {}
            }
        }
        self.captured.clear();
    }

    /// The VR of an implicit VR element (PS3.5 §A.1, §6.2.2), with the ambiguous ones of the
    /// dictionary resolved by what came before.
    fn implicit_vr(&self, tag: Tag, len: u32) -> VR {
        if tag.1 == 0x0000 {
            return VR::UL;
        }
        if tag.0 % 2 == 1 {
            return if (0x0010..=0x00FF).contains(&tag.1) { VR::LO } else { VR::UN };
        }
        let odd = len != UNDEFINED && len % 2 == 1;
        match StandardDataDictionary.by_tag(tag).map(|e| e.vr()) {
            Some(VirtualVr::Exact(vr)) => vr,
            Some(VirtualVr::Xs) => {
                if self.pixel_representation == Some(1) {
                    VR::SS
                } else {
                    VR::US
                }
            }
            Some(VirtualVr::Px) if odd || self.bits_allocated.is_some_and(|b| b <= 8) => VR::OB,
            Some(VirtualVr::Ox) if odd => VR::OB,
            Some(VirtualVr::Px | VirtualVr::Ox | VirtualVr::Lt) => VR::OW,
            Some(other) => other.relaxed(),
            None => VR::UN,
        }
    }
}

/// Bytes per value unit whose order big endian reverses (PS3.5 §7.3).
fn swap_unit(vr: VR) -> usize {
    match vr {
        VR::US | VR::SS | VR::OW | VR::AT => 2,
        VR::UL | VR::SL | VR::FL | VR::OF | VR::OL => 4,
        VR::FD | VR::OD | VR::SV | VR::UV | VR::OV => 8,
        _ => 1,
    }
}

fn put_item(out: &mut Vec<u8>, tag: Tag, len: u32) {
    out.extend_from_slice(&tag.0.to_le_bytes());
    out.extend_from_slice(&tag.1.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
}

/// An element header in little endian, explicit (PS3.5 §7.1.2) or implicit (§7.1.3).
fn put_header(out: &mut Vec<u8>, tag: Tag, vr: VR, len: u32, explicit: bool) {
    out.extend_from_slice(&tag.0.to_le_bytes());
    out.extend_from_slice(&tag.1.to_le_bytes());
    if !explicit {
        out.extend_from_slice(&len.to_le_bytes());
    } else if has_long_length(vr) {
        out.extend_from_slice(&vr.to_bytes());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&len.to_le_bytes());
    } else {
        out.extend_from_slice(&vr.to_bytes());
        out.extend_from_slice(&(len as u16).to_le_bytes());
    }
}

#[cfg(test)]
mod tests;
