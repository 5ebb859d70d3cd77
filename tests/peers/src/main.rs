//! `wal-peers`: the okaywal and raft-engine columns of `walctl bench`.
//!
//! ```text
//! wal-peers bench-append IMPL DIR ENTRY_BYTES BATCH SECONDS MAX_SAVES [nosync]
//! ```
//!
//! IMPL is `okaywal` or `raft-engine`. Each save writes BATCH raft entries of
//! ENTRY_BYTES data bytes (the bench's byte pattern) and a changing hard state,
//! durably, for SECONDS or MAX_SAVES saves (0: no limit), on a fresh log in DIR,
//! and prints one JSON line with the same keys as the etcd oracle's
//! `bench-append`. `nosync` (raft-engine only) writes without syncing.
//!
//! Both peers run with their default configuration, except that raft-engine's
//! batch compression is off: the bench's entries are a repeating pattern lz4
//! would shrink, and every other column writes every byte.
//!
//! - okaywal: one log entry per save, one chunk per raft entry (index, term,
//!   data) and one for the hard state; `commit` syncs. It has no unsynced commit.
//! - raft-engine: one `LogBatch` per save, the entries added to region 1 and the
//!   hard state put as a message; `Engine::write(batch, sync)`.

use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

use okaywal::{Entry as OkEntry, EntryId, LogManager, SegmentReader, WriteAheadLog};
use raft_engine::{Config, Engine, LogBatch, MessageExt, ReadableSize};
use raft_proto::eraftpb::{Entry, HardState};

fn die(msg: impl std::fmt::Display) -> ! {
    eprintln!("wal-peers: {msg}");
    std::process::exit(1)
}

fn arg<T: std::str::FromStr>(args: &[String], i: usize, what: &str) -> T {
    match args.get(i).map(|s| s.parse::<T>()) {
        Some(Ok(v)) => v,
        _ => die(format_args!("bad or missing {what}")),
    }
}

const USAGE: &str =
    "usage: wal-peers bench-append okaywal|raft-engine DIR ENTRY_BYTES BATCH SECONDS MAX_SAVES [nosync]";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 8 || args[1] != "bench-append" {
        die(USAGE);
    }
    let nosync = match args.get(8).map(String::as_str) {
        None => false,
        Some("nosync") => true,
        Some(_) => die(USAGE),
    };
    let bench = Bench {
        entry_bytes: arg(&args, 4, "ENTRY_BYTES"),
        batch: arg(&args, 5, "BATCH"),
        limit: Duration::from_secs_f64(arg(&args, 6, "SECONDS")),
        max_saves: arg(&args, 7, "MAX_SAVES"),
    };
    let dir = Path::new(&args[3]);
    let lat = match (args[2].as_str(), nosync) {
        ("okaywal", false) => okaywal(dir, &bench),
        ("okaywal", true) => die("okaywal has no unsynced commit"),
        ("raft-engine", _) => raft_engine(dir, &bench, !nosync),
        (other, _) => die(format_args!("unknown IMPL {other:?}")),
    };
    let (mut lat, secs) = lat.unwrap_or_else(|e| die(e));
    lat.sort_by(f64::total_cmp);
    let saves = lat.len();
    println!(
        "{{\"saves\":{saves},\"entries\":{},\"seconds\":{secs},\"p50_us\":{},\"p99_us\":{},\"max_us\":{}}}",
        saves * bench.batch,
        pct(&lat, 0.50),
        pct(&lat, 0.99),
        pct(&lat, 1.0)
    );
}

/// The `p` quantile of sorted values (the rule of walctl bench and the oracle).
fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[(p * (sorted.len() - 1) as f64) as usize]
}

struct Bench {
    entry_bytes: usize,
    batch: usize,
    limit: Duration,
    max_saves: usize,
}

impl Bench {
    fn data(&self) -> Vec<u8> {
        (0..self.entry_bytes).map(|i| (i * 131 + 7) as u8).collect()
    }

