//! etcd's write-ahead log, byte-compatible, in Rust.
//!
//! A [`Wal`] is a directory of segment files (`%016x-%016x.wal`) holding CRC-chained
//! records: metadata, Raft hard states, entries and snapshot markers. The API follows
//! etcd's `wal` package:
//!
//! - [`Options::create`] (or [`create`]) makes a new WAL;
//! - [`Options::open`] opens one for appending (locking its segments) and
//!   [`Options::open_for_read`] for reading only; both start at a snapshot;
//! - [`Wal::read_all`] returns the metadata, the last hard state and the entries
//!   after the snapshot, and (in write mode) readies the WAL for appends;
//! - [`Wal::save`], [`Wal::save_snapshot`] append; segments are cut automatically;
//! - [`verify()`], [`valid_snapshot_entries`] and [`repair`] inspect or fix a directory;
//! - [`Replay`] streams the records without holding every entry in memory.
//!
//! ```
//! use wal::raftpb::{Entry, HardState};
//! use wal::walpb::Snapshot;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("wal");
//! let w = wal::Options::new().segment_size(1 << 20).create(&path, Some(b"meta")).unwrap();
//! let e = Entry { r#type: 0, term: 1, index: 1, data: Some(b"hello".to_vec().into()) };
//! w.save(&HardState { term: 1, vote: 1, commit: 1 }, &[e]).unwrap(); // durable on return
//! w.close().unwrap();
//!
//! let w = wal::open(&path, &Snapshot::default()).unwrap();
//! let all = w.read_all().unwrap();
//! assert_eq!(all.metadata.as_deref(), Some(&b"meta"[..]));
//! assert_eq!(all.entries.len(), 1);
//! ```

mod error;
pub mod names;
mod replay;
mod scan;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use wal_codec::{encode_snapshot, Encoder, EntryEncoding, RecordType};
use wal_fileutil::{FileSystem, LockMode, OpenOptions, WalFile};
use wal_pipeline::FilePipeline;

pub use crate::error::{Error, ErrorKind, Result};
pub use crate::names::{parse_wal_name, wal_name};
pub use crate::replay::{Event, Replay};
pub use wal_codec::{raftpb, walpb};

use crate::raftpb::{Entry, HardState};
use crate::scan::{Access, End, Stream};
use crate::walpb::Snapshot;

/// etcd's default segment size: 64,000,000 bytes (not 64 MiB).
pub const DEFAULT_SEGMENT_SIZE: u64 = 64 * 1000 * 1000;

/// An fdatasync slower than this is logged as a warning (etcd's `warnSyncDuration`).
const WARN_SYNC_DURATION: Duration = Duration::from_secs(1);

/// Flushes into a segment after which a WAL that never syncs first tells its
/// pipeline whether to map the next segments (`Inner::advise_map_writes`); it
/// tells again at every cut.
const MAP_ADVICE_FLUSHES: u64 = 16;

/// Syncs averaging this many bytes or more into a segment written directly
/// make the pipeline prepare the next segments etcd's way (`fallocate` only)
/// rather than zero-filled (`Inner::advise_zero_fill`). With direct writes the
/// journal commit that an append into `fallocate`d blocks adds to each
/// fdatasync costs less than the zeros' second pass over the disk once a
/// sync carries more than a few hundred KB: a save loop here ran 10 % faster
/// into `fallocate`d segments at 400 KB and 700 KB per save and 8 % slower at
/// 200 KB (docs/benchmarks.md, lever 23).
const ZERO_FILL_MAX_SYNC_BYTES: u64 = 300_000;

/// What [`Wal::read_all`] returns: etcd's `(metadata, state, ents)`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReadAll {
    /// The metadata given to `create` (`None` when it was nil).
    pub metadata: Option<Bytes>,
    /// The last hard state saved (empty if none).
    pub hard_state: HardState,
    /// The entries after the start snapshot, with Raft log truncation applied: an
    /// entry saved later with a lower or equal index replaces the tail.
    pub entries: Vec<Entry>,
}

/// How to create or open a WAL: etcd's package-level settings, per WAL.
#[derive(Debug, Clone)]
pub struct Options {
    segment_size: u64,
    unsafe_no_sync: bool,
    zero_fill: bool,
    drop_cache: bool,
    read_ahead: bool,
    keep_tick: bool,
    direct_writes: bool,
    entry_encoding: EntryEncoding,
    fs: Arc<dyn FileSystem>,
}

impl Default for Options {
    fn default() -> Self {
        Self::new()
    }
}

impl Options {
    /// etcd's defaults: 64,000,000-byte segments, fdatasync on, etcd 3.6 entry bytes,
    /// the OS file system.
    pub fn new() -> Self {
        Self {
            segment_size: DEFAULT_SEGMENT_SIZE,
            unsafe_no_sync: false,
            zero_fill: true,
            drop_cache: true,
            read_ahead: true,
            keep_tick: true,
            direct_writes: true,
            entry_encoding: EntryEncoding::Etcd36,
            fs: wal_fileutil::os(),
        }
    }

    /// Preallocated size of each segment; a segment is cut once its flushed size
    /// reaches it (etcd's `SegmentSizeBytes`).
    pub fn segment_size(mut self, bytes: u64) -> Self {
        self.segment_size = bytes.max(1);
        self
    }

