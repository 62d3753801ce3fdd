//! Frames as pixels, for WADO-RS rendered, thumbnail and transcoded retrieval (PS3.18 §10.4):
//! the frame is read with one ranged read per stored piece (the offsets recorded at ingest),
//! then decoded and rendered by `vna-image` on a bounded pool off the async runtime.

use crate::Found;
use crate::{Archive, ArchiveError};
use std::sync::Arc;
use vna_catalog::{ByteRange, InstanceRow};
use vna_image::{ImageDescription, ImageError, ImageInfo, RenderOptions};

/// Largest frame decoded, stored or decoded size (a 8k x 8k RGB tile is 192 MiB). Bigger
/// frames are refused rather than risk the server's memory: rendering holds a frame whole.
pub const MAX_DECODED_FRAME_BYTES: u64 = 256 << 20;

/// Instance versions whose image description is kept (a few hundred bytes each).
const DESCRIPTION_CACHE: usize = 4096;

/// True when the archive can decode this instance's frames: an image, not a video, in a
/// transfer syntax (and bit depth) `vna-image` decodes. The one test the rendered, transcoded
/// and study/series responses share.
pub fn can_decode(row: &InstanceRow) -> bool {
    let ts = &row.instance.transfer_syntax;
    let bits = row.instance.bits_allocated.and_then(|b| u16::try_from(b).ok()).unwrap_or(8);
    row.instance.rows.is_some() && !vna_dicom::ts::is_video(ts) && vna_image::can_decode_bits(ts, bits)
}

/// What the archive keeps of an instance version's metadata for pixel work: its image
/// description and where its Pixel Data value starts (from the recorded BulkDataURI).
struct Described {
    description: Arc<ImageDescription>,
    pixel_data_offset: Option<u64>,
}

/// Where the decoder pool and the description cache live.
pub(crate) struct Imaging {
    slots: tokio::sync::Semaphore,
    /// By catalog pk and object hash: SQLite may reuse the pk of a deleted row, the hash tells
    /// the versions apart.
    descriptions: std::sync::Mutex<std::collections::HashMap<(i64, String), Arc<Described>>>,
}

impl Imaging {
    pub(crate) fn new() -> Self {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        Imaging { slots: tokio::sync::Semaphore::new(cores), descriptions: Default::default() }
    }
}

/// A frame decoded to native samples (explicit VR little endian) and what they now are.
pub struct NativeFrame {
    pub bytes: Vec<u8>,
    pub photometric_interpretation: String,
    pub planar_configuration: u16,
}

impl Archive {
    /// The image description of an instance version, from its stored metadata (cached: an
    /// instance version never changes).
    pub async fn image_description(&self, row: &Found) -> Result<Arc<ImageDescription>, ArchiveError> {
        Ok(self.described(row).await?.description.clone())
    }

    /// Where the value of the instance's Pixel Data starts in the stored object (its
    /// BulkDataURI offset), if it has one.
    pub async fn pixel_data_offset(&self, row: &Found) -> Result<Option<u64>, ArchiveError> {
        Ok(self.described(row).await?.pixel_data_offset)
    }

    /// The metadata read and parsed once per instance version, then cached.
    async fn described(&self, row: &InstanceRow) -> Result<Arc<Described>, ArchiveError> {
        let key = (row.pk, row.blob.sha256.clone());
        if let Some(d) = self.imaging.descriptions.lock().ok().and_then(|c| c.get(&key).cloned()) {
            return Ok(d);
        }
        let docs = self.catalog.metadata(&[row.pk]).await.map_err(ArchiveError::catalog("reading metadata"))?;
        let Some((_, meta)) = docs.into_iter().next() else { return Err(ArchiveError::NotFound { what: "instance metadata" }) };
        let ts = row.instance.transfer_syntax.clone();
        let description = self
            .on_pool(move || {
                let json: serde_json::Value =
                    serde_json::from_str(&meta).map_err(|_| ImageError::NotAnImage("stored metadata unreadable"))?;
                let pixel_data_offset = json
                    .get("7FE00010")
                    .and_then(|p| p.get("BulkDataURI"))
                    .and_then(serde_json::Value::as_str)
                    .and_then(|u| u.strip_prefix(vna_dicom::json::BULK_PREFIX))
                    .and_then(|r| r.split_once('-'))
                    .and_then(|(o, _)| o.parse().ok());
                Ok(Described { description: Arc::new(ImageDescription::from_dicom_json(&json, &ts)?), pixel_data_offset })
            })
            .await?;
        let description = Arc::new(description);
        if let Ok(mut cache) = self.imaging.descriptions.lock() {
            if cache.len() >= DESCRIPTION_CACHE {
                cache.clear();
            }
            cache.insert(key, description.clone());
        }
        Ok(description)
    }

