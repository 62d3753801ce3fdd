//! PDUs on an async socket (PS3.8 §9.3): framing by the 6-byte PDU header, decoding and
//! encoding through `dicom_ul::pdu`, and P-DATA-TF encoding without an intermediate copy of
//! the value into a `Pdu`.

use crate::error::DimseError;
use bytes::{Bytes, BytesMut};
use dicom_ul::pdu::{Pdu, PDU_HEADER_SIZE};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;

/// Reads one PDU. `buf` holds bytes already read past the previous PDU (none usually).
/// A PDU longer than `max` is refused before its body is read (PS3.8 §D.1: the receiver's
/// Maximum Length applies to P-DATA-TF; other PDUs are small, and a hostile length must not
/// make us allocate).
pub async fn read_pdu<R: AsyncRead + Unpin>(reader: &mut R, buf: &mut BytesMut, max: u32) -> Result<Option<Pdu>, DimseError> {
    while buf.len() < PDU_HEADER_SIZE as usize {
        if reader.read_buf(buf).await.map_err(DimseError::ReadPdu)? == 0 {
            return if buf.is_empty() { Ok(None) } else { Err(DimseError::Closed) };
        }
    }
    let length = u32::from_be_bytes([buf[2], buf[3], buf[4], buf[5]]);
    // Association PDUs carry their own limits; allow them some room over a tiny max.
    let limit = if buf[0] == 0x04 { max } else { max.max(1 << 16) };
    if length > limit {
        return Err(DimseError::PduTooLarge { length, max: limit });
    }
    let total = PDU_HEADER_SIZE as usize + length as usize;
    buf.reserve(total.saturating_sub(buf.len()));
    while buf.len() < total {
        if reader.read_buf(buf).await.map_err(DimseError::ReadPdu)? == 0 {
            return Err(DimseError::Closed);
        }
    }
    let frame = buf.split_to(total).freeze();
    // Non-strict: the length was checked above with the right limit for the PDU type.
    let max_for_decoder = limit.clamp(dicom_ul::pdu::MINIMUM_PDU_SIZE, dicom_ul::pdu::MAXIMUM_PDU_SIZE);
    match dicom_ul::pdu::read_pdu(frame, max_for_decoder, false) {
        Ok(Some(pdu)) => Ok(Some(pdu)),
        Ok(None) => Err(DimseError::Closed),
        Err(e) => Err(DimseError::DecodePdu(e)),
    }
}

/// The reader task of an association: PDUs into `tx` until the peer closes, an error, or the
/// consumer goes away. The bounded channel is the backpressure: a slow consumer (the disk)
/// stops the reads, and TCP flow control stops the peer.
pub(crate) async fn read_loop<R: AsyncRead + Unpin>(mut reader: R, leftover: Bytes, max: u32, tx: mpsc::Sender<Result<Pdu, DimseError>>) {
    let mut buf = BytesMut::with_capacity(64 * 1024);
    buf.extend_from_slice(&leftover);
    loop {
        match read_pdu(&mut reader, &mut buf, max).await {
            Ok(Some(pdu)) => {
                let end = matches!(pdu, Pdu::AbortRQ { .. } | Pdu::ReleaseRP);
                if tx.send(Ok(pdu)).await.is_err() || end {
                    return;
                }
            }
            Ok(None) => return,
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        }
    }
}

/// Appends one P-DATA-TF PDU holding one PDV (PS3.8 §9.3.5 and Annex E.2) to `out` (cleared
/// first).
pub(crate) fn encode_pdata(out: &mut Vec<u8>, context_id: u8, command: bool, last: bool, data: &[u8]) {
    out.clear();
    let pdv_len = data.len() as u32 + 2;
    out.reserve(12 + data.len());
    out.extend_from_slice(&[0x04, 0x00]);
    out.extend_from_slice(&(pdv_len + 4).to_be_bytes());
    out.extend_from_slice(&pdv_len.to_be_bytes());
    out.push(context_id);
    out.push(u8::from(command) | (u8::from(last) << 1));
    out.extend_from_slice(data);
}

/// Encodes a non-data PDU.
pub(crate) fn encode(pdu: &Pdu) -> Result<Vec<u8>, DimseError> {
    let mut out = Vec::new();
    dicom_ul::pdu::write_pdu(&mut out, pdu).map_err(DimseError::EncodePdu)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dicom_ul::pdu::PDataValueType;

    #[tokio::test]
    async fn pdata_round_trip_through_dicom_ul() {
        let mut out = Vec::new();
        encode_pdata(&mut out, 3, false, true, b"abcd");
        let mut buf = BytesMut::new();
        let mut reader = &out[..];
        let pdu = read_pdu(&mut reader, &mut buf, 16384).await.unwrap().unwrap();
        let Pdu::PData { data } = pdu else { panic!("not P-DATA") };
        assert_eq!(data.len(), 1);
        assert_eq!(data[0].presentation_context_id, 3);
        assert_eq!(data[0].value_type, PDataValueType::Data);
        assert!(data[0].is_last);
        assert_eq!(data[0].data, b"abcd");
        assert!(buf.is_empty());
    }

    #[tokio::test]
    async fn oversized_pdu_is_refused_before_reading_it() {
        let mut header = vec![0x04, 0x00];
        header.extend_from_slice(&(1u32 << 30).to_be_bytes());
        let mut reader = &header[..];
        let mut buf = BytesMut::new();
        assert!(matches!(read_pdu(&mut reader, &mut buf, 16384).await, Err(DimseError::PduTooLarge { .. })));
    }
}
