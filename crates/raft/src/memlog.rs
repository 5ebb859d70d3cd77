//! The in-memory log: a port of etcd's `raft.MemoryStorage` over raft-rs types.

use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft::StorageError;

use crate::error::{Error, Result};

fn store_err(e: StorageError) -> raft::Error {
    raft::Error::Store(e)
}

/// `ents[0]` is a dummy holding the index and term of the last compacted entry
/// (the snapshot point); real entries follow it.
#[derive(Debug, Clone)]
pub(crate) struct MemLog {
    pub(crate) hard_state: HardState,
    pub(crate) conf_state: ConfState,
    pub(crate) snapshot: Snapshot,
    ents: Vec<Entry>,
}

impl MemLog {
    pub(crate) fn new() -> Self {
        Self {
            hard_state: HardState::default(),
            conf_state: ConfState::default(),
            snapshot: Snapshot::default(),
            ents: vec![Entry::default()],
        }
    }

    fn dummy(&self) -> (u64, u64) {
        self.ents.first().map_or((0, 0), |e| (e.index, e.term))
    }

    pub(crate) fn offset(&self) -> u64 {
        self.dummy().0
    }

    pub(crate) fn first_index(&self) -> u64 {
        self.offset() + 1
    }

    pub(crate) fn last_index(&self) -> u64 {
        self.offset() + self.ents.len() as u64 - 1
    }

    pub(crate) fn term(&self, idx: u64) -> raft::Result<u64> {
        let offset = self.offset();
        if idx < offset {
            return Err(store_err(StorageError::Compacted));
        }
        self.ents
            .get((idx - offset) as usize)
            .map(|e| e.term)
            .ok_or(store_err(StorageError::Unavailable))
    }

    pub(crate) fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: Option<u64>,
    ) -> raft::Result<Vec<Entry>> {
        let offset = self.offset();
        if low <= offset {
            return Err(store_err(StorageError::Compacted));
        }
        if high > self.last_index() + 1 || low > high {
            return Err(store_err(StorageError::Unavailable));
        }
        let mut ents = self
            .ents
            .get((low - offset) as usize..(high - offset) as usize)
            .map(<[Entry]>::to_vec)
            .ok_or(store_err(StorageError::Unavailable))?;
        raft::util::limit_size(&mut ents, max_size);
        Ok(ents)
    }

    /// Replaces the log with a snapshot (etcd's `ApplySnapshot`); the commit index
    /// and term are raised to the snapshot's, as raft-rs's `MemStorage` does.
    pub(crate) fn apply_snapshot(&mut self, snap: Snapshot) -> Result<()> {
        let meta = snap.get_metadata();
        if self.snapshot.get_metadata().index >= meta.index && meta.index != 0 {
            return Err(store_err(StorageError::SnapshotOutOfDate).into());
        }
        self.ents = vec![Entry {
            index: meta.index,
            term: meta.term,
            ..Default::default()
        }];
        self.conf_state = meta.get_conf_state().clone();
        self.hard_state.term = self.hard_state.term.max(meta.term);
        self.hard_state.commit = self.hard_state.commit.max(meta.index);
        self.snapshot = snap;
        Ok(())
    }

    /// Checks that a snapshot at `index` can be made (etcd's `CreateSnapshot`
    /// preconditions) and returns its term.
    pub(crate) fn check_snapshot(&self, index: u64) -> Result<u64> {
        if index <= self.snapshot.get_metadata().index {
            return Err(store_err(StorageError::SnapshotOutOfDate).into());
        }
        if index > self.hard_state.commit {
            return Err(Error::NotCommitted {
                index,
                commit: self.hard_state.commit,
            });
        }
        Ok(self.term(index)?)
    }

    /// Records a snapshot made by the application (etcd's `CreateSnapshot`).
    pub(crate) fn set_snapshot(&mut self, snap: Snapshot) {
        self.snapshot = snap;
    }

    /// Discards entries up to and including `index` (etcd's `Compact`); the
    /// term of `index` is kept.
    pub(crate) fn compact(&mut self, index: u64) -> Result<()> {
        let offset = self.offset();
        if index <= offset {
            return Err(store_err(StorageError::Compacted).into());
        }
        let snap = self.snapshot.get_metadata().index;
        if index > snap {
            return Err(Error::CompactBeyondSnapshot {
                index,
                snapshot: snap,
            });
        }
        let i = (index - offset) as usize;
        let Some(at) = self.ents.get(i) else {
            return Err(store_err(StorageError::Unavailable).into());
        };
        let mut ents = Vec::with_capacity(self.ents.len() - i);
        ents.push(Entry {
            index: at.index,
            term: at.term,
            ..Default::default()
        });
        ents.extend_from_slice(&self.ents[i + 1..]);
        self.ents = ents;
        Ok(())
    }

    /// Appends entries, replacing any conflicting tail (etcd's `Append`).
    pub(crate) fn append(&mut self, entries: &[Entry]) -> Result<()> {
        let Some(first_new) = entries.first().map(|e| e.index) else {
            return Ok(());
        };
        let first = self.first_index();
        let last_new = first_new + entries.len() as u64 - 1;
        if last_new < first {
            return Ok(());
        }
        // Skip what is already compacted.
        let entries = if first > first_new {
            &entries[(first - first_new) as usize..]
        } else {
            entries
        };
        let start = entries.first().map_or(first, |e| e.index);
        let keep = (start - self.offset()) as usize;
        if keep > self.ents.len() {
            return Err(Error::Gap {
                last: self.last_index(),
                first: start,
            });
        }
        self.ents.truncate(keep);
        self.ents.extend_from_slice(entries);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ent(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            ..Default::default()
        }
    }

    #[test]
    fn append_compact_snapshot() {
        let mut l = MemLog::new();
        l.append(&[ent(1, 1), ent(2, 1), ent(3, 2)]).unwrap();
        assert_eq!((l.first_index(), l.last_index()), (1, 3));
        // A conflicting tail is replaced.
        l.append(&[ent(3, 3), ent(4, 3)]).unwrap();
        assert_eq!(l.term(3).unwrap(), 3);
        assert!(matches!(l.append(&[ent(9, 3)]), Err(Error::Gap { .. })));
        l.hard_state.commit = 4;
        let t = l.check_snapshot(3).unwrap();
        let mut s = Snapshot::default();
        s.mut_metadata().index = 3;
        s.mut_metadata().term = t;
        l.set_snapshot(s);
        assert!(matches!(
            l.compact(4),
            Err(Error::CompactBeyondSnapshot { .. })
        ));
        l.compact(2).unwrap();
        assert_eq!((l.first_index(), l.last_index()), (3, 4));
        assert_eq!(l.term(2).unwrap(), 1);
        assert!(l.term(1).is_err());
        assert!(l.entries(2, 4, None).is_err());
        assert_eq!(l.entries(3, 5, None).unwrap().len(), 2);
        assert!(l.entries(3, 6, None).is_err());
        // Already-compacted entries are skipped on append.
        l.append(&[ent(1, 1), ent(2, 1), ent(3, 3), ent(4, 3), ent(5, 4)])
            .unwrap();
        assert_eq!(l.last_index(), 5);
    }
}
