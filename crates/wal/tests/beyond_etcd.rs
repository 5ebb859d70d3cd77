//! Behaviour etcd's own tests do not cover: poisoning after an I/O failure, what
//! `repair` refuses and how it keeps its backup, lock exclusion between two writers,
//! `Replay` against `read_all`, and a model-based property test of the whole API.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use wal::raftpb::{ConfState, Entry, HardState};
use wal::walpb::Snapshot;
use wal::{Error, ErrorKind, Event, Options, ReadAll, RepairOutcome, Replay};
use wal_codec::{Decoder, RecordType, SegmentReader};

mod common;
use common::{ent_data as ent, wal_names, TestFs};

/// Options on `fs` for the tests that count and order the WAL's fdatasyncs:
/// zero-filling segments (tests/page_cache.rs) adds its own, partly from the
/// pipeline's thread.
fn counting(fs: &TestFs) -> Options {
    fs.options().zero_fill_segments(false)
}

// ---------------------------------------------------------------------------
// helpers

fn conf_state() -> ConfState {
    ConfState {
        voters: vec![1, 2, 3],
        ..ConfState::default()
    }
}

/// Every file of `dir` with its bytes.
fn dir_contents(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().into_string().unwrap(),
                fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

/// (type, start, end) of every record of one segment file.
fn records(path: &Path) -> Vec<(i64, u64, u64)> {
    let f = fs::File::open(path).unwrap();
    let size = f.metadata().unwrap().len();
    let mut dec = Decoder::new(vec![SegmentReader::new(path, size, Box::new(f))]);
    let mut out = Vec::new();
    let mut start = 0;
    while let Some(rec) = dec.decode().unwrap() {
        if rec.r#type == RecordType::Crc as i64 {
            dec.update_crc(rec.crc);
        }
        out.push((rec.r#type, start, dec.last_offset()));
        start = dec.last_offset();
    }
    out
}

/// (start, end) of the entry records of one segment file.
fn entry_frames(path: &Path) -> Vec<(u64, u64)> {
    records(path)
        .into_iter()
        .filter(|r| r.0 == RecordType::Entry as i64)
        .map(|r| (r.1, r.2))
        .collect()
}

fn position(log: &[(&'static str, PathBuf)], op: &str, path: &Path) -> usize {
    log.iter()
        .position(|(o, p)| *o == op && p == path)
        .unwrap_or_else(|| panic!("no {op} of {} in {log:?}", path.display()))
}

// ---------------------------------------------------------------------------
// (1) poisoning

/// After an fdatasync failure the WAL refuses every later write with
/// `Error::Poisoned`, even once the disk is healthy again: a failed fsync cannot be
/// retried safely. What was synced before survives a reopen.
#[test]
fn io_failure_poisons_the_wal() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("wal");
    // create syncs once; two saves sync; the third save's fdatasync fails.
    let fs = TestFs::failing_sync_after(3);
    let w = counting(&fs).create(&p, Some(b"m")).unwrap();
    let st = HardState {
        term: 1,
        vote: 1,
        commit: 0,
    };
    w.save(&st, &[ent(1, 1, b"one")]).unwrap();
    w.save(&st, &[ent(2, 1, b"two")]).unwrap();
    let err = w.save(&st, &[ent(3, 1, b"three")]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io, "the failure itself: {err}");
    assert!(!matches!(err, Error::Poisoned(_)));

    fs.heal();
    let poisoned = |r: wal::Result<()>, what: &str| match r {
        Err(e @ Error::Poisoned(_)) => assert_eq!(e.kind(), ErrorKind::Poisoned),
        other => panic!("{what}: want Poisoned, got {other:?}"),
    };
    poisoned(w.save(&st, &[ent(4, 1, b"four")]), "save with entries");
    poisoned(
        w.save(
            &HardState {
                term: 2,
                vote: 2,
                commit: 1,
            },
            &[],
        ),
        "save of a hard state",
    );
    poisoned(w.sync(), "sync");
    poisoned(
        w.save_snapshot(&Snapshot {
            index: 1,
            term: 1,
            conf_state: Some(conf_state()),
        }),
        "save_snapshot",
    );
    poisoned(w.sync(), "sync again");
    // Releasing locks does not write; close releases the locks without writing and
    // still reports the poisoning.
    w.release_lock_to(1).unwrap();
    poisoned(w.close(), "close");

    // Reopen (recovery): what was synced is there, and nothing after entry 3.
    let w = wal::open(&p, &Snapshot::default()).unwrap();
    let all = w.read_all().unwrap();
    let idx: Vec<u64> = all.entries.iter().map(|e| e.index).collect();
    assert!(
        idx == [1, 2] || idx == [1, 2, 3],
        "entries after reopen: {idx:?}"
    );
    assert_eq!(all.hard_state, st);
    w.save(&st, &[ent(idx.len() as u64 + 1, 1, b"next")])
        .unwrap();
    w.close().unwrap();
}

// ---------------------------------------------------------------------------
// (2) repair

/// A CRC mismatch in the middle of the last segment is corruption, not a torn
/// write: `repair` refuses it and changes nothing (no backup, same bytes).
#[test]
fn repair_refuses_crc_mismatch_in_the_middle() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("wal");
    let w = Options::new()
        .segment_size(64 * 1024)
        .create(&p, None)
        .unwrap();
    for i in 1..=10u64 {
        w.save(&HardState::default(), &[ent(i, 1, &[0xab; 100])])
            .unwrap();
    }
    let tail = w.tail_path().unwrap();
    w.close().unwrap();

    // Flip one data byte of the fifth entry (data is the record's last field, and
    // padding is at most 7 bytes); later records stay valid.
    let frames = entry_frames(&tail);
    assert_eq!(frames.len(), 10);
    let off = frames[4].1 - 20;
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&tail)
        .unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, off).unwrap();
    assert_eq!(b[0], 0xab, "offset {off} must hold entry data");
    f.write_all_at(&[0x54], off).unwrap();
    drop(f);

    let w = wal::open(&p, &Snapshot::default()).unwrap();
    let err = w.read_all().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::CrcMismatch, "{err}");
    assert!(!err.is_repairable());
    w.close().unwrap();

    let before = dir_contents(&p);
    let err = wal::repair(&p).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::CrcMismatch, "{err}");
    assert_eq!(err.file(), Some(tail.as_path()));
    let after = dir_contents(&p);
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>(),
        "repair must not create or remove files"
    );
    assert!(after == before, "repair changed bytes");
}

