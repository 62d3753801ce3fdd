//! Retrieval and query: instances in a scope, their bytes, frames by ranged reads from the
//! offsets recorded at ingest, bulk data, metadata, and searches.

use crate::audit::{self, EventId};
use crate::{Archive, ArchiveError, Found, Permission, Principal};
use vna_blob::{ByteStream, Range};
use vna_catalog::{ByteRange, InstanceRow, PatientRow, Query, Scope, SeriesRow, StudyRow};

/// One frame: the byte ranges of the stored object that make it up, in order.
#[derive(Debug, Clone)]
pub struct Frame {
    pub number: u32,
    pub pieces: Vec<ByteRange>,
}

/// What a BulkDataURI designates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BulkValue {
    /// A value's bytes, as stored.
    Bytes(ByteRange),
    /// A video's encapsulated Pixel Data: its stream, as these stored pieces in order.
    Video(Vec<ByteRange>),
    /// An image's encapsulated Pixel Data: its frames, each in the stored syntax.
    Frames,
}

#[derive(Debug, Clone)]
pub struct FramesOf {
    pub instance: Found,
    pub frames: Vec<Frame>,
}

impl Archive {
    /// Current instances in a scope; `NotFound` when there are none.
    pub async fn instances(&self, who: &Principal, scope: &Scope) -> Result<Vec<Found>, ArchiveError> {
        self.require(who, Permission::Read).await?;
        let rows = self.catalog.instances_in(scope, who.visibility()).await.map_err(ArchiveError::catalog("listing instances"))?;
        if rows.is_empty() {
            let what = match (&scope.series, &scope.instance) {
                (_, Some(_)) => "instance",
                (Some(_), None) => "series",
                _ => "study",
            };
            return Err(ArchiveError::NotFound { what });
        }
        let refs: Vec<&InstanceRow> = rows.iter().collect();
        self.audited(who, audit::event(who, EventId::InstancesAccessed, "R", &refs, "instances read")).await?;
        self.touch(&rows);
        Ok(Found::all(rows))
    }

    /// The current instances a C-MOVE or C-GET designates (PS3.4 §C.4.2, §C.4.3), as a query at
    /// instance level; recorded as the start of their transfer (A.5.3.5, action R).
    pub async fn retrieve_instances(&self, who: &Principal, q: &Query) -> Result<Vec<Found>, ArchiveError> {
        self.require(who, Permission::Read).await?;
        let rows = self.catalog.query_instances(q, who.visibility()).await.map_err(ArchiveError::catalog("searching instances"))?;
        if !rows.is_empty() {
            let refs: Vec<&InstanceRow> = rows.iter().collect();
            self.audited(who, audit::event(who, EventId::InstancesTransferred, "R", &refs, "instances retrieved")).await?;
            self.touch(&rows);
        }
        Ok(Found::all(rows))
    }

    /// The metadata of one current instance of `scope` (an indexed query with `limit 1`), for
    /// attributes a query's answer names that the catalog does not keep (QIDO-RS
    /// `includefield`). Part of that query: its audit event covers it.
    pub async fn sample_metadata(&self, who: &Principal, scope: &Scope) -> Result<Option<(Found, String)>, ArchiveError> {
        use vna_catalog::{Filter, Key, Level, Matcher};
        self.require(who, Permission::Read).await?;
        let mut filters = vec![Filter { key: Key::StudyUid, matcher: Matcher::Single(scope.study.to_string()) }];
        if let Some(series) = &scope.series {
            filters.push(Filter { key: Key::SeriesUid, matcher: Matcher::Single(series.to_string()) });
        }
        let q = Query { level: Level::Instance, filters, limit: Some(1), offset: 0 };
        let rows = self.catalog.query_instances(&q, who.visibility()).await.map_err(ArchiveError::catalog("searching instances"))?;
        Ok(self.metadata_of(Found::all(rows)).await?.into_iter().next())
    }

