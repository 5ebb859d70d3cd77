//! `walctl`: inspect, verify and repair etcd write-ahead logs.
//!
//! Exit codes: 0 success, 1 the WAL is bad or the operation failed (the message on
//! stderr names the file and offset), 2 usage errors.

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{ArgAction, Args, Parser, Subcommand};
use wal::walpb::Snapshot;
use wal::{ErrorKind, RepairOutcome};
use walctl::demo::DemoOptions;
use walctl::dump::SnapInfo;
use walctl::{locate, progress, ErrorInfo, Located};

/// Inspect, verify and repair etcd write-ahead logs (etcd's WAL format, byte for byte).
///
/// DIR is a WAL directory or an etcd data dir (walctl finds `member/wal` itself).
/// Nothing takes a lock or writes, except `repair` (and `demo` on its own directory).
#[derive(Debug, Parser)]
#[command(name = "walctl", version, propagate_version = true)]
struct Cli {
    /// Log more on stderr (-v info, -vv debug).
    #[arg(short, long, action = ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// What etcd's reader returns: entries, hard state, verify, valid snapshots.
    Dump(DumpArgs),
    /// Check the CRC chain, metadata and snapshot; print the hard state.
    Verify(VerifyArgs),
    /// List the snapshot records a restarting node may load (etcd's ValidSnapshotEntries).
    Snapshots(JsonDirArgs),
    /// Per-segment summary: sizes, records, index ranges, torn tail.
    Stat(JsonDirArgs),
    /// Truncate a torn tail of the last segment (keeps a `.broken` copy).
    Repair(DirArgs),
    /// Append, crash, repair, reopen and check, on a temporary directory.
    Demo(DemoArgs),
    /// Performance suite: appends against raw fdatasync baselines and etcd, replay,
    /// cuts (issue 8; docs/benchmarks.md). Works in a fresh subdirectory of --dir.
    Bench(BenchArgs),
    /// One replay run of `walctl bench`, timed in a fresh process (internal).
    #[command(hide = true)]
    BenchChild(BenchChildArgs),
}

#[derive(Debug, Args)]
struct BenchArgs {
    /// Directory to measure in (a subdirectory is made and removed) [default: the
    /// system temporary directory].
    #[arg(long, value_name = "D")]
    dir: Option<PathBuf>,
    /// One JSON document on stdout.
    #[arg(long)]
    json: bool,
    /// Also write the JSON document to this file (with the text on stdout).
    #[arg(long, value_name = "PATH")]
    json_file: Option<PathBuf>,
    /// A reduced matrix, in well under a minute.
    #[arg(long)]
    quick: bool,
    /// Seconds per append case [default: 2, quick 0.3].
    #[arg(long, value_name = "S")]
    seconds: Option<f64>,
    /// Repetitions of every case; figures are medians [default: 3, cold reads 9, quick 1].
    #[arg(long, value_name = "N")]
    reps: Option<usize>,
    /// The etcd oracle binary (tests/interop/oracle) [default: built with go if installed].
    #[arg(long, value_name = "PATH")]
    oracle: Option<PathBuf>,
    /// Skip the etcd column.
    #[arg(long)]
    no_etcd: bool,
    /// The peers binary (tests/peers: okaywal and raft-engine) [default: built with
    /// cargo if the sources are there].
    #[arg(long, value_name = "PATH")]
    peers: Option<PathBuf>,
    /// Skip the okaywal and raft-engine columns.
    #[arg(long)]
    no_peers: bool,
    /// Run this WAL and the raw baselines without keeping the CPU's tick through
    /// their fdatasyncs (wal::Options::keep_tick), as etcd does.
    #[arg(long)]
    no_keep_tick: bool,
    /// Run only some parts: append, cpu, cuts, replay (comma-separated).
    #[arg(long, value_delimiter = ',', value_name = "PARTS")]
    only: Vec<String>,
    /// Run only these append and no-fsync cells, as BATCHxENTRY_BYTES (e.g. 1000x100,1000x1000).
    #[arg(long, value_delimiter = ',', value_name = "CELLS")]
    cells: Vec<String>,
}

#[derive(Debug, Args)]
struct BenchChildArgs {
    /// read-all, stream or raw-read-crc.
    mode: String,
    /// The WAL directory.
    dir: PathBuf,
    /// End of the records in the last segment (raw-read-crc).
    last_end: u64,
}

#[derive(Debug, Args)]
struct SnapArgs {
    /// Index of the snapshot to start reading at [default: 0].
    #[arg(long, value_name = "N", requires = "snap_term")]
    snap_index: Option<u64>,
    /// Term of that snapshot [default: 0].
    #[arg(long, value_name = "T", requires = "snap_index")]
    snap_term: Option<u64>,
    /// Start at the newest valid snapshot record of the WAL (the one a restarting
    /// etcd loads when its `.snap` file is there), like etcd-dump-logs.
    #[arg(long, conflicts_with = "snap_index")]
    newest_snap: bool,
}

