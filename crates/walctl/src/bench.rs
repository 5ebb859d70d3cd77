//! `walctl bench`: the performance suite (issue 8), measured in one run on one
//! directory so every ratio compares like with like.
//!
//! - **append**: for entry sizes 100 B and 1000 B and batches of 1, 10, 100 and
//!   1000 entries per save (etcd's `BenchmarkWrite*Entry*` matrix), with a hard
//!   state that changes on every save so every save fdatasyncs:
//!   - `wal`: this crate's [`wal::Wal::save`] on a fresh WAL with 64 MB segments;
//!   - `wal-fallocated`: the same with [`wal::Options::zero_fill_segments`] off
//!     (etcd's plain `fallocate` segments), to show that lever;
//!   - `raw-fallocated`: the same framed bytes, `pwrite` + `fdatasync`, into
//!     segment-sized files preallocated with `fallocate` (what etcd's segments are);
//!   - `raw-zeroed`: the same into segment-sized files whose blocks were already
//!     written (with zeros) and synced;
//!   - `raw-zeroing`: the same into fresh `fallocate`d files that a helper thread
//!     zero-fills one ahead and the writer fdatasyncs when it moves to the next:
//!     the zeros any byte-compatible WAL must write if its segments are to have
//!     written blocks, with no framing and no cut sequence (`wal`'s ceiling);
//!   - `raw-zeroed-direct`, `raw-zeroing-direct`, `raw-fallocated-direct`: the
//!     three above written past the page cache (`O_DIRECT`, zeros too), the
//!     way the WAL's direct writes put a save on disk (the partial page before
//!     it, padded to whole pages): the ceilings of a WAL that writes directly;
//!   - `etcd`: etcd 3.4's Go WAL through the interop oracle
//!     (`tests/interop/oracle`), when Go and etcd's sources are installed;
//!   - `okaywal` and `raft-engine`: the Rust peers, each saving the same entries
//!     and hard state durably (`tests/peers`, built with cargo when not given).
//!
//!   The raw baselines write exactly as many saves as the WAL did in that repetition
//!   (the same total bytes over the same number of segment-sized files).
//! - **cpu_save**: `save` with `unsafe_no_sync` (pure CPU), beside etcd's
//!   `SetUnsafeNoFsync`, raft-engine's unsynced write, and `raw-write`: the same
//!   framed bytes written into fresh preallocated files without fsync, the
//!   page-cache cost every WAL pays; and
//!   `raw-write-cached`: the same into files whose pages are already in the page
//!   cache, the floor of one `write` per save. The WAL's run ends after the time
//!   or after 1 GiB of saves (`CPU_RUN_BYTES`), and every other column makes the
//!   same number of saves.
//! - **replay**: about 256 MiB of 1 KiB entries in 64 MB segments, read with
//!   `read_all`, streamed with [`wal::Replay`], read raw with CRC32C, and read by
//!   etcd's `ReadAll`; each run in a fresh process (so memory is as fresh as at a
//!   real restart), warm and, when `/proc/sys/vm/drop_caches` is writable, cold.
//!   The child process reports its peak RSS (`VmHWM`).
//! - **cuts**: p50/p99 save latency over a run crossing many segment cuts against
//!   runs of the same saves crossing none.
//!
//! Every figure is the median over repetitions; ratios are within the run.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use serde::Serialize;
use wal::raftpb::{Entry, HardState};
use wal::walpb::Snapshot;
use wal_codec::{encode_entry, encode_hard_state, Encoder, EntryEncoding, RecordType};

/// etcd's segment size, used for every append and replay case.
pub const SEGMENT_BYTES: u64 = wal::DEFAULT_SEGMENT_SIZE;

const ENTRY_SIZES: [usize; 2] = [100, 1000];
const BATCHES: [usize; 4] = [1, 10, 100, 1000];
const REPLAY_ENTRY_BYTES: usize = 1024;
/// Repetitions of each cold read unless `--reps` says otherwise. The same cold
/// read of the same files runs at 0.8 to 2.7 GB/s from one run to the next here
/// (the raw read included), so a median of three is a coin toss; each takes
/// well under a second. A multiple of [`OWN_READERS`], so that each of them
/// runs first equally often ([`turn_order`]).
const COLD_REPS: usize = 9;
/// At most this many bytes of saves per run without fsync. Such a run makes a new
/// page-cache page for every 4 KiB it writes, and past about 2 GB in a row on this
/// VM (the memory the runs before it had just freed) each new page costs a host
/// fault and the run drops to about 0.4 GB/s: it then measures the host, not the
/// code. Every column of a cell makes the WAL's number of saves, so all write the
/// same bytes (docs/benchmarks.md, "Save without fsync, 3x etcd").
const CPU_RUN_BYTES: u64 = 1 << 30;
/// The time bound of a run of etcd or a peer that is to make a given number of
/// saves: a backstop only.
const OTHER_SECONDS_MAX: f64 = 60.0;

/// When a run of saves ends: after `seconds` or after `saves` saves, whichever
/// comes first (0: no bound of that kind). etcd's oracle takes 0 seconds as "at
/// once", so its runs always get a time bound.
#[derive(Debug, Clone, Copy)]
struct Until {
    seconds: f64,
    saves: u64,
}

impl Until {
    fn seconds(seconds: f64) -> Self {
        Self { seconds, saves: 0 }
    }

    fn saves(saves: u64) -> Self {
        Self {
            seconds: 0.0,
            saves,
        }
    }
}

const METADATA: &[u8] = b"walctl bench";

/// What to run.
#[derive(Debug, Clone, Default)]
pub struct BenchOptions {
    /// Directory to work in (a fresh subdirectory is made and removed); the system
    /// temporary directory when `None`.
    pub dir: Option<PathBuf>,
    /// A reduced matrix that finishes in well under a minute.
    pub quick: bool,
    /// Seconds per append case (default 2, quick 0.3).
    pub seconds: Option<f64>,
    /// Repetitions of every case (default 3, cold reads 9, quick 1).
    pub reps: Option<usize>,
    /// The etcd oracle binary; when `None` it is built if Go is installed.
    pub oracle: Option<PathBuf>,
    /// Skip the etcd column.
    pub no_etcd: bool,
    /// The peers binary (`tests/peers`); when `None` it is built if cargo is
    /// installed and the sources are there.
    pub peers: Option<PathBuf>,
    /// Skip the okaywal and raft-engine columns.
    pub no_peers: bool,
    /// Run this WAL and the raw baselines without [`wal::Options::keep_tick`]
    /// (etcd's way), to measure what it gains.
    pub no_keep_tick: bool,
    /// This executable, for the replay runs in fresh processes (`bench-child`);
    /// when `None` they run in this process and RSS is not reported.
    pub self_exe: Option<PathBuf>,
    /// Run only these parts (`append`, `cpu`, `cuts`, `replay`); all when empty.
    pub only: Vec<String>,
    /// Run only these append and no-fsync cells (`"1000x100"`: batch x entry bytes, as
    /// in the tables);
    /// all when empty.
    pub cells: Vec<String>,
    /// Progress lines on stderr.
    pub log: bool,
    /// The command line, recorded in the report.
    pub command: String,
}

/// The whole report (`--json` prints it).
#[derive(Debug, Serialize)]
pub struct Report {
    /// Where and on what it ran.
    pub machine: Machine,
    /// How it ran.
    pub config: Config,
    /// The append matrix.
    pub append: Vec<AppendRow>,
    /// `save` without fdatasync.
    pub cpu_save: Vec<AppendRow>,
    /// Replay throughput and memory.
    pub replay: Vec<ReplayRow>,
    /// Save latency with and without segment cuts.
    pub cuts: Cuts,
    /// The targets, computed from the rows above.
    pub ratios: Ratios,
    /// Columns that could not be measured, and why.
    pub unavailable: Vec<String>,
}

/// The machine.
#[derive(Debug, Serialize)]
pub struct Machine {
    /// CPUs available.
    pub nproc: usize,
    /// CPU model.
    pub cpu: String,
    /// Total memory.
    pub mem_total_bytes: u64,
    /// Kernel release.
    pub kernel: String,
    /// The directory measured in.
    pub dir: String,
    /// Its file system type (from /proc/mounts).
    pub fs_type: String,
    /// Its block device.
    pub device: String,
    /// /proc/loadavg when the run started and when it ended (other work on the
    /// machine skews every figure).
    pub loadavg: Vec<String>,
    /// The guest's free page reporting (`/sys/module/page_reporting`), if on: it
    /// hands free memory back to the host, whose next use then faults there, so
    /// the pace of anything that takes new memory (page cache included) depends
    /// on what was freed before it. `None` where there is no such module.
    pub free_page_reporting: Option<String>,
}

/// The run's parameters.
#[derive(Debug, Serialize)]
pub struct Config {
    /// The command line.
    pub command: String,
    /// `--quick`.
    pub quick: bool,
    /// Seconds per append case.
    pub seconds: f64,
    /// Repetitions per case (figures are medians).
    pub reps: usize,
    /// Repetitions of each cold read.
    pub cold_reps: usize,
    /// Segment size of every WAL and raw file.
    pub segment_bytes: u64,
    /// Entry bytes in the replay WAL.
    pub replay_entry_bytes: u64,
    /// Whether this WAL and the raw baselines kept the CPU's tick running through
    /// their fdatasyncs ([`wal::Options::keep_tick`]; `--no-keep-tick` turns it
    /// off). The other columns run as they are.
    pub keep_tick: bool,
    /// Bytes of saves per run without fsync at most; etcd and the peers make as
    /// many saves as the WAL did.
    pub cpu_run_bytes: u64,
    /// What `mb_per_s` counts: entry data bytes (append) or WAL bytes (replay), 10^6.
    pub units: &'static str,
}

