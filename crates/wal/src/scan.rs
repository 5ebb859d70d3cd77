//! The record stream shared by `read_all`, `verify`, `valid_snapshot_entries`,
//! `repair` and the streaming replay: decoding plus the `crc` record checks.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use wal_codec::raftpb::{Entry, HardState};
use wal_codec::walpb::Snapshot;
use wal_codec::{Decoder, Message, RecordType, SegmentReader};
use wal_fileutil::{FileSystem, OpenOptions, ReadAhead, READ_AHEAD_BYTES};

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

    /// The entry in the record; takes the record's data, which becomes the entry's.
    pub fn entry(&mut self) -> Result<Entry> {
        wal_codec::decode_entry(self.data.take().unwrap_or_default())
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
/// How [`Stream::open`] gets at the segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Read every segment through one reused buffer (bounded memory).
    Read,
    /// [`Access::Read`], with a helper reading ahead ([`ReadAhead`]).
    ReadAhead,
    /// Map every segment but the last ([`wal_fileutil::WalFile::map`]), and keep
    /// the mappings in [`Stream::mapped`] for [`Stream::prefetching`].
    MapAhead,
}

pub(crate) struct Stream {
    pub dec: Decoder,
    /// The mapped segments, in order, with [`Access::MapAhead`].
    pub mapped: Vec<Bytes>,
    /// The helper reading the segments ahead ([`Access::ReadAhead`],
    /// [`Stream::read_ahead_all`]), until the end.
    read_ahead: Option<ReadAhead>,
    /// Mapped: every segment, its length and whether it is mapped, in order, for
    /// [`Stream::prefetching`].
    files: Vec<(PathBuf, u64, bool)>,
    /// The path of the segment being read, by its index in the stream.
    file: Option<(usize, Arc<Path>)>,
}

impl Stream {
    pub fn new(dec: Decoder) -> Self {
        Self {
            dec,
            mapped: Vec::new(),
            read_ahead: None,
            files: Vec::new(),
            file: None,
        }
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

    /// Opens `names` (in `dir`) read-only as one stream. Unless `access` reads
    /// ([`Access::Read`], [`Access::ReadAhead`]), every segment but the last is
    /// mapped where the file system allows ([`wal_fileutil::WalFile::map`]): a
    /// finished segment never changes, and its records' data then stay in the page
    /// cache instead of being copied into fresh memory. The last one may still be
    /// written or truncated (by a live etcd, or by repair), so it is always read.
    pub fn open(fs: &dyn FileSystem, dir: &Path, names: &[String], access: Access) -> Result<Self> {
        if matches!(access, Access::Read | Access::ReadAhead) {
            return Self::open_read(fs, dir, names, access == Access::ReadAhead);
        }
        let mut segs = Vec::with_capacity(names.len());
        let mut mapped = Vec::new();
        let mut files = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let path = dir.join(name);
            let f = fs.open(&path, &OpenOptions::read())?;
            if i + 1 < names.len() {
                match f.map() {
                    Ok(Some(bytes)) => {
                        mapped.push(bytes.clone());
                        files.push((path.clone(), bytes.len() as u64, true));
                        segs.push(SegmentReader::from_bytes(path, bytes));
                        continue;
                    }
                    Ok(None) => {}
                    Err(e) => tracing::debug!(error = %e, "mapping failed; reading instead"),
                }
            }
            let size = f.len()?;
            files.push((path.clone(), size, false));
            segs.push(SegmentReader::new(path, size, Box::new(f)));
        }
        let mut stream = Self::new(Decoder::new(segs));
        stream.mapped = mapped;
        stream.files = files;
        Ok(stream)
    }

    /// [`Stream::open`] with [`Access::Read`] or [`Access::ReadAhead`]. Read, a
    /// cold segment costs the disk's time plus the decoder's unless a request is
    /// in flight while the decoder works: with `ahead`, a helper keeps one there,
    /// until the end of the stream.
    fn open_read(fs: &dyn FileSystem, dir: &Path, names: &[String], ahead: bool) -> Result<Self> {
        let mut opened = Vec::with_capacity(names.len());
        for name in names {
            let path = dir.join(name);
            let f = fs.open(&path, &OpenOptions::read())?;
            let size = f.len()?;
            opened.push((path, size, f));
        }
        let files = opened.iter().map(|(p, size, _)| (p.clone(), *size));
        let read_ahead = if ahead {
            fs.read_ahead(files.collect(), READ_AHEAD_BYTES)
        } else {
            None
        };
        let segs = opened
            .into_iter()
            .map(|(path, size, f)| {
                let reader: Box<dyn std::io::Read + Send> = match &read_ahead {
                    Some(ra) => Box::new(ra.track(f)),
                    None => Box::new(f),
                };
                SegmentReader::new(path, size, reader)
            })
            .collect();
        let mut stream = Self::new(Decoder::new(segs));
        stream.read_ahead = read_ahead;
        Ok(stream)
    }

