//! A push-based DICOM Part 10 parser (PS3.10 §7, PS3.5 §7), or of a bare data set as DIMSE
//! carries it (`StreamParser::for_dataset`): bytes are fed as they arrive from the network,
//! and the parser keeps only element headers, small values and the positions of large ones.
//! It never holds pixel data, so memory does not grow with object size, and it never needs a
//! second read of what was stored.
//!
//! Why our own and not dicom-parser: dicom-rs reads from a blocking `Read` and loads values
//! (pixel data included) into memory; ingest needs positions of every fragment and a parser
//! that sits beside a hasher and a blob writer on an async stream.

mod types;

pub use types::{implicit_vr, ParseError, ParseLimits, ParsedObject};

use crate::dataset::{DataSet, Element, Extent, Fragment, Fragments, Value};
use crate::ts::{self, Encoding};
use dicom_core::{Tag, VR};
use types::has_long_length;
pub(crate) use types::has_long_length as has_long_length_vr;

const UNDEFINED: u32 = 0xFFFF_FFFF;
const ITEM: Tag = Tag(0xFFFE, 0xE000);
const ITEM_DELIMITER: Tag = Tag(0xFFFE, 0xE00D);
const SEQUENCE_DELIMITER: Tag = Tag(0xFFFE, 0xE0DD);
pub(crate) const PIXEL_DATA: Tag = Tag(0x7FE0, 0x0010);
const FLOAT_PIXEL_DATA: Tag = Tag(0x7FE0, 0x0008);
const DOUBLE_FLOAT_PIXEL_DATA: Tag = Tag(0x7FE0, 0x0009);
pub(crate) const EXTENDED_OFFSET_TABLE: Tag = Tag(0x7FE0, 0x0001);
pub(crate) const EXTENDED_OFFSET_TABLE_LENGTHS: Tag = Tag(0x7FE0, 0x0002);
const TRANSFER_SYNTAX_UID: Tag = Tag(0x0002, 0x0010);

/// What to do with the next `need` bytes collected in `acc`.
#[derive(Debug, Clone, Copy)]
enum Step {
    Preamble,
    Header,
    LongLength {
        tag: Tag,
        vr: VR,
    },
    Value {
        tag: Tag,
        vr: VR,
        offset: u64,
        len: u32,
    },
    /// First bytes of a fragment; `rest` more bytes of it are skipped afterwards.
    FragmentHead {
        rest: u64,
    },
    /// Skipping a bulk value: add it as located, not kept.
    SkipValue {
        tag: Tag,
        vr: VR,
        offset: u64,
        len: u32,
    },
    SkipFragmentRest,
}

#[derive(Debug)]
enum Node {
    Sequence { tag: Tag, vr: VR, start: u64, end: Option<u64>, items: Vec<DataSet>, restore: Option<Encoding> },
    Item { end: Option<u64>, set: DataSet },
    Pixel { tag: Tag, vr: VR, start: u64, fragments: Fragments, seen_table: bool },
}

pub struct StreamParser {
    limits: ParseLimits,
    pos: u64,
    fed: u64,
    acc: Vec<u8>,
    need: usize,
    skip: u64,
    step: Step,
    enc: Encoding,
    in_meta: bool,
    meta_end: Option<u64>,
    meta: DataSet,
    root: DataSet,
    stack: Vec<Node>,
    kept: usize,
    transfer_syntax: Option<String>,
    inflater: Option<flate2::Decompress>,
    inflated: Vec<u8>,
    /// A kept value that would pass the header limit, skipped instead: the verdict waits for
    /// the end of the stream, where an object too short to hold it is malformed (truncated)
    /// and a complete one too large.
    oversized: bool,
}

impl StreamParser {
    pub fn new(limits: ParseLimits) -> Self {
        StreamParser {
            limits,
            pos: 0,
            fed: 0,
            acc: Vec::with_capacity(256),
            need: 132,
            skip: 0,
            step: Step::Preamble,
            enc: Encoding::EXPLICIT_LE,
            in_meta: true,
            meta_end: None,
            meta: DataSet::default(),
            root: DataSet::default(),
            stack: Vec::new(),
            kept: 0,
            transfer_syntax: None,
            inflater: None,
            inflated: Vec::new(),
            oversized: false,
        }
    }

