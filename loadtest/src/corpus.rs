//! The synthetic CT corpus: a deterministic (seeded) set of patients, studies, series and
//! 512×512 16-bit instances with realistic attributes, and the QIDO answers it implies.
//!
//! Only the small Part 10 header of each instance is unique; pixel data comes from a few shared
//! phantom slabs, so a corpus of thousands of 0.5 MB instances costs megabytes of memory.

use crate::prng::{uid, SplitMix64};
use bytes::Bytes;
use vna_dicom::tags;
use vna_dicom::write::{part10, Items};
use vna_dicom::VR;

pub const CT_IMAGE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.2";
pub const EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1";
/// Rows and columns of the CT-like images (0.5 MB at 16 bits); a smaller `side` makes the
/// corpus of many tiny instances that measures per-object overhead, or fills an archive fast.
pub const CT_SIDE: u16 = 512;
/// Distinct pixel slabs shared by all instances.
const SLABS: usize = 8;

const FAMILY: [&str; 16] = [
    "SMITH", "MULLER", "GARCIA", "DUBOIS", "ROSSI", "NOVAK", "JANSEN", "SILVA", "KOWALSKI", "NIELSEN", "MARTIN", "SCHMIDT", "LEROY",
    "FISCHER", "MOREAU", "BAKER",
];
const GIVEN: [&str; 12] = ["ANNA", "JOHN", "MARIE", "PETER", "SOFIA", "LUCAS", "EMMA", "NOAH", "CLARA", "HUGO", "IDA", "OSCAR"];
const STUDY_KINDS: [(&str, &str); 5] =
    [("CT CHEST", "CHEST"), ("CT ABDOMEN PELVIS", "ABDOMEN"), ("CT HEAD", "HEAD"), ("CT ANGIO", "CHEST"), ("CT SPINE", "SPINE")];
const SERIES_KINDS: [&str; 4] = ["AXIAL 1.25MM", "AXIAL 5MM", "CORONAL MPR", "SAGITTAL MPR"];

/// The shape of a corpus: `instances` in studies of `series_per_study` series of
/// `instances_per_series` instances (the last study and series may be partial).
#[derive(Debug, Clone, Copy)]
pub struct CorpusSpec {
    pub seed: u64,
    pub instances: usize,
    pub series_per_study: usize,
    pub instances_per_series: usize,
    /// 0 for the plain corpus (patient IDs `LT…`); n > 0 for a copy of the same shape with its
    /// own UIDs, names and dates (from a seed derived from `seed` and n) and patient IDs `LCn-…`,
    /// so several copies can be stored into one archive without colliding.
    pub namespace: u32,
    /// Rows = columns of every image ([`CT_SIDE`] for the CT corpus).
    pub side: u16,
}

#[derive(Debug, Clone)]
pub struct Patient {
    pub id: String,
    pub name: String,
    pub birth_date: String,
    pub sex: &'static str,
}

#[derive(Debug, Clone)]
pub struct Study {
    pub uid: String,
    pub patient: Patient,
    /// YYYYMMDD as a number, so ranges compare numerically.
    pub date: u32,
    pub time: String,
    pub accession: String,
    pub description: &'static str,
    pub body_part: &'static str,
}

impl CorpusSpec {
    /// The same shape in namespace `n` (see [`CorpusSpec::namespace`]); `n = 0` is `self`.
    pub fn namespaced(self, n: u32) -> CorpusSpec {
        if n == 0 {
            return CorpusSpec { namespace: 0, ..self };
        }
        CorpusSpec { seed: SplitMix64::derive(self.seed, "corpus-namespace", u64::from(n)).next_u64(), namespace: n, ..self }
    }

    fn per_study(&self) -> usize {
        self.series_per_study.max(1) * self.instances_per_series.max(1)
    }

    pub fn studies(&self) -> usize {
        self.instances.div_ceil(self.per_study())
    }

    /// Fewer patients than studies: some patients have several studies, as in a real archive.
    pub fn patients(&self) -> usize {
        (self.studies() * 2 / 3).max(1)
    }