/// One cell of the append matrix for one implementation.
#[derive(Debug, Clone, Serialize)]
pub struct AppendRow {
    /// `wal`, `wal-fallocated`, `raw-fallocated`, `raw-zeroed`, `raw-zeroing`,
    /// `etcd`, `okaywal` or `raft-engine` (no fsync: `wal`, `raw-write`,
    /// `raw-write-cached`, `etcd`, `raft-engine`).
    #[serde(rename = "impl")]
    pub impl_name: String,
    /// Data bytes per entry.
    pub entry_bytes: usize,
    /// Entries per save.
    pub batch: usize,
    /// Saves per second.
    pub saves_per_s: Option<f64>,
    /// Entries per second.
    pub entries_per_s: Option<f64>,
    /// Entry data, MB (10^6) per second.
    pub mb_per_s: Option<f64>,
    /// Median save latency.
    pub p50_us: Option<f64>,
    /// 99th percentile save latency.
    pub p99_us: Option<f64>,
    /// Saves in the median repetition.
    pub saves: Option<u64>,
    /// Percent of the machine's CPU time the hypervisor took while the case
    /// ran (`steal`, `/proc/stat`), median over the repetitions: a starved
    /// case, not a slow implementation, where it is high.
    pub steal_pct: Option<f64>,
    /// Why there are no figures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// One replay measurement.
#[derive(Debug, Clone, Serialize)]
pub struct ReplayRow {
    /// `read_all`, `stream`, `raw-read-crc`, `etcd`, `okaywal` or `raft-engine`
    /// (the peers read their own logs of the same entries back into memory).
    #[serde(rename = "impl")]
    pub impl_name: String,
    /// `warm` or `cold`.
    pub cache: String,
    /// WAL bytes (frames) per second, 10^6; for the peers, this WAL's bytes of
    /// the same entries over the peer's time, so every row compares entries per
    /// second.
    pub mb_per_s: Option<f64>,
    /// Every repetition's figure, in the order they ran (`mb_per_s` is their
    /// median): cold reads here swing by 2x from one run to the next.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mb_per_s_reps: Vec<f64>,
    /// Peak RSS of the process that did it (`VmHWM`).
    pub peak_rss_bytes: Option<u64>,
    /// RSS of that process before it started reading.
    pub baseline_rss_bytes: Option<u64>,
    /// Entries read.
    pub entries: Option<u64>,
    /// Percent of the machine's CPU time the hypervisor took during the
    /// repetitions (`steal`, `/proc/stat`), median.
    pub steal_pct: Option<f64>,
    /// Why there are no figures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Latency over cuts.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Cuts {
    /// The workload.
    pub entry_bytes: usize,
    /// Entries per save.
    pub batch: usize,
    /// Saves per run.
    pub saves: u64,
    /// Segment cuts the cutting run crossed.
    pub cuts_crossed: u64,
    /// p50 with cuts.
    pub p50_us_with_cuts: f64,
    /// p99 with cuts.
    pub p99_us_with_cuts: f64,
    /// p99.9 with cuts.
    pub p999_us_with_cuts: f64,
    /// Slowest save with cuts.
    pub max_us_with_cuts: f64,
    /// p50 without cuts.
    pub p50_us_without_cuts: f64,
    /// p99 without cuts.
    pub p99_us_without_cuts: f64,
    /// p99.9 without cuts.
    pub p999_us_without_cuts: f64,
    /// Slowest save without cuts.
    pub max_us_without_cuts: f64,
    /// Median latency of the saves that cut.
    pub cut_save_p50_us: f64,
}

/// The targets of issue 8, as measured.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Ratios {
    /// Per cell: wal over each other implementation (saves/s).
    pub append: Vec<CellRatio>,
    /// Per cell: wal over etcd and over raft-engine, no fsync (entries/s), and over
    /// `raw-write` (the same bytes written, nothing else).
    pub cpu_save_vs_etcd: Vec<CellRatio>,
    /// Streaming, warm, GB/s.
    pub stream_warm_gb_per_s: Option<f64>,
    /// `read_all` over etcd's `ReadAll`, warm.
    pub read_all_vs_etcd_warm: Option<f64>,
    /// `read_all` over okaywal's recovery of the same entries, warm.
    pub read_all_vs_okaywal_warm: Option<f64>,
    /// `read_all` over raft-engine's open + fetch of the same entries, warm.
    pub read_all_vs_raft_engine_warm: Option<f64>,
    /// `read_all` over the raw read, warm.
    pub read_all_vs_raw_warm: Option<f64>,
    /// `read_all` over the raw read, cold.
    pub read_all_vs_raw_cold: Option<f64>,
    /// Streaming over the raw read, cold.
    pub stream_vs_raw_cold: Option<f64>,
    /// `read_all` peak RSS over the entry bytes.
    pub read_all_rss_over_entry_bytes: Option<f64>,
    /// Streaming peak RSS over one segment.
    pub stream_rss_over_segment: Option<f64>,
    /// p99 with cuts over p99 without.
    pub cut_p99_ratio: Option<f64>,
}

/// One cell's ratios.
#[derive(Debug, Clone, Serialize)]
pub struct CellRatio {
    /// Data bytes per entry.
    pub entry_bytes: usize,
    /// Entries per save.
    pub batch: usize,
    /// wal / raw-zeroed.
    pub vs_raw_zeroed: Option<f64>,
    /// wal / raw-fallocated.
    pub vs_raw_fallocated: Option<f64>,
    /// wal / raw-zeroing.
    pub vs_raw_zeroing: Option<f64>,
    /// The best of raw-zeroing and raw-fallocated, written through the page
    /// cache or past it, over raw-zeroed: the most a WAL that makes its
    /// (etcd-identical) segments as it goes can reach of raw-zeroed.
    pub ceiling_vs_raw_zeroed: Option<f64>,
    /// wal / raw-zeroed-direct.
    pub vs_raw_zeroed_direct: Option<f64>,
    /// wal / raw-zeroing-direct.
    pub vs_raw_zeroing_direct: Option<f64>,
    /// wal-fallocated / raw-fallocated-direct.
    pub fallocated_vs_raw_fallocated_direct: Option<f64>,
    /// wal / etcd.
    pub vs_etcd: Option<f64>,
    /// wal / okaywal (it has no unsynced commit: null without fsync).
    pub vs_okaywal: Option<f64>,
    /// wal / raft-engine.
    pub vs_raft_engine: Option<f64>,
    /// wal / raw-write: saves without fsync only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vs_raw_write: Option<f64>,
}

struct Plan {
    cells: Vec<(usize, usize)>,
    seconds: f64,
    reps: usize,
    cpu_cells: Vec<(usize, usize)>,
    cpu_seconds: f64,
    replay_bytes: u64,
    replay_reps: usize,
    /// Repetitions of every cold read: more than of the rest, because one cold
    /// read is short and the disk's pace swings between runs (docs/benchmarks.md).
    cold_reps: usize,
    cut_cuts: u64,
    cut_reps: usize,
    keep_tick: bool,
}

impl Plan {
    fn new(o: &BenchOptions) -> Plan {
        let all: Vec<(usize, usize)> = ENTRY_SIZES
            .iter()
            .flat_map(|&e| BATCHES.iter().map(move |&b| (e, b)))
            .filter(|(e, b)| o.cells.is_empty() || o.cells.iter().any(|c| *c == format!("{b}x{e}")))
            .collect();
        if o.quick {
            Plan {
                cells: all.clone(),
                seconds: o.seconds.unwrap_or(0.3),
                reps: o.reps.unwrap_or(1).max(1),
                cpu_cells: all
                    .iter()
                    .copied()
                    .filter(|c| [(100, 100), (1000, 1000)].contains(c))
                    .collect(),
                cpu_seconds: 0.2,
                replay_bytes: 48 << 20,
                replay_reps: o.reps.unwrap_or(1).max(1),
                cold_reps: o.reps.unwrap_or(1).max(1),
                cut_cuts: 3,
                cut_reps: 1,
                keep_tick: !o.no_keep_tick,
            }
        } else {
            Plan {
                cells: all.clone(),
                seconds: o.seconds.unwrap_or(2.0),
                reps: o.reps.unwrap_or(3).max(1),
                cpu_cells: all,
                cpu_seconds: 0.5,
                replay_bytes: 256 << 20,
                replay_reps: o.reps.unwrap_or(3).max(1),
                cold_reps: o.reps.unwrap_or(COLD_REPS).max(1),
                cut_cuts: 12,
                cut_reps: o.reps.unwrap_or(3).max(1),
                keep_tick: !o.no_keep_tick,
            }
        }
    }
}

/// One timed run.
#[derive(Debug, Clone, Default)]
struct Run {
    saves: u64,
    secs: f64,
    lat_us: Vec<f64>,
    p50: f64,
    p99: f64,
    cut_lat_us: Vec<f64>,
    /// Percent of the machine's CPU time the hypervisor took during the run.
    steal_pct: f64,
}

impl Run {
    fn finish(mut self) -> Run {
        self.lat_us.sort_by(f64::total_cmp);
        self.p50 = pct(&self.lat_us, 0.50);
        self.p99 = pct(&self.lat_us, 0.99);
        self
    }
}

/// A window over which to count the CPU time the hypervisor gave to someone
/// else while this VM had work (`steal` in `/proc/stat`): on a shared machine,
/// the figure that says whether a slow case was slow or starved.
#[derive(Clone, Copy)]
struct Steal {
    ticks: u64,
    at: Instant,
}

impl Steal {
    fn start() -> Steal {
        Steal {
            ticks: steal_ticks(),
            at: Instant::now(),
        }
    }

    /// Percent of all CPUs' time since `start` that was stolen.
    fn pct(self) -> f64 {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let wall = self.at.elapsed().as_secs_f64() * cpus;
        // /proc/stat counts in USER_HZ, 100 per second on every Linux ABI.
        let stolen = steal_ticks().saturating_sub(self.ticks) as f64 / 100.0;
        if wall > 0.0 {
            (100.0 * stolen / wall).min(100.0)
        } else {
            0.0
        }
    }
}

/// `steal` of all CPUs so far, in USER_HZ ticks; 0 where it is not counted.
fn steal_ticks() -> u64 {
    steal_of(&read_text("/proc/stat"))
}

/// `steal` (the eighth number) of the `cpu` line of a `/proc/stat` text.
fn steal_of(stat: &str) -> u64 {
    stat.lines()
        .find_map(|l| l.strip_prefix("cpu "))
        .and_then(|l| l.split_whitespace().nth(7)?.parse().ok())
        .unwrap_or(0)
}

/// The `p` quantile of sorted values (Go's side uses the same rule).
fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[(p * (sorted.len() - 1) as f64) as usize]
}

/// `min-max (n)` of a case's repetitions, for the text tables.
fn spread(each: &[f64]) -> String {
    if each.is_empty() {
        return "n/a".to_string();
    }
    let lo = each.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = each.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{lo:.0}-{hi:.0} ({})", each.len())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return 0.0;
    }
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

struct Ctx {
    base: PathBuf,
    log: bool,
    oracle: Option<PathBuf>,
    peers: Option<PathBuf>,
    self_exe: Option<PathBuf>,
    counter: u64,
    unavailable: Vec<String>,
}

impl Ctx {
    fn say(&self, msg: impl AsRef<str>) {
        if self.log {
            eprintln!("bench: {}", msg.as_ref());
        }
    }

    fn fresh(&mut self, what: &str) -> PathBuf {
        self.counter += 1;
        self.base.join(format!("{what}-{}", self.counter))
    }
}

/// Runs the suite and returns its report.
pub fn run(o: &BenchOptions) -> Result<Report> {
    // A helper given by path is checked now, not minutes into the run.
    for (flag, path) in [("--oracle", &o.oracle), ("--peers", &o.peers)] {
        if let Some(p) = path {
            if !p.is_file() {
                bail!("{flag} {}: no such file", p.display());
            }
        }
    }
    let plan = Plan::new(o);
    let parent = o.dir.clone().unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&parent).with_context(|| format!("creating {}", parent.display()))?;
    let base = parent.join(format!("walctl-bench.{}", std::process::id()));
    if base.exists() {
        std::fs::remove_dir_all(&base).with_context(|| format!("removing {}", base.display()))?;
    }
    std::fs::create_dir_all(&base).with_context(|| format!("creating {}", base.display()))?;
    let mut ctx = Ctx {
        base: base.clone(),
        log: o.log,
        oracle: None,
        peers: None,
        self_exe: o.self_exe.clone(),
        counter: 0,
        unavailable: Vec::new(),
    };
    let result = run_in(o, &plan, &mut ctx);
    if let Err(e) = std::fs::remove_dir_all(&base) {
        eprintln!("walctl bench: removing {}: {e}", base.display());
    }
    result
}

