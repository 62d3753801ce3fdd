//! The header of a compressed instance rewritten for native pixel data in Explicit VR Little
//! Endian (PS3.5 §A.2, §8.1.1), for WADO-RS transcoding: a new meta group, the stored data set
//! bytes copied as they are (compressed syntaxes are explicit VR little endian, so the copy is
//! exact and no text is re-encoded), with the attributes decoding changes replaced —
//! Photometric Interpretation, Planar Configuration — and the offset tables of encapsulated
//! pixel data dropped; then the native Pixel Data element header. The caller appends the
//! decoded frames.

use crate::dataset::Element;
use crate::parse::{parse_bytes, ParseError, ParseLimits};
use crate::ts::EXPLICIT_VR_LITTLE_ENDIAN;
use crate::write::{element_header, file_meta, Items};
use dicom_core::{Tag, VR};

const PHOTOMETRIC: Tag = Tag(0x0028, 0x0004);
const PLANAR_CONFIGURATION: Tag = Tag(0x0028, 0x0006);
const EXTENDED_OFFSET_TABLE: Tag = Tag(0x7FE0, 0x0001);
const EXTENDED_OFFSET_TABLE_LENGTHS: Tag = Tag(0x7FE0, 0x0002);
const PIXEL_DATA: Tag = Tag(0x7FE0, 0x0010);

