//! The power-loss suite: run a workload on the simulated disk, crash it at sampled
//! operation boundaries in several ways, recover each state with the real `wal` code
//! and check the guarantee; crash recovery itself, and appends after recovery, again.

use std::path::{Path, PathBuf};

use crate::crash::{
    check, must_sync, recover_catching, sim_options, Gen, Log, Rec, Recovered, Step, Verdict,
};
use crate::simfs::{CrashMode, Image, Rng, SimFs};
use wal::raftpb::HardState;

/// What to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// First seed; runs use `seed..seed + runs`.
    pub seed: u64,
    /// Workload runs.
    pub runs: u64,
    /// Steps per workload.
    pub steps: usize,
    /// Crash points sampled per run.
    pub points: usize,
    /// Random crash variants per point (beside keep-all, lose-all, torn-last).
    pub random_variants: usize,
    /// Segment size (small, so cuts happen).
    pub segment_size: u64,
    /// Test-only breakage: syncs do nothing.
    pub ignore_sync: bool,
    /// Test-only breakage: directory fsyncs do nothing.
    pub ignore_dir_sync: bool,
}

impl Config {
    /// A configuration that checks about `states` crash states.
    pub fn with_states(seed: u64, states: u64) -> Self {
        // Each point gives 3 + random_variants states, plus nested checks (~10%).
        let per_run = 60 * 6;
        Self {
            seed,
            runs: states.div_ceil(per_run).max(1),
            steps: 60,
            points: 60,
            random_variants: 3,
            segment_size: 4096,
            ignore_sync: false,
            ignore_dir_sync: false,
        }
    }
}

/// What the suite found.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Crash states recovered and checked.
    pub states: u64,
    /// Acknowledged entries that were checked to be present.
    pub acked_entries_checked: u64,
    /// States that lost something acknowledged.
    pub lost: u64,
    /// States with something never written or a broken log.
    pub wrong: u64,
    /// Recoveries that panicked.
    pub panics: u64,
    /// The first few failures, described.
    pub failures: Vec<String>,
}

impl Report {
    /// The one-line JSON the issue asks for.
    pub fn json(&self, suite: &str) -> String {
        format!(
            "{{\"suite\": \"{suite}\", \"states\": {}, \"acked_entries_checked\": {}, \"lost\": {}, \"wrong\": {}, \"panics\": {}}}",
            self.states, self.acked_entries_checked, self.lost, self.wrong, self.panics
        )
    }

    fn fail(&mut self, msg: String) {
        if self.failures.len() < 10 {
            self.failures.push(msg);
        }
    }
}

fn dir() -> PathBuf {
    PathBuf::from("/data/wal")
}

/// Runs the suite.
pub fn run(cfg: &Config) -> Report {
    let mut report = Report::default();
    for seed in cfg.seed..cfg.seed + cfg.runs {
        run_seed(cfg, seed, &mut report);
    }
    report
}

struct Written {
    recs: Vec<Rec>,
    /// (operation count at return, records acknowledged).
    acks: Vec<(u64, usize)>,
}

impl Written {
    fn acked_at(&self, ops: u64) -> (bool, usize) {
        let mut any = false;
        let mut n = 0;
        for &(o, r) in &self.acks {
            if o <= ops {
                any = true;
                n = n.max(r);
            }
        }
        (any, n)
    }
}

/// Appends `steps` steps to `w`, recording what was acknowledged.
fn write(
    w: &wal::Wal,
    fs: &SimFs,
    gen: &mut Gen,
    steps: usize,
    written: &mut Written,
) -> Result<(), wal::Error> {
    let mut prev = HardState::default();
    for _ in 0..steps {
        let (step, recs) = gen.step();
        match step {
            Step::Save(hs, ents) => {
                let sync = must_sync(&prev, &hs, ents.len());
                w.save(&hs, &ents)?;
                written.recs.extend(recs);
                if !hs.is_empty() {
                    prev = hs;
                }
                if sync {
                    written.acks.push((fs.ops(), written.recs.len()));
                }
            }
            Step::Snapshot(s) => {
                w.save_snapshot(&s)?;
                written.acks.push((fs.ops(), written.recs.len()));
                w.release_lock_to(s.index)?;
            }
        }
    }
    Ok(())
}

fn modes(rng: &mut Rng, random: usize) -> Vec<CrashMode> {
    let mut v = vec![
        CrashMode::KeepAll,
        CrashMode::LoseAll,
        CrashMode::TornLast(rng.next_u64()),
    ];
    for _ in 0..random {
        v.push(CrashMode::Random(rng.next_u64()));
    }
    v
}

fn sample<T>(rng: &mut Rng, items: Vec<T>, n: usize) -> Vec<T> {
    if items.len() <= n {
        return items;
    }
    let mut picked: Vec<usize> = (0..n)
        .map(|_| rng.below(items.len() as u64) as usize)
        .collect();
    picked.sort_unstable();
    picked.dedup();
    let mut out = Vec::new();
    for (i, it) in items.into_iter().enumerate() {
        if picked.binary_search(&i).is_ok() {
            out.push(it);
        }
    }
    out
}

