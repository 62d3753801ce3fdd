//! DIMSE command sets (PS3.7 §9.3, §10.3 and Annex E): group 0000 elements, always encoded
//! in implicit VR little endian (PS3.7 §6.3.1), decoded into a typed [`Command`].

use crate::status::Status;

/// Command Field (0000,0100) values (PS3.7 Annex E, Table E.1-1 and E.2-1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CommandField(pub u16);

impl CommandField {
    pub const C_STORE_RQ: CommandField = CommandField(0x0001);
    pub const C_STORE_RSP: CommandField = CommandField(0x8001);
    pub const C_GET_RQ: CommandField = CommandField(0x0010);
    pub const C_GET_RSP: CommandField = CommandField(0x8010);
    pub const C_FIND_RQ: CommandField = CommandField(0x0020);
    pub const C_FIND_RSP: CommandField = CommandField(0x8020);
    pub const C_MOVE_RQ: CommandField = CommandField(0x0021);
    pub const C_MOVE_RSP: CommandField = CommandField(0x8021);
    pub const C_ECHO_RQ: CommandField = CommandField(0x0030);
    pub const C_ECHO_RSP: CommandField = CommandField(0x8030);
    pub const N_EVENT_REPORT_RQ: CommandField = CommandField(0x0100);
    pub const N_EVENT_REPORT_RSP: CommandField = CommandField(0x8100);
    pub const N_GET_RQ: CommandField = CommandField(0x0110);
    pub const N_SET_RQ: CommandField = CommandField(0x0120);
    pub const N_ACTION_RQ: CommandField = CommandField(0x0130);
    pub const N_ACTION_RSP: CommandField = CommandField(0x8130);
    pub const N_CREATE_RQ: CommandField = CommandField(0x0140);
    pub const N_DELETE_RQ: CommandField = CommandField(0x0150);
    pub const C_CANCEL_RQ: CommandField = CommandField(0x0FFF);

    pub fn is_response(self) -> bool {
        self.0 & 0x8000 != 0
    }

    /// The response field of a request (PS3.7 Annex E: the request code with bit 15 set).
    pub fn response(self) -> CommandField {
        CommandField(self.0 | 0x8000)
    }
}

/// Command Data Set Type (0000,0800): this value means "no data set"; any other means one
/// follows (PS3.7 §9.3.1.1 Table E.1-1).
pub const NO_DATA_SET: u16 = 0x0101;

/// The Command Data Set Type we send when a data set follows (any value but 0x0101 means
/// one does; dcmtk sends 0x0001 too).
pub const DATA_SET_PRESENT: u16 = 0x0001;

/// Priority (0000,0700) (PS3.7 §9.1.1.1.6).
pub const PRIORITY_MEDIUM: u16 = 0x0000;

/// A decoded command set. Fields absent from the message are `None`; elements of group 0000
/// not listed here are ignored on decode (retired ones included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub field: CommandField,
    pub message_id: Option<u16>,
    pub message_id_being_responded_to: Option<u16>,
    pub affected_sop_class_uid: Option<String>,
    pub requested_sop_class_uid: Option<String>,
    pub affected_sop_instance_uid: Option<String>,
    pub requested_sop_instance_uid: Option<String>,
    pub priority: Option<u16>,
    /// Command Data Set Type; [`NO_DATA_SET`] when no data set follows.
    pub data_set_type: u16,
    pub status: Option<Status>,
    pub offending_elements: Vec<(u16, u16)>,
    pub error_comment: Option<String>,
    pub error_id: Option<u16>,
    pub move_destination: Option<String>,
    pub move_originator_ae_title: Option<String>,
    pub move_originator_message_id: Option<u16>,
    pub remaining_suboperations: Option<u16>,
    pub completed_suboperations: Option<u16>,
    pub failed_suboperations: Option<u16>,
    pub warning_suboperations: Option<u16>,
    pub event_type_id: Option<u16>,
    pub action_type_id: Option<u16>,
}

/// Why a command set could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CommandError {
    #[error("command set ends inside element ({group:04X},{element:04X})")]
    Truncated { group: u16, element: u16 },
    #[error("command set element ({group:04X},{element:04X}) is not in group 0000")]
    NotCommandGroup { group: u16, element: u16 },
    #[error("command element (0000,{element:04X}) has length {length}, expected {expected}")]
    BadLength { element: u16, length: usize, expected: usize },
    #[error("command set has no Command Field (0000,0100)")]
    MissingCommandField,
}

