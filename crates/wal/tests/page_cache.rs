//! The performance levers that touch the disk and the page cache change nothing a
//! user can read: zero-filled segments (`Options::zero_fill_segments`) and
//! direct writes (`Options::direct_writes`) leave exactly etcd's bytes, names and
//! preallocated lengths; finished segments leave the
//! page cache (`Options::drop_finished_segments_from_cache`); entries read from
//! mapped segments outlive the files.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::Ordering;

use common::{wal_names as segment_names, Faults, TestFs};

use wal::raftpb::{Entry, HardState};
use wal::walpb::Snapshot;

fn ent(index: u64, len: usize) -> Entry {
    Entry {
        r#type: 0,
        term: 1,
        index,
        data: Some(vec![(index % 251) as u8; len].into()),
    }
}

/// Saves one entry of `len` bytes at `index`, committing it.
fn save_one(w: &wal::Wal, index: u64, len: usize) {
    let st = HardState {
        term: 1,
        vote: 1,
        commit: index,
    };
    w.save(&st, &[ent(index, len)]).unwrap();
}

/// Saves `n` entries of `len` bytes after `index` in one save, committing them;
/// `index` ends at the last.
fn save_batch(w: &wal::Wal, index: &mut u64, n: usize, len: usize) {
    let ents: Vec<Entry> = (0..n)
        .map(|_| {
            *index += 1;
            ent(*index, len)
        })
        .collect();
    let st = HardState {
        term: 1,
        vote: 1,
        commit: *index,
    };
    w.save(&st, &ents).unwrap();
}

