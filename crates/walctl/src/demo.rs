//! `walctl demo`: the whole life of a WAL in one run.
//!
//! Creates a WAL with small segments, appends entries with fsync on (measuring the
//! throughput), tears the tail the way a crash in the middle of a write does, shows
//! that a write-mode open refuses it with an unexpected EOF, repairs it, reopens,
//! checks every synced entry came back byte for byte, appends again, and ends with a
//! PASS or FAIL line.

use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use bytes::Bytes;
use wal::raftpb::{Entry, HardState};
use wal::walpb::Snapshot;
use wal::{ErrorKind, RepairOutcome};
use wal_codec::frame::encode_frame_size;
use wal_codec::record::encode_record;
use wal_codec::{encode_entry, Decoder, EntryEncoding, RecordType, RollingCrc, SegmentReader};

use crate::locate::segment_names;
use crate::report::ErrorInfo;

/// Metadata the demo WAL is created with.
pub const DEMO_METADATA: &[u8] = b"walctl demo metadata";

/// How to run the demo.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Where to create the WAL (as `DIR/wal`); a temporary directory when `None`.
    pub dir: Option<PathBuf>,
    /// Entries to append before the crash.
    pub entries: u64,
    /// Segment size in bytes.
    pub segment_size: u64,
    /// Seed of the generated entry data.
    pub seed: u64,
    /// Whether to draw a progress bar on stderr.
    pub progress: bool,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            dir: None,
            entries: 5000,
            segment_size: 256 * 1024,
            seed: 1,
            progress: false,
        }
    }
}

/// splitmix64: small, deterministic, never stuck at zero.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }

    fn bytes(&mut self, n: usize) -> Bytes {
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            v.extend_from_slice(&self.next().to_le_bytes());
        }
        v.truncate(n);
        Bytes::from(v)
    }
}

struct Checks<'a> {
    out: &'a mut dyn Write,
    total: usize,
    failed: usize,
}

impl Checks<'_> {
    fn say(&mut self, line: impl AsRef<str>) -> std::io::Result<()> {
        writeln!(self.out, "{}", line.as_ref())
    }

    fn check(&mut self, ok: bool, what: &str, detail: impl AsRef<str>) -> std::io::Result<()> {
        self.total += 1;
        if !ok {
            self.failed += 1;
        }
        let mark = if ok { "ok  " } else { "FAIL" };
        writeln!(self.out, "  [{mark}] {what}: {}", detail.as_ref())
    }
}

/// Runs the demo, writing the report to `out`. Returns whether every check passed;
/// an `Err` is an I/O failure writing the report.
pub fn run(opts: &DemoOptions, out: &mut dyn Write) -> std::io::Result<bool> {
    let mut checks = Checks {
        out,
        total: 0,
        failed: 0,
    };
    let result = run_steps(opts, &mut checks);
    if let Err(e) = &result {
        checks.total += 1;
        checks.failed += 1;
        checks.say(format!("  [FAIL] demo stopped: {e:#}"))?;
    }
    let passed = result.is_ok() && checks.failed == 0;
    if passed {
        checks.say(format!("PASS: all {} checks passed", checks.total))?;
    } else {
        checks.say(format!(
            "FAIL: {} of {} checks failed",
            checks.failed, checks.total
        ))?;
    }
    Ok(passed)
}

