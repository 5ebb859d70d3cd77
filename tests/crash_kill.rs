//! The kill suite: a child process appends to a WAL on the real file system and
//! reports every step that returned; the parent SIGKILLs it at a random moment,
//! recovers (repairing a torn tail, as etcd's server does), checks the log against
//! what was acknowledged, and restarts the child in the same directory.
//!
//! The same again without fsync (`unsafe_no_sync`, whose segments are mapped and
//! appended to by memory copies): a process crash must not lose a save that
//! returned having flushed, since its bytes are in the page cache either way.
//!
//! And with saves of hundreds of KB into 2 MB segments, which the WAL writes past
//! the page cache into segments it no longer zero-fills (`Options::direct_writes`;
//! docs/benchmarks.md, levers 22 and 23), a tenth as many rounds.
//!
//! `CRASH_KILL_ROUNDS` (default 30) and `CRASH_SEED` size each run.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use wal::raftpb::HardState;
use wal::Options;
use wal_suite::crash::{check, must_sync, recover, Gen, Log, Rec, Recovered, Step, Verdict};
use wal_suite::env_u64;
use wal_suite::simfs::Rng;

const SEGMENT: u64 = 16 * 1024;
/// Segments of the large-save run: a few saves each, and several cuts a round.
const LARGE_SEGMENT: u64 = 2 << 20;
/// Entries per save of the large-save run are 1 to 6 times this: about 500 KB
/// per save on average, past the WAL's 300 KB line for zero-filled segments.
const LARGE_SCALE: u64 = 400;
/// The large-save run starts a fresh WAL once its directory holds more than
/// this: a round's child then spends its time writing rather than recovering.
const LARGE_FRESH_AFTER: u64 = 48 << 20;
const CHILD_ENV: &str = "WAL_CRASH_KILL_CHILD";

/// The writer. Runs only when re-executed by the parent with `WAL_CRASH_KILL_CHILD`.
#[test]
fn kill_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut parts = spec.split('|');
    let (Some(dir), Some(seed), Some(no_sync), Some(scale)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        panic!("dir|seed|no_sync|scale");
    };
    let seed: u64 = seed.parse().expect("seed");
    let scale: u64 = scale.parse().expect("scale");
    let dir = PathBuf::from(dir);
    let opts = options(no_sync == "1", scale);
    let (w, base) = match recover(&opts, &dir).expect("child recovery") {
        Recovered::NoWal => (
            opts.create(&dir, Some(b"kill suite")).expect("create"),
            Log::default(),
        ),
        Recovered::Wal(w, log) => (w, log),
    };
    println!("BASE {} {}", base.entries.len(), base.last_index());
    let mut gen = Gen::new(seed, base).with_scale(scale);
    let mut prev = HardState::default();
    for k in 0..1_000_000u64 {
        let (step, _) = gen.step();
        let synced = match step {
            Step::Save(hs, ents) => {
                let s = must_sync(&prev, &hs, ents.len());
                w.save(&hs, &ents).expect("save");
                if !hs.is_empty() {
                    prev = hs;
                }
                s
            }
            Step::Snapshot(s) => {
                w.save_snapshot(&s).expect("save_snapshot");
                w.release_lock_to(s.index).expect("release");
                true
            }
        };
        println!("S {k} {}", u8::from(synced));
    }
}

struct Round {
    base_reported: Option<usize>,
    returned: Option<u64>,
    synced: Option<u64>,
}

/// The suite's WAL options: small segments, so a run crosses many cuts (larger
/// ones for saves of `scale` > 1).
fn options(no_sync: bool, scale: u64) -> Options {
    let segment = if scale > 1 { LARGE_SEGMENT } else { SEGMENT };
    Options::new().segment_size(segment).unsafe_no_sync(no_sync)
}

fn run_child(dir: &Path, seed: u64, (no_sync, scale): (bool, u64), kill_after: Duration) -> Round {
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "kill_child",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(
            CHILD_ENV,
            format!("{}|{seed}|{}|{scale}", dir.display(), u8::from(no_sync)),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut r = Round {
            base_reported: None,
            returned: None,
            synced: None,
        };
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let parts: Vec<&str> = line.split_whitespace().collect();
            match parts.as_slice() {
                ["BASE", n, _] => r.base_reported = n.parse().ok(),
                ["S", k, s] => {
                    let k: u64 = k.parse().unwrap_or(0);
                    r.returned = Some(k);
                    if *s == "1" {
                        r.synced = Some(k);
                    }
                }
                _ => {}
            }
        }
        r
    });
    let start = Instant::now();
    while start.elapsed() < kill_after {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let _ = child.kill(); // SIGKILL
    let _ = child.wait();
    reader.join().expect("reader")
}

