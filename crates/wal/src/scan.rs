//! The record stream shared by `read_all`, `verify`, `valid_snapshot_entries`,
//! `repair` and the streaming replay: decoding plus the `crc` record checks.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use wal_codec::raftpb::{Entry, HardState};
use wal_codec::walpb::Snapshot;
use wal_codec::{Decoder, Message, RecordType, SegmentReader};
use wal_fileutil::{FileSystem, OpenOptions};

use crate::error::{Error, Result};

/// One record, with where it came from (the path is shared by every record of a
/// segment, so handing out a record allocates nothing).
pub(crate) struct Rec {
    pub rec_type: i64,
    pub data: Option<Bytes>,
    pub file: Arc<Path>,
    pub offset: u64,
}

impl Rec {
    fn malformed(&self, what: &str, e: wal_codec::prost::DecodeError) -> Error {
        Error::Malformed {
            file: self.file.to_path_buf(),
            offset: self.offset,
            reason: format!("{what}: {e}"),
        }
    }

    pub fn entry(&self) -> Result<Entry> {
        let empty = Bytes::new();
        wal_codec::decode_entry(self.data.as_ref().unwrap_or(&empty))
            .map_err(|e| self.malformed("entry", e))
    }

    pub fn hard_state(&self) -> Result<HardState> {
        HardState::decode(self.data.clone().unwrap_or_default())
            .map_err(|e| self.malformed("hard state", e))
    }

    pub fn snapshot(&self) -> Result<Snapshot> {
        Snapshot::decode(self.data.clone().unwrap_or_default())
            .map_err(|e| self.malformed("snapshot", e))
    }

    /// etcd's check of a snapshot record against the start snapshot: true when it
    /// is the start snapshot, an error when it has the start's index but not its term.
    pub fn matches_start(&self, start: &Snapshot) -> Result<bool> {
        let s = self.snapshot()?;
        if s.index != start.index {
            return Ok(false);
        }
        if s.term != start.term {
            return Err(Error::SnapshotMismatch {
                file: self.file.to_path_buf(),
                offset: self.offset,
                index: s.index,
                want_term: start.term,
                found_term: s.term,
            });
        }
        Ok(true)
    }

    /// etcd's metadata check: once non-nil metadata was seen, every later metadata
    /// record must be equal (nil and empty compare equal, as Go's `bytes.Equal`).
    pub fn check_metadata(&self, seen: Option<&[u8]>) -> Result<()> {
        if seen.is_some_and(|m| m != self.data.as_deref().unwrap_or(&[])) {
            return Err(Error::MetadataConflict {
                file: self.file.to_path_buf(),
                offset: self.offset,
            });
        }
        Ok(())
    }

    /// The error for a record type etcd does not define.
    pub fn unexpected_type(&self) -> Error {
        Error::UnexpectedRecordType {
            file: self.file.to_path_buf(),
            offset: self.offset,
            record_type: self.rec_type,
        }
    }
}

/// How the stream ended.
pub(crate) enum End {
    /// Every segment read to its end (etcd's `io.EOF`).
    Clean,
    /// A frame cut short or torn (etcd's `io.ErrUnexpectedEOF`).
    UnexpectedEof(Error),
}

/// Decodes records and handles `crc` records the way every etcd reader does: the
/// running CRC must match when it is non-zero, then the chain continues from it.
pub(crate) struct Stream {
    pub dec: Decoder,
    /// The path of the segment being read, by its index in the stream.
    file: Option<(usize, Arc<Path>)>,
}

impl Stream {
    pub fn new(dec: Decoder) -> Self {
        Self { dec, file: None }
    }

    /// The decoder's current segment, as a shared path.
    fn current_file(&mut self) -> Option<Arc<Path>> {
        let at = self.dec.segment_index();
        if let Some((i, p)) = &self.file {
            if *i == at && self.dec.current_file().is_some() {
                return Some(Arc::clone(p));
            }
        }
        let p: Arc<Path> = Arc::from(self.dec.current_file()?);
        self.file = Some((at, Arc::clone(&p)));
        Some(p)
    }

    /// Opens `names` (in `dir`) read-only as one stream. With `map`, every segment
    /// but the last is mapped where the file system allows ([`WalFile::map`]): a
    /// finished segment never changes, and its records' data then stay in the page
    /// cache instead of being copied into fresh memory. The last one may still be
    /// written or truncated (by a live etcd, or by repair), so it is always read.
    pub fn open(fs: &dyn FileSystem, dir: &Path, names: &[String], map: bool) -> Result<Self> {
        let mut segs = Vec::with_capacity(names.len());
        for (i, name) in names.iter().enumerate() {
            let path = dir.join(name);
            let f = fs.open(&path, &OpenOptions::read())?;
            if map && i + 1 < names.len() {
                match f.map() {
                    Ok(Some(bytes)) => {
                        segs.push(SegmentReader::from_bytes(path, bytes));
                        continue;
                    }
                    Ok(None) => {}
                    Err(e) => tracing::debug!(error = %e, "mapping failed; reading instead"),
                }
            }
            let size = f.len()?;
            segs.push(SegmentReader::new(path, size, Box::new(f)));
        }
        Ok(Self::new(Decoder::new(segs)))
    }

    /// The next non-crc record; `Err(End)` is reported through `Ok(Err(..))` so
    /// callers can tell a clean end from a torn one.
    pub fn next(&mut self) -> Result<std::result::Result<Rec, End>> {
        loop {
            let rec = match self.dec.decode() {
                Ok(Some(r)) => r,
                Ok(None) => return Ok(Err(End::Clean)),
                Err(e) if e.is_unexpected_eof() => return Ok(Err(End::UnexpectedEof(e.into()))),
                Err(e) => return Err(e.into()),
            };
            let offset = self.dec.frame_offset();
            // The decoder may have moved to another file while reading: the record
            // comes from its current segment.
            let file = self
                .current_file()
                .unwrap_or_else(|| Arc::from(Path::new("")));
            if rec.r#type == RecordType::Crc as i64 {
                let running = self.dec.last_crc();
                // A fresh decoder starts at 0 and cannot check the first crc record.
                if running != 0 && running != rec.crc {
                    return Err(Error::CrcMismatch {
                        file: file.to_path_buf(),
                        offset,
                        expected: rec.crc,
                        actual: running,
                    });
                }
                self.dec.update_crc(rec.crc);
                continue;
            }
            return Ok(Ok(Rec {
                rec_type: rec.r#type,
                data: rec.data,
                file,
                offset,
            }));
        }
    }
}
