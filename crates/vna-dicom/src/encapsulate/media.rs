//! What the encapsulation needs to know about a non-DICOM file, read from its own structure:
//! a JPEG's frame header, a PDF's signature, an MP4's video track. Errors say what is wrong
//! with the file's structure, never anything of its content.

use std::io::{Read, Seek, SeekFrom};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MediaError {
    #[error("the file is not a valid {0} file")]
    NotThisFormat(&'static str),
    #[error("the file is not supported: {0}")]
    Unsupported(String),
    #[error("the file is malformed: {0}")]
    Malformed(&'static str),
    #[error("the file could not be read")]
    Io,
}

/// The JPEG process, which decides the transfer syntax (PS3.5 §8.2.1, §A.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JpegProcess {
    /// SOF0: JPEG Baseline (Process 1), 1.2.840.10008.1.2.4.50.
    Baseline,
    /// SOF1: JPEG Extended (Process 2 & 4), 1.2.840.10008.1.2.4.51.
    Extended,
    /// SOF3: JPEG Lossless, Non-Hierarchical (Process 14), 1.2.840.10008.1.2.4.57.
    Lossless,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JpegInfo {
    pub process: JpegProcess,
    pub precision: u8,
    pub rows: u16,
    pub columns: u16,
    pub components: u8,
}

/// Reads the frame header of a JPEG interchange stream from its first bytes (markers before
/// the first SOF, PS3.5 / ITU-T T.81 §B.2). Progressive and hierarchical JPEG have no
/// current DICOM transfer syntax and are refused.
pub fn probe_jpeg(head: &[u8]) -> Result<JpegInfo, MediaError> {
    if !head.starts_with(&[0xFF, 0xD8]) {
        return Err(MediaError::NotThisFormat("JPEG"));
    }
    let mut i = 2;
    while i + 4 <= head.len() {
        if head[i] != 0xFF {
            return Err(MediaError::Malformed("a marker was expected"));
        }
        let marker = head[i + 1];
        if marker == 0xFF {
            i += 1; // fill byte
            continue;
        }
        let len = u16::from_be_bytes([head[i + 2], head[i + 3]]) as usize;
        if len < 2 {
            return Err(MediaError::Malformed("a segment length is too small"));
        }
        match marker {
            0xC0 | 0xC1 | 0xC3 => {
                let seg = head.get(i + 4..i + 2 + len).ok_or(MediaError::Malformed("the frame header is cut"))?;
                if seg.len() < 6 {
                    return Err(MediaError::Malformed("the frame header is cut"));
                }
                let process = match marker {
                    0xC0 => JpegProcess::Baseline,
                    0xC1 => JpegProcess::Extended,
                    _ => JpegProcess::Lossless,
                };
                let info = JpegInfo {
                    process,
                    precision: seg[0],
                    rows: u16::from_be_bytes([seg[1], seg[2]]),
                    columns: u16::from_be_bytes([seg[3], seg[4]]),
                    components: seg[5],
                };
                if info.rows == 0 || info.columns == 0 {
                    return Err(MediaError::Unsupported("a JPEG whose height is given later (DNL marker)".into()));
                }
                if !matches!(info.components, 1 | 3) {
                    return Err(MediaError::Unsupported(format!("a JPEG with {} components (1 or 3 are supported)", info.components)));
                }
                return Ok(info);
            }
            0xC2 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF => {
                return Err(MediaError::Unsupported("progressive, hierarchical or arithmetic-coded JPEG (no DICOM transfer syntax)".into()))
            }
            0xDA => return Err(MediaError::Malformed("the scan starts before any frame header")),
            _ => i += 2 + len,
        }
    }
    Err(MediaError::Malformed("no frame header in the first part of the file"))
}

/// A PDF starts with `%PDF-` within its first 1024 bytes (ISO 32000-1 §7.5.2, Annex H.1).
pub fn probe_pdf(head: &[u8]) -> Result<(), MediaError> {
    let window = &head[..head.len().min(1024)];
    if window.windows(5).any(|w| w == b"%PDF-") {
        Ok(())
    } else {
        Err(MediaError::NotThisFormat("PDF"))
    }
}

/// The video track of an MP4 (ISO/IEC 14496-12 and -14).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoInfo {
    pub codec: VideoCodec,
    pub rows: u16,
    pub columns: u16,
    pub frames: u32,
    /// Track duration in the media time scale, and the scale (units per second).
    pub duration: u64,
    pub timescale: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    /// AVCProfileIndication and AVCLevelIndication (ISO/IEC 14496-15 §5.3.3.1).
    H264 { profile: u8, level: u8 },
    /// general_profile_idc and general_level_idc (ISO/IEC 14496-15 §8.3.3.1).
    Hevc { profile: u8, level: u8 },
}

impl VideoInfo {
    /// Milliseconds per frame (Frame Time, PS3.3 §C.7.6.5.1.1).
    pub fn frame_time_ms(&self) -> f64 {
        if self.frames == 0 || self.timescale == 0 {
            return 0.0;
        }
        self.duration as f64 * 1000.0 / self.timescale as f64 / self.frames as f64
    }

    /// The DICOM transfer syntax for this stream (PS3.5 §8.2.8, §8.2.12; PS3.6 Table A-1),
    /// `fragmentable` for the variants that allow the stream in several fragments.
    pub fn transfer_syntax(&self, fragmentable: bool) -> Result<String, MediaError> {
        let base = match self.codec {
            // Baseline, Main and High streams decode with a High Profile decoder.
            VideoCodec::H264 { profile: 66 | 77 | 100, level } if level <= 41 => "1.2.840.10008.1.2.4.102",
            VideoCodec::H264 { profile: 100, level: 42 } => "1.2.840.10008.1.2.4.104",
            VideoCodec::H264 { profile, level } => {
                return Err(MediaError::Unsupported(format!(
                    "H.264 profile {profile} level {}.{} (DICOM has High Profile up to level 4.2)",
                    level / 10,
                    level % 10
                )))
            }
            VideoCodec::Hevc { profile: 1, level } if level <= 153 => "1.2.840.10008.1.2.4.107",
            VideoCodec::Hevc { profile: 2, level } if level <= 153 => "1.2.840.10008.1.2.4.108",
            VideoCodec::Hevc { profile, level } => {
                return Err(MediaError::Unsupported(format!(
                    "HEVC profile {profile} level {} (DICOM has Main and Main 10 up to level 5.1)",
                    level as f64 / 30.0
                )))
            }
        };
        let hevc = matches!(self.codec, VideoCodec::Hevc { .. });
        Ok(if fragmentable && !hevc { format!("{base}.1") } else { base.to_owned() })
    }
}

/// Box header: type and payload range.
struct BoxHeader {
    kind: [u8; 4],
    payload_start: u64,
    end: u64,
}

fn read_exact<R: Read>(r: &mut R, buf: &mut [u8]) -> Result<(), MediaError> {
    r.read_exact(buf).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            MediaError::Malformed("a box is cut")
        } else {
            MediaError::Io
        }
    })
}

