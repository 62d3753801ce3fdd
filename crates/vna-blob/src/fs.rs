//! Filesystem blob store: `objects/ab/cd/<key>` under a root directory, written to `tmp/`
//! first, fsynced, renamed into place, and the directory fsynced, so a committed object
//! survives a crash or power loss and a half-written one is never visible. Objects under
//! 1 MiB without a retention are packed instead into append-only segments with one shared
//! flush ([`crate::pack`]).
//!
//! Retention and legal hold are emulated ([`crate::lockfile`]): the archive refuses to delete a
//! protected object, but the filesystem does not, unlike S3 Object Lock.

use crate::{
    lockfile, new_key,
    pack::{Packed, Packs},
    retention_change_allowed, BlobError, BlobRef, BlobStore, BlobWriter, ByteStream, CheckItem, DefaultRetention, Flush, Locking,
    Protection, Range, Retention, StoredBlob,
};
use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use std::path::{Path, PathBuf};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

const READ_CHUNK: usize = 256 * 1024;

/// Every process that opens a store holds `store.lock` shared for as long as it has the store
/// open (an advisory `flock`, released by the kernel even when the process is killed). Only a
/// process that gets it exclusively — nobody else has the store open — cleans `tmp/`, then
/// shares it.
#[derive(Debug)]
pub struct StoreLock {
    file: std::fs::File,
}

impl StoreLock {
    /// Takes the lock: exclusively when nobody else holds it (`true`: this process is alone and
    /// must call [`StoreLock::share`] after cleaning up), else shared (`false`).
    pub fn take(path: &Path) -> Result<(StoreLock, bool), BlobError> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)
            .map_err(BlobError::io("opening the store lock"))?;
        match file.try_lock() {
            Ok(()) => Ok((StoreLock { file }, true)),
            Err(std::fs::TryLockError::WouldBlock) => {
                // Held shared by others (or exclusively for an instant, while one cleans up).
                file.lock_shared().map_err(BlobError::io("locking the store shared"))?;
                Ok((StoreLock { file }, false))
            }
            Err(std::fs::TryLockError::Error(e)) => Err(BlobError::Io { step: "locking the store", source: e }),
        }
    }

    /// From exclusive to shared, so that later processes can open the store too.
    pub fn share(&self) -> Result<(), BlobError> {
        self.file.lock_shared().map_err(BlobError::io("sharing the store lock"))
    }
}

#[derive(Debug, Clone)]
pub struct FsBlobStore {
    root: PathBuf,
    default_retention: Option<DefaultRetention>,
    /// Blob directories made by this process whose parents are not synced yet (see
    /// `ensure_durable_dir`).
    new_dirs: NewDirs,
    /// Small objects' segments.
    packs: std::sync::Arc<Packs>,
    /// This process's hold on the store (see [`StoreLock`]), released when the last clone goes.
    _lock: std::sync::Arc<StoreLock>,
}

/// Where an object is: a file of its own, or a range of a pack segment.
enum Located {
    File(PathBuf),
    Packed(Packed),
}

