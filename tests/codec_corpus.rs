//! Every record of every segment etcd wrote decodes, chains its CRC, and re-encodes
//! to the identical bytes.

use wal_codec::{Decoder, Encoder, RecordType};
use wal_suite::{corpus_cases, corpus_dir, read_json, segment, wal_files};

#[test]
fn corpus_segments_reencode_byte_identical() {
    let mut segments_checked = 0;
    let mut records_checked = 0;
    for (case, dir) in corpus_cases() {
        let mut chain = 0u32;
        for path in wal_files(&dir) {
            let bytes = std::fs::read(&path).unwrap();
            let mut dec = Decoder::new(vec![segment(&path)]);
            dec.update_crc(chain);
            let mut enc = Encoder::new(Vec::new(), chain, 0);
            let mut n = 0;
            while let Some(rec) = dec.decode().unwrap_or_else(|e| panic!("{case}: {e}")) {
                if rec.r#type == RecordType::Crc as i64 {
                    // Each file opens with the chain's value so far.
                    assert_eq!(rec.crc, chain, "{case} {}: crc record", path.display());
                    dec.update_crc(rec.crc);
                }
                enc.encode(rec.r#type, rec.data.as_deref()).unwrap();
                n += 1;
            }
            enc.flush().unwrap();
            let end = dec.last_offset() as usize;
            assert_eq!(enc.get_ref().len(), end, "{case} {}", path.display());
            assert_eq!(
                &bytes[..end],
                &enc.get_ref()[..],
                "{case} {}: re-encoded bytes differ",
                path.display()
            );
            assert!(
                bytes[end..].iter().all(|&b| b == 0),
                "{case}: the tail after the last record is zeros"
            );
            chain = dec.last_crc();
            segments_checked += 1;
            records_checked += n;
        }
    }
    assert_eq!(segments_checked, 1 + 13 + 4 + 1 + 1);
    assert!(records_checked > 2500, "{records_checked}");
}

#[test]
fn corpus_frames_match_the_listing() {
    // The corpus tool's frame listing: offsets, types and stored CRCs.
    for case in ["basic", "cut", "snapshots", "emptydata"] {
        let listing = read_json(&corpus_dir().join(format!("{case}.frames.json")));
        let files = listing.as_array().unwrap();
        let mut chain = 0u32;
        for file in files {
            let name = file["name"].as_str().unwrap();
            let path = corpus_dir().join(case).join(name);
            let mut dec = Decoder::new(vec![segment(&path)]);
            dec.update_crc(chain);
            for frame in file["frames"].as_array().unwrap() {
                let rec = dec.decode().unwrap().unwrap();
                assert_eq!(
                    dec.frame_offset(),
                    frame["offset"].as_u64().unwrap(),
                    "{case}/{name}"
                );
                assert_eq!(rec.r#type, frame["type"].as_i64().unwrap());
                assert_eq!(format!("{:#010x}", rec.crc), frame["crc"].as_str().unwrap());
                assert_eq!(rec.data.is_none(), frame["data_nil"].as_bool().unwrap());
                if rec.r#type == RecordType::Crc as i64 {
                    dec.update_crc(rec.crc);
                }
            }
            assert!(
                dec.decode().unwrap().is_none(),
                "{case}/{name}: no frames beyond the listing"
            );
            chain = dec.last_crc();
        }
    }
}

#[test]
fn multi_segment_decoder_chains_across_files() {
    // One decoder over all 13 files of `cut`: etcd's ReadAll path.
    let dir = corpus_dir().join("cut");
    let segs = wal_files(&dir).iter().map(|p| segment(p)).collect();
    let mut dec = Decoder::new(segs);
    let mut crc_records = 0;
    let mut entries = 0;
    while let Some(rec) = dec.decode().unwrap() {
        match RecordType::from_i64(rec.r#type) {
            Some(RecordType::Crc) => {
                let running = dec.last_crc();
                assert!(
                    running == 0 || running == rec.crc,
                    "crc record matches the chain"
                );
                dec.update_crc(rec.crc);
                crc_records += 1;
            }
            Some(RecordType::Entry) => entries += 1,
            _ => {}
        }
    }
    assert_eq!(crc_records, 13);
    assert_eq!(entries, 200);
    assert_eq!(dec.segment_index(), 12);
}