fn run_steps(opts: &DemoOptions, c: &mut Checks<'_>) -> anyhow::Result<()> {
    let _tmp;
    let base = match &opts.dir {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
            d.clone()
        }
        None => {
            let t = tempfile::Builder::new()
                .prefix("walctl-demo-")
                .tempdir()
                .context("creating a temporary directory")?;
            let p = t.path().to_path_buf();
            _tmp = t;
            p
        }
    };
    let dir = base.join("wal");
    if dir.exists() {
        bail!(
            "{} already exists: give the demo a new or empty directory",
            dir.display()
        );
    }
    let n = opts.entries;
    c.say(format!(
        "walctl demo: WAL in {} (segment size {} bytes, fsync on every save)",
        dir.display(),
        opts.segment_size
    ))?;

    // 1. Append.
    let mut rng = Rng(opts.seed);
    let w = wal::Options::new()
        .segment_size(opts.segment_size)
        .create(&dir, Some(DEMO_METADATA))
        .context("creating the WAL")?;
    let pb = crate::progress::bar(opts.progress, n, "appending", false);
    let mut written: Vec<Entry> = Vec::with_capacity(n as usize);
    let mut hs = HardState::default();
    let (mut saves, mut data_bytes, mut next) = (0u64, 0u64, 1u64);
    let start = Instant::now();
    while next <= n {
        let batch = rng.range(10, 50).min(n - next + 1);
        let commit = next - 1;
        let ents: Vec<Entry> = (next..next + batch)
            .map(|index| {
                let size = rng.range(100, 1000) as usize;
                Entry {
                    r#type: 0,
                    term: 1 + (index - 1) / 1000,
                    index,
                    data: Some(rng.bytes(size)),
                }
            })
            .collect();
        let term = ents.last().map_or(1, |e| e.term);
        hs = HardState {
            term,
            vote: 1,
            commit,
        };
        w.save(&hs, &ents)
            .with_context(|| format!("saving entries {next}..{}", next + batch - 1))?;
        saves += 1;
        data_bytes += ents
            .iter()
            .map(|e| e.data.as_ref().map_or(0, |d| d.len()) as u64)
            .sum::<u64>();
        next += batch;
        pb.inc(batch);
        written.extend(ents);
    }
    let secs = start.elapsed().as_secs_f64().max(1e-9);
    pb.finish_and_clear();
    w.close().context("closing the WAL")?;
    let st = crate::stat::stat(&dir, false);
    c.say(format!(
        "[1/5] append: {n} entries of 100..1000 bytes in {saves} saves of 10..50, each with a hard state"
    ))?;
    c.say(format!(
        "      {:.2} MB of entry data in {secs:.3} s: {:.0} saves/s, {:.0} entries/s, {:.2} MB/s",
        data_bytes as f64 / 1e6,
        saves as f64 / secs,
        n as f64 / secs,
        data_bytes as f64 / 1e6 / secs
    ))?;
    c.say(format!(
        "      {} segments, {} bytes in use ({} on disk)",
        st.segments.len(),
        st.used_bytes,
        st.total_bytes
    ))?;
    c.check(
        st.error.is_none() && !st.torn_tail && st.entries == n,
        "the WAL reads back clean",
        format!(
            "{} entry records, index {}..{}",
            st.entries,
            st.index_range.map_or(0, |r| r.0),
            st.index_range.map_or(0, |r| r.1)
        ),
    )?;

    // 2. Crash: a torn write at the end of the last segment.
    let names = segment_names(&dir)?;
    let Some(last) = names.last() else {
        bail!("no segment in {}", dir.display());
    };
    let tail = dir.join(last);
    let (end, chain) = end_of_records(&tail)?;
    let last_term = written.last().map_or(1, |e| e.term);
    let torn_entry = Entry {
        r#type: 0,
        term: last_term,
        index: n + 1,
        data: Some(rng.bytes(3000)),
    };
    let (frame_len, kept) = tear(&tail, end, chain, &torn_entry)?;
    c.say(format!(
        "[2/5] crash: tore the tail of {last}: at offset {end} a {frame_len}-byte frame for entry {} \
         of which only {kept} bytes reached the disk, then zero sectors",
        n + 1
    ))?;

    // 3. Write-mode open refuses the torn tail; read mode tolerates it.
    let w = wal::open(&dir, &Snapshot::default()).context("opening in write mode")?;
    let r = w.read_all();
    if let Err(e) = w.close() {
        tracing::warn!(error = %e, "closing after the failed read_all");
    }
    c.say("[3/5] open + read_all in write mode")?;
    match r {
        Err(e) => {
            let info = ErrorInfo::from(&e);
            c.check(
                e.kind() == ErrorKind::UnexpectedEof
                    && e.is_repairable()
                    && e.offset() == Some(end),
                "write mode reports a repairable unexpected EOF at the torn frame",
                info.line(),
            )?;
        }
        Ok(all) => c.check(
            false,
            "write mode reports a repairable unexpected EOF at the torn frame",
            format!("read_all succeeded with {} entries", all.entries.len()),
        )?,
    }
    let all = read_only(&dir).context("read-mode read_all")?;
    c.check(
        all.entries == written,
        "read mode (as etcd) reads up to the torn frame",
        format!("{} entries", all.entries.len()),
    )?;

    // 4. Repair.
    c.say("[4/5] repair")?;
    match wal::repair(&dir).context("repair")? {
        RepairOutcome::Truncated {
            file,
            offset,
            backup,
        } => {
            let backup_len = std::fs::metadata(&backup).map(|m| m.len()).unwrap_or(0);
            c.check(
                offset == end,
                "truncated at the end of the last synced record",
                format!("{} truncated at offset {offset}", file.display()),
            )?;
            c.check(
                backup_len >= end + kept,
                "the torn segment was kept as a backup",
                format!("{} ({backup_len} bytes)", backup.display()),
            )?;
        }
        RepairOutcome::Clean { file } => c.check(
            false,
            "repair truncates the torn tail",
            format!("repair found nothing to do in {}", file.display()),
        )?,
    }

    // 5. Reopen, compare, append.
    c.say("[5/5] reopen + read_all in write mode, then append")?;
    let w = wal::open(&dir, &Snapshot::default()).context("reopening after repair")?;
    let all = w.read_all().context("read_all after repair")?;
    let same = all.entries == written;
    let first_diff = all
        .entries
        .iter()
        .zip(&written)
        .position(|(a, b)| a != b)
        .map_or_else(String::new, |i| {
            format!(", first difference at entry {}", i + 1)
        });
    c.check(
        same && all.hard_state == hs && all.metadata.as_deref() == Some(DEMO_METADATA),
        "every synced entry is back, byte-identical",
        format!(
            "{} of {} entries{first_diff}; hard state term={} vote={} commit={}",
            all.entries.len(),
            written.len(),
            all.hard_state.term,
            all.hard_state.vote,
            all.hard_state.commit
        ),
    )?;
    let extra: Vec<Entry> = (n + 1..=n + 20)
        .map(|index| {
            let size = rng.range(100, 1000) as usize;
            Entry {
                r#type: 0,
                term: last_term + 1,
                index,
                data: Some(rng.bytes(size)),
            }
        })
        .collect();
    let hs2 = HardState {
        term: last_term + 1,
        vote: 1,
        commit: n,
    };
    w.save(&hs2, &extra).context("appending after repair")?;
    w.close().context("closing after the append")?;
    written.extend(extra);
    let again = read_only(&dir).context("reading after the append")?;
    let verified = wal::verify(&dir, &Snapshot::default());
    let st = crate::stat::stat(&dir, false);
    c.check(
        again.entries == written
            && again.hard_state == hs2
            && verified.is_ok()
            && st.error.is_none()
            && !st.torn_tail,
        "appends continue after the repair",
        format!(
            "20 more entries saved; now {} entries (index {}..{}), verify {}, {} segments",
            again.entries.len(),
            again.entries.first().map_or(0, |e| e.index),
            again.entries.last().map_or(0, |e| e.index),
            match &verified {
                Ok(_) => "ok".to_string(),
                Err(e) => ErrorInfo::from(e).line(),
            },
            st.segments.len()
        ),
    )?;
    Ok(())
}

