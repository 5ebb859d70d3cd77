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
//! Beyond etcd, [`Prepare::ZeroFill`] (see [`FilePipeline::with_prepare`]) also
//! writes zeros over the preallocated file, and [`FilePipeline::open`] fdatasyncs
//! them as it hands the file over. The file's bytes and length are what etcd's
//! are (a preallocated file reads as zeros), but its blocks are then *written*
//! rather than allocated-but-unwritten, so an fdatasync after appending to it
//! needs no metadata commit (on ext4 and xfs, writing into unwritten extents
//! converts them, which the journal must commit on every fdatasync). The zeros
//! are synced at the hand-over, in the caller's cut, rather than as soon as they
//! are written: their writeback then delays that one call instead of every
//! fdatasync the WAL makes while it runs. [`Prepare::ZeroFillNoSync`] writes the
//! zeros and never syncs them, for a WAL that never syncs: the file's pages are
//! then in the page cache before the WAL appends to them, and the file is handed
//! over mapped for writing ([`WalFile::map_writes`]), so the WAL's appends are
//! memory copies rather than `write(2)` calls. See docs/benchmarks.md for the
//! measured effect.
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

use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

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

/// How the pipeline prepares each file before handing it over.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Prepare {
    /// etcd's way: create, lock, preallocate (fallocate). The blocks are reserved
    /// but unwritten.
    #[default]
    Preallocate,
    /// Also write zeros over the whole file ([`write_zeros`]), and fdatasync them
    /// in [`FilePipeline::open`], so the blocks are written before the WAL appends
    /// to them. Same bytes, same length. If the WAL asks for the file before the
    /// zeroing is done, the zeroing stops at the next MiB and the rest stays
    /// merely preallocated. When the WAL had to wait like that, or when syncing
    /// the zeros took more than half the time since the previous hand-over
    /// (a WAL writing near the disk's bandwidth), the next files are prepared
    /// etcd's way (1, 2, 4, ... up to 16 of them) before zero-filling again: a
    /// WAL writing faster than the disk can also write zeros gets etcd's
    /// behaviour rather than waiting at every cut. A WAL can also turn the
    /// zeros off and on ([`FilePipeline::set_zero_fill`]). Where the device
    /// makes zeros without writing them ([`WalFile::write_zeroes`]), every
    /// file is zeroed that way instead, whatever the advice or back-off: those
    /// weigh the disk time of writing zeros, which is then none.
    ZeroFill,
    /// [`Prepare::ZeroFill`] without any sync, for a WAL that never syncs (etcd's
    /// unsafe no-fsync mode): the zeros only put the file's pages in the page
    /// cache, so the WAL's appends overwrite cached pages instead of adding a
    /// page (and its block reservation) at every 4 KiB, work this thread then
    /// does instead. Same bytes, same length, the same early stop; but no
    /// back-off: unsynced zeros take no disk time from the WAL, and every page
    /// zeroed before the WAL asks is one its appends do not add. The file is
    /// opened for reading too and handed over mapped for writing
    /// ([`WalFile::map_writes`], populated from the start until the WAL asks
    /// for it), unless the WAL said its writes are large
    /// ([`FilePipeline::set_map_writes`]): its small appends then cost a
    /// memory copy instead of a system call.
    ZeroFillNoSync,
}

impl Prepare {
    /// Whether zeros are written over the file before it is handed over.
    pub fn zero_fills(self) -> bool {
        matches!(self, Prepare::ZeroFill | Prepare::ZeroFillNoSync)
    }

    /// How to open a new segment for this way of preparing it: write-only, as
    /// etcd does, but for [`Prepare::ZeroFillNoSync`], whose segments are also
    /// mapped for writing ([`map_zeros_for_writes`]), which needs a descriptor
    /// that can read too.
    pub fn open_options(self) -> OpenOptions {
        match self {
            Prepare::ZeroFillNoSync => OpenOptions::read_write(),
            _ => OpenOptions::write(),
        }
    }

