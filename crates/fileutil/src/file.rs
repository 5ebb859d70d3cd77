//! [`OsFile`]: the real-disk implementation of [`WalFile`].

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::{io_err, Result};
use crate::{prealloc, WalFile};

/// An open file on the OS file system, possibly holding a lock (released when
/// the file is dropped, i.e. when its descriptor is closed).
#[derive(Debug)]
pub(crate) struct OsFile {
    file: File,
    path: PathBuf,
}

impl OsFile {
    pub(crate) fn new(file: File, path: PathBuf) -> Self {
        OsFile { file, path }
    }
}

impl Read for OsFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.file.read(buf)
    }
}

impl Write for OsFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Seek for OsFile {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.file.seek(pos)
    }
}

impl WalFile for OsFile {
    fn path(&self) -> &Path {
        &self.path
    }

    fn sync_all(&mut self) -> Result<()> {
        // std: fsync(2) on Linux, fcntl(F_FULLFSYNC) on Apple (etcd's Fsync).
        self.file.sync_all().map_err(io_err("fsync", &self.path))
    }

    fn sync_data(&mut self) -> Result<()> {
        // std: fdatasync(2) on Linux, fcntl(F_FULLFSYNC) on Apple (etcd's Fdatasync).
        self.file
            .sync_data()
            .map_err(io_err("fdatasync", &self.path))
    }

    fn preallocate(&mut self, size: u64, extend: bool) -> Result<()> {
        prealloc::preallocate(&self.file, &self.path, size, extend)
    }

    fn set_len(&mut self, size: u64) -> Result<()> {
        self.file
            .set_len(size)
            .map_err(io_err("truncate", &self.path))
    }

    fn len(&self) -> Result<u64> {
        Ok(self
            .file
            .metadata()
            .map_err(io_err("stat", &self.path))?
            .len())
    }

    fn zero_to_end(&mut self) -> Result<()> {
        // etcd's ZeroToEnd: truncate to the offset, then re-extend with
        // fallocate (fresh blocks read as zeros and stay allocated).
        let path = &self.path;
        let off = self.file.stream_position().map_err(io_err("seek", path))?;
        let lenf = self
            .file
            .seek(SeekFrom::End(0))
            .map_err(io_err("seek", path))?;
        self.file.set_len(off).map_err(io_err("truncate", path))?;
        prealloc::preallocate(&self.file, path, lenf, true)?;
        self.file
            .seek(SeekFrom::Start(off))
            .map_err(io_err("seek", path))?;
        Ok(())
    }

    fn drop_cache(&self) -> Result<()> {
        #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
        nix::fcntl::posix_fadvise(
            &self.file,
            0,
            0,
            nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
        )
        .map_err(|e| crate::Error::from_io("fadvise", &self.path, e.into()))?;
        Ok(())
    }

    fn map(&self) -> Result<Option<bytes::Bytes>> {
        // SAFETY: the mapping is read-only and shared, so this process never writes
        // through it, and `Bytes` keeps it alive for as long as any slice of it is.
        // What the compiler cannot check is that nobody else truncates the file
        // meanwhile (a page past the new end raises SIGBUS) or rewrites it (the
        // bytes would change under their readers): `WalFile::map` is documented
        // for files that are never shrunk or rewritten, and the WAL maps only its
        // finished segments, which etcd and this crate only ever read or delete
        // (deleting a mapped file keeps its pages). memmap2 maps an empty file as
        // an empty slice.
        let map = unsafe { memmap2::MmapOptions::new().map(&self.file) }
            .map_err(io_err("mmap", &self.path))?;
        Ok(Some(bytes::Bytes::from_owner(map)))
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
        loop {
            match self.file.read_at(buf, offset) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => return r.map_err(io_err("pread", &self.path)),
            }
        }
    }
}
