//! Record framing: the 8-byte length field and the padding to 8 bytes.

/// Bytes in a frame header: the little-endian length field.
pub const FRAME_HEADER_BYTES: usize = 8;

/// Size of the sectors that torn-write detection reasons about (etcd's `minSectorSize`).
pub const MIN_SECTOR_BYTES: usize = 512;

/// Page size the encoder aligns its flushes to (etcd's `walPageBytes`, 8 sectors).
pub const WAL_PAGE_BYTES: usize = 8 * MIN_SECTOR_BYTES;

/// Encodes the length field for a record of `data_bytes` bytes.
///
/// Returns the 64-bit length field and the number of zero padding bytes that follow
/// the record. When the record is not a multiple of 8 bytes, the top byte of the
/// field is `0x80 | pad`, so the length field itself never straddles a sector.
pub fn encode_frame_size(data_bytes: usize) -> (u64, usize) {
    let pad = (8 - data_bytes % 8) % 8;
    let mut len_field = data_bytes as u64;
    if pad != 0 {
        len_field |= u64::from(0x80 | pad as u8) << 56;
    }
    (len_field, pad)
}

/// Splits a stored length field into (record bytes, padding bytes).
///
/// The record length is the low 56 bits. Padding is present only when the top bit
/// is set (legacy frames written before padding have a clear top byte and no padding).
pub fn decode_frame_size(len_field: u64) -> (u64, u64) {
    let rec_bytes = len_field & !(0xffu64 << 56);
    let pad_bytes = if (len_field as i64) < 0 {
        (len_field >> 56) & 0x7
    } else {
        0
    };
    (rec_bytes, pad_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    // etcd: TestEncodeDecodeFrameSize (the table lives in wal/record_test.go).
    #[test]
    fn encode_decode_frame_size() {
        for (n, want_pad) in [
            (0usize, 0usize),
            (1, 7),
            (7, 1),
            (8, 0),
            (9, 7),
            (1000, 0),
            (1001, 7),
        ] {
            let (field, pad) = encode_frame_size(n);
            assert_eq!(pad, want_pad, "pad for {n}");
            if pad != 0 {
                assert_eq!(field >> 56, 0x80 | pad as u64);
            } else {
                assert_eq!(field, n as u64);
            }
            assert_eq!(decode_frame_size(field), (n as u64, pad as u64));
        }
    }

    #[test]
    fn legacy_length_field_has_no_padding() {
        // A pre-padding etcd wrote the bare length; the top byte is clear.
        assert_eq!(decode_frame_size(27), (27, 0));
    }
}
