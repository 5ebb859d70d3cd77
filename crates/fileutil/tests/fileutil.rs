//! Directory helpers, the OsFs seam and WalFile methods (etcd fileutil_test.go,
//! read_dir_test.go), including error paths.
//!
//! We run as root, so permission-based failures (chmod 0444 on a directory,
//! etcd's TestIsDirWriteable second half) cannot be provoked: root bypasses
//! DAC checks. Error paths are provoked instead with missing paths, regular
//! files used as directories (ENOTDIR), directories opened for writing
//! (EISDIR), read-only descriptors (EBADF) and /proc/self, where nobody can
//! create files.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use wal_fileutil::{
    create_dir_all, dir_empty, exist, fsync_dir, is_dir_writeable, os, overwrites_in_place,
    read_dir, read_dir_ext, touch_dir_all, Error, FileSystem, LockMode, OpenOptions, OsFs,
    PRIVATE_DIR_MODE, PRIVATE_FILE_MODE,
};

fn mode_of(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// A regular file to misuse as a directory.
fn regular_file(dir: &Path) -> std::path::PathBuf {
    let f = dir.join("regular");
    std::fs::write(&f, b"x").unwrap();
    f
}

#[test]
fn is_dir_writeable_ok_and_leaves_nothing() {
    // etcd: TestIsDirWriteable (the chmod-0444 half cannot fail for root)
    let dir = tempfile::tempdir().unwrap();
    is_dir_writeable(dir.path()).unwrap();
    assert!(read_dir(dir.path()).unwrap().is_empty());
}

#[test]
fn is_dir_writeable_errors() {
    let dir = tempfile::tempdir().unwrap();
    let err = is_dir_writeable(&dir.path().join("missing")).unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert_eq!(err.path(), dir.path().join("missing/.touch"));

    let file = regular_file(dir.path());
    let err = is_dir_writeable(&file).unwrap_err();
    assert_eq!(err.io_kind(), Some(io::ErrorKind::NotADirectory), "{err}");

    // A kernel directory where even root cannot create files.
    if Path::new("/proc/self").is_dir() {
        let err = is_dir_writeable(Path::new("/proc/self")).unwrap_err();
        assert!(matches!(err, Error::Io { op: "open", .. }), "{err}");
    }
}

#[test]
fn create_dir_all_creates_private_dirs_and_requires_empty() {
    // etcd: TestCreateDirAll, TestDirPermission
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a/b/testdir");
    create_dir_all(&dir).unwrap();
    assert!(dir.is_dir());
    assert_eq!(mode_of(&dir), PRIVATE_DIR_MODE);
    assert_eq!(mode_of(&tmp.path().join("a")), PRIVATE_DIR_MODE);
    // an empty existing dir is fine
    create_dir_all(&dir).unwrap();

    std::fs::write(dir.join("text.txt"), b"test text").unwrap();
    let err = create_dir_all(&dir).unwrap_err();
    assert!(err.to_string().contains("to be empty, got"), "{err}");
    assert!(err.to_string().contains("text.txt"), "{err}");
    assert_eq!(err.io_kind(), Some(io::ErrorKind::DirectoryNotEmpty));
    assert_eq!(err.path(), dir);
}

#[test]
fn create_dir_all_under_regular_file_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let file = regular_file(tmp.path());
    let err = create_dir_all(&file.join("sub")).unwrap_err();
    assert!(matches!(err, Error::Io { op: "mkdir", .. }), "{err}");
    assert_eq!(err.io_kind(), Some(io::ErrorKind::NotADirectory));
    // the path itself is a file: it "exists", so the writability probe fails
    let err = create_dir_all(&file).unwrap_err();
    assert_eq!(err.io_kind(), Some(io::ErrorKind::NotADirectory), "{err}");
}

