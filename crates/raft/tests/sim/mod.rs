//! A deterministic three-node raft-rs cluster in one process, each node on its own
//! WAL directory, with nodes dropped (no clean close) and restarted from disk.
//! Shared by `tests/cluster.rs` and `examples/cluster.rs`.
// Test harness code shared with the example: panicking on failure is the point.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use raft::eraftpb::{ConfState, Entry, EntryType, Message, MessageType};
use raft::{Config, RawNode, SnapshotStatus, StateRole, Storage};
use wal_fileutil::{FileSystem, OpenOptions, WalFile};
use wal_raft::{WalStorage, BOOTSTRAP_INDEX, BOOTSTRAP_TERM};

/// A small deterministic generator (splitmix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded generator.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// The OS file system, except that a segment cut in an armed directory fails at
/// the rename of the prepared `N.tmp` into place: the node dies mid-cut.
#[derive(Debug)]
pub struct FaultFs {
    inner: Arc<dyn FileSystem>,
    armed: Mutex<Option<PathBuf>>,
    fired: AtomicUsize,
}

impl FaultFs {
    fn new() -> Self {
        Self {
            inner: wal_fileutil::os(),
            armed: Mutex::new(None),
            fired: AtomicUsize::new(0),
        }
    }
    fn arm(&self, dir: &Path) {
        *self.armed.lock().unwrap() = Some(dir.to_path_buf());
    }
    fn disarm(&self) {
        *self.armed.lock().unwrap() = None;
    }
    fn fired(&self) -> usize {
        self.fired.load(Ordering::SeqCst)
    }
}

impl FileSystem for FaultFs {
    fn open(&self, path: &Path, opts: &OpenOptions) -> wal_fileutil::Result<Box<dyn WalFile>> {
        self.inner.open(path, opts)
    }
    fn rename(&self, from: &Path, to: &Path) -> wal_fileutil::Result<()> {
        let mut armed = self.armed.lock().unwrap();
        let cut = from.extension().is_some_and(|e| e == "tmp")
            && to.extension().is_some_and(|e| e == "wal");
        if cut && armed.as_deref() == to.parent() {
            *armed = None;
            self.fired.fetch_add(1, Ordering::SeqCst);
            return Err(wal_fileutil::Error::from_io(
                "rename",
                from,
                std::io::Error::other("injected: the node died while cutting a segment"),
            ));
        }
        drop(armed);
        self.inner.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> wal_fileutil::Result<()> {
        self.inner.remove_file(path)
    }
    fn remove_dir_all(&self, path: &Path) -> wal_fileutil::Result<()> {
        self.inner.remove_dir_all(path)
    }
    fn create_dir_all(&self, path: &Path) -> wal_fileutil::Result<()> {
        self.inner.create_dir_all(path)
    }
    fn read_dir(&self, path: &Path) -> wal_fileutil::Result<Vec<String>> {
        self.inner.read_dir(path)
    }
    fn fsync_dir(&self, path: &Path) -> wal_fileutil::Result<()> {
        self.inner.fsync_dir(path)
    }
    fn exists(&self, path: &Path) -> bool {
        self.inner.exists(path)
    }
    fn file_len(&self, path: &Path) -> wal_fileutil::Result<u64> {
        self.inner.file_len(path)
    }
}

/// How a run is shaped.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Seed of every random choice.
    pub seed: u64,
    /// Rounds (one tick each) with proposals and crashes.
    pub rounds: u64,
    /// Node crashes to inject (the first one dies mid-cut).
    pub crashes: usize,
    /// Tear the WAL tail of every crashed node before restarting it.
    pub tear: bool,
    /// WAL segment size: tiny, so segments are cut all the time.
    pub segment_size: u64,
    /// Snapshot every this many applied entries.
    pub snapshot_every: u64,
    /// Entries kept in memory below a snapshot.
    pub keep_entries: u64,
    /// fdatasync (the crash model here is a process crash, which does not need it).
    pub sync: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            seed: 9,
            rounds: 700,
            crashes: 8,
            tear: false,
            segment_size: 2048,
            snapshot_every: 25,
            keep_entries: 5,
            sync: true,
        }
    }
}

