//! The behaviour every blob store backend must show. Backends call
//! [`blob_store_conformance!`](crate::blob_store_conformance) with a constructor; each case
//! becomes its own test so a failure names the case.

use crate::{read_all, BlobError, BlobRef, BlobStore, LockMode, Range, Retention};
use bytes::Bytes;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub async fn round_trip(store: &dyn BlobStore) {
    let mut w = store.create().await.expect("create");
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    for chunk in data.chunks(70_000) {
        w.write(Bytes::copy_from_slice(chunk)).await.expect("write");
    }
    let blob = w.commit(&sha256_hex(&data)).await.expect("commit");
    assert_eq!(blob.size, data.len() as u64);
    assert_eq!(store.size((&blob).into()).await.expect("size"), data.len() as u64);
    assert_eq!(read_all(store, (&blob).into(), None).await.expect("read"), data);
    assert_eq!(read_all(store, BlobRef::current(&blob.key), None).await.expect("read current"), data);
}

pub async fn ranged_reads(store: &dyn BlobStore) {
    let mut w = store.create().await.expect("create");
    let data: Vec<u8> = (0..10_000u32).map(|i| (i % 253) as u8).collect();
    w.write(Bytes::from(data.clone())).await.expect("write");
    let blob = w.commit(&sha256_hex(&data)).await.expect("commit");
    let at = |offset, length| Some(Range { offset, length });
    let got = read_all(store, (&blob).into(), at(1234, 567)).await.expect("range");
    assert_eq!(got, &data[1234..1234 + 567]);
    let tail = read_all(store, (&blob).into(), at(9_990, 10)).await.expect("tail");
    assert_eq!(tail, &data[9_990..]);
    let first = read_all(store, (&blob).into(), at(0, 1)).await.expect("first byte");
    assert_eq!(first, &data[..1]);
    let none = read_all(store, (&blob).into(), at(500, 0)).await.expect("empty range");
    assert!(none.is_empty());
    for (offset, length) in [(9_995, 10), (10_000, 1), (20_000, 5)] {
        let err = store.read((&blob).into(), at(offset, length)).await.err().expect("past the end");
        assert!(matches!(err, BlobError::RangeOutside { size: 10_000, .. }), "{offset}+{length}: {err:?}");
    }
}

pub async fn keys_are_fresh_and_opaque(store: &dyn BlobStore) {
    let mut keys = std::collections::HashSet::new();
    for _ in 0..20 {
        let mut w = store.create().await.expect("create");
        w.write(Bytes::from_static(b"same bytes")).await.expect("write");
        let blob = w.commit(&sha256_hex(b"same bytes")).await.expect("commit");
        assert!(blob.key.bytes().all(|b| b.is_ascii_alphanumeric()), "opaque key");
        assert!(keys.insert(blob.key), "key reused");
    }
}

pub async fn aborted_and_missing_objects(store: &dyn BlobStore) {
    let mut w = store.create().await.expect("create");
    w.write(Bytes::from_static(b"never committed")).await.expect("write");
    w.abort().await;
    let missing = BlobRef::current("0123456789abcdef0123456789abcdef");
    assert!(matches!(store.read(missing, None).await.err(), Some(BlobError::NotFound { .. })));
    assert!(matches!(store.size(missing).await.err(), Some(BlobError::NotFound { .. })));
    assert!(matches!(store.delete(missing).await.err(), Some(BlobError::NotFound { .. })));
    assert!(matches!(
        store.read(BlobRef::current("../../etc/passwd"), None).await.err(),
        Some(BlobError::BadKey { .. } | BlobError::NotFound { .. })
    ));
}

pub async fn delete_removes(store: &dyn BlobStore) {
    let mut w = store.create().await.expect("create");
    w.write(Bytes::from_static(b"to delete")).await.expect("write");
    let blob = w.commit(&sha256_hex(b"to delete")).await.expect("commit");
    store.delete((&blob).into()).await.expect("delete");
    assert!(matches!(store.size((&blob).into()).await.err(), Some(BlobError::NotFound { .. })));
    assert!(matches!(store.size(BlobRef::current(&blob.key)).await.err(), Some(BlobError::NotFound { .. })));
    assert!(matches!(store.read((&blob).into(), None).await.err(), Some(BlobError::NotFound { .. })));
}

pub async fn empty_object(store: &dyn BlobStore) {
    let w = store.create().await.expect("create");
    let blob = w.commit(&sha256_hex(b"")).await.expect("commit");
    assert_eq!(blob.size, 0);
    assert!(read_all(store, (&blob).into(), None).await.expect("read").is_empty());
}

/// An object much larger than any buffer or part: written in 1 MiB chunks, read back whole
/// and in a range that straddles chunk boundaries.
pub async fn large_object(store: &dyn BlobStore) {
    let mut w = store.create().await.expect("create");
    let chunk = |i: u32| -> Vec<u8> { (0..1u32 << 20).map(|j| ((i * 7 + j) % 251) as u8).collect() };
    let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
    let n = 23u32;
    for i in 0..n {
        let c = chunk(i);
        sha2::Digest::update(&mut hasher, &c);
        w.write(Bytes::from(c)).await.expect("write");
    }
    let blob = w.commit(&hex::encode(sha2::Digest::finalize(hasher))).await.expect("commit");
    assert_eq!(blob.size, u64::from(n) << 20);
    assert_eq!(store.size((&blob).into()).await.expect("size"), u64::from(n) << 20);
    let whole = read_all(store, (&blob).into(), None).await.expect("read");
    assert_eq!(whole.len() as u64, u64::from(n) << 20);
    for i in [0, 5, 22] {
        assert_eq!(&whole[(i as usize) << 20..((i as usize) + 1) << 20], &chunk(i)[..], "chunk {i}");
    }
    let r = Range { offset: (5 << 20) - 100, length: 200 };
    let got = read_all(store, (&blob).into(), Some(r)).await.expect("range");
    assert_eq!(got, &whole[r.offset as usize..(r.offset + r.length) as usize]);
    store.delete((&blob).into()).await.expect("delete");
}

