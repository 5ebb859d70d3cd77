//! The file layer of the etcd-compatible WAL: a port of etcd's
//! `client/pkg/fileutil`, behind a narrow [`FileSystem`] seam.
//!
//! - [`FileSystem`] / [`WalFile`]: every file-system operation the WAL performs,
//!   so a crash-test suite can substitute a simulated disk. [`OsFs`] (see
//!   [`os()`]) is the real one.
//! - Locks ([`LockMode`], [`try_lock_file`], [`lock_file`]): on Linux, open file
//!   description locks (`F_OFD_SETLK[W]`) exactly as etcd takes them, so this
//!   crate and a running etcd exclude each other; `flock(2)` elsewhere.
//! - [`WalFile::preallocate`] and [`WalFile::zero_to_end`]: etcd's
//!   `Preallocate` / `ZeroToEnd` on top of fallocate(2); beyond etcd,
//!   [`WalFile::write_zeroes`], zeros the device makes without writing them.
//! - Directory helpers ([`create_dir_all`], [`touch_dir_all`], [`read_dir`],
//!   [`read_dir_ext`], [`fsync_dir`], ...) with etcd's semantics.
//! - Purging old files ([`purge_once`], [`spawn_purger`]) that skips files a
//!   WAL still holds locked.
//! - [`ReadAhead`]: a helper thread that reads segments ahead of a replay, so
//!   a cold replay keeps the disk busy while it decodes.
//! - [`keep_tick`]: keeps the CPU's scheduler tick running through the short
//!   sleeps of an fdatasync, which on a VM saves a timer restart per wake.
//!
//! Every error names the operation and the path ([`Error`]); ENOSPC and
//! EDQUOT are [`Error::NoSpace`], a held lock is [`Error::Locked`].
//!
//! ```
//! use std::io::Write;
//! use wal_fileutil::{os, LockMode, OpenOptions, WalFile};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let fs = os();
//! let path = dir.path().join("0.tmp");
//! let opts = OpenOptions::write().create(true).lock(LockMode::Try);
//! let mut f = fs.open(&path, &opts).unwrap();
//! f.preallocate(64 * 1024, true).unwrap();
//! f.write_all(b"hello").unwrap();
//! f.sync_data().unwrap();
//! assert_eq!(f.len().unwrap(), 64 * 1024);
//!
//! // A second open file description cannot take the lock while `f` is open.
//! let err = wal_fileutil::try_lock_file(&path, &OpenOptions::write()).unwrap_err();
//! assert!(err.is_locked());
//! drop(f);
//! assert!(wal_fileutil::try_lock_file(&path, &OpenOptions::write()).is_ok());
//! ```

pub mod error;
mod file;
mod fs;
mod lock;
mod prealloc;
mod purge;
mod readahead;
mod tick;

use std::io;
use std::path::{Path, PathBuf};

pub use crate::error::{Error, Result};
pub use crate::fs::{os, FileSystem, OsFs, WalFile};
pub use crate::purge::{purge_once, spawn_purger, PurgeReport, Purger};
pub use crate::readahead::{
    is_huge_mapped, is_resident, CacheProbe, ReadAhead, Tracked, READ_AHEAD_BYTES,
};
pub use crate::tick::{keep_tick, KEEP_TICK_EVERY};

/// Writes at least this large into a file mapped for writing
/// ([`WalFile::map_writes`]) go through `pwrite(2)` unless their pages are
/// populated ([`WalFile::populate_writes`]): a fault per 4 KiB page costs more
/// than the call. A writer whose writes are mostly this large gains nothing
/// from the mapping.
pub const MAPPED_WRITE_MAX: usize = 32 << 10;

/// Owner read/write: the mode of every file the WAL creates (etcd `PrivateFileMode`).
pub const PRIVATE_FILE_MODE: u32 = 0o600;
/// Owner-only directory: the mode of every directory the WAL creates (etcd `PrivateDirMode`).
pub const PRIVATE_DIR_MODE: u32 = 0o700;

