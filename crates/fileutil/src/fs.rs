//! The [`FileSystem`] seam and its real implementation, [`OsFs`].

use std::fmt::Debug;
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{io_err, Result};
use crate::file::OsFile;
use crate::{lock, OpenOptions, ReadAhead, PRIVATE_DIR_MODE, PRIVATE_FILE_MODE};

/// One open file. Object-safe. Dropping it closes it, releasing its lock.
///
/// `Read`/`Write`/`Seek` move the file offset as usual; the other methods
/// wrap every failure with the operation and the path.
pub trait WalFile: Read + Write + Seek + Send + Debug {
    /// The path the file was opened with.
    fn path(&self) -> &Path;

    /// fsync(2): data and metadata are durable on return (`F_FULLFSYNC` on Apple).
    fn sync_all(&mut self) -> Result<()>;

    /// fdatasync(2) on Linux (`F_FULLFSYNC` on Apple): the data, and the size
    /// if it changed, are durable on return.
    fn sync_data(&mut self) -> Result<()>;

    /// etcd's `Preallocate`: reserve `size` bytes from offset 0.
    ///
    /// `extend = true`: fallocate mode 0, so the size becomes `size` if it was
    /// smaller (if fallocate is unsupported or interrupted, fall back to
    /// ftruncate, growing only). `extend = false`: `FALLOC_FL_KEEP_SIZE`, an
    /// unsupported file system is not an error. ENOSPC yields
    /// [`Error::NoSpace`](crate::Error::NoSpace). `size == 0` is a no-op. The
    /// offset does not move. Nothing is durable until the next sync.
    fn preallocate(&mut self, size: u64, extend: bool) -> Result<()>;

    /// Makes `[0, len)` written blocks of zeros with the device's own write-zeroes
    /// command (`FALLOC_FL_WRITE_ZEROES`, Linux 6.17 and later, on devices that
    /// zero by unmapping, such as many NVMe drives), growing the file to `len`
    /// if it is shorter: the blocks a zero-fill would write, without sending
    /// `len` bytes of zeros to the disk. Overwrites whatever the range held, so
    /// only for a file still being prepared. Returns `false`, doing nothing,
    /// where the kernel, the file system or the device cannot (the default);
    /// other failures are errors naming the file (the range then reads as
    /// zeros still, or as it did). Not durable until synced; the offset does
    /// not move.
    fn write_zeroes(&mut self, len: u64) -> Result<bool> {
        let _ = len;
        Ok(false)
    }

    /// ftruncate(2) to `size`, without moving the offset. Not durable until synced.
    fn set_len(&mut self, size: u64) -> Result<()>;

    /// The current size (fstat).
    fn len(&self) -> Result<u64>;

    /// True if [`len`](WalFile::len) is zero.
    fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// etcd's `ZeroToEnd`: zero everything from the current offset to the end
    /// by truncating to the offset and then preallocating (extend) back to the
    /// old size. The size and the offset are unchanged afterwards; the file may
    /// be briefly shorter in between. Not durable until synced.
    fn zero_to_end(&mut self) -> Result<()>;

    /// pread(2): read at `offset` without moving the file offset. Returns the
    /// number of bytes read (0 at or past the end).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize>;

    /// Tells the kernel the file's cached pages will not be needed soon
    /// (`posix_fadvise(POSIX_FADV_DONTNEED)`), so their memory is reused for the
    /// next pages written. Clean pages are dropped; dirty ones stay until written
    /// back. Changes no data. The default does nothing.
    fn drop_cache(&self) -> Result<()> {
        Ok(())
    }

    /// The whole file as bytes that share the page cache (a read-only shared
    /// mapping), so a reader can hand out slices of it instead of copying it into
    /// fresh memory; `None` where that is not available (the default), and the
    /// caller reads instead.
    ///
    /// Only for files that no one shrinks while the bytes are alive, such as the
    /// WAL's finished segments (etcd never changes one): touching a mapped page past
    /// the end of a file that was truncated meanwhile kills the process (SIGBUS).
    fn map(&self) -> Result<Option<bytes::Bytes>> {
        Ok(None)
    }

