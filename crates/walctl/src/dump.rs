//! `walctl dump`: what etcd's reader returns for a WAL directory at a snapshot.
//!
//! The JSON form has the keys of the corpus' `*.expected.json` files (without
//! `write_mode`: walctl never writes), with every error as an [`ErrorInfo`] object.

use std::io::Write;
use std::path::Path;

use serde::Serialize;
use sha2::{Digest, Sha256};
use wal::raftpb::{Entry, HardState};
use wal::walpb::Snapshot;
use wal::{Error, ErrorKind, ReadAll};

use crate::locate::list_dir;
use crate::report::ErrorInfo;

/// A snapshot's (index, term).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SnapInfo {
    /// Raft index.
    pub index: u64,
    /// Raft term.
    pub term: u64,
}

impl From<&Snapshot> for SnapInfo {
    fn from(s: &Snapshot) -> Self {
        Self {
            index: s.index,
            term: s.term,
        }
    }
}

/// A hard state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct HardStateInfo {
    /// Current term.
    pub term: u64,
    /// Vote in that term.
    pub vote: u64,
    /// Commit index.
    pub commit: u64,
}

impl From<&HardState> for HardStateInfo {
    fn from(h: &HardState) -> Self {
        Self {
            term: h.term,
            vote: h.vote,
            commit: h.commit,
        }
    }
}

/// One entry, summarised as in the corpus.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EntryInfo {
    /// Raft index.
    pub index: u64,
    /// Raft term.
    pub term: u64,
    /// 0 normal, 1 conf change, 2 conf change v2.
    #[serde(rename = "type")]
    pub entry_type: i32,
    /// Data length.
    pub data_len: usize,
    /// Whether the data field is absent on disk.
    pub data_nil: bool,
    /// sha256 of the data, hex.
    pub data_sha256: String,
}

impl From<&Entry> for EntryInfo {
    fn from(e: &Entry) -> Self {
        let data = e.data.as_deref().unwrap_or_default();
        Self {
            index: e.index,
            term: e.term,
            entry_type: e.r#type,
            data_len: data.len(),
            data_nil: e.data.is_none(),
            data_sha256: hex::encode(Sha256::digest(data)),
        }
    }
}

/// `{"error": ...}`: etcd 3.4's `Verify` returns only an error.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VerifyInfo {
    /// The error, or `None`.
    pub error: Option<ErrorInfo>,
}

/// The report, in the corpus' key order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DumpReport {
    /// The snapshot reading started at.
    pub snapshot: SnapInfo,
    /// `open_for_read`'s error.
    pub open_error: Option<ErrorInfo>,
    /// `read_all`'s metadata, hex.
    pub metadata_hex: String,
    /// Whether the metadata is nil.
    pub metadata_nil: bool,
    /// `read_all`'s hard state (zero on most errors, as etcd returns it).
    pub hardstate: HardStateInfo,
    /// `read_all`'s entries.
    pub entries: Vec<EntryInfo>,
    /// `read_all`'s error.
    pub readall_error: Option<ErrorInfo>,
    /// `verify`'s result.
    pub verify: VerifyInfo,
    /// `valid_snapshot_entries`' result (empty on error).
    pub valid_snapshot_entries: Vec<SnapInfo>,
    /// `valid_snapshot_entries`' error.
    pub valid_snapshot_entries_error: Option<ErrorInfo>,
    /// Every name in the WAL directory, sorted.
    pub files: Vec<String>,
}

/// The dump: the report plus what text output needs.
#[derive(Debug, Clone, Default)]
pub struct Dump {
    /// The WAL directory read.
    pub dir: String,
    /// The report (JSON form).
    pub report: DumpReport,
    /// The entries themselves (for previews).
    pub entries: Vec<Entry>,
    /// `verify`'s hard state when it succeeded.
    pub verify_state: Option<HardState>,
}

/// What etcd's `ReadAll` returns next to an error: everything on snapshot-not-found,
/// the hard state only on slice-out-of-range, nothing on any other error.
fn read_all_like_etcd(r: Result<ReadAll, Error>) -> (ReadAll, Option<ErrorInfo>) {
    match r {
        Ok(all) => (all, None),
        Err(e) => {
            let info = ErrorInfo::from(&e);
            let kind = e.kind();
            let partial = e.into_partial().unwrap_or_default();
            let all = match kind {
                ErrorKind::SnapshotNotFound => partial,
                ErrorKind::SliceOutOfRange => ReadAll {
                    metadata: None,
                    hard_state: partial.hard_state,
                    entries: Vec::new(),
                },
                _ => ReadAll::default(),
            };
            (all, Some(info))
        }
    }
}

