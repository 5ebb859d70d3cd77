//! Shared by `tests/interop.rs` and `tests/interop_server.rs`: building the Go
//! oracle (`tests/interop/oracle/main.go`, linked against etcd 3.4's `wal`
//! package), running it, and building the same JSON document from our `wal` API
//! so whole documents can be compared (errors by kind).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::{json, Value};
use wal::raftpb::Entry;
use wal::walpb::Snapshot;
use wal::{Error, ErrorKind, ReadAll};
use wal_suite::sha256_hex;

/// Where Debian's `golang-etcd-server-dev` installs etcd's Go sources.
pub const GOPATH: &str = "/usr/share/gocode";
const INSTALL_HINT: &str = "apt-get install golang-go golang-etcd-server-dev";

/// Whether `CI=true`: missing tools are then a failure, not a skip.
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Prints a loud SKIPPED line, or fails under `CI=true`.
pub fn skip(test: &str, why: &str, hint: &str) {
    let msg = format!("{test}: SKIPPED: {why} ({hint})");
    if under_ci() {
        panic!("{msg}; CI=true requires it");
    }
    // Straight to the process's stderr: libtest captures `eprintln!` of passing
    // tests, and a skip must be seen.
    let bar = "*".repeat(76);
    let _ = std::io::Write::write_all(
        &mut std::io::stderr().lock(),
        format!("\n{bar}\n*** {msg}\n{bar}\n\n").as_bytes(),
    );
}

/// The project root (the root package's manifest dir).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn have(cmd: &str, arg: &str) -> bool {
    Command::new(cmd)
        .arg(arg)
        .output()
        .is_ok_and(|o| o.status.success())
}

static ORACLE: OnceLock<Result<PathBuf, String>> = OnceLock::new();

/// Builds the oracle once per test process; `None` (after a loud SKIPPED, or a
/// panic under `CI=true`) when Go or etcd's sources are not installed.
pub fn oracle(test: &str) -> Option<PathBuf> {
    let built = ORACLE.get_or_init(build_oracle);
    match built {
        Ok(p) => Some(p.clone()),
        Err(why) => {
            skip(test, why, INSTALL_HINT);
            None
        }
    }
}

fn build_oracle() -> Result<PathBuf, String> {
    if !have("go", "version") {
        return Err("`go` is not installed".into());
    }
    let wal_src = Path::new(GOPATH).join("src/go.etcd.io/etcd/wal/wal.go");
    if !wal_src.exists() {
        return Err(format!(
            "etcd's Go sources are missing ({})",
            wal_src.display()
        ));
    }
    // Built fresh on every run, in the target's temp area; Go's build cache lives
    // next to it (the GOPATH is read-only, HOME may be too).
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("interop-oracle");
    let cache = base.join("gocache");
    let gotmp = base.join("gotmp");
    std::fs::create_dir_all(&cache).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(&gotmp).map_err(|e| e.to_string())?;
    let out = base.join(format!("oracle.{}", std::process::id()));
    let started = std::time::Instant::now();
    let result = Command::new("go")
        .args(["build", "-o"])
        .arg(&out)
        .arg(".")
        .current_dir(root().join("tests/interop/oracle"))
        .env("GO111MODULE", "off")
        .env("GOPATH", GOPATH)
        .env("GOCACHE", &cache)
        .env("GOTMPDIR", &gotmp)
        .env("GOFLAGS", "")
        .env("GOENV", "off")
        .env("GOTOOLCHAIN", "local")
        .output()
        .map_err(|e| format!("running go build: {e}"))?;
    if !result.status.success() {
        // Go and the sources are there: a failing build is a real failure.
        panic!(
            "building the etcd oracle failed:\n{}",
            String::from_utf8_lossy(&result.stderr)
        );
    }
    let path = base.join("oracle");
    std::fs::rename(&out, &path).map_err(|e| e.to_string())?;
    eprintln!(
        "interop: built the etcd 3.4 oracle in {:.1}s: {}",
        started.elapsed().as_secs_f64(),
        path.display()
    );
    Ok(path)
}