impl SnapArgs {
    /// The snapshot to start at; with `--newest-snap`, the last of the WAL's valid
    /// snapshot entries ({0,0} if it has none or they cannot be read, which the
    /// rest of the command then reports).
    fn snapshot(&self, wal_dir: &std::path::Path) -> Snapshot {
        if self.newest_snap {
            if let Some(s) = wal::valid_snapshot_entries(wal_dir)
                .ok()
                .and_then(|v| v.last().cloned())
            {
                return s;
            }
        }
        Snapshot {
            index: self.snap_index.unwrap_or(0),
            term: self.snap_term.unwrap_or(0),
            conf_state: None,
        }
    }
}

#[derive(Debug, Args)]
struct DumpArgs {
    /// WAL directory or etcd data dir.
    dir: PathBuf,
    #[command(flatten)]
    snap: SnapArgs,
    /// One JSON document on stdout (the keys of the corpus' expected files).
    #[arg(long)]
    json: bool,
    /// List every frame of every segment (offset, type, CRC), past CRC errors.
    #[arg(long)]
    raw: bool,
}

#[derive(Debug, Args)]
struct VerifyArgs {
    /// WAL directory or etcd data dir.
    dir: PathBuf,
    #[command(flatten)]
    snap: SnapArgs,
}

#[derive(Debug, Args)]
struct JsonDirArgs {
    /// WAL directory or etcd data dir.
    dir: PathBuf,
    /// JSON on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct DirArgs {
    /// WAL directory or etcd data dir.
    dir: PathBuf,
}

#[derive(Debug, Args)]
struct DemoArgs {
    /// Directory to work in (the WAL is created in DIR/wal) [default: a temporary one].
    dir: Option<PathBuf>,
    /// Entries to append before the crash.
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    entries: u64,
    /// Segment size in bytes.
    #[arg(long, default_value_t = 256 * 1024, value_parser = clap::value_parser!(u64).range(4096..))]
    segment_size: u64,
    /// Seed of the generated entry data.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

fn init_logging(verbose: u8, demo: bool) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    // The demo keeps the repaired segment's `.broken` backup next to the WAL and says
    // so; the WAL's "ignored file" warning about it would only be noise there.
    let default = if demo {
        "warn,wal::names=error"
    } else {
        "warn"
    };
    let filter = match verbose {
        0 => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default)),
        1 => EnvFilter::new("info"),
        2 => EnvFilter::new("debug"),
        _ => EnvFilter::new("trace"),
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose, matches!(cli.command, Command::Demo(_)));
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let result = run(cli.command, &mut out).and_then(|code| {
        out.flush()?;
        Ok(code)
    });
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("walctl: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn located(dir: &std::path::Path) -> Located {
    let loc = locate(dir);
    tracing::info!(given = %loc.given.display(), wal_dir = %loc.wal_dir.display(), how = loc.how, "WAL directory");
    loc
}

fn report(cmd: &str, e: &ErrorInfo) {
    eprintln!("walctl {cmd}: {}", e.line());
}

fn run(command: Command, out: &mut dyn Write) -> anyhow::Result<u8> {
    match command {
        Command::Dump(a) => dump(a, out),
        Command::Verify(a) => verify(a, out),
        Command::Snapshots(a) => snapshots(a, out),
        Command::Stat(a) => stat(a, out),
        Command::Repair(a) => repair(a, out),
        Command::Demo(a) => {
            let opts = DemoOptions {
                dir: a.dir,
                entries: a.entries,
                segment_size: a.segment_size,
                seed: a.seed,
                progress: progress::wanted(false),
            };
            let passed = walctl::demo::run(&opts, out)?;
            Ok(if passed { 0 } else { 1 })
        }
        Command::Bench(a) => bench(a, out),
        Command::BenchChild(a) => {
            let r = walctl::bench::child(&a.mode, &a.dir, a.last_end)?;
            serde_json::to_writer(&mut *out, &r)?;
            writeln!(out)?;
            Ok(0)
        }
    }
}

fn bench(a: BenchArgs, out: &mut dyn Write) -> anyhow::Result<u8> {
    let opts = walctl::bench::BenchOptions {
        dir: a.dir,
        quick: a.quick,
        seconds: a.seconds,
        reps: a.reps,
        oracle: a.oracle,
        no_etcd: a.no_etcd,
        peers: a.peers,
        no_peers: a.no_peers,
        no_keep_tick: a.no_keep_tick,
        only: a.only,
        cells: a.cells,
        self_exe: std::env::current_exe().ok(),
        log: true,
        command: std::env::args().collect::<Vec<_>>().join(" "),
    };
    let report = walctl::bench::run(&opts)?;
    if let Some(p) = &a.json_file {
        let text = serde_json::to_string_pretty(&report)?;
        std::fs::write(p, text + "\n")
            .map_err(|e| anyhow::anyhow!("writing {}: {e}", p.display()))?;
    }
    if a.json {
        serde_json::to_writer_pretty(&mut *out, &report)?;
        writeln!(out)?;
    } else {
        report.write_text(out)?;
    }
    Ok(0)
}

