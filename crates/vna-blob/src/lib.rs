//! Blob stores.
