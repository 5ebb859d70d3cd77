//! etcd's own byte vectors, asserted byte for byte.

use wal_codec::raftpb::Entry;
use wal_codec::walpb::Snapshot;
use wal_codec::{
    encode_snapshot, DecodeError, Decoder, Encoder, Message, RecordType, SegmentReader,
};
use wal_suite::data_dir;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(data_dir().join("etcd").join(name)).expect("fixture")
}

// etcd: TestNew (the bytes of testdata/TestNew.wal)
#[test]
fn new_wal_golden_bytes() {
    let mut enc = Encoder::new(Vec::new(), 0, 0);
    enc.encode(RecordType::Crc as i64, None).unwrap();
    enc.encode(RecordType::Metadata as i64, Some(b"somedata"))
        .unwrap();
    enc.encode(
        RecordType::Snapshot as i64,
        Some(&encode_snapshot(&Snapshot::default())),
    )
    .unwrap();
    enc.flush().unwrap();
    let want = fixture("TestNew.wal");
    assert_eq!(want.len(), 72);
    assert_eq!(enc.get_ref(), &want);
}

// etcd: TestReadRecord (the legacy frame without padding, and its truncations)
#[test]
fn read_record() {
    let info = fixture("legacy_info_record.bin");
    let data = &info[info.len() - 4..];
    let mut dec = Decoder::new(vec![SegmentReader::from_bytes("wal", info.clone())]);
    let rec = dec.decode().unwrap().unwrap();
    assert_eq!(rec.r#type, 1);
    assert_eq!(rec.crc, crc32c::crc32c(data));
    assert_eq!(rec.data.as_deref(), Some(data));
    assert!(dec.decode().unwrap().is_none());

    // Empty input: plain end.
    let mut dec = Decoder::new(vec![SegmentReader::from_bytes("wal", Vec::new())]);
    assert!(dec.decode().unwrap().is_none());

    for cut in [14, info.len() - data.len(), info.len() - 8] {
        let mut dec = Decoder::new(vec![SegmentReader::from_bytes("wal", info[..cut].to_vec())]);
        let err = dec.decode().unwrap_err();
        assert!(err.is_unexpected_eof(), "cut at {cut}: {err}");
        assert_eq!(err.offset(), 0);
    }

    let mut bad = info.clone();
    *bad.last_mut().unwrap() = b'a';
    let mut dec = Decoder::new(vec![SegmentReader::from_bytes("wal", bad)]);
    match dec.decode().unwrap_err() {
        DecodeError::CrcMismatch { file, offset, .. } => {
            assert_eq!(file.to_str(), Some("wal"));
            assert_eq!(offset, 0);
        }
        other => panic!("want crc mismatch, got {other}"),
    }
}

// etcd: TestWriteRecord
#[test]
fn write_record() {
    let mut enc = Encoder::new(Vec::new(), 0, 0);
    enc.encode(0xABCD, Some(b"Hello world!")).unwrap();
    enc.flush().unwrap();
    let mut dec = Decoder::new(vec![SegmentReader::from_bytes(
        "wal",
        enc.get_ref().clone(),
    )]);
    let rec = dec.decode().unwrap().unwrap();
    assert_eq!(rec.r#type, 0xABCD);
    assert_eq!(rec.data.as_deref(), Some(&b"Hello world!"[..]));
}

// etcd: TestLastRecordLengthExceedFileEnd (decoder half; the WAL half is in the wal tests)
#[test]
fn last_record_length_exceed_file_end() {
    let blob = fixture("last_record_length_exceeds.wal");
    let mut dec = Decoder::new(vec![SegmentReader::from_bytes("0.wal", blob)]);
    let mut entries = Vec::new();
    let err = loop {
        match dec.decode() {
            Ok(Some(rec)) => {
                if rec.r#type == RecordType::Entry as i64 {
                    let e = Entry::decode(rec.data.unwrap()).unwrap();
                    assert_eq!(e.r#type, 0);
                    assert_eq!(
                        e.data.as_deref(),
                        Some(format!("waldata{}", e.index).as_bytes())
                    );
                    entries.push(e.index);
                }
            }
            Ok(None) => panic!("the cut-short last record must be an error"),
            Err(e) => break e,
        }
    };
    assert_eq!(entries, [1, 2]);
    assert!(err.is_unexpected_eof(), "{err}");
    // The bad frame starts right after the second entry.
    assert_eq!(err.offset(), 136);
    assert_eq!(dec.last_offset(), 136);
}

/// The CRC values quoted in docs/format.md's worked example.
#[test]
fn format_doc_worked_example_crcs() {
    assert_eq!(crc32c::crc32c(b"somedata"), 0x741f_6a05);
    assert_eq!(
        crc32c::crc32c_append(0x741f_6a05, &[0x08, 0, 0x10, 0]),
        0x1820_6d80
    );
}
