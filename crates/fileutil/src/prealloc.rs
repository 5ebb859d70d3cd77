//! etcd's `Preallocate`: reserve disk blocks for a file, optionally growing it.

use std::fs::File;
#[cfg(any(target_os = "linux", target_vendor = "apple"))]
use std::io;
use std::path::Path;

#[cfg(any(target_os = "linux", target_vendor = "apple"))]
use crate::error::Error;
use crate::error::{io_err, Result};

const OP: &str = "preallocate";

/// Reserves `size` bytes from offset 0. `extend` also sets the file size to
/// `size` if it is smaller; otherwise the size is unchanged (`FALLOC_FL_KEEP_SIZE`).
/// A zero size is a no-op (fallocate would return EINVAL). The file offset is
/// never moved. Nothing is durable on return: fsync the file to persist the size.
pub(crate) fn preallocate(file: &File, path: &Path, size: u64, extend: bool) -> Result<()> {
    if size == 0 {
        return Ok(());
    }
    if extend {
        prealloc_extend(file, path, size)
    } else {
        prealloc_fixed(file, path, size)
    }
}

/// etcd's `preallocExtendTrunc`: grow the file with ftruncate, never shrink it.
///
/// etcd's Go version computes the current size with `Seek(size, SeekEnd)`, which
/// yields `len + size`, so its `size > len` test never holds and it truncates
/// unconditionally; the evident intent (and this port) only grows the file.
pub(crate) fn prealloc_extend_trunc(file: &File, path: &Path, size: u64) -> Result<()> {
    let len = file.metadata().map_err(io_err("stat", path))?.len();
    if size > len {
        file.set_len(size).map_err(io_err(OP, path))?;
    }
    Ok(())
}

/// A size that does not fit the platform's `off_t` is "file too large".
#[cfg(any(target_os = "linux", target_vendor = "apple"))]
fn to_off_t(path: &Path, size: u64) -> Result<nix::libc::off_t> {
    nix::libc::off_t::try_from(size)
        .map_err(|_| Error::from_io(OP, path, io::Error::from(nix::errno::Errno::EFBIG)))
}

#[cfg(target_os = "linux")]
fn prealloc_extend(file: &File, path: &Path, size: u64) -> Result<()> {
    use nix::errno::Errno;
    use nix::fcntl::{fallocate, FallocateFlags};

    // mode 0 changes the size
    match fallocate(file, FallocateFlags::empty(), 0, to_off_t(path, size)?) {
        Ok(()) => Ok(()),
        // not supported, or EINTR (frequent in some environments): fall back
        Err(Errno::EOPNOTSUPP | Errno::EINTR) => prealloc_extend_trunc(file, path, size),
        Err(e) => Err(Error::from_io(OP, path, io::Error::from(e))),
    }
}

#[cfg(target_os = "linux")]
fn prealloc_fixed(file: &File, path: &Path, size: u64) -> Result<()> {
    use nix::errno::Errno;
    use nix::fcntl::{fallocate, FallocateFlags};

    match fallocate(
        file,
        FallocateFlags::FALLOC_FL_KEEP_SIZE,
        0,
        to_off_t(path, size)?,
    ) {
        // not supported is not an error
        Ok(()) | Err(Errno::EOPNOTSUPP) => Ok(()),
        Err(e) => Err(Error::from_io(OP, path, io::Error::from(e))),
    }
}

/// `fallocate(FALLOC_FL_WRITE_ZEROES)` (Linux 6.17): not in libc's constants yet.
#[cfg(target_os = "linux")]
const FALLOC_FL_WRITE_ZEROES: nix::libc::c_int = 0x80;

/// [`WalFile::write_zeroes`](crate::WalFile::write_zeroes): `Ok(false)` where
/// the mode is unknown (kernels before 6.17) or unsupported (the file system,
/// or a device without unmapping write-zeroes); ENOSPC is
/// [`Error::NoSpace`].
#[cfg(target_os = "linux")]
pub(crate) fn write_zeroes(file: &File, path: &Path, len: u64) -> Result<bool> {
    use nix::errno::Errno;
    use nix::fcntl::{fallocate, FallocateFlags};

    if len == 0 {
        return Ok(false);
    }
    let mode = FallocateFlags::from_bits_retain(FALLOC_FL_WRITE_ZEROES);
    match fallocate(file, mode, 0, to_off_t(path, len)?) {
        Ok(()) => Ok(true),
        Err(Errno::EOPNOTSUPP | Errno::EINVAL | Errno::ENOSYS) => Ok(false),
        Err(e) => Err(Error::from_io("write zeroes", path, io::Error::from(e))),
    }
}

/// No write-zeroes outside Linux.
#[cfg(not(target_os = "linux"))]
pub(crate) fn write_zeroes(_file: &File, _path: &Path, _len: u64) -> Result<bool> {
    Ok(false)
}

