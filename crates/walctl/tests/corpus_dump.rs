//! `walctl dump --json` against every expected file of the etcd 3.4.23 corpus, with
//! the WAL given as a bare WAL dir, as an etcd data dir (`X/member/wal`) and, for
//! `server-a`, as the dir holding `wal/`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};

use common::{case_dir, copy_dir, corpus, kind, kind_of, read_json, walctl};
use serde_json::Value;

/// (expected file name, case)
fn expected_files() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(corpus()).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        if let Some(stem) = name.strip_suffix(".expected.json") {
            let case = stem.split('.').next().unwrap().to_string();
            out.push((name, case));
        }
    }
    out.sort();
    out
}

fn check_error(what: &str, want: &Value, got: &Value) {
    let want = want.as_str().map(kind_of);
    assert_eq!(kind(got), want, "{what}: got {got}");
}

fn snap_args(want: &Value) -> Vec<String> {
    let (i, t) = (
        want["snapshot"]["index"].as_u64().unwrap(),
        want["snapshot"]["term"].as_u64().unwrap(),
    );
    vec![
        "--snap-index".into(),
        i.to_string(),
        "--snap-term".into(),
        t.to_string(),
    ]
}

fn compare(what: &str, want: &Value, dir: &Path) -> usize {
    let mut args = vec!["dump".to_string(), "--json".to_string()];
    args.extend(snap_args(want));
    args.push(dir.display().to_string());
    let run = walctl(&args);
    let got = run.json();

    let keys = [
        "snapshot",
        "open_error",
        "metadata_hex",
        "metadata_nil",
        "hardstate",
        "entries",
        "readall_error",
        "verify",
        "valid_snapshot_entries",
        "valid_snapshot_entries_error",
        "files",
    ];
    let got_keys: Vec<&str> = got
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut sorted_keys = keys.to_vec();
    sorted_keys.sort();
    let mut got_sorted = got_keys.clone();
    got_sorted.sort();
    assert_eq!(got_sorted, sorted_keys, "{what}: keys (no write_mode)");

    assert_eq!(got["snapshot"], want["snapshot"], "{what}");
    check_error(
        &format!("{what} open"),
        &want["open_error"],
        &got["open_error"],
    );
    check_error(
        &format!("{what} read_all"),
        &want["readall_error"],
        &got["readall_error"],
    );
    check_error(
        &format!("{what} verify"),
        &want["verify"]["error"],
        &got["verify"]["error"],
    );
    check_error(
        &format!("{what} vse"),
        &want["valid_snapshot_entries_error"],
        &got["valid_snapshot_entries_error"],
    );
    for key in [
        "metadata_hex",
        "metadata_nil",
        "hardstate",
        "valid_snapshot_entries",
        "files",
    ] {
        assert_eq!(got[key], want[key], "{what}: {key}");
    }
    let (w, g) = (
        want["entries"].as_array().unwrap(),
        got["entries"].as_array().unwrap(),
    );
    assert_eq!(g.len(), w.len(), "{what}: entry count");
    for (a, b) in g.iter().zip(w) {
        assert_eq!(a, b, "{what}: entry");
    }
    // Errors that etcd places in a file carry the file and offset.
    if let Some("snapshot_mismatch") = kind(&got["readall_error"]) {
        assert!(got["readall_error"]["file"].as_str().is_some(), "{what}");
        assert!(got["readall_error"]["offset"].as_u64().is_some(), "{what}");
    }
    let any_error = [
        "open_error",
        "readall_error",
        "valid_snapshot_entries_error",
    ]
    .iter()
    .any(|k| !want[*k].is_null())
        || !want["verify"]["error"].is_null();
    assert_eq!(
        run.code,
        i32::from(any_error),
        "{what}: exit code\n{}",
        run.stderr
    );
    g.len()
}

/// `tmp/data/member/wal` holding a copy of the segments: an etcd data dir.
fn as_data_dir(case: &str, tmp: &Path) -> PathBuf {
    let data = tmp.join(format!("{case}-data"));
    copy_dir(&case_dir(case), &data.join("member").join("wal"));
    data
}

#[test]
fn dump_json_matches_etcd_for_every_expected_file() {
    let cases = expected_files();
    assert_eq!(cases.len(), 12, "every expected file of the corpus");
    let tmp = tempfile::tempdir().unwrap();
    let mut entries = 0;
    for (file, case) in &cases {
        let want = read_json(&corpus().join(file));
        entries += compare(&format!("{file} (wal dir)"), &want, &case_dir(case));
        let data = as_data_dir(case, tmp.path());
        entries += compare(&format!("{file} (data dir)"), &want, &data);
        if case == "server-a" {
            compare(
                &format!("{file} (dir with wal/)"),
                &want,
                &corpus().join(case),
            );
        }
    }
    assert!(entries > 6000, "{entries}");
}

#[test]
fn dump_json_is_laid_out_like_the_corpus() {
    // Apart from `write_mode` (walctl never writes) the document is byte-identical.
    for case in ["basic", "cut", "emptydata", "snapshots", "server-a"] {
        let run = walctl(&["dump", "--json", case_dir(case).to_str().unwrap()]);
        assert_eq!(run.code, 0, "{case}: {}", run.stderr);
        let want = std::fs::read_to_string(corpus().join(format!("{case}.expected.json"))).unwrap();
        let want_lines: Vec<&str> = want
            .lines()
            .filter(|l| !l.starts_with(" \"write_mode\""))
            .collect();
        let mut want_text = want_lines.join("\n");
        // The line before `write_mode` loses its trailing comma.
        want_text = want_text.replace(" ],\n}", " ]\n}");
        assert_eq!(run.stdout.trim_end(), want_text.trim_end(), "{case}");
    }
}

/// `--newest-snap` starts where a restarting etcd does: the real server's WAL gives
/// exactly etcd's answer at its newest snapshot (`server-a.at-newest-snap`).
#[test]
fn newest_snap_is_where_etcd_restarts() {
    let want = read_json(&corpus().join("server-a.at-newest-snap.expected.json"));
    let dir = corpus().join("server-a");
    let newest = walctl(&["dump", "--json", "--newest-snap", dir.to_str().unwrap()]).json();
    assert_eq!(newest["snapshot"], want["snapshot"]);
    assert_eq!(
        newest["entries"].as_array().unwrap().len(),
        want["entries"].as_array().unwrap().len()
    );
    assert_eq!(newest["hardstate"], want["hardstate"]);
    let mut args = vec!["dump".to_string(), "--json".to_string()];
    args.extend(snap_args(&want));
    args.push(dir.display().to_string());
    assert_eq!(
        newest,
        walctl(&args).json(),
        "the same document as with explicit flags"
    );
}