    /// (study, series, instance) of the k-th instance.
    pub fn locate(&self, k: usize) -> (usize, usize, usize) {
        let ips = self.instances_per_series.max(1);
        (k / self.per_study(), (k / ips) % self.series_per_study.max(1), k % ips)
    }

    /// Instances actually present in study `s`.
    fn instances_in_study(&self, s: usize) -> usize {
        self.instances.saturating_sub(s * self.per_study()).min(self.per_study())
    }

    pub fn series_in_study(&self, s: usize) -> usize {
        self.instances_in_study(s).div_ceil(self.instances_per_series.max(1))
    }

    pub fn instances_in_series(&self, s: usize, se: usize) -> usize {
        let ips = self.instances_per_series.max(1);
        self.instances_in_study(s).saturating_sub(se * ips).min(ips)
    }

    pub fn patient(&self, p: usize) -> Patient {
        let mut g = SplitMix64::derive(self.seed, "patient", p as u64);
        let family = FAMILY[g.below(FAMILY.len() as u64) as usize];
        let given = GIVEN[g.below(GIVEN.len() as u64) as usize];
        let year = 1930 + g.below(85);
        Patient {
            id: if self.namespace == 0 { format!("LT{p:07}") } else { format!("LC{}-{p:07}", self.namespace) },
            name: format!("{family}^{given}"),
            birth_date: format!("{year}{:02}{:02}", 1 + g.below(12), 1 + g.below(28)),
            sex: if g.below(2) == 0 { "F" } else { "M" },
        }
    }

    pub fn study(&self, s: usize) -> Study {
        let mut g = SplitMix64::derive(self.seed, "study", s as u64);
        let patient = self.patient(g.below(self.patients() as u64) as usize);
        // Study dates spread over 2005–2024.
        let date = (2005 + g.below(20) as u32) * 10_000 + (1 + g.below(12) as u32) * 100 + 1 + g.below(28) as u32;
        let (description, body_part) = STUDY_KINDS[g.below(STUDY_KINDS.len() as u64) as usize];
        Study {
            uid: uid(self.seed, "study-uid", s as u64),
            patient,
            date,
            time: format!("{:02}{:02}{:02}", 7 + g.below(12), g.below(60), g.below(60)),
            accession: format!("A{:09}", g.below(1_000_000_000)),
            description,
            body_part,
        }
    }

    pub fn series_uid(&self, s: usize, se: usize) -> String {
        uid(self.seed, "series-uid", (s * 1000 + se) as u64)
    }

    pub fn instance_uid(&self, k: usize) -> String {
        uid(self.seed, "instance-uid", k as u64)
    }

    /// Bytes of one image (16 bits per pixel).
    pub fn pixel_bytes(&self) -> usize {
        usize::from(self.side) * usize::from(self.side) * 2
    }