impl Command {
    /// An empty command of this type (no data set).
    pub fn new(field: CommandField) -> Command {
        Command {
            field,
            message_id: None,
            message_id_being_responded_to: None,
            affected_sop_class_uid: None,
            requested_sop_class_uid: None,
            affected_sop_instance_uid: None,
            requested_sop_instance_uid: None,
            priority: None,
            data_set_type: NO_DATA_SET,
            status: None,
            offending_elements: Vec::new(),
            error_comment: None,
            error_id: None,
            move_destination: None,
            move_originator_ae_title: None,
            move_originator_message_id: None,
            remaining_suboperations: None,
            completed_suboperations: None,
            failed_suboperations: None,
            warning_suboperations: None,
            event_type_id: None,
            action_type_id: None,
        }
    }

    pub fn has_data_set(&self) -> bool {
        self.data_set_type != NO_DATA_SET
    }

    /// The response to `self` with `status`: Message ID Being Responded To and the affected
    /// SOP class/instance copied (PS3.7 §9.3, e.g. Table 9.3-2 for C-STORE-RSP); for N-*
    /// requests the requested SOP class/instance become the affected ones (PS3.7 §10.3).
    pub fn response(&self, status: Status) -> Command {
        let mut rsp = Command::new(self.field.response());
        rsp.message_id_being_responded_to = self.message_id;
        rsp.affected_sop_class_uid = self.affected_sop_class_uid.clone().or_else(|| self.requested_sop_class_uid.clone());
        rsp.affected_sop_instance_uid = self.affected_sop_instance_uid.clone().or_else(|| self.requested_sop_instance_uid.clone());
        rsp.status = Some(status);
        rsp
    }

    /// C-ECHO-RQ (PS3.7 §9.3.5.1).
    pub fn echo_rq(message_id: u16) -> Command {
        let mut c = Command::new(CommandField::C_ECHO_RQ);
        c.message_id = Some(message_id);
        c.affected_sop_class_uid = Some(crate::VERIFICATION.to_owned());
        c
    }

    /// C-STORE-RQ (PS3.7 §9.3.1.1); a data set follows.
    pub fn store_rq(message_id: u16, sop_class: &str, sop_instance: &str) -> Command {
        let mut c = Command::new(CommandField::C_STORE_RQ);
        c.message_id = Some(message_id);
        c.affected_sop_class_uid = Some(sop_class.to_owned());
        c.affected_sop_instance_uid = Some(sop_instance.to_owned());
        c.priority = Some(PRIORITY_MEDIUM);
        c.data_set_type = DATA_SET_PRESENT;
        c
    }

    /// C-FIND-RQ (PS3.7 §9.3.2.1); the identifier follows.
    pub fn find_rq(message_id: u16, sop_class: &str) -> Command {
        let mut c = Command::new(CommandField::C_FIND_RQ);
        c.message_id = Some(message_id);
        c.affected_sop_class_uid = Some(sop_class.to_owned());
        c.priority = Some(PRIORITY_MEDIUM);
        c.data_set_type = DATA_SET_PRESENT;
        c
    }

    /// Encodes the command set, Command Group Length first (PS3.7 §6.3.1, §9.3).
    pub fn encode(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(256);
        let uid = |el: u16, v: &Option<String>, pad: u8, body: &mut Vec<u8>| {
            if let Some(v) = v {
                let mut b = v.as_bytes().to_vec();
                if b.len() % 2 == 1 {
                    b.push(pad);
                }
                put(body, el, &b);
            }
        };
        let us = |el: u16, v: Option<u16>, body: &mut Vec<u8>| {
            if let Some(v) = v {
                put(body, el, &v.to_le_bytes());
            }
        };
        // Elements in ascending tag order (PS3.5 §7.1).
        uid(0x0002, &self.affected_sop_class_uid, 0, &mut body);
        uid(0x0003, &self.requested_sop_class_uid, 0, &mut body);
        put(&mut body, 0x0100, &self.field.0.to_le_bytes());
        us(0x0110, self.message_id, &mut body);
        us(0x0120, self.message_id_being_responded_to, &mut body);
        uid(0x0600, &self.move_destination, b' ', &mut body);
        us(0x0700, self.priority, &mut body);
        put(&mut body, 0x0800, &self.data_set_type.to_le_bytes());
        us(0x0900, self.status.map(|s| s.0), &mut body);
        if !self.offending_elements.is_empty() {
            let mut v = Vec::new();
            for (g, e) in &self.offending_elements {
                v.extend_from_slice(&g.to_le_bytes());
                v.extend_from_slice(&e.to_le_bytes());
            }
            put(&mut body, 0x0901, &v);
        }
        uid(0x0902, &self.error_comment, b' ', &mut body);
        us(0x0903, self.error_id, &mut body);
        uid(0x1000, &self.affected_sop_instance_uid, 0, &mut body);
        uid(0x1001, &self.requested_sop_instance_uid, 0, &mut body);
        us(0x1002, self.event_type_id, &mut body);
        us(0x1008, self.action_type_id, &mut body);
        us(0x1020, self.remaining_suboperations, &mut body);
        us(0x1021, self.completed_suboperations, &mut body);
        us(0x1022, self.failed_suboperations, &mut body);
        us(0x1023, self.warning_suboperations, &mut body);
        uid(0x1030, &self.move_originator_ae_title, b' ', &mut body);
        us(0x1031, self.move_originator_message_id, &mut body);
        let mut out = Vec::with_capacity(body.len() + 12);
        put(&mut out, 0x0000, &(body.len() as u32).to_le_bytes());
        out.extend_from_slice(&body);
        out
    }

