//! The error type of every file-system operation in this crate.

use std::io;
use std::path::{Path, PathBuf};

/// A failed file-system operation, always naming the operation and the path.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Another process (or another open file description) holds the lock.
    #[error("{} is locked by another process", path.display())]
    Locked {
        /// The file whose lock could not be taken.
        path: PathBuf,
    },
    /// ENOSPC / EDQUOT.
    #[error("no space left on device: {op} {}", path.display())]
    NoSpace {
        /// The operation that failed (for example `"preallocate"`).
        op: &'static str,
        /// The file or directory the operation was applied to.
        path: PathBuf,
        /// The underlying OS error.
        #[source]
        source: io::Error,
    },
    /// Any other I/O failure.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// The operation that failed (for example `"open"`, `"fsync"`).
        op: &'static str,
        /// The file or directory the operation was applied to.
        path: PathBuf,
        /// The underlying OS error.
        #[source]
        source: io::Error,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Wraps an [`io::Error`] with the operation and path, classifying ENOSPC and
    /// EDQUOT as [`Error::NoSpace`]. Simulated file systems should build their
    /// errors through this too, so that callers see the same classification.
    pub fn from_io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Error {
        let path = path.into();
        if is_no_space_io(&source) {
            Error::NoSpace { op, path, source }
        } else {
            Error::Io { op, path, source }
        }
    }

    /// The path the failed operation was applied to.
    pub fn path(&self) -> &Path {
        match self {
            Error::Locked { path } | Error::NoSpace { path, .. } | Error::Io { path, .. } => path,
        }
    }

    /// The kind of the underlying [`io::Error`]; `None` for [`Error::Locked`].
    pub fn io_kind(&self) -> Option<io::ErrorKind> {
        match self {
            Error::Locked { .. } => None,
            Error::NoSpace { source, .. } | Error::Io { source, .. } => Some(source.kind()),
        }
    }

    /// True if the lock is held elsewhere (etcd's `ErrLocked`).
    pub fn is_locked(&self) -> bool {
        matches!(self, Error::Locked { .. })
    }

    /// True for ENOSPC / EDQUOT.
    pub fn is_no_space(&self) -> bool {
        matches!(self, Error::NoSpace { .. })
    }

    /// True if the file or directory does not exist (ENOENT).
    pub fn is_not_found(&self) -> bool {
        self.io_kind() == Some(io::ErrorKind::NotFound)
    }
}

/// ENOSPC or EDQUOT, by errno or (for synthetic errors) by kind.
fn is_no_space_io(e: &io::Error) -> bool {
    use nix::errno::Errno;
    match e.raw_os_error() {
        Some(code) => code == Errno::ENOSPC as i32 || code == Errno::EDQUOT as i32,
        None => matches!(
            e.kind(),
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
        ),
    }
}

/// Shorthand used throughout the crate: `.map_err(io_err("open", path))`.
pub(crate) fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> Error + 'a {
    move |e| Error::from_io(op, path, e)
}

/// Same as [`io_err`] for nix's errno type.
pub(crate) fn errno_err<'a>(
    op: &'static str,
    path: &'a Path,
) -> impl FnOnce(nix::errno::Errno) -> Error + 'a {
    move |e| Error::from_io(op, path, io::Error::from(e))
}
