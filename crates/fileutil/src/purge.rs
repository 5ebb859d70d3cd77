//! etcd's `PurgeFile`: keep the newest N files of a kind, never removing one
//! that somebody still holds locked.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::{FileSystem, LockMode, OpenOptions};

/// What one [`purge_once`] pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PurgeReport {
    /// Files removed, oldest first.
    pub removed: Vec<PathBuf>,
    /// The file at which the pass stopped because another open file
    /// description holds its lock (a WAL still using it).
    pub locked: Option<PathBuf>,
}

/// One pass of etcd's `PurgeFile`: among the entries of `dir` whose names end
/// with `suffix` (sorted by name), remove the oldest until only `max` remain.
/// Each removal try-locks the file (write-only, no create), unlinks it, then
/// closes it. The pass stops at the first file whose lock is held elsewhere
/// and reports it in [`PurgeReport::locked`]; newer files are never removed
/// before older ones.
///
/// Errors: listing `dir`, removing a file, or opening a file for any reason
/// other than its lock (etcd logs the latter and stops the pass; here it is
/// returned so the caller sees it). Removals are not fsynced: a crash may
/// bring a purged file back, which is harmless.
pub fn purge_once(
    fs: &dyn FileSystem,
    dir: &Path,
    suffix: &str,
    max: usize,
) -> Result<PurgeReport> {
    let names: Vec<String> = fs
        .read_dir(dir)?
        .into_iter()
        .filter(|n| n.ends_with(suffix))
        .collect();
    let mut report = PurgeReport::default();
    let excess = names.len().saturating_sub(max);
    let opts = OpenOptions::write().lock(LockMode::Try);
    for name in names.iter().take(excess) {
        let path = dir.join(name);
        let locked = match fs.open(&path, &opts) {
            Ok(f) => f,
            Err(e) if e.is_locked() => {
                tracing::warn!(path = %path.display(), "failed to lock file; stopping purge");
                report.locked = Some(path);
                break;
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "failed to lock file");
                return Err(e);
            }
        };
        if let Err(e) = fs.remove_file(&path) {
            tracing::error!(path = %path.display(), error = %e, "failed to remove file");
            return Err(e);
        }
        drop(locked);
        tracing::info!(path = %path.display(), "purged");
        report.removed.push(path);
    }
    Ok(report)
}

/// At most this many errors are kept by a [`Purger`]; later ones are only logged.
const MAX_KEPT_ERRORS: usize = 64;

/// A background purger started by [`spawn_purger`]. Stopping it (or dropping
/// it) joins its thread.
#[derive(Debug)]
pub struct Purger {
    stop_tx: Option<mpsc::Sender<()>>,
    handle: Option<JoinHandle<Vec<Error>>>,
    spawn_error: Option<Error>,
}

/// etcd's `PurgeFileWithDoneNotify`: run [`purge_once`] now and then every
/// `interval` on a background thread until [`Purger::stop`].
///
/// Unlike etcd, whose goroutine exits at the first error, a failed pass is
/// logged with `tracing::warn!`, kept (up to 64 errors) for [`Purger::stop`],
/// and the next pass runs as usual.
pub fn spawn_purger(
    fs: Arc<dyn FileSystem>,
    dir: PathBuf,
    suffix: String,
    max: usize,
    interval: Duration,
) -> Purger {
    tracing::info!(dir = %dir.display(), suffix, max, ?interval, "started to purge file");
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let spawn_dir = dir.clone();
    let spawned = std::thread::Builder::new()
        .name("wal-purger".into())
        .spawn(move || {
            let mut errors = Vec::new();
            loop {
                if let Err(e) = purge_once(&*fs, &dir, &suffix, max) {
                    tracing::warn!(dir = %dir.display(), error = %e, "purge failed");
                    if errors.len() < MAX_KEPT_ERRORS {
                        errors.push(e);
                    }
                }
                match stop_rx.recv_timeout(interval) {
                    Err(RecvTimeoutError::Timeout) => continue,
                    Ok(()) | Err(RecvTimeoutError::Disconnected) => break,
                }
            }
            errors
        });
    match spawned {
        Ok(handle) => Purger {
            stop_tx: Some(stop_tx),
            handle: Some(handle),
            spawn_error: None,
        },
        Err(e) => Purger {
            stop_tx: None,
            handle: None,
            spawn_error: Some(Error::from_io("spawn purger", spawn_dir, e)),
        },
    }
}

impl Purger {
    /// Stops the thread, waits for it (a pass in progress completes), and
    /// returns the errors it met.
    pub fn stop(mut self) -> Vec<Error> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Vec<Error> {
        let mut errors: Vec<Error> = self.spawn_error.take().into_iter().collect();
        if let Some(tx) = self.stop_tx.take() {
            // The receiver may be gone only if the thread panicked; join reports it.
            let _ = tx.send(());
        }
        if let Some(handle) = self.handle.take() {
            match handle.join() {
                Ok(errs) => errors.extend(errs),
                Err(_) => tracing::error!("purger thread panicked"),
            }
        }
        errors
    }
}

impl Drop for Purger {
    fn drop(&mut self) {
        for e in self.shutdown() {
            tracing::warn!(error = %e, "purger error dropped with the purger");
        }
    }
}
