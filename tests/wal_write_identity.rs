//! Byte identity with etcd: replaying the operations recorded in etcd's corpus
//! through our writer produces the very same segment files (names, bytes, and the
//! preallocated length of the last one), cut for cut.

use std::path::Path;

use wal::raftpb::{Entry, HardState};
use wal::walpb::Snapshot;
use wal_codec::{Decoder, Message, RecordType};
use wal_suite::{corpus_dir, segment, wal_files};

/// One call etcd's writer received.
#[derive(Debug)]
enum Op {
    Save(HardState, Vec<Entry>),
    Snapshot(Snapshot),
}

/// Recovers metadata and the sequence of Save/SaveSnapshot calls from the records:
/// a save is a run of entries closed by a hard state; the crc, metadata and hard
/// state at the head of a later segment are written by the cut, not by the user.
fn recover_ops(dir: &Path) -> (Option<Vec<u8>>, Vec<Op>) {
    let mut metadata = None;
    let mut ops = Vec::new();
    let mut batch: Vec<Entry> = Vec::new();
    for (n, path) in wal_files(dir).iter().enumerate() {
        let mut dec = Decoder::new(vec![segment(path)]);
        let mut header = true;
        let mut first_snapshot = n == 0;
        while let Some(rec) = dec.decode().unwrap() {
            let t = RecordType::from_i64(rec.r#type).unwrap();
            match t {
                RecordType::Crc => dec.update_crc(rec.crc),
                RecordType::Metadata => metadata = rec.data.map(|d| d.to_vec()),
                RecordType::State if header && n > 0 => header = false,
                RecordType::State => {
                    header = false;
                    let st = HardState::decode(rec.data.unwrap()).unwrap();
                    ops.push(Op::Save(st, std::mem::take(&mut batch)));
                }
                RecordType::Entry => {
                    header = false;
                    batch.push(Entry::decode(rec.data.unwrap()).unwrap());
                }
                RecordType::Snapshot => {
                    header = false;
                    if first_snapshot {
                        // `create` writes the empty snapshot record.
                        first_snapshot = false;
                        continue;
                    }
                    if !batch.is_empty() {
                        ops.push(Op::Save(HardState::default(), std::mem::take(&mut batch)));
                    }
                    ops.push(Op::Snapshot(Snapshot::decode(rec.data.unwrap()).unwrap()));
                }
            }
        }
        if !batch.is_empty() {
            ops.push(Op::Save(HardState::default(), std::mem::take(&mut batch)));
        }
    }
    (metadata, ops)
}

fn check_case(case: &str, segment_size: u64) {
    let src = corpus_dir().join(case);
    let (metadata, ops) = recover_ops(&src);
    assert!(!ops.is_empty());
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wal");
    let w = wal::Options::new()
        .segment_size(segment_size)
        .create(&dir, metadata.as_deref())
        .unwrap();
    for op in &ops {
        match op {
            Op::Save(st, ents) => w.save(st, ents).unwrap(),
            Op::Snapshot(s) => w.save_snapshot(s).unwrap(),
        }
    }
    w.close().unwrap();

    let theirs: Vec<String> = wal_files(&src)
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    let ours: Vec<String> = wal_files(&dir)
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(ours, theirs, "{case}: segment names (cut points)");
    for name in &theirs {
        let a = std::fs::read(src.join(name)).unwrap();
        let b = std::fs::read(dir.join(name)).unwrap();
        assert_eq!(
            a.len(),
            b.len(),
            "{case}/{name}: length (preallocation included)"
        );
        if let Some(i) = a.iter().zip(&b).position(|(x, y)| x != y) {
            panic!("{case}/{name}: first differing byte at offset {i}");
        }
    }
    // No stray files: the pipeline's prepared segment is removed on close.
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), theirs.len(), "{case}: {names:?}");
}

#[test]
fn basic_is_byte_identical() {
    check_case("basic", 64 * 1024);
}

#[test]
fn cut_is_byte_identical() {
    check_case("cut", 16 * 1024);
}

#[test]
fn snapshots_is_byte_identical() {
    check_case("snapshots", 16 * 1024);
}

#[test]
fn emptydata_is_byte_identical() {
    check_case("emptydata", 16 * 1024);
}