/// Every file of `dir` with its bytes.
fn contents(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().into_string().unwrap(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

/// How a run writes: zero-filled segments, never synced, direct writes.
type Way = (bool, bool, bool);

/// Appends across several cuts, reopens, appends again; returns the directory.
fn run((zero_fill, no_sync, direct): Way, root: &Path) -> BTreeMap<String, Vec<u8>> {
    let dir = root.join(format!(
        "zero-fill-{zero_fill}-no-sync-{no_sync}-direct-{direct}"
    ));
    let opts = wal::Options::new()
        .segment_size(64 * 1024)
        .zero_fill_segments(zero_fill)
        .unsafe_no_sync(no_sync)
        .direct_writes(direct);
    let w = opts.create(&dir, Some(b"meta")).unwrap();
    let mut index = 0;
    for i in 0..60u64 {
        save_batch(
            &w,
            &mut index,
            (i % 7 + 1) as usize,
            100 + (i as usize * 37) % 3000,
        );
    }
    w.close().unwrap();
    let w = opts.open(&dir, &Snapshot::default()).unwrap();
    w.read_all().unwrap();
    for _ in 0..40 {
        index += 1;
        let st = HardState {
            term: 2,
            vote: 1,
            commit: index,
        };
        w.save(&st, &[ent(index, 2000)]).unwrap();
    }
    w.close().unwrap();
    contents(&dir)
}

#[test]
fn zero_filled_segments_are_byte_identical_to_fallocated_ones() {
    // Synced, and never synced (where the zeros only fill the page cache ahead);
    // written through the page cache and past it (on the target directory's
    // disk: tmpfs has no direct writes).
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let fallocated = run((false, false, false), tmp.path());
    assert!(
        fallocated.len() >= 4,
        "several cuts: {:?}",
        fallocated.keys()
    );
    for way in [
        (true, false, false),
        (true, true, false),
        (false, true, false),
        (true, false, true),
        (false, false, true),
    ] {
        let other = run(way, tmp.path());
        let what = format!("zero fill, no sync, direct: {way:?}");
        assert_eq!(
            other.keys().collect::<Vec<_>>(),
            fallocated.keys().collect::<Vec<_>>(),
            "{what}"
        );
        for (name, bytes) in &other {
            let want = &fallocated[name];
            assert_eq!(bytes.len(), want.len(), "{what}: {name}: length");
            assert!(bytes == want, "{what}: {name}: bytes differ");
        }
        // The tail keeps its preallocated length.
        let last = other.values().last().unwrap();
        assert_eq!(last.len(), 64 * 1024, "{what}");
    }
}

/// Bytes of `path` in the page cache, from util-linux's `fincore`; `None` when the
/// tool is missing (CI installs it, so there this is a failure).
fn cached_bytes(path: &Path) -> Option<u64> {
    let out = std::process::Command::new("fincore")
        .args(["--bytes", "--noheadings", "--raw", "-o", "RES"])
        .arg(path)
        .output();
    match out {
        Ok(o) if o.status.success() => Some(
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse()
                .expect("fincore prints a number"),
        ),
        _ => {
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "fincore (util-linux-extra) is missing and CI=true"
            );
            eprintln!("SKIPPED: fincore not installed (apt-get install util-linux-extra)");
            None
        }
    }
}

/// Writes 3 segments of 1 MiB; returns the cached bytes of the first (finished) one.
fn first_segment_cached(drop: bool, direct: bool, root: &Path) -> Option<u64> {
    let dir = root.join(format!("drop-{drop}-direct-{direct}"));
    let opts = wal::Options::new()
        .segment_size(1 << 20)
        .drop_finished_segments_from_cache(drop)
        .direct_writes(direct);
    let w = opts.create(&dir, None).unwrap();
    for index in 1..=600u64 {
        save_one(&w, index, 4000);
    }
    let first = dir.join("0000000000000000-0000000000000000.wal");
    let cached = cached_bytes(&first);
    w.close().unwrap();
    cached
}

#[test]
fn finished_segments_leave_the_page_cache_unless_asked_not_to() {
    // On the target directory's disk: tmpfs keeps its pages whatever we advise.
    let root = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let Some(dropped) = first_segment_cached(true, false, root.path()) else {
        return;
    };
    let kept = first_segment_cached(false, false, root.path()).unwrap();
    assert!(
        kept >= 1 << 20,
        "without the option the segment stays cached ({kept} bytes)"
    );
    assert!(
        dropped < 64 << 10,
        "a finished segment left {dropped} bytes cached"
    );
    // Written past the page cache, the records never enter it: what the
    // zero-fill cached, the writes over it took out again.
    if takes_direct_writes(root.path()) {
        let direct = first_segment_cached(false, true, root.path()).unwrap();
        assert!(
            direct < 64 << 10,
            "a segment written directly left {direct} bytes cached"
        );
    }
}

/// The cached bytes of the next segment a no-sync WAL's pipeline prepares, once
/// it is ready (`None` without `fincore`).
fn next_segment_cached(zero_fill: bool, root: &Path) -> Option<u64> {
    let dir = root.join(format!("next-{zero_fill}"));
    let opts = wal::Options::new()
        .segment_size(1 << 20)
        .unsafe_no_sync(true)
        .zero_fill_segments(zero_fill);
    let w = opts.create(&dir, None).unwrap();
    let next = dir.join("0.tmp");
    // The pipeline creates the file in the background: fincore fails until then.
    for _ in 0..200 {
        if next.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let mut cached = None;
    // A fallocated file never fills the cache: a short look is enough.
    for _ in 0..if zero_fill { 200 } else { 20 } {
        cached = cached_bytes(&next);
        if cached.is_none_or(|c| c >= 1 << 20) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    w.close().unwrap();
    cached
}

#[test]
fn a_wal_that_never_syncs_gets_its_next_segment_in_the_page_cache() {
    // With `unsafe_no_sync`, zero-filling writes the zeros without syncing them:
    // the next segment's pages are in the cache before the WAL appends to them.
    let root = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let Some(zeroed) = next_segment_cached(true, root.path()) else {
        return;
    };
    assert!(zeroed >= 1 << 20, "next segment: {zeroed} bytes cached");
    let fallocated = next_segment_cached(false, root.path()).unwrap();
    assert!(
        fallocated < 64 << 10,
        "without zero fill: {fallocated} bytes cached"
    );
}

/// `read_all` hands out finished segments' entries as slices of the mapped files;
/// they must stay intact after the WAL is closed and its files are purged (a Raft
/// node keeps its unapplied entries long after the segments are released).
#[test]
fn entries_outlive_their_segments() {
    let root = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let dir = root.path().join("wal");
    let opts = wal::Options::new().segment_size(64 * 1024);
    let w = opts.create(&dir, None).unwrap();
    let want: Vec<Entry> = (1..=300u64)
        .map(|i| ent(i, 700 + (i as usize % 13)))
        .collect();
    for chunk in want.chunks(7) {
        let st = HardState {
            term: 1,
            vote: 1,
            commit: chunk[0].index,
        };
        w.save(&st, chunk).unwrap();
    }
    w.close().unwrap();
    assert!(
        std::fs::read_dir(&dir).unwrap().count() > 3,
        "several segments"
    );
    let r = wal::open_for_read(&dir, &Snapshot::default()).unwrap();
    let got = r.read_all().unwrap().entries;
    r.close().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    // Something else now reuses the freed blocks and pages.
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("other"), vec![0xffu8; 4 << 20]).unwrap();
    assert_eq!(got, want);
}

/// The files of `dir` that this process has mapped (`/proc/self/maps`).
fn mapped_files(dir: &Path) -> Vec<String> {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let dir = format!("{}/", dir.to_string_lossy());
    let mut names: Vec<String> = maps
        .lines()
        .filter_map(|l| l.split_once(&*dir))
        .map(|(_, name)| name.to_string())
        .collect();
    names.dedup();
    names
}

/// Saves `per_save` bytes of entries at a time, never syncing, over 3 cuts of
/// 1 MiB segments; returns the mapped files of the WAL's directory then.
fn mapped_after_cuts(per_save: usize, root: &Path) -> Vec<String> {
    let dir = root.join(format!("map-{per_save}"));
    let opts = wal::Options::new()
        .segment_size(1 << 20)
        .unsafe_no_sync(true);
    let w = opts.create(&dir, None).unwrap();
    let third = |w: &wal::Wal| {
        let tail = w.tail_path().unwrap();
        let name = tail.file_name().unwrap().to_string_lossy().into_owned();
        name.starts_with("0000000000000003-")
    };
    let mut index = 0;
    while !third(&w) {
        index += 1;
        save_one(&w, index, per_save);
        if index % 500 == 0 {
            // Time for the pipeline to prepare the next segment in full.
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
    let mapped = mapped_files(&dir);
    w.close().unwrap();
    mapped
}

#[test]
fn a_wal_that_never_syncs_maps_its_segments_only_while_its_writes_are_small() {
    // Small saves go into a mapping of the (zero-filled) tail; large ones take
    // pwrite anyway, so once the WAL has seen them its next segments are not
    // mapped (the mapping would only cost populating and unmapping).
    let root = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let large = mapped_after_cuts(100_000, root.path());
    assert!(large.is_empty(), "100 KB saves, mapped: {large:?}");
    if !wal_fileutil::overwrites_in_place(root.path()) {
        eprintln!("SKIPPED: writes are never mapped on this file system");
        return;
    }
    let small = mapped_after_cuts(100, root.path());
    assert!(
        small.iter().any(|n| n.starts_with("0000000000000003-")),
        "100 B saves: the tail is mapped: {small:?}"
    );
}

/// A closed WAL in `root/wal` of `entries` entries of `len` bytes, `per_save` to a
/// save, in segments of `segment` bytes dropped from the page cache as they
/// finish; returns the directory, the options and the last index.
fn cold_wal(
    root: &Path,
    segment: u64,
    entries: u64,
    per_save: usize,
    len: usize,
) -> (std::path::PathBuf, wal::Options, u64) {
    let dir = root.join("wal");
    let opts = wal::Options::new()
        .segment_size(segment)
        .drop_finished_segments_from_cache(true);
    let w = opts.create(&dir, Some(b"meta")).unwrap();
    let mut index = 0;
    while index < entries {
        save_batch(&w, &mut index, per_save, len);
    }
    w.close().unwrap();
    (dir, opts, index)
}

#[test]
fn a_cold_streaming_replay_reads_the_segments_ahead_of_the_decoder() {
    let root = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    // About 40 MiB in segments of 4 MiB.
    let (dir, _, index) = cold_wal(root.path(), 4 << 20, 10 * 1024, 256, 4000);
    let mut segs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .collect();
    segs.sort();
    assert!(segs.len() >= 8, "{} segments", segs.len());
    let Some(cold) = cached_bytes(&segs[4]) else {
        return;
    };
    if cold >= 1 << 20 {
        eprintln!("SKIPPED: this file system kept the finished segments cached");
        return;
    }
    // Without the helper, the kernel's readahead stays within the first segment.
    let off = wal::Options::new().read_ahead(false);
    let mut replay = wal::Replay::open_with(&off, &dir, &Snapshot::default()).unwrap();
    assert!(replay.next().unwrap().is_ok());
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(
        cached_bytes(&segs[4]).unwrap() < 1 << 20,
        "read ahead with read_ahead(false): {} bytes cached",
        cached_bytes(&segs[4]).unwrap()
    );
    drop(replay);
    let mut replay = wal::Replay::open(&dir, &Snapshot::default()).unwrap();
    // The decoder has read one chunk of the first segment; the helper goes on
    // into the segments after it (16 MiB in lies within its 32 MiB).
    assert!(replay.next().unwrap().is_ok());
    let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while cached_bytes(&segs[4]).unwrap() < 4 << 20 && std::time::Instant::now() < end {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert!(
        cached_bytes(&segs[4]).unwrap() >= 4 << 20,
        "the fifth segment was not read ahead: {} bytes cached",
        cached_bytes(&segs[4]).unwrap()
    );
    // What it reads is the log, whole.
    let mut entries = 0;
    for ev in replay {
        if let wal::Event::Entry(e) = ev.unwrap() {
            entries += 1;
            assert_eq!(e.index, entries);
        }
    }
    assert_eq!(entries, index);
}

/// Drops every file of `dir` from the page cache.
fn drop_from_cache(dir: &Path) {
    for e in std::fs::read_dir(dir).unwrap() {
        let f = wal_fileutil::os()
            .open(&e.unwrap().path(), &wal_fileutil::OpenOptions::read())
            .unwrap();
        f.drop_cache().unwrap();
    }
}

#[test]
fn a_cold_read_all_reads_every_entry() {
    // Finished segments dropped from the page cache: read_all, verify and
    // valid_snapshot_entries read them ahead instead of faulting their pages in
    // one by one, and still read the log whole; with read_ahead(false) too.
    let root = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let (dir, opts, mut index) = cold_wal(root.path(), 1 << 20, 2000, 100, 3000);
    let snap = Snapshot::default();
    assert_eq!(wal::verify(&dir, &snap).unwrap().commit, index);
    drop_from_cache(&dir);
    assert_eq!(
        wal::valid_snapshot_entries(&dir).unwrap(),
        vec![snap.clone()]
    );
    drop_from_cache(&dir);
    let off = opts.clone().read_ahead(false);
    assert_eq!(
        wal::verify::verify_with(&off, &dir, &snap).unwrap().commit,
        index
    );
    drop_from_cache(&dir);
    let all = off.open_for_read(&dir, &snap).unwrap().read_all().unwrap();
    assert_eq!(all.entries.len() as u64, index);
    drop(all);
    drop_from_cache(&dir);
    let w = opts.open(&dir, &Snapshot::default()).unwrap();
    let all = w.read_all().unwrap();
    assert_eq!(all.metadata.as_deref(), Some(&b"meta"[..]));
    assert_eq!(all.entries.len() as u64, index);
    for (i, e) in all.entries.iter().enumerate() {
        assert_eq!(e.index, i as u64 + 1);
        assert_eq!(
            e.data.as_deref(),
            Some(&vec![(e.index % 251) as u8; 3000][..])
        );
    }
    assert_eq!(all.hard_state.commit, index);
    // The WAL appends after what it read.
    save_batch(&w, &mut index, 1, 10);
    w.close().unwrap();
}

/// Whether the WAL writes segments under `dir` directly (ext4 and xfs).
fn takes_direct_writes(dir: &Path) -> bool {
    use nix::sys::statfs::{statfs, EXT4_SUPER_MAGIC, XFS_SUPER_MAGIC};
    let fs = statfs(dir).unwrap().filesystem_type();
    fs == EXT4_SUPER_MAGIC || fs == XFS_SUPER_MAGIC
}

/// Whether the last page of the newest segment in `dir` holds written blocks
/// (zero-filled) rather than merely `fallocate`d ones, which `SEEK_DATA`
/// reports as a hole on ext4 and xfs.
fn tail_end_written(dir: &Path, segment: u64) -> bool {
    let names = segment_names(dir);
    let tail = std::fs::File::open(dir.join(names.last().unwrap())).unwrap();
    let last_page = (segment - 4096) as i64;
    match nix::unistd::lseek(&tail, last_page, nix::unistd::Whence::SeekData) {
        Ok(at) => at == last_page,
        Err(nix::errno::Errno::ENXIO) => false,
        Err(e) => panic!("SEEK_DATA: {e}"),
    }
}

/// Saves of `len` bytes across six cuts of 4 MB segments, slowly enough that
/// the pipeline never backs off from zero-filling, then one small save;
/// returns whether the tail's last page was written (zero-filled).
fn tail_zero_filled_after_saves_of(len: usize, direct: bool, root: &Path) -> bool {
    let dir = root.join(format!("saves-{len}-direct-{direct}"));
    tail_zero_filled_after(wal::Options::new().direct_writes(direct), len, &dir)
}

/// [`tail_zero_filled_after_saves_of`] with `opts`, in `dir`.
fn tail_zero_filled_after(opts: wal::Options, len: usize, dir: &Path) -> bool {
    let segment = 4 << 20;
    let opts = opts.segment_size(segment);
    let w = opts.create(dir, None).unwrap();
    let mut index = 0;
    while segment_names(dir).len() < 7 {
        index += 1;
        save_one(&w, index, len);
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    save_one(&w, index + 1, 100);
    w.close().unwrap();
    tail_end_written(dir, segment)
}

/// Whether files in `dir` take `WalFile::write_zeroes` (the device zeroes by
/// unmapping, Linux 6.17 and later).
fn device_writes_zeroes(dir: &Path) -> bool {
    let path = dir.join("write-zeroes-probe");
    let mut f = wal_fileutil::os()
        .open(&path, &wal_fileutil::OpenOptions::write().create(true))
        .unwrap();
    let zeroed = f.write_zeroes(4096).unwrap();
    drop(f);
    std::fs::remove_file(&path).unwrap();
    zeroed
}

/// A temporary directory on the build's disk if that is ext4 or xfs, which
/// take direct writes and tell written blocks from `fallocate`d ones
/// (`SEEK_DATA`); `None` (the test skipped) elsewhere.
fn ext4_or_xfs_root() -> Option<tempfile::TempDir> {
    let root = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    if takes_direct_writes(root.path()) {
        return Some(root);
    }
    eprintln!("SKIPPED: no direct writes and no SEEK_DATA holes on this file system");
    None
}

#[test]
fn a_wal_of_large_direct_syncs_gets_etcds_segments() {
    // Past the page cache, syncs of several hundred KB run faster into
    // fallocated segments than into zero-filled ones (lever 23): once a
    // segment has shown them, the next ones are prepared etcd's way.
    let Some(root) = ext4_or_xfs_root() else {
        return;
    };
    // Unless the device makes zeros without writing them: then every segment
    // gets them.
    assert_eq!(
        tail_zero_filled_after_saves_of(400_000, true, root.path()),
        device_writes_zeroes(root.path()),
        "400 KB direct syncs: the tail was zero-filled, without write-zeroes (or not, with)"
    );
    assert!(
        tail_zero_filled_after_saves_of(100_000, true, root.path()),
        "100 KB direct syncs: the tail was not zero-filled"
    );
    assert!(
        tail_zero_filled_after_saves_of(400_000, false, root.path()),
        "400 KB syncs through the page cache: the tail was not zero-filled"
    );
}

#[test]
fn a_wal_whose_direct_writes_are_refused_zero_fills_and_stops_asking() {
    // A kernel that takes O_DIRECT but refuses the writes' alignment: the
    // segment's writes went through the page cache, so lever 23's advice for
    // direct writes does not apply, and later segments are not asked again.
    let Some(root) = ext4_or_xfs_root() else {
        return;
    };
    let fs = TestFs::with(Faults {
        refuse_direct: true,
        ..Faults::default()
    });
    let dir = root.path().join("refused");
    assert!(
        tail_zero_filled_after(fs.options(), 400_000, &dir),
        "400 KB syncs refused direct writes: the tail was not zero-filled"
    );
    assert_eq!(
        fs.direct_asks.load(Ordering::SeqCst),
        1,
        "segments after the refusal were asked for direct writes"
    );
}

/// Saves across three cuts of 1 MB segments on `fs`, in `dir`; returns the
/// directory's files and the bytes the WAL wrote through `write`.
fn saves_across_cuts(fs: &TestFs, dir: &Path) -> (BTreeMap<String, Vec<u8>>, u64) {
    let w = fs
        .options()
        .segment_size(1 << 20)
        .create(dir, Some(b"meta"))
        .unwrap();
    let mut index = 0;
    while segment_names(dir).len() < 4 {
        save_batch(&w, &mut index, 10, 1000);
    }
    // A tail with records in it: zeros written over its first part would be
    // bytes written beyond what the files hold.
    for _ in 0..20 {
        save_batch(&w, &mut index, 10, 1000);
    }
    w.close().unwrap();
    let w = wal::open(dir, &Snapshot::default()).unwrap();
    assert_eq!(w.read_all().unwrap().entries.len() as u64, index);
    w.close().unwrap();
    (contents(dir), fs.bytes_written.load(Ordering::SeqCst))
}

#[test]
fn a_device_that_writes_zeroes_makes_every_segments_zeros_itself() {
    // Where the device zeroes by unmapping, `create` and the pipeline have it
    // make each segment's zeros: none go through `write`, and the files are
    // those of a WAL on a disk without it.
    let root = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let device = TestFs::with(Faults {
        write_zeroes: true,
        ..Faults::default()
    });
    let (files, written) = saves_across_cuts(&device, &root.path().join("device"));
    let disk = TestFs::default();
    let (files_without, written_without) = saves_across_cuts(&disk, &root.path().join("disk"));
    assert_eq!(files, files_without);
    // The first segment's and the three prepared ones'.
    assert!(device.write_zeroes_asks.load(Ordering::SeqCst) >= 4);
    // Every byte the WAL wrote is in its files, which hold no zeros but the
    // tail's preallocated end (and the padding of records).
    let on_disk: u64 = files.values().map(|b| b.len() as u64).sum();
    assert!(
        written <= on_disk,
        "{written} bytes written for {on_disk} on disk"
    );
    // Without it, at least the first segment's zeros go through `write` (the
    // pipeline's may back off on a slow disk).
    assert!(
        written_without >= written + (1 << 20),
        "{written_without} bytes written without write-zeroes, {written} with"
    );
    assert_eq!(disk.write_zeroes_asks.load(Ordering::SeqCst), 2);
    // A write-zeroes that fails is one refused: the zeros are written.
    let failing = TestFs::with(Faults {
        write_zeroes: true,
        fail_write_zeroes: true,
        ..Faults::default()
    });
    let (files_failing, written_failing) =
        saves_across_cuts(&failing, &root.path().join("failing"));
    assert_eq!(files_failing, files_without);
    assert!(written_failing >= written + (1 << 20));
    assert_eq!(failing.write_zeroes_asks.load(Ordering::SeqCst), 2);
}
