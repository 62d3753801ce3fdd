//! Frame layout from the Extended Offset Table (PS3.3 §C.7.6.3.1.8), which must win over an
//! empty Basic Offset Table and over a fragment scan, and must reject a table that does not
//! fall on fragment boundaries.

use vna_dicom::frames::{frame_layout, FrameLayout};
use vna_dicom::parse::{parse_bytes, ParseLimits};
use vna_dicom::write::{part10, Items};
use vna_dicom::{tags, ts, VR};

fn u64s(v: &[u64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Three frames of two fragments each; no JPEG markers, so only the table can tell frames apart.
fn object(offsets: &[u64], lengths: &[u64]) -> (Vec<u8>, Vec<Vec<u8>>) {
    let frames: Vec<Vec<u8>> = (0..3u8).map(|i| vec![i + 1; 40]).collect();
    let ds = Items::new()
        .str(tags::SOP_CLASS_UID, VR::UI, "1.2.840.10008.5.1.4.1.1.77.1.6")
        .str(tags::SOP_INSTANCE_UID, VR::UI, "1.2.3.4.5")
        .str(tags::STUDY_INSTANCE_UID, VR::UI, "1.2.3")
        .str(tags::SERIES_INSTANCE_UID, VR::UI, "1.2.3.4")
        .u16(tags::ROWS, 4)
        .u16(tags::COLUMNS, 4)
        .str(tags::NUMBER_OF_FRAMES, VR::IS, "3")
        .bytes(tags::EXTENDED_OFFSET_TABLE, VR::OV, u64s(offsets))
        .bytes(tags::EXTENDED_OFFSET_TABLE_LENGTHS, VR::OV, u64s(lengths))
        .encapsulated_pixels(&frames, 2, false);
    (part10(&ds, ts::JPEG_BASELINE), frames)
}

#[test]
fn extended_offset_table_locates_multi_fragment_frames() {
    // Each fragment: 8-byte item header + 20 bytes; a frame is two fragments = 56 bytes.
    let (bytes, frames) = object(&[0, 56, 112], &[40, 40, 40]);
    let obj = parse_bytes(&bytes, ParseLimits::default()).expect("parse");
    let FrameLayout::Encapsulated(layout) = frame_layout(&obj) else { panic!("encapsulated layout expected") };
    assert_eq!(layout.len(), 3);
    for (i, pieces) in layout.iter().enumerate() {
        assert_eq!(pieces.len(), 2, "frame {i} has two fragments");
        let got: Vec<u8> = pieces.iter().flat_map(|e| bytes[e.offset as usize..(e.offset + e.length) as usize].to_vec()).collect();
        assert_eq!(got, frames[i]);
    }
}

#[test]
fn a_table_off_fragment_boundaries_is_not_trusted() {
    let (bytes, _) = object(&[0, 50, 112], &[40, 40, 40]);
    let obj = parse_bytes(&bytes, ParseLimits::default()).expect("parse");
    // Six fragments, three frames, no markers, no usable table: frames cannot be addressed,
    // which is better than serving wrong bytes.
    assert_eq!(frame_layout(&obj), FrameLayout::None);
}