/// What a run did and checked.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Proposals handed to a leader.
    pub proposed: usize,
    /// Proposals applied (committed) somewhere: acknowledged to the client.
    pub acknowledged: usize,
    /// Node restarts from disk.
    pub restarts: usize,
    /// Crashes while a segment was being cut.
    pub cut_crashes: usize,
    /// Torn tails written before a restart.
    pub tears: usize,
    /// Restarts that repaired a torn tail.
    pub repairs: usize,
    /// Snapshots taken by the nodes.
    pub snapshots: usize,
    /// Snapshots sent to lagging followers and applied.
    pub snapshots_received: usize,
    /// WAL segments purged after compaction.
    pub purged: usize,
    /// Committed entries compared across nodes (applied state and reopened WALs).
    pub entries_compared: usize,
    /// The length of the committed log.
    pub committed: u64,
    /// Wall time.
    pub elapsed: Duration,
}

type Applied = Vec<(u64, u64, Bytes)>;

fn encode_app(app: &Applied) -> Bytes {
    let mut out = Vec::new();
    for (index, term, data) in app {
        out.extend_from_slice(&index.to_le_bytes());
        out.extend_from_slice(&term.to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(data);
    }
    out.into()
}

fn decode_app(b: &Bytes) -> Applied {
    let mut out = Vec::new();
    let mut at = 0;
    while at < b.len() {
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap());
        let index = u64_at(at);
        let term = u64_at(at + 8);
        let len = u32::from_le_bytes(b[at + 16..at + 20].try_into().unwrap()) as usize;
        out.push((index, term, b.slice(at + 20..at + 20 + len)));
        at += 20 + len;
    }
    out
}

fn snap_path(dir: &Path, term: u64, index: u64) -> PathBuf {
    dir.join(format!("{term:016x}-{index:016x}.snap"))
}

/// Like etcd's snapshotter: write, fsync, rename into place, fsync the directory.
fn save_snap_file(dir: &Path, term: u64, index: u64, data: &[u8]) {
    let path = snap_path(dir, term, index);
    let tmp = path.with_extension("snap.tmp");
    let mut f = std::fs::File::create(&tmp).unwrap();
    f.write_all(data).unwrap();
    f.sync_all().unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    std::fs::File::open(dir).unwrap().sync_all().unwrap();
    // Keep the newest three.
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".snap"))
        .collect();
    names.sort_by_key(|n| u64::from_str_radix(&n[17..33], 16).unwrap());
    for n in names.iter().rev().skip(3) {
        std::fs::remove_file(dir.join(n)).unwrap();
    }
}

/// Where a scheduled crash strikes inside the handling of a Ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// The Ready is dropped before anything is persisted.
    BeforePersist,
    /// Persisted, nothing sent.
    AfterPersist,
    /// Sent, not advanced.
    AfterSend,
}

struct Crashed;

/// One node: the raft-rs state machine, its storage and the application state
/// (every committed normal entry with data, in order).
struct Node {
    id: u64,
    raw: RawNode<WalStorage>,
    store: WalStorage,
    app: Applied,
    applied: u64,
    snap_dir: PathBuf,
    wal_dir: PathBuf,
    last_snapshot: u64,
    crash_at: Option<Phase>,
}

const PEERS: [u64; 3] = [1, 2, 3];

fn logger() -> slog::Logger {
    slog::Logger::root(slog::Discard, slog::o!())
}

impl Node {
    fn start(id: u64, dir: &Path, opts: &wal::Options, fresh: bool, rep: &mut Report) -> Node {
        let wal_dir = dir.join("wal");
        let snap_dir = dir.join("snap");
        std::fs::create_dir_all(&snap_dir).unwrap();
        let (store, snapshot) = if fresh {
            let cs = ConfState::from((PEERS.to_vec(), vec![]));
            let s = WalStorage::create(opts, &wal_dir, Some(format!("node {id}").as_bytes()), &cs)
                .unwrap();
            let snap = s.latest_snapshot();
            (s, snap)
        } else {
            let (s, rec) = WalStorage::open(opts, &wal_dir, |m| {
                if m.index == BOOTSTRAP_INDEX && m.term == BOOTSTRAP_TERM {
                    return Some(Bytes::new());
                }
                std::fs::read(snap_path(&snap_dir, m.term, m.index))
                    .ok()
                    .map(Bytes::from)
            })
            .unwrap_or_else(|e| panic!("node {id}: restart failed: {e}"));
            if rec
                .repaired
                .as_ref()
                .is_some_and(|r| !matches!(r, wal::RepairOutcome::Clean { .. }))
            {
                rep.repairs += 1;
            }
            (s, rec.snapshot)
        };
        let meta = snapshot.get_metadata();
        let cfg = Config {
            id,
            election_tick: 10,
            heartbeat_tick: 2,
            applied: meta.index,
            max_size_per_msg: 16 * 1024,
            max_inflight_msgs: 64,
            pre_vote: true,
            check_quorum: true,
            ..Default::default()
        };
        let raw = RawNode::new(&cfg, store.clone(), &logger()).unwrap();
        Node {
            id,
            raw,
            app: decode_app(&snapshot.data),
            applied: meta.index,
            last_snapshot: meta.index,
            store,
            snap_dir,
            wal_dir,
            crash_at: None,
        }
    }