impl FsBlobStore {
    /// Opens (creating if needed) a store under `root`. When no other process has it open,
    /// temporary files left by writes that never committed (never acknowledged) are removed;
    /// when another one has (a server beside `vna verify` or `vna import`), they may be that
    /// process's writes in progress and are left alone.
    pub async fn open(root: impl AsRef<Path>) -> Result<Self, BlobError> {
        let root = root.as_ref().to_path_buf();
        tokio::fs::create_dir_all(root.join("objects")).await.map_err(BlobError::io("creating the objects directory"))?;
        tokio::fs::create_dir_all(root.join("tmp")).await.map_err(BlobError::io("creating the tmp directory"))?;
        // The 256 first-level directories exist from the start, made durable by one fsync of
        // `objects/` at each open (also of those an earlier process made and died before
        // syncing), so a commit never has to sync `objects/` itself.
        let objects = root.join("objects");
        tokio::task::spawn_blocking(move || {
            for b in 0..=255u8 {
                let d = objects.join(format!("{b:02x}"));
                if !d.is_dir() {
                    std::fs::create_dir(&d).or_else(|e| if e.kind() == std::io::ErrorKind::AlreadyExists { Ok(()) } else { Err(e) })?;
                }
            }
            std::fs::File::open(&objects)?.sync_all()
        })
        .await
        .map_err(|_| BlobError::Unavailable { step: "creating the object directories" })?
        .map_err(BlobError::io("creating the object directories"))?;
        let packs_root = root.clone();
        let packs = tokio::task::spawn_blocking(move || Packs::open(&packs_root))
            .await
            .map_err(|_| BlobError::Unavailable { step: "opening the pack segments" })??;
        let lock_root = root.clone();
        let (lock, alone) = tokio::task::spawn_blocking(move || StoreLock::take(&lock_root.join("store.lock")))
            .await
            .map_err(|_| BlobError::Unavailable { step: "locking the store" })??;
        if alone {
            let mut leftovers = tokio::fs::read_dir(root.join("tmp")).await.map_err(BlobError::io("listing tmp"))?;
            let mut removed = 0usize;
            while let Some(entry) = leftovers.next_entry().await.map_err(BlobError::io("listing tmp"))? {
                if tokio::fs::remove_file(entry.path()).await.is_ok() {
                    removed += 1;
                }
            }
            if removed > 0 {
                tracing::info!(removed, "removed uncommitted temporary blobs");
            }
            lock.share()?;
        } else {
            tracing::info!("another process has this blob store open: its temporary files are left to it");
        }
        Ok(FsBlobStore {
            root,
            default_retention: None,
            new_dirs: Default::default(),
            packs: std::sync::Arc::new(packs),
            _lock: std::sync::Arc::new(lock),
        })
    }

    /// Every object committed from now on gets this retention (emulated).
    pub fn with_default_retention(mut self, retention: Option<DefaultRetention>) -> Self {
        self.default_retention = retention;
        self
    }

    /// Reads the lock file of an existing object, lets `change` edit it, writes it back durably.
    async fn update_lock(
        &self,
        blob: BlobRef<'_>,
        change: impl FnOnce(&mut Protection) -> Result<(), BlobError> + Send + 'static,
    ) -> Result<(), BlobError> {
        let at = self.existing(blob)?;
        let (key, packs) = (blob.key.to_owned(), self.packs.clone());
        blocking(move || {
            let mut p = read_protection(&at, &key, &packs)?;
            change(&mut p)?;
            lockfile::write(&lock_path_of(&at, &key, &packs), &p)
        })
        .await
    }

    /// Where the current (only) version is; a version id names nothing here.
    fn existing(&self, blob: BlobRef<'_>) -> Result<Located, BlobError> {
        if blob.version_id.is_some() {
            return Err(BlobError::NotFound { key: blob.key.to_owned() });
        }
        if let Some(p) = Packed::parse(blob.key) {
            return Ok(Located::Packed(p));
        }
        self.path_of(blob.key).map(Located::File)
    }

    fn path_of(&self, key: &str) -> Result<PathBuf, BlobError> {
        // Keys are ours: 32 lower-case hex digits. Anything else never touches the filesystem.
        if key.len() != 32 || !key.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) {
            return Err(BlobError::BadKey { key: key.chars().take(40).collect() });
        }
        Ok(self.root.join("objects").join(&key[0..2]).join(&key[2..4]).join(key))
    }
}

#[async_trait]
impl BlobStore for FsBlobStore {
    async fn create(&self) -> Result<Box<dyn BlobWriter>, BlobError> {
        let key = new_key();
        let tmp = self.root.join("tmp").join(format!("{key}.part"));
        let dest = self.path_of(&key)?;
        let (retention, new_dirs, packs) = (self.default_retention, self.new_dirs.clone(), self.packs.clone());
        Ok(Box::new(FsWriter {
            key,
            tmp,
            dest,
            file: None,
            buf: Vec::new(),
            size: 0,
            committed: false,
            retention,
            lock: None,
            new_dirs,
            packs,
        }))
    }

