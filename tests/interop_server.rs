//! A real etcd 3.4 server's `member/wal`, read by our `wal` API and by etcd's own
//! `wal` package (the Go oracle of `tests/interop.rs`), must give the same
//! document (metadata, hard state, entries with sha256, errors by kind, verify,
//! valid snapshot entries, files, write-mode open):
//!
//! - after a workload driven with `etcdctl` and a clean stop (SIGTERM), at {0,0}
//!   and at the newest valid snapshot;
//! - after a fresh server is killed with SIGKILL in the middle of writes (on a
//!   copy of its directory), including how both treat the tail; repair parity too.
//!
//! Without `etcd`/`etcdctl`/Go the test prints SKIPPED and passes, except under
//! `CI=true`.

#[path = "interop/common.rs"]
mod common;

use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::*;

const HINT: &str = "apt-get install etcd-server etcd-client golang-go golang-etcd-server-dev";

/// A running etcd, killed (SIGKILL) and reaped on drop, whatever happens.
struct Etcd {
    child: Child,
    endpoint: String,
    data: PathBuf,
    log: PathBuf,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Etcd {
    fn start(base: &Path, name: &str) -> Etcd {
        let data = base.join(format!("{name}.etcd"));
        let log = base.join(format!("{name}.log"));
        let (client, peer) = (free_port(), free_port());
        let curl = format!("http://127.0.0.1:{client}");
        let purl = format!("http://127.0.0.1:{peer}");
        let child = Command::new("etcd")
            .arg("--name")
            .arg(name)
            .arg("--data-dir")
            .arg(&data)
            .args(["--listen-client-urls", &curl])
            .args(["--advertise-client-urls", &curl])
            .args(["--listen-peer-urls", &purl])
            .args(["--initial-advertise-peer-urls", &purl])
            .args(["--initial-cluster", &format!("{name}={purl}")])
            .args(["--snapshot-count", "50"])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(base.join(format!("{name}.stderr"))).unwrap())
            .spawn()
            .expect("starting etcd");
        let mut etcd = Etcd {
            child,
            endpoint: format!("127.0.0.1:{client}"),
            data,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = etcd.child.try_wait() {
                panic!("etcd exited early ({status}):\n{}", etcd.log_tail());
            }
            if etcd.ctl_ok(&["endpoint", "health"]) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "etcd not healthy after 20 s:\n{}",
                etcd.log_tail()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        etcd
    }

    fn log_tail(&self) -> String {
        let mut s = String::new();
        for p in [self.log.clone(), self.log.with_extension("stderr")] {
            let text = std::fs::read_to_string(&p).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            s.push_str(&lines[lines.len().saturating_sub(20)..].join("\n"));
            s.push('\n');
        }
        s
    }

    fn ctl_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("etcdctl");
        c.env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.endpoint))
            .args(["--dial-timeout=2s", "--command-timeout=10s"])
            .args(args);
        c
    }

    fn ctl_ok(&self, args: &[&str]) -> bool {
        self.ctl_cmd(args)
            .stdin(Stdio::null())
            .output()
            .is_ok_and(|o| o.status.success())
    }

    /// Runs etcdctl (with `stdin` if given) and returns its stdout; panics on failure.
    fn ctl(&self, args: &[&str], stdin: Option<&str>) -> String {
        let mut child = self
            .ctl_cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running etcdctl");
        {
            let mut input = child.stdin.take().unwrap();
            if let Some(s) = stdin {
                input.write_all(s.as_bytes()).unwrap();
            }
        }
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "etcdctl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// SIGTERM, then wait (up to 20 s) for a clean exit.
    fn stop(mut self) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .is_ok_and(|s| s.success());
        assert!(sent, "kill -TERM {pid} failed");
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "etcd ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn wal_dir(&self) -> PathBuf {
        self.data.join("member").join("wal")
    }
}

/// A printable pseudo-random value of `n` bytes.
fn value(seed: u64, n: usize) -> String {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b'a' + (x % 26) as u8)
        })
        .collect()
}

