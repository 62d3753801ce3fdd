//! vna-loadtest.
fn main() {}