    /// Calls `save(first_index)` until the time or the save count runs out;
    /// returns each save's latency (us) and the elapsed seconds.
    fn run(
        &self,
        mut save: impl FnMut(u64) -> Result<(), String>,
    ) -> Result<(Vec<f64>, f64), String> {
        let mut lat = Vec::with_capacity(1 << 16);
        let mut index = 1u64;
        let start = Instant::now();
        loop {
            let t0 = Instant::now();
            save(index)?;
            lat.push(t0.elapsed().as_secs_f64() * 1e6);
            index += self.batch as u64;
            if (self.max_saves > 0 && lat.len() >= self.max_saves)
                || (self.max_saves == 0 && start.elapsed() >= self.limit)
            {
                break;
            }
        }
        Ok((lat, start.elapsed().as_secs_f64()))
    }
}

/// A log manager with no storage layer behind it: nothing to recover into,
/// nothing to persist at a checkpoint (okaywal then recycles the file).
#[derive(Debug)]
struct NoStore;

impl LogManager for NoStore {
    fn recover(&mut self, _entry: &mut OkEntry<'_>) -> io::Result<()> {
        Ok(())
    }

    fn checkpoint_to(
        &mut self,
        _last: EntryId,
        _entries: &mut SegmentReader,
        _wal: &WriteAheadLog,
    ) -> io::Result<()> {
        Ok(())
    }
}

fn okaywal(dir: &Path, b: &Bench) -> Result<(Vec<f64>, f64), String> {
    let log = WriteAheadLog::recover(dir, NoStore).map_err(|e| format!("okaywal open: {e}"))?;
    let data = b.data();
    let mut chunk = Vec::with_capacity(16 + data.len());
    let res = b.run(|first| {
        let mut w = log.begin_entry().map_err(|e| e.to_string())?;
        for i in 0..b.batch as u64 {
            chunk.clear();
            chunk.extend_from_slice(&(first + i).to_le_bytes());
            chunk.extend_from_slice(&1u64.to_le_bytes());
            chunk.extend_from_slice(&data);
            w.write_chunk(&chunk).map_err(|e| e.to_string())?;
        }
        let commit = first + b.batch as u64 - 1;
        let mut st = [0u8; 24];
        st[..8].copy_from_slice(&1u64.to_le_bytes());
        st[8..16].copy_from_slice(&1u64.to_le_bytes());
        st[16..].copy_from_slice(&commit.to_le_bytes());
        w.write_chunk(&st).map_err(|e| e.to_string())?;
        w.commit().map(|_| ()).map_err(|e| e.to_string())
    })?;
    log.shutdown()
        .map_err(|e| format!("okaywal shutdown: {e}"))?;
    Ok(res)
}

struct Typed;

impl MessageExt for Typed {
    type Entry = Entry;

    fn index(e: &Entry) -> u64 {
        e.index
    }
}

fn raft_engine(dir: &Path, b: &Bench, sync: bool) -> Result<(Vec<f64>, f64), String> {
    let cfg = Config {
        dir: dir.display().to_string(),
        batch_compression_threshold: ReadableSize(0),
        ..Config::default()
    };
    let engine = Engine::open(cfg).map_err(|e| format!("raft-engine open: {e}"))?;
    let data = b.data();
    let mut ents: Vec<Entry> = (0..b.batch)
        .map(|_| {
            let mut e = Entry::new();
            e.term = 1;
            e.data = data.clone().into();
            e
        })
        .collect();
    let mut lb = LogBatch::with_capacity(b.batch + 1);
    b.run(|first| {
        for (i, e) in ents.iter_mut().enumerate() {
            e.index = first + i as u64;
        }
        let mut st = HardState::new();
        st.term = 1;
        st.vote = 1;
        st.commit = first + b.batch as u64 - 1;
        lb.add_entries::<Typed>(1, &ents)
            .map_err(|e| e.to_string())?;
        lb.put_message(1, b"hard_state".to_vec(), &st)
            .map_err(|e| e.to_string())?;
        engine.write(&mut lb, sync).map_err(|e| e.to_string())?;
        Ok(())
    })
}
