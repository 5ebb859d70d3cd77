//! Finding the WAL directory: a WAL dir, an etcd data dir, a dir holding `wal/`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use walctl::locate;

fn touch_segment(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("0000000000000000-0000000000000000.wal"), b"").unwrap();
}

#[test]
fn finds_the_wal_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();

    touch_segment(&t.join("plain"));
    let l = locate(&t.join("plain"));
    assert_eq!((l.wal_dir, l.how), (t.join("plain"), "wal dir"));

    touch_segment(&t.join("data/member/wal"));
    std::fs::create_dir_all(t.join("data/member/snap")).unwrap();
    let l = locate(&t.join("data"));
    assert_eq!(
        (l.wal_dir, l.how),
        (t.join("data/member/wal"), "member/wal")
    );
    let l = locate(&t.join("data/member"));
    assert_eq!((l.wal_dir, l.how), (t.join("data/member/wal"), "wal"));

    // Anything else is passed through for the WAL functions to report.
    let l = locate(&t.join("missing"));
    assert_eq!((l.wal_dir, l.how), (t.join("missing"), "as given"));
    std::fs::create_dir_all(t.join("empty")).unwrap();
    assert_eq!(locate(&t.join("empty")).wal_dir, t.join("empty"));
}