    /// Never fsync (etcd's `SetUnsafeNoFsync`): for tests and benchmarks only.
    /// Nothing is durable until the OS writes it back.
    pub fn unsafe_no_sync(mut self, yes: bool) -> Self {
        self.unsafe_no_sync = yes;
        self
    }

    /// Whether new segments get their blocks written (with zeros, then
    /// fdatasync'ed) before any record is appended: the first segment in `create`;
    /// the following ones are written in the background by the segment pipeline
    /// and synced by the cut that takes them, so their writeback delays that one
    /// save rather than any save that would meet it. Where the device makes
    /// zeros without writing them (`WalFile::write_zeroes`: Linux 6.17 and
    /// later, devices that zero by unmapping), it makes them instead, at no
    /// cost to the disk. Default on.
    ///
    /// The bytes on disk and the preallocated length are exactly etcd's (a
    /// preallocated segment reads as zeros either way). What changes is that the
    /// blocks are already written, so an fdatasync after an append does not also
    /// have to commit the conversion of unwritten extents (ext4, xfs), which makes
    /// appends markedly faster (docs/benchmarks.md). Off: etcd's `fallocate` only.
    /// With [`Options::unsafe_no_sync`] the zeros are written but never synced:
    /// they put the segment's pages in the page cache ahead of the appends, and
    /// the segment is mapped for writing (`WalFile::map_writes`), so a small
    /// append is a memory copy into those pages instead of a `write` call. What
    /// a crash of the process leaves is the same; but a disk error on a page the
    /// kernel must read back, or someone else truncating the segment, then kills
    /// the process (SIGBUS) instead of failing the save (etcd exits on a failed
    /// save anyway). Only on file systems that overwrite written blocks in place
    /// (`wal_fileutil::overwrites_in_place`: ext4, xfs, tmpfs), so a full disk is
    /// still a failed save. Turn zero-fill off to keep `write` calls without
    /// fsync.
    pub fn zero_fill_segments(mut self, yes: bool) -> Self {
        self.zero_fill = yes;
        self
    }

    /// Whether a segment's pages are dropped from the page cache once it is
    /// finished (synced and cut), as PostgreSQL does with its WAL segments. Default
    /// on.
    ///
    /// A Raft node reads old segments only when it restarts, so keeping them cached
    /// mostly evicts more useful pages; and the memory they free is what the next
    /// segments are written into, which on a VM, where memory touched for the first
    /// time is expensive, keeps large appends from slowing down over time
    /// (docs/benchmarks.md). Off: etcd's behaviour, the kernel decides. Ignored
    /// (off) with [`Options::unsafe_no_sync`], where the pages are still dirty.
    pub fn drop_finished_segments_from_cache(mut self, yes: bool) -> Self {
        self.drop_cache = yes;
        self
    }

    /// Whether readers fetch the segments ahead on helper threads: [`Replay`] up
    /// to 32 MiB ahead of its decoder; `read_all`, [`verify()`] and
    /// [`valid_snapshot_entries`] every segment, the mapped ones by touching
    /// them where the kernel maps the page cache in huge pages, else by reading
    /// them. Default on: a cold replay then runs at the disk's pace instead of
    /// the disk's plus the decoder's (docs/benchmarks.md, levers 17, 18 and 21).
    /// Off: etcd's way, the kernel's readahead only.
    pub fn read_ahead(mut self, yes: bool) -> Self {
        self.read_ahead = yes;
        self
    }

    /// Whether a save keeps its CPU's scheduler tick running through the
    /// fdatasync it waits for (`wal_fileutil::keep_tick`: one pipe opened and
    /// closed per millisecond of saving, nothing on disk changes). Default on: on
    /// a virtual machine a tickless kernel otherwise stops and restarts the tick
    /// around each of the two sleeps inside an fdatasync, which cost small saves
    /// 10 to 25 % of their rate here (docs/benchmarks.md, lever 20). Off: etcd's
    /// way.
    pub fn keep_tick(mut self, yes: bool) -> Self {
        self.keep_tick = yes;
        self
    }

    /// Whether the segments this WAL writes (the ones it makes, and its tail
    /// after `read_all`) go past the page cache (`WalFile::direct_writes`,
    /// `O_DIRECT` on ext4 and xfs): each save is staged in this process and
    /// written to the disk in whole pages right before its fdatasync, instead
    /// of copied into the page cache and written back by the fdatasync. The
    /// bytes on disk are the same (the zeros the last page is padded with are
    /// the segment's own), and so are the cuts. Default on: saves ran 5-10 %
    /// faster here, 1 MB saves 25 % (docs/benchmarks.md, lever 22), and the
    /// WAL's pages no longer take page-cache memory. What differs: bytes
    /// saved without a sync stay in this process until the next one (up to 2
    /// MiB), so a killed process loses them where etcd's would be in the
    /// kernel (neither has promised them), and a restart reads the tail from
    /// the disk. Ignored with [`Options::unsafe_no_sync`]. Off: etcd's way,
    /// `write(2)`.
    pub fn direct_writes(mut self, yes: bool) -> Self {
        self.direct_writes = yes;
        self
    }

    /// Turns direct writes on for a segment about to take appends (new, or the
    /// tail after `read_all`), if these options ask for them.
    fn write_directly(&self, f: &mut dyn WalFile) -> Result<bool> {
        if self.direct_writes && !self.unsafe_no_sync {
            return Ok(f.direct_writes()?);
        }
        Ok(false)
    }

