#!/usr/bin/env python3
"""How the disk under DIR takes a save's bytes (docs/benchmarks.md, "Where a large
save's time goes"): one O_DIRECT write of a save against the same bytes as two
concurrent halves (two threads), two halves in a row and four quarters, each
followed by fdatasync, into a 64 MB file zeroed and synced first.

Usage: python3 docs/probes/disk_requests.py DIR [SAVE_KIB] [SAVES]
(Linux, a file system that takes O_DIRECT: ext4 or xfs; DIR must exist.)
"""
import mmap
import os
import sys
import threading
import time

SIZE = 64 << 20


def main():
    d = sys.argv[1]
    save = int(sys.argv[2]) << 10 if len(sys.argv) > 2 else 136 << 10
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 300
    path = os.path.join(d, "disk-requests.probe")
    with open(path, "wb") as f:
        f.write(b"\0" * SIZE)
        f.flush()
        os.fsync(f.fileno())
    fd = os.open(path, os.O_RDWR | os.O_DIRECT)
    buf = mmap.mmap(-1, save)  # page-aligned, as O_DIRECT needs
    buf.write(b"x" * save)
    view = memoryview(buf)
    try:
        for name, parts, concurrent in [
            ("one write", 1, False),
            ("two concurrent halves", 2, True),
            ("two halves in a row", 2, False),
            ("four quarters in a row", 4, False),
        ]:
            w, s = run(fd, view, n, parts, concurrent)
            print(f"{save >> 10} KiB as {name}: write {w:.0f} us, fdatasync {s:.0f} us")
    finally:
        os.close(fd)
        os.remove(path)


class Helper:
    """A thread that writes one chunk when asked, so that two writes are in
    flight at once without a thread's start in the measurement."""

    def __init__(self, fd):
        self.fd = fd
        self.job = None
        self.go = threading.Semaphore(0)
        self.done = threading.Semaphore(0)
        threading.Thread(target=self.loop, daemon=True).start()

    def loop(self):
        while True:
            self.go.acquire()
            chunk, off = self.job
            os.pwrite(self.fd, chunk, off)
            self.done.release()

    def start(self, chunk, off):
        self.job = (chunk, off)
        self.go.release()


def run(fd, view, n, parts, concurrent):
    step = len(view) // parts
    chunks = [view[i * step:(i + 1) * step] for i in range(parts)]
    helper = Helper(fd) if concurrent else None
    off = 0
    tw = ts = 0.0
    for _ in range(n):
        if off + len(view) > SIZE:
            off = 0
        t0 = time.perf_counter()
        if helper:
            helper.start(chunks[1], off + step)
            os.pwrite(fd, chunks[0], off)
            helper.done.acquire()
        else:
            for i, c in enumerate(chunks):
                os.pwrite(fd, c, off + i * step)
        t1 = time.perf_counter()
        os.fdatasync(fd)
        t2 = time.perf_counter()
        tw += t1 - t0
        ts += t2 - t1
        off += len(view)
    return tw / n * 1e6, ts / n * 1e6


if __name__ == "__main__":
    main()
