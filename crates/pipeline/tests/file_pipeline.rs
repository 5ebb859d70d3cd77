//! FilePipeline (etcd file_pipeline_test.go and more).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Seek, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use wal_fileutil::{os, read_dir, read_dir_ext, try_lock_file, OpenOptions};
use wal_pipeline::{Error, FilePipeline, Prepare};

/// etcd's default SegmentSizeBytes.
const SEGMENT_SIZE_BYTES: u64 = 64 * 1000 * 1000;

fn tmp_files(dir: &Path) -> Vec<String> {
    read_dir_ext(dir, ".tmp").unwrap()
}

fn wait_for_file(path: &Path) {
    for _ in 0..500 {
        if path.exists() {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("{} never appeared", path.display());
}

#[test]
fn file_pipeline() {
    // etcd: TestFilePipeline
    let tdir = tempfile::tempdir().unwrap();
    let mut fp = FilePipeline::new(os(), tdir.path(), SEGMENT_SIZE_BYTES);
    let f = fp.open().unwrap();
    drop(f);
    fp.close().unwrap();
}

#[test]
fn file_pipeline_fail_preallocate() {
    // etcd: TestFilePipelineFailPreallocate (math.MaxInt64: EFBIG)
    let tdir = tempfile::tempdir().unwrap();
    let mut fp = FilePipeline::new(os(), tdir.path(), i64::MAX as u64);
    let err = fp.open().unwrap_err();
    let Error::File(e) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(e.io_kind(), Some(std::io::ErrorKind::FileTooLarge), "{e}");
    assert_eq!(e.path(), tdir.path().join("0.tmp"));
    // the error was delivered, so close has nothing more to report
    fp.close().unwrap();
    assert!(tmp_files(tdir.path()).is_empty(), "failed .tmp is removed");
}

#[test]
fn file_pipeline_fail_lock_file() {
    // etcd (v3.4): TestFilePipelineFailLockFile: the directory is gone, so
    // creating the locked file fails.
    let tdir = tempfile::tempdir().unwrap();
    let gone = tdir.path().join("removed");
    let mut fp = FilePipeline::new(os(), &gone, SEGMENT_SIZE_BYTES);
    let err = fp.open().unwrap_err();
    assert!(matches!(&err, Error::File(e) if e.is_not_found()), "{err}");
    fp.close().unwrap();
}

#[test]
fn handed_over_file_is_preallocated_and_locked() {
    let tdir = tempfile::tempdir().unwrap();
    let size = 1 << 20;
    let mut fp = FilePipeline::new(os(), tdir.path(), size);
    let mut f = fp.open().unwrap();
    let path = tdir.path().join("0.tmp");
    assert_eq!(f.path(), path);
    let md = std::fs::metadata(&path).unwrap();
    assert_eq!(md.size(), size);
    assert!(md.blocks() * 512 >= size, "blocks {}", md.blocks());
    assert_eq!(md.permissions().mode() & 0o777, 0o600);
    assert_eq!(f.stream_position().unwrap(), 0);
    assert!(std::fs::read(&path).unwrap().iter().all(|&b| b == 0));

    // locked against any other open file description
    let err = try_lock_file(&path, &OpenOptions::write()).unwrap_err();
    assert!(err.is_locked(), "{err}");

    // write-only, usable
    f.write_all(b"record").unwrap();
    f.sync_data().unwrap();
    drop(f);
    // Free once closed. Another test of this binary may be between fork and exec
    // (`mount`), holding a copy of the descriptor and its lock for a moment: retry
    // briefly, as the WAL does.
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(500);
    loop {
        match try_lock_file(&path, &OpenOptions::write()) {
            Ok(_) => break,
            Err(e) if e.is_locked() && std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(5))
            }
            Err(e) => panic!("still locked after close: {e}"),
        }
    }
    fp.close().unwrap();
}

#[test]
fn alternates_tmp_names_and_prepares_next() {
    let tdir = tempfile::tempdir().unwrap();
    let mut fp = FilePipeline::new(os(), tdir.path(), 4096);
    let mut held = Vec::new();
    for (i, want) in ["0.tmp", "1.tmp", "0.tmp", "1.tmp"].iter().enumerate() {
        let f = fp.open().unwrap();
        assert_eq!(f.path(), tdir.path().join(want));
        let seg = tdir.path().join(format!("{i:016x}-{i:016x}.wal"));
        std::fs::rename(f.path(), &seg).unwrap();
        held.push(f);
    }
    // the thread keeps the next one ready
    wait_for_file(&tdir.path().join("0.tmp"));
    // the renamed segments stay locked while held
    let first = tdir.path().join(format!("{:016x}-{:016x}.wal", 0, 0));
    assert!(try_lock_file(&first, &OpenOptions::write())
        .unwrap_err()
        .is_locked());
    fp.close().unwrap();
    assert!(tmp_files(tdir.path()).is_empty());
    assert_eq!(read_dir_ext(tdir.path(), ".wal").unwrap().len(), 4);
    drop(held);
}