/// How [`FileSystem::open`] treats the lock (etcd's `LockFile` / `TryLockFile`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LockMode {
    /// Take no lock.
    #[default]
    None,
    /// Take the whole-file write lock or fail at once with [`Error::Locked`]
    /// (etcd `TryLockFile`).
    Try,
    /// Take the whole-file write lock, waiting for it as long as it takes
    /// (etcd `LockFile`).
    Wait,
}

/// Options for [`FileSystem::open`], builder style. All flags default to off.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// Open for reading.
    pub read: bool,
    /// Open for writing (required by any lock on Linux).
    pub write: bool,
    /// Create the file if it is missing (O_CREAT).
    pub create: bool,
    /// Create the file, failing if it exists (O_CREAT|O_EXCL).
    pub create_new: bool,
    /// Truncate to zero length on open (O_TRUNC).
    pub truncate: bool,
    /// Permission bits for a created file; 0 means [`PRIVATE_FILE_MODE`].
    pub mode: u32,
    /// Which lock to take after opening.
    pub lock: LockMode,
}

impl OpenOptions {
    /// Read only.
    pub fn read() -> Self {
        OpenOptions {
            read: true,
            ..Self::default()
        }
    }

    /// Write only (etcd's `O_WRONLY`).
    pub fn write() -> Self {
        OpenOptions {
            write: true,
            ..Self::default()
        }
    }

    /// Read and write (etcd's `O_RDWR`).
    pub fn read_write() -> Self {
        OpenOptions {
            read: true,
            write: true,
            ..Self::default()
        }
    }

    /// Sets [`create`](OpenOptions::create).
    pub fn create(mut self, yes: bool) -> Self {
        self.create = yes;
        self
    }

    /// Sets [`create_new`](OpenOptions::create_new).
    pub fn create_new(mut self, yes: bool) -> Self {
        self.create_new = yes;
        self
    }

    /// Sets [`truncate`](OpenOptions::truncate).
    pub fn truncate(mut self, yes: bool) -> Self {
        self.truncate = yes;
        self
    }

    /// Sets [`lock`](OpenOptions::lock).
    pub fn lock(mut self, m: LockMode) -> Self {
        self.lock = m;
        self
    }

    /// Sets [`mode`](OpenOptions::mode).
    pub fn mode(mut self, m: u32) -> Self {
        self.mode = m;
        self
    }
}

/// etcd `TryLockFile`: open `path` with `opts` on the OS file system and take
/// its write lock, failing with [`Error::Locked`] if another open file
/// description holds it. `opts.lock` is ignored (forced to [`LockMode::Try`]).
pub fn try_lock_file(path: &Path, opts: &OpenOptions) -> Result<Box<dyn WalFile>> {
    OsFs.open(path, &opts.clone().lock(LockMode::Try))
}

/// etcd `LockFile`: like [`try_lock_file`] but waits for the lock.
pub fn lock_file(path: &Path, opts: &OpenOptions) -> Result<Box<dyn WalFile>> {
    OsFs.open(path, &opts.clone().lock(LockMode::Wait))
}

/// etcd `CreateDirAll`: [`touch_dir_all`], then fail if the directory is not
/// empty (an error of kind `DirectoryNotEmpty`). Created directories are not
/// fsynced.
pub fn create_dir_all(path: &Path) -> Result<()> {
    touch_dir_all(path)?;
    let names = read_dir(path)?;
    if names.is_empty() {
        Ok(())
    } else {
        Err(Error::Io {
            op: "create_dir_all",
            path: path.to_owned(),
            source: io::Error::new(
                io::ErrorKind::DirectoryNotEmpty,
                format!("expected {:?} to be empty, got {:?}", path, names),
            ),
        })
    }
}

/// etcd `TouchDirAll`: create missing directories with mode 0700 (an existing
/// directory with other permissions only gets a warning), then check that the
/// directory is writable ([`is_dir_writeable`]). A regular file on the path
/// fails with ENOTDIR / EEXIST. Created directories are not fsynced.
pub fn touch_dir_all(path: &Path) -> Result<()> {
    if exist(path) {
        check_dir_permission(path, PRIVATE_DIR_MODE);
    } else {
        OsFs.create_dir_all(path)?;
    }
    is_dir_writeable(path)
}

