//! `wal-peers`: the okaywal and raft-engine columns of `walctl bench`.
//!
//! ```text
//! wal-peers bench-append IMPL DIR ENTRY_BYTES BATCH SECONDS MAX_SAVES [nosync]
//! wal-peers bench-fill IMPL DIR ENTRIES ENTRY_BYTES
//! wal-peers bench-read IMPL DIR
//! ```
//!
//! IMPL is `okaywal` or `raft-engine`. `bench-append`: each save writes BATCH
//! raft entries of ENTRY_BYTES data bytes (the bench's byte pattern) and a
//! changing hard state, durably, for SECONDS or MAX_SAVES saves (0: no limit), on
//! a fresh log in DIR, and prints one JSON line with the same keys as the etcd
//! oracle's `bench-append`. `nosync` (raft-engine only) writes without syncing.
//! `bench-fill` writes ENTRIES entries into a fresh log (1000 per save) for
//! `bench-read`, which opens the log and reads every entry back into memory (as
//! etcd's `ReadAll` and the WAL's `read_all` do), and prints the oracle's
//! `bench-read` keys.
//!
//! Both peers run with their default configuration, except that raft-engine's
//! batch compression is off (the bench's entries are a repeating pattern lz4
//! would shrink, and every other column writes every byte), and that okaywal's
//! replay log is never checkpointed (a checkpointed entry is not replayed).
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

const USAGE: &str = "usage: wal-peers bench-append okaywal|raft-engine DIR ENTRY_BYTES BATCH SECONDS MAX_SAVES [nosync] | bench-fill IMPL DIR ENTRIES ENTRY_BYTES | bench-read IMPL DIR";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("bench-append") if args.len() >= 8 => append(&args),
        Some("bench-fill") if args.len() == 6 => fill(&args),
        Some("bench-read") if args.len() == 4 => read(&args),
        _ => die(USAGE),
    }
}

