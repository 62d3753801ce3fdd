//! The vna composition root.
