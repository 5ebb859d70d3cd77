//! Bad inputs: every command fails cleanly (exit 1, the error kind on stderr, file
//! and offset where they exist) or, for a torn tail, succeeds as etcd does. Nothing
//! panics (the `walctl` helper asserts it on every run).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use common::{copy_case, flip_entry_byte, kind, segments, tear_basic, walctl, BASIC_END};

const READERS: [&[&str]; 6] = [
    &["dump"],
    &["dump", "--json"],
    &["dump", "--raw"],
    &["verify"],
    &["stat"],
    &["snapshots"],
];

/// Every read-only command on `dir` exits 1 naming `kind` on stderr; `dump --json`
/// still prints one JSON document with `open_error` of that kind.
fn all_fail_with(dir: &Path, want: &str) {
    let d = dir.to_str().unwrap();
    for cmd in READERS.iter().chain([&["repair"][..]].iter()) {
        let mut args: Vec<&str> = cmd.to_vec();
        args.push(d);
        let run = walctl(&args);
        assert_eq!(run.code, 1, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(want), "{args:?}: stderr {}", run.stderr);
    }
    let run = walctl(&["dump", "--json", d]);
    let v = run.json();
    assert_eq!(kind(&v["open_error"]), Some(want));
    assert_eq!(kind(&v["verify"]["error"]), Some(want));
    assert_eq!(v["entries"].as_array().unwrap().len(), 0);
}

#[test]
fn missing_dir() {
    let tmp = tempfile::tempdir().unwrap();
    all_fail_with(&tmp.path().join("nope"), "io");
    assert!(!tmp.path().join("nope").exists(), "nothing created");
}

#[test]
fn file_instead_of_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("file.wal");
    std::fs::write(&f, b"not a directory").unwrap();
    all_fail_with(&f, "io");
}

#[test]
fn empty_dir() {
    let tmp = tempfile::tempdir().unwrap();
    all_fail_with(tmp.path(), "file_not_found");
}

#[test]
fn dir_with_only_foreign_files() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("README"), b"hello").unwrap();
    std::fs::write(tmp.path().join("0.tmp"), [0u8; 64]).unwrap();
    all_fail_with(tmp.path(), "file_not_found");
    let v = walctl(&["dump", "--json", tmp.path().to_str().unwrap()]).json();
    assert_eq!(v["files"], serde_json::json!(["0.tmp", "README"]));
}