    fn apply(&mut self, ents: Vec<Entry>, pending: &mut BTreeSet<Bytes>, acked: &mut Vec<Bytes>) {
        for e in ents {
            if e.index <= self.applied {
                continue;
            }
            assert_eq!(
                e.index,
                self.applied + 1,
                "node {}: applied out of order",
                self.id
            );
            self.applied = e.index;
            if e.entry_type == EntryType::EntryNormal && !e.data.is_empty() {
                if pending.remove(&e.data) {
                    acked.push(e.data.clone());
                }
                self.app.push((e.index, e.term, e.data));
            }
        }
    }

    /// Handles one Ready the way an etcd raft node does; `Err` means the node died.
    fn on_ready(
        &mut self,
        cfg: &SimConfig,
        net: &mut VecDeque<Message>,
        pending: &mut BTreeSet<Bytes>,
        acked: &mut Vec<Bytes>,
        rep: &mut Report,
    ) -> Result<bool, Crashed> {
        if !self.raw.has_ready() {
            return Ok(false);
        }
        let mut rd = self.raw.ready();
        if self.crash_at == Some(Phase::BeforePersist) {
            return Err(Crashed);
        }
        let snap = rd.snapshot().clone();
        if !snap.is_empty() {
            let m = snap.get_metadata();
            save_snap_file(&self.snap_dir, m.term, m.index, &snap.data);
        }
        if self.store.persist_ready(&rd).is_err() {
            return Err(Crashed);
        }
        if !snap.is_empty() {
            self.app = decode_app(&snap.data);
            self.applied = snap.get_metadata().index;
            self.last_snapshot = self.applied;
            rep.snapshots_received += 1;
        }
        if self.crash_at == Some(Phase::AfterPersist) {
            return Err(Crashed);
        }
        net.extend(rd.take_messages());
        net.extend(rd.take_persisted_messages());
        if self.crash_at == Some(Phase::AfterSend) {
            return Err(Crashed);
        }
        self.apply(rd.take_committed_entries(), pending, acked);
        let mut light = self.raw.advance(rd);
        if let Some(c) = light.commit_index() {
            if self.store.persist_commit(c).is_err() {
                return Err(Crashed);
            }
        }
        net.extend(light.take_messages());
        self.apply(light.take_committed_entries(), pending, acked);
        self.raw.advance_apply();
        if self.applied >= self.last_snapshot + cfg.snapshot_every {
            self.take_snapshot(cfg, rep)?;
        }
        Ok(true)
    }

    /// etcd's snapshot + compaction: data first, then the WAL record, then drop
    /// old entries from memory and purge unlocked segments.
    fn take_snapshot(&mut self, cfg: &SimConfig, rep: &mut Report) -> Result<(), Crashed> {
        let index = self.applied;
        let term = self.store.term(index).unwrap();
        let data = encode_app(&self.app);
        save_snap_file(&self.snap_dir, term, index, &data);
        if self.store.create_snapshot(index, None, data).is_err() {
            return Err(Crashed);
        }
        self.last_snapshot = index;
        rep.snapshots += 1;
        let compact_to = index.saturating_sub(cfg.keep_entries);
        if compact_to > self.store.first_index().unwrap() {
            self.store.compact(compact_to).unwrap();
        }
        let purged =
            wal_fileutil::purge_once(&*wal_fileutil::os(), &self.wal_dir, ".wal", 2).unwrap();
        rep.purged += purged.removed.len();
        Ok(())
    }
}

