//! Small objects packed into append-only segment files, for the filesystem store.
//!
//! A file per object costs, on its acknowledgement's path, an inode allocation, a rename and
//! a directory fsync besides the data's own flush; profiling C-STORE of 9 KB instances put the
//! kernel's inode allocation alone at a sixth of the server's CPU. An object held whole in
//! memory at commit (under 1 MiB, no retention asked) is instead written at the end of this
//! process's current segment, `packs/<segment>.pack`, and made durable by an `fdatasync` of
//! the segment that every commit waiting at that moment shares (group commit): one flush,
//! shared, and no metadata but the segment's size. [`Packs::write`] hands back the object's
//! [`Unflushed`] so that the caller can overlap the flush with its own work (the catalog's
//! statements) and wait for it before anything names the object.
//!
//! - **Keys** carry where the object is: `p`, the segment number (8 hex digits), the offset (10)
//!   and the length (8), all lower-case hex. Segment numbers are taken with `create_new`, so
//!   two processes never write one segment, and offsets only grow, so a key is never reused.
//! - **Layout**: each object starts on a block boundary (4 KiB, or the filesystem's larger
//!   block), so the blocks it covers are its own, with a 16-byte header (`VNAPACK1`, the length,
//!   little-endian) before its bytes: a segment describes itself, and [`Packs::list`] finds
//!   every object still in it without any other index (a sweep for orphans, tests).
//! - **Delete** punches a hole over the object's blocks (`fallocate(PUNCH_HOLE)`): the space is
//!   freed, the segment and every other key in it stay as they are. An object *exists* while
//!   its first byte is data (`lseek(SEEK_DATA)`); a read takes the bytes, then checks that the
//!   object still exists (a hole punched during the read waits for it, `SEEK_DATA` taking the
//!   inode lock the punch holds), so a read racing a delete fails as not found and never
//!   delivers the zeros of a hole.
//! - **Crash**: a segment's tail past the last flushed write may hold a partial object that no
//!   catalog row names; a new process starts a new segment and never writes after that tail.
//!   Objects flushed but never registered (a crash between the two) are orphaned bytes, as an
//!   orphaned file is with one file per object.
//! - **An fsync error poisons the segment** (the kernel may have dropped the failed pages and
//!   a retry could succeed without the data): its writes fail and the next object starts a new
//!   segment.
//! - Packing is used only where the filesystem punches holes and reports them (probed at open);
//!   elsewhere every object is a file.

use crate::BlobError;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// A segment is sealed, and the next one begun, when it would grow past this.
const SEGMENT_MAX: u64 = 1 << 30;
const MAGIC: &[u8; 8] = b"VNAPACK1";
/// Packed objects are shorter than this: the filesystem store's in-memory limit.
pub(crate) const MAX_LEN: u64 = crate::fs::FLUSH_AT as u64;
/// The header before each object: `MAGIC`, then the length (u64, little-endian).
const HEADER: u64 = 16;

/// Where a packed object is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Packed {
    pub segment: u32,
    pub offset: u64,
    pub len: u64,
}

impl Packed {
    /// The key of a packed object: `p` + segment (8) + offset (10) + length (8), hex.
    pub fn key(self) -> String {
        format!("p{:08x}{:010x}{:08x}", self.segment, self.offset, self.len)
    }

    /// The packed object a key names, if it is one this store makes.
    pub fn parse(key: &str) -> Option<Packed> {
        let hex = key.strip_prefix('p')?;
        if hex.len() != 26 || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return None;
        }
        let segment = u32::from_str_radix(&hex[0..8], 16).ok()?;
        let offset = u64::from_str_radix(&hex[8..18], 16).ok()?;
        let len = u64::from_str_radix(&hex[18..26], 16).ok()?;
        // Only objects held whole in memory are packed: a key claiming more is not ours (and
        // must not size a read buffer).
        (len > 0 && len < MAX_LEN).then_some(Packed { segment, offset, len })
    }
}