#[test]
fn kill_suite() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    run_suite("kill", false, 1);
}

#[test]
fn kill_suite_without_fsync() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    run_suite("kill-no-fsync", true, 1);
}

#[test]
fn kill_suite_large_saves() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    run_suite("kill-large-saves", false, LARGE_SCALE);
}

/// Bytes of the files in `dir` (0 when it does not exist).
fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir).map_or(0, |rd| {
        rd.filter_map(Result::ok)
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum()
    })
}

/// Kills and restarts the writer `CRASH_KILL_ROUNDS` times (a tenth as many,
/// killed sooner, for saves of `scale` > 1: each round writes tens of MB),
/// checking after each.
fn run_suite(name: &str, no_sync: bool, scale: u64) {
    let mut rounds = env_u64("CRASH_KILL_ROUNDS", 30);
    let mut kill_within = 120;
    if scale > 1 {
        rounds = rounds.div_ceil(10);
        kill_within = 60;
    }
    let seed0 = env_u64("CRASH_SEED", 1);
    // On the disk of the build (the system temporary directory may be tmpfs,
    // which takes no direct writes).
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let dir = tmp.path().join("wal");
    let opts = options(no_sync, scale);
    let mut rng = Rng::new(seed0);
    let mut base = Log::default();
    let (mut acked_checked, mut lost, mut wrong, mut steps_seen) = (0u64, 0u64, 0u64, 0u64);
    for round in 0..rounds {
        if scale > 1 && dir_bytes(&dir) > LARGE_FRESH_AFTER {
            // Recovering a WAL this large would take the whole round: start a
            // fresh one so the child writes (and is killed writing) again.
            std::fs::remove_dir_all(&dir).unwrap();
            base = Log::default();
        }
        let seed = seed0.wrapping_mul(1000).wrapping_add(round);
        let r = run_child(
            &dir,
            seed,
            (no_sync, scale),
            Duration::from_millis(20 + rng.below(kill_within)),
        );
        if let Some(n) = r.base_reported {
            assert_eq!(
                n,
                base.entries.len(),
                "round {round}: the child recovered what the parent did"
            );
        }
        // Regenerate what the child did: steps 0..=returned+1 (the last one in flight).
        let mut gen = Gen::new(seed, base.clone()).with_scale(scale);
        let last = r.returned.map_or(0, |k| k + 1);
        let mut recs: Vec<Rec> = Vec::new();
        let mut acked = 0;
        for k in 0..=last {
            let (_, step_recs) = gen.step();
            recs.extend(step_recs);
            if r.synced.is_some_and(|s| k <= s) {
                acked = recs.len();
            }
        }
        steps_seen += r.returned.map_or(0, |k| k + 1);
        let got = match recover(&opts, &dir) {
            Ok(Recovered::Wal(w, log)) => {
                w.close().unwrap();
                log
            }
            Ok(Recovered::NoWal) => {
                assert!(r.base_reported.is_none(), "round {round}: the WAL vanished");
                continue;
            }
            Err(e) => panic!("round {round}: recovery failed: {e}"),
        };
        match check(&base, &recs, acked, &got) {
            Verdict::Ok => {}
            Verdict::Lost => lost += 1,
            Verdict::Wrong => wrong += 1,
        }
        let mut acked_log = base.clone();
        for rec in &recs[..acked] {
            acked_log.apply(rec);
        }
        acked_checked += acked_log.entries.len() as u64;
        base = got;
    }
    println!(
        "{{\"suite\": \"{name}\", \"states\": {rounds}, \"acked_entries_checked\": {acked_checked}, \"lost\": {lost}, \"wrong\": {wrong}, \"panics\": 0, \"steps\": {steps_seen}, \"final_entries\": {}}}",
        base.entries.len()
    );
    assert_eq!((lost, wrong), (0, 0));
    assert!(steps_seen > 0, "the child never got to write");
}
