//! The `wal` facade against the etcd 3.4.23 corpus: for every case and snapshot with
//! an expected file, `open_for_read` + `read_all`, `verify`, `valid_snapshot_entries`
//! and the write-mode open return exactly what etcd's own code returned.

use std::path::{Path, PathBuf};

use serde_json::Value;
use wal::walpb::Snapshot;
use wal::{Error, ErrorKind, ReadAll};
use wal_suite::{corpus_dir, read_json, sha256_hex};

/// (expected file, WAL directory)
fn expected_files() -> Vec<(PathBuf, PathBuf)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(corpus_dir()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        if let Some(stem) = name.strip_suffix(".expected.json") {
            let case = stem.split('.').next().unwrap();
            let dir = if case == "server-a" {
                corpus_dir().join(case).join("wal")
            } else {
                corpus_dir().join(case)
            };
            out.push((path, dir));
        }
    }
    out.sort();
    out
}

/// etcd's error string to our error kind.
fn kind_of(etcd: &str) -> ErrorKind {
    match etcd {
        s if s.contains("file not found") => ErrorKind::FileNotFound,
        s if s.contains("crc mismatch") => ErrorKind::CrcMismatch,
        s if s.contains("unexpected EOF") => ErrorKind::UnexpectedEof,
        s if s.contains("snapshot mismatch") => ErrorKind::SnapshotMismatch,
        s if s.contains("snapshot not found") => ErrorKind::SnapshotNotFound,
        s if s.contains("conflicting metadata") => ErrorKind::MetadataConflict,
        s if s.contains("slice bounds out of range") => ErrorKind::SliceOutOfRange,
        other => panic!("unmapped etcd error {other:?}"),
    }
}

fn check_error(what: &str, want: &Value, got: Option<&Error>) {
    match (want.as_str(), got) {
        (None, None) => {}
        (Some(w), Some(g)) => assert_eq!(g.kind(), kind_of(w), "{what}: got {g}"),
        (w, g) => panic!("{what}: want {w:?}, got {g:?}"),
    }
}

/// What etcd's ReadAll returns: on SnapshotNotFound everything; on other errors
/// nothing (the hard state zeroed).
fn read_all_like_etcd(r: Result<ReadAll, Error>) -> (ReadAll, Option<Error>) {
    match r {
        Ok(all) => (all, None),
        Err(Error::SnapshotNotFound { index, term, read }) => {
            let all = (*read).clone();
            (all, Some(Error::SnapshotNotFound { index, term, read }))
        }
        Err(e) => (ReadAll::default(), Some(e)),
    }
}

fn check_hard_state(what: &str, want: &Value, got: &wal::raftpb::HardState) {
    assert_eq!(want["term"].as_u64().unwrap(), got.term, "{what}: term");
    assert_eq!(want["vote"].as_u64().unwrap(), got.vote, "{what}: vote");
    assert_eq!(
        want["commit"].as_u64().unwrap(),
        got.commit,
        "{what}: commit"
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
    }
}

#[test]
fn corpus_read_mode_matches_etcd() {
    let cases = expected_files();
    assert_eq!(cases.len(), 12, "every expected file of the corpus");
    let mut entries_compared = 0;
    for (expected_path, dir) in cases {
        let what = expected_path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .to_string();
        let want = read_json(&expected_path);
        let snap = Snapshot {
            index: want["snapshot"]["index"].as_u64().unwrap(),
            term: want["snapshot"]["term"].as_u64().unwrap(),
            conf_state: None,
        };

        let opened = wal::open_for_read(&dir, &snap);
        check_error(
            &format!("{what} open"),
            &want["open_error"],
            opened.as_ref().err(),
        );
        let w = opened.unwrap();
        let (all, err) = read_all_like_etcd(w.read_all());
        check_error(
            &format!("{what} read_all"),
            &want["readall_error"],
            err.as_ref(),
        );

        assert_eq!(
            all.metadata.is_none(),
            want["metadata_nil"].as_bool().unwrap(),
            "{what}"
        );
        assert_eq!(
            hex::encode(all.metadata.as_deref().unwrap_or_default()),
            want["metadata_hex"].as_str().unwrap(),
            "{what}: metadata"
        );
        check_hard_state(&what, &want["hardstate"], &all.hard_state);
        let want_entries = want["entries"].as_array().unwrap();
        assert_eq!(all.entries.len(), want_entries.len(), "{what}: entry count");
        for (e, w) in all.entries.iter().zip(want_entries) {
            assert_eq!(e.index, w["index"].as_u64().unwrap(), "{what}");
            assert_eq!(
                e.term,
                w["term"].as_u64().unwrap(),
                "{what} index {}",
                e.index
            );
            assert_eq!(
                i64::from(e.r#type),
                w["type"].as_i64().unwrap(),
                "{what} index {}",
                e.index
            );
            assert_eq!(
                e.data.is_none(),
                w["data_nil"].as_bool().unwrap(),
                "{what} index {}",
                e.index
            );
            let data = e.data.as_deref().unwrap_or_default();
            assert_eq!(data.len() as u64, w["data_len"].as_u64().unwrap());
            assert_eq!(
                sha256_hex(data),
                w["data_sha256"].as_str().unwrap(),
                "{what} index {}",
                e.index
            );
            entries_compared += 1;
        }

        let verified = wal::verify(&dir, &snap);
        check_error(
            &format!("{what} verify"),
            &want["verify"]["error"],
            verified.as_ref().err(),
        );

        let vse = wal::valid_snapshot_entries(&dir);
        check_error(
            &format!("{what} vse"),
            &want["valid_snapshot_entries_error"],
            vse.as_ref().err(),
        );
        let got: Vec<(u64, u64)> = vse.unwrap().iter().map(|s| (s.index, s.term)).collect();
        let want_vse: Vec<(u64, u64)> = want["valid_snapshot_entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (s["index"].as_u64().unwrap(), s["term"].as_u64().unwrap()))
            .collect();
        assert_eq!(got, want_vse, "{what}: valid snapshot entries");

        // Write mode, on a throw-away copy (write-mode read_all zeroes the tail).
        let tmp = tempfile::tempdir().unwrap();
        let copy = tmp.path().join("wal");
        copy_dir(&dir, &copy);
        let wm = &want["write_mode"];
        let opened = wal::open(&copy, &snap);
        check_error(
            &format!("{what} write open"),
            &wm["open_error"],
            opened.as_ref().err(),
        );
        let w = opened.unwrap();
        let (all2, err2) = read_all_like_etcd(w.read_all());
        check_error(
            &format!("{what} write read_all"),
            &wm["readall_error"],
            err2.as_ref(),
        );
        check_hard_state(&what, &wm["hardstate"], &all2.hard_state);
        assert_eq!(
            all2.entries.len() as u64,
            wm["entries_count"].as_u64().unwrap(),
            "{what}"
        );
        assert_eq!(
            all2.entries, all.entries,
            "{what}: write mode reads the same"
        );
        w.close().unwrap();
    }
    assert!(entries_compared > 3000, "{entries_compared}");
}
