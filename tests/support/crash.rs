//! The crash suites' shared parts: a seeded Raft-like workload, the model of what
//! must survive, recovery the way an etcd server does it, and the check.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use wal::raftpb::{Entry, HardState};
use wal::walpb::Snapshot;
use wal::{Options, Wal};

use crate::simfs::Rng;

/// One call a Raft node makes.
#[derive(Debug, Clone)]
pub enum Step {
    /// `save(hard_state, entries)`.
    Save(HardState, Vec<Entry>),
    /// `save_snapshot(snap)` then `release_lock_to(snap.index)`.
    Snapshot(Snapshot),
}

/// A record as the model sees it (snapshot records change nothing it checks).
#[derive(Debug, Clone)]
pub enum Rec {
    /// An entry record.
    Entry(Entry),
    /// A hard-state record.
    State(HardState),
}

/// The log and hard state a reader must see.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Log {
    /// Entries from index 1 on.
    pub entries: Vec<Entry>,
    /// The last hard state.
    pub hard_state: HardState,
}

impl Log {
    /// Applies one record as `read_all` does (a lower index truncates the tail).
    pub fn apply(&mut self, r: &Rec) {
        match r {
            Rec::Entry(e) => {
                let at = (e.index as usize).saturating_sub(1).min(self.entries.len());
                self.entries.truncate(at);
                self.entries.push(e.clone());
            }
            Rec::State(s) => self.hard_state = *s,
        }
    }

    /// Index of the last entry (0 when empty).
    pub fn last_index(&self) -> u64 {
        self.entries.last().map_or(0, |e| e.index)
    }

    /// Term of the last entry (0 when empty).
    pub fn last_term(&self) -> u64 {
        self.entries.last().map_or(0, |e| e.term)
    }
}

/// Generates a plausible Raft workload: appends, commits, elections (term and vote
/// changes), log truncation of uncommitted entries, snapshots.
#[derive(Debug, Clone)]
pub struct Gen {
    rng: Rng,
    /// The log as the writer built it.
    pub log: Log,
    /// Entries per save are 1 to 6 times this.
    scale: u64,
}

impl Gen {
    /// Continues from `base` (an empty log for a new WAL).
    pub fn new(seed: u64, base: Log) -> Self {
        Self {
            rng: Rng::new(seed),
            log: base,
            scale: 1,
        }
    }

    /// Saves of `scale` times as many entries (hundreds of KB each at a few
    /// hundred, where the WAL prepares its segments differently).
    pub fn with_scale(mut self, scale: u64) -> Self {
        self.scale = scale.max(1);
        self
    }

    fn data(&mut self) -> Option<Bytes> {
        let r = self.rng.below(20);
        if r == 0 {
            return None;
        }
        let len = match r {
            1 => 0,
            2 => 8 * self.rng.below(60) as usize,
            _ => self.rng.below(900) as usize,
        };
        let seed = self.rng.next_u64();
        Some(Bytes::from(
            (0..len)
                .map(|i| (seed >> (i % 56)) as u8 ^ i as u8)
                .collect::<Vec<u8>>(),
        ))
    }

