//! Keeping the CPU's scheduler tick running through the short sleeps of an
//! fdatasync.
//!
//! A durable append sleeps twice inside `fdatasync` (the data write, then the
//! cache flush), 20 to 40 us each on a fast disk. On a tickless Linux kernel
//! (`NO_HZ_IDLE`, the default) the CPU stops its periodic tick when it goes idle
//! and restarts it when the I/O completes; on a virtual machine each restart
//! reprograms the local timer through VM exits, measured at 6 to 8 us per wake
//! (docs/benchmarks.md, lever 20): 10 to 25 % of a 10 KB save. The kernel keeps
//! the tick of a CPU that has RCU callbacks queued, and closing a pipe queues one
//! (its inode is freed after a grace period, a few ticks later). So while saves
//! keep coming, opening and closing a pipe at most once per millisecond per
//! thread keeps the tick of the saving CPU running: three system calls per
//! millisecond, nothing at all once saves stop (the tick then stops as usual).
//!
//! Nothing on disk changes. Where the kernel never stops the tick (`nohz=off`),
//! or frees RCU callbacks on other CPUs (`rcu_nocbs`), this costs the three
//! calls and gains nothing; off Linux it does nothing.

use std::cell::Cell;
use std::time::{Duration, Instant};

/// How often [`keep_tick`] queues a callback: well inside the time the kernel
/// keeps one pending (a grace period spans several ticks, 1 to 4 ms each).
pub const KEEP_TICK_EVERY: Duration = Duration::from_millis(1);

thread_local! {
    static LAST: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Keeps this CPU's scheduler tick from stopping during the I/O wait that follows
/// (call it just before `fdatasync`). Returns whether it queued a callback now
/// (at most once per [`KEEP_TICK_EVERY`] per thread); failures are ignored, as
/// the WAL is correct without it.
pub fn keep_tick() -> bool {
    let now = Instant::now();
    let due = LAST.with(|last| match last.get() {
        Some(t) if now.duration_since(t) < KEEP_TICK_EVERY => false,
        _ => {
            last.set(Some(now));
            true
        }
    });
    if due {
        queue_rcu_callback();
    }
    due
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn queue_rcu_callback() {
    // Dropping both ends closes the pipe; its inode is freed through RCU.
    let _ = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC);
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn queue_rcu_callback() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queues_at_most_once_per_period_per_thread() {
        // A thread of its own, so no other test's calls count.
        std::thread::spawn(|| {
            assert!(keep_tick(), "the first call queues");
            let start = Instant::now();
            let mut queued = 0;
            while start.elapsed() < KEEP_TICK_EVERY / 2 {
                queued += usize::from(keep_tick());
            }
            assert_eq!(queued, 0, "calls within the period queue nothing");
            std::thread::sleep(KEEP_TICK_EVERY);
            assert!(keep_tick(), "a call after the period queues again");
            // Another thread has its own period (its own CPU to keep ticking).
            assert!(std::thread::spawn(keep_tick).join().unwrap());
        })
        .join()
        .unwrap();
    }

    #[test]
    fn leaves_no_descriptor_open() {
        #[cfg(target_os = "linux")]
        std::thread::spawn(|| {
            // Pipes this process holds open (other tests open files, rarely pipes).
            let count = || {
                std::fs::read_dir("/proc/self/fd")
                    .unwrap()
                    .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                    .filter(|l| l.to_string_lossy().starts_with("pipe:"))
                    .count()
            };
            let before = count();
            for _ in 0..50 {
                std::thread::sleep(KEEP_TICK_EVERY);
                assert!(keep_tick());
            }
            assert!(
                count() <= before + 4,
                "pipes leaked: {before} -> {}",
                count()
            );
        })
        .join()
        .unwrap();
    }
}