    /// For a mapped stream: starts a helper that reads the segments ahead of the
    /// decoder, unbounded (the decoder maps every page anyway), so a cold read
    /// overlaps the disk (docs/benchmarks.md, lever 18): all of them, or with
    /// `mapped` false only those that are read rather than mapped (the last
    /// one). False if none runs (nothing to read, a simulated disk, no thread,
    /// or called twice).
    fn read_ahead_all(&mut self, fs: &dyn FileSystem, mapped: bool) -> bool {
        let files: Vec<(PathBuf, u64)> = std::mem::take(&mut self.files)
            .into_iter()
            .filter(|f| mapped || !f.2)
            .map(|(path, len, _)| (path, len))
            .collect();
        if self.read_ahead.is_none() && !files.is_empty() {
            self.read_ahead = fs.read_ahead(files, u64::MAX);
            return self.read_ahead.is_some();
        }
        false
    }

    /// The next non-crc record; `Err(End)` is reported through `Ok(Err(..))` so
    /// callers can tell a clean end from a torn one.
    pub fn next(&mut self) -> Result<std::result::Result<Rec, End>> {
        loop {
            let rec = match self.dec.decode() {
                Ok(Some(r)) => r,
                Ok(None) => {
                    self.read_ahead = None;
                    return Ok(Err(End::Clean));
                }
                Err(e) => {
                    // Nothing more is read: stop the helper.
                    self.read_ahead = None;
                    if e.is_unexpected_eof() {
                        return Ok(Err(End::UnexpectedEof(e.into())));
                    }
                    return Err(e.into());
                }
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

/// How a mapped stream's segments are fetched ahead of its decoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Prefetch {
    /// No helper: the kernel's readahead only.
    Off,
    /// Every mapped segment touched ahead ([`with_prefetch`]), where each fault
    /// on an uncached page reads a large folio and maps it whole; only the
    /// segments that are read are read ahead (lever 21).
    Touch,
    /// Every segment read ahead ([`Stream::read_ahead_all`]); only the mapped
    /// segments already cached are touched, which maps their pages on the other
    /// core (lever 18).
    Read,
}

impl Stream {
    /// Runs `f` on this mapped stream with its segments fetched ahead of the
    /// decoder when `ahead` ([`Options::read_ahead`](crate::Options::read_ahead)).
    /// Cold mapped segments are touched where a fault maps a large folio whole
    /// (found on the first of them), else read ahead.
    pub fn prefetching<T>(
        &mut self,
        fs: &dyn FileSystem,
        ahead: bool,
        f: impl FnOnce(&mut Self) -> T,
    ) -> T {
        let how = if !ahead {
            Prefetch::Off
        } else {
            match self.mapped.iter().find(|m| !m.is_empty() && !is_cached(m)) {
                // The first page is needed first anyway: read it here, then ask
                // how the kernel mapped it.
                Some(m) => {
                    std::hint::black_box(m[0]);
                    if wal_fileutil::is_huge_mapped(m, 0) == Some(true) {
                        Prefetch::Touch
                    } else {
                        Prefetch::Read
                    }
                }
                None => Prefetch::Touch,
            }
        };
        self.prefetching_as(fs, how, f)
    }

    /// [`Stream::prefetching`] the way `how` says.
    pub(crate) fn prefetching_as<T>(
        &mut self,
        fs: &dyn FileSystem,
        how: Prefetch,
        f: impl FnOnce(&mut Self) -> T,
    ) -> T {
        let mut mapped = std::mem::take(&mut self.mapped);
        match how {
            Prefetch::Off => {
                drop(mapped);
                return f(self);
            }
            Prefetch::Touch => {
                self.read_ahead_all(fs, false);
            }
            Prefetch::Read => {
                if self.read_ahead_all(fs, true) {
                    mapped.retain(is_cached);
                }
            }
        }
        with_prefetch(mapped, || f(self))
    }
}

/// Whether a mapped segment's first and last pages are in the page cache.
fn is_cached(m: &Bytes) -> bool {
    let ends = [0, m.len().saturating_sub(1)];
    ends.iter()
        .all(|&at| wal_fileutil::is_resident(m, at) == Some(true))
}

/// Runs `f` while a helper thread touches every page of `segments`, in order, ahead
/// of it, then stops the helper.
///
/// A mapped segment that is not in the page cache is read on the first touch of
/// each page, which stalls the reader for the disk; the helper takes those stalls
/// instead, so the disk and the decoding overlap (a cold `read_all` otherwise
/// costs their sum). The mappings ask for huge pages
/// ([`wal_fileutil::WalFile::map`]), so where the file system has large folios
/// each such fault reads 2 MiB or more ahead and maps it whole, and the helper
/// keeps the disk busy without copying a byte (docs/benchmarks.md, lever 21).
/// When the pages are cached, the helper maps them on the other core. If the
/// thread cannot be spawned, `f` runs alone.
fn with_prefetch<T>(segments: Vec<Bytes>, f: impl FnOnce() -> T) -> T {
    use std::sync::atomic::{AtomicBool, Ordering};
    const PAGE: usize = 4096;
    if segments.is_empty() {
        return f();
    }
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let stop = &stop;
        // Each segment is let go once touched: the decoder's reader holds its own
        // mapping until it is done with it, so a reader that keeps no entries
        // (`verify`) maps no more than before.
        let touch = move || {
            for seg in segments {
                for (i, page) in seg.chunks(PAGE).enumerate() {
                    if i % 256 == 0 && stop.load(Ordering::Relaxed) {
                        return;
                    }
                    std::hint::black_box(page[0]);
                }
            }
        };
        let helper = std::thread::Builder::new()
            .name("wal-prefetch".into())
            .spawn_scoped(s, touch);
        if let Err(e) = &helper {
            tracing::debug!(error = %e, "no prefetch thread");
        }
        let out = f();
        stop.store(true, Ordering::Relaxed);
        out
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::names::read_wal_names;

    /// A WAL of about 12 MiB in 4 MiB segments, its files dropped from the cache;
    /// the entries' indices and data in order.
    fn cold_wal(dir: &Path) -> Vec<(u64, Vec<u8>)> {
        let opts = crate::Options::new().segment_size(4 << 20);
        let w = opts.create(dir, Some(b"meta")).unwrap();
        let mut want = Vec::new();
        for save in 0..300u64 {
            let ents: Vec<Entry> = (0..10u64)
                .map(|k| {
                    let index = save * 10 + k + 1;
                    let data = vec![(index % 251) as u8; 4000 + (index % 97) as usize];
                    want.push((index, data.clone()));
                    Entry {
                        term: 1,
                        index,
                        r#type: 0,
                        data: Some(data.into()),
                    }
                })
                .collect();
            let st = HardState {
                term: 1,
                vote: 1,
                commit: save * 10 + 10,
            };
            w.save(&st, &ents).unwrap();
        }
        w.close().unwrap();
        want
    }

    fn drop_from_cache(fs: &dyn FileSystem, dir: &Path) {
        for name in read_wal_names(fs, dir).unwrap() {
            let f = fs.open(&dir.join(name), &OpenOptions::read()).unwrap();
            f.drop_cache().unwrap();
        }
    }

    #[test]
    fn every_way_of_fetching_ahead_reads_the_whole_log() {
        // On a disk where the system allows (a tmpfs keeps its pages cached).
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("wal");
        let want = cold_wal(&dir);
        let fs = wal_fileutil::os();
        let names = read_wal_names(&*fs, &dir).unwrap();
        assert!(names.len() >= 3, "{names:?}");
        for how in [Prefetch::Off, Prefetch::Touch, Prefetch::Read] {
            for cold in [true, false] {
                if cold {
                    drop_from_cache(&*fs, &dir);
                }
                let mut stream = Stream::open(&*fs, &dir, &names, Access::MapAhead).unwrap();
                assert_eq!(stream.mapped.len(), names.len() - 1);
                let got = stream.prefetching_as(&*fs, how, |s| {
                    let mut got = Vec::new();
                    while let Ok(mut rec) = s.next().unwrap() {
                        if RecordType::from_i64(rec.rec_type) == Some(RecordType::Entry) {
                            let e = rec.entry().unwrap();
                            got.push((e.index, e.data.unwrap_or_default().to_vec()));
                        }
                    }
                    got
                });
                assert!(got == want, "{how:?}, cold {cold}: {} entries", got.len());
            }
        }
    }
}
