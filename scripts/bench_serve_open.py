#!/usr/bin/env python3
"""How long `ensemble serve` takes to open a large run (issue 12: a 10 GB run in a second or two).

    cargo build --release
    python3 scripts/bench_serve_open.py [--gb 10] [--repeat 3] [--work DIR] [--keep]

1. Records one stream of noisy rows (4 Float64 channels, `pace = "max"`, 1 MHz nominal rate so
   the run spans real time) until its Parquet parts hold about GB gigabytes (skipped when
   WORK already holds such a run: `--keep` leaves it there for the next invocation).
2. REPEAT times: starts `ensemble serve RUN --listen 127.0.0.1:0` and times, from the start of
   the process, what a browser opening the page asks for: `serving` printed, `GET /`,
   `GET /api/status`, the default plot (`/api/streams/scope?seconds=10&points=2000`), and the
   whole run (`seconds=0`). When `/proc/sys/vm/drop_caches` is writable (root), the page cache
   is dropped before each repetition, so the files are read cold from the disk.

Prints every repetition and the medians, with the 1-minute load average.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

from bench_common import binary, record_scope



def run_size(run):
    total = 0
    for root, _, files in os.walk(run):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files if f.endswith(".parquet"))
    return total


def existing_run(work):
    runs = os.path.join(work, "runs")
    if not os.path.isdir(runs):
        return None
    for name in sorted(os.listdir(runs)):
        run = os.path.join(runs, name)
        with open(os.path.join(run, "run.json")) as f:
            if json.load(f).get("status") == "completed":
                return run
    return None


def record(work, gb):
    # Noisy floats hardly compress: about 33 bytes a row in zstd Parquet.
    rows = int(gb * 1e9 / 33)
    rate = 1_000_000
    started = time.monotonic()
    run = record_scope(work, "serve-open-bench", rows, rate, noise=0.1, sink_extra="rotate_rows = 50000000\n")
    print(f"recorded {rows:,} rows in {time.monotonic() - started:.0f} s")
    return run


def drop_caches():
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def get(addr, path):
    with urllib.request.urlopen(f"http://{addr}{path}", timeout=120) as r:
        return r.read()


def open_once(run):
    cold = drop_caches()
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [binary(), "serve", run, "--listen", "127.0.0.1:0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        addr = None
        for line in proc.stderr:
            if line.startswith("serving http://"):
                addr = line.strip()[len("serving http://"):].rstrip("/")
                break
        if addr is None:
            sys.exit("ensemble serve printed no address")
        t = {"serving": time.monotonic() - t0}
        get(addr, "/")
        t["page"] = time.monotonic() - t0
        get(addr, "/api/status")
        t["status"] = time.monotonic() - t0
        window = json.loads(get(addr, "/api/streams/scope?seconds=10&points=2000"))
        t["last 10 s plotted"] = time.monotonic() - t0
        whole = json.loads(get(addr, "/api/streams/scope?seconds=0&points=2000"))
        t["whole run plotted"] = time.monotonic() - t0
        t["sources"] = f"{window['source']} / {whole['source']}"
        t["cold"] = cold
        return t
    finally:
        proc.terminate()
        proc.wait()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--gb", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--work")
    parser.add_argument("--keep", action="store_true", help="keep the recorded run")
    args = parser.parse_args()
    work = args.work or tempfile.mkdtemp(prefix="serve-open-")
    os.makedirs(work, exist_ok=True)
    try:
        run = existing_run(work) or record(work, args.gb)
        size = run_size(run)
        parts = sum(len(f) for _, _, f in os.walk(os.path.join(run, "scope")))
        print(f"run {run}: {size / 1e9:.2f} GB of Parquet in {parts} parts; load {os.getloadavg()[0]:.2f}")
        keys = ["serving", "page", "status", "last 10 s plotted", "whole run plotted"]
        results = []
        for i in range(args.repeat):
            t = open_once(run)
            results.append(t)
            shown = ", ".join(f"{k} {t[k]:.3f} s" for k in keys)
            print(f"  {i + 1}: {shown} ({'cold' if t['cold'] else 'warm'} cache; {t['sources']}); load {os.getloadavg()[0]:.2f}")
        medians = ", ".join(f"{k} {statistics.median(r[k] for r in results):.3f} s" for k in keys)
        print(f"median from process start: {medians}")
    finally:
        if not args.keep and not args.work:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
