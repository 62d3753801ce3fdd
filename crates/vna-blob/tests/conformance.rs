//! Runs the blob store conformance suite against every local backend.

mod fs {
    async fn make() -> (vna_blob::fs::FsBlobStore, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        (vna_blob::fs::FsBlobStore::open(dir.path()).await.expect("open"), dir)
    }
    vna_blob::blob_store_conformance!(make());
    vna_blob::blob_store_conformance!(locking make());
}

mod memory {
    async fn make() -> (vna_blob::memory::MemoryBlobStore, ()) {
        (vna_blob::memory::MemoryBlobStore::new(), ())
    }
    vna_blob::blob_store_conformance!(make());
}

#[tokio::test]
async fn fs_leaves_nothing_visible_after_abort_or_failed_commit() {
    use vna_blob::BlobStore;
    let dir = tempfile::tempdir().expect("tempdir");
    let fs = vna_blob::fs::FsBlobStore::open(dir.path()).await.expect("open");
    let (store, faults) = vna_blob::faulty::FaultyBlobStore::new(fs);
    faults.fail_commit.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut w = store.create().await.expect("create");
    w.write(bytes::Bytes::from_static(b"x")).await.expect("write");
    assert!(w.commit(&vna_blob::conformance::sha256_hex(b"x")).await.is_err());
    let count = walk(&dir.path().join("tmp")) + walk(&dir.path().join("objects"));
    assert_eq!(count, 0, "no file may remain after a failed commit");
}

fn walk(p: &std::path::Path) -> usize {
    std::fs::read_dir(p).map(|rd| rd.flatten().map(|e| if e.path().is_dir() { walk(&e.path()) } else { 1 }).sum()).unwrap_or(0)
}

#[tokio::test]
async fn fs_abort_after_a_flush_leaves_no_temporary_file() {
    use vna_blob::BlobStore;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = vna_blob::fs::FsBlobStore::open(dir.path()).await.expect("open");
    let mut w = store.create().await.expect("create");
    // More than the in-memory threshold (1 MiB): part of the object is already on disk.
    for _ in 0..5 {
        w.write(bytes::Bytes::from(vec![7u8; 512 * 1024])).await.expect("write");
    }
    // Blob files only: store.lock (the store's open-count lock) stays beside them.
    let blobs = || walk(&dir.path().join("tmp")) + walk(&dir.path().join("objects"));
    assert_eq!(blobs(), 1, "the object in progress is in tmp/");
    w.abort().await;
    assert_eq!(blobs(), 0, "abort removes the temporary file");
}

#[tokio::test]
async fn fs_cleans_tmp_only_when_no_other_process_has_the_store_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("tmp")).expect("tmp");
    let leftover = dir.path().join("tmp").join("0123456789abcdef0123456789abcdef.part");
    std::fs::write(&leftover, b"in progress").expect("leftover");
    // Another process holding the store: its shared lock, taken through another open file.
    let (other, alone) = vna_blob::fs::StoreLock::take(&dir.path().join("store.lock")).expect("lock");
    assert!(alone);
    other.share().expect("share");
    let store = vna_blob::fs::FsBlobStore::open(dir.path()).await.expect("open beside it");
    assert!(leftover.exists(), "another process's write in progress was removed");
    drop(store);
    drop(other);
    // Alone now: leftovers of writes that never committed go.
    let _store = vna_blob::fs::FsBlobStore::open(dir.path()).await.expect("open alone");
    assert!(!leftover.exists(), "leftovers stay although nobody has the store open");
}

#[tokio::test]
async fn fs_default_retention_is_applied_at_commit() {
    use vna_blob::{BlobStore, DefaultRetention, LockMode};
    let dir = tempfile::tempdir().expect("tempdir");
    let store = vna_blob::fs::FsBlobStore::open(dir.path())
        .await
        .expect("open")
        .with_default_retention(Some(DefaultRetention { mode: LockMode::Compliance, days: 30 }));
    let mut w = store.create().await.expect("create");
    w.write(bytes::Bytes::from_static(b"kept")).await.expect("write");
    let blob = w.commit(&vna_blob::conformance::sha256_hex(b"kept")).await.expect("commit");
    let p = store.protection((&blob).into()).await.expect("protection");
    let r = p.retention.expect("retention set at commit");
    assert_eq!(r.mode, LockMode::Compliance);
    let days = r.retain_until.duration_since(std::time::SystemTime::now()).expect("in the future").as_secs() / 86_400;
    assert!((29..=30).contains(&days), "{days} days");
    assert!(matches!(store.delete((&blob).into()).await, Err(vna_blob::BlobError::Locked { .. })));
    assert_eq!(store.locking(), vna_blob::Locking::Emulated);
}
