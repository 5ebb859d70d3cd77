//! A simulated disk behind the WAL's [`FileSystem`] seam, for the power-loss suite.
//!
//! It keeps, per file, the durable bytes and the writes and size changes issued since
//! the file's last sync, and per directory the durable names and the creates, renames
//! and removals issued since the directory's last fsync. [`SimFs::image`] captures
//! that state at any moment; [`Image::crash`] turns it into what a power loss may
//! leave behind, following `design/powerloss-model.md`: every unsynced write is kept,
//! lost or kept in part, sector by sector (a lost sector reads as its durable bytes,
//! or zeros where the file had grown), in any order; an unsynced size change may or
//! may not have happened; every unsynced directory operation may or may not have
//! happened, a rename atomically. Nothing durable is ever lost.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use wal_fileutil::{Error, FileSystem, LockMode, OpenOptions, Result, WalFile};

/// Sector size: the unit in which an unsynced write persists or not.
pub const SECTOR: usize = 512;

type Ino = usize;

#[derive(Debug, Clone)]
enum FileOp {
    Write { off: usize, data: Vec<u8> },
    SetLen(usize),
}

#[derive(Debug, Clone, Default)]
struct Inode {
    is_dir: bool,
    durable: Vec<u8>,
    current: Vec<u8>,
    pending: Vec<FileOp>,
}

#[derive(Debug, Clone)]
enum NsOp {
    Link {
        dir: Ino,
        name: String,
        ino: Ino,
    },
    Unlink {
        dir: Ino,
        name: String,
    },
    Rename {
        dir: Ino,
        from: String,
        to: String,
        ino: Ino,
    },
}

impl NsOp {
    fn dir(&self) -> Ino {
        match self {
            NsOp::Link { dir, .. } | NsOp::Unlink { dir, .. } | NsOp::Rename { dir, .. } => *dir,
        }
    }

    fn apply(&self, ns: &mut HashMap<Ino, BTreeMap<String, Ino>>) {
        match self {
            NsOp::Link { dir, name, ino } => {
                ns.entry(*dir).or_default().insert(name.clone(), *ino);
            }
            NsOp::Unlink { dir, name } => {
                ns.entry(*dir).or_default().remove(name);
            }
            NsOp::Rename { dir, from, to, ino } => {
                let d = ns.entry(*dir).or_default();
                if d.get(from) == Some(ino) {
                    d.remove(from);
                }
                d.insert(to.clone(), *ino);
            }
        }
    }
}

/// Everything the disk holds at one moment: durable state plus what is pending.
#[derive(Debug, Clone, Default)]
pub struct Image {
    inodes: Vec<Inode>,
    ns: HashMap<Ino, BTreeMap<String, Ino>>,
    durable_ns: HashMap<Ino, BTreeMap<String, Ino>>,
    pending_ns: Vec<NsOp>,
}

/// How a crash treats what was not yet durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashMode {
    /// Every unsynced operation made it to disk.
    KeepAll,
    /// Nothing unsynced made it.
    LoseAll,
    /// Each sector and each directory operation independently (seeded).
    Random(u64),
    /// Everything but the last unsynced write of each file, which persists only in
    /// part (a random subset of its sectors): the torn write etcd's detection is for.
    TornLast(u64),
}

/// A small deterministic PRNG (xorshift64*), so seeds reproduce.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeds the generator (any value, zero included).
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in `0..n` (0 when n is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }
    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
    /// True `p` percent of the time.
    pub fn pct(&mut self, p: u64) -> bool {
        self.below(100) < p
    }
    /// `n` random bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            v.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        v.truncate(n);
        v
    }
    /// Between `lo` and `hi` random bytes.
    pub fn bytes_in(&mut self, lo: u64, hi: u64) -> Vec<u8> {
        let n = self.range(lo, hi);
        self.bytes(n as usize)
    }
}

impl Image {
    fn empty() -> Self {
        let mut img = Image::default();
        img.inodes.push(Inode {
            is_dir: true,
            ..Inode::default()
        });
        img.ns.insert(0, BTreeMap::new());
        img.durable_ns.insert(0, BTreeMap::new());
        img
    }

