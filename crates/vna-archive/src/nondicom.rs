//! Non-DICOM ingest: a PDF, a JPEG photo or an MP4 video, with the caller's patient/study
//! attributes (or the StudyInstanceUID of a stored study, whose patient and study attributes
//! are copied), encapsulated by `vna_dicom::encapsulate` and stored through the one ingest
//! pipeline, so that it is found and retrieved like any other instance.
//!
//! The file has been spooled to disk by the front end (a multipart upload carries no length,
//! and an MP4's `moov` box may come after gigabytes of media data). It is probed in place and
//! streamed from there: memory does not grow with its size.

use crate::{Archive, ArchiveError, Permission, Principal, StoreRequest, Stored};
use bytes::Bytes;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use vna_catalog::{Filter, Key, Level, Matcher, Query};
use vna_dicom::encapsulate::{self, Attributes, DateTime, EncapsulateError, Media, MediaError, Segment};

/// The file kinds accepted, by media type.
pub const NON_DICOM_MEDIA_TYPES: &[&str] = &["application/pdf", "image/jpeg", "video/mp4"];

const CHUNK: usize = 256 * 1024;

impl Archive {
    /// Encapsulates and stores the file at `path` (of media type `media_type`, one of
    /// [`NON_DICOM_MEDIA_TYPES`]). Acknowledged like any store: durable and catalogued.
    pub async fn store_non_dicom(
        self: &Arc<Self>,
        who: &Principal,
        path: &Path,
        media_type: &str,
        mut attrs: Attributes,
    ) -> Result<Stored, ArchiveError> {
        self.require(who, Permission::Write).await?;
        let len = tokio::fs::metadata(path).await.map_err(|_| ArchiveError::Task { step: "reading the spooled file" })?.len();
        if len == 0 {
            return Err(ArchiveError::Encapsulate(EncapsulateError::Media(MediaError::Malformed("the file is empty"))));
        }
        if len > self.config.max_object_bytes {
            return Err(ArchiveError::TooLarge { limit: self.config.max_object_bytes });
        }
        let media = probe(path.to_owned(), media_type.to_owned(), len).await?;
        if let Some(study) = attrs.get("StudyInstanceUID").map(str::to_owned) {
            self.merge_study(who, &study, &mut attrs).await?;
        }
        let object = encapsulate::build(&media, &attrs, len, &now()).map_err(ArchiveError::Encapsulate)?;
        let mut body = self.begin_store(StoreRequest::new(who.clone()))?;
        let mut file = tokio::fs::File::open(path).await.map_err(|_| ArchiveError::Task { step: "reading the spooled file" })?;
        let mut buf = vec![0u8; CHUNK];
        for segment in object.segments {
            match segment {
                Segment::Bytes(b) => {
                    if body.send(Bytes::from(b)).await.is_err() {
                        return body.wait().await;
                    }
                }
                Segment::File { offset, length } => {
                    file.seek(std::io::SeekFrom::Start(offset))
                        .await
                        .map_err(|_| ArchiveError::Task { step: "reading the spooled file" })?;
                    let mut left = length;
                    while left > 0 {
                        let want = (left as usize).min(CHUNK);
                        file.read_exact(&mut buf[..want]).await.map_err(|_| ArchiveError::Task { step: "reading the spooled file" })?;
                        if body.send(Bytes::copy_from_slice(&buf[..want])).await.is_err() {
                            return body.wait().await;
                        }
                        left -= want as u64;
                    }
                }
            }
        }
        body.finish().await
    }

    /// Copies the stored study's patient and study attributes into `attrs` where the caller
    /// gave none; a different PatientID is a conflict. A study unknown (or not visible) to
    /// `who` is new: the caller's attributes must then name the patient, and ingest refuses it
    /// if the study exists in a tenant `who` cannot write.
    async fn merge_study(&self, who: &Principal, study: &str, attrs: &mut Attributes) -> Result<(), ArchiveError> {
        let uid =
            vna_dicom::uid::StudyUid::new(study).map_err(|source| ArchiveError::InvalidUid { attribute: "StudyInstanceUID", source })?;
        // One study row (patient and study attributes), not the study's instances.
        let query = Query {
            level: Level::Study,
            filters: vec![Filter { key: Key::StudyUid, matcher: Matcher::Single(uid.as_str().to_owned()) }],
            limit: Some(1),
            offset: 0,
        };
        let rows = self.catalog.query_studies(&query, who.visibility()).await.map_err(ArchiveError::catalog("reading the study"))?;
        let Some(row) = rows.into_iter().next() else { return Ok(()) };
        if attrs.get("PatientID").is_some_and(|p| p != row.patient.patient_id) {
            return Err(ArchiveError::PatientMismatch);
        }
        let (p, s) = (&row.patient, &row.study);
        for (kw, v) in [
            ("PatientID", &p.patient_id),
            ("IssuerOfPatientID", &p.issuer_of_patient_id),
            ("PatientName", &p.patient_name),
            ("PatientBirthDate", &p.patient_birth_date),
            ("PatientSex", &p.patient_sex),
            ("StudyDate", &s.study_date),
            ("StudyTime", &s.study_time),
            ("AccessionNumber", &s.accession_number),
            ("StudyID", &s.study_id),
            ("ReferringPhysicianName", &s.referring_physician_name),
            ("StudyDescription", &s.study_description),
        ] {
            // A stored value our stricter checks refuse is left out rather than failing.
            if attrs.set_default(kw, v).is_err() {
                tracing::warn!(attribute = kw, "a stored study attribute is not copied into the encapsulated object");
            }
        }
        Ok(())
    }
}

async fn probe(path: std::path::PathBuf, media_type: String, len: u64) -> Result<Media, ArchiveError> {
    let probed = tokio::task::spawn_blocking(move || -> Result<Media, MediaError> {
        let mut f = std::fs::File::open(&path).map_err(|_| MediaError::Io)?;
        let head = |f: &mut std::fs::File, n: u64| -> Result<Vec<u8>, MediaError> {
            let mut v = Vec::new();
            f.take(n).read_to_end(&mut v).map_err(|_| MediaError::Io)?;
            Ok(v)
        };
        match media_type.as_str() {
            "application/pdf" => encapsulate::probe_pdf(&head(&mut f, 1024)?).map(|_| Media::Pdf),
            // The frame header follows the APPn segments (an EXIF thumbnail is up to 64 KiB).
            "image/jpeg" => encapsulate::probe_jpeg(&head(&mut f, 1 << 20)?).map(Media::Jpeg),
            "video/mp4" => encapsulate::probe_mp4(&mut std::io::BufReader::new(f), len).map(Media::Video),
            other => Err(MediaError::Unsupported(format!("media type {other}"))),
        }
    })
    .await
    .map_err(|_| ArchiveError::Task { step: "probing the file" })?;
    probed.map_err(|e| ArchiveError::Encapsulate(EncapsulateError::Media(e)))
}

/// Now, UTC, as DA and TM.
fn now() -> DateTime {
    let secs = crate::clock::now_ms().div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = crate::clock::civil(days);
    DateTime { date: format!("{y:04}{m:02}{d:02}"), time: format!("{:02}{:02}{:02}", rem / 3600, rem / 60 % 60, rem % 60) }
}

#[cfg(test)]
mod tests {
    #[test]
    fn now_is_a_valid_date_and_time() {
        let n = super::now();
        assert_eq!(n.date.len(), 8);
        assert!(n.date.as_str() >= "20260101", "{}", n.date);
        assert_eq!(n.time.len(), 6);
    }
}