fn run_in(o: &BenchOptions, plan: &Plan, ctx: &mut Ctx) -> Result<Report> {
    let machine = machine(&ctx.base);
    ctx.say(format!(
        "in {} ({} on {}), {} s per case, {} repetitions",
        ctx.base.display(),
        machine.fs_type,
        machine.device,
        plan.seconds,
        plan.reps
    ));
    if o.no_etcd {
        ctx.unavailable.push("etcd: --no-etcd".into());
    } else {
        match o
            .oracle
            .clone()
            .map(Ok)
            .unwrap_or_else(|| build_oracle(ctx))
        {
            Ok(p) => ctx.oracle = Some(p),
            Err(why) => {
                ctx.say(format!("etcd column unavailable: {why}"));
                ctx.unavailable.push(format!("etcd: {why}"));
            }
        }
    }
    if o.no_peers {
        ctx.unavailable
            .push("okaywal, raft-engine: --no-peers".into());
    } else {
        match o.peers.clone().map(Ok).unwrap_or_else(|| build_peers(ctx)) {
            Ok(p) => ctx.peers = Some(p),
            Err(why) => {
                ctx.say(format!(
                    "okaywal and raft-engine columns unavailable: {why}"
                ));
                ctx.unavailable.push(format!("okaywal, raft-engine: {why}"));
            }
        }
    }
    let part = |name: &str| o.only.is_empty() || o.only.iter().any(|p| p == name);
    let append = if part("append") {
        append_matrix(plan, ctx)?
    } else {
        Vec::new()
    };
    let cpu_save = if part("cpu") {
        cpu_matrix(plan, ctx)?
    } else {
        Vec::new()
    };
    let cuts = if part("cuts") {
        cuts(plan, ctx)?
    } else {
        Cuts::default()
    };
    let replay = if part("replay") {
        replay(plan, ctx)?
    } else {
        Vec::new()
    };
    let ratios = ratios(&append, &cpu_save, &replay, &cuts, plan);
    let mut machine = machine;
    machine
        .loadavg
        .push(read_text("/proc/loadavg").trim().to_string());
    Ok(Report {
        machine,
        config: Config {
            command: o.command.clone(),
            quick: o.quick,
            seconds: plan.seconds,
            reps: plan.reps,
            cold_reps: plan.cold_reps,
            segment_bytes: SEGMENT_BYTES,
            replay_entry_bytes: plan.replay_bytes,
            keep_tick: plan.keep_tick,
            cpu_run_bytes: CPU_RUN_BYTES,
            units: "append mb_per_s: entry data bytes; replay mb_per_s: WAL frame bytes read; MB = 10^6",
        },
        append,
        cpu_save,
        replay,
        cuts,
        ratios,
        unavailable: ctx.unavailable.clone(),
    })
}

// ---------------------------------------------------------------------------
// The machine

fn read_text(p: &str) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

fn machine(dir: &Path) -> Machine {
    let mem = read_text("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024);
    let cpu = read_text("/proc/cpuinfo")
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_default();
    let canon = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let mut best: Option<(usize, String, String)> = None;
    for line in read_text("/proc/mounts").lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 3 {
            continue;
        }
        if canon.starts_with(f[1]) && best.as_ref().is_none_or(|b| f[1].len() >= b.0) {
            best = Some((f[1].len(), f[2].to_string(), f[0].to_string()));
        }
    }
    let (fs_type, device) = best.map(|b| (b.1, b.2)).unwrap_or_default();
    Machine {
        nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
        cpu,
        mem_total_bytes: mem,
        kernel: read_text("/proc/sys/kernel/osrelease").trim().to_string(),
        dir: canon.display().to_string(),
        fs_type,
        device,
        loadavg: vec![read_text("/proc/loadavg").trim().to_string()],
        free_page_reporting: free_page_reporting(),
    }
}

/// The settings of the guest's free page reporting, as `name=value` pairs.
fn free_page_reporting() -> Option<String> {
    let dir = Path::new("/sys/module/page_reporting/parameters");
    let mut params: Vec<String> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            // Counters, not settings.
            if ["passes", "walked", "reported_kib"].contains(&name.as_str()) {
                return None;
            }
            let value = std::fs::read_to_string(e.path()).ok()?;
            Some(format!("{name}={}", value.trim()))
        })
        .collect();
    params.sort();
    Some(params.join(" "))
}

// ---------------------------------------------------------------------------
// The etcd oracle

/// Builds `tests/interop/oracle` (GOPATH mode against Debian's etcd sources).
fn build_oracle(ctx: &Ctx) -> std::result::Result<PathBuf, String> {
    const GOPATH: &str = "/usr/share/gocode";
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop/oracle");
    if !src.join("main.go").exists() {
        return Err(format!("oracle sources not found at {}", src.display()));
    }
    if !Path::new(GOPATH)
        .join("src/go.etcd.io/etcd/wal/wal.go")
        .exists()
    {
        return Err(format!(
            "etcd's Go sources are not installed ({GOPATH}; apt-get install golang-etcd-server-dev)"
        ));
    }
    let cache = std::env::temp_dir().join("walctl-bench-gocache");
    let out = ctx.base.join("etcd-oracle");
    ctx.say("building the etcd 3.4 oracle (go build)");
    let mut go = Command::new("go");
    go.args(["build", "-o"])
        .arg(&out)
        .arg(".")
        .current_dir(&src)
        .env("GO111MODULE", "off")
        .env("GOPATH", GOPATH)
        .env("GOCACHE", &cache)
        .env("GOFLAGS", "")
        .env("GOENV", "off")
        .env("GOTOOLCHAIN", "local");
    build(&mut go, "go build")?;
    Ok(out)
}

/// Runs a helper's build command; the error says whether the tool is missing or
/// the build failed, with the tool's own message.
fn build(cmd: &mut Command, what: &str) -> std::result::Result<(), String> {
    let res = cmd
        .output()
        .map_err(|e| format!("{what}: the tool is not installed ({e})"))?;
    if !res.status.success() {
        return Err(format!(
            "{what} failed: {}",
            String::from_utf8_lossy(&res.stderr).trim()
        ));
    }
    Ok(())
}

/// Builds `tests/peers` (okaywal and raft-engine behind one command line) with
/// cargo, in its own target directory so later runs reuse the build.
fn build_peers(ctx: &Ctx) -> std::result::Result<PathBuf, String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/peers");
    let manifest = src.join("Cargo.toml");
    if !manifest.exists() {
        return Err(format!("peer sources not found at {}", src.display()));
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    ctx.say("building okaywal and raft-engine (tests/peers, cargo build --release)");
    let mut build_cmd = Command::new(&cargo);
    build_cmd
        .args(["build", "--release", "--quiet", "--manifest-path"])
        .arg(&manifest);
    build(&mut build_cmd, "cargo build of tests/peers")?;
    Ok(src.join("target/release/wal-peers"))
}

fn oracle_json(oracle: &Path, args: &[String]) -> Result<serde_json::Value> {
    let out = Command::new(oracle)
        .args(args)
        .output()
        .with_context(|| format!("running {}", oracle.display()))?;
    if !out.status.success() {
        bail!(
            "{} {args:?} failed: {}",
            oracle.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    serde_json::from_slice(&out.stdout)
        .with_context(|| format!("parsing the JSON of {}", oracle.display()))
}

fn num(v: &serde_json::Value, k: &str) -> f64 {
    v.get(k).and_then(serde_json::Value::as_f64).unwrap_or(0.0)
}

// ---------------------------------------------------------------------------
// Appends

/// A batch of entries with shared data; indexes are set per save.
fn batch_entries(entry_bytes: usize, batch: usize) -> Vec<Entry> {
    let data: Vec<u8> = (0..entry_bytes).map(|i| (i * 131 + 7) as u8).collect();
    let data = Bytes::from(data);
    (0..batch)
        .map(|_| Entry {
            r#type: 0,
            term: 1,
            index: 0,
            data: Some(data.clone()),
        })
        .collect()
}

/// The framed bytes of one save (entries then the hard state), as the WAL writes them.
fn save_bytes(entry_bytes: usize, batch: usize) -> Result<Vec<u8>> {
    let mut ents = batch_entries(entry_bytes, batch);
    let mut enc = Encoder::new(Vec::new(), 0, 0);
    let mut buf = Vec::new();
    for (i, e) in ents.iter_mut().enumerate() {
        e.index = 1_000_000 + i as u64;
        buf.clear();
        encode_entry(e, EntryEncoding::Etcd36, &mut buf);
        enc.encode(RecordType::Entry as i64, Some(&buf))?;
    }
    let st = HardState {
        term: 1,
        vote: 1,
        commit: 1_000_000 + batch as u64,
    };
    enc.encode(RecordType::State as i64, Some(&encode_hard_state(&st)))?;
    enc.flush()?;
    Ok(enc.into_inner())
}

/// Writes back whatever is dirty (earlier cases, unsynced runs, removals), so a
/// timed case does not compete with the writeback of the one before.
fn settle() {
    let _ = Command::new("sync").status();
}

/// Saves on a fresh WAL until `seconds` pass or `max_saves` are done.
fn run_wal(
    dir: &Path,
    opts: &wal::Options,
    entry_bytes: usize,
    batch: usize,
    until: Until,
    track_cuts: bool,
) -> Result<Run> {
    let w = opts.create(dir, Some(METADATA))?;
    settle();
    let mut ents = batch_entries(entry_bytes, batch);
    let mut run = Run {
        lat_us: Vec::with_capacity(1 << 16),
        ..Run::default()
    };
    let mut index = 0u64;
    let mut tail = w.tail_path();
    let limit = Duration::from_secs_f64(until.seconds);
    let start = Instant::now();
    let steal = Steal::start();
    loop {
        for e in ents.iter_mut() {
            index += 1;
            e.index = index;
        }
        let st = HardState {
            term: 1,
            vote: 1,
            commit: index,
        };
        let t0 = Instant::now();
        w.save(&st, &ents)?;
        let us = t0.elapsed().as_secs_f64() * 1e6;
        run.lat_us.push(us);
        run.saves += 1;
        if track_cuts {
            // Only the cut study needs to know which saves cut.
            let now = w.tail_path();
            if now != tail {
                run.cut_lat_us.push(us);
                tail = now;
            }
        }
        if (until.saves > 0 && run.saves >= until.saves)
            || (until.seconds > 0.0 && start.elapsed() >= limit)
        {
            break;
        }
    }
    run.secs = start.elapsed().as_secs_f64();
    run.steal_pct = steal.pct();
    w.close()?;
    Ok(run.finish())
}

/// An append run of another implementation, in its own process on a fresh log
/// (removed afterwards): etcd through the oracle (`peer` `None`), or one of the
/// Rust peers (`okaywal`, `raft-engine`) through `tests/peers`.
fn run_other(
    ctx: &mut Ctx,
    bin: &Path,
    peer: Option<&str>,
    (entry_bytes, batch): (usize, usize),
    until: Until,
    nosync: bool,
) -> Result<Run> {
    let name = peer.unwrap_or("etcd");
    let dir = ctx.fresh(&if nosync {
        format!("{name}-nosync")
    } else {
        name.to_string()
    });
    let mut args = vec!["bench-append".to_string()];
    args.extend(peer.map(str::to_string));
    args.extend([
        dir.display().to_string(),
        entry_bytes.to_string(),
        batch.to_string(),
        until.seconds.to_string(),
        until.saves.to_string(),
    ]);
    if peer.is_none() {
        args.push(SEGMENT_BYTES.to_string());
    }
    if nosync {
        args.push("nosync".into());
    }
    settle();
    // Counted over the child's whole life: its start and exit are short beside
    // a run.
    let steal = Steal::start();
    let mut run = child_run(&oracle_json(bin, &args)?)?;
    run.steal_pct = steal.pct();
    remove(&dir);
    Ok(run)
}

/// Removes the directory of `files` (made by [`fallocated_files`]).
fn remove_files(files: &[PathBuf]) {
    if let Some(d) = files.first().and_then(|p| p.parent()) {
        remove(d);
    }
}

/// A run as a child process reported it (`saves`, `seconds`, `p50_us`, `p99_us`).
fn child_run(v: &serde_json::Value) -> Result<Run> {
    let saves = num(v, "saves") as u64;
    let secs = num(v, "seconds");
    if saves == 0 || secs <= 0.0 {
        bail!("the child reported no saves: {v}");
    }
    Ok(Run {
        saves,
        secs,
        p50: num(v, "p50_us"),
        p99: num(v, "p99_us"),
        ..Run::default()
    })
}

/// Segment-sized files preallocated with fallocate (etcd's way), synced with
/// their directory so the timed run pays only for its writes.
fn fallocated_files(ctx: &mut Ctx, n: usize) -> Result<Vec<PathBuf>> {
    let dir = ctx.fresh("raw-fallocated");
    std::fs::create_dir_all(&dir)?;
    let fs = wal_fileutil::os();
    let mut paths = Vec::with_capacity(n);
    for i in 0..n {
        let p = dir.join(format!("{i}.seg"));
        let mut f = fs.open(&p, &wal_fileutil::OpenOptions::write().create(true))?;
        f.preallocate(SEGMENT_BYTES, true)?;
        f.sync_all()?;
        paths.push(p);
    }
    fs.fsync_dir(&dir)?;
    Ok(paths)
}

/// Writes a segment's worth of zeros at the file's offset, `per_write` bytes per
/// write, unsynced.
fn write_segment_of_zeros(f: &mut impl Write, per_write: usize) -> Result<()> {
    let zeros = vec![0u8; per_write];
    let mut left = SEGMENT_BYTES as usize;
    while left > 0 {
        let k = left.min(zeros.len());
        f.write_all(&zeros[..k])?;
        left -= k;
    }
    Ok(())
}

/// Grows `pool`, segment-sized files whose blocks are written (zeros), synced,
/// in [`zero_pool_dir`], to `n` files and returns them. The pool is reused:
/// overwritten blocks stay written, which is what matters. `direct`: the pool
/// of the direct-I/O baseline, its zeros written past the page cache; the
/// other's pages stay cached, as the zeros left them (its partial pages are
/// then never read from the disk).
fn zero_pool(ctx: &Ctx, pool: &mut Vec<PathBuf>, n: usize, direct: bool) -> Result<Vec<PathBuf>> {
    let dir = zero_pool_dir(ctx, direct);
    std::fs::create_dir_all(&dir)?;
    while pool.len() < n {
        let p = dir.join(format!("{}.seg", pool.len()));
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&p)
            .with_context(|| format!("creating {}", p.display()))?;
        zeroed_file(&p, direct)?.sync_all()?;
        pool.push(p);
    }
    wal_fileutil::os().fsync_dir(&dir)?;
    Ok(pool[..n].to_vec())
}

/// Where the append part keeps its pool of zeroed files (`direct`: the
/// direct-I/O baseline's).
fn zero_pool_dir(ctx: &Ctx, direct: bool) -> PathBuf {
    ctx.base.join(if direct {
        "raw-zeroed-direct"
    } else {
        "raw-zeroed"
    })
}

/// `raw-zeroing`: `pwrite` + `fdatasync` of `bytes` per save into fresh
/// segment-sized files in `dir`, made during the run: the first is zero-filled and
/// synced before the clock starts (as `create` does), each next one is
/// `fallocate`d and zero-filled by a helper thread while the current one fills,
/// and fdatasynced by the writer when it moves to it. The helper drops each
/// finished file's pages first, so the zeros go into memory already in use (as the
/// WAL's pipeline does; fresh memory is slow on a VM). `keep_tick`: as the WAL's
/// option of that name. `direct`: the saves and the zeros are written past the
/// page cache ([`DirectSaves`], [`write_zeros_direct`]).
fn run_raw_zeroing(
    dir: &Path,
    bytes: &[u8],
    saves: u64,
    keep_tick: bool,
    direct: bool,
) -> Result<Run> {
    std::fs::create_dir_all(dir)?;
    let n = files_needed(bytes.len(), saves);
    let make = |i: usize| -> Result<File> {
        let p = dir.join(format!("{i}.seg"));
        let fs = wal_fileutil::os();
        let mut f = fs.open(&p, &wal_fileutil::OpenOptions::write().create(true))?;
        f.preallocate(SEGMENT_BYTES, true)?;
        drop(f);
        zeroed_file(&p, direct)
    };
    let first = make(0)?;
    first.sync_all()?;
    wal_fileutil::os().fsync_dir(dir)?;
    let mut run = Run {
        lat_us: Vec::with_capacity(saves as usize),
        ..Run::default()
    };
    std::thread::scope(|scope| -> Result<()> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Result<File>>(0);
        let (done_tx, done_rx) = std::sync::mpsc::channel::<usize>();
        scope.spawn(move || {
            for i in 1..n {
                for d in done_rx.try_iter() {
                    let p = dir.join(format!("{d}.seg"));
                    let _ = wal_fileutil::os()
                        .open(&p, &wal_fileutil::OpenOptions::read())
                        .and_then(|f| f.drop_cache());
                }
                if tx.send(make(i)).is_err() {
                    return;
                }
            }
        });
        let mut fi = 0usize;
        let mut f = first;
        let mut off = 0u64;
        let len = bytes.len() as u64;
        let mut dio = direct.then(|| DirectSaves::new(bytes.len()));
        settle();
        let start = Instant::now();
        let steal = Steal::start();
        for _ in 0..saves {
            let t0 = Instant::now();
            if off + len > SEGMENT_BYTES && off > 0 {
                let _ = done_tx.send(fi);
                fi += 1;
                f = rx.recv().context("raw-zeroing ran out of files")??;
                f.sync_data()?;
                off = 0;
            }
            match &mut dio {
                Some(d) => d.write_at(&f, bytes, off)?,
                None => f.write_all_at(bytes, off)?,
            }
            fdatasync(&f, keep_tick)?;
            run.lat_us.push(t0.elapsed().as_secs_f64() * 1e6);
            off += len;
            run.saves += 1;
        }
        run.secs = start.elapsed().as_secs_f64();
        run.steal_pct = steal.pct();
        Ok(())
    })?;
    Ok(run.finish())
}