#[test]
fn touch_dir_all_creates_or_accepts_existing() {
    // etcd: TestTouchDirAll
    let tmp = tempfile::tempdir().unwrap();
    touch_dir_all(tmp.path()).unwrap();
    std::fs::write(tmp.path().join("keep"), b"").unwrap();
    // not-empty is fine for Touch
    touch_dir_all(tmp.path()).unwrap();
    let nested = tmp.path().join("x/y");
    touch_dir_all(&nested).unwrap();
    assert_eq!(mode_of(&nested), PRIVATE_DIR_MODE);
    // an existing directory with other permissions only warns
    let loose = tmp.path().join("loose");
    std::fs::create_dir(&loose).unwrap();
    std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o755)).unwrap();
    touch_dir_all(&loose).unwrap();
    assert_eq!(mode_of(&loose), 0o755);

    let file = regular_file(tmp.path());
    assert!(touch_dir_all(&file.join("sub")).is_err());
}

#[test]
fn exist_dir_file_and_removed() {
    // etcd: TestExist
    let tmp = tempfile::tempdir().unwrap();
    assert!(exist(tmp.path()));
    let f = regular_file(tmp.path());
    assert!(exist(&f));
    std::fs::remove_file(&f).unwrap();
    assert!(!exist(&f));
    assert!(!exist(&f.join("below")));
}

#[test]
fn dir_empty_cases() {
    // etcd: TestDirEmpty
    let tmp = tempfile::tempdir().unwrap();
    assert!(dir_empty(tmp.path()));
    let f = regular_file(tmp.path());
    assert!(!dir_empty(tmp.path()));
    assert!(!dir_empty(&f), "a file is not an empty dir");
    assert!(!dir_empty(&tmp.path().join("missing")));
}

#[test]
fn read_dir_sorted_and_with_ext() {
    // etcd: TestReadDir
    let tmp = tempfile::tempdir().unwrap();
    common::touch_all(tmp.path(), &["def", "abc", "xyz", "ghi"]);
    assert_eq!(read_dir(tmp.path()).unwrap(), ["abc", "def", "ghi", "xyz"]);

    common::touch_all(tmp.path(), &["def.wal", "abc.wal", "xyz.wal", "ghi.wal"]);
    assert_eq!(
        read_dir_ext(tmp.path(), ".wal").unwrap(),
        ["abc.wal", "def.wal", "ghi.wal", "xyz.wal"]
    );
    // Go filepath.Ext semantics: only the last extension counts, and a
    // dot-file's whole name is its extension.
    common::touch_all(tmp.path(), &["a.wal.tmp", ".wal", "b.snap.wal"]);
    assert_eq!(
        read_dir_ext(tmp.path(), ".wal").unwrap(),
        [
            ".wal",
            "abc.wal",
            "b.snap.wal",
            "def.wal",
            "ghi.wal",
            "xyz.wal"
        ]
    );
    assert_eq!(read_dir_ext(tmp.path(), "").unwrap().len(), 11);
    // sub-directories are listed too (etcd uses Readdirnames)
    std::fs::create_dir(tmp.path().join("0dir")).unwrap();
    assert_eq!(read_dir(tmp.path()).unwrap()[..2], [".wal", "0dir"]);
}

#[test]
fn read_dir_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("missing");
    let err = read_dir(&missing).unwrap_err();
    assert!(err.is_not_found());
    assert_eq!(err.path(), missing);
    assert!(err.to_string().starts_with("readdir "), "{err}");
    assert!(read_dir_ext(&missing, ".wal").unwrap_err().is_not_found());
    let file = regular_file(tmp.path());
    let err = read_dir(&file).unwrap_err();
    assert_eq!(err.io_kind(), Some(io::ErrorKind::NotADirectory));
}

#[test]
fn fsync_dir_ok_and_errors() {
    let tmp = tempfile::tempdir().unwrap();
    fsync_dir(tmp.path()).unwrap();
    assert!(fsync_dir(&tmp.path().join("missing"))
        .unwrap_err()
        .is_not_found());
    let file = regular_file(tmp.path());
    assert!(fsync_dir(&file.join("x")).is_err());
}

