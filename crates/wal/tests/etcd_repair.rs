//! Port of etcd's `server/storage/wal/repair_test.go`: one test per etcd test, named
//! after it in snake_case. etcd's `Repair` returns a bool; `wal::repair` returns
//! `Ok(RepairOutcome)` for etcd's `true` and an error for its `false`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};

use wal::raftpb::{Entry, HardState};
use wal::walpb::Snapshot;
use wal::{ErrorKind, Options, RepairOutcome};
use wal_codec::{Decoder, RecordType, SegmentReader};

mod common;
use common::wal_names;

/// etcd's `openLast`: the last segment of `dir`, opened for reading and writing.
fn open_last(dir: &Path) -> (PathBuf, fs::File) {
    let names = wal_names(dir);
    let last = dir.join(names.last().expect("no segment"));
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&last)
        .unwrap();
    (last, f)
}

/// Offset just past the last record of a segment: etcd's `w.tail().Seek(0,
/// io.SeekCurrent)` after a synced save.
fn data_end(path: &Path) -> u64 {
    let f = fs::File::open(path).unwrap();
    let size = f.metadata().unwrap().len();
    let mut dec = Decoder::new(vec![SegmentReader::new(path, size, Box::new(f))]);
    while let Some(rec) = dec.decode().unwrap() {
        if rec.r#type == RecordType::Crc as i64 {
            dec.update_crc(rec.crc);
        }
    }
    dec.last_offset()
}

/// `raftpb.Entry{Index: index}`.
fn ent(index: u64) -> Entry {
    Entry {
        index,
        ..Entry::default()
    }
}

/// etcd's `makeEnts`: one batch of one entry per index 1..=n.
fn make_ents(n: u64) -> Vec<Vec<Entry>> {
    (1..=n).map(|i| vec![ent(i)]).collect()
}

/// etcd's `testRepair`.
fn test_repair(ents: &[Vec<Entry>], corrupt: impl FnOnce(&Path, u64), expected_ents: usize) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("wal");

    // create the WAL
    let w = wal::create(&p, None).unwrap();
    for es in ents {
        w.save(&HardState::default(), es).unwrap();
    }
    let tail = w.tail_path().unwrap();
    w.close().unwrap();
    let offset = data_end(&tail);

    corrupt(&p, offset);

    // verify we broke the WAL
    let w = wal::open(&p, &Snapshot::default()).unwrap();
    let err = w.read_all().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnexpectedEof, "{err}");
    w.close().unwrap();

    // repair the WAL
    let outcome = wal::repair(&p).unwrap();
    let mut broken = tail.clone().into_os_string();
    broken.push(".broken");
    let broken = PathBuf::from(broken);
    match &outcome {
        RepairOutcome::Truncated { file, backup, .. } => {
            assert_eq!(file, &tail);
            assert_eq!(backup, &broken);
        }
        other => panic!("want a truncation, got {other:?}"),
    }

    // verify the broken WAL has the right permissions
    let mode = fs::metadata(&broken).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        mode,
        wal_fileutil::PRIVATE_FILE_MODE,
        "unexpected file permissions on .broken wal"
    );

    // read it back
    let w = wal::open(&p, &Snapshot::default()).unwrap();
    let all = w.read_all().unwrap();
    assert_eq!(all.entries.len(), expected_ents);

    // write some more entries to the repaired log
    for i in 1..=10u64 {
        w.save(&HardState::default(), &[ent(expected_ents as u64 + i)])
            .unwrap();
    }
    w.close().unwrap();

    // read back the entries following the repair, ensure they are all there
    let w = wal::open(&p, &Snapshot::default()).unwrap();
    let all = w.read_all().unwrap();
    assert_eq!(all.entries.len(), expected_ents + 10);
    w.close().unwrap();
}

// etcd: TestRepairTruncate
#[test]
fn repair_truncate() {
    let corrupt = |p: &Path, offset: u64| {
        let (_, f) = open_last(p);
        f.set_len(offset - 4).unwrap();
    };
    test_repair(&make_ents(10), corrupt, 9);
}

// etcd: TestRepairWriteTearLast
// The last record is a torn write that straddled two sectors.
#[test]
fn repair_write_tear_last() {
    let corrupt = |p: &Path, offset: u64| {
        let (_, f) = open_last(p);
        // 512 bytes perfectly aligns the last record, so use 1024
        assert!(offset >= 1024, "got offset {offset}, expected >1024");
        f.set_len(1024).unwrap();
        f.set_len(offset).unwrap();
    };
    test_repair(&make_ents(50), corrupt, 40);
}

// etcd: TestRepairWriteTearMiddle
// Write tearing in the middle of a record.
#[test]
fn repair_write_tear_middle() {
    let corrupt = |p: &Path, _offset: u64| {
        let (_, f) = open_last(p);
        // corrupt the middle of the 2nd record
        f.write_all_at(&[0u8; 512], 4096 + 512).unwrap();
    };
    let mut ents = make_ents(5);
    // 4096 bytes of data so a middle sector is easy to corrupt
    let dat: Vec<u8> = (0..4096).map(|i| i as u8).collect();
    for es in &mut ents {
        es[0].data = Some(dat.clone().into());
    }
    test_repair(&ents, corrupt, 1);
}

// etcd: TestRepairFailDeleteDir
#[test]
fn repair_fail_delete_dir() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("wal");
    let w = Options::new().segment_size(64).create(&p, None).unwrap();
    for es in make_ents(50) {
        w.save(&HardState::default(), &es).unwrap();
    }
    w.close().unwrap();

    let (_, f) = open_last(&p);
    f.set_len(20).unwrap();
    drop(f);

    let w = wal::open(&p, &Snapshot::default()).unwrap();
    let err = w.read_all().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnexpectedEof, "{err}");
    w.close().unwrap();

    fs::remove_dir_all(&p).unwrap();
    let r = wal::repair(&p);
    assert!(
        r.is_err(),
        "expect repair to fail on unexpected directory deletion, got {r:?}"
    );
}
