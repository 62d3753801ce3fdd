//! Test helpers shared by the S3 tests.
pub mod proxy;