fn dump(a: DumpArgs, out: &mut dyn Write) -> anyhow::Result<u8> {
    let loc = located(&a.dir);
    let show = progress::wanted(a.json);
    if a.raw {
        let raw = walctl::frames::raw_dump(&loc.wal_dir, show);
        if a.json {
            serde_json::to_writer_pretty(&mut *out, &raw)?;
            writeln!(out)?;
        } else {
            raw.write_text(out)?;
        }
        out.flush()?;
        for e in raw.errors() {
            eprintln!("walctl dump --raw: {e}");
        }
        return Ok(u8::from(raw.is_bad()));
    }
    let sp = progress::spinner(show, "reading the WAL");
    let d = walctl::dump::dump(&loc.wal_dir, &a.snap.snapshot(&loc.wal_dir));
    sp.finish_and_clear();
    if a.json {
        out.write_all(d.report.to_json_text()?.as_bytes())?;
    } else {
        d.write_text(out)?;
    }
    out.flush()?;
    for (what, e) in d.report.errors() {
        report(&format!("dump: {what}"), e);
    }
    Ok(u8::from(d.has_errors()))
}

fn verify(a: VerifyArgs, out: &mut dyn Write) -> anyhow::Result<u8> {
    let loc = located(&a.dir);
    let snap = a.snap.snapshot(&loc.wal_dir);
    let sp = progress::spinner(progress::wanted(false), "verifying");
    let r = wal::verify(&loc.wal_dir, &snap);
    sp.finish_and_clear();
    match r {
        Ok(h) => {
            writeln!(
                out,
                "ok: {} from snapshot index={} term={}: hard state term={} vote={} commit={}",
                loc.wal_dir.display(),
                snap.index,
                snap.term,
                h.term,
                h.vote,
                h.commit
            )?;
            Ok(0)
        }
        Err(e) => {
            report("verify", &ErrorInfo::from(&e));
            Ok(1)
        }
    }
}

fn snapshots(a: JsonDirArgs, out: &mut dyn Write) -> anyhow::Result<u8> {
    let loc = located(&a.dir);
    match wal::valid_snapshot_entries(&loc.wal_dir) {
        Ok(snaps) => {
            let snaps: Vec<SnapInfo> = snaps.iter().map(SnapInfo::from).collect();
            if a.json {
                serde_json::to_writer(&mut *out, &snaps)?;
                writeln!(out)?;
            } else {
                for s in &snaps {
                    writeln!(out, "index={} term={}", s.index, s.term)?;
                }
            }
            Ok(0)
        }
        Err(e) => {
            report("snapshots", &ErrorInfo::from(&e));
            Ok(1)
        }
    }
}

fn stat(a: JsonDirArgs, out: &mut dyn Write) -> anyhow::Result<u8> {
    let loc = located(&a.dir);
    let st = walctl::stat::stat(&loc.wal_dir, progress::wanted(a.json));
    if a.json {
        serde_json::to_writer_pretty(&mut *out, &st)?;
        writeln!(out)?;
    } else {
        st.write_text(out)?;
    }
    out.flush()?;
    match &st.error {
        Some(e) => {
            report("stat", e);
            Ok(1)
        }
        None => Ok(0),
    }
}

fn repair(a: DirArgs, out: &mut dyn Write) -> anyhow::Result<u8> {
    let loc = located(&a.dir);
    match wal::repair(&loc.wal_dir) {
        Ok(RepairOutcome::Clean { file }) => {
            writeln!(
                out,
                "nothing to repair: {} reads to a clean end",
                file.display()
            )?;
            Ok(0)
        }
        Ok(RepairOutcome::Truncated {
            file,
            offset,
            backup,
        }) => {
            let was = std::fs::metadata(&backup).map(|m| m.len()).ok();
            let was = was.map_or_else(String::new, |n| format!(" (was {n} bytes)"));
            writeln!(
                out,
                "repaired: truncated the torn tail of {} at offset {offset}{was}",
                file.display()
            )?;
            writeln!(out, "backup of the segment as it was: {}", backup.display())?;
            Ok(0)
        }
        Err(e) if e.kind() == ErrorKind::Locked => {
            let what = e.file().map_or_else(
                || loc.wal_dir.display().to_string(),
                |p| p.display().to_string(),
            );
            eprintln!(
                "walctl repair: {what} is locked by another process (a running etcd?); nothing was changed"
            );
            Ok(1)
        }
        Err(e) => {
            report("repair", &ErrorInfo::from(&e));
            eprintln!("walctl repair: nothing was changed");
            Ok(1)
        }
    }
}
