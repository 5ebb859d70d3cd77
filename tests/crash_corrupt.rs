//! The corruption suite: damage real WALs (a generated one and etcd's corpus) with
//! bit flips, zeroed sectors, truncation at and inside every record, appended
//! garbage, a deleted or renamed middle segment and leftover `.tmp`/`.broken` files,
//! and check every outcome: a correct prefix of the log (read mode tolerates a torn
//! tail, as etcd does), or a typed error naming the file and offset. Never a panic,
//! never data that was not written.
//!
//! One weakness is etcd's format's own: the CRC covers record data, not the record
//! type, so a flip that turns one valid type into another can go unnoticed by etcd
//! and by us alike. Such outcomes are counted as `format_blind`, not as failures.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use wal::walpb::Snapshot;
use wal::{ErrorKind, Options};
use wal_codec::{Decoder, Message, RecordType};
use wal_suite::crash::{check, recover, Gen, Log, Rec, Recovered, Step, Verdict};
use wal_suite::env_u64;
use wal_suite::simfs::Rng;
use wal_suite::{corpus_cases, segment, wal_files};

/// The record stream of a WAL and where its type bytes are.
struct Original {
    recs: Vec<Rec>,
    /// file name -> offsets of record-type bytes (not covered by the CRC).
    type_bytes: BTreeMap<String, Vec<u64>>,
    /// file name -> end of its last record.
    ends: BTreeMap<String, u64>,
}

fn read_original(dir: &Path) -> Original {
    let mut recs = Vec::new();
    let mut type_bytes = BTreeMap::new();
    let mut ends = BTreeMap::new();
    for path in wal_files(dir) {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let mut dec = Decoder::new(vec![segment(&path)]);
        let mut offs = Vec::new();
        while let Some(rec) = dec.decode().unwrap() {
            offs.push(dec.frame_offset() + 9);
            match RecordType::from_i64(rec.r#type) {
                Some(RecordType::Entry) => recs.push(Rec::Entry(
                    wal::raftpb::Entry::decode(rec.data.unwrap()).unwrap(),
                )),
                Some(RecordType::State) => recs.push(Rec::State(
                    wal::raftpb::HardState::decode(rec.data.unwrap()).unwrap(),
                )),
                Some(RecordType::Crc) => dec.update_crc(rec.crc),
                _ => {}
            }
        }
        ends.insert(name.clone(), dec.last_offset());
        type_bytes.insert(name, offs);
    }
    Original {
        recs,
        type_bytes,
        ends,
    }
}

#[derive(Debug, Default)]
struct Tally {
    states: u64,
    prefixes: u64,
    errors: BTreeMap<&'static str, u64>,
    format_blind: u64,
    wrong: Vec<String>,
    panics: Vec<String>,
}

/// One damage applied to a copy of the WAL.
#[derive(Debug, Clone)]
enum Damage {
    Flip { file: String, off: u64, mask: u8 },
    ZeroSector { file: String, sector: u64 },
    Truncate { file: String, len: u64 },
    AppendGarbage { file: String, seed: u64, len: usize },
    Delete { file: String },
    RenameSeq { file: String },
    Leftovers,
}