/// etcd `CheckDirPermission`, reduced to the warning etcd logs from
/// `TouchDirAll`.
fn check_dir_permission(path: &Path, want: u32) {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(path) {
        Ok(md) => {
            let mode = md.permissions().mode() & 0o777;
            if mode != want {
                tracing::warn!(
                    dir = %path.display(),
                    mode = format_args!("{mode:o}"),
                    recommended = format_args!("{want:o}"),
                    "directory exists with permissions other than the recommended ones",
                );
            }
        }
        Err(e) => tracing::warn!(dir = %path.display(), error = %e, "check file permission"),
    }
}

/// etcd `ReadDir`: the entry names of `path`, sorted.
pub fn read_dir(path: &Path) -> Result<Vec<String>> {
    OsFs.read_dir(path)
}

/// etcd `ReadDir(d, WithExt(ext))`: the sorted names whose extension (Go's
/// `filepath.Ext`: from the last `.`, inclusive) equals `ext`, e.g. `".wal"`.
/// An empty `ext` keeps every name.
pub fn read_dir_ext(path: &Path, ext: &str) -> Result<Vec<String>> {
    let names = read_dir(path)?;
    if ext.is_empty() {
        return Ok(names);
    }
    Ok(names.into_iter().filter(|n| go_ext(n) == ext).collect())
}

/// Go's `filepath.Ext` for a bare file name.
fn go_ext(name: &str) -> &str {
    name.rfind('.').map_or("", |i| &name[i..])
}

/// etcd `Exist`: true if `path` can be stat'ed.
pub fn exist(path: &Path) -> bool {
    OsFs.exists(path)
}

/// etcd `DirEmpty`: true if `path` is a readable, empty directory.
pub fn dir_empty(path: &Path) -> bool {
    matches!(read_dir(path), Ok(names) if names.is_empty())
}

/// Opens the directory and fsyncs it: entries created, renamed or removed in
/// it are durable on return.
pub fn fsync_dir(path: &Path) -> Result<()> {
    OsFs.fsync_dir(path)
}

/// etcd `IsDirWriteable`: write and remove `path/.touch`. Ok means a file
/// could be created in the directory.
pub fn is_dir_writeable(path: &Path) -> Result<()> {
    let touch: PathBuf = path.join(".touch");
    {
        let opts = OpenOptions::write().create(true).truncate(true);
        let _f = OsFs.open(&touch, &opts)?;
    }
    OsFs.remove_file(&touch)
}

/// Whether the file system holding `path` overwrites a written block where it
/// lies (ext2/3/4, xfs, tmpfs), so a write through a mapping of written bytes
/// never has to allocate, and so can never fail for space (a failure a mapping
/// could only report as SIGBUS). [`WalFile::map_writes`] maps only there; on
/// others (copy-on-write file systems, network and overlay file systems, and
/// any this crate cannot tell) writes stay `write(2)` calls. False if `path`
/// cannot be examined.
pub fn overwrites_in_place(path: &Path) -> bool {
    std::fs::File::open(path).is_ok_and(|f| overwrites_in_place_fd(&f))
}

/// [`overwrites_in_place`] for an open file.
pub(crate) fn overwrites_in_place_fd(f: &std::fs::File) -> bool {
    on_file_system(f, FsKind::InPlace)
}

/// The file systems a file may be on, for [`on_file_system`].
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum FsKind {
    /// ext2/3/4, xfs or tmpfs: a written block is overwritten where it lies.
    InPlace,
    /// ext2/3/4 or xfs: also known to take `O_DIRECT` writes in place.
    InPlaceOnDisk,
}

/// Whether `f` is on a file system of that kind (false where it cannot tell).
pub(crate) fn on_file_system(f: &std::fs::File, kind: FsKind) -> bool {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use nix::sys::statfs::{fstatfs, EXT4_SUPER_MAGIC, TMPFS_MAGIC, XFS_SUPER_MAGIC};
        fstatfs(f).is_ok_and(|s| {
            let t = s.filesystem_type();
            t == EXT4_SUPER_MAGIC
                || t == XFS_SUPER_MAGIC
                || (kind == FsKind::InPlace && t == TMPFS_MAGIC)
        })
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let _ = (f, kind);
        false
    }
}
