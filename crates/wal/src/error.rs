//! The WAL's error type: one variant per etcd sentinel, each naming where.

use std::io;
use std::path::{Path, PathBuf};

use wal_codec::DecodeError;

use crate::ReadAll;

/// Result with the WAL's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong, with the file and offset where known.
///
/// [`Error::kind`] groups the variants into etcd's sentinels (for tools and tests
/// that compare against etcd); never match on the message text.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `create` on a directory that already holds a WAL.
    #[error("wal: {} already exists", dir.display())]
    Exists {
        /// The WAL directory.
        dir: PathBuf,
    },
    /// The directory holds no segment file (etcd's `wal: file not found`).
    #[error("wal: file not found: no WAL files in {}", dir.display())]
    NoWalFiles {
        /// The WAL directory.
        dir: PathBuf,
    },
    /// No segment starts at or before the snapshot's index (etcd's `wal: file not found`).
    #[error("wal: file not found which matches the snapshot index {index} in {}", dir.display())]
    NoFileForSnapshot {
        /// The WAL directory.
        dir: PathBuf,
        /// The snapshot index asked for.
        index: u64,
    },
    /// Segment sequence numbers have a gap (a missing segment; etcd's `wal: file not found`).
    #[error("wal: file not found: sequence numbers in {} do not increase continuously from {from}", dir.display())]
    SequenceNotContinuous {
        /// The WAL directory.
        dir: PathBuf,
        /// The first segment of the selection.
        from: String,
    },
    /// A segment name that should parse does not.
    #[error("wal: bad wal name {}", path.display())]
    InvalidName {
        /// The offending path.
        path: PathBuf,
    },
    /// A record's CRC does not match the chain (`walpb: crc mismatch` / `wal: crc mismatch`).
    #[error("wal: crc mismatch in {} at offset {offset}: expected {expected:#010x}, computed {actual:#010x}", file.display())]
    CrcMismatch {
        /// The segment.
        file: PathBuf,
        /// Offset of the bad frame.
        offset: u64,
        /// CRC stored in the record.
        expected: u32,
        /// CRC of the chain.
        actual: u32,
    },
    /// A frame is cut short or torn (etcd's `unexpected EOF`). At the end of the
    /// last segment this is what `repair` fixes.
    #[error("unexpected EOF in {} at offset {offset}", file.display())]
    UnexpectedEof {
        /// The segment.
        file: PathBuf,
        /// Offset of the frame that is cut short.
        offset: u64,
    },
    /// A record or its payload is not valid protobuf (etcd panics here).
    #[error("wal: malformed record in {} at offset {offset}: {reason}", file.display())]
    Malformed {
        /// The segment.
        file: PathBuf,
        /// Offset of the frame.
        offset: u64,
        /// What failed to decode.
        reason: String,
    },
    /// A record of a type etcd does not define (`unexpected block type`).
    #[error("wal: unexpected block type {record_type} in {} at offset {offset}", file.display())]
    UnexpectedRecordType {
        /// The segment.
        file: PathBuf,
        /// Offset of the frame.
        offset: u64,
        /// The stored type.
        record_type: i64,
    },
    /// Two metadata records differ (`wal: conflicting metadata found`).
    #[error("wal: conflicting metadata found in {} at offset {offset}", file.display())]
    MetadataConflict {
        /// The segment.
        file: PathBuf,
        /// Offset of the conflicting record.
        offset: u64,
    },
    /// The snapshot record at the start index has another term (`wal: snapshot mismatch`).
    #[error("wal: snapshot mismatch in {} at offset {offset}: want term {want_term} at index {index}, found term {found_term}", file.display())]
    SnapshotMismatch {
        /// The segment.
        file: PathBuf,
        /// Offset of the snapshot record.
        offset: u64,
        /// The snapshot index.
        index: u64,
        /// The term asked for.
        want_term: u64,
        /// The term on disk.
        found_term: u64,
    },
    /// No snapshot record matches the start snapshot (`wal: snapshot not found`).
    /// Like etcd, what was read is still returned, in `read`.
    #[error("wal: snapshot not found (index {index}, term {term})")]
    SnapshotNotFound {
        /// Index of the snapshot asked for.
        index: u64,
        /// Term of the snapshot asked for.
        term: u64,
        /// Metadata, hard state and entries read anyway.
        read: Box<ReadAll>,
    },
    /// An entry's index skips ahead of the log (`wal: slice bounds out of range`).
    /// The contiguous entries read before it are in `read`.
    #[error("wal: slice bounds out of range in {} at offset {offset}: entry {index} after {len} entries past snapshot {start}", file.display())]
    SliceOutOfRange {
        /// The segment.
        file: PathBuf,
        /// Offset of the entry record.
        offset: u64,
        /// The snapshot index reading started at.
        start: u64,
        /// The offending entry index.
        index: u64,
        /// How many entries were read before it.
        len: usize,
        /// The contiguous entries read before it.
        read: Box<ReadAll>,
    },
    /// `read_all` was called twice (`wal: decoder not found`).
    #[error("wal: decoder not found (read_all was already called)")]
    DecoderNotFound,
    /// A write on a WAL opened with `open_for_read`, or before `read_all`.
    #[error("wal: not writable: {reason}")]
    NotWritable {
        /// Why.
        reason: &'static str,
    },
    /// A segment is locked by another process (a running etcd, another WAL).
    #[error("{} is locked by another process", path.display())]
    Locked {
        /// The locked file.
        path: PathBuf,
    },
    /// The disk is full. What was synced before is intact; the WAL is poisoned.
    #[error("no space left on device while {op} {}", path.display())]
    NoSpace {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Any other I/O error.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// An earlier write or sync failed; the WAL refuses every further call because a
    /// failed fsync cannot be retried safely. Reopen it to recover.
    #[error("wal: poisoned by an earlier failure: {0}")]
    Poisoned(String),
}