/// A torn tail is repaired: the `.broken` backup holds exactly the original bytes
/// and is fsync'ed (and its directory entry synced) before the segment shrinks; the
/// segment is then a prefix of the original, fsync'ed.
#[test]
fn repair_keeps_a_synced_identical_backup() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("wal");
    let w = Options::new()
        .segment_size(64 * 1024)
        .create(&p, Some(b"meta"))
        .unwrap();
    for i in 1..=20u64 {
        w.save(&HardState::default(), &[ent(i, 1, &[i as u8; 300])])
            .unwrap();
    }
    let tail = w.tail_path().unwrap();
    w.close().unwrap();

    // Cut the file in the middle of the last entry's frame: a torn write.
    let frames = entry_frames(&tail);
    assert_eq!(frames.len(), 20);
    let end_of_19 = frames[18].1;
    fs::OpenOptions::new()
        .write(true)
        .open(&tail)
        .unwrap()
        .set_len(end_of_19 + 100)
        .unwrap();
    let original = fs::read(&tail).unwrap();

    let fsys = TestFs::default();
    let outcome = wal::verify::repair_with(&counting(&fsys), &p).unwrap();
    let RepairOutcome::Truncated {
        file,
        offset,
        backup,
    } = outcome
    else {
        panic!("want a truncation, got {outcome:?}");
    };
    assert_eq!(file, tail);
    assert_eq!(offset, end_of_19);
    assert!(fs::read(&backup).unwrap() == original, "backup differs");
    let repaired = fs::read(&tail).unwrap();
    assert_eq!(repaired.len() as u64, offset);
    assert!(repaired[..] == original[..offset as usize]);

    let log = fsys.log();
    let backup_synced = position(&log, "sync_all", &backup);
    let dir_synced = position(&log, "fsync_dir", &p);
    let truncated = position(&log, "set_len", &tail);
    let tail_synced = position(&log, "sync_all", &tail);
    assert!(backup_synced < truncated, "{log:?}");
    assert!(dir_synced < truncated, "{log:?}");
    assert!(truncated < tail_synced, "{log:?}");

    // The repaired WAL opens for writing with 19 entries.
    let w = wal::open(&p, &Snapshot::default()).unwrap();
    assert_eq!(w.read_all().unwrap().entries.len(), 19);
    w.close().unwrap();
}

// ---------------------------------------------------------------------------
// (3) locks

