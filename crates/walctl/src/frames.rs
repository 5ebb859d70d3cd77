//! Walking the raw frames of every segment of a WAL directory (`walctl dump --raw`,
//! `walctl stat`): offsets, record types, stored CRCs and whether they chain.

use std::io::Write;
use std::path::{Path, PathBuf};

use indicatif::ProgressBar;
use serde::Serialize;
use wal_codec::{DecodeError, Decoder, Record, RecordType, SegmentReader};

use crate::locate::segment_names;
use crate::report::ErrorInfo;

/// One frame as found on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Frame {
    /// Segment name.
    pub file: String,
    /// Offset of the frame's length field in the segment.
    pub offset: u64,
    /// Frame length: header, record and padding.
    pub len: u64,
    /// The stored record type (1 metadata, 2 entry, 3 state, 4 crc, 5 snapshot).
    #[serde(rename = "type")]
    pub rec_type: i64,
    /// The type's name, `unknown` for a type etcd does not define.
    pub type_name: &'static str,
    /// The CRC stored in the record.
    pub crc: u32,
    /// Whether the stored CRC matches the chain (for a `crc` record: the running CRC
    /// of the previous records, unchecked at the very start).
    pub crc_ok: bool,
    /// Length of the record's data, `None` when absent (nil).
    pub data_len: Option<usize>,
}

/// How a walk ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "end", rename_all = "snake_case")]
pub enum WalkEnd {
    /// Every segment read to its end.
    Clean,
    /// A frame cut short or torn (etcd's unexpected EOF): in the last segment this is a
    /// torn tail that etcd tolerates when reading and `repair` truncates.
    Torn {
        /// The error, with file and offset.
        error: ErrorInfo,
        /// Whether it is in the last segment (otherwise the WAL is damaged).
        last_segment: bool,
    },
    /// Decoding could not go on (malformed record, I/O error, no segments).
    Failed {
        /// The error.
        error: ErrorInfo,
    },
}

/// The segments of a directory, opened for the walk.
#[derive(Debug)]
pub struct Segments {
    /// Segment names, sorted.
    pub names: Vec<String>,
    /// Their sizes in bytes.
    pub sizes: Vec<u64>,
    readers: Vec<SegmentReader>,
}

impl Segments {
    /// Opens every segment of `dir` read-only (no locks).
    pub fn open(dir: &Path) -> Result<Self, ErrorInfo> {
        let names = segment_names(dir).map_err(|e| io_error("reading directory", dir, &e))?;
        if names.is_empty() {
            return Err(ErrorInfo::from(wal::Error::NoWalFiles {
                dir: dir.to_path_buf(),
            }));
        }
        let mut sizes = Vec::with_capacity(names.len());
        let mut readers = Vec::with_capacity(names.len());
        for name in &names {
            let path = dir.join(name);
            let f = std::fs::File::open(&path).map_err(|e| io_error("opening", &path, &e))?;
            let size = f
                .metadata()
                .map_err(|e| io_error("reading metadata of", &path, &e))?
                .len();
            sizes.push(size);
            readers.push(SegmentReader::new(path, size, Box::new(f)));
        }
        Ok(Self {
            names,
            sizes,
            readers,
        })
    }

    /// Total size of the segments in bytes.
    pub fn total_bytes(&self) -> u64 {
        self.sizes.iter().sum()
    }
}

fn io_error(op: &str, path: &Path, e: &std::io::Error) -> ErrorInfo {
    ErrorInfo::new(
        "io",
        format!("{op} {}: {e}", path.display()),
        Some(path),
        None,
    )
}

/// Decodes every frame of `segs` in order, calling `visit` with each frame and its
/// record. With `continue_on_crc`, a CRC mismatch is reported as a frame with
/// `crc_ok: false` and the chain resynchronised at the stored CRC, so only damaged
/// records are flagged; otherwise the first mismatch ends the walk as `Failed`.
pub fn walk(
    segs: Segments,
    continue_on_crc: bool,
    progress: &ProgressBar,
    mut visit: impl FnMut(&Frame, &Record),
) -> WalkEnd {
    let count = segs.names.len();
    let last_name: Option<PathBuf> = segs.readers.last().map(|r| r.name().to_path_buf());
    let mut dec = Decoder::new(segs.readers).continue_on_crc_error(true);
    let file_name = |p: Option<&Path>| {
        p.and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    loop {
        match dec.decode() {
            Ok(Some(rec)) => {
                let offset = dec.frame_offset();
                let len = dec.last_offset().saturating_sub(offset);
                let mut crc_ok = true;
                if rec.r#type == RecordType::Crc as i64 {
                    let running = dec.last_crc();
                    crc_ok = running == 0 || running == rec.crc;
                    dec.update_crc(rec.crc);
                }
                let frame = make_frame(file_name(dec.current_file()), offset, len, &rec, crc_ok);
                progress.inc(len);
                visit(&frame, &rec);
                if !crc_ok && !continue_on_crc {
                    let file = dec
                        .current_file()
                        .map(Path::to_path_buf)
                        .unwrap_or_default();
                    return WalkEnd::Failed {
                        error: ErrorInfo::from(wal::Error::CrcMismatch {
                            file,
                            offset,
                            expected: rec.crc,
                            actual: dec.last_crc(),
                        }),
                    };
                }
            }
            Ok(None) => return WalkEnd::Clean,
            Err(e @ DecodeError::CrcMismatch { .. }) => {
                let offset = e.offset();
                let Some(rec) = dec.take_mismatched() else {
                    return WalkEnd::Failed { error: e.into() };
                };
                let len = dec.last_offset().saturating_sub(offset);
                let frame = make_frame(file_name(Some(e.file())), offset, len, &rec, false);
                progress.inc(len);
                visit(&frame, &rec);
                if !continue_on_crc {
                    return WalkEnd::Failed { error: e.into() };
                }
                // Resynchronise: the next record chains from the stored CRC.
                dec.update_crc(rec.crc);
            }
            Err(e) if e.is_unexpected_eof() => {
                let last_segment = count <= 1 || last_name.as_deref() == Some(e.file());
                return WalkEnd::Torn {
                    error: e.into(),
                    last_segment,
                };
            }
            Err(e) => return WalkEnd::Failed { error: e.into() },
        }
    }
}

