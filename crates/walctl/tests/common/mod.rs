//! Helpers shared by the walctl integration tests: running the binary, the corpus,
//! copies and damage.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// What one run of `walctl` returned.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The stdout as one JSON document.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}):\n{}", self.stdout))
    }
}

/// Runs `walctl ARGS`, asserting it did not panic.
pub fn walctl<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_walctl"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("running walctl");
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(
        !run.stderr.contains("panicked") && run.code != 101 && run.code >= 0,
        "walctl {:?} panicked or was killed (code {}):\n{}",
        args.iter()
            .map(|a| a.as_ref().to_string_lossy().into_owned())
            .collect::<Vec<_>>(),
        run.code,
        run.stderr
    );
    run
}

/// The etcd 3.4.23 corpus.
pub fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/corpus")
}

/// The WAL directory of a corpus case.
pub fn case_dir(case: &str) -> PathBuf {
    if case == "server-a" {
        corpus().join(case).join("wal")
    } else {
        corpus().join(case)
    }
}

/// Copies the files of `from` into `to` (created).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
        }
    }
}

/// A copy of a corpus case's WAL in `tmp/NAME`.
pub fn copy_case(case: &str, tmp: &Path, name: &str) -> PathBuf {
    let to = tmp.join(name);
    copy_dir(&case_dir(case), &to);
    to
}

/// The sorted `.wal` files of `dir`.
pub fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .collect();
    v.sort();
    v
}

/// Reads a JSON file.
pub fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// End of the records of `basic`'s only segment (the rest is preallocated zeros).
pub const BASIC_END: u64 = 16864;

/// Writes a torn frame at `BASIC_END` of a copy of `basic`: a length field claiming a
/// 1000-byte record, 100 bytes of it, and the zeros that follow.
pub fn tear_basic(dir: &Path) -> PathBuf {
    let seg = segments(dir).pop().unwrap();
    let mut b = std::fs::read(&seg).unwrap();
    let off = BASIC_END as usize;
    assert!(b[off..].iter().all(|&x| x == 0));
    b[off..off + 8].copy_from_slice(&1000u64.to_le_bytes());
    b[off + 8..off + 108].fill(0xab);
    std::fs::write(&seg, b).unwrap();
    seg
}

/// (offset, record bytes) of the `nth` entry frame of segment `file` in
/// `CASE.frames.json`.
pub fn entry_frame(case: &str, file: usize, nth: usize) -> (u64, u64) {
    let frames = read_json(&corpus().join(format!("{case}.frames.json")));
    let f = frames[file]["frames"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["type"] == 2)
        .nth(nth)
        .unwrap();
    (
        f["offset"].as_u64().unwrap(),
        f["rec_bytes"].as_u64().unwrap(),
    )
}

/// Flips the last data byte of the `nth` entry record of the first segment.
pub fn flip_entry_byte(dir: &Path, case: &str, nth: usize) -> (PathBuf, u64) {
    let (offset, rec_bytes) = entry_frame(case, 0, nth);
    let seg = segments(dir).remove(0);
    let mut b = std::fs::read(&seg).unwrap();
    b[(offset + 8 + rec_bytes - 1) as usize] ^= 0xff;
    std::fs::write(&seg, b).unwrap();
    (seg, offset)
}

/// etcd's error string to walctl's kind.
pub fn kind_of(etcd: &str) -> &'static str {
    match etcd {
        s if s.contains("file not found") => "file_not_found",
        s if s.contains("crc mismatch") => "crc_mismatch",
        s if s.contains("unexpected EOF") => "unexpected_eof",
        s if s.contains("snapshot mismatch") => "snapshot_mismatch",
        s if s.contains("snapshot not found") => "snapshot_not_found",
        s if s.contains("conflicting metadata") => "metadata_conflict",
        s if s.contains("slice bounds out of range") => "slice_out_of_range",
        other => panic!("unmapped etcd error {other:?}"),
    }
}

/// The kind of a walctl error object (`None` for null).
pub fn kind(v: &Value) -> Option<&str> {
    if v.is_null() {
        return None;
    }
    assert!(
        v["message"].as_str().is_some_and(|m| !m.is_empty()),
        "error without message: {v}"
    );
    Some(
        v["kind"]
            .as_str()
            .unwrap_or_else(|| panic!("error without kind: {v}")),
    )
}
