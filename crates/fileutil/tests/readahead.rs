//! The replay's read-ahead helper and its page-cache probe, on a real disk (the
//! target directory's: tmpfs keeps its pages whatever we advise).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use nix::fcntl::{posix_fadvise, PosixFadviseAdvice};
use wal_fileutil::{is_huge_mapped, is_resident, CacheProbe, OpenOptions, ReadAhead};

const MIB: u64 = 1 << 20;

/// A file of `len` patterned bytes, written back and dropped from the page cache.
fn cold_file(dir: &Path, name: &str, len: u64) -> std::path::PathBuf {
    let path = dir.join(name);
    let mut f = File::create(&path).unwrap();
    let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    f.write_all(&data).unwrap();
    f.sync_all().unwrap();
    posix_fadvise(&f, 0, 0, PosixFadviseAdvice::POSIX_FADV_DONTNEED).unwrap();
    path
}

fn wait_until(mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

#[test]
fn the_probe_tells_cached_pages_from_dropped_ones_and_reads_nothing_in() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let path = cold_file(dir.path(), "f", MIB);
    let f = File::open(&path).unwrap();
    let probe = CacheProbe::new(&f).expect("a mapping of a non-empty file");
    match probe.is_cached(4096) {
        None => {
            eprintln!("SKIPPED: this kernel cannot tell which pages are cached");
            return;
        }
        Some(true) => {
            eprintln!("SKIPPED: this file system keeps dropped pages cached");
            return;
        }
        Some(false) => {}
    }
    assert_eq!(
        probe.is_cached(4096),
        Some(false),
        "probing read the page in"
    );
    // Read two pages, without the kernel's readahead.
    posix_fadvise(&f, 0, 0, PosixFadviseAdvice::POSIX_FADV_RANDOM).unwrap();
    let mut buf = vec![0u8; 8192];
    (&f).read_exact(&mut buf).unwrap();
    assert_eq!(probe.is_cached(0), Some(true), "a page just read");
    assert_eq!(probe.is_cached(8191), Some(true), "a page just read");
    assert_eq!(probe.is_cached(MIB / 2), Some(false), "a page not read");
    assert_eq!(probe.is_cached(10 * MIB), Some(true), "past the end");
    let empty = File::create(dir.path().join("empty")).unwrap();
    assert!(CacheProbe::new(&empty).is_none());
    // Any memory: a touched buffer is resident; past its end nothing is known.
    let mem = vec![1u8; 3 * 4096];
    assert_eq!(is_resident(&mem, 5000), Some(true));
    assert_eq!(is_resident(&mem, mem.len()), None);
}

#[test]
fn a_cold_mapped_file_reads_in_whole_huge_pages_where_the_kernel_maps_them() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let path = cold_file(dir.path(), "f", 8 * MIB);
    let f = wal_fileutil::os()
        .open(&path, &OpenOptions::read())
        .unwrap();
    let m = f.map().unwrap().expect("the OS file system maps");
    assert_eq!(is_huge_mapped(&m, m.len()), None, "past the end");
    // Not mapped yet: no huge page (or the kernel cannot tell).
    assert_ne!(is_huge_mapped(&m, 4096), Some(true));
    // Touch the first page: whatever the kernel maps, the bytes are the file's.
    assert_eq!(m[0], 0);
    let data: Vec<u8> = (0..8 * MIB).map(|i| (i % 251) as u8).collect();
    assert!(m[..] == data[..]);
    match is_huge_mapped(&m, 0) {
        None => eprintln!("SKIPPED: this kernel cannot tell (PAGEMAP_SCAN is 6.7+)"),
        Some(false) => eprintln!("note: this file system maps the file in small pages"),
        Some(true) => {
            // A huge page maps 2 MiB of the file at once: all of it resident.
            assert_eq!(is_resident(&m, (2 * MIB - 1) as usize), Some(true));
            assert_eq!(is_huge_mapped(&m, (2 * MIB - 1) as usize), Some(true));
        }
    }
    // A file shorter than a huge page is never mapped by one.
    let small = dir.path().join("small");
    std::fs::write(&small, vec![7u8; 16 << 10]).unwrap();
    let f = wal_fileutil::os()
        .open(&small, &OpenOptions::read())
        .unwrap();
    let m = f.map().unwrap().unwrap();
    assert_eq!(m[100], 7);
    assert_ne!(is_huge_mapped(&m, 0), Some(true));
}

