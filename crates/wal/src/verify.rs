//! Whole-directory checks and fixes: `verify`, `valid_snapshot_entries`, `repair`.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use wal_codec::raftpb::HardState;
use wal_codec::walpb::Snapshot;
use wal_codec::{Decoder, RecordType, SegmentReader};
use wal_fileutil::OpenOptions;

use crate::error::{Error, Result};
use crate::names::{read_wal_names, select_wal_files};
use crate::scan::{Access, Stream};
use crate::Options;

/// Checks the WAL in `dir` from `snap` on without keeping entries (etcd's `Verify`):
/// every record decodes, the CRC chain holds, metadata agrees, the snapshot record
/// exists with the right term. Returns the last hard state. Takes no locks and
/// writes nothing; a torn tail is tolerated, as in etcd.
pub fn verify(dir: &Path, snap: &Snapshot) -> Result<HardState> {
    verify_with(&Options::new(), dir, snap)
}

/// [`verify`] through the file system of `opts`.
pub fn verify_with(opts: &Options, dir: &Path, snap: &Snapshot) -> Result<HardState> {
    let fs = &*opts.fs;
    let (names, at) = select_wal_files(fs, dir, snap.index)?;
    let mut stream = Stream::open(fs, dir, &names[at..], Access::MapAhead)?;
    let (state, matched) = stream.prefetching(fs, opts.read_ahead, |stream| {
        let mut metadata: Option<bytes::Bytes> = None;
        let mut state = HardState::default();
        let mut matched = false;
        loop {
            let rec = match stream.next()? {
                Ok(r) => r,
                Err(_end) => break,
            };
            match RecordType::from_i64(rec.rec_type) {
                Some(RecordType::Metadata) => {
                    rec.check_metadata(metadata.as_deref())?;
                    metadata = rec.data.clone();
                }
                Some(RecordType::Snapshot) => matched |= rec.matches_start(snap)?,
                Some(RecordType::Entry) => {}
                Some(RecordType::State) => state = rec.hard_state()?,
                _ => return Err(rec.unexpected_type()),
            }
        }
        Ok((state, matched))
    })?;
    if !matched {
        return Err(Error::SnapshotNotFound {
            index: snap.index,
            term: snap.term,
            read: Box::default(),
        });
    }
    Ok(state)
}

/// The snapshot records of every segment in `dir` whose index is at or below the
/// last committed index (etcd's `ValidSnapshotEntries`): the snapshots a restarting
/// node may load. Takes no locks; a torn tail is tolerated.
pub fn valid_snapshot_entries(dir: &Path) -> Result<Vec<Snapshot>> {
    valid_snapshot_entries_with(&Options::new(), dir)
}

/// [`valid_snapshot_entries`] through the file system of `opts`.
pub fn valid_snapshot_entries_with(opts: &Options, dir: &Path) -> Result<Vec<Snapshot>> {
    // etcd retries when a segment disappears between listing and opening (a purge).
    let mut last = None;
    for _ in 0..3 {
        match valid_snapshot_entries_once(opts, dir) {
            Err(e) if is_not_found(&e) => last = Some(e),
            other => return other,
        }
    }
    Err(last.unwrap_or(Error::NoWalFiles {
        dir: dir.to_path_buf(),
    }))
}

