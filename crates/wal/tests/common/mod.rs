//! Helpers shared by the wal integration tests.

#![allow(dead_code)]

use std::fs;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use wal::raftpb::Entry;
use wal::{parse_wal_name, Options};
use wal_fileutil::{FileSystem, OpenOptions, OsFs, WalFile};

/// The segment names of `dir`, sorted (other files left out).
pub fn wal_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| parse_wal_name(n).is_some())
        .collect();
    names.sort();
    names
}

/// A normal entry with `data`.
pub fn ent_data(index: u64, term: u64, data: &[u8]) -> Entry {
    Entry {
        r#type: 0,
        term,
        index,
        data: Some(data.to_vec().into()),
    }
}

/// What [`TestFs`] records and where it fails.
#[derive(Debug, Default)]
pub struct Faults {
    /// `sync_data` calls that may still succeed; `None`: never fail.
    pub sync_budget: Mutex<Option<usize>>,
    /// (operation, path), in order: syncs, `set_len`, renames, directory fsyncs.
    pub log: Mutex<Vec<(&'static str, PathBuf)>>,
    /// Every rename fails.
    pub fail_rename: bool,
    /// fsync of this directory fails.
    pub fail_fsync_dir: Option<PathBuf>,
    /// The next open of a `.wal` file fails with ENOENT (then this turns false).
    pub wal_open_not_found: AtomicBool,
    /// How many `.wal` files were opened (or failed to).
    pub wal_opens: AtomicUsize,
    /// Files say yes to direct writes, then that the kernel refused them
    /// (their writes go through the page cache as before).
    pub refuse_direct: bool,
    /// How many files were asked for direct writes.
    pub direct_asks: AtomicUsize,
    /// Files zero themselves on a write-zeroes (a device that zeroes by
    /// unmapping); otherwise they refuse it, as most disks do.
    pub write_zeroes: bool,
    /// Every write-zeroes fails (EIO), whatever `write_zeroes` says.
    pub fail_write_zeroes: bool,
    /// How many write-zeroes were asked.
    pub write_zeroes_asks: AtomicUsize,
    /// Bytes written through `write` to every file.
    pub bytes_written: AtomicU64,
}

impl Faults {
    fn record(&self, op: &'static str, path: &Path) {
        self.log.lock().unwrap().push((op, path.to_path_buf()));
    }
}

/// A file system that delegates to the OS, records what it does and fails where
/// its [`Faults`] say.
#[derive(Debug, Clone, Default)]
pub struct TestFs(pub Arc<Faults>);

impl std::ops::Deref for TestFs {
    type Target = Faults;
    fn deref(&self) -> &Faults {
        &self.0
    }
}

impl TestFs {
    /// A file system failing as `faults` say.
    pub fn with(faults: Faults) -> Self {
        Self(Arc::new(faults))
    }

    /// Every `sync_data` after the first `n` fails.
    pub fn failing_sync_after(n: usize) -> Self {
        let fs = Self::default();
        *fs.sync_budget.lock().unwrap() = Some(n);
        fs
    }

    /// `sync_data` never fails again.
    pub fn heal(&self) {
        *self.sync_budget.lock().unwrap() = None;
    }

    /// What was recorded so far.
    pub fn log(&self) -> Vec<(&'static str, PathBuf)> {
        self.log.lock().unwrap().clone()
    }

    /// Default options on this file system.
    pub fn options(&self) -> Options {
        Options::new().file_system(Arc::new(self.clone()))
    }
}

fn injected(op: &'static str, path: &Path, what: &str) -> wal_fileutil::Error {
    wal_fileutil::Error::from_io(
        op,
        path,
        io::Error::other(format!("injected {what} failure")),
    )
}

#[derive(Debug)]
struct TestFile {
    inner: Box<dyn WalFile>,
    faults: Arc<Faults>,
}

impl Read for TestFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf)
    }
}