    /// Records a query (A.5.3.10) before its answer: the level and the keys matched on, by
    /// name only; the patient when the query names one.
    async fn audit_query(&self, who: &Principal, q: &Query) -> Result<(), ArchiveError> {
        let keys: Vec<String> = q.filters.iter().map(|f| format!("{:?}", f.key)).collect();
        let mut e = audit::event(who, EventId::Query, "E", &[], format!("query at {:?} level on [{}]", q.level, keys.join(", ")));
        for f in &q.filters {
            if let (vna_catalog::Key::PatientId, vna_catalog::Matcher::Single(p)) = (f.key, &f.matcher) {
                e.patients.push(p.clone());
            }
            if let (vna_catalog::Key::StudyUid, vna_catalog::Matcher::Single(s)) = (f.key, &f.matcher) {
                e.studies.push(s.clone());
            }
        }
        self.audited(who, e).await
    }

    /// Streams the stored bytes of an instance version, or a range of them.
    pub async fn open(&self, row: &Found, range: Option<ByteRange>) -> Result<ByteStream, ArchiveError> {
        let store = self.store_of(&row.blob.tier)?;
        let range = range.map(|r| Range { offset: r.offset, length: r.length });
        store.read(crate::blob_ref(row), range).await.map_err(ArchiveError::blob("reading the object"))
    }

    /// Locates the requested frames (1-based) of an instance.
    pub async fn frames(&self, who: &Principal, scope: &Scope, numbers: &[u32]) -> Result<FramesOf, ArchiveError> {
        let instance = self.instances(who, scope).await?.into_iter().next().ok_or(ArchiveError::NotFound { what: "instance" })?;
        // A video's frame index is one entry, its stream (PS3.5 §8.2.5–8.2.8).
        if vna_dicom::ts::is_video(&instance.instance.transfer_syntax) && numbers.iter().any(|&n| n != 1) {
            return Err(ArchiveError::VideoFrame);
        }
        let located = self.catalog.frames(instance.pk, numbers).await.map_err(ArchiveError::catalog("locating frames"))?;
        let Some(pieces) = located else {
            return Err(ArchiveError::NotFound { what: "instance" });
        };
        if pieces.len() != numbers.len() {
            return Err(ArchiveError::FramesUnavailable { why: "no frame index for this instance" });
        }
        let frames = numbers.iter().zip(pieces).map(|(&number, pieces)| Frame { number, pieces }).collect();
        Ok(FramesOf { instance, frames })
    }

    /// A bulk data value of an instance, by the offset and length written in its BulkDataURI:
    /// the value's bytes, or, for encapsulated Pixel Data, what PS3.18 §8.7.3.3.2 and Table
    /// 8.7.3-5 make of it: a video's stream (the fragments' contents in order) or an image's
    /// frames. Nothing is opened yet.
    pub async fn bulk(&self, who: &Principal, scope: &Scope, range: ByteRange) -> Result<(Found, BulkValue), ArchiveError> {
        let instance = self.instances(who, scope).await?.into_iter().next().ok_or(ArchiveError::NotFound { what: "instance" })?;
        if instance.instance.transfer_syntax == vna_dicom::ts::DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN {
            return Err(ArchiveError::FramesUnavailable { why: "bulk data of a deflated object is not addressable" });
        }
        if range.offset.checked_add(range.length).is_none_or(|end| end > instance.blob.size) {
            return Err(ArchiveError::BulkOutOfRange);
        }
        if let Some(stream) = self.video_stream(&instance).await? {
            // The Pixel Data value spans the whole stream (and the items around it).
            let (first, last) = (stream[0], stream[stream.len() - 1]);
            if range.offset <= first.offset && range.offset + range.length >= last.offset + last.length {
                return Ok((instance, BulkValue::Video(stream)));
            }
        } else if !vna_dicom::ts::is_native(&instance.instance.transfer_syntax)
            && instance.instance.rows.is_some()
            && self.pixel_data_offset(&instance).await? == Some(range.offset)
        {
            return Ok((instance, BulkValue::Frames));
        }
        Ok((instance, BulkValue::Bytes(range)))
    }