    async fn read(&self, blob: BlobRef<'_>, range: Option<Range>) -> Result<ByteStream, BlobError> {
        let key = blob.key;
        let path = match self.existing(blob)? {
            Located::File(path) => path,
            Located::Packed(p) => {
                let (offset, length) = match range {
                    Some(r) if r.offset.checked_add(r.length).is_none_or(|end| end > p.len) => {
                        return Err(BlobError::RangeOutside { offset: r.offset, length: r.length, size: p.len })
                    }
                    Some(r) => (r.offset, r.length),
                    None => (0, p.len),
                };
                let (packs, key) = (self.packs.clone(), key.to_owned());
                let bytes = blocking(move || packs.read(p, &key, offset, length)).await?;
                return Ok(futures::stream::once(async move { Ok(Bytes::from(bytes)) }).boxed());
            }
        };
        let mut file = tokio::fs::File::open(&path).await.map_err(|e| not_found_or(e, key, "opening a blob"))?;
        let size = file.metadata().await.map_err(BlobError::io("reading blob metadata"))?.len();
        let (offset, length) = match range {
            Some(r) => {
                if r.offset.checked_add(r.length).is_none_or(|end| end > size) {
                    return Err(BlobError::RangeOutside { offset: r.offset, length: r.length, size });
                }
                (r.offset, r.length)
            }
            None => (0, size),
        };
        if offset > 0 {
            file.seek(std::io::SeekFrom::Start(offset)).await.map_err(BlobError::io("seeking in a blob"))?;
        }
        let reader = file.take(length);
        let stream = tokio_util::io::ReaderStream::with_capacity(reader, READ_CHUNK.min(length.max(1) as usize));
        Ok(stream.map(|r| r.map_err(BlobError::io("reading a blob"))).boxed())
    }

    async fn size(&self, blob: BlobRef<'_>) -> Result<u64, BlobError> {
        let path = match self.existing(blob)? {
            Located::File(path) => path,
            Located::Packed(p) => {
                let (packs, key) = (self.packs.clone(), blob.key.to_owned());
                blocking(move || packs.check_exists(p, &key)).await?;
                return Ok(p.len);
            }
        };
        let meta = tokio::fs::metadata(&path).await.map_err(|e| not_found_or(e, blob.key, "reading blob metadata"))?;
        Ok(meta.len())
    }

    async fn delete(&self, blob: BlobRef<'_>) -> Result<(), BlobError> {
        let at = self.existing(blob)?;
        let (key, packs) = (blob.key.to_owned(), self.packs.clone());
        blocking(move || {
            if read_protection(&at, &key, &packs)?.forbids_delete(std::time::SystemTime::now()) {
                return Err(BlobError::Locked { key });
            }
            match &at {
                Located::File(path) => std::fs::remove_file(path).map_err(|e| not_found_or(e, &key, "deleting a blob"))?,
                Located::Packed(p) => packs.delete(*p, &key)?,
            }
            match std::fs::remove_file(lock_path_of(&at, &key, &packs)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(BlobError::Io { step: "deleting a lock file", source: e }),
                _ => Ok(()),
            }
        })
        .await
    }

    async fn protection(&self, blob: BlobRef<'_>) -> Result<Protection, BlobError> {
        let at = self.existing(blob)?;
        let (key, packs) = (blob.key.to_owned(), self.packs.clone());
        blocking(move || read_protection(&at, &key, &packs)).await
    }

    async fn set_retention(&self, blob: BlobRef<'_>, retention: Retention) -> Result<(), BlobError> {
        let key = blob.key.to_owned();
        self.update_lock(blob, move |p| {
            if !retention_change_allowed(p.retention, retention, std::time::SystemTime::now()) {
                return Err(BlobError::Locked { key });
            }
            p.retention = Some(retention);
            Ok(())
        })
        .await
    }