/// Why the direct-I/O baselines cannot run in the bench's directory (its file
/// system refuses an aligned `O_DIRECT` write), or `None` when they can.
fn direct_unavailable(ctx: &mut Ctx) -> Option<String> {
    let dir = ctx.fresh("direct-probe");
    let probe = || -> Result<()> {
        std::fs::create_dir_all(&dir)?;
        let p = dir.join("probe");
        File::create(&p)?;
        let f = open_raw(&p, true)?;
        DirectSaves::new(1).write_at(&f, &[0], 0)?;
        Ok(())
    };
    let why = probe().err().map(|e| format!("{e:#}"));
    remove(&dir);
    why
}

/// Alignment of direct writes (memory, offset, length): a page.
const DIRECT_ALIGN: usize = 4096;

/// Opens a raw baseline's file for writing; `direct`: with `O_DIRECT`.
fn open_raw(p: &Path, direct: bool) -> Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut o = std::fs::OpenOptions::new();
    o.write(true);
    if direct {
        o.custom_flags(nix::fcntl::OFlag::O_DIRECT.bits());
    }
    o.open(p).with_context(|| {
        format!(
            "opening {}{}",
            p.display(),
            if direct { " with O_DIRECT" } else { "" }
        )
    })
}

/// Opens `p` for writing (`direct`: with `O_DIRECT`) and writes a segment's
/// worth of zeros over it, unsynced.
fn zeroed_file(p: &Path, direct: bool) -> Result<File> {
    let mut f = open_raw(p, direct)?;
    if direct {
        write_zeros_direct(&f)?;
    } else {
        write_segment_of_zeros(&mut f, 1 << 20)?;
    }
    Ok(f)
}

/// Writes a segment's worth of zeros over `f` (open with `O_DIRECT`) from one
/// aligned MiB of zeros, unsynced: no page cache and no copy, the cheapest way
/// to give a segment written blocks.
fn write_zeros_direct(f: &File) -> Result<()> {
    let mut mem = vec![0u8; (1 << 20) + DIRECT_ALIGN];
    let at = mem.as_ptr().align_offset(DIRECT_ALIGN);
    let zeros = &mut mem[at..at + (1 << 20)];
    let mut off = 0u64;
    while off < SEGMENT_BYTES {
        let k = (SEGMENT_BYTES - off).min(zeros.len() as u64) as usize;
        f.write_all_at(&zeros[..k], off)?;
        off += k as u64;
    }
    Ok(())
}

/// A raw baseline's saves written past the page cache (`O_DIRECT`), the way
/// the WAL's direct writes put them on disk: each save with the partial page
/// before it, padded with zeros to whole pages, from one aligned buffer; the
/// last partial page stays in the buffer for the next save.
struct DirectSaves {
    mem: Vec<u8>,
    /// `mem[at..]` is aligned.
    at: usize,
    /// Bytes of the partial page at the front of the buffer (the offset of the
    /// next save, modulo a page).
    tail: usize,
}

impl DirectSaves {
    fn new(save_len: usize) -> Self {
        let mem = vec![0u8; save_len + 3 * DIRECT_ALIGN];
        let at = mem.as_ptr().align_offset(DIRECT_ALIGN);
        DirectSaves { mem, at, tail: 0 }
    }

    /// Writes `bytes` at `off` of `f`: the file's first save at 0, or right
    /// after the previous one.
    fn write_at(&mut self, f: &File, bytes: &[u8], off: u64) -> std::io::Result<()> {
        if off == 0 {
            self.tail = 0;
        }
        debug_assert_eq!(off % DIRECT_ALIGN as u64, self.tail as u64);
        let base = off - self.tail as u64;
        let buf = &mut self.mem[self.at..];
        let end = self.tail + bytes.len();
        let up = end.next_multiple_of(DIRECT_ALIGN);
        buf[self.tail..end].copy_from_slice(bytes);
        buf[end..up].fill(0);
        f.write_all_at(&buf[..up], base)?;
        let keep = end / DIRECT_ALIGN * DIRECT_ALIGN;
        buf.copy_within(keep..end, 0);
        self.tail = end - keep;
        Ok(())
    }
}

fn files_needed(save_len: usize, saves: u64) -> usize {
    let per_file = (SEGMENT_BYTES as usize / save_len.max(1)).max(1) as u64;
    saves.div_ceil(per_file).max(1) as usize
}

/// A raw baseline's fdatasync of a save, keeping the CPU's tick first as the WAL
/// does when `keep_tick` ([`wal::Options::keep_tick`]).
fn fdatasync(f: &File, keep_tick: bool) -> std::io::Result<()> {
    if keep_tick {
        wal_fileutil::keep_tick();
    }
    f.sync_data()
}

/// Whether a raw baseline fdatasyncs.
#[derive(Clone, Copy)]
enum Sync {
    /// After every save; `true`: keeping the CPU's tick as the WAL does
    /// ([`wal::Options::keep_tick`]).
    Every(bool),
    /// Never.
    Never,
}

/// `pwrite` (+ `fdatasync`, per `sync`) of `bytes` per save, filling `files` one
/// after another; `direct`: past the page cache, as the WAL writes
/// ([`DirectSaves`]).
fn run_raw(files: &[PathBuf], bytes: &[u8], saves: u64, sync: Sync, direct: bool) -> Result<Run> {
    let mut handles = Vec::with_capacity(files.len());
    for p in files {
        handles.push(open_raw(p, direct)?);
    }
    let mut dio = direct.then(|| DirectSaves::new(bytes.len()));
    let mut run = Run {
        lat_us: Vec::with_capacity(saves as usize),
        ..Run::default()
    };
    let (mut fi, mut off) = (0usize, 0u64);
    let len = bytes.len() as u64;
    settle();
    let start = Instant::now();
    let steal = Steal::start();
    for _ in 0..saves {
        if off + len > SEGMENT_BYTES && off > 0 {
            fi += 1;
            off = 0;
        }
        let Some(f) = handles.get(fi) else {
            bail!("raw baseline ran out of files");
        };
        let t0 = Instant::now();
        match &mut dio {
            Some(d) => d.write_at(f, bytes, off)?,
            None => f.write_all_at(bytes, off)?,
        }
        if let Sync::Every(keep_tick) = sync {
            fdatasync(f, keep_tick)?;
        }
        run.lat_us.push(t0.elapsed().as_secs_f64() * 1e6);
        off += len;
        run.saves += 1;
    }
    run.secs = start.elapsed().as_secs_f64();
    run.steal_pct = steal.pct();
    Ok(run.finish())
}