/// Our document and etcd's for `dir` at {0,0} and at the newest valid snapshot
/// (from our `valid_snapshot_entries`); panics with the first difference.
fn compare(oracle: &Path, what: &str, dir: &Path) -> Vec<(String, Value)> {
    let vse = wal::valid_snapshot_entries(dir).expect("valid_snapshot_entries");
    let newest = vse.last().map_or((0, 0), |s| (s.index, s.term));
    let mut docs = Vec::new();
    for pt in [(0, 0), newest] {
        let theirs = oracle_read(oracle, dir, pt);
        let ours = our_read(dir, pt);
        if let Some(d) = first_diff(&theirs, &ours) {
            panic!("{what} at {pt:?}: etcd vs ours differ at {d}");
        }
        eprintln!(
            "{what} at {pt:?}: identical: {} entries, hardstate {}, readall_error {}, verify {}, {} valid snapshots, files {}, write mode {}",
            ours["entries"].as_array().unwrap().len(),
            ours["hardstate"],
            ours["readall_error"],
            ours["verify"]["error"],
            ours["valid_snapshot_entries"].as_array().unwrap().len(),
            ours["files"],
            ours["write_mode"],
        );
        docs.push((format!("{pt:?}"), ours));
    }
    docs
}

/// `wal::repair` and etcd's `wal.Repair` on copies of `dir`: the same outcome
/// (etcd's `false` is our `Err`) and identical files afterwards.
fn repair_parity(oracle: &Path, what: &str, dir: &Path, tmp: &Path) {
    let tag = what.split_whitespace().next().unwrap().replace('+', "-");
    let ra = tmp.join(format!("{tag}-etcd-repaired"));
    let rb = tmp.join(format!("{tag}-ours-repaired"));
    copy_dir(dir, &ra);
    copy_dir(dir, &rb);
    let etcd_ok = oracle_repair(oracle, &ra);
    let ours = wal::repair(&rb);
    eprintln!("{what}: repair: etcd {etcd_ok}, ours {ours:?}");
    assert_eq!(
        etcd_ok,
        ours.is_ok(),
        "{what}: repair outcome: ours {ours:?}"
    );
    if let Err(e) = same_files(&ra, &rb) {
        panic!("{what}: repaired directories differ: {e}");
    }
    // What a restart after the repair sees.
    let theirs = oracle_read(oracle, &ra, (0, 0));
    let ours = our_read(&rb, (0, 0));
    if let Some(d) = first_diff(&theirs, &ours) {
        panic!("{what}: after repair, etcd vs ours differ at {d}");
    }
}

fn tools_present() -> bool {
    for (cmd, arg) in [("etcd", "--version"), ("etcdctl", "version")] {
        let ok = Command::new(cmd)
            .arg(arg)
            .env("ETCDCTL_API", "3")
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            skip("interop_server", &format!("`{cmd}` is not installed"), HINT);
            return false;
        }
    }
    true
}