/// Finds the end of the last valid frame of the newest segment and writes a torn
/// tail after it: a frame header claiming a long record followed by a zero sector,
/// or a header followed by a few bytes and the end of the file.
fn tear_tail(wal_dir: &Path, variant: u64) {
    let mut names: Vec<String> = std::fs::read_dir(wal_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".wal"))
        .collect();
    names.sort();
    let path = wal_dir.join(names.last().unwrap());
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let mut buf = Vec::new();
    f.read_to_end(&mut buf).unwrap();
    let mut end = 0usize;
    while end + 8 <= buf.len() {
        let len_field = u64::from_le_bytes(buf[end..end + 8].try_into().unwrap());
        if len_field == 0 {
            break;
        }
        let rec = (len_field & !(0xffu64 << 56)) as usize;
        let pad = if (len_field as i64) < 0 {
            ((len_field >> 56) & 0x7) as usize
        } else {
            0
        };
        if end + 8 + rec + pad > buf.len() {
            break;
        }
        end += 8 + rec + pad;
    }
    f.seek(SeekFrom::Start(end as u64)).unwrap();
    if variant & 1 == 0 {
        // A 4 KiB record whose first sectors never reached the disk.
        f.write_all(&4096u64.to_le_bytes()).unwrap();
        f.write_all(&[0u8; 4096]).unwrap();
    } else {
        // A frame cut short by the end of the file.
        f.write_all(&200u64.to_le_bytes()).unwrap();
        f.write_all(&[0xA5; 37]).unwrap();
        f.set_len(end as u64 + 8 + 37).unwrap();
    }
    f.sync_all().unwrap();
}

/// The cluster.
pub struct Sim {
    cfg: SimConfig,
    _tmp: tempfile::TempDir,
    dirs: Vec<PathBuf>,
    opts: wal::Options,
    fault: Arc<FaultFs>,
    nodes: Vec<Option<Node>>,
    down_until: Vec<u64>,
    net: VecDeque<Message>,
    rng: Rng,
    pending: BTreeSet<Bytes>,
    acked: Vec<Bytes>,
    next_proposal: u64,
    rep: Report,
    crashes_done: usize,
    next_crash: u64,
}

impl Sim {
    /// Three fresh nodes in a temporary directory.
    pub fn new(cfg: SimConfig) -> Sim {
        let tmp = tempfile::tempdir().unwrap();
        let fault = Arc::new(FaultFs::new());
        let opts = wal::Options::new()
            .segment_size(cfg.segment_size)
            .unsafe_no_sync(!cfg.sync)
            .file_system(fault.clone());
        let mut rep = Report::default();
        let dirs: Vec<PathBuf> = PEERS
            .iter()
            .map(|id| tmp.path().join(format!("n{id}")))
            .collect();
        let nodes = PEERS
            .iter()
            .zip(&dirs)
            .map(|(&id, d)| Some(Node::start(id, d, &opts, true, &mut rep)))
            .collect();
        Sim {
            rng: Rng::new(cfg.seed),
            cfg,
            _tmp: tmp,
            dirs,
            opts,
            fault,
            nodes,
            down_until: vec![0; PEERS.len()],
            net: VecDeque::new(),
            pending: BTreeSet::new(),
            acked: Vec::new(),
            next_proposal: 0,
            rep,
            crashes_done: 0,
            next_crash: 30,
        }
    }