    fn prepare(&self) -> wal_pipeline::Prepare {
        match (self.zero_fill, self.unsafe_no_sync) {
            (true, false) => wal_pipeline::Prepare::ZeroFill,
            (true, true) => wal_pipeline::Prepare::ZeroFillNoSync,
            (false, _) => wal_pipeline::Prepare::Preallocate,
        }
    }

    /// Which entry bytes to write (readers accept both).
    pub fn entry_encoding(mut self, form: EntryEncoding) -> Self {
        self.entry_encoding = form;
        self
    }

    /// The file system to go through (the crash suites pass a simulated disk).
    pub fn file_system(mut self, fs: Arc<dyn FileSystem>) -> Self {
        self.fs = fs;
        self
    }

    /// Creates a WAL in `dir`, which must not already hold one, exactly in etcd's
    /// order: build it in `dir.tmp`, write a crc record, the metadata and an empty
    /// snapshot record, fdatasync, rename `dir.tmp` to `dir`, fsync the parent.
    /// On return the WAL is durable and ready for appends.
    pub fn create(&self, dir: &Path, metadata: Option<&[u8]>) -> Result<Wal> {
        create_wal(self, dir, metadata)
    }

    /// Opens the WAL in `dir` for appending, starting at `snap` (which should have
    /// been saved with [`Wal::save_snapshot`]). Locks every segment from the one
    /// holding the snapshot's index on; fails with [`Error::Locked`] if another
    /// process holds one. Call [`Wal::read_all`] before appending.
    pub fn open(&self, dir: &Path, snap: &Snapshot) -> Result<Wal> {
        open_at_index(self, dir, snap, true)
    }

    /// The file system this WAL goes through (set with [`Options::file_system`]).
    pub fn fs(&self) -> &Arc<dyn FileSystem> {
        &self.fs
    }

    /// Removes the oldest segments of `dir` beyond the newest `keep`, stopping at the
    /// first one still locked (by this process's open WAL, which holds segments until
    /// [`Wal::release_lock_to`], or by another process), as etcd's server purges its
    /// WAL directory with `fileutil.PurgeFile`. Removals are not fsync'ed.
    pub fn purge(&self, dir: &Path, keep: usize) -> Result<wal_fileutil::PurgeReport> {
        Ok(wal_fileutil::purge_once(&*self.fs, dir, ".wal", keep)?)
    }

    /// Whether `dir` holds any `.wal` file, through this file system.
    pub fn exist(&self, dir: &Path) -> bool {
        exist_in(&*self.fs, dir)
    }

    /// Opens the WAL in `dir` for reading only: no locks, no writes.
    pub fn open_for_read(&self, dir: &Path, snap: &Snapshot) -> Result<Wal> {
        open_at_index(self, dir, snap, false)
    }
}

/// [`Options::create`] with etcd's defaults.
pub fn create(dir: &Path, metadata: Option<&[u8]>) -> Result<Wal> {
    Options::new().create(dir, metadata)
}

/// [`Options::open`] with etcd's defaults.
pub fn open(dir: &Path, snap: &Snapshot) -> Result<Wal> {
    Options::new().open(dir, snap)
}

/// [`Options::open_for_read`] with etcd's defaults.
pub fn open_for_read(dir: &Path, snap: &Snapshot) -> Result<Wal> {
    Options::new().open_for_read(dir, snap)
}

/// Whether `dir` holds any `.wal` file (etcd's `Exist`).
pub fn exist(dir: &Path) -> bool {
    exist_in(&*wal_fileutil::os(), dir)
}

fn exist_in(fs: &dyn FileSystem, dir: &Path) -> bool {
    fs.read_dir(dir)
        .map(|names| names.iter().any(|n| n.ends_with(".wal")))
        .unwrap_or(false)
}

