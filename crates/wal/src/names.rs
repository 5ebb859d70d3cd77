//! Segment file names: `%016x-%016x.wal` (sequence, first index) and their selection.

use std::path::Path;

use crate::error::{Error, Result};

/// Formats a segment name: sequence number, then the index of the first entry the
/// segment is meant to hold.
pub fn wal_name(seq: u64, index: u64) -> String {
    format!("{seq:016x}-{index:016x}.wal")
}

/// Parses a segment name into (sequence, index); `None` for any other name.
///
/// Like etcd's `fmt.Sscanf("%016x-%016x.wal")`: each number is 1 to 16 hex digits.
pub fn parse_wal_name(name: &str) -> Option<(u64, u64)> {
    let stem = name.strip_suffix(".wal")?;
    let (a, b) = stem.split_once('-')?;
    Some((parse_hex(a)?, parse_hex(b)?))
}

fn parse_hex(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 16 || !s.bytes().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(s, 16).ok()
}

/// Keeps the segment names of a directory listing, warning about foreign files
/// (leftover `.tmp` files of the pipeline are expected and not reported).
pub fn check_wal_names(dir: &Path, names: Vec<String>) -> Vec<String> {
    names
        .into_iter()
        .filter(|name| {
            let ok = parse_wal_name(name).is_some();
            if !ok && !name.ends_with(".tmp") {
                tracing::warn!(dir = %dir.display(), file = %name, "ignored file in WAL directory");
            }
            ok
        })
        .collect()
}

/// The position of the last segment whose first index is at or below `index`.
pub fn search_index(names: &[String], index: u64) -> Option<usize> {
    names
        .iter()
        .rposition(|n| parse_wal_name(n).is_some_and(|(_, first)| index >= first))
}

/// Whether sequence numbers increase by one from name to name.
pub fn is_valid_seq(names: &[String]) -> bool {
    let mut last: Option<u64> = None;
    for n in names {
        let Some((seq, _)) = parse_wal_name(n) else {
            return false;
        };
        // etcd skips the check while the previous sequence is 0 (`lastSeq != 0`).
        if let Some(prev) = last {
            if prev != 0 && prev.checked_add(1) != Some(seq) {
                return false;
            }
        }
        last = Some(seq);
    }
    true
}

/// The segments to read for a start at snapshot `index`: all names, and the position
/// of the first one to read. Errors are etcd's `wal: file not found` family.
pub fn select_wal_files(
    fs: &dyn wal_fileutil::FileSystem,
    dir: &Path,
    index: u64,
) -> Result<(Vec<String>, usize)> {
    let names = read_wal_names(fs, dir)?;
    let Some(at) = search_index(&names, index) else {
        return Err(Error::NoFileForSnapshot {
            dir: dir.to_path_buf(),
            index,
        });
    };
    if !is_valid_seq(&names[at..]) {
        return Err(Error::SequenceNotContinuous {
            dir: dir.to_path_buf(),
            from: names[at].clone(),
        });
    }
    Ok((names, at))
}

/// The segment names of `dir`, sorted; `NoWalFiles` when there are none.
pub fn read_wal_names(fs: &dyn wal_fileutil::FileSystem, dir: &Path) -> Result<Vec<String>> {
    let names = fs.read_dir(dir).map_err(Error::from)?;
    let names = check_wal_names(dir, names);
    if names.is_empty() {
        return Err(Error::NoWalFiles {
            dir: dir.to_path_buf(),
        });
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    // etcd: TestSearchIndex
    #[test]
    fn search_index_table() {
        let cases: &[(&[&str], u64, Option<usize>)] = &[
            (
                &[
                    "0000000000000000-0000000000000000.wal",
                    "0000000000000001-0000000000001000.wal",
                    "0000000000000002-0000000000002000.wal",
                ],
                0x1000,
                Some(1),
            ),
            (
                &[
                    "0000000000000001-0000000000004000.wal",
                    "0000000000000002-0000000000003000.wal",
                    "0000000000000003-0000000000005000.wal",
                ],
                0x4000,
                Some(1),
            ),
            (
                &[
                    "0000000000000001-0000000000002000.wal",
                    "0000000000000002-0000000000003000.wal",
                    "0000000000000003-0000000000005000.wal",
                ],
                0x1000,
                None,
            ),
        ];
        for (names, index, want) in cases {
            assert_eq!(
                search_index(&v(names), *index),
                *want,
                "{names:?} {index:#x}"
            );
        }
    }

    // etcd: TestScanWalName
    #[test]
    fn scan_wal_name() {
        assert_eq!(
            parse_wal_name("0000000000000000-0000000000000000.wal"),
            Some((0, 0))
        );
        assert_eq!(parse_wal_name("0000000000000000.wal"), None);
        assert_eq!(
            parse_wal_name("0000000000000000-0000000000000000.snap"),
            None
        );
        assert_eq!(
            parse_wal_name("000000000000000a-00000000000000ff.wal"),
            Some((10, 255))
        );
        assert_eq!(parse_wal_name("0.tmp"), None);
        assert_eq!(
            parse_wal_name("0000000000000000-0000000000000000.wal.broken"),
            None
        );
        assert_eq!(parse_wal_name("00000000000000000-0.wal"), None);
    }

    // etcd: TestValidSeq (isValidSeq)
    #[test]
    fn valid_seq() {
        assert!(is_valid_seq(&v(&[
            wal_name(0, 0).as_str(),
            wal_name(1, 5).as_str()
        ])));
        assert!(!is_valid_seq(&v(&[
            wal_name(1, 0).as_str(),
            wal_name(3, 5).as_str()
        ])));
        assert!(is_valid_seq(&v(&[
            wal_name(5, 0).as_str(),
            wal_name(6, 5).as_str()
        ])));
    }

    #[test]
    fn wal_name_format() {
        assert_eq!(wal_name(1, 0x38), "0000000000000001-0000000000000038.wal");
    }
}
