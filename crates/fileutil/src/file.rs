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
    /// Set by [`WalFile::direct_writes`].
    dio: Option<DirectWrites>,
    /// The kernel refused a direct write ([`WalFile::direct_refused`]).
    refused: bool,
    file: File,
    path: PathBuf,
}

/// Alignment of direct writes in memory, on disk and in length: a page, which
/// covers every logical block size up to it.
const DIRECT_ALIGN: usize = 4096;

/// Bytes staged for a direct write before whole pages are written out without a
/// flush: enough for the largest saves the benchmarks make (1 MB) in one write.
const DIRECT_STAGE_BYTES: usize = 2 << 20;

/// A file written with `O_DIRECT`: writes are staged here, from the start of the
/// page the file's offset is in, and written out in whole pages on `flush` and
/// before a sync; the offset lives here (`base + len`) rather than in the
/// descriptor.
#[derive(Debug)]
struct DirectWrites {
    /// `DIRECT_STAGE_BYTES` aligned bytes from `at`.
    mem: Vec<u8>,
    at: usize,
    /// File offset of the stage's first byte (aligned).
    base: u64,
    /// Bytes staged: the file's bytes from `base` on, as they are to be.
    len: usize,
    /// Whether the stage holds bytes not yet written out.
    dirty: bool,
    /// Writes stay below this aligned offset (at most the file's size), so no
    /// padded page ever grows the file.
    limit: u64,
}

impl DirectWrites {
    fn pos(&self) -> u64 {
        self.base + self.len as u64
    }
}