fn next_box<R: Read + Seek>(r: &mut R, at: u64, limit: u64) -> Result<Option<BoxHeader>, MediaError> {
    if at + 8 > limit {
        return Ok(None);
    }
    r.seek(SeekFrom::Start(at)).map_err(|_| MediaError::Io)?;
    let mut h = [0u8; 8];
    read_exact(r, &mut h)?;
    let size32 = u32::from_be_bytes([h[0], h[1], h[2], h[3]]) as u64;
    let kind = [h[4], h[5], h[6], h[7]];
    let (size, header) = match size32 {
        0 => (limit - at, 8),
        1 => {
            let mut l = [0u8; 8];
            read_exact(r, &mut l)?;
            (u64::from_be_bytes(l), 16)
        }
        s => (s, 8),
    };
    if size < header || at.checked_add(size).is_none_or(|e| e > limit) {
        return Err(MediaError::Malformed("a box is larger than its container"));
    }
    Ok(Some(BoxHeader { kind, payload_start: at + header, end: at + size }))
}

/// The child boxes of a container, by type.
fn children<R: Read + Seek>(r: &mut R, start: u64, end: u64) -> Result<Vec<BoxHeader>, MediaError> {
    let mut out = Vec::new();
    let mut at = start;
    while let Some(b) = next_box(r, at, end)? {
        at = b.end;
        out.push(b);
        if out.len() > 10_000 {
            return Err(MediaError::Malformed("too many boxes"));
        }
    }
    Ok(out)
}

fn payload<R: Read + Seek>(r: &mut R, b: &BoxHeader, max: usize) -> Result<Vec<u8>, MediaError> {
    let len = ((b.end - b.payload_start) as usize).min(max);
    let mut buf = vec![0u8; len];
    r.seek(SeekFrom::Start(b.payload_start)).map_err(|_| MediaError::Io)?;
    read_exact(r, &mut buf)?;
    Ok(buf)
}

fn find<'a>(boxes: &'a [BoxHeader], kind: &[u8; 4]) -> Option<&'a BoxHeader> {
    boxes.iter().find(|b| &b.kind == kind)
}

