//! A full disk: `save` fails with a typed `NoSpace`, the WAL refuses further writes,
//! and after space is freed a reopen finds every entry whose `save` returned Ok.

use std::path::Path;

use bytes::Bytes;
use wal::raftpb::{Entry, HardState};
use wal::walpb::Snapshot;
use wal::{Error, ErrorKind};
use wal_fileutil::FileSystem;
use wal_suite::crash::sim_options;
use wal_suite::simfs::SimFs;

#[test]
fn disk_full_is_no_space_and_loses_nothing_synced() {
    let fs = SimFs::new();
    fs.create_dir_all(Path::new("/data")).unwrap();
    let dir = Path::new("/data/wal");
    let opts = sim_options(&fs, 8192);
    let w = opts.create(dir, Some(b"full")).unwrap();
    // Room for the first segment, the prepared next one and a little more.
    fs.set_capacity(Some(3 * 8192 + 2000));
    let mut saved = 0u64;
    let err = loop {
        let i = saved + 1;
        let e = Entry {
            r#type: 0,
            term: 1,
            index: i,
            data: Some(Bytes::from(vec![i as u8; 700])),
        };
        match w.save(
            &HardState {
                term: 1,
                vote: 1,
                commit: i,
            },
            &[e],
        ) {
            Ok(()) => saved = i,
            Err(e) => break e,
        }
        assert!(saved < 10_000, "the disk never filled up");
    };
    println!("saved {saved} entries, then: {err}");
    assert_eq!(err.kind(), ErrorKind::NoSpace, "{err}");
    assert!(err.file().is_some(), "the error names the file: {err}");
    assert!(saved > 0);
    // Poisoned: no retry of a failed write.
    let again = w.save(
        &HardState {
            term: 1,
            vote: 1,
            commit: saved,
        },
        &[],
    );
    assert!(matches!(again, Err(Error::Poisoned(_))), "{again:?}");
    drop(w);

    // Free space; everything acknowledged is there.
    fs.set_capacity(None);
    let w = opts.open(dir, &Snapshot::default()).unwrap();
    let all = match w.read_all() {
        Ok(all) => all,
        Err(e) if e.is_repairable() => {
            drop(w);
            wal::verify::repair_with(&opts, dir).unwrap();
            opts.open(dir, &Snapshot::default())
                .unwrap()
                .read_all()
                .unwrap()
        }
        Err(e) => panic!("{e}"),
    };
    assert!(
        all.entries.len() as u64 >= saved,
        "{} < {saved}",
        all.entries.len()
    );
    for (i, e) in all.entries.iter().enumerate() {
        assert_eq!(e.index, i as u64 + 1);
        assert_eq!(e.data.as_deref(), Some(&vec![e.index as u8; 700][..]));
    }
}