/// Bytes of `path` in the page cache, page by page through a [`CacheProbe`] (which
/// reads nothing in, unlike a probing read).
fn cached_bytes(path: &Path) -> u64 {
    let f = File::open(path).unwrap();
    let len = f.metadata().unwrap().len();
    let probe = CacheProbe::new(&f).unwrap();
    (0..len)
        .step_by(4096)
        .filter(|&at| probe.is_cached(at) == Some(true))
        .count() as u64
        * 4096
}

#[test]
fn the_helper_reads_ahead_of_the_reader_and_no_further_than_asked() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let a = cold_file(dir.path(), "a", 4 * MIB);
    let b = cold_file(dir.path(), "b", 64 * MIB);
    if CacheProbe::new(&File::open(&b).unwrap())
        .unwrap()
        .is_cached(0)
        .is_none()
    {
        eprintln!("SKIPPED: this kernel cannot tell which pages are cached");
        return;
    }
    let before = cached_bytes(&b);
    if before > MIB {
        eprintln!("SKIPPED: this file system keeps dropped pages cached");
        return;
    }
    let ra = ReadAhead::start(vec![(a.clone(), 4 * MIB), (b.clone(), 64 * MIB)], 8 * MIB)
        .expect("a thread");
    let cached = cached_bytes;
    // Nothing consumed yet: the helper brings in the first file and the start of
    // the second, up to about 8 MiB in all (plus the kernel's own readahead).
    assert!(
        wait_until(|| cached(&a) == 4 * MIB && cached(&b) >= 4 * MIB),
        "the helper did not read ahead: {} and {} bytes cached",
        cached(&a),
        cached(&b)
    );
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        cached(&b) <= 24 * MIB,
        "the helper read far past the reader: {} bytes cached",
        cached(&b)
    );
    // The reader consumes through the tracked readers and sees its own bytes.
    let mut got = Vec::new();
    ra.track(File::open(&a).unwrap())
        .read_to_end(&mut got)
        .unwrap();
    assert_eq!(got.len() as u64, 4 * MIB);
    assert!(got.iter().enumerate().all(|(i, &x)| x == (i % 251) as u8));
    let mut rb = ra.track(File::open(&b).unwrap());
    let mut chunk = vec![0u8; 16 * MIB as usize];
    rb.read_exact(&mut chunk).unwrap();
    // 20 MiB consumed, 16 of them from b: the helper follows to about 24 MiB of b.
    assert!(
        wait_until(|| cached(&b) >= 22 * MIB),
        "the helper did not follow the reader: {} bytes cached",
        cached(&b)
    );
    // Dropping it stops the helper (joins it) before it reads the rest: what
    // comes in after that is at most the kernel's readahead already under way.
    drop(rb);
    drop(ra);
    let at_stop = cached(&b);
    assert!(at_stop <= 40 * MIB, "{at_stop} bytes cached");
    std::thread::sleep(Duration::from_millis(200));
    let later = cached(&b);
    assert!(
        later <= at_stop + 8 * MIB,
        "the helper went on after the drop: {at_stop} then {later} bytes cached"
    );
}

#[test]
fn missing_files_and_an_early_stop_are_harmless() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let a = cold_file(dir.path(), "a", MIB);
    let ra = ReadAhead::start(
        vec![(dir.path().join("gone"), 8 * MIB), (a.clone(), MIB)],
        64 * MIB,
    )
    .expect("a thread");
    let mut got = Vec::new();
    ra.track(File::open(&a).unwrap())
        .read_to_end(&mut got)
        .unwrap();
    assert_eq!(got.len() as u64, MIB);
    drop(ra);
}