    /// The Part 10 bytes of instance `k` up to and including the Pixel Data element header;
    /// the pixel bytes follow (see [`PixelSlabs`]).
    pub fn instance_header(&self, k: usize) -> Vec<u8> {
        let (s, se, i) = self.locate(k);
        let study = self.study(s);
        let thickness = if se % 2 == 0 { 1.25 } else { 5.0 };
        let z = -(i as f64) * thickness;
        let ds = Items::new()
            .str(tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 100")
            .str(tags::IMAGE_TYPE, VR::CS, "ORIGINAL\\PRIMARY\\AXIAL")
            .str(tags::SOP_CLASS_UID, VR::UI, CT_IMAGE_STORAGE)
            .str(tags::SOP_INSTANCE_UID, VR::UI, &self.instance_uid(k))
            .str(tags::STUDY_DATE, VR::DA, &study.date.to_string())
            .str(tags::SERIES_DATE, VR::DA, &study.date.to_string())
            .str(tags::STUDY_TIME, VR::TM, &study.time)
            .str(tags::ACCESSION_NUMBER, VR::SH, &study.accession)
            .str(tags::MODALITY, VR::CS, "CT")
            .str(tags::MANUFACTURER, VR::LO, "VNA LOADTEST")
            .str(tags::REFERRING_PHYSICIAN_NAME, VR::PN, "WELBY^MARCUS")
            .str(tags::STUDY_DESCRIPTION, VR::LO, study.description)
            .str(tags::SERIES_DESCRIPTION, VR::LO, SERIES_KINDS[se % SERIES_KINDS.len()])
            .str(tags::PATIENT_NAME, VR::PN, &study.patient.name)
            .str(tags::PATIENT_ID, VR::LO, &study.patient.id)
            .str(tags::PATIENT_BIRTH_DATE, VR::DA, &study.patient.birth_date)
            .str(tags::PATIENT_SEX, VR::CS, study.patient.sex)
            .str(tags::BODY_PART_EXAMINED, VR::CS, study.body_part)
            .str(tags::SLICE_THICKNESS, VR::DS, &thickness.to_string())
            .str(tags::STUDY_INSTANCE_UID, VR::UI, &study.uid)
            .str(tags::SERIES_INSTANCE_UID, VR::UI, &self.series_uid(s, se))
            .str(tags::STUDY_ID, VR::SH, &format!("{}", s + 1))
            .str(tags::SERIES_NUMBER, VR::IS, &format!("{}", se + 1))
            .str(tags::INSTANCE_NUMBER, VR::IS, &format!("{}", i + 1))
            .str(tags::IMAGE_POSITION_PATIENT, VR::DS, &format!("-250\\-250\\{z}"))
            .str(tags::IMAGE_ORIENTATION_PATIENT, VR::DS, "1\\0\\0\\0\\1\\0")
            .str(tags::FRAME_OF_REFERENCE_UID, VR::UI, &uid(self.seed, "frame-of-reference", s as u64))
            .u16(tags::SAMPLES_PER_PIXEL, 1)
            .str(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2")
            .u16(tags::ROWS, self.side)
            .u16(tags::COLUMNS, self.side)
            .str(tags::PIXEL_SPACING, VR::DS, "0.976\\0.976")
            .u16(tags::BITS_ALLOCATED, 16)
            .u16(tags::BITS_STORED, 12)
            .u16(tags::HIGH_BIT, 11)
            .u16(tags::PIXEL_REPRESENTATION, 0)
            .str(tags::WINDOW_CENTER, VR::DS, "40")
            .str(tags::WINDOW_WIDTH, VR::DS, "400")
            .str(tags::RESCALE_INTERCEPT, VR::DS, "-1024")
            .str(tags::RESCALE_SLOPE, VR::DS, "1");
        let mut out = part10(&ds, EXPLICIT_VR_LE);
        out.extend_from_slice(&vna_dicom::write::native_pixel_data_header(self.pixel_bytes() as u32));
        out
    }
}

/// What [`populate`] wrote.
pub struct Written {
    pub files: usize,
    pub studies: usize,
    pub bytes: u64,
}

/// Writes every instance of `corpus` as a Part 10 file `dir/<study>/<instance>.dcm`, on two
/// threads. No fsync: the files are input, and the archive importing them makes its own copy
/// durable.
pub fn populate(corpus: CorpusSpec, dir: &std::path::Path) -> anyhow::Result<Written> {
    use anyhow::Context;
    if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
        anyhow::bail!("{} is not empty", dir.display());
    }
    for s in 0..corpus.studies() {
        std::fs::create_dir_all(dir.join(format!("{s:07}"))).with_context(|| format!("creating a folder in {}", dir.display()))?;
    }
    let slabs = PixelSlabs::new(&corpus);
    const THREADS: usize = 2;
    let bytes = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let slabs = &slabs;
                scope.spawn(move || -> anyhow::Result<u64> {
                    let mut bytes = 0u64;
                    for k in (t..corpus.instances).step_by(THREADS) {
                        let mut object = corpus.instance_header(k);
                        object.extend_from_slice(&slabs.for_instance(k));
                        let (s, _, _) = corpus.locate(k);
                        let path = dir.join(format!("{s:07}")).join(format!("{k:08}.dcm"));
                        std::fs::write(&path, &object).with_context(|| format!("writing {}", path.display()))?;
                        bytes += object.len() as u64;
                    }
                    Ok(bytes)
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().map_err(|_| anyhow::anyhow!("a writer thread panicked"))?).sum::<anyhow::Result<u64>>()
    })?;
    Ok(Written { files: corpus.instances, studies: corpus.studies(), bytes })
}