/// A cell's progress line: each column's `figure`, then the most CPU time the
/// hypervisor took from any of them, where it is enough to matter.
fn progress(cell: &[AppendRow], figure: fn(&AppendRow) -> Option<f64>) -> String {
    let rates: Vec<String> = cell
        .iter()
        .map(|r| {
            let v = figure(r).map_or("n/a".to_string(), |v| format!("{v:.0}"));
            format!("{} {v}", r.impl_name)
        })
        .collect();
    let most = cell.iter().filter_map(|r| r.steal_pct).fold(0.0, f64::max);
    let steal = if most >= 0.5 {
        format!("; up to {most:.1} % of the CPU time stolen by the host")
    } else {
        String::new()
    };
    format!("{}{steal}", rates.join(" "))
}

fn row(name: &str, entry_bytes: usize, batch: usize, runs: &[Run]) -> AppendRow {
    let rate: Vec<f64> = runs
        .iter()
        .map(|r| r.saves as f64 / r.secs.max(1e-9))
        .collect();
    let saves_per_s = median(rate);
    // The repetition closest to the median rate gives the saves count.
    let saves = runs
        .iter()
        .min_by(|a, b| {
            let da = (a.saves as f64 / a.secs.max(1e-9) - saves_per_s).abs();
            let db = (b.saves as f64 / b.secs.max(1e-9) - saves_per_s).abs();
            da.total_cmp(&db)
        })
        .map(|r| r.saves);
    AppendRow {
        impl_name: name.into(),
        entry_bytes,
        batch,
        saves_per_s: Some(saves_per_s),
        entries_per_s: Some(saves_per_s * batch as f64),
        mb_per_s: Some(saves_per_s * (batch * entry_bytes) as f64 / 1e6),
        p50_us: Some(median(runs.iter().map(|r| r.p50).collect())),
        p99_us: Some(median(runs.iter().map(|r| r.p99).collect())),
        saves,
        steal_pct: Some(median(runs.iter().map(|r| r.steal_pct).collect())),
        note: None,
    }
}

/// The row of an optional column: its figures, or a note that it was not measured.
fn row_or_missing(name: &str, entry_bytes: usize, batch: usize, runs: &[Run]) -> AppendRow {
    if runs.is_empty() {
        missing(name, entry_bytes, batch, "unavailable: see `unavailable`")
    } else {
        row(name, entry_bytes, batch, runs)
    }
}

fn missing(name: &str, entry_bytes: usize, batch: usize, note: &str) -> AppendRow {
    AppendRow {
        impl_name: name.into(),
        entry_bytes,
        batch,
        saves_per_s: None,
        entries_per_s: None,
        mb_per_s: None,
        p50_us: None,
        p99_us: None,
        saves: None,
        steal_pct: None,
        note: Some(note.into()),
    }
}

fn remove(p: &Path) {
    if let Err(e) = std::fs::remove_dir_all(p) {
        eprintln!("walctl bench: removing {}: {e}", p.display());
    }
}

fn append_matrix(plan: &Plan, ctx: &mut Ctx) -> Result<Vec<AppendRow>> {
    let mut rows = Vec::new();
    let opts = wal::Options::new()
        .segment_size(SEGMENT_BYTES)
        .keep_tick(plan.keep_tick);
    let etcd_prealloc = opts.clone().zero_fill_segments(false);
    // The zero-filled files of raw-zeroed and of raw-zeroed-direct.
    let mut pools: [Vec<PathBuf>; 2] = Default::default();
    let direct = match direct_unavailable(ctx) {
        None => true,
        Some(why) => {
            ctx.say(format!("direct-I/O baselines unavailable: {why}"));
            ctx.unavailable.push(format!("raw-*-direct: {why}"));
            false
        }
    };
    for &(eb, batch) in &plan.cells {
        let bytes = save_bytes(eb, batch)?;
        let [mut w, mut wf, mut rf, mut rz, mut ri, mut et, mut ok, mut re]: [Vec<Run>; 8] =
            Default::default();
        let [mut rzd, mut rid, mut rfd]: [Vec<Run>; 3] = Default::default();
        for _ in 0..plan.reps {
            let dir = ctx.fresh("wal");
            let r = run_wal(&dir, &opts, eb, batch, Until::seconds(plan.seconds), false)?;
            remove(&dir);
            let saves = r.saves;
            w.push(r);

            let dir = ctx.fresh("wal-fallocated");
            wf.push(run_wal(
                &dir,
                &etcd_prealloc,
                eb,
                batch,
                Until::seconds(plan.seconds),
                false,
            )?);
            remove(&dir);

            let need = files_needed(bytes.len(), saves);
            let sync = Sync::Every(plan.keep_tick);
            for (d, zeroed, zeroing, fallocated) in [
                (false, &mut rz, &mut ri, &mut rf),
                (true, &mut rzd, &mut rid, &mut rfd),
            ] {
                if d && !direct {
                    continue;
                }
                let files = zero_pool(ctx, &mut pools[usize::from(d)], need, d)?;
                zeroed.push(run_raw(&files, &bytes, saves, sync, d)?);

                let dir = ctx.fresh("raw-zeroing");
                zeroing.push(run_raw_zeroing(&dir, &bytes, saves, plan.keep_tick, d)?);
                remove(&dir);

                let files = fallocated_files(ctx, need)?;
                fallocated.push(run_raw(&files, &bytes, saves, sync, d)?);
                remove_files(&files);
            }

            if let Some(oracle) = ctx.oracle.clone() {
                et.push(run_other(
                    ctx,
                    &oracle,
                    None,
                    (eb, batch),
                    Until::seconds(plan.seconds),
                    false,
                )?);
            }
            if let Some(peers) = ctx.peers.clone() {
                for (name, runs) in [("okaywal", &mut ok), ("raft-engine", &mut re)] {
                    let r = run_other(
                        ctx,
                        &peers,
                        Some(name),
                        (eb, batch),
                        Until::seconds(plan.seconds),
                        false,
                    )?;
                    runs.push(r);
                }
            }
        }
        let cell = [
            row("wal", eb, batch, &w),
            row("wal-fallocated", eb, batch, &wf),
            row("raw-fallocated", eb, batch, &rf),
            row("raw-zeroed", eb, batch, &rz),
            row("raw-zeroing", eb, batch, &ri),
            row_or_missing("raw-zeroed-direct", eb, batch, &rzd),
            row_or_missing("raw-zeroing-direct", eb, batch, &rid),
            row_or_missing("raw-fallocated-direct", eb, batch, &rfd),
            row_or_missing("etcd", eb, batch, &et),
            row_or_missing("okaywal", eb, batch, &ok),
            row_or_missing("raft-engine", eb, batch, &re),
        ];
        ctx.say(format!(
            "append {eb} B x {batch}: saves/s {}",
            progress(&cell, |r| r.saves_per_s)
        ));
        rows.extend(cell);
    }
    // Nothing of one part stays for the next: with the pool's gigabytes left in
    // the page cache, the WAL's saves without fsync ran 20-50 % slower
    // (docs/benchmarks.md, fifteenth session).
    for (d, pool) in pools.iter().enumerate() {
        if !pool.is_empty() {
            remove(&zero_pool_dir(ctx, d == 1));
        }
    }
    Ok(rows)
}

/// The columns of a cell of saves without fsync, in their first order: the WAL
/// (whose first run sets the number of saves), raw-write, raw-write-cached, etcd,
/// raft-engine.
const CPU_COLUMNS: usize = 5;
/// The first three are this WAL and its floors, which take turns among themselves
/// before etcd and raft-engine do ([`turn_order`]): so the WAL does not always
/// run right after raft-engine's exit, as it did in one fixed order.
const CPU_OWN_COLUMNS: usize = 3;

fn cpu_matrix(plan: &Plan, ctx: &mut Ctx) -> Result<Vec<AppendRow>> {
    let mut rows = Vec::new();
    let opts = wal::Options::new()
        .segment_size(SEGMENT_BYTES)
        .unsafe_no_sync(true);
    for &(eb, batch) in &plan.cpu_cells {
        let bytes = save_bytes(eb, batch)?;
        let (mut w, mut raw, mut et, mut re) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut cached = Vec::new();
        // At most CPU_RUN_BYTES per run, and every column makes the WAL's number
        // of saves (see CPU_RUN_BYTES).
        let cap = (CPU_RUN_BYTES / bytes.len() as u64).max(1);
        // The WAL's first run sets the number of saves for every other run.
        let mut first: Option<u64> = None;
        for rep in 0..plan.reps {
            for col in turn_order(CPU_OWN_COLUMNS, CPU_COLUMNS, rep) {
                let saves = first.unwrap_or(cap);
                // etcd and raft-engine, and the WAL after its first run, make as
                // many saves (time: a backstop only).
                let same_saves = Until {
                    seconds: OTHER_SECONDS_MAX,
                    saves,
                };
                match col {
                    0 => {
                        let dir = ctx.fresh("wal-nosync");
                        let until = if first.is_some() {
                            same_saves
                        } else {
                            Until {
                                seconds: plan.cpu_seconds,
                                saves: cap,
                            }
                        };
                        let r = run_wal(&dir, &opts, eb, batch, until, false)?;
                        remove(&dir);
                        first.get_or_insert(r.saves);
                        w.push(r);
                    }
                    // The floor any WAL pays: the same bytes written into fresh
                    // preallocated files (the page cache), nothing else.
                    1 => {
                        let files = fallocated_files(ctx, files_needed(bytes.len(), saves))?;
                        raw.push(run_raw(&files, &bytes, saves, Sync::Never, false)?);
                        remove_files(&files);
                    }
                    // The floor of one `write` per save: the same bytes written
                    // over pages already in the page cache (zeros written 64 KiB
                    // at a time, as the WAL's pipeline does for a WAL that never
                    // syncs).
                    2 => {
                        let files = fallocated_files(ctx, files_needed(bytes.len(), saves))?;
                        for p in &files {
                            let mut f = std::fs::OpenOptions::new().write(true).open(p)?;
                            write_segment_of_zeros(&mut f, 64 << 10)?;
                        }
                        cached.push(run_raw(&files, &bytes, saves, Sync::Never, false)?);
                        remove_files(&files);
                    }
                    3 => {
                        if let Some(etcd) = ctx.oracle.clone() {
                            let r = run_other(ctx, &etcd, None, (eb, batch), same_saves, true)?;
                            et.push(r);
                        }
                    }
                    _ => {
                        if let Some(peers) = ctx.peers.clone() {
                            let name = Some("raft-engine");
                            let r = run_other(ctx, &peers, name, (eb, batch), same_saves, true)?;
                            re.push(r);
                        }
                    }
                }
            }
        }
        let cell = [
            row("wal", eb, batch, &w),
            row("raw-write", eb, batch, &raw),
            row("raw-write-cached", eb, batch, &cached),
            row_or_missing("etcd", eb, batch, &et),
            row_or_missing("raft-engine", eb, batch, &re),
        ];
        ctx.say(format!(
            "save without fsync {eb} B x {batch}: entries/s {}",
            progress(&cell, |r| r.entries_per_s)
        ));
        rows.extend(cell);
    }
    Ok(rows)
}

// ---------------------------------------------------------------------------
// Cuts

const CUT_ENTRY_BYTES: usize = 1000;
const CUT_BATCH: usize = 100;

