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

/// What a [`Recording`] file system saw, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    /// Bytes written to a file (by name).
    Write(String, usize),
    /// An fdatasync of a file, and whether it ran on the test's own thread.
    Sync(String, bool),
    /// A file mapped for writing: the bytes asked for, and whether it got mapped.
    Map(String, u64, bool),
    /// Bytes of a file's write mapping populated.
    Populate(String, u64),
    /// A write-zeroes asked of a file, and whether the device made the zeros.
    WriteZeroes(String, bool),
}

/// The real file system, recording writes and syncs; each sync of a file that
/// was written to first sleeps `sync_delay` (a slow disk).
#[derive(Debug)]
struct Recording {
    seen: std::sync::Arc<std::sync::Mutex<Vec<Seen>>>,
    test_thread: std::thread::ThreadId,
    sync_delay: Duration,
    opened: std::sync::atomic::AtomicUsize,
    /// Syncs of files that were written to fail (EIO).
    fail_written_syncs: bool,
    /// What a write-zeroes does.
    write_zeroes: Zeroes,
}

/// What a [`Recording`] file does on a write-zeroes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Zeroes {
    /// Refused, as on most disks.
    Refused,
    /// The file is zeroed (a device that zeroes by unmapping).
    Made,
    /// It fails (EIO).
    Fails,
}

#[derive(Debug)]
struct RecordingFile {
    inner: Box<dyn wal_fileutil::WalFile>,
    name: String,
    written: bool,
    fs: (
        std::sync::Arc<std::sync::Mutex<Vec<Seen>>>,
        std::thread::ThreadId,
        Duration,
        bool,
        Zeroes,
    ),
}

impl RecordingFile {
    /// Records `s` as seen.
    fn see(&self, s: Seen) {
        self.fs.0.lock().unwrap().push(s);
    }
}

impl std::io::Read for RecordingFile {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(buf)
    }
}

impl Write for RecordingFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written = true;
        self.see(Seen::Write(self.name.clone(), n));
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl Seek for RecordingFile {
    fn seek(&mut self, pos: std::io::SeekFrom) -> std::io::Result<u64> {
        self.inner.seek(pos)
    }
}