    /// The next step, and the records it writes.
    pub fn step(&mut self) -> (Step, Vec<Rec>) {
        let mut hs = self.log.hard_state;
        if hs.term == 0 {
            hs.term = 1;
            hs.vote = 1;
        }
        let r = self.rng.below(100);
        let last = self.log.last_index();
        if r < 8 && hs.commit > 0 {
            // Snapshot at the commit index.
            let idx = hs.commit.min(last);
            let term = self
                .log
                .entries
                .get(idx as usize - 1)
                .map_or(hs.term, |e| e.term);
            let s = Snapshot {
                index: idx,
                term,
                conf_state: None,
            };
            return (Step::Snapshot(s), Vec::new());
        }
        let mut from = last + 1;
        if (8..16).contains(&r) {
            // A new leader: term changes, uncommitted entries may be overwritten.
            hs.term += 1;
            hs.vote = 1 + self.rng.below(3);
            from = (hs.commit + 1)
                .max(last.saturating_sub(self.rng.below(5)) + 1)
                .min(last + 1);
        }
        let n = if (16..24).contains(&r) {
            0
        } else {
            (1 + self.rng.below(6)) * self.scale
        };
        let mut ents = Vec::new();
        for i in 0..n {
            ents.push(Entry {
                r#type: (self.rng.below(10) == 0) as i32,
                term: hs.term,
                index: from + i,
                data: self.data(),
            });
        }
        let new_last = if n > 0 { from + n - 1 } else { last };
        hs.commit = (hs.commit + self.rng.below(4)).min(new_last);
        let mut recs: Vec<Rec> = ents.iter().cloned().map(Rec::Entry).collect();
        if hs != HardState::default() {
            recs.push(Rec::State(hs));
        }
        for r in &recs {
            self.log.apply(r);
        }
        // The WAL only keeps the hard state it was given.
        (Step::Save(hs, ents), recs)
    }
}

/// Whether a save syncs before returning (etcd's `MustSync`).
pub fn must_sync(prev: &HardState, st: &HardState, n: usize) -> bool {
    n != 0 || st.vote != prev.vote || st.term != prev.term
}

/// What recovery found.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Recovered {
    /// No WAL in the directory (its creation never became durable).
    NoWal,
    /// The WAL, open for appending, and what it held.
    Wal(Wal, Log),
}

/// Opens the WAL the way an etcd server restarts: open in write mode at the zero
/// snapshot, `read_all`; on a torn tail, `repair` and again.
pub fn recover(opts: &Options, dir: &Path) -> Result<Recovered, wal::Error> {
    if !opts.exist(dir) {
        return Ok(Recovered::NoWal);
    }
    let snap = Snapshot::default();
    let w = opts.open(dir, &snap)?;
    let all = match w.read_all() {
        Ok(all) => all,
        Err(e) if e.is_repairable() => {
            drop(w);
            wal::verify::repair_with(opts, dir)?;
            let w2 = opts.open(dir, &snap)?;
            let all = w2.read_all()?;
            return Ok(Recovered::Wal(
                w2,
                Log {
                    entries: all.entries,
                    hard_state: all.hard_state,
                },
            ));
        }
        Err(e) => return Err(e),
    };
    Ok(Recovered::Wal(
        w,
        Log {
            entries: all.entries,
            hard_state: all.hard_state,
        },
    ))
}

/// [`recover`], counting a panic as an error.
pub fn recover_catching(
    opts: &Options,
    dir: &Path,
) -> Result<Result<Recovered, wal::Error>, String> {
    catch_unwind(AssertUnwindSafe(|| recover(opts, dir))).map_err(|p| {
        p.downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "panic".into())
    })
}

/// The verdict on one recovered state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A legal outcome.
    Ok,
    /// Something acknowledged is missing.
    Lost,
    /// Something never written, or a broken log.
    Wrong,
}

/// Checks `got` against the records written after `base`: it must be `base` with a
/// prefix of `recs` applied, at least `acked` of them.
pub fn check(base: &Log, recs: &[Rec], acked: usize, got: &Log) -> Verdict {
    let mut log = base.clone();
    let mut matched_below = false;
    for p in 0..=recs.len() {
        if p > 0 {
            log.apply(&recs[p - 1]);
        }
        if log.entries.len() == got.entries.len() && log.hard_state == got.hard_state && log == *got
        {
            if p >= acked {
                return Verdict::Ok;
            }
            matched_below = true;
        }
    }
    if matched_below {
        Verdict::Lost
    } else {
        Verdict::Wrong
    }
}

/// Options for a WAL on `fs` with small segments.
pub fn sim_options(fs: &crate::simfs::SimFs, segment_size: u64) -> Options {
    Options::new()
        .segment_size(segment_size)
        .file_system(Arc::new(fs.clone()))
}