    fn leader(&self) -> Option<usize> {
        self.nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.as_ref().map(|n| (i, n)))
            .filter(|(_, n)| n.raw.raft.state == StateRole::Leader)
            .max_by_key(|(_, n)| n.raw.raft.term)
            .map(|(i, _)| i)
    }

    fn kill(&mut self, i: usize, round: u64) {
        // Dropped without close: unflushed WAL buffers are lost, locks released.
        self.nodes[i] = None;
        // The second crash is a long outage: the node comes back behind the
        // leader's compacted log and catches up from a snapshot.
        let down = if self.crashes_done == 2 {
            120
        } else {
            5 + self.rng.below(40)
        };
        self.down_until[i] = round + down;
        if self.fault.armed.lock().unwrap().as_deref() == Some(self.dirs[i].join("wal").as_path()) {
            self.fault.disarm();
        }
    }

    fn restart_due(&mut self, round: u64) {
        for (i, &id) in PEERS.iter().enumerate() {
            if self.nodes[i].is_none() && round >= self.down_until[i] {
                if self.cfg.tear {
                    tear_tail(&self.dirs[i].join("wal"), self.rep.tears as u64);
                    self.rep.tears += 1;
                }
                self.nodes[i] = Some(Node::start(
                    id,
                    &self.dirs[i],
                    &self.opts,
                    false,
                    &mut self.rep,
                ));
                self.rep.restarts += 1;
            }
        }
    }

    fn schedule_crash(&mut self, round: u64) {
        if self.crashes_done >= self.cfg.crashes || self.nodes.iter().any(Option::is_none) {
            return;
        }
        if self.fault.armed.lock().unwrap().is_some() || round < self.next_crash {
            return;
        }
        self.next_crash = round + 10 + self.rng.below(30);
        let i = self.rng.below(PEERS.len() as u64) as usize;
        self.crashes_done += 1;
        if self.crashes_done == 1 {
            // The first crash happens while this node cuts a segment.
            self.fault.arm(&self.dirs[i].join("wal"));
            return;
        }
        let node = self.nodes[i].as_mut().unwrap();
        match self.rng.below(4) {
            0 => self.kill(i, round),
            1 => node.crash_at = Some(Phase::BeforePersist),
            2 => node.crash_at = Some(Phase::AfterPersist),
            _ => node.crash_at = Some(Phase::AfterSend),
        }
    }

    fn propose(&mut self) {
        let Some(l) = self.leader() else { return };
        let n = self.rng.below(3);
        for _ in 0..n {
            let data = Bytes::from(format!("proposal-{:06}", self.next_proposal));
            self.next_proposal += 1;
            let node = self.nodes[l].as_mut().unwrap();
            if node.raw.propose(vec![], data.to_vec()).is_ok() {
                self.pending.insert(data);
                self.rep.proposed += 1;
            }
        }
    }

    fn deliver(&mut self) -> bool {
        let msgs: Vec<Message> = self.net.drain(..).collect();
        let any = !msgs.is_empty();
        for m in msgs {
            let to = (m.to - 1) as usize;
            let from = (m.from - 1) as usize;
            let is_snap = m.msg_type == MessageType::MsgSnapshot;
            let delivered = match self.nodes.get_mut(to).and_then(Option::as_mut) {
                Some(n) => {
                    let _ = n.raw.step(m);
                    true
                }
                None => false,
            };
            if let Some(sender) = self.nodes.get_mut(from).and_then(Option::as_mut) {
                if !delivered {
                    sender.raw.report_unreachable(to as u64 + 1);
                }
                if is_snap {
                    let status = if delivered {
                        SnapshotStatus::Finish
                    } else {
                        SnapshotStatus::Failure
                    };
                    sender.raw.report_snapshot(to as u64 + 1, status);
                }
            }
        }
        any
    }

    fn process(&mut self, round: u64) {
        for _ in 0..16 {
            let mut busy = false;
            for i in 0..self.nodes.len() {
                let Some(node) = self.nodes[i].as_mut() else {
                    continue;
                };
                let mut cut_crash = false;
                let before = self.fault.fired();
                let r = node.on_ready(
                    &self.cfg,
                    &mut self.net,
                    &mut self.pending,
                    &mut self.acked,
                    &mut self.rep,
                );
                if self.fault.fired() > before {
                    cut_crash = true;
                }
                match r {
                    Ok(b) => busy |= b,
                    Err(Crashed) => {
                        if cut_crash {
                            self.rep.cut_crashes += 1;
                        }
                        self.kill(i, round);
                        busy = true;
                    }
                }
            }
            busy |= self.deliver();
            if !busy {
                break;
            }
        }
    }

    /// Runs the scenario, heals the cluster, and checks it. Panics on a violation.
    pub fn run(mut self) -> Report {
        let start = Instant::now();
        for round in 0..self.cfg.rounds {
            self.restart_due(round);
            self.schedule_crash(round);
            self.propose();
            for n in self.nodes.iter_mut().flatten() {
                n.raw.tick();
            }
            self.process(round);
        }
        // Heal: everyone up, no more faults, until every node applied the same.
        self.fault.disarm();
        for n in self.nodes.iter_mut().flatten() {
            n.crash_at = None;
        }
        let mut round = self.cfg.rounds;
        let deadline = round + 2000;
        loop {
            for d in self.down_until.iter_mut() {
                *d = (*d).min(round);
            }
            self.restart_due(round);
            for n in self.nodes.iter_mut().flatten() {
                n.crash_at = None;
                n.raw.tick();
            }
            self.process(round);
            round += 1;
            let applied: Vec<u64> = self.nodes.iter().flatten().map(|n| n.applied).collect();
            let commit = self
                .nodes
                .iter()
                .flatten()
                .map(|n| n.raw.raft.raft_log.committed)
                .max()
                .unwrap_or(0);
            if self.leader().is_some()
                && applied.len() == PEERS.len()
                && applied.iter().all(|&a| a == commit)
                && round > self.cfg.rounds + 20
            {
                self.rep.committed = commit;
                break;
            }
            assert!(
                round < deadline,
                "cluster did not converge: applied {applied:?}, commit {commit}"
            );
        }
        self.check();
        self.rep.acknowledged = self.acked.len();
        self.rep.elapsed = start.elapsed();
        self.rep
    }

    fn check(&mut self) {
        let nodes: Vec<&Node> = self.nodes.iter().flatten().collect();
        // 1. The applied (committed) logs are identical.
        let first = nodes[0].app.clone();
        let mut compared = 0;
        for n in &nodes[1..] {
            assert_eq!(
                n.app.len(),
                first.len(),
                "node {} applied a different log",
                n.id
            );
            for (a, b) in first.iter().zip(&n.app) {
                assert_eq!(a, b, "node {} diverges", n.id);
                compared += 1;
            }
        }
        self.rep.entries_compared += compared;
        // 2. Every acknowledged proposal is there, exactly once.
        let mut seen = BTreeMap::new();
        for (index, _, data) in &first {
            assert!(
                seen.insert(data.clone(), *index).is_none(),
                "duplicate {data:?}"
            );
        }
        for a in &self.acked {
            assert!(seen.contains_key(a), "acknowledged proposal {a:?} lost");
        }
        // 3. The WALs agree: close each node, reopen its directory, and compare the
        // committed entries it holds with the others' at the same index.
        let commit = self.rep.committed;
        let mut by_index: BTreeMap<u64, (u64, Bytes)> = BTreeMap::new();
        for i in 0..self.nodes.len() {
            let node = self.nodes[i].take().unwrap();
            let snap_dir = node.snap_dir.clone();
            let wal_dir = node.wal_dir.clone();
            node.store.close().unwrap();
            drop(node);
            let (s, rec) = WalStorage::open(&self.opts, &wal_dir, |m| {
                if m.index == BOOTSTRAP_INDEX {
                    return Some(Bytes::new());
                }
                std::fs::read(snap_path(&snap_dir, m.term, m.index))
                    .ok()
                    .map(Bytes::from)
            })
            .unwrap();
            assert!(rec.hard_state.commit <= commit);
            let lo = s.first_index().unwrap();
            let hi = rec.hard_state.commit.min(s.last_index().unwrap());
            if lo <= hi {
                let ents = s
                    .entries(lo, hi + 1, None, raft::GetEntriesContext::empty(false))
                    .unwrap();
                for e in ents {
                    match by_index.get(&e.index) {
                        Some((term, data)) => {
                            assert_eq!(
                                (*term, data),
                                (e.term, &e.data),
                                "WALs differ at {}",
                                e.index
                            );
                            self.rep.entries_compared += 1;
                        }
                        None => {
                            by_index.insert(e.index, (e.term, e.data.clone()));
                        }
                    }
                }
            }
            s.close().unwrap();
        }
        // The WAL entries agree with the applied log too.
        for (index, term, data) in &first {
            if let Some((t, d)) = by_index.get(index) {
                assert_eq!(
                    (t, d),
                    (term, data),
                    "WAL and applied log differ at {index}"
                );
                self.rep.entries_compared += 1;
            }
        }
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "proposals acknowledged {} of {} proposed; restarts survived {} ({} mid-cut, {} torn tails, {} repairs); \
             snapshots taken {} / received {}; segments purged {}; committed log {} entries; \
             entries compared {}; {:.2?}",
            self.acknowledged,
            self.proposed,
            self.restarts,
            self.cut_crashes,
            self.tears,
            self.repairs,
            self.snapshots,
            self.snapshots_received,
            self.purged,
            self.committed,
            self.entries_compared,
            self.elapsed
        )
    }
}