    /// Zeros per `write` call when zero-filling ([`write_zeros`]) a file that
    /// will (`mapped`) or will not be mapped for writing: for
    /// [`Prepare::ZeroFillNoSync`] 64 KiB if mapped, 256 KiB if not; 1 MiB
    /// otherwise. The page cache sizes its folios by the write that adds them,
    /// and every later write into a folio walks all of its blocks: small
    /// appends that are never synced run up to twice as fast into pages zeroed
    /// 64 KiB at a time, the 100 KB appends of a WAL that is not mapped about
    /// 16 % faster into pages zeroed 256 KiB at a time, while fdatasync'ed
    /// 100 KB saves ran about 10 % slower with 64 KiB than with 1 MiB
    /// (docs/benchmarks.md, levers 12 and 19).
    pub fn zero_write_bytes(self, mapped: bool) -> usize {
        match self {
            Prepare::ZeroFillNoSync if mapped => 64 << 10,
            Prepare::ZeroFillNoSync => 256 << 10,
            _ => 1 << 20,
        }
    }
}

/// Zeros written by [`write_zeros`] between two checks of whether to stop.
const ZERO_CHUNK_BYTES: usize = 1 << 20;

/// Bytes of a mapped file populated between two checks of whether the WAL
/// waits for it.
const POPULATE_STEP_BYTES: u64 = 4 << 20;

/// The longest a [`Prepare::ZeroFill`] pipeline backs off (in files prepared
/// etcd's way) after the WAL had to wait for a zero-filled file.
const MAX_ZERO_FILL_BACKOFF: u32 = 16;

/// Syncing a file's zeros at hand-over may take at most this fraction of the time
/// since the previous hand-over before the pipeline backs off
/// ([`zero_sync_too_slow`]).
const MAX_ZERO_SYNC_SHARE: f64 = 0.5;

/// Whether syncing a segment's zeros at hand-over (`took`) cost the WAL too much
/// for the segment before it, which lived `since_last`: then the pipeline backs
/// off to etcd's way for a while. The stall is the same at every cut (one
/// segment's zeros, 15-20 ms on the benchmark VM); what differs is how long the
/// WAL runs between stalls. Measured there (docs/benchmarks.md, lever 14): 100 KB
/// fdatasync'ed saves fill a zero-filled segment in 65-100 ms, so the sync is
/// 0.16-0.31 of it, and each save is ~90 us faster than into a fallocated
/// segment (about 55 ms per segment, three times what the sync costs); 1 MB
/// saves fill one in 21-26 ms (0.6-0.73), where one save in 64 would wait out
/// the sync. Half separates the two with a margin on both sides; a quarter
/// made the 100 KB WAL fall back on noise alone (a slower sync now and then),
/// for a whole segment of slower saves each time.
fn zero_sync_too_slow(took: Duration, since_last: Duration) -> bool {
    took.as_secs_f64() > MAX_ZERO_SYNC_SHARE * since_last.as_secs_f64()
}

/// [`write_zeros`], then one fdatasync, so the zeroed blocks are written on disk
/// when it returns. Returns the bytes zeroed (and synced).
pub fn zero_fill(
    f: &mut dyn WalFile,
    size: u64,
    stop: impl FnMut() -> bool,
) -> wal_fileutil::Result<u64> {
    let done = write_zeros(f, size, Prepare::ZeroFill.zero_write_bytes(false), stop)?;
    f.sync_data()?;
    Ok(done)
}