    /// A parser for a bare data set (no preamble, no file meta group) encoded in
    /// `transfer_syntax_uid`, as DIMSE carries them: a C-FIND identifier, a C-STORE data set
    /// (PS3.7 §6.3.1, PS3.8 §9.3.1: a presentation context's transfer syntax, deflate included).
    /// Positions are relative to the first byte of the data set; `ParsedObject::meta` is empty.
    pub fn for_dataset(limits: ParseLimits, transfer_syntax_uid: &str) -> Self {
        let syntax = ts::lookup(transfer_syntax_uid);
        let mut p = StreamParser::new(limits);
        p.in_meta = false;
        p.enc = syntax.encoding;
        if syntax.deflated {
            p.inflater = Some(flate2::Decompress::new(false));
        }
        p.transfer_syntax = Some(transfer_syntax_uid.to_owned());
        p.expect_header();
        p
    }

    /// Bytes fed so far.
    pub fn bytes_fed(&self) -> u64 {
        self.fed
    }

    /// Consumes the next bytes of the object.
    pub fn feed(&mut self, mut data: &[u8]) -> Result<(), ParseError> {
        self.fed += data.len() as u64;
        while !data.is_empty() {
            if self.inflater.is_some() {
                return self.inflate(data, false);
            }
            let used = self.feed_plain(data)?;
            data = &data[used..];
        }
        Ok(())
    }

    fn inflate(&mut self, mut data: &[u8], finish: bool) -> Result<(), ParseError> {
        let mut out = std::mem::take(&mut self.inflated);
        while let Some(inflater) = self.inflater.as_mut() {
            out.clear();
            out.reserve(64 * 1024);
            let before_in = inflater.total_in();
            let flush = if finish { flate2::FlushDecompress::Finish } else { flate2::FlushDecompress::None };
            let status = inflater.decompress_vec(data, &mut out, flush).map_err(|_| ParseError::Deflate)?;
            let used = (inflater.total_in() - before_in) as usize;
            data = &data[used..];
            let produced = !out.is_empty();
            let mut rest: &[u8] = &out;
            while !rest.is_empty() {
                let n = self.feed_plain(rest)?;
                rest = &rest[n..];
            }
            if matches!(status, flate2::Status::StreamEnd) || (data.is_empty() && !produced) {
                break;
            }
        }
        self.inflated = out;
        Ok(())
    }

    /// Feeds plain (not deflated) bytes; returns how many were consumed. Stops early right
    /// after the meta group when the data set is deflated.
    fn feed_plain(&mut self, data: &[u8]) -> Result<usize, ParseError> {
        let mut used = 0;
        while used < data.len() {
            if self.skip > 0 {
                let n = (self.skip.min((data.len() - used) as u64)) as usize;
                self.skip -= n as u64;
                self.pos += n as u64;
                used += n;
                if self.skip == 0 {
                    self.after_skip()?;
                }
                continue;
            }
            let n = (self.need - self.acc.len()).min(data.len() - used);
            self.acc.extend_from_slice(&data[used..used + n]);
            self.pos += n as u64;
            used += n;
            if self.acc.len() == self.need {
                self.dispatch()?;
                if self.inflater.is_some() {
                    return Ok(used);
                }
            }
        }
        Ok(used)
    }

    fn expect(&mut self, need: usize, step: Step) {
        self.acc.clear();
        self.need = need;
        self.step = step;
    }

    fn expect_header(&mut self) {
        self.expect(8, Step::Header);
    }

    fn u16_at(&self, b: &[u8]) -> u16 {
        let a = [b[0], b[1]];
        if self.enc.big_endian {
            u16::from_be_bytes(a)
        } else {
            u16::from_le_bytes(a)
        }
    }

    fn u32_at(&self, b: &[u8]) -> u32 {
        let a = [b[0], b[1], b[2], b[3]];
        if self.enc.big_endian {
            u32::from_be_bytes(a)
        } else {
            u32::from_le_bytes(a)
        }
    }

    fn dispatch(&mut self) -> Result<(), ParseError> {
        match self.step {
            Step::Preamble => {
                if &self.acc[128..132] != b"DICM" {
                    return Err(ParseError::NotPart10);
                }
                self.expect_header();
                Ok(())
            }
            Step::Header => self.on_header(),
            Step::LongLength { tag, vr } => {
                let len = self.u32_at(&self.acc[0..4]);
                self.on_element(tag, vr, len)
            }
            Step::Value { tag, vr, offset, len } => {
                let bytes = std::mem::take(&mut self.acc);
                let el = Element { tag, vr, extent: Extent { offset, length: len as u64 }, value: Value::Bytes(bytes) };
                self.acc = Vec::with_capacity(256);
                self.push_element(el)?;
                self.element_done()
            }
            Step::FragmentHead { rest } => {
                let head = std::mem::take(&mut self.acc);
                self.acc = Vec::with_capacity(256);
                if let Some(Node::Pixel { fragments, .. }) = self.stack.last_mut() {
                    if let Some(f) = fragments.items.last_mut() {
                        f.head = head;
                    }
                }
                if rest > 0 {
                    self.skip = rest;
                    self.step = Step::SkipFragmentRest;
                    Ok(())
                } else {
                    self.element_done()
                }
            }
            Step::SkipValue { .. } | Step::SkipFragmentRest => self.after_skip(),
        }
    }

