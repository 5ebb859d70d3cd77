//! Streaming replay: the records of a WAL one by one, without holding every entry.

use std::path::Path;

use bytes::Bytes;
use wal_codec::raftpb::{Entry, HardState};
use wal_codec::walpb::Snapshot;
use wal_codec::RecordType;

use crate::error::{Error, Result};
use crate::names::select_wal_files;
use crate::scan::{Access, End, Stream};
use crate::Options;

/// One record of the log, decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The metadata record at the head of a segment.
    Metadata(Option<Bytes>),
    /// An entry after the start snapshot. An entry whose index is at or below one
    /// already yielded replaces the log from that index on (Raft log truncation).
    Entry(Entry),
    /// A hard state; the last one is the current state.
    HardState(HardState),
    /// A snapshot marker.
    Snapshot(Snapshot),
}

/// Iterates over a WAL's records from a snapshot on, with `read_all`'s checks (CRC
/// chain, metadata conflicts, snapshot term), in constant memory. Read-only: takes
/// no locks. A torn tail ends the iteration, as in read mode; [`Replay::torn_tail`]
/// tells whether it happened. If no snapshot record matched the start snapshot, the
/// last item is [`Error::SnapshotNotFound`] (with nothing in `read`).
pub struct Replay {
    stream: Stream,
    start: Snapshot,
    metadata: Option<Bytes>,
    matched: bool,
    done: bool,
    torn: Option<Error>,
}

impl std::fmt::Debug for Replay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replay")
            .field("start", &self.start)
            .finish_non_exhaustive()
    }
}

impl Replay {
    /// Starts a replay of the WAL in `dir` at `snap`.
    pub fn open(dir: &Path, snap: &Snapshot) -> Result<Self> {
        Self::open_with(&Options::new(), dir, snap)
    }

    /// [`Replay::open`] through the file system of `opts`.
    pub fn open_with(opts: &Options, dir: &Path, snap: &Snapshot) -> Result<Self> {
        let fs = &*opts.fs;
        let (names, at) = select_wal_files(fs, dir, snap.index)?;
        let access = if opts.read_ahead {
            Access::ReadAhead
        } else {
            Access::Read
        };
        Ok(Self {
            // Read, not mapped: one reused buffer keeps the memory of a replay at a
            // few MiB (mapped, it is a segment's worth), and a cold replay overlaps
            // the disk better through read's readahead (docs/benchmarks.md).
            stream: Stream::open(fs, dir, &names[at..], access)?,
            start: snap.clone(),
            metadata: None,
            matched: false,
            done: false,
            torn: None,
        })
    }

    /// After the end: the unexpected EOF that ended the log early, if any.
    pub fn torn_tail(&self) -> Option<&Error> {
        self.torn.as_ref()
    }

    fn step(&mut self) -> Result<Option<Event>> {
        loop {
            let mut rec = match self.stream.next()? {
                Ok(r) => r,
                Err(end) => {
                    if let End::UnexpectedEof(e) = end {
                        self.torn = Some(e);
                    }
                    self.done = true;
                    if !self.matched {
                        return Err(Error::SnapshotNotFound {
                            index: self.start.index,
                            term: self.start.term,
                            read: Box::default(),
                        });
                    }
                    return Ok(None);
                }
            };
            return Ok(Some(match RecordType::from_i64(rec.rec_type) {
                Some(RecordType::Entry) => {
                    let e = rec.entry()?;
                    if e.index <= self.start.index {
                        continue;
                    }
                    Event::Entry(e)
                }
                Some(RecordType::State) => Event::HardState(rec.hard_state()?),
                Some(RecordType::Metadata) => {
                    rec.check_metadata(self.metadata.as_deref())?;
                    // A copy: a slice would pin the decoder's read buffer, which
                    // the replay otherwise reuses for every chunk it reads.
                    self.metadata = rec.data.as_deref().map(Bytes::copy_from_slice);
                    Event::Metadata(rec.data)
                }
                Some(RecordType::Snapshot) => {
                    self.matched |= rec.matches_start(&self.start)?;
                    Event::Snapshot(rec.snapshot()?)
                }
                _ => return Err(rec.unexpected_type()),
            }));
        }
    }
}

impl Iterator for Replay {
    type Item = Result<Event>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.step() {
            Ok(Some(ev)) => Some(Ok(ev)),
            Ok(None) => None,
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}
