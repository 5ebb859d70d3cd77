//! A raft-rs [`Storage`] backed by the etcd-compatible WAL.
//!
//! [`WalStorage`] pairs an in-memory log (a port of etcd's `MemoryStorage`) with a
//! [`wal::Wal`], the way etcd's raft node pairs `MemoryStorage` with its WAL:
//!
//! - on each [`Ready`], [`WalStorage::persist_ready`] writes the snapshot marker,
//!   the entries and the hard state to the WAL (durable on return when raft-rs
//!   requires it) and only then updates the in-memory log: call it before sending
//!   the Ready's messages; after [`RawNode::advance`](raft::RawNode::advance), hand
//!   the new commit index to [`WalStorage::persist_commit`];
//! - [`WalStorage::create_snapshot`] records a snapshot the application made (the
//!   WAL keeps its metadata; store the data first, like etcd's snapshotter) and
//!   releases the locks of older segments so they can be purged;
//!   [`WalStorage::compact`] drops old entries from memory;
//! - [`WalStorage::open`] restarts a node: it picks the newest valid snapshot
//!   (`wal::valid_snapshot_entries`) the application can load, opens the WAL
//!   there, reads it, repairs a torn tail once (as etcd's server does) and
//!   rebuilds the in-memory log.
//!
//! Entries, hard states, conf states and snapshot metadata convert losslessly
//! between raft-rs's `eraftpb` and etcd's `raftpb`/`walpb` ([`convert`]), so the
//! directory stays an etcd WAL.
//!
//! A new node's WAL is made by [`WalStorage::create`], which writes the initial
//! configuration as a snapshot record at index 1, term 1 (raft-rs's advice: start
//! every node from the same non-zero snapshot).
//!
//! ```
//! use raft::{eraftpb::ConfState, Config, RawNode};
//! use wal_raft::{WalStorage, BOOTSTRAP_INDEX};
//!
//! # let tmp = tempfile::tempdir().unwrap();
//! # let dir = tmp.path().join("wal");
//! # let logger = slog::Logger::root(slog::Discard, slog::o!());
//! let opts = wal::Options::new();
//! for _restart in 0..2 {
//!     let (store, applied) = if opts.exist(&dir) {
//!         // Newest valid snapshot whose data we have (none taken here), torn tail repaired.
//!         let (s, rec) = WalStorage::open(&opts, &dir, |_meta| Some(Default::default()))?;
//!         let applied = rec.applied();
//!         (s, applied)
//!     } else {
//!         let voters = ConfState::from((vec![1], vec![]));
//!         (WalStorage::create(&opts, &dir, None, &voters)?, BOOTSTRAP_INDEX)
//!     };
//!     let cfg = Config { id: 1, applied, ..Default::default() };
//!     let mut node = RawNode::new(&cfg, store.clone(), &logger)?;
//!     node.campaign()?;
//!     while node.has_ready() {
//!         let mut rd = node.ready();
//!         store.persist_ready(&rd)?; // the WAL first: fsync'ed when raft-rs needs it
//!         let _send = (rd.take_messages(), rd.take_persisted_messages());
//!         let _apply = rd.take_committed_entries();
//!         let mut light = node.advance(rd);
//!         if let Some(commit) = light.commit_index() {
//!             store.persist_commit(commit)?;
//!         }
//!         let _apply = light.take_committed_entries();
//!         node.advance_apply();
//!     }
//!     assert_eq!(node.raft.state, raft::StateRole::Leader);
//! } // dropped without close: the next open recovers
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod convert;
mod error;
mod memlog;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use bytes::Bytes;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use raft::{GetEntriesContext, RaftState, Ready, Storage, StorageError};
use wal::{raftpb, Options, RepairOutcome, Wal};

pub use crate::convert::{
    conf_state_from_wal, conf_state_to_wal, entry_from_wal, entry_to_wal, hard_state_from_wal,
    hard_state_to_wal, snapshot_from_wal, snapshot_to_wal,
};
pub use crate::error::{Error, Result};
use crate::memlog::MemLog;

/// Index of the snapshot record [`WalStorage::create`] writes.
pub const BOOTSTRAP_INDEX: u64 = 1;
/// Term of the snapshot record [`WalStorage::create`] writes.
pub const BOOTSTRAP_TERM: u64 = 1;

