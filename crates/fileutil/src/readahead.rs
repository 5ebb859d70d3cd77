//! Reading files ahead of a sequential reader, on a helper thread.
//!
//! A reader that decodes what it reads leaves the disk idle while it decodes,
//! unless the kernel's readahead already has the next request in flight. A helper
//! that reads the same files a few tens of MiB ahead keeps a second request
//! queued, so a cold replay runs at the disk's pace rather than at the sum of the
//! disk's time and the decoder's (docs/benchmarks.md, lever 17). Where the pages
//! are already cached the helper only asks the kernel whether they are
//! ([`CacheProbe`], which reads nothing) and copies nothing.

use std::fs::File;
use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::{JoinHandle, Thread};
use std::time::Duration;

use nix::fcntl::PosixFadviseAdvice;

/// How far ahead of the reader [`ReadAhead`] reads by default: four times the
/// kernel's usual largest readahead window, and a small part of a 64 MB segment.
pub const READ_AHEAD_BYTES: u64 = 32 << 20;

/// What the helper reads at once.
const CHUNK: usize = 1 << 20;

/// How long the helper sleeps at most while it is far enough ahead; the reader
/// wakes it sooner, once it has consumed enough.
const PARK: Duration = Duration::from_millis(50);

#[derive(Debug)]
struct Shared {
    /// Bytes the reader has consumed, across all files, in order.
    consumed: AtomicU64,
    /// While the helper waits: the consumed count that lets it go on (else
    /// `u64::MAX`).
    wake_at: AtomicU64,
    stop: AtomicBool,
    /// The helper, to wake.
    helper: OnceLock<Thread>,
}

impl Shared {
    fn wake(&self) {
        if let Some(t) = self.helper.get() {
            t.unpark();
        }
    }
}

/// A helper thread reading a list of files ahead of the reader that consumes
/// them in order (through [`ReadAhead::track`]). Dropping it stops the helper.
/// Reading ahead is a hint: the helper's errors are ignored, and the reader sees
/// only its own reads.
#[derive(Debug)]
pub struct ReadAhead {
    shared: Arc<Shared>,
    helper: Option<JoinHandle<()>>,
}

impl ReadAhead {
    /// Starts reading `files` (each a path and the bytes to read from its start),
    /// in order, up to `ahead` bytes past what the reader has consumed. `None` if
    /// no thread could be started; the reader then reads alone.
    pub fn start(files: Vec<(PathBuf, u64)>, ahead: u64) -> Option<Self> {
        let shared = Arc::new(Shared {
            consumed: AtomicU64::new(0),
            wake_at: AtomicU64::new(u64::MAX),
            stop: AtomicBool::new(false),
            helper: OnceLock::new(),
        });
        let theirs = Arc::clone(&shared);
        let helper = std::thread::Builder::new()
            .name("wal-readahead".into())
            .spawn(move || read_ahead(&files, ahead, &theirs));
        match helper {
            Ok(h) => {
                let _ = shared.helper.set(h.thread().clone());
                Some(Self {
                    shared,
                    helper: Some(h),
                })
            }
            Err(e) => {
                tracing::debug!(error = %e, "no readahead thread");
                None
            }
        }
    }

    /// Wraps the reader of the files, in order: what it reads counts as consumed,
    /// which lets the helper move on.
    pub fn track<R: Read>(&self, inner: R) -> Tracked<R> {
        Tracked {
            inner,
            shared: Arc::clone(&self.shared),
        }
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.wake();
        if let Some(h) = self.helper.take() {
            let _ = h.join();
        }
    }
}

/// A reader whose progress a [`ReadAhead`] follows.
#[derive(Debug)]
pub struct Tracked<R> {
    inner: R,
    shared: Arc<Shared>,
}

impl<R: Read> Read for Tracked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let consumed = self.shared.consumed.fetch_add(n as u64, Ordering::SeqCst) + n as u64;
        if consumed >= self.shared.wake_at.load(Ordering::SeqCst) {
            self.shared.wake();
        }
        Ok(n)
    }
}

