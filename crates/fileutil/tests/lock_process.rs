//! Lock exclusion between two processes. The test re-executes its own test
//! binary to run `lock_holder_child`, which (only when the env var below is
//! set) locks the file, prints "locked" and waits until killed or until its
//! stdin closes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use wal_fileutil::{lock_file, try_lock_file, OpenOptions};

const CHILD_ENV: &str = "WAL_FILEUTIL_LOCK_CHILD_PATH";

/// Kills and reaps the child on every exit path.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The child half. Does nothing in a normal test run.
#[test]
fn lock_holder_child() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let _held = lock_file(Path::new(&path), &OpenOptions::write().create(true)).unwrap();
    println!("locked");
    // Block until the parent closes our stdin or kills us.
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
}

fn spawn_holder(path: &Path) -> (ChildGuard, impl BufRead) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "lock_holder_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    (ChildGuard(child), stdout)
}

/// Reads the child's output until its "locked" line (libtest may put its own
/// "test lock_holder_child ... " prefix on the same line).
fn wait_locked(out: &mut impl BufRead) {
    let mut line = String::new();
    loop {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "child exited early");
        if line.trim_end().ends_with("locked") {
            return;
        }
    }
}

#[test]
fn lock_excludes_other_process_until_it_dies() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("0000000000000000-0000000000000000.wal");
    let (mut guard, mut out) = spawn_holder(&path);
    wait_locked(&mut out);

    let err = try_lock_file(&path, &OpenOptions::write()).unwrap_err();
    assert!(err.is_locked(), "{err}");
    assert_eq!(err.path(), path);

    guard.0.kill().unwrap();
    guard.0.wait().unwrap();
    try_lock_file(&path, &OpenOptions::write()).unwrap();
}

#[test]
fn waiting_lock_acquired_when_other_process_releases() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("1.tmp");
    let (mut guard, mut out) = spawn_holder(&path);
    wait_locked(&mut out);

    let p2 = path.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let f = lock_file(&p2, &OpenOptions::write()).unwrap();
        tx.send(()).unwrap();
        drop(f);
    });
    assert!(
        rx.recv_timeout(Duration::from_millis(200)).is_err(),
        "lock_file must wait"
    );
    // closing stdin makes the child return from its test and exit cleanly
    drop(guard.0.stdin.take());
    rx.recv_timeout(Duration::from_secs(10))
        .expect("lock_file did not return after the holder exited");
    waiter.join().unwrap();
    assert!(guard.0.wait().unwrap().success());
}