#[test]
fn torn_tail_is_tolerated_when_reading_and_reported_by_stat() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = copy_case("basic", tmp.path(), "torn");
    let seg = tear_basic(&dir);
    let before = std::fs::read(&seg).unwrap();
    let d = dir.to_str().unwrap();

    let run = walctl(&["dump", "--json", d]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let v = run.json();
    assert!(v["readall_error"].is_null());
    assert!(v["verify"]["error"].is_null());
    assert_eq!(v["entries"].as_array().unwrap().len(), 100);
    assert_eq!(v["hardstate"]["commit"], 100);

    assert_eq!(walctl(&["verify", d]).code, 0);
    assert_eq!(walctl(&["dump", d]).code, 0);

    let run = walctl(&["stat", "--json", d]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let st = run.json();
    assert_eq!(st["torn_tail"], true);
    assert_eq!(st["segments"][0]["torn"], true);
    assert_eq!(st["segments"][0]["torn_offset"], BASIC_END);
    assert_eq!(st["segments"][0]["used_bytes"], BASIC_END);
    assert_eq!(st["entries"], 100);
    let text = walctl(&["stat", d]);
    assert!(
        text.stdout.contains(&format!("TORN at {BASIC_END}")),
        "{}",
        text.stdout
    );

    let raw = walctl(&["dump", "--raw", d]);
    assert_eq!(raw.code, 0);
    assert!(raw.stdout.contains("end: torn tail"), "{}", raw.stdout);

    assert_eq!(
        std::fs::read(&seg).unwrap(),
        before,
        "read-only commands wrote"
    );
}

#[test]
fn crc_mismatch_in_the_middle() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = copy_case("cut", tmp.path(), "crc");
    let (seg, offset) = flip_entry_byte(&dir, "cut", 2);
    let name = seg.file_name().unwrap().to_str().unwrap();
    let d = dir.to_str().unwrap();

    let run = walctl(&["dump", "--json", d]);
    assert_eq!(run.code, 1);
    let v = run.json();
    let e = &v["readall_error"];
    assert_eq!(kind(e), Some("crc_mismatch"));
    assert!(e["file"].as_str().unwrap().ends_with(name), "{e}");
    assert_eq!(e["offset"], offset);
    assert_eq!(kind(&v["verify"]["error"]), Some("crc_mismatch"));
    assert_eq!(
        v["entries"].as_array().unwrap().len(),
        0,
        "etcd returns no entries"
    );
    assert!(run.stderr.contains("crc_mismatch") && run.stderr.contains(name));

    let run = walctl(&["verify", d]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("crc_mismatch"), "{}", run.stderr);
    assert!(run.stderr.contains(name) && run.stderr.contains(&format!("offset {offset}")));

    let run = walctl(&["stat", "--json", d]);
    assert_eq!(run.code, 1);
    let st = run.json();
    assert_eq!(kind(&st["error"]), Some("crc_mismatch"));
    assert_eq!(st["segments"][0]["crc_errors"], 1);
    assert_eq!(st["segments"][0]["first_crc_error_offset"], offset);
    assert_eq!(
        st["segments"].as_array().unwrap().len(),
        13,
        "every segment still read"
    );

    // --raw goes on past the damaged record and flags only it.
    let run = walctl(&["dump", "--raw", "--json", d]);
    assert_eq!(run.code, 1);
    let raw = run.json();
    let bad: Vec<&serde_json::Value> = raw["frames"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["crc_ok"] == false)
        .collect();
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert_eq!(bad[0]["offset"], offset);
    assert_eq!(raw["end"], "clean");
    let total: usize = common::read_json(&common::corpus().join("cut.frames.json"))
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["frames"].as_array().unwrap().len())
        .sum();
    assert_eq!(raw["frames"].as_array().unwrap().len(), total);
}

#[test]
fn missing_middle_segment() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = copy_case("cut", tmp.path(), "gap");
    let segs = segments(&dir);
    let gone = segs[5].clone();
    std::fs::remove_file(&gone).unwrap();
    let d = dir.to_str().unwrap();

    let run = walctl(&["dump", "--json", d]);
    assert_eq!(run.code, 1);
    let v = run.json();
    assert_eq!(kind(&v["open_error"]), Some("file_not_found"));
    assert_eq!(kind(&v["verify"]["error"]), Some("file_not_found"));
    assert_eq!(v["files"].as_array().unwrap().len(), 12);

    let run = walctl(&["verify", d]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("file_not_found"), "{}", run.stderr);

    let run = walctl(&["stat", "--json", d]);
    assert_eq!(run.code, 1);
    let st = run.json();
    assert_eq!(kind(&st["error"]), Some("file_not_found"));
    let after = segs[6].file_name().unwrap().to_str().unwrap();
    assert!(
        st["error"]["file"].as_str().unwrap().ends_with(after),
        "{}",
        st["error"]
    );
}

#[test]
fn garbage_segments_do_not_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let mut x: u64 = 0x1234_5678_9abc_def1;
    for (i, name) in [
        "0000000000000000-0000000000000000.wal",
        "0000000000000001-0000000000000010.wal",
    ]
    .iter()
    .enumerate()
    {
        let bytes: Vec<u8> = (0..20_000 + i * 777)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        std::fs::write(tmp.path().join(name), bytes).unwrap();
    }
    // A length field claiming far more than the file holds, then one claiming u64::MAX.
    let third = tmp.path().join("0000000000000002-0000000000000020.wal");
    let mut b = 0x00ff_ffff_ffff_fff0u64.to_le_bytes().to_vec();
    b.extend_from_slice(&[1u8; 100]);
    b.extend_from_slice(&u64::MAX.to_le_bytes());
    std::fs::write(&third, b).unwrap();
    let d = tmp.path().to_str().unwrap();
    for cmd in READERS {
        let mut args = cmd.to_vec();
        args.push(d);
        let run = walctl(&args);
        assert!(run.code == 0 || run.code == 1, "{args:?}: {}", run.code);
    }
    let run = walctl(&["dump", "--json", d]);
    assert!(run.json().is_object());
}