/// One process's packing: its current segment, and the directory of all of them.
#[derive(Debug)]
pub(crate) struct Packs {
    dir: PathBuf,
    align: u64,
    /// Whether new objects are packed (the filesystem punches holes); packed objects are read
    /// and deleted either way.
    pub packing: bool,
    writing: Mutex<Writing>,
}

#[derive(Debug, Default)]
struct Writing {
    segment: Option<Arc<Segment>>,
    /// Where the next object starts in `segment`.
    next: u64,
    /// The number to try for the next segment (found by listing the directory the first time).
    next_number: Option<u32>,
}

#[derive(Debug)]
struct Segment {
    number: u32,
    file: std::fs::File,
    /// Writes finished (counted after their bytes are in the file).
    completed: AtomicU64,
    /// How many of those the last successful flush covered; held while flushing.
    synced: Mutex<u64>,
    poisoned: AtomicBool,
}

impl Segment {
    /// Makes every write finished so far durable; commits waiting together share one flush.
    fn sync_mine(&self) -> Result<(), BlobError> {
        // This write is counted only now that its bytes are in the file: a flush that reads a
        // count including it starts after the write, so it covers it.
        let ticket = self.completed.fetch_add(1, Ordering::SeqCst) + 1;
        let mut synced = self.synced.lock().unwrap_or_else(PoisonError::into_inner);
        if self.poisoned.load(Ordering::SeqCst) {
            return Err(BlobError::Unavailable { step: "syncing a pack segment after an earlier failure" });
        }
        if *synced >= ticket {
            return Ok(());
        }
        let upto = self.completed.load(Ordering::SeqCst);
        match rustix::fs::fdatasync(&self.file) {
            Ok(()) => {
                *synced = upto;
                Ok(())
            }
            Err(e) => {
                self.poisoned.store(true, Ordering::SeqCst);
                Err(BlobError::Io { step: "syncing a pack segment", source: e.into() })
            }
        }
    }
}

/// A packed object written but not yet flushed ([`Packs::write`]).
#[must_use = "a packed object is durable only once flushed"]
pub(crate) struct Unflushed(Arc<Segment>);

impl Unflushed {
    /// Makes the object durable (blocking), in a flush shared with every object of its segment
    /// waiting at that moment.
    pub fn flush(self) -> Result<(), BlobError> {
        self.0.sync_mine()
    }
}

impl Packs {
    /// Packing under `root/packs` (made, and made durable, here); `packing` is off where the
    /// filesystem cannot punch holes or does not report them.
    pub fn open(root: &Path) -> Result<Packs, BlobError> {
        let dir = root.join("packs");
        std::fs::create_dir_all(dir.join("locks")).map_err(BlobError::io("creating the packs directory"))?;
        sync_dir(&dir)?;
        sync_dir(root)?;
        let align = alignment(&dir);
        let packing = match probe(&dir, align) {
            Ok(()) => true,
            Err(e) => {
                tracing::info!(error = %e, "this filesystem does not punch holes: every object is a file of its own");
                false
            }
        };
        Ok(Packs { dir, align, packing, writing: Mutex::new(Writing::default()) })
    }

    /// The segments under `root/packs`, to read and list only: nothing is made or probed.
    pub fn reader(root: &Path) -> Packs {
        let dir = root.join("packs");
        Packs { align: alignment(&dir), dir, packing: false, writing: Mutex::new(Writing::default()) }
    }

    pub fn segment_path(&self, segment: u32) -> PathBuf {
        self.dir.join(format!("{segment:08x}.pack"))
    }

    /// Where the emulated lock of a packed object is kept.
    pub fn lock_path(&self, key: &str) -> PathBuf {
        self.dir.join("locks").join(format!("{key}.lock"))
    }

    /// Appends `data` (not empty) to the current segment and makes it durable (blocking).
    #[cfg(test)]
    pub fn append(&self, data: &[u8]) -> Result<Packed, BlobError> {
        let (packed, flush) = self.write(data)?;
        flush.flush()?;
        Ok(packed)
    }