/// etcd `preallocate_darwin.go`: reserve with F_PREALLOCATE, then ftruncate.
#[cfg(target_vendor = "apple")]
fn prealloc_extend(file: &File, path: &Path, size: u64) -> Result<()> {
    prealloc_fixed(file, path, size)?;
    prealloc_extend_trunc(file, path, size)
}

#[cfg(target_vendor = "apple")]
fn prealloc_fixed(file: &File, path: &Path, size: u64) -> Result<()> {
    use std::os::unix::fs::MetadataExt;

    use nix::errno::Errno;
    use nix::fcntl::{fcntl, FcntlArg};
    use nix::libc;

    // allocate all requested space or no space at all
    let mut fstore = libc::fstore_t {
        fst_flags: libc::F_ALLOCATEALL,
        fst_posmode: libc::F_PEOFPOSMODE,
        fst_offset: 0,
        fst_length: to_off_t(path, size)?,
        fst_bytesalloc: 0,
    };
    match fcntl(file, FcntlArg::F_PREALLOCATE(&mut fstore)) {
        Ok(_) | Err(Errno::ENOTSUP) => Ok(()),
        Err(Errno::EINVAL) => {
            // etcd: EINVAL is fine when enough blocks are already allocated.
            // st_blocks counts 512-byte units.
            let blocks = file.metadata().map_err(io_err("stat", path))?.blocks();
            if blocks.saturating_mul(512) >= size {
                Ok(())
            } else {
                Err(Error::from_io(OP, path, io::Error::from(Errno::EINVAL)))
            }
        }
        Err(e) => Err(Error::from_io(OP, path, io::Error::from(e))),
    }
}

/// etcd `preallocate_unsupported.go`: extend by ftruncate.
#[cfg(not(any(target_os = "linux", target_vendor = "apple")))]
fn prealloc_extend(file: &File, path: &Path, size: u64) -> Result<()> {
    prealloc_extend_trunc(file, path, size)
}

/// etcd `preallocate_unsupported.go`: nothing to do.
#[cfg(not(any(target_os = "linux", target_vendor = "apple")))]
fn prealloc_fixed(_file: &File, _path: &Path, _size: u64) -> Result<()> {
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn temp_file() -> (tempfile::TempDir, std::path::PathBuf, File) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .unwrap();
        (dir, path, f)
    }

    #[test]
    fn extend_trunc_grows() {
        // etcd: TestPreallocateExtendTrunc
        let (_d, path, f) = temp_file();
        prealloc_extend_trunc(&f, &path, 64 * 1000).unwrap();
        assert_eq!(f.metadata().unwrap().len(), 64 * 1000);
    }

    #[test]
    fn extend_trunc_never_shrinks() {
        let (_d, path, f) = temp_file();
        f.set_len(100_000).unwrap();
        prealloc_extend_trunc(&f, &path, 64 * 1000).unwrap();
        assert_eq!(f.metadata().unwrap().len(), 100_000);
    }

    #[test]
    fn write_zeroes_makes_zeros_or_leaves_the_file_alone() {
        // Which of the two depends on the kernel, file system and device; the
        // file reads as zeros over the range either way, and its size says
        // which happened.
        let (_d, path, f) = temp_file();
        preallocate(&f, &path, 1 << 20, true).unwrap();
        let zeroed = write_zeroes(&f, &path, 2 << 20).unwrap();
        let len = f.metadata().unwrap().len();
        if zeroed {
            assert_eq!(len, 2 << 20, "write-zeroes did not grow the file");
        } else {
            assert_eq!(len, 1 << 20, "a refused write-zeroes changed the file");
        }
        let bytes = std::fs::read(&path).unwrap();
        assert!(bytes.iter().all(|&b| b == 0));
        assert!(!write_zeroes(&f, &path, 0).unwrap(), "an empty range");
    }

    #[test]
    fn write_zeroes_on_a_read_only_descriptor_never_succeeds() {
        // Kernels that know the mode say EBADF (an error naming the file);
        // older ones refuse the mode first (false).
        let (_d, path, f) = temp_file();
        drop(f);
        let ro = File::open(&path).unwrap();
        match write_zeroes(&ro, &path, 4096) {
            Ok(zeroed) => assert!(!zeroed, "a read-only file was zeroed"),
            Err(e) => {
                assert_eq!(e.path(), path.as_path());
                assert!(e.to_string().contains("write zeroes"), "{e}");
            }
        }
        assert_eq!(ro.metadata().unwrap().len(), 0);
    }

    #[test]
    fn extend_trunc_on_read_only_descriptor_fails() {
        let (_d, path, f) = temp_file();
        drop(f);
        let ro = File::open(&path).unwrap();
        let err = prealloc_extend_trunc(&ro, &path, 10).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Io {
                    op: "preallocate",
                    ..
                }
            ),
            "{err:?}"
        );
    }
}
