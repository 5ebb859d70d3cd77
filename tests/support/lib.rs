//! Shared helpers for the workspace's integration tests and benches: where the test
//! vectors live and how to read them. Not published.

use std::path::{Path, PathBuf};

use wal_codec::SegmentReader;

/// The repository's `tests/data` folder.
pub fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("data")
}

/// The copy of the etcd 3.4.23 corpus (see `tests/data/corpus/README.md`).
pub fn corpus_dir() -> PathBuf {
    data_dir().join("corpus")
}

/// The corpus cases as (name, WAL directory).
pub fn corpus_cases() -> Vec<(String, PathBuf)> {
    let c = corpus_dir();
    ["basic", "cut", "snapshots", "emptydata", "server-a"]
        .iter()
        .map(|n| {
            let dir = if *n == "server-a" {
                c.join(n).join("wal")
            } else {
                c.join(n)
            };
            (n.to_string(), dir)
        })
        .collect()
}

/// The `.wal` files of `dir`, sorted by name.
pub fn wal_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .collect();
    v.sort();
    v
}

/// An in-memory segment reader over the file at `path`.
pub fn segment(path: &Path) -> SegmentReader {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    SegmentReader::from_bytes(
        path.file_name().map(PathBuf::from).unwrap_or_default(),
        bytes,
    )
}

/// Parses a JSON file of the corpus.
pub fn read_json(path: &Path) -> serde_json::Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

/// Lower-case hex of a SHA-256 digest.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

pub mod crash;
pub mod powerloss;
pub mod simfs;

/// A number from the environment (suite sizes, seeds), or `default`.
pub fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