fn append(args: &[String]) {
    let nosync = match args.get(8).map(String::as_str) {
        None => false,
        Some("nosync") => true,
        Some(_) => die(USAGE),
    };
    let bench = Bench {
        entry_bytes: arg(args, 4, "ENTRY_BYTES"),
        batch: arg(args, 5, "BATCH"),
        limit: Duration::from_secs_f64(arg(args, 6, "SECONDS")),
        max_saves: arg(args, 7, "MAX_SAVES"),
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
        pattern(self.entry_bytes)
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

/// Saves of `batch` entries as okaywal stores them: one log entry per save, one
/// chunk per raft entry (index, term, data) and one for the hard state.
fn okaywal_save(log: &WriteAheadLog, first: u64, batch: usize, data: &[u8]) -> io::Result<()> {
    let mut chunk = Vec::with_capacity(16 + data.len());
    let mut w = log.begin_entry()?;
    for i in 0..batch as u64 {
        chunk.clear();
        chunk.extend_from_slice(&(first + i).to_le_bytes());
        chunk.extend_from_slice(&1u64.to_le_bytes());
        chunk.extend_from_slice(data);
        w.write_chunk(&chunk)?;
    }
    let commit = first + batch as u64 - 1;
    let mut st = [0u8; 24];
    st[..8].copy_from_slice(&1u64.to_le_bytes());
    st[8..16].copy_from_slice(&1u64.to_le_bytes());
    st[16..].copy_from_slice(&commit.to_le_bytes());
    w.write_chunk(&st)?;
    w.commit().map(|_| ())
}

fn okaywal(dir: &Path, b: &Bench) -> Result<(Vec<f64>, f64), String> {
    let log = WriteAheadLog::recover(dir, Collect::default())
        .map_err(|e| format!("okaywal open: {e}"))?;
    let data = b.data();
    let res =
        b.run(|first| okaywal_save(&log, first, b.batch, &data).map_err(|e| e.to_string()))?;
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

/// raft-engine's defaults, but for batch compression (off: see the module doc).
fn raft_engine_config(dir: &Path) -> Config {
    Config {
        dir: dir.display().to_string(),
        batch_compression_threshold: ReadableSize(0),
        ..Config::default()
    }
}

fn raft_engine(dir: &Path, b: &Bench, sync: bool) -> Result<(Vec<f64>, f64), String> {
    let engine =
        Engine::open(raft_engine_config(dir)).map_err(|e| format!("raft-engine open: {e}"))?;
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

fn pattern(entry_bytes: usize) -> Vec<u8> {
    (0..entry_bytes).map(|i| (i * 131 + 7) as u8).collect()
}

/// okaywal for the replay: nothing is checkpointed, so reopening replays it all.
fn okaywal_replay_config(dir: &Path) -> okaywal::Configuration {
    okaywal::Configuration::default_for(dir).checkpoint_after_bytes(u64::MAX)
}

/// Every recovered raft entry, kept like a `ReadAll` keeps them.
#[derive(Debug, Default)]
struct Collected {
    entries: Vec<Vec<u8>>,
    entry_bytes: u64,
}

/// A log manager with no storage layer behind it: it keeps what okaywal recovers
/// when a log is opened (nothing, for a fresh one) and persists nothing at a
/// checkpoint (okaywal then recycles the file). okaywal takes it by value.
#[derive(Debug, Clone, Default)]
struct Collect(std::sync::Arc<std::sync::Mutex<Collected>>);

impl LogManager for Collect {
    fn recover(&mut self, entry: &mut OkEntry<'_>) -> io::Result<()> {
        if let Some(chunks) = entry.read_all_chunks()? {
            let mut c = self.0.lock().map_err(|_| io::Error::other("poisoned"))?;
            let n = chunks.len().saturating_sub(1); // the last one is the hard state
            for chunk in chunks.into_iter().take(n) {
                c.entry_bytes += chunk.len().saturating_sub(16) as u64;
                c.entries.push(chunk);
            }
        }
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

const FILL_BATCH: usize = 1000;

fn fill(args: &[String]) {
    let (name, dir) = (args[2].as_str(), Path::new(&args[3]));
    let entries: usize = arg(args, 4, "ENTRIES");
    let data = pattern(arg(args, 5, "ENTRY_BYTES"));
    let res = match name {
        "okaywal" => (|| -> Result<(), String> {
            let log = okaywal_replay_config(dir)
                .open(Collect::default())
                .map_err(|e| format!("okaywal open: {e}"))?;
            let mut first = 1;
            while first <= entries as u64 {
                let n = FILL_BATCH.min(entries + 1 - first as usize);
                okaywal_save(&log, first, n, &data).map_err(|e| e.to_string())?;
                first += n as u64;
            }
            log.shutdown().map_err(|e| e.to_string())
        })(),
        "raft-engine" => (|| -> Result<(), String> {
            let engine = Engine::open(raft_engine_config(dir)).map_err(|e| e.to_string())?;
            let mut lb = LogBatch::with_capacity(FILL_BATCH);
            let mut first = 1;
            while first <= entries as u64 {
                let n = FILL_BATCH.min(entries + 1 - first as usize);
                let ents: Vec<Entry> = (0..n as u64)
                    .map(|i| {
                        let mut e = Entry::new();
                        e.term = 1;
                        e.index = first + i;
                        e.data = data.clone().into();
                        e
                    })
                    .collect();
                lb.add_entries::<Typed>(1, &ents)
                    .map_err(|e| e.to_string())?;
                engine.write(&mut lb, false).map_err(|e| e.to_string())?;
                first += n as u64;
            }
            engine.sync().map_err(|e| e.to_string())
        })(),
        other => die(format_args!("unknown IMPL {other:?}")),
    };
    if let Err(e) = res {
        die(e);
    }
    println!("{{\"entries\":{entries}}}");
}

fn vm_hwm() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

fn read(args: &[String]) {
    let (name, dir) = (args[2].as_str(), Path::new(&args[3]));
    let start = Instant::now();
    let res = match name {
        "okaywal" => (|| -> Result<(u64, u64), String> {
            let c = Collect::default();
            let log = okaywal_replay_config(dir)
                .open(c.clone())
                .map_err(|e| format!("okaywal open: {e}"))?;
            let got = c.0.lock().map_err(|_| "poisoned".to_string())?;
            let out = (got.entries.len() as u64, got.entry_bytes);
            drop(got);
            drop(log);
            Ok(out)
        })(),
        "raft-engine" => (|| -> Result<(u64, u64), String> {
            let engine = Engine::open(raft_engine_config(dir)).map_err(|e| e.to_string())?;
            let (Some(first), Some(last)) = (engine.first_index(1), engine.last_index(1)) else {
                return Ok((0, 0));
            };
            let mut ents = Vec::new();
            engine
                .fetch_entries_to::<Typed>(1, first, last + 1, None, &mut ents)
                .map_err(|e| e.to_string())?;
            let bytes = ents.iter().map(|e| e.data.len() as u64).sum();
            Ok((ents.len() as u64, bytes))
        })(),
        other => die(format_args!("unknown IMPL {other:?}")),
    };
    let (entries, bytes) = res.unwrap_or_else(|e| die(e));
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{{\"seconds\":{secs},\"entries\":{entries},\"entry_bytes\":{bytes},\"peak_rss_bytes\":{}}}",
        vm_hwm()
    );
}
