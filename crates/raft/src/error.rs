//! The adapter's error type.

use std::path::PathBuf;

/// Result with the adapter's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong persisting or recovering a raft-rs node's log.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The WAL failed (I/O, corruption, locks...). After a write error the WAL is
    /// poisoned: drop the storage and recover with [`WalStorage::open`](crate::WalStorage::open).
    #[error(transparent)]
    Wal(#[from] wal::Error),
    /// The in-memory log refused an operation (compacted, unavailable, out of date).
    #[error(transparent)]
    Raft(#[from] raft::Error),
    /// A raft-rs entry carries a `context`, which etcd's `raftpb.Entry` has no field for.
    #[error("entry {index}: its {len}-byte context cannot be stored in etcd's raftpb.Entry")]
    EntryContext {
        /// The entry's index.
        index: u64,
        /// Length of the context.
        len: usize,
    },
    /// A stored entry has a type raft-rs does not know.
    #[error("entry {index}: type {value} is not a raft-rs EntryType")]
    EntryType {
        /// The entry's index.
        index: u64,
        /// The stored type.
        value: i32,
    },
    /// Entries to append leave a gap after the last entry of the log.
    #[error("log gap: last index {last}, appending from {first}")]
    Gap {
        /// The log's last index.
        last: u64,
        /// The first index appended.
        first: u64,
    },
    /// A snapshot at an index that is not committed yet.
    #[error("snapshot at {index} is beyond the commit index {commit}")]
    NotCommitted {
        /// The snapshot index asked for.
        index: u64,
        /// The commit index.
        commit: u64,
    },
    /// Compaction past the newest snapshot would drop entries nothing else holds.
    #[error("compacting to {index} needs a snapshot at or after it (newest is {snapshot})")]
    CompactBeyondSnapshot {
        /// The compaction index asked for.
        index: u64,
        /// The newest snapshot's index.
        snapshot: u64,
    },
    /// None of the WAL's valid snapshots could be loaded by the caller.
    #[error("no usable snapshot in {}: the loader had none of the {candidates} valid snapshots", dir.display())]
    NoUsableSnapshot {
        /// The WAL directory.
        dir: PathBuf,
        /// How many valid snapshot records the WAL holds.
        candidates: usize,
    },
    /// The storage was closed.
    #[error("the WAL storage is closed")]
    Closed,
    /// Staging a new WAL directory failed.
    #[error("bootstrapping {}: {source}", dir.display())]
    Bootstrap {
        /// The directory being created or renamed.
        dir: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}