    /// DICOM JSON of every current instance in a scope, in the order of [`Archive::instances`].
    pub async fn metadata(&self, who: &Principal, scope: &Scope) -> Result<Vec<(Found, String)>, ArchiveError> {
        let rows = self.instances(who, scope).await?;
        self.metadata_of(rows).await
    }

    /// DICOM JSON of the given instances (those without stored metadata are skipped).
    pub async fn metadata_of(&self, rows: Vec<Found>) -> Result<Vec<(Found, String)>, ArchiveError> {
        let pks: Vec<i64> = rows.iter().map(|r| r.pk).collect();
        let docs = self.catalog.metadata(&pks).await.map_err(ArchiveError::catalog("reading metadata"))?;
        let mut by_pk: std::collections::HashMap<i64, String> = docs.into_iter().collect();
        Ok(rows.into_iter().filter_map(|r| by_pk.remove(&r.pk).map(|m| (r, m))).collect())
    }

    /// Patients with a current instance matching `q` (C-FIND Patient Root, PS3.4 §C.6.1.1.2).
    pub async fn search_patients(&self, who: &Principal, q: &Query) -> Result<Vec<PatientRow>, ArchiveError> {
        self.require(who, Permission::Read).await?;
        let rows = self.catalog.query_patients(q, who.visibility()).await.map_err(ArchiveError::catalog("searching patients"))?;
        self.audit_query(who, q).await?;
        Ok(rows)
    }

    /// The current version of an instance by SOP Instance UID (Storage Commitment).
    pub async fn current_instance(&self, who: &Principal, sop: &vna_dicom::uid::SopInstanceUid) -> Result<Option<Found>, ArchiveError> {
        self.require(who, Permission::Read).await?;
        let row = self.catalog.current_instance(sop, who.visibility()).await.map_err(ArchiveError::catalog("looking up an instance"))?;
        Ok(row.map(Found::checked))
    }

    pub async fn search_studies(&self, who: &Principal, q: &Query) -> Result<Vec<StudyRow>, ArchiveError> {
        self.require(who, Permission::Read).await?;
        let rows = self.catalog.query_studies(q, who.visibility()).await.map_err(ArchiveError::catalog("searching studies"))?;
        self.audit_query(who, q).await?;
        Ok(rows)
    }

    pub async fn search_series(&self, who: &Principal, q: &Query) -> Result<Vec<SeriesRow>, ArchiveError> {
        self.require(who, Permission::Read).await?;
        let rows = self.catalog.query_series(q, who.visibility()).await.map_err(ArchiveError::catalog("searching series"))?;
        self.audit_query(who, q).await?;
        Ok(rows)
    }

    pub async fn search_instances(&self, who: &Principal, q: &Query) -> Result<Vec<Found>, ArchiveError> {
        self.require(who, Permission::Read).await?;
        let rows = self.catalog.query_instances(q, who.visibility()).await.map_err(ArchiveError::catalog("searching instances"))?;
        self.audit_query(who, q).await?;
        Ok(Found::all(rows))
    }
}

impl Archive {
    /// Every recorded version of an instance, oldest first (the current one flagged), so that
    /// a replaced or kept-aside object stays retrievable: an administrator's view.
    pub async fn versions(&self, who: &Principal, sop: &vna_dicom::uid::SopInstanceUid) -> Result<Vec<Found>, ArchiveError> {
        self.require(who, Permission::Admin).await?;
        let rows = self.catalog.instance_versions(sop, &who.seeing_rejected()).await.map_err(ArchiveError::catalog("listing versions"))?;
        if rows.is_empty() {
            return Err(ArchiveError::NotFound { what: "instance" });
        }
        let refs: Vec<&InstanceRow> = rows.iter().collect();
        self.audited(who, audit::event(who, EventId::InstancesAccessed, "R", &refs, "versions listed")).await?;
        Ok(Found::all(rows))
    }
}
