//! `walctl stat`: per-segment summary of a WAL directory.

use std::io::Write;
use std::path::Path;

use serde::Serialize;
use wal::raftpb::Entry;
use wal_codec::{Message, RecordType};

use crate::frames::{walk, Segments, WalkEnd};
use crate::report::ErrorInfo;

/// One segment file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SegmentStat {
    /// File name.
    pub name: String,
    /// Sequence number (from the name).
    pub seq: u64,
    /// Index of the first entry the segment is meant to hold (from the name).
    pub first_index: u64,
    /// Size on disk (preallocated space included).
    pub size: u64,
    /// End of the last valid record: the bytes in use.
    pub used_bytes: u64,
    /// Records (frames) read.
    pub records: u64,
    /// Entry records read.
    pub entries: u64,
    /// Lowest and highest entry index in the segment.
    pub entry_index_range: Option<(u64, u64)>,
    /// Frames whose CRC did not match.
    pub crc_errors: u64,
    /// Offset of the first frame whose CRC did not match.
    pub first_crc_error_offset: Option<u64>,
    /// Whether the segment ends with a torn or cut-short frame.
    pub torn: bool,
    /// Offset of the torn frame.
    pub torn_offset: Option<u64>,
}

/// The whole directory.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stat {
    /// The WAL directory.
    pub dir: String,
    /// Every segment, in order.
    pub segments: Vec<SegmentStat>,
    /// Entry records in all segments (before Raft log truncation).
    pub entries: u64,
    /// Lowest and highest entry index.
    pub index_range: Option<(u64, u64)>,
    /// Lowest and highest entry term.
    pub term_range: Option<(u64, u64)>,
    /// Size of all segments on disk.
    pub total_bytes: u64,
    /// Bytes in use (up to the last valid record of each segment).
    pub used_bytes: u64,
    /// Whether the last segment has a torn tail (etcd reads up to it; `repair` fixes it).
    pub torn_tail: bool,
    /// What is wrong with the WAL, if anything (a torn tail alone is not an error).
    pub error: Option<ErrorInfo>,
}

fn widen(range: &mut Option<(u64, u64)>, v: u64) {
    *range = Some(match *range {
        None => (v, v),
        Some((lo, hi)) => (lo.min(v), hi.max(v)),
    });
}

/// Reads every segment of `dir` (no locks, no writes) and summarises it.
pub fn stat(dir: &Path, progress_shown: bool) -> Stat {
    let mut st = Stat {
        dir: dir.display().to_string(),
        ..Stat::default()
    };
    let segs = match Segments::open(dir) {
        Ok(s) => s,
        Err(e) => {
            st.error = Some(e);
            return st;
        }
    };
    st.total_bytes = segs.total_bytes();
    st.segments = segs
        .names
        .iter()
        .zip(&segs.sizes)
        .map(|(name, &size)| {
            let (seq, first_index) = wal::parse_wal_name(name).unwrap_or_default();
            SegmentStat {
                name: name.clone(),
                seq,
                first_index,
                size,
                ..SegmentStat::default()
            }
        })
        .collect();
    let gap = !wal::names::is_valid_seq(&segs.names);
    let pb = crate::progress::bar(progress_shown, st.total_bytes, "reading", true);
    let mut cur = 0usize;
    let mut malformed: Option<ErrorInfo> = None;
    let end = {
        let segments = &mut st.segments;
        let (entries, index_range, term_range) =
            (&mut st.entries, &mut st.index_range, &mut st.term_range);
        walk(segs, true, &pb, |f, rec| {
            while cur + 1 < segments.len() && segments[cur].name != f.file {
                cur += 1;
            }
            let Some(s) = segments.get_mut(cur) else {
                return;
            };
            s.records += 1;
            s.used_bytes = f.offset + f.len;
            if !f.crc_ok {
                s.crc_errors += 1;
                s.first_crc_error_offset.get_or_insert(f.offset);
            }
            if rec.r#type == RecordType::Entry as i64 {
                match Entry::decode(rec.data.clone().unwrap_or_default()) {
                    Ok(e) => {
                        s.entries += 1;
                        *entries += 1;
                        widen(&mut s.entry_index_range, e.index);
                        widen(index_range, e.index);
                        widen(term_range, e.term);
                    }
                    Err(err) => {
                        malformed.get_or_insert_with(|| {
                            ErrorInfo::new(
                                "malformed",
                                format!(
                                    "malformed entry in {} at offset {}: {err}",
                                    f.file, f.offset
                                ),
                                Some(&dir.join(&f.file)),
                                Some(f.offset),
                            )
                        });
                    }
                }
            }
        })
    };
    pb.finish_and_clear();
    st.used_bytes = st.segments.iter().map(|s| s.used_bytes).sum();
    let crc_errors: u64 = st.segments.iter().map(|s| s.crc_errors).sum();
    let mut error = None;
    match end {
        WalkEnd::Clean => {}
        WalkEnd::Torn {
            error: e,
            last_segment,
        } => {
            let name = e
                .file
                .as_deref()
                .and_then(|f| Path::new(f).file_name())
                .map(|n| n.to_string_lossy().into_owned());
            if let Some(s) = st
                .segments
                .iter_mut()
                .find(|s| Some(&s.name) == name.as_ref())
            {
                s.torn = true;
                s.torn_offset = e.offset;
            }
            if last_segment {
                st.torn_tail = true;
            } else {
                error = Some(e);
            }
        }
        WalkEnd::Failed { error: e } => error = Some(e),
    }
    if gap {
        error.get_or_insert_with(|| sequence_gap(dir, &st.segments));
    }
    if crc_errors > 0 {
        let first = st.segments.iter().find(|s| s.crc_errors > 0);
        error.get_or_insert_with(|| {
            ErrorInfo::new(
                "crc_mismatch",
                format!(
                    "{crc_errors} record(s) fail the CRC check, the first in {}",
                    first.map_or("?", |s| s.name.as_str())
                ),
                first.map(|s| dir.join(&s.name)).as_deref(),
                first.and_then(|s| s.first_crc_error_offset),
            )
        });
    }
    st.error = error.or(malformed);
    st
}

