//! Validated DICOM unique identifiers (PS3.5 §9.1): digits and dots, at most 64 characters.
//!
//! A UID arriving from the network is never trusted as a path or key fragment; the only way to
//! get one of these types is through validation.

use std::fmt;

/// Why a string is not a valid UID. Carries no part of the input: UIDs can identify patients.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UidError {
    #[error("UID is empty")]
    Empty,
    #[error("UID is longer than 64 characters")]
    TooLong,
    #[error("UID contains a character other than digits and dots")]
    BadCharacter,
    #[error("UID has an empty component, or a leading or trailing dot")]
    EmptyComponent,
    #[error("UID component has a leading zero")]
    LeadingZero,
}

/// Checks PS3.5 §9.1 rules. Trailing NUL/space padding must be stripped by the caller.
pub fn validate(s: &str) -> Result<(), UidError> {
    if s.is_empty() {
        return Err(UidError::Empty);
    }
    if s.len() > 64 {
        return Err(UidError::TooLong);
    }
    if !s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(UidError::BadCharacter);
    }
    for component in s.split('.') {
        if component.is_empty() {
            return Err(UidError::EmptyComponent);
        }
        if component.len() > 1 && component.starts_with('0') {
            return Err(UidError::LeadingZero);
        }
    }
    Ok(())
}

macro_rules! uid_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Validates `s` (after stripping DICOM padding) and wraps it.
            pub fn new(s: &str) -> Result<Self, UidError> {
                let s = s.trim_end_matches(['\0', ' ']);
                validate(s)?;
                Ok(Self(s.to_owned()))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = UidError;
            fn from_str(s: &str) -> Result<Self, UidError> {
                Self::new(s)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::new(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

uid_type!(
    /// Study Instance UID (0020,000D).
    StudyUid
);
uid_type!(
    /// Series Instance UID (0020,000E).
    SeriesUid
);
uid_type!(
    /// SOP Instance UID (0008,0018).
    SopInstanceUid
);
uid_type!(
    /// SOP Class UID (0008,0016).
    SopClassUid
);
uid_type!(
    /// Transfer Syntax UID (0002,0010).
    TransferSyntaxUid
);

/// A new UID under the `2.25` root: a random (version 4) UUID as a decimal integer (PS3.5
/// §B.2), at most 44 characters. Carries nothing about the patient or the archive.
pub fn generate() -> String {
    format!("2.25.{}", uuid::Uuid::new_v4().as_u128())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_valid_uids() {
        assert!(StudyUid::new("1.2.840.10008.1.2.1").is_ok());
        assert_eq!(StudyUid::new("1.2.3\0").unwrap().as_str(), "1.2.3");
        assert!(StudyUid::new("0.1").is_ok());
    }

    #[test]
    fn rejects_invalid_uids() {
        assert_eq!(validate(""), Err(UidError::Empty));
        assert_eq!(validate("../../etc/passwd"), Err(UidError::BadCharacter));
        assert_eq!(validate("1.2.abc"), Err(UidError::BadCharacter));
        assert_eq!(validate("1..2"), Err(UidError::EmptyComponent));
        assert_eq!(validate(".1.2"), Err(UidError::EmptyComponent));
        assert_eq!(validate("1.02"), Err(UidError::LeadingZero));
        let long = format!("1.{}", "2".repeat(63));
        assert_eq!(validate(&long), Err(UidError::TooLong));
    }

    #[test]
    fn generated_uids_are_valid_and_distinct() {
        let a = generate();
        assert!(a.starts_with("2.25.") && validate(&a).is_ok() && a.len() <= 44, "{a}");
        assert_ne!(a, generate());
    }
}