fn be_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Reads the first video track of an MP4 of `len` bytes: codec and its profile/level, size,
/// frame count and duration. It seeks over the media data (the `moov` box may be at either
/// end) and reads only the boxes it needs, whatever the file size. Fragmented MP4 (no sample
/// table in `moov`) is refused: its frame count is spread over the fragments.
pub fn probe_mp4<R: Read + Seek>(r: &mut R, len: u64) -> Result<VideoInfo, MediaError> {
    let top = children(r, 0, len).map_err(|_| MediaError::NotThisFormat("MP4"))?;
    if top.first().map(|b| &b.kind) != Some(b"ftyp") {
        return Err(MediaError::NotThisFormat("MP4"));
    }
    let moov = find(&top, b"moov").ok_or(MediaError::Malformed("no movie box (moov)"))?;
    let fragmented = find(&top, b"moof").is_some();
    for trak in children(r, moov.payload_start, moov.end)?.iter().filter(|b| &b.kind == b"trak") {
        let Some(mdia) = find(&children(r, trak.payload_start, trak.end)?, b"mdia").map(|b| (b.payload_start, b.end)) else { continue };
        let mdia_children = children(r, mdia.0, mdia.1)?;
        let Some(hdlr) = find(&mdia_children, b"hdlr") else { continue };
        if payload(r, hdlr, 12)?.get(8..12) != Some(b"vide") {
            continue;
        }
        let mdhd = find(&mdia_children, b"mdhd").ok_or(MediaError::Malformed("no media header (mdhd)"))?;
        let h = payload(r, mdhd, 32)?;
        let (timescale, duration) = match h.first() {
            Some(1) => (be_u32(&h, 20), h.get(24..32).and_then(|d| d.try_into().ok()).map(u64::from_be_bytes)),
            _ => (be_u32(&h, 12), be_u32(&h, 16).map(u64::from)),
        };
        let (Some(timescale), Some(duration)) = (timescale, duration) else { return Err(MediaError::Malformed("the media header is cut")) };
        let minf = find(&mdia_children, b"minf").ok_or(MediaError::Malformed("no media information (minf)"))?;
        let minf_children = children(r, minf.payload_start, minf.end)?;
        let stbl = find(&minf_children, b"stbl").ok_or(MediaError::Malformed("no sample table (stbl)"))?;
        let stbl_children = children(r, stbl.payload_start, stbl.end)?;
        let stsz = find(&stbl_children, b"stsz").ok_or(MediaError::Malformed("no sample sizes (stsz)"))?;
        let frames = be_u32(&payload(r, stsz, 12)?, 8).ok_or(MediaError::Malformed("the sample sizes are cut"))?;
        if frames == 0 {
            return Err(MediaError::Unsupported(if fragmented {
                "fragmented MP4 (write it with the sample table in moov)".into()
            } else {
                "a video track without frames".into()
            }));
        }
        let stsd = find(&stbl_children, b"stsd").ok_or(MediaError::Malformed("no sample description (stsd)"))?;
        // stsd: version/flags, entry count, then the first sample entry (a box).
        let entry = next_box(r, stsd.payload_start + 8, stsd.end)?.ok_or(MediaError::Malformed("no sample entry"))?;
        let e = payload(r, &entry, 78)?;
        if e.len() < 78 {
            return Err(MediaError::Malformed("the visual sample entry is cut"));
        }
        // VisualSampleEntry (ISO/IEC 14496-12 §12.1.3): width and height after 24 bytes.
        let columns = u16::from_be_bytes([e[24], e[25]]);
        let rows = u16::from_be_bytes([e[26], e[27]]);
        let config = children(r, entry.payload_start + 78, entry.end)?;
        let codec = match &entry.kind {
            b"avc1" | b"avc3" => {
                let c = find(&config, b"avcC").ok_or(MediaError::Malformed("no AVC configuration (avcC)"))?;
                let c = payload(r, c, 4)?;
                match c[..] {
                    [_, profile, _, level] => VideoCodec::H264 { profile, level },
                    _ => return Err(MediaError::Malformed("the AVC configuration is cut")),
                }
            }
            b"hvc1" | b"hev1" => {
                let c = find(&config, b"hvcC").ok_or(MediaError::Malformed("no HEVC configuration (hvcC)"))?;
                let c = payload(r, c, 13)?;
                if c.len() < 13 {
                    return Err(MediaError::Malformed("the HEVC configuration is cut"));
                }
                VideoCodec::Hevc { profile: c[1] & 0x1F, level: c[12] }
            }
            other => {
                return Err(MediaError::Unsupported(format!(
                    "video codec '{}' (H.264 and HEVC are supported)",
                    String::from_utf8_lossy(other)
                )))
            }
        };
        if rows == 0 || columns == 0 {
            return Err(MediaError::Malformed("the video has no size"));
        }
        return Ok(VideoInfo { codec, rows, columns, frames, duration, timescale });
    }
    Err(MediaError::Malformed("no video track"))
}
