//! Power loss at sampled operation boundaries, on the simulated disk: every
//! acknowledged entry and hard state survives, nothing never written appears, the
//! log stays contiguous, and the WAL takes appends that survive a second crash.
//!
//! `CRASH_STATES` (default 1500 here; `cargo xtask crash` runs more) and
//! `CRASH_SEED` size the run.

use wal_suite::env_u64;
use wal_suite::powerloss::{run, Config};

#[test]
fn powerloss_suite() {
    let cfg = Config::with_states(env_u64("CRASH_SEED", 1), env_u64("CRASH_STATES", 1500));
    let report = run(&cfg);
    println!("{}", report.json("powerloss"));
    for f in &report.failures {
        eprintln!("FAILURE: {f}");
    }
    assert!(
        report.states >= env_u64("CRASH_STATES", 1500) / 2,
        "{report:?}"
    );
    assert!(report.acked_entries_checked > 0);
    assert_eq!(
        (report.lost, report.wrong, report.panics),
        (0, 0, 0),
        "{:#?}",
        report.failures
    );
}

/// The suite must notice a WAL whose `save` does not reach the disk.
#[test]
fn powerloss_catches_a_save_without_fdatasync() {
    let mut cfg = Config::with_states(7, 400);
    cfg.ignore_sync = true;
    let report = run(&cfg);
    println!("{}", report.json("powerloss-broken-sync"));
    assert!(
        report.lost > 0,
        "a save that skips its fdatasync went unnoticed: {report:?}"
    );
}

/// The suite must notice segment renames that are never made durable.
#[test]
fn powerloss_catches_a_cut_without_directory_fsync() {
    let mut cfg = Config::with_states(11, 400);
    cfg.ignore_dir_sync = true;
    let report = run(&cfg);
    println!("{}", report.json("powerloss-broken-dir-sync"));
    assert!(
        report.lost > 0,
        "a cut without directory fsync went unnoticed: {report:?}"
    );
}
