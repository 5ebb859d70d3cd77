//! The command line itself: usage errors, the bench's options and JSON keys, and
//! the text and JSON output of `verify`, `snapshots`, `stat` and `dump` on the
//! corpus.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{case_dir, corpus, read_json, walctl};

#[test]
fn usage_errors_exit_2() {
    assert_eq!(walctl::<&str>(&[]).code, 2);
    assert_eq!(walctl(&["frobnicate"]).code, 2);
    assert_eq!(walctl(&["dump"]).code, 2, "DIR is required");
    let d = case_dir("basic");
    let d = d.to_str().unwrap();
    assert_eq!(
        walctl(&["dump", "--snap-index", "5", d]).code,
        2,
        "index needs term"
    );
    assert_eq!(walctl(&["verify", "--snap-term", "1", d]).code, 2);
    assert_eq!(
        walctl(&["dump", "--snap-index", "x", "--snap-term", "1", d]).code,
        2
    );
    assert_eq!(walctl(&["demo", "--entries", "0"]).code, 2);
    let help = walctl(&["--help"]);
    assert_eq!(help.code, 0);
    for cmd in ["dump", "verify", "snapshots", "stat", "repair", "demo"] {
        assert!(help.stdout.contains(cmd), "{cmd}: {}", help.stdout);
    }
}

/// `walctl bench --quick --seconds 0.05 --no-etcd --json --dir DIR EXTRA...`,
/// which must succeed; its JSON document.
fn quick_bench(dir: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "bench",
        "--quick",
        "--seconds",
        "0.05",
        "--no-etcd",
        "--json",
    ];
    args.extend(["--dir", dir]);
    args.extend(extra);
    let run = walctl(&args);
    assert_eq!(run.code, 0, "{}", run.stderr);
    serde_json::from_str(&run.stdout).unwrap()
}

#[test]
fn bench_replay_rows_carry_every_repetition() {
    // Cold reads swing run to run here, so each replay row keeps every
    // repetition's figure beside their median.
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().to_str().unwrap();
    let doc = quick_bench(d, &["--only", "replay", "--reps", "3", "--no-peers"]);
    assert_eq!(doc["config"]["cold_reps"], 3, "{}", doc["config"]);
    let replay = doc["replay"].as_array().unwrap();
    let measured: Vec<_> = replay.iter().filter(|r| !r["mb_per_s"].is_null()).collect();
    assert!(measured.len() >= 3, "{replay:?}");
    for r in measured {
        let mut each: Vec<f64> = r["mb_per_s_reps"]
            .as_array()
            .unwrap_or_else(|| panic!("{r}"))
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(each.len(), 3, "{r}");
        each.sort_by(f64::total_cmp);
        assert_eq!(r["mb_per_s"].as_f64(), Some(each[1]), "{r}");
    }
    // The memory denominators have no repetitions.
    let entry_bytes = replay.iter().find(|r| r["impl"] == "entry-bytes").unwrap();
    assert!(entry_bytes.get("mb_per_s_reps").is_none(), "{entry_bytes}");
}