/// OFD locks belong to an open file description, so a second writer in the same
/// process is refused: `open` fails with `Error::Locked`, as does `repair`; reading
/// is still allowed, and the lock goes away with the writer.
#[test]
fn second_writer_is_locked_out() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("wal");
    let w = Options::new()
        .segment_size(4096)
        .create(&p, Some(b"m"))
        .unwrap();
    // While the creating WAL is open.
    let err = wal::open(&p, &Snapshot::default()).unwrap_err();
    assert!(matches!(err, Error::Locked { .. }), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::Locked);
    for i in 1..=20u64 {
        w.save(&HardState::default(), &[ent(i, 1, &[7; 500])])
            .unwrap();
    }
    w.close().unwrap();
    assert!(wal_names(&p).len() > 2, "several segments");

    let w1 = wal::open(&p, &Snapshot::default()).unwrap();
    let err = wal::open(&p, &Snapshot::default()).unwrap_err();
    assert!(matches!(err, Error::Locked { .. }), "{err:?}");
    // etcd's repair waits for the lock; this one fails at once.
    let err = wal::repair(&p).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Locked, "{err}");
    // Reading does not lock.
    let r = wal::open_for_read(&p, &Snapshot::default()).unwrap();
    assert_eq!(r.read_all().unwrap().entries.len(), 20);
    r.close().unwrap();
    // Still locked after read_all turned w1 into a writer.
    w1.read_all().unwrap();
    let err = wal::open(&p, &Snapshot::default()).unwrap_err();
    assert!(matches!(err, Error::Locked { .. }), "{err:?}");
    w1.close().unwrap();

    let w2 = wal::open(&p, &Snapshot::default()).unwrap();
    assert_eq!(w2.read_all().unwrap().entries.len(), 20);
    w2.close().unwrap();
}

// ---------------------------------------------------------------------------
// (4) Replay

/// Folds a replay the way `read_all` builds its result.
fn fold_replay(dir: &Path, snap: &Snapshot) -> ReadAll {
    let mut out = ReadAll::default();
    let mut replay = Replay::open(dir, snap).unwrap();
    for ev in replay.by_ref() {
        match ev.unwrap() {
            Event::Metadata(m) => out.metadata = m,
            Event::HardState(h) => out.hard_state = h,
            Event::Snapshot(_) => {}
            Event::Entry(e) => {
                assert!(
                    e.index > snap.index,
                    "replay yields entries after the start"
                );
                let keep = (e.index - snap.index - 1) as usize;
                assert!(keep <= out.entries.len(), "entry {} skips ahead", e.index);
                out.entries.truncate(keep);
                out.entries.push(e);
            }
        }
    }
    assert!(replay.torn_tail().is_none());
    out
}

#[test]
fn replay_matches_read_all() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("wal");
    let w = Options::new()
        .segment_size(4096)
        .create(&p, Some(b"replay"))
        .unwrap();
    let data = |i: u64, t: u64| vec![(i * 3 + t) as u8; 200 + (i as usize % 9)];
    for i in 1..=30u64 {
        let st = HardState {
            term: 1,
            vote: 1,
            commit: i.saturating_sub(15),
        };
        w.save(&st, &[ent(i, 1, &data(i, 1))]).unwrap();
    }
    let sn = Snapshot {
        index: 10,
        term: 1,
        conf_state: Some(conf_state()),
    };
    w.save_snapshot(&sn).unwrap();
    // A new leader overwrites the uncommitted tail from index 20 on.
    let batch: Vec<Entry> = (20..=25u64).map(|i| ent(i, 2, &data(i, 2))).collect();
    w.save(
        &HardState {
            term: 2,
            vote: 3,
            commit: 15,
        },
        &batch,
    )
    .unwrap();
    for i in 26..=40u64 {
        let st = HardState {
            term: 2,
            vote: 3,
            commit: i - 5,
        };
        w.save(&st, &[ent(i, 2, &data(i, 2))]).unwrap();
    }
    w.close().unwrap();
    assert!(wal_names(&p).len() >= 3, "{:?}", wal_names(&p));

    for start in [Snapshot::default(), sn] {
        let r = wal::open_for_read(&p, &start).unwrap();
        let all = r.read_all().unwrap();
        r.close().unwrap();
        let replayed = fold_replay(&p, &start);
        assert_eq!(replayed, all, "start {start:?}");
        // The log really was truncated: index 20 on are of term 2.
        let first = start.index + 1;
        assert_eq!(all.entries.len() as u64, 40 - start.index);
        for e in &all.entries {
            assert_eq!(e.term, if e.index >= 20 { 2 } else { 1 }, "{}", e.index);
        }
        assert_eq!(all.entries[0].index, first);
    }
}