    /// What a power loss leaves of this image: a new image with nothing pending.
    pub fn crash(&self, mode: CrashMode) -> Image {
        let mut rng = match mode {
            CrashMode::Random(s) | CrashMode::TornLast(s) => Rng::new(s),
            _ => Rng::new(0),
        };
        // Directory operations: each kept or lost independently, applied in order.
        let mut ns = self.durable_ns.clone();
        for op in &self.pending_ns {
            let keep = match mode {
                CrashMode::KeepAll | CrashMode::TornLast(_) => true,
                CrashMode::LoseAll => false,
                CrashMode::Random(_) => rng.chance(0.5),
            };
            if keep {
                op.apply(&mut ns);
            }
        }
        let inodes = self
            .inodes
            .iter()
            .map(|ino| {
                if ino.is_dir || ino.pending.is_empty() {
                    let mut d = ino.clone();
                    d.current = d.durable.clone();
                    d.pending.clear();
                    return d;
                }
                let content = crash_file(ino, mode, &mut rng);
                Inode {
                    is_dir: false,
                    durable: content.clone(),
                    current: content,
                    pending: Vec::new(),
                }
            })
            .collect();
        Image {
            inodes,
            ns: ns.clone(),
            durable_ns: ns,
            pending_ns: Vec::new(),
        }
    }

    /// Number of unsynced operations (file writes and size changes, directory ops).
    pub fn pending_ops(&self) -> usize {
        self.pending_ns.len() + self.inodes.iter().map(|i| i.pending.len()).sum::<usize>()
    }
}

/// One file after a crash: each sector takes one of its versions (durable, or after
/// any unsynced write that touched it), the size one of the sizes it had.
fn crash_file(ino: &Inode, mode: CrashMode, rng: &mut Rng) -> Vec<u8> {
    // Replay the pending operations, remembering every version of every sector.
    let mut work = ino.durable.clone();
    let mut sizes = vec![ino.durable.len()];
    let mut versions: BTreeMap<usize, Vec<(usize, Vec<u8>)>> = BTreeMap::new(); // sector -> (op#, bytes)
    let last_write = ino
        .pending
        .iter()
        .rposition(|op| matches!(op, FileOp::Write { .. }));
    for (n, op) in ino.pending.iter().enumerate() {
        let touched: (usize, usize) = match op {
            FileOp::Write { off, data } => {
                if work.len() < off + data.len() {
                    work.resize(off + data.len(), 0);
                }
                work[*off..off + data.len()].copy_from_slice(data);
                (*off, off + data.len())
            }
            FileOp::SetLen(n) => {
                let old = work.len();
                work.resize(*n, 0);
                // A shrink zeroes what it cuts off (seen again if the file regrows).
                (*n.min(&old), old)
            }
        };
        sizes.push(work.len());
        if touched.1 > touched.0 {
            for s in touched.0 / SECTOR..touched.1.div_ceil(SECTOR) {
                let start = s * SECTOR;
                let mut sector = vec![0u8; SECTOR];
                let end = (start + SECTOR).min(work.len());
                if end > start {
                    sector[..end - start].copy_from_slice(&work[start..end]);
                }
                versions.entry(s).or_default().push((n, sector));
            }
        }
    }
    let size = match mode {
        CrashMode::KeepAll | CrashMode::TornLast(_) => work.len(),
        CrashMode::LoseAll => ino.durable.len(),
        CrashMode::Random(_) => sizes[rng.below(sizes.len() as u64) as usize],
    };
    let mut out = ino.durable.clone();
    let max = sizes.iter().copied().max().unwrap_or(0);
    out.resize(max.max(out.len()), 0);
    for (s, vs) in &versions {
        let chosen: Option<&Vec<u8>> = match mode {
            CrashMode::KeepAll => vs.last().map(|v| &v.1),
            CrashMode::LoseAll => None,
            CrashMode::Random(_) => {
                let k = rng.below(vs.len() as u64 + 1) as usize;
                if k == 0 {
                    None
                } else {
                    Some(&vs[k - 1].1)
                }
            }
            CrashMode::TornLast(_) => {
                let newest = vs.last();
                match newest {
                    Some((n, _)) if Some(*n) == last_write && rng.chance(0.5) => {
                        // This sector of the last write is lost: the version before it.
                        vs.len().checked_sub(2).map(|i| &vs[i].1)
                    }
                    other => other.map(|v| &v.1),
                }
            }
        };
        let start = s * SECTOR;
        if start >= out.len() {
            continue;
        }
        let end = (start + SECTOR).min(out.len());
        match chosen {
            Some(bytes) => out[start..end].copy_from_slice(&bytes[..end - start]),
            None => {
                // The durable bytes, or zeros where the file had grown.
                for (i, b) in out[start..end].iter_mut().enumerate() {
                    *b = ino.durable.get(start + i).copied().unwrap_or(0);
                }
            }
        }
    }
    out.truncate(size);
    out
}

