//! Transfer syntaxes the parser understands (PS3.5 §10, Annex A): how the data set after the
//! file meta group is encoded, and whether pixel data is encapsulated.

/// How a data set is encoded on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encoding {
    pub explicit_vr: bool,
    pub big_endian: bool,
}

impl Encoding {
    pub const EXPLICIT_LE: Encoding = Encoding { explicit_vr: true, big_endian: false };
    pub const IMPLICIT_LE: Encoding = Encoding { explicit_vr: false, big_endian: false };
    pub const EXPLICIT_BE: Encoding = Encoding { explicit_vr: true, big_endian: true };
}

pub const IMPLICIT_VR_LITTLE_ENDIAN: &str = "1.2.840.10008.1.2";
pub const EXPLICIT_VR_LITTLE_ENDIAN: &str = "1.2.840.10008.1.2.1";
pub const DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN: &str = "1.2.840.10008.1.2.1.99";
pub const EXPLICIT_VR_BIG_ENDIAN: &str = "1.2.840.10008.1.2.2";
pub const JPEG_BASELINE: &str = "1.2.840.10008.1.2.4.50";

/// What the parser needs to know about a transfer syntax.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransferSyntax {
    pub encoding: Encoding,
    /// The data set after the meta group is a raw deflate stream (PS3.5 §A.5).
    pub deflated: bool,
}

/// Looks up a transfer syntax UID. Every UID not listed as native is an encapsulated syntax
/// encoded as explicit VR little endian (PS3.5 §A.4): JPEG, JPEG-LS, JPEG 2000, RLE, MPEG,
/// HEVC, HTJ2K and any future one. Pixel data tells itself whether it is encapsulated (an
/// undefined length), so the parser does not need a list of compressed syntaxes.
pub fn lookup(uid: &str) -> TransferSyntax {
    match uid {
        IMPLICIT_VR_LITTLE_ENDIAN => TransferSyntax { encoding: Encoding::IMPLICIT_LE, deflated: false },
        EXPLICIT_VR_BIG_ENDIAN => TransferSyntax { encoding: Encoding::EXPLICIT_BE, deflated: false },
        DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN | "1.2.840.10008.1.2.8.1" => TransferSyntax { encoding: Encoding::EXPLICIT_LE, deflated: true },
        _ => TransferSyntax { encoding: Encoding::EXPLICIT_LE, deflated: false },
    }
}

/// Every transfer syntax the archive accepts, stores and serves (PS3.6 Table A-1, the ones
/// in use), with its name. An object or presentation context in any other syntax is refused:
/// the parser could not know how its data set is encoded. One list for every protocol.
pub const KNOWN: &[(&str, &str)] = &[
    (IMPLICIT_VR_LITTLE_ENDIAN, "Implicit VR Little Endian"),
    (EXPLICIT_VR_LITTLE_ENDIAN, "Explicit VR Little Endian"),
    (DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN, "Deflated Explicit VR Little Endian"),
    (EXPLICIT_VR_BIG_ENDIAN, "Explicit VR Big Endian (retired)"),
    (JPEG_BASELINE, "JPEG Baseline (Process 1)"),
    ("1.2.840.10008.1.2.4.51", "JPEG Extended (Process 2 & 4)"),
    ("1.2.840.10008.1.2.4.57", "JPEG Lossless, Non-Hierarchical (Process 14)"),
    ("1.2.840.10008.1.2.4.70", "JPEG Lossless, First-Order Prediction (Process 14, SV1)"),
    ("1.2.840.10008.1.2.4.80", "JPEG-LS Lossless"),
    ("1.2.840.10008.1.2.4.81", "JPEG-LS Near-Lossless"),
    ("1.2.840.10008.1.2.4.90", "JPEG 2000 Lossless Only"),
    ("1.2.840.10008.1.2.4.91", "JPEG 2000"),
    ("1.2.840.10008.1.2.4.92", "JPEG 2000 Part 2 Multi-component Lossless Only"),
    ("1.2.840.10008.1.2.4.93", "JPEG 2000 Part 2 Multi-component"),
    ("1.2.840.10008.1.2.4.201", "High-Throughput JPEG 2000 Lossless Only"),
    ("1.2.840.10008.1.2.4.202", "High-Throughput JPEG 2000 with RPCL Options Lossless Only"),
    ("1.2.840.10008.1.2.4.203", "High-Throughput JPEG 2000"),
    ("1.2.840.10008.1.2.5", "RLE Lossless"),
    ("1.2.840.10008.1.2.4.100", "MPEG2 Main Profile / Main Level"),
    ("1.2.840.10008.1.2.4.101", "MPEG2 Main Profile / High Level"),
    ("1.2.840.10008.1.2.4.102", "MPEG-4 AVC/H.264 High Profile / Level 4.1"),
    ("1.2.840.10008.1.2.4.103", "MPEG-4 AVC/H.264 BD-compatible High Profile / Level 4.1"),
    ("1.2.840.10008.1.2.4.104", "MPEG-4 AVC/H.264 High Profile / Level 4.2 For 2D Video"),
    ("1.2.840.10008.1.2.4.105", "MPEG-4 AVC/H.264 High Profile / Level 4.2 For 3D Video"),
    ("1.2.840.10008.1.2.4.106", "MPEG-4 AVC/H.264 Stereo High Profile / Level 4.2"),
    ("1.2.840.10008.1.2.4.107", "HEVC/H.265 Main Profile / Level 5.1"),
    ("1.2.840.10008.1.2.4.108", "HEVC/H.265 Main 10 Profile / Level 5.1"),
    ("1.2.840.10008.1.2.4.100.1", "Fragmentable MPEG2 Main Profile / Main Level"),
    ("1.2.840.10008.1.2.4.101.1", "Fragmentable MPEG2 Main Profile / High Level"),
    ("1.2.840.10008.1.2.4.102.1", "Fragmentable MPEG-4 AVC/H.264 High Profile / Level 4.1"),
    ("1.2.840.10008.1.2.4.103.1", "Fragmentable MPEG-4 AVC/H.264 BD-compatible High Profile / Level 4.1"),
    ("1.2.840.10008.1.2.4.104.1", "Fragmentable MPEG-4 AVC/H.264 High Profile / Level 4.2 For 2D Video"),
    ("1.2.840.10008.1.2.4.105.1", "Fragmentable MPEG-4 AVC/H.264 High Profile / Level 4.2 For 3D Video"),
    ("1.2.840.10008.1.2.4.106.1", "Fragmentable MPEG-4 AVC/H.264 Stereo High Profile / Level 4.2"),
];