fn read_ahead(files: &[(PathBuf, u64)], ahead: u64, shared: &Shared) {
    let mut scratch = vec![0u8; CHUNK];
    let mut base = 0u64;
    for (path, len) in files {
        let Ok(file) = File::open(path) else {
            base += len;
            continue;
        };
        let mut off = 0u64;
        let probe = CacheProbe::new(&file);
        let mut cold = false;
        let mut random = false;
        while off < *len {
            if shared.stop.load(Ordering::Relaxed) {
                return;
            }
            let n = (*len - off).min(CHUNK as u64);
            // Cached chunks are passed over at once (the probe reads nothing). Once
            // a chunk of the file was missing, every chunk after it is read: the
            // helper is useful as a second sequential reader, whose own readahead
            // the kernel grows; reading here and there would leave cached islands
            // that stop the reader's readahead instead.
            if !cold && probe.as_ref().and_then(|p| p.is_cached(off + n - 1)) != Some(true) {
                cold = true;
                // Past cached chunks the helper may be at the end of the records
                // already (the zeros after them in the last segment): its first
                // read there reads that chunk only, not a readahead window too.
                if off > 0 {
                    advise(&file, PosixFadviseAdvice::POSIX_FADV_RANDOM);
                    random = true;
                }
            }
            if cold {
                let start = base + off;
                if !wait_for_reader(shared, start, ahead) {
                    return;
                }
                let behind = start + n <= shared.consumed.load(Ordering::Relaxed);
                if !behind {
                    let Ok(got) = read_at(&file, &mut scratch[..n as usize], off) else {
                        break;
                    };
                    // Zeros: the end of the records (a WAL's last segment is
                    // preallocated). Nothing after them is worth reading.
                    if scratch[..got].iter().all(|&b| b == 0) {
                        return;
                    }
                    if random {
                        advise(&file, PosixFadviseAdvice::POSIX_FADV_NORMAL);
                        random = false;
                    }
                }
            }
            off += n;
        }
        base += len;
    }
}

/// Advice about `file`'s access pattern; a hint, so a failure is ignored.
fn advise(file: &File, advice: PosixFadviseAdvice) {
    let _ = nix::fcntl::posix_fadvise(file, 0, 0, advice);
}

/// Waits until `start` is within `ahead` bytes of what the reader consumed;
/// false if told to stop. Parks meanwhile: an idle reader costs nothing.
fn wait_for_reader(shared: &Shared, start: u64, ahead: u64) -> bool {
    let need = start.saturating_sub(ahead);
    loop {
        if shared.stop.load(Ordering::SeqCst) {
            return false;
        }
        if shared.consumed.load(Ordering::SeqCst) >= need {
            return true;
        }
        shared.wake_at.store(need, Ordering::SeqCst);
        // Checked again after publishing `wake_at`, so a read in between is not
        // missed; a stray wake-up only costs a loop.
        if shared.consumed.load(Ordering::SeqCst) < need && !shared.stop.load(Ordering::SeqCst) {
            std::thread::park_timeout(PARK);
        }
        shared.wake_at.store(u64::MAX, Ordering::SeqCst);
    }
}

