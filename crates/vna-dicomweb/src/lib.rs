//! DICOMweb.