#[derive(Debug, thiserror::Error)]
pub enum TranscodeError {
    #[error("the stored header is not readable: {0}")]
    Parse(#[from] ParseError),
    #[error("only explicit VR little endian data sets can be rewritten here")]
    NotExplicitLittleEndian,
    #[error("the stored header has no SOP Class or Instance UID")]
    NoSopUids,
}

/// What the decoded pixel data are.
#[derive(Debug, Clone)]
pub struct NativePixels {
    pub photometric_interpretation: String,
    /// Written when the image has more than one sample per pixel.
    pub planar_configuration: Option<u16>,
    pub bits_allocated: u16,
    /// Bytes of all frames together (even).
    pub length: u32,
}

/// `stored` holds the stored object from its first byte up to (not including) its Pixel Data
/// element. Returns the new Part 10 header ending with the native Pixel Data element header.
pub fn native_header(stored: &[u8], pixels: &NativePixels) -> Result<Vec<u8>, TranscodeError> {
    let obj = parse_bytes(stored, ParseLimits::default())?;
    if obj.big_endian || obj.transfer_syntax == crate::ts::IMPLICIT_VR_LITTLE_ENDIAN || !obj.positions_are_stored_offsets {
        return Err(TranscodeError::NotExplicitLittleEndian);
    }
    let cs = Default::default();
    let (class, instance) = (obj.dataset.first_text(Tag(0x0008, 0x0016), &cs), obj.dataset.first_text(Tag(0x0008, 0x0018), &cs));
    if class.is_empty() || instance.is_empty() {
        return Err(TranscodeError::NoSopUids);
    }
    let mut out = file_meta(&class, &instance, EXPLICIT_VR_LITTLE_ENDIAN);
    // Replacements, in tag order: `None` drops the element.
    let mut patches: Vec<(Tag, Option<Vec<u8>>)> = vec![(PHOTOMETRIC, Some(one(PHOTOMETRIC, VR::CS, &pixels.photometric_interpretation)))];
    match pixels.planar_configuration {
        Some(p) => patches.push((
            PLANAR_CONFIGURATION,
            Some(crate::write::data_set(&Items::new().u16(PLANAR_CONFIGURATION, p), EXPLICIT_VR_LITTLE_ENDIAN)),
        )),
        None => patches.push((PLANAR_CONFIGURATION, None)),
    }
    patches.push((EXTENDED_OFFSET_TABLE, None));
    patches.push((EXTENDED_OFFSET_TABLE_LENGTHS, None));
    let mut patches = patches.into_iter().peekable();
    for el in obj.dataset.elements.iter().filter(|e| e.tag < PIXEL_DATA) {
        while let Some((tag, bytes)) = patches.next_if(|(t, _)| *t < el.tag) {
            if let Some(b) = bytes {
                out.extend_from_slice(&b);
            }
            let _ = tag;
        }
        if let Some((_, bytes)) = patches.next_if(|(t, _)| *t == el.tag) {
            if let Some(b) = bytes {
                out.extend_from_slice(&b);
            }
            continue;
        }
        let (start, end) = span(el);
        out.extend_from_slice(&stored[start..end]);
    }
    for (_, bytes) in patches {
        if let Some(b) = bytes {
            out.extend_from_slice(&b);
        }
    }
    let vr = if pixels.bits_allocated > 8 { VR::OW } else { VR::OB };
    out.extend(element_header(PIXEL_DATA, vr, pixels.length));
    Ok(out)
}

fn one(tag: Tag, vr: VR, value: &str) -> Vec<u8> {
    crate::write::data_set(&Items::new().str(tag, vr, value), EXPLICIT_VR_LITTLE_ENDIAN)
}

/// Where a top-level element lies in the stored bytes, header included (PS3.5 §7.1.2).
fn span(el: &Element) -> (usize, usize) {
    let header = if crate::parse::has_long_length_vr(el.vr) { 12 } else { 8 };
    ((el.extent.offset - header) as usize, (el.extent.offset + el.extent.length) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::write::part10;

    #[test]
    fn the_header_is_copied_with_the_pixel_attributes_replaced() {
        let ds = Items::new()
            .str(Tag(0x0008, 0x0005), VR::CS, "ISO_IR 100")
            .str(Tag(0x0008, 0x0016), VR::UI, "1.2.840.10008.5.1.4.1.1.77.1.6")
            .str(Tag(0x0008, 0x0018), VR::UI, "1.2.3.4")
            .bytes(Tag(0x0010, 0x0010), VR::PN, b"M\xfcller^J\xfcrgen ".to_vec())
            .sequence(Tag(0x0040, 0x0555), vec![Items::new().str(Tag(0x0008, 0x0100), VR::SH, "X")], true)
            .u16(Tag(0x0028, 0x0002), 3)
            .str(PHOTOMETRIC, VR::CS, "YBR_FULL_422")
            .u16(Tag(0x0028, 0x0010), 2)
            .bytes(EXTENDED_OFFSET_TABLE, VR::OV, vec![0; 8])
            .bytes(EXTENDED_OFFSET_TABLE_LENGTHS, VR::OV, vec![0; 8]);
        let stored = part10(&ds, "1.2.840.10008.1.2.4.50");
        let header = native_header(
            &stored,
            &NativePixels { photometric_interpretation: "RGB".into(), planar_configuration: Some(0), bits_allocated: 8, length: 12 },
        )
        .expect("rewritten");
        let mut whole = header.clone();
        whole.extend_from_slice(&[7; 12]);
        let obj = parse_bytes(&whole, ParseLimits::default()).expect("parses");
        let cs = Default::default();
        assert_eq!(obj.transfer_syntax, EXPLICIT_VR_LITTLE_ENDIAN);
        assert_eq!(obj.dataset.first_text(PHOTOMETRIC, &cs), "RGB");
        assert_eq!(obj.dataset.int(PLANAR_CONFIGURATION, false), Some(0));
        assert!(obj.dataset.get(EXTENDED_OFFSET_TABLE).is_none() && obj.dataset.get(EXTENDED_OFFSET_TABLE_LENGTHS).is_none());
        assert_eq!(obj.dataset.bytes(Tag(0x0010, 0x0010)), Some(&b"M\xfcller^J\xfcrgen "[..]), "text copied byte for byte");
        assert!(obj.dataset.get(Tag(0x0040, 0x0555)).is_some(), "sequences copied");
        assert_eq!(obj.dataset.get(PIXEL_DATA).map(|e| e.extent.length), Some(12));
        let implicit = part10(
            &Items::new().str(Tag(0x0008, 0x0016), VR::UI, "1.2").str(Tag(0x0008, 0x0018), VR::UI, "1.3"),
            crate::ts::IMPLICIT_VR_LITTLE_ENDIAN,
        );
        assert!(matches!(
            native_header(
                &implicit,
                &NativePixels { photometric_interpretation: "X".into(), planar_configuration: None, bits_allocated: 8, length: 2 }
            ),
            Err(TranscodeError::NotExplicitLittleEndian)
        ));
    }
}
