//! `open_for_read` + `read_all`, `verify`, `valid_snapshot_entries`, the streaming
//! replay, write-mode recovery and `repair` over an arbitrary small WAL directory
//! (up to three segment files cut from the input). Nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wal::walpb::Snapshot;

fuzz_target!(|data: &[u8]| {
    let Ok(tmp) = tempfile::tempdir() else { return };
    let dir = tmp.path().join("wal");
    if std::fs::create_dir(&dir).is_err() {
        return;
    }
    // Layout: [n files][len0 (2 bytes)][len1 (2 bytes)] then the file bytes.
    let files = data.first().map_or(1, |b| 1 + (*b % 3) as usize);
    let mut rest = data.get(5..).unwrap_or_default();
    for i in 0..files {
        let len = match i {
            0 => u16::from_le_bytes([data.get(1).copied().unwrap_or(0), data.get(2).copied().unwrap_or(0)]) as usize,
            1 => u16::from_le_bytes([data.get(3).copied().unwrap_or(0), data.get(4).copied().unwrap_or(0)]) as usize,
            _ => rest.len(),
        }
        .min(rest.len());
        let (file, tail) = rest.split_at(len);
        rest = tail;
        let name = wal::wal_name(i as u64, if i == 0 { 0 } else { 10 * i as u64 });
        if std::fs::write(dir.join(name), file).is_err() {
            return;
        }
    }
    let snap = Snapshot::default();
    if let Ok(w) = wal::open_for_read(&dir, &snap) {
        let _ = w.read_all();
        let _ = w.read_all(); // decoder not found, not a panic
    }
    let _ = wal::verify(&dir, &snap);
    let _ = wal::valid_snapshot_entries(&dir);
    if let Ok(r) = wal::Replay::open(&dir, &snap) {
        for ev in r.take(100_000) {
            if ev.is_err() {
                break;
            }
        }
    }
    // Small segments: a write-mode open starts the segment pipeline, which prepares
    // (zero-fills) the next segment in the background.
    let opts = wal::Options::new().segment_size(1 << 16);
    if let Ok(w) = opts.open(&dir, &snap) {
        let _ = w.read_all();
    }
    let _ = wal::repair(&dir);
});
