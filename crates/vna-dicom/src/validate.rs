//! The checks every ingest path runs on a parsed object before it is stored, beyond what the
//! parser refuses while reading (structure, lengths, truncation): one verdict per defect, the
//! same whichever protocol carried the object.
//!
//! - The file meta group must describe the data set it heads (PS3.10 §7.1: Media Storage SOP
//!   Class and Instance UID are the data set's SOP Class and Instance UID).
//! - The transfer syntax must be one the archive knows ([`crate::ts::KNOWN`]): any other says
//!   nothing certain about how the data set is encoded.
//! - Native Pixel Data must hold every frame the Image Pixel Module declares (PS3.5 §8.1.1,
//!   PS3.3 §C.7.6.3): a shorter value is a cut image re-encoded by a tolerant reader, and would
//!   serve garbage for its last rows. A longer one (trailing padding seen in the wild) passes.

use crate::charset::Charset;
use crate::dataset::Value;
use crate::parse::ParsedObject;
use crate::tags;
use dicom_core::Tag;

const MEDIA_STORAGE_SOP_CLASS_UID: Tag = Tag(0x0002, 0x0002);
const MEDIA_STORAGE_SOP_INSTANCE_UID: Tag = Tag(0x0002, 0x0003);

/// Why a readable object is still not acceptable. Messages name attributes, never values
/// (UIDs of transfer syntaxes are standard identifiers, not patient data).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Defect {
    #[error("Media Storage SOP Instance UID (0002,0003) differs from the data set's SOP Instance UID (0008,0018)")]
    MetaSopInstanceMismatch,
    #[error("Media Storage SOP Class UID (0002,0002) differs from the data set's SOP Class UID (0008,0016)")]
    MetaSopClassMismatch,
    #[error("transfer syntax {0} is not a transfer syntax this archive knows")]
    UnknownTransferSyntax(String),
    #[error("Pixel Data (7FE0,0010) holds {actual} bytes; Rows, Columns, Samples per Pixel, Bits Allocated and Number of Frames declare {expected}")]
    PixelDataTooShort { actual: u64, expected: u64 },
}

impl Defect {
    /// True for the defects that say the object is not the instance it claims to be (PS3.4
    /// Table B.2-1 0xA900, "data set does not match SOP class"); the others are malformed
    /// objects (0xC000 "cannot understand").
    pub fn is_identity_mismatch(&self) -> bool {
        matches!(self, Defect::MetaSopInstanceMismatch | Defect::MetaSopClassMismatch)
    }
}

/// The one validation of a parsed object.
pub fn validate(obj: &ParsedObject) -> Result<(), Defect> {
    if !crate::ts::is_known(&obj.transfer_syntax) {
        return Err(Defect::UnknownTransferSyntax(obj.transfer_syntax.clone()));
    }
    let cs = Charset::default();
    let uid = |ds: &crate::dataset::DataSet, tag: Tag| ds.text(tag, &cs).map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    let pairs = [
        (MEDIA_STORAGE_SOP_INSTANCE_UID, tags::SOP_INSTANCE_UID, Defect::MetaSopInstanceMismatch),
        (MEDIA_STORAGE_SOP_CLASS_UID, tags::SOP_CLASS_UID, Defect::MetaSopClassMismatch),
    ];
    for (meta_tag, data_tag, defect) in pairs {
        // Only what both sides state can disagree; a missing attribute is the extractor's
        // concern (it names the one that is required).
        if let (Some(m), Some(d)) = (uid(&obj.meta, meta_tag), uid(&obj.dataset, data_tag)) {
            if m != d {
                return Err(defect);
            }
        }
    }
    check_pixel_length(obj)
}