    async fn set_legal_hold(&self, blob: BlobRef<'_>, on: bool) -> Result<(), BlobError> {
        self.update_lock(blob, move |p| {
            p.legal_hold = on;
            Ok(())
        })
        .await
    }

    fn locking(&self) -> Locking {
        Locking::Emulated
    }

    async fn check(&self) -> Vec<CheckItem> {
        let root = self.root.clone();
        let probe = blocking(move || {
            let path = root.join("tmp").join(format!("check-{}.part", new_key()));
            let outcome = std::fs::File::create(&path).and_then(|mut f| {
                use std::io::Write;
                f.write_all(b"vna storage check")?;
                f.sync_all()
            });
            let _ = std::fs::remove_file(&path);
            outcome.map_err(BlobError::io("writing a probe file"))
        })
        .await;
        let mut items = vec![CheckItem {
            what: "directory writable",
            ok: probe.is_ok(),
            detail: match probe {
                Ok(()) => format!("{} (create, write, fsync)", self.root.display()),
                Err(e) => format!("{}: {e}", self.root.display()),
            },
        }];
        items.push(CheckItem {
            what: "small objects packed",
            ok: true,
            detail: if self.packs.packing {
                "objects under 1 MiB without a retention share segment files under packs/ (one flush per group of commits)".to_owned()
            } else {
                "off: the filesystem does not punch holes; every object is a file".to_owned()
            },
        });
        items.push(CheckItem {
            what: "object lock",
            ok: true,
            detail: match self.default_retention {
                Some(r) => format!("emulated by the archive (weaker than S3 Object Lock): {} for {} days", r.mode.as_str(), r.days),
                None => "emulated by the archive (weaker than S3 Object Lock); no default retention".to_owned(),
            },
        });
        items
    }
}

/// The keys of the packed objects under `root` (a filesystem store's root) not deleted, read
/// from the segments' own headers (blocking; for tests and sweeps: objects committed by a
/// running process may appear at any moment).
pub fn packed_keys(root: &Path) -> Result<Vec<String>, BlobError> {
    Ok(Packs::reader(root).list()?.into_iter().map(Packed::key).collect())
}

fn lock_path(object: &Path) -> PathBuf {
    object.with_extension("lock")
}

/// Where the emulated lock of an object is kept: beside its file, or under `packs/locks/`.
fn lock_path_of(at: &Located, key: &str, packs: &Packs) -> PathBuf {
    match at {
        Located::File(path) => lock_path(path),
        Located::Packed(_) => packs.lock_path(key),
    }
}

/// The protection of an object that must exist (blocking).
fn read_protection(at: &Located, key: &str, packs: &Packs) -> Result<Protection, BlobError> {
    match at {
        Located::File(path) => {
            std::fs::metadata(path).map_err(|e| not_found_or(e, key, "reading blob metadata"))?;
        }
        Located::Packed(p) => packs.check_exists(*p, key)?,
    }
    lockfile::read(&lock_path_of(at, key, packs))
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, BlobError> + Send + 'static) -> Result<T, BlobError> {
    tokio::task::spawn_blocking(f).await.map_err(blocking_gone("running a file operation"))?
}

pub(crate) fn not_found_or(e: std::io::Error, key: &str, step: &'static str) -> BlobError {
    if e.kind() == std::io::ErrorKind::NotFound {
        BlobError::NotFound { key: key.to_owned() }
    } else {
        BlobError::Io { step, source: e }
    }
}

/// Bytes are gathered in memory up to `FLUSH_AT` and written by the blocking pool in one call,
/// which creates the temporary file the first time; the commit (last write, fsync, rename,
/// directory fsync) is a single blocking call too, so an object under `FLUSH_AT` costs one
/// hand-off in all. Each `tokio::fs` operation is a thread hand-off, and profiling ingest
/// showed those hand-offs, not the disk, among the largest costs per small object.
struct FsWriter {
    key: String,
    tmp: PathBuf,
    dest: PathBuf,
    /// `None` before the first write out, and while a flush or the commit holds it.
    file: Option<std::fs::File>,
    buf: Vec<u8>,
    size: u64,
    committed: bool,
    retention: Option<DefaultRetention>,
    /// A retention asked for this object (`lock_on_commit`).
    lock: Option<Retention>,
    new_dirs: NewDirs,
    packs: std::sync::Arc<Packs>,
}