fn run(oracle: &Path, args: &[&str]) -> String {
    let out = Command::new(oracle)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running oracle {args:?}: {e}"));
    assert!(
        out.status.success(),
        "oracle {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `oracle write SCENARIO.json DIR`.
pub fn oracle_write(oracle: &Path, scenario: &Path, dir: &Path) {
    run(oracle, &["write", path_str(scenario), path_str(dir)]);
}

/// `oracle read DIR I T`: etcd's document, raw (error strings as etcd gives them).
pub fn oracle_read_raw(oracle: &Path, dir: &Path, snap: (u64, u64)) -> Value {
    let text = run(
        oracle,
        &[
            "read",
            path_str(dir),
            &snap.0.to_string(),
            &snap.1.to_string(),
        ],
    );
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("oracle output: {e}\n{text}"))
}

/// `oracle read DIR I T` with error strings mapped to our error kinds.
pub fn oracle_read(oracle: &Path, dir: &Path, snap: (u64, u64)) -> Value {
    let mut doc = oracle_read_raw(oracle, dir, snap);
    for p in [
        "/open_error",
        "/readall_error",
        "/verify/error",
        "/valid_snapshot_entries_error",
        "/write_mode/open_error",
        "/write_mode/readall_error",
    ] {
        if let Some(v) = doc.pointer_mut(p) {
            if let Some(s) = v.as_str() {
                *v = Value::String(etcd_kind(s));
            }
        }
    }
    doc
}

/// `oracle repair DIR`: etcd's `wal.Repair` result.
pub fn oracle_repair(oracle: &Path, dir: &Path) -> bool {
    let text = run(oracle, &["repair", path_str(dir)]);
    let v: Value = serde_json::from_str(&text).unwrap();
    v["repaired"].as_bool().unwrap()
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// etcd 3.4's error string to our `ErrorKind::as_str()`. Unknown strings are kept
/// (prefixed) so that a comparison shows them instead of hiding them.
pub fn etcd_kind(etcd: &str) -> String {
    let k = match etcd {
        s if s.contains("file not found") => "file_not_found",
        s if s.contains("crc mismatch") => "crc_mismatch",
        s if s.contains("unexpected EOF") => "unexpected_eof",
        s if s.contains("snapshot mismatch") => "snapshot_mismatch",
        s if s.contains("snapshot not found") => "snapshot_not_found",
        s if s.contains("conflicting metadata") => "metadata_conflict",
        s if s.contains("slice bounds out of range") => "slice_out_of_range",
        s if s.contains("decoder not found") => "decoder_not_found",
        s if s.starts_with("proto:") || s.contains("unexpected block type") => "malformed",
        s if s.contains("resource temporarily unavailable") => "locked",
        other => return format!("etcd:{other}"),
    };
    k.to_string()
}

fn opt_kind(e: Option<ErrorKind>) -> Value {
    e.map_or(Value::Null, |k| Value::String(k.as_str().to_string()))
}

/// What etcd's `ReadAll` hands back for a result of ours, and the error's kind:
/// everything on `ErrSnapshotNotFound`; on `ErrSliceOutOfRange` the hard state read
/// so far (etcd does not reset it) and nothing else; nothing (zeroed state) on
/// other errors.
pub fn as_etcd(r: Result<ReadAll, Error>) -> (ReadAll, Option<ErrorKind>) {
    let e = match r {
        Ok(all) => return (all, None),
        Err(e) => e,
    };
    let kind = e.kind();
    let all = match kind {
        ErrorKind::SnapshotNotFound => e.into_partial().unwrap_or_default(),
        ErrorKind::SliceOutOfRange => ReadAll {
            metadata: None,
            hard_state: e.into_partial().unwrap_or_default().hard_state,
            entries: Vec::new(),
        },
        _ => ReadAll::default(),
    };
    (all, Some(kind))
}

fn hard_state_json(st: &wal::raftpb::HardState) -> Value {
    json!({"term": st.term, "vote": st.vote, "commit": st.commit})
}

fn entry_json(e: &Entry) -> Value {
    let data = e.data.as_deref().unwrap_or_default();
    json!({
        "index": e.index,
        "term": e.term,
        "type": i64::from(e.r#type),
        "data_len": data.len(),
        "data_nil": e.data.is_none(),
        "data_sha256": sha256_hex(data),
    })
}

/// Sorted names of every entry in `dir` (Go's `fileutil.ReadDir`).
pub fn list_dir(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Copies the regular files of `from` into a new directory `to`.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for name in list_dir(from) {
        let p = from.join(&name);
        if p.is_file() {
            std::fs::copy(&p, to.join(&name))
                .unwrap_or_else(|e| panic!("copying {}: {e}", p.display()));
        }
    }
}

/// Our side of `oracle read`: the same document from our `wal` API, error kinds
/// in place of etcd's strings.
pub fn our_read(dir: &Path, snap: (u64, u64)) -> Value {
    let s = Snapshot {
        index: snap.0,
        term: snap.1,
        conf_state: None,
    };
    let (open_err, all, read_err) = match wal::open_for_read(dir, &s) {
        Err(e) => (Some(e), ReadAll::default(), None),
        Ok(w) => {
            let (all, err) = as_etcd(w.read_all());
            (None, all, err)
        }
    };
    let verify = wal::verify(dir, &s);
    let (vse, vse_err) = match wal::valid_snapshot_entries(dir) {
        Ok(v) => (v, None),
        Err(e) => (Vec::new(), Some(e)),
    };
    let files = list_dir(dir);

    // Write mode on a throw-away copy (read_all zeroes the tail there).
    let tmp = tempfile::tempdir().unwrap();
    let copy = tmp.path().join("wal");
    copy_dir(dir, &copy);
    let (open_err2, all2, read_err2) =
        match wal::Options::new().segment_size(64 * 1024).open(&copy, &s) {
            Err(e) => (Some(e), ReadAll::default(), None),
            Ok(w) => {
                let (all2, err2) = as_etcd(w.read_all());
                // Close errors are not part of the document (the oracle ignores them too).
                let _ = w.close();
                (None, all2, err2)
            }
        };

    json!({
        "snapshot": {"index": snap.0, "term": snap.1},
        "open_error": opt_kind(open_err.as_ref().map(Error::kind)),
        "metadata_hex": hex::encode(all.metadata.as_deref().unwrap_or_default()),
        "metadata_nil": all.metadata.is_none(),
        "hardstate": hard_state_json(&all.hard_state),
        "entries": all.entries.iter().map(entry_json).collect::<Vec<_>>(),
        "readall_error": opt_kind(read_err),
        "verify": {"error": opt_kind(verify.as_ref().err().map(Error::kind))},
        "valid_snapshot_entries": vse.iter().map(|s| json!({"index": s.index, "term": s.term})).collect::<Vec<_>>(),
        "valid_snapshot_entries_error": opt_kind(vse_err.as_ref().map(Error::kind)),
        "files": files,
        "write_mode": {
            "open_error": opt_kind(open_err2.as_ref().map(Error::kind)),
            "readall_error": opt_kind(read_err2),
            "hardstate": hard_state_json(&all2.hard_state),
            "entries_count": all2.entries.len(),
            "same_as_read_mode": all2.entries == all.entries,
        },
    })
}

/// The first place two JSON documents differ, as a JSON pointer with both values.
pub fn first_diff(a: &Value, b: &Value) -> Option<String> {
    fn walk(a: &Value, b: &Value, path: &mut String) -> Option<String> {
        match (a, b) {
            (Value::Object(x), Value::Object(y)) => {
                let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
                keys.sort();
                keys.dedup();
                for k in keys {
                    let n = path.len();
                    path.push('/');
                    path.push_str(k);
                    let r = match (x.get(k), y.get(k)) {
                        (Some(p), Some(q)) => walk(p, q, path),
                        (p, q) => Some(format!("{path}: {p:?} vs {q:?}")),
                    };
                    if r.is_some() {
                        return r;
                    }
                    path.truncate(n);
                }
                None
            }
            (Value::Array(x), Value::Array(y)) => {
                for (i, (p, q)) in x.iter().zip(y).enumerate() {
                    let n = path.len();
                    path.push_str(&format!("/{i}"));
                    if let Some(r) = walk(p, q, path) {
                        return Some(r);
                    }
                    path.truncate(n);
                }
                (x.len() != y.len()).then(|| format!("{path}: length {} vs {}", x.len(), y.len()))
            }
            _ => (a != b).then(|| format!("{path}: {a} vs {b}")),
        }
    }
    walk(a, b, &mut String::new())
}

/// Compares two directories file by file (names, lengths, bytes); `Err` names the
/// first difference.
pub fn same_files(a: &Path, b: &Path) -> Result<usize, String> {
    let na = list_dir(a);
    let nb = list_dir(b);
    if na != nb {
        return Err(format!("file names differ: {na:?} vs {nb:?}"));
    }
    for name in &na {
        let x = std::fs::read(a.join(name)).unwrap();
        let y = std::fs::read(b.join(name)).unwrap();
        if let Some(i) = x.iter().zip(&y).position(|(p, q)| p != q) {
            return Err(format!(
                "{name}: first differing byte at offset {i} ({:#04x} vs {:#04x})",
                x[i], y[i]
            ));
        }
        if x.len() != y.len() {
            return Err(format!("{name}: length {} vs {}", x.len(), y.len()));
        }
    }
    Ok(na.len())
}

/// A frame of a segment file: its offset, its end (padding included), and where
/// the record's `data` field lies (if any).
#[derive(Debug, Clone)]
pub struct Frame {
    pub offset: u64,
    pub end: u64,
    pub rec_type: u64,
    pub data: Option<(u64, u64)>,
}

fn varint(b: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*at)?;
        *at += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Walks the frames of a segment up to the first zero length field or the end.
pub fn frames(bytes: &[u8]) -> Vec<Frame> {
    let mut out = Vec::new();
    let mut off = 0usize;
    while off + 8 <= bytes.len() {
        let len = u64::from_le_bytes(bytes[off..off + 8].try_into().unwrap());
        if len == 0 {
            break;
        }
        let rec = (len & 0x00ff_ffff_ffff_ffff) as usize;
        let pad = if (len as i64) < 0 {
            ((len >> 56) & 7) as usize
        } else {
            0
        };
        let end = off + 8 + rec + pad;
        if end > bytes.len() {
            break;
        }
        let body = &bytes[off + 8..off + 8 + rec];
        let mut at = 0;
        let mut rec_type = 0;
        let mut data = None;
        while at < body.len() {
            let Some(key) = varint(body, &mut at) else {
                break;
            };
            match key {
                0x08 => rec_type = varint(body, &mut at).unwrap_or(0),
                0x10 => {
                    varint(body, &mut at);
                }
                0x1a => {
                    let n = varint(body, &mut at).unwrap_or(0) as usize;
                    let start = off + 8 + at;
                    data = Some((start as u64, (start + n) as u64));
                    at += n;
                }
                _ => break,
            }
        }
        out.push(Frame {
            offset: off as u64,
            end: end as u64,
            rec_type,
            data,
        });
        off = end;
    }
    out
}

/// The `.wal` files of `dir`, sorted.
pub fn wal_paths(dir: &Path) -> Vec<PathBuf> {
    list_dir(dir)
        .into_iter()
        .filter(|n| n.ends_with(".wal"))
        .map(|n| dir.join(n))
        .collect()
}

// ---------------------------------------------------------------------------
// Corruptions of a copy

#[derive(Debug, Clone, Copy)]
pub enum Damage {
    /// Truncate the last segment in the middle of its last record.
    TruncateMid,
    /// Zero the last sector (512 bytes) of the last record.
    ZeroLastSector,
    /// Zero from the middle of the last record to the end of the file.
    ZeroTailFromMid,
    /// Flip a byte in the middle of an earlier record's data.
    FlipEarlier,
}

impl Damage {
    pub const ALL: [Damage; 4] = [
        Damage::TruncateMid,
        Damage::ZeroLastSector,
        Damage::ZeroTailFromMid,
        Damage::FlipEarlier,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Damage::TruncateMid => "truncate-mid",
            Damage::ZeroLastSector => "zero-last-sector",
            Damage::ZeroTailFromMid => "zero-tail",
            Damage::FlipEarlier => "flip-earlier",
        }
    }

    /// Damages the WAL in `dir`; a description, or `None` when not applicable.
    pub fn apply(self, dir: &Path) -> Option<String> {
        let files = wal_paths(dir);
        let last = files.last()?;
        let mut bytes = std::fs::read(last).unwrap();
        let fr = frames(&bytes);
        let lastf = fr.last()?.clone();
        let name = last.file_name().unwrap().to_string_lossy().into_owned();
        match self {
            Damage::TruncateMid => {
                let at = lastf.offset + (lastf.end - lastf.offset) / 2;
                bytes.truncate(at as usize);
                std::fs::write(last, &bytes).unwrap();
                Some(format!(
                    "{name} truncated at {at} (record at {})",
                    lastf.offset
                ))
            }
            Damage::ZeroLastSector => {
                let sector = ((lastf.end - 1) / 512) * 512;
                let from = sector.max(lastf.offset + 8);
                bytes[from as usize..lastf.end as usize].fill(0);
                std::fs::write(last, &bytes).unwrap();
                Some(format!("{name} zeroed [{from}, {})", lastf.end))
            }
            Damage::ZeroTailFromMid => {
                let from = lastf.offset + 8 + (lastf.end - lastf.offset - 8) / 2;
                bytes[from as usize..].fill(0);
                std::fs::write(last, &bytes).unwrap();
                Some(format!("{name} zeroed from {from} to the end"))
            }
            Damage::FlipEarlier => {
                // An entry with some data, not the last record; the last segment first.
                for path in files.iter().rev() {
                    let mut b = std::fs::read(path).unwrap();
                    let fr = frames(&b);
                    let cands: Vec<(u64, u64)> = fr
                        .iter()
                        .take(fr.len().saturating_sub(1))
                        .filter(|f| f.rec_type == 2)
                        .filter_map(|f| f.data.filter(|(s, e)| e - s >= 16))
                        .collect();
                    if let Some((s, e)) = cands.get(cands.len() / 2) {
                        let at = (s + (e - s) / 2) as usize;
                        b[at] ^= 0x5a;
                        std::fs::write(path, &b).unwrap();
                        let n = path.file_name().unwrap().to_string_lossy().into_owned();
                        return Some(format!("{n} byte {at} flipped"));
                    }
                }
                None
            }
        }
    }
}