fn check_pixel_length(obj: &ParsedObject) -> Result<(), Defect> {
    let ds = &obj.dataset;
    let Some(pixels) = ds.get(tags::PIXEL_DATA) else { return Ok(()) };
    if matches!(pixels.value, Value::Fragments(_)) {
        return Ok(());
    }
    let int = |tag: Tag| ds.int(tag, obj.big_endian);
    let (Some(rows), Some(columns), Some(bits)) = (int(tags::ROWS), int(tags::COLUMNS), int(tags::BITS_ALLOCATED)) else {
        return Ok(());
    };
    let samples = int(tags::SAMPLES_PER_PIXEL).unwrap_or(1);
    let frames = int(tags::NUMBER_OF_FRAMES).unwrap_or(1).max(1);
    let dims = [rows, columns, samples, bits, frames];
    if dims.iter().any(|d| *d <= 0) {
        return Ok(());
    }
    let bits_total = dims.iter().try_fold(1u128, |acc, d| acc.checked_mul(*d as u128));
    let Some(expected) = bits_total.map(|b| b.div_ceil(8)).and_then(|b| u64::try_from(b).ok()) else { return Ok(()) };
    if pixels.extent.length < expected {
        return Err(Defect::PixelDataTooShort { actual: pixels.extent.length, expected });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::{parse_bytes, ParseLimits};
    use crate::write::{file_meta, part10, Items};
    use dicom_core::VR;

    const CT: &str = "1.2.840.10008.5.1.4.1.1.2";

    fn image(pixels: usize) -> Items {
        Items::new()
            .str(tags::SOP_CLASS_UID, VR::UI, CT)
            .str(tags::SOP_INSTANCE_UID, VR::UI, "1.2.3.4")
            .u16(tags::ROWS, 4)
            .u16(tags::COLUMNS, 4)
            .u16(tags::BITS_ALLOCATED, 16)
            .u16(tags::SAMPLES_PER_PIXEL, 1)
            .str(tags::NUMBER_OF_FRAMES, VR::IS, "2")
            .native_pixels(VR::OW, vec![0; pixels])
    }

    fn check(bytes: &[u8]) -> Result<(), Defect> {
        validate(&parse_bytes(bytes, ParseLimits::default()).expect("parses"))
    }

    #[test]
    fn pixel_data_must_hold_every_frame() {
        assert_eq!(check(&part10(&image(64), crate::ts::EXPLICIT_VR_LITTLE_ENDIAN)), Ok(()));
        assert_eq!(check(&part10(&image(66), crate::ts::EXPLICIT_VR_LITTLE_ENDIAN)), Ok(()), "trailing padding passes");
        assert_eq!(
            check(&part10(&image(62), crate::ts::EXPLICIT_VR_LITTLE_ENDIAN)),
            Err(Defect::PixelDataTooShort { actual: 62, expected: 64 })
        );
        // 1-bit data packs eight pixels a byte.
        let bits = Items::new()
            .str(tags::SOP_CLASS_UID, VR::UI, CT)
            .str(tags::SOP_INSTANCE_UID, VR::UI, "1.2.3.4")
            .u16(tags::ROWS, 3)
            .u16(tags::COLUMNS, 3)
            .u16(tags::BITS_ALLOCATED, 1)
            .native_pixels(VR::OB, vec![0; 2]);
        assert_eq!(check(&part10(&bits, crate::ts::EXPLICIT_VR_LITTLE_ENDIAN)), Ok(()));
    }

    #[test]
    fn the_meta_group_must_describe_its_data_set() {
        let body = crate::write::data_set(&image(64), crate::ts::EXPLICIT_VR_LITTLE_ENDIAN);
        let with_meta = |class: &str, instance: &str, ts: &str| {
            let mut b = file_meta(class, instance, ts);
            b.extend_from_slice(&body);
            b
        };
        assert_eq!(check(&with_meta(CT, "1.2.3.4", crate::ts::EXPLICIT_VR_LITTLE_ENDIAN)), Ok(()));
        assert_eq!(check(&with_meta(CT, "1.2.3.5", crate::ts::EXPLICIT_VR_LITTLE_ENDIAN)), Err(Defect::MetaSopInstanceMismatch));
        assert_eq!(
            check(&with_meta("1.2.840.10008.5.1.4.1.1.4", "1.2.3.4", crate::ts::EXPLICIT_VR_LITTLE_ENDIAN)),
            Err(Defect::MetaSopClassMismatch)
        );
        assert_eq!(check(&with_meta(CT, "1.2.3.4", "1.2.3.4.5.6.7.8.9")), Err(Defect::UnknownTransferSyntax("1.2.3.4.5.6.7.8.9".into())));
        assert!(
            Defect::MetaSopClassMismatch.is_identity_mismatch() && !Defect::UnknownTransferSyntax(String::new()).is_identity_mismatch()
        );
    }
}