/// Writes zeros over `[0, size)` of `f`, `write_bytes` per write (see
/// [`Prepare::zero_write_bytes`]; 4 KiB to 1 MiB), without syncing them, and
/// leaves the offset at 0. `stop()` is asked after each MiB and may end the
/// zeroing early: the rest of the file is left as it was. Returns the bytes
/// written.
///
/// On a freshly preallocated file this changes no byte (it reads as zeros either
/// way); once synced, the file's unwritten extents are written ones. Sync once,
/// not per chunk: the WAL's own fdatasyncs would meet every piece (one sync per
/// MiB tripled their p99 latency; one per 4 MiB, tenfold).
pub fn write_zeros(
    f: &mut dyn WalFile,
    size: u64,
    write_bytes: usize,
    mut stop: impl FnMut() -> bool,
) -> wal_fileutil::Result<u64> {
    let path = f.path().to_path_buf();
    let io = |e| wal_fileutil::Error::from_io("zero-fill", &path, e);
    let write_bytes = write_bytes.clamp(4096, ZERO_CHUNK_BYTES);
    let zeros = vec![0u8; write_bytes];
    f.seek(SeekFrom::Start(0)).map_err(io)?;
    let mut done = 0u64;
    while done < size {
        let chunk_end = size.min(done + ZERO_CHUNK_BYTES as u64);
        while done < chunk_end {
            let n = (chunk_end - done).min(write_bytes as u64) as usize;
            f.write_all(&zeros[..n]).map_err(io)?;
            done += n as u64;
        }
        if done < size && stop() {
            break;
        }
    }
    f.seek(SeekFrom::Start(0)).map_err(io)?;
    Ok(done)
}

/// Maps the first `zeroed` bytes of `f` (written zeros) for writing
/// ([`WalFile::map_writes`]) and populates the mapping from the start, 4 MiB at
/// a time, until `stop()` says to stop: pages the writer reaches unpopulated
/// fault in as it writes (or take a `pwrite`, for large writes), and bytes past
/// `zeroed` are written with `write(2)`. Returns the bytes populated. Failing
/// to map is not fatal, only logged: writes then go through `write(2)` as
/// before; nor is failing to populate (kernels before 5.14 lack the advice).
pub fn map_zeros_for_writes(
    f: &mut dyn WalFile,
    zeroed: u64,
    mut stop: impl FnMut() -> bool,
) -> u64 {
    let mut populated = 0u64;
    match f.map_writes(zeroed) {
        Ok(true) => {}
        Ok(false) => return 0,
        Err(e) => {
            tracing::warn!(path = %f.path().display(), error = %e, "failed to map a new WAL segment for writing");
            return 0;
        }
    }
    while !stop() {
        match f.populate_writes(POPULATE_STEP_BYTES) {
            Ok(0) => break,
            Ok(n) => populated += n,
            Err(e) => {
                tracing::debug!(path = %f.path().display(), error = %e, "populating a write mapping");
                break;
            }
        }
    }
    tracing::debug!(path = %f.path().display(), populated, "mapped a new WAL segment for writing");
    populated
}

/// A file ready to hand over.
struct Prepared {
    file: Box<dyn WalFile>,
    /// Zeros were written into it and are not synced yet.
    unsynced_zeros: bool,
}

/// State shared by the pipeline handle and its thread.
struct State {
    /// The prepared file, or the error preparing it, waiting to be taken.
    slot: Option<wal_fileutil::Result<Prepared>>,
    /// When the last file was handed over (or the pipeline started).
    last_handover: Instant,
    /// Set by `open` after syncing a file's zeros: whether that took too long
    /// (the thread then backs off from zero-filling) or not (it stops backing off).
    zero_sync_too_slow: Option<bool>,
    /// How long the last `open` spent syncing zeros, until taken.
    last_zero_sync: Option<std::time::Duration>,
    /// Whether [`Prepare::ZeroFillNoSync`] files are mapped for writing
    /// ([`FilePipeline::set_map_writes`]).
    map_writes: bool,
    /// Whether [`Prepare::ZeroFill`] files are zero-filled
    /// ([`FilePipeline::set_zero_fill`]).
    zero_fill: bool,
    /// Number of `open` calls waiting for the slot.
    demand: usize,
    /// Set by `close`: the thread stops.
    closed: bool,
    /// Errors met while discarding the unused file on close.
    close_error: Option<wal_fileutil::Error>,
    /// Finished files whose pages the thread drops from the page cache before it
    /// prepares the next file.
    to_uncache: Vec<PathBuf>,
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
    fs: Arc<dyn FileSystem>,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    dir: PathBuf,
    size: u64,
    prepare: Prepare,
}

impl std::fmt::Debug for FilePipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FilePipeline")
            .field("dir", &self.dir)
            .field("size", &self.size)
            .field("prepare", &self.prepare)
            .field("running", &self.thread.is_some())
            .finish()
    }
}