// ---------------------------------------------------------------------------
// (5) property test against a model of the Raft log

#[derive(Debug, Clone)]
enum Op {
    /// Save a batch (entry data sizes), maybe overwriting the uncommitted tail from
    /// `truncate_back` entries back with a higher term, maybe with a new hard state
    /// (vote, how far to advance the commit index out of 255).
    Save {
        sizes: Vec<usize>,
        truncate_back: Option<u64>,
        hard_state: Option<(u64, u8)>,
    },
    /// Save a snapshot somewhere in (last snapshot, commit].
    Snapshot(u8),
    /// Close, open at the last snapshot, read_all and compare with the model.
    Reopen,
    /// release_lock_to somewhere in [0, last index + 1].
    ReleaseLockTo(u8),
}

fn data_size() -> impl Strategy<Value = usize> {
    prop_oneof![0usize..3000, (0usize..375).prop_map(|k| k * 8)]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (
            prop::collection::vec(data_size(), 0..5),
            prop::option::weighted(0.25, 1u64..6),
            prop::option::weighted(0.7, (0u64..3, any::<u8>())),
        )
            .prop_map(|(sizes, truncate_back, hard_state)| Op::Save {
                sizes,
                truncate_back,
                hard_state,
            }),
        1 => any::<u8>().prop_map(Op::Snapshot),
        1 => Just(Op::Reopen),
        1 => any::<u8>().prop_map(Op::ReleaseLockTo),
    ]
}

/// The Raft log as the WAL should give it back.
#[derive(Debug)]
struct Model {
    /// The last snapshot saved: where the WAL is opened.
    snap: Snapshot,
    /// The entries after `snap.index`, with truncations applied.
    log: Vec<Entry>,
    /// Index of the last entry (at least `snap.index`).
    last: u64,
    term: u64,
    commit: u64,
    /// The last non-empty hard state saved.
    hard_state: HardState,
}

fn payload(index: u64, term: u64, size: usize) -> Vec<u8> {
    (0..size)
        .map(|i| (index as usize * 31 + term as usize * 7 + i) as u8)
        .collect()
}

const META: &[u8] = b"prop-meta";

fn check(w: &wal::Wal, dir: &Path, m: &Model) -> Result<(), TestCaseError> {
    let all = w
        .read_all()
        .map_err(|e| TestCaseError::fail(format!("read_all: {e}")))?;
    prop_assert_eq!(all.metadata.as_deref(), Some(META));
    prop_assert_eq!(all.hard_state, m.hard_state);
    prop_assert_eq!(all.entries.len(), m.log.len());
    prop_assert!(all.entries == m.log, "entries differ from the model");
    let verified =
        wal::verify(dir, &m.snap).map_err(|e| TestCaseError::fail(format!("verify: {e}")))?;
    prop_assert_eq!(verified, m.hard_state);
    Ok(())
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("wal");
    let opts = Options::new().segment_size(8 * 1024).unsafe_no_sync(true);
    let mut w = opts.create(&p, Some(META)).unwrap();
    let mut m = Model {
        snap: Snapshot::default(),
        log: Vec::new(),
        last: 0,
        term: 1,
        commit: 0,
        hard_state: HardState::default(),
    };
    let reopen = |w: wal::Wal, m: &Model| -> Result<wal::Wal, TestCaseError> {
        w.close().unwrap();
        let w = opts.open(&p, &m.snap).unwrap();
        check(&w, &p, m)?;
        // Like etcd's, read_all does not restore the WAL's last hard state, so a
        // segment cut before the next hard state is saved starts without one; the
        // model checks that a reader starting at a snapshot (at most the commit
        // index, which only a later hard state can advance) never misses it.
        Ok(w)
    };
    for op in ops {
        match op {
            Op::Save {
                sizes,
                truncate_back,
                hard_state,
            } => {
                let mut start = m.last + 1;
                if let (Some(back), false) = (truncate_back, sizes.is_empty()) {
                    // Only uncommitted entries can be overwritten, by a new term.
                    let lowest = m.commit + 1;
                    if m.last >= lowest {
                        start = (m.last + 1).saturating_sub(back).max(lowest);
                        m.term += 1;
                    }
                }
                let entries: Vec<Entry> = sizes
                    .iter()
                    .enumerate()
                    .map(|(i, &size)| {
                        let index = start + i as u64;
                        ent(index, m.term, &payload(index, m.term, size))
                    })
                    .collect();
                if !entries.is_empty() {
                    m.log.truncate((start - m.snap.index - 1) as usize);
                    m.log.extend(entries.iter().cloned());
                    m.last = start + entries.len() as u64 - 1;
                }
                let st = match hard_state {
                    Some((vote, frac)) => {
                        let commit = m.commit + (m.last - m.commit) * u64::from(frac) / 255;
                        let st = HardState {
                            term: m.term,
                            vote,
                            commit,
                        };
                        m.commit = commit;
                        m.hard_state = st;
                        st
                    }
                    None => HardState::default(),
                };
                w.save(&st, &entries).unwrap();
            }
            Op::Snapshot(frac) => {
                if m.commit > m.snap.index {
                    let span = m.commit - m.snap.index;
                    let index = m.snap.index + 1 + u64::from(frac) % span;
                    let k = (index - m.snap.index) as usize;
                    let term = m.log[k - 1].term;
                    let sn = Snapshot {
                        index,
                        term,
                        conf_state: Some(conf_state()),
                    };
                    w.save_snapshot(&sn).unwrap();
                    m.log.drain(..k);
                    m.snap = sn;
                }
            }
            Op::Reopen => w = reopen(w, &m)?,
            Op::ReleaseLockTo(frac) => {
                let index = (m.last + 2) * u64::from(frac) / 256;
                w.release_lock_to(index).unwrap();
            }
        }
    }
    let w = reopen(w, &m)?;
    w.close().unwrap();
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 32,
        ..ProptestConfig::default()
    })]

    #[test]
    fn model_based_random_operations(ops in prop::collection::vec(op(), 1..40)) {
        run(ops)?;
    }
}

