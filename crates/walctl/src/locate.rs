//! Finding the WAL directory in what the user passed.

use std::path::{Path, PathBuf};

/// Where the WAL directory was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// The path as given.
    pub given: PathBuf,
    /// The WAL directory to read.
    pub wal_dir: PathBuf,
    /// How it was found: `"wal dir"`, `"member/wal"`, `"wal"` or `"as given"`.
    pub how: &'static str,
}

/// Finds the WAL directory in `path`: `path` itself if it holds a `.wal` file, else
/// `path/member/wal` (an etcd data dir), else `path/wal` (an etcd `member` dir, or a
/// copy such as the corpus' `server-a`), else `path` as given (whose errors the WAL
/// functions then report). Only reads directory listings.
pub fn locate(path: &Path) -> Located {
    let found = |wal_dir: PathBuf, how| Located {
        given: path.to_path_buf(),
        wal_dir,
        how,
    };
    if has_wal_file(path) {
        return found(path.to_path_buf(), "wal dir");
    }
    let member = path.join("member").join("wal");
    if member.is_dir() {
        return found(member, "member/wal");
    }
    let wal = path.join("wal");
    if wal.is_dir() {
        return found(wal, "wal");
    }
    found(path.to_path_buf(), "as given")
}

fn has_wal_file(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|rd| {
        rd.filter_map(|e| e.ok())
            .any(|e| e.file_name().to_string_lossy().ends_with(".wal"))
    })
}

/// Every name in `dir`, sorted (etcd's `fileutil.ReadDir`); empty if unreadable.
pub fn list_dir(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
}

/// The segment names (`%016x-%016x.wal`) of `dir`, sorted.
pub fn segment_names(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| wal::parse_wal_name(n).is_some())
        .collect();
    names.sort();
    Ok(names)
}