/// Largest amount of an object held in memory before it is written out.
pub(crate) const FLUSH_AT: usize = 1 << 20;

fn write_out(file: Option<std::fs::File>, tmp: &Path, buf: &[u8]) -> Result<std::fs::File, BlobError> {
    use std::io::Write;
    let mut file = match file {
        Some(f) => f,
        None => std::fs::OpenOptions::new().write(true).create_new(true).open(tmp).map_err(BlobError::io("creating a temporary blob"))?,
    };
    file.write_all(buf).map_err(BlobError::io("writing a blob"))?;
    Ok(file)
}

type NewDirs = std::sync::Arc<std::sync::Mutex<std::collections::HashSet<PathBuf>>>;

/// Makes `objects/ab/cd` exist durably: `objects/ab` first, then `cd` in it, each directory
/// created only if missing and then made durable by an fsync of its parent (without that, a
/// power loss could drop the new directory, and the object in it, after the object's own
/// directory was synced). So a new `cd` under an existing `ab` costs one directory fsync, and
/// `objects/` is synced only when `ab` is new. A directory made by a concurrent commit counts
/// as present only once that commit has synced its parent (`pending`); until then this commit
/// syncs it too (concurrent fsyncs are harmless). A directory found at startup survived, so it
/// is durable.
fn ensure_durable_dir(dir: &Path, pending: &NewDirs) -> Result<(), BlobError> {
    let parent = dir.parent().ok_or(BlobError::Unavailable { step: "resolving the blob directory" })?;
    ensure_durable_one(parent, pending)?;
    ensure_durable_one(dir, pending)
}

/// One level of [`ensure_durable_dir`]: `dir` created if missing, its parent fsynced if it was
/// (or if another commit made it and has not synced its parent yet).
fn ensure_durable_one(dir: &Path, pending: &NewDirs) -> Result<(), BlobError> {
    let pending_set = || pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    {
        let mut set = pending_set();
        if !set.contains(dir) {
            if dir.is_dir() {
                return Ok(());
            }
            set.insert(dir.to_path_buf());
        }
    }
    let made = (|| {
        match std::fs::create_dir(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(BlobError::io("creating a blob directory")(e)),
        }
        let parent = dir.parent().ok_or(BlobError::Unavailable { step: "resolving the blob directory" })?;
        std::fs::File::open(parent).and_then(|d| d.sync_all()).map_err(BlobError::io("syncing a blob directory"))
    })();
    if made.is_ok() {
        pending_set().remove(dir);
    }
    made
}

fn blocking_gone(step: &'static str) -> impl FnOnce(tokio::task::JoinError) -> BlobError {
    move |_| BlobError::Unavailable { step }
}

#[async_trait]
impl BlobWriter for FsWriter {
    async fn write(&mut self, chunk: Bytes) -> Result<(), BlobError> {
        if self.committed {
            return Err(BlobError::Unavailable { step: "writing after commit" });
        }
        self.buf.extend_from_slice(&chunk);
        self.size += chunk.len() as u64;
        if self.buf.len() >= FLUSH_AT {
            let mut buf = std::mem::take(&mut self.buf);
            let file = self.file.take();
            let tmp = self.tmp.clone();
            let (file, buf) = tokio::task::spawn_blocking(move || {
                let file = write_out(file, &tmp, &buf)?;
                buf.clear();
                Ok::<_, BlobError>((file, buf))
            })
            .await
            .map_err(blocking_gone("writing a blob"))??;
            self.file = Some(file);
            self.buf = buf;
        }
        Ok(())
    }

    async fn commit(self: Box<Self>, sha256: &str) -> Result<StoredBlob, BlobError> {
        let (blob, flush) = self.commit_flushing(sha256).await?;
        flush.wait().await?;
        Ok(blob)
    }

