//! The behaviour every blob store backend must show. Backends call
//! [`blob_store_conformance!`](crate::blob_store_conformance) with a constructor; each case
//! becomes its own test so a failure names the case.

use crate::{read_all, BlobError, BlobStore, Range};
use bytes::Bytes;

pub async fn round_trip(store: &dyn BlobStore) {
    let mut w = store.create().await.expect("create");
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    for chunk in data.chunks(70_000) {
        w.write(Bytes::copy_from_slice(chunk)).await.expect("write");
    }
    let blob = w.commit().await.expect("commit");
    assert_eq!(blob.size, data.len() as u64);
    assert_eq!(store.size(&blob.key).await.expect("size"), data.len() as u64);
    assert_eq!(read_all(store, &blob.key, None).await.expect("read"), data);
}

pub async fn ranged_reads(store: &dyn BlobStore) {
    let mut w = store.create().await.expect("create");
    let data: Vec<u8> = (0..10_000u32).map(|i| (i % 253) as u8).collect();
    w.write(Bytes::from(data.clone())).await.expect("write");
    let blob = w.commit().await.expect("commit");
    let got = read_all(store, &blob.key, Some(Range { offset: 1234, length: 567 })).await.expect("range");
    assert_eq!(got, &data[1234..1234 + 567]);
    let tail = read_all(store, &blob.key, Some(Range { offset: 9_990, length: 10 })).await.expect("tail");
    assert_eq!(tail, &data[9_990..]);
    let err = store.read(&blob.key, Some(Range { offset: 9_995, length: 10 })).await.err().expect("past the end");
    assert!(matches!(err, BlobError::RangeOutside { .. }), "{err:?}");
}

pub async fn keys_are_fresh_and_opaque(store: &dyn BlobStore) {
    let mut keys = std::collections::HashSet::new();
    for _ in 0..20 {
        let mut w = store.create().await.expect("create");
        w.write(Bytes::from_static(b"same bytes")).await.expect("write");
        let blob = w.commit().await.expect("commit");
        assert!(blob.key.bytes().all(|b| b.is_ascii_alphanumeric()), "opaque key");
        assert!(keys.insert(blob.key), "key reused");
    }
}

pub async fn aborted_and_missing_objects(store: &dyn BlobStore) {
    let mut w = store.create().await.expect("create");
    w.write(Bytes::from_static(b"never committed")).await.expect("write");
    w.abort().await;
    let missing = "0123456789abcdef0123456789abcdef";
    assert!(matches!(store.read(missing, None).await.err(), Some(BlobError::NotFound { .. })));
    assert!(matches!(store.delete(missing).await.err(), Some(BlobError::NotFound { .. })));
}

pub async fn delete_removes(store: &dyn BlobStore) {
    let mut w = store.create().await.expect("create");
    w.write(Bytes::from_static(b"to delete")).await.expect("write");
    let blob = w.commit().await.expect("commit");
    store.delete(&blob.key).await.expect("delete");
    assert!(matches!(store.size(&blob.key).await.err(), Some(BlobError::NotFound { .. })));
}

pub async fn empty_object(store: &dyn BlobStore) {
    let w = store.create().await.expect("create");
    let blob = w.commit().await.expect("commit");
    assert_eq!(blob.size, 0);
    assert!(read_all(store, &blob.key, None).await.expect("read").is_empty());
}

/// Generates one `#[tokio::test]` per conformance case for the store `$make` builds
/// (an async expression evaluating to something that derefs to `dyn BlobStore`).
#[macro_export]
macro_rules! blob_store_conformance {
    ($make:expr) => {
        $crate::blob_store_conformance!(@case $make, round_trip, ranged_reads, keys_are_fresh_and_opaque, aborted_and_missing_objects, delete_removes, empty_object);
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