    /// Decodes a command set (implicit VR little endian, group 0000 only).
    pub fn decode(bytes: &[u8]) -> Result<Command, CommandError> {
        let mut cmd = Command::new(CommandField(0));
        let mut have_field = false;
        let mut pos = 0usize;
        while pos < bytes.len() {
            let header = bytes.get(pos..pos + 8).ok_or(CommandError::Truncated { group: 0, element: 0 })?;
            let group = u16::from_le_bytes([header[0], header[1]]);
            let element = u16::from_le_bytes([header[2], header[3]]);
            let len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
            if group != 0x0000 {
                return Err(CommandError::NotCommandGroup { group, element });
            }
            let value =
                pos.checked_add(8 + len).and_then(|end| bytes.get(pos + 8..end)).ok_or(CommandError::Truncated { group, element })?;
            pos += 8 + len;
            let us = || -> Result<u16, CommandError> {
                match value {
                    [a, b] => Ok(u16::from_le_bytes([*a, *b])),
                    _ => Err(CommandError::BadLength { element, length: value.len(), expected: 2 }),
                }
            };
            let text = || Some(String::from_utf8_lossy(value).trim_end_matches(['\0', ' ']).trim_start().to_owned());
            match element {
                0x0002 => cmd.affected_sop_class_uid = text(),
                0x0003 => cmd.requested_sop_class_uid = text(),
                0x0100 => {
                    cmd.field = CommandField(us()?);
                    have_field = true;
                }
                0x0110 => cmd.message_id = Some(us()?),
                0x0120 => cmd.message_id_being_responded_to = Some(us()?),
                0x0600 => cmd.move_destination = text(),
                0x0700 => cmd.priority = Some(us()?),
                0x0800 => cmd.data_set_type = us()?,
                0x0900 => cmd.status = Some(Status(us()?)),
                0x0901 => {
                    cmd.offending_elements =
                        value.chunks_exact(4).map(|c| (u16::from_le_bytes([c[0], c[1]]), u16::from_le_bytes([c[2], c[3]]))).collect()
                }
                0x0902 => cmd.error_comment = text(),
                0x0903 => cmd.error_id = Some(us()?),
                0x1000 => cmd.affected_sop_instance_uid = text(),
                0x1001 => cmd.requested_sop_instance_uid = text(),
                0x1002 => cmd.event_type_id = Some(us()?),
                0x1008 => cmd.action_type_id = Some(us()?),
                0x1020 => cmd.remaining_suboperations = Some(us()?),
                0x1021 => cmd.completed_suboperations = Some(us()?),
                0x1022 => cmd.failed_suboperations = Some(us()?),
                0x1023 => cmd.warning_suboperations = Some(us()?),
                0x1030 => cmd.move_originator_ae_title = text(),
                0x1031 => cmd.move_originator_message_id = Some(us()?),
                _ => {}
            }
        }
        if !have_field {
            return Err(CommandError::MissingCommandField);
        }
        Ok(cmd)
    }
}