    async fn commit_flushing(self: Box<Self>, _sha256: &str) -> Result<(StoredBlob, Flush), BlobError> {
        if self.packable() {
            return self.pack().await;
        }
        Ok((self.commit_file().await?, Flush::done()))
    }

    async fn abort(mut self: Box<Self>) {
        self.committed = true;
        self.file = None;
        let _ = tokio::fs::remove_file(&self.tmp).await;
    }

    /// Emulated, like the tier's default retention: the lock file goes down before the object.
    fn lock_on_commit(&mut self, retention: Retention) -> Result<(), BlobError> {
        self.lock = Retention::strongest(self.lock, Some(retention));
        Ok(())
    }
}

impl FsWriter {
    /// Whole in memory, unlocked, not committed yet, on a filesystem that packs: the object goes
    /// into a pack segment (see `crate::pack`).
    fn packable(&self) -> bool {
        !self.committed
            && self.file.is_none()
            && self.retention.is_none()
            && self.lock.is_none()
            && !self.buf.is_empty()
            && self.packs.packing
    }

    /// Appends the object to this process's segment; its flush, shared with every object of
    /// the segment waiting at that moment, goes on after this returns.
    async fn pack(mut self: Box<Self>) -> Result<(StoredBlob, Flush), BlobError> {
        self.committed = true;
        let buf = std::mem::take(&mut self.buf);
        let packs = self.packs.clone();
        let (written_tx, written) = tokio::sync::oneshot::channel();
        let (end_tx, end) = tokio::sync::oneshot::channel();
        // One blocking task writes, answers, then flushes.
        tokio::task::spawn_blocking(move || match packs.write(&buf) {
            Ok((packed, unflushed)) => {
                let _ = written_tx.send(Ok(packed));
                let _ = end_tx.send(unflushed.flush());
            }
            Err(e) => {
                let _ = written_tx.send(Err(e));
            }
        });
        let packed = written.await.unwrap_or(Err(BlobError::Unavailable { step: "writing to a pack segment (its task ended)" }))?;
        Ok((StoredBlob { key: packed.key(), version_id: None, size: self.size }, Flush::running(end)))
    }

    /// A file of its own: data flushed, renamed into place, its directory flushed.
    async fn commit_file(mut self: Box<Self>) -> Result<StoredBlob, BlobError> {
        if self.committed {
            return Err(BlobError::Unavailable { step: "committing twice" });
        }
        self.committed = true;
        let buf = std::mem::take(&mut self.buf);
        let file = self.file.take();
        let (tmp, dest) = (self.tmp.clone(), self.dest.clone());
        let retention = Retention::strongest(self.retention.map(|r| r.from(std::time::SystemTime::now())), self.lock);
        let new_dirs = self.new_dirs.clone();
        let result = tokio::task::spawn_blocking(move || {
            let outcome = (|| {
                let file = write_out(file, &tmp, &buf)?;
                file.sync_all().map_err(BlobError::io("syncing a blob"))?;
                drop(file);
                let dir = dest.parent().ok_or(BlobError::Unavailable { step: "resolving the blob directory" })?;
                ensure_durable_dir(dir, &new_dirs)?;
                // The lock goes down first: an object is never visible without its protection.
                if let Some(retention) = retention {
                    lockfile::write(&lock_path(&dest), &Protection { retention: Some(retention), legal_hold: false })?;
                }
                std::fs::rename(&tmp, &dest).map_err(BlobError::io("renaming a blob into place"))?;
                std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(BlobError::io("syncing a blob directory"))
            })();
            if outcome.is_err() {
                let _ = std::fs::remove_file(&tmp);
                if retention.is_some() && !dest.exists() {
                    let _ = std::fs::remove_file(lock_path(&dest));
                }
            }
            outcome
        })
        .await
        .map_err(blocking_gone("committing a blob"))?;
        result?;
        Ok(StoredBlob { key: self.key.clone(), version_id: None, size: self.size })
    }
}