/// Reads `buf.len()` bytes at `off`, fewer at the end of the file; how many.
fn read_at(f: &File, buf: &mut [u8], off: u64) -> io::Result<usize> {
    use std::os::unix::fs::FileExt;
    let mut got = 0;
    while got < buf.len() {
        match f.read_at(&mut buf[got..], off + got as u64) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Tells which pages of a file are in the page cache, without reading any in
/// (`mincore(2)` on a mapping whose memory is never touched).
#[derive(Debug)]
pub struct CacheProbe {
    map: memmap2::Mmap,
}

impl CacheProbe {
    /// A probe of `file` as long as it is now; `None` for an empty file or where
    /// it cannot be mapped.
    pub fn new(file: &File) -> Option<Self> {
        // SAFETY: the mapping's memory is never read or written, only asked
        // about, so a concurrent change to the file cannot be observed through it.
        let map = unsafe { memmap2::MmapOptions::new().map(file) }.ok()?;
        (!map.is_empty()).then_some(Self { map })
    }

    /// Whether the byte at `offset` is cached; `None` where the kernel cannot
    /// tell. A byte past the end counts as cached: reading it costs nothing.
    pub fn is_cached(&self, offset: u64) -> Option<bool> {
        match usize::try_from(offset) {
            Ok(at) if at < self.map.len() => is_resident(&self.map, at),
            _ => Some(true),
        }
    }
}

/// Whether the page holding `mem[at]` is in memory (for a mapped file: in the
/// page cache), found without touching it (`mincore(2)`). `None` where the
/// kernel cannot tell, or `at` is out of bounds.
#[cfg(target_os = "linux")]
pub fn is_resident(mem: &[u8], at: usize) -> Option<bool> {
    use nix::libc;
    if at >= mem.len() {
        return None;
    }
    // SAFETY: sysconf only reads a constant of the system.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let size = usize::try_from(size).ok().filter(|&s| s > 0)?;
    let addr = mem.as_ptr() as usize + at;
    let page = addr / size * size;
    let mut resident = 0u8;
    // SAFETY: mincore reads no memory: it looks up the page holding `mem[at]`
    // (a page `mem` overlaps, so mapped) and writes one byte into `resident`.
    let r = unsafe { libc::mincore(page as *mut libc::c_void, 1, &mut resident) };
    (r == 0).then_some(resident & 1 == 1)
}

/// Whether the page holding `mem[at]` is in memory: never known here.
#[cfg(not(target_os = "linux"))]
pub fn is_resident(_mem: &[u8], _at: usize) -> Option<bool> {
    None
}

/// Whether the page holding `mem[at]` is mapped by a huge page (for a mapped file:
/// a large folio of the page cache, mapped whole by one fault), found without
/// touching it (`PAGEMAP_SCAN` on `/proc/self/pagemap`, Linux 6.7 and later).
/// `None` where the kernel cannot tell, or `at` is out of bounds; `Some(false)`
/// for a page not mapped at all.
#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
pub fn is_huge_mapped(mem: &[u8], at: usize) -> Option<bool> {
    use nix::libc;
    use std::os::fd::AsRawFd;

    /// `struct pm_scan_arg` of `<linux/fs.h>`.
    #[repr(C)]
    struct PmScanArg {
        size: u64,
        flags: u64,
        start: u64,
        end: u64,
        walk_end: u64,
        vec: u64,
        vec_len: u64,
        max_pages: u64,
        category_inverted: u64,
        category_mask: u64,
        category_anyof_mask: u64,
        return_mask: u64,
    }
    /// `struct page_region`.
    #[repr(C)]
    #[derive(Default)]
    struct PageRegion {
        start: u64,
        end: u64,
        categories: u64,
    }
    const PAGE_IS_HUGE: u64 = 1 << 6;
    // _IOWR('f', 16, struct pm_scan_arg)
    const PAGEMAP_SCAN: u64 =
        (3 << 30) | ((size_of::<PmScanArg>() as u64) << 16) | (0x66 << 8) | 16;

    if at >= mem.len() {
        return None;
    }
    // SAFETY: sysconf only reads a constant of the system.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let size = u64::try_from(size).ok().filter(|&s| s > 0)?;
    let page = (mem.as_ptr() as u64 + at as u64) / size * size;
    let pagemap = File::open("/proc/self/pagemap").ok()?;
    let mut region = PageRegion::default();
    let mut arg = PmScanArg {
        size: size_of::<PmScanArg>() as u64,
        flags: 0,
        start: page,
        end: page + size,
        walk_end: 0,
        vec: &mut region as *mut PageRegion as u64,
        vec_len: 1,
        max_pages: 0,
        category_inverted: 0,
        category_mask: 0,
        category_anyof_mask: PAGE_IS_HUGE,
        return_mask: PAGE_IS_HUGE,
    };
    // SAFETY: PAGEMAP_SCAN reads `arg` and writes at most `vec_len` (one) region
    // into `region` and `walk_end` into `arg`; both live across the call. It
    // reads the page tables of this process only, never the memory they map.
    let n = unsafe {
        libc::ioctl(
            pagemap.as_raw_fd(),
            PAGEMAP_SCAN as _,
            &mut arg as *mut PmScanArg,
        )
    };
    // The number of regions filled in: one if the page is mapped by a huge page.
    match n {
        0 => Some(false),
        1 => Some(region.categories & PAGE_IS_HUGE != 0),
        _ => None,
    }
}

/// Whether the page holding `mem[at]` is mapped by a huge page: never known here.
#[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
pub fn is_huge_mapped(_mem: &[u8], _at: usize) -> Option<bool> {
    None
}