/// etcd's `wal: file not found` for a gap in the sequence numbers, naming the
/// segment after the gap.
fn sequence_gap(dir: &Path, segments: &[SegmentStat]) -> ErrorInfo {
    let after = segments
        .windows(2)
        .find(|w| w[0].seq != 0 && w[0].seq.checked_add(1) != Some(w[1].seq));
    match after {
        Some(w) => ErrorInfo::new(
            "file_not_found",
            format!(
                "wal: file not found: segment sequence jumps from {} ({}) to {} ({}): a segment is missing",
                w[0].seq, w[0].name, w[1].seq, w[1].name
            ),
            Some(&dir.join(&w[1].name)),
            None,
        ),
        None => ErrorInfo::new(
            "file_not_found",
            "wal: file not found: sequence numbers do not increase continuously",
            Some(dir),
            None,
        ),
    }
}

fn range(r: Option<(u64, u64)>) -> String {
    r.map_or_else(|| "-".to_string(), |(lo, hi)| format!("{lo}..{hi}"))
}

impl Stat {
    /// Writes the summary as a table.
    pub fn write_text(&self, out: &mut dyn Write) -> std::io::Result<()> {
        writeln!(out, "WAL directory: {}", self.dir)?;
        writeln!(
            out,
            "{:<38} {:>5} {:>10} {:>11} {:>11} {:>8} {:>8} {:>15}  tail",
            "segment", "seq", "first", "size", "used", "records", "entries", "indexes"
        )?;
        for s in &self.segments {
            let mut tail = match s.torn_offset {
                Some(o) if s.torn => format!("TORN at {o}"),
                _ if s.torn => "TORN".to_string(),
                _ => "ok".to_string(),
            };
            if s.crc_errors > 0 {
                tail.push_str(&format!(", {} CRC error(s)", s.crc_errors));
            }
            writeln!(
                out,
                "{:<38} {:>5} {:>10} {:>11} {:>11} {:>8} {:>8} {:>15}  {}",
                s.name,
                s.seq,
                s.first_index,
                s.size,
                s.used_bytes,
                s.records,
                s.entries,
                range(s.entry_index_range),
                tail
            )?;
        }
        writeln!(out, "segments:    {}", self.segments.len())?;
        writeln!(out, "entries:     {}", self.entries)?;
        writeln!(out, "index range: {}", range(self.index_range))?;
        writeln!(out, "term range:  {}", range(self.term_range))?;
        writeln!(
            out,
            "bytes:       {} on disk, {} in use",
            self.total_bytes, self.used_bytes
        )?;
        writeln!(
            out,
            "torn tail:   {}",
            if self.torn_tail {
                "yes (etcd reads up to it; `walctl repair` truncates it)"
            } else {
                "no"
            }
        )?;
        match &self.error {
            None => writeln!(out, "status:      ok")?,
            Some(e) => writeln!(out, "status:      BAD: {}", e.line())?,
        }
        Ok(())
    }
}