/// Sets or clears `O_DIRECT` on an open descriptor.
#[cfg(target_os = "linux")]
fn set_direct(f: &File, on: bool) -> io::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let flags = OFlag::from_bits_retain(fcntl(f, FcntlArg::F_GETFL)?);
    let flags = if on {
        flags | OFlag::O_DIRECT
    } else {
        flags - OFlag::O_DIRECT
    };
    fcntl(f, FcntlArg::F_SETFL(flags))?;
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn set_direct(_f: &File, _on: bool) -> io::Result<()> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
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
            dio: None,
            refused: false,
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

    /// Writes out the staged bytes of a direct-write file, in whole pages
    /// (the last one padded with zeros, which the file holds there), and keeps
    /// the last partial page staged. Where the kernel refuses the alignment,
    /// writes them as before and leaves direct writes.
    fn write_staged(&mut self) -> io::Result<()> {
        let Some(d) = &mut self.dio else {
            return Ok(());
        };
        if !d.dirty {
            return Ok(());
        }
        let up = d.len.next_multiple_of(DIRECT_ALIGN);
        d.mem[d.at + d.len..d.at + up].fill(0);
        match self.file.write_all_at(&d.mem[d.at..d.at + up], d.base) {
            Ok(()) => {
                d.dirty = false;
                let keep = d.len / DIRECT_ALIGN * DIRECT_ALIGN;
                d.mem.copy_within(d.at + keep..d.at + d.len, d.at);
                d.base += keep as u64;
                d.len -= keep;
                Ok(())
            }
            Err(e) if e.raw_os_error() == Some(nix::errno::Errno::EINVAL as i32) => {
                tracing::info!(path = %self.path.display(), "direct write refused; writing through the page cache");
                self.refused = true;
                set_direct(&self.file, false)?;
                self.file.write_all_at(&d.mem[d.at..d.at + d.len], d.base)?;
                let pos = d.pos();
                self.dio = None;
                self.file.seek(SeekFrom::Start(pos))?;
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Leaves direct writes, if on: the staged bytes are written out and the
    /// offset goes back into the descriptor.
    fn end_direct(&mut self) -> io::Result<()> {
        self.write_staged()?;
        if let Some(d) = self.dio.take() {
            set_direct(&self.file, false)?;
            self.file.seek(SeekFrom::Start(d.pos()))?;
        }
        Ok(())
    }

    fn write_direct(&mut self, buf: &[u8]) -> io::Result<usize> {
        let Some(d) = &self.dio else {
            return self.file.write(buf);
        };
        if d.pos() + buf.len() as u64 > d.limit {
            self.end_direct()?;
            return self.file.write(buf);
        }
        if d.len == DIRECT_STAGE_BYTES {
            self.write_staged()?;
        }
        let Some(d) = &mut self.dio else {
            return self.file.write(buf);
        };
        let n = buf.len().min(DIRECT_STAGE_BYTES - d.len);
        d.mem[d.at + d.len..d.at + d.len + n].copy_from_slice(&buf[..n]);
        d.len += n;
        d.dirty |= n > 0;
        Ok(n)
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

impl Drop for OsFile {
    fn drop(&mut self) {
        // What was written reaches the kernel, as with write(2); errors have
        // no one to go to (the next open reads what is there).
        if let Err(e) = self.write_staged() {
            tracing::warn!(path = %self.path.display(), error = %e, "failed to write out staged bytes");
        }
    }
}

impl Read for OsFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.end_direct()?;
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
            return self.write_direct(buf);
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
        self.write_staged()?;
        self.file.flush()
    }
}

impl Seek for OsFile {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        if let Some(d) = &self.dio {
            if pos == SeekFrom::Current(0) {
                return Ok(d.pos());
            }
            self.end_direct()?;
        }
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
        self.write_staged().map_err(io_err("write", &self.path))?;
        // std: fsync(2) on Linux, fcntl(F_FULLFSYNC) on Apple (etcd's Fsync).
        self.file.sync_all().map_err(io_err("fsync", &self.path))
    }

    fn sync_data(&mut self) -> Result<()> {
        self.flush_map()?;
        self.write_staged().map_err(io_err("write", &self.path))?;
        // std: fdatasync(2) on Linux, fcntl(F_FULLFSYNC) on Apple (etcd's Fdatasync).
        self.file
            .sync_data()
            .map_err(io_err("fdatasync", &self.path))
    }

    fn preallocate(&mut self, size: u64, extend: bool) -> Result<()> {
        prealloc::preallocate(&self.file, &self.path, size, extend)
    }

    fn write_zeroes(&mut self, len: u64) -> Result<bool> {
        // Nothing mapped or staged may land over the zeros afterwards.
        self.unmap()?;
        self.end_direct().map_err(io_err("write", &self.path))?;
        prealloc::write_zeroes(&self.file, &self.path, len)
    }

    fn set_len(&mut self, size: u64) -> Result<()> {
        // Pages past the new end must not stay mapped (SIGBUS).
        self.unmap()?;
        self.end_direct().map_err(io_err("write", &self.path))?;
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
        self.end_direct().map_err(io_err("write", &self.path))?;
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
        self.end_direct().map_err(io_err("write", &self.path))?;
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

    fn direct_writes(&mut self) -> Result<bool> {
        if self.dio.is_some() {
            return Ok(true);
        }
        if self.wmap.is_some() || !crate::on_file_system(&self.file, crate::FsKind::InPlaceOnDisk) {
            return Ok(false);
        }
        let pos = self
            .file
            .stream_position()
            .map_err(io_err("seek", &self.path))?;
        let align = DIRECT_ALIGN as u64;
        let limit = self.len()? / align * align;
        if pos >= limit {
            return Ok(false);
        }
        let base = pos / align * align;
        // At most a page: `pos - base < DIRECT_ALIGN`.
        let len = (pos - base) as usize;
        let mut mem = vec![0; DIRECT_STAGE_BYTES + DIRECT_ALIGN];
        let at = mem.as_ptr().align_offset(DIRECT_ALIGN);
        // The bytes before the offset in its page, read before the descriptor
        // needs aligned reads. A descriptor that cannot read them (write only)
        // keeps writing as before.
        if let Err(e) = self.file.read_exact_at(&mut mem[at..at + len], base) {
            tracing::debug!(path = %self.path.display(), error = %e, "no direct writes");
            return Ok(false);
        }
        if set_direct(&self.file, true).is_err() {
            return Ok(false);
        }
        self.dio = Some(DirectWrites {
            mem,
            at,
            base,
            len,
            dirty: false,
            limit,
        });
        Ok(true)
    }

    fn direct_refused(&self) -> bool {
        self.refused
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::{FileSystem, OpenOptions, OsFs};

    #[test]
    fn a_refused_direct_write_goes_through_write_and_is_reported() {
        // Beside the test binary, on the build's disk (a temporary directory
        // may be tmpfs, which takes no direct writes).
        let exe = std::env::current_exe().unwrap();
        let tmp = tempfile::tempdir_in(exe.parent().unwrap()).unwrap();
        let path = tmp.path().join("f");
        std::fs::write(&path, vec![0u8; 1 << 20]).unwrap();
        let file = File::options().read(true).write(true).open(&path).unwrap();
        let mut f = OsFile::new(file, path.clone());
        if !f.direct_writes().unwrap() {
            eprintln!("SKIPPED: no direct writes on this file system");
            return;
        }
        assert!(!f.direct_refused());
        // A stage one byte off a page, as a kernel demanding another alignment
        // would see it: the write fails with EINVAL.
        if let Some(d) = &mut f.dio {
            d.at += 1;
        }
        f.write_all(b"refused, then written").unwrap();
        f.sync_data().unwrap();
        assert!(f.direct_refused(), "the refusal was not reported");
        assert!(f.dio.is_none(), "still writing directly");
        f.write_all(b" through write(2)").unwrap();
        drop(f);
        let got = OsFs.open(&path, &OpenOptions::read()).unwrap();
        let mut buf = vec![0u8; 40];
        got.read_at(&mut buf, 0).unwrap();
        assert_eq!(&buf[..38], b"refused, then written through write(2)");
        assert_eq!(&buf[38..], &[0, 0]);
    }
}