#[test]
fn bench_takes_its_options() {
    let run = walctl(&["bench", "--help"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    for opt in ["--dir", "--json", "--quick", "--seconds"] {
        assert!(run.stdout.contains(opt), "{opt}: {}", run.stdout);
    }
    // A bad value is a usage error, before anything is measured.
    assert_eq!(walctl(&["bench", "--seconds", "x"]).code, 2);
    // A helper binary that is not there fails at once, naming the flag.
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().to_str().unwrap();
    for flag in ["--oracle", "--peers"] {
        let run = walctl(&["bench", "--quick", flag, "/nonexistent/helper", "--dir", d]);
        assert_ne!(run.code, 0, "{flag}");
        assert!(
            run.stderr.contains(&format!("{flag} /nonexistent/helper")),
            "{flag}: {}",
            run.stderr
        );
        assert!(!run.stderr.contains("bench: append"), "{}", run.stderr);
    }
    // --no-keep-tick measures the WAL and the raw baselines without keep_tick,
    // and the report says so (the default is checked in the JSON test).
    let doc = quick_bench(
        d,
        &[
            "--only",
            "append",
            "--cells",
            "1x100",
            "--no-peers",
            "--no-keep-tick",
        ],
    );
    assert_eq!(doc["config"]["keep_tick"], false, "{}", doc["config"]);
    let wal = doc["append"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["impl"] == "wal")
        .unwrap_or_else(|| panic!("{}", doc["append"]));
    assert!(wal["saves_per_s"].as_f64().unwrap() > 0.0, "{wal}");
}

#[test]
fn bench_json_has_the_documented_keys_and_consistent_figures() {
    // A tiny run of every part; the keys are what issue 8 promises to anyone
    // computing their own ratios, and the figures must agree with each other.
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().to_str().unwrap();
    let doc = quick_bench(d, &["--cells", "100x100", "--no-peers"]);
    let num = |v: &serde_json::Value, k: &str| v[k].as_f64().unwrap_or_else(|| panic!("{k}: {v}"));
    // The WAL and the raw baselines keep the CPU's tick by default.
    assert_eq!(doc["config"]["keep_tick"], true, "{}", doc["config"]);
    assert_eq!(
        doc["config"]["cpu_run_bytes"],
        1u64 << 30,
        "{}",
        doc["config"]
    );
    let append = doc["append"].as_array().unwrap();
    for name in ["wal", "raw-fallocated", "raw-zeroed"] {
        let r = append
            .iter()
            .find(|r| r["impl"] == name && r["entry_bytes"] == 100 && r["batch"] == 100)
            .unwrap_or_else(|| panic!("{name}: {append:?}"));
        let saves = num(r, "saves_per_s");
        assert!(saves > 0.0, "{r}");
        assert!((num(r, "entries_per_s") - saves * 100.0).abs() < 1e-6 * saves * 100.0);
        assert!(
            (num(r, "mb_per_s") - saves * 100.0 * 100.0 / 1e6).abs() < 1e-3,
            "{r}"
        );
        assert!(
            num(r, "p50_us") > 0.0 && num(r, "p50_us") <= num(r, "p99_us"),
            "{r}"
        );
    }
    // Every measured case says how much CPU time the host took from it.
    for r in append.iter().filter(|r| !r["saves_per_s"].is_null()) {
        let steal = num(r, "steal_pct");
        assert!((0.0..=100.0).contains(&steal), "{r}");
    }
    // The etcd and peer columns say why they are missing instead of disappearing.
    for name in ["etcd", "okaywal", "raft-engine"] {
        assert!(
            append.iter().any(|r| r["impl"] == name
                && r["saves_per_s"].is_null()
                && r["steal_pct"].is_null()),
            "{name}: {append:?}"
        );
    }
    let unavailable = doc["unavailable"].to_string();
    assert!(unavailable.contains("--no-peers"), "{unavailable}");
    let replay = doc["replay"].as_array().unwrap();
    let warm = |name: &str| {
        replay
            .iter()
            .find(|r| r["impl"] == name && r["cache"] == "warm")
            .unwrap_or_else(|| panic!("{name}: {replay:?}"))
            .clone()
    };
    // 48 MiB of 1 KiB entries, every one read back by both readers.
    for name in ["read_all", "stream"] {
        let r = warm(name);
        assert_eq!(r["entries"], 48 * 1024, "{r}");
        assert!((0.0..=100.0).contains(&num(&r, "steal_pct")), "{r}");
        assert!(
            num(&r, "mb_per_s") > 0.0 && num(&r, "peak_rss_bytes") > 0.0,
            "{r}"
        );
    }
    assert!(num(&warm("raw-read-crc"), "mb_per_s") > 0.0);
    let cuts = &doc["cuts"];
    assert!(num(cuts, "p99_us_with_cuts") > 0.0 && num(cuts, "p99_us_without_cuts") > 0.0);
    assert!(num(cuts, "cuts_crossed") >= 3.0, "{cuts}");
    let ratios = &doc["ratios"];
    let cell = &ratios["append"][0];
    assert_eq!(
        (&cell["entry_bytes"], &cell["batch"]),
        (&100.into(), &100.into())
    );
    let saves = |name: &str| {
        append
            .iter()
            .find(|r| r["impl"] == name)
            .map(|r| num(r, "saves_per_s"))
            .unwrap()
    };
    let (wal, zeroed) = (saves("wal"), saves("raw-zeroed"));
    assert!(
        (num(cell, "vs_raw_zeroed") - wal / zeroed).abs() < 1e-9,
        "{cell}"
    );
    // Saves without fsync are compared with raw-write, under their own name.
    let cpu = &ratios["cpu_save_vs_etcd"][0];
    assert!(num(cpu, "vs_raw_write") > 0.0, "{cpu}");
    assert!(cpu["vs_raw_zeroed"].is_null(), "{cpu}");
    assert!(
        num(ratios, "read_all_rss_over_entry_bytes") > 1.0,
        "{ratios}"
    );
}

#[test]
fn bench_measures_okaywal_and_raft_engine_beside_the_wal() {
    // The peers are built from tests/peers with cargo (once; later runs reuse it).
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().to_str().unwrap();
    let doc = quick_bench(d, &["--only", "append,cpu,replay", "--cells", "100x100"]);
    let num = |v: &serde_json::Value, k: &str| v[k].as_f64().unwrap_or_else(|| panic!("{k}: {v}"));
    let saves = |part: &str, name: &str| {
        let r = doc[part]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["impl"] == name)
            .unwrap_or_else(|| panic!("{part} {name}: {doc}"));
        assert!(
            num(r, "p50_us") > 0.0 && num(r, "p50_us") <= num(r, "p99_us"),
            "{r}"
        );
        num(r, "saves_per_s")
    };
    let cell = &doc["ratios"]["append"][0];
    let wal = saves("append", "wal");
    for (name, key) in [("okaywal", "vs_okaywal"), ("raft-engine", "vs_raft_engine")] {
        let peer = saves("append", name);
        assert!(peer > 0.0);
        assert!((num(cell, key) - wal / peer).abs() < 1e-9, "{cell}");
    }
    // Without fsync only raft-engine has a mode to compare (okaywal always syncs),
    // and it makes as many saves as the WAL did: the same bytes written.
    let cpu = &doc["ratios"]["cpu_save_vs_etcd"][0];
    let ratio = saves("cpu_save", "wal") / saves("cpu_save", "raft-engine");
    assert!((num(cpu, "vs_raft_engine") - ratio).abs() < 1e-9, "{cpu}");
    assert!(cpu["vs_okaywal"].is_null(), "{cpu}");
    let count = |name: &str| {
        doc["cpu_save"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["impl"] == name)
            .map(|r| r["saves"].as_u64().unwrap())
            .unwrap()
    };
    assert_eq!(count("raft-engine"), count("wal"), "{}", doc["cpu_save"]);
    // Replay: each peer reads its own log of the same 48 MiB of 1 KiB entries.
    let warm = |name: &str| {
        doc["replay"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["impl"] == name && r["cache"] == "warm")
            .unwrap_or_else(|| panic!("{name}: {doc}"))
            .clone()
    };
    let read_all = num(&warm("read_all"), "mb_per_s");
    for (name, key) in [
        ("okaywal", "read_all_vs_okaywal_warm"),
        ("raft-engine", "read_all_vs_raft_engine_warm"),
    ] {
        let r = warm(name);
        assert_eq!(r["entries"], 48 * 1024, "{r}");
        assert!(num(&r, "peak_rss_bytes") > 0.0, "{r}");
        let got = num(&doc["ratios"], key);
        assert!((got - read_all / num(&r, "mb_per_s")).abs() < 1e-9, "{key}");
    }
}

#[test]
fn verify_prints_the_hard_state_or_the_error() {
    let run = walctl(&["verify", case_dir("cut").to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("term=3 vote=1 commit=200"),
        "{}",
        run.stdout
    );

    let s = case_dir("snapshots");
    let s = s.to_str().unwrap();
    let ok = walctl(&["verify", "--snap-index", "45", "--snap-term", "2", s]);
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    let bad = walctl(&["verify", "--snap-index", "20", "--snap-term", "2", s]);
    assert_eq!(bad.code, 1);
    assert!(bad.stderr.contains("snapshot_mismatch"), "{}", bad.stderr);
    assert!(
        bad.stderr.contains("0000000000000000-0000000000000000.wal"),
        "{}",
        bad.stderr
    );
    assert!(bad.stderr.contains("offset"), "{}", bad.stderr);
    let missing = walctl(&["verify", "--snap-index", "50", "--snap-term", "2", s]);
    assert_eq!(missing.code, 1);
    assert!(
        missing.stderr.contains("snapshot_not_found"),
        "{}",
        missing.stderr
    );
}

#[test]
fn snapshots_lists_valid_snapshot_entries() {
    let want = read_json(&corpus().join("server-a.expected.json"));
    let want = want["valid_snapshot_entries"].as_array().unwrap();
    let server = corpus().join("server-a");
    let run = walctl(&["snapshots", server.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), want.len());
    assert_eq!(lines[want.len() - 1], "index=2323 term=2");
    let run = walctl(&["snapshots", "--json", server.to_str().unwrap()]);
    assert_eq!(run.json().as_array().unwrap(), want);
}

#[test]
fn stat_summarises_segments() {
    let run = walctl(&["stat", "--json", case_dir("cut").to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let st = run.json();
    let segs = st["segments"].as_array().unwrap();
    assert_eq!(segs.len(), 13);
    assert_eq!(st["entries"], 200);
    assert_eq!(st["index_range"], serde_json::json!([1, 200]));
    assert_eq!(st["term_range"], serde_json::json!([1, 3]));
    assert_eq!(st["torn_tail"], false);
    assert!(st["error"].is_null());
    assert_eq!(segs[1]["seq"], 1);
    assert_eq!(segs[1]["first_index"], 0x38);
    assert_eq!(
        segs[1]["entry_index_range"][0], 0x38,
        "a segment starts at its name's index"
    );
    let frames = read_json(&corpus().join("cut.frames.json"));
    for (s, f) in segs.iter().zip(frames.as_array().unwrap()) {
        assert_eq!(s["name"], f["name"]);
        assert_eq!(s["records"], f["frames"].as_array().unwrap().len());
    }
    let total: u64 = segs.iter().map(|s| s["size"].as_u64().unwrap()).sum();
    assert_eq!(st["total_bytes"], total);

    let run = walctl(&["stat", case_dir("basic").to_str().unwrap()]);
    assert_eq!(run.code, 0);
    assert!(run.stdout.contains("65536"), "{}", run.stdout);
    assert!(run.stdout.contains("16864"), "used bytes: {}", run.stdout);
}

#[test]
fn text_dump_of_every_case() {
    for case in ["basic", "cut", "emptydata", "snapshots", "server-a"] {
        let run = walctl(&["dump", case_dir(case).to_str().unwrap()]);
        assert_eq!(run.code, 0, "{case}: {}", run.stderr);
        for part in [
            "Hard state:",
            "read_all:       ok",
            "verify:         ok",
            "Valid snapshots:",
        ] {
            assert!(run.stdout.contains(part), "{case}: {part}\n{}", run.stdout);
        }
    }
    let run = walctl(&["dump", case_dir("emptydata").to_str().unwrap()]);
    assert!(run.stdout.contains("Metadata:       nil"), "{}", run.stdout);
    assert!(run.stdout.contains("<nil>"), "{}", run.stdout);
    // On snapshot-not-found etcd still returns the entries: the table shows them.
    let run = walctl(&[
        "dump",
        "--snap-index",
        "50",
        "--snap-term",
        "2",
        case_dir("snapshots").to_str().unwrap(),
    ]);
    assert_eq!(run.code, 1);
    assert!(
        run.stdout.contains("Entries:        70 (index 51..120)"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("read_all:       ERROR snapshot_not_found"),
        "{}",
        run.stdout
    );
}

#[test]
fn raw_dump_lists_every_frame() {
    let frames = read_json(&corpus().join("snapshots.frames.json"));
    let want: Vec<(String, u64, i64)> = frames
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| {
            let name = s["name"].as_str().unwrap().to_string();
            s["frames"].as_array().unwrap().iter().map(move |f| {
                (
                    name.clone(),
                    f["offset"].as_u64().unwrap(),
                    f["type"].as_i64().unwrap(),
                )
            })
        })
        .collect();
    let run = walctl(&[
        "dump",
        "--raw",
        "--json",
        case_dir("snapshots").to_str().unwrap(),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let v = run.json();
    let got: Vec<(String, u64, i64)> = v["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            assert_eq!(f["crc_ok"], true, "{f}");
            (
                f["file"].as_str().unwrap().to_string(),
                f["offset"].as_u64().unwrap(),
                f["type"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, want);
    assert_eq!(v["end"], "clean");
    let text = walctl(&["dump", "--raw", case_dir("snapshots").to_str().unwrap()]);
    assert_eq!(text.code, 0);
    assert!(text.stdout.contains("end: clean"));
    assert!(text.stdout.contains("0x00000000"), "{}", text.stdout);
}
