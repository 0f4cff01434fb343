#!/usr/bin/env python3
"""Times the ways a commit can reach this machine's disk, to bound a durable write at one client.

Each case writes the bytes of one small commit and waits until they are durable, 1,500 times,
into a file in DIR (default: the current directory; it must be on the disk being measured), and
prints the p50 and mean wall time and the CPU time per commit. "frames" is SQLite's WAL pattern
for a 4-page commit: a 24-byte header and a 4,096-byte page, four times, then fdatasync.

    python3 scripts/bench-disk-sync.py [DIR]
"""
import mmap
import os
import resource
import sys
import time

COMMITS = 1500
SPACE = 60 << 20


def run(directory, name, flags, sizes, sync):
    path = os.path.join(directory, "bench-disk-sync.tmp")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | flags)
    try:
        block = mmap.mmap(-1, 1 << 20)  # page-aligned, as O_DIRECT needs
        for off in range(0, SPACE + (4 << 20), 1 << 20):
            os.pwritev(fd, [block], off)
        os.fsync(fd)
        data = mmap.mmap(-1, 65536)
        data.write(b"x" * 65536)
        off, times = 0, []
        before = resource.getrusage(resource.RUSAGE_SELF)
        for _ in range(COMMITS):
            start = time.perf_counter()
            for size in sizes:
                os.pwritev(fd, [memoryview(data)[:size]], off)
                off = off + size if off < SPACE else 0
            if sync:
                os.fdatasync(fd)
            times.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_SELF)
    finally:
        os.close(fd)
        os.unlink(path)
    cpu = (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) / COMMITS
    times.sort()
    print(f"| {name} | {times[COMMITS // 2] * 1e6:.0f} | {sum(times) / COMMITS * 1e6:.0f} "
          f"| {cpu * 1e6:.0f} |")


def main():
    directory = sys.argv[1] if len(sys.argv) > 1 else "."
    print("| commit | p50 µs | mean µs | CPU µs |\n|---|---:|---:|---:|")
    run(directory, "4 KiB buffered + fdatasync", 0, [4096], True)
    run(directory, "frames: (24 B + 4 KiB) × 4 buffered + fdatasync", 0, [24, 4096] * 4, True)
    run(directory, "4 KiB buffered, O_DSYNC", os.O_DSYNC, [4096], False)
    run(directory, "4 KiB O_DIRECT + O_DSYNC", os.O_DIRECT | os.O_DSYNC, [4096], False)
    run(directory, "16 KiB O_DIRECT + O_DSYNC", os.O_DIRECT | os.O_DSYNC, [16384], False)


if __name__ == "__main__":
    main()