/// A write-ahead log. Methods take `&self` and may be called from several threads.
pub struct Wal {
    dir: PathBuf,
    opts: Options,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for Wal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// A locked segment that is not the tail.
struct Locked {
    index: u64,
    _file: Box<dyn WalFile>,
}

/// The segment being appended to.
struct Tail {
    path: PathBuf,
    seq: u64,
    index: u64,
    enc: Encoder<Box<dyn WalFile>>,
    /// Flushes into this segment since `from`, its size when this process took
    /// it (a WAL that never syncs flushes once per save): how large its writes
    /// were.
    flushes: u64,
    from: u64,
    /// Whether this segment takes direct writes ([`Options::direct_writes`]).
    direct: bool,
}

struct Inner {
    writable: bool,
    /// Before `read_all`: the stream to read and the snapshot to start at.
    reader: Option<(Stream, Snapshot)>,
    /// Write mode before `read_all`: every locked segment (tail last), with names.
    opened: Vec<(PathBuf, u64, u64, Box<dyn WalFile>)>,
    /// Locked segments older than the tail.
    locks: Vec<Locked>,
    tail: Option<Tail>,
    pipeline: Option<FilePipeline>,
    /// The last non-empty hard state saved since open (etcd's `w.state`).
    state: HardState,
    /// Index of the last entry saved or read (etcd's `w.enti`).
    enti: u64,
    metadata: Option<Bytes>,
    poisoned: Option<String>,
    /// The kernel refused a segment's direct writes: later segments do not
    /// ask for them.
    direct_refused: bool,
}

fn create_wal(opts: &Options, dir: &Path, metadata: Option<&[u8]>) -> Result<Wal> {
    let fs = &*opts.fs;
    if exist_in(fs, dir) {
        return Err(Error::Exists {
            dir: dir.to_path_buf(),
        });
    }
    let tmp = tmp_dir_path(dir);
    if fs.exists(&tmp) {
        fs.remove_dir_all(&tmp)?;
    }
    let result = create_in_tmp(opts, dir, &tmp, metadata);
    if fs.exists(&tmp) {
        // etcd's `defer os.RemoveAll(tmpdirpath)`.
        if let Err(e) = fs.remove_dir_all(&tmp) {
            tracing::warn!(path = %tmp.display(), error = %e, "failed to remove the temporary WAL directory");
        }
    }
    result
}

fn tmp_dir_path(dir: &Path) -> PathBuf {
    let mut s = dir.as_os_str().to_owned();
    s.push(".tmp");
    PathBuf::from(s)
}

fn create_in_tmp(opts: &Options, dir: &Path, tmp: &Path, metadata: Option<&[u8]>) -> Result<Wal> {
    let fs = &*opts.fs;
    fs.create_dir_all(tmp)?;
    let name = wal_name(0, 0);
    let tmp_file = tmp.join(&name);
    let prepare = opts.prepare();
    let mut f = fs.open(
        &tmp_file,
        &prepare.open_options().create(true).lock(LockMode::Wait),
    )?;
    let end = f
        .seek(std::io::SeekFrom::End(0))
        .map_err(|e| Error::io("seeking", &tmp_file, e))?;
    f.preallocate(opts.segment_size, true)?;
    // Written blocks make every later fdatasync cheaper (cached pages, every
    // later write); the bytes are the preallocated zeros either way. Synced
    // with the records below, unless nothing is. A device that zeroes by
    // unmapping makes them without a write (as the pipeline has it do); where
    // that fails, the zeros are written, and a disk that fails those fails here.
    let device_zeroed = end == 0
        && prepare == wal_pipeline::Prepare::ZeroFill
        && f.write_zeroes(opts.segment_size).unwrap_or_else(|e| {
            tracing::warn!(path = %tmp_file.display(), error = %e, "write-zeroes failed: writing zeros");
            false
        });
    if end == 0 && prepare.zero_fills() && !device_zeroed {
        wal_pipeline::write_zeros(
            &mut *f,
            opts.segment_size,
            // `create` maps the first segment of a WAL that never syncs.
            prepare.zero_write_bytes(true),
            || false,
        )?;
        f.seek(std::io::SeekFrom::Start(end))
            .map_err(|e| Error::io("seeking", &tmp_file, e))?;
        if prepare == wal_pipeline::Prepare::ZeroFillNoSync {
            // As the pipeline does for the next segments: appends become copies
            // into the page cache. Not populated here: populating all of it
            // on the creating thread made the saves that followed slower
            // (docs/benchmarks.md, lever 15); the writes fault the pages in.
            wal_pipeline::map_zeros_for_writes(&mut *f, opts.segment_size, || true);
        }
    }
    let direct = opts.write_directly(&mut *f)?;
    let mut enc = Encoder::new(f, 0, end);
    let io_err = |e| Error::io("writing", &tmp_file, e);
    enc.encode(RecordType::Crc as i64, None).map_err(io_err)?;
    enc.encode(RecordType::Metadata as i64, metadata)
        .map_err(io_err)?;
    enc.encode(
        RecordType::Snapshot as i64,
        Some(&encode_snapshot(&Snapshot::default())),
    )
    .map_err(io_err)?;
    let mut inner = Inner {
        writable: true,
        reader: None,
        opened: Vec::new(),
        locks: Vec::new(),
        tail: Some(Tail {
            path: tmp_file.clone(),
            seq: 0,
            index: 0,
            enc,
            flushes: 0,
            direct,
            from: 0,
        }),
        pipeline: None,
        state: HardState::default(),
        enti: 0,
        metadata: metadata.map(Bytes::copy_from_slice),
        poisoned: None,
        direct_refused: false,
    };
    inner.sync(opts)?;
    // Beyond etcd: make the segment's name durable inside the temporary directory
    // before the directory is renamed into place. Without it a power loss may leave
    // the renamed directory without its first segment on file systems that do not
    // order directory operations (see design/powerloss-model.md).
    fs.fsync_dir(tmp)?;

    // etcd holds the lock while renaming the directory into place.
    if fs.exists(dir) {
        fs.remove_dir_all(dir)?;
    }
    fs.rename(tmp, dir)?;
    if let Some(t) = inner.tail.as_mut() {
        t.path = dir.join(&name);
    }
    inner.pipeline = Some(FilePipeline::with_prepare(
        opts.fs.clone(),
        dir,
        opts.segment_size,
        opts.prepare(),
    ));
    let w = Wal {
        dir: dir.to_path_buf(),
        opts: opts.clone(),
        inner: Mutex::new(inner),
    };
    // The directory was renamed: sync the parent to persist the rename.
    let parent = parent_dir(dir);
    let start = Instant::now();
    if let Err(e) = fs.fsync_dir(&parent) {
        cleanup_broken(w);
        return Err(e.into());
    }
    observe_fsync(start.elapsed());
    Ok(w)
}

/// Go's `time.Now().Format("20060102.150405.999999")` in UTC: date, time, then the
/// microseconds with trailing zeros (and the dot, if nothing is left) removed.
fn broken_stamp(now: std::time::SystemTime) -> String {
    let d = now
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let mut out = format!(
        "{year:04}{month:02}{day:02}.{:02}{:02}{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    );
    let micros = format!("{:06}", d.subsec_micros());
    let micros = micros.trim_end_matches('0');
    if !micros.is_empty() {
        out.push('.');
        out.push_str(micros);
    }
    out
}

fn parent_dir(dir: &Path) -> PathBuf {
    match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// etcd's cleanupWAL: close, then move the directory aside as `dir.broken.<time>`.
fn cleanup_broken(w: Wal) {
    let dir = w.dir.clone();
    let fs = w.opts.fs.clone();
    if let Err(e) = w.close() {
        tracing::error!(dir = %dir.display(), error = %e, "failed to close WAL during cleanup");
    }
    let mut broken = dir.as_os_str().to_owned();
    broken.push(format!(
        ".broken.{}",
        broken_stamp(std::time::SystemTime::now())
    ));
    if let Err(e) = fs.rename(&dir, Path::new(&broken)) {
        tracing::error!(dir = %dir.display(), error = %e, "failed to rename WAL during cleanup");
    }
}

/// How long a segment lock held by someone else is waited out before `Locked`.
///
/// Between `fork` and `exec`, a child process briefly holds copies of its parent's
/// descriptors, and with them their OFD locks (close-on-exec only closes them at
/// `exec`). A process that spawns children while it reopens its WAL would otherwise
/// see its own lock as held by another process. A real holder (a running etcd, a
/// second writer) still fails the open, 100 ms later.
const LOCK_RETRY: Duration = Duration::from_millis(100);

/// Opens a segment read-write with an exclusive lock, without blocking on a real
/// holder (etcd's `TryLockFile`, riding out fork windows, see [`LOCK_RETRY`]).
pub(crate) fn try_lock_segment(fs: &dyn FileSystem, path: &Path) -> Result<Box<dyn WalFile>> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        match fs.open(path, &OpenOptions::read_write().lock(LockMode::Try)) {
            Err(wal_fileutil::Error::Locked { .. }) if start.elapsed() < LOCK_RETRY => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(20));
            }
            other => return Ok(other?),
        }
    }
}

