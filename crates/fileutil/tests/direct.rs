//! Direct writes (`WalFile::direct_writes`): the file ends up holding exactly the
//! bytes `write(2)` would have left, whatever the sizes, flushes, syncs and
//! truncations, on the target directory's disk (ext4 here; tmpfs has no
//! direct I/O, where the files simply write as before).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use wal_fileutil::{os, OpenOptions, WalFile};

const KIB: usize = 1 << 10;

/// Whether the kernel is expected to accept direct writes in `dir`.
fn direct_capable(dir: &Path) -> bool {
    use nix::sys::statfs::{statfs, EXT4_SUPER_MAGIC, XFS_SUPER_MAGIC};
    let t = statfs(dir).unwrap().filesystem_type();
    t == EXT4_SUPER_MAGIC || t == XFS_SUPER_MAGIC
}

/// A file of `len` bytes: `head` patterned bytes, then zeros (as a WAL
/// segment is: records, then the preallocated rest), written and synced.
fn segment(dir: &Path, name: &str, len: usize, head: usize) -> (Box<dyn WalFile>, Vec<u8>) {
    let path = dir.join(name);
    let mut bytes = vec![0u8; len];
    for (i, b) in bytes[..head].iter_mut().enumerate() {
        *b = (i % 253) as u8 + 1;
    }
    std::fs::write(&path, &bytes).unwrap();
    let mut f = os().open(&path, &OpenOptions::read_write()).unwrap();
    f.sync_data().unwrap();
    f.seek(SeekFrom::Start(head as u64)).unwrap();
    (f, bytes)
}

/// A small deterministic generator (no dependency for it).
struct Rng(u64);
impl Rng {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) as usize % n
    }
}

#[test]
fn direct_writes_leave_the_bytes_write_would() {
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let capable = direct_capable(tmp.path());
    for (seed, head) in [(1u64, 0usize), (2, 1000), (3, 4096), (4, 12_345)] {
        let len = 6 << 20;
        let (mut f, mut want) = segment(tmp.path(), &format!("f{seed}"), len, head);
        let on = f.direct_writes().unwrap();
        assert_eq!(on, capable, "direct writes where ext4 or xfs");
        let mut rng = Rng(seed);
        let mut pos = head;
        // Until the writes pass the file's size (back to write(2) there).
        while pos < len + 100 * KIB {
            let n = match rng.next(10) {
                0 => 2 * KIB * KIB + rng.next(300 * KIB), // more than the stage
                1..=3 => 1 + rng.next(200),
                _ => 1 + rng.next(300 * KIB),
            };
            let data: Vec<u8> = (0..n).map(|i| ((i + pos) % 251) as u8 ^ 0x5a).collect();
            f.write_all(&data).unwrap();
            if want.len() < pos + n {
                want.resize(pos + n, 0);
            }
            want[pos..pos + n].copy_from_slice(&data);
            pos += n;
            assert_eq!(f.stream_position().unwrap(), pos as u64);
            match rng.next(4) {
                0 => f.flush().unwrap(),
                1 => {
                    f.sync_data().unwrap();
                    // Synced bytes are in the file for anyone to read.
                    let got = std::fs::read(f.path()).unwrap();
                    assert!(got == want, "seed {seed}: bytes after a sync at {pos}");
                }
                _ => {}
            }
        }
        f.sync_data().unwrap();
        assert!(std::fs::read(f.path()).unwrap() == want, "seed {seed}: end");
    }
}

#[test]
fn truncating_a_direct_file_writes_out_first_and_cuts_where_asked() {
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let (mut f, mut want) = segment(tmp.path(), "cut", 1 << 20, 100);
    f.direct_writes().unwrap();
    f.write_all(&[7u8; 5000]).unwrap();
    want[100..5100].fill(7);
    // etcd's cut: truncate at the offset, then the last bytes go after it.
    f.set_len(5100).unwrap();
    f.write_all(&[9u8; 10]).unwrap();
    f.sync_data().unwrap();
    want.truncate(5100);
    want.extend_from_slice(&[9u8; 10]);
    assert_eq!(std::fs::read(f.path()).unwrap(), want);
}

#[test]
fn dropping_a_direct_file_writes_out_what_it_staged() {
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let (mut f, mut want) = segment(tmp.path(), "drop", 64 * KIB, 4000);
    f.direct_writes().unwrap();
    f.write_all(&[3u8; 300]).unwrap();
    let path = f.path().to_path_buf();
    drop(f);
    want[4000..4300].fill(3);
    assert_eq!(std::fs::read(path).unwrap(), want);
}

#[test]
fn reading_or_seeking_a_direct_file_sees_what_was_written() {
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let (mut f, _) = segment(tmp.path(), "seek", 64 * KIB, 10);
    f.direct_writes().unwrap();
    f.write_all(b"hello").unwrap();
    f.seek(SeekFrom::Start(10)).unwrap();
    let mut got = [0u8; 5];
    std::io::Read::read_exact(&mut f, &mut got).unwrap();
    assert_eq!(&got, b"hello");
    // Writes go on as write(2) would, from the offset.
    f.write_all(b"!").unwrap();
    f.sync_data().unwrap();
    let bytes = std::fs::read(f.path()).unwrap();
    assert_eq!(&bytes[10..16], b"hello!");
}

#[test]
fn a_file_in_its_last_page_does_not_write_directly() {
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let (mut f, _) = segment(tmp.path(), "small", 3000, 0);
    assert!(!f.direct_writes().unwrap());
    f.write_all(&[1u8; 5000]).unwrap();
    f.sync_data().unwrap();
    assert_eq!(std::fs::read(f.path()).unwrap(), vec![1u8; 5000]);
}

#[test]
fn a_write_only_file_mid_page_keeps_writing_as_before() {
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let path = tmp.path().join("wo");
    let mut want = vec![0u8; 64 * KIB];
    want[..100].fill(5);
    std::fs::write(&path, &want).unwrap();
    let mut f = os().open(&path, &OpenOptions::write()).unwrap();
    f.seek(SeekFrom::Start(100)).unwrap();
    // The page's first 100 bytes cannot be read back to stage them.
    assert!(!f.direct_writes().unwrap());
    f.write_all(&[6u8; 50]).unwrap();
    f.sync_data().unwrap();
    want[100..150].fill(6);
    assert_eq!(std::fs::read(&path).unwrap(), want);
}