impl FilePipeline {
    /// Starts the thread, which immediately prepares `dir/0.tmp` of `size`
    /// bytes and waits until it is taken. Failing to start the thread is
    /// reported by the first [`open`](FilePipeline::open). Files are prepared
    /// etcd's way ([`Prepare::Preallocate`]).
    pub fn new(fs: Arc<dyn FileSystem>, dir: &Path, size: u64) -> FilePipeline {
        Self::with_prepare(fs, dir, size, Prepare::Preallocate)
    }

    /// [`FilePipeline::new`], preparing each file as `prepare` says.
    pub fn with_prepare(
        fs: Arc<dyn FileSystem>,
        dir: &Path,
        size: u64,
        prepare: Prepare,
    ) -> FilePipeline {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                slot: None,
                last_handover: Instant::now(),
                zero_sync_too_slow: None,
                last_zero_sync: None,
                map_writes: true,
                zero_fill: true,
                demand: 0,
                closed: false,
                close_error: None,
                to_uncache: Vec::new(),
            }),
            cond: Condvar::new(),
        });
        let worker = Worker {
            fs: Arc::clone(&fs),
            dir: dir.to_owned(),
            size,
            prepare,
            skip_zero_fill: 0,
            next_backoff: 1,
            write_zeroes: None,
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
            fs,
            shared,
            thread,
            dir: dir.to_owned(),
            size,
            prepare,
        }
    }

    /// Blocks until the next file is ready and hands it over: `dir/N.tmp`,
    /// write-only, locked, `size` bytes long, offset 0. The file's directory
    /// entry is not fsynced; the caller renames it and fsyncs the directory.
    /// Rename the file before calling `open` again, or the file after next
    /// reuses its name.
    ///
    /// With [`Prepare::ZeroFill`], the file's zeros are fdatasynced here, in the
    /// caller's thread: a WAL cutting a segment then waits once for their
    /// writeback, instead of every fdatasync it makes meeting some of it.
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
        let since_last = st.last_handover.elapsed();
        self.shared.cond.notify_all();
        drop(st);
        let Prepared {
            mut file,
            unsynced_zeros,
        } = res?;
        let mut synced = None;
        if unsynced_zeros {
            let started = Instant::now();
            if let Err(e) = file.sync_data() {
                tracing::error!(path = %file.path().display(), error = %e, "failed to sync a zero-filled WAL segment");
                // Like a failed preallocation: not handed over, not left behind.
                if let Err(re) = self.fs.remove_file(file.path()) {
                    tracing::warn!(path = %file.path().display(), error = %re, "removing failed .tmp");
                }
                return Err(Error::File(e));
            }
            let took = started.elapsed();
            tracing::debug!(
                path = %file.path().display(),
                ms = took.as_secs_f64() * 1e3,
                "synced a zero-filled WAL segment at hand-over",
            );
            synced = Some(took);
        }
        let mut st = self.shared.lock();
        if let Some(took) = synced {
            st.zero_sync_too_slow = Some(zero_sync_too_slow(took, since_last));
            st.last_zero_sync = Some(took);
        }
        st.last_handover = Instant::now();
        Ok(file)
    }

    /// Whether the [`Prepare::ZeroFillNoSync`] files prepared from now on are
    /// handed over mapped for writing (the default) or not. For a WAL to say
    /// whether its writes are mostly small: large ones
    /// ([`wal_fileutil::MAPPED_WRITE_MAX`] or more) go through `pwrite(2)`
    /// unless populated, and the mapping then costs more than it saves (100 KB
    /// saves without fsync ran 7-10 % slower mapped: docs/benchmarks.md,
    /// lever 15).
    pub fn set_map_writes(&self, on: bool) {
        self.shared.lock().map_writes = on;
    }

    /// Whether [`Prepare::ZeroFill`] writes zeros over the next files (the
    /// default) or prepares them etcd's way, for a WAL to say whether zeros
    /// still pay for its writes: past the page cache, syncs of several hundred
    /// KB each ran faster into merely preallocated files (docs/benchmarks.md,
    /// lever 23). Applies from the next file prepared.
    pub fn set_zero_fill(&self, on: bool) {
        self.shared.lock().zero_fill = on;
    }

    /// How long the last [`open`](FilePipeline::open) spent fdatasyncing the
    /// handed-over file's zeros, if it did; reported once. The WAL counts it among
    /// its fsyncs (etcd's `etcd_disk_wal_fsync_duration_seconds`), since its save
    /// waited for it.
    pub fn take_last_zero_sync(&self) -> Option<std::time::Duration> {
        self.shared.lock().last_zero_sync.take()
    }

    /// Has the thread drop `path`'s pages from the page cache
    /// ([`WalFile::drop_cache`]) before it prepares the next file, so the caller
    /// (a cut, on the WAL's critical path) does not wait for it, and the next
    /// file's pages are the ones just freed. Advisory: failures (the file may be
    /// gone by then) are logged at debug level.
    pub fn drop_cache_later(&self, path: PathBuf) {
        let mut st = self.shared.lock();
        st.to_uncache.push(path);
        self.shared.cond.notify_all();
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
    prepare: Prepare,
    /// Files still to prepare etcd's way before zero-filling again, and how many
    /// the next back-off will be (see [`Prepare::ZeroFill`]).
    skip_zero_fill: u32,
    next_backoff: u32,
    /// Whether the file system and device make zeros without writing them
    /// ([`WalFile::write_zeroes`]): unknown until the first zero-filled file.
    write_zeroes: Option<bool>,
    /// Number of files handed over so far; names alternate on its parity.
    count: u64,
    shared: Arc<Shared>,
}