#[test]
fn zero_to_end_keeps_size_and_offset() {
    // etcd: TestZeroToEnd, plus size / block / untouched-prefix checks
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("f");
    let mut f = os()
        .open(&path, &OpenOptions::read_write().create(true))
        .unwrap();
    // 0 size is a no-op (no EINVAL from fallocate)
    f.zero_to_end().unwrap();
    assert_eq!(f.len().unwrap(), 0);

    f.write_all(&[12u8; 1024]).unwrap();
    f.seek(SeekFrom::Start(512)).unwrap();
    f.zero_to_end().unwrap();
    assert_eq!(f.stream_position().unwrap(), 512);
    assert_eq!(f.len().unwrap(), 1024);
    let mut b = vec![1u8; 512];
    f.read_exact(&mut b).unwrap();
    assert!(b.iter().all(|&x| x == 0));
    let mut head = vec![0u8; 512];
    assert_eq!(f.read_at(&mut head, 0).unwrap(), 512);
    assert!(head.iter().all(|&x| x == 12));
    let (size, blocks) = common::size_and_blocks(&path);
    assert_eq!(size, 1024);
    assert!(blocks * 512 >= 1024, "blocks stay allocated: {blocks}");
}

#[test]
fn zero_to_end_at_end_and_at_zero() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("f");
    let mut f = os()
        .open(&path, &OpenOptions::read_write().create(true))
        .unwrap();
    f.write_all(&[7u8; 100]).unwrap();
    // at the end: nothing to zero
    f.zero_to_end().unwrap();
    assert_eq!(f.stream_position().unwrap(), 100);
    assert_eq!(std::fs::read(&path).unwrap(), vec![7u8; 100]);
    // from zero: all zeros, same size
    f.seek(SeekFrom::Start(0)).unwrap();
    f.zero_to_end().unwrap();
    assert_eq!(f.stream_position().unwrap(), 0);
    assert_eq!(std::fs::read(&path).unwrap(), vec![0u8; 100]);
}

#[test]
fn zero_to_end_on_read_only_file_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("f");
    std::fs::write(&path, [1u8; 64]).unwrap();
    let mut f = os().open(&path, &OpenOptions::read()).unwrap();
    f.seek(SeekFrom::Start(10)).unwrap();
    let err = f.zero_to_end().unwrap_err();
    assert!(matches!(err, Error::Io { op: "truncate", .. }), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), vec![1u8; 64]);
}

#[test]
fn os_fs_open_modes_and_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let fs = OsFs;
    let p = tmp.path().join("new");

    let missing = fs.open(&p, &OpenOptions::write()).unwrap_err();
    assert!(missing.is_not_found());
    assert!(missing.to_string().starts_with("open "), "{missing}");

    let f = fs.open(&p, &OpenOptions::write().create_new(true)).unwrap();
    assert_eq!(f.path(), p);
    assert_eq!(mode_of(&p), PRIVATE_FILE_MODE);
    drop(f);
    let err = fs
        .open(&p, &OpenOptions::write().create_new(true))
        .unwrap_err();
    assert_eq!(err.io_kind(), Some(io::ErrorKind::AlreadyExists));

    let q = tmp.path().join("custom");
    drop(
        fs.open(&q, &OpenOptions::write().create(true).mode(0o640))
            .unwrap(),
    );
    assert_eq!(mode_of(&q), 0o640);

    // truncate
    std::fs::write(&q, b"abc").unwrap();
    drop(fs.open(&q, &OpenOptions::write().truncate(true)).unwrap());
    assert_eq!(fs.file_len(&q).unwrap(), 0);

    // a path below a regular file
    let under = fs
        .open(&q.join("x"), &OpenOptions::write().create(true))
        .unwrap_err();
    assert_eq!(under.io_kind(), Some(io::ErrorKind::NotADirectory));

    // a directory cannot be opened for writing, even by root (EISDIR); a
    // 0444 file could be, since root bypasses permission bits
    let err = fs.open(tmp.path(), &OpenOptions::write()).unwrap_err();
    assert!(matches!(err, Error::Io { op: "open", .. }), "{err}");
    assert_eq!(err.io_kind(), Some(io::ErrorKind::IsADirectory));

    // writing through a read-only descriptor fails at the Write layer
    let mut ro = fs.open(&p, &OpenOptions::read()).unwrap();
    assert!(ro.write_all(b"x").is_err());
    assert!(ro.set_len(10).is_err());
    assert!(ro.preallocate(4096, true).is_err());

    // a lock needs a descriptor open for writing (OFD write lock)
    let err = fs
        .open(&p, &OpenOptions::read().lock(LockMode::Try))
        .unwrap_err();
    assert!(!err.is_locked(), "{err}");
}