/// The record loop of `read_all`: fills `out` (etcd's log truncation applied),
/// tracks the last entry index in `enti` and whether the start snapshot was seen,
/// and returns how the stream ended.
fn read_records(
    stream: &mut Stream,
    start: &Snapshot,
    enti: &mut u64,
    out: &mut ReadAll,
    matched: &mut bool,
) -> Result<End> {
    loop {
        let mut rec = match stream.next()? {
            Ok(r) => r,
            Err(end) => return Ok(end),
        };
        match RecordType::from_i64(rec.rec_type) {
            Some(RecordType::Entry) => {
                let e = rec.entry()?;
                *enti = e.index;
                if e.index <= start.index {
                    continue;
                }
                let offset = e.index - start.index - 1;
                if offset > out.entries.len() as u64 {
                    return Err(Error::SliceOutOfRange {
                        file: rec.file.to_path_buf(),
                        offset: rec.offset,
                        start: start.index,
                        index: e.index,
                        len: out.entries.len(),
                        read: Box::new(ReadAll {
                            metadata: None,
                            hard_state: out.hard_state,
                            entries: std::mem::take(&mut out.entries),
                        }),
                    });
                }
                out.entries.truncate(offset as usize);
                out.entries.push(e);
            }
            Some(RecordType::State) => out.hard_state = rec.hard_state()?,
            Some(RecordType::Metadata) => {
                rec.check_metadata(out.metadata.as_deref())?;
                out.metadata = rec.data.clone();
            }
            Some(RecordType::Snapshot) => *matched |= rec.matches_start(start)?,
            _ => return Err(rec.unexpected_type()),
        }
    }
}

fn open_at_index(opts: &Options, dir: &Path, snap: &Snapshot, write: bool) -> Result<Wal> {
    let fs = &*opts.fs;
    let (names, at) = names::select_wal_files(fs, dir, snap.index)?;
    let selected = &names[at..];
    let mut opened = Vec::new();
    if write {
        for name in selected {
            let path = dir.join(name);
            let (seq, index) =
                parse_wal_name(name).ok_or_else(|| Error::InvalidName { path: path.clone() })?;
            let f = try_lock_segment(fs, &path)?;
            opened.push((path, seq, index, f));
        }
    }
    let stream = Stream::open(fs, dir, selected, Access::MapAhead)?;
    let pipeline = write.then(|| {
        FilePipeline::with_prepare(opts.fs.clone(), dir, opts.segment_size, opts.prepare())
    });
    Ok(Wal {
        dir: dir.to_path_buf(),
        opts: opts.clone(),
        inner: Mutex::new(Inner {
            writable: write,
            reader: Some((stream, snap.clone())),
            opened,
            locks: Vec::new(),
            tail: None,
            pipeline,
            state: HardState::default(),
            enti: 0,
            metadata: None,
            poisoned: None,
            direct_refused: false,
        }),
    })
}