impl Worker {
    fn run(mut self) {
        loop {
            self.uncache();
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

    /// Drops the pages of the files handed to [`FilePipeline::drop_cache_later`].
    fn uncache(&self) {
        let paths = std::mem::take(&mut self.shared.lock().to_uncache);
        for path in paths {
            let done = self
                .fs
                .open(&path, &OpenOptions::read())
                .and_then(|f| f.drop_cache());
            if let Err(e) = done {
                tracing::debug!(path = %path.display(), error = %e, "dropping a file's pages");
            }
        }
    }

    /// etcd's `alloc`: create and lock `{count%2}.tmp`, then preallocate it (and
    /// zero-fill it, per [`Prepare`]).
    fn alloc(&mut self) -> wal_fileutil::Result<Prepared> {
        let path = self.dir.join(format!("{}.tmp", self.count % 2));
        // Asked once, before the file exists: the advice in force when a file
        // appears is the one it was prepared by.
        let advised_off = self.prepare == Prepare::ZeroFill && !self.shared.lock().zero_fill;
        let opts = self
            .prepare
            .open_options()
            .create(true)
            .lock(LockMode::Wait);
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
        let verdict = self.shared.lock().zero_sync_too_slow.take();
        match verdict {
            // Syncing the last zeros took the WAL too long: back off.
            Some(true) => self.back_off(),
            Some(false) => self.next_backoff = 1,
            None => {}
        }
        let mut unsynced_zeros = false;
        let mut zeroed_bytes = 0;
        // Asked once: the zeros are written for how the file will be written.
        let mapped = self.prepare == Prepare::ZeroFillNoSync && self.shared.lock().map_writes;
        if self.prepare == Prepare::ZeroFill && self.write_zeroes_over(&mut *f) {
            // Zeros that cost the disk nothing: the advice and the back-off,
            // which weigh the zeros' disk time, do not apply.
            unsynced_zeros = true;
        } else if advised_off {
            tracing::debug!(path = %path.display(), "not zero-filling a new WAL segment, as advised");
        } else if self.prepare.zero_fills() && self.skip_zero_fill > 0 {
            self.skip_zero_fill -= 1;
        } else if self.prepare.zero_fills() {
            let shared = Arc::clone(&self.shared);
            // Stop early when the WAL is waiting for this file, or on close.
            let waiting = move || {
                let st = shared.lock();
                st.demand > 0 || st.closed
            };
            let started = std::time::Instant::now();
            let zeroed = write_zeros(
                &mut *f,
                self.size,
                self.prepare.zero_write_bytes(mapped),
                waiting.clone(),
            );
            tracing::debug!(
                path = %path.display(),
                zeroed = ?zeroed.as_ref().ok(),
                ms = started.elapsed().as_secs_f64() * 1e3,
                "wrote zeros over a new WAL segment",
            );
            let late = matches!(zeroed, Ok(n) if n < self.size) || waiting();
            if late && self.prepare == Prepare::ZeroFill {
                // The WAL asked for this file before it was ready: it is writing
                // faster than the disk can also take the zeros. Back off.
                self.back_off();
            }
            unsynced_zeros = self.prepare == Prepare::ZeroFill && matches!(zeroed, Ok(n) if n > 0);
            zeroed_bytes = *zeroed.as_ref().unwrap_or(&0);
            if let Err(e) = zeroed {
                tracing::error!(
                    path = %path.display(),
                    error = %e,
                    "failed to zero-fill a new WAL segment",
                );
                // Treated like a failed preallocation: the file is not handed over.
                if let Err(re) = self.fs.remove_file(&path) {
                    tracing::warn!(path = %path.display(), error = %re, "removing failed .tmp");
                }
                drop(f);
                return Err(e);
            }
        }
        if mapped {
            // Populated until the WAL asks for the file.
            let shared = Arc::clone(&self.shared);
            map_zeros_for_writes(&mut *f, zeroed_bytes, move || {
                let st = shared.lock();
                st.demand > 0 || st.closed
            });
        }
        Ok(Prepared {
            file: f,
            unsynced_zeros,
        })
    }

    /// Has the device zero all of `f` ([`WalFile::write_zeroes`]) where it can;
    /// the first refusal stands for every later file. Returns whether it did. A
    /// failure counts as a refusal (logged): the zeros are then written, and a
    /// disk that fails those fails the file.
    fn write_zeroes_over(&mut self, f: &mut dyn WalFile) -> bool {
        if self.write_zeroes == Some(false) {
            return false;
        }
        let path = f.path().to_path_buf();
        let zeroed = match f.write_zeroes(self.size) {
            Ok(true) if self.write_zeroes.is_none() => {
                tracing::info!(path = %path.display(), "the device zero-fills WAL segments (write-zeroes)");
                true
            }
            Ok(zeroed) => {
                if !zeroed {
                    tracing::debug!(path = %path.display(), "no write-zeroes here: writing zeros over WAL segments");
                }
                zeroed
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "write-zeroes failed: writing zeros over WAL segments");
                false
            }
        };
        self.write_zeroes = Some(zeroed);
        zeroed
    }

    /// Prepares the next 1, 2, 4, ... (up to [`MAX_ZERO_FILL_BACKOFF`]) files
    /// etcd's way before zero-filling again.
    fn back_off(&mut self) {
        self.skip_zero_fill = self.next_backoff;
        self.next_backoff = (self.next_backoff * 2).min(MAX_ZERO_FILL_BACKOFF);
    }

    /// On close: remove the unused file (then close it, as etcd does), or keep
    /// the undelivered error for `close` to return.
    fn discard(&self, res: wal_fileutil::Result<Prepared>) {
        let err = match res {
            Ok(Prepared { file: f, .. }) => {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_syncs_are_too_slow_only_for_a_wal_near_the_disks_bandwidth() {
        let ms = Duration::from_millis;
        // Measured on the benchmark VM (docs/benchmarks.md, lever 14): 100 KB
        // fdatasync'ed saves keep their zero-filled segments, even with a slow
        // sync now and then...
        assert!(!zero_sync_too_slow(ms(16), ms(72)));
        assert!(!zero_sync_too_slow(ms(22), ms(70)));
        // ...1 MB saves back off to etcd's way.
        assert!(zero_sync_too_slow(ms(16), ms(23)));
        assert!(zero_sync_too_slow(ms(15), ms(21)));
        // A WAL that waited no time at all for its previous segment.
        assert!(zero_sync_too_slow(ms(1), Duration::ZERO));
    }
}