impl wal_fileutil::WalFile for RecordingFile {
    fn path(&self) -> &Path {
        self.inner.path()
    }
    fn sync_all(&mut self) -> wal_fileutil::Result<()> {
        self.inner.sync_all()
    }
    fn sync_data(&mut self) -> wal_fileutil::Result<()> {
        if self.written {
            std::thread::sleep(self.fs.2);
            if self.fs.3 {
                return Err(wal_fileutil::Error::from_io(
                    "fdatasync",
                    self.inner.path(),
                    std::io::Error::from_raw_os_error(5),
                ));
            }
        }
        let mine = std::thread::current().id() == self.fs.1;
        self.see(Seen::Sync(self.name.clone(), mine));
        self.inner.sync_data()
    }
    fn preallocate(&mut self, size: u64, extend: bool) -> wal_fileutil::Result<()> {
        self.inner.preallocate(size, extend)
    }
    fn set_len(&mut self, size: u64) -> wal_fileutil::Result<()> {
        self.inner.set_len(size)
    }
    fn len(&self) -> wal_fileutil::Result<u64> {
        self.inner.len()
    }
    fn zero_to_end(&mut self) -> wal_fileutil::Result<()> {
        self.inner.zero_to_end()
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> wal_fileutil::Result<usize> {
        self.inner.read_at(buf, offset)
    }
    fn map_writes(&mut self, len: u64) -> wal_fileutil::Result<bool> {
        let mapped = self.inner.map_writes(len)?;
        self.see(Seen::Map(self.name.clone(), len, mapped));
        Ok(mapped)
    }
    fn write_zeroes(&mut self, len: u64) -> wal_fileutil::Result<bool> {
        if self.fs.4 == Zeroes::Fails {
            self.see(Seen::WriteZeroes(self.name.clone(), false));
            return Err(wal_fileutil::Error::from_io(
                "write zeroes",
                self.inner.path(),
                std::io::Error::from_raw_os_error(5),
            ));
        }
        let zeroed = self.fs.4 == Zeroes::Made;
        if zeroed {
            // What the device's zeros look like to a reader: zeros to `len`.
            self.inner.preallocate(len, true)?;
            self.written = true;
        }
        self.see(Seen::WriteZeroes(self.name.clone(), zeroed));
        Ok(zeroed)
    }
    fn populate_writes(&mut self, len: u64) -> wal_fileutil::Result<u64> {
        let n = self.inner.populate_writes(len)?;
        self.see(Seen::Populate(self.name.clone(), n));
        Ok(n)
    }
}

impl wal_fileutil::FileSystem for Recording {
    fn open(
        &self,
        path: &Path,
        opts: &OpenOptions,
    ) -> wal_fileutil::Result<Box<dyn wal_fileutil::WalFile>> {
        let inner = os().open(path, opts)?;
        let n = self
            .opened
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let name = format!("{}#{n}", path.file_name().unwrap().to_string_lossy());
        let fs = (
            std::sync::Arc::clone(&self.seen),
            self.test_thread,
            self.sync_delay,
            self.fail_written_syncs,
            self.write_zeroes,
        );
        Ok(Box::new(RecordingFile {
            inner,
            name,
            written: false,
            fs,
        }))
    }
    fn rename(&self, from: &Path, to: &Path) -> wal_fileutil::Result<()> {
        os().rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> wal_fileutil::Result<()> {
        os().remove_file(path)
    }
    fn remove_dir_all(&self, path: &Path) -> wal_fileutil::Result<()> {
        os().remove_dir_all(path)
    }
    fn create_dir_all(&self, path: &Path) -> wal_fileutil::Result<()> {
        os().create_dir_all(path)
    }
    fn read_dir(&self, path: &Path) -> wal_fileutil::Result<Vec<String>> {
        os().read_dir(path)
    }
    fn fsync_dir(&self, path: &Path) -> wal_fileutil::Result<()> {
        os().fsync_dir(path)
    }
    fn exists(&self, path: &Path) -> bool {
        os().exists(path)
    }
    fn file_len(&self, path: &Path) -> wal_fileutil::Result<u64> {
        os().file_len(path)
    }
}

fn recording(
    sync_delay: Duration,
    fail_written_syncs: bool,
) -> (
    std::sync::Arc<dyn wal_fileutil::FileSystem>,
    std::sync::Arc<std::sync::Mutex<Vec<Seen>>>,
) {
    recording_on(sync_delay, fail_written_syncs, Zeroes::Refused)
}

/// [`recording`] whose files do `write_zeroes` on a write-zeroes.
fn recording_on(
    sync_delay: Duration,
    fail_written_syncs: bool,
    write_zeroes: Zeroes,
) -> (
    std::sync::Arc<dyn wal_fileutil::FileSystem>,
    std::sync::Arc<std::sync::Mutex<Vec<Seen>>>,
) {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let fs = Recording {
        seen: std::sync::Arc::clone(&seen),
        test_thread: std::thread::current().id(),
        sync_delay,
        opened: Default::default(),
        fail_written_syncs,
        write_zeroes,
    };
    (std::sync::Arc::new(fs), seen)
}

/// Bytes written to `name` so far.
fn written(seen: &[Seen], name: &str) -> usize {
    seen.iter()
        .map(|s| match s {
            Seen::Write(n, b) if n == name => *b,
            _ => 0,
        })
        .sum()
}

/// The fdatasyncs among `seen`, in order.
fn syncs(seen: &[Seen]) -> Vec<Seen> {
    seen.iter()
        .filter(|s| matches!(s, Seen::Sync(..)))
        .cloned()
        .collect()
}

/// Waits (up to 2.5 s) until `bytes` have been written to `name`, then 20 ms
/// more, so the pipeline has finished with the file.
fn wait_until_written(seen: &std::sync::Mutex<Vec<Seen>>, name: &str, bytes: usize) {
    for _ in 0..500 {
        if written(&seen.lock().unwrap(), name) == bytes {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(20));
}

#[test]
fn zeros_are_synced_at_hand_over_by_the_caller() {
    // The zeros of a prepared file stay unsynced while nobody asks for it (so
    // their writeback does not meet the WAL's own fdatasyncs), and are synced,
    // on the thread that asks, before `open` returns.
    let tdir = tempfile::tempdir().unwrap();
    let size = 3 << 20;
    let (fs, seen) = recording(Duration::ZERO, false);
    let mut fp = FilePipeline::with_prepare(fs, tdir.path(), size, Prepare::ZeroFill);
    wait_until_written(&seen, "0.tmp#0", size as usize);
    std::thread::sleep(Duration::from_millis(30));
    assert_eq!(written(&seen.lock().unwrap(), "0.tmp#0"), size as usize);
    assert_eq!(
        syncs(&seen.lock().unwrap()),
        [],
        "synced before anyone asked"
    );
    let f = fp.open().unwrap();
    assert_eq!(
        syncs(&seen.lock().unwrap()),
        [Seen::Sync("0.tmp#0".into(), true)]
    );
    // The sync's duration is reported once, for the WAL's fsync metric.
    assert!(fp.take_last_zero_sync().is_some());
    assert_eq!(fp.take_last_zero_sync(), None);
    // A WAL that syncs writes with write(2): a mapping would make every
    // fdatasync write-protect its pages and the next append fault.
    assert!(
        !seen
            .lock()
            .unwrap()
            .iter()
            .any(|s| matches!(s, Seen::Map(..))),
        "mapped"
    );
    drop(f);
    fp.close().unwrap();
}

#[test]
fn slow_zero_syncs_make_the_pipeline_back_off() {
    // Syncing each file's zeros takes far longer than half the time
    // between hand-overs (a WAL writing as fast as the disk): once the first
    // verdict is in, files are prepared etcd's way (preallocated, no zeros).
    let tdir = tempfile::tempdir().unwrap();
    let size = 1 << 20;
    let (fs, seen) = recording(Duration::from_millis(60), false);
    let mut fp = FilePipeline::with_prepare(fs, tdir.path(), size, Prepare::ZeroFill);
    for i in 0..4 {
        let f = fp.open().unwrap();
        // The WAL renames each file before asking for the next.
        std::fs::rename(f.path(), tdir.path().join(format!("{i}.wal"))).unwrap();
    }
    fp.close().unwrap();
    let seen = seen.lock().unwrap().clone();
    // Files are named by their .tmp name and the order the pipeline opened them.
    assert_eq!(written(&seen, "0.tmp#0"), size as usize, "{seen:?}");
    assert!(
        seen.contains(&Seen::Sync("0.tmp#0".into(), true)),
        "{seen:?}"
    );
    // The third and fourth files were prepared after the first verdict.
    for name in ["0.tmp#2", "1.tmp#3"] {
        assert_eq!(written(&seen, name), 0, "{name} zero-filled: {seen:?}");
        assert!(
            !seen
                .iter()
                .any(|s| matches!(s, Seen::Sync(n, _) if n == name)),
            "{seen:?}"
        );
    }
    assert_eq!(
        read_dir(tdir.path()).unwrap(),
        ["0.wal", "1.wal", "2.wal", "3.wal"]
    );
}

#[test]
fn zeros_advised_off_are_not_written_until_advised_again() {
    // A WAL whose syncs are large turns the zeros off: the files prepared
    // after that are etcd's (preallocated, nothing written, nothing synced at
    // hand-over); turned on again, the next file gets its zeros.
    let tdir = tempfile::tempdir().unwrap();
    let size = 1 << 20;
    let (fs, seen) = recording(Duration::ZERO, false);
    let mut fp = FilePipeline::with_prepare(fs, tdir.path(), size, Prepare::ZeroFill);
    wait_until_written(&seen, "0.tmp#0", size as usize);
    // Long enough that syncing those zeros at hand-over cannot take half the
    // time since the pipeline started, which would make it back off from
    // zero-filling (and skip the third file's zeros) on a slow disk.
    std::thread::sleep(Duration::from_millis(500));
    fp.set_zero_fill(false);
    let f = fp.open().unwrap();
    std::fs::rename(f.path(), tdir.path().join("0.wal")).unwrap();
    // The next file exists once the pipeline has read the advice.
    wait_for_file(&tdir.path().join("1.tmp"));
    fp.set_zero_fill(true);
    let f = fp.open().unwrap();
    assert_eq!(std::fs::metadata(f.path()).unwrap().size(), size);
    std::fs::rename(f.path(), tdir.path().join("1.wal")).unwrap();
    wait_until_written(&seen, "0.tmp#2", size as usize);
    let f = fp.open().unwrap();
    std::fs::rename(f.path(), tdir.path().join("2.wal")).unwrap();
    fp.close().unwrap();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(written(&seen, "0.tmp#0"), size as usize, "{seen:?}");
    assert_eq!(written(&seen, "1.tmp#1"), 0, "zero-filled: {seen:?}");
    assert_eq!(written(&seen, "0.tmp#2"), size as usize, "{seen:?}");
    assert_eq!(
        syncs(&seen),
        [
            Seen::Sync("0.tmp#0".into(), true),
            Seen::Sync("0.tmp#2".into(), true)
        ]
    );
}

#[test]
fn zero_fill_without_sync_writes_the_zeros_and_never_syncs() {
    // For a WAL that never syncs: every file gets its zeros (so its pages are in
    // the page cache before the WAL writes), and nothing is ever synced.
    let tdir = tempfile::tempdir().unwrap();
    let size = 1 << 20;
    let (fs, seen) = recording(Duration::ZERO, false);
    let mut fp = FilePipeline::with_prepare(fs, tdir.path(), size, Prepare::ZeroFillNoSync);
    let names = ["0.tmp#0", "1.tmp#1", "0.tmp#2"];
    for (i, name) in names.iter().enumerate() {
        // Ask once the file is ready, as a WAL slower than the zeroing does (a WAL
        // that has to wait makes the pipeline back off instead).
        wait_until_written(&seen, name, size as usize);
        let mut f = fp.open().unwrap();
        assert_eq!(f.stream_position().unwrap(), 0);
        assert_eq!(fp.take_last_zero_sync(), None);
        let bytes = std::fs::read(f.path()).unwrap();
        assert_eq!(bytes.len() as u64, size);
        assert!(bytes.iter().all(|&b| b == 0));
        // Handed over mapped: the WAL's appends are copies into the page cache.
        f.write_all(b"appended").unwrap();
        assert_eq!(&std::fs::read(f.path()).unwrap()[..8], b"appended");
        std::fs::rename(f.path(), tdir.path().join(format!("{i}.wal"))).unwrap();
    }
    fp.close().unwrap();
    let seen = seen.lock().unwrap().clone();
    for name in names {
        let maps: Vec<_> = seen
            .iter()
            .filter(|s| matches!(s, Seen::Map(n, ..) if n == name))
            .collect();
        // The zeroed bytes, all of them; mapped where overwriting never allocates.
        let mapped = wal_fileutil::overwrites_in_place(tdir.path());
        assert_eq!(maps, [&Seen::Map(name.into(), size, mapped)], "{seen:?}");
        // Populated all through (the WAL asked only once the file was ready).
        let populated: u64 = seen
            .iter()
            .map(|s| match s {
                Seen::Populate(n, b) if n == name => *b,
                _ => 0,
            })
            .sum();
        assert_eq!(populated, if mapped { size } else { 0 }, "{name}: {seen:?}");
    }
    // In writes of 64 KiB, so the page cache makes small folios, which later small
    // appends are cheaper to write into.
    assert!(
        seen.iter()
            .all(|s| !matches!(s, Seen::Write(_, b) if *b > 64 << 10)),
        "{seen:?}"
    );
    for name in names {
        // The zeros, then the test's append.
        assert_eq!(written(&seen, name), size as usize + 8, "{name}: {seen:?}");
    }
    assert_eq!(syncs(&seen), [], "{seen:?}");
}

#[test]
fn a_wal_of_large_writes_gets_its_next_files_zeroed_but_not_mapped() {
    // After set_map_writes(false) the files prepared are zero-filled as before
    // but handed over unmapped: large writes gain nothing from a mapping.
    let tdir = tempfile::tempdir().unwrap();
    let size = 1 << 20;
    let (fs, seen) = recording(Duration::ZERO, false);
    let mut fp = FilePipeline::with_prepare(fs, tdir.path(), size, Prepare::ZeroFillNoSync);
    fp.set_map_writes(false);
    for i in 0..3 {
        let mut f = fp.open().unwrap();
        f.write_all(b"appended").unwrap();
        assert_eq!(&std::fs::read(f.path()).unwrap()[..8], b"appended");
        std::fs::rename(f.path(), tdir.path().join(format!("{i}.wal"))).unwrap();
    }
    fp.close().unwrap();
    let seen = seen.lock().unwrap().clone();
    // The first file may have been prepared before the word came; the next
    // ones were prepared after it.
    for name in ["1.tmp#1", "0.tmp#2"] {
        assert_eq!(written(&seen, name), size as usize + 8, "{seen:?}");
        assert!(
            !seen
                .iter()
                .any(|s| matches!(s, Seen::Map(n, ..) if n == name)),
            "{name} mapped: {seen:?}"
        );
        // The zeros in writes of 256 KiB: larger folios, into which the WAL's
        // large appends are cheaper to write than into 64 KiB ones.
        let zero_writes: Vec<usize> = seen
            .iter()
            .filter_map(|s| match s {
                Seen::Write(n, b) if n == name && *b > 8 => Some(*b),
                _ => None,
            })
            .collect();
        assert_eq!(zero_writes, vec![256 << 10; 4], "{name}: {seen:?}");
    }
}

#[test]
fn zero_fill_without_sync_does_not_back_off_when_the_wal_waits() {
    // A WAL that asks for each file at once (faster than the zeroing) still gets
    // the zeros written before it asked: with no sync they cost it no disk time.
    let tdir = tempfile::tempdir().unwrap();
    let size = 2 << 20;
    let (fs, seen) = recording(Duration::ZERO, false);
    let mut fp = FilePipeline::with_prepare(fs, tdir.path(), size, Prepare::ZeroFillNoSync);
    take_files(&mut fp, tdir.path(), 4);
    fp.close().unwrap();
    let seen = seen.lock().unwrap().clone();
    for name in ["0.tmp#0", "1.tmp#1", "0.tmp#2", "1.tmp#3"] {
        // The zeroing checks whether to stop after each MiB.
        assert!(written(&seen, name) >= 1 << 20, "{name}: {seen:?}");
    }
    assert_eq!(syncs(&seen), [], "{seen:?}");
}

#[test]
fn failed_zero_sync_is_reported_and_the_file_removed() {
    // The hand-over sync fails (EIO): `open` returns the error naming the file,
    // the file is not handed over and not left behind, like a failed preallocation.
    let tdir = tempfile::tempdir().unwrap();
    let (fs, _seen) = recording(Duration::ZERO, true);
    let mut fp = FilePipeline::with_prepare(fs, tdir.path(), 1 << 20, Prepare::ZeroFill);
    let err = fp.open().unwrap_err();
    let Error::File(e) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(e.path(), tdir.path().join("0.tmp"), "{e}");
    assert!(!tdir.path().join("0.tmp").exists());
    fp.close().unwrap();
    assert!(tmp_files(tdir.path()).is_empty());
}

/// Takes `n` files from `fp` at once, renaming each to `{i}.wal` in `dir`.
fn take_files(fp: &mut FilePipeline, dir: &Path, n: usize) {
    for i in 0..n {
        let f = fp.open().unwrap();
        std::fs::rename(f.path(), dir.join(format!("{i}.wal"))).unwrap();
    }
}

/// The write-zeroes `seen` asked, in order.
fn write_zeroes_asked(seen: &[Seen]) -> Vec<Seen> {
    seen.iter()
        .filter(|s| matches!(s, Seen::WriteZeroes(..)))
        .cloned()
        .collect()
}

#[test]
fn a_device_that_writes_zeroes_zero_fills_every_file_without_writing() {
    // Zeros that cost the disk nothing: every file gets them from the device,
    // none through write(2), even once the WAL advised against zeros (which
    // weighs the disk time of writing them); they are synced at hand-over.
    let tdir = tempfile::tempdir().unwrap();
    let size = 1 << 20;
    let (fs, seen) = recording_on(Duration::ZERO, false, Zeroes::Made);
    let mut fp = FilePipeline::with_prepare(fs, tdir.path(), size, Prepare::ZeroFill);
    fp.set_zero_fill(false);
    let names = ["0.tmp#0", "1.tmp#1", "0.tmp#2"];
    for (i, _) in names.iter().enumerate() {
        let f = fp.open().unwrap();
        let bytes = std::fs::read(f.path()).unwrap();
        assert_eq!(bytes.len() as u64, size);
        assert!(bytes.iter().all(|&b| b == 0));
        std::fs::rename(f.path(), tdir.path().join(format!("{i}.wal"))).unwrap();
    }
    fp.close().unwrap();
    let seen = seen.lock().unwrap().clone();
    for name in names {
        assert_eq!(written(&seen, name), 0, "zeros written to {name}: {seen:?}");
        assert!(
            seen.contains(&Seen::Sync(name.into(), true)),
            "{name} not synced at hand-over: {seen:?}"
        );
    }
    let asked: Vec<_> = names
        .iter()
        .map(|n| Seen::WriteZeroes(n.to_string(), true))
        .collect();
    // The file prepared after the last hand-over, removed on close, too.
    assert_eq!(write_zeroes_asked(&seen)[..3], asked);
}

#[test]
fn a_device_without_write_zeroes_is_asked_once_and_gets_written_zeros() {
    // Refused or failed alike: the zeros are written, and no later file asks.
    for zeroes in [Zeroes::Refused, Zeroes::Fails] {
        let tdir = tempfile::tempdir().unwrap();
        let size = 1 << 20;
        let (fs, seen) = recording_on(Duration::ZERO, false, zeroes);
        let mut fp = FilePipeline::with_prepare(fs, tdir.path(), size, Prepare::ZeroFill);
        take_files(&mut fp, tdir.path(), 3);
        fp.close().unwrap();
        let seen = seen.lock().unwrap().clone();
        assert_eq!(
            write_zeroes_asked(&seen),
            [Seen::WriteZeroes("0.tmp#0".into(), false)],
            "{zeroes:?}"
        );
        assert_eq!(
            written(&seen, "0.tmp#0"),
            size as usize,
            "{zeroes:?}: {seen:?}"
        );
    }
}