/// A few CT-like phantom images (a disc of soft tissue in air, with noise), shared by every
/// instance of the corpus: instance `k` uses slab `k % SLABS`.
pub struct PixelSlabs(Vec<Bytes>);

impl PixelSlabs {
    pub fn new(corpus: &CorpusSpec) -> Self {
        let side = i64::from(corpus.side);
        let slabs = (0..SLABS)
            .map(|n| {
                let mut g = SplitMix64::derive(corpus.seed, "pixels", n as u64);
                let mut out = Vec::with_capacity(corpus.pixel_bytes());
                let radius2 = ((180 + 10 * n as i64) * side / 512).pow(2);
                for y in 0..side {
                    for x in 0..side {
                        let d2 = (x - side / 2).pow(2) + (y - side / 2).pow(2);
                        let base: u64 = if d2 < radius2 { 1064 } else { 24 };
                        let value = (base + g.below(48)) as u16;
                        out.extend_from_slice(&value.to_le_bytes());
                    }
                }
                Bytes::from(out)
            })
            .collect();
        Self(slabs)
    }

    pub fn for_instance(&self, k: usize) -> Bytes {
        self.0[k % self.0.len()].clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_counts_add_up() {
        let c = CorpusSpec { seed: 1, instances: 130, series_per_study: 3, instances_per_series: 20, namespace: 0, side: CT_SIDE };
        assert_eq!(c.studies(), 3);
        let total: usize = (0..c.studies()).map(|s| (0..c.series_in_study(s)).map(|se| c.instances_in_series(s, se)).sum::<usize>()).sum();
        assert_eq!(total, 130);
        assert_eq!(c.series_in_study(2), 1);
        assert_eq!(c.instances_in_series(2, 0), 10);
        assert_eq!(c.locate(61), (1, 0, 1));
        let h = c.instance_header(5);
        assert_eq!(&h[128..132], b"DICM");
        assert_eq!(&h[h.len() - 12..h.len() - 8], &[0xE0, 0x7F, 0x10, 0x00]);
        let other = c.namespaced(2);
        assert_ne!(other.instance_uid(5), c.instance_uid(5));
        assert_ne!(other.study(0).uid, c.study(0).uid);
        assert!(other.patient(0).id.starts_with("LC2-"), "{}", other.patient(0).id);
        assert_eq!(other.namespaced(0).patient(0).id, "LT0000000");
    }

    #[test]
    fn tiny_images_and_populate() {
        let c = CorpusSpec { seed: 2, instances: 7, series_per_study: 1, instances_per_series: 3, namespace: 0, side: 16 };
        let slabs = PixelSlabs::new(&c);
        assert_eq!(slabs.for_instance(0).len(), 16 * 16 * 2);
        let h = c.instance_header(0);
        assert_eq!(&h[h.len() - 4..], &(16u32 * 16 * 2).to_le_bytes(), "the pixel data length follows the size");
        let dir = tempfile::tempdir().expect("temp dir");
        let out = dir.path().join("files");
        let w = populate(c, &out).expect("populate");
        assert_eq!((w.files, w.studies), (7, 3));
        let mut files: Vec<_> = walk(&out);
        files.sort();
        assert_eq!(files.len(), 7);
        let first = std::fs::read(&files[0]).expect("read");
        assert_eq!(first, [c.instance_header(0), slabs.for_instance(0).to_vec()].concat());
        assert!(populate(c, &out).is_err(), "refuses a folder that is not empty");
    }

    fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).expect("list") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
        out
    }
}
