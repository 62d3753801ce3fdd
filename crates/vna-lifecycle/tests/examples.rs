//! The example policies an administrator copies (`lifecycle-policies/`) load, have no conflict,
//! and decide what their own test cases say.

use std::path::Path;

#[test]
fn the_shipped_examples_pass_their_own_checks() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../lifecycle-policies");
    let set = vna_lifecycle::load_dir(&dir).expect("the example policies load");
    assert_eq!(set.files.len(), 4, "radiology, pathology, video, rejections");
    let report = set.check();
    assert!(report.conflicts.is_empty(), "{:?}", report.conflicts);
    let failed: Vec<_> = report.tests.iter().filter(|t| !t.failures.is_empty()).collect();
    assert!(failed.is_empty(), "{failed:#?}");
    assert!(report.tests.len() >= 9, "every example file carries its test cases");
}