fn make_frame(file: String, offset: u64, len: u64, rec: &Record, crc_ok: bool) -> Frame {
    Frame {
        file,
        offset,
        len,
        rec_type: rec.r#type,
        type_name: RecordType::from_i64(rec.r#type).map_or("unknown", RecordType::name),
        crc: rec.crc,
        crc_ok,
        data_len: rec.data.as_ref().map(|d| d.len()),
    }
}

/// Everything `dump --raw` prints.
#[derive(Debug, Clone, Serialize)]
pub struct RawDump {
    /// The WAL directory.
    pub dir: String,
    /// Every frame, in order.
    pub frames: Vec<Frame>,
    /// How many frames failed their CRC check.
    pub crc_errors: usize,
    /// How the walk ended.
    #[serde(flatten)]
    pub end: WalkEnd,
}

impl RawDump {
    /// Whether the WAL is damaged (a CRC error, a failure, or a torn frame that is not
    /// in the last segment). A torn tail alone is not: etcd reads past it.
    pub fn is_bad(&self) -> bool {
        self.crc_errors > 0
            || match &self.end {
                WalkEnd::Clean => false,
                WalkEnd::Torn { last_segment, .. } => !last_segment,
                WalkEnd::Failed { .. } => true,
            }
    }

    /// The errors to report on stderr.
    pub fn errors(&self) -> Vec<String> {
        let mut out = Vec::new();
        for f in self.frames.iter().filter(|f| !f.crc_ok) {
            out.push(format!(
                "crc_mismatch: {} at offset {} ({} record)",
                f.file, f.offset, f.type_name
            ));
        }
        match &self.end {
            WalkEnd::Failed { error } => out.push(error.line()),
            WalkEnd::Torn {
                error,
                last_segment: false,
            } => out.push(format!("{} (not in the last segment)", error.line())),
            _ => {}
        }
        out
    }

    /// Writes the frame listing as text.
    pub fn write_text(&self, out: &mut dyn Write) -> std::io::Result<()> {
        writeln!(out, "WAL directory: {}", self.dir)?;
        let mut current = "";
        for f in &self.frames {
            if f.file != current {
                current = &f.file;
                writeln!(out)?;
                writeln!(out, "{current}")?;
                writeln!(
                    out,
                    "{:>10}  {:>8}  {:<8}  {:>10}  {:<9}  {:>8}",
                    "offset", "len", "type", "crc", "crc-ok", "data"
                )?;
            }
            let data = f
                .data_len
                .map_or_else(|| "nil".to_string(), |n| n.to_string());
            writeln!(
                out,
                "{:>10}  {:>8}  {:<8}  0x{:08x}  {:<9}  {:>8}",
                f.offset,
                f.len,
                f.type_name,
                f.crc,
                if f.crc_ok { "ok" } else { "MISMATCH" },
                data
            )?;
        }
        writeln!(out)?;
        writeln!(
            out,
            "frames: {}, crc errors: {}",
            self.frames.len(),
            self.crc_errors
        )?;
        match &self.end {
            WalkEnd::Clean => writeln!(out, "end: clean")?,
            WalkEnd::Torn {
                error,
                last_segment: true,
            } => writeln!(
                out,
                "end: torn tail (etcd reads up to it; `walctl repair` truncates it): {}",
                error.line()
            )?,
            WalkEnd::Torn { error, .. } => writeln!(
                out,
                "end: unexpected EOF before the last segment: {}",
                error.line()
            )?,
            WalkEnd::Failed { error } => writeln!(out, "end: stopped: {}", error.line())?,
        }
        Ok(())
    }
}

/// Lists the frames of every segment in `dir`, continuing past CRC errors.
pub fn raw_dump(dir: &Path, progress_shown: bool) -> RawDump {
    let mut frames = Vec::new();
    let end = match Segments::open(dir) {
        Ok(segs) => {
            let pb = crate::progress::bar(progress_shown, segs.total_bytes(), "reading", true);
            let end = walk(segs, true, &pb, |f, _| frames.push(f.clone()));
            pb.finish_and_clear();
            end
        }
        Err(error) => WalkEnd::Failed { error },
    };
    let crc_errors = frames.iter().filter(|f| !f.crc_ok).count();
    RawDump {
        dir: dir.display().to_string(),
        frames,
        crc_errors,
        end,
    }
}