    /// Appends `data` (not empty) to the current segment (blocking); the object is durable once
    /// the returned [`Unflushed::flush`] has returned well, and nothing may name it before.
    pub fn write(&self, data: &[u8]) -> Result<(Packed, Unflushed), BlobError> {
        let len = data.len() as u64;
        let (segment, offset) = self.reserve(len)?;
        let mut header = [0u8; HEADER as usize];
        header[..8].copy_from_slice(MAGIC);
        header[8..].copy_from_slice(&len.to_le_bytes());
        let written = segment
            .file
            .write_all_at(&header, offset)
            .and_then(|()| segment.file.write_all_at(data, offset + HEADER))
            .map_err(BlobError::io("writing to a pack segment"));
        if let Err(e) = written {
            // Nothing names these bytes; give their blocks back (the segment goes on).
            let _ = punch(&segment.file, offset, self.span(len));
            return Err(e);
        }
        Ok((Packed { segment: segment.number, offset, len }, Unflushed(segment)))
    }

    /// The blocks an object of `len` bytes takes, header included.
    fn span(&self, len: u64) -> u64 {
        (HEADER + len).div_ceil(self.align) * self.align
    }

    /// A place for `len` bytes: in the current segment, or a new one.
    fn reserve(&self, len: u64) -> Result<(Arc<Segment>, u64), BlobError> {
        let mut w = self.writing.lock().unwrap_or_else(PoisonError::into_inner);
        let usable = w.segment.as_ref().is_some_and(|s| !s.poisoned.load(Ordering::SeqCst) && w.next + HEADER + len <= SEGMENT_MAX);
        if !usable {
            let segment = self.new_segment(&mut w)?;
            w.segment = Some(Arc::new(segment));
            w.next = 0;
        }
        let offset = w.next;
        w.next = offset + self.span(len);
        let segment = w.segment.clone().ok_or(BlobError::Unavailable { step: "starting a pack segment" })?;
        Ok((segment, offset))
    }