/// etcd's error sentinels, as tools name them (`walctl dump --json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// `wal: file not found` (and its three causes).
    FileNotFound,
    /// `walpb: crc mismatch` / `wal: crc mismatch`.
    CrcMismatch,
    /// `unexpected EOF`.
    UnexpectedEof,
    /// `wal: snapshot mismatch`.
    SnapshotMismatch,
    /// `wal: snapshot not found`.
    SnapshotNotFound,
    /// `wal: conflicting metadata found`.
    MetadataConflict,
    /// `wal: slice bounds out of range`.
    SliceOutOfRange,
    /// `wal: decoder not found`.
    DecoderNotFound,
    /// A bad segment name.
    InvalidName,
    /// Anything else: I/O, locks, malformed records, misuse.
    Io,
    /// The directory already holds a WAL.
    Exists,
    /// Locked by another process.
    Locked,
    /// Disk full.
    NoSpace,
    /// Poisoned by an earlier failure.
    Poisoned,
    /// Malformed record or unexpected record type.
    Malformed,
}

impl ErrorKind {
    /// snake_case name, as in `walctl dump --json`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FileNotFound => "file_not_found",
            Self::CrcMismatch => "crc_mismatch",
            Self::UnexpectedEof => "unexpected_eof",
            Self::SnapshotMismatch => "snapshot_mismatch",
            Self::SnapshotNotFound => "snapshot_not_found",
            Self::MetadataConflict => "metadata_conflict",
            Self::SliceOutOfRange => "slice_out_of_range",
            Self::DecoderNotFound => "decoder_not_found",
            Self::InvalidName => "invalid_name",
            Self::Io => "io",
            Self::Exists => "exists",
            Self::Locked => "locked",
            Self::NoSpace => "no_space",
            Self::Poisoned => "poisoned",
            Self::Malformed => "malformed",
        }
    }
}

