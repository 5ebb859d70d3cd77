//! etcd's `filePipeline` (`server/storage/wal/file_pipeline.go`): a background
//! thread that keeps the next WAL segment created, locked and preallocated, so
//! cutting a segment never waits for block allocation.
//!
//! The thread creates `0.tmp`, `1.tmp`, `0.tmp`, ... (alternating, so a fresh
//! file never collides with the one just handed over, provided the WAL renames
//! each file before asking for the next). Each is opened write-only with
//! `O_CREAT` (no `O_TRUNC`), mode 0600, locked with [`LockMode::Wait`] and
//! preallocated to the segment size with `extend = true`.
//!
//! ```
//! use std::io::Seek;
//! use wal_pipeline::FilePipeline;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let mut fp = FilePipeline::new(wal_fileutil::os(), dir.path(), 64 * 1024);
//! let mut f = fp.open().unwrap();
//! assert_eq!(f.path(), dir.path().join("0.tmp"));
//! assert_eq!(f.len().unwrap(), 64 * 1024);
//! assert_eq!(f.stream_position().unwrap(), 0);
//! // The WAL now renames the file to its segment name.
//! std::fs::rename(f.path(), dir.path().join("0000000000000001-0000000000000001.wal")).unwrap();
//! fp.close().unwrap(); // removes the prepared 1.tmp
//! assert_eq!(wal_fileutil::read_dir_ext(dir.path(), ".tmp").unwrap().len(), 0);
//! ```

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use wal_fileutil::{FileSystem, LockMode, OpenOptions, WalFile};

/// Errors of [`FilePipeline`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Creating, locking, preallocating or removing a file failed.
    #[error(transparent)]
    File(#[from] wal_fileutil::Error),
    /// [`FilePipeline::open`] after [`FilePipeline::close`].
    #[error("file pipeline is closed")]
    Closed,
}

/// State shared by the pipeline handle and its thread.
#[derive(Default)]
struct State {
    /// The prepared file, or the error preparing it, waiting to be taken.
    slot: Option<wal_fileutil::Result<Box<dyn WalFile>>>,
    /// Number of `open` calls waiting for the slot.
    demand: usize,
    /// Set by `close`: the thread stops.
    closed: bool,
    /// Errors met while discarding the unused file on close.
    close_error: Option<wal_fileutil::Error>,
}

struct Shared {
    state: Mutex<State>,
    cond: Condvar,
}

impl Shared {
    /// Locks the state, ignoring poisoning: the state stays consistent because
    /// no code panics while holding the lock.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wait<'a>(&self, g: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        self.cond.wait(g).unwrap_or_else(|p| p.into_inner())
    }
}

/// etcd's `filePipeline`: a background thread keeps the next segment ready.
///
/// Error policy: an allocation error (create, lock, preallocate) is handed to
/// the next [`open`](FilePipeline::open) call, never swallowed. etcd's
/// goroutine then exits for good (later `Open`s get a nil file); here the
/// thread instead waits for the next `open` call and retries, so a transient
/// failure such as ENOSPC can heal. A file whose preallocation failed is
/// removed again (etcd leaves it behind), so no `.tmp` is left over.
pub struct FilePipeline {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    dir: PathBuf,
    size: u64,
}

impl std::fmt::Debug for FilePipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FilePipeline")
            .field("dir", &self.dir)
            .field("size", &self.size)
            .field("running", &self.thread.is_some())
            .finish()
    }
}