    /// Turns later small writes into memory copies: maps `[0, len)` of the file
    /// (at most its size) shared and writable, so a write at the offset within
    /// it lands in the page cache without a system call (the bytes and their
    /// durability are those of `write(2)`: fdatasync covers them). Writes past
    /// the mapped length, and large writes into pages not yet populated
    /// ([`populate_writes`](WalFile::populate_writes)), still go through
    /// `pwrite(2)`. Returns whether the file is now mapped: `false` where that
    /// is not available (the default), and on file systems where overwriting a
    /// block may allocate ([`overwrites_in_place`](crate::overwrites_in_place));
    /// writes then go on as before. Needs a descriptor open for reading and
    /// writing.
    ///
    /// For a WAL that never syncs, whose small appends otherwise spend most of
    /// their time in `write(2)`. Map only bytes already written (zeros), so no
    /// write through the mapping needs a new block: it could only report a full
    /// disk as SIGBUS. Only for files no one else truncates while mapped: a
    /// write to a mapped page past the end of the file kills the process
    /// (SIGBUS), as can a disk error reading back an evicted page (etcd stops
    /// on a failed WAL write either way). [`set_len`](WalFile::set_len) and
    /// [`zero_to_end`](WalFile::zero_to_end) unmap the file first.
    fn map_writes(&mut self, len: u64) -> Result<bool> {
        let _ = len;
        Ok(false)
    }

    /// Maps the next `len` bytes of a [`map_writes`](WalFile::map_writes)
    /// mapping in (`MADV_POPULATE_WRITE`), from the start on, so writes there
    /// take no page faults; called ahead of the writer, in steps, by whoever has
    /// time (the file pipeline). Returns the bytes populated by this call: 0
    /// once all are, or when the file is not mapped (the default).
    fn populate_writes(&mut self, len: u64) -> Result<u64> {
        let _ = len;
        Ok(0)
    }

    /// Sends later writes past the page cache (`O_DIRECT`): they are staged in
    /// this process and written out in whole pages on `flush` and before a
    /// sync, so one save is one write to the disk and none to the page cache.
    /// For a WAL that syncs every save into a segment holding zeros from the
    /// offset to its end (the last page written is padded with zeros), whose
    /// blocks are written already. Returns whether the file writes directly
    /// now: `false` where that is not available (the default), on file systems
    /// other than ext4 and xfs, and when the offset is in the file's last page;
    /// a write that would pass the file's size, a read, a seek elsewhere,
    /// [`set_len`](WalFile::set_len), [`zero_to_end`](WalFile::zero_to_end) and
    /// [`map_writes`](WalFile::map_writes) write the stage out and go back to
    /// `write(2)`, as does a kernel that refuses the alignment. Staged bytes
    /// reach the file only when written out: [`read_at`](WalFile::read_at) and
    /// [`map`](WalFile::map) see them after a flush.
    fn direct_writes(&mut self) -> Result<bool> {
        Ok(false)
    }

    /// Whether the kernel refused a direct write of this file (the alignment),
    /// so that its writes went back to `write(2)` and the page cache although
    /// [`direct_writes`](WalFile::direct_writes) said yes: for a writer that
    /// tunes itself to direct writes, and would not turn them on again for the
    /// next file of the same file system.
    fn direct_refused(&self) -> bool {
        false
    }
}