fn cuts(plan: &Plan, ctx: &mut Ctx) -> Result<Cuts> {
    let bytes = save_bytes(CUT_ENTRY_BYTES, CUT_BATCH)?.len() as u64;
    // Saves that fit in one segment after its header, with room to spare.
    let per_segment = SEGMENT_BYTES / bytes - 2;
    let saves = per_segment * plan.cut_cuts + per_segment / 2;
    let opts = wal::Options::new()
        .segment_size(SEGMENT_BYTES)
        .keep_tick(plan.keep_tick);
    let (mut with, mut without, mut cut_saves) = (Vec::new(), Vec::new(), Vec::new());
    let mut crossed = 0;
    for _ in 0..plan.cut_reps {
        let dir = ctx.fresh("wal-cuts");
        let r = run_wal(
            &dir,
            &opts,
            CUT_ENTRY_BYTES,
            CUT_BATCH,
            Until::saves(saves),
            true,
        )?;
        remove(&dir);
        crossed = r.cut_lat_us.len() as u64;
        cut_saves.extend(r.cut_lat_us.iter().copied());
        with.push(r);
        // The same number of saves on fresh WALs that never fill their first segment.
        let mut pooled = Run::default();
        let mut left = saves;
        while left > 0 {
            let n = left.min(per_segment);
            let dir = ctx.fresh("wal-nocuts");
            let r = run_wal(
                &dir,
                &opts,
                CUT_ENTRY_BYTES,
                CUT_BATCH,
                Until::saves(n),
                true,
            )?;
            remove(&dir);
            if !r.cut_lat_us.is_empty() {
                bail!("the no-cut run cut a segment");
            }
            pooled.lat_us.extend(r.lat_us);
            pooled.saves += r.saves;
            pooled.secs += r.secs;
            left -= n;
        }
        without.push(pooled.finish());
    }
    let m = |runs: &[Run], p: f64| median(runs.iter().map(|r| pct(&r.lat_us, p)).collect());
    let c = Cuts {
        entry_bytes: CUT_ENTRY_BYTES,
        batch: CUT_BATCH,
        saves,
        cuts_crossed: crossed,
        p50_us_with_cuts: m(&with, 0.5),
        p99_us_with_cuts: m(&with, 0.99),
        p999_us_with_cuts: m(&with, 0.999),
        max_us_with_cuts: m(&with, 1.0),
        p50_us_without_cuts: m(&without, 0.5),
        p99_us_without_cuts: m(&without, 0.99),
        p999_us_without_cuts: m(&without, 0.999),
        max_us_without_cuts: m(&without, 1.0),
        cut_save_p50_us: median(cut_saves),
    };
    ctx.say(format!(
        "cuts ({} B x {}, {} saves, {} cuts): p99 {:.0} us with cuts, {:.0} us without; saves that cut: {:.0} us",
        c.entry_bytes, c.batch, c.saves, c.cuts_crossed, c.p99_us_with_cuts, c.p99_us_without_cuts, c.cut_save_p50_us
    ));
    Ok(c)
}

// ---------------------------------------------------------------------------
// Replay

/// The replay WAL: where it is and how big.
struct ReplayWal {
    dir: PathBuf,
    wal_bytes: u64,
    entry_bytes: u64,
    last_end: u64,
}

fn build_replay_wal(ctx: &mut Ctx, target: u64) -> Result<ReplayWal> {
    let dir = ctx.fresh("replay").join("wal");
    if let Some(p) = dir.parent() {
        std::fs::create_dir_all(p)?;
    }
    let opts = wal::Options::new()
        .segment_size(SEGMENT_BYTES)
        .unsafe_no_sync(true);
    let w = opts.create(&dir, Some(METADATA))?;
    let mut ents = batch_entries(REPLAY_ENTRY_BYTES, 256);
    let (mut index, mut written) = (0u64, 0u64);
    while written < target {
        for e in ents.iter_mut() {
            index += 1;
            e.index = index;
        }
        let st = HardState {
            term: 1,
            vote: 1,
            commit: index,
        };
        w.save(&st, &ents)?;
        written += (ents.len() * REPLAY_ENTRY_BYTES) as u64;
    }
    w.close()?;
    // Make it durable, so a cold read really reads the disk.
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .collect();
    names.sort();
    let mut wal_bytes = 0;
    let mut last_end = 0;
    for (i, p) in names.iter().enumerate() {
        File::open(p)?.sync_all()?;
        let len = std::fs::metadata(p)?.len();
        if i + 1 == names.len() {
            last_end = records_end(p)?;
            wal_bytes += last_end;
        } else {
            wal_bytes += len;
        }
    }
    Ok(ReplayWal {
        dir,
        wal_bytes,
        entry_bytes: written,
        last_end,
    })
}

/// Offset just past the last record of a segment.
fn records_end(p: &Path) -> Result<u64> {
    let f = File::open(p)?;
    let size = f.metadata()?.len();
    let mut dec =
        wal_codec::Decoder::new(vec![wal_codec::SegmentReader::new(p, size, Box::new(f))]);
    while let Some(rec) = dec.decode()? {
        if rec.r#type == RecordType::Crc as i64 {
            dec.update_crc(rec.crc);
        }
    }
    Ok(dec.last_offset())
}

/// What one replay run measured.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct ChildReport {
    /// Seconds spent reading (open included, process start excluded).
    pub seconds: f64,
    /// Entries returned.
    pub entries: u64,
    /// Their data bytes.
    pub entry_bytes: u64,
    /// VmRSS before reading.
    pub baseline_rss_bytes: u64,
    /// VmHWM after reading.
    pub peak_rss_bytes: u64,
    /// Major page faults while reading: pages of the program or of mapped
    /// segments that had to come from the disk.
    #[serde(default)]
    pub major_faults: u64,
    /// Bytes this process caused to be read from the disk (`/proc/self/io`
    /// `read_bytes`, readahead included).
    #[serde(default)]
    pub disk_read_bytes: u64,
}

/// Bytes read from storage by this process so far (`/proc/self/io`).
fn disk_read_bytes() -> u64 {
    proc_number("/proc/self/io", "read_bytes:")
}

/// This process's major page faults so far (`/proc/self/stat`, field 12).
fn major_faults() -> u64 {
    let stat = read_text("/proc/self/stat");
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(9)?.parse().ok())
        .unwrap_or(0)
}

/// A `VmRSS:`-style line of `/proc/self/status`, in bytes.
fn status_bytes(key: &str) -> u64 {
    proc_number("/proc/self/status", key) * 1024
}

/// The first number after `key` on its line of `path`; 0 where there is none.
fn proc_number(path: &str, key: &str) -> u64 {
    read_text(path)
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// One replay (`read-all`, `stream` or `raw-read-crc`) of `dir`, timed in this
/// process; `last_end` bounds the raw read of the last segment. `walctl
/// bench-child` runs this in a fresh process.
pub fn child(mode: &str, dir: &Path, last_end: u64) -> Result<ChildReport> {
    let baseline = status_bytes("VmRSS:");
    let faults = major_faults();
    let disk = disk_read_bytes();
    let start = Instant::now();
    let (entries, entry_bytes) = match mode {
        "read-all" => {
            let w = wal::open_for_read(dir, &Snapshot::default())?;
            let all = w.read_all()?;
            let n = all.entries.len() as u64;
            let b = all
                .entries
                .iter()
                .map(|e| e.data.as_ref().map_or(0, |d| d.len() as u64))
                .sum();
            let secs = start.elapsed().as_secs_f64();
            let peak = status_bytes("VmHWM:");
            let major_faults = major_faults() - faults;
            // Freeing is not part of reading.
            std::mem::forget(all);
            return Ok(ChildReport {
                seconds: secs,
                entries: n,
                entry_bytes: b,
                baseline_rss_bytes: baseline,
                peak_rss_bytes: peak,
                major_faults,
                disk_read_bytes: disk_read_bytes() - disk,
            });
        }
        "stream" => {
            let (mut n, mut b) = (0u64, 0u64);
            for ev in wal::Replay::open(dir, &Snapshot::default())? {
                if let wal::Event::Entry(e) = ev? {
                    n += 1;
                    b += e.data.as_ref().map_or(0, |d| d.len() as u64);
                }
            }
            (n, b)
        }
        "raw-read-crc" => {
            let mut names: Vec<PathBuf> = std::fs::read_dir(dir)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "wal"))
                .collect();
            names.sort();
            let mut buf = vec![0u8; 1 << 20];
            let mut crc = 0u32;
            let mut total = 0u64;
            for (i, p) in names.iter().enumerate() {
                let mut f = File::open(p)?;
                let mut left = if i + 1 == names.len() {
                    last_end
                } else {
                    f.metadata()?.len()
                };
                while left > 0 {
                    let want = (left as usize).min(buf.len());
                    let got = f.read(&mut buf[..want])?;
                    if got == 0 {
                        break;
                    }
                    crc = crc32c::crc32c_append(crc, &buf[..got]);
                    left -= got as u64;
                    total += got as u64;
                }
            }
            std::hint::black_box(crc);
            (0, total)
        }
        other => bail!("unknown replay mode {other:?}"),
    };
    Ok(ChildReport {
        seconds: start.elapsed().as_secs_f64(),
        entries,
        entry_bytes,
        baseline_rss_bytes: baseline,
        peak_rss_bytes: status_bytes("VmHWM:"),
        major_faults: major_faults() - faults,
        disk_read_bytes: disk_read_bytes() - disk,
    })
}

