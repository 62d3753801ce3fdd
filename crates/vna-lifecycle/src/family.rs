//! SOP class families a rule can name instead of listing UIDs (PS3.4 Annex B.5, the Storage SOP
//! Classes).

use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// VL Whole Slide Microscopy Image Storage.
    Wsi,
    /// Video Endoscopic, Microscopic and Photographic Image Storage (MPEG-2/4, HEVC).
    Video,
    /// Structured reports (`1.2.840.10008.5.1.4.1.1.88.*`).
    Sr,
    /// Encapsulated PDF, CDA, STL, OBJ, MTL (`…1.1.104.*`).
    Document,
    /// Images of radiology and nuclear medicine modalities (CR, CT, MR, US, XA, RF, DX, MG, IO,
    /// PX, NM, PET, enhanced and legacy-converted forms, Secondary Capture, tomosynthesis).
    Radiology,
    /// Anything else (presentation states, key object selections, RT, raw data, …).
    Other,
}

/// The family of `sop_class_uid`.
pub fn family_of(sop_class_uid: &str) -> Family {
    const STORAGE: &str = "1.2.840.10008.5.1.4.1.1.";
    let Some(rest) = sop_class_uid.trim_end_matches(['\0', ' ']).strip_prefix(STORAGE) else { return Family::Other };
    match rest {
        "77.1.6" => Family::Wsi,
        "77.1.1.1" | "77.1.2.1" | "77.1.4.1" => Family::Video,
        r if r.starts_with("88.") => Family::Sr,
        r if r.starts_with("104.") => Family::Document,
        r => {
            let major = r.split('.').next().unwrap_or_default();
            // CR 1, DX/MG/IO 1.1.x, CT 2, US 3.1/6.x, MR 4, NM 5/20, SC 7, XA/RF 12.x, X-ray
            // 3D 13.1.x, PET 128/130, legacy converted 128.1 / 2.2 / 4.4.
            match major {
                "1" | "2" | "3" | "4" | "5" | "6" | "7" | "12" | "13" | "20" | "128" | "130" => Family::Radiology,
                _ => Family::Other,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families() {
        assert_eq!(family_of("1.2.840.10008.5.1.4.1.1.77.1.6"), Family::Wsi);
        assert_eq!(family_of("1.2.840.10008.5.1.4.1.1.77.1.1.1"), Family::Video);
        assert_eq!(family_of("1.2.840.10008.5.1.4.1.1.88.22"), Family::Sr);
        assert_eq!(family_of("1.2.840.10008.5.1.4.1.1.104.1"), Family::Document);
        assert_eq!(family_of("1.2.840.10008.5.1.4.1.1.2"), Family::Radiology);
        assert_eq!(family_of("1.2.840.10008.5.1.4.1.1.4.1\0"), Family::Radiology);
        assert_eq!(family_of("1.2.840.10008.5.1.4.1.1.1.2"), Family::Radiology, "mammography");
        assert_eq!(family_of("1.2.840.10008.5.1.4.1.1.77.1.4"), Family::Other, "VL photographic image");
        assert_eq!(family_of("1.2.840.10008.5.1.4.1.1.11.1"), Family::Other, "a presentation state");
        assert_eq!(family_of("1.2.3"), Family::Other);
    }
}