    /// A new segment file, its name durable in the directory before any object in it is.
    fn new_segment(&self, w: &mut Writing) -> Result<Segment, BlobError> {
        let mut number = match w.next_number {
            Some(n) => n,
            None => self.highest_segment()?.map_or(0, |n| n + 1),
        };
        loop {
            let opened = std::fs::OpenOptions::new().read(true).write(true).create_new(true).open(self.segment_path(number));
            match opened {
                Ok(file) => {
                    sync_dir(&self.dir)?;
                    w.next_number = Some(number + 1);
                    return Ok(Segment {
                        number,
                        file,
                        completed: AtomicU64::new(0),
                        synced: Mutex::new(0),
                        poisoned: AtomicBool::new(false),
                    });
                }
                // Another process's segment: take the next number.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    number = number.checked_add(1).ok_or(BlobError::Unavailable { step: "numbering pack segments" })?
                }
                Err(e) => return Err(BlobError::Io { step: "creating a pack segment", source: e }),
            }
        }
    }

    fn highest_segment(&self) -> Result<Option<u32>, BlobError> {
        Ok(self.segments()?.into_iter().max())
    }

    /// The numbers of the segments in the directory (none if it does not exist), ascending.
    fn segments(&self) -> Result<Vec<u32>, BlobError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            other => other.map_err(BlobError::io("listing pack segments"))?,
        };
        let mut numbers = Vec::new();
        for entry in entries {
            let name = entry.map_err(BlobError::io("listing pack segments"))?.file_name();
            if let Some(n) = name.to_str().and_then(|n| n.strip_suffix(".pack")).and_then(|n| u32::from_str_radix(n, 16).ok()) {
                numbers.push(n);
            }
        }
        numbers.sort_unstable();
        Ok(numbers)
    }

    /// The segment of `p`, open for reading; `NotFound` if there is none.
    fn open_segment(&self, p: Packed, key: &str) -> Result<std::fs::File, BlobError> {
        std::fs::File::open(self.segment_path(p.segment)).map_err(|e| crate::fs::not_found_or(e, key, "opening a pack segment"))
    }

    /// Whether `p` is still there: its first byte is data, not a hole (blocking).
    fn exists_in(file: &std::fs::File, p: Packed) -> Result<bool, BlobError> {
        match rustix::fs::seek(file, rustix::fs::SeekFrom::Data(p.offset)) {
            Ok(at) => Ok(at < p.offset + HEADER + p.len),
            Err(rustix::io::Errno::NXIO) => Ok(false),
            Err(e) => Err(BlobError::Io { step: "looking up a packed object", source: e.into() }),
        }
    }

    /// `NotFound` unless the packed object exists (blocking).
    pub fn check_exists(&self, p: Packed, key: &str) -> Result<(), BlobError> {
        let file = self.open_segment(p, key)?;
        if Self::exists_in(&file, p)? {
            Ok(())
        } else {
            Err(BlobError::NotFound { key: key.to_owned() })
        }
    }

    /// `len` bytes from `at` within the packed object (blocking): read, then checked to be
    /// still there (see the module's notes on a read racing a delete).
    pub fn read(&self, p: Packed, key: &str, at: u64, len: u64) -> Result<Vec<u8>, BlobError> {
        let file = self.open_segment(p, key)?;
        if !Self::exists_in(&file, p)? {
            return Err(BlobError::NotFound { key: key.to_owned() });
        }
        let mut buf = vec![0u8; usize::try_from(len).map_err(|_| BlobError::Unavailable { step: "reading a packed object" })?];
        file.read_exact_at(&mut buf, p.offset + HEADER + at).map_err(BlobError::io("reading a pack segment"))?;
        if !Self::exists_in(&file, p)? {
            return Err(BlobError::NotFound { key: key.to_owned() });
        }
        Ok(buf)
    }

    /// Frees the object's blocks (blocking); the caller has checked its protection.
    pub fn delete(&self, p: Packed, key: &str) -> Result<(), BlobError> {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(self.segment_path(p.segment))
            .map_err(|e| crate::fs::not_found_or(e, key, "opening a pack segment"))?;
        if !Self::exists_in(&file, p)? {
            return Err(BlobError::NotFound { key: key.to_owned() });
        }
        punch(&file, p.offset, self.span(p.len)).map_err(|e| BlobError::Io { step: "freeing a packed object", source: e })
    }

    /// Every object still in the segments (not freed), found from their headers (blocking). A
    /// segment's torn tail (a crash in the middle of a write) ends its listing.
    pub fn list(&self) -> Result<Vec<Packed>, BlobError> {
        let mut found = Vec::new();
        for segment in self.segments()? {
            let file = std::fs::File::open(self.segment_path(segment)).map_err(BlobError::io("opening a pack segment"))?;
            let mut at = 0u64;
            loop {
                let data = match rustix::fs::seek(&file, rustix::fs::SeekFrom::Data(at)) {
                    Ok(d) => d,
                    Err(rustix::io::Errno::NXIO) => break,
                    Err(e) => return Err(BlobError::Io { step: "listing a pack segment", source: e.into() }),
                };
                // Holes are whole blocks: data starts on a block, where an object's header is.
                let offset = data / self.align * self.align;
                let mut header = [0u8; HEADER as usize];
                if file.read_exact_at(&mut header, offset).is_err() || &header[..8] != MAGIC {
                    break;
                }
                let len = u64::from_le_bytes(header[8..].try_into().unwrap_or_default());
                if len == 0 {
                    break;
                }
                found.push(Packed { segment, offset, len });
                at = offset + self.span(len);
            }
        }
        Ok(found)
    }
}

