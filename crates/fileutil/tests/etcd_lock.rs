//! Interoperability with a real etcd: while etcd runs, its newest WAL segment
//! is locked against us (both sides use OFD locks on Linux); after etcd exits
//! the lock is free. Skipped loudly without an `etcd` binary, except under
//! CI=true where that is a failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use wal_fileutil::{read_dir_ext, try_lock_file, OpenOptions};

/// Kills (SIGKILL) and reaps etcd on every exit path.
struct EtcdGuard(Child);

impl Drop for EtcdGuard {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

fn etcd_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("etcd"))
        .find(|p| p.is_file())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn newest_wal(wal_dir: &Path) -> Option<PathBuf> {
    let names = read_dir_ext(wal_dir, ".wal").ok()?;
    names.last().map(|n| wal_dir.join(n))
}

fn poll<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn etcd_holds_wal_lock_until_exit() {
    let Some(etcd) = etcd_binary() else {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("etcd not installed (apt-get install etcd-server) and CI=true");
        }
        eprintln!("\n*** SKIPPED: etcd not installed (apt-get install etcd-server) ***\n");
        return;
    };

    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("data");
    let client = format!("http://127.0.0.1:{}", free_port());
    let peer = format!("http://127.0.0.1:{}", free_port());
    let log = std::fs::File::create(tmp.path().join("etcd.log")).unwrap();
    let child = Command::new(&etcd)
        .arg("--data-dir")
        .arg(&data_dir)
        .args(["--name", "default"])
        .args(["--listen-client-urls", &client])
        .args(["--advertise-client-urls", &client])
        .args(["--listen-peer-urls", &peer])
        .args(["--initial-advertise-peer-urls", &peer])
        .args(["--initial-cluster", &format!("default={peer}")])
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut guard = EtcdGuard(child);
    let log_tail = || std::fs::read_to_string(tmp.path().join("etcd.log")).unwrap_or_default();

    let wal_dir = data_dir.join("member/wal");
    let wal = poll("etcd's first .wal file", Duration::from_secs(30), || {
        if let Ok(Some(status)) = guard.0.try_wait() {
            panic!("etcd exited early ({status}):\n{}", log_tail());
        }
        newest_wal(&wal_dir)
    });

    // etcd locks the segment before it appears under member/wal (it creates
    // the directory as wal.tmp and renames it), but poll to be safe.
    let err = poll(
        "etcd's lock",
        Duration::from_secs(10),
        || match try_lock_file(&wal, &OpenOptions::write()) {
            Err(e) if e.is_locked() => Some(e),
            Err(e) => panic!("unexpected error: {e}"),
            Ok(f) => {
                drop(f);
                None
            }
        },
    );
    assert_eq!(err.path(), wal);
    eprintln!("etcd holds {}: {err}", wal.display());

    let pid = Pid::from_raw(i32::try_from(guard.0.id()).unwrap());
    kill(pid, Signal::SIGTERM).unwrap();
    let status = poll("etcd to exit", Duration::from_secs(30), || {
        guard.0.try_wait().unwrap()
    });
    eprintln!("etcd exited: {status}");

    let f = try_lock_file(&wal, &OpenOptions::write())
        .unwrap_or_else(|e| panic!("lock still held after etcd exited: {e}"));
    drop(f);
}