#[test]
fn close_removes_prepared_file_and_stops_thread() {
    let tdir = tempfile::tempdir().unwrap();
    let mut fp = FilePipeline::new(os(), tdir.path(), 4096);
    wait_for_file(&tdir.path().join("0.tmp"));
    fp.close().unwrap();
    assert!(read_dir(tdir.path()).unwrap().is_empty());
    // the thread is gone: nothing reappears
    std::thread::sleep(Duration::from_millis(50));
    assert!(read_dir(tdir.path()).unwrap().is_empty());
    // idempotent; open after close
    fp.close().unwrap();
    assert!(matches!(fp.open(), Err(Error::Closed)));
    assert_eq!(Error::Closed.to_string(), "file pipeline is closed");
}

#[test]
fn drop_closes() {
    let tdir = tempfile::tempdir().unwrap();
    let fp = FilePipeline::new(os(), tdir.path(), 4096);
    let f = fp.open().unwrap();
    std::fs::rename(f.path(), tdir.path().join("a.wal")).unwrap();
    wait_for_file(&tdir.path().join("1.tmp"));
    assert!(format!("{fp:?}").contains("FilePipeline"));
    drop(fp);
    assert_eq!(read_dir(tdir.path()).unwrap(), ["a.wal"]);
    drop(f);
}

#[test]
fn close_returns_undelivered_error() {
    let tdir = tempfile::tempdir().unwrap();
    let mut fp = FilePipeline::new(os(), &tdir.path().join("missing"), 4096);
    std::thread::sleep(Duration::from_millis(50));
    let err = fp.close().unwrap_err();
    assert!(matches!(&err, Error::File(e) if e.is_not_found()), "{err}");
    fp.close().unwrap();
}

#[test]
fn retries_after_error_on_next_open() {
    let tdir = tempfile::tempdir().unwrap();
    let dir = tdir.path().join("later");
    let mut fp = FilePipeline::new(os(), &dir, 4096);
    assert!(fp.open().is_err());
    // no busy retry between calls: the directory stays absent and untouched
    std::thread::sleep(Duration::from_millis(20));
    std::fs::create_dir(&dir).unwrap();
    let f = fp.open().unwrap();
    assert_eq!(
        f.path(),
        dir.join("0.tmp"),
        "count only advances on success"
    );
    std::fs::rename(f.path(), dir.join("x.wal")).unwrap();
    assert_eq!(fp.open().unwrap().path(), dir.join("1.tmp"));
    fp.close().unwrap();
    // 1.tmp was handed over (the caller owns it); the prepared 0.tmp is gone
    assert_eq!(read_dir(&dir).unwrap(), ["1.tmp", "x.wal"]);
}

#[test]
fn no_space_is_reported_and_nothing_left_behind() {
    // A real ENOSPC from a 1 MiB tmpfs (skipped where mounting is not allowed).
    let mnt = tempfile::tempdir().unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "wal-pipeline-test"])
        .arg(mnt.path())
        .stderr(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !mounted {
        eprintln!("SKIPPED: cannot mount a tmpfs (needs CAP_SYS_ADMIN)");
        return;
    }
    struct Umount<'a>(&'a Path);
    impl Drop for Umount<'_> {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(self.0).status();
        }
    }
    let _umount = Umount(mnt.path());

    let mut fp = FilePipeline::new(os(), mnt.path(), 8 << 20);
    let err = fp.open().unwrap_err();
    assert!(matches!(&err, Error::File(e) if e.is_no_space()), "{err}");
    fp.close().unwrap();
    assert!(read_dir(mnt.path()).unwrap().is_empty());
}

#[test]
fn pipeline_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<FilePipeline>();
    assert_send_sync::<Error>();
    assert_send_sync::<wal_fileutil::Error>();
}

#[test]
fn zero_filled_file_is_the_preallocated_file() {
    // Beyond etcd: the same length and the same (zero) bytes, offset 0, but the
    // blocks written and synced.
    let tdir = tempfile::tempdir().unwrap();
    let size = 3 * (1 << 20) + 4096;
    let mut fp = FilePipeline::with_prepare(os(), tdir.path(), size, Prepare::ZeroFill);
    let mut f = fp.open().unwrap();
    assert_eq!(f.stream_position().unwrap(), 0);
    let md = std::fs::metadata(f.path()).unwrap();
    assert_eq!(md.size(), size);
    assert!(md.blocks() * 512 >= size, "blocks {}", md.blocks());
    let bytes = std::fs::read(f.path()).unwrap();
    assert_eq!(bytes.len() as u64, size);
    assert!(bytes.iter().all(|&b| b == 0));
    f.write_all(b"x").unwrap();
    drop(f);
    fp.close().unwrap();
}

#[test]
fn zero_fill_stops_when_asked_and_leaves_the_offset_at_zero() {
    let tdir = tempfile::tempdir().unwrap();
    let path = tdir.path().join("f");
    let mut f = os()
        .open(&path, &OpenOptions::write().create(true))
        .unwrap();
    f.preallocate(8 << 20, true).unwrap();
    let done = wal_pipeline::zero_fill(&mut *f, 8 << 20, || true).unwrap();
    assert_eq!(done, 1 << 20, "stops after the first synced MiB");
    assert_eq!(f.stream_position().unwrap(), 0);
    assert_eq!(std::fs::metadata(&path).unwrap().size(), 8 << 20);
    let all = wal_pipeline::zero_fill(&mut *f, 8 << 20, || false).unwrap();
    assert_eq!(all, 8 << 20);
}
