//! Specific Character Set (0008,0005) decoding of text values (PS3.5 §6.1, PS3.3 §C.12.1.1.2).
//!
//! Single-byte repertoires and UTF-8 are decoded fully. For ISO 2022 code extensions only the
//! first (default) repertoire is applied; escape sequences switching repertoires mid-value are
//! passed to the matching multi-byte decoder where one exists.

use encoding_rs::Encoding;

/// The decoder chosen from a Specific Character Set value.
#[derive(Debug, Clone, Copy)]
pub struct Charset {
    encoding: Option<&'static Encoding>,
}

impl Default for Charset {
    /// Default repertoire (ISO-IR 6). Bytes outside ASCII are, in practice, most often UTF-8
    /// or Latin-1 from misconfigured modalities; see [`Charset::decode`].
    fn default() -> Self {
        Charset { encoding: None }
    }
}

impl Charset {
    /// Parses the (possibly multi-valued) Specific Character Set.
    pub fn from_specific_character_set(value: &str) -> Charset {
        let terms: Vec<&str> = value.split('\\').map(str::trim).collect();
        // With code extensions the first value may be empty (= ISO-IR 6); the repertoire that
        // matters for non-ASCII text is the first non-empty one.
        let term = terms.iter().find(|t| !t.is_empty()).copied().unwrap_or("");
        let encoding = match term {
            "ISO_IR 192" => Some(encoding_rs::UTF_8),
            "ISO_IR 100" | "ISO 2022 IR 100" => Some(encoding_rs::WINDOWS_1252),
            "ISO_IR 101" | "ISO 2022 IR 101" => Some(encoding_rs::ISO_8859_2),
            "ISO_IR 109" | "ISO 2022 IR 109" => Some(encoding_rs::ISO_8859_3),
            "ISO_IR 110" | "ISO 2022 IR 110" => Some(encoding_rs::ISO_8859_4),
            "ISO_IR 144" | "ISO 2022 IR 144" => Some(encoding_rs::ISO_8859_5),
            "ISO_IR 127" | "ISO 2022 IR 127" => Some(encoding_rs::ISO_8859_6),
            "ISO_IR 126" | "ISO 2022 IR 126" => Some(encoding_rs::ISO_8859_7),
            "ISO_IR 138" | "ISO 2022 IR 138" => Some(encoding_rs::ISO_8859_8),
            "ISO_IR 148" | "ISO 2022 IR 148" => Some(encoding_rs::WINDOWS_1254),
            "ISO_IR 203" | "ISO 2022 IR 203" => Some(encoding_rs::ISO_8859_15),
            "ISO_IR 166" | "ISO 2022 IR 166" => Some(encoding_rs::WINDOWS_874),
            "ISO_IR 13" | "ISO 2022 IR 13" => Some(encoding_rs::SHIFT_JIS),
            "ISO 2022 IR 87" | "ISO 2022 IR 159" => Some(encoding_rs::ISO_2022_JP),
            "ISO 2022 IR 149" => Some(encoding_rs::EUC_KR),
            "ISO 2022 IR 58" | "GB18030" | "GBK" => Some(encoding_rs::GB18030),
            _ => None,
        };
        Charset { encoding }
    }

    /// Decodes a text value. Without a declared repertoire: ASCII as is, valid UTF-8 as UTF-8,
    /// anything else as Latin-1, so that a wrongly labelled name is still searchable.
    pub fn decode(&self, bytes: &[u8]) -> String {
        match self.encoding {
            Some(enc) => enc.decode_without_bom_handling(bytes).0.into_owned(),
            None => match std::str::from_utf8(bytes) {
                Ok(s) => s.to_owned(),
                Err(_) => encoding_rs::WINDOWS_1252.decode_without_bom_handling(bytes).0.into_owned(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_latin1_and_utf8() {
        let latin1 = Charset::from_specific_character_set("ISO_IR 100");
        assert_eq!(latin1.decode(b"D\xfcrer^\xc9lodie"), "Dürer^Élodie");
        let utf8 = Charset::from_specific_character_set("ISO_IR 192");
        assert_eq!(utf8.decode("Müller^Jürgen".as_bytes()), "Müller^Jürgen");
        let default = Charset::default();
        assert_eq!(default.decode(b"Doe^John"), "Doe^John");
        assert_eq!(default.decode(b"M\xfcller"), "Müller");
    }
}
