//! [`OsFile`]: the real-disk implementation of [`WalFile`].

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::{io_err, Result};
use crate::{prealloc, WalFile, MAPPED_WRITE_MAX};

/// An open file on the OS file system, possibly holding a lock (released when
/// the file is dropped, i.e. when its descriptor is closed).
#[derive(Debug)]
pub(crate) struct OsFile {
    /// Set by [`WalFile::map_writes`]; dropped (unmapped) before `file` closes.
    wmap: Option<WriteMap>,
    file: File,
    path: PathBuf,
}

/// A file mapped for writing: while it is set, the offset lives here (`pos`)
/// rather than in the descriptor, and reads and writes are positional.
#[derive(Debug)]
struct WriteMap {
    map: memmap2::MmapMut,
    pos: u64,
    /// `map[..populated]` is mapped in (`populate_writes`).
    populated: usize,
}

impl OsFile {
    pub(crate) fn new(file: File, path: PathBuf) -> Self {
        OsFile {
            wmap: None,
            file,
            path,
        }
    }

    /// Where a sync of the descriptor does not cover pages written through a
    /// mapping, writes them first (msync). On Linux fsync and fdatasync do.
    fn flush_map(&self) -> Result<()> {
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        if let Some(w) = &self.wmap {
            w.map.flush().map_err(io_err("msync", &self.path))?;
        }
        Ok(())
    }

    /// Drops the write mapping, if any, and puts its offset back into the
    /// descriptor.
    fn unmap(&mut self) -> Result<()> {
        if let Some(w) = self.wmap.take() {
            let pos = w.pos;
            drop(w);
            self.file
                .seek(SeekFrom::Start(pos))
                .map_err(io_err("seek", &self.path))?;
        }
        Ok(())
    }
}

impl Read for OsFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.wmap {
            Some(w) => {
                let n = self.file.read_at(buf, w.pos)?;
                w.pos += n as u64;
                Ok(n)
            }
            None => self.file.read(buf),
        }
    }
}

impl Write for OsFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let Some(w) = &mut self.wmap else {
            return self.file.write(buf);
        };
        let n = match usize::try_from(w.pos) {
            // A copy, unless it is large and would fault its pages in one by one:
            // one pwrite adds them faster.
            Ok(at)
                if at < w.map.len()
                    && (buf.len() < MAPPED_WRITE_MAX || at + buf.len() <= w.populated) =>
            {
                let n = buf.len().min(w.map.len() - at);
                w.map[at..at + n].copy_from_slice(&buf[..n]);
                n
            }
            // Past the mapped size the file grows, as with write(2).
            _ => self.file.write_at(buf, w.pos)?,
        };
        w.pos += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Seek for OsFile {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let Some(w) = &mut self.wmap else {
            return self.file.seek(pos);
        };
        let to = match pos {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::Current(d) => w.pos.checked_add_signed(d),
            SeekFrom::End(d) => self.file.metadata()?.len().checked_add_signed(d),
        };
        w.pos = to.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "invalid seek to a negative or overflowing position",
            )
        })?;
        Ok(w.pos)
    }
}

impl WalFile for OsFile {
    fn path(&self) -> &Path {
        &self.path
    }

    fn sync_all(&mut self) -> Result<()> {
        self.flush_map()?;
        // std: fsync(2) on Linux, fcntl(F_FULLFSYNC) on Apple (etcd's Fsync).
        self.file.sync_all().map_err(io_err("fsync", &self.path))
    }

    fn sync_data(&mut self) -> Result<()> {
        self.flush_map()?;
        // std: fdatasync(2) on Linux, fcntl(F_FULLFSYNC) on Apple (etcd's Fdatasync).
        self.file
            .sync_data()
            .map_err(io_err("fdatasync", &self.path))
    }

    fn preallocate(&mut self, size: u64, extend: bool) -> Result<()> {
        prealloc::preallocate(&self.file, &self.path, size, extend)
    }

    fn set_len(&mut self, size: u64) -> Result<()> {
        // Pages past the new end must not stay mapped (SIGBUS).
        self.unmap()?;
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
        self.unmap()?;
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
        // A hint, so a failure is ignored: where the file system keeps large folios
        // (ext4 since Linux 6.16), a fault on an uncached page then reads 2 MiB
        // folios, and each is mapped by one fault, instead of a few pages read and
        // 16 mapped per fault: a cold `read_all` reads about 15 % faster at the
        // median here (docs/benchmarks.md, lever 21).
        #[cfg(target_os = "linux")]
        let _ = map.advise(memmap2::Advice::HugePage);
        Ok(Some(bytes::Bytes::from_owner(map)))
    }

    fn map_writes(&mut self, len: u64) -> Result<bool> {
        if self.wmap.is_some() {
            return Ok(true);
        }
        let len = len.min(self.len()?);
        let Ok(len) = usize::try_from(len) else {
            return Ok(false);
        };
        if len == 0 || !crate::overwrites_in_place_fd(&self.file) {
            return Ok(false);
        }
        let pos = self
            .file
            .stream_position()
            .map_err(io_err("seek", &self.path))?;
        // SAFETY: a shared writable mapping of a file this process holds open
        // (and, for the WAL, locked). What the compiler cannot check is that
        // nobody truncates the file while it is mapped: a write to a page past
        // the end raises SIGBUS. This type unmaps before its own truncations
        // (`set_len`, `zero_to_end`), and `WalFile::map_writes` is documented
        // for files no one else shrinks. Writes go through `&mut self` only, and
        // reads of the same pages by others see what write(2) would have left.
        let map = unsafe { memmap2::MmapOptions::new().len(len).map_mut(&self.file) }
            .map_err(io_err("mmap", &self.path))?;
        self.wmap = Some(WriteMap {
            map,
            pos,
            populated: 0,
        });
        Ok(true)
    }

    fn populate_writes(&mut self, len: u64) -> Result<u64> {
        let Some(w) = &mut self.wmap else {
            return Ok(0);
        };
        let from = w.populated;
        let n = usize::try_from(len)
            .unwrap_or(usize::MAX)
            .min(w.map.len() - from);
        if n == 0 {
            return Ok(0);
        }
        #[cfg(any(target_os = "linux", target_os = "android"))]
        w.map
            .advise_range(memmap2::Advice::PopulateWrite, from, n)
            .map_err(io_err("madvise(MADV_POPULATE_WRITE)", &self.path))?;
        w.populated = from + n;
        Ok(n as u64)
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
