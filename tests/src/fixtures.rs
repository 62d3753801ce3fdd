//! Synthetic, PHI-free CT-like instances written with `vna_dicom::write`, with fresh UIDs per
//! test so that tests can share nothing and run in parallel.

use vna_dicom::write::{part10, Items};
use vna_dicom::{tags, ts, VR};

/// CT Image Storage.
pub const CT_IMAGE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.2";

/// A fresh UID under the UUID-derived root 2.25 (PS3.5 §B.2): digits and dots, ≤ 64 chars.
pub fn new_uid() -> String {
    format!("2.25.{}", uuid::Uuid::new_v4().as_u128())
}

/// One synthetic CT instance. UIDs are plain strings so that a test can make them invalid.
#[derive(Debug, Clone)]
pub struct Ct {
    pub study_uid: String,
    pub series_uid: String,
    pub sop_uid: String,
    pub patient_name: String,
    pub patient_id: String,
    pub series_number: u32,
    pub instance_number: u32,
    pub rows: u16,
    pub columns: u16,
}

impl Ct {
    /// The first instance of the first series of a new study (16×16, 16-bit pixels).
    pub fn new_study() -> Ct {
        Ct {
            study_uid: new_uid(),
            series_uid: new_uid(),
            sop_uid: new_uid(),
            patient_name: "E2E^Synthetic".into(),
            patient_id: "E2E-PID-0001".into(),
            series_number: 1,
            instance_number: 1,
            rows: 16,
            columns: 16,
        }
    }

    /// The next instance of the same series.
    pub fn next_instance(&self) -> Ct {
        Ct { sop_uid: new_uid(), instance_number: self.instance_number + 1, ..self.clone() }
    }

    /// The first instance of a new series in the same study.
    pub fn next_series(&self) -> Ct {
        Ct { series_uid: new_uid(), sop_uid: new_uid(), series_number: self.series_number + 1, instance_number: 1, ..self.clone() }
    }

    pub fn with_size(self, rows: u16, columns: u16) -> Ct {
        Ct { rows, columns, ..self }
    }

    pub fn with_patient(self, name: &str, id: &str) -> Ct {
        Ct { patient_name: name.into(), patient_id: id.into(), ..self }
    }

    /// The Part 10 bytes (explicit VR little endian).
    pub fn to_bytes(&self) -> Vec<u8> {
        let pixel_bytes = usize::from(self.rows) * usize::from(self.columns) * 2;
        let seed = self.instance_number as usize + 31 * self.series_number as usize;
        let pixels: Vec<u8> = (0..pixel_bytes).map(|i| ((i * 7 + seed) % 251) as u8).collect();
        let ds = Items::new()
            .str(tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192")
            .str(tags::SOP_CLASS_UID, VR::UI, CT_IMAGE_STORAGE)
            .str(tags::SOP_INSTANCE_UID, VR::UI, &self.sop_uid)
            .str(tags::STUDY_DATE, VR::DA, "20240115")
            .str(tags::STUDY_TIME, VR::TM, "101500")
            .str(tags::ACCESSION_NUMBER, VR::SH, "E2EACC1")
            .str(tags::MODALITY, VR::CS, "CT")
            .str(tags::STUDY_DESCRIPTION, VR::LO, "synthetic e2e study")
            .str(tags::PATIENT_NAME, VR::PN, &self.patient_name)
            .str(tags::PATIENT_ID, VR::LO, &self.patient_id)
            .str(tags::PATIENT_SEX, VR::CS, "O")
            .str(tags::STUDY_INSTANCE_UID, VR::UI, &self.study_uid)
            .str(tags::SERIES_INSTANCE_UID, VR::UI, &self.series_uid)
            .str(tags::STUDY_ID, VR::SH, "1")
            .str(tags::SERIES_NUMBER, VR::IS, &self.series_number.to_string())
            .str(tags::INSTANCE_NUMBER, VR::IS, &self.instance_number.to_string())
            .u16(tags::SAMPLES_PER_PIXEL, 1)
            .str(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2")
            .u16(tags::ROWS, self.rows)
            .u16(tags::COLUMNS, self.columns)
            .u16(tags::BITS_ALLOCATED, 16)
            .u16(tags::BITS_STORED, 12)
            .u16(tags::HIGH_BIT, 11)
            .u16(tags::PIXEL_REPRESENTATION, 0)
            .native_pixels(VR::OW, pixels);
        part10(&ds, ts::EXPLICIT_VR_LITTLE_ENDIAN)
    }
}

/// A study of `series` series with `per_series` instances each.
pub fn ct_study(series: usize, per_series: usize) -> Vec<Ct> {
    let mut out = Vec::new();
    let mut first = Ct::new_study();
    for s in 0..series {
        if s > 0 {
            first = first.next_series();
        }
        let mut ct = first.clone();
        for i in 0..per_series {
            if i > 0 {
                ct = ct.next_instance();
            }
            out.push(ct.clone());
        }
    }
    out
}

/// A native 512×512×16-bit multi-frame object of `frames` frames, as its Part 10 header up to
/// and including the Pixel Data element header, and the number of pixel bytes that must
/// follow (the caller streams them: the object may be far larger than memory should hold).
pub fn native_multiframe_header(ct: &Ct, frames: u64) -> (Vec<u8>, u64) {
    let pixel_bytes = frames * 512 * 512 * 2;
    let length = u32::try_from(pixel_bytes).expect("a defined length below 4 GiB");
    let ds = Items::new()
        .str(tags::SOP_CLASS_UID, VR::UI, "1.2.840.10008.5.1.4.1.1.7.3")
        .str(tags::SOP_INSTANCE_UID, VR::UI, &ct.sop_uid)
        .str(tags::STUDY_DATE, VR::DA, "20240115")
        .str(tags::MODALITY, VR::CS, "OT")
        .str(tags::PATIENT_NAME, VR::PN, &ct.patient_name)
        .str(tags::PATIENT_ID, VR::LO, &ct.patient_id)
        .str(tags::STUDY_INSTANCE_UID, VR::UI, &ct.study_uid)
        .str(tags::SERIES_INSTANCE_UID, VR::UI, &ct.series_uid)
        .str(tags::CONVERSION_TYPE, VR::CS, "WSD")
        .u16(tags::SAMPLES_PER_PIXEL, 1)
        .str(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2")
        .str(tags::NUMBER_OF_FRAMES, VR::IS, &frames.to_string())
        .u16(tags::ROWS, 512)
        .u16(tags::COLUMNS, 512)
        .u16(tags::BITS_ALLOCATED, 16)
        .u16(tags::BITS_STORED, 16)
        .u16(tags::HIGH_BIT, 15)
        .u16(tags::PIXEL_REPRESENTATION, 0);
    let mut out = part10(&ds, ts::EXPLICIT_VR_LITTLE_ENDIAN);
    out.extend_from_slice(&vna_dicom::write::native_pixel_data_header(length));
    (out, pixel_bytes)
}