    /// Renders frame `number` (1-based) of an instance as JPEG or PNG.
    pub async fn render_frame(&self, row: &Found, number: u32, options: &RenderOptions) -> Result<Vec<u8>, ArchiveError> {
        let (info, bytes) = self.frame_for_decoding(row, number).await?;
        let options = options.clone();
        self.on_pool(move || {
            let decoded = vna_image::decode(&info, bytes)?;
            vna_image::render(&decoded, &info, &options)
        })
        .await
    }

    /// Decodes frame `number` (1-based) to native samples, for transcoding.
    pub async fn native_frame(&self, row: &Found, number: u32) -> Result<NativeFrame, ArchiveError> {
        let (info, bytes) = self.frame_for_decoding(row, number).await?;
        self.on_pool(move || {
            let decoded = vna_image::decode(&info, bytes)?;
            Ok(NativeFrame {
                photometric_interpretation: decoded.photometric_interpretation().to_owned(),
                planar_configuration: decoded.planar_configuration(),
                bytes: decoded.into_native_bytes(),
            })
        })
        .await
    }

    /// The instance in Explicit VR Little Endian with native pixel data (PS3.18 §8.7.3.5
    /// transcoding): its stored header rewritten (`vna_dicom::transcode`), then every frame
    /// decoded in order, one at a time, while the stream is read. Frame 1 is decoded before
    /// this returns, so an undecodable instance is an error status, not a cut response. Elements
    /// after the pixel data (trailing padding, signatures) are not carried over.
    pub async fn transcoded(self: &Arc<Self>, row: &Found) -> Result<vna_blob::ByteStream, ArchiveError> {
        use futures::StreamExt;
        let unsupported = |why: String| ArchiveError::Image(ImageError::Unsupported(why));
        let ts = row.instance.transfer_syntax.clone();
        if vna_dicom::ts::is_native(&ts) || vna_dicom::ts::is_video(&ts) || !vna_image::can_decode(&ts) {
            return Err(unsupported(ts));
        }
        let base = self.image_description(row).await?.base().clone();
        let frames = base.number_of_frames.max(1);
        let pixel_bytes = base.frame_bytes() * u64::from(frames);
        let padded = pixel_bytes + pixel_bytes % 2;
        if padded > u64::from(u32::MAX - 1) {
            return Err(unsupported(format!("{ts}: its native pixel data would exceed the 4 GiB a defined length allows")));
        }
        let pixel_offset = self
            .described(row)
            .await?
            .pixel_data_offset
            .ok_or(ArchiveError::FramesUnavailable { why: "the pixel data position is not recorded" })?;
        let header_end =
            pixel_offset.checked_sub(12).ok_or(ArchiveError::FramesUnavailable { why: "the pixel data position is not recorded" })?;
        if header_end > 64 << 20 {
            return Err(unsupported("a header over 64 MiB".into()));
        }
        let mut stored = Vec::with_capacity(header_end as usize);
        let mut head = self.open(row, Some(ByteRange { offset: 0, length: header_end })).await?;
        while let Some(chunk) = head.next().await {
            stored.extend_from_slice(&chunk.map_err(ArchiveError::blob("reading the header"))?);
        }
        let first = self.native_frame(row, 1).await?;
        let pixels = vna_dicom::transcode::NativePixels {
            photometric_interpretation: first.photometric_interpretation.clone(),
            planar_configuration: (base.samples_per_pixel > 1).then_some(first.planar_configuration),
            bits_allocated: base.bits_allocated,
            length: padded as u32,
        };
        // Parsing a header (up to 64 MiB for a slide's per-frame groups) is CPU work: off the runtime.
        let header = tokio::task::spawn_blocking(move || vna_dicom::transcode::native_header(&stored, &pixels))
            .await
            .map_err(|_| ArchiveError::Task { step: "rewriting the header" })?
            .map_err(|e| unsupported(e.to_string()))?;
        let expected = base.frame_bytes() as usize;
        let (archive, row) = (self.clone(), row.clone());
        let rest = futures::stream::iter(2..=frames).then(move |n| {
            let (archive, row) = (archive.clone(), row.clone());
            async move {
                archive.native_frame(&row, n).await.map(|f| bytes::Bytes::from(f.bytes)).map_err(|e| {
                    tracing::warn!(error = %e, frame = n, "transcoding a frame failed; response cut");
                    vna_blob::BlobError::Unavailable { step: "decoding a frame" }
                })
            }
        });
        // A frame of another size than the attributes say would shift every later frame.
        let checked = futures::stream::once(async move { Ok(bytes::Bytes::from(first.bytes)) }).chain(rest).map(move |r| match r {
            Ok(b) if b.len() != expected => {
                Err(vna_blob::BlobError::Unavailable { step: "decoding a frame (size differs from the attributes)" })
            }
            other => other,
        });
        let pad = futures::stream::iter((padded > pixel_bytes).then(|| Ok(bytes::Bytes::from_static(&[0]))));
        Ok(futures::stream::once(async move { Ok(bytes::Bytes::from(header)) }).chain(checked).chain(pad).boxed())
    }

