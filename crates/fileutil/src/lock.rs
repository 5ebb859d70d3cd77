//! Whole-file advisory write locks, as etcd's `lock_linux.go` / `lock_flock.go`.
//!
//! On Linux the lock is an open file description (OFD) lock taken with
//! `F_OFD_SETLK` / `F_OFD_SETLKW`, exactly like etcd: it conflicts with locks held
//! through any *other* open file description, in this process or another, and is
//! released when the last descriptor of the description is closed. On kernels
//! without OFD locks (`EINVAL`) and on other Unix systems, `flock(2)` is used.

use std::fs::File;
use std::path::Path;

use nix::errno::Errno;

use crate::error::{errno_err, Error, Result};
use crate::LockMode;

/// Takes the lock on `file` as `mode` asks. `LockMode::None` does nothing.
pub(crate) fn lock(file: &File, path: &Path, mode: LockMode) -> Result<()> {
    match mode {
        LockMode::None => Ok(()),
        LockMode::Try => platform_lock(file, path, false),
        LockMode::Wait => platform_lock(file, path, true),
    }
}

#[cfg(target_os = "linux")]
fn platform_lock(file: &File, path: &Path, wait: bool) -> Result<()> {
    use nix::fcntl::{fcntl, FcntlArg};
    use nix::libc;

    // etcd's `wrlck`: a write lock over the whole file. Built as a literal (no
    // `unsafe` zeroing); the field set matches libc's `flock` on the common
    // Linux targets (x86_64, aarch64, riscv64, x86, arm).
    let wrlck = libc::flock {
        l_type: libc::F_WRLCK as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: 0,
        l_len: 0,
        l_pid: 0,
    };
    loop {
        let arg = if wait {
            FcntlArg::F_OFD_SETLKW(&wrlck)
        } else {
            FcntlArg::F_OFD_SETLK(&wrlck)
        };
        match fcntl(file, arg) {
            Ok(_) => return Ok(()),
            // A signal interrupted the wait: wait again.
            Err(Errno::EINTR) if wait => continue,
            Err(Errno::EAGAIN | Errno::EACCES) if !wait => {
                return Err(Error::Locked {
                    path: path.to_owned(),
                })
            }
            // The kernel predates OFD locks (Linux < 3.15): etcd's init() then
            // selects flock, and so do we.
            Err(Errno::EINVAL) => return flock_lock(file, path, wait),
            Err(e) => return Err(errno_err("lock", path)(e)),
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn platform_lock(file: &File, path: &Path, wait: bool) -> Result<()> {
    flock_lock(file, path, wait)
}

/// etcd's `flockTryLockFile` / `flockLockFile`: `flock(LOCK_EX[|LOCK_NB])`.
pub(crate) fn flock_lock(file: &File, path: &Path, wait: bool) -> Result<()> {
    use std::os::fd::AsRawFd;

    use nix::fcntl::FlockArg;

    let arg = if wait {
        FlockArg::LockExclusive
    } else {
        FlockArg::LockExclusiveNonblock
    };
    loop {
        // The deprecated free function is used on purpose: its replacement,
        // `nix::fcntl::Flock<File>`, panics in `Drop` if `LOCK_UN` fails, while
        // closing the descriptor releases the lock anyway (as in etcd).
        #[allow(deprecated)]
        let res = nix::fcntl::flock(file.as_raw_fd(), arg);
        match res {
            Ok(()) => return Ok(()),
            Err(Errno::EINTR) if wait => continue,
            Err(Errno::EWOULDBLOCK) if !wait => {
                return Err(Error::Locked {
                    path: path.to_owned(),
                })
            }
            Err(e) => return Err(errno_err("lock", path)(e)),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    fn open_rw(path: &Path) -> File {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .unwrap()
    }

    /// etcd: TestLockAndUnlock, for one lock implementation.
    fn check_lock_and_unlock(lock_fn: fn(&File, &Path, bool) -> Result<()>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        std::fs::write(&path, b"").unwrap();

        // lock the file
        let l = open_rw(&path);
        lock_fn(&l, &path, true).unwrap();

        // try lock a locked file (new open file description)
        let other = open_rw(&path);
        let err = lock_fn(&other, &path, false).unwrap_err();
        assert!(err.is_locked(), "{err:?}");
        assert_eq!(err.path(), path);
        drop(other);

        // unlock the file
        drop(l);

        // try lock the unlocked file
        let dupl = open_rw(&path);
        lock_fn(&dupl, &path, false).unwrap();

        // blocking on locked file
        let (tx, rx) = mpsc::channel();
        let p2 = path.clone();
        let waiter = std::thread::spawn(move || {
            let bl = open_rw(&p2);
            lock_fn(&bl, &p2, true).unwrap();
            tx.send(()).unwrap();
            drop(bl);
        });
        assert!(
            rx.recv_timeout(Duration::from_millis(100)).is_err(),
            "unexpected unblocking"
        );
        // unlock
        drop(dupl);
        // the previously blocked thread is unblocked
        rx.recv_timeout(Duration::from_secs(5))
            .expect("unexpected blocking");
        waiter.join().unwrap();
    }

    #[test]
    fn lock_and_unlock() {
        // etcd: TestLockAndUnlock (OFD locks on Linux)
        check_lock_and_unlock(platform_lock);
    }

    #[test]
    fn lock_and_unlock_syscall_flock() {
        // etcd: TestLockAndUnlockSyscallFlock
        check_lock_and_unlock(flock_lock);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn ofd_lock_on_read_only_descriptor_fails_with_io_error() {
        // A write lock needs a descriptor open for writing (EBADF otherwise).
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ro");
        std::fs::write(&path, b"").unwrap();
        let f = File::open(&path).unwrap();
        let err = platform_lock(&f, &path, false).unwrap_err();
        assert!(matches!(err, Error::Io { op: "lock", .. }), "{err:?}");
    }

    #[test]
    fn lock_mode_none_takes_no_lock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let a = open_rw(&path);
        lock(&a, &path, LockMode::None).unwrap();
        let b = open_rw(&path);
        lock(&b, &path, LockMode::Try).unwrap();
        let c = open_rw(&path);
        assert!(lock(&c, &path, LockMode::Try).unwrap_err().is_locked());
        lock(&a, &path, LockMode::None).unwrap();
    }
}