/// Where objects start in the segments under `dir`: on the filesystem's blocks, 4 KiB at least.
fn alignment(dir: &Path) -> u64 {
    std::fs::metadata(dir).map(|m| std::os::unix::fs::MetadataExt::blksize(&m)).unwrap_or(4096).max(4096)
}

fn punch(file: &std::fs::File, offset: u64, len: u64) -> std::io::Result<()> {
    use rustix::fs::FallocateFlags;
    rustix::fs::fallocate(file, FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE, offset, len).map_err(Into::into)
}

fn sync_dir(dir: &Path) -> Result<(), BlobError> {
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(BlobError::io("syncing the packs directory"))
}

/// Two blocks written, the first punched: the hole must be reported where it is.
fn probe(dir: &Path, align: u64) -> std::io::Result<()> {
    let path = dir.join(format!("probe-{}", crate::new_key()));
    let outcome = (|| {
        let file = std::fs::OpenOptions::new().read(true).write(true).create_new(true).open(&path)?;
        let block = vec![1u8; usize::try_from(align).unwrap_or(4096)];
        file.write_all_at(&block, 0)?;
        file.write_all_at(&block, align)?;
        punch(&file, 0, align)?;
        let data = rustix::fs::seek(&file, rustix::fs::SeekFrom::Data(0))?;
        if data == align {
            Ok(())
        } else {
            Err(std::io::Error::other("a punched hole is not reported by SEEK_DATA"))
        }
    })();
    let _ = std::fs::remove_file(&path);
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_strangers_are_refused() {
        let p = Packed { segment: 7, offset: 4096 * 3, len: 9000 };
        assert_eq!(Packed::parse(&p.key()), Some(p));
        assert_eq!(p.key().len(), 27);
        // A length no packed object has (1 MiB, 4 GiB - 1) is not a key of ours.
        assert_eq!(Packed::parse(&Packed { len: MAX_LEN, ..p }.key()), None);
        assert_eq!(Packed::parse("p000000070000003000ffffffff"), None);
        for bad in [
            "",
            "p",
            "P0000000700000030000002328",
            "p0000000700000030000002328x",
            "p000000070000003000000232G",
            "p00000007000000300000000000",
        ] {
            assert_eq!(Packed::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn objects_are_aligned_appended_and_freed_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let packs = Packs::open(dir.path()).expect("open");
        if !packs.packing {
            eprintln!("SKIPPED LOUDLY: the temporary directory's filesystem does not punch holes");
            return;
        }
        let a = packs.append(&[1u8; 5000]).expect("a");
        let b = packs.append(&[2u8; 10]).expect("b");
        let c = packs.append(&[3u8; 4096 - HEADER as usize]).expect("c: exactly one block");
        let d = packs.append(&[4u8; 1]).expect("d");
        assert_eq!((a.segment, a.offset, b.segment), (b.segment, 0, a.segment));
        assert_eq!(b.offset % packs.align, 0);
        assert!(b.offset >= a.len + HEADER);
        assert_eq!(d.offset, c.offset + packs.align);
        assert_eq!(packs.list().expect("list"), vec![a, b, c, d]);
        assert_eq!(packs.read(c, &c.key(), 4000, 80).expect("c, ranged"), vec![3u8; 80]);
        packs.delete(a, &a.key()).expect("delete a");
        packs.delete(c, &c.key()).expect("delete c");
        assert_eq!(packs.list().expect("list"), vec![b, d]);
        assert!(matches!(packs.read(a, &a.key(), 0, a.len), Err(BlobError::NotFound { .. })));
        assert!(matches!(packs.delete(a, &a.key()), Err(BlobError::NotFound { .. })));
        assert_eq!(packs.read(b, &b.key(), 0, b.len).expect("b intact"), vec![2u8; 10]);
        // A new process starts a segment of its own.
        let again = Packs::open(dir.path()).expect("open");
        let e = again.append(b"e").expect("e");
        assert_eq!(e.segment, a.segment + 1);
        assert_eq!(again.list().expect("list"), vec![b, d, e]);
    }
}
