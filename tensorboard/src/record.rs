//! TFRecord framing: `u64 length (LE) | u32 masked_crc32c(length) | payload |
//! u32 masked_crc32c(payload)`, the container of TensorBoard event files.

use std::io::{self, Read, Write};

/// TensorFlow's CRC mask: rotate right by 15 bits and add a constant.
pub fn masked_crc32c(bytes: &[u8]) -> u32 {
    let crc = crc32c::crc32c(bytes);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// Writes one record.
pub fn write_record(out: &mut impl Write, payload: &[u8]) -> io::Result<()> {
    let len = (payload.len() as u64).to_le_bytes();
    out.write_all(&len)?;
    out.write_all(&masked_crc32c(&len).to_le_bytes())?;
    out.write_all(payload)?;
    out.write_all(&masked_crc32c(payload).to_le_bytes())
}

/// Reads one record; `Ok(None)` at a clean end of input. Checks both CRCs.
pub fn read_record(input: &mut impl Read) -> io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 8];
    match input.read_exact(&mut len) {
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        other => other?,
    }
    let mut crc = [0u8; 4];
    input.read_exact(&mut crc)?;
    if u32::from_le_bytes(crc) != masked_crc32c(&len) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "record length CRC mismatch",
        ));
    }
    let n = u64::from_le_bytes(len);
    let mut payload = Vec::new();
    input.take(n).read_to_end(&mut payload)?;
    if payload.len() as u64 != n {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "truncated record",
        ));
    }
    input.read_exact(&mut crc)?;
    if u32::from_le_bytes(crc) != masked_crc32c(&payload) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "record payload CRC mismatch",
        ));
    }
    Ok(Some(payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_of_the_standard_check_string() {
        // CRC-32C("123456789") = 0xE3069283 (RFC 3720 check value).
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
        let crc = 0xE306_9283u32;
        assert_eq!(
            masked_crc32c(b"123456789"),
            crc.rotate_right(15).wrapping_add(0xa282_ead8)
        );
    }

    #[test]
    fn records_round_trip_and_corruption_is_detected() {
        let mut buf = Vec::new();
        write_record(&mut buf, b"hello").unwrap();
        write_record(&mut buf, b"").unwrap();
        let mut r = &buf[..];
        assert_eq!(read_record(&mut r).unwrap().unwrap(), b"hello");
        assert_eq!(read_record(&mut r).unwrap().unwrap(), b"");
        assert!(read_record(&mut r).unwrap().is_none());
        buf[14] ^= 1;
        assert!(read_record(&mut &buf[..]).is_err());
    }
}