fn run_child(ctx: &Ctx, mode: &str, rw: &ReplayWal) -> Result<ChildReport> {
    let Some(exe) = &ctx.self_exe else {
        let mut r = child(mode, &rw.dir, rw.last_end)?;
        r.peak_rss_bytes = 0;
        r.baseline_rss_bytes = 0;
        return Ok(r);
    };
    let out = Command::new(exe)
        .arg("bench-child")
        .arg(mode)
        .arg(&rw.dir)
        .arg(rw.last_end.to_string())
        .output()
        .with_context(|| format!("running {} bench-child", exe.display()))?;
    if !out.status.success() {
        bail!(
            "bench-child {mode} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    serde_json::from_slice(&out.stdout).context("parsing bench-child output")
}

fn run_etcd_read(oracle: &Path, rw: &ReplayWal) -> Result<ChildReport> {
    let v = oracle_json(
        oracle,
        &["bench-read".to_string(), rw.dir.display().to_string()],
    )?;
    Ok(ChildReport {
        seconds: num(&v, "seconds"),
        entries: num(&v, "entries") as u64,
        entry_bytes: num(&v, "entry_bytes") as u64,
        baseline_rss_bytes: 0,
        peak_rss_bytes: num(&v, "peak_rss_bytes") as u64,
        major_faults: 0,
        disk_read_bytes: 0,
    })
}

/// A peer's `bench-read` of its own log of the replay's entries; every entry must
/// come back.
fn run_peer_read(peers: &Path, name: &str, dir: &Path, entries: u64) -> Result<ChildReport> {
    let v = oracle_json(
        peers,
        &[
            "bench-read".to_string(),
            name.to_string(),
            dir.display().to_string(),
        ],
    )?;
    let got = num(&v, "entries") as u64;
    if got != entries {
        bail!("{name} read {got} entries back, not {entries}");
    }
    Ok(ChildReport {
        seconds: num(&v, "seconds"),
        entries: got,
        entry_bytes: num(&v, "entry_bytes") as u64,
        baseline_rss_bytes: 0,
        peak_rss_bytes: num(&v, "peak_rss_bytes") as u64,
        major_faults: 0,
        disk_read_bytes: 0,
    })
}

/// How many of the replay's readers, from the first, are this WAL's readers and
/// the raw read: the ones whose figures are compared with each other.
const OWN_READERS: usize = 3;

/// The order of the replay's readers (indices) in repetition `rep`: the first
/// `own` of the `n` readers, then the rest, each group starting one further on
/// per repetition. A reader that ends frees memory (etcd and the peers hundreds
/// of MiB), and on this VM the reader after it ran about 6 % slower (likely the
/// host backing that memory afresh; docs/benchmarks.md, "Cold replay"). With one
/// rotation over all readers each would always follow the same one, so
/// `read_all` always came after raft-engine and the raw read never after any
/// of them; here each own reader runs first, right after another
/// implementation, in one repetition of every `own`.
fn turn_order(own: usize, n: usize, rep: usize) -> Vec<usize> {
    let own = own.min(n);
    let others = n - own;
    let mut order: Vec<usize> = (0..own).map(|k| (k + rep) % own).collect();
    order.extend((0..others).map(|k| own + (k + rep) % others));
    order
}

/// Writes back dirty pages and drops the page cache; false if not allowed.
fn drop_caches() -> bool {
    let _ = Command::new("sync").status();
    std::fs::write("/proc/sys/vm/drop_caches", "3").is_ok()
}

fn replay(plan: &Plan, ctx: &mut Ctx) -> Result<Vec<ReplayRow>> {
    ctx.say(format!(
        "replay: writing {} MiB of {} B entries",
        plan.replay_bytes >> 20,
        REPLAY_ENTRY_BYTES
    ));
    let rw = build_replay_wal(ctx, plan.replay_bytes)?;
    settle();
    // This WAL's two readers and the raw read first (`OWN_READERS`), then the
    // other implementations.
    let mut impls = vec!["read_all", "stream", "raw-read-crc"];
    if ctx.oracle.is_some() {
        impls.push("etcd");
    }
    // The peers' own logs of the same entries.
    let entries = rw.entry_bytes / REPLAY_ENTRY_BYTES as u64;
    let mut peer_dirs = Vec::new();
    if let Some(peers) = ctx.peers.clone() {
        for name in ["okaywal", "raft-engine"] {
            let dir = ctx.fresh(&format!("replay-{name}"));
            let args = [
                "bench-fill".to_string(),
                name.to_string(),
                dir.display().to_string(),
                entries.to_string(),
                REPLAY_ENTRY_BYTES.to_string(),
            ];
            oracle_json(&peers, &args)?;
            impls.push(name);
            peer_dirs.push((name, dir));
        }
        settle();
    }
    let cold_ok = drop_caches();
    if !cold_ok {
        ctx.unavailable
            .push("replay cold: cannot write /proc/sys/vm/drop_caches (needs root)".to_string());
    }
    let mut rows = Vec::new();
    for cache in ["warm", "cold"] {
        if cache == "cold" && !cold_ok {
            continue;
        }
        let mut results: Vec<Vec<(ChildReport, f64)>> = vec![Vec::new(); impls.len()];
        if cache == "warm" {
            // Bring every segment (and the peers' logs) into the page cache once.
            run_child(ctx, "raw-read-crc", &rw)?;
            for (name, dir) in &peer_dirs {
                if let Some(peers) = &ctx.peers {
                    run_peer_read(peers, name, dir, entries)?;
                }
            }
        }
        let reps = if cache == "cold" {
            plan.cold_reps
        } else {
            plan.replay_reps
        };
        for rep in 0..reps {
            for i in turn_order(OWN_READERS, impls.len(), rep) {
                let name = &impls[i];
                if cache == "cold" {
                    drop_caches();
                }
                let steal = Steal::start();
                let r = match *name {
                    "read_all" => run_child(ctx, "read-all", &rw)?,
                    "stream" => run_child(ctx, "stream", &rw)?,
                    "raw-read-crc" => run_child(ctx, "raw-read-crc", &rw)?,
                    "etcd" => match &ctx.oracle {
                        Some(o) => run_etcd_read(o, &rw)?,
                        None => continue,
                    },
                    peer => match (&ctx.peers, peer_dirs.iter().find(|(n, _)| *n == peer)) {
                        (Some(p), Some((_, dir))) => run_peer_read(p, peer, dir, entries)?,
                        _ => continue,
                    },
                };
                results[i].push((r, steal.pct()));
            }
        }
        for (i, name) in impls.iter().enumerate() {
            let steal = median(results[i].iter().map(|(_, s)| *s).collect());
            let rs: Vec<&ChildReport> = results[i].iter().map(|(r, _)| r).collect();
            let each: Vec<f64> = rs
                .iter()
                .map(|r| rw.wal_bytes as f64 / r.seconds.max(1e-9) / 1e6)
                .collect();
            let mbs = median(each.clone());
            let peak = median(rs.iter().map(|r| r.peak_rss_bytes as f64).collect()) as u64;
            let base = median(rs.iter().map(|r| r.baseline_rss_bytes as f64).collect()) as u64;
            let entries = rs.first().map(|r| r.entries);
            let own_process = ["etcd", "okaywal", "raft-engine"].contains(name);
            let has_rss = ctx.self_exe.is_some() || own_process;
            rows.push(ReplayRow {
                impl_name: (*name).to_string(),
                cache: cache.to_string(),
                mb_per_s: Some(mbs),
                mb_per_s_reps: each,
                peak_rss_bytes: has_rss.then_some(peak),
                baseline_rss_bytes: (has_rss && !own_process).then_some(base),
                entries,
                steal_pct: Some(steal),
                note: None,
            });
            let faults = median(rs.iter().map(|r| r.major_faults as f64).collect());
            let disk = median(rs.iter().map(|r| r.disk_read_bytes as f64).collect());
            ctx.say(format!(
                "replay {cache} {name}: {mbs:.0} MB/s, peak RSS {} MiB, {faults:.0} major faults, {:.1} MB from disk, {steal:.1} % stolen",
                peak >> 20,
                disk / 1e6
            ));
        }
    }
    // The denominators of the memory targets.
    rows.push(ReplayRow {
        impl_name: "entry-bytes".into(),
        cache: "n/a".into(),
        mb_per_s: None,
        mb_per_s_reps: Vec::new(),
        peak_rss_bytes: Some(rw.entry_bytes),
        baseline_rss_bytes: None,
        entries: None,
        steal_pct: None,
        note: Some(format!(
            "entry data bytes in the replay WAL ({} WAL bytes, segments of {SEGMENT_BYTES} bytes)",
            rw.wal_bytes
        )),
    });
    Ok(rows)
}

// ---------------------------------------------------------------------------
// Ratios and text

fn find<'a>(rows: &'a [AppendRow], name: &str, eb: usize, batch: usize) -> Option<&'a AppendRow> {
    rows.iter()
        .find(|r| r.impl_name == name && r.entry_bytes == eb && r.batch == batch)
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

fn replay_mbs(rows: &[ReplayRow], name: &str, cache: &str) -> Option<f64> {
    rows.iter()
        .find(|r| r.impl_name == name && r.cache == cache)
        .and_then(|r| r.mb_per_s)
}

fn ratios(
    append: &[AppendRow],
    cpu: &[AppendRow],
    replay: &[ReplayRow],
    cuts: &Cuts,
    plan: &Plan,
) -> Ratios {
    let cell = |rows: &[AppendRow], eb, b, get: fn(&AppendRow) -> Option<f64>| {
        let x = |name: &str| find(rows, name, eb, b).and_then(get);
        let w = x("wal");
        CellRatio {
            entry_bytes: eb,
            batch: b,
            vs_raw_zeroed: ratio(w, x("raw-zeroed")),
            vs_raw_fallocated: ratio(w, x("raw-fallocated")),
            vs_raw_zeroing: ratio(w, x("raw-zeroing")),
            ceiling_vs_raw_zeroed: ratio(
                [
                    "raw-zeroing",
                    "raw-fallocated",
                    "raw-zeroing-direct",
                    "raw-fallocated-direct",
                ]
                .into_iter()
                .filter_map(x)
                .reduce(f64::max),
                x("raw-zeroed"),
            ),
            vs_raw_zeroed_direct: ratio(w, x("raw-zeroed-direct")),
            vs_raw_zeroing_direct: ratio(w, x("raw-zeroing-direct")),
            fallocated_vs_raw_fallocated_direct: ratio(
                x("wal-fallocated"),
                x("raw-fallocated-direct"),
            ),
            vs_etcd: ratio(w, x("etcd")),
            vs_okaywal: ratio(w, x("okaywal")),
            vs_raft_engine: ratio(w, x("raft-engine")),
            vs_raw_write: ratio(w, x("raw-write")),
        }
    };
    let entry_bytes = replay
        .iter()
        .find(|r| r.impl_name == "entry-bytes")
        .and_then(|r| r.peak_rss_bytes);
    let rss = |name: &str| {
        replay
            .iter()
            .find(|r| r.impl_name == name && r.cache == "warm")
            .and_then(|r| r.peak_rss_bytes)
    };
    // One replay row's MB/s over another's.
    let over = |(a, ca): (&str, &str), (b, cb): (&str, &str)| {
        ratio(replay_mbs(replay, a, ca), replay_mbs(replay, b, cb))
    };
    Ratios {
        append: plan
            .cells
            .iter()
            .map(|&(eb, b)| cell(append, eb, b, |r| r.saves_per_s))
            .collect(),
        cpu_save_vs_etcd: plan
            .cpu_cells
            .iter()
            .map(|&(eb, b)| cell(cpu, eb, b, |r| r.entries_per_s))
            .collect(),
        stream_warm_gb_per_s: replay_mbs(replay, "stream", "warm").map(|v| v / 1000.0),
        read_all_vs_etcd_warm: over(("read_all", "warm"), ("etcd", "warm")),
        read_all_vs_okaywal_warm: over(("read_all", "warm"), ("okaywal", "warm")),
        read_all_vs_raft_engine_warm: over(("read_all", "warm"), ("raft-engine", "warm")),
        read_all_vs_raw_warm: over(("read_all", "warm"), ("raw-read-crc", "warm")),
        read_all_vs_raw_cold: over(("read_all", "cold"), ("raw-read-crc", "cold")),
        stream_vs_raw_cold: over(("stream", "cold"), ("raw-read-crc", "cold")),
        read_all_rss_over_entry_bytes: ratio(
            rss("read_all").map(|v| v as f64),
            entry_bytes.map(|v| v as f64),
        ),
        stream_rss_over_segment: rss("stream").map(|v| v as f64 / SEGMENT_BYTES as f64),
        cut_p99_ratio: ratio(Some(cuts.p99_us_with_cuts), Some(cuts.p99_us_without_cuts)),
    }
}

/// A titled markdown table, followed by a blank line.
fn table(
    out: &mut dyn Write,
    title: &str,
    header: &[&str],
    rows: Vec<Vec<String>>,
) -> std::io::Result<()> {
    writeln!(out, "{title}")?;
    writeln!(out, "| {} |", header.join(" | "))?;
    writeln!(out, "|{}", "---|".repeat(header.len()))?;
    for row in rows {
        writeln!(out, "| {} |", row.join(" | "))?;
    }
    writeln!(out)
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("n/a".to_string(), |v| format!("{v:.digits$}"))
}

impl Report {
    /// One append table cell: saves/s (MB/s, p50/p99 us), or n/a.
    fn append_cell(&self, name: &str, r: &CellRatio) -> String {
        find(&self.append, name, r.entry_bytes, r.batch).map_or("n/a".to_string(), |x| {
            format!(
                "{} ({} MB/s, {}/{})",
                opt(x.saves_per_s, 0),
                opt(x.mb_per_s, 1),
                opt(x.p50_us, 0),
                opt(x.p99_us, 0)
            )
        })
    }

    /// The report as text tables.
    pub fn write_text(&self, out: &mut dyn Write) -> std::io::Result<()> {
        let m = &self.machine;
        writeln!(
            out,
            "machine: {} CPUs ({}), {:.1} GiB RAM, kernel {}, {} ({} on {})",
            m.nproc,
            m.cpu,
            m.mem_total_bytes as f64 / (1u64 << 30) as f64,
            m.kernel,
            m.dir,
            m.fs_type,
            m.device
        )?;
        writeln!(out, "load average (start, end): {}", m.loadavg.join(" / "))?;
        if let Some(fpr) = &m.free_page_reporting {
            writeln!(out, "free page reporting: {fpr}")?;
        }
        writeln!(
            out,
            "config: {} s per case, medians of {} repetitions ({} of each cold read), segments of {} bytes{}; \
             wal and raw baselines {}; without fsync at most {} MiB per run, every \
             column making the wal's saves",
            self.config.seconds,
            self.config.reps,
            self.config.cold_reps,
            self.config.segment_bytes,
            if self.config.quick { " (quick)" } else { "" },
            if self.config.keep_tick {
                "keep the CPU's tick through fdatasync"
            } else {
                "without keep_tick (--no-keep-tick)"
            },
            self.config.cpu_run_bytes >> 20
        )?;
        writeln!(out)?;
        let cell_name = |r: &CellRatio| format!("{} x {} B", r.batch, r.entry_bytes);
        type Ratio = fn(&CellRatio) -> Option<f64>;
        // An append table: per cell, these columns' figures, then these ratios.
        let append_table = |out: &mut dyn Write,
                            title: &str,
                            columns: &[&str],
                            ratios: &[(&str, Ratio)]|
         -> std::io::Result<()> {
            let header: Vec<&str> = std::iter::once("cell")
                .chain(columns.iter().copied())
                .chain(ratios.iter().map(|(name, _)| *name))
                .collect();
            let rows = self.ratios.append.iter().map(|r| {
                std::iter::once(cell_name(r))
                    .chain(columns.iter().map(|name| self.append_cell(name, r)))
                    .chain(ratios.iter().map(|(_, f)| opt(f(r), 2)))
                    .collect()
            });
            table(out, title, &header, rows.collect())
        };
        append_table(
            out,
            "append, fdatasync every save (saves/s; MB/s of entry data; p50/p99 us)",
            &[
                "wal",
                "wal-fallocated",
                "raw-fallocated",
                "raw-zeroed",
                "raw-zeroing",
                "etcd",
            ],
            &[
                ("wal/zeroed", |r| r.vs_raw_zeroed),
                ("ceiling/zeroed", |r| r.ceiling_vs_raw_zeroed),
                ("wal/zeroing", |r| r.vs_raw_zeroing),
                ("wal/fallocated", |r| r.vs_raw_fallocated),
                ("wal/etcd", |r| r.vs_etcd),
            ],
        )?;
        append_table(
            out,
            "append, the raw baselines written past the page cache (O_DIRECT) as the wal writes (saves/s; MB/s of entry data; p50/p99 us)",
            &[
                "wal",
                "wal-fallocated",
                "raw-zeroed-direct",
                "raw-zeroing-direct",
                "raw-fallocated-direct",
            ],
            &[
                ("wal/zeroed-direct", |r| r.vs_raw_zeroed_direct),
                ("wal/zeroing-direct", |r| r.vs_raw_zeroing_direct),
                ("wal-fallocated/fallocated-direct", |r| {
                    r.fallocated_vs_raw_fallocated_direct
                }),
            ],
        )?;
        append_table(
            out,
            "append against the Rust peers, fdatasync every save (saves/s; MB/s of entry data; p50/p99 us)",
            &["wal", "okaywal", "raft-engine"],
            &[
                ("wal/okaywal", |r| r.vs_okaywal),
                ("wal/raft-engine", |r| r.vs_raft_engine),
            ],
        )?;
        let cpu_rows = self
            .ratios
            .cpu_save_vs_etcd
            .iter()
            .map(|r| {
                let rate = |name| {
                    find(&self.cpu_save, name, r.entry_bytes, r.batch).and_then(|x| x.entries_per_s)
                };
                vec![
                    cell_name(r),
                    opt(rate("wal"), 0),
                    opt(rate("raw-write"), 0),
                    opt(rate("raw-write-cached"), 0),
                    opt(rate("etcd"), 0),
                    opt(rate("raft-engine"), 0),
                    opt(r.vs_etcd, 2),
                    opt(r.vs_raft_engine, 2),
                    opt(r.vs_raw_write, 2),
                    opt(ratio(rate("raw-write"), rate("etcd")), 2),
                    opt(ratio(rate("raw-write-cached"), rate("etcd")), 2),
                ]
            })
            .collect();
        table(
            out,
            "save without fsync (entries/s)",
            &[
                "cell",
                "wal",
                "raw-write",
                "raw-write-cached",
                "etcd",
                "raft-engine",
                "wal/etcd",
                "wal/raft-engine",
                "wal/raw-write",
                "raw-write/etcd",
                "raw-write-cached/etcd",
            ],
            cpu_rows,
        )?;
        writeln!(
            out,
            "replay ({} entry bytes; MB/s of WAL bytes)",
            self.config.replay_entry_bytes
        )?;
        writeln!(
            out,
            "| impl | cache | MB/s | range (repetitions) | peak RSS MiB |"
        )?;
        writeln!(out, "|---|---|---|---|---|")?;
        for r in self.replay.iter().filter(|r| r.mb_per_s.is_some()) {
            writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                r.impl_name,
                r.cache,
                opt(r.mb_per_s, 0),
                spread(&r.mb_per_s_reps),
                r.peak_rss_bytes.map_or("n/a".to_string(), |v| format!(
                    "{:.0}",
                    v as f64 / 1048576.0
                ))
            )?;
        }
        writeln!(out)?;
        let c = &self.cuts;
        writeln!(
            out,
            "cuts ({} x {} B, {} saves, {} cuts crossed): p50/p99/p99.9/max us with cuts {:.0}/{:.0}/{:.0}/{:.0}, without {:.0}/{:.0}/{:.0}/{:.0}; saves that cut: median {:.0} us",
            c.batch, c.entry_bytes, c.saves, c.cuts_crossed,
            c.p50_us_with_cuts, c.p99_us_with_cuts, c.p999_us_with_cuts, c.max_us_with_cuts,
            c.p50_us_without_cuts, c.p99_us_without_cuts, c.p999_us_without_cuts, c.max_us_without_cuts,
            c.cut_save_p50_us
        )?;
        let r = &self.ratios;
        writeln!(out)?;
        writeln!(
            out,
            "targets: stream warm {} GB/s (>= 5); read_all/etcd warm {} (>= 4); read_all/okaywal warm {}; read_all/raft-engine warm {}; read_all/raw cold {} (>= 0.9); stream/raw cold {}; read_all RSS/entry bytes {} (<= 1.3); stream RSS/segment {} (<= 1); cut p99 ratio {} (<= 1.5)",
            opt(r.stream_warm_gb_per_s, 2),
            opt(r.read_all_vs_etcd_warm, 2),
            opt(r.read_all_vs_okaywal_warm, 2),
            opt(r.read_all_vs_raft_engine_warm, 2),
            opt(r.read_all_vs_raw_cold, 2),
            opt(r.stream_vs_raw_cold, 2),
            opt(r.read_all_rss_over_entry_bytes, 2),
            opt(r.stream_rss_over_segment, 2),
            opt(r.cut_p99_ratio, 2)
        )?;
        for u in &self.unavailable {
            writeln!(out, "unavailable: {u}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direct_saves_leave_the_bytes_of_buffered_ones() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("seg");
        std::fs::write(&p, vec![0u8; 256 << 10]).unwrap();
        let f = match open_raw(&p, true) {
            Ok(f) => f,
            Err(e) => {
                // The system temporary directory refuses O_DIRECT (tmpfs before
                // Linux 6.6): the bench then reports the columns unavailable.
                eprintln!("skipped: {e:#}");
                return;
            }
        };
        // Saves of a length that is no multiple of a page, so each starts
        // inside the page the one before ended in.
        let save: Vec<u8> = (0..4099u32).map(|i| (i * 7 + 1) as u8).collect();
        let mut d = DirectSaves::new(save.len());
        let mut want = vec![0u8; 256 << 10];
        for i in 0..40 {
            let off = i * save.len();
            d.write_at(&f, &save, off as u64).unwrap();
            want[off..off + save.len()].copy_from_slice(&save);
            assert_eq!(std::fs::read(&p).unwrap(), want, "after save {i}");
        }
        // A new file starts at 0 with nothing staged.
        let q = dir.path().join("next");
        std::fs::write(&q, vec![0u8; 16 << 10]).unwrap();
        let g = open_raw(&q, true).unwrap();
        d.write_at(&g, &save[..10], 0).unwrap();
        let mut want = vec![0u8; 16 << 10];
        want[..10].copy_from_slice(&save[..10]);
        assert_eq!(std::fs::read(&q).unwrap(), want);
    }

    #[test]
    fn steal_is_the_eighth_figure_of_all_cpus() {
        let stat = "cpu  19262 0 15611 40856 10703 0 3298 34 0 0\n\
                    cpu0 8830 0 2307 33881 222 0 54 10 0 0\n\
                    cpu1 10432 0 13304 6974 10480 0 3243 24 0 0\n";
        assert_eq!(steal_of(stat), 34);
        // Kernels without steal accounting, or no /proc: nothing stolen.
        assert_eq!(steal_of("cpu  1 2 3 4\n"), 0);
        assert_eq!(steal_of(""), 0);
    }

    #[test]
    fn a_spread_names_the_extremes_and_the_count() {
        assert_eq!(spread(&[2415.2, 2166.0, 2537.4]), "2166-2537 (3)");
        assert_eq!(spread(&[900.0]), "900-900 (1)");
        assert_eq!(spread(&[]), "n/a");
    }

    #[test]
    fn cold_reads_repeat_more_unless_told() {
        let plan = |quick, reps| {
            let p = Plan::new(&BenchOptions {
                quick,
                reps,
                ..BenchOptions::default()
            });
            (p.replay_reps, p.cold_reps)
        };
        assert_eq!(plan(false, None), (3, COLD_REPS));
        assert_eq!(plan(true, None), (1, 1));
        // `--reps` counts for every case, cold reads included.
        assert_eq!(plan(false, Some(2)), (2, 2));
        assert_eq!(plan(true, Some(5)), (5, 5));
    }

    #[test]
    fn every_own_reader_follows_another_implementation_equally_often() {
        // Six readers: read_all, stream, raw-read-crc, then etcd and the peers.
        let orders: Vec<Vec<usize>> = (0..COLD_REPS).map(|r| turn_order(3, 6, r)).collect();
        for order in &orders {
            let mut sorted = order.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, (0..6).collect::<Vec<_>>(), "{order:?}");
            // The own readers run together, before the others.
            assert!(order[..3].iter().all(|&i| i < 3), "{order:?}");
        }
        // Who comes first in the own group (after the previous repetition's
        // other implementations): each own reader equally often.
        for reader in 0..3 {
            let first = orders.iter().filter(|o| o[0] == reader).count();
            assert_eq!(first, COLD_REPS / 3, "{orders:?}");
        }
        // Without etcd and the peers there are only own readers.
        assert_eq!(turn_order(3, 3, 1), vec![1, 2, 0]);
        assert_eq!(turn_order(3, 4, 2), vec![2, 0, 1, 3]);
    }

    #[test]
    fn the_wal_runs_first_once_then_takes_turns_without_fsync() {
        // Its first run sets the number of saves, so it must come first.
        assert_eq!(
            turn_order(CPU_OWN_COLUMNS, CPU_COLUMNS, 0),
            vec![0, 1, 2, 3, 4]
        );
        // Over three repetitions (the full run's), each of the WAL and its two
        // floors runs first once, right after raft-engine or etcd.
        let firsts: Vec<usize> = (0..3)
            .map(|r| turn_order(CPU_OWN_COLUMNS, CPU_COLUMNS, r)[0])
            .collect();
        assert_eq!(firsts, vec![0, 1, 2]);
    }
}
