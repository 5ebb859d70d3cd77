//! A read-ahead helper whose reader has stopped reading sleeps: it costs no CPU
//! (its own test binary, so that its thread is the only `wal-readahead` here).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::time::Duration;

use wal_fileutil::ReadAhead;

/// Voluntary context switches of this process's `wal-readahead` threads; `None`
/// without `/proc`, 0 with no such thread.
fn helper_wakeups() -> Option<u64> {
    let mut total = 0;
    let mut found = false;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let dir = task.ok()?.path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if comm.trim() != "wal-readahead" {
            continue;
        }
        let status = std::fs::read_to_string(dir.join("status")).ok()?;
        let n: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))?
            .trim()
            .parse()
            .ok()?;
        total += n;
        found = true;
    }
    assert!(found, "no wal-readahead thread");
    Some(total)
}

#[test]
fn a_helper_ahead_of_an_idle_reader_sleeps() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let path = dir.path().join("f");
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(&vec![1u8; 8 << 20]).unwrap();
    f.sync_all().unwrap();
    // Not cached, so the helper has something to read and then waits.
    nix::fcntl::posix_fadvise(
        &f,
        0,
        0,
        nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
    )
    .unwrap();
    let probe = wal_fileutil::CacheProbe::new(&std::fs::File::open(&path).unwrap()).unwrap();
    if probe.is_cached(4 << 20) != Some(false) {
        eprintln!("SKIPPED: this file system keeps dropped pages cached");
        return;
    }
    // The reader consumes nothing: the helper reads its 1 MiB and waits.
    let ra = ReadAhead::start(vec![(path, 8 << 20)], 1 << 20).expect("a thread");
    std::thread::sleep(Duration::from_millis(200));
    let Some(before) = helper_wakeups() else {
        eprintln!("SKIPPED: no /proc/self/task here");
        return;
    };
    std::thread::sleep(Duration::from_millis(500));
    let after = helper_wakeups().unwrap();
    // Polling every 100 us would be thousands; parked, a few timeouts.
    assert!(
        after - before < 50,
        "the waiting helper woke {} times in 500 ms",
        after - before
    );
    drop(ra);
}