fn is_not_found(e: &Error) -> bool {
    matches!(e, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
}

fn valid_snapshot_entries_once(opts: &Options, dir: &Path) -> Result<Vec<Snapshot>> {
    let fs = &*opts.fs;
    let names = read_wal_names(fs, dir)?;
    let mut stream = Stream::open(fs, dir, &names, Access::MapAhead)?;
    let (mut snaps, state) = stream.prefetching(fs, opts.read_ahead, |stream| {
        let mut snaps = Vec::new();
        let mut state = HardState::default();
        loop {
            let rec = match stream.next()? {
                Ok(r) => r,
                Err(_end) => break,
            };
            match RecordType::from_i64(rec.rec_type) {
                Some(RecordType::Snapshot) => snaps.push(rec.snapshot()?),
                Some(RecordType::State) => state = rec.hard_state()?,
                _ => {}
            }
        }
        Ok::<_, Error>((snaps, state))
    })?;
    snaps.retain(|s| s.index <= state.commit);
    Ok(snaps)
}

/// What [`repair`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepairOutcome {
    /// The last segment reads to a clean end: nothing to do.
    Clean {
        /// The segment checked.
        file: PathBuf,
    },
    /// The last segment had a torn or cut-short tail, now truncated.
    Truncated {
        /// The segment repaired.
        file: PathBuf,
        /// Its new length: the end of the last valid record.
        offset: u64,
        /// The copy of the segment as it was (`<name>.broken`), fsync'ed.
        backup: PathBuf,
    },
}

/// Repairs a torn tail of the last segment (etcd's `Repair`): copies the segment to
/// `<name>.broken`, fsyncs the copy, truncates the segment at the end of its last
/// valid record and fsyncs it. Durable on return.
///
/// Only an unexpected EOF is repaired; a CRC mismatch or any other damage is
/// returned as an error and nothing is changed. Unlike etcd, which blocks, a segment
/// locked by another process (a running etcd) fails at once with [`Error::Locked`].
pub fn repair(dir: &Path) -> Result<RepairOutcome> {
    repair_with(&Options::new(), dir)
}

/// [`repair`] through the file system of `opts`.
pub fn repair_with(opts: &Options, dir: &Path) -> Result<RepairOutcome> {
    let fs = &*opts.fs;
    let names = read_wal_names(fs, dir)?;
    let Some(last) = names.last() else {
        return Err(Error::NoWalFiles {
            dir: dir.to_path_buf(),
        });
    };
    let path = dir.join(last);
    let mut f = crate::try_lock_segment(fs, &path)?;
    tracing::info!(path = %path.display(), "repairing");
    let size = f.len()?;
    let reader = fs.open(&path, &OpenOptions::read())?;
    let mut dec = Decoder::new(vec![SegmentReader::new(
        path.clone(),
        size,
        Box::new(reader),
    )]);
    loop {
        let last_offset = dec.last_offset();
        match dec.decode() {
            Ok(Some(rec)) => {
                if rec.r#type == RecordType::Crc as i64 {
                    let running = dec.last_crc();
                    if running != 0 && running != rec.crc {
                        return Err(Error::CrcMismatch {
                            file: path,
                            offset: dec.frame_offset(),
                            expected: rec.crc,
                            actual: running,
                        });
                    }
                    dec.update_crc(rec.crc);
                }
            }
            Ok(None) => {
                tracing::info!(path = %path.display(), "repaired: nothing to do");
                return Ok(RepairOutcome::Clean { file: path });
            }
            Err(e) if e.is_unexpected_eof() => {
                let backup = broken_path(&path);
                let mut bf = fs.open(&backup, &OpenOptions::write().create(true).truncate(true))?;
                f.seek(SeekFrom::Start(0))
                    .map_err(|e| Error::io("seeking", &path, e))?;
                copy(&mut f, &mut bf, &path, &backup)?;
                // Beyond etcd: the backup is durable before the original shrinks.
                bf.sync_all()?;
                fs.fsync_dir(dir)?;
                f.set_len(last_offset)?;
                f.sync_all()?;
                tracing::info!(path = %path.display(), offset = last_offset, "repaired: truncated a torn tail");
                return Ok(RepairOutcome::Truncated {
                    file: path,
                    offset: last_offset,
                    backup,
                });
            }
            Err(e) => return Err(e.into()),
        }
    }
}

fn broken_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".broken");
    PathBuf::from(s)
}

fn copy(from: &mut dyn Read, to: &mut dyn Write, src: &Path, dst: &Path) -> Result<()> {
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io("reading", src, e)),
        };
        to.write_all(&buf[..n])
            .map_err(|e| Error::io("writing", dst, e))?;
    }
}