impl Damage {
    fn apply(&self, dir: &Path) {
        let p = |f: &str| dir.join(f);
        match self {
            Damage::Flip { file, off, mask } => {
                let mut b = std::fs::read(p(file)).unwrap();
                b[*off as usize] ^= mask;
                std::fs::write(p(file), b).unwrap();
            }
            Damage::ZeroSector { file, sector } => {
                let mut b = std::fs::read(p(file)).unwrap();
                let s = (*sector as usize * 512).min(b.len());
                let e = (s + 512).min(b.len());
                b[s..e].fill(0);
                std::fs::write(p(file), b).unwrap();
            }
            Damage::Truncate { file, len } => {
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(p(file))
                    .unwrap();
                f.set_len(*len).unwrap();
            }
            Damage::AppendGarbage { file, seed, len } => {
                let mut b = std::fs::read(p(file)).unwrap();
                let mut rng = Rng::new(*seed);
                b.extend((0..*len).map(|_| rng.next_u64() as u8));
                std::fs::write(p(file), b).unwrap();
            }
            Damage::Delete { file } => std::fs::remove_file(p(file)).unwrap(),
            Damage::RenameSeq { file } => {
                let (seq, idx) = wal::parse_wal_name(file).unwrap();
                std::fs::rename(p(file), p(&wal::wal_name(seq + 100, idx))).unwrap();
            }
            Damage::Leftovers => {
                std::fs::write(p("0.tmp"), vec![0u8; 4096]).unwrap();
                std::fs::write(p("1.tmp"), b"partial").unwrap();
                let first = wal_files(dir)[0].clone();
                let mut broken = first.into_os_string();
                broken.push(".broken");
                std::fs::write(broken, b"old backup").unwrap();
                std::fs::write(p("notes.txt"), b"foreign file").unwrap();
            }
        }
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

fn typed(kind: ErrorKind) -> &'static str {
    kind.as_str()
}

fn judge(orig: &Original, damage: &Damage, what: &str, got: Log, t: &mut Tally) {
    match check(&Log::default(), &orig.recs, 0, &got) {
        Verdict::Ok | Verdict::Lost => t.prefixes += 1,
        Verdict::Wrong => {
            let blind = matches!(damage, Damage::Flip { file, off, .. }
                if orig.type_bytes.get(file).is_some_and(|v| v.contains(off)));
            if blind {
                t.format_blind += 1;
            } else {
                t.wrong.push(format!(
                    "{what}: {damage:?} read back a log that was never written"
                ));
            }
        }
    }
}

fn run_one(src: &Path, orig: &Original, damage: &Damage, what: &str, t: &mut Tally) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wal");
    copy_dir(src, &dir);
    damage.apply(&dir);
    let snap = Snapshot::default();
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        // Read mode, then verify and valid_snapshot_entries, then write-mode recovery.
        let read = wal::open_for_read(&dir, &snap).and_then(|w| w.read_all());
        let _ = wal::verify(&dir, &snap);
        let _ = wal::valid_snapshot_entries(&dir);
        let rec = recover(&Options::new(), &dir);
        (read, rec)
    }));
    t.states += 2;
    let (read, rec) = match outcome {
        Ok(v) => v,
        Err(_) => {
            t.panics.push(format!("{what}: {damage:?} panicked"));
            return;
        }
    };
    match read {
        Ok(all) => judge(
            orig,
            damage,
            what,
            Log {
                entries: all.entries,
                hard_state: all.hard_state,
            },
            t,
        ),
        Err(e) => {
            let needs_place = matches!(
                e.kind(),
                ErrorKind::CrcMismatch
                    | ErrorKind::UnexpectedEof
                    | ErrorKind::Malformed
                    | ErrorKind::MetadataConflict
            );
            if needs_place && (e.file().is_none() || e.offset().is_none()) {
                t.wrong.push(format!(
                    "{what}: {damage:?}: error without file and offset: {e}"
                ));
            }
            *t.errors.entry(typed(e.kind())).or_default() += 1;
        }
    }
    match rec {
        Ok(Recovered::Wal(w, log)) => {
            drop(w);
            judge(orig, damage, &format!("{what} (write mode)"), log, t);
        }
        Ok(Recovered::NoWal) => *t.errors.entry("no_wal").or_default() += 1,
        Err(e) => {
            // Repair fixes the last segment only (as etcd's); a segment cut short in
            // the middle of the log stays an error.
            let last = wal_files(&dir).last().cloned();
            if e.is_repairable() && e.file().map(Path::to_path_buf) == last {
                t.wrong
                    .push(format!("{what}: {damage:?}: still torn after repair: {e}"));
            }
            *t.errors.entry(typed(e.kind())).or_default() += 1;
        }
    }
}