/// True for a transfer syntax in [`KNOWN`].
pub fn is_known(uid: &str) -> bool {
    KNOWN.iter().any(|(u, _)| *u == uid)
}

/// True for the syntaxes whose pixel data is stored uncompressed.
pub fn is_native(uid: &str) -> bool {
    matches!(uid, IMPLICIT_VR_LITTLE_ENDIAN | EXPLICIT_VR_LITTLE_ENDIAN | EXPLICIT_VR_BIG_ENDIAN | DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN)
}

/// The media type of a single frame of this syntax (PS3.18 §8.7.3.5.2 Table 8.7.3-2), used
/// by `/frames` and bulk data responses. `None` for native syntaxes (they are
/// `application/octet-stream`).
pub fn frame_media_type(uid: &str) -> Option<&'static str> {
    Some(match uid {
        "1.2.840.10008.1.2.4.50" | "1.2.840.10008.1.2.4.51" | "1.2.840.10008.1.2.4.57" | "1.2.840.10008.1.2.4.70" => "image/jpeg",
        "1.2.840.10008.1.2.4.80" | "1.2.840.10008.1.2.4.81" => "image/jls",
        "1.2.840.10008.1.2.4.90" | "1.2.840.10008.1.2.4.91" => "image/jp2",
        "1.2.840.10008.1.2.4.92" | "1.2.840.10008.1.2.4.93" => "image/jpx",
        "1.2.840.10008.1.2.4.201" | "1.2.840.10008.1.2.4.202" | "1.2.840.10008.1.2.4.203" => "image/jphc",
        "1.2.840.10008.1.2.5" => "image/x-dicom-rle",
        "1.2.840.10008.1.2.4.100" | "1.2.840.10008.1.2.4.101" | "1.2.840.10008.1.2.4.100.1" | "1.2.840.10008.1.2.4.101.1" => "video/mpeg",
        "1.2.840.10008.1.2.4.102"
        | "1.2.840.10008.1.2.4.103"
        | "1.2.840.10008.1.2.4.104"
        | "1.2.840.10008.1.2.4.105"
        | "1.2.840.10008.1.2.4.106"
        | "1.2.840.10008.1.2.4.102.1"
        | "1.2.840.10008.1.2.4.103.1"
        | "1.2.840.10008.1.2.4.104.1"
        | "1.2.840.10008.1.2.4.105.1"
        | "1.2.840.10008.1.2.4.106.1" => "video/mp4",
        "1.2.840.10008.1.2.4.107" | "1.2.840.10008.1.2.4.108" => "video/H265",
        _ => return None,
    })
}

/// Video syntaxes: the whole fragment sequence is one stream, frames cannot be cut out of it.
pub fn is_video(uid: &str) -> bool {
    uid.starts_with("1.2.840.10008.1.2.4.10")
}