impl Error {
    /// The etcd sentinel this error corresponds to.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Exists { .. } => ErrorKind::Exists,
            Self::NoWalFiles { .. }
            | Self::NoFileForSnapshot { .. }
            | Self::SequenceNotContinuous { .. } => ErrorKind::FileNotFound,
            Self::InvalidName { .. } => ErrorKind::InvalidName,
            Self::CrcMismatch { .. } => ErrorKind::CrcMismatch,
            Self::UnexpectedEof { .. } => ErrorKind::UnexpectedEof,
            Self::Malformed { .. } | Self::UnexpectedRecordType { .. } => ErrorKind::Malformed,
            Self::MetadataConflict { .. } => ErrorKind::MetadataConflict,
            Self::SnapshotMismatch { .. } => ErrorKind::SnapshotMismatch,
            Self::SnapshotNotFound { .. } => ErrorKind::SnapshotNotFound,
            Self::SliceOutOfRange { .. } => ErrorKind::SliceOutOfRange,
            Self::DecoderNotFound => ErrorKind::DecoderNotFound,
            Self::NotWritable { .. } | Self::Io { .. } => ErrorKind::Io,
            Self::Locked { .. } => ErrorKind::Locked,
            Self::NoSpace { .. } => ErrorKind::NoSpace,
            Self::Poisoned(_) => ErrorKind::Poisoned,
        }
    }

    /// The file (or directory) the error is about, where known.
    pub fn file(&self) -> Option<&Path> {
        match self {
            Self::Exists { dir }
            | Self::NoWalFiles { dir }
            | Self::NoFileForSnapshot { dir, .. } => Some(dir),
            Self::SequenceNotContinuous { dir, .. } => Some(dir),
            Self::InvalidName { path } | Self::Locked { path } => Some(path),
            Self::NoSpace { path, .. } | Self::Io { path, .. } => Some(path),
            Self::CrcMismatch { file, .. }
            | Self::UnexpectedEof { file, .. }
            | Self::Malformed { file, .. }
            | Self::UnexpectedRecordType { file, .. }
            | Self::MetadataConflict { file, .. }
            | Self::SnapshotMismatch { file, .. }
            | Self::SliceOutOfRange { file, .. } => Some(file),
            _ => None,
        }
    }

    /// The offset in [`Error::file`] the error is about, where known.
    pub fn offset(&self) -> Option<u64> {
        match self {
            Self::CrcMismatch { offset, .. }
            | Self::UnexpectedEof { offset, .. }
            | Self::Malformed { offset, .. }
            | Self::UnexpectedRecordType { offset, .. }
            | Self::MetadataConflict { offset, .. }
            | Self::SnapshotMismatch { offset, .. }
            | Self::SliceOutOfRange { offset, .. } => Some(*offset),
            _ => None,
        }
    }

    /// Whether `repair` can fix this: a torn or cut-short tail (etcd's server
    /// repairs exactly on `io.ErrUnexpectedEOF`). A CRC mismatch is never repaired.
    pub fn is_repairable(&self) -> bool {
        matches!(self, Self::UnexpectedEof { .. })
    }

    /// What `read_all` read before a `SnapshotNotFound` or `SliceOutOfRange`.
    pub fn into_partial(self) -> Option<ReadAll> {
        match self {
            Self::SnapshotNotFound { read, .. } | Self::SliceOutOfRange { read, .. } => Some(*read),
            _ => None,
        }
    }

    pub(crate) fn io(op: &'static str, path: &Path, source: io::Error) -> Self {
        // One place decides what a full disk looks like: the file layer.
        wal_fileutil::Error::from_io(op, path, source).into()
    }
}

impl From<DecodeError> for Error {
    fn from(e: DecodeError) -> Self {
        match e {
            DecodeError::UnexpectedEof { file, offset } => Self::UnexpectedEof { file, offset },
            DecodeError::CrcMismatch {
                file,
                offset,
                expected,
                actual,
            } => Self::CrcMismatch {
                file,
                offset,
                expected,
                actual,
            },
            DecodeError::Malformed {
                file,
                offset,
                source,
            } => Self::Malformed {
                file,
                offset,
                reason: source.to_string(),
            },
            DecodeError::Io { file, source, .. } => Self::io("reading", &file, source),
            other => Self::Malformed {
                file: other.file().to_path_buf(),
                offset: other.offset(),
                reason: other.to_string(),
            },
        }
    }
}

impl From<wal_fileutil::Error> for Error {
    fn from(e: wal_fileutil::Error) -> Self {
        match e {
            wal_fileutil::Error::Locked { path } => Self::Locked { path },
            wal_fileutil::Error::NoSpace { op, path, source } => Self::NoSpace { op, path, source },
            wal_fileutil::Error::Io { op, path, source } => Self::Io { op, path, source },
            other => Self::Io {
                op: "file operation",
                path: other.path().to_path_buf(),
                source: io::Error::other(other.to_string()),
            },
        }
    }
}

impl From<wal_pipeline::Error> for Error {
    fn from(e: wal_pipeline::Error) -> Self {
        match e {
            wal_pipeline::Error::File(f) => f.into(),
            other => Self::Io {
                op: "preparing the next segment",
                path: PathBuf::new(),
                source: io::Error::other(other.to_string()),
            },
        }
    }
}