#[test]
fn real_etcd_server_wal_reads_the_same() {
    let started = Instant::now();
    if !tools_present() {
        return;
    }
    let Some(oracle) = oracle("interop_server") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();

    // 1. A workload, then a clean stop.
    let etcd = Etcd::start(tmp.path(), "clean");
    let t = Instant::now();
    std::thread::scope(|s| {
        for w in 0..4u64 {
            let etcd = &etcd;
            s.spawn(move || {
                for i in (w..320).step_by(4) {
                    let v = value(i, 10 + (i as usize % 50));
                    etcd.ctl(&["put", &format!("k/{i:04}"), &v], None);
                }
            });
        }
    });
    for i in 0..30 {
        etcd.ctl(&["del", &format!("k/{:04}", i * 3)], None);
    }
    let ranged = etcd.ctl(&["del", "--prefix", "k/03"], None);
    assert!(ranged.trim().parse::<u32>().unwrap() > 0, "{ranged}");
    let txn = etcd.ctl(
        &["txn"],
        Some("value(\"k/0001\") = \"nope\"\n\nput t/ok yes\n\nput t/nok no\n\n"),
    );
    assert!(txn.contains("FAILURE"), "{txn}");
    let txn = etcd.ctl(
        &["txn"],
        Some("version(\"k/0001\") > \"0\"\n\nput t/ok yes\ndel k/0002\n\nput t/nok no\n\n"),
    );
    assert!(txn.contains("SUCCESS"), "{txn}");
    let lease = etcd.ctl(&["lease", "grant", "600"], None);
    let id = lease.split_whitespace().nth(1).unwrap().to_string();
    etcd.ctl(&["put", &format!("--lease={id}"), "l/leased", "v"], None);
    for i in 0..4u64 {
        // ~100 KiB values, from stdin.
        let v = value(1000 + i, 100 * 1024);
        etcd.ctl(&["put", &format!("big/{i}")], Some(&v));
    }
    etcd.ctl(&["put", "last", "x"], None);
    let workload = t.elapsed();
    let wal_dir = etcd.wal_dir();
    etcd.stop();
    eprintln!("clean run: workload {:.1}s", workload.as_secs_f64());
    let docs = compare(&oracle, "SIGTERM", &wal_dir);
    let n = docs[0].1["entries"].as_array().unwrap().len();
    assert!(n > 350, "{n} entries");
    let vse = docs[0].1["valid_snapshot_entries"]
        .as_array()
        .unwrap()
        .len();
    assert!(vse > 5, "{vse} snapshot records: --snapshot-count 50");
    assert!(docs[0].1["readall_error"].is_null());

    // 2. SIGKILL in the middle of writes.
    let mut etcd = Etcd::start(tmp.path(), "killed");
    let done = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        for w in 0..4u64 {
            let (endpoint, done, stop) = (&etcd.endpoint, &done, &stop);
            s.spawn(move || {
                let mut i = w;
                while !stop.load(Ordering::Relaxed) {
                    let big = i % 7 == 3;
                    let v = value(
                        i,
                        if big {
                            100 * 1024
                        } else {
                            20 + i as usize % 200
                        },
                    );
                    let mut c = Command::new("etcdctl");
                    c.env("ETCDCTL_API", "3")
                        .arg(format!("--endpoints={endpoint}"))
                        .args(["--dial-timeout=1s", "--command-timeout=3s", "put"])
                        .arg(format!("w/{i:05}"))
                        .stdin(Stdio::piped())
                        .stdout(Stdio::null())
                        .stderr(Stdio::null());
                    let Ok(mut child) = c.spawn() else { break };
                    if let Some(mut input) = child.stdin.take() {
                        let _ = input.write_all(v.as_bytes());
                    }
                    if child.wait().is_ok_and(|st| st.success()) {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    i += 4;
                }
            });
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        while done.load(Ordering::Relaxed) < 200 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        etcd.child.kill().unwrap(); // SIGKILL, writers still running
        etcd.child.wait().unwrap();
        stop.store(true, Ordering::Relaxed);
    });
    eprintln!(
        "SIGKILL after {} acknowledged puts",
        done.load(Ordering::Relaxed)
    );
    let copy = tmp.path().join("killed-wal-copy");
    copy_dir(&etcd.wal_dir(), &copy);
    drop(etcd);
    let docs = compare(&oracle, "SIGKILL", &copy);
    let n = docs[0].1["entries"].as_array().unwrap().len();
    assert!(n > 100, "{n} entries");

    repair_parity(&oracle, "SIGKILL", &copy, tmp.path());

    // A SIGKILL leaves what was written in the page cache, so the tail above is
    // usually whole. A power loss can tear it: the same copy with its last record
    // cut short or its last sector zeroed.
    for dmg in [Damage::TruncateMid, Damage::ZeroLastSector] {
        let torn = tmp.path().join(format!("killed-{}", dmg.name()));
        copy_dir(&copy, &torn);
        let desc = dmg.apply(&torn).expect("a last record");
        let what = format!("SIGKILL+{} ({desc})", dmg.name());
        compare(&oracle, &what, &torn);
        repair_parity(&oracle, &what, &torn, tmp.path());
    }
    eprintln!(
        "interop_server: done in {:.1}s",
        started.elapsed().as_secs_f64()
    );
}
