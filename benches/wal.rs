//! The `wal` facade under criterion: `save` without fsync (pure CPU) and with
//! fdatasync (with and without `keep_tick`), for entries of 100 B and 1000 B in
//! batches of 1, 10, 100 and 1000
//! (etcd's `BenchmarkWrite*Entry*` matrix, with a hard state that changes on every
//! save), then `read_all` and the streaming `Replay` of a 64 MiB WAL.
//!
//! `cargo bench --bench wal` (a few minutes). The side-by-side comparison with
//! the raw disk and etcd is `walctl bench` (docs/benchmarks.md).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use wal::raftpb::{Entry, HardState};
use wal::walpb::Snapshot;

const SIZES: [usize; 2] = [100, 1000];
const BATCHES: [usize; 4] = [1, 10, 100, 1000];
const SEGMENT: u64 = wal::DEFAULT_SEGMENT_SIZE;

fn batch(size: usize, n: usize) -> Vec<Entry> {
    let data = Bytes::from((0..size).map(|i| (i * 131 + 7) as u8).collect::<Vec<u8>>());
    (0..n)
        .map(|_| Entry {
            r#type: 0,
            term: 1,
            index: 0,
            data: Some(data.clone()),
        })
        .collect()
}

/// A WAL being appended to, with the entry index it is at.
struct Appender {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    w: wal::Wal,
    index: u64,
    ents: Vec<Entry>,
}

impl Appender {
    fn new(opts: wal::Options, size: usize, n: usize) -> Appender {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("wal");
        let w = opts
            .segment_size(SEGMENT)
            .create(&dir, Some(b"bench"))
            .unwrap();
        Appender {
            _tmp: tmp,
            dir,
            w,
            index: 0,
            ents: batch(size, n),
        }
    }

    fn save(&mut self) {
        for e in self.ents.iter_mut() {
            self.index += 1;
            e.index = self.index;
        }
        let st = HardState {
            term: 1,
            vote: 1,
            commit: self.index,
        };
        self.w.save(&st, &self.ents).unwrap();
    }

    /// Keeps the disk and the page cache small between samples: drops every
    /// segment but the last two (not timed).
    fn purge(&self) {
        self.w.release_lock_to(self.index).unwrap();
        let mut names: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "wal"))
            .collect();
        names.sort();
        for p in names.iter().rev().skip(2) {
            std::fs::remove_file(p).unwrap();
        }
    }
}

fn save_group(c: &mut Criterion, name: &str, opts: fn() -> wal::Options) {
    let mut g = c.benchmark_group(name);
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for size in SIZES {
        for n in BATCHES {
            g.throughput(Throughput::Elements(n as u64));
            let mut a = Appender::new(opts(), size, n);
            g.bench_function(BenchmarkId::new(format!("{size}B"), n), |b| {
                b.iter_custom(|iters| {
                    let t = Instant::now();
                    for _ in 0..iters {
                        a.save();
                    }
                    let took = t.elapsed();
                    a.purge();
                    took
                })
            });
        }
    }
    g.finish();
}

fn save_nosync(c: &mut Criterion) {
    save_group(c, "save_nosync", || {
        wal::Options::new().unsafe_no_sync(true)
    });
}

fn save_fdatasync(c: &mut Criterion) {
    save_group(c, "save_fdatasync", wal::Options::new);
}

/// The same without `keep_tick` (etcd's way), to measure what lever 20 gains.
fn save_fdatasync_no_keep_tick(c: &mut Criterion) {
    save_group(c, "save_fdatasync_no_keep_tick", || {
        wal::Options::new().keep_tick(false)
    });
}

/// A closed WAL holding about `bytes` of `size`-byte entries, and their data bytes.
fn written(size: usize, bytes: usize) -> (tempfile::TempDir, PathBuf, u64) {
    let mut a = Appender::new(wal::Options::new().unsafe_no_sync(true), size, 1000);
    let mut total = 0;
    while total < bytes {
        a.save();
        total += size * 1000;
    }
    let Appender { _tmp, dir, w, .. } = a;
    w.close().unwrap();
    (_tmp, dir, total as u64)
}

fn read_all(dir: &Path) -> usize {
    let w = wal::open_for_read(dir, &Snapshot::default()).unwrap();
    w.read_all().unwrap().entries.len()
}

fn stream(dir: &Path) -> usize {
    let mut n = 0;
    for ev in wal::Replay::open(dir, &Snapshot::default()).unwrap() {
        if let wal::Event::Entry(e) = ev.unwrap() {
            n += e.data.map_or(0, |d| d.len());
        }
    }
    n
}

fn replay(c: &mut Criterion) {
    let mut g = c.benchmark_group("replay");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for size in SIZES {
        let (_tmp, dir, bytes) = written(size, 64 << 20);
        g.throughput(Throughput::Bytes(bytes));
        g.bench_with_input(BenchmarkId::new("read_all", size), &dir, |b, d| {
            b.iter(|| read_all(d))
        });
        g.bench_with_input(BenchmarkId::new("stream", size), &dir, |b, d| {
            b.iter(|| stream(d))
        });
    }
    g.finish();
}

criterion_group!(
    benches,
    save_nosync,
    save_fdatasync,
    save_fdatasync_no_keep_tick,
    replay
);
criterion_main!(benches);