/// `open_for_read` + `read_all` from the start.
fn read_only(dir: &Path) -> anyhow::Result<wal::ReadAll> {
    let w = wal::open_for_read(dir, &Snapshot::default())?;
    Ok(w.read_all()?)
}

/// The end of the last record of a segment and the CRC chain there.
fn end_of_records(path: &Path) -> anyhow::Result<(u64, u32)> {
    let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let size = f.metadata()?.len();
    let mut dec = Decoder::new(vec![SegmentReader::new(path, size, Box::new(f))]);
    loop {
        match dec.decode() {
            Ok(Some(rec)) => {
                if rec.r#type == RecordType::Crc as i64 {
                    dec.update_crc(rec.crc);
                }
            }
            Ok(None) => return Ok((dec.last_offset(), dec.last_crc())),
            Err(e) => return Err(ErrorInfo::from(e).into()),
        }
    }
}

/// Writes the first third of a real frame for `entry` at `offset` (the length field
/// claims the whole record) followed by two zero sectors, and syncs: what a crash in
/// the middle of a write leaves. Returns the full frame length and the bytes kept.
fn tear(path: &Path, offset: u64, chain: u32, entry: &Entry) -> anyhow::Result<(usize, u64)> {
    let mut payload = Vec::new();
    encode_entry(entry, EntryEncoding::Etcd36, &mut payload);
    let crc = RollingCrc::new(chain).update(&payload);
    let mut rec = Vec::new();
    encode_record(RecordType::Entry as i64, crc, Some(&payload), &mut rec);
    let (len_field, pad) = encode_frame_size(rec.len());
    let mut frame = len_field.to_le_bytes().to_vec();
    frame.extend_from_slice(&rec);
    frame.resize(frame.len() + pad, 0);
    let kept = (8 + rec.len() / 3).min(frame.len());
    let mut bytes = frame[..kept].to_vec();
    bytes.resize(kept + 1024, 0);
    let mut f = OpenOptions::new()
        .write(true)
        .open(path)
        .with_context(|| format!("opening {} to tear it", path.display()))?;
    f.seek(SeekFrom::Start(offset))?;
    f.write_all(&bytes)?;
    f.sync_all()?;
    Ok((frame.len(), kept as u64))
}
