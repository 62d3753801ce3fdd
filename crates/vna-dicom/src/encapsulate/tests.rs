use super::*;
use crate::dataset::Value;
use crate::parse::{parse_bytes, ParseLimits};
use std::io::Cursor;

fn now() -> DateTime {
    DateTime { date: "20261201".into(), time: "101500".into() }
}

fn attrs(pairs: &[(&str, &str)]) -> Attributes {
    let mut a = Attributes::default();
    for (k, v) in pairs {
        a.set(k, v).expect("valid");
    }
    a
}

/// The object the segments describe, with `file` in place of the file ranges.
fn assemble(e: &Encapsulated, file: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for s in &e.segments {
        match s {
            Segment::Bytes(b) => out.extend_from_slice(b),
            Segment::File { offset, length } => out.extend_from_slice(&file[*offset as usize..(*offset + *length) as usize]),
        }
    }
    assert_eq!(out.len() as u64, e.total_bytes());
    out
}

#[test]
fn a_pdf_becomes_an_encapsulated_pdf() {
    let pdf = b"%PDF-1.7\nsome odd-length document body.\n%%EOF".to_vec();
    assert_eq!(pdf.len() % 2, 1);
    probe_pdf(&pdf).expect("a PDF");
    let a = attrs(&[("PatientID", "P-1"), ("PatientName", "Test^Pdf"), ("DocumentTitle", "Report")]);
    let e = build(&Media::Pdf, &a, pdf.len() as u64, &now()).expect("built");
    assert_eq!(e.sop_class_uid, sop_class::ENCAPSULATED_PDF);
    let bytes = assemble(&e, &pdf);
    let obj = parse_bytes(&bytes, ParseLimits { bulk_threshold: 16, ..ParseLimits::default() }).expect("parses");
    let ds = &obj.dataset;
    let cs = Default::default();
    assert_eq!(ds.first_text(Tag(0x0008, 0x0018), &cs), e.sop_instance_uid);
    assert_eq!(ds.first_text(Tag(0x0010, 0x0020), &cs), "P-1");
    assert_eq!(ds.first_text(Tag(0x0042, 0x0012), &cs), "application/pdf");
    assert_eq!(ds.int(Tag(0x0042, 0x0015), false), Some(pdf.len() as i64));
    let doc = ds.get(Tag(0x0042, 0x0011)).expect("document");
    let at = doc.extent.offset as usize;
    assert_eq!(&bytes[at..at + pdf.len()], &pdf[..]);
    assert_eq!(doc.extent.length, pdf.len() as u64 + 1, "padded to even");
    assert!(e.study_instance_uid.starts_with("2.25.") && e.study_instance_uid.len() <= 64);
}

fn jpeg_head(process: u8, rows: u16, cols: u16, comps: u8) -> Vec<u8> {
    let mut j = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10];
    j.extend_from_slice(b"JFIF\0\x01\x01\x00\x00\x01\x00\x01\x00\x00");
    j.extend_from_slice(&[0xFF, process, 0x00, 8 + 3 * comps, 8]);
    j.extend_from_slice(&rows.to_be_bytes());
    j.extend_from_slice(&cols.to_be_bytes());
    j.push(comps);
    for c in 0..comps {
        j.extend_from_slice(&[c + 1, 0x11, 0]);
    }
    j.extend_from_slice(&[0xFF, 0xDA, 0x00, 0x02, 1, 2, 3, 0xFF, 0xD9]);
    j
}

#[test]
fn a_jpeg_becomes_a_vl_photographic_image_with_one_frame() {
    let jpeg = jpeg_head(0xC0, 480, 640, 3);
    let info = probe_jpeg(&jpeg).expect("a JPEG");
    assert_eq!(info, JpegInfo { process: JpegProcess::Baseline, precision: 8, rows: 480, columns: 640, components: 3 });
    let e = build(&Media::Jpeg(info), &attrs(&[("PatientID", "P-2"), ("Modality", "ES")]), jpeg.len() as u64, &now()).expect("built");
    assert_eq!(e.sop_class_uid, sop_class::VL_ENDOSCOPIC);
    assert_eq!(e.transfer_syntax, "1.2.840.10008.1.2.4.50");
    let bytes = assemble(&e, &jpeg);
    let obj = parse_bytes(&bytes, ParseLimits::default()).expect("parses");
    let cs = Default::default();
    assert_eq!(obj.dataset.first_text(Tag(0x0028, 0x0004), &cs), "YBR_FULL_422");
    assert_eq!(obj.dataset.int(Tag(0x0028, 0x0010), false), Some(480));
    let crate::frames::FrameLayout::Encapsulated(frames) = crate::frames::frame_layout(&obj) else { panic!("one frame") };
    assert_eq!(frames.len(), 1);
    let f = frames[0][0];
    assert_eq!(&bytes[f.offset as usize..(f.offset + jpeg.len() as u64) as usize], &jpeg[..]);
}