fn damages(dir: &Path, orig: &Original, rng: &mut Rng, flips: usize) -> Vec<Damage> {
    let files: Vec<String> = orig.ends.keys().cloned().collect();
    let last = files.last().unwrap().clone();
    let mut v = Vec::new();
    for _ in 0..flips {
        let file = files[rng.below(files.len() as u64) as usize].clone();
        let end = orig.ends[&file].max(1);
        v.push(Damage::Flip {
            file,
            off: rng.below(end),
            mask: 1 << rng.below(8),
        });
    }
    for _ in 0..flips / 4 {
        let file = files[rng.below(files.len() as u64) as usize].clone();
        let sectors = orig.ends[&file].div_ceil(512).max(1);
        v.push(Damage::ZeroSector {
            file,
            sector: rng.below(sectors),
        });
    }
    // Truncation at every record boundary of the last file and inside each record.
    let offs = &orig.type_bytes[&last];
    // Every record boundary, or an even sample of them (`CRASH_CORRUPT_FRAMES`).
    let max_frames = env_u64("CRASH_CORRUPT_FRAMES", 40) as usize;
    let stride = offs.len().div_ceil(max_frames.max(1)).max(1);
    for (i, &t) in offs.iter().enumerate() {
        if i % stride != 0 && i + 1 != offs.len() {
            continue;
        }
        let start = t - 9;
        let next = offs.get(i + 1).map_or(orig.ends[&last], |n| n - 9);
        v.push(Damage::Truncate {
            file: last.clone(),
            len: start,
        });
        v.push(Damage::Truncate {
            file: last.clone(),
            len: start + 1 + rng.below(next - start - 1),
        });
    }
    // And a few inside a middle file.
    if files.len() > 2 {
        let mid = files[files.len() / 2].clone();
        for _ in 0..8 {
            v.push(Damage::Truncate {
                file: mid.clone(),
                len: rng.below(orig.ends[&mid]),
            });
        }
        v.push(Damage::Delete { file: mid.clone() });
        v.push(Damage::RenameSeq { file: mid });
    }
    for _ in 0..6 {
        v.push(Damage::AppendGarbage {
            file: last.clone(),
            seed: rng.next_u64(),
            len: 1 + rng.below(3000) as usize,
        });
    }
    v.push(Damage::Leftovers);
    let _ = dir;
    v
}

fn generated_wal(dir: &Path, seed: u64) {
    let w = Options::new()
        .segment_size(16 * 1024)
        .create(dir, Some(b"corrupt suite"))
        .unwrap();
    let mut gen = Gen::new(seed, Log::default());
    for _ in 0..200 {
        match gen.step().0 {
            Step::Save(hs, ents) => w.save(&hs, &ents).unwrap(),
            Step::Snapshot(s) => w.save_snapshot(&s).unwrap(),
        }
    }
    w.close().unwrap();
}

#[test]
fn corrupt_suite() {
    let seed = env_u64("CRASH_SEED", 1);
    let flips = env_u64("CRASH_CORRUPT_FLIPS", 60) as usize;
    let mut rng = Rng::new(seed);
    let tmp = tempfile::tempdir().unwrap();
    let generated = tmp.path().join("generated");
    generated_wal(&generated, seed);
    let mut sources: Vec<(String, PathBuf)> = vec![("generated".into(), generated)];
    sources.extend(corpus_cases());
    let mut t = Tally::default();
    for (name, src) in &sources {
        let orig = read_original(src);
        let ds = damages(
            src,
            &orig,
            &mut rng,
            if name == "server-a" { flips / 4 } else { flips },
        );
        for d in &ds {
            run_one(src, &orig, d, name, &mut t);
        }
        // Leftovers change nothing.
        let tmp2 = tempfile::tempdir().unwrap();
        let dir = tmp2.path().join("wal");
        copy_dir(src, &dir);
        Damage::Leftovers.apply(&dir);
        let a = wal::open_for_read(src, &Snapshot::default())
            .unwrap()
            .read_all()
            .unwrap();
        let b = wal::open_for_read(&dir, &Snapshot::default())
            .unwrap()
            .read_all()
            .unwrap();
        assert_eq!(a, b, "{name}: leftover files must be ignored");
    }
    println!(
        "{{\"suite\": \"corrupt\", \"states\": {}, \"acked_entries_checked\": 0, \"lost\": 0, \"wrong\": {}, \"panics\": {}, \"prefixes\": {}, \"format_blind\": {}, \"errors\": {:?}}}",
        t.states,
        t.wrong.len(),
        t.panics.len(),
        t.prefixes,
        t.format_blind,
        t.errors
    );
    assert!(t.panics.is_empty(), "{:#?}", t.panics);
    assert!(t.wrong.is_empty(), "{:#?}", t.wrong);
    assert!(
        t.errors.get("crc_mismatch").copied().unwrap_or(0) > 0,
        "bit flips must be detected"
    );
    assert!(
        t.errors.get("file_not_found").copied().unwrap_or(0) > 0,
        "a missing segment must be reported"
    );
}
