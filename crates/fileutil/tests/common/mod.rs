//! Helpers shared by the integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// A tiny tmpfs mounted on a temporary directory, unmounted on drop. Used to
/// provoke a real ENOSPC. `None` when mounting is not permitted (not root,
/// no CAP_SYS_ADMIN, no `mount` binary).
pub struct SmallTmpfs {
    dir: tempfile::TempDir,
}

impl SmallTmpfs {
    pub fn mount(size: &str) -> Option<SmallTmpfs> {
        let dir = tempfile::tempdir().ok()?;
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={size},mode=0700"))
            .arg("wal-fileutil-test")
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .ok()?;
        if status.success() {
            Some(SmallTmpfs { dir })
        } else {
            eprintln!("SKIPPED part: cannot mount a tmpfs (needs CAP_SYS_ADMIN)");
            None
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallTmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// st_size and st_blocks (512-byte units) of `path`.
pub fn size_and_blocks(path: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let md = std::fs::metadata(path).unwrap();
    (md.size(), md.blocks())
}

/// Creates empty files named `names` in `dir`.
pub fn touch_all(dir: &Path, names: &[&str]) -> Vec<PathBuf> {
    names
        .iter()
        .map(|n| {
            let p = dir.join(n);
            std::fs::write(&p, b"").unwrap();
            p
        })
        .collect()
}