impl Wal {
    /// The WAL's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Reads every record after the start snapshot: metadata, the last hard state and
    /// the entries (etcd's `ReadAll`; see [`ReadAll`]). Can be called once.
    ///
    /// In write mode the WAL must read to a clean end: a torn tail is
    /// [`Error::UnexpectedEof`] (run [`repair`] and open again, as etcd's server does);
    /// any non-zero garbage after the last record is then zeroed (not synced), and
    /// appends continue after the last record with the CRC chain continuing.
    /// In read mode an unexpected EOF ends the read without error.
    ///
    /// If no snapshot record matches the start snapshot, read mode returns
    /// [`Error::SnapshotNotFound`], which still carries what was read. Write mode, as
    /// etcd's code does (it overwrites that error), logs a warning and succeeds.
    pub fn read_all(&self) -> Result<ReadAll> {
        let mut inner = self.inner.lock();
        inner.read_all(&self.opts)
    }

    /// Appends the hard state and entries (etcd's `Save`). An empty hard state with
    /// no entries is a no-op.
    ///
    /// Durability on return: when there are entries, or the term or vote changed
    /// (etcd's `MustSync`), everything saved so far is flushed and fdatasync'ed;
    /// otherwise the records may still sit in the write buffer. When the segment's
    /// flushed size has reached the segment size, the segment is cut (which also
    /// syncs). After an error the WAL is poisoned.
    pub fn save(&self, hard_state: &HardState, entries: &[Entry]) -> Result<()> {
        let mut inner = self.inner.lock();
        inner.check_writable()?;
        let r = inner.save(&self.opts, &self.dir, hard_state, entries);
        inner.poison_on_error(r)
    }

    /// Appends a snapshot marker (etcd's `SaveSnapshot`) and syncs: durable on return.
    pub fn save_snapshot(&self, snap: &Snapshot) -> Result<()> {
        let mut inner = self.inner.lock();
        inner.check_writable()?;
        let r = inner.save_snapshot(&self.opts, snap);
        inner.poison_on_error(r)
    }

    /// Flushes and fdatasyncs the tail segment: everything saved is durable on return.
    pub fn sync(&self) -> Result<()> {
        let mut inner = self.inner.lock();
        inner.check_writable()?;
        let r = inner.sync(&self.opts);
        inner.poison_on_error(r)
    }

    /// Releases the locks of segments that only hold entries below `index`, so they
    /// can be purged (etcd's `ReleaseLockTo`). The segment holding `index` (and the
    /// one before it) stay locked.
    pub fn release_lock_to(&self, index: u64) -> Result<()> {
        let mut inner = self.inner.lock();
        inner.release_lock_to(index);
        Ok(())
    }