fn run_seed(cfg: &Config, seed: u64, report: &mut Report) {
    let fs = SimFs::new();
    let data = Path::new("/data");
    if fs_setup(&fs, data).is_err() {
        report.fail(format!("seed {seed}: could not set up the simulated disk"));
        return;
    }
    fs.set_ignore_sync(cfg.ignore_sync);
    fs.set_ignore_dir_sync(cfg.ignore_dir_sync);
    fs.record(true);
    let opts = sim_options(&fs, cfg.segment_size);
    let mut written = Written {
        recs: Vec::new(),
        acks: Vec::new(),
    };
    let result = (|| -> Result<(), wal::Error> {
        let w = opts.create(&dir(), Some(b"powerloss metadata"))?;
        written.acks.push((fs.ops(), 0));
        let mut gen = Gen::new(seed, Log::default());
        write(&w, &fs, &mut gen, cfg.steps, &mut written)?;
        w.close()?;
        written.acks.push((fs.ops(), written.recs.len()));
        Ok(())
    })();
    fs.record(false);
    if let Err(e) = result {
        report.wrong += 1;
        report.fail(format!("seed {seed}: the workload itself failed: {e}"));
        return;
    }
    let mut rng = Rng::new(seed ^ 0x5eed);
    let images = sample(&mut rng, fs.take_images(), cfg.points);
    for (n, (ops, img)) in images.into_iter().enumerate() {
        let (created, acked) = written.acked_at(ops);
        for mode in modes(&mut rng, cfg.random_variants) {
            let nested = n % 10 == 0;
            check_state(
                cfg,
                &format!("seed {seed} op {ops} {mode:?}"),
                &img.crash(mode),
                &Log::default(),
                &written.recs,
                acked,
                created,
                nested.then(|| rng.next_u64()),
                report,
            );
        }
    }
}

fn fs_setup(fs: &SimFs, data: &Path) -> wal_fileutil::Result<()> {
    use wal_fileutil::FileSystem;
    fs.create_dir_all(data)?;
    fs.fsync_dir(Path::new("/"))
}

#[allow(clippy::too_many_arguments)]
fn check_state(
    cfg: &Config,
    what: &str,
    img: &Image,
    base: &Log,
    recs: &[Rec],
    acked: usize,
    created: bool,
    nested: Option<u64>,
    report: &mut Report,
) {
    let fs = SimFs::from_image(img.clone());
    if nested.is_some() {
        fs.record(true);
    }
    let opts = sim_options(&fs, cfg.segment_size);
    report.states += 1;
    let mut acked_log = base.clone();
    for r in &recs[..acked] {
        acked_log.apply(r);
    }
    let (w, got) = match recover_catching(&opts, &dir()) {
        Err(p) => {
            report.panics += 1;
            report.fail(format!("{what}: recovery panicked: {p}"));
            return;
        }
        Ok(Err(e)) => {
            if created || acked > 0 {
                report.lost += 1;
            } else {
                report.wrong += 1;
            }
            report.fail(format!("{what}: recovery failed: {e}"));
            return;
        }
        Ok(Ok(Recovered::NoWal)) => {
            if created {
                report.lost += 1;
                report.fail(format!("{what}: the WAL vanished after create returned"));
            }
            return;
        }
        Ok(Ok(Recovered::Wal(w, log))) => (w, log),
    };
    match check(base, recs, acked, &got) {
        Verdict::Ok => report.acked_entries_checked += acked_log.entries.len() as u64,
        Verdict::Lost => {
            report.lost += 1;
            report.fail(format!(
                "{what}: acknowledged data lost: want at least {} entries (hs {:?}), got {} (hs {:?})",
                acked_log.entries.len(),
                acked_log.hard_state,
                got.entries.len(),
                got.hard_state
            ));
            return;
        }
        Verdict::Wrong => {
            report.wrong += 1;
            report.fail(format!(
                "{what}: recovered a log that was never written: {} entries (hs {:?})",
                got.entries.len(),
                got.hard_state
            ));
            return;
        }
    }
    let Some(seed) = nested else { return };
    let mut rng = Rng::new(seed);
    // A crash during recovery (the tail zeroing, repair) must not hurt either.
    let during = fs.take_images();
    if let Some((_, img2)) = sample(&mut rng, during, 1).into_iter().next() {
        check_state(
            cfg,
            &format!("{what} / crash in recovery"),
            &img2.crash(CrashMode::Random(rng.next_u64())),
            base,
            recs,
            acked,
            created,
            None,
            report,
        );
    }
    // Appends after recovery, then another crash.
    let mut written = Written {
        recs: Vec::new(),
        acks: Vec::new(),
    };
    let mut gen = Gen::new(rng.next_u64(), got.clone());
    if let Err(e) = write(&w, &fs, &mut gen, 12, &mut written) {
        report.wrong += 1;
        report.fail(format!("{what}: appending after recovery failed: {e}"));
        return;
    }
    drop(w);
    fs.record(false);
    let after = fs.take_images();
    if let Some((ops, img3)) = sample(&mut rng, after, 1).into_iter().next() {
        let (_, acked2) = written.acked_at(ops);
        check_state(
            cfg,
            &format!("{what} / appends then crash"),
            &img3.crash(CrashMode::Random(rng.next_u64())),
            &got,
            &written.recs,
            acked2,
            true,
            None,
            report,
        );
    }
}
