//! Archive service.