    /// Frame `number` of a native 8-bit instance encoded as JPEG Baseline.
    pub async fn jpeg_frame(&self, row: &Found, number: u32) -> Result<Vec<u8>, ArchiveError> {
        let (info, bytes) = self.frame_for_decoding(row, number).await?;
        self.on_pool(move || vna_image::jpeg_baseline_frame(&info, &bytes, 90)).await
    }

    /// The representative image of a video instance (its stream is not decoded here).
    pub async fn video_poster(&self, row: &Found, max: u32, options: &RenderOptions) -> Result<Vec<u8>, ArchiveError> {
        let base = self.image_description(row).await?.base().clone();
        let options = options.clone();
        self.on_pool(move || vna_image::poster(base.rows, base.columns, max, &options)).await
    }

    /// The byte ranges of a video instance's stream (all fragments in order), or `None` when
    /// the instance is not a video.
    pub async fn video_stream(&self, row: &Found) -> Result<Option<Vec<ByteRange>>, ArchiveError> {
        if !vna_dicom::ts::is_video(&row.instance.transfer_syntax) {
            return Ok(None);
        }
        let located = self.catalog.frames(row.pk, &[1]).await.map_err(ArchiveError::catalog("locating the video stream"))?;
        match located.and_then(|f| f.into_iter().next()) {
            Some(pieces) if !pieces.is_empty() => Ok(Some(pieces)),
            _ => Err(ArchiveError::FramesUnavailable { why: "the video stream of this instance was not indexed" }),
        }
    }

    /// The frame's description and its stored bytes, read whole (bounded).
    async fn frame_for_decoding(&self, row: &Found, number: u32) -> Result<(ImageInfo, Vec<u8>), ArchiveError> {
        let ts = &row.instance.transfer_syntax;
        if vna_dicom::ts::is_video(ts) || !vna_image::can_decode(ts) {
            return Err(ArchiveError::Image(ImageError::Unsupported(ts.clone())));
        }
        let info = self.image_description(row).await?.frame(number.saturating_sub(1));
        if !vna_image::can_decode_bits(ts, info.bits_allocated) {
            return Err(ArchiveError::Image(ImageError::Unsupported(format!("{ts} with {} bits allocated", info.bits_allocated))));
        }
        if info.frame_bytes() > MAX_DECODED_FRAME_BYTES {
            return Err(ArchiveError::Image(ImageError::NotAnImage("frame too large to decode")));
        }
        let located = self.catalog.frames(row.pk, &[number]).await.map_err(ArchiveError::catalog("locating frames"))?;
        let Some(pieces) = located.and_then(|f| f.into_iter().next()) else {
            return Err(ArchiveError::FramesUnavailable { why: "no frame index for this instance" });
        };
        let total: u64 = pieces.iter().map(|p| p.length).sum();
        if total > MAX_DECODED_FRAME_BYTES {
            return Err(ArchiveError::Image(ImageError::NotAnImage("frame too large to decode")));
        }
        let mut bytes = Vec::with_capacity(total as usize);
        for piece in pieces {
            let mut stream = self.open(row, Some(piece)).await?;
            use futures::StreamExt;
            while let Some(chunk) = stream.next().await {
                bytes.extend_from_slice(&chunk.map_err(ArchiveError::blob("reading a frame"))?);
            }
        }
        Ok((info, bytes))
    }

    /// Runs CPU-bound image work on the blocking pool, at most one task per core at once.
    async fn on_pool<T: Send + 'static>(&self, work: impl FnOnce() -> Result<T, ImageError> + Send + 'static) -> Result<T, ArchiveError> {
        let _slot = self.imaging.slots.acquire().await.map_err(|_| ArchiveError::Task { step: "waiting for the image pool" })?;
        match tokio::task::spawn_blocking(work).await {
            Ok(r) => r.map_err(ArchiveError::Image),
            Err(_) => Err(ArchiveError::Task { step: "decoding an image" }),
        }
    }
}