/// What [`WalStorage::open`] found.
#[derive(Debug, Clone)]
pub struct Recovered {
    /// The snapshot the log starts at (metadata from the WAL, data from the loader).
    pub snapshot: Snapshot,
    /// The last hard state in the WAL.
    pub hard_state: HardState,
    /// The metadata given to `create`.
    pub metadata: Option<Bytes>,
    /// Number of entries read after the snapshot.
    pub entries: usize,
    /// Set when a torn tail was repaired.
    pub repaired: Option<RepairOutcome>,
}

impl Recovered {
    /// The index the application state is at after loading the snapshot: pass it as
    /// `raft::Config::applied`, and raft-rs hands back the committed entries after it.
    pub fn applied(&self) -> u64 {
        self.snapshot.get_metadata().index
    }
}

struct Inner {
    dir: PathBuf,
    log: RwLock<MemLog>,
    wal: Mutex<Option<Wal>>,
}

/// A raft-rs [`Storage`] whose log is durable in an etcd WAL. Cheap to clone: the
/// clones share one log and one WAL (keep one for the application while the
/// `RawNode` owns another).
#[derive(Clone)]
pub struct WalStorage {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for WalStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WalStorage")
            .field("dir", &self.inner.dir)
            .finish_non_exhaustive()
    }
}