    fn after_skip(&mut self) -> Result<(), ParseError> {
        match self.step {
            Step::SkipValue { tag, vr, offset, len } => {
                let el = Element { tag, vr, extent: Extent { offset, length: len as u64 }, value: Value::Bulk };
                self.push_element(el)?;
                self.element_done()
            }
            _ => self.element_done(),
        }
    }

    fn on_header(&mut self) -> Result<(), ParseError> {
        let at = self.pos - 8;
        let b = &self.acc[..8];
        let tag = Tag(self.u16_at(&b[0..2]), self.u16_at(&b[2..4]));
        if self.in_meta && tag.0 != 0x0002 {
            // No (0002,0000) group length, or a lying one: the meta group ends here.
            let header = std::mem::take(&mut self.acc);
            self.finish_meta()?;
            if self.inflater.is_some() {
                // The deflate stream began inside these 8 bytes; only a correct group length
                // lets us find its start.
                return Err(ParseError::Deflate);
            }
            self.acc = header;
            return self.on_header();
        }
        if tag.0 == 0xFFFE {
            let len = self.u32_at(&b[4..8]);
            return self.on_item_tag(tag, len, at);
        }
        if self.enc.explicit_vr {
            let vr = VR::from_binary([b[4], b[5]]).ok_or(ParseError::BadVr { at })?;
            if has_long_length(vr) {
                self.expect(4, Step::LongLength { tag, vr });
                return Ok(());
            }
            let len = self.u16_at(&b[6..8]) as u32;
            self.on_element(tag, vr, len)
        } else {
            let len = self.u32_at(&b[4..8]);
            self.on_element(tag, implicit_vr(tag), len)
        }
    }

    fn on_element(&mut self, tag: Tag, vr: VR, len: u32) -> Result<(), ParseError> {
        let start = self.pos;
        if len != UNDEFINED {
            // A value that cannot fit in its item or sequence is malformed now, not after
            // gigabytes of waiting for bytes that were never going to come.
            let bound = self.stack.iter().rev().find_map(|n| match n {
                Node::Sequence { end, .. } | Node::Item { end, .. } => *end,
                Node::Pixel { .. } => None,
            });
            if bound.is_some_and(|end| start + len as u64 > end) {
                return Err(ParseError::Overrun { at: start });
            }
            // PS3.5 §6.2 Table 6.2-1: binary VRs hold whole values of a fixed size.
            if let Some(unit) = fixed_size(vr).filter(|_| self.enc.explicit_vr || types::implicit_vr_is_exact(tag)) {
                if !len.is_multiple_of(unit) {
                    return Err(ParseError::BadLength { group: tag.0, element: tag.1, vr: vr.to_string(), length: len, at: start });
                }
            }
        }
        if len == UNDEFINED {
            if tag == PIXEL_DATA {
                self.push_node(Node::Pixel { tag, vr, start, fragments: Fragments::default(), seen_table: false })?;
                self.expect_header();
                return Ok(());
            }
            if vr == VR::SQ || vr == VR::UN || !self.enc.explicit_vr {
                // PS3.5 §6.2.2: a UN of undefined length is a sequence in implicit VR LE.
                let restore = (vr == VR::UN).then_some(self.enc);
                if vr == VR::UN {
                    self.enc = Encoding::IMPLICIT_LE;
                }
                self.push_node(Node::Sequence { tag, vr: VR::SQ, start, end: None, items: Vec::new(), restore })?;
                self.expect_header();
                return Ok(());
            }
            return Err(ParseError::UndefinedLength { group: tag.0, element: tag.1, at: start });
        }
        if vr == VR::SQ {
            self.push_node(Node::Sequence { tag, vr, start, end: Some(start + len as u64), items: Vec::new(), restore: None })?;
            return self.element_done();
        }
        if self.keeps(tag, vr, len) && self.kept + len as usize > self.limits.max_header_bytes {
            self.oversized = true;
            self.acc.clear();
            self.skip = len as u64;
            self.step = Step::SkipValue { tag, vr, offset: start, len };
            return Ok(());
        }
        if self.keeps(tag, vr, len) {
            self.kept += len as usize;
            self.expect(len as usize, Step::Value { tag, vr, offset: start, len });
            if len == 0 {
                return self.dispatch();
            }
            Ok(())
        } else {
            self.acc.clear();
            self.skip = len as u64;
            self.step = Step::SkipValue { tag, vr, offset: start, len };
            Ok(())
        }
    }