impl FilePipeline {
    /// Starts the thread, which immediately prepares `dir/0.tmp` of `size`
    /// bytes and waits until it is taken. Failing to start the thread is
    /// reported by the first [`open`](FilePipeline::open).
    pub fn new(fs: Arc<dyn FileSystem>, dir: &Path, size: u64) -> FilePipeline {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            cond: Condvar::new(),
        });
        let worker = Worker {
            fs,
            dir: dir.to_owned(),
            size,
            count: 0,
            shared: Arc::clone(&shared),
        };
        let thread = match std::thread::Builder::new()
            .name("wal-file-pipeline".into())
            .spawn(move || worker.run())
        {
            Ok(h) => Some(h),
            Err(e) => {
                let mut st = shared.lock();
                st.slot = Some(Err(wal_fileutil::Error::from_io(
                    "spawn file pipeline",
                    dir,
                    e,
                )));
                st.closed = true;
                drop(st);
                None
            }
        };
        FilePipeline {
            shared,
            thread,
            dir: dir.to_owned(),
            size,
        }
    }

    /// Blocks until the next file is ready and hands it over: `dir/N.tmp`,
    /// write-only, locked, `size` bytes long, offset 0. The file's directory
    /// entry is not fsynced; the caller renames it and fsyncs the directory.
    /// Rename the file before calling `open` again, or the file after next
    /// reuses its name.
    ///
    /// An allocation error is returned here (once); the next call retries.
    /// After [`close`](FilePipeline::close) this returns [`Error::Closed`].
    pub fn open(&self) -> Result<Box<dyn WalFile>, Error> {
        let mut st = self.shared.lock();
        st.demand += 1;
        self.shared.cond.notify_all();
        let res = loop {
            if let Some(r) = st.slot.take() {
                break r.map_err(Error::File);
            }
            if st.closed {
                break Err(Error::Closed);
            }
            st = self.shared.wait(st);
        };
        st.demand -= 1;
        self.shared.cond.notify_all();
        res
    }

    /// Stops the thread (waiting for an allocation in progress), removes the
    /// prepared-but-unused file, and joins the thread. Returns an allocation
    /// error that no `open` received, or the error removing the file.
    /// Idempotent: later calls return `Ok(())`. Dropping the pipeline closes it.
    ///
    /// Like etcd, a thread blocked waiting for the lock on `N.tmp` (held by
    /// someone else) blocks `close` until the lock is released.
    pub fn close(&mut self) -> Result<(), Error> {
        let mut st = self.shared.lock();
        st.closed = true;
        self.shared.cond.notify_all();
        drop(st);
        if let Some(h) = self.thread.take() {
            if h.join().is_err() {
                tracing::error!(dir = %self.dir.display(), "file pipeline thread panicked");
            }
        }
        let mut st = self.shared.lock();
        let pending = match st.slot.take() {
            // Only possible when the thread never started.
            Some(Err(e)) => Some(e),
            Some(Ok(_)) | None => None,
        };
        match st.close_error.take().or(pending) {
            Some(e) => Err(Error::File(e)),
            None => Ok(()),
        }
    }
}

impl Drop for FilePipeline {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            tracing::warn!(dir = %self.dir.display(), error = %e, "closing file pipeline");
        }
    }
}

/// The background half.
struct Worker {
    fs: Arc<dyn FileSystem>,
    dir: PathBuf,
    size: u64,
    /// Number of files handed over so far; names alternate on its parity.
    count: u64,
    shared: Arc<Shared>,
}

impl Worker {
    fn run(mut self) {
        loop {
            let res = self.alloc();
            let failed = res.is_err();
            let mut st = self.shared.lock();
            if st.closed {
                drop(st);
                self.discard(res);
                return;
            }
            st.slot = Some(res);
            self.shared.cond.notify_all();
            while st.slot.is_some() && !st.closed {
                st = self.shared.wait(st);
            }
            if st.closed {
                let left = st.slot.take();
                drop(st);
                if let Some(res) = left {
                    self.discard(res);
                }
                return;
            }
            if failed {
                // The error was delivered; retry only when someone asks again.
                while st.demand == 0 && !st.closed {
                    st = self.shared.wait(st);
                }
                if st.closed {
                    return;
                }
            } else {
                self.count += 1;
            }
        }
    }

    /// etcd's `alloc`: create and lock `{count%2}.tmp`, then preallocate it.
    fn alloc(&self) -> wal_fileutil::Result<Box<dyn WalFile>> {
        let path = self.dir.join(format!("{}.tmp", self.count % 2));
        let opts = OpenOptions::write().create(true).lock(LockMode::Wait);
        let mut f = self.fs.open(&path, &opts)?;
        if let Err(e) = f.preallocate(self.size, true) {
            tracing::error!(
                path = %path.display(),
                size = self.size,
                error = %e,
                "failed to preallocate space when creating a new WAL",
            );
            // Unlike etcd, do not leave the half-made file behind; we hold its
            // lock, so nobody else is using it.
            if let Err(re) = self.fs.remove_file(&path) {
                tracing::warn!(path = %path.display(), error = %re, "removing failed .tmp");
            }
            drop(f);
            return Err(e);
        }
        Ok(f)
    }

    /// On close: remove the unused file (then close it, as etcd does), or keep
    /// the undelivered error for `close` to return.
    fn discard(&self, res: wal_fileutil::Result<Box<dyn WalFile>>) {
        let err = match res {
            Ok(f) => {
                let r = self.fs.remove_file(f.path());
                drop(f);
                r.err()
            }
            Err(e) => Some(e),
        };
        if let Some(e) = err {
            let mut st = self.shared.lock();
            if st.close_error.is_none() {
                st.close_error = Some(e);
            }
        }
    }
}
