#!/usr/bin/env python3
"""What the write-ahead log's file layout costs the disk at 10,000 slow streams (issue 16, item 4).

    python3 scripts/bench_log_layout.py [--seconds 30] [--rounds 2] [--work DIR]

Models the Parquet sink's log traffic of `ensemble loadtest --instruments 10000 --channels 1
--rate 10 --batch-interval 1s` without the rest of the pipeline: two writer threads; every
250 ms each appends one 320-byte frame for a quarter of its 5,000 streams, then makes them
durable. Three layouts take turns (the order flips every round), each in a fresh directory
under WORK (on the file system to measure), deleted after its turn:

- `per-part+syncfs`: one log file per stream, each in its own directory, and `syncfs` (what
  the sink does today);
- `per-thread+syncfs`: one log file per writer thread, one write per tick, and `syncfs`;
- `per-thread+fdatasync`: the same, made durable with `fdatasync` of the thread's log only
  (does not wait for other files' dirty pages).

Prints, per layout and round: the durable calls' p50 / p99 / max, and what the whole block
device wrote meanwhile (MB/s and write requests/s from /proc/diskstats, so other processes'
writes count too), with the 1-minute load average.
"""

import argparse
import ctypes
import os
import shutil
import threading
import time

STREAMS = 10_000
THREADS = 2
TICK_S = 0.25
FRAME = b"x" * 320
LAYOUTS = ["per-part+syncfs", "per-thread+syncfs", "per-thread+fdatasync"]

libc = ctypes.CDLL("libc.so.6", use_errno=True)


def device_of(path):
    """The /proc/diskstats name of the block device holding `path` (whole disk or partition)."""
    dev = os.stat(path).st_dev
    major, minor = os.major(dev), os.minor(dev)
    with open("/proc/diskstats") as f:
        for line in f:
            fields = line.split()
            if int(fields[0]) == major and int(fields[1]) == minor:
                return fields[2]
    raise SystemExit(f"no /proc/diskstats entry for {path} ({major}:{minor})")


def disk_writes(device):
    """(sectors written, write requests completed) of `device` so far."""
    with open("/proc/diskstats") as f:
        for line in f:
            fields = line.split()
            if fields[2] == device:
                return int(fields[9]), int(fields[7])
    raise SystemExit(f"{device} left /proc/diskstats")


def open_logs(layout, directory):
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
    if layout.startswith("per-part"):
        logs = []
        for s in range(STREAMS):
            sub = os.path.join(directory, f"stream-{s:05}")
            os.mkdir(sub)
            logs.append(os.open(os.path.join(sub, "part-000000.wal"), flags, 0o644))
        return logs
    return [os.open(os.path.join(directory, f"writer-{t}.wal"), flags, 0o644) for t in range(THREADS)]


def run_layout(layout, directory, seconds, device):
    os.makedirs(directory)
    logs = open_logs(layout, directory)
    fs = os.open(directory, os.O_RDONLY)
    libc.syncfs(fs)
    durations = [[] for _ in range(THREADS)]

    def writer(t):
        mine = range(t, STREAMS, THREADS)
        tick = 0
        next_tick = time.monotonic()
        end = next_tick + seconds
        while time.monotonic() < end:
            quarter = tick % 4
            tick += 1
            streams = [s for s in mine if s % 4 == quarter]
            if layout.startswith("per-part"):
                for s in streams:
                    os.write(logs[s], FRAME)
            else:
                os.write(logs[t], FRAME * len(streams))
            began = time.monotonic()
            if layout.endswith("fdatasync"):
                os.fdatasync(logs[t])
            elif libc.syncfs(fs) != 0:
                raise OSError(ctypes.get_errno(), "syncfs")
            durations[t].append(time.monotonic() - began)
            next_tick += TICK_S
            time.sleep(max(0.0, next_tick - time.monotonic()))

    sectors0, requests0 = disk_writes(device)
    began = time.monotonic()
    threads = [threading.Thread(target=writer, args=(t,)) for t in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - began
    sectors1, requests1 = disk_writes(device)
    for fd in logs:
        os.close(fd)
    os.close(fs)
    shutil.rmtree(directory)
    calls = sorted(d for per_thread in durations for d in per_thread)
    at = lambda q: calls[min(len(calls) - 1, int(q * len(calls)))] * 1e3
    load = open("/proc/loadavg").read().split()[0]
    print(
        f"{layout:21} {len(calls):4} calls: p50 {at(0.5):7.1f} ms, p99 {at(0.99):7.1f} ms, "
        f"max {calls[-1] * 1e3:7.1f} ms | disk {(sectors1 - sectors0) * 512 / elapsed / 1e6:6.1f} MB/s, "
        f"{(requests1 - requests0) / elapsed:6.0f} writes/s | load {load}",
        flush=True,
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--work", default="/tmp/bench_log_layout")
    args = parser.parse_args()
    os.makedirs(args.work, exist_ok=True)
    device = device_of(args.work)
    print(f"{time.strftime('%H:%M:%S', time.gmtime())} UTC, {args.work} on {device}, {args.seconds:.0f} s per turn")
    for round_ in range(args.rounds):
        order = LAYOUTS if round_ % 2 == 0 else LAYOUTS[::-1]
        for layout in order:
            run_layout(layout, os.path.join(args.work, f"{layout}-{round_}"), args.seconds, device)


if __name__ == "__main__":
    main()
