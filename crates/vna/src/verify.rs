//! `vna verify`: every current instance (or one study's) re-read and re-hashed, a few at a
//! time, with each problem printed as it is found; for the whole archive, also the catalog's
//! maintained counts of live instances (what query counters read) against its instances.

use futures::StreamExt;
use std::sync::Arc;
use vna_archive::{Archive, Verdict};
use vna_catalog::InstanceRow;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    pub checked: u64,
    pub bytes: u64,
    pub intact: u64,
    pub missing: u64,
    pub altered: u64,
    pub unreadable: u64,
    /// (series, SOP Class) pairs whose maintained live count differs from their instances.
    pub count_drift: u64,
}

impl Report {
    pub fn problems(&self) -> u64 {
        self.missing + self.altered + self.unreadable + self.count_drift
    }

    fn add(&mut self, row: &InstanceRow, v: &Verdict) {
        self.checked += 1;
        self.bytes += row.blob.size;
        match v {
            Verdict::Intact => self.intact += 1,
            Verdict::Missing => self.missing += 1,
            Verdict::SizeMismatch { .. } | Verdict::HashMismatch => self.altered += 1,
            Verdict::Unreadable { .. } => self.unreadable += 1,
        }
    }
}

const PAGE: u32 = 1000;

pub async fn run(
    archive: Arc<Archive>,
    study: Option<vna_dicom::uid::StudyUid>,
    parallel: usize,
    with_uids: bool,
) -> anyhow::Result<Report> {
    let mut report = Report::default();
    match study {
        Some(study) => {
            let rows = archive.study_instances(&vna_archive::Principal::system(), study).await?;
            check_rows(&archive, rows, parallel, with_uids, &mut report).await;
        }
        None => {
            let mut offset = 0;
            loop {
                let rows = archive.all_instances(&vna_archive::Principal::system(), offset, PAGE).await?;
                let n = rows.len() as u32;
                check_rows(&archive, rows, parallel, with_uids, &mut report).await;
                if n < PAGE {
                    break;
                }
                offset += n;
            }
            report.count_drift = u64::try_from(archive.catalog().count_drift().await?).unwrap_or(u64::MAX);
            if report.count_drift > 0 {
                println!("COUNTS: {} live-instance counts (series, study) differ from their instances", report.count_drift);
            }
        }
    }
    Ok(report)
}

async fn check_rows(archive: &Arc<Archive>, rows: Vec<vna_archive::Found>, parallel: usize, with_uids: bool, report: &mut Report) {
    let mut results = futures::stream::iter(rows)
        .map(|row| {
            let archive = archive.clone();
            async move {
                let v = archive.verify_instance(&row).await;
                (row, v)
            }
        })
        .buffer_unordered(parallel);
    while let Some((row, v)) = results.next().await {
        report.add(&row, &v);
        let what = match &v {
            Verdict::Intact => continue,
            Verdict::Missing => "MISSING".to_owned(),
            Verdict::SizeMismatch { recorded, found } => format!("ALTERED size {found}, catalog says {recorded}"),
            Verdict::HashMismatch => "ALTERED sha256 differs from the catalog".to_owned(),
            Verdict::Unreadable { reason } => format!("UNREADABLE {reason}"),
        };
        let uid = if with_uids { format!(" (SOP Instance UID {})", row.instance.sop_uid.as_str()) } else { String::new() };
        println!("{what}: tier {} key {} version {}{uid}", row.blob.tier, row.blob.key, row.blob.version_id.as_deref().unwrap_or("-"));
    }
}