/// The narrow seam through which the WAL performs every file-system
/// operation, so a crash-test suite can substitute a simulated disk.
/// Object-safe; used as `Arc<dyn FileSystem>`.
pub trait FileSystem: Send + Sync + Debug {
    /// Opens (and maybe creates) `path` as `opts` says, then takes the lock
    /// that `opts.lock` asks for. Locking needs a descriptor open for writing.
    /// A created file's directory entry is not durable until
    /// [`fsync_dir`](FileSystem::fsync_dir) on its parent.
    fn open(&self, path: &Path, opts: &OpenOptions) -> Result<Box<dyn WalFile>>;
    /// rename(2); durable after [`fsync_dir`](FileSystem::fsync_dir) on the parent(s).
    /// An error names `from`.
    fn rename(&self, from: &Path, to: &Path) -> Result<()>;
    /// unlink(2); durable after `fsync_dir` on the parent.
    fn remove_file(&self, path: &Path) -> Result<()>;
    /// Removes a directory tree.
    fn remove_dir_all(&self, path: &Path) -> Result<()>;
    /// mkdir -p; directories it creates get mode 0700 (before umask).
    fn create_dir_all(&self, path: &Path) -> Result<()>;
    /// The entry names of a directory, sorted (etcd's `ReadDir`).
    fn read_dir(&self, path: &Path) -> Result<Vec<String>>;
    /// Opens the directory and fsyncs it: entries created, renamed or removed
    /// in it before the call are durable on return.
    fn fsync_dir(&self, path: &Path) -> Result<()>;
    /// True if `path` exists (following symlinks), like etcd's `Exist`.
    fn exists(&self, path: &Path) -> bool;
    /// The size of the file at `path` (stat).
    fn file_len(&self, path: &Path) -> Result<u64>;
    /// A helper reading `files` ahead of a sequential reader ([`ReadAhead`]), or
    /// `None` where reading ahead makes no sense (the default: a simulated disk).
    fn read_ahead(&self, files: Vec<(PathBuf, u64)>, ahead: u64) -> Option<ReadAhead> {
        let _ = (files, ahead);
        None
    }
}

/// The real OS file system (zero-sized; the default).
#[derive(Debug, Default, Clone, Copy)]
pub struct OsFs;

/// The real file system as a shareable [`FileSystem`] handle.
pub fn os() -> Arc<dyn FileSystem> {
    Arc::new(OsFs)
}

impl FileSystem for OsFs {
    fn read_ahead(&self, files: Vec<(PathBuf, u64)>, ahead: u64) -> Option<ReadAhead> {
        ReadAhead::start(files, ahead)
    }

    fn open(&self, path: &Path, opts: &OpenOptions) -> Result<Box<dyn WalFile>> {
        let mode = if opts.mode == 0 {
            PRIVATE_FILE_MODE
        } else {
            opts.mode
        };
        let file = std::fs::OpenOptions::new()
            .read(opts.read)
            .write(opts.write)
            .create(opts.create)
            .create_new(opts.create_new)
            .truncate(opts.truncate)
            .mode(mode)
            .open(path)
            .map_err(io_err("open", path))?;
        // On a lock failure `file` is dropped (closed) here, as etcd closes it.
        lock::lock(&file, path, opts.lock)?;
        Ok(Box::new(OsFile::new(file, path.to_owned())))
    }

    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        std::fs::rename(from, to).map_err(io_err("rename", from))
    }

    fn remove_file(&self, path: &Path) -> Result<()> {
        std::fs::remove_file(path).map_err(io_err("remove", path))
    }

    fn remove_dir_all(&self, path: &Path) -> Result<()> {
        std::fs::remove_dir_all(path).map_err(io_err("remove_dir_all", path))
    }

    fn create_dir_all(&self, path: &Path) -> Result<()> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(PRIVATE_DIR_MODE)
            .create(path)
            .map_err(io_err("mkdir", path))
    }

    fn read_dir(&self, path: &Path) -> Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(path).map_err(io_err("readdir", path))? {
            let entry = entry.map_err(io_err("readdir", path))?;
            // Go strings hold any bytes; a non-UTF-8 name cannot be a WAL or
            // snapshot name, so a lossy conversion is enough here.
            let name = entry
                .file_name()
                .into_string()
                .unwrap_or_else(|raw| raw.to_string_lossy().into_owned());
            names.push(name);
        }
        names.sort();
        Ok(names)
    }

    fn fsync_dir(&self, path: &Path) -> Result<()> {
        let dir = std::fs::File::open(path).map_err(io_err("open", path))?;
        dir.sync_all().map_err(io_err("fsync", path))
    }

    fn exists(&self, path: &Path) -> bool {
        std::fs::metadata(path).is_ok()
    }

    fn file_len(&self, path: &Path) -> Result<u64> {
        Ok(std::fs::metadata(path).map_err(io_err("stat", path))?.len())
    }
}
