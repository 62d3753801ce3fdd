//! Non-DICOM files made DICOM objects: a PDF as Encapsulated PDF (PS3.3 §A.45.1), a JPEG
//! photo as a VL Photographic / Endoscopic / Microscopic Image (§A.32), an MP4 video as a
//! Video Photographic / Endoscopic / Microscopic Image (§A.32.5–7), with the patient, study
//! and series attributes given by the caller ([`Attributes`]) and fresh UIDs.
//!
//! The file itself is never held: [`build`] returns the object as [`Segment`]s, bytes we
//! write interleaved with ranges of the file, so that the caller streams a multi-GB video
//! straight into the ingest pipeline. A video longer than one fragment allows (4 GiB) is
//! split into 1 GiB fragments under the fragmentable transfer syntax (PS3.5 §8.2.8).

pub mod media;

use crate::uid;
use crate::write::{element_header, file_meta, item_header, Items, SEQUENCE_DELIMITER};
use dicom_core::{Tag, VR};
pub use media::{probe_jpeg, probe_mp4, probe_pdf, JpegInfo, JpegProcess, MediaError, VideoCodec, VideoInfo};

/// Largest single fragment or document value (a 32-bit length, even).
pub const MAX_VALUE_BYTES: u64 = 0xFFFF_FFFE;
/// Fragment size of a video split under a fragmentable syntax.
pub const VIDEO_FRAGMENT_BYTES: u64 = 1 << 30;

/// What is being encapsulated.
#[derive(Debug, Clone, PartialEq)]
pub enum Media {
    Pdf,
    Jpeg(JpegInfo),
    Video(VideoInfo),
}

/// A piece of the object: bytes we made, or a range of the caller's file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Bytes(Vec<u8>),
    File { offset: u64, length: u64 },
}

/// The object to store, and what it is.
#[derive(Debug, Clone)]
pub struct Encapsulated {
    pub sop_class_uid: &'static str,
    pub sop_instance_uid: String,
    pub series_instance_uid: String,
    pub study_instance_uid: String,
    pub transfer_syntax: String,
    pub segments: Vec<Segment>,
}