fn put(out: &mut Vec<u8>, element: u16, value: &[u8]) {
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&element.to_le_bytes());
    out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    out.extend_from_slice(value);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn store_rq_round_trip() {
        let c = Command::store_rq(7, "1.2.840.10008.5.1.4.1.1.2", "1.2.3.4.5");
        let bytes = c.encode();
        assert_eq!(bytes.len() % 2, 0);
        let group_length = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize;
        assert_eq!(group_length, bytes.len() - 12);
        assert_eq!(Command::decode(&bytes).unwrap(), c);
    }

    #[test]
    fn response_round_trip_with_counts_and_comment() {
        let mut rq = Command::new(CommandField::C_MOVE_RQ);
        rq.message_id = Some(3);
        rq.affected_sop_class_uid = Some("1.2.840.10008.5.1.4.1.2.2.2".into());
        rq.move_destination = Some("STORESCP".into());
        rq.data_set_type = DATA_SET_PRESENT;
        assert_eq!(Command::decode(&rq.encode()).unwrap(), rq);
        let mut rsp = rq.response(Status::PENDING);
        rsp.remaining_suboperations = Some(5);
        rsp.completed_suboperations = Some(1);
        rsp.failed_suboperations = Some(0);
        rsp.warning_suboperations = Some(0);
        rsp.error_comment = Some("odd".into());
        rsp.offending_elements = vec![(0x0008, 0x0018)];
        let back = Command::decode(&rsp.encode()).unwrap();
        assert_eq!(back, rsp);
        assert_eq!(back.field, CommandField::C_MOVE_RSP);
        assert_eq!(back.message_id_being_responded_to, Some(3));
    }

    /// A C-ECHO-RQ as sent by dcmtk's echoscu 3.6.7 (captured from the wire through a proxy: the
    /// PDV payload).
    #[test]
    fn decodes_dcmtk_echo_rq() {
        let bytes: [u8; 68] = [
            0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x38, 0x00, 0x00, 0x00, // group length 56
            0x00, 0x00, 0x02, 0x00, 0x12, 0x00, 0x00, 0x00, b'1', b'.', b'2', b'.', b'8', b'4', b'0', b'.', b'1', b'0', b'0', b'0', b'8',
            b'.', b'1', b'.', b'1', 0x00, // affected SOP class, padded with NUL
            0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x30, 0x00, // command field
            0x00, 0x00, 0x10, 0x01, 0x02, 0x00, 0x00, 0x00, 0x01, 0x00, // message id 1
            0x00, 0x00, 0x00, 0x08, 0x02, 0x00, 0x00, 0x00, 0x01, 0x01, // no data set
        ];
        let c = Command::decode(&bytes).unwrap();
        assert_eq!(c.field, CommandField::C_ECHO_RQ);
        assert_eq!(c.message_id, Some(1));
        assert_eq!(c.affected_sop_class_uid.as_deref(), Some("1.2.840.10008.1.1"));
        assert!(!c.has_data_set());
        assert_eq!(c, Command::echo_rq(1));
    }

    /// A C-STORE-RQ as sent by dcmtk's storescu 3.6.7 (captured from the wire).
    #[test]
    fn decodes_dcmtk_store_rq() {
        let hex = "00000000040000007e000000000002001a000000312e322e3834302e31303030382e352e312e342e312e312e320000000001020000000100000010010200000001000000000702000000000000000008020000000100000000102c000000322e32352e323339363030343931343535303734383339363736373331393933383432313737303731383231";
        let bytes: Vec<u8> = (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
        let c = Command::decode(&bytes).unwrap();
        assert_eq!(c.field, CommandField::C_STORE_RQ);
        assert_eq!(c.message_id, Some(1));
        assert_eq!(c.priority, Some(PRIORITY_MEDIUM));
        assert!(c.has_data_set());
        assert_eq!(c.affected_sop_class_uid.as_deref(), Some("1.2.840.10008.5.1.4.1.1.2"));
        assert_eq!(c.affected_sop_instance_uid.as_deref(), Some("2.25.239600491455074839676731993842177071821"));
        // Our encoder writes the same bytes for the same command.
        assert_eq!(Command::store_rq(1, "1.2.840.10008.5.1.4.1.1.2", "2.25.239600491455074839676731993842177071821").encode(), bytes);
    }

    #[test]
    fn rejects_truncated_and_foreign_groups() {
        let bytes = Command::echo_rq(1).encode();
        assert!(matches!(Command::decode(&bytes[..bytes.len() - 1]), Err(CommandError::Truncated { .. })));
        let mut foreign = bytes.clone();
        foreign[12] = 0x08;
        assert!(matches!(Command::decode(&foreign), Err(CommandError::NotCommandGroup { .. })));
        assert_eq!(Command::decode(&[]), Err(CommandError::MissingCommandField));
        // A length that overflows must not panic.
        let mut huge = vec![0, 0, 0, 1];
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(Command::decode(&huge).is_err());
    }
}