/// Legal hold: set, read back, blocks deletion, lifted, then deletion works. Locks on a missing
/// object are `NotFound`.
pub async fn legal_hold_blocks_delete(store: &dyn BlobStore) {
    let missing = BlobRef::current("0123456789abcdef0123456789abcdef");
    assert!(matches!(store.set_legal_hold(missing, true).await, Err(BlobError::NotFound { .. })));
    assert!(matches!(store.protection(missing).await, Err(BlobError::NotFound { .. })));
    let r = Retention { mode: LockMode::Governance, retain_until: whole_seconds(SystemTime::now() + Duration::from_secs(60)) };
    assert!(matches!(store.set_retention(missing, r).await, Err(BlobError::NotFound { .. })));
    let blob = small(store, b"held").await;
    assert!(!store.protection((&blob).into()).await.expect("protection").legal_hold);
    store.set_legal_hold((&blob).into(), true).await.expect("place hold");
    assert!(store.protection((&blob).into()).await.expect("protection").legal_hold);
    let err = store.delete((&blob).into()).await.expect_err("delete under hold");
    assert!(matches!(err, BlobError::Locked { .. }), "{err:?}");
    assert_eq!(read_all(store, (&blob).into(), None).await.expect("still readable"), b"held");
    store.set_legal_hold((&blob).into(), false).await.expect("lift hold");
    assert!(!store.protection((&blob).into()).await.expect("protection").legal_hold);
    store.delete((&blob).into()).await.expect("delete after the hold is lifted");
}

/// COMPLIANCE retention: read back, blocks deletion, cannot be shortened or weakened, can be
/// extended. The object stays behind (a day) on a real store: test buckets are throw-away.
pub async fn retention_blocks_delete_and_shortening(store: &dyn BlobStore) {
    let blob = small(store, b"retained").await;
    let until = whole_seconds(SystemTime::now() + Duration::from_secs(86_400));
    let retention = Retention { mode: LockMode::Compliance, retain_until: until };
    store.set_retention((&blob).into(), retention).await.expect("set retention");
    assert_eq!(store.protection((&blob).into()).await.expect("protection").retention, Some(retention));
    let err = store.delete((&blob).into()).await.expect_err("delete under retention");
    assert!(matches!(err, BlobError::Locked { .. }), "{err:?}");
    let shorter = Retention { mode: LockMode::Compliance, retain_until: until - Duration::from_secs(3600) };
    let err = store.set_retention((&blob).into(), shorter).await.expect_err("shortening");
    assert!(matches!(err, BlobError::Locked { .. }), "{err:?}");
    let weaker = Retention { mode: LockMode::Governance, retain_until: until + Duration::from_secs(3600) };
    let err = store.set_retention((&blob).into(), weaker).await.expect_err("weakening");
    assert!(matches!(err, BlobError::Locked { .. }), "{err:?}");
    let longer = Retention { mode: LockMode::Compliance, retain_until: until + Duration::from_secs(3600) };
    store.set_retention((&blob).into(), longer).await.expect("extending");
    assert_eq!(store.protection((&blob).into()).await.expect("protection").retention, Some(longer));
    assert_eq!(read_all(store, (&blob).into(), None).await.expect("still readable"), b"retained");
}

/// A retention that has run out no longer blocks deletion.
pub async fn expired_retention_allows_delete(store: &dyn BlobStore) {
    let blob = small(store, b"expiring").await;
    let until = whole_seconds(SystemTime::now() + Duration::from_secs(2));
    store.set_retention((&blob).into(), Retention { mode: LockMode::Governance, retain_until: until }).await.expect("set retention");
    assert!(matches!(store.delete((&blob).into()).await.err(), Some(BlobError::Locked { .. })));
    while SystemTime::now() < until + Duration::from_secs(1) {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    store.delete((&blob).into()).await.expect("delete after expiry");
}

async fn small(store: &dyn BlobStore, data: &'static [u8]) -> crate::StoredBlob {
    let mut w = store.create().await.expect("create");
    w.write(Bytes::from_static(data)).await.expect("write");
    w.commit(&sha256_hex(data)).await.expect("commit")
}

fn whole_seconds(t: SystemTime) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0))
}

pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

/// Generates one `#[tokio::test]` per conformance case for the store `$make` builds
/// (an async expression evaluating to something that derefs to `dyn BlobStore`).
#[macro_export]
macro_rules! blob_store_conformance {
    ($make:expr) => {
        $crate::blob_store_conformance!(@case $make, round_trip, ranged_reads, keys_are_fresh_and_opaque, aborted_and_missing_objects, delete_removes, empty_object, large_object);
    };
    (locking $make:expr) => {
        $crate::blob_store_conformance!(@case $make, legal_hold_blocks_delete, retention_blocks_delete_and_shortening, expired_retention_allows_delete);
    };
    (@case $make:expr, $($case:ident),*) => {
        $(
            #[tokio::test]
            async fn $case() {
                let (store, _guard) = $make.await;
                $crate::conformance::$case(&store).await;
            }
        )*
    };
}