impl Encapsulated {
    pub fn total_bytes(&self) -> u64 {
        self.segments
            .iter()
            .map(|s| match s {
                Segment::Bytes(b) => b.len() as u64,
                Segment::File { length, .. } => *length,
            })
            .sum()
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EncapsulateError {
    #[error("metadata: {0} is not an attribute that can be given (see the documentation for the list)")]
    UnknownAttribute(String),
    #[error("metadata: {keyword} is not a valid {vr} value: {why}")]
    InvalidValue { keyword: &'static str, vr: &'static str, why: &'static str },
    #[error("metadata: {0} is required")]
    Missing(&'static str),
    #[error("the file is too large to encapsulate ({0} bytes; at most 4 GiB for a document or photo)")]
    TooLarge(u64),
    #[error(transparent)]
    Media(#[from] MediaError),
}

/// The attributes a caller may give, by keyword: patient, study, series and a few of the
/// instance (PS3.3 §C.7.1.1, §C.7.2.1, §C.7.3.1, §C.7.5.1, §C.24.2). Anything else is refused.
const ALLOWED: &[(&str, Tag, VR)] = &[
    ("PatientName", Tag(0x0010, 0x0010), VR::PN),
    ("PatientID", Tag(0x0010, 0x0020), VR::LO),
    ("IssuerOfPatientID", Tag(0x0010, 0x0021), VR::LO),
    ("PatientBirthDate", Tag(0x0010, 0x0030), VR::DA),
    ("PatientSex", Tag(0x0010, 0x0040), VR::CS),
    ("StudyInstanceUID", Tag(0x0020, 0x000D), VR::UI),
    ("StudyDate", Tag(0x0008, 0x0020), VR::DA),
    ("StudyTime", Tag(0x0008, 0x0030), VR::TM),
    ("AccessionNumber", Tag(0x0008, 0x0050), VR::SH),
    ("ReferringPhysicianName", Tag(0x0008, 0x0090), VR::PN),
    ("StudyDescription", Tag(0x0008, 0x1030), VR::LO),
    ("StudyID", Tag(0x0020, 0x0010), VR::SH),
    ("SeriesInstanceUID", Tag(0x0020, 0x000E), VR::UI),
    ("SeriesDescription", Tag(0x0008, 0x103E), VR::LO),
    ("SeriesNumber", Tag(0x0020, 0x0011), VR::IS),
    ("Modality", Tag(0x0008, 0x0060), VR::CS),
    ("BodyPartExamined", Tag(0x0018, 0x0015), VR::CS),
    ("InstanceNumber", Tag(0x0020, 0x0013), VR::IS),
    ("ContentDate", Tag(0x0008, 0x0023), VR::DA),
    ("ContentTime", Tag(0x0008, 0x0033), VR::TM),
    ("DocumentTitle", Tag(0x0042, 0x0010), VR::ST),
    ("InstitutionName", Tag(0x0008, 0x0080), VR::LO),
    ("Manufacturer", Tag(0x0008, 0x0070), VR::LO),
    ("OperatorsName", Tag(0x0008, 0x1070), VR::PN),
];

/// Validated attribute values, by keyword.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Attributes {
    values: Vec<(&'static str, Tag, VR, String)>,
}

impl Attributes {
    /// Validates one value against its VR (PS3.5 §6.2). Errors name the keyword, never the
    /// value: metadata carries patient data.
    pub fn set(&mut self, keyword: &str, value: &str) -> Result<(), EncapsulateError> {
        let Some(&(kw, tag, vr)) = ALLOWED.iter().find(|(k, _, _)| *k == keyword) else {
            return Err(EncapsulateError::UnknownAttribute(keyword.chars().filter(char::is_ascii_alphanumeric).take(64).collect()));
        };
        let value = value.trim();
        check(kw, vr, value)?;
        self.values.retain(|(k, _, _, _)| *k != kw);
        self.values.push((kw, tag, vr, value.to_owned()));
        Ok(())
    }

    pub fn get(&self, keyword: &str) -> Option<&str> {
        self.values.iter().find(|(k, _, _, _)| *k == keyword).map(|(_, _, _, v)| v.as_str())
    }

    /// Sets a value only when none was given (attributes of an existing study).
    pub fn set_default(&mut self, keyword: &str, value: &str) -> Result<(), EncapsulateError> {
        if self.get(keyword).is_none() && !value.is_empty() {
            self.set(keyword, value)?;
        }
        Ok(())
    }
}

fn check(keyword: &'static str, vr: VR, v: &str) -> Result<(), EncapsulateError> {
    let bad = |why: &'static str| Err(EncapsulateError::InvalidValue { keyword, vr: vr_name(vr), why });
    let max = match vr {
        VR::CS | VR::SH | VR::DA => 16,
        VR::TM => 14,
        VR::IS => 12,
        VR::LO | VR::UI => 64,
        VR::PN => 64 * 3 + 2,
        VR::ST => 1024,
        _ => 64,
    };
    if v.chars().count() > max {
        return bad("too long");
    }
    if v.chars().any(|c| c.is_control()) || (vr != VR::ST && v.contains('\\')) {
        return bad("control characters or backslashes are not allowed");
    }
    match vr {
        VR::UI => uid::validate(v).map_err(|_| EncapsulateError::InvalidValue {
            keyword,
            vr: "UI",
            why: "not a UID (digits and dots, at most 64)",
        }),
        VR::DA if !valid_date(v) => bad("a date is YYYYMMDD"),
        VR::TM if !valid_time(v) => bad("a time is HHMMSS[.FFFFFF]"),
        VR::CS if !v.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == ' ' || c == '_') => {
            bad("upper-case letters, digits, space and underscore only")
        }
        VR::IS if v.parse::<i32>().is_err() => bad("an integer"),
        VR::PN if v.split('=').count() > 3 || v.split('=').any(|g| g.split('^').count() > 5 || g.chars().count() > 64) => {
            bad("a person name is up to 5 components per group, 64 characters each")
        }
        _ => Ok(()),
    }
}

fn vr_name(vr: VR) -> &'static str {
    match vr {
        VR::PN => "PN",
        VR::LO => "LO",
        VR::DA => "DA",
        VR::TM => "TM",
        VR::CS => "CS",
        VR::UI => "UI",
        VR::SH => "SH",
        VR::IS => "IS",
        VR::ST => "ST",
        _ => "value",
    }
}

fn valid_date(v: &str) -> bool {
    if v.len() != 8 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let (m, d) = (v[4..6].parse::<u32>().unwrap_or(0), v[6..8].parse::<u32>().unwrap_or(0));
    (1..=12).contains(&m) && (1..=31).contains(&d)
}

fn valid_time(v: &str) -> bool {
    let (hms, frac) = v.split_once('.').unwrap_or((v, ""));
    let ok_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if !matches!(hms.len(), 2 | 4 | 6) || !ok_digits(hms) || frac.len() > 6 || !ok_digits(frac) || (!frac.is_empty() && hms.len() != 6) {
        return false;
    }
    let part = |i: usize| hms.get(i..i + 2).map_or(0, |s| s.parse::<u32>().unwrap_or(99));
    part(0) < 24 && part(2) < 60 && part(4) < 61
}

/// SOP classes (PS3.4 Annex B.5).
pub mod sop_class {
    pub const ENCAPSULATED_PDF: &str = "1.2.840.10008.5.1.4.1.1.104.1";
    pub const VL_ENDOSCOPIC: &str = "1.2.840.10008.5.1.4.1.1.77.1.1";
    pub const VIDEO_ENDOSCOPIC: &str = "1.2.840.10008.5.1.4.1.1.77.1.1.1";
    pub const VL_MICROSCOPIC: &str = "1.2.840.10008.5.1.4.1.1.77.1.2";
    pub const VIDEO_MICROSCOPIC: &str = "1.2.840.10008.5.1.4.1.1.77.1.2.1";
    pub const VL_PHOTOGRAPHIC: &str = "1.2.840.10008.5.1.4.1.1.77.1.4";
    pub const VIDEO_PHOTOGRAPHIC: &str = "1.2.840.10008.5.1.4.1.1.77.1.4.1";
}

/// Builds the object for a file of `file_bytes` bytes. The patient and study must be named:
/// `PatientID` (or an existing study's attributes merged in by the caller beforehand).
/// Study and series UIDs are made when not given; the SOP Instance UID always is.
pub fn build(media: &Media, attrs: &Attributes, file_bytes: u64, now: &DateTime) -> Result<Encapsulated, EncapsulateError> {
    if attrs.get("PatientID").is_none() {
        return Err(EncapsulateError::Missing("PatientID (or the StudyInstanceUID of a stored study)"));
    }
    let study = attrs.get("StudyInstanceUID").map_or_else(uid::generate, str::to_owned);
    let series = attrs.get("SeriesInstanceUID").map_or_else(uid::generate, str::to_owned);
    let instance = uid::generate();
    let modality = attrs.get("Modality").unwrap_or(match media {
        Media::Pdf => "DOC",
        _ => "XC",
    });
    let (sop_class, transfer_syntax) = match media {
        Media::Pdf => (sop_class::ENCAPSULATED_PDF, crate::ts::EXPLICIT_VR_LITTLE_ENDIAN.to_owned()),
        Media::Jpeg(j) => {
            let class = match modality {
                "ES" => sop_class::VL_ENDOSCOPIC,
                "GM" | "SM" => sop_class::VL_MICROSCOPIC,
                _ => sop_class::VL_PHOTOGRAPHIC,
            };
            let ts = match j.process {
                JpegProcess::Baseline => "1.2.840.10008.1.2.4.50",
                JpegProcess::Extended => "1.2.840.10008.1.2.4.51",
                JpegProcess::Lossless => "1.2.840.10008.1.2.4.57",
            };
            (class, ts.to_owned())
        }
        Media::Video(v) => {
            let class = match modality {
                "ES" => sop_class::VIDEO_ENDOSCOPIC,
                "GM" | "SM" => sop_class::VIDEO_MICROSCOPIC,
                _ => sop_class::VIDEO_PHOTOGRAPHIC,
            };
            (class, v.transfer_syntax(file_bytes > MAX_VALUE_BYTES - 1)?)
        }
    };
    if !matches!(media, Media::Video(_)) && file_bytes > MAX_VALUE_BYTES - 1 {
        return Err(EncapsulateError::TooLarge(file_bytes));
    }

    let mut ds = Items::new()
        .str(Tag(0x0008, 0x0005), VR::CS, "ISO_IR 192")
        .str(Tag(0x0008, 0x0016), VR::UI, sop_class)
        .str(Tag(0x0008, 0x0018), VR::UI, &instance)
        .str(Tag(0x0020, 0x000D), VR::UI, &study)
        .str(Tag(0x0020, 0x000E), VR::UI, &series)
        .str(Tag(0x0008, 0x0060), VR::CS, modality)
        .str(Tag(0x0008, 0x0012), VR::DA, &now.date)
        .str(Tag(0x0008, 0x0013), VR::TM, &now.time)
        .str(Tag(0x0008, 0x0064), VR::CS, "WSD");
    // Type 2 attributes are present, empty when not given (PS3.5 §7.4).
    for (kw, tag, vr) in [
        ("PatientName", Tag(0x0010, 0x0010), VR::PN),
        ("PatientBirthDate", Tag(0x0010, 0x0030), VR::DA),
        ("PatientSex", Tag(0x0010, 0x0040), VR::CS),
        ("StudyDate", Tag(0x0008, 0x0020), VR::DA),
        ("StudyTime", Tag(0x0008, 0x0030), VR::TM),
        ("AccessionNumber", Tag(0x0008, 0x0050), VR::SH),
        ("ReferringPhysicianName", Tag(0x0008, 0x0090), VR::PN),
        ("StudyID", Tag(0x0020, 0x0010), VR::SH),
        ("SeriesNumber", Tag(0x0020, 0x0011), VR::IS),
        ("Manufacturer", Tag(0x0008, 0x0070), VR::LO),
    ] {
        ds = ds.str(tag, vr, attrs.get(kw).unwrap_or(""));
    }
    ds = ds.str(Tag(0x0020, 0x0013), VR::IS, attrs.get("InstanceNumber").unwrap_or("1"));
    ds = ds.str(Tag(0x0008, 0x0023), VR::DA, attrs.get("ContentDate").unwrap_or(&now.date));
    ds = ds.str(Tag(0x0008, 0x0033), VR::TM, attrs.get("ContentTime").unwrap_or(&now.time));
    for (kw, tag, vr, v) in &attrs.values {
        if !matches!(*kw, "StudyInstanceUID" | "SeriesInstanceUID" | "Modality" | "InstanceNumber" | "ContentDate" | "ContentTime") {
            ds = ds.str(*tag, *vr, v);
        }
    }

    let mut segments = vec![Segment::Bytes(file_meta(sop_class, &instance, &transfer_syntax))];
    match media {
        Media::Pdf => {
            let padded = file_bytes + file_bytes % 2;
            let ds = ds
                .str(Tag(0x0028, 0x0301), VR::CS, "YES")
                .str(Tag(0x0042, 0x0010), VR::ST, attrs.get("DocumentTitle").unwrap_or(""))
                .str(Tag(0x0008, 0x002A), VR::DT, "")
                .sequence(Tag(0x0040, 0xA043), Vec::new(), false)
                .str(Tag(0x0042, 0x0012), VR::LO, "application/pdf")
                .bytes(Tag(0x0042, 0x0015), VR::UL, (file_bytes as u32).to_le_bytes().to_vec())
                .bytes(Tag(0x0042, 0x0011), VR::OB, Vec::new());
            let (before, after) = ds.split_around(Tag(0x0042, 0x0011));
            segments.push(Segment::Bytes(crate::write::data_set(&before, crate::ts::EXPLICIT_VR_LITTLE_ENDIAN)));
            segments.push(Segment::Bytes(element_header(Tag(0x0042, 0x0011), VR::OB, padded as u32)));
            segments.push(Segment::File { offset: 0, length: file_bytes });
            let mut tail = vec![0u8; (padded - file_bytes) as usize];
            tail.extend(crate::write::data_set(&after, crate::ts::EXPLICIT_VR_LITTLE_ENDIAN));
            segments.push(Segment::Bytes(tail));
        }
        Media::Jpeg(j) => {
            let color = j.components == 3;
            let lossless = j.process == JpegProcess::Lossless;
            let mut ds = image_pixel(
                ds,
                j.rows,
                j.columns,
                j.components as u16,
                j.precision.max(8) as u16,
                match (color, lossless) {
                    (false, _) => "MONOCHROME2",
                    (true, false) => "YBR_FULL_422",
                    (true, true) => "RGB",
                },
            )
            .str(Tag(0x0008, 0x0008), VR::CS, "ORIGINAL\\PRIMARY")
            .sequence(Tag(0x0040, 0x0555), Vec::new(), false)
            .str(Tag(0x0020, 0x0020), VR::CS, "");
            if !lossless {
                ds = ds.str(Tag(0x0028, 0x2110), VR::CS, "01").str(Tag(0x0028, 0x2114), VR::CS, "ISO_10918_1");
            }
            pixel_fragments(&mut segments, &ds, file_bytes, MAX_VALUE_BYTES);
        }
        Media::Video(v) => {
            let frame_time = format!("{:.4}", v.frame_time_ms());
            let cine_rate = if v.frame_time_ms() > 0.0 { (1000.0 / v.frame_time_ms()).round() as i64 } else { 0 };
            let ds = image_pixel(ds, v.rows, v.columns, 3, 8, "YBR_PARTIAL_420")
                .str(Tag(0x0008, 0x0008), VR::CS, "ORIGINAL\\PRIMARY")
                .sequence(Tag(0x0040, 0x0555), Vec::new(), false)
                .str(Tag(0x0020, 0x0020), VR::CS, "")
                .str(Tag(0x0028, 0x0008), VR::IS, &v.frames.to_string())
                .bytes(Tag(0x0028, 0x0009), VR::AT, vec![0x18, 0x00, 0x63, 0x10])
                .str(Tag(0x0018, 0x1063), VR::DS, &trim_ds(&frame_time))
                .str(Tag(0x0018, 0x0040), VR::IS, &cine_rate.to_string())
                .str(Tag(0x0028, 0x2110), VR::CS, "01")
                .str(Tag(0x0028, 0x2114), VR::CS, if matches!(v.codec, VideoCodec::Hevc { .. }) { "ISO_23008_2" } else { "ISO_14496_10" });
            let fragment = if file_bytes > MAX_VALUE_BYTES - 1 { VIDEO_FRAGMENT_BYTES } else { MAX_VALUE_BYTES };
            pixel_fragments(&mut segments, &ds, file_bytes, fragment);
        }
    }
    Ok(Encapsulated {
        sop_class_uid: sop_class,
        sop_instance_uid: instance,
        series_instance_uid: series,
        study_instance_uid: study,
        transfer_syntax,
        segments,
    })
}

fn trim_ds(s: &str) -> String {
    let t = s.trim_end_matches('0').trim_end_matches('.');
    if t.is_empty() {
        "0".into()
    } else {
        t.chars().take(16).collect()
    }
}

fn image_pixel(ds: Items, rows: u16, columns: u16, samples: u16, bits: u16, photometric: &str) -> Items {
    let mut ds = ds
        .u16(Tag(0x0028, 0x0002), samples)
        .str(Tag(0x0028, 0x0004), VR::CS, photometric)
        .u16(Tag(0x0028, 0x0010), rows)
        .u16(Tag(0x0028, 0x0011), columns)
        .u16(Tag(0x0028, 0x0100), if bits > 8 { 16 } else { 8 })
        .u16(Tag(0x0028, 0x0101), bits)
        .u16(Tag(0x0028, 0x0102), bits - 1)
        .u16(Tag(0x0028, 0x0103), 0);
    if samples > 1 {
        ds = ds.u16(Tag(0x0028, 0x0006), 0);
    }
    ds
}

/// The data set, then encapsulated Pixel Data (PS3.5 §A.4): an empty Basic Offset Table and
/// the file in fragments of at most `fragment` bytes, the last padded to an even length.
fn pixel_fragments(segments: &mut Vec<Segment>, ds: &Items, file_bytes: u64, fragment: u64) {
    let mut head = crate::write::data_set(ds, crate::ts::EXPLICIT_VR_LITTLE_ENDIAN);
    head.extend(element_header(Tag(0x7FE0, 0x0010), VR::OB, u32::MAX));
    head.extend(item_header(0));
    let mut offset = 0;
    loop {
        let length = (file_bytes - offset).min(fragment);
        let padded = length + length % 2;
        head.extend(item_header(padded as u32));
        segments.push(Segment::Bytes(std::mem::take(&mut head)));
        segments.push(Segment::File { offset, length });
        head = vec![0u8; (padded - length) as usize];
        offset += length;
        if offset >= file_bytes {
            break;
        }
    }
    head.extend(SEQUENCE_DELIMITER);
    segments.push(Segment::Bytes(head));
}

/// Date and time of the encapsulation (Instance Creation Date/Time, default Content Date/Time).
#[derive(Debug, Clone)]
pub struct DateTime {
    pub date: String,
    pub time: String,
}

#[cfg(test)]
mod tests;
