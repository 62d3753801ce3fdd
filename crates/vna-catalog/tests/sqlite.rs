//! The catalog conformance suite against SQLite, one temporary database file per case.

use vna_catalog::conformance::{new_instance, store};
use vna_catalog::{Catalog, SqliteCatalog};

async fn sqlite() -> Option<(SqliteCatalog, tempfile::TempDir)> {
    let dir = tempfile::tempdir().expect("temp dir");
    let catalog = SqliteCatalog::open(&dir.path().join("catalog.sqlite")).await.expect("open sqlite catalog");
    Some((catalog, dir))
}

vna_catalog::catalog_conformance_tests!(sqlite);

#[tokio::test]
async fn reopening_keeps_data_and_reruns_no_migration() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("catalog.sqlite");
    let n = new_instance("1.2.3.1", "1.2.3.1.1", "1.2.3.1.1.1");
    {
        let c = SqliteCatalog::open(&path).await.expect("open");
        store(&c, &n).await;
        c.close().await;
    }
    let c = SqliteCatalog::open(&path).await.expect("reopen");
    assert_eq!(c.count_instances().await.expect("count"), 1);
    assert!(c.current_instance(&n.instance.sop_uid, &vna_catalog::Visibility::ALL).await.expect("read").is_some());
}

#[tokio::test]
async fn in_memory_catalog_works() {
    let c = SqliteCatalog::open_in_memory().await.expect("open in memory");
    store(&c, &new_instance("1.2.3.1", "1.2.3.1.1", "1.2.3.1.1.1")).await;
    assert_eq!(c.count_instances().await.expect("count"), 1);
}