#[derive(Debug, Default)]
struct Shared {
    img: Image,
    locks: HashMap<Ino, u64>,
    next_handle: u64,
    ops: u64,
    record: bool,
    images: Vec<(u64, Image)>,
    ignore_sync: bool,
    ignore_dir_sync: bool,
    capacity: Option<usize>,
}

/// The simulated file system. Paths are absolute and start at `/`; only `/` exists
/// at first. Clone it freely: clones share the disk.
#[derive(Debug, Clone)]
pub struct SimFs {
    shared: Arc<Mutex<Shared>>,
}

impl Default for SimFs {
    fn default() -> Self {
        Self::new()
    }
}

fn not_found(op: &'static str, p: &Path) -> Error {
    Error::from_io(op, p, io::Error::from(io::ErrorKind::NotFound))
}

fn components(p: &Path) -> Vec<String> {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect()
}

impl SimFs {
    /// An empty disk.
    pub fn new() -> Self {
        Self::from_image(Image::empty())
    }

    /// A disk holding `img` (typically a crash result).
    pub fn from_image(img: Image) -> Self {
        Self {
            shared: Arc::new(Mutex::new(Shared {
                img,
                ..Shared::default()
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        match self.shared.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// The state now.
    pub fn image(&self) -> Image {
        self.lock().img.clone()
    }

    /// Starts or stops capturing an image after every operation.
    pub fn record(&self, on: bool) {
        self.lock().record = on;
    }

    /// The captured (operation count, image) pairs, taken out.
    pub fn take_images(&self) -> Vec<(u64, Image)> {
        std::mem::take(&mut self.lock().images)
    }

    /// Operations performed so far.
    pub fn ops(&self) -> u64 {
        self.lock().ops
    }

    /// Test-only breakage: `sync_data`/`sync_all` succeed without making anything durable.
    pub fn set_ignore_sync(&self, yes: bool) {
        self.lock().ignore_sync = yes;
    }

    /// Test-only breakage: `fsync_dir` succeeds without making anything durable.
    pub fn set_ignore_dir_sync(&self, yes: bool) {
        self.lock().ignore_dir_sync = yes;
    }

    /// Limits the bytes all files may hold together; growth beyond fails with
    /// ENOSPC (`StorageFull`), as a full disk does. `None` lifts the limit.
    pub fn set_capacity(&self, bytes: Option<usize>) {
        self.lock().capacity = bytes;
    }

    /// The contents of a file as a reader would see them now.
    pub fn read_file(&self, p: &Path) -> Option<Vec<u8>> {
        let g = self.lock();
        let ino = resolve(&g.img, p)?;
        Some(g.img.inodes[ino].current.clone())
    }
}

fn resolve(img: &Image, p: &Path) -> Option<Ino> {
    let mut cur = 0;
    for c in components(p) {
        cur = *img.ns.get(&cur)?.get(&c)?;
    }
    Some(cur)
}

fn resolve_parent(img: &Image, p: &Path) -> Option<(Ino, String)> {
    let mut comps = components(p);
    let name = comps.pop()?;
    let mut cur = 0;
    for c in comps {
        cur = *img.ns.get(&cur)?.get(&c)?;
        if !img.inodes[cur].is_dir {
            return None;
        }
    }
    Some((cur, name))
}

impl Shared {
    /// Whether growing `ino` to `new_len` bytes fits on the disk.
    fn fits(&self, ino: Ino, new_len: usize) -> bool {
        let Some(cap) = self.capacity else {
            return true;
        };
        let used: usize = self.img.inodes.iter().map(|i| i.current.len()).sum();
        let cur = self.img.inodes[ino].current.len();
        new_len <= cur || used + (new_len - cur) <= cap
    }

    fn tick(&mut self) {
        self.ops += 1;
        if self.record {
            let img = self.img.clone();
            self.images.push((self.ops, img));
        }
    }

    fn ns_op(&mut self, op: NsOp) {
        op.apply(&mut self.img.ns);
        self.img.pending_ns.push(op);
    }

    fn file_op(&mut self, ino: Ino, op: FileOp) {
        let node = &mut self.img.inodes[ino];
        match &op {
            FileOp::Write { off, data } => {
                if node.current.len() < off + data.len() {
                    node.current.resize(off + data.len(), 0);
                }
                node.current[*off..off + data.len()].copy_from_slice(data);
            }
            FileOp::SetLen(n) => node.current.resize(*n, 0),
        }
        node.pending.push(op);
    }

    fn sync_file(&mut self, ino: Ino) {
        if self.ignore_sync {
            return;
        }
        let node = &mut self.img.inodes[ino];
        node.durable = node.current.clone();
        node.pending.clear();
    }
}

impl FileSystem for SimFs {
    fn open(&self, path: &Path, opts: &OpenOptions) -> Result<Box<dyn WalFile>> {
        let mut g = self.lock();
        let (dir, name) = resolve_parent(&g.img, path).ok_or_else(|| not_found("open", path))?;
        let existing = g.img.ns.get(&dir).and_then(|d| d.get(&name)).copied();
        let ino = match existing {
            Some(ino) if opts.create_new => {
                let _ = ino;
                return Err(Error::from_io(
                    "open",
                    path,
                    io::Error::from(io::ErrorKind::AlreadyExists),
                ));
            }
            Some(ino) => {
                if g.img.inodes[ino].is_dir {
                    return Err(Error::from_io(
                        "open",
                        path,
                        io::Error::other("is a directory"),
                    ));
                }
                ino
            }
            None if opts.create || opts.create_new => {
                let ino = g.img.inodes.len();
                g.img.inodes.push(Inode::default());
                g.ns_op(NsOp::Link { dir, name, ino });
                ino
            }
            None => return Err(not_found("open", path)),
        };
        let handle = g.next_handle;
        g.next_handle += 1;
        if opts.lock != LockMode::None {
            if g.locks.contains_key(&ino) {
                return Err(Error::Locked {
                    path: path.to_path_buf(),
                });
            }
            g.locks.insert(ino, handle);
        }
        if opts.truncate && !g.img.inodes[ino].current.is_empty() {
            g.file_op(ino, FileOp::SetLen(0));
        }
        g.tick();
        Ok(Box::new(SimFile {
            fs: self.clone(),
            ino,
            pos: 0,
            handle,
            path: path.to_path_buf(),
        }))
    }

    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        let mut g = self.lock();
        let (fdir, fname) =
            resolve_parent(&g.img, from).ok_or_else(|| not_found("rename", from))?;
        let (tdir, tname) = resolve_parent(&g.img, to).ok_or_else(|| not_found("rename", to))?;
        let ino = g
            .img
            .ns
            .get(&fdir)
            .and_then(|d| d.get(&fname))
            .copied()
            .ok_or_else(|| not_found("rename", from))?;
        if fdir == tdir {
            g.ns_op(NsOp::Rename {
                dir: fdir,
                from: fname,
                to: tname,
                ino,
            });
        } else {
            // Not atomic across directories in this model; the WAL never does it.
            g.ns_op(NsOp::Link {
                dir: tdir,
                name: tname,
                ino,
            });
            g.ns_op(NsOp::Unlink {
                dir: fdir,
                name: fname,
            });
        }
        g.tick();
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> Result<()> {
        let mut g = self.lock();
        let (dir, name) = resolve_parent(&g.img, path).ok_or_else(|| not_found("remove", path))?;
        if g.img.ns.get(&dir).and_then(|d| d.get(&name)).is_none() {
            return Err(not_found("remove", path));
        }
        g.ns_op(NsOp::Unlink { dir, name });
        g.tick();
        Ok(())
    }

    fn remove_dir_all(&self, path: &Path) -> Result<()> {
        let mut g = self.lock();
        let (dir, name) =
            resolve_parent(&g.img, path).ok_or_else(|| not_found("remove_dir_all", path))?;
        if g.img.ns.get(&dir).and_then(|d| d.get(&name)).is_none() {
            return Err(not_found("remove_dir_all", path));
        }
        g.ns_op(NsOp::Unlink { dir, name });
        g.tick();
        Ok(())
    }

    fn create_dir_all(&self, path: &Path) -> Result<()> {
        let mut g = self.lock();
        let mut cur = 0;
        for c in components(path) {
            let next = g.img.ns.get(&cur).and_then(|d| d.get(&c)).copied();
            cur = match next {
                Some(i) => i,
                None => {
                    let ino = g.img.inodes.len();
                    g.img.inodes.push(Inode {
                        is_dir: true,
                        ..Inode::default()
                    });
                    g.img.ns.insert(ino, BTreeMap::new());
                    g.img.durable_ns.insert(ino, BTreeMap::new());
                    g.ns_op(NsOp::Link {
                        dir: cur,
                        name: c,
                        ino,
                    });
                    ino
                }
            };
        }
        g.tick();
        Ok(())
    }

    fn read_dir(&self, path: &Path) -> Result<Vec<String>> {
        let g = self.lock();
        let ino = resolve(&g.img, path).ok_or_else(|| not_found("read_dir", path))?;
        if !g.img.inodes[ino].is_dir {
            return Err(Error::from_io(
                "read_dir",
                path,
                io::Error::other("not a directory"),
            ));
        }
        Ok(g.img
            .ns
            .get(&ino)
            .map(|d| d.keys().cloned().collect())
            .unwrap_or_default())
    }

    fn fsync_dir(&self, path: &Path) -> Result<()> {
        let mut g = self.lock();
        let ino = resolve(&g.img, path).ok_or_else(|| not_found("fsync_dir", path))?;
        if !g.ignore_dir_sync {
            let cur = g.img.ns.get(&ino).cloned().unwrap_or_default();
            g.img.durable_ns.insert(ino, cur);
            g.img.pending_ns.retain(|op| op.dir() != ino);
        }
        g.tick();
        Ok(())
    }

    fn exists(&self, path: &Path) -> bool {
        resolve(&self.lock().img, path).is_some()
    }

    fn file_len(&self, path: &Path) -> Result<u64> {
        let g = self.lock();
        let ino = resolve(&g.img, path).ok_or_else(|| not_found("stat", path))?;
        Ok(g.img.inodes[ino].current.len() as u64)
    }
}

/// An open file of a [`SimFs`].
#[derive(Debug)]
pub struct SimFile {
    fs: SimFs,
    ino: Ino,
    pos: u64,
    handle: u64,
    path: PathBuf,
}

impl Drop for SimFile {
    fn drop(&mut self) {
        let mut g = self.fs.lock();
        if g.locks.get(&self.ino) == Some(&self.handle) {
            g.locks.remove(&self.ino);
        }
    }
}

impl Read for SimFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let g = self.fs.lock();
        let data = &g.img.inodes[self.ino].current;
        let start = (self.pos as usize).min(data.len());
        let n = buf.len().min(data.len() - start);
        buf[..n].copy_from_slice(&data[start..start + n]);
        drop(g);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Write for SimFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut g = self.fs.lock();
        if !g.fits(self.ino, self.pos as usize + buf.len()) {
            return Err(io::Error::from(io::ErrorKind::StorageFull));
        }
        g.file_op(
            self.ino,
            FileOp::Write {
                off: self.pos as usize,
                data: buf.to_vec(),
            },
        );
        g.tick();
        drop(g);
        self.pos += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Seek for SimFile {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let len = self.fs.lock().img.inodes[self.ino].current.len() as i128;
        let new = match to {
            SeekFrom::Start(n) => i128::from(n),
            SeekFrom::End(d) => len + i128::from(d),
            SeekFrom::Current(d) => i128::from(self.pos) + i128::from(d),
        };
        if new < 0 {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        self.pos = new as u64;
        Ok(self.pos)
    }
}

impl WalFile for SimFile {
    fn path(&self) -> &Path {
        &self.path
    }
    fn sync_all(&mut self) -> Result<()> {
        let mut g = self.fs.lock();
        g.sync_file(self.ino);
        g.tick();
        Ok(())
    }
    fn sync_data(&mut self) -> Result<()> {
        self.sync_all()
    }
    fn preallocate(&mut self, size: u64, extend: bool) -> Result<()> {
        let mut g = self.fs.lock();
        let len = g.img.inodes[self.ino].current.len();
        if !g.fits(self.ino, size as usize) {
            return Err(Error::from_io(
                "preallocate",
                &self.path,
                io::Error::from(io::ErrorKind::StorageFull),
            ));
        }
        if extend && size as usize > len {
            g.file_op(self.ino, FileOp::SetLen(size as usize));
        }
        g.tick();
        Ok(())
    }
    fn set_len(&mut self, size: u64) -> Result<()> {
        let mut g = self.fs.lock();
        g.file_op(self.ino, FileOp::SetLen(size as usize));
        g.tick();
        Ok(())
    }
    fn len(&self) -> Result<u64> {
        Ok(self.fs.lock().img.inodes[self.ino].current.len() as u64)
    }
    fn zero_to_end(&mut self) -> Result<()> {
        let mut g = self.fs.lock();
        let len = g.img.inodes[self.ino].current.len();
        let off = (self.pos as usize).min(len);
        g.file_op(self.ino, FileOp::SetLen(off));
        g.tick();
        g.file_op(self.ino, FileOp::SetLen(len));
        g.tick();
        Ok(())
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
        let g = self.fs.lock();
        let data = &g.img.inodes[self.ino].current;
        let start = (offset as usize).min(data.len());
        let n = buf.len().min(data.len() - start);
        buf[..n].copy_from_slice(&data[start..start + n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsynced_write_can_be_lost_synced_cannot() {
        let fs = SimFs::new();
        fs.create_dir_all(Path::new("/d")).unwrap();
        fs.fsync_dir(Path::new("/")).unwrap();
        let mut f = fs
            .open(Path::new("/d/f"), &OpenOptions::write().create(true))
            .unwrap();
        fs.fsync_dir(Path::new("/d")).unwrap();
        f.write_all(&[1; 1000]).unwrap();
        f.sync_data().unwrap();
        f.write_all(&[2; 1000]).unwrap();
        let img = fs.image();
        let lost = SimFs::from_image(img.crash(CrashMode::LoseAll));
        assert_eq!(lost.read_file(Path::new("/d/f")).unwrap(), vec![1; 1000]);
        let kept = SimFs::from_image(img.crash(CrashMode::KeepAll));
        assert_eq!(kept.read_file(Path::new("/d/f")).unwrap().len(), 2000);
    }

    #[test]
    fn unsynced_create_can_vanish() {
        let fs = SimFs::new();
        let mut f = fs
            .open(Path::new("/f"), &OpenOptions::write().create(true))
            .unwrap();
        f.write_all(b"x").unwrap();
        f.sync_data().unwrap();
        let lost = SimFs::from_image(fs.image().crash(CrashMode::LoseAll));
        assert!(
            !lost.exists(Path::new("/f")),
            "the name was never made durable"
        );
    }
}