    /// Stops the segment pipeline, syncs the tail and releases every lock (etcd's
    /// `Close`). Everything saved is durable on a successful return. A poisoned WAL
    /// releases its locks without writing and returns [`Error::Poisoned`].
    pub fn close(self) -> Result<()> {
        let mut inner = self.inner.into_inner();
        let mut first: Option<Error> = None;
        if let Some(mut p) = inner.pipeline.take() {
            if let Err(e) = p.close() {
                first.get_or_insert(e.into());
            }
        }
        if let Some(p) = &inner.poisoned {
            // Nothing more is written after a failure; the locks are still released.
            first.get_or_insert(Error::Poisoned(p.clone()));
        } else if inner.tail.is_some() {
            if let Err(e) = inner.sync(&self.opts) {
                first.get_or_insert(e);
            }
        }
        drop(inner);
        match first {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Closes and opens again in write mode at `snap` (etcd's `Reopen`).
    pub fn reopen(self, snap: &Snapshot) -> Result<Wal> {
        let dir = self.dir.clone();
        let opts = self.opts.clone();
        self.close()?;
        opts.open(&dir, snap)
    }

    /// The path of the segment being appended to (write mode, after `read_all`).
    pub fn tail_path(&self) -> Option<PathBuf> {
        self.inner.lock().tail.as_ref().map(|t| t.path.clone())
    }
}

impl Inner {
    fn check_writable(&self) -> Result<()> {
        if let Some(p) = &self.poisoned {
            return Err(Error::Poisoned(p.clone()));
        }
        if !self.writable {
            return Err(Error::NotWritable {
                reason: "opened with open_for_read",
            });
        }
        if self.tail.is_none() {
            return Err(Error::NotWritable {
                reason: "read_all must read the WAL before appending",
            });
        }
        Ok(())
    }

    fn poison_on_error<T>(&mut self, r: Result<T>) -> Result<T> {
        if let Err(e) = &r {
            tracing::error!(error = %e, "WAL write failed; refusing further writes");
            self.poisoned = Some(e.to_string());
        }
        r
    }

    fn read_all(&mut self, opts: &Options) -> Result<ReadAll> {
        let Some((mut stream, start)) = self.reader.take() else {
            return Err(Error::DecoderNotFound);
        };
        let mut out = ReadAll::default();
        let mut matched = false;
        let end = stream.prefetching(&*opts.fs, opts.read_ahead, |stream| {
            read_records(stream, &start, &mut self.enti, &mut out, &mut matched)
        })?;
        if self.writable {
            // Write mode must read everything: a torn tail is for `repair`.
            if let End::UnexpectedEof(e) = end {
                return Err(e);
            }
            let Some((path, seq, index, mut file)) = self.opened.pop() else {
                return Err(Error::NotWritable {
                    reason: "no segment to append to",
                });
            };
            let off = stream.dec.last_offset();
            // A zero length ends decoding, but a torn write may have left non-zero
            // bytes after it; zero them so new records never meet stale ones.
            file.seek(std::io::SeekFrom::Start(off))
                .map_err(|e| Error::io("seeking", &path, e))?;
            file.zero_to_end()?;
            // Beyond etcd: make the zeroing durable before anything is appended.
            // Otherwise a power loss during the first append can bring the stale
            // bytes back beside half of a new record, and that reads as a CRC
            // mismatch (corruption) instead of a torn write. Found by the power-loss
            // suite (tests/crash_powerloss.rs).
            if !opts.unsafe_no_sync {
                file.sync_data()?;
            }
            // Zeros from the offset on: the tail can take direct writes too.
            let direct = opts.write_directly(&mut *file)?;
            let enc = Encoder::new(file, stream.dec.last_crc(), off);
            self.locks = self
                .opened
                .drain(..)
                .map(|(_, _, index, file)| Locked { index, _file: file })
                .collect();
            let from = enc.position();
            self.tail = Some(Tail {
                path,
                seq,
                index,
                enc,
                flushes: 0,
                direct,
                from,
            });
        }
        self.metadata = out.metadata.clone();
        if !matched && self.writable {
            // etcd's write-mode ReadAll overwrites ErrSnapshotNotFound with the result
            // of creating the encoder, so a write-mode open never reports it. We keep
            // that behaviour (etcd servers depend on it) but say so.
            tracing::warn!(
                index = start.index,
                term = start.term,
                "wal: snapshot not found (ignored in write mode, as etcd does)"
            );
            return Ok(out);
        }
        if !matched {
            return Err(Error::SnapshotNotFound {
                index: start.index,
                term: start.term,
                read: Box::new(out),
            });
        }
        Ok(out)
    }

    fn save(
        &mut self,
        opts: &Options,
        dir: &Path,
        st: &HardState,
        entries: &[Entry],
    ) -> Result<()> {
        if st.is_empty() && entries.is_empty() {
            return Ok(());
        }
        // raft.MustSync: new entries, or a changed term or vote.
        let must_sync =
            !entries.is_empty() || st.vote != self.state.vote || st.term != self.state.term;
        let tail = self.tail_mut()?;
        let before = tail.enc.encoded_bytes();
        // Framed straight into the page buffer: no per-entry allocation or copy.
        tail.enc
            .encode_entries(entries, opts.entry_encoding)
            .map_err(|err| Error::io("writing", &tail.path, err))?;
        if let Some(last) = entries.last() {
            self.enti = last.index;
        }
        self.save_state(st)?;
        let wrote = self.tail_mut()?.enc.encoded_bytes() - before;
        metrics::counter!("etcd_disk_wal_write_bytes_total").increment(wrote);
        let tail = self.tail_mut()?;
        if tail.enc.position() < opts.segment_size {
            if must_sync {
                return self.sync(opts);
            }
            return Ok(());
        }
        self.cut(opts, dir)
    }

    fn save_state(&mut self, st: &HardState) -> Result<()> {
        if st.is_empty() {
            return Ok(());
        }
        self.state = *st;
        let tail = self.tail_mut()?;
        tail.enc
            .encode_hard_state(st)
            .map_err(|e| Error::io("writing", &tail.path, e))
    }

    fn save_snapshot(&mut self, opts: &Options, snap: &Snapshot) -> Result<()> {
        let tail = self.tail_mut()?;
        tail.enc
            .encode(RecordType::Snapshot as i64, Some(&encode_snapshot(snap)))
            .map_err(|e| Error::io("writing", &tail.path, e))?;
        if self.enti < snap.index {
            self.enti = snap.index;
        }
        self.sync(opts)
    }

    /// Tells the pipeline whether to map the next segments for writing
    /// (a WAL that never syncs): only if this one's writes were small, since
    /// large ones go through `pwrite(2)` anyway.
    fn advise_map_writes(&self, opts: &Options) {
        if opts.prepare() != wal_pipeline::Prepare::ZeroFillNoSync {
            return;
        }
        if let (Some(t), Some(p)) = (&self.tail, &self.pipeline) {
            let per_flush = t.enc.position().saturating_sub(t.from) / t.flushes.max(1);
            p.set_map_writes(per_flush < wal_fileutil::MAPPED_WRITE_MAX as u64);
        }
    }

    /// Tells the pipeline whether to zero-fill the next segments: not when
    /// this one took direct writes in syncs averaging
    /// [`ZERO_FILL_MAX_SYNC_BYTES`] or more. Asked at every cut.
    fn advise_zero_fill(&self, opts: &Options) {
        if opts.prepare() != wal_pipeline::Prepare::ZeroFill {
            return;
        }
        if let (Some(t), Some(p)) = (&self.tail, &self.pipeline) {
            let per_sync = t.enc.position().saturating_sub(t.from) / t.flushes.max(1);
            // A refused segment's writes went through the page cache after all.
            let direct = t.direct && !self.direct_refused;
            p.set_zero_fill(!direct || per_sync < ZERO_FILL_MAX_SYNC_BYTES);
        }
    }

    fn tail_mut(&mut self) -> Result<&mut Tail> {
        self.tail.as_mut().ok_or(Error::NotWritable {
            reason: "read_all must read the WAL before appending",
        })
    }

    fn sync(&mut self, opts: &Options) -> Result<()> {
        let tail = self.tail_mut()?;
        tail.enc
            .flush()
            .map_err(|e| Error::io("writing", &tail.path, e))?;
        tail.flushes += 1;
        if opts.unsafe_no_sync {
            if tail.flushes == MAP_ADVICE_FLUSHES {
                self.advise_map_writes(opts);
            }
            return Ok(());
        }
        if opts.keep_tick {
            wal_fileutil::keep_tick();
        }
        let start = Instant::now();
        tail.enc.get_mut().sync_data()?;
        let took = start.elapsed();
        if took > WARN_SYNC_DURATION {
            tracing::warn!(took = ?took, expected = ?WARN_SYNC_DURATION, "slow fdatasync");
        }
        observe_fsync(took);
        Ok(())
    }

    /// etcd's cut: close the tail at its flushed size, start the next segment with a
    /// crc record, the metadata and the last hard state, sync it, rename it into
    /// place and fsync the directory.
    fn cut(&mut self, opts: &Options, dir: &Path) -> Result<()> {
        let tail = self.tail_mut()?;
        let off = tail.enc.position();
        tail.enc.get_mut().set_len(off)?;
        self.sync(opts)?;

        let Some(pipeline) = self.pipeline.as_ref() else {
            return Err(Error::NotWritable {
                reason: "no segment pipeline",
            });
        };
        if opts.drop_cache && !opts.unsafe_no_sync {
            // The finished segment is synced; its pages go in the background, before
            // the pipeline prepares the file after next (into those very pages).
            if let Some(t) = &self.tail {
                pipeline.drop_cache_later(t.path.clone());
            }
        }
        if let Some(t) = &self.tail {
            self.direct_refused |= t.enc.get_ref().direct_refused();
        }
        self.advise_map_writes(opts);
        self.advise_zero_fill(opts);
        let mut new_file = pipeline.open()?;
        let direct = !self.direct_refused && opts.write_directly(&mut *new_file)?;
        if let Some(took) = pipeline.take_last_zero_sync() {
            observe_fsync(took);
        }
        let Some(old) = self.tail.take() else {
            return Err(Error::NotWritable {
                reason: "no tail segment",
            });
        };
        let seq = old.seq + 1;
        let index = self.enti + 1;
        let fpath = dir.join(wal_name(seq, index));
        let prev_crc = old.enc.crc();
        self.locks.push(Locked {
            index: old.index,
            _file: old.enc.into_inner(),
        });
        let tmp_path = new_file.path().to_path_buf();
        let enc = Encoder::new(new_file, prev_crc, 0);
        self.tail = Some(Tail {
            path: tmp_path.clone(),
            seq,
            index,
            enc,
            flushes: 0,
            direct,
            from: 0,
        });
        let tail = self.tail_mut()?;
        let io_err = |e| Error::io("writing", &tmp_path, e);
        tail.enc
            .encode(RecordType::Crc as i64, None)
            .map_err(io_err)?;
        let metadata = self.metadata.clone();
        let tail = self.tail_mut()?;
        tail.enc
            .encode(RecordType::Metadata as i64, metadata.as_deref())
            .map_err(io_err)?;
        let state = self.state;
        self.save_state(&state)?;
        self.sync(opts)?;

        opts.fs.rename(&tmp_path, &fpath)?;
        let start = Instant::now();
        opts.fs.fsync_dir(dir)?;
        observe_fsync(start.elapsed());
        // etcd closes and re-locks the renamed file; the OFD lock survives the
        // rename, so keeping the descriptor avoids a window without the lock.
        let tail = self.tail_mut()?;
        tail.path = fpath.clone();
        tracing::info!(path = %fpath.display(), "created a new WAL segment");
        Ok(())
    }

    fn release_lock_to(&mut self, index: u64) {
        // Indexes of every locked segment, oldest first, the tail last.
        let mut indexes: Vec<u64> = self.locks.iter().map(|l| l.index).collect();
        if let Some(t) = &self.tail {
            indexes.push(t.index);
        } else {
            indexes.extend(self.opened.iter().map(|o| o.2));
        }
        if indexes.is_empty() {
            return;
        }
        let smaller = match indexes.iter().position(|&i| i >= index) {
            Some(i) => i as i64 - 1,
            None => indexes.len() as i64 - 1,
        };
        if smaller <= 0 {
            return;
        }
        let smaller = smaller as usize;
        if self.tail.is_some() {
            self.locks.drain(..smaller.min(self.locks.len()));
        } else {
            self.opened.drain(..smaller.min(self.opened.len()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wal_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        fn assert_send<T: Send>() {}
        assert_send_sync::<Wal>();
        assert_send::<Replay>();
    }

    #[test]
    fn broken_stamp_is_go_format() {
        let t = std::time::UNIX_EPOCH + Duration::new(1_795_673_782, 49_850_000);
        assert_eq!(broken_stamp(t), "20261126.061622.04985");
        let t = std::time::UNIX_EPOCH + Duration::new(951_782_400, 0);
        assert_eq!(broken_stamp(t), "20000229.000000");
    }
}

fn observe_fsync(took: Duration) {
    metrics::histogram!("etcd_disk_wal_fsync_duration_seconds").record(took.as_secs_f64());
}

pub mod verify;
pub use crate::verify::{repair, valid_snapshot_entries, verify, RepairOutcome};