#[test]
fn os_fs_path_operations() {
    let tmp = tempfile::tempdir().unwrap();
    let fs = os();
    let d = tmp.path().join("d/e");
    fs.create_dir_all(&d).unwrap();
    assert_eq!(mode_of(&d), PRIVATE_DIR_MODE);
    fs.create_dir_all(&d).unwrap();
    let a = d.join("a");
    std::fs::write(&a, b"12345").unwrap();
    assert!(fs.exists(&a));
    assert_eq!(fs.file_len(&a).unwrap(), 5);
    let b = d.join("b");
    fs.rename(&a, &b).unwrap();
    assert!(!fs.exists(&a));
    assert_eq!(fs.read_dir(&d).unwrap(), ["b"]);
    fs.fsync_dir(&d).unwrap();

    let err = fs.rename(&a, &b).unwrap_err();
    assert!(err.is_not_found());
    assert_eq!(err.path(), a);
    fs.remove_file(&b).unwrap();
    assert!(fs.remove_file(&b).unwrap_err().is_not_found());
    assert!(fs.file_len(&b).unwrap_err().is_not_found());
    let file = regular_file(tmp.path());
    assert!(fs.create_dir_all(&file.join("x")).is_err());

    fs.remove_dir_all(&tmp.path().join("d")).unwrap();
    assert!(!fs.exists(&d));
    assert!(fs
        .remove_dir_all(&tmp.path().join("d"))
        .unwrap_err()
        .is_not_found());
}

#[test]
fn wal_file_len_sync_set_len_read_at() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("f");
    let mut f = os()
        .open(&p, &OpenOptions::read_write().create(true))
        .unwrap();
    assert!(f.is_empty().unwrap());
    f.write_all(b"hello world").unwrap();
    f.sync_data().unwrap();
    f.sync_all().unwrap();
    assert_eq!(f.len().unwrap(), 11);
    assert!(!f.is_empty().unwrap());

    let pos = f.stream_position().unwrap();
    let mut buf = [0u8; 5];
    assert_eq!(f.read_at(&mut buf, 6).unwrap(), 5);
    assert_eq!(&buf, b"world");
    assert_eq!(f.read_at(&mut buf, 11).unwrap(), 0);
    assert_eq!(
        f.stream_position().unwrap(),
        pos,
        "read_at keeps the offset"
    );

    f.set_len(5).unwrap();
    assert_eq!(f.len().unwrap(), 5);
    assert_eq!(
        f.stream_position().unwrap(),
        pos,
        "set_len keeps the offset"
    );
    f.set_len(100).unwrap();
    assert_eq!(std::fs::metadata(&p).unwrap().len(), 100);

    // read_at on a write-only descriptor
    let wo = os().open(&p, &OpenOptions::write()).unwrap();
    let err = wo.read_at(&mut buf, 0).unwrap_err();
    assert!(matches!(err, Error::Io { op: "pread", .. }), "{err}");
    assert!(format!("{wo:?}").contains("f"));
}

#[test]
fn error_accessors_and_display() {
    let p = Path::new("/x/y");
    let locked = Error::Locked { path: p.into() };
    assert!(locked.is_locked() && !locked.is_no_space() && !locked.is_not_found());
    assert_eq!(locked.io_kind(), None);
    assert_eq!(locked.to_string(), "/x/y is locked by another process");

    let nospc = Error::from_io("write", p, io::Error::from_raw_os_error(28));
    assert!(nospc.is_no_space(), "ENOSPC");
    assert_eq!(nospc.to_string(), "no space left on device: write /x/y");
    let dquot = Error::from_io("write", p, io::Error::from_raw_os_error(122));
    assert!(dquot.is_no_space(), "EDQUOT");
    let synthetic = Error::from_io("write", p, io::Error::from(io::ErrorKind::StorageFull));
    assert!(synthetic.is_no_space());

    let nf = Error::from_io("open", p, io::Error::from_raw_os_error(2));
    assert!(nf.is_not_found() && !nf.is_no_space());
    assert_eq!(nf.path(), p);
    assert!(nf.to_string().starts_with("open /x/y: "), "{nf}");
    use std::error::Error as _;
    assert!(nf.source().is_some());
    assert!(locked.source().is_none());
}