impl Write for TestFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.faults
            .bytes_written
            .fetch_add(n as u64, Ordering::SeqCst);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl Seek for TestFile {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.inner.seek(pos)
    }
}

impl WalFile for TestFile {
    fn path(&self) -> &Path {
        self.inner.path()
    }
    fn sync_all(&mut self) -> wal_fileutil::Result<()> {
        self.faults.record("sync_all", self.inner.path());
        self.inner.sync_all()
    }
    fn sync_data(&mut self) -> wal_fileutil::Result<()> {
        self.faults.record("sync_data", self.inner.path());
        {
            let mut budget = self.faults.sync_budget.lock().unwrap();
            match budget.as_mut() {
                Some(0) => return Err(injected("fdatasync", self.inner.path(), "fdatasync")),
                Some(n) => *n -= 1,
                None => {}
            }
        }
        self.inner.sync_data()
    }
    fn preallocate(&mut self, size: u64, extend: bool) -> wal_fileutil::Result<()> {
        self.inner.preallocate(size, extend)
    }
    fn set_len(&mut self, size: u64) -> wal_fileutil::Result<()> {
        self.faults.record("set_len", self.inner.path());
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
    fn direct_writes(&mut self) -> wal_fileutil::Result<bool> {
        self.faults.direct_asks.fetch_add(1, Ordering::SeqCst);
        Ok(self.faults.refuse_direct)
    }
    fn direct_refused(&self) -> bool {
        self.faults.refuse_direct
    }
    fn write_zeroes(&mut self, len: u64) -> wal_fileutil::Result<bool> {
        self.faults.write_zeroes_asks.fetch_add(1, Ordering::SeqCst);
        if self.faults.fail_write_zeroes {
            let e = io::Error::from_raw_os_error(5);
            return Err(wal_fileutil::Error::from_io("write zeroes", self.path(), e));
        }
        if self.faults.write_zeroes {
            // What the device's zeros look like to a reader: zeros to `len`.
            self.inner.preallocate(len, true)?;
        }
        Ok(self.faults.write_zeroes)
    }
}

impl FileSystem for TestFs {
    fn open(&self, path: &Path, opts: &OpenOptions) -> wal_fileutil::Result<Box<dyn WalFile>> {
        if path.extension().is_some_and(|e| e == "wal") {
            self.wal_opens.fetch_add(1, Ordering::SeqCst);
            if self.wal_open_not_found.swap(false, Ordering::SeqCst) {
                let e = io::Error::from(io::ErrorKind::NotFound);
                return Err(wal_fileutil::Error::from_io("open", path, e));
            }
        }
        let inner = OsFs.open(path, opts)?;
        Ok(Box::new(TestFile {
            inner,
            faults: self.0.clone(),
        }))
    }
    fn rename(&self, from: &Path, to: &Path) -> wal_fileutil::Result<()> {
        self.record("rename", from);
        if self.fail_rename {
            return Err(injected("rename", from, "rename"));
        }
        OsFs.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> wal_fileutil::Result<()> {
        OsFs.remove_file(path)
    }
    fn remove_dir_all(&self, path: &Path) -> wal_fileutil::Result<()> {
        OsFs.remove_dir_all(path)
    }
    fn create_dir_all(&self, path: &Path) -> wal_fileutil::Result<()> {
        OsFs.create_dir_all(path)
    }
    fn read_dir(&self, path: &Path) -> wal_fileutil::Result<Vec<String>> {
        OsFs.read_dir(path)
    }
    fn fsync_dir(&self, path: &Path) -> wal_fileutil::Result<()> {
        self.record("fsync_dir", path);
        if self.fail_fsync_dir.as_deref() == Some(path) {
            return Err(injected("fsync", path, "fsync"));
        }
        OsFs.fsync_dir(path)
    }
    fn exists(&self, path: &Path) -> bool {
        OsFs.exists(path)
    }
    fn file_len(&self, path: &Path) -> wal_fileutil::Result<u64> {
        OsFs.file_len(path)
    }
}