/// `Options::purge` removes old segments once their locks are released, never the
/// ones the WAL still holds.
#[test]
fn purge_respects_locks() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wal");
    let opts = wal::Options::new().segment_size(4096);
    let w = opts.create(&dir, Some(b"purge")).unwrap();
    for i in 1..=60u64 {
        let e = ent(i, 1, &[7u8; 300]);
        w.save(
            &HardState {
                term: 1,
                vote: 1,
                commit: i,
            },
            &[e],
        )
        .unwrap();
    }
    let count = || {
        std::fs::read_dir(&dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".wal")
            })
            .count()
    };
    let before = count();
    assert!(before > 4, "{before} segments");
    // Everything is still locked: nothing goes.
    let r = opts.purge(&dir, 1).unwrap();
    assert!(r.removed.is_empty());
    assert!(r.locked.is_some());
    // Release all but the segments holding index 50 on; then purge down to 2.
    w.release_lock_to(50).unwrap();
    let r = opts.purge(&dir, 2).unwrap();
    assert!(!r.removed.is_empty(), "{r:?}");
    assert!(count() < before);
    w.close().unwrap();
    // Entries from the remaining segments still read back (at a snapshot past the
    // purged ones, as a restarting node would open).
    let names = wal_fileutil::read_dir(&dir).unwrap();
    let (_, first) =
        wal::parse_wal_name(names.iter().find(|n| n.ends_with(".wal")).unwrap()).unwrap();
    let snap = Snapshot {
        index: first,
        term: 1,
        conf_state: None,
    };
    let w = wal::open_for_read(&dir, &snap).unwrap();
    match w.read_all() {
        Ok(all) => assert_eq!(all.entries.last().unwrap().index, 60),
        Err(e) => {
            let all = e
                .into_partial()
                .expect("snapshot not found still returns entries");
            assert_eq!(all.entries.last().unwrap().index, 60);
        }
    }
}

/// A lock held for an instant (as a forked child holds its parent's descriptors
/// until `exec`) is waited out; one held for good still fails the open with `Locked`.
#[test]
fn open_rides_out_a_momentary_lock_holder() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wal");
    wal::create(&dir, Some(b"m")).unwrap().close().unwrap();
    let seg = dir.join(wal::wal_name(0, 0));
    let lock =
        || wal_fileutil::try_lock_file(&seg, &wal_fileutil::OpenOptions::read_write()).unwrap();

    let holder = lock();
    let release = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(20));
        drop(holder);
    });
    let w = wal::open(&dir, &Snapshot::default()).expect("the momentary holder is waited out");
    release.join().unwrap();
    drop(w);

    let _held = lock();
    let err = wal::open(&dir, &Snapshot::default()).unwrap_err();
    assert_eq!(err.kind(), wal::ErrorKind::Locked, "{err}");
}