fn with_suffix(dir: &Path, suffix: &str) -> PathBuf {
    let mut s = dir.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn bootstrap_err(dir: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Bootstrap {
        dir: dir.to_path_buf(),
        source,
    }
}

impl WalStorage {
    /// Creates the WAL of a new node in `dir` (absent or an empty directory) with the
    /// cluster's initial configuration, stored as a snapshot record at
    /// ([`BOOTSTRAP_INDEX`], [`BOOTSTRAP_TERM`]) with a committed hard state. Every
    /// node of a new cluster must be created with the same `conf_state`.
    ///
    /// The WAL is built in `<dir>.init` and renamed into place, so a crash never
    /// leaves a WAL without its configuration. Returns the storage ready for a
    /// `RawNode` with `applied = BOOTSTRAP_INDEX`.
    pub fn create(
        opts: &Options,
        dir: &Path,
        metadata: Option<&[u8]>,
        conf_state: &ConfState,
    ) -> Result<Self> {
        if opts.exist(dir) {
            return Err(wal::Error::Exists {
                dir: dir.to_path_buf(),
            }
            .into());
        }
        let non_empty = std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some());
        if non_empty {
            return Err(Error::Bootstrap {
                dir: dir.to_path_buf(),
                source: std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "directory is not empty",
                ),
            });
        }
        let staging = with_suffix(dir, ".init");
        if staging.exists() {
            std::fs::remove_dir_all(&staging).map_err(bootstrap_err(&staging))?;
        }
        let w = opts.create(&staging, metadata)?;
        let mut meta = SnapshotMetadata {
            index: BOOTSTRAP_INDEX,
            term: BOOTSTRAP_TERM,
            ..Default::default()
        };
        meta.set_conf_state(conf_state.clone());
        w.save_snapshot(&snapshot_to_wal(&meta))?;
        let hs = raftpb::HardState {
            term: BOOTSTRAP_TERM,
            vote: 0,
            commit: BOOTSTRAP_INDEX,
        };
        w.save(&hs, &[])?;
        w.close()?;
        if dir.exists() {
            // Only an empty directory gives way (remove_dir fails otherwise).
            std::fs::remove_dir(dir).map_err(bootstrap_err(dir))?;
        }
        std::fs::rename(&staging, dir).map_err(bootstrap_err(dir))?;
        let parent = match dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::File::open(&parent)
            .and_then(|f| f.sync_all())
            .map_err(bootstrap_err(&parent))?;
        let (s, _) = Self::open(opts, dir, |m| {
            (m.index == BOOTSTRAP_INDEX && m.term == BOOTSTRAP_TERM).then(Bytes::new)
        })?;
        Ok(s)
    }

    /// Restarts a node from the WAL in `dir`, as etcd's server does: among the
    /// valid snapshot records (at or below the last durable commit), newest first,
    /// `load` is asked for each snapshot's data and the first it returns wins (return
    /// `None` for one the application no longer has; return empty data for the
    /// bootstrap snapshot or the zero snapshot `create` writes). The WAL is opened at
    /// that snapshot and read to its end; a torn tail is repaired once
    /// (`wal::repair`) and read again. Any other damage is an error.
    pub fn open<F>(opts: &Options, dir: &Path, mut load: F) -> Result<(Self, Recovered)>
    where
        F: FnMut(&SnapshotMetadata) -> Option<Bytes>,
    {
        let snaps = wal::verify::valid_snapshot_entries_with(opts, dir)?;
        let mut chosen = None;
        for s in snaps.iter().rev() {
            let meta = snapshot_from_wal(s);
            if let Some(data) = load(&meta) {
                chosen = Some((s.clone(), meta, data));
                break;
            }
        }
        let Some((walsnap, meta, data)) = chosen else {
            return Err(Error::NoUsableSnapshot {
                dir: dir.to_path_buf(),
                candidates: snaps.len(),
            });
        };
        let mut repaired = None;
        let (w, all) = loop {
            let w = opts.open(dir, &walsnap)?;
            match w.read_all() {
                Ok(all) => break (w, all),
                Err(e) if e.is_repairable() && repaired.is_none() => {
                    drop(w);
                    repaired = Some(wal::verify::repair_with(opts, dir)?);
                }
                Err(e) => return Err(e.into()),
            }
        };
        let mut log = MemLog::new();
        let snapshot = Snapshot {
            data,
            metadata: Some(meta).into(),
            ..Default::default()
        };
        log.apply_snapshot(snapshot.clone())?;
        let hard_state = hard_state_from_wal(&all.hard_state);
        let entries = all
            .entries
            .iter()
            .map(entry_from_wal)
            .collect::<Result<Vec<Entry>>>()?;
        log.append(&entries)?;
        if !all.hard_state.is_empty() {
            log.hard_state = hard_state.clone();
        }
        let recovered = Recovered {
            snapshot,
            hard_state,
            metadata: all.metadata,
            entries: entries.len(),
            repaired,
        };
        let s = Self {
            inner: Arc::new(Inner {
                dir: dir.to_path_buf(),
                log: RwLock::new(log),
                wal: Mutex::new(Some(w)),
            }),
        };
        Ok((s, recovered))
    }

    /// The WAL directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    fn log(&self) -> RwLockReadGuard<'_, MemLog> {
        self.inner.log.read().unwrap_or_else(|e| e.into_inner())
    }

    fn log_mut(&self) -> RwLockWriteGuard<'_, MemLog> {
        self.inner.log.write().unwrap_or_else(|e| e.into_inner())
    }

    fn wal(&self) -> MutexGuard<'_, Option<Wal>> {
        self.inner.wal.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn with_wal<T>(&self, f: impl FnOnce(&Wal) -> wal::Result<T>) -> Result<T> {
        let guard = self.wal();
        let w = guard.as_ref().ok_or(Error::Closed)?;
        Ok(f(w)?)
    }

    /// Persists what `rd` asks to persist, in etcd's order: the snapshot record
    /// (if any), then the entries and hard state in one `save` (fdatasync'ed when
    /// raft-rs's `must_sync` holds), then the in-memory log. Call it before sending
    /// any of `rd`'s messages. If `rd` carries a snapshot, store its data first: the
    /// WAL keeps only the metadata.
    pub fn persist_ready(&self, rd: &Ready) -> Result<()> {
        let snap = rd.snapshot();
        let has_snap = !snap.is_empty();
        let entries = rd
            .entries()
            .iter()
            .map(entry_to_wal)
            .collect::<Result<Vec<_>>>()?;
        let hs = rd.hs().map(hard_state_to_wal).unwrap_or_default();
        self.with_wal(|w| {
            if has_snap {
                w.save_snapshot(&snapshot_to_wal(snap.get_metadata()))?;
            }
            w.save(&hs, &entries)
        })?;
        let mut log = self.log_mut();
        if has_snap {
            log.apply_snapshot(snap.clone())?;
        }
        log.append(rd.entries())?;
        if let Some(hs) = rd.hs() {
            log.hard_state = hs.clone();
        }
        drop(log);
        if has_snap {
            self.with_wal(|w| w.release_lock_to(snap.get_metadata().index))?;
        }
        Ok(())
    }

    /// Records a commit index raft-rs reported after `advance`
    /// (`LightReady::commit_index`): saved with the hard state, without a sync
    /// (etcd's rule), so it is durable with the next synced write.
    pub fn persist_commit(&self, commit: u64) -> Result<()> {
        let hs = {
            let mut log = self.log_mut();
            if commit <= log.hard_state.commit {
                return Ok(());
            }
            log.hard_state.commit = commit;
            hard_state_to_wal(&log.hard_state)
        };
        self.with_wal(|w| w.save(&hs, &[]))
    }

    /// Records a snapshot of the application state at `index` (applied, hence
    /// committed): etcd's `CreateSnapshot` followed by the WAL's `SaveSnapshot` and
    /// `ReleaseLockTo`. `conf_state` defaults to the current one. Store `data`
    /// durably before calling: on restart [`WalStorage::open`] asks for it.
    /// Raft-rs sends this snapshot to followers that fall behind the compacted log.
    pub fn create_snapshot(
        &self,
        index: u64,
        conf_state: Option<ConfState>,
        data: Bytes,
    ) -> Result<Snapshot> {
        let (snap, hs) = {
            let log = self.log();
            let term = log.check_snapshot(index)?;
            let mut snap = Snapshot {
                data,
                ..Default::default()
            };
            let meta = snap.mut_metadata();
            meta.index = index;
            meta.term = term;
            meta.set_conf_state(conf_state.unwrap_or_else(|| log.conf_state.clone()));
            (snap, hard_state_to_wal(&log.hard_state))
        };
        self.with_wal(|w| {
            // The commit covering `index` goes first, so the snapshot is valid on
            // restart; save_snapshot syncs both.
            w.save(&hs, &[])?;
            w.save_snapshot(&snapshot_to_wal(snap.get_metadata()))?;
            w.release_lock_to(index)
        })?;
        self.log_mut().set_snapshot(snap.clone());
        Ok(snap)
    }

    /// Discards in-memory entries up to and including `index`, which must not be
    /// past the newest snapshot (keep some entries below it so slow followers
    /// catch up from the log rather than a snapshot, as etcd does).
    pub fn compact(&self, index: u64) -> Result<()> {
        self.log_mut().compact(index)
    }

    /// Sets the configuration after the application applied a conf change. It is
    /// in memory only (etcd keeps it in snapshots): on restart raft-rs hands the
    /// conf-change entries after the snapshot back to be applied again.
    pub fn set_conf_state(&self, cs: ConfState) {
        self.log_mut().conf_state = cs;
    }

    /// The hard state as last persisted.
    pub fn hard_state(&self) -> HardState {
        self.log().hard_state.clone()
    }

    /// The newest snapshot (the one raft-rs sends to lagging followers).
    pub fn latest_snapshot(&self) -> Snapshot {
        self.log().snapshot.clone()
    }

    /// Releases the WAL's locks on segments holding only entries below `index` (the
    /// WAL's `release_lock_to`; [`create_snapshot`](Self::create_snapshot) already
    /// does it for the snapshot index). Unlocked segments can be purged.
    pub fn release_lock_to(&self, index: u64) -> Result<()> {
        self.with_wal(|w| w.release_lock_to(index))
    }

    /// Syncs and closes the WAL (etcd's `Close`). The storage still answers reads;
    /// writes fail with [`Error::Closed`].
    pub fn close(&self) -> Result<()> {
        match self.wal().take() {
            Some(w) => Ok(w.close()?),
            None => Ok(()),
        }
    }
}

impl Storage for WalStorage {
    fn initial_state(&self) -> raft::Result<RaftState> {
        let log = self.log();
        Ok(RaftState::new(
            log.hard_state.clone(),
            log.conf_state.clone(),
        ))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        self.log().entries(low, high, max_size.into())
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        self.log().term(idx)
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.log().first_index())
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.log().last_index())
    }

    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        let log = self.log();
        if log.snapshot.get_metadata().index < request_index {
            return Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        Ok(log.snapshot.clone())
    }
}
