//! The decoder over arbitrary segment bytes, split into up to two segments: it must
//! never panic, and whatever it returns must be consistent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wal_codec::{Decoder, SegmentReader};

fuzz_target!(|data: &[u8]| {
    let split = data.first().map_or(0, |b| *b as usize * 8).min(data.len());
    let (a, b) = data.split_at(split);
    for continue_on_crc in [false, true] {
        let segs = vec![
            SegmentReader::from_bytes("0.wal", a.to_vec()),
            SegmentReader::from_bytes("1.wal", b.to_vec()),
        ];
        let mut dec = Decoder::new(segs).continue_on_crc_error(continue_on_crc);
        let mut n = 0usize;
        loop {
            match dec.decode() {
                Ok(Some(rec)) => {
                    // A record never claims more data than the input holds.
                    assert!(rec.data.as_ref().map_or(0, |d| d.len()) <= data.len());
                    if rec.r#type == 4 {
                        dec.update_crc(rec.crc);
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    assert!(e.offset() <= data.len() as u64);
                    if !continue_on_crc {
                        // The decoder is finished after an error.
                        assert!(matches!(dec.decode(), Ok(None)));
                        break;
                    }
                }
            }
            n += 1;
            assert!(n <= data.len() / 8 + 2, "more records than 8-byte frames");
        }
    }
});
