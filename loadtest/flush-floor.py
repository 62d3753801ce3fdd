#!/usr/bin/env python3
"""The flush floor of this machine's disk (issue 17): how many synchronous flushes per second
one thread, and four threads at once, get from the filesystem the archive writes to, for the
flushes an acknowledged store pays today — a small file's data (write 9 KB + fsync), a new
name made durable (create, write, fsync, rename, fsync of the directory) and a log append
(append 512 B + fdatasync, what SQLite's WAL commit does).

    loadtest/flush-floor.py [DIR] [SECONDS]   (default loadtest/out/flush-floor, 5 s per case)

Prints operations/s per case and thread count. Removes what it wrote.
"""
import os
import shutil
import sys
import threading
import time

root = sys.argv[1] if len(sys.argv) > 1 else "loadtest/out/flush-floor"
seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 5.0
payload = os.urandom(9 * 1024)


def small_file(d: str, n: int) -> None:
    with open(os.path.join(d, f"f{n}"), "wb") as f:
        f.write(payload)
        f.flush()
        os.fsync(f.fileno())


def new_name(d: str, n: int) -> None:
    tmp, final = os.path.join(d, f"t{n}"), os.path.join(d, f"o{n}")
    with open(tmp, "wb") as f:
        f.write(payload)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, final)
    fd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Log:
    def __init__(self, d: str):
        self.fd = os.open(os.path.join(d, "log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def __call__(self, d: str, n: int) -> None:
        os.write(self.fd, payload[:512])
        os.fdatasync(self.fd)


def run(case, threads: int) -> float:
    counts = [0] * threads
    stop = time.monotonic() + seconds

    def worker(i: int) -> None:
        d = os.path.join(root, f"w{i}")
        os.makedirs(d, exist_ok=True)
        op = case(d) if case is Log else case
        n = 0
        while time.monotonic() < stop:
            op(d, n)
            n += 1
        counts[i] = n

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    shutil.rmtree(root, ignore_errors=True)
    return sum(counts) / seconds


os.makedirs(root, exist_ok=True)
print(f"flush floor on {os.path.abspath(root)} ({seconds:.0f} s per case)")
for name, case in [("9 KB file + fsync", small_file), ("file + fsync + rename + dir fsync", new_name), ("512 B append + fdatasync", Log)]:
    one, four = run(case, 1), run(case, 4)
    print(f"  {name:<36} 1 thread {one:8.0f}/s   4 threads {four:8.0f}/s")
