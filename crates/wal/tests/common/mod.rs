//! Helpers shared by the wal integration tests.

#![allow(dead_code)]

use std::fs;
use std::path::Path;

use wal::parse_wal_name;
use wal::raftpb::Entry;

/// The segment names of `dir`, sorted (other files left out).
pub fn wal_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| parse_wal_name(n).is_some())
        .collect();
    names.sort();
    names
}

/// A normal entry with `data`.
pub fn ent_data(index: u64, term: u64, data: &[u8]) -> Entry {
    Entry {
        r#type: 0,
        term,
        index,
        data: Some(data.to_vec().into()),
    }
}