/// Runs `open_for_read` + `read_all`, `verify` and `valid_snapshot_entries` on `dir`
/// at `snap`. Read-only: no locks, no writes.
pub fn dump(dir: &Path, snap: &Snapshot) -> Dump {
    let mut report = DumpReport {
        snapshot: SnapInfo::from(snap),
        metadata_nil: true,
        ..DumpReport::default()
    };
    let mut all = ReadAll::default();
    match wal::open_for_read(dir, snap) {
        Ok(w) => {
            let (a, err) = read_all_like_etcd(w.read_all());
            all = a;
            report.readall_error = err;
        }
        Err(e) => report.open_error = Some(ErrorInfo::from(&e)),
    }
    report.metadata_nil = all.metadata.is_none();
    report.metadata_hex = hex::encode(all.metadata.as_deref().unwrap_or_default());
    report.hardstate = HardStateInfo::from(&all.hard_state);
    report.entries = all.entries.iter().map(EntryInfo::from).collect();
    let mut verify_state = None;
    match wal::verify(dir, snap) {
        Ok(st) => verify_state = Some(st),
        Err(e) => report.verify.error = Some(ErrorInfo::from(&e)),
    }
    match wal::valid_snapshot_entries(dir) {
        Ok(v) => report.valid_snapshot_entries = v.iter().map(SnapInfo::from).collect(),
        Err(e) => report.valid_snapshot_entries_error = Some(ErrorInfo::from(&e)),
    }
    report.files = list_dir(dir);
    Dump {
        dir: dir.display().to_string(),
        report,
        entries: all.entries,
        verify_state,
    }
}

impl DumpReport {
    /// Every error in the report, labelled by the call that returned it.
    pub fn errors(&self) -> Vec<(&'static str, &ErrorInfo)> {
        [
            ("open_for_read", &self.open_error),
            ("read_all", &self.readall_error),
            ("verify", &self.verify.error),
            ("valid_snapshot_entries", &self.valid_snapshot_entries_error),
        ]
        .into_iter()
        .filter_map(|(what, e)| e.as_ref().map(|e| (what, e)))
        .collect()
    }

    /// The JSON document, laid out like the corpus files: one top-level key per line,
    /// one entry per line.
    pub fn to_json_text(&self) -> serde_json::Result<String> {
        use serde_json::to_string as j;
        let mut s = String::from("{\n");
        let mut field = |key: &str, value: String, last: bool| {
            s.push_str(&format!(
                " \"{key}\": {value}{}\n",
                if last { "" } else { "," }
            ));
        };
        field("snapshot", j(&self.snapshot)?, false);
        field("open_error", j(&self.open_error)?, false);
        field("metadata_hex", j(&self.metadata_hex)?, false);
        field("metadata_nil", j(&self.metadata_nil)?, false);
        field("hardstate", j(&self.hardstate)?, false);
        field("entries", json_lines(&self.entries)?, false);
        field("readall_error", j(&self.readall_error)?, false);
        field("verify", j(&self.verify)?, false);
        field(
            "valid_snapshot_entries",
            json_lines(&self.valid_snapshot_entries)?,
            false,
        );
        field(
            "valid_snapshot_entries_error",
            j(&self.valid_snapshot_entries_error)?,
            false,
        );
        field("files", json_lines(&self.files)?, true);
        s.push_str("}\n");
        Ok(s)
    }
}

/// A JSON array with one compact item per line (`[]` when empty).
fn json_lines<T: Serialize>(items: &[T]) -> serde_json::Result<String> {
    if items.is_empty() {
        return Ok("[]".to_string());
    }
    let lines = items
        .iter()
        .map(serde_json::to_string)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(format!("[\n  {}\n ]", lines.join(",\n  ")))
}

fn type_name(t: i32) -> String {
    match t {
        0 => "norm".to_string(),
        1 => "conf".to_string(),
        2 => "confv2".to_string(),
        other => format!("type{other}"),
    }
}