#[test]
fn jpeg_variants_and_refusals() {
    assert_eq!(probe_jpeg(&jpeg_head(0xC1, 8, 8, 1)).map(|i| i.process), Ok(JpegProcess::Extended));
    assert_eq!(probe_jpeg(&jpeg_head(0xC3, 8, 8, 1)).map(|i| i.process), Ok(JpegProcess::Lossless));
    assert!(matches!(probe_jpeg(&jpeg_head(0xC2, 8, 8, 3)), Err(MediaError::Unsupported(_))), "progressive");
    assert!(matches!(probe_jpeg(&jpeg_head(0xC0, 0, 8, 3)), Err(MediaError::Unsupported(_))), "DNL");
    assert_eq!(probe_jpeg(b"%PDF-1.4"), Err(MediaError::NotThisFormat("JPEG")));
    assert!(probe_pdf(&jpeg_head(0xC0, 8, 8, 3)).is_err());
}

fn mp4_box(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut b = ((payload.len() + 8) as u32).to_be_bytes().to_vec();
    b.extend_from_slice(kind);
    b.extend_from_slice(payload);
    b
}

/// A structurally valid MP4 with one H.264 video track (no real media data).
fn mp4(profile: u8, level: u8, frames: u32, moov_last: bool) -> Vec<u8> {
    let mut mdhd = vec![0u8; 4];
    mdhd.extend_from_slice(&[0; 8]);
    mdhd.extend_from_slice(&12800u32.to_be_bytes()); // timescale
    mdhd.extend_from_slice(&(frames * 512).to_be_bytes()); // duration: 25 fps
    mdhd.extend_from_slice(&[0; 4]);
    let hdlr = [&[0u8; 8][..], b"vide", &[0; 13]].concat();
    let mut entry = vec![0u8; 6];
    entry.extend_from_slice(&1u16.to_be_bytes());
    entry.extend_from_slice(&[0; 16]);
    entry.extend_from_slice(&320u16.to_be_bytes());
    entry.extend_from_slice(&240u16.to_be_bytes());
    entry.extend_from_slice(&[0; 50]);
    entry.extend(mp4_box(b"avcC", &[1, profile, 0, level, 0xFF]));
    let stsd = [&[0u8, 0, 0, 0, 0, 0, 0, 1][..], &mp4_box(b"avc1", &entry)].concat();
    let stsz = [&[0u8; 8][..], &frames.to_be_bytes()].concat();
    let stbl = mp4_box(b"stbl", &[mp4_box(b"stsd", &stsd), mp4_box(b"stsz", &stsz)].concat());
    let minf = mp4_box(b"minf", &stbl);
    let mdia = mp4_box(b"mdia", &[mp4_box(b"mdhd", &mdhd), mp4_box(b"hdlr", &hdlr), minf].concat());
    let moov = mp4_box(b"moov", &mp4_box(b"trak", &mdia));
    let ftyp = mp4_box(b"ftyp", b"isom\0\0\x02\0isomavc1");
    let mdat = mp4_box(b"mdat", &[7u8; 1001]);
    if moov_last {
        [ftyp, mdat, moov].concat()
    } else {
        [ftyp, moov, mdat].concat()
    }
}

