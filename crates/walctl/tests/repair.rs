//! `walctl repair`: truncates a torn tail (keeping a `.broken` copy), does nothing on a
//! clean WAL, refuses a WAL locked by another process or damaged otherwise, and
//! changes nothing when it fails.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use common::{
    case_dir, copy_case, copy_dir, flip_entry_byte, segments, tear_basic, walctl, BASIC_END,
};

fn broken_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".broken"))
        .collect()
}

#[test]
fn truncates_a_torn_tail_and_keeps_a_backup() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = copy_case("basic", tmp.path(), "torn");
    let seg = tear_basic(&dir);
    let torn = std::fs::read(&seg).unwrap();

    let run = walctl(&["repair", dir.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("truncated"), "{}", run.stdout);
    assert!(
        run.stdout.contains(&format!("offset {BASIC_END}")),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains(".broken"), "{}", run.stdout);

    assert_eq!(std::fs::metadata(&seg).unwrap().len(), BASIC_END);
    let backup = format!("{}.broken", seg.display());
    assert_eq!(
        std::fs::read(&backup).unwrap(),
        torn,
        "backup is the segment as it was"
    );
    assert_eq!(
        std::fs::read(&seg).unwrap(),
        torn[..BASIC_END as usize].to_vec()
    );

    // Now clean: everything reads, stat sees no torn tail, and a second repair is a no-op.
    let v = walctl(&["dump", "--json", dir.to_str().unwrap()]).json();
    assert_eq!(v["entries"].as_array().unwrap().len(), 100);
    let st = walctl(&["stat", "--json", dir.to_str().unwrap()]).json();
    assert_eq!(st["torn_tail"], false);
    let run = walctl(&["repair", dir.to_str().unwrap()]);
    assert_eq!(run.code, 0);
    assert!(run.stdout.contains("nothing to repair"), "{}", run.stdout);
}

#[test]
fn clean_wal_needs_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = copy_case("cut", tmp.path(), "clean");
    let before: Vec<Vec<u8>> = segments(&dir)
        .iter()
        .map(|s| std::fs::read(s).unwrap())
        .collect();
    let run = walctl(&["repair", dir.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("nothing to repair"), "{}", run.stdout);
    let after: Vec<Vec<u8>> = segments(&dir)
        .iter()
        .map(|s| std::fs::read(s).unwrap())
        .collect();
    assert_eq!(before, after);
    assert!(broken_files(&dir).is_empty());
}

#[test]
fn repairs_inside_an_etcd_data_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let wal = tmp.path().join("data").join("member").join("wal");
    copy_dir(&case_dir("basic"), &wal);
    let seg = tear_basic(&wal);
    let run = walctl(&["repair", tmp.path().join("data").to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), BASIC_END);
    assert_eq!(broken_files(&wal).len(), 1);
}

#[test]
fn locked_wal_fails_at_once_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = copy_case("basic", tmp.path(), "locked");
    let seg = tear_basic(&dir);
    let before = std::fs::read(&seg).unwrap();
    // The lock etcd takes (an OFD write lock), held by this process.
    let _lock =
        wal_fileutil::try_lock_file(&seg, &wal_fileutil::OpenOptions::read_write()).unwrap();

    let start = std::time::Instant::now();
    let run = walctl(&["repair", dir.to_str().unwrap()]);
    assert!(
        start.elapsed() < std::time::Duration::from_secs(10),
        "did not wait"
    );
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("locked by another process"),
        "{}",
        run.stderr
    );
    assert_eq!(std::fs::read(&seg).unwrap(), before);
    assert!(broken_files(&dir).is_empty());

    // Read-only commands take no lock: they work while etcd holds it.
    let run = walctl(&["dump", "--json", dir.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
}

#[test]
fn crc_damage_is_not_repaired() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = copy_case("basic", tmp.path(), "crc");
    let (seg, offset) = flip_entry_byte(&dir, "basic", 10);
    let before = std::fs::read(&seg).unwrap();
    let run = walctl(&["repair", dir.to_str().unwrap()]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("crc_mismatch"), "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!("offset {offset}")),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("nothing was changed"), "{}", run.stderr);
    assert_eq!(std::fs::read(&seg).unwrap(), before);
    assert!(broken_files(&dir).is_empty());
}