/// A short, printable preview of entry data.
pub fn preview(data: Option<&[u8]>, max: usize) -> String {
    let Some(d) = data else {
        return "<nil>".to_string();
    };
    if d.is_empty() {
        return "\"\"".to_string();
    }
    let head = &d[..d.len().min(max)];
    let printable = head.iter().filter(|b| (0x20..0x7f).contains(*b)).count();
    if printable * 2 >= head.len() {
        let text: String = head
            .iter()
            .map(|&b| {
                if (0x20..0x7f).contains(&b) {
                    b as char
                } else {
                    '.'
                }
            })
            .collect();
        let more = if d.len() > head.len() { "..." } else { "" };
        format!("{text}{more}")
    } else {
        let n = d.len().min(max / 2);
        let more = if d.len() > n { "..." } else { "" };
        format!("{}{more}", hex::encode(&d[..n]))
    }
}

fn error_line(e: &Option<ErrorInfo>) -> String {
    match e {
        None => "ok".to_string(),
        Some(e) => format!("ERROR {}", e.line()),
    }
}

impl Dump {
    /// Whether any call returned an error.
    pub fn has_errors(&self) -> bool {
        !self.report.errors().is_empty()
    }

    /// Writes the dump as text: a table of entries (like etcd-dump-logs), then the
    /// hard state, the verify result and the valid snapshots.
    pub fn write_text(&self, out: &mut dyn Write) -> std::io::Result<()> {
        let r = &self.report;
        writeln!(out, "WAL directory:  {}", self.dir)?;
        writeln!(
            out,
            "Snapshot:       index={} term={}",
            r.snapshot.index, r.snapshot.term
        )?;
        let segs: Vec<&String> = r.files.iter().filter(|f| f.ends_with(".wal")).collect();
        writeln!(
            out,
            "Files:          {} segment(s), {} file(s) in all",
            segs.len(),
            r.files.len()
        )?;
        if let Some(e) = &r.open_error {
            writeln!(out, "open_for_read:  ERROR {}", e.line())?;
        } else {
            let md = if r.metadata_nil {
                "nil".to_string()
            } else {
                format!("{} bytes {}", r.metadata_hex.len() / 2, r.metadata_hex)
            };
            writeln!(out, "Metadata:       {md}")?;
            let range = match (self.entries.first(), self.entries.last()) {
                (Some(a), Some(b)) => format!(" (index {}..{})", a.index, b.index),
                _ => String::new(),
            };
            writeln!(out, "Entries:        {}{range}", self.entries.len())?;
            writeln!(out)?;
            writeln!(
                out,
                "{:>8} {:>10}  {:<6} {:>8}  data",
                "term", "index", "type", "size"
            )?;
            for e in &self.entries {
                writeln!(
                    out,
                    "{:>8} {:>10}  {:<6} {:>8}  {}",
                    e.term,
                    e.index,
                    type_name(e.r#type),
                    e.data.as_ref().map_or(0, |d| d.len()),
                    preview(e.data.as_deref(), 48)
                )?;
            }
            writeln!(out)?;
        }
        writeln!(
            out,
            "Hard state:     term={} vote={} commit={}",
            r.hardstate.term, r.hardstate.vote, r.hardstate.commit
        )?;
        if r.open_error.is_none() {
            writeln!(out, "read_all:       {}", error_line(&r.readall_error))?;
        }
        match (&r.verify.error, &self.verify_state) {
            (None, Some(h)) => writeln!(
                out,
                "verify:         ok (hard state term={} vote={} commit={})",
                h.term, h.vote, h.commit
            )?,
            (e, _) => writeln!(out, "verify:         {}", error_line(e))?,
        }
        if let Some(e) = &r.valid_snapshot_entries_error {
            writeln!(out, "Valid snapshots: ERROR {}", e.line())?;
        } else {
            writeln!(
                out,
                "Valid snapshots: {} (index/term)",
                r.valid_snapshot_entries.len()
            )?;
            for chunk in r.valid_snapshot_entries.chunks(8) {
                let line: Vec<String> = chunk
                    .iter()
                    .map(|s| format!("{}/{}", s.index, s.term))
                    .collect();
                writeln!(out, "  {}", line.join("  "))?;
            }
        }
        Ok(())
    }
}