    fn keeps(&self, tag: Tag, vr: VR, len: u32) -> bool {
        if tag == PIXEL_DATA || tag == FLOAT_PIXEL_DATA || tag == DOUBLE_FLOAT_PIXEL_DATA {
            return false;
        }
        if tag == EXTENDED_OFFSET_TABLE || tag == EXTENDED_OFFSET_TABLE_LENGTHS {
            return true;
        }
        match vr {
            VR::OB | VR::OW | VR::OF | VR::OD | VR::OL | VR::OV | VR::UN => len <= self.limits.bulk_threshold,
            _ => true,
        }
    }

    fn on_item_tag(&mut self, tag: Tag, len: u32, at: u64) -> Result<(), ParseError> {
        let unexpected = ParseError::UnexpectedDelimiter { group: tag.0, element: tag.1, at };
        let value_start = self.pos;
        match (self.stack.last_mut(), tag) {
            (Some(Node::Sequence { .. }), ITEM) => {
                let end = (len != UNDEFINED).then(|| value_start + len as u64);
                self.push_node(Node::Item { end, set: DataSet::default() })?;
                self.element_done()
            }
            (Some(Node::Sequence { end: None, .. }), SEQUENCE_DELIMITER) => self.close_top(),
            (Some(Node::Item { end: None, .. }), ITEM_DELIMITER) => self.close_top(),
            (Some(Node::Pixel { fragments, seen_table, .. }), ITEM) => {
                if len == UNDEFINED {
                    return Err(unexpected);
                }
                if !*seen_table {
                    *seen_table = true;
                    fragments.first_fragment_item = value_start + len as u64;
                    self.kept += len as usize;
                    if self.kept > self.limits.max_header_bytes {
                        return Err(ParseError::HeaderTooLarge { max: self.limits.max_header_bytes });
                    }
                    self.expect(len as usize, Step::Value { tag: ITEM, vr: VR::OB, offset: value_start, len });
                    if len == 0 {
                        return self.dispatch();
                    }
                    return Ok(());
                }
                fragments.items.push(Fragment {
                    item_offset: at,
                    value: Extent { offset: value_start, length: len as u64 },
                    head: Vec::new(),
                });
                let head = len.min(8);
                self.expect(head as usize, Step::FragmentHead { rest: (len - head) as u64 });
                if head == 0 {
                    return self.dispatch();
                }
                Ok(())
            }
            (Some(Node::Pixel { .. }), SEQUENCE_DELIMITER) => self.close_top(),
            _ => Err(unexpected),
        }
    }

    fn push_node(&mut self, node: Node) -> Result<(), ParseError> {
        if self.stack.len() >= self.limits.max_depth * 2 {
            return Err(ParseError::TooDeep { max: self.limits.max_depth });
        }
        self.stack.push(node);
        Ok(())
    }

    /// Adds a finished element to the innermost data set (or, for the Basic Offset Table, to
    /// the pixel data being read).
    fn push_element(&mut self, el: Element) -> Result<(), ParseError> {
        match self.stack.last_mut() {
            Some(Node::Item { set, .. }) => set.elements.push(el),
            Some(Node::Pixel { fragments, .. }) => {
                if let Value::Bytes(b) = el.value {
                    fragments.basic_offset_table = b;
                }
            }
            Some(Node::Sequence { .. }) => return Err(ParseError::Overrun { at: el.extent.offset }),
            None if self.in_meta => {
                if el.tag == Tag(0x0002, 0x0000) {
                    if let Value::Bytes(b) = &el.value {
                        if b.len() == 4 {
                            self.meta_end = Some(self.pos + self.u32_at(b) as u64);
                        }
                    }
                }
                self.meta.elements.push(el);
            }
            None => self.root.elements.push(el),
        }
        Ok(())
    }

    /// After an element or item header: close every container whose defined length is
    /// reached, end the meta group when its length is reached, and expect the next header.
    fn element_done(&mut self) -> Result<(), ParseError> {
        while let Some(Node::Sequence { end: Some(end), .. } | Node::Item { end: Some(end), .. }) = self.stack.last() {
            let end = *end;
            if self.pos > end {
                return Err(ParseError::Overrun { at: self.pos });
            }
            if self.pos < end {
                break;
            }
            self.close_top_inner()?;
        }
        if self.in_meta && self.meta_end == Some(self.pos) {
            self.finish_meta()?;
        }
        self.expect_header();
        Ok(())
    }

