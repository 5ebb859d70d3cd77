//! purge_once and the background Purger (etcd purge_test.go).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use wal_fileutil::{lock_file, os, purge_once, read_dir, spawn_purger, OpenOptions, OsFs};

fn names(range: std::ops::Range<usize>, suffix: &str) -> Vec<String> {
    range.map(|i| format!("{i}{suffix}")).collect()
}

fn create(dir: &Path, names: &[String]) {
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    common::touch_all(dir, &refs);
}

fn wait_for(dir: &Path, want: &[String]) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got = read_dir(dir).unwrap();
        if got == want {
            return;
        }
        assert!(Instant::now() < deadline, "got {got:?}, want {want:?}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn purge_once_keeps_newest_and_ignores_other_suffixes() {
    let tmp = tempfile::tempdir().unwrap();
    create(tmp.path(), &names(0..10, ".test"));
    create(tmp.path(), &["0.other".to_string()]);
    let report = purge_once(&OsFs, tmp.path(), ".test", 3).unwrap();
    let removed: Vec<_> = (0..7)
        .map(|i| tmp.path().join(format!("{i}.test")))
        .collect();
    assert_eq!(report.removed, removed);
    assert_eq!(report.locked, None);
    assert_eq!(
        read_dir(tmp.path()).unwrap(),
        ["0.other", "7.test", "8.test", "9.test"]
    );
    // nothing more to do
    let again = purge_once(&OsFs, tmp.path(), ".test", 3).unwrap();
    assert_eq!(again, Default::default());
    // max larger than the count, and max 0
    assert!(purge_once(&OsFs, tmp.path(), ".test", 10)
        .unwrap()
        .removed
        .is_empty());
    assert_eq!(
        purge_once(&OsFs, tmp.path(), ".other", 0)
            .unwrap()
            .removed
            .len(),
        1
    );
}

#[test]
fn purge_once_stops_at_locked_file() {
    let tmp = tempfile::tempdir().unwrap();
    create(tmp.path(), &names(0..10, ".test"));
    // a purge barrier at 5; the lock is held through another open file
    // description of this same process, which OFD locks tell apart
    let barrier = tmp.path().join("5.test");
    let l = lock_file(&barrier, &OpenOptions::write()).unwrap();
    let report = purge_once(&OsFs, tmp.path(), ".test", 3).unwrap();
    assert_eq!(report.removed.len(), 5);
    assert_eq!(report.locked.as_deref(), Some(barrier.as_path()));
    assert_eq!(read_dir(tmp.path()).unwrap(), names(5..10, ".test"));
    drop(l);
    let report = purge_once(&OsFs, tmp.path(), ".test", 3).unwrap();
    assert_eq!(report.removed.len(), 2);
    assert_eq!(report.locked, None);
    assert_eq!(read_dir(tmp.path()).unwrap(), names(7..10, ".test"));
}

#[test]
fn purge_once_missing_dir_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let err = purge_once(&OsFs, &tmp.path().join("missing"), ".test", 1).unwrap_err();
    assert!(err.is_not_found(), "{err}");
}

#[test]
fn purge_once_open_failure_is_returned() {
    // A sub-directory named like a purgeable file cannot be opened for
    // writing (EISDIR); etcd logs it and stops the pass, we return it.
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("0.test")).unwrap();
    create(tmp.path(), &names(1..3, ".test"));
    let err = purge_once(&OsFs, tmp.path(), ".test", 1).unwrap_err();
    assert_eq!(err.path(), tmp.path().join("0.test"));
    assert!(!err.is_locked());
    assert_eq!(read_dir(tmp.path()).unwrap().len(), 3, "nothing removed");
}

#[test]
fn purger_purges_as_files_appear() {
    // etcd: TestPurgeFile
    let tmp = tempfile::tempdir().unwrap();
    create(tmp.path(), &names(0..3, ".test"));
    let purger = spawn_purger(
        os(),
        tmp.path().to_owned(),
        ".test".into(),
        3,
        Duration::from_millis(1),
    );
    std::thread::sleep(Duration::from_millis(10));
    assert_eq!(read_dir(tmp.path()).unwrap(), names(0..3, ".test"));
    create(tmp.path(), &names(4..10, ".test"));
    wait_for(tmp.path(), &names(7..10, ".test"));
    let errors = purger.stop();
    assert!(errors.is_empty(), "{errors:?}");
}

#[test]
fn purger_holding_lock_file() {
    // etcd: TestPurgeFileHoldingLockFile
    let tmp = tempfile::tempdir().unwrap();
    create(tmp.path(), &names(0..10, ".test"));
    let l = lock_file(&tmp.path().join("5.test"), &OpenOptions::write()).unwrap();
    let purger = spawn_purger(
        os(),
        tmp.path().to_owned(),
        ".test".into(),
        3,
        Duration::from_millis(1),
    );
    wait_for(tmp.path(), &names(5..10, ".test"));
    std::thread::sleep(Duration::from_millis(10));
    assert_eq!(read_dir(tmp.path()).unwrap(), names(5..10, ".test"));
    // remove the purge barrier
    drop(l);
    wait_for(tmp.path(), &names(7..10, ".test"));
    assert!(purger.stop().is_empty());
}

#[test]
fn purger_collects_errors_and_keeps_running() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("later");
    let purger = spawn_purger(
        os(),
        dir.clone(),
        ".test".into(),
        1,
        Duration::from_millis(1),
    );
    std::thread::sleep(Duration::from_millis(20));
    // the directory appears: the purger keeps going after its errors
    std::fs::create_dir(&dir).unwrap();
    create(&dir, &names(0..3, ".test"));
    wait_for(&dir, &names(2..3, ".test"));
    let errors = purger.stop();
    assert!(!errors.is_empty());
    assert!(errors.len() <= 64);
    assert!(errors.iter().all(|e| e.is_not_found()), "{errors:?}");
}

#[test]
fn purger_drop_joins_thread() {
    let tmp = tempfile::tempdir().unwrap();
    let purger = spawn_purger(
        os(),
        tmp.path().to_owned(),
        ".test".into(),
        1,
        Duration::from_secs(3600),
    );
    let start = Instant::now();
    drop(purger);
    assert!(start.elapsed() < Duration::from_secs(5), "stop is prompt");
}
