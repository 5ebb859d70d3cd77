//! Lossless conversions between raft-rs's `eraftpb` types and etcd's `raftpb` /
//! `walpb` types as the WAL stores them.
//!
//! Every field etcd stores survives both ways:
//!
//! | etcd (`wal`)                  | raft-rs (`eraftpb`)                 |
//! |-------------------------------|-------------------------------------|
//! | `raftpb.Entry{Type,Term,Index,Data}` | `Entry{entry_type,term,index,data}` |
//! | `raftpb.HardState{Term,Vote,Commit}` | `HardState{term,vote,commit}`    |
//! | `raftpb.ConfState{Voters,Learners,VotersOutgoing,LearnersNext,AutoLeave}` | `ConfState{..}` (same names) |
//! | `walpb.Snapshot{Index,Term,ConfState}` | `SnapshotMetadata{index,term,conf_state}` |
//!
//! Two things do not map, by construction:
//! - raft-rs's `Entry.context` has no etcd field: a non-empty context is refused
//!   ([`Error::EntryContext`]) rather than dropped. `Entry.sync_log` is deprecated in
//!   raft-rs, never read, and not stored.
//! - etcd distinguishes absent `Data` from empty `Data`; proto3 raft-rs cannot. An
//!   empty `data` is written as absent, which is what etcd's raft writes for the
//!   empty entries it creates itself; stored bytes are otherwise identical.

use raft::eraftpb;
use wal::{raftpb, walpb};

use crate::error::{Error, Result};

/// A raft-rs entry as etcd stores it. Fails on a non-empty `context`.
pub fn entry_to_wal(e: &eraftpb::Entry) -> Result<raftpb::Entry> {
    if !e.context.is_empty() {
        return Err(Error::EntryContext {
            index: e.index,
            len: e.context.len(),
        });
    }
    Ok(raftpb::Entry {
        r#type: e.entry_type as i32,
        term: e.term,
        index: e.index,
        data: (!e.data.is_empty()).then(|| e.data.clone()),
    })
}

/// A stored entry as raft-rs's. Fails on a type raft-rs does not define.
pub fn entry_from_wal(e: &raftpb::Entry) -> Result<eraftpb::Entry> {
    let entry_type = match e.r#type {
        0 => eraftpb::EntryType::EntryNormal,
        1 => eraftpb::EntryType::EntryConfChange,
        2 => eraftpb::EntryType::EntryConfChangeV2,
        value => {
            return Err(Error::EntryType {
                index: e.index,
                value,
            })
        }
    };
    let mut out = eraftpb::Entry {
        entry_type,
        term: e.term,
        index: e.index,
        ..Default::default()
    };
    if let Some(d) = &e.data {
        out.data = d.clone();
    }
    Ok(out)
}

/// raft-rs hard state to etcd's.
pub fn hard_state_to_wal(hs: &eraftpb::HardState) -> raftpb::HardState {
    raftpb::HardState {
        term: hs.term,
        vote: hs.vote,
        commit: hs.commit,
    }
}

/// etcd hard state to raft-rs's.
pub fn hard_state_from_wal(hs: &raftpb::HardState) -> eraftpb::HardState {
    eraftpb::HardState {
        term: hs.term,
        vote: hs.vote,
        commit: hs.commit,
        ..Default::default()
    }
}

/// raft-rs conf state to etcd's.
pub fn conf_state_to_wal(cs: &eraftpb::ConfState) -> raftpb::ConfState {
    raftpb::ConfState {
        voters: cs.voters.clone(),
        learners: cs.learners.clone(),
        voters_outgoing: cs.voters_outgoing.clone(),
        learners_next: cs.learners_next.clone(),
        auto_leave: cs.auto_leave,
    }
}

/// etcd conf state to raft-rs's.
pub fn conf_state_from_wal(cs: &raftpb::ConfState) -> eraftpb::ConfState {
    eraftpb::ConfState {
        voters: cs.voters.clone(),
        learners: cs.learners.clone(),
        voters_outgoing: cs.voters_outgoing.clone(),
        learners_next: cs.learners_next.clone(),
        auto_leave: cs.auto_leave,
        ..Default::default()
    }
}

/// raft-rs snapshot metadata as the WAL's snapshot record (presence of the conf
/// state is kept: etcd before 3.5 wrote none).
pub fn snapshot_to_wal(m: &eraftpb::SnapshotMetadata) -> walpb::Snapshot {
    walpb::Snapshot {
        index: m.index,
        term: m.term,
        conf_state: m
            .has_conf_state()
            .then(|| conf_state_to_wal(m.get_conf_state())),
    }
}

/// A WAL snapshot record as raft-rs snapshot metadata.
pub fn snapshot_from_wal(s: &walpb::Snapshot) -> eraftpb::SnapshotMetadata {
    let mut m = eraftpb::SnapshotMetadata {
        index: s.index,
        term: s.term,
        ..Default::default()
    };
    if let Some(cs) = &s.conf_state {
        m.set_conf_state(conf_state_from_wal(cs));
    }
    m
}