/// `map` shows a file's bytes (an empty file as none), and they stay valid after
/// the file is closed and removed.
#[test]
fn map_shows_the_file_and_outlives_it() {
    let dir = tempfile::tempdir().unwrap();
    let fs = wal_fileutil::os();
    let empty = dir.path().join("empty");
    std::fs::write(&empty, b"").unwrap();
    let f = fs.open(&empty, &OpenOptions::read()).unwrap();
    assert_eq!(f.map().unwrap().unwrap().len(), 0);

    let path = dir.path().join("data");
    let want: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&path, &want).unwrap();
    let f = fs.open(&path, &OpenOptions::read()).unwrap();
    // Dropping the page cache changes nothing a reader sees.
    f.drop_cache().unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), want);
    let bytes = f.map().unwrap().unwrap();
    drop(f);
    std::fs::remove_file(&path).unwrap();
    assert_eq!(&bytes[..], &want[..]);
}

#[test]
fn mapped_writes_land_in_the_file_and_past_the_map_grow_it() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("mapped");
    let fs = os();
    let mut f = fs
        .open(&p, &OpenOptions::read_write().create(true))
        .unwrap();
    // An empty file has nothing to map: writes stay write(2)s.
    assert!(!f.map_writes(u64::MAX).unwrap());
    assert_eq!(f.populate_writes(4096).unwrap(), 0, "nothing mapped");
    f.preallocate(8192, true).unwrap();
    f.seek(SeekFrom::Start(100)).unwrap();
    // Mapped where overwriting never allocates (ext4, xfs, tmpfs: CI's disk).
    let mapped = f.map_writes(u64::MAX).unwrap();
    assert_eq!(mapped, overwrites_in_place(tmp.path()));
    if mapped {
        assert_eq!(f.populate_writes(4096).unwrap(), 4096);
        assert_eq!(f.populate_writes(1 << 20).unwrap(), 4096, "the rest");
    }
    assert_eq!(f.populate_writes(1 << 20).unwrap(), 0, "all populated");
    assert_eq!(f.stream_position().unwrap(), 100, "the offset carries over");
    f.write_all(&[1u8; 8000]).unwrap();
    // Crosses the mapped end (8192): the rest extends the file as write(2) would.
    f.write_all(&[2u8; 200]).unwrap();
    let mut want = vec![0u8; 100];
    want.extend([1u8; 8000]);
    want.extend([2u8; 200]);
    assert_eq!(std::fs::read(&p).unwrap(), want, "visible before any sync");
    assert_eq!(f.len().unwrap(), 8300);
    assert_eq!(f.seek(SeekFrom::End(0)).unwrap(), 8300);
    assert_eq!(f.seek(SeekFrom::Current(-300)).unwrap(), 8000);
    let mut back = [0u8; 300];
    f.read_exact(&mut back).unwrap();
    assert_eq!(&back[..], &want[8000..]);
    let err = f.seek(SeekFrom::Current(-9000)).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert_eq!(
        f.stream_position().unwrap(),
        8300,
        "a failed seek moves nothing"
    );
    f.sync_data().unwrap();
    // Truncating unmaps first (no page past the end stays mapped) and keeps the offset.
    f.set_len(4096).unwrap();
    assert_eq!(f.stream_position().unwrap(), 8300);
    // Into what was mapped and is now past the end: a mapped write would SIGBUS.
    f.seek(SeekFrom::Start(5000)).unwrap();
    f.write_all(&[3u8; 4]).unwrap();
    let got = std::fs::read(&p).unwrap();
    assert_eq!(got.len(), 5004);
    assert_eq!(&got[..4096], &want[..4096]);
    assert!(got[4096..5000].iter().all(|&b| b == 0));
    assert_eq!(&got[5000..], &[3u8; 4]);
}

