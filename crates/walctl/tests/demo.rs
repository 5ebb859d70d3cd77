//! `walctl demo`: append, tear the tail, repair, reopen and check, ending in PASS.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{segments, walctl};

#[test]
fn demo_passes_on_a_temp_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let run = walctl(&[
        "demo",
        tmp.path().to_str().unwrap(),
        "--entries",
        "400",
        "--segment-size",
        "16384",
    ]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let last = run.stdout.lines().last().unwrap();
    assert!(last.starts_with("PASS"), "{}", run.stdout);
    assert!(!run.stdout.contains("[FAIL]"), "{}", run.stdout);
    for step in [
        "[1/5]",
        "[2/5]",
        "[3/5]",
        "[4/5]",
        "[5/5]",
        "entries/s",
        "MB/s",
        "saves/s",
    ] {
        assert!(run.stdout.contains(step), "{step}: {}", run.stdout);
    }
    assert!(run.stdout.contains("unexpected_eof"), "{}", run.stdout);

    // What it left: several segments, the repaired one's backup, and a WAL that
    // walctl reads cleanly with the 420 entries.
    let wal = tmp.path().join("wal");
    assert!(segments(&wal).len() >= 3, "{:?}", segments(&wal));
    let v = walctl(&["dump", "--json", wal.to_str().unwrap()]).json();
    assert_eq!(v["entries"].as_array().unwrap().len(), 420);
    assert!(v["files"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f.as_str().unwrap().ends_with(".broken")));
    let st = walctl(&["stat", "--json", tmp.path().to_str().unwrap()]);
    assert_eq!(st.code, 0);
    assert_eq!(st.json()["torn_tail"], false);

    // The directory now holds a WAL: a second run refuses to touch it.
    let run = walctl(&["demo", tmp.path().to_str().unwrap(), "--entries", "10"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stdout.lines().last().unwrap().starts_with("FAIL"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("already exists"), "{}", run.stdout);
}

#[test]
fn demo_in_its_own_temporary_directory() {
    let run = walctl(&["demo", "--entries", "60"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.lines().last().unwrap().starts_with("PASS"));
}