#[test]
fn an_mp4_track_is_read_wherever_moov_is() {
    for moov_last in [false, true] {
        let file = mp4(100, 41, 50, moov_last);
        let v = probe_mp4(&mut Cursor::new(&file), file.len() as u64).expect("probed");
        assert_eq!((v.rows, v.columns, v.frames), (240, 320, 50));
        assert_eq!(v.codec, VideoCodec::H264 { profile: 100, level: 41 });
        assert!((v.frame_time_ms() - 40.0).abs() < 1e-9);
        assert_eq!(v.transfer_syntax(false).as_deref(), Ok("1.2.840.10008.1.2.4.102"));
    }
    let file = mp4(100, 42, 50, false);
    let v = probe_mp4(&mut Cursor::new(&file), file.len() as u64).expect("probed");
    assert_eq!(v.transfer_syntax(false).as_deref(), Ok("1.2.840.10008.1.2.4.104"));
    let file = mp4(110, 41, 50, false);
    let v = probe_mp4(&mut Cursor::new(&file), file.len() as u64).expect("probed");
    assert!(matches!(v.transfer_syntax(false), Err(MediaError::Unsupported(_))), "High 10 has no DICOM syntax");
    let file = mp4(100, 41, 0, false);
    assert!(matches!(probe_mp4(&mut Cursor::new(&file), file.len() as u64), Err(MediaError::Unsupported(_))));
    let mut cut = mp4(100, 41, 50, false);
    cut.truncate(60);
    assert!(probe_mp4(&mut Cursor::new(&cut), cut.len() as u64).is_err());
    let jpeg = jpeg_head(0xC0, 8, 8, 1);
    assert_eq!(probe_mp4(&mut Cursor::new(&jpeg), jpeg.len() as u64), Err(MediaError::NotThisFormat("MP4")));
}

#[test]
fn a_video_is_one_stream_and_a_huge_one_is_fragmented() {
    let file = mp4(100, 41, 50, false);
    let v = probe_mp4(&mut Cursor::new(&file), file.len() as u64).expect("probed");
    let e = build(&Media::Video(v.clone()), &attrs(&[("PatientID", "P-3")]), file.len() as u64, &now()).expect("built");
    assert_eq!(e.sop_class_uid, sop_class::VIDEO_PHOTOGRAPHIC);
    let bytes = assemble(&e, &file);
    let obj = parse_bytes(&bytes, ParseLimits::default()).expect("parses");
    let cs = Default::default();
    assert_eq!(obj.dataset.first_text(Tag(0x0018, 0x1063), &cs), "40");
    assert_eq!(obj.dataset.first_text(Tag(0x0028, 0x0008), &cs), "50");
    let Some(Value::Fragments(f)) = obj.dataset.get(Tag(0x7FE0, 0x0010)).map(|e| &e.value) else { panic!("fragments") };
    assert_eq!(f.items.len(), 1);
    let crate::frames::FrameLayout::Encapsulated(stream) = crate::frames::frame_layout(&obj) else { panic!("stream") };
    let got: Vec<u8> = stream[0].iter().flat_map(|x| bytes[x.offset as usize..(x.offset + x.length) as usize].to_vec()).collect();
    assert_eq!(&got[..file.len()], &file[..], "the stream is the file (plus one pad byte when odd)");

    // 5 GiB: five 1 GiB fragments under the fragmentable syntax; nothing is read.
    let huge = 5u64 << 30;
    let e = build(&Media::Video(v), &attrs(&[("PatientID", "P-3")]), huge, &now()).expect("built");
    assert_eq!(e.transfer_syntax, "1.2.840.10008.1.2.4.102.1");
    let ranges: Vec<(u64, u64)> = e
        .segments
        .iter()
        .filter_map(|s| match s {
            Segment::File { offset, length } => Some((*offset, *length)),
            _ => None,
        })
        .collect();
    assert_eq!(ranges, (0..5).map(|i| (i << 30, 1 << 30)).collect::<Vec<_>>());
    assert!(e.total_bytes() > huge);
    assert!(matches!(build(&Media::Pdf, &attrs(&[("PatientID", "P")]), huge, &now()), Err(EncapsulateError::TooLarge(_))));
}

#[test]
fn metadata_is_validated_without_echoing_values() {
    let mut a = Attributes::default();
    assert!(matches!(a.set("PatientWeight", "80"), Err(EncapsulateError::UnknownAttribute(_))));
    for (k, v) in [
        ("PatientBirthDate", "1980-01-01"),
        ("StudyInstanceUID", "1.2.abc"),
        ("Modality", "es"),
        ("StudyTime", "256000"),
        ("SeriesNumber", "x"),
        ("PatientID", "a\\b"),
    ] {
        let e = a.set(k, v).expect_err(k);
        assert!(!e.to_string().contains(v), "{e}");
    }
    a.set("PatientName", "Müller^Jürgen").expect("UTF-8 names");
    a.set("StudyTime", "101500.123").expect("fractional time");
    assert!(matches!(build(&Media::Pdf, &a, 10, &now()), Err(EncapsulateError::Missing(_))));
}