#[test]
fn a_mapped_file_releases_its_lock_when_dropped() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("locked");
    let fs = os();
    let opts = OpenOptions::read_write().create(true).lock(LockMode::Try);
    let mut f = fs.open(&p, &opts).unwrap();
    f.preallocate(4096, true).unwrap();
    assert_eq!(f.map_writes(4096).unwrap(), overwrites_in_place(tmp.path()));
    f.write_all(b"held").unwrap();
    assert!(fs.open(&p, &opts).is_err(), "locked while open");
    drop(f);
    // The mapping holds the open file description too: it must be gone as well.
    let again = fs.open(&p, &opts).unwrap();
    assert_eq!(&std::fs::read(again.path()).unwrap()[..4], b"held");
}

#[test]
fn mapping_a_write_only_file_is_an_error_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("write-only");
    let mut f = os().open(&p, &OpenOptions::write().create(true)).unwrap();
    f.preallocate(4096, true).unwrap();
    if !overwrites_in_place(tmp.path()) {
        // Never mapped there, so never an error either.
        assert!(!f.map_writes(4096).unwrap());
        return;
    }
    let err = f.map_writes(4096).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("mmap") && msg.contains("write-only"), "{msg}");
    // Writes still work, through write(2).
    f.write_all(b"ok").unwrap();
    assert_eq!(&std::fs::read(&p).unwrap()[..2], b"ok");
}

#[test]
fn large_and_small_writes_into_a_mapping_land_in_order() {
    // Large writes into pages not populated yet take pwrite(2), the rest are
    // copies: either way the bytes are where the offset says.
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("mixed");
    let mut f = os()
        .open(&p, &OpenOptions::read_write().create(true))
        .unwrap();
    f.preallocate(512 << 10, true).unwrap();
    // Only the first 384 KiB: the rest is written with pwrite(2).
    assert_eq!(
        f.map_writes(384 << 10).unwrap(),
        overwrites_in_place(tmp.path())
    );
    let mut want = Vec::new();
    for (i, len) in [100usize << 10, 1000, 40 << 10, 7].into_iter().enumerate() {
        let chunk = vec![i as u8 + 1; len];
        f.write_all(&chunk).unwrap();
        want.extend(chunk);
    }
    if overwrites_in_place(tmp.path()) {
        assert_eq!(f.populate_writes(u64::MAX).unwrap(), 384 << 10);
    }
    let big = vec![9u8; 200 << 10];
    f.write_all(&big).unwrap();
    want.extend(big);
    let got = std::fs::read(&p).unwrap();
    assert_eq!(got.len(), 512 << 10);
    assert!(got[..want.len()] == want[..], "bytes differ");
    assert!(got[want.len()..].iter().all(|&b| b == 0));
}

#[test]
fn only_file_systems_that_overwrite_in_place_get_mapped_writes() {
    // procfs is not one of them, nor is a path that does not exist.
    assert!(!overwrites_in_place(Path::new("/proc/self/status")));
    assert!(!overwrites_in_place(Path::new("/nonexistent/wal")));
    // tmpfs is (where /dev/shm is one, as on most Linux machines).
    let shm = Path::new("/dev/shm");
    let is_tmpfs = std::fs::read_to_string("/proc/mounts")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some("/dev/shm") && l.contains(" tmpfs "));
    if is_tmpfs {
        let tmp = tempfile::tempdir_in(shm).unwrap();
        assert!(overwrites_in_place(tmp.path()));
        let p = tmp.path().join("seg");
        let mut f = os()
            .open(&p, &OpenOptions::read_write().create(true))
            .unwrap();
        f.preallocate(8192, true).unwrap();
        assert!(f.map_writes(8192).unwrap());
        f.write_all(b"on tmpfs").unwrap();
        assert_eq!(&std::fs::read(&p).unwrap()[..8], b"on tmpfs");
    }
}