    fn close_top(&mut self) -> Result<(), ParseError> {
        self.close_top_inner()?;
        self.element_done()
    }

    fn close_top_inner(&mut self) -> Result<(), ParseError> {
        let Some(node) = self.stack.pop() else { return Ok(()) };
        match node {
            Node::Item { set, .. } => match self.stack.last_mut() {
                Some(Node::Sequence { items, .. }) => items.push(set),
                _ => return Err(ParseError::Overrun { at: self.pos }),
            },
            Node::Sequence { tag, vr, start, items, restore, .. } => {
                if let Some(enc) = restore {
                    self.enc = enc;
                }
                let extent = Extent { offset: start, length: self.pos - start };
                self.push_element(Element { tag, vr, extent, value: Value::Sequence(items) })?;
            }
            Node::Pixel { tag, vr, start, fragments, .. } => {
                let extent = Extent { offset: start, length: self.pos - start };
                self.push_element(Element { tag, vr, extent, value: Value::Fragments(fragments) })?;
            }
        }
        Ok(())
    }

    fn finish_meta(&mut self) -> Result<(), ParseError> {
        self.in_meta = false;
        let uid = self
            .meta
            .bytes(TRANSFER_SYNTAX_UID)
            .map(|b| String::from_utf8_lossy(b).trim_end_matches(['\0', ' ']).to_owned())
            .filter(|s| !s.is_empty())
            .ok_or(ParseError::NoTransferSyntax)?;
        let syntax = ts::lookup(&uid);
        self.enc = syntax.encoding;
        if syntax.deflated {
            self.inflater = Some(flate2::Decompress::new(false));
        }
        self.transfer_syntax = Some(uid);
        Ok(())
    }

    /// Ends the stream: the object must be complete.
    pub fn finish(mut self) -> Result<ParsedObject, ParseError> {
        if self.inflater.is_some() {
            self.inflate(&[], true)?;
        }
        let at = self.pos;
        if matches!(self.step, Step::Preamble) {
            // Shorter than a preamble and its 'DICM': whatever it is, it is not Part 10.
            return Err(ParseError::NotPart10);
        }
        if let Step::Value { tag, offset, len, .. } | Step::SkipValue { tag, offset, len, .. } = self.step {
            let have = self.pos.saturating_sub(offset);
            return Err(ParseError::ValueCut {
                group: tag.0,
                element: tag.1,
                at: offset,
                declared: len as u64,
                missing: len as u64 - have,
            });
        }
        let at_boundary = matches!(self.step, Step::Header) && self.acc.is_empty() && self.skip == 0;
        if !at_boundary || !self.stack.is_empty() {
            return Err(ParseError::Truncated { at });
        }
        if self.oversized {
            return Err(ParseError::HeaderTooLarge { max: self.limits.max_header_bytes });
        }
        if self.in_meta {
            // A meta group with nothing after it: no data set at all.
            return Err(ParseError::Truncated { at });
        }
        let transfer_syntax = self.transfer_syntax.ok_or(ParseError::NoTransferSyntax)?;
        Ok(ParsedObject {
            meta: self.meta,
            dataset: self.root,
            big_endian: self.enc.big_endian,
            positions_are_stored_offsets: self.inflater.is_none(),
            transfer_syntax,
            size: self.fed,
        })
    }
}

/// The size of one value of a binary VR (PS3.5 §6.2): a value length must be a multiple of it.
fn fixed_size(vr: VR) -> Option<u32> {
    match vr {
        VR::US | VR::SS | VR::OW => Some(2),
        VR::UL | VR::SL | VR::FL | VR::AT | VR::OL | VR::OF => Some(4),
        VR::FD | VR::SV | VR::UV | VR::OD | VR::OV => Some(8),
        _ => None,
    }
}

/// Parses a complete object held in memory (tests, small objects).
pub fn parse_bytes(bytes: &[u8], limits: ParseLimits) -> Result<ParsedObject, ParseError> {
    let mut p = StreamParser::new(limits);
    p.feed(bytes)?;
    p.finish()
}

/// Parses a bare data set held in memory (a DIMSE identifier) encoded in `transfer_syntax_uid`;
/// see [`StreamParser::for_dataset`].
pub fn parse_dataset_bytes(bytes: &[u8], transfer_syntax_uid: &str, limits: ParseLimits) -> Result<ParsedObject, ParseError> {
    let mut p = StreamParser::for_dataset(limits, transfer_syntax_uid);
    p.feed(bytes)?;
    p.finish()
}
